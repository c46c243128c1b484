# Sourced by bench/setup.sh, bench/run.sh and bench/routed.sh (not run).
# Where the benchmark keeps its files and which CPU does what; every value
# can be set from the environment.
#
#   BENCH_WORK   scratch: data, per-run working dirs, results, private
#                binaries (default target/bench, so git and cargo clean
#                already know it)
#   BENCH_DATA   zone + query files (default $BENCH_WORK/data)
#   SERVER_CPU   CPU the server under test is pinned to (default 0)
#   CLIENT_CPU   CPU dnsperf (and any helper) is pinned to (default 1)

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_WORK=${BENCH_WORK:-$BENCH_ROOT/target/bench}
DATA=${BENCH_DATA:-$BENCH_WORK/data}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
HZ=$(getconf CLK_TCK)
# The daemons live in /usr/sbin, not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin

# Writes the zone and the query sets into $DATA (deterministic, fast).
bench_data() {
  python3 "$BENCH_ROOT/bench/gen-data.py" "$DATA"
}

# Builds veer in the profile operators install (`dist`; VEER_PROFILE=release
# for the quicker build) and prints the path of a private copy of the binary,
# so that a rebuild of target/ during a run cannot swap it mid-measurement.
bench_veer() {
  local profile=${VEER_PROFILE:-dist}
  cargo build --profile "$profile" --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
  mkdir -p "$BENCH_WORK/bin"
  cp "${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/$profile/veer" "$BENCH_WORK/bin/veer"
  echo "$BENCH_WORK/bin/veer"
}

# Builds the do-nothing responder (bench/echo, its own cargo package) and
# prints the path of its binary.
bench_echo() {
  CARGO_TARGET_DIR="$BENCH_ROOT/target/bench-echo" \
    cargo build --release --manifest-path "$BENCH_ROOT/bench/echo/Cargo.toml" >&2
  echo "$BENCH_ROOT/target/bench-echo/release/echo"
}

# Prints a loopback port that is free for both UDP and TCP right now.
free_port() {
  python3 - <<'PY'
import socket
for _ in range(200):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        t.close()
        u.close()
    print(port)
    break
else:
    raise SystemExit("no free loopback port")
PY
}

# Process trees, for benchmarks that start servers (run.sh, xfr.sh).
tree() {  # PID and its descendants
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      keep[root] = 1
      do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
      for (p in keep) print p
    }'
}
stop() {  # TERM the process tree of PID, KILL what is left after 5 s
  local pids p i alive
  pids=$(tree "$1")
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 50); do
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  wait "$1" 2>/dev/null || true
}
