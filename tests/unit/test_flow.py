"""FLOW: FCL's domain-tagged payload and envelope encoding against its public vectors, tatum-js's scripts and
arguments, the user's signature as elliptic makes it, the calls to Tatum and the access node, and the sandbox's
independent verification (a wrong authorizer key is refused).

Public vectors: onflow/fcl-js `packages/sdk/src/encode/encode.test.ts` (payload and envelope hex of "complete tx",
"empty cadence", "multiple authorizers"; transaction ids of vouchers, "calculated using Flow Go SDK test code"),
and MartinKolarik/dedent-js `test/tests.es6` for the template literal dedent tatum-js applies to its scripts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from ecdsa import SECP256k1
from ecdsa import SigningKey as EcdsaKey
from ecdsa.util import sigencode_string

from chains.base import ChainError, PendingTransaction, TatumKmsError
from chains.flow import (
    FLOW,
    FlowChain,
    encode_arguments,
    encode_key,
    script_and_arguments,
    sign_message,
    signing_key,
)
from chains.flow.cadence import as_argument, dedent_js, encode_argument, parse_int, ufix64_amount
from chains.flow.transaction import FlowTransaction, ProposalKey, Signature
from kms.sandbox.api import Sandbox
from kms.sandbox.ledgers.flow import FlowLedger, SubmittedTx
from tests.inprocess import in_process_node
from tests.kms_process import MQ
from tests.recording_node import RecordingNode

UTIL_KEY = ("0bfcd8790c3ce88f3fac9d4bd23514f48bf0cdd1f6c3c8bdf87b11489b1bbeca1ef805ec2ee76451e9bdb265284f78feba"
            "eacbc8b0827e0a7baafee4e655d0b5")
HELLO = 'transaction { execute { log("Hello, World!") } }'
REF_BLOCK = "f0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b"
FCL_SIG = bytes.fromhex("f7225388c1d69d57e6251c9fda50cbbf9e05131e5adb81e5aa0422402f048162")
TAG = "464c4f572d56302e302d7472616e73616374696f6e0000000000000000000000"
HELLO_RLP = "b07472616e73616374696f6e207b2065786563757465207b206c6f67282248656c6c6f2c20576f726c64212229207d207d"
FCL_CASES = [  # (name, cadence, authorizers, payload hex, envelope hex)
    ("complete tx", HELLO, ("01",),
     f"{TAG}f872{HELLO_RLP}c0a0{REF_BLOCK}2a880000000000000001040a880000000000000001c9880000000000000001",
     f"{TAG}f899f872{HELLO_RLP}c0a0{REF_BLOCK}2a880000000000000001040a880000000000000001c9880000000000000001"
     "e4e38004a0f7225388c1d69d57e6251c9fda50cbbf9e05131e5adb81e5aa0422402f048162"),
    ("empty cadence", "", ("01",),
     f"{TAG}f84280c0a0{REF_BLOCK}2a880000000000000001040a880000000000000001c9880000000000000001",
     f"{TAG}f869f84280c0a0{REF_BLOCK}2a880000000000000001040a880000000000000001c9880000000000000001"
     "e4e38004a0f7225388c1d69d57e6251c9fda50cbbf9e05131e5adb81e5aa0422402f048162"),
    ("multiple authorizers", HELLO, ("01", "02"),
     f"{TAG}f87b{HELLO_RLP}c0a0{REF_BLOCK}2a880000000000000001040a880000000000000001d2880000000000000001"
     "880000000000000002",
     f"{TAG}f8a2f87b{HELLO_RLP}c0a0{REF_BLOCK}2a880000000000000001040a880000000000000001d2880000000000000001"
     "880000000000000002e4e38004a0f7225388c1d69d57e6251c9fda50cbbf9e05131e5adb81e5aa0422402f048162"),
]


@pytest.mark.parametrize(("name", "cadence", "authorizers", "payload", "envelope"), FCL_CASES)
def test_payload_and_envelope_encoding_equal_fcl_vectors(name: str, cadence: str, authorizers: tuple[str, ...],
                                                         payload: str, envelope: str) -> None:
    tx = FlowTransaction(cadence, (), REF_BLOCK, 42, ProposalKey("01", 4, 10), "01", authorizers)
    assert tx.payload_message().hex() == payload
    assert tx.envelope_message([Signature("01", 4, FCL_SIG)]).hex() == envelope


def rest_body(cadence: str = HELLO, envelope: list[dict[str, str]] | None = None, sequence: str = "10",
              key: str = "4", authorizers: tuple[str, ...] = ("01",)) -> dict[str, Any]:
    return {"script": base64.b64encode(cadence.encode()).decode(), "arguments": [], "reference_block_id": REF_BLOCK,
            "gas_limit": "42", "payer": "01", "proposal_key": {"address": "01", "key_index": key,
                                                                "sequence_number": sequence},
            "authorizers": list(authorizers),
            "payload_signatures": [{"address": "01", "key_index": "4",
                                    "signature": base64.b64encode(FCL_SIG).decode()}],
            "envelope_signatures": envelope or []}


@pytest.mark.parametrize(("body", "tx_id"), [
    (rest_body(), "118d6462f1c4182501d56f04a0cd23cf685283194bb316dceeb215b353120b2b"),
    (rest_body(envelope=[{"address": "01", "key_index": "4", "signature": base64.b64encode(FCL_SIG).decode()}]),
     "363172029cc6bfc5df3f99e84393e82b6c11e2a920c0e8c3229d077ae8bc31f7"),
    (rest_body(cadence=""), "41dbbb83852ec8aa84dbeff03e29c0ed9c4a17b374eb0aa81695d83ccb344faf"),
    (rest_body(key="0"), "1627bf4a626af55e0230b466b3828cb54822e53585f704e99a37abbbe6fbe51a"),
    (rest_body(sequence="0"), "3e9541ecee13b87a1c7be5e9ef0a00e4d48937a6f3df25167ffab2d4b4c846f4"),
    (rest_body(authorizers=("01", "02")), "6c4b45769cabadf30a103693195845ae633907f701cdcfa775bb830b6c80cb5b"),
])
def test_the_sandbox_computes_flow_go_sdk_transaction_ids(body: dict[str, Any], tx_id: str) -> None:
    assert SubmittedTx.from_rest(body).transaction_id() == tx_id


def test_the_sandbox_payload_encoding_equals_fcl_independently() -> None:
    tx = SubmittedTx.from_rest(rest_body())
    assert tx.payload_message().hex() == FCL_CASES[0][3]
    assert tx.envelope_message().hex() == FCL_CASES[0][4]


# -- scripts and arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(("strings", "values", "expected"), [  # dedent-js test/tests.es6, with their indents
    (("Line #1\n\t\t\tLine #2\n\t\t\tLine #3",), (), "Line #1\nLine #2\nLine #3"),
    (("Line #", "\n            Line #", "\n            Line #", ""), ("1", "2", "3"), "Line #1\nLine #2\nLine #3"),
    (("\n\t\t\tLine #1\n\t\t\tLine #2\n\t\t\tLine #3\n\t\t\t",), (), "Line #1\nLine #2\nLine #3"),
    (("\n\n\t\t\tLine #1\n\t\t\tLine #2\n\t\t\tLine #3\n\n\t\t\t",), (), "\nLine #1\nLine #2\nLine #3\n"),
    (("\n\t\t\tLine #1\n\t\t\t\tLine #2\n\t\t\t\t\tLine #3\n\t\t\t",), (), "Line #1\n\tLine #2\n\t\tLine #3"),
    (("\n\t\t\t\t\t", ". line #", "\n\t\t\t\t\t", ". line #", "\n\t\t\t\t\t", ". line\n\t\t\t\t"),
     ("1", "1", "2", "2", "3"), "1. line #1\n2. line #2\n3. line"),
])
def test_dedent_is_dedent_js(strings: tuple[str, ...], values: tuple[str, ...], expected: str) -> None:
    assert dedent_js(strings, values) == expected


def test_the_flow_transfer_script_is_tatum_js_template_dedented() -> None:
    """dedent-js removes the smallest indentation of the indented lines (2) from all of them."""
    script, arguments = script_and_arguments(2, {"to": "0x21cbd745a4df66f1", "amount": "0.001", "currency": "FLOW",
                                                 "account": "0x4f09d8d43e4967b7"}, True)
    assert script == (
        "import FungibleToken from 0x9a0766d93b6608b7\nimport FlowToken from 0x7e60df042a9c0868\n\n"
        "transaction(amount: UFix64, recipient: Address) {\nlet sentVault: @FungibleToken.Vault\n"
        "prepare(signer: AuthAccount) {\n"
        "  let vaultRef = signer.borrow<&FlowToken.Vault>(from: /storage/flowTokenVault)\n"
        "    ?? panic(\"failed to borrow reference to sender vault\")\n\n"
        "  self.sentVault <- vaultRef.withdraw(amount: amount)\n}\n\nexecute {\n"
        "  let receiverRef =  getAccount(recipient)\n    .getCapability(/public/flowTokenReceiver)\n"
        "    .borrow<&{FungibleToken.Receiver}>()\n"
        "      ?? panic(\"failed to borrow reference to recipient vault\")\n\n"
        "  receiverRef.deposit(from: <-self.sentVault)\n}\n}")
    assert encode_arguments(arguments) == (b'{"type":"UFix64","value":"0.00100000"}',
                                           b'{"type":"Address","value":"0x21cbd745a4df66f1"}')
    mainnet_fusd, _ = script_and_arguments(2, {"to": "0x21cbd745a4df66f1", "amount": "1", "currency": "FUSD",
                                               "account": "0x4f09d8d43e4967b7"}, False)
    assert mainnet_fusd.startswith(
        "import FungibleToken from 0xf233dcee88fe0abe\nimport FUSD from 0x3c5959b568896393\n")
    assert "/storage/fusdVault" in mainnet_fusd and "/public/fusdReceiver" in mainnet_fusd


@pytest.mark.parametrize(("amount", "fixed"), [("0.001", "0.00100000"), ("1", "1.00000000"), (".5", "0.50000000"),
                                               ("0.001953125", "0.00195313"),  # a tie: toFixed rounds half up
                                               ("123456789.123456789", "123456789.12345679")])
def test_amounts_are_parse_float_to_fixed_8(amount: str, fixed: str) -> None:
    assert ufix64_amount(amount) == fixed


@pytest.mark.parametrize(("kind", "value", "sub", "json_text"), [
    ("UFix64", "1.5", None, '{"type":"UFix64","value":"1.50000000"}'),
    ("UInt64", "42", None, '{"type":"UInt64","value":"42"}'),
    ("Int", 7, None, '{"type":"Int","value":"7"}'),
    ("String", "héllo \"x\"\n", None, '{"type":"String","value":"héllo \\"x\\"\\n"}'),
    ("Bool", True, None, '{"type":"Bool","value":true}'),
    ("Array", ["0x01", "0x02"], "Address", '{"type":"Array","value":[{"type":"Address","value":"0x01"},'
                                           '{"type":"Address","value":"0x02"}]}'),
    ("Void", None, None, '{"type":"Void","value":null}'),
])
def test_arguments_are_fcl_json_cadence(kind: str, value: Any, sub: str | None, json_text: str) -> None:
    assert encode_argument(as_argument(kind, value, sub)) == json_text.encode()


@pytest.mark.parametrize(("kind", "value", "sub"), [("UFix64", "1", None), ("UFix64", "1.123456789", None),
                                                    ("UFix64", 1.5, None), ("Bool", "true", None),
                                                    ("Optional", "x", None), ("Array", ["1"], None),
                                                    ("Array", "1", "UInt8"), ("Nope", "1", None)])
def test_arguments_fcl_cannot_cast_are_refused(kind: str, value: Any, sub: str | None) -> None:
    with pytest.raises(ChainError):
        as_argument(kind, value, sub)


def test_uint64_values_are_cast_with_parse_int_as_tatum_js() -> None:
    assert [parse_int(v) for v in ("12", "007", " 5", "0x10", "12abc", 9)] == [12, 7, 5, 16, 12, 9]
    with pytest.raises(ChainError):
        parse_int("abc")
    _, arguments = script_and_arguments(8, {"account": "0x4f09d8d43e4967b7", "transaction": "transaction {}",
                                            "args": [{"type": "UInt64", "value": "0x1f"}]}, True)
    assert encode_arguments(arguments) == (b'{"type":"UInt64","value":"31"}',)


@pytest.mark.parametrize(("weight", "encoded"), [  # packages/util-encode-key snapshots: key 0, secp256k1, SHA3_256
    (0, "f845b840" + UTIL_KEY + "030380"), (1000, "f847b840" + UTIL_KEY + "03038203e8")])
def test_public_keys_are_encoded_as_util_encode_key(weight: int, encoded: str) -> None:
    assert encode_key(UTIL_KEY, weight) == encoded


def test_create_account_and_add_key_send_the_encoded_key_with_the_originals_weights() -> None:
    public_key = FLOW.address_from_private_key("37afa218d41d9cd6a2c6f2b96d9eaa3ad96c598252bc50e4d45d62f9356a51f8", True)
    script, create = script_and_arguments(0, {"account": "0x955cd3f17b2fd8ad", "publicKey": public_key}, True)
    assert create == [("String", encode_key(public_key, 1000), None)] and "AuthAccount(payer: signer)" in script
    script, add = script_and_arguments(1, {"account": "0x955cd3f17b2fd8ad", "publicKey": public_key}, True)
    assert add == [("String", encode_key(public_key, 0), None)] and "signer.addPublicKey" in script


# -- the user's signature -------------------------------------------------------------------------


def test_the_user_signature_is_elliptics_rfc6979_without_canonical_s() -> None:
    """elliptic (tatum-js's flowSign) keeps the s its nonce gives; python-ecdsa does the same, independently."""
    rng = random.Random(20240601)
    high = 0
    for _ in range(40):
        secret = rng.randbytes(32)
        message = rng.randbytes(rng.randint(1, 300))
        key = EcdsaKey.from_string(secret, curve=SECP256k1)
        expected = key.sign_digest_deterministic(hashlib.sha3_256(message).digest(), hashfunc=hashlib.sha256,
                                                 sigencode=sigencode_string)
        assert sign_message(signing_key(secret.hex()), message) == expected
        high += int.from_bytes(expected[32:], "big") > SECP256k1.order // 2
    assert 0 < high < 40  # both halves of s occur, so the normalisation really is undone


@pytest.mark.parametrize("short", ["f" * 63, "1", "0x" + "2" * 62])
def test_keys_without_their_leading_zeros_sign(short: str) -> None:
    assert len(FLOW.address_from_private_key(short, True)) == 128


def test_private_keys_drop_leading_zeros_as_the_original() -> None:
    keys = [FLOW.private_key({"mnemonic": MQ}, index, True) for index in range(60)]
    assert all(len(k) <= 64 and not k.startswith("0") for k in keys)
    assert any(len(k) < 64 for k in keys)  # about one in 16 has a leading zero nibble dropped


# -- signing against Tatum and the access node ------------------------------------------------------

ACCOUNT = "0x4f09d8d43e4967b7"
PROPOSER, PAYER = "0x" + "aa" * 8, "0x" + "bb" * 8


class TatumFlow(RecordingNode):
    """Tatum's proposer/payer and an access node, answering as the real ones do; Tatum's keys sign for real."""

    def __init__(self) -> None:
        self.proposer_key = ec.generate_private_key(ec.SECP256K1())
        self.payer_key = ec.generate_private_key(ec.SECP256K1())
        super().__init__({
            "GET /v3/flow/proposal/false": {"address": PROPOSER, "keyId": 7},
            "GET /v3/flow/proposal/true": {"address": PAYER, "keyId": 0},
            "access:GET /v1/blocks?height=final&expand=payload": [{"header": {"id": REF_BLOCK, "height": "9"}}],
            f"access:GET /v1/accounts/{PROPOSER[2:]}?block_height=final&expand=contracts,keys": {
                "address": PROPOSER[2:], "keys": [{"index": "7", "sequence_number": "31"}]},
            "POST /v3/flow/sign": self._tatum_sign,
        })

    def _tatum_sign(self, body: dict[str, Any]) -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

        key = self.payer_key if body["isPayer"] else self.proposer_key
        der = key.sign(hashlib.sha3_256(bytes.fromhex(body["data"])).digest(), ec.ECDSA(Prehashed(hashes.SHA3_256())))
        r, s = decode_dss_signature(der)
        return {"signature": (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()}


def pending(body: dict[str, Any], tx_type: int = 2) -> PendingTransaction:
    return PendingTransaction.from_json({"id": "61dc488fbcaf510dca58d38a", "chain": "FLOW", "hashes": ["w"],
                                         "index": 1, "serializedTransaction": json.dumps({"type": tx_type,
                                                                                          "body": body})})


TRANSFER_BODY = {"account": ACCOUNT, "to": "0x21cbd745a4df66f1", "amount": "0.001", "currency": "FLOW"}


def verify(public_key: Any, signature: bytes, message: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key.verify(der, hashlib.sha3_256(message).digest(), ec.ECDSA(Prehashed(hashes.SHA3_256())))


def test_signing_asks_tatum_and_the_access_node_in_fcls_order_and_every_signature_verifies() -> None:
    node = TatumFlow()
    user_secret = "44179e42e147b391d3deb8a7a160b9490941cd7292936e6cc7277166a99ef058"
    signed = FLOW.sign(pending(TRANSFER_BODY), [user_secret], True, node)

    assert node.methods() == ["GET /v3/flow/proposal/false", "GET /v3/flow/proposal/true",
                              "GET /v1/blocks?height=final&expand=payload",
                              f"GET /v1/accounts/{PROPOSER[2:]}?block_height=final&expand=contracts,keys",
                              "POST /v3/flow/sign", "POST /v3/flow/sign"]
    assert signed.submit_first and signed.extra == {"proposalKey": 7} and signed.path == "/v3/flow/broadcast"
    body = json.loads(signed.tx_data)
    assert body["proposal_key"] == {"address": PROPOSER[2:], "key_index": "7", "sequence_number": "31"}
    assert (body["payer"], body["authorizers"], body["gas_limit"]) == (PAYER[2:], [ACCOUNT[2:]], "9999")
    tx = SubmittedTx.from_rest(body)  # the sandbox's own decoding and encoding
    payload, envelope = tx.payload_message(), tx.envelope_message()
    assert node.calls[4][1] == {"data": payload.hex(), "isPayer": False}
    assert node.calls[5][1] == {"data": envelope.hex(), "isPayer": True}
    signatures = {(s["address"], s["key_index"]): base64.b64decode(s["signature"]) for s in body["payload_signatures"]}
    user_key = ec.derive_private_key(int(user_secret, 16), ec.SECP256K1()).public_key()
    verify(user_key, signatures[(ACCOUNT[2:], "0")], payload)
    verify(node.proposer_key.public_key(), signatures[(PROPOSER[2:], "7")], payload)
    [payer] = body["envelope_signatures"]
    verify(node.payer_key.public_key(), base64.b64decode(payer["signature"]), envelope)


def test_a_failure_after_taking_a_proposal_key_releases_it() -> None:
    node = TatumFlow()
    del node.answers["POST /v3/flow/sign"]
    node.answers["POST /v3/flow/broadcast"] = {}
    with pytest.raises(KeyError):
        FLOW.sign(pending(TRANSFER_BODY), ["11" * 32], True, node)
    assert node.calls[-1] == ("POST /v3/flow/broadcast", {"txData": "", "proposalKey": 7})


@pytest.mark.parametrize(("tx_type", "body"), [
    (2, {**TRANSFER_BODY, "account": "4f09d8d43e4967b7"}), (2, {**TRANSFER_BODY, "amount": "-1"}),
    (2, {**TRANSFER_BODY, "currency": "USDT"}), (2, {**TRANSFER_BODY, "to": "0x12"}), (9, TRANSFER_BODY),
    (8, {"account": ACCOUNT, "transaction": ""}), (8, {"account": ACCOUNT, "transaction": "t", "args": [{"type": "X",
                                                                                                   "value": "1"}]}),
    (4, {"account": ACCOUNT, "to": ACCOUNT, "url": "u", "chain": "FLOW", "contractAddress": "not-a-uuid"}),
    (0, {"account": ACCOUNT, "publicKey": "04" + "11" * 64}),
])
def test_bad_bodies_are_refused_before_any_call(tx_type: int, body: dict[str, Any]) -> None:
    node = RecordingNode()
    with pytest.raises(ChainError):
        FLOW.sign(pending(body, tx_type), ["11" * 32], True, node)
    assert node.calls == []


# -- submit: sealed, failed, too slow -------------------------------------------------------------


def access_node(results: list[dict[str, Any]]) -> RecordingNode:
    replies = iter(results)
    return RecordingNode({"access:POST /v1/transactions": {"id": "ab" * 32},
                          f"access:GET /v1/transaction_results/{'ab' * 32}": lambda _: next(replies),
                          "POST /v3/flow/broadcast": {}})


def signed_for_submit() -> Any:
    return FLOW.sign(pending(TRANSFER_BODY), ["11" * 32], True, TatumFlow())


def test_submit_waits_until_sealed_then_releases_the_proposal_key() -> None:
    slept: list[float] = []
    chain = FlowChain(poll_interval=0.5, sleep=slept.append)
    node = access_node([{"status": "Pending", "status_code": 0}, {"status": "Executed", "status_code": 0},
                        {"status": "Sealed", "status_code": 0, "error_message": ""}])
    told = chain.submit(signed_for_submit(), node)
    assert (told.tx_data, told.path, told.submit_first, dict(told.extra)) == ("ab" * 32, "/v3/flow/broadcast",
                                                                              False, {})
    assert slept == [0.5, 0.5]
    assert node.calls[-1] == ("POST /v3/flow/broadcast", {"txData": "ab" * 32, "proposalKey": 7})


def test_a_failed_execution_is_an_error_and_the_key_is_released_anyway() -> None:
    node = access_node([{"status": "Sealed", "status_code": 1, "error_message": "[Error Code: 1101]\n  panic"}])
    with pytest.raises(ChainError, match=r"failed: \[Error Code: 1101\] panic"):
        FlowChain(sleep=lambda _: None).submit(signed_for_submit(), node)
    assert node.calls[-1] == ("POST /v3/flow/broadcast", {"txData": "ab" * 32, "proposalKey": 7})


def test_waiting_for_the_seal_is_bounded() -> None:
    node = access_node([{"status": "Pending", "status_code": 0}] * 1000)
    with pytest.raises(ChainError, match="not sealed within 0 s"):
        FlowChain(seal_timeout=0, sleep=lambda _: None).submit(signed_for_submit(), node)
    assert node.methods()[-1] == "POST /v3/flow/broadcast"


# -- the sandbox refuses a wrong authorizer key ------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(execute=True, testnet=True)


def flow_ledger(sandbox: Sandbox) -> FlowLedger:
    ledger = sandbox.ledger("FLOW")
    assert isinstance(ledger, FlowLedger)
    return ledger


def test_a_transfer_signed_with_the_accounts_key_moves_the_balance(sandbox: Sandbox) -> None:
    key, public_key = FLOW.generate_private_key(True)
    ledger = flow_ledger(sandbox)
    payload = json.loads(ledger.sample("FLOW", public_key, 12_345_678))
    node = in_process_node(sandbox, "FLOW", True)
    signed = FLOW.sign(pending(payload["body"]), [key], True, node)
    told = FLOW.submit(signed, node)
    receiver = payload["body"]["to"][2:]
    assert ledger._accounts[receiver].balances["FlowToken"] == 12_345_678
    assert ledger._accounts[payload["body"]["account"][2:]].balances["FlowToken"] == 0
    assert ledger.released[-1] == (told.tx_data, signed.extra["proposalKey"])
    assert ledger._results[told.tx_data]["status"] == "Sealed"


def test_a_transfer_signed_with_another_key_is_refused_by_the_access_node(sandbox: Sandbox) -> None:
    _, public_key = FLOW.generate_private_key(True)
    wrong_key, _ = FLOW.generate_private_key(True)
    payload = json.loads(flow_ledger(sandbox).sample("FLOW", public_key, 1000))
    node = in_process_node(sandbox, "FLOW", True)
    signed = FLOW.sign(pending(payload["body"]), [wrong_key], True, node)
    with pytest.raises(TatumKmsError, match="invalid payload signature"):
        FLOW.submit(signed, node)


NFT = {"account": ACCOUNT, "chain": "FLOW", "contractAddress": "2e1e3fd0-1b8b-4e5a-9f3a-1f0e1d5c7a11"}


@pytest.mark.parametrize(("tx_type", "extra", "header", "expected"), [
    (4, {"to": "0x21cbd745a4df66f1", "url": "ipfs://x"}, "transaction(recipient: Address, url: String, type: String)",
     (b'{"type":"Address","value":"0x21cbd745a4df66f1"}', b'{"type":"String","value":"ipfs://x"}',
      b'{"type":"String","value":"2e1e3fd0-1b8b-4e5a-9f3a-1f0e1d5c7a11"}')),
    (5, {"to": ["0x01", "0x02"], "url": ["a", "b"]}, "transaction(recipient: [Address], url: [String], type: String)",
     (b'{"type":"Array","value":[{"type":"Address","value":"0x01"},{"type":"Address","value":"0x02"}]}',
      b'{"type":"Array","value":[{"type":"String","value":"a"},{"type":"String","value":"b"}]}',
      b'{"type":"String","value":"2e1e3fd0-1b8b-4e5a-9f3a-1f0e1d5c7a11"}')),
    (7, {"to": "0x21cbd745a4df66f1", "tokenId": "0012"}, "transaction(recipient: Address, withdrawID: UInt64)",
     (b'{"type":"Address","value":"0x21cbd745a4df66f1"}', b'{"type":"UInt64","value":"12"}')),
    (6, {"tokenId": "5"}, "transaction(withdrawID: UInt64, type: String)",
     (b'{"type":"UInt64","value":"5"}', b'{"type":"String","value":"2e1e3fd0-1b8b-4e5a-9f3a-1f0e1d5c7a11"}')),
])
def test_nft_transactions_use_tatums_multi_nft_scripts(tx_type: int, extra: dict[str, Any], header: str,
                                                       expected: tuple[bytes, ...]) -> None:
    script, arguments = script_and_arguments(tx_type, {**NFT, **extra}, True)
    assert script.startswith("import TatumMultiNFT from 0x87fe4ebd0cddde06\n\n" + header)
    assert encode_arguments(arguments) == expected
