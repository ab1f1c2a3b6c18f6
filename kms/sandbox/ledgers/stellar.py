"""The sandbox's Stellar ledger: every signature of an XLM broadcast checked by stellar-sdk for the passphrase.

stellar-sdk shares no code with the KMS signer (which uses only its XDR types to re-encode the envelope).
"""

from __future__ import annotations

from typing import Any

from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Rejected


class StellarLedger(Ledger):
    """XLM: broadcasts verified, nothing executed."""

    chains = ("XLM",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        from stellar_sdk import Network

        self.passphrase = Network.TESTNET_NETWORK_PASSPHRASE if testnet else Network.PUBLIC_NETWORK_PASSPHRASE

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            return verify_stellar(tx_data, self.passphrase)
        except VerifyFailed as exc:
            raise Rejected(400, "xlm.broadcast.failed", str(exc)) from None

    def describe(self) -> dict[str, Any]:
        return {"stellarPassphrase": self.passphrase}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """An unsigned envelope paying `amount` stroops from account `address` to a fresh account."""
        from decimal import Decimal

        from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

        builder = TransactionBuilder(Account(address, 1), self.passphrase, base_fee=100)
        builder.append_payment_op(Keypair.random().public_key, Asset.native(), str(Decimal(amount).scaleb(-7)))
        return builder.set_timeout(300).build().to_xdr()


def verify_stellar(envelope_xdr: str, passphrase: str) -> str:
    """Check a signed envelope for `passphrase`: every signature must verify for an account that has to sign
    (the transaction source and operation sources), and each of those must have signed. Return the tx hash."""
    from stellar_sdk import FeeBumpTransactionEnvelope, Keypair, TransactionBuilder
    from stellar_sdk.exceptions import BadSignatureError

    try:
        envelope = TransactionBuilder.from_xdr(envelope_xdr, passphrase)
    except Exception:
        raise VerifyFailed("tx_malformed: the envelope is not valid XDR") from None
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        required = {envelope.transaction.fee_source.account_id}
    else:
        tx = envelope.transaction
        required = {tx.source.account_id} | {op.source.account_id for op in tx.operations if op.source is not None}
    tx_hash = envelope.hash()
    signers = {account: Keypair.from_public_key(account) for account in required}
    signed: set[str] = set()
    if not envelope.signatures:
        raise VerifyFailed("tx_bad_auth: the transaction is not signed")
    for position, decorated in enumerate(envelope.signatures):
        matches = [account for account, keypair in signers.items()
                   if keypair.signature_hint() == decorated.signature_hint]
        for account in matches:
            try:
                signers[account].verify(tx_hash, decorated.signature)
            except BadSignatureError:
                continue
            signed.add(account)
            break
        else:
            raise VerifyFailed(f"tx_bad_auth_extra: signature {position} is not a valid signature of a required signer "
                               f"for this network")
    missing = required - signed
    if missing:
        raise VerifyFailed(f"tx_bad_auth: no signature of {sorted(missing)[0]}")
    return tx_hash.hex()
