"""XLM wallets and envelope signing, verified with stellar-sdk's own Keypair and envelope hashing."""

from __future__ import annotations

import pytest
from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError as StellarBadSignature

from chains.base import ChainError, PendingTransaction
from chains.stellar import XLM

DESTINATION = Keypair.random().public_key


def unsigned_envelope(source: str, passphrase: str, v1: bool = True) -> str:
    """A payment with a memo and a timeout, built as the original's SDK builds it, unsigned."""
    builder = TransactionBuilder(Account(source, 4815162342), passphrase, base_fee=100, v1=v1)
    builder.append_payment_op(DESTINATION, Asset.native(), "12.5").add_text_memo("invoice 7").set_timeout(300)
    return builder.build().to_xdr()


def pending(xdr: str) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "XLM", "hashes": ["w"],
                                         "serializedTransaction": xdr})


def test_wallet_is_a_random_keypair_stellar_sdk_agrees_with() -> None:
    wallets = [XLM.generate_wallet(False, managed=True) for _ in range(10)]
    assert len({w["secret"] for w in wallets}) == 10
    for wallet in wallets:
        assert set(wallet) == {"address", "secret"}
        assert wallet["address"].startswith("G") and wallet["secret"].startswith("S")
        assert Keypair.from_secret(wallet["secret"]).public_key == wallet["address"]
        assert XLM.address_from_private_key(wallet["secret"], False) == wallet["address"]
    secret, address = XLM.generate_private_key(True)
    assert Keypair.from_secret(secret).public_key == address
    assert XLM.mnemonic_based is False


def test_address_of_a_secret_made_by_stellar_sdk() -> None:
    keypair = Keypair.random()
    assert XLM.address_from_private_key(keypair.secret, True) == keypair.public_key


@pytest.mark.parametrize("bad", ["", "S" + "A" * 55, "not a secret", None])
def test_bad_secrets_are_refused_without_echoing_them(bad: object) -> None:
    with pytest.raises(ChainError) as caught:
        XLM.address_from_private_key(bad, False)  # type: ignore[arg-type]
    assert not bad or str(bad) not in str(caught.value)


def test_a_public_key_is_not_accepted_as_a_secret() -> None:
    with pytest.raises(ChainError, match="StrKey type"):
        XLM.address_from_private_key(Keypair.random().public_key, False)


def test_no_mnemonic_and_no_xpub() -> None:
    with pytest.raises(ChainError):
        XLM.wallet_from_mnemonic("abandon " * 23 + "art", False)
    with pytest.raises(ChainError):
        XLM.private_key_from_mnemonic("x", 0, False)
    with pytest.raises(ChainError):
        XLM.address_from_xpub("xpub", 0, False)


@pytest.mark.parametrize(("testnet", "right", "wrong"), [
    (True, Network.TESTNET_NETWORK_PASSPHRASE, Network.PUBLIC_NETWORK_PASSPHRASE),
    (False, Network.PUBLIC_NETWORK_PASSPHRASE, Network.TESTNET_NETWORK_PASSPHRASE),
])
def test_signature_verifies_for_the_daemons_network_only(testnet: bool, right: str, wrong: str) -> None:
    wallet = XLM.generate_wallet(testnet, managed=True)
    signed = XLM.sign(pending(unsigned_envelope(wallet["address"], right)), [wallet["secret"]], testnet, None)
    assert signed.path == "/v3/xlm/broadcast" and signed.extra == {}
    envelope = TransactionEnvelope.from_xdr(signed.tx_data, right)
    assert len(envelope.signatures) == 1
    signature = envelope.signatures[0]
    keypair = Keypair.from_public_key(wallet["address"])
    assert signature.signature_hint == keypair.signature_hint()
    keypair.verify(envelope.hash(), signature.signature)
    with pytest.raises(StellarBadSignature):
        keypair.verify(TransactionEnvelope.from_xdr(signed.tx_data, wrong).hash(), signature.signature)
    # everything but the signature is untouched
    assert envelope.transaction.memo.memo_text == b"invoice 7"
    assert envelope.transaction.sequence == 4815162343


def test_v0_envelope_is_signed_over_its_v1_form_and_stays_v0() -> None:
    wallet = XLM.generate_wallet(True, managed=True)
    unsigned = unsigned_envelope(wallet["address"], Network.TESTNET_NETWORK_PASSPHRASE, v1=False)
    signed = XLM.sign(pending(unsigned), [wallet["secret"]], True, None)
    envelope = TransactionEnvelope.from_xdr(signed.tx_data, Network.TESTNET_NETWORK_PASSPHRASE)
    assert envelope.transaction.v1 is False
    Keypair.from_public_key(wallet["address"]).verify(envelope.hash(), envelope.signatures[0].signature)


def test_a_second_signer_is_appended_and_both_signatures_verify() -> None:
    source, cosigner = XLM.generate_wallet(True, managed=True), XLM.generate_wallet(True, managed=True)
    passphrase = Network.TESTNET_NETWORK_PASSPHRASE
    envelope = TransactionEnvelope.from_xdr(unsigned_envelope(source["address"], passphrase), passphrase)
    envelope.sign(source["secret"])  # signed first by stellar-sdk itself
    signed = XLM.sign(pending(envelope.to_xdr()), [cosigner["secret"]], True, None)
    result = TransactionEnvelope.from_xdr(signed.tx_data, passphrase)
    assert len(result.signatures) == 2
    for wallet, signature in zip((source, cosigner), result.signatures, strict=True):
        Keypair.from_public_key(wallet["address"]).verify(result.hash(), signature.signature)
    again = XLM.sign(pending(signed.tx_data), [cosigner["secret"]], True, None)
    assert len(TransactionEnvelope.from_xdr(again.tx_data, passphrase).signatures) == 2  # no duplicate


def test_malformed_and_fee_bump_envelopes_are_refused() -> None:
    wallet = XLM.generate_wallet(True, managed=True)
    with pytest.raises(ChainError, match="base64 XDR"):
        XLM.sign(pending("AAAA not xdr"), [wallet["secret"]], True, None)
    passphrase = Network.TESTNET_NETWORK_PASSPHRASE
    inner = TransactionEnvelope.from_xdr(unsigned_envelope(wallet["address"], passphrase), passphrase)
    inner.sign(wallet["secret"])
    fee_bump = TransactionBuilder.build_fee_bump_transaction(wallet["address"], 200, inner, passphrase)
    with pytest.raises(ChainError, match="fee-bump"):
        XLM.sign(pending(fee_bump.to_xdr()), [wallet["secret"]], True, None)


def test_signing_with_a_bad_secret_names_no_secret() -> None:
    wallet = XLM.generate_wallet(True, managed=True)
    xdr = unsigned_envelope(wallet["address"], Network.TESTNET_NETWORK_PASSPHRASE)
    broken = wallet["secret"][:-2] + "AA"
    with pytest.raises(ChainError) as caught:
        XLM.sign(pending(xdr), [broken], True, None)
    assert broken not in str(caught.value) and wallet["secret"][:20] not in str(caught.value)

