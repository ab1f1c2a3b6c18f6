"""Audit log cost per transaction; run by hand: `.venv/bin/python bench/bench_audit.py [--count N]`.

Each transaction is what the daemon writes for it: a "signed" line made durable (fsync) before the
broadcast, then the "broadcast" line. Measured from one lane and from 32 concurrent lanes (the daemon's
default concurrency, where lines written during one fsync share the next), then `audit verify`'s pass.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kms.audit import AuditLog, verify


class Pending:
    def __init__(self, n: int) -> None:
        self.id, self.chain, self.hashes, self.signatures = f"{n:024x}", "ETH", (f"sig-{n % 100}",), ()


def one(log: AuditLog, n: int) -> None:
    pending = Pending(n)
    log.durable(log.signed(pending, "approved (HTTP 200)", "0x" + "ab" * 110))
    log.broadcast(pending, tx_id="0x" + "cd" * 32)


def run(directory: Path, count: int, lanes: int) -> tuple[float, Path]:
    path = directory / f"audit-{lanes}.log"
    log = AuditLog(path, KEY)
    started = time.perf_counter()
    if lanes == 1:
        for n in range(count):
            one(log, n)
    else:
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(lambda n: one(log, n), range(count)))
    log.close()
    return time.perf_counter() - started, path


KEY = os.urandom(32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:  # a real disk, not tmpfs, when home is one
        for lanes in (1, 32):
            seconds, path = run(Path(tmp), args.count, lanes)
            print(f"{lanes:2d} lane(s): {args.count / seconds:8.0f} transactions/s "
                  f"({seconds / args.count * 1e6:.0f} us each, signed line fsynced before each broadcast)")
        started = time.perf_counter()
        report = verify(path, KEY)
        seconds = time.perf_counter() - started
        print(f"audit verify: {report.entries / seconds:8.0f} lines/s ({report.entries} lines, "
              f"{path.stat().st_size / report.entries:.0f} bytes each)")


if __name__ == "__main__":
    main()
