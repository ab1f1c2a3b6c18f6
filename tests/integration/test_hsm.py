"""`hsm` against a real SoftHSM2 token: the key-encryption key, AES key wrap, and every failure a user can meet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_unwrap_with_padding
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive

import hsm
from tests.conftest import ROOT

WRONG_PIN = "wrong-Pin-7Gq2"


@pytest.fixture
def config(softhsm: dict[str, str]) -> hsm.TokenConfig:
    """The session token, with a key label of this test's own so tests never share a key."""
    return hsm.TokenConfig(
        module=softhsm["TATUM_KMS_PKCS11_MODULE"],
        token_label=softhsm["TATUM_KMS_PKCS11_TOKEN"],
        pin=softhsm["TATUM_KMS_PKCS11_PIN"],
        key_label=f"hsm-test-{uuid.uuid4().hex[:12]}",
    )


@contextmanager
def raw_session(config: hsm.TokenConfig) -> Iterator[Any]:
    """A plain python-pkcs11 session on the token, not logged in itself: it sees private objects
    only while an `hsm.Token` holds the process's login, and closing it logs nobody out."""
    token = pkcs11.lib(config.module).get_token(token_label=config.token_label)
    session = token.open(rw=True)
    try:
        yield session
    finally:
        session.close()


def key_object(session: Any, key: hsm.KeyRef) -> Any:
    """The token object behind `key`, found by its CKA_ID."""
    (found,) = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: bytes.fromhex(key.key_id)})
    return found


def session_objects(session: Any) -> list[Any]:
    return list(session.get_objects({Attribute.TOKEN: False}))


def run_python(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` in a fresh interpreter (its own module load and login); it prints one JSON line."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})}, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the key ---------------------------------------------------------------------------------------


def test_key_is_created_once_and_found_again_by_another_process(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token:
        created = token.find_or_create_key()
        again = token.find_or_create_key()
        assert created.created and created.label == config.key_label
        assert again == hsm.KeyRef(config.key_label, created.key_id, created=False)
        assert token.key(created.key_id) == again
        assert len(bytes.fromhex(created.key_id)) == 16

    found = run_python(
        "import json, hsm\n"
        f"config = hsm.TokenConfig({config.module!r}, {config.token_label!r}, {config.pin!r}, {config.key_label!r})\n"
        "with hsm.Token.open(config) as token:\n"
        "    key = token.find_or_create_key()\n"
        "print(json.dumps({'key_id': key.key_id, 'created': key.created}))\n"
    )
    assert found == {"key_id": created.key_id, "created": False}


def test_key_attributes_read_back_from_the_token(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token, raw_session(config) as session:
        key = token.find_or_create_key()
        obj = key_object(session, key)
        assert obj[Attribute.KEY_TYPE] == KeyType.AES and obj[Attribute.VALUE_LEN] == 32
        assert obj[Attribute.LABEL] == config.key_label
        for attribute in (Attribute.TOKEN, Attribute.PRIVATE, Attribute.SENSITIVE, Attribute.ALWAYS_SENSITIVE,
                          Attribute.NEVER_EXTRACTABLE, Attribute.WRAP, Attribute.UNWRAP):
            assert obj[attribute] is True, attribute
        for attribute in (Attribute.EXTRACTABLE, Attribute.MODIFIABLE, Attribute.ENCRYPT, Attribute.DECRYPT,
                          Attribute.SIGN, Attribute.VERIFY, Attribute.DERIVE):
            assert obj[attribute] is False, attribute
        with pytest.raises(AttributeSensitive):
            obj[Attribute.VALUE]


def test_create_key_rotates_and_the_newest_key_wins_the_label(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token:
        first = token.find_or_create_key()
        second = token.create_key()
        assert second.created and second.label == first.label and second.key_id != first.key_id
        assert token.find_or_create_key().key_id == second.key_id
        token.destroy_key(second)
        assert token.find_or_create_key().key_id == first.key_id


def test_a_key_made_for_an_owner_starts_with_its_id_and_is_listed(config: hsm.TokenConfig) -> None:
    owner = os.urandom(hsm.OWNER_BYTES)
    with hsm.Token.open(config) as token:
        first, second = token.create_key(owner=owner), token.create_key(owner=owner)
        other = token.create_key()
        assert first.key_id != second.key_id and len(bytes.fromhex(first.key_id)) == 16
        assert hsm.key_owner(first.key_id) == hsm.key_owner(second.key_id) == owner
        assert hsm.key_owner(other.key_id) != owner and hsm.key_owner("not hex") == b""
        listed = {key.key_id for key in token.keys(config.key_label)}
        assert listed == {first.key_id, second.key_id, other.key_id}
        assert all(key.label == config.key_label for key in token.keys(config.key_label))
        token.destroy_key(second)
        assert {key.key_id for key in token.keys(config.key_label)} == {first.key_id, other.key_id}
        with pytest.raises(ValueError):
            token.create_key(owner=b"short")


def test_config_text_that_is_not_utf8_is_refused_not_crashed(config: hsm.TokenConfig) -> None:
    with pytest.raises(hsm.ModuleNotFound):
        hsm.Token.open(replace(config, module="/usr/lib/\udcff.so"))
    with pytest.raises(hsm.ModuleNotFound):
        hsm.Token.open(replace(config, module="lib\x00.so"))
    with pytest.raises(hsm.WrongPin):
        hsm.Token.open(replace(config, pin="12\udcff34"))


def test_a_weak_key_under_the_label_is_refused_not_used(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token, raw_session(config) as session:
        weak = session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: os.urandom(32),
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
            Attribute.WRAP: True, Attribute.UNWRAP: True, Attribute.LABEL: config.key_label, Attribute.ID: b"\x01" * 16,
        })
        try:
            with pytest.raises(hsm.KeyNotSuitable, match="not a sensitive, non-extractable AES-256"):
                token.find_or_create_key()
            with pytest.raises(hsm.KeyNotSuitable):
                token.key("01" * 16)
        finally:
            weak.destroy()


def test_a_destroyed_key_is_gone(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token:
        key = token.find_or_create_key()
        blob = token.wrap(key, os.urandom(32))
        token.destroy_key(key)
        with pytest.raises(hsm.KeyNotFound, match=key.key_id):
            token.key(key.key_id)
        with pytest.raises(hsm.KeyNotFound):
            token.unwrap(key, blob)
        with pytest.raises(hsm.KeyNotFound):
            token.wrap(key, os.urandom(32))
        with pytest.raises(hsm.KeyNotFound):
            token.destroy_key(key)
        replacement = token.find_or_create_key()
        assert replacement.created and replacement.key_id != key.key_id
    with hsm.Token.open(config) as token, pytest.raises(hsm.KeyNotFound):
        token.key(key.key_id)


# -- wrap and unwrap -------------------------------------------------------------------------------


def test_wrap_unwrap_round_trip_leaves_no_session_objects(config: hsm.TokenConfig) -> None:
    secret = os.urandom(32)
    with hsm.Token.open(config) as token, raw_session(config) as session:
        key = token.find_or_create_key()
        blob = token.wrap(key, secret)
        assert blob[0] in (1, 2, 3) and len(blob) == 1 + 40 and secret not in blob
        assert token.unwrap(key, blob) == secret
        assert session_objects(session) == []
    with hsm.Token.open(config) as token:  # a new session and login open it too
        assert token.unwrap(token.key(key.key_id), blob) == secret


def test_blob_is_standard_aes_key_wrap(config: hsm.TokenConfig) -> None:
    """Checked by an independent RFC 3394/5649 implementation, with a test KEK whose value we know."""
    kek_value, secret = os.urandom(32), os.urandom(32)
    with hsm.Token.open(config) as token, raw_session(config) as session:
        known = session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: kek_value,
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.WRAP: True, Attribute.UNWRAP: True,
            Attribute.LABEL: config.key_label, Attribute.ID: b"\x02" * 16,
        })
        try:
            blob = token.wrap(hsm.KeyRef(config.key_label, "02" * 16), secret)
        finally:
            known.destroy()
    unwrap = {1: aes_key_unwrap, 2: aes_key_unwrap_with_padding, 3: aes_key_unwrap_with_padding}[blob[0]]
    assert unwrap(kek_value, blob[1:]) == secret


def test_unwrap_with_another_key_fails(config: hsm.TokenConfig) -> None:
    secret = os.urandom(32)
    with hsm.Token.open(config) as token:
        first = token.find_or_create_key()
        other = token.create_key()
        blob = token.wrap(first, secret)
        with pytest.raises(hsm.UnwrapFailed, match=other.key_id):
            token.unwrap(other, blob)
        assert token.unwrap(first, blob) == secret


def test_a_modified_blob_never_opens(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token, raw_session(config) as session:
        key = token.find_or_create_key()
        blob = token.wrap(key, os.urandom(32))
        for position in range(1, len(blob)):
            for flip in (0x01, 0x80):
                tampered = bytearray(blob)
                tampered[position] ^= flip
                with pytest.raises(hsm.UnwrapFailed):
                    token.unwrap(key, bytes(tampered))
        for broken in (blob[:-8], blob[:-1], blob + b"\x00" * 8, blob[:1], b"", b"\x00" + blob[1:]):
            with pytest.raises(hsm.UnwrapFailed):
                token.unwrap(key, broken)
        assert session_objects(session) == []


def test_the_tag_byte_chooses_the_mechanism(config: hsm.TokenConfig) -> None:
    """RFC 3394 output read as RFC 5649 fails its integrity check; a mechanism the token lacks is named."""
    with hsm.Token.open(config) as token:
        key = token.find_or_create_key()
        blob = token.wrap(key, os.urandom(32))
        other_rfc = {1: 2, 2: 1, 3: 1}[blob[0]]
        with pytest.raises(hsm.UnwrapFailed):
            token.unwrap(key, bytes([other_rfc]) + blob[1:])
        if blob[0] != 3:  # SoftHSM2 does not implement CKM_AES_KEY_WRAP_KWP
            with pytest.raises(hsm.MechanismNotSupported, match="AES_KEY_WRAP_KWP"):
                token.unwrap(key, b"\x03" + blob[1:])


def test_secrets_key_wrap_cannot_take_whole_are_refused(config: hsm.TokenConfig) -> None:
    with hsm.Token.open(config) as token:
        key = token.find_or_create_key()
        for bad in (b"", os.urandom(8), os.urandom(31), os.urandom(72)):
            with pytest.raises(ValueError):
                token.wrap(key, bad)


# -- opening: module, token, PIN -------------------------------------------------------------------


def test_missing_or_bogus_module_is_module_not_found(config: hsm.TokenConfig, tmp_path: Path) -> None:
    with pytest.raises(hsm.ModuleNotFound, match="/nonexistent/libpkcs11.so"):
        hsm.Token.open(replace(config, module="/nonexistent/libpkcs11.so"))
    bogus = tmp_path / "libbogus.so"
    bogus.write_text("not a shared library\n")
    with pytest.raises(hsm.ModuleNotFound, match="Cannot load"):
        hsm.Token.open(replace(config, module=str(bogus)))
    with pytest.raises(hsm.ModuleNotFound):
        hsm.Token.open(replace(config, module=""))


def test_unknown_token_label_lists_the_labels_present(config: hsm.TokenConfig) -> None:
    with pytest.raises(hsm.TokenNotFound) as raised:
        hsm.Token.open(replace(config, token_label="no-such-token"))
    assert "'no-such-token'" in str(raised.value) and f"'{config.token_label}'" in str(raised.value)


def test_wrong_pin(config: hsm.TokenConfig) -> None:
    with pytest.raises(hsm.WrongPin) as raised:  # one real C_Login with a wrong PIN
        hsm.Token.open(replace(config, pin=WRONG_PIN))
    assert config.token_label in str(raised.value) and WRONG_PIN not in str(raised.value)
    with hsm.Token.open(config) as token:  # the token is not locked by it
        token.find_or_create_key()


def test_tokens_open_together_share_one_login(config: hsm.TokenConfig) -> None:
    """Opening a second Token in the process must neither fail nor log the first one out when it closes."""
    secret = os.urandom(32)
    with hsm.Token.open(config) as outer:
        key = outer.find_or_create_key()
        with hsm.Token.open(config) as inner:
            blob = inner.wrap(inner.key(key.key_id), secret)
        with pytest.raises(hsm.WrongPin):  # checked against the login held, without a try on the token
            hsm.Token.open(replace(config, pin=WRONG_PIN))
        assert outer.unwrap(key, blob) == secret
    with raw_session(config) as session:  # after the last close the process is logged out again
        assert list(session.get_objects({Attribute.ID: bytes.fromhex(key.key_id)})) == []


def test_the_pin_appears_in_no_message_repr_or_traceback(tmp_path: Path) -> None:
    """In a process of its own on a token of its own, with a PIN that cannot occur by chance."""
    pin = "Pin-SECRET-93xq"
    conf = subprocess.check_output(
        ["bash", str(ROOT / "softhsm-config" / "make-token.sh"), str(tmp_path / "softhsm"), "pin-check"],
        env={**os.environ, "TATUM_KMS_PKCS11_PIN": pin}, text=True,
    ).strip()
    from tests.conftest import softhsm_module

    code = f"""
import json, os, traceback
from dataclasses import replace
import hsm
config = hsm.TokenConfig({softhsm_module()!r}, "pin-check", {pin!r})
seen = {{"texts": [repr(config), str(config)], "messages": [], "errors": []}}
def attempt(action):
    try:
        action()
    except hsm.HsmError as exc:
        seen["errors"].append(type(exc).__name__)
        seen["messages"].append(str(exc))
        seen["texts"] += [repr(exc), "".join(traceback.format_exception(exc))]
attempt(lambda: hsm.Token.open(replace(config, module="/nonexistent/libpkcs11.so")))
attempt(lambda: hsm.Token.open(replace(config, token_label="absent")))
attempt(lambda: hsm.Token.open(replace(config, pin={pin[::-1]!r})))
with hsm.Token.open(config) as token:
    seen["texts"].append(repr(token))
    key = token.find_or_create_key()
    other = token.create_key()
    blob = token.wrap(key, os.urandom(32))
    attempt(lambda: token.unwrap(other, blob))
    attempt(lambda: token.unwrap(key, blob[:-1] + bytes([blob[-1] ^ 1])))
    token.destroy_key(other)
    attempt(lambda: token.key(other.key_id))
    with hsm.Token.open(config) as inner:
        attempt(lambda: hsm.Token.open(replace(config, pin="x" + {pin!r})))
print(json.dumps(seen))
"""
    seen = run_python(code, env={"SOFTHSM2_CONF": conf})
    assert seen["errors"] == ["ModuleNotFound", "TokenNotFound", "WrongPin", "UnwrapFailed", "UnwrapFailed",
                              "KeyNotFound", "WrongPin"]
    for text in seen["texts"] + seen["messages"]:
        assert pin not in text and pin[::-1] not in text
    assert all("\n" not in message for message in seen["messages"])
