"""LTC and DOGE: BitcoinChain entries signed as bitcore does, checked by python-bitcoinlib, and DOGE's checked
serialization refusing what bitcore-lib-doge 10.0.0 refuses, with its messages.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bip_utils import Bip32Secp256k1, Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins, P2PKHAddrEncoder

from chains.base import ChainError, PendingTransaction
from chains.bitcoin import DOGE, LTC
from tests.recording_node import RecordingNode
from tests.unit.test_bitcoin import MQ, bitcore_json, p2pkh, p2sh_p2wpkh, p2wpkh, verify, wif_key

MORE = " - For more information please see: https://bitcore.io/api/lib/transaction#serialization-checks"
DOGE_COIN = 100_000_000  # koinu


def pending(chain: str, obj: dict[str, Any], **fields: Any) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": chain, "hashes": ["a"],
                                         "serializedTransaction": json.dumps(obj), **fields})


def pubkey(wif: str) -> bytes:
    return wif_key(wif).public_key.format()


# -- wallets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chain, coin", [(LTC, Bip44Coins.LITECOIN), (DOGE, Bip44Coins.DOGECOIN)])
def test_mainnet_addresses_and_keys_agree_with_bip_utils(chain: Any, coin: Bip44Coins) -> None:
    seed = Bip39SeedGenerator(MQ).Generate()
    account = Bip44.FromSeed(seed, coin).Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT)  # m/44'/c'/0'/0
    wallet = chain.wallet_from_mnemonic(MQ, False)
    for index in (0, 1, 300):
        child = account.AddressIndex(index)
        assert chain.address(wallet, index, False) == child.PublicKey().ToAddress()
        assert chain.private_key(wallet, index, False) == child.PrivateKey().ToWif()


def test_testnet_wallets_use_the_common_testnet_path() -> None:
    node = Bip32Secp256k1.FromSeed(Bip39SeedGenerator(MQ).Generate()).DerivePath("m/44'/1'/0'/0")
    for chain, version in ((LTC, b"\x6f"), (DOGE, b"\x71")):
        wallet = chain.wallet_from_mnemonic(MQ, True)
        public_key = node.ChildKey(5).PublicKey().RawCompressed().ToBytes()
        assert chain.address(wallet, 5, True) == P2PKHAddrEncoder.EncodeKey(public_key, net_ver=version)
    assert LTC.wallet_from_mnemonic(MQ, True)["xpub"].startswith("ttub")
    assert DOGE.wallet_from_mnemonic(MQ, True)["xpub"].startswith("tpub")


def test_a_key_of_another_chain_is_refused() -> None:
    doge_key = DOGE.private_key_from_mnemonic(MQ, 1, False)
    with pytest.raises(ChainError, match="another network or chain"):
        LTC.address_from_private_key(doge_key, False)
    with pytest.raises(ChainError, match="WIF"):
        LTC.sign(pending("LTC", bitcore_json([(p2pkh(pubkey(doge_key)), 10_000)], [])), [doge_key], False,
                 RecordingNode())


# -- LTC signing -----------------------------------------------------------------------------------


def test_ltc_legacy_p2wpkh_and_nested_inputs_with_keys_out_of_input_order() -> None:
    keys = [LTC.private_key_from_mnemonic(MQ, index, True) for index in (0, 4, 9)]
    a, b, c = (pubkey(k) for k in keys)
    obj = bitcore_json([(p2pkh(c), 30_000), (p2wpkh(a), 20_000), (p2sh_p2wpkh(b), 15_000), (p2pkh(a), 5_000)],
                       [(p2wpkh(b), 60_000)], with_hash=True)
    node = RecordingNode()
    signed = LTC.sign(pending("LTC", obj), [keys[1], keys[2], keys[0], keys[2]], True, node)
    tx = verify(signed.tx_data, obj)
    assert [len(w.scriptWitness.stack) for w in tx.wit.vtxinwit] == [0, 2, 2, 0]
    assert signed.path == "/v3/litecoin/broadcast" and node.calls == []


def test_ltc_offchain_withdrawal_goes_to_the_offchain_broadcast() -> None:
    wif = LTC.private_key_from_mnemonic(MQ, 2, False)
    obj = bitcore_json([(p2pkh(pubkey(wif)), 70_000)], [(p2pkh(pubkey(wif)), 60_000)])
    signed = LTC.sign(pending("LTC", obj, withdrawalId="wd-3"), [wif], False, RecordingNode())
    assert (signed.path, signed.extra) == ("/v3/offchain/withdrawal/broadcast",
                                           {"currency": "LTC", "withdrawalId": "wd-3"})
    verify(signed.tx_data, obj)


# -- DOGE signing and bitcore-lib-doge's checks ----------------------------------------------------


def doge_spend(outputs: list[int], fee: int | None = None, change: bool = False,
               spent: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """DOGE testnet: two P2PKH inputs of two keys, outputs back to the first, as bitcore's `toObject`."""
    keys = [DOGE.private_key_from_mnemonic(MQ, index, True) for index in (1, 6)]
    script = p2pkh(pubkey(keys[0]))
    total = spent if spent is not None else sum(outputs) + (fee or DOGE_COIN)
    obj = bitcore_json([(script, total - 3 * DOGE_COIN), (p2pkh(pubkey(keys[1])), 3 * DOGE_COIN)],
                       [(script, value) for value in outputs], version=1, with_hash=True)
    if fee is not None:
        obj["fee"] = fee
    if change:  # bitcore writes the change script as its ASM string
        obj["changeScript"] = f"OP_DUP OP_HASH160 20 0x{script[6:46]} OP_EQUALVERIFY OP_CHECKSIG"
        obj["changeIndex"] = len(outputs) - 1
    return obj, keys


def test_doge_multi_input_with_keys_in_reverse_order_is_checked_and_verifies() -> None:
    obj, keys = doge_spend([58 * DOGE_COIN, 2 * DOGE_COIN], fee=DOGE_COIN, change=True)
    signed = DOGE.sign(pending("DOGE", obj), keys[::-1], True, RecordingNode())
    tx = verify(signed.tx_data, obj)
    assert tx.nVersion == 1 and signed.path == "/v3/dogecoin/broadcast"


def test_doge_dust_is_refused_with_bitcores_reason_on_chain_and_allowed_off_chain() -> None:
    obj, keys = doge_spend([50 * DOGE_COIN, DOGE_COIN - 1])
    with pytest.raises(ChainError) as caught:
        DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode())
    assert str(caught.value) == "Dust amount detected in one output" + MORE
    signed = DOGE.sign(pending("DOGE", obj, withdrawalId="wd-1"), keys, True, RecordingNode())
    verify(signed.tx_data, obj)  # off-chain: the original's unchecked serialize(true)


def test_an_op_return_output_is_not_dust() -> None:
    obj, keys = doge_spend([50 * DOGE_COIN])
    obj["outputs"].append({"satoshis": 0, "script": "6a0568656c6c6f"})
    obj["hash"] = None
    del obj["hash"]
    verify(DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode()).tx_data, obj)


# Two P2PKH inputs and N P2PKH outputs by bitcore's estimate: 26 + 2 * (36 + 107) + N * (25 + 9) bytes at
# 1 DOGE/kB = 100,000 koinu a byte; the fee must lie within [estimate / 15, 15 * estimate].
def test_doge_absurd_and_tiny_fees_are_refused_with_bitcores_reasons() -> None:
    one_output = (26 + 2 * 143 + 34) * 100_000  # 34,600,000
    obj, keys = doge_spend([10 * DOGE_COIN], fee=None, spent=10 * DOGE_COIN + 15 * one_output + 1)
    with pytest.raises(ChainError, match="^Change address is missing - For more"):
        DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode())

    with_change = one_output + 62 * 100_000  # room for a change output: 40,800,000
    obj, keys = doge_spend([10 * DOGE_COIN], change=True, spent=10 * DOGE_COIN + 15 * with_change + 1)
    with pytest.raises(ChainError, match=f"^Fee is too large: expected less than {15 * with_change} but got "
                                         f"{15 * with_change + 1} - For more"):
        DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode())

    obj, keys = doge_spend([10 * DOGE_COIN], spent=10 * DOGE_COIN + 2_000_000)
    with pytest.raises(ChainError, match=f"^Fee is too small: expected more than {-(-one_output // 15)} but got "
                                         "2000000"):
        DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode())


def test_doge_fee_must_equal_the_unspent_value_when_given() -> None:
    obj, keys = doge_spend([10 * DOGE_COIN], fee=DOGE_COIN, spent=10 * DOGE_COIN + DOGE_COIN // 2)
    with pytest.raises(ChainError, match="Unspent value is 50000000 but specified fee is 100000000"):
        DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode())


def test_doge_refuses_segwit_inputs_as_bitcore_lib_doge_does() -> None:
    wif = DOGE.private_key_from_mnemonic(MQ, 1, True)
    script = p2wpkh(pubkey(wif))
    obj = bitcore_json([(script, 5 * DOGE_COIN)], [(p2pkh(pubkey(wif)), 4 * DOGE_COIN)], version=1)
    with pytest.raises(ChainError, match=f"Unsupported input script type: {script}"):
        DOGE.sign(pending("DOGE", obj), [wif], True, RecordingNode())


def test_a_change_index_must_name_an_output_paying_the_change_script() -> None:
    obj, keys = doge_spend([58 * DOGE_COIN, 2 * DOGE_COIN], fee=DOGE_COIN, change=True)
    DOGE.sign(pending("DOGE", obj), keys, True, RecordingNode())  # consistent: output 1 pays the change script
    for index, message in ((5, "Change index points to undefined output"), (0, None)):
        altered = {**obj, "changeIndex": index}
        if message:
            with pytest.raises(ChainError, match=f"Invalid state: {message}"):
                DOGE.sign(pending("DOGE", altered), keys, True, RecordingNode())
        else:  # bitcore ignores a change index of 0
            DOGE.sign(pending("DOGE", altered), keys, True, RecordingNode())
    other = {**obj, "changeScript": "OP_DUP OP_HASH160 20 0x" + "ab" * 20 + " OP_EQUALVERIFY OP_CHECKSIG"}
    with pytest.raises(ChainError, match="Invalid state: Change output has an unexpected script"):
        DOGE.sign(pending("DOGE", other), keys, True, RecordingNode())
    without = {k: v for k, v in obj.items() if k != "changeScript"}
    with pytest.raises(ChainError, match="Invalid state: Change script is expected"):
        DOGE.sign(pending("DOGE", without), keys, True, RecordingNode())
