"""Which keys sign a pending transaction: the original's rules (spec §1.8, §3.4) over the store.

Three shapes: bitcoin-family chains sign with every distinct private key named (or, off-chain,
with keys derived from `hashes[0]`'s mnemonic at each withdrawal's derivation key); account
chains with one key, derived at `index` from a mnemonic wallet or the stored private key;
secret chains (XLM, XRP, ALGO) with the first wallet's secret.
"""

from __future__ import annotations

from typing import Any, Protocol

from chains.base import Chain, PendingTransaction
from kms.errors import KmsError

UTXO_CHAINS = frozenset({"BTC", "LTC", "DOGE", "BCH"})

DOCS = "see docs: https://apidoc.tatum.io/"


class WalletLookup(Protocol):
    """The part of the store key resolution needs: a wallet by signature id, or None."""

    def find(self, signature_id: str) -> dict[str, Any] | None: ...


class SigningKeyError(KmsError):
    """The wallets named by a pending transaction cannot provide the key it needs (reported to Tatum)."""


def resolve_keys(pending: PendingTransaction, store: WalletLookup, chain: Chain, warn: Any = None) -> list[str]:
    """The keys `chain.sign` needs for `pending`, as the original resolves them.

    `warn(message)` receives non-fatal problems (a mnemonic signature without index).
    """
    wallets = _named_wallets(pending, store, chain, warn)
    if pending.chain.upper() in UTXO_CHAINS:
        if pending.withdrawal_id:
            return _offchain_utxo_keys(pending, wallets, chain)
        return _distinct_private_keys(wallets)
    if not wallets:
        raise SigningKeyError(f"No wallet in this KMS for signature ids {', '.join(pending.hashes) or '(none)'}.")
    wallet = wallets[0]
    if not chain.mnemonic_based:
        key = wallet.get("secret") or wallet.get("privateKey")
        if not key:
            raise SigningKeyError(f"Wallet {_ids(pending)} holds no secret or private key.")
        return [key]
    return [_account_key(pending, wallet, chain)]


def _named_wallets(pending: PendingTransaction, store: WalletLookup, chain: Chain, warn: Any) -> list[dict[str, Any]]:
    wallets = [w for w in (store.find(h) for h in pending.hashes) if w is not None]
    for signature in pending.signatures:
        wallet = store.find(signature.id)
        if wallet is None:
            continue
        if wallet.get("mnemonic"):
            if signature.index is None:
                if warn:
                    warn(f"Wrong usage of mnemonic-based signature id. No index provided for {signature.id}.")
                continue
            key = chain.private_key_from_mnemonic(wallet["mnemonic"], signature.index, wallet["testnet"])
            wallets.append({**wallet, "privateKey": key})
        elif wallet.get("privateKey"):
            wallets.append(wallet)
    return wallets


def _distinct_private_keys(wallets: list[dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(w["privateKey"] for w in wallets if w.get("privateKey")))
    if not keys:
        raise SigningKeyError(
            "Wallets with requested private keys were not found. Most likely mnemonic-based wallet was used "
            f"without index parameter ({DOCS})"
        )
    return keys


def _offchain_utxo_keys(pending: PendingTransaction, wallets: list[dict[str, Any]], chain: Chain) -> list[str]:
    """Keys derived from the first wallet's mnemonic at every real input's derivation key."""
    mnemonic = wallets[0].get("mnemonic") if wallets else None
    if not mnemonic:
        raise SigningKeyError(f"Off-chain withdrawal {pending.id} needs a mnemonic-based wallet in hashes[0].")
    keys = []
    for response in pending.withdrawal_responses:
        if str(response.get("vIn")) == "-1":
            continue  # the synthetic change-to-pool entry is not an input
        address = response.get("address") or {}
        index = address.get("derivationKey") or 0
        if not isinstance(index, int) or index < 0:
            raise SigningKeyError(f"Off-chain withdrawal {pending.id} has a malformed derivationKey.")
        keys.append(chain.private_key_from_mnemonic(mnemonic, index, wallets[0]["testnet"]))
    return list(dict.fromkeys(keys))


def _account_key(pending: PendingTransaction, wallet: dict[str, Any], chain: Chain) -> str:
    """The one key of an account chain: derived at `index` from a mnemonic, else the stored key.

    As the original: a private-key wallet signs even when an index is given; the explanatory
    errors come only when the wallet cannot provide the kind of key the request implies.
    """
    if wallet.get("mnemonic") and pending.index is not None:
        return chain.private_key_from_mnemonic(wallet["mnemonic"], pending.index, wallet["testnet"])
    if wallet.get("privateKey"):
        return wallet["privateKey"]
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


def _ids(pending: PendingTransaction) -> str:
    return ", ".join(pending.hashes)
