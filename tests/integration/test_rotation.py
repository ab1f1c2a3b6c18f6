"""`changepassword` and `hsm rotate`: O(1) rewrap, crash-safe, and afterwards only the new secret opens."""

from __future__ import annotations

import random
import shutil
import signal
import time

import hsm
from tests.kms_process import PASSWORD, Kms


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
    # A copy of the store taken before the rotation no longer opens: its key is gone.
    assert "token" in kms_token.fails("getmanagedwallet", sid, f"--path={backup}").lower()


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
