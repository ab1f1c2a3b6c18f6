"""The sandbox's XRP ledger: a broadcast blob decoded by xrpl-py, its signature verified by xrpl-py's own keypairs
(ecpy for secp256k1, its ed25519), and its fields checked by xrpl-py's transaction models.

The KMS signer only borrows xrpl-py's encoder; its keys and signatures are PyNaCl and coincurve, so what this
ledger accepts was signed correctly by a different implementation than the one that checks it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any

from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Rejected

_HEX_UPPER = re.compile(r"(?:[0-9A-F]{2})+")
_TYPES = ("Payment", "TrustSet", "AccountSet")
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class XrpLedger(Ledger):
    """XRP: blobs verified, nothing executed; `sample` makes autofilled payments as Tatum queues them."""

    chains = ("XRP",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self._lock = threading.Lock()
        self._sequence = 1000
        self._seen: set[str] = set()

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            tx_hash = verify_xrp(tx_data)
        except VerifyFailed as exc:
            raise Rejected(400, "xrp.broadcast.failed", str(exc)) from None
        with self._lock:
            if tx_hash in self._seen:
                raise Rejected(400, "xrp.broadcast.failed", f"tefALREADY: transaction {tx_hash} was already applied")
            self._seen.add(tx_hash)
        return tx_hash

    def sample(self, chain: str, address: str, amount: int) -> str:
        """An autofilled Payment of `amount` drops from `address` to a fresh account, as xrpl.js `autofill` makes it."""
        from xrpl.core.addresscodec import encode_classic_address

        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        return json.dumps({
            "TransactionType": "Payment", "Account": address, "Destination": encode_classic_address(os.urandom(20)),
            "Amount": str(amount), "Flags": 0, "Sequence": sequence, "Fee": "12",
            "LastLedgerSequence": sequence + 20,
        })


def verify_xrp(blob: str) -> str:
    """Decode a signed blob, check it as rippled's preflight would for a single-signed transaction, return its hash."""
    from xrpl.core.binarycodec import decode, encode, encode_for_signing
    from xrpl.core.keypairs import derive_classic_address, is_valid_message
    from xrpl.models.exceptions import XRPLModelException
    from xrpl.models.transactions.transaction import Transaction

    if not isinstance(blob, str) or not _HEX_UPPER.fullmatch(blob):
        raise VerifyFailed("invalidTransaction: tx_blob is not uppercase hex")
    try:
        tx = decode(blob)
        canonical = encode(tx) == blob
    except Exception:  # the codec raises assorted types on malformed input
        raise VerifyFailed("invalidTransaction: tx_blob does not decode") from None
    if not canonical:
        raise VerifyFailed("invalidTransaction: tx_blob is not in canonical field order")
    kind = tx.get("TransactionType")
    if kind not in _TYPES:
        raise VerifyFailed(f"temUNKNOWN: the sandbox checks {', '.join(_TYPES)}, not {kind!r}")
    for name in ("Account", "Fee", "Sequence", "SigningPubKey", "TxnSignature"):
        if not tx.get(name) and tx.get(name) != 0:
            raise VerifyFailed(f"temMALFORMED: the transaction has no {name}")
    if "NetworkID" in tx:
        raise VerifyFailed("telNETWORK_ID_MAKES_TX_NON_CANONICAL: NetworkID is not allowed on this network")
    public_key, signature = tx["SigningPubKey"], bytes.fromhex(tx["TxnSignature"])
    if not public_key.startswith("ED") and not _low_s_der(signature):
        raise VerifyFailed("temBAD_SIGNATURE: the secp256k1 signature is not fully canonical (DER, low S)")
    try:
        valid = is_valid_message(bytes.fromhex(encode_for_signing(tx)), signature, public_key)
    except Exception:
        valid = False
    if not valid:
        raise VerifyFailed("temBAD_SIGNATURE: TxnSignature does not verify for SigningPubKey")
    if derive_classic_address(public_key) != tx["Account"]:
        raise VerifyFailed("tefBAD_AUTH: SigningPubKey is not the master key of Account")
    try:
        model = Transaction.from_xrpl(tx)
    except XRPLModelException as exc:
        raise VerifyFailed(f"temMALFORMED: {' '.join(str(exc).split())}") from None
    return str(model.get_hash())


def _low_s_der(signature: bytes) -> bool:
    """A strict DER ECDSA signature (minimal integers) whose S is at most half the group order."""
    if len(signature) < 8 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        return False
    values = []
    rest = signature[2:]
    for _ in range(2):
        if len(rest) < 2 or rest[0] != 0x02 or rest[1] == 0 or rest[1] > len(rest) - 2:
            return False
        body, rest = rest[2:2 + rest[1]], rest[2 + rest[1]:]
        if body[0] & 0x80 or (len(body) > 1 and body[0] == 0 and not body[1] & 0x80):
            return False
        values.append(int.from_bytes(body, "big"))
    r, s = values
    return not rest and 0 < r < _ORDER and 0 < s <= _ORDER // 2
