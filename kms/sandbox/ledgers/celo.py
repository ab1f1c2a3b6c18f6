"""The sandbox's CELO ledger: a verifier of Celo legacy transactions, written from Celo's format and sharing no
code with the KMS signer (pyrlp, eth-utils' keccak, libsecp256k1 through coincurve).

A broadcast is decoded (nonce, gasPrice, gas, feeCurrency, gatewayFeeRecipient, gatewayFee, to, value, data,
v, r, s), its EIP-155 chain id checked against the network's, its signing hash recomputed and its sender
recovered; the nonce must be the sender's next one (kept per sender), the gas price at least the node's quote
in the fee currency, and the fields equal to what the pending transaction (or the sample) asked for. Nothing
is executed: there is no Celo engine in Python. The node proxy answers what the signer asks.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address

from chains import safejson
from chains.base import PendingTransaction
from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Headers, Rejected, Reply

#: (mainnet, testnet): Celo and Alfajores.
CHAIN_IDS = (42220, 44787)
#: Gas price quotes in wei, by fee currency (lowercase address; "" = CELO itself).
CUSD = ("0x765de816845861e75a25fca122bb6898b8b1282a", "0x874069fa1eb16d44d622f2e0ca25eea172369bc1")
CELO_GAS_PRICE = 5 * 10**9
CUSD_GAS_PRICE = 250_000_000  # low enough that the signer's 1 gwei cUSD minimum applies
OTHER_GAS_PRICE = 700_000_000
INTRINSIC_GAS = 21_000
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_FIELDS = ("nonce", "gasPrice", "gas", "feeCurrency", "gatewayFeeRecipient", "gatewayFee", "to", "value", "data")


def _uint(raw: Any, name: str) -> int:
    if not isinstance(raw, bytes) or raw[:1] == b"\0" or len(raw) > 32:
        raise VerifyFailed(f"rlp: {name} is not a canonical integer")
    return int.from_bytes(raw, "big")


def _optional_address(raw: Any, name: str) -> str:
    if not isinstance(raw, bytes) or len(raw) not in (0, 20):
        raise VerifyFailed(f"rlp: {name} is neither empty nor a 20-byte address")
    return "0x" + raw.hex() if raw else ""


def decode_celo(raw: bytes, chain_id: int) -> dict[str, Any]:
    """The fields and the recovered sender of a signed Celo legacy transaction for `chain_id`; VerifyFailed if not."""
    try:
        items = rlp.decode(raw)
    except rlp.exceptions.DecodingError:
        raise VerifyFailed("rlp: the transaction cannot be decoded") from None
    if not isinstance(items, list) or len(items) != 12 or not all(isinstance(i, bytes) for i in items):
        raise VerifyFailed("rlp: not a Celo legacy transaction (12 fields)")
    v = _uint(items[9], "v")
    if v < 35:
        raise VerifyFailed("only replay-protected (EIP-155) transactions are accepted")
    signed_chain_id, recovery = (v - 35) // 2, (v - 35) % 2
    if signed_chain_id != chain_id:
        raise VerifyFailed(f"invalid chain id: the transaction is for chain {signed_chain_id}, this is {chain_id}")
    tx: dict[str, Any] = {
        "nonce": _uint(items[0], "nonce"), "gasPrice": _uint(items[1], "gasPrice"), "gas": _uint(items[2], "gas"),
        "feeCurrency": _optional_address(items[3], "feeCurrency"),
        "gatewayFeeRecipient": _optional_address(items[4], "gatewayFeeRecipient"),
        "gatewayFee": _uint(items[5], "gatewayFee"), "to": _optional_address(items[6], "to"),
        "value": _uint(items[7], "value"), "data": "0x" + items[8].hex(), "chainId": signed_chain_id,
    }
    r, s = _uint(items[10], "r"), _uint(items[11], "s")
    if not 0 < r < _N or not 0 < s <= _N // 2:
        raise VerifyFailed("invalid sender: the signature values are out of range")
    digest = keccak(rlp.encode([*items[:9], signed_chain_id, b"", b""]))
    tx["from"] = recover(digest, r, s, recovery)
    tx["hash"] = "0x" + keccak(raw).hex()
    return tx


def recover(digest: bytes, r: int, s: int, recovery: int) -> str:
    """The checksummed address whose key made signature (r, s, recovery) of `digest` (libsecp256k1)."""
    import coincurve

    try:
        public = coincurve.PublicKey.from_signature_and_message(
            r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recovery]), digest, hasher=None)
    except Exception:
        raise VerifyFailed("invalid sender: the signature does not recover") from None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


def _quantity(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise VerifyFailed(f"payload {name} is not a number")
    if isinstance(value, int | float) and value == int(value) and value >= 0:
        return int(value)
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            pass
    raise VerifyFailed(f"payload {name} is not a number")


def expected_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """What a signed transaction must carry for this payload: the fields it fixes (given and truthy)."""
    expected: dict[str, Any] = {}
    for name, key in (("nonce", "nonce"), ("gasPrice", "gasPrice"), ("gasLimit", "gas"), ("chainId", "chainId"),
                      ("value", "value"), ("gatewayFee", "gatewayFee")):
        if payload.get(name) not in (None, "", 0, "0"):
            expected[key] = _quantity(payload[name], name)
    if "value" not in expected:
        expected["value"] = 0
    for name in ("to", "feeCurrency", "gatewayFeeRecipient"):
        expected[name] = str(payload.get(name) or "").lower()
    data = str(payload.get("data") or "0x").lower()
    expected["data"] = data if data.startswith("0x") else "0x" + data
    return expected


class CeloLedger(Ledger):
    """CELO: broadcasts verified (not executed), nonces kept per sender."""

    chains = ("CELO",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self.chain_id = CHAIN_IDS[1] if testnet else CHAIN_IDS[0]
        self._cusd = CUSD[1] if testnet else CUSD[0]
        self._nonces: dict[str, int] = {}
        self._payloads: dict[str, dict[str, Any]] = {}
        self._samples: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def gas_price(self, fee_currency: str) -> int:
        """The node's gas price quote in `fee_currency` (a token address, or "" for CELO)."""
        if not fee_currency:
            return CELO_GAS_PRICE
        return CUSD_GAS_PRICE if fee_currency.lower() == self._cusd else OTHER_GAS_PRICE

    def nonce(self, address: str) -> int:
        """The sender's next nonce."""
        with self._lock:
            return self._nonces.get(address.lower(), 0)

    def pending(self, chain: str, pending: PendingTransaction) -> None:
        try:
            payload = safejson.loads(pending.serialized_transaction)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise Rejected(400, "validation.failed", "A CELO serializedTransaction must be a JSON object.")
        with self._lock:
            self._payloads[pending.id] = payload

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            return self._verify(tx_data, body.get("signatureId"))
        except VerifyFailed as exc:
            raise Rejected(400, "celo.broadcast.failed", str(exc)) from None

    def _verify(self, tx_data: str, signature_id: Any) -> str:
        try:
            raw = bytes.fromhex(tx_data[2:] if tx_data.lower().startswith("0x") else tx_data)
        except ValueError:
            raise VerifyFailed("txData is not hex") from None
        tx = decode_celo(raw, self.chain_id)
        if tx["gas"] < INTRINSIC_GAS:
            raise VerifyFailed(f"intrinsic gas too low: {tx['gas']} < {INTRINSIC_GAS}")
        quote = self.gas_price(tx["feeCurrency"])
        if tx["gasPrice"] < quote:
            raise VerifyFailed(f"gas price {tx['gasPrice']} is below the minimum {quote} for this fee currency")
        sender = tx["from"].lower()
        with self._lock:
            payload = self._payloads.get(signature_id) if isinstance(signature_id, str) else None
            payload = payload if payload is not None else self._samples.get(sender)
            if payload is not None:
                for name, wanted in expected_fields(payload).items():
                    if tx[name] != wanted:
                        raise VerifyFailed(f"the signed {name} ({tx[name]!r}) is not the pending one ({wanted!r})")
            expected_nonce = self._nonces.get(sender, 0)
            if tx["nonce"] != expected_nonce:
                raise VerifyFailed(f"nonce {tx['nonce']} is not the sender's next ({expected_nonce})")
            self._nonces[sender] = expected_nonce + 1
        return str(tx["hash"])

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        if endpoint != "rpc" or method != "POST" or subpath:
            return super().node(chain, endpoint, method, subpath, payload, headers)
        if isinstance(payload, list):
            return Reply(200, [self._rpc(call) for call in payload])
        return Reply(200, self._rpc(payload))

    def _rpc(self, call: Any) -> dict[str, Any]:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        raw_params = call.get("params")
        params: list[Any] = raw_params if isinstance(raw_params, list) else []
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
        try:
            reply["result"] = self._answer(call["method"], params)
        except KeyError:
            reply["error"] = {"code": -32601, "message": f"the method {call['method']} does not exist/is not available"}
        except (VerifyFailed, IndexError, TypeError, ValueError) as exc:
            reply["error"] = {"code": -32000, "message": str(exc) or "invalid params"}
        return reply

    def _answer(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "net_version":
            return str(self.chain_id)
        if method == "eth_getTransactionCount":
            return hex(self.nonce(str(params[0])))
        if method == "eth_gasPrice":
            return hex(self.gas_price(str(params[0]) if params else ""))
        if method == "eth_estimateGas":
            data = bytes.fromhex(str(params[0].get("data") or "0x")[2:])
            return hex(INTRINSIC_GAS + sum(4 if b == 0 else 16 for b in data) + (30_000 if data else 0))
        if method == "eth_sendRawTransaction":
            return self._verify(str(params[0]), None)
        raise KeyError(method)

    def describe(self) -> dict[str, Any]:
        return {"celoChainId": self.chain_id}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A complete CELO transfer of `amount` wei from `address`, paid in CELO, at the sender's next nonce."""
        payload = {"chainId": self.chain_id, "nonce": self.nonce(address), "gasLimit": hex(INTRINSIC_GAS),
                   "gasPrice": hex(CELO_GAS_PRICE), "to": "0x" + os.urandom(20).hex(), "value": hex(amount)}
        with self._lock:
            self._samples[address.lower()] = payload
        return json.dumps(payload)
