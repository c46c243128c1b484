#!/usr/bin/env python3
"""Helper of bench/dnssec.sh (stdlib only); not meant to be run alone.

  dnssec.py ratios RUNS.TSV [CLK_TCK]
        signed ÷ unsigned from a bench/run.sh run: medians over rounds of
        QPS per server core and user/system µs per query (bench/table.py's
        per-run figures), per pair of rows and query set, and the mean
        response size dnsperf saw
  dnssec.py transition DIR VEER CPU TRIALS ZONE BIG
        health transition -> new (signed) answer: veer servers with a file
        check (interval 10ms, fall 1, rise 1) and a failover route
        app.bench.test. A (tier 1 192.0.2.1 on the check, tier 2
        192.0.2.2), on CPU; ZONE unsigned and signed, and a BIG-record zone
        unsigned and signed (BIG = 0: not those); TRIALS x (down, up) per
        server, servers interleaved; writes DIR/transition.tsv
  dnssec.py load DIR VEER CPU RUNS BIG
        `veer check --config` under /usr/bin/time -v on a BIG-record zone,
        unsigned and signed (wall, CPU, peak RSS), then `veer serve` on it:
        start -> its last name answered, VmRSS/VmHWM 1 s later; RUNS x each,
        interleaved; writes DIR/load.tsv
  dnssec.py report DIR
        the Markdown report of DIR's TSVs (ratios.md is printed as is)

A signed server's answer counts only with an RRSIG over the A set in the
answer section (the poller sets DO); an unsigned server is asked with EDNS
and DO clear (like bench/run.sh's veer-edns row). Times are
time.monotonic(); a trial's clock starts just before the new health file is
renamed into place.
"""

import csv
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table  # noqa: E402  (bench/table.py: per_run)
import veerbench as vb  # noqa: E402
import xfr  # noqa: E402  (bench/xfr.py: big_zone, big_last)

ORIGIN = "bench.test."
NAME = "app.bench.test."
ADDRS = ("192.0.2.1", "192.0.2.2")  # tier 1 (health file p), tier 2
GAP = float(os.environ.get("DNSSEC_GAP", "0.3"))  # seconds between trials


def med(v):
    return statistics.median(v) if v else float("nan")


def read_tsv(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def kib(k):
    return f"{int(k) / 1024:,.0f} MiB"


# --- 1. ratios of a run.sh run ------------------------------------------------

PAIRS = (  # (signed row, unsigned baseline)
    ("veer-dnssec", "veer-edns"),
    ("veer-dnssec-nodo", "veer-edns"),
    ("veer-routed-dnssec", "veer-routed-edns"),
)


def response_bytes(run_dir, server, qset):
    """Mean response size dnsperf reported, median over rounds."""
    out = []
    for d in os.listdir(run_dir):
        if not re.fullmatch(re.escape(f"{server}-{qset}") + r"-r\d+", d):
            continue
        try:
            text = open(os.path.join(run_dir, d, "dnsperf.txt")).read()
        except OSError:
            continue
        m = re.search(r"Average packet size:\s+request (\d+), response (\d+)", text)
        if m:
            out.append(int(m.group(2)))
    return med(out) if out else None


def cmd_ratios(tsv, hz=None):
    hz = int(hz) if hz else os.sysconf("SC_CLK_TCK")
    groups = {}
    for r in read_tsv(tsv):
        m = table.per_run(r, hz)
        if m is not None:
            groups.setdefault((r["server"], r["set"]), []).append(m)
    run_dir = os.path.dirname(tsv)
    print("| signed | unsigned | queries | QPS per server core | ÷ | user µs/query | ÷ | "
          "system µs/query | ÷ | response bytes | rounds |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    sets = []
    for (_, s) in groups:
        if s not in sets:
            sets.append(s)
    for signed, unsigned in PAIRS:
        for qset in sets:
            a, b = groups.get((signed, qset)), groups.get((unsigned, qset))
            if not a or not b:
                continue

            def m(g, col):
                return med([x[col] for x in g])

            def cell(col, fmt):
                return f"{fmt.format(m(b, col))} → {fmt.format(m(a, col))}", f"{m(a, col) / m(b, col):.2f}"

            pc, pcr = cell("per_core", "{:,.0f}")
            us, usr = cell("user_us", "{:.2f}")
            sy, syr = cell("sys_us", "{:.2f}")
            rb = (response_bytes(run_dir, unsigned, qset), response_bytes(run_dir, signed, qset))
            rbs = f"{rb[0]:.0f} → {rb[1]:.0f}" if None not in rb else ""
            print(f"| {signed} | {unsigned} | {qset} | {pc} | **{pcr}** | {us} | {usr} | {sy} | {syr} "
                  f"| {rbs} | {min(len(a), len(b))} |")


# --- DNS with EDNS ------------------------------------------------------------

def query_packet(qid, name, qtype, do):
    # RD clear; one OPT RR: payload 1232, DO as asked.
    return (struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + vb.encode_name(name)
            + struct.pack("!HH", qtype, 1)
            + b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000 if do else 0, 0))


def parse_answer(msg, qid, qtype=1):
    """(rcode, sorted A addresses, RRSIGs over qtype and records in the
    answer section), or None if msg is not the answer to qid."""
    if len(msg) < 12:
        return None
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        return None
    off = 12
    for _ in range(qd):
        off = vb.skip_name(msg, off) + 4
    addrs, sigs = [], 0
    for _ in range(an):
        off = vb.skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[off:off + 4]))
        elif rtype == 46 and struct.unpack("!H", msg[off:off + 2])[0] == qtype:
            sigs += 1
        off += rdlen
    return flags & 0xF, sorted(addrs), sigs, an


class Client:
    """Back-to-back UDP queries (the next one as soon as the answer is read)."""

    def __init__(self, addr, do, timeout=0.5):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.connect(addr)
        self.s.settimeout(timeout)
        self.do = do
        self.qid = random.randrange(65536)
        self.sent = 0

    def ask(self, name=NAME, qtype=1):
        self.qid = (self.qid + 1) & 0xFFFF
        self.s.send(query_packet(self.qid, name, qtype, self.do))
        self.sent += 1
        while True:
            try:
                msg = self.s.recv(4096)
            except socket.timeout:
                return None
            r = parse_answer(msg, self.qid, qtype)
            if r is not None:
                return r

    def serves(self, addr, r):
        """r is the answer `addr` (signed, if this client sets DO)."""
        return r is not None and r[0] == 0 and r[1] == [addr] and (r[2] > 0 or not self.do)

    def close(self):
        self.s.close()


# --- servers -------------------------------------------------------------------

def write_config(d, zone, signed, check=True, route=True):
    """d/veer.toml for ZONE (copied in as d/zone), signed or not; keys
    made in d/keys by `veer dnssec keygen`."""
    os.makedirs(os.path.join(d, "health"), exist_ok=True)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    zpath = os.path.join(d, "zone")
    if not os.path.exists(zpath):
        # zone files may be large: a hard link where possible
        try:
            os.link(zone, zpath)
        except OSError:
            with open(zone) as src, open(zpath, "w") as dst:
                dst.write(src.read())
    with open(os.path.join(d, "health", "p"), "w") as f:
        f.write("up\n")
    conf = f"""[server]
listen = ["127.0.0.1:0"]
workers = 1
udp_sockets = 1
state_dir = "{d}/state"

[rrl]
responses_per_second = 0   # the poller asks one name thousands of times a second

[[zone]]
origin = "{ORIGIN}"
file = "{zpath}"
dnssec = {"true" if signed else "false"}

[dnssec]
key_dir = "{d}/keys"
"""
    if check:
        conf += f"""
[check.p]
file = "{d}/health/p"
interval = "10ms"
fall = 1
rise = 1
"""
    if route:
        conf += f"""
[[route]]
name = "{NAME}"
type = "A"
ttl = 30
policy = "failover"
members = [ {{ value = "{ADDRS[0]}", check = "p", tier = 1 }}, {{ value = "{ADDRS[1]}", tier = 2 }} ]
"""
    cfg = os.path.join(d, "veer.toml")
    with open(cfg, "w") as f:
        f.write(conf)
    if signed and not os.path.isdir(os.path.join(d, "keys")):
        subprocess.run([VEER, "dnssec", "keygen", "--config", cfg, ORIGIN], check=True,
                       stdout=subprocess.DEVNULL)
    return cfg


def ds_of(cfg):
    out = subprocess.run([VEER, "dnssec", "ds", "--config", cfg, ORIGIN], check=True,
                         capture_output=True, text=True).stdout
    return next(line for line in out.splitlines() if " DS " in line)


def delv(d, addr, ds, name, qtype="A"):
    """delv's verdict on `name qtype` at addr (host, port), trusting ds."""
    f = ds.split()
    anchors = os.path.join(d, "anchors.conf")
    with open(anchors, "w") as o:
        o.write(f'trust-anchors {{ "{f[0]}" static-ds {f[-4]} {f[-3]} {f[-2]} "{f[-1]}"; }};\n')
    p = subprocess.run(["delv", "-a", anchors, f"+root={ORIGIN.rstrip('.')}", f"@{addr[0]}", "-p",
                        str(addr[1]), name, qtype], capture_output=True, text=True)
    return p.stdout + p.stderr


def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


# --- 2. transition -> signed answer ----------------------------------------------

class Server:
    def __init__(self, label, d, zone, signed, cpu, records):
        self.label, self.d, self.signed, self.records = label, d, signed, records
        self.cfg = write_config(d, zone, signed)
        self.t_start = time.monotonic()
        self.veer = vb.Veer(VEER, self.cfg, cpus=cpu)
        self.addr = self.veer.udp_addr(timeout=600)
        self.client = Client(self.addr, do=signed)
        deadline = time.monotonic() + 600
        while not self.client.serves(ADDRS[0], self.client.ask()):
            if time.monotonic() > deadline or self.veer.proc.poll() is not None:
                self.veer.dump_log()
                raise SystemExit(f"dnssec.py: {label} does not answer {NAME} A {ADDRS[0]}")
            time.sleep(0.01)
        self.ready_s = time.monotonic() - self.t_start
        self.rss = status_kib(self.veer.pid)

    def trial(self, new):
        """Flips the health file so the answer becomes `new`; (ms to the
        first such answer, ms to the check's log line, queries sent)."""
        c = self.client
        n_tr = len(self.veer.transitions)
        want_state = "down" if new == ADDRS[1] else "up"
        sent0 = c.sent
        health = os.path.join(self.d, "health", "p")
        t0 = time.monotonic()
        write_atomic(health, want_state + "\n")
        deadline = t0 + 10
        while True:
            r = c.ask()
            now = time.monotonic()
            if c.serves(new, r):
                break
            if now > deadline:
                self.veer.dump_log()
                raise SystemExit(f"dnssec.py: {self.label}: no {new} within 10 s (last {r})")
        t_log = self.veer.wait_for(lambda: next(
            (t[0] for t in self.veer.transitions[n_tr:] if t[1] == "p" and t[3] == want_state), None), 2)
        return ((now - t0) * 1000, None if t_log is None else (t_log - t0) * 1000, c.sent - sent0)


def cmd_transition(d, veer, cpu, trials, zone, big):
    global VEER
    VEER = veer
    trials, big = int(trials), int(big)
    zones = [("unsigned", zone, False, None), ("signed", zone, True, None)]
    if big:
        bz = os.path.join(d, "big.zone")
        with open(bz, "w") as f:
            f.write(xfr.big_zone(big))
        zones += [(f"{big // 1000}k unsigned", bz, False, big), (f"{big // 1000}k signed", bz, True, big)]
    servers = []
    try:
        for label, z, signed, records in zones:
            s = Server(label, os.path.join(d, label.replace(" ", "-")), z, signed, cpu, records)
            servers.append(s)
            print(f"  {label}: serving {NAME} A {ADDRS[0]} {s.ready_s:.2f} s after start, "
                  f"VmRSS {kib(s.rss['VmRSS'])}")
        rows = []
        for t in range(1, trials + 1):
            order = servers[t % len(servers):] + servers[:t % len(servers)]  # rotate who goes first
            for new in (ADDRS[1], ADDRS[0]):
                for s in order:
                    time.sleep(GAP + random.random() * 0.05)
                    ms, log_ms, q = s.trial(new)
                    rows.append((t, s.label, "down" if new == ADDRS[1] else "up", ms, log_ms, q))
            line = ", ".join(f"{s.label} {next(r[3] for r in rows[::-1] if r[1] == s.label and r[2] == 'down'):.1f}"
                             for s in servers)
            print(f"  trial {t:2}/{trials} (down, ms): {line}")
        # A validator's view of each signed server's answer and of a name
        # that does not exist (the NSEC chain).
        checks = []
        for s in servers:
            if not s.signed:
                continue
            ds = ds_of(s.cfg)
            for name in (NAME, "nx-does-not-exist." + ORIGIN):
                out = delv(s.d, s.addr, ds, name)
                ok = "; fully validated" in out or "; negative response, fully validated" in out
                checks.append(f"{s.label}: delv {name} A: {'fully validated' if ok else 'NOT VALIDATED'}")
                if not ok:
                    print(out, file=sys.stderr)
        with open(os.path.join(d, "transition.tsv"), "w") as f:
            f.write("trial\tserver\tto\tanswer_ms\tlog_ms\tqueries\n")
            for t, label, to, ms, log_ms, q in rows:
                f.write(f"{t}\t{label}\t{to}\t{ms:.2f}\t{'' if log_ms is None else f'{log_ms:.2f}'}\t{q}\n")
        with open(os.path.join(d, "servers.tsv"), "w") as f:
            f.write("server\tready_s\trss_kib\thwm_kib\n")
            for s in servers:
                f.write(f"{s.label}\t{s.ready_s:.2f}\t{s.rss['VmRSS']}\t{s.rss['VmHWM']}\n")
        with open(os.path.join(d, "delv.txt"), "w") as f:
            f.write("\n".join(checks) + "\n")
        for c in checks:
            print("  " + c)
    finally:
        for s in servers:
            s.veer.stop()


# --- 3. signing at load ---------------------------------------------------------

def time_v(argv):
    """Runs argv under /usr/bin/time -v: (exit code, {wall_s, user_s, sys_s, maxrss_kib})."""
    p = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    e = p.stderr
    def grab(pat):
        m = re.search(pat, e)
        return m.group(1) if m else None
    wall = grab(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)")
    secs = 0.0
    for part in (wall or "0").split(":"):
        secs = secs * 60 + float(part)
    return p.returncode, {
        "wall_s": secs,
        "user_s": float(grab(r"User time \(seconds\): (\S+)") or 0),
        "sys_s": float(grab(r"System time \(seconds\): (\S+)") or 0),
        "maxrss_kib": int(grab(r"Maximum resident set size \(kbytes\): (\d+)") or 0),
    }, p.stdout + e


def cmd_load(d, veer, cpu, runs, big):
    global VEER
    VEER = veer
    runs, big = int(runs), int(big)
    bz = os.path.join(d, "big.zone")
    with open(bz, "w") as f:
        f.write(xfr.big_zone(big))
    last, qtype = xfr.big_last(big)
    kinds = [("unsigned", False), ("signed", True)]
    cfgs = {label: write_config(os.path.join(d, label), bz, signed, check=False, route=False)
            for label, signed in kinds}
    rows = []
    for r in range(1, runs + 1):
        for label, signed in (kinds if r % 2 else kinds[::-1]):
            rc, m, out = time_v(["taskset", "-c", cpu, VEER, "check", "--config", cfgs[label]])
            if rc:
                raise SystemExit(f"dnssec.py: veer check failed ({label}):\n{out}")
            records = re.search(r"(\d+) records", out)
            # veer serve: start -> the zone's last name answered (DO when signed)
            t0 = time.monotonic()
            v = vb.Veer(VEER, cfgs[label], cpus=cpu)
            try:
                addr = v.udp_addr(timeout=600)
                c = Client(addr, do=signed)
                while True:
                    a = c.ask(last, qtype)
                    if a is not None and a[0] == 0 and a[3] > 0 and (a[2] > 0 or not signed):
                        break
                    if time.monotonic() - t0 > 600 or v.proc.poll() is not None:
                        v.dump_log()
                        raise SystemExit(f"dnssec.py: {label} serve does not answer {last}")
                    time.sleep(0.005)
                ready = time.monotonic() - t0
                c.close()
                time.sleep(1.0)
                st = status_kib(v.pid)
            finally:
                v.stop()
            rows.append((r, label, m, records.group(1) if records else "", ready, st))
            print(f"  run {r} {label:8}: veer check {m['wall_s']:.2f} s wall (user {m['user_s']:.2f} s,"
                  f" sys {m['sys_s']:.2f} s), max RSS {kib(m['maxrss_kib'])}; veer serve answers"
                  f" {last} after {ready:.2f} s, VmRSS {kib(st['VmRSS'])}, VmHWM {kib(st['VmHWM'])}")
    with open(os.path.join(d, "load.tsv"), "w") as f:
        f.write("run\tzone\trecords\tcheck_wall_s\tcheck_user_s\tcheck_sys_s\tcheck_maxrss_kib"
                "\tserve_ready_s\tserve_rss_kib\tserve_hwm_kib\n")
        for r, label, m, rec, ready, st in rows:
            f.write(f"{r}\t{label}\t{rec}\t{m['wall_s']:.2f}\t{m['user_s']:.2f}\t{m['sys_s']:.2f}"
                    f"\t{m['maxrss_kib']}\t{ready:.3f}\t{st['VmRSS']}\t{st['VmHWM']}\n")


# --- report ----------------------------------------------------------------------

def cmd_report(d):
    rp = os.path.join(d, "ratios.md")
    if os.path.exists(rp):
        print("### 1. Query load: signed (DO on every query) ÷ unsigned (EDNS, DO clear)")
        print()
        print(open(rp).read().rstrip())
        print()
        print("Medians over rounds of bench/run.sh's per-run figures (the full table is above);"
              " `veer-dnssec-nodo` is the signed zone asked without DO. Goal: QPS per server"
              " core ≥ 0.9 × unsigned.")
        print()
    tp = os.path.join(d, "transition", "transition.tsv")
    if os.path.exists(tp):
        rows = read_tsv(tp)
        sp = os.path.join(d, "transition", "servers.tsv")
        labels = [r["server"] for r in read_tsv(sp)] if os.path.exists(sp) else []
        for r in rows:
            if r["server"] not in labels:
                labels.append(r["server"])
        n = max(int(r["trial"]) for r in rows)
        print(f"### 2. Health file flipped → first new answer (signed: with its RRSIG), {n} trials each way")
        print()
        print("| zone | direction | min ms | median ms | max ms | median → log line ms | "
              "median log line → answer ms | queries (median) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        medians = {}
        for label in labels:
            for to in ("down", "up"):
                sel = [r for r in rows if r["server"] == label and r["to"] == to]
                ms = [float(r["answer_ms"]) for r in sel]
                logs = [float(r["log_ms"]) for r in sel if r["log_ms"]]
                after = [float(r["answer_ms"]) - float(r["log_ms"]) for r in sel if r["log_ms"]]
                q = [int(r["queries"]) for r in sel]
                lo, mid, hi = vb.stats(ms)
                medians[(label, to)] = mid
                print(f"| {label} | {to} | {lo:.1f} | {mid:.1f} | {hi:.1f} | {med(logs):.1f} | "
                      f"{med(after):.1f} | {med(q):.0f} |")
        print()
        notes = []
        for u, s in (("unsigned", "signed"), *[(x, x.replace("unsigned", "signed"))
                                                for x in labels if x.endswith(" unsigned") and x != "unsigned"]):
            for to in ("down", "up"):
                if (u, to) in medians and (s, to) in medians:
                    notes.append(f"{s} − {u} ({to}): {medians[(s, to)] - medians[(u, to)]:+.1f} ms")
        print("Median differences (goal: within 5 ms): " + "; ".join(notes) + ".")
        print("A file check probes 30 ms after its file's change event (CHANGE_SETTLE,"
              " src/health/scheduler.rs) and the controller waits 5 ms for more reports (COALESCE,"
              " src/control/mod.rs), so about 38 ms is detection whatever the interval; a trial near"
              " 7 ms is one where a scheduled 10 ms probe ran between the rename and its change event."
              " The log line is `check p: up -> down` (or back), read from veer's stderr.")
        if os.path.exists(sp):
            print("Start → route answered (signing at load included): " + "; ".join(
                f"{r['server']} {float(r['ready_s']):.2f} s, VmRSS {kib(r['rss_kib'])}" for r in read_tsv(sp)) + ".")
        dp = os.path.join(d, "transition", "delv.txt")
        if os.path.exists(dp):
            print("Validation after the trials: " + "; ".join(l for l in open(dp).read().splitlines() if l) + ".")
        print()
    lp = os.path.join(d, "load", "load.tsv")
    if os.path.exists(lp):
        rows = read_tsv(lp)
        rec = rows[0]["records"]
        print(f"### 3. Loading a {int(rec):,}-record zone (records as `veer check` counts them), "
              f"{max(int(r['run']) for r in rows)} runs each")
        print()
        print("| zone | `veer check` wall | user | system | peak RSS | `veer serve` start → last name answered"
              " | VmRSS 1 s later | VmHWM |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        meds = {}
        for label in ("unsigned", "signed"):
            sel = [r for r in rows if r["zone"] == label]
            if not sel:
                continue
            m = {k: med([float(r[k]) for r in sel]) for k in sel[0] if k not in ("run", "zone", "records")}
            meds[label] = m
            print(f"| {label} | {m['check_wall_s']:.2f} s | {m['check_user_s']:.2f} s | {m['check_sys_s']:.2f} s"
                  f" | {kib(m['check_maxrss_kib'])} | {m['serve_ready_s']:.2f} s | {kib(m['serve_rss_kib'])}"
                  f" | {kib(m['serve_hwm_kib'])} |")
        if len(meds) == 2:
            u, s = meds["unsigned"], meds["signed"]
            print(f"| signed ÷ unsigned | {s['check_wall_s'] / u['check_wall_s']:.2f} | "
                  f"{s['check_user_s'] / max(u['check_user_s'], 0.01):.2f} | | "
                  f"{s['check_maxrss_kib'] / u['check_maxrss_kib']:.2f} | "
                  f"{s['serve_ready_s'] / u['serve_ready_s']:.2f} | {s['serve_rss_kib'] / u['serve_rss_kib']:.2f}"
                  f" | {s['serve_hwm_kib'] / u['serve_hwm_kib']:.2f} |")
        print()
        print("Medians; peak RSS is /usr/bin/time -v's maximum resident set size; VmRSS and VmHWM"
              " from /proc/PID/status.")


VEER = None

if __name__ == "__main__":
    cmds = {"ratios": cmd_ratios, "transition": cmd_transition, "load": cmd_load, "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        raise SystemExit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
