"""SOL and ALGO signing figures on one core; run by hand: `.venv/bin/python bench/bench_solalgo.py`.

Prints signatures per second of `sign` for a queued SOL transfer (the blockhash answered by an in-memory
node, so the figure is the KMS's own work: JSON, message checks, key parsing, ed25519, wire encoding) and
for an ALGO payment (algosdk 1.16 JSON rebuilt, msgpack, ed25519), each with a key in both of its wallet
encodings where the chain has two; targets >= 5,000/s each, in CPU time of one core. Also the import time
(wall clock) of each chain module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from algosdk import account

from chains.algorand import ALGO
from chains.base import PendingTransaction
from chains.solana import SOL
from kms.sandbox.ledgers.algorand import NETWORKS, algosdk116_json
from kms.sandbox.ledgers.solana import transfer_message

TARGET = 5000


class BlockhashNode:
    """Answers getLatestBlockhash at once, as a node would (without the network)."""

    def rpc(self, method: str, params: Any = (), **options: Any) -> Any:
        return {"context": {"slot": 1}, "value": {"blockhash": "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi",
                                                  "lastValidBlockHeight": 151}}


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Best-of-three mean CPU seconds per call (process time: on a shared machine, the core's own work),
    each round running about `seconds`."""
    calls = 1
    while True:
        start = time.process_time()
        for _ in range(calls):
            fn()
        elapsed = time.process_time() - start
        if elapsed > 0.05:
            break
        calls *= 4
    calls = max(1, int(calls * seconds / elapsed))
    rounds = []
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            fn()
        rounds.append((time.process_time() - start) / calls)
    return min(rounds)


def pending(chain: str, payload: str) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": chain, "hashes": ["w"],
                                         "serializedTransaction": payload})


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def report(name: str, seconds: float) -> None:
    rate = 1 / seconds
    print(f"{name:<40} {rate:>9,.0f}/s  ({seconds * 1e6:6.1f} µs)  target {TARGET:,}/s "
          f"{'met' if rate >= TARGET else 'NOT MET'}")


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    key_b58, address = SOL.generate_private_key(True)
    import base58

    key_hex = base58.b58decode(key_b58).hex()
    _, recipient = SOL.generate_private_key(True)
    sol = pending("SOL", json.dumps({"txData": transfer_message(address, recipient, 1_000_000)}))
    node = BlockhashNode()
    SOL.sign(sol, [key_b58], True, node)  # imports solders
    report("SOL sign (transfer, base58 key)", per_call(lambda: SOL.sign(sol, [key_b58], True, node)))
    report("SOL sign (transfer, 128-hex key)", per_call(lambda: SOL.sign(sol, [key_hex], True, node)))

    secret, sender = ALGO.generate_private_key(True)
    genesis_id, genesis_hash = NETWORKS[True]
    algo = pending("ALGO", json.dumps(algosdk116_json(
        sender, account.generate_account()[1], amount=1_000_000, fee=1000, first_round=30_000_000,
        last_round=30_001_000, genesis_id=genesis_id, genesis_hash=genesis_hash, note=b"invoice 42")))
    ALGO.sign(algo, [secret], True, node)
    report("ALGO sign (payment with note)", per_call(lambda: ALGO.sign(algo, [secret], True, node)))

    for module in ("chains.solana", "chains.algorand"):
        print(f"import {module:<33} {import_time(module) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
