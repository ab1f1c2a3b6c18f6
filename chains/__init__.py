"""The chain registry: chain code -> Chain. Chain modules are imported on first use only."""

from __future__ import annotations

import importlib

from chains.base import Chain, ChainError, Node, PendingTransaction, SignatureRef, Signed

__all__ = ["Chain", "ChainError", "Node", "PendingTransaction", "SignatureRef", "Signed", "check", "get", "CODES"]

# code -> (module, attribute). Importing a module is deferred until the chain is used,
# so `tatum-kms --help` and commands for one chain never load another chain's libraries.
_REGISTRY: dict[str, tuple[str, str]] = {
    "BTC": ("chains.bitcoin", "BTC"),
    "ETH": ("chains.evm", "ETH"),
    "XLM": ("chains.stellar", "XLM"),
}

#: Every chain code the daemon polls, in the original's default order (spec §1.1).
CODES: tuple[str, ...] = tuple(_REGISTRY)

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


def supported() -> list[str]:
    """Chain codes this build supports."""
    return list(_REGISTRY)
