"""Loading a PKCS#11 module (once per process) and finding a token in it by label."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import TokenFlag
from pkcs11.exceptions import PKCS11Error, TokenNotPresent, TokenNotRecognised

from hsm import login
from hsm.errors import HsmError, ModuleNotFound, TokenNotFound

_load_lock = threading.Lock()


def one_line(text: str) -> str:
    """`text` with its line breaks folded, so every `hsm` message stays on one line."""
    return " ".join(str(text).split())


def load_module(path: str) -> Any:
    """The initialised `pkcs11.lib` for `path`; python-pkcs11 keeps it, so later calls cost nothing."""
    if not path:
        raise ModuleNotFound("No PKCS#11 module is configured.")
    if "\x00" in path:
        raise ModuleNotFound("A PKCS#11 module path cannot contain a NUL character.")
    try:
        missing = "/" in path and not Path(path).is_file()
        path.encode("utf-8")
    except (OSError, UnicodeEncodeError):
        missing = True
    if missing:
        raise ModuleNotFound(f"PKCS#11 module not found: {path!r}")
    with _load_lock:
        try:
            return pkcs11.lib(path)
        except PKCS11Error as exc:
            reason = one_line(str(exc)) or type(exc).__name__
            if "loading" in reason:
                raise ModuleNotFound(f"Cannot load the PKCS#11 module {path}: {reason}") from None
            raise HsmError(
                f"The PKCS#11 module {path} failed to initialise ({type(exc).__name__}); "
                "check its configuration (for SoftHSM2, SOFTHSM2_CONF)."
            ) from None


_READ_ATTEMPTS = 5


def find_token(lib: Any, module: str, label: str) -> Any:
    """The one initialised token labelled `label`; TokenNotFound names the labels that exist.

    A token that cannot be read, or a module that shows no initialised token at all, is asked again a few
    times (for about a second), the module re-initialised first when this process holds no login on it:
    SoftHSM2 reads its token files while other processes write them, and then fails (GeneralError, or no
    token) until it reads them again.
    """
    for attempt in range(_READ_ATTEMPTS):
        try:
            return _find_token_once(lib, module, label)
        except _Transient as exc:
            if attempt == _READ_ATTEMPTS - 1:
                raise exc.error from None
            time.sleep(0.05 * 2**attempt)
            if not login.holds(module):  # no session of ours to lose: let the module read its tokens afresh
                with _load_lock, contextlib.suppress(PKCS11Error):
                    lib.reinitialize()
    raise AssertionError("unreachable")


class _Transient(Exception):
    def __init__(self, error: HsmError) -> None:
        super().__init__(str(error))
        self.error = error


def _find_token_once(lib: Any, module: str, label: str) -> Any:
    try:
        slots = lib.get_slots(token_present=True)
    except PKCS11Error as exc:
        raise HsmError(f"Cannot list the slots of {module} ({type(exc).__name__}).") from None
    found, labels = [], []
    for slot in slots:
        try:
            token = slot.get_token()
        except (TokenNotPresent, TokenNotRecognised):
            continue
        except PKCS11Error as exc:
            raise _Transient(HsmError(f"Cannot read a token of {module} ({type(exc).__name__}).")) from None
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        labels.append(token.label)
        if token.label == label:
            found.append(token)
    if not labels:
        raise _Transient(TokenNotFound(f"No PKCS#11 token labelled '{label}' in {module}; tokens present: none."))
    if len(found) > 1:
        raise HsmError(f"{len(found)} tokens in {module} are labelled '{label}'; give each its own label.")
    if not found:
        present = ", ".join(f"'{name}'" for name in labels) if labels else "none"
        raise TokenNotFound(f"No PKCS#11 token labelled '{label}' in {module}; tokens present: {present}.")
    return found[0]
