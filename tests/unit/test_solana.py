"""SOL wallets, signing and submission: keys checked against bip-utils, SLIP-0010's vectors and solders; signed
transactions checked by solders and executed by LiteSVM behind the sandbox's Solana node."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bip_utils import Bip32Slip10Ed25519, Bip39SeedGenerator
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from chains.base import ChainError, PendingTransaction
from chains.primitives import slip10
from chains.primitives.b58 import b58decode, b58encode
from chains.solana import SOL, SolanaChain
from kms.errors import TatumError
from kms.sandbox import ledgers
from kms.sandbox.api import Sandbox
from tests import solana_payloads as spl
from tests.inprocess import API_KEY, in_process_node
from tests.kms_process import MQ
from tests.recording_node import RecordingNode

FRESH = Hash.new_unique()
QUICK = dataclasses.replace(SOL, confirm_timeout=0.3, poll_interval=0.01, max_poll_interval=0.05)


def pending(payload: str, tx_id: str = "5e6645712b55823de7ea82f1") -> PendingTransaction:
    return PendingTransaction.from_json({"id": tx_id, "chain": "SOL", "hashes": ["w"],
                                         "serializedTransaction": payload})


def blockhash_node(blockhash: Hash = FRESH, **answers: Any) -> RecordingNode:
    return RecordingNode({"getLatestBlockhash": {"context": {"slot": 9}, "value": {
        "blockhash": str(blockhash), "lastValidBlockHeight": 200}}, **answers})


def decoded(signed_base64: str) -> Transaction:
    return Transaction.from_bytes(base64.b64decode(signed_base64))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """A sandbox serving only its Solana ledger (the others' engines take seconds to load)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledgers, "LEDGERS", ("kms.sandbox.ledgers.solana:SolanaLedger",))
        yield Sandbox(execute=True, testnet=True)


# -- SLIP-10 and wallets -----------------------------------------------------------------------------


def test_slip10_matches_the_published_ed25519_vector_1() -> None:
    # SLIP-0010, "Test vector 1 for ed25519", seed 000102030405060708090a0b0c0d0e0f
    seed = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    assert slip10.master(seed) == (bytes.fromhex("2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"),
                                   bytes.fromhex("90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb"))
    expected = {(0,): "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
                (0, 1, 2): "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
                (0, 1, 2, 2, 1000000000): "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793"}
    for path, key in expected.items():
        assert slip10.derive(seed, path).hex() == key


@settings(max_examples=20, deadline=None)
@given(seed=st.binary(min_size=16, max_size=64), index=st.integers(min_value=0, max_value=2**31 - 1))
def test_slip10_agrees_with_bip_utils(seed: bytes, index: int) -> None:
    ours = slip10.derive(seed, (44, 501, 0, 0, index))
    theirs = Bip32Slip10Ed25519.FromSeed(seed).DerivePath(f"m/44'/501'/0'/0'/{index}'").PrivateKey().Raw().ToBytes()
    assert ours == theirs


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=80), zeros=st.integers(min_value=0, max_value=3))
def test_base58_agrees_with_the_base58_package(data: bytes, zeros: int) -> None:
    import base58

    data = b"\0" * zeros + data
    assert b58encode(data) == base58.b58encode(data).decode()
    assert b58decode(base58.b58encode(data).decode()) == data


def test_a_mnemonic_wallet_holds_its_index_0_address_and_key() -> None:
    wallet = SOL.wallet_from_mnemonic(MQ, testnet=True)
    assert set(wallet) == {"mnemonic", "address", "privateKey"} and wallet["mnemonic"] == MQ
    seed = Bip39SeedGenerator(MQ).Generate()
    node = Bip32Slip10Ed25519.FromSeed(seed).DerivePath("m/44'/501'/0'/0'/0'")
    assert wallet["address"] == str(Keypair.from_seed(node.PrivateKey().Raw().ToBytes()).pubkey())
    keypair = Keypair.from_base58_string(wallet["privateKey"])  # base58 of the 64-byte secret key, as web3.js
    assert str(keypair.pubkey()) == wallet["address"]
    assert SOL.wallet_from_mnemonic(MQ, testnet=False) == wallet  # no testnet path


def test_keys_at_an_index_are_the_slip10_children_and_the_stored_address_stays() -> None:
    wallet = SOL.wallet_from_mnemonic(MQ, testnet=True)
    seed = Bip39SeedGenerator(MQ).Generate()
    for index in (1, 7):
        node = Bip32Slip10Ed25519.FromSeed(seed).DerivePath(f"m/44'/501'/0'/0'/{index}'")
        expected = Keypair.from_seed(node.PrivateKey().Raw().ToBytes())
        assert SOL.private_key(wallet, index, True) == str(expected)
        assert SOL.address(wallet, index, True) == wallet["address"]  # the original prints the stored one


def test_generated_wallets_are_fresh_mnemonics_for_both_commands() -> None:
    made = SOL.generate_wallet(True, managed=False)
    assert len(made["mnemonic"].split()) == 24
    assert SOL.wallet_from_mnemonic(made["mnemonic"], True) == made
    assert SOL.generate_wallet(True, managed=True)["mnemonic"] != made["mnemonic"]


def test_a_bad_mnemonic_is_refused() -> None:
    with pytest.raises(ChainError, match="BIP39"):
        SOL.wallet_from_mnemonic(" ".join(MQ.split()[:-1] + ["zoo"]), True)


def test_both_key_encodings_give_the_same_address() -> None:
    keypair = Keypair()
    as_hex = bytes(keypair).hex()
    assert SOL.address_from_private_key(str(keypair), False) == str(keypair.pubkey())
    assert SOL.address_from_private_key(as_hex, False) == str(keypair.pubkey())
    assert SOL.address_from_private_key(as_hex.upper(), False) == str(keypair.pubkey())


def test_a_key_whose_public_half_is_not_its_seeds_is_refused_without_echo() -> None:
    forged = bytes(Keypair())[:32] + bytes(Keypair().pubkey())
    with pytest.raises(ChainError, match="public half") as caught:
        SOL.address_from_private_key(forged.hex(), False)
    assert forged.hex() not in str(caught.value)


# -- signing ------------------------------------------------------------------------------------------


def test_the_message_is_signed_with_a_fresh_blockhash_and_nothing_else_changes() -> None:
    sender, recipient = Keypair(), Keypair().pubkey()
    node = blockhash_node()
    signed = SOL.sign(pending(spl.payload([spl.sol_transfer(sender.pubkey(), recipient, 5000)], sender.pubkey())),
                      [str(sender)], True, node)
    assert signed.submit_first and signed.path == "/v3/solana/broadcast"
    assert node.calls == [("getLatestBlockhash", [{"commitment": "finalized"}])]
    tx = decoded(signed.tx_data)
    tx.verify()  # solders (ed25519-dalek) checks every signature
    assert tx.message.recent_blockhash == FRESH
    original = Message.from_bytes(bytes.fromhex(json.loads(
        spl.payload([spl.sol_transfer(sender.pubkey(), recipient, 5000)], sender.pubkey()))["txData"]))
    assert tx.message.account_keys == original.account_keys and tx.message.instructions == original.instructions


def test_every_signer_the_message_names_signs_in_its_order() -> None:
    payer, cosigner, recipient = Keypair(), Keypair(), Keypair().pubkey()
    instructions = [spl.sol_transfer(payer.pubkey(), recipient, 1), spl.sol_transfer(cosigner.pubkey(), recipient, 2)]
    signed = SOL.sign(pending(spl.payload(instructions, payer.pubkey())), [str(cosigner), bytes(payer).hex()], True,
                      blockhash_node())
    tx = decoded(signed.tx_data)
    tx.verify()
    assert tx.message.account_keys[:2] == [payer.pubkey(), cosigner.pubkey()]
    assert len(tx.signatures) == 2


def test_mint_pk_signs_too() -> None:
    owner = Keypair()
    payload, mint = spl.deploy_spl(owner.pubkey(), 10**9, rent=1_461_600)
    tx = decoded(SOL.sign(pending(payload), [str(owner)], True, blockhash_node()).tx_data)
    tx.verify()
    assert set(tx.message.account_keys[:2]) == {owner.pubkey(), mint.pubkey()}


def test_a_key_the_message_does_not_name_is_an_unknown_signer() -> None:
    sender, stranger = Keypair(), Keypair()
    payload = spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 1)], sender.pubkey())
    node = blockhash_node()
    with pytest.raises(ChainError, match=f"unknown signer: {stranger.pubkey()}"):
        SOL.sign(pending(payload), [str(sender), str(stranger)], True, node)
    assert node.calls == []  # refused before asking the node


def test_a_signer_without_a_key_fails_verification() -> None:
    payer, cosigner = Keypair(), Keypair()
    instructions = [spl.sol_transfer(payer.pubkey(), cosigner.pubkey(), 1),
                    spl.sol_transfer(cosigner.pubkey(), payer.pubkey(), 1)]
    with pytest.raises(ChainError, match=f"Signature verification failed.*{cosigner.pubkey()}"):
        SOL.sign(pending(spl.payload(instructions, payer.pubkey())), [str(payer)], True, blockhash_node())


@pytest.mark.parametrize(("payload", "reason"), [
    ('{"txData": "zz"}', "not hex"),
    ('{"txData": "010001"}', "too short"),
    ('{"txData": "01000103"}', "not a serialized Solana message"),
    ('{}', "no hex 'txData'"),
    ('{"txData": 5}', "no hex 'txData'"),
])
def test_malformed_payloads_are_refused_before_any_node_call(payload: str, reason: str) -> None:
    node = blockhash_node()
    with pytest.raises(ChainError, match=reason):
        SOL.sign(pending(payload), [str(Keypair())], True, node)
    assert node.calls == []


def test_trailing_bytes_and_versioned_messages_are_refused() -> None:
    sender = Keypair()
    good = json.loads(spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 1)], sender.pubkey()))
    with pytest.raises(ChainError, match="beyond"):
        SOL.sign(pending(json.dumps({"txData": good["txData"] + "00"})), [str(sender)], True, blockhash_node())
    with pytest.raises(ChainError, match="versioned"):
        SOL.sign(pending(json.dumps({"txData": "80" + good["txData"]})), [str(sender)], True, blockhash_node())


def test_a_node_without_a_blockhash_is_an_error() -> None:
    sender = Keypair()
    payload = spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 1)], sender.pubkey())
    with pytest.raises(ChainError, match="no blockhash"):
        SOL.sign(pending(payload), [str(sender)], True, RecordingNode({"getLatestBlockhash": {"value": {}}}))


# -- submission, with a recording node ------------------------------------------------------------------


class WriteRecordingNode(RecordingNode):
    """Also records which calls were writes."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__(answers)
        self.writes: list[str] = []

    def rpc(self, method: str, params: Any = (), *, endpoint: str = "rpc", write: bool = False,
            constant: bool = False) -> Any:
        if write:
            self.writes.append(method)
        return super().rpc(method, params, endpoint=endpoint, write=write, constant=constant)


def signed_transfer() -> tuple[Any, str]:
    sender = Keypair()
    payload = spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 1)], sender.pubkey())
    signed = SOL.sign(pending(payload), [str(sender)], True, blockhash_node())
    return signed, str(decoded(signed.tx_data).signatures[0])


def statuses(*answers: Any) -> Any:
    replies = iter(answers)
    return lambda params: {"context": {"slot": 1}, "value": [next(replies)]}


def test_submit_sends_the_wire_transaction_then_tells_tatum_its_signature() -> None:
    signed, signature = signed_transfer()
    node = WriteRecordingNode({"sendTransaction": signature, "getSignatureStatuses": statuses(
        None, {"confirmationStatus": "processed", "err": None}, {"confirmationStatus": "confirmed", "err": None})})
    told = QUICK.submit(signed, node)
    assert told.tx_data == signature and told.path == "/v3/solana/broadcast" and not told.submit_first
    assert node.methods() == ["sendTransaction", "getSignatureStatuses", "getSignatureStatuses", "getSignatureStatuses"]
    assert node.calls[0][1] == [signed.tx_data, {"encoding": "base64", "preflightCommitment": "confirmed"}]
    assert node.writes == ["sendTransaction"]  # never retried once sent


def test_a_transaction_that_failed_on_chain_raises_with_the_chains_error() -> None:
    signed, signature = signed_transfer()
    err = {"InstructionError": [0, {"Custom": 1}]}
    node = RecordingNode({"sendTransaction": signature,
                          "getSignatureStatuses": statuses({"confirmationStatus": "confirmed", "err": err})})
    with pytest.raises(ChainError, match=rf'Transaction {signature} failed with error: {{"InstructionError":\[0,'):
        QUICK.submit(signed, node)


def test_the_wait_for_confirmation_is_bounded() -> None:
    signed, signature = signed_transfer()
    node = RecordingNode({"sendTransaction": signature,
                          "getSignatureStatuses": lambda params: {"context": {"slot": 1}, "value": [None]}})
    started = time.monotonic()
    with pytest.raises(ChainError, match="has not been confirmed yet"):
        QUICK.submit(signed, node)
    assert time.monotonic() - started < 1.0
    assert 3 <= node.methods().count("getSignatureStatuses") <= 40
    assert SOL.confirm_timeout == 45.0  # the original's nine polls, 1 + 2 + ... + 9 seconds


def test_a_node_that_answers_another_signature_is_an_error() -> None:
    signed, _ = signed_transfer()
    with pytest.raises(ChainError, match="not the transaction's signature"):
        QUICK.submit(signed, RecordingNode({"sendTransaction": "1" * 64}))


# -- executed on LiteSVM -----------------------------------------------------------------------------------


def rpc(sandbox: Sandbox, method: str, *params: Any) -> Any:
    return in_process_node(sandbox, "SOL", True).rpc(method, list(params))


def broadcast(sandbox: Sandbox, signed: Any) -> Any:
    body = json.dumps({"txData": signed.tx_data, "signatureId": "5e6645712b55823de7ea82f1"}).encode()
    return sandbox.handle("POST", signed.path, {"x-api-key": API_KEY}, body)


def sign_and_submit(sandbox: Sandbox, payload: str, keys: list[str]) -> Any:
    node = in_process_node(sandbox, "SOL", True)
    return SOL.submit(SOL.sign(pending(payload), keys, True, node), node)


def test_a_sol_transfer_moves_lamports_on_litesvm(sandbox: Sandbox) -> None:
    sender, recipient = Keypair(), Keypair().pubkey()
    rpc(sandbox, "requestAirdrop", str(sender.pubkey()), 2_000_000_000)
    told = sign_and_submit(sandbox, spl.payload([spl.sol_transfer(sender.pubkey(), recipient, 1_500_000_000)],
                                                sender.pubkey()), [str(sender)])
    assert rpc(sandbox, "getBalance", str(recipient))["value"] == 1_500_000_000
    assert rpc(sandbox, "getBalance", str(sender.pubkey()))["value"] == 2_000_000_000 - 1_500_000_000 - 5000
    transaction = rpc(sandbox, "getTransaction", told.tx_data, {"commitment": "confirmed"})
    assert transaction["meta"]["err"] is None and transaction["meta"]["fee"] == 5000
    assert broadcast(sandbox, told).status == 200


def test_an_spl_token_is_created_with_mint_pk_then_transferred(sandbox: Sandbox) -> None:
    owner, recipient = Keypair(), Keypair().pubkey()
    rpc(sandbox, "requestAirdrop", str(owner.pubkey()), 1_000_000_000)
    rent = rpc(sandbox, "getMinimumBalanceForRentExemption", spl.MINT_SIZE)
    deploy, mint = spl.deploy_spl(owner.pubkey(), 1_000_000, rent)
    sign_and_submit(sandbox, deploy, [bytes(owner).hex()])  # the 128-hex key encoding
    owner_account = spl.associated_token_address(owner.pubkey(), mint.pubkey())
    assert rpc(sandbox, "getTokenAccountBalance", str(owner_account))["value"]["amount"] == "1000000"

    told = sign_and_submit(sandbox, spl.transfer_spl(owner.pubkey(), recipient, mint.pubkey(), 250_000), [str(owner)])
    recipient_account = spl.associated_token_address(recipient, mint.pubkey())
    assert rpc(sandbox, "getTokenAccountBalance", str(recipient_account))["value"]["amount"] == "250000"
    assert rpc(sandbox, "getTokenAccountBalance", str(owner_account))["value"]["amount"] == "750000"
    assert broadcast(sandbox, told).status == 200


def test_a_transfer_beyond_the_balance_fails_on_the_node_with_its_reason(sandbox: Sandbox) -> None:
    sender = Keypair()
    rpc(sandbox, "requestAirdrop", str(sender.pubkey()), 1_000_000)
    payload = spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 10**12)], sender.pubkey())
    with pytest.raises(TatumError, match="Transaction simulation failed: Error processing Instruction 0: "
                                         "custom program error: 0x1"):
        sign_and_submit(sandbox, payload, [str(sender)])
    assert rpc(sandbox, "getBalance", str(sender.pubkey()))["value"] == 1_000_000  # nothing landed


def test_a_transaction_that_lands_and_fails_is_reported_and_refused_at_broadcast(sandbox: Sandbox) -> None:
    sender = Keypair()
    rpc(sandbox, "requestAirdrop", str(sender.pubkey()), 1_000_000)
    payload = spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 10**12)], sender.pubkey())
    node = in_process_node(sandbox, "SOL", True)
    signed = SOL.sign(pending(payload), [str(sender)], True, node)
    signature = node.rpc("sendTransaction", [signed.tx_data, {"encoding": "base64", "skipPreflight": True}],
                         write=True)
    with pytest.raises(ChainError, match=f"Transaction {signature} failed with error"):
        QUICK.wait_for_confirmation(signature, node)
    assert rpc(sandbox, "getBalance", str(sender.pubkey()))["value"] == 1_000_000 - 5000  # the fee was charged
    refused = broadcast(sandbox, dataclasses.replace(signed, tx_data=signature))
    assert refused.status == 400 and "failed on chain" in refused.body["message"]


def test_the_node_refuses_stale_blockhashes_bad_signatures_and_unsent_signatures(sandbox: Sandbox) -> None:
    sender = Keypair()
    rpc(sandbox, "requestAirdrop", str(sender.pubkey()), 10**9)
    message = Message.new_with_blockhash([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 1)], sender.pubkey(),
                                         spl.DUMMY_BLOCKHASH)
    stale = base64.b64encode(bytes(Transaction([sender], message, spl.DUMMY_BLOCKHASH))).decode()
    with pytest.raises(TatumError, match="Blockhash not found"):
        rpc(sandbox, "sendTransaction", stale, {"encoding": "base64"})
    signed = SOL.sign(pending(json.dumps({"txData": bytes(message).hex()})), [str(sender)], True,
                      in_process_node(sandbox, "SOL", True))
    wire = bytearray(base64.b64decode(signed.tx_data))
    wire[5] ^= 1
    with pytest.raises(TatumError, match="signature verification failure"):
        rpc(sandbox, "sendTransaction", base64.b64encode(bytes(wire)).decode(), {"encoding": "base64"})
    never_sent = dataclasses.replace(signed, tx_data=str(decoded(signed.tx_data).signatures[0]))
    assert broadcast(sandbox, never_sent).status == 400


def test_the_same_transfer_twice_is_two_transactions(sandbox: Sandbox) -> None:
    sender, recipient = Keypair(), Keypair().pubkey()
    rpc(sandbox, "requestAirdrop", str(sender.pubkey()), 10**9)
    rpc(sandbox, "requestAirdrop", str(recipient), 10**9)
    payload = spl.payload([spl.sol_transfer(sender.pubkey(), recipient, 7)], sender.pubkey())
    first = sign_and_submit(sandbox, payload, [str(sender)])
    second = sign_and_submit(sandbox, payload, [str(sender)])
    assert first.tx_data != second.tx_data
    assert rpc(sandbox, "getBalance", str(recipient))["value"] == 10**9 + 14


def test_the_chain_module_is_pure_and_lazy() -> None:
    import subprocess
    import sys

    code = "import sys, chains.solana; print('solders' in sys.modules, 'bip_utils' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    assert isinstance(Pubkey.from_string(SOL.generate_private_key(True)[1]), Pubkey)
    assert isinstance(SOL, SolanaChain)


def test_without_execution_the_node_checks_signatures_only() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledgers, "LEDGERS", ("kms.sandbox.ledgers.solana:SolanaLedger",))
        quiet = Sandbox(execute=False, testnet=True)
    sender = Keypair()  # never funded: nothing runs
    told = sign_and_submit(quiet, spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 10**15)],
                                              sender.pubkey()), [str(sender)])
    assert broadcast(quiet, told).status == 200
    signed = SOL.sign(pending(spl.payload([spl.sol_transfer(sender.pubkey(), Keypair().pubkey(), 1)],
                                          sender.pubkey())), [str(sender)], True, in_process_node(quiet, "SOL", True))
    wire = bytearray(base64.b64decode(signed.tx_data))
    wire[-1] ^= 1  # the message changes under its signature
    with pytest.raises(TatumError, match="signature verification failure"):
        rpc(quiet, "sendTransaction", base64.b64encode(bytes(wire)).decode(), {"encoding": "base64"})
