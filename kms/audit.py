"""The daemon's audit log: one JSON line per decision on a pending transaction, hash-chained and HMAC-keyed.

Each line holds its sequence number, the log's id, the SHA-256 of the line before (`prev`) and, last,
an HMAC-SHA256 of everything before it under a key derived from the store's data key, so a line cannot
be edited, inserted, reordered, removed from the middle or spliced from another log without
`tatum-kms audit verify` naming it. No secret, key or transaction body goes in: ids, verdicts, reasons,
the SHA-256 of what was signed, the broadcast outcome and txId.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from kms.errors import KmsError

FORMAT = 1
KEY_PURPOSE = "audit-log"
GENESIS = "0" * 64
_MAC = re.compile(rb'^(\{.*),"mac":"([0-9a-f]{64})"\}$')
_TAIL_CHUNK = 65536


class AuditError(KmsError):
    """The audit log cannot be written, or does not verify (the message names the line and what is wrong)."""


def default_path(store_path: Path) -> Path:
    """`audit.log` beside the store."""
    return store_path.parent / "audit.log"


def line_hash(line: bytes) -> str:
    """The chain hash of one line (without its newline)."""
    return hashlib.sha256(line).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _authentic(line: bytes, key: bytes) -> dict[str, Any] | None:
    """The entry of a line whose HMAC is right, else None."""
    match = _MAC.match(line)
    if not match:
        return None
    body = match.group(1) + b"}"
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, match.group(2)):
        return None
    try:
        entry = json.loads(body)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) or not isinstance(entry.get("prev"), str):
        return None
    return entry


class AuditLog:
    """An open audit log: appends entries, one writer per file (an exclusive lock), thread-safe.

    `record` writes a line (not yet durable); `durable(seq)` fsyncs through that entry, sharing one
    fsync among the lines written since the last. The daemon makes each "signed" line durable
    before the transaction is broadcast.
    """

    def __init__(self, path: Path, key: bytes, redact: Callable[[str], str] | None = None,
                 on_error: Callable[[str], None] | None = None, on_entry: Callable[[int], None] | None = None) -> None:
        self.path = path
        self._key = key
        self._redact = redact or (lambda text: text)
        self._on_error = on_error
        self._on_entry = on_entry
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fd = self._open_locked(path)
        try:
            self._log_id, self._seq, self._prev, torn = self._read_head()
        except BaseException:
            os.close(self._fd)
            raise
        self._durable = self._seq
        if torn:
            self.record("torn-tail", droppedBytes=torn[0], droppedSha256=torn[1],
                        detail="an incomplete last line (a crash while writing) was cut off")
            self.durable(self._seq)

    @property
    def seq(self) -> int:
        """The sequence number of the last entry written."""
        return self._seq

    # -- opening -----------------------------------------------------------------------------

    @staticmethod
    def _open_locked(path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"The audit log {path} cannot be opened: {exc.strerror}; the daemon signs nothing "
                             "it cannot audit (name a writable file with --auditLog).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AuditError(f"The audit log {path} is in use by another tatum-kms daemon: give each daemon "
                             "its own --auditLog.") from None
        return fd

    def _read_head(self) -> tuple[str, int, str, tuple[int, str] | None]:
        """(log id, last seq, hash of the last line, the torn tail cut off if any) of the file as it is."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return os.urandom(8).hex(), 0, GENESIS, None
        start = max(0, size - _TAIL_CHUNK)
        tail = os.pread(self._fd, size - start, start)
        while b"\n" not in tail[:-1] and start > 0:  # one long last line: read further back
            start = max(0, start - _TAIL_CHUNK)
            tail = os.pread(self._fd, size - start, start)
        torn = None
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            dropped = tail[cut:]
            os.ftruncate(self._fd, start + cut)
            os.fsync(self._fd)
            torn, tail = (len(dropped), hashlib.sha256(dropped).hexdigest()), tail[:cut]
            if not tail:
                return os.urandom(8).hex(), 0, GENESIS, torn
        last = tail[:-1].rsplit(b"\n", 1)[-1]
        entry = _authentic(last, self._key)
        if entry is None or not isinstance(entry.get("log"), str):
            raise AuditError(f"The last line of the audit log {self.path} does not verify (edited, or written under "
                             "another store's key): run `tatum-kms audit verify`; nothing was signed.")
        return entry["log"], entry["seq"], line_hash(last), torn

    # -- writing -----------------------------------------------------------------------------

    def record(self, event: str, **fields: Any) -> int:
        """Append one entry (fields that are None are left out); return its sequence number."""
        with self._lock:
            seq = self._seq + 1
            entry = {"v": FORMAT, "log": self._log_id, "seq": seq, "time": _now(), "event": event}
            for name, value in fields.items():
                if value is not None:
                    entry[name] = self._redact(value) if isinstance(value, str) else value
            entry["prev"] = self._prev
            body = json.dumps(entry, separators=(",", ":")).encode()
            mac = hmac.new(self._key, body, hashlib.sha256).hexdigest()
            line = body[:-1] + b',"mac":"' + mac.encode() + b'"}'
            data = memoryview(line + b"\n")
            try:
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError as exc:
                raise AuditError(f"The audit log {self.path} cannot be written: {exc.strerror}.") from None
            self._seq, self._prev = seq, line_hash(line)
        if self._on_entry is not None:
            self._on_entry(seq)
        return seq

    def _outcome(self, event: str, **fields: Any) -> int:
        """Record an entry that gates nothing (an outcome, a refusal): a failure to write it goes to
        `on_error` when one is given (the daemon logs it and goes on) instead of raising."""
        try:
            return self.record(event, **fields)
        except AuditError as exc:
            if self._on_error is None:
                raise
            self._on_error(str(exc))
            return 0

    def durable(self, seq: int) -> None:
        """Return once entry `seq` (and every one before it) is on disk."""
        if self._durable >= seq:
            return
        with self._sync_lock:
            if self._durable >= seq:
                return
            with self._lock:
                upto = self._seq
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise AuditError(f"The audit log {self.path} cannot be synced: {exc.strerror}.") from None
            self._durable = upto

    def close(self) -> None:
        """Sync, unlock and close."""
        if self._fd < 0:
            return
        try:
            self.durable(self._seq)
        finally:
            os.close(self._fd)
            self._fd = -1

    # -- the daemon's decisions --------------------------------------------------------------

    def started(self, chains: tuple[str, ...], testnet: bool, approval: bool) -> int:
        return self.record("started", chains=list(chains), testnet=testnet, approvalServer=approval)

    def stopped(self) -> int:
        seq = self._outcome("stopped")
        try:
            self.durable(seq)
        except AuditError as exc:
            if self._on_error is None:
                raise
            self._on_error(str(exc))
        return seq

    def refused(self, pending: Any, reason: str) -> int:
        """The four-eye check did not approve `pending`: nothing was signed."""
        return self._outcome("refused", **_identity(pending), approval="refused", reason=reason)

    def signed(self, pending: Any, approval: str | None, tx_data: str) -> int:
        """`pending` was signed, after the approval server said `approval` (None: no approval server);
        return the seq to make durable before the broadcast."""
        return self.record("signed", **_identity(pending), approval="approved" if approval else "not-required",
                           reason=approval or "no approval server (--externalUrl) is configured",
                           signedSha256=hashlib.sha256(tx_data.encode()).hexdigest())

    def broadcast(self, pending: Any, tx_id: str | None = None, error: str | None = None) -> int:
        """The outcome of broadcasting `pending`: its txId, or the error."""
        return self._outcome("broadcast", **_identity(pending), outcome="failed" if error else "broadcast",
                           txId=tx_id, error=error)

    def failed(self, pending: Any, error: str, *, chain: str | None = None) -> int:
        """`pending` (a PendingTransaction, or the id of one that did not parse) could not be signed."""
        if isinstance(pending, str):
            return self._outcome("failed", pending=pending, chain=chain, error=error)
        return self._outcome("failed", **_identity(pending), error=error)


def _identity(pending: Any) -> dict[str, Any]:
    ids = list(dict.fromkeys([*pending.hashes, *(ref.id for ref in pending.signatures)]))
    return {"pending": pending.id, "chain": pending.chain, "signatureIds": ids}


class NoAudit:
    """The audit log when none is kept (tests that build a Daemon by hand): every call does nothing."""

    seq = 0

    def __getattr__(self, name: str) -> Callable[..., int]:
        return lambda *args, **kwargs: 0


NO_AUDIT: Any = NoAudit()


# -- verification ------------------------------------------------------------------------------


@dataclass
class Report:
    """What `audit verify` found in an intact log."""

    entries: int = 0
    head: str = GENESIS
    last_event: str | None = None
    events: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    writer_active: bool = False

    def to_json(self, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {"status": f"intact: {self.entries} entries", "file": str(path),
                               "entries": self.entries, "head": {"seq": self.entries, "sha256": self.head},
                               "events": self.events, "lastEvent": self.last_event,
                               "daemonWriting": self.writer_active}
        if self.unresolved:
            out["signedWithoutOutcome"] = self.unresolved
        return out

    @property
    def warning(self) -> str | None:
        """What the file alone cannot prove, when it matters."""
        if self.writer_active or self.last_event == "stopped" or self.entries == 0:
            return None
        return ("the log does not end with a daemon stop and no daemon is writing it: the daemon was killed, "
                "or its last lines were removed; compare the head with a copy kept elsewhere")


def _lines(handle: BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without newline, whether it ended with a newline), read as it goes."""
    for number, raw in enumerate(handle, 1):
        complete = raw.endswith(b"\n")
        yield number, raw[:-1] if complete else raw, complete


def _line_of(path: Path, after: int, key: bytes, log_id: str | None, seq: int) -> int | None:
    """The number of the first line after line `after` holding authentic entry `seq` of log `log_id`."""
    with path.open("rb") as handle:
        for number, line, _ in _lines(handle):
            if number > after and (entry := _authentic(line, key)) and entry.get("log") == log_id \
                    and entry["seq"] == seq:
                return number
    return None


def verify(path: Path, key: bytes) -> Report:
    """Check every line of the log at `path` (streamed: any size); AuditError naming the first wrong line."""
    try:
        with path.open("rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                writer_active = False
            except OSError:
                writer_active = True
            return _verify(path, _lines(handle), key, Report(writer_active=writer_active))
    except FileNotFoundError:
        raise AuditError(f"No audit log at {path}.") from None
    except OSError as exc:
        raise AuditError(f"The audit log {path} cannot be read: {exc.strerror}.") from None


def _verify(path: Path, lines: Iterator[tuple[int, bytes, bool]], key: bytes, report: Report) -> Report:
    log_id: str | None = None
    expected, prev = 1, GENESIS
    signed_open: dict[str, int] = {}
    current = next(lines, None)
    while current is not None:
        following = next(lines, None)
        number, line, complete = current
        where = f"{path} line {number}"
        if not complete:
            raise AuditError(f"{where}: incomplete (the file was cut inside this line).")
        entry = _authentic(line, key)
        if entry is None:
            after = _authentic(following[1], key) if following is not None else None
            if after is not None and after.get("seq") == expected and after.get("prev") == prev:
                raise AuditError(f"{where}: inserted (not written by this KMS: the lines around it chain "
                                 "without it).")
            raise AuditError(f"{where}: edited (its HMAC does not match; or it was written under another "
                             "store's key).")
        seq = entry["seq"]
        if log_id is None:
            log_id = entry.get("log")
        elif entry.get("log") != log_id:
            raise AuditError(f"{where}: spliced in from another audit log (log {entry.get('log')}, entry #{seq}).")
        if seq > expected:
            later = _line_of(path, number, key, log_id, expected)
            if later is not None:
                raise AuditError(f"{where}: reordered (entry #{seq} is here; entry #{expected} comes later, at line "
                                 f"{later}).")
            missing = f"#{expected}" if seq == expected + 1 else f"#{expected}-#{seq - 1}"
            raise AuditError(f"{where}: entries before it were removed (entry #{seq} follows "
                             f"{'#' + str(expected - 1) if expected > 1 else 'the start'}; {missing} missing).")
        if seq < expected:
            raise AuditError(f"{where}: reordered or repeated (entry #{seq} comes again after #{expected - 1}).")
        if entry["prev"] != prev:
            raise AuditError(f"{where}: spliced (entry #{seq} was written after a different line than the one "
                             "before it here).")
        event = str(entry.get("event"))
        report.events[event] = report.events.get(event, 0) + 1
        pending = entry.get("pending")
        if event == "signed" and isinstance(pending, str):
            signed_open[pending] = seq
        elif event == "broadcast" and isinstance(pending, str):
            signed_open.pop(pending, None)
        report.entries, report.last_event = seq, event
        prev, expected = line_hash(line), seq + 1
        current = following
    report.head = prev
    report.unresolved = sorted(signed_open, key=signed_open.__getitem__)
    return report
