"""Signatures per second of EGLD, BNB and FLOW on one core; run by hand: `.venv/bin/python bench/bench_egldflowbnb.py`.

Each figure is a whole `Chain.sign` of a typical pending transaction (payload parsed, node answers used, bytes
encoded, signed, `txData` written), against an in-memory node that answers at once, so it is our CPU only.
FLOW's proposer and payer signatures come from Tatum; here that answer is a constant. Targets (issue 14):
EGLD >= 5,000/s, FLOW and BNB >= 3,000/s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from chains.base import PendingTransaction
from chains.bnb import BNB
from chains.egld import EGLD
from chains.flow import FLOW

MQ = ("quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
      "leaf good forward erupt split divert bread kitten")


class InstantNode:
    """A `chains.base.Node` answering from a table keyed by path prefix."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def _answer(self, path: str) -> Any:
        for prefix, answer in self.answers.items():
            if path.startswith(prefix):
                return answer
        raise KeyError(path)

    def get(self, path: str, *, endpoint: str = "tatum", constant: bool = False) -> Any:
        return self._answer(path)

    def post(self, path: str, body: Any, *, endpoint: str = "tatum", idempotent: bool = False) -> Any:
        return self._answer(path)

    def rpc(self, *args: Any, **kwargs: Any) -> Any:
        raise KeyError("rpc")


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Best-of-three mean seconds per call, each round running about `seconds`."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > 0.05:
            break
        calls *= 4
    calls = max(1, int(calls * seconds / elapsed))
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return min(rounds)


def pending(chain: str, payload: Any, index: int | None = None) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": chain, "hashes": ["w"],
                                         "index": index, "serializedTransaction": json.dumps(payload)})


def egld() -> tuple[Callable[[], object], str]:
    key = EGLD.private_key_from_mnemonic(MQ, 1, False)
    node = InstantNode({
        "/network/config": {"data": {"config": {"erd_chain_id": "1", "erd_min_gas_price": 10**9,
                                                "erd_min_transaction_version": 1}}},
        "/address/": {"data": {"nonce": 42}},
        "/transaction/cost": {"data": {"txGasUnits": 68_500, "returnMessage": ""}},
    })
    tx = pending("EGLD", {"to": "erd1spyavw0956vq68xj8y4tenjpq2wd5a9p2c6j8gsz7ztyrnpxrruqzu66jx", "value": "0.25",
                          "data": "invoice 42"}, 1)
    return lambda: EGLD.sign(tx, [key], False, node), "transfer with data, gateway fill-ins"  # type: ignore[arg-type]


def bnb() -> tuple[Callable[[], object], str]:
    key = os.urandom(32).hex()
    sender = BNB.address_from_private_key(key, True)
    receiver = bytes(range(20))
    coins = [{"denom": "BNB", "amount": 1_700_000}]
    from chains.primitives import bech32

    payload = {"msg": {"inputs": [{"address": {"type": "Buffer", "data": list(bech32.decode("tbnb", sender) or b"")},
                                   "coins": coins}],
                       "outputs": [{"address": {"type": "Buffer", "data": list(receiver)}, "coins": coins}],
                       "aminoPrefix": "2A2C87FA"},
               "signMsg": {"inputs": [{"address": sender, "coins": coins}],
                           "outputs": [{"address": bech32.encode("tbnb", receiver), "coins": coins}]},
               "memo": "109429545"}
    node = InstantNode({"/api/v1/node-info": {"node_info": {"network": "Binance-Chain-Ganges"}},
                        "/v3/bnb/account/": {"account_number": 34, "sequence": 31}})
    tx = pending("BNB", payload)
    return lambda: BNB.sign(tx, [key], True, node), "MsgSend StdTx"  # type: ignore[arg-type]


def flow() -> tuple[Callable[[], object], str]:
    key = FLOW.private_key_from_mnemonic(MQ, 1, True)
    proposer = "0x" + "aa" * 8
    node = InstantNode({
        "/v3/flow/proposal/false": {"address": proposer, "keyId": 7},
        "/v3/flow/proposal/true": {"address": "0x" + "bb" * 8, "keyId": 0},
        "/v1/blocks": [{"header": {"id": "f0" * 32}}],
        "/v1/accounts/": {"keys": [{"index": "7", "sequence_number": "31"}]},
        "/v3/flow/sign": {"signature": "11" * 64},
    })
    tx = pending("FLOW", {"type": 2, "body": {"account": "0x4f09d8d43e4967b7", "to": "0x21cbd745a4df66f1",
                                              "amount": "0.001", "currency": "FLOW"}}, 1)
    return lambda: FLOW.sign(tx, [key], True, node), "TRANSFER, proposer/payer from Tatum"  # type: ignore[arg-type]


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    for name, target, make in (("EGLD", 5_000, egld), ("BNB", 3_000, bnb), ("FLOW", 3_000, flow)):
        sign, what = make()
        sign()
        seconds = per_call(sign)
        verdict = "meets" if 1 / seconds >= target else "BELOW"
        print(f"{name:5} {what:40} {1 / seconds:9,.0f} signatures/s ({seconds * 1e6:6.1f} µs)  "
              f"target {target:,}/s: {verdict}")


if __name__ == "__main__":
    main()
