"""PKCS#11: find the token, make or find the key-encryption key, wrap and unwrap. Nothing else.

`Token.open(TokenConfig(...))` logs in; `find_or_create_key`, `create_key`, `key` and
`destroy_key` manage the AES-256 key on the token; `wrap`/`unwrap` protect a host secret with it.
"""

from hsm.config import DEFAULT_KEY_LABEL, KeyRef, TokenConfig
from hsm.errors import (
    HsmError,
    KeyNotFound,
    KeyNotSuitable,
    MechanismNotSupported,
    ModuleNotFound,
    TokenNotFound,
    UnwrapFailed,
    WrongPin,
)
from hsm.token import OWNER_BYTES, Token, key_owner

__all__ = [
    "DEFAULT_KEY_LABEL",
    "HsmError",
    "KeyNotFound",
    "KeyNotSuitable",
    "KeyRef",
    "MechanismNotSupported",
    "ModuleNotFound",
    "OWNER_BYTES",
    "Token",
    "TokenConfig",
    "TokenNotFound",
    "UnwrapFailed",
    "WrongPin",
    "key_owner",
]
