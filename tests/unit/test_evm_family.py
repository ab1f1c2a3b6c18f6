"""BSC, MATIC, KLAY, XDC, ONE and KCS: each chain's fill-in node calls (made and not made, spec §3.1), its
broadcast path, and every signature checked byte for byte against eth-account signing the filled-in fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chains.base import ChainError, PendingTransaction
from chains.evm import BSC, KCS, KLAY, MATIC, ONE, XDC, EvmChain
from tests.recording_node import RecordingNode

KEY = "0x4874827a55d87f2309c55b835af509e3427aa4d52321eeb49a2b93b5c0f8edfb"  # MQ, every EVM testnet, index 1
SENDER = Account.from_key(KEY).address
TO = "0x687422eEA2cB73B5d3e242bA5456b782919AFc85"
GWEI = 10**9


def pending(chain: EvmChain, payload: dict[str, Any], **fields: Any) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": chain.code, "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload), **fields})


def reference(fields: dict[str, Any]) -> str:
    """The same legacy transaction signed by eth-account."""
    tx = {"to": TO, "value": 0, "data": "0x", **fields}
    return Account.sign_transaction(tx, KEY).raw_transaction.to_0x_hex()


def sign(chain: EvmChain, payload: dict[str, Any], node: RecordingNode, **fields: Any) -> str:
    signed = chain.sign(pending(chain, payload, **fields), [KEY], True, node)
    assert Account.recover_transaction(signed.tx_data) == SENDER
    return signed.tx_data


# -- BSC -------------------------------------------------------------------------------------------


def test_bsc_always_asks_the_estimate_but_keeps_the_payloads_gas() -> None:
    node = RecordingNode({"eth_estimateGas": "0xea60"})
    tx_data = sign(BSC, {"to": TO, "value": "7", "gas": 21000, "gasPrice": "5", "nonce": 3, "chainId": 97}, node)
    assert node.methods() == ["eth_estimateGas"]
    estimate = node.calls[0][1][0]
    assert estimate["from"] == SENDER and estimate["value"] == "0x7" and estimate["nonce"] == "0x3"
    assert tx_data == reference({"value": 7, "gas": 21000, "gasPrice": 5, "nonce": 3, "chainId": 97})


def test_bsc_fills_nonce_from_tatum_and_price_with_10_gwei() -> None:
    node = RecordingNode({"eth_estimateGas": "0x5208", "eth_chainId": "0x61",
                          f"GET /v3/bsc/transaction/count/{SENDER}": 12})
    tx_data = sign(BSC, {"from": 0, "to": TO, "nonce": 0, "gasPrice": "0x0"}, node)
    assert node.methods() == ["eth_estimateGas", f"GET /v3/bsc/transaction/count/{SENDER}", "eth_chainId"]
    assert tx_data == reference({"gas": 21000, "gasPrice": 10 * GWEI, "nonce": 12, "chainId": 97})
    assert BSC.sign(pending(BSC, {"to": TO}), [KEY], True, node).path == "/v3/bsc/broadcast"


# -- MATIC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("quoted", "used"), [(GWEI, 30 * GWEI), (45 * GWEI, 45 * GWEI)])
def test_matic_price_is_the_tatum_nodes_with_a_30_gwei_floor(quoted: int, used: int) -> None:
    node = RecordingNode({"eth_estimateGas": "0x5208", "eth_getTransactionCount": "0x4", "eth_gasPrice": hex(quoted),
                          "eth_chainId": "0x13882"})
    tx_data = sign(MATIC, {"to": TO, "value": "9", "data": "0xab"}, node)
    assert node.methods() == ["eth_estimateGas", "eth_getTransactionCount", "eth_gasPrice", "eth_chainId"]
    assert node.calls[0][1][0] == {"from": SENDER, "to": TO.lower(), "data": "0xab"}  # only to and data
    assert node.calls[1][1] == [SENDER, "latest"]
    assert tx_data == reference({"value": 9, "data": "0xab", "gas": 21000, "gasPrice": used, "nonce": 4,
                                 "chainId": 80002})


def test_matic_nonce_zero_is_kept_as_web3_keeps_it() -> None:
    node = RecordingNode()
    tx_data = sign(MATIC, {"to": TO, "gas": 21000, "gasPrice": "40000000000", "nonce": 0, "chainId": 137}, node)
    assert node.calls == []
    assert tx_data == reference({"gas": 21000, "gasPrice": 40 * GWEI, "nonce": 0, "chainId": 137})
    assert MATIC.sign(pending(MATIC, {"to": TO, "gas": 1, "gasPrice": 1, "nonce": 1, "chainId": 137}), [KEY], False,
                      node).path == "/v3/polygon/broadcast"


# -- ONE -------------------------------------------------------------------------------------------


def test_one_asks_the_node_price_when_zero() -> None:
    node = RecordingNode({"eth_gasPrice": hex(100 * GWEI)})
    tx_data = sign(ONE, {"to": TO, "gas": 21000, "gasPrice": 0, "nonce": 2, "chainId": 1666700000}, node)
    assert node.methods() == ["eth_gasPrice"]
    assert tx_data == reference({"gas": 21000, "gasPrice": 100 * GWEI, "nonce": 2, "chainId": 1666700000})


def test_one_offchain_withdrawal_goes_to_the_offchain_broadcast_without_re_estimating() -> None:
    node = RecordingNode()
    payload = {"to": TO, "value": "1", "gas": 21000, "gasPrice": "7", "nonce": 4, "chainId": 1666600000}
    signed = ONE.sign(pending(ONE, payload, withdrawalId="wd-1"), [KEY], False, node)
    assert node.calls == []  # ETH re-estimates gas for withdrawals; ONE's signer does not
    assert signed.path == "/v3/offchain/withdrawal/broadcast"
    assert signed.extra == {"currency": "ONE", "withdrawalId": "wd-1"}
    plain = ONE.sign(pending(ONE, payload), [KEY], False, node)
    assert plain.path == "/v3/one/broadcast" and plain.tx_data == signed.tx_data


# -- XDC -------------------------------------------------------------------------------------------


def test_xdc_always_re_estimates_the_whole_transaction_and_takes_xdc_addresses() -> None:
    node = RecordingNode({"eth_estimateGas": "0x6270", f"GET /v3/xdc/transaction/count/{SENDER}": "8",
                          "eth_gasPrice": hex(GWEI // 4), "eth_chainId": "0x33"})
    tx_data = sign(XDC, {"to": "xdc" + TO[2:], "value": "0x10", "gas": 90000}, node)
    assert node.methods() == ["eth_estimateGas", f"GET /v3/xdc/transaction/count/{SENDER}", "eth_gasPrice",
                              "eth_chainId"]
    assert node.calls[0][1][0] == {"from": SENDER, "to": TO.lower(), "value": "0x10", "gas": "0x15f90"}
    assert tx_data == reference({"value": 16, "gas": 0x6270, "gasPrice": GWEI // 4, "nonce": 8, "chainId": 51})


def test_xdc_leaves_a_given_gas_price_alone_even_zero() -> None:
    node = RecordingNode({"eth_estimateGas": "0x5208"})
    tx_data = sign(XDC, {"to": TO, "gasPrice": "0", "nonce": 1, "chainId": 50}, node)
    assert node.methods() == ["eth_estimateGas"]
    assert tx_data == reference({"gas": 21000, "gasPrice": 0, "nonce": 1, "chainId": 50})


# -- KLAY ------------------------------------------------------------------------------------------


def test_klay_fills_in_with_klaytn_methods_and_pending_nonce() -> None:
    node = RecordingNode({"klay_estimateGas": "0x7530", "klay_getTransactionCount": "0x6",
                          "klay_gasPrice": hex(25 * GWEI), "klay_chainID": "0x3e9"})
    tx_data = sign(KLAY, {"from": "0x" + "11" * 20, "to": TO, "value": "3", "data": "0x01"}, node)
    assert node.methods() == ["klay_estimateGas", "klay_getTransactionCount", "klay_gasPrice", "klay_chainID"]
    assert node.calls[0][1][0]["from"] == SENDER  # the payload's from is overwritten with the signer
    assert node.calls[1][1] == [SENDER, "pending"]
    assert tx_data == reference({"value": 3, "data": "0x01", "gas": 30000, "gasPrice": 25 * GWEI, "nonce": 6,
                                 "chainId": 1001})
    assert KLAY.sign(pending(KLAY, {"to": TO}), [KEY], True, node).path == "/v3/klaytn/broadcast"


def test_klay_refuses_an_eip1559_payload_caver_would_not_sign() -> None:
    with pytest.raises(ChainError, match="legacy"):
        KLAY.sign(pending(KLAY, {"to": TO, "gas": 1, "nonce": 1, "chainId": 1001, "maxFeePerGas": "9"}), [KEY],
                  True, RecordingNode())


# -- KCS -------------------------------------------------------------------------------------------


def test_kcs_uses_a_fixed_1_gwei_and_web3_nonce() -> None:
    node = RecordingNode({"eth_estimateGas": "0x5208", "eth_getTransactionCount": "0x0", "eth_chainId": "0x142"})
    tx_data = sign(KCS, {"to": TO, "value": "5", "gasPrice": ""}, node)
    assert node.methods() == ["eth_estimateGas", "eth_getTransactionCount", "eth_chainId"]
    assert tx_data == reference({"value": 5, "gas": 21000, "gasPrice": GWEI, "nonce": 0, "chainId": 322})
    assert KCS.sign(pending(KCS, {"to": TO}), [KEY], True, node).path == "/v3/kcs/broadcast"


@pytest.mark.parametrize("chain", [BSC, MATIC, ONE, XDC, KCS])
def test_eip1559_payloads_sign_as_type_2(chain: EvmChain) -> None:
    payload = {"to": TO, "value": "12", "gas": 21000, "nonce": 5, "chainId": 97, "maxFeePerGas": "0x77359400",
               "maxPriorityFeePerGas": "1000000000"}
    node = RecordingNode({"eth_estimateGas": "0x5208"})
    signed = chain.sign(pending(chain, payload), [KEY], True, node)
    expected = Account.sign_transaction({"type": 2, "to": TO, "value": 12, "gas": 21000, "nonce": 5, "chainId": 97,
                                         "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI, "accessList": [],
                                         "data": "0x"}, KEY)
    assert signed.tx_data == expected.raw_transaction.to_0x_hex()


def test_a_token_transfer_payload_keeps_its_call_data() -> None:
    data = "0xa9059cbb" + "00" * 12 + TO[2:].lower() + hex(10**18)[2:].rjust(64, "0")
    node = RecordingNode({"eth_estimateGas": "0xc350"})
    tx_data = sign(BSC, {"to": TO, "data": data, "gasPrice": "1", "nonce": 1, "chainId": 56}, node)
    assert tx_data == reference({"to": to_checksum_address(TO), "data": data, "gas": 50000, "gasPrice": 1,
                                 "nonce": 1, "chainId": 56})
