"""The wallet store (wallet.dat): an SQLite database with one AES-GCM-sealed row per wallet.

Signature id, chain and testnet flag are clear columns so wallets can be listed without
decrypting; everything else (mnemonic, xpub, keys, address) is sealed. Every change is one
SQLite transaction, so concurrent writers all land and a killed process leaves the store as
before or as after. A new store is built aside and linked into place whole. A state record
tagged under the data key (a generation bumped by every write, and the count of removals, each
recorded and tagged) makes a removed wallet put back from an old copy, or a dropped removal record,
visible; a whole file rolled back to an older copy is the one change it cannot tell.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chains import safejson
from kms import envelope
from kms.envelope import Header, RecordCipher, TokenSettings
from kms.errors import StoreError, UnknownWallet

DEFAULT_PATH = Path.home() / ".tatumrc" / "wallet.dat"
LOCK_SUFFIX = ".daemon.lock"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_MAGIC = b"U2FsdGVkX1"  # base64 of "Salted__": the original tool's CryptoJS file
_BUSY_TIMEOUT_MS = 60_000
_MAX_ID_CHARS = 256

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE wallets (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        signature_id TEXT NOT NULL UNIQUE,
        chain TEXT NOT NULL,
        testnet INTEGER NOT NULL,
        gen INTEGER NOT NULL,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX wallets_by_chain ON wallets (chain, testnet)",
    "CREATE INDEX wallets_by_gen ON wallets (gen)",
    """CREATE TABLE removed (
        signature_id TEXT NOT NULL,
        gen INTEGER NOT NULL,
        tag BLOB NOT NULL,
        PRIMARY KEY (signature_id, gen)
    )""",
)
_COLUMNS = {
    "meta": ("name", "value"),
    "wallets": ("seq", "signature_id", "chain", "testnet", "gen", "nonce", "sealed"),
    "removed": ("signature_id", "gen", "tag"),
}


def new_signature_id() -> str:
    """A new signature id: a random UUID4, as the original makes them."""
    return str(uuid.uuid4())


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The store path, absolute: `--path` if given, else ~/.tatumrc/wallet.dat."""
    if not path:
        return DEFAULT_PATH
    text = os.fspath(path)
    if "\x00" in text:
        raise StoreError("A store path cannot contain a NUL character.")
    return Path(os.path.abspath(os.path.expanduser(text)))


def _os_error(path: Path, exc: OSError, doing: str = "used") -> StoreError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(f"{path} cannot be {doing}: it is read-only or not accessible ({reason}).")
    return StoreError(f"{path} cannot be {doing} ({reason}).")


def file_kind(path: Path) -> str:
    """'missing', 'empty', 'store' (ours), 'legacy' (the original's CryptoJS file), 'special' (a directory,
    device or pipe) or 'unknown'. Never blocks: only regular files are read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        raise StoreError(f"{path} cannot be a wallet store: a part of that path is a file, not a directory.") from None
    except OSError as exc:
        raise _os_error(path, exc) from None
    if not stat.S_ISREG(info.st_mode):
        return "special"
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise _os_error(path, exc) from None
    if not head:
        return "empty"
    if head == _SQLITE_MAGIC:
        return "store"
    if head.lstrip().startswith(_LEGACY_MAGIC):
        return "legacy"
    return "unknown"


def _check_kind(path: Path, kind: str) -> None:
    if kind == "legacy":
        raise StoreError(
            f"{path} is a wallet.dat of the original tatum-kms. Migrate it with "
            f"`tatum-kms import --from {path} --path NEW_PATH`, then use --path NEW_PATH."
        )
    if kind == "special":
        raise StoreError(f"{path} is not a regular file (a directory, device or pipe), so not a wallet store.")
    if kind == "empty":
        raise StoreError(f"{path} is an empty file, not a wallet store: delete it to create a new store there.")
    if kind == "unknown":
        raise StoreError(f"{path} is not a tatum-kms wallet store (or it is corrupt).")


def _uri(path: Path, mode: str, immutable: bool = False) -> str:
    """An SQLite URI for `path` (any bytes in it escaped), e.g. file:///x/wallet.dat?mode=ro."""
    return f"file://{quote(os.fsencode(path), safe='/')}?mode={mode}" + ("&immutable=1" if immutable else "")


def _writable(path: Path) -> bool:
    """Whether this process may change the store: the file and its directory (for -wal/-shm) writable."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _sqlite_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """One line for an SQLite failure, by its kind: read-only, full, I/O, busy, corrupt, damaged."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = " ".join(str(exc).split())[:200]
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return StoreError(f"{path} is read-only: a command that changes the store cannot run ({text}).")
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        return StoreError(f"{path} could not be written or read ({text}: disk full, file size limit or I/O "
                          "error); the change was not made.")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(f"{path} stayed locked by another process for too long; run the command again.")
    if name.startswith("SQLITE_CANTOPEN"):
        return StoreError(f"{path} cannot be opened ({text}).")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return StoreError(f"{path} is not a tatum-kms wallet store (or it is corrupt): {text}.")
    return StoreError(f"{path} is damaged or not a tatum-kms wallet store: {text}.")


@contextmanager
def _sql(path: Path) -> Iterator[None]:
    """Turn SQLite and OS failures inside the block into one-line StoreErrors."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.Error as exc:
        raise _sqlite_error(path, exc) from None
    except OSError as exc:
        raise _os_error(path, exc) from None


def _connect(path: Path, writable: bool) -> sqlite3.Connection:
    """An SQLite connection in autocommit mode (transactions are explicit) with a long busy timeout.

    A store this process may not change is opened read-only; in a directory it cannot write either,
    with no -wal file (so nothing uncheckpointed to miss), as immutable, which SQLite needs to read
    a WAL database there.
    """
    if writable:
        uri = _uri(path, "rw")
    else:
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        stuck = not os.access(path.parent, os.W_OK) and not (shm.exists() and wal.exists())
        if stuck and wal.exists() and wal.stat().st_size > 0:
            raise StoreError(f"{path} cannot be read here: its -wal file holds changes and the directory is read-only.")
        uri = _uri(path, "ro", immutable=stuck)
    with _sql(path):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        conn.text_factory = _decode_text
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
    return conn


def _decode_text(data: bytes) -> str:
    """TEXT columns as str even when a damaged file holds bytes that are not UTF-8 (then never valid ids)."""
    return data.decode("utf-8", "surrogateescape")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    for table, columns in _COLUMNS.items():
        found = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            if table == "meta" and not found and _leftover(conn):
                raise StoreError(f"{path} is not a tatum-kms wallet store (it has no header){_leftover(conn)}.")
            raise StoreError(f"{path} is damaged: its table '{table}' is missing or altered.")


def _leftover(conn: sqlite3.Connection) -> str:
    """A hint for a database without our header that holds no wallet: what an interrupted creation leaves."""
    try:
        empty = conn.execute("SELECT COUNT(*) FROM wallets").fetchone()[0] == 0
    except sqlite3.Error:
        empty = True
    return "; it holds no wallet (an interrupted creation by an earlier build?): delete it to start again" \
        if empty else ""


def _header(conn: sqlite3.Connection, path: Path) -> Header:
    """The header row, parsed and checked; a store without one is damaged and never re-keyed."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'header'").fetchone()
    if row is None:
        if _leftover(conn):
            raise StoreError(f"{path} is not a tatum-kms wallet store (it has no header){_leftover(conn)}.")
        raise StoreError(f"{path} is damaged: its header is missing, so it cannot be opened; restore it from a "
                         "backup (it is never re-keyed).")
    return Header.from_json(row[0])


def read_header(path: Path) -> Header | None:
    """The header of an existing store, readable without the password (None when there is no store)."""
    kind = file_kind(path)
    if kind == "missing":
        return None
    if kind != "store":
        _check_kind(path, kind)
    conn = _connect(path, _writable(path))
    try:
        with _sql(path):
            _check_schema(conn, path)
            return _header(conn, path)
    finally:
        conn.close()


def _text_value(value: object, what: str) -> str:
    """A signature id or chain code fit for the store: short, printable, valid UTF-8."""
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS and value.isprintable():
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
    raise StoreError(f"{what} must be 1 to {_MAX_ID_CHARS} printable characters of valid UTF-8 text.")


def _quoted(text: str, limit: int = 80) -> str:
    """`text` in single quotes, control and non-ASCII characters escaped, cut to `limit` characters."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return "'" + json.dumps(cut)[1:-1] + "'"


def _lookup_id(signature_id: object) -> str:
    try:
        return _text_value(signature_id, "A signature id")
    except StoreError:
        raise UnknownWallet(f"No such wallet for signatureId {_quoted(str(signature_id))}.") from None


class WalletStore:
    """An unlocked store. Hazmat: `get` and `export` return plaintext secrets; only the CLI's
    `getmanagedwallet`, `getprivatekey` and `export` and the daemon's signer call them."""

    def __init__(self, path: Path, conn: sqlite3.Connection, header: Header, dek: bytes, writable: bool) -> None:
        self.path = path
        self.header = header
        self.writable = writable
        self._conn = conn
        self._dek = dek
        self._cipher = RecordCipher(dek, header.store_id)
        self._verified_removals: set[tuple[str, int]] = set()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, password: str, token: TokenSettings | None, *, create: bool = False,
             kdf: dict[str, Any] | None = None) -> WalletStore:
        """Open (or with `create`, create if absent) and unlock the store at `path`.

        Raises StoreError for a missing, foreign or damaged file, WrongPassword / TokenError when the
        secrets do not open it. Nothing is written unless the store is being created. A store this
        process cannot write is opened read-only: reads work, a write is a "read-only" StoreError.
        """
        kind = file_kind(path)
        created = None
        if kind == "missing":
            if not create:
                raise StoreError(f"No wallet store at {path}: create one with generatemanagedwallet.")
            created = create_store(path, password, token, kdf=kdf)
        elif kind != "store":
            _check_kind(path, kind)  # legacy, foreign, empty or not a file: says what to do
        writable = _writable(path)
        conn = _connect(path, writable)
        try:
            with _sql(path):
                _check_schema(conn, path)
                header = _header(conn, path)
            if created is not None and created[0] == header:
                dek = created[1]
            else:
                dek = envelope.open_dek(header, password, token)
            store = cls(path, conn, header, dek, writable)
            with store._reading():
                store._state()
        except BaseException:
            conn.close()
            raise
        return store

    def subkey(self, purpose: str) -> bytes:
        """A 256-bit key for one `purpose` (e.g. "audit-log"), HKDF-SHA256 from the DEK; the DEK stays here."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if not self._dek:
            raise StoreError("The wallet store is closed.")
        info = f"tatum-kms/subkey/v1/{purpose}".encode()
        return HKDF(hashes.SHA256(), 32, salt=self.header.store_id.encode(), info=info).derive(self._dek)

    def close(self) -> None:
        """Close the database; the DEK reference is dropped."""
        self._conn.close()
        self._dek = b""

    def __enter__(self) -> WalletStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_writable(self) -> None:
        """StoreError("read-only") now, before anything is asked or made, when the store cannot be changed."""
        if not self.writable:
            raise StoreError(f"{self.path} is read-only: a command that changes the store cannot run "
                             "(commands that only read it work).")

    # -- the state record --------------------------------------------------------------------

    def _state(self) -> tuple[int, int, dict[str, int]]:
        """Check the state record and the removal records against it; (generation, removals, last removal
        generation per id). StoreError when anything was altered, dropped or rolled back apart."""
        tampered = (f"{self.path} was tampered with or is corrupt: its state record does not match its "
                    "contents ({}); restore it from a backup.")
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'state'").fetchone()
        try:
            state = safejson.loads(row[0], ValueError, max_depth=1, max_bytes=512) if row else None
            gen, removed = state["gen"], state["removed"]
            tag = base64.b64decode(state["tag"], validate=True)
            valid = type(gen) is int and type(removed) is int and gen >= 0 and removed >= 0
        except (ValueError, TypeError, KeyError, RecursionError):
            valid = False
        if not valid or not self._cipher.same(tag, self._cipher.state_tag(gen, removed)):
            raise StoreError(tampered.format("missing or altered state"))
        newest_row = self._conn.execute("SELECT MAX(gen) FROM wallets").fetchone()[0]
        if newest_row is not None and (type(newest_row) is not int or newest_row > gen):
            raise StoreError(tampered.format("a record newer than the state"))
        last_removal: dict[str, int] = {}
        count = 0
        for signature_id, removed_gen, removal_tag in self._conn.execute("SELECT signature_id, gen, tag FROM removed"):
            count += 1
            key = (signature_id, removed_gen)
            if key not in self._verified_removals:
                if (not isinstance(signature_id, str) or type(removed_gen) is not int or removed_gen > gen
                        or not self._cipher.same(removal_tag, self._cipher.removal_tag(signature_id, removed_gen))):
                    raise StoreError(tampered.format("an altered removal record"))
                self._verified_removals.add(key)
            last_removal[signature_id] = max(removed_gen, last_removal.get(signature_id, 0))
        if count != removed:
            raise StoreError(tampered.format("a removal record was dropped or added"))
        return gen, removed, last_removal

    def _write_state(self, gen: int, removed: int) -> None:
        tag = base64.b64encode(self._cipher.state_tag(gen, removed)).decode("ascii")
        self._conn.execute("UPDATE meta SET value = ? WHERE name = 'state'",
                           (json.dumps({"gen": gen, "removed": removed, "tag": tag}),))

    # -- reading -----------------------------------------------------------------------------

    def ids(self, chain: str | None = None, testnet: bool | None = None) -> list[str]:
        """Signature ids in insertion order, optionally of one chain and network (no decryption)."""
        query, args = "SELECT signature_id FROM wallets", []
        conditions = []
        if chain is not None:
            conditions.append("chain = ?")
            args.append(_text_value(chain, "A chain code"))
        if testnet is not None:
            conditions.append("testnet = ?")
            args.append(int(testnet))
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with _sql(self.path):
            return [row[0] for row in self._conn.execute(query + " ORDER BY seq", args) if isinstance(row[0], str)]

    def get(self, signature_id: str) -> dict[str, Any]:
        """The wallet as the original stores it: its fields, then `chain` and `testnet` (hazmat)."""
        signature_id = _lookup_id(signature_id)
        with self._reading():
            _, _, last_removal = self._state()
            row = self._conn.execute(
                "SELECT signature_id, chain, testnet, gen, nonce, sealed FROM wallets WHERE signature_id = ?",
                (signature_id,),
            ).fetchone()
        if row is None:
            raise UnknownWallet(f"No such wallet for signatureId {_quoted(signature_id)}.")
        return self._open_row(row, last_removal)

    def find(self, signature_id: str) -> dict[str, Any] | None:
        """Like `get`, but None for an unknown signature id."""
        try:
            return self.get(signature_id)
        except UnknownWallet:
            return None

    def export(self) -> dict[str, dict[str, Any]]:
        """Every wallet, keyed by signature id, in the original's export shape (hazmat)."""
        with self._reading():
            _, _, last_removal = self._state()
            rows = self._conn.execute(
                "SELECT signature_id, chain, testnet, gen, nonce, sealed FROM wallets ORDER BY seq"
            ).fetchall()
        return {row[0]: self._open_row(row, last_removal) for row in rows}

    def _open_row(self, row: tuple[Any, ...], last_removal: dict[str, int]) -> dict[str, Any]:
        signature_id, chain, testnet, gen, nonce, sealed = row
        shown = signature_id if isinstance(signature_id, str) else repr(signature_id)
        if (not isinstance(signature_id, str) or not isinstance(chain, str) or testnet not in (0, 1)
                or type(testnet) is not int or type(gen) is not int or not isinstance(nonce, bytes)
                or not isinstance(sealed, bytes)):
            raise StoreError(f"Wallet record {_quoted(shown)} is damaged (a column holds the wrong type): "
                             "wallet.dat was altered or is corrupt.")
        if last_removal.get(signature_id, -1) >= gen:
            raise StoreError(f"Wallet record {_quoted(signature_id)} was removed from this store and put back "
                             "from an older copy: it is refused (removewallet deletes it again).")
        fields = self._cipher.open(signature_id, chain, bool(testnet), gen, nonce, sealed)
        return {**fields, "chain": chain, "testnet": bool(testnet)}

    # -- writing -----------------------------------------------------------------------------

    def add(self, chain: str, testnet: bool, fields: dict[str, Any]) -> str:
        """Store one wallet under a new UUID4 signature id and return the id."""
        signature_id = new_signature_id()
        self.put_many([(signature_id, chain, testnet, fields)])
        return signature_id

    def put_many(self, wallets: list[tuple[str, str, bool, dict[str, Any]]], *, skip_existing: bool = False) -> int:
        """Insert (signature_id, chain, testnet, fields) rows in one transaction; return how many were new.

        With `skip_existing`, ids already present are left as they are (imports are idempotent);
        otherwise an existing id is an error and nothing is written. One insert per wallet plus the
        state record: nothing else is rewritten.
        """
        checked = []
        for signature_id, chain, testnet, fields in wallets:
            secret_fields = {k: v for k, v in fields.items() if k not in ("chain", "testnet")}
            checked.append((_text_value(signature_id, "A signature id"), _text_value(chain, "A chain code"),
                            bool(testnet), secret_fields))
        verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
        with self._writing():
            gen, removed, _ = self._state()
            rows = []
            for signature_id, chain, testnet, fields in checked:
                nonce, sealed = self._cipher.seal(signature_id, chain, testnet, gen + 1, fields)
                rows.append((signature_id, chain, int(testnet), gen + 1, nonce, sealed))
            before = self._conn.total_changes
            try:
                self._conn.executemany(
                    f"{verb} INTO wallets (signature_id, chain, testnet, gen, nonce, sealed) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError:
                raise StoreError("A wallet with that signature id is already in the store.") from None
            added = self._conn.total_changes - before
            if added:
                self._write_state(gen + 1, removed)
            return added

    def remove(self, signature_id: str) -> None:
        """Delete one wallet, recording its removal; UnknownWallet when there is none with that id."""
        signature_id = _lookup_id(signature_id)
        with self._writing():
            gen, removed, _ = self._state()
            cursor = self._conn.execute("DELETE FROM wallets WHERE signature_id = ?", (signature_id,))
            if cursor.rowcount == 0:
                raise UnknownWallet(f"No such wallet for signatureId {_quoted(signature_id)}.")
            self._conn.execute("INSERT INTO removed (signature_id, gen, tag) VALUES (?, ?, ?)",
                               (signature_id, gen + 1, self._cipher.removal_tag(signature_id, gen + 1)))
            self._write_state(gen + 1, removed + 1)

    def rewrap(self, password: str, token: TokenSettings | None, *, new_token_key: bool = False) -> Header:
        """Wrap the DEK under a new password and/or token key; one header write, O(1) in wallets.

        Returns the previous header (so the caller can retire an old token key after commit). A token key
        made for the new binding is destroyed again if the header could not be committed.
        """
        self.require_writable()
        new_header = envelope.seal_dek(self.header, self._dek, password, token, new_token_key=new_token_key)
        made = (token is not None and new_header.token is not None
                and (self.header.token is None or new_header.token.key_id != self.header.token.key_id))
        try:
            with self._writing():
                if _header(self._conn, self.path) != self.header:
                    raise StoreError("The store's keys were changed by another process; run the command again.")
                self._conn.execute("UPDATE meta SET value = ? WHERE name = 'header'", (new_header.to_json(),))
        except BaseException:
            if made:
                envelope.discard_token_key(token, new_header.token.key_id)
            raise
        previous, self.header = self.header, new_header
        return previous

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction (a consistent snapshot), SQLite failures as StoreErrors."""
        with _sql(self.path):
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; read-only and full disks said so."""
        self.require_writable()
        with _sql(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")


def _make_private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # another process may make it at the same time


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except OSError:
            pass


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_store(path: Path, password: str, token: TokenSettings | None, *,
                 kdf: dict[str, Any] | None = None) -> tuple[Header, bytes] | None:
    """Create a new, empty store at `path` atomically: built whole beside it, then linked into place.

    Returns the header and DEK, or None when another process created the store first (creations in a
    directory take turns; a store that appears anyway wins, and this call's token key is destroyed again).
    Nothing is left behind on failure.
    """
    try:
        _make_private_dir(path.parent)
    except OSError as exc:
        raise _os_error(path, exc, "created") from None
    if not os.access(path.parent, os.W_OK):
        raise StoreError(f"{path} cannot be created: its directory is read-only or not accessible.")
    with _creation_lock(path):
        if os.path.lexists(path):
            return None  # made by another process while this one waited
        return _build_and_link(path, password, token, kdf)


_CREATION_WAIT_S = 60.0


@contextmanager
def _creation_lock(path: Path) -> Iterator[None]:
    """Creations in one directory one at a time (a lock on the directory itself), so a process that finds the
    store made while it waited opens it instead of making a key and a file it would throw away."""
    import fcntl
    import time

    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error(path, exc, "created") from None
    try:
        deadline = time.monotonic() + _CREATION_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(f"Another process has been creating a wallet store in {path.parent} for "
                                     f"{_CREATION_WAIT_S:.0f} s (waiting for a PIN?); run the command again.") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _build_and_link(path: Path, password: str, token: TokenSettings | None,
                    kdf: dict[str, Any] | None) -> tuple[Header, bytes] | None:
    header, dek = envelope.new_header(password, token, kdf)  # KDF and token first: no file before they work
    cipher = RecordCipher(dek, header.store_id)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.new")
    won = False
    try:
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(_uri(temp, "rw"), uri=True, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    conn.execute(statement)
                tag = base64.b64encode(cipher.state_tag(0, 0)).decode("ascii")
                conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", [
                    ("header", header.to_json()), ("state", json.dumps({"gen": 0, "removed": 0, "tag": tag}))])
                conn.execute("COMMIT")
            finally:
                conn.close()  # the last connection: the WAL is checkpointed into the file and removed
            _fsync(temp)
            lock = path.with_name(path.name + LOCK_SUFFIX)
            try:  # made now, so a daemon on this store finds it even if the directory later becomes read-only
                os.close(os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError:
                pass
            won = _link(temp, path)
            _fsync(path.parent, directory=True)
        except sqlite3.Error as exc:
            raise _sqlite_error(path, exc) from None
        except OSError as exc:
            raise _os_error(path, exc, "created") from None
    except BaseException:
        if token is not None and header.token is not None:
            envelope.discard_token_key(token, header.token.key_id)
        raise
    finally:
        _remove_quietly(temp, Path(f"{temp}-wal"), Path(f"{temp}-shm"), Path(f"{temp}-journal"))
    if not won:
        if token is not None and header.token is not None:
            envelope.discard_token_key(token, header.token.key_id)
        return None
    return header, dek


def _link(temp: Path, path: Path) -> bool:
    """Put the finished store `temp` at `path` unless a store is already there; True when it was put."""
    try:
        os.link(temp, path)  # atomic, and never replaces a store another process just made
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
    # A file system without hard links: a rename, checked first (a race here is narrow, not atomic).
    if os.path.lexists(path):
        return False
    os.rename(temp, path)
    return True


@contextmanager
def daemon_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the store (`wallet.dat.daemon.lock`) while the block runs.

    A second holder is refused at once with a StoreError naming the first one's pid. In a read-only
    directory with no lock file, the directory itself is locked. Other commands never take it.
    """
    import fcntl

    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    writable = True
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise _os_error(lock_path, exc) from None
        writable = False
        try:
            fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = b""
        try:
            holder = os.pread(fd, 32, 0).strip()
        except OSError:
            pass
        os.close(fd)
        pid = f" (pid {holder.decode()})" if holder.isdigit() else ""
        raise StoreError(f"Another tatum-kms daemon is already running on {path}{pid}; stop it first.") from None
    try:
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
