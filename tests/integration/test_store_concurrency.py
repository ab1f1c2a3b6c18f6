"""Concurrent writers and killed writers: nothing lost, the store always opens."""

from __future__ import annotations

import json
import signal
import time

from tests.kms_process import Kms


def test_four_processes_adding_25_keys_each_end_with_all_100(kms: Kms) -> None:
    kms.ok("generatemanagedwallet", "BTC")  # the store exists; the writers race on adding only
    writers = [kms.start("generatemanagedprivatekeybatch", "ETH", "25") for _ in range(4)]
    printed = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        printed += [json.loads(line)["signatureId"] for line in out.splitlines()]
    assert len(printed) == len(set(printed)) == 100
    stored = kms.ok("export")
    assert set(printed) <= set(stored) and len(stored) == 101


def test_four_processes_creating_the_store_at_once_agree_on_one_store(kms: Kms) -> None:
    writers = [kms.start("generatemanagedwallet", "ETH") for _ in range(4)]
    ids = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        ids.append(json.loads(out)["signatureId"])
    assert sorted(kms.ok("export")) == sorted(ids)


def test_writer_killed_mid_batch_leaves_a_store_holding_every_printed_id(kms: Kms) -> None:
    writer = kms.start("generatemanagedprivatekeybatch", "ETH", "200000")
    printed = []
    deadline = time.monotonic() + 60
    while len(printed) < 3000 and time.monotonic() < deadline:  # a few committed chunks, then kill
        line = writer.stdout.readline()
        if not line:
            break
        printed.append(json.loads(line)["signatureId"])
    writer.send_signal(signal.SIGKILL)
    rest, _ = writer.communicate(timeout=30)
    printed += [json.loads(line)["signatureId"] for line in rest.splitlines() if line.endswith("}")]
    assert writer.returncode == -signal.SIGKILL
    assert len(printed) >= 3000
    stored = kms.ok("export")
    assert set(printed) <= set(stored)
    assert len(stored) < 200000  # it really was killed mid-batch
    assert kms.ok("generatemanagedwallet", "BTC")["signatureId"]  # and the store still takes writes


def test_a_second_daemon_on_the_same_store_is_refused_while_cli_commands_go_on(kms: Kms) -> None:
    kms.ok("generatemanagedwallet", "ETH", "--testnet")
    unreachable = {"TATUM_API_KEY": "lock-test-key", "TATUM_API_URL": "http://127.0.0.1:9"}
    first = kms.start("daemon", "--testnet", "--chain=ETH", "--period", "3600", env=unreachable)
    lock = kms.store.with_name("wallet.dat.daemon.lock")
    try:
        deadline = time.monotonic() + 60
        while lock.read_text().strip() != str(first.pid):  # the first daemon holds the lock once it wrote its pid
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        line = kms.fails("daemon", "--testnet", "--chain=ETH", "--period", "3600", env=unreachable, timeout=60)
        assert "already running" in line and f"pid {first.pid}" in line
        assert kms.fails("daemon", "--testnet", "--runOnce", env=unreachable, timeout=60) == line
        added = kms.ok("generatemanagedwallet", "BTC", "--testnet")["signatureId"]  # the CLI is not locked out
        assert added in kms.ok("export")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    after = kms.run("daemon", "--testnet", "--runOnce", "--chain=ETH", env=unreachable, timeout=120)
    assert "already running" not in after.stderr  # the lock went with the process
