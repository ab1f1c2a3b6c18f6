"""Test helper: original-format wallet.dat files made by the real `openssl enc` (what CryptoJS.AES writes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

# One wallet of every shape the original stores (public test data, not real funds).
MQ = (
    "quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
    "leaf good forward erupt split divert bread kitten"
)
WALLET_SHAPES: dict[str, dict[str, Any]] = {
    # generatemanagedwallet BTC: mnemonic + xpub
    "0a5a3c1e-2f6b-4c55-9a57-3c9a1c1d0b01": {
        "mnemonic": MQ,
        "xpub": "xpub6DtevPxud8AJUCqddtVqpqxAJvjFrYYvtt4co2kZF7ifPW3d5FJ3B9i5x7xL4CZirb2eNDEVqCtBgiGZR6Kk"
                "ee5RdHsDoJVbtxi946axjXJ",
        "chain": "BTC",
        "testnet": False,
    },
    # storemanagedprivatekey ETH: privateKey only
    "1b6b4d2f-3a7c-4d66-8b68-4dab2d2e1c02": {
        "privateKey": "0x4874827a55d87f2309c55b835af509e3427aa4d52321eeb49a2b93b5c0f8edfb",
        "chain": "ETH",
        "testnet": True,
    },
    # generatemanagedwallet XLM / XRP: address + secret (XLM: the keypair of seed bytes 1..32)
    "2c7c5e3a-4b8d-4e77-9c79-5ebc3e3f2d03": {
        "address": "GB43KVROR7TFJ6KAPCYRF2FJROTZAH4FHLTJLPWX4DRZCC5NASLGITR6",
        "secret": "SAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQTCQKRMFYYDENBWHA5DYPSBF5K",
        "chain": "XLM",
        "testnet": False,
    },
    "3d8d6f4b-5c9e-4f88-8d8a-6fcd4f403e04": {
        "address": "rKHuaCVSzJCFh43ji9EvFAysmu1KHdMb8N",
        "secret": "shunwft7BwrFHdcXmAA87CazLsRMY",
        "chain": "XRP",
        "testnet": True,
    },
    # generatemanagedprivatekeybatch: privateKey + address
    "4e9e7a5c-6daf-4a99-9e9b-7ade5a514f05": {
        "privateKey": "cQ1YZMep3CiAnMTA9y62ha6BjGaaTFsTvtDuGmucGvpAVmS89khV",
        "address": "tb1q9x2gqftyxterwt0k6ehzrm2gkzthjly677ucyr",
        "chain": "BTC",
        "testnet": True,
    },
}


def openssl_encrypt(plaintext: bytes, password: str) -> bytes:
    """`openssl enc -aes-256-cbc -md md5 -a -A` of `plaintext`: the format CryptoJS.AES.encrypt(...).toString() has.

    The password goes through the environment, never the command line.
    """
    result = subprocess.run(
        ["openssl", "enc", "-aes-256-cbc", "-md", "md5", "-a", "-A", "-pass", "env:TATUM_TEST_LEGACY_PW"],
        input=plaintext, capture_output=True, check=True,
        env={**os.environ, "TATUM_TEST_LEGACY_PW": password},
    )
    return result.stdout.strip()


def write_legacy_wallet_dat(path: Path, wallets: dict[str, Any], password: str) -> Path:
    """Write `wallets` as the original writes wallet.dat (JSON without spaces, encrypted) and return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plaintext = json.dumps(wallets, separators=(",", ":")).encode("utf-8")
    path.write_bytes(openssl_encrypt(plaintext, password))
    return path
