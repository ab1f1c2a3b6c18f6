"""The Chain protocol every chain module implements, and the value types they share.

Chain modules are pure: they never open a socket or a file. What a signer needs from a
node (nonce, gas, chain id) it asks through the `Node` handed to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from chains import safejson


class ChainError(ValueError):
    """A chain-level failure a user can act on: bad key, bad payload, unsupported chain."""


@dataclass(frozen=True)
class SignatureRef:
    """An extra mnemonic wallet named by a pending transaction, with its derivation index."""

    id: str
    index: int | None


@dataclass(frozen=True)
class PendingTransaction:
    """A transaction waiting at Tatum for this KMS to sign (spec §1.3)."""

    id: str
    chain: str
    serialized_transaction: str
    hashes: tuple[str, ...]
    index: int | None = None
    withdrawal_id: str | None = None
    signatures: tuple[SignatureRef, ...] = ()
    withdrawal_responses: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, obj: Any) -> PendingTransaction:
        """Validate one element of the pending list; raise ChainError naming what is wrong."""
        if not isinstance(obj, dict):
            raise ChainError("pending transaction is not a JSON object")
        tx_id, chain, payload = obj.get("id"), obj.get("chain"), obj.get("serializedTransaction")
        if not isinstance(tx_id, str) or not tx_id:
            raise ChainError("pending transaction has no string 'id'")
        if not isinstance(chain, str) or not chain:
            raise ChainError(f"pending transaction {tx_id} has no string 'chain'")
        if not isinstance(payload, str):
            raise ChainError(f"pending transaction {tx_id} has no string 'serializedTransaction'")
        hashes = obj.get("hashes") or []
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ChainError(f"pending transaction {tx_id} has a malformed 'hashes'")
        signatures = []
        listed = obj.get("signatures") or []
        if not isinstance(listed, list):
            raise ChainError(f"pending transaction {tx_id} has a malformed 'signatures'")
        for sig in listed:
            if not isinstance(sig, dict) or not isinstance(sig.get("id"), str):
                raise ChainError(f"pending transaction {tx_id} has a malformed 'signatures'")
            signatures.append(SignatureRef(sig["id"], _optional_index(sig.get("index"), tx_id)))
        responses = obj.get("withdrawalResponses") or []
        if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
            raise ChainError(f"pending transaction {tx_id} has a malformed 'withdrawalResponses'")
        withdrawal_id = obj.get("withdrawalId")
        return cls(
            id=tx_id,
            chain=chain,
            serialized_transaction=payload,
            hashes=tuple(hashes),
            index=_optional_index(obj.get("index"), tx_id),
            withdrawal_id=withdrawal_id if isinstance(withdrawal_id, str) and withdrawal_id else None,
            signatures=tuple(signatures),
            withdrawal_responses=tuple(responses),
            raw=obj,
        )


def _optional_index(value: Any, tx_id: str) -> int | None:
    """A derivation index: None when absent, else a non-negative integer (floats are floored)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ChainError(f"pending transaction {tx_id} has a malformed 'index'")
    return int(value)


@dataclass(frozen=True)
class Signed:
    """A signed transaction and where to broadcast it.

    `path` is the Tatum API path (e.g. `/v3/ethereum/broadcast`); the broadcast body is
    `{"txData": tx_data, "signatureId": <pending id>, **extra}`.
    """

    tx_data: str
    path: str
    extra: dict[str, Any] = field(default_factory=dict)


class Node(Protocol):
    """What a signer may ask of a node; the daemon passes one backed by the Tatum API."""

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Call a JSON-RPC method on the chain's node proxy and return its `result`."""
        ...

    def get(self, path: str) -> Any:
        """GET a Tatum API path (e.g. `/v3/blockchain/fee/ETH`) and return the decoded JSON."""
        ...


class Chain(Protocol):
    """One blockchain: its wallets, derivation and signing, exactly as the original does them."""

    code: str
    #: True when `generate_wallet` yields {"mnemonic", "xpub"} and keys are derived by index.
    mnemonic_based: bool

    def generate_wallet(self, testnet: bool, mnemonic: str | None = None) -> dict[str, str]:
        """The original's wallet for this chain: {"mnemonic","xpub"} or {"address","secret"}."""
        ...

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random private key and its address, as `generatemanagedprivatekeybatch` stores."""
        ...

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        """Address at `index` under the account xpub."""
        ...

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        """Private key at `index`, encoded as the original exports it."""
        ...

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """Address of a private key (or secret), as the original derives it."""
        ...

    def sign(self, pending: PendingTransaction, keys: list[str], testnet: bool, node: Node) -> Signed:
        """Sign `pending.serialized_transaction` with `keys` (already resolved by the daemon)."""
        ...


def json_object(serialized: str) -> dict[str, Any]:
    """A pending transaction's `serializedTransaction` parsed as the JSON object it must be (64 levels deep at
    most: it comes from the network)."""
    obj = safejson.loads(serialized, ChainError, what="serializedTransaction")
    if not isinstance(obj, dict):
        raise ChainError("serializedTransaction is not a JSON object")
    return obj
