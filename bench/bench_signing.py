"""Signing and derivation figures for the chain modules; run by hand: `.venv/bin/python bench/bench_signing.py`.

Prints, on one core: ETH legacy signatures/s for a complete payload (no fill-ins; target
>= 7,000/s), BTC 1-input P2WPKH signatures/s, and microseconds per `generate_private_key` (ETH),
`address_from_xpub` (BTC, ETH) and `private_key_from_mnemonic` (ETH, seed cached), plus the
uncached first derivation and the import time of `chains.evm`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from chains.base import PendingTransaction
from chains.bitcoin import BTC
from chains.evm import ETH
from chains.primitives.hd import account_node

MQ = ("quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
      "leaf good forward erupt split divert bread kitten")


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
    rounds = []
    calls = max(1, int(calls * seconds / elapsed))
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return min(rounds)


def eth_pending() -> PendingTransaction:
    payload = {"from": 0, "to": "0x687422eEA2cB73B5d3e242bA5456b782919AFc85", "value": "1000000000000000",
               "data": "0xa9059cbb" + "00" * 64, "gas": "60000", "gasPrice": "20000000000", "nonce": 58604750,
               "chainId": 1}
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": "ETH", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload)})


def btc_pending(wif: str) -> PendingTransaction:
    from chains.bitcoin.tx import p2wpkh_script
    from chains.primitives.secp import PrivateKey, b58check_decode, hash160

    script = p2wpkh_script(hash160(PrivateKey(b58check_decode(wif)[1:33]).public_key.format())).hex()
    payload = {"version": 2, "nLockTime": 0,
               "inputs": [{"prevTxId": os.urandom(32).hex(), "outputIndex": 0, "sequenceNumber": 4294967295,
                           "script": "", "output": {"satoshis": 100_000, "script": script}}],
               "outputs": [{"satoshis": 90_000, "script": script}]}
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "BTC", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload)})


def main() -> None:
    eth_key = ETH.private_key_from_mnemonic(MQ, 1, False)
    eth_xpub = ETH.wallet_from_mnemonic(MQ, False)["xpub"]
    btc_wif = BTC.private_key_from_mnemonic(MQ, 1, False)
    btc_xpub = BTC.wallet_from_mnemonic(MQ, False)["xpub"]
    eth_tx, btc_tx = eth_pending(), btc_pending(btc_wif)
    counter = iter(range(10**9))

    eth_sign = per_call(lambda: ETH.sign(eth_tx, [eth_key], False, None))  # type: ignore[arg-type]
    btc_sign = per_call(lambda: BTC.sign(btc_tx, [btc_wif], False, None))  # type: ignore[arg-type]
    print(f"ETH legacy sign (complete payload): {1 / eth_sign:,.0f} signatures/s ({eth_sign * 1e6:.1f} µs)")
    print(f"BTC 1-input P2WPKH sign:            {1 / btc_sign:,.0f} signatures/s ({btc_sign * 1e6:.1f} µs)")
    print(f"ETH generate_private_key:           {per_call(lambda: ETH.generate_private_key(False)) * 1e6:.1f} µs")
    print(f"BTC address_from_xpub:              "
          f"{per_call(lambda: BTC.address_from_xpub(btc_xpub, next(counter) % 2**31, False)) * 1e6:.1f} µs")
    print(f"ETH address_from_xpub:              "
          f"{per_call(lambda: ETH.address_from_xpub(eth_xpub, next(counter) % 2**31, False)) * 1e6:.1f} µs")
    print(f"ETH private_key_from_mnemonic:      "
          f"{per_call(lambda: ETH.private_key_from_mnemonic(MQ, next(counter) % 2**31, False)) * 1e6:.1f} µs"
          " (seed and account node cached)")

    def uncached() -> None:
        account_node.cache_clear()
        ETH.private_key_from_mnemonic(MQ, 0, False)

    print(f"ETH private_key_from_mnemonic, cold: {per_call(uncached, 0.5) * 1e3:.2f} ms (BIP39 PBKDF2 + path)")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import chains.evm"], check=True)
    print(f"python -c 'import chains.evm':      {(time.perf_counter() - started) * 1e3:.0f} ms wall")


if __name__ == "__main__":
    main()
