"""Which keys sign a pending transaction: the original's rules (spec §1.8, §2.4, §3.4) over the store, by the
chain's `KeyPolicy`.

Only wallets of the chain and network the daemon polls for may sign: a pending transaction naming a
mainnet wallet on a testnet daemon, or another chain's wallet, is refused (reported to Tatum), so whoever
can create pending transactions cannot obtain signatures valid elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from chains.base import Chain, KeyPolicy, PendingTransaction
from kms.errors import SigningKeyError

DOCS = "see docs: https://apidoc.tatum.io/"

Warn = Callable[[str], None]


class WalletLookup(Protocol):
    """The part of the store key resolution needs: a wallet by signature id, or None."""

    def find(self, signature_id: str) -> dict[str, Any] | None: ...


class CycleWallets:
    """One daemon cycle's view of the store: each wallet decrypted once and each mnemonic key derived once,
    however many of the cycle's transactions name them (a wallet's lane often holds many); dropped with the
    cycle, so a wallet removed from the store is not used by the next one."""

    def __init__(self, store: WalletLookup) -> None:
        self._store = store
        self._wallets: dict[str, dict[str, Any] | None] = {}
        self._derived: dict[tuple[str, str, int, bool], str] = {}

    def find(self, signature_id: str) -> dict[str, Any] | None:
        if signature_id not in self._wallets:
            self._wallets[signature_id] = self._store.find(signature_id)
        return self._wallets[signature_id]

    def private_key(self, chain: Chain, wallet: dict[str, Any], index: int, testnet: bool) -> str:
        """The key of mnemonic `wallet` at `index`, derived on first use."""
        memo = (chain.code, str(wallet["mnemonic"]), index, testnet)
        key = self._derived.get(memo)
        if key is None:
            key = self._derived[memo] = chain.private_key(wallet, index, testnet)
        return key


def resolve_keys(pending: PendingTransaction, store: WalletLookup, chain: Chain, testnet: bool,
                 warn: Warn | None = None) -> list[str]:
    """The keys `chain.sign` needs for `pending`, as the original resolves them under `chain.key_policy`.

    `warn(message)` receives non-fatal problems (a mnemonic signature without index).
    """
    if pending.chain.upper() != chain.code:
        raise SigningKeyError(f"Pending transaction {pending.id} is for {pending.chain}, not {chain.code}.")
    wallets = _named_wallets(pending, store, chain, testnet, warn)
    policy = chain.key_policy
    if policy.utxo:
        if pending.withdrawal_id:
            return _offchain_utxo_keys(pending, wallets, store, chain, distinct=policy is KeyPolicy.MATCH_INPUTS)
        return _distinct_private_keys(wallets)
    if not wallets:
        raise SigningKeyError(f"No wallet in this KMS for signature ids {', '.join(pending.hashes) or '(none)'}.")
    if policy is KeyPolicy.ALL_WALLETS:
        return _distinct_private_keys(wallets)
    wallet = wallets[0]
    if policy is KeyPolicy.SECRET:
        key = wallet.get("secret") or wallet.get("privateKey")
        if not key:
            raise SigningKeyError(f"Wallet {_ids(pending)} holds no secret or private key.")
        return [key]
    return [_account_key(pending, wallet, store, chain)]


def _named_wallets(pending: PendingTransaction, store: WalletLookup, chain: Chain, testnet: bool,
                   warn: Warn | None) -> list[dict[str, Any]]:
    """The wallets of `hashes`, then those of `signatures` (their keys derived at each index)."""
    wallets = []
    for signature_id in pending.hashes:
        wallet = store.find(signature_id)
        if wallet is not None:
            wallets.append(_of_this_daemon(wallet, signature_id, pending, chain, testnet))
    for signature in pending.signatures:
        wallet = store.find(signature.id)
        if wallet is None:
            continue
        _of_this_daemon(wallet, signature.id, pending, chain, testnet)
        if wallet.get("mnemonic"):
            if signature.index is None:
                if warn:
                    warn(f"Wrong usage of mnemonic-based signature id. No index provided for {signature.id}.")
                continue
            wallets.append({**wallet, "privateKey": _derived(store, chain, wallet, signature.index, testnet)})
        elif wallet.get("privateKey"):
            wallets.append(wallet)
    return wallets


def _of_this_daemon(wallet: dict[str, Any], signature_id: str, pending: PendingTransaction, chain: Chain,
                    testnet: bool) -> dict[str, Any]:
    """`wallet`, if it is of the chain and network this daemon signs for; else SigningKeyError."""
    if wallet.get("chain") != chain.code or bool(wallet.get("testnet")) != testnet:
        network = "testnet" if wallet.get("testnet") else "mainnet"
        mine = "testnet" if testnet else "mainnet"
        raise SigningKeyError(
            f"Pending transaction {pending.id} names wallet {signature_id}, a {network} {wallet.get('chain')} "
            f"wallet; this daemon signs only with {mine} {chain.code} wallets.")
    return wallet


def _distinct_private_keys(wallets: list[dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(w["privateKey"] for w in wallets if w.get("privateKey")))
    if not keys:
        raise SigningKeyError(
            "Wallets with requested private keys were not found. Most likely mnemonic-based wallet was used "
            f"without index parameter ({DOCS})"
        )
    return keys


def _offchain_utxo_keys(pending: PendingTransaction, wallets: list[dict[str, Any]], store: WalletLookup,
                        chain: Chain, distinct: bool) -> list[str]:
    """Keys derived from the first wallet's mnemonic at every real input's derivation key.

    `distinct` drops repeats (keys matched to inputs). Positional signers get one entry per withdrawal
    response, as the original signs input i with response i's key: "" where the response is no input.
    """
    wallet = wallets[0] if wallets else None
    if not wallet or not wallet.get("mnemonic"):
        raise SigningKeyError(f"Off-chain withdrawal {pending.id} needs a mnemonic-based wallet in hashes[0].")
    keys = []
    for response in pending.withdrawal_responses:
        if str(response.get("vIn")) == "-1":  # the synthetic change-to-pool entry is not an input
            if not distinct:
                keys.append("")
            continue
        address = response.get("address") or {}
        index = address.get("derivationKey") or 0 if isinstance(address, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise SigningKeyError(f"Off-chain withdrawal {pending.id} has a malformed derivationKey.")
        keys.append(_derived(store, chain, wallet, index, wallet["testnet"]))
    return list(dict.fromkeys(keys)) if distinct else keys


def _account_key(pending: PendingTransaction, wallet: dict[str, Any], store: WalletLookup, chain: Chain) -> str:
    """The one key of an account chain: derived at `index` from a mnemonic, else the stored key.

    As the original: a private-key wallet signs even when an index is given; the explanatory
    errors come only when the wallet cannot provide the kind of key the request implies.
    """
    if wallet.get("mnemonic") and pending.index is not None:
        return _derived(store, chain, wallet, pending.index, wallet["testnet"])
    if wallet.get("privateKey"):
        return str(wallet["privateKey"])
    if pending.index is not None:
        raise SigningKeyError(
            f"Private key was not found. Wallet {_ids(pending)} is private key based, but KMS transaction "
            f"{pending.id} requires mnemonic based, since tx was requested with index param. Please use "
            f"mnemonic based wallet and signatureId ({DOCS})"
        )
    raise SigningKeyError(
        f"Private key was not found. Wallet {_ids(pending)} is mnemonic based, but KMS transaction {pending.id} "
        "requires private key based, since tx was requested without index param. Please use another private key "
        f"based wallet id or specify 'index' parameter for this mnemonic based wallet during request call ({DOCS})"
    )


def _derived(store: WalletLookup, chain: Chain, wallet: dict[str, Any], index: int, testnet: bool) -> str:
    """The key of mnemonic `wallet` at `index` (derived once per cycle when `store` is a CycleWallets)."""
    if isinstance(store, CycleWallets):
        return store.private_key(chain, wallet, index, testnet)
    return chain.private_key(wallet, index, testnet)


def _ids(pending: PendingTransaction) -> str:
    return ", ".join(pending.hashes)
