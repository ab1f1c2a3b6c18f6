"""The sandbox's bitcoin ledger: BTC, LTC and DOGE broadcasts checked by python-bitcoinlib's script interpreter,
UTXOs tracked per chain.

python-bitcoinlib shares no code with the KMS signer, so a broadcast it accepts is one a real node would
accept as far as signatures go (LTC and DOGE sign legacy and BIP143 inputs as bitcoin does; only their
address versions differ, which this ledger decodes from its own table). Outputs become spendable when a
pending transaction naming them is queued (its inputs' `output.script`/`satoshis`) or when an accepted
broadcast creates them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from chains import safejson
from chains.base import PendingTransaction
from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Rejected


@dataclass(frozen=True)
class Prevout:
    """An output a transaction may spend: its locking script and amount."""

    script: bytes
    satoshis: int


@dataclass(frozen=True)
class BitcoinTx:
    """What the sandbox keeps of an accepted bitcoin transaction."""

    txid: str
    spends: tuple[tuple[str, int], ...]
    outputs: tuple[Prevout, ...]


def verify_bitcoin(tx_hex: str, prevouts: dict[tuple[str, int], Prevout]) -> BitcoinTx:
    """Check every input's signature against the output it spends (P2PKH, P2PK, P2WPKH, P2SH-P2WPKH).

    Legacy and P2SH parts run through python-bitcoinlib's `VerifyScript`; that version has no witness
    interpreter, so a v0 key-hash witness is checked with its BIP143 `SignatureHash` and `CPubKey.verify`.
    """
    from bitcoin.core import CTransaction, b2lx
    from bitcoin.core.script import CScript
    from bitcoin.core.scripteval import SCRIPT_VERIFY_P2SH, VerifyScript

    try:
        tx = CTransaction.deserialize(bytes.fromhex(tx_hex))
    except Exception:
        raise VerifyFailed("TX decode failed") from None
    if not tx.vin or not tx.vout:
        raise VerifyFailed("bad-txns-vin-empty or bad-txns-vout-empty")
    spent_total = 0
    spends = []
    for index, txin in enumerate(tx.vin):
        outpoint = (b2lx(txin.prevout.hash), txin.prevout.n)
        prevout = prevouts.get(outpoint)
        if prevout is None:
            raise VerifyFailed(f"bad-txns-inputs-missingorspent: input {index} spends {outpoint[0]}:{outpoint[1]}")
        spends.append(outpoint)
        spent_total += prevout.satoshis
        script_pubkey = CScript(prevout.script)
        try:
            VerifyScript(txin.scriptSig, script_pubkey, tx, index, flags=(SCRIPT_VERIFY_P2SH,))
        except Exception as exc:
            raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: {exc}") from None
        if script_pubkey.is_witness_v0_keyhash():
            if len(txin.scriptSig):
                raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: scriptSig on witness")
            program = bytes(script_pubkey)[2:]
        elif script_pubkey.is_p2sh() and _nested_keyhash(txin.scriptSig):
            program = bytes(list(txin.scriptSig)[0])[2:]
        else:
            if tx.has_witness() and tx.wit.vtxinwit[index].scriptWitness.stack:
                raise VerifyFailed(f"non-mandatory-script-verify-flag: input {index} has an unexpected witness")
            continue
        _verify_keyhash_witness(tx, index, program, prevout.satoshis)
    if sum(out.nValue for out in tx.vout) > spent_total:
        raise VerifyFailed("bad-txns-in-belowout: outputs exceed inputs")
    outputs = tuple(Prevout(bytes(out.scriptPubKey), out.nValue) for out in tx.vout)
    return BitcoinTx(b2lx(tx.GetTxid()), tuple(spends), outputs)


def _nested_keyhash(script_sig: object) -> bool:
    """True when a P2SH scriptSig pushes exactly one v0 key-hash witness program (P2SH-P2WPKH)."""
    items = list(script_sig)  # type: ignore[call-overload]
    return len(items) == 1 and isinstance(items[0], bytes) and len(items[0]) == 22 and items[0][:2] == b"\x00\x14"


def _verify_keyhash_witness(tx: object, index: int, program: bytes, amount: int) -> None:
    from bitcoin.core import Hash160
    from bitcoin.core.key import CPubKey
    from bitcoin.core.script import (
        OP_CHECKSIG,
        OP_DUP,
        OP_EQUALVERIFY,
        OP_HASH160,
        SIGVERSION_WITNESS_V0,
        CScript,
        SignatureHash,
    )

    witness = tx.wit.vtxinwit[index].scriptWitness.stack if tx.has_witness() else []  # type: ignore[attr-defined]
    if len(witness) != 2:
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: witness is not [signature, pubkey]")
    signature, pubkey = bytes(witness[0]), bytes(witness[1])
    if len(pubkey) != 33 or Hash160(pubkey) != program:
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: witness key does not match program")
    if not signature:
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: empty signature")
    script_code = CScript([OP_DUP, OP_HASH160, program, OP_EQUALVERIFY, OP_CHECKSIG])
    digest = SignatureHash(script_code, tx, index, signature[-1], amount=amount, sigversion=SIGVERSION_WITNESS_V0)
    if not CPubKey(pubkey).verify(digest, signature[:-1]):
        raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: witness signature does not verify")


class BitcoinLedger(Ledger):
    """Bitcoin-family chains: one UTXO set per chain, every input's script verified."""

    chains = ("BTC", "LTC", "DOGE")

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self._lock = threading.Lock()
        self._utxos: dict[str, dict[tuple[str, int], Prevout]] = {code: {} for code in self.chains}
        self._spent: dict[str, set[tuple[str, int]]] = {code: set() for code in self.chains}

    def pending(self, chain: str, pending: PendingTransaction) -> None:
        prevouts = _bitcoin_prevouts(chain, pending.serialized_transaction)
        with self._lock:
            self._utxos[chain].update(prevouts)

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        with self._lock:  # verify against known outputs, then spend them
            utxos, spent = self._utxos[chain], self._spent[chain]
            unspent = {k: v for k, v in utxos.items() if k not in spent}
            try:
                accepted = verify_bitcoin(tx_data, unspent)
            except VerifyFailed as exc:
                raise Rejected(400, f"{chain.lower()}.broadcast.failed", str(exc)) from None
            spent.update(accepted.spends)
            for n, output in enumerate(accepted.outputs):
                utxos[(accepted.txid, n)] = output
            return accepted.txid


    def sample(self, chain: str, address: str, amount: int) -> str:
        """bitcore JSON spending a new output paid to `address`: `amount` back to it, and a fee.

        BTC and LTC: `amount` and a 1,000 sat fee. DOGE, whose original refuses outputs under 1 DOGE and
        fees far from its estimate: `amount` + 1 DOGE, and a 1 DOGE fee.
        """
        import os

        floor, fee = _SAMPLE_FLOOR_AND_FEE.get(chain, (0, 1000))
        script = _script_of(chain, address, self.testnet)
        prevout = (os.urandom(32).hex(), 0)
        with self._lock:
            self._utxos[chain][prevout] = Prevout(script, floor + amount + fee)
        return json.dumps({
            "version": 1 if chain == "DOGE" else 2, "nLockTime": 0,
            "inputs": [{"prevTxId": prevout[0], "outputIndex": 0, "sequenceNumber": 0xFFFFFFFF, "script": "",
                        "output": {"satoshis": floor + amount + fee, "script": script.hex()}}],
            "outputs": [{"satoshis": floor + amount, "script": script.hex()}],
        })


#: chain -> (what a sample adds to its amount, its fee) where the defaults (0, 1,000 sat) would be refused.
_SAMPLE_FLOOR_AND_FEE = {"DOGE": (100_000_000, 100_000_000)}

#: (chain, testnet) -> (P2PKH version, P2SH version, segwit human-readable part): this ledger's own table.
_ADDRESS_VERSIONS: dict[tuple[str, bool], tuple[int, int, str | None]] = {
    ("BTC", False): (0x00, 0x05, "bc"), ("BTC", True): (0x6F, 0xC4, "tb"),
    ("LTC", False): (0x30, 0x32, "ltc"), ("LTC", True): (0x6F, 0x3A, "tltc"),
    ("DOGE", False): (0x1E, 0x16, None), ("DOGE", True): (0x71, 0xC4, None),
}


def _script_of(chain: str, address: str, testnet: bool) -> bytes:
    """The output script paying `address` of `chain`, decoded with python-bitcoinlib's codecs (not the KMS's)."""
    from bitcoin import segwit_addr
    from bitcoin.base58 import CBase58Data
    from bitcoin.core.script import OP_CHECKSIG, OP_DUP, OP_EQUAL, OP_EQUALVERIFY, OP_HASH160, CScript

    p2pkh, p2sh, hrp = _ADDRESS_VERSIONS[(chain, testnet)]
    if hrp and address.lower().startswith(hrp + "1"):
        version, program = segwit_addr.decode(hrp, address)
        if version is None:
            raise Rejected(400, "validation.failed", f"{address} is not a valid {chain} segwit address.")
        return bytes(CScript([version, bytes(program)]))
    try:
        data = CBase58Data(address)
    except Exception:
        raise Rejected(400, "validation.failed", f"{address} is not a valid {chain} address.") from None
    if data.nVersion == p2pkh and len(data) == 20:
        return bytes(CScript([OP_DUP, OP_HASH160, bytes(data), OP_EQUALVERIFY, OP_CHECKSIG]))
    if data.nVersion == p2sh and len(data) == 20:
        return bytes(CScript([OP_HASH160, bytes(data), OP_EQUAL]))
    network = "testnet" if testnet else "mainnet"
    raise Rejected(400, "validation.failed", f"{address} is not a {network} {chain} address.")


def _bitcoin_prevouts(chain: str, serialized: str) -> dict[tuple[str, int], Prevout]:
    """The outputs a bitcore-JSON transaction spends, from its inputs' `output.script`/`satoshis`."""
    try:
        inputs = safejson.loads(serialized)["inputs"]
        prevouts = {}
        for txin in inputs:
            output = txin["output"]
            key = (str(txin["prevTxId"]).lower(), int(txin["outputIndex"]))
            prevouts[key] = Prevout(bytes.fromhex(output["script"]), int(output["satoshis"]))
        return prevouts
    except (ValueError, KeyError, TypeError):
        raise Rejected(400, "validation.failed",
                       f"A {chain} serializedTransaction must be bitcore JSON whose inputs carry "
                       "prevTxId, outputIndex and output {script, satoshis}.") from None
