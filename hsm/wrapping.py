"""AES key wrap of a host secret under the token key, and the self-describing blob it produces.

A blob is one tag byte naming the PKCS#11 mechanism, then that mechanism's output. The secret only
ever enters the token as a short-lived session object, destroyed before the call returns.
"""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    DeviceError,
    DeviceMemory,
    DeviceRemoved,
    FunctionNotSupported,
    HostMemory,
    MechanismInvalid,
    MechanismParamInvalid,
    PKCS11Error,
    SessionClosed,
    SessionHandleInvalid,
    TokenNotPresent,
    UserNotLoggedIn,
)

from hsm.errors import HsmError, MechanismNotSupported, UnwrapFailed

# Tag byte -> mechanism. 1: RFC 3394. 2 and 3: RFC 5649 (SoftHSM2 and PKCS#11 2.40 tokens use
# CKM_AES_KEY_WRAP_PAD for it, PKCS#11 3.0 names it CKM_AES_KEY_WRAP_KWP). Tags are never reused.
MECHANISMS: dict[int, Mechanism] = {
    1: Mechanism.AES_KEY_WRAP,
    2: Mechanism.AES_KEY_WRAP_PAD,
    3: Mechanism.AES_KEY_WRAP_KWP,
}

# What a token answers when it cannot do a mechanism (with this key).
UNSUPPORTED = (MechanismInvalid, MechanismParamInvalid, FunctionNotSupported)
# Failures of the token or session rather than of the data: never reported as a bad blob.
TOKEN_STATE = (SessionHandleInvalid, SessionClosed, DeviceRemoved, DeviceError, DeviceMemory,
               TokenNotPresent, UserNotLoggedIn, HostMemory)


def describe(exc: PKCS11Error) -> str:
    """A short name for a python-pkcs11 error: its class, or the CKR code it could not map."""
    if type(exc) is PKCS11Error:
        return " ".join(str(exc).split()) or "PKCS11Error"
    return type(exc).__name__


def check_secret(secret: bytes) -> None:
    """Reject secrets AES key wrap cannot take whole: 16 to 64 bytes, a multiple of 8."""
    if not isinstance(secret, bytes | bytearray):
        raise TypeError("secret must be bytes")
    if not 16 <= len(secret) <= 64 or len(secret) % 8:
        raise ValueError(f"secret must be 16 to 64 bytes, a multiple of 8 (got {len(secret)} bytes)")


def wrap_secret(session: Any, kek: Any, secret: bytes, order: list[int], where: str) -> tuple[int, bytes]:
    """Wrap `secret` with the first mechanism in `order` that wraps and unwraps it back; (tag, blob)."""
    check_secret(secret)
    try:
        material = session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.VALUE: bytes(secret),
            Attribute.TOKEN: False,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: True,
        })
    except PKCS11Error as exc:
        raise HsmError(f"The token refused the secret to wrap ({describe(exc)}).") from None
    try:
        for tag in order:
            try:
                wrapped = kek.wrap_key(material, mechanism=MECHANISMS[tag])
            except UNSUPPORTED:
                continue
            except PKCS11Error as exc:
                raise HsmError(f"Wrapping with {where} failed ({describe(exc)}).") from None
            blob = bytes([tag]) + wrapped
            try:  # tried, not trusted: only a blob that opens again is handed out
                if unwrap_secret(session, kek, blob, where) == bytes(secret):
                    return tag, blob
            except (MechanismNotSupported, UnwrapFailed):
                continue
        raise MechanismNotSupported(
            f"Neither AES key wrap (RFC 3394) nor AES key wrap with padding (RFC 5649) works with {where}."
        )
    finally:
        _destroy(material)


def unwrap_secret(session: Any, kek: Any, blob: bytes, where: str) -> bytes:
    """The secret inside `blob`; UnwrapFailed if `kek` is not the key that wrapped it or it was modified."""
    if len(blob) < 2 or blob[0] not in MECHANISMS:
        raise UnwrapFailed("The wrapped secret is not in a format this version knows (bad tag byte).")
    mechanism = MECHANISMS[blob[0]]
    try:
        material = kek.unwrap_key(
            ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, bytes(blob[1:]),
            mechanism=mechanism, store=False, capabilities=0,
            template={Attribute.PRIVATE: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    except UNSUPPORTED:
        raise MechanismNotSupported(f"{where} cannot unwrap with {mechanism.name}.") from None
    except TOKEN_STATE as exc:
        raise HsmError(f"Unwrapping with {where} failed ({describe(exc)}).") from None
    except PKCS11Error:
        raise UnwrapFailed(
            f"The wrapped secret does not open with {where}: another key wrapped it, or it was modified."
        ) from None
    try:
        return bytes(material[Attribute.VALUE])
    except PKCS11Error as exc:
        raise HsmError(f"The token will not reveal the unwrapped secret ({describe(exc)}).") from None
    finally:
        _destroy(material)


def _destroy(material: Any) -> None:
    try:
        material.destroy()
    except PKCS11Error:
        pass  # a session object: it goes when the session closes at the latest
