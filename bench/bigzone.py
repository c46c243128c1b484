#!/usr/bin/env python3
"""A zone of 1,000,000 records: veer against NSD on the same file (issue 18).

    bench/bigzone.py [--records 1000000] [--rounds 1] [--flips 10] [--skip-build]
                     [--baseline BINARY]

Generates big.test. once (fixed seed) in a temp dir: SOA, two NS and their
glue, www A, and N records: 55% A, 20% AAAA, 15% TXT, 10% MX (exchanges
are in-zone A names), each on its own owner hN. Then, per round (rounds
interleaved, medians reported when --rounds > 1), every server pinned to
CPU 0 and this script (the client) to CPU 1, on free 127.0.0.1 ports:

veer (dist build; workers = 1, udp_sockets = 1, rrl off, a file check
`flip` (fall 1, rise 1) guarding a failover route fo.big.test. A: tier 1
192.0.2.10, tier 2 192.0.2.20):
  - `veer check --config FILE`: wall time and peak RSS (wait4 ru_maxrss)
  - load: exec of `veer serve` -> first answer `big.test. SOA` with serial
    1 (a UDP query every 5 ms); RSS (VmRSS) 1 s after that, and VmHWM
    (the peak of the load)
  - reload: VmHWM reset (clear_refs 5), the zone rewritten with serial 2
    and www changed, renamed into place (veer's watcher picks it up) ->
    first SOA with serial 2; www checked; VmHWM 1 s later (the reload's
    peak) and VmRSS (steady after the reload); VmRSS is also sampled every
    10 ms during the reload, and the longest gap between SOA answers (old
    serial or new) says whether the old zone kept serving
  - failover: the check file rewritten (write + rename) down/up --flips
    times -> first answer of fo.big.test. A with the other tier's address
    (a query every ~1 ms); also flip -> `check flip: X -> Y` log line
  - sweeps: every hN asked once for its own type (dnsperf, 4 clients, 64
    outstanding), then once for ANY; VmRSS after each (answers keep their
    prepared bytes; what the general path answers must not stay behind)
  - the same failover with a small zone (www only) in another veer
NSD (`nsd -d`, server-count 1, rrl off, no database) on the same file:
  - load: exec -> first SOA answer; RSS summed over all nsd processes
    (main, xfrd, server: NSD forks, so pages shared copy-on-write count
    once per process) and PSS summed (shared pages split), 1 s after load

With --baseline (another veer binary, e.g. main's dist build copied
aside), each round also runs the big-zone measures with it (before this
build's, on the same file), and a second table compares the two.

Prints the command line, the raw numbers of every round, and one table
with both servers and the ratios veer/NSD.
"""
import argparse
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veerbench as vb  # noqa: E402

ORIGIN = "big.test."
SEED = 18
TIER1, TIER2 = "192.0.2.10", "192.0.2.20"
WWW = ("192.0.2.1", "192.0.2.2")  # www before and after the reload
CPU_SERVER, CPU_CLIENT = "0", 1
LOAD_TIMEOUT = 600.0


# --- the zone ------------------------------------------------------------

def zone_head(serial, www):
    return (f"$ORIGIN {ORIGIN}\n$TTL 300\n"
            f"@   IN SOA ns1.{ORIGIN} hostmaster.{ORIGIN} {serial} 7200 3600 1209600 60\n"
            f"    IN NS  ns1.{ORIGIN}\n    IN NS  ns2.{ORIGIN}\n"
            f"ns1 IN A   192.0.2.53\nns2 IN A   192.0.2.54\n"
            f"www IN A   {www}\n")


def zone_body(n, seed=SEED):
    """N records as bytes, and how many of each type."""
    rng = random.Random(seed)
    alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
    counts = {"A": 0, "AAAA": 0, "TXT": 0, "MX": 0}
    a_owners = []
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.55:
            out.append(f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
            a_owners.append(i)
            counts["A"] += 1
        elif r < 0.75:
            out.append(f"h{i} IN AAAA 2001:db8::{i >> 16:x}:{i & 0xffff:x}\n")
            counts["AAAA"] += 1
        elif r < 0.90:
            txt = "".join(rng.choice(alnum) for _ in range(rng.randint(16, 64)))
            out.append(f'h{i} IN TXT "v=test1 {txt}"\n')
            counts["TXT"] += 1
        else:
            ex = f"h{rng.choice(a_owners)}" if a_owners else "ns1"
            out.append(f"h{i} IN MX {rng.choice((10, 20, 30))} {ex}\n")
            counts["MX"] += 1
    return "".join(out).encode(), counts


def write_atomic(path, *chunks):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c if isinstance(c, bytes) else c.encode())
    os.rename(tmp, path)


# --- DNS polling ----------------------------------------------------------

def parse_answers(msg):
    """(rcode, [(type, rdata offset, rdlen)]) of a response, or None."""
    if len(msg) < 12:
        return None
    _id, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if not flags & 0x8000:
        return None
    try:
        off = 12
        for _ in range(qd):
            off = vb.skip_name(msg, off) + 4
        out = []
        for _ in range(an):
            off = vb.skip_name(msg, off)
            rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            out.append((rtype, off, rdlen))
            off += rdlen
    except (IndexError, struct.error):
        return None
    return flags & 0xF, out


def soa_serial(msg):
    r = parse_answers(msg)
    if not r or r[0] != 0:
        return None
    for rtype, off, _ in r[1]:
        if rtype == 6:
            off = vb.skip_name(msg, vb.skip_name(msg, off))
            return struct.unpack("!I", msg[off:off + 4])[0]
    return None


def a_addrs(msg):
    r = parse_answers(msg)
    if not r or r[0] != 0:
        return None
    return sorted(socket.inet_ntoa(msg[o:o + 4]) for t, o, n in r[1] if t == 1 and n == 4)


class Poller:
    """Sends `name qtype` every `gap` seconds until a response satisfies
    pred(msg); returns the monotonic time that response was read. Any
    response to any of its queries counts (it is the socket's only user).
    Refused sends (nothing listening yet: ICMP port unreachable) are retried."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.qid = random.randrange(65536)
        self.sent = 0

    def close(self):
        self.sock.close()

    def drain(self):
        while True:
            try:
                self.sock.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                return

    def until(self, name, qtype, pred, gap, timeout, alive=None):
        self.drain()
        wire_name = vb.encode_name(name)
        t_end = time.monotonic() + timeout
        while True:
            self.qid = (self.qid + 1) & 0xFFFF
            pkt = struct.pack("!HHHHHH", self.qid, 0, 1, 0, 0, 0) + wire_name + struct.pack("!HH", qtype, 1)
            try:
                self.sock.send(pkt)
                self.sent += 1
            except ConnectionRefusedError:
                pass
            t_next = time.monotonic() + gap
            while True:
                left = t_next - time.monotonic()
                if left <= 0:
                    break
                if not select.select([self.sock], [], [], left)[0]:
                    break
                try:
                    msg = self.sock.recv(65535)
                except BlockingIOError:
                    continue
                except ConnectionRefusedError:
                    continue
                now = time.monotonic()
                if pred(msg):
                    return now
            if time.monotonic() > t_end:
                return None
            if alive is not None and not alive():
                return None


# --- processes -------------------------------------------------------------

def proc_status(pid, key):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def descendants(pid):
    """pid and all its descendants (from /proc/*/stat)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def stop_tree(proc, pids=()):
    """SIGTERM to proc, wait, SIGKILL if needed; then the given other PIDs
    (its children, read while it ran) if any outlived it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for p in pids:
        if p == proc.pid:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                break
            time.sleep(0.2)


def run_timed(argv):
    """Runs argv; returns (exit status, wall seconds, ru_maxrss kB, output)."""
    out = tempfile.TemporaryFile()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    return proc.returncode, wall, ru.ru_maxrss, out.read().decode("utf-8", "replace")


class RssSampler(threading.Thread):
    """Max VmRSS of pid, sampled every 10 ms until stop()."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max, self.done = pid, 0, threading.Event()
        self.start()

    def run(self):
        while not self.done.is_set():
            v = proc_status(self.pid, "VmRSS")
            if v:
                self.max = max(self.max, v)
            self.done.wait(0.01)

    def stop(self):
        self.done.set()
        self.join()
        return self.max


# --- veer -----------------------------------------------------------------

def veer_config(work, port, zone_file, state):
    os.makedirs(os.path.join(work, "health"), exist_ok=True)
    write_atomic(os.path.join(work, "health", "flip"), "up\n")
    path = os.path.join(work, "veer.toml")
    with open(path, "w") as f:
        f.write(f"""# written by bench/bigzone.py
[server]
listen = ["127.0.0.1:{port}"]
workers = 1
udp_sockets = 1
state_dir = "{state}"

[rrl]
responses_per_second = 0   # the pollers ask one name every millisecond

[[zone]]
origin = "{ORIGIN}"
file = "{zone_file}"

[check.flip]
file = "health/flip"
interval = "2s"
fall = 1
rise = 1
initial = "up"

[[route]]
name = "fo.{ORIGIN}"
type = "A"
ttl = 5
policy = "failover"
members = [
  {{ tier = 1, value = "{TIER1}", check = "flip" }},
  {{ tier = 2, value = "{TIER2}" }},
]
""")
    return path


def failover_trials(veer, poller, work, flips):
    """Flips the check file `flips` times (down, up, ...); returns the times
    flip -> first answer with the other tier, and flip -> log line (s)."""
    flag = os.path.join(work, "health", "flip")
    answer, log = [], []
    state = "up"
    for i in range(flips):
        want_old = [TIER1] if state == "up" else [TIER2]
        if poller.until(f"fo.{ORIGIN}", 1, lambda m: a_addrs(m) == want_old, 0.005, 30) is None:
            veer.dump_log()
            raise SystemExit(f"flip {i}: fo.{ORIGIN} does not answer {want_old} before the flip")
        time.sleep(random.uniform(0.2, 0.4))
        new = "down" if state == "up" else "up"
        want = [TIER2] if new == "down" else [TIER1]
        n_tr = len(veer.transitions)
        t0 = time.monotonic()
        write_atomic(flag, new + "\n")
        t1 = poller.until(f"fo.{ORIGIN}", 1, lambda m: a_addrs(m) == want, 0.001, 60, alive_fn(veer.proc))
        if t1 is None:
            veer.dump_log()
            raise SystemExit(f"flip {i} ({state} -> {new}): no answer {want} within 60 s")
        answer.append(t1 - t0)
        t_log = veer.wait_for(lambda: next(
            (t[0] for t in veer.transitions[n_tr:] if t[1] == "flip" and t[3] == new), None), 5)
        if t_log is not None:
            log.append(t_log - t0)
        state = new
    return answer, log


def alive_fn(proc):
    return lambda: proc.poll() is None


def run_veer_big(binary, work, zone_path, head1, head2, body, flips, rnd):
    r = {}
    port = vb.free_port()
    # A fresh state_dir per round: the checkpoint keeps the serials the
    # flips raised, so a restart on it would not serve serial 1.
    cfg = veer_config(work, port, os.path.basename(zone_path), f"state-big-{rnd}")
    write_atomic(zone_path, head1, body)

    # veer check
    code, wall, maxrss, out = run_timed(["taskset", "-c", CPU_SERVER, binary, "check", "--config", cfg])
    if code != 0:
        raise SystemExit(f"veer check failed ({code}):\n{out}")
    r["check_s"], r["check_maxrss_kib"] = wall, maxrss

    # load
    t0 = time.monotonic()
    veer = vb.Veer(binary, cfg, cpus=CPU_SERVER)
    poller = Poller(port)
    try:
        alive = alive_fn(veer.proc)
        served = []

        def first_serial(msg):
            served.append(soa_serial(msg))
            return served[-1] == 1

        t1 = poller.until(ORIGIN, 6, first_serial, 0.005, LOAD_TIMEOUT, alive)
        if t1 is None:
            veer.dump_log()
            rc = veer.proc.poll()
            raise SystemExit(f"veer: no SOA serial 1 within {LOAD_TIMEOUT:.0f} s"
                             + (f" (veer exited with status {rc})" if rc is not None else "")
                             + (f"; last answer's serial {served[-1]}" if served else "; no answer"))
        r["load_s"] = t1 - t0
        # The log is read by a thread: give it a moment to catch up.
        listen = veer.wait_for(lambda: [t for t, line in veer.lines if vb.LISTEN_RE.search(line)], 2)
        r["listen_s"] = listen[0] - t0 if listen else None
        time.sleep(1.0)
        r["rss_kib"] = proc_status(veer.pid, "VmRSS")
        r["hwm_load_kib"] = proc_status(veer.pid, "VmHWM")

        # reload: reset the peak, rewrite, rename
        try:
            with open(f"/proc/{veer.pid}/clear_refs", "w") as f:
                f.write("5")
            r["hwm_reset"] = True
        except OSError:
            r["hwm_reset"] = False
        sampler = RssSampler(veer.pid)
        n_lines = len(veer.lines)
        tmp = zone_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(head2.encode())
            f.write(body)
        seen = []  # when each answer (old serial or new) was read

        def new_serial(msg):
            serial = soa_serial(msg)
            if serial is not None:
                seen.append(time.monotonic())
            return serial == 2

        t0 = time.monotonic()
        os.rename(tmp, zone_path)
        seen.append(t0)
        t1 = poller.until(ORIGIN, 6, new_serial, 0.005, LOAD_TIMEOUT, alive)
        if t1 is None:
            sampler.stop()
            veer.dump_log()
            raise SystemExit(f"veer: reload: no SOA serial 2 within {LOAD_TIMEOUT:.0f} s")
        r["reload_s"] = t1 - t0
        # Does the old zone keep serving meanwhile? The longest time without
        # any SOA answer (the poller asks every 5 ms).
        r["reload_gap_s"] = max(b - a for a, b in zip(seen, seen[1:]))
        r["reload_answers"] = len(seen) - 1
        if poller.until(f"www.{ORIGIN}", 1, lambda m: a_addrs(m) == [WWW[1]], 0.005, 5) is None:
            raise SystemExit(f"veer: reload: serial 2 served but www is not {WWW[1]}")
        veer.wait_for(lambda: any("reload applied" in line for _, line in veer.lines[n_lines:]), 10)
        time.sleep(1.0)
        r["rss_sampled_max_kib"] = sampler.stop()
        r["hwm_reload_kib"] = proc_status(veer.pid, "VmHWM")
        r["rss_after_reload_kib"] = proc_status(veer.pid, "VmRSS")
        with veer.cond:
            applied = [line for _, line in veer.lines[n_lines:] if "reload applied" in line]
        r["reload_log"] = applied[0].split("reload applied: ", 1)[-1] if applied else None

        # failover on the big zone
        r["fo_answer_s"], r["fo_log_s"] = failover_trials(veer, poller, work, flips)
        r["rss_end_kib"] = proc_status(veer.pid, "VmRSS")

        # every name asked once for its type (the fast path prepares its
        # bytes), then once for ANY (the general path), RSS after each
        for kind in ("typed", "any"):
            r[f"sweep_{kind}_s"] = sweep(port, os.path.join(work, f"sweep-{kind}.txt"))
            r[f"rss_{kind}_kib"] = proc_status(veer.pid, "VmRSS")
        r["threads"] = veer.threads()
    finally:
        poller.close()
        veer.stop()
    return r


def sweep_files(work, body):
    """Query files naming every hN once: with its type, and with ANY."""
    typed, anys = [], []
    for line in body.decode().splitlines():
        owner, _, rtype = line.split(" ", 3)[:3]
        typed.append(f"{owner}.{ORIGIN} {rtype}\n")
        anys.append(f"{owner}.{ORIGIN} ANY\n")
    for kind, lines in (("typed", typed), ("any", anys)):
        with open(os.path.join(work, f"sweep-{kind}.txt"), "w") as f:
            f.writelines(lines)


def sweep(port, queries):
    """dnsperf through `queries` once (client CPU); returns wall seconds."""
    t0 = time.monotonic()
    subprocess.run(["taskset", "-c", str(CPU_CLIENT), "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                    "-d", queries, "-n", "1", "-c", "4", "-q", "64", "-t", "2"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def run_veer_small(binary, work, flips, rnd):
    r = {}
    port = vb.free_port()
    zone = os.path.join(work, "small.zone")
    write_atomic(zone, zone_head(1, WWW[0]))
    cfg = veer_config(work, port, "small.zone", f"state-small-{rnd}")
    veer = vb.Veer(binary, cfg, cpus=CPU_SERVER)
    poller = Poller(port)
    try:
        t0 = time.monotonic()
        if poller.until(ORIGIN, 6, lambda m: soa_serial(m) == 1, 0.005, 60, alive_fn(veer.proc)) is None:
            veer.dump_log()
            raise SystemExit("veer (small zone): no SOA within 60 s")
        r["load_s"] = time.monotonic() - t0
        r["rss_kib"] = proc_status(veer.pid, "VmRSS")
        r["fo_answer_s"], r["fo_log_s"] = failover_trials(veer, poller, work, flips)
    finally:
        poller.close()
        veer.stop()
    return r


# --- NSD ------------------------------------------------------------------

def run_nsd(work, zone_path):
    r = {}
    port = vb.free_port()
    d = os.path.join(work, "nsd")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nsd.conf")
    with open(conf, "w") as f:
        # Debian builds NSD with rrl on (200/s per source): off, as bench/run.sh.
        f.write(f"""server:
  ip-address: 127.0.0.1@{port}
  server-count: 1
  rrl-ratelimit: 0
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  zonelistfile: "{d}/zone.list"
  logfile: "{d}/nsd.log"
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: {ORIGIN}
  zonefile: "{zone_path}"
""")
    log = open(os.path.join(d, "stderr"), "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", CPU_SERVER, "nsd", "-d", "-c", conf],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    poller = Poller(port)
    pids = [proc.pid]
    try:
        t1 = poller.until(ORIGIN, 6, lambda m: soa_serial(m) == 1, 0.005, LOAD_TIMEOUT, alive_fn(proc))
        if t1 is None:
            tail = open(os.path.join(d, "nsd.log"), errors="replace").read()[-2000:] \
                if os.path.exists(os.path.join(d, "nsd.log")) else ""
            raise SystemExit(f"nsd: no SOA within {LOAD_TIMEOUT:.0f} s (exit {proc.poll()})\n{tail}")
        r["load_s"] = t1 - t0
        if poller.until(f"www.{ORIGIN}", 1, lambda m: a_addrs(m) == [WWW[0]], 0.005, 5) is None:
            raise SystemExit("nsd: www answer wrong")
        time.sleep(1.0)
        pids = descendants(proc.pid)
        rss = [proc_status(p, "VmRSS") or 0 for p in pids]
        r["procs"] = len(pids)
        r["rss_kib"] = sum(rss)
        r["rss_each_kib"] = rss
        r["pss_kib"] = sum(pss_kib(p) or 0 for p in pids)
        r["hwm_kib"] = sum(proc_status(p, "VmHWM") or 0 for p in pids)
    finally:
        poller.close()
        stop_tree(proc, pids)
        log.close()
    return r


# --- report ---------------------------------------------------------------

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mib(kib):
    return None if kib is None else kib / 1024


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "ms":
        return f"{v * 1000:.1f} ms"
    if unit == "MiB":
        return f"{v:.0f} MiB"
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--flips", type=int, default=10, help="failover flips per zone and round")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="another veer binary measured on the big zone in the same rounds")
    args = ap.parse_args()
    cmd = " ".join(["bench/bigzone.py", *sys.argv[1:]])

    for tool in ("taskset", "nsd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing (bench/setup.sh installs nsd)")
    binary = vb.build_veer(args.skip_build)
    try:
        os.sched_setaffinity(0, {CPU_CLIENT})
    except OSError:
        pass

    work = tempfile.mkdtemp(prefix="veer-bigzone-")
    try:
        t = time.monotonic()
        body, counts = zone_body(args.records)
        head1, head2 = zone_head(1, WWW[0]), zone_head(2, WWW[1])
        zone_path = os.path.join(work, "big.test.zone")
        write_atomic(zone_path, head1, body)
        nsd_zone = os.path.join(work, "nsd-big.test.zone")  # its own copy: veer's is rewritten
        shutil.copyfile(zone_path, nsd_zone)
        sweep_files(work, body)
        size = os.path.getsize(zone_path)
        print(f"command: {cmd}")
        print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; kernel {os.uname().release}; "
              f"{os.cpu_count()} CPUs; load average {open('/proc/loadavg').read().split()[:3]}")
        print(f"nsd: {subprocess.run(['nsd', '-v'], capture_output=True, text=True).stderr.splitlines()[0]}")
        print(f"zone {ORIGIN}: {args.records} records ("
              + ", ".join(f"{k} {v}" for k, v in counts.items())
              + f") + SOA, 2 NS, 2 glue A, www A; {size / 1e6:.1f} MB; seed {SEED}; "
              f"generated in {time.monotonic() - t:.1f} s")
        print(f"servers pinned to CPU {CPU_SERVER}, this script (client) to CPU {CPU_CLIENT}\n")

        rounds = []
        baselines = []
        for rnd in range(1, args.rounds + 1):
            print(f"round {rnd}/{args.rounds}")
            if args.baseline:
                base = run_veer_big(args.baseline, work, zone_path, head1, head2, body, args.flips,
                                    f"base-{rnd}")
                baselines.append(base)
                print(f"  baseline: check {base['check_s']:.2f} s / {mib(base['check_maxrss_kib']):.0f} MiB peak; "
                      f"load {base['load_s']:.2f} s; RSS {mib(base['rss_kib']):.0f} MiB, "
                      f"VmHWM {mib(base['hwm_load_kib']):.0f} MiB; reload {base['reload_s']:.2f} s, "
                      f"VmHWM {mib(base['hwm_reload_kib']):.0f} MiB, gap {base['reload_gap_s'] * 1000:.0f} ms")
            big = run_veer_big(binary, work, zone_path, head1, head2, body, args.flips, rnd)
            print(f"  veer: check {big['check_s']:.2f} s / {mib(big['check_maxrss_kib']):.0f} MiB peak; "
                  f"load {big['load_s']:.2f} s (listening after "
                  f"{fmt(big['listen_s'], 's')}); RSS {mib(big['rss_kib']):.0f} MiB, "
                  f"VmHWM {mib(big['hwm_load_kib']):.0f} MiB")
            print(f"  veer: reload {big['reload_s']:.2f} s; VmHWM during reload "
                  f"{mib(big['hwm_reload_kib']):.0f} MiB (reset before: {big['hwm_reset']}; "
                  f"sampled max VmRSS {mib(big['rss_sampled_max_kib']):.0f} MiB); "
                  f"RSS after {mib(big['rss_after_reload_kib']):.0f} MiB; at the end "
                  f"{mib(big['rss_end_kib']):.0f} MiB; {big['threads']} threads")
            print(f"  veer: every name asked for its type in {big['sweep_typed_s']:.1f} s: RSS "
                  f"{mib(big['rss_typed_kib']):.0f} MiB; then for ANY in {big['sweep_any_s']:.1f} s: "
                  f"RSS {mib(big['rss_any_kib']):.0f} MiB")
            print(f"  veer: during the reload {big['reload_answers']} SOA answers, longest gap without one "
                  f"{big['reload_gap_s'] * 1000:.0f} ms; reload applied: {big['reload_log']}")
            print("  veer: failover, big zone, flip -> answer (ms): "
                  + " ".join(f"{v * 1000:.1f}" for v in big["fo_answer_s"]))
            print("                           flip -> log line (ms): "
                  + " ".join(f"{v * 1000:.1f}" for v in big["fo_log_s"]))
            small = run_veer_small(binary, work, args.flips, rnd)
            print("  veer: failover, small zone, flip -> answer (ms): "
                  + " ".join(f"{v * 1000:.1f}" for v in small["fo_answer_s"]))
            print("                             flip -> log line (ms): "
                  + " ".join(f"{v * 1000:.1f}" for v in small["fo_log_s"]))
            nsd = run_nsd(work, nsd_zone)
            print(f"  nsd:  load {nsd['load_s']:.2f} s; {nsd['procs']} processes, RSS "
                  + " + ".join(f"{mib(v):.0f}" for v in nsd["rss_each_kib"])
                  + f" = {mib(nsd['rss_kib']):.0f} MiB (PSS {mib(nsd['pss_kib']):.0f} MiB, "
                  f"VmHWM summed {mib(nsd['hwm_kib']):.0f} MiB)")
            rounds.append((big, small, nsd))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.path.dirname(binary), ignore_errors=True)  # build_veer's private copy

    def m(i, key, f=None):
        vals = [rr[i][key] for rr in rounds]
        if f:
            vals = [f(v) for v in vals]
        return med(vals)

    fo_big = m(0, "fo_answer_s", med)
    fo_small = m(1, "fo_answer_s", med)
    v = {
        "load": m(0, "load_s"), "check": m(0, "check_s"), "check_rss": mib(m(0, "check_maxrss_kib")),
        "rss": mib(m(0, "rss_kib")), "hwm_load": mib(m(0, "hwm_load_kib")),
        "reload": m(0, "reload_s"), "hwm_reload": mib(m(0, "hwm_reload_kib")),
        "rss_reload": mib(m(0, "rss_after_reload_kib")),
        "rss_typed": mib(m(0, "rss_typed_kib")), "rss_any": mib(m(0, "rss_any_kib")),
    }
    n = {"load": m(2, "load_s"), "rss": mib(m(2, "rss_kib")), "pss": mib(m(2, "pss_kib"))}

    def ratio(a, b):
        return "—" if a is None or not b else f"{a / b:.2f}×"

    agg = "median of " + str(args.rounds) + " rounds" if args.rounds > 1 else "1 round"
    print(f"\n{args.records} records, {agg}; failover: median of {args.flips} flips per round")
    print("| measure | veer | NSD | veer/NSD | goal (issue 18) |")
    print("|---|---:|---:|---:|---|")
    print(f"| load: exec → first SOA answer | {fmt(v['load'], 's')} | {fmt(n['load'], 's')} "
          f"| {ratio(v['load'], n['load'])} | ≤ 1.00× |")
    print(f"| RSS after load (NSD: summed over {rounds[0][2]['procs']} processes) | {fmt(v['rss'], 'MiB')} "
          f"| {fmt(n['rss'], 'MiB')} | {ratio(v['rss'], n['rss'])} | ≤ 1.50× |")
    print(f"| PSS after load (NSD's shared pages counted once) | {fmt(v['rss'], 'MiB')} (RSS) "
          f"| {fmt(n['pss'], 'MiB')} | {ratio(v['rss'], n['pss'])} | |")
    print(f"| peak during load (VmHWM) | {fmt(v['hwm_load'], 'MiB')} | — | | |")
    print(f"| `veer check` time / peak RSS | {fmt(v['check'], 's')} / {fmt(v['check_rss'], 'MiB')} "
          "| — | | |")
    print(f"| reload: rename → new serial served | {fmt(v['reload'], 's')} | — | | |")
    print(f"| peak during reload (VmHWM, reset before) | {fmt(v['hwm_reload'], 'MiB')} "
          f"({ratio(v['hwm_reload'], v['rss'])} steady) | — | | ≤ 2.00× steady |")
    print(f"| longest gap in SOA answers during the reload (polled every 5 ms) "
          f"| {fmt(m(0, 'reload_gap_s'), 'ms')} | — | | |")
    print(f"| RSS 1 s after the reload | {fmt(v['rss_reload'], 'MiB')} | — | | |")
    print(f"| RSS after every name was asked for its type | {fmt(v['rss_typed'], 'MiB')} "
          f"| {fmt(n['rss'], 'MiB')} | {ratio(v['rss_typed'], n['rss'])} | |")
    print(f"| RSS after every name was then asked for ANY | {fmt(v['rss_any'], 'MiB')} "
          f"| {fmt(n['rss'], 'MiB')} | {ratio(v['rss_any'], n['rss'])} | |")
    diff = None if fo_big is None or fo_small is None else fo_big - fo_small
    for i, label in ((0, "big"), (1, "small")):
        flips = [x for rr in rounds for x in rr[i]["fo_answer_s"]]
        print(f"| failover: flip → new answer, {label} zone (max of all flips) "
              f"| {fmt(m(i, 'fo_answer_s', med), 'ms')} ({fmt(max(flips), 'ms')}) | — | | |")
        print(f"| failover: flip → `check flip` log line, {label} zone "
              f"| {fmt(m(i, 'fo_log_s', med), 'ms')} | — | | |")
    print(f"| failover: big − small | {fmt(diff, 'ms')} | — | | ≤ 5 ms |")
    if baselines:
        b = {k: med([r[k] for r in baselines]) for k in (
            "load_s", "check_s", "check_maxrss_kib", "rss_kib", "hwm_load_kib", "reload_s",
            "hwm_reload_kib", "rss_after_reload_kib", "reload_gap_s", "rss_typed_kib",
            "rss_any_kib")}
        nb = {k: med([rr[0][k] for rr in rounds]) for k in b}
        print(f"\n| measure | baseline ({args.baseline}) | this build | this/baseline |")
        print("|---|---:|---:|---:|")
        for key, label, unit in (
                ("load_s", "load: exec → first SOA answer", "s"),
                ("rss_kib", "RSS after load", "MiB"),
                ("hwm_load_kib", "peak during load (VmHWM)", "MiB"),
                ("check_s", "`veer check` time", "s"),
                ("check_maxrss_kib", "`veer check` peak RSS", "MiB"),
                ("reload_s", "reload: rename → new serial served", "s"),
                ("hwm_reload_kib", "peak during reload (VmHWM, reset before)", "MiB"),
                ("rss_after_reload_kib", "RSS 1 s after the reload", "MiB"),
                ("reload_gap_s", "longest gap in SOA answers during the reload", "ms"),
                ("rss_typed_kib", "RSS after every name was asked for its type", "MiB"),
                ("rss_any_kib", "RSS after every name was then asked for ANY", "MiB")):
            conv = mib if unit == "MiB" else (lambda x: x)
            print(f"| {label} | {fmt(conv(b[key]), unit)} | {fmt(conv(nb[key]), unit)} "
                  f"| {ratio(nb[key], b[key])} |")
        print(f"| reload peak / steady RSS | {ratio(b['hwm_reload_kib'], b['rss_kib'])} "
              f"| {ratio(nb['hwm_reload_kib'], nb['rss_kib'])} | |")
    print(f"\ncommand: {cmd}")


if __name__ == "__main__":
    main()
