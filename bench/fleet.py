#!/usr/bin/env python3
"""Helper of bench/fleet.sh (stdlib only); not meant to be run alone.

  fleet.py wait-fleet TIMEOUT API...
                       polls each instance's /v1/status (API: host:port)
                       until its `fleet.peers` are all live
  fleet.py trials OUT.tsv N PORT INTERVAL RISE DNS...
                       runs the HTTP backend on 127.0.0.1:PORT and N
                       failover trials against the instances DNS...
                       (label=host:port); INTERVAL in seconds
  fleet.py load OUT.tsv SECONDS PORT INTERVAL RISE DNS...
                       runs the backend, waits until every instance answers
                       the tier-1 address (and RISE intervals more), then
                       counts the backend's requests per client address
                       over SECONDS
  fleet.py report DIR  the Markdown report from DIR's TSVs

A trial: backend up (listener bound) -> every instance answers 192.0.2.1
(polled every 5 ms); then RISE x (INTERVAL + jitter) + 100 ms more, so that
every prober's own verdict is up (not only the fleet's); then a random
0..INTERVAL, so the kill lands at a random probe phase; kill (listener
closed, open connections shut down: connects are refused); then every
instance is queried over UDP about every 1 ms (bench/xfr.py's poller) until
it answers exactly 192.0.2.2. Times are from the kill to the first such
reply read from each instance (time.monotonic()); "first" and "last" are
the earliest and latest instance. The restore time (backend up -> last
instance answers 192.0.2.1) is recorded too.
"""

import json
import os
import random
import socket
import statistics
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veerbench as vb  # noqa: E402
import xfr  # noqa: E402  (its Poller)

NAME = "www.f.test."
UP, DOWN = "192.0.2.1", "192.0.2.2"  # tier 1 (check web), tier 2
TRIAL_TIMEOUT = 15.0


# --- backend ---------------------------------------------------------------

class Backend:
    """HTTP/1.1 keep-alive server on 127.0.0.1:PORT that counts requests
    and connections per client address, and can be killed (listener
    closed, live connections shut down) and restarted on the same port."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

    def __init__(self, port):
        self.port = port
        self.listener = None
        self.conns = set()
        self.lock = threading.Lock()
        self.requests = {}  # client ip -> count
        self.connections = {}

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        s.listen(128)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                c, addr = listener.accept()
            except OSError:
                return
            with self.lock:
                if self.listener is not listener:
                    c.close()
                    return
                self.conns.add(c)
                self.connections[addr[0]] = self.connections.get(addr[0], 0) + 1
            threading.Thread(target=self._serve, args=(c, addr[0]), daemon=True).start()

    def _serve(self, c, ip):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                _, buf = buf.split(b"\r\n\r\n", 1)
                with self.lock:
                    self.requests[ip] = self.requests.get(ip, 0) + 1
                c.sendall(self.RESPONSE)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
            c.close()

    def kill(self):
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = list(self.conns), set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def counts(self):
        with self.lock:
            return dict(self.requests), dict(self.connections)


# --- polling ---------------------------------------------------------------

class Poller(xfr.Poller):
    """bench/xfr.py's poller (one UDP socket per instance, ~1 ms ticks),
    asking NAME A."""

    def __init__(self, servers):
        super().__init__(servers)
        self.query_tail = vb.encode_name(NAME) + struct.pack("!HH", 1, 1)


def servers_of(specs):
    out = []
    for s in specs:
        label, addr = s.split("=", 1)
        out.append((label, xfr.hostport(addr)))
    return out


def wait_answering(p, want, timeout):
    """Every instance answers exactly `want` (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.current(label) == (0, [want]) for label, _ in p.servers):
            return True
        time.sleep(0.005)
    return False


def fail(p, msg):
    for label, _ in p.servers:
        print(f"  {label}: {p.current(label)}", file=sys.stderr)
    raise SystemExit(f"fleet.py: {msg}")


def settle(interval, rise):
    # Every prober has probed the live backend RISE times (jitter is
    # interval/10 by default): its own verdict is up, not only the quorum's.
    time.sleep(rise * interval * 1.1 + 0.1)


# --- commands --------------------------------------------------------------

def cmd_wait_fleet(timeout, *apis):
    deadline = time.monotonic() + float(timeout)
    pending = list(apis)
    last = {}
    while pending and time.monotonic() < deadline:
        for api in list(pending):
            try:
                with urllib.request.urlopen(f"http://{api}/v1/status", timeout=2) as r:
                    st = json.load(r)
            except OSError as e:
                last[api] = str(e)
                continue
            peers = (st.get("fleet") or {}).get("peers") or []
            last[api] = [(x["name"], x["live"], x.get("error")) for x in peers]
            if peers and all(x["live"] for x in peers):
                pending.remove(api)
        time.sleep(0.1)
    if pending:
        raise SystemExit(f"fleet.py: fleet not formed within {timeout}s: {last}")


def cmd_trials(out, n, port, interval, rise, *specs):
    n, interval, rise = int(n), float(interval), int(rise)
    servers = servers_of(specs)
    labels = [label for label, _ in servers]
    p = Poller(servers)
    b = Backend(int(port))
    with open(out, "w") as f:
        f.write("trial\tfirst_ms\tlast_ms\trestore_ms\tqueries\t" + "\t".join(f"{x}_ms" for x in labels) + "\n")
        for t in range(1, n + 1):
            t_up = time.monotonic()
            b.start()
            if not wait_answering(p, UP, TRIAL_TIMEOUT):
                fail(p, f"trial {t}: not every instance answers {NAME} A {UP} after the backend came up")
            restore = time.monotonic() - t_up
            settle(interval, rise)
            time.sleep(random.uniform(0, interval))
            sent0 = p.sent
            b.kill()
            t0 = time.monotonic()
            res = p.poll(DOWN, t0, TRIAL_TIMEOUT)
            if None in res.values():
                fail(p, f"trial {t}: not every instance answered {DOWN} within {TRIAL_TIMEOUT:.0f}s: {res}")
            ms = [res[x] * 1000 for x in labels]
            f.write(f"{t}\t{min(ms):.1f}\t{max(ms):.1f}\t{restore * 1000:.1f}\t{p.sent - sent0}\t"
                    + "\t".join(f"{v:.1f}" for v in ms) + "\n")
            f.flush()
            print(f"  trial {t:2}/{n}: kill -> first {min(ms):6.1f} ms, last {max(ms):6.1f} ms"
                  f" ({', '.join(f'{x} {v:.1f}' for x, v in zip(labels, ms))});"
                  f" restore -> all {restore * 1000:.0f} ms", flush=True)


def cmd_load(out, seconds, port, interval, rise, *specs):
    seconds, interval, rise = float(seconds), float(interval), int(rise)
    p = Poller(servers_of(specs))
    b = Backend(int(port))
    b.start()
    if not wait_answering(p, UP, TRIAL_TIMEOUT):
        fail(p, f"not every instance answers {NAME} A {UP} after the backend came up")
    settle(interval, rise)
    r0, c0 = b.counts()
    t0 = time.monotonic()
    time.sleep(seconds)
    r1, c1 = b.counts()
    wall = time.monotonic() - t0
    b.kill()
    with open(out, "w") as f:
        f.write("source\trequests\tconnections\tseconds\tinterval_s\n")
        for ip in sorted(set(r1) | set(c1)):
            f.write(f"{ip}\t{r1.get(ip, 0) - r0.get(ip, 0)}\t{c1.get(ip, 0) - c0.get(ip, 0)}"
                    f"\t{wall:.3f}\t{interval}\n")


# --- report ----------------------------------------------------------------

def read_tsv(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        return [dict(zip(head, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def col(rows, key):
    return [float(r[key]) for r in rows]


def mmm(vals):
    lo, med, hi = vb.stats(vals)
    return f"{lo:.1f} | {med:.1f} | {hi:.1f}"


def cmd_report(d):
    with open(os.path.join(d, "params.txt")) as f:
        params = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    single = read_tsv(os.path.join(d, "trials-single.tsv"))
    fleet = read_tsv(os.path.join(d, "trials-fleet.tsv"))
    print(f"### Failover: backend killed -> instances answer {DOWN} "
          f"({params['interval']} interval, {params['timeout']} timeout, fall {params['fall']}, rise {params['rise']})")
    print()
    print("| | trials | min ms | median ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    s_last, f_first, f_last = col(single, "last_ms"), col(fleet, "first_ms"), col(fleet, "last_ms")
    print(f"| single instance (no [fleet]) | {len(single)} | {mmm(s_last)} |")
    print(f"| fleet of 3, first instance | {len(fleet)} | {mmm(f_first)} |")
    print(f"| fleet of 3, last instance | {len(fleet)} | {mmm(f_last)} |")
    print(f"| fleet, last − first (same trial) | {len(fleet)} | {mmm([b - a for a, b in zip(f_first, f_last)])} |")
    print(f"| restore -> all answer {UP}: single | {len(single)} | {mmm(col(single, 'restore_ms'))} |")
    print(f"| restore -> all answer {UP}: fleet | {len(fleet)} | {mmm(col(fleet, 'restore_ms'))} |")
    print()
    ds = statistics.median(f_last) - statistics.median(s_last)
    df = statistics.median(f_first) - statistics.median(s_last)
    print(f"Difference of medians, fleet − single: last instance {ds:+.1f} ms, first instance {df:+.1f} ms"
          f" (bound for one prober: fall × interval = {int(params['fall']) * float(params['interval_s']) * 1000:.0f} ms;"
          f" fleet: probers {params['probers']}, quorum majority, peer_timeout {params['peer_timeout']}).")
    print()
    print(f"### Probe load on the backend, fleet of 3, {params['load_s']} s each")
    print()
    print("| probers | source (instance) | requests | per second | per interval | connections |")
    print("|---:|---|---:|---:|---:|---:|")
    iv = float(params["interval_s"])
    for k in ("3", "1"):
        path = os.path.join(d, f"load-p{k}.tsv")
        if not os.path.exists(path):
            continue
        rows = read_tsv(path)
        total = 0
        for r in rows:
            req, secs = int(r["requests"]), float(r["seconds"])
            total += req
            inst = f"ns{int(r['source'].rsplit('.', 1)[1]) - 1}" if r["source"].startswith("127.0.0.") else "?"
            print(f"| {k} | {r['source']} ({inst}) | {req} | {req / secs:.2f} | {req / (secs / iv):.2f}"
                  f" | {r['connections']} |")
        secs = float(rows[0]["seconds"]) if rows else 1
        print(f"| {k} | **all** | **{total}** | **{total / secs:.2f}** | **{total / (secs / iv):.2f}** | |")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"wait-fleet": cmd_wait_fleet, "trials": cmd_trials, "load": cmd_load,
          "report": cmd_report}.get(cmd)
    if fn is None:
        raise SystemExit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main()
