"""ETH wallets, derivation and signing: the original SDK's vectors, and eth-account as the independent signer."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import rlp
from bip_utils import Bip32Secp256k1, Bip39MnemonicValidator, Bip39SeedGenerator
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from chains.base import ChainError, PendingTransaction
from chains.evm import ETH, EvmChain, FillRules, fixed_gas_price
from chains.primitives import rlp as _rlp
from tests.recording_node import RecordingNode as _Node

MQ = ("quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
      "leaf good forward erupt split divert bread kitten")
KEY = "0xbc93ab7d2dbad88e64879569a9e3ceaa12d119c70d6dda4d1fc6e73765794a8d"  # MQ, ETH mainnet, index 1
SENDER = Account.from_key(KEY).address  # EIP-55, computed by eth-account
TO = "0x687422eEA2cB73B5d3e242bA5456b782919AFc85"


def RecordingNode(rpc: dict[str, Any] | None = None, get: dict[str, Any] | None = None) -> _Node:  # noqa: N802
    """The shared recording node with JSON-RPC answers `rpc` and Tatum GET answers `get` (path -> answer)."""
    return _Node({**(rpc or {}), **{f"GET {path}": answer for path, answer in (get or {}).items()}})


def pending(payload: dict[str, Any], **fields: Any) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": "ETH", "hashes": ["w"],
                                         "serializedTransaction": json.dumps(payload), **fields})


def decode_legacy(tx_data: str) -> dict[str, Any]:
    """Fields of a signed legacy transaction, decoded with the `rlp` package, sender by eth-account."""
    nonce, gas_price, gas, to, value, data, v, r, s = rlp.decode(bytes.fromhex(tx_data[2:]))
    as_int = lambda b: int.from_bytes(b, "big")  # noqa: E731
    return {"nonce": as_int(nonce), "gasPrice": as_int(gas_price), "gas": as_int(gas), "to": to, "value": as_int(value),
            "data": data, "chainId": (as_int(v) - 35) // 2, "sender": Account.recover_transaction(tx_data)}


# -- wallets and derivation (spec §4.1) ---------------------------------------------------------


def test_spec_xpubs_addresses_and_keys_for_mq() -> None:
    main, test = ETH.wallet_from_mnemonic(MQ, False), ETH.wallet_from_mnemonic(MQ, True)
    assert main == {"mnemonic": MQ, "xpub": "xpub6DtR524VQx3ENj2E9pNZnjqkVp47YN5sRCP5y4Gs6KZTwDhH9HTVX8shJPt74WaPZRftRX"
                                            "FfnsyPbMPh6DMEmrQ2WBxDJzGxriStAB36bQM"}
    assert test["xpub"] == ("xpub6FMiQpA54nciqs52guGVdWQ5TonZt5XtGsFpurgtttL7H3mSfaJDXv5aBdThjX6tW9HYaJSQ8wZVnLm1ixa"
                            "QUu1MRQCwvwZ6U2cX6mwWT25")
    assert ETH.address_from_xpub(main["xpub"], 1, False) == "0xaac8c73348f1f92b2f9647e1e4f3cf14e2a8b3cb"
    assert ETH.address_from_xpub(test["xpub"], 1, True) == "0x8cb76aed9c5e336ef961265c6079c14e9cd3d2ea"
    assert ETH.private_key_from_mnemonic(MQ, 1, False) == KEY
    assert ETH.private_key_from_mnemonic(MQ, 1, True) == (
        "0x4874827a55d87f2309c55b835af509e3427aa4d52321eeb49a2b93b5c0f8edfb")


def test_spec_private_key_to_address() -> None:
    assert ETH.address_from_private_key("0xac12f9a2d0d1f06c7dc33a3e9c18f60fe1ca65c592d1e9345c994740f9e1971e",
                                        False) == "0xefc395c295a90023d3e9afacb4399da3d332947b"
    assert ETH.address_from_private_key("0x4cda6d2c33b0f9a041e46474a638ac59aee0734cf208aa9aa2f05ef887bd09e1",
                                        True) == "0x8acbcfbc8ce37f6f674f4b9861d3efe89288d89f"


def test_new_wallet_is_24_valid_words_and_matches_bip_utils_derivation() -> None:
    wallet = ETH.generate_wallet(False, managed=True)
    assert len(wallet["mnemonic"].split()) == 24
    assert Bip39MnemonicValidator().IsValid(wallet["mnemonic"])
    node = Bip32Secp256k1.FromSeed(Bip39SeedGenerator(wallet["mnemonic"]).Generate()).DerivePath("m/44'/60'/0'/0")
    assert wallet["xpub"] == node.PublicKey().ToExtended()
    for index in (0, 5, 2**31 - 1):
        key = ETH.private_key_from_mnemonic(wallet["mnemonic"], index, False)
        assert key == "0x" + node.ChildKey(index).PrivateKey().Raw().ToHex()
        assert ETH.address_from_xpub(wallet["xpub"], index, False) == Account.from_key(key).address.lower()
    assert ETH.generate_wallet(False, managed=True)["mnemonic"] != wallet["mnemonic"]


def test_a_mistyped_mnemonic_is_refused_without_echoing_it() -> None:
    typo = MQ.replace("kitten", "kitchen")
    with pytest.raises(ChainError) as caught:
        ETH.wallet_from_mnemonic(typo, False)
    assert "kitchen" not in str(caught.value) and "quantum" not in str(caught.value)


def test_generated_private_keys_are_fresh_and_their_addresses_right() -> None:
    keys = [ETH.generate_private_key(False) for _ in range(50)]
    assert len({k for k, _ in keys}) == 50
    for key, address in keys:
        assert key.startswith("0x") and len(key) == 66 and key == key.lower()
        assert address == Account.from_key(key).address.lower()


@pytest.mark.parametrize("bad", ["0x" + "00" * 32, "0x" + "ff" * 32, "0x1234", "zz" * 32, 12])
def test_bad_private_keys_are_refused_without_echoing_them(bad: Any) -> None:
    with pytest.raises(ChainError) as caught:
        ETH.address_from_private_key(bad, False)
    assert str(bad) not in str(caught.value)


def test_xpub_errors() -> None:
    tpub = ("tpubDFjLw3ykn4aB7fFt96FaqRjSnvtDsU2wpVr8GQk3Eo612LS9jo9JgMkQRfYVG248J3pTBsxGg3PYUXFd7pReNLTeUzxFcUDL3zC"
            "vrp3H34a")
    with pytest.raises(ChainError, match="version"):
        ETH.address_from_xpub(tpub, 0, True)
    with pytest.raises(ChainError, match="checksum"):
        ETH.address_from_xpub(ETH.wallet_from_mnemonic(MQ, False)["xpub"][:-1] + "1", 0, False)
    with pytest.raises(ChainError, match="index"):
        ETH.address_from_xpub(ETH.wallet_from_mnemonic(MQ, False)["xpub"], -1, False)


# -- signing --------------------------------------------------------------------------------------


COMPLETE = [
    {"from": 0, "to": TO, "value": "1000000000000000000", "gas": "21000", "gasPrice": "20000000000", "nonce": 7,
     "chainId": 1},
    {"to": TO.lower(), "value": "0xde0b6b3a7640000", "gas": 60000, "gasPrice": "0x4a817c800", "nonce": "0x2a",
     "data": "0xa9059cbb" + "00" * 64, "chainId": 11155111},
    {"data": "0x6080604052", "gas": "300000", "gasPrice": 1, "nonce": "3", "chainId": "0x5"},  # contract creation
    {"to": TO, "gas": 21000, "gasPrice": 1e10, "nonce": 1, "chainId": 1},  # a float from JSON, value absent
]


@pytest.mark.parametrize("payload", COMPLETE)
def test_complete_legacy_payload_is_signed_byte_for_byte_as_eth_account_does(payload: dict[str, Any]) -> None:
    node = RecordingNode()
    signed = ETH.sign(pending(payload), [KEY], False, node)
    assert node.calls == []
    assert signed.path == "/v3/ethereum/broadcast" and signed.extra == {}
    assert signed.tx_data.startswith("0x") and signed.tx_data == signed.tx_data.lower()
    reference = {k: payload[k] for k in ("to", "data") if k in payload}
    if "to" in reference:
        reference["to"] = to_checksum_address(reference["to"])  # eth-account refuses lowercase
    for name in ("value", "gas", "gasPrice", "nonce", "chainId"):
        value = payload.get(name, 0)
        reference[name] = int(value, 0) if isinstance(value, str) else int(value)
    expected = Account.sign_transaction(reference, KEY).raw_transaction.to_0x_hex()
    assert signed.tx_data == expected
    fields = decode_legacy(signed.tx_data)
    assert fields["sender"] == SENDER
    assert fields["nonce"] == reference["nonce"] and fields["chainId"] == reference["chainId"]


def test_missing_fields_are_filled_from_the_node_as_the_original_does() -> None:
    node = RecordingNode(
        rpc={"eth_estimateGas": "0x5208", "eth_chainId": "0xaa36a7"},
        get={f"/v3/ethereum/transaction/count/{SENDER}": 42, "/v3/blockchain/fee/ETH": {"medium": "30000000000"}},
    )
    signed = ETH.sign(pending({"from": 0, "to": TO, "value": "5", "nonce": 0, "data": "0xabcd"}), [KEY], True, node)
    assert node.methods() == ["eth_estimateGas", f"GET /v3/ethereum/transaction/count/{SENDER}",
                              "GET /v3/blockchain/fee/ETH", "eth_chainId"]
    estimate = node.calls[0][1][0]
    assert estimate["from"] == SENDER and estimate["to"] == TO.lower()
    assert estimate["value"] == "0x5" and estimate["data"] == "0xabcd" and estimate["nonce"] == "0x0"
    fields = decode_legacy(signed.tx_data)
    assert fields == {"nonce": 42, "gasPrice": 30_000_000_000, "gas": 21000, "to": bytes.fromhex(TO[2:]), "value": 5,
                      "data": b"\xab\xcd", "chainId": 11155111, "sender": SENDER}


@pytest.mark.parametrize("gas_price", [None, 0, "0", "0x0", ""])
def test_zero_or_missing_gas_price_comes_from_the_fee_endpoint(gas_price: Any) -> None:
    payload = {"to": TO, "gas": 21000, "nonce": 3, "chainId": 1}
    if gas_price is not None:
        payload["gasPrice"] = gas_price
    node = RecordingNode(get={"/v3/blockchain/fee/ETH": {"slow": "1", "medium": "0x77359400", "fast": "9"}})
    fields = decode_legacy(ETH.sign(pending(payload), [KEY], False, node).tx_data)
    assert node.methods() == ["GET /v3/blockchain/fee/ETH"]
    assert fields["gasPrice"] == 2_000_000_000


@pytest.mark.parametrize(("nonce", "fetched"), [(None, True), (0, True), ("", True), ("0", False), (9, False)])
def test_nonce_is_fetched_when_javascript_falsy(nonce: Any, fetched: bool) -> None:
    payload = {"to": TO, "gas": 21000, "gasPrice": 1, "chainId": 1}
    if nonce is not None:
        payload["nonce"] = nonce
    node = RecordingNode(get={f"/v3/ethereum/transaction/count/{SENDER}": "17"})
    fields = decode_legacy(ETH.sign(pending(payload), [KEY], False, node).tx_data)
    assert (node.calls != []) is fetched
    assert fields["nonce"] == (17 if fetched else int(nonce))


def test_offchain_withdrawal_re_estimates_gas_and_goes_to_the_offchain_broadcast() -> None:
    node = RecordingNode(rpc={"eth_estimateGas": "0xea60"})
    payload = {"from": 0, "to": TO, "value": "1", "gas": "21000", "gasPrice": "7", "nonce": 4, "chainId": 1}
    signed = ETH.sign(pending(payload, withdrawalId="w-123"), [KEY], False, node)
    assert node.methods() == ["eth_estimateGas"]
    assert decode_legacy(signed.tx_data)["gas"] == 60000
    assert signed.path == "/v3/offchain/withdrawal/broadcast"
    assert signed.extra == {"currency": "ETH", "withdrawalId": "w-123"}


def test_eip1559_payload_is_signed_as_type_2_byte_for_byte_as_eth_account_does() -> None:
    payload = {"to": TO, "value": "12", "gas": 21000, "nonce": 5, "chainId": 1, "maxFeePerGas": "0x77359400",
               "maxPriorityFeePerGas": "1000000000"}
    node = RecordingNode()
    signed = ETH.sign(pending(payload), [KEY], False, node)
    assert node.calls == [] and signed.tx_data.startswith("0x02")
    expected = Account.sign_transaction({"type": 2, "to": TO, "value": 12, "gas": 21000, "nonce": 5, "chainId": 1,
                                         "maxFeePerGas": 2_000_000_000, "maxPriorityFeePerGas": 1_000_000_000,
                                         "accessList": [], "data": "0x"}, KEY)
    assert signed.tx_data == expected.raw_transaction.to_0x_hex()
    assert Account.recover_transaction(signed.tx_data) == SENDER


def test_a_private_key_without_0x_signs_the_same() -> None:
    payload = COMPLETE[0]
    assert ETH.sign(pending(payload), [KEY[2:]], False, RecordingNode()) == ETH.sign(
        pending(payload), [KEY], False, RecordingNode())


@pytest.mark.parametrize(("serialized", "message"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"to": "0x1234", "gas": 1, "gasPrice": 1, "nonce": 1, "chainId": 1}), "20-byte"),
    (json.dumps({"to": TO, "gas": "-5", "gasPrice": 1, "nonce": 1, "chainId": 1}), "gas"),
    (json.dumps({"to": TO, "gas": 1, "gasPrice": 1, "nonce": 1, "chainId": 1, "type": 2}), "maxFeePerGas"),
    (json.dumps({"to": TO, "gas": 1, "gasPrice": 1, "nonce": 1, "chainId": 1, "data": "0xzz"}), "hex"),
])
def test_malformed_payloads_give_a_clear_chain_error(serialized: str, message: str) -> None:
    bad = PendingTransaction.from_json({"id": "p", "chain": "ETH", "hashes": [], "serializedTransaction": serialized})
    with pytest.raises(ChainError, match=message) as caught:
        ETH.sign(bad, [KEY], False, RecordingNode())
    assert KEY[2:] not in str(caught.value)


def test_another_evm_chain_is_data_prefix_and_rules() -> None:
    """An XDC-like chain: `xdc` addresses, fixed gas price, gas always estimated; only the rules differ."""
    xdc = EvmChain("XDC", 550, "/v3/xdc/broadcast", "/v3/xdc/web3/{api_key}",
                   rules=FillRules(gas="always", gas_price=fixed_gas_price(10**9)), address_prefix="xdc")
    assert xdc.address_from_private_key(
        "0x4cda6d2c33b0f9a041e46474a638ac59aee0734cf208aa9aa2f05ef887bd09e1", True,
    ) == "xdc8acbcfbc8ce37f6f674f4b9861d3efe89288d89f"
    node = RecordingNode(rpc={"eth_estimateGas": 50000, "eth_getTransactionCount": "0x3", "eth_chainId": "0x33"})
    signed = xdc.sign(pending({"to": "xdc" + TO[2:], "gas": 21000, "gasPrice": "0"}), [KEY], True, node)
    fields = decode_legacy(signed.tx_data)
    assert (fields["gas"], fields["gasPrice"], fields["nonce"], fields["chainId"]) == (50000, 10**9, 3, 51)
    assert node.calls[1] == ("eth_getTransactionCount", [SENDER, "latest"])
    assert signed.path == "/v3/xdc/broadcast"


# -- the RLP encoder and import cost ---------------------------------------------------------------


rlp_items = st.recursive(st.binary(max_size=70) | st.integers(min_value=0, max_value=2**256),
                         lambda children: st.lists(children, max_size=5), max_leaves=20)


@given(rlp_items)
def test_rlp_encoder_agrees_with_the_rlp_package(item: Any) -> None:
    assert _rlp.encode(item) == rlp.encode(item)


def test_importing_the_evm_chain_pulls_in_no_heavy_library() -> None:
    code = ("import sys, chains.evm; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('stellar_sdk', 'web3', 'eth', 'eth_utils', 'rlp', 'bip_utils', 'pydantic', 'Crypto', 'pycparser')]; "
            "print(heavy)")  # pycryptodome's import parses C declarations with pycparser: tens of ms per start
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
