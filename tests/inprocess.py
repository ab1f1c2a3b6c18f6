"""The Tatum client's interface answered by an in-process `Sandbox`: no sockets, for tests that are not about HTTP.

`InProcessClient` speaks to `Sandbox.handle` exactly what `kms.tatum.TatumClient` sends over the wire
(paths, JSON bodies, the API key header), so the daemon and the chains' node calls run unchanged and fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import chains
from chains.base import endpoint_variable
from kms.errors import TatumError
from kms.nodes import ChainNode
from kms.sandbox.api import Sandbox
from kms.tatum import error_report

API_KEY = "in-process-test-key-4b1e"

_THREADS = ThreadPoolExecutor(64, thread_name_prefix="in-process")  # more than any test has calls at once


async def on_a_thread(call: Callable[..., Any], *args: Any) -> Any:
    """Await a blocking test double's `call(*args)` on a thread of its own pool (not the loop's small one)."""
    return await asyncio.get_running_loop().run_in_executor(_THREADS, call, *args)


class InProcessClient:
    """`TatumClient`'s methods (pending, broadcast, report_errors, call_json) on an in-process sandbox."""

    def __init__(self, sandbox: Sandbox, api_key: str = API_KEY) -> None:
        self.sandbox = sandbox
        self.api_key = api_key

    def _call(self, method: str, path: str, body: Any = None, *, key: bool = True) -> Any:
        headers = {"x-api-key": self.api_key} if key else {}
        data = b"" if body is None else json.dumps(body).encode()
        reply = self.sandbox.handle(method, path, headers, data)
        if not 200 <= reply.status < 300:
            text = json.dumps(reply.body)
            raise TatumError(self.clean(f"{method} {path} failed with HTTP {reply.status}: {text}"),
                             status=reply.status, report=error_report(text))
        return json.loads(json.dumps(reply.body))  # what a JSON round trip would give

    def pending(self, chain: str, signature_ids: list[str]) -> Any:
        return self._call("POST", f"/v3/kms/pending/{chain}", {"signatureIds": list(signature_ids)})

    def broadcast(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    async def broadcast_async(self, path: str, body: dict[str, Any]) -> Any:
        """`broadcast` on a thread, as a subclass's `broadcast` may sleep or block."""
        return await on_a_thread(self.broadcast, path, body)

    def report_errors(self, errors: list[dict[str, Any]]) -> None:
        self._call("POST", "/v3/tatum/kms/batch", {"errors": errors})

    def call_json(self, method: str, path: str, body: Any = None, *, on_tatum: bool = True, safe: bool) -> Any:
        return self._call(method, path, body, key=on_tatum)

    def key_path(self, template: str) -> str:
        return template.replace("{api_key}", self.api_key)

    def clean(self, text: str) -> str:
        return " ".join(text.replace(self.api_key, "***").split())

    def close(self) -> None:
        pass


def foreign_endpoints(code: str, base: str = "") -> dict[str, str]:
    """The environment that points a chain's own-host endpoints at the sandbox (`base` + /node/{CHAIN}/{name})."""
    chain = chains.get(code)
    return {endpoint_variable(code, name): f"{base}/node/{code}/{name}"
            for name, endpoint in chain.endpoints.items() if endpoint.tatum_path is None}


def in_process_node(sandbox: Sandbox, code: str, testnet: bool, env: Mapping[str, str] | None = None) -> ChainNode:
    """A chain's node whose every call is answered by `sandbox`."""
    return ChainNode(InProcessClient(sandbox), chains.get(code), testnet, {**foreign_endpoints(code), **(env or {})})  # type: ignore[arg-type]
