"""The text of `checkconfig` and the JSON of `report`, as the original prints them, plus the token and store format.

Pure functions: the CLI passes the environment, the store path, the password source and what the
store says about itself (`store_info`: exists, format, kdf, token label); nothing here opens a file.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kms import __version__
from kms.unlock import PasswordSource

NOT_SET = "N/A"
SECRET_MASK = "*" * 8  # the same for every secret: no character and no length shown
_LABEL_WIDTH = 33


def hide_value(value: str | None, show_start: int = 6, show_end: int = 6) -> str:
    """`value` with all but its first `show_start` and last `show_end` characters as '*' ('' when unset).

    As the original's hideValue, except that it meant the last `show_end` characters: its end slice
    stops one short, showing characters -7..-2 and hiding the last one. A value too short to hide
    anything is all stars.
    """
    if not value:
        return ""
    length = len(value)
    if length <= show_start + show_end:
        return "*" * length
    return value[:show_start] + "*" * (length - show_start - show_end) + value[length - show_end:]


def hide_identifier(value: str | None) -> str:
    """A setting that is not itself a secret (alias, user name, key id, names): its first six characters.

    This is the original's hidePassword, which it also applies to the password; here the passwords
    get `hide_secret` instead.
    """
    return hide_value(value, 6, 0) if value else NOT_SET


def hide_secret(value: str | None) -> str:
    """A password-like value (store password, PIN, secret keys): '********' when set, showing no character of it.

    The original shows the password's first six characters; this shows none, nor its length.
    """
    return SECRET_MASK if value else NOT_SET


def hide_api_key(value: str | None) -> str:
    """The Tatum API key with its first and last six characters shown, as the original (with hide_value's fix);
    the README says the same."""
    return hide_value(value) if value else NOT_SET


def _plain(value: str | None) -> str:
    return NOT_SET if value is None else value


def _js_bool(value: bool) -> str:
    return "true" if value else "false"


# (variable, how it is shown) in the original's order, then the settings this implementation adds.
_ORIGINAL_VARIABLES = (
    ("TATUM_API_KEY", hide_api_key),
    ("TATUM_KMS_PASSWORD", hide_secret),
    ("TATUM_KMS_VGS_ALIAS", hide_identifier),
    ("TATUM_KMS_VGS_USERNAME", hide_identifier),
    ("TATUM_KMS_VGS_PASSWORD", hide_secret),
    ("TATUM_KMS_AZURE_SECRETVERSION", hide_identifier),
    ("TATUM_KMS_AZURE_SECRETNAME", hide_identifier),
    ("TATUM_KMS_AZURE_VAULTURL", hide_identifier),
    ("TATUM_KMS_AWS_REGION", _plain),
    ("TATUM_KMS_AWS_ACCESS_KEY_ID", hide_identifier),
    ("TATUM_KMS_AWS_SECRET_ACCESS_KEY", hide_secret),
    ("TATUM_KMS_AWS_SECRET_NAME", hide_identifier),
    ("TATUM_KMS_AWS_SECRET_KEY", hide_identifier),
    ("TATUM_KMS_DEBUG_MODE", _plain),
)
_ADDED_VARIABLES = (
    ("TATUM_KMS_PKCS11_MODULE", _plain),
    ("TATUM_KMS_PKCS11_TOKEN", _plain),
    ("TATUM_KMS_PKCS11_PIN", hide_secret),
    ("TATUM_KMS_PKCS11_KEY", _plain),
    ("TATUM_KMS_LEGACY_PASSWORD", hide_secret),
    ("TATUM_API_URL", _plain),
    ("AWS_ENDPOINT_URL", _plain),
    ("TATUM_KMS_VGS_URL", _plain),
    ("AZURE_AUTHORITY_HOST", _plain),
    ("AZURE_TENANT_ID", hide_identifier),
    ("AZURE_CLIENT_ID", hide_identifier),
    ("AZURE_CLIENT_SECRET", hide_secret),
)


def _line(label: str, value: object) -> str:
    return f"{label.ljust(_LABEL_WIDTH)}: {_printable(str(value))}"


def _printable(text: str) -> str:
    """`text` with line breaks, other control characters and undecodable bytes escaped (\\n, \\udcff), so a
    value can neither forge a line nor fail to print."""
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)


def check_config_text(env: Mapping[str, str], *, path: str | Path, env_file: str | None,
                      source: PasswordSource, store_info: Mapping[str, Any]) -> str:
    """The lines `checkconfig` prints: the original's, then the store format, KDF, token and added variables.

    `env_file` is the .env file actually read (None: none); the original printed the default path
    even when no such file existed.
    """
    lines = [
        _line("Version", __version__),
        _line("Wallet file path", path),
        _line("Wallet exists", _js_bool(bool(store_info.get("exists")))),
        _line("Wallet store type", source.value),
        _line("Environment vars file", env_file or NOT_SET),
    ]
    lines += [_line(name, show(env.get(name))) for name, show in _ORIGINAL_VARIABLES]
    lines += [
        _line("Wallet store format", _plain(_text(store_info.get("format")))),
        _line("Wallet store KDF", _plain(_text(store_info.get("kdf")))),
        _line("Wallet store token", store_info.get("token") or "none (password only)"),
        _line("Wallet store token key", _token_key(store_info)),
    ]
    lines += [_line(name, show(env.get(name))) for name, show in _ADDED_VARIABLES]
    return "\n".join(lines)


def _token_key(store_info: Mapping[str, Any]) -> str:
    """The token key the store is bound to: its label and its id (the id names it; labels are shared)."""
    if not store_info.get("tokenKeyId"):
        return NOT_SET
    return f"{store_info.get('tokenKey')} (id {store_info['tokenKeyId']})"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# -- report ---------------------------------------------------------------------------------------


def _js_typeof(wallet: Mapping[str, Any], field: str) -> str:
    """What JavaScript's typeof says of the field, for the original's warning texts."""
    if field not in wallet:
        return "undefined"
    value = wallet[field]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"  # null, arrays and objects alike


def _js_truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _check_field(wallet: Mapping[str, Any], field: str, expected: str, warnings: list[str]) -> None:
    kind = _js_typeof(wallet, field)
    if kind != expected:
        warnings.append(f"Field '{field}' is not {expected}. Its type is: {kind}")


def classify_wallet(wallet: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The wallet's type (MNEMONIC, PRIVATE_KEY, SECRET or OTHER) and the original's warnings about its fields."""
    warnings: list[str] = []
    for secret_field, kind, extra in (("mnemonic", "MNEMONIC", ("xpub",)), ("privateKey", "PRIVATE_KEY", ()),
                                      ("secret", "SECRET", ())):
        if _js_truthy(wallet.get(secret_field)):
            _check_field(wallet, "chain", "string", warnings)
            _check_field(wallet, secret_field, "string", warnings)
            for name in extra:
                _check_field(wallet, name, "string", warnings)
            _check_field(wallet, "testnet", "boolean", warnings)
            return kind, warnings
    return "OTHER", ["Wallet type is not recognized. Mnemonic, privateKey or secret are absent"]


def report(env: Mapping[str, str], *, path: str | Path, source: PasswordSource, store_info: Mapping[str, Any],
           wallets: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON `report` prints for the asked signature ids (`wallets`: id -> the stored wallet, or None).

    As the original's, except `system.pythonVersion` in place of `nodeVersion`, and `system.store`
    also gives the path, format, KDF and token label. Keys with nothing to say are left out, as
    JSON.stringify leaves out undefined ones.
    """
    system_warnings: list[str] = []
    wallet_reports: dict[str, Any] = {}
    for signature_id, wallet in wallets.items():
        if wallet is None:
            system_warnings.append(f"No wallet found for signatureId: {signature_id}")
            continue
        if not isinstance(wallet, Mapping):
            kind = "string" if isinstance(wallet, str) else "number" if isinstance(wallet, int | float) else "object"
            system_warnings.append(f"Wallet for signatureId: {signature_id} is not an object. Its type is: {kind}")
            continue
        wallet_type, warnings = classify_wallet(wallet)
        entry: dict[str, Any] = {"type": wallet_type}
        entry.update({name: wallet[name] for name in ("chain", "testnet") if name in wallet})
        if warnings:
            entry["warnings"] = warnings
        wallet_reports[signature_id] = entry
    store = {
        "type": source.value,
        "exists": bool(store_info.get("exists")),
        "path": str(path),
        "format": store_info.get("format"),
        "kdf": store_info.get("kdf"),
        "token": store_info.get("token"),
    }
    result: dict[str, Any] = {
        "system": {"kmsVersion": __version__, "pythonVersion": platform.python_version(),
                   "store": {k: v for k, v in store.items() if v is not None}},
        "wallets": wallet_reports,
        "apiKey": hide_api_key(env.get("TATUM_API_KEY")),
    }
    if system_warnings:
        result["warnings"] = system_warnings
    return result
