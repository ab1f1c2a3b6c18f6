"""The daemon loop: poll Tatum for pending transactions, ask the approval server, sign, broadcast, report.

One cycle per `period`: for each chain, the store's signature ids of that chain and network go to
`POST /v3/kms/pending/{chain}`; each pending transaction is filtered, approved (four-eye check, fail
closed), its keys resolved, signed and broadcast. Failures of a cycle go to Tatum in one batch.
SIGTERM/SIGINT finish the transaction in flight, then the daemon exits 0.

Broadcasts run on one thread, in signing order, while the next transaction is signed (this is what
takes the daemon past 2,000 transactions a second); a signer that asks the node anything (a missing
nonce, gas or price) first waits until every broadcast in flight has landed.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import chains
from chains.base import Chain, ChainError, PendingTransaction, Signed, TatumKmsError
from kms.audit import NO_AUDIT
from kms.errors import KmsError
from kms.eventlog import EventLog
from kms.keys import resolve_keys
from kms.metrics import NO_METRICS, Metrics
from kms.nodes import ChainNode

#: The original refuses to poll a chain with more signature ids than this (one API key's limit).
MAX_IDS_PER_CHAIN = 25_000

#: How long the signing thread may hold the interpreter before the broadcaster, whose response has
#: arrived, gets it (seconds; Python's default of 5 ms would leave the broadcaster waiting).
SWITCH_INTERVAL = 0.0005

#: Signed transactions allowed to wait for the broadcaster.
MAX_QUEUED = 32

Job = Callable[[], "dict[str, str] | None"]


class Broadcaster:
    """One thread that broadcasts signed transactions in the order they were signed; collects failures."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._failures: list[dict[str, str]] = []
        self._thread = threading.Thread(target=self._work, name="broadcaster", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue `job` (it returns a failure record or None); blocks while `MAX_QUEUED` jobs wait,
        so the signer does not run ahead of the network."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight < MAX_QUEUED)
            self._in_flight += 1
        self._jobs.put(job)

    def wait(self) -> None:
        """Block until every submitted job has finished."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)

    def take_failures(self) -> list[dict[str, str]]:
        """Wait for every job, then return (and forget) the failures they recorded."""
        self.wait()
        with self._idle:
            failures, self._failures = self._failures, []
        return failures

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        self.wait()
        self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            failure = None
            try:
                failure = job()
            finally:
                with self._idle:
                    if failure:
                        self._failures.append(failure)
                    self._in_flight -= 1
                    self._idle.notify_all()


class _AfterBroadcasts:
    """A chain node whose every call first waits for the broadcasts in flight (nonces must see them)."""

    def __init__(self, node: Any, broadcasts: Broadcaster) -> None:
        self._node = node
        self._broadcasts = broadcasts

    def rpc(self, method: str, params: Any = (), **options: Any) -> Any:
        self._broadcasts.wait()
        return self._node.rpc(method, params, **options)

    def get(self, path: str, **options: Any) -> Any:
        self._broadcasts.wait()
        return self._node.get(path, **options)

    def post(self, path: str, body: Any, **options: Any) -> Any:
        self._broadcasts.wait()
        return self._node.post(path, body, **options)


@dataclass(frozen=True)
class DaemonOptions:
    """The daemon's flags, as the original names them."""

    testnet: bool
    chains: tuple[str, ...]
    period: float = 5.0
    external_url: str | None = None
    external_url_method: str = "GET"
    approval_timeout: float = 10.0
    run_once: bool = False
    wallets: tuple[str, ...] | None = None
    transaction_ids: frozenset[str] | None = None


class Daemon:
    """Runs cycles until stopped; `store` is unlocked once by the caller and kept for the daemon's life."""

    def __init__(self, options: DaemonOptions, store: Any, client: Any, log: EventLog,
                 approve: Callable[[dict[str, Any], str, str, float], Any] | None = None,
                 env: dict[str, str] | None = None, metrics: Metrics = NO_METRICS, audit: Any = NO_AUDIT) -> None:
        self.options = options
        self.metrics, self.audit = metrics, audit
        self.store = store
        self.client = client
        self.log = log
        self._nodes: dict[str, ChainNode] = {}
        self._env = env if env is not None else {}
        self._approve = approve
        self._stop = threading.Event()
        self._broadcasts: Broadcaster | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Ask the daemon to stop after the transaction in flight (signal handler)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        """Cycle every `period` seconds (once with `run_once`) until stopped."""
        sys.setswitchinterval(SWITCH_INTERVAL)
        opts = self.options
        self.log.event("started", f"chains={','.join(opts.chains)} testnet={str(opts.testnet).lower()} "
                       f"period={opts.period:g}s approval={'on' if opts.external_url else 'off'}")
        self.audit.started(opts.chains, opts.testnet, bool(opts.external_url))
        try:
            while not self._stop.is_set():
                self.cycle()
                if opts.run_once:
                    break
                self._stop.wait(opts.period)
        finally:
            if self._broadcasts is not None:
                self._broadcasts.close()
            self.audit.stopped()
        self.log.event("stopped")

    # -- one cycle ---------------------------------------------------------------------------

    def cycle(self) -> list[dict[str, str]]:
        """Poll every chain once; return (and report to Tatum) the failures of this cycle."""
        if self._broadcasts is None:
            self._broadcasts = Broadcaster()
        started, self._polls_ok = time.perf_counter(), True
        errors: list[dict[str, str]] = []
        for code in self.options.chains:
            if self._stop.is_set():
                break
            for raw in self._pending(code):
                if self._stop.is_set():
                    break
                failure = self._process(code, raw)
                if failure:
                    errors.append(failure)
        errors += self._broadcasts.take_failures()  # what was signed is broadcast, even when stopping
        if errors:
            try:
                self.client.report_errors(errors)
            except KmsError as exc:
                self.log.event("report-failed", str(exc), level="error")
        self.metrics.cycle(time.perf_counter() - started, self._polls_ok)
        return errors

    def _pending(self, code: str) -> list[Any]:
        ids = list(self.options.wallets) if self.options.wallets else self.store.ids(code, self.options.testnet)
        if not ids:
            return []  # no wallet of this chain and network: nothing to ask Tatum about
        if len(ids) > MAX_IDS_PER_CHAIN:
            self.log.event("skipped", f"Error: Exceeded limit {MAX_IDS_PER_CHAIN} wallets for chain {code}.",
                           chain=code, level="error")
            return []
        try:
            pending = self.client.pending(code, ids)
            if not isinstance(pending, list):
                raise KmsError("the pending list is not a JSON array")
        except KmsError as exc:
            self.log.event("poll-failed", str(exc), chain=code, level="error")
            self.metrics.poll_failed(code, str(exc))
            self._polls_ok = False
            return []
        self.metrics.polled(code, len(pending))
        return pending

    def _process(self, code: str, raw: Any) -> dict[str, str] | None:
        """Handle one pending transaction; return its failure record for the batch, if any."""
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            pending = PendingTransaction.from_json(raw)
        except ChainError as exc:
            self.log.event("invalid", str(exc), chain=code, pending=raw_id, level="error")
            self.metrics.failed(code)
            if isinstance(raw_id, str):
                self.audit.failed(raw_id, f"Error: {exc}", chain=code)
            return {"signatureId": raw_id, "error": f"Error: {exc}"} if isinstance(raw_id, str) else None
        if self.options.transaction_ids is not None and pending.id not in self.options.transaction_ids:
            return None
        approval = None
        if self.options.external_url and not (approval := self._approved(pending)):
            return None
        try:
            began = time.perf_counter()
            chain, signed = self._sign(code, pending)
            self.metrics.signed(code, time.perf_counter() - began)
            entry = self.audit.signed(pending, approval, signed.tx_data)  # made durable before the broadcast
        except TatumKmsError as exc:
            return self._failure(pending, exc)
        assert self._broadcasts is not None
        self._broadcasts.submit(lambda: self._broadcast(chain, pending, signed, entry))
        return None

    def _approved(self, pending: PendingTransaction) -> str | None:
        """The four-eye check, failing closed: the approval's reason, or None (a refusal is logged and
        audited with its reason, not reported)."""
        if self._approve is None:
            from kms.approval import check as approve
        else:
            approve = self._approve
        opts = self.options
        began = time.perf_counter()
        verdict = approve(pending.raw, opts.external_url, opts.external_url_method, opts.approval_timeout)
        self.metrics.approval(pending.chain, bool(verdict.approved), time.perf_counter() - began)
        if not verdict.approved:
            self.log.event("not-approved", verdict.reason, chain=pending.chain, pending=pending.id, level="warn")
            self.audit.refused(pending, verdict.reason)
            return None
        return str(verdict.reason)

    def _node(self, chain: Chain) -> ChainNode:
        if chain.code not in self._nodes:
            self._nodes[chain.code] = ChainNode(self.client, chain, self.options.testnet, self._env)
        return self._nodes[chain.code]

    def _sign(self, code: str, pending: PendingTransaction) -> tuple[Chain, Signed]:
        chain = chains.get(code)
        keys = resolve_keys(pending, self.store, chain, self.options.testnet, warn=lambda message: self.log.event(
            "warning", message, chain=pending.chain, pending=pending.id, level="warn"))
        assert self._broadcasts is not None
        node = _AfterBroadcasts(self._node(chain), self._broadcasts)
        return chain, chain.sign(pending, keys, self.options.testnet, node)

    def _broadcast(self, chain: Chain, pending: PendingTransaction, signed: Signed,
                   entry: int = 0) -> dict[str, str] | None:
        """Send one signed transaction (on a broadcast worker); return its failure record, if any.

        A `submit_first` transaction goes to the chain's node first; Tatum is then told what the chain said.
        """
        began = time.perf_counter()
        try:
            self.audit.durable(entry)  # the "signed" line is on disk before anything leaves
        except KmsError as exc:
            return self._failure(pending, exc)
        try:
            if signed.submit_first:
                signed = chain.submit(signed, self._node(chain))
            body = {"txData": signed.tx_data, "signatureId": pending.id, **signed.extra}
            response = self.client.broadcast(signed.path, body)
        except TatumKmsError as exc:
            self.metrics.broadcast(pending.chain, False, time.perf_counter() - began)
            return self._failure(pending, exc, broadcast=True)
        self.metrics.broadcast(pending.chain, True, time.perf_counter() - began)
        tx_id = response.get("txId") if isinstance(response, dict) else None
        self.audit.broadcast(pending, tx_id=tx_id if isinstance(tx_id, str) else None)
        self.log.event("signed", f"Tx was processed: {pending.id}" + (f" txId={tx_id}" if tx_id else ""),
                       chain=pending.chain, pending=pending.id)
        return None

    def _failure(self, pending: PendingTransaction, exc: Exception, *, broadcast: bool = False) -> dict[str, str]:
        """Log and audit a failure (of the broadcast with `broadcast`, else before it) and return its record
        for the batch (Tatum's own error body when it sent one)."""
        message = getattr(exc, "report", None) or f"Error: {exc}"
        self.log.event("failed", str(exc), chain=pending.chain, pending=pending.id, level="error")
        if broadcast:
            self.audit.broadcast(pending, error=str(exc))
        else:
            self.metrics.failed(pending.chain)
            self.audit.failed(pending, str(exc))
        return {"signatureId": pending.id, "error": message}
