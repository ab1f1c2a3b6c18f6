"""The sandbox's Flow: an access node's REST API (latest block, accounts with their keys' sequence numbers, submit,
transaction results) and Tatum's side of FLOW (proposal keys, the proposer's and payer's signatures, broadcast).

A submitted transaction is checked as Flow checks it, with code that shares nothing with the signer: the payload
and envelope are re-encoded with pyrlp from the REST body, every payload and envelope signature is verified by
OpenSSL (cryptography) over SHA3-256 of the domain-tagged message for the account key it names, the proposal key's
sequence number must be the account's, and the proposer, every authorizer and the payer must have signed (with
weight 1000 for the latter). FLOW and FUSD transfers of tatum-js's script move balances; other scripts are
accepted without execution. Every accepted transaction is sealed at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Headers, Rejected, Reply, Route

DOMAIN_TAG = b"FLOW-V0.0-transaction" + b"\0" * 11
MAX_GAS_LIMIT = 9999
FULL_WEIGHT = 1000
PROPOSAL_KEYS = 20
TOKENS = {  # contract name -> (testnet address, mainnet address)
    "FlowToken": ("7e60df042a9c0868", "1654653399040a61"),
    "FUSD": ("e223d8a629e49c68", "3c5959b568896393"),
}
FUNGIBLE_TOKEN = ("9a0766d93b6608b7", "f233dcee88fe0abe")
_TRANSFER = re.compile(r"\Aimport FungibleToken from 0x([0-9a-f]{16})\nimport (FlowToken|FUSD) from 0x([0-9a-f]{16})\n"
                       r"\ntransaction\(amount: UFix64, recipient: Address\) \{")


@dataclass
class AccountKey:
    index: int
    public_key: bytes  # 64 bytes, x‖y
    weight: int
    sequence: int = 0
    revoked: bool = False

    def verify(self, signature: bytes, message: bytes) -> bool:
        """ECDSA_secp256k1 over SHA3_256(message), checked by OpenSSL."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

        if len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x04" + self.public_key)
            key.verify(encode_dss_signature(r, s), hashlib.sha3_256(message).digest(),
                       ec.ECDSA(Prehashed(hashes.SHA3_256())))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass
class Account:
    address: str
    keys: list[AccountKey]
    balances: dict[str, int] = field(default_factory=lambda: {"FlowToken": 0, "FUSD": 0})

    def rest(self) -> dict[str, Any]:
        return {"address": self.address, "balance": str(self.balances["FlowToken"]), "contracts": {},
                "keys": [{"index": str(k.index), "public_key": "0x" + k.public_key.hex(),
                          "signing_algorithm": "ECDSA_secp256k1", "hashing_algorithm": "SHA3_256",
                          "sequence_number": str(k.sequence), "weight": str(k.weight), "revoked": k.revoked}
                         for k in self.keys]}


class _TatumKey:
    """A secp256k1 key the sandbox owns (Tatum's proposer or payer), signing as Tatum's /v3/flow/sign does."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256K1())
        numbers = self._key.public_key().public_numbers()
        self.public_key = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

        der = self._key.sign(hashlib.sha3_256(message).digest(), ec.ECDSA(Prehashed(hashes.SHA3_256())))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _address(value: Any, what: str) -> bytes:
    text = value[2:] if isinstance(value, str) and value.startswith("0x") else value
    if not isinstance(text, str) or not re.fullmatch(r"[0-9a-fA-F]{1,16}", text):
        raise VerifyFailed(f"{what} is not a Flow address")
    return bytes.fromhex(text.rjust(16, "0"))


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise VerifyFailed(f"{what} must be an unsigned integer string")
    return int(value)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerifyFailed(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise VerifyFailed(f"{what} is not base64") from None


@dataclass(frozen=True)
class SubmittedTx:
    """A REST transaction, decoded: payload fields as the protocol encodes them, and its signatures."""

    script: bytes
    arguments: list[bytes]
    reference_block: bytes
    gas_limit: int
    proposer: bytes
    proposal_index: int
    sequence: int
    payer: bytes
    authorizers: list[bytes]
    payload_signatures: list[tuple[bytes, int, bytes]]
    envelope_signatures: list[tuple[bytes, int, bytes]]

    @classmethod
    def from_rest(cls, body: Any) -> SubmittedTx:
        if not isinstance(body, dict):
            raise VerifyFailed("the transaction must be a JSON object")
        key = body.get("proposal_key")
        if not isinstance(key, dict):
            raise VerifyFailed("proposal_key is missing")

        def signatures(name: str) -> list[tuple[bytes, int, bytes]]:
            items = body.get(name)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise VerifyFailed(f"{name} must be a list of signatures")
            return [(_address(i.get("address"), f"{name} address"), _uint(i.get("key_index"), f"{name} key_index"),
                     _b64(i.get("signature"), f"{name} signature")) for i in items]

        arguments, authorizers = body.get("arguments"), body.get("authorizers")
        if not isinstance(arguments, list) or not isinstance(authorizers, list):
            raise VerifyFailed("arguments and authorizers must be lists")
        block = body.get("reference_block_id")
        if not isinstance(block, str) or not re.fullmatch(r"[0-9a-f]{64}", block):
            raise VerifyFailed("reference_block_id must be 32 bytes of hex")
        return cls(_b64(body.get("script"), "script"), [_b64(a, "argument") for a in arguments], bytes.fromhex(block),
                   _uint(body.get("gas_limit"), "gas_limit"), _address(key.get("address"), "proposal_key address"),
                   _uint(key.get("key_index"), "proposal key_index"), _uint(key.get("sequence_number"),
                                                                             "proposal sequence_number"),
                   _address(body.get("payer"), "payer"), [_address(a, "authorizer") for a in authorizers],
                   signatures("payload_signatures"), signatures("envelope_signatures"))

    def signer_index(self) -> dict[bytes, int]:
        order: dict[bytes, int] = {}
        for address in (self.proposer, self.payer, *self.authorizers):
            order.setdefault(address, len(order))
        return order

    def _canonical(self, signatures: list[tuple[bytes, int, bytes]]) -> list[list[Any]]:
        index = self.signer_index()
        if any(address not in index for address, _, _ in signatures):
            raise VerifyFailed("a signature is by an account that is not a signer of the transaction")
        return sorted(([index[a], k, s] for a, k, s in signatures), key=lambda item: (item[0], item[1]))

    def payload(self) -> list[Any]:
        return [self.script, self.arguments, self.reference_block, self.gas_limit, self.proposer,
                self.proposal_index, self.sequence, self.payer, self.authorizers]

    def payload_message(self) -> bytes:
        import rlp

        return DOMAIN_TAG + rlp.encode(self.payload())

    def envelope_message(self) -> bytes:
        import rlp

        return DOMAIN_TAG + rlp.encode([self.payload(), self._canonical(self.payload_signatures)])

    def transaction_id(self) -> str:
        """SHA3-256 of the RLP of payload, payload signatures and envelope signatures (no domain tag)."""
        import rlp

        return hashlib.sha3_256(rlp.encode([self.payload(), self._canonical(self.payload_signatures),
                                            self._canonical(self.envelope_signatures)])).hexdigest()


class FlowLedger(Ledger):
    """FLOW: accounts and keys, Tatum's proposal-key pool and payer, transactions verified, executed and sealed."""

    chains = ("FLOW",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._blocks = [os.urandom(32).hex()]
        self._proposer_key, self._payer_key = _TatumKey(), _TatumKey()
        self.proposer = self._new_account([AccountKey(0, self._proposer_key.public_key, FULL_WEIGHT)] + [
            AccountKey(i, self._proposer_key.public_key, 0) for i in range(1, PROPOSAL_KEYS + 1)])
        self.payer = self._new_account([AccountKey(0, self._payer_key.public_key, FULL_WEIGHT)])
        self._free_keys = list(range(1, PROPOSAL_KEYS + 1))
        self.released: list[tuple[str, int]] = []

    def _new_account(self, keys: list[AccountKey]) -> str:
        address = os.urandom(8).hex()
        self._accounts[address] = Account(address, keys)
        return address

    def create_account(self, public_key_hex: str, flow: int = 0, fusd: int = 0) -> str:
        """An account whose key 0 (weight 1000) is `public_key_hex` (the FLOW "address" of a wallet)."""
        try:
            public_key = bytes.fromhex(public_key_hex)
        except (TypeError, ValueError):
            public_key = b""
        if len(public_key) != 64:
            raise Rejected(400, "validation.failed", "publicKey must be 128 hex digits (x‖y of a secp256k1 key)")
        with self._lock:
            address = self._new_account([AccountKey(0, public_key, FULL_WEIGHT)])
            self._accounts[address].balances.update(FlowToken=flow, FUSD=fusd)
        return "0x" + address

    # -- the access node ------------------------------------------------------------------------

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        if endpoint != "access":
            return super().node(chain, endpoint, method, subpath, payload, headers)
        with self._lock:
            if method == "GET" and subpath == "/v1/blocks":
                block = self._blocks[-1]
                return Reply(200, [{"header": {"id": block, "parent_id": self._blocks[-2] if len(self._blocks) > 1
                                               else "0" * 64, "height": str(len(self._blocks)),
                                               "timestamp": "2024-01-01T00:00:00Z", "parent_voter_signature": ""},
                                    "payload": {"collection_guarantees": [], "block_seals": []}}])
            match = re.fullmatch(r"/v1/accounts/(?:0x)?([0-9a-fA-F]{16})", subpath)
            if method == "GET" and match:
                account = self._accounts.get(match.group(1).lower())
                if account is None:
                    return Reply(404, {"code": 404, "message": "account not found"})
                return Reply(200, account.rest())
            match = re.fullmatch(r"/v1/transaction_results/([0-9a-f]{64})", subpath)
            if method == "GET" and match:
                result = self._results.get(match.group(1))
                if result is None:
                    return Reply(404, {"code": 404, "message": "transaction not found"})
                return Reply(200, result)
            if method == "POST" and subpath == "/v1/transactions":
                try:
                    tx_id = self._accept(SubmittedTx.from_rest(payload))
                except VerifyFailed as exc:
                    return Reply(400, {"code": 400, "message": f"Invalid Flow transaction: {exc}"})
                return Reply(200, {"id": tx_id, "result": self._results[tx_id]})
        return Reply(404, {"code": 404, "message": f"the sandbox access node does not serve {method} {subpath}"})

    def _key(self, address: bytes, index: int) -> AccountKey:
        account = self._accounts.get(address.hex())
        keys = [k for k in account.keys if k.index == index] if account else []
        if not keys:
            raise VerifyFailed(f"account 0x{address.hex()} has no key {index}")
        if keys[0].revoked:
            raise VerifyFailed(f"key {index} of 0x{address.hex()} is revoked")
        return keys[0]

    def _accept(self, tx: SubmittedTx) -> str:
        """Verify a transaction (lock held); execute it, seal it and return its id."""
        if tx.reference_block.hex() not in self._blocks[-600:]:
            raise VerifyFailed("reference block not found (or expired)")
        if not 0 < tx.gas_limit <= MAX_GAS_LIMIT:
            raise VerifyFailed(f"gas limit {tx.gas_limit} is not in 1..{MAX_GAS_LIMIT}")
        seen = set()
        weights: dict[tuple[str, bytes], int] = {}
        for part, signatures, message in (("payload", tx.payload_signatures, tx.payload_message()),
                                          ("envelope", tx.envelope_signatures, tx.envelope_message())):
            for address, index, signature in signatures:
                if (address, index) in seen:
                    raise VerifyFailed(f"duplicate signature by key {index} of 0x{address.hex()}")
                seen.add((address, index))
                key = self._key(address, index)
                if not key.verify(signature, message):
                    raise VerifyFailed(f"invalid {part} signature: key {index} of 0x{address.hex()} did not sign the "
                                       f"{part}")
                weights[(part, address)] = weights.get((part, address), 0) + key.weight
        if (tx.proposer, tx.proposal_index) not in seen:
            raise VerifyFailed("the proposal key did not sign")
        for authorizer in tx.authorizers:
            total = weights.get(("payload", authorizer), 0) + (
                weights.get(("envelope", authorizer), 0) if authorizer == tx.payer else 0)
            if total < FULL_WEIGHT:
                raise VerifyFailed(f"authorizer 0x{authorizer.hex()} signed with weight {total} < {FULL_WEIGHT}")
        if weights.get(("envelope", tx.payer), 0) < FULL_WEIGHT:
            raise VerifyFailed(f"the payer 0x{tx.payer.hex()} did not sign the envelope with full weight")
        proposal = self._key(tx.proposer, tx.proposal_index)
        if tx.sequence != proposal.sequence:
            raise VerifyFailed(f"invalid proposal key: key {tx.proposal_index} of 0x{tx.proposer.hex()} has sequence "
                               f"number {proposal.sequence}, the transaction says {tx.sequence}")
        proposal.sequence += 1
        tx_id = tx.transaction_id()
        error = self._execute(tx) if self.execute else ""
        self._blocks.append(os.urandom(32).hex())
        self._results[tx_id] = {"block_id": self._blocks[-1], "collection_id": os.urandom(32).hex(),
                                "execution": "Failure" if error else "Success", "status": "Sealed",
                                "status_code": 1 if error else 0, "error_message": error,
                                "computation_used": "27", "events": []}
        return tx_id

    def _execute(self, tx: SubmittedTx) -> str:
        """Run a FLOW/FUSD transfer of tatum-js's script; '' on success, else the error message."""
        match = _TRANSFER.match(tx.script.decode("utf-8", "replace"))
        if not match:
            return ""
        network = 0 if self.testnet else 1
        fungible, token, token_address = match.groups()
        if fungible != FUNGIBLE_TOKEN[network] or token_address != TOKENS[token][network]:
            return f"[Error Code: 1101] cannot find declaration: import of {token} from another network's address"
        try:
            amount_arg, recipient_arg = (json.loads(a) for a in tx.arguments)
            amount = int(Decimal(amount_arg["value"]).scaleb(8))
            recipient = _address(recipient_arg["value"], "recipient").hex()
        except (ValueError, KeyError, TypeError, VerifyFailed):
            return "[Error Code: 1054] invalid transaction arguments"
        sender = self._accounts[tx.authorizers[0].hex()]
        if recipient not in self._accounts:
            return "panic: failed to borrow reference to recipient vault"
        if sender.balances[token] < amount:
            return (f"[Error Code: 1101] Amount withdrawn must be less than or equal than the balance of the Vault: "
                    f"{sender.balances[token]} < {amount}")
        sender.balances[token] -= amount
        self._accounts[recipient].balances[token] += amount
        return ""

    # -- Tatum's side -------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("GET", r"/v3/flow/proposal/(true|false)", self._proposal),
                Route("POST", r"/v3/flow/sign", self._sign),
                Route("POST", r"/sandbox/flow/account", self._create, needs_key=False),
                Route("GET", r"/sandbox/flow/account/(?:0x)?([0-9a-f]{16})", self._account, needs_key=False),
                Route("GET", r"/sandbox/flow/proposal-keys", self._proposal_keys, needs_key=False)]

    def _proposal(self, payload: Any, headers: Headers, is_payer: str) -> Reply:
        with self._lock:
            if is_payer == "true":
                return Reply(200, {"address": "0x" + self.payer, "keyId": 0})
            if not self._free_keys:
                raise Rejected(403, "flow.proposal.keys.exhausted", "All proposal keys are in use.")
            return Reply(200, {"address": "0x" + self.proposer, "keyId": self._free_keys.pop(0)})

    def _sign(self, payload: Any, headers: Headers) -> Reply:
        data = payload.get("data") if isinstance(payload, dict) else None
        is_payer = payload.get("isPayer") if isinstance(payload, dict) else None
        try:
            message = bytes.fromhex(data) if isinstance(data, str) else b""
        except ValueError:
            message = b""
        if not message.startswith(DOMAIN_TAG) or not isinstance(is_payer, bool):
            raise Rejected(400, "validation.failed", "Body must be {\"data\": <hex of a domain-tagged transaction "
                                                     "message>, \"isPayer\": bool}.")
        key = self._payer_key if is_payer else self._proposer_key
        return Reply(200, {"signature": key.sign(message).hex()})

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        """`/v3/flow/broadcast`: a proposal key released, or a sealed transaction's id reported for a pending one."""
        with self._lock:
            if body.get("signatureId") is None and isinstance(body.get("proposalKey"), int):
                key = body["proposalKey"]
                if key not in self._free_keys and 1 <= key <= PROPOSAL_KEYS:
                    self._free_keys.append(key)
                self.released.append((tx_data, key))
                return tx_data
            result = self._results.get(tx_data)
        if result is None:
            raise Rejected(400, "flow.broadcast.failed", f"No Flow transaction {tx_data[:70]!r} was submitted.")
        if result["status_code"]:
            raise Rejected(400, "flow.broadcast.failed",
                           f"Flow transaction {tx_data} failed: {result['error_message']}")
        return tx_data

    # -- admin and samples ------------------------------------------------------------------------

    def _create(self, payload: Any, headers: Headers) -> Reply:
        if not isinstance(payload, dict):
            raise Rejected(400, "validation.failed", "Body must be {\"publicKey\", \"flow\"?, \"fusd\"?}.")
        amounts = [payload.get(name, "0") for name in ("flow", "fusd")]
        if not all(isinstance(a, str) and a.isdigit() for a in amounts):
            raise Rejected(400, "validation.failed", "flow and fusd are amounts in 10^-8 as digit strings.")
        return Reply(200, {"address": self.create_account(str(payload.get("publicKey")), *map(int, amounts))})

    def _account(self, payload: Any, headers: Headers, address: str) -> Reply:
        with self._lock:
            account = self._accounts.get(address)
            if account is None:
                raise Rejected(404, "flow.account.not.found", f"No account 0x{address}.")
            return Reply(200, {**account.rest(), "balances": {k: str(v) for k, v in account.balances.items()}})

    def _proposal_keys(self, payload: Any, headers: Headers) -> Reply:
        with self._lock:
            return Reply(200, {"proposer": "0x" + self.proposer, "free": sorted(self._free_keys),
                               "released": [{"txData": t, "proposalKey": k} for t, k in self.released]})

    def describe(self) -> dict[str, Any]:
        return {"flowProposer": "0x" + self.proposer, "flowPayer": "0x" + self.payer}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A TRANSFER of `amount` (10^-8 FLOW) from a new account whose key is the wallet's public key `address`."""
        from cryptography.hazmat.primitives.asymmetric import ec

        account = self.create_account(address, flow=amount)
        numbers = ec.generate_private_key(ec.SECP256K1()).public_key().public_numbers()
        receiver = self.create_account(f"{numbers.x:064x}{numbers.y:064x}")
        value = format(Decimal(amount).scaleb(-8), "f")
        return json.dumps({"type": 2, "body": {"account": account, "to": receiver, "amount": value,
                                               "currency": "FLOW"}})
