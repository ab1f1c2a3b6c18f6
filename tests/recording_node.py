"""A `chains.base.Node` that answers from a table and records every call, to prove which node calls a signer makes.

Answers are keyed by what is asked: a JSON-RPC method name, `GET <path>` or `POST <path>`, optionally
prefixed with the endpoint (`rpc:eth_chainId`, `node:GET /blocks/best`); an unprefixed key answers on
any endpoint. A call with no answer raises KeyError naming it, so a test sees an unexpected call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chains.base import TATUM


class RecordingNode:
    """Answers node calls from `answers` (values, or callables given the call's params/body) and records them."""

    def __init__(self, answers: Mapping[str, Any] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, Any]] = []

    def _answer(self, endpoint: str, key: str, argument: Any) -> Any:
        self.calls.append((key, argument))
        for candidate in (f"{endpoint}:{key}", key):
            if candidate in self.answers:
                answer = self.answers[candidate]
                return answer(argument) if isinstance(answer, Callable) else answer  # type: ignore[arg-type]
        raise KeyError(f"unexpected node call {endpoint}:{key}")

    def rpc(self, method: str, params: Sequence[Any] | Mapping[str, Any] = (), *, endpoint: str = "rpc",
            write: bool = False, constant: bool = False) -> Any:
        return self._answer(endpoint, method, params)

    def get(self, path: str, *, endpoint: str = TATUM, constant: bool = False) -> Any:
        return self._answer(endpoint, f"GET {path}", None)

    def post(self, path: str, body: Any, *, endpoint: str = TATUM, idempotent: bool = False) -> Any:
        return self._answer(endpoint, f"POST {path}", body)

    def methods(self) -> list[str]:
        """What was asked, in order (method names and `GET/POST path` keys)."""
        return [key for key, _ in self.calls]
