"""Fixtures for end-to-end tests through the real `tatum-kms` process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kms_process import Kms


@pytest.fixture
def kms(tmp_path: Path) -> Kms:
    """A tatum-kms with a fresh HOME (so ~/.tatumrc is private to the test) and no token."""
    home = tmp_path / "home"
    home.mkdir()
    return Kms(home)


@pytest.fixture
def kms_token(tmp_path: Path, softhsm: dict[str, str]) -> Kms:
    """A tatum-kms whose store is bound to the session's SoftHSM token."""
    home = tmp_path / "home"
    home.mkdir()
    return Kms(home, env=dict(softhsm))
