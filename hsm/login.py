"""One user login per token per process, shared by every open `Token`.

PKCS#11 logs in an application, not a session: a second C_Login fails and any C_Logout ends the
login of every session. So the first `Token` on a token logs in on a session of its own (the
anchor), later ones reuse that login after checking their PIN against it, and the last to close
logs out. The PIN itself is not kept, only a keyed digest of it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from typing import Any

from pkcs11.exceptions import (
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
    UserPinNotInitialized,
)

from hsm.errors import HsmError, WrongPin

_DIGEST_KEY = os.urandom(32)
_lock = threading.Lock()


@dataclass
class _Login:
    anchor: Any
    pin_digest: bytes
    holders: int


_logins: dict[tuple[str, int], _Login] = {}


def _digest(pin: str) -> bytes:
    return hmac.new(_DIGEST_KEY, pin.encode("utf-8"), hashlib.sha256).digest()


def _login_error(exc: PKCS11Error, label: str) -> HsmError:
    if isinstance(exc, PinIncorrect):
        return WrongPin(f"Wrong PIN for PKCS#11 token '{label}'.")
    if isinstance(exc, PinLocked):
        return WrongPin(f"The user PIN of PKCS#11 token '{label}' is locked; the token's SO must unblock it.")
    if isinstance(exc, PinExpired):
        return WrongPin(f"The user PIN of PKCS#11 token '{label}' has expired; change it first.")
    if isinstance(exc, (PinLenRange, PinInvalid)):
        return WrongPin(f"PKCS#11 token '{label}' does not accept that PIN (length or characters).")
    if isinstance(exc, UserPinNotInitialized):
        return HsmError(f"PKCS#11 token '{label}' has no user PIN yet; initialise it first.")
    if isinstance(exc, UserAlreadyLoggedIn):
        return HsmError(f"PKCS#11 token '{label}' is already logged in by other code in this process.")
    return HsmError(f"Login to PKCS#11 token '{label}' failed ({type(exc).__name__}).")


def acquire(module: str, token: Any, pin: str) -> tuple[str, int]:
    """Make sure this process is logged in to `token` with `pin`; returns the handle for `release`."""
    key = (module, token.slot.slot_id)
    with _lock:
        login = _logins.get(key)
        if login is not None:
            if not hmac.compare_digest(login.pin_digest, _digest(pin)):
                raise WrongPin(f"Wrong PIN for PKCS#11 token '{token.label}'.")
            login.holders += 1
            return key
        try:
            anchor = token.open(user_pin=pin)
        except PKCS11Error as exc:
            raise _login_error(exc, token.label) from None
        _logins[key] = _Login(anchor, _digest(pin), 1)
        return key


def holds(module: str) -> bool:
    """True while this process is logged in to a token of `module` (its sessions depend on the module)."""
    with _lock:
        return any(key[0] == module for key in _logins)


def release(key: tuple[str, int]) -> None:
    """Give back one hold on a login; the last one logs out and closes the anchor session."""
    with _lock:
        login = _logins.get(key)
        if login is None:
            return
        login.holders -= 1
        if login.holders > 0:
            return
        del _logins[key]
        try:
            login.anchor.close()
        except PKCS11Error:
            pass  # the token went away or the session is already gone: nothing left to log out of
