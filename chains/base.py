"""The chain contract every chain implements, the value types chains and the daemon share, and the error root.

Chains are pure: they never open a socket or a file. What a signer needs from a node (nonce, gas, chain
id, blockhash) it asks through the `Node` handed to it, naming one of the chain's own `endpoints`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from chains import safejson


class TatumKmsError(Exception):
    """Root of every failure `tatum-kms` reports to its user: `ChainError` here, `kms.errors.KmsError` in the app.

    Its message is one line and never holds a secret. It lives in `chains` so the pure package can raise
    under the same root as the application that uses it.
    """


class ChainError(TatumKmsError, ValueError):
    """A chain-level failure a user can act on: bad key, bad index, bad payload, unsupported chain."""


class KeyPolicy(Enum):
    """Which stored keys sign a pending transaction (the original's rules, spec §1.8, §2.4, §3)."""

    #: BTC, LTC, DOGE: every distinct private key named; the signer matches keys to inputs by public key hash.
    MATCH_INPUTS = "match inputs"
    #: BCH: the distinct keys in `hashes` order; input i is signed with key i. Off-chain: the key of each
    #: withdrawal response in order, "" for a response that is no input (vIn "-1").
    POSITIONAL = "positional"
    #: One key: derived at `index` from a mnemonic wallet, else the wallet's stored private key.
    ACCOUNT = "account"
    #: SOL: the stored private key of every wallet named.
    ALL_WALLETS = "all wallets"
    #: XLM, XRP, ALGO: the first wallet's secret (or private key).
    SECRET = "secret"  # noqa: S105 - a policy name, not a password

    @property
    def utxo(self) -> bool:
        """True for the bitcoin-family policies, whose off-chain withdrawals derive a key per input."""
        return self in (KeyPolicy.MATCH_INPUTS, KeyPolicy.POSITIONAL)


#: The endpoint name of the Tatum API itself: `Node.get(path)` with no endpoint asks Tatum.
TATUM = "tatum"


@dataclass(frozen=True)
class Endpoint:
    """Where one kind of node call of a chain goes.

    Either a path on the Tatum API (`tatum_path`, in which `{api_key}` stands for the API key, as Tatum's
    node proxies want it), or a host of the chain's own (`mainnet_url`/`testnet_url`). The environment
    variable `TATUM_KMS_<CHAIN>_<NAME>_URL` (NAME = the endpoint's key in `Chain.endpoints`, upper-case)
    replaces the base URL either way, for the sandbox and for private nodes.
    """

    tatum_path: str | None = None
    mainnet_url: str | None = None
    testnet_url: str | None = None

    def __post_init__(self) -> None:
        if (self.tatum_path is None) == (self.mainnet_url is None and self.testnet_url is None):
            raise ValueError("an Endpoint is either a Tatum path or a host of its own")


def endpoint_variable(chain: str, name: str) -> str:
    """The environment variable that replaces endpoint `name` of `chain` (e.g. `TATUM_KMS_VET_NODE_URL`)."""
    return f"TATUM_KMS_{chain.upper()}_{name.upper()}_URL"


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
    """A signed transaction and where it goes.

    Tatum receives `POST path` with `{"txData": tx_data, "signatureId": <pending id>, **extra}`. When
    `submit_first` is set (SOL, FLOW), the chain's `submit` sends the transaction to its node first and
    returns the `Signed` that tells Tatum (whose `tx_data` is then the chain's transaction id).
    """

    tx_data: str
    path: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    submit_first: bool = False


class Node(Protocol):
    """What a signer may ask of a node. `endpoint` names one of the chain's `endpoints` (default: Tatum itself).

    Every call has a deadline and a response-size cap; failures raise the application's error, which
    the daemon reports for the pending transaction.
    """

    def get(self, path: str, *, endpoint: str = TATUM, constant: bool = False) -> Any:
        """GET `path` under the endpoint's base URL and return the decoded JSON (a read: retried).

        `constant`: the answer never changes for this node (a genesis block), so it is asked once.
        """
        ...

    def post(self, path: str, body: Any, *, endpoint: str = TATUM, idempotent: bool = False) -> Any:
        """POST JSON `body` to `path` under the endpoint; retried only when `idempotent` (or never sent)."""
        ...

    def rpc(self, method: str, params: Sequence[Any] | Mapping[str, Any] = (), *, endpoint: str = "rpc",
            write: bool = False, constant: bool = False) -> Any:
        """Call JSON-RPC `method` on the endpoint and return its `result`.

        A `write` is never retried once sent; a `constant` answer (a chain id) is asked once per node.
        """
        ...


class Chain(Protocol):
    """One blockchain: its wallets, its keys' policy, its endpoints and its signing, exactly as the original."""

    @property
    def code(self) -> str:
        """The chain code, as Tatum names it ("BTC")."""
        ...

    @property
    def key_policy(self) -> KeyPolicy:
        """Which stored keys sign a pending transaction of this chain."""
        ...

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """Endpoint name -> Endpoint: the node proxies and foreign hosts its signer calls."""
        ...

    @property
    def broadcast_path(self) -> str:
        """The Tatum path signed transactions of this chain are broadcast to (spec §1.5)."""
        ...

    @property
    def offchain_withdrawals(self) -> bool:
        """True where a pending transaction with `withdrawalId` goes to the off-chain broadcast (§1.6)."""
        ...

    @property
    def mnemonic_based(self) -> bool:
        """True when wallets hold a mnemonic (storemanagedwallet accepted; keys derive by index)."""
        ...

    @property
    def accepts_mnemonic(self) -> bool:
        """True when `storemanagedwallet` takes a mnemonic: mnemonic-based chains, and ALGO (an account mnemonic)."""
        ...

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """A new wallet as the original makes it: `generatewallet` (managed=False) or `generatemanagedwallet`."""
        ...

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """The wallet `storemanagedwallet` stores for an existing mnemonic (checked)."""
        ...

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random private key and its address, as `generatemanagedprivatekeybatch` stores them."""
        ...

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """The address of a private key or secret, as `storemanagedprivatekey` stores it."""
        ...

    def address(self, wallet: Mapping[str, Any], index: int | None, testnet: bool) -> str:
        """The address of a stored wallet at `index` (`getaddress`)."""
        ...

    def private_key(self, wallet: Mapping[str, Any], index: int | None, testnet: bool) -> str:
        """HAZMAT: the plaintext private key of a stored wallet at `index` (`getprivatekey`, signing)."""
        ...

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Sign `pending.serialized_transaction` with `keys` (resolved by the daemon under `key_policy`)."""
        ...

    def submit(self, signed: Signed, node: Node) -> Signed:
        """Send a `submit_first` transaction to the chain's node; return what Tatum is told."""
        ...


class ChainBase:
    """Defaults of the contract, in terms of a chain's derivation primitives; chains override what differs.

    A subclass provides `address_from_xpub`, `private_key_from_mnemonic` and `address_from_private_key`
    where its wallets have them.
    """

    code: str
    key_policy = KeyPolicy.ACCOUNT
    endpoints: Mapping[str, Endpoint] = {}
    offchain_withdrawals = False
    mnemonic_based = True

    @property
    def accepts_mnemonic(self) -> bool:
        """By default, exactly the mnemonic-based chains take one in `storemanagedwallet`."""
        return self.mnemonic_based

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        raise ChainError(f"{self.code} wallets have no xpub")

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        raise ChainError(f"{self.code} wallets are not mnemonic based")

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        raise ChainError(f"{self.code} has no address for a bare private key")

    def address(self, wallet: Mapping[str, Any], index: int | None, testnet: bool) -> str:
        """The stored address, else the xpub's child at `index`, else the address of the stored key."""
        if wallet.get("address"):
            return str(wallet["address"])
        if wallet.get("xpub"):
            return self.address_from_xpub(wallet["xpub"], check_index(index), testnet)
        key = wallet.get("secret") or wallet.get("privateKey")
        if key:
            return self.address_from_private_key(key, testnet)
        raise ChainError(f"this {self.code} wallet has no xpub, address or key to derive an address from")

    def private_key(self, wallet: Mapping[str, Any], index: int | None, testnet: bool) -> str:
        """The key derived at `index` from the mnemonic, else the stored secret or private key."""
        if wallet.get("mnemonic"):
            return self.private_key_from_mnemonic(wallet["mnemonic"], check_index(index), testnet)
        key = wallet.get("secret") or wallet.get("privateKey")
        if not key:
            raise ChainError(f"this {self.code} wallet holds no private key")
        return str(key)

    def submit(self, signed: Signed, node: Node) -> Signed:
        raise ChainError(f"{self.code} transactions are broadcast by Tatum, not submitted to a node")


def check_index(index: Any) -> int:
    """A derivation index: an int in [0, 2^31); ChainError otherwise (also for None)."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**31:
        raise ChainError("index must be an integer in [0, 2^31)")
    return index


def json_object(serialized: str) -> dict[str, Any]:
    """A pending transaction's `serializedTransaction` parsed as the JSON object it must be (64 levels deep at
    most: it comes from the network)."""
    obj = safejson.loads(serialized, ChainError, what="serializedTransaction")
    if not isinstance(obj, dict):
        raise ChainError("serializedTransaction is not a JSON object")
    return obj
