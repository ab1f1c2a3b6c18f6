"""FLOW: xpub wallets whose "address" is a public key (accounts are created on chain), and transactions built,
signed and submitted as tatum-js v1 does with FCL (spec §2.2, §3.12).

Tatum's proposer and payer keys come from `/v3/flow/proposal/{isPayer}` and sign through `/v3/flow/sign`; the
user's key signs as the authorizer (secp256k1 over SHA3-256 of the domain-tagged payload). The transaction goes
to a Flow access node's REST API (`access` endpoint) in `submit`, which waits until it is sealed, releases the
proposal key and returns what Tatum is told (`/v3/flow/broadcast`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chains.base import (
    TATUM,
    ChainBase,
    ChainError,
    Endpoint,
    KeyPolicy,
    Node,
    PendingTransaction,
    Signed,
    check_index,
    json_object,
)
from chains.flow import templates
from chains.flow.cadence import (
    ARGUMENT_TYPES,
    MAINNET_ADDRESSES,
    TESTNET_ADDRESSES,
    as_argument,
    encode_argument,
    parse_int,
    ufix64_amount,
)
from chains.flow.transaction import FlowTransaction, ProposalKey, Signature, sans_prefix
from chains.primitives.hd import XPUB, account_node, mnemonic_wallet, new_mnemonic, parse_xpub
from chains.primitives.secp import N, PublicKey, SigningKey, check_secret, random_secret

DERIVATION_PATH = "m/44'/539'/0'/0"
#: FCL's compute limit in tatum-js (`fcl.limit(9999)`).
GAS_LIMIT = 9999


class TxType:
    """tatum-js's FlowTxType: the `type` of a FLOW pending transaction."""

    CREATE_ACCOUNT, ADD_PK_TO_ACCOUNT, TRANSFER, DEPLOY_NFT, MINT_NFT, MINT_MULTIPLE_NFT, BURN_NFT, TRANSFER_NFT, \
        CUSTOM_TX = range(9)


_ACCOUNT = re.compile(r"\A0x[0-9a-fA-F]{16}\Z")
_AMOUNT = re.compile(r"\A\+?((\d+(\.\d*)?)|(\.\d+))\Z")
_UUID4 = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z", re.IGNORECASE)


def public_key_hex(secret: bytes) -> str:
    """The original's FLOW "address": the uncompressed public key without its 04 prefix, 128 hex digits."""
    return PublicKey.from_secret(secret).format(compressed=False)[1:].hex()


def key_hex(secret: bytes) -> str:
    """A private key as the original prints it: `BN.toString(16)`, leading zeros dropped."""
    return format(int.from_bytes(secret, "big"), "x")


def signing_key(private_key: Any) -> SigningKey:
    """A FLOW private key: up to 64 hex digits (the original drops leading zeros), optional 0x."""
    if not isinstance(private_key, str):
        raise ChainError("FLOW private key must be a hex string")
    body = private_key.strip()
    body = body[2:] if body[:2] in ("0x", "0X") else body
    if not 0 < len(body) <= 64:
        raise ChainError("FLOW private key must be at most 64 hex digits")
    try:
        secret = bytes.fromhex(body.rjust(64, "0"))
    except ValueError:
        raise ChainError("FLOW private key is not valid hex") from None
    return SigningKey(check_secret(secret))


def _rfc6979_nonce(secret: bytes, digest: bytes) -> int:
    """The RFC 6979 (HMAC-SHA256) nonce both elliptic and libsecp256k1 derive for this key and digest."""
    message = (int.from_bytes(digest, "big") % N).to_bytes(32, "big")
    k, v = b"\0" * 32, b"\1" * 32
    k = hmac.digest(k, v + b"\0" + secret + message, "sha256")
    v = hmac.digest(k, v, "sha256")
    k = hmac.digest(k, v + b"\1" + secret + message, "sha256")
    v = hmac.digest(k, v, "sha256")
    while True:
        v = hmac.digest(k, v, "sha256")
        nonce = int.from_bytes(v, "big")
        if 1 < nonce < N:
            return nonce
        k = hmac.digest(k, v + b"\0", "sha256")
        v = hmac.digest(k, v, "sha256")


def sign_message(key: SigningKey, message: bytes) -> bytes:
    """r‖s of secp256k1 over SHA3-256(message), exactly as tatum-js's `flowSign` (elliptic, not canonicalised).

    libsecp256k1 gives the same r and returns the low of s and n - s; elliptic keeps whichever the nonce gives,
    which the RFC 6979 nonce tells apart.
    """
    digest = hashlib.sha3_256(message).digest()
    compact = key.sign_recoverable(digest, hasher=None)
    r, s = int.from_bytes(compact[:32], "big"), int.from_bytes(compact[32:64], "big")
    z, d = int.from_bytes(digest, "big"), int.from_bytes(key.secret, "big")
    if (s * _rfc6979_nonce(key.secret, digest) - z - r * d) % N:
        s = N - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# -- the pending transaction's body ---------------------------------------------------------------


def _account(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not _ACCOUNT.match(value):
        raise ChainError(f"FLOW body.{name} must be an address: 0x and 16 hex digits")
    return value


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ChainError(f"FLOW body.{name} must be a non-empty string of at most {limit} characters")
    return value


def _nft_checks(body: Mapping[str, Any]) -> str:
    if body.get("chain") != "FLOW":
        raise ChainError("FLOW NFT body.chain must be FLOW")
    contract = body.get("contractAddress")
    if not isinstance(contract, str) or not _UUID4.match(contract):
        raise ChainError("FLOW NFT body.contractAddress must be the token type's UUID")
    return contract


def _number_string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.isdigit():
        raise ChainError(f"FLOW body.{name} must be a number string")
    return value


def encode_key(public_key: Any, weight: int) -> str:
    """@onflow/util-encode-key: RLP [public key, ECDSA_secp256k1 (3), SHA3_256 (3), weight], hex."""
    from chains.primitives import rlp

    try:
        raw = bytes.fromhex(public_key) if isinstance(public_key, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != 64:
        raise ChainError("FLOW body.publicKey must be a 128-hex secp256k1 public key (the FLOW \"address\")")
    return rlp.encode([raw, 3, 3, weight]).hex()


Arguments = list[tuple[str, Any, Any]]


def script_and_arguments(tx_type: int, body: Mapping[str, Any], testnet: bool) -> tuple[str, Arguments]:
    """The Cadence script and (type, value, subType) arguments tatum-js sends for a FLOW transaction type."""
    if tx_type == TxType.TRANSFER:
        to = _account(body, "to")
        amount = body.get("amount")
        if not isinstance(amount, str) or not _AMOUNT.match(amount):
            raise ChainError("FLOW body.amount must be a positive decimal string")
        currency = body.get("currency")
        if currency == "FLOW":
            names = {"tokenName": "FlowToken", "tokenStorage": "flowToken"}
        elif currency == "FUSD":
            names = {"tokenName": "FUSD", "tokenStorage": "fusd"}
        else:
            raise ChainError("FLOW body.currency must be FLOW or FUSD")
        addresses = TESTNET_ADDRESSES if testnet else MAINNET_ADDRESSES
        script = templates.TRANSFER.script(testnet, tokenAddress=addresses[names["tokenName"]], **names)
        return script, [("UFix64", ufix64_amount(amount), None), ("Address", to, None)]
    if tx_type in (TxType.CREATE_ACCOUNT, TxType.ADD_PK_TO_ACCOUNT):
        create = tx_type == TxType.CREATE_ACCOUNT
        key = encode_key(body.get("publicKey"), 1000 if create else 0)
        template = templates.CREATE_ACCOUNT if create else templates.ADD_PUBLIC_KEY
        return template.script(testnet), [("String", key, None)]
    if tx_type == TxType.MINT_NFT:
        contract = _nft_checks(body)
        return templates.MINT_NFT.script(testnet), [("Address", _account(body, "to"), None),
                                                    ("String", _text(body, "url", 256), None),
                                                    ("String", contract, None)]
    if tx_type == TxType.MINT_MULTIPLE_NFT:
        contract = _nft_checks(body)
        recipients, url = body.get("to"), body.get("url")
        if not isinstance(recipients, list) or not recipients or not isinstance(url, list) or not url:
            raise ChainError("FLOW body.to and body.url must be non-empty lists")
        return templates.MINT_MULTIPLE_NFT.script(testnet), [("Array", recipients, "Address"),
                                                             ("Array", url, "String"),
                                                             ("String", contract, None)]
    if tx_type == TxType.TRANSFER_NFT:
        contract = _nft_checks(body)
        del contract  # validated as the original validates it; the transfer script does not take it
        return templates.TRANSFER_NFT.script(testnet), [("Address", _account(body, "to"), None),
                                                        ("UInt64", _number_string(body, "tokenId"), None)]
    if tx_type == TxType.BURN_NFT:
        contract = _nft_checks(body)
        return templates.BURN_NFT.script(testnet), [("UInt64", _number_string(body, "tokenId"), None),
                                                    ("String", contract, None)]
    # CUSTOM_TX, and DEPLOY_NFT which the original sends down the same path
    script = _text(body, "transaction", 500_000)
    args = body.get("args") or []
    if not isinstance(args, list):
        raise ChainError("FLOW body.args must be a list")
    out: Arguments = []
    for arg in args:
        if not isinstance(arg, dict) or arg.get("type") not in ARGUMENT_TYPES or arg.get("value") in (None, "", []):
            raise ChainError("each FLOW argument needs a known type and a value")
        if arg.get("subType") is not None and arg["subType"] not in ARGUMENT_TYPES:
            raise ChainError("a FLOW argument's subType is not a known type")
        out.append((arg["type"], arg["value"], arg.get("subType")))
    return script, out


def encode_arguments(arguments: Arguments) -> tuple[bytes, ...]:
    """Each argument as FCL sends it; tatum-js casts top-level UInt64 values with parseInt first."""
    return tuple(encode_argument(as_argument(kind, str(parse_int(value)) if kind == "UInt64" else value, sub))
                 for kind, value, sub in arguments)


def _whole(value: Any, what: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ChainError(f"{what} is not a whole number")


def _tatum_key(reply: Any, role: str) -> tuple[str, int]:
    if not isinstance(reply, dict) or not isinstance(reply.get("address"), str):
        raise ChainError(f"Tatum returned no FLOW {role} key")
    return reply["address"], _whole(reply.get("keyId"), f"Tatum's FLOW {role} keyId")


@dataclass(frozen=True)
class FlowChain(ChainBase):
    """FLOW: one account xpub per wallet (both networks), FCL-compatible transactions submitted to an access node."""

    code: str = "FLOW"
    broadcast_path: str = "/v3/flow/broadcast"
    key_policy: KeyPolicy = KeyPolicy.ACCOUNT
    endpoints: Mapping[str, Endpoint] = field(default_factory=lambda: {
        "access": Endpoint(mainnet_url="https://rest-mainnet.onflow.org",
                           testnet_url="https://rest-testnet.onflow.org")})
    #: How long `submit` waits for the transaction to be sealed, and how often it asks.
    seal_timeout: float = 120.0
    poll_interval: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    # -- wallets ------------------------------------------------------------------------------

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"} at m/44'/539'/0'/0 on both networks, as the original."""
        return mnemonic_wallet(DERIVATION_PATH, XPUB, mnemonic)

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        secret = random_secret()
        return key_hex(secret), public_key_hex(secret)

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        child = parse_xpub(xpub, frozenset({XPUB})).child(check_index(index))
        return PublicKey(child.public_key).format(compressed=False)[1:].hex()

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        child = account_node(mnemonic, DERIVATION_PATH).child(check_index(index))
        assert child.private_key is not None
        return key_hex(child.private_key)

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        return public_key_hex(signing_key(private_key).secret)

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Build the transaction FCL would build, with Tatum's proposer and payer; sign it as the authorizer."""
        if not keys:
            raise ChainError(f"FLOW transaction {pending.id} has no signing key")
        key = signing_key(keys[0])
        payload = json_object(pending.serialized_transaction)
        tx_type, body = payload.get("type"), payload.get("body")
        if not isinstance(tx_type, int) or isinstance(tx_type, bool) or tx_type not in range(9) \
                or not isinstance(body, dict):
            raise ChainError("a FLOW serializedTransaction is {\"type\": 0..8, \"body\": {...}}")
        account = _account(body, "account")
        script, arguments = script_and_arguments(tx_type, body, testnet)
        encoded = encode_arguments(arguments)

        proposer_address, proposer_key = _tatum_key(node.get("/v3/flow/proposal/false"), "proposer")
        try:
            return self._sign(node, key, account, script, encoded, proposer_address, proposer_key)
        except BaseException:
            release_proposal_key(node, "", proposer_key)
            raise

    def _sign(self, node: Node, key: SigningKey, account: str, script: str, arguments: tuple[bytes, ...],
              proposer_address: str, proposer_key: int) -> Signed:
        payer_address, payer_key = _tatum_key(node.get("/v3/flow/proposal/true"), "payer")
        blocks = node.get("/v1/blocks?height=final&expand=payload", endpoint="access")
        header = blocks[0].get("header") if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict) \
            else None
        if not isinstance(header, dict) or not isinstance(header.get("id"), str):
            raise ChainError("the Flow access node returned no latest block")
        proposer = node.get(f"/v1/accounts/{sans_prefix(proposer_address)}?block_height=final&expand=contracts,keys",
                            endpoint="access")
        keys = proposer.get("keys") if isinstance(proposer, dict) else None
        found = [k for k in keys or [] if isinstance(k, dict) and str(k.get("index")) == str(proposer_key)]
        if not found:
            raise ChainError(f"the Flow access node knows no key {proposer_key} of the proposer account")
        sequence = _whole(found[0].get("sequence_number"), "the proposal key's sequence number")
        tx = FlowTransaction(script, arguments, header["id"], GAS_LIMIT,
                             ProposalKey(proposer_address, proposer_key, sequence), payer_address, (account,))

        payload_message = tx.payload_message()
        payer_id = f"{payer_address}-{payer_key}"
        payload_signatures = []
        if f"{proposer_address}-{proposer_key}" != payer_id:
            signature = node.post("/v3/flow/sign", {"data": payload_message.hex(), "isPayer": False}, idempotent=True)
            payload_signatures.append(Signature(proposer_address, proposer_key, _signature(signature, "proposer")))
        user = Signature(account, 0, sign_message(key, payload_message))
        envelope_signatures = []
        if f"{account}-0" == payer_id:
            envelope = tx.envelope_message(payload_signatures)
            envelope_signatures.append(Signature(account, 0, sign_message(key, envelope)))
        else:
            payload_signatures.append(user)
            envelope = tx.envelope_message(payload_signatures)
            signature = node.post("/v3/flow/sign", {"data": envelope.hex(), "isPayer": True}, idempotent=True)
            envelope_signatures.append(Signature(payer_address, payer_key, _signature(signature, "payer")))
        body = tx.rest_body(payload_signatures, envelope_signatures)
        return Signed(json.dumps(body, separators=(",", ":")), self.broadcast_path, {"proposalKey": proposer_key},
                      submit_first=True)

    def submit(self, signed: Signed, node: Node) -> Signed:
        """POST the transaction to the access node, wait until it is sealed, release the proposal key (always,
        as the original), and return what Tatum is told: the transaction id."""
        proposal_key = signed.extra.get("proposalKey")
        tx_id = ""
        try:
            reply = node.post("/v1/transactions", json.loads(signed.tx_data), endpoint="access")
            answered = reply.get("id") if isinstance(reply, dict) else None
            if not isinstance(answered, str) or not answered:
                raise ChainError("the Flow access node returned no transaction id")
            tx_id = answered
            self._wait_until_sealed(node, tx_id)
        finally:
            if isinstance(proposal_key, int):
                release_proposal_key(node, tx_id or "", proposal_key)
        return Signed(tx_id, self.broadcast_path)

    def _wait_until_sealed(self, node: Node, tx_id: str) -> None:
        deadline = time.monotonic() + self.seal_timeout
        while True:
            result = node.get(f"/v1/transaction_results/{tx_id}", endpoint="access")
            if not isinstance(result, dict):
                raise ChainError(f"the Flow access node returned no result for {tx_id}")
            status = str(result.get("status", "")).upper()
            if result.get("status_code") not in (0, "0", None) or result.get("error_message"):
                message = " ".join(str(result.get("error_message") or "execution failed").split())
                raise ChainError(f"FLOW transaction {tx_id} failed: {message[:300]}")
            if status == "SEALED":
                return
            if status == "EXPIRED":
                raise ChainError(f"FLOW transaction {tx_id} expired before it was sealed")
            if time.monotonic() >= deadline:
                raise ChainError(f"FLOW transaction {tx_id} was not sealed within {self.seal_timeout:g} s "
                                 f"(last status {status or 'unknown'})")
            self.sleep(self.poll_interval)


def _signature(reply: Any, role: str) -> bytes:
    text = reply.get("signature") if isinstance(reply, dict) else None
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 64:
        raise ChainError(f"Tatum returned no 64-byte FLOW {role} signature")
    return raw


def release_proposal_key(node: Node, tx_id: str, key_id: int) -> None:
    """Tell Tatum the proposal key is free again (`/v3/flow/broadcast` with `proposalKey`); failures are ignored,
    as the original ignores them."""
    try:
        node.post("/v3/flow/broadcast", {"txData": tx_id, "proposalKey": key_id}, endpoint=TATUM)
    except Exception:  # noqa: S110 - the original swallows a failed release too
        pass


FLOW = FlowChain()
