"""The chain registry: chain code -> Chain, in the original's polling order (spec §1.1); modules load on first use.

Adding a chain is one entry here (its module and attribute), its module or data entry in a family package,
a sandbox ledger that serves it, and `tests/vectors/<CHAIN>.json`.
"""

from __future__ import annotations

import importlib

from chains.base import Chain, ChainError, KeyPolicy, Node, PendingTransaction, SignatureRef, Signed

__all__ = ["Chain", "ChainError", "KeyPolicy", "Node", "PendingTransaction", "SignatureRef", "Signed", "check",
           "get", "CODES"]

#: The original daemon's default polling order (spec §1.1); a chain is polled only if registered below.
ORDER = ("BCH", "VET", "XRP", "XLM", "ETH", "BTC", "MATIC", "KLAY", "LTC", "DOGE", "CELO", "BSC", "SOL", "TRON",
         "BNB", "FLOW", "XDC", "EGLD", "ONE", "ADA", "ALGO", "KCS")

# code -> (module, attribute). Importing a module is deferred until the chain is used,
# so `tatum-kms --help` and commands for one chain never load another chain's libraries.
_REGISTRY: dict[str, tuple[str, str]] = {
    "BTC": ("chains.bitcoin", "BTC"),
    "LTC": ("chains.bitcoin", "LTC"),
    "DOGE": ("chains.bitcoin", "DOGE"),
    "BCH": ("chains.bitcoin.bcash", "BCH"),
    "ETH": ("chains.evm", "ETH"),
    "BSC": ("chains.evm", "BSC"),
    "MATIC": ("chains.evm", "MATIC"),
    "KLAY": ("chains.evm", "KLAY"),
    "XDC": ("chains.evm", "XDC"),
    "ONE": ("chains.evm", "ONE"),
    "KCS": ("chains.evm", "KCS"),
    "CELO": ("chains.evm.celo", "CELO"),
    "VET": ("chains.evm.vechain", "VET"),
    "XLM": ("chains.stellar", "XLM"),
    "SOL": ("chains.solana", "SOL"),
    "ALGO": ("chains.algorand", "ALGO"),
    "XRP": ("chains.xrp", "XRP"),
    "TRON": ("chains.tron", "TRON"),
    "EGLD": ("chains.egld", "EGLD"),
    "BNB": ("chains.bnb", "BNB"),
    "FLOW": ("chains.flow", "FLOW"),
}

#: Every chain code this build supports, in polling order.
CODES: tuple[str, ...] = tuple(code for code in ORDER if code in _REGISTRY)

_loaded: dict[str, Chain] = {}


def check(code: str) -> str:
    """The registry's code for `code` (case-insensitive), without loading the chain; ChainError if unsupported."""
    key = code.upper() if isinstance(code, str) else ""
    if key not in _REGISTRY:
        raise ChainError(f"Unsupported blockchain '{code}'.")
    return key


def get(code: str) -> Chain:
    """The Chain for `code` (case-insensitive); ChainError for a chain we do not support."""
    key = check(code)
    if key not in _loaded:
        module, attr = _REGISTRY[key]
        _loaded[key] = getattr(importlib.import_module(module), attr)
    return _loaded[key]
