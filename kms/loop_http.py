"""An `HttpClient`'s requests made on an asyncio event loop: the daemon's four-eye checks and broadcasts.

The same routes, proxies, CA bundle, request heads, limits, response parser and errors as `kms.http`; only
the waiting differs. A new connection (TCP, the proxy's tunnel, TLS) is made on a worker thread by the
client's own code; its socket is then non-blocking and read when the loop says it is readable.

Why not threads (issue 10; `bench/bench_http.py`, 32 requests in flight to a sandbox in its own process, on 2
cores): on 32 threads sharing an `HttpClient` a request costs 109 µs of CPU, most of it handing the
interpreter lock from thread to thread; on one loop it costs 49 µs. In the daemon (`bench/bench_daemon.py`,
1,000 transactions at 0 ms) that took 1.05 ms of CPU per transaction to 0.62, and 1,190 tx/s to ~2,200.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, TypeVar

from kms.http import (
    _READ_SIZE,
    HttpClient,
    HttpError,
    Reading,
    Response,
    _Clock,
    _Connection,
    _Expired,
    _Slots,
    failure,
    no_free_connection,
)

_T = TypeVar("_T")


class LoopHttp:
    """Requests through `client`'s settings on the running event loop; use it from one loop only.

    Each host gets up to `client.pool_size` keep-alive connections of its own (not shared with `client`'s
    threads); a request finding them all busy waits for one within its deadline.
    """

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self._pools: dict[tuple[Any, ...], _LoopPool] = {}

    def __repr__(self) -> str:
        return f"LoopHttp({self.client!r})"

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None, *, deadline: float | None = None) -> Response:
        """As `HttpClient.request`, awaited: the whole response (any status), or HttpError."""
        client = self.client
        clock, route, data = client._begin(method, url, body, headers, deadline)  # noqa: SLF001 - shared
        pool = self._pools.get(route.key)
        if pool is None:
            pool = self._pools[route.key] = _LoopPool(client.pool_size)
        loop = asyncio.get_running_loop()
        conn = await pool.acquire(clock, loop)
        keep = wrote = False
        try:
            if conn is None:
                conn = await loop.run_in_executor(None, client._connect, route, clock)  # noqa: SLF001
                conn.sock.setblocking(False)
            wrote = True
            await _send(loop, conn, data, clock)
            response, keep = await _receive(loop, conn, conn.reading(method, client.max_response_bytes), clock)
            return response
        except (HttpError, _Expired, OSError) as exc:
            raise failure(exc, clock, sent=wrote) from None
        finally:
            pool.release(conn, keep)

    def close(self) -> None:
        """Close every pooled connection (callable from any thread once the loop is done with them)."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class _LoopPool(_Slots):
    """`_Slots` on one event loop: a request finding them all in use waits for one within its deadline."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def acquire(self, clock: _Clock, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        """An idle connection still open, or None with a slot reserved for a new one."""
        while True:
            got, conn = self.take()
            if got:
                return conn
            left = clock.due - time.monotonic()
            if left <= 0:
                raise no_free_connection(clock)
            turn = loop.create_future()
            self.waiting.append(turn)
            timer = loop.call_later(left, _settle, turn)
            try:
                await turn
            finally:
                timer.cancel()

    def release(self, conn: _Connection | None, keep: bool) -> None:
        self.put(conn, keep)
        while self.waiting:  # the longest waiting request still waiting takes its turn
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                break

    def close(self) -> None:
        for conn in self.drain():
            conn.close()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, write: bool, clock: _Clock) -> None:
    """Wait until `fd` can be read (or written), within the request's read timeout and deadline."""
    timeout = clock.limit(clock.read)
    ready = loop.create_future()
    if write:
        loop.add_writer(fd, _settle, ready)
    else:
        loop.add_reader(fd, _settle, ready)
    timer = loop.call_later(timeout, _expire, ready)
    try:
        await ready
    finally:
        timer.cancel()
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _send(loop: asyncio.AbstractEventLoop, conn: _Connection, data: bytes, clock: _Clock) -> None:
    sock = conn.sock
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except (BlockingIOError, ssl.SSLWantWriteError):
            await _ready(loop, sock.fileno(), True, clock)
        except ssl.SSLWantReadError:
            await _ready(loop, sock.fileno(), False, clock)


async def _receive(loop: asyncio.AbstractEventLoop, conn: _Connection, reading: Reading[_T], clock: _Clock) -> _T:
    """Drive a `_Connection.reading` parser with the loop's reads; its result."""
    sock = conn.sock
    buffered = sock.pending if isinstance(sock, ssl.SSLSocket) else None  # TLS bytes already decrypted
    more: bool | None = None
    try:
        while True:
            reading.send(more)
            while True:
                if not (buffered and buffered()):
                    await _ready(loop, sock.fileno(), False, clock)
                try:
                    data = sock.recv(_READ_SIZE)
                    break
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                except ssl.SSLWantWriteError:
                    await _ready(loop, sock.fileno(), True, clock)
            if data:
                conn.buffer += data
            more = bool(data)
    except StopIteration as done:
        return done.value
