"""Test helper: small wallet stores made in-process (at the KDF floor, so each unlock is quick) and the
edits an attacker or a broken disk makes to them, done with the stdlib sqlite3 module."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms.envelope import MIN_KDF
from kms.store import WalletStore
from tests.kms_process import MQ, PASSWORD

FLOOR_KDF = {"name": "argon2id", **MIN_KDF}
ETH_KEY = "0xac12f9a2d0d1f06c7dc33a3e9c18f60fe1ca65c592d1e9345c994740f9e1971e"
ETH_KEY_ADDRESS = "0xefc395c295a90023d3e9afacb4399da3d332947b"


@dataclass(frozen=True)
class Template:
    """A store with an ETH mnemonic wallet, an ETH key wallet and one removed wallet, plus a copy of the
    same store taken before the removal (`before_removal`)."""

    path: Path
    before_removal: Path
    mnemonic_id: str
    key_id: str
    removed_id: str

    def copy_to(self, directory: Path) -> Path:
        """A copy of the store as `directory/wallet.dat` (the directory is made)."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "wallet.dat"
        shutil.copyfile(self.path, target)
        return target


def make_template(directory: Path) -> Template:
    """Build the template store in `directory` with the tests' password (no token)."""
    import chains

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "wallet.dat"
    eth = chains.get("ETH")
    with WalletStore.open(path, PASSWORD, None, create=True, kdf=FLOOR_KDF) as store:
        mnemonic_id = store.add("ETH", False, eth.wallet_from_mnemonic(MQ, False))
        key_id = store.add("ETH", True, {"privateKey": ETH_KEY, "address": ETH_KEY_ADDRESS})
        removed_id = store.add("ETH", False, eth.generate_wallet(False, managed=True))
    before = directory / "before-removal.dat"
    shutil.copyfile(path, before)
    with WalletStore.open(path, PASSWORD, None) as store:
        store.remove(removed_id)
    return Template(path, before, mnemonic_id, key_id, removed_id)


def sql(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Run statements on the store file directly, as anyone with write access to it can."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            text, args = (statement, ()) if isinstance(statement, str) else statement
            db.execute(text, args)
    finally:
        db.close()


def rows(path: Path, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def edit_header(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Apply `change` to the header's JSON object (or replace it with what `change` returns)."""
    (text,) = rows(path, "SELECT value FROM meta WHERE name = 'header'")[0]
    header = json.loads(text)
    replaced = change(header)
    value = replaced if replaced is not None else json.dumps(header)
    sql(path, ("UPDATE meta SET value = ? WHERE name = 'header'", (value,)))


def put_back_row(path: Path, old_copy: Path, signature_id: str) -> None:
    """Copy the row of `signature_id` from an older copy of the store into the store (a replay)."""
    (row,) = rows(old_copy, "SELECT signature_id, chain, testnet, gen, nonce, sealed FROM wallets "
                            "WHERE signature_id = ?", (signature_id,))
    sql(path, ("INSERT INTO wallets (signature_id, chain, testnet, gen, nonce, sealed) VALUES (?, ?, ?, ?, ?, ?)",
               row))
