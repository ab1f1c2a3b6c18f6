"""`tatum-kms daemon --runOnce --testnet` end to end for EGLD, BNB and FLOW against a real `tatum-kms sandbox`.

The sandbox checks each broadcast independently of the signer: its EGLD gateway verifies the ed25519 signature
over its own rebuild of the signing bytes, its BNB node decodes the amino bytes and verifies the signature over
the sign document it rebuilds; both execute the transfer on balances (and nonces or sequences). Its Flow access
node re-encodes the payload and envelope, verifies every signature for the account keys they name, checks the
proposal key's sequence number and seals the transfer; its Tatum side signs as proposer and payer. One store and one
sandbox serve the module (each `tatum-kms` process costs an Argon2id unlock).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chains.egld import address_of
from tests.inprocess import foreign_endpoints
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin, running_sandbox

API_KEY = "e2e-api-key-egld-flow-bnb-42"


@dataclass
class World:
    kms: Kms
    sandbox: Admin
    ids: dict[str, str]
    secrets: list[str] = field(default_factory=list)

    def daemon(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        own_hosts = {**foreign_endpoints("BNB", self.sandbox.url), **foreign_endpoints("FLOW", self.sandbox.url)}
        result = self.kms.run("daemon", "--runOnce", "--testnet", *args, timeout=120,
                              env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": self.sandbox.url, **own_hosts,
                                   **(env or {})})
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr, "a secret reached the daemon's output"
        assert result.returncode == 0, result.stderr
        return result

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.sandbox.http.post(f"{self.sandbox.url}{path}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def broadcasts(self, chain: str) -> list[dict[str, Any]]:
        return [b for b in self.sandbox.get("broadcasts") if b["chain"] == chain and b["signatureId"]]

    def errors(self, pending_id: str) -> list[str]:
        return [e["error"] for e in self.sandbox.get("errors") if e["signatureId"] == pending_id]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home: Path = tmp_path_factory.mktemp("egldflowbnb") / "home"
    home.mkdir()
    kms = Kms(home)
    egld_key = Ed25519PrivateKey.generate().private_bytes_raw().hex()
    bnb_key = os.urandom(32).hex()
    ids = {
        "egld": kms.ok("storemanagedwallet", "EGLD", "--testnet", input=MQ + "\n")["signatureId"],
        "egld_key": kms.ok("storemanagedprivatekey", "EGLD", "--testnet", input=egld_key + "\n")["signatureId"],
        "bnb_key": kms.ok("storemanagedprivatekey", "BNB", "--testnet", input=bnb_key + "\n")["signatureId"],
    }
    flow_key = os.urandom(32).hex().lstrip("0")
    ids["flow"] = kms.ok("storemanagedwallet", "FLOW", "--testnet", input=MQ + "\n")["signatureId"]
    ids["flow_key"] = kms.ok("storemanagedprivatekey", "FLOW", "--testnet", input=flow_key + "\n")["signatureId"]
    bnb_managed = kms.ok("generatemanagedwallet", "BNB", "--testnet")
    ids["bnb"], ids["bnb_address"] = bnb_managed["signatureId"], bnb_managed["address"]
    secrets = [MQ, " ".join(MQ.split()[:3]), PASSWORD, API_KEY, egld_key, bnb_key, flow_key]
    with running_sandbox() as sandbox:
        yield World(kms, sandbox, ids, secrets)


# -- EGLD ----------------------------------------------------------------------------------------


def fresh_egld_address() -> str:
    return address_of(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


def egld_balance(world: World, address: str) -> int:
    return int(world.sandbox.get(f"egld/balance/{address}")["balance"])


def test_an_egld_transfer_with_data_from_a_mnemonic_index_is_verified_and_executed(world: World) -> None:
    sender = world.kms.ok("getaddress", world.ids["egld"], "2")["address"]
    key = world.kms.ok("getprivatekey", world.ids["egld"], "2")["privateKey"]
    world.secrets.append(key)
    world.post("/sandbox/egld/fund", {"address": sender, "amount": str(10**18)})
    receiver = fresh_egld_address()
    pending = world.sandbox.enqueue({"chain": "EGLD", "hashes": [world.ids["egld"]], "index": 2,
                                     "serializedTransaction": json.dumps(
                                         {"from": sender, "to": receiver, "value": "0.25", "data": "invoice 42"})})

    world.daemon("--chain=EGLD")

    [broadcast] = [b for b in world.broadcasts("EGLD") if b["signatureId"] == pending]
    tx = json.loads(broadcast["txData"])
    assert tx["sender"] == sender and tx["receiver"] == receiver
    assert base64.b64decode(tx["data"]) == b"invoice 42"
    assert egld_balance(world, receiver) == 25 * 10**16
    gas = 50_000 + 1_500 * len(b"invoice 42")
    assert egld_balance(world, sender) == 10**18 - 25 * 10**16 - gas * 10**9
    assert world.errors(pending) == []


def test_two_egld_transfers_of_a_key_wallet_get_consecutive_nonces(world: World) -> None:
    sender = world.kms.ok("getaddress", world.ids["egld_key"], "0")["address"]
    world.post("/sandbox/egld/fund", {"address": sender, "amount": str(10**18)})
    receiver = fresh_egld_address()
    pendings = [world.sandbox.enqueue({"chain": "EGLD", "hashes": [world.ids["egld_key"]],
                                       "serializedTransaction": json.dumps({"to": receiver, "value": value})})
                for value in ("0.1", "0.2")]

    world.daemon("--chain=EGLD")

    nonces = sorted(json.loads(b["txData"])["nonce"] for b in world.broadcasts("EGLD") if b["signatureId"] in pendings)
    assert nonces == [0, 1]
    assert egld_balance(world, receiver) == 3 * 10**17


def test_an_egld_wallet_index_past_the_funds_is_refused_by_the_gateway_and_reported(world: World) -> None:
    pending = world.sandbox.enqueue({"chain": "EGLD", "hashes": [world.ids["egld"]], "index": 7,
                                     "serializedTransaction": json.dumps({"to": fresh_egld_address(), "value": "1"})})

    world.daemon("--chain=EGLD")

    [error] = world.errors(pending)
    assert "egld.broadcast.failed" in error and "insufficient funds" in error


# -- BNB -----------------------------------------------------------------------------------------


def bnb_payload(sender: str, receiver_raw: bytes, amount: int, memo: str) -> str:
    """What Tatum queues for a BNB transfer (spec §3.13): the amino msg with Buffer addresses, and the sign msg."""
    from bip_utils import Bech32Decoder

    coins = [{"denom": "BNB", "amount": amount}]
    receiver = bnb_address_of_hash(receiver_raw)
    return json.dumps({
        "msg": {"inputs": [{"address": {"type": "Buffer", "data": list(Bech32Decoder.Decode("tbnb", sender))},
                            "coins": coins}],
                "outputs": [{"address": {"type": "Buffer", "data": list(receiver_raw)}, "coins": coins}],
                "aminoPrefix": "2A2C87FA"},
        "signMsg": {"inputs": [{"address": sender, "coins": coins}],
                    "outputs": [{"address": receiver, "coins": coins}]},
        "memo": memo})


def bnb_address_of_hash(raw: bytes) -> str:
    from bip_utils import Bech32Encoder

    return Bech32Encoder.Encode("tbnb", raw)


@pytest.mark.parametrize("wallet", ["bnb_key", "bnb"])
def test_a_bnb_transfer_is_decoded_verified_and_executed(world: World, wallet: str) -> None:
    sender = world.kms.ok("getaddress", world.ids[wallet], "0")["address"]
    if wallet == "bnb":
        assert sender == world.ids["bnb_address"]
    world.post("/sandbox/bnb/fund", {"address": sender, "amount": "100000000"})
    receiver_raw = os.urandom(20)
    payload = bnb_payload(sender, receiver_raw, 1_700_000, "109429545")
    pending = world.sandbox.enqueue({"chain": "BNB", "hashes": [world.ids[wallet]], "serializedTransaction": payload})

    world.daemon("--chain=BNB")

    assert world.errors(pending) == []
    [broadcast] = [b for b in world.broadcasts("BNB") if b["signatureId"] == pending]
    assert broadcast["txId"] == broadcast["txId"].upper() and len(broadcast["txId"]) == 64
    receiver = world.sandbox.get(f"bnb/balance/{bnb_address_of_hash(receiver_raw)}")["balances"]
    assert receiver == {"BNB": "1700000"}
    assert world.sandbox.get(f"bnb/balance/{sender}")["balances"] == {"BNB": str(100_000_000 - 1_700_000 - 37_500)}
    assert world.sandbox.count("GET", "/node/BNB/node/api/v1/node-info") >= 1  # the chain id from the node


def test_the_bnb_chain_id_comes_from_the_node_that_tatum_kms_bnb_node_url_names(world: World) -> None:
    sender = world.kms.ok("getaddress", world.ids["bnb_key"], "0")["address"]
    pending = world.sandbox.enqueue({"chain": "BNB", "hashes": [world.ids["bnb_key"]],
                                     "serializedTransaction": bnb_payload(sender, os.urandom(20), 1, "")})

    world.daemon("--chain=BNB", env={"TATUM_KMS_BNB_NODE_URL": world.sandbox.url + "/nowhere"})

    [error] = world.errors(pending)
    assert "node-info" in error or "404" in error


# -- FLOW ----------------------------------------------------------------------------------------


def flow_account(world: World, public_key: str, flow: int = 0) -> str:
    return world.post("/sandbox/flow/account", {"publicKey": public_key, "flow": str(flow)})["address"]


def flow_balance(world: World, address: str) -> int:
    return int(world.sandbox.get(f"flow/account/{address}")["balances"]["FlowToken"])


def a_public_key() -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    numbers = ec.generate_private_key(ec.SECP256K1()).public_key().public_numbers()
    return f"{numbers.x:064x}{numbers.y:064x}"


def test_a_flow_transfer_from_a_mnemonic_index_is_sealed_and_reported_with_its_id(world: World) -> None:
    public_key = world.kms.ok("getaddress", world.ids["flow"], "1")["address"]
    assert public_key.startswith("968c3ce11e871cb2")  # spec §4.1: the index 1 public key of MQ
    world.secrets.append(world.kms.ok("getprivatekey", world.ids["flow"], "1")["privateKey"])
    account = flow_account(world, public_key, flow=5 * 10**8)
    receiver = flow_account(world, a_public_key())
    body = {"account": account, "to": receiver, "amount": "1.25", "currency": "FLOW"}
    pending = world.sandbox.enqueue({"chain": "FLOW", "hashes": [world.ids["flow"]], "index": 1,
                                     "serializedTransaction": json.dumps({"type": 2, "body": body})})

    world.daemon("--chain=FLOW")

    assert world.errors(pending) == []
    [broadcast] = [b for b in world.broadcasts("FLOW") if b["signatureId"] == pending]
    tx_id = broadcast["txData"]
    assert len(tx_id) == 64 and broadcast["txId"] == tx_id
    assert flow_balance(world, receiver) == 125_000_000
    assert flow_balance(world, account) == 375_000_000
    released = world.sandbox.get("flow/proposal-keys")["released"]
    assert [r["txData"] for r in released].count(tx_id) == 1  # the proposal key went back after sealing


def test_a_flow_transfer_signed_by_a_key_the_account_does_not_hold_is_refused(world: World) -> None:
    account = flow_account(world, a_public_key(), flow=10**8)  # not the stored key's account
    body = {"account": account, "to": flow_account(world, a_public_key()), "amount": "0.5", "currency": "FLOW"}
    pending = world.sandbox.enqueue({"chain": "FLOW", "hashes": [world.ids["flow_key"]],
                                     "serializedTransaction": json.dumps({"type": 2, "body": body})})

    world.daemon("--chain=FLOW")

    [error] = world.errors(pending)
    assert "invalid payload signature" in error and account[2:] in error
    assert not [b for b in world.broadcasts("FLOW") if b["signatureId"] == pending]
    assert flow_balance(world, account) == 10**8


def test_a_flow_key_wallet_signs_a_custom_transaction(world: World) -> None:
    public_key = world.kms.ok("getaddress", world.ids["flow_key"], "0")["address"]
    account = flow_account(world, public_key)
    script = "transaction(greeting: String, times: UInt64) { prepare(signer: AuthAccount) { log(greeting) } }"
    body = {"account": account, "transaction": script,
            "args": [{"type": "String", "value": "hello"}, {"type": "UInt64", "value": "3"}]}
    pending = world.sandbox.enqueue({"chain": "FLOW", "hashes": [world.ids["flow_key"]],
                                     "serializedTransaction": json.dumps({"type": 8, "body": body})})

    world.daemon("--chain=FLOW")

    assert world.errors(pending) == []
    assert [b for b in world.broadcasts("FLOW") if b["signatureId"] == pending]
