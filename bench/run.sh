#!/usr/bin/env bash
# Side-by-side benchmark: veer, gdnsd, NSD, Knot and a do-nothing responder
# on the same zone and queries, in one run; prints one markdown table.
#
#   bench/setup.sh && bench/run.sh          # 3 rounds x 10 s, query set mix
#   ROUNDS=5 DURATION=20 bench/run.sh
#   SERVERS="veer gdnsd" SETS="mix nx" bench/run.sh
#   bench/run.sh -r 1 -l 5 -s "veer echo" -m "mix dyn"     # knobs as flags
#
# Knobs (environment, or the flags in brackets):
#   ROUNDS    interleaved rounds [-r]                            default 3
#   DURATION  measured seconds per run [-l]                      default 10
#   WARMUP    seconds of unmeasured load before each run         default 2
#   SERVERS   rows, in this order [-s]      default "veer gdnsd nsd knot echo"
#             also: veer-routed veer-weighted veer-weighted1 veer-geo
#             veer-geo-ecs veer-hickory-udp
#             veer-edns veer-rrl veer-protect veer-dnssec veer-dnssec-nodo
#             veer-routed-edns veer-routed-dnssec
#             gdnsd-weighted1 gdnsd-geo-ecs
#   SETS      query sets [-m]: mix nx wild dyn                   default mix
#   PERF_SPLIT  1 [-p]: user/system split from perf samples     default 0
#   CLIENTS, OUTSTANDING   dnsperf -c and -q                     default 4, 64
#   QUIET_WAIT  seconds to wait at most, before each run, for the
#               box to be idle (shared machines)                 default 30
#   SERVER_CPU, CLIENT_CPU, BENCH_WORK: see bench/lib.sh
#
# Rows:
#   veer               target/dist/veer (built here), workers = 1,
#                      udp_sockets = 1
#   gdnsd              udp_threads 1, tcp_threads 1
#   nsd                server-count 1 (NSD also runs its idle main and xfrd
#                      processes: all are counted), rrl-ratelimit 0
#   knot               udp-workers 1, tcp-workers 1, background-workers 1,
#                      no modules (so no rrl)
#   echo               bench/echo, built here: sends each query back with QR
#                      set, recvmmsg/sendmmsg; the kernel's limit
#   veer-base          another veer binary ($VEER_BASE, e.g. main's dist
#                      build copied aside), run as the veer row: a
#                      baseline measured in the same run
#   veer-routed        dyn.bench.test is a failover route whose primary is
#                      checked over HTTP (a python http.server on CLIENT_CPU)
#   veer-weighted, veer-geo   dyn.bench.test as a weighted or a geo route
#                      (bench/veer-row.sh)
#   veer-weighted1     dyn.bench.test as a weighted route answering one
#                      member (pick = 1, the common shape)
#   veer-geo-ecs       veer-geo with dnsperf sending ECS 127.0.0.0/24 (as
#                      resolvers do): the client is located by its subnet
#                      (bench/veer-row.sh)
#   gdnsd-weighted1    dyn.bench.test as gdnsd's weighted plugin answering
#                      one member (multi = false, 3:1): veer-weighted1's
#                      baseline
#   gdnsd-geo-ecs      dyn.bench.test as gdnsd's geoip plugin with a nets
#                      map (127.0.0.0/8 -> 127.0.0.1, else 192.0.2.53),
#                      dnsperf sending veer-geo-ecs's ECS: its baseline
#   veer-hickory-udp   veer on hickory-server's UDP loop (udp_path = "hickory")
#   veer-edns          veer, both off, dnsperf sending EDNS (as resolvers
#                      do): the baseline for the next two
#   veer-rrl           veer with rate limiting on (a rate far above the
#                      load), cookies off, dnsperf sending EDNS
#   veer-protect       veer with rate limiting on (a rate far above the load)
#                      and cookies on, dnsperf sending a client cookie; the
#                      veer row has both off
#   veer-dnssec        the zone signed (dnssec = true, one ECDSAP256SHA256
#                      CSK made by `veer dnssec keygen` in the run's dir),
#                      dnsperf setting DO on every query (-D): answers
#                      carry RRSIGs (and NSEC proofs); against veer-edns
#   veer-dnssec-nodo   the zone signed, dnsperf sending EDNS without DO
#                      (-e): a signed zone's cost without the signatures
#   veer-routed-edns   veer-routed with dnsperf sending EDNS (-e): the
#                      baseline of the next one
#   veer-routed-dnssec veer-routed in a signed zone (the route's slots are
#                      signed as they are built), dnsperf sending DO (-D)
# The routed rows answer dyn only, so they run the dyn set and nothing else.
#
# Each run (one row, one query set, one round): start the server pinned to
# SERVER_CPU on a free loopback port, wait for its SOA, check its answers
# with dig, put load on it for WARMUP seconds, then measure DURATION seconds
# of dnsperf (pinned to CLIENT_CPU, -c 4 -q 64) while reading the CPU time
# (utime and stime in /proc/PID/stat, all threads) of every process of the
# server; stop it by PID. Rounds are interleaved, every other one in
# reverse: A B C, C B A, ...
# /proc splits utime from stime by sampling clock ticks, so at a few
# percent of user time the split moves by tens of percent between runs;
# with -p (or PERF_SPLIT=1) perf also samples the server's threads 10,000
# times a second (`perf record -e cpu-clock`) over the measured seconds,
# and the table splits the precise utime + stime by the share of samples
# taken in user space.
# The table holds medians over rounds (bench/table.py); the raw numbers stay
# in $BENCH_WORK/runs/<time>/.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SERVERS=${SERVERS:-"veer gdnsd nsd knot echo"}
SETS=${SETS:-mix}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-64}
QUIET_WAIT=${QUIET_WAIT:-30}
PERF_SPLIT=${PERF_SPLIT:-0}
while [ $# -gt 0 ]; do
  case "$1" in
    -r) ROUNDS=$2; shift 2 ;;
    -l) DURATION=$2; shift 2 ;;
    -s) SERVERS=$2; shift 2 ;;
    -m) SETS=$2; shift 2 ;;
    -p) PERF_SPLIT=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see bench/run.sh -h)" >&2; exit 2 ;;
  esac
done

for c in dnsperf dig taskset ps python3 cargo; do
  command -v "$c" >/dev/null || { echo "run.sh: $c missing: run bench/setup.sh" >&2; exit 1; }
done
if [ "$PERF_SPLIT" = 1 ] && ! command -v perf >/dev/null; then
  echo "run.sh: -p needs perf (linux-perf)" >&2
  exit 1
fi

# The share of perf's samples in $1 taken in user space (kernel addresses
# start with ffff), or nothing.
user_share() {
  perf script -i "$1" -F ip 2>/dev/null |
    awk '{ if (substr($1, 1, 4) == "ffff") k++; else u++ }
         END { if (u + k > 0) printf "%.4f", u / (u + k) }'
}

# Which query sets each row can answer.
sets_of() {
  case "$1" in
    veer-routed | veer-routed-edns | veer-routed-dnssec | veer-weighted | veer-weighted1 | \
      veer-geo | veer-geo-ecs | gdnsd-weighted1 | gdnsd-geo-ecs) echo dyn ;;
    veer | veer-base | veer-hickory-udp | veer-edns | veer-protect | veer-rrl | veer-dnssec | veer-dnssec-nodo | \
      gdnsd | nsd | knot | echo) echo "mix nx wild dyn" ;;
    *) echo "run.sh: unknown server $1" >&2; exit 2 ;;
  esac
}
JOBS=()
for s in $SERVERS; do
  sets_of "$s" >/dev/null || exit 2
  n=0
  for q in $SETS; do
    case " $(sets_of "$s") " in *" $q "*) JOBS+=("$s $q"); n=$((n + 1)) ;; esac
  done
  [ $n -gt 0 ] || echo "run.sh: $s answers only: $(sets_of "$s"); not in SETS=\"$SETS\", skipped" >&2
done
[ ${#JOBS[@]} -gt 0 ] || { echo "run.sh: nothing to run" >&2; exit 1; }

needs() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
for s in gdnsd nsd knot; do
  if { needs $s || { [ $s = gdnsd ] && { needs gdnsd-weighted1 || needs gdnsd-geo-ecs; }; }; } && ! command -v "$([ $s = knot ] && echo knotd || echo $s)" >/dev/null; then
    echo "run.sh: $s is not installed: run bench/setup.sh" >&2
    exit 1
  fi
done

t_start=$(date +%s)
case " $SERVERS " in *" veer"*) VEER=$(bench_veer) ;; esac
needs echo && ECHO=$(bench_echo)
bench_data
ZONE=$DATA/bench.test.zone
OUT=$BENCH_WORK/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
TSV=$OUT/runs.tsv
printf 'round\tserver\tset\tqps\tcompleted\tlost\twall_s\tuser_ticks\tsys_ticks\tother_cpu0_pct\tclient_cpu1_pct\trcodes\tcheck\tuser_share\n' > "$TSV"

# --------------------------------------------------------------- servers --
# Each start_* runs in the run's empty working directory (the cwd), writes
# its config there and execs the server in the foreground, pinned, on
# 127.0.0.1:$PORT, serving bench.test. from $ZONE.
pin() { exec taskset -c "$SERVER_CPU" "$@"; }

veer_conf() {
  cat > veer.toml <<EOF
[server]
listen = ["127.0.0.1:$PORT"]
workers = 1
udp_sockets = 1
$1
[rrl]
responses_per_second = ${2:-0}   # off: every benchmark but veer-protect's
[cookies]
enabled = ${3:-false}
[[zone]]
origin = "bench.test."
file = "zone"
EOF
}
start_veer() {
  veer_conf "" && cp "$ZONE" zone
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-base() {
  veer_conf "" && cp "$ZONE" zone
  RUST_LOG=warn pin "${VEER_BASE:?veer-base: set VEER_BASE to a veer binary}" serve --config veer.toml
}
start_veer-protect() {
  # Rate limiting on, at a rate far above the offered load (so it costs,
  # but never limits), and cookies on (dnsperf sends a client cookie).
  veer_conf "" 1000000 true && cp "$ZONE" zone
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-edns() {
  veer_conf "" && cp "$ZONE" zone
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-rrl() {
  # Rate limiting alone (cookies off), at a rate far above the load.
  veer_conf "" 1000000 false && cp "$ZONE" zone
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
# Signs the zone of the veer.toml veer_conf just wrote: dnssec = true on
# its [[zone]] (the last table there), keys in ./keys, one CSK made now.
veer_sign() {
  printf 'dnssec = true\n\n[dnssec]\nkey_dir = "keys"\n' >> veer.toml
  "$VEER" dnssec keygen --config veer.toml bench.test.
}
start_veer-dnssec() {
  veer_conf "" && veer_sign && cp "$ZONE" zone
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-dnssec-nodo() {
  start_veer-dnssec
}
start_veer-hickory-udp() {
  veer_conf 'udp_path = "hickory"' && cp "$ZONE" zone
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-routed() {
  veer_conf "" && routed_conf
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-routed-edns() {
  start_veer-routed
}
start_veer-routed-dnssec() {
  veer_conf "" && veer_sign && routed_conf
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
routed_conf() {  # dyn.bench.test A as a failover route checked over HTTP
  grep -v '^dyn ' "$ZONE" > zone
  cat >> veer.toml <<EOF

[check.web]
http = "http://127.0.0.1:$HEALTH_PORT/"
interval = "5s"
timeout = "2s"

[[route]]
name = "dyn.bench.test."
type = "A"
ttl = 30
policy = "failover"
members = [
  { tier = 1, value = "127.0.0.1", check = "web" },
  { tier = 2, value = "192.0.2.53" },
]
EOF
}
start_veer-weighted() {
  "$BENCH_ROOT/bench/veer-row.sh" weighted "$VEER" "$PORT" "$ZONE" --config-only
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-geo() {
  "$BENCH_ROOT/bench/veer-row.sh" geo "$VEER" "$PORT" "$ZONE" --config-only
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-weighted1() {
  "$BENCH_ROOT/bench/veer-row.sh" weighted1 "$VEER" "$PORT" "$ZONE" --config-only
  RUST_LOG=warn pin "$VEER" serve --config veer.toml
}
start_veer-geo-ecs() { start_veer-geo; }

# gdnsd; with arguments, the zone's dyn record is PLUGIN's DYNA RESOURCE:
#   start_gdnsd [PLUGIN RESOURCE PLUGIN-CONFIG]
start_gdnsd() {
  mkdir -p zones run state
  if [ $# -gt 0 ]; then
    { grep -v '^dyn' "$ZONE"; echo "dyn 30 DYNA $1!$2"; } > zones/bench.test
  else
    cp "$ZONE" zones/bench.test
  fi
  cat > config <<EOF
options => {
  listen => [ 127.0.0.1:$PORT ]
  udp_threads => 1
  tcp_threads => 1
  zones_rfc1035_threads => 1
  run_dir => "$PWD/run"
  state_dir => "$PWD/state"
}
${3:-}
EOF
  pin gdnsd -c "$PWD" start
}
start_gdnsd-weighted1() {
  start_gdnsd weighted w1 'plugins => { weighted => { w1 => {
  multi => false
  a1 => [ 127.0.0.1, 3 ]
  a2 => [ 127.0.0.2, 1 ]
} } }'
}
start_gdnsd-geo-ecs() {
  # A client outside the nets map gets the first datacenter: other.
  start_gdnsd geoip r1 'plugins => { geoip => {
  maps => { m1 => {
    datacenters => [ other, de ]
    nets => { 127.0.0.0/8 => [ de ] }
  } }
  resources => { r1 => {
    map => m1
    dcmap => { de => 127.0.0.1, other => 192.0.2.53 }
  } }
} }'
}

start_nsd() {
  # Debian builds NSD with response rate limiting on (200/s per source);
  # all our queries come from 127.0.0.1, so it must be off.
  cat > nsd.conf <<EOF
server:
  ip-address: 127.0.0.1@$PORT
  server-count: 1
  rrl-ratelimit: 0
  username: ""
  chroot: ""
  zonesdir: "$PWD"
  database: ""
  pidfile: "$PWD/nsd.pid"
  xfrdfile: "$PWD/xfrd.state"
  zonelistfile: "$PWD/zone.list"
  logfile: "$PWD/nsd.log"
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: bench.test.
  zonefile: "$ZONE"
EOF
  pin nsd -d -c "$PWD/nsd.conf"
}

start_knot() {
  # No module is configured: Knot's rrl is a module, so it is off.
  mkdir -p db
  cat > knot.conf <<EOF
server:
  rundir: "$PWD"
  listen: 127.0.0.1@$PORT
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: "$PWD/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$PWD"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: bench.test.
    file: "$ZONE"
EOF
  pin knotd -c "$PWD/knot.conf"
}

start_echo() {
  pin "$ECHO" "127.0.0.1:$PORT"
}

# --------------------------------------------------------------- helpers --
SERVER_PID=""  # the server running now, if any
HEALTH_PID=""  # the health endpoint of veer-routed, if any
cpu_ticks() {  # "utime stime" summed over the given PIDs (all their threads)
  local p
  for p in "$@"; do
    sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || echo "$p gone" >&2
  done | awk '{ u += $12; s += $13 } END { print u + 0, s + 0 }'
}
busy() {  # busy ticks of one CPU (/proc/stat: user nice system _ _ irq softirq steal)
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
cleanup() {
  [ -z "$SERVER_PID" ] || stop "$SERVER_PID"
  [ -z "$HEALTH_PID" ] || stop "$HEALTH_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most QUIET_WAIT seconds) until both CPUs are below 20% busy over
# one second: other people's work on a shared box would be measured too.
wait_quiet() {
  local t0=$SECONDS a0 a1 b0 b1
  while :; do
    a0=$(busy "$SERVER_CPU") b0=$(busy "$CLIENT_CPU")
    sleep 1
    a1=$(busy "$SERVER_CPU") b1=$(busy "$CLIENT_CPU")
    [ $(((a1 - a0) * 100 / HZ)) -lt 20 ] && [ $(((b1 - b0) * 100 / HZ)) -lt 20 ] && return 0
    if [ $((SECONDS - t0)) -ge "$QUIET_WAIT" ]; then
      echo "    (box still busy after ${QUIET_WAIT}s: CPU $SERVER_CPU $(((a1 - a0) * 100 / HZ))%," \
        "CPU $CLIENT_CPU $(((b1 - b0) * 100 / HZ))%; measuring anyway)"
      return 0
    fi
  done
}

ask() { dig @127.0.0.1 -p "$PORT" +norec +time=1 +tries=1 "$@" 2>/dev/null || true; }

# Prints "ok" (maybe with a note) or "FAIL:" and what was wrong.
check_answers() {
  local name=$1 fails="" note="" a
  if [ "$name" = echo ]; then
    a=$(ask +nocookie host1.bench.test A)
    grep -q 'flags: qr' <<< "$a" && grep -q 'QUERY: 1' <<< "$a" || fails+=" echo"
    [ -z "$fails" ] && echo ok || echo "FAIL:$fails"
    return
  fi
  a=$(ask +short dyn.bench.test A)
  case "$name" in
    veer-weighted1 | gdnsd-weighted1) grep -qxE '127\.0\.0\.[12]' <<< "$a" || fails+=" dyn" ;;
    *) grep -qx 127.0.0.1 <<< "$a" || fails+=" dyn" ;;
  esac
  # A signed zone's answers to DO carry an RRSIG.
  case "$name" in *-dnssec*)
    ask +dnssec dyn.bench.test A | grep -q 'RRSIG.*A 13 ' || fails+=" RRSIG" ;;
  esac
  case "$name" in veer-routed*| veer-weighted* | veer-geo* | gdnsd-*)
    [ -z "$fails" ] && echo ok || echo "FAIL:$fails"
    return ;;
  esac
  [ "$(ask +short host1.bench.test A)" = 198.18.0.1 ] || fails+=" A"
  [ "$(ask +short host1.bench.test AAAA)" = 2001:db8::1 ] || fails+=" AAAA"
  [ "$(ask +short x.wild.bench.test A)" = 198.19.0.1 ] || fails+=" wildcard"
  [ "$(ask +short bench.test MX | wc -l)" = 2 ] || fails+=" MX"
  ask nx1.bench.test A | grep -q 'status: NXDOMAIN' || fails+=" NXDOMAIN"
  # An in-zone CNAME: the target's A should follow it; gdnsd 3 sends the
  # CNAME alone (legal: the resolver chases it), noted in the table.
  a=$(ask +short www1.bench.test A)
  if ! grep -qx 198.18.0.1 <<< "$a"; then
    if [ "$a" = host1.bench.test. ]; then note=" (CNAME not chased)"; else fails+=" CNAME"; fi
  fi
  [ -z "$fails" ] && echo "ok$note" || echo "FAIL:$fails"
}

# The health endpoint the veer-routed rows check (only when one runs).
if needs veer-routed || needs veer-routed-edns || needs veer-routed-dnssec; then
  HEALTH_PORT=$(free_port)
  mkdir -p "$OUT/health" && echo ok > "$OUT/health/index.html"
  taskset -c "$CLIENT_CPU" python3 -m http.server "$HEALTH_PORT" --bind 127.0.0.1 \
    --directory "$OUT/health" > "$OUT/health.log" 2>&1 &
  HEALTH_PID=$!
fi

run_one() {
  local round=$1 name=$2 set=$3 dir pid check i pids t0 t1 c0 c1 u0 s0 u1 s1 a0 a1 b0 b1 out
  dir=$OUT/$name-$set-r$round
  mkdir -p "$dir"
  PORT=$(free_port)
  (cd "$dir" && "start_$name") > "$dir/log" 2>&1 &
  pid=$!
  SERVER_PID=$pid
  for i in $(seq 150); do
    case "$name" in
      echo) ask +nocookie bench.test SOA | grep -q 'flags: qr' && break ;;
      # the route answers 127.0.0.1 once its first check is up
      veer-routed*) ask +short dyn.bench.test A | grep -qx 127.0.0.1 && break ;;
      *) ask +short bench.test SOA | grep -q hostmaster && break ;;
    esac
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  check=$(check_answers "$name")
  if [[ $check == FAIL* ]]; then
    kill -0 "$pid" 2>/dev/null || check="FAIL: did not start"
    echo "  round $round $name $set: $check (log: $dir/log)"
    tail -5 "$dir/log" | sed 's/^/    | /'
    stop "$pid"
    SERVER_PID=""
    printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t%s\t\n' "$round" "$name" "$set" "$check" >> "$TSV"
    return
  fi
  wait_quiet
  # veer-protect's queries carry a client cookie (EDNS option 10);
  # veer-edns's, veer-rrl's, veer-dnssec-nodo's and veer-routed-edns's an
  # OPT record without options; the -dnssec rows' an OPT record with DO.
  extra=()
  case "$name" in
    veer-protect) extra=(-E 10:0102030405060708) ;;
    veer-geo-ecs | gdnsd-geo-ecs) extra=(-E 8:000118007f0000) ;;
    veer-edns | veer-rrl | veer-dnssec-nodo | veer-routed-edns) extra=(-e) ;;
    veer-dnssec | veer-routed-dnssec) extra=(-D) ;;
  esac
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$DATA/queries-$set.txt" \
    -c "$CLIENTS" -q "$OUTSTANDING" -l "$WARMUP" "${extra[@]}" > "$dir/warmup.txt" 2>&1 || true
  # Every process of the server (NSD runs three), read before and after.
  mapfile -t pids < <(tree "$pid")
  read -r u0 s0 < <(cpu_ticks "${pids[@]}")
  perf_pid=""
  if [ "$PERF_SPLIT" = 1 ]; then
    taskset -c "$CLIENT_CPU" perf record -q -e cpu-clock -F 10000 -o "$dir/perf.data" \
      -p "$(IFS=,; echo "${pids[*]}")" > "$dir/perf.log" 2>&1 &
    perf_pid=$!
    sleep 0.2
  fi
  a0=$(busy "$SERVER_CPU") b0=$(busy "$CLIENT_CPU") t0=$(date +%s.%N)
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$DATA/queries-$set.txt" \
    -c "$CLIENTS" -q "$OUTSTANDING" -l "$DURATION" "${extra[@]}" > "$dir/dnsperf.txt" 2>&1 || true
  t1=$(date +%s.%N) a1=$(busy "$SERVER_CPU") b1=$(busy "$CLIENT_CPU")
  read -r u1 s1 < <(cpu_ticks "${pids[@]}")
  share=""
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    share=$(user_share "$dir/perf.data")
    rm -f "$dir/perf.data"
  fi
  stop "$pid"
  SERVER_PID=""
  out=$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v a=$((a1 - a0)) -v b=$((b1 - b0)) \
    -v t0="$t0" -v t1="$t1" -v hz="$HZ" '
    /Queries completed:/ { done = $3 }
    /Queries lost:/ { lost = $3 }
    /Queries per second:/ { qps = $4 }
    /Response codes:/ { sub(/.*Response codes: */, ""); gsub(/ /, ""); codes = $0 }
    END {
      w = t1 - t0
      other = 100 * (a - u - s) / hz / w; if (other < 0) other = 0
      printf "%s\t%s\t%s\t%.3f\t%d\t%d\t%.1f\t%.1f\t%s\n", qps, done, lost, w, u, s, other, 100 * b / hz / w, codes
    }' "$dir/dnsperf.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$set" "$out" "$check" "$share" >> "$TSV"
  tail -1 "$TSV" | awk -F'\t' -v hz="$HZ" '{
    cpu = ($8 + $9) / hz / $7
    u = $8; s = $9
    if ($14 != "") { u = ($8 + $9) * $14; s = ($8 + $9) - u }
    printf "  round %s %-16s %-4s %8.0f qps  server %3.0f%%  %8.0f/core  user %.2f us/q  sys %.2f us/q%s  other on cpu0 %s%%  lost %s  %s  %s\n",
      $1, $2, $3, $4, 100 * cpu, (cpu > 0 ? $4 / cpu : 0), u / hz * 1e6 / $5, s / hz * 1e6 / $5,
      ($14 != "" ? " (perf split)" : ""), $10, $6, $12, $13 }'
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel $(uname -r); $(nproc) CPUs: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "veer: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  needs gdnsd && echo "gdnsd: $(gdnsd -V 2>&1 | grep -m1 -o 'gdnsd version [^ ]*')"
  needs nsd && echo "nsd: $(nsd -v 2>&1 | head -1)"
  needs knot && echo "knot: $(knotd -V 2>&1 | head -1)"
  echo "dnsperf: $(dnsperf -h 2>&1 | grep -m1 -o 'Version [0-9.]*'); -c $CLIENTS -q $OUTSTANDING, ${WARMUP}s warm-up + ${DURATION}s measured;" \
    "$ROUNDS rounds; server on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt"

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS"
  # Every other round in reverse (A B C, C B A, ...): a row's place in a
  # round must not favour it (two runs of one binary as veer and veer-base,
  # always first and second, differed by 9 % in median user time).
  order=("${JOBS[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((j = ${#JOBS[@]} - 1; j >= 0; j--)); do order+=("${JOBS[j]}"); done
  fi
  for job in "${order[@]}"; do
    # shellcheck disable=SC2086  # "name set"
    run_one "$round" $job
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo
python3 "$BENCH_ROOT/bench/table.py" "$TSV" "$HZ" | tee "$OUT/table.md"
echo
echo "total time $(($(date +%s) - t_start)) s; raw numbers in $OUT"
