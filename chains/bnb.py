"""BNB Beacon Chain: random secp256k1 keys with `bnb1…`/`tbnb1…` addresses, and amino StdTx transfers signed over
the canonical sign-doc JSON (spec §2.2, §3.13), as @binance-chain/javascript-sdk 4 builds them for the original.

The chain has been shut down; operators still hold these wallets and the original still lists the chain.
The chain id comes from the node the original asks (`node` endpoint, `GET /api/v1/node-info`), the account
number and sequence from Tatum (`GET /v3/bnb/account/{address}`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chains.base import ChainBase, ChainError, Endpoint, KeyPolicy, Node, PendingTransaction, Signed, json_object
from chains.primitives import bech32
from chains.primitives.secp import PublicKey, SigningKey, hash160, hex_secret, random_secret

#: Amino prefixes (from the registered type names) of the StdTx envelope and of a secp256k1 public key.
STD_TX_PREFIX = bytes.fromhex("F0625DEE")
PUBKEY_PREFIX = bytes.fromhex("EB5AE987")
#: The largest integer a JavaScript number holds exactly: the original's JSON numbers end there.
MAX_SAFE_INTEGER = 2**53 - 1


def hrp(testnet: bool) -> str:
    return "tbnb" if testnet else "bnb"


def address_of(public_key: bytes, testnet: bool) -> str:
    """The bech32 address of a compressed secp256k1 public key: its hash160 under `bnb`/`tbnb`."""
    return bech32.encode(hrp(testnet), hash160(public_key))


# -- canonical JSON and amino, as the JavaScript SDK writes them ---------------------------------


def sign_bytes(doc: Any) -> bytes:
    """`JSON.stringify` of the document with every object's keys sorted, no spaces: what is signed."""
    return json.dumps(_sorted(doc), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _uvarint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _typ3(value: Any) -> int:
    return 0 if isinstance(value, bool | int) else 2


def _is_default(value: Any) -> bool:
    """The SDK's `isDefaultValue`: 0, "", [] and false are left out (null is not; it fails to encode)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | str | list):
        return not value
    return False


def _field_key(index: int, value: Any) -> bytes:
    return _uvarint(((index + 1) << 3) | _typ3(value))


def _encode(value: Any, length_prefixed: bool) -> bytes:
    """The JavaScript SDK's `encodeBinary`: a field value, byte-length prefixed where that encoder prefixes it."""
    if isinstance(value, bytes):
        return _uvarint(len(value)) + value if length_prefixed else value
    if isinstance(value, list):
        raise ChainError("nested arrays have no amino encoding here")
    if isinstance(value, bool):
        return _uvarint(int(value))
    if isinstance(value, int):
        if value < 0:
            raise ChainError("amino varints must not be negative")
        return _uvarint(value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _uvarint(len(raw)) + raw
    if isinstance(value, dict):
        return encode_object(value, length_prefixed)
    raise ChainError(f"a {type(value).__name__} has no amino encoding")


def _encode_array(index: int, items: list[Any]) -> bytes:
    out = bytearray()
    for item in items:
        out += _field_key(index, item)
        out += b"\0" if _is_default(item) else _encode(item, True)
    return bytes(out)


def encode_object(obj: Mapping[str, Any], length_prefixed: bool = True) -> bytes:
    """An object's fields in key order (field number = position + 1), defaults omitted, amino prefix first.

    As `encodeObjectBinary` of @binance-chain/javascript-sdk: the field numbers follow the object's key order,
    so the same JSON the original parses gives the same bytes.
    """
    out = bytearray()
    for index, (key, value) in enumerate(obj.items()):
        if key in ("aminoPrefix", "version") or _is_default(value):
            continue
        if isinstance(value, list):
            out += _encode_array(index, value)
        else:
            out += _field_key(index, value) + _encode(value, True)
    prefix = obj.get("aminoPrefix")
    if prefix:
        try:
            out[:0] = bytes.fromhex(prefix)
        except (TypeError, ValueError):
            raise ChainError("aminoPrefix is not hex") from None
    return _uvarint(len(out)) + bytes(out) if length_prefixed else bytes(out)


def std_tx(msg: Mapping[str, Any], public_key: bytes, signature: bytes, account_number: int, sequence: int,
           memo: str, source: int = 0) -> bytes:
    """The signed amino StdTx (length-prefixed) the original's `Transaction.serialize()` produces."""
    pub_key = PUBKEY_PREFIX + _uvarint(len(public_key)) + public_key
    return encode_object({
        "msg": [msg],
        "signatures": [{"pub_key": pub_key, "signature": signature, "account_number": account_number,
                        "sequence": sequence}],
        "memo": memo,
        "source": source,
        "data": "",
        "aminoPrefix": STD_TX_PREFIX.hex(),
    })


def sign_doc(sign_msg: Any, chain_id: str, account_number: int, sequence: int, memo: str, source: int = 0) -> bytes:
    """The StdSignDoc bytes of one message (`Transaction.getSignBytes`)."""
    return sign_bytes({"account_number": str(account_number), "chain_id": chain_id, "data": None, "memo": memo,
                       "msgs": [sign_msg], "sequence": str(sequence), "source": str(source)})


# -- the pending transaction --------------------------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """JSON as the original holds it: integral floats as integers, beyond JavaScript's exact range refused."""
    if isinstance(value, dict):
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, where) for item in value]
    if isinstance(value, float):
        if not value.is_integer():
            raise ChainError(f"{where} must be a whole number (amounts are in the smallest unit)")
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise ChainError(f"{where} is beyond the precision of the original's numbers")
    return value


def _with_buffers(msg: Any) -> dict[str, Any]:
    """`msg` with each input's and output's `{"type": "Buffer", "data": [...]}` address as bytes (as the original)."""
    if not isinstance(msg, dict):
        raise ChainError("serializedTransaction.msg must be an object")
    msg = dict(msg)
    for side in ("inputs", "outputs"):
        entries = msg.get(side)
        if not isinstance(entries, list) or not entries:
            raise ChainError(f"serializedTransaction.msg.{side} must be a non-empty list")
        converted = []
        for entry in entries:
            address = entry.get("address") if isinstance(entry, dict) else None
            data = address.get("data") if isinstance(address, dict) else None
            if not isinstance(data, list) or len(data) != 20 or not all(
                    isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in data):
                raise ChainError(f"serializedTransaction.msg.{side} has an address that is not a 20-byte Buffer")
            converted.append({**entry, "address": bytes(data)})
        msg[side] = converted
    return msg


def _count(value: Any, what: str) -> int | None:
    """An account number or sequence as the SDK's parseInt reads it; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ChainError(f"Tatum returned a malformed {what}")


def _signing_key(private_key: Any) -> SigningKey:
    if not isinstance(private_key, str):
        raise ChainError("BNB private key must be 64 hex digits")
    return SigningKey(hex_secret(private_key.strip()))


@dataclass(frozen=True)
class BnbChain(ChainBase):
    """BNB Beacon Chain: one random key per wallet; MsgSend transfers in an amino StdTx."""

    code: str = "BNB"
    broadcast_path: str = "/v3/bnb/broadcast"
    mnemonic_based: bool = False
    key_policy: KeyPolicy = KeyPolicy.ACCOUNT
    endpoints: Mapping[str, Endpoint] = field(default_factory=lambda: {
        "node": Endpoint(mainnet_url="https://dex-european.binance.org",
                         testnet_url="https://testnet-dex-atlantic.binance.org")})

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"address", "privateKey"} of a fresh random key, as the original's generateBnbWallet."""
        private_key, address = self.generate_private_key(testnet)
        return {"address": address, "privateKey": private_key}

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        secret = random_secret()
        return secret.hex(), address_of(PublicKey.from_secret(secret).format(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        raise ChainError("BNB wallets have no mnemonic: use storemanagedprivatekey")

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        return address_of(_signing_key(private_key).public_key.format(), testnet)

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Sign the payload's `signMsg` in a StdSignDoc and wrap its `msg` in an amino StdTx (hex)."""
        if not keys:
            raise ChainError(f"BNB transaction {pending.id} has no signing key")
        key = _signing_key(keys[0])
        body = _plain(json_object(pending.serialized_transaction), "serializedTransaction")
        msg, sign_msg, memo = _with_buffers(body.get("msg")), body.get("signMsg"), body.get("memo")
        if not isinstance(sign_msg, dict):
            raise ChainError("serializedTransaction.signMsg must be an object")
        if memo is None:
            memo = ""
        if not isinstance(memo, str):
            raise ChainError("serializedTransaction.memo must be a string")
        public_key = key.public_key.format()
        sender = address_of(public_key, testnet)

        info = node.get("/api/v1/node-info", endpoint="node", constant=True)
        node_info = info.get("node_info") if isinstance(info, dict) else None
        chain_id = node_info.get("network") if isinstance(node_info, dict) else None
        if not isinstance(chain_id, str) or not chain_id:
            raise ChainError("chain id should not be null (the BNB node's /api/v1/node-info names no network)")
        account = node.get(f"/v3/bnb/account/{sender}")
        if not isinstance(account, dict):
            raise ChainError(f"/v3/bnb/account/{sender} returned no account")
        account_number, sequence = _count(account.get("account_number"), "account number"), _count(
            account.get("sequence"), "sequence")
        if not account_number or sequence is None:  # the SDK then asks the node itself, as the original
            account = node.get(f"/api/v1/account/{sender}", endpoint="node")
            if not isinstance(account, dict):
                raise ChainError(f"the BNB node returned no account for {sender}")
            account_number = _count(account.get("account_number"), "account number") or 0
            sequence = _count(account.get("sequence"), "sequence") or 0

        digest = hashlib.sha256(sign_doc(sign_msg, chain_id, account_number, sequence, memo)).digest()
        signature = key.sign_recoverable(digest, hasher=None)[:64]
        return Signed(std_tx(msg, public_key, signature, account_number, sequence, memo).hex(), self.broadcast_path)


BNB = BnbChain()
