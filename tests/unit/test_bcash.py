"""BCH wallets and signing: the original's vectors, CashAddr against bip-utils, and every signature checked by
the sandbox's independent verifier (`kms.sandbox.ledgers.bcash`) over the amounts the ledger knows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bip_utils import BchP2PKHAddrEncoder, Bip32Secp256k1, Bip39SeedGenerator

from chains.base import ChainError, PendingTransaction
from chains.bitcoin.bcash import BCH, schnorr_sign
from chains.primitives.cashaddr import P2SH_TYPE, encode_cashaddr
from chains.primitives.secp import hash160
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.bcash import BitcoinCashLedger, Utxo, verify_bch
from tests.recording_node import RecordingNode
from tests.unit.test_bitcoin import MQ, wif_key

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "BCH.json").read_text())


def pending(payload: str, **fields: object) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "5e6645712b55823de7ea82f1", "chain": "BCH", "hashes": ["a"],
                                         "serializedTransaction": payload, **fields})


def unsigned(spent: list[tuple[str, int]], outputs: list[tuple[bytes, int]]) -> str:
    """Raw unsigned transaction hex spending (txid, index) outpoints, serialized here (not by the signer)."""
    raw = b"\x02\x00\x00\x00" + bytes([len(spent)])
    for txid, index in spent:
        raw += bytes.fromhex(txid)[::-1] + index.to_bytes(4, "little") + b"\x00\xff\xff\xff\xff"
    raw += bytes([len(outputs)])
    for script, value in outputs:
        raw += value.to_bytes(8, "little") + bytes([len(script)]) + script
    return (raw + b"\x00\x00\x00\x00").hex()


def p2pkh(wif: str) -> bytes:
    return b"\x76\xa9\x14" + hash160(wif_key(wif).public_key.format()) + b"\x88\xac"


def key(index: int, testnet: bool = True) -> str:
    return BCH.private_key_from_mnemonic(MQ, index, testnet)


# -- wallets ---------------------------------------------------------------------------------------


def test_the_testnet_xpub_is_the_mainnet_path_with_tpub_versions() -> None:
    node = Bip32Secp256k1.FromSeed(Bip39SeedGenerator(MQ).Generate()).DerivePath("m/44'/145'/0'/0")
    main, test = BCH.wallet_from_mnemonic(MQ, False)["xpub"], BCH.wallet_from_mnemonic(MQ, True)["xpub"]
    assert main.startswith("xpub") and test.startswith("tpub")
    assert main == node.PublicKey().ToExtended()
    for index in (0, 1, 77):
        public_key = node.ChildKey(index).PublicKey().RawCompressed().ToBytes()
        assert BCH.address_from_xpub(main, index, False) == BchP2PKHAddrEncoder.EncodeKey(
            public_key, hrp="bitcoincash", net_ver=b"\x00")
        assert BCH.address_from_xpub(test, index, True) == BchP2PKHAddrEncoder.EncodeKey(
            public_key, hrp="bchtest", net_ver=b"\x00")


def test_cashaddr_encoder_agrees_with_bip_utils_for_both_types() -> None:
    from bip_utils import BchP2SHAddrEncoder

    for _ in range(50):
        public_key = wif_key(BCH.generate_private_key(True)[0]).public_key.format()
        for prefix in ("bitcoincash", "bchtest"):
            assert encode_cashaddr(prefix, 0, hash160(public_key)) == BchP2PKHAddrEncoder.EncodeKey(
                public_key, hrp=prefix, net_ver=b"\x00")
            assert encode_cashaddr(prefix, P2SH_TYPE, hash160(
                b"\x00\x14" + hash160(public_key))) == BchP2SHAddrEncoder.EncodeKey(
                public_key, hrp=prefix, net_ver=b"\x08")


def test_a_wif_gives_its_cashaddr_and_a_key_of_the_other_network_is_refused() -> None:
    wif = key(1)
    assert BCH.address_from_private_key(wif, True) == "bchtest:qr9wgjtyjd4q60323gd2ytsv5w3thl92rcms83akcc"
    with pytest.raises(ChainError, match="network"):
        BCH.address_from_private_key(wif, False)


# -- signing ---------------------------------------------------------------------------------------


def test_spec_vector_is_reproduced_byte_for_byte_without_node_calls() -> None:
    [vector] = VECTORS["signed"]
    node = RecordingNode()
    signed = BCH.sign(pending(vector["serializedTransaction"]), [vector["privateKey"]], True, node)
    assert signed.tx_data == vector["txData"]
    assert signed.path == "/v3/bcash/broadcast" and signed.extra == {}
    assert node.calls == []


def test_the_deterministic_schnorr_nonce_matches_the_public_vector() -> None:
    # trezor-crypto's eCash test "very deterministic message": RFC6979 with the "Schnorr+SHA256  " extra data.
    secret = bytes.fromhex("12B004FFF7F4B69EF8650E767F18F11EDE158148B425660723B9F9A66E61F747")
    digest = bytes.fromhex("5255683DA567900BFD3E786ED8836A4E7763C221BF1AC20ECE2A5171B9199E8A")
    assert schnorr_sign(secret, digest).hex().upper() == (
        "2C56731AC2F7A7E7F11518FC7722A166B02438924CA9D8B4D111347B81D07175"
        "71846DE67AD3D913A8FDF9D8F3F73161A4C48AE81CB183B214765FEB86E255CE")


def two_wallet_spend() -> tuple[str, dict[tuple[str, int], Utxo], list[str]]:
    """Two inputs, each paid to a different wallet's key, and the ledger's view of them."""
    first, second = key(3), BCH.generate_private_key(True)[0]
    outpoints = [(os.urandom(32).hex(), 1), (os.urandom(32).hex(), 0)]
    utxos = {outpoints[0]: Utxo(p2pkh(first), 150_000), outpoints[1]: Utxo(p2pkh(second), 90_000)}
    payload = unsigned(outpoints, [(p2pkh(first), 200_000), (b"\x6a\x04test", 0)]) + ":[150000,90000]"
    return payload, utxos, [first, second]


def test_two_inputs_from_two_wallets_are_signed_in_order_and_verify() -> None:
    payload, utxos, keys = two_wallet_spend()
    signed = BCH.sign(pending(payload), keys, True, RecordingNode())
    tx = verify_bch(signed.tx_data, utxos)
    assert [len(i.script_sig) for i in tx.vin] == [1 + 65 + 1 + 33] * 2
    swapped = BCH.sign(pending(payload), keys[::-1], True, RecordingNode())  # input i is key i, not a match
    with pytest.raises(VerifyFailed, match="input 0: the public key does not hash"):
        verify_bch(swapped.tx_data, utxos)


def test_a_tampered_amount_makes_a_signature_the_verifier_rejects() -> None:
    payload, utxos, keys = two_wallet_spend()
    tampered = payload.replace(":[150000,90000]", ":[150000,90001]")
    signed = BCH.sign(pending(tampered), keys, True, RecordingNode())
    with pytest.raises(VerifyFailed, match="input 1: (R'.x does not equal r|the Jacobi)"):
        verify_bch(signed.tx_data, utxos)


def test_key_count_and_amounts_must_fit_the_inputs() -> None:
    payload, _, keys = two_wallet_spend()
    with pytest.raises(ChainError, match="Transaction is not complete: no key for input 1"):
        BCH.sign(pending(payload), keys[:1], True, RecordingNode())
    with pytest.raises(ChainError, match="No input at index: 2"):
        BCH.sign(pending(payload), [*keys, key(9)], True, RecordingNode())
    with pytest.raises(ChainError, match="no amount for input 1"):
        BCH.sign(pending(payload.split(":")[0] + ":[150000]"), keys, True, RecordingNode())
    with pytest.raises(ChainError, match="network") as caught:
        BCH.sign(pending(payload), [key(3, testnet=False), keys[1]], True, RecordingNode())
    assert key(3, testnet=False) not in str(caught.value)
    for bad in ("0200", payload.split(":")[0], payload.split(":")[0] + ":{}", "zz:[1]", payload + "x"):
        with pytest.raises(ChainError):
            BCH.sign(pending(bad), keys, True, RecordingNode())


def test_an_absurd_fee_is_refused_as_the_original_does() -> None:
    wif = key(4)
    outpoint = (os.urandom(32).hex(), 0)
    # 2,500 sat/byte is bitcoinjs' ceiling; a ~191-byte transaction leaving 10,000,000 sat is far above it.
    payload = unsigned([outpoint], [(p2pkh(wif), 1000)]) + ":[10001000]"
    with pytest.raises(ChainError, match="Transaction has absurd fees"):
        BCH.sign(pending(payload), [wif], True, RecordingNode())


def test_offchain_keys_keep_their_input_and_go_to_the_offchain_broadcast() -> None:
    payload, utxos, keys = two_wallet_spend()
    signed = BCH.sign(pending(payload, withdrawalId="wd-9"), [keys[0], keys[1], ""], True, RecordingNode())
    assert signed.path == "/v3/offchain/withdrawal/broadcast"
    assert signed.extra == {"currency": "BCH", "withdrawalId": "wd-9"}
    verify_bch(signed.tx_data, utxos)
    # as the original, a change entry in the middle shifts the next key past the inputs
    with pytest.raises(ChainError, match="No input at index: 2"):
        BCH.sign(pending(payload, withdrawalId="wd-9"), [keys[0], "", keys[1]], True, RecordingNode())


def test_the_ledger_sample_round_trip() -> None:
    ledger = BitcoinCashLedger(execute=True, testnet=True)
    wif, address = BCH.generate_private_key(True)
    signed = BCH.sign(pending(ledger.sample("BCH", address, 5000)), [wif], True, RecordingNode())
    txid = ledger.submit("BCH", signed.tx_data, {})
    from kms.sandbox.replies import Rejected

    with pytest.raises(Rejected, match="missingorspent"):  # spent once
        ledger.submit("BCH", signed.tx_data, {})
    assert len(txid) == 64


def test_the_jacobi_fallback_without_gmpy2_gives_the_same_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from chains.bitcoin import bcash

    fast = bcash._jacobi_of_y()
    monkeypatch.setitem(sys.modules, "gmpy2", None)  # import gmpy2 now fails
    slow = bcash._jacobi_of_y()
    assert fast is not slow
    for _ in range(50):
        y = int.from_bytes(os.urandom(32), "big") % bcash._P
        assert fast(y) == slow(y) in (1, -1)
    monkeypatch.setattr(bcash, "_JACOBI", slow)
    [vector] = VECTORS["signed"]
    assert BCH.sign(pending(vector["serializedTransaction"]), [vector["privateKey"]], True,
                    RecordingNode()).tx_data == vector["txData"]
