#!/usr/bin/env bash
# Routed answers against static ones, one run, same machine state:
# dnsperf with 100% "dyn.bench.test A" against veer where dyn is
#   static    a plain A record in the zone file
#   weighted  a weighted route (bench/veer-row.sh weighted)
#   geo-ecs   a geo route, every query carrying EDNS Client Subnet
#             198.51.100.0/24, located by a networks map (198.51.100.0/24 is DE)
# Rounds are interleaved; veer runs pinned to CPU 0, dnsperf to CPU 1.
# Prints QPS per server core (QPS / server CPU share) per row and the ratio
# of each routed row to static.
#
#   bench/routed.sh [ROUNDS] [SECONDS]     (default 3 rounds x 5 s)
#
# Needs dnsperf and dig (bench/setup.sh installs them); the zone and the
# queries come from bench/gen-data.py, the CPUs from bench/lib.sh.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
ROOT=$BENCH_ROOT
ROUNDS=${1:-3} SECS=${2:-5}
VEER=$(bench_veer)
bench_data
ZONE="$DATA/bench.test.zone"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(free_port)
# ECS option (code 8): family 1, source /24, scope 0, 198.51.100.
ECS="8:00011800c63364"

start() {  # KIND -> starts veer in $WORK/KIND, sets PID
  local dir="$WORK/$1"; rm -rf "$dir"; mkdir -p "$dir"
  case "$1" in
    static)
      (cd "$dir" && cp "$ZONE" zone && printf '[server]\nlisten = ["127.0.0.1:%s"]\nworkers = 1\nudp_sockets = 1\n[rrl]\nresponses_per_second = 0\n[[zone]]\norigin = "bench.test."\nfile = "zone"\n' $PORT > veer.toml)
      ;;
    weighted) (cd "$dir" && "$ROOT/bench/veer-row.sh" weighted "$VEER" $PORT "$ZONE" --config-only) ;;
    geo-ecs)
      (cd "$dir" && "$ROOT/bench/veer-row.sh" geo "$VEER" $PORT "$ZONE" --config-only && echo "198.51.100.0/24 EU DE" >> networks.txt)
      ;;
  esac
  (cd "$dir" && RUST_LOG=warn exec taskset -c "$SERVER_CPU" "$VEER" serve --config veer.toml > log 2>&1) &
  PID=$!
  for _ in $(seq 1 100); do
    dig @127.0.0.1 -p $PORT dyn.bench.test +short +time=1 +tries=1 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "veer ($1) did not start:" >&2; cat "$dir/log" >&2; exit 1
}

ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}'; }
declare -A SUM
for r in $(seq 1 "$ROUNDS"); do
  for kind in static weighted geo-ecs; do
    start "$kind"
    opts=(); [ "$kind" = geo-ecs ] && opts=(-E "$ECS")
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p $PORT -d "$DATA/queries-dyn.txt" -l 1 -c 4 -q 64 "${opts[@]}" >/dev/null 2>&1 || true
    sub=""; [ "$kind" = geo-ecs ] && sub="+subnet=198.51.100.0/24"
    check=$(dig @127.0.0.1 -p $PORT dyn.bench.test +short $sub 2>/dev/null | head -1)
    t0=$(ticks $PID); s0=$(date +%s.%N)
    out=$(taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p $PORT -d "$DATA/queries-dyn.txt" -l "$SECS" -c 4 -q 64 "${opts[@]}" 2>&1)
    s1=$(date +%s.%N); t1=$(ticks $PID)
    kill $PID; wait $PID 2>/dev/null || true
    qps=$(echo "$out" | awk '/Queries per second:/{print $4}')
    lost=$(echo "$out" | awk '/Queries lost:/{print $3}')
    codes=$(echo "$out" | grep -m1 'Response codes:' | cut -d: -f2- | tr -d ' ')
    cpu=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$HZ" 'BEGIN{printf "%.3f", (b-a)/hz/(e-s)}')
    per=$(awk -v q="$qps" -v c="$cpu" 'BEGIN{printf "%.0f", q/c}')
    printf 'round %s %-9s qps=%-9.0f server_cpu=%s per_core=%s lost=%s rcodes=%s answer=%s\n' "$r" "$kind" "$qps" "$cpu" "$per" "$lost" "$codes" "$check"
    SUM[$kind]="${SUM[$kind]:-} $per"
  done
done
med() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
s=$(med "${SUM[static]}")
echo "median QPS per server core: static $s"
for kind in weighted geo-ecs; do
  m=$(med "${SUM[$kind]}")
  awk -v k="$kind" -v m="$m" -v s="$s" 'BEGIN{printf "  %-9s %s (%.2fx static)\n", k, m, m/s}'
done
echo "command: bench/routed.sh $ROUNDS $SECS"
