"""`tatum-kms daemon --runOnce` for XRP and TRON: the real process against `tatum-kms sandbox`, whose ledgers check
XRP blobs with xrpl-py and TRON transactions with the protobuf runtime and signer recovery.

One store and one sandbox for the module: an ed25519 XRP wallet made by `generatemanagedwallet`, a secp256k1 seed
and a TRON key stored with `storemanagedprivatekey`, and the spec's mnemonic as a TRON wallet signing at `index`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from xrpl.constants import CryptoAlgorithm
from xrpl.core import keypairs
from xrpl.core.addresscodec import encode_classic_address
from xrpl.core.binarycodec import decode, encode_for_signing

from kms.sandbox.ledgers.tron import _signer, address_hex, unsigned_transaction
from tests.kms_process import MQ, PASSWORD, Kms
from tests.tatum_sandbox import Admin, running_sandbox

API_KEY = "e2e-xrp-tron-key-91c2"


@dataclass
class Store:
    """The module's store: its wallets' ids and addresses, and the secrets no output may show."""

    kms: Kms
    sandbox: Admin
    ids: dict[str, str]
    addresses: dict[str, str]
    secrets: list[str] = field(default_factory=list)

    def daemon(self, *args: str) -> str:
        result = self.kms.run("daemon", "--runOnce", "--testnet", *args, timeout=120,
                              env={"TATUM_API_KEY": API_KEY, "TATUM_API_URL": self.sandbox.url})
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        for secret in self.secrets:
            assert secret not in output, "a secret reached the daemon's output"
        return output


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    home = Path(tmp_path_factory.mktemp("xrp-tron")) / "home"
    home.mkdir()
    kms = Kms(home)
    secp_seed = keypairs.generate_seed(os.urandom(16).hex(), CryptoAlgorithm.SECP256K1)
    tron_key = os.urandom(32).hex()
    ids = {
        "xrp_ed25519": kms.ok("generatemanagedwallet", "XRP", "--testnet")["signatureId"],
        "xrp_secp256k1": kms.ok("storemanagedprivatekey", "XRP", "--testnet", input=secp_seed + "\n")["signatureId"],
        "tron_mnemonic": kms.ok("storemanagedwallet", "TRON", "--testnet", input=MQ + "\n")["signatureId"],
        "tron_key": kms.ok("storemanagedprivatekey", "TRON", "--testnet", input=tron_key + "\n")["signatureId"],
    }
    ed25519 = kms.ok("getmanagedwallet", ids["xrp_ed25519"])
    addresses = {
        "xrp_ed25519": ed25519["address"],
        "xrp_secp256k1": keypairs.derive_classic_address(keypairs.derive_keypair(secp_seed)[0]),
        "tron_mnemonic": kms.ok("getaddress", ids["tron_mnemonic"], "1")["address"],
        "tron_key": kms.ok("getmanagedwallet", ids["tron_key"])["address"],
    }
    assert ed25519["secret"].startswith("sEd")
    secrets = [MQ, " ".join(MQ.split()[:3]), PASSWORD, API_KEY, secp_seed, tron_key, ed25519["secret"],
               "e75d702ce00987633f8009fbb1eabb5b187cb5b50fe9179a8d6cee6bab076b66"]  # MQ's TRON key at index 1
    with running_sandbox() as sandbox:
        yield Store(kms, sandbox, ids, addresses, secrets)


def xrp_payment(account: str, sequence: int) -> str:
    return json.dumps({"TransactionType": "Payment", "Account": account, "Amount": "2500000", "Fee": "12",
                       "Destination": encode_classic_address(os.urandom(20)), "DestinationTag": 42,
                       "Sequence": sequence, "LastLedgerSequence": sequence + 20, "Flags": 2147483648})


def test_xrp_payments_signed_with_each_key_type_pass_the_sandbox_s_xrpl_py_checks(store: Store) -> None:
    queued = {store.sandbox.enqueue({"chain": "XRP", "hashes": [store.ids[name]],
                                     "serializedTransaction": xrp_payment(store.addresses[name], 11)}): name
              for name in ("xrp_ed25519", "xrp_secp256k1")}

    output = store.daemon("--chain=XRP")

    broadcasts = [b for b in store.sandbox.get("broadcasts") if b["signatureId"] in queued]
    assert sorted(b["signatureId"] for b in broadcasts) == sorted(queued), output
    for broadcast in broadcasts:
        tx = decode(broadcast["txData"])
        name = queued[broadcast["signatureId"]]
        assert tx["Account"] == store.addresses[name] and tx["Amount"] == "2500000"
        assert tx["SigningPubKey"].startswith("ED") == (name == "xrp_ed25519")
        assert keypairs.is_valid_message(bytes.fromhex(encode_for_signing(tx)), bytes.fromhex(tx["TxnSignature"]),
                                         tx["SigningPubKey"])
        assert broadcast["path"] == "/v3/xrp/broadcast"
    assert not [e for e in store.sandbox.get("errors") if e["signatureId"] in queued]


def test_tron_transfers_from_the_mnemonic_at_index_and_the_key_wallet_and_a_refused_payload(store: Store) -> None:
    mnemonic_owner, key_owner = address_hex(store.addresses["tron_mnemonic"]), address_hex(store.addresses["tron_key"])
    transfer = unsigned_transaction("TransferContract", {"amount": 3_000_000, "owner_address": mnemonic_owner,
                                                         "to_address": "41" + os.urandom(20).hex()})
    data = ("a9059cbb" + os.urandom(20).hex().rjust(64, "0") + hex(10**6)[2:].rjust(64, "0"))
    token = unsigned_transaction("TriggerSmartContract", {"data": data, "owner_address": key_owner,
                                                          "contract_address": "41" + "a6" * 20},
                                 fee_limit=50_000_000)
    tampered: dict[str, Any] = unsigned_transaction("TransferContract", {
        "amount": 1, "owner_address": mnemonic_owner, "to_address": "41" + os.urandom(20).hex()})
    tampered["raw_data"]["contract"][0]["parameter"]["value"]["amount"] = 10**9
    ids = {
        "transfer": store.sandbox.enqueue({"chain": "TRON", "hashes": [store.ids["tron_mnemonic"]], "index": 1,
                                           "serializedTransaction": json.dumps(transfer)}),
        "trc20": store.sandbox.enqueue({"chain": "TRON", "hashes": [store.ids["tron_key"]],
                                        "serializedTransaction": json.dumps(token)}),
        "tampered": store.sandbox.enqueue({"chain": "TRON", "hashes": [store.ids["tron_mnemonic"]], "index": 1,
                                           "serializedTransaction": json.dumps(tampered)}),
    }

    output = store.daemon("--chain=TRON")

    broadcasts = {b["signatureId"]: b for b in store.sandbox.get("broadcasts") if b["chain"] == "TRON"}
    assert set(broadcasts) == {ids["transfer"], ids["trc20"]}, output
    for name, payload, owner in (("transfer", transfer, mnemonic_owner), ("trc20", token, key_owner)):
        signed = json.loads(broadcasts[ids[name]]["txData"])
        assert broadcasts[ids[name]]["txId"] == payload["txID"] == signed["txID"]
        assert _signer(signed["signature"][0], bytes.fromhex(signed["txID"])).hex() == owner
    errors = {e["signatureId"]: e["error"] for e in store.sandbox.get("errors")}
    assert errors == {ids["tampered"]: "Error: Invalid transaction: raw_data does not encode to raw_data_hex"}
