#!/usr/bin/env bash
# Create a SoftHSM2 token in DIR and print the softhsm2.conf path to export as SOFTHSM2_CONF.
# Usage: make-token.sh DIR [LABEL] ; the user PIN is read from TATUM_KMS_PKCS11_PIN
# (default 1234 for a throwaway test token) and the SO PIN from SOFTHSM_SO_PIN.
set -euo pipefail
dir=${1:?usage: make-token.sh DIR [LABEL]}
label=${2:-tatum-kms}
pin=${TATUM_KMS_PKCS11_PIN:-1234}
so_pin=${SOFTHSM_SO_PIN:-$pin$pin}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/tokens"
chmod 700 "$dir"
sed "s#@TOKENDIR@#$dir/tokens#" "$here/softhsm2.conf.in" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"
if ! softhsm2-util --show-slots 2>/dev/null | grep -Eq "Label:[[:space:]]+$label[[:space:]]*$"; then
  softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null
fi
echo "$dir/softhsm2.conf"
