"""Fixtures for end-to-end tests through the real `tatum-kms` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.tatum import TatumClient
from tests.kms_process import Kms
from tests.tatum_sandbox import Admin, running_sandbox

API_KEY = "sandbox-test-key-7f3a9c"


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


@pytest.fixture
def sandbox() -> Iterator[Admin]:
    """A `tatum-kms sandbox` process on 127.0.0.1, stopped after the test."""
    with running_sandbox() as admin:
        yield admin


@pytest.fixture
def client(sandbox: Admin) -> Iterator[TatumClient]:
    """A TatumClient for the sandbox with the tests' API key and short retry back-off."""
    tatum = TatumClient(API_KEY, sandbox.url, backoff=0.01)
    yield tatum
    tatum.close()
