"""The daemon's log: one line per event (ISO time, outcome, chain, pending id, detail), text or JSON.

Every line passes through a redaction of the secrets the process knows (API key, password, PIN),
so a library message that embeds one (a URL with the API key, say) cannot leak it. In the text format,
control and other non-printable characters of every field are escaped (`\n`, `\x1b`, `\u2028`), and a
chain or pending id is one token (spaces and backslashes escaped too): what came from the network cannot
forge a line or a field.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO


class EventLog:
    """Writes events as single lines to `stream`, `fmt` "text" or "json"."""

    def __init__(self, stream: TextIO | None = None, fmt: str = "text", secrets: Iterable[str] = ()) -> None:
        self._stream = stream or sys.stdout
        self._json = fmt == "json"
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._lock = threading.Lock()

    def add_secret(self, secret: str | None) -> None:
        """Redact `secret` from every later line."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every known secret replaced by `***` and its whitespace runs made single spaces."""
        return " ".join(self._hide(text).split())

    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def event(self, outcome: str, detail: str = "", *, chain: str | None = None, pending: str | None = None,
              level: str = "info") -> None:
        """Log one event; `outcome` is a short word (signed, skipped, failed, ...)."""
        time = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        detail = self.redact(detail)
        chain = self._hide(chain) if isinstance(chain, str) else chain
        pending = self._hide(pending) if isinstance(pending, str) else pending
        if self._json:
            record = {"time": time, "level": level, "outcome": outcome, "chain": chain, "pending": pending,
                      "detail": detail}
            line = json.dumps({k: v for k, v in record.items() if v not in (None, "")})
        else:
            parts = [time, level.upper(), escape(outcome, token=True)]
            if chain:
                parts.append(f"chain={escape(chain, token=True)}")
            if pending:
                parts.append(f"pending={escape(pending, token=True)}")
            if detail:
                parts.append(escape(detail))
            line = " ".join(parts)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def capture_library_warnings(self) -> None:
        """Route warnings of the package's own loggers (retries, the version notice) to this log."""
        handler = _EventHandler(self)
        logger = logging.getLogger("kms")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def escape(text: str, *, token: bool = False) -> str:
    """`text` with non-printable characters (CR, LF, ESC, NEL, U+2028, bidi controls...) written as Python
    escapes; with `token`, spaces and backslashes as well, so the result is one unambiguous token."""
    if text.isprintable() and not (token and (" " in text or "\\" in text)):
        return text
    out = []
    for char in text:
        if char.isprintable() and not (token and char in " \\"):
            out.append(char)
        elif char == "\\":
            out.append("\\\\")
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


class _EventHandler(logging.Handler):
    """A logging handler that writes each record as one `notice` event."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.WARNING)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warn"
        self._log.event("notice", record.getMessage(), level=level)
