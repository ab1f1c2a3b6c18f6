"""CELO and VET signing: public encoding vectors (celo-monorepo's signing-utils test, thor-devkit.js's transaction
test), the node calls each signer makes and does not make, and signatures recovered with eth-keys over hashes
recomputed with the `rlp` package and hashlib."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rlp
from eth_keys import keys
from eth_utils import keccak

from chains.base import ChainError, PendingTransaction
from chains.evm.celo import CELO, celo_fields
from chains.evm.vechain import VET, intrinsic_gas, sign_thor, thor_body_fields
from chains.primitives import rlp as own_rlp
from chains.primitives.secp import SigningKey
from tests.recording_node import RecordingNode

KEY = "0x4874827a55d87f2309c55b835af509e3427aa4d52321eeb49a2b93b5c0f8edfb"  # MQ, every EVM testnet, index 1
SENDER = keys.PrivateKey(bytes.fromhex(KEY[2:])).public_key.to_checksum_address()
TO = "0x687422eea2cb73b5d3e242ba5456b782919afc85"
CUSD_TEST = "0x874069fa1eb16d44d622f2e0ca25eea172369bc1"


def pending(code: str, payload: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": code, "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload)})


def as_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


# -- CELO ------------------------------------------------------------------------------------------


def test_celo_encoding_matches_celo_monorepos_legacy_vector() -> None:
    """celo-org/celo-monorepo packages/sdk/wallets/wallet-base/src/signing-utils.test.ts, 'convert CeloTx into RLP'."""
    tx = {"nonce": 0, "gasPrice": 99, "gasLimit": 10,
          "feeCurrency": bytes.fromhex("5409ed021d9299bf6814279a6a1411a7e866a631"), "gatewayFeeRecipient": b"",
          "to": bytes.fromhex("1be31a94361a391bbafb2a4ccd704f57dc04d4bb"),
          "value": 1000 * 10**18, "data": bytes.fromhex("abcdef")}
    assert own_rlp.encode([*celo_fields(tx), 2, 0, 0]).hex() == (
        "f84080630a945409ed021d9299bf6814279a6a1411a7e866a6318080941be31a94361a391bbafb2a4ccd704f57dc04d4bb893635c9"
        "adc5dea0000083abcdef028080")


def celo_decode(tx_data: str) -> dict[str, Any]:
    """Decode with the `rlp` package and recover the sender with eth-keys."""
    items = rlp.decode(bytes.fromhex(tx_data[2:]))
    assert len(items) == 12
    v = as_int(items[9])
    chain_id, recovery = (v - 35) // 2, (v - 35) % 2
    digest = keccak(rlp.encode([*items[:9], chain_id, b"", b""]))
    signature = keys.Signature(vrs=(recovery, as_int(items[10]), as_int(items[11])))
    return {"nonce": as_int(items[0]), "gasPrice": as_int(items[1]), "gas": as_int(items[2]),
            "feeCurrency": items[3], "gatewayFeeRecipient": items[4], "gatewayFee": as_int(items[5]), "to": items[6],
            "value": as_int(items[7]), "data": items[8], "chainId": chain_id,
            "sender": signature.recover_public_key_from_msg_hash(digest).to_checksum_address()}


def test_celo_complete_payload_asks_only_the_chain_id() -> None:
    node = RecordingNode({"eth_chainId": "0xaef3"})
    payload = {"chainId": 44787, "nonce": 5, "gasLimit": "0x5208", "gasPrice": "0x3b9aca00", "to": TO, "value": "0x10",
               "gatewayFeeRecipient": "0x" + "22" * 20, "gatewayFee": "0x3", "from": "ignored"}
    signed = CELO.sign(pending("CELO", payload), [KEY], True, node)
    assert node.methods() == ["eth_chainId"] and signed.path == "/v3/celo/broadcast"
    assert celo_decode(signed.tx_data) == {
        "nonce": 5, "gasPrice": 10**9, "gas": 21000, "feeCurrency": b"", "gatewayFeeRecipient": bytes([0x22] * 20),
        "gatewayFee": 3, "to": bytes.fromhex(TO[2:]), "value": 16, "data": b"", "chainId": 44787, "sender": SENDER}


@pytest.mark.parametrize(("fee_currency", "quote", "price"), [
    (CUSD_TEST, 0x1DCD6500, 0x3B9ACA00),          # cUSD quoted at 0.5 gwei or less: 1 gwei
    (CUSD_TEST.upper().replace("0X", "0x"), 0x1DCD6500, 0x3B9ACA00),
    (CUSD_TEST, 0x1DCD6501, 0x1DCD6501),          # above: the quote
    ("0x10c892a6ec43a53e45d0b916b4b7d383b1b78c0f", 0x100, 0x100),  # cEUR: the quote, however low
])
def test_celo_fee_currency_gas_price_and_the_cusd_minimum(fee_currency: str, quote: int, price: int) -> None:
    node = RecordingNode({"eth_getTransactionCount": "0x2", "eth_gasPrice": hex(quote), "eth_estimateGas": "0x7530",
                          "eth_chainId": "0xaef3"})
    payload = {"to": TO, "value": "0x1", "feeCurrency": fee_currency, "nonce": 0, "gasLimit": "0"}
    fields = celo_decode(CELO.sign(pending("CELO", payload), [KEY], True, node).tx_data)
    assert node.methods() == ["eth_getTransactionCount", "eth_gasPrice", "eth_estimateGas", "eth_chainId"]
    assert node.calls[0][1] == [SENDER, "latest"]
    assert node.calls[1][1] == [fee_currency.lower()]  # the price asked in the fee currency
    assert node.calls[2][1][0] == {"from": SENDER, "to": TO, "gasPrice": hex(price), "nonce": "0x2", "value": "0x1"}
    assert fields["feeCurrency"] == bytes.fromhex(fee_currency[2:])
    assert (fields["nonce"], fields["gasPrice"], fields["gas"]) == (2, price, 30000 + 100_000)
    assert fields["sender"] == SENDER


def test_celo_without_fee_currency_asks_the_plain_gas_price() -> None:
    node = RecordingNode({"eth_gasPrice": "0x12a05f200", "eth_chainId": "0xa4ec"})
    fields = celo_decode(CELO.sign(pending("CELO", {"to": TO, "nonce": 1, "gasLimit": 21000}), [KEY], False,
                                   node).tx_data)
    assert node.calls[0] == ("eth_gasPrice", [])
    assert (fields["gasPrice"], fields["chainId"]) == (5 * 10**9, 42220)


@pytest.mark.parametrize(("payload", "message"), [
    ({"to": TO, "gas": 21000}, "invalid CELO transaction key: gas"),
    ({"to": TO, "chainId": 1, "nonce": 1, "gasPrice": 1, "gasLimit": 21000}, "chainId mismatch"),
    ({"to": "0x1234", "nonce": 1, "gasPrice": 1, "gasLimit": 21000}, "20-byte"),
])
def test_celo_payload_errors(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ChainError, match=message):
        CELO.sign(pending("CELO", payload), [KEY], True, RecordingNode({"eth_chainId": "0xaef3"}))


# -- VET -------------------------------------------------------------------------------------------

THOR_TO = bytes.fromhex("7567d83b7b8d80addcb281a71d54fc7b3364ffed")
THOR_BODY = {"chainTag": 1, "blockRef": bytes.fromhex("00000000aabbccdd"), "expiration": 32,
             "clauses": [{"to": THOR_TO, "value": 10000, "data": bytes.fromhex("000000606060")},
                         {"to": THOR_TO, "value": 20000, "data": bytes.fromhex("000000606060")}],
             "gasPriceCoef": 128, "gas": 21000, "dependsOn": b"", "nonce": 12345678}


def test_thor_encoding_and_signature_match_thor_devkits_vectors() -> None:
    """vechain/thor-devkit.js v1.2.3 tests/transaction.test.ts: unsigned and signed encodings, intrinsic gas."""
    assert own_rlp.encode(thor_body_fields(THOR_BODY)).hex() == (
        "f8540184aabbccdd20f840df947567d83b7b8d80addcb281a71d54fc7b3364ffed82271086000000606060df947567d83b7b8d80"
        "addcb281a71d54fc7b3364ffed824e208600000060606081808252088083bc614ec0")
    key = SigningKey(bytes.fromhex("7582be841ca040aa940fff6c05773129e135623e41acce3e0b8ba520dc1ae26a"))
    assert sign_thor(THOR_BODY, key).hex().endswith(
        "b841f76f3c91a834165872aa9464fc55b03a13f46ea8d3b858e528fcceaf371ad6884193c3f313ff8effbb57fe4d1adc13dceb933bedb"
        "f9dbb528d2936203d5511df00")
    assert intrinsic_gas(THOR_BODY["clauses"]) == 37432
    assert intrinsic_gas([]) == 21000 and intrinsic_gas([{"to": None, "data": b""}]) == 53000


GENESIS_TEST = "0x000000000b2bce3c70bc649a02749e8687721b09ed2e15997f466536b20bb127"
BEST = "0x00bc614e" + "ab" * 28


def vet_decode(tx_data: str) -> dict[str, Any]:
    """Decode with `rlp`, hash with hashlib's BLAKE2b, recover the origin with eth-keys."""
    items = rlp.decode(bytes.fromhex(tx_data[2:]))
    assert len(items) == 10
    digest = hashlib.blake2b(rlp.encode(items[:9]), digest_size=32).digest()
    signature = items[9]
    origin = keys.Signature(signature_bytes=signature).recover_public_key_from_msg_hash(digest)
    [[to, value, data]] = items[3]
    return {"chainTag": as_int(items[0]), "blockRef": items[1].rjust(8, b"\0").hex(), "expiration": as_int(items[2]),
            "to": to.hex(), "value": as_int(value), "data": data.hex(), "gasPriceCoef": as_int(items[4]),
            "gas": as_int(items[5]), "dependsOn": items[6], "nonce": as_int(items[7]), "reserved": items[8],
            "origin": origin.to_checksum_address()}


def vet_node(gas_used: int = 0, reverted: bool = False) -> RecordingNode:
    return RecordingNode({
        "node:POST /accounts/*?revision=best": [{"gasUsed": gas_used, "reverted": reverted, "vmError": "",
                                                 "data": "0x", "events": [], "transfers": []}],
        "node:GET /blocks/0": {"number": 0, "id": GENESIS_TEST},
        "node:GET /blocks/best": {"number": 12345678, "id": BEST},
    })


def test_vet_payload_without_nonce_gets_node_fields_defaults_and_a_fresh_nonce() -> None:
    node = vet_node()
    signed = VET.sign(pending("VET", {"from": 0, "to": TO, "value": "1000000000000000000"}), [KEY], True, node)
    assert node.methods() == ["POST /accounts/*?revision=best", "GET /blocks/0", "GET /blocks/best"]
    assert node.calls[0][1] == {"clauses": [{"to": TO, "value": hex(10**18), "data": "0x"}], "caller": SENDER.lower()}
    fields = vet_decode(signed.tx_data)
    assert signed.path == "/v3/vet/broadcast"
    assert fields["chainTag"] == 0x27 and fields["blockRef"] == BEST[2:18]
    assert (fields["expiration"], fields["gasPriceCoef"], fields["gas"]) == (720, 128, 21000)
    assert fields["to"] == TO[2:] and fields["value"] == 10**18 and fields["data"] == ""
    assert fields["dependsOn"] == b"" and fields["reserved"] == [] and fields["origin"] == SENDER
    again = vet_decode(VET.sign(pending("VET", {"to": TO, "value": "1"}), [KEY], True, vet_node()).tx_data)
    assert again["nonce"] != fields["nonce"]  # each signature draws its own nonce: distinct transaction ids


def test_vet_gas_is_always_estimated_and_given_fields_are_used() -> None:
    node = vet_node(gas_used=30000)
    payload = {"to": TO, "data": "0xa9059cbb00", "gas": 999999, "chainTag": 74, "blockRef": "0x0000000100000002",
               "expiration": "32", "gasPriceCoef": 0, "nonce": "ff", "dependsOn": "0x" + "11" * 32}
    fields = vet_decode(VET.sign(pending("VET", payload), [KEY], False, node).tx_data)
    assert node.methods() == ["POST /accounts/*?revision=best"]  # tag and reference given: no block calls
    assert node.calls[0][1]["gas"] == 999999
    assert fields["gas"] == 5000 + 16000 + 4 * 68 + 4 + 30000 + 15000  # intrinsic + VM gas + thorify's margin
    assert (fields["chainTag"], fields["blockRef"], fields["expiration"]) == (74, "0000000100000002", 32)
    assert fields["gasPriceCoef"] == 0  # a number is taken as it is (validNumberOrDefault), also 0
    assert fields["nonce"] == 0xFF and fields["dependsOn"] == bytes([0x11] * 32)  # a string nonce is hex


def test_vet_reverted_estimate_and_bad_data_are_errors() -> None:
    with pytest.raises(ChainError, match="Gas estimation failed"):
        VET.sign(pending("VET", {"to": TO, "data": "0x01"}), [KEY], True, vet_node(reverted=True))
    with pytest.raises(ChainError, match="Data must be valid hex"):
        VET.sign(pending("VET", {"to": TO, "data": "hello"}), [KEY], True, vet_node())


def test_vet_mnemonic_wallets_derive_on_the_vet_path() -> None:
    """The original derived VET keys with the BNB branch and could not sign (spec §2.4); here the VET path."""
    mnemonic = ("quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
                "leaf good forward erupt split divert bread kitten")
    wallet = VET.wallet_from_mnemonic(mnemonic, False)
    key = VET.private_key(wallet, 1, False)
    assert key == "0xd2a4c2f89f58e50f2e29ed1e68552680417a0534c47bebf18f2f5f3a27817251"
    fields = vet_decode(VET.sign(pending("VET", {"to": TO}), [key], False, vet_node()).tx_data)
    assert fields["origin"].lower() == VET.address(wallet, 1, False) == "0x5b70c58cb71712e2d4d3519e065bbe196546877d"
