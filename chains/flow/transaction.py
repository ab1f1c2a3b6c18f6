"""Flow transactions as FCL (@onflow/sdk) encodes them: the RLP payload and envelope behind the 32-byte
transaction domain tag, the signer index of each signature, and the JSON body of the access node's REST API.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from chains.base import ChainError
from chains.primitives import rlp

#: "FLOW-V0.0-transaction", right-padded with zero bytes to 32: prefixed to every signed transaction message.
DOMAIN_TAG = b"FLOW-V0.0-transaction".ljust(32, b"\0")


def sans_prefix(address: str) -> str:
    """An address without its `0x` (FCL's sansPrefix)."""
    return address[2:] if address.startswith("0x") else address


def _address_bytes(address: str) -> bytes:
    body = sans_prefix(address)
    if len(body) > 16:
        raise ChainError(f"FLOW address {address[:40]!r} is longer than 8 bytes")
    try:
        return bytes.fromhex(body.rjust(16, "0"))
    except ValueError:
        raise ChainError(f"FLOW address {address[:40]!r} is not hex") from None


@dataclass(frozen=True)
class ProposalKey:
    address: str
    key_id: int
    sequence: int


@dataclass(frozen=True)
class Signature:
    """One signature of a transaction: by key `key_id` of `address`, r‖s."""

    address: str
    key_id: int
    signature: bytes


@dataclass(frozen=True)
class FlowTransaction:
    """What a Flow transaction's payload holds; addresses as FCL keeps them (sans `0x`, case untouched)."""

    script: str
    arguments: tuple[bytes, ...]
    reference_block: str
    gas_limit: int
    proposal_key: ProposalKey
    payer: str
    authorizers: tuple[str, ...]

    def _payload(self) -> list[rlp.Item]:
        try:
            block = bytes.fromhex(self.reference_block.rjust(64, "0"))
        except ValueError:
            raise ChainError("the reference block id is not hex") from None
        if len(block) != 32:
            raise ChainError("the reference block id is not 32 bytes")
        key = self.proposal_key
        return [self.script.encode("utf-8"), list(self.arguments), block, self.gas_limit,
                _address_bytes(key.address), key.key_id, key.sequence, _address_bytes(self.payer),
                [_address_bytes(a) for a in self.authorizers]]

    def signer_indexes(self) -> dict[str, int]:
        """Address -> signer index: the proposer, the payer, then the authorizers, each address once."""
        indexes: dict[str, int] = {}
        for address in (sans_prefix(self.proposal_key.address), sans_prefix(self.payer),
                        *(sans_prefix(a) for a in self.authorizers)):
            indexes.setdefault(address, len(indexes))
        return indexes

    def _signatures(self, signatures: list[Signature]) -> list[rlp.Item]:
        indexes = self.signer_indexes()
        ordered = []
        for sig in signatures:
            index = indexes.get(sans_prefix(sig.address))
            if index is None:
                raise ChainError(f"a signature by {sig.address[:40]!r}, which is no signer of the transaction")
            ordered.append((index, sig.key_id, sig.signature))
        return [list(item) for item in sorted(ordered, key=lambda item: (item[0], item[1]))]

    def payload_message(self) -> bytes:
        """What the proposer and the authorizers sign: the domain tag and the RLP payload."""
        return DOMAIN_TAG + rlp.encode(self._payload())

    def envelope_message(self, payload_signatures: list[Signature]) -> bytes:
        """What the payer signs: the domain tag and the RLP of the payload with its signatures."""
        return DOMAIN_TAG + rlp.encode([self._payload(), self._signatures(payload_signatures)])

    def rest_body(self, payload_signatures: list[Signature], envelope_signatures: list[Signature]) -> dict[str, Any]:
        """The access node's `POST /v1/transactions` body, as FCL's HTTP transport writes it."""
        def rest(signatures: list[Signature]) -> list[dict[str, str]]:
            return [{"address": sans_prefix(s.address), "key_index": str(s.key_id),
                     "signature": base64.b64encode(s.signature).decode("ascii")} for s in signatures]

        key = self.proposal_key
        return {
            "script": base64.b64encode(self.script.encode("utf-8")).decode("ascii"),
            "arguments": [base64.b64encode(a).decode("ascii") for a in self.arguments],
            "reference_block_id": self.reference_block,
            "gas_limit": str(self.gas_limit),
            "payer": sans_prefix(self.payer),
            "proposal_key": {"address": sans_prefix(key.address), "key_index": str(key.key_id),
                             "sequence_number": str(key.sequence)},
            "authorizers": list(dict.fromkeys(sans_prefix(a) for a in self.authorizers)),
            "payload_signatures": rest(payload_signatures),
            "envelope_signatures": rest(envelope_signatures),
        }
