"""The real `tatum-kms` process over hostile input and damaged stores: never a traceback, always one error line
and a non-zero exit, and the store byte-for-byte as it was (issue 9, items 4, 11, 12).

One template store is made per session (at the KDF floor) and copied per case; cases run a few at a time.
"""

from __future__ import annotations

import base64
import json
import os
import random
import resource
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kms_process import KMS_BIN, PASSWORD
from tests.store_files import Template, edit_header, make_template, put_back_row, sql

INTERNAL = "Unexpected internal error"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("template"))


@dataclass
class Case:
    """One command against a fresh copy of the template: `expect` must appear in its one error line."""

    name: str
    args: list[str | bytes]
    expect: str
    setup: Callable[[Path, Template], Any] | None = None
    env: dict[str, str | bytes] = field(default_factory=dict)
    stdin: bytes = b""
    file_size_limit: int | None = None
    no_store: bool = False  # the case starts without a store (and must not leave one)


@dataclass
class Outcome:
    returncode: int
    stdout: bytes
    stderr: bytes
    before: dict[str, bytes]
    after: dict[str, bytes]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def run_case(case: Case, template: Template, root: Path) -> Outcome:
    home = root / case.name
    store_dir = home / ".tatumrc"
    store_dir.mkdir(parents=True, mode=0o700)
    if not case.no_store:
        template.copy_to(store_dir)
    if case.setup:
        case.setup(store_dir, template)
    fill = {"{sid}": template.mnemonic_id, "{key}": template.key_id, "{home}": str(home),
            "{store}": str(store_dir / "wallet.dat")}

    def expand(arg: str | bytes) -> str | bytes:
        if isinstance(arg, bytes):
            return arg
        for name, value in fill.items():
            arg = arg.replace(name, value)
        return arg

    base = {k: v for k, v in os.environ.items() if not k.startswith(("TATUM_", "SOFTHSM2_CONF"))}
    env: dict[Any, Any] = {**base, "HOME": str(home), "TATUM_KMS_PASSWORD": PASSWORD}
    for name, value in case.env.items():
        env[name] = expand(value)
    env = {os.fsencode(k): os.fsencode(v) for k, v in env.items() if v != ""}

    def limit() -> None:
        if case.file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.file_size_limit, case.file_size_limit))

    before = snapshot(home)
    result = subprocess.run([KMS_BIN, *map(expand, case.args)], input=case.stdin, capture_output=True, env=env,
                            timeout=120, preexec_fn=limit, cwd=home)
    return Outcome(result.returncode, result.stdout, result.stderr, before, snapshot(home))


def check_refused(case: Case, outcome: Outcome) -> str:
    """The case's one JSON error line; fails the test if anything else happened."""
    label = f"{case.name}: rc={outcome.returncode} stdout={outcome.stdout[:300]!r} stderr={outcome.stderr[:600]!r}"
    assert b"Traceback" not in outcome.stdout + outcome.stderr, label
    assert outcome.returncode > 0, label  # non-zero, and not killed by a signal (SIGXFSZ included)
    lines = outcome.stderr.decode("utf-8").splitlines()
    assert len(lines) == 1, label
    message = json.loads(lines[0])["error"]
    assert INTERNAL not in message, label
    assert case.expect.lower() in message.lower(), label
    assert outcome.after == outcome.before, f"{case.name}: the files changed"
    return message


def header(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path, Template], None]:
    return lambda directory, _: edit_header(directory / "wallet.dat", change)


def kdf(**params: Any) -> Callable[[Path, Template], None]:
    return header(lambda h: h["kdf"].update(params))


def statements(*sql_text: str) -> Callable[[Path, Template], None]:
    return lambda directory, _: sql(directory / "wallet.dat", *sql_text)


def write_file(name: str, data: bytes) -> Callable[[Path, Template], None]:
    return lambda directory, _: (directory / name).write_bytes(data)


NESTED = b"[" * 100_000 + b"]" * 100_000
BAD_UTF8 = b"\xff\xfe\xfa not text \xc3\x28\n"
BIG = "9" * 5000

CASES = [
    # numbers: indexes and counts take ASCII digits only, in range
    Case("index-superscript", ["getaddress", "{sid}", "²"], "Index must be"),
    Case("index-arabic-indic", ["getaddress", "{sid}", "١"], "Index must be"),
    Case("index-thai", ["getprivatekey", "{sid}", "๑"], "Index must be"),
    Case("index-fullwidth", ["getaddress", "{sid}", "１"], "Index must be"),
    Case("index-5000-digits", ["getaddress", "{sid}", BIG], "Index must be"),
    Case("index-2^31", ["getaddress", "{sid}", "2147483648"], "Index must be"),
    Case("index-negative", ["getprivatekey", "{sid}", "-1"], "Index must be"),
    Case("index-empty", ["getaddress", "{sid}", ""], "Index must be"),
    Case("index-missing", ["getaddress", "{sid}"], "Missing argument 'INDEX'"),
    Case("count-arabic-indic", ["generatemanagedprivatekeybatch", "ETH", "٣"], "Count must be"),
    Case("count-5000-digits", ["generatemanagedprivatekeybatch", "ETH", BIG], "Count must be"),
    Case("count-zero", ["generatemanagedprivatekeybatch", "ETH", "0"], "Count must be"),
    Case("count-superscript", ["generatemanagedprivatekeybatch", "ETH", "³"], "Count must be"),
    # ids
    Case("id-unknown", ["getmanagedwallet", "no-such-id"], "No such wallet"),
    Case("id-control-characters", ["getmanagedwallet", "a\nb\r\x1b[31m"], "No such wallet"),
    Case("id-not-utf8", ["getmanagedwallet", b"\xff\xfe-id"], "No such wallet"),
    Case("id-very-long", ["removewallet", "x" * 100_000], "No such wallet"),
    Case("removed-id", ["getmanagedwallet", "{removed}"], "No such wallet"),
    # paths
    Case("path-dev-null-read", ["export", "--path", "/dev/null"], "not a regular file"),
    Case("path-dev-null-create", ["storemanagedprivatekey", "ETH", "--path", "/dev/null"], "not a regular file"),
    Case("path-directory", ["export", "--path", "{home}"], "not a regular file"),
    Case("path-under-a-file", ["storemanagedprivatekey", "ETH", "--path", "{store}/x"], "not a directory"),
    Case("path-too-long", ["export", "--path", "/tmp/" + "x" * 5000], "File name too long"),
    Case("path-not-utf8", ["export", "--path", b"/tmp/\xff\xfe/wallet.dat"], "No wallet store"),
    Case("path-fifo", ["export", "--path", "{home}/.tatumrc/fifo"], "not a regular file",
         setup=lambda d, _: os.mkfifo(d / "fifo")),
    Case("path-empty-file", ["storemanagedprivatekey", "ETH", "--path", "{home}/.tatumrc/empty"], "empty file",
         setup=write_file("empty", b"")),
    Case("envfile-directory", ["export", "--envFile", "{home}"], ""),
    # secrets that are not text
    Case("password-not-utf8-stdin", ["export"], "not", env={"TATUM_KMS_PASSWORD": ""}, stdin=BAD_UTF8),
    Case("password-not-utf8-stdin-create", ["storemanagedprivatekey", "ETH"], "not", no_store=True,
         env={"TATUM_KMS_PASSWORD": ""}, stdin=BAD_UTF8),
    Case("password-not-utf8-env", ["export"], "not valid UTF-8", env={"TATUM_KMS_PASSWORD": b"\xff\xfe"}),
    Case("password-not-utf8-env-create", ["storemanagedprivatekey", "ETH"], "not valid UTF-8", no_store=True,
         env={"TATUM_KMS_PASSWORD": b"pass\xff"}),
    Case("new-password-not-utf8", ["changepassword"], "not", stdin=BAD_UTF8),
    Case("mnemonic-not-utf8", ["storemanagedwallet", "ETH"], "not", stdin=BAD_UTF8),
    Case("legacy-password-not-utf8", ["import", "--from", "{home}/legacy.dat", "--path", "{home}/new.dat"],
         "not valid UTF-8", env={"TATUM_KMS_LEGACY_PASSWORD": b"\xff"},
         setup=lambda d, _: (d.parent / "legacy.dat").write_bytes(base64.b64encode(b"Salted__" + bytes(40)))),
    # import of files that are not wallets
    Case("import-not-utf8", ["import", "--from", "{home}/in.json"], "not UTF-8",
         setup=lambda d, _: (d.parent / "in.json").write_bytes(BAD_UTF8)),
    Case("import-deeply-nested", ["import", "--from", "{home}/in.json"], "nested too deeply",
         setup=lambda d, _: (d.parent / "in.json").write_bytes(NESTED)),
    Case("import-nested-wallet", ["import", "--from", "{home}/in.json"], "",
         setup=lambda d, _: (d.parent / "in.json").write_bytes(b'{"a": ' + NESTED + b"}")),
    Case("import-bad-id", ["import", "--from", "{home}/in.json"], "signature id",
         setup=lambda d, _: (d.parent / "in.json").write_text(
             json.dumps({"\ud800x": {"chain": "ETH", "testnet": False, "privateKey": "0x1"}}))),
    Case("import-dev-zero", ["import", "--from", "/dev/zero"], "not a regular file"),
    Case("import-directory", ["import", "--from", "{home}"], "not a regular file"),
    Case("import-itself", ["import", "--from", "{store}"], "same file"),
    # damaged headers (12: refused before any key is derived)
    Case("kdf-m-2^31", ["export"], "bounds", setup=kdf(memory_kib=2**31)),
    Case("kdf-p-2^24", ["export"], "bounds", setup=kdf(parallelism=2**24)),
    Case("kdf-t-10^9", ["export"], "bounds", setup=kdf(iterations=10**9)),
    Case("kdf-t-text", ["export"], "KDF", setup=kdf(iterations="3")),
    Case("kdf-t-float", ["export"], "KDF", setup=kdf(iterations=3.0)),
    Case("kdf-t-bool", ["getaddress", "{sid}", "0"], "KDF", setup=kdf(iterations=True)),
    Case("kdf-not-an-object", ["export"], "corrupt", setup=header(lambda h: h.update(kdf=[1, 2]))),
    Case("salt-short", ["export"], "salt", setup=header(lambda h: h["kdf"].update(salt="AAAA"))),
    Case("salt-not-base64", ["export"], "salt", setup=header(lambda h: h["kdf"].update(salt="!!!"))),
    Case("dek-nonce-long", ["export"], "nonce", setup=header(lambda h: h["dek"].update(nonce="A" * 400))),
    Case("dek-sealed-number", ["export"], "corrupt", setup=header(lambda h: h["dek"].update(sealed=7))),
    Case("store-id-number", ["export"], "store id", setup=header(lambda h: h.update(storeId=5))),
    Case("format-text", ["export"], "corrupt", setup=header(lambda h: h.update(format="2"))),
    Case("format-future", ["export"], "format 9", setup=header(lambda h: h.update(format=9))),
    Case("header-nested", ["export"], "corrupt", setup=header(lambda h: "[" * 10_000)),
    Case("header-list", ["export"], "corrupt", setup=header(lambda h: "[]")),
    Case("header-blob", ["export"], "corrupt",
         setup=statements("UPDATE meta SET value = CAST(value AS BLOB) WHERE name = 'header'")),
    # a lost header: never re-keyed (4)
    Case("header-lost-read", ["export"], "header is missing",
         setup=statements("DELETE FROM meta WHERE name = 'header'")),
    Case("header-lost-create", ["storemanagedprivatekey", "ETH"], "header is missing",
         setup=statements("DELETE FROM meta WHERE name = 'header'")),
    Case("header-lost-import", ["import", "--from", "{home}/in.json"], "header is missing",
         setup=lambda d, t: (sql(d / "wallet.dat", "DELETE FROM meta WHERE name = 'header'"),
                             (d.parent / "in.json").write_text("{}"))),
    Case("meta-empty-create", ["generatemanagedprivatekeybatch", "ETH", "2"], "header is missing",
         setup=statements("DELETE FROM meta")),
    # missing tables, wrong column types
    Case("no-wallets-table", ["export"], "table 'wallets'", setup=statements("DROP TABLE wallets")),
    Case("no-removed-table", ["getaddress", "{sid}", "0"], "table 'removed'", setup=statements("DROP TABLE removed")),
    Case("no-meta-table", ["storemanagedprivatekey", "ETH"], "table 'meta'", setup=statements("DROP TABLE meta")),
    Case("sealed-as-text", ["export"], "damaged", setup=statements("UPDATE wallets SET sealed = CAST(sealed AS TEXT)")),
    Case("sealed-short-text", ["getmanagedwallet", "{sid}"], "damaged",
         setup=statements("UPDATE wallets SET sealed = 'x'")),
    Case("nonce-as-number", ["getaddress", "{sid}", "0"], "damaged", setup=statements("UPDATE wallets SET nonce = 5")),
    Case("testnet-as-text", ["export"], "damaged", setup=statements("UPDATE wallets SET testnet = 'yes'")),
    Case("chain-changed", ["getmanagedwallet", "{sid}"], "failed authentication",
         setup=statements("UPDATE wallets SET chain = 'BTC'")),
    # the state record (5)
    Case("state-lost", ["export"], "state record", setup=statements("DELETE FROM meta WHERE name = 'state'")),
    Case("state-altered", ["getaddress", "{sid}", "0"], "state record",
         setup=statements("UPDATE meta SET value = '{\"gen\": 99, \"removed\": 0, \"tag\": \"AAAA\"}' "
                          "WHERE name = 'state'")),
    Case("removal-dropped", ["export"], "removal record", setup=statements("DELETE FROM removed")),
    Case("removed-row-put-back", ["getmanagedwallet", "{removed}"], "put back from an older copy",
         setup=lambda d, t: put_back_row(d / "wallet.dat", t.before_removal, t.removed_id)),
    Case("removed-row-put-back-export", ["export"], "put back from an older copy",
         setup=lambda d, t: put_back_row(d / "wallet.dat", t.before_removal, t.removed_id)),
    Case("removed-row-put-back-write", ["storemanagedprivatekey", "ETH"], "removal record",
         setup=lambda d, t: (put_back_row(d / "wallet.dat", t.before_removal, t.removed_id),
                             sql(d / "wallet.dat", "DELETE FROM removed"))),
    # files that are not stores, or broken ones
    Case("truncated", ["export"], "", setup=lambda d, _: (d / "wallet.dat").write_bytes(
        (d / "wallet.dat").read_bytes()[:5000])),
    Case("garbage-start", ["storemanagedprivatekey", "ETH"], "not a tatum-kms wallet store",
         setup=lambda d, _: (d / "wallet.dat").write_bytes(b"garbage" + (d / "wallet.dat").read_bytes()[7:])),
    Case("sqlite-without-tables", ["storemanagedprivatekey", "ETH"], "delete it to start again",
         setup=lambda d, _: ((d / "wallet.dat").unlink(), sql(d / "wallet.dat", "PRAGMA user_version = 1"))),
    # a full disk (the kernel refuses writes past RLIMIT_FSIZE with EFBIG)
    Case("full-disk-batch", ["generatemanagedprivatekeybatch", "ETH", "3000"], "could not be written",
         file_size_limit=48 * 1024),
    Case("full-disk-create", ["storemanagedprivatekey", "ETH"], "could not be", no_store=True, file_size_limit=2048),
    Case("full-disk-import", ["import", "--from", "{home}/in.json", "--path", "{home}/new.dat"], "could not be",
         file_size_limit=2048, setup=lambda d, t: (d.parent / "in.json").write_text(json.dumps(
             {"5a1b2c3d-0000-4000-8000-000000000001": {"chain": "ETH", "testnet": False, "privateKey": "0x1"}}))),
]


def test_every_hostile_input_is_one_line_and_leaves_the_files_as_they_were(
        template: Template, tmp_path: Path) -> None:
    for case in CASES:
        case.args = [a.replace("{removed}", template.removed_id) if isinstance(a, str) else a for a in case.args]
    assert len({case.name for case in CASES}) == len(CASES)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda case: run_case(case, template, tmp_path), CASES))
    failures = []
    for case, outcome in zip(CASES, outcomes, strict=True):
        try:
            check_refused(case, outcome)
            if case.no_store:
                assert not [name for name in outcome.after if name.startswith(".tatumrc/")], \
                    f"{case.name}: left {list(outcome.after)}"
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


def test_the_template_itself_opens_so_each_refusal_above_is_due_to_its_damage(template: Template,
                                                                              tmp_path: Path) -> None:
    case = Case("intact", ["getaddress", "{sid}", "1"], "")
    outcome = run_case(case, template, tmp_path)
    assert outcome.returncode == 0, outcome.stderr
    assert json.loads(outcome.stdout) == {"address": "0xaac8c73348f1f92b2f9647e1e4f3cf14e2a8b3cb"}  # spec vector
    exported = json.loads(run_case(Case("intact-export", ["export"], ""), template, tmp_path).stdout)
    assert set(exported) == {template.mnemonic_id, template.key_id}


def test_a_store_that_hit_the_file_size_limit_still_opens_with_everything_it_had(template: Template,
                                                                                 tmp_path: Path) -> None:
    case = Case("full-then-open", ["generatemanagedprivatekeybatch", "ETH", "3000"], "could not be written",
                file_size_limit=48 * 1024)
    check_refused(case, run_case(case, template, tmp_path))
    home = tmp_path / case.name
    env = {**os.environ, "HOME": str(home), "TATUM_KMS_PASSWORD": PASSWORD}
    exported = subprocess.run([KMS_BIN, "export"], env=env, capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert set(json.loads(exported.stdout)) == {template.mnemonic_id, template.key_id}


def test_bit_flips_never_give_wrong_data_or_a_traceback(template: Template, tmp_path: Path) -> None:
    intact = run_case(Case("flip-none", ["export"], ""), template, tmp_path)
    assert intact.returncode == 0, intact.stderr
    size = template.path.stat().st_size
    rng = random.Random(20260309)
    cases = []
    for number in range(24):
        flips = [(rng.randrange(size), 1 << rng.randrange(8)) for _ in range(rng.choice((1, 1, 4)))]

        def flip(directory: Path, _: Template, flips: list[tuple[int, int]] = flips) -> None:
            data = bytearray((directory / "wallet.dat").read_bytes())
            for position, bit in flips:
                data[position] ^= bit
            (directory / "wallet.dat").write_bytes(bytes(data))

        cases.append(Case(f"flip-{number}", ["export"], "", setup=flip))
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda case: run_case(case, template, tmp_path), cases))
    opened = 0
    for case, outcome in zip(cases, outcomes, strict=True):
        if outcome.returncode == 0:  # the flip hit unused space: the same wallets, exactly
            assert outcome.stdout == intact.stdout, case.name
            assert outcome.after == outcome.before, case.name
            opened += 1
        else:
            check_refused(case, outcome)
    assert opened < len(cases)  # most flips land in pages that matter, and are caught
