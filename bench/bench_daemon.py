"""Daemon throughput at internet latency; run by hand: `.venv/bin/python bench/bench_daemon.py [--quick]`.

Each scenario: private-key ETH wallets, pending transactions with complete fields (nonce, gas, gasPrice,
chainId: no node calls) spread over the wallets, one `tatum-kms daemon --runOnce --testnet` against the
sandbox (`--latency-ms`: every answer delayed) with the four-eye check on, against an approval server with
the same delay. Sandbox execution is off (signatures are still decoded and their senders recovered), so the
figure is the KMS's, not py-evm's. Prints transactions per second from the daemon's first poll to its last
broadcast, the daemon's CPU time and peak RSS; `--concurrency 1` is the original's sequential behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from kms.sandbox import serve

KMS = str(Path(sys.executable).parent / "tatum-kms")
PASSWORD = "bench password"
RECIPIENT = "0x687422eEA2cB73B5d3e242bA5456b782919AFc85"


class ApprovalServer(ThreadingHTTPServer):
    """Approves every id after `delay` seconds (HTTP/1.1 keep-alive), as a four-eye server that far away would."""

    daemon_threads = True

    def __init__(self, delay: float) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                time.sleep(outer.delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.delay = delay
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/approve"


def log_span(stdout: str) -> float:
    """Seconds from the daemon's `started` line to its last `signed` line."""
    stamps = [(line.split()[0], line.split()[2]) for line in stdout.splitlines()]
    start = next(t for t, outcome in stamps if outcome == "started")
    end = [t for t, outcome in stamps if outcome == "signed"][-1]
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def scenario(count: int, wallets: int, latency_ms: float, concurrency: int, approval: bool = True) -> dict[str, float]:
    """Run one daemon over `count` pending transactions from `wallets` wallets; return its figures."""
    home = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    server, url = serve(execute=False, latency_ms=latency_ms)
    approvals = ApprovalServer(latency_ms / 1000)
    chain_id = server.sandbox.ledger("ETH").evm("ETH").chain_id
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TATUM_")}, "HOME": str(home),
           "TATUM_KMS_PASSWORD": PASSWORD, "TATUM_API_KEY": "bench-api-key", "TATUM_API_URL": url}
    try:
        made = subprocess.run([KMS, "generatemanagedprivatekeybatch", "ETH", str(wallets), "--testnet"], env=env,
                              capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
        ids = [json.loads(line)["signatureId"] for line in made.stdout.splitlines()]
        for n in range(count):
            payload = {"to": RECIPIENT, "value": "1000000000000000", "gas": "21000", "gasPrice": "20000000000",
                       "nonce": n // wallets + 1, "chainId": chain_id}
            server.sandbox.handle("POST", "/sandbox/pending", {}, json.dumps({
                "chain": "ETH", "hashes": [ids[n % wallets]], "serializedTransaction": json.dumps(payload)}).encode())
        args = [KMS, "daemon", "--runOnce", "--testnet", "--chain=ETH", f"--concurrency={concurrency}"]
        if approval:
            args.append(f"--externalUrl={approvals.url}")
        daemon = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        with ThreadPoolExecutor(2) as readers:  # drain both pipes while waiting for the daemon's own rusage
            out, err = readers.submit(daemon.stdout.read), readers.submit(daemon.stderr.read)
            _, status, usage = os.wait4(daemon.pid, 0)
            stdout, stderr = out.result(), err.result()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"daemon failed: {stderr}")
        http = requests.Session()
        broadcasts = http.get(f"{url}/sandbox/broadcasts", timeout=60).json()
        errors = http.get(f"{url}/sandbox/errors", timeout=60).json()
        if len(broadcasts) != count or errors:
            raise SystemExit(f"expected {count} broadcasts and no errors, got {len(broadcasts)} and {errors[:3]}")
        span = log_span(stdout)
        cpu = usage.ru_utime + usage.ru_stime
        return {"rate": count / span, "span": span, "cpu_ms": cpu / count * 1e3, "rss": usage.ru_maxrss / 1024}
    finally:
        server.shutdown()
        server.server_close()
        approvals.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--skip-sequential", action="store_true", help="skip the sequential comparison")
    opts = parser.parse_args()
    scale = 5 if opts.quick else 1
    runs = [
        ("1,000 pending over 100 wallets, 20 ms, four-eye on", 1000 // scale, 100 // scale, 20, 32, True, 500),
        ("200 pending from one wallet, 20 ms, four-eye on", 200 // scale, 1, 20, 32, True, 40),
        ("1,000 pending over 100 wallets, 0 ms, four-eye on", 1000 // scale, 100 // scale, 0, 32, True, 1500),
    ]
    if not opts.skip_sequential:
        runs.append(("the same at 20 ms, --concurrency 1 (the original's sequential way)", 200 // scale,
                     20 // scale, 20, 1, True, 0))
    for title, count, wallets, latency, concurrency, approval, target in runs:
        figures = scenario(count, wallets, latency, concurrency, approval)
        aim = f" (target >= {target:,})" if target else ""
        print(f"{title}: {figures['rate']:,.0f} tx/s{aim} over {figures['span']:.2f} s; "
              f"CPU {figures['cpu_ms']:.2f} ms/tx; peak RSS {figures['rss']:.0f} MiB (target < 120)", flush=True)


if __name__ == "__main__":
    main()
