#!/usr/bin/env python3
"""CPU used by veer's prober: N http checks at one interval (issue 3, "Done
when": 1,000 checks at 1s, target under 10% of one core).

Starts asyncio HTTP/1.1 keep-alive backends on 127.0.0.1 (a few ports, one
path per check: /hc/0 .. /hc/N-1, so no two checks share a probe), writes a
veer config with N `[check.cNNNN]` http checks and N failover routes
(rNNNN.cpu.test. A: tier 1 guarded by check cNNNN, tier 2 unchecked), runs
veer, waits until every check is up plus a warm-up, then measures over the
window:
  - veer's CPU: utime+stime from /proc/PID/stat (all threads), % of one core
  - the probe requests the backends served per second, the distinct paths
    hit, and the new TCP connections per second (pool reuse)
By default this script (the backends) is pinned to the last CPU so that the
backends cannot take more than that core from veer; veer runs on all CPUs
with its default worker count (--veer-cpus 0 pins it to one core, which
gives it a single tokio worker).

  bench/probe-cpu.py                    # 1000 checks, 1s, 5 s warm-up, 30 s window
  bench/probe-cpu.py -n 2000 --window 60
  bench/probe-cpu.py --no-pin --no-build
"""

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veerbench as vb  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


class Counters:
    def __init__(self):
        self.requests = 0
        self.connections = 0
        self.paths = {}


class Backend(asyncio.Protocol):
    def __init__(self, counters):
        self.c = counters
        self.buf = b""

    def connection_made(self, transport):
        self.t = transport
        self.c.connections += 1

    def data_received(self, data):
        self.buf += data
        out = []
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                break
            head, self.buf = self.buf[:i], self.buf[i + 4:]
            line = head.split(b"\r\n", 1)[0].split(b" ")
            path = line[1] if len(line) > 1 else b""
            self.c.requests += 1
            self.c.paths[path] = self.c.paths.get(path, 0) + 1
            out.append(RESPONSE)
        if out:
            self.t.write(b"".join(out))


def snapshot(veer, c):
    own = os.times()
    return (time.monotonic(), veer.cpu_ticks(), c.requests, c.connections, dict(c.paths),
            own.user + own.system)


async def run(args, cmd):
    ncpu = os.cpu_count() or 1
    cpus = sorted(os.sched_getaffinity(0))
    veer_cpus = None
    notes = []
    if args.pin and len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[-1]})
        notes.append(f"backends pinned to CPU {cpus[-1]}")
    else:
        notes.append("backends not pinned")
    if args.veer_cpus:
        veer_cpus = args.veer_cpus
        notes.append(f"veer pinned to CPU {veer_cpus}")
    else:
        # explicit, or veer would inherit this process's pinning
        veer_cpus = ",".join(str(c) for c in cpus)
        notes.append("veer on all CPUs")
    pin_note = ", ".join(notes)

    counters = Counters()
    loop = asyncio.get_running_loop()
    servers, ports = [], []
    for _ in range(args.ports):
        srv = await loop.create_server(lambda: Backend(counters), "127.0.0.1", 0, backlog=1024)
        servers.append(srv)
        ports.append(srv.sockets[0].getsockname()[1])

    tmp = tempfile.mkdtemp(prefix="veer-probecpu-")
    vb.write_zone(os.path.join(tmp, "cpu.test.zone"), "cpu.test.")
    parts = [f"""# written by bench/probe-cpu.py
[server]
listen = ["127.0.0.1:0"]
state_dir = "state"   # required: without it veer's controller stops at once

[rrl]
responses_per_second = 0

[[zone]]
origin = "cpu.test."
file = "cpu.test.zone"
"""]
    for i in range(args.checks):
        parts.append(f"""
[check.c{i:04d}]
http = "http://127.0.0.1:{ports[i % len(ports)]}/hc/{i}"
interval = "{args.interval}"
""")
    if args.routes:
        for i in range(args.checks):
            parts.append(f"""
[[route]]
name = "r{i:04d}.cpu.test."
type = "A"
ttl = 30
policy = "failover"
members = [ {{ tier = 1, value = "10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", check = "c{i:04d}" }}, {{ tier = 2, value = "192.0.2.1" }} ]
""")
    cfg = os.path.join(tmp, "veer.toml")
    with open(cfg, "w") as f:
        f.write("".join(parts))

    extra = ["--workers", str(args.workers)] if args.workers else []
    t_start = time.monotonic()
    veer = vb.Veer(args.veer, cfg, cpus=veer_cpus, extra=extra)
    try:
        server = await loop.run_in_executor(None, veer.udp_addr, 60)
        t_listen = time.monotonic()

        def ups():
            with veer.cond:
                return sum(1 for t in veer.transitions if t[2] == "unknown" and t[3] == "up")

        # Every check up (first probe done), then the warm-up.
        deadline = time.monotonic() + 30
        while ups() < args.checks and time.monotonic() < deadline and veer.proc.poll() is None:
            await asyncio.sleep(0.1)
        t_all_up = time.monotonic() - t_listen
        n_up = ups()
        if n_up < args.checks:
            print(f"WARNING: only {n_up}/{args.checks} checks reported up within 30 s")
        await asyncio.sleep(args.warmup)

        probe = vb.DnsClient(server).query("r0000.cpu.test.")
        t0 = snapshot(veer, counters)
        slices = []
        prev = t0
        end = t0[0] + args.window
        while time.monotonic() < end and veer.proc.poll() is None:
            await asyncio.sleep(min(5.0, max(0.0, end - time.monotonic())))
            cur = snapshot(veer, counters)
            slices.append((cur[1] - prev[1]) / os.sysconf("SC_CLK_TCK") / (cur[0] - prev[0]) * 100)
            prev = cur
        t1 = prev
        if veer.proc.poll() is not None:
            veer.dump_log()
            raise SystemExit("veer exited during the measurement")
        rss = veer.rss_kib()
        threads = veer.threads()
    finally:
        veer.stop()
        for s in servers:
            s.close()
        if args.log:
            with veer.cond, open(args.log, "w") as f:
                f.writelines(f"{t - t_start:10.3f} {line}\n" for t, line in veer.lines)

    dt = t1[0] - t0[0]
    cpu = (t1[1] - t0[1]) / os.sysconf("SC_CLK_TCK") / dt * 100
    rps = (t1[2] - t0[2]) / dt
    conns = (t1[3] - t0[3]) / dt
    per_path = [t1[4].get(p, 0) - t0[4].get(p, 0) for p in (f"/hc/{i}".encode() for i in range(args.checks))]
    hit = sum(1 for n in per_path if n > 0)
    p_lo, p_med, p_hi = vb.stats(per_path)
    own_cpu = (t1[5] - t0[5]) / dt * 100
    per_probe_us = (cpu / 100) / rps * 1e6 if rps else float("nan")
    with veer.cond:
        downs = [t for t in veer.transitions if t[3] == "down"]
    print(f"veer prober CPU: {args.checks} http checks at interval {args.interval}"
          f"{f', {args.checks} failover routes' if args.routes else ''}, {args.ports} backend ports, {pin_note} ({ncpu} CPUs)")
    print(f"  all checks up {t_all_up:.1f} s after listen ({n_up} 'unknown -> up' lines); warm-up {args.warmup:g} s; window {dt:.1f} s")
    print(f"  veer CPU (utime+stime):  {cpu:.2f} % of one core   (5 s slices: {', '.join(f'{s:.1f}' for s in slices)})")
    print(f"  probes served:           {rps:.1f} req/s   (expected ~{args.checks / vb_interval(args.interval):.0f}/s; "
          f"{hit}/{args.checks} distinct paths hit in the window)")
    print(f"  requests per path:       min {p_lo} median {p_med:g} max {p_hi} over {dt:.1f} s "
          f"(expected ~{dt / vb_interval(args.interval):.0f})")
    print(f"  new TCP connections:     {conns:.1f} /s")
    print(f"  backends' own CPU:       {own_cpu:.1f} % of one core (this script)")
    print(f"  CPU per probe:           {per_probe_us:.1f} us")
    print(f"  veer RSS {rss / 1024:.1f} MiB, {threads} threads; down transitions: {len(downs)}; "
          f"r0000.cpu.test. A -> {probe[1] if probe else 'no answer'}")
    if downs:
        reasons = {}
        for t in downs:
            r = t[4].split(": ", 1)[-1]
            reasons[r] = reasons.get(r, 0) + 1
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        print("  down reasons: " + "; ".join(f"{n}x {r}" for r, n in top))
    target = "PASS" if cpu < 10 else "FAIL"
    print(f"  target < 10% of one core: {target}")
    print(f"command: {cmd}")


def vb_interval(s):
    s = s.strip()
    if s.endswith("ms"):
        return float(s[:-2]) / 1000
    if s.endswith("s"):
        return float(s[:-1])
    return float(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--checks", type=int, default=1000)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--ports", type=int, default=4, help="backend listening ports")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after every check is up")
    ap.add_argument("--window", type=float, default=30.0, help="measurement seconds")
    ap.add_argument("--workers", type=int, default=None, help="veer --workers")
    ap.add_argument("--no-routes", dest="routes", action="store_false", help="checks only, no routes")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the backends to the last CPU")
    ap.add_argument("--veer-cpus", default=None, help="pin veer with taskset -c LIST (e.g. 0; one CPU = one tokio worker)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--log", help="write veer's log here (monotonic seconds since start first)")
    args = ap.parse_args()
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], vb.ROOT)] + sys.argv[1:])
    args.veer = vb.build_veer(args.no_build)
    asyncio.run(run(args, cmd))


if __name__ == "__main__":
    main()
