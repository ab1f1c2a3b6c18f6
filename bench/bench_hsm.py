"""Token figures for the `hsm` package; run by hand: `.venv/bin/python bench/bench_hsm.py`.

Prints the median time of `Token.open` + `key` + `unwrap` (module load, token lookup and login
included) in a fresh process, as every tatum-kms command pays it, and again in a warm process.
Uses a throwaway SoftHSM2 token made in a temp dir.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import softhsm_module  # noqa: E402

PIN = "bench-pin"
LABEL = "bench"

COLD = """
import json, os, sys, time
start = time.perf_counter()
import hsm
imported = time.perf_counter()
config = hsm.TokenConfig(sys.argv[1], sys.argv[2], os.environ["TATUM_KMS_PKCS11_PIN"])
with hsm.Token.open(config) as token:
    secret = token.unwrap(token.key(sys.argv[3]), bytes.fromhex(sys.argv[4]))
done = time.perf_counter()
print(json.dumps({"import": imported - start, "open_unwrap": done - imported}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        conf = subprocess.check_output(
            ["bash", str(ROOT / "softhsm-config" / "make-token.sh"), directory, LABEL],
            env={**os.environ, "TATUM_KMS_PKCS11_PIN": PIN}, text=True,
        ).strip()
        os.environ["SOFTHSM2_CONF"] = conf
        import hsm

        config = hsm.TokenConfig(softhsm_module(), LABEL, PIN)
        with hsm.Token.open(config) as token:
            key = token.find_or_create_key()
            blob = token.wrap(key, os.urandom(32))

        cold = [json.loads(subprocess.check_output(
            [sys.executable, "-c", COLD, config.module, LABEL, key.key_id, blob.hex()], cwd=ROOT, text=True,
            env={**os.environ, "TATUM_KMS_PKCS11_PIN": PIN}))
            for _ in range(20)]
        warm = []
        for _ in range(200):
            start = time.perf_counter()
            with hsm.Token.open(config) as token:
                token.unwrap(token.key(key.key_id), blob)
            warm.append(time.perf_counter() - start)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.2f} ms"

    print(f"import hsm (fresh process, median of 20):                {ms([c['import'] for c in cold])}")
    print(f"Token.open + key + unwrap (fresh process, median of 20):  {ms([c['open_unwrap'] for c in cold])}")
    print(f"Token.open + key + unwrap (warm process, median of 200):  {ms(warm)}")


if __name__ == "__main__":
    main()
