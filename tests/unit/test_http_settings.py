"""Proxy selection from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) as curl and requests do it."""

from __future__ import annotations

import pytest

from kms.http import ProxySettings

PROXY = "http://proxy.corp:3128"


@pytest.mark.parametrize("no_proxy, host, port, bypassed", [
    ("", "api.tatum.io", 443, False),
    ("*", "api.tatum.io", 443, True),
    ("tatum.io", "api.tatum.io", 443, True),
    ("tatum.io", "tatum.io", 443, True),
    (".tatum.io", "api.tatum.io", 443, True),
    ("*.tatum.io", "api.tatum.io", 443, True),
    ("tatum.io", "nottatum.io", 443, False),
    ("tatum.io", "tatum.io.evil.example", 443, False),
    ("TATUM.IO", "Api.Tatum.Io", 443, True),
    ("tatum.io.", "api.tatum.io", 443, True),
    ("api.tatum.io:8443", "api.tatum.io", 443, False),
    ("api.tatum.io:8443", "api.tatum.io", 8443, True),
    ("localhost, 127.0.0.1 ,::1", "127.0.0.1", 80, True),
    ("localhost,127.0.0.1,::1", "::1", 80, True),
    ("[::1]", "::1", 80, True),
    ("10.0.0.0/8", "10.20.30.40", 443, True),
    ("10.0.0.0/8", "11.0.0.1", 443, False),
    ("10.0.0.0/8", "ten.example", 443, False),
    ("fd00::/8", "fd12::5", 443, True),
    ("192.168.1.7", "192.168.1.7", 443, True),
    ("192.168.1.7", "192.168.1.70", 443, False),
    ("a.example b.example", "x.b.example", 443, True),
])
def test_no_proxy_rules(no_proxy: str, host: str, port: int, bypassed: bool) -> None:
    settings = ProxySettings({"https": PROXY, "http": PROXY}, no_proxy)
    assert settings.bypassed(host, port) is bypassed
    assert settings.proxy_for("https", host, port) == (None if bypassed else PROXY)


def test_scheme_specific_proxies_then_all_proxy() -> None:
    env = {"https_proxy": "https-proxy:1", "HTTP_PROXY": "http://HTTP-PROXY:2", "http_proxy": "http://http-proxy:2",
           "ALL_PROXY": "http://all-proxy:3"}
    settings = ProxySettings.from_environment(env)
    assert settings.proxy_for("https", "api.tatum.io", None) == "http://https-proxy:1"  # no scheme: http://
    assert settings.proxy_for("http", "api.tatum.io", None) == "http://http-proxy:2"  # lower case wins
    only_all = ProxySettings.from_environment({"all_proxy": "http://all-proxy:3", "no_proxy": "internal"})
    assert only_all.proxy_for("https", "api.tatum.io", None) == "http://all-proxy:3"
    assert only_all.proxy_for("http", "node.internal", 8545) is None
    assert ProxySettings.from_environment({}).proxy_for("https", "api.tatum.io", None) is None
