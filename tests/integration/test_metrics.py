"""`tatum-kms daemon --metrics`: /metrics scraped while the real daemon runs against the sandbox, and /healthz.

Scrapes are parsed with prometheus-client's own text parser; the counters are compared with what the
sandbox and the approval server saw happen.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from tests.approval_server import ApprovalServer
from tests.conftest import softhsm_module
from tests.kms_process import KMS_BIN, MQ, PASSWORD, Kms
from tests.servers import free_port
from tests.tatum_sandbox import Admin

API_KEY = "metrics-test-key-31c9d2"
ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(address: str) -> tuple[Samples, str]:
    text = requests.get(f"http://{address}/metrics", timeout=5).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, text


def health(address: str) -> tuple[int, dict[str, Any]]:
    try:
        response = requests.get(f"http://{address}/healthz", timeout=5)
    except requests.ConnectionError:
        return 0, {}
    return response.status_code, response.json()


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stop(daemon: subprocess.Popen[str]) -> str:
    """SIGTERM, then the daemon's stdout; it must exit 0."""
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    return out


@pytest.fixture
def approvals() -> Iterator[ApprovalServer]:
    server = ApprovalServer({})
    yield server
    server.close()


def start_daemon(kms: Kms, api_url: str, address: str, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return kms.start("daemon", "--testnet", "--chain=ETH", f"--metrics={address}", *args,
                     env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": api_url, **(env or {})})


def test_a_scrape_during_a_run_counts_what_the_daemon_did(kms: Kms, sandbox: Admin,
                                                          approvals: ApprovalServer) -> None:
    eth = kms.ok("storemanagedwallet", "ETH", "--testnet", input=MQ + "\n")["signatureId"]
    sender = kms.ok("getaddress", eth, "1")["address"]
    sandbox.fund(sender, 10**18)
    recipient = Account.create().address

    def transfer(wei: int, nonce: int, **where: Any) -> str:
        tx = {"to": recipient, "value": str(wei), "gas": 21000, "gasPrice": "20000000000", "nonce": nonce}
        return sandbox.enqueue({"chain": "ETH", "hashes": [eth], "serializedTransaction": json.dumps(tx), **where})

    good = transfer(1000, 0, index=1)
    refused = transfer(2000, 1, index=1)
    unfunded = transfer(3000, 0, index=2)  # index 2 holds no ether: the EVM refuses the broadcast
    no_index = transfer(4000, 1)  # a mnemonic wallet without an index: it cannot be signed
    approvals.answers.update({good: 200, unfunded: 200, no_index: 200, refused: 403})
    address = f"127.0.0.1:{free_port()}"
    started = time.time()

    daemon = start_daemon(kms, sandbox.url, address, "--period", "300", "--externalUrl", approvals.url)
    try:
        # The first cycle runs at once; the next would come only after 300 s: the counters are one cycle's.
        samples, text = wait_for(
            lambda: (s := scrape_or_none(address)) and s[0].get(("tatum_kms_cycle_duration_seconds_count", ())) == 1
            and s, what="the first cycle to end")

        def count(outcome: str) -> float:
            return samples[("tatum_kms_transactions_total", (("chain", "ETH"), ("outcome", outcome)))]

        assert [b["signatureId"] for b in sandbox.get("broadcasts")] == [good]
        assert sandbox.balance(recipient) == 1000
        assert {r["path"].rsplit("/", 1)[-1] for r in approvals.requests} == {good, refused, unfunded, no_index}
        assert (count("polled"), count("approved"), count("refused")) == (4, 3, 1)
        assert (count("signed"), count("broadcast"), count("failed")) == (2, 1, 2)  # no index; the EVM said no
        assert samples[("tatum_kms_approval_duration_seconds_count", (("chain", "ETH"), ("verdict", "approved")))] == 3
        assert samples[("tatum_kms_approval_duration_seconds_count", (("chain", "ETH"), ("verdict", "refused")))] == 1
        assert samples[("tatum_kms_signing_duration_seconds_count", (("chain", "ETH"),))] == 2
        assert samples[("tatum_kms_broadcast_duration_seconds_count", (("chain", "ETH"), ("ok", "true")))] == 1
        assert samples[("tatum_kms_broadcast_duration_seconds_count", (("chain", "ETH"), ("ok", "false")))] == 1
        assert started <= samples[("tatum_kms_last_successful_poll_timestamp_seconds", ())] <= time.time()
        assert samples[("tatum_kms_audit_entries", ())] >= 6  # started, refused, 2 signed, 2 outcomes, failed
        assert samples[("tatum_kms_healthy", ())] == 1
        assert health(address) == (200, {"status": "ok"})
        for secret in (eth, sender.lower(), recipient.lower(), API_KEY, PASSWORD, good, MQ.split()[0]):
            assert secret not in text.lower(), "a label or value carries an id, an address or a secret"
    finally:
        out = stop(daemon)
    assert f"pending={good}" in out


def scrape_or_none(address: str) -> tuple[Samples, str] | None:
    try:
        return scrape(address)
    except requests.ConnectionError:
        return None


class Relay:
    """A TCP relay on 127.0.0.1:`port` to `target`; `close` drops the listener and every connection, so
    the address refuses connections as a down Tatum API does."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self._target = target
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_healthz_turns_503_when_the_tatum_api_is_unreachable_for_three_periods_and_200_when_it_is_back(
        kms: Kms, sandbox: Admin) -> None:
    kms.ok("generatemanagedwallet", "ETH", "--testnet")
    target = urlsplit(sandbox.url)
    port = free_port()
    relay = Relay(port, (target.hostname, target.port))
    address = f"127.0.0.1:{free_port()}"
    daemon = start_daemon(kms, f"http://127.0.0.1:{port}", address, "--period", "0.5")
    try:
        wait_for(lambda: health(address)[0] == 200, what="a healthy daemon")
        relay.close()  # the Tatum API now refuses connections

        status, body = wait_for(lambda: (h := health(address))[0] == 503 and h, what="/healthz to turn 503")
        samples, _ = scrape(address)
        # Not at the first failed poll: only once three periods (1.5 s) have passed since the last good one.
        assert time.time() - samples[("tatum_kms_last_successful_poll_timestamp_seconds", ())] > 1.5
        assert body["status"] == "unhealthy"
        assert "more than 3 periods of 0.5 s" in body["reason"]
        wait_for(lambda: "ETH:" in health(address)[1].get("reason", ""), what="the failed poll in the reason")
        assert "refused" in health(address)[1]["reason"].lower()
        samples, _ = scrape(address)
        assert samples[("tatum_kms_poll_errors_total", (("chain", "ETH"),))] >= 1
        assert samples[("tatum_kms_healthy", ())] == 0

        relay = Relay(port, (target.hostname, target.port))  # the API is back on the same address
        wait_for(lambda: health(address) == (200, {"status": "ok"}), what="/healthz to recover")
    finally:
        stop(daemon)
        relay.close()


def test_healthz_is_503_while_the_store_is_locked(kms: Kms, sandbox: Admin) -> None:
    kms.ok("generatemanagedwallet", "ETH", "--testnet")
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in kms.environ({"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url}).items()
           if k != "TATUM_KMS_PASSWORD"}
    daemon = subprocess.Popen([KMS_BIN, "daemon", "--testnet", "--chain=ETH", "--period", "0.5",
                               f"--metrics={address}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        status, body = wait_for(lambda: (h := health(address))[0] and h, what="the metrics server")
        assert status == 503 and "locked" in body["reason"]  # the password has not been given yet
        assert daemon.stdin is not None
        daemon.stdin.write(PASSWORD + "\n")
        daemon.stdin.flush()
        wait_for(lambda: health(address)[0] == 200, what="/healthz after the unlock")
    finally:
        stop(daemon)


def test_healthz_is_503_when_the_token_no_longer_has_the_stores_key(tmp_path: Path, sandbox: Admin) -> None:
    pin = "5678"
    conf = subprocess.check_output(["bash", str(ROOT / "softhsm-config" / "make-token.sh"), str(tmp_path / "hsm"),
                                    "metrics-token"], env={**os.environ, "TATUM_KMS_PKCS11_PIN": pin},
                                   text=True).strip()
    token_env = {"SOFTHSM2_CONF": conf, "TATUM_KMS_PKCS11_MODULE": softhsm_module(),
                 "TATUM_KMS_PKCS11_TOKEN": "metrics-token", "TATUM_KMS_PKCS11_PIN": pin}
    home = tmp_path / "home"
    home.mkdir()
    kms = Kms(home, env=token_env)
    kms.ok("generatemanagedwallet", "ETH", "--testnet")
    address = f"127.0.0.1:{free_port()}"
    daemon = start_daemon(kms, sandbox.url, address, "--period", "0.5")
    try:
        wait_for(lambda: health(address)[0] == 200, what="a healthy daemon")
        # Another process deletes the store's key (the only key on this private token).
        destroy = (f"import hsm; t = hsm.Token.open(hsm.TokenConfig({softhsm_module()!r}, 'metrics-token', {pin!r}, "
                   "'tatum-kms-kek')); t.destroy_key(t.find_or_create_key()); t.close()")
        subprocess.run([sys.executable, "-c", destroy], env={**os.environ, "SOFTHSM2_CONF": conf}, check=True,
                       timeout=60)
        status, body = wait_for(lambda: (h := health(address))[0] == 503 and h, what="/healthz to turn 503")
        assert "PKCS#11 token does not answer" in body["reason"]
    finally:
        stop(daemon)
