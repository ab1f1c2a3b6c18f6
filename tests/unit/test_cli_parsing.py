"""The command line as an operator types it: per-command help, both spellings of every flag, options anywhere,
one JSON error line for a wrong command line, shell completion, and a `--help` that loads no store or chain."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from kms.cli import cli, main, parse
from kms.commands import COMMANDS

KMS = str(Path(sys.executable).parent / "tatum-kms")
EVERY_COMMAND = list(COMMANDS)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    [line] = err.strip().splitlines()
    return json.loads(line)["error"]


def declared_options(path: str) -> list[click.Option]:
    command: click.Command = cli
    for name in path.split():
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]


@pytest.mark.parametrize("path", EVERY_COMMAND)
def test_every_command_has_its_own_help(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([*path.split(), "--help"], capsys)
    assert code == 0 and err == ""
    assert out.startswith(f"Usage: tatum-kms {path} ")
    for option in declared_options(path):
        assert option.opts[0] in out, option.opts[0]


def test_a_command_help_lists_only_that_command_options(capsys: pytest.CaptureFixture[str]) -> None:
    _, wallet_help, _ = run_main(["generatewallet", "--help"], capsys)
    _, daemon_help, _ = run_main(["daemon", "--help"], capsys)
    assert "CHAIN" in wallet_help and "--externalUrl" not in wallet_help and "--period" not in wallet_help
    assert "--externalUrl, --external-url" in daemon_help and "--runOnce, --run-once" in daemon_help


def test_the_top_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], [], ["-h"]):
        code, out, _ = run_main(args, capsys)
        assert code == 0
        for path in EVERY_COMMAND:
            assert re.search(rf"^  {path}\s", out, re.MULTILINE), path
        assert "_TATUM_KMS_COMPLETE" in out


def test_a_group_command_with_no_action_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    for group in ("hsm", "audit"):
        code, out, err = run_main([group], capsys)
        assert code == 2 and out == ""
        assert f"tatum-kms {group} --help" in error_line(err)
    code, _, err = run_main(["hsm", "destroy"], capsys)
    assert code == 2 and "Unsupported command" in error_line(err) and "destroy" not in err


def kebab(name: str) -> str:
    """The decamelized spelling, the way the original's parser derives it."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


def test_every_camel_case_flag_has_its_kebab_spelling() -> None:
    seen = 0
    for path in COMMANDS:
        for option in declared_options(path):
            camel = [o[2:] for o in option.opts if o[2:] != o[2:].lower()]
            for name in camel:
                seen += 1
                # maxResponseMiB reads as one unit: --max-response-mib, not --max-response-mi-b
                assert f"--{kebab(name)}" in option.opts or f"--{kebab(name).replace('mi-b', 'mib')}" in option.opts
    assert seen >= 14


CAMEL = ["--externalUrl=http://127.0.0.1:1/ok", "--externalUrlMethod", "post", "--runOnce", "--transactionIds", "a,b",
         "--envFile", "/tmp/x.env", "--apiKey", "k", "--approvalTimeout", "3", "--requestTimeout=7",
         "--maxResponseMiB", "2", "--logFormat", "json", "--auditLog", "/tmp/a.log", "--pkcs11Module", "/m.so",
         "--pkcs11Token", "t", "--pkcs11Key", "k2"]
KEBAB = ["--external-url=http://127.0.0.1:1/ok", "--external-url-method", "post", "--run-once", "--transaction-ids",
         "a,b", "--env-file", "/tmp/x.env", "--api-key", "k", "--approval-timeout", "3", "--request-timeout=7",
         "--max-response-mib", "2", "--log-format", "json", "--audit-log", "/tmp/a.log", "--pkcs11-module", "/m.so",
         "--pkcs11-token", "t", "--pkcs11-key", "k2"]


def test_kebab_and_camel_spellings_mean_the_same() -> None:
    camel, kebab_case = parse(["daemon", *CAMEL]).opts, parse(["daemon", *KEBAB]).opts
    assert camel == kebab_case
    assert (camel.externalUrl, camel.externalUrlMethod, camel.runOnce, camel.transactionIds) == (
        "http://127.0.0.1:1/ok", "POST", True, "a,b")
    assert (camel.approvalTimeout, camel.requestTimeout, camel.maxResponseMiB, camel.logFormat) == (3.0, 7.0, 2, "json")


def test_path_with_a_space_or_an_equals_sign_and_options_before_the_command() -> None:
    spaced = parse(["getaddress", "sid", "3", "--path", "/tmp/w.dat"])
    joined = parse(["getaddress", "--path=/tmp/w.dat", "sid", "3"])
    leading = parse(["--path", "/tmp/w.dat", "--testnet", "getaddress", "sid", "3"])
    assert spaced.opts == joined.opts
    assert (spaced.opts.path, spaced.opts.signature_id, spaced.opts.index) == ("/tmp/w.dat", "sid", "3")
    assert leading.command == "getaddress" and leading.opts.testnet and leading.opts.path == "/tmp/w.dat"


@pytest.mark.parametrize("args, expected", [
    (["daemon", "--externalURL=http://x"], "No such option '--externalURL'"),
    (["generatewallet", "BTC", "--external-url=http://x"], "No such option '--external-url'"),
    (["getaddress", "sid"], "Missing argument 'INDEX'"),
    (["daemon", "--log-format", "xml"], "'xml' is not one of"),
    (["frobnicate"], "Unsupported command"),
])
def test_a_wrong_command_line_is_one_json_line(args: list[str], expected: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(args, capsys)
    assert code == 2 and out == ""
    message = error_line(err)
    assert expected in message and "--help" in message


def test_extra_arguments_are_refused_without_echoing_them(capsys: pytest.CaptureFixture[str]) -> None:
    words = "legal winner thank year wave sausage worth useful legal winner thank yellow"
    code, out, err = run_main(["storemanagedwallet", "BTC", *words.split()], capsys)
    assert code == 2 and out == ""
    assert "Unexpected extra arguments" in error_line(err)
    assert not any(word in err for word in ("legal", "winner", "sausage"))


def test_help_loads_no_store_crypto_or_chain_library() -> None:
    probe = ("import sys; from kms.cli import main; main(['--help']); main(['daemon', '--help']); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('chains', 'cryptography', 'urllib3', 'coincurve', 'nacl', 'pkcs11', 'hsm') or m == 'kms.store'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash completion offers for the command line `words` (the last word being completed)."""
    parts = words.split(" ")
    env = {**os.environ, "_TATUM_KMS_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1), **(env or {})}
    result = subprocess.run([KMS], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_shell_completion_offers_commands_chains_and_flags() -> None:
    source = subprocess.run([KMS], env={**os.environ, "_TATUM_KMS_COMPLETE": "bash_source"}, capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    assert "complete -o nosort -F" in source and "tatum-kms" in source
    assert {"generatewallet", "generatemanagedwallet", "generatemanagedprivatekeybatch"} <= set(
        complete("tatum-kms gen"))
    assert {"ETH", "EGLD"} <= set(complete("tatum-kms generatewallet E")) and "BTC" not in complete(
        "tatum-kms generatewallet E")
    assert {"--external-url", "--externalUrl", "--externalUrlMethod"} <= set(complete("tatum-kms daemon --ext"))
    assert set(complete("tatum-kms hsm ")) == {"init", "rotate"}
