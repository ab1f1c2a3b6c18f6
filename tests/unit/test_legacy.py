"""Reading the original's wallet.dat: files made by the real `openssl enc -aes-256-cbc -md md5 -a -A`."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kms.errors import StoreError, WrongPassword
from kms.legacy import decrypt_legacy, evp_bytes_to_key, is_legacy_file, parse_export
from tests.legacy_files import WALLET_SHAPES, openssl_encrypt, write_legacy_wallet_dat

PASSWORD = "legacy pässwörd ✓ 2019"


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wallet.dat of the original holding one wallet of every shape."""
    return write_legacy_wallet_dat(tmp_path_factory.mktemp("legacy") / "wallet.dat", WALLET_SHAPES, PASSWORD)


@pytest.mark.parametrize("signature_id", list(WALLET_SHAPES))
def test_each_wallet_shape_comes_back_exactly(tmp_path: Path, signature_id: str) -> None:
    one = {signature_id: WALLET_SHAPES[signature_id]}
    path = write_legacy_wallet_dat(tmp_path / "wallet.dat", one, PASSWORD)
    assert is_legacy_file(path)
    assert decrypt_legacy(path.read_bytes(), PASSWORD) == one


def test_a_store_of_every_shape_comes_back_with_ids_fields_and_flags(legacy_file: Path) -> None:
    wallets = decrypt_legacy(legacy_file.read_text(), PASSWORD)
    assert wallets == WALLET_SHAPES
    assert list(wallets) == list(WALLET_SHAPES)  # order kept, as the original's export shows it
    assert all(isinstance(w["testnet"], bool) for w in wallets.values())


def test_a_trailing_newline_added_by_an_editor_is_harmless(tmp_path: Path, legacy_file: Path) -> None:
    edited = tmp_path / "wallet.dat"
    edited.write_bytes(legacy_file.read_bytes() + b"\n")
    assert is_legacy_file(edited)
    assert decrypt_legacy(edited.read_bytes(), PASSWORD) == WALLET_SHAPES


def test_an_emptied_store_reads_as_no_wallets(tmp_path: Path) -> None:
    path = write_legacy_wallet_dat(tmp_path / "wallet.dat", {}, PASSWORD)  # after removewallet of the last one
    assert decrypt_legacy(path.read_bytes(), PASSWORD) == {}


def test_wrong_password_is_one_clear_line_without_either_password(legacy_file: Path) -> None:
    with pytest.raises(WrongPassword) as caught:
        decrypt_legacy(legacy_file.read_bytes(), "not the legacy password")
    message = str(caught.value)
    assert message.startswith("Wrong legacy password")
    assert "\n" not in message
    assert "not the legacy password" not in message and PASSWORD not in message


def test_many_wrong_passwords_are_all_reported_as_wrong_not_as_damage(legacy_file: Path) -> None:
    data = legacy_file.read_bytes()
    for n in range(200):
        with pytest.raises(WrongPassword):
            decrypt_legacy(data, f"guess-{n}")


@pytest.mark.parametrize("keep_chars", [64, 128, 200])  # 64 and 128 end on an AES block, 200 mid-base64
def test_a_truncated_file_is_a_store_error_not_a_wrong_password(legacy_file: Path, keep_chars: int) -> None:
    truncated = legacy_file.read_bytes()[:keep_chars]
    with pytest.raises(StoreError) as caught:
        decrypt_legacy(truncated, PASSWORD)
    assert not isinstance(caught.value, WrongPassword)
    assert "truncated" in str(caught.value)


def test_a_file_cut_inside_the_salt_header_is_a_store_error(legacy_file: Path) -> None:
    with pytest.raises(StoreError, match="Salted__"):
        decrypt_legacy(legacy_file.read_bytes()[:12], PASSWORD)


def test_text_that_is_not_base64_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="base64"):
        decrypt_legacy("U2FsdGVkX1!!not base64 at all", PASSWORD)


def test_base64_without_the_salted_header_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="Salted__"):
        decrypt_legacy(base64.b64encode(b"Pickled_" + bytes(40)), PASSWORD)


def test_json_that_is_not_a_wallet_map_is_refused_naming_the_id_only(tmp_path: Path) -> None:
    bad = {"5fa0b8c1-0000-4000-8000-000000000006": {"privateKey": "0xdeadbeefsecret", "chain": "ETH"}}
    path = write_legacy_wallet_dat(tmp_path / "wallet.dat", bad, PASSWORD)
    with pytest.raises(StoreError) as caught:
        decrypt_legacy(path.read_bytes(), PASSWORD)
    assert "5fa0b8c1-0000-4000-8000-000000000006" in str(caught.value) and "testnet" in str(caught.value)
    assert "deadbeef" not in str(caught.value)


def test_is_legacy_file_tells_the_formats_apart(tmp_path: Path, legacy_file: Path) -> None:
    sqlite_store = tmp_path / "ours.dat"
    sqlite3.connect(sqlite_store).execute("CREATE TABLE t (x)").connection.close()
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(WALLET_SHAPES, indent=2))
    assert is_legacy_file(legacy_file)
    assert not is_legacy_file(sqlite_store)
    assert not is_legacy_file(exported)
    assert not is_legacy_file(tmp_path / "missing.dat")
    assert not is_legacy_file(tmp_path)  # a directory


@settings(max_examples=25, deadline=None)
@given(password=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                        max_size=40),
       payload=st.dictionaries(st.uuids().map(str), st.fixed_dictionaries(
           {"privateKey": st.text(max_size=70), "chain": st.sampled_from(["ETH", "BTC", "TRON"]),
            "testnet": st.booleans()}), max_size=4))
def test_any_password_and_content_decrypts_as_openssl_encrypted_it(password: str, payload: dict) -> None:
    payload = {k: v for k, v in payload.items() if v["privateKey"]}
    data = openssl_encrypt(json.dumps(payload).encode(), password)
    assert decrypt_legacy(data, password) == payload


def test_evp_bytes_to_key_matches_openssl_printing_its_key_and_iv() -> None:
    import subprocess

    salt = bytes.fromhex("0102030405060708")
    out = subprocess.run(
        ["openssl", "enc", "-aes-256-cbc", "-md", "md5", "-P", "-S", salt.hex(), "-pass", "env:PW"],
        capture_output=True, text=True, check=True, env={"PW": "secret", "PATH": "/usr/bin:/bin"},
    ).stdout
    fields = {name.strip(): value.strip() for name, value in (line.split("=", 1) for line in out.splitlines())}
    derived = evp_bytes_to_key(b"secret", salt)
    assert derived[:32].hex().upper() == fields["key"]
    assert derived[32:].hex().upper() == fields["iv"]


def test_a_thousand_wallet_store_decrypts_quickly(tmp_path: Path) -> None:
    many = {f"{n:08d}-0000-4000-8000-000000000000": {"privateKey": f"0x{n:064x}", "chain": "ETH", "testnet": False}
            for n in range(1000)}
    path = write_legacy_wallet_dat(tmp_path / "wallet.dat", many, PASSWORD)
    started = time.perf_counter()
    assert decrypt_legacy(path.read_bytes(), PASSWORD) == many
    assert time.perf_counter() - started < 0.5


# -- export JSON --------------------------------------------------------------------------------


def test_export_json_of_every_shape_is_accepted_as_is() -> None:
    assert parse_export(json.dumps(WALLET_SHAPES, indent=2)) == WALLET_SHAPES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "neither an original wallet.dat nor JSON"),
        ("[1, 2]", "not an object of wallets"),
        ('{"id-1": "0xsecretvalue"}', "id-1 in the JSON to import is not an object"),
        ('{"id-2": {"privateKey": "0xsecretvalue", "testnet": false}}', "id-2 in the JSON to import has no chain"),
        ('{"id-3": {"privateKey": "0xsecretvalue", "chain": "ETH", "testnet": "false"}}', "boolean testnet"),
        ('{"id-4": {"xpub": "xpubsecretvalue", "chain": "BTC", "testnet": false}}', "none of mnemonic"),
        ('{"id-5": {"mnemonic": ["secretvalue"], "chain": "BTC", "testnet": false}}', "'mnemonic' is not a string"),
    ],
)
def test_export_json_of_the_wrong_shape_says_which_wallet_and_what_without_values(text: str, expected: str) -> None:
    with pytest.raises(StoreError) as caught:
        parse_export(text)
    assert expected in str(caught.value)
    assert "secretvalue" not in str(caught.value)


def test_a_deeply_nested_or_non_text_original_file_is_one_clear_error() -> None:
    nested = openssl_encrypt(b"[" * 100_000 + b"]" * 100_000, PASSWORD)
    with pytest.raises(StoreError, match="damaged"):
        decrypt_legacy(nested, PASSWORD)
    with pytest.raises(WrongPassword, match="not valid UTF-8"):
        decrypt_legacy(nested, "bytes \udcff that are not text")
    not_text = openssl_encrypt(b'{"a": "\xff\xfe"}', PASSWORD)
    with pytest.raises((StoreError, WrongPassword)):  # CryptoJS never writes such bytes: which error is moot
        decrypt_legacy(not_text, PASSWORD)


@pytest.mark.parametrize("wallets", [
    {"\udcff-id": {"chain": "ETH", "testnet": False, "privateKey": "0x1"}},
    {"": {"chain": "ETH", "testnet": False, "privateKey": "0x1"}},
    {"id\nforged": {"chain": "ETH", "testnet": False, "privateKey": "0x1"}},
    {"x" * 257: {"chain": "ETH", "testnet": False, "privateKey": "0x1"}},
    {"ok-id": {"chain": "ETH\udcff", "testnet": False, "privateKey": "0x1"}},
    {"ok-id": {"chain": "E\nTH", "testnet": False, "privateKey": "0x1"}},
])
def test_ids_and_chains_the_store_cannot_hold_are_refused_by_import(wallets: dict) -> None:
    with pytest.raises(StoreError):
        parse_export(json.dumps(wallets))


def test_deeply_nested_export_json_is_refused() -> None:
    with pytest.raises(StoreError, match="nested too deeply"):
        parse_export("[" * 100_000 + "]" * 100_000)
