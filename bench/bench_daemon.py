"""Daemon throughput at internet latency; run by hand: `.venv/bin/python bench/bench_daemon.py [--quick]`.

Per scenario, the Tatum API and the four-eye approval server are two `tatum-kms sandbox --no-execute
--latency-ms N` processes (every answer N ms late; signatures decoded, not executed), one `tatum-kms daemon
--runOnce --testnet` signs pending ETH transactions (complete fields: no node calls) from private-key wallets
against them, and this process only sets up (concurrently, outside the measured span) and reads the figures:
tx/s from the daemon's `started` line to its last `signed` line, its CPU time and peak RSS, and the sandboxes'
CPU time while it ran (were the servers the bottleneck?). With `--concurrency 1` one check and one broadcast
are in flight at a time; the original's loop does them one after the other: at most 1 / (2 x 20 ms) = 25 tx/s.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import requests

KMS = str(Path(sys.executable).parent / "tatum-kms")
PASSWORD = "bench password"
RECIPIENT = "0x687422eEA2cB73B5d3e242bA5456b782919AFc85"
SETUP_THREADS = 32
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class Sandbox:
    """A `tatum-kms sandbox --no-execute --quiet` in its own process; `stop()` terminates it."""

    def __init__(self, latency_ms: float, env: dict[str, str], log: IO[str]) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [KMS, "sandbox", "--no-execute", "--quiet", "--port", "0", f"--latency-ms={latency_ms:g}"], env=env,
            stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The sandbox's URL, its first stdout line (read once, waiting for it to start)."""
        if self._url is None:
            line = self.process.stdout.readline().strip() if self.process.stdout else ""
            if not line.startswith("http"):
                self.log.seek(0)
                raise SystemExit(f"sandbox did not start: {self.log.read()}")
            self._url = line
        return self._url

    def cpu(self) -> float:
        """Seconds of CPU (user + system) the process has used so far, from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime: fields 14 and 15

    def stop(self) -> None:
        """SIGTERM, then wait for the process to exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def log_span(stdout: str) -> float:
    """Seconds from the daemon's `started` line to its last `signed` line."""
    stamps = [(line.split()[0], line.split()[2]) for line in stdout.splitlines()]
    start = next(t for t, outcome in stamps if outcome == "started")
    end = [t for t, outcome in stamps if outcome == "signed"][-1]
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def post_all(calls: list[tuple[str, dict[str, Any]]]) -> None:
    """POST each (url, JSON body) concurrently, one session per thread: every answer is `latency` late."""
    local = threading.local()

    def post(call: tuple[str, dict[str, Any]]) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        url, body = call
        local.session.post(url, json=body, timeout=60).raise_for_status()

    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        list(pool.map(post, calls))


def scenario(count: int, wallets: int, latency_ms: float, concurrency: int, approval: bool = True) -> dict[str, float]:
    """Run one daemon over `count` pending transactions from `wallets` wallets; return its figures."""
    home = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("TATUM_")}
    servers: list[Sandbox] = []
    try:
        with open(home / "api.log", "w+") as api_log, open(home / "approvals.log", "w+") as approvals_log:
            api = Sandbox(latency_ms, {**base, "HOME": str(home)}, api_log)
            servers.append(api)
            approvals = Sandbox(latency_ms, {**base, "HOME": str(home)}, approvals_log) if approval else None
            if approvals:
                servers.append(approvals)
            env = {**base, "HOME": str(home), "TATUM_KMS_PASSWORD": PASSWORD, "TATUM_API_KEY": "bench-api-key",
                   "TATUM_API_URL": api.url}
            chain_id = requests.get(f"{api.url}/sandbox", timeout=60).json()["chainIds"]["ETH"]
            # The sandbox makes a chain's node on first use; a real API's is up already: not in the span.
            requests.get(f"{api.url}/sandbox/eth/balance/{RECIPIENT}", timeout=60).raise_for_status()
            made = subprocess.run([KMS, "generatemanagedprivatekeybatch", "ETH", str(wallets), "--testnet"],
                                  env=env, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
            wallet_ids = [json.loads(line)["signatureId"] for line in made.stdout.splitlines()]
            pending_ids = [secrets.token_hex(12) for _ in range(count)]
            calls = []
            for n, pending_id in enumerate(pending_ids):
                payload = {"to": RECIPIENT, "value": "1000000000000000", "gas": "21000", "gasPrice": "20000000000",
                           "nonce": n // wallets + 1, "chainId": chain_id}
                calls.append((f"{api.url}/sandbox/pending", {"id": pending_id, "chain": "ETH",
                              "hashes": [wallet_ids[n % wallets]], "serializedTransaction": json.dumps(payload)}))
                if approvals:
                    calls.append((f"{approvals.url}/sandbox/approvals", {"id": pending_id}))
            post_all(calls)
            args = [KMS, "daemon", "--runOnce", "--testnet", "--chain=ETH", f"--concurrency={concurrency}"]
            if approvals:
                args.append(f"--externalUrl={approvals.url}/sandbox/approve")
            servers_before = sum(server.cpu() for server in servers)
            daemon = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      stdin=subprocess.DEVNULL)
            with ThreadPoolExecutor(2) as readers:  # drain both pipes while waiting for the daemon's own rusage
                out, err = readers.submit(daemon.stdout.read), readers.submit(daemon.stderr.read)
                _, status, usage = os.wait4(daemon.pid, 0)
                stdout, stderr = out.result(), err.result()
            servers_cpu = sum(server.cpu() for server in servers) - servers_before
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"daemon failed: {stderr}")
            http = requests.Session()
            broadcasts = http.get(f"{api.url}/sandbox/broadcasts", timeout=60).json()
            errors = http.get(f"{api.url}/sandbox/errors", timeout=60).json()
            once = Counter(record["signatureId"] for record in broadcasts) == Counter(pending_ids)
            if len(broadcasts) != count or not once or errors:
                raise SystemExit(f"expected each of {count} transactions broadcast once and no errors, got "
                                 f"{len(broadcasts)} broadcasts (each once: {once}) and {errors[:3]}")
            span = log_span(stdout)
            cpu = usage.ru_utime + usage.ru_stime
            return {"rate": count / span, "span": span, "cpu_ms": cpu / count * 1e3, "rss": usage.ru_maxrss / 1024,
                    "servers_cpu_ms": servers_cpu / count * 1e3}
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)


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
        runs.append(("200 over 20 wallets at 20 ms, --concurrency 1 (one check and one broadcast in flight)",
                     200 // scale, 20 // scale, 20, 1, True, 0))
    for title, count, wallets, latency, concurrency, approval, target in runs:
        figures = scenario(count, wallets, latency, concurrency, approval)
        aim = f" (target >= {target:,})" if target else ""
        print(f"{title}: {figures['rate']:,.0f} tx/s{aim} over {figures['span']:.2f} s; "
              f"CPU {figures['cpu_ms']:.2f} ms/tx; peak RSS {figures['rss']:.0f} MiB (target < 120); "
              f"sandboxes' CPU {figures['servers_cpu_ms']:.2f} ms/tx", flush=True)


if __name__ == "__main__":
    main()
