"""The daemon's requests on its event loop (`kms.loop_http`, via `TatumClient.broadcast_async` and
`kms.approval.check_async`) against real servers: the operator's CA bundle, a CONNECT proxy and a plain
proxy still honoured, responses framed every way read whole, a broadcast cut short or sent after the server
closed an idle connection sent once, a trickling server cut off at the deadline, and a pool that never opens
more connections to a host than it may."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kms import approval
from kms.http import HttpClient, HttpError
from kms.loop_http import LoopHttp
from kms.tatum import TatumClient, TatumError
from tests.integration.test_transport import FRAMINGS, _RawReplies, _Recorder
from tests.servers import ConnectProxy, HttpsServer, Reply, Request, TestCa, read_head

API_KEY = "loop-transport-key-77e0"
OK = b'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 15\r\n\r\n{"txId": "0x1"}'


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    yield server
    server.close()


def broadcast(client: TatumClient, count: int = 1) -> list[Any]:
    """`count` broadcasts at once on one event loop; each answer, or the TatumError it raised."""
    async def all_at_once() -> list[Any]:
        calls = [client.broadcast_async("/v3/ethereum/broadcast", {"txData": f"0x{n:02x}"}) for n in range(count)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        return asyncio.run(all_at_once())
    finally:
        client.close()


def echo(request: Request) -> Reply:
    return Reply(200, {"txId": "0xabc", "path": request.path, "key": request.headers.get("x-api-key") == API_KEY})


def test_https_broadcasts_are_verified_against_the_ca_bundle_in_the_environment(
        ca: TestCa, monkeypatch: pytest.MonkeyPatch) -> None:
    server = HttpsServer(ca, ("127.0.0.1",), echo)
    try:
        refused = broadcast(TatumClient(API_KEY, f"https://127.0.0.1:{server.port}", retries=0))[0]
        assert isinstance(refused, TatumError) and "TLS error (certificate verify failed)" in str(refused)
        assert server.requests == []  # nothing was sent over an unverified connection
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        answers = broadcast(TatumClient(API_KEY, f"https://127.0.0.1:{server.port}", retries=0), count=5)
        assert answers == [{"txId": "0xabc", "path": "/v3/ethereum/broadcast", "key": True}] * 5
    finally:
        server.close()


def test_https_broadcasts_go_through_the_connect_proxy_named_by_https_proxy(
        ca: TestCa, monkeypatch: pytest.MonkeyPatch) -> None:
    server = HttpsServer(ca, ("api.tatum.test",), echo)
    proxy = ConnectProxy({"api.tatum.test": server.port})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        answers = broadcast(TatumClient(API_KEY, "https://api.tatum.test", retries=0), count=3)  # only the proxy
        assert [answer["key"] for answer in answers] == [True] * 3                           # resolves the host
        assert len(server.requests) == 3 and proxy.refused == []
    finally:
        proxy.close()
        server.close()


def test_plain_http_approval_checks_go_to_the_http_proxy_with_the_absolute_url(
        recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", recorder.url)
    approval.close()  # the checks' clients read the environment when they are made
    try:
        verdict = asyncio.run(approval.check_async({"id": "tx-1"}, "http://approvals.internal/ok"))
    finally:
        approval.close()
    assert verdict.approved and verdict.reason == "approved (HTTP 200)"
    assert recorder.targets == ["http://approvals.internal/ok/tx-1"]


def test_chunked_close_delimited_and_keep_alive_responses_are_all_read_whole() -> None:
    server = _RawReplies(FRAMINGS)
    http = LoopHttp(HttpClient())

    async def one_after_another() -> list[tuple[int, bytes]]:
        answers = []
        for n in range(1, 6):
            response = await http.request("GET", f"{server.url}/{n}")
            answers.append((response.status_code, response.content))
        return answers

    try:
        assert asyncio.run(one_after_another()) == [(200, b'{"a": 1}'), (200, b'{"b": 2}'), (200, b'{"c": 3}'),
                                                    (204, b""), (200, b'{"d": 4}')]
        assert server.connections == 3  # reused after the chunked reply and the 204, not after close/EOF
    finally:
        http.close()
        server.close()


def test_a_broadcast_cut_short_is_a_lost_connection_and_is_not_resent() -> None:
    server = _RawReplies([b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{\"txId\":"])
    try:
        failed = broadcast(TatumClient(API_KEY, server.url, retries=3, backoff=0.01))[0]
        assert isinstance(failed, TatumError) and "connection lost" in str(failed) and failed.sent
        assert server.connections == 1 and len(server.requests) == 1
    finally:
        server.close()


def test_a_broadcast_after_the_server_closed_the_idle_connection_is_sent_once_on_a_new_one() -> None:
    server = _RawReplies([OK, OK], idle_close=0.05)
    client = TatumClient(API_KEY, server.url, retries=0)

    async def two_apart() -> list[Any]:
        first = await client.broadcast_async("/v3/ethereum/broadcast", {"txData": "0x01"})
        await asyncio.sleep(0.3)  # the server has closed the connection by now
        return [first, await client.broadcast_async("/v3/ethereum/broadcast", {"txData": "0x02"})]

    try:
        assert asyncio.run(two_apart()) == [{"txId": "0x1"}, {"txId": "0x1"}]
        assert server.requests == [b"POST /v3/ethereum/broadcast HTTP/1.1"] * 2
        assert server.connections == 2
    finally:
        client.close()
        server.close()


class _Trickle:
    """Reads a request, then sends a response one byte every `pause` seconds, forever."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            read_head(conn)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b" " * 1000000:
                    conn.sendall(bytes([byte]))
                    time.sleep(self.pause)
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline() -> None:
    server = _Trickle(0.05)
    http = LoopHttp(HttpClient(read_timeout=5, deadline=0.6))
    started = time.monotonic()
    try:
        with pytest.raises(HttpError, match="timed out: no complete response within the 0.6 s deadline") as caught:
            asyncio.run(http.request("POST", f"{server.url}/v3/ethereum/broadcast", b"{}"))
        assert caught.value.sent and caught.value.timed_out
        assert time.monotonic() - started < 2
    finally:
        http.close()
        server.close()


def test_a_busy_pool_opens_no_more_connections_than_its_size_and_waits_only_within_the_deadline() -> None:
    class SlowServer(_RawReplies):
        def _serve(self, conn: socket.socket) -> None:
            with conn:
                while read_head(conn) is not None:
                    time.sleep(0.2)
                    conn.sendall(OK)

    server = SlowServer([OK])
    http = LoopHttp(HttpClient(pool_size=2))

    async def at_once(*deadlines: float) -> list[Any]:
        calls = [http.request("GET", f"{server.url}/{n}", deadline=limit) for n, limit in enumerate(deadlines)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        started = time.monotonic()
        answers = asyncio.run(at_once(*[5.0] * 6))
        assert [answer.status_code for answer in answers] == [200] * 6
        assert server.connections == 2 and time.monotonic() - started >= 0.6  # three rounds of two
        first, second, *late = asyncio.run(at_once(5, 5, 0.1, 0.1, 0.1, 0.1))  # the pool frees up after 0.2 s
        assert first.status_code == second.status_code == 200
        assert all(isinstance(answer, HttpError) and answer.reason.startswith("no free connection")
                   and not answer.sent for answer in late)  # never sent: safe to send again
        assert server.connections == 2
    finally:
        http.close()
        server.close()
