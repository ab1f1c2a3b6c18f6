"""The wallet store (wallet.dat): an SQLite database with one AES-GCM-sealed row per wallet.

Signature id, chain and testnet flag are clear columns so wallets can be listed without
decrypting; everything else (mnemonic, xpub, keys, address) is sealed. Every change is one
SQLite transaction, so concurrent writers all land and a killed process leaves the store as
before or as after.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from kms import envelope
from kms.envelope import Header, RecordCipher, TokenSettings
from kms.errors import StoreError, UnknownWallet

DEFAULT_PATH = Path.home() / ".tatumrc" / "wallet.dat"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_MAGIC = b"U2FsdGVkX1"  # base64 of "Salted__": the original tool's CryptoJS file
_BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wallets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    signature_id TEXT NOT NULL UNIQUE,
    chain TEXT NOT NULL,
    testnet INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS wallets_by_chain ON wallets (chain, testnet);
"""


def new_signature_id() -> str:
    """A new signature id: a random UUID4, as the original makes them."""
    return str(uuid.uuid4())


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The store path: `--path` if given, else ~/.tatumrc/wallet.dat."""
    return Path(path).expanduser() if path else DEFAULT_PATH


def file_kind(path: Path) -> str:
    """'missing', 'empty', 'store' (ours), 'legacy' (the original's CryptoJS file) or 'unknown'."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "unknown"
    if not head:
        return "empty"
    if head == _SQLITE_MAGIC:
        return "store"
    if head.lstrip().startswith(_LEGACY_MAGIC):
        return "legacy"
    return "unknown"


def _check_kind(path: Path) -> None:
    kind = file_kind(path)
    if kind == "legacy":
        raise StoreError(
            f"{path} is a wallet.dat of the original tatum-kms. Migrate it with "
            f"`tatum-kms import --from {path} --path NEW_PATH`, then use --path NEW_PATH."
        )
    if kind in ("unknown", "empty"):
        raise StoreError(f"{path} is not a tatum-kms wallet store (or it is corrupt).")


def _connect(path: Path, create: bool, fresh: bool = False) -> sqlite3.Connection:
    """An SQLite connection in autocommit mode (transactions are explicit), WAL, long busy timeout.

    `fresh` means this call creates the file: it is made owner-only before anything is written.
    """
    mode = "rwc" if create else "rw"
    try:
        conn = sqlite3.connect(
            f"file:{path}?mode={mode}", uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000
        )
        if fresh:
            os.chmod(path, 0o600)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if create:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a tatum-kms wallet store (or it is corrupt): {exc}.") from None
    return conn


def read_header(path: Path) -> Header | None:
    """The header of an existing store, readable without the password (None when there is no store)."""
    if file_kind(path) == "missing":
        return None
    _check_kind(path)
    conn = _connect(path, create=False)
    try:
        header = _existing_header(conn)
    finally:
        conn.close()
    if header is None:
        raise StoreError(f"{path} is not a tatum-kms wallet store (it has no header).")
    return header


class WalletStore:
    """An unlocked store. Hazmat: `get` and `export` return plaintext secrets; only the CLI's
    `getmanagedwallet`, `getprivatekey` and `export` and the daemon's signer call them."""

    def __init__(self, path: Path, conn: sqlite3.Connection, header: Header, dek: bytes) -> None:
        self.path = path
        self.header = header
        self._conn = conn
        self._dek = dek
        self._cipher = RecordCipher(dek)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, password: str, token: TokenSettings | None, *, create: bool = False) -> WalletStore:
        """Open (or with `create`, create if absent) and unlock the store at `path`.

        Raises StoreError for a missing or foreign file, WrongPassword / TokenError when the
        secrets do not open it. Nothing is written unless the store is being created.
        """
        kind = file_kind(path)
        if kind == "missing" and not create:
            raise StoreError(f"No wallet store at {path}: create one with generatemanagedwallet.")
        if kind not in ("missing", "store") and not (kind == "empty" and create):
            _check_kind(path)  # legacy, foreign or empty: says what to do
        if kind == "missing":
            _make_private_dir(path.parent)
        conn = _connect(path, create=create, fresh=kind == "missing")
        try:
            header = _existing_header(conn)
            if header is None and not create:
                raise StoreError(f"{path} is not a tatum-kms wallet store (it has no header).")
            dek = None
            if header is None:  # new, or being created by another process right now
                header, dek = _create_header(conn, password, token)
            if dek is None:
                dek = envelope.open_dek(header, password, token)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, header, dek)

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

    # -- reading -----------------------------------------------------------------------------

    def ids(self, chain: str | None = None, testnet: bool | None = None) -> list[str]:
        """Signature ids in insertion order, optionally of one chain and network (no decryption)."""
        query, args = "SELECT signature_id FROM wallets", []
        conditions = []
        if chain is not None:
            conditions.append("chain = ?")
            args.append(chain)
        if testnet is not None:
            conditions.append("testnet = ?")
            args.append(int(testnet))
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        return [row[0] for row in self._conn.execute(query + " ORDER BY seq", args)]

    def get(self, signature_id: str) -> dict[str, Any]:
        """The wallet as the original stores it: its fields, then `chain` and `testnet` (hazmat)."""
        row = self._conn.execute(
            "SELECT signature_id, chain, testnet, nonce, sealed FROM wallets WHERE signature_id = ?",
            (signature_id,),
        ).fetchone()
        if row is None:
            raise UnknownWallet(f"No such wallet for signatureId '{signature_id}'.")
        return self._open_row(row)

    def find(self, signature_id: str) -> dict[str, Any] | None:
        """Like `get`, but None for an unknown signature id."""
        try:
            return self.get(signature_id)
        except UnknownWallet:
            return None

    def export(self) -> dict[str, dict[str, Any]]:
        """Every wallet, keyed by signature id, in the original's export shape (hazmat)."""
        rows = self._conn.execute("SELECT signature_id, chain, testnet, nonce, sealed FROM wallets ORDER BY seq")
        return {row[0]: self._open_row(row) for row in rows}

    def _open_row(self, row: tuple[Any, ...]) -> dict[str, Any]:
        signature_id, chain, testnet, nonce, sealed = row
        fields = self._cipher.open(signature_id, chain, bool(testnet), nonce, sealed)
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
        otherwise an existing id is an error and nothing is written.
        """
        rows = []
        for signature_id, chain, testnet, fields in wallets:
            secret_fields = {k: v for k, v in fields.items() if k not in ("chain", "testnet")}
            nonce, sealed = self._cipher.seal(signature_id, chain, testnet, secret_fields)
            rows.append((signature_id, chain, int(testnet), nonce, sealed))
        verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
        with self._transaction():
            before = self._conn.total_changes
            try:
                self._conn.executemany(
                    f"{verb} INTO wallets (signature_id, chain, testnet, nonce, sealed) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError:
                raise StoreError("A wallet with that signature id is already in the store.") from None
            return self._conn.total_changes - before

    def remove(self, signature_id: str) -> None:
        """Delete one wallet; UnknownWallet when there is none with that id."""
        with self._transaction():
            cursor = self._conn.execute("DELETE FROM wallets WHERE signature_id = ?", (signature_id,))
            if cursor.rowcount == 0:
                raise UnknownWallet(f"No such wallet for signatureId '{signature_id}'.")

    def rewrap(self, password: str, token: TokenSettings | None, *, new_token_key: bool = False) -> Header:
        """Wrap the DEK under a new password and/or token key; one header write, O(1) in wallets.

        Returns the previous header (so the caller can retire an old token key after commit).
        """
        new_header = envelope.seal_dek(self.header, self._dek, password, token, new_token_key=new_token_key)
        with self._transaction():
            current = _existing_header(self._conn)
            if current != self.header:
                raise StoreError("The store's keys were changed by another process; run the command again.")
            self._conn.execute("UPDATE meta SET value = ? WHERE name = 'header'", (new_header.to_json(),))
        previous, self.header = self.header, new_header
        return previous

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _make_private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)


def _existing_header(conn: sqlite3.Connection) -> Header | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'header'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None  # the creating process has not committed the schema yet
        raise StoreError(f"The wallet store cannot be read: {exc}.") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"The wallet store is corrupt: {exc}.") from None
    return Header.from_json(row[0]) if row else None


def _create_header(
    conn: sqlite3.Connection, password: str, token: TokenSettings | None
) -> tuple[Header, bytes | None]:
    """Create schema and header unless another process just did; return the header in force and,
    when this call made it, its DEK."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        header, dek = _existing_header(conn), None
        if header is None:
            header, dek = envelope.new_header(password, token)
            conn.execute("INSERT INTO meta (name, value) VALUES ('header', ?)", (header.to_json(),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return header, dek
