"""Prometheus metrics and `/healthz` for the daemon (`--metrics HOST:PORT`), and the no-op default.

The daemon calls one `Metrics` object at well-named points (`polled`, `approval`, `signed`, `broadcast`,
`failed`, `cycle`); `NO_METRICS` does nothing, so a daemon without `--metrics` pays one method call.
Labels are the chain code and the outcome only: never an address, a signature id or a secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kms.errors import ConfigError, TokenError

#: The transaction outcomes counted per chain.
OUTCOMES = ("polled", "approved", "refused", "signed", "broadcast", "failed")

#: Seconds a token check is trusted before the token is asked again.
TOKEN_CHECK_TTL = 5.0


class Metrics:
    """What the daemon reports; this base class does nothing (metrics off)."""

    serving = False

    @property
    def address(self) -> tuple[str, int]:
        """Where the metrics are served (nowhere: ("", 0))."""
        return "", 0

    def polled(self, chain: str, count: int) -> None:
        """A poll of `chain` succeeded and returned `count` pending transactions."""

    def poll_failed(self, chain: str, reason: str) -> None:
        """A poll of `chain` failed (the Tatum API unreachable, an error status, a bad answer)."""

    def approval(self, chain: str, approved: bool, seconds: float) -> None:
        """The four-eye check answered in `seconds`."""

    def signed(self, chain: str, seconds: float) -> None:
        """A transaction was signed in `seconds` (key resolution included)."""

    def broadcast(self, chain: str, ok: bool, seconds: float) -> None:
        """A broadcast finished in `seconds`; `ok` False counts a failure too."""

    def failed(self, chain: str) -> None:
        """A pending transaction could not be signed (invalid, no key, a signer error)."""

    def cycle(self, seconds: float, ok: bool) -> None:
        """A cycle ended after `seconds`; `ok` when every poll in it succeeded."""

    def audited(self, seq: int) -> None:
        """The audit log's last entry is now `seq`."""

    def store_unlocked(self, unlocked: bool) -> None:
        """The daemon holds (True) or has dropped (False) the store's data key."""

    def token_check(self, check: Callable[[], None] | None) -> None:
        """`check` raises when the PKCS#11 token no longer answers (None: no token is used)."""

    def close(self) -> None:
        """Stop serving."""


NO_METRICS = Metrics()


class Health:
    """What `/healthz` answers: healthy only while the store is unlocked, the token (if any) answers and
    a cycle with every poll successful ended within three periods."""

    def __init__(self, period: float, clock: Callable[[], float] = time.time) -> None:
        self.period = period
        self._clock = clock
        self._since = clock()
        self._last_ok: float | None = None
        self._last_error = ""
        self._unlocked = False
        self._token: Callable[[], None] | None = None
        self._token_checked = (-1.0, "")
        self._lock = threading.Lock()

    def poll_error(self, reason: str) -> None:
        self._last_error = reason

    def cycle_ended(self, ok: bool) -> None:
        if ok:
            self._last_ok, self._last_error = self._clock(), ""

    def check(self) -> tuple[bool, str]:
        """(healthy, the reason when not)."""
        if not self._unlocked:
            return False, "the wallet store is locked (the daemon is starting or stopping)"
        token = self._token_problem()
        if token:
            return False, token
        now, limit = self._clock(), 3 * self.period
        since = self._last_ok if self._last_ok is not None else self._since
        if now - since > limit:
            what = "no poll cycle has succeeded" if self._last_ok is None else "the last successful poll cycle ended"
            error = f": {self._last_error}" if self._last_error else ""
            return False, f"{what} {now - since:.0f} s ago (more than 3 periods of {self.period:g} s){error}"
        return True, ""

    def _token_problem(self) -> str:
        if self._token is None:
            return ""
        with self._lock:
            at, problem = self._token_checked
            now = self._clock()
            if now - at > TOKEN_CHECK_TTL:
                try:
                    self._token()
                    problem = ""
                except Exception as exc:  # any failure of the token means unhealthy
                    problem = f"the PKCS#11 token does not answer: {' '.join(str(exc).split()) or type(exc).__name__}"
                self._token_checked = (now, problem)
            return problem


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or `PORT` (on 127.0.0.1); ConfigError when it is none of these."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text.strip()
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics takes HOST:PORT (e.g. 127.0.0.1:9464), got '{text}'.")
    return host, int(port)


class PrometheusMetrics(Metrics):
    """prometheus-client metrics in a registry of their own, served with `/healthz` on `address`."""

    serving = True

    def __init__(self, address: str, period: float, chains: Iterable[str] = (),
                 redact: Callable[[str], str] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from kms import __version__

        host, port = parse_address(address)
        self.health = Health(period)
        self._redact = redact or (lambda text: text)
        self.registry = registry = CollectorRegistry()
        Gauge("tatum_kms_info", "This tatum-kms.", ["version"], registry=registry).labels(__version__).set(1)
        self._transactions = Counter("tatum_kms_transactions", "Pending transactions by chain and outcome "
                                     f"({', '.join(OUTCOMES)}).", ["chain", "outcome"], registry=registry)
        self._poll_errors = Counter("tatum_kms_poll_errors", "Polls of the Tatum API that failed.", ["chain"],
                                    registry=registry)
        self._approval = Histogram("tatum_kms_approval_duration_seconds", "Four-eye checks.",
                                   ["chain", "verdict"], registry=registry)
        self._signing = Histogram("tatum_kms_signing_duration_seconds", "Signing, keys included.", ["chain"],
                                  registry=registry)
        self._broadcast = Histogram("tatum_kms_broadcast_duration_seconds", "Broadcasts.", ["chain", "ok"],
                                    registry=registry)
        self._cycle = Histogram("tatum_kms_cycle_duration_seconds", "Poll cycles.", registry=registry)
        self._last_poll = Gauge("tatum_kms_last_successful_poll_timestamp_seconds",
                                "When a poll of the Tatum API last succeeded (Unix time).", registry=registry)
        self._cycles_failed = Counter("tatum_kms_cycles_failed", "Cycles in which a poll failed.", registry=registry)
        self._audit = Gauge("tatum_kms_audit_entries", "The audit log's last entry number (an external anchor "
                            "for its tail).", registry=registry)
        self._healthy = Gauge("tatum_kms_healthy", "1 when /healthz answers 200.", registry=registry)
        self._healthy.set_function(lambda: float(self.health.check()[0]))
        for chain in chains:
            for outcome in OUTCOMES:
                self._transactions.labels(chain, outcome)
        self._server = _serve(host, port, self)

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (the port chosen by the system when 0 was asked for)."""
        return self._server.server_address[:2]

    def polled(self, chain: str, count: int) -> None:
        self._transactions.labels(chain, "polled").inc(count)
        self._last_poll.set_to_current_time()

    def poll_failed(self, chain: str, reason: str) -> None:
        self._poll_errors.labels(chain).inc()
        self.health.poll_error(self._redact(f"{chain}: {reason}"))

    def approval(self, chain: str, approved: bool, seconds: float) -> None:
        self._transactions.labels(chain, "approved" if approved else "refused").inc()
        self._approval.labels(chain, "approved" if approved else "refused").observe(seconds)

    def signed(self, chain: str, seconds: float) -> None:
        self._transactions.labels(chain, "signed").inc()
        self._signing.labels(chain).observe(seconds)

    def broadcast(self, chain: str, ok: bool, seconds: float) -> None:
        self._transactions.labels(chain, "broadcast" if ok else "failed").inc()
        self._broadcast.labels(chain, "true" if ok else "false").observe(seconds)

    def failed(self, chain: str) -> None:
        self._transactions.labels(chain, "failed").inc()

    def cycle(self, seconds: float, ok: bool) -> None:
        self._cycle.observe(seconds)
        if not ok:
            self._cycles_failed.inc()
        self.health.cycle_ended(ok)

    def audited(self, seq: int) -> None:
        self._audit.set(seq)

    def store_unlocked(self, unlocked: bool) -> None:
        self.health._unlocked = unlocked

    def token_check(self, check: Callable[[], None] | None) -> None:
        self.health._token = check

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _serve(host: str, port: int, metrics: PrometheusMetrics) -> Any:
    """Start the metrics server on a daemon thread; ConfigError when the address cannot be bound."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server contract
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                healthy, reason = metrics.health.check()
                body = {"status": "ok"} if healthy else {"status": "unhealthy", "reason": reason}
                self._answer(200 if healthy else 503, json.dumps(body).encode() + b"\n", "application/json")
            else:
                self._answer(404, b'{"error": "not found: try /metrics or /healthz"}\n', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not logged
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = Server((host, port), Handler)
    except OSError as exc:
        raise ConfigError(f"--metrics {host}:{port} cannot be served: {exc.strerror or exc}.") from None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


class TokenSession:
    """A session on the store's PKCS#11 token held for the daemon's life; `check` finds the store's key."""

    def __init__(self, token: Any, key_id: str) -> None:
        self._token, self._key_id = token, key_id

    def check(self) -> None:
        self._token.key(self._key_id)

    def close(self) -> None:
        self._token.close()


def token_session(settings: Any, key_id: str) -> TokenSession:
    """Open a session on the token of `settings` (TokenSettings) for `/healthz`; TokenError if it fails."""
    import hsm

    try:
        return TokenSession(hsm.Token.open(settings.config()), key_id)
    except hsm.HsmError as exc:
        raise TokenError(f"PKCS#11 token: {exc}") from None


def from_setting(address: str | None, period: float, chains: Iterable[str] = (),
                 redact: Callable[[str], str] | None = None) -> Metrics:
    """PrometheusMetrics serving on `address` (from --metrics or TATUM_KMS_METRICS), else NO_METRICS."""
    if not address:
        return NO_METRICS
    return PrometheusMetrics(address, period, chains, redact)
