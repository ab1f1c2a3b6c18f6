"""The sandbox's Solana ledger: a Solana node on Tatum's SOL proxy, backed by LiteSVM (the Solana runtime,
from `solders.litesvm`), so SOL and SPL token transfers really execute.

It answers the JSON-RPC the signer and operators use (getLatestBlockhash, sendTransaction with preflight,
getSignatureStatuses, getTransaction, getBalance, requestAirdrop, getMinimumBalanceForRentExemption,
getTokenAccountBalance). `/v3/solana/broadcast` then accepts only the signature of a transaction this node
executed successfully. With `execute=False` signatures are only verified (by solders), nothing runs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import OrderedDict, deque
from typing import Any

from kms.sandbox.ledgers import Ledger
from kms.sandbox.replies import Headers, Rejected, Reply, Route

#: Blockhashes a transaction may name, as a real cluster keeps about 150.
RECENT_BLOCKHASHES = 150
#: Executed transactions remembered for statuses and the broadcast check.
HISTORY = 100_000
_TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105 - a program id


class RpcError(Exception):
    """A JSON-RPC error answer (code, message, data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class SolanaNode:
    """One LiteSVM instance and what a node keeps around it; safe to call from several request threads."""

    def __init__(self, execute: bool = True) -> None:
        from solders.litesvm import LiteSVM

        self.execute = execute
        # Blockhashes are checked here (LiteSVM alone would accept only the very latest one).
        self._svm = LiteSVM().with_blockhash_check(False)
        self._lock = threading.RLock()
        self._slot = 1
        self._blockhashes: deque[str] = deque(maxlen=RECENT_BLOCKHASHES)
        self._blockhashes.append(str(self._svm.latest_blockhash()))
        self._results: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- state ------------------------------------------------------------------------------------

    def _next_block(self) -> None:
        """A transaction landed: a new slot and blockhash, the old ones still valid for a while."""
        self._svm.expire_blockhash()
        self._slot += 1
        self._blockhashes.append(str(self._svm.latest_blockhash()))

    def balance(self, address: str) -> int:
        """Lamports of `address`."""
        with self._lock:
            return int(self._svm.get_balance(_pubkey(address)) or 0)

    def airdrop(self, address: str, lamports: int) -> str:
        """Credit `lamports` to `address`; return the airdrop's signature."""
        if not isinstance(lamports, int) or isinstance(lamports, bool) or lamports <= 0:
            raise RpcError(-32602, "Invalid params: lamports must be a positive integer")
        from solders.transaction_metadata import FailedTransactionMetadata

        with self._lock:
            result = self._svm.airdrop(_pubkey(address), lamports)
            if isinstance(result, FailedTransactionMetadata):
                raise RpcError(-32002, f"airdrop failed: {describe_error(result.err())}")
            signature = str(result.signature())
            self._remember(signature, None, result)
            self._next_block()
            return signature

    def token_balance(self, account: str) -> int:
        """The amount held by SPL token account `account` (its data's u64 at offset 64)."""
        with self._lock:
            found = self._svm.get_account(_pubkey(account))
        if found is None or str(found.owner) != _TOKEN_PROGRAM or len(found.data) < 72:
            raise RpcError(-32602, f"Invalid param: {account} is not an SPL token account")
        return int.from_bytes(bytes(found.data[64:72]), "little")

    def result(self, signature: str) -> dict[str, Any] | None:
        """What became of `signature`: {"slot", "err", "logs", "fee", "wire"}, or None if never executed."""
        with self._lock:
            return self._results.get(signature)

    def _remember(self, signature: str, wire: bytes | None, outcome: Any, err: Any = None) -> None:
        meta = outcome.meta() if err is not None else outcome
        self._results[signature] = {"slot": self._slot, "err": err, "logs": list(meta.logs()), "fee": meta.fee(),
                                    "wire": wire}
        while len(self._results) > HISTORY:
            self._results.popitem(last=False)

    # -- JSON-RPC ----------------------------------------------------------------------------------

    def send(self, params: list[Any]) -> str:
        """sendTransaction: decode, check the blockhash and signatures, preflight unless skipped, execute."""
        from solders.transaction import Transaction
        from solders.transaction_metadata import FailedTransactionMetadata

        encoded = params[0] if params else None
        options = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        encoding = options.get("encoding", "base58")
        if not isinstance(encoded, str):
            raise RpcError(-32602, "Invalid params: the transaction must be a string")
        try:
            if encoding == "base64":
                wire = base64.b64decode(encoded, validate=True)
            elif encoding == "base58":
                import base58

                wire = base58.b58decode(encoded)
            else:
                raise RpcError(-32602, f"Invalid params: unknown encoding {encoding!r}")
            tx = Transaction.from_bytes(wire)
        except RpcError:
            raise
        except Exception:
            raise RpcError(-32602, "invalid transaction: failed to deserialize the transaction") from None
        if bytes(tx) != wire:
            raise RpcError(-32602, "invalid transaction: trailing bytes after the transaction")
        if not tx.signatures or not tx.verify_with_results() or not all(tx.verify_with_results()):
            raise RpcError(-32003, "Transaction signature verification failure")
        signature = str(tx.signatures[0])
        with self._lock:
            if str(tx.message.recent_blockhash) not in self._blockhashes:
                raise RpcError(-32002, "Transaction simulation failed: Blockhash not found",
                               {"err": "BlockhashNotFound", "logs": []})
            if signature in self._results:
                raise RpcError(-32002, "Transaction simulation failed: This transaction has already been processed",
                               {"err": "AlreadyProcessed", "logs": []})
            if not self.execute:
                self._results[signature] = {"slot": self._slot, "err": None, "logs": [], "fee": 0, "wire": wire}
                return signature
            if not options.get("skipPreflight"):
                simulated = self._svm.simulate_transaction(tx)
                if isinstance(simulated, FailedTransactionMetadata):
                    err = simulated.err()
                    raise RpcError(-32002, f"Transaction simulation failed: {describe_error(err)}",
                                   {"err": error_json(err), "logs": list(simulated.meta().logs())})
            outcome = self._svm.send_transaction(tx)
            if isinstance(outcome, FailedTransactionMetadata):
                err = outcome.err()
                if outcome.meta().fee() == 0:  # refused before execution: nothing landed
                    raise RpcError(-32002, f"Transaction simulation failed: {describe_error(err)}",
                                   {"err": error_json(err), "logs": []})
                self._remember(signature, wire, outcome, error_json(err))
            else:
                self._remember(signature, wire, outcome)
            self._next_block()
            return signature

    def rpc(self, method: str, params: Any) -> Any:
        """Answer one JSON-RPC call; raises RpcError, or KeyError for a method this node does not serve."""
        handler = _RPC.get(method)
        if handler is None:
            raise KeyError(method)
        params = params if isinstance(params, list) else []
        try:
            return handler(self, params)
        except (IndexError, TypeError, ValueError) as exc:
            raise RpcError(-32602, f"Invalid params: {exc}") from None

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"slot": self._slot}, "value": value}

    def _latest_blockhash(self, params: list[Any]) -> dict[str, Any]:
        with self._lock:
            return self._context({"blockhash": self._blockhashes[-1], "lastValidBlockHeight": self._slot + 150})

    def _statuses(self, params: list[Any]) -> dict[str, Any]:
        signatures = params[0] if params else None
        if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures) or len(signatures) > 256:
            raise RpcError(-32602, "Invalid params: expected a list of up to 256 signatures")
        statuses = []
        with self._lock:
            for signature in signatures:
                found = self._results.get(signature)
                if found is None:
                    statuses.append(None)
                    continue
                err = found["err"]
                statuses.append({"slot": found["slot"], "confirmations": None, "err": err,
                                 "status": {"Ok": None} if err is None else {"Err": err},
                                 "confirmationStatus": "finalized"})
            return self._context(statuses)

    def _transaction(self, params: list[Any]) -> dict[str, Any] | None:
        found = self.result(str(params[0])) if params else None
        if found is None or found["wire"] is None:
            return None
        err = found["err"]
        return {"slot": found["slot"], "blockTime": None,
                "transaction": [base64.b64encode(found["wire"]).decode(), "base64"],
                "meta": {"err": err, "status": {"Ok": None} if err is None else {"Err": err}, "fee": found["fee"],
                         "logMessages": found["logs"]}}

    def _rent_exemption(self, params: list[Any]) -> int:
        size = params[0] if params else None
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 10 * 1024 * 1024:
            raise RpcError(-32602, "Invalid params: data length must be an integer")
        with self._lock:
            return int(self._svm.minimum_balance_for_rent_exemption(size))


_RPC: dict[str, Any] = {
    "getLatestBlockhash": SolanaNode._latest_blockhash,
    "sendTransaction": lambda node, params: node.send(params),
    "getSignatureStatuses": SolanaNode._statuses,
    "getTransaction": SolanaNode._transaction,
    "getBalance": lambda node, params: node._context(node.balance(str(params[0]))),
    "requestAirdrop": lambda node, params: node.airdrop(str(params[0]), params[1]),
    "getMinimumBalanceForRentExemption": SolanaNode._rent_exemption,
    "getTokenAccountBalance": lambda node, params: node._context(
        {"amount": str(node.token_balance(str(params[0])))}),
    "getSlot": lambda node, params: node._slot,
    "getHealth": lambda node, params: "ok",
}


def _pubkey(address: str) -> Any:
    from solders.pubkey import Pubkey

    try:
        return Pubkey.from_string(address)
    except Exception:
        raise RpcError(-32602, f"Invalid param: {address!r} is not a base58 public key") from None


# -- errors as the RPC spells them ---------------------------------------------------------------------


def _camel(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def error_json(err: Any) -> Any:
    """A solders TransactionError as Solana's JSON-RPC spells it (`{"InstructionError":[0,{"Custom":1}]}`)."""
    from solders import transaction_status as ts

    if isinstance(err, ts.TransactionErrorInstructionError):
        inner = err.err
        if isinstance(inner, ts.InstructionErrorCustom):
            detail: Any = {"Custom": inner.code}
        elif isinstance(inner, ts.InstructionErrorBorshIO):
            detail = {"BorshIoError": inner.value}
        else:
            detail = getattr(inner, "name", str(inner))
        return {"InstructionError": [err.index, detail]}
    if isinstance(err, ts.TransactionErrorInsufficientFundsForRent):
        return {"InsufficientFundsForRent": {"account_index": err.account_index}}
    if isinstance(err, ts.TransactionErrorDuplicateInstruction):
        return {"DuplicateInstruction": err.index}
    return getattr(err, "name", type(err).__name__)


_MESSAGES = {
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "SignatureFailure": "Transaction did not pass signature verification",
}


def describe_error(err: Any) -> str:
    """The node's human wording of a TransactionError ("Error processing Instruction 0: custom program error: 0x1")."""
    shape = error_json(err)
    if isinstance(shape, dict) and "InstructionError" in shape:
        index, detail = shape["InstructionError"]
        if isinstance(detail, dict) and "Custom" in detail:
            text = f"custom program error: {detail['Custom']:#x}"
        else:
            text = _camel(detail) if isinstance(detail, str) else json.dumps(detail)
        return f"Error processing Instruction {index}: {text}"
    if isinstance(shape, dict) and "InsufficientFundsForRent" in shape:
        index = shape["InsufficientFundsForRent"]["account_index"]
        return f"Transaction results in an account ({index}) with insufficient funds for rent"
    if isinstance(shape, str):
        return _MESSAGES.get(shape, _camel(shape))
    return json.dumps(shape)


# -- the ledger ---------------------------------------------------------------------------------------


class SolanaLedger(Ledger):
    """SOL: a LiteSVM-backed node on the `rpc` endpoint; broadcasts are signatures it executed."""

    chains = ("SOL",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self._node: SolanaNode | None = None
        self._lock = threading.Lock()

    @property
    def solana(self) -> SolanaNode:
        """The node (made on first use)."""
        with self._lock:
            if self._node is None:
                self._node = SolanaNode(execute=self.execute)
            return self._node

    def routes(self) -> list[Route]:
        return [
            Route("POST", r"/sandbox/sol/airdrop", self._airdrop, needs_key=False),
            Route("GET", r"/sandbox/sol/balance/([1-9A-HJ-NP-Za-km-z]{32,44})", self._balance, needs_key=False),
            Route("GET", r"/sandbox/sol/token-balance/([1-9A-HJ-NP-Za-km-z]{32,44})", self._token_balance,
                  needs_key=False),
        ]

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        """Accept the signature of a transaction this node executed successfully; refuse anything else."""
        found = self.solana.result(tx_data)
        if found is None or found["wire"] is None:
            raise Rejected(400, "sol.broadcast.failed",
                           f"Transaction {tx_data[:100]} was never sent to this Solana node: send it to the node "
                           "first, then broadcast its signature.")
        if found["err"] is not None:
            raise Rejected(400, "sol.broadcast.failed",
                           f"Transaction {tx_data} failed on chain: {json.dumps(found['err'])}")
        return tx_data

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        if endpoint != "rpc" or method != "POST" or subpath:
            return super().node(chain, endpoint, method, subpath, payload, headers)
        if isinstance(payload, list):
            return Reply(200, [self._rpc_one(call) for call in payload])
        return Reply(200, self._rpc_one(payload))

    def _rpc_one(self, call: Any) -> dict[str, Any]:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
        try:
            reply["result"] = self.solana.rpc(call["method"], call.get("params"))
        except KeyError:
            reply["error"] = {"code": -32601, "message": "Method not found"}
        except RpcError as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                reply["error"]["data"] = exc.data
        return reply

    def describe(self) -> dict[str, Any]:
        return {"solana": {"engine": "LiteSVM", "execute": self.execute}}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A compiled legacy message (with the original's dummy blockhash) moving `amount` lamports from
        `address` (airdropped enough for it and the fee first) to an account that already exists."""
        from solders.keypair import Keypair

        node = self.solana
        destination = str(Keypair().pubkey())
        node.airdrop(destination, 1_000_000_000)
        node.airdrop(address, amount + 1_000_000)
        return json.dumps({"txData": transfer_message(address, destination, amount)})

    def _airdrop(self, payload: Any, headers: Headers) -> Reply:
        if not isinstance(payload, dict) or not isinstance(payload.get("address"), str):
            raise Rejected(400, "validation.failed", "Body must be {\"address\": \"<base58>\", \"lamports\": n}.")
        try:
            signature = self.solana.airdrop(payload["address"], payload.get("lamports"))
        except RpcError as exc:
            raise Rejected(400, "validation.failed", exc.message) from None
        return Reply(200, {"txId": signature, "lamports": self.solana.balance(payload["address"])})

    def _balance(self, payload: Any, headers: Headers, address: str) -> Reply:
        try:
            return Reply(200, {"address": address, "lamports": self.solana.balance(address)})
        except RpcError as exc:
            raise Rejected(400, "validation.failed", exc.message) from None

    def _token_balance(self, payload: Any, headers: Headers, account: str) -> Reply:
        try:
            return Reply(200, {"account": account, "amount": str(self.solana.token_balance(account))})
        except RpcError as exc:
            raise Rejected(400, "validation.failed", exc.message) from None


def transfer_message(source: str, destination: str, lamports: int, blockhash: str | None = None) -> str:
    """Hex of a legacy message with one System Program transfer, as Tatum queues a SOL transfer."""
    from solders.hash import Hash
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.system_program import TransferParams, transfer

    from chains.solana import DUMMY_BLOCKHASH

    payer = Pubkey.from_string(source)
    instruction = transfer(TransferParams(from_pubkey=payer, to_pubkey=Pubkey.from_string(destination),
                                          lamports=lamports))
    message = Message.new_with_blockhash([instruction], payer, Hash.from_string(blockhash or DUMMY_BLOCKHASH))
    return bytes(message).hex()
