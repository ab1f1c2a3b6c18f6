"""VET: EVM wallets on coin type 818 and the VeChainThor transaction (spec §3.3), as thorify 1.5 signs it.

The node is thor's REST API (`GET /blocks/0`, `GET /blocks/best`, `POST /accounts/*`) on VeChain's own host
(`TATUM_KMS_VET_NODE_URL` replaces it). Gas is always estimated with the signer as caller, as the original's
KMS signer does; the chain tag and block reference come from the node unless the payload has them; one clause;
blake2b-256 signing hash; a 65-byte r‖s‖recovery-id signature.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chains.base import ChainError, Endpoint, Node, PendingTransaction, Signed, json_object
from chains.evm import evm_quantity
from chains.evm.accounts import EvmAccounts, Sender, secret_of
from chains.primitives import rlp as _rlp
from chains.primitives.secp import PrivateKey, SigningKey

#: thorify's defaults.
DEFAULT_EXPIRATION = 720
DEFAULT_GAS_PRICE_COEF = 128
#: Added to the VM's gas by thorify's estimate ("the final state is not known yet").
ESTIMATE_MARGIN = 15_000
#: Intrinsic gas (thor-devkit): per transaction, per clause, per contract-creating clause, per data byte.
TX_GAS, CLAUSE_GAS, CREATION_CLAUSE_GAS, ZERO_BYTE_GAS, NONZERO_BYTE_GAS = 5000, 16000, 48000, 4, 68

_HEX = re.compile(r"(0x)?[0-9a-fA-F]+")


def blake2b256(*parts: bytes) -> bytes:
    """BLAKE2b with a 32-byte digest over the concatenated parts."""
    digest = hashlib.blake2b(digest_size=32)
    for part in parts:
        digest.update(part)
    return digest.digest()


def intrinsic_gas(clauses: Sequence[Mapping[str, Any]]) -> int:
    """The gas a transaction costs before execution, for clauses {"to": bytes|None, "data": bytes}."""
    if not clauses:
        return TX_GAS + CLAUSE_GAS
    total = TX_GAS
    for clause in clauses:
        total += CLAUSE_GAS if clause["to"] else CREATION_CLAUSE_GAS
        zeros = clause["data"].count(0)
        total += zeros * ZERO_BYTE_GAS + (len(clause["data"]) - zeros) * NONZERO_BYTE_GAS
    return total


@dataclass(frozen=True)
class VetChain(EvmAccounts):
    """VET: the EVM wallet code, thor's transaction format and REST node."""

    code: str = "VET"
    coin_type: int = 818
    broadcast_path: str = "/v3/vet/broadcast"
    node: Endpoint = field(default_factory=lambda: Endpoint(mainnet_url="https://sync-mainnet.vechain.org",
                                                            testnet_url="https://sync-testnet.vechain.org"))

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """thor's REST API on VeChain's host ("node")."""
        return {"node": self.node}

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Estimate gas, fill in chain tag and block reference from the node, sign, return `0x` raw hex."""
        if not keys:
            raise ChainError(f"{self.code} transaction {pending.id} has no signing key")
        key = SigningKey(secret_of(keys[0]))
        obj = json_object(pending.serialized_transaction)
        clause = _clause(obj)
        gas = self._estimate(obj, clause, Sender(key).lower, node)
        body = {
            "chainTag": _number_or(obj.get("chainTag"), None) if obj.get("chainTag") else self._chain_tag(node),
            "blockRef": _block_ref(obj["blockRef"]) if obj.get("blockRef") else self._best_block_ref(node),
            "expiration": _number_or(obj.get("expiration"), DEFAULT_EXPIRATION),
            "clauses": [clause],
            "gasPriceCoef": _number_or(obj.get("gasPriceCoef"), DEFAULT_GAS_PRICE_COEF),
            "gas": gas,
            "dependsOn": _depends_on(obj.get("dependsOn")),
            "nonce": _nonce(obj.get("nonce")),
        }
        return Signed("0x" + sign_thor(body, key).hex(), self.broadcast_path)

    def _estimate(self, obj: Mapping[str, Any], clause: Mapping[str, Any], caller: str, node: Node) -> int:
        """thorify's eth_estimateGas: `POST /accounts/*` with the clause and the signer as caller; intrinsic gas
        plus the VM's gas and 15,000 when the VM used any."""
        call: dict[str, Any] = {"clauses": [{"to": "0x" + clause["to"].hex() if clause["to"] else None,
                                             "value": hex(clause["value"]) if obj.get("value") else "",
                                             "data": "0x" + clause["data"].hex()}],
                                "caller": caller}
        if obj.get("gasPrice"):
            call["gasPrice"] = hex(evm_quantity(obj["gasPrice"], "gasPrice"))
        if obj.get("gas"):
            call["gas"] = evm_quantity(obj["gas"], "gas")
        results = node.post("/accounts/*?revision=best", call, endpoint="node", idempotent=True)
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise ChainError("the VET node returned no result for the gas estimate")
        result = results[0]
        if result.get("reverted") or result.get("vmError"):
            detail = f": {result['vmError']}" if result.get("vmError") else ""
            raise ChainError(f"Gas estimation failed{detail}")
        used = result.get("gasUsed") or 0
        if isinstance(used, bool) or not isinstance(used, int) or used < 0:
            raise ChainError("the VET node returned a malformed gasUsed")
        return intrinsic_gas([clause]) + (used + ESTIMATE_MARGIN if used else 0)

    def _chain_tag(self, node: Node) -> int:
        """The last byte of the genesis block id (`GET /blocks/0`, asked once per node)."""
        genesis = node.get("/blocks/0", endpoint="node", constant=True)
        block_id = genesis.get("id") if isinstance(genesis, dict) else None
        if not isinstance(block_id, str) or len(block_id) != 66 or not _HEX.fullmatch(block_id):
            raise ChainError("error getting chainTag: the VET node returned no genesis block id")
        return int(block_id[64:], 16)

    def _best_block_ref(self, node: Node) -> bytes:
        """The first 8 bytes of the best block's id (`GET /blocks/best`)."""
        best = node.get("/blocks/best", endpoint="node")
        block_id = best.get("id") if isinstance(best, dict) else None
        if not isinstance(block_id, str) or len(block_id) < 18 or not _HEX.fullmatch(block_id):
            raise ChainError("error getting blockRef: the VET node returned no best block id")
        return bytes.fromhex(block_id[2:18])


# -- payload fields, as thorify reads them ------------------------------------------------------------


def _clause(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The one clause: `to` (absent: a contract creation), `value` (default 0), `data` (hex, default empty)."""
    to = obj.get("to")
    if to:
        to_bytes = _hex_bytes(to, "to")
        if len(to_bytes) != 20:
            raise ChainError("to is not a 20-byte address")
    else:
        to_bytes = None
    data = obj.get("data")
    if data and not (isinstance(data, str) and _HEX.fullmatch(data)):
        raise ChainError("Data must be valid hex")
    value = obj.get("value")
    return {"to": to_bytes, "value": evm_quantity(value, "value") if value else 0,
            "data": _hex_bytes(data, "data") if data else b""}


def _hex_bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ChainError(f"{name} must be a hex string")
    body = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ChainError(f"{name} is not valid hex") from None


def _number_or(value: Any, default: int | None) -> int:
    """thorify's validNumberOrDefault: an integer's absolute value, else the leading integer JavaScript's
    parseInt reads from a string (hex after `0x`), else `default`."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return abs(int(value))
    if isinstance(value, str):
        match = re.match(r"\s*[-+]?(?:0[xX]([0-9a-fA-F]+)|([0-9]+))", value)
        if match:
            return int(match.group(1), 16) if match.group(1) else int(match.group(2))
    if default is None:
        raise ChainError("chainTag must be a number")
    return default


def _block_ref(value: Any) -> bytes:
    raw = _hex_bytes(value, "blockRef")
    if len(raw) != 8:
        raise ChainError("blockRef must be 8 bytes of hex")
    return raw


def _depends_on(value: Any) -> bytes:
    if not value:
        return b""
    raw = _hex_bytes(value, "dependsOn")
    if len(raw) != 32:
        raise ChainError("dependsOn must be a 32-byte transaction id")
    return raw


def _nonce(value: Any) -> int:
    """The payload's nonce (a string is read as hex, as thorify prefixes it with 0x), else a random one.

    thorify draws floor(time_ms * random); a uniform 64-bit draw serves the same purpose (distinct ids for
    equal payloads) without reading the clock.
    """
    if not value:
        return secrets.randbits(64)
    if isinstance(value, str):
        body = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            return int(body, 16)
        except ValueError:
            raise ChainError("nonce is not a hex string") from None
    return evm_quantity(value, "nonce")


# -- encoding -------------------------------------------------------------------------------------------


def _check_width(value: int, size: int, name: str) -> int:
    if not isinstance(value, int) or value < 0 or value.bit_length() > size * 8:
        raise ChainError(f"{name} does not fit in {size} bytes")
    return value


def thor_body_fields(body: Mapping[str, Any]) -> list[Any]:
    """The unsigned transaction as RLP items, with thor-devkit's field widths checked (features: none)."""
    clauses = []
    for clause in body["clauses"]:
        clauses.append([clause["to"] or b"", _check_width(clause["value"], 32, "value"), clause["data"]])
    return [
        _check_width(body["chainTag"], 1, "chainTag"),
        body["blockRef"].lstrip(b"\0"),
        _check_width(body["expiration"], 4, "expiration"),
        clauses,
        _check_width(body["gasPriceCoef"], 1, "gasPriceCoef"),
        _check_width(body["gas"], 8, "gas"),
        body["dependsOn"],
        _check_width(body["nonce"], 8, "nonce"),
        [],
    ]


def thor_signing_hash(body: Mapping[str, Any]) -> bytes:
    """blake2b-256 of the RLP of the unsigned body."""
    return blake2b256(_rlp.encode(thor_body_fields(body)))


def sign_thor(body: Mapping[str, Any], key: PrivateKey) -> bytes:
    """RLP(body fields, signature) with a 65-byte r‖s‖recovery-id signature of the blake2b-256 signing hash."""
    payload = _rlp.encode_items(thor_body_fields(body))
    signature = key.sign_recoverable(blake2b256(_rlp.wrap_list(payload)), hasher=None)
    return _rlp.wrap_list(payload + _rlp.encode(signature))


VET = VetChain()
