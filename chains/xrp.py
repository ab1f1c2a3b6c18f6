"""XRP Ledger: random seeds (ed25519 `sEd…`, secp256k1 `s…`), classic `r…` addresses and xrpl.js-style signing
(spec §2.2, §2.3, §3.8).

Seeds, keys and addresses are a few lines over PyNaCl and coincurve; the binary codec is xrpl-py's, imported only
inside `sign` (importing xrpl takes most of a second).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import base58
from nacl.signing import SigningKey as Ed25519Key

from chains.base import ChainBase, ChainError, KeyPolicy, Node, PendingTransaction, Signed, json_object
from chains.primitives.secp import N, PublicKey, SigningKey, hash160

_ED25519_SEED = b"\x01\xe1\x4b"  # seed prefix that encodes as "sEd…"
_SECP256K1_SEED = b"\x21"  # seed prefix that encodes as "s…"
_ACCOUNT_ID = b"\x00"  # classic address prefix: "r…"
_SIGNING_PREFIX = b"STX\x00"  # HashPrefix.transactionSig: what a single signature signs
#: The transaction types Tatum queues for XRP (spec §3.8) and the fields each must have.
_REQUIRED = {"Payment": ("Amount", "Destination"), "TrustSet": ("LimitAmount",), "AccountSet": ()}


def _sha512_half(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()[:32]


def _b58check_encode(payload: bytes) -> str:
    return base58.b58encode_check(payload, alphabet=base58.RIPPLE_ALPHABET).decode("ascii")


def classic_address(public_key: bytes) -> str:
    """The `r…` address of a 33-byte public key (ed25519 keys with their 0xED prefix)."""
    return _b58check_encode(_ACCOUNT_ID + hash160(public_key))


def encode_seed(entropy: bytes, ed25519: bool) -> str:
    """A family seed: base58check (XRPL alphabet) of the key type's prefix and 16 bytes of entropy."""
    return _b58check_encode((_ED25519_SEED if ed25519 else _SECP256K1_SEED) + entropy)


@dataclass(frozen=True)
class XrpKey:
    """A key pair derived from a seed: `public_key` as the ledger writes it (33 bytes), and a signer."""

    public_key: bytes
    ed25519: bool
    _sign: Callable[[bytes], bytes]

    def __repr__(self) -> str:  # never show the key
        return f"XrpKey(address={self.address!r}, ed25519={self.ed25519})"

    @property
    def address(self) -> str:
        return classic_address(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """ed25519 over the message itself; secp256k1 ECDSA (RFC 6979, low S, DER) over its SHA-512 half."""
        return self._sign(message)


@lru_cache(maxsize=256)
def key_from_seed(seed: str) -> XrpKey:
    """The key pair of a family seed, of the type its encoding names (as xrpl.js `Wallet.fromSeed`).

    Cached: the daemon signs with the same few seeds, and a secp256k1 seed takes two derivation passes.
    """
    if not isinstance(seed, str) or not 20 <= len(seed.strip()) <= 40:
        raise ChainError("XRP secret is not a family seed (s… or sEd…)")
    try:
        raw = base58.b58decode_check(seed.strip().encode("ascii"), alphabet=base58.RIPPLE_ALPHABET)
    except (ValueError, UnicodeEncodeError):
        raise ChainError("XRP secret is not a valid seed (bad base58 or checksum)") from None
    if len(raw) == 19 and raw[:3] == _ED25519_SEED:
        key = Ed25519Key(_sha512_half(raw[3:]))
        return XrpKey(b"\xed" + bytes(key.verify_key), True, lambda message: key.sign(message).signature)
    if len(raw) == 17 and raw[:1] == _SECP256K1_SEED:
        secret = _secp256k1_secret(raw[1:])
        signer = SigningKey(secret)
        return XrpKey(signer.public_key.format(), False,
                      lambda message: signer.sign(_sha512_half(message), hasher=None))
    raise ChainError("XRP secret is not a family seed (s… or sEd…)")


def _secp256k1_secret(entropy: bytes) -> bytes:
    """The account key of a secp256k1 seed: root key plus the intermediate key of account 0 (XRPL key derivation)."""
    root = _scalar(entropy)
    root_public = PublicKey.from_secret(root.to_bytes(32, "big")).format()
    intermediate = _scalar(root_public + (0).to_bytes(4, "big"))
    return ((root + intermediate) % N).to_bytes(32, "big")


def _scalar(data: bytes) -> int:
    """The first SHA-512 half of `data ‖ counter` that is a valid secp256k1 key."""
    for counter in range(2**32):
        candidate = int.from_bytes(_sha512_half(data + counter.to_bytes(4, "big")), "big")
        if 0 < candidate < N:
            return candidate
    raise ChainError("seed derives no valid secp256k1 key")  # pragma: no cover - probability 2^-(128·2^32)


@dataclass(frozen=True)
class XrpChain(ChainBase):
    """XRP: no mnemonic, one seed per wallet; Payment, TrustSet and AccountSet signed as xrpl.js 2.x signs them."""

    code: str = "XRP"
    broadcast_path: str = "/v3/xrp/broadcast"
    mnemonic_based: bool = False
    key_policy: KeyPolicy = KeyPolicy.SECRET

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"address", "secret"}: an ed25519 seed for `generatemanagedwallet` (xrpl.js `Wallet.generate()`), a
        secp256k1 seed for `generatewallet` (the ripple-lib key type of the original's v1 command)."""
        secret = encode_seed(os.urandom(16), ed25519=managed)
        return {"address": key_from_seed(secret).address, "secret": secret}

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh ed25519 seed (`sEd…`) and its address."""
        wallet = self.generate_wallet(testnet, managed=True)
        return wallet["secret"], wallet["address"]

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """XRP has no mnemonic; always a ChainError."""
        raise ChainError("XRP wallets have no mnemonic: use storemanagedprivatekey")

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The `r…` address of a seed of either key type."""
        return key_from_seed(private_key).address

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Sign the autofilled transaction JSON with `keys[0]`; the uppercase hex blob goes to `/v3/xrp/broadcast`."""
        if not keys:
            raise ChainError(f"XRP transaction {pending.id} has no signing key")
        key = key_from_seed(keys[0])
        tx = _transaction(json_object(pending.serialized_transaction))
        tx["SigningPubKey"] = key.public_key.hex().upper()
        return Signed(sign_encoded(tx, key.sign), self.broadcast_path)


def _transaction(obj: dict[str, Any]) -> dict[str, Any]:
    """The payload's fields, checked as xrpl.js's `Wallet.sign` checks them before it signs."""
    tx = {name: value for name, value in obj.items() if value is not None}
    if tx.get("TxnSignature") or tx.get("Signers"):
        raise ChainError('txJSON must not contain "TxnSignature" or "Signers" properties')
    tx.pop("TxnSignature", None)
    tx.pop("Signers", None)
    kind = tx.get("TransactionType")
    if kind not in _REQUIRED:
        raise ChainError(f"XRP transaction type {kind!r} is not signed by this KMS: only "
                         f"{', '.join(_REQUIRED)} are")
    if not isinstance(tx.get("Account"), str):
        raise ChainError(f"{kind}: missing field Account")
    for name in _REQUIRED[kind]:
        if name not in tx:
            raise ChainError(f"{kind}: missing field {name}")
    for name in ("Sequence", "LastLedgerSequence", "Flags", "SourceTag", "DestinationTag", "NetworkID"):
        value = tx.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32):
            raise ChainError(f"{kind}: invalid field {name}")
    if "Fee" in tx and not isinstance(tx["Fee"], str):
        raise ChainError(f"{kind}: invalid field Fee")
    return tx


def sign_encoded(tx: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """The uppercase hex blob of `tx` with its `TxnSignature`, as xrpl-py's `encode` writes it.

    Each top-level field is encoded once with xrpl-py's field definitions and type encoders, and the fields are
    laid out in canonical order twice: the signing fields for the signature, then all of them with TxnSignature
    for the blob. A payload naming an X-address takes xrpl-py's whole-object path (`encode_for_signing`, sign,
    `encode`), which also splits the address's tag into its own field.
    """
    from xrpl.constants import XRPLException
    from xrpl.core.binarycodec import encode, encode_for_signing

    try:
        if any(_is_xaddress(name, value) for name, value in tx.items()):
            signature = sign(bytes.fromhex(encode_for_signing(dict(tx))))
            return encode({**tx, "TxnSignature": signature.hex().upper()})
        fields = sorted(encoded for name, value in tx.items() if (encoded := _encode_field(name, value)))
        signature = sign(_SIGNING_PREFIX + b"".join(data for _, signing, data in fields if signing))
        signed = _encode_field("TxnSignature", signature.hex().upper())
        assert signed is not None
        return b"".join(data for _, _, data in sorted([*fields, signed])).hex().upper()
    except (XRPLException, ValueError, TypeError, KeyError, ArithmeticError, AttributeError, IndexError) as exc:
        raise ChainError(f"serializedTransaction is not a valid XRP transaction: {_reason(exc)}") from None


def _encode_field(name: str, value: Any) -> tuple[int, bool, bytes] | None:
    """(canonical ordinal, is a signing field, field header and value bytes); None for a field never serialized."""
    from xrpl.core.binarycodec.binary_wrappers.binary_serializer import BinarySerializer
    from xrpl.core.binarycodec.definitions.definitions import get_transaction_type_code

    field, name_aware = _field(name)
    if not field.is_serialized or value is None:
        return None
    if name == "TransactionType":
        value = get_transaction_type_code(value)
    serializer = BinarySerializer()
    serializer.write_field_and_value(field, field.associated_type.from_value(*((value, name) if name_aware
                                                                               else (value,))))
    if field.type == "STObject":
        serializer.append(b"\xe1")  # ObjectEndMarker
    return field.ordinal, field.is_signing, bytes(serializer)


@lru_cache(maxsize=512)
def _field(name: str) -> tuple[Any, bool]:
    """xrpl-py's FieldInstance of a field name, and whether its type encoder takes the name; KeyError if unknown.

    Cached: xrpl-py rebuilds the instance (and a table of every type) on each lookup.
    """
    from xrpl.core.binarycodec.definitions import definitions
    from xrpl.core.binarycodec.types.amount import SIGNED_XRP_FIELDS
    from xrpl.core.binarycodec.types.uint64 import SPECIAL_FIELDS

    try:
        field = definitions.get_field_instance(name)
    except KeyError:
        raise KeyError(f"unknown field {name!r}"[:80]) from None
    return field, name in SPECIAL_FIELDS or name in SIGNED_XRP_FIELDS


def _is_xaddress(name: str, value: Any) -> bool:
    """True for an account field holding something other than a classic `r…` address (an X-address, or junk)."""
    return isinstance(value, str) and _field(name)[0].type == "AccountID" and not value.startswith("r")


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text[:200]


XRP = XrpChain()
