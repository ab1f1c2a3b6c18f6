"""Daemon throughput; run by hand: `.venv/bin/python bench/bench_daemon.py [COUNT]`.

COUNT (default 1,000) private-key ETH wallets, one pending transaction each with complete fields
(nonce, gas, gasPrice, chainId: no node calls), one `tatum-kms daemon --runOnce` against the sandbox
with EVM execution off (signatures are still decoded and recovered there). Prints transactions per
second end to end (process start to exit, and first poll to last broadcast from the log), signing
alone per second in-process, the daemon's CPU time and peak RSS, and the sandbox's CPU time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

from chains.base import PendingTransaction
from chains.evm import ETH
from kms.sandbox import serve

KMS = str(Path(sys.executable).parent / "tatum-kms")
PASSWORD = "bench password"
RECIPIENT = "0x687422eEA2cB73B5d3e242bA5456b782919AFc85"


def payload(nonce: int, chain_id: int) -> str:
    return json.dumps({"to": RECIPIENT, "value": "1000000000000000", "gas": "21000", "gasPrice": "20000000000",
                       "nonce": nonce + 1, "chainId": chain_id})  # 0 would be filled in


def signing_rate(keys: list[str], chain_id: int) -> float:
    """In-process ETH signatures per second over the same payloads the daemon signs."""
    pendings = [PendingTransaction.from_json({"id": f"{n:024x}", "chain": "ETH", "hashes": ["w"],
                                              "serializedTransaction": payload(n, chain_id)})
                for n in range(len(keys))]
    start = time.perf_counter()
    for pending, key in zip(pendings, keys, strict=True):
        ETH.sign(pending, [key], True, None)  # type: ignore[arg-type]
    return len(keys) / (time.perf_counter() - start)


def log_span(stdout: str) -> float:
    """Seconds from the daemon's `started` line to its last `signed` line."""
    stamps = [(line.split()[0], line.split()[2]) for line in stdout.splitlines()]
    start = next(t for t, outcome in stamps if outcome == "started")
    end = [t for t, outcome in stamps if outcome == "signed"][-1]
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    home = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    server, url = serve(execute=False)
    chain_id = server.sandbox.ledger("ETH").evm("ETH").chain_id
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TATUM_")}, "HOME": str(home),
           "TATUM_KMS_PASSWORD": PASSWORD, "TATUM_API_KEY": "bench-api-key", "TATUM_API_URL": url}
    try:
        made = subprocess.run([KMS, "generatemanagedprivatekeybatch", "ETH", str(count), "--testnet"], env=env,
                              capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
        ids = [json.loads(line)["signatureId"] for line in made.stdout.splitlines()]
        http = requests.Session()
        for n, signature_id in enumerate(ids):
            http.post(f"{url}/sandbox/pending", timeout=10, json={
                "chain": "ETH", "hashes": [signature_id], "serializedTransaction": payload(n, chain_id)})
        keys = [json.loads(subprocess.run([KMS, "getprivatekey", ids[n], "0", "--testnet"], env=env,
                                          capture_output=True, text=True, check=True).stdout)["privateKey"]
                for n in range(min(count, 50))]

        start, server_cpu = time.perf_counter(), time.process_time()
        daemon = subprocess.Popen([KMS, "daemon", "--runOnce", "--testnet", "--chain=ETH"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        with ThreadPoolExecutor(2) as readers:  # drain both pipes while waiting for the daemon's own rusage
            out, err = readers.submit(daemon.stdout.read), readers.submit(daemon.stderr.read)
            _, status, usage = os.wait4(daemon.pid, 0)
            stdout, stderr = out.result(), err.result()
        wall = time.perf_counter() - start
        server_cpu = time.process_time() - server_cpu
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"daemon failed: {stderr}")
        peak_mib = usage.ru_maxrss / 1024
        cpu = usage.ru_utime + usage.ru_stime
        broadcasts = http.get(f"{url}/sandbox/broadcasts", timeout=30).json()
        errors = http.get(f"{url}/sandbox/errors", timeout=30).json()
        if len(broadcasts) != count or errors:
            raise SystemExit(f"expected {count} broadcasts and no errors, got {len(broadcasts)} and {errors[:3]}")
        span = log_span(stdout)
        sign_rate = signing_rate((keys * (1000 // len(keys) + 1))[:1000], chain_id)
        print(f"{count} pending ETH transactions, one --runOnce, sandbox execution off")
        print(f"end to end (process start to exit):  {count / wall:,.0f} tx/s ({wall:.2f} s)")
        print(f"first poll to last broadcast:        {count / span:,.0f} tx/s ({span:.2f} s)")
        print(f"start-up and exit:                   {wall - span:.2f} s (imports, Argon2id unlock by design)")
        print(f"signing alone, one core:             {sign_rate:,.0f} signatures/s")
        print(f"daemon CPU time:                     {cpu:.2f} s ({cpu / count * 1e3:.2f} ms per transaction)")
        print(f"sandbox CPU time meanwhile:          {server_cpu:.2f} s")
        print(f"peak RSS of the daemon:              {peak_mib:.0f} MiB")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
