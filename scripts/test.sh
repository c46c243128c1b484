#!/usr/bin/env bash
# Runs veer's whole test suite on a fresh Debian machine: installs what the
# tests need when it is missing (dig from bind9-dnsutils, chromium for the
# status page, unbound for the resolver tests, nsd and knot as secondaries
# for the zone transfer tests), then cargo test, then a
# bounded fuzz run (scripts/fuzz.sh: every target for FUZZ_SECONDS, 10 by
# default, with a fixed seed). Arguments go to cargo test; with arguments
# (a subset of the tests) the fuzz run is skipped. VEER_FUZZ=0 skips it too.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
# The status page is tested in headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# tests/resolver.rs puts a real Unbound in front of veer. It lives in
# /usr/sbin, often not on a normal user's PATH.
install_unbound=no
if ! command -v unbound >/dev/null 2>&1 && [ ! -x /usr/sbin/unbound ]; then
  missing+=(unbound)
  install_unbound=yes
fi
# The zone transfer tests put a real NSD and a real Knot beside veer as
# its secondaries (tests/support/secondary.rs); /usr/sbin too.
daemons=()
if ! command -v nsd >/dev/null 2>&1 && [ ! -x /usr/sbin/nsd ]; then
  missing+=(nsd)
  daemons+=(nsd)
fi
if ! command -v knotd >/dev/null 2>&1 && [ ! -x /usr/sbin/knotd ]; then
  missing+=(knot)
  daemons+=(knot)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
  if [ "$install_unbound" = yes ]; then
    # Debian starts the freshly installed package as a system resolver on
    # port 53. The tests run their own instances and never use it: stop
    # and disable it (systemd or not; failures are fine).
    $sudo systemctl disable --now unbound >/dev/null 2>&1 || true
    $sudo service unbound stop >/dev/null 2>&1 || true
  fi
  # Same for NSD and Knot: Debian starts them as authoritative servers on
  # port 53; the tests run their own on free loopback ports.
  for d in ${daemons[@]+"${daemons[@]}"}; do
    $sudo systemctl disable --now "$d" >/dev/null 2>&1 || true
    $sudo service "$d" stop >/dev/null 2>&1 || true
  done
fi

cargo test --locked --all-targets "$@"
if [ $# -eq 0 ] && [ "${VEER_FUZZ:-1}" != 0 ]; then
  ./scripts/fuzz.sh
fi
