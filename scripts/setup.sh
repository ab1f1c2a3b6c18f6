#!/usr/bin/env bash
# Install everything tatum-kms needs on a fresh Debian/Ubuntu machine: SoftHSM2 and OpenSSL from
# apt, a virtualenv in .venv with the package and its extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-test}

need_apt=()
command -v softhsm2-util >/dev/null 2>&1 || need_apt+=(softhsm2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[${extras}]"
# Bytecode now, as a wheel install would: without it (or under PYTHONDONTWRITEBYTECODE) every command
# compiles the package's modules again, ~20 ms of each start.
.venv/bin/python -m compileall -q kms chains hsm >/dev/null
