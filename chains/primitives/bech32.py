"""Segwit v0 addresses (BIP173 bech32) from a witness program."""

from __future__ import annotations

from functools import lru_cache

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _generator_table() -> tuple[int, ...]:
    table = []
    for top in range(32):
        value = 0
        for bit, generator in enumerate(_GENERATORS):
            if (top >> bit) & 1:
                value ^= generator
        table.append(value)
    return tuple(table)


_TABLE = _generator_table()


def _polymod(values: list[int]) -> int:
    """BIP173's checksum polynomial, one table lookup per 5-bit value instead of five conditional XORs."""
    checksum = 1
    for value in values:
        checksum = ((checksum & 0x1FFFFFF) << 5 ^ value) ^ _TABLE[checksum >> 25]
    return checksum


def _expand_hrp(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    """Re-pack bytes into 5-bit groups, zero-padding the last one."""
    accumulator, bits, out = 0, 0, []
    for value in data:
        accumulator = (accumulator << 8) | value
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((accumulator >> bits) & 31)
    if bits:
        out.append((accumulator << (5 - bits)) & 31)
    return out


def encode_segwit(hrp: str, version: int, program: bytes) -> str:
    """The bech32 address of a version-0 witness program (e.g. `bc1q…` for a P2WPKH hash)."""
    data = [version] + _to_5bit(program)
    checksum = _polymod(_expand_hrp(hrp) + data + [0] * 6) ^ 1
    data += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data)



def _from_5bit(values: list[int]) -> bytes | None:
    """Re-pack 5-bit groups into bytes; None if the padding is not zero bits or too long (BIP173)."""
    accumulator, bits, out = 0, 0, bytearray()
    for value in values:
        accumulator = (accumulator << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((accumulator >> bits) & 0xFF)
    if bits >= 5 or (accumulator << (8 - bits)) & 0xFF:
        return None
    return bytes(out)


def encode(hrp: str, data: bytes) -> str:
    """Plain bech32 (no witness version) of `data` under `hrp`: `erd1…`, `bnb1…` addresses."""
    values = _to_5bit(data)
    checksum = _polymod(_expand_hrp(hrp) + values + [0] * 6) ^ 1
    values += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values)


def decode(hrp: str, text: str) -> bytes | None:
    """The data of a plain bech32 string under `hrp`, or None if it is not one (wrong prefix, case, checksum)."""
    if not isinstance(text, str):
        return None
    return _decode(hrp, text)


@lru_cache(maxsize=4096)
def _decode(hrp: str, text: str) -> bytes | None:
    """`decode`, cached: the daemon sees the same few senders and receivers again and again."""
    if not isinstance(text, str) or len(text) > 1023 or text.lower() != text and text.upper() != text:
        return None
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or text[:separator] != hrp or len(text) - separator < 7:
        return None
    try:
        values = [_CHARSET.index(c) for c in text[separator + 1:]]
    except ValueError:
        return None
    if _polymod(_expand_hrp(hrp) + values) != 1:
        return None
    return _from_5bit(values[:-6])
