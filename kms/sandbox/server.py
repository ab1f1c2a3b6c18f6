"""HTTP plumbing for the sandbox: a threading server on 127.0.0.1, `serve()` for tests and `main()` for the CLI."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kms.sandbox.api import Sandbox, redact_path


class SandboxServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the `Sandbox` its handlers answer from."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.sandbox = sandbox
        self.verbose = verbose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tatum-kms-sandbox"
    disable_nagle_algorithm = True  # headers and body are two writes: without this, keep-alive stalls 40 ms
    timeout = 60
    server: SandboxServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.sandbox.handle(method, self.path, self.headers, body)
            status, payload, headers = reply.status, reply.body, reply.headers
        except Exception as exc:  # a sandbox bug must not kill the connection silently
            status, headers = 500, {}
            payload = {"statusCode": 500, "errorCode": "sandbox.internal", "message": type(exc).__name__}
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            line = redact_path(self.path) if hasattr(self, "path") else ""
            message = (format % args).replace(self.path, line) if line else format % args
            sys.stderr.write(f"sandbox: {message}\n")


def serve(host: str = "127.0.0.1", port: int = 0, *, execute: bool = True, testnet: bool = True,
          verbose: bool = False) -> tuple[SandboxServer, str]:
    """Start a sandbox serving in a background thread; return the server (call `shutdown()`) and its URL."""
    server = SandboxServer((host, port), Sandbox(execute=execute, testnet=testnet), verbose)
    bound_port = server.server_address[1]
    url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="tatum-kms-sandbox",
                     daemon=True).start()
    return server, url


def main(argv: list[str] | None = None) -> int:
    """`tatum-kms sandbox`: print the URL (first stdout line), serve until SIGTERM/SIGINT, exit 0."""
    parser = argparse.ArgumentParser(prog="tatum-kms sandbox", description="A local Tatum-compatible API.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-execute", action="store_true",
                        help="ETH broadcasts are decoded and their signature recovered, not executed")
    parser.add_argument("--mainnet", action="store_true", help="verify Stellar signatures for the public network")
    parser.add_argument("--quiet", action="store_true", help="do not log requests on stderr")
    args = parser.parse_args(argv)

    server, url = serve(port=args.port, execute=not args.no_execute, testnet=not args.mainnet,
                        verbose=not args.quiet)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(url, flush=True)
    sandbox = server.sandbox
    sys.stderr.write(f"sandbox: export TATUM_API_URL={url} (any TATUM_API_KEY is accepted); "
                     f"ETH chain id {sandbox.evm.chain_id}, execute={'on' if sandbox.evm.execute else 'off'}; "
                     f"admin API: GET {url}/sandbox\n")
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0
