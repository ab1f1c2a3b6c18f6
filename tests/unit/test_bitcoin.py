"""BTC wallets, derivation and signing, checked against the original SDK's vectors and python-bitcoinlib.

python-bitcoinlib 0.12's `VerifyScript` runs legacy and P2SH scripts but knows no witness, so a
witness v0 key-hash spend is checked with its BIP143 `SignatureHash` and its (OpenSSL) `CPubKey`.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest
from bip_utils import Bip32Secp256k1, Bip39SeedGenerator, P2WPKHAddrEncoder
from bitcoin.core import CTransaction
from bitcoin.core.key import CPubKey
from bitcoin.core.script import SIGHASH_ALL, SIGVERSION_WITNESS_V0, CScript, SignatureHash
from bitcoin.core.scripteval import SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_STRICTENC, VerifyScript
from coincurve import PrivateKey

from chains.base import ChainError, PendingTransaction
from chains.bitcoin import BTC, BitcoinChain, Network
from chains.primitives.secp import N, b58check_decode, hash160, sha256d

MQ = ("quantum tobacco key they maid mean crime youth chief jungle mind design broken tilt bus shoulder "
      "leaf good forward erupt split divert bread kitten")
TPUB = ("tpubDFjLw3ykn4aB7fFt96FaqRjSnvtDsU2wpVr8GQk3Eo612LS9jo9JgMkQRfYVG248J3pTBsxGg3PYUXFd7pReNLTeUzxFcUDL3zCvr"
        "p3H34a")
XPUB = ("xpub6DtevPxud8AJUCqddtVqpqxAJvjFrYYvtt4co2kZF7ifPW3d5FJ3B9i5x7xL4CZirb2eNDEVqCtBgiGZR6Kkee5RdHsDoJVbtxi"
        "946axjXJ")


# -- helpers ---------------------------------------------------------------------------------------


def wif_key(wif: str) -> PrivateKey:
    return PrivateKey(b58check_decode(wif)[1:33])


def p2pkh(pubkey: bytes) -> str:
    return "76a914" + hash160(pubkey).hex() + "88ac"


def p2wpkh(pubkey: bytes) -> str:
    return "0014" + hash160(pubkey).hex()


def p2sh_p2wpkh(pubkey: bytes) -> str:
    return "a914" + hash160(bytes.fromhex(p2wpkh(pubkey))).hex() + "87"


def bitcore_json(spent: list[tuple[str, int]], outputs: list[tuple[str, int]], version: int = 2,
                 with_hash: bool = False) -> dict[str, Any]:
    """A bitcore `toObject()` payload spending (script hex, satoshis) outputs of random transactions."""
    obj: dict[str, Any] = {
        "version": version,
        "inputs": [{"prevTxId": os.urandom(32).hex(), "outputIndex": n % 3, "sequenceNumber": 4294967295,
                    "script": "", "output": {"satoshis": sats, "script": script}}
                   for n, (script, sats) in enumerate(spent)],
        "outputs": [{"satoshis": sats, "script": script} for script, sats in outputs],
        "nLockTime": 0,
    }
    if with_hash:
        obj["hash"] = unsigned_txid(obj)
    return obj


def unsigned_txid(obj: dict[str, Any]) -> str:
    """txid of the unsigned transaction, serialized here independently of the signer."""
    raw = obj["version"].to_bytes(4, "little") + bytes([len(obj["inputs"])])
    for i in obj["inputs"]:
        raw += bytes.fromhex(i["prevTxId"])[::-1] + i["outputIndex"].to_bytes(4, "little") + b"\0"
        raw += i["sequenceNumber"].to_bytes(4, "little")
    raw += bytes([len(obj["outputs"])])
    for o in obj["outputs"]:
        script = bytes.fromhex(o["script"])
        raw += o["satoshis"].to_bytes(8, "little") + bytes([len(script)]) + script
    return sha256d(raw + obj["nLockTime"].to_bytes(4, "little"))[::-1].hex()


def pending(obj: dict[str, Any] | str, **fields: Any) -> PendingTransaction:
    payload = obj if isinstance(obj, str) else json.dumps(obj)
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "BTC", "hashes": ["a"],
                                         "serializedTransaction": payload, **fields})


def verify(tx_hex: str, obj: dict[str, Any]) -> CTransaction:
    """Check every input of the signed tx with python-bitcoinlib; return the parsed transaction."""
    tx = CTransaction.deserialize(bytes.fromhex(tx_hex))
    assert len(tx.vin) == len(obj["inputs"]) and len(tx.vout) == len(obj["outputs"])
    for n, spent in enumerate(obj["inputs"]):
        assert tx.vin[n].prevout.hash[::-1].hex() == spent["prevTxId"]
        script_pubkey = CScript(bytes.fromhex(spent["output"]["script"]))
        flags = (SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_STRICTENC)
        VerifyScript(tx.vin[n].scriptSig, script_pubkey, tx, n, flags)  # legacy, and the P2SH layer
        program = bytes(script_pubkey)
        if script_pubkey.is_p2sh():
            program = bytes(list(tx.vin[n].scriptSig)[-1])  # the redeem script
        if program[:2] == b"\x00\x14":
            signature, pubkey = tx.wit.vtxinwit[n].scriptWitness.stack
            assert hash160(pubkey) == program[2:]
            code = CScript(bytes.fromhex("76a914") + program[2:] + bytes.fromhex("88ac"))
            digest = SignatureHash(code, tx, n, SIGHASH_ALL, spent["output"]["satoshis"], SIGVERSION_WITNESS_V0)
            assert signature[-1] == SIGHASH_ALL and CPubKey(pubkey).verify(digest, signature[:-1])
            assert_low_s(signature[:-1])
        else:
            assert_low_s(list(tx.vin[n].scriptSig)[0][:-1])
    return tx


def assert_low_s(der: bytes) -> None:
    r_len = der[3]
    s = int.from_bytes(der[6 + r_len:], "big")
    assert 0 < s <= N // 2


# -- wallets and derivation (spec §4.1) ---------------------------------------------------------


def test_spec_xpubs_address_and_keys_for_mq() -> None:
    assert BTC.wallet_from_mnemonic(MQ, False) == {"mnemonic": MQ, "xpub": XPUB}
    assert BTC.wallet_from_mnemonic(MQ, True) == {"mnemonic": MQ, "xpub": TPUB}
    assert BTC.address_from_xpub(TPUB, 1, True) == "tb1q9x2gqftyxterwt0k6ehzrm2gkzthjly677ucyr"
    assert BTC.private_key_from_mnemonic(MQ, 1, False) == "KwrYonf8pFfyQR87NTn124Ep9zoJsZMBCoVUi7mjMc1eTHDyLyBN"
    assert BTC.private_key_from_mnemonic(MQ, 1, True) == "cQ1YZMep3CiAnMTA9y62ha6BjGaaTFsTvtDuGmucGvpAVmS89khV"


def test_spec_wif_to_legacy_address() -> None:
    assert BTC.address_from_private_key("KwREvx76g7QAp5dow1ab2Mg8K6Ta4SH5kR5ASjhwoDcNj2bPvgG3", False) == (
        "18w9N93bAn13wDnEXFKLGTGeYN9CQoJAqV")
    assert BTC.address_from_private_key("cNvyq4JM4DnPyXNNkkxf47baCuyVesCrw5AtkALKy7ELTrBLrGBK", True) == (
        "n4EUn9z1zXK1824mTHj9hEV91L3KdNPnpY")


def test_mainnet_addresses_match_bip_utils_and_the_keys_at_the_same_index() -> None:
    node = Bip32Secp256k1.FromSeed(Bip39SeedGenerator(MQ).Generate()).DerivePath("m/44'/0'/0'/0")
    for index in (0, 1, 19, 1000):
        expected = P2WPKHAddrEncoder.EncodeKey(node.ChildKey(index).PublicKey().RawCompressed().ToBytes(), hrp="bc")
        assert BTC.address_from_xpub(XPUB, index, False) == expected
        key = wif_key(BTC.private_key_from_mnemonic(MQ, index, False))
        assert key.public_key.format() == node.ChildKey(index).PublicKey().RawCompressed().ToBytes()


def test_an_xpub_of_the_other_network_is_refused() -> None:
    with pytest.raises(ChainError, match="version"):
        BTC.address_from_xpub(TPUB, 0, False)
    with pytest.raises(ChainError, match="version"):
        BTC.address_from_xpub(XPUB, 0, True)


def test_wif_of_the_wrong_network_is_refused_for_an_address() -> None:
    with pytest.raises(ChainError, match="network") as caught:
        BTC.address_from_private_key("cNvyq4JM4DnPyXNNkkxf47baCuyVesCrw5AtkALKy7ELTrBLrGBK", False)
    assert "cNvyq4" not in str(caught.value)


def test_generated_private_key_is_a_wif_whose_bech32_address_it_controls() -> None:
    for testnet, prefix, hrp in ((False, "K", "bc"), (True, "c", "tb")):
        keys = [BTC.generate_private_key(testnet) for _ in range(20)]
        assert len({k for k, _ in keys}) == 20
        for wif, address in keys:
            assert wif[0] in (prefix, "L" if prefix == "K" else "c")
            expected = P2WPKHAddrEncoder.EncodeKey(wif_key(wif).public_key.format(), hrp=hrp)
            assert address == expected


# -- signing --------------------------------------------------------------------------------------


def test_ltc_vector_3_legacy_p2pkh_is_reproduced_byte_for_byte() -> None:
    """Spec §4.2 vector 3: the original's bitcore output for a testnet P2PKH spend (RFC6979 is deterministic)."""
    expected = (
        "0200000001d3c8db438a253cb9bdf6ff440848e79cb71c5d197f37185de3df379c3a33504f000000006b483045022100dfa3cf9e826"
        "d457f36bd622b51107bc1aa14d55d0ba6f6cc95f597a6be9c068402207ea536d16e1512d8efaa9d89cf9af10a6d068030c9f88a670a"
        "a65abcbd9e1c8201210234166c1b874af0faa08b1145ff3dbc31358c0eb35ec6d461000466f5f80b22ecffffffff02809698000000"
        "00001976a91472c0ea7cf5ab9299169798c776a14c958444875a88ace08b2901000000001976a914bafecce5010ae353c2c7d7298e"
        "14f6e5d8950d2888ac00000000")
    sender_hash = b58check_decode("mxZhDaGuFLL3jBKsxGfzd1DnRDLYQagqbo")[1:]
    wire_txid = bytes.fromhex("d3c8db438a253cb9bdf6ff440848e79cb71c5d197f37185de3df379c3a33504f")
    obj = {"version": 2, "nLockTime": 0,
           "inputs": [{"prevTxId": wire_txid[::-1].hex(), "outputIndex": 0,
                       "sequenceNumber": 4294967295, "script": "",
                       "output": {"satoshis": 29_600_000, "script": "76a914" + sender_hash.hex() + "88ac"}}],
           "outputs": [{"satoshis": 10_000_000, "script": "76a91472c0ea7cf5ab9299169798c776a14c958444875a88ac"},
                       {"satoshis": 19_500_000, "script": "76a914bafecce5010ae353c2c7d7298e14f6e5d8950d2888ac"}]}
    obj["hash"] = unsigned_txid(obj)
    signed = BTC.sign(pending(obj), ["cQ4WBAs4PvXphpV6ezUHqo5QhBPPsJKtHhaBSJy5TtJoV2qs4koP"], True, None)
    assert signed.tx_data == expected
    assert signed.path == "/v3/bitcoin/broadcast" and signed.extra == {}
    verify(signed.tx_data, obj)


def test_doge_vector_1_with_dogecoin_network_data() -> None:
    """Spec §4.2 vector 1, signed by a DOGE chain that is only network data (version 1, WIF 0xf1)."""
    doge = BitcoinChain("DOGE", 3, Network(0x1E, 0x16, 0x9E, 0x0488B21E), Network(0x71, 0xC4, 0xF1, 0x043587CF),
                        "/v3/dogecoin/broadcast")
    wif = "chAohgNcPWYSjPUhG7spHvHAE8yt86QvFmUAPgboFtKb4RnwB1L1"
    assert doge.address_from_private_key(wif, True) == "nXz1s8tMQbqjARaSMNCPkgdwJQ2JDW2M7W"
    script = p2pkh(wif_key(wif).public_key.format())
    obj = {"version": 1, "nLockTime": 0,
           "inputs": [{"prevTxId": "abb7dfbbbf58407b3774c58f24930cbd6d8cba730200f96cbe8f024d9f8879e5", "outputIndex": 1,
                       "sequenceNumber": 4294967295, "script": "", "output": {"satoshis": 6_008_190_000,
                                                                              "script": script}}],
           "outputs": [{"satoshis": 5_800_000_000, "script": script}, {"satoshis": 108_190_000, "script": script}]}
    signed = doge.sign(pending(obj), [wif], True, None)
    assert signed.tx_data == (
        "0100000001e579889f4d028fbe6cf9000273ba8c6dbd0c93248fc574377b4058bfbbdfb7ab010000006a473044022042162432ec6f0"
        "9dc0e259dde1a7643b0b2502aa77b92d9fad867801fee987223022010911ffa756f4da3bc52ef454fd9476453ed91e8cca8706dcce4f"
        "dc3ef79b0eb012102473ddfe2afe40c68b68ecb81036003df920503668188b744b7c72046a97000bbffffffff0200fab45901000000"
        "1976a914299480256432f2372df6d66e21ed48b097797c9a88ac30d97206000000001976a914299480256432f2372df6d66e21ed48"
        "b097797c9a88ac00000000")
    with pytest.raises(ChainError, match="WIF"):  # a BTC chain will not take a DOGE key
        BTC.sign(pending(obj), [wif], True, None)


def test_p2wpkh_input_is_signed_with_a_witness_and_verifies() -> None:
    wif = BTC.private_key_from_mnemonic(MQ, 1, True)
    pubkey = wif_key(wif).public_key.format()
    obj = bitcore_json([(p2wpkh(pubkey), 50_000)], [(p2wpkh(pubkey), 15_000), (p2pkh(pubkey), 30_000)],
                       with_hash=True)
    signed = BTC.sign(pending(obj), [wif], True, None)
    assert signed.tx_data[8:12] == "0001"  # segwit marker and flag
    tx = verify(signed.tx_data, obj)
    assert tx.GetTxid()[::-1].hex() == obj["hash"]  # signing did not change the txid
    assert len(tx.vin[0].scriptSig) == 0


def test_p2sh_p2wpkh_input_is_signed_and_verifies() -> None:
    wif = BTC.private_key_from_mnemonic(MQ, 3, False)
    pubkey = wif_key(wif).public_key.format()
    obj = bitcore_json([(p2sh_p2wpkh(pubkey), 120_000)], [(p2wpkh(pubkey), 100_000)])
    signed = BTC.sign(pending(obj), [wif], False, None)
    verify(signed.tx_data, obj)


def test_mixed_inputs_two_keys_any_order_and_duplicates() -> None:
    """bitcore's rule: each key signs the inputs locked to it, whatever the order or repetition of keys."""
    first, second = BTC.private_key_from_mnemonic(MQ, 0, True), BTC.private_key_from_mnemonic(MQ, 7, True)
    pub1, pub2 = wif_key(first).public_key.format(), wif_key(second).public_key.format()
    obj = bitcore_json(
        [(p2pkh(pub2), 10_000), (p2wpkh(pub1), 20_000), (p2sh_p2wpkh(pub2), 30_000), (p2pkh(pub1), 40_000)],
        [(p2wpkh(pub1), 95_000)], with_hash=True)
    signed = BTC.sign(pending(obj), [second, first, second], True, None)
    tx = verify(signed.tx_data, obj)
    assert [len(w.scriptWitness.stack) for w in tx.wit.vtxinwit] == [0, 2, 2, 0]
    assert signed == BTC.sign(pending(obj), [first, second], True, None)


def test_an_input_no_key_matches_is_named() -> None:
    mine = BTC.private_key_from_mnemonic(MQ, 0, True)
    stranger = wif_key(BTC.private_key_from_mnemonic(MQ, 9, True)).public_key.format()
    obj = bitcore_json([(p2wpkh(wif_key(mine).public_key.format()), 10_000), (p2pkh(stranger), 10_000)],
                       [(p2pkh(stranger), 15_000)])
    with pytest.raises(ChainError, match="input 1 ") as caught:
        BTC.sign(pending(obj), [mine], True, None)
    assert mine not in str(caught.value)


def test_a_hash_that_does_not_match_the_payload_is_refused() -> None:
    wif = BTC.private_key_from_mnemonic(MQ, 0, True)
    pubkey = wif_key(wif).public_key.format()
    obj = bitcore_json([(p2wpkh(pubkey), 10_000)], [(p2wpkh(pubkey), 9_000)], with_hash=True)
    obj["outputs"][0]["satoshis"] = 1_000  # altered after the hash was taken
    with pytest.raises(ChainError, match="hash"):
        BTC.sign(pending(obj), [wif], True, None)


def test_segwit_input_without_amount_is_an_error() -> None:
    wif = BTC.private_key_from_mnemonic(MQ, 0, True)
    obj = bitcore_json([(p2wpkh(wif_key(wif).public_key.format()), 10_000)], [(p2pkh(b"\2" * 33), 9_000)])
    del obj["inputs"][0]["output"]["satoshis"]
    with pytest.raises(ChainError, match="input 0 has no output.satoshis"):
        BTC.sign(pending(obj), [wif], True, None)


def test_unsupported_script_and_bad_key_are_clear_errors() -> None:
    wif = BTC.private_key_from_mnemonic(MQ, 0, True)
    multisig = "5121" + "02" * 33 + "51ae"
    with pytest.raises(ChainError, match="input 0 spends a script type"):
        BTC.sign(pending(bitcore_json([(multisig, 1000)], [])), [wif], True, None)
    broken = wif[:-1] + ("A" if wif[-1] != "A" else "B")
    with pytest.raises(ChainError, match="private key #2") as caught:
        BTC.sign(pending(bitcore_json([(p2pkh(b"\2" * 33), 1000)], [])), [wif, broken], True, None)
    assert broken not in str(caught.value)
    with pytest.raises(ChainError, match="not JSON"):
        BTC.sign(pending("0200000001..."), [wif], True, None)


def test_offchain_withdrawal_goes_to_the_offchain_broadcast() -> None:
    wif = BTC.private_key_from_mnemonic(MQ, 2, False)
    pubkey = wif_key(wif).public_key.format()
    obj = bitcore_json([(p2wpkh(pubkey), 70_000)], [(p2wpkh(pubkey), 60_000)])
    signed = BTC.sign(pending(obj, withdrawalId="wd-1"), [wif], False, None)
    assert signed.path == "/v3/offchain/withdrawal/broadcast"
    assert signed.extra == {"currency": "BTC", "withdrawalId": "wd-1"}
    verify(signed.tx_data, obj)


def test_hash160_falls_back_to_pycryptodome_when_openssl_lacks_ripemd160(monkeypatch: pytest.MonkeyPatch) -> None:
    from chains.primitives import secp as _secp

    openssl = _secp._RIPEMD160(b"abc")
    real_new = hashlib.new

    def no_ripemd(name: str, *args: object) -> object:
        if name == "ripemd160":
            raise ValueError("unsupported hash type ripemd160")
        return real_new(name, *args)

    monkeypatch.setattr(hashlib, "new", no_ripemd)
    fallback = _secp._ripemd160()
    # RIPEMD-160 of "abc" from the algorithm's published test vectors.
    assert fallback(b"abc").hex() == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
    assert fallback(b"abc") == openssl
