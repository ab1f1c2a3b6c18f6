"""EGLD: SLIP-10 wallets, the gateway calls the signer makes, and its signatures against MultiversX's public vectors.

The signing vectors are the "test transaction construction" cases of erdjs 6.5.2 (`multiversx/mx-sdk-js-core`
@ 6edb9376, `src/transaction.spec.ts`, Alice signing for Bob with chain id "local-testnet", version 1); the
nonce-0 case is also in today's `src/core/transaction.spec.ts` ("with nonce = 0", version 1). Alice's seed is
that repository's `src/testdata/testwallets/alice.pem`. The signatures are deterministic (ed25519), so the
bytes we sign must be erdjs's serialization exactly for them to match.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bip_utils import Bip32Slip10Ed25519, Bip39SeedGenerator, EgldAddrDecoder
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chains.base import ChainError, PendingTransaction
from chains.egld import EGLD, signing_serialization
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.egld import EgldLedger, verify_egld
from tests.kms_process import MQ
from tests.recording_node import RecordingNode

ALICE_SEED = "413f42575f7f26fad3317a778771212fdb80245850981e48b58a4f25e344e8f9"
ALICE = "erd1qyu5wthldzr8wx5c9ucg8kjagg0jfs53s8nr3zpz3hypefsdd8ssycr6th"
BOB = "erd1spyavw0956vq68xj8y4tenjpq2wd5a9p2c6j8gsz7ztyrnpxrruqzu66jx"

# (nonce, value in EGLD, data, gas limit the gateway answers, erdjs's signature)
ERDJS_VECTORS = [
    (89, "0", None, 50000, "b56769014f2bdc5cf9fc4a05356807d71fcf8775c819b0f1b0964625b679c918"
                           "ffa64862313bfef86f99b38cb84fcdb16fa33ad6eb565276616723405cd8f109"),
    (90, "0", "hello", 80000, "e47fd437fc17ac9a69f7bf5f85bafa9e7628d851c4f69bd9fedc7e36029708b2"
                              "e6d168d5cd652ea78beedd06d4440974ca46c403b14071a1a148d4188f6f2c0d"),
    (91, "10", "for the book", 100000, "9074789e0b4f9b2ac24b1fd351a4dd840afcfeb427b0f93e2a2d429c28c65ee9"
                                       "f4c288ca4dbde79de0e5bcf8c1a5d26e1b1c86203faea923e0edefb0b5099b0c"),
    (0, "0", "hello", 80000, "dfa3e9f2fdec60dcb353bac3b3435b4a2ff251e7e98eaf8620f46c731fc70c8b"
                             "a5615fd4e208b05e75fe0f7dc44b7a99567e29f94fcd91efac7e67b182cd2a04"),
]


def gateway(nonce: int, gas: int, chain_id: str = "local-testnet", **config: Any) -> RecordingNode:
    return RecordingNode({
        "gateway:GET /network/config": {"data": {"config": {"erd_chain_id": chain_id, "erd_min_gas_price": 10**9,
                                                            "erd_min_transaction_version": 1, **config}}},
        "gateway:GET /address/" + ALICE + "/nonce": {"data": {"nonce": nonce}},
        "gateway:POST /transaction/cost": {"data": {"txGasUnits": gas, "returnMessage": ""}},
    })


def pending(payload: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "60b4ea4fae706954a27ee2dd", "chain": "EGLD", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload)})


@pytest.mark.parametrize(("nonce", "value", "data", "gas", "signature"), ERDJS_VECTORS)
def test_signatures_equal_erdjs_public_vectors(nonce: int, value: str, data: str | None, gas: int,
                                               signature: str) -> None:
    payload = {"from": ALICE, "to": BOB, "value": value, "gasPrice": 1, "gasLimit": 1}
    if data:
        payload["data"] = data
    signed = EGLD.sign(pending(payload), [ALICE_SEED], False, gateway(nonce, gas))
    tx = json.loads(signed.tx_data)
    assert tx["signature"] == signature
    assert signed.path == "/v3/egld/broadcast"
    # the sendable JSON: compact, the protocol's field order, data only when there is some
    order = ["nonce", "value", "receiver", "sender", "gasPrice", "gasLimit", "data", "chainID", "version",
             "signature"]
    assert list(tx) == [name for name in order if name != "data" or data]
    assert " " not in signed.tx_data
    assert tx["gasPrice"] == 10**9 and tx["gasLimit"] == gas  # from the gateway, not the payload


def test_the_gateway_calls_and_the_cost_request_body() -> None:
    node = gateway(7, 68500, chain_id="D")
    EGLD.sign(pending({"from": ALICE, "to": BOB, "value": "0.25", "data": "hello"}), [ALICE_SEED], True, node)
    assert node.methods() == ["GET /network/config", f"GET /address/{ALICE}/nonce", "POST /transaction/cost"]
    cost_body = node.calls[2][1]
    assert list(cost_body.items()) == [("nonce", 7), ("value", "250000000000000000"), ("receiver", BOB),
                                       ("sender", ALICE), ("gasPrice", 10**9), ("gasLimit", 0),
                                       ("data", "aGVsbG8="), ("chainID", "D"), ("version", 1)]


def test_an_independent_verifier_accepts_the_signature_over_the_protocol_serialization() -> None:
    signed = EGLD.sign(pending({"to": BOB, "value": "1.5", "data": "ünïcode ✓"}), [ALICE_SEED], True,
                       gateway(3, 90000, chain_id="T"))
    tx = json.loads(signed.tx_data)
    message = (f'{{"nonce":3,"value":"1500000000000000000","receiver":"{BOB}","sender":"{ALICE}",'
               f'"gasPrice":1000000000,"gasLimit":90000,"data":"{tx["data"]}","chainID":"T","version":1}}')
    public_key = Ed25519PublicKey.from_public_bytes(bytes(EgldAddrDecoder.DecodeAddr(ALICE)))
    public_key.verify(bytes.fromhex(tx["signature"]), message.encode())  # raises if it does not verify
    assert signing_serialization(tx) == message.encode()


def test_without_from_the_nonce_is_the_keys_and_with_another_from_erdjs_still_signs_as_the_key() -> None:
    node = gateway(1, 50000)
    EGLD.sign(pending({"to": BOB, "value": "1"}), [ALICE_SEED], False, node)
    assert node.methods()[1] == f"GET /address/{ALICE}/nonce"
    node = gateway(1, 50000)
    node.answers[f"gateway:GET /address/{BOB}/nonce"] = {"data": {"nonce": 44}}
    signed = EGLD.sign(pending({"from": BOB, "to": BOB, "value": "1"}), [ALICE_SEED], False, node)
    tx = json.loads(signed.tx_data)
    assert node.methods()[1] == f"GET /address/{BOB}/nonce"
    assert tx["nonce"] == 44 and tx["sender"] == ALICE  # erdjs 7's applySignature sets the signer as sender


def test_missing_gas_price_falls_back_to_one_gwei_and_the_payloads_gas_is_ignored() -> None:
    node = gateway(0, 50000, erd_min_gas_price=0)
    signed = EGLD.sign(pending({"to": BOB, "value": 2, "gasPrice": 5, "gasLimit": 5}), [ALICE_SEED], False, node)
    tx = json.loads(signed.tx_data)
    assert (tx["gasPrice"], tx["gasLimit"], tx["value"]) == (10**9, 50000, "2000000000000000000")


@pytest.mark.parametrize(("value", "atomic"), [("-3", "0"), ("0.000000000000000001", "1"), (0.5, "500000000000000000"),
                                               ("123456789.123456789", "123456789123456789000000000")])
def test_values_are_scaled_to_atomic_units_as_the_original(value: Any, atomic: str) -> None:
    signed = EGLD.sign(pending({"to": BOB, "value": value}), [ALICE_SEED], False, gateway(0, 50000))
    assert json.loads(signed.tx_data)["value"] == atomic


@pytest.mark.parametrize("payload", [{"to": BOB, "value": "0.0000000000000000001"}, {"to": BOB, "value": "abc"},
                                     {"to": BOB}, {"to": "erd1notanaddress", "value": "1"},
                                     {"to": BOB, "value": "1", "data": 7},
                                     {"to": ALICE.upper()[:-1] + "X", "value": 1}])
def test_bad_payloads_are_refused_before_any_node_call(payload: dict[str, Any]) -> None:
    node = RecordingNode()
    with pytest.raises(ChainError):
        EGLD.sign(pending(payload), [ALICE_SEED], False, node)
    assert node.calls == []


def test_a_zero_gas_estimate_is_the_gateways_message() -> None:
    node = gateway(0, 0)
    node.answers["gateway:POST /transaction/cost"] = {"data": {"txGasUnits": 0, "returnMessage": "insufficient funds"}}
    with pytest.raises(ChainError, match="insufficient funds"):
        EGLD.sign(pending({"to": BOB, "value": "1"}), [ALICE_SEED], False, node)


# -- wallets --------------------------------------------------------------------------------------


def test_getaddress_gives_the_address_of_the_stored_mnemonic_at_each_index() -> None:
    """The original derived EGLD addresses from the wallet's (absent) xpub, so every EGLD wallet showed one address."""
    other = EGLD.generate_wallet(False, managed=True)
    assert set(other) == {"mnemonic"}
    wallet = EGLD.wallet_from_mnemonic(MQ, False)
    assert EGLD.address(wallet, 1, False) == "erd1v4jp3x4ykjqphfy53w8aw7r30gqc74qv9extcr50am3qqn5y9zqsxef44a"
    assert EGLD.address(other, 1, False) != EGLD.address(wallet, 1, False)
    for index in (0, 5):
        key = EGLD.private_key(wallet, index, False)
        assert EGLD.address(wallet, index, False) == EGLD.address_from_private_key(key, False)


@pytest.mark.parametrize(("testnet", "coin"), [(False, 508), (True, 1)])
def test_keys_are_slip10_ed25519_as_bip_utils_derives_them(testnet: bool, coin: int) -> None:
    seed = Bip39SeedGenerator(MQ).Generate()
    for index in (0, 1, 2**31 - 1):
        node = Bip32Slip10Ed25519.FromSeed(seed).DerivePath(f"m/44'/{coin}'/0'/0'/{index}'")
        assert EGLD.private_key({"mnemonic": MQ}, index, testnet) == node.PrivateKey().Raw().ToHex()


@pytest.mark.parametrize("bad", ["0x" + "11" * 32, "11" * 31, "gg" * 32, "11" * 33])
def test_bad_keys_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ChainError) as caught:
        EGLD.address_from_private_key(bad, False)
    assert bad not in str(caught.value)


# -- the sandbox's verifier, pinned to the same public vectors ----------------------------------


def sendable(nonce: int, value: str, data: str | None, gas: int, signature: str) -> dict[str, Any]:
    tx: dict[str, Any] = {"nonce": nonce, "value": value, "receiver": BOB, "sender": ALICE, "gasPrice": 10**9,
                          "gasLimit": gas}
    if data:
        import base64

        tx["data"] = base64.b64encode(data.encode()).decode()
    return {**tx, "chainID": "local-testnet", "version": 1, "signature": signature}


@pytest.mark.parametrize(("nonce", "value", "data", "gas", "signature"), ERDJS_VECTORS)
def test_the_sandbox_verifier_accepts_the_public_vectors(nonce: int, value: str, data: str | None, gas: int,
                                                         signature: str) -> None:
    atomic = str(int(value) * 10**18)
    assert verify_egld(json.dumps(sendable(nonce, atomic, data, gas, signature)), "local-testnet")["nonce"] == nonce


@pytest.mark.parametrize("change", [{"value": "1"}, {"nonce": 90}, {"receiver": ALICE}, {"gasLimit": 50001},
                                    {"chainID": "T"}, {"signature": "00" * 64}])
def test_the_sandbox_verifier_refuses_any_change(change: dict[str, Any]) -> None:
    tx = {**sendable(*ERDJS_VECTORS[0]), **change}
    with pytest.raises(VerifyFailed):
        verify_egld(json.dumps(tx), "T" if "chainID" in change else "local-testnet")


def test_the_sandbox_gateway_tracks_nonces_and_balances() -> None:
    ledger = EgldLedger(execute=True, testnet=True)
    key, address = EGLD.generate_private_key(True)
    payload = json.loads(ledger.sample("EGLD", address, 10**18))
    node = SandboxGateway(ledger)
    first = EGLD.sign(pending(payload), [key], True, node)
    replay_body = {"txData": first.tx_data}
    ledger.submit("EGLD", first.tx_data, replay_body)
    with pytest.raises(Exception, match="nonce"):
        ledger.submit("EGLD", first.tx_data, replay_body)
    with pytest.raises(Exception, match="insufficient funds"):
        ledger.submit("EGLD", EGLD.sign(pending(payload), [key], True, node).tx_data, {})
    ledger.fund(address, 10**18)
    second = EGLD.sign(pending(payload), [key], True, node)
    assert json.loads(second.tx_data)["nonce"] == 1
    ledger.submit("EGLD", second.tx_data, {})
    balance = ledger._balance(None, {}, payload["to"]).body["balance"]
    assert balance == str(2 * 10**18)


class SandboxGateway(RecordingNode):
    """The ledger's gateway as a `Node` (what the in-process client would route to it)."""

    def __init__(self, ledger: EgldLedger) -> None:
        super().__init__()
        self.ledger = ledger

    def get(self, path: str, *, endpoint: str = "tatum", constant: bool = False) -> Any:
        return self.ledger.node("EGLD", endpoint, "GET", path, None, {}).body

    def post(self, path: str, body: Any, *, endpoint: str = "tatum", idempotent: bool = False) -> Any:
        return self.ledger.node("EGLD", endpoint, "POST", path, json.loads(json.dumps(body)), {}).body
