"""Bitcoin Cash (spec §2.2, §3.5): CashAddr wallets on `m/44'/145'/0'/0` (testnet too, with tpub versions) and
the original's `<unsigned tx hex>:<JSON input amounts>` payload, input i signed with key i.

As @tatumio/bitcoincashjs2-lib 4.1.2 signs it: the BIP143 digest with the fork-id hash type 0x41 over each
input's amount and the key's P2PKH script, and a 2019-05 BCH Schnorr signature (RFC6979 nonce with the
extra data `Schnorr+SHA256  `, R's y a quadratic residue, 64 bytes + hash type).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chains.base import ChainError, KeyPolicy, Node, PendingTransaction, Signed
from chains.bitcoin import OFFCHAIN_BROADCAST, BitcoinChain, Network
from chains.bitcoin.tx import Transaction, from_raw, p2pkh_script, push
from chains.primitives.cashaddr import P2PKH_TYPE, encode_cashaddr
from chains.primitives.secp import N, PublicKey, hash160

SIGHASH_ALL_FORKID = 0x41
#: bitcoinjs' TransactionBuilder refuses a fee above this many satoshis per byte ("absurd fees").
MAXIMUM_FEE_RATE = 2500
#: The most satoshis an amount may hold (bitcoinjs' `Satoshi` type: 21 million coins).
SATOSHI_MAX = 21 * 10**14

_P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
_ALGO16 = b"Schnorr+SHA256  "


def _nonce(secret: bytes, digest: bytes) -> int:
    """RFC6979 (HMAC-SHA256) nonce for `digest`, with the 16-byte algorithm name as additional data."""
    k = hmac.digest(b"\0" * 32, b"\1" * 32 + b"\0" + secret + digest + _ALGO16, "sha256")
    v = hmac.digest(k, b"\1" * 32, "sha256")
    k = hmac.digest(k, v + b"\1" + secret + digest + _ALGO16, "sha256")
    v = hmac.digest(k, v, "sha256")
    while True:
        v = hmac.digest(k, v, "sha256")
        candidate = int.from_bytes(v, "big")
        if 0 < candidate < N:
            return candidate
        k = hmac.digest(k, v + b"\0", "sha256")
        v = hmac.digest(k, v, "sha256")


def _jacobi_of_y() -> Callable[[int], int]:
    """Jacobi(y, p) by gmpy2 (microseconds) where installed, else Euler's criterion (a 256-bit modexp)."""
    try:
        from gmpy2 import jacobi
    except ImportError:
        return lambda y: 1 if pow(y, (_P - 1) // 2, _P) == 1 else -1
    return lambda y: int(jacobi(y, _P))


_JACOBI: Callable[[int], int] | None = None


def schnorr_sign(secret: bytes, digest: bytes, public_key: bytes | None = None) -> bytes:
    """The 64-byte BCH Schnorr signature r ‖ s of a 32-byte digest (deterministic).

    `public_key`: the secret's compressed public key, when the caller has it already.
    """
    global _JACOBI
    if _JACOBI is None:
        _JACOBI = _jacobi_of_y()
    k = _nonce(secret, digest)
    point = PublicKey.from_valid_secret(k.to_bytes(32, "big")).format(compressed=False)
    x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
    if _JACOBI(y) != 1:  # Jacobi(y) must be 1: use -k, which keeps x
        k = N - k
    r = (x % N).to_bytes(32, "big")
    if public_key is None:
        public_key = PublicKey.from_valid_secret(secret).format()
    e = int.from_bytes(hashlib.sha256(r + public_key + digest).digest(), "big") % N
    return r + ((k + e * int.from_bytes(secret, "big")) % N).to_bytes(32, "big")


def parse_payload(serialized: str) -> tuple[Transaction, list[int]]:
    """The unsigned transaction and the input amounts of a BCH `serializedTransaction`."""
    data, colon, amounts_json = serialized.partition(":") if isinstance(serialized, str) else ("", "", "")
    if not colon:
        raise ChainError("BCH serializedTransaction must be '<unsigned tx hex>:<JSON array of input amounts>'")
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        raise ChainError("BCH serializedTransaction does not start with transaction hex") from None
    tx = from_raw(raw)
    if not tx.inputs:
        raise ChainError("Transaction has no inputs")
    if not tx.outputs:
        raise ChainError("Transaction has no outputs")
    try:
        amounts = json.loads(amounts_json)
    except ValueError:
        raise ChainError("BCH input amounts after ':' are not JSON") from None
    if not isinstance(amounts, list):
        raise ChainError("BCH input amounts after ':' are not a JSON array")
    for n, amount in enumerate(amounts):
        if isinstance(amount, float) and amount.is_integer():
            amounts[n] = amount = int(amount)
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= SATOSHI_MAX:
            raise ChainError(f"BCH input amount {n} is not a number of satoshis")
    return tx, amounts


@dataclass(frozen=True)
class BitcoinCashChain(BitcoinChain):
    """BCH: BitcoinChain's wallets with CashAddr addresses, and positional fork-id Schnorr signing."""

    mainnet_prefix: str = "bitcoincash"
    testnet_prefix: str = "bchtest"

    def _xpub_style_address(self, public_key: bytes, net: Network) -> str:
        prefix = self.testnet_prefix if net is self.testnet else self.mainnet_prefix
        return encode_cashaddr(prefix, P2PKH_TYPE, hash160(public_key))

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The CashAddr P2PKH address of a WIF key."""
        net = self.network(testnet)
        signer = self._signer(private_key, "private key", required_wif=net.wif)
        return encode_cashaddr(self.testnet_prefix if testnet else self.mainnet_prefix, P2PKH_TYPE,
                               signer.pubkey_hash)

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Sign input i with keys[i] ("" holds the place of an off-chain response that is no input)."""
        tx, amounts = parse_payload(pending.serialized_transaction)
        wif = self.network(testnet).wif
        signed = [False] * len(tx.inputs)
        for index, key in enumerate(keys):
            if key == "":  # an off-chain withdrawal response that is no input (vIn "-1")
                continue
            signer = self._signer(key, f"private key #{index + 1}", required_wif=wif)
            if index >= len(tx.inputs):
                raise ChainError(f"No input at index: {index} (more signing keys than inputs)")
            if index >= len(amounts):
                raise ChainError(f"Bitcoin Cash sighash requires value of input to be signed: no amount for input "
                                 f"{index}")
            digest = tx.segwit_sighash(index, p2pkh_script(signer.pubkey_hash), amounts[index], SIGHASH_ALL_FORKID)
            signature = schnorr_sign(signer.key.secret, digest, signer.key.public_key.format()) + bytes(
                [SIGHASH_ALL_FORKID])
            tx.inputs[index].script_sig = push(signature) + push(signer.public_key)
            signed[index] = True
        if not all(signed):
            raise ChainError(f"Transaction is not complete: no key for input {signed.index(False)}")
        raw = tx.serialize()
        fee = sum(amounts[:len(tx.inputs)]) - sum(o.satoshis for o in tx.outputs)
        if fee / len(raw) > MAXIMUM_FEE_RATE:
            raise ChainError("Transaction has absurd fees")
        if pending.withdrawal_id:
            return Signed(raw.hex(), OFFCHAIN_BROADCAST, {"currency": self.code, "withdrawalId": pending.withdrawal_id})
        return Signed(raw.hex(), self.broadcast_path)


BCH = BitcoinCashChain(
    code="BCH",
    coin_type=145,
    testnet_coin_type=145,  # the original's quirk: the mainnet path on testnet too (spec §2.4)
    mainnet=Network(p2pkh=0x00, p2sh=0x05, wif=0x80, xpub=0x0488B21E),
    testnet=Network(p2pkh=0x6F, p2sh=0xC4, wif=0xEF, xpub=0x043587CF),
    broadcast_path="/v3/bcash/broadcast",
    key_policy=KeyPolicy.POSITIONAL,
)
