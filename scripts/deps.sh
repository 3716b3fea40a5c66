#!/usr/bin/env bash
# Installs every Debian package that build, run, test and bench need, and the
# npm modules the tests use (pinned in test/package-lock.json). Idempotent and
# non-interactive: packages already installed are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config libfcgi-dev libsodium-dev libcurl4-openssl-dev libpq-dev
      libhiredis-dev libjson-c-dev libssl-dev zlib1g-dev libpcre2-dev nginx-light redis-server
      postgresql postgresql-client libcmocka-dev gcovr wrk cppcheck clang-tidy clang-format
      python3-aiohttp python3-nacl chromium util-linux procps curl ca-certificates nodejs)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    # nodejs from another source (e.g. NodeSource) counts as installed when node runs.
    if [ "$p" = nodejs ] && command -v node >/dev/null && command -v npm >/dev/null; then continue; fi
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their services; the stack runs its own on other ports.
  for svc in nginx redis-server postgresql; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

if ! command -v npm >/dev/null; then
  echo "deps: npm not found (it comes with Node.js; do not install Debian's npm package over it)" >&2
  exit 1
fi
if [ ! -d test/node_modules ] || [ test/package-lock.json -nt test/node_modules/.package-lock.json ]; then
  echo "deps: npm ci in test/"
  (cd test && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
