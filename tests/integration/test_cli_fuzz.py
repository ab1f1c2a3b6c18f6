"""Hypothesis fuzz of every CLI argument that takes a number, an id or a path, through `kms.cli.main` in-process:
whatever the text, the answer is the right result or one error line, never an internal error, and the store
is left byte for byte as it was (issue 9, item 11). The daemon's numeric flags are fuzzed with the daemon."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms.cli import main
from kms.commands import MAX_BATCH, MAX_INDEX
from tests.kms_process import PASSWORD
from tests.store_files import Template, make_template

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any text, text that looks like a number, bytes as argv carries them (not UTF-8: surrogate-escaped).
numbers = st.one_of(st.text(max_size=24), st.from_regex(r"\A[0-9]{1,14}\Z"), st.integers().map(str),
                    st.sampled_from(["²", "١", "๑", "１", "0x10", "1e3", " 1", "1_0", "9" * 5000, "2147483648",
                                   "-h", "--help"]))
texts = st.one_of(st.text(min_size=1, max_size=200), st.binary(min_size=1, max_size=100).map(os.fsdecode),
                  st.sampled_from(["-", "--", "~", "~nobody-here/x", "/dev/null", "/dev/zero", ".", "..", "/",
                                   "a\nb", "/tmp/" + "x" * 5000, "%s%n", "file:x?mode=rwc", "~root",
                                   "-h", "--help"]))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """The template store; HOME, the working directory and the password set for the whole module."""
    root = tmp_path_factory.mktemp("fuzz")
    template = make_template(root / "store")
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(root / "home"))
    patch.setenv("TATUM_KMS_PASSWORD", PASSWORD)
    for name in [n for n in os.environ if n.startswith("TATUM_") and n != "TATUM_KMS_PASSWORD"]:
        patch.delenv(name)
    patch.chdir(root)
    yield template
    patch.undo()


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `tatum-kms argv...` in this process with empty standard input; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    stdin, sys.stdin = sys.stdin, io.StringIO("")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
    finally:
        sys.stdin = stdin
    return code, out.getvalue(), err.getvalue()


def refused(code: int, out: str, err: str) -> str:
    """The one error line's message; fails unless the command failed cleanly."""
    assert code != 0 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    message = json.loads(lines[0])["error"]
    assert "Unexpected internal error" not in message and "Traceback" not in err, message
    return message


def helped(command: str, text: str, code: int, out: str, err: str) -> bool:
    """True when `text`, written where an argument goes, is -h/--help and the command's own help was shown."""
    if text not in ("-h", "--help"):
        return False
    assert code == 0 and err == "" and out.startswith(f"Usage: tatum-kms {command} "), (code, out, err)
    return True


def valid_number(text: str, low: int, high: int) -> bool:
    """ASCII digits (leading zeros allowed) of a value from `low` to `high`."""
    significant = text.lstrip("0") or "0"
    return text.isascii() and text.isdigit() and len(significant) <= 20 and low <= int(significant) <= high


@FUZZ
@given(index=numbers)
def test_index(world: Template, index: str) -> None:
    before = world.path.read_bytes()
    code, out, err = cli("getaddress", world.mnemonic_id, index, "--path", str(world.path))
    if helped("getaddress", index, code, out, err):
        pass
    elif valid_number(index, 0, MAX_INDEX):
        assert code == 0, err
        assert json.loads(out)["address"].startswith("0x")
    else:
        assert "Index must be" in refused(code, out, err) or index.startswith("-")
    assert world.path.read_bytes() == before


@FUZZ
@given(count=numbers)
def test_count(world: Template, count: str) -> None:
    # Against /dev/null: a valid count gets as far as opening the store (refused), an invalid one stops first.
    code, out, err = cli("generatemanagedprivatekeybatch", "ETH", count, "--path", "/dev/null")
    if helped("generatemanagedprivatekeybatch", count, code, out, err):
        return
    message = refused(code, out, err)
    if valid_number(count, 1, MAX_BATCH):
        assert "not a regular file" in message
    elif not count.startswith("-"):
        assert "Count must be" in message


@FUZZ
@given(command=st.sampled_from(["getmanagedwallet", "getprivatekey", "getaddress", "removewallet"]),
       signature_id=texts)
def test_signature_id(world: Template, command: str, signature_id: str) -> None:
    before = world.path.read_bytes()
    extra = ["0"] if command in ("getprivatekey", "getaddress") else []
    code, out, err = cli(command, signature_id, *extra, "--path", str(world.path))
    if not helped(command, signature_id, code, out, err):
        message = refused(code, out, err)
        if not signature_id.startswith("-"):
            assert message.startswith("No such wallet for signatureId"), message
    assert world.path.read_bytes() == before


@FUZZ
@given(signature_ids=st.lists(texts.filter(lambda t: not t.startswith("-")), min_size=1, max_size=3))
def test_report_ids(world: Template, signature_ids: list[str]) -> None:
    code, out, err = cli("report", *signature_ids, "--path", str(world.path))
    assert code == 0, err
    assert set(json.loads(out)["wallets"]) <= {world.mnemonic_id, world.key_id}


@FUZZ
@given(path=texts, command=st.sampled_from(["export", "getmanagedwallet", "checkconfig"]))
def test_store_path(world: Template, path: str, command: str) -> None:
    args = [command, world.mnemonic_id] if command == "getmanagedwallet" else [command]
    code, out, err = cli(*args, "--path", path)
    if command == "checkconfig" and code == 0:  # a path that is not there: checkconfig just says so
        assert "Wallet exists                    : false" in out
    else:
        refused(code, out, err)


@FUZZ
@given(path=texts)
def test_import_source(world: Template, path: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path_factory.mktemp("import") / "new.dat"
    message = refused(*cli("import", "--from", path, "--path", str(target)))
    assert message and not target.exists()


@FUZZ
@given(path=texts)
def test_env_file(world: Template, path: str) -> None:
    code, out, err = cli("getaddress", world.key_id, "0", "--envFile", path, "--path", str(world.path))
    if code == 0:  # a file that happens to exist and parse (e.g. one in the working directory)
        assert json.loads(out) == {"address": "0xefc395c295a90023d3e9afacb4399da3d332947b"}
    else:
        refused(code, out, err)


@FUZZ
@given(path=texts.filter(lambda t: ".so" not in t))
def test_pkcs11_module(world: Template, path: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path_factory.mktemp("hsm") / "new.dat"
    message = refused(*cli("hsm", "init", "--pkcs11Module", path, "--pkcs11Token", "t", "--path", str(target)))
    assert message and not target.exists()


def test_the_fuzzed_store_still_holds_its_wallets(world: Template) -> None:
    code, out, err = cli("export", "--path", str(world.path))
    assert code == 0, err
    assert set(json.loads(out)) == {world.mnemonic_id, world.key_id}
    assert Path(world.path).stat().st_size > 0
