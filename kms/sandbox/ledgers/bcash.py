"""The sandbox's Bitcoin Cash ledger: BCH broadcasts checked by a verifier written from the BCH specifications.

No Python library on PyPI verifies BCH transactions, so this module does, sharing no code with the KMS
signer (`chains.bitcoin.bcash`): its own transaction parser, CashAddr decoder, secp256k1 arithmetic, the
replay-protected (BIP143 with fork id) sighash of `replay-protected-sighash.md`, and the Schnorr
verification of `2019-05-15-schnorr.md` (bitcoincashorg/bitcoincash.org spec/), pinned to the public
Schnorr vectors in its tests. Spends of P2PKH outputs with SIGHASH_ALL|FORKID Schnorr signatures are
verified; anything else is refused with the reason. UTXOs come from `sample`, `POST /sandbox/bch/utxo`
and accepted broadcasts (a BCH payload carries amounts but not the scripts it spends).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Headers, Rejected, Reply, Route

# -- secp256k1, affine points as (x, y), None for infinity -----------------------------------------

P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
     0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)

Point = tuple[int, int] | None


def _to_jacobian(point: Point) -> tuple[int, int, int]:
    return (0, 1, 0) if point is None else (point[0], point[1], 1)


def _double(a: tuple[int, int, int]) -> tuple[int, int, int]:
    x, y, z = a
    if z == 0 or y == 0:
        return (0, 1, 0)
    s = 4 * x * y * y % P
    m = 3 * x * x % P
    nx = (m * m - 2 * s) % P
    return nx, (m * (s - nx) - 8 * pow(y, 4, P)) % P, 2 * y * z % P


def _add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    if a[2] == 0:
        return b
    if b[2] == 0:
        return a
    z1s, z2s = a[2] * a[2] % P, b[2] * b[2] % P
    u1, u2 = a[0] * z2s % P, b[0] * z1s % P
    s1, s2 = a[1] * z2s * b[2] % P, b[1] * z1s * a[2] % P
    if u1 == u2:
        return _double(a) if s1 == s2 else (0, 1, 0)
    h, r = (u2 - u1) % P, (s2 - s1) % P
    h2 = h * h % P
    h3 = h * h2 % P
    nx = (r * r - h3 - 2 * u1 * h2) % P
    return nx, (r * (u1 * h2 - nx) - s1 * h3) % P, h * a[2] * b[2] % P


def _affine(a: tuple[int, int, int]) -> Point:
    if a[2] == 0:
        return None
    inverse = pow(a[2], -1, P)
    return a[0] * inverse * inverse % P, a[1] * pow(inverse, 3, P) % P


def multiply_add(k1: int, p1: Point, k2: int, p2: Point) -> Point:
    """k1·p1 + k2·p2 (Shamir's trick)."""
    a, b = _to_jacobian(p1), _to_jacobian(p2)
    both = _add(a, b)
    result = (0, 1, 0)
    for bit in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        result = _double(result)
        pick = ((k1 >> bit) & 1, (k2 >> bit) & 1)
        if pick == (1, 1):
            result = _add(result, both)
        elif pick == (1, 0):
            result = _add(result, a)
        elif pick == (0, 1):
            result = _add(result, b)
    return _affine(result)


def decode_public_key(data: bytes) -> Point:
    """A SEC1 public key (compressed or uncompressed) as a point on the curve; VerifyFailed otherwise."""
    if len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        if x >= P:
            raise VerifyFailed("public key x is not a field element")
        y = pow((x**3 + 7) % P, (P + 1) // 4, P)
        if y * y % P != (x**3 + 7) % P:
            raise VerifyFailed("public key is not on the curve")
        return (x, y if y % 2 == data[0] - 2 else P - y)
    if len(data) == 65 and data[0] == 4:
        x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
        if x >= P or y >= P or (y * y - x**3 - 7) % P:
            raise VerifyFailed("public key is not on the curve")
        return (x, y)
    raise VerifyFailed("public key is not a SEC1 encoding")


def schnorr_verify(public_key: bytes, message: bytes, signature: bytes) -> str | None:
    """None if the 64-byte signature is valid for the 32-byte message under the key, else why not (spec steps)."""
    try:
        point = decode_public_key(public_key)
    except VerifyFailed as exc:
        return str(exc)
    assert point is not None
    if len(signature) != 64 or len(message) != 32:
        return "a Schnorr signature is 64 bytes over a 32-byte message"
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if r >= P:
        return "r is not below the field size"
    if s >= N:
        return "s is not below the group order"
    compressed = bytes([2 + point[1] % 2]) + point[0].to_bytes(32, "big")
    e = int.from_bytes(hashlib.sha256(signature[:32] + compressed + message).digest(), "big") % N
    rebuilt = multiply_add(s, G, N - e, point)
    if rebuilt is None:
        return "R' is the point at infinity"
    if rebuilt[0] != r:
        return "R'.x does not equal r"
    if pow(rebuilt[1], (P - 1) // 2, P) != 1:
        return "the Jacobi symbol of R'.y is not 1"
    return None


# -- transactions and the replay-protected sighash ----------------------------------------------------


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    digest = hashlib.sha256(data).digest()
    try:
        return hashlib.new("ripemd160", digest).digest()
    except ValueError:  # an OpenSSL without RIPEMD-160
        from Crypto.Hash import RIPEMD160

        return RIPEMD160.new(digest).digest()


@dataclass
class TxIn:
    prev_hash: bytes  # wire order
    prev_index: int
    script_sig: bytes
    sequence: int

    @property
    def outpoint(self) -> tuple[str, int]:
        return self.prev_hash[::-1].hex(), self.prev_index


@dataclass
class TxOut:
    value: int
    script: bytes

    def wire(self) -> bytes:
        return self.value.to_bytes(8, "little") + compact_size(len(self.script)) + self.script


@dataclass
class BchTx:
    version: int
    vin: list[TxIn]
    vout: list[TxOut]
    lock_time: int
    raw: bytes

    @property
    def txid(self) -> str:
        return sha256d(self.raw)[::-1].hex()


def compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def parse_tx(raw: bytes) -> BchTx:
    """A BCH transaction from its wire bytes; VerifyFailed("TX decode failed") on anything malformed."""
    position = 0

    def read(size: int) -> bytes:
        nonlocal position
        if size < 0 or position + size > len(raw):
            raise VerifyFailed("TX decode failed")
        chunk = raw[position:position + size]
        position += size
        return chunk

    def read_size() -> int:
        first = read(1)[0]
        return first if first < 0xFD else int.from_bytes(read({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")

    version = int.from_bytes(read(4), "little")
    vin = []
    for _ in range(read_size()):
        prev_hash, prev_index = read(32), int.from_bytes(read(4), "little")
        vin.append(TxIn(prev_hash, prev_index, read(read_size()), int.from_bytes(read(4), "little")))
    vout = [TxOut(int.from_bytes(read(8), "little"), read(read_size())) for _ in range(read_size())]
    lock_time = int.from_bytes(read(4), "little")
    if position != len(raw):
        raise VerifyFailed("TX decode failed: trailing bytes")
    return BchTx(version, vin, vout, lock_time, raw)


SIGHASH_ALL, SIGHASH_FORKID = 0x01, 0x40


def forkid_sighash(tx: BchTx, index: int, script_code: bytes, value: int, hash_type: int) -> bytes:
    """The replay-protected digest of input `index` for SIGHASH_ALL|FORKID (fork id 0)."""
    if hash_type != SIGHASH_ALL | SIGHASH_FORKID:
        raise VerifyFailed(f"input {index}: the sandbox verifies SIGHASH_ALL|FORKID (0x41) only, not {hash_type:#x}")
    prevouts = b"".join(i.prev_hash + i.prev_index.to_bytes(4, "little") for i in tx.vin)
    sequences = b"".join(i.sequence.to_bytes(4, "little") for i in tx.vin)
    outputs = b"".join(o.wire() for o in tx.vout)
    spent = tx.vin[index]
    preimage = (tx.version.to_bytes(4, "little") + sha256d(prevouts) + sha256d(sequences)
                + spent.prev_hash + spent.prev_index.to_bytes(4, "little")
                + compact_size(len(script_code)) + script_code + value.to_bytes(8, "little")
                + spent.sequence.to_bytes(4, "little") + sha256d(outputs) + tx.lock_time.to_bytes(4, "little")
                + hash_type.to_bytes(4, "little"))
    return sha256d(preimage)


def _pushes(script: bytes) -> list[bytes]:
    """The data of a push-only script; VerifyFailed for any other opcode."""
    items, position = [], 0
    while position < len(script):
        op = script[position]
        position += 1
        if 1 <= op <= 75:
            size = op
        elif op == 0x4C and position < len(script):
            size, position = script[position], position + 1
        elif op == 0x4D and position + 2 <= len(script):
            size, position = int.from_bytes(script[position:position + 2], "little"), position + 2
        else:
            raise VerifyFailed("scriptSig is not push-only")
        if position + size > len(script):
            raise VerifyFailed("scriptSig push past its end")
        items.append(script[position:position + size])
        position += size
    return items


@dataclass(frozen=True)
class Utxo:
    script: bytes
    value: int


def verify_bch(tx_hex: str, utxos: dict[tuple[str, int], Utxo]) -> BchTx:
    """Every input a P2PKH spend whose Schnorr signature verifies over its true amount; outputs within inputs."""
    try:
        raw = bytes.fromhex(tx_hex)
    except ValueError:
        raise VerifyFailed("TX decode failed: not hex") from None
    tx = parse_tx(raw)
    if not tx.vin or not tx.vout:
        raise VerifyFailed("bad-txns-vin-empty or bad-txns-vout-empty")
    spent = 0
    for index, txin in enumerate(tx.vin):
        utxo = utxos.get(txin.outpoint)
        if utxo is None:
            raise VerifyFailed(f"bad-txns-inputs-missingorspent: input {index} spends {txin.outpoint[0]}:"
                               f"{txin.outpoint[1]}")
        spent += utxo.value
        script = utxo.script
        if not (len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac"):
            raise VerifyFailed(f"input {index}: the sandbox verifies P2PKH spends only")
        items = _pushes(txin.script_sig)
        if len(items) != 2:
            raise VerifyFailed(f"mandatory-script-verify-flag-failed: input {index}: scriptSig is not <sig> <pubkey>")
        signature, public_key = items
        if hash160(public_key) != script[3:23]:
            raise VerifyFailed(f"mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation): "
                               f"input {index}: the public key does not hash to the output's")
        if len(signature) != 65:
            raise VerifyFailed(f"input {index}: not a 65-byte Schnorr signature (the sandbox verifies Schnorr only)")
        digest = forkid_sighash(tx, index, script, utxo.value, signature[64])
        reason = schnorr_verify(public_key, digest, signature[:64])
        if reason:
            raise VerifyFailed(f"mandatory-script-verify-flag-failed (Signature must be zero for failed "
                               f"CHECK(MULTI)SIG operation): input {index}: {reason}")
    if sum(o.value for o in tx.vout) > spent:
        raise VerifyFailed("bad-txns-in-belowout: outputs exceed inputs")
    return tx


# -- CashAddr ----------------------------------------------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _cashaddr_polymod(values: list[int]) -> int:
    c = 1
    for d in values:
        c0 = c >> 35
        c = ((c & 0x07FFFFFFFF) << 5) ^ d
        for bit, generator in enumerate((0x98F2BC8E61, 0x79B76D99E2, 0xF33E5FB3C4, 0xAE2EABE2A8, 0x1E4F43E470)):
            if c0 & (1 << bit):
                c ^= generator
    return c ^ 1


def script_of_cashaddr(address: str, prefix: str) -> bytes:
    """The output script of a CashAddr address with `prefix` (the prefix itself may be omitted)."""
    text = address.lower()
    if ":" in text:
        given, _, text = text.partition(":")
        if given != prefix:
            raise VerifyFailed(f"{address} is not a {prefix}: address")
    try:
        values = [_CHARSET.index(c) for c in text]
    except ValueError:
        raise VerifyFailed(f"{address} is not a CashAddr address") from None
    if _cashaddr_polymod([ord(c) & 0x1F for c in prefix] + [0] + values) != 0 or len(values) != 42:
        raise VerifyFailed(f"{address} has a bad CashAddr checksum or length")
    accumulator, bits, data = 0, 0, bytearray()
    for value in values[:-8]:
        accumulator, bits = (accumulator << 5) | value, bits + 5
        if bits >= 8:
            bits -= 8
            data.append((accumulator >> bits) & 0xFF)
    kind, digest = data[0] >> 3, bytes(data[1:21])
    if kind == 0:
        return b"\x76\xa9\x14" + digest + b"\x88\xac"
    if kind == 1:
        return b"\xa9\x14" + digest + b"\x87"
    raise VerifyFailed(f"{address} is of an unknown CashAddr type")


# -- the ledger ------------------------------------------------------------------------------------


class BitcoinCashLedger(Ledger):
    """BCH: every input's fork-id Schnorr signature verified against the output it spends."""

    chains = ("BCH",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self.prefix = "bchtest" if testnet else "bitcoincash"
        self._lock = threading.Lock()
        self._utxos: dict[tuple[str, int], Utxo] = {}
        self._spent: set[tuple[str, int]] = set()

    def routes(self) -> list[Route]:
        return [Route("POST", r"/sandbox/bch/utxo", self._fund, needs_key=False)]

    def fund(self, address: str, value: int) -> tuple[str, int]:
        """A new output of `value` satoshis paying `address`; its (txid, index)."""
        try:
            script = script_of_cashaddr(address, self.prefix)
        except VerifyFailed as exc:
            raise Rejected(400, "validation.failed", str(exc)) from None
        outpoint = (os.urandom(32).hex(), 0)
        with self._lock:
            self._utxos[outpoint] = Utxo(script, value)
        return outpoint

    def _fund(self, payload: Any, headers: Headers) -> Reply:
        address = payload.get("address") if isinstance(payload, dict) else None
        value = payload.get("satoshis") if isinstance(payload, dict) else None
        if not isinstance(address, str) or isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise Rejected(400, "validation.failed", "Body must be {\"address\": <cashaddr>, \"satoshis\": n > 0}.")
        txid, index = self.fund(address, value)
        return Reply(200, {"txId": txid, "index": index})

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        with self._lock:
            unspent = {k: v for k, v in self._utxos.items() if k not in self._spent}
            try:
                tx = verify_bch(tx_data, unspent)
            except VerifyFailed as exc:
                raise Rejected(400, "bch.broadcast.failed", str(exc)) from None
            self._spent.update(i.outpoint for i in tx.vin)
            for n, out in enumerate(tx.vout):
                self._utxos[(tx.txid, n)] = Utxo(out.script, out.value)
            return tx.txid

    def sample(self, chain: str, address: str, amount: int) -> str:
        """`hex:amounts` spending a new output of `amount` + 1,000 sat paid to `address`, back to it."""
        txid, index = self.fund(address, amount + 1000)
        script = script_of_cashaddr(address, self.prefix)
        unsigned = (b"\x02\x00\x00\x00\x01" + bytes.fromhex(txid)[::-1] + index.to_bytes(4, "little") + b"\x00"
                    + b"\xff\xff\xff\xff\x01" + TxOut(amount, script).wire() + b"\x00\x00\x00\x00")
        return f"{unsigned.hex()}:[{amount + 1000}]"
