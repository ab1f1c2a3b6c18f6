"""TRON: BIP44 wallets on m/44'/195'/0'/0 with `T…` addresses and bare-hex keys, and TronWeb 5.3's signing of
the transaction objects Tatum queues (spec §2.2, §3.6).

TronWeb re-encodes `raw_data` as protobuf and refuses a transaction whose encoding or txID disagrees; that
encoding is written out here for the contract types Tatum sends (tronpy, the Python SDK, conflicts with our
pins). The sandbox checks the result with the protobuf runtime, sharing nothing with this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.base import ChainBase, ChainError, Node, PendingTransaction, Signed, check_index, json_object
from chains.primitives.hd import XPUB, HdNode, account_node, mnemonic_wallet, new_mnemonic, parse_xpub
from chains.primitives.protobuf import bytes_field, int64_field, message_field
from chains.primitives.secp import (
    PublicKey,
    SigningKey,
    b58check_decode,
    b58check_encode,
    hex_secret,
    keccak256,
    random_secret,
)

#: The account node of TRON wallets, on mainnet and testnet alike (spec §2.4).
DERIVATION_PATH = "m/44'/195'/0'/0"
_ADDRESS_PREFIX = b"\x41"
_HEX = re.compile(r"(0x)?[0-9a-fA-F]+")  # TronWeb's utils.isHex
_TYPE_URL = "type.googleapis.com/protocol."
_RESOURCE = {"BANDWIDTH": 0, "ENERGY": 1, "TRON_POWER": 2}
INVALID = "Invalid transaction"


def address_of(public_key: bytes) -> bytes:
    """The 21-byte address (0x41 ‖ last 20 bytes of keccak of the uncompressed key) of a secp256k1 public key."""
    return _ADDRESS_PREFIX + keccak256(PublicKey(public_key).format(compressed=False)[1:])[12:]


def base58_address(address: bytes) -> str:
    """The `T…` form of a 21-byte address."""
    return b58check_encode(address)


@dataclass(frozen=True)
class TronChain(ChainBase):
    """TRON: one key per signature, derived at `index` from a mnemonic or stored as 64 hex digits."""

    code: str = "TRON"
    broadcast_path: str = "/v3/tron/broadcast"

    # -- wallets ------------------------------------------------------------------------------

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"}: a new 24-word mnemonic and the xpub of m/44'/195'/0'/0 (both networks)."""
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"} for an existing mnemonic (checked)."""
        return mnemonic_wallet(DERIVATION_PATH, XPUB, mnemonic)

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random key (64 hex digits, no 0x) and its `T…` address."""
        secret = random_secret()
        return secret.hex(), base58_address(address_of(PublicKey.from_secret(secret).format()))

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        """Address of child `index` of the account xpub: base58 `xpub…`, or 130 hex digits (public key ‖ chain code)."""
        return base58_address(address_of(_account_xpub(xpub).child(check_index(index)).public_key))

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        """Private key of child `index`: 64 lowercase hex digits, no 0x."""
        child = account_node(mnemonic, DERIVATION_PATH).child(check_index(index))
        assert child.private_key is not None
        return child.private_key.hex()

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The `T…` address of a hex private key (64 digits, either case, optional 0x)."""
        if not isinstance(private_key, str):
            raise ChainError("private key must be 32 bytes of hex (64 hex digits, optional 0x)")
        return base58_address(address_of(PublicKey.from_secret(hex_secret(private_key.strip())).format()))

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """TronWeb's `trx.sign`: refuse a signed transaction, a foreign owner or a raw_data that does not encode to
        raw_data_hex and txID; then append the signature over the txID. Output: the compact JSON of the object."""
        if not keys:
            raise ChainError(f"TRON transaction {pending.id} has no signing key")
        if not isinstance(keys[0], str):
            raise ChainError("private key must be 32 bytes of hex (64 hex digits, optional 0x)")
        key = SigningKey(hex_secret(keys[0].strip()))
        tx = json_object(pending.serialized_transaction)
        if _truthy(tx.get("signature")):
            raise ChainError("Transaction is already signed")
        raw, contract = _first_contract(tx)
        owner = _field_bytes(_value(contract).get("owner_address"), "owner_address")
        if owner != address_of(key.public_key.format()):
            raise ChainError("Private key does not match address in transaction")
        raw_bytes = encode_raw(raw)
        raw_hex, tx_id = tx.get("raw_data_hex"), tx.get("txID")
        if not isinstance(raw_hex, str) or raw_bytes.hex() != raw_hex.lower():
            raise ChainError(f"{INVALID}: raw_data does not encode to raw_data_hex")
        digest = hashlib.sha256(raw_bytes).digest()
        if not isinstance(tx_id, str) or digest.hex() != tx_id.removeprefix("0x").lower():
            raise ChainError(f"{INVALID}: txID is not the SHA-256 of raw_data_hex")
        signature = key.sign_recoverable(digest, hasher=None)
        tx["signature"] = [signature[:64].hex() + f"{signature[64] + 27:02X}"]
        return Signed(json.dumps(tx, separators=(",", ":"), ensure_ascii=False), self.broadcast_path)


def _account_xpub(xpub: str) -> HdNode:
    """The account node of an xpub in either of the forms TronWeb takes."""
    if isinstance(xpub, str) and len(xpub) == 130 and re.fullmatch(r"[0-9a-fA-F]+", xpub):
        public_key, chain_code = bytes.fromhex(xpub[:66]), bytes.fromhex(xpub[66:])
        try:
            PublicKey(public_key)
        except ValueError:
            raise ChainError("xpub holds an invalid public key") from None
        if public_key[0] not in (2, 3):
            raise ChainError("xpub does not hold a compressed public key")
        return HdNode(public_key, chain_code)
    return parse_xpub(xpub, frozenset({XPUB}))



# -- raw_data as TronWeb's txJsonToPb encodes it ----------------------------------------------------


def _truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value: false, 0, "" and null are falsy; [] and {} are not."""
    return not (value is None or value is False or value == 0 and not isinstance(value, str) or value == "")


def _first_contract(tx: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    raw = tx.get("raw_data")
    if not isinstance(raw, dict):
        raise ChainError(f"{INVALID}: it has no raw_data object")
    contracts = raw.get("contract")
    if not isinstance(contracts, list) or not contracts or not isinstance(contracts[0], dict):
        raise ChainError(f"{INVALID}: raw_data has no contract")
    return raw, contracts[0]


def _value(contract: Mapping[str, Any]) -> Mapping[str, Any]:
    parameter = contract.get("parameter")
    value = parameter.get("value") if isinstance(parameter, dict) else None
    if not isinstance(value, dict):
        raise ChainError(f"{INVALID}: contract[0] has no parameter.value object")
    return value


def _field_bytes(value: Any, name: str) -> bytes:
    """TronWeb's `fromHexString`: empty when missing; hex as is (a leading 0x becomes 41); else a `T…` address."""
    if not _truthy(value):
        return b""
    if not isinstance(value, str):
        raise ChainError(f"{INVALID}: {name} is not a string")
    if _HEX.fullmatch(value):
        text = value.lower()
        if text.startswith("0x"):
            text = "41" + text[2:]
        if len(text) % 2:
            raise ChainError(f"{INVALID}: {name} has an odd number of hex digits")
        return bytes.fromhex(text)
    try:
        address = b58check_decode(value, name)
    except ChainError:
        raise ChainError(f"{INVALID}: {name} is neither hex nor a base58 address") from None
    if len(address) != 21 or address[:1] != _ADDRESS_PREFIX:
        raise ChainError(f"{INVALID}: {name} is not a TRON address")
    return address


def _integer(value: Any, name: str, bits: int = 64) -> int:
    """A JSON number TronWeb would hand to an int64 (or int32) setter; missing or null is 0."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ChainError(f"{INVALID}: {name} is not an int{bits}")
    return value


def _transfer(value: Mapping[str, Any]) -> bytes:
    return (bytes_field(1, _field_bytes(value.get("owner_address"), "owner_address"))
            + bytes_field(2, _field_bytes(value.get("to_address"), "to_address"))
            + int64_field(3, _integer(value.get("amount"), "amount")))


def _transfer_asset(value: Mapping[str, Any]) -> bytes:
    asset_name = value.get("asset_name")
    if not isinstance(asset_name, str):
        raise ChainError(f"{INVALID}: TransferAssetContract has no asset_name")
    return (bytes_field(1, _field_bytes(asset_name.removeprefix("0x"), "asset_name"))
            + bytes_field(2, _field_bytes(value.get("owner_address"), "owner_address"))
            + bytes_field(3, _field_bytes(value.get("to_address"), "to_address"))
            + int64_field(4, _integer(value.get("amount"), "amount")))


def _trigger_smart_contract(value: Mapping[str, Any]) -> bytes:
    data = value.get("data")
    selector = value.get("function_selector")
    if _truthy(data):
        call_data = _field_bytes(data, "data")
    elif _truthy(selector):
        parameter = value.get("parameter", "")
        if not isinstance(selector, str) or not isinstance(parameter, str):
            raise ChainError(f"{INVALID}: function_selector and parameter must be strings")
        call_data = _field_bytes(keccak256(selector.encode("utf-8"))[:4].hex() + parameter, "parameter")
    else:
        call_data = b""
    token_id = value.get("token_id")
    call_token_value = value.get("call_token_value")
    return (bytes_field(1, _field_bytes(value.get("owner_address"), "owner_address"))
            + bytes_field(2, _field_bytes(value.get("contract_address"), "contract_address"))
            + int64_field(3, _integer(value.get("call_value"), "call_value"))
            + bytes_field(4, call_data)
            + int64_field(5, _integer(call_token_value, "call_token_value") if _truthy(call_token_value) else 0)
            + int64_field(6, _integer(token_id, "token_id") if _truthy(token_id) else 0))


def _freeze_balance_v2(value: Mapping[str, Any]) -> bytes:
    resource = value.get("resource")
    return (bytes_field(1, _field_bytes(value.get("owner_address"), "owner_address"))
            + int64_field(2, _integer(value.get("frozen_balance"), "frozen_balance"))
            + int64_field(3, _RESOURCE.get(resource, 0) if isinstance(resource, str) else 0))


#: contract type -> (Transaction.Contract.ContractType number, encoder of its parameter value).
CONTRACTS: dict[str, tuple[int, Callable[[Mapping[str, Any]], bytes]]] = {
    "TransferContract": (1, _transfer),
    "TransferAssetContract": (2, _transfer_asset),
    "TriggerSmartContract": (31, _trigger_smart_contract),
    "FreezeBalanceV2Contract": (54, _freeze_balance_v2),
}


def encode_raw(raw: Mapping[str, Any]) -> bytes:
    """`Transaction.raw` as TronWeb 5.3 rebuilds it from the JSON: contract[0], the reference block, the memo,
    expiration, timestamp and fee limit (ref_block_num and the others it does not set stay out)."""
    contracts = raw.get("contract")
    if not isinstance(contracts, list) or not contracts or not isinstance(contracts[0], dict):
        raise ChainError(f"{INVALID}: raw_data has no contract")
    contract = contracts[0]
    kind = contract.get("type")
    if kind not in CONTRACTS:
        raise ChainError(f"{INVALID}: contract type {kind!r} is not signed by this KMS: only "
                         f"{', '.join(CONTRACTS)} are")
    number, encode_value = CONTRACTS[kind]
    parameter = bytes_field(1, (_TYPE_URL + kind).encode("ascii")) + bytes_field(2, encode_value(_value(contract)))
    permission = contract.get("Permission_id")
    encoded_contract = (int64_field(1, number) + message_field(2, parameter)
                        + int64_field(5, _integer(permission, "Permission_id", 32) if _truthy(permission) else 0))
    memo = raw.get("data")
    return (bytes_field(1, _field_bytes(raw.get("ref_block_bytes"), "ref_block_bytes"))
            + bytes_field(4, _field_bytes(raw.get("ref_block_hash"), "ref_block_hash"))
            + int64_field(8, _integer(raw.get("expiration"), "expiration") if _truthy(raw.get("expiration")) else 0)
            + bytes_field(10, _field_bytes(memo, "data") if _truthy(memo) else b"")
            + message_field(11, encoded_contract)
            + int64_field(14, _integer(raw.get("timestamp"), "timestamp") if _truthy(raw.get("timestamp")) else 0)
            + int64_field(18, _integer(raw.get("fee_limit"), "fee_limit") if _truthy(raw.get("fee_limit")) else 0))


TRON = TronChain()
