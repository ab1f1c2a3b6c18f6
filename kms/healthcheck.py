"""`python3 -m kms.healthcheck [HOST:PORT]`: exit 0 when the daemon's `/healthz` answers 200, else 1.

The container's HEALTHCHECK: the address is the argument or `TATUM_KMS_METRICS`; a wildcard bind
address (0.0.0.0, ::) is probed on the loopback. Standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_url(address: str) -> str:
    """The /healthz URL for a `--metrics` address (`HOST:PORT`, `[V6]:PORT` or `PORT`)."""
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host == "0.0.0.0":  # noqa: S104 - a bind address, probed on the loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else os.environ.get("TATUM_KMS_METRICS", "")
    if not address:
        print("unhealthy: no metrics address (TATUM_KMS_METRICS or an argument)", file=sys.stderr)
        return 1
    url = probe_url(address)
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - a fixed http:// URL
            print(response.read().decode("utf-8", "replace").strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {exc.code} {exc.read().decode('utf-8', 'replace').strip()}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
