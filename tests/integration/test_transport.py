"""The daemon's HTTP client (`kms.http`, on socket and ssl), directly and through the Tatum client: TLS with the
operator's CA bundle, proxies from the environment (CONNECT tunnels, plain proxies, NO_PROXY), keep-alive
connections (one the server closed while idle must not lose a broadcast), many threads at once, and
`sent`, which says when a request provably never left."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kms.http import HttpClient, HttpError
from kms.tatum import TatumClient, TatumError
from tests.servers import ConnectProxy, HostileApi, HttpsServer, RawRequest, Reply, Request, TestCa, read_head

API_KEY = "transport-test-key-31c9"


@pytest.fixture
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


def fee(request: Request) -> Reply:
    return Reply(200, {"medium": "7", "seen": request.path, "key": request.headers.get("x-api-key") == API_KEY})


def test_https_is_verified_against_the_ca_bundle_in_the_environment(ca: TestCa,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server = HttpsServer(ca, ("127.0.0.1",), fee)
    try:
        with pytest.raises(TatumError, match="TLS error"):  # an unknown CA is refused
            TatumClient(API_KEY, f"https://127.0.0.1:{server.port}", retries=0).get("/v3/blockchain/fee/ETH")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        client = TatumClient(API_KEY, f"https://127.0.0.1:{server.port}", retries=0)
        assert client.get("/v3/blockchain/fee/ETH") == {"medium": "7", "seen": "/v3/blockchain/fee/ETH", "key": True}
        client.close()
    finally:
        server.close()


def test_https_goes_through_the_connect_proxy_named_by_https_proxy(ca: TestCa,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server = HttpsServer(ca, ("api.tatum.test",), fee)
    proxy = ConnectProxy({"api.tatum.test": server.port})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        client = TatumClient(API_KEY, "https://api.tatum.test", retries=0)  # resolvable only by the proxy
        assert client.get("/v3/blockchain/fee/ETH")["key"] is True
        assert client.get("/v3/blockchain/fee/BTC")["seen"] == "/v3/blockchain/fee/BTC"
        assert len(server.requests) == 2 and proxy.refused == []
        client.close()
    finally:
        proxy.close()
        server.close()


class _Recorder:
    """A plain HTTP server that records request targets (a proxy sees absolute URLs) and headers, and answers
    `{}`; `/redirect` answers 302 to `/elsewhere`."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.peers: set[tuple[str, int]] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                outer.targets.append(self.path)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                outer.peers.add(self.client_address)
                if self.path.endswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    yield server
    server.close()


def test_plain_http_goes_to_the_http_proxy_with_the_absolute_url(recorder: _Recorder,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", recorder.url)
    client = TatumClient(API_KEY, "http://tatum.internal:8080/base", retries=0)
    assert client.get("/v3/blockchain/fee/ETH") == {}
    assert recorder.targets == ["http://tatum.internal:8080/base/v3/blockchain/fee/ETH"]


def test_no_proxy_hosts_are_reached_directly(recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert TatumClient(API_KEY, recorder.url, retries=0).get("/v3/x") == {}
    assert recorder.targets == ["/v3/x"]




class _RawReplies:
    """Answers each request with the next canned raw response; closes the connection after one that
    says `Connection: close` or is HTTP/1.0 (whose body then ends with the connection), or, with
    `idle_close`, that many seconds after every response, as load balancers close idle connections."""

    def __init__(self, replies: list[bytes], idle_close: float | None = None) -> None:
        self.replies = list(replies)
        self.idle_close = idle_close
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while self.replies:
                data = read_head(conn)
                if data is None:
                    return
                self.requests.append(data.split(b"\r\n", 1)[0])
                reply = self.replies.pop(0)
                conn.sendall(reply)
                if b"Connection: close" in reply or reply.startswith(b"HTTP/1.0"):
                    return
                if self.idle_close is not None:
                    time.sleep(self.idle_close)
                    return

    def close(self) -> None:
        self._listener.close()


#: One response framed each way: chunked (with an extension and a trailer), Content-Length then close,
#: HTTP/1.0 ended by the close, an interim 100 before a 204, and a keep-alive Content-Length.
FRAMINGS = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\nX-Trailer: y\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"b\": 2}",
    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"c\": 3}",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"d\": 4}",
]


def test_chunked_close_delimited_and_keep_alive_responses_are_all_read_whole() -> None:
    server = _RawReplies(FRAMINGS)
    try:
        client = TatumClient(API_KEY, server.url, retries=0)
        assert client.get("/1") == {"a": 1}
        assert client.get("/2") == {"b": 2}
        assert client.get("/3") == {"c": 3}
        assert client.get("/4") is None
        assert client.get("/5") == {"d": 4}
        assert server.connections == 3  # reused after the chunked reply and the 204, not after close/EOF
    finally:
        server.close()


def test_a_response_cut_short_is_a_lost_connection_and_a_broadcast_is_not_resent() -> None:
    server = _RawReplies([b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{\"txId\":"])
    try:
        client = TatumClient(API_KEY, server.url, retries=3, backoff=0.01)
        with pytest.raises(TatumError, match="connection lost"):
            client.broadcast("/v3/ethereum/broadcast", {"txData": "0x00"})
        assert server.connections == 1
    finally:
        server.close()


def test_a_broadcast_after_the_server_closed_the_idle_connection_is_sent_once_on_a_new_one() -> None:
    ok = b'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 15\r\n\r\n{"txId": "0x1"}'
    server = _RawReplies([ok, ok], idle_close=0.05)
    try:
        client = TatumClient(API_KEY, server.url, retries=0)
        assert client.get("/v3/kms/pending") == {"txId": "0x1"}
        time.sleep(0.3)  # the server has closed the connection by now
        assert client.broadcast("/v3/ethereum/broadcast", {"txData": "0x00"}) == {"txId": "0x1"}
        assert server.requests == [b"GET /v3/kms/pending HTTP/1.1", b"POST /v3/ethereum/broadcast HTTP/1.1"]
        assert server.connections == 2
    finally:
        server.close()


# -- the client itself ---------------------------------------------------------------------------


def test_lower_case_proxy_variables_win_and_all_proxy_is_the_fallback(recorder: _Recorder,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", recorder.url)
    client = HttpClient()
    assert client.request("GET", "http://tatum.internal/a").status_code == 200
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy")
    monkeypatch.setenv("ALL_PROXY", recorder.url.removeprefix("http://"))  # no scheme: http:// is meant
    assert HttpClient().request("GET", "http://tatum.internal/b").status_code == 200
    assert recorder.targets == ["http://tatum.internal/a", "http://tatum.internal/b"]


def test_proxy_credentials_in_the_url_are_sent_to_the_proxy(recorder: _Recorder,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", recorder.url.replace("http://", "http://ops%40corp:p%3Ass@"))
    HttpClient().request("GET", "http://tatum.internal/x")
    assert recorder.headers[0]["proxy-authorization"] == "Basic " + base64.b64encode(b"ops@corp:p:ss").decode()


def test_a_tunnel_the_proxy_refuses_never_sent_the_request(ca: TestCa, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ConnectProxy({})  # tunnels nothing
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        with pytest.raises(HttpError) as caught:
            HttpClient().request("POST", "https://api.tatum.test/v3/ethereum/broadcast", b"{}")
        assert caught.value.reason == "the proxy refused the tunnel (HTTP 403)"
        assert caught.value.sent is False  # so a broadcast may be retried
        assert proxy.refused == ["api.tatum.test:443"]
    finally:
        proxy.close()


def test_redirects_are_returned_not_followed(recorder: _Recorder) -> None:
    response = HttpClient().request("GET", f"{recorder.url}/redirect")
    assert response.status_code == 302 and response.headers.get("location") == "/elsewhere"
    assert recorder.targets == ["/redirect"]


def test_many_threads_share_one_pool_per_host(recorder: _Recorder) -> None:
    client = HttpClient(pool_size=4)
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda n: client.request("GET", f"{recorder.url}/n/{n}"), range(400)))
    assert [r.content for r in replies] == [b"{}"] * 400
    assert sorted(recorder.targets) == sorted(f"/n/{n}" for n in range(400))
    # Connections are kept and reused, never more than pool_size of them at once to one host.
    assert len(recorder.peers) <= 4
    client.close()
    assert client.request("GET", f"{recorder.url}/after-close").status_code == 200  # it reconnects


def _silent() -> HostileApi:
    """A server that reads every request and never answers (until closed)."""
    server = HostileApi()

    def hang(conn: socket.socket, request: RawRequest) -> bool:
        while not server.stopped:
            time.sleep(0.05)
        return False

    server.routes = _AnyRoute(hang)
    return server


class _AnyRoute(dict):  # type: ignore[type-arg]
    """A route table that gives every request the same behaviour."""

    def __init__(self, behaviour: object) -> None:
        super().__init__()
        self.behaviour = behaviour

    def get(self, key: object, default: object = None) -> object:
        return self.behaviour


def test_sent_is_false_only_when_nothing_of_the_request_was_written() -> None:
    refused = socket.create_server(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()
    with pytest.raises(HttpError) as caught:
        HttpClient().request("POST", f"http://127.0.0.1:{port}/v3/x", b"{}")
    assert (caught.value.reason, caught.value.sent) == ("connection refused", False)

    with pytest.raises(HttpError) as caught:  # unresolvable: .invalid never resolves (RFC 6761)
        HttpClient().request("POST", "http://tatum-kms.invalid/v3/x", b"{}")
    assert (caught.value.reason, caught.value.sent) == ("could not resolve the host name", False)

    silent = _silent()
    try:
        with pytest.raises(HttpError) as caught:
            HttpClient(read_timeout=0.3).request("POST", f"{silent.url}/v3/x", b"{}")
        assert caught.value.sent is True and caught.value.timed_out
        assert caught.value.reason == "timed out after 0.3 s waiting for the server"
    finally:
        silent.close()


def test_error_texts_name_the_failure_never_the_url_or_headers(ca: TestCa) -> None:
    secret = "k3y-in-the-path-0b7e"
    server = HttpsServer(ca, ("127.0.0.1",), fee)  # its CA is not trusted here
    silent = _silent()
    try:
        failures = []
        for url, client in [(f"https://127.0.0.1:{server.port}/v3/web3/{secret}", HttpClient()),
                            (f"{silent.url}/v3/web3/{secret}", HttpClient(deadline=0.3)),
                            (f"http://tatum-kms.invalid/v3/web3/{secret}", HttpClient())]:
            with pytest.raises(HttpError) as caught:
                client.request("GET", url, headers={"x-api-key": secret})
            failures.append(caught.value)
        assert [f.reason for f in failures] == ["TLS error (certificate verify failed)",
                                                "timed out: no complete response within the 0.3 s deadline",
                                                "could not resolve the host name"]
        for failure in failures:
            assert secret not in str(failure) + repr(failure) + repr(failure.__cause__) + repr(failure.__context__)
    finally:
        server.close()
        silent.close()


def test_a_bad_url_or_ca_bundle_is_an_http_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for url in ("ftp://example.org/x", "http:///no-host", "not a url"):
        with pytest.raises(HttpError, match="must be http:// or https:// with a host"):
            HttpClient().request("GET", url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", f"{tmp_path}/missing.pem")
    with pytest.raises(HttpError, match="cannot read the CA bundle"):
        HttpClient()


def test_a_full_pool_makes_a_request_wait_for_a_connection_only_within_its_deadline() -> None:
    server = HostileApi()

    def slow(conn: socket.socket, request: RawRequest) -> bool:
        time.sleep(0.8)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        return True

    server.routes = _AnyRoute(slow)
    client = HttpClient(pool_size=1)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(client.request, "GET", f"{server.url}/slow")
            time.sleep(0.2)  # the only connection is busy now
            with pytest.raises(HttpError) as caught:
                client.request("GET", f"{server.url}/next", deadline=0.3)
            assert caught.value.reason == "no free connection to the host within 0.3 s"
            assert caught.value.sent is False and caught.value.timed_out
            assert first.result().status_code == 200
        assert client.request("GET", f"{server.url}/then").status_code == 200  # the connection came back
        assert server.requests == ["GET /slow", "GET /then"]
    finally:
        server.close()


def test_a_compressed_answer_is_inflated_within_the_cap() -> None:
    import gzip
    import zlib

    body = b'{"medium": "7"}'
    bomb = gzip.compress(b" " * (2 * 2**20))
    server = _RawReplies([
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(body))
        + gzip.compress(body),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(zlib.compress(body))
        + zlib.compress(body),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb,
    ])
    try:
        client = HttpClient(max_response_bytes=2**20)
        assert client.request("GET", f"{server.url}/gzip").content == body
        assert client.request("GET", f"{server.url}/deflate").content == body
        with pytest.raises(HttpError) as caught:  # 2 MiB of spaces in 2 KiB: inflated only up to the cap
            client.request("GET", f"{server.url}/bomb")
        assert caught.value.too_large and caught.value.reason == "response larger than 1 MiB"
    finally:
        server.close()


def test_an_https_proxy_for_https_requests_is_refused_before_anything_is_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://127.0.0.1:9")
    with pytest.raises(HttpError) as caught:
        HttpClient().request("POST", "https://api.tatum.test/v3/ethereum/broadcast", b"{}")
    assert caught.value.sent is False and "use an http:// proxy" in caught.value.reason


def test_the_target_keeps_its_query_and_drops_its_fragment_and_a_bad_header_never_leaves(recorder: _Recorder) -> None:
    client = HttpClient()
    for url in (f"{recorder.url}/v3/a?x=1&y=%2F#frag", f"{recorder.url}?only=query", recorder.url):
        assert client.request("GET", url).status_code == 200
    assert recorder.targets == ["/v3/a?x=1&y=%2F", "/?only=query", "/"]
    for bad in ({"x-api-key": "key\r\nX-Injected: 1"}, {"bad name": "v"}):
        with pytest.raises(HttpError) as caught:
            client.request("GET", f"{recorder.url}/v3/b", headers=bad)
        assert caught.value.sent is False and caught.value.reason.startswith("the request could not be made")
    with pytest.raises(HttpError, match="could not be made"):
        client.request("GET", f"{recorder.url}/v3/c d")
    with pytest.raises(HttpError, match="could not be made"):
        HttpClient({"x-api-key": "key\nX-Injected: 1"})
    assert recorder.targets == ["/v3/a?x=1&y=%2F", "/?only=query", "/"]
