"""SLIP-10 ed25519 derivation (every step hardened), as ed25519-hd-key derives EGLD and SOL keys.

A dozen lines of HMAC-SHA512 instead of bip-utils' import on the CLI's path; the account node of a mnemonic
is cached, so a key at another index costs one HMAC.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from chains.base import ChainError
from chains.primitives.hd import HARDENED, seed_from_mnemonic


def _child(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    digest = hmac.digest(chain_code, b"\0" + key + (index | HARDENED).to_bytes(4, "big"), "sha512")
    return digest[:32], digest[32:]


def parse_path(path: str) -> tuple[int, ...]:
    """`m/44'/508'/0'/0'` as indexes; SLIP-10 ed25519 has hardened children only."""
    parts = path.split("/")
    if parts[0] != "m" or not all(p.endswith("'") and p[:-1].isdigit() for p in parts[1:]):
        raise ChainError(f"an ed25519 derivation path has hardened steps only: {path}")
    indexes = tuple(int(p[:-1]) for p in parts[1:])
    if any(i >= HARDENED for i in indexes):
        raise ChainError(f"derivation index out of range in {path}")
    return indexes


def derive(seed: bytes, path: str) -> tuple[bytes, bytes]:
    """(32-byte private key, chain code) at `path` from a BIP39 seed."""
    digest = hmac.digest(b"ed25519 seed", seed, "sha512")
    key, chain_code = digest[:32], digest[32:]
    for index in parse_path(path):
        key, chain_code = _child(key, chain_code, index)
    return key, chain_code


@lru_cache(maxsize=32)
def _account(mnemonic: str, path: str) -> tuple[bytes, bytes]:
    return derive(seed_from_mnemonic(mnemonic), path)


def key_at(mnemonic: str, account_path: str, index: int) -> bytes:
    """The private key of hardened child `index` of the mnemonic's node at `account_path`."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < HARDENED:
        raise ChainError("index must be an integer in [0, 2^31)")
    key, chain_code = _account(mnemonic, account_path)
    return _child(key, chain_code, index)[0]
