#!/usr/bin/env bash
# Build the Dockerfile without a Docker daemon (buildah, chroot isolation) on a Debian base made here
# with debootstrap, then run inside the image: `tatum-kms --help`, a stored wallet, and the sandbox demo
# flow, as the non-root user `kms`. Called by .ci/run; needs root (or sudo) and Debian's package mirror.
#
#   bash scripts/docker-image.sh                 # base (cached as an image) + build + checks
#   TATUM_KMS_REBUILD_BASE=1 bash scripts/docker-image.sh
#   bash scripts/docker-image.sh --checks-only   # the checks on the image already built
#
# Environment: TATUM_KMS_IMAGE (default localhost/tatum-kms:ci), TATUM_KMS_BASE_IMAGE (default
# localhost/tatum-kms-base:bookworm), DEBIAN_MIRROR (default: the first Debian URI in apt's sources).
# A CA bundle named by PIP_CERT or SSL_CERT_FILE (a proxy with its own CA) is mounted into the build
# at /etc/ssl/certs/ca-certificates.crt for the RUN steps only: it is in no layer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
image=${TATUM_KMS_IMAGE:-localhost/tatum-kms:ci}
base_image=${TATUM_KMS_BASE_IMAGE:-localhost/tatum-kms-base:bookworm}
isolation=(--isolation chroot)

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'docker-image: %s\n' "$*" >&2; exit 1; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  say "Installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" </dev/null >/dev/null
fi
buildah() { $sudo env buildah "$@"; }

# -- the base: a minimal Debian with python3 and venv, as an image --------------------------------------
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+/debian/?' \
             /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^[:space:]]+' | head -1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
if [ -n "${TATUM_KMS_REBUILD_BASE:-}" ] || ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
  say "Base image $base_image: debootstrap bookworm (minbase, python3, python3-venv) from $mirror"
  start=$SECONDS
  rootfs=$(mktemp -d /var/tmp/tatum-kms-rootfs.XXXXXX)
  $sudo debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
    </dev/null >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; fail "debootstrap failed (log: $rootfs.log)"; }
  $sudo rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  $sudo cp -a "$rootfs"/. "$mnt"/
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  buildah commit -q --rm "$ctr" "$base_image" >/dev/null
  $sudo rm -rf "$rootfs" "$rootfs.log"
  echo "base image built in $((SECONDS - start)) s"
fi

# -- the image ------------------------------------------------------------------------------------------
build_args=(--build-arg "BASE=$base_image")
mounts=()
bundle=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [ -n "$bundle" ] && [ -f "$bundle" ]; then
  mounts+=(-v "$(readlink -f "$bundle"):/etc/ssl/certs/ca-certificates.crt:ro")
  build_args+=(--build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
if [ "${1:-}" != "--checks-only" ]; then
  say "Building $image (Dockerfile, BASE=$base_image)"
  start=$SECONDS
  buildah bud "${isolation[@]}" --pull-never --format docker "${build_args[@]}" "${mounts[@]}" -t "$image" . </dev/null
  echo "image built in $((SECONDS - start)) s"
fi

# -- checks inside the image ----------------------------------------------------------------------------
work=$(mktemp -d)
buildah inspect --type image "$image" >"$work/inspect.json"
python3 - "$work/inspect.json" <<'PY' || fail "the image config is wrong (above)"
import json, re, sys
image = json.load(open(sys.argv[1]))
config = image["Docker"]["config"]
print("image config:", json.dumps({k: config.get(k) for k in ("User", "Entrypoint", "Volumes", "Healthcheck", "Env")}))
problems = []
if config.get("User") != "kms":
    problems.append(f"runs as {config.get('User')!r}, not kms")
if config.get("Entrypoint") != ["tatum-kms"]:
    problems.append(f"entrypoint {config.get('Entrypoint')}")
if "/home/kms/.tatumrc" not in (config.get("Volumes") or {}):
    problems.append("no volume /home/kms/.tatumrc")
if "kms.healthcheck" not in " ".join((config.get("Healthcheck") or {}).get("Test") or []):
    problems.append("no health check")
for entry in config.get("Env") or []:
    name = entry.split("=", 1)[0]
    if re.search(r"PASSWORD|PIN|API_KEY|SECRET|TOKEN|PIP_|CERT", name, re.I):
        problems.append(f"ENV {name} is a secret or a build-time setting")
for step in image.get("History") or []:  # the runtime stage's steps: the build stage's arguments are not here
    if re.search(r"PIP_CERT|PIP_INDEX|PASSWORD|API_KEY", step.get("created_by", ""), re.I):
        problems.append(f"a layer was made with a build setting: {step['created_by'][:120]}")
sys.exit("; ".join(problems) or None)
PY

ctr=$(buildah from --pull=never "$image")
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
run() { buildah run "${isolation[@]}" "$@"; }

say "Inside: who runs, and what is not there"
run --user kms "$ctr" -- sh -c '
  set -e
  echo "user: $(id -un) ($(id -u)), HOME=$HOME, python3: $(command -v python3)"
  [ "$(id -u)" -ne 0 ]
  for tool in gcc cc pip pytest; do
    if command -v "$tool" >/dev/null 2>&1; then echo "unexpected in the runtime image: $tool"; exit 1; fi
  done
  if python3 -c "import pytest" 2>/dev/null || python3 -c "import hypothesis" 2>/dev/null; then
    echo "test extras are installed in the runtime image"; exit 1
  fi
  test -w "$HOME/.tatumrc" && echo "store volume: $HOME/.tatumrc (writable)"
  ls /usr/lib/softhsm/libsofthsm2.so'
if [ -n "$bundle" ] && [ -f "$bundle" ] && run "$ctr" -- cat /etc/ssl/certs/ca-certificates.crt | cmp -s - "$bundle"; then
  fail "the build's CA bundle was committed into the image"
fi

say "Inside: tatum-kms --help"
run --user kms "$ctr" -- tatum-kms --help | sed -n 1,3p

say "Inside: a wallet generated and kept in the store volume"
run --user kms "$ctr" -- sh -c '
  set -e
  export TATUM_KMS_PASSWORD="$(python3 -c "import secrets; print(secrets.token_urlsafe(16))")"
  out=$(tatum-kms generatemanagedwallet BTC --testnet)
  echo "$out"
  id=$(printf "%s" "$out" | python3 -c "import json, sys; print(json.load(sys.stdin)[\"signatureId\"])")
  tatum-kms getaddress "$id" 1 --testnet
  ls -l "$HOME/.tatumrc/wallet.dat"'

say "Inside: the HEALTHCHECK command against a daemon serving TATUM_KMS_METRICS"
ports=$(python3 -c 'import socket
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], end=" ")')
read -r api_port metrics_port <<<"$ports"
run --user kms -e "TATUM_KMS_METRICS=127.0.0.1:$metrics_port" -e "API_PORT=$api_port" "$ctr" -- sh -c '
  set -e
  export TATUM_KMS_PASSWORD="$(python3 -c "import secrets; print(secrets.token_urlsafe(16))")"
  export TATUM_API_KEY="check-$(python3 -c "import secrets; print(secrets.token_hex(8))")"
  export TATUM_API_URL="http://127.0.0.1:$API_PORT"
  store="--path=$HOME/health/wallet.dat"
  tatum-kms generatemanagedwallet ETH --testnet "$store" >/dev/null
  python3 -m kms.healthcheck 2>/dev/null && { echo "healthy before any daemon runs"; exit 1; }
  tatum-kms sandbox --port "$API_PORT" --quiet >/dev/null & sandbox=$!
  tatum-kms daemon --testnet --chain=ETH --period=1 "$store" >/dev/null & daemon=$!
  healthy=""
  for _ in $(seq 60); do
    if python3 -m kms.healthcheck; then healthy=1; break; fi
    sleep 0.5
  done
  kill -TERM "$daemon"; wait "$daemon"; kill -TERM "$sandbox"; wait "$sandbox" || true
  [ -n "$healthy" ] || { echo "the daemon never became healthy"; exit 1; }
  tatum-kms audit verify "$store" | python3 -c "import json, sys; print(json.load(sys.stdin)[\"status\"])"'

say "Inside: the sandbox demo flow (scripts/demo.py with the image's own tatum-kms)"
run --user kms -v "$root/scripts:/opt/demo/scripts:ro" -v "$root/softhsm-config:/opt/demo/softhsm-config:ro" \
  -e TATUM_KMS_DEMO_DIR=/home/kms/demo -e TATUM_KMS_METRICS= "$ctr" -- python3 /opt/demo/scripts/demo.py

say "Image $image: built and checked"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
