"""`tatum-kms daemon --runOnce` end to end for SOL and ALGO: the real process against `tatum-kms sandbox`.

SOL transactions execute on the sandbox's LiteSVM node (sent there by the daemon, then their signature
broadcast to Tatum); ALGO ones are checked by py-algorand-sdk and OpenSSL. One store and one sandbox serve
the module; every line the daemon prints is scanned for the wallets' secrets.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from algosdk import account, mnemonic
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from kms.sandbox.ledgers.algorand import NETWORKS, algosdk116_json
from tests import solana_payloads as spl
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin, running_sandbox

API_KEY = "e2e-solalgo-key-3c81d2"


@dataclass
class World:
    kms: Kms
    sandbox: Admin
    wallets: dict[str, dict[str, Any]]
    secrets: list[str] = field(default_factory=list)

    def daemon(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.kms.run("daemon", "--runOnce", "--testnet", *args, timeout=120,
                              env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": self.sandbox.url})
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr, "a secret reached the daemon's output"
        return result

    def airdrop(self, address: str, lamports: int) -> None:
        response = self.sandbox.http.post(f"{self.sandbox.url}/sandbox/sol/airdrop",
                                          json={"address": address, "lamports": lamports}, timeout=10)
        assert response.status_code == 200, response.text

    def lamports(self, address: str) -> int:
        return int(self.sandbox.get(f"sol/balance/{address}")["lamports"])

    def tokens(self, account: Pubkey) -> int:
        return int(self.sandbox.get(f"sol/token-balance/{account}")["amount"])

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.sandbox.http.post(f"{self.sandbox.url}/v3/blockchain/node/SOL/{API_KEY}",
                                          json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                                          headers={"x-api-key": API_KEY}, timeout=10)
        return response.json()["result"]

    def broadcasts(self, pending: str) -> list[dict[str, Any]]:
        return [b for b in self.sandbox.get("broadcasts") if b["signatureId"] == pending]

    def errors(self, pending: str) -> list[str]:
        return [e["error"] for e in self.sandbox.get("errors") if e["signatureId"] == pending]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = Path(tmp_path_factory.mktemp("solalgo")) / "home"
    home.mkdir()
    kms = Kms(home)
    sol_key = Keypair()
    algo_key, _ = account.generate_account()
    algo_words = mnemonic.from_private_key(algo_key)
    ids = {
        "sol_mnemonic": kms.ok("storemanagedwallet", "SOL", "--testnet", input=MQ + "\n")["signatureId"],
        "sol_key": kms.ok("storemanagedprivatekey", "SOL", "--testnet", input=bytes(sol_key).hex() + "\n")[
            "signatureId"],
        "algo_mnemonic": kms.ok("storemanagedwallet", "ALGO", "--testnet", input=algo_words + "\n")["signatureId"],
        "algo_generated": kms.ok("generatemanagedwallet", "ALGO", "--testnet")["signatureId"],
    }
    exported = kms.ok("export")
    wallets = {name: {"id": signature_id, **exported[signature_id]} for name, signature_id in ids.items()}
    secrets = [MQ, PASSWORD, API_KEY, bytes(sol_key).hex(), str(sol_key), algo_words,
               *(w.get("privateKey") or w.get("secret") for w in wallets.values())]
    with running_sandbox() as sandbox:
        yield World(kms, sandbox, wallets, secrets=[s for s in secrets if s])


def test_the_stored_wallets_are_the_originals_shapes(world: World) -> None:
    sol = world.wallets["sol_mnemonic"]
    assert set(sol) == {"id", "mnemonic", "address", "privateKey", "chain", "testnet"} and sol["mnemonic"] == MQ
    assert str(Keypair.from_base58_string(sol["privateKey"]).pubkey()) == sol["address"]
    algo = world.wallets["algo_mnemonic"]
    assert set(algo) == {"id", "address", "secret", "chain", "testnet"}
    assert set(world.wallets["algo_generated"]) == {"id", "address", "secret", "chain", "testnet"}


def test_sol_transfers_from_a_mnemonic_and_a_key_wallet_execute(world: World) -> None:
    mnemonic_address = Pubkey.from_string(world.wallets["sol_mnemonic"]["address"])
    key_address = Pubkey.from_string(world.wallets["sol_key"]["address"])
    recipient = Keypair().pubkey()
    world.airdrop(str(recipient), 1_000_000_000)
    world.airdrop(str(mnemonic_address), 2_000_000_000)
    world.airdrop(str(key_address), 2_000_000_000)
    # index is given, as Tatum sends it; the original signs SOL with the wallet's stored (index-0) key anyway
    first = world.sandbox.enqueue({"chain": "SOL", "hashes": [world.wallets["sol_mnemonic"]["id"]], "index": 3,
                                   "serializedTransaction": spl.payload(
                                       [spl.sol_transfer(mnemonic_address, recipient, 300_000_000)],
                                       mnemonic_address)})
    second = world.sandbox.enqueue({"chain": "SOL", "hashes": [world.wallets["sol_key"]["id"]],
                                    "serializedTransaction": spl.payload(
                                        [spl.sol_transfer(key_address, recipient, 200_000_000)], key_address)})

    result = world.daemon("--chain=SOL", f"--transactionIds={first},{second}")

    assert result.returncode == 0, result.stderr
    assert world.lamports(str(recipient)) == 1_500_000_000
    assert world.lamports(str(mnemonic_address)) == 2_000_000_000 - 300_000_000 - 5000
    for pending in (first, second):
        [record] = world.broadcasts(pending)
        assert record["path"] == "/v3/solana/broadcast"
        assert world.rpc("getSignatureStatuses", [record["txData"]])["value"][0]["err"] is None
        assert world.errors(pending) == []


def test_an_spl_token_is_created_with_mint_pk_and_transferred(world: World) -> None:
    owner = Pubkey.from_string(world.wallets["sol_key"]["address"])
    world.airdrop(str(owner), 1_000_000_000)
    recipient = Keypair().pubkey()
    deploy, mint = spl.deploy_spl(owner, 5_000_000, world.rpc("getMinimumBalanceForRentExemption", spl.MINT_SIZE))
    wallet = [world.wallets["sol_key"]["id"]]
    created = world.sandbox.enqueue({"chain": "SOL", "hashes": wallet, "serializedTransaction": deploy})
    moved = world.sandbox.enqueue({"chain": "SOL", "hashes": wallet, "serializedTransaction": spl.transfer_spl(
        owner, recipient, mint.pubkey(), 1_250_000)})

    result = world.daemon("--chain=SOL", f"--transactionIds={created},{moved}")

    assert result.returncode == 0, result.stderr
    assert world.tokens(spl.associated_token_address(recipient, mint.pubkey())) == 1_250_000
    assert world.tokens(spl.associated_token_address(owner, mint.pubkey())) == 3_750_000
    assert len(world.broadcasts(created)) == len(world.broadcasts(moved)) == 1


def test_a_sol_transfer_that_fails_on_chain_is_reported_in_the_batch(world: World) -> None:
    sender = Pubkey.from_string(world.wallets["sol_key"]["address"])
    before = world.lamports(str(sender))
    pending = world.sandbox.enqueue({"chain": "SOL", "hashes": [world.wallets["sol_key"]["id"]],
                                     "serializedTransaction": spl.payload(
                                         [spl.sol_transfer(sender, Keypair().pubkey(), before * 2)], sender)})

    result = world.daemon("--chain=SOL", f"--transactionIds={pending}")

    assert result.returncode == 0, result.stderr
    [error] = world.errors(pending)
    assert "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1" in error
    assert world.broadcasts(pending) == [] and world.lamports(str(sender)) == before


def test_algo_payments_from_mnemonic_and_generated_wallets_are_accepted(world: World) -> None:
    genesis_id, genesis_hash = NETWORKS[True]
    queued = []
    for name in ("algo_mnemonic", "algo_generated"):
        payment = algosdk116_json(world.wallets[name]["address"], account.generate_account()[1], amount=250_000,
                                  fee=1000, first_round=30_000_000, last_round=30_001_000, genesis_id=genesis_id,
                                  genesis_hash=genesis_hash, note=b"kms")
        queued.append(world.sandbox.enqueue({"chain": "ALGO", "hashes": [world.wallets[name]["id"]],
                                             "serializedTransaction": json.dumps(payment)}))

    result = world.daemon("--chain=ALGO")

    assert result.returncode == 0, result.stderr
    for pending in queued:
        [record] = world.broadcasts(pending)
        assert record["path"] == "/v3/algorand/broadcast" and len(record["txId"]) == 52
        assert world.errors(pending) == []


# -- the wallet commands for these chains ------------------------------------------------------------------


def test_generatewallet_works_for_sol_and_bad_secrets_leave_the_store_untouched(world: World) -> None:
    printed = world.kms.ok("generatewallet", "SOL")
    assert set(printed) == {"mnemonic", "address", "privateKey"} and len(printed["mnemonic"].split()) == 24
    assert str(Keypair.from_base58_string(printed["privateKey"]).pubkey()) == printed["address"]
    before = world.kms.ok("export")
    forged = (bytes(Keypair())[:32] + bytes(Keypair().pubkey())).hex()
    error = world.kms.fails("storemanagedprivatekey", "SOL", "--testnet", input=forged + "\n")
    assert "public half" in json.loads(error)["error"] and forged not in error
    error = world.kms.fails("storemanagedwallet", "ALGO", "--testnet", input=MQ + "\n")
    assert "Algorand 25-word" in json.loads(error)["error"] and MQ.split()[0] not in error
    assert world.kms.ok("export") == before
