"""EVM chains: BIP44 wallets, `0x` addresses and web3-style transaction signing (spec §2.2, §3.1).

One parameterised `EvmChain` holds what differs between EVM chains (coin type, address prefix,
broadcast path, node proxy, how missing gas/nonce/gas price are filled in); each chain is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chains.base import ChainError, Endpoint, KeyPolicy, Node, PendingTransaction, Signed, json_object
from chains.evm.accounts import EvmAccounts, Sender, secret_of
from chains.primitives import rlp as _rlp
from chains.primitives.secp import PrivateKey, SigningKey, keccak256

OFFCHAIN_BROADCAST = "/v3/offchain/withdrawal/broadcast"
#: web3 1.x's default tip when an EIP-1559 payload names maxFeePerGas but no maxPriorityFeePerGas.
DEFAULT_PRIORITY_FEE = 2_500_000_000

GasPriceSource = Callable[[Node], int]

GWEI = 10**9


def fee_endpoint(code: str) -> GasPriceSource:
    """Gas price = `.medium` of Tatum's `GET /v3/blockchain/fee/{code}` (wei)."""

    def source(node: Node) -> int:
        fees = node.get(f"/v3/blockchain/fee/{code}")
        if not isinstance(fees, dict) or "medium" not in fees:
            raise ChainError(f"/v3/blockchain/fee/{code} returned no 'medium' gas price")
        return evm_quantity(fees["medium"], "gas price from the fee endpoint")

    return source


def fixed_gas_price(wei: int) -> GasPriceSource:
    """A constant gas price (BSC's 10 gwei, KCS's 1 gwei)."""
    return lambda node: wei


def rpc_gas_price(method: str = "eth_gasPrice", floor: int = 0) -> GasPriceSource:
    """Gas price from the node's JSON-RPC (`eth_gasPrice`, `klay_gasPrice`), at least `floor` wei."""
    return lambda node: max(floor, evm_quantity(node.rpc(method, []), method))


@dataclass(frozen=True)
class FillRules:
    """How one chain's signer completes a payload before signing (the spec §3.1 table).

    gas: when the node's estimate is asked: "if_missing" (gas absent or JavaScript-falsy), "always" (the
    estimate replaces the payload's gas), or "checked" (always asked, so a failing transaction is refused
    before signing, but used only when gas is missing: BSC).
    estimate_scope: send the whole transaction to the estimate, or only `to` and `data`.
    nonce_path: Tatum path (with `{address}`) asked when the nonce is falsy; None leaves a missing nonce
    to the node's `nonce_method` at `nonce_block`, as web3 (`latest`) and caver (`pending`) do.
    gas_price: asked when gasPrice is missing or zero; None asks `eth_gasPrice` only when missing.
    chain_id_method: asked when the payload has no chainId (caver asks `klay_chainID`).
    offchain_estimate: an off-chain withdrawal re-estimates gas whatever the payload says (ETH).
    The estimate, the nonce and the address fill-ins always use the signer's address as `from`, whatever
    the payload's `from` says (web3 maps `from: 0` to its wallet; caver overwrites it for KLAY).
    """

    gas: Literal["if_missing", "always", "checked"] = "if_missing"
    estimate_scope: Literal["tx", "to_data"] = "tx"
    estimate_method: str = "eth_estimateGas"
    nonce_path: str | None = None
    nonce_method: str = "eth_getTransactionCount"
    nonce_block: str = "latest"
    gas_price: GasPriceSource | None = None
    chain_id_method: str = "eth_chainId"
    offchain_estimate: bool = False


@dataclass(frozen=True)
class EvmChain(EvmAccounts):
    """An EVM chain: derivation by coin type, addresses with `address_prefix`, web3-style signing.

    `rpc_path` is the chain's JSON-RPC proxy on the Tatum API (`{api_key}` stands for the key).
    `eip1559`: a payload with `maxFeePerGas` is signed as a type-2 transaction; where the original's
    library signs only legacy transactions (caver for KLAY) such a payload is refused.
    """

    code: str
    coin_type: int
    broadcast_path: str
    rpc_path: str
    rules: FillRules = field(default_factory=FillRules)
    address_prefix: str = "0x"
    #: True where the original sends withdrawals to the off-chain broadcast (ETH, ONE).
    offchain_withdrawals: bool = False
    key_policy: KeyPolicy = KeyPolicy.ACCOUNT
    eip1559: bool = True

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """The JSON-RPC proxy ("rpc"); Tatum's own paths (nonce, fee) need no endpoint."""
        return {"rpc": Endpoint(tatum_path=self.rpc_path)}

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Fill in what the payload lacks (via `node`), sign with `keys[0]`, return `0x` raw hex."""
        if not keys:
            raise ChainError(f"{self.code} transaction {pending.id} has no signing key")
        key = SigningKey(secret_of(keys[0]))
        tx, falsy = _parse_payload(pending.serialized_transaction, self.address_prefix)
        if "maxFeePerGas" in tx and not self.eip1559:
            raise ChainError(f"{self.code} transactions are legacy only: the payload must not carry maxFeePerGas")
        offchain = bool(pending.withdrawal_id) and self.offchain_withdrawals
        self._fill_in(tx, falsy, key, node, always_estimate=offchain and self.rules.offchain_estimate)
        tx_data = "0x" + (_sign_eip1559(tx, key) if "maxFeePerGas" in tx else _sign_legacy(tx, key)).hex()
        if offchain:
            return Signed(tx_data, OFFCHAIN_BROADCAST, {"currency": self.code, "withdrawalId": pending.withdrawal_id})
        return Signed(tx_data, self.broadcast_path)

    def _fill_in(self, tx: dict[str, Any], falsy: frozenset[str], key: PrivateKey, node: Node,
                 always_estimate: bool) -> None:
        """Complete gas, nonce, gas price and chain id in the original's order, asking `node`."""
        rules = self.rules
        sender = Sender(key)
        gas_missing = "gas" not in tx or "gas" in falsy
        if gas_missing or rules.gas != "if_missing" or always_estimate:
            scope = tx if rules.estimate_scope == "tx" else {k: v for k, v in tx.items() if k in ("to", "data")}
            estimate = evm_quantity(node.rpc(rules.estimate_method, [_rpc_json(scope, sender.checksummed)]),
                                    rules.estimate_method)
            if gas_missing or rules.gas == "always" or always_estimate:
                tx["gas"] = estimate
        if rules.nonce_path is not None:
            if "nonce" not in tx or "nonce" in falsy:
                count = node.get(rules.nonce_path.format(address=sender.checksummed))
                tx["nonce"] = evm_quantity(count, "transaction count")
        elif "nonce" not in tx:
            count = node.rpc(rules.nonce_method, [sender.checksummed, rules.nonce_block])
            tx["nonce"] = evm_quantity(count, "nonce")
        if "maxFeePerGas" not in tx:
            if rules.gas_price is not None and not tx.get("gasPrice"):
                tx["gasPrice"] = rules.gas_price(node)
            elif "gasPrice" not in tx:
                tx["gasPrice"] = rpc_gas_price()(node)
        if "chainId" not in tx:
            tx["chainId"] = chain_id_of(node.rpc(rules.chain_id_method, [], constant=True), rules.chain_id_method)


def chain_id_of(answer: Any, method: str) -> int:
    """A node's chain id answer (`0x` hex string or a number) as an int; ChainError if malformed."""
    try:
        return int(answer, 16) if isinstance(answer, str) else evm_quantity(answer, "chain id")
    except (ValueError, ChainError):
        raise ChainError(f"node returned a malformed {method}") from None


# -- payload parsing ----------------------------------------------------------------------------

_QUANTITIES = ("nonce", "gasPrice", "gas", "value", "chainId", "maxFeePerGas", "maxPriorityFeePerGas")


def evm_quantity(value: Any, name: str) -> int:
    """A non-negative integer from a JSON number, a decimal string or a `0x` hex string."""
    if isinstance(value, bool):
        raise ChainError(f"{name} must be a number, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text[:2] in ("0x", "0X"):
                number = int(text[2:], 16) if len(text) > 2 else 0
            elif text.isdigit():
                number = int(text)
            else:
                raise ValueError
        except ValueError:
            raise ChainError(f"{name} is not a whole number: {value!r}") from None
    else:
        raise ChainError(f"{name} is not a whole number")
    if number < 0:
        raise ChainError(f"{name} must not be negative")
    return number


def _hex_bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ChainError(f"{name} must be a hex string")
    body = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ChainError(f"{name} is not valid hex") from None


def _address_bytes(value: Any, name: str, prefix: str) -> bytes:
    if isinstance(value, str) and prefix != "0x" and value.lower().startswith(prefix):
        value = "0x" + value[len(prefix):]
    raw = _hex_bytes(value, name)
    if len(raw) != 20:
        raise ChainError(f"{name} is not a 20-byte address")
    return raw


def _parse_payload(serialized: str, prefix: str) -> tuple[dict[str, Any], frozenset[str]]:
    """The web3 TransactionConfig JSON as typed fields, and the fields whose JSON value was falsy.

    Absent or null fields stay absent. "Falsy" is JavaScript's: the number 0 or an empty string
    (the string "0" is truthy), which decides whether the original fetches a nonce.
    """
    obj = json_object(serialized)
    if obj.get("gas") is None and obj.get("gasLimit") is not None:
        obj["gas"] = obj["gasLimit"]  # web3 accepts either name
    if obj.get("data") is None and obj.get("input") is not None:
        obj["data"] = obj["input"]
    tx: dict[str, Any] = {}
    falsy = set()
    for name in _QUANTITIES:
        raw = obj.get(name)
        if raw is None:
            continue
        if raw == "" or (raw == 0 and not isinstance(raw, str | bool)):
            falsy.add(name)
            tx[name] = 0
        else:
            tx[name] = evm_quantity(raw, name)
    tx["to"] = _address_bytes(obj["to"], "to", prefix) if obj.get("to") else b""
    tx["data"] = _hex_bytes(obj["data"], "data") if obj.get("data") is not None else b""
    kind = None if obj.get("type") is None else evm_quantity(obj["type"], "type")
    if kind not in (None, 0, 2):
        raise ChainError(f"transaction type {kind} is not supported (only legacy and EIP-1559)")
    if kind == 2 and "maxFeePerGas" not in tx:
        raise ChainError("EIP-1559 transaction (type 2) without maxFeePerGas")
    if "maxFeePerGas" in tx:
        tx.setdefault("maxPriorityFeePerGas", min(DEFAULT_PRIORITY_FEE, tx["maxFeePerGas"]))
        tx["accessList"] = _access_list(obj.get("accessList") or [])
    return tx, frozenset(falsy)


def _access_list(entries: Any) -> list[Any]:
    if not isinstance(entries, list):
        raise ChainError("accessList must be a list")
    items = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("storageKeys", []), list):
            raise ChainError("accessList entries must be {address, storageKeys}")
        keys = [_hex_bytes(k, "storage key") for k in entry.get("storageKeys", [])]
        if any(len(k) != 32 for k in keys):
            raise ChainError("accessList storage keys must be 32 bytes")
        items.append([_address_bytes(entry.get("address"), "accessList address", "0x"), keys])
    return items


def _rpc_json(tx: dict[str, Any], sender: str) -> dict[str, Any]:
    """The transaction as JSON-RPC wants it for `eth_estimateGas`: hex quantities, `from` = signer."""
    call: dict[str, Any] = {"from": sender}
    if tx.get("to"):
        call["to"] = "0x" + tx["to"].hex()
    for name in ("value", "gas", "gasPrice", "nonce", "maxFeePerGas", "maxPriorityFeePerGas"):
        if tx.get(name) is not None:
            call[name] = hex(tx[name])
    if tx.get("data"):
        call["data"] = "0x" + tx["data"].hex()
    return call


# -- signing ------------------------------------------------------------------------------------


def _sign_legacy(tx: dict[str, Any], key: PrivateKey) -> bytes:
    """EIP-155 legacy transaction: RLP of the nine fields with v = chainId*2 + 35 + recovery id."""
    body = _rlp.encode_items([tx["nonce"], tx["gasPrice"], tx["gas"], tx["to"], tx.get("value", 0), tx["data"]])
    chain_id = tx["chainId"]
    signature = key.sign_recoverable(keccak256(_rlp.wrap_list(body + _rlp.encode_items([chain_id, 0, 0]))),
                                     hasher=None)
    r, s, recovery_id = signature[:32], signature[32:64], signature[64]
    return _rlp.wrap_list(body + _rlp.encode_items([chain_id * 2 + 35 + recovery_id, _strip(r), _strip(s)]))


def _sign_eip1559(tx: dict[str, Any], key: PrivateKey) -> bytes:
    """EIP-1559 (type 2) transaction: 0x02 ‖ RLP(fields, yParity, r, s)."""
    body = [tx["chainId"], tx["nonce"], tx["maxPriorityFeePerGas"], tx["maxFeePerGas"], tx["gas"], tx["to"],
            tx.get("value", 0), tx["data"], tx["accessList"]]
    signature = key.sign_recoverable(keccak256(b"\x02" + _rlp.encode(body)), hasher=None)
    r, s, recovery_id = signature[:32], signature[32:64], signature[64]
    return b"\x02" + _rlp.encode([*body, recovery_id, _strip(r), _strip(s)])


def _strip(number: bytes) -> bytes:
    """A 32-byte big-endian integer as RLP wants it: no leading zero bytes."""
    return number.lstrip(b"\0")


# One entry per chain: the spec §3.1 fill-in table, §1.5 broadcast paths, §1.9 node proxies, §2.2 coin types.

ETH = EvmChain(
    code="ETH",
    coin_type=60,
    broadcast_path="/v3/ethereum/broadcast",
    rpc_path="/v3/ethereum/web3/{api_key}",
    rules=FillRules(nonce_path="/v3/ethereum/transaction/count/{address}", gas_price=fee_endpoint("ETH"),
                    offchain_estimate=True),
    offchain_withdrawals=True,
)

BSC = EvmChain(
    code="BSC",
    coin_type=60,
    broadcast_path="/v3/bsc/broadcast",
    rpc_path="/v3/bsc/web3/{api_key}",
    rules=FillRules(gas="checked", nonce_path="/v3/bsc/transaction/count/{address}",
                    gas_price=fixed_gas_price(10 * GWEI)),
)

#: The original asks Polygon's gas station (at least 30 gwei); this KMS talks to Tatum only: the Tatum
#: node's eth_gasPrice, with the same 30 gwei floor.
MATIC = EvmChain(
    code="MATIC",
    coin_type=966,
    broadcast_path="/v3/polygon/broadcast",
    rpc_path="/v3/polygon/web3/{api_key}",
    rules=FillRules(estimate_scope="to_data", gas_price=rpc_gas_price("eth_gasPrice", floor=30 * GWEI)),
)

KLAY = EvmChain(
    code="KLAY",
    coin_type=8217,
    broadcast_path="/v3/klaytn/broadcast",
    rpc_path="/v3/blockchain/node/KLAY/{api_key}",
    rules=FillRules(estimate_scope="to_data", estimate_method="klay_estimateGas",
                    nonce_method="klay_getTransactionCount", nonce_block="pending",
                    gas_price=rpc_gas_price("klay_gasPrice"), chain_id_method="klay_chainID"),
    eip1559=False,
)

XDC = EvmChain(
    code="XDC",
    coin_type=550,
    broadcast_path="/v3/xdc/broadcast",
    rpc_path="/v3/xdc/web3/{api_key}",
    rules=FillRules(gas="always", nonce_path="/v3/xdc/transaction/count/{address}"),
    address_prefix="xdc",
)

ONE = EvmChain(
    code="ONE",
    coin_type=1023,
    broadcast_path="/v3/one/broadcast",
    rpc_path="/v3/one/web3/{api_key}",
    rules=FillRules(estimate_scope="to_data", gas_price=rpc_gas_price("eth_gasPrice")),
    offchain_withdrawals=True,
)

#: The original's `@tatumio/tatum-kcs` could sign but not generate KCS wallets; here they are made on its
#: EVM path like any other chain's.
KCS = EvmChain(
    code="KCS",
    coin_type=60,
    broadcast_path="/v3/kcs/broadcast",
    rpc_path="/v3/kcs/web3/{api_key}",
    rules=FillRules(estimate_scope="to_data", gas_price=fixed_gas_price(GWEI)),
)
