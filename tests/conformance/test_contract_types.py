"""A static check that every registered chain satisfies the `Chain` contract: mypy over the registry's objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import chains

ROOT = Path(__file__).resolve().parent.parent.parent


def test_every_registered_chain_satisfies_the_chain_protocol(tmp_path: Path) -> None:
    lines = ["from chains.base import Chain", "import importlib"]
    for n, (code, (module, attr)) in enumerate(chains._REGISTRY.items()):
        lines += [f"import {module}", f"chain_{n}: Chain = {module}.{attr}  # {code}"]
    check = tmp_path / "registry_types.py"
    check.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
         "--cache-dir", str(ROOT / ".mypy_cache"), str(check)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
