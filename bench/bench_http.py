"""CPU per keep-alive request of `kms.http.HttpClient` against urllib3 and `http.client`; run by hand:
`.venv/bin/python bench/bench_http.py [--requests N]`.

One thread sends GETs, one after another on one kept-alive connection, to a `tatum-kms sandbox` in its own
process (so the server's work is not counted), and prints each client's CPU time and wall time per request.
The figure behind `kms.http` being hand-written: the daemon makes two requests per transaction.
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import urllib3

from kms.http import HttpClient

KMS = str(Path(sys.executable).parent / "tatum-kms")
PATH = "/v3/kms/0123456789abcdef01234567"  # an unknown pending id: a small 403/404 JSON answer
HEADERS = {"x-api-key": "bench-api-key", "User-Agent": "bench", "Accept": "application/json"}


def measure(send: Callable[[], object], count: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per call of `send`, after a few warm-up calls."""
    for _ in range(50):
        send()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        send()
    return (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    count = parser.parse_args().requests
    sandbox = subprocess.Popen([KMS, "sandbox", "--no-execute", "--quiet"], stdout=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    try:
        url = sandbox.stdout.readline().strip() if sandbox.stdout else ""
        host, port = url.removeprefix("http://").split(":")
        ours = HttpClient(HEADERS)
        pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1)
        plain = http.client.HTTPConnection(host, int(port))

        def with_http_client() -> bytes:
            plain.request("GET", PATH, headers=HEADERS)
            return plain.getresponse().read()

        clients: list[tuple[str, Callable[[], object]]] = [
            ("kms.http.HttpClient", lambda: ours.request("GET", url + PATH).content),
            ("urllib3 2 (HTTPConnectionPool)", lambda: pool.request("GET", PATH, headers=HEADERS).data),
            ("http.client", with_http_client),
        ]
        for name, send in clients:
            cpu, wall = measure(send, count)
            print(f"{name:32} {cpu:6.0f} µs CPU, {wall:6.0f} µs wall per request", flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    main()
