"""Bitcoin-family chains: BIP44 wallets, WIF keys and bitcore-style signing (spec §2.2, §3.4).

A chain is data (a `BitcoinChain` with its two `Network` records), so a new Bitcoin-like chain is one
entry (BTC, LTC, DOGE here; BCH in `chains.bitcoin.bcash`); the transaction codec is `chains.bitcoin.tx`,
bitcore's serialization checks `chains.bitcoin.checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from chains.base import ChainBase, ChainError, KeyPolicy, Node, PendingTransaction, Signed, check_index
from chains.bitcoin.checks import SerializationChecks
from chains.bitcoin.tx import (
    P2PK,
    P2PKH,
    P2SH,
    P2WPKH,
    Transaction,
    TxInput,
    classify,
    from_bitcore_json,
    p2pkh_script,
    p2wpkh_script,
    push,
)
from chains.primitives.bech32 import encode_segwit
from chains.primitives.hd import account_node, mnemonic_wallet, new_mnemonic, parse_xpub
from chains.primitives.secp import (
    PrivateKey,
    PublicKey,
    SigningKey,
    b58check_encode,
    hash160,
    hex_secret,
    random_secret,
    wif_decode,
    wif_encode,
)

OFFCHAIN_BROADCAST = "/v3/offchain/withdrawal/broadcast"


@dataclass(frozen=True)
class Network:
    """Version bytes of one network (mainnet or testnet) of a bitcoin-family chain."""

    p2pkh: int
    p2sh: int
    wif: int
    xpub: int
    bech32: str | None = None  # segwit human-readable part; None where the chain has no segwit


@dataclass(frozen=True)
class _Signer:
    """One private key ready to sign: its secret, the public key it commits to and that key's hash."""

    key: PrivateKey
    public_key: bytes
    pubkey_hash: bytes

    def __repr__(self) -> str:
        return f"_Signer(pubkey_hash={self.pubkey_hash.hex()})"


@dataclass(frozen=True)
class BitcoinChain(ChainBase):
    """A bitcoin-family chain: derivation, address styles and signing rules, all as data."""

    code: str
    coin_type: int
    mainnet: Network
    testnet: Network
    broadcast_path: str
    #: Address style of xpub-derived (and freshly generated) addresses: BTC bech32, LTC/DOGE legacy.
    xpub_address: Literal["p2wpkh", "p2pkh"] = "p2pkh"
    testnet_coin_type: int = 1
    key_policy: KeyPolicy = KeyPolicy.MATCH_INPUTS
    offchain_withdrawals: bool = True
    #: The version of a payload that names none (bitcore's CURRENT_VERSION: 2, DOGE 1).
    tx_version: int = 2
    #: Whether the chain's bitcore reads P2WPKH and P2SH(-P2WPKH) inputs (bitcore-lib-doge does not).
    segwit: bool = True
    #: bitcore's checked `serialize()` for on-chain transactions (DOGE); None: unchecked (`serialize(true)`).
    checks: SerializationChecks | None = None

    def network(self, testnet: bool) -> Network:
        """The version bytes for `testnet`."""
        return self.testnet if testnet else self.mainnet

    def derivation_path(self, testnet: bool) -> str:
        """The account node the wallet's xpub is taken at."""
        return f"m/44'/{self.testnet_coin_type if testnet else self.coin_type}'/0'/0"

    # -- wallets ------------------------------------------------------------------------------

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"}: a new 24-word mnemonic and its account xpub (the same for both commands)."""
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"} for an existing mnemonic (checked)."""
        return mnemonic_wallet(self.derivation_path(testnet), self.network(testnet).xpub, mnemonic)

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random key as compressed WIF, and its address in the chain's xpub address style."""
        secret = random_secret()
        public_key = PublicKey.from_secret(secret).format()
        net = self.network(testnet)
        return wif_encode(secret, net.wif), self._xpub_style_address(public_key, net)

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        """Address of child `index` of the account xpub (BTC: P2WPKH bech32)."""
        net = self.network(testnet)
        child = parse_xpub(xpub, frozenset({net.xpub})).child(check_index(index))
        return self._xpub_style_address(child.public_key, net)

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        """Private key of child `index` as compressed WIF."""
        child = account_node(mnemonic, self.derivation_path(testnet)).child(check_index(index))
        assert child.private_key is not None
        return wif_encode(child.private_key, self.network(testnet).wif)

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """Legacy P2PKH address of a WIF key, as the original's generateAddressFromPrivatekey."""
        net = self.network(testnet)
        signer = self._signer(private_key, "private key", required_wif=net.wif)
        return b58check_encode(bytes([net.p2pkh]) + signer.pubkey_hash)

    def _xpub_style_address(self, public_key: bytes, net: Network) -> str:
        if self.xpub_address == "p2wpkh":
            if net.bech32 is None:
                raise ChainError(f"{self.code} has no segwit addresses")
            return encode_segwit(net.bech32, 0, hash160(public_key))
        return b58check_encode(bytes([net.p2pkh]) + hash160(public_key))

    def _signer(self, private_key: str, what: str, required_wif: int | None = None) -> _Signer:
        """A signer from a WIF (any of this chain's networks unless `required_wif`) or 64-hex key."""
        if not isinstance(private_key, str):
            raise ChainError(f"{what} is not a string")
        allowed = frozenset({required_wif} if required_wif is not None else {self.mainnet.wif, self.testnet.wif})
        try:
            return _parse_signer(private_key.strip(), allowed)
        except _NotWif:
            raise ChainError(f"{what} is not a valid {self.code} WIF key") from None
        except _OtherNetwork:
            raise ChainError(f"{what} is a WIF key of another network or chain than {self.code} expects") from None

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Sign every input with the key whose public key it locks to; return the raw tx hex.

        As bitcore: keys are matched to inputs by public key hash, so their order and number do
        not matter, but an input that no key matches is an error (naming the input).
        """
        tx = from_bitcore_json(pending.serialized_transaction, self.tx_version)
        if not self.segwit:
            _refuse_segwit_inputs(tx)
        signers = list({s.public_key: s for s in (
            self._signer(k, f"private key #{n + 1}") for n, k in enumerate(keys))}.values())
        if not signers:
            raise ChainError(f"{self.code} transaction {pending.id} has no signing key")
        for index, tx_input in enumerate(tx.inputs):
            _sign_input(tx, index, tx_input, signers)
        if pending.withdrawal_id:  # the original serializes off-chain withdrawals unchecked
            return Signed(tx.serialize().hex(), OFFCHAIN_BROADCAST,
                          {"currency": self.code, "withdrawalId": pending.withdrawal_id})
        if self.checks is not None:
            self.checks.check(tx)
        return Signed(tx.serialize().hex(), self.broadcast_path)


def _refuse_segwit_inputs(tx: Transaction) -> None:
    """bitcore-lib-doge's refusal of the script types it cannot spend (its message names the script)."""
    for tx_input in tx.inputs:
        standard = classify(tx_input.prev_script)
        if standard is not None and standard[0] in (P2WPKH, P2SH):
            raise ChainError(f"Unsupported input script type: {tx_input.prev_script.hex()}")


class _NotWif(Exception):
    pass


class _OtherNetwork(Exception):
    pass


@lru_cache(maxsize=256)
def _parse_signer(text: str, allowed_wif: frozenset[int]) -> _Signer:
    """The signer of a WIF or 64-hex key, its public key computed once.

    Bounded, in-process cache, like `account_node`'s: the daemon signs with the same few keys again and
    again, and decoding the WIF and deriving its public key would cost more than the signature.
    """
    if len(text) in (64, 66) and all(c in "0123456789abcdefABCDEFx" for c in text):
        secret, compressed = hex_secret(text), True
    else:
        try:
            prefix, secret, compressed = wif_decode(text)
        except ChainError:
            raise _NotWif from None
        if prefix not in allowed_wif:
            raise _OtherNetwork
    key = SigningKey(secret)
    public_key = key.public_key.format(compressed=compressed)
    return _Signer(key, public_key, hash160(public_key))


def _sign_input(tx: Transaction, index: int, tx_input: TxInput, signers: list[_Signer]) -> None:
    """Set the scriptSig / witness of one input, signed by the signer its output script names."""
    standard = classify(tx_input.prev_script)
    if standard is None:
        raise ChainError(f"input {index} spends a script type this signer does not support "
                         "(P2PKH, P2WPKH, P2SH-P2WPKH, P2PK)")
    kind, locked_to = standard
    signer = next((s for s in signers if _locks_to(kind, locked_to, s)), None)
    if signer is None:
        raise ChainError(f"input {index} is not spendable by any of the given private keys")
    if kind in (P2PKH, P2PK):
        digest = tx.legacy_sighash(index, tx_input.prev_script)
        signature = signer.key.sign(digest, hasher=None) + b"\x01"
        tx_input.script_sig = push(signature) + (push(signer.public_key) if kind == P2PKH else b"")
        tx_input.witness = []
        return
    if tx_input.satoshis is None:
        raise ChainError(f"input {index} has no output.satoshis, which a segwit signature commits to")
    digest = tx.segwit_sighash(index, p2pkh_script(signer.pubkey_hash), tx_input.satoshis)
    signature = signer.key.sign(digest, hasher=None) + b"\x01"
    tx_input.witness = [signature, signer.public_key]
    tx_input.script_sig = push(p2wpkh_script(signer.pubkey_hash)) if kind == P2SH else b""


def _locks_to(kind: str, locked_to: bytes, signer: _Signer) -> bool:
    """Whether the output script (of `kind`, naming `locked_to`) is spendable by `signer`."""
    if kind == P2PKH:
        return locked_to == signer.pubkey_hash
    if kind == P2PK:
        return locked_to == signer.public_key
    if len(signer.public_key) != 33:  # segwit needs a compressed key
        return False
    if kind == P2WPKH:
        return locked_to == signer.pubkey_hash
    return locked_to == hash160(p2wpkh_script(signer.pubkey_hash))  # P2SH treated as P2SH-P2WPKH


BTC = BitcoinChain(
    code="BTC",
    coin_type=0,
    mainnet=Network(p2pkh=0x00, p2sh=0x05, wif=0x80, xpub=0x0488B21E, bech32="bc"),
    testnet=Network(p2pkh=0x6F, p2sh=0xC4, wif=0xEF, xpub=0x043587CF, bech32="tb"),
    broadcast_path="/v3/bitcoin/broadcast",
    xpub_address="p2wpkh",
)


LTC = BitcoinChain(
    code="LTC",
    coin_type=2,
    mainnet=Network(p2pkh=0x30, p2sh=0x32, wif=0xB0, xpub=0x019DA462, bech32="ltc"),  # Ltub
    testnet=Network(p2pkh=0x6F, p2sh=0x3A, wif=0xEF, xpub=0x0436F6E1, bech32="tltc"),  # ttub
    broadcast_path="/v3/litecoin/broadcast",
)

DOGE = BitcoinChain(
    code="DOGE",
    coin_type=3,
    mainnet=Network(p2pkh=0x1E, p2sh=0x16, wif=0x9E, xpub=0x0488B21E),
    testnet=Network(p2pkh=0x71, p2sh=0xC4, wif=0xF1, xpub=0x043587CF),
    broadcast_path="/v3/dogecoin/broadcast",
    tx_version=1,
    segwit=False,
    # bitcore-lib-doge 10.0.0: 1 DOGE dust limit, 1 DOGE per kB fee estimate
    checks=SerializationChecks(dust_amount=100_000_000, fee_per_kb=100_000_000),
)
