"""`tatum-kms sandbox`: a local Tatum-compatible API on 127.0.0.1, for tests and for watching the daemon work.

Point the daemon at it with `TATUM_API_URL=<printed URL>`; any non-empty API key is accepted (and
never logged). Served as Tatum does:

  POST /v3/kms/pending/{chain}          queued pending txs naming one of the posted signatureIds
  POST /v3/tatum/kms/batch              records the daemon's error reports
  GET  /v3/kms/{id}                     one pending transaction (with txId once broadcast)
  POST <each chain's broadcast path>    checked by the ledger serving the chain (kms/sandbox/ledgers/):
                                        executed on an engine or verified by an independent verifier
  POST /v3/offchain/withdrawal/broadcast  the same checks, chosen by `currency`
  GET|POST <each chain's node proxy>    answered by its ledger (JSON-RPC, gateways), the API key in the path
  GET|POST /node/{CHAIN}/{name}/...     a chain's own-host endpoint `name`; point the daemon at it with
                                        TATUM_KMS_{CHAIN}_{NAME}_URL=<sandbox URL>/node/{CHAIN}/{name}
  ... and the Tatum helper paths each ledger's signers call (nonce counts, fees, accounts)

A broadcast whose `signatureId` names a queued transaction completes it: it is no longer pending.
A rejected broadcast gets a 400 whose `message` is the verifier's or the EVM's reason.

Admin API (no key needed):

  GET  /sandbox                          the chains served, each ledger's facts (chain ids, passphrase), this text
  POST /sandbox/pending                  enqueue a PendingTransaction JSON; `id` (24 hex) made if absent;
                                         for BTC, LTC, DOGE the inputs' output.script/satoshis become
                                         known prevouts
  POST /sandbox/bch/utxo                 {"address", "satoshis"}: a new BCH output to spend; {"txId", "index"}
  GET  /sandbox/pending                  every queued transaction, completed ones with their txId
  POST /sandbox/{chain}/fund             {"address", "wei"}: pay from an EVM chain's pre-funded account
  GET  /sandbox/{chain}/balance/{address}  {"address", "wei"}
  POST /sandbox/{chain}/token            deploy a minimal ERC-20 (owner: the pre-funded account);
                                         {"to", "amount"}: mint to `to` as well; returns {"address"}
  POST /sandbox/{chain}/token/{token}/mint  {"to", "amount"}
  GET  /sandbox/{chain}/token/{token}/balance/{holder}  {"balance"} by eth_call balanceOf
  POST /sandbox/sol/airdrop              {"address", "lamports"}: credit lamports on the Solana node
  GET  /sandbox/sol/balance/{address}    {"address", "lamports"}
  GET  /sandbox/sol/token-balance/{account}  {"account", "amount"} of an SPL token account
  GET  /sandbox/broadcasts               accepted broadcasts, in order
  GET  /sandbox/errors                   error reports received on /v3/tatum/kms/batch
  POST /sandbox/fail                     {"path", "status"?, "times"?=1, "delay"?=0}: the next `times`
                                         requests to `path` wait `delay` s, then fail with `status`
                                         (or, without `status`, are served normally)
  POST /sandbox/latest-version           {"header": "9.0.0;WARN;text"}: sent as x-ttm-kms-latest-version
  GET  /sandbox/requests                 request counts per path (API keys redacted), last client version
  POST /sandbox/approvals                {"id"}: approve a pending transaction (the operator's second pair of eyes)
  GET|POST /sandbox/approve/{id}         a four-eye approval server for demos (--externalUrl <URL>/sandbox/approve):
                                         200 for approved ids, 403 for every other
"""

from __future__ import annotations

from typing import Any


def serve(*args: Any, **kwargs: Any) -> Any:
    """Start a sandbox in a background thread; see `kms.sandbox.server.serve`."""
    from kms.sandbox.server import serve as _serve

    return _serve(*args, **kwargs)


def main(**options: Any) -> int:
    """Run `tatum-kms sandbox` until SIGTERM/SIGINT; see `kms.sandbox.server.run`."""
    try:
        from kms.sandbox.server import run
    except ImportError as exc:
        from kms.errors import ConfigError

        raise ConfigError(f"tatum-kms sandbox needs its extra: pip install 'tatum-kms[sandbox]' "
                          f"(missing module {exc.name}).") from None
    return run(**options)
