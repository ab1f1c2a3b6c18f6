"""A small keep-alive HTTP/1.1 client for one API host: one connection per thread, proxy from the environment.

The daemon spends most of its time here, so this sits directly on `http.client` (requests re-reads the
proxy environment on every call; urllib3 costs twice this per request). What it keeps from them: a
connect and a read timeout, `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, certificate checking against
`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE` or certifi's bundle, and a fresh connection when the server has
closed an idle one (so a broadcast is never sent on a dead socket).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit


class TransportError(Exception):
    """The request got no HTTP response. `sent` is False when it provably never left (no connection)."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


class Response:
    """Status, headers (case-insensitive `get`) and body of an HTTP response."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


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
        self.headers = {**headers, "Host": parts.netloc.rpartition("@")[2]}
        self.connect_timeout, self.read_timeout = timeout
        self._proxy = _proxy_for(parts.scheme, parts.netloc)
        self._tls: ssl.SSLContext | None = None
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send one request and read the whole response; TransportError when no response came."""
        conn = self._connection()
        target = self.prefix + path
        if self._proxy and not self.https:
            target = f"http://{self.headers['Host']}{target}"  # a plain-HTTP proxy takes the absolute URL
        sent_headers = {**self.headers, **(headers or {})}
        if body is not None:
            sent_headers["Content-Length"] = str(len(body))
        try:
            if conn.sock is None:
                self._connect(conn)
            conn.request(method, target, body=body, headers=sent_headers)
            reply = conn.getresponse()
            content = reply.read()
        except TransportError:
            self._drop(conn)
            raise
        except TimeoutError:
            self._drop(conn)
            raise TransportError("timed out waiting for the response", sent=True) from None
        except ssl.SSLError:
            self._drop(conn)
            raise TransportError("TLS error", sent=True) from None
        except (OSError, http.client.HTTPException):
            self._drop(conn)
            raise TransportError("connection lost", sent=True) from None
        if reply.will_close:
            self._drop(conn)
        return Response(reply.status, reply.headers, content)

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()

    # -- connections ------------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection; reopened when the server closed it while idle."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            conn.close()
        if conn is None:
            host, port = self._proxy or (self.host, self.port)
            if self.https:
                conn = http.client.HTTPSConnection(host, port, context=self._tls_context())
                if self._proxy:
                    conn.set_tunnel(self.host, self.port)
            else:
                conn = http.client.HTTPConnection(host, port)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _connect(self, conn: http.client.HTTPConnection) -> None:
        """Open the connection with the connect timeout, then switch the socket to the read timeout."""
        conn.timeout = self.connect_timeout
        try:
            conn.connect()
        except ConnectionRefusedError:
            raise TransportError("connection refused", sent=False) from None
        except TimeoutError:
            raise TransportError("connection timed out", sent=False) from None
        except ssl.SSLError:
            raise TransportError("TLS error", sent=False) from None
        except OSError:
            raise TransportError("could not connect", sent=False) from None
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout)

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or _certifi()
            self._tls = ssl.create_default_context(cafile=bundle)
        return self._tls


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the server closed it (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _proxy_for(scheme: str, netloc: str) -> tuple[str, int] | None:
    """(host, port) of the environment's proxy for this URL, honouring NO_PROXY; None for a direct connection."""
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
