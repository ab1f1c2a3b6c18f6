"""Test helper: an operator's approval server on 127.0.0.1 that answers each pending id as told and records requests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"
#: A complete "200 OK" sent one byte every half second: it would approve, if anyone waited for it all.
TRICKLE = "trickle"
#: "200 OK" with a body that never ends.
ENDLESS = "endless"


class ApprovalServer:
    """`answers` maps a pending id to an HTTP status, HANG (never answer), TRICKLE or ENDLESS; unknown ids
    get 404. `finished` records the ids whose TRICKLE answer was sent to the last byte."""

    def __init__(self, answers: dict[str, int | str]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.finished: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"method": method, "path": self.path,
                                       "body": json.loads(body) if body else None})
                answer = outer.answers.get(self.path.rsplit("/", 1)[-1], 404)
                if answer == HANG:
                    outer.release.wait(30)
                    return
                if answer == TRICKLE:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if outer.release.wait(0.5):
                            return
                    outer.finished.append(self.path.rsplit("/", 1)[-1])
                    return
                if answer == ENDLESS:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
                    self.close_connection = True
                    while not outer.release.is_set():
                        self.wfile.write(b" " * 65536)
                    return
                self.send_response(int(answer))
                if int(answer) in (301, 302):
                    self.send_header("Location", "/approve/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/approve"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
