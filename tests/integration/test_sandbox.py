"""`tatum-kms sandbox` as the daemon sees it: pending/batch, and broadcasts checked by independent verifiers.

ETH transfers are signed here with eth-account and executed on the sandbox's EVM; BTC transactions are
signed with python-bitcoinlib; XLM envelopes with stellar-sdk. The sandbox must accept the good ones and
reject the tampered ones, as a real node would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import rlp
from eth_account import Account
from eth_utils import keccak

from kms.tatum import TatumClient, TatumError
from tests.integration.conftest import API_KEY
from tests.tatum_sandbox import Admin, chain_node, running_sandbox

ROOT = Path(__file__).resolve().parents[2]
WALLET = "6f3c0a2e-1d5b-4c1e-9a51-3f1b0c9e7d21"


def _post(admin: Admin, path: str, body: object, key: str | None = API_KEY) -> requests.Response:
    headers = {"x-api-key": key} if key else {}
    return requests.post(f"{admin.url}{path}", json=body, headers=headers, timeout=10)


# -- pending and batch --------------------------------------------------------------------------


def test_pending_returns_the_chains_transactions_naming_a_posted_id(sandbox: Admin, client: TatumClient) -> None:
    by_hash = sandbox.enqueue({"chain": "ETH", "hashes": [WALLET], "serializedTransaction": "{}"})
    by_signature = sandbox.enqueue({"chain": "ETH", "hashes": [], "serializedTransaction": "{}",
                                    "signatures": [{"id": "wallet-2", "index": 3}]})
    other_chain = sandbox.enqueue({"chain": "BTC", "hashes": [WALLET], "serializedTransaction": json.dumps(
        {"inputs": [{"prevTxId": "00" * 32, "outputIndex": 0, "output": {"script": "00", "satoshis": 1}}]})})

    assert [tx["id"] for tx in client.pending("ETH", [WALLET])] == [by_hash]
    assert [tx["id"] for tx in client.pending("ETH", ["wallet-2"])] == [by_signature]
    assert {tx["id"] for tx in client.pending("ETH", [WALLET, "wallet-2", "unknown"])} == {by_hash, by_signature}
    assert client.pending("ETH", ["unknown"]) == []
    assert client.pending("ETH", []) == []
    assert [tx["id"] for tx in client.pending("BTC", [WALLET])] == [other_chain]
    assert len(by_hash) == 24 and int(by_hash, 16) >= 0
    assert sandbox.get("requests")["clientVersion"] == "8.0.1"


def test_the_api_key_is_required_and_bodies_are_validated(sandbox: Admin) -> None:
    assert _post(sandbox, "/v3/kms/pending/ETH", {"signatureIds": []}, key=None).status_code == 401
    assert _post(sandbox, "/v3/ethereum/broadcast", {"txData": "0x00"}, key=None).status_code == 401
    assert _post(sandbox, "/v3/kms/pending/ETH", {"signatureIds": "x"}).status_code == 400
    assert _post(sandbox, "/v3/tatum/kms/batch", {"errors": "x"}).status_code == 400
    assert _post(sandbox, "/sandbox/pending", {"chain": "ETH"}).status_code == 400
    assert _post(sandbox, "/sandbox/pending", {"chain": "BTC", "hashes": [], "serializedTransaction": "{}"}
                 ).status_code == 400  # a BTC tx must say what it spends


def test_error_reports_are_recorded(sandbox: Admin, client: TatumClient) -> None:
    errors = [{"signatureId": "5e6645712b55823de7ea82f1", "error": "{\n  \"message\": \"nope\"\n}"}]
    client.report_errors(errors)
    assert sandbox.get("errors") == errors


# -- ETH -----------------------------------------------------------------------------------------


def _eth_transfer(client: TatumClient, sender: object, to: str, value: int, nonce: int | None = None,
                  chain_id: int | None = None) -> bytes:
    """A legacy EIP-155 transfer signed with eth-account, priced and numbered by the sandbox's own endpoints."""
    node = chain_node(client, "ETH")
    signed = Account.sign_transaction({
        "to": to, "value": value, "gas": 21000, "data": b"",
        "gasPrice": int(node.get("/v3/blockchain/fee/ETH")["medium"]),
        "nonce": nonce if nonce is not None else node.get(f"/v3/ethereum/transaction/count/{sender.address}"),
        "chainId": chain_id if chain_id is not None else int(node.rpc("eth_chainId", []), 16),
    }, sender.key)
    return bytes(signed.raw_transaction)


def test_a_signed_eth_transfer_executes_moves_balances_and_completes_the_pending_tx(
        sandbox: Admin, client: TatumClient) -> None:
    sender, recipient = Account.create(), Account.create()
    sandbox.fund(sender.address, 10**18)
    pending_id = sandbox.enqueue({"chain": "ETH", "hashes": [WALLET], "serializedTransaction": "{}"})
    raw = _eth_transfer(client, sender, recipient.address, 25 * 10**16)
    gas_price = rlp.decode(raw)[1]

    reply = client.broadcast("/v3/ethereum/broadcast", {"txData": "0x" + raw.hex(), "signatureId": pending_id})

    assert reply == {"txId": "0x" + keccak(raw).hex(), "completed": True}
    assert sandbox.balance(recipient.address) == 25 * 10**16
    assert sandbox.balance(sender.address) == 10**18 - 25 * 10**16 - 21000 * int.from_bytes(gas_price, "big")
    assert chain_node(client, "ETH").rpc("eth_getTransactionCount", [sender.address, "latest"]) == "0x1"
    assert client.pending("ETH", [WALLET]) == []
    assert [(b["signatureId"], b["chain"]) for b in sandbox.get("broadcasts")] == [(pending_id, "ETH")]


def _flip_s(raw: bytes) -> bytes:
    fields = rlp.decode(raw)
    fields[8] = bytes([fields[8][0] ^ 0x01]) + fields[8][1:]
    return rlp.encode(fields)


def _raise_value(raw: bytes) -> bytes:
    fields = rlp.decode(raw)
    fields[4] = (int.from_bytes(fields[4], "big") * 2).to_bytes(32, "big").lstrip(b"\0")
    return rlp.encode(fields)


@pytest.mark.parametrize("tamper", ["flip-s", "raise-value", "wrong-chain", "garbage"])
def test_a_tampered_eth_transaction_is_rejected_and_nothing_moves(
        sandbox: Admin, client: TatumClient, tamper: str) -> None:
    sender, recipient = Account.create(), Account.create()
    sandbox.fund(sender.address, 10**18)
    pending_id = sandbox.enqueue({"chain": "ETH", "hashes": [WALLET], "serializedTransaction": "{}"})
    if tamper == "wrong-chain":
        raw = _eth_transfer(client, sender, recipient.address, 10**17, chain_id=1)
    else:
        raw = _eth_transfer(client, sender, recipient.address, 10**17)
        raw = {"flip-s": _flip_s, "raise-value": _raise_value, "garbage": lambda r: r[:-7]}.get(tamper)(raw)

    with pytest.raises(TatumError) as caught:
        client.broadcast("/v3/ethereum/broadcast", {"txData": "0x" + raw.hex(), "signatureId": pending_id})

    assert caught.value.status == 400
    body = json.loads(caught.value.report)
    assert body["errorCode"] == "eth.broadcast.failed" and body["message"]
    assert sandbox.balance(recipient.address) == 0
    assert sandbox.balance(sender.address) == 10**18
    assert [tx["id"] for tx in client.pending("ETH", [WALLET])] == [pending_id]  # still pending
    assert sandbox.get("broadcasts") == []


def test_the_json_rpc_proxy_answers_what_signers_ask(sandbox: Admin, client: TatumClient) -> None:
    node = chain_node(client, "ETH")
    account = Account.create()
    sandbox.fund(account.address, 5 * 10**17)
    assert int(node.rpc("eth_getBalance", [account.address, "latest"]), 16) == 5 * 10**17
    assert node.rpc("eth_getTransactionCount", [account.address, "latest"]) == "0x0"
    assert int(node.rpc("eth_estimateGas", [{"from": account.address, "to": Account.create().address,
                                             "value": hex(10**17)}]), 16) == 21000
    assert int(node.rpc("eth_gasPrice", []), 16) == int(node.get("/v3/blockchain/fee/ETH")["medium"])
    assert node.rpc("net_version", []) == str(int(node.rpc("eth_chainId", []), 16))
    with pytest.raises(TatumError, match="does not exist"):
        node.rpc("eth_mine", [])
    with pytest.raises(TatumError, match="Returned error"):
        node.rpc("eth_estimateGas", [{"from": Account.create().address, "to": account.address,
                                      "value": hex(10**18)}])  # more than the sender has


def test_without_execute_an_eth_broadcast_is_only_decoded_and_recovered() -> None:
    with running_sandbox(execute=False) as sandbox:
        client = TatumClient(API_KEY, sandbox.url)
        sender, recipient = Account.create(), Account.create()  # unfunded: would fail if executed
        raw = _eth_transfer(client, sender, recipient.address, 10**17, nonce=0)
        reply = client.broadcast("/v3/ethereum/broadcast", {"txData": "0x" + raw.hex()})
        assert reply["txId"] == "0x" + keccak(raw).hex()
        assert sandbox.balance(recipient.address) == 0
        for bad in (_eth_transfer(client, sender, recipient.address, 1, nonce=0, chain_id=1), raw[:-7]):
            with pytest.raises(TatumError) as caught:
                client.broadcast("/v3/ethereum/broadcast", {"txData": "0x" + bad.hex()})
            assert caught.value.status == 400
        client.close()


# -- BTC -----------------------------------------------------------------------------------------


def _btc_spend(kind: str, *, amount: int = 50_000, pay: int = 40_000) -> tuple[dict, str]:
    """A pending BTC tx (bitcore-shaped inputs) and its spend signed with python-bitcoinlib."""
    from bitcoin.core import (
        COutPoint,
        CScriptWitness,
        CTransaction,
        CTxIn,
        CTxInWitness,
        CTxOut,
        CTxWitness,
        Hash160,
        b2lx,
    )
    from bitcoin.core.script import (
        OP_0,
        OP_CHECKSIG,
        OP_DUP,
        OP_EQUALVERIFY,
        OP_HASH160,
        SIGHASH_ALL,
        SIGVERSION_WITNESS_V0,
        CScript,
        SignatureHash,
    )
    from bitcoin.wallet import CBitcoinSecret

    key = CBitcoinSecret.from_secret_bytes(os.urandom(32))
    keyhash = Hash160(key.pub)
    p2pkh = CScript([OP_DUP, OP_HASH160, keyhash, OP_EQUALVERIFY, OP_CHECKSIG])
    redeem = CScript([OP_0, keyhash])
    script_pubkey = {"p2pkh": p2pkh, "p2wpkh": redeem, "p2sh-p2wpkh": redeem.to_p2sh_scriptPubKey()}[kind]
    prev_txid = os.urandom(32)
    pending = {"chain": "BTC", "hashes": [WALLET], "serializedTransaction": json.dumps({
        "inputs": [{"prevTxId": b2lx(prev_txid), "outputIndex": 1, "sequenceNumber": 4294967295, "script": "",
                    "output": {"satoshis": amount, "script": bytes(script_pubkey).hex()}}],
        "outputs": [{"satoshis": pay, "script": bytes(p2pkh).hex()}], "nLockTime": 0, "version": 2})}

    txin = CTxIn(COutPoint(prev_txid, 1))
    tx = CTransaction([txin], [CTxOut(pay, p2pkh)], nVersion=2)
    if kind == "p2pkh":
        sig = key.sign(SignatureHash(p2pkh, tx, 0, SIGHASH_ALL)) + bytes([SIGHASH_ALL])
        signed = CTransaction([CTxIn(txin.prevout, CScript([sig, key.pub]))], tx.vout, nVersion=2)
    else:
        digest = SignatureHash(p2pkh, tx, 0, SIGHASH_ALL, amount=amount, sigversion=SIGVERSION_WITNESS_V0)
        sig = key.sign(digest) + bytes([SIGHASH_ALL])
        script_sig = CScript([redeem]) if kind == "p2sh-p2wpkh" else CScript()
        witness = CTxWitness([CTxInWitness(CScriptWitness([sig, key.pub]))])
        signed = CTransaction([CTxIn(txin.prevout, script_sig)], tx.vout, nVersion=2, witness=witness)
    return pending, signed.serialize().hex()


def _pay_more(tx_hex: str, extra: int) -> str:
    """The same transaction with its first output raised after signing."""
    from bitcoin.core import CMutableTransaction, CTransaction

    tx = CMutableTransaction.from_tx(CTransaction.deserialize(bytes.fromhex(tx_hex)))
    tx.vout[0].nValue += extra
    return tx.serialize().hex()


@pytest.mark.parametrize("kind", ["p2pkh", "p2wpkh", "p2sh-p2wpkh"])
def test_a_signed_btc_transaction_is_accepted_once(sandbox: Admin, client: TatumClient, kind: str) -> None:
    pending, tx_hex = _btc_spend(kind)
    pending_id = sandbox.enqueue(pending)

    reply = client.broadcast("/v3/bitcoin/broadcast", {"txData": tx_hex, "signatureId": pending_id})

    from bitcoin.core import CTransaction, b2lx
    assert reply == {"txId": b2lx(CTransaction.deserialize(bytes.fromhex(tx_hex)).GetTxid()), "completed": True}
    assert client.pending("BTC", [WALLET]) == []
    with pytest.raises(TatumError) as caught:  # the same outputs cannot be spent twice
        client.broadcast("/v3/bitcoin/broadcast", {"txData": tx_hex})
    assert "missingorspent" in json.loads(caught.value.report)["message"]


@pytest.mark.parametrize("kind", ["p2pkh", "p2wpkh", "p2sh-p2wpkh"])
def test_a_tampered_btc_transaction_is_rejected(sandbox: Admin, client: TatumClient, kind: str) -> None:
    pending, tx_hex = _btc_spend(kind)
    pending_id = sandbox.enqueue(pending)
    with pytest.raises(TatumError) as caught:
        client.broadcast("/v3/bitcoin/broadcast", {"txData": _pay_more(tx_hex, 1), "signatureId": pending_id})
    assert caught.value.status == 400
    assert "script-verify" in json.loads(caught.value.report)["message"]
    assert [tx["id"] for tx in client.pending("BTC", [WALLET])] == [pending_id]
    # The untampered transaction still goes through: the rejection spent nothing.
    client.broadcast("/v3/bitcoin/broadcast", {"txData": tx_hex, "signatureId": pending_id})


def test_a_btc_transaction_spending_unknown_or_more_than_its_inputs_is_rejected(
        sandbox: Admin, client: TatumClient) -> None:
    _, unknown = _btc_spend("p2wpkh")  # its prevout was never enqueued
    with pytest.raises(TatumError, match="missingorspent"):
        client.broadcast("/v3/bitcoin/broadcast", {"txData": unknown})
    pending, overspend = _btc_spend("p2pkh", amount=1_000, pay=2_000)
    sandbox.enqueue(pending)
    with pytest.raises(TatumError, match="in-belowout"):
        client.broadcast("/v3/bitcoin/broadcast", {"txData": overspend})


# -- XLM -----------------------------------------------------------------------------------------


def _xlm_envelope(signer: object | None, passphrase: str | None = None) -> tuple[object, str]:
    from stellar_sdk import Account as StellarAccount
    from stellar_sdk import Asset, Keypair, Network, TransactionBuilder

    source = Keypair.random()
    tx = (TransactionBuilder(StellarAccount(source.public_key, 7), passphrase or Network.TESTNET_NETWORK_PASSPHRASE,
                             base_fee=100)
          .append_payment_op(Keypair.random().public_key, Asset.native(), "12.5").set_timeout(300).build())
    if signer == "source":
        tx.sign(source)
    elif signer is not None:
        tx.sign(signer)
    return tx, tx.to_xdr()


def test_a_signed_xlm_envelope_is_accepted(sandbox: Admin, client: TatumClient) -> None:
    pending_id = sandbox.enqueue({"chain": "XLM", "hashes": [WALLET], "serializedTransaction": "AAAA"})
    tx, envelope = _xlm_envelope("source")
    reply = client.broadcast("/v3/xlm/broadcast", {"txData": envelope, "signatureId": pending_id})
    assert reply == {"txId": tx.hash_hex(), "completed": True}
    assert client.pending("XLM", [WALLET]) == []


@pytest.mark.parametrize("case", ["unsigned", "wrong-key", "mainnet-passphrase", "not-xdr"])
def test_a_bad_xlm_envelope_is_rejected(sandbox: Admin, client: TatumClient, case: str) -> None:
    from stellar_sdk import Keypair, Network

    if case == "unsigned":
        _, envelope = _xlm_envelope(None)
    elif case == "wrong-key":
        _, envelope = _xlm_envelope(Keypair.random())
    elif case == "mainnet-passphrase":
        _, envelope = _xlm_envelope("source", Network.PUBLIC_NETWORK_PASSPHRASE)
    else:
        envelope = "bm90IHhkcg=="
    with pytest.raises(TatumError) as caught:
        client.broadcast("/v3/xlm/broadcast", {"txData": envelope})
    assert caught.value.status == 400
    assert json.loads(caught.value.report)["message"].startswith("tx_")
    assert sandbox.get("broadcasts") == []


def test_an_offchain_withdrawal_broadcast_is_verified_for_its_currency(sandbox: Admin, client: TatumClient) -> None:
    sender, recipient = Account.create(), Account.create()
    sandbox.fund(sender.address, 10**18)
    pending_id = sandbox.enqueue({"chain": "ETH", "hashes": [WALLET], "serializedTransaction": "{}",
                                  "withdrawalId": "w-1"})
    good = _eth_transfer(client, sender, recipient.address, 10**15)
    body = {"currency": "ETH", "withdrawalId": "w-1", "signatureId": pending_id}
    with pytest.raises(TatumError, match="eth.broadcast.failed"):  # s altered: another (unfunded) sender
        client.broadcast("/v3/offchain/withdrawal/broadcast", {**body, "txData": "0x" + _flip_s(good).hex()})
    assert client.broadcast("/v3/offchain/withdrawal/broadcast", {**body, "txData": "0x" + good.hex()})["completed"]
    [record] = sandbox.get("broadcasts")
    assert record["path"] == "/v3/offchain/withdrawal/broadcast" and record["withdrawalId"] == "w-1"
    assert client.pending("ETH", [WALLET]) == []
    assert sandbox.balance(recipient.address) == 10**15


def test_an_offchain_withdrawal_of_a_chain_the_original_broadcasts_on_chain_is_refused(client: TatumClient) -> None:
    _, good = _xlm_envelope("source")
    with pytest.raises(TatumError, match="not 'XLM'"):  # spec §1.6: XLM withdrawals go to /v3/xlm/broadcast
        client.broadcast("/v3/offchain/withdrawal/broadcast", {"currency": "XLM", "txData": good})


# -- the command ---------------------------------------------------------------------------------


def test_the_sandbox_command_prints_its_url_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-m", "kms.sandbox", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        admin = Admin(url)
        assert "chainId" in admin.get("")
        client = TatumClient(API_KEY, url)
        assert chain_node(client, "ETH").rpc("eth_chainId", []).startswith("0x")
        admin.enqueue({"chain": "ETH", "hashes": [WALLET], "serializedTransaction": "{}"})
        assert len(client.pending("ETH", [WALLET])) == 1
        client.close()
        admin.http.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "/v3/ethereum/web3/***" in stderr  # requests are logged ...
    assert API_KEY not in stderr  # ... without the key that is part of the node URL


def test_the_demo_approval_server_answers_403_until_an_id_is_approved(sandbox: Admin) -> None:
    from kms.approval import check

    url = f"{sandbox.url}/sandbox/approve"
    pending = {"id": "5e6645712b55823de7ea82f1", "chain": "ETH"}
    for method in ("GET", "POST"):
        assert not check(pending, url, method).approved
    assert requests.post(f"{sandbox.url}/sandbox/approvals", json={"id": pending["id"]}, timeout=10).ok
    for method in ("GET", "POST"):
        assert check(pending, url, method).approved
    assert not check({**pending, "id": "another"}, url).approved
