"""`Token`: a logged-in session on one PKCS#11 token, holding the store's key-encryption keys.

The key is AES-256, generated on the token, stored on it (CKA_TOKEN), private, sensitive and not
extractable, and allowed to wrap and unwrap only. Its CKA_ID (16 bytes) names it uniquely: either an
owner's 8-byte prefix then random bytes (`create_key(owner=...)`, one key per store), or the creation
time then random bytes. Keys sharing a label are told apart by it.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any

from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error

from hsm import login
from hsm.config import KeyRef, TokenConfig
from hsm.errors import HsmError, KeyNotFound, KeyNotSuitable, MechanismNotSupported, WrongPin
from hsm.module import find_token, load_module
from hsm.wrapping import MECHANISMS, UNSUPPORTED, describe, unwrap_secret, wrap_secret

_KEY_BITS = 256
_ID_BYTES = 16

# The wrap mechanism found to work, per (module, slot), so later wraps try it first.
_working_mechanism: dict[tuple[str, int], int] = {}
_mechanism_lock = threading.Lock()

_REQUIRED = {
    Attribute.VALUE_LEN: _KEY_BITS // 8,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
}


OWNER_BYTES = 8


def _new_key_id(owner: bytes = b"") -> bytes:
    """`owner` (8 bytes) or 8 bytes of creation time (ns, big-endian), then 8 random bytes: unique."""
    if owner and len(owner) != OWNER_BYTES:
        raise ValueError(f"a key owner is {OWNER_BYTES} bytes (got {len(owner)})")
    return (owner or time.time_ns().to_bytes(8, "big")) + os.urandom(_ID_BYTES - OWNER_BYTES)


def key_owner(key_id: str) -> bytes:
    """The first 8 bytes of a key id (hex): the owner given to `create_key`, or its creation time."""
    try:
        return bytes.fromhex(key_id)[:OWNER_BYTES]
    except ValueError:
        return b""


def _check_text(config: TokenConfig) -> None:
    """PKCS#11 takes UTF-8: a label, key label or PIN that is not valid text is refused here, by name only."""
    for name, value, error in (("token label", config.token_label, HsmError), ("key label", config.key_label, HsmError),
                               ("PIN", config.pin, WrongPin)):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"The PKCS#11 {name} is not valid UTF-8 text.") from None


class Token:
    """A logged-in session on the configured token; use as a context manager so it is closed."""

    def __init__(self, module: str, token: Any, session: Any, login_key: tuple[str, int], key_label: str) -> None:
        self._module = module
        self._label = token.label
        self._session = session
        self._login_key = login_key
        self._slot_key = (module, token.slot.slot_id)
        self.key_label = key_label
        self._closed = False

    @classmethod
    def open(cls, config: TokenConfig) -> Token:
        """Load the module, find the token by label and log in with the PIN."""
        _check_text(config)
        lib = load_module(config.module)
        token = find_token(lib, config.module, config.token_label)
        login_key = login.acquire(config.module, token, config.pin)
        try:
            session = token.open(rw=True)
        except PKCS11Error as exc:
            login.release(login_key)
            raise HsmError(f"Cannot open a session on PKCS#11 token '{token.label}' ({describe(exc)}).") from None
        return cls(config.module, token, session, login_key, config.key_label)

    def __enter__(self) -> Token:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<hsm.Token '{self._label}' in {self._module} ({state})>"

    def close(self) -> None:
        """Close the session (its session objects go with it) and log out if no other Token holds the login."""
        if self._closed:
            return
        self._closed = True
        try:
            self._session.close()
        except PKCS11Error:
            pass  # the token went away: there is nothing left to close
        finally:
            login.release(self._login_key)

    # -- keys -------------------------------------------------------------------------------------

    def find_or_create_key(self, label: str | None = None) -> KeyRef:
        """The newest key with `label` (default: the configured key label), created if there is none."""
        label = label or self.key_label
        keys = [key for key in self._find(label=label) if self._key_id(key)]
        if not keys:
            return self.create_key(label)
        newest = max(keys, key=self._key_id)
        self._check_suitable(newest, label)
        return KeyRef(label, self._key_id(newest).hex(), created=False)

    def create_key(self, label: str | None = None, owner: bytes = b"") -> KeyRef:
        """A new key with `label` and a new CKA_ID, even if keys with that label exist (rotation).

        With `owner` (8 bytes) the CKA_ID starts with it, so whoever made the key can recognise it later.
        """
        label = label or self.key_label
        key_id = _new_key_id(owner)
        try:
            self._session.generate_key(
                KeyType.AES, _KEY_BITS, id=key_id, label=label, store=True,
                capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
                template={
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.MODIFIABLE: False,
                },
            )
        except UNSUPPORTED:
            raise MechanismNotSupported(f"PKCS#11 token '{self._label}' cannot generate AES-256 keys.") from None
        except PKCS11Error as exc:
            raise self._refused(f"to create key '{label}'", exc) from None
        return KeyRef(label, key_id.hex(), created=True)

    def key(self, key_id: str) -> KeyRef:
        """The key whose CKA_ID is `key_id` (hex); KeyNotFound if the token has none."""
        key = self._get(key_id)
        label = self._read(key, Attribute.LABEL, "")
        self._check_suitable(key, label)
        return KeyRef(label, key_id.lower(), created=False)

    def keys(self, label: str | None = None) -> list[KeyRef]:
        """The AES keys on the token (with `label`, if given) that have an id, oldest id first."""
        found = self._find(label=label) if label else self._find()
        refs = [KeyRef(self._read(key, Attribute.LABEL, ""), self._key_id(key).hex()) for key in found
                if self._key_id(key)]
        return sorted(refs, key=lambda ref: ref.key_id)

    def destroy_key(self, key: KeyRef) -> None:
        """Delete the key from the token for good; whatever it wrapped can no longer be opened."""
        found = self._get(key.key_id)
        try:
            found.destroy()
        except PKCS11Error as exc:
            raise self._refused(f"to destroy key {key.key_id}", exc) from None

    # -- wrapping ---------------------------------------------------------------------------------

    def wrap(self, key: KeyRef, secret: bytes) -> bytes:
        """`secret` wrapped under `key` by AES key wrap, as a blob `unwrap` takes back."""
        kek = self._get(key.key_id)
        with _mechanism_lock:
            first = _working_mechanism.get(self._slot_key)
        order = sorted(MECHANISMS, key=lambda tag: tag != first)
        tag, blob = wrap_secret(self._session, kek, secret, order, self._where(key))
        with _mechanism_lock:
            _working_mechanism[self._slot_key] = tag
        return blob

    def unwrap(self, key: KeyRef, wrapped: bytes) -> bytes:
        """The secret `wrap` put in `wrapped`; UnwrapFailed if `key` did not wrap it or it was modified."""
        kek = self._get(key.key_id)
        return unwrap_secret(self._session, kek, bytes(wrapped), self._where(key))

    # -- helpers ----------------------------------------------------------------------------------

    def _refused(self, what: str, exc: PKCS11Error) -> HsmError:
        return HsmError(f"PKCS#11 token '{self._label}' refused {what} ({describe(exc)}).")

    def _where(self, key: KeyRef) -> str:
        return f"key {key.key_id} on PKCS#11 token '{self._label}'"

    def _find(self, **attrs: Any) -> list[Any]:
        template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.TOKEN: True}
        if "label" in attrs:
            template[Attribute.LABEL] = attrs["label"]
        if "key_id" in attrs:
            template[Attribute.ID] = attrs["key_id"]
        try:
            return list(self._session.get_objects(template))
        except PKCS11Error as exc:
            raise HsmError(f"Cannot search PKCS#11 token '{self._label}' ({describe(exc)}).") from None

    def _get(self, key_id: str) -> Any:
        try:
            raw_id = bytes.fromhex(key_id)
        except (TypeError, ValueError):
            raw_id = b""
        found = self._find(key_id=raw_id) if raw_id else []
        if not found:
            raise KeyNotFound(f"No key with id {key_id!r} on PKCS#11 token '{self._label}'.")
        if len(found) > 1:
            raise HsmError(f"{len(found)} keys on PKCS#11 token '{self._label}' share the id {key_id}.")
        return found[0]

    def _key_id(self, key: Any) -> bytes:
        return self._read(key, Attribute.ID, b"") or b""

    def _read(self, key: Any, attribute: Attribute, default: Any) -> Any:
        try:
            return key[attribute]
        except PKCS11Error:
            return default

    def _check_suitable(self, key: Any, label: str) -> None:
        for attribute, wanted in _REQUIRED.items():
            if self._read(key, attribute, None) != wanted:
                raise KeyNotSuitable(
                    f"Key '{label}' on PKCS#11 token '{self._label}' is not a sensitive, non-extractable AES-256 "
                    f"wrapping key ({attribute.name} is not {wanted}); use another key label."
                )
