"""The `Node` a chain's signer talks through: its declared endpoints, resolved to Tatum paths or hosts of their own.

A chain names an endpoint ("rpc", "node", "gateway"...); this module turns it into a URL: the Tatum
API path with the API key put in (sent with `x-api-key`), or the chain's own host for the network
(sent without it), or whatever `TATUM_KMS_<CHAIN>_<NAME>_URL` says. Nothing here knows a chain.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chains.base import TATUM, Chain, endpoint_variable
from kms.errors import TatumError

if TYPE_CHECKING:
    from kms.tatum import TatumClient


class ChainNode:
    """A chain's node as signers see it (`chains.base.Node`), over one `TatumClient`."""

    def __init__(self, client: TatumClient, chain: Chain, testnet: bool, env: Mapping[str, str]) -> None:
        self._client = client
        self.chain = chain
        self.testnet = testnet
        self._env = env
        self._constants: dict[tuple[str, str, str], Any] = {}
        self._asking: dict[tuple[str, str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChainNode(chain={self.chain.code!r}, testnet={self.testnet})"

    # -- chains.base.Node ---------------------------------------------------------------------

    def get(self, path: str, *, endpoint: str = TATUM, constant: bool = False) -> Any:
        """GET `path` under `endpoint`; with `constant`, asked once for the node's life (a genesis block)."""
        if constant:
            return self._once(("GET", endpoint, path), lambda: self.get(path, endpoint=endpoint))
        base, on_tatum = self._base(endpoint)
        return self._client.call_json("GET", base + path, on_tatum=on_tatum, safe=True)

    def post(self, path: str, body: Any, *, endpoint: str = TATUM, idempotent: bool = False) -> Any:
        """POST JSON `body` to `path` under `endpoint`; retried only when `idempotent` (or provably unsent)."""
        base, on_tatum = self._base(endpoint)
        return self._client.call_json("POST", base + path, body, on_tatum=on_tatum, safe=idempotent)

    def rpc(self, method: str, params: Sequence[Any] | Mapping[str, Any] = (), *, endpoint: str = "rpc",
            write: bool = False, constant: bool = False) -> Any:
        """JSON-RPC `method` on `endpoint`; returns `result`, raises TatumError on `error`.

        A `write` is never retried once sent; a `constant` answer (a chain id) is asked once.
        """
        if constant:
            return self._once(("RPC", endpoint, method), lambda: self.rpc(method, params, endpoint=endpoint))
        payload = {"jsonrpc": "2.0", "id": 1, "method": method,
                   "params": dict(params) if isinstance(params, Mapping) else list(params)}
        reply = self.post("", payload, endpoint=endpoint, idempotent=not write)
        if not isinstance(reply, dict):
            raise TatumError(f"{method}: the node returned no JSON-RPC object.")
        if reply.get("error") is not None:
            error = reply["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise TatumError(self._client.clean(f"Returned error: {detail}"))
        return reply.get("result")

    # -- plumbing -----------------------------------------------------------------------------

    def _once(self, key: tuple[str, str, str], ask: Any) -> Any:
        """The answer for `key`, asked once for the node's life: lanes asking at the same time wait for one ask."""
        with self._lock:
            if key in self._constants:
                return self._constants[key]
            asking = self._asking.setdefault(key, threading.Lock())
        with asking:
            with self._lock:
                if key in self._constants:
                    return self._constants[key]
            value = ask()  # a failure is not remembered: the next call asks again
            with self._lock:
                self._constants[key] = value
            return value

    def _base(self, name: str) -> tuple[str, bool]:
        """(base URL or Tatum path prefix, whether it is on the Tatum API) of endpoint `name`."""
        if name == TATUM:
            return "", True
        endpoint = self.chain.endpoints.get(name)
        if endpoint is None:
            raise TatumError(f"{self.chain.code} has no '{name}' endpoint.")
        override = self._env.get(endpoint_variable(self.chain.code, name))
        if override:
            return override.rstrip("/"), False
        if endpoint.tatum_path is not None:
            return self._client.key_path(endpoint.tatum_path), True
        url = endpoint.testnet_url if self.testnet else endpoint.mainnet_url
        if not url:
            network = "testnet" if self.testnet else "mainnet"
            raise TatumError(f"{self.chain.code} has no {network} '{name}' endpoint; set "
                             f"{endpoint_variable(self.chain.code, name)}.")
        return url.rstrip("/"), False
