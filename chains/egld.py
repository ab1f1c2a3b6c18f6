"""MultiversX (EGLD): SLIP-10 ed25519 wallets with `erd1…` addresses, and gateway-filled, ed25519-signed transfers
(spec §2.2, §3.11), as the original's erdjs 7 signs them.

Everything a transaction needs but the receiver, value and data comes from Tatum's gateway proxy (`gateway`
endpoint): network config, the sender's nonce, and the gas limit from `POST /transaction/cost`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from nacl.signing import SigningKey

from chains.base import ChainBase, ChainError, Endpoint, KeyPolicy, Node, PendingTransaction, Signed, json_object
from chains.primitives import bech32, slip10
from chains.primitives.hd import check_mnemonic, new_mnemonic

HRP = "erd"
MAINNET_PATH = "m/44'/508'/0'/0'"
TESTNET_PATH = "m/44'/1'/0'/0'"
#: The gas price erdjs falls back to when the network config names none.
DEFAULT_GAS_PRICE = 1_000_000_000
_EGLD = Decimal(10) ** 18


def address_of(public_key: bytes) -> str:
    """The `erd1…` bech32 address of a 32-byte ed25519 public key."""
    return bech32.encode(HRP, public_key)


def public_key_of(address: Any, what: str) -> bytes:
    """The 32-byte public key inside an `erd1…` address; ChainError naming `what` otherwise."""
    raw = bech32.decode(HRP, address) if isinstance(address, str) else None
    if raw is None or len(raw) != 32:
        raise ChainError(f"{what} is not an erd1… bech32 address")
    return raw


def signing_key(private_key: Any) -> SigningKey:
    """The ed25519 key of a stored EGLD private key: the 32-byte seed as 64 hex digits (no 0x, as the original)."""
    if not isinstance(private_key, str) or len(private_key) != 64:
        raise ChainError("EGLD private key must be 64 hex digits (a 32-byte ed25519 seed)")
    try:
        return SigningKey(bytes.fromhex(private_key))
    except ValueError:
        raise ChainError("EGLD private key is not valid hex") from None


def egld_to_atomic(value: Any) -> str:
    """The original's `value`: EGLD as a decimal, scaled by 10^18; a negative value becomes "0"."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ChainError("EGLD value must be a decimal number")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ChainError(f"EGLD value is not a decimal number: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise ChainError("EGLD value must be a finite number")
    if amount < 0:
        return "0"
    atomic = amount * _EGLD
    if atomic != atomic.to_integral_value():
        raise ChainError("EGLD value has more than 18 decimals")
    return str(int(atomic))


def signing_serialization(tx: Mapping[str, Any]) -> bytes:
    """erdjs's `serializeForSigning`: compact JSON in the protocol's field order, `data` only when present."""
    return json.dumps({name: tx[name] for name in _FIELDS if name in tx}, separators=(",", ":")).encode()


_FIELDS = ("nonce", "value", "receiver", "sender", "gasPrice", "gasLimit", "data", "chainID", "version")


def _gateway_data(reply: Any, what: str) -> dict[str, Any]:
    data = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(data, dict):
        raise ChainError(f"the EGLD gateway returned no data for {what}")
    return data


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChainError(f"the EGLD gateway returned a malformed {what}")
    return value


@dataclass(frozen=True)
class EgldChain(ChainBase):
    """EGLD: mnemonic wallets without xpub (keys at hardened `…/0'/i'`), transfers signed with ed25519."""

    code: str = "EGLD"
    broadcast_path: str = "/v3/egld/broadcast"
    key_policy: KeyPolicy = KeyPolicy.ACCOUNT
    endpoints: Mapping[str, Endpoint] = field(
        default_factory=lambda: {"gateway": Endpoint(tatum_path="/v3/egld/node/{api_key}")})

    # -- wallets ------------------------------------------------------------------------------

    def derivation_path(self, testnet: bool) -> str:
        """The account node the keys are hardened children of."""
        return TESTNET_PATH if testnet else MAINNET_PATH

    def generate_wallet(self, testnet: bool, *, managed: bool) -> dict[str, str]:
        """{"mnemonic"}: EGLD wallets have no xpub (ed25519 has no public derivation)."""
        return {"mnemonic": new_mnemonic()}

    def wallet_from_mnemonic(self, mnemonic: str, testnet: bool) -> dict[str, str]:
        check_mnemonic(mnemonic)
        return {"mnemonic": mnemonic}

    def generate_private_key(self, testnet: bool) -> tuple[str, str]:
        """A random ed25519 seed (64 hex) and its address."""
        key = SigningKey.generate()
        return bytes(key).hex(), address_of(bytes(key.verify_key))

    def private_key_from_mnemonic(self, mnemonic: str, index: int, testnet: bool) -> str:
        return slip10.key_at(mnemonic, self.derivation_path(testnet), index).hex()

    def address_from_private_key(self, private_key: str, testnet: bool) -> str:
        return address_of(bytes(signing_key(private_key).verify_key))

    def address(self, wallet: Mapping[str, Any], index: int | None, testnet: bool) -> str:
        """The address at `index` of the stored mnemonic (the original derived it from the string "undefined")."""
        if wallet.get("mnemonic"):
            return self.address_from_private_key(self.private_key(wallet, index, testnet), testnet)
        return super().address(wallet, index, testnet)

    # -- signing ------------------------------------------------------------------------------

    def sign(self, pending: PendingTransaction, keys: Sequence[str], testnet: bool, node: Node) -> Signed:
        """Fill in gas price, nonce, chain id, version and gas limit from the gateway; sign as erdjs 7 does."""
        if not keys:
            raise ChainError(f"EGLD transaction {pending.id} has no signing key")
        key = signing_key(keys[0])
        body = json_object(pending.serialized_transaction)
        receiver = body.get("to")
        public_key_of(receiver, "EGLD receiver 'to'")
        value = egld_to_atomic(body.get("value"))
        data = body.get("data")
        if data is not None and not isinstance(data, str):
            raise ChainError("EGLD data must be a string")
        signer = address_of(bytes(key.verify_key))
        sender = body.get("from") or signer  # whose nonce is asked; erdjs signs as the key's address anyway
        public_key_of(sender, "EGLD sender 'from'")

        config = _gateway_data(node.get("/network/config", endpoint="gateway"), "/network/config").get("config")
        if not isinstance(config, dict):
            raise ChainError("the EGLD gateway's /network/config has no config")
        gas_price = _whole(config.get("erd_min_gas_price") or DEFAULT_GAS_PRICE, "erd_min_gas_price")
        chain_id, version = config.get("erd_chain_id"), config.get("erd_min_transaction_version")
        if not isinstance(chain_id, str) or not chain_id:
            raise ChainError("the EGLD gateway's /network/config has no erd_chain_id")
        version = _whole(version, "erd_min_transaction_version")
        nonce = _whole(_gateway_data(node.get(f"/address/{sender}/nonce", endpoint="gateway"), "the nonce")
                       .get("nonce"), "nonce")

        tx: dict[str, Any] = {"nonce": nonce, "value": value, "receiver": receiver, "sender": sender,
                              "gasPrice": gas_price, "gasLimit": 0}
        if data:
            tx["data"] = base64.b64encode(data.encode("utf-8")).decode("ascii")
        tx.update(chainID=chain_id, version=version)
        cost = _gateway_data(node.post("/transaction/cost", dict(tx), endpoint="gateway", idempotent=True),
                             "/transaction/cost")
        if not cost.get("txGasUnits"):
            raise ChainError(str(cost.get("returnMessage") or "egld.gasLimit.error")[:200])
        tx["gasLimit"] = _whole(cost["txGasUnits"], "txGasUnits")
        tx["sender"] = signer
        tx["signature"] = key.sign(signing_serialization(tx)).signature.hex()
        return Signed(json.dumps(tx, separators=(",", ":")), self.broadcast_path)


EGLD = EgldChain()
