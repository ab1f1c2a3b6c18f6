"""Independent verifiers for the sandbox's BTC and XLM broadcasts: python-bitcoinlib and stellar-sdk.

Neither shares code with the KMS signers, so a broadcast they accept is one a real node would accept
as far as signatures go.
"""

from __future__ import annotations

from dataclasses import dataclass


class VerifyFailed(ValueError):
    """The transaction is malformed or a signature does not verify; the message says which and where."""


@dataclass(frozen=True)
class Prevout:
    """An output a transaction may spend: its locking script and amount."""

    script: bytes
    satoshis: int


@dataclass(frozen=True)
class BitcoinTx:
    """What the sandbox keeps of an accepted bitcoin transaction."""

    txid: str
    spends: tuple[tuple[str, int], ...]
    outputs: tuple[Prevout, ...]


def verify_bitcoin(tx_hex: str, prevouts: dict[tuple[str, int], Prevout]) -> BitcoinTx:
    """Check every input's signature against the output it spends (P2PKH, P2PK, P2WPKH, P2SH-P2WPKH).

    Legacy and P2SH parts run through python-bitcoinlib's `VerifyScript`; that version has no witness
    interpreter, so a v0 key-hash witness is checked with its BIP143 `SignatureHash` and `CPubKey.verify`.
    """
    from bitcoin.core import CTransaction, b2lx
    from bitcoin.core.script import CScript
    from bitcoin.core.scripteval import SCRIPT_VERIFY_P2SH, VerifyScript

    try:
        tx = CTransaction.deserialize(bytes.fromhex(tx_hex))
    except Exception:
        raise VerifyFailed("TX decode failed") from None
    if not tx.vin or not tx.vout:
        raise VerifyFailed("bad-txns-vin-empty or bad-txns-vout-empty")
    spent_total = 0
    spends = []
    for index, txin in enumerate(tx.vin):
        outpoint = (b2lx(txin.prevout.hash), txin.prevout.n)
        prevout = prevouts.get(outpoint)
        if prevout is None:
            raise VerifyFailed(f"bad-txns-inputs-missingorspent: input {index} spends {outpoint[0]}:{outpoint[1]}")
        spends.append(outpoint)
        spent_total += prevout.satoshis
        script_pubkey = CScript(prevout.script)
        try:
            VerifyScript(txin.scriptSig, script_pubkey, tx, index, flags=(SCRIPT_VERIFY_P2SH,))
        except Exception as exc:
            raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: {exc}") from None
        if script_pubkey.is_witness_v0_keyhash():
            if len(txin.scriptSig):
                raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: scriptSig on witness")
            program = bytes(script_pubkey)[2:]
        elif script_pubkey.is_p2sh() and _nested_keyhash(txin.scriptSig):
            program = bytes(list(txin.scriptSig)[0])[2:]
        else:
            if tx.has_witness() and tx.wit.vtxinwit[index].scriptWitness.stack:
                raise VerifyFailed(f"non-mandatory-script-verify-flag: input {index} has an unexpected witness")
            continue
        _verify_keyhash_witness(tx, index, program, prevout.satoshis)
    if sum(out.nValue for out in tx.vout) > spent_total:
        raise VerifyFailed("bad-txns-in-belowout: outputs exceed inputs")
    outputs = tuple(Prevout(bytes(out.scriptPubKey), out.nValue) for out in tx.vout)
    return BitcoinTx(b2lx(tx.GetTxid()), tuple(spends), outputs)


def _nested_keyhash(script_sig: object) -> bool:
    """True when a P2SH scriptSig pushes exactly one v0 key-hash witness program (P2SH-P2WPKH)."""
    items = list(script_sig)  # type: ignore[call-overload]
    return len(items) == 1 and isinstance(items[0], bytes) and len(items[0]) == 22 and items[0][:2] == b"\x00\x14"


def _verify_keyhash_witness(tx: object, index: int, program: bytes, amount: int) -> None:
    from bitcoin.core import Hash160
    from bitcoin.core.key import CPubKey
    from bitcoin.core.script import (
        OP_CHECKSIG,
        OP_DUP,
        OP_EQUALVERIFY,
        OP_HASH160,
        SIGVERSION_WITNESS_V0,
        CScript,
        SignatureHash,
    )

    witness = tx.wit.vtxinwit[index].scriptWitness.stack if tx.has_witness() else []  # type: ignore[attr-defined]
    if len(witness) != 2:
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: witness is not [signature, pubkey]")
    signature, pubkey = bytes(witness[0]), bytes(witness[1])
    if len(pubkey) != 33 or Hash160(pubkey) != program:
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: witness key does not match program")
    if not signature:
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: empty signature")
    script_code = CScript([OP_DUP, OP_HASH160, program, OP_EQUALVERIFY, OP_CHECKSIG])
    digest = SignatureHash(script_code, tx, index, signature[-1], amount=amount, sigversion=SIGVERSION_WITNESS_V0)
    if not CPubKey(pubkey).verify(digest, signature[:-1]):
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: witness signature does not verify")


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
