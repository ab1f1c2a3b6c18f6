"""ALGO wallets and signing: keys checked against py-algorand-sdk, signed bytes equal to py-algorand-sdk's own
signing of the same transaction, and the sandbox's verifier (algosdk decoding, OpenSSL ed25519)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from algosdk import account, encoding, mnemonic
from algosdk import transaction as algo_tx

from chains.algorand import ALGO
from chains.base import ChainError, PendingTransaction
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.algorand import NETWORKS, algosdk116_json, verify_algorand
from tests.kms_process import MQ
from tests.recording_node import RecordingNode

GENESIS_ID, GENESIS_HASH = NETWORKS[True]
# py-algorand-sdk's Transaction.sign is its reference signing, deprecated only in favour of a signer wrapper.
pytestmark = pytest.mark.filterwarnings("ignore:Use sign_transaction_with_signer:DeprecationWarning")


def pending(obj: dict[str, Any]) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "ALGO", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(obj)})


def algosdk_signed(txn: algo_tx.Transaction, private_key: str) -> str:
    """Hex msgpack of py-algorand-sdk signing `txn` itself."""
    return base64.b64decode(encoding.msgpack_encode(txn.sign(private_key))).hex()


def params(fee: int = 1000, flat: bool = True) -> algo_tx.SuggestedParams:
    return algo_tx.SuggestedParams(fee, 41_000, 42_000, GENESIS_HASH, GENESIS_ID, flat_fee=flat)


def our_secret(private_key: str) -> str:
    """The original's secret encoding (base32, no padding) of an algosdk private key (base64)."""
    return base64.b32encode(base64.b64decode(private_key)).decode().rstrip("=")


def sign(obj: dict[str, Any], secret: str) -> str:
    node = RecordingNode()
    signed = ALGO.sign(pending(obj), [secret], True, node)
    assert node.calls == [] and signed.path == "/v3/algorand/broadcast" and not signed.submit_first
    return signed.tx_data


# -- wallets ------------------------------------------------------------------------------------------


def test_generated_wallets_are_accounts_algosdk_agrees_with() -> None:
    for managed in (False, True):
        wallet = ALGO.generate_wallet(True, managed=managed)
        assert set(wallet) == {"address", "secret"} and len(wallet["secret"]) == 103
        private_key = base64.b64encode(base64.b32decode(wallet["secret"] + "=")).decode()
        assert account.address_from_private_key(private_key) == wallet["address"]
        assert ALGO.address_from_private_key(wallet["secret"], True) == wallet["address"]


def test_an_algosdk_account_and_its_25_word_mnemonic_give_the_same_wallet() -> None:
    private_key, address = account.generate_account()
    wallet = ALGO.wallet_from_mnemonic(mnemonic.from_private_key(private_key), testnet=False)
    assert wallet == {"address": address, "secret": our_secret(private_key)}
    assert ALGO.accepts_mnemonic and not ALGO.mnemonic_based


@pytest.mark.parametrize("words", [MQ, "", "artist alarm clerk", None])
def test_a_bip39_or_broken_mnemonic_is_refused(words: Any) -> None:
    with pytest.raises(ChainError, match="Algorand 25-word"):
        ALGO.wallet_from_mnemonic(words, True)


def test_a_secret_with_a_foreign_public_half_is_refused() -> None:
    one, _ = account.generate_account()
    two, _ = account.generate_account()
    forged = base64.b64decode(one)[:32] + base64.b64decode(two)[32:]
    with pytest.raises(ChainError, match="public half"):
        ALGO.address_from_private_key(base64.b32encode(forged).decode().rstrip("="), True)


# -- signing: byte-equal to py-algorand-sdk -----------------------------------------------------------------


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("note", [b"", b"invoice 42"])
def test_a_payment_is_byte_identical_to_algosdks_own_signing(flat: bool, note: bytes) -> None:
    private_key, sender = account.generate_account()
    _, receiver = account.generate_account()
    fee = 1000 if flat else 3  # a per-byte fee is multiplied by the size, as algosdk does
    obj = algosdk116_json(sender, receiver, amount=1_234_567, fee=fee, first_round=41_000, last_round=42_000,
                          genesis_id=GENESIS_ID, genesis_hash=GENESIS_HASH, note=note, flat_fee=flat)
    theirs = algo_tx.PaymentTxn(sender, params(fee, flat), receiver, 1_234_567, note=note or None)
    assert sign(obj, our_secret(private_key)) == algosdk_signed(theirs, private_key)


def test_an_asset_transfer_is_byte_identical_to_algosdks_own_signing() -> None:
    private_key, sender = account.generate_account()
    _, receiver = account.generate_account()
    obj = algosdk116_json(sender, receiver, amount=500, fee=2000, first_round=41_000, last_round=42_000,
                          genesis_id=GENESIS_ID, genesis_hash=GENESIS_HASH, kind="axfer", asset_index=10458941)
    theirs = algo_tx.AssetTransferTxn(sender, params(2000), receiver, 500, 10458941)
    assert sign(obj, our_secret(private_key)) == algosdk_signed(theirs, private_key)


def test_an_asset_opt_in_of_zero_to_oneself_is_byte_identical() -> None:
    private_key, sender = account.generate_account()
    obj = algosdk116_json(sender, sender, amount=0, fee=1000, first_round=41_000, last_round=42_000,
                          genesis_id=GENESIS_ID, genesis_hash=GENESIS_HASH, kind="axfer", asset_index=77)
    theirs = algo_tx.AssetTransferTxn(sender, params(), sender, 0, 77)
    assert sign(obj, our_secret(private_key)) == algosdk_signed(theirs, private_key)


def test_a_rekeyed_accounts_signer_is_named_as_algosdk_names_it() -> None:
    _, sender = account.generate_account()
    authorizer, _ = account.generate_account()
    _, receiver = account.generate_account()
    obj = algosdk116_json(sender, receiver, amount=10, fee=1000, first_round=41_000, last_round=42_000,
                          genesis_id=GENESIS_ID, genesis_hash=GENESIS_HASH)
    theirs = algo_tx.PaymentTxn(sender, params(), receiver, 10)
    ours = sign(obj, our_secret(authorizer))
    assert ours == algosdk_signed(theirs, authorizer)
    assert encoding.msgpack_decode(base64.b64encode(bytes.fromhex(ours)).decode()).authorizing_address


def test_fields_the_original_drops_are_dropped() -> None:
    private_key, sender = account.generate_account()
    _, receiver = account.generate_account()
    _, other = account.generate_account()
    other_json = algosdk116_json(other, other, amount=0, fee=0, first_round=1, last_round=1, genesis_id="",
                                 genesis_hash=GENESIS_HASH)["from"]
    obj = algosdk116_json(sender, receiver, amount=10, fee=1000, first_round=41_000, last_round=42_000,
                          genesis_id=GENESIS_ID, genesis_hash=GENESIS_HASH, reKeyTo=other_json,
                          lease={str(i): 7 for i in range(32)}, group={"type": "Buffer", "data": [1] * 32})
    theirs = algo_tx.PaymentTxn(sender, params(), receiver, 10)
    assert sign(obj, our_secret(private_key)) == algosdk_signed(theirs, private_key)


@pytest.mark.parametrize(("change", "reason"), [
    ({"type": "acfg"}, "type 'acfg'"),
    ({"type": "keyreg"}, "type 'keyreg'"),
    ({"closeRemainderTo": {"publicKey": {}}}, "closeRemainderTo"),
    ({"lastRound": 0}, "First empty or 0 value encountered during encoding: lv"),
    ({"firstRound": None}, "firstRound must be a positive number"),
    ({"fee": -1}, "fee must be a positive number"),
    ({"amount": 1.5}, "Amount must be a positive number"),
    ({"from": None}, "no 'from' address"),
    ({"to": {"publicKey": {"0": 1}}}, "'to' is not a 32-byte public key"),
    ({"note": "text"}, "'note' is not a byte array"),
    ({"genesisHash": "SGO1"}, "'genesisHash' is not a byte array"),
    ({"type": "axfer"}, "Asset index must be a positive number"),
])
def test_what_the_original_cannot_sign_is_refused_with_a_reason(change: dict[str, Any], reason: str) -> None:
    private_key, sender = account.generate_account()
    obj = algosdk116_json(sender, sender, amount=1, fee=1000, first_round=41_000, last_round=42_000,
                          genesis_id=GENESIS_ID, genesis_hash=GENESIS_HASH)
    obj.update(change)
    with pytest.raises(ChainError, match=reason):
        ALGO.sign(pending(obj), [our_secret(private_key)], True, RecordingNode())


# -- the sandbox's verifier -----------------------------------------------------------------------------


def test_the_verifier_accepts_algosdk_signed_transactions_and_names_their_id() -> None:
    private_key, sender = account.generate_account()
    txn = algo_tx.PaymentTxn(sender, params(), account.generate_account()[1], 99, note=os.urandom(4))
    assert verify_algorand(algosdk_signed(txn, private_key), testnet=True) == txn.get_txid()


def test_the_verifier_refuses_a_wrong_signer_network_or_encoding() -> None:
    private_key, sender = account.generate_account()
    stranger, _ = account.generate_account()
    txn = algo_tx.PaymentTxn(sender, params(), account.generate_account()[1], 99)
    good = algosdk_signed(txn, private_key)
    forged = encoding.msgpack_encode(algo_tx.SignedTransaction(txn, txn.sign(stranger).signature))
    with pytest.raises(VerifyFailed, match="signature"):
        verify_algorand(base64.b64decode(forged).hex(), testnet=True)
    with pytest.raises(VerifyFailed, match="genesis mismatch"):
        verify_algorand(good, testnet=False)
    with pytest.raises(VerifyFailed, match="decode"):
        verify_algorand("zz" + good, testnet=True)
    cheap = algo_tx.PaymentTxn(sender, params(fee=10), account.generate_account()[1], 99)
    with pytest.raises(VerifyFailed, match="minimum"):
        verify_algorand(algosdk_signed(cheap, private_key), testnet=True)
