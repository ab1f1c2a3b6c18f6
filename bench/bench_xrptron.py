"""XRP and TRON signing figures on one core; run by hand: `.venv/bin/python bench/bench_xrptron.py`.

Prints signatures/s for: an XRP Payment signed with an ed25519 and with a secp256k1 seed (target >= 1,000/s),
xrpl-py's own `sign` on the same payment for comparison, and a TRON TransferContract and a TRC-20 transfer with
their TronWeb checks (target >= 5,000/s); each with the cost of its first call (imports, seed derivation).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from chains.base import PendingTransaction
from chains.tron import TRON
from chains.xrp import XRP

TARGETS = {"XRP": 1_000, "TRON": 5_000}


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Best-of-three mean CPU seconds per call (this process, one core), each round running about `seconds`."""
    calls = 1
    while True:
        start = time.process_time()
        for _ in range(calls):
            fn()
        elapsed = time.process_time() - start
        if elapsed > 0.05:
            break
        calls *= 4
    rounds = []
    calls = max(1, int(calls * seconds / elapsed))
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            fn()
        rounds.append((time.process_time() - start) / calls)
    return min(rounds)


def pending(chain: str, payload: dict[str, object]) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": chain, "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload)})


def xrp_payment(account: str) -> dict[str, object]:
    return {"TransactionType": "Payment", "Account": account, "Destination": "rDsbeomae4FXwgQTJp9Rs64Qg9vDiTCdBv",
            "Amount": "1000000", "Fee": "12", "Sequence": 4815162, "LastLedgerSequence": 4815182,
            "DestinationTag": 42, "Flags": 2147483648}


def cases_by_name() -> list[tuple[str, Callable[[], object]]]:
    from kms.sandbox.ledgers.tron import address_hex, unsigned_transaction

    ed_secret, ed_address = XRP.generate_private_key(True)
    secp = XRP.generate_wallet(True, managed=False)
    ed_tx, secp_tx = pending("XRP", xrp_payment(ed_address)), pending("XRP", xrp_payment(secp["address"]))
    tron_key, tron_address = TRON.generate_private_key(True)
    owner = address_hex(tron_address)
    transfer = pending("TRON", unsigned_transaction("TransferContract", {
        "amount": 1_500_000, "owner_address": owner, "to_address": "41" + "ab" * 20}, lifetime_ms=10**9))
    data = "a9059cbb" + ("cd" * 20).rjust(64, "0") + hex(25_000_000)[2:].rjust(64, "0")
    token = pending("TRON", unsigned_transaction("TriggerSmartContract", {
        "data": data, "owner_address": owner, "contract_address": "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"},
        fee_limit=100_000_000, lifetime_ms=10**9))
    return [
        ("XRP Payment, ed25519 seed", lambda: XRP.sign(ed_tx, [ed_secret], True, None)),  # type: ignore[arg-type]
        ("XRP Payment, secp256k1 seed", lambda: XRP.sign(secp_tx, [secp["secret"]], True, None)),  # type: ignore
        ("TRON TransferContract", lambda: TRON.sign(transfer, [tron_key], True, None)),  # type: ignore[arg-type]
        ("TRON TRC-20 (TriggerSmartContract)", lambda: TRON.sign(token, [tron_key], True, None)),  # type: ignore
    ]


def xrpl_py_reference() -> float:
    """Seconds per signature of xrpl-py's own `sign` (wallet made once), on the secp256k1 payment."""
    from xrpl.core.binarycodec import encode
    from xrpl.models.transactions.transaction import Transaction
    from xrpl.transaction import sign
    from xrpl.wallet import Wallet

    secp = XRP.generate_wallet(True, managed=False)
    wallet, tx = Wallet.from_seed(secp["secret"]), Transaction.from_xrpl(xrp_payment(secp["address"]))
    return per_call(lambda: encode(sign(tx, wallet).to_xrpl()), seconds=0.5)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    for name, fn in cases_by_name():
        start = time.process_time()
        fn()  # imports (xrpl for the first XRP case) and seed caches, outside the timing
        first = time.process_time() - start
        seconds = per_call(fn)
        target = TARGETS[name.split()[0]]
        verdict = "ok" if 1 / seconds >= target else "BELOW TARGET"
        print(f"{name:36s} {1 / seconds:7,.0f} signatures/s ({seconds * 1e6:5.0f} µs; first call {first * 1e3:4.0f} ms)"
              f"  target {target:,}/s: {verdict}")
    reference = xrpl_py_reference()
    print(f"{'xrpl-py sign (secp256k1, reference)':36s} {1 / reference:7,.0f} signatures/s ({reference * 1e6:5.0f} µs)")


if __name__ == "__main__":
    main()
