"""The Tatum API client the daemon talks through: pending transactions, broadcasts, error reports, node proxies.

Pooled keep-alive connections (`kms.http`), and limits on every call: a connect and a read timeout, a
response size cap, and a total deadline that its retries share, so no call outlasts it. Retries only where a
retry is safe: reads (pending, node reads) and the error batch are retried on connection errors, 429 and
5xx; a broadcast is retried only when the connection failed before anything was sent. The API key is
redacted from every log line and exception text, including the node proxy URLs that embed it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

import kms
from chains import safejson
from kms.errors import KmsError

if TYPE_CHECKING:
    from kms.http import HttpClient, Response

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.tatum.io"

#: Chain code -> JSON-RPC proxy path prefix; the API key is appended (spec §1.9).
RPC_PATHS: dict[str, str] = {
    "ETH": "/v3/ethereum/web3/",
    "BSC": "/v3/bsc/web3/",
    "MATIC": "/v3/polygon/web3/",
    "ONE": "/v3/one/web3/",
    "XDC": "/v3/xdc/web3/",
    "KCS": "/v3/kcs/web3/",
    "KLAY": "/v3/blockchain/node/KLAY/",
    "CELO": "/v3/blockchain/node/CELO/",
    "SOL": "/v3/blockchain/node/SOL/",
}

#: JSON-RPC methods that change chain state: never retried.
_WRITE_METHODS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction", "klay_sendRawTransaction",
                            "sendTransaction"})

_VERSION_WARN_INTERVAL = 30.0


class TatumError(KmsError):
    """A Tatum API call failed. `report` is what the original sends to the error batch for an HTTP error:
    the response body pretty-printed (2-space JSON); None when no response came back."""

    def __init__(self, message: str, *, status: int | None = None, report: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.report = report


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
        self._nodes: dict[str, TatumNode] = {}
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

    def get(self, path: str) -> Any:
        """GET a Tatum API path and return its decoded JSON (a read: retried)."""
        return self._decode(self._call("GET", path, safe=True), path)

    def node(self, chain: str) -> TatumNode:
        """The node handle signers use for `chain`; kept for the client's life so `eth_chainId` is asked once."""
        code = chain.upper()
        if code not in self._nodes:
            self._nodes[code] = TatumNode(self, code)
        return self._nodes[code]

    def rpc(self, chain: str, method: str, params: list[Any]) -> Any:
        """JSON-RPC `method` on the chain's Tatum node proxy; returns `result`, raises TatumError on `error`."""
        prefix = RPC_PATHS.get(chain.upper())
        if prefix is None:
            raise TatumError(f"Tatum has no JSON-RPC proxy for chain {chain}.")
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        response = self._call("POST", prefix + self._api_key, json_body=payload, safe=method not in _WRITE_METHODS)
        reply = self._decode(response, prefix + self._api_key)
        if not isinstance(reply, dict):
            raise TatumError(f"{method}: the node returned no JSON-RPC object.")
        if reply.get("error") is not None:
            error = reply["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise TatumError(self._clean(f"Returned error: {detail}"))
        return reply.get("result")

    def close(self) -> None:
        """Close the pooled connections."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- plumbing ---------------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        return " ".join(_redact(text, self._secrets).split())

    def _http(self) -> HttpClient:
        if self._transport is None:
            from kms.http import HttpClient

            headers = {"x-api-key": self._api_key, "User-Agent": f"tatum-kms-python/{kms.__version__}",
                       "Accept": "application/json"}
            connect, read = self.timeout
            self._transport = HttpClient(headers, connect_timeout=connect, read_timeout=read, deadline=self.deadline,
                                         max_response_bytes=self.max_response_bytes, pool_size=self.pool_size)
        return self._transport

    def _call(self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None,
              safe: bool) -> Response:
        """Send one request, retrying as `safe` allows within one deadline; return a 2xx response or raise
        TatumError."""
        from kms.http import HttpError

        shown = self._clean(path)
        url = self.base_url + path
        body = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        sent_headers = {**(headers or {}), **({"Content-Type": "application/json"} if body is not None else {})}
        attempts = 1 + self.retries
        due = time.monotonic() + self.deadline
        for attempt in range(1, attempts + 1):
            try:
                response = self._http().request(method, url, body, sent_headers, deadline=due - time.monotonic())
            except HttpError as exc:
                retry = attempt < attempts and (safe or not exc.sent) and not exc.too_large
                if retry and self._pause(attempt, None, due, f"{method} {shown}: {exc.reason}"):
                    continue
                reason = exc.reason
                if exc.timed_out and time.monotonic() >= due - 0.05:  # the call's deadline, not one attempt's
                    reason = f"timed out: no complete response within the {self.deadline:g} s deadline"
                raise TatumError(self._clean(f"{method} {shown} failed: {reason}")) from None
            status = response.status_code
            if 200 <= status < 300:
                return response
            if safe and attempt < attempts and (status == 429 or status >= 500) and self._pause(
                    attempt, response.headers.get("Retry-After"), due, f"{method} {shown}: HTTP {status}"):
                continue
            excerpt = self._clean(response.text)[:300]
            raise TatumError(self._clean(f"{method} {shown} failed with HTTP {status}: {excerpt}"),
                             status=status, report=_redact(error_report(response.content), self._secrets)) from None
        raise AssertionError("unreachable")

    def _pause(self, attempt: int, retry_after: str | None, due: float, what: str) -> bool:
        """Wait before the next attempt and return True; False (no wait) when the call's deadline would pass."""
        delay = min(self.backoff * 2 ** (attempt - 1), 8.0)
        if retry_after and re.fullmatch(r"[0-9]{1,6}", retry_after.strip()):
            delay = max(delay, min(float(retry_after), 10.0))
        if time.monotonic() + delay >= due:
            return False
        log.warning("%s; retrying in %.1f s (attempt %d of %d)", what, delay, attempt + 1, 1 + self.retries)
        time.sleep(delay)
        return True

    def _decode(self, response: Response, path: str) -> Any:
        if not response.content:
            return None
        try:
            return safejson.loads(response.content, what="the response", max_bytes=self.max_response_bytes)
        except ValueError as exc:
            raise TatumError(self._clean(f"{path}: {exc}.")) from None


class TatumNode:
    """A chain's node as signers see it (`chains.base.Node`): JSON-RPC via Tatum's proxy and Tatum GETs."""

    def __init__(self, client: TatumClient, chain: str) -> None:
        self._client = client
        self.chain = chain
        self._chain_id: Any = None

    def __repr__(self) -> str:
        return f"TatumNode(chain={self.chain!r})"

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Call `method` on the proxy; `eth_chainId` is asked once and remembered."""
        if method == "eth_chainId":
            if self._chain_id is None:
                self._chain_id = self._client.rpc(self.chain, method, params)
            return self._chain_id
        return self._client.rpc(self.chain, method, params)

    def get(self, path: str) -> Any:
        """GET a Tatum API path (e.g. `/v3/blockchain/fee/ETH`)."""
        return self._client.get(path)
