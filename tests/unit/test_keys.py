"""Key resolution for pending transactions: the original's rules, including its explanatory errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chains.base import PendingTransaction
from kms.keys import SigningKeyError, resolve_keys


@dataclass
class DerivingChain:
    """A chain whose derivation is visible in the key it returns, so the test sees which rule ran."""

    code: str
    mnemonic_based: bool = True

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        return f"{mnemonic}/{index}/{'test' if testnet else 'main'}"


class Store(dict):
    def find(self, signature_id: str) -> dict | None:
        return self.get(signature_id)


STORE = Store(
    mn={"mnemonic": "m1", "xpub": "x", "chain": "ETH", "testnet": True},
    mn2={"mnemonic": "m2", "xpub": "x", "chain": "BTC", "testnet": False},
    pk={"privateKey": "k1", "chain": "ETH", "testnet": False},
    pk2={"privateKey": "k2", "chain": "BTC", "testnet": False},
    sec={"address": "G...", "secret": "S1", "chain": "XLM", "testnet": False},
)


def pending(chain: str, **fields: object) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": chain,
                                         "serializedTransaction": "{}", **fields})


def test_account_chain_derives_at_index_from_a_mnemonic_wallet() -> None:
    keys = resolve_keys(pending("ETH", hashes=["mn"], index=3), STORE, DerivingChain("ETH"))
    assert keys == ["m1/3/test"]


def test_account_chain_uses_the_private_key_wallet_even_with_an_index() -> None:
    assert resolve_keys(pending("ETH", hashes=["pk"], index=3), STORE, DerivingChain("ETH")) == ["k1"]
    assert resolve_keys(pending("ETH", hashes=["pk"]), STORE, DerivingChain("ETH")) == ["k1"]


def test_mnemonic_wallet_without_index_gets_the_originals_explanation() -> None:
    with pytest.raises(SigningKeyError, match="is mnemonic based, but KMS transaction .* requires private key"):
        resolve_keys(pending("ETH", hashes=["mn"]), STORE, DerivingChain("ETH"))


def test_secret_only_wallet_with_index_gets_the_originals_explanation() -> None:
    wallets = Store(s={"secret": "S", "chain": "ETH", "testnet": False})
    with pytest.raises(SigningKeyError, match="is private key based, but KMS transaction .* requires mnemonic"):
        resolve_keys(pending("ETH", hashes=["s"], index=1), wallets, DerivingChain("ETH"))


def test_unknown_signature_id_is_an_error_naming_it() -> None:
    with pytest.raises(SigningKeyError, match="nope"):
        resolve_keys(pending("ETH", hashes=["nope"], index=0), STORE, DerivingChain("ETH"))


def test_secret_chain_signs_with_the_first_wallets_secret() -> None:
    chain = DerivingChain("XLM", mnemonic_based=False)
    assert resolve_keys(pending("XLM", hashes=["sec", "pk"]), STORE, chain) == ["S1"]


def test_utxo_chain_collects_distinct_keys_and_derives_signatures() -> None:
    warnings: list[str] = []
    tx = pending("BTC", hashes=["pk2", "pk2", "mn2", "missing"],
                 signatures=[{"id": "mn2", "index": 4}, {"id": "mn", "index": None}, {"id": "pk", "index": 9}])
    keys = resolve_keys(tx, STORE, DerivingChain("BTC"), warn=warnings.append)
    assert keys == ["k2", "m2/4/main", "k1"]  # order kept, duplicates dropped, mnemonic in hashes not derived
    assert warnings == ["Wrong usage of mnemonic-based signature id. No index provided for mn."]


def test_utxo_chain_without_any_private_key_gets_the_originals_explanation() -> None:
    with pytest.raises(SigningKeyError, match="mnemonic-based wallet was used without index"):
        resolve_keys(pending("BTC", hashes=["mn2"]), STORE, DerivingChain("BTC"))


def test_offchain_utxo_derives_every_real_input_and_skips_the_change_entry() -> None:
    tx = pending("BTC", hashes=["mn2"], withdrawalId="w1", withdrawalResponses=[
        {"address": {"address": "a", "derivationKey": 5}, "amount": 1, "vIn": "ab", "vInIndex": 0},
        {"address": {"address": "b"}, "amount": 1, "vIn": "cd", "vInIndex": 1},
        {"address": {"address": "c", "derivationKey": 7}, "amount": 1, "vIn": "-1", "vInIndex": 0},
    ])
    assert resolve_keys(tx, STORE, DerivingChain("BTC")) == ["m2/5/main", "m2/0/main"]


def test_malformed_pending_transactions_are_refused_with_the_field_named() -> None:
    for bad, field in [({"chain": "ETH", "serializedTransaction": "{}"}, "id"),
                       ({"id": "a", "serializedTransaction": "{}"}, "chain"),
                       ({"id": "a", "chain": "ETH"}, "serializedTransaction"),
                       ({"id": "a", "chain": "ETH", "serializedTransaction": "{}", "hashes": "x"}, "hashes"),
                       ({"id": "a", "chain": "ETH", "serializedTransaction": "{}", "index": -1}, "index"),
                       ({"id": "a", "chain": "ETH", "serializedTransaction": "{}", "signatures": [3]}, "signatures")]:
        with pytest.raises(ValueError, match=field):
            PendingTransaction.from_json(bad)
