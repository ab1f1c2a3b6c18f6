"""The whole tatum-kms flow offline: token, store, wallet, pending transfer, approval, signature, execution.

Run by scripts/demo.sh after set-up. Every step is the real `tatum-kms` command; the Tatum API is
`tatum-kms sandbox` on 127.0.0.1, which also plays the operator's approval server.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("TATUM_KMS_DEMO_DIR") or ROOT / ".demo")
KMS = str(Path(sys.executable).parent / "tatum-kms")
MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def kms(env: dict[str, str], *args: str) -> str:
    """Run one tatum-kms command, echoing it; stop the demo if it fails."""
    print("$ tatum-kms " + " ".join(args), flush=True)
    result = subprocess.run([KMS, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    print(result.stdout.rstrip() or "(no output)")
    if result.returncode != 0:
        sys.exit(f"demo: tatum-kms {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_completed(http: requests.Session, url: str, pending: str, timeout: float = 120) -> dict:
    """The sandbox's record of `pending` once a broadcast has completed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [tx] = [tx for tx in http.get(f"{url}/sandbox/pending", timeout=10).json() if tx["id"] == pending]
        if tx.get("txId"):
            return tx
        time.sleep(0.2)
    sys.exit(f"demo: the daemon did not complete {pending} within {timeout:g} s")


def wait_for_scrape(http: requests.Session, metrics: str, line: str, timeout: float = 30) -> str:
    """A scrape of the daemon's /metrics once it shows `line`."""
    deadline = time.monotonic() + timeout
    while True:
        scrape = http.get(f"http://{metrics}/metrics", timeout=10).text
        if line in scrape.splitlines() or time.monotonic() > deadline:
            return scrape
        time.sleep(0.1)


def main() -> int:
    module = next((m for m in MODULES if Path(m).exists()), None)
    if module is None:
        sys.exit("demo: SoftHSM2 is not installed (apt-get install softhsm2)")
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir(mode=0o700)
    # Throwaway secrets for a throwaway store: kept in this process's environment only.
    pin = secrets.token_hex(4)
    env = {**os.environ, "TATUM_KMS_PKCS11_PIN": pin, "TATUM_KMS_PASSWORD": secrets.token_urlsafe(16)}

    say("A SoftHSM2 token in .demo/softhsm, and the key-encryption key on it")
    conf = subprocess.check_output(["bash", str(ROOT / "softhsm-config/make-token.sh"), str(DEMO / "softhsm"),
                                    "tatum-kms-demo"], env=env, text=True).strip()
    env.update({"SOFTHSM2_CONF": conf, "TATUM_KMS_PKCS11_MODULE": module, "TATUM_KMS_PKCS11_TOKEN": "tatum-kms-demo",
                "TATUM_API_KEY": "demo-" + secrets.token_hex(8)})
    store = ["--path", str(DEMO / "wallet.dat")]
    kms(env, "hsm", "init", *store)

    say("The local Tatum API (tatum-kms sandbox) with an in-process EVM")
    sandbox = subprocess.Popen([KMS, "sandbox", "--quiet"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        url = sandbox.stdout.readline().strip()
        print(f"sandbox at {url}")
        env["TATUM_API_URL"] = url
        http = requests.Session()

        say("A managed ETH wallet (testnet); the store holds its mnemonic, encrypted")
        wallet = json.loads(kms(env, "generatemanagedwallet", "ETH", "--testnet", *store))
        signature_id = wallet["signatureId"]
        sender = json.loads(kms(env, "getaddress", signature_id, "1", "--testnet", *store))["address"]
        recipient = json.loads(kms(env, "getaddress", signature_id, "2", "--testnet", *store))["address"]
        http.post(f"{url}/sandbox/eth/fund", json={"address": sender, "wei": str(10**18)}, timeout=10)

        def balances() -> str:
            wei = [int(http.get(f"{url}/sandbox/eth/balance/{address}", timeout=10).json()["wei"])
                   for address in (sender, recipient)]
            return f"index 1 {sender}: {wei[0] / 1e18:.6f} ETH, index 2 {recipient}: {wei[1] / 1e18:.6f} ETH"

        print("balances:", balances())

        say("Your application asks Tatum for a transfer of 0.25 ETH from index 1 to index 2: it waits as pending")
        transfer = {"to": recipient, "value": str(25 * 10**16)}
        pending = http.post(f"{url}/sandbox/pending", timeout=10, json={
            "chain": "ETH", "hashes": [signature_id], "index": 1, "serializedTransaction": json.dumps(transfer)}
        ).json()["id"]
        print(f"pending transaction {pending}: {json.dumps(transfer)}")

        approval = f"{url}/sandbox/approve"
        say("The daemon polls, but nobody has approved it yet: the four-eye check fails closed, nothing is signed")
        kms(env, "daemon", "--runOnce", "--testnet", "--chain=ETH", f"--externalUrl={approval}", *store)

        say("A second person approves it on the approval server")
        http.post(f"{url}/sandbox/approvals", json={"id": pending}, timeout=10)

        say("The daemon runs as a service (Prometheus metrics on 127.0.0.1): approved, signed with the key "
            "derived inside the KMS, broadcast, executed")
        metrics = f"127.0.0.1:{free_port()}"
        args = ["daemon", "--testnet", "--chain=ETH", "--period=1", f"--externalUrl={approval}",
                f"--metrics={metrics}", *store]
        print("$ tatum-kms " + " ".join(args) + " &", flush=True)
        daemon = subprocess.Popen([KMS, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            done = wait_until_completed(http, url, pending)
            scrape = wait_for_scrape(http, metrics, 'tatum_kms_transactions_total{chain="ETH",outcome="broadcast"} 1.0')
            health = http.get(f"http://{metrics}/healthz", timeout=10)
        finally:
            daemon.send_signal(signal.SIGTERM)
            out, err = daemon.communicate(timeout=60)
        print(out.rstrip())
        if daemon.returncode != 0:
            sys.exit(f"demo: tatum-kms daemon failed: {err.strip()}")
        print(f"$ curl http://{metrics}/metrics   (the ETH transaction counters)")
        print("\n".join(line for line in scrape.splitlines() if line.startswith("tatum_kms_transactions_total")
                        and 'chain="ETH"' in line))
        print(f"$ curl http://{metrics}/healthz\n{health.status_code} {health.text.strip()}")
        print("balances:", balances())
        print(f"pending transaction {pending} completed by {done.get('txId')}")

        say("The audit log of every decision, hash-chained and keyed by the store: intact")
        kms(env, "audit", "verify", *store)

        say("The store as a user sees it (no secret in checkconfig)")
        kms(env, "checkconfig", *store)
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    print("\nDone. Try: .venv/bin/tatum-kms --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
