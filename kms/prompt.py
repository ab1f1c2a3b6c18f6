"""Reading secrets from the operator: a hidden prompt on a terminal, else lines of standard input."""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from kms.errors import ConfigError


class SecretInput:
    """Asks for secrets one after another.

    On a terminal each is a hidden prompt; when standard input is not a terminal each is the
    next line of it (so `printf '%s\\n' "$PW" "$MNEMONIC" | tatum-kms storemanagedwallet BTC` works).
    """

    def __init__(self, stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._stdin = stdin or sys.stdin
        self._stderr = stderr or sys.stderr

    @property
    def interactive(self) -> bool:
        """True when secrets are typed at a terminal."""
        try:
            return self._stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def ask(self, prompt: str) -> str:
        """The next secret, without its line ending; ConfigError when none can be read."""
        if self.interactive:
            try:
                value = getpass.getpass(prompt + " ", stream=self._stderr)
            except EOFError:
                raise ConfigError(f"{prompt} no input.") from None
        else:
            line = self._stdin.readline() if self._stdin is not None else ""
            if not line:
                raise ConfigError(f"{prompt} nothing on standard input (it is not a terminal and is empty).")
            value = line.rstrip("\r\n")
        if not value:
            raise ConfigError(f"{prompt} an empty value was given.")
        return value
