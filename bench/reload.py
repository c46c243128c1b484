#!/usr/bin/env python3
"""Reload latency and query latency during reloads (issue 5).

    bench/reload.py [--edits 20] [--records 10000] [--seconds 8] [--skip-build]

One veer (dist build, pinned to CPU 0) serves a zone of N records. A load
thread (pinned with the script to CPU 1) queries it in a closed loop and
records every query's latency. Phase 1 runs without reloads; phase 2 saves
the zone file (write + rename, as editors do) --edits times, each time with
a new address for www, and measures the time from the rename to the first
answer carrying the new address (a second client polls every ~1 ms). The
watcher's debounce (100 ms) is part of that figure by design.

Prints reload latency min/median/max and p50/p99 query latency without and
with reloads, from the same run.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veerbench as vb  # noqa: E402


def percentile(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


def write_zone(path, records, serial, www):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(vb.ZONE_TEMPLATE.format(origin="reload.test.").replace(" 1 7200", f" {serial} 7200"))
        f.write(f"www IN A {www}\n")
        for i in range(records):
            f.write(f"h{i} IN A 198.18.{i // 256 % 256}.{i % 256}\n")
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the no-reload phase")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {1})
    except OSError:
        pass
    binary = vb.build_veer(args.skip_build)
    work = tempfile.mkdtemp(prefix="veer-reload-")
    zone = os.path.join(work, "reload.test.zone")
    write_zone(zone, args.records, 1, "192.0.2.0")
    config = os.path.join(work, "veer.toml")
    with open(config, "w") as f:
        f.write('[server]\nlisten = ["127.0.0.1:0"]\nworkers = 1\nudp_sockets = 1\n'
                '[rrl]\nresponses_per_second = 0\n'
                '[[zone]]\norigin = "reload.test."\nfile = "reload.test.zone"\n')
    veer = vb.Veer(binary, config, cpus="0")
    try:
        server = veer.udp_addr()
        print(f"command: {' '.join(sys.argv)}")
        print(f"zone: {args.records} records + www; veer pinned to CPU 0, clients on CPU 1")

        phase = {"name": "warmup"}
        lat = {"baseline": [], "reloading": []}
        lost = {"baseline": 0, "reloading": 0}
        stop = threading.Event()

        def load():
            c = vb.DnsClient(server, timeout=1.0)
            i = 0
            while not stop.is_set():
                i += 1
                t0 = time.perf_counter()
                r = c.query(f"h{i % args.records}.reload.test")
                dt = time.perf_counter() - t0
                p = phase["name"]
                if p in lat:
                    if r is None:
                        lost[p] += 1
                    else:
                        lat[p].append(dt)

        t = threading.Thread(target=load, daemon=True)
        t.start()
        time.sleep(1.0)
        phase["name"] = "baseline"
        time.sleep(args.seconds)
        phase["name"] = "reloading"
        probe = vb.DnsClient(server, timeout=1.0)
        reload_ms = []
        for e in range(1, args.edits + 1):
            www = f"192.0.2.{e}"
            t0 = time.monotonic()
            write_zone(zone, args.records, 1 + e, www)
            while True:
                r = probe.query("www.reload.test")
                if r and r[1] == [www]:
                    reload_ms.append((time.monotonic() - t0) * 1000)
                    break
                if time.monotonic() - t0 > 10:
                    veer.dump_log()
                    raise SystemExit(f"edit {e}: new answer not served within 10 s")
                time.sleep(0.001)
            time.sleep(0.2)
        phase["name"] = "done"
        stop.set()
        t.join()
    finally:
        # Stopped by PID whatever happened, and the scratch files removed.
        veer.stop()
        shutil.rmtree(work, ignore_errors=True)

    lo, med, hi = vb.stats(reload_ms)
    print(f"reload latency (zone file saved -> new answer), {len(reload_ms)} edits: "
          f"min {lo:.0f} ms, median {med:.0f} ms, max {hi:.0f} ms")
    for p in ("baseline", "reloading"):
        v = lat[p]
        print(f"query latency {p:9}: {len(v)} queries, lost {lost[p]}, "
              f"p50 {percentile(v, 0.5) * 1e6:.0f} us, p99 {percentile(v, 0.99) * 1e6:.0f} us, "
              f"max {max(v) * 1e6:.0f} us")
    b99, r99 = percentile(lat["baseline"], 0.99), percentile(lat["reloading"], 0.99)
    print(f"p99 during reloads / p99 without: {r99 / b99:.2f}")


if __name__ == "__main__":
    main()
