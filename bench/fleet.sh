#!/usr/bin/env bash
# Fleet quorum benchmark: how long a failover takes when three veer
# instances decide health together ([fleet], majority quorum) against a
# single instance deciding alone, and how many probes the backend sees with
# probers = 3 and probers = 1. Prints a short Markdown report.
#
#   bench/fleet.sh                          # 20 trials each, 10 s of load
#   bench/fleet.sh -n 10 -i 500ms -t 300ms  # 10 trials, slower checks
#
# Knobs (environment, or the flags in brackets):
#   TRIALS      failover trials per setup [-n]                  default 20
#   INTERVAL    check interval [-i]                             default 200ms
#   TIMEOUT     check timeout [-t]                              default 150ms
#   FALL, RISE  check fall and rise [-f, -r]                    default 2, 2
#   LOAD_SECS   seconds the probe load is counted [-l]          default 10
#   PEER_TIMEOUT  [fleet] peer_timeout                          default 1s
#   SERVER_CPU, CLIENT_CPU, BENCH_WORK: see bench/lib.sh
#
# Every instance serves f.test. with the failover route www.f.test. A
# (tier 1 192.0.2.1 on check `web`, an http check of a backend on
# 127.0.0.1, tier 2 192.0.2.2 without a check), state_dir in its own
# directory, workers = 1, rrl off, an [api] listener for /v1/status.
#
# 1. Failover. (a) Baseline: one instance, no [fleet], probes leaving from
#    127.0.0.2 ([health] source). (b) A fleet of three (ns1..ns3, probe
#    sources 127.0.0.2..4, quorum "majority", probers = 3, peer_timeout
#    PEER_TIMEOUT, fleet listeners on loopback), started after each other
#    and waited for until every instance's /v1/status lists every peer as
#    live. Each trial (bench/fleet.py trials): the backend (a python HTTP
#    server inside the helper, counting requests per client address) comes
#    up; every instance must answer 192.0.2.1; RISE x interval more (so
#    every prober's own verdict is up); a random 0..interval; then the
#    backend is killed (listener closed, connections shut down: connects
#    are refused) and every instance is queried over UDP about every 1 ms
#    until it answers 192.0.2.2. Reported: kill -> first and -> last
#    instance answering 192.0.2.2 (min/median/max), the difference of the
#    medians fleet - single, and backend up -> all answer 192.0.2.1.
#    A fleet instance switches once a majority of the probers' votes (each
#    its own fall x interval, then the long-poll to the peers) say down.
# 2. Probe load: with the same fleet (probers = 3), then a fresh one with
#    probers = 1, the backend up and every instance answering 192.0.2.1,
#    the backend's requests are counted per client address for LOAD_SECS;
#    reported per second and per interval (about 1 per prober and interval;
#    the jitter, +-interval/10, averages out; retries are 0).
#
# The instances are pinned to SERVER_CPU, bench/fleet.py (the backend and
# the poller) to CLIENT_CPU. Configs, logs and the raw TSVs stay in
# $BENCH_WORK/fleet/runs/<time>/.
#
# Run of 2026-11-30 (2-core box, defaults, 94 s): kill -> all answer the
# failover address, median 318 ms single, 310 ms fleet (last instance; the
# first within 0.4 ms median, 4.8 ms max, of the last): no cost measurable
# for the quorum at this resolution; probes per interval 3.00 with
# probers = 3, 1.02 with probers = 1.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

TRIALS=${TRIALS:-20}
INTERVAL=${INTERVAL:-200ms}
TIMEOUT=${TIMEOUT:-150ms}
FALL=${FALL:-2}
RISE=${RISE:-2}
LOAD_SECS=${LOAD_SECS:-10}
PEER_TIMEOUT=${PEER_TIMEOUT:-1s}
while [ $# -gt 0 ]; do
  case "$1" in
    -n) TRIALS=$2; shift 2 ;;
    -i) INTERVAL=$2; shift 2 ;;
    -t) TIMEOUT=$2; shift 2 ;;
    -f) FALL=$2; shift 2 ;;
    -r) RISE=$2; shift 2 ;;
    -l) LOAD_SECS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fleet.sh: unknown argument $1 (see bench/fleet.sh -h)" >&2; exit 2 ;;
  esac
done

for c in taskset python3 cargo; do
  command -v "$c" >/dev/null || { echo "fleet.sh: $c missing" >&2; exit 1; }
done
# The probe sources must be local addresses (all of 127.0.0.0/8 is on Linux).
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.4", 0))' 2>/dev/null \
  || { echo "fleet.sh: cannot bind 127.0.0.4 (probe sources 127.0.0.2-4)" >&2; exit 1; }

seconds() {  # a veer duration (200ms, 1s) in seconds
  case "$1" in
    *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
    *s) echo "${1%s}" ;;
    *) echo "fleet.sh: duration $1: use ms or s" >&2; exit 2 ;;
  esac
}
INTERVAL_S=$(seconds "$INTERVAL")
seconds "$TIMEOUT" >/dev/null

t_start=$(date +%s)
VEER=$(bench_veer)
HELPER="$BENCH_ROOT/bench/fleet.py"
OUT=$BENCH_WORK/fleet/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
cat > "$OUT/params.txt" <<EOF
interval=$INTERVAL
interval_s=$INTERVAL_S
timeout=$TIMEOUT
fall=$FALL
rise=$RISE
probers=3
peer_timeout=$PEER_TIMEOUT
load_s=$LOAD_SECS
trials=$TRIALS
EOF

# --------------------------------------------------------------- helpers --
# N distinct free ports into PORTS (free_port may hand one out twice).
ports() {
  PORTS=()
  while [ ${#PORTS[@]} -lt "$1" ]; do
    local p
    p=$(free_port)
    case " ${PORTS[*]} ${USED_PORTS:-} " in *" $p "*) ;; *) PORTS+=("$p") ;; esac
  done
}
PIDS=()
stop_all() {
  local p
  for p in "${PIDS[@]}"; do stop "$p"; done
  PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

ports 1
BACKEND_PORT=${PORTS[0]}
USED_PORTS=$BACKEND_PORT

ZONE_TEXT='$ORIGIN f.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 60
     IN NS  ns1
ns1  IN A   192.0.2.53
'

# Writes DIR/veer.toml and DIR/zone and starts veer there, pinned; prints
# its PID. FLEET_TOML: the [fleet] table and its [[peer]]s, or empty.
start_veer() {  # DIR DNS_PORT API_PORT SOURCE FLEET_TOML
  local d=$1
  mkdir -p "$d/state"
  printf '%s' "$ZONE_TEXT" > "$d/zone"
  cat > "$d/veer.toml" <<EOF
[server]
listen = ["127.0.0.1:$2"]
workers = 1
state_dir = "state"

[rrl]
responses_per_second = 0   # the poller asks one name ~1000 times a second

[api]
listen = "127.0.0.1:$3"

[health]
source = "$4"

$5
[[zone]]
origin = "f.test."
file = "zone"

[check.web]
http = "http://127.0.0.1:$BACKEND_PORT/"
interval = "$INTERVAL"
timeout = "$TIMEOUT"
fall = $FALL
rise = $RISE

[[route]]
name = "www.f.test."
type = "A"
ttl = 5
policy = "failover"
members = [ { tier = 1, value = "192.0.2.1", check = "web" }, { tier = 2, value = "192.0.2.2" } ]
EOF
  (cd "$d" && RUST_LOG=info exec taskset -c "$SERVER_CPU" "$VEER" serve --config veer.toml) > "$d/log" 2>&1 &
  echo $!
}

# Waits until the log in DIR says PATTERN (the instance is listening).
wait_log() {  # DIR PID PATTERN
  local i
  for i in $(seq 100); do
    grep -q "$3" "$1/log" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "fleet.sh: $1: no \"$3\" in the log:" >&2
  tail -20 "$1/log" >&2
  exit 1
}

# Starts a fleet of three into DIR/ns1..ns3 with PROBERS; sets DNS_SPECS
# (label=127.0.0.1:port) and API_ADDRS, and waits until it is formed.
start_fleet() {  # DIR PROBERS
  local i j fleet d
  ports 9
  DNS_SPECS=() API_ADDRS=()
  for i in 0 1 2; do
    fleet="[fleet]
name = \"ns$((i + 1))\"
listen = \"127.0.0.1:${PORTS[$((6 + i))]}\"
token = \"fleet-token-0123456789\"
quorum = \"majority\"
probers = $2
peer_timeout = \"$PEER_TIMEOUT\"
"
    for j in 0 1 2; do
      [ "$j" = "$i" ] && continue
      fleet+="
[[peer]]
name = \"ns$((j + 1))\"
url = \"http://127.0.0.1:${PORTS[$((6 + j))]}\"
"
    done
    d=$1/ns$((i + 1))
    PIDS+=("$(start_veer "$d" "${PORTS[$i]}" "${PORTS[$((3 + i))]}" "127.0.0.$((2 + i))" "$fleet")")
    wait_log "$d" "${PIDS[-1]}" "dns listening on 127.0.0.1:${PORTS[$i]}"
    wait_log "$d" "${PIDS[-1]}" "fleet: listening on"
    DNS_SPECS+=("ns$((i + 1))=127.0.0.1:${PORTS[$i]}")
    API_ADDRS+=("127.0.0.1:${PORTS[$((3 + i))]}")
  done
  taskset -c "$CLIENT_CPU" python3 "$HELPER" wait-fleet 20 "${API_ADDRS[@]}"
}

helper() { taskset -c "$CLIENT_CPU" python3 "$HELPER" "$@"; }

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel $(uname -r); $(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "veer: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "checks: interval $INTERVAL, timeout $TIMEOUT, fall $FALL, rise $RISE; $TRIALS trials; load ${LOAD_SECS}s;" \
    "instances on CPU $SERVER_CPU, helper on CPU $CLIENT_CPU"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt"

# ------------------------------------------------------ 1a. single veer --
echo "1a. single instance (no [fleet]), $TRIALS trials"
ports 2
PIDS+=("$(start_veer "$OUT/single" "${PORTS[0]}" "${PORTS[1]}" 127.0.0.2 "")")
wait_log "$OUT/single" "${PIDS[-1]}" "dns listening on 127.0.0.1:${PORTS[0]}"
helper trials "$OUT/trials-single.tsv" "$TRIALS" "$BACKEND_PORT" "$INTERVAL_S" "$RISE" \
  "single=127.0.0.1:${PORTS[0]}"
stop_all

# ------------------------------------------- 1b, 2. fleet, probers = 3 --
echo "1b. fleet of three, probers = 3, $TRIALS trials"
start_fleet "$OUT/fleet-p3" 3
helper trials "$OUT/trials-fleet.tsv" "$TRIALS" "$BACKEND_PORT" "$INTERVAL_S" "$RISE" "${DNS_SPECS[@]}"
echo "2. probe load, probers = 3, ${LOAD_SECS}s"
helper load "$OUT/load-p3.tsv" "$LOAD_SECS" "$BACKEND_PORT" "$INTERVAL_S" "$RISE" "${DNS_SPECS[@]}"
stop_all

# ------------------------------------------------ 2. fleet, probers = 1 --
echo "2. probe load, probers = 1, ${LOAD_SECS}s"
start_fleet "$OUT/fleet-p1" 1
helper load "$OUT/load-p1.tsv" "$LOAD_SECS" "$BACKEND_PORT" "$INTERVAL_S" "$RISE" "${DNS_SPECS[@]}"
stop_all

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo
python3 "$HELPER" report "$OUT" | tee "$OUT/report.md"
echo
echo "total time $(($(date +%s) - t_start)) s; raw numbers in $OUT"
