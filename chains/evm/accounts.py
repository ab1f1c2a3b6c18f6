"""EVM-style wallets shared by every chain of the family (EVM entries, CELO, VET): BIP44 by coin type, keccak
addresses with a prefix (`0x`, XDC's `xdc`), `0x` private keys (spec §2.2).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from chains.base import ChainBase, ChainError, check_index
from chains.primitives.hd import XPUB, account_node, mnemonic_wallet, new_mnemonic, parse_xpub
from chains.primitives.secp import PrivateKey, PublicKey, hex_secret, keccak256, random_secret


class EvmAccounts(ChainBase):
    """Wallet commands of a secp256k1/keccak chain; a subclass sets `code`, `coin_type` and `address_prefix`.

    Mainnet wallets derive at `m/44'/<coin type>'/0'/0`, testnet ones at `m/44'/1'/0'/0` for every chain
    (one testnet xpub for all), and xpubs always carry Bitcoin mainnet version bytes, as the original's.
    """

    code: str
    coin_type: int
    address_prefix: str = "0x"

    def derivation_path(self, testnet: bool) -> str:
        """The account node the wallet's xpub is taken at (testnet: coin type 1 for every EVM chain)."""
        return f"m/44'/{1 if testnet else self.coin_type}'/0'/0"

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"}: a new 24-word mnemonic and its account xpub."""
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"} for an existing mnemonic (checked)."""
        return mnemonic_wallet(self.derivation_path(testnet), XPUB, mnemonic)

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random key (`0x` + 64 hex) and its address; no mnemonic behind it."""
        secret = random_secret()
        return "0x" + secret.hex(), self.address_of_public_key(PublicKey.from_secret(secret).format(compressed=False))

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        """Address of child `index` of the account xpub (always `xpub` version bytes, also on testnet)."""
        child = parse_xpub(xpub, frozenset({XPUB})).child(check_index(index))
        return self.address_of_public_key(PublicKey(child.public_key).format(compressed=False))

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        """Private key of child `index`, `0x` + 64 lowercase hex."""
        child = account_node(mnemonic, self.derivation_path(testnet)).child(check_index(index))
        assert child.private_key is not None
        return "0x" + child.private_key.hex()

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """Address of a `0x`-hex (or bare hex) private key."""
        return self.address_of_public_key(PublicKey.from_secret(secret_of(private_key)).format(compressed=False))

    def address_of_public_key(self, uncompressed_public_key: bytes) -> str:
        """The prefix and the last 20 bytes of keccak256 of the 64-byte public key, lowercase."""
        return self.address_prefix + keccak256(uncompressed_public_key[1:])[12:].hex()


def secret_of(private_key: Any) -> bytes:
    """The 32 bytes of a `0x`-hex (or bare hex) private key; ChainError, without the key, otherwise."""
    if not isinstance(private_key, str):
        raise ChainError("private key must be a hex string")
    return hex_secret(private_key.strip())


#: EIP-55: (address hex digit + hash hex digit) -> the digit, upper-cased where the hash nibble is 8 or more.
_EIP55 = {c + d: c.upper() if int(d, 16) >= 8 else c for c in "0123456789abcdef" for d in "0123456789abcdef"}


#: Signer addresses by a keccak tag of the key (never the key itself): deriving the public key costs more
#: than the rest of a fill-in, and the daemon signs for the same wallets cycle after cycle.
_ADDRESSES: dict[bytes, bytes] = {}


class Sender:
    """The signer's address, computed only if a fill-in needs it (keeps complete payloads fast)."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    @cached_property
    def raw(self) -> bytes:
        """The 20 address bytes (remembered per key, under a hash of it, for the daemon's next signature)."""
        tag = keccak256(b"tatum-kms sender " + self._key.secret)
        address = _ADDRESSES.get(tag)
        if address is None:
            address = keccak256(self._key.public_key.format(compressed=False)[1:])[12:]
            if len(_ADDRESSES) >= 4096:
                _ADDRESSES.clear()
            _ADDRESSES[tag] = address
        return address

    @cached_property
    def lower(self) -> str:
        """`0x` + lowercase hex."""
        return "0x" + self.raw.hex()

    @cached_property
    def checksummed(self) -> str:
        """EIP-55 mixed-case address, as web3 reports `defaultAccount`."""
        lower = self.raw.hex()
        digest = keccak256(lower.encode("ascii")).hex()[:40]
        return "0x" + "".join(map(_EIP55.__getitem__, map(str.__add__, lower, digest)))

    def __repr__(self) -> str:
        return "Sender(...)"
