"""TatumClient against a real sandbox on 127.0.0.1: safe retries only, error reports, the version notice,
and an API key that never reaches a log line or an exception."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

from kms.sandbox import serve
from kms.tatum import TatumClient, TatumError, semver_key
from tests.integration.conftest import API_KEY
from tests.tatum_sandbox import Admin, chain_node

ROOT = Path(__file__).resolve().parents[2]
WALLET = "6f3c0a2e-1d5b-4c1e-9a51-3f1b0c9e7d21"
PENDING_PATH = "/v3/kms/pending/XLM"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _signed_xlm() -> str:
    from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder

    source = Keypair.random()
    tx = (TransactionBuilder(Account(source.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
          .append_payment_op(Keypair.random().public_key, Asset.native(), "1").set_timeout(300).build())
    tx.sign(source)
    return tx.to_xdr()


# -- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429, 502])
def test_a_pending_call_is_retried_after_a_transient_failure(sandbox: Admin, client: TatumClient,
                                                             status: int) -> None:
    pending_id = sandbox.enqueue({"chain": "XLM", "hashes": [WALLET], "serializedTransaction": "AAAA"})
    sandbox.fail(PENDING_PATH, status)
    assert [tx["id"] for tx in client.pending("XLM", [WALLET])] == [pending_id]
    assert sandbox.count("POST", PENDING_PATH) == 2


def test_a_pending_call_gives_up_after_its_retries(sandbox: Admin, client: TatumClient) -> None:
    sandbox.fail(PENDING_PATH, 503, times=10)
    with pytest.raises(TatumError) as caught:
        client.pending("XLM", [WALLET])
    assert caught.value.status == 503
    assert sandbox.count("POST", PENDING_PATH) == 1 + client.retries


def test_a_client_error_on_pending_is_not_retried(sandbox: Admin, client: TatumClient) -> None:
    sandbox.fail(PENDING_PATH, 403)
    with pytest.raises(TatumError) as caught:
        client.pending("XLM", [WALLET])
    assert caught.value.status == 403
    assert sandbox.count("POST", PENDING_PATH) == 1


def test_a_broadcast_that_got_a_500_is_never_retried(sandbox: Admin, client: TatumClient) -> None:
    pending_id = sandbox.enqueue({"chain": "XLM", "hashes": [WALLET], "serializedTransaction": "AAAA"})
    sandbox.fail("/v3/xlm/broadcast", 500)
    with pytest.raises(TatumError) as caught:
        client.broadcast("/v3/xlm/broadcast", {"txData": _signed_xlm(), "signatureId": pending_id})
    assert sandbox.count("POST", "/v3/xlm/broadcast") == 1
    assert caught.value.status == 500
    # What the daemon reports to the batch: the error body, pretty-printed as the original does.
    body = {"statusCode": 500, "errorCode": "sandbox.injected.failure",
            "message": "Failure injected by /sandbox/fail (500)."}
    assert caught.value.report == json.dumps(body, indent=2)
    assert [tx["id"] for tx in client.pending("XLM", [WALLET])] == [pending_id]


def test_a_broadcast_that_timed_out_is_not_resent(sandbox: Admin) -> None:
    # The sandbox receives the broadcast but answers only after the client has given up: Tatum may
    # well have broadcast it, so sending it again would be a blind re-broadcast.
    client = TatumClient(API_KEY, sandbox.url, timeout=(2.0, 0.3), backoff=0.01)
    sandbox.fail("/v3/xlm/broadcast", delay=0.8)
    with pytest.raises(TatumError, match="timed out"):
        client.broadcast("/v3/xlm/broadcast", {"txData": _signed_xlm()})
    deadline = time.monotonic() + 5
    while not sandbox.get("broadcasts") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(sandbox.get("broadcasts")) == 1
    assert sandbox.count("POST", "/v3/xlm/broadcast") == 1
    client.close()


def test_a_broadcast_is_retried_when_the_connection_was_refused() -> None:
    port = _free_port()
    started: list = []
    # Tatum comes up only after the first attempt was refused: nothing was sent, so a retry is safe.
    timer = threading.Timer(0.2, lambda: started.append(serve(port=port)))
    timer.start()
    client = TatumClient(API_KEY, f"http://127.0.0.1:{port}", backoff=0.4, retries=3)
    try:
        reply = client.broadcast("/v3/xlm/broadcast", {"txData": _signed_xlm()})
        assert reply["txId"]
        admin = Admin(started[0][1])
        assert len(admin.get("broadcasts")) == 1
        assert admin.count("POST", "/v3/xlm/broadcast") == 1
        admin.http.close()
    finally:
        timer.join()
        client.close()
        if started:
            started[0][0].shutdown()
            started[0][0].server_close()


def test_the_error_batch_is_retried_after_a_5xx(sandbox: Admin, client: TatumClient) -> None:
    errors = [{"signatureId": "5e6645712b55823de7ea82f1", "error": "Error: boom"}]
    sandbox.fail("/v3/tatum/kms/batch", 502)
    client.report_errors(errors)
    assert sandbox.get("errors") == errors
    assert sandbox.count("POST", "/v3/tatum/kms/batch") == 2


# -- the node ------------------------------------------------------------------------------------


def test_a_constant_answer_is_asked_once_for_the_nodes_life(sandbox: Admin, client: TatumClient) -> None:
    node = chain_node(client, "ETH")
    first = node.rpc("eth_chainId", [], constant=True)
    assert node.rpc("eth_chainId", [], constant=True) == first
    assert sandbox.count("POST", "/v3/ethereum/web3/***") == 1
    node.rpc("eth_chainId", [])  # not constant: asked again
    assert sandbox.count("POST", "/v3/ethereum/web3/***") == 2
    assert int(first, 16) == sandbox.get("")["chainId"]
    assert chain_node(client, "ETH").get("/v3/blockchain/fee/ETH").keys() == {"slow", "medium", "fast"}


def test_a_chain_without_a_json_rpc_proxy_says_so(client: TatumClient) -> None:
    with pytest.raises(TatumError, match="BTC has no 'rpc' endpoint"):
        chain_node(client, "BTC").rpc("getblockcount", [])


# -- the API key stays secret --------------------------------------------------------------------


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + str(exc) + repr(exc) + str(getattr(exc, "report", ""))


def test_the_api_key_never_reaches_a_log_line_or_an_exception(sandbox: Admin,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # any library logging URLs at DEBUG would show node URLs, which hold the key
    seen: list[str] = []
    client = TatumClient(API_KEY, sandbox.url, backoff=0.01, retries=1)
    seen.append(repr(client) + repr(chain_node(client, "ETH")))
    client.pending("ETH", [WALLET])
    chain_node(client, "ETH").rpc("eth_chainId", [])

    sandbox.fail(f"/v3/ethereum/web3/{API_KEY}", 500, times=2)  # node proxy failing (retried, then raised)
    with pytest.raises(TatumError) as caught:
        chain_node(client, "ETH").rpc("eth_gasPrice", [])
    seen.append(_all_text(caught.value))
    with pytest.raises(TatumError) as caught:  # a JSON-RPC error
        chain_node(client, "ETH").rpc("eth_sendRawTransaction", ["0x00"])
    seen.append(_all_text(caught.value))
    with pytest.raises(TatumError) as caught:  # an HTTP error with a body
        client.broadcast("/v3/ethereum/broadcast", {"txData": "0x00"})
    seen.append(_all_text(caught.value))

    dead = TatumClient(API_KEY, f"http://127.0.0.1:{_free_port()}", backoff=0.01, retries=1)
    for call in (lambda: chain_node(dead, "ETH").rpc("eth_chainId", []), lambda: dead.pending("ETH", [WALLET])):
        with pytest.raises(TatumError) as caught:  # connection refused: requests' text holds the full URL
            call()
        seen.append(_all_text(caught.value))
    client.close()
    dead.close()

    assert any("/v3/ethereum/web3/***" in record.getMessage() for record in caplog.records)
    assert any("refused" in text for text in seen)
    for text in [*seen, *(record.getMessage() for record in caplog.records), caplog.text]:
        assert API_KEY not in text


# -- the version header --------------------------------------------------------------------------


def test_a_newer_release_is_announced_at_most_every_30_seconds(sandbox: Admin, client: TatumClient,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kms.tatum")
    sandbox.http.post(f"{sandbox.url}/sandbox/latest-version", json={"header": " 9.1.0 ; warn ; Please upgrade KMS"})
    client.pending("ETH", [WALLET])
    client.pending("ETH", [WALLET])
    notices = [r for r in caplog.records if "Latest version" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in notices] == [
        (logging.WARNING, "WARN: Please upgrade KMS. Current version: 8.0.1. Latest version: 9.1.0")]


@pytest.mark.parametrize("header, expected", [
    ("9.0.0;ERROR;Upgrade now", logging.ERROR),
    ("8.0.0;WARN;Old news", None),
    ("8.0.1;WARN;Same version", None),
    ("9.0.0;WARN;", None),
    ("not-a-version;WARN;Hm", None),
])
def test_the_version_header_is_judged_as_the_original_does(sandbox: Admin, client: TatumClient,
                                                           caplog: pytest.LogCaptureFixture,
                                                           header: str, expected: int | None) -> None:
    caplog.set_level(logging.INFO, logger="kms.tatum")
    sandbox.http.post(f"{sandbox.url}/sandbox/latest-version", json={"header": header})
    client.pending("ETH", [WALLET])
    levels = [r.levelno for r in caplog.records if "Latest version" in r.getMessage()]
    assert levels == ([expected] if expected else [])


@pytest.mark.parametrize("lower, higher", [
    ("8.0.1", "8.0.2"), ("8.0.9", "8.0.10"), ("8.9.0", "9.0.0"), ("9.0.0-beta.1", "9.0.0"),
    ("1.0.0-alpha", "1.0.0-alpha.1"), ("1.0.0-alpha.1", "1.0.0-alpha.beta"), ("1.0.0-beta.2", "1.0.0-beta.11"),
])
def test_semver_ordering(lower: str, higher: str) -> None:
    assert semver_key(lower) < semver_key(higher)
    assert semver_key("v1.2.3+build.5") == semver_key("1.2.3")
    assert semver_key("1.2") is None


# -- cheap to import -----------------------------------------------------------------------------


def test_importing_the_client_and_the_approval_check_does_not_load_requests() -> None:
    code = ("import sys, kms.tatum, kms.approval; "
            "print(sorted(m for m in ('requests', 'urllib3', 'urllib.request') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
