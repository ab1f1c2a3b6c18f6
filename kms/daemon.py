"""The daemon: poll Tatum for pending transactions, ask the approval server, sign, broadcast, report.

One cycle per `period` (a cycle that runs longer delays the next; two never overlap). A cycle is a pipeline,
because the real API and approval server are tens of milliseconds away:

- every chain is polled at once, with the store's signature ids of that chain and network;
- the four-eye checks of all listed transactions run concurrently (at most `concurrency` at a time);
- each wallet (its signature id, plus the index for mnemonic wallets) is a lane: its transactions are signed
  and broadcast strictly in the order Tatum lists them, the next only after the previous broadcast answered,
  so a signer that asks the node for a nonce sees its own wallet's earlier transactions; lanes run
  concurrently, at most `concurrency` of them signing and broadcasting at a time, and a lane waiting for its
  approval holds no such slot, so one slow wallet, approval or chain holds back no other.

The checks, lanes and broadcasts are coroutines on one asyncio event loop (`kms.loop_http`), not threads:
with ~160 threads the interpreter lock's hand-offs cost more than the work (issue 10, `bench/bench_daemon.py`,
1,000 transactions at 0 ms: 1.05 ms of CPU and 1,190 tx/s on threads, 0.62 ms and ~2,200 tx/s here).
A signer runs on the loop until it asks its node something; it is then run again from the start on a worker
thread with the real node (signing is a pure function of its inputs and the node's answers, so the first try
leaves nothing behind). Audit entries are made durable by one fsync at a time on a thread of its own, each
covering every entry written before it began.

Keys are resolved from the store on the calling thread before the lanes start; a transaction is never
broadcast twice by one daemon. Failures of a cycle go to Tatum in one batch. SIGTERM/SIGINT stop new work:
what was signed is broadcast (or reported), then the daemon exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import chains
from chains.base import Chain, ChainError, PendingTransaction, Signed, TatumKmsError
from kms.approval import Approval, check_async
from kms.audit import NO_AUDIT
from kms.errors import KmsError, TatumError
from kms.eventlog import EventLog
from kms.keys import CycleWallets, resolve_keys
from kms.metrics import NO_METRICS, Metrics
from kms.nodes import ChainNode

#: The original refuses to poll a chain with more signature ids than this (one API key's limit).
MAX_IDS_PER_CHAIN = 25_000

#: Pending ids this daemon has broadcast (or sent without an answer), remembered so none is sent twice.
MAX_REMEMBERED = 200_000

Failure = dict[str, str]
Approve = Callable[[dict[str, Any], str, str, float], Awaitable[Any]]


class DaemonStore(Protocol):
    """What the daemon needs of the unlocked store: ids by chain and network, and a wallet by id."""

    def ids(self, chain: str | None = None, testnet: bool | None = None) -> list[str]: ...

    def find(self, signature_id: str) -> dict[str, Any] | None: ...


class TatumApi(Protocol):
    """The Tatum calls the daemon makes (`kms.tatum.TatumClient`), and what `kms.nodes.ChainNode` needs."""

    def pending(self, chain: str, signature_ids: list[str]) -> Any: ...

    async def broadcast_async(self, path: str, body: dict[str, Any]) -> Any: ...

    def report_errors(self, errors: list[dict[str, Any]]) -> None: ...

    def call_json(self, method: str, path: str, body: Any = None, *, on_tatum: bool = True, safe: bool) -> Any: ...

    def key_path(self, template: str) -> str: ...

    def clean(self, text: str) -> str: ...


@dataclass(frozen=True)
class DaemonOptions:
    """The daemon's flags, as the original names them, and `concurrency` (ours)."""

    testnet: bool
    chains: tuple[str, ...]
    period: float = 5.0
    external_url: str | None = None
    external_url_method: str = "GET"
    approval_timeout: float = 10.0
    run_once: bool = False
    wallets: tuple[str, ...] | None = None
    transaction_ids: frozenset[str] | None = None
    concurrency: int = 32


@dataclass
class _Job:
    """One pending transaction on its way: its chain, its keys (or why there are none), its approval."""

    pending: PendingTransaction
    chain: Chain
    keys: list[str] = field(default_factory=list)
    key_error: TatumKmsError | None = None
    approval: asyncio.Future[Any] | None = None

    @property
    def lane(self) -> tuple[str, str, int | None]:
        """The wallet this transaction spends from: its transactions are sent one after another, in order."""
        pending = self.pending
        first = pending.hashes[0] if pending.hashes else (pending.signatures[0].id if pending.signatures else "")
        return pending.chain, first, pending.index


class Daemon:
    """Runs cycles until stopped; `store` is unlocked once by the caller and kept for the daemon's life."""

    def __init__(self, options: DaemonOptions, store: DaemonStore, client: TatumApi, log: EventLog,
                 approve: Approve | None = None, env: dict[str, str] | None = None,
                 metrics: Metrics = NO_METRICS, audit: Any = NO_AUDIT) -> None:
        self.options = options
        self.metrics, self.audit = metrics, audit  # kms.metrics and kms.audit; both do nothing by default
        self._polls_ok = True
        self.store = store
        self.client = client
        self.log = log
        self._approve = approve if approve is not None or not options.external_url else check_async
        self._env = env if env is not None else {}
        self._stop = threading.Event()
        self._nodes: dict[str, ChainNode] = {}
        self._sent: dict[str, None] = {}  # insertion-ordered set of pending ids sent (used on the loop's thread)
        self._loop = asyncio.new_event_loop()
        self._workers = ThreadPoolExecutor(max(1, options.concurrency), thread_name_prefix="kms-worker")
        self._loop.set_default_executor(self._workers)  # also where kms.loop_http makes its connections
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="kms-audit-sync")
        self._synced = 0  # the last audit entry known to be on disk
        self._syncing: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Stop taking new work; what was signed is still broadcast (signal handler)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        """Cycle every `period` seconds (once with `run_once`) until stopped.

        As the original's interval with its skip rule: a cycle that runs past one or more ticks starts the
        next at the first tick after it ends.
        """
        gc.collect()
        gc.freeze()  # what start-up made (chain libraries, the store) stays: no collection walks it again
        opts = self.options
        self.log.event("started", f"chains={','.join(opts.chains)} testnet={str(opts.testnet).lower()} "
                       f"period={opts.period:g}s approval={'on' if opts.external_url else 'off'} "
                       f"concurrency={opts.concurrency}")
        self.audit.started(opts.chains, opts.testnet, bool(opts.external_url))
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.cycle()
                if opts.run_once:
                    break
                elapsed = time.monotonic() - started
                self._stop.wait(opts.period - elapsed % opts.period)
        finally:
            self.close()
            self.audit.stopped()
        self.log.event("stopped")

    def close(self) -> None:
        """Release the event loop and the worker threads (after the cycle in progress)."""
        self._syncer.shutdown(wait=True)
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_default_executor())  # the workers
            self._loop.close()
        self._workers.shutdown(wait=True)

    # -- one cycle ---------------------------------------------------------------------------

    def cycle(self) -> list[Failure]:
        """Poll every chain once, then approve, sign and broadcast; return (and report) the cycle's failures."""
        failures: list[Failure] = []
        jobs: list[_Job] = []
        started, self._polls_ok = time.perf_counter(), True
        wallets = CycleWallets(self.store)
        for code, listed in self._poll_all():
            for raw in listed:
                if self._stop.is_set():
                    break
                job = self._prepare(code, raw, wallets, failures)
                if job is not None:
                    jobs.append(job)
        if jobs:
            failures += self._loop.run_until_complete(self._pipeline(jobs))
        if failures:
            try:
                self.client.report_errors(failures)
            except KmsError as exc:
                self.log.event("report-failed", str(exc), level="error")
        self.metrics.cycle(time.perf_counter() - started, self._polls_ok)
        return failures

    def _poll_all(self) -> list[tuple[str, list[Any]]]:
        """Each chain's pending list, in the configured chain order; the chains are asked at once."""
        asks = []
        for code in self.options.chains:
            ids = list(self.options.wallets) if self.options.wallets else self.store.ids(code, self.options.testnet)
            if not ids:
                continue  # no wallet of this chain and network: nothing to ask Tatum about
            if len(ids) > MAX_IDS_PER_CHAIN:
                self.log.event("skipped", f"Error: Exceeded limit {MAX_IDS_PER_CHAIN} wallets for chain {code}.",
                               chain=code, level="error")
                continue
            asks.append((code, self._workers.submit(self._poll, code, ids)))
        return [(code, asked.result()) for code, asked in asks]

    def _poll(self, code: str, ids: list[str]) -> list[Any]:
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

    def _prepare(self, code: str, raw: Any, wallets: CycleWallets, failures: list[Failure]) -> _Job | None:
        """Parse, filter and key one listed transaction (on the calling thread: the store is used here),
        None when it is not to be signed in this cycle."""
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            pending = PendingTransaction.from_json(raw)
        except ChainError as exc:
            self.log.event("invalid", str(exc), chain=code, pending=raw_id if isinstance(raw_id, str) else None,
                           level="error")
            self.metrics.failed(code)
            if isinstance(raw_id, str):
                self.audit.failed(raw_id, f"Error: {exc}", chain=code)
                failures.append({"signatureId": raw_id, "error": f"Error: {exc}"})
            return None
        if self.options.transaction_ids is not None and pending.id not in self.options.transaction_ids:
            return None
        if pending.id in self._sent:
            self.log.event("skipped", "already broadcast by this daemon; not sent again", chain=code,
                           pending=pending.id, level="warn")
            return None
        self._sent[pending.id] = None  # claimed: listed twice in one cycle, it is still sent once
        job = _Job(pending, chains.get(code))
        try:
            job.keys = resolve_keys(pending, wallets, job.chain, self.options.testnet, warn=lambda message: (
                self.log.event("warning", message, chain=code, pending=pending.id, level="warn")))
        except TatumKmsError as exc:
            job.key_error = exc  # reported only if the transaction is approved, as the original
        return job

    # -- the pipeline, on the event loop -----------------------------------------------------

    async def _pipeline(self, jobs: list[_Job]) -> list[Failure]:
        """Check, sign and broadcast a cycle's transactions: lanes at once, each lane in order."""
        workers = max(1, self.options.concurrency)
        lanes: dict[tuple[str, str, int | None], list[_Job]] = {}
        for job in jobs:
            lanes.setdefault(job.lane, []).append(job)
        checkers: list[asyncio.Task[None]] = []
        if self.options.external_url:
            loop = self._loop
            for job in jobs:
                job.approval = loop.create_future()
            queue = iter(jobs)  # checks start in Tatum's order, `concurrency` at a time
            checkers = [loop.create_task(self._checker(queue)) for _ in range(min(workers, len(jobs)))]
        sending = asyncio.Semaphore(workers)
        done = await asyncio.gather(*(self._run_lane(lane, sending) for lane in lanes.values()))
        await asyncio.gather(*checkers)
        return [failure for lane in done for failure in lane]

    async def _checker(self, queue: Iterator[_Job]) -> None:
        """Ask the approval server about one transaction after another (one of `concurrency` such workers)."""
        for job in queue:
            assert job.approval is not None
            if self._stop.is_set():
                job.approval.set_result(None)  # not asked: its lane releases it
                continue
            try:
                job.approval.set_result(await self._check_approval(job.pending))
            except Exception as exc:  # noqa: BLE001 - an approve function that raised: fail closed
                job.approval.set_result(Approval(False, f"approval check failed: {type(exc).__name__}"))

    async def _run_lane(self, jobs: Sequence[_Job], sending: asyncio.Semaphore) -> list[Failure]:
        """One wallet's transactions, in order: each approved one signed, then broadcast before the next."""
        failures = []
        for job in jobs:
            if self._stop.is_set():
                self._release(job.pending.id)  # never signed: listed again after a restart
                continue
            failure = await self._handle(job, sending)
            if failure is not None:
                failures.append(failure)
        return failures

    async def _handle(self, job: _Job, sending: asyncio.Semaphore) -> Failure | None:
        pending = job.pending
        approval = None
        if job.approval is not None:
            verdict = await job.approval
            if verdict is None:
                self._release(pending.id)  # stopped before it was asked about
                return None
            if not verdict.approved:
                self.log.event("not-approved", verdict.reason, chain=pending.chain, pending=pending.id,
                               level="warn")
                self.audit.refused(pending, verdict.reason)
                self._release(pending.id)
                return None
            approval = str(verdict.reason)
        if job.key_error is not None:
            self._release(pending.id)
            return self._failure(pending, job.key_error)
        async with sending:  # at most `concurrency` lanes sign and broadcast at once
            if self._stop.is_set():
                self._release(pending.id)  # stopped while waiting for a slot: never signed, listed again later
                return None
            try:
                began = time.perf_counter()
                signed = await self._sign(job)
                self.metrics.signed(pending.chain, time.perf_counter() - began)
                await self._durable(self.audit.signed(pending, approval, signed.tx_data))  # on disk before it leaves
            except TatumKmsError as exc:
                self._release(pending.id)
                return self._failure(pending, exc)
            return await self._broadcast(job.chain, pending, signed)

    async def _check_approval(self, pending: PendingTransaction) -> Any:
        """The four-eye check, failing closed."""
        opts = self.options
        assert self._approve is not None and opts.external_url is not None
        began = time.perf_counter()
        verdict = await self._approve(pending.raw, opts.external_url, opts.external_url_method,
                                      opts.approval_timeout)
        self.metrics.approval(pending.chain, bool(verdict.approved), time.perf_counter() - began)
        return verdict

    async def _sign(self, job: _Job) -> Signed:
        """Sign on the loop; a signer that needs its node is run again on a worker thread with the node."""
        try:
            return job.chain.sign(job.pending, job.keys, self.options.testnet, _NO_NODE)
        except _NodeWanted:
            pass
        return await self._loop.run_in_executor(self._workers, job.chain.sign, job.pending, job.keys,
                                                self.options.testnet, self._node(job.chain))

    async def _durable(self, seq: int) -> None:
        """Return once audit entry `seq` is on disk: one fsync at a time, covering every entry written before."""
        while self._synced < seq:
            if self._syncing is None:
                self._syncing = self._loop.create_task(self._sync(self.audit.seq))
            await self._syncing

    async def _sync(self, upto: int) -> None:
        try:
            await self._loop.run_in_executor(self._syncer, self.audit.durable, upto)
            self._synced = max(self._synced, upto)
        finally:
            self._syncing = None

    def _node(self, chain: Chain) -> ChainNode:
        node = self._nodes.get(chain.code)
        if node is None:
            node = self._nodes.setdefault(chain.code, ChainNode(self.client, chain, self.options.testnet,
                                                                self._env))
        return node

    async def _broadcast(self, chain: Chain, pending: PendingTransaction, signed: Signed) -> Failure | None:
        """Send one signed transaction; return its failure record, if any.

        A `submit_first` transaction goes to the chain's node first; Tatum is then told what the chain said.
        A refusal with an HTTP answer may be listed and signed again in a later cycle; a request that got no
        answer is never sent again by this daemon (it may have landed).
        """
        began = time.perf_counter()
        try:
            if signed.submit_first:
                signed = await self._loop.run_in_executor(self._workers, chain.submit, signed, self._node(chain))
            body = {"txData": signed.tx_data, "signatureId": pending.id, **signed.extra}
            response = await self.client.broadcast_async(signed.path, body)
        except TatumKmsError as exc:
            self.metrics.broadcast(pending.chain, False, time.perf_counter() - began)
            if not isinstance(exc, TatumError) or exc.status is not None or not exc.sent:
                self._release(pending.id)  # refused with an answer, or never left: a later cycle may try again
            return self._failure(pending, exc, broadcast=True)
        self.metrics.broadcast(pending.chain, True, time.perf_counter() - began)
        self._remembered()
        tx_id = response.get("txId") if isinstance(response, dict) else None
        self.audit.broadcast(pending, tx_id=tx_id if isinstance(tx_id, str) else None)
        self.log.event("signed", f"Tx was processed: {pending.id}" + (f" txId={tx_id}" if tx_id else ""),
                       chain=pending.chain, pending=pending.id)
        return None

    def _release(self, pending_id: str) -> None:
        """Forget a claimed id that was not sent, so a later cycle may sign it."""
        self._sent.pop(pending_id, None)

    def _remembered(self) -> None:
        while len(self._sent) > MAX_REMEMBERED:
            del self._sent[next(iter(self._sent))]

    def _failure(self, pending: PendingTransaction, exc: Exception, *, broadcast: bool = False) -> Failure:
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


class _NodeWanted(BaseException):
    """A signer asked its node something while signing on the loop (a BaseException: no `except Exception`
    in a signer turns it into a signing error)."""


class _NoNode:
    """The node a signer sees on the loop: any call means it is to be run again on a worker thread."""

    def get(self, path: str, **_: Any) -> Any:
        raise _NodeWanted

    def post(self, path: str, body: Any, **_: Any) -> Any:
        raise _NodeWanted

    def rpc(self, method: str, params: Any = (), **_: Any) -> Any:
        raise _NodeWanted


_NO_NODE: Any = _NoNode()
