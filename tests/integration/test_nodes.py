"""A chain's endpoints as the daemon resolves them: Tatum proxies carry the API key, a chain's own host never sees it,
and `TATUM_KMS_<CHAIN>_<NAME>_URL` points an endpoint elsewhere."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chains.base import ChainBase, Endpoint
from kms.errors import TatumError
from kms.nodes import ChainNode
from kms.tatum import TatumClient

API_KEY = "nodes-test-key-0c7d2a"


@dataclass(frozen=True)
class TwoEndpointChain(ChainBase):
    code: str = "VET"
    broadcast_path: str = "/v3/vet/broadcast"

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return {"rpc": Endpoint(tatum_path="/v3/vet/web3/{api_key}"),
                "node": Endpoint(mainnet_url="https://sync-mainnet.invalid", testnet_url="https://sync-testnet.invalid")}


class Recorder(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records (method, path, x-api-key, body) and answers {"ok": true}."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.seen.append((self.command, self.path, self.headers.get("x-api-key"), body))
                rpc = isinstance(body, dict) and "jsonrpc" in body
                data = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x27"} if rpc else {"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's handler names

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_tatum_proxy_carries_the_key_and_a_chains_own_host_never_does(recorder: Recorder) -> None:
    client = TatumClient(API_KEY, recorder.url, backoff=0.01)
    env = {"TATUM_KMS_VET_NODE_URL": recorder.url + "/thor/"}
    node = ChainNode(client, TwoEndpointChain(), True, env)
    try:
        assert node.rpc("eth_chainId", [], constant=True) == "0x27"
        assert node.rpc("eth_chainId", [], constant=True) == "0x27"
        assert node.get("/blocks/best", endpoint="node") == {"ok": True}
        assert node.post("/accounts/*", {"clauses": []}, endpoint="node", idempotent=True) == {"ok": True}
    finally:
        client.close()
    rpc, best, accounts = recorder.seen
    assert rpc[:3] == ("POST", f"/v3/vet/web3/{API_KEY}", API_KEY) and rpc[3]["method"] == "eth_chainId"
    assert best == ("GET", "/thor/blocks/best", None, None)
    assert accounts == ("POST", "/thor/accounts/*", None, {"clauses": []})


def test_an_endpoint_without_a_host_for_the_network_names_the_variable_to_set(recorder: Recorder) -> None:
    chain = TwoEndpointChain()
    node = ChainNode(TatumClient(API_KEY, recorder.url), chain, False, {})
    with pytest.raises(TatumError, match="no 'gateway' endpoint"):
        node.get("/x", endpoint="gateway")
    bare = ChainNode(TatumClient(API_KEY, recorder.url), TwoEndpointChain(code="ONE"), False,
                     {"TATUM_KMS_ONE_NODE_URL": "ftp://nowhere"})
    with pytest.raises(TatumError, match="must be http"):
        bare.get("/x", endpoint="node")


def test_a_constant_asked_by_many_lanes_at_once_is_asked_once(recorder: Recorder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = TatumClient(API_KEY, recorder.url, backoff=0.01)
    node = ChainNode(client, TwoEndpointChain(), True, {"TATUM_KMS_VET_NODE_URL": recorder.url})
    try:
        with ThreadPoolExecutor(8) as lanes:
            answers = list(lanes.map(lambda _: node.get("/blocks/0", endpoint="node", constant=True), range(16)))
    finally:
        client.close()
    assert answers == [{"ok": True}] * 16
    assert [seen[1] for seen in recorder.seen] == ["/blocks/0"]
