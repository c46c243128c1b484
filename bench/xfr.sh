#!/usr/bin/env bash
# Zone transfer benchmark: how fast a health transition reaches NSD and Knot
# secondaries (NOTIFY + IXFR), against Knot as the primary, what an AXFR
# of a 100,000-record zone costs veer, and veer as the secondary of a Knot
# primary (NOTIFY + IXFR, and a first AXFR of the 100,000-record zone).
# Prints a short Markdown report.
#
#   bench/setup.sh && bench/xfr.sh          # 20 trials each, 3 AXFR runs
#   bench/xfr.sh -n 10 -k                   # 10 trials, transfers signed
#   bench/xfr.sh -g 0.3                     # flips 0.3 s apart
#
# Knobs (environment, or the flags in brackets):
#   TRIALS     failover trials per primary, and for section 4 [-n]
#                                                               default 20
#   TSIG       1: sign transfers and NOTIFY with an hmac-sha256
#              key (veer's [key.NAME], NSD and Knot alike) [-k]  default 0
#   HOSTS      A records in the failover zone                   default 1000
#   BIG        records in the AXFR zones of sections 3 and 4
#              (SOA and NS included)                            default 100000
#   AXFR_RUNS  AXFR repetitions                                 default 3
#   GAP        seconds between trials [-g]; Knot 3.2 holds off a
#              NOTIFY'd refresh within ~1 s of its last transfer, so
#              below ~1 s Knot's column measures that hold-off  default 1.5
#   XFR_DEBUG  1: bench/xfr.py prints wall-clock trial starts and the
#              largest gap between replies per server
#   SERVER_CPU, CLIENT_CPU, BENCH_WORK: see bench/lib.sh
#
# 1. veer primary: veer (check `p`: a file check, interval 50 ms, default
#    fall 3 / rise 2) serves bench.test. with the failover route
#    app.bench.test. A (tier 1 192.0.2.1 on check p, tier 2 192.0.2.2) and
#    NOTIFYs an NSD and a Knot secondary. Each trial renames "down" or "up"
#    (alternating) into health/p, then bench/xfr.py polls veer, NSD and Knot
#    over UDP (~1 ms apart each) until each answers the new address; the
#    times are from the rename. veer's own time is health detection; the
#    secondaries' minus veer's is NOTIFY + IXFR + their reload.
# 2. Knot primary (baseline, same run): the same zone with app A in the
#    file; each trial rewrites the file (new address, serial + 1), then the
#    clock starts and `knotc zone-reload` runs; Knot computes the
#    difference, NOTIFYs its own NSD and Knot secondaries, serves IXFR.
# 3. AXFR: a fresh veer with a BIG-record zone; AXFR_RUNS x `dig +tcp AXFR`
#    (wall time, XFR size), veer's VmRSS/VmHWM from /proc/PID/status before
#    and after, VmRSS sampled every 10 ms during each transfer.
# 4. veer secondary of a Knot primary: veer ([[zone]] primary = Knot, the
#    key when -k, state_dir in its run dir) starts first and answers
#    SERVFAIL, then Knot (section 2's primary config and zone) NOTIFYs it
#    as it loads. TRIALS trials as in section 2 (edit, serial + 1, clock,
#    `knotc zone-reload`), polling Knot and veer: knotc's return, Knot's
#    and veer's answers, veer minus Knot is NOTIFY + SOA + IXFR + veer's
#    rebuild. Then a fresh veer (empty state_dir) waits out its second
#    failed refresh, Knot starts with the BIG zone and NOTIFYs it; the
#    clock starts when Knot first answers the zone's SOA and stops when
#    veer answers the zone's last name (~1 ms polls); veer's VmRSS/VmHWM
#    before (idle, no zone) and 1 s after, VmRSS every 10 ms in between,
#    and veer's own log line "AXFR from ... N records in X ms" (from the
#    transfer request to the zone being served).
#
# Every server is pinned to SERVER_CPU (they take turns: the transfer is a
# chain of events, not a load), bench/xfr.py and dig to CLIENT_CPU. NSD and
# Knot run as in tests/support/secondary.rs: no chroot, no user switch, every
# file in the run directory, NSD `xfrd-reload-timeout: 0`, control over unix
# sockets. Zones are generated into $BENCH_WORK/xfr/zones; the raw numbers
# and every server's config and log stay in $BENCH_WORK/xfr/runs/<time>/.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

TRIALS=${TRIALS:-20}
TSIG=${TSIG:-0}
HOSTS=${HOSTS:-1000}
BIG=${BIG:-100000}
AXFR_RUNS=${AXFR_RUNS:-3}
GAP=${GAP:-1.5}
while [ $# -gt 0 ]; do
  case "$1" in
    -n) TRIALS=$2; shift 2 ;;
    -k) TSIG=1; shift ;;
    -g) GAP=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "xfr.sh: unknown argument $1 (see bench/xfr.sh -h)" >&2; exit 2 ;;
  esac
done

for c in nsd nsd-control knotd knotc dig taskset python3 cargo; do
  command -v "$c" >/dev/null || { echo "xfr.sh: $c missing: run bench/setup.sh" >&2; exit 1; }
done

t_start=$(date +%s)
VEER=$(bench_veer)
HELPER="$BENCH_ROOT/bench/xfr.py"
ZONES=$BENCH_WORK/xfr/zones
OUT=$BENCH_WORK/xfr/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
python3 "$HELPER" zones "$ZONES" "$HOSTS" "$BIG"

KEY_NAME=xfr-key
KEY_SECRET=""
if [ "$TSIG" = 1 ]; then
  KEY_SECRET=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
fi

# --------------------------------------------------------------- servers --
# Each start_* writes its config into the directory $1 and starts the
# server there in the background, pinned, on 127.0.0.1:$2; prints its PID.
pin() { taskset -c "$SERVER_CPU" "$@"; }

# NSD key lines: the key block, and the key name or NOKEY.
nsd_key_block() {
  [ "$TSIG" = 1 ] || return 0
  printf 'key:\n    name: "%s"\n    algorithm: hmac-sha256\n    secret: "%s"\n\n' "$KEY_NAME" "$KEY_SECRET"
}
nsd_key() { if [ "$TSIG" = 1 ]; then echo "\"$KEY_NAME\""; else echo NOKEY; fi; }
knot_key_block() {
  [ "$TSIG" = 1 ] || return 0
  printf 'key:\n  - id: "%s"\n    algorithm: hmac-sha256\n    secret: "%s"\n\n' "$KEY_NAME" "$KEY_SECRET"
}
knot_key_line() {
  [ "$TSIG" = 1 ] || return 0
  printf '    key: "%s"\n' "$KEY_NAME"
}

start_nsd_secondary() {  # DIR PORT PRIMARY_PORT
  local d=$1
  mkdir -p "$d"
  cat > "$d/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$2
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$d"
    database: ""
    zonelistfile: "$d/zone.list"
    pidfile: "$d/nsd.pid"
    xfrdfile: "$d/xfrd.state"
    xfrdir: "$d"
    logfile: "$d/nsd.log"
    verbosity: 2
    server-count: 1
    tcp-count: 32
    reuseport: no
    rrl-ratelimit: 0
    xfrd-reload-timeout: 0
    zonefiles-write: 0

remote-control:
    control-enable: yes
    control-interface: "$d/nsd.ctl"

$(nsd_key_block)zone:
    name: "bench.test."
    zonefile: "$d/secondary.zone"
    request-xfr: 127.0.0.1@$3 $(nsd_key)
    allow-notify: 127.0.0.1 $(nsd_key)
    provide-xfr: 127.0.0.0/8 NOKEY
EOF
  pin nsd -d -c "$d/nsd.conf" > "$d/stderr.log" 2>&1 &
  echo $!
}

knot_common() {  # DIR PORT
  cat <<EOF
server:
    rundir: "$1"
    listen: 127.0.0.1@$2
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: "$1/knot.log"
    any: info

database:
    storage: "$1"
    journal-db: "$1/journal"
    kasp-db: "$1/kasp"
    timer-db: "$1/timer"
    catalog-db: "$1/catalog"

control:
    listen: "$1/knot.sock"

$(knot_key_block)
EOF
}

start_knot_secondary() {  # DIR PORT PRIMARY_PORT
  local d=$1
  mkdir -p "$d"
  cat > "$d/knot.conf" <<EOF
$(knot_common "$d" "$2")
remote:
  - id: primary
    address: 127.0.0.1@$3
$(knot_key_line)

acl:
  - id: notify
    address: 127.0.0.1
    action: notify
$(knot_key_line)
  - id: axfr-out
    address: 127.0.0.0/8
    action: transfer

zone:
  - domain: "bench.test."
    storage: "$d"
    file: "$d/secondary.zone"
    master: primary
    acl: [notify, axfr-out]
    zonefile-sync: -1
    zonefile-load: none
    journal-content: ${KNOT_JOURNAL:-all}
EOF
  pin knotd -c "$d/knot.conf" > "$d/stderr.log" 2>&1 &
  echo $!
}

start_knot_primary() {  # DIR PORT ZONEFILE NOTIFY_PORT...
  local d=$1 port=$2 i=0 p remotes="" ids=""
  mkdir -p "$d"
  cp "$3" "$d/primary.zone"
  shift 3
  for p in "$@"; do
    remotes+="  - id: notify$i
    address: 127.0.0.1@$p
$(knot_key_line)
"
    ids+="${ids:+, }notify$i"
    i=$((i + 1))
  done
  cat > "$d/knot.conf" <<EOF
$(knot_common "$d" "$port")
remote:
$remotes

acl:
  - id: transfer
    address: 127.0.0.0/8
    action: transfer
$(knot_key_line)

zone:
  - domain: "bench.test."
    storage: "$d"
    file: "$d/primary.zone"
    acl: transfer
    notify: [$ids]
    zonefile-load: difference
    journal-content: changes
    zonefile-sync: -1
EOF
  pin knotd -c "$d/knot.conf" > "$d/stderr.log" 2>&1 &
  echo $!
}

start_veer() {  # DIR PORT ZONEFILE [NOTIFY_PORT...]
  local d=$1 port=$2 zone=$3 targets="" p key_field="" key_table=""
  shift 3
  mkdir -p "$d/health"
  cp "$zone" "$d/zone"
  echo up > "$d/health/p"
  if [ "$TSIG" = 1 ]; then
    key_field=", key = \"$KEY_NAME\""
    key_table="[key.$KEY_NAME]
algorithm = \"hmac-sha256\"
secret = \"$KEY_SECRET\""
  fi
  for p in "$@"; do
    targets+="${targets:+, }{ address = \"127.0.0.1:$p\"$key_field }"
  done
  cat > "$d/veer.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
[rrl]
responses_per_second = 0
$key_table
[check.p]
file = "health/p"
interval = "50ms"
[[zone]]
origin = "bench.test."
file = "zone"
allow_transfer = [ { network = "127.0.0.0/8"$key_field } ]
notify = [ $targets ]
[[route]]
name = "app.bench.test."
type = "A"
ttl = 30
policy = "failover"
members = [ { value = "192.0.2.1", check = "p", tier = 1 }, { value = "192.0.2.2", tier = 2 } ]
EOF
  (cd "$d" && RUST_LOG=info exec taskset -c "$SERVER_CPU" "$VEER" serve --config veer.toml) > "$d/log" 2>&1 &
  echo $!
}

start_veer_secondary() {  # DIR PORT PRIMARY_PORT
  local d=$1 key_field="" key_table=""
  mkdir -p "$d/state"
  if [ "$TSIG" = 1 ]; then
    key_field=", key = \"$KEY_NAME\""
    key_table="[key.$KEY_NAME]
algorithm = \"hmac-sha256\"
secret = \"$KEY_SECRET\""
  fi
  cat > "$d/veer.toml" <<EOF
[server]
listen = ["127.0.0.1:$2"]
state_dir = "state"
[rrl]
responses_per_second = 0
$key_table
[[zone]]
origin = "bench.test."
primary = [ { address = "127.0.0.1:$3"$key_field } ]
EOF
  (cd "$d" && RUST_LOG=info exec taskset -c "$SERVER_CPU" "$VEER" serve --config veer.toml) > "$d/log" 2>&1 &
  echo $!
}

# --------------------------------------------------------------- helpers --
# Three distinct free ports into PORTS (free_port may hand one out twice).
three_ports() {
  PORTS=()
  while [ ${#PORTS[@]} -lt 3 ]; do
    local p
    p=$(free_port)
    case " ${PORTS[*]} " in *" $p "*) ;; *) PORTS+=("$p") ;; esac
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

# Waits until the server on PORT answers the zone's SOA (any rcode: a
# secondary answers SERVFAIL until its first transfer).
wait_up() {  # NAME PORT PID LOG
  local i
  for i in $(seq 100); do
    dig @127.0.0.1 -p "$2" +norec +time=1 +tries=1 bench.test SOA 2>/dev/null | grep -q 'status:' && return 0
    if ! kill -0 "$3" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "xfr.sh: $1 does not answer on 127.0.0.1:$2; log $4:" >&2
  tail -20 "$4" >&2
  exit 1
}
veer_pid() {  # the veer process itself (under the subshell and taskset)
  local p
  for p in $(tree "$1"); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$VEER" ] && { echo "$p"; return 0; }
  done
  return 1
}
# What the secondaries' logs say about the transfers: Knot names IXFR or
# AXFR; NSD logs each update with its size (an IXFR of one change is a few
# hundred bytes, the zone's AXFR tens of KiB).
xfr_kinds() {  # KNOT_LOG NSD_LOG
  printf 'knot: %s IXFR, %s AXFR in; nsd: %s updates, sizes in bytes: %s' \
    "$(grep -c 'IXFR, incoming.*finished' "$1" || true)" "$(grep -c 'AXFR, incoming.*finished' "$1" || true)" \
    "$(grep -c 'received update to serial [0-9]* at .* of [0-9]* bytes' "$2" || true)" \
    "$(grep -o 'of [0-9]* bytes' "$2" | awk '{ n[$2]++ } END { for (b in n) { printf "%s%s x%d", sep, b, n[b]; sep = ", " } }')"
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel $(uname -r); $(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "veer: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "nsd: $(nsd -v 2>&1 | head -1); knot: $(knotd -V 2>&1 | head -1); dig: $(dig -v 2>&1 | head -1)"
  echo "$TRIALS trials per primary, ${GAP}s apart; failover zone $HOSTS hosts; AXFR zone $BIG records; TSIG: $([ "$TSIG" = 1 ] && echo "hmac-sha256" || echo off);" \
    "servers on CPU $SERVER_CPU, poller and dig on CPU $CLIENT_CPU"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt"

# ---------------------------------------------------- 1. veer as primary --
echo "1. veer primary, NSD + Knot secondaries"
three_ports && VPORT=${PORTS[0]} NPORT=${PORTS[1]} KPORT=${PORTS[2]}
PIDS+=("$(start_nsd_secondary "$OUT/veer-nsd" "$NPORT" "$VPORT")")
PIDS+=("$(start_knot_secondary "$OUT/veer-knot" "$KPORT" "$VPORT")")
wait_up nsd "$NPORT" "${PIDS[0]}" "$OUT/veer-nsd/nsd.log"
wait_up knot "$KPORT" "${PIDS[1]}" "$OUT/veer-knot/knot.log"
PIDS+=("$(start_veer "$OUT/veer" "$VPORT" "$ZONES/fo.zone" "$NPORT" "$KPORT")")
wait_up veer "$VPORT" "${PIDS[2]}" "$OUT/veer/log"
if [ "$TSIG" = 1 ]; then
  # A signed AXFR that dig can verify, or veer cannot sign yet.
  a=$(dig -y "hmac-sha256:$KEY_NAME:$KEY_SECRET" @127.0.0.1 -p "$VPORT" +tcp +time=5 +tries=1 bench.test AXFR 2>&1 || true)
  if ! grep -q 'XFR size' <<< "$a" || grep -qiE "couldn't verify|tsig verify failure|; Transfer failed" <<< "$a"; then
    echo "xfr.sh: veer does not answer a signed AXFR (-k needs its TSIG support); dig said:" >&2
    grep '^;' <<< "$a" | tail -5 >&2
    exit 1
  fi
fi
XFR_GAP=$GAP taskset -c "$CLIENT_CPU" python3 "$HELPER" trials veer "$OUT/veer-trials.tsv" "$TRIALS" \
  "127.0.0.1:$VPORT" "127.0.0.1:$NPORT" "127.0.0.1:$KPORT" "$OUT/veer/health/p"
echo "  transfers: $(xfr_kinds "$OUT/veer-knot/knot.log" "$OUT/veer-nsd/nsd.log")" | tee "$OUT/veer-xfr-kinds.txt"
stop_all

# ------------------------------------------- 2. Knot as primary (baseline) --
echo "2. Knot primary, NSD + Knot secondaries"
three_ports && PPORT=${PORTS[0]} NPORT=${PORTS[1]} KPORT=${PORTS[2]}
PIDS+=("$(start_nsd_secondary "$OUT/knotp-nsd" "$NPORT" "$PPORT")")
PIDS+=("$(start_knot_secondary "$OUT/knotp-knot" "$KPORT" "$PPORT")")
wait_up nsd "$NPORT" "${PIDS[0]}" "$OUT/knotp-nsd/nsd.log"
wait_up knot "$KPORT" "${PIDS[1]}" "$OUT/knotp-knot/knot.log"
PIDS+=("$(start_knot_primary "$OUT/knotp" "$PPORT" "$ZONES/knot.zone" "$NPORT" "$KPORT")")
wait_up "knot primary" "$PPORT" "${PIDS[2]}" "$OUT/knotp/knot.log"
XFR_GAP=$GAP taskset -c "$CLIENT_CPU" python3 "$HELPER" trials knot "$OUT/knot-trials.tsv" "$TRIALS" \
  "127.0.0.1:$PPORT" "127.0.0.1:$NPORT" "127.0.0.1:$KPORT" "$OUT/knotp/primary.zone:$OUT/knotp/knot.sock"
echo "  transfers: $(xfr_kinds "$OUT/knotp-knot/knot.log" "$OUT/knotp-nsd/nsd.log")" | tee "$OUT/knot-xfr-kinds.txt"
stop_all

# ------------------------------------------------------ 3. AXFR from veer --
echo "3. AXFR of $BIG records from veer"
VPORT=$(free_port)
PIDS+=("$(start_veer "$OUT/axfr" "$VPORT" "$ZONES/big.zone")")
wait_up veer "$VPORT" "${PIDS[0]}" "$OUT/axfr/log"
VPID=$(veer_pid "${PIDS[0]}") || { echo "xfr.sh: cannot find veer's PID" >&2; exit 1; }
DIG_KEY=""
[ "$TSIG" = 1 ] && DIG_KEY="hmac-sha256:$KEY_NAME:$KEY_SECRET"
DIG_KEY=$DIG_KEY taskset -c "$CLIENT_CPU" python3 "$HELPER" axfr "$OUT/axfr.tsv" "$AXFR_RUNS" \
  "$VPID" "127.0.0.1:$VPORT" "$OUT/axfr/dig"
stop_all

# ------------------------------------- 4. veer as secondary of a Knot primary --
echo "4. veer secondary of a Knot primary"
# veer first, against the port Knot will take (SERVFAIL, retrying), then
# Knot, which NOTIFYs veer as it loads the zone.
three_ports && PPORT=${PORTS[0]} VPORT=${PORTS[1]}
PIDS+=("$(start_veer_secondary "$OUT/sec-veer" "$VPORT" "$PPORT")")
wait_up veer "$VPORT" "${PIDS[0]}" "$OUT/sec-veer/log"
PIDS+=("$(start_knot_primary "$OUT/sec-knotp" "$PPORT" "$ZONES/knot.zone" "$VPORT")")
wait_up "knot primary" "$PPORT" "${PIDS[1]}" "$OUT/sec-knotp/knot.log"
XFR_GAP=$GAP taskset -c "$CLIENT_CPU" python3 "$HELPER" sectrials "$OUT/secondary-trials.tsv" "$TRIALS" \
  "127.0.0.1:$PPORT" "127.0.0.1:$VPORT" "$OUT/sec-knotp/primary.zone:$OUT/sec-knotp/knot.sock"
echo "  transfers into veer: $(grep -c 'IXFR from' "$OUT/sec-veer/log" || true) IXFR," \
  "$(grep -c 'AXFR from' "$OUT/sec-veer/log" || true) AXFR" | tee "$OUT/secondary-xfr-kinds.txt"
stop_all

echo "4b. first AXFR of $BIG records from Knot into a fresh veer"
# A fresh veer (empty state_dir) waits out its second failed refresh (the
# next try is 2 s away), then Knot starts with the BIG zone and NOTIFYs it;
# bench/xfr.py starts the clock when Knot answers the zone.
three_ports && PPORT=${PORTS[0]} VPORT=${PORTS[1]}
PIDS+=("$(start_veer_secondary "$OUT/fetch-veer" "$VPORT" "$PPORT")")
wait_up veer "$VPORT" "${PIDS[0]}" "$OUT/fetch-veer/log"
VPID=$(veer_pid "${PIDS[0]}") || { echo "xfr.sh: cannot find veer's PID" >&2; exit 1; }
for i in $(seq 100); do
  grep -q 'next try in 2s' "$OUT/fetch-veer/log" && break
  sleep 0.05
done
taskset -c "$CLIENT_CPU" python3 "$HELPER" fetch "$OUT/fetch.tsv" "$BIG" "$VPID" "127.0.0.1:$VPORT" \
  "127.0.0.1:$PPORT" "$OUT/fetch-veer/log" "$OUT/fetch.ready" &
FETCH=$!
for i in $(seq 500); do
  [ -e "$OUT/fetch.ready" ] && break
  kill -0 "$FETCH" 2>/dev/null || break
  sleep 0.01
done
PIDS+=("$(start_knot_primary "$OUT/fetch-knotp" "$PPORT" "$ZONES/big.zone" "$VPORT")")
wait "$FETCH"
stop_all

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo
python3 "$HELPER" report "$OUT" "$BIG" | tee "$OUT/report.md"
echo
echo "total time $(($(date +%s) - t_start)) s; raw numbers in $OUT"
