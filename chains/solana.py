"""Solana (SOL): SLIP-10 ed25519 wallets, and messages signed with a fresh blockhash, sent to the node by us
(spec §2.2, §2.3, §3.9).

Tatum queues the hex of a compiled legacy message (with a dummy blockhash) and, for a new SPL mint, the
mint's key (`mintPK`). The signer puts in the node's latest blockhash and signs with every signer the
message names; `submit` sends it to the Solana node (`sendTransaction`), waits for confirmation as the
original does (bounded), and hands Tatum the signature. solders parses messages (imported in `sign`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.signing import SigningKey

from chains.base import ChainBase, ChainError, Endpoint, KeyPolicy, Node, PendingTransaction, Signed, json_object
from chains.primitives import slip10
from chains.primitives.b58 import b58decode, b58encode
from chains.primitives.hd import check_mnemonic, new_mnemonic, seed_from_mnemonic

#: The original's derivation path; the address index is a last hardened level.
ACCOUNT_PATH = (44, 501, 0, 0)
#: What the original's SDK compiles Tatum's messages with; a signed transaction never keeps it.
DUMMY_BLOCKHASH = "7WyEshBZcZwEbJsvSeGgCkSNMxxxFAym3x7Cuj6UjAUE"

_NOT_CONFIRMED = ("Transaction {signature} has not been confirmed yet. The transaction could still be accepted by "
                  "the Solana network. We advise to manually check if the transaction has been dropped or accepted "
                  "before you try to send the transaction again.")


@dataclass(frozen=True)
class SolanaChain(ChainBase):
    """Solana: mnemonic wallets holding their index-0 key, every named signer signs, submitted by the KMS.

    `confirm_timeout` bounds the wait for confirmation (the original waits up to 45 s); statuses are
    asked at once, then after `poll_interval`, doubling up to `max_poll_interval`.
    """

    code: str = "SOL"
    broadcast_path: str = "/v3/solana/broadcast"
    rpc_path: str = "/v3/blockchain/node/SOL/{api_key}"
    key_policy: KeyPolicy = KeyPolicy.ALL_WALLETS
    confirm_timeout: float = 45.0
    poll_interval: float = 0.5
    max_poll_interval: float = 4.0

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """The Solana JSON-RPC node behind Tatum's proxy ("rpc")."""
        return {"rpc": Endpoint(tatum_path=self.rpc_path)}

    # -- wallets ------------------------------------------------------------------------------

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"mnemonic", "address", "privateKey"}: a new 24-word mnemonic and its index-0 address and key.

        The same for `generatewallet` (where the original fails: its v1 SDK has no Solana).
        """
        return self._wallet(new_mnemonic())

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"mnemonic", "address", "privateKey"} of an existing mnemonic (checked).

        The original ignores the mnemonic given here and stores a fresh random one; this stores the given one.
        """
        check_mnemonic(mnemonic)
        return self._wallet(mnemonic)

    def _wallet(self, mnemonic: str) -> dict[str, str]:
        key = _key_at(mnemonic, 0)
        return {"mnemonic": mnemonic, "address": b58encode(bytes(key.verify_key)), "privateKey": _secret_key(key)}

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random key (base58 of the 64-byte secret key) and its address."""
        key = SigningKey.generate()
        return _secret_key(key), b58encode(bytes(key.verify_key))

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The address of a key in either of the original's encodings (base58 or 128 hex of the secret key)."""
        return b58encode(bytes(signing_key(private_key).verify_key))

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        """The key at `m/44'/501'/0'/0'/index'`, base58 of the 64-byte secret key."""
        return _secret_key(_key_at(mnemonic, index))

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """The wire transaction (base64) of the queued message with the node's latest blockhash, signed by
        every named key plus `mintPK`; `submit` sends it.

        Every key must be a signer the message names, and every signer the message names must have a key,
        as the original's web3.js insists ("unknown signer", "Signature verification failed").
        """
        payload = json_object(pending.serialized_transaction)
        message, blockhash_at, signers = parse_message(payload.get("txData"))
        named = list(keys)
        if payload.get("mintPK") is not None:
            if not isinstance(payload["mintPK"], str):
                raise ChainError("serializedTransaction 'mintPK' is not a string")
            named.append(payload["mintPK"])
        if not named:
            raise ChainError(f"SOL transaction {pending.id} has no signing key")
        by_signer: dict[bytes, bytes] = {}
        for secret_key in map(_secret_key_bytes, named):
            public = secret_key[32:]
            if public not in signers:
                raise ChainError(f"unknown signer: {b58encode(public)}")
            by_signer[public] = secret_key
        for public in signers:
            if public not in by_signer:
                raise ChainError(f"Signature verification failed: no key in this KMS signs for {b58encode(public)}")
        blockhash = latest_blockhash(node)
        message = message[:blockhash_at] + blockhash + message[blockhash_at + 32:]
        signatures = b"".join(crypto_sign(message, by_signer[public])[:64] for public in signers)
        wire = compact_u16(len(signers)) + signatures + message
        return Signed(base64.b64encode(wire).decode("ascii"), self.broadcast_path, submit_first=True)

    def submit(self, signed: Signed, node: Node) -> Signed:
        """Send the transaction to the node, wait until it is confirmed (bounded), and return the `Signed`
        that tells Tatum its signature. A transaction that failed on chain raises with the chain's error."""
        expected = transaction_signature(signed.tx_data)
        options = {"encoding": "base64", "preflightCommitment": "confirmed"}
        answer = node.rpc("sendTransaction", [signed.tx_data, options], write=True)
        if answer != expected:
            raise ChainError(f"sendTransaction answered {str(answer)[:100]!r}, not the transaction's signature "
                             f"{expected}")
        self.wait_for_confirmation(expected, node)
        return Signed(expected, self.broadcast_path)

    def wait_for_confirmation(self, signature: str, node: Node) -> None:
        """Poll `getSignatureStatuses` until `signature` is confirmed or `confirm_timeout` has passed."""
        deadline = time.monotonic() + self.confirm_timeout
        delay = self.poll_interval
        while True:
            reply = node.rpc("getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])
            status = _first_status(reply)
            if status is not None:
                if status.get("err") is not None:
                    raise ChainError(f"Transaction {signature} failed with error: "
                                     f"{json.dumps(status['err'], separators=(',', ':'))}")
                if status.get("confirmationStatus") in ("confirmed", "finalized"):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChainError(_NOT_CONFIRMED.format(signature=signature))
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.max_poll_interval)


def _first_status(reply: Any) -> dict[str, Any] | None:
    value = reply.get("value") if isinstance(reply, dict) else None
    if not isinstance(value, list) or len(value) != 1:
        raise ChainError("getSignatureStatuses returned no status list")
    status = value[0]
    if status is not None and not isinstance(status, dict):
        raise ChainError("getSignatureStatuses returned a malformed status")
    return status


def latest_blockhash(node: Node) -> bytes:
    """The node's latest finalized blockhash (32 bytes), as web3.js asks for it."""
    reply = node.rpc("getLatestBlockhash", [{"commitment": "finalized"}])
    value = reply.get("value") if isinstance(reply, dict) else None
    text = value.get("blockhash") if isinstance(value, dict) else None
    try:
        blockhash = b58decode(text) if isinstance(text, str) and len(text) <= 44 else b""
    except ValueError:
        blockhash = b""
    if len(blockhash) != 32:
        raise ChainError("getLatestBlockhash returned no blockhash")
    return blockhash


# -- messages -----------------------------------------------------------------------------------


def parse_message(tx_data: Any) -> tuple[bytes, int, list[bytes]]:
    """(message bytes, offset of its recent blockhash, the public keys that must sign, in order) of a
    hex-serialized legacy message; ChainError naming what is wrong."""
    if not isinstance(tx_data, str) or not tx_data:
        raise ChainError("serializedTransaction has no hex 'txData' message")
    try:
        raw = bytes.fromhex(tx_data)
    except ValueError:
        raise ChainError("serializedTransaction 'txData' is not hex") from None
    if len(raw) < 4:
        raise ChainError("txData is too short to be a Solana message")
    if raw[0] & 0x80:
        raise ChainError("txData is a versioned Solana message; only legacy messages are signed (as the original)")
    from solders.message import Message

    try:
        parsed = Message.from_bytes(raw)
    except Exception:  # solders raises its own error types for every malformed message
        raise ChainError("txData is not a serialized Solana message") from None
    if bytes(parsed) != raw:
        raise ChainError("txData has bytes beyond its Solana message")
    required = raw[0]
    count, offset = read_compact_u16(raw, 3)
    if not 0 < required <= count:
        raise ChainError("txData's message names no signer")
    keys = [raw[offset + 32 * i: offset + 32 * (i + 1)] for i in range(required)]
    return raw, offset + 32 * count, keys


def compact_u16(value: int) -> bytes:
    """Solana's compact-u16 (shortvec) encoding."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_compact_u16(data: bytes, offset: int) -> tuple[int, int]:
    """(value, offset after it) of a compact-u16 at `offset`."""
    value = 0
    for shift in (0, 7, 14):
        if offset >= len(data):
            raise ChainError("truncated compact-u16")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
    raise ChainError("compact-u16 longer than three bytes")


def transaction_signature(wire_base64: str) -> str:
    """The base58 first signature (the transaction id) of a base64 wire transaction."""
    try:
        wire = base64.b64decode(wire_base64, validate=True)
        count, offset = read_compact_u16(wire, 0)
    except (ValueError, ChainError):
        raise ChainError("not a base64 Solana wire transaction") from None
    if count < 1 or len(wire) < offset + 64:
        raise ChainError("the wire transaction carries no signature")
    return b58encode(wire[offset: offset + 64])


# -- keys -----------------------------------------------------------------------------------------


def signing_key(private_key: Any) -> SigningKey:
    """The key of a 64-byte secret key in base58 or 128 hex (the original's two encodings), checked."""
    return SigningKey(_secret_key_bytes(private_key)[:32])


def _secret_key_bytes(private_key: Any) -> bytes:
    """The 64 bytes (seed ‖ public key) of a key in base58 or 128 hex, checked: the public half must be the
    seed's (web3.js `Keypair.fromSecretKey` refuses others; signing with a foreign half would leak the key)."""
    if not isinstance(private_key, str) or not private_key.strip():
        raise ChainError("SOL private key is empty or not a string")
    text = private_key.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 128 else b58decode(text)
    except ValueError:
        raise ChainError("SOL private key is neither base58 nor 128 hex") from None
    if len(raw) != 64:
        raise ChainError("SOL private key is not a 64-byte secret key")
    public, secret_key = crypto_sign_seed_keypair(raw[:32])
    if public != raw[32:]:
        raise ChainError("SOL private key's public half does not belong to its seed")
    return secret_key


def _key_at(mnemonic: str, index: int) -> SigningKey:
    return SigningKey(slip10.derive(seed_from_mnemonic(mnemonic), (*ACCOUNT_PATH, index)))


def _secret_key(key: SigningKey) -> str:
    return b58encode(bytes(key) + bytes(key.verify_key))




SOL = SolanaChain()
