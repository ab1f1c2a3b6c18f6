"""The sandbox's state and routes: what `tatum-kms sandbox` answers, independent of the HTTP plumbing.

Generic: the broadcast paths and node endpoints come from the chain registry, and each chain's broadcasts
and node calls go to the ledger that serves it (`kms.sandbox.ledgers`). `Sandbox.handle(method, path,
headers, body)` returns a `Reply`; `server.py` only moves bytes. See the package docstring for the endpoints.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import chains
from chains import safejson
from chains.base import ChainError, PendingTransaction
from kms.sandbox import ledgers
from kms.sandbox.replies import Rejected, Reply, Route, error

OFFCHAIN_PATH = "/v3/offchain/withdrawal/broadcast"



@functools.cache
def _key_pattern() -> re.Pattern[str] | None:
    """One regex for every node-proxy path that embeds the API key, the part before the key in a group of
    its own (one search per request, not one per chain); None when no chain's path carries the key."""
    alternatives = []
    for code in chains.CODES:
        for endpoint in chains.get(code).endpoints.values():
            if endpoint.tatum_path and "{api_key}" in endpoint.tatum_path:
                before, _, after = endpoint.tatum_path.partition("{api_key}")
                alternatives.append(f"({re.escape(before)})[^/?#]+(?={re.escape(after)})")
    return re.compile("^(?:" + "|".join(alternatives) + ")") if alternatives else None


def redact_path(path: str) -> str:
    """The path with an API key embedded in it (node proxy URLs) replaced by `***`."""
    pattern = _key_pattern()
    if pattern is None:
        return path
    return pattern.sub(lambda match: next(g for g in match.groups() if g is not None) + "***", path, count=1)


@dataclass
class _Failure:
    status: int | None
    times: int
    delay: float


class Sandbox:
    """A local Tatum: queued pending transactions, broadcasts checked by each chain's ledger, admin controls."""

    def __init__(self, *, execute: bool = True, testnet: bool = True) -> None:
        self.execute = execute
        self.testnet = testnet
        self.ledgers = ledgers.load(execute=execute, testnet=testnet)
        self._ledger_of = {code: ledger for ledger in self.ledgers for code in ledger.chains if code in chains.CODES}
        self._lock = threading.RLock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._broadcasts: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self._failures: dict[str, _Failure] = {}
        self._requests: Counter[str] = Counter()
        self._client_version: str | None = None
        self._latest_version: str | None = None
        self._approved: set[str] = set()
        routes = [
            Route("POST", r"/v3/kms/pending/(\w+)", self._pending_for),
            Route("GET", r"/v3/kms/(\w+)", self._pending_one),
            Route("POST", r"/v3/tatum/kms/batch", self._batch),
            Route("POST", re.escape(OFFCHAIN_PATH), self._offchain_broadcast),
            *self._chain_routes(),
            *(route for ledger in self.ledgers for route in ledger.routes()),
            Route("GET", r"/sandbox/?", self._help, needs_key=False),
            Route("POST", r"/sandbox/pending", self._enqueue, needs_key=False),
            Route("GET", r"/sandbox/pending", self._list_pending, needs_key=False),
            Route("GET", r"/sandbox/broadcasts", self._list_broadcasts, needs_key=False),
            Route("GET", r"/sandbox/errors", self._list_errors, needs_key=False),
            Route("POST", r"/sandbox/fail", self._fail, needs_key=False),
            Route("POST", r"/sandbox/latest-version", self._set_latest_version, needs_key=False),
            Route("GET", r"/sandbox/requests", self._list_requests, needs_key=False),
            Route("POST", r"/sandbox/approvals", self._approve, needs_key=False),
            Route("GET", r"/sandbox/approve/([^/]+)", self._approval, needs_key=False),
            Route("POST", r"/sandbox/approve/([^/]+)", self._approval, needs_key=False),
        ]
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply], bool]] = [
            (route.method, re.compile(route.pattern), route.handler, route.needs_key) for route in routes]

    def ledger(self, chain: str) -> ledgers.Ledger:
        """The ledger serving `chain`; Rejected when none does."""
        ledger = self._ledger_of.get(chain.upper())
        if ledger is None:
            raise Rejected(400, "validation.failed", f"The sandbox serves no {chain!r} ledger.")
        return ledger

    def _chain_routes(self) -> list[Route]:
        """Each served chain's broadcast path and node endpoints (Tatum proxies, and /node/{CHAIN}/{name})."""
        routes = []
        for code in self._ledger_of:
            chain = chains.get(code)
            routes.append(Route("POST", re.escape(chain.broadcast_path), self._chain_broadcast(code)))
            for name, endpoint in chain.endpoints.items():
                if endpoint.tatum_path is not None:
                    pattern = re.escape(endpoint.tatum_path).replace(re.escape("{api_key}"), "[^/]+")
                else:
                    pattern = re.escape(f"/node/{code}/{name}")
                for method in ("GET", "POST"):
                    routes.append(Route(method, pattern + "(/.*)?", self._node_call(code, name, method),
                                        needs_key=False))
        return routes

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
                return error(401, "api.key.missing", "The x-api-key header is missing.")
            injected = self._injected_failure(path)
            if injected is not None:
                return injected
            try:
                payload = _json(body) if method in ("POST", "PUT") else None
                return handler(payload, headers, *match.groups())
            except Rejected as exc:
                return error(exc.status, exc.code, exc.message)
        if any(pattern.fullmatch(path) for _, pattern, _, _ in self._routes):
            return error(405, "method.not.allowed", f"{method} is not allowed on this path.")
        return error(404, "not.found", f"The sandbox does not serve {method} {redact_path(path)}.")

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
        return error(rule.status, "sandbox.injected.failure", f"Failure injected by /sandbox/fail ({rule.status}).")

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

    def _chain_broadcast(self, code: str) -> Callable[..., Reply]:
        path = chains.get(code).broadcast_path
        return lambda payload, headers: self._broadcast(payload, code, path)

    def _node_call(self, code: str, name: str, method: str) -> Callable[..., Reply]:
        ledger = self._ledger_of[code]
        return lambda payload, headers, subpath: ledger.node(code, name, method, subpath or "", payload, headers)

    def _offchain_broadcast(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        currency = payload.get("currency") if isinstance(payload, dict) else None
        served = [code for code in self._ledger_of if chains.get(code).offchain_withdrawals]
        if currency not in served:
            raise Rejected(400, "validation.failed",
                           f"The sandbox verifies off-chain withdrawals of {', '.join(served)}, not {currency!r}.")
        return self._broadcast(payload, currency, OFFCHAIN_PATH)

    def _broadcast(self, payload: Any, chain: str, path: str) -> Reply:
        tx_data = payload.get("txData") if isinstance(payload, dict) else None
        if not isinstance(tx_data, str) or not tx_data:
            raise Rejected(400, "validation.failed", "Body must hold a string txData.")
        signature_id = payload.get("signatureId")
        tx_id = self.ledger(chain).submit(chain, tx_data, payload)
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

    # -- admin ----------------------------------------------------------------------------------

    def _help(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        from kms import sandbox

        described: dict[str, Any] = {"chains": sorted(self._ledger_of), "execute": self.execute}
        for ledger in self.ledgers:
            described.update(ledger.describe())
        return Reply(200, {**described, "help": (sandbox.__doc__ or "").strip()})

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
        if tx["chain"] in self._ledger_of:
            self._ledger_of[tx["chain"]].pending(tx["chain"], pending)
        with self._lock:
            if tx["id"] in self._pending:
                raise Rejected(409, "validation.failed", f"A pending transaction {tx['id']} already exists.")
            self._pending[tx["id"]] = tx
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
        return error(403, "approval.missing", f"Nobody approved {tx_id}.")

    def _list_pending(self, payload: Any, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            return Reply(200, list(self._pending.values()))

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
    """A request body as JSON, depth-limited: py-evm raises the recursion limit, so deep JSON would crash."""
    if not body:
        return None
    try:
        return safejson.loads(body, what="the body")
    except ValueError as exc:
        raise Rejected(400, "validation.failed", f"The body is not acceptable JSON: {exc}.") from None


def _wallet_ids(tx: dict[str, Any]) -> set[str]:
    """The signature ids a pending transaction names: `hashes` and `signatures[].id`."""
    ids = set(tx.get("hashes") or [])
    ids.update(sig["id"] for sig in tx.get("signatures") or [] if isinstance(sig, dict) and "id" in sig)
    return ids
