"""Key resolution for pending transactions: the original's rules, including its explanatory errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chains.base import ChainBase, KeyPolicy, PendingTransaction
from kms.keys import CycleWallets, SigningKeyError, resolve_keys


@dataclass(frozen=True)
class DerivingChain(ChainBase):
    """A chain whose derivation is visible in the key it returns, so the test sees which rule ran."""

    code: str
    key_policy: KeyPolicy = KeyPolicy.ACCOUNT
    mnemonic_based: bool = True

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        return f"{mnemonic}/{index}/{'test' if testnet else 'main'}"


ETH = DerivingChain("ETH")
BTC = DerivingChain("BTC", KeyPolicy.MATCH_INPUTS)


class Store(dict):
    def find(self, signature_id: str) -> dict | None:
        return self.get(signature_id)


STORE = Store(
    mn={"mnemonic": "m1", "xpub": "x", "chain": "ETH", "testnet": False},
    mn_test={"mnemonic": "m1t", "xpub": "x", "chain": "ETH", "testnet": True},
    mn2={"mnemonic": "m2", "xpub": "x", "chain": "BTC", "testnet": False},
    pk={"privateKey": "k1", "chain": "ETH", "testnet": False},
    pk2={"privateKey": "k2", "chain": "BTC", "testnet": False},
    pk3={"privateKey": "k3", "chain": "BTC", "testnet": False},
    mn3={"mnemonic": "m3", "xpub": "x", "chain": "BTC", "testnet": False},
    sec={"address": "G...", "secret": "S1", "chain": "XLM", "testnet": False},
)


def pending(chain: str, **fields: object) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": chain,
                                         "serializedTransaction": "{}", **fields})


def test_account_chain_derives_at_index_from_a_mnemonic_wallet() -> None:
    assert resolve_keys(pending("ETH", hashes=["mn"], index=3), STORE, ETH, False) == ["m1/3/main"]
    assert resolve_keys(pending("ETH", hashes=["mn_test"], index=3), STORE, ETH, True) == ["m1t/3/test"]


def test_account_chain_uses_the_private_key_wallet_even_with_an_index() -> None:
    assert resolve_keys(pending("ETH", hashes=["pk"], index=3), STORE, ETH, False) == ["k1"]
    assert resolve_keys(pending("ETH", hashes=["pk"]), STORE, ETH, False) == ["k1"]


def test_mnemonic_wallet_without_index_gets_the_originals_explanation() -> None:
    with pytest.raises(SigningKeyError, match="is mnemonic based, but KMS transaction .* requires private key"):
        resolve_keys(pending("ETH", hashes=["mn"]), STORE, ETH, False)


def test_secret_only_wallet_with_index_gets_the_originals_explanation() -> None:
    wallets = Store(s={"secret": "S", "chain": "ETH", "testnet": False})
    with pytest.raises(SigningKeyError, match="is private key based, but KMS transaction .* requires mnemonic"):
        resolve_keys(pending("ETH", hashes=["s"], index=1), wallets, ETH, False)


def test_unknown_signature_id_is_an_error_naming_it() -> None:
    with pytest.raises(SigningKeyError, match="nope"):
        resolve_keys(pending("ETH", hashes=["nope"], index=0), STORE, ETH, False)


def test_secret_chain_signs_with_the_first_wallets_secret() -> None:
    chain = DerivingChain("XLM", KeyPolicy.SECRET, mnemonic_based=False)
    assert resolve_keys(pending("XLM", hashes=["sec"]), STORE, chain, False) == ["S1"]


def test_utxo_chain_collects_distinct_keys_and_derives_signatures() -> None:
    warnings: list[str] = []
    tx = pending("BTC", hashes=["pk2", "pk2", "mn2", "missing"],
                 signatures=[{"id": "mn2", "index": 4}, {"id": "mn3", "index": None}, {"id": "pk3", "index": 9}])
    keys = resolve_keys(tx, STORE, BTC, False, warn=warnings.append)
    assert keys == ["k2", "m2/4/main", "k3"]  # order kept, duplicates dropped, mnemonic in hashes not derived
    assert warnings == ["Wrong usage of mnemonic-based signature id. No index provided for mn3."]


def test_utxo_chain_without_any_private_key_gets_the_originals_explanation() -> None:
    with pytest.raises(SigningKeyError, match="mnemonic-based wallet was used without index"):
        resolve_keys(pending("BTC", hashes=["mn2"]), STORE, BTC, False)


def test_offchain_utxo_derives_every_real_input_and_skips_the_change_entry() -> None:
    tx = pending("BTC", hashes=["mn2"], withdrawalId="w1", withdrawalResponses=[
        {"address": {"address": "a", "derivationKey": 5}, "amount": 1, "vIn": "ab", "vInIndex": 0},
        {"address": {"address": "b"}, "amount": 1, "vIn": "cd", "vInIndex": 1},
        {"address": {"address": "c", "derivationKey": 7}, "amount": 1, "vIn": "-1", "vInIndex": 0},
    ])
    assert resolve_keys(tx, STORE, BTC, False) == ["m2/5/main", "m2/0/main"]


def test_malformed_pending_transactions_are_refused_with_the_field_named() -> None:
    for bad, field in [({"chain": "ETH", "serializedTransaction": "{}"}, "id"),
                       ({"id": "a", "serializedTransaction": "{}"}, "chain"),
                       ({"id": "a", "chain": "ETH"}, "serializedTransaction"),
                       ({"id": "a", "chain": "ETH", "serializedTransaction": "{}", "hashes": "x"}, "hashes"),
                       ({"id": "a", "chain": "ETH", "serializedTransaction": "{}", "index": -1}, "index"),
                       ({"id": "a", "chain": "ETH", "serializedTransaction": "{}", "signatures": [3]}, "signatures")]:
        with pytest.raises(ValueError, match=field):
            PendingTransaction.from_json(bad)


@pytest.mark.parametrize("named, daemon_testnet", [
    ("mn", True),        # a mainnet ETH wallet named on a testnet daemon
    ("mn_test", False),  # a testnet ETH wallet named on a mainnet daemon
    ("pk2", False),      # a BTC wallet named by an ETH transaction
])
def test_a_wallet_of_another_network_or_chain_never_signs(named: str, daemon_testnet: bool) -> None:
    via_hashes = pending("ETH", hashes=[named], index=0)
    via_signatures = pending("ETH", hashes=[], signatures=[{"id": named, "index": 0}])
    for tx in (via_hashes, via_signatures):
        with pytest.raises(SigningKeyError, match=f"names wallet {named}, a .* wallet; this daemon signs only"):
            resolve_keys(tx, STORE, ETH, daemon_testnet)


def test_a_pending_transaction_of_another_chain_than_polled_is_refused() -> None:
    with pytest.raises(SigningKeyError, match="is for BTC, not ETH"):
        resolve_keys(pending("BTC", hashes=["pk"]), STORE, ETH, False)


def test_positional_offchain_keeps_one_key_per_input_even_when_repeated() -> None:
    bch = DerivingChain("BCH", KeyPolicy.POSITIONAL)
    store = Store(w={"mnemonic": "m", "xpub": "x", "chain": "BCH", "testnet": False})
    tx = pending("BCH", hashes=["w"], withdrawalId="w1", withdrawalResponses=[
        {"address": {"derivationKey": 2}, "vIn": "ab"}, {"address": {"derivationKey": 2}, "vIn": "cd"}])
    assert resolve_keys(tx, store, bch, False) == ["m/2/main", "m/2/main"]


def test_positional_offchain_keeps_each_input_at_its_response_index() -> None:
    """As the original: input i is signed with the key of withdrawalResponses[i]; a vIn "-1" entry keeps its place."""
    bch = DerivingChain("BCH", KeyPolicy.POSITIONAL)
    store = Store(w={"mnemonic": "m", "xpub": "x", "chain": "BCH", "testnet": True})
    tx = pending("BCH", hashes=["w"], withdrawalId="w1", withdrawalResponses=[
        {"address": {"derivationKey": 4}, "vIn": "ab"}, {"address": None, "vIn": "-1"},
        {"address": {"derivationKey": 9}, "vIn": "cd"}])
    assert resolve_keys(tx, store, bch, True) == ["m/4/test", "", "m/9/test"]


def test_all_wallets_policy_collects_every_named_wallets_stored_key() -> None:
    sol = DerivingChain("SOL", KeyPolicy.ALL_WALLETS)
    store = Store(a={"mnemonic": "m", "privateKey": "ka", "chain": "SOL", "testnet": False},
                  b={"privateKey": "kb", "chain": "SOL", "testnet": False})
    assert resolve_keys(pending("SOL", hashes=["a", "b"], index=5), store, sol, False) == ["ka", "kb"]


def test_a_cycle_reads_each_wallet_once_and_derives_each_key_once() -> None:
    reads: list[str] = []
    derivations: list[tuple[str, int]] = []

    class CountingStore(Store):
        def find(self, signature_id: str) -> dict | None:
            reads.append(signature_id)
            return super().find(signature_id)

    @dataclass(frozen=True)
    class CountingChain(DerivingChain):
        def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
            derivations.append((mnemonic, index))
            return super().private_key_from_mnemonic(mnemonic, index, testnet)

    eth = CountingChain("ETH")
    wallets = CycleWallets(CountingStore(STORE))
    keys = [resolve_keys(pending("ETH", hashes=["mn"], index=n % 2), wallets, eth, False) for n in range(6)]
    keys += [resolve_keys(pending("ETH", hashes=["pk"]), wallets, eth, False) for _ in range(3)]
    keys.append(resolve_keys(pending("ETH", hashes=["nope", "pk"]), wallets, eth, False))
    assert keys == [["m1/0/main"], ["m1/1/main"]] * 3 + [["k1"]] * 4
    assert reads == ["mn", "pk", "nope"]  # an unknown id is asked once too
    assert derivations == [("m1", 0), ("m1", 1)]
    # A new cycle reads the store again (a wallet removed meanwhile is not used).
    assert resolve_keys(pending("ETH", hashes=["pk"]), CycleWallets(CountingStore(STORE)), eth, False) == ["k1"]
    assert reads == ["mn", "pk", "nope", "pk"]
