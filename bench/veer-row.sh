#!/usr/bin/env bash
# One routed veer row for bench/run.sh and bench/routed.sh, run in an empty
# working dir: writes veer.toml (+ zone, + geo map) and execs veer, one worker.
#
#   veer-row.sh KIND VEER PORT ZONE
#
# KIND  weighted: dyn.bench.test is a weighted route (3:1, pick = 2, so
#                 every answer holds 127.0.0.1, which bench/run.sh checks);
#       weighted1: a weighted route answering one member (pick = 1,
#                 3:1 between 127.0.0.1 and 127.0.0.2)
#       geo:      dyn.bench.test is a geo route (country DE -> 127.0.0.1,
#                 default -> 192.0.2.53), client located by a networks map
#                 (127.0.0.0/8 is DE), so every query takes the location
#                 lookup and area match.
#
# With a fifth argument --config-only it writes the files and returns.
set -euo pipefail
kind=$1 veer=$2 port=$3 zone=$4 only=${5:-}
grep -v '^dyn' "$zone" > zone
cat > veer.toml <<TOML
[server]
listen = ["127.0.0.1:$port"]
workers = 1
udp_sockets = 1

[rrl]
responses_per_second = 0   # every benchmark turns rate limiting off

[[zone]]
origin = "bench.test."
file = "zone"
TOML
case "$kind" in
weighted | weighted1)
  # pick = 2 answers both members (in an order weighted 3:1), pick = 1 one.
  cat >> veer.toml <<TOML

[[route]]
name = "dyn.bench.test."
type = "A"
ttl = 30
policy = "weighted"
pick = $([ "$kind" = weighted ] && echo 2 || echo 1)
members = [
  { value = "127.0.0.1", weight = 3 },
  { value = "127.0.0.2", weight = 1 },
]
TOML
  ;;
geo)
  echo "127.0.0.0/8 EU DE" > networks.txt
  cat >> veer.toml <<'TOML'

[geo]
networks = "networks.txt"

[[route]]
name = "dyn.bench.test."
type = "A"
ttl = 30
policy = "geo"
members = [
  { country = "DE", value = "127.0.0.1" },
  { default = true, value = "192.0.2.53" },
]
TOML
  ;;
*)
  echo "veer-row.sh: unknown kind $kind" >&2
  exit 2
  ;;
esac
[ "$only" = --config-only ] && exit 0
RUST_LOG=warn exec "$veer" serve --config veer.toml
