"""EVM chains: BIP44 wallets, `0x` addresses and web3-style transaction signing (spec §2.2, §3.1).

One parameterised `EvmChain` holds what differs between EVM chains (coin type, address prefix,
broadcast path, node proxy, how missing gas/nonce/gas price are filled in); each chain is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from chains.base import (
    ChainBase,
    ChainError,
    Endpoint,
    KeyPolicy,
    Node,
    PendingTransaction,
    Signed,
    check_index,
    json_object,
)
from chains.primitives import rlp as _rlp
from chains.primitives.hd import XPUB, account_node, mnemonic_wallet, new_mnemonic, parse_xpub
from chains.primitives.secp import PrivateKey, PublicKey, SigningKey, hex_secret, keccak256, random_secret

OFFCHAIN_BROADCAST = "/v3/offchain/withdrawal/broadcast"
#: web3 1.x's default tip when an EIP-1559 payload names maxFeePerGas but no maxPriorityFeePerGas.
DEFAULT_PRIORITY_FEE = 2_500_000_000

GasPriceSource = Callable[[Node], int]


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


def rpc_gas_price(method: str = "eth_gasPrice") -> GasPriceSource:
    """Gas price from the node's JSON-RPC (`eth_gasPrice`, `klay_gasPrice`)."""
    return lambda node: evm_quantity(node.rpc(method, []), method)


@dataclass(frozen=True)
class FillRules:
    """How one chain's signer completes a payload before signing (the spec §3.1 table).

    gas: estimate when missing, or always (then the node's estimate replaces the payload's).
    estimate_scope: send the whole transaction to the estimate, or only `to` and `data`.
    nonce_path: Tatum path (with `{address}`) asked when the nonce is falsy; None leaves a
    missing nonce to the node's `eth_getTransactionCount`, as web3 does.
    gas_price: asked when gasPrice is missing or zero; None asks `eth_gasPrice` only when missing.
    """

    gas: Literal["if_missing", "always"] = "if_missing"
    estimate_scope: Literal["tx", "to_data"] = "tx"
    estimate_method: str = "eth_estimateGas"
    nonce_path: str | None = None
    gas_price: GasPriceSource | None = None


@dataclass(frozen=True)
class EvmChain(ChainBase):
    """An EVM chain: derivation by coin type, addresses with `address_prefix`, web3-style signing.

    `rpc_path` is the chain's JSON-RPC proxy on the Tatum API (`{api_key}` stands for the key).
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

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """The JSON-RPC proxy ("rpc"); Tatum's own paths (nonce, fee) need no endpoint."""
        return {"rpc": Endpoint(tatum_path=self.rpc_path)}

    # -- wallets ------------------------------------------------------------------------------

    def derivation_path(self, testnet: bool) -> str:
        """The account node the wallet's xpub is taken at (testnet: coin type 1 for every EVM chain)."""
        return f"m/44'/{1 if testnet else self.coin_type}'/0'/0"

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"}: a new 24-word mnemonic and its account xpub."""
        return self.wallet_from_mnemonic(new_mnemonic(), testnet)

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        """{"mnemonic", "xpub"} for an existing mnemonic (checked)."""
        return mnemonic_wallet(self.derivation_path(testnet), XPUB, mnemonic)

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A fresh random key (`0x` + 64 hex) and its address; no mnemonic behind it."""
        secret = random_secret()
        return "0x" + secret.hex(), self._address(PublicKey.from_secret(secret).format(compressed=False))

    def address_from_xpub(self, xpub: str, index: int, testnet: bool) -> str:
        """Address of child `index` of the account xpub (always `xpub` version bytes, also on testnet)."""
        child = parse_xpub(xpub, frozenset({XPUB})).child(check_index(index))
        return self._address(PublicKey(child.public_key).format(compressed=False))

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        """Private key of child `index`, `0x` + 64 lowercase hex."""
        child = account_node(mnemonic, self.derivation_path(testnet)).child(check_index(index))
        assert child.private_key is not None
        return "0x" + child.private_key.hex()

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        """Address of a `0x`-hex (or bare hex) private key."""
        return self._address(PublicKey.from_secret(_secret(private_key)).format(compressed=False))

    def _address(self, uncompressed_public_key: bytes) -> str:
        return self.address_prefix + keccak256(uncompressed_public_key[1:])[12:].hex()

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Fill in what the payload lacks (via `node`), sign with `keys[0]`, return `0x` raw hex."""
        if not keys:
            raise ChainError(f"{self.code} transaction {pending.id} has no signing key")
        key = SigningKey(_secret(keys[0]))
        tx, falsy = _parse_payload(pending.serialized_transaction, self.address_prefix)
        offchain = bool(pending.withdrawal_id) and self.offchain_withdrawals
        self._fill_in(tx, falsy, key, node, always_estimate=offchain)
        tx_data = "0x" + (_sign_eip1559(tx, key) if "maxFeePerGas" in tx else _sign_legacy(tx, key)).hex()
        if offchain:
            return Signed(tx_data, OFFCHAIN_BROADCAST, {"currency": self.code, "withdrawalId": pending.withdrawal_id})
        return Signed(tx_data, self.broadcast_path)

    def _fill_in(self, tx: dict[str, Any], falsy: frozenset[str], key: PrivateKey, node: Node,
                 always_estimate: bool) -> None:
        """Complete gas, nonce, gas price and chain id in the original's order, asking `node`."""
        rules = self.rules
        sender = _Sender(key)
        if "gas" not in tx or rules.gas == "always" or always_estimate:
            scope = tx if rules.estimate_scope == "tx" else {k: v for k, v in tx.items() if k in ("to", "data")}
            estimate = node.rpc(rules.estimate_method, [_rpc_json(scope, sender.checksummed)])
            tx["gas"] = evm_quantity(estimate, rules.estimate_method)
        if rules.nonce_path is not None:
            if "nonce" not in tx or "nonce" in falsy:
                count = node.get(rules.nonce_path.format(address=sender.checksummed))
                tx["nonce"] = evm_quantity(count, "transaction count")
        elif "nonce" not in tx:
            tx["nonce"] = evm_quantity(node.rpc("eth_getTransactionCount", [sender.checksummed, "latest"]), "nonce")
        if "maxFeePerGas" not in tx:
            if rules.gas_price is not None and not tx.get("gasPrice"):
                tx["gasPrice"] = rules.gas_price(node)
            elif "gasPrice" not in tx:
                tx["gasPrice"] = rpc_gas_price()(node)
        if "chainId" not in tx:
            chain_id = node.rpc("eth_chainId", [], constant=True)
            try:
                tx["chainId"] = int(chain_id, 16) if isinstance(chain_id, str) else evm_quantity(chain_id, "chain id")
            except ValueError:
                raise ChainError("node returned a malformed eth_chainId") from None


class _Sender:
    """The signer's address, computed only if a fill-in needs it (keeps complete payloads fast)."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    @cached_property
    def checksummed(self) -> str:
        """EIP-55 mixed-case address, as web3 reports `defaultAccount`."""
        lower = keccak256(self._key.public_key.format(compressed=False)[1:])[12:].hex()
        digest = keccak256(lower.encode("ascii")).hex()
        return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(lower, digest[:40], strict=True))

    def __repr__(self) -> str:
        return "_Sender(...)"


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


def _secret(private_key: Any) -> bytes:
    if not isinstance(private_key, str):
        raise ChainError("private key must be a hex string")
    return hex_secret(private_key.strip())


def _sign_legacy(tx: dict[str, Any], key: PrivateKey) -> bytes:
    """EIP-155 legacy transaction: RLP of the nine fields with v = chainId*2 + 35 + recovery id."""
    body = [tx["nonce"], tx["gasPrice"], tx["gas"], tx["to"], tx.get("value", 0), tx["data"]]
    chain_id = tx["chainId"]
    signature = key.sign_recoverable(keccak256(_rlp.encode([*body, chain_id, 0, 0])), hasher=None)
    r, s, recovery_id = signature[:32], signature[32:64], signature[64]
    return _rlp.encode([*body, chain_id * 2 + 35 + recovery_id, _strip(r), _strip(s)])


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


ETH = EvmChain(
    code="ETH",
    coin_type=60,
    broadcast_path="/v3/ethereum/broadcast",
    rpc_path="/v3/ethereum/web3/{api_key}",
    rules=FillRules(nonce_path="/v3/ethereum/transaction/count/{address}", gas_price=fee_endpoint("ETH")),
    offchain_withdrawals=True,
)
