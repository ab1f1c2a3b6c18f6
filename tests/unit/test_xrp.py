"""XRP seeds, addresses and signing: public vectors, and xrpl-py's own keypairs and `sign` as the independent side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xrpl.constants import CryptoAlgorithm
from xrpl.core import keypairs
from xrpl.core.addresscodec import classic_address_to_xaddress, decode_seed, encode_classic_address
from xrpl.core.binarycodec import decode, encode, encode_for_signing
from xrpl.models.transactions.transaction import Transaction
from xrpl.transaction import sign as xrpl_sign
from xrpl.wallet import Wallet

from chains.base import ChainError, PendingTransaction
from chains.xrp import XRP, encode_seed, key_from_seed
from kms.sandbox.api import Sandbox
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.xrp import verify_xrp
from tests.recording_node import RecordingNode

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "XRP.json").read_text())
ISSUER = "rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe"
DESTINATION = "rDsbeomae4FXwgQTJp9Rs64Qg9vDiTCdBv"


def pending(tx: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "XRP", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(tx)})


def signed_blob(tx: dict[str, Any], secret: str) -> str:
    node = RecordingNode()  # no answers: any node call fails the test
    signed = XRP.sign(pending(tx), [secret], True, node)
    assert node.calls == [] and signed.path == "/v3/xrp/broadcast" and signed.extra == {}
    return signed.tx_data


def xrpl_py_blob(tx: dict[str, Any], secret: str) -> str:
    """What xrpl-py's own `sign` makes of the same transaction and seed."""
    return encode(xrpl_sign(Transaction.from_xrpl(tx), Wallet.from_seed(secret)).to_xrpl())


def payment(account: str, **fields: Any) -> dict[str, Any]:
    return {"TransactionType": "Payment", "Account": account, "Destination": DESTINATION, "Amount": "1000000",
            "Fee": "12", "Sequence": 7, "LastLedgerSequence": 9000, "Flags": 0, **fields}


# -- spec and public vectors ----------------------------------------------------------------------


def test_spec_vector_5_comes_out_byte_identical() -> None:
    [vector] = VECTORS["transactions"]
    assert signed_blob(vector["serializedTransaction"], vector["secret"]) == vector["txBlob"]


@pytest.mark.parametrize("vector", VECTORS["publicKeys"], ids=lambda v: v["secret"][:3])
def test_keys_and_signatures_match_xrpl_py_s_published_vectors(vector: dict[str, str]) -> None:
    key = key_from_seed(vector["secret"])
    assert key.public_key.hex().upper() == vector["publicKey"]
    assert key.sign(vector["message"].encode()).hex().upper() == vector["signature"]


def test_seed_encoding_matches_xrpl_py_s_vectors_for_the_same_entropy() -> None:
    entropy = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")  # xrpl-py tests/unit/core/keypairs/test_main.py
    assert encode_seed(entropy, ed25519=True) == "sEdSKaCy2JT7JaM7v95H9SxkhP9wS2r"
    assert encode_seed(entropy, ed25519=False) == "sp5fghtJtpUorTwvof1NpDXAzNwf5"


@settings(max_examples=25, deadline=None)
@given(entropy=st.binary(min_size=16, max_size=16), ed25519=st.booleans())
def test_keys_and_addresses_agree_with_xrpl_py_for_any_seed(entropy: bytes, ed25519: bool) -> None:
    seed = encode_seed(entropy, ed25519)
    public, _ = keypairs.derive_keypair(seed)
    assert key_from_seed(seed).public_key.hex().upper() == public
    assert XRP.address_from_private_key(seed, False) == keypairs.derive_classic_address(public)


# -- wallets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("managed", "algorithm"), [(True, CryptoAlgorithm.ED25519),
                                                    (False, CryptoAlgorithm.SECP256K1)])
def test_generated_wallets_are_seeds_of_the_original_s_key_type(managed: bool, algorithm: CryptoAlgorithm) -> None:
    wallet = XRP.generate_wallet(True, managed=managed)
    assert set(wallet) == {"address", "secret"}
    assert wallet["secret"].startswith("sEd") == managed
    assert decode_seed(wallet["secret"])[1] is algorithm
    assert Wallet.from_seed(wallet["secret"]).address == wallet["address"]


def test_a_batch_key_is_an_ed25519_seed_of_its_address() -> None:
    secret, address = XRP.generate_private_key(False)
    assert secret.startswith("sEd") and Wallet.from_seed(secret).address == address


def test_no_mnemonic_no_xpub() -> None:
    assert XRP.mnemonic_based is False
    with pytest.raises(ChainError, match="no mnemonic"):
        XRP.wallet_from_mnemonic("abandon " * 23 + "art", False)


@pytest.mark.parametrize("bad", [
    "rKHuaCVSzJCFh43ji9EvFAysmu1KHdMb8N",  # an address, not a seed
    "shunwft7BwrFHdcXmAA87CazLsRMZ",  # checksum broken
    "sEdSKaCy2JT7JaM7v95H9SxkhP9wS2rr",
    "842E09EB40D8175979EFB0071B28163E11AED0F14BDD84090A4CEFB936EF5701",
])
def test_what_is_not_a_seed_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(ChainError) as caught:
        XRP.address_from_private_key(bad, False)
    assert bad not in str(caught.value)


# -- signing: the bytes xrpl-py's own sign writes -------------------------------------------------

amounts = st.one_of(
    st.integers(min_value=1, max_value=10**17).map(str),
    st.builds(lambda value, currency: {"currency": currency, "value": value, "issuer": ISSUER},
              st.decimals(min_value="0.000001", max_value="9999999999", places=6).map(str),  # XRP IOUs: 16 digits
              st.sampled_from(["USD", "EUR", "0158415500000000C1F76FF6ECB0BAC600000000"])),
)


def transactions(account: str) -> st.SearchStrategy[dict[str, Any]]:
    base = {"Account": st.just(account), "Fee": st.integers(10, 10**6).map(str), "Sequence": st.integers(1, 2**32 - 1),
            "LastLedgerSequence": st.integers(1, 2**32 - 1)}
    return st.one_of(
        st.fixed_dictionaries({"TransactionType": st.just("Payment"), "Destination": st.just(DESTINATION),
                               "Amount": amounts, **base},
                              optional={"DestinationTag": st.integers(0, 2**32 - 1),
                                        "SourceTag": st.integers(0, 2**32 - 1),
                                        "Flags": st.sampled_from([0, 2147483648])}),
        st.fixed_dictionaries({"TransactionType": st.just("TrustSet"), **base,
                               "LimitAmount": amounts.filter(lambda a: isinstance(a, dict))},
                              optional={"Flags": st.sampled_from([0, 131072, 262144]),
                                        "QualityIn": st.integers(0, 10**9)}),
        st.fixed_dictionaries({"TransactionType": st.just("AccountSet"), **base},
                              optional={"SetFlag": st.sampled_from([1, 8, 9]), "ClearFlag": st.sampled_from([2, 6]),
                                        "Domain": st.binary(min_size=1, max_size=40).map(lambda b: b.hex()),
                                        "TransferRate": st.integers(1_000_000_000, 2_000_000_000)}),
    )


ED25519_SEED, SECP256K1_SEED = "sEdSKaCy2JT7JaM7v95H9SxkhP9wS2r", "sp5fghtJtpUorTwvof1NpDXAzNwf5"


@pytest.mark.parametrize("secret", [ED25519_SEED, SECP256K1_SEED], ids=["ed25519", "secp256k1"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_blob_is_byte_identical_to_xrpl_py_s_sign(secret: str, data: st.DataObject) -> None:
    tx = data.draw(transactions(key_from_seed(secret).address))
    assert signed_blob(tx, secret) == xrpl_py_blob(tx, secret)


def test_an_x_address_destination_takes_the_plain_path_and_still_equals_xrpl_py() -> None:
    tx = payment(key_from_seed(SECP256K1_SEED).address,
                 Destination=classic_address_to_xaddress(DESTINATION, 77, is_test_network=False))
    blob = signed_blob(tx, SECP256K1_SEED)
    assert blob == xrpl_py_blob(tx, SECP256K1_SEED)
    assert decode(blob)["DestinationTag"] == 77


@pytest.mark.parametrize("secret", [ED25519_SEED, SECP256K1_SEED], ids=["ed25519", "secp256k1"])
def test_a_payment_signed_with_each_key_type_verifies_with_xrpl_py(secret: str) -> None:
    key = key_from_seed(secret)
    blob = signed_blob(payment(key.address, DestinationTag=12), secret)
    tx = decode(blob)
    assert blob == blob.upper()
    assert tx["SigningPubKey"] == keypairs.derive_keypair(secret)[0]
    assert keypairs.is_valid_message(bytes.fromhex(encode_for_signing(tx)), bytes.fromhex(tx["TxnSignature"]),
                                     tx["SigningPubKey"])
    assert (tx["Account"], tx["Destination"], tx["Amount"], tx["DestinationTag"]) == (
        key.address, DESTINATION, "1000000", 12)
    assert verify_xrp(blob) == Transaction.from_xrpl(tx).get_hash()


def test_null_fields_are_dropped_as_xrpl_js_drops_them() -> None:
    account = key_from_seed(ED25519_SEED).address
    assert signed_blob(payment(account, SourceTag=None, Memos=None), ED25519_SEED) == signed_blob(
        payment(account), ED25519_SEED)


@pytest.mark.parametrize(("change", "message"), [
    ({"TxnSignature": "3045"}, 'must not contain "TxnSignature" or "Signers"'),
    ({"Signers": [{"Signer": {}}]}, 'must not contain "TxnSignature" or "Signers"'),
    ({"TransactionType": "OfferCreate"}, "'OfferCreate' is not signed by this KMS"),
    ({"Destination": None}, "Payment: missing field Destination"),
    ({"Sequence": "7"}, "invalid field Sequence"),
    ({"Amount": "12.5"}, "not a valid XRP transaction"),
    ({"Destination": "rNotAnAddress"}, "not a valid XRP transaction"),
    ({"Fee": 12}, "invalid field Fee"),
    ({"Bogus": 1}, "not a valid XRP transaction: unknown field 'Bogus'"),
])
def test_payloads_xrpl_js_would_refuse_are_refused(change: dict[str, Any], message: str) -> None:
    tx = payment(key_from_seed(ED25519_SEED).address, **change)
    with pytest.raises(ChainError) as caught:
        XRP.sign(pending(tx), [ED25519_SEED], True, RecordingNode())
    assert message in str(caught.value) and "\n" not in str(caught.value)


# -- the sandbox's verifier -------------------------------------------------------------------------


def test_the_ledger_accepts_what_xrpl_py_signs_and_refuses_alterations() -> None:
    wallet = Wallet.from_seed(SECP256K1_SEED)
    blob = xrpl_py_blob(payment(wallet.address), SECP256K1_SEED)
    assert verify_xrp(blob) == Transaction.from_xrpl(decode(blob)).get_hash()
    tampered = decode(blob)
    tampered["Amount"] = "1000001"
    with pytest.raises(VerifyFailed, match="temBAD_SIGNATURE"):
        verify_xrp(encode(tampered))
    with pytest.raises(VerifyFailed, match="uppercase hex"):
        verify_xrp(blob.lower())


def test_the_ledger_refuses_a_key_that_is_not_the_account_s() -> None:
    other = encode_classic_address(bytes(20))
    tx = payment(other)
    tx["SigningPubKey"] = key_from_seed(ED25519_SEED).public_key.hex().upper()
    tx["TxnSignature"] = key_from_seed(ED25519_SEED).sign(bytes.fromhex(encode_for_signing(tx))).hex().upper()
    with pytest.raises(VerifyFailed, match="tefBAD_AUTH"):
        verify_xrp(encode(tx))


def test_the_ledger_refuses_a_high_s_signature() -> None:
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    tx = decode(xrpl_py_blob(payment(Wallet.from_seed(SECP256K1_SEED).address), SECP256K1_SEED))
    der = bytes.fromhex(tx["TxnSignature"])
    r = der[4:4 + der[3]]
    s = int.from_bytes(der[6 + der[3]:], "big")
    high = (order - s).to_bytes(33, "big")
    tx["TxnSignature"] = (bytes([0x30, 4 + len(r) + 33, 2, len(r)]) + r + bytes([2, 33]) + high).hex().upper()
    with pytest.raises(VerifyFailed, match="not fully canonical"):
        verify_xrp(encode(tx))


def test_the_sandbox_answers_a_bad_broadcast_with_a_400_and_the_reason() -> None:
    sandbox = Sandbox(execute=False, testnet=True)
    blob = signed_blob(payment(key_from_seed(ED25519_SEED).address, NetworkID=21338), ED25519_SEED)
    reply = sandbox.handle("POST", "/v3/xrp/broadcast", {"x-api-key": "k"},
                           json.dumps({"txData": blob, "signatureId": "x"}).encode())
    assert reply.status == 400 and "telNETWORK_ID" in reply.body["message"]
    good = signed_blob(payment(key_from_seed(ED25519_SEED).address), ED25519_SEED)
    body = json.dumps({"txData": good, "signatureId": "x"}).encode()
    assert sandbox.handle("POST", "/v3/xrp/broadcast", {"x-api-key": "k"}, body).status == 200
    again = sandbox.handle("POST", "/v3/xrp/broadcast", {"x-api-key": "k"}, body)
    assert again.status == 400 and "tefALREADY" in again.body["message"]
