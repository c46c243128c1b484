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
  - per probe: veer's user and system microseconds (utime and stime over
    the window divided by the requests the backends served)
Before veer, in the same run, the same measurement of a minimal loop
(bench/minprobe.rs, built with rustc -O: blocking connect, GET, read the
response, close; one thread, paced at the same rate against the same
backends) gives the floor; the summary shows veer's ratios to it (issue 18:
user <= 10 us per probe, total <= 1.2x the minimal loop). --also
LABEL=BINARY measures another veer build (say, the one before a change)
after this one, in the same run.
By default this script (the backends) is pinned to the last CPU so that the
backends cannot take more than that core from veer; veer runs on all CPUs
with its default worker count (--veer-cpus 0 pins it to one core, which
gives it a single tokio worker).

  bench/probe-cpu.py                    # 1000 checks, 1s, 5 s warm-up, 30 s window
  bench/probe-cpu.py -n 2000 --window 60
  bench/probe-cpu.py --no-pin --no-build
  bench/probe-cpu.py --also before=/tmp/veer-before --window 60
  bench/probe-cpu.py --also before=/tmp/veer-before --window 20 --rounds 3
  bench/probe-cpu.py --perf --window 20 --rounds 3   # user/system split from perf samples
  bench/probe-cpu.py --body ok          # checks with expect.body (the minimal loop reads the body too)
"""

import argparse
import asyncio
import json
import os
import shutil
import shlex
import subprocess
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


def snapshot(pid, c):
    own = os.times()
    return (time.monotonic(), vb.proc_times(pid), c.requests, c.connections, dict(c.paths),
            own.user + own.system)


class PerfSplit:
    """With --perf: `perf record -e cpu-clock -F 10000` on a process over
    the window. /proc splits utime from stime by sampling clock ticks (100
    a second), too few for a split at a few microseconds per probe; the
    share of perf's samples taken at user addresses splits the (precise)
    sum instead."""

    def __init__(self, args, pid, tag):
        self.proc, self.data = None, None
        if not args.perf:
            return
        self.data = os.path.join(tempfile.gettempdir(), f"probe-cpu-{os.getpid()}-{tag}.perf")
        self.proc = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000",
                                      "-o", self.data, "-p", str(pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)

    def share(self):
        """The share of samples in user space, or None."""
        if self.proc is None:
            return None
        self.proc.send_signal(2)
        self.proc.wait()
        out = subprocess.run(["perf", "script", "-i", self.data, "-F", "ip"],
                             capture_output=True, text=True).stdout.split()
        os.unlink(self.data)
        kernel = sum(1 for ip in out if ip.startswith("ffff"))
        return (len(out) - kernel) / len(out) if out else None


def window_usage(args, t0, t1, share=None):
    """CPU and probe counts between two snapshots (`share`: the user share
    of perf's samples, see PerfSplit)."""
    tck = os.sysconf("SC_CLK_TCK")
    dt = t1[0] - t0[0]
    user = (t1[1][0] - t0[1][0]) / tck
    system = (t1[1][1] - t0[1][1]) / tck
    if share is not None:
        user, system = (user + system) * share, (user + system) * (1 - share)
    served = t1[2] - t0[2]
    per_path = [t1[4].get(p, 0) - t0[4].get(p, 0) for p in (f"/hc/{i}".encode() for i in range(args.checks))]
    return {
        "dt": dt,
        "user": user,
        "system": system,
        "cpu": (user + system) / dt * 100,
        "served": served,
        "rps": served / dt,
        "conns": (t1[3] - t0[3]) / dt,
        "per_path": per_path,
        "own_cpu": (t1[5] - t0[5]) / dt * 100,
        "user_us": user / served * 1e6 if served else float("nan"),
        "system_us": system / served * 1e6 if served else float("nan"),
    }


def write_config(args, ports, tmp):
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
""" + (f"expect = {{ body = {json.dumps(args.body)} }}\n" if args.body else ""))
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
    return cfg


async def measure_minimal(args, counters, ports, cpus):
    """The minimal connect/GET/read/close loop (bench/minprobe.rs) at the
    same rate against the same backends, its CPU read from /proc."""
    interval_ms = int(vb_interval(args.interval) * 1000)
    argv = [args.minprobe, str(args.checks), str(interval_ms), str(args.warmup + args.window + 2),
            ",".join(str(p) for p in ports)]
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + argv
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    # taskset execs the program: the pid is minprobe's.
    await asyncio.sleep(args.warmup)
    perf = PerfSplit(args, proc.pid, "minimal")
    t0 = snapshot(proc.pid, counters)
    await asyncio.sleep(args.window)
    t1 = snapshot(proc.pid, counters)
    share = perf.share()
    out, _ = await proc.communicate()
    u = window_usage(args, t0, t1, share)
    req, fail = (int(x) for x in out.split())
    print(f"minimal loop (bench/minprobe.rs): {req} requests, {fail} failed over its whole run")
    print(f"  CPU (utime+stime):       {u['cpu']:.2f} % of one core; {u['rps']:.1f} req/s served; "
          f"{u['conns']:.1f} new connections/s")
    print(f"  per probe:               user {u['user_us']:.1f} us, system {u['system_us']:.1f} us"
          f"{'' if share is None else f' (perf split: {share:.1%} of samples in user space)'}")
    return u


async def measure_veer(args, binary, label, counters, cfg, veer_cpus, pin_note):
    loop = asyncio.get_running_loop()
    extra = ["--workers", str(args.workers)] if args.workers else []
    # Each run starts from no saved health: with the last run's state every
    # check would start up and no first probe would be seen.
    shutil.rmtree(os.path.join(os.path.dirname(cfg), "state"), ignore_errors=True)
    t_start = time.monotonic()
    veer = vb.Veer(binary, cfg, cpus=veer_cpus, extra=extra)
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
        perf = PerfSplit(args, veer.pid, "veer")
        t0 = snapshot(veer.pid, counters)
        slices = []
        prev = t0
        end = t0[0] + args.window
        while time.monotonic() < end and veer.proc.poll() is None:
            await asyncio.sleep(min(5.0, max(0.0, end - time.monotonic())))
            cur = snapshot(veer.pid, counters)
            slices.append((sum(cur[1]) - sum(prev[1])) / os.sysconf("SC_CLK_TCK") / (cur[0] - prev[0]) * 100)
            prev = cur
        t1 = prev
        share = perf.share()
        if veer.proc.poll() is not None:
            veer.dump_log()
            raise SystemExit("veer exited during the measurement")
        rss = veer.rss_kib()
        threads = veer.threads()
    finally:
        veer.stop()
        if args.log:
            with veer.cond, open(args.log, "w") as f:
                f.writelines(f"{t - t_start:10.3f} {line}\n" for t, line in veer.lines)

    u = window_usage(args, t0, t1, share)
    dt, cpu, rps = u["dt"], u["cpu"], u["rps"]
    hit = sum(1 for n in u["per_path"] if n > 0)
    p_lo, p_med, p_hi = vb.stats(u["per_path"])
    with veer.cond:
        downs = [t for t in veer.transitions if t[3] == "down"]
    print(f"veer ({label}): {args.checks} http checks at interval {args.interval}"
          f"{f', {args.checks} failover routes' if args.routes else ''}, {args.ports} backend ports, {pin_note}")
    print(f"  all checks up {t_all_up:.1f} s after listen ({n_up} 'unknown -> up' lines); warm-up {args.warmup:g} s; window {dt:.1f} s")
    print(f"  veer CPU (utime+stime):  {cpu:.2f} % of one core   (5 s slices: {', '.join(f'{s:.1f}' for s in slices)})")
    print(f"  probes served:           {rps:.1f} req/s   (expected ~{args.checks / vb_interval(args.interval):.0f}/s; "
          f"{hit}/{args.checks} distinct paths hit in the window)")
    print(f"  requests per path:       min {p_lo} median {p_med:g} max {p_hi} over {dt:.1f} s "
          f"(expected ~{dt / vb_interval(args.interval):.0f})")
    print(f"  new TCP connections:     {u['conns']:.1f} /s")
    print(f"  backends' own CPU:       {u['own_cpu']:.1f} % of one core (this script)")
    print(f"  per probe:               user {u['user_us']:.1f} us, system {u['system_us']:.1f} us"
          f"{'' if share is None else f' (perf split: {share:.1%} of samples in user space)'}")
    print(f"  veer RSS {rss / 1024:.1f} MiB, {threads} threads; down transitions: {len(downs)}; "
          f"r0000.cpu.test. A -> {probe[1] if probe else 'no answer'}")
    if downs:
        reasons = {}
        for t in downs:
            r = t[4].split(": ", 1)[-1]
            reasons[r] = reasons.get(r, 0) + 1
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        print("  down reasons: " + "; ".join(f"{n}x {r}" for r, n in top))
    return u


async def run(args, cmd):
    ncpu = os.cpu_count() or 1
    cpus = sorted(os.sched_getaffinity(0))
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
    pin_note = ", ".join(notes) + f" ({ncpu} CPUs)"

    counters = Counters()
    loop = asyncio.get_running_loop()
    servers, ports = [], []
    for _ in range(args.ports):
        srv = await loop.create_server(lambda: Backend(counters), "127.0.0.1", 0, backlog=1024)
        servers.append(srv)
        ports.append(srv.sockets[0].getsockname()[1])
    cfg = write_config(args, ports, tempfile.mkdtemp(prefix="veer-probecpu-"))

    rounds = {}  # label -> [usage per round]
    try:
        for r in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {r + 1}/{args.rounds}")
            if args.minprobe:
                u = await measure_minimal(args, counters, ports, veer_cpus)
                rounds.setdefault("minimal loop", []).append(u)
            for binary, label in args.binaries:
                u = await measure_veer(args, binary, label, counters, cfg, veer_cpus, pin_note)
                rounds.setdefault(label, []).append(u)
    finally:
        for s in servers:
            s.close()

    # Per label, the round with the median total CPU per probe.
    results = [(label, median_round(us)) for label, us in rounds.items()]
    base = results[0][1] if args.minprobe else None
    print()
    if args.rounds > 1:
        print(f"{args.rounds} rounds; per label the round with the median total us per probe "
              f"(all rounds' user/system us: "
              + "; ".join(f"{label} " + " ".join(f"{u['user_us']:.0f}/{u['system_us']:.0f}" for u in us)
                          for label, us in rounds.items()) + ")")
    print(f"per HTTP probe ({args.checks} checks at {args.interval}, {pin_note}):")
    print(f"  {'':24} {'user us':>8} {'sys us':>8} {'total us':>9} {'CPU %':>7} {'req/s':>8}"
          + (f" {'user/min':>9} {'total/min':>9}" if base else ""))
    for label, u in results:
        total = u["user_us"] + u["system_us"]
        line = (f"  {label:24} {u['user_us']:8.1f} {u['system_us']:8.1f} {total:9.1f} "
                f"{u['cpu']:7.2f} {u['rps']:8.1f}")
        if base:
            btotal = base["user_us"] + base["system_us"]
            line += f" {ratio(u['user_us'], base['user_us']):9.2f} {ratio(total, btotal):9.2f}"
        print(line)
    for label, u in results[1 if base else 0:]:
        total = u["user_us"] + u["system_us"]
        goals = [f"user <= 10 us: {'PASS' if u['user_us'] <= 10 else 'FAIL'}",
                 f"CPU < 10% of one core: {'PASS' if u['cpu'] < 10 else 'FAIL'}"]
        if base:
            btotal = base["user_us"] + base["system_us"]
            goals.append(f"total <= 1.2x minimal loop: {'PASS' if total <= 1.2 * btotal else 'FAIL'}")
        print(f"  {label}: " + "; ".join(goals))
    print(f"command: {cmd}")


def median_round(us):
    ranked = sorted(us, key=lambda u: u["user_us"] + u["system_us"])
    return ranked[(len(ranked) - 1) // 2]


def ratio(a, b):
    return a / b if b else float("inf")


def vb_interval(s):
    s = s.strip()
    if s.endswith("ms"):
        return float(s[:-2]) / 1000
    if s.endswith("s"):
        return float(s[:-1])
    return float(s)


def build_minprobe():
    src = os.path.join(vb.ROOT, "bench", "minprobe.rs")
    out = os.path.join(vb.target_dir(), "minprobe")
    if not os.path.exists(out) or os.stat(out).st_mtime < os.stat(src).st_mtime:
        subprocess.run(["rustc", "--edition", "2021", "-O", "-o", out, src], check=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--checks", type=int, default=1000)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--body", default=None, metavar="TEXT",
                    help="every check expects TEXT in the body (the backends answer `ok`)")
    ap.add_argument("--ports", type=int, default=4, help="backend listening ports")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after every check is up")
    ap.add_argument("--window", type=float, default=30.0, help="measurement seconds")
    ap.add_argument("--workers", type=int, default=None, help="veer --workers")
    ap.add_argument("--no-routes", dest="routes", action="store_false", help="checks only, no routes")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the backends to the last CPU")
    ap.add_argument("--veer-cpus", default=None, help="pin veer with taskset -c LIST (e.g. 0; one CPU = one tokio worker)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--perf", action="store_true",
                    help="split user/system time by perf samples (see PerfSplit), not clock ticks")
    ap.add_argument("--log", help="write veer's log here (monotonic seconds since start first)")
    ap.add_argument("--no-minimal", dest="minimal", action="store_false",
                    help="skip the minimal connect/GET/close loop (bench/minprobe.rs)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure everything this many times, interleaved; report the median round")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=BINARY",
                    help="also measure this veer binary (say, an older build), after the built one")
    args = ap.parse_args()
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], vb.ROOT)] + sys.argv[1:])
    args.binaries = [(vb.build_veer(args.no_build), "this build")]
    for a in args.also:
        label, _, binary = a.partition("=")
        if not binary:
            raise SystemExit("--also takes LABEL=BINARY")
        args.binaries.append((binary, label))
    args.minprobe = build_minprobe() if args.minimal else None
    asyncio.run(run(args, cmd))


if __name__ == "__main__":
    main()
