"""The daemon's HTTP client, on urllib3: pooled keep-alive connections to any host, proxies and CA bundle from
the environment, and limits a hostile server cannot get around: a total deadline and a response size cap.

urllib3's timeouts apply to each socket operation, so a server trickling one byte a second would never time
out; here one watchdog thread shuts down the socket of any request past its deadline. A failure without an
HTTP response is an `HttpError` whose `sent` is False only when no byte of the request was written, so a
caller may resend it. Redirects are never followed. Error texts name the failure, never a URL, header or body.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

MiB = 2**20

_READ_SIZE = 65536


class HttpError(Exception):
    """No HTTP response came back. `reason` says why in a few words (never a URL, header or body); `sent` is
    False only when the request provably never left (no byte of it was written); `timed_out` is True for a
    connect or read timeout or the request's deadline; `too_large` for a response past the size cap (asking
    again would not help)."""

    def __init__(self, reason: str, *, sent: bool, timed_out: bool = False, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.timed_out = timed_out
        self.too_large = too_large


class Response:
    """A complete HTTP response: `status_code`, `headers` (case-insensitive `get`), `content` (bytes), `text`."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Any, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"Response(status_code={self.status_code}, {len(self.content)} bytes)"


class HttpClient:
    """Sends requests to absolute http(s) URLs with `headers` on every one; safe to share between threads.

    Each host gets a pool of up to `pool_size` keep-alive connections (a thread finding them all busy waits for
    one, within its deadline). Every request must be complete (connect, headers and body) within `deadline`
    seconds, its connect and each read within `connect_timeout` and `read_timeout`, and its body no larger
    than `max_response_bytes`.
    """

    def __init__(self, headers: Mapping[str, str] | None = None, *, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, deadline: float = 60.0, max_response_bytes: int = 16 * MiB,
                 pool_size: int = 32) -> None:
        import urllib3

        _sanitize_library_logs()
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout),
                            ("deadline", deadline), ("max_response_bytes", max_response_bytes),
                            ("pool_size", pool_size)):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        self.headers = dict(headers or {})
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.deadline = float(deadline)
        self.max_response_bytes = int(max_response_bytes)
        self._proxies = ProxySettings.from_environment()
        self._tls = _tls_context()
        self._pool_options: dict[str, Any] = {"num_pools": 16, "maxsize": pool_size, "block": True,
                                              "ssl_context": self._tls}
        self._direct = urllib3.PoolManager(**self._pool_options)
        self._direct.pool_classes_by_scheme = _pool_classes()
        self._via_proxy: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpClient(deadline={self.deadline:g}, max_response_bytes={self.max_response_bytes})"

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, *, deadline: float | None = None) -> Response:
        """Send one request and read the whole response (any status); HttpError when no complete response came
        within the deadline (this client's, or `deadline` seconds if given)."""
        import urllib3

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("the URL must be http:// or https:// with a host", sent=False)
        budget = self.deadline if deadline is None else float(deadline)
        if not budget > 0:
            raise HttpError("no time left for the request", sent=False, timed_out=True)
        manager = self._manager(parts.scheme, parts.hostname, parts.port)
        watch = _reaper().start(budget)
        _local.watch = watch
        timeout = urllib3.Timeout(connect=min(self.connect_timeout, budget), read=min(self.read_timeout, budget))
        try:
            try:
                reply = manager.urlopen(method, url, body=body, headers={**self.headers, **(headers or {})},
                                        redirect=False, retries=False, timeout=timeout, preload_content=False,
                                        pool_timeout=budget)
            except Exception as exc:  # every way a request fails without a response
                raise self._failure(exc, watch, timeout) from None
            try:
                content = self._read_body(reply)
            except HttpError:
                reply.close()
                raise
            except Exception as exc:
                reply.close()
                raise self._failure(exc, watch, timeout) from None
            finally:
                reply.release_conn()
            if watch.expired:  # shut down at the deadline: a body ended by the connection is cut short
                raise self._failure(None, watch, timeout)
            return Response(reply.status, reply.headers, content)
        finally:
            _local.watch = None
            _reaper().finish(watch)

    def close(self) -> None:
        """Close every pooled connection (the client can still be used: it reconnects)."""
        with self._lock:
            managers = [self._direct, *self._via_proxy.values()]
        for manager in managers:
            manager.clear()

    # -- internals ------------------------------------------------------------------------------

    def _manager(self, scheme: str, host: str, port: int | None) -> Any:
        """The pool manager for this URL: direct, or through the environment's proxy for it."""
        proxy = self._proxies.proxy_for(scheme, host, port)
        if proxy is None:
            return self._direct
        with self._lock:
            manager = self._via_proxy.get(proxy)
            if manager is None:
                manager = self._via_proxy[proxy] = _proxy_manager(proxy, self._pool_options)
            return manager

    def _read_body(self, reply: Any) -> bytes:
        """The body, read in pieces; HttpError as soon as it (or its announced length) passes the cap."""
        cap = self.max_response_bytes
        length = (reply.headers.get("content-length") or "").strip()
        declared = int(length) if re.fullmatch(r"[0-9]{1,4000}", length) else None
        if declared is not None and declared > cap:
            raise HttpError(f"response larger than {_size(cap)} (its Content-Length says so)", sent=True,
                            too_large=True)
        if declared is not None and "content-encoding" not in reply.headers and not reply.chunked:
            return bytes(reply.read())  # one plain length, within the cap: read it at once
        pieces: list[bytes] = []
        total = 0
        for piece in reply.stream(_READ_SIZE, decode_content=True):
            total += len(piece)
            if total > cap:
                raise HttpError(f"response larger than {_size(cap)}", sent=True, too_large=True)
            pieces.append(piece)
        return b"".join(pieces)

    def _failure(self, exc: BaseException | None, watch: _Watch, timeout: Any) -> HttpError:
        """The HttpError for `exc`; `sent` follows whether a byte of the request was written."""
        import urllib3.exceptions as u3

        sent = watch.wrote
        if isinstance(exc, u3.EmptyPoolError):
            return HttpError(f"no free connection to the host within {round(watch.budget, 1):g} s", sent=False,
                             timed_out=True)
        if watch.expired:
            return HttpError(f"timed out: no complete response within the {round(watch.budget, 1):g} s deadline",
                             sent=sent, timed_out=True)
        return HttpError(_reason(exc, timeout), sent=sent, timed_out=_is_timeout(exc))


# -- proxies from the environment ---------------------------------------------------------------------


class ProxySettings:
    """`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (lower-case names win), as curl and requests
    read them: NO_PROXY lists host names (matching their subdomains too, with or without a leading dot),
    `host:port`, IP addresses and CIDR ranges, or `*` for every host."""

    def __init__(self, proxies: Mapping[str, str], no_proxy: str = "") -> None:
        self.proxies = {scheme: _proxy_url(url) for scheme, url in proxies.items() if url}
        self._everything = False
        self._names: list[tuple[str, int | None]] = []
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in re.split(r"[,\s]+", no_proxy.strip().lower()):
            if entry == "*":
                self._everything = True
            elif entry:
                self._add_bypass(entry)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        env = os.environ if environ is None else environ

        def read(name: str) -> str:
            return (env.get(name.lower()) or env.get(name.upper()) or "").strip()

        proxies = {"http": read("http_proxy"), "https": read("https_proxy"), "all": read("all_proxy")}
        return cls(proxies, read("no_proxy"))

    def proxy_for(self, scheme: str, host: str, port: int | None) -> str | None:
        """The proxy URL for a request to scheme://host:port, or None to connect directly."""
        proxy = self.proxies.get(scheme) or self.proxies.get("all")
        if proxy is None or self.bypassed(host, port or (443 if scheme == "https" else 80)):
            return None
        return proxy

    def bypassed(self, host: str, port: int) -> bool:
        """True when NO_PROXY names this host (or its domain, address or range)."""
        if self._everything:
            return True
        host = host.strip("[]").rstrip(".").lower()
        for name, only_port in self._names:
            if (only_port is None or only_port == port) and (host == name or host.endswith("." + name)):
                return True
        if self._networks:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            return any(address in network for network in self._networks if network.version == address.version)
        return False

    def _add_bypass(self, entry: str) -> None:
        try:
            self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            return
        except ValueError:
            pass
        name, only_port = entry, None
        match = re.fullmatch(r"(\[[^\]]+\]|[^:]+):(\d+)", entry)
        if match:
            name, only_port = match.group(1), int(match.group(2))
        name = name.strip("[]").lstrip("*").lstrip(".").rstrip(".")
        if name:
            self._names.append((name, only_port))


def _proxy_url(url: str) -> str:
    return url if "://" in url else f"http://{url}"


def _proxy_manager(proxy: str, options: dict[str, Any]) -> Any:
    import urllib3

    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"unsupported proxy (scheme {parts.scheme or 'none'}): use http:// or https://", sent=False)
    proxy_headers = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        proxy_headers = urllib3.make_headers(proxy_basic_auth=credentials)
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    manager = urllib3.ProxyManager(f"{parts.scheme}://{netloc}", proxy_headers=proxy_headers,
                                   proxy_ssl_context=options["ssl_context"], **options)
    manager.pool_classes_by_scheme = _pool_classes()
    return manager


# -- TLS ----------------------------------------------------------------------------------------------


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against REQUESTS_CA_BUNDLE, else SSL_CERT_FILE, else certifi's bundle."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or _certifi()
    try:
        if bundle and os.path.isdir(bundle):
            return ssl.create_default_context(capath=bundle)
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError):
        raise HttpError("cannot read the CA bundle named by REQUESTS_CA_BUNDLE or SSL_CERT_FILE",
                        sent=False) from None


def _certifi() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


# -- the deadline watchdog ----------------------------------------------------------------------------

_local = threading.local()


class _Watch:
    """One request's deadline, the connections it uses, and whether a byte of the request was written."""

    __slots__ = ("budget", "due", "expired", "done", "wrote", "writing", "connections")

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.due = time.monotonic() + budget
        self.expired = False
        self.done = False
        self.wrote = False
        self.writing = False
        self.connections: list[Any] = []


class _Reaper:
    """One thread for the whole process that shuts down the sockets of requests past their deadline.

    A request costs it a heap push and two lock round trips; finished requests are dropped lazily. The
    socket shut down is a duplicate of the connection's (same TCP connection, own descriptor), so a TLS
    socket's state is never touched from this thread, and it is closed under the same lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, _Watch]] = []
        self._live = 0
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
        self._thread.start()

    def start(self, budget: float) -> _Watch:
        watch = _Watch(budget)
        with self.lock:
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (watch.due, next(self._order), watch))
            self._live += 1
            if earliest is None or watch.due < earliest:
                self._wake.notify()
        return watch

    def finish(self, watch: _Watch) -> None:
        with self.lock:
            if not watch.done:
                watch.done = True
                self._live -= 1
            for conn in watch.connections:
                if conn._kms_watch is watch:
                    conn._kms_watch = None
            watch.connections.clear()
            if len(self._heap) > 1024 and len(self._heap) > 4 * self._live:
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)

    def attach(self, watch: _Watch | None, conn: Any) -> None:
        """`conn` now serves `watch`'s request; shut down at once if that request is already late."""
        if watch is None:
            return
        with self.lock:
            conn._kms_watch = watch
            watch.connections.append(conn)
            if watch.expired:
                _shutdown(conn)

    def release(self, conn: Any) -> None:
        """`conn` goes back to its pool: no deadline may touch it any more."""
        with self.lock:
            conn._kms_watch = None

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self._heap)
                    if not watch.done:
                        watch.expired = True
                        for conn in watch.connections:
                            if conn._kms_watch is watch:
                                _shutdown(conn)
                        watch.done = True
                        self._live -= 1
                self._wake.wait(self._heap[0][0] - now if self._heap else None)


def _shutdown(conn: Any) -> None:
    """Shut the connection's socket down both ways (the owner's blocked read then returns); lock held."""
    spare = conn._kms_spare
    if spare is not None:
        try:
            spare.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_the_reaper: _Reaper | None = None
_reaper_lock = threading.Lock()


def _reaper() -> _Reaper:
    global _the_reaper
    if _the_reaper is None:
        with _reaper_lock:
            if _the_reaper is None:
                _the_reaper = _Reaper()
    return _the_reaper


# -- urllib3 connections that the watchdog can reach ----------------------------------------------------

_classes: dict[str, Any] = {}


def _pool_classes() -> dict[str, Any]:
    """HTTP and HTTPS pool classes whose connections register with the current request's deadline."""
    if _classes:
        return dict(_classes)
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched:
        """Mixin: keeps a duplicate of the socket for the watchdog, and records when the request is written."""

        _kms_watch: _Watch | None = None
        _kms_spare: socket.socket | None = None

        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
            reaper = _reaper()
            with reaper.lock:
                if self._kms_spare is not None:
                    self._kms_spare.close()
                self._kms_spare = sock.dup()
            reaper.attach(getattr(_local, "watch", None), self)
            return sock

        _kms_held: bytes | None = None
        _kms_hold = False

        def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
            watch: _Watch | None = getattr(_local, "watch", None)
            _reaper().attach(watch, self)
            if watch is not None:
                watch.writing = True
            # The header block waits for a bytes body so both leave in one write (one TCP segment, not two).
            self._kms_hold = isinstance(body, bytes) and bool(body) and not kwargs.get("chunked")
            try:
                super().request(method, url, body, headers, **kwargs)  # type: ignore[misc]
                if self._kms_held is not None:  # defensive: a body that never came
                    self._send_now(self._kms_held)
            finally:
                self._kms_hold, self._kms_held = False, None
                if watch is not None:
                    watch.writing = False

        def send(self, data: Any) -> None:
            if getattr(self, "sock", None) is None:
                self.connect()  # type: ignore[attr-defined]  # a failure here: nothing of the request left
            if self._kms_hold and isinstance(data, bytes):
                if self._kms_held is None:
                    self._kms_held = data
                    return
                data, self._kms_held, self._kms_hold = self._kms_held + data, None, False
            self._send_now(data)

        def _send_now(self, data: Any) -> None:
            self._kms_held = None
            watch: _Watch | None = getattr(_local, "watch", None)
            if watch is not None and watch.writing:
                watch.wrote = True
            super().send(data)  # type: ignore[misc]

        def close(self) -> None:
            try:
                super().close()  # type: ignore[misc]
            finally:
                with _reaper().lock:
                    if self._kms_spare is not None:
                        self._kms_spare.close()
                        self._kms_spare = None

    class WatchedHTTPConnection(Watched, HTTPConnection):
        pass

    class WatchedHTTPSConnection(Watched, HTTPSConnection):
        pass

    class ReleasingPool:
        """Mixin: a connection put back into the pool leaves the deadline of the request it served."""

        def _put_conn(self, conn: Any) -> None:
            if conn is not None:
                _reaper().release(conn)
            super()._put_conn(conn)  # type: ignore[misc]

    class WatchedHTTPConnectionPool(ReleasingPool, HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSConnectionPool(ReleasingPool, HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    _classes.update(http=WatchedHTTPConnectionPool, https=WatchedHTTPSConnectionPool)
    return dict(_classes)


# -- urllib3's own log lines ----------------------------------------------------------------------------

_URL = re.compile(r"\b(https?://[^/\s'\"]+)[^\s'\"]*")
_TARGET = re.compile(r"(?<![\w:/])/[^\s'\"]+")
_sanitized = False


class _Sanitize(logging.Filter):
    """On urllib3's loggers: its debug lines (every request target, and node URLs hold the API key) are dropped;
    its warnings keep URLs only as scheme://host, lose bare paths and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        try:
            text = _TARGET.sub("<path>", _URL.sub(r"\1", record.getMessage()))
        except Exception:  # a record that cannot be formatted says nothing useful
            return False
        record.msg, record.args, record.exc_info, record.exc_text = f"urllib3: {text}", None, None, None
        return True


def _sanitize_library_logs() -> None:
    """Put `_Sanitize` on every urllib3 logger (once per process, after urllib3 is imported)."""
    global _sanitized
    if _sanitized:
        return
    names = [name for name in list(logging.root.manager.loggerDict) if name.split(".")[0] == "urllib3"]
    for name in names:
        logging.getLogger(name).addFilter(_Sanitize())
    _sanitized = True


# -- what went wrong, in words ------------------------------------------------------------------------


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc` and every exception it wraps (urllib3's `reason`/`original_error`, causes, contexts)."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [getattr(current, "original_error", None), getattr(current, "reason", None),
                   current.__cause__, current.__context__, *current.args]
        pending += [e for e in wrapped if isinstance(e, BaseException)]


def _is_timeout(exc: BaseException | None) -> bool:
    import urllib3.exceptions as u3

    return any(isinstance(e, TimeoutError | u3.TimeoutError) and not isinstance(e, u3.NewConnectionError)
               for e in _chain(exc))


def _reason(exc: BaseException | None, timeout: Any) -> str:
    """A short description of a failure that names no URL, header or body."""
    import urllib3.exceptions as u3

    chain = list(_chain(exc))

    def has(kind: Any) -> bool:
        return any(isinstance(e, kind) for e in chain)

    tunnel = next((m for e in chain if isinstance(e, OSError)
                   for m in [re.match(r"Tunnel connection failed: (\d{3})", str(e))] if m), None)
    if tunnel:
        return f"the proxy refused the tunnel (HTTP {tunnel.group(1)})"
    if has(u3.NameResolutionError) or has(socket.gaierror):
        return "could not resolve the host name"
    if has(ConnectionRefusedError):
        return "connection refused"
    if has(u3.NewConnectionError):
        return "could not connect"
    if has(u3.ConnectTimeoutError):
        return f"connection timed out after {timeout.connect_timeout:g} s"
    if has(ssl.SSLError) or has(ssl.CertificateError) or has(u3.SSLError):
        detail = next((e.reason for e in chain if isinstance(e, ssl.SSLError) and isinstance(e.reason, str)), None)
        if has(ssl.SSLCertVerificationError):
            detail = "certificate verify failed"
        return f"TLS error ({detail.lower().replace('_', ' ')})" if detail else "TLS error"
    if has(u3.ProxyError):
        return "could not connect to the proxy"
    if has(u3.ReadTimeoutError) or has(TimeoutError):
        return f"timed out after {timeout.read_timeout:g} s waiting for the server"
    if has(u3.LocationValueError) or (has(ValueError) and not has(u3.HTTPError)):
        return "the request could not be made (malformed URL or header)"
    return "connection lost"


def _size(count: int) -> str:
    """16777216 -> "16 MiB", 1536 -> "1.5 KiB"."""
    for unit, size in (("GiB", 2**30), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count // size} {unit}" if count % size == 0 else f"{count / size:.1f} {unit}"
    return f"{count} bytes"
