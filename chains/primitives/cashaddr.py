"""Bitcoin Cash CashAddr addresses (`bitcoincash:q…`), encode side: a prefix, a type and a hash160.

Written out here rather than taken from bip-utils, whose import costs most of a second on `getaddress`;
a differential test holds it to bip-utils' encoder.
"""

from __future__ import annotations

from chains.primitives.bech32 import _CHARSET, _to_5bit

P2PKH_TYPE, P2SH_TYPE = 0, 1
_GENERATORS = (0x98F2BC8E61, 0x79B76D99E2, 0xF33E5FB3C4, 0xAE2EABE2A8, 0x1E4F43E470)


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 35
        checksum = ((checksum & 0x07FFFFFFFF) << 5) ^ value
        for bit, generator in enumerate(_GENERATORS):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum ^ 1


def encode_cashaddr(prefix: str, kind: int, hash160: bytes) -> str:
    """`prefix:payload` for a 20-byte hash of `kind` (P2PKH_TYPE or P2SH_TYPE), lower case."""
    if len(hash160) != 20:
        raise ValueError("CashAddr here encodes 160-bit hashes only")
    payload = _to_5bit(bytes([kind << 3]) + hash160)
    checksum = _polymod([ord(c) & 0x1F for c in prefix] + [0] + payload + [0] * 8)
    payload += [(checksum >> 5 * (7 - i)) & 0x1F for i in range(8)]
    return prefix + ":" + "".join(_CHARSET[d] for d in payload)
