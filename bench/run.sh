#!/usr/bin/env bash
# Side-by-side benchmark: veer against gdnsd and NSD (and any other anchor of
# ../shared/bench) on the same zone and query sets, in one run, with the
# ratios veer / anchor of "QPS per server core" printed at the end.
#
#   bench/run.sh                    # 1 round x 5 s: mix, nx, wild, dyn
#   bench/run.sh -r 3 -l 10         # the anchors' settings (ANCHORS.md)
#   BENCH_SERVERS="gdnsd veer" bench/run.sh
#
# Rows:
#   veer         the static zone (dyn.bench.test is a plain A record)
#   veer-routed  dyn.bench.test is a failover route whose primary is
#                health-checked over HTTP against the harness's health
#                endpoint (the counterpart of gdnsd-dyna)
#   veer-weighted, veer-geo  dyn.bench.test as a weighted or a geo route
#                (bench/veer-row.sh); compare their dyn QPS with veer's dyn.
#                The harness's dnsperf sends no ECS, so geo locates the
#                source address (the ECS parse and echo are not measured).
# Query sets: mix (the anchors' mix), nx (100% NXDOMAIN), wild (100% wildcard
# A), dyn (100% dyn.bench.test A). Needs ../shared/bench/setup.sh to have run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${BENCH_SHARED:-$ROOT/../shared/bench}
# shellcheck source=/dev/null
source "$SHARED/config.sh"

cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
VEER="$ROOT/target/release/veer"

# The wildcard query set (the harness generates mix, dyn and nx).
python3 "$SHARED/gen_data.py" "$DATA" "$HEALTH_PORT"
python3 - "$DATA/queries-wild.txt" <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "w") as f:
    f.write("".join(f"w{rng.randrange(1_000_000)}.wild.bench.test A\n" for _ in range(10000)))
PY

# Each row writes its config into its working dir ($DIR) and runs veer with
# one worker on the pinned CPU, like the anchors.
common='printf "[server]\nlisten = [\"127.0.0.1:%s\"]\nworkers = 1\nudp_sockets = 1\n[[zone]]\norigin = \"bench.test.\"\nfile = \"zone\"\n" $PORT > veer.toml'
static="$common && cp \$ZONE zone && RUST_LOG=warn exec $VEER serve --config veer.toml"
# The same with hickory-server's own UDP loop (udp_path = "hickory"), the
# baseline of the batched UDP path.
hickory_udp="$common && sed -i 's/^udp_sockets = 1/udp_sockets = 2\nudp_path = \"hickory\"/' veer.toml && cp \$ZONE zone && RUST_LOG=warn exec $VEER serve --config veer.toml"
routed="$common && grep -v '^dyn' \$ZONE > zone && printf '[check.web]\nhttp = \"http://127.0.0.1:%s/\"\ninterval = \"5s\"\ntimeout = \"2s\"\n[[route]]\nname = \"dyn.bench.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\nmembers = [ { tier = 1, value = \"127.0.0.1\", check = \"web\" }, { tier = 2, value = \"192.0.2.53\" } ]\n' \$HEALTH_PORT >> veer.toml && RUST_LOG=warn exec $VEER serve --config veer.toml"
export BENCH_EXTRA_SERVERS="veer;mix dyn;static;$static
veer-routed;dyn;static;$routed
veer-weighted;dyn;static;exec $ROOT/bench/veer-row.sh weighted $VEER \$PORT \$ZONE
veer-geo;dyn;static;exec $ROOT/bench/veer-row.sh geo $VEER \$PORT \$ZONE
veer-hickory-udp;mix;static;$hickory_udp"

OUT="${BENCH_OUT:-$SCRATCH/results/veer-$(date +%Y%m%d-%H%M%S)}"
SERVERS=${BENCH_SERVERS:-"gdnsd gdnsd-dyna nsd veer veer-routed veer-weighted veer-geo"}
# Rows run every query set they can answer: static rows mix/nx/wild/dyn,
# routed rows dyn (plus the anchors' own sets).
"$SHARED/run.sh" -s "$SERVERS" -M "mix nx wild dyn" -r 1 -l 5 -o "$OUT" "$@"

python3 - "$OUT/runs.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
per = {}
for r in rows:
    try:
        q, c = float(r["qps"]), float(r["srv_cpu_pct"])
    except ValueError:
        continue
    if c > 0:
        per.setdefault((r["server"], r["qset"]), []).append(q / (c / 100))
med = {k: statistics.median(v) for k, v in per.items()}
print("\nQPS per server core, veer / anchor (same run):")
if ("veer", "dyn") in med:
    for ours in ("veer-weighted", "veer-geo"):
        if (ours, "dyn") in med:
            print(f"  {ours} dyn / veer dyn (static): {med[(ours, 'dyn')] / med[('veer', 'dyn')]:.2f}x")
for qset in ("mix", "nx", "wild", "dyn"):
    for ours in ("veer", "veer-routed", "veer-weighted", "veer-geo", "veer-hickory-udp"):
        if (ours, qset) not in med:
            continue
        parts = [f"{ours} {qset}: {med[(ours, qset)]:,.0f}/core"]
        for anchor in ("gdnsd", "gdnsd-dyna", "nsd", "knot", "veer-hickory-udp"):
            if anchor == ours:
                continue
            if (anchor, qset) in med:
                parts.append(f"{med[(ours, qset)] / med[(anchor, qset)]:.2f}x {anchor}")
        print("  " + ", ".join(parts))
PY
