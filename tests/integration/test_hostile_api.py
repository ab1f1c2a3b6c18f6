"""The daemon under a hostile or broken API (issue 9, items 6-10), over real sockets on 127.0.0.1.

`HostileApi` answers chosen paths with deep JSON, a huge chunk size, a huge Content-Length, an endless body,
a trickle in the headers or the body, malformed headers or ids with CR/LF in them, and forwards the rest to
a real `tatum-kms sandbox`, whose EVM executes what the daemon broadcasts. The daemon runs in-process,
except where the process itself is the point (SIGTERM, peak RSS).
"""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

import chains
from kms.daemon import Daemon, DaemonOptions
from kms.eventlog import EventLog
from kms.store import WalletStore
from kms.tatum import TatumClient, TatumError
from tests.approval_server import TRICKLE, ApprovalServer
from tests.kms_process import KMS_BIN, Kms
from tests.servers import HostileApi, RawRequest
from tests.tatum_sandbox import Admin, chain_node, running_sandbox

API_KEY = "hostile-test-key-90d1f4e2"
PASSWORD = "hostile api store password"
PENDING = "POST /v3/kms/pending/ETH"
WEB3 = f"POST /v3/ethereum/web3/{API_KEY}"
MiB = 2**20


# -- misbehaviours --------------------------------------------------------------------------------


def reply(body: bytes, status: int = 200) -> Any:
    def behave(conn: socket.socket, request: RawRequest) -> bool:
        conn.sendall(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return True
    return behave


def huge_chunk(conn: socket.socket, request: RawRequest) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7FFFFFFFFFFFFFFF\r\n[")
    while True:
        conn.sendall(b"[" * 65536)


def huge_length(conn: socket.socket, request: RawRequest) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n[")
    while True:
        conn.sendall(b"1," * 32768)


def endless(conn: socket.socket, request: RawRequest) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
    while True:
        conn.sendall(b'{"id": "x", "chain": "ETH"},' * 2048)


def trickle(head: bytes, body: bytes = b"", every: float = 0.3) -> Any:
    """Send `head` at once, then `body` one byte every `every` seconds (per-read timeouts never fire)."""
    def behave(conn: socket.socket, request: RawRequest) -> bool:
        conn.sendall(head)
        for byte in body:
            time.sleep(every)
            conn.sendall(bytes([byte]))
        return False
    return behave


TRICKLE_HEADERS = trickle(b"HTTP/1.1 200 OK\r\n", b"X-Padding: " + b"a" * 1000)
TRICKLE_BODY = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b" " * 1000)


def pending_with(*raw_elements: bytes, upstream: HostileApi) -> Any:
    """The upstream's pending list with `raw_elements` (JSON text, any shape) put in front of it."""
    def behave(conn: socket.socket, request: RawRequest) -> bool:
        status, _, body = upstream.fetch(request)
        assert status == 200, body
        tail = body.strip()[1:-1].strip()
        listed = b",".join([*raw_elements, *([tail] if tail else [])])
        return reply(b"[" + listed + b"]")(conn, request)
    return behave


# -- the world ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Admin]:
    with running_sandbox() as admin:
        yield admin


@pytest.fixture(scope="module")
def wallet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WalletStore, str, str]]:
    """An in-process store with one testnet ETH private-key wallet: (store, signature id, address)."""
    path = tmp_path_factory.mktemp("hostile") / "wallet.dat"
    store = WalletStore.open(path, PASSWORD, None, create=True)
    private_key, address = chains.get("ETH").generate_private_key(True)
    signature_id = store.add("ETH", True, {"privateKey": private_key, "address": address})
    yield store, signature_id, address
    store.close()


@pytest.fixture
def api(sandbox: Admin) -> Iterator[HostileApi]:
    server = HostileApi(sandbox.url)
    yield server
    server.close()


class Run:
    """One in-process daemon run: what it logged, and how long it took."""

    def __init__(self, log: str, seconds: float) -> None:
        self.log = log
        self.lines = log.splitlines()
        self.seconds = seconds

    def outcomes(self) -> list[str]:
        return [line.split(" ")[2] for line in self.lines]


def run_daemon(store: WalletStore, url: str, *, fmt: str = "text", deadline: float = 60.0,
               **options: Any) -> Run:
    stream = io.StringIO()
    client = TatumClient(API_KEY, url, deadline=deadline, backoff=0.01)
    daemon = Daemon(DaemonOptions(testnet=True, chains=("ETH",), run_once=True, **options), store, client,
                    EventLog(stream, fmt, secrets=[API_KEY]))
    started = time.monotonic()
    try:
        daemon.run()
    finally:
        client.close()
    run = Run(stream.getvalue(), time.monotonic() - started)
    assert API_KEY not in run.log
    return run


def transfer(sandbox: Admin, signature_id: str, recipient: str, wei: int) -> str:
    """Enqueue a transfer from the wallet; the daemon fills in the nonce from the node."""
    return sandbox.enqueue({"chain": "ETH", "hashes": [signature_id], "serializedTransaction": json.dumps(
        {"to": recipient, "value": str(wei), "gas": 21000, "gasPrice": "1000000000"})})


def broadcast_ids(sandbox: Admin) -> list[str]:
    return [b["signatureId"] for b in sandbox.get("broadcasts")]


# -- deep JSON, bad elements and a good one after them --------------------------------------------


def test_a_deeply_nested_pending_list_fails_the_poll_and_nothing_else(wallet: tuple[WalletStore, str, str],
                                                                      api: HostileApi) -> None:
    store, _, _ = wallet
    api.routes[PENDING] = reply(b"[" * 200_000 + b"]" * 200_000)
    run = run_daemon(store, api.url)
    assert run.outcomes() == ["started", "poll-failed", "stopped"]
    assert "nests deeper than 64 levels" in run.lines[1]


def test_bad_elements_skip_only_themselves_and_the_valid_transaction_after_them_is_signed(
        wallet: tuple[WalletStore, str, str], sandbox: Admin, api: HostileApi) -> None:
    store, signature_id, address = wallet
    sandbox.fund(address, 10**18)
    recipient = Account.create().address
    good = transfer(sandbox, signature_id, recipient, 4321)
    deep_payload = json.dumps("[" * 100_000 + "]" * 100_000)  # nested JSON inside the string field
    bad = [
        b'{"id": "deep-payload", "chain": "ETH", "hashes": ["%s"], "serializedTransaction": %s}'
        % (signature_id.encode(), deep_payload.encode()),
        b"[" * 60 + b"]" * 60,  # nested, but within the list's depth limit: not an object
        b'{"id": "sigs-not-a-list", "chain": "ETH", "hashes": [], "serializedTransaction": "{}", "signatures": true}',
        b'{"id": "index-nan", "chain": "ETH", "serializedTransaction": "{}", "index": "NaN"}',
        b'"just a string"', b"null", b"1e999",
    ]
    api.routes[PENDING] = pending_with(*bad, upstream=api)

    run = run_daemon(store, api.url)

    assert good in broadcast_ids(sandbox)
    assert sandbox.balance(recipient) == 4321  # executed by the sandbox's EVM: a valid signature
    assert [o for o in run.outcomes() if o not in ("started", "stopped")].count("invalid") == 6
    assert run.outcomes().count("signed") == 1 and run.outcomes().count("failed") == 1
    reported = {e["signatureId"]: e["error"] for e in sandbox.get("errors")}
    assert "nests deeper than 64 levels" in reported["deep-payload"]
    assert "signatures" in reported["sigs-not-a-list"] and "index" in reported["index-nan"]


# -- size caps on every call ----------------------------------------------------------------------


def odd_length(conn: socket.socket, request: RawRequest) -> bool:
    """A Content-Length in digits Python's int() takes but HTTP does not ("²"), then an endless body."""
    conn.sendall("HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\n[".encode("utf-8"))
    while True:
        conn.sendall(b"1," * 32768)


@pytest.mark.parametrize("behaviour", [huge_chunk, huge_length, endless], ids=["chunk", "length", "endless"])
def test_an_oversized_answer_is_refused_at_the_cap_on_every_call(api: HostileApi, behaviour: Any) -> None:
    client = TatumClient(API_KEY, api.url, retries=0)
    api.routes[PENDING] = behaviour
    api.routes[WEB3] = behaviour
    api.routes["POST /v3/ethereum/broadcast"] = behaviour
    calls = {"pending": lambda: client.pending("ETH", ["w"]),
             "node": lambda: chain_node(client, "ETH").rpc("eth_getTransactionCount", ["0x00", "pending"]),
             "broadcast": lambda: client.broadcast("/v3/ethereum/broadcast", {"txData": "0x00"})}
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(TatumError, match="response larger than 16 MiB") as caught:
            call()
        assert time.monotonic() - started < 10, name
        assert API_KEY not in str(caught.value)
    client.close()


def test_a_content_length_http_does_not_allow_is_refused_at_once_not_read_as_a_length(api: HostileApi) -> None:
    # RFC 9112 section 6.3: an invalid Content-Length is an unrecoverable error, never a guess at the length.
    client = TatumClient(API_KEY, api.url, retries=0)
    api.routes["POST /v3/ethereum/broadcast"] = odd_length
    started = time.monotonic()
    with pytest.raises(TatumError, match="malformed response \\(a bad Content-Length\\)") as caught:
        client.broadcast("/v3/ethereum/broadcast", {"txData": "0x00"})
    assert time.monotonic() - started < 10
    assert caught.value.sent and API_KEY not in str(caught.value)
    client.close()


def test_the_cap_is_configurable_and_a_response_under_it_is_read(api: HostileApi) -> None:
    body = json.dumps([{"pad": "x" * 1000}] * 3000).encode()  # about 3 MiB
    api.routes[PENDING] = reply(body)
    client = TatumClient(API_KEY, api.url, retries=0)
    assert len(client.pending("ETH", ["w"])) == 3000
    client.close()
    small = TatumClient(API_KEY, api.url, retries=0, max_response_bytes=2 * MiB)
    with pytest.raises(TatumError, match="response larger than 2 MiB"):
        small.pending("ETH", ["w"])
    small.close()


# -- a total deadline on every call ---------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [TRICKLE_HEADERS, TRICKLE_BODY], ids=["headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_deadline_retries_included(api: HostileApi, behaviour: Any) -> None:
    # One byte every 0.3 s: the 30 s read timeout never fires. The call (3 retries allowed) ends at 2 s.
    client = TatumClient(API_KEY, api.url, deadline=2.0, retries=3, backoff=0.01)
    api.routes[PENDING] = behaviour
    api.routes[WEB3] = behaviour
    for call in (lambda: client.pending("ETH", ["w"]), lambda: chain_node(client, "ETH").rpc("eth_gasPrice", [])):
        started = time.monotonic()
        with pytest.raises(TatumError, match="no complete response within the 2 s deadline") as caught:
            call()
        assert 1.9 < time.monotonic() - started < 3.5
        assert API_KEY not in str(caught.value)
    assert api.requests.count(PENDING) == 1 and api.requests.count(WEB3) == 1  # no time was left to retry
    client.close()


def test_a_trickling_approval_server_means_not_approved_at_the_approval_timeout(
        wallet: tuple[WalletStore, str, str], sandbox: Admin, api: HostileApi) -> None:
    store, signature_id, _ = wallet
    pending = transfer(sandbox, signature_id, Account.create().address, 1)
    approvals = ApprovalServer({pending: TRICKLE})  # a full "200 OK", one byte every 0.5 s (about 20 s)
    try:
        run = run_daemon(store, api.url, external_url=approvals.url, approval_timeout=3.0, wallets=(signature_id,),
                         transaction_ids=frozenset({pending}))
    finally:
        approvals.close()
    [refusal] = [line for line in run.lines if f"pending={pending}" in line]
    assert " not-approved " in refusal and "approval server timed out after 3 s" in refusal
    assert 2.9 < run.seconds < 6
    assert pending not in broadcast_ids(sandbox)


# -- the text log cannot be forged ----------------------------------------------------------------

FORGED = "2026-01-01T00:00:00.000Z INFO signed chain=ETH pending=forged Tx was processed: forged"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_control_characters_from_the_network_cannot_forge_log_lines(wallet: tuple[WalletStore, str, str],
                                                                    api: HostileApi, fmt: str) -> None:
    store, signature_id, _ = wallet
    ids = [f"a\n{FORGED}", f"b\r{FORGED}", f"c\r\n{FORGED}", f"d\u2028{FORGED}", f"e\x85{FORGED}",
           f"f\x1b[2K\r{FORGED}", f"g {FORGED}"]
    elements = [json.dumps({"id": tx_id, "chain": f"ETH\n{FORGED}", "serializedTransaction": "{}",
                            "hashes": [signature_id], "index": f"\n{FORGED}"}).encode() for tx_id in ids]
    api.routes[PENDING] = reply(b"[" + b",".join(elements) + b"]")

    run = run_daemon(store, api.url, fmt=fmt)

    assert len(run.lines) == 2 + len(ids)  # started, one line per bad element, stopped
    if fmt == "json":
        assert sorted(json.loads(line).get("pending", "") for line in run.lines)[2:] == sorted(ids)
        return
    assert not any(line.startswith("2026-01-01") for line in run.lines)
    for line, tx_id in zip(run.lines[1:-1], ids, strict=True):
        fields = line.split(" ")
        assert fields[2] == "invalid" and fields[4].startswith("pending=" + tx_id[0])
        assert "\r" not in line and "\x1b" not in line and "\u2028" not in line and "\x85" not in line
    assert "pending=a\\x0a2026-01-01T00:00:00.000Z\\x20INFO" in run.log


# -- malformed header lines are skipped, and nothing logs the API key ------------------------------


def test_malformed_header_lines_are_skipped_and_nothing_logs_the_api_key(api: HostileApi,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api.routes[WEB3] = lambda conn, request: conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 41\r\n: no name\r\nNo colon at all\r\nBad Name: x\r\n\r\n"
        b'{"jsonrpc":"2.0","id":1,"result":"0x539"}') or True
    client = TatumClient(API_KEY, api.url, retries=0)
    assert chain_node(client, "ETH").rpc("eth_chainId", []) == "0x539"
    client.close()
    assert API_KEY not in caplog.text
    assert all(API_KEY not in record.getMessage() and not record.exc_info for record in caplog.records)


# -- the process: SIGTERM within one deadline, and bounded memory ---------------------------------


@pytest.fixture(scope="module")
def kms_home(tmp_path_factory: pytest.TempPathFactory) -> Kms:
    """A real store (one testnet ETH key) for the subprocess tests."""
    kms = Kms(tmp_path_factory.mktemp("hostile-home"))
    kms.lines("generatemanagedprivatekeybatch", "ETH", "1", "--testnet")
    return kms


def test_sigterm_during_a_trickled_poll_exits_within_one_deadline(kms_home: Kms, api: HostileApi) -> None:
    api.routes[PENDING] = trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 10_000)
    proc = kms_home.start("daemon", "--testnet", "--chain=ETH", "--period", "0.2", "--requestTimeout", "2",
                          env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": api.url})
    try:
        api.wait_for(PENDING)
        time.sleep(0.3)  # well inside the trickled answer
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        waited = time.monotonic() - signalled
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert waited < 4.0  # the poll in flight ends at its 2 s deadline; nothing is retried after SIGTERM
    assert out.splitlines()[-1].split()[2] == "stopped"
    assert "no complete response within the 2 s deadline" in out
    assert api.requests.count(PENDING) == 1


#: Runs a command and prints its exit code, output and peak RSS. A child's ru_maxrss starts at the RSS of the
#: process it was spawned from, so the daemon is spawned from this small launcher, not from pytest.
LAUNCHER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def peak_rss_mb(kms: Kms, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    launched = subprocess.run([sys.executable, "-c", LAUNCHER, KMS_BIN, *args], capture_output=True, text=True,
                              env=kms.environ(env), timeout=120, check=True)
    result = json.loads(launched.stdout)
    return result["peak_kib"] * 1024 / 1e6, result


def test_the_daemons_peak_memory_stays_bounded_under_an_endless_body(kms_home: Kms, api: HostileApi) -> None:
    api.routes[PENDING] = endless
    env = {"TATUM_API_KEY": API_KEY, "TATUM_API_URL": api.url}
    peak_mb, result = peak_rss_mb(kms_home, env, "daemon", "--runOnce", "--testnet", "--chain=ETH")
    assert result["code"] == 0, result["stderr"]
    assert "response larger than 16 MiB" in result["stdout"]
    assert api.requests.count(PENDING) == 1  # too large is not retried: it would be too large again
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB"


def test_the_real_command_refuses_a_nan_period_with_one_line_and_leaves_the_store_alone(kms_home: Kms) -> None:
    before = Path(kms_home.store).read_bytes()
    result = kms_home.run("daemon", "--testnet", "--period", "nan", env={"TATUM_API_KEY": API_KEY}, timeout=30)
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "--period" in json.loads(line)["error"]
    assert Path(kms_home.store).read_bytes() == before
