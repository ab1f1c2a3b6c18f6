"""BIP39 mnemonics and BIP32 derivation on secp256k1, as the original's wallets use them.

Mnemonic words come from bip-utils (imported only when a mnemonic is made or checked);
the seed is stdlib PBKDF2 and the child-key arithmetic is coincurve, which keeps the
per-address and per-key paths (`getaddress`, the daemon) in tens of microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from chains.base import ChainError
from chains.primitives.secp import N, PublicKey, b58check_decode, b58check_encode, check_secret, hash160

HARDENED = 0x80000000

#: Public version bytes of serialized extended keys.
XPUB = 0x0488B21E
TPUB = 0x043587CF


def new_mnemonic() -> str:
    """A fresh 24-word English mnemonic (256 bits of entropy), as the original generates."""
    from bip_utils import Bip39MnemonicGenerator, Bip39WordsNum

    return str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24))


def check_mnemonic(mnemonic: str) -> None:
    """Raise ChainError unless `mnemonic` is a BIP39 English mnemonic with a valid checksum."""
    from bip_utils import Bip39MnemonicValidator

    if not isinstance(mnemonic, str) or not Bip39MnemonicValidator().IsValid(mnemonic):
        raise ChainError("mnemonic is not a valid BIP39 English mnemonic (unknown word or bad checksum)")


def seed_from_mnemonic(mnemonic: str, passphrase: str = "") -> bytes:
    """The BIP39 seed: PBKDF2-HMAC-SHA512, 2048 rounds, NFKD-normalized, as bip39 (JS) computes it."""
    if not isinstance(mnemonic, str) or not mnemonic.strip():
        raise ChainError("mnemonic is empty")
    words = unicodedata.normalize("NFKD", mnemonic).encode("utf-8")
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase).encode("utf-8")
    return hashlib.pbkdf2_hmac("sha512", words, salt, 2048)


@dataclass(frozen=True)
class HdNode:
    """A BIP32 node: a private key (or None for a public-only node) with its chain code and place."""

    public_key: bytes  # 33-byte compressed
    chain_code: bytes
    private_key: bytes | None = None
    depth: int = 0
    parent_fingerprint: bytes = b"\0\0\0\0"
    child_number: int = 0

    def __repr__(self) -> str:  # never show the private key
        return f"HdNode(depth={self.depth}, child={self.child_number}, private={self.private_key is not None})"

    @classmethod
    def from_seed(cls, seed: bytes) -> HdNode:
        """The master node of a BIP32 tree."""
        digest = hmac.digest(b"Bitcoin seed", seed, "sha512")
        secret = check_secret(digest[:32])
        return cls(PublicKey.from_secret(secret).format(), digest[32:], secret)

    @property
    def fingerprint(self) -> bytes:
        """First four bytes of hash160 of the public key, as children record their parent."""
        return hash160(self.public_key)[:4]

    def child(self, index: int) -> HdNode:
        """Child `index` (hardened when index >= 2^31): private derivation if we hold the key, else public."""
        if not 0 <= index < 2**32:
            raise ChainError("derivation index must be in [0, 2^32)")
        if index >= HARDENED:
            if self.private_key is None:
                raise ChainError("a hardened child needs the private key")
            data = b"\0" + self.private_key + index.to_bytes(4, "big")
        else:
            data = self.public_key + index.to_bytes(4, "big")
        digest = hmac.digest(self.chain_code, data, "sha512")
        tweak, chain_code = digest[:32], digest[32:]
        if int.from_bytes(tweak, "big") >= N:
            raise ChainError(f"derivation index {index} gives an invalid key; use another index")
        place = {"depth": self.depth + 1, "parent_fingerprint": self.fingerprint, "child_number": index}
        if self.private_key is None:
            try:
                public = PublicKey(self.public_key).add(tweak).format()
            except ValueError:
                raise ChainError(f"derivation index {index} gives an invalid key; use another index") from None
            return HdNode(public, chain_code, None, **place)
        secret = (int.from_bytes(tweak, "big") + int.from_bytes(self.private_key, "big")) % N
        if secret == 0:
            raise ChainError(f"derivation index {index} gives an invalid key; use another index")
        secret_bytes = secret.to_bytes(32, "big")
        return HdNode(PublicKey.from_secret(secret_bytes).format(), chain_code, secret_bytes, **place)

    def derive(self, path: str) -> HdNode:
        """Follow a path like `m/44'/60'/0'/0` from this (master) node."""
        parts = path.split("/")
        if parts[0] != "m":
            raise ChainError(f"derivation path must start with m/: {path}")
        node = self
        for part in parts[1:]:
            hardened = part.endswith("'")
            digits = part[:-1] if hardened else part
            if not digits.isdigit():
                raise ChainError(f"bad derivation path element {part!r}")
            node = node.child(int(digits) + (HARDENED if hardened else 0))
        return node

    def xpub(self, version: int = XPUB) -> str:
        """The serialized extended public key (`xpub…`/`tpub…` by `version`)."""
        return b58check_encode(
            version.to_bytes(4, "big") + bytes([self.depth]) + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big") + self.chain_code + self.public_key
        )


@lru_cache(maxsize=256)
def parse_xpub(xpub: str, versions: frozenset[int] = frozenset({XPUB, TPUB})) -> HdNode:
    """A public node from its serialization; ChainError for a private or foreign extended key.

    Cached: an xpub is public and `getaddress` parses the same one again and again.
    """
    if not isinstance(xpub, str):
        raise ChainError("xpub must be a string")
    raw = b58check_decode(xpub.strip(), "xpub")
    if len(raw) != 78:
        raise ChainError("xpub is not a serialized extended key")
    version = int.from_bytes(raw[:4], "big")
    if version not in versions:
        raise ChainError("xpub is not an extended public key of this chain (wrong version bytes)")
    public_key = raw[45:78]
    if public_key[0] not in (2, 3):
        raise ChainError("xpub does not hold a compressed public key")
    try:
        PublicKey(public_key)
    except ValueError:
        raise ChainError("xpub holds an invalid public key") from None
    return HdNode(public_key, raw[13:45], None, raw[4], raw[5:9], int.from_bytes(raw[9:13], "big"))


@lru_cache(maxsize=32)
def account_node(mnemonic: str, path: str) -> HdNode:
    """The node at `path` (the wallet's xpub node) for a mnemonic.

    Bounded, in-process cache: the daemon derives keys for the same few wallets every cycle,
    and the 2048-round PBKDF2 seed dominates a derivation. Nothing is written anywhere.
    """
    return HdNode.from_seed(seed_from_mnemonic(mnemonic)).derive(path)


def mnemonic_wallet(path: str, version: int = XPUB, mnemonic: str | None = None) -> dict[str, str]:
    """{"mnemonic", "xpub"}: a new 24-word mnemonic (or the given one, checked) and the xpub of its node at `path`."""
    if mnemonic is None:
        mnemonic = new_mnemonic()
    else:
        check_mnemonic(mnemonic)
    return {"mnemonic": mnemonic, "xpub": account_node(mnemonic, path).xpub(version)}
