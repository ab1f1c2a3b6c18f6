"""The store's key hierarchy: password KDF, optional PKCS#11 token secret, the data key, record sealing.

The data key (DEK) encrypts every wallet record with AES-256-GCM. It is kept wrapped under a
key-encryption key (KEK) = HKDF(Argon2id(password) || token secret), where the token secret is
present only for stores bound to a PKCS#11 token and is itself kept wrapped by a key that never
leaves the token. Changing either secret rewraps the DEK alone.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms.errors import StoreError, TokenError, WrongPassword

FORMAT_VERSION = 1
_KEY_BYTES = 32
_NONCE_BYTES = 12

# RFC 9106's second recommended Argon2id profile; above OWASP's minimums (m=19 MiB, t=2, p=1).
DEFAULT_KDF = {"name": "argon2id", "memory_kib": 65536, "iterations": 3, "parallelism": 4}
_MIN_KDF = {"memory_kib": 19456, "iterations": 2, "parallelism": 1}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class TokenSettings:
    """Which PKCS#11 token and key to use; the PIN is asked for only when the token is opened."""

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
    def from_json(cls, obj: dict[str, str]) -> TokenBinding:
        return cls(obj["tokenLabel"], obj["keyLabel"], obj["keyId"], _unb64(obj["wrappedSecret"]))


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
    def from_json(cls, text: str) -> Header:
        """Parse a header; StoreError when it is malformed or of a format this build does not know."""
        try:
            obj = json.loads(text)
            kdf = dict(obj["kdf"])
            salt = _unb64(kdf.pop("salt"))
            header = cls(
                format=int(obj["format"]),
                store_id=str(obj["storeId"]),
                kdf=kdf,
                salt=salt,
                token=TokenBinding.from_json(obj["token"]) if obj.get("token") else None,
                dek_nonce=_unb64(obj["dek"]["nonce"]),
                dek_sealed=_unb64(obj["dek"]["sealed"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError("The wallet store header is corrupt (it has been altered or truncated).") from exc
        if header.format != FORMAT_VERSION:
            raise StoreError(f"Wallet store format {header.format} is not supported by this tatum-kms.")
        _check_kdf(header.kdf)
        return header

    def describe(self) -> dict[str, Any]:
        """Public facts for `checkconfig`/`report`: format, KDF and token binding, no key material."""
        kdf = self.kdf
        return {
            "format": self.format,
            "kdf": f"{kdf['name']} m={kdf['memory_kib']} t={kdf['iterations']} p={kdf['parallelism']}",
            "token": self.token.token_label if self.token else None,
            "tokenKey": self.token.key_label if self.token else None,
        }


def _check_kdf(kdf: dict[str, Any]) -> None:
    """Refuse KDF parameters below the floor, so an altered header cannot weaken the password hash."""
    try:
        weak = kdf["name"] != "argon2id" or any(int(kdf[k]) < v for k, v in _MIN_KDF.items())
    except (KeyError, TypeError, ValueError):
        weak = True
    if weak:
        raise StoreError("The wallet store header has unsupported or weakened KDF parameters.")


def _password_key(password: str, kdf: dict[str, Any], salt: bytes) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        password.encode("utf-8"),
        salt,
        time_cost=int(kdf["iterations"]),
        memory_cost=int(kdf["memory_kib"]),
        parallelism=int(kdf["parallelism"]),
        hash_len=_KEY_BYTES,
        type=Type.ID,
    )


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


def _bind_token(settings: TokenSettings, secret: bytes, key_id: str | None = None) -> TokenBinding:
    """Wrap `secret` under the token key (found or created by label, or the given id)."""
    import hsm

    def run() -> TokenBinding:
        with hsm.Token.open(settings.config()) as token:
            key = token.key(key_id) if key_id else token.find_or_create_key(settings.key_label)
            return TokenBinding(settings.token_label, key.label, key.key_id, token.wrap(key, secret))

    return _token_call(run)


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

    return _token_call(run)


def new_header(password: str, token: TokenSettings | None) -> tuple[Header, bytes]:
    """A header for a new store and its fresh DEK."""
    if not password:
        raise WrongPassword("The password must not be empty.")
    dek = AESGCM.generate_key(bit_length=256)
    header = Header(FORMAT_VERSION, uuid.uuid4().hex, dict(DEFAULT_KDF), os.urandom(16), None, b"", b"")
    return seal_dek(header, dek, password, token), dek


def seal_dek(header: Header, dek: bytes, password: str, token: TokenSettings | None,
             *, new_token_key: bool = False) -> Header:
    """The header with `dek` wrapped under a new salt, the given password and (optionally) token.

    With `new_token_key` a new key is created on the token for the new binding (rotation).
    """
    if not password:
        raise WrongPassword("The password must not be empty.")
    salt = os.urandom(16)
    binding = None
    if token is not None:
        secret = os.urandom(_KEY_BYTES)
        if new_token_key:
            import hsm

            def create() -> str:
                with hsm.Token.open(token.config()) as session:
                    return session.create_key(token.key_label).key_id

            binding = _bind_token(token, secret, key_id=_token_call(create))
        else:
            binding = _bind_token(token, secret)
    else:
        secret = None
    kek = _kek(_password_key(password, header.kdf, salt), secret, header.store_id)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(kek).encrypt(nonce, dek, _dek_aad(header.store_id))
    return replace(header, salt=salt, token=binding, dek_nonce=nonce, dek_sealed=sealed)


def open_dek(header: Header, password: str, token: TokenSettings | None) -> bytes:
    """Unwrap the DEK; WrongPassword when the password (with the token secret) does not open it."""
    secret = _token_secret(header, token)
    kek = _kek(_password_key(password, header.kdf, header.salt), secret, header.store_id)
    try:
        return AESGCM(kek).decrypt(header.dek_nonce, header.dek_sealed, _dek_aad(header.store_id))
    except InvalidTag:
        raise WrongPassword("Wrong password.") from None


class RecordCipher:
    """Seals and opens wallet records under the DEK, bound to their identity as associated data."""

    def __init__(self, dek: bytes) -> None:
        self._aead = AESGCM(dek)

    @staticmethod
    def _aad(signature_id: str, chain: str, testnet: bool) -> bytes:
        return f"tatum-kms/wallet/v{FORMAT_VERSION}|{signature_id}|{chain}|{int(testnet)}".encode()

    def seal(self, signature_id: str, chain: str, testnet: bool, fields: dict[str, Any]) -> tuple[bytes, bytes]:
        """(nonce, ciphertext) of the wallet's fields."""
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(fields, separators=(",", ":")).encode()
        return nonce, self._aead.encrypt(nonce, plaintext, self._aad(signature_id, chain, testnet))

    def open(self, signature_id: str, chain: str, testnet: bool, nonce: bytes, sealed: bytes) -> dict[str, Any]:
        """The wallet's fields; StoreError when the record was altered, swapped or truncated."""
        try:
            plaintext = self._aead.decrypt(nonce, sealed, self._aad(signature_id, chain, testnet))
        except (InvalidTag, ValueError):
            raise StoreError(
                f"Wallet record '{signature_id}' failed authentication: wallet.dat was altered or is corrupt."
            ) from None
        return json.loads(plaintext)
