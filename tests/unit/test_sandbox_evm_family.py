"""The sandbox's EVM-family ledgers: each EVM chain on its own chain id (a transaction for another is refused),
the ERC-20 it deploys, and the CELO and VET verifiers pinned to public vectors and transactions made with
eth-keys and the `rlp` package (never with the KMS signer)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak

from chains.base import PendingTransaction
from kms.sandbox.api import Sandbox
from kms.sandbox.ledgers import VerifyFailed
from kms.sandbox.ledgers.celo import CeloLedger, decode_celo
from kms.sandbox.ledgers.evm import CHAIN_IDS, EvmLedger
from kms.sandbox.ledgers.vechain import VetLedger, decode_thor
from kms.sandbox.replies import Rejected

KEY = keys.PrivateKey(bytes.fromhex("7582be841ca040aa940fff6c05773129e135623e41acce3e0b8ba520dc1ae26a"))
ORIGIN = KEY.public_key.to_checksum_address()


def rpc(sandbox_ledger: Any, chain: str, method: str, *params: Any) -> Any:
    reply = sandbox_ledger.node(chain, "rpc", "POST", "", {"jsonrpc": "2.0", "id": 1, "method": method,
                                                           "params": list(params)}, {})
    assert "error" not in reply.body, reply.body
    return reply.body["result"]


# -- EVM chains ------------------------------------------------------------------------------------


def test_the_sandbox_starts_without_making_an_evm() -> None:
    sandbox = Sandbox(testnet=True)
    [ledger] = [ledger for ledger in sandbox.ledgers if isinstance(ledger, EvmLedger)]
    assert ledger._evms == {}
    assert sandbox.handle("GET", "/sandbox", {}, b"").body["chainIds"]["BSC"] == 97
    assert ledger._evms == {}


@pytest.mark.parametrize("testnet", [True, False])
def test_each_chain_runs_on_its_own_chain_id(testnet: bool) -> None:
    ledger = EvmLedger(execute=True, testnet=testnet)
    for chain in ("BSC", "MATIC", "XDC"):
        expected = CHAIN_IDS[chain][1 if testnet else 0]
        assert int(rpc(ledger, chain, "eth_chainId"), 16) == expected
    assert int(rpc(ledger, "KLAY", "klay_chainID"), 16) == CHAIN_IDS["KLAY"][1 if testnet else 0]


def test_a_transaction_for_another_chains_id_is_refused_and_its_own_executes() -> None:
    ledger = EvmLedger(execute=True, testnet=True)
    account = Account.create()
    ledger.evm("BSC").fund(account.address, 10**18)
    recipient = Account.create().address
    tx = {"to": recipient, "value": 1000, "gas": 21000, "gasPrice": 10**10, "nonce": 0}
    for wrong in (CHAIN_IDS["MATIC"][1], CHAIN_IDS["BSC"][0]):  # another chain, or BSC's other network
        raw = account.sign_transaction({**tx, "chainId": wrong}).raw_transaction.to_0x_hex()
        with pytest.raises(Rejected, match="chain id"):
            ledger.submit("BSC", raw, {})
    assert ledger.evm("BSC").balance(recipient) == 0
    ledger.submit("BSC", account.sign_transaction({**tx, "chainId": 97}).raw_transaction.to_0x_hex(), {})
    assert ledger.evm("BSC").balance(recipient) == 1000
    assert ledger.evm("MATIC").balance(recipient) == 0  # another chain's state


def test_the_token_mints_transfers_and_refuses_more_than_the_balance() -> None:
    sandbox = Sandbox(testnet=True)
    holder, recipient = Account.create(), Account.create()
    deployed = sandbox.handle("POST", "/sandbox/bsc/token", {}, json.dumps({"to": holder.address,
                                                                           "amount": "1000"}).encode())
    assert deployed.status == 200, deployed.body
    token = deployed.body["address"]
    [ledger] = [ledger for ledger in sandbox.ledgers if isinstance(ledger, EvmLedger)]
    evm = ledger.evm("BSC")
    evm.fund(holder.address, 10**17)

    def transfer(amount: int, nonce: int) -> None:
        data = "0xa9059cbb" + recipient.address[2:].lower().rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
        raw = holder.sign_transaction({"to": token, "data": data, "gas": 60000, "gasPrice": 10**10, "nonce": nonce,
                                       "chainId": 97}).raw_transaction.to_0x_hex()
        ledger.submit("BSC", raw, {})

    transfer(300, 0)
    transfer(701, 1)  # more than is left: reverts, nothing moves
    balance = sandbox.handle("GET", f"/sandbox/bsc/token/{token}/balance/{recipient.address}", {}, b"").body
    assert balance["balance"] == "300"
    assert evm.token_balance(token, holder.address) == 700
    minted = sandbox.handle("POST", f"/sandbox/bsc/token/{token}/mint", {},
                            json.dumps({"to": recipient.address, "amount": "5"}).encode())
    assert minted.body["balance"] == "305"


# -- CELO ------------------------------------------------------------------------------------------

CUSD_TEST = "874069fa1eb16d44d622f2e0ca25eea172369bc1"


def celo_tx(nonce: int = 0, chain_id: int = 44787, gas_price: int = 10**9, value: int = 5,
            fee_currency: str = CUSD_TEST, key: keys.PrivateKey = KEY) -> str:
    """A Celo legacy transaction signed with eth-keys over the `rlp` package's encoding."""
    fields = [nonce, gas_price, 21000, bytes.fromhex(fee_currency), b"", 0,
              bytes.fromhex("1be31a94361a391bbafb2a4ccd704f57dc04d4bb"), value, b""]
    signature = key.sign_msg_hash(keccak(rlp.encode([*fields, chain_id, 0, 0])))
    return "0x" + rlp.encode([*fields, chain_id * 2 + 35 + signature.v, signature.r, signature.s]).hex()


def test_the_celo_decoder_recomputes_celo_monorepos_signing_hash() -> None:
    """The unsigned vector of celo-monorepo's signing-utils test, signed here with eth-keys, recovers to its key."""
    unsigned = bytes.fromhex("f84080630a945409ed021d9299bf6814279a6a1411a7e866a6318080941be31a94361a391bbafb2a4ccd70"
                             "4f57dc04d4bb893635c9adc5dea0000083abcdef028080")
    fields = rlp.decode(unsigned)[:9]
    signature = KEY.sign_msg_hash(keccak(unsigned))
    raw = rlp.encode([*fields, 2 * 2 + 35 + signature.v, signature.r, signature.s])
    tx = decode_celo(raw, 2)
    assert tx["from"] == ORIGIN
    assert (tx["gasPrice"], tx["gas"], tx["value"], tx["data"]) == (99, 10, 1000 * 10**18, "0xabcdef")
    assert tx["feeCurrency"] == "0x5409ed021d9299bf6814279a6a1411a7e866a631" and tx["gatewayFeeRecipient"] == ""
    tampered = bytearray(raw)
    tampered[raw.index(bytes.fromhex("abcdef"))] ^= 1
    assert decode_celo(bytes(tampered), 2)["from"] != ORIGIN


def test_the_celo_ledger_keeps_nonces_chain_id_and_minimum_price() -> None:
    ledger = CeloLedger(execute=True, testnet=True)
    ledger.submit("CELO", celo_tx(nonce=0), {})
    for bad, reason in [(celo_tx(nonce=0), "nonce 0 is not the sender's next"),
                        (celo_tx(nonce=1, chain_id=42220), "invalid chain id"),
                        (celo_tx(nonce=1, gas_price=10**8), "below the minimum"),
                        (celo_tx(nonce=1)[:-4], "rlp")]:
        with pytest.raises(Rejected, match=reason):
            ledger.submit("CELO", bad, {})
    ledger.submit("CELO", celo_tx(nonce=1), {})
    assert ledger.nonce(ORIGIN) == 2


def test_the_celo_ledger_compares_the_signed_fields_with_the_pending_ones() -> None:
    ledger = CeloLedger(execute=True, testnet=True)
    payload = {"to": "0x1be31a94361a391bbafb2a4ccd704f57dc04d4bb", "value": "0x5", "feeCurrency": "0x" + CUSD_TEST}
    ledger.pending("CELO", PendingTransaction.from_json({"id": "p1", "chain": "CELO", "hashes": [],
                                                         "serializedTransaction": json.dumps(payload)}))
    with pytest.raises(Rejected, match="value"):
        ledger.submit("CELO", celo_tx(value=6), {"signatureId": "p1"})
    with pytest.raises(Rejected, match="feeCurrency"):
        ledger.submit("CELO", celo_tx(fee_currency="10c892a6ec43a53e45d0b916b4b7d383b1b78c0f"), {"signatureId": "p1"})
    ledger.submit("CELO", celo_tx(), {"signatureId": "p1"})


# -- VET -------------------------------------------------------------------------------------------

THOR_SIGNED = bytes.fromhex(
    "f8970184aabbccdd20f840df947567d83b7b8d80addcb281a71d54fc7b3364ffed82271086000000606060df947567d83b7b8d80addcb2"
    "81a71d54fc7b3364ffed824e208600000060606081808252088083bc614ec0b841f76f3c91a834165872aa9464fc55b03a13f46ea8d3b8"
    "58e528fcceaf371ad6884193c3f313ff8effbb57fe4d1adc13dceb933bedbf9dbb528d2936203d5511df00")


def test_the_thor_decoder_matches_thor_devkits_signed_vector() -> None:
    """vechain/thor-devkit.js v1.2.3 tests/transaction.test.ts: signing hash, origin and id of the signed body."""
    tx = decode_thor(THOR_SIGNED)
    assert tx["signingHash"].hex() == "2a1c25ce0d66f45276a5f308b99bf410e2fc7d5b6ea37a49f2ab9f1da9446478"
    assert tx["origin"] == ORIGIN.lower()
    assert tx["id"] == "0xda90eaea52980bc4bb8d40cb2ff84d78433b3b4a6e7d50b75736c5e3e77b71ec"
    assert (tx["chainTag"], tx["blockRef"].hex(), tx["expiration"], tx["gas"]) == (1, "00000000aabbccdd", 32, 21000)
    with pytest.raises(VerifyFailed):
        decode_thor(THOR_SIGNED[:-1])


def thor_tx(ledger: VetLedger, block_ref: bytes | None = None, chain_tag: int | None = None, gas: int = 21000,
            nonce: int = 7, expiration: int = 720, to: str = "11" * 20) -> str:
    """A thor transaction signed with eth-keys over the `rlp` package's encoding and hashlib's BLAKE2b."""
    ref = block_ref if block_ref is not None else bytes.fromhex(ledger.best()["id"][2:18])
    body = [chain_tag if chain_tag is not None else ledger.chain_tag, ref.lstrip(b"\0"), expiration,
            [[bytes.fromhex(to), 1000, b""]], 128, gas, b"", nonce, []]
    signature = KEY.sign_msg_hash(hashlib.blake2b(rlp.encode(body), digest_size=32).digest())
    return "0x" + rlp.encode([*body, signature.to_bytes()]).hex()


def test_the_vet_ledger_checks_tag_reference_gas_and_replays() -> None:
    ledger = VetLedger(execute=True, testnet=True)
    assert ledger.node("VET", "node", "GET", "/blocks/0", None, {}).body["id"].endswith("27")
    genesis_ref = bytes.fromhex(ledger.best()["id"][2:18])
    first = thor_tx(ledger)
    assert ledger.submit("VET", first, {}).startswith("0x")
    for bad, reason in [(first, "known already"), (thor_tx(ledger, chain_tag=0x4A), "chain tag"),
                        (thor_tx(ledger, block_ref=b"\0\0\0\x01\0\0\0\x02"), "no block"),
                        (thor_tx(ledger, gas=20999), "gas"),
                        (thor_tx(ledger, block_ref=genesis_ref, expiration=1), "expired")]:
        with pytest.raises(Rejected, match=reason):
            ledger.submit("VET", bad, {})
    best = ledger.node("VET", "node", "GET", "/blocks/best", None, {}).body
    assert best["number"] == 1001  # one block per accepted transaction
    estimate = ledger.node("VET", "node", "POST", "/accounts/*", {"clauses": [{"to": None, "data": "0x00ff"}]}, {})
    assert estimate.body[0]["gasUsed"] > 0 and estimate.body[0]["reverted"] is False


def test_the_vet_ledger_compares_the_clause_with_the_pending_one() -> None:
    ledger = VetLedger(execute=True, testnet=True)
    payload = {"to": "0x" + "22" * 20, "value": "1000"}
    ledger.pending("VET", PendingTransaction.from_json({"id": "p1", "chain": "VET", "hashes": [],
                                                        "serializedTransaction": json.dumps(payload)}))
    with pytest.raises(Rejected, match="clause goes to"):
        ledger.submit("VET", thor_tx(ledger), {"signatureId": "p1"})
    ledger.submit("VET", thor_tx(ledger, to="22" * 20), {"signatureId": "p1"})
