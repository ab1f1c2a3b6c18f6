"""The audit log's format and verifier: every kind of tampering is named at the line where it happens."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kms.audit import AuditError, AuditLog, verify
from tests.kms_process import MQ


class Pending:
    """The fields of a PendingTransaction the audit log reads."""

    def __init__(self, tx_id: str, chain: str = "ETH", hashes: tuple[str, ...] = ("sig-1",)) -> None:
        self.id, self.chain, self.hashes, self.signatures = tx_id, chain, hashes, ()


KEY = os.urandom(32)


def write_log(path: Path, decisions: int = 4, key: bytes = KEY) -> list[bytes]:
    """A log as a daemon writes it: started, then per transaction signed + broadcast (every third refused),
    then stopped. Returns its lines."""
    log = AuditLog(path, key)
    log.started(("ETH",), True, True)
    for n in range(decisions):
        pending = Pending(f"tx{n}")
        if n % 3 == 2:
            log.refused(pending, "approval server answered HTTP 403")
            continue
        log.durable(log.signed(pending, "approved (HTTP 200)", f"0xf86b{n:04x}"))
        log.broadcast(pending, tx_id=f"0x{n:064x}")
    log.stopped()
    log.close()
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def error_of(path: Path, key: bytes = KEY) -> str:
    with pytest.raises(AuditError) as caught:
        verify(path, key)
    return str(caught.value)


def test_an_untouched_log_is_intact_and_counts_its_decisions(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path, decisions=4)
    report = verify(path, KEY)
    assert report.entries == len(lines) == 1 + 3 * 2 + 1 + 1
    assert report.events == {"started": 1, "signed": 3, "broadcast": 3, "refused": 1, "stopped": 1}
    assert report.last_event == "stopped" and report.warning is None and report.unresolved == []
    assert report.head == hashlib.sha256(lines[-1].rstrip(b"\n")).hexdigest()


def test_each_line_chains_to_the_sha256_of_the_line_before(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "audit.log")
    entries = [json.loads(line) for line in lines]
    assert entries[0]["prev"] == "0" * 64
    for before, entry in zip(lines, entries[1:], strict=False):
        assert entry["prev"] == hashlib.sha256(before.rstrip(b"\n")).hexdigest()
    assert [e["seq"] for e in entries] == list(range(1, len(lines) + 1))
    assert len({e["log"] for e in entries}) == 1
    signed = entries[1]
    assert signed["event"] == "signed" and signed["pending"] == "tx0" and signed["signatureIds"] == ["sig-1"]
    assert signed["signedSha256"] == hashlib.sha256(b"0xf86b0000").hexdigest()
    assert signed["approval"] == "approved" and signed["reason"] == "approved (HTTP 200)"
    assert entries[2]["txId"] == "0x" + "0" * 64 and entries[2]["outcome"] == "broadcast"
    assert all(b"0xf86b" not in line for line in lines)  # the signed transaction itself is not in the log


def test_an_edited_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    edited = lines[2].replace(b'"outcome":"broadcast"', b'"outcome":"failed"')
    assert edited != lines[2]
    lines[2] = edited
    rewrite(path, lines)
    assert error_of(path).endswith("line 3: edited (its HMAC does not match; or it was written under another "
                                   "store's key).")


def test_an_edit_that_keeps_the_old_mac_or_rehashes_without_the_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    entry = json.loads(lines[2])
    entry["txId"] = "0x" + "f" * 64
    entry["mac"] = hashlib.sha256(json.dumps(entry).encode()).hexdigest()  # a forger without the key
    lines[2] = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
    rewrite(path, lines)
    assert "line 3: edited" in error_of(path)


def test_an_inserted_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    forged = json.loads(lines[1])
    forged["pending"] = "tx-forged"
    lines.insert(3, json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    rewrite(path, lines)
    assert "line 4: inserted" in error_of(path)


def test_a_removed_line_is_named_at_the_line_after_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    del lines[4:6]  # entries #5 and #6
    rewrite(path, lines)
    assert error_of(path).endswith("line 5: entries before it were removed (entry #7 follows #4; #5-#6 missing).")


def test_removed_first_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    rewrite(path, lines[1:])
    assert "line 1: entries before it were removed (entry #2 follows the start; #1 missing)" in error_of(path)


def test_swapped_lines_are_named_as_reordered(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    lines[2], lines[3] = lines[3], lines[2]
    rewrite(path, lines)
    assert error_of(path).endswith("line 3: reordered (entry #4 is here; entry #3 comes later, at line 4).")


def test_a_line_moved_back_is_named_as_reordered(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    lines.insert(5, lines.pop(1))  # entry #2 now sits after #6
    rewrite(path, lines)
    assert "line 2: reordered (entry #3 is here; entry #2 comes later, at line 6)" in error_of(path)


def test_a_repeated_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    lines.insert(4, lines[1])
    rewrite(path, lines)
    assert "line 5: reordered or repeated (entry #2 comes again after #4)" in error_of(path)


def test_lines_spliced_from_another_log_of_the_same_store_are_named(tmp_path: Path) -> None:
    path, other = tmp_path / "audit.log", tmp_path / "other.log"
    lines, foreign = write_log(path), write_log(other, decisions=6)
    rewrite(path, lines[:3] + foreign[3:])  # genuine lines, same key, same seq numbers: another file
    assert "line 4: spliced in from another audit log" in error_of(path)


def test_a_line_from_a_copy_of_the_log_that_went_on_differently_is_named_where_the_chain_breaks(
        tmp_path: Path) -> None:
    path, copy = tmp_path / "audit.log", tmp_path / "copy.log"
    rewrite(path, write_log(path)[:3])
    copy.write_bytes(path.read_bytes())  # a backup restored elsewhere: same log id, same key
    for log_path, tx_id in ((path, "tx8"), (copy, "tx9")):
        log = AuditLog(log_path, KEY)
        log.durable(log.signed(Pending(tx_id), "approved (HTTP 200)", "0x01"))
        log.broadcast(Pending(tx_id), tx_id="0x02")
        log.close()
    branch, other = (p.read_bytes().splitlines(keepends=True) for p in (path, copy))
    verify(copy, KEY)
    rewrite(path, branch[:3] + other[3:4] + branch[4:])  # entry #4 swapped for the copy's own #4
    assert error_of(path).endswith("line 5: spliced (entry #5 was written after a different line than the one "
                                   "before it here).")


def test_a_log_cut_inside_a_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    data = b"".join(lines)
    path.write_bytes(data[: len(data) - len(lines[-1]) - 10])
    assert error_of(path).endswith(f"line {len(lines) - 1}: incomplete (the file was cut inside this line).")


def test_whole_lines_removed_from_the_tail_leave_a_log_that_does_not_end_with_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path)
    rewrite(path, lines[:-2])
    report = verify(path, KEY)  # what the file alone cannot prove: the README says how to anchor the head
    assert report.entries == len(lines) - 2
    assert report.warning and "last lines were removed" in report.warning


def test_a_log_verified_under_another_key_fails_at_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path)
    assert "line 1: edited" in error_of(path, key=os.urandom(32))


def test_a_daemon_that_appends_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    before = write_log(path, decisions=2)
    write_log(path, decisions=2)
    after = path.read_bytes().splitlines()
    assert verify(path, KEY).entries == len(after) == 2 * len(before)
    assert json.loads(after[len(before)])["prev"] == hashlib.sha256(before[-1].rstrip(b"\n")).hexdigest()


def test_a_torn_last_line_is_cut_off_and_recorded_when_the_log_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path, decisions=1)
    torn = b'{"v":1,"log":"x","seq":99,"time":"2026'
    with path.open("ab") as handle:
        handle.write(torn)
    assert "incomplete" in error_of(path)
    log = AuditLog(path, KEY)
    log.close()
    report = verify(path, KEY)
    assert report.entries == len(lines) + 1 and report.events["torn-tail"] == 1
    last = json.loads(path.read_bytes().splitlines()[-1])
    assert last["droppedBytes"] == len(torn) and last["droppedSha256"] == hashlib.sha256(torn).hexdigest()


def test_a_daemon_does_not_append_to_a_log_whose_last_line_is_forged(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path, decisions=1)
    assert b'"event":"stopped"' in lines[-1]
    lines[-1] = lines[-1].replace(b'"event":"stopped"', b'"event":"stoppeD"')
    rewrite(path, lines)
    before = path.read_bytes()
    with pytest.raises(AuditError, match="does not verify"):
        AuditLog(path, KEY)
    assert path.read_bytes() == before


def test_one_writer_per_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, KEY)
    try:
        with pytest.raises(AuditError, match="in use by another tatum-kms daemon"):
            AuditLog(path, KEY)
        assert verify(path, KEY).writer_active
    finally:
        log.close()
    assert not verify(path, KEY).writer_active


def test_signed_lines_are_on_disk_when_durable_returns(tmp_path: Path) -> None:
    """A child writes a signed line, calls durable, then dies by SIGKILL: the line is there and verifies."""
    path = tmp_path / "audit.log"
    key = KEY.hex()
    script = f"""
import os, signal
from kms.audit import AuditLog
class P: id, chain, hashes, signatures = "tx1", "ETH", ("s",), ()
log = AuditLog(__import__("pathlib").Path({str(path)!r}), bytes.fromhex({key!r}))
log.durable(log.signed(P(), "approved (HTTP 200)", "0x02"))
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr
    report = verify(path, KEY)
    assert report.events == {"signed": 1} and report.unresolved == ["tx1"]


def test_secrets_given_to_the_redactor_do_not_reach_the_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, KEY, redact=lambda text: text.replace(MQ, "***"))
    log.failed(Pending("tx1"), f"signer failed on {MQ}")
    log.close()
    assert MQ.encode() not in path.read_bytes()
    assert verify(path, KEY).entries == 1
