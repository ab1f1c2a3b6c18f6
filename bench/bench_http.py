"""CPU per keep-alive request of `kms.http.HttpClient` against urllib3 and `http.client`; run by hand:
`.venv/bin/python bench/bench_http.py [--requests N]`.

One thread sends GETs, one after another on one kept-alive connection, to a `tatum-kms sandbox` in its own
process (so the server's work is not counted), and prints each client's CPU time and wall time per request.
The figure behind `kms.http` being hand-written: the daemon makes two requests per transaction.

Then 32 requests in flight at once, as the daemon has them: `HttpClient` on 32 threads against
`kms.loop_http.LoopHttp` on one event loop (the figure behind the daemon's event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import urllib3

from kms.http import HttpClient
from kms.loop_http import LoopHttp

IN_FLIGHT = 32

KMS = str(Path(sys.executable).parent / "tatum-kms")
PATH = "/v3/kms/0123456789abcdef01234567"  # an unknown pending id: a small 403/404 JSON answer
HEADERS = {"x-api-key": "bench-api-key", "User-Agent": "bench", "Accept": "application/json"}


def measure(send: Callable[[], object], count: int, warmup: int = 50) -> tuple[float, float]:
    """(CPU µs, wall µs) per call of `send`, after `warmup` calls."""
    for _ in range(warmup):
        send()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        send()
    return (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def on_threads(url: str) -> Callable[[int], object]:
    """Send `n` GETs, IN_FLIGHT at a time, each on a thread of a pool sharing one HttpClient."""
    client = HttpClient(HEADERS)
    pool = ThreadPoolExecutor(IN_FLIGHT)
    return lambda n: list(pool.map(lambda _: client.request("GET", url).content, range(n)))


def on_a_loop(url: str) -> Callable[[int], object]:
    """Send `n` GETs, IN_FLIGHT at a time, as coroutines on one event loop sharing one LoopHttp."""
    http = LoopHttp(HttpClient(HEADERS))
    loop = asyncio.new_event_loop()

    async def send_all(n: int) -> None:
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                await http.request("GET", url)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))

    return lambda n: loop.run_until_complete(send_all(n))


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
        for name, send_all in ((f"HttpClient, {IN_FLIGHT} threads", on_threads(url + PATH)),
                               (f"LoopHttp, {IN_FLIGHT} coroutines", on_a_loop(url + PATH))):
            per = IN_FLIGHT * 10
            cpu, wall = measure(partial(send_all, per), max(1, count // per), warmup=2)
            print(f"{name:32} {cpu / per:6.0f} µs CPU, {wall / per:6.0f} µs wall per request", flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    main()
