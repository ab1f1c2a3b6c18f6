"""Session-wide fixtures: a real SoftHSM2 token made for this test run in a temp dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOKEN_LABEL = "tatum-kms-test"
TOKEN_PIN = "4321"

# Run the same tests against a real token (YubiHSM 2, a cloud HSM) by setting these.
_MODULE_CANDIDATES = [
    os.environ.get("PKCS11_MODULE", ""),
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
]


def softhsm_module() -> str:
    """Path of the PKCS#11 module under test."""
    for candidate in _MODULE_CANDIDATES:
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("SoftHSM2 is not installed: apt-get install softhsm2 (or set PKCS11_MODULE)")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh token for this session; returns the environment variables that select it.

    SOFTHSM2_CONF is also set in this process so in-process python-pkcs11 sees the token.
    """
    directory = tmp_path_factory.mktemp("softhsm")
    conf = subprocess.check_output(
        ["bash", str(ROOT / "softhsm-config" / "make-token.sh"), str(directory), TOKEN_LABEL],
        env={**os.environ, "TATUM_KMS_PKCS11_PIN": TOKEN_PIN},
        text=True,
    ).strip()
    os.environ["SOFTHSM2_CONF"] = conf
    return {
        "SOFTHSM2_CONF": conf,
        "TATUM_KMS_PKCS11_MODULE": softhsm_module(),
        "TATUM_KMS_PKCS11_TOKEN": TOKEN_LABEL,
        "TATUM_KMS_PKCS11_PIN": TOKEN_PIN,
    }
