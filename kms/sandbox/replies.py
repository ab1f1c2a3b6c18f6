"""What the sandbox's routes return: a `Reply`, or a `Rejected` that becomes a Tatum-style error body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """An HTTP answer: status, a JSON-serialisable body (None for none) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """A request the sandbox refuses; becomes a Tatum-style error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> Reply:
    """A Tatum-style error reply."""
    return Reply(status, {"statusCode": status, "errorCode": code, "message": message})


#: A route handler: (parsed JSON body or None, request headers, *regex groups) -> Reply.
Handler = Callable[..., Reply]


@dataclass(frozen=True)
class Route:
    """One served path: method, a regex matched against the whole path, its handler, and whether it needs x-api-key."""

    method: str
    pattern: str
    handler: Handler
    needs_key: bool = True


Headers = Mapping[str, str]
