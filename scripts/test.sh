#!/usr/bin/env bash
# Runs veer's whole test suite on a fresh Debian machine: installs what the
# tests need when it is missing (dig from bind9-dnsutils, chromium for the
# status page), then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
# The status page is tested in headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi

exec cargo test --locked --all-targets "$@"
