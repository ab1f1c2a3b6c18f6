"""The sandbox never records or prints an API key that a node-proxy path carries (`redact_path`)."""

from __future__ import annotations

import chains
from kms.sandbox.api import redact_path

KEY = "k3y-0f-the-operator-9d1c"


def test_every_chain_endpoint_that_carries_the_key_is_redacted_and_nothing_else_changes() -> None:
    carried = [endpoint.tatum_path for code in chains.CODES for endpoint in chains.get(code).endpoints.values()
               if endpoint.tatum_path and "{api_key}" in endpoint.tatum_path]
    assert len(carried) >= 10  # the EVM web3 proxies, SOL, KLAY, CELO, EGLD ...
    for template in carried:
        path = template.replace("{api_key}", KEY) + "/extra?x=1"
        assert redact_path(path) == template.replace("{api_key}", "***") + "/extra?x=1"
    for plain in ("/v3/kms/pending/ETH", "/sandbox/approve/" + KEY, "/v3/ethereum/broadcast", "/"):
        assert redact_path(plain) == plain
