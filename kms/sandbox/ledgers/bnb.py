"""The sandbox's BNB Beacon Chain: Tatum's account endpoint, the node's `node-info`, and transfers decoded from their
amino bytes, their signature checked over a sign document rebuilt from what was decoded, then executed on balances.

Nothing here is shared with the signer: the amino reader is a schema-driven protobuf-wire decoder written for
StdTx/MsgSend, addresses are bech32-encoded by bip-utils, and signatures are verified by OpenSSL (cryptography),
where the signer uses libsecp256k1.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from kms.sandbox.ledgers import Ledger, VerifyFailed
from kms.sandbox.replies import Headers, Rejected, Reply, Route

STD_TX = bytes.fromhex("F0625DEE")
MSG_SEND = bytes.fromhex("2A2C87FA")
SECP256K1_PUBKEY = bytes.fromhex("EB5AE987")
SECP256K1_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
#: A transfer's fee (BNB Beacon Chain charged 0.000375 BNB per transfer), in 10^-8 BNB.
TRANSFER_FEE = 37_500


@dataclass(frozen=True)
class Coin:
    denom: str
    amount: int


@dataclass(frozen=True)
class Entry:
    """An input or output of a MsgSend."""

    address: bytes
    coins: tuple[Coin, ...]


@dataclass(frozen=True)
class DecodedTx:
    inputs: tuple[Entry, ...]
    outputs: tuple[Entry, ...]
    public_key: bytes
    signature: bytes
    account_number: int
    sequence: int
    memo: str
    source: int


class _Reader:
    """Protobuf wire format (what amino binary is): varints and length-delimited fields."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise VerifyFailed(f"{self.what}: truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    def chunk(self) -> bytes:
        size = self.varint()
        if self.pos + size > len(self.data):
            raise VerifyFailed(f"{self.what}: a field runs past the end")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def fields(self) -> list[tuple[int, int | bytes]]:
        out: list[tuple[int, int | bytes]] = []
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                out.append((number, self.varint()))
            elif wire == 2:
                out.append((number, self.chunk()))
            else:
                raise VerifyFailed(f"{self.what}: unexpected wire type {wire} in field {number}")
        return out


def _fields(data: bytes, what: str, schema: dict[int, type]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    for number, value in _Reader(data, what).fields():
        if number not in schema or not isinstance(value, schema[number]):
            raise VerifyFailed(f"{what}: unexpected field {number}")
        found[number].append(value)
    return found


def _one(found: dict[int, list[Any]], number: int, default: Any, what: str) -> Any:
    values = found.get(number, [])
    if len(values) > 1:
        raise VerifyFailed(f"{what}: field {number} repeated")
    return values[0] if values else default


def _entry(data: bytes) -> Entry:
    found = _fields(data, "input/output", {1: bytes, 2: bytes})
    address = _one(found, 1, b"", "input/output")
    if len(address) != 20:
        raise VerifyFailed("an input or output address is not 20 bytes")
    coins = []
    for raw in found.get(2, []):
        coin = _fields(raw, "coin", {1: bytes, 2: int})
        coins.append(Coin(_one(coin, 1, b"", "coin").decode("utf-8", "strict"), _one(coin, 2, 0, "coin")))
    if not coins:
        raise VerifyFailed("an input or output has no coins")
    return Entry(address, tuple(coins))


def decode_transfer(tx_hex: str) -> DecodedTx:
    """Decode a length-prefixed amino StdTx holding one MsgSend and one signature."""
    try:
        raw = bytes.fromhex(tx_hex)
    except ValueError:
        raise VerifyFailed("the transaction is not hex") from None
    outer = _Reader(raw, "StdTx")
    body = outer.chunk()
    if outer.pos != len(raw):
        raise VerifyFailed("StdTx: bytes after the length-prefixed transaction")
    if body[:4] != STD_TX:
        raise VerifyFailed("not an amino StdTx (wrong prefix)")
    top = _fields(body[4:], "StdTx", {1: bytes, 2: bytes, 3: bytes, 4: int, 5: bytes})
    messages, signatures = top.get(1, []), top.get(2, [])
    if len(messages) != 1 or len(signatures) != 1:
        raise VerifyFailed("expected one message and one signature")
    if messages[0][:4] != MSG_SEND:
        raise VerifyFailed("the message is not a MsgSend")
    send = _fields(messages[0][4:], "MsgSend", {1: bytes, 2: bytes})
    signature = _fields(signatures[0], "StdSignature", {1: bytes, 2: bytes, 3: int, 4: int})
    pub_key = _one(signature, 1, b"", "StdSignature")
    if pub_key[:4] != SECP256K1_PUBKEY or pub_key[4:5] != b"\x21" or len(pub_key) != 38:
        raise VerifyFailed("the signature's public key is not an amino secp256k1 key")
    try:
        memo = _one(top, 3, b"", "StdTx").decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise VerifyFailed("the memo is not UTF-8") from None
    if _one(top, 5, b"", "StdTx"):
        raise VerifyFailed("StdTx data must be empty")
    return DecodedTx(tuple(_entry(e) for e in send.get(1, [])), tuple(_entry(e) for e in send.get(2, [])),
                     pub_key[5:], _one(signature, 2, b"", "StdSignature"), _one(signature, 3, 0, "StdSignature"),
                     _one(signature, 4, 0, "StdSignature"), memo, _one(top, 4, 0, "StdTx"))


def bech32_address(raw: bytes, testnet: bool) -> str:
    from bip_utils import Bech32Encoder

    return Bech32Encoder.Encode("tbnb" if testnet else "bnb", raw)


def sign_documents(tx: DecodedTx, chain_id: str, testnet: bool) -> list[bytes]:
    """The StdSignDoc of a decoded transfer, keys sorted: amounts as JSON numbers (javascript-sdk 4, what the
    original signs) and as strings (the form of the SDK's public transfer fixture)."""
    def side(entries: tuple[Entry, ...], as_text: bool) -> list[dict[str, Any]]:
        return [{"address": bech32_address(e.address, testnet),
                 "coins": [{"amount": str(c.amount) if as_text else c.amount, "denom": c.denom} for c in e.coins]}
                for e in entries]

    documents = []
    for as_text in (False, True):
        doc = {"account_number": str(tx.account_number), "chain_id": chain_id, "data": None, "memo": tx.memo,
               "msgs": [{"inputs": side(tx.inputs, as_text), "outputs": side(tx.outputs, as_text)}],
               "sequence": str(tx.sequence), "source": str(tx.source)}
        documents.append(json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return documents


def verify_signature(tx: DecodedTx, chain_id: str, testnet: bool) -> None:
    """The 64-byte r‖s signature, low-s, by the transaction's public key over its sign document."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if len(tx.signature) != 64:
        raise VerifyFailed("the signature is not 64 bytes")
    r, s = int.from_bytes(tx.signature[:32], "big"), int.from_bytes(tx.signature[32:], "big")
    if s > SECP256K1_HALF_ORDER:
        raise VerifyFailed("the signature is not in low-s form")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), tx.public_key)
    except ValueError:
        raise VerifyFailed("the public key is not a secp256k1 point") from None
    for document in sign_documents(tx, chain_id, testnet):
        try:
            key.verify(encode_dss_signature(r, s), document, ec.ECDSA(hashes.SHA256()))
            return
        except InvalidSignature:
            continue
    raise VerifyFailed("signature verification failed: it is not over this transfer's sign document")


class BnbLedger(Ledger):
    """BNB: accounts (number, sequence, balances) created by funding; transfers verified, then executed."""

    chains = ("BNB",)

    def __init__(self, *, execute: bool, testnet: bool) -> None:
        super().__init__(execute=execute, testnet=testnet)
        self.chain_id = "Binance-Chain-Ganges" if testnet else "Binance-Chain-Tigris"
        self._lock = threading.Lock()
        self._accounts: dict[str, dict[str, Any]] = {}

    def _account(self, address: str) -> dict[str, Any]:
        if address not in self._accounts:
            self._accounts[address] = {"account_number": len(self._accounts) + 1, "sequence": 0,
                                       "balances": defaultdict(int)}
        return self._accounts[address]

    def _account_reply(self, address: str) -> Reply:
        with self._lock:
            account = self._accounts.get(address)
            if account is None:
                raise Rejected(404, "bnb.account.not.found", f"account {address} not found")
            return Reply(200, {"address": address, "account_number": account["account_number"],
                               "sequence": account["sequence"],
                               "balances": [{"symbol": d, "free": str(a)} for d, a in account["balances"].items()]})

    # -- Tatum's endpoint and the node's --------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("GET", r"/v3/bnb/account/([0-9a-z]+)", lambda p, h, a: self._account_reply(a)),
                Route("POST", r"/sandbox/bnb/fund", self._fund, needs_key=False),
                Route("GET", r"/sandbox/bnb/balance/([0-9a-z]+)", self._balance, needs_key=False)]

    def node(self, chain: str, endpoint: str, method: str, subpath: str, payload: Any, headers: Headers) -> Reply:
        if endpoint == "node" and method == "GET" and subpath == "/api/v1/node-info":
            return Reply(200, {"node_info": {"network": self.chain_id, "moniker": "tatum-kms-sandbox"}})
        if endpoint == "node" and method == "GET" and subpath.startswith("/api/v1/account/"):
            return self._account_reply(subpath.rsplit("/", 1)[1])
        return super().node(chain, endpoint, method, subpath, payload, headers)

    def submit(self, chain: str, tx_data: str, body: dict[str, Any]) -> str:
        from bip_utils import Hash160

        try:
            tx = decode_transfer(tx_data)
            verify_signature(tx, self.chain_id, self.testnet)
            signer = Hash160.QuickDigest(tx.public_key)
            if [e.address for e in tx.inputs] != [signer]:
                raise VerifyFailed("the one input must be the signer's address")
            totals: dict[str, int] = defaultdict(int)
            for entry in tx.inputs:
                for coin in entry.coins:
                    totals[coin.denom] += coin.amount
            for entry in tx.outputs:
                for coin in entry.coins:
                    totals[coin.denom] -= coin.amount
            if any(totals.values()):
                raise VerifyFailed("inputs and outputs do not balance")
            sender = bech32_address(signer, self.testnet)
            with self._lock:
                account = self._accounts.get(sender)
                if account is None:
                    raise VerifyFailed(f"account {sender} does not exist")
                if (tx.account_number, tx.sequence) != (account["account_number"], account["sequence"]):
                    raise VerifyFailed(f"invalid account number or sequence: expected {account['account_number']}/"
                                       f"{account['sequence']}, got {tx.account_number}/{tx.sequence}")
                if self.execute:
                    needs = {c.denom: c.amount for c in tx.inputs[0].coins}
                    needs["BNB"] = needs.get("BNB", 0) + TRANSFER_FEE
                    short = [d for d, a in needs.items() if account["balances"][d] < a]
                    if short:
                        raise VerifyFailed(f"insufficient funds: {sender} has too little {short[0]}")
                    for denom, amount in needs.items():
                        account["balances"][denom] -= amount
                    for entry in tx.outputs:
                        receiver = self._account(bech32_address(entry.address, self.testnet))
                        for coin in entry.coins:
                            receiver["balances"][coin.denom] += coin.amount
                account["sequence"] += 1
        except VerifyFailed as exc:
            raise Rejected(400, "bnb.broadcast.failed", str(exc)) from None
        return hashlib.sha256(bytes.fromhex(tx_data)).hexdigest().upper()

    # -- admin and samples ------------------------------------------------------------------------

    def fund(self, address: str, amount: int, denom: str = "BNB") -> None:
        """Credit `amount` (10^-8) of `denom` to `address`, creating its account."""
        from bip_utils import Bech32Decoder

        try:
            Bech32Decoder.Decode("tbnb" if self.testnet else "bnb", address)
        except Exception:
            raise Rejected(400, "validation.failed", f"{address[:60]!r} is not an address of this network") from None
        with self._lock:
            self._account(address)["balances"][denom] += amount

    def _fund(self, payload: Any, headers: Headers) -> Reply:
        amount = payload.get("amount") if isinstance(payload, dict) else None
        if not isinstance(amount, str | int) or isinstance(amount, bool) or not str(amount).isdigit():
            raise Rejected(400, "validation.failed", "Body must be {\"address\", \"amount\": \"<10^-8 BNB>\"}.")
        self.fund(str(payload.get("address")), int(amount), str(payload.get("denom") or "BNB"))
        return self._balance(None, headers, payload["address"])

    def _balance(self, payload: Any, headers: Headers, address: str) -> Reply:
        with self._lock:
            account = self._accounts.get(address)
            balances = dict(account["balances"]) if account else {}
        return Reply(200, {"address": address, "balances": {d: str(a) for d, a in balances.items()}})

    def describe(self) -> dict[str, Any]:
        return {"bnbChainId": self.chain_id}

    def sample(self, chain: str, address: str, amount: int) -> str:
        """Tatum's BNB payload for a transfer of `amount` (10^-8 BNB) from `address` (funded) to a fresh address."""
        import os

        from bip_utils import Bech32Decoder

        self.fund(address, amount + TRANSFER_FEE)
        sender = list(Bech32Decoder.Decode("tbnb" if self.testnet else "bnb", address))
        receiver_raw = os.urandom(20)
        receiver = bech32_address(receiver_raw, self.testnet)
        coins = [{"denom": "BNB", "amount": amount}]
        return json.dumps({
            "msg": {"inputs": [{"address": {"type": "Buffer", "data": sender}, "coins": coins}],
                    "outputs": [{"address": {"type": "Buffer", "data": list(receiver_raw)}, "coins": coins}],
                    "aminoPrefix": "2A2C87FA"},
            "signMsg": {"inputs": [{"address": address, "coins": coins}],
                        "outputs": [{"address": receiver, "coins": coins}]},
            "memo": "sandbox sample",
        })
