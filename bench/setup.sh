#!/usr/bin/env bash
# Installs what bench/run.sh compares veer against, and writes its data.
# Safe to run again: it installs only what is missing.
#
#   bench/setup.sh
#
# Debian packages: gdnsd, nsd, knot (the servers), dnsperf (the load),
# bind9-dnsutils (dig, the answer checks; delv, bench/dnssec.sh's validation),
# util-linux (taskset), python3, time (/usr/bin/time -v, bench/dnssec.sh).
# apt-get runs only when one is missing, as root or through sudo.
#
# The benchmark never uses the packaged services: bench/run.sh starts each
# server by hand on a free loopback port with its own config, and stops it
# by PID. Debian would start the services (on port 53) when it installs
# them: the install runs with a policy-rc.d that forbids starting services,
# and the services of packages this run installed are disabled afterwards.
# Services of packages that were already installed are never touched (they
# may be someone's production DNS).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

pkgs=(gdnsd nsd knot dnsperf bind9-dnsutils util-linux procps python3 time)
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
  # No service may start during the install (exit 101: "not allowed").
  policy=/usr/sbin/policy-rc.d
  placed=no
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    placed=yes
  fi
  trap '[ "$placed" = yes ] && $sudo rm -f "$policy"' EXIT
  $sudo apt-get update -qq
  $sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
  # Only the services of packages installed just now.
  for s in "${services[@]}"; do
    case " ${missing[*]} " in *" $s "*) ;; *) continue ;; esac
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now "$s" >/dev/null 2>&1 || true
    else
      $sudo service "$s" stop >/dev/null 2>&1 || true
      command -v update-rc.d >/dev/null && { $sudo update-rc.d "$s" disable >/dev/null 2>&1 || true; }
    fi
  done
else
  echo "setup: packages already installed"
fi

for c in gdnsd nsd knotd dnsperf dig taskset ps python3 cargo; do
  command -v "$c" >/dev/null || { echo "setup: $c not found" >&2; exit 1; }
done

bench_data
echo "setup: data in $DATA"
ls -l "$DATA" | tail -n +2
echo "setup: done; next: bench/run.sh"
