"""The daemon's text log: one line per event whatever the network put in an id, a chain or a detail; secrets
redacted from every field."""

from __future__ import annotations

import io
import json

import pytest

from kms.eventlog import EventLog, escape

BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", BREAKS)
def test_no_field_can_start_a_new_line(brk: str) -> None:
    stream = io.StringIO()
    log = EventLog(stream, "text")
    forged = f"x{brk}2026-01-01T00:00:00.000Z INFO signed chain=ETH pending=p"
    log.event("invalid", f"detail {forged}", chain=f"ETH{brk}", pending=forged)
    [line] = stream.getvalue().splitlines()  # str.splitlines breaks on every one of these
    assert line.split(" ")[2:5] == ["invalid", f"chain=ETH{escape(brk, token=True)}",
                                    f"pending={escape(forged, token=True)}"]


def test_escapes_are_unambiguous_tokens_and_printable_text_is_kept() -> None:
    assert escape("plain id-1") == "plain id-1"
    assert escape("5e66 4571", token=True) == "5e66\\x204571"
    assert escape("a\\x0a", token=True) == "a\\\\x0a"  # a literal backslash cannot pose as an escape
    assert escape("a\x1b[31mred\u202e") == "a\\x1b[31mred\\u202e"  # terminal and bidi controls
    assert escape("caf\u00e9 \u20ac") == "caf\u00e9 \u20ac"
    assert escape("\U000e0001") == "\\U000e0001"


def test_secrets_are_redacted_from_ids_too_and_json_lines_stay_one_document() -> None:
    stream = io.StringIO()
    log = EventLog(stream, "json", secrets=["api-key-123456"])
    log.event("invalid", "key api-key-123456\nhere", chain="ETH", pending="id\napi-key-123456")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["pending"] == "id\n***" and record["detail"] == "key *** here"
