"""The sandbox's EVM ledger: an in-process py-evm chain (eth-tester) per EVM chain, behind a small JSON-RPC subset.

Each chain (ETH, BSC, MATIC, KLAY, KCS, XDC, ONE) runs its own EVM with its own chain id (its testnet's, or
its mainnet's with `--mainnet`), made on first use. Broadcasts really execute: a signed transfer moves
balances, a token transfer moves token balances, a bad signature or a transaction signed for another chain
is rejected with the reason. With `execute=False` a broadcast is only decoded and its sender
recovered (`recover_sender`: pyrlp and libsecp256k1's public-key recovery, four times cheaper than
eth-account's typed-transaction machinery), so benchmarks measure the KMS, not the EVM.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import rlp
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import keccak, to_checksum_address

import chains
from chains.evm import EvmChain
from kms.sandbox.ledgers import Ledger, erc20
from kms.sandbox.replies import Headers, Rejected, Reply, Route

ZERO_ADDRESS = "0x" + "00" * 20

#: (mainnet, testnet) chain ids, from the chains' public registries (spec §3.1); the signer asks the node.
CHAIN_IDS: dict[str, tuple[int, int]] = {
    "ETH": (1, 11155111),
    "BSC": (56, 97),
    "MATIC": (137, 80002),
    "KLAY": (8217, 1001),
    "KCS": (321, 322),
    "XDC": (50, 51),
    "ONE": (1666600000, 1666700000),
}
#: Chains whose node answers Klaytn's `klay_*` JSON-RPC names (as aliases of the `eth_*` ones).
KLAYTN_RPC = frozenset({"KLAY"})
_ADDRESS = "(?:0x|xdc)[0-9a-fA-F]{40}"


class EvmRejected(ValueError):
    """The EVM (or the node in front of it) refused a transaction or call; the message is its reason."""


def rpc_quantity(value: Any, name: str = "value") -> int:
    """A JSON-RPC quantity: an int, a 0x-hex string or a decimal string."""
    if isinstance(value, bool):
        raise EvmRejected(f"invalid {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            pass
    raise EvmRejected(f"invalid {name}: {value!r}")


def tx_chain_id(raw: bytes) -> int | None:
    """The chain id a signed transaction commits to; None for an unprotected (pre-EIP-155) legacy one."""
    if raw and raw[0] < 0x7F:  # typed transaction (EIP-2718): type byte, then RLP list starting with chainId
        fields = rlp.decode(raw[1:])
        return int.from_bytes(fields[0], "big")
    fields = rlp.decode(raw)
    if not isinstance(fields, list) or len(fields) != 9:
        raise EvmRejected("rlp: not a legacy transaction")
    v = int.from_bytes(fields[6], "big")
    return (v - 35) // 2 if v >= 35 else None


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_TYPED_FIELDS = {1: 11, 2: 12}  # EIP-2930 and EIP-1559: fields including y_parity, r, s


def _uint(field: Any, name: str) -> int:
    """An RLP integer as nodes read it: a byte string without leading zeros."""
    if not isinstance(field, bytes) or field[:1] == b"\0":
        raise EvmRejected(f"rlp: non-canonical integer for {name}")
    return int.from_bytes(field, "big")


def recover_sender(raw: bytes) -> str:
    """The checksummed sender a signed legacy EIP-155 or typed (EIP-2930/1559) transaction recovers to.

    Decoded with pyrlp, hashed with keccak and recovered with libsecp256k1; independent of the KMS's own
    encoder. High-s signatures are refused, as nodes refuse them (EIP-2).
    """
    import coincurve

    try:
        if raw and raw[0] < 0x7F:
            kind = raw[0]
            fields = rlp.decode(raw[1:])
            if _TYPED_FIELDS.get(kind) != len(fields):
                raise EvmRejected(f"rlp: not a type-{kind} transaction")
            recovery = _uint(fields[-3], "yParity")
            digest = keccak(bytes([kind]) + rlp.encode(fields[:-3]))
        else:
            fields = rlp.decode(raw)
            if not isinstance(fields, list) or len(fields) != 9:
                raise EvmRejected("rlp: not a legacy transaction")
            v = _uint(fields[6], "v")
            if v < 35:
                raise EvmRejected("only replay-protected (EIP-155) transactions allowed over RPC")
            chain_id, recovery = (v - 35) // 2, (v - 35) % 2
            digest = keccak(rlp.encode([*fields[:6], chain_id, b"", b""]))
    except rlp.exceptions.DecodingError:
        raise EvmRejected("rlp: the transaction cannot be decoded") from None
    r, s = _uint(fields[-2], "r"), _uint(fields[-1], "s")
    if recovery > 1 or not 0 < r < _SECP256K1_N or not 0 < s <= _SECP256K1_N // 2:
        raise EvmRejected("invalid sender: the signature values are out of range")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recovery])
    try:
        public = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except Exception:
        raise EvmRejected("invalid sender: the signature does not recover") from None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


def _to_json(value: Any) -> Any:
    """eth-tester's Python values as JSON-RPC wants them: ints and bytes as 0x-hex."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


class Evm:
    """One in-process chain; every method is safe to call from several request threads."""

    def __init__(self, execute: bool = True, chain_id: int | None = None) -> None:
        self.execute = execute
        self._backend = PyEVMBackend()
        if chain_id is not None:
            # eth-tester's chain class has a fixed chain id: the same chain, configured with this one.
            chain = self._backend.chain
            configured = type(chain).configure(__name__=f"SandboxChain{chain_id}", chain_id=chain_id)
            self._backend.chain = configured(chain.chaindb.db)
        self._tester = EthereumTester(self._backend)
        self._lock = threading.RLock()
        self.chain_id: int = self._backend.chain.chain_id
        self._faucet = self._tester.get_accounts()[0]

    # -- helpers the sandbox API uses -----------------------------------------------------------

    def fees(self) -> dict[str, str]:
        """Gas prices in wei (strings) that the next block accepts: slow, medium, fast."""
        with self._lock:
            base = self._tester.get_block_by_number("latest")["base_fee_per_gas"]
        base = max(base, 1)
        return {"slow": str(base * 5 // 4 + 1), "medium": str(base * 2), "fast": str(base * 3)}

    def fund(self, address: str, wei: int) -> str:
        """Send `wei` from the chain's pre-funded account to `address`; return the transaction hash."""
        with self._lock:
            gas_price = int(self.fees()["fast"])
            try:
                return self._tester.send_transaction({"from": self._faucet, "to": _address(address), "value": wei,
                                                      "gas": 21000, "gas_price": gas_price})
            except Exception as exc:  # eth-tester raises several unrelated validation types
                raise EvmRejected(str(exc)) from None

    def block_number(self) -> int:
        """Number of the latest block."""
        with self._lock:
            return self._tester.get_block_by_number("latest")["number"]

    def balance(self, address: str) -> int:
        """Balance of `address` in wei."""
        with self._lock:
            return self._tester.get_balance(_address(address))

    def nonce(self, address: str) -> int:
        """Transactions sent so far by `address` (its next nonce)."""
        with self._lock:
            return self._tester.get_nonce(_address(address))

    def deploy_token(self) -> str:
        """Deploy the sandbox's ERC-20 (`erc20.py`) from the pre-funded account, its owner; return its address."""
        with self._lock:
            tx_hash = self._transact({"data": "0x" + erc20.deployment_code().hex(), "gas": 500_000})
            receipt = self._tester.get_transaction_receipt(tx_hash)
        if receipt["status"] != 1 or not receipt["contract_address"]:
            raise EvmRejected("the token contract could not be deployed")
        return str(receipt["contract_address"])

    def mint(self, token: str, to: str, amount: int) -> str:
        """Mint `amount` of `token` to `to` (as its owner); return the transaction hash."""
        with self._lock:
            tx_hash = self._transact({"to": _address(token), "gas": 100_000,
                                      "data": erc20.call_data("mint", _address(to), amount)})
            if self._tester.get_transaction_receipt(tx_hash)["status"] != 1:
                raise EvmRejected(f"{token} refused to mint (not the sandbox's token?)")
        return tx_hash

    def token_balance(self, token: str, holder: str) -> int:
        """`balanceOf(holder)` of `token`, by eth_call."""
        result = self._call([{"from": self._faucet, "to": token,
                              "data": erc20.call_data("balanceOf", _address(holder))}])
        return int(result, 16) if result not in ("0x", "") else 0

    def _transact(self, tx: dict[str, Any]) -> str:
        try:
            return self._tester.send_transaction({"from": self._faucet, "gas_price": int(self.fees()["fast"]), **tx})
        except Exception as exc:
            raise EvmRejected(" ".join(str(exc).split()) or type(exc).__name__) from None

    def send_raw(self, tx_data: str) -> str:
        """Broadcast a signed transaction (0x-hex); return its hash or raise EvmRejected with the reason.

        Only replay-protected transactions for this chain are accepted, as a public node would.
        """
        raw = _hex_bytes(tx_data)
        try:
            chain_id = tx_chain_id(raw)
        except EvmRejected:
            raise
        except Exception:
            raise EvmRejected("rlp: the transaction cannot be decoded") from None
        if chain_id is None:
            raise EvmRejected("only replay-protected (EIP-155) transactions allowed over RPC")
        if chain_id != self.chain_id:
            raise EvmRejected(f"invalid chain id: the transaction is for chain {chain_id}, this is {self.chain_id}")
        if not self.execute:
            recover_sender(raw)
            return "0x" + keccak(raw).hex()
        with self._lock:
            try:
                return self._tester.send_raw_transaction("0x" + raw.hex())
            except Exception as exc:
                raise EvmRejected(" ".join(str(exc).split()) or type(exc).__name__) from None

    # -- JSON-RPC ---------------------------------------------------------------------------------

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Answer one JSON-RPC call; raise EvmRejected (the error message) or KeyError (unknown method)."""
        handler = _RPC.get(method)
        if handler is None:
            raise KeyError(method)
        try:
            return handler(self, params if isinstance(params, list) else [])
        except (IndexError, TypeError):
            raise EvmRejected(f"invalid params for {method}") from None

    def _call_tx(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], dict):
            raise EvmRejected("missing transaction object")
        tx = params[0]
        out: dict[str, Any] = {"from": _address(tx.get("from") or ZERO_ADDRESS)}
        if tx.get("to"):
            out["to"] = _address(tx["to"])
        for src, dst in (("value", "value"), ("gas", "gas"), ("gasPrice", "gas_price")):
            if tx.get(src) not in (None, ""):
                out[dst] = rpc_quantity(tx[src], src)
        out["data"] = tx.get("data") or tx.get("input") or "0x"
        return out

    def _estimate_gas(self, params: list[Any]) -> str:
        tx = self._call_tx(params)
        tx.pop("gas", None)
        with self._lock:
            try:
                return hex(self._tester.estimate_gas(tx))
            except Exception as exc:
                raise EvmRejected(" ".join(str(exc).split()) or "execution reverted") from None

    def _call(self, params: list[Any]) -> str:
        tx = self._call_tx(params)
        with self._lock:
            try:
                return _to_json(self._tester.call(tx))
            except Exception as exc:
                raise EvmRejected(" ".join(str(exc).split()) or "execution reverted") from None

    def _receipt(self, params: list[Any]) -> Any:
        with self._lock:
            try:
                return _to_json(self._tester.get_transaction_receipt(str(params[0])))
            except Exception:
                return None


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise EvmRejected(f"invalid address: {value!r}")
    if value[:3].lower() == "xdc":
        value = "0x" + value[3:]
    try:
        return to_checksum_address(value)
    except ValueError:
        raise EvmRejected(f"invalid address: {value!r}") from None


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise EvmRejected("txData must be a 0x-hex string")
    try:
        return bytes.fromhex(value[2:] if value.lower().startswith("0x") else value)
    except ValueError:
        raise EvmRejected("txData is not hex") from None


_RPC: dict[str, Any] = {
    "eth_chainId": lambda evm, params: hex(evm.chain_id),
    "net_version": lambda evm, params: str(evm.chain_id),
    "eth_blockNumber": lambda evm, params: hex(evm.block_number()),
    "eth_gasPrice": lambda evm, params: hex(int(evm.fees()["medium"])),
    "eth_getBalance": lambda evm, params: hex(evm.balance(params[0])),
    "eth_getTransactionCount": lambda evm, params: hex(evm.nonce(params[0])),
    "eth_estimateGas": Evm._estimate_gas,
    "eth_call": Evm._call,
    "eth_sendRawTransaction": lambda evm, params: evm.send_raw(params[0] if params else None),
    "eth_getTransactionReceipt": Evm._receipt,
}


class EvmLedger(Ledger):
    """The EVM chains: each its own in-process chain with its own chain id, made on first use; broadcasts execute."""

    chains = tuple(CHAIN_IDS)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self._evms: dict[str, Evm] = {}
        self._lock = threading.Lock()

    def chain_id(self, chain: str) -> int:
        """The chain id `chain`'s EVM runs with on this sandbox's network."""
        mainnet, testnet = CHAIN_IDS[chain]
        return testnet if self.testnet else mainnet

    def evm(self, chain: str) -> Evm:
        """The in-process chain of `chain` (made on first use: eth-tester's import costs about a second, once)."""
        chain = chain.upper()
        with self._lock:
            if chain not in self._evms:
                self._evms[chain] = Evm(execute=self.execute, chain_id=self.chain_id(chain))
            return self._evms[chain]

    def routes(self) -> list[Route]:
        routes = []
        for code in self.chains:
            if code not in chains.CODES:
                continue
            chain = chains.get(code)
            assert isinstance(chain, EvmChain)
            nonce_path = chain.rules.nonce_path
            if nonce_path:
                pattern = re.escape(nonce_path).replace(re.escape("{address}"), f"({_ADDRESS})")
                routes.append(Route("GET", pattern, self._count(code)))
            routes.append(Route("GET", f"/v3/blockchain/fee/{code}", self._fees(code)))
        codes = "|".join(code.lower() for code in self.chains)
        routes += [
            Route("POST", rf"/sandbox/({codes})/fund", self._fund, needs_key=False),
            Route("GET", rf"/sandbox/({codes})/balance/({_ADDRESS})", self._balance, needs_key=False),
            Route("POST", rf"/sandbox/({codes})/token", self._deploy_token, needs_key=False),
            Route("POST", rf"/sandbox/({codes})/token/({_ADDRESS})/mint", self._mint, needs_key=False),
            Route("GET", rf"/sandbox/({codes})/token/({_ADDRESS})/balance/({_ADDRESS})", self._token_balance,
                  needs_key=False),
        ]
        return routes

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            return self.evm(chain).send_raw(tx_data)
        except EvmRejected as exc:
            raise Rejected(400, f"{chain.lower()}.broadcast.failed", str(exc)) from None

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        if endpoint != "rpc" or method != "POST" or subpath:
            return super().node(chain, endpoint, method, subpath, payload, headers)
        evm = self.evm(chain)
        klaytn = chain in KLAYTN_RPC
        if isinstance(payload, list):
            return Reply(200, [_rpc_one(evm, call, klaytn) for call in payload])
        return Reply(200, _rpc_one(evm, payload, klaytn))

    def describe(self) -> dict[str, Any]:
        return {"chainId": self.chain_id("ETH"), "chainIds": {code: self.chain_id(code) for code in self.chains},
                "execute": self.execute}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A web3 transfer of `amount` wei from `address` (funded with it plus gas) to a fresh address."""
        import json
        import os

        evm = self.evm(chain)
        gas_price = int(evm.fees()["medium"])
        sender = "0x" + address[-40:]
        evm.fund(sender, amount + 21000 * gas_price)
        prefix = chains.get(chain).address_prefix if chain in chains.CODES else "0x"  # type: ignore[attr-defined]
        return json.dumps({"to": prefix + os.urandom(20).hex(), "value": str(amount), "gas": 21000,
                           "gasPrice": str(gas_price), "nonce": evm.nonce(sender), "chainId": evm.chain_id})

    def _count(self, chain: str) -> Any:
        return lambda payload, headers, address: Reply(200, self.evm(chain).nonce(address))

    def _fees(self, chain: str) -> Any:
        return lambda payload, headers: Reply(200, self.evm(chain).fees())

    def _fund(self, payload: Any, headers: Headers, chain: str) -> Reply:
        if not isinstance(payload, dict) or "address" not in payload or "wei" not in payload:
            raise Rejected(400, "validation.failed", "Body must be {\"address\": \"0x...\", \"wei\": \"<amount>\"}.")
        evm = self.evm(chain)
        try:
            tx_id = evm.fund(payload["address"], rpc_quantity(payload["wei"], "wei"))
            balance = evm.balance(payload["address"])
        except EvmRejected as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        return Reply(200, {"txId": tx_id, "balance": str(balance)})

    def _balance(self, payload: Any, headers: Headers, chain: str, address: str) -> Reply:
        return Reply(200, {"address": address, "wei": str(self.evm(chain).balance(address))})

    def _deploy_token(self, payload: Any, headers: Headers, chain: str) -> Reply:
        """Deploy a token; with {"to", "amount"}, mint `amount` (smallest units) to `to` as well."""
        payload = payload if isinstance(payload, dict) else {}
        evm = self.evm(chain)
        try:
            token = evm.deploy_token()
            if payload.get("to"):
                evm.mint(token, payload["to"], rpc_quantity(payload.get("amount", 0), "amount"))
        except EvmRejected as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        return Reply(200, {"address": token, "decimals": erc20.DECIMALS})

    def _mint(self, payload: Any, headers: Headers, chain: str, token: str) -> Reply:
        if not isinstance(payload, dict) or "to" not in payload or "amount" not in payload:
            raise Rejected(400, "validation.failed", "Body must be {\"to\": \"0x...\", \"amount\": \"<units>\"}.")
        evm = self.evm(chain)
        try:
            tx_id = evm.mint(token, payload["to"], rpc_quantity(payload["amount"], "amount"))
        except EvmRejected as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        return Reply(200, {"txId": tx_id, "balance": str(evm.token_balance(token, payload["to"]))})

    def _token_balance(self, payload: Any, headers: Headers, chain: str, token: str, holder: str) -> Reply:
        try:
            balance = self.evm(chain).token_balance(token, holder)
        except EvmRejected as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        return Reply(200, {"token": token, "address": holder, "balance": str(balance)})


def _rpc_one(evm: Evm, call: Any, klaytn: bool = False) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
    method = call["method"]
    if klaytn and method.startswith("klay_"):
        method = "eth_chainId" if method == "klay_chainID" else "eth_" + method[len("klay_"):]
    try:
        reply["result"] = evm.rpc(method, call.get("params") or [])
    except KeyError:
        reply["error"] = {"code": -32601, "message": f"the method {call['method']} does not exist/is not available"}
    except EvmRejected as exc:
        reply["error"] = {"code": -32000, "message": str(exc)}
    return reply
