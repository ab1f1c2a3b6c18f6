"""The EVM family end to end: `tatum-kms storemanagedwallet`/`getaddress`/`getprivatekey` give the original's values
for BSC, MATIC, CELO, KLAY, KCS, XDC, ONE and VET, and the real `tatum-kms daemon --runOnce` signs a pending
transaction of each chain, from a mnemonic wallet with `index` and from a private-key wallet, on the testnet and
on the mainnet sandbox (each chain's own chain id). The EVM chains' broadcasts execute on the sandbox's EVMs
(balances and a token balance move); CELO's and VET's are checked by the sandbox's independent verifiers and
decoded again here with the `rlp` package and eth-keys.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account

from tests.inprocess import foreign_endpoints
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin, running_sandbox
from tests.unit.test_celo_vet import celo_decode, vet_decode

API_KEY = "e2e-evm-family-key-31c9"
CHAINS = ("BSC", "MATIC", "CELO", "KLAY", "KCS", "XDC", "ONE", "VET")
EXECUTED = ("BSC", "MATIC", "KLAY", "KCS", "XDC", "ONE")
TEST_XPUB = ("xpub6FMiQpA54nciqs52guGVdWQ5TonZt5XtGsFpurgtttL7H3mSfaJDXv5aBdThjX6tW9HYaJSQ8wZVnLm1ixaQUu1MRQCwvwZ6U2cX"
             "6mwWT25")
TEST_ADDRESS = "0x8cb76aed9c5e336ef961265c6079c14e9cd3d2ea"  # MQ, every EVM testnet, index 1 (spec §4.1)
CUSD_TEST = "0x874069fa1eb16d44d622f2e0ca25eea172369bc1"
#: Spec §3.1: (mainnet, testnet) chain ids.
SPEC_CHAIN_IDS = {"BSC": (56, 97), "MATIC": (137, 80002), "KLAY": (8217, 1001), "KCS": (321, 322), "XDC": (50, 51),
                  "ONE": (1666600000, 1666700000), "CELO": (42220, 44787)}


def _mainnet_vectors() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Spec §4.1 values for MQ on mainnet at index 1, from tests/vectors (xpubs, addresses, private keys)."""
    xpubs, addresses, keys = {}, {}, {}
    for code in CHAINS:
        data = json.loads((Path(__file__).parent.parent / "vectors" / f"{code}.json").read_text())
        for wallet in data["wallets"]:
            if not wallet["testnet"]:
                if "xpub" in wallet:
                    xpubs[code] = wallet["xpub"]
                if "1" in wallet["addresses"]:
                    addresses[code] = wallet["addresses"]["1"]
                if "1" in wallet["privateKeys"]:
                    keys[code] = wallet["privateKeys"]["1"]
    return xpubs, addresses, keys


MAIN_XPUBS, MAIN_ADDRESSES, MAIN_KEYS = _mainnet_vectors()


@dataclass
class Store:
    """One store for the module: per chain a mainnet mnemonic wallet (stored by the CLI), a testnet mnemonic
    wallet and a private-key wallet on each network (imported as the original's export)."""

    kms: Kms
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)      # storemanagedwallet's output, mainnet
    main_addresses: dict[str, str] = field(default_factory=dict)         # getaddress <mainnet id> 1
    main_keys: dict[str, str] = field(default_factory=dict)              # getprivatekey <mainnet id> 1
    test_mnemonic: dict[str, str] = field(default_factory=dict)          # chain -> signature id
    key_wallets: dict[tuple[str, bool], tuple[str, Any]] = field(default_factory=dict)  # -> (id, account)
    secrets: list[str] = field(default_factory=list)

    def daemon(self, sandbox: Admin, testnet: bool, *extra: str) -> None:
        env = {"TATUM_API_KEY": API_KEY, "TATUM_API_URL": sandbox.url,
               **foreign_endpoints("VET", sandbox.url)}
        network = ["--testnet"] if testnet else ["--externalUrl", f"{sandbox.url}/sandbox/approve"]
        result = self.kms.run("daemon", "--runOnce", f"--chain={','.join(CHAINS)}", *network, *extra, env=env,
                              timeout=120)
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr, "a secret reached the daemon's output"
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    home = tmp_path_factory.mktemp("evm-family")
    (home / "home").mkdir()
    kms = Kms(home / "home")
    result = Store(kms)
    wallets: dict[str, dict[str, Any]] = {}
    for code in CHAINS:
        sid = str(uuid.uuid4())
        wallets[sid] = {"mnemonic": MQ, "xpub": TEST_XPUB, "chain": code, "testnet": True}
        result.test_mnemonic[code] = sid
        for testnet in (True, False):
            account = Account.create()
            sid = str(uuid.uuid4())
            wallets[sid] = {"privateKey": account.key.to_0x_hex(), "chain": code, "testnet": testnet}
            result.key_wallets[code, testnet] = (sid, account)
            result.secrets.append(account.key.hex())
    export = Path(home / "export.json")
    export.write_text(json.dumps(wallets))
    assert kms.ok("import", "--from", str(export)) == {"imported": len(wallets), "alreadyPresent": 0}
    for code in CHAINS:
        result.stored[code] = kms.ok("storemanagedwallet", code, input=MQ + "\n")
        result.main_addresses[code] = kms.ok("getaddress", result.stored[code]["signatureId"], "1")["address"]
        if code in MAIN_KEYS:
            result.main_keys[code] = kms.ok("getprivatekey", result.stored[code]["signatureId"], "1")["privateKey"]
    result.secrets += [MQ, PASSWORD, API_KEY, *(k[2:] for k in result.main_keys.values())]
    return result


def test_wallet_commands_give_the_originals_values(store: Store) -> None:
    for code, xpub in MAIN_XPUBS.items():
        assert store.stored[code]["xpub"] == xpub
    for code, address in MAIN_ADDRESSES.items():
        assert store.main_addresses[code] == address
    assert store.main_keys == MAIN_KEYS
    assert store.main_addresses["XDC"].startswith("xdc") and len(store.main_addresses["XDC"]) == 43
    # MATIC's and KLAY's mainnet addresses: those of the keys at their own coin types, not ETH's
    assert store.main_addresses["MATIC"] == Account.from_key(MAIN_KEYS["MATIC"]).address.lower()
    assert store.main_addresses["KLAY"] not in (store.main_addresses["BSC"], store.main_addresses["MATIC"])


def _transfers(store: Store, sandbox: Admin, testnet: bool) -> dict[str, tuple[str, str, str, str]]:
    """Queue one transfer per chain and wallet kind; returns pending id -> (chain, kind, sender, recipient)."""
    queued = {}
    for code in CHAINS:
        senders = [("mnemonic", store.test_mnemonic[code] if testnet else store.stored[code]["signatureId"],
                    TEST_ADDRESS if testnet else "0x" + store.main_addresses[code][-40:])]
        sid, account = store.key_wallets[code, testnet]
        senders.append(("key", sid, account.address))
        for kind, signature_id, sender in senders:
            recipient = Account.create().address.lower()
            payload: dict[str, Any] = {"from": 0, "to": recipient, "value": "1000"}
            if code in EXECUTED:
                sandbox.fund(sender, 10**18, code)
                if code == "XDC":
                    payload["to"] = "xdc" + recipient[2:]
            elif code == "CELO":
                payload = {"to": recipient, "value": "0x3e8"}
                if kind == "mnemonic":
                    payload["feeCurrency"] = CUSD_TEST if testnet else "0x765de816845861e75a25fca122bb6898b8b1282a"
            pending = {"chain": code, "hashes": [signature_id], "serializedTransaction": json.dumps(payload)}
            if kind == "mnemonic":
                pending["index"] = 1
            pending_id = sandbox.enqueue(pending)
            if not testnet:
                sandbox.approve(pending_id)
            queued[pending_id] = (code, kind, sender, recipient)
    return queued


def _check(sandbox: Admin, queued: dict[str, tuple[str, str, str, str]], testnet: bool) -> None:
    assert sandbox.get("errors") == []
    broadcasts = {b["signatureId"]: b for b in sandbox.get("broadcasts")}
    assert set(broadcasts) >= set(queued)
    for pending_id, (code, _kind, sender, recipient) in queued.items():
        broadcast = broadcasts[pending_id]
        assert broadcast["chain"] == code
        chain_id = SPEC_CHAIN_IDS.get(code, (0, 0))[1 if testnet else 0]
        if code in EXECUTED:
            assert sandbox.balance(recipient, code) == 1000
            v = int.from_bytes(rlp.decode(bytes.fromhex(broadcast["txData"][2:]))[6], "big")
            assert (v - 35) // 2 == chain_id
        elif code == "CELO":
            fields = celo_decode(broadcast["txData"])
            assert fields["sender"].lower() == sender.lower() and fields["value"] == 1000
            assert fields["chainId"] == chain_id
        else:
            fields = vet_decode(broadcast["txData"])
            assert fields["origin"].lower() == sender.lower() and fields["value"] == 1000
            assert fields["chainTag"] == (0x27 if testnet else 0x4A)


@pytest.fixture(scope="module")
def testnet_sandbox() -> Iterator[Admin]:
    with running_sandbox() as sandbox:
        yield sandbox


def test_every_chain_signs_on_testnet_through_the_daemon(store: Store, testnet_sandbox: Admin) -> None:
    sandbox = testnet_sandbox
    queued = _transfers(store, sandbox, testnet=True)
    holder = TEST_ADDRESS
    token = sandbox.http.post(f"{sandbox.url}/sandbox/bsc/token", json={"to": holder, "amount": str(10**21)},
                              timeout=30).json()["address"]
    token_recipient = Account.create().address
    data = "0xa9059cbb" + token_recipient[2:].lower().rjust(64, "0") + hex(250 * 10**18)[2:].rjust(64, "0")
    token_transfer = sandbox.enqueue({"chain": "BSC", "hashes": [store.test_mnemonic["BSC"]], "index": 1,
                                      "serializedTransaction": json.dumps({"from": 0, "to": token, "data": data})})
    withdrawal = sandbox.enqueue({"chain": "ONE", "hashes": [store.test_mnemonic["ONE"]], "index": 1,
                                  "withdrawalId": "wd-one-1", "serializedTransaction": json.dumps(
                                      {"to": token_recipient, "value": "77"})})

    store.daemon(sandbox, True)

    _check(sandbox, queued, testnet=True)
    balance = sandbox.get(f"bsc/token/{token}/balance/{token_recipient}")["balance"]
    assert balance == str(250 * 10**18)
    assert sandbox.get(f"bsc/token/{token}/balance/{holder}")["balance"] == str(750 * 10**18)
    broadcasts = {b["signatureId"]: b for b in sandbox.get("broadcasts")}
    assert broadcasts[withdrawal]["path"] == "/v3/offchain/withdrawal/broadcast"
    assert broadcasts[withdrawal]["withdrawalId"] == "wd-one-1"
    assert sandbox.balance(token_recipient, "ONE") == 77
    assert broadcasts[token_transfer]["path"] == "/v3/bsc/broadcast"
    celo_cusd = [celo_decode(b["txData"]) for b in broadcasts.values() if b["chain"] == "CELO"]
    assert sorted(f["gasPrice"] for f in celo_cusd) == [10**9, 5 * 10**9]  # cUSD's 1 gwei minimum, CELO's quote
    counts = sandbox.get("requests")["counts"]
    assert counts.get("GET /node/VET/node/blocks/0") == 1  # the genesis is asked once
    assert counts.get("POST /node/VET/node/accounts/*") == 2
    assert counts.get("POST /v3/blockchain/node/KLAY/***", 0) > 0


def test_every_chain_signs_on_mainnet_through_the_daemon(store: Store) -> None:
    with running_sandbox(testnet=False) as sandbox:
        queued = _transfers(store, sandbox, testnet=False)
        unapproved = sandbox.enqueue({"chain": "BSC", "hashes": [store.stored["BSC"]["signatureId"]], "index": 1,
                                      "serializedTransaction": json.dumps({"to": Account.create().address})})

        store.daemon(sandbox, False)

        _check(sandbox, queued, testnet=False)
        assert unapproved not in {b["signatureId"] for b in sandbox.get("broadcasts")}
        # the mainnet mnemonic senders are the spec's addresses: the keys the original derives
        for code, address in MAIN_ADDRESSES.items():
            assert any(sender == address for chain, kind, sender, _ in queued.values() if chain == code)
