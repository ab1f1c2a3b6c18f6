"""`changepassword` and `hsm rotate`: O(1) rewrap, crash-safe, and afterwards only the new secret opens."""

from __future__ import annotations

import json
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import hsm
from tests.kms_process import KMS_BIN, PASSWORD, Kms
from tests.read_only import read_only


def opens_with(kms: Kms, password: str) -> bool:
    return kms.run("export", env={"TATUM_KMS_PASSWORD": password}).returncode == 0


def test_changepassword_rewraps_and_only_the_new_password_opens(kms: Kms) -> None:
    ids = [kms.ok("generatemanagedwallet", "ETH")["signatureId"] for _ in range(3)]
    before = kms.ok("export")
    kms.ok("changepassword", env={"TATUM_KMS_NEW_PASSWORD": "the new one"})
    assert "Wrong password" in kms.fails("export")
    assert kms.ok("export", env={"TATUM_KMS_PASSWORD": "the new one"}) == before
    assert list(before) == ids


def test_changepassword_reads_the_new_password_from_stdin(kms: Kms) -> None:
    kms.ok("generatemanagedwallet", "BTC")
    kms.ok("changepassword", input="from stdin\n")
    assert opens_with(kms, "from stdin") and not opens_with(kms, PASSWORD)


def test_changepassword_with_wrong_current_password_changes_nothing(kms: Kms) -> None:
    kms.ok("generatemanagedwallet", "BTC")
    before = kms.store.read_bytes()
    kms.fails("changepassword", env={"TATUM_KMS_PASSWORD": "wrong", "TATUM_KMS_NEW_PASSWORD": "x"})
    assert kms.store.read_bytes() == before


def test_changepassword_killed_at_any_instant_leaves_old_or_new(kms: Kms) -> None:
    assert len(kms.lines("generatemanagedprivatekeybatch", "ETH", "50")) == 50
    current = PASSWORD
    rng = random.Random(7)
    for attempt in range(12):
        new = f"password-{attempt}"
        proc = kms.start("changepassword", env={"TATUM_KMS_PASSWORD": current, "TATUM_KMS_NEW_PASSWORD": new})
        time.sleep(rng.uniform(0.05, 0.6))  # the two KDF runs take ~0.25 s: before, during and after the write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        old_opens, new_opens = opens_with(kms, current), opens_with(kms, new)
        assert old_opens != new_opens, f"attempt {attempt}: old opens {old_opens}, new opens {new_opens}"
        current = new if new_opens else current
    assert len(kms.ok("export", env={"TATUM_KMS_PASSWORD": current})) == 50


def test_hsm_rotate_moves_to_a_new_key_and_retires_the_old(kms_token: Kms, tmp_path) -> None:
    kms_token.ok("hsm", "init")
    sid = kms_token.ok("generatemanagedwallet", "ETH")["signatureId"]
    wallet = kms_token.ok("getmanagedwallet", sid)
    backup = tmp_path / "backup.dat"
    shutil.copy(kms_token.store, backup)

    rotated = kms_token.ok("hsm", "rotate")
    assert rotated["retiredKeyId"] and rotated["keyId"] != rotated["retiredKeyId"]
    assert kms_token.ok("getmanagedwallet", sid) == wallet

    env = kms_token.environ()
    config = hsm.TokenConfig(env["TATUM_KMS_PKCS11_MODULE"], env["TATUM_KMS_PKCS11_TOKEN"], env["TATUM_KMS_PKCS11_PIN"])
    with hsm.Token.open(config) as token:
        assert token.key(rotated["keyId"]).key_id == rotated["keyId"]
        try:
            token.key(rotated["retiredKeyId"])
            raise AssertionError("the retired key is still on the token")
        except hsm.KeyNotFound:
            pass
    # A copy of the store taken before the rotation no longer opens: its key is gone, and it says which.
    assert rotated["retiredKeyId"] in kms_token.fails("getmanagedwallet", sid, f"--path={backup}")


def test_hsm_rotate_binds_a_password_only_store_to_the_token(kms_token: Kms) -> None:
    no_token = {"TATUM_KMS_PKCS11_MODULE": ""}
    sid = kms_token.ok("generatemanagedwallet", "BTC", env=no_token)["signatureId"]
    assert kms_token.ok("getmanagedwallet", sid, env=no_token)
    kms_token.ok("hsm", "rotate")
    assert "bound to the PKCS#11 token" in kms_token.fails("getmanagedwallet", sid, env=no_token)
    assert kms_token.ok("getmanagedwallet", sid)["chain"] == "BTC"


def test_hsm_rotate_killed_at_any_instant_leaves_a_store_that_opens(kms_token: Kms) -> None:
    assert len(kms_token.lines("generatemanagedprivatekeybatch", "ETH", "20")) == 20
    rng = random.Random(11)
    for _ in range(8):
        proc = kms_token.start("hsm", "rotate")
        time.sleep(rng.uniform(0.05, 0.7))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(kms_token.ok("export")) == 20


# -- one key per store (issue 9, item 1) -----------------------------------------------------------


def token_config(kms: Kms) -> hsm.TokenConfig:
    env = kms.environ()
    return hsm.TokenConfig(env["TATUM_KMS_PKCS11_MODULE"], env["TATUM_KMS_PKCS11_TOKEN"], env["TATUM_KMS_PKCS11_PIN"])


def on_token(kms: Kms, key_id: str) -> bool:
    with hsm.Token.open(token_config(kms)) as token:
        try:
            token.key(key_id)
            return True
        except hsm.KeyNotFound:
            return False


def store_key(kms: Kms, path: Path | None = None) -> str:
    """The id of the token key the store is bound to, as `hsm init` reports it for an existing store."""
    init = kms.ok("hsm", "init", *([f"--path={path}"] if path else []))
    assert init["created"] is False
    return init["keyId"]


def test_two_stores_on_one_token_rotated_in_turn_both_still_open(kms_token: Kms, tmp_path: Path) -> None:
    first = kms_token
    second = Kms(tmp_path / "second-home", env=dict(kms_token.env))
    second.home.mkdir()
    first_id = first.ok("generatemanagedwallet", "ETH")["signatureId"]
    second_id = second.ok("generatemanagedwallet", "BTC")["signatureId"]
    first_wallet, second_wallet = first.ok("getmanagedwallet", first_id), second.ok("getmanagedwallet", second_id)
    keys = {"first": store_key(first), "second": store_key(second)}
    assert keys["first"] != keys["second"]  # the same token and key label, but a key of each store's own
    for name, kms, other, other_id, other_wallet in (
            ("first", first, second, second_id, second_wallet), ("second", second, first, first_id, first_wallet)):
        rotated = kms.ok("hsm", "rotate")
        assert rotated["retiredKeyId"] == keys[name] and rotated["keyId"] != keys[name]
        assert rotated["keyLabel"] == "tatum-kms-kek"
        assert not on_token(kms, keys[name])
        keys[name] = rotated["keyId"]
        assert other.ok("getmanagedwallet", other_id) == other_wallet
    assert first.ok("getmanagedwallet", first_id) == first_wallet
    assert on_token(first, keys["first"]) and on_token(second, keys["second"])


def test_a_store_whose_key_is_gone_names_the_key_it_needs(kms_token: Kms) -> None:
    init = kms_token.ok("hsm", "init")
    assert init["created"] is True
    signature_id = kms_token.ok("generatemanagedwallet", "ETH")["signatureId"]
    with hsm.Token.open(token_config(kms_token)) as token:
        token.destroy_key(token.key(init["keyId"]))
    before = kms_token.store.read_bytes()
    for args in (["getmanagedwallet", signature_id], ["export"], ["hsm", "init"], ["hsm", "rotate"]):
        line = kms_token.fails(*args)
        assert init["keyId"] in line and "tatum-kms-kek" in line and kms_token.env["TATUM_KMS_PKCS11_TOKEN"] in line
    assert kms_token.store.read_bytes() == before


def test_changepassword_keeps_the_store_on_its_own_key(kms_token: Kms, tmp_path: Path) -> None:
    kms_token.ok("generatemanagedwallet", "ETH")
    key = store_key(kms_token)
    kms_token.ok("changepassword", env={"TATUM_KMS_NEW_PASSWORD": "changed"})
    assert store_key(kms_token) == key
    other = Kms(tmp_path / "other", env=dict(kms_token.env))
    other.home.mkdir()
    other.ok("generatemanagedwallet", "ETH")  # a newer key with the same label now exists on the token...
    kms_token.ok("changepassword", env={"TATUM_KMS_PASSWORD": "changed", "TATUM_KMS_NEW_PASSWORD": "again"})
    assert store_key(kms_token) == key  # ...and is not picked up by label
    assert kms_token.ok("export", env={"TATUM_KMS_PASSWORD": "again"})


def test_a_key_shared_by_an_earlier_build_is_left_on_the_token_at_rotation(kms_token: Kms) -> None:
    """Earlier builds bound every store to the newest key with the label: such a key may serve other stores."""
    from dataclasses import replace

    from kms import envelope
    from kms.store import WalletStore

    signature_id = kms_token.ok("generatemanagedwallet", "ETH")["signatureId"]
    own_key = store_key(kms_token)
    env = kms_token.environ()
    settings = envelope.TokenSettings(env["TATUM_KMS_PKCS11_MODULE"], env["TATUM_KMS_PKCS11_TOKEN"],
                                      "tatum-kms-kek", lambda: env["TATUM_KMS_PKCS11_PIN"])
    with hsm.Token.open(token_config(kms_token)) as token:
        shared = token.create_key("tatum-kms-kek")  # no owner: an id as earlier builds made them
    with WalletStore.open(kms_token.store, PASSWORD, settings) as store:  # bind the store to it, as they did
        header = replace(store.header, token=replace(store.header.token, key_id=shared.key_id))
        old_header = envelope.seal_dek(header, store._dek, PASSWORD, settings)
    with sqlite3.connect(kms_token.store) as db:
        db.execute("UPDATE meta SET value = ? WHERE name = 'header'", (old_header.to_json(),))
    db.close()
    assert store_key(kms_token) == shared.key_id
    wallet = kms_token.ok("getmanagedwallet", signature_id)

    result = kms_token.run("hsm", "rotate")
    assert result.returncode == 0, result.stderr
    rotated = json.loads(result.stdout)
    assert rotated["retiredKeyId"] is None and rotated["keptKeyId"] == shared.key_id
    assert "left on the token" in result.stderr
    assert on_token(kms_token, shared.key_id)
    assert kms_token.ok("getmanagedwallet", signature_id) == wallet
    with hsm.Token.open(token_config(kms_token)) as token:
        token.destroy_key(token.key(shared.key_id))
        token.destroy_key(token.key(own_key))


def test_failed_rotations_and_creations_leave_no_key_behind(kms_token: Kms, tmp_path: Path) -> None:
    label = {"TATUM_KMS_PKCS11_KEY": f"no-leftovers-{tmp_path.name}"[:60]}

    def labelled() -> list[str]:
        with hsm.Token.open(token_config(kms_token)) as token:
            return [key.key_id for key in token.keys(label["TATUM_KMS_PKCS11_KEY"])]

    # Four processes create the store at once: one wins, the others destroy the keys they made.
    writers = [kms_token.start("generatemanagedwallet", "ETH", env=label) for _ in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    assert len(kms_token.ok("export")) == 4
    assert labelled() == [store_key(kms_token)]
    # A rotation with the wrong password fails before any key is made; on a read-only store too.
    kms_token.fails("hsm", "rotate", env={**label, "TATUM_KMS_PASSWORD": "wrong"})
    with read_only(kms_token.store.parent) as (how, prefix):
        refused = subprocess.run([*prefix, KMS_BIN, "hsm", "rotate"], capture_output=True, text=True, timeout=60,
                                 env=kms_token.environ(label))
        assert refused.returncode == 1 and "read-only" in refused.stderr, (how, refused.stderr)
    assert labelled() == [store_key(kms_token)]
    # A creation that fails after its key was made (the file size limit hit while writing) destroys the key.
    full = subprocess.run([KMS_BIN, "generatemanagedwallet", "ETH", f"--path={tmp_path}/full/wallet.dat"],
                          capture_output=True, text=True, timeout=60, env=kms_token.environ(label),
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)))
    assert full.returncode == 1 and "could not be written" in full.stderr, full.stderr
    assert not (tmp_path / "full" / "wallet.dat").exists()
    assert labelled() == [store_key(kms_token)]
