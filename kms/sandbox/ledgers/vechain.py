"""The sandbox's VET ledger: thor's REST node (`/blocks/0`, `/blocks/best`, `POST /accounts/*`) and a verifier of
VeChainThor transactions written from thor's format, sharing no code with the KMS signer (pyrlp, hashlib's
BLAKE2b, libsecp256k1 through coincurve).

A broadcast is decoded (chainTag, blockRef, expiration, clauses, gasPriceCoef, gas, dependsOn, nonce, reserved,
signature), its chain tag checked against the network's genesis, its block reference against the blocks this
node made (and its expiration), its gas against the intrinsic gas plus what the VM would use, its blake2b-256
signing hash recomputed and its origin recovered; the clause must be what the pending transaction (or the
sample) asked for, and a transaction id is accepted once. Each accepted transaction makes a new best block.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address

from chains import safejson
from chains.base import PendingTransaction
from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Headers, Rejected, Reply

#: Genesis block ids of VeChain's mainnet and testnet: the chain tag is their last byte.
GENESIS = ("0x00000000851caf3cfdb6e899cf5958bfb1ac3413d346d43539627e6be7ec1b4a",
           "0x000000000b2bce3c70bc649a02749e8687721b09ed2e15997f466536b20bb127")
#: Intrinsic gas per thor: a transaction, a clause, a contract-creating clause, a zero and a non-zero data byte.
TX_GAS, CLAUSE_GAS, CREATE_GAS, ZERO_GAS, NONZERO_GAS = 5000, 16000, 48000, 4, 68
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FIRST_BLOCK = 1000


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def intrinsic_gas(clauses: list[tuple[bytes, int, bytes]]) -> int:
    """thor's intrinsic gas of clauses (to, value, data)."""
    if not clauses:
        return TX_GAS + CLAUSE_GAS
    gas = TX_GAS
    for to, _, data in clauses:
        gas += CLAUSE_GAS if to else CREATE_GAS
        gas += sum(ZERO_GAS if byte == 0 else NONZERO_GAS for byte in data)
    return gas


def vm_gas(data: bytes) -> int:
    """What this sandbox's pretend VM uses for a clause: nothing for a plain transfer, more for a call."""
    return 0 if not data else 3000 + 10 * len(data)


def _uint(raw: Any, name: str, size: int) -> int:
    if not isinstance(raw, bytes) or raw[:1] == b"\0" or len(raw) > size:
        raise VerifyFailed(f"rlp: {name} is not a canonical {size}-byte integer")
    return int.from_bytes(raw, "big")


def decode_thor(raw: bytes) -> dict[str, Any]:
    """The body, signing hash, origin and id of a signed thor transaction; VerifyFailed if it is not one."""
    try:
        items = rlp.decode(raw)
    except rlp.exceptions.DecodingError:
        raise VerifyFailed("rlp: the transaction cannot be decoded") from None
    if not isinstance(items, list) or len(items) != 10:
        raise VerifyFailed("rlp: not a signed thor transaction (10 fields)")
    chain_tag, block_ref, expiration, clauses, coef, gas, depends_on, nonce, reserved, signature = items
    if not isinstance(clauses, list) or not isinstance(reserved, list):
        raise VerifyFailed("rlp: clauses and reserved must be lists")
    if reserved:
        raise VerifyFailed("reserved fields (features such as fee delegation) are not accepted here")
    if not isinstance(block_ref, bytes) or len(block_ref) > 8 or block_ref[:1] == b"\0":
        raise VerifyFailed("rlp: blockRef is not a compact 8-byte value")
    if not isinstance(depends_on, bytes) or len(depends_on) not in (0, 32):
        raise VerifyFailed("rlp: dependsOn is neither empty nor 32 bytes")
    decoded_clauses = []
    for clause in clauses:
        if not isinstance(clause, list) or len(clause) != 3 or not all(isinstance(f, bytes) for f in clause):
            raise VerifyFailed("rlp: a clause is not [to, value, data]")
        if len(clause[0]) not in (0, 20):
            raise VerifyFailed("rlp: a clause's to is neither empty nor 20 bytes")
        decoded_clauses.append((clause[0], _uint(clause[1], "value", 32), clause[2]))
    if not isinstance(signature, bytes) or len(signature) != 65:
        raise VerifyFailed("the signature is not 65 bytes (r, s, recovery id)")
    r, s, recovery = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if recovery > 1 or not 0 < r < _N or not 0 < s <= _N // 2:
        raise VerifyFailed("invalid signature values")
    signing_hash = blake2b256(rlp.encode(items[:9]))
    import coincurve

    try:
        public = coincurve.PublicKey.from_signature_and_message(signature, signing_hash, hasher=None)
    except Exception:
        raise VerifyFailed("invalid signature: it does not recover") from None
    origin = keccak(public.format(compressed=False)[1:])[-20:]
    return {
        "chainTag": _uint(chain_tag, "chainTag", 1), "blockRef": block_ref.rjust(8, b"\0"),
        "expiration": _uint(expiration, "expiration", 4), "clauses": decoded_clauses,
        "gasPriceCoef": _uint(coef, "gasPriceCoef", 1), "gas": _uint(gas, "gas", 8), "dependsOn": depends_on,
        "nonce": _uint(nonce, "nonce", 8), "signingHash": signing_hash, "origin": "0x" + origin.hex(),
        "id": "0x" + blake2b256(signing_hash + origin).hex(),
    }


def _quantity(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise VerifyFailed(f"payload {name} is not a number")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            pass
    raise VerifyFailed(f"payload {name} is not a number")


class VetLedger(Ledger):
    """VET: thor's node and a verifier of what is broadcast; blocks advance as transactions are accepted."""

    chains = ("VET",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self.genesis = GENESIS[1] if testnet else GENESIS[0]
        self.chain_tag = int(self.genesis[-2:], 16)
        self._blocks: list[str] = []
        self._accepted: dict[str, list[str]] = {}  # origin -> ids of its accepted transactions
        self._payloads: dict[str, dict[str, Any]] = {}
        self._samples: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._new_block()

    def _new_block(self) -> None:
        number = FIRST_BLOCK + len(self._blocks)
        self._blocks.append("0x" + number.to_bytes(4, "big").hex() + os.urandom(28).hex())

    def best(self) -> dict[str, Any]:
        """The best block as thor describes it (the fields a signer reads)."""
        with self._lock:
            block_id, number = self._blocks[-1], FIRST_BLOCK + len(self._blocks) - 1
        return {"number": number, "id": block_id, "parentID": self.genesis, "timestamp": 1_700_000_000 + 10 * number}

    def pending(self, chain: str, pending: PendingTransaction) -> None:
        try:
            payload = safejson.loads(pending.serialized_transaction)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise Rejected(400, "validation.failed", "A VET serializedTransaction must be a JSON object.")
        with self._lock:
            self._payloads[pending.id] = payload

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            return self._verify(tx_data, body.get("signatureId"))
        except VerifyFailed as exc:
            raise Rejected(400, "vet.broadcast.failed", str(exc)) from None

    def _verify(self, tx_data: str, signature_id: Any) -> str:
        try:
            raw = bytes.fromhex(tx_data[2:] if tx_data.lower().startswith("0x") else tx_data)
        except ValueError:
            raise VerifyFailed("txData is not hex") from None
        tx = decode_thor(raw)
        if tx["chainTag"] != self.chain_tag:
            raise VerifyFailed(f"bad chain tag {tx['chainTag']:#04x}: this network's is {self.chain_tag:#04x}")
        if not tx["clauses"]:
            raise VerifyFailed("a transaction without clauses")
        needed = intrinsic_gas(tx["clauses"]) + sum(vm_gas(data) for _, _, data in tx["clauses"])
        if tx["gas"] < needed:
            raise VerifyFailed(f"gas {tx['gas']} is less than the {needed} this transaction uses")
        with self._lock:
            refs = {bytes.fromhex(block[2:18]): FIRST_BLOCK + n for n, block in enumerate(self._blocks)}
            if tx["blockRef"] not in refs:
                raise VerifyFailed("blockRef refers to no block of this chain")
            head = FIRST_BLOCK + len(self._blocks) - 1
            if refs[tx["blockRef"]] + tx["expiration"] <= head:
                raise VerifyFailed("the transaction expired")
            if any(tx["id"] in ids for ids in self._accepted.values()):
                raise VerifyFailed(f"transaction {tx['id']} is known already")
            payload = self._payloads.get(signature_id) if isinstance(signature_id, str) else None
            payload = payload if payload is not None else self._samples.get(tx["origin"])
            if payload is not None:
                self._compare(tx, payload)
            self._accepted.setdefault(tx["origin"], []).append(tx["id"])
            self._new_block()
        return str(tx["id"])

    @staticmethod
    def _compare(tx: dict[str, Any], payload: dict[str, Any]) -> None:
        """The signed clause and the fields the payload fixes must be the payload's."""
        if len(tx["clauses"]) != 1:
            raise VerifyFailed("the pending transaction has one clause, the signed one has more")
        to, value, data = tx["clauses"][0]
        wanted_to = str(payload.get("to") or "").lower()
        if ("0x" + to.hex() if to else "") != wanted_to:
            raise VerifyFailed(f"the signed clause goes to {'0x' + to.hex() if to else 'nobody'}, not {wanted_to}")
        if value != (_quantity(payload["value"], "value") if payload.get("value") else 0):
            raise VerifyFailed("the signed clause's value is not the pending one")
        wanted_data = str(payload.get("data") or "").lower().removeprefix("0x")
        if data.hex() != wanted_data:
            raise VerifyFailed("the signed clause's data is not the pending one")
        for name in ("gasPriceCoef", "expiration", "chainTag"):
            if payload.get(name) not in (None, "") and tx[name] != _quantity(payload[name], name):
                raise VerifyFailed(f"the signed {name} is not the pending one")
        if payload.get("gasPriceCoef") in (None, "") and tx["gasPriceCoef"] != 128:
            raise VerifyFailed("the gas price coefficient is not the default 128")

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        if endpoint != "node":
            return super().node(chain, endpoint, method, subpath, payload, headers)
        if method == "GET" and subpath == "/blocks/0":
            return Reply(200, {"number": 0, "id": self.genesis, "parentID": "0xffffffff" + "00" * 28,
                               "timestamp": 1_530_316_800})
        if method == "GET" and subpath == "/blocks/best":
            return Reply(200, self.best())
        if method == "POST" and subpath == "/accounts/*":
            return Reply(200, self._inspect(payload))
        if method == "POST" and subpath == "/transactions":
            raw = payload.get("raw") if isinstance(payload, dict) else None
            try:
                return Reply(200, {"id": self._verify(str(raw), None)})
            except VerifyFailed as exc:
                raise Rejected(400, "bad.tx", str(exc)) from None
        raise Rejected(404, "not.found", f"The sandbox's VET node does not serve {method} {subpath}.")

    def _inspect(self, body: Any) -> list[dict[str, Any]]:
        """thor's call simulation: one result per clause, the gas its VM would use."""
        clauses = body.get("clauses") if isinstance(body, dict) else None
        if not isinstance(clauses, list) or not all(isinstance(c, dict) for c in clauses):
            raise Rejected(400, "bad.request", "body: clauses must be a list of {to, value, data}")
        results = []
        for clause in clauses:
            try:
                data = bytes.fromhex(str(clause.get("data") or "0x").removeprefix("0x"))
            except ValueError:
                raise Rejected(400, "bad.request", "clause data is not hex") from None
            results.append({"data": "0x", "events": [], "transfers": [], "gasUsed": vm_gas(data), "reverted": False,
                            "vmError": ""})
        return results

    def describe(self) -> dict[str, Any]:
        return {"vetChainTag": self.chain_tag}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A VET transfer of `amount` wei from `address` without a nonce (the signer draws one)."""
        payload = {"to": "0x" + os.urandom(20).hex(), "value": str(amount)}
        with self._lock:
            self._samples[to_checksum_address(address).lower()] = payload
        return json.dumps(payload)
