"""LTC, DOGE and BCH through the real `tatum-kms daemon --runOnce --testnet` against a real `tatum-kms sandbox`.

The sandbox checks LTC and DOGE broadcasts with python-bitcoinlib's interpreter and BCH ones with its own
verifier written from the BCH specifications, so "signed" here means a verifier that shares no code with the
signer accepted it. One store (mnemonic and WIF wallets of each chain) and one sandbox serve the module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chains.bitcoin import DOGE, LTC
from chains.bitcoin.bcash import BCH
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin, running_sandbox
from tests.unit.test_bitcoin import bitcore_json, p2pkh, p2wpkh, wif_key

API_KEY = "utxo-e2e-api-key-31f7"
COIN = 100_000_000


@dataclass
class Store:
    kms: Kms
    sandbox: Admin
    ids: dict[str, str]
    keys: dict[str, str]

    def daemon(self, chain: str) -> str:
        result = self.kms.run("daemon", "--runOnce", "--testnet", f"--chain={chain}",
                              env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": self.sandbox.url})
        assert result.returncode == 0, result.stderr
        for secret in (MQ, " ".join(MQ.split()[:3]), PASSWORD, API_KEY, *self.keys.values()):
            assert secret not in result.stdout + result.stderr, "a secret reached the daemon's output"
        return result.stdout

    def broadcasts(self, chain: str) -> dict[str, dict[str, Any]]:
        return {b["signatureId"]: b for b in self.sandbox.get("broadcasts") if b["chain"] == chain}

    def errors(self) -> dict[str, str]:
        return {e["signatureId"]: e["error"] for e in self.sandbox.get("errors")}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    home = Path(tmp_path_factory.mktemp("utxo")) / "home"
    home.mkdir()
    kms = Kms(home)
    ids, keys = {}, {}
    for chain in (LTC, DOGE, BCH):
        code = chain.code
        ids[f"{code}-mnemonic"] = kms.ok("storemanagedwallet", code, "--testnet", input=MQ + "\n")["signatureId"]
        for name in ("wif", "wif2") if code == "BCH" else ("wif",):
            keys[f"{code}-{name}"] = chain.generate_private_key(True)[0]
            stored = kms.ok("storemanagedprivatekey", code, "--testnet", input=keys[f"{code}-{name}"] + "\n")
            ids[f"{code}-{name}"] = stored["signatureId"]
    with running_sandbox() as sandbox:
        yield Store(kms, sandbox, ids, keys)


def derived(chain: Any, index: int) -> str:
    return chain.private_key_from_mnemonic(MQ, index, True)


def public(wif: str) -> bytes:
    return wif_key(wif).public_key.format()


# -- LTC -----------------------------------------------------------------------------------------


def test_ltc_mnemonic_with_index_wif_and_offchain_are_signed_and_verified(store: Store) -> None:
    mnemonic, wif = store.ids["LTC-mnemonic"], store.ids["LTC-wif"]
    at3, at5, own = derived(LTC, 3), derived(LTC, 5), store.keys["LTC-wif"]
    by_index = store.sandbox.enqueue({
        "chain": "LTC", "hashes": [], "signatures": [{"id": mnemonic, "index": 3}],
        "serializedTransaction": json.dumps(bitcore_json([(p2pkh(public(at3)), 80_000)],
                                                         [(p2wpkh(public(own)), 70_000)], with_hash=True))})
    by_key = store.sandbox.enqueue({  # a P2WPKH and a P2PKH input of the same key
        "chain": "LTC", "hashes": [wif], "serializedTransaction": json.dumps(bitcore_json(
            [(p2wpkh(public(own)), 40_000), (p2pkh(public(own)), 30_000)], [(p2pkh(public(at3)), 65_000)]))})
    offchain = store.sandbox.enqueue({
        "chain": "LTC", "hashes": [mnemonic], "withdrawalId": "wd-ltc-1",
        "withdrawalResponses": [{"vIn": os.urandom(32).hex(), "vInIndex": 0, "address": {"derivationKey": 5}},
                                {"vIn": "-1", "address": None}],
        "serializedTransaction": json.dumps(bitcore_json([(p2pkh(public(at5)), 50_000)],
                                                         [("0014" + "33" * 20, 45_000)]))})

    store.daemon("LTC")

    broadcasts = store.broadcasts("LTC")
    assert set(broadcasts) == {by_index, by_key, offchain}, store.errors()
    assert broadcasts[by_index]["path"] == broadcasts[by_key]["path"] == "/v3/litecoin/broadcast"
    assert broadcasts[offchain]["path"] == "/v3/offchain/withdrawal/broadcast"
    assert broadcasts[offchain]["withdrawalId"] == "wd-ltc-1"


# -- DOGE ----------------------------------------------------------------------------------------


def test_doge_is_signed_and_verified_and_dust_is_refused_on_chain_only(store: Store) -> None:
    mnemonic, wif = store.ids["DOGE-mnemonic"], store.ids["DOGE-wif"]
    at2, at7, own = derived(DOGE, 2), derived(DOGE, 7), store.keys["DOGE-wif"]

    def payload(key: str, outputs: list[int], spent: int) -> str:
        return json.dumps(bitcore_json([(p2pkh(public(key)), spent)],
                                       [(p2pkh(public(own)), value) for value in outputs], version=1))

    by_index = store.sandbox.enqueue({"chain": "DOGE", "hashes": [], "signatures": [{"id": mnemonic, "index": 2}],
                                      "serializedTransaction": payload(at2, [20 * COIN], 21 * COIN)})
    by_key = store.sandbox.enqueue({"chain": "DOGE", "hashes": [wif],
                                    "serializedTransaction": payload(own, [4 * COIN, 5 * COIN], 10 * COIN)})
    dust = store.sandbox.enqueue({"chain": "DOGE", "hashes": [wif],
                                  "serializedTransaction": payload(own, [8 * COIN, COIN // 2], 9 * COIN + COIN // 2)})
    offchain_dust = store.sandbox.enqueue({
        "chain": "DOGE", "hashes": [mnemonic], "withdrawalId": "wd-doge-1",
        "withdrawalResponses": [{"vIn": os.urandom(32).hex(), "vInIndex": 1, "address": {"derivationKey": 7}}],
        "serializedTransaction": payload(at7, [3 * COIN, COIN // 2], 4 * COIN)})

    store.daemon("DOGE")

    broadcasts = store.broadcasts("DOGE")
    assert set(broadcasts) == {by_index, by_key, offchain_dust}
    assert broadcasts[offchain_dust]["path"] == "/v3/offchain/withdrawal/broadcast"
    errors = store.errors()
    assert "Dust amount detected in one output" in errors[dust]
    assert "bitcore.io/api/lib/transaction#serialization-checks" in errors[dust]


# -- BCH -----------------------------------------------------------------------------------------


def unsigned_bch(spent: list[tuple[str, int]], outputs: list[tuple[bytes, int]]) -> str:
    raw = b"\x02\x00\x00\x00" + bytes([len(spent)])
    for txid, index in spent:
        raw += bytes.fromhex(txid)[::-1] + index.to_bytes(4, "little") + b"\x00\xff\xff\xff\xff"
    raw += bytes([len(outputs)])
    for script, value in outputs:
        raw += value.to_bytes(8, "little") + bytes([len(script)]) + script
    return (raw + b"\x00\x00\x00\x00").hex()


def test_bch_two_wallets_offchain_and_a_tampered_amount(store: Store) -> None:
    mnemonic, wif, wif2 = store.ids["BCH-mnemonic"], store.ids["BCH-wif"], store.ids["BCH-wif2"]
    own, at0, at2, at4 = store.keys["BCH-wif"], derived(BCH, 0), derived(BCH, 2), derived(BCH, 4)

    def fund(key: str, satoshis: int) -> tuple[str, int]:
        address = BCH.address_from_private_key(key, True)
        reply = store.sandbox.http.post(f"{store.sandbox.url}/sandbox/bch/utxo",
                                        json={"address": address, "satoshis": satoshis}, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()["txId"], reply.json()["index"]

    back = bytes.fromhex(p2pkh(public(own)))
    # input 0 from the WIF wallet (hashes), input 1 from the mnemonic wallet at index 2 (signatures)
    two_wallets = store.sandbox.enqueue({
        "chain": "BCH", "hashes": [wif], "signatures": [{"id": mnemonic, "index": 2}],
        "serializedTransaction": unsigned_bch([fund(own, 60_000), fund(at2, 45_000)], [(back, 100_000)])
        + ":[60000,45000]"})
    offchain = store.sandbox.enqueue({
        "chain": "BCH", "hashes": [mnemonic], "withdrawalId": "wd-bch-1",
        "withdrawalResponses": [{"vIn": "a" * 64, "vInIndex": 0, "address": {"derivationKey": 4}},
                                {"vIn": "b" * 64, "vInIndex": 0, "address": {"xpub": "x"}},  # derivationKey 0
                                {"vIn": "-1", "address": None, "amount": 0}],
        "serializedTransaction": unsigned_bch([fund(at4, 30_000), fund(at0, 20_000)], [(back, 49_000)])
        + ":[30000,20000]"})
    other = store.keys["BCH-wif2"]
    tampered = store.sandbox.enqueue({
        "chain": "BCH", "hashes": [wif2],
        "serializedTransaction": unsigned_bch([fund(other, 25_000)], [(back, 24_000)]) + ":[25001]"})

    store.daemon("BCH")

    broadcasts = store.broadcasts("BCH")
    assert set(broadcasts) == {two_wallets, offchain}, store.errors()
    assert broadcasts[two_wallets]["path"] == "/v3/bcash/broadcast"
    assert broadcasts[offchain]["path"] == "/v3/offchain/withdrawal/broadcast"
    errors = store.errors()
    assert "bch.broadcast.failed" in errors[tampered] and "input 0" in errors[tampered]
