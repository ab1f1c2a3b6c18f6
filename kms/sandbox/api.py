"""The sandbox's state and routes: what `tatum-kms sandbox` answers, independent of the HTTP plumbing.

`Sandbox.handle(method, path, headers, body)` returns a `Reply`; `server.py` only moves bytes. See the
package docstring for the list of endpoints.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chains.base import ChainError, PendingTransaction
from kms.sandbox.evm import Evm, EvmRejected, quantity
from kms.sandbox.verify import Prevout, VerifyFailed, verify_bitcoin, verify_stellar

#: Chain broadcast paths the sandbox verifies, and the chain each one is for.
BROADCAST_PATHS = {"/v3/bitcoin/broadcast": "BTC", "/v3/ethereum/broadcast": "ETH", "/v3/xlm/broadcast": "XLM"}
OFFCHAIN_PATH = "/v3/offchain/withdrawal/broadcast"

_KEY_IN_PATH = re.compile(r"^(/v3/ethereum/web3/)[^/?#]+")


def redact_path(path: str) -> str:
    """The path with an API key embedded in it (node proxy URLs) replaced by `***`."""
    return _KEY_IN_PATH.sub(r"\1***", path)


@dataclass
class Reply:
    """An HTTP answer: status, a JSON-serialisable body (None for none) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """A request the sandbox refuses; becomes a Tatum-style error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"statusCode": status, "errorCode": code, "message": message})


@dataclass
class _Failure:
    status: int | None
    times: int
    delay: float


class Sandbox:
    """A local Tatum: queued pending transactions, verified broadcasts, an in-process EVM, admin controls."""

    def __init__(self, *, execute: bool = True, testnet: bool = True) -> None:
        self.evm = Evm(execute=execute)
        self.testnet = testnet
        from stellar_sdk import Network

        self.passphrase = Network.TESTNET_NETWORK_PASSPHRASE if testnet else Network.PUBLIC_NETWORK_PASSPHRASE
        self._lock = threading.RLock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._broadcasts: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self._utxos: dict[tuple[str, int], Prevout] = {}
        self._spent: set[tuple[str, int]] = set()
        self._failures: dict[str, _Failure] = {}
        self._requests: Counter[str] = Counter()
        self._client_version: str | None = None
        self._latest_version: str | None = None
        self._approved: set[str] = set()
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply], bool]] = [
            ("POST", re.compile(r"/v3/kms/pending/(\w+)"), self._pending_for, True),
            ("GET", re.compile(r"/v3/kms/(\w+)"), self._pending_one, True),
            ("POST", re.compile(r"/v3/tatum/kms/batch"), self._batch, True),
            ("POST", re.compile(r"/v3/(bitcoin|ethereum|xlm)/broadcast"), self._chain_broadcast, True),
            ("POST", re.compile(OFFCHAIN_PATH), self._offchain_broadcast, True),
            ("POST", re.compile(r"/v3/ethereum/web3/([^/]+)"), self._web3, False),
            ("GET", re.compile(r"/v3/ethereum/transaction/count/(0x[0-9a-fA-F]{40})"), self._eth_count, True),
            ("GET", re.compile(r"/v3/blockchain/fee/ETH"), self._eth_fee, True),
            ("GET", re.compile(r"/sandbox/?"), self._help, False),
            ("POST", re.compile(r"/sandbox/pending"), self._enqueue, False),
            ("GET", re.compile(r"/sandbox/pending"), self._list_pending, False),
            ("POST", re.compile(r"/sandbox/eth/fund"), self._fund, False),
            ("GET", re.compile(r"/sandbox/eth/balance/(0x[0-9a-fA-F]{40})"), self._balance, False),
            ("GET", re.compile(r"/sandbox/broadcasts"), self._list_broadcasts, False),
            ("GET", re.compile(r"/sandbox/errors"), self._list_errors, False),
            ("POST", re.compile(r"/sandbox/fail"), self._fail, False),
            ("POST", re.compile(r"/sandbox/latest-version"), self._set_latest_version, False),
            ("GET", re.compile(r"/sandbox/requests"), self._list_requests, False),
            ("POST", re.compile(r"/sandbox/approvals"), self._approve, False),
            ("GET", re.compile(r"/sandbox/approve/([^/]+)"), self._approval, False),
            ("POST", re.compile(r"/sandbox/approve/([^/]+)"), self._approval, False),
        ]

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request. Never raises; the API key is neither stored nor echoed."""
        path = path.split("?", 1)[0]
        with self._lock:
            self._requests[f"{method} {redact_path(path)}"] += 1
        for verb, pattern, handler, needs_key in self._routes:
            match = pattern.fullmatch(path)
            if not match or verb != method:
                continue
            if needs_key and not headers.get("x-api-key"):
                return _error(401, "api.key.missing", "The x-api-key header is missing.")
            injected = self._injected_failure(path)
            if injected is not None:
                return injected
            try:
                payload = _json(body) if method in ("POST", "PUT") else None
                return handler(payload, headers, *match.groups())
            except Rejected as exc:
                return _error(exc.status, exc.code, exc.message)
        if any(pattern.fullmatch(path) for _, pattern, _, _ in self._routes):
            return _error(405, "method.not.allowed", f"{method} is not allowed on this path.")
        return _error(404, "not.found", f"The sandbox does not serve {method} {redact_path(path)}.")

    def _injected_failure(self, path: str) -> Reply | None:
        with self._lock:
            rule = self._failures.get(path)
            if rule is None:
                return None
            rule.times -= 1
            if rule.times <= 0:
                del self._failures[path]
        if rule.delay:
            time.sleep(rule.delay)
        if rule.status is None:
            return None
        return _error(rule.status, "sandbox.injected.failure", f"Failure injected by /sandbox/fail ({rule.status}).")

    # -- the daemon's endpoints -----------------------------------------------------------------

    def _pending_for(self, payload: Any, headers: Mapping[str, str], chain: str) -> Reply:
        ids = payload.get("signatureIds") if isinstance(payload, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise Rejected(400, "validation.failed", "Body must be {\"signatureIds\": [string, ...]}.")
        wanted = set(ids)
        with self._lock:
            self._client_version = headers.get("x-ttm-kms-client-version")
            found = [tx for tx in self._pending.values()
                     if tx["chain"] == chain.upper() and not tx.get("txId") and wanted & _wallet_ids(tx)]
            latest = self._latest_version
        return Reply(200, found, {"x-ttm-kms-latest-version": latest} if latest else {})

    def _pending_one(self, payload: Any, headers: Mapping[str, str], tx_id: str) -> Reply:
        with self._lock:
            tx = self._pending.get(tx_id)
        if tx is None:
            raise Rejected(404, "kms.not.found", f"No pending transaction {tx_id}.")
        return Reply(200, tx)

    def _batch(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise Rejected(400, "validation.failed", "Body must be {\"errors\": [{\"signatureId\", \"error\"}, ...]}.")
        with self._lock:
            self._errors.extend(errors)
        return Reply(200, {})

    def _chain_broadcast(self, payload: Any, headers: Mapping[str, str], segment: str) -> Reply:
        path = f"/v3/{segment}/broadcast"
        return self._broadcast(payload, BROADCAST_PATHS[path], path)

    def _offchain_broadcast(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        currency = payload.get("currency") if isinstance(payload, dict) else None
        if currency not in set(BROADCAST_PATHS.values()):
            raise Rejected(400, "validation.failed", f"The sandbox verifies BTC, ETH or XLM, not {currency!r}.")
        return self._broadcast(payload, currency, OFFCHAIN_PATH)

    def _broadcast(self, payload: Any, chain: str, path: str) -> Reply:
        tx_data = payload.get("txData") if isinstance(payload, dict) else None
        if not isinstance(tx_data, str) or not tx_data:
            raise Rejected(400, "validation.failed", "Body must hold a string txData.")
        signature_id = payload.get("signatureId")
        tx_id = self._submit(chain, tx_data)
        with self._lock:
            pending = self._pending.get(signature_id) if isinstance(signature_id, str) else None
            completed = pending is not None and not pending.get("txId")
            if completed:
                pending["txId"] = tx_id
            record = {"path": path, "chain": chain, "txId": tx_id, "txData": tx_data, "signatureId": signature_id}
            if payload.get("withdrawalId"):
                record["withdrawalId"] = payload["withdrawalId"]
            self._broadcasts.append(record)
        return Reply(200, {"txId": tx_id, "completed": completed})

    def _submit(self, chain: str, tx_data: str) -> str:
        """Verify (and for ETH execute) a signed transaction; return its id or raise Rejected with the reason."""
        code = f"{chain.lower()}.broadcast.failed"
        try:
            if chain == "ETH":
                return self.evm.send_raw(tx_data)
            if chain == "XLM":
                return verify_stellar(tx_data, self.passphrase)
            with self._lock:  # BTC: verify against known outputs, then spend them
                unspent = {k: v for k, v in self._utxos.items() if k not in self._spent}
                accepted = verify_bitcoin(tx_data, unspent)
                self._spent.update(accepted.spends)
                for n, output in enumerate(accepted.outputs):
                    self._utxos[(accepted.txid, n)] = output
                return accepted.txid
        except (EvmRejected, VerifyFailed) as exc:
            raise Rejected(400, code, str(exc)) from None

    def _web3(self, payload: Any, headers: Mapping[str, str], key: str) -> Reply:
        if isinstance(payload, list):
            return Reply(200, [self._rpc_one(call) for call in payload])
        return Reply(200, self._rpc_one(payload))

    def _rpc_one(self, call: Any) -> dict[str, Any]:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
        try:
            reply["result"] = self.evm.rpc(call["method"], call.get("params") or [])
        except KeyError:
            reply["error"] = {"code": -32601, "message": f"the method {call['method']} does not exist/is not available"}
        except EvmRejected as exc:
            reply["error"] = {"code": -32000, "message": str(exc)}
        return reply

    def _eth_count(self, payload: Any, headers: Mapping[str, str], address: str) -> Reply:
        return Reply(200, self.evm.nonce(address))

    def _eth_fee(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        return Reply(200, self.evm.fees())

    # -- admin ----------------------------------------------------------------------------------

    def _help(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        from kms import sandbox

        return Reply(200, {"chainId": self.evm.chain_id, "stellarPassphrase": self.passphrase,
                           "execute": self.evm.execute, "help": (sandbox.__doc__ or "").strip()})

    def _enqueue(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        if not isinstance(payload, dict):
            raise Rejected(400, "validation.failed", "Body must be a PendingTransaction JSON object.")
        tx = dict(payload)
        tx.setdefault("id", secrets.token_hex(12))
        tx.pop("txId", None)
        try:
            pending = PendingTransaction.from_json(tx)
        except ChainError as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        tx["chain"] = pending.chain.upper()
        prevouts = _bitcoin_prevouts(pending.serialized_transaction) if tx["chain"] == "BTC" else {}
        with self._lock:
            if tx["id"] in self._pending:
                raise Rejected(409, "validation.failed", f"A pending transaction {tx['id']} already exists.")
            self._pending[tx["id"]] = tx
            self._utxos.update(prevouts)
        return Reply(200, {"id": tx["id"]})

    def _approve(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            raise Rejected(400, "validation.failed", "Body must be {\"id\": \"<pending id>\"}.")
        with self._lock:
            self._approved.add(payload["id"])
        return Reply(200, {"id": payload["id"], "approved": True})

    def _approval(self, payload: Any, headers: Mapping[str, str], tx_id: str) -> Reply:
        """A four-eye approval server for demos: 200 for ids approved on /sandbox/approvals, else 403."""
        with self._lock:
            approved = tx_id in self._approved
        if approved:
            return Reply(200, {"id": tx_id, "approved": True})
        return _error(403, "approval.missing", f"Nobody approved {tx_id}.")

    def _list_pending(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            return Reply(200, list(self._pending.values()))

    def _fund(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        if not isinstance(payload, dict) or "address" not in payload or "wei" not in payload:
            raise Rejected(400, "validation.failed", "Body must be {\"address\": \"0x...\", \"wei\": \"<amount>\"}.")
        try:
            tx_id = self.evm.fund(payload["address"], quantity(payload["wei"], "wei"))
            balance = self.evm.balance(payload["address"])
        except EvmRejected as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        return Reply(200, {"txId": tx_id, "balance": str(balance)})

    def _balance(self, payload: Any, headers: Mapping[str, str], address: str) -> Reply:
        return Reply(200, {"address": address, "wei": str(self.evm.balance(address))})

    def _list_broadcasts(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            return Reply(200, list(self._broadcasts))

    def _list_errors(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            return Reply(200, list(self._errors))

    def _fail(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
            raise Rejected(400, "validation.failed", "Body must be {\"path\", \"status\"?, \"times\"?, \"delay\"?}.")
        status, times, delay = payload.get("status"), payload.get("times", 1), payload.get("delay", 0)
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise Rejected(400, "validation.failed", "status must be an HTTP error status (400-599).")
        if not isinstance(times, int) or times < 1 or not isinstance(delay, int | float) or delay < 0:
            raise Rejected(400, "validation.failed", "times must be >= 1 and delay >= 0.")
        with self._lock:
            self._failures[payload["path"]] = _Failure(status, times, float(delay))
        return Reply(200, {"path": payload["path"], "status": status, "times": times, "delay": delay})

    def _set_latest_version(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        header = payload.get("header") if isinstance(payload, dict) else None
        if header is not None and not isinstance(header, str):
            raise Rejected(400, "validation.failed", "Body must be {\"header\": \"<semver>;<LEVEL>;<text>\" | null}.")
        with self._lock:
            self._latest_version = header
        return Reply(200, {"header": header})

    def _list_requests(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            return Reply(200, {"counts": dict(self._requests), "clientVersion": self._client_version})


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise Rejected(400, "validation.failed", "The body is not JSON.") from None


def _wallet_ids(tx: dict[str, Any]) -> set[str]:
    """The signature ids a pending transaction names: `hashes` and `signatures[].id`."""
    ids = set(tx.get("hashes") or [])
    ids.update(sig["id"] for sig in tx.get("signatures") or [] if isinstance(sig, dict) and "id" in sig)
    return ids


def _bitcoin_prevouts(serialized: str) -> dict[tuple[str, int], Prevout]:
    """The outputs a bitcore-JSON transaction spends, from its inputs' `output.script`/`satoshis`."""
    try:
        inputs = json.loads(serialized)["inputs"]
        prevouts = {}
        for txin in inputs:
            output = txin["output"]
            key = (str(txin["prevTxId"]).lower(), int(txin["outputIndex"]))
            prevouts[key] = Prevout(bytes.fromhex(output["script"]), int(output["satoshis"]))
        return prevouts
    except (ValueError, KeyError, TypeError):
        raise Rejected(400, "validation.failed",
                       "A BTC serializedTransaction must be bitcore JSON whose inputs carry "
                       "prevTxId, outputIndex and output {script, satoshis}.") from None
