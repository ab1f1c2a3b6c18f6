"""Stellar (XLM): random ed25519 accounts as StrKeys, and envelope signing (spec §2.2, §3.7).

Keys and StrKeys are PyNaCl and a few lines here; stellar-sdk (its XDR codec) is imported
only inside `sign`, because it takes a third of a second to import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from nacl.signing import SigningKey

from chains.base import ChainBase, ChainError, KeyPolicy, Node, PendingTransaction, Signed

# Network passphrases (public constants that name the network, not secrets).
MAINNET_PASSPHRASE = "Public Global Stellar Network ; September 2015"  # noqa: S105
TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105

_ACCOUNT_ID = 6 << 3  # StrKey version byte of a public key: "G…"
_SEED = 18 << 3  # StrKey version byte of a secret seed: "S…"


def _crc16_xmodem(data: bytes) -> bytes:
    """StrKey's checksum: CRC16-XModem, little-endian."""
    return binascii.crc_hqx(data, 0).to_bytes(2, "little")


def strkey_encode(version: int, payload: bytes) -> str:
    """A StrKey: base32 of version byte, 32-byte payload and checksum."""
    body = bytes([version]) + payload
    return base64.b32encode(body + _crc16_xmodem(body)).decode("ascii")


def strkey_decode(version: int, text: str, what: str) -> bytes:
    """The 32-byte payload of a StrKey of `version`; ChainError naming `what`, never echoing it."""
    if not isinstance(text, str) or len(text.strip()) != 56:
        raise ChainError(f"{what} is not a 56-character Stellar StrKey")
    try:
        raw = base64.b32decode(text.strip(), casefold=False)
    except (binascii.Error, ValueError):
        raise ChainError(f"{what} is not valid base32") from None
    if raw[0] != version or _crc16_xmodem(raw[:-2]) != raw[-2:]:
        raise ChainError(f"{what} has the wrong StrKey type or a bad checksum")
    return raw[1:-2]


@dataclass(frozen=True)
class StellarChain(ChainBase):
    """Stellar: no mnemonic, one keypair per wallet, envelopes signed for the network's passphrase."""

    code: str = "XLM"
    broadcast_path: str = "/v3/xlm/broadcast"
    mnemonic_based: bool = False
    key_policy: KeyPolicy = KeyPolicy.SECRET

    def generate_wallet(self, testnet: bool, *, managed: bool = True) -> dict[str, str]:
        """{"address": "G…", "secret": "S…"} of a fresh random ed25519 keypair."""
        key = SigningKey.generate()
        return {
            "address": strkey_encode(_ACCOUNT_ID, bytes(key.verify_key)),
            "secret": strkey_encode(_SEED, bytes(key)),
        }

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh secret (`S…`) and its address (`G…`)."""
        wallet = self.generate_wallet(testnet)
        return wallet["secret"], wallet["address"]

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """XLM has no mnemonic; always a ChainError."""
        raise ChainError("XLM wallets have no mnemonic: use storemanagedprivatekey")

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The `G…` address of an `S…` secret."""
        return strkey_encode(_ACCOUNT_ID, bytes(_signing_key(private_key).verify_key))

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Add our ed25519 signature to the base64 XDR envelope (v1, or v0) and return it re-encoded."""
        from stellar_sdk import xdr

        if not keys:
            raise ChainError(f"XLM transaction {pending.id} has no signing key")
        key = _signing_key(keys[0])
        try:
            envelope = xdr.TransactionEnvelope.from_xdr(pending.serialized_transaction.strip())
        except Exception:  # the XDR codec raises assorted types on malformed input
            raise ChainError("serializedTransaction is not a base64 XDR TransactionEnvelope") from None
        if envelope.type == xdr.EnvelopeType.ENVELOPE_TYPE_TX:
            assert envelope.v1 is not None
            transaction, signatures = envelope.v1.tx, envelope.v1.signatures
        elif envelope.type == xdr.EnvelopeType.ENVELOPE_TYPE_TX_V0:
            assert envelope.v0 is not None
            transaction, signatures = _v0_as_v1(envelope.v0.tx), envelope.v0.signatures
        else:
            raise ChainError("only transaction envelopes (v1 or v0) can be signed; fee-bump envelopes are not")
        passphrase = TESTNET_PASSPHRASE if testnet else MAINNET_PASSPHRASE
        payload = (hashlib.sha256(passphrase.encode()).digest()
                   + xdr.EnvelopeType.ENVELOPE_TYPE_TX.value.to_bytes(4, "big") + transaction.to_xdr_bytes())
        signature = key.sign(hashlib.sha256(payload).digest()).signature
        decorated = xdr.DecoratedSignature(xdr.SignatureHint(bytes(key.verify_key)[-4:]), xdr.Signature(signature))
        if all(s.signature.signature != signature for s in signatures):
            signatures.append(decorated)
        return Signed(envelope.to_xdr(), self.broadcast_path)


def _v0_as_v1(v0: object) -> object:
    """The v1 Transaction a v0 one stands for; its hash is what a v0 envelope's signatures sign (CAP-15)."""
    from stellar_sdk import xdr

    assert isinstance(v0, xdr.TransactionV0)
    source = xdr.MuxedAccount(xdr.CryptoKeyType.KEY_TYPE_ED25519, ed25519=v0.source_account_ed25519)
    if v0.time_bounds is None:
        cond = xdr.Preconditions(xdr.PreconditionType.PRECOND_NONE)
    else:
        cond = xdr.Preconditions(xdr.PreconditionType.PRECOND_TIME, time_bounds=v0.time_bounds)
    return xdr.Transaction(source, v0.fee, v0.seq_num, cond, v0.memo, v0.operations, xdr.TransactionExt(0))


def _signing_key(secret: str) -> SigningKey:
    return SigningKey(strkey_decode(_SEED, secret, "XLM secret"))


XLM = StellarChain()
