"""Bitcoin-family transactions: bitcore's `Transaction.toObject()` JSON in, raw bytes out.

Holds the transaction model, its serialization (with the segwit marker when any input has a
witness), the txid, the legacy and BIP143 signature hashes, and the standard script templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chains.base import ChainError, json_object
from chains.primitives.secp import sha256d

SIGHASH_ALL = 1

# Output script kinds an input can spend.
P2PKH, P2WPKH, P2SH, P2PK = "p2pkh", "p2wpkh", "p2sh", "p2pk"


def p2pkh_script(pubkey_hash: bytes) -> bytes:
    """OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG."""
    return b"\x76\xa9\x14" + pubkey_hash + b"\x88\xac"


def p2wpkh_script(pubkey_hash: bytes) -> bytes:
    """OP_0 <20>: a version-0 witness key hash (also the P2SH-P2WPKH redeem script)."""
    return b"\x00\x14" + pubkey_hash


def classify(script: bytes) -> tuple[str, bytes] | None:
    """(kind, hash or public key) of a standard output script, or None for any other script."""
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return P2PKH, script[3:23]
    if len(script) == 22 and script[:2] == b"\x00\x14":
        return P2WPKH, script[2:]
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return P2SH, script[2:22]
    if len(script) in (35, 67) and script[0] == len(script) - 2 and script[-1] == 0xAC:
        return P2PK, script[1:-1]
    return None


def varint(n: int) -> bytes:
    """Bitcoin's CompactSize unsigned integer."""
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def var_bytes(data: bytes) -> bytes:
    """Length-prefixed bytes."""
    return varint(len(data)) + data


def push(data: bytes) -> bytes:
    """A script push of `data` (direct push or OP_PUSHDATA1, enough for signatures and keys)."""
    if len(data) < 0x4C:
        return bytes([len(data)]) + data
    if len(data) <= 0xFF:
        return b"\x4c" + bytes([len(data)]) + data
    raise ChainError("script push too large")


@dataclass
class TxInput:
    """One input: the outpoint it spends, what that output was, and (once signed) its scripts."""

    prev_txid: bytes  # display order (as in the JSON); reversed on the wire
    output_index: int
    sequence: int
    prev_script: bytes
    satoshis: int | None
    script_sig: bytes = b""
    witness: list[bytes] = field(default_factory=list)

    def outpoint(self) -> bytes:
        """The 36-byte serialized outpoint."""
        return self.prev_txid[::-1] + self.output_index.to_bytes(4, "little")


@dataclass
class TxOutput:
    """One output: amount in satoshis and its locking script."""

    satoshis: int
    script: bytes

    def serialize(self) -> bytes:
        """Amount (8 bytes LE) and the length-prefixed script."""
        return self.satoshis.to_bytes(8, "little") + var_bytes(self.script)


@dataclass
class Transaction:
    """A transaction being signed."""

    version: int
    inputs: list[TxInput]
    outputs: list[TxOutput]
    lock_time: int
    #: bitcore's `fee` and `changeScript` of the payload (used by the serialization checks only).
    fee: int | None = None
    change_script: str | None = None
    _bip143: tuple[bytes, bytes, bytes] | None = field(default=None, repr=False, compare=False)

    def serialize(self, with_witness: bool = True) -> bytes:
        """Wire bytes; BIP144 marker and flag are added only when some input carries a witness."""
        segwit = with_witness and any(i.witness for i in self.inputs)
        parts = [self.version.to_bytes(4, "little", signed=True)]
        if segwit:
            parts.append(b"\x00\x01")
        parts.append(varint(len(self.inputs)))
        parts += [i.outpoint() + var_bytes(i.script_sig) + i.sequence.to_bytes(4, "little") for i in self.inputs]
        parts.append(varint(len(self.outputs)))
        parts += [o.serialize() for o in self.outputs]
        if segwit:
            for i in self.inputs:
                parts.append(varint(len(i.witness)) + b"".join(var_bytes(item) for item in i.witness))
        parts.append(self.lock_time.to_bytes(4, "little"))
        return b"".join(parts)

    def txid(self) -> str:
        """Transaction id: double SHA-256 of the witness-less serialization, byte-reversed hex."""
        return sha256d(self.serialize(with_witness=False))[::-1].hex()

    def legacy_sighash(self, index: int, script_code: bytes) -> bytes:
        """The pre-segwit SIGHASH_ALL digest for input `index`."""
        parts = [self.version.to_bytes(4, "little", signed=True), varint(len(self.inputs))]
        for n, i in enumerate(self.inputs):
            script = script_code if n == index else b""
            parts.append(i.outpoint() + var_bytes(script) + i.sequence.to_bytes(4, "little"))
        parts.append(varint(len(self.outputs)))
        parts += [o.serialize() for o in self.outputs]
        parts.append(self.lock_time.to_bytes(4, "little") + SIGHASH_ALL.to_bytes(4, "little"))
        return sha256d(b"".join(parts))

    def segwit_sighash(self, index: int, script_code: bytes, satoshis: int, hash_type: int = SIGHASH_ALL) -> bytes:
        """The BIP143 digest for input `index` spending `satoshis` (SIGHASH_ALL; BCH: 0x41, with the fork id)."""
        if self._bip143 is None:  # the same three hashes serve every input
            self._bip143 = (
                sha256d(b"".join(i.outpoint() for i in self.inputs)),
                sha256d(b"".join(i.sequence.to_bytes(4, "little") for i in self.inputs)),
                sha256d(b"".join(o.serialize() for o in self.outputs)),
            )
        hash_prevouts, hash_sequence, hash_outputs = self._bip143
        spent = self.inputs[index]
        return sha256d(
            self.version.to_bytes(4, "little", signed=True) + hash_prevouts + hash_sequence + spent.outpoint()
            + var_bytes(script_code) + satoshis.to_bytes(8, "little") + spent.sequence.to_bytes(4, "little")
            + hash_outputs + self.lock_time.to_bytes(4, "little") + hash_type.to_bytes(4, "little")
        )


# -- bitcore JSON ---------------------------------------------------------------------------------


def from_bitcore_json(serialized: str, default_version: int = 1) -> Transaction:
    """Parse bitcore's `toObject()` JSON; check its `hash` (if given) against the recomputed txid."""
    obj = json_object(serialized)
    inputs, outputs = obj.get("inputs"), obj.get("outputs")
    if not isinstance(inputs, list) or not inputs:
        raise ChainError("transaction has no inputs")
    if not isinstance(outputs, list):
        raise ChainError("transaction has no outputs list")
    tx = Transaction(
        version=_integer(obj.get("version", default_version), "version", -(2**31), 2**31 - 1),
        inputs=[_input(item, n) for n, item in enumerate(inputs)],
        outputs=[_output(item, n) for n, item in enumerate(outputs)],
        lock_time=_integer(obj.get("nLockTime", 0), "nLockTime", 0, 2**32 - 1),
    )
    if obj.get("fee"):  # as bitcore: a fee of 0 is no fee
        tx.fee = _integer(obj["fee"], "fee", 0, 2**63 - 1)
    if obj.get("changeScript"):
        tx.change_script = str(obj["changeScript"])
    if obj.get("changeIndex"):  # as bitcore: a change index of 0 is none
        _check_change(tx, obj["changeIndex"])
    expected = obj.get("hash")
    if expected is not None and (not isinstance(expected, str) or expected.lower() != tx.txid()):
        raise ChainError("transaction 'hash' does not match its contents (payload altered or malformed)")
    return tx


_OPCODES = {
    "OP_0": 0x00, "OP_FALSE": 0x00, "OP_PUSHDATA1": 0x4C, "OP_PUSHDATA2": 0x4D, "OP_PUSHDATA4": 0x4E,
    "OP_1NEGATE": 0x4F, "OP_TRUE": 0x51, **{f"OP_{n}": 0x50 + n for n in range(1, 17)}, "OP_NOP": 0x61,
    "OP_VERIFY": 0x69, "OP_RETURN": 0x6A, "OP_DROP": 0x75, "OP_DUP": 0x76, "OP_EQUAL": 0x87,
    "OP_EQUALVERIFY": 0x88, "OP_SHA256": 0xA8, "OP_HASH160": 0xA9, "OP_HASH256": 0xAA, "OP_CHECKSIG": 0xAC,
    "OP_CHECKSIGVERIFY": 0xAD, "OP_CHECKMULTISIG": 0xAE, "OP_CHECKMULTISIGVERIFY": 0xAF,
    "OP_CHECKLOCKTIMEVERIFY": 0xB1, "OP_CHECKSEQUENCEVERIFY": 0xB2,
}


def _asm_script(text: str) -> bytes | None:
    """The bytes of a script in bitcore's string form (`OP_DUP OP_HASH160 20 0x… …`); None if not understood."""
    tokens, out, n = text.split(" "), bytearray(), 0
    try:
        while n < len(tokens):
            token = tokens[n]
            if token in _OPCODES:
                op = _OPCODES[token]
                if op in (0x4C, 0x4D, 0x4E):
                    data = bytes.fromhex(tokens[n + 2].removeprefix("0x"))
                    out += bytes([op]) + len(data).to_bytes({0x4C: 1, 0x4D: 2, 0x4E: 4}[op], "little") + data
                    n += 3
                else:
                    out.append(op)
                    n += 1
            elif token.isdigit() and 0 < int(token) < 0x4C and tokens[n + 1].startswith("0x"):
                data = bytes.fromhex(tokens[n + 1][2:])
                out += bytes([int(token)]) + data
                n += 2
            else:
                return None
    except (IndexError, ValueError):
        return None
    return bytes(out)


def _check_change(tx: Transaction, change_index: Any) -> None:
    """bitcore's `_checkConsistency`: the change index names an output paying the change script."""
    if tx.change_script is None:
        raise ChainError("Invalid state: Change script is expected.")
    if isinstance(change_index, bool) or not isinstance(change_index, int) or not (
            0 <= change_index < len(tx.outputs)):
        raise ChainError("Invalid state: Change index points to undefined output.")
    expected = _asm_script(tx.change_script)
    if expected is not None and expected != tx.outputs[change_index].script:
        raise ChainError("Invalid state: Change output has an unexpected script.")


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ChainError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ChainError(f"{name} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ChainError(f"{name} is not valid hex") from None


def _input(item: Any, n: int) -> TxInput:
    if not isinstance(item, dict) or not isinstance(item.get("output"), dict):
        raise ChainError(f"input {n} has no 'output' (the spent output's script and satoshis)")
    prev_txid = _hex(item.get("prevTxId"), f"input {n} prevTxId")
    if len(prev_txid) != 32:
        raise ChainError(f"input {n} prevTxId is not 32 bytes")
    output = item["output"]
    satoshis = output.get("satoshis")
    return TxInput(
        prev_txid=prev_txid,
        output_index=_integer(item.get("outputIndex"), f"input {n} outputIndex", 0, 2**32 - 1),
        sequence=_integer(item.get("sequenceNumber", 0xFFFFFFFF), f"input {n} sequenceNumber", 0, 2**32 - 1),
        prev_script=_hex(output.get("script"), f"input {n} output.script"),
        satoshis=None if satoshis is None else _integer(satoshis, f"input {n} output.satoshis", 0, 2**63 - 1),
        script_sig=_hex(item.get("script") or "", f"input {n} script"),
    )


def _output(item: Any, n: int) -> TxOutput:
    if not isinstance(item, dict):
        raise ChainError(f"output {n} is not an object")
    return TxOutput(
        satoshis=_integer(item.get("satoshis"), f"output {n} satoshis", 0, 2**63 - 1),
        script=_hex(item.get("script"), f"output {n} script"),
    )


# -- raw transactions -----------------------------------------------------------------------------


def from_raw(data: bytes) -> Transaction:
    """Parse a pre-segwit raw transaction (BCH's unsigned payload); ChainError naming what is wrong."""
    reader = _Reader(data)
    version = int.from_bytes(reader.take(4), "little", signed=True)
    inputs = []
    for _ in range(reader.count("input")):
        prev_txid = reader.take(32)[::-1]
        output_index = int.from_bytes(reader.take(4), "little")
        script_sig = reader.take(reader.count("script"))
        sequence = int.from_bytes(reader.take(4), "little")
        inputs.append(TxInput(prev_txid, output_index, sequence, b"", None, script_sig))
    outputs = []
    for _ in range(reader.count("output")):
        satoshis = int.from_bytes(reader.take(8), "little")
        outputs.append(TxOutput(satoshis, reader.take(reader.count("script"))))
    lock_time = int.from_bytes(reader.take(4), "little")
    if reader.offset != len(data):
        raise ChainError("transaction hex has trailing bytes")
    return Transaction(version, inputs, outputs, lock_time)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ChainError("transaction hex is truncated")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def count(self, what: str) -> int:
        first = self.take(1)[0]
        value = first if first < 0xFD else int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")
        if value > len(self.data):
            raise ChainError(f"transaction hex has an impossible {what} count")
        return value
