#!/usr/bin/env bash
# Installs what bench/run.sh compares veer against, and writes its data.
# Safe to run again: it installs only what is missing.
#
#   bench/setup.sh
#
# Debian packages: gdnsd, nsd, knot (the servers), dnsperf (the load),
# bind9-dnsutils (dig, the answer checks), util-linux (taskset), python3.
# apt-get runs only when one is missing, as root or through sudo.
#
# The benchmark never uses the packaged services: bench/run.sh starts each
# server by hand on a free loopback port with its own config, and stops it
# by PID. Debian may start the services (on port 53) when it installs them,
# so this script stops and disables them; failures are ignored (no systemd,
# or a policy that kept them from starting in the first place).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

pkgs=(gdnsd nsd knot dnsperf bind9-dnsutils util-linux python3)
services=(gdnsd nsd knot)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
else
  echo "setup: packages already installed"
fi

for s in "${services[@]}"; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$s" >/dev/null 2>&1 || true
  else
    $sudo service "$s" stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null && { $sudo update-rc.d "$s" disable >/dev/null 2>&1 || true; }
  fi
done

for c in gdnsd nsd knotd dnsperf dig taskset python3 cargo; do
  command -v "$c" >/dev/null || { echo "setup: $c not found" >&2; exit 1; }
done

bench_data
echo "setup: data in $DATA"
ls -l "$DATA" | tail -n +2
echo "setup: done; next: bench/run.sh"
