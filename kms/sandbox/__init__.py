"""`tatum-kms sandbox`: a local Tatum-compatible API on 127.0.0.1, for tests and for watching the daemon work.

Point the daemon at it with `TATUM_API_URL=<printed URL>`; any non-empty API key is accepted (and
never logged). Served as Tatum does:

  POST /v3/kms/pending/{chain}          queued pending txs naming one of the posted signatureIds
  POST /v3/tatum/kms/batch              records the daemon's error reports
  POST /v3/bitcoin/broadcast            verified by python-bitcoinlib against the recorded prevouts
  POST /v3/ethereum/broadcast           executed on an in-process EVM (eth-tester / py-evm)
  POST /v3/xlm/broadcast                every signature checked by stellar-sdk (testnet passphrase)
  POST /v3/xrp/broadcast                the blob decoded and its signature verified by xrpl-py
  POST /v3/tron/broadcast               raw_data_hex parsed by the protobuf runtime, the signer recovered
  POST /v3/offchain/withdrawal/broadcast  the same checks, chosen by `currency`
  POST /v3/ethereum/web3/{apiKey}       JSON-RPC: eth_chainId, eth_estimateGas, eth_getTransactionCount,
                                        eth_gasPrice, eth_getBalance, eth_sendRawTransaction, eth_call, ...
  GET  /v3/ethereum/transaction/count/{address}    next nonce
  GET  /v3/blockchain/fee/ETH           {"slow","medium","fast"} gas prices in wei (strings)
  GET  /v3/kms/{id}                     one pending transaction (with txId once broadcast)

A broadcast whose `signatureId` names a queued transaction completes it: it is no longer pending.
A rejected broadcast gets a 400 whose `message` is the verifier's or the EVM's reason.

Admin API (no key needed):

  GET  /sandbox                          chain id, Stellar passphrase, this text
  POST /sandbox/pending                  enqueue a PendingTransaction JSON; `id` (24 hex) made if absent;
                                         for BTC the inputs' output.script/satoshis become known prevouts
  GET  /sandbox/pending                  every queued transaction, completed ones with their txId
  POST /sandbox/eth/fund                 {"address", "wei"}: pay from the chain's pre-funded account
  GET  /sandbox/eth/balance/{address}    {"address", "wei"}
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


def main(argv: list[str] | None = None) -> int:
    """Run `tatum-kms sandbox` until SIGTERM/SIGINT; see `kms.sandbox.server.main`."""
    try:
        from kms.sandbox.server import main as _main
    except ImportError as exc:
        from kms.errors import ConfigError

        raise ConfigError(f"tatum-kms sandbox needs its extra: pip install 'tatum-kms[sandbox]' "
                          f"(missing module {exc.name}).") from None
    return _main(argv)
