"""The daemon's HTTP/1.1 client: pooled keep-alive connections to any host, proxies and CA bundle from the
environment, and limits a hostile server cannot get around: a total deadline and a response size cap.

Written on `socket` and `ssl`, not on urllib3, for a measured reason (issue 10; `bench/bench_http.py`, one
thread, keep-alive, against a sandbox in its own process): a request costs 51 µs of CPU here, 142 µs through
urllib3 2 and 84 µs through bare `http.client` (which has no pool, proxy rules or deadline), and the daemon
makes two per transaction within the 0.67 ms a transaction has at 1,500 tx/s. `kms.loop_http` drives the
same connections and parser from an event loop.

Every socket operation waits at most until the request's deadline, so a server trickling one byte a second
is cut off there. A failure without an HTTP response is an `HttpError` whose `sent` is False only when no
byte of the request was written, so a caller may resend it. Redirects are never followed. Error texts name
the failure, never a URL, header or body.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Generator, Mapping
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

MiB = 2**20

_T = TypeVar("_T")
#: A response parser: yields when it needs more bytes, is sent whether more came (False: the stream ended).
Reading = Generator[None, "bool | None", _T]

_READ_SIZE = 65536
_MAX_HEAD = 65536  # a response's status line and header fields together
_MAX_FIELDS = 200
_MAX_LINE = 4096  # a chunk-size or trailer line
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # header values: no CR, LF, NUL or other controls
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_STATUS = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?:[ \t].*)?")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
_MAX_ROUTES = 256
_MALFORMED_REQUEST = "the request could not be made (malformed URL or header)"


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


class Headers:
    """A response's header fields; `get` ignores case, and a repeated field reads as its values joined by ", "."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-case names

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._fields.get(name.lower(), default)

    def __repr__(self) -> str:
        return f"Headers({', '.join(self._fields)})"  # names only: values may be anything a server sent


class Response:
    """A complete HTTP response: `status_code`, `headers` (case-insensitive `get`), `content` (bytes), `text`."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
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
        self.pool_size = int(pool_size)
        self._proxies = ProxySettings.from_environment()
        self._tls = _tls_context()
        self._pools: dict[tuple[Any, ...], _Pool] = {}
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._fields = {"accept-encoding": ("Accept-Encoding", "identity")}  # sent on every request
        for name, value in self.headers.items():
            self._fields[name.lower()] = _field(name, value)

    def __repr__(self) -> str:
        return f"HttpClient(deadline={self.deadline:g}, max_response_bytes={self.max_response_bytes})"

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, *, deadline: float | None = None) -> Response:
        """Send one request and read the whole response (any status); HttpError when no complete response came
        within the deadline (this client's, or `deadline` seconds if given)."""
        clock, route, data = self._begin(method, url, body, headers, deadline)
        pool = self._pool(route.key)
        conn = pool.acquire(clock)
        keep = False
        wrote = False
        try:
            if conn is None:
                conn = self._connect(route, clock)
            wrote = True
            conn.send(data, clock)
            response, keep = conn.response(method, clock, self.max_response_bytes)
            return response
        except (HttpError, _Expired, OSError) as exc:
            raise failure(exc, clock, sent=wrote) from None
        finally:
            pool.release(conn, keep)

    def close(self) -> None:
        """Close every pooled connection (the client can still be used: it reconnects)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    # -- internals ------------------------------------------------------------------------------

    def _begin(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None,
               deadline: float | None) -> tuple[_Clock, _Route, bytes]:
        """A request's clock, route and bytes (`kms.loop_http` starts its requests here too)."""
        budget = self.deadline if deadline is None else float(deadline)
        if not budget > 0:
            raise HttpError("no time left for the request", sent=False, timed_out=True)
        clock = _Clock(budget, self.connect_timeout, self.read_timeout)
        route, target = self._route(url)
        return clock, route, self._head(method, route, target, headers, body)

    def _pool(self, key: tuple[Any, ...]) -> _Pool:
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(key, _Pool(self.pool_size))
        return pool

    def _route(self, url: str) -> tuple[_Route, str]:
        """Where a request to `url` goes (straight to its host, or through the environment's proxy for it),
        and its request target. Routes are kept per origin: parsing and the proxy rules run once per host."""
        match = _ORIGIN.match(url)
        if match is None:
            raise HttpError("the URL must be http:// or https:// with a host", sent=False)
        origin = match.group(0)
        route = self._routes.get(origin)
        if route is None:
            route = self._new_route(url)
            if len(self._routes) < _MAX_ROUTES:
                self._routes[origin] = route
        rest = url[len(origin):].partition("#")[0]
        return route, route.prefix + (rest if rest.startswith("/") else "/" + rest)

    def _new_route(self, url: str) -> _Route:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise HttpError(_MALFORMED_REQUEST, sent=False) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("the URL must be http:// or https:// with a host", sent=False)
        host = parts.hostname
        port = port or (443 if parts.scheme == "https" else 80)
        netloc = parts.netloc.rpartition("@")[2]
        if _BAD_VALUE.search(netloc) or _BAD_TARGET.search(netloc):
            raise HttpError(_MALFORMED_REQUEST, sent=False)
        proxy_url = self._proxies.proxy_for(parts.scheme, host, port)
        proxy = _Proxy.parse(proxy_url) if proxy_url else None
        if proxy is None:
            return _Route(parts.scheme, host, port, netloc, "", None, (parts.scheme, host, port))
        if parts.scheme == "http":  # a forward proxy: one pool of connections to it for every http host
            return _Route("http", host, port, netloc, f"http://{netloc}", proxy, ("forward", proxy.url))
        if proxy.scheme == "https":
            raise HttpError("an https:// proxy cannot carry https:// requests here: use an http:// proxy "
                            "(the tunnel through it is TLS end to end)", sent=False)
        return _Route("https", host, port, netloc, "", proxy, ("tunnel", host, port, proxy.url))

    def _head(self, method: str, route: _Route, target: str, headers: Mapping[str, str] | None,
              body: bytes | None) -> bytes:
        """The request's bytes (head and body); HttpError before anything is sent when a part is malformed."""
        if not _TOKEN.fullmatch(method) or _BAD_TARGET.search(target):
            raise HttpError(_MALFORMED_REQUEST, sent=False)
        fields = {"host": ("Host", route.netloc), **self._fields}
        for name, value in (headers or {}).items():
            fields[name.lower()] = _field(name, value)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            fields["content-length"] = ("Content-Length", str(len(body or b"")))
        if route.proxy is not None and route.proxy.authorization and route.key[0] == "forward":
            fields["proxy-authorization"] = ("Proxy-Authorization", route.proxy.authorization)
        lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.values())]
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise HttpError(_MALFORMED_REQUEST, sent=False) from None
        return head + body if body else head

    def _connect(self, route: _Route, clock: _Clock) -> _Connection:
        """A new connection for `route`: TCP, the proxy's tunnel if any, then TLS for https."""
        proxy = route.proxy
        if proxy is None:
            sock = self._open(route.host, route.port, clock, "")
            return _Connection(self._wrap(sock, route.host, clock) if route.scheme == "https" else sock)
        sock = self._open(proxy.host, proxy.port, clock, " to the proxy")
        if proxy.scheme == "https":
            sock = self._wrap(sock, proxy.host, clock)
        conn = _Connection(sock)
        if route.key[0] == "tunnel":
            conn.tunnel(route, clock)
            conn.sock = self._wrap(conn.sock, route.host, clock)
        return conn

    def _open(self, host: str, port: int, clock: _Clock, where: str) -> socket.socket:
        """A TCP connection (Nagle off); HttpError (nothing sent) when none could be made."""
        try:
            sock = socket.create_connection((host, port), timeout=clock.limit(self.connect_timeout))
        except _Expired:
            raise clock.expired(sent=False) from None
        except socket.gaierror:
            raise HttpError(f"could not connect{where}" if where else "could not resolve the host name",
                            sent=False) from None
        except TimeoutError:
            raise clock.timed_out(sent=False, waiting="connect") from None
        except ConnectionRefusedError:
            raise HttpError(f"could not connect{where}" if where else "connection refused", sent=False) from None
        except (OSError, ValueError, UnicodeError):
            raise HttpError(f"could not connect{where}", sent=False) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _wrap(self, sock: socket.socket, host: str, clock: _Clock) -> socket.socket:
        """TLS over `sock`, the certificate checked for `host`; HttpError (nothing sent) when that fails."""
        try:
            sock.settimeout(clock.limit(self.connect_timeout))
            return self._tls.wrap_socket(sock, server_hostname=host)
        except _Expired:
            sock.close()
            raise clock.expired(sent=False) from None
        except TimeoutError:
            sock.close()
            raise clock.timed_out(sent=False, waiting="connect") from None
        except ssl.SSLError as exc:
            sock.close()
            raise HttpError(_tls_reason(exc), sent=False) from None
        except (OSError, ValueError):
            sock.close()
            raise HttpError("TLS error (the connection was closed during the handshake)", sent=False) from None


def failure(exc: HttpError | _Expired | OSError, clock: _Clock, *, sent: bool) -> HttpError:
    """What a request that failed with `exc` reports, once `sent` (any byte of it written) is known."""
    if isinstance(exc, HttpError):
        if sent and not exc.sent:
            exc.sent = True
        return exc
    if isinstance(exc, _Expired):
        return clock.expired(sent=sent)
    if isinstance(exc, TimeoutError):
        return clock.timed_out(sent=sent, waiting="server")
    if isinstance(exc, ssl.SSLError):
        return HttpError(_tls_reason(exc), sent=sent)
    return HttpError("connection lost", sent=sent)


def _field(name: str, value: Any) -> tuple[str, str]:
    """A request header field as given; HttpError (nothing sent) for a name that is no token or a value with
    a line break or another control character (header injection)."""
    if not isinstance(name, str) or not isinstance(value, str) or not _TOKEN.fullmatch(name) \
            or _BAD_VALUE.search(value):
        raise HttpError(_MALFORMED_REQUEST, sent=False)
    return name, value


class _Expired(Exception):
    """The request's deadline has passed (internal; becomes an HttpError)."""


class _Clock:
    """One request's deadline, and the timeout for its next socket operation."""

    __slots__ = ("budget", "due", "connect", "read")

    def __init__(self, budget: float, connect: float, read: float) -> None:
        self.budget = budget
        self.due = time.monotonic() + budget
        self.connect = connect
        self.read = read

    def limit(self, timeout: float) -> float:
        """`timeout`, or less when the deadline is nearer; _Expired when it has passed."""
        left = self.due - time.monotonic()
        if left <= 0:
            raise _Expired
        return timeout if timeout < left else left

    def expired(self, *, sent: bool) -> HttpError:
        return HttpError(f"timed out: no complete response within the {round(self.budget, 1):g} s deadline",
                         sent=sent, timed_out=True)

    def timed_out(self, *, sent: bool, waiting: str) -> HttpError:
        """The error for a socket timeout: the deadline's when it has passed, else the operation's own."""
        if time.monotonic() >= self.due - 0.001:
            return self.expired(sent=sent)
        if waiting == "connect":
            return HttpError(f"connection timed out after {self.connect:g} s", sent=sent, timed_out=True)
        return HttpError(f"timed out after {self.read:g} s waiting for the server", sent=sent, timed_out=True)


class _Proxy:
    """A proxy from the environment: where it is, and its Basic credentials from the URL's user part."""

    __slots__ = ("url", "scheme", "host", "port", "authorization")
    _parsed: dict[str, _Proxy] = {}

    def __init__(self, url: str, parts: SplitResult) -> None:
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authorization = None
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.authorization = "Basic " + base64.b64encode(credentials).decode("ascii")

    @classmethod
    def parse(cls, url: str) -> _Proxy:
        proxy = cls._parsed.get(url)
        if proxy is None:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - a port that is not a number raises here
            except ValueError:
                raise HttpError("unsupported proxy (a malformed URL)", sent=False) from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise HttpError(f"unsupported proxy (scheme {parts.scheme or 'none'}): use http:// or https://",
                                sent=False)
            proxy = cls._parsed[url] = cls(url, parts)
        return proxy


class _Route:
    """Where requests to one origin go: its host, the proxy on the way, and their pool's key."""

    __slots__ = ("scheme", "host", "port", "netloc", "prefix", "proxy", "key")

    def __init__(self, scheme: str, host: str, port: int, netloc: str, prefix: str, proxy: _Proxy | None,
                 key: tuple[Any, ...]) -> None:
        self.scheme, self.host, self.port, self.netloc = scheme, host, port, netloc
        self.prefix, self.proxy, self.key = prefix, proxy, key  # prefix: the origin, for a forward proxy


class _Slots:
    """One place's keep-alive connections: at most `size` open, idle ones reused newest first (the caller
    locks, or owns the event loop they are used on)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[_Connection] = []
        self.live = 0
        self.closed = False

    def take(self) -> tuple[bool, _Connection | None]:
        """(True, an idle connection still open), (True, None) with a slot reserved for a new one, or
        (False, None) when all `size` are in use."""
        while self.idle:
            conn = self.idle.pop()
            if conn.usable():
                return True, conn
            conn.close()
            self.live -= 1
        if self.live < self.size:
            self.live += 1
            return True, None
        return False, None

    def put(self, conn: _Connection | None, keep: bool) -> None:
        """Give back a connection (kept for reuse when `keep`) or the slot reserved for one never made."""
        if conn is not None and keep and not self.closed:
            self.idle.append(conn)
        else:
            if conn is not None:
                conn.close()
            self.live -= 1

    def drain(self) -> list[_Connection]:
        """Stop keeping connections; the idle ones, for the caller to close."""
        self.closed = True
        idle, self.idle = self.idle, []
        self.live -= len(idle)
        return idle


def no_free_connection(clock: _Clock) -> HttpError:
    return HttpError(f"no free connection to the host within {round(clock.budget, 1):g} s", sent=False,
                     timed_out=True)


class _Pool(_Slots):
    """`_Slots` shared by threads: a thread finding them all in use waits for one within its deadline."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.ready = threading.Condition(threading.Lock())

    def acquire(self, clock: _Clock) -> _Connection | None:
        """An idle connection still open, or None with a slot reserved for a new one."""
        with self.ready:
            while True:
                got, conn = self.take()
                if got:
                    return conn
                left = clock.due - time.monotonic()
                if left <= 0:
                    raise no_free_connection(clock)
                self.ready.wait(left)

    def release(self, conn: _Connection | None, keep: bool) -> None:
        with self.ready:
            self.put(conn, keep)
            self.ready.notify()

    def close(self) -> None:
        with self.ready:
            idle = self.drain()
            self.ready.notify_all()
        for conn in idle:
            conn.close()


class _Connection:
    """One keep-alive connection: writes a request, reads its response (framed as RFC 9112 says) within the
    request's clock, and knows whether it can carry another."""

    __slots__ = ("sock", "buffer", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self._timeout: float | None = None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def usable(self) -> bool:
        """False when the idle connection was closed by the server (or sent something unasked)."""
        if self.buffer:
            return False
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def send(self, data: bytes, clock: _Clock) -> None:
        self._set_timeout(clock.limit(clock.read))
        self.sock.sendall(data)

    def tunnel(self, route: _Route, clock: _Clock) -> None:
        """CONNECT through the proxy to the route's host; HttpError (nothing sent) when the proxy refuses."""
        assert route.proxy is not None
        lines = [f"CONNECT {route.host}:{route.port} HTTP/1.1", f"Host: {route.host}:{route.port}"]
        if route.proxy.authorization:
            lines.append(f"Proxy-Authorization: {route.proxy.authorization}")
        try:
            self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), clock)
            status, _, _ = self._drive(self._head(), clock)
        except (HttpError, OSError, _Expired):
            self.close()
            raise HttpError("could not connect to the proxy", sent=False) from None
        if not 200 <= status < 300 or self.buffer:
            self.close()
            raise HttpError(f"the proxy refused the tunnel (HTTP {status})", sent=False)

    def response(self, method: str, clock: _Clock, cap: int) -> tuple[Response, bool]:
        """The whole response to the request just sent, and whether the connection may be reused."""
        return self._drive(self.reading(method, cap), clock)

    def reading(self, method: str, cap: int) -> Reading[tuple[Response, bool]]:
        """Parse the response to the request just sent from `buffer`: a generator that yields whenever it
        needs more bytes and is sent True once more are in the buffer, False at the end of the stream.

        Returns the response and whether the connection may be reused. `response` drives it with blocking
        reads, `kms.loop_http` with the event loop's.
        """
        status, version, fields = yield from self._head()
        while 100 <= status < 200 and status != 101:  # interim answers (100 Continue): the real one follows
            status, version, fields = yield from self._head()
        tokens = {token.strip() for token in fields.get("connection", "").lower().split(",")}
        keep = "close" not in tokens if version >= (1, 1) else "keep-alive" in tokens
        coding = fields.get("transfer-encoding", "").strip().lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
            keep = keep and status != 101
        elif coding:
            if coding.rsplit(",", 1)[-1].strip() != "chunked":
                raise HttpError("malformed response (an unknown transfer coding)", sent=True)
            body = yield from self._chunked(cap)
        elif "content-length" in fields:
            length = _content_length(fields["content-length"])
            if length > cap:
                raise HttpError(f"response larger than {_size(cap)} (its Content-Length says so)", sent=True,
                                too_large=True)
            body = yield from self._exactly(length)
        else:
            body, keep = (yield from self._until_closed(cap)), False
        encoding = fields.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            body = _decoded(body, encoding, cap)
        return Response(status, Headers(fields), body), keep

    # -- reading ------------------------------------------------------------------------------

    def _set_timeout(self, timeout: float) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def _fill(self, clock: _Clock) -> bool:
        """Read what the server has sent so far into the buffer; False at the end of the stream."""
        self._set_timeout(clock.limit(clock.read))
        data = self.sock.recv(_READ_SIZE)
        if not data:
            return False
        self.buffer += data
        return True

    def _drive(self, reading: Reading[_T], clock: _Clock) -> _T:
        """Run a parser generator to its end, reading from the socket whenever it asks for more."""
        more: bool | None = None
        try:
            while True:
                reading.send(more)
                more = self._fill(clock)
        except StopIteration as done:
            return done.value

    def _more(self) -> Reading[None]:
        """Ask for more bytes; the connection is lost when the stream ends first."""
        if not (yield):
            raise HttpError("connection lost", sent=True)

    def _head(self) -> Reading[tuple[int, tuple[int, int], dict[str, str]]]:
        """Status, HTTP version and header fields (lower-case names) of the next response."""
        buffer = self.buffer
        scanned = 0
        while True:
            while buffer[:2] == b"\r\n" or buffer[:1] == b"\n":  # blank lines before a status line are ignored
                del buffer[:2 if buffer[:2] == b"\r\n" else 1]
            end = buffer.find(b"\n\r\n", scanned)
            bare = buffer.find(b"\n\n", scanned)
            if bare >= 0 and (end < 0 or bare < end):
                end, size = bare, 2
            else:
                size = 3
            if end >= 0:
                head = bytes(buffer[:end])
                del buffer[:end + size]
                break
            if len(buffer) > _MAX_HEAD:
                raise HttpError("malformed response (its header is too large)", sent=True)
            scanned = max(0, len(buffer) - 2)
            yield from self._more()
        lines = head.split(b"\n")
        match = _STATUS.fullmatch(lines[0].rstrip(b"\r"))
        if match is None:
            raise HttpError("malformed response (not an HTTP status line)", sent=True)
        if len(lines) > _MAX_FIELDS:
            raise HttpError("malformed response (too many header fields)", sent=True)
        fields: dict[str, str] = {}
        last = None
        for raw in lines[1:]:
            line = raw.rstrip(b"\r").decode("latin-1")
            if line[:1] in (" ", "\t") and last is not None:  # an obsolete folded continuation
                fields[last] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                last = None
                continue  # not a header field: skipped, as browsers and http.client do
            last = name.lower()
            value = value.strip(" \t")
            fields[last] = f"{fields[last]}, {value}" if last in fields else value
        return int(match.group(3)), (int(match.group(1)), int(match.group(2))), fields

    def _exactly(self, count: int) -> Reading[bytes]:
        while len(self.buffer) < count:
            yield from self._more()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def _line(self) -> Reading[bytes]:
        """The next line (without its line ending), at most _MAX_LINE bytes."""
        scanned = 0
        while True:
            end = self.buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self.buffer[:end]).rstrip(b"\r")
                del self.buffer[:end + 1]
                return line
            if len(self.buffer) > _MAX_LINE:
                raise HttpError("malformed response (a chunked body's line is too long)", sent=True)
            scanned = len(self.buffer)
            yield from self._more()

    def _chunked(self, cap: int) -> Reading[bytes]:
        pieces: list[bytes] = []
        total = 0
        while True:
            size_text = (yield from self._line()).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise HttpError("malformed response (a bad chunk size)", sent=True)
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > cap:
                raise HttpError(f"response larger than {_size(cap)}", sent=True, too_large=True)
            pieces.append((yield from self._exactly(size)))
            if (yield from self._line()):
                raise HttpError("malformed response (a chunk longer than its size)", sent=True)
        for _ in range(_MAX_FIELDS):  # trailer fields, ignored
            if not (yield from self._line()):
                return b"".join(pieces)
        raise HttpError("malformed response (too many trailer fields)", sent=True)

    def _until_closed(self, cap: int) -> Reading[bytes]:
        while (yield):
            if len(self.buffer) > cap:
                raise HttpError(f"response larger than {_size(cap)}", sent=True, too_large=True)
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _content_length(value: str) -> int:
    """A Content-Length (repeated copies must agree); HttpError when it is not one decimal number."""
    copies = {part.strip() for part in value.split(",")}
    if len(copies) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(copies))):
        raise HttpError("malformed response (a bad Content-Length)", sent=True)
    return int(copies.pop())


def _decoded(body: bytes, encoding: str, cap: int) -> bytes:
    """A gzip or deflate body inflated, at most `cap` bytes of it; HttpError for other codings."""
    if encoding in ("gzip", "x-gzip"):
        windows = [31]
    elif encoding == "deflate":
        windows = [15, -15]  # zlib-wrapped as the RFC says, or raw as some servers send it
    else:
        raise HttpError("response in an unsupported content coding", sent=True)
    for wbits in windows:
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(body, cap + 1)
        except zlib.error:
            continue
        if len(data) > cap:
            raise HttpError(f"response larger than {_size(cap)}", sent=True, too_large=True)
        return data
    raise HttpError("malformed response (its compressed body is damaged)", sent=True)


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS error (certificate verify failed)"
    detail = exc.reason if isinstance(exc.reason, str) else None
    return f"TLS error ({detail.lower().replace('_', ' ')})" if detail else "TLS error"


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



def _size(count: int) -> str:
    """16777216 -> "16 MiB", 1536 -> "1.5 KiB"."""
    for unit, size in (("GiB", 2**30), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count // size} {unit}" if count % size == 0 else f"{count / size:.1f} {unit}"
    return f"{count} bytes"
