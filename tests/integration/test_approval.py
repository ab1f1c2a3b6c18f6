"""The four-eye check against a real approval server on 127.0.0.1: only a 2xx approves, everything else fails closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from kms.approval import check
from tests.approval_server import ENDLESS, HANG, TRICKLE, ApprovalServer

PENDING = {
    "id": "5e6645712b55823de7ea82f1",
    "chain": "ETH",
    "hashes": ["6f3c0a2e-1d5b-4c1e-9a51-3f1b0c9e7d21"],
    "serializedTransaction": '{"to":"0x687422eEA2cB73B5d3e242bA5456b782919AFc85","value":"1","nonce":3}',
    "index": 2,
}


@pytest.fixture
def approvals() -> Iterator[ApprovalServer]:
    server = ApprovalServer({"ok": 200})
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("status", [200, 202, 204])
def test_a_2xx_approves(approvals: ApprovalServer, method: str, status: int) -> None:
    approvals.answers[PENDING["id"]] = status
    verdict = check(PENDING, approvals.url, method)
    assert verdict.approved, verdict.reason
    assert approvals.requests == [{"method": method, "path": f"/approve/{PENDING['id']}",
                                   "body": PENDING if method == "POST" else None}]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("status", [404, 500, 503, 302])
def test_any_other_status_refuses_without_retry(approvals: ApprovalServer, method: str, status: int) -> None:
    approvals.answers[PENDING["id"]] = status
    verdict = check(PENDING, approvals.url, method)
    assert not verdict.approved
    assert str(status) in verdict.reason
    # One request only: no retry, and a redirect (to an id that would approve) is not followed.
    assert len(approvals.requests) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_hanging_server_times_out_and_refuses(approvals: ApprovalServer, method: str) -> None:
    approvals.answers[PENDING["id"]] = HANG
    started = time.monotonic()
    verdict = check(PENDING, approvals.url, method, timeout=0.4)
    elapsed = time.monotonic() - started
    assert not verdict.approved
    assert verdict.reason == "approval server timed out after 0.4 s"
    assert elapsed < 2.0
    assert len(approvals.requests) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_refused_connection_refuses(method: str) -> None:
    verdict = check(PENDING, f"http://127.0.0.1:{_closed_port()}/approve", method, timeout=2)
    assert not verdict.approved
    assert verdict.reason == "approval server: connection refused"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_tls_failure_refuses(approvals: ApprovalServer, method: str) -> None:
    approvals.answers[PENDING["id"]] = 200  # would approve over plain HTTP
    verdict = check(PENDING, approvals.url.replace("http://", "https://"), method, timeout=2)
    assert not verdict.approved
    assert "TLS" in verdict.reason


def test_an_unsupported_method_or_missing_id_refuses(approvals: ApprovalServer) -> None:
    approvals.answers[PENDING["id"]] = 200
    assert not check(PENDING, approvals.url, "PUT").approved
    assert not check({**PENDING, "id": ""}, approvals.url, "GET").approved
    assert approvals.requests == []


def test_the_id_cannot_escape_the_approval_path(approvals: ApprovalServer) -> None:
    approvals.answers["ok"] = 200
    verdict = check({**PENDING, "id": "../ok"}, approvals.url, "GET")
    assert not verdict.approved  # the id is sent as one quoted path segment, not resolved to /approve/ok
    assert approvals.requests[0]["path"] == "/approve/..%2Fok"


def test_a_trailing_slash_in_the_url_is_harmless(approvals: ApprovalServer) -> None:
    approvals.answers[PENDING["id"]] = 200
    assert check(PENDING, approvals.url + "/", "GET").approved
    assert approvals.requests[0]["path"] == f"/approve/{PENDING['id']}"


def test_a_trickled_approval_is_cut_off_at_the_timeout_not_waited_for(approvals: ApprovalServer) -> None:
    # The server would approve, one byte every half second (about 20 s in all); per-read timeouts never fire.
    approvals.answers[PENDING["id"]] = TRICKLE
    started = time.monotonic()
    verdict = check(PENDING, approvals.url, "GET", timeout=1.5)
    elapsed = time.monotonic() - started
    assert not verdict.approved
    assert verdict.reason == "approval server timed out after 1.5 s"
    assert 1.4 < elapsed < 3.0
    assert approvals.finished == []


def test_an_endless_approval_body_is_not_an_approval(approvals: ApprovalServer) -> None:
    approvals.answers[PENDING["id"]] = ENDLESS
    verdict = check(PENDING, approvals.url, "POST", timeout=20)
    assert not verdict.approved
    assert verdict.reason == "approval server: response larger than 16 MiB"
