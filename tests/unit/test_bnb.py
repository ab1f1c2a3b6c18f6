"""BNB Beacon Chain: the amino StdTx and sign document against @binance-chain/javascript-sdk's public vectors, the
node calls of the signer, and the sandbox's independent decoder and verifier.

Public vectors (binance-chain/javascript-sdk @ v4.1.1, the major version the original used):
- `__tests__/fixtures/transfer.json`: a MsgSend's StdSignDoc bytes (`signMsgBytes`) and its signed StdTx
  (`stdTxBytes`, with the signer's public key and signature);
- `__tests__/encoder.test.ts` "marshalBinary": a NewOrder StdTx's amino bytes.
The KMS input is spec §4.2 vector 6 (`tatumio/tatum-js@f10ae25e src/transaction/bnb.spec.ts`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigencode_string

from chains.base import ChainError, PendingTransaction
from chains.bnb import BNB, encode_object, sign_doc, std_tx
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.bnb import decode_transfer, verify_signature
from tests.recording_node import RecordingNode

# __tests__/fixtures/transfer.json
FIXTURE_SIGN_DOC = (
    '{"account_number":"34","chain_id":"Binance-Chain-Nile","data":null,"memo":"test","msgs":[{"inputs":[{"address":'
    '"tbnb1hgm0p7khfk85zpz5v0j8wnej3a90w709zzlffd","coins":[{"amount":"1000000000","denom":"BNB"}]}],"outputs":[{'
    '"address":"tbnb1ss57e8sa7xnwq030k2ctr775uac9gjzglqhvpy","coins":[{"amount":"1000000000","denom":"BNB"}]}]}],'
    '"sequence":"31","source":"1"}')
FIXTURE_STD_TX = (
    "cc01f0625dee0a4e2a2c87fa0a230a14ba36f0fad74d8f41045463e4774f328f4af779e5120b0a03424e42108094ebdc0312230a148429"
    "ec9e1df1a6e03e2fb2b0b1fbd4e770544848120b0a03424e42108094ebdc03126e0a26eb5ae98721029729a52e4e3c2b4a4e52aa74033e"
    "edaf8ba1df5ab6d1f518fd69e67bbd309b0e124097b4c2e41b0d0f61ddcf4020fff0ecb227d6df69b3dd7e657b34be0e32b956e22d0c6b"
    "e5832d25353ae24af0bb223d4a5337320518c4e7708b84c8e05eb6356b1822201f1a04746573742001")
FIXTURE_FROM = bytes.fromhex("ba36f0fad74d8f41045463e4774f328f4af779e5")
FIXTURE_TO = bytes.fromhex("8429ec9e1df1a6e03e2fb2b0b1fbd4e770544848")
FIXTURE_PUBKEY = bytes.fromhex("029729a52e4e3c2b4a4e52aa74033eedaf8ba1df5ab6d1f518fd69e67bbd309b0e")
FIXTURE_SIGNATURE = bytes.fromhex(
    "97b4c2e41b0d0f61ddcf4020fff0ecb227d6df69b3dd7e657b34be0e32b956e22d0c6be5832d25353ae24af0bb223d4a5337320518c4e7708b84c8e05eb6356b")

# spec §4.2 vector 6
TATUM_KEY = "268a1c3c1b08e4cfd93cf380c39027ac0b6a707abcb4f578ad9ffd172a6eb327"
TATUM_ADDRESS = "tbnb1z6hg2sflt9wdrjrjysdn57c0yd56nkts9lmwun"
TATUM_PAYLOAD = (
    '{"msg":{"inputs":[{"address":{"type":"Buffer","data":[22,174,133,65,63,89,92,209,200,114,36,27,58,123,15,35,'
    '105,169,217,112]},"coins":[{"denom":"BNB","amount":1700000}]}],"outputs":[{"address":{"type":"Buffer","data":'
    '[22,174,133,65,63,89,92,209,200,114,36,27,58,123,15,35,105,169,217,112]},"coins":[{"denom":"BNB","amount":'
    '1700000}]}],"aminoPrefix":"2A2C87FA"},"signMsg":{"inputs":[{"address":"tbnb1z6hg2sflt9wdrjrjysdn57c0yd56nkts9lm'
    'wun","coins":[{"denom":"BNB","amount":1700000}]}],"outputs":[{"address":"tbnb1z6hg2sflt9wdrjrjysdn57c0yd56nkts9'
    'lmwun","coins":[{"denom":"BNB","amount":1700000}]}]},"memo":"109429545"}')


def fixture_msg() -> dict[str, Any]:
    coins = [{"denom": "BNB", "amount": 1000000000}]
    return {"inputs": [{"address": FIXTURE_FROM, "coins": coins}],
            "outputs": [{"address": FIXTURE_TO, "coins": coins}], "aminoPrefix": "2A2C87FA"}


def test_the_std_tx_encoding_equals_the_sdk_fixture() -> None:
    assert std_tx(fixture_msg(), FIXTURE_PUBKEY, FIXTURE_SIGNATURE, 34, 31, "test", source=1).hex() == FIXTURE_STD_TX


def test_the_sign_document_equals_the_sdk_fixture() -> None:
    coins = [{"denom": "BNB", "amount": "1000000000"}]  # the fixture's sign message carries the amounts as text
    sign_msg = {"inputs": [{"address": "tbnb1hgm0p7khfk85zpz5v0j8wnej3a90w709zzlffd", "coins": coins}],
                "outputs": [{"address": "tbnb1ss57e8sa7xnwq030k2ctr775uac9gjzglqhvpy", "coins": coins}]}
    assert sign_doc(sign_msg, "Binance-Chain-Nile", 34, 31, "test", source=1) == FIXTURE_SIGN_DOC.encode()


def test_amino_follows_the_sdks_encoder_test_vector() -> None:
    """encoder.test.ts "marshalBinary": a NewOrder in a StdTx with an empty memo (left out as a default)."""
    order = {"sender": bytes.fromhex("b6561dcc104130059a7c08f48c64610c1f6f9064"),
             "id": "B6561DCC104130059A7C08F48C64610C1F6F9064-11", "symbol": "BTC-5C4_BNB", "ordertype": 2, "side": 1,
             "price": 100000000, "quantity": 1200000000, "timeinforce": 1, "aminoPrefix": "CE6DC043"}
    signature = {"pub_key": bytes.fromhex(
                     "eb5ae9872103baf53d1424f8ea83d03a82f6d157b5401c4ea57ffb8317872e15a19fc9b7ad7b"),
                 "signature": bytes.fromhex(
                     "e79a6606d28cf07b9cc6f566b524a5282b13beccc3162376c79f392620c95a447b19f64e761e22a7a3bc311a780e7d9f"
                     "dd521e2f7edec25308c5bac6aa1c0a31"), "account_number": 1, "sequence": 10}
    expected = (
        "db01f0625dee0a65ce6dc0430a14b6561dcc104130059a7c08f48c64610c1f6f9064122b423635363144434331303431333030353941"
        "374330384634384336343631304331463646393036342d31311a0b4254432d3543345f424e42200228013080c2d72f3880989abc0440"
        "01126e0a26eb5ae9872103baf53d1424f8ea83d03a82f6d157b5401c4ea57ffb8317872e15a19fc9b7ad7b1240e79a6606d28cf07b9c"
        "c6f566b524a5282b13beccc3162376c79f392620c95a447b19f64e761e22a7a3bc311a780e7d9fdd521e2f7edec25308c5bac6aa1c0a"
        "311801200a")
    stdtx = {"msg": [order], "signatures": [signature], "memo": "", "aminoPrefix": "F0625DEE"}
    assert encode_object(stdtx).hex() == expected


def test_the_sandbox_decodes_and_verifies_the_sdk_fixture() -> None:
    tx = decode_transfer(FIXTURE_STD_TX)
    assert (tx.account_number, tx.sequence, tx.memo, tx.source) == (34, 31, "test", 1)
    assert [e.address for e in tx.inputs] == [FIXTURE_FROM] and [e.address for e in tx.outputs] == [FIXTURE_TO]
    assert tx.public_key == FIXTURE_PUBKEY and tx.signature == FIXTURE_SIGNATURE
    verify_signature(tx, "Binance-Chain-Nile", True)
    with pytest.raises(VerifyFailed):
        verify_signature(tx, "Binance-Chain-Tigris", True)


@pytest.mark.parametrize("tamper", [("1a0474657374", "1a0474657375"), ("1822", "1823"),
                                    ("108094ebdc03", "108194ebdc03")])
def test_the_sandbox_refuses_a_tampered_fixture(tamper: tuple[str, str]) -> None:
    with pytest.raises(VerifyFailed):
        verify_signature(decode_transfer(FIXTURE_STD_TX.replace(*tamper)), "Binance-Chain-Nile", True)


@pytest.mark.parametrize("bad", ["zz", "00", FIXTURE_STD_TX + "00", FIXTURE_STD_TX[:-2], "02" + "ab" * 2])
def test_the_sandbox_refuses_bytes_that_are_no_std_tx(bad: str) -> None:
    with pytest.raises(VerifyFailed):
        decode_transfer(bad)


# -- the signer ----------------------------------------------------------------------------------


def tatum_node(account_number: int = 7, sequence: int = 3, chain_id: str = "Binance-Chain-Ganges") -> RecordingNode:
    return RecordingNode({"node:GET /api/v1/node-info": {"node_info": {"network": chain_id}},
                          f"GET /v3/bnb/account/{TATUM_ADDRESS}": {"account_number": account_number,
                                                                   "sequence": sequence, "address": TATUM_ADDRESS}})


def pending(payload: str) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "60b4ea4fae706954a27ee2dd", "chain": "BNB", "withdrawalId":
                                         "60b4ea4fae706954a27ee2db", "hashes": ["26452800-ee32-42ab-a07d-f52d0745d7c7"],
                                         "index": None, "serializedTransaction": payload})


def test_the_original_kms_input_is_signed_and_the_independent_verifier_accepts_it() -> None:
    node = tatum_node()
    signed = BNB.sign(pending(TATUM_PAYLOAD), [TATUM_KEY], True, node)
    assert node.methods() == ["GET /api/v1/node-info", f"GET /v3/bnb/account/{TATUM_ADDRESS}"]
    assert signed.path == "/v3/bnb/broadcast" and not signed.extra  # off-chain ids go to the chain's broadcast too
    tx = decode_transfer(signed.tx_data)
    assert (tx.account_number, tx.sequence, tx.memo, tx.source) == (7, 3, "109429545", 0)
    assert [(c.denom, c.amount) for c in tx.inputs[0].coins] == [("BNB", 1700000)]
    verify_signature(tx, "Binance-Chain-Ganges", True)


def test_the_signature_is_rfc6979_low_s_as_the_sdks_tiny_secp256k1() -> None:
    signed = BNB.sign(pending(TATUM_PAYLOAD), [TATUM_KEY], True, tatum_node())
    sign_msg = json.loads(TATUM_PAYLOAD)["signMsg"]
    document = json.dumps({"account_number": "7", "chain_id": "Binance-Chain-Ganges", "data": None,
                           "memo": "109429545", "msgs": [sign_msg], "sequence": "3", "source": "0"},
                          sort_keys=True, separators=(",", ":")).encode()
    key = SigningKey.from_string(bytes.fromhex(TATUM_KEY), curve=SECP256k1)
    raw = key.sign_digest_deterministic(hashlib.sha256(document).digest(), hashfunc=hashlib.sha256,
                                        sigencode=sigencode_string)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    expected = r + min(s, SECP256k1.order - s).to_bytes(32, "big")
    assert decode_transfer(signed.tx_data).signature == expected


def test_account_number_zero_makes_the_sdk_ask_the_node() -> None:
    node = tatum_node(account_number=0, sequence=0)
    node.answers[f"node:GET /api/v1/account/{TATUM_ADDRESS}"] = {"account_number": 0, "sequence": 9}
    signed = BNB.sign(pending(TATUM_PAYLOAD), [TATUM_KEY], True, node)
    assert node.methods()[-1] == f"GET /api/v1/account/{TATUM_ADDRESS}"
    assert decode_transfer(signed.tx_data).sequence == 9


def test_mainnet_signs_for_the_node_chain_id_with_a_bnb1_sender() -> None:
    node = RecordingNode({"node:GET /api/v1/node-info": {"node_info": {"network": "Binance-Chain-Tigris"}},
                          "GET /v3/bnb/account/bnb1z6hg2sflt9wdrjrjysdn57c0yd56nktst2j2uz": {"account_number": 1,
                                                                                              "sequence": 0}})
    payload = TATUM_PAYLOAD.replace(TATUM_ADDRESS, "bnb1z6hg2sflt9wdrjrjysdn57c0yd56nktst2j2uz")
    tx = decode_transfer(BNB.sign(pending(payload), [TATUM_KEY], False, node).tx_data)
    verify_signature(tx, "Binance-Chain-Tigris", False)


@pytest.mark.parametrize("change", [
    lambda p: p["msg"].pop("inputs"),
    lambda p: p["msg"]["inputs"][0]["address"].update(data=[1, 2, 3]),
    lambda p: p["msg"]["outputs"][0]["address"].update(data=[300] * 20),
    lambda p: p.pop("signMsg"),
    lambda p: p.update(memo=5),
    lambda p: p["msg"]["inputs"][0]["coins"][0].update(amount=1.5),
    lambda p: p["msg"]["inputs"][0]["coins"][0].update(amount=2**60),
])
def test_bad_payloads_are_refused_before_any_node_call(change: Any) -> None:
    payload = json.loads(TATUM_PAYLOAD)
    change(payload)
    node = RecordingNode()
    with pytest.raises(ChainError):
        BNB.sign(pending(json.dumps(payload)), [TATUM_KEY], True, node)
    assert node.calls == []


def test_a_node_without_a_network_is_the_sdks_error() -> None:
    node = tatum_node()
    node.answers["node:GET /api/v1/node-info"] = {"node_info": {}}
    with pytest.raises(ChainError, match="chain id should not be null"):
        BNB.sign(pending(TATUM_PAYLOAD), [TATUM_KEY], True, node)


def test_wallets_are_random_keys_with_their_address() -> None:
    wallet = BNB.generate_wallet(True, managed=True)
    assert set(wallet) == {"address", "privateKey"} and wallet["address"].startswith("tbnb1")
    assert BNB.address_from_private_key(wallet["privateKey"], True) == wallet["address"]
    assert BNB.generate_wallet(False, managed=False)["address"].startswith("bnb1")
    with pytest.raises(ChainError):
        BNB.wallet_from_mnemonic("abandon " * 23 + "art", True)
