"""The daemon's numeric flags: finite, in range, plain ASCII decimals; anything else is one line on stderr and a
non-zero exit before any store or network is touched."""

from __future__ import annotations

import json

import pytest

from kms.cli import main, parse

REFUSED = [
    ("--period", v) for v in ("nan", "NaN", "inf", "-inf", "-5", "0", "0.0", "0.05", "86401", "1e3", "0x10", "",
                              " ", "5s", "\u0661", "\u0e51", "1_000", "+5")
] + [
    ("--approvalTimeout", v) for v in ("nan", "inf", "-5", "0", "601", "1e2", "\u0663")
] + [
    ("--requestTimeout", v) for v in ("nan", "inf", "0", "601", "-1")
] + [
    ("--maxResponseMiB", v) for v in ("0", "1025", "2.5", "-1", "nan", "16MiB")
]


@pytest.mark.parametrize("flag, value", REFUSED)
def test_an_out_of_range_or_non_numeric_flag_is_one_error_line(flag: str, value: str,
                                                               capsys: pytest.CaptureFixture[str],
                                                               tmp_path: object) -> None:
    code = main(["daemon", "--runOnce", "--testnet", "--path", f"{tmp_path}/never-made.dat", f"{flag}={value}"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    [line] = err.strip().splitlines()
    message = json.loads(line)["error"]
    assert flag in message and json.dumps(value) in message


@pytest.mark.parametrize("flag, value, expected", [
    ("--period", "0.1", 0.1), ("--period", "5", 5.0), ("--period", "86400", 86400.0), ("--period", ".5", 0.5),
    ("--approvalTimeout", "3", 3.0), ("--approvalTimeout", "0.25", 0.25), ("--approvalTimeout", "600", 600.0),
    ("--requestTimeout", "2", 2.0), ("--maxResponseMiB", "64", 64), ("--maxResponseMiB", "1", 1),
])
def test_values_in_range_are_taken(flag: str, value: str, expected: float) -> None:
    assert getattr(parse(["daemon", flag, value]).opts, flag[2:]) == expected


def test_the_defaults() -> None:
    opts = parse(["daemon"]).opts
    assert (opts.period, opts.approvalTimeout, opts.requestTimeout, opts.maxResponseMiB) == (5.0, 10.0, 60.0, 16)
