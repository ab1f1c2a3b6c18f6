"""A small keep-alive HTTP/1.1 client for one API host: one connection per thread, proxy from the environment.

The daemon spends most of its time here, so requests are written and responses read directly on the
socket: http.client costs three times as much per request (it parses headers with the email
package), requests ten times. What this keeps from them: a connect and a read timeout,
`HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (CONNECT tunnels for HTTPS), certificate checking against
`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE` or certifi's bundle, chunked and length-delimited bodies, and a
fresh connection when the server has closed an idle one (so a broadcast is never sent on a dead socket).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
from typing import Any, BinaryIO
from urllib.parse import urlsplit

_MAX_LINE = 65536
_MAX_HEADERS = 100


class TransportError(Exception):
    """The request got no HTTP response. `sent` is False when it provably never left (no connection)."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


class Headers(dict[str, str]):
    """Response headers, names lower-cased; `get` takes any case."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


class Response:
    """Status, headers and body of an HTTP response."""

    def __init__(self, status: int, headers: Headers, content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _Connection:
    """One open socket to the API (directly, or through the proxy) and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class Transport:
    """Sends requests to `base_url` with `headers` on every one; safe to share between threads."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: tuple[float, float]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the API URL must be http:// or https:// with a host")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.authority = parts.netloc.rpartition("@")[2]
        self.connect_timeout, self.read_timeout = timeout
        self._proxy = _proxy_for(parts.scheme, parts.netloc)
        self._head = "".join(f"{name}: {value}\r\n" for name, value in {**headers, "Host": self.authority}.items())
        self._tls: ssl.SSLContext | None = None
        self._local = threading.local()
        self._all: set[_Connection] = set()
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send one request and read the whole response; TransportError when no response came."""
        target = self.prefix + path
        if self._proxy and not self.https:
            target = f"http://{self.authority}{target}"  # a plain-HTTP proxy takes the absolute URL
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        message = f"{method} {target} HTTP/1.1\r\n{self._head}{extra}{length}\r\n".encode("latin-1") + (body or b"")
        conn = self._connection()
        try:
            conn.sock.sendall(message)
            status, reply_headers, content, keep = _read_response(conn.reader)
        except TransportError:
            self._drop(conn)
            raise
        except TimeoutError:
            self._drop(conn)
            raise TransportError("timed out waiting for the response", sent=True) from None
        except ssl.SSLError:
            self._drop(conn)
            raise TransportError("TLS error", sent=True) from None
        except (OSError, ValueError):
            self._drop(conn)
            raise TransportError("connection lost", sent=True) from None
        if not keep:
            self._drop(conn)
        return Response(status, reply_headers, content)

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._lock:
            connections, self._all = self._all, set()
        for conn in connections:
            conn.close()

    # -- connections ------------------------------------------------------------------------------

    def _connection(self) -> _Connection:
        """This thread's open connection, made anew when there is none or the server closed it while idle."""
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None and _closed_by_peer(conn.sock):
            self._drop(conn)
            conn = None
        if conn is None:
            conn = _Connection(self._connect())
            self._local.conn = conn
            with self._lock:
                self._all.add(conn)
        return conn

    def _connect(self) -> socket.socket:
        """A socket to the API (tunnelled through the proxy for HTTPS), TLS-wrapped when https, read timeout set."""
        host, port = self._proxy or (self.host, self.port)
        try:
            sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        except ConnectionRefusedError:
            raise TransportError("connection refused", sent=False) from None
        except TimeoutError:
            raise TransportError("connection timed out", sent=False) from None
        except OSError:
            raise TransportError("could not connect", sent=False) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.https:
                if self._proxy:
                    _tunnel(sock, self.host, self.port)
                sock = self._tls_context().wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except TransportError:
            sock.close()
            raise
        except ssl.SSLError:
            sock.close()
            raise TransportError("TLS error", sent=False) from None
        except OSError:
            sock.close()
            raise TransportError("could not connect", sent=False) from None
        return sock

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        with self._lock:
            self._all.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or _certifi()
            self._tls = ssl.create_default_context(cafile=bundle)
        return self._tls


def _tunnel(sock: socket.socket, host: str, port: int) -> None:
    """Ask the HTTP proxy on `sock` for a CONNECT tunnel to host:port."""
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("latin-1"))
    reader = sock.makefile("rb", buffering=0)
    status_line = reader.readline(_MAX_LINE)
    while reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
        pass
    parts = status_line.split()
    if len(parts) < 2 or parts[1] != b"200":
        raise TransportError(f"the proxy refused the tunnel ({status_line.decode('latin-1').strip()})", sent=False)


def _read_response(reader: BinaryIO) -> tuple[int, Headers, bytes, bool]:
    """Status, headers, body and whether the connection stays open, read from `reader`."""
    status_line = reader.readline(_MAX_LINE)
    if not status_line:
        raise ConnectionError("closed before the response")
    version, _, rest = status_line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("not an HTTP response")
    status = int(rest.split(" ", 1)[0])
    headers = Headers()
    for _ in range(_MAX_HEADERS):
        line = reader.readline(_MAX_LINE)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionError("closed in the headers")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ValueError("too many headers")
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _read_chunked(reader), keep
    if headers.get("content-length") is not None:
        length = int(headers["content-length"])
        content = reader.read(length)
        if len(content) != length:
            raise ConnectionError("closed in the body")
        return status, headers, content, keep
    return status, headers, reader.read(), False  # delimited by the end of the connection


def _read_chunked(reader: BinaryIO) -> bytes:
    chunks = []
    while True:
        size = int(reader.readline(_MAX_LINE).split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:
            while reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        chunk = reader.read(size)
        if len(chunk) != size or reader.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
            raise ConnectionError("closed in a chunk")
        chunks.append(chunk)


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the server closed it (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _proxy_for(scheme: str, netloc: str) -> tuple[str, int] | None:
    """(host, port) of the environment's proxy for this URL, honouring NO_PROXY; None for a direct connection."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None  # the usual case, without importing urllib.request (and with it http.client and email)
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass_environment(netloc, proxies):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 8080


def _certifi() -> Any:
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()
