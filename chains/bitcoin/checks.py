"""bitcore's serialization checks (`Transaction.serialize()` without `unsafe`): what the original runs before
it hands out a DOGE transaction, with the same limits and the same messages.

bitcore-lib-doge 10.0.0 `getSerializationError`: output amounts, input sum against output sum, the fee
against the payload's `fee` and against a size estimate, then dust outputs. The estimate is bitcore's:
26 bytes, plus 36 and the input type's maximal script per input, plus the script and 9 bytes per output,
at `fee_per_kb`; with a change script and room for one, 62 more bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chains.base import ChainError
from chains.bitcoin.tx import P2PK, Transaction, classify

#: What checkedSerialize appends to every message.
MORE = " - For more information please see: https://bitcore.io/api/lib/transaction#serialization-checks"

_MAX_SAFE_INTEGER = 2**53 - 1
_EXTRA_SIZE = 4 + 9 + 9 + 4
_CHANGE_OUTPUT_MAX_SIZE = 20 + 4 + 34 + 4
_P2PKH_SCRIPT_MAX = 73 + 34  # signature (1 + 72) and public key (1 + 33)
_P2PK_SCRIPT_MAX = 73
_OP_RETURN = 0x6A


@dataclass(frozen=True)
class SerializationChecks:
    """The limits of one chain's bitcore build."""

    dust_amount: int
    fee_per_kb: int
    fee_security_margin: int = 15

    def check(self, tx: Transaction) -> None:
        """Raise ChainError with the original's message if bitcore's checked serialization would refuse `tx`."""
        error = self.error(tx)
        if error:
            raise ChainError(error + MORE)

    def error(self, tx: Transaction) -> str | None:
        """The first of bitcore's serialization errors for `tx`, or None."""
        if any(o.satoshis > _MAX_SAFE_INTEGER for o in tx.outputs):
            return "Output satoshis are invalid"
        if any(i.satoshis is None for i in tx.inputs):
            return "No previous output information."
        unspent = sum(i.satoshis or 0 for i in tx.inputs) - sum(o.satoshis for o in tx.outputs)
        if unspent < 0:  # bitcore's own message here is "undefined"
            return f"Output amount sum is greater than input amount by {-unspent}"
        error = self._fee_error(tx, unspent)
        if error:
            return error
        if any(o.satoshis < self.dust_amount and not _is_data_out(o.script) for o in tx.outputs):
            return "Dust amount detected in one output"
        return None

    def _fee_error(self, tx: Transaction, unspent: int) -> str | None:
        if tx.fee is not None and tx.fee != unspent:
            return ("Unspent value is different from specified fee: "
                    f"Unspent value is {unspent} but specified fee is {tx.fee}")
        estimate = self.estimate_fee(tx, unspent)
        maximum = math.floor(self.fee_security_margin * estimate)
        if unspent > maximum:
            if not tx.change_script:
                return "Change address is missing"  # bitcore drops its detail here
            return f"Fee is too large: expected less than {maximum} but got {unspent}"
        minimum = math.ceil(estimate / self.fee_security_margin)
        if unspent < minimum:
            return f"Fee is too small: expected more than {minimum} but got {unspent}"
        return None

    def estimate_fee(self, tx: Transaction, available: int) -> int:
        """bitcore's `_estimateFee`: the estimated size at `fee_per_kb`, with room for change where it fits."""
        size = _EXTRA_SIZE
        for tx_input in tx.inputs:
            kind = classify(tx_input.prev_script)
            size += 36 + (_P2PK_SCRIPT_MAX if kind and kind[0] == P2PK else _P2PKH_SCRIPT_MAX)
        size += sum(len(o.script) + 9 for o in tx.outputs)
        rate = self.fee_per_kb / 1000
        fee = math.ceil(size * rate)
        with_change = math.ceil(size * rate + _CHANGE_OUTPUT_MAX_SIZE * rate)
        if not tx.change_script or available <= with_change:
            return fee
        return with_change


def _is_data_out(script: bytes) -> bool:
    """bitcore's `isDataOut`: OP_RETURN alone, or OP_RETURN and one push of at most 80 bytes."""
    if not script or script[0] != _OP_RETURN:
        return False
    rest = script[1:]
    if not rest:
        return True
    op = rest[0]
    if 1 <= op <= 75:
        size, start = op, 1
    elif op == 0x4C and len(rest) >= 2:
        size, start = rest[1], 2
    elif op == 0x4D and len(rest) >= 3:
        size, start = int.from_bytes(rest[1:3], "little"), 3
    else:
        return False
    return len(rest) == start + size and size <= 80
