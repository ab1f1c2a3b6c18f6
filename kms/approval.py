"""The four-eye check: before signing, the operator's own server must approve each pending transaction.

`GET {url}/{id}`, or `POST {url}/{id}` with the pending transaction's JSON as body (spec §1.7). It fails
closed: only a 2xx answer approves; any other status, a timeout, a refused connection, a TLS failure or
anything else means "not approved", with a one-line reason. There are no retries and redirects are not
followed (a 3xx is not an approval).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import requests

_session: requests.Session | None = None
_session_lock = threading.Lock()


@dataclass(frozen=True)
class Approval:
    """The verdict on one pending transaction; `reason` is a short line for the log."""

    approved: bool
    reason: str


def check(pending_raw: dict[str, Any], url: str, method: str = "GET", timeout: float = 10) -> Approval:
    """Ask the approval server at `url` about `pending_raw` (the pending transaction's JSON); never raises."""
    import requests

    try:
        tx_id = pending_raw.get("id") if isinstance(pending_raw, dict) else None
        if not isinstance(tx_id, str) or not tx_id:
            return Approval(False, "the pending transaction has no id")
        target = f"{url.rstrip('/')}/{quote(tx_id, safe='')}"
        verb = method.upper()
        if verb not in ("GET", "POST"):
            return Approval(False, f"unsupported approval method {method!r}")
        body = pending_raw if verb == "POST" else None
        response = _http().request(verb, target, json=body, timeout=timeout, allow_redirects=False)
        response.close()
        if 200 <= response.status_code < 300:
            return Approval(True, f"approved (HTTP {response.status_code})")
        return Approval(False, f"approval server answered HTTP {response.status_code}")
    except requests.Timeout:
        return Approval(False, f"approval server timed out after {timeout:g} s")
    except requests.exceptions.SSLError:
        return Approval(False, "TLS error talking to the approval server")
    except requests.ConnectionError as exc:
        refused = "refused" in str(exc).lower()
        return Approval(False, f"approval server: connection {'refused' if refused else 'failed'}")
    except Exception as exc:  # fail closed on anything at all
        return Approval(False, f"approval check failed: {type(exc).__name__}")


def _http() -> requests.Session:
    """One keep-alive session for all checks; it sends no credentials of its own."""
    global _session
    with _session_lock:
        if _session is None:
            import requests

            _session = requests.Session()
        return _session
