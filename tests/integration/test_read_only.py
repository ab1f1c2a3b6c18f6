"""A store on a read-only file system: every command that only reads works, the daemon unlocks and signs, and
every write says "read-only", never "corrupt" (issue 9, item 13).

The directory is made read-only for real (see tests/read_only.py): a read-only bind mount in a private mount
namespace, so writes fail with EROFS even for root; as a non-root user without namespaces, chmod.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from tests.kms_process import KMS_BIN, MQ, PASSWORD
from tests.read_only import read_only
from tests.store_files import ETH_KEY, ETH_KEY_ADDRESS, Template, make_template
from tests.tatum_sandbox import Admin

MQ_ETH_ADDRESS_1 = "0xaac8c73348f1f92b2f9647e1e4f3cf14e2a8b3cb"  # spec §4.1


@dataclass
class ReadOnly:
    """The template store; `run` runs tatum-kms on it, read-only inside `with store.read_only():`."""

    template: Template
    home: Path
    how: str = "writable"
    prefix: list[str] | None = None

    @contextmanager
    def read_only(self) -> Iterator[None]:
        with read_only(self.template.path.parent) as (self.how, self.prefix):
            yield
        self.how, self.prefix = "writable", None

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str = "",
            path: Path | None = None) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TATUM_")}
        full = {**base, "HOME": str(self.home), "TATUM_KMS_PASSWORD": PASSWORD, **(env or {})}
        command = [*(self.prefix or []), KMS_BIN, *args, "--path", str(path or self.template.path)]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, env=full, timeout=120)

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.template.path.parent.iterdir()) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> ReadOnly:
    home = tmp_path / "home"
    home.mkdir()
    return ReadOnly(make_template(tmp_path / "store"), home)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    return json.loads(line)["error"]


def test_every_reading_command_works_on_a_read_only_store(store: ReadOnly) -> None:
    expected = json.loads(store.run("export").stdout)
    before = store.files()
    with store.read_only():
        check_reads(store, expected)
    assert store.files() == before  # nothing written, no -wal or -shm left


def check_reads(store: ReadOnly, expected: dict) -> None:
    exported = store.run("export")
    assert exported.returncode == 0, f"{store.how}: {exported.stderr}"
    assert json.loads(exported.stdout) == expected
    t = store.template
    assert json.loads(store.run("getaddress", t.mnemonic_id, "1").stdout) == {"address": MQ_ETH_ADDRESS_1}
    assert json.loads(store.run("getmanagedwallet", t.mnemonic_id).stdout)["mnemonic"] == MQ
    assert json.loads(store.run("getprivatekey", t.key_id, "0").stdout) == {"privateKey": ETH_KEY}
    report = json.loads(store.run("report", t.key_id).stdout)
    assert report["wallets"][t.key_id]["type"] == "PRIVATE_KEY"
    config = store.run("checkconfig")
    assert config.returncode == 0, config.stderr
    assert "Wallet store format              : 2" in config.stdout


def test_every_write_says_read_only_and_not_corrupt(store: ReadOnly) -> None:
    before = store.files()
    t = store.template
    exported = store.template.path.parent.parent / "export.json"
    exported.write_text(json.dumps({"5a1b2c3d-0000-4000-8000-000000000001": {
        "chain": "ETH", "testnet": True, "privateKey": ETH_KEY}}))
    with store.read_only():
        check_writes(store, exported)
    assert store.files() == before
    assert json.loads(store.run("getprivatekey", t.key_id, "0").stdout) == {"privateKey": ETH_KEY}


def check_writes(store: ReadOnly, exported: Path) -> None:
    t = store.template
    for args, stdin in [
        (["generatemanagedwallet", "ETH"], ""),
        (["storemanagedprivatekey", "ETH"], ETH_KEY + "\n"),
        (["storemanagedwallet", "BTC"], MQ + "\n"),
        (["generatemanagedprivatekeybatch", "ETH", "3"], ""),
        (["removewallet", t.key_id], ""),
        (["changepassword"], "a new password\n"),
        (["import", "--from", str(exported)], ""),
    ]:
        message = one_error(store.run(*args, stdin=stdin))
        assert "read-only" in message and "corrupt" not in message, (store.how, args, message)


def test_a_new_store_in_a_read_only_directory_is_refused_and_nothing_is_left(store: ReadOnly) -> None:
    before = store.files()
    with store.read_only():
        result = store.run("generatemanagedprivatekeybatch", "ETH", "1", path=store.template.path.parent / "new.dat")
        assert "read-only" in one_error(result), store.how
    assert store.files() == before


def test_changes_not_yet_checkpointed_are_read_from_the_wal(store: ReadOnly) -> None:
    """A store in use when its file system went read-only still has a -wal and -shm: they are read, not skipped."""
    holder = sqlite3.connect(store.template.path)  # keeps the WAL from being checkpointed away
    try:
        holder.execute("SELECT COUNT(*) FROM wallets").fetchone()
        added = store.run("storemanagedwallet", "BTC", stdin=MQ + "\n")
        assert added.returncode == 0, added.stderr
        new_id = json.loads(added.stdout)["signatureId"]
        assert (store.template.path.parent / "wallet.dat-wal").stat().st_size > 0
        with store.read_only():
            exported = store.run("export")
            assert exported.returncode == 0, f"{store.how}: {exported.stderr}"
            assert new_id in json.loads(exported.stdout)
    finally:
        holder.close()


@pytest.mark.parametrize("lock_file", ["made with the store", "absent"])
def test_the_daemon_unlocks_and_signs_from_a_read_only_store(store: ReadOnly, sandbox: Admin, lock_file: str,
                                                             tmp_path: Path) -> None:
    if lock_file == "absent":  # a store made before lock files: the read-only directory itself is locked
        (store.template.path.parent / "wallet.dat.daemon.lock").unlink()
    sandbox.fund(ETH_KEY_ADDRESS, 10**18)
    recipient = Account.create().address
    pending = sandbox.enqueue({"chain": "ETH", "hashes": [store.template.key_id],
                               "serializedTransaction": json.dumps({"to": recipient, "value": "12345"})})
    before = store.files()
    env = {"TATUM_API_KEY": "read-only-test-key", "TATUM_API_URL": sandbox.url}
    with store.read_only():
        # The audit log (default: beside the store) must be writable: a daemon signs nothing it cannot audit.
        refused = store.run("daemon", "--runOnce", "--testnet", "--chain=ETH", env=env)
        assert refused.returncode == 1 and "--auditLog" in refused.stderr, f"{store.how}: {refused.stderr}"
        result = store.run("daemon", "--runOnce", "--testnet", "--chain=ETH", f"--auditLog={tmp_path}/audit.log",
                           env=env)
        assert result.returncode == 0, f"{store.how}: {result.stderr}"
    assert sandbox.balance(recipient) == 12345
    assert [b["signatureId"] for b in sandbox.get("broadcasts")] == [pending]
    assert store.files() == before
