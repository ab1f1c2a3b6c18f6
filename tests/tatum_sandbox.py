"""Test helper: a real `tatum-kms sandbox` on 127.0.0.1 and a thin client for its admin API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import requests

import chains
from kms.nodes import ChainNode
from kms.sandbox import serve
from kms.tatum import TatumClient


class Admin:
    """Calls the sandbox's `/sandbox/` endpoints and its public API the way a test needs them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def enqueue(self, pending: dict[str, Any]) -> str:
        response = self.http.post(f"{self.url}/sandbox/pending", json=pending, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def fund(self, address: str, wei: int, chain: str = "eth") -> None:
        response = self.http.post(f"{self.url}/sandbox/{chain.lower()}/fund",
                                  json={"address": address, "wei": str(wei)}, timeout=10)
        assert response.status_code == 200, response.text

    def balance(self, address: str, chain: str = "eth") -> int:
        return int(self.http.get(f"{self.url}/sandbox/{chain.lower()}/balance/{address}", timeout=10).json()["wei"])

    def approve(self, pending_id: str) -> None:
        response = self.http.post(f"{self.url}/sandbox/approvals", json={"id": pending_id}, timeout=10)
        assert response.status_code == 200, response.text

    def fail(self, path: str, status: int | None = None, times: int = 1, delay: float = 0) -> None:
        body: dict[str, Any] = {"path": path, "times": times, "delay": delay}
        if status is not None:
            body["status"] = status
        response = self.http.post(f"{self.url}/sandbox/fail", json=body, timeout=10)
        assert response.status_code == 200, response.text

    def get(self, what: str) -> Any:
        return self.http.get(f"{self.url}/sandbox/{what}", timeout=10).json()

    def count(self, method: str, path: str) -> int:
        return self.get("requests")["counts"].get(f"{method} {path}", 0)


@contextlib.contextmanager
def running_sandbox(**options: Any) -> Iterator[Admin]:
    """A sandbox for the duration of the block; `options` go to `kms.sandbox.serve`."""
    server, url = serve(**options)
    admin = Admin(url)
    try:
        yield admin
    finally:
        admin.http.close()
        server.shutdown()
        server.server_close()


def chain_node(client: TatumClient, code: str, testnet: bool = True) -> ChainNode:
    """The node a daemon's signer for `code` would talk through, over `client`."""
    return ChainNode(client, chains.get(code), testnet, {})
