"""Store and CLI figures for the foundation issue; run by hand: `.venv/bin/python bench/bench_store.py`.

Prints: `tatum-kms --help` wall time; `generatemanagedprivatekeybatch ETH` for 1,000 and 100,000
keys; `getaddress` on a store of 100,000 wallets against the same on a store of one; the unlock
(KDF + DEK unwrap) alone. Pass --quick to skip the 100,000-key runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KMS = str(Path(sys.executable).parent / "tatum-kms")
PASSWORD = "bench password"


def env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TATUM_")}
    return {**clean, "HOME": str(home), "TATUM_KMS_PASSWORD": PASSWORD}


def timed(args: list[str], home: Path, repeat: int = 1) -> tuple[float, str]:
    """Median wall time of running tatum-kms `args`, and the last stdout."""
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run([KMS, *args], env=env(home), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"tatum-kms {' '.join(args)} failed: {result.stderr}")
        out = result.stdout
    return statistics.median(times), out


def unlock_only(home: Path) -> float:
    """In-process time of opening the store: header read, Argon2id, DEK unwrap."""
    from kms.store import WalletStore, resolve_path

    path = resolve_path(home / ".tatumrc" / "wallet.dat")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        WalletStore.open(path, PASSWORD, None).close()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    quick = "--quick" in sys.argv
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "kms", "chains", "hsm"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)  # as installed: bytecode present (scripts/setup.sh does the same)
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        small.mkdir()
        large.mkdir()
        help_time, _ = timed(["--help"], small, repeat=11)
        print(f"tatum-kms --help                         {help_time * 1000:8.1f} ms (median of 11)")

        t1k, out = timed(["generatemanagedprivatekeybatch", "ETH", "1000"], small)
        assert len(out.splitlines()) == 1000
        print(f"generatemanagedprivatekeybatch ETH 1000  {t1k:8.2f} s   ({1000 / t1k:,.0f} keys/s, incl. unlock)")
        first_id = out.splitlines()[0].split('"')[3]

        if not quick:
            t100k, out = timed(["generatemanagedprivatekeybatch", "ETH", "100000"], large)
            assert len(out.splitlines()) == 100000
            print(f"generatemanagedprivatekeybatch ETH 100000 {t100k:7.2f} s   ({100000 / t100k:,.0f} keys/s); "
                  f"x{t100k / t1k:.0f} for x100 keys")
            large_id = out.splitlines()[50000].split('"')[3]
            t_small, _ = timed(["getaddress", first_id, "0"], small, repeat=7)
            t_large, _ = timed(["getaddress", large_id, "0"], large, repeat=7)
            print(f"getaddress, 1,001-wallet store           {t_small * 1000:8.1f} ms")
            print(f"getaddress, 100,000-wallet store         {t_large * 1000:8.1f} ms  "
                  f"(+{(t_large - t_small) * 1000:.1f} ms for the larger store)")
            size = (large / ".tatumrc" / "wallet.dat").stat().st_size / 1e6
            print(f"store size for 100,000 wallets           {size:8.1f} MB")
        unlock = unlock_only(small)
        print(f"unlock alone (Argon2id + DEK unwrap)     {unlock * 1000:8.1f} ms (median of 5)")
        if not quick:
            print(f"getaddress on 100,000 minus the unlock   {(t_large - unlock) * 1000:8.1f} ms "
                  f"(interpreter start, imports, lookup, derivation)")


if __name__ == "__main__":
    main()
