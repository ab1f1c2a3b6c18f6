"""The Tatum API client the daemon talks through: pending transactions, broadcasts, error reports, node proxies.

Pooled keep-alive connections (`kms.http`), and limits on every call: a connect and a read timeout, a
response size cap, and a total deadline that its retries share, so no call outlasts it. Retries only where a
retry is safe: reads (pending, node reads) and the error batch are retried on connection errors, 429 and
5xx; a broadcast is retried only when the connection failed before anything was sent. The API key is
redacted from every log line and exception text, including the node proxy URLs that embed it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import kms
from chains import safejson
from kms.errors import KmsError, TatumError

if TYPE_CHECKING:
    from kms.http import HttpClient, HttpError, Response
    from kms.loop_http import LoopHttp

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.tatum.io"

_VERSION_WARN_INTERVAL = 30.0


def _redact(text: str, secrets: set[str] | frozenset[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def error_report(body: bytes | str) -> str:
    """The body of an HTTP error as the original reports it: JSON pretty-printed with 2 spaces, or a JSON string."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.dumps(safejson.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return json.dumps(text, ensure_ascii=False)


# -- the version header (spec §1.1) ---------------------------------------------------------------

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def semver_key(version: str) -> tuple[Any, ...] | None:
    """A sort key ordering versions as semver does (a pre-release sorts before its release); None if invalid."""
    match = _SEMVER.match(version.strip())
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key: tuple[Any, ...] = (1,)
    else:  # numeric identifiers sort numerically and before alphanumeric ones
        pre_key = (0, *[(0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")])
    return (int(major), int(minor), int(patch), pre_key)


class _VersionNotice:
    """Warns (at most every 30 s) when Tatum's `x-ttm-kms-latest-version` names a newer release."""

    def __init__(self, current: str) -> None:
        self.current = current
        self._last_warned = float("-inf")

    def seen(self, header: str | None) -> None:
        if not header:
            return
        parts = [part.strip() for part in header.split(";")]
        latest = parts[0].lower()
        level = parts[1].upper() if len(parts) > 1 else ""
        message = parts[2] if len(parts) > 2 else ""
        latest_key, current_key = semver_key(latest), semver_key(self.current)
        if not (level and message and latest_key and current_key and latest_key > current_key):
            return
        now = time.monotonic()
        if now - self._last_warned < _VERSION_WARN_INTERVAL:
            return
        self._last_warned = now
        log.log(logging.ERROR if level == "ERROR" else logging.WARNING,
                "%s: %s. Current version: %s. Latest version: %s", level, message, self.current, latest)


# -- the client -----------------------------------------------------------------------------------


class TatumClient:
    """Calls the Tatum API (or `tatum-kms sandbox`) with one API key, over pooled keep-alive connections.

    `timeout` is (connect, read) per attempt; `deadline` bounds a whole call, its retries included;
    `max_response_bytes` caps each response body.
    """

    def __init__(self, api_key: str, base_url: str | None = None, *, timeout: tuple[float, float] = (5.0, 30.0),
                 deadline: float = 60.0, max_response_bytes: int = 16 * 2**20, retries: int = 3,
                 backoff: float = 0.5, pool_size: int = 32) -> None:
        if not api_key:
            raise KmsError("No Tatum API key: set TATUM_API_KEY or pass --apiKey.")
        self._api_key = api_key
        self._secrets = frozenset({api_key})
        self.base_url = (base_url or os.environ.get("TATUM_API_URL") or DEFAULT_URL).rstrip("/")
        if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", self.base_url):
            raise KmsError("The Tatum API URL (TATUM_API_URL) must be http:// or https:// with a host.")
        self.timeout = timeout
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.pool_size = pool_size
        self.retries = retries
        self.backoff = backoff
        self._transport: HttpClient | None = None
        self._foreign: HttpClient | None = None
        self._loop: LoopHttp | None = None
        self._version = _VersionNotice(kms.__version__)

    def __repr__(self) -> str:
        return f"TatumClient(base_url={self.base_url!r})"

    # -- the daemon's calls -----------------------------------------------------------------------

    def pending(self, chain: str, signature_ids: list[str]) -> Any:
        """`POST /v3/kms/pending/{chain}`: the pending transactions for these signature ids (a read: retried)."""
        response = self._call("POST", f"/v3/kms/pending/{chain}", json_body={"signatureIds": list(signature_ids)},
                              headers={"x-ttm-kms-client-version": kms.__version__}, safe=True)
        self._version.seen(response.headers.get("x-ttm-kms-latest-version"))
        return self._decode(response, f"/v3/kms/pending/{chain}")

    def report_errors(self, errors: list[dict[str, Any]]) -> None:
        """`POST /v3/tatum/kms/batch` with `{"errors": [{"signatureId","error"}...]}`; retried (idempotent)."""
        self._call("POST", "/v3/tatum/kms/batch", json_body={"errors": errors}, safe=True)

    def broadcast(self, path: str, body: dict[str, Any]) -> Any:
        """POST a signed transaction to a broadcast path; retried only if the connection failed before sending."""
        response = self._call("POST", path, json_body=body, safe=False)
        return self._decode(response, path)

    async def broadcast_async(self, path: str, body: dict[str, Any]) -> Any:
        """`broadcast` on the running event loop (the daemon's): the same request, retries and errors."""
        from kms.http import HttpError

        call = _Call(self, "POST", path, json_body=body, headers=None, safe=False, own_host=False)
        http = self._loop_http()
        while True:
            try:
                response = await http.request("POST", call.url, call.body, call.headers, deadline=call.left())
                delay = call.answered(response)
            except HttpError as exc:
                delay = call.failed(exc)
            if delay is None:
                return self._decode(response, path)
            await asyncio.sleep(delay)

    def get(self, path: str) -> Any:
        """GET a Tatum API path and return its decoded JSON (a read: retried)."""
        return self._decode(self._call("GET", path, safe=True), path)

    def call_json(self, method: str, path: str, body: Any = None, *, on_tatum: bool = True, safe: bool) -> Any:
        """`method` on a Tatum API path, or (`on_tatum` False) on a chain's own host URL sent without the API key;
        the decoded JSON. This is what `kms.nodes.ChainNode` calls for a chain's endpoints."""
        if on_tatum:
            return self._decode(self._call(method, path, json_body=body, safe=safe), path)
        parts = urlsplit(path)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TatumError(f"A node URL must be http(s)://host/...: {self._clean(path)}")
        return self._decode(self._call(method, path, json_body=body, safe=safe, own_host=True), path)

    def key_path(self, template: str) -> str:
        """A Tatum node-proxy path with the API key put in for `{api_key}`."""
        return template.replace("{api_key}", self._api_key)

    def clean(self, text: str) -> str:
        """`text` on one line with the API key removed (for messages built from node answers)."""
        return self._clean(text)

    def open(self) -> None:
        """Make the Tatum API's connection pool now (CA bundle read, proxies parsed) rather than at the first
        call: the daemon does this at start, so a bad CA bundle is reported then and no cycle pays for it."""
        from kms.http import HttpError

        try:
            self._http()
        except HttpError as exc:
            raise TatumError(self._clean(f"The Tatum API client cannot start: {exc.reason}"), sent=False) from None

    def close(self) -> None:
        """Close the pooled connections."""
        for http in (self._loop, self._transport, self._foreign):
            if http is not None:
                http.close()
        self._transport = self._foreign = self._loop = None

    # -- plumbing ---------------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        return " ".join(_redact(text, self._secrets).split())

    def _http(self, own_host: bool = False) -> HttpClient:
        """The pooled client for the Tatum API (with the API key), or for chains' own hosts (without it)."""
        current = self._foreign if own_host else self._transport
        if current is None:
            from kms.http import HttpClient

            headers = {"User-Agent": f"tatum-kms-python/{kms.__version__}", "Accept": "application/json"}
            if not own_host:
                headers["x-api-key"] = self._api_key
            connect, read = self.timeout
            current = HttpClient(headers, connect_timeout=connect, read_timeout=read, deadline=self.deadline,
                                 max_response_bytes=self.max_response_bytes, pool_size=self.pool_size)
            if own_host:
                self._foreign = current
            else:
                self._transport = current
        return current

    def _loop_http(self) -> LoopHttp:
        """The Tatum API client's requests on the daemon's event loop (its own connections)."""
        if self._loop is None:
            from kms.loop_http import LoopHttp

            self._loop = LoopHttp(self._http())
        return self._loop

    def _call(self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None,
              safe: bool, own_host: bool = False) -> Response:
        """Send one request, retrying as `safe` allows within one deadline; return a 2xx response or raise
        TatumError."""
        from kms.http import HttpError

        call = _Call(self, method, path, json_body=json_body, headers=headers, safe=safe, own_host=own_host)
        http = self._http(own_host)
        while True:
            try:
                response = http.request(method, call.url, call.body, call.headers, deadline=call.left())
                delay = call.answered(response)
            except HttpError as exc:
                delay = call.failed(exc)
            if delay is None:
                return response
            time.sleep(delay)


    def _decode(self, response: Response, path: str) -> Any:
        if not response.content:
            return None
        try:
            return safejson.loads(response.content, what="the response", max_bytes=self.max_response_bytes)
        except ValueError as exc:
            raise TatumError(self._clean(f"{path}: {exc}.")) from None


class _Call:
    """One call's attempts within its deadline: what each sends, and after each whether to retry (and when)."""

    def __init__(self, client: TatumClient, method: str, path: str, *, json_body: Any,
                 headers: dict[str, str] | None, safe: bool, own_host: bool) -> None:
        self.client = client
        self.method = method
        self.shown = client.clean(path)
        self.url = path if own_host else client.base_url + path
        self.body = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        self.headers = {**(headers or {}), **({"Content-Type": "application/json"} if self.body is not None else {})}
        self.safe = safe
        self.attempt = 0
        self.due = time.monotonic() + client.deadline

    def left(self) -> float:
        """Start the next attempt: the seconds left for it."""
        self.attempt += 1
        return self.due - time.monotonic()

    def failed(self, exc: HttpError) -> float:
        """No response came: the pause before retrying, or TatumError when the call has failed."""
        client = self.client
        retry = self.attempt <= client.retries and (self.safe or not exc.sent) and not exc.too_large
        delay = self._pause(None, exc.reason) if retry else None
        if delay is not None:
            return delay
        reason = exc.reason
        if exc.timed_out and time.monotonic() >= self.due - 0.05:  # the call's deadline, not one attempt's
            reason = f"timed out: no complete response within the {client.deadline:g} s deadline"
        raise TatumError(client.clean(f"{self.method} {self.shown} failed: {reason}"), sent=exc.sent) from None

    def answered(self, response: Response) -> float | None:
        """None for a 2xx; the pause before retrying a 429 or 5xx of a safe call; else TatumError."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        client = self.client
        if self.safe and self.attempt <= client.retries and (status == 429 or status >= 500):
            delay = self._pause(response.headers.get("Retry-After"), f"HTTP {status}")
            if delay is not None:
                return delay
        excerpt = client.clean(response.text)[:300]
        raise TatumError(client.clean(f"{self.method} {self.shown} failed with HTTP {status}: {excerpt}"),
                         status=status, report=_redact(error_report(response.content), client._secrets))

    def _pause(self, retry_after: str | None, what: str) -> float | None:
        """The wait before the next attempt (logged), or None when the call's deadline would pass first."""
        client = self.client
        delay = min(client.backoff * 2 ** (self.attempt - 1), 8.0)
        if retry_after and re.fullmatch(r"[0-9]{1,6}", retry_after.strip()):
            delay = max(delay, min(float(retry_after), 10.0))
        if time.monotonic() + delay >= self.due:
            return None
        log.warning("%s %s: %s; retrying in %.1f s (attempt %d of %d)", self.method, self.shown, what, delay,
                    self.attempt + 1, 1 + client.retries)
        return delay
