"""secp256k1 keys and the hashes and encodings around them (hash160, keccak, base58check, WIF).

Everything here is pure and fast: coincurve (libsecp256k1) for curve work, hashlib (OpenSSL) for
SHA-256 and RIPEMD-160, safe-pysha3 for Keccak. No function here puts a key into an exception message.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from typing import Any

import base58
from coincurve import PrivateKey, PublicKey
from sha3 import keccak_256

from chains.base import ChainError

#: The order of the secp256k1 group; a private key is an integer in [1, N-1].
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

__all__ = [
    "N", "PrivateKey", "SigningKey", "PublicKey", "sha256d", "hash160", "keccak256", "random_secret",
    "check_secret", "b58check_encode", "b58check_decode", "wif_encode", "wif_decode", "hex_secret",
]


class SigningKey(PrivateKey):
    """coincurve's PrivateKey with its public keys computed on first use, not up front.

    coincurve derives the full and the x-only public key in the constructor; a signer that only signs
    (the daemon, for a payload with every field) would spend more on those than on the signature.
    """

    def __init__(self, secret: bytes) -> None:  # noqa: D107 - the base class documents the arguments
        from coincurve.context import GLOBAL_CONTEXT

        self.secret = check_secret(secret)
        self.context = GLOBAL_CONTEXT

    @cached_property
    def public_key(self) -> PublicKey:  # type: ignore[override]
        return PublicKey.from_valid_secret(self.secret, self.context)

    @cached_property
    def public_key_xonly(self) -> Any:  # type: ignore[override]
        from coincurve.keys import PublicKeyXOnly

        return PublicKeyXOnly.from_valid_secret(self.secret, self.context)


def sha256d(data: bytes) -> bytes:
    """Bitcoin's double SHA-256."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _ripemd160() -> Any:
    """OpenSSL's RIPEMD-160 when this build has it (3.0.7 and later), else pycryptodome's.

    pycryptodome is the fallback only: importing it parses C declarations with pycparser, tens of
    milliseconds on every start of the command.
    """
    try:
        hashlib.new("ripemd160")
    except ValueError:
        from Crypto.Hash import RIPEMD160

        return lambda data: RIPEMD160.new(data).digest()
    return lambda data: hashlib.new("ripemd160", data).digest()


_RIPEMD160 = _ripemd160()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the hash behind bitcoin addresses."""
    return _RIPEMD160(hashlib.sha256(data).digest())


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (not NIST SHA3-256)."""
    return keccak_256(data).digest()


def check_secret(secret: bytes) -> bytes:
    """Return `secret` if it is a valid 32-byte private key in [1, N-1], else raise ChainError."""
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < N:
        raise ChainError("private key is out of range for secp256k1")
    return secret


def random_secret() -> bytes:
    """A fresh private key from the OS CSPRNG, redrawn in the (2^-128) case it is out of range."""
    while True:
        secret = os.urandom(32)
        if 0 < int.from_bytes(secret, "big") < N:
            return secret


def hex_secret(text: str) -> bytes:
    """A private key given as 64 hex digits, with or without `0x`."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if len(body) != 64:
        raise ChainError("private key must be 32 bytes of hex (64 hex digits, optional 0x)")
    try:
        secret = bytes.fromhex(body)
    except ValueError:
        raise ChainError("private key is not valid hex") from None
    return check_secret(secret)


def b58check_encode(payload: bytes) -> str:
    """Base58 with a 4-byte double-SHA-256 checksum."""
    return base58.b58encode(payload + sha256d(payload)[:4]).decode("ascii")


def b58check_decode(text: str, what: str = "value") -> bytes:
    """Decode base58check; ChainError naming `what` on a bad character or checksum."""
    try:
        raw = base58.b58decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ChainError(f"{what} is not valid base58") from None
    if len(raw) < 5 or sha256d(raw[:-4])[:4] != raw[-4:]:
        raise ChainError(f"{what} has a bad base58check checksum")
    return raw[:-4]


def wif_encode(secret: bytes, prefix: int, compressed: bool = True) -> str:
    """Wallet Import Format: prefix byte, key, 0x01 when the public key is compressed."""
    return b58check_encode(bytes([prefix]) + secret + (b"\x01" if compressed else b""))


def wif_decode(text: str) -> tuple[int, bytes, bool]:
    """(prefix, secret, compressed) of a WIF key; ChainError without echoing the key."""
    raw = b58check_decode(text, "private key")
    if len(raw) == 34 and raw[33] == 1:
        return raw[0], check_secret(raw[1:33]), True
    if len(raw) == 33:
        return raw[0], check_secret(raw[1:33]), False
    raise ChainError("private key is not a WIF key")
