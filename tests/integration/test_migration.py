"""Moving from the original: `tatum-kms import --from` an original wallet.dat made by the real openssl."""

from __future__ import annotations

from pathlib import Path

from tests.kms_process import Kms
from tests.legacy_files import WALLET_SHAPES, write_legacy_wallet_dat

LEGACY_PASSWORD = "the original's password 2021"


def test_every_wallet_shape_is_imported_with_its_signature_id_and_read_back(kms: Kms, tmp_path: Path) -> None:
    old = write_legacy_wallet_dat(tmp_path / "old" / "wallet.dat", WALLET_SHAPES, LEGACY_PASSWORD)
    legacy = {"TATUM_KMS_LEGACY_PASSWORD": LEGACY_PASSWORD}
    assert kms.ok("import", "--from", str(old), env=legacy) == {"imported": 5, "alreadyPresent": 0}
    assert kms.ok("export") == WALLET_SHAPES
    assert kms.ok("getaddress", "0a5a3c1e-2f6b-4c55-9a57-3c9a1c1d0b01", "0")["address"].startswith("bc1q")
    assert kms.ok("import", "--from", str(old), env=legacy) == {"imported": 0, "alreadyPresent": 5}


def test_wrong_legacy_password_is_one_line_and_imports_nothing(kms: Kms, tmp_path: Path) -> None:
    old = write_legacy_wallet_dat(tmp_path / "wallet.dat", WALLET_SHAPES, LEGACY_PASSWORD)
    line = kms.fails("import", "--from", str(old), env={"TATUM_KMS_LEGACY_PASSWORD": "a guess"})
    assert "Wrong legacy password" in line
    assert "a guess" not in line and LEGACY_PASSWORD not in line
    assert not kms.store.exists()  # nothing created for an import that could not be read


def test_truncated_legacy_file_is_one_line_saying_so(kms: Kms, tmp_path: Path) -> None:
    old = write_legacy_wallet_dat(tmp_path / "wallet.dat", WALLET_SHAPES, LEGACY_PASSWORD)
    old.write_bytes(old.read_bytes()[:128])
    line = kms.fails("import", "--from", str(old), env={"TATUM_KMS_LEGACY_PASSWORD": LEGACY_PASSWORD})
    assert "truncated" in line and "Wrong legacy password" not in line


def test_pointing_path_at_an_original_file_says_how_to_migrate(kms: Kms, tmp_path: Path) -> None:
    old = write_legacy_wallet_dat(tmp_path / "wallet.dat", WALLET_SHAPES, LEGACY_PASSWORD)
    before = old.read_bytes()
    line = kms.fails("export", "--path", str(old))
    assert "tatum-kms import --from" in line
    assert old.read_bytes() == before


def test_a_wrong_legacy_password_leaves_an_existing_store_byte_identical(kms: Kms, tmp_path: Path) -> None:
    kms.ok("generatemanagedwallet", "ETH")
    before = kms.store.read_bytes()
    old = write_legacy_wallet_dat(tmp_path / "wallet.dat", WALLET_SHAPES, LEGACY_PASSWORD)
    kms.fails("import", "--from", str(old), env={"TATUM_KMS_LEGACY_PASSWORD": "a guess"})
    assert kms.store.read_bytes() == before


def test_the_json_export_of_another_store_is_imported(kms: Kms, tmp_path: Path) -> None:
    other = Kms(tmp_path / "other-home")
    other.home.mkdir()
    signature_id = other.ok("generatemanagedwallet", "BTC", "--testnet")["signatureId"]
    exported = tmp_path / "export.json"
    exported.write_text(other.run("export").stdout)
    assert kms.ok("import", "--from", str(exported)) == {"imported": 1, "alreadyPresent": 0}
    assert kms.ok("getmanagedwallet", signature_id) == other.ok("getmanagedwallet", signature_id)


def test_checkconfig_and_report_describe_an_original_file_without_opening_it(kms: Kms, tmp_path: Path) -> None:
    old = write_legacy_wallet_dat(tmp_path / "wallet.dat", WALLET_SHAPES, LEGACY_PASSWORD)
    text = kms.run("checkconfig", "--path", str(old)).stdout
    assert "tatum-kms import --from" in text
