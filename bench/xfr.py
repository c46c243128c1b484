#!/usr/bin/env python3
"""Helper of bench/xfr.sh (stdlib only); not meant to be run alone.

  xfr.py zones DIR HOSTS BIG       writes DIR/fo.zone (veer's failover zone:
                                   HOSTS A records, no app A), DIR/knot.zone
                                   (the same plus app A, for the Knot primary)
                                   and DIR/big.zone (BIG records in all)
  xfr.py trials MODE OUT.tsv N PRIMARY NSD KNOT ARG
                                   N failover trials, polling PRIMARY, NSD and
                                   KNOT (host:port); MODE veer: ARG is the
                                   health file (flipped down/up); MODE knot:
                                   ARG is "ZONEFILE:KNOT_SOCKET" (app A
                                   edited, serial + 1, `knotc zone-reload`)
  xfr.py sectrials OUT.tsv N PRIMARY VEER ZONEFILE:KNOT_SOCKET
                                   the same as MODE knot, with veer as the
                                   only secondary
  xfr.py fetch OUT.tsv RECORDS VEER_PID VEER KNOT VEER_LOG READY
                                   a fresh veer's first AXFR of the RECORDS
                                   zone from Knot: writes the file READY,
                                   polls KNOT (host:port; the shell starts
                                   it) until it answers the zone's SOA, then
                                   VEER until it answers the zone's last
                                   name; /proc/PID/status every 10 ms
                                   throughout; veer's own "AXFR from ..."
                                   log line
  xfr.py axfr OUT.tsv RUNS VEER_PID HOST:PORT DIGOUT
                                   RUNS x `dig +tcp AXFR` (signed with
                                   $DIG_KEY, ALG:NAME:SECRET, if set),
                                   /proc/PID/status sampled every 10 ms
                                   meanwhile
  xfr.py report DIR [RECORDS]      the Markdown report from DIR's TSVs
                                   (RECORDS: the AXFR zone's size)

Times are time.monotonic(); each trial's clock starts just before the
health file is renamed into place (veer) or just before `knotc` is started
(Knot). A server "answers" when a UDP reply to `app.bench.test A` (RD clear,
~1 ms between queries per server) is NOERROR with exactly the new address;
the time is when that reply was read.
"""

import os
import random
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veerbench as vb  # noqa: E402

ORIGIN = "bench.test."
NAME = "app.bench.test."
ADDRS = ("192.0.2.1", "192.0.2.2")  # tier 1 (health file p), tier 2
TICK = 0.001  # seconds between queries to one server
TRIAL_TIMEOUT = 15.0  # seconds a trial may take before it counts as failed
DEBUG = bool(os.environ.get("XFR_DEBUG"))
# Seconds of quiet before each trial (plus up to 50 ms random): Knot 3.2
# postpones a refresh that a NOTIFY asks for less than about a second after
# its previous transfer, so flips closer than that measure Knot's hold-off.
SETTLE = float(os.environ.get("XFR_GAP", "1.5"))


# --- zones ---------------------------------------------------------------

HEAD = f"""$ORIGIN {ORIGIN}
$TTL 300
@    IN SOA ns1 hostmaster {{serial}} 3600 600 86400 60
     IN NS  ns1
ns1  IN A   192.0.2.53
"""


def fo_zone(hosts, serial=1, app=None):
    lines = [HEAD.format(serial=serial)]
    lines += [f"h{i} A 10.{i >> 16}.{(i >> 8) & 255}.{i & 255}\n" for i in range(hosts)]
    if app:
        lines.append(f"app 30 A {app}\n")
    return "".join(lines)


def big_zone(records):
    # SOA, NS, ns1 A, then h<i> A / AAAA / TXT (6:3:1) up to `records`.
    out = [HEAD.format(serial=1)]
    n = 3
    i = 0
    while n < records:
        k = i % 10
        if k < 6:
            out.append(f"h{i} A 10.{i >> 16}.{(i >> 8) & 255}.{i & 255}\n")
        elif k < 9:
            out.append(f"h{i} AAAA 2001:db8::{i >> 16:x}:{i & 0xFFFF:x}\n")
        else:
            out.append(f'h{i} TXT "record {i} of the transfer benchmark"\n')
        n += 1
        i += 1
    return "".join(out)


def big_last(records):
    """The last name big_zone(records) writes, and its type code."""
    i = int(records) - 4
    k = i % 10
    return f"h{i}.{ORIGIN}", (1 if k < 6 else 28 if k < 9 else 16)


def cmd_zones(d, hosts, big):
    os.makedirs(d, exist_ok=True)
    for name, text in (
        ("fo.zone", fo_zone(int(hosts))),
        ("knot.zone", fo_zone(int(hosts), app=ADDRS[0])),
        ("big.zone", big_zone(int(big))),
    ):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


# --- polling -------------------------------------------------------------

def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


class Poller:
    """One connected UDP socket per server; `poll(want, t0)` queries every
    server not yet done about every TICK and returns {label: seconds from
    t0 to the first reply naming exactly `want`} (None on timeout)."""

    def __init__(self, servers):
        self.servers = servers  # [(label, (host, port))]
        self.socks = {}
        for label, addr in servers:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(addr)
            s.setblocking(False)
            self.socks[label] = s
        self.qid = random.randrange(65536)
        self.sent = 0
        self.query_tail = vb.encode_name(NAME) + struct.pack("!HH", 1, 1)

    def _send(self, label):
        self.qid = (self.qid + 1) & 0xFFFF
        pkt = struct.pack("!HHHHHH", self.qid, 0, 1, 0, 0, 0) + self.query_tail
        try:
            self.socks[label].send(pkt)
        except OSError:
            pass  # ICMP refused from an earlier query; try next tick
        self.sent += 1

    @staticmethod
    def _answer(msg):
        if len(msg) < 12:
            return None
        _qid, flags = struct.unpack("!HH", msg[:4])
        if not flags & 0x8000:
            return None
        r = vb.parse_a_answers(msg, _qid)
        return r

    def current(self, label, timeout=1.0):
        """(rcode, addrs) of one query to `label`, or None."""
        s = self.socks[label]
        self._drain(s)
        self._send(label)
        r, _, _ = select.select([s], [], [], timeout)
        if not r:
            return None
        try:
            return self._answer(s.recv(4096))
        except OSError:
            return None

    @staticmethod
    def _drain(s):
        while True:
            try:
                s.recv(4096)
            except (BlockingIOError, OSError):
                return

    def wait_all(self, want, timeout=TRIAL_TIMEOUT):
        """Polls (20 ms apart) until every server answers `want`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.current(label) == (0, [want]) for label, _ in self.servers):
                return True
            time.sleep(0.02)
        return False

    def poll(self, want, t0, timeout=TRIAL_TIMEOUT):
        done = {}
        pending = [label for label, _ in self.servers]
        for label in pending:
            self._drain(self.socks[label])
        by_fd = {self.socks[l].fileno(): l for l in pending}
        next_tick = time.monotonic()
        last, gap = {}, {}
        while pending:
            now = time.monotonic()
            if now - t0 > timeout:
                break
            if now >= next_tick:
                for label in pending:
                    self._send(label)
                next_tick += TICK
                if next_tick < now:
                    next_tick = now + TICK
            wait = max(0.0, next_tick - time.monotonic())
            ready, _, _ = select.select([self.socks[l] for l in pending], [], [], wait)
            for s in ready:
                label = by_fd[s.fileno()]
                while True:
                    try:
                        msg = s.recv(4096)
                    except (BlockingIOError, OSError):
                        break
                    got = time.monotonic()
                    if label in done:
                        continue
                    if DEBUG:
                        a = self._answer(msg)
                        g = got - last.get(label, t0)
                        if g > gap.get(label, (0,))[0]:
                            gap[label] = (g, got - t0, a)
                        last[label] = got
                    if self._answer(msg) == (0, [want]):
                        done[label] = got - t0
                        pending.remove(label)
        if DEBUG:
            print(f"    largest reply gaps (s, at s, answer): {gap}", file=sys.stderr)
        return {label: done.get(label) for label, _ in self.servers}


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def cmd_sectrials(out, n, primary, veer, arg):
    cmd_trials("secondary", out, n, primary, None, None, arg, veer)


def cmd_trials(mode, out, n, primary, nsd, knot, arg, veer=None):
    n = int(n)
    if mode == "secondary":
        servers = [("primary", hostport(primary)), ("veer", hostport(veer))]
    else:
        servers = [("primary", hostport(primary)), ("nsd", hostport(nsd)), ("knot", hostport(knot))]
    labels = [label for label, _ in servers]
    p = Poller(servers)
    if mode == "veer":
        health = arg
    else:
        zonefile, sock = arg.rsplit(":", 1)
        hosts = sum(1 for line in open(zonefile) if line.startswith("h"))
        serial = 1
    # Every server must answer the starting address first.
    cur = ADDRS[0]
    if not p.wait_all(cur, 30):
        for label, _ in servers:
            print(f"  {label}: {p.current(label)}", file=sys.stderr)
        raise SystemExit(f"xfr.py: not every server answers {NAME} A {cur} at the start")
    rows = []
    with open(out, "w") as f:
        if mode == "secondary":
            f.write("trial\tto\tprimary_ms\tveer_ms\tcmd_ms\tqueries\n")
        else:
            f.write("trial\tto\tprimary_ms\tnsd_ms\tknot_ms\tboth_ms\tcmd_ms\tqueries\n")
        for t in range(1, n + 1):
            new = ADDRS[1] if cur == ADDRS[0] else ADDRS[0]
            time.sleep(SETTLE + random.random() * 0.05)
            sent0 = p.sent
            cmd_ms = ""
            if mode == "veer":
                text = "down\n" if new == ADDRS[1] else "up\n"
                t0 = time.monotonic()
                write_atomic(health, text)
                res = p.poll(new, t0)
            else:
                serial += 1
                write_atomic(zonefile, fo_zone(hosts, serial, app=new))
                t0 = time.monotonic()
                proc = subprocess.Popen(
                    ["knotc", "-s", sock, "zone-reload", ORIGIN],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )
                ended = []
                waiter = threading.Thread(
                    target=lambda: ended.append((proc.communicate()[1], time.monotonic())))
                waiter.start()
                res = p.poll(new, t0)
                waiter.join()
                err, t1 = ended[0]
                cmd_ms = f"{(t1 - t0) * 1000:.1f}"
                if proc.returncode:
                    print(f"  knotc failed: {err.decode().strip()}", file=sys.stderr)
            ms = {k: (None if v is None else v * 1000) for k, v in res.items()}
            fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
            if mode == "secondary":
                f.write(f"{t}\t{new}\t{fmt(ms['primary'])}\t{fmt(ms['veer'])}"
                        f"\t{cmd_ms}\t{p.sent - sent0}\n")
            else:
                both = None if ms["nsd"] is None or ms["knot"] is None else max(ms["nsd"], ms["knot"])
                f.write(f"{t}\t{new}\t{fmt(ms['primary'])}\t{fmt(ms['nsd'])}\t{fmt(ms['knot'])}"
                        f"\t{fmt(both)}\t{cmd_ms}\t{p.sent - sent0}\n")
            f.flush()
            if DEBUG:
                print(f"    t0 wall {time.time() - (time.monotonic() - t0):.3f}", file=sys.stderr)
            print(f"  {mode} trial {t:2}/{n} -> {new}: "
                  + ", ".join(f"{label} {fmt(ms[label]) or 'TIMEOUT'} ms" for label in labels))
            rows.append(ms)
            cur = new
            if None in ms.values() and not p.wait_all(cur, 30):
                raise SystemExit("xfr.py: servers did not converge after a timed-out trial")


# --- AXFR ------------------------------------------------------------------

def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


def cmd_axfr(out, runs, pid, server, digout):
    host, port = hostport(server)
    with open(out, "w") as f:
        f.write("run\twall_ms\trecords\tmessages\tbytes\trss_before_kib\trss_max_kib"
                "\trss_after_kib\thwm_before_kib\thwm_after_kib\tsamples\n")
        for r in range(1, int(runs) + 1):
            time.sleep(0.5)
            before = status_kib(pid)
            samples = []
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    samples.append(status_kib(pid)["VmRSS"])
                    stop.wait(0.01)

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            path = f"{digout}.{r}"
            with open(path, "w") as o:
                t0 = time.monotonic()
                key = ["-y", os.environ["DIG_KEY"]] if os.environ.get("DIG_KEY") else []
                rc = subprocess.run(
                    ["dig", *key, f"@{host}", "-p", str(port), "+tcp", "+time=30", "+tries=1",
                     ORIGIN, "AXFR"],
                    stdout=o, stderr=subprocess.STDOUT,
                ).returncode
                wall = (time.monotonic() - t0) * 1000
            stop.set()
            th.join()
            after = status_kib(pid)
            text = open(path).read()
            m = re.search(r"XFR size: (\d+) records \(messages (\d+), bytes (\d+)\)", text)
            if rc or not m:
                raise SystemExit(f"xfr.py: dig AXFR failed (exit {rc}); see {path}")
            rec, msgs, size = m.groups()
            f.write(f"{r}\t{wall:.1f}\t{rec}\t{msgs}\t{size}\t{before['VmRSS']}\t"
                    f"{max(samples + [after['VmRSS']])}\t{after['VmRSS']}\t{before['VmHWM']}"
                    f"\t{after['VmHWM']}\t{len(samples)}\n")
            print(f"  AXFR run {r}: {wall:.0f} ms, {rec} records, {msgs} messages, {size} bytes;"
                  f" RSS {before['VmRSS']} -> max {max(samples + [after['VmRSS']])} kB")


def query_until(addr, name, qtype, ok, deadline):
    """Queries `name qtype` at addr about every TICK until a reply passes
    ok(rcode, ancount); the monotonic time that reply was read, or None at
    the deadline. Also returns the number of queries sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(addr)
    s.setblocking(False)
    tail = vb.encode_name(name) + struct.pack("!HH", qtype, 1)
    qid, sent = random.randrange(65536), 0
    try:
        while time.monotonic() < deadline:
            qid = (qid + 1) & 0xFFFF
            try:
                s.send(struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + tail)
            except OSError:
                pass  # ICMP refused: nobody listens yet
            sent += 1
            end = time.monotonic() + TICK
            while (wait := end - time.monotonic()) > 0:
                if not select.select([s], [], [], wait)[0]:
                    break
                try:
                    msg = s.recv(4096)
                except OSError:
                    continue
                got = time.monotonic()
                if len(msg) >= 12:
                    _rid, flags, _qd, an = struct.unpack("!HHHH", msg[:8])
                    if flags & 0x8000 and ok(flags & 0xF, an):
                        return got, sent
        return None, sent
    finally:
        s.close()


def cmd_fetch(out, records, pid, veer, knot, log, ready):
    last, qtype = big_last(records)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(status_kib(pid)["VmRSS"])
            stop.wait(0.01)

    before = status_kib(pid)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t_ready = time.monotonic()
    open(ready, "w").close()
    # Knot is up when it answers its zone's SOA (it NOTIFYs veer as it
    # loads the zone); veer has the zone when it answers the last name.
    t0, q1 = query_until(hostport(knot), ORIGIN, 6, lambda rc, an: rc == 0 and an > 0,
                         t_ready + 120)
    if t0 is None:
        raise SystemExit("xfr.py: Knot does not answer the zone's SOA within 120 s")
    t1, q2 = query_until(hostport(veer), last, qtype, lambda rc, an: rc == 0 and an > 0, t0 + 120)
    if t1 is None:
        raise SystemExit(f"xfr.py: veer does not answer {last} within 120 s; see {log}")
    time.sleep(1.0)  # veer writes its copy into state_dir after it serves
    stop.set()
    th.join()
    after = status_kib(pid)
    m = None
    for line in open(log, errors="replace"):
        m = re.search(r"AXFR from \S+ to serial \d+: (\d+) records in ([\d.]+) ms", line) or m
    if m is None:
        raise SystemExit(f"xfr.py: no \"AXFR from ... records in ... ms\" line in {log}")
    notified = sum("NOTIFY received" in line for line in open(log, errors="replace"))
    with open(out, "w") as f:
        f.write("knot_up_ms\tveer_ms\tlog_records\tlog_ms\tnotifies\trss_before_kib\trss_max_kib"
                "\trss_after_kib\thwm_before_kib\thwm_after_kib\tsamples\tqueries\n")
        f.write(f"{(t0 - t_ready) * 1000:.1f}\t{(t1 - t0) * 1000:.1f}\t{m.group(1)}\t{m.group(2)}"
                f"\t{notified}\t{before['VmRSS']}\t{max(samples + [after['VmRSS']])}"
                f"\t{after['VmRSS']}\t{before['VmHWM']}\t{after['VmHWM']}\t{len(samples)}"
                f"\t{q1 + q2}\n")
    print(f"  Knot answers {(t0 - t_ready) * 1000:.0f} ms after the start signal; veer answers {last}"
          f" {(t1 - t0) * 1000:.0f} ms later; veer's log: {m.group(1)} records in {m.group(2)} ms;"
          f" RSS {before['VmRSS']} -> max {max(samples + [after['VmRSS']])} -> {after['VmRSS']} kB")


# --- report ------------------------------------------------------------------

def read_tsv(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        return [dict(zip(head, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def col(rows, key):
    return [None if r[key] == "" else float(r[key]) for r in rows]


def med_max(vals):
    ok = [v for v in vals if v is not None]
    miss = len(vals) - len(ok)
    if not ok:
        return "–", "–", miss
    return f"{statistics.median(ok):.1f}", f"{max(ok):.1f}", miss


def diff(a, b):
    return [None if x is None or y is None else x - y for x, y in zip(a, b)]


def table(rows, primary_label, short):
    p, n, k, b = (col(rows, c) for c in ("primary_ms", "nsd_ms", "knot_ms", "both_ms"))
    lines = ["| | median ms | max ms | timeouts |", "|---|---:|---:|---:|"]
    items = [(primary_label, p), ("NSD answers", n), ("Knot answers", k), ("both secondaries", b)]
    items += [(f"NSD − {short} (transfer)", diff(n, p)), (f"Knot − {short} (transfer)", diff(k, p)),
              (f"both − {short} (transfer)", diff(b, p))]
    for label, vals in items:
        m, x, miss = med_max(vals)
        lines.append(f"| {label} | {m} | {x} | {miss} |")
    return "\n".join(lines)


def kib(v):
    return f"{int(v) / 1024:.1f} MiB"


def cmd_report(d, zone_records=None):
    v = read_tsv(os.path.join(d, "veer-trials.tsv"))
    print(f"### Failover propagation, veer primary ({len(v)} trials, health file down/up)")
    print()
    print(table(v, "veer answers (health detection)", "veer"))
    print()
    by = {to: [x for x, r in zip(col(v, "primary_ms"), v) if r["to"] == to] for to in ADDRS}
    m2, _, _ = med_max(by[ADDRS[1]])
    m1, _, _ = med_max(by[ADDRS[0]])
    print(f"(veer's detection by direction: down, to {ADDRS[1]} (fall 3): median {m2} ms;"
          f" up, to {ADDRS[0]} (rise 2): median {m1} ms; the median over both sits between"
          f" the two. A file check probes 30 ms after its file changes, then every interval"
          f" (50 ms here), so about 30 + (fall − 1) × 50 ms down, 30 + (rise − 1) × 50 ms up.)")
    print()
    kp = os.path.join(d, "knot-trials.tsv")
    if os.path.exists(kp):
        k = read_tsv(kp)
        print(f"### Baseline: Knot primary, zone file edit + `knotc zone-reload` ({len(k)} trials)")
        print()
        print(table(k, "Knot primary answers", "Knot primary"))
        cm = [c for c in col(k, "cmd_ms") if c is not None]
        if cm:
            print()
            print(f"(`knotc zone-reload` returned after {statistics.median(cm):.1f} ms median,"
                  f" {max(cm):.1f} ms max.)")
        print()
    a = read_tsv(os.path.join(d, "axfr.tsv"))
    walls = [float(r["wall_ms"]) for r in a]
    r0 = a[0]
    zone = f"a {int(zone_records):,}-record zone" if zone_records else "a zone"
    print(f"### AXFR of {zone} from veer (`dig +tcp AXFR`, {len(a)} runs)")
    print()
    print("| wall (median) | records | messages | bytes | RSS before | RSS max during | "
          "RSS delta | VmHWM after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rss_before = int(a[0]["rss_before_kib"])
    rss_max = max(int(r["rss_max_kib"]) for r in a)
    deltas = [int(r["rss_max_kib"]) - int(r["rss_before_kib"]) for r in a]
    print(f"| {statistics.median(walls):.0f} ms | {int(r0['records']):,} | {int(r0['messages']):,} | "
          f"{int(r0['bytes']):,} | {kib(rss_before)} | {kib(rss_max)} | "
          f"+{kib(max(deltas))} | {kib(a[-1]['hwm_after_kib'])} |")
    print()
    print(f"(walls {', '.join(f'{w:.0f}' for w in walls)} ms; `records` as dig counts them: the"
          f" zone's, the route's A and the closing SOA;"
          f" VmHWM before the first transfer {kib(a[0]['hwm_before_kib'])}, i.e. the zone load;"
          f" RSS sampled every 10 ms, {sum(int(r['samples']) for r in a)} samples;"
          f" the delta is the largest of the runs.)")
    sp = os.path.join(d, "secondary-trials.tsv")
    if os.path.exists(sp):
        st = read_tsv(sp)
        print()
        print(f"### veer as secondary of a Knot primary: zone file edit + `knotc zone-reload`,"
              f" NOTIFY, IXFR ({len(st)} trials)")
        print()
        p, v, c = (col(st, k) for k in ("primary_ms", "veer_ms", "cmd_ms"))
        print("| | median ms | max ms | timeouts |")
        print("|---|---:|---:|---:|")
        for label, vals in (("`knotc zone-reload` returned", c), ("Knot primary answers", p),
                            ("veer answers", v), ("veer − Knot primary (transfer)", diff(v, p))):
            m, x, miss = med_max(vals)
            print(f"| {label} | {m} | {x} | {miss} |")
    fp = os.path.join(d, "fetch.tsv")
    if os.path.exists(fp):
        r = read_tsv(fp)[0]
        zone = f"a {int(zone_records):,}-record zone" if zone_records else "a zone"
        print()
        print(f"### First AXFR of {zone} from Knot into a fresh veer secondary")
        print()
        print("| Knot up → veer answers the last name | veer's log: AXFR | records | RSS before |"
              " RSS max during | RSS after | VmHWM after |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {float(r['veer_ms']):.0f} ms | {float(r['log_ms']):.0f} ms | {int(r['log_records']):,}"
              f" | {kib(r['rss_before_kib'])} | {kib(r['rss_max_kib'])} | {kib(r['rss_after_kib'])}"
              f" | {kib(r['hwm_after_kib'])} |")
        print()
        print(f"(veer was up, without the zone, before Knot started; the clock starts when Knot first"
              f" answers the zone's SOA ({float(r['knot_up_ms']):.0f} ms after the signal to start Knot: its start"
              f" and zone load), as Knot NOTIFYs veer then; veer's log line times its transfer request to"
              f" the zone being served, after its SOA query. NOTIFYs veer logged: {r['notifies']};"
              f" VmHWM before {kib(r['hwm_before_kib'])}; RSS sampled every 10 ms until 1 s after"
              f" veer answered, {r['samples']} samples.)")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"zones": cmd_zones, "trials": cmd_trials, "sectrials": cmd_sectrials, "axfr": cmd_axfr,
          "fetch": cmd_fetch, "report": cmd_report}.get(cmd)
    if fn is None:
        raise SystemExit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main()
