"""CELO: EVM wallets on coin type 52752 and the Celo legacy transaction with fee currency and gateway fee (spec §3.2).

Fill-in as the original's `@tatumio/celo` KMS signer (celo-ethers-wrapper 0.1.1): the nonce and the gas price
from the node when falsy, the gas price asked in the fee currency and raised to 1 gwei for cUSD when the node
says 0.5 gwei or less, the gas limit estimated plus 100,000 when missing or "0", the chain id from the node
(a payload's own chain id must agree with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.base import ChainError, Endpoint, Node, PendingTransaction, Signed, json_object
from chains.evm import chain_id_of, evm_quantity
from chains.evm.accounts import EvmAccounts, Sender, secret_of
from chains.primitives import rlp as _rlp
from chains.primitives.secp import PrivateKey, SigningKey, keccak256

#: Keys celo-ethers-wrapper accepts in a transaction (`from` is replaced by the signer and dropped).
ALLOWED_KEYS = frozenset({"chainId", "data", "gasLimit", "gasPrice", "nonce", "to", "value", "feeCurrency",
                          "gatewayFeeRecipient", "gatewayFee", "from"})
#: cUSD on mainnet and on Alfajores: gas paid in it costs at least 1 gwei when the node quotes 0.5 gwei or less.
CUSD = ("0x765de816845861e75a25fca122bb6898b8b1282a", "0x874069fa1eb16d44d622f2e0ca25eea172369bc1")
CUSD_FLOOR_QUOTE = 0x1DCD6500
CUSD_MIN_GAS_PRICE = 0x3B9ACA00
#: Added to the node's estimate, as the original does.
GAS_LIMIT_MARGIN = 100_000


@dataclass(frozen=True)
class CeloChain(EvmAccounts):
    """CELO: the EVM wallet code, its own payload and encoding."""

    code: str = "CELO"
    coin_type: int = 52752
    broadcast_path: str = "/v3/celo/broadcast"
    rpc_path: str = "/v3/blockchain/node/CELO/{api_key}"

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """The JSON-RPC proxy ("rpc") the v2 SDK talks to."""
        return {"rpc": Endpoint(tatum_path=self.rpc_path)}

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Fill in nonce, gas price, gas limit and chain id as the original does, sign, return `0x` raw hex."""
        if not keys:
            raise ChainError(f"{self.code} transaction {pending.id} has no signing key")
        key = SigningKey(secret_of(keys[0]))
        tx, falsy = parse_celo_payload(pending.serialized_transaction)
        sender = Sender(key)
        if "nonce" in falsy:
            tx["nonce"] = evm_quantity(node.rpc("eth_getTransactionCount", [sender.checksummed, "latest"]), "nonce")
        if "gasPrice" in falsy:
            fee_currency = tx["feeCurrency"]
            params = ["0x" + fee_currency.hex()] if fee_currency else []
            quote = evm_quantity(node.rpc("eth_gasPrice", params), "eth_gasPrice")
            if fee_currency and "0x" + fee_currency.hex() in CUSD and quote <= CUSD_FLOOR_QUOTE:
                quote = CUSD_MIN_GAS_PRICE
            tx["gasPrice"] = quote
        if not tx.get("gasLimit"):
            estimate = node.rpc("eth_estimateGas", [_estimate_call(tx, sender.checksummed)])
            tx["gasLimit"] = evm_quantity(estimate, "eth_estimateGas") + GAS_LIMIT_MARGIN
        node_chain_id = chain_id_of(node.rpc("eth_chainId", [], constant=True), "eth_chainId")
        if "chainId" not in tx:
            tx["chainId"] = node_chain_id
        elif node_chain_id != 0 and tx["chainId"] != node_chain_id:
            raise ChainError(f"chainId mismatch: the payload says {tx['chainId']}, the node {node_chain_id}")
        return Signed("0x" + sign_celo(tx, key).hex(), self.broadcast_path)


def parse_celo_payload(serialized: str) -> tuple[dict[str, Any], frozenset[str]]:
    """The payload's fields typed (numbers as ints, addresses and data as bytes), and those to fill in.

    A key celo-ethers-wrapper does not know is refused, as it refuses it. "To fill in" are the nonce and the
    gas price when JavaScript-falsy (absent, null, 0 or ""), as `transaction.nonce || txCount` decides.
    """
    obj = json_object(serialized)
    unknown = sorted(set(obj) - ALLOWED_KEYS)
    if unknown:
        raise ChainError(f"invalid CELO transaction key: {unknown[0]}")
    tx: dict[str, Any] = {}
    fill = set()
    for name in ("nonce", "gasPrice", "gasLimit", "value", "gatewayFee", "chainId"):
        raw = obj.get(name)
        if raw is None or raw == "" or (raw == 0 and not isinstance(raw, str | bool)):
            if name in ("nonce", "gasPrice"):
                fill.add(name)
            continue
        tx[name] = evm_quantity(raw, name)
    for name in ("to", "feeCurrency", "gatewayFeeRecipient"):
        tx[name] = _address(obj.get(name), name)
    data = obj.get("data")
    tx["data"] = _hex(data, "data") if data else b""
    return tx, frozenset(fill)


def _address(value: Any, name: str) -> bytes:
    if value is None or value == "":
        return b""
    raw = _hex(value, name)
    if len(raw) != 20:
        raise ChainError(f"{name} is not a 20-byte address")
    return raw


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ChainError(f"{name} must be a hex string")
    body = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ChainError(f"{name} is not valid hex") from None


def _estimate_call(tx: dict[str, Any], sender: str) -> dict[str, Any]:
    """What ethers sends to eth_estimateGas for the transaction: its standard fields, `from` = the signer."""
    call: dict[str, Any] = {"from": sender}
    if tx["to"]:
        call["to"] = "0x" + tx["to"].hex()
    for name in ("gasPrice", "nonce", "value"):
        if tx.get(name) is not None:
            call[name] = hex(tx[name])
    if tx["data"]:
        call["data"] = "0x" + tx["data"].hex()
    return call


def celo_fields(tx: Mapping[str, Any]) -> list[Any]:
    """The nine Celo legacy fields in RLP order; empty addresses and zero numbers encode as empty strings."""
    return [tx.get("nonce", 0), tx.get("gasPrice", 0), tx.get("gasLimit", 0), tx["feeCurrency"],
            tx["gatewayFeeRecipient"], tx.get("gatewayFee", 0), tx["to"], tx.get("value", 0), tx["data"]]


def sign_celo(tx: Mapping[str, Any], key: PrivateKey) -> bytes:
    """RLP(fields, v, r, s) with the signing hash keccak256(RLP(fields, chainId, 0, 0)) and v = chainId*2 + 35 +
    recovery id (27 + recovery id without a chain id)."""
    body = _rlp.encode_items(celo_fields(tx))
    chain_id = tx.get("chainId", 0)
    unsigned = _rlp.wrap_list(body + _rlp.encode_items([chain_id, 0, 0])) if chain_id else _rlp.wrap_list(body)
    signature = key.sign_recoverable(keccak256(unsigned), hasher=None)
    v = chain_id * 2 + 35 + signature[64] if chain_id else 27 + signature[64]
    return _rlp.wrap_list(body + _rlp.encode_items([v, signature[:32].lstrip(b"\0"), signature[32:64].lstrip(b"\0")]))

CELO = CeloChain()
