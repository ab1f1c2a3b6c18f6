"""A minimal protocol-buffers wire-format writer: the field encodings proto3 messages are made of.

Enough to re-encode a few known messages byte for byte as the reference encoders write them (fields in
number order, proto3 defaults left out); the messages themselves are laid out by their chain module.
"""

from __future__ import annotations

from chains.base import ChainError

_VARINT, _LENGTH_DELIMITED = 0, 2


def varint(value: int) -> bytes:
    """Base-128 little-endian encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def int64_field(number: int, value: int) -> bytes:
    """An int64 (or int32, or enum) field; nothing for 0. Negative values take ten bytes (two's complement)."""
    if not -(2**63) <= value < 2**63:
        raise ChainError(f"protobuf field {number} is out of the int64 range")
    if value == 0:
        return b""
    return _key(number, _VARINT) + varint(value & 0xFFFFFFFFFFFFFFFF)


def bytes_field(number: int, data: bytes) -> bytes:
    """A bytes or string field; nothing when empty."""
    if not data:
        return b""
    return _key(number, _LENGTH_DELIMITED) + varint(len(data)) + data


def message_field(number: int, data: bytes) -> bytes:
    """An embedded message field: written even when the message is empty (a set sub-message)."""
    return _key(number, _LENGTH_DELIMITED) + varint(len(data)) + data
