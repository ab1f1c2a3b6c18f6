"""A minimal ERC-20 token for the sandbox's EVMs, written in EVM assembly (no compiler needed).

It holds balances and a total supply, and answers `transfer(address,uint256)` (reverting when the balance is
short), `balanceOf(address)`, `totalSupply()`, `decimals()` (18) and `mint(address,uint256)` (only for the
account that deployed it), emitting `Transfer` events as ERC-20 says. Storage: the balance of an address at
the slot equal to the address; the total supply and the owner at slots 2^160 and 2^160 + 1, which no
address reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak

SELECTORS = {
    "transfer": keccak(b"transfer(address,uint256)")[:4],
    "balanceOf": keccak(b"balanceOf(address)")[:4],
    "totalSupply": keccak(b"totalSupply()")[:4],
    "decimals": keccak(b"decimals()")[:4],
    "mint": keccak(b"mint(address,uint256)")[:4],
}
TRANSFER_EVENT = keccak(b"Transfer(address,address,uint256)")
DECIMALS = 18

_OPCODES = {
    "STOP": 0x00, "ADD": 0x01, "SUB": 0x03, "LT": 0x10, "EQ": 0x14, "ISZERO": 0x15, "AND": 0x16, "SHR": 0x1C,
    "CALLER": 0x33, "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "CODECOPY": 0x39, "MSTORE": 0x52,
    "SLOAD": 0x54, "SSTORE": 0x55, "JUMPI": 0x57, "JUMPDEST": 0x5B, "DUP1": 0x80, "DUP2": 0x81,
    "DUP3": 0x82, "SWAP1": 0x90, "LOG3": 0xA3, "RETURN": 0xF3, "REVERT": 0xFD,
}
_SUPPLY_SLOT = 1 << 160
_OWNER_SLOT = (1 << 160) + 1
_ADDRESS_MASK = (1 << 160) - 1

Item = str | int | bytes | tuple[str, str]


def assemble(program: Sequence[Item]) -> bytes:
    """Bytecode of `program`: opcode names, ints and bytes (pushed with the fewest bytes), ("label", name)
    marking a JUMPDEST, ("ref", name) pushing that label's offset as two bytes."""

    def encode(labels: dict[str, int]) -> bytes:
        out = bytearray()
        for item in program:
            if isinstance(item, tuple):
                kind, name = item
                if kind == "label":
                    labels.setdefault(name, len(out))
                    out.append(_OPCODES["JUMPDEST"])
                else:
                    out += bytes([0x61]) + labels.get(name, 0).to_bytes(2, "big")
            elif isinstance(item, str):
                out.append(_OPCODES[item])
            else:
                value = item if isinstance(item, bytes) else item.to_bytes(max(1, (item.bit_length() + 7) // 8), "big")
                out += bytes([0x5F + len(value)]) + value
        return bytes(out)

    labels: dict[str, int] = {}
    encode(labels)  # first pass: where each label lands (label references have a fixed width)
    return encode(labels)


def _return_word() -> list[Item]:
    """Return the word on top of the stack."""
    return [0, "MSTORE", 32, 0, "RETURN"]


def _require_args(size: int) -> list[Item]:
    return [4 + 32 * size, "CALLDATASIZE", "LT", ("ref", "fail"), "JUMPI"]


def _address_argument(offset: int) -> list[Item]:
    return [offset, "CALLDATALOAD", _ADDRESS_MASK, "AND"]


RUNTIME: list[Item] = [
    0, "CALLDATALOAD", 0xE0, "SHR",
    *(item for name in SELECTORS for item in ("DUP1", SELECTORS[name], "EQ", ("ref", name), "JUMPI")),
    ("label", "fail"), 0, "DUP1", "REVERT",

    ("label", "transfer"), *_require_args(2),
    0x24, "CALLDATALOAD", "CALLER", "SLOAD",                # amount, balance
    "DUP2", "DUP2", "LT", ("ref", "fail"), "JUMPI",         # balance < amount: revert
    "DUP2", "SWAP1", "SUB", "CALLER", "SSTORE",             # balance[caller] -= amount
    *_address_argument(4), "DUP1", "SLOAD", "DUP3", "ADD", "DUP2", "SSTORE",  # balance[to] += amount
    "DUP2", 0, "MSTORE", "CALLER", TRANSFER_EVENT, 32, 0, "LOG3",              # Transfer(caller, to, amount)
    1, *_return_word(),

    ("label", "balanceOf"), *_require_args(1), *_address_argument(4), "SLOAD", *_return_word(),
    ("label", "totalSupply"), _SUPPLY_SLOT, "SLOAD", *_return_word(),
    ("label", "decimals"), DECIMALS, *_return_word(),

    ("label", "mint"), *_require_args(2),
    _OWNER_SLOT, "SLOAD", "CALLER", "EQ", "ISZERO", ("ref", "fail"), "JUMPI",
    0x24, "CALLDATALOAD", *_address_argument(4),
    "DUP1", "SLOAD", "DUP3", "ADD", "DUP2", "SSTORE",                          # balance[to] += amount
    _SUPPLY_SLOT, "SLOAD", "DUP3", "ADD", _SUPPLY_SLOT, "SSTORE",              # supply += amount
    "DUP2", 0, "MSTORE", 0, TRANSFER_EVENT, 32, 0, "LOG3",                     # Transfer(0, to, amount)
    1, *_return_word(),
]


def deployment_code() -> bytes:
    """Init code: record the deployer as owner, then return the runtime code."""
    runtime = assemble(RUNTIME)
    head: list[Item] = ["CALLER", _OWNER_SLOT, "SSTORE", len(runtime).to_bytes(2, "big"), "DUP1",
                        b"\0\0", 0, "CODECOPY", 0, "RETURN"]
    offset = len(assemble(head))
    head[5] = offset.to_bytes(2, "big")
    return assemble(head) + runtime


def call_data(function: str, *words: int | str) -> str:
    """`0x` ABI call data for `function` with address or integer arguments."""
    encoded = b"".join((int(w, 16) if isinstance(w, str) else w).to_bytes(32, "big") for w in words)
    return "0x" + (SELECTORS[function] + encoded).hex()
