"""Run the real `tatum-kms` console script in a child process with a private HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KMS_BIN = str(Path(sys.executable).parent / "tatum-kms")
PASSWORD = "correct horse battery staple 2026"

# Mnemonic of the spec's vectors (tatum-js v1 tests, "MQ"): public test data, not a secret.
MQ = (
    "quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
    "leaf good forward erupt split divert bread kitten"
)


@dataclass
class Kms:
    """A tatum-kms invocation context: HOME, store path and environment for the child process."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.home / ".tatumrc" / "wallet.dat"

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TATUM_", "SOFTHSM2_CONF"))}
        return {**base, "HOME": str(self.home), "TATUM_KMS_PASSWORD": PASSWORD, **self.env, **(extra or {})}

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `tatum-kms args…`; stdin is `input` (or empty), never a terminal."""
        return subprocess.run(
            [KMS_BIN, *args], input=input or "", capture_output=True, text=True,
            env=self.environ(env), timeout=timeout,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `tatum-kms args…` in the background: stdin empty, stdout and stderr piped as text."""
        return subprocess.Popen([KMS_BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.environ(env))

    def ok(self, *args: str, **kwargs: Any) -> Any:
        """Run and return the JSON it printed; fail the test with its stderr if it did not succeed."""
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, f"tatum-kms {' '.join(args)} failed: {result.stderr}"
        return json.loads(result.stdout) if result.stdout.strip() else None

    def lines(self, *args: str, **kwargs: Any) -> list[Any]:
        """Run a command that prints one JSON document per line; return them in order."""
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, f"tatum-kms {' '.join(args)} failed: {result.stderr}"
        return [json.loads(line) for line in result.stdout.splitlines()]

    def fails(self, *args: str, **kwargs: Any) -> str:
        """Run, expect a non-zero exit and exactly one line on stderr; return that line."""
        result = self.run(*args, **kwargs)
        assert result.returncode != 0, f"tatum-kms {' '.join(args)} unexpectedly succeeded: {result.stdout}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
        return lines[0]
