"""The sandbox's Algorand ledger: ALGO broadcasts decoded by py-algorand-sdk and their ed25519 signature
verified by OpenSSL (through `cryptography`) over "TX" + the transaction as algosdk encodes it.

Neither shares code with the KMS signer (msgpack dicts and PyNaCl). The checks are what algod checks
before a pool admits a transaction: canonical encoding, the network's genesis, a signature by the
sender (or the `sgnr` of a rekeyed account), the minimum fee, a validity window of at most 1,000 rounds.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Rejected

#: (genesis id, base64 genesis hash) of each network.
NETWORKS = {
    True: ("testnet-v1.0", "SGO1GKSzyE7IEPItTxCByw9x8FmnrCDexi9/cOUJOiI="),
    False: ("mainnet-v1.0", "wGHE2Pwdvd7S12BL5FaOP20EGYesN73ktiC1qzkkit8="),
}
MIN_FEE = 1000
MAX_VALIDITY = 1000


def verify_algorand(tx_hex: str, testnet: bool) -> str:
    """Check a hex msgpack SignedTransaction for the network; return its transaction id, or raise VerifyFailed."""
    from algosdk import encoding, transaction
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = bytes.fromhex(tx_hex)
        signed = encoding.msgpack_decode(base64.b64encode(raw).decode())
    except Exception:
        raise VerifyFailed("msgpack decode error: txData is not a hex msgpack SignedTransaction") from None
    if not isinstance(signed, transaction.SignedTransaction):
        raise VerifyFailed("txData is not a SignedTransaction (a multisig or logic signature is not verified here)")
    if base64.b64decode(encoding.msgpack_encode(signed)) != raw:
        raise VerifyFailed("txData is not canonically encoded")
    txn = signed.transaction
    if not isinstance(txn, transaction.PaymentTxn | transaction.AssetTransferTxn):
        raise VerifyFailed(f"transaction type {txn.type!r} is not verified by this sandbox")
    genesis_id, genesis_hash = NETWORKS[testnet]
    if txn.genesis_hash != genesis_hash or (txn.genesis_id and txn.genesis_id != genesis_id):
        raise VerifyFailed(f"genesis mismatch: this sandbox is {genesis_id}")
    if txn.fee < MIN_FEE:
        raise VerifyFailed(f"transaction had fee {txn.fee}, which is less than the minimum {MIN_FEE}")
    if not 0 < txn.first_valid_round <= txn.last_valid_round <= txn.first_valid_round + MAX_VALIDITY:
        raise VerifyFailed("transaction validity window is empty or longer than 1000 rounds")
    signer = signed.authorizing_address or txn.sender
    message = b"TX" + base64.b64decode(encoding.msgpack_encode(txn))
    try:
        Ed25519PublicKey.from_public_bytes(encoding.decode_address(signer)).verify(
            base64.b64decode(signed.signature), message)
    except (InvalidSignature, ValueError):
        raise VerifyFailed(f"At least one signature didn't pass verification (signer {signer})") from None
    return txn.get_txid()


class AlgorandLedger(Ledger):
    """ALGO: broadcasts verified, nothing executed."""

    chains = ("ALGO",)

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        try:
            return verify_algorand(tx_data, self.testnet)
        except VerifyFailed as exc:
            raise Rejected(400, "algo.broadcast.failed", str(exc)) from None

    def describe(self) -> dict[str, Any]:
        return {"algorandGenesisId": NETWORKS[self.testnet][0]}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """A payment of `amount` microAlgos from `address` in algosdk 1.16's JSON form, as Tatum queues it."""
        from algosdk import account

        _, receiver = account.generate_account()
        genesis_id, genesis_hash = NETWORKS[self.testnet]
        return json.dumps(algosdk116_json(address, receiver, amount=amount, fee=MIN_FEE, first_round=1000,
                                          last_round=2000, genesis_id=genesis_id, genesis_hash=genesis_hash,
                                          note=os.urandom(8)))


def algosdk116_json(sender: str, receiver: str, *, amount: int, fee: int, first_round: int, last_round: int,
                    genesis_id: str, genesis_hash: str, note: bytes = b"", flat_fee: bool = True,
                    kind: str = "pay", asset_index: int | None = None, **extra: Any) -> dict[str, Any]:
    """What `JSON.stringify(new algosdk.Transaction({...}))` gives in algosdk 1.16.0 (Tatum's serializedTransaction):
    addresses as {publicKey, checksum} of index-keyed bytes, note and lease as index-keyed bytes, genesisHash
    and tag as Node Buffer JSON. `extra` adds or replaces fields as they appear in that JSON."""
    from algosdk import encoding

    def uint8array(data: bytes) -> dict[str, int]:
        return {str(i): b for i, b in enumerate(data)}

    def address(text: str) -> dict[str, Any]:
        public = encoding.decode_address(text)
        checksum = encoding.checksum(public)[-4:]
        return {"publicKey": uint8array(public), "checksum": uint8array(checksum)}

    obj: dict[str, Any] = {"name": "Transaction", "tag": {"type": "Buffer", "data": list(b"TX")},
                           "from": address(sender), "to": address(receiver), "amount": amount, "fee": fee,
                           "firstRound": first_round, "lastRound": last_round, "note": uint8array(note),
                           "genesisID": genesis_id,
                           "genesisHash": {"type": "Buffer", "data": list(base64.b64decode(genesis_hash))},
                           "type": kind, "flatFee": flat_fee, "lease": {}, "appArgs": []}
    if asset_index is not None:
        obj["assetIndex"] = asset_index
    obj.update(extra)
    return obj
