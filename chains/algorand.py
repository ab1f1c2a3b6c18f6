"""Algorand (ALGO): random ed25519 accounts with base32 secrets, and transactions rebuilt from algosdk 1.16's
JSON form and signed (spec §2.2, §3.10).

The rebuild follows the original (v1 `signAlgoKMSTransaction` over algosdk 1.16.0's `Transaction`): the
same fields kept, dropped and re-encoded, the same fee rule, the same canonical msgpack; the signature
is PyNaCl's ed25519 over "TX" + msgpack, and the output the hex msgpack SignedTransaction. msgpack (the
codec py-algorand-sdk uses) encodes; algosdk itself is imported only to read 25-word mnemonics.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.signing import SigningKey

from chains.base import ChainBase, ChainError, KeyPolicy, Node, PendingTransaction, Signed, json_object

MIN_TX_FEE = 1000  # microAlgos (algosdk's ALGORAND_MIN_TX_FEE)
#: Bytes a signature adds to an encoded transaction (algosdk's NUM_ADDL_BYTES_AFTER_SIGNING).
SIGNATURE_OVERHEAD = 75
_MAX_SAFE_INTEGER = 2**53 - 1
_EMPTY = "The object contains empty or 0 values. First empty or 0 value encountered during encoding: "


def encode_address(public_key: bytes) -> str:
    """An Algorand address: base32 (no padding) of the public key and the last 4 bytes of its SHA-512/256."""
    checksum = hashlib.new("sha512_256", public_key).digest()[-4:]
    return base64.b32encode(public_key + checksum).decode("ascii").rstrip("=")


def encode_secret(key: SigningKey) -> str:
    """The original's secret: RFC 4648 base32, no padding, of the 64-byte secret key (seed ‖ public key)."""
    return base64.b32encode(bytes(key) + bytes(key.verify_key)).decode("ascii").rstrip("=")


#: RFC 4648 base32 digits -> the digits `int(..., 32)` reads for the same values (0-9, a-v).
_BASE32_TO_INT = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcdefghijklmnopqrstuvwxyz",
                               "0123456789abcdefghijklmnopqrstuv0123456789abcdefghijklmnop")
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcdefghijklmnopqrstuvwxyz")


def secret_key_bytes(secret: Any) -> bytes:
    """The 64 bytes (seed ‖ public key) of a base32 secret (103 characters, padding optional), checked: the
    public half must be the seed's (signing with a foreign half would leak the key)."""
    if not isinstance(secret, str) or not secret.strip():
        raise ChainError("ALGO secret is empty or not a string")
    text = secret.strip().rstrip("=")
    if len(text) != 103 or not _BASE32.issuperset(text):
        raise ChainError("ALGO secret is not the base32 of a 64-byte secret key")
    number = int(text.translate(_BASE32_TO_INT), 32)  # 515 bits: the key, then 3 zero bits
    if number & 0b111:
        raise ChainError("ALGO secret is not the base32 of a 64-byte secret key")
    raw = (number >> 3).to_bytes(64, "big")
    public, secret_key = crypto_sign_seed_keypair(raw[:32])
    if public != raw[32:]:
        raise ChainError("ALGO secret's public half does not belong to its seed")
    return secret_key


def signing_key(secret: Any) -> SigningKey:
    """The key of a base32 secret, checked."""
    return SigningKey(secret_key_bytes(secret)[:32])


@dataclass(frozen=True)
class AlgorandChain(ChainBase):
    """Algorand: one keypair per wallet; a 25-word Algorand mnemonic is accepted where the original takes one."""

    code: str = "ALGO"
    broadcast_path: str = "/v3/algorand/broadcast"
    key_policy: KeyPolicy = KeyPolicy.SECRET
    mnemonic_based: bool = False
    accepts_mnemonic: bool = True

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"address", "secret"} of a fresh random account."""
        return _wallet(SigningKey.generate())

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"address", "secret"} of an Algorand 25-word account mnemonic (algosdk's `mnemonicToSecretKey`)."""
        from algosdk import mnemonic as algo_mnemonic

        words = " ".join(mnemonic.split()) if isinstance(mnemonic, str) else ""
        try:
            secret = base64.b64decode(algo_mnemonic.to_private_key(words))
        except Exception:  # algosdk raises several types (length, word, checksum)
            raise ChainError("mnemonic is not an Algorand 25-word account mnemonic (count, word or checksum)") from None
        return _wallet(SigningKey(secret[:32]))

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh secret and its address."""
        wallet = _wallet(SigningKey.generate())
        return wallet["secret"], wallet["address"]

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The address of a base32 secret."""
        return encode_address(bytes(signing_key(private_key).verify_key))

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Rebuild the transaction from its algosdk 1.16 JSON, sign it, return hex msgpack {sig, txn[, sgnr]}."""
        import msgpack

        txn = encoded_transaction(json_object(pending.serialized_transaction))
        if not keys:
            raise ChainError(f"ALGO transaction {pending.id} has no signing key")
        secret_key = secret_key_bytes(keys[0])
        signature = crypto_sign(b"TX" + _pack(txn), secret_key)[:64]
        signed: dict[str, Any] = {"sig": signature, "txn": txn}
        public = secret_key[32:]
        if public != txn["snd"]:
            signed = {"sgnr": public, **signed}  # a rekeyed account's authorizer, as algosdk adds it
        return Signed(msgpack.packb(signed, use_bin_type=True).hex(), self.broadcast_path)


def _wallet(key: SigningKey) -> dict[str, str]:
    return {"address": encode_address(bytes(key.verify_key)), "secret": encode_secret(key)}


def _pack(txn: Mapping[str, Any]) -> bytes:
    import msgpack

    return msgpack.packb(txn, use_bin_type=True)


# -- algosdk 1.16's Transaction, from its JSON ------------------------------------------------------


def encoded_transaction(obj: dict[str, Any]) -> dict[str, Any]:
    """The canonical msgpack map (sorted keys, empty fields omitted) of the transaction in `obj`, as the
    original rebuilds it: lease, reKeyTo, group, assetRevocationTarget dropped; a non-flat fee multiplied
    by the encoded size (at least the minimum fee). Only payments and asset transfers are signed."""
    kind = obj.get("type", "pay")
    if kind not in ("pay", "axfer"):
        raise ChainError(f"ALGO transactions of type {kind!r} are not signed by this KMS (pay and axfer are); "
                         "the original cannot sign them either")
    if obj.get("closeRemainderTo") is not None:
        raise ChainError("ALGO transactions that close the account (closeRemainderTo) are not signed; "
                         "the original cannot sign them either")
    sender = _address_bytes(obj.get("from"), "from")
    receiver = _address_bytes(obj.get("to"), "to")
    genesis = obj.get("genesisHash")
    genesis_hash = _bytes(genesis.get("data") if isinstance(genesis, dict) else None, "genesisHash")
    genesis_id = obj.get("genesisID")
    if genesis_id is not None and not isinstance(genesis_id, str):
        raise ChainError("serializedTransaction 'genesisID' is not a string")
    note = obj.get("note")
    note_bytes = b"" if note in (None, "") else _bytes(note, "note")
    amount = _safe_integer(obj.get("amount", 0), "Amount must be a positive number and smaller than 2^64-1.")
    fee = _safe_integer(obj.get("fee"), "fee must be a positive number and smaller than 2^53-1")
    first = _safe_integer(obj.get("firstRound"), "firstRound must be a positive number")
    last = _safe_integer(obj.get("lastRound"), "lastRound must be a positive number")
    flat_fee = obj.get("flatFee", False)
    if not isinstance(flat_fee, bool):
        raise ChainError("serializedTransaction 'flatFee' is not a boolean")
    fields: dict[str, Any] = {"fee": fee, "fv": first, "lv": last, "note": note_bytes, "snd": sender, "type": kind,
                              "gen": genesis_id or "", "gh": genesis_hash}
    if kind == "pay":
        fields.update(amt=amount, rcv=receiver)
    else:
        asset = _safe_integer(obj.get("assetIndex"), "Asset index must be a positive number and smaller than 2^53-1")
        fields.update(aamt=amount, arcv=receiver, xaid=asset)
    txn = _canonical(fields)
    if not flat_fee:
        fee = max(fee * (len(_pack(txn)) + SIGNATURE_OVERHEAD), MIN_TX_FEE)
        txn = _canonical({**fields, "fee": fee})
    return txn


def _canonical(fields: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields algosdk omits when zero or empty, refuse the ones it refuses, sort the keys."""
    txn = {key: value for key, value in fields.items()
           if not (key in ("note", "amt", "aamt", "fee", "fv", "gen") and not value)}
    for key, value in txn.items():
        if not value:
            raise ChainError(_EMPTY + key)
    return dict(sorted(txn.items()))


def _address_bytes(value: Any, name: str) -> bytes:
    """The 32 public-key bytes of an algosdk Address's JSON (`{"publicKey": {"0": .., "31": ..}, ...}`)."""
    public = value.get("publicKey") if isinstance(value, dict) else None
    if public is None:
        raise ChainError(f"serializedTransaction has no '{name}' address (publicKey)")
    raw = _bytes(public, f"{name}.publicKey")
    if len(raw) != 32:
        raise ChainError(f"serializedTransaction '{name}' is not a 32-byte public key")
    return raw


_INDEXES = [str(i) for i in range(4096)]


def _bytes(value: Any, name: str) -> bytes:
    """Bytes from the JSON of a Uint8Array (an object keyed "0", "1", ... in order, as JSON.stringify writes
    it) or of a Buffer's data (a list of integers 0-255)."""
    if isinstance(value, dict):
        if len(value) > len(_INDEXES) or list(value) != _INDEXES[:len(value)]:
            raise ChainError(f"serializedTransaction '{name}' is not a byte array")
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        raise ChainError(f"serializedTransaction '{name}' is not a byte array")
    try:
        return bytes(items)  # refuses anything but integers 0-255 (floats, strings, None)
    except (TypeError, ValueError):
        raise ChainError(f"serializedTransaction '{name}' is not a byte array") from None


def _safe_integer(value: Any, message: str) -> int:
    """A JS safe integer >= 0 (integral floats allowed, as JSON numbers are); ChainError with algosdk's message."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChainError(message)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ChainError(message)
        value = int(value)
    if not 0 <= value <= _MAX_SAFE_INTEGER:
        raise ChainError(message)
    return value


ALGO = AlgorandChain()
