"""The daemon's pipeline in-process: many wallets at once in Tatum's order per wallet, failures that hold back
only their own transaction, slow approvals that hold back no other wallet, and a stop that loses nothing.

The sandbox executes every ETH broadcast on its EVM, and each wallet's payloads carry consecutive nonces, so
a transaction sent out of order within its wallet is rejected there; the order is also read from the
sandbox's broadcast log. The store is a real unlocked wallet store.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms.approval import Approval
from kms.daemon import Daemon, DaemonOptions
from kms.eventlog import EventLog
from kms.sandbox.api import Sandbox
from kms.store import WalletStore, new_signature_id
from tests.inprocess import InProcessClient, on_a_thread

WALLETS = 12
PER_WALLET = 5
RECIPIENT = "0x687422eEA2cB73B5d3e242bA5456b782919AFc85"


class SlowClient(InProcessClient):
    """The in-process client with a random delay on every broadcast, so lanes really interleave."""

    def __init__(self, sandbox: Sandbox, delay: float = 0.004) -> None:
        super().__init__(sandbox)
        self.delay = delay

    def broadcast(self, path: str, body: dict[str, Any]) -> Any:
        time.sleep(random.uniform(0, self.delay))  # noqa: S311 - test jitter
        return super().broadcast(path, body)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WalletStore]:
    from eth_account import Account

    path = tmp_path_factory.mktemp("pipeline") / "wallet.dat"
    accounts = [Account.create() for _ in range(WALLETS)]
    with WalletStore.open(path, "pipeline test password", None, create=True) as created:
        created.put_many([(new_signature_id(), "ETH", True, {"privateKey": a.key.hex(), "address": a.address})
                          for a in accounts])
    opened = WalletStore.open(path, "pipeline test password", None)
    yield opened
    opened.close()


@pytest.fixture
def sandbox(store: WalletStore) -> Sandbox:
    sandbox = Sandbox(execute=True, testnet=True)
    evm = sandbox.ledger("ETH").evm("ETH")
    for signature_id in store.ids("ETH", True):
        evm.fund(store.get(signature_id)["address"], 10**18)
    return sandbox


def enqueue(sandbox: Sandbox, store: WalletStore, per_wallet: int = PER_WALLET) -> dict[str, list[str]]:
    """`per_wallet` transfers per wallet with consecutive nonces, interleaved across wallets as Tatum lists them."""
    evm = sandbox.ledger("ETH").evm("ETH")
    ids: dict[str, list[str]] = {signature_id: [] for signature_id in store.ids("ETH", True)}
    for n in range(per_wallet):
        for signature_id in ids:
            nonce = evm.nonce(store.get(signature_id)["address"]) + n
            payload = {"to": RECIPIENT, "value": "1000", "gas": 21000, "gasPrice": "20000000000", "nonce": nonce,
                       "chainId": evm.chain_id}
            tx = {"chain": "ETH", "hashes": [signature_id], "serializedTransaction": json.dumps(payload)}
            reply = sandbox.handle("POST", "/sandbox/pending", {}, json.dumps(tx).encode())
            ids[signature_id].append(reply.body["id"])
    return ids


def run_cycle(sandbox: Sandbox, store: WalletStore, client: InProcessClient | None = None, **options: Any
              ) -> tuple[Daemon, list[dict[str, str]], str]:
    out = io.StringIO()
    approve = awaited(options.pop("approve", None))
    daemon = Daemon(DaemonOptions(testnet=True, chains=("ETH",), run_once=True, **options), store,
                    client or SlowClient(sandbox), EventLog(out), approve=approve)
    try:
        failures = daemon.cycle()
    finally:
        daemon.close()
    return daemon, failures, out.getvalue()


def awaited(approve: Any) -> Any:
    """A blocking test approval function as the daemon awaits it (each call on a thread, as a server's would
    run concurrently)."""
    if approve is None:
        return None

    async def check(*args: Any) -> Any:
        return await on_a_thread(approve, *args)

    return check


def broadcast_order(sandbox: Sandbox) -> list[str]:
    return [record["signatureId"] for record in sandbox.handle("GET", "/sandbox/broadcasts", {}, b"").body]


def test_many_wallets_at_once_each_in_tatums_order_and_each_once(sandbox: Sandbox, store: WalletStore) -> None:
    ids = enqueue(sandbox, store)
    _, failures, log = run_cycle(sandbox, store, SlowClient(sandbox, delay=0.03), concurrency=32)
    assert failures == [], log
    sent = broadcast_order(sandbox)
    assert sorted(sent) == sorted(i for lane in ids.values() for i in lane)  # every one, none twice
    for lane in ids.values():
        assert [i for i in sent if i in lane] == lane
    assert sent != [i for n in range(PER_WALLET) for i in (lane[n] for lane in ids.values())] or WALLETS == 1


def test_a_wallet_whose_first_broadcast_fails_still_sends_the_rest_in_order(sandbox: Sandbox,
                                                                            store: WalletStore) -> None:
    ids = enqueue(sandbox, store, per_wallet=3)
    first_wallet = next(iter(ids))
    bad, *rest = ids[first_wallet]
    evm = sandbox.ledger("ETH").evm("ETH")
    listed = sandbox._pending  # noqa: SLF001 - the test edits what Tatum lists
    payloads = [json.loads(listed[i]["serializedTransaction"]) for i in ids[first_wallet]]
    # the first is signed for another chain (the node refuses it); the others take its nonce and the next
    listed[bad]["serializedTransaction"] = json.dumps({**payloads[0], "chainId": evm.chain_id + 1})
    for pending_id, payload, nonce in zip(rest, payloads[1:], (payloads[0]["nonce"], payloads[1]["nonce"]),
                                          strict=True):
        listed[pending_id]["serializedTransaction"] = json.dumps({**payload, "nonce": nonce})
    _, failures, log = run_cycle(sandbox, store, concurrency=4)
    assert [f["signatureId"] for f in failures] == [bad]
    assert "invalid chain id" in failures[0]["error"]
    sent = broadcast_order(sandbox)
    assert [i for i in sent if i in ids[first_wallet]] == rest  # executed in order after the failure
    others = [i for wallet, lane in ids.items() if wallet != first_wallet for i in lane]
    assert sorted(i for i in sent if i in others) == sorted(others)


def test_a_slow_approval_holds_back_no_other_wallet(sandbox: Sandbox, store: WalletStore) -> None:
    ids = enqueue(sandbox, store, per_wallet=1)
    slow = {lane[0] for lane in list(ids.values())[:2]}
    done: dict[str, float] = {}

    def approve(raw: dict[str, Any], url: str, method: str, timeout: float) -> Approval:
        if raw["id"] in slow:
            time.sleep(1.0)
        done[raw["id"]] = time.monotonic()
        return Approval(True, "approved (HTTP 200)")

    start = time.monotonic()
    _, failures, log = run_cycle(sandbox, store, concurrency=16, external_url="http://approvals.invalid",
                                 approve=approve)
    assert failures == []
    sent = broadcast_order(sandbox)
    assert set(sent[-2:]) == slow, "the slow approvals' transactions went last"
    fast = [done[i] - start for i in done if i not in slow]
    assert max(fast) < 0.5, "fast approvals waited for slow ones"
    assert time.monotonic() - start < 1.9, "approvals ran one after another"


def test_a_refused_approval_skips_only_that_transaction_of_the_wallet(sandbox: Sandbox, store: WalletStore) -> None:
    ids = enqueue(sandbox, store, per_wallet=1)
    refused = next(iter(ids.values()))[0]

    def approve(raw: dict[str, Any], url: str, method: str, timeout: float) -> Approval:
        return Approval(raw["id"] != refused, "approval server answered HTTP 403")

    _, failures, log = run_cycle(sandbox, store, external_url="http://approvals.invalid", approve=approve)
    assert failures == []  # a refusal is logged, not reported (as the original)
    assert refused not in broadcast_order(sandbox) and len(broadcast_order(sandbox)) == WALLETS - 1
    assert f"not-approved chain=ETH pending={refused}" in log


def test_a_stop_during_a_burst_loses_nothing_and_sends_nothing_twice(sandbox: Sandbox, store: WalletStore) -> None:
    ids = enqueue(sandbox, store, per_wallet=6)
    client = SlowClient(sandbox, delay=0.02)
    out = io.StringIO()
    daemon = Daemon(DaemonOptions(testnet=True, chains=("ETH",), concurrency=4), store, client, EventLog(out))
    stopper = threading.Timer(0.15, daemon.stop)
    stopper.start()
    try:
        failures = daemon.cycle()
    finally:
        daemon.close()
    sent = broadcast_order(sandbox)
    all_ids = [i for lane in ids.values() for i in lane]
    assert failures == []
    assert 0 < len(sent) < len(all_ids), "the stop came mid-burst"
    assert len(sent) == len(set(sent))
    signed_lines = [line for line in out.getvalue().splitlines() if " signed " in line]
    assert len(signed_lines) == len(sent), "every signed transaction was broadcast"
    still_pending = {tx["id"] for tx in sandbox.handle("GET", "/sandbox/pending", {}, b"").body if not tx.get("txId")}
    assert still_pending == set(all_ids) - set(sent), "what was not sent is still pending at Tatum"
    for lane in ids.values():  # each wallet stopped after a prefix of its transactions
        done = [i for i in lane if i in sent]
        assert done == lane[:len(done)]


def test_a_transaction_listed_again_is_not_broadcast_twice(sandbox: Sandbox, store: WalletStore) -> None:
    ids = enqueue(sandbox, store, per_wallet=1)
    one = next(iter(ids.values()))[0]
    out = io.StringIO()
    daemon = Daemon(DaemonOptions(testnet=True, chains=("ETH",)), store, InProcessClient(sandbox), EventLog(out))
    try:
        daemon.cycle()
        sandbox._pending[one].pop("txId")  # noqa: SLF001 - Tatum lists it again (a lagging completion)
        daemon.cycle()
    finally:
        daemon.close()
    assert broadcast_order(sandbox).count(one) == 1
    assert f"skipped chain=ETH pending={one} already broadcast by this daemon" in out.getvalue()


def test_the_concurrency_flag_is_validated(tmp_path: Path) -> None:
    from kms.cli import main

    for bad in ("0", "257", "-1", "x", "١"):
        assert main(["daemon", "--testnet", "--concurrency", bad, "--path", str(tmp_path / "w.dat")]) != 0


def test_wallets_waiting_for_approval_hold_no_sending_slot_and_at_most_concurrency_send_at_once(
        sandbox: Sandbox, store: WalletStore) -> None:
    # Four slots; three wallets' approvals take 1 s, every broadcast 150 ms. Were a waiting lane to hold a
    # slot, the nine other wallets would share the one slot left (9 x 150 ms, past the slow approvals); they
    # share the four instead and are all sent before the slow ones.
    ids = enqueue(sandbox, store, per_wallet=1)
    slow = {lane[0] for lane in list(ids.values())[:3]}
    sending, most = 0, 0
    lock = threading.Lock()

    class CountingClient(InProcessClient):
        def broadcast(self, path: str, body: dict[str, Any]) -> Any:
            nonlocal sending, most
            with lock:
                sending += 1
                most = max(most, sending)
            try:
                time.sleep(0.15)
                return super().broadcast(path, body)
            finally:
                with lock:
                    sending -= 1

    def approve(raw: dict[str, Any], url: str, method: str, timeout: float) -> Approval:
        if raw["id"] in slow:
            time.sleep(1.0)
        return Approval(True, "approved (HTTP 200)")

    start = time.monotonic()
    _, failures, _ = run_cycle(sandbox, store, CountingClient(sandbox), concurrency=4,
                               external_url="http://approvals.invalid", approve=approve)
    assert failures == [] and len(broadcast_order(sandbox)) == WALLETS
    assert set(broadcast_order(sandbox)[-3:]) == slow, "a wallet with its approval in hand waited for a slow one"
    assert most == 4, f"{most} broadcasts at once with --concurrency 4"
    assert time.monotonic() - start < 1.9


def test_each_transaction_is_on_disk_in_the_audit_log_before_its_broadcast_leaves(sandbox: Sandbox,
                                                                                   store: WalletStore) -> None:
    ids = enqueue(sandbox, store, per_wallet=3)

    class SlowDisk:
        """The audit log's interface; each sync takes 5 ms and makes durable every entry written before it."""

        def __init__(self) -> None:
            self.seq = self.synced = self.syncs = 0
            self.entry: dict[str, int] = {}

        def signed(self, pending: Any, approval: str | None, tx_data: str) -> int:
            self.seq += 1
            self.entry[pending.id] = self.seq
            return self.seq

        def durable(self, upto: int) -> None:
            time.sleep(0.005)
            self.synced, self.syncs = max(self.synced, upto), self.syncs + 1

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: 0

    audit = SlowDisk()
    early: list[str] = []

    class Checking(InProcessClient):
        def broadcast(self, path: str, body: dict[str, Any]) -> Any:
            if audit.synced < audit.entry[body["signatureId"]]:
                early.append(body["signatureId"])
            return super().broadcast(path, body)

    daemon = Daemon(DaemonOptions(testnet=True, chains=("ETH",), concurrency=8), store, Checking(sandbox),
                    EventLog(io.StringIO()), audit=audit)
    try:
        assert daemon.cycle() == []
    finally:
        daemon.close()
    assert len(broadcast_order(sandbox)) == len(audit.entry) == sum(len(lane) for lane in ids.values())
    assert early == [], "broadcast before its signed entry was on disk"
    assert audit.syncs < len(audit.entry), "one sync per transaction: entries written meanwhile were not grouped"


def test_an_approval_check_that_raises_approves_nothing(sandbox: Sandbox, store: WalletStore) -> None:
    enqueue(sandbox, store, per_wallet=1)

    def approve(raw: dict[str, Any], url: str, method: str, timeout: float) -> Approval:
        raise RuntimeError("the check broke")

    _, failures, log = run_cycle(sandbox, store, external_url="http://approvals.invalid", approve=approve)
    assert failures == [] and broadcast_order(sandbox) == []
    assert log.count("not-approved") == WALLETS and "approval check failed: RuntimeError" in log
