"""`checkconfig` text and `report` JSON: the original's layout and masking, secrets shown as nothing."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from kms import __version__
from kms.settings_report import check_config_text, hide_api_key, hide_value, report
from kms.unlock import PasswordSource

STORE = {"exists": True, "format": 2, "kdf": "argon2id m=65536 t=3 p=4", "token": "tatum-kms-hsm",
         "tokenKey": "tatum-kms-kek", "tokenKeyId": "0123456789abcdef0011223344556677"}
ENV = {
    "TATUM_API_KEY": "4bd1c6a0-tatum-api-key-6f2e9b11",
    "TATUM_KMS_PASSWORD": "correct horse battery staple",
    "TATUM_KMS_VGS_ALIAS": "tok_live_9xKzQ",
    "TATUM_KMS_VGS_USERNAME": "US7ZqXkYabc",
    "TATUM_KMS_VGS_PASSWORD": "vgs-api-password",
    "TATUM_KMS_AZURE_VAULTURL": "tatumkms.vault.azure.net",
    "TATUM_KMS_AWS_REGION": "eu-central-1",
    "TATUM_KMS_AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "TATUM_KMS_AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "TATUM_KMS_AWS_SECRET_NAME": "tatum/kms",
    "TATUM_KMS_AWS_SECRET_KEY": "password",
    "TATUM_KMS_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
    "TATUM_KMS_PKCS11_TOKEN": "tatum-kms-hsm",
    "TATUM_KMS_PKCS11_PIN": "4321",
    "AZURE_CLIENT_SECRET": "azure-app-secret",
}
SECRETS = ("TATUM_KMS_PASSWORD", "TATUM_KMS_VGS_PASSWORD", "TATUM_KMS_AWS_SECRET_ACCESS_KEY", "TATUM_KMS_PKCS11_PIN",
           "AZURE_CLIENT_SECRET")


def shown(text: str) -> dict[str, str]:
    """checkconfig's lines as label -> value."""
    return {line.split(":", 1)[0].rstrip(): line.split(": ", 1)[1] for line in text.splitlines()}


def config_text(env: dict[str, str] = ENV, **overrides: object) -> str:
    options: dict = {"path": "/home/op/.tatumrc/wallet.dat", "env_file": "/home/op/.tatumrc/.env",
                     "source": PasswordSource.PROMPT, "store_info": STORE, **overrides}
    return check_config_text(env, **options)


def test_checkconfig_starts_with_the_originals_lines_in_its_layout() -> None:
    lines = config_text().splitlines()
    assert lines[:6] == [
        f"Version                          : {__version__}",
        "Wallet file path                 : /home/op/.tatumrc/wallet.dat",
        "Wallet exists                    : true",
        "Wallet store type                : LOCAL",
        "Environment vars file            : /home/op/.tatumrc/.env",
        "TATUM_API_KEY                    : 4bd1c6" + "*" * 19 + "2e9b11",
    ]
    labels = [line.split(":", 1)[0].rstrip() for line in lines]
    assert labels[6:19] == [
        "TATUM_KMS_PASSWORD", "TATUM_KMS_VGS_ALIAS", "TATUM_KMS_VGS_USERNAME", "TATUM_KMS_VGS_PASSWORD",
        "TATUM_KMS_AZURE_SECRETVERSION", "TATUM_KMS_AZURE_SECRETNAME", "TATUM_KMS_AZURE_VAULTURL",
        "TATUM_KMS_AWS_REGION", "TATUM_KMS_AWS_ACCESS_KEY_ID", "TATUM_KMS_AWS_SECRET_ACCESS_KEY",
        "TATUM_KMS_AWS_SECRET_NAME", "TATUM_KMS_AWS_SECRET_KEY", "TATUM_KMS_DEBUG_MODE",
    ]
    assert all(line[33:35] == ": " for line in lines)


@pytest.mark.parametrize("name", SECRETS)
def test_password_like_values_show_no_character_and_no_length(name: str) -> None:
    value = shown(config_text())[name]
    assert value == "********"
    assert not set(ENV[name]) & set(value)
    longer = shown(config_text({**ENV, name: ENV[name] * 3}))[name]
    assert longer == value


def test_identifiers_show_their_first_six_characters_as_the_original() -> None:
    values = shown(config_text())
    assert values["TATUM_KMS_VGS_ALIAS"] == "tok_li" + "*" * 8
    assert values["TATUM_KMS_AWS_ACCESS_KEY_ID"] == "AKIAIO" + "*" * 14
    assert values["TATUM_KMS_AZURE_VAULTURL"] == "tatumk" + "*" * 18
    assert values["TATUM_KMS_AWS_SECRET_KEY"] == "passwo**"
    assert values["TATUM_KMS_AWS_REGION"] == "eu-central-1"  # shown in full, as the original


def test_unset_values_read_n_a() -> None:
    values = shown(config_text({}, env_file=None, store_info={"exists": False}))
    assert values["Wallet exists"] == "false"
    assert values["Environment vars file"] == "N/A"
    for name in ("TATUM_API_KEY", "TATUM_KMS_PASSWORD", "TATUM_KMS_AWS_REGION", "TATUM_KMS_DEBUG_MODE",
                 "TATUM_KMS_PKCS11_MODULE", "TATUM_KMS_PKCS11_PIN", "Wallet store format", "Wallet store KDF"):
        assert values[name] == "N/A", name
    assert values["Wallet store token"] == "none (password only)"


def test_store_format_kdf_token_and_pkcs11_settings_are_listed() -> None:
    values = shown(config_text(source=PasswordSource.AWS))
    assert values["Wallet store type"] == "AWS"
    assert values["Wallet store format"] == "2"
    assert values["Wallet store KDF"] == "argon2id m=65536 t=3 p=4"
    assert values["Wallet store token"] == "tatum-kms-hsm"
    assert values["Wallet store token key"] == "tatum-kms-kek (id 0123456789abcdef0011223344556677)"
    assert values["TATUM_KMS_PKCS11_MODULE"] == "/usr/lib/softhsm/libsofthsm2.so"
    assert values["TATUM_KMS_PKCS11_TOKEN"] == "tatum-kms-hsm"
    assert values["TATUM_KMS_PKCS11_KEY"] == "N/A"


def test_no_secret_value_appears_anywhere_in_checkconfig() -> None:
    text = config_text()
    for name in SECRETS:
        assert ENV[name] not in text
        assert ENV[name][:4] not in text.replace(ENV["TATUM_KMS_PKCS11_MODULE"], "")


def test_api_key_shows_its_first_and_last_six_characters() -> None:
    key = "0123456789abcdefghijKLMNOP"
    assert hide_api_key(key) == "012345" + "*" * 14 + "KLMNOP"  # the original showed "JKLMNO", one short
    assert hide_api_key("short-key") == "*********"
    assert hide_api_key(None) == hide_api_key("") == "N/A"


def test_the_readme_says_how_checkconfig_masks_the_api_key() -> None:
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    claims = [sentence for sentence in readme.split(". ") if "API key's" in sentence and "checkconfig" in sentence]
    assert claims and all("first and last six characters" in claim for claim in claims), claims
    key = "abcdef" + "0123456789" * 3 + "uvwxyz"
    values = shown(config_text({"TATUM_API_KEY": key}))
    assert values["TATUM_API_KEY"] == "abcdef" + "*" * 30 + "uvwxyz"


def test_values_cannot_forge_lines_or_fail_to_print() -> None:
    text = config_text({"TATUM_KMS_AWS_REGION": "eu\nTATUM_KMS_PASSWORD               : hunter2",
                        "TATUM_API_URL": "http://x/\udcff"})
    assert len(text.splitlines()) == len(config_text({}).splitlines())
    assert shown(text)["TATUM_KMS_AWS_REGION"] == "eu\\nTATUM_KMS_PASSWORD               : hunter2"
    assert shown(text)["TATUM_API_URL"] == "http://x/\\udcff"
    text.encode("utf-8")


def test_hide_value_edges() -> None:
    assert hide_value(None) == hide_value("") == ""
    assert hide_value("abcdefghijkl") == "************"  # exactly start + end: nothing shown
    assert hide_value("abcdefghijklm") == "abcdef*hijklm"
    assert hide_value("abcdefgh", 6, 0) == "abcdef**"


# -- report ---------------------------------------------------------------------------------------

WALLETS = {
    "id-mnemonic": {"mnemonic": "quantum tobacco key", "xpub": "xpub6Dtev", "chain": "BTC", "testnet": False},
    "id-key": {"privateKey": "0x4874827a55d87f23", "chain": "ETH", "testnet": True},
    "id-secret": {"secret": "SAAQEAYEAUDAOCAJ", "address": "GB43KVRO", "chain": "XLM", "testnet": False},
    "id-missing": None,
}


def test_report_has_the_originals_shape_and_types() -> None:
    result = report(ENV, path="/w.dat", source=PasswordSource.VGS, store_info=STORE, wallets=WALLETS)
    assert result == {
        "system": {
            "kmsVersion": __version__,
            "pythonVersion": platform.python_version(),
            "store": {"type": "VGS", "exists": True, "path": "/w.dat", "format": 2,
                      "kdf": "argon2id m=65536 t=3 p=4", "token": "tatum-kms-hsm"},
        },
        "wallets": {
            "id-mnemonic": {"type": "MNEMONIC", "chain": "BTC", "testnet": False},
            "id-key": {"type": "PRIVATE_KEY", "chain": "ETH", "testnet": True},
            "id-secret": {"type": "SECRET", "chain": "XLM", "testnet": False},
        },
        "apiKey": hide_api_key(ENV["TATUM_API_KEY"]),
        "warnings": ["No wallet found for signatureId: id-missing"],
    }
    text = json.dumps(result)
    for wallet in WALLETS.values():
        for field in ("mnemonic", "privateKey", "secret"):
            if wallet and field in wallet:
                assert wallet[field] not in text


def test_report_warns_as_the_original_about_fields_of_the_wrong_type() -> None:
    wallets = {
        "no-xpub": {"mnemonic": "m", "chain": "SOL", "testnet": "false"},
        "numeric-key": {"privateKey": 12345, "chain": "ETH", "testnet": False},
        "address-only": {"address": "0xabc", "chain": "ETH", "testnet": False},
    }
    result = report({}, path="/w.dat", source=PasswordSource.PROMPT, store_info={"exists": True}, wallets=wallets)
    assert result["wallets"] == {
        "no-xpub": {"type": "MNEMONIC", "chain": "SOL", "testnet": "false", "warnings": [
            "Field 'xpub' is not string. Its type is: undefined",
            "Field 'testnet' is not boolean. Its type is: string"]},
        "numeric-key": {"type": "PRIVATE_KEY", "chain": "ETH", "testnet": False, "warnings": [
            "Field 'privateKey' is not string. Its type is: number"]},
        "address-only": {"type": "OTHER", "chain": "ETH", "testnet": False, "warnings": [
            "Wallet type is not recognized. Mnemonic, privateKey or secret are absent"]},
    }
    assert "warnings" not in result  # no system warning: the key is left out, as JSON.stringify does
    assert result["apiKey"] == "N/A"
    assert result["system"]["store"] == {"type": "LOCAL", "exists": True, "path": "/w.dat"}


def test_report_of_no_ids_is_the_system_part_only() -> None:
    result = report({}, path="/w.dat", source=PasswordSource.AZURE, store_info={"exists": False}, wallets={})
    assert result["wallets"] == {} and "warnings" not in result
    assert result["system"]["store"]["type"] == "AZURE" and result["system"]["store"]["exists"] is False
