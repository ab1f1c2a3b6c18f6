"""User-facing failures. Every one prints as a single line on stderr and exits non-zero."""


class KmsError(Exception):
    """A failure the operator can act on; its message is one line and holds no secret."""

    exit_code = 1


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
