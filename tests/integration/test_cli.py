"""The wallet commands end to end through the real `tatum-kms` process (issue: the store and commands)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat

import coincurve
import pytest
from Crypto.Hash import keccak

from tests.kms_process import MQ, PASSWORD, Kms
from tests.store_files import put_back_row

# Spec §4.1 vectors for the mnemonic MQ.
BTC_XPUB_MAIN = (
    "xpub6DtevPxud8AJUCqddtVqpqxAJvjFrYYvtt4co2kZF7ifPW3d5FJ3B9i5x7xL4CZirb2eNDEVqCtBgiGZR6Kkee5RdHsDoJVbtxi946axjXJ"
)
BTC_XPUB_TEST = (
    "tpubDFjLw3ykn4aB7fFt96FaqRjSnvtDsU2wpVr8GQk3Eo612LS9jo9JgMkQRfYVG248J3pTBsxGg3PYUXFd7pReNLTeUzxFcUDL3zCvrp3H34a"
)
ETH_XPUB_MAIN = (
    "xpub6DtR524VQx3ENj2E9pNZnjqkVp47YN5sRCP5y4Gs6KZTwDhH9HTVX8shJPt74WaPZRftRXFfnsyPbMPh6DMEmrQ2WBxDJzGxriStAB36bQM"
)


def eth_address(private_key_hex: str) -> str:
    """Independent ETH address of a key: keccak of the uncompressed public key, last 20 bytes."""
    public = coincurve.PrivateKey(bytes.fromhex(private_key_hex.removeprefix("0x"))).public_key.format(False)[1:]
    return "0x" + keccak.new(digest_bits=256, data=public).digest()[-20:].hex()


def store_files(kms: Kms) -> list[bytes]:
    """Every file the store consists of (database, WAL, shared memory) that exists."""
    return [p.read_bytes() for p in kms.store.parent.glob("wallet.dat*")]


# -- happy paths ---------------------------------------------------------------------------------


def test_generatewallet_prints_the_originals_shapes_and_stores_nothing(kms: Kms) -> None:
    btc = kms.ok("generatewallet", "BTC")
    assert set(btc) == {"mnemonic", "xpub"} and len(btc["mnemonic"].split()) == 24
    assert btc["xpub"].startswith("xpub")
    assert kms.ok("generatewallet", "BTC", "--testnet")["xpub"].startswith("tpub")
    eth = kms.ok("generatewallet", "ETH", "--testnet")
    assert eth["xpub"].startswith("xpub")  # EVM xpubs keep mainnet version bytes on testnet
    xlm = kms.ok("generatewallet", "XLM")
    assert set(xlm) == {"address", "secret"} and xlm["address"].startswith("G") and xlm["secret"].startswith("S")
    assert not kms.store.exists()


def test_storemanagedwallet_gives_the_originals_xpubs_addresses_and_keys(kms: Kms) -> None:
    btc_test = kms.ok("storemanagedwallet", "BTC", "--testnet", input=MQ + "\n")
    assert btc_test["xpub"] == BTC_XPUB_TEST
    sid = btc_test["signatureId"]
    assert kms.ok("getaddress", sid, "1") == {"address": "tb1q9x2gqftyxterwt0k6ehzrm2gkzthjly677ucyr"}
    assert kms.ok("getprivatekey", sid, "1") == {"privateKey": "cQ1YZMep3CiAnMTA9y62ha6BjGaaTFsTvtDuGmucGvpAVmS89khV"}

    btc_main = kms.ok("storemanagedwallet", "BTC", input=MQ + "\n")
    assert btc_main["xpub"] == BTC_XPUB_MAIN
    assert kms.ok("getprivatekey", btc_main["signatureId"], "1")["privateKey"] == (
        "KwrYonf8pFfyQR87NTn124Ep9zoJsZMBCoVUi7mjMc1eTHDyLyBN"
    )

    eth = kms.ok("storemanagedwallet", "ETH", input=MQ + "\n")
    assert eth["xpub"] == ETH_XPUB_MAIN
    assert kms.ok("getaddress", eth["signatureId"], "1")["address"] == "0xaac8c73348f1f92b2f9647e1e4f3cf14e2a8b3cb"
    key = kms.ok("getprivatekey", eth["signatureId"], "1")["privateKey"]
    assert key == "0xbc93ab7d2dbad88e64879569a9e3ceaa12d119c70d6dda4d1fc6e73765794a8d"
    assert eth_address(key) == "0xaac8c73348f1f92b2f9647e1e4f3cf14e2a8b3cb"

    wallet = kms.ok("getmanagedwallet", eth["signatureId"])
    assert wallet == {"mnemonic": MQ, "xpub": ETH_XPUB_MAIN, "chain": "ETH", "testnet": False}


def test_generatemanagedwallet_then_every_read_command(kms: Kms) -> None:
    created = kms.ok("generatemanagedwallet", "ETH", "--testnet")
    assert set(created) == {"signatureId", "xpub"}
    sid = created["signatureId"]
    wallet = kms.ok("getmanagedwallet", sid)
    assert wallet["xpub"] == created["xpub"] and wallet["chain"] == "ETH" and wallet["testnet"] is True
    for index in ("0", "7"):
        key = kms.ok("getprivatekey", sid, index)["privateKey"]
        assert kms.ok("getaddress", sid, index)["address"] == eth_address(key)

    xlm = kms.ok("generatemanagedwallet", "XLM")
    assert set(xlm) == {"signatureId", "address"}
    assert kms.ok("getaddress", xlm["signatureId"], "0")["address"] == xlm["address"]
    assert kms.ok("getprivatekey", xlm["signatureId"], "0")["privateKey"].startswith("S")

    exported = kms.ok("export")
    assert list(exported) == [sid, xlm["signatureId"]]
    assert exported[sid] == wallet
    assert set(exported[xlm["signatureId"]]) == {"address", "secret", "chain", "testnet"}


def test_storemanagedprivatekey_and_path_flag_spellings(kms: Kms, tmp_path) -> None:
    other = tmp_path / "elsewhere" / "kms.dat"
    key = "0xac12f9a2d0d1f06c7dc33a3e9c18f60fe1ca65c592d1e9345c994740f9e1971e"
    sid = kms.ok("storemanagedprivatekey", "ETH", "--path", str(other), input=key + "\n")["signatureId"]
    expected = {"address": "0xefc395c295a90023d3e9afacb4399da3d332947b"}
    assert kms.ok("getaddress", sid, "0", f"--path={other}") == expected
    assert kms.ok("getprivatekey", sid, "0", f"--path={other}") == {"privateKey": key}
    assert other.exists() and not kms.store.exists()


def test_batch_prints_one_compact_line_per_stored_key(kms: Kms) -> None:
    result = kms.run("generatemanagedprivatekeybatch", "ETH", "5", "--testnet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        item = json.loads(line)
        assert line == json.dumps(item, separators=(",", ":"))  # compact, as the original prints them
        key = kms.ok("getprivatekey", item["signatureId"], "0")["privateKey"]
        assert eth_address(key) == item["address"]
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_removewallet_removes_only_that_wallet(kms: Kms) -> None:
    first = kms.ok("generatemanagedwallet", "BTC")["signatureId"]
    second = kms.ok("generatemanagedwallet", "BTC")["signatureId"]
    kms.ok("removewallet", first)
    assert "No such wallet" in kms.fails("getmanagedwallet", first)
    assert list(kms.ok("export")) == [second]


def test_help_lists_every_command_without_touching_a_store(kms: Kms) -> None:
    result = kms.run("--help")
    assert result.returncode == 0
    for command in ("generatewallet", "generatemanagedprivatekeybatch", "getaddress", "export", "daemon"):
        assert command in result.stdout
    assert not kms.store.parent.exists()


# -- what the files look like --------------------------------------------------------------------


def test_store_is_private_and_holds_no_secret_in_the_clear(kms: Kms) -> None:
    sid = kms.ok("storemanagedwallet", "ETH", input=MQ + "\n")["signatureId"]
    key = "0xac12f9a2d0d1f06c7dc33a3e9c18f60fe1ca65c592d1e9345c994740f9e1971e"
    kms.ok("storemanagedprivatekey", "ETH", input=key + "\n")
    xlm = kms.ok("generatewallet", "XLM")  # printed, then stored as a private key
    kms.ok("storemanagedprivatekey", "XLM", input=xlm["secret"] + "\n")
    assert stat.S_IMODE(os.stat(kms.store.parent).st_mode) == 0o700
    for path in kms.store.parent.glob("wallet.dat*"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    blob = b"".join(store_files(kms))
    for secret in (MQ, "quantum tobacco", key[2:], bytes.fromhex(key[2:]), xlm["secret"], PASSWORD):
        needle = secret if isinstance(secret, bytes) else secret.encode()
        assert needle not in blob
    assert sid.encode() in blob  # ids are public lookup columns, so the check above can see the file


# -- bad input: one line, non-zero exit, store untouched -----------------------------------------


def test_wrong_password_unknown_chain_and_unknown_id_leave_the_store_untouched(kms: Kms) -> None:
    sid = kms.ok("generatemanagedwallet", "BTC")["signatureId"]
    before = kms.store.read_bytes()
    assert kms.fails("getmanagedwallet", sid, env={"TATUM_KMS_PASSWORD": "wrong"}) == '{"error": "Wrong password."}'
    assert "Wrong password" in kms.fails("generatemanagedwallet", "BTC", env={"TATUM_KMS_PASSWORD": "wrong"})
    assert "Unsupported blockchain" in kms.fails("generatemanagedwallet", "NOPE")
    assert "Unsupported blockchain" in kms.fails("generatewallet", "NOPE")
    assert "No such wallet for signatureId 'f00'" in kms.fails("getprivatekey", "f00", "1")
    assert "Index must be" in kms.fails("getaddress", sid, "-1")
    assert "Unsupported command" in kms.fails("frobnicate")
    assert "mnemonic" in kms.fails("storemanagedwallet", "BTC", input="not a valid mnemonic\n").lower()
    assert kms.fails("storemanagedprivatekey", "ETH", input="0x1234\n")
    assert kms.fails("storemanagedwallet", "BTC", input="")  # no mnemonic on stdin
    assert kms.store.read_bytes() == before
    assert list(kms.ok("export")) == [sid]


def test_missing_password_and_missing_store_are_clear(kms: Kms) -> None:
    assert "No wallet store" in kms.fails("export")
    line = kms.fails("generatemanagedwallet", "ETH", env={"TATUM_KMS_PASSWORD": ""})
    assert "password" in line.lower()
    assert not kms.store.exists()


def test_password_read_from_stdin_when_not_a_terminal(kms: Kms) -> None:
    env = {"TATUM_KMS_PASSWORD": ""}
    sid = kms.ok("storemanagedwallet", "BTC", "--testnet", input=f"{PASSWORD}\n{MQ}\n", env=env)["signatureId"]
    assert kms.ok("getmanagedwallet", sid)["xpub"] == BTC_XPUB_TEST  # same password from the environment
    assert "Wrong password" in kms.fails("export", input="nope\n", env=env)


def test_tampered_records_are_detected_and_the_file_left_as_it_was(kms: Kms) -> None:
    first = kms.ok("generatemanagedwallet", "ETH")["signatureId"]
    second = kms.ok("generatemanagedwallet", "ETH")["signatureId"]
    with sqlite3.connect(kms.store) as db:  # an attacker with write access flips one ciphertext bit
        sealed = db.execute("SELECT sealed FROM wallets WHERE signature_id = ?", (first,)).fetchone()[0]
        db.execute("UPDATE wallets SET sealed = ? WHERE signature_id = ?",
                   (bytes([sealed[0] ^ 1]) + sealed[1:], first))
    db.close()
    before = kms.store.read_bytes()
    assert "altered" in kms.fails("getmanagedwallet", first)
    assert "altered" in kms.fails("export")
    assert kms.ok("getmanagedwallet", second)["chain"] == "ETH"
    assert kms.store.read_bytes() == before


def test_swapped_records_are_detected(kms: Kms) -> None:
    eth = kms.ok("generatemanagedwallet", "ETH")["signatureId"]
    btc = kms.ok("generatemanagedwallet", "BTC")["signatureId"]
    with sqlite3.connect(kms.store) as db:  # move the ETH record under the BTC wallet's identity
        db.execute("UPDATE wallets SET signature_id = 'x' WHERE signature_id = ?", (btc,))
        db.execute("UPDATE wallets SET signature_id = ? WHERE signature_id = ?", (btc, eth))
    db.close()
    assert "altered" in kms.fails("getmanagedwallet", btc)


def test_a_removed_wallet_put_back_from_an_old_copy_is_refused_but_a_reimport_is_not(kms: Kms, tmp_path) -> None:
    kept = kms.ok("generatemanagedwallet", "ETH")["signatureId"]
    removed = kms.ok("generatemanagedwallet", "BTC")["signatureId"]
    exported = tmp_path / "export.json"
    exported.write_text(kms.run("export").stdout)
    backup = tmp_path / "backup.dat"
    shutil.copy(kms.store, backup)
    kms.ok("removewallet", removed)
    kms.ok("generatemanagedwallet", "XLM")
    put_back_row(kms.store, backup, removed)  # an attacker with write access replays the old row
    before = kms.store.read_bytes()
    assert "put back from an older copy" in kms.fails("getmanagedwallet", removed)
    assert "put back from an older copy" in kms.fails("export")
    assert kms.ok("getmanagedwallet", kept)["chain"] == "ETH"
    assert kms.store.read_bytes() == before
    with sqlite3.connect(kms.store) as db:  # dropping the record of the removal as well is seen too
        db.execute("DELETE FROM removed")
    db.close()
    assert "removal record" in kms.fails("getmanagedwallet", removed)
    shutil.copy(backup, kms.store)  # the whole store rolled back to the old copy: that opens, as it was then
    assert set(kms.ok("export")) == {kept, removed}
    kms.ok("removewallet", removed)
    assert kms.ok("import", "--from", str(exported)) == {"imported": 1, "alreadyPresent": 1}  # on purpose: fine
    assert kms.ok("getmanagedwallet", removed)["chain"] == "BTC"


def test_corrupt_or_truncated_store_is_one_clear_line(kms: Kms) -> None:
    kms.ok("generatemanagedwallet", "BTC")
    data = kms.store.read_bytes()
    kms.store.write_bytes(b"garbage" + data[7:])
    assert "not a tatum-kms wallet store" in kms.fails("export")
    kms.store.write_bytes(data[: len(data) // 3])
    line = kms.fails("export")
    assert "corrupt" in line or "malformed" in line or "not a tatum-kms" in line
    assert kms.store.read_bytes() == data[: len(data) // 3]


def test_header_with_weakened_kdf_is_refused(kms: Kms) -> None:
    kms.ok("generatemanagedwallet", "BTC")
    with sqlite3.connect(kms.store) as db:
        header = json.loads(db.execute("SELECT value FROM meta WHERE name = 'header'").fetchone()[0])
        header["kdf"]["memory_kib"] = 8
        db.execute("UPDATE meta SET value = ? WHERE name = 'header'", (json.dumps(header),))
    db.close()
    assert "weakened" in kms.fails("export")


# -- PKCS#11 token -------------------------------------------------------------------------------


def test_token_bound_store_needs_both_password_and_token(kms_token: Kms) -> None:
    init = kms_token.ok("hsm", "init")  # makes the store, bound to a key of its own on the token
    assert init["keyLabel"] == "tatum-kms-kek" and init["created"] is True and kms_token.store.exists()
    again = kms_token.ok("hsm", "init")  # idempotent: the store's key is checked, not made again
    assert again == {**init, "created": False}
    sid = kms_token.ok("generatemanagedwallet", "ETH")["signatureId"]
    before = kms_token.store.read_bytes()
    assert kms_token.ok("getmanagedwallet", sid)["chain"] == "ETH"

    no_token = {"TATUM_KMS_PKCS11_MODULE": "", "TATUM_KMS_PKCS11_TOKEN": ""}
    assert "bound to the PKCS#11 token" in kms_token.fails("getmanagedwallet", sid, env=no_token)
    assert "Wrong password" in kms_token.fails("getmanagedwallet", sid, env={"TATUM_KMS_PASSWORD": "nope"})
    wrong_pin = kms_token.fails("getmanagedwallet", sid, env={"TATUM_KMS_PKCS11_PIN": "0000"})
    assert "PIN" in wrong_pin and "0000" not in wrong_pin
    assert "token" in kms_token.fails("getmanagedwallet", sid, env={"TATUM_KMS_PKCS11_TOKEN": "no-such-token"})
    assert kms_token.store.read_bytes() == before


@pytest.mark.parametrize("flag", ["--pkcs11Module", "--pkcs11Token"])
def test_token_flags_override_the_environment(kms_token: Kms, flag: str) -> None:
    env = kms_token.environ()
    value = env["TATUM_KMS_PKCS11_MODULE" if flag == "--pkcs11Module" else "TATUM_KMS_PKCS11_TOKEN"]
    broken = {"TATUM_KMS_PKCS11_MODULE": "/nonexistent/lib.so"} if flag == "--pkcs11Module" else {
        "TATUM_KMS_PKCS11_TOKEN": "no-such-token"}
    assert kms_token.run("hsm", "init", env=broken).returncode != 0
    assert kms_token.ok("hsm", "init", f"{flag}={value}", env=broken)["keyLabel"] == "tatum-kms-kek"



# -- checkconfig and report ---------------------------------------------------------------------


def test_checkconfig_masks_secrets_and_describes_the_store(kms_token: Kms, tmp_path) -> None:
    env_file = tmp_path / "kms.env"
    env_file.write_text("TATUM_API_KEY=abcdef-0123456789-secretpart-xyz789\nTATUM_KMS_AWS_REGION=eu-west-1\n")
    kms_token.ok("generatemanagedwallet", "ETH")
    result = kms_token.run("checkconfig", "--envFile", str(env_file))
    assert result.returncode == 0, result.stderr
    settings = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in result.stdout.splitlines())}
    assert settings["Environment vars file"] == str(env_file)
    assert settings["Wallet exists"] == "true"
    assert settings["TATUM_KMS_AWS_REGION"] == "eu-west-1"
    assert "secretpart" not in result.stdout and PASSWORD not in result.stdout
    assert settings["TATUM_API_KEY"].startswith("abcdef") and "*" in settings["TATUM_API_KEY"]
    assert settings["Wallet store KDF"].startswith("argon2id")
    assert settings["Wallet store token"] == kms_token.env["TATUM_KMS_PKCS11_TOKEN"]
    assert kms_token.env["TATUM_KMS_PKCS11_PIN"] not in settings["TATUM_KMS_PKCS11_PIN"]


def test_report_classifies_wallets_without_revealing_them(kms: Kms) -> None:
    mnemonic_id = kms.ok("generatemanagedwallet", "BTC", "--testnet")["signatureId"]
    key_id = kms.lines("generatemanagedprivatekeybatch", "ETH", "1")[0]["signatureId"]
    secret = kms.ok("getmanagedwallet", mnemonic_id)["mnemonic"]
    result = kms.run("report", mnemonic_id, key_id, "not-a-wallet")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["wallets"] == {mnemonic_id: {"type": "MNEMONIC", "chain": "BTC", "testnet": True},
                                 key_id: {"type": "PRIVATE_KEY", "chain": "ETH", "testnet": False}}
    assert report["warnings"] == ["No wallet found for signatureId: not-a-wallet"]
    assert report["system"]["store"]["exists"] is True
    assert secret.split()[0] + " " + secret.split()[1] not in result.stdout


def test_report_with_a_wrong_password_is_one_line(kms: Kms) -> None:
    signature_id = kms.ok("generatemanagedwallet", "ETH")["signatureId"]
    kms.fails("report", signature_id, env={"TATUM_KMS_PASSWORD": "wrong"})
