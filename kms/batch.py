"""`generatemanagedprivatekeybatch`: many keys, stored in chunked transactions, printed once committed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from kms.store import WalletStore, new_signature_id

if TYPE_CHECKING:
    from chains.base import Chain

CHUNK = 1000


def generate_batch(store: WalletStore, chain: Chain, testnet: bool, count: int, out: TextIO, err: TextIO) -> None:
    """Store `count` fresh keys; print `{"signatureId","address"}` per key only after its chunk is committed.

    A process killed mid-batch therefore never printed an id the store does not hold.
    Time and memory grow linearly: each chunk is one transaction of at most CHUNK rows.
    """
    show_progress = err.isatty()
    done = 0
    while done < count:
        size = min(CHUNK, count - done)
        rows = []
        for _ in range(size):
            private_key, address = chain.generate_private_key(testnet)
            rows.append((new_signature_id(), chain.code, testnet, {"privateKey": private_key, "address": address}))
        store.put_many(rows)
        out.write("".join(
            json.dumps({"signatureId": row[0], "address": row[3]["address"]}, separators=(",", ":")) + "\n"
            for row in rows
        ))
        out.flush()
        done += size
        if show_progress:
            filled = done * 30 // count
            err.write(f"\r[{'#' * filled}{' ' * (30 - filled)}] {done}/{count}")
            err.flush()
    if show_progress:
        err.write("\n")
