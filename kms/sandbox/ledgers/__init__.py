"""The sandbox's ledgers: one per chain family, each serving the chains it names and checking what they broadcast.

A ledger verifies (or executes) a broadcast with something that shares no code with the chain's signer,
answers the node calls the chain's signer makes on its endpoints, and may add routes of its own (Tatum
helper paths, admin endpoints). The sandbox's generic API routes each registered chain's broadcast path
and node endpoints to the ledger serving that chain.
"""

from __future__ import annotations

import importlib
from typing import Any

from chains.base import PendingTransaction
from kms.sandbox.replies import Headers, Rejected, Reply, Route

#: Ledger classes, as "module:attribute"; imported when the sandbox starts.
LEDGERS: tuple[str, ...] = (
    "kms.sandbox.ledgers.evm:EvmLedger",
    "kms.sandbox.ledgers.celo:CeloLedger",
    "kms.sandbox.ledgers.vechain:VetLedger",
    "kms.sandbox.ledgers.bitcoin:BitcoinLedger",
    "kms.sandbox.ledgers.bcash:BitcoinCashLedger",
    "kms.sandbox.ledgers.stellar:StellarLedger",
    "kms.sandbox.ledgers.solana:SolanaLedger",
    "kms.sandbox.ledgers.algorand:AlgorandLedger",
    "kms.sandbox.ledgers.xrp:XrpLedger",
    "kms.sandbox.ledgers.tron:TronLedger",
    "kms.sandbox.ledgers.egld:EgldLedger",
    "kms.sandbox.ledgers.bnb:BnbLedger",
    "kms.sandbox.ledgers.flow:FlowLedger",
)


class VerifyFailed(ValueError):
    """A broadcast is malformed or a signature does not verify; the message says which and where."""


class Ledger:
    """Base of a family's ledger: the chains it serves and the hooks the generic API calls."""

    #: Chain codes this ledger serves.
    chains: tuple[str, ...] = ()

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        self.execute = execute
        self.testnet = testnet

    def routes(self) -> list[Route]:
        """Extra routes: Tatum helper paths the signers call, admin endpoints under /sandbox/."""
        return []

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        """Verify or execute a broadcast `tx_data` of `chain`; return its transaction id or raise Rejected."""
        raise Rejected(400, f"{chain.lower()}.broadcast.failed", f"The sandbox cannot verify {chain} broadcasts.")

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        """Answer a call on one of `chain`'s node endpoints (`subpath` follows the endpoint's base)."""
        raise Rejected(404, "not.found", f"The sandbox has no {chain} '{endpoint}' node.")

    def pending(self, chain: str, pending: PendingTransaction) -> None:
        """Learn what a queued pending transaction tells (the outputs a bitcoin transaction spends); may reject it."""

    def describe(self) -> dict[str, Any]:
        """What `GET /sandbox` shows of this ledger."""
        return {}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """An unsigned `serializedTransaction` of `chain` that sends `amount` (smallest unit) from `address`,
        funded first where the ledger keeps balances: what Tatum would queue for that wallet.

        The conformance suite signs it with the wallet's key and submits the result here.
        """
        raise NotImplementedError(f"the {type(self).__name__} cannot make {chain} payloads")


def load(*, execute: bool, testnet: bool) -> list[Ledger]:
    """An instance of every ledger."""
    ledgers = []
    for spec in LEDGERS:
        module, attr = spec.split(":")
        ledgers.append(getattr(importlib.import_module(module), attr)(execute=execute, testnet=testnet))
    return ledgers
