#!/usr/bin/env bash
# Install everything, then run tatum-kms on its embedded default: a local store bound to a SoftHSM2
# token, and the local sandbox Tatum API. Shows a wallet, a pending transfer, the four-eye approval,
# the signature and the executed transfer, offline. Demo material lives in ./.demo (recreated each run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh sandbox
exec .venv/bin/python scripts/demo.py "$@"
