"""Every registered chain through the same checks: its vectors, both networks, indexes, bad input, and a
property test that what it signs is accepted by its sandbox ledger (an engine or independent verifier).

A chain gets these tests by being registered and adding `tests/vectors/<CHAIN>.json` (see its README).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chains
from chains.base import Chain, ChainError, PendingTransaction
from kms.sandbox.api import Sandbox
from tests.inprocess import API_KEY, in_process_node
from tests.recording_node import RecordingNode

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
PENDING_ID = "5e6645712b55823de7ea82f1"


def vectors(code: str) -> dict[str, Any]:
    path = VECTORS / f"{code}.json"
    assert path.exists(), f"registered chain {code} has no {path.name}: add its vectors"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield Sandbox(execute=True, testnet=True)


@pytest.fixture(params=chains.CODES)
def chain(request: pytest.FixtureRequest) -> Chain:
    return chains.get(request.param)


@pytest.fixture(params=[code for code in chains.CODES if chains.get(code).mnemonic_based])
def mnemonic_chain(request: pytest.FixtureRequest) -> Chain:
    return chains.get(request.param)


def pending(chain: Chain, payload: str, **fields: Any) -> PendingTransaction:
    return PendingTransaction.from_json({"id": PENDING_ID, "chain": chain.code, "hashes": ["w"],
                                         "serializedTransaction": payload, **fields})


# -- wallets ------------------------------------------------------------------------------------


def test_the_spec_vectors_hold(chain: Chain) -> None:
    data = vectors(chain.code)
    for expected in data["wallets"]:
        wallet = chain.wallet_from_mnemonic(data["mnemonic"], expected["testnet"])
        if "xpub" in expected:
            assert wallet["xpub"] == expected["xpub"]
        for index, address in expected["addresses"].items():
            assert chain.address(wallet, int(index), expected["testnet"]) == address
        for index, key in expected["privateKeys"].items():
            assert chain.private_key(wallet, int(index), expected["testnet"]) == key
    for expected in data["privateKeys"]:
        assert chain.address_from_private_key(expected["privateKey"], expected["testnet"]) == expected["address"]
    assert data["wallets"] or data["privateKeys"], "a vector file with no vectors"


def test_the_signed_vectors_are_reproduced(chain: Chain) -> None:
    for expected in vectors(chain.code).get("signed", []):
        node = RecordingNode(expected.get("node", {}))
        signed = chain.sign(pending(chain, expected["serializedTransaction"]), [expected["privateKey"]],
                            expected["testnet"], node)
        assert signed.tx_data == expected["txData"], expected["source"]
        assert signed.path == chain.broadcast_path


@pytest.mark.parametrize("testnet", [False, True])
def test_generated_wallets_work_on_both_networks(chain: Chain, testnet: bool) -> None:
    for managed in (False, True):
        wallet = chain.generate_wallet(testnet, managed=managed)
        again = chain.generate_wallet(testnet, managed=managed)
        assert wallet != again, "two generated wallets are the same"
        assert all(isinstance(value, str) and value for value in wallet.values())
        assert isinstance(chain.address(wallet, 0, testnet), str)
        if chain.mnemonic_based and "mnemonic" in wallet:
            restored = chain.wallet_from_mnemonic(wallet["mnemonic"], testnet)
            assert chain.address(restored, 0, testnet) == chain.address(wallet, 0, testnet)
    key, address = chain.generate_private_key(testnet)  # that the key controls the address: the ledger test
    assert address and isinstance(chain.address_from_private_key(key, testnet), str)


@pytest.mark.parametrize("testnet", [False, True])
def test_address_and_key_at_the_first_and_last_indexes(chain: Chain, testnet: bool) -> None:
    wallet = chain.generate_wallet(testnet, managed=True)
    for index in (0, 1, 2**31 - 1):
        assert isinstance(chain.address(wallet, index, testnet), str)
        assert isinstance(chain.private_key(wallet, index, testnet), str)
    if "xpub" in wallet:
        assert chain.address(wallet, 0, testnet) != chain.address(wallet, 1, testnet)
    if "mnemonic" in wallet:
        assert chain.private_key(wallet, 0, testnet) != chain.private_key(wallet, 2**31 - 1, testnet)


@pytest.mark.parametrize("bad", [-1, 2**31, 10**100, True, "1", 1.5, None])
def test_a_bad_index_is_a_chain_error(mnemonic_chain: Chain, bad: Any) -> None:
    chain = mnemonic_chain
    wallet = chain.generate_wallet(True, managed=True)
    with pytest.raises(ChainError):
        chain.private_key(wallet, bad, True)
    if "xpub" in wallet:
        with pytest.raises(ChainError):
            chain.address(wallet, bad, True)


@pytest.mark.parametrize("bad", ["", "zz", "0x" + "00" * 32, "0x" + "ff" * 32, "not a key at all " * 4,
                                 "1" * 5000, 12345, None])
def test_a_bad_key_is_a_chain_error(chain: Chain, sandbox: Sandbox, bad: Any) -> None:
    with pytest.raises(ChainError):
        chain.address_from_private_key(bad, False)
    _, address = chain.generate_private_key(True)
    payload = sandbox.ledger(chain.code).sample(chain.code, address, 1000)  # a good payload: only the key is bad
    with pytest.raises(ChainError):
        chain.sign(pending(chain, payload), [bad], True, in_process_node(sandbox, chain.code, True))


@pytest.mark.parametrize("payload", ["", "{", "[]", "null", "42", '"text"', "\x00\xff\ufffd", "{" * 50,
                                     "x" * 100_000])
def test_a_bad_payload_is_a_chain_error(chain: Chain, payload: str) -> None:
    key, _ = chain.generate_private_key(True)
    with pytest.raises(ChainError):
        chain.sign(pending(chain, payload), [key], True, RecordingNode())


# -- what is signed is accepted by the ledger -----------------------------------------------------


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(min_value=1, max_value=10**8))
def test_what_the_chain_signs_its_ledger_accepts(chain: Chain, sandbox: Sandbox, amount: int) -> None:
    key, address = chain.generate_private_key(True)
    payload = sandbox.ledger(chain.code).sample(chain.code, address, amount)
    node = in_process_node(sandbox, chain.code, True)
    signed = chain.sign(pending(chain, payload), [key], True, node)
    if signed.submit_first:
        signed = chain.submit(signed, node)
    body = {"txData": signed.tx_data, "signatureId": PENDING_ID, **signed.extra}
    reply = sandbox.handle("POST", signed.path, {"x-api-key": API_KEY}, json.dumps(body).encode())
    assert reply.status == 200, reply.body
