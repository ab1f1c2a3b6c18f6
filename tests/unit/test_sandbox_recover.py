"""The sandbox's no-execute verifier must agree with eth-account on who signed, and refuse what nodes refuse."""

from __future__ import annotations

import random

import pytest
import rlp
from eth_account import Account
from eth_utils import to_checksum_address

from kms.sandbox.ledgers.evm import EvmRejected, recover_sender

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def signed(rng: random.Random, kind: str) -> tuple[bytes, str]:
    account = Account.from_key(rng.randbytes(32))
    tx = {"to": to_checksum_address(rng.randbytes(20)), "value": rng.randrange(10**20),
          "gas": 21000 + rng.randrange(10**5), "nonce": rng.randrange(10**6),
          "chainId": rng.choice([1, 5, 131277322940537]),
          "data": rng.randbytes(rng.randrange(0, 80))}
    if kind == "1559":
        tx.update(maxFeePerGas=rng.randrange(1, 10**12), maxPriorityFeePerGas=rng.randrange(1, 10**9))
    elif kind == "2930":
        tx.update(gasPrice=rng.randrange(1, 10**12), accessList=[{"address": to_checksum_address(rng.randbytes(20)),
                                                                  "storageKeys": ["0x" + rng.randbytes(32).hex()]}])
    else:
        tx["gasPrice"] = rng.randrange(1, 10**12)
    return bytes(account.sign_transaction(tx).raw_transaction), account.address


@pytest.mark.parametrize("kind", ["legacy", "2930", "1559"])
def test_recovers_the_same_sender_as_eth_account(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(40):
        raw, sender = signed(rng, kind)
        assert recover_sender(raw) == sender == Account.recover_transaction(raw)


def _fields(raw: bytes) -> tuple[bytes, list]:
    return (raw[:1], rlp.decode(raw[1:])) if raw[0] < 0x7F else (b"", rlp.decode(raw))


def _encode(prefix: bytes, fields: list) -> bytes:
    return prefix + rlp.encode(fields)


@pytest.mark.parametrize("kind", ["legacy", "1559"])
def test_a_changed_field_recovers_someone_else_or_is_refused(kind: str) -> None:
    rng = random.Random(7)
    raw, sender = signed(rng, kind)
    prefix, fields = _fields(raw)
    value_at = 4 if kind == "legacy" else 6
    fields[value_at] = (int.from_bytes(fields[value_at], "big") + 1).to_bytes(32, "big").lstrip(b"\0")
    try:
        assert recover_sender(_encode(prefix, fields)) != sender
    except EvmRejected:
        pass


def test_high_s_garbage_and_unprotected_are_refused() -> None:
    rng = random.Random(3)
    raw, _ = signed(rng, "legacy")
    prefix, fields = _fields(raw)
    high = list(fields)
    high[8] = (N - int.from_bytes(fields[8], "big")).to_bytes(32, "big")
    high[6] = (int.from_bytes(fields[6], "big") ^ 1).to_bytes(8, "big").lstrip(b"\0")  # the twin signature
    with pytest.raises(EvmRejected, match="out of range"):
        recover_sender(_encode(prefix, high))
    with pytest.raises(EvmRejected, match="EIP-155"):
        recover_sender(_encode(prefix, [*fields[:6], b"\x1b", *fields[7:]]))
    with pytest.raises(EvmRejected, match="rlp"):
        recover_sender(raw[:-5])
    with pytest.raises(EvmRejected, match="non-canonical"):
        recover_sender(_encode(prefix, [*fields[:8], b"\0" + fields[8]]))
