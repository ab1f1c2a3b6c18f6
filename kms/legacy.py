"""Reading the original tatum-kms's wallet.dat (CryptoJS passphrase AES) and `export` JSON, for `import`.

The original writes `CryptoJS.AES.encrypt(JSON.stringify(wallets), password).toString()`: base64 of
OpenSSL's "Salted__" format, i.e. b"Salted__" + 8-byte salt + AES-256-CBC/PKCS#7 ciphertext, with key
and IV from EVP_BytesToKey(MD5, one round, password, salt). `openssl enc -aes-256-cbc -md md5 -a -A`
writes the same thing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

from chains import safejson
from kms.errors import StoreError, WrongPassword

#: Wallets are an object of objects of strings; anything nested deeper than this is not a wallet file.
_MAX_DEPTH = 32

LEGACY_MAGIC = b"U2FsdGVkX1"  # base64 of b"Salted__" (the first 10 characters are fixed)
_SALTED = b"Salted__"
_BLOCK = 16
_KEY_BYTES = 32
_SECRET_FIELDS = ("mnemonic", "privateKey", "secret", "address")
_TEXT_FIELDS = ("mnemonic", "privateKey", "secret", "address", "xpub")


def is_legacy_file(path: str | os.PathLike[str]) -> bool:
    """True when the file at `path` is the original's wallet.dat (base64 text starting "U2FsdGVkX1")."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return is_legacy_data(head)


def is_legacy_data(data: bytes) -> bool:
    """True when `data` is the content of an original wallet.dat (base64 text starting "U2FsdGVkX1")."""
    return data[:64].lstrip().startswith(LEGACY_MAGIC)


def evp_bytes_to_key(password: bytes, salt: bytes, length: int = _KEY_BYTES + _BLOCK) -> bytes:
    """OpenSSL's EVP_BytesToKey with MD5 and one round: MD5 blocks D_i = MD5(D_{i-1} || password || salt)."""
    derived = b""
    block = b""
    while len(derived) < length:
        block = hashlib.md5(block + password + salt, usedforsecurity=False).digest()
        derived += block
    return derived[:length]


def decrypt_legacy(data: bytes | str, password: str) -> dict[str, dict[str, Any]]:
    """The wallets of an original-format wallet.dat: {signatureId: {...fields, "chain", "testnet"}}.

    A wrong password raises WrongPassword; a file that is not base64, not "Salted__", truncated or
    damaged raises StoreError. The password is told apart from damage by the first plaintext block:
    with the right password it is the start of the JSON text.
    """
    raw = _unbase64(data)
    if len(raw) < len(_SALTED) + 8 or not raw.startswith(_SALTED):
        raise StoreError("The file is not an original tatum-kms wallet.dat (no OpenSSL 'Salted__' header).")
    salt, ciphertext = raw[8:16], raw[16:]
    if not ciphertext or len(ciphertext) % _BLOCK:
        raise StoreError("The original wallet.dat is truncated (its ciphertext is not whole AES blocks).")
    try:
        password_bytes = password.encode("utf-8")
    except UnicodeEncodeError:
        raise WrongPassword("The legacy password is not valid UTF-8 text.") from None
    plaintext = _decrypt_cbc(ciphertext, password_bytes, salt)
    wallets = _parse_plaintext(plaintext)
    if wallets is None:
        if _looks_like_json_start(plaintext):
            raise StoreError("The original wallet.dat is damaged or truncated (the password is right).")
        raise WrongPassword("Wrong legacy password: it does not decrypt the original wallet.dat.")
    if not isinstance(wallets, dict):
        raise StoreError("The original wallet.dat does not hold a JSON object of wallets.")
    return validate_wallets(wallets, "the original wallet.dat")


def parse_export(text: str) -> dict[str, dict[str, Any]]:
    """The wallets of JSON printed by `export` (ours or the original's); StoreError when it is not that shape."""
    if safejson.nests_deeper(text, _MAX_DEPTH):
        raise StoreError("The JSON to import is nested too deeply to be wallets printed by `export`.")
    try:
        wallets = json.loads(text)
    except ValueError:
        raise StoreError("The file to import is neither an original wallet.dat nor JSON printed by `export`.") from None
    if not isinstance(wallets, dict):
        raise StoreError("The JSON to import is not an object of wallets keyed by signature id.")
    return validate_wallets(wallets, "the JSON to import")


def validate_wallets(wallets: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Check each entry has a string `chain`, a boolean `testnet` and a key field; messages name ids, never values."""
    for signature_id, wallet in wallets.items():
        if not _fit_text(signature_id):
            raise StoreError(f"A signature id in {where} is not 1 to 256 printable characters of valid text.")
        if not isinstance(wallet, dict):
            raise StoreError(f"Wallet {signature_id} in {where} is not an object.")
        if not _fit_text(wallet.get("chain")):
            raise StoreError(f"Wallet {signature_id} in {where} has no chain.")
        if not isinstance(wallet.get("testnet"), bool):
            raise StoreError(f"Wallet {signature_id} in {where} has no boolean testnet flag.")
        if not any(wallet.get(name) for name in _SECRET_FIELDS):
            raise StoreError(f"Wallet {signature_id} in {where} has none of mnemonic, privateKey, secret, address.")
        for name in _TEXT_FIELDS:
            if name in wallet and not isinstance(wallet[name], str):
                raise StoreError(f"Wallet {signature_id} in {where}: field '{name}' is not a string.")
        try:
            json.dumps(wallet).encode("utf-8")
        except (UnicodeEncodeError, ValueError, RecursionError):
            raise StoreError(f"Wallet {signature_id} in {where} holds a value that is not valid text.") from None
    return wallets


def _fit_text(value: object) -> bool:
    """A signature id or chain code the store takes: 1 to 256 printable characters of valid UTF-8."""
    if not isinstance(value, str) or not 0 < len(value) <= 256 or not value.isprintable():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unbase64(data: bytes | str) -> bytes:
    text = data.encode("ascii", "replace") if isinstance(data, str) else data
    text = b"".join(text.split())  # a trailing newline (or a wrapped file) is harmless
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise StoreError("The original wallet.dat is not valid base64 (truncated or damaged?).") from None


def _decrypt_cbc(ciphertext: bytes, password: bytes, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key_iv = evp_bytes_to_key(password, salt)
    decryptor = Cipher(algorithms.AES(key_iv[:_KEY_BYTES]), modes.CBC(key_iv[_KEY_BYTES:])).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _parse_plaintext(padded: bytes) -> Any | None:
    """The JSON value of the PKCS#7-padded plaintext, or None when padding, UTF-8 or JSON is wrong.

    Text that is JSON nested too deeply to parse (only the right password yields text at all) is a
    StoreError: the file is damaged, not the password wrong.
    """
    pad = padded[-1]
    if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
        return None
    try:
        text = padded[:-pad].decode("utf-8")
    except ValueError:
        return None
    if safejson.nests_deeper(text, _MAX_DEPTH):
        raise StoreError("The original wallet.dat is damaged: its JSON is nested too deeply to be wallets.")
    try:
        return json.loads(text)
    except ValueError:
        return None


def _looks_like_json_start(plaintext: bytes) -> bool:
    """True when a first block, followed by more, is printable text starting with '{' (random bytes never are)."""
    first = plaintext[:_BLOCK]
    return len(plaintext) > _BLOCK and first.startswith(b"{") and all(0x20 <= byte < 0x7F for byte in first)
