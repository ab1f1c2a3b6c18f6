"""HTTP plumbing for the sandbox: a threading server on 127.0.0.1, `serve()` for tests and `main()` for the CLI."""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from typing import Any

from kms.sandbox.api import Sandbox, redact_path


class SandboxServer(socketserver.ThreadingTCPServer):
    """A threading TCP server holding the `Sandbox` its connections are answered from."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the daemon opens ~32 connections at once; the default backlog of 5 drops some

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, verbose: bool, latency: float = 0.0) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.sandbox = sandbox
        self.verbose = verbose
        self.latency = latency


class _Handler(socketserver.StreamRequestHandler):
    """A lean HTTP/1.1 keep-alive handler: request line, headers, a Content-Length body; one JSON reply each.

    http.server's parser costs more than the sandbox's own work per request, and the daemon benchmark
    measures the KMS against this server, so requests are parsed here directly.
    """

    disable_nagle_algorithm = True
    timeout = 60
    server: SandboxServer

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except (TimeoutError, ConnectionError):
            pass

    def _one_request(self) -> bool:
        """Serve one request; False when the connection is to be closed."""
        line = self.rfile.readline(_MAX_LINE)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(_MAX_LINE)
        if not line:
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._reply(400, {"statusCode": 400, "errorCode": "http.malformed", "message": "Bad request line."}, {},
                        keep=False)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            header = self.rfile.readline(_MAX_LINE)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._reply(411, {"statusCode": 411, "errorCode": "http.length", "message": "Send a Content-Length."},
                        {}, keep=False)
            return False
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.sandbox.handle(method, target, headers, body)
            status, payload, extra = reply.status, reply.body, reply.headers
        except Exception as exc:  # a sandbox bug must not kill the connection silently
            status, extra = 500, {}
            payload = {"statusCode": 500, "errorCode": "sandbox.internal", "message": type(exc).__name__}
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if self.server.latency:
            time.sleep(self.server.latency)  # --latency-ms: as if the API were that far away
        self._reply(status, payload, extra, keep=keep)
        if self.server.verbose:
            sys.stderr.write(f"sandbox: {method} {redact_path(target)} {status}\n")
        return keep

    def _reply(self, status: int, payload: Any, headers: dict[str, str], *, keep: bool) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Server: tatum-kms-sandbox",
                 "Content-Type: application/json", f"Content-Length: {len(data)}",
                 f"Connection: {'keep-alive' if keep else 'close'}",
                 *(f"{name}: {value}" for name, value in headers.items())]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)


_MAX_LINE = 65536
_MAX_HEADERS = 100
_REASONS = {status.value: status.phrase for status in HTTPStatus}


def serve(host: str = "127.0.0.1", port: int = 0, *, execute: bool = True, testnet: bool = True,
          verbose: bool = False, latency_ms: float = 0.0) -> tuple[SandboxServer, str]:
    """Start a sandbox serving in a background thread; return the server (call `shutdown()`) and its URL.

    `latency_ms` delays every answer, as if the API were that far away (benchmarks).
    """
    server = SandboxServer((host, port), Sandbox(execute=execute, testnet=testnet), verbose, latency_ms / 1000)
    bound_port = server.server_address[1]
    url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="tatum-kms-sandbox",
                     daemon=True).start()
    return server, url


def run(port: int = 0, execute: bool = True, testnet: bool = True, verbose: bool = True,
        latency_ms: float = 0.0) -> int:
    """`tatum-kms sandbox`: print the URL (first stdout line), serve until SIGTERM/SIGINT, exit 0."""
    server, url = serve(port=port, execute=execute, testnet=testnet, verbose=verbose, latency_ms=latency_ms)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(url, flush=True)
    sandbox = server.sandbox
    served = ", ".join(sorted(code for ledger in sandbox.ledgers for code in ledger.chains))
    sys.stderr.write(f"sandbox: export TATUM_API_URL={url} (any TATUM_API_KEY is accepted); chains {served}; "
                     f"execute={'on' if sandbox.execute else 'off'}; admin API: GET {url}/sandbox\n")
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0
