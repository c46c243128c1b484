#!/usr/bin/env bash
# What signing costs veer (DNSSEC), each figure against the same thing
# unsigned in the same run. Prints a Markdown report.
#
#   bench/setup.sh && bench/dnssec.sh       # about 15 minutes
#   bench/dnssec.sh -r 1 -l 5 -n 10 -b 0    # quicker: no 100k-zone trials
#   bench/dnssec.sh -p "2 3"                # parts 2 and 3 only
#
# Knobs (environment, or the flags in brackets):
#   PARTS       which parts run [-p]                        default "1 2 3"
#   ROUNDS      part 1: interleaved rounds of bench/run.sh [-r]  default 3
#   DURATION    part 1: measured seconds per run [-l]           default 10
#   SERVERS     part 1: bench/run.sh rows
#               default "veer-edns veer-dnssec veer-dnssec-nodo
#                        veer-routed-edns veer-routed-dnssec"
#   SETS        part 1: query sets [-m]                    default "mix dyn"
#   TRIALS      part 2: trials per server and direction [-n]    default 20
#   BIG         records of the large zone: part 3's, and part 2's
#               large-zone servers (0: part 2 without them) [-b]
#                                                            default 100000
#   LOAD_RUNS   part 3: runs of each (unsigned, signed)         default 3
#   DNSSEC_GAP  part 2: seconds between trials (+ up to 50 ms)  default 0.3
#   SERVER_CPU, CLIENT_CPU, BENCH_WORK: see bench/lib.sh; run.sh's other
#   knobs (WARMUP, CLIENTS, ...) pass through
#
# 1. Query load (bench/run.sh): the bench zone unsigned, dnsperf sending
#    EDNS (veer-edns), against the same zone signed with DO on every query
#    (veer-dnssec, dnsperf -D); the signed zone without DO
#    (veer-dnssec-nodo); dyn.bench.test A as a failover route, unsigned
#    with EDNS (veer-routed-edns) and signed with DO (veer-routed-dnssec).
#    QPS per server core and user/system µs per query from /proc, medians
#    over ROUNDS; the ratio signed ÷ unsigned (bench/dnssec.py ratios).
# 2. Health transition -> new answer: veer servers (pinned to SERVER_CPU,
#    one worker) with a file check (interval 10ms, fall 1, rise 1) and a
#    failover route app.bench.test A (tier 1 192.0.2.1 on the check, tier 2
#    192.0.2.2): the bench zone unsigned and signed, and a BIG-record zone
#    unsigned and signed, all running at once. Each trial renames "down"
#    (then "up") into one server's health file and asks it back to back
#    over UDP (a python loop on CLIENT_CPU; DO set for the signed ones,
#    whose answer counts only with its RRSIG) until it answers the other
#    tier; the servers take turns. After the trials delv validates each
#    signed server's route answer and an NXDOMAIN against its DS.
# 3. Load: `veer check --config` on a BIG-record zone unsigned and signed
#    under /usr/bin/time -v (wall, CPU, peak RSS), then `veer serve` on it:
#    start -> the zone's last name answered (with its RRSIG when signed),
#    VmRSS and VmHWM (/proc/PID/status) one second later.
# The servers sign with one ECDSAP256SHA256 CSK made by `veer dnssec
# keygen` in each run's directory. Raw numbers stay in
# $BENCH_WORK/dnssec/<time>/ (and part 1's in $BENCH_WORK/runs/<time>/).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

PARTS=${PARTS:-"1 2 3"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SERVERS=${SERVERS:-"veer-edns veer-dnssec veer-dnssec-nodo veer-routed-edns veer-routed-dnssec"}
SETS=${SETS:-"mix dyn"}
TRIALS=${TRIALS:-20}
BIG=${BIG:-100000}
LOAD_RUNS=${LOAD_RUNS:-3}
while [ $# -gt 0 ]; do
  case "$1" in
    -p) PARTS=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -l) DURATION=$2; shift 2 ;;
    -m) SETS=$2; shift 2 ;;
    -n) TRIALS=$2; shift 2 ;;
    -b) BIG=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "dnssec.sh: unknown argument $1 (see bench/dnssec.sh -h)" >&2; exit 2 ;;
  esac
done
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
for c in dnsperf dig delv taskset python3 cargo; do
  command -v "$c" >/dev/null || { echo "dnssec.sh: $c missing: run bench/setup.sh" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "dnssec.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

t_start=$(date +%s)
OUT=$BENCH_WORK/dnssec/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
HELPER=$BENCH_ROOT/bench/dnssec.py
VEER_BUILT=$(bench_veer)
VEER=$OUT/veer
cp "$VEER_BUILT" "$VEER"  # private: run.sh copies its own over bench/bin
bench_data

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel $(uname -r); $(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "veer: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "parts: $PARTS; part 1: $ROUNDS rounds x ${DURATION}s, rows $SERVERS, sets $SETS;" \
    "part 2: $TRIALS trials each way; large zone: $BIG records; part 3: $LOAD_RUNS runs;" \
    "servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt"

if part 1; then
  echo
  echo "1. query load (bench/run.sh)"
  ROUNDS=$ROUNDS DURATION=$DURATION SERVERS=$SERVERS SETS=$SETS \
    "$BENCH_ROOT/bench/run.sh" 2>&1 | tee "$OUT/run.log"
  RUN_DIR=$(sed -n 's/.*raw numbers in //p' "$OUT/run.log" | tail -1)
  [ -n "$RUN_DIR" ] && [ -f "$RUN_DIR/runs.tsv" ] || { echo "dnssec.sh: bench/run.sh failed" >&2; exit 1; }
  cp "$RUN_DIR/table.md" "$OUT/run-table.md"
  python3 "$HELPER" ratios "$RUN_DIR/runs.tsv" "$HZ" > "$OUT/ratios.md"
fi

if part 2; then
  echo
  echo "2. health transition -> new answer"
  mkdir -p "$OUT/transition"
  taskset -c "$CLIENT_CPU" python3 "$HELPER" transition "$OUT/transition" "$VEER" "$SERVER_CPU" \
    "$TRIALS" "$DATA/bench.test.zone" "$BIG"
fi

if part 3; then
  [ "$BIG" -gt 0 ] || BIG=100000
  echo
  echo "3. loading a $BIG-record zone"
  mkdir -p "$OUT/load"
  taskset -c "$CLIENT_CPU" python3 "$HELPER" load "$OUT/load" "$VEER" "$SERVER_CPU" "$LOAD_RUNS" "$BIG"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo
{
  if [ -f "$OUT/run-table.md" ]; then
    echo "### bench/run.sh table"
    echo
    cat "$OUT/run-table.md"
    echo
  fi
  python3 "$HELPER" report "$OUT"
} | tee "$OUT/report.md"
echo
echo "total time $(($(date +%s) - t_start)) s; raw numbers in $OUT"
