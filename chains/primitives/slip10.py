"""SLIP-10 derivation on ed25519 (hardened children only), as `ed25519-hd-key` derives Solana keys.

Twelve lines of HMAC-SHA512 instead of bip-utils, whose import (0.9 s) would land on every signing
daemon start; a differential test holds it to bip-utils and to SLIP-0010's published vectors.
"""

from __future__ import annotations

import hmac

from chains.base import ChainError

HARDENED = 0x80000000
_CURVE_KEY = b"ed25519 seed"


def master(seed: bytes) -> tuple[bytes, bytes]:
    """(private key, chain code) of the master node of `seed`."""
    digest = hmac.digest(_CURVE_KEY, seed, "sha512")
    return digest[:32], digest[32:]


def child(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """(private key, chain code) of hardened child `index` (< 2^31; the hardened bit is added here)."""
    if not 0 <= index < HARDENED:
        raise ChainError("SLIP-10 ed25519 index must be in [0, 2^31)")
    digest = hmac.digest(chain_code, b"\0" + key + (index | HARDENED).to_bytes(4, "big"), "sha512")
    return digest[:32], digest[32:]


def derive(seed: bytes, path: tuple[int, ...]) -> bytes:
    """The 32-byte ed25519 private key (seed) at `path`, each element a hardened index below 2^31."""
    key, chain_code = master(seed)
    for index in path:
        key, chain_code = child(key, chain_code, index)
    return key


def parse_path(path: str) -> tuple[int, ...]:
    """`m/44'/501'/0'/0'` -> (44, 501, 0, 0); every level must be hardened."""
    parts = path.split("/")
    if parts[0] != "m" or not all(p.endswith("'") and p[:-1].isdigit() for p in parts[1:]):
        raise ChainError(f"{path!r} is not an all-hardened derivation path")
    return tuple(int(p[:-1]) for p in parts[1:])
