"""The two value types of `hsm`: which token to use (`TokenConfig`) and which key on it (`KeyRef`)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_KEY_LABEL = "tatum-kms-kek"


@dataclass(frozen=True)
class TokenConfig:
    """A PKCS#11 module, the label of a token it serves, the user PIN and the key label to use."""

    module: str
    token_label: str
    pin: str = field(repr=False)
    key_label: str = DEFAULT_KEY_LABEL


@dataclass(frozen=True)
class KeyRef:
    """A key-encryption key on the token: its label and its CKA_ID in hex, which names it uniquely."""

    label: str
    key_id: str
    created: bool = False
