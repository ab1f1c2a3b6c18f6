"""The daemon's audit log end to end: written by the real daemon, checked by `tatum-kms audit verify`.

What the sandbox received is compared with the log independently of the verifier: each broadcast's
txData hashes to the SHA-256 in its "signed" line, and the lines chain by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from tests.approval_server import ApprovalServer
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin

API_KEY = "audit-test-key-8e21f0"


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def chained(path: Path) -> bool:
    """Every line names the SHA-256 of the line before (a check written apart from kms.audit)."""
    lines = path.read_bytes().splitlines()
    prev = "0" * 64
    for line in lines:
        if json.loads(line)["prev"] != prev:
            return False
        prev = hashlib.sha256(line).hexdigest()
    return True


def eth_store(kms: Kms, sandbox: Admin) -> tuple[str, str]:
    eth = kms.ok("storemanagedwallet", "ETH", "--testnet", input=MQ + "\n")["signatureId"]
    sender = kms.ok("getaddress", eth, "1")["address"]
    sandbox.fund(sender, 10**18)
    return eth, sender


def transfer(sandbox: Admin, eth: str, to: str, wei: int, nonce: int, **where: Any) -> str:
    tx = {"to": to, "value": str(wei), "gas": 21000, "gasPrice": "20000000000", "nonce": nonce}
    return sandbox.enqueue({"chain": "ETH", "hashes": [eth], "serializedTransaction": json.dumps(tx),
                            **({"index": 1} | where)})


def test_the_daemons_decisions_are_logged_and_verify_intact_until_a_line_is_edited(
        kms: Kms, sandbox: Admin) -> None:
    eth, sender = eth_store(kms, sandbox)
    recipient = Account.create().address
    approvals = ApprovalServer({})
    try:
        approved = transfer(sandbox, eth, recipient, 1000, 0)
        refused = transfer(sandbox, eth, recipient, 2000, 1)
        approvals.answers.update({approved: 200, refused: 403})
        env = {"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url}
        run = kms.run("daemon", "--runOnce", "--testnet", "--chain=ETH", "--externalUrl", approvals.url, env=env)
        assert run.returncode == 0, run.stderr
    finally:
        approvals.close()
    log = kms.home / ".tatumrc" / "audit.log"  # beside the store by default
    assert log.stat().st_mode & 0o077 == 0
    assert chained(log)
    lines = entries(log)
    decisions = [(e["event"], e.get("pending")) for e in lines]
    assert decisions[0] == ("started", None) and decisions[-1] == ("stopped", None)
    assert sorted(decisions[1:-1]) == sorted([("signed", approved), ("broadcast", approved), ("refused", refused)])
    assert decisions.index(("signed", approved)) < decisions.index(("broadcast", approved))
    index = {event: n for n, (event, _) in enumerate(decisions)}
    [broadcast] = sandbox.get("broadcasts")
    signed, outcome, refusal = lines[index["signed"]], lines[index["broadcast"]], lines[index["refused"]]
    assert signed["signedSha256"] == hashlib.sha256(broadcast["txData"].encode()).hexdigest()
    assert signed["approval"] == "approved" and "HTTP 200" in signed["reason"] and signed["signatureIds"] == [eth]
    [done] = [tx for tx in sandbox.get("pending") if tx["id"] == approved]
    assert outcome["outcome"] == "broadcast" and outcome["txId"] == done["txId"]
    assert refusal["approval"] == "refused" and "HTTP 403" in refusal["reason"]
    text = log.read_text()
    for secret in (MQ.split()[0], PASSWORD, API_KEY, broadcast["txData"][2:40], sender.lower()):
        assert secret not in text.lower()

    report = kms.ok("audit", "verify")
    assert report["status"] == "intact: 5 entries"
    assert report["events"] == {"started": 1, "signed": 1, "broadcast": 1, "refused": 1, "stopped": 1}
    assert report["head"]["sha256"] == hashlib.sha256(log.read_bytes().splitlines()[-1]).hexdigest()

    store_before = kms.store.read_bytes()
    raw = log.read_bytes().splitlines(keepends=True)
    at = index["refused"]
    raw[at] = raw[at].replace(b'"approval":"refused"', b'"approval":"approved"')
    log.write_bytes(b"".join(raw))
    error = kms.fails("audit", "verify", str(log))
    assert json.loads(error)["error"].startswith(f"{log} line {at + 1}: edited")
    assert kms.store.read_bytes() == store_before

    other = Kms(kms.home.parent / "other")
    other.home.mkdir()
    other.ok("generatemanagedwallet", "ETH", "--testnet")
    raw[at] = raw[at].replace(b'"approval":"approved"', b'"approval":"refused"')
    log.write_bytes(b"".join(raw))
    assert "line 1: edited" in other.fails("audit", "verify", str(log))  # another store's key


def test_a_daemon_killed_after_signing_leaves_a_log_that_verifies_and_names_every_broadcast(
        kms: Kms, sandbox: Admin) -> None:
    eth, _ = eth_store(kms, sandbox)
    recipient = Account.create().address
    count = 12
    pending = [transfer(sandbox, eth, recipient, 1000 + n, n) for n in range(count)]
    sandbox.fail("/v3/ethereum/broadcast", times=count, delay=0.25)  # slow broadcasts: the kill lands mid-flight
    log = kms.home / ".tatumrc" / "audit.log"
    env = {"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url}
    daemon = kms.start("daemon", "--testnet", "--chain=ETH", "--period", "300", env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.exists() and sum(e["event"] == "broadcast" for e in entries(log)) >= 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the daemon broadcast nothing")
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.communicate(timeout=60)
    assert daemon.returncode == -signal.SIGKILL

    lines = entries(log)
    assert chained(log)
    broadcasts = sandbox.get("broadcasts")
    assert 2 <= len(broadcasts) < count, "the kill did not land while transactions were in flight"
    signed = {e["pending"]: e for e in lines if e["event"] == "signed"}
    for broadcast in broadcasts:  # everything that left the KMS was on disk as "signed" first
        entry = signed[broadcast["signatureId"]]
        assert entry["signedSha256"] == hashlib.sha256(broadcast["txData"].encode()).hexdigest()
    seen: set[str] = set()
    for entry in lines:  # and every broadcast line follows its signed line
        if entry["event"] == "signed":
            seen.add(entry["pending"])
        elif entry["event"] == "broadcast":
            assert entry["pending"] in seen

    result = kms.run("audit", "verify")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == f"intact: {len(lines)} entries" and report["lastEvent"] != "stopped"
    outcomes = {e["pending"] for e in lines if e["event"] == "broadcast"}
    assert report.get("signedWithoutOutcome", []) == [p for p in pending if p in signed and p not in outcomes]
    assert "does not end with a daemon stop" in result.stderr  # killed: the file alone cannot tell why

    # A daemon started again appends to the same chain and finishes the rest.
    again = kms.run("daemon", "--runOnce", "--testnet", "--chain=ETH", env=env)
    assert again.returncode == 0, again.stderr
    assert chained(log)
    report = kms.ok("audit", "verify")
    assert report["lastEvent"] == "stopped" and report["events"]["started"] == 2
    assert {b["signatureId"] for b in sandbox.get("broadcasts")} == set(pending)
