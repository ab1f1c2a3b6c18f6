"""The README's "run" command ends in scripts/demo.py: the flow it shows must keep working."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_signs_only_after_approval_and_moves_the_funds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATUM_", "SOFTHSM2_CONF"))}
    env.update({"HOME": str(tmp_path), "TATUM_KMS_DEMO_DIR": str(tmp_path / "demo")})
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], env=env, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    out = result.stdout
    refused, signed = out.index("not-approved"), out.index("Tx was processed")
    assert refused < signed
    assert re.search(r"index 2 0x[0-9a-f]{40}: 0\.250000 ETH", out)
    assert "Wallet store token               : tatum-kms-demo" in out
    scrape = out[out.index("/metrics   (the ETH transaction counters)"):]
    assert 'tatum_kms_transactions_total{chain="ETH",outcome="signed"} 1.0' in scrape
    assert 'tatum_kms_transactions_total{chain="ETH",outcome="broadcast"} 1.0' in scrape
    assert "200 {\"status\": \"ok\"}" in scrape
    assert '"status": "intact: 7 entries"' in out  # 2 runs: started, stopped; refused, signed, broadcast
    assert (tmp_path / "demo" / "wallet.dat").stat().st_mode & 0o077 == 0
