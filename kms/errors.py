"""User-facing failures of the application. Every one prints as a single line on stderr and exits non-zero.

The root of all of them, and of `chains.base.ChainError`, is `chains.base.TatumKmsError`:

    TatumKmsError
    ├── ChainError            a bad key, index, payload or chain (chains)
    └── KmsError              the application
        ├── WrongPassword, StoreError, UnknownWallet, TokenError, ConfigError
        ├── SigningKeyError   the wallets named by a pending transaction cannot give the key it needs
        └── TatumError        a Tatum API or node call failed

`hsm.HsmError` stays separate (that package knows nothing of this one); the store turns it into TokenError.
"""

from __future__ import annotations

from chains.base import TatumKmsError


class KmsError(TatumKmsError):
    """A failure the operator can act on; its message is one line and holds no secret."""


class WrongPassword(KmsError):
    """The password (or password + token) does not open the store."""


class StoreError(KmsError):
    """The store is missing, tampered with, of an unknown format or otherwise unusable."""


class UnknownWallet(KmsError):
    """No wallet with that signature id in the store."""


class TokenError(KmsError):
    """The PKCS#11 token is missing, locked, refuses the PIN or lacks the key."""


class ConfigError(KmsError):
    """A setting (flag, environment variable, password source) is missing or invalid."""


class SigningKeyError(KmsError):
    """The wallets named by a pending transaction cannot provide the key it needs (reported to Tatum)."""


class TatumError(KmsError):
    """A Tatum API (or chain node) call failed.

    `report` is what the original sends to the error batch for an HTTP error: the response body
    pretty-printed (2-space JSON); None when no response came back. `status` is the HTTP status when one
    came; `sent` is False when the request provably never left (no connection was made).
    """

    def __init__(self, message: str, *, status: int | None = None, report: str | None = None,
                 sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.report = report
        self.sent = sent
