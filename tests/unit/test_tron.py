"""TRON wallets, the TronWeb re-encoding check and signing: spec vectors, public node answers, the sandbox's protobuf
runtime decoder and eth-keys' pure-Python RFC 6979 signer as the independent sides."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import base58
import pytest
from Crypto.Hash import keccak
from eth_keys import KeyAPI
from eth_keys.backends import NativeECCBackend
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.base import ChainError, PendingTransaction
from chains.tron import TRON, encode_raw
from kms.sandbox.api import Sandbox
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.tron import _signer, address_hex, message_types, unsigned_transaction, verify_tron
from tests.recording_node import RecordingNode

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "TRON.json").read_text())
MQ = VECTORS["mnemonic"]
NATIVE = KeyAPI(NativeECCBackend)
USDT = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"  # TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t
TRANSFER_SELECTOR = keccak.new(digest_bits=256, data=b"transfer(address,uint256)").digest()[:4].hex()


def pending(tx: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "TRON", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(tx)})


def sign(tx: dict[str, Any], key: str) -> dict[str, Any]:
    node = RecordingNode()  # no answers: a node call fails the test
    signed = TRON.sign(pending(tx), [key], True, node)
    assert node.calls == [] and signed.path == "/v3/tron/broadcast" and signed.extra == {}
    return json.loads(signed.tx_data)


def refusal(tx: dict[str, Any], key: str) -> str:
    with pytest.raises(ChainError) as caught:
        TRON.sign(pending(tx), [key], True, RecordingNode())
    return str(caught.value)


@pytest.fixture(scope="module")
def wallet() -> tuple[str, str]:
    """(private key, `T…` address) of MQ's index 1."""
    key = TRON.private_key_from_mnemonic(MQ, 1, False)
    return key, TRON.address_from_xpub(TRON.wallet_from_mnemonic(MQ, False)["xpub"], 1, False)


def trc20(owner_hex: str, to_hex: str, amount: int) -> dict[str, Any]:
    data = TRANSFER_SELECTOR + to_hex[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    return unsigned_transaction("TriggerSmartContract", {"data": data, "owner_address": owner_hex,
                                                          "contract_address": USDT}, fee_limit=100_000_000)


# -- wallets (spec §4.1) ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["xpubs"], ids=lambda v: v["xpub"][:8])
def test_spec_xpub_addresses_in_both_of_tronweb_s_forms(vector: dict[str, Any]) -> None:
    assert TRON.address_from_xpub(vector["xpub"], vector["index"], False) == vector["address"]


def test_the_hex_form_of_an_xpub_gives_its_base58_form_s_addresses() -> None:
    xpub = VECTORS["xpubs"][1]["xpub"]
    raw = base58.b58decode_check(xpub)
    hex_form = (raw[45:78] + raw[13:45]).hex()  # public key ‖ chain code, as TronWeb's 130-hex form
    for index in (0, 1, 7, 2**31 - 1):
        assert TRON.address_from_xpub(hex_form, index, True) == TRON.address_from_xpub(xpub, index, True)


def test_keys_derive_on_the_same_path_on_both_networks_and_match_their_xpub_addresses() -> None:
    main, test = TRON.wallet_from_mnemonic(MQ, False), TRON.wallet_from_mnemonic(MQ, True)
    assert main == test
    for index in (0, 1, 5):
        key = TRON.private_key(main, index, True)
        assert len(key) == 64 and key == key.lower() and not key.startswith("0x")
        assert TRON.address_from_private_key(key, True) == TRON.address(main, index, True)


def test_an_address_is_base58check_of_41_and_keccak_of_the_public_key() -> None:
    key = NATIVE.PrivateKey(bytes.fromhex(VECTORS["privateKeys"][0]["privateKey"]))
    raw = b"\x41" + keccak.new(digest_bits=256, data=key.public_key.to_bytes()).digest()[12:]
    assert base58.b58encode_check(raw).decode() == VECTORS["privateKeys"][0]["address"]


@pytest.mark.parametrize("bad", ["xpub", "0244" + "00" * 63, "02" + "ff" * 64,
                                 "tpubDFjLw3ykn4aB7fFt96FaqRjSnvtDsU2wpVr8GQk3Eo612LS9jo9JgMkQRfYVG248J3pTBsxGg3PYUXFd7p"
                                 "ReNLTeUzxFcUDL3zCvrp3H34a"])
def test_an_xpub_in_neither_form_is_refused(bad: str) -> None:
    with pytest.raises(ChainError):
        TRON.address_from_xpub(bad, 0, False)


# -- the encoder against public node answers --------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["transactions"], ids=lambda v: v["transaction"]["raw_data"]["contract"][0]
                         ["type"])
def test_raw_data_encodes_to_the_node_s_raw_data_hex(vector: dict[str, Any]) -> None:
    tx = vector["transaction"]
    raw = encode_raw(tx["raw_data"])
    assert raw.hex() == tx["raw_data_hex"]
    if "txID" in tx:
        assert hashlib.sha256(raw).hexdigest() == tx["txID"]


@pytest.mark.parametrize("vector", VECTORS["transactions"], ids=lambda v: v["transaction"]["raw_data"]["contract"][0]
                         ["type"])
def test_the_sandbox_decoder_reads_the_node_s_bytes_as_its_json_says(vector: dict[str, Any]) -> None:
    tx = copy.deepcopy(vector["transaction"])
    tx.setdefault("txID", hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest())
    if "signer" in vector:
        assert _signer(tx["signature"][0], bytes.fromhex(tx["txID"])).hex() == vector["signer"]
        assert verify_tron(json.dumps(tx), now_ms=0) == tx["txID"]
    else:  # unsigned: everything but the signature checks out
        with pytest.raises(VerifyFailed, match="SIGERROR: a single-signed"):
            verify_tron(json.dumps(tx), now_ms=0)
    tx["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] = "41" + "00" * 20
    with pytest.raises(VerifyFailed, match="disagrees with raw_data_hex"):
        verify_tron(json.dumps(tx), now_ms=0)


@settings(max_examples=40, deadline=None)
@given(amount=st.integers(0, 2**63 - 1), to=st.binary(min_size=20, max_size=20),
       memo=st.binary(max_size=40), fee_limit=st.one_of(st.none(), st.integers(1, 10**10)),
       kind=st.sampled_from(["TransferContract", "TransferAssetContract", "FreezeBalanceV2Contract"]))
def test_the_encoder_writes_what_the_protobuf_runtime_writes(amount: int, to: bytes, memo: bytes,
                                                             fee_limit: int | None, kind: str) -> None:
    owner = "41" + hashlib.sha256(to).hexdigest()[:40]
    value: dict[str, Any] = {
        "TransferContract": {"amount": amount, "owner_address": owner, "to_address": "41" + to.hex()},
        "TransferAssetContract": {"amount": amount, "asset_name": b"1002000".hex(), "owner_address": owner,
                                  "to_address": "41" + to.hex()},
        "FreezeBalanceV2Contract": {"frozen_balance": amount, "owner_address": owner,
                                    "resource": ["BANDWIDTH", "ENERGY", "TRON_POWER"][amount % 3]},
    }[kind]
    tx = unsigned_transaction(kind, value, fee_limit=fee_limit, memo=memo)
    assert encode_raw(tx["raw_data"]).hex() == tx["raw_data_hex"]


# -- signing ----------------------------------------------------------------------------------------


def test_a_transfer_is_signed_over_the_txid_as_tronweb_signs(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = unsigned_transaction("TransferContract", {"amount": 1_500_000, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    signed = sign(tx, key)
    [signature] = signed.pop("signature")
    assert signed == tx  # every other field untouched, key order kept
    assert len(signature) == 130 and signature[:128] == signature[:128].lower() and signature[128:] in ("1B", "1C")
    reference = NATIVE.PrivateKey(bytes.fromhex(key)).sign_msg_hash(bytes.fromhex(tx["txID"]))  # RFC 6979, low S
    assert signature == f"{reference.r:064x}{reference.s:064x}{reference.v + 27:02X}"
    assert verify_tron(json.dumps({**tx, "signature": [signature]})) == tx["txID"]


def test_the_broadcast_is_the_compact_json_of_the_signed_object(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = unsigned_transaction("TransferContract", {"amount": 1, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    tx_data = TRON.sign(pending(tx), [key], True, RecordingNode()).tx_data
    assert tx_data == json.dumps(json.loads(tx_data), separators=(",", ":"))
    assert tx_data.startswith('{"visible":false,"txID":"') and tx_data.endswith('"]}')


def test_a_trc20_transfer_is_signed_and_the_sandbox_accepts_it(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = trc20(address_hex(address), "41" + "cd" * 20, 25_000_000)
    signed = sign(tx, key)
    assert signed["raw_data"]["fee_limit"] == 100_000_000
    assert verify_tron(json.dumps(signed)) == tx["txID"]


def test_a_trc20_call_given_by_function_selector_and_parameter_encodes_its_selector(wallet: tuple[str, str]) -> None:
    key, address = wallet
    parameter = ("cd" * 20).rjust(64, "0") + hex(7)[2:].rjust(64, "0")
    tx = unsigned_transaction("TriggerSmartContract", {"data": TRANSFER_SELECTOR + parameter,
                                                       "owner_address": address_hex(address),
                                                       "contract_address": USDT})
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    del value["data"]
    value.update(function_selector="transfer(address,uint256)", parameter=parameter)
    assert verify_tron(json.dumps(sign(tx, key))) == tx["txID"]


def test_visible_base58_addresses_and_a_permission_id_are_encoded_as_tronweb_does(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = unsigned_transaction("TransferContract", {"amount": 9, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    raw = message_types()["Transaction.raw"].FromString(bytes.fromhex(tx["raw_data_hex"]))
    raw.contract[0].Permission_id = 2
    tx["raw_data_hex"] = raw.SerializeToString().hex()
    tx["txID"] = hashlib.sha256(raw.SerializeToString()).hexdigest()
    contract = tx["raw_data"]["contract"][0]
    contract["Permission_id"] = 2
    contract["parameter"]["value"].update(owner_address=address,
                                          to_address=base58.b58encode_check(b"\x41" + b"\xab" * 20).decode())
    tx["visible"] = True
    assert verify_tron(json.dumps(sign(tx, key))) == tx["txID"]


# -- refusals, with the original's reasons -----------------------------------------------------------


def test_a_payload_whose_raw_data_hex_disagrees_with_raw_data_is_refused(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = unsigned_transaction("TransferContract", {"amount": 1000, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    tx["raw_data"]["contract"][0]["parameter"]["value"]["amount"] = 1_000_000  # what the JSON says, not the bytes
    assert refusal(tx, key) == "Invalid transaction: raw_data does not encode to raw_data_hex"


def test_a_txid_that_is_not_the_hash_of_raw_data_hex_is_refused(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = trc20(address_hex(address), "41" + "cd" * 20, 1)
    tx["txID"] = hashlib.sha256(b"another transaction").hexdigest()
    assert refusal(tx, key) == "Invalid transaction: txID is not the SHA-256 of raw_data_hex"


@pytest.mark.parametrize("signature", [["00" * 65], [], "aa"])
def test_a_signed_transaction_is_refused(wallet: tuple[str, str], signature: Any) -> None:
    key, address = wallet
    tx = unsigned_transaction("TransferContract", {"amount": 1, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    assert refusal({**tx, "signature": signature}, key) == "Transaction is already signed"


def test_a_key_that_is_not_the_owner_s_is_refused(wallet: tuple[str, str]) -> None:
    key, _ = wallet
    other_key, other = TRON.generate_private_key(True)
    tx = unsigned_transaction("TransferContract", {"amount": 1, "owner_address": address_hex(other),
                                                   "to_address": "41" + "ab" * 20})
    assert refusal(tx, key) == "Private key does not match address in transaction"
    assert sign(tx, other_key)["signature"]


def test_a_contract_type_the_kms_does_not_encode_is_refused(wallet: tuple[str, str]) -> None:
    key, address = wallet
    tx = unsigned_transaction("TransferContract", {"amount": 1, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    tx["raw_data"]["contract"][0]["type"] = "VoteWitnessContract"
    assert "'VoteWitnessContract' is not signed by this KMS" in refusal(tx, key)


@pytest.mark.parametrize("raw_data", [None, {}, {"contract": []}, {"contract": [{"type": "TransferContract"}]}])
def test_a_payload_without_a_contract_is_refused(wallet: tuple[str, str], raw_data: Any) -> None:
    assert refusal({"txID": "00", "raw_data": raw_data, "raw_data_hex": "00"}, wallet[0]).startswith(
        "Invalid transaction")


# -- the sandbox ------------------------------------------------------------------------------------


def test_the_sandbox_refuses_a_forged_signature_and_an_expired_transaction(wallet: tuple[str, str]) -> None:
    key, address = wallet
    sandbox = Sandbox(execute=False, testnet=True)
    tx = unsigned_transaction("TransferContract", {"amount": 5, "owner_address": address_hex(address),
                                                   "to_address": "41" + "ab" * 20})
    other_key, _ = TRON.generate_private_key(True)
    forged = NATIVE.PrivateKey(bytes.fromhex(other_key)).sign_msg_hash(bytes.fromhex(tx["txID"]))
    body = {"txData": json.dumps({**tx, "signature": [forged.to_bytes().hex()]}), "signatureId": "x"}
    reply = sandbox.handle("POST", "/v3/tron/broadcast", {"x-api-key": "k"}, json.dumps(body).encode())
    assert reply.status == 400 and reply.body["message"].startswith("SIGERROR")
    expired = unsigned_transaction("TransferContract", {"amount": 5, "owner_address": address_hex(address),
                                                        "to_address": "41" + "ab" * 20}, lifetime_ms=-1)
    with pytest.raises(VerifyFailed, match="TRANSACTION_EXPIRATION_ERROR"):
        verify_tron(json.dumps(sign(expired, key)))
