"""The store's key hierarchy: password KDF, optional PKCS#11 token secret, the data key, record sealing.

The data key (DEK) encrypts every wallet record with AES-256-GCM. It is kept wrapped under a
key-encryption key (KEK) = HKDF(Argon2id(password) || token secret), where the token secret is
present only for stores bound to a PKCS#11 token and is itself kept wrapped by a key of that store's
own on the token (named by its id in the header, never found by label). Changing either secret
rewraps the DEK alone. A key derived from the DEK authenticates the store's state (generation and
removals), so a removed record put back from an old copy is recognised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chains import safejson
from kms.errors import StoreError, TokenError, WrongPassword

FORMAT_VERSION = 2
_KEY_BYTES = 32
_NONCE_BYTES = 12
_SALT_BYTES = 16
_MAX_HEADER_CHARS = 16_384
_HEX_ID = re.compile(r"[0-9a-f]{32}")

# RFC 9106's second recommended Argon2id profile; above OWASP's minimums (m=19 MiB, t=2, p=1).
DEFAULT_KDF = {"name": "argon2id", "memory_kib": 65536, "iterations": 3, "parallelism": 4}
MIN_KDF = {"memory_kib": 19456, "iterations": 2, "parallelism": 1}
# Upper bounds, checked before deriving: 1 GiB, 16 passes, 64 lanes, and at most 4 GiB of passes in
# all (a few seconds; the default is 192 MiB of passes). A header asking for more is refused.
MAX_KDF = {"memory_kib": 1 << 20, "iterations": 16, "parallelism": 64}
MAX_KDF_WORK_KIB = 4 << 20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, lengths: range, what: str) -> bytes:
    """Base64 `text` decoded, of a length in `lengths`; ValueError naming `what` otherwise."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError(f"{what} is not base64 text")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not base64") from None
    if len(data) not in lengths:
        raise ValueError(f"{what} has {len(data)} bytes")
    return data


def _int(value: object, what: str) -> int:
    if type(value) is not int:  # not bool, not float, not text
        raise ValueError(f"{what} is not an integer")
    return value


def _text(value: object, what: str, max_chars: int = 256) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_chars or not value.isprintable():
        raise ValueError(f"{what} is not a short printable text")
    return value


def _password_bytes(password: str) -> bytes:
    if not password:
        raise WrongPassword("The password must not be empty.")
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise WrongPassword("The password is not valid UTF-8 text.") from None


@dataclass(frozen=True)
class TokenSettings:
    """Which PKCS#11 token to use, and the label for keys made on it; the PIN is asked for only when
    the token is opened."""

    module: str
    token_label: str
    key_label: str
    pin: Callable[[], str]

    def config(self) -> Any:
        """The `hsm.TokenConfig` for these settings (asks for the PIN now)."""
        import hsm

        return hsm.TokenConfig(self.module, self.token_label, self.pin(), self.key_label)


@dataclass(frozen=True)
class TokenBinding:
    """What the header records of the token a store is bound to: labels, key id, wrapped secret."""

    token_label: str
    key_label: str
    key_id: str
    wrapped_secret: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "tokenLabel": self.token_label,
            "keyLabel": self.key_label,
            "keyId": self.key_id,
            "wrappedSecret": _b64(self.wrapped_secret),
        }

    @classmethod
    def from_json(cls, obj: object) -> TokenBinding:
        """A binding from its JSON object; ValueError when a field is missing or of the wrong type or length."""
        if not isinstance(obj, dict) or set(obj) != {"tokenLabel", "keyLabel", "keyId", "wrappedSecret"}:
            raise ValueError("the token binding does not have its four fields")
        key_id = obj["keyId"]
        if not isinstance(key_id, str) or not _HEX_ID.fullmatch(key_id):
            raise ValueError("the token key id is not 32 hex digits")
        return cls(_text(obj["tokenLabel"], "the token label"), _text(obj["keyLabel"], "the key label", 1024),
                   key_id, _unb64(obj["wrappedSecret"], range(2, 130), "the wrapped token secret"))


@dataclass(frozen=True)
class Header:
    """The store header: format, KDF parameters, token binding and the wrapped DEK (no secret in clear)."""

    format: int
    store_id: str
    kdf: dict[str, Any]
    salt: bytes
    token: TokenBinding | None
    dek_nonce: bytes
    dek_sealed: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "storeId": self.store_id,
                "kdf": {**self.kdf, "salt": _b64(self.salt)},
                "token": self.token.to_json() if self.token else None,
                "dek": {"nonce": _b64(self.dek_nonce), "sealed": _b64(self.dek_sealed)},
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: object) -> Header:
        """Parse and check a header; StoreError when it is malformed, of another format, or asks for a KDF
        outside the bounds (all before any key is derived)."""
        corrupt = "The wallet store header is corrupt (it has been altered or truncated)"
        if not isinstance(text, str) or len(text) > _MAX_HEADER_CHARS:
            raise StoreError(f"{corrupt}.")
        try:
            obj = safejson.loads(text, ValueError, what="it", max_depth=3, max_bytes=_MAX_HEADER_CHARS)
        except ValueError as exc:
            raise StoreError(f"{corrupt}: {exc}.") from None
        if not isinstance(obj, dict):
            raise StoreError(f"{corrupt}.")
        version = obj.get("format")
        if type(version) is int and version != FORMAT_VERSION:
            hint = " (an early development build's: export it with that build and import the JSON)" \
                if version == 1 else ""
            raise StoreError(f"Wallet store format {version} is not supported by this tatum-kms{hint}.")
        try:
            if set(obj) != {"format", "storeId", "kdf", "token", "dek"}:
                raise ValueError("unexpected or missing fields")
            _int(version, "format")
            store_id = obj["storeId"]
            if not isinstance(store_id, str) or not _HEX_ID.fullmatch(store_id):
                raise ValueError("the store id is not 32 hex digits")
            kdf = obj["kdf"]
            if not isinstance(kdf, dict) or set(kdf) != {"name", "memory_kib", "iterations", "parallelism", "salt"}:
                raise ValueError("the KDF does not have its five fields")
            salt = _unb64(kdf["salt"], range(_SALT_BYTES, 65), "the KDF salt")
            params = {k: v for k, v in kdf.items() if k != "salt"}
            dek = obj["dek"]
            if not isinstance(dek, dict) or set(dek) != {"nonce", "sealed"}:
                raise ValueError("the wrapped data key does not have its two fields")
            header = cls(
                format=version,
                store_id=store_id,
                kdf=params,
                salt=salt,
                token=None if obj["token"] is None else TokenBinding.from_json(obj["token"]),
                dek_nonce=_unb64(dek["nonce"], range(_NONCE_BYTES, _NONCE_BYTES + 1), "the data key nonce"),
                dek_sealed=_unb64(dek["sealed"], range(_KEY_BYTES + 16, _KEY_BYTES + 17), "the wrapped data key"),
            )
        except ValueError as exc:
            raise StoreError(f"{corrupt}: {exc}.") from None
        check_kdf(header.kdf)
        return header

    def describe(self) -> dict[str, Any]:
        """Public facts for `checkconfig`/`report`: format, KDF and token binding, no key material."""
        kdf = self.kdf
        return {
            "format": self.format,
            "kdf": f"{kdf['name']} m={kdf['memory_kib']} t={kdf['iterations']} p={kdf['parallelism']}",
            "token": self.token.token_label if self.token else None,
            "tokenKey": self.token.key_label if self.token else None,
            "tokenKeyId": self.token.key_id if self.token else None,
        }


def check_kdf(kdf: Mapping[str, Any]) -> None:
    """Refuse KDF parameters below the floor (an altered header must not weaken the password hash) or
    above the bounds (nor make every unlock hang or exhaust memory)."""
    names = ("memory_kib", "iterations", "parallelism")
    if kdf.get("name") != "argon2id" or any(type(kdf.get(k)) is not int for k in names):
        raise StoreError("The wallet store header has unsupported or weakened KDF parameters.")
    if any(kdf[k] < MIN_KDF[k] for k in names):
        raise StoreError("The wallet store header has unsupported or weakened KDF parameters.")
    if any(kdf[k] > MAX_KDF[k] for k in names) or kdf["memory_kib"] * kdf["iterations"] > MAX_KDF_WORK_KIB:
        raise StoreError(
            "The wallet store header asks for KDF parameters beyond this build's bounds (at most m=1048576 KiB, "
            f"t=16, p=64, m*t={MAX_KDF_WORK_KIB}): refused before deriving anything."
        )


def _password_key(password: bytes, kdf: Mapping[str, Any], salt: bytes) -> bytes:
    from argon2.exceptions import HashingError
    from argon2.low_level import Type, hash_secret_raw

    check_kdf(kdf)
    try:
        return hash_secret_raw(
            password,
            salt,
            time_cost=kdf["iterations"],
            memory_cost=kdf["memory_kib"],
            parallelism=kdf["parallelism"],
            hash_len=_KEY_BYTES,
            type=Type.ID,
        )
    except HashingError as exc:  # e.g. the memory could not be allocated
        raise StoreError(f"The password key could not be derived ({exc}).") from None


def _kek(password_key: bytes, token_secret: bytes | None, store_id: str) -> bytes:
    info = b"tatum-kms/kek/v1" + (b"/token" if token_secret is not None else b"")
    return HKDF(hashes.SHA256(), _KEY_BYTES, salt=store_id.encode(), info=info).derive(
        password_key + (token_secret or b"")
    )


def _dek_aad(store_id: str) -> bytes:
    return f"tatum-kms/dek/v{FORMAT_VERSION}|{store_id}".encode()


def _token_call(action: Callable[[], Any]) -> Any:
    """Run a token operation, turning `hsm` errors into one-line TokenErrors."""
    import hsm

    try:
        return action()
    except hsm.HsmError as exc:
        raise TokenError(f"PKCS#11 token: {exc}") from None


def key_owner(store_id: str) -> bytes:
    """The 8 bytes that start the id of every token key made for the store `store_id`."""
    import hsm

    return bytes.fromhex(store_id)[: hsm.OWNER_BYTES]


def owns_token_key(header: Header, key_id: str) -> bool:
    """True when the token key `key_id` was made for this store (earlier builds shared keys by label)."""
    import hsm

    return hsm.key_owner(key_id) == key_owner(header.store_id)


def _bind_token(settings: TokenSettings, secret: bytes, header: Header, fresh: bool,
                derive: Callable[[], bytes]) -> tuple[TokenBinding, bytes]:
    """Log in to the token, run `derive` (the KDF), then wrap `secret` under a new key made for this store
    (`fresh`) or under the key it is bound to; (binding, derived key). A wrong module, token or PIN thus
    fails before the KDF, and nothing can fail after a new key is made."""
    import hsm

    def run() -> tuple[TokenBinding, bytes]:
        with hsm.Token.open(settings.config()) as token:
            derived = derive()
            if fresh:
                key = token.create_key(settings.key_label, owner=key_owner(header.store_id))
            else:
                key = token.key(header.token.key_id)
            try:
                binding = TokenBinding(settings.token_label, key.label, key.key_id, token.wrap(key, secret))
            except BaseException:
                if fresh:
                    _quietly(lambda: token.destroy_key(key))
                raise
            return binding, derived

    if not fresh:
        return _with_missing_key(header, run)
    return _token_call(run)


def _with_missing_key(header: Header, action: Callable[[], Any]) -> Any:
    """Run a token operation on the store's own key; a missing key is a TokenError naming the key it needs."""
    import hsm

    binding = header.token
    try:
        return action()
    except hsm.KeyNotFound:
        raise TokenError(
            f"This wallet store needs key {binding.key_id} (label '{binding.key_label}') on PKCS#11 token "
            f"'{binding.token_label}', and the token has no key with that id: it was destroyed (a rotation of "
            "another copy of this store?) or this is another token."
        ) from None
    except hsm.HsmError as exc:
        raise TokenError(f"PKCS#11 token: {exc}") from None


def _quietly(action: Callable[[], Any]) -> None:
    import hsm

    try:
        action()
    except hsm.HsmError:
        pass


def discard_token_key(settings: TokenSettings, key_id: str) -> None:
    """Best effort: destroy a key this process just made for a binding that was never committed."""
    import hsm

    def run() -> None:
        with hsm.Token.open(settings.config()) as token:
            token.destroy_key(token.key(key_id))

    _quietly(run)


def check_token_key(header: Header, settings: TokenSettings) -> None:
    """Check that the token holds the store's key and that it opens the store's wrapped secret."""
    import hsm

    binding = header.token

    def run() -> None:
        with hsm.Token.open(settings.config()) as token:
            token.unwrap(token.key(binding.key_id), binding.wrapped_secret)

    _with_missing_key(header, run)


def _token_secret(header: Header, settings: TokenSettings | None) -> bytes | None:
    if header.token is None:
        return None
    binding = header.token
    if settings is None:
        raise TokenError(
            f"This wallet store is bound to the PKCS#11 token '{binding.token_label}': set "
            "TATUM_KMS_PKCS11_MODULE and TATUM_KMS_PKCS11_TOKEN (or --pkcs11Module/--pkcs11Token)."
        )
    import hsm

    def run() -> bytes:
        with hsm.Token.open(settings.config()) as token:
            return token.unwrap(token.key(binding.key_id), binding.wrapped_secret)

    return _with_missing_key(header, run)


def new_header(password: str, token: TokenSettings | None,
               kdf: Mapping[str, Any] | None = None) -> tuple[Header, bytes]:
    """A header for a new store and its fresh DEK; with a token, a new key is made on it for this store.

    `kdf` (default DEFAULT_KDF) must be within the floor and bounds.
    """
    params = dict(kdf or DEFAULT_KDF)
    check_kdf(params)
    dek = AESGCM.generate_key(bit_length=256)
    header = Header(FORMAT_VERSION, uuid.uuid4().hex, params, os.urandom(_SALT_BYTES), None, b"", b"")
    return seal_dek(header, dek, password, token), dek


def seal_dek(header: Header, dek: bytes, password: str, token: TokenSettings | None,
             *, new_token_key: bool = False) -> Header:
    """The header with `dek` wrapped under a new salt, the given password and (optionally) token.

    With a token, the new binding uses the key the store is bound to, or a new key made for this store
    when `new_token_key` (rotation) or when the store was not bound yet. The KDF runs after the token
    login and before the key is made; a caller that then fails to commit discards the new key.
    """
    salt = os.urandom(_SALT_BYTES)
    password_bytes = _password_bytes(password)

    def derive() -> bytes:
        return _password_key(password_bytes, header.kdf, salt)

    binding, secret = None, None
    if token is None:
        password_key = derive()
    else:
        secret = os.urandom(_KEY_BYTES)
        binding, password_key = _bind_token(token, secret, header, new_token_key or header.token is None, derive)
    kek = _kek(password_key, secret, header.store_id)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(kek).encrypt(nonce, dek, _dek_aad(header.store_id))
    return replace(header, salt=salt, token=binding, dek_nonce=nonce, dek_sealed=sealed)


def open_dek(header: Header, password: str, token: TokenSettings | None) -> bytes:
    """Unwrap the DEK; WrongPassword when the password (with the token secret) does not open it."""
    password_bytes = _password_bytes(password)
    secret = _token_secret(header, token)
    kek = _kek(_password_key(password_bytes, header.kdf, header.salt), secret, header.store_id)
    try:
        return AESGCM(kek).decrypt(header.dek_nonce, header.dek_sealed, _dek_aad(header.store_id))
    except InvalidTag:
        raise WrongPassword("Wrong password.") from None


class RecordCipher:
    """Seals and opens wallet records under the DEK, bound to their identity and generation as associated
    data, and tags the store's state and removals with a key derived from the DEK."""

    def __init__(self, dek: bytes, store_id: str) -> None:
        self._aead = AESGCM(dek)
        self._store_id = store_id
        self._mac_key = HKDF(hashes.SHA256(), _KEY_BYTES, salt=store_id.encode(),
                             info=b"tatum-kms/state/v2").derive(dek)

    @staticmethod
    def _aad(signature_id: str, chain: str, testnet: bool, gen: int) -> bytes:
        return f"tatum-kms/wallet/v{FORMAT_VERSION}|{signature_id}|{chain}|{int(testnet)}|{gen}".encode()

    def seal(self, signature_id: str, chain: str, testnet: bool, gen: int,
             fields: dict[str, Any]) -> tuple[bytes, bytes]:
        """(nonce, ciphertext) of the wallet's fields, written at generation `gen`."""
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(fields, separators=(",", ":")).encode()
        return nonce, self._aead.encrypt(nonce, plaintext, self._aad(signature_id, chain, testnet, gen))

    def open(self, signature_id: str, chain: str, testnet: bool, gen: int, nonce: bytes,
             sealed: bytes) -> dict[str, Any]:
        """The wallet's fields; StoreError when the record was altered, swapped or truncated."""
        try:
            plaintext = self._aead.decrypt(nonce, sealed, self._aad(signature_id, chain, testnet, gen))
            fields = json.loads(plaintext)
        except (InvalidTag, ValueError, TypeError, UnicodeError, RecursionError):
            fields = None
        if not isinstance(fields, dict):
            raise StoreError(
                f"Wallet record '{signature_id}' failed authentication: wallet.dat was altered or is corrupt."
            )
        return fields

    def _mac(self, *parts: object) -> bytes:
        message = "|".join(["tatum-kms/v2", self._store_id, *map(str, parts)]).encode()
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()

    def state_tag(self, gen: int, removed: int) -> bytes:
        """The tag of the store's state: its generation and how many removals it has recorded."""
        return self._mac("state", gen, removed)

    def removal_tag(self, signature_id: str, gen: int) -> bytes:
        """The tag of one removal record (the wallet `signature_id` removed at generation `gen`)."""
        return self._mac("removed", signature_id, gen)

    @staticmethod
    def same(a: object, b: bytes) -> bool:
        """Constant-time comparison of a stored tag (of any type) with the expected one."""
        return isinstance(a, bytes) and hmac.compare_digest(a, b)
