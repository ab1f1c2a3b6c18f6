"""`tatum-kms daemon --runOnce` end to end: the real process against `tatum-kms sandbox` and an approval server.

The sandbox executes ETH transfers on its EVM and checks BTC and XLM signatures with independent
verifiers, so "signed" here means a node accepted it. Every line the daemon prints is scanned for the
mnemonic, the private keys, the password and the API key.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from stellar_sdk import Account as StellarAccount
from stellar_sdk import Asset, Keypair, Network, TransactionBuilder, TransactionEnvelope

from tests.approval_server import HANG, ApprovalServer
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin, running_sandbox
from tests.unit.test_bitcoin import bitcore_json, p2wpkh, wif_key

API_KEY = "e2e-api-key-5d1c0b7e9a"


@dataclass
class World:
    """A store with one ETH mnemonic, one BTC mnemonic and one XLM keypair, and the sandbox they talk to."""

    kms: Kms
    sandbox: Admin
    eth: str
    btc: str
    xlm: str
    xlm_address: str
    secrets: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def daemon(self, *args: str, timeout: float = 60,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `tatum-kms daemon --runOnce --testnet args…` and check its output holds no secret."""
        result = self.kms.run("daemon", "--runOnce", "--testnet", *args, timeout=timeout,
                              env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": self.sandbox.url, **(env or {})})
        self.check_no_secret(result.stdout + result.stderr)
        return result

    def check_no_secret(self, text: str) -> None:
        self.outputs.append(text)
        for secret in self.secrets:
            assert secret not in text, "a secret reached the daemon's output"

    def eth_transfer(self, to: str, wei: int, **fields: Any) -> str:
        """Enqueue a transfer from the ETH wallet's index 1; the nonce is filled in by the daemon unless given."""
        tx = {"to": to, "value": str(wei), "gasPrice": "20000000000", "gas": 21000, **fields}
        return self.sandbox.enqueue({"chain": "ETH", "hashes": [self.eth], "index": 1,
                                     "serializedTransaction": json.dumps(tx)})


@dataclass(frozen=True)
class Template:
    """A store made once per session (six CLI calls, each an Argon2id unlock) and copied into each test's HOME."""

    home: Path
    eth: str
    btc: str
    xlm: str
    xlm_address: str
    secrets: tuple[str, ...]


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    home = tmp_path_factory.mktemp("daemon-template") / "home"
    home.mkdir()
    kms = Kms(home)
    eth = kms.ok("storemanagedwallet", "ETH", "--testnet", input=MQ + "\n")["signatureId"]
    btc = kms.ok("storemanagedwallet", "BTC", "--testnet", input=MQ + "\n")["signatureId"]
    xlm = kms.ok("generatemanagedwallet", "XLM", "--testnet")["signatureId"]
    xlm_wallet = kms.ok("getmanagedwallet", xlm)
    keys = [kms.ok("getprivatekey", eth, "1")["privateKey"], kms.ok("getprivatekey", btc, "1")["privateKey"],
            xlm_wallet["secret"]]
    secrets = (MQ, " ".join(MQ.split()[:3]), PASSWORD, API_KEY, *keys, *(k.removeprefix("0x") for k in keys))
    return Template(home, eth, btc, xlm, xlm_wallet["address"], secrets)


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    shutil.copytree(template.home, home)
    with running_sandbox() as sandbox:
        yield World(Kms(home), sandbox, template.eth, template.btc, template.xlm, template.xlm_address,
                    secrets=list(template.secrets))


@pytest.fixture
def approvals() -> Iterator[ApprovalServer]:
    server = ApprovalServer({})
    yield server
    server.close()


def events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


# -- signing, verified by the sandbox -----------------------------------------------------------


def test_an_approved_eth_transfer_is_signed_broadcast_and_executed(world: World, approvals: ApprovalServer) -> None:
    sender = world.kms.ok("getaddress", world.eth, "1")["address"]
    world.sandbox.fund(sender, 10**18)
    recipient = Account.create().address
    pending = world.eth_transfer(recipient, 3 * 10**17)
    approvals.answers[pending] = 200

    result = world.daemon("--chain=ETH", "--externalUrl", approvals.url, "--externalUrlMethod=POST")

    assert result.returncode == 0, result.stderr
    assert world.sandbox.balance(recipient) == 3 * 10**17
    assert world.sandbox.balance(sender) == 10**18 - 3 * 10**17 - 21000 * 20_000_000_000
    assert [b["signatureId"] for b in world.sandbox.get("broadcasts")] == [pending]
    assert approvals.requests[0]["method"] == "POST" and approvals.requests[0]["body"]["id"] == pending
    assert f"pending={pending}" in result.stdout and "signed" in result.stdout
    assert world.sandbox.get("errors") == []


def test_the_original_readme_kebab_case_spelling_runs_the_same_daemon(world: World, approvals: ApprovalServer) -> None:
    sender = world.kms.ok("getaddress", world.eth, "1")["address"]
    world.sandbox.fund(sender, 10**18)
    pending = world.eth_transfer(Account.create().address, 10**15)
    approvals.answers[pending] = 200

    result = world.kms.run("daemon", "--testnet", "--run-once", "--chain=ETH", f"--external-url={approvals.url}",
                           "--external-url-method", "POST", "--log-format=json", "--transaction-ids", pending,
                           env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": world.sandbox.url})

    assert result.returncode == 0, result.stderr
    assert [b["signatureId"] for b in world.sandbox.get("broadcasts")] == [pending]
    assert approvals.requests[0]["method"] == "POST"
    assert "signed" in {event.get("outcome") for event in events(result)}


def test_missing_nonce_gas_and_price_are_filled_in_from_the_node(world: World) -> None:
    sender = world.kms.ok("getaddress", world.eth, "1")["address"]
    world.sandbox.fund(sender, 10**18)
    recipient = Account.create().address
    first = world.sandbox.enqueue({"chain": "ETH", "hashes": [world.eth], "index": 1,
                                   "serializedTransaction": json.dumps({"to": recipient, "value": "1000"})})
    second = world.sandbox.enqueue({"chain": "ETH", "hashes": [world.eth], "index": 1,
                                    "serializedTransaction": json.dumps({"to": recipient, "value": "2000"})})

    result = world.daemon("--chain=ETH")

    assert result.returncode == 0, result.stderr
    assert world.sandbox.balance(recipient) == 3000  # two transactions, consecutive nonces
    assert {b["signatureId"] for b in world.sandbox.get("broadcasts")} == {first, second}


def test_a_btc_transaction_is_signed_and_verifies(world: World) -> None:
    wif = world.kms.ok("getprivatekey", world.btc, "1")["privateKey"]
    script = p2wpkh(wif_key(wif).public_key.format())
    payload = bitcore_json([(script, 70_000), (script, 30_000)], [("0014" + "11" * 20, 90_000)])
    pending = world.sandbox.enqueue({"chain": "BTC", "hashes": [], "signatures": [{"id": world.btc, "index": 1}],
                                     "serializedTransaction": json.dumps(payload)})

    result = world.daemon("--chain=BTC")

    assert result.returncode == 0, result.stderr
    broadcasts = world.sandbox.get("broadcasts")
    assert [(b["signatureId"], b["chain"]) for b in broadcasts] == [(pending, "BTC")]
    assert world.sandbox.get("errors") == []


def test_an_xlm_envelope_is_signed_for_the_test_network(world: World) -> None:
    passphrase = Network.TESTNET_NETWORK_PASSPHRASE
    builder = TransactionBuilder(StellarAccount(world.xlm_address, 77), passphrase, base_fee=100)
    builder.append_payment_op(Keypair.random().public_key, Asset.native(), "4.2").set_timeout(600)
    pending = world.sandbox.enqueue({"chain": "XLM", "hashes": [world.xlm],
                                     "serializedTransaction": builder.build().to_xdr()})

    result = world.daemon("--chain=XLM")

    assert result.returncode == 0, result.stderr
    [broadcast] = world.sandbox.get("broadcasts")
    assert broadcast["signatureId"] == pending
    envelope = TransactionEnvelope.from_xdr(broadcast["txData"], passphrase)
    Keypair.from_public_key(world.xlm_address).verify(envelope.hash(), envelope.signatures[0].signature)


# -- the four-eye check fails closed ------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("answer", [404, 500, HANG, "refused"])
def test_anything_but_an_approval_signs_nothing(world: World, approvals: ApprovalServer, method: str,
                                                answer: int | str) -> None:
    pending = world.eth_transfer(Account.create().address, 1, nonce=0)
    url = approvals.url
    if answer == "refused":
        approvals.close()
    else:
        approvals.answers[pending] = answer

    result = world.daemon("--chain=ETH", "--externalUrl", url, f"--externalUrlMethod={method}",
                          "--approvalTimeout", "1", "--logFormat", "json")

    assert result.returncode == 0, result.stderr
    assert world.sandbox.get("broadcasts") == []
    refusal = [e for e in events(result) if e.get("pending") == pending]
    assert [e["outcome"] for e in refusal] == ["not-approved"]
    expected = {404: "HTTP 404", 500: "HTTP 500", HANG: "timed out", "refused": "refused"}[answer]
    assert expected in refusal[0]["detail"]
    assert world.sandbox.get("errors") == []  # a refusal is not reported as a failure: it stays pending


# -- failures are reported in one batch and the cycle goes on -----------------------------------


def test_unknown_ids_and_a_mnemonic_without_index_are_reported_and_the_rest_is_signed(world: World) -> None:
    sender = world.kms.ok("getaddress", world.eth, "1")["address"]
    world.sandbox.fund(sender, 10**18)
    recipient = Account.create().address
    no_index = world.sandbox.enqueue({"chain": "ETH", "hashes": [world.eth], "serializedTransaction": json.dumps(
        {"to": recipient, "value": "5", "gas": 21000, "gasPrice": "1000000000"})})
    stranger = "00000000-0000-4000-8000-000000000000"  # a wallet this KMS does not hold (removed, or another KMS's)
    unknown = world.sandbox.enqueue({"chain": "ETH", "hashes": [stranger], "index": 1,
                                     "serializedTransaction": json.dumps({"to": recipient, "value": "7"})})
    good = world.eth_transfer(recipient, 11)

    result = world.daemon("--chain=ETH", f"--wallets={world.eth},{stranger}")

    assert result.returncode == 0, result.stderr
    assert world.sandbox.balance(recipient) == 11
    assert [b["signatureId"] for b in world.sandbox.get("broadcasts")] == [good]
    reported = {e["signatureId"]: e["error"] for e in world.sandbox.get("errors")}
    assert set(reported) == {no_index, unknown}
    assert "index" in reported[no_index]
    assert stranger in reported[unknown]
    assert world.sandbox.count("POST", "/v3/tatum/kms/batch") == 1


def test_a_rejected_broadcast_is_reported_with_tatums_error(world: World) -> None:
    pending = world.eth_transfer(Account.create().address, 10**18, nonce=0)  # the sender has no funds

    result = world.daemon("--chain=ETH")

    assert result.returncode == 0, result.stderr
    [error] = world.sandbox.get("errors")
    assert error["signatureId"] == pending and "eth.broadcast.failed" in error["error"]


def test_transaction_ids_and_wallets_filter_what_is_signed(world: World) -> None:
    sender = world.kms.ok("getaddress", world.eth, "1")["address"]
    world.sandbox.fund(sender, 10**18)
    recipient = Account.create().address
    first = world.eth_transfer(recipient, 1)
    second = world.eth_transfer(recipient, 2)

    world.daemon("--chain=ETH", f"--transactionIds={second}")
    assert [b["signatureId"] for b in world.sandbox.get("broadcasts")] == [second]

    world.daemon("--chain=ETH", "--wallets", "00000000-0000-4000-8000-000000000000")
    assert [b["signatureId"] for b in world.sandbox.get("broadcasts")] == [second]

    world.daemon("--chain=ETH", "--wallets", world.eth, "--transactionIds", first)
    assert [b["signatureId"] for b in world.sandbox.get("broadcasts")] == [second, first]
    assert world.sandbox.balance(recipient) == 3


def test_other_chains_and_the_other_network_are_left_alone(world: World) -> None:
    pending = world.eth_transfer(Account.create().address, 1, nonce=0)

    world.daemon("--chain=BTC,XLM")
    mainnet = world.kms.run("daemon", "--runOnce", "--chain=ETH", "--externalUrl", "http://127.0.0.1:9/",
                            env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": world.sandbox.url})

    assert mainnet.returncode == 0, mainnet.stderr
    assert world.sandbox.get("broadcasts") == []
    assert world.sandbox.count("POST", "/v3/kms/pending/ETH") == 0  # no mainnet ETH wallet: nothing to ask
    assert [tx["id"] for tx in world.sandbox.get("pending")] == [pending]


# -- start-up and shutdown -----------------------------------------------------------------------


def test_a_wrong_password_fails_fast_without_polling(world: World) -> None:
    result = world.daemon(env={"TATUM_KMS_PASSWORD": "not the password"})
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(path.startswith("POST /v3/") for path in world.sandbox.get("requests")["counts"])


def test_a_wrong_token_pin_fails_fast_without_polling(kms_token: Kms) -> None:
    kms_token.ok("storemanagedwallet", "ETH", "--testnet", input=MQ + "\n")
    with running_sandbox() as sandbox:
        env = {"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url, "TATUM_KMS_PKCS11_PIN": "9999"}
        result = kms_token.run("daemon", "--runOnce", "--testnet", env=env)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1
        assert "PIN" in result.stderr and "9999" not in result.stderr
        assert not any(path.startswith("POST /v3/") for path in sandbox.get("requests")["counts"])


def test_mainnet_requires_an_approval_url_and_an_unknown_chain_is_refused(world: World) -> None:
    env = {"TATUM_API_KEY": API_KEY, "TATUM_API_URL": world.sandbox.url}
    assert "externalUrl" in world.kms.fails("daemon", "--runOnce", env=env)
    assert "DOGGO" in world.kms.fails("daemon", "--runOnce", "--testnet", "--chain=DOGGO", env=env)
    assert "TATUM_API_KEY" in world.kms.fails("daemon", "--runOnce", "--testnet",
                                              env={"TATUM_API_URL": world.sandbox.url})


def test_sigterm_finishes_and_exits_zero(world: World) -> None:
    proc = world.kms.start("daemon", "--testnet", "--period", "0.2", "--chain=ETH",
                           env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": world.sandbox.url})
    deadline = time.monotonic() + 30
    while world.sandbox.count("POST", "/v3/kms/pending/ETH") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    world.check_no_secret(out + err)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1].split()[2] == "stopped"


def test_sigterm_during_a_burst_loses_nothing_and_sends_nothing_twice(world: World) -> None:
    # Four wallets (mnemonic indexes) with ten transfers each, consecutive nonces, every answer 30 ms late;
    # SIGTERM once a few have been broadcast. What was signed is broadcast, the rest stays pending at Tatum.
    lanes: dict[int, list[str]] = {}
    recipient = Account.create().address
    with running_sandbox(latency_ms=30) as sandbox:
        chain_id = sandbox.get("")["chainIds"]["ETH"]
        for index in range(1, 5):
            sender = world.kms.ok("getaddress", world.eth, str(index))["address"]
            sandbox.fund(sender, 10**18)
            lanes[index] = [sandbox.enqueue({"chain": "ETH", "hashes": [world.eth], "index": index,
                                             "serializedTransaction": json.dumps({
                                                 "to": recipient, "value": "1000", "gas": 21000,
                                                 "gasPrice": "20000000000", "nonce": nonce, "chainId": chain_id})})
                            for nonce in range(10)]
        proc = world.kms.start("daemon", "--testnet", "--runOnce", "--chain=ETH",
                               env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url})
        deadline = time.monotonic() + 30
        while len(sandbox.get("broadcasts")) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        world.check_no_secret(out + err)
        assert proc.returncode == 0, err
        sent = [record["signatureId"] for record in sandbox.get("broadcasts")]
        still_pending = {tx["id"] for tx in sandbox.get("pending") if not tx.get("txId")}
    every = [pending for lane in lanes.values() for pending in lane]
    assert 3 <= len(sent) < len(every), "the stop came mid-burst"
    assert len(sent) == len(set(sent)), "a transaction was broadcast twice"
    signed = [line.split()[4] for line in out.splitlines() if line.split()[2] == "signed"]
    assert sorted(signed) == sorted(f"pending={pending}" for pending in sent), "signed but not broadcast"
    assert still_pending == set(every) - set(sent), "what was not sent is still pending at Tatum"
    for lane in lanes.values():  # each wallet stopped after a prefix of its transactions, executed in order
        done = [pending for pending in lane if pending in sent]
        assert done == lane[:len(done)]


# -- more payload shapes -------------------------------------------------------------------------


def test_an_eip1559_transfer_is_signed_as_type_2_and_executed(world: World) -> None:
    sender = world.kms.ok("getaddress", world.eth, "1")["address"]
    world.sandbox.fund(sender, 10**18)
    recipient = Account.create().address
    pending = world.sandbox.enqueue({"chain": "ETH", "hashes": [world.eth], "index": 1, "serializedTransaction":
                                     json.dumps({"to": recipient, "value": "12345", "gas": 21000,
                                                 "maxFeePerGas": "30000000000",
                                                 "maxPriorityFeePerGas": "1000000000"})})

    result = world.daemon("--chain=ETH")

    assert result.returncode == 0, result.stderr
    [broadcast] = world.sandbox.get("broadcasts")
    assert broadcast["signatureId"] == pending and broadcast["txData"].startswith("0x02")
    assert world.sandbox.balance(recipient) == 12345


def test_an_offchain_btc_withdrawal_signs_with_keys_at_each_derivation_key(world: World) -> None:
    keys = {index: world.kms.ok("getprivatekey", world.btc, str(index))["privateKey"] for index in (3, 8)}
    scripts = {index: p2wpkh(wif_key(wif).public_key.format()) for index, wif in keys.items()}
    payload = bitcore_json([(scripts[3], 40_000), (scripts[8], 25_000)], [("0014" + "22" * 20, 60_000)])
    responses = [{"vIn": "-1", "address": None},
                 {"vIn": "0", "address": {"derivationKey": 3}}, {"vIn": "1", "address": {"derivationKey": 8}}]
    pending = world.sandbox.enqueue({"chain": "BTC", "hashes": [world.btc], "withdrawalId": "wd-77",
                                     "withdrawalResponses": responses, "serializedTransaction": json.dumps(payload)})

    result = world.daemon("--chain=BTC")

    assert result.returncode == 0, result.stderr
    [broadcast] = world.sandbox.get("broadcasts")
    assert broadcast["path"] == "/v3/offchain/withdrawal/broadcast"
    assert (broadcast["signatureId"], broadcast["withdrawalId"]) == (pending, "wd-77")


def test_a_newer_release_announced_by_tatum_is_logged(world: World) -> None:
    world.sandbox.http.post(f"{world.sandbox.url}/sandbox/latest-version",
                            json={"header": "99.0.0;WARN;Please upgrade KMS"}, timeout=10)
    result = world.daemon("--chain=ETH")
    [notice] = [line for line in result.stdout.splitlines() if " notice " in line]
    assert "99.0.0" in notice and "Please upgrade KMS" in notice


def test_more_than_25000_wallets_of_a_chain_are_refused_as_the_original_does(kms: Kms) -> None:
    kms.lines("generatemanagedprivatekeybatch", "ETH", "25001", "--testnet", timeout=300)
    with running_sandbox() as sandbox:
        result = kms.run("daemon", "--runOnce", "--testnet", "--chain=ETH",
                         env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url})
        assert result.returncode == 0, result.stderr
        assert "Exceeded limit 25000 wallets for chain ETH" in result.stdout
        assert sandbox.count("POST", "/v3/kms/pending/ETH") == 0
