"""The four-eye check: before signing, the operator's own server must approve each pending transaction.

`GET {url}/{id}`, or `POST {url}/{id}` with the pending transaction's JSON as body (spec §1.7). It fails
closed: only a 2xx answer approves; any other status, a timeout, a refused connection, a TLS failure or
anything else means "not approved", with a one-line reason. There are no retries, redirects are not
followed (a 3xx is not an approval), and the whole exchange must end within `timeout` seconds (a server
that trickles its answer is cut off then), its body within the client's response size cap.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import kms

if TYPE_CHECKING:
    from kms.http import HttpClient
    from kms.loop_http import LoopHttp

#: The longest `timeout` the check takes (seconds), as `--approvalTimeout` allows.
MAX_TIMEOUT = 600.0

_client: HttpClient | None = None
_loop_client: LoopHttp | None = None
_client_lock = threading.Lock()


@dataclass(frozen=True)
class Approval:
    """The verdict on one pending transaction; `reason` is a short line for the log."""

    approved: bool
    reason: str


def check(pending_raw: dict[str, Any], url: str, method: str = "GET", timeout: float = 10) -> Approval:
    """Ask the approval server at `url` about `pending_raw` (the pending transaction's JSON); never raises."""
    try:
        from kms.http import HttpError

        asked = _question(pending_raw, url, method)
        if isinstance(asked, Approval):
            return asked
        try:
            response = _http().request(*asked, deadline=min(float(timeout), MAX_TIMEOUT))
        except HttpError as exc:
            return Approval(False, _refusal(exc, timeout))
        return _verdict(response.status_code)
    except Exception as exc:  # fail closed on anything at all
        return Approval(False, f"approval check failed: {type(exc).__name__}")


async def check_async(pending_raw: dict[str, Any], url: str, method: str = "GET", timeout: float = 10) -> Approval:
    """`check` on the running event loop (the daemon's): the same request and verdicts; never raises."""
    try:
        from kms.http import HttpError

        asked = _question(pending_raw, url, method)
        if isinstance(asked, Approval):
            return asked
        try:
            response = await _loop_http().request(*asked, deadline=min(float(timeout), MAX_TIMEOUT))
        except HttpError as exc:
            return Approval(False, _refusal(exc, timeout))
        return _verdict(response.status_code)
    except Exception as exc:  # fail closed on anything at all
        return Approval(False, f"approval check failed: {type(exc).__name__}")


def _question(pending_raw: Any, url: str, method: str) -> tuple[str, str, bytes | None, dict[str, str]] | Approval:
    """The request that asks about `pending_raw` (method, URL, body, headers), or the refusal when there is none."""
    tx_id = pending_raw.get("id") if isinstance(pending_raw, dict) else None
    if not isinstance(tx_id, str) or not tx_id:
        return Approval(False, "the pending transaction has no id")
    target = f"{url.rstrip('/')}/{quote(tx_id, safe='')}"
    verb = method.upper()
    if verb not in ("GET", "POST"):
        return Approval(False, f"unsupported approval method {method!r}")
    body = json.dumps(pending_raw).encode() if verb == "POST" else None
    return verb, target, body, {"Content-Type": "application/json"} if body is not None else {}


def _verdict(status: int) -> Approval:
    if 200 <= status < 300:
        return Approval(True, f"approved (HTTP {status})")
    return Approval(False, f"approval server answered HTTP {status}")


def _refusal(exc: Any, timeout: float) -> str:
    """The log line for an approval request that got no response."""
    if exc.timed_out:
        return f"approval server timed out after {timeout:g} s"
    if exc.reason == "connection refused":
        return "approval server: connection refused"
    if exc.reason.startswith("TLS error"):
        return f"{exc.reason} talking to the approval server"
    return f"approval server: {exc.reason}"


def prepare() -> None:
    """Make the checks' connection pool now (the daemon does, at start) rather than at the first check."""
    from kms.errors import KmsError
    from kms.http import HttpError

    try:
        _http()
    except HttpError as exc:
        raise KmsError(f"The approval server client cannot start: {exc.reason}") from None


def _loop_http() -> LoopHttp:
    """The checks' client on the daemon's event loop (its own connections, the same settings)."""
    global _loop_client
    with _client_lock:
        if _loop_client is None:
            from kms.loop_http import LoopHttp

            _loop_client = LoopHttp(_http_locked())
        return _loop_client


def close() -> None:
    """Close the checks' pooled connections (the daemon does, when it stops); the next check makes new
    clients, reading the environment's proxies and CA bundle again."""
    global _client, _loop_client
    with _client_lock:
        clients, _client, _loop_client = [_loop_client, _client], None, None
    for client in clients:
        if client is not None:
            client.close()


def _http() -> HttpClient:
    """One pooled client for all checks; it sends no credentials of its own, and follows no redirect."""
    with _client_lock:
        return _http_locked()


def _http_locked() -> HttpClient:
    global _client
    if _client is None:
        from kms.http import HttpClient

        _client = HttpClient({"User-Agent": f"tatum-kms-python/{kms.__version__}"},
                             read_timeout=MAX_TIMEOUT, deadline=MAX_TIMEOUT)
    return _client
