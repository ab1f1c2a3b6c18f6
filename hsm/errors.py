"""The `hsm` exceptions: one class per failure a caller can act on, all under `HsmError`.

Messages are one line and never contain the PIN.
"""

from __future__ import annotations


class HsmError(Exception):
    """Root of every error raised by `hsm`."""


class ModuleNotFound(HsmError):
    """The PKCS#11 module path is missing or is not a loadable PKCS#11 library."""


class TokenNotFound(HsmError):
    """No token with the configured label (the message lists the labels that exist)."""


class WrongPin(HsmError):
    """The token refused the PIN: incorrect, locked, or of a length it does not accept."""


class KeyNotFound(HsmError):
    """No key-encryption key with that label or id on the token."""


class KeyNotSuitable(HsmError):
    """A key with that label exists but is not a sensitive, non-extractable AES-256 wrapping key."""


class MechanismNotSupported(HsmError):
    """The token cannot do AES key wrap (RFC 3394 or RFC 5649) with its key."""


class UnwrapFailed(HsmError):
    """A wrapped secret did not open: another key, or the data was modified."""
