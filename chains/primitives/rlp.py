"""Recursive Length Prefix encoding (Ethereum yellow paper, appendix B), encode side only.

Written out here rather than imported: the `rlp` package pulls in eth-utils and pydantic
(~150 ms of import) for what is a dozen lines, and signing is on the daemon's hot path.
"""

from __future__ import annotations

Item = bytes | int | list["Item"]


def _length_prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def encode(item: Item) -> bytes:
    """RLP of bytes, a non-negative integer (minimal big-endian, 0 as empty) or a list of those."""
    if isinstance(item, bytes | bytearray):
        size = len(item)
        if size == 1 and item[0] < 0x80:
            return bytes(item)
        return (bytes((0x80 + size,)) if size < 56 else _length_prefix(size, 0x80)) + item
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP cannot encode a negative integer")
        if item < 0x80:
            return bytes((item,)) if item else b"\x80"
        return encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    return wrap_list(b"".join([encode(element) for element in item]))


def wrap_list(payload: bytes) -> bytes:
    """The RLP list whose items' encodings, concatenated, are `payload` (to reuse encoded items)."""
    size = len(payload)
    return (bytes((0xC0 + size,)) if size < 56 else _length_prefix(size, 0xC0)) + payload


def encode_items(items: list[Item]) -> bytes:
    """The concatenated encodings of `items`: the payload of their list, without its prefix."""
    return b"".join([encode(element) for element in items])
