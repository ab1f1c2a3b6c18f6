"""The Cadence transactions Tatum's SDK (tatum-js v1) sends for each FLOW transaction type, and their arguments
encoded as FCL encodes them, so that the payload bytes, and the user's signature over them, equal the original's.

The scripts are tatum-js v1's `src/transaction/flowTransaction/index.ts` template literals, passed through the
same `dedent-js` 1.0.1 algorithm (`dedent_js` below); the argument JSON is `@onflow/types`' `asArgument`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chains.base import ChainError

TESTNET_ADDRESSES = {"FlowToken": "0x7e60df042a9c0868", "FungibleToken": "0x9a0766d93b6608b7",
                     "FUSD": "0xe223d8a629e49c68", "TatumMultiNFT": "0x87fe4ebd0cddde06"}
MAINNET_ADDRESSES = {"FlowToken": "0x1654653399040a61", "FungibleToken": "0xf233dcee88fe0abe",
                     "FUSD": "0x3c5959b568896393", "TatumMultiNFT": "0x354e6721564ccd2c"}

_TRAILING = re.compile(r"\r?\n[\t ]*\Z")
_INDENT = re.compile(r"\n[\t ]+")


def dedent_js(strings: tuple[str, ...], values: tuple[str, ...]) -> str:
    """dedent-js 1.0.1 on a tagged template: drop the last line break (and its indent), remove the smallest
    indentation of the indented lines from every line of the literal parts, drop a leading line break, then
    interpolate. Interpolated values are not dedented."""
    parts = list(strings)
    parts[-1] = _TRAILING.sub("", parts[-1], count=1)
    indents = [len(m) - 1 for part in parts for m in _INDENT.findall(part)]
    if indents:
        common = re.compile(f"\n[\t ]{{{min(indents)}}}")
        parts = [common.sub("\n", part) for part in parts]
    parts[0] = re.sub(r"\A\r?\n", "", parts[0], count=1)
    out = parts[0]
    for value, part in zip(values, parts[1:], strict=True):
        out += value + part
    return out


@dataclass(frozen=True)
class Template:
    """A template literal: its literal parts and the names of what is interpolated between them.

    A name is a contract (`FungibleToken`, `FlowToken`, `FUSD`, `TatumMultiNFT`: its address on the network) or
    one of the keyword values given to `script`.
    """

    strings: tuple[str, ...]
    values: tuple[str, ...]

    def script(self, testnet: bool, **names: str) -> str:
        addresses = TESTNET_ADDRESSES if testnet else MAINNET_ADDRESSES
        return dedent_js(self.strings, tuple(names[v] if v in names else addresses[v] for v in self.values))


# -- arguments: @onflow/types' asArgument, as tatum-js calls it ---------------------------------

#: The `type` names tatum-js accepts for a CUSTOM_TX argument (its FlowArgs validation).
ARGUMENT_TYPES = frozenset((
    "Identity", "UInt", "Int", "UInt8", "Int8", "UInt16", "Int16", "UInt32", "Int32", "UInt64", "Int64", "UInt128",
    "Int128", "UInt256", "Int256", "Word8", "Word16", "Word32", "Word64", "UFix64", "Fix64", "String", "Character",
    "Bool", "Address", "Void", "Optional", "Reference", "Array", "Dictionary", "Event", "Resource", "Struct"))
_INTEGERS = frozenset(("UInt", "Int", "UInt8", "Int8", "UInt16", "Int16", "UInt32", "Int32", "UInt64", "Int64",
                       "UInt128", "Int128", "UInt256", "Int256", "Word8", "Word16", "Word32", "Word64"))
#: Types that are functions, not type descriptors, in @onflow/types: FCL cannot cast a value to them.
_UNCASTABLE = frozenset(("Optional", "Dictionary", "Event", "Resource", "Struct"))
_PARSE_INT = re.compile(r"\A[\t\n\v\f\r \u00a0\ufeff]*([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)")


def as_argument(type_name: Any, value: Any, sub_type: Any = None) -> dict[str, Any]:
    """The JSON-Cadence value FCL sends for `fcl.arg(value, types[type_name])` (an `Array` of `sub_type`)."""
    if type_name not in ARGUMENT_TYPES:
        raise ChainError(f"FLOW argument type {str(type_name)[:40]!r} is not one the original accepts")
    if type_name == "Array":
        if sub_type not in ARGUMENT_TYPES or sub_type == "Array":
            raise ChainError("a FLOW Array argument needs a scalar subType")
        if not isinstance(value, list):
            raise ChainError("a FLOW Array argument's value must be a list")
        return {"type": "Array", "value": [as_argument(sub_type, item) for item in value]}
    if type_name in _UNCASTABLE:
        raise ChainError(f"FCL cannot cast a value to {type_name} (it needs inner types the payload cannot give)")
    if type_name == "Identity":
        return value  # type: ignore[no-any-return]
    if type_name in _INTEGERS:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"type": type_name, "value": str(value)}
        if isinstance(value, str):
            return {"type": type_name, "value": value}
        raise ChainError(f"Type Error: expected an integer for {type_name}")
    if type_name in ("UFix64", "Fix64"):
        if isinstance(value, str):
            whole, dot, fraction = value.partition(".")
            if not dot or "." in fraction:
                raise ChainError(f"Type Error: expected one decimal point in the {type_name} value")
            if not 1 <= len(fraction) <= 8:
                raise ChainError(f"Type Error: a {type_name} value has 1 to 8 digits after the decimal point")
            return {"type": type_name, "value": f"{whole}.{fraction.ljust(8, '0')}"}
        raise ChainError(f"Type Error: expected a string for {type_name}")
    if type_name in ("String", "Character", "Address"):
        if not isinstance(value, str):
            raise ChainError(f"Type Error: expected a string for {type_name}")
        return {"type": type_name, "value": value}
    if type_name == "Bool":
        if not isinstance(value, bool):
            raise ChainError("Type Error: expected a boolean for Bool")
        return {"type": "Bool", "value": value}
    if type_name == "Void":
        if value:
            raise ChainError("Type Error: expected no value for Void")
        return {"type": "Void", "value": None}
    if not isinstance(value, dict):  # Reference
        raise ChainError("Type Error: expected an object for Reference")
    return {"type": "Reference", "value": value}


def parse_int(value: Any) -> int:
    """JavaScript's `parseInt(String(value))` for what tatum-js casts to UInt64: leading digits (or 0x hex)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _PARSE_INT.match(value if isinstance(value, str) else "")
    if match is None:
        raise ChainError("Type Error: expected an integer for UInt64 (parseInt gives NaN)")
    sign, digits = match.groups()
    number = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits)
    return -number if sign == "-" else number


def encode_argument(argument: Any) -> bytes:
    """`JSON.stringify(asArgument)` as UTF-8: compact, non-ASCII characters as they are."""
    try:
        return json.dumps(argument, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        raise ChainError("a FLOW argument cannot be encoded as JSON") from None


def ufix64_amount(amount: str) -> str:
    """`parseFloat(amount).toFixed(8)`: the amount as a double, rounded half up at 8 decimals (JavaScript's rule)."""
    number = float(amount)
    if not number < 1e21:
        raise ChainError("FLOW amount is too large")
    return format(Decimal(number).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP), "f")
