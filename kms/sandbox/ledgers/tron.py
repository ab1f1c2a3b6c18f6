"""The sandbox's TRON ledger: `raw_data_hex` parsed by the protobuf runtime from message types described here (after
java-tron's Tron.proto and contract protos), the txID recomputed, the signer recovered with libsecp256k1 and compared
with the owner, and the JSON `raw_data` a node would read compared with what the bytes say.

Nothing here is shared with the KMS signer's hand-written encoder (`chains.tron`): the types are protobuf
descriptors, Keccak is pycryptodome's, base58 is the `base58` package's.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from functools import lru_cache
from typing import Any

from chains import safejson
from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Rejected

_TYPE_URL = "type.googleapis.com/protocol."
#: Transaction.Contract.ContractType numbers of the contracts the sandbox checks.
CONTRACT_TYPES = {"TransferContract": 1, "TransferAssetContract": 2, "TriggerSmartContract": 31,
                  "FreezeBalanceV2Contract": 54}

# (name, number, type, label) per field; a type name in capitals is a message or enum of this file.
_BYTES, _INT64, _INT32, _ENUM, _MESSAGE = "bytes", "int64", "int32", "enum", "message"
_MESSAGES: dict[str, list[tuple[str, int, str, str | None]]] = {
    "Transaction": [("raw_data", 1, "Transaction.raw", None), ("signature", 2, _BYTES, "repeated")],
    "Transaction.raw": [
        ("ref_block_bytes", 1, _BYTES, None), ("ref_block_num", 3, _INT64, None), ("ref_block_hash", 4, _BYTES, None),
        ("expiration", 8, _INT64, None), ("data", 10, _BYTES, None),
        ("contract", 11, "Transaction.Contract", "repeated"), ("scripts", 12, _BYTES, None),
        ("timestamp", 14, _INT64, None), ("fee_limit", 18, _INT64, None),
    ],
    "Transaction.Contract": [
        ("type", 1, "Transaction.Contract.ContractType", None), ("parameter", 2, ".google.protobuf.Any", None),
        ("provider", 3, _BYTES, None), ("ContractName", 4, _BYTES, None), ("Permission_id", 5, _INT32, None),
    ],
    "TransferContract": [("owner_address", 1, _BYTES, None), ("to_address", 2, _BYTES, None),
                         ("amount", 3, _INT64, None)],
    "TransferAssetContract": [("asset_name", 1, _BYTES, None), ("owner_address", 2, _BYTES, None),
                              ("to_address", 3, _BYTES, None), ("amount", 4, _INT64, None)],
    "TriggerSmartContract": [
        ("owner_address", 1, _BYTES, None), ("contract_address", 2, _BYTES, None), ("call_value", 3, _INT64, None),
        ("data", 4, _BYTES, None), ("call_token_value", 5, _INT64, None), ("token_id", 6, _INT64, None),
    ],
    "FreezeBalanceV2Contract": [("owner_address", 1, _BYTES, None), ("frozen_balance", 2, _INT64, None),
                                ("resource", 3, "ResourceCode", None)],
}
_ENUMS = {"Transaction.Contract.ContractType": {"AccountCreateContract": 0, **CONTRACT_TYPES},
          "ResourceCode": {"BANDWIDTH": 0, "ENERGY": 1, "TRON_POWER": 2}}


@lru_cache(maxsize=1)
def message_types() -> dict[str, Any]:
    """Message classes for the TRON types above, from a FileDescriptorProto built here (package `protocol`)."""
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(name="tatum_kms_sandbox/tron.proto", package="protocol",
                                              syntax="proto3", dependency=["google/protobuf/any.proto"])
    described: dict[str, Any] = {}
    for name in _MESSAGES:  # parents come before their nested types in the table
        parent, _, leaf = name.rpartition(".")
        container = described[parent].nested_type if parent else file.message_type
        described[name] = container.add(name=leaf)
    for name, values in _ENUMS.items():
        parent, _, leaf = name.rpartition(".")
        enum = (described[parent].enum_type if parent else file.enum_type).add(name=leaf)
        for value_name, number in values.items():
            enum.value.add(name=value_name, number=number)
    field = descriptor_pb2.FieldDescriptorProto
    scalar = {_BYTES: field.TYPE_BYTES, _INT64: field.TYPE_INT64, _INT32: field.TYPE_INT32}
    for name, fields in _MESSAGES.items():
        for field_name, number, kind, label in fields:
            spec = described[name].field.add(name=field_name, number=number, json_name=field_name)
            spec.label = field.LABEL_REPEATED if label == "repeated" else field.LABEL_OPTIONAL
            if kind in scalar:
                spec.type = scalar[kind]
            elif kind in _ENUMS:
                spec.type, spec.type_name = field.TYPE_ENUM, ".protocol." + kind
            else:
                spec.type = field.TYPE_MESSAGE
                spec.type_name = kind if kind.startswith(".") else ".protocol." + kind
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName("protocol." + name))
            for name in _MESSAGES}


class TronLedger(Ledger):
    """TRON: broadcasts verified (owner signed the txID of these bytes, the JSON says the same), nothing executed."""

    chains = ("TRON",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            tx_id = verify_tron(tx_data)
        except VerifyFailed as exc:
            raise Rejected(400, "tron.broadcast.failed", str(exc)) from None
        with self._lock:
            if tx_id in self._seen:
                raise Rejected(400, "tron.broadcast.failed", f"DUP_TRANSACTION_ERROR: {tx_id} was already broadcast")
            self._seen.add(tx_id)
        return tx_id

    def sample(self, chain: str, address: str, amount: int) -> str:
        """An unsigned TransferContract of `amount` sun from `address` to a fresh address, as TronWeb builds it."""
        to_address = b"\x41" + os.urandom(20)
        return json.dumps(unsigned_transaction("TransferContract", {
            "amount": amount, "owner_address": address_hex(address), "to_address": to_address.hex()}))


def address_hex(address: str) -> str:
    """The `41…` hex form of a `T…` address."""
    import base58

    return base58.b58decode_check(address).hex()


def unsigned_transaction(kind: str, value: dict[str, Any], *, fee_limit: int | None = None,
                         memo: bytes = b"", lifetime_ms: int = 60_000) -> dict[str, Any]:
    """A TronWeb-shaped unsigned transaction (txID, raw_data, raw_data_hex) whose raw_data_hex the protobuf runtime
    writes from `value` (hex strings for bytes fields, names for enums, as the node's JSON has them)."""
    types = message_types()
    contract_message = types[kind]()
    for name, _, field_kind, _ in _MESSAGES[kind]:
        if name not in value:
            continue
        if field_kind == _BYTES:
            setattr(contract_message, name, bytes.fromhex(value[name]))
        elif field_kind in _ENUMS:
            setattr(contract_message, name, _ENUMS[field_kind][value[name]])
        else:
            setattr(contract_message, name, value[name])
    now = int(time.time() * 1000)
    raw = types["Transaction.raw"](ref_block_bytes=os.urandom(2), ref_block_hash=os.urandom(8),
                                   expiration=now + lifetime_ms, timestamp=now, data=memo)
    if fee_limit:
        raw.fee_limit = fee_limit
    contract = raw.contract.add(type=CONTRACT_TYPES[kind])
    contract.parameter.Pack(contract_message, type_url_prefix="type.googleapis.com/")
    raw_bytes = raw.SerializeToString()
    raw_json: dict[str, Any] = {
        "contract": [{"parameter": {"value": value, "type_url": _TYPE_URL + kind}, "type": kind}],
        "ref_block_bytes": raw.ref_block_bytes.hex(), "ref_block_hash": raw.ref_block_hash.hex(),
        "expiration": raw.expiration, "timestamp": raw.timestamp,
    }
    if memo:
        raw_json["data"] = memo.hex()
    if fee_limit:
        raw_json["fee_limit"] = fee_limit
    return {"visible": False, "txID": hashlib.sha256(raw_bytes).hexdigest(), "raw_data": raw_json,
            "raw_data_hex": raw_bytes.hex()}


def verify_tron(tx_data: str, now_ms: float | None = None) -> str:
    """Check a broadcast TRON transaction object; return its txID or raise VerifyFailed with the node's kind of reason.

    `now_ms` is the time the expiration is checked against (default: now).
    """
    from google.protobuf.message import DecodeError
    from google.protobuf.unknown_fields import UnknownFieldSet

    try:
        tx = safejson.loads(tx_data)
    except ValueError:
        raise VerifyFailed("Invalid transaction: txData is not JSON") from None
    if not isinstance(tx, dict) or not isinstance(tx.get("raw_data_hex"), str) or not isinstance(tx.get("txID"), str):
        raise VerifyFailed("Invalid transaction: no raw_data_hex or txID")
    try:
        raw_bytes = bytes.fromhex(tx["raw_data_hex"])
        raw = message_types()["Transaction.raw"].FromString(raw_bytes)
    except (ValueError, DecodeError):
        raise VerifyFailed("Invalid transaction: raw_data_hex is not a Transaction.raw") from None
    if len(UnknownFieldSet(raw)):
        raise VerifyFailed("Invalid transaction: raw_data_hex has fields the sandbox does not know")
    tx_id = hashlib.sha256(raw_bytes).hexdigest()
    if tx["txID"].lower() != tx_id:
        raise VerifyFailed(f"Invalid transaction: txID is not the SHA-256 of raw_data_hex ({tx_id})")
    if len(raw.contract) != 1:
        raise VerifyFailed("CONTRACT_VALIDATE_ERROR: a transaction must hold exactly one contract")
    contract = raw.contract[0]
    kind = next((name for name, number in CONTRACT_TYPES.items() if number == contract.type), None)
    if kind is None or contract.parameter.type_url != _TYPE_URL + kind:
        raise VerifyFailed(f"CONTRACT_VALIDATE_ERROR: the sandbox checks {', '.join(CONTRACT_TYPES)}; "
                           f"got type {contract.type} with {contract.parameter.type_url!r}")
    value = message_types()[kind]()
    if not contract.parameter.Unpack(value) or len(UnknownFieldSet(value)):
        raise VerifyFailed(f"CONTRACT_VALIDATE_ERROR: the parameter is not a valid {kind}")
    if len(value.owner_address) != 21 or value.owner_address[0] != 0x41:
        raise VerifyFailed("CONTRACT_VALIDATE_ERROR: Invalid ownerAddress")
    if raw.expiration <= (time.time() * 1000 if now_ms is None else now_ms):
        raise VerifyFailed("TRANSACTION_EXPIRATION_ERROR: the transaction has expired")
    _check_json(tx.get("raw_data"), raw, kind, value)
    signatures = tx.get("signature")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise VerifyFailed("SIGERROR: a single-signed transaction needs exactly one signature")
    if _signer(signatures[0], bytes.fromhex(tx_id)) != bytes(value.owner_address):
        raise VerifyFailed("SIGERROR: Validate signature error: the signature is not the owner_address's")
    return tx_id


def _signer(signature: Any, digest: bytes) -> bytes:
    """The 21-byte address whose key made a 65-byte r ‖ s ‖ v (v 27/28 or 0/1) signature of `digest`."""
    from coincurve import PublicKey
    from Crypto.Hash import keccak

    try:
        raw = bytes.fromhex(signature) if isinstance(signature, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 65 or raw[64] not in (0, 1, 27, 28):
        raise VerifyFailed("SIGERROR: the signature is not 65 bytes r ‖ s ‖ v")
    try:
        public = PublicKey.from_signature_and_message(raw[:64] + bytes([raw[64] % 27]), digest, hasher=None)
    except ValueError:
        raise VerifyFailed("SIGERROR: no public key recovers from the signature") from None
    return b"\x41" + keccak.new(digest_bits=256, data=public.format(compressed=False)[1:]).digest()[12:]


def _check_json(raw_json: Any, raw: Any, kind: str, value: Any) -> None:
    """The JSON raw_data (what a node parses) must say what raw_data_hex says, field by field."""
    if not isinstance(raw_json, dict) or not isinstance(raw_json.get("contract"), list) or not raw_json["contract"]:
        raise VerifyFailed("Invalid transaction: raw_data has no contract")
    contract_json = raw_json["contract"][0]
    if not isinstance(contract_json, dict) or contract_json.get("type") != kind:
        raise VerifyFailed(f"Invalid transaction: raw_data says {contract_json.get('type')!r}, the bytes say {kind}")
    value_json = (contract_json.get("parameter") or {}).get("value")
    if not isinstance(value_json, dict):
        raise VerifyFailed("Invalid transaction: raw_data.contract[0] has no parameter.value")
    for name, _, field_kind, _ in _MESSAGES[kind]:
        _same(f"parameter.value.{name}", getattr(value, name), _json_field(value_json, name, field_kind, kind))
    _same("contract[0].Permission_id", raw.contract[0].Permission_id, contract_json.get("Permission_id") or 0)
    for name in ("ref_block_bytes", "ref_block_hash", "data"):
        _same(name, getattr(raw, name), _json_field(raw_json, name, _BYTES, "raw"))
    for name in ("expiration", "timestamp", "fee_limit"):
        _same(name, getattr(raw, name), raw_json.get(name) or 0)


def _json_field(obj: dict[str, Any], name: str, field_kind: str, kind: str) -> Any:
    """A field of the JSON in the form the decoded message holds it: bytes, int, or an enum number."""
    import base58

    value = obj.get(name)
    if field_kind == _BYTES:
        if name == "data" and kind == "TriggerSmartContract" and not value and obj.get("function_selector"):
            from Crypto.Hash import keccak

            selector = keccak.new(digest_bits=256, data=str(obj["function_selector"]).encode()).digest()[:4]
            return selector + bytes.fromhex(str(obj.get("parameter", "")))
        if not value:
            return b""
        try:
            return bytes.fromhex(value) if not str(value).startswith("T") else base58.b58decode_check(value)
        except ValueError:
            raise VerifyFailed(f"Invalid transaction: raw_data {name} is not hex") from None
    if field_kind == "ResourceCode":
        return _ENUMS["ResourceCode"].get(value, 0) if value else 0
    return value or 0


def _same(name: str, decoded: Any, stated: Any) -> None:
    if decoded != stated:
        raise VerifyFailed(f"Invalid transaction: raw_data {name} disagrees with raw_data_hex")
