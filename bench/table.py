#!/usr/bin/env python3
"""The table of bench/run.sh: medians over rounds of its runs.tsv.

  bench/table.py RUNS.TSV [CLK_TCK]

Per run (one server, one query set, one round):
  QPS                  dnsperf's queries per second
  server CPU           the server's CPU time (utime + stime of all its
                       processes and threads, /proc/PID/stat) over the
                       measured seconds, as a share of one core
  QPS per server core  QPS / that share: what one core of the server would
                       answer if the client were not the limit
  user, system us/q    the server's utime and stime over the queries
                       answered, in microseconds (with run.sh -p, their
                       sum split by the share of perf's samples taken in
                       user space)
Each column is the median of its per-run values; the ratios divide by
gdnsd's medians on the same query set: a veer-X row by gdnsd-X's when that
row ran (the same routing in gdnsd's plugin), else by plain gdnsd's.
"""

import csv
import os
import statistics
import sys


def per_run(r, hz):
    try:
        qps, done, wall = float(r["qps"]), int(r["completed"]), float(r["wall_s"])
        user, system = int(r["user_ticks"]) / hz, int(r["sys_ticks"]) / hz
    except (TypeError, ValueError):
        return None
    if r.get("user_share"):
        # run.sh -p: the split from perf's samples, not from clock ticks
        total = user + system
        user = total * float(r["user_share"])
        system = total - user
    if done == 0 or wall <= 0:
        return None
    share = (user + system) / wall
    return {
        "qps": qps,
        "cpu": share,
        "per_core": qps / share if share > 0 else float("nan"),
        "user_us": user * 1e6 / done,
        "sys_us": system * 1e6 / done,
        "lost": int(r["lost"] or 0),
        "sent": done + int(r["lost"] or 0),
        "other": float(r["other_cpu0_pct"] or 0),
    }


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: table.py RUNS.TSV [CLK_TCK]")
    hz = int(sys.argv[2]) if len(sys.argv) == 3 else os.sysconf("SC_CLK_TCK")
    with open(sys.argv[1]) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    groups, checks, order = {}, {}, []
    for r in rows:
        key = (r["server"], r["set"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        checks.setdefault(key, set()).add(r["check"])
        m = per_run(r, hz)
        if m is not None:
            groups[key].append(m)

    def med(key, col):
        vals = [m[col] for m in groups[key]]
        return statistics.median(vals) if vals else None

    sets = len({s for _, s in order}) > 1
    head = ["server"] + (["queries"] if sets else []) + [
        "QPS", "server CPU", "QPS per server core", "user µs/query", "system µs/query",
        "per core ÷ gdnsd", "user µs ÷ gdnsd", "rounds"]
    print("| " + " | ".join(head) + " |")
    print("|---" + ("|---" if sets else "") + "|---:" * (len(head) - 1 - sets) + "|")
    notes = []
    for key in order:
        server, qset = key
        name = server
        oddities = sorted(c for c in checks[key] if c != "ok")
        if any(c.startswith("ok ") for c in oddities):
            name += " " + oddities[0][3:].strip()
        if not groups[key]:
            cells = [name] + ([qset] if sets else []) + ["did not run"] + [""] * (len(head) - 2 - sets)
            print("| " + " | ".join(cells) + " |")
            notes.append(f"{server} {qset}: {', '.join(oddities)}")
            continue
        cands = [server.replace("veer-", "gdnsd-", 1)] if server.startswith("veer-") else []
        base = next(((c, qset) for c in cands + ["gdnsd"] if groups.get((c, qset))), None)

        def ratio(col):
            return f"{med(key, col) / med(base, col):.2f}" if base else ""

        cells = [name] + ([qset] if sets else []) + [
            f"{med(key, 'qps'):,.0f}",
            f"{100 * med(key, 'cpu'):.0f}%",
            f"{med(key, 'per_core'):,.0f}",
            f"{med(key, 'user_us'):.2f}",
            f"{med(key, 'sys_us'):.2f}",
            ratio("per_core"),
            ratio("user_us"),
            f"{len(groups[key])}",
        ]
        print("| " + " | ".join(cells) + " |")
        lost = sum(m["lost"] for m in groups[key])
        if lost:
            sent = sum(m["sent"] for m in groups[key])
            notes.append(f"{server} {qset}: {lost} of {sent} queries lost")
        failed = [c for c in oddities if c.startswith("FAIL")]
        if failed:
            notes.append(f"{server} {qset}: some rounds failed: {', '.join(failed)}")
    others = [m["other"] for g in groups.values() for m in g]
    if others:
        notes.append(f"other work on the server's CPU during the runs: median {statistics.median(others):.0f}%, "
                     f"max {max(others):.0f}% of the core")
    print()
    for n in notes:
        print(f"- {n}")


if __name__ == "__main__":
    main()
