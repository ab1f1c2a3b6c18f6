"""The sandbox's MultiversX (EGLD) gateway: network config, nonces and gas cost, and transfers executed on balances
after their ed25519 signature is checked over the sandbox's own rebuild of the signing serialization.

The verifier shares no code with the signer: addresses are decoded by bip-utils, the signing bytes are rebuilt
here field by field from the MultiversX protocol's order, and the signature is checked by OpenSSL (cryptography),
where the signer uses libsodium (PyNaCl).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import defaultdict
from decimal import Decimal
from typing import Any

from chains import safejson
from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Headers, Rejected, Reply, Route

MIN_GAS_PRICE = 1_000_000_000
MIN_GAS_LIMIT = 50_000
GAS_PER_DATA_BYTE = 1_500
TX_VERSION = 1


def _ok(data: dict[str, Any]) -> Reply:
    return Reply(200, {"data": data, "error": "", "code": "successful"})


def _gateway_error(status: int, message: str) -> Reply:
    return Reply(status, {"data": None, "error": message, "code": "bad_request"})


def public_key(address: Any) -> bytes:
    """The ed25519 public key of an `erd1…` address, decoded by bip-utils."""
    from bip_utils import EgldAddrDecoder

    if not isinstance(address, str):
        raise VerifyFailed("address is not a string")
    try:
        return bytes(EgldAddrDecoder.DecodeAddr(address))
    except Exception:
        raise VerifyFailed(f"{address[:70]!r} is not an erd1 address") from None


def signing_bytes(tx: dict[str, Any]) -> bytes:
    """What an EGLD transaction's signature covers (protocol v1 and v2 without hash signing), rebuilt by hand."""
    text = (f'{{"nonce":{tx["nonce"]},"value":"{tx["value"]}","receiver":"{tx["receiver"]}",'
            f'"sender":"{tx["sender"]}","gasPrice":{tx["gasPrice"]},"gasLimit":{tx["gasLimit"]}')
    if tx.get("data"):
        text += f',"data":"{tx["data"]}"'
    text += f',"chainID":"{tx["chainID"]}","version":{tx["version"]}'
    if tx.get("options"):
        text += f',"options":{tx["options"]}'
    return (text + "}").encode()


def min_gas_limit(data: str | None) -> int:
    """The protocol's minimum gas of a move-balance transaction: a base plus a price per data byte."""
    return MIN_GAS_LIMIT + GAS_PER_DATA_BYTE * len(base64.b64decode(data or ""))


def verify_egld(tx_json: str, chain_id: str) -> dict[str, Any]:
    """Check a sendable EGLD transaction's shape and ed25519 signature; return it parsed."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        tx = safejson.loads(tx_json)
    except ValueError:
        raise VerifyFailed("transaction is not JSON") from None
    if not isinstance(tx, dict):
        raise VerifyFailed("transaction is not a JSON object")
    for name, kind in (("nonce", int), ("value", str), ("receiver", str), ("sender", str), ("gasPrice", int),
                       ("gasLimit", int), ("chainID", str), ("version", int), ("signature", str)):
        if not isinstance(tx.get(name), kind) or isinstance(tx.get(name), bool):
            raise VerifyFailed(f"transaction field {name} is missing or not a {kind.__name__}")
    if not tx["value"].isdigit():
        raise VerifyFailed("value must be a non-negative integer string")
    if "data" in tx and (not isinstance(tx["data"], str) or not tx["data"]):
        raise VerifyFailed("data, when present, must be non-empty base64")
    try:
        base64.b64decode(tx.get("data") or "", validate=True)
    except ValueError:
        raise VerifyFailed("data is not base64") from None
    if tx["chainID"] != chain_id:
        raise VerifyFailed(f"invalid chain ID: {tx['chainID']!r}, this network is {chain_id!r}")
    if tx["version"] != TX_VERSION or tx.get("options"):
        raise VerifyFailed(f"invalid transaction version {tx['version']} or options")
    public_key(tx["receiver"])
    try:
        signature = bytes.fromhex(tx["signature"])
        Ed25519PublicKey.from_public_bytes(public_key(tx["sender"])).verify(signature, signing_bytes(tx))
    except (ValueError, InvalidSignature):
        raise VerifyFailed("invalid signature: it does not verify for the sender over the transaction") from None
    return tx


class EgldLedger(Ledger):
    """EGLD: balances and nonces per address; broadcasts verified, then executed."""

    chains = ("EGLD",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self.chain_id = "T" if testnet else "1"
        self._lock = threading.Lock()
        self._nonces: dict[str, int] = defaultdict(int)
        self._balances: dict[str, int] = defaultdict(int)

    # -- the gateway ----------------------------------------------------------------------------

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        parts = subpath.strip("/").split("/")
        if endpoint != "gateway":
            return super().node(chain, endpoint, method, subpath, payload, headers)
        if method == "GET" and subpath == "/network/config":
            return _ok({"config": {"erd_chain_id": self.chain_id, "erd_min_gas_price": MIN_GAS_PRICE,
                                   "erd_min_gas_limit": MIN_GAS_LIMIT, "erd_gas_per_data_byte": GAS_PER_DATA_BYTE,
                                   "erd_min_transaction_version": TX_VERSION}})
        if method == "GET" and len(parts) == 3 and parts[0] == "address" and parts[2] in ("nonce", "balance"):
            try:
                public_key(parts[1])
            except VerifyFailed as exc:
                return _gateway_error(400, str(exc))
            with self._lock:
                if parts[2] == "nonce":
                    return _ok({"nonce": self._nonces[parts[1]]})
                return _ok({"balance": str(self._balances[parts[1]])})
        if method == "POST" and subpath == "/transaction/cost":
            if not isinstance(payload, dict):
                return _gateway_error(400, "the body must be a transaction object")
            data = payload.get("data")
            try:
                public_key(payload.get("receiver"))
                units = min_gas_limit(data if isinstance(data, str) else None)
            except (VerifyFailed, ValueError) as exc:
                return _ok({"txGasUnits": 0, "returnMessage": str(exc) or "bad data"})
            return _ok({"txGasUnits": units, "returnMessage": ""})
        return _gateway_error(404, f"the sandbox gateway does not serve {method} {subpath}")

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            tx = verify_egld(tx_data, self.chain_id)
            with self._lock:
                sender, expected = tx["sender"], self._nonces[tx["sender"]]
                if tx["nonce"] != expected:
                    raise VerifyFailed(f"invalid transaction nonce {tx['nonce']}: the sender's nonce is {expected}")
                if tx["gasPrice"] < MIN_GAS_PRICE:
                    raise VerifyFailed(f"insufficient gas price: {tx['gasPrice']} < {MIN_GAS_PRICE}")
                if tx["gasLimit"] < min_gas_limit(tx.get("data")):
                    raise VerifyFailed(f"insufficient gas limit: {tx['gasLimit']} < {min_gas_limit(tx.get('data'))}")
                cost = int(tx["value"]) + tx["gasLimit"] * tx["gasPrice"]
                if self.execute and self._balances[sender] < cost:
                    raise VerifyFailed(f"insufficient funds: {sender} has {self._balances[sender]}, needs {cost}")
                self._nonces[sender] += 1
                if self.execute:
                    self._balances[sender] -= cost
                    self._balances[tx["receiver"]] += int(tx["value"])
        except VerifyFailed as exc:
            raise Rejected(400, "egld.broadcast.failed", str(exc)) from None
        return hashlib.blake2b(tx_data.encode(), digest_size=32).hexdigest()

    # -- admin and samples ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("POST", r"/sandbox/egld/fund", self._fund, needs_key=False),
                Route("GET", r"/sandbox/egld/balance/(erd1[0-9a-z]+)", self._balance, needs_key=False)]

    def fund(self, address: str, amount: int) -> None:
        """Credit `amount` (10^-18 EGLD) to `address`."""
        public_key(address)
        with self._lock:
            self._balances[address] += amount

    def _fund(self, payload: Any, headers: Headers) -> Reply:
        amount = payload.get("amount") if isinstance(payload, dict) else None
        if not isinstance(amount, str | int) or isinstance(amount, bool) or not str(amount).isdigit():
            raise Rejected(400, "validation.failed",
                           "Body must be {\"address\": \"erd1…\", \"amount\": \"<10^-18 EGLD>\"}.")
        try:
            self.fund(payload.get("address"), int(amount))
        except VerifyFailed as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        return self._balance(None, headers, payload["address"])

    def _balance(self, payload: Any, headers: Headers, address: str) -> Reply:
        with self._lock:
            return Reply(200, {"address": address, "balance": str(self._balances[address]),
                               "nonce": self._nonces[address]})

    def describe(self) -> dict[str, Any]:
        return {"egldChainId": self.chain_id}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A transfer of `amount` (10^-18 EGLD) with a data field from `address` (funded for it and its gas)."""
        from bip_utils import EgldAddrEncoder
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.fund(address, amount + 10**17)
        receiver = EgldAddrEncoder.EncodeKey(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
        value = format(Decimal(amount).scaleb(-18), "f")
        return json.dumps({"from": address, "to": receiver, "value": value, "data": "sandbox sample"})
