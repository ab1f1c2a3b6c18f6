"""/healthz's rules with a clock the test moves, the --metrics address, and the HEALTHCHECK probe's URL."""

from __future__ import annotations

import pytest

from kms.errors import ConfigError
from kms.healthcheck import probe_url
from kms.metrics import TOKEN_CHECK_TTL, Health, parse_address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unlocked(period: float = 5.0) -> tuple[Health, Clock]:
    clock = Clock()
    health = Health(period, clock)
    health._unlocked = True
    return health, clock


def test_healthy_only_while_a_good_cycle_ended_within_three_periods() -> None:
    health, clock = unlocked(period=5)
    assert health.check() == (True, "")  # just started: the first cycle has three periods to succeed
    clock.now += 16
    healthy, reason = health.check()
    assert not healthy and reason.startswith("no poll cycle has succeeded 16 s ago")
    health.cycle_ended(True)
    assert health.check() == (True, "")
    clock.now += 15
    assert health.check()[0]
    health.poll_error("ETH: POST /v3/kms/pending/ETH failed: connection refused")
    health.cycle_ended(False)  # a failed cycle does not count as one that ended well
    clock.now += 0.5
    healthy, reason = health.check()
    assert not healthy
    assert reason == ("the last successful poll cycle ended 16 s ago (more than 3 periods of 5 s): "
                      "ETH: POST /v3/kms/pending/ETH failed: connection refused")
    health.cycle_ended(True)
    assert health.check() == (True, "")


def test_unhealthy_while_the_store_is_locked() -> None:
    health = Health(5, Clock())
    assert health.check() == (False, "the wallet store is locked (the daemon is starting or stopping)")


def test_a_token_that_stops_answering_makes_it_unhealthy_within_the_check_ttl() -> None:
    health, clock = unlocked()
    calls: list[float] = []
    broken: list[Exception] = []

    def check() -> None:
        calls.append(clock.now)
        if broken:
            raise broken[0]

    health._token = check
    assert health.check()[0] and len(calls) == 1
    assert health.check()[0] and len(calls) == 1  # asked again only after the TTL
    broken.append(RuntimeError("CKR_DEVICE_REMOVED"))
    clock.now += TOKEN_CHECK_TTL + 0.1
    assert health.check() == (False, "the PKCS#11 token does not answer: CKR_DEVICE_REMOVED")
    broken.clear()
    clock.now += TOKEN_CHECK_TTL + 0.1
    assert health.check()[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("9464", ("127.0.0.1", 9464)), (":9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:1", ("0.0.0.0", 1)), ("[::1]:9464", ("::1", 9464)),  # noqa: S104 - parsed, not bound
])
def test_metrics_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "localhost:", "127.0.0.1:99999", "host:http", ""])
def test_bad_metrics_addresses_are_one_line_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="--metrics takes HOST:PORT"):
        parse_address(text)


@pytest.mark.parametrize(("address", "url"), [
    ("0.0.0.0:9464", "http://127.0.0.1:9464/healthz"), ("[::]:9464", "http://[::1]:9464/healthz"),
    ("10.1.2.3:80", "http://10.1.2.3:80/healthz"), ("9464", "http://127.0.0.1:9464/healthz"),
])
def test_the_healthcheck_probes_a_wildcard_bind_on_the_loopback(address: str, url: str) -> None:
    assert probe_url(address) == url
