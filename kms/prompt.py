"""Reading secrets from the operator: a hidden prompt on a terminal, else lines of standard input."""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from kms.errors import ConfigError

MAX_LINE = 65_536  # characters: far more than any password, PIN, mnemonic or key


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
            try:
                line = self._stdin.readline(MAX_LINE + 1) if self._stdin is not None else ""
            except UnicodeDecodeError:
                raise ConfigError(f"{prompt} standard input is not UTF-8 text.") from None
            except (OSError, ValueError):
                raise ConfigError(f"{prompt} standard input cannot be read.") from None
            if not line:
                raise ConfigError(f"{prompt} nothing on standard input (it is not a terminal and is empty).")
            if len(line) > MAX_LINE:
                raise ConfigError(f"{prompt} the line on standard input is longer than {MAX_LINE} characters.")
            value = line.rstrip("\r\n")
        if not value:
            raise ConfigError(f"{prompt} an empty value was given.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8, let through by a C locale's surrogateescape
            raise ConfigError(f"{prompt} the value is not valid UTF-8 text.") from None
        return value
