#!/usr/bin/env python3
"""Failover convergence of veer (issue 3, "Done when").

One veer process serves a failover route `www.fo.test. A`:
  tier 1 = 127.0.0.2 (the primary, an HTTP backend on 127.0.0.2:P, http check)
  tier 2 = 127.0.0.3 (the secondary, an HTTP backend on 127.0.0.3:S, http check)
Each trial: wait until the primary's check is up and the answer names the
primary; sleep a random fraction of the interval (so the kill lands at a
random probe phase); kill the primary (close the listener and shut down
every open connection, so connects are refused); then query veer over UDP
back to back and record the time from the kill to the first answer naming
the secondary. Then restart the primary on the same port and record the time
to the first answer naming the primary again (bound: rise x interval).

  bench/failover.py                      # 20 trials, interval 200ms, fall 3, rise 2
  bench/failover.py -n 30 --interval 500ms --fall 2
  bench/failover.py --no-build           # use target/dist/veer as is

Also reported: the kill -> `check primary: up -> down` log line latency
(probe detection alone), and the queries sent (the client's resolution).
"""

import argparse
import os
import random
import shlex
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veerbench as vb  # noqa: E402

PRIMARY_IP, SECONDARY_IP = "127.0.0.2", "127.0.0.3"
NAME = "www.fo.test."


class HttpBackend:
    """Threaded HTTP/1.1 keep-alive server on a fixed loopback address that
    can be killed (listener closed, live connections shut down) and
    restarted on the same port."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

    def __init__(self, ip):
        self.ip, self.port = ip, 0
        self.listener = None
        self.conns = set()
        self.lock = threading.Lock()
        self.requests = 0
        self.start()

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                s.bind((self.ip, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        s.listen(128)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                if self.listener is not listener:
                    c.close()
                    return
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                _, buf = buf.split(b"\r\n\r\n", 1)
                self.requests += 1
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


def parse_duration(s):
    s = s.strip()
    for suf, mul in (("ms", 0.001), ("s", 1.0)):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * mul
    return float(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--trials", type=int, default=20)
    ap.add_argument("--interval", default="200ms")
    ap.add_argument("--fall", type=int, default=3)
    ap.add_argument("--rise", type=int, default=2)
    ap.add_argument("--timeout", default=None, help="check timeout (default: veer's, interval/2)")
    ap.add_argument("--jitter", default=None, help="check jitter (default: veer's, interval/10)")
    ap.add_argument("--workers", type=int, default=None, help="veer --workers")
    ap.add_argument("--query-gap", type=float, default=0.0, help="seconds between queries (0 = back to back)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each trial")
    args = ap.parse_args()
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], vb.ROOT)] + sys.argv[1:])
    interval = parse_duration(args.interval)
    bound = args.fall * interval
    rbound = args.rise * interval

    veer_bin = vb.build_veer(args.no_build)
    primary = HttpBackend(PRIMARY_IP)
    secondary = HttpBackend(SECONDARY_IP)

    tmp = tempfile.mkdtemp(prefix="veer-failover-")
    vb.write_zone(os.path.join(tmp, "fo.test.zone"), "fo.test.")
    opts = f'interval = "{args.interval}"\nfall = {args.fall}\nrise = {args.rise}\n'
    if args.timeout:
        opts += f'timeout = "{args.timeout}"\n'
    if args.jitter:
        opts += f'jitter = "{args.jitter}"\n'
    # state_dir must be set: without it veer's controller stops at once
    # (its command channel closes) and no transition is ever applied.
    config = f"""[server]
listen = ["127.0.0.1:0"]
state_dir = "state"

[rrl]
responses_per_second = 0   # the poller asks one name thousands of times a second

[[zone]]
origin = "fo.test."
file = "fo.test.zone"

[check.primary]
http = "http://{PRIMARY_IP}:{primary.port}/health"
{opts}
[check.secondary]
http = "http://{SECONDARY_IP}:{secondary.port}/health"
{opts}
[[route]]
name = "{NAME}"
type = "A"
ttl = 5
policy = "failover"
members = [
  {{ tier = 1, value = "{PRIMARY_IP}", check = "primary" }},
  {{ tier = 2, value = "{SECONDARY_IP}", check = "secondary" }},
]
"""
    cfg_path = os.path.join(tmp, "veer.toml")
    with open(cfg_path, "w") as f:
        f.write(config)

    extra = ["--workers", str(args.workers)] if args.workers else []
    veer = vb.Veer(veer_bin, cfg_path, extra=extra)
    try:
        server = veer.udp_addr()
        dns = vb.DnsClient(server)

        def state_of(check):
            with veer.cond:
                ts = [t for t in veer.transitions if t[1] == check]
            return ts[-1][3] if ts else "unknown"

        def ask():
            r = dns.query(NAME)
            return r[1] if r and r[0] == 0 else None

        # Cross-check the raw client against dig once.
        if not veer.wait_for(lambda: state_of("primary") == "up" and state_of("secondary") == "up", 10):
            veer.dump_log()
            raise SystemExit("checks did not come up")
        mine, digs = ask(), vb.dig_a(server, NAME)
        if digs is None:
            print("note: dig not installed; raw client not cross-checked")
        elif mine != digs:
            raise SystemExit(f"raw client {mine} != dig {digs}")
        else:
            print(f"client check: raw UDP client and dig agree: {NAME} A -> {mine}")

        down, up, detect, redetect, qcount = [], [], [], [], []
        for trial in range(args.trials):
            # Ready: primary up and answered.
            if not veer.wait_for(lambda: state_of("primary") == "up", 10 + 10 * rbound):
                veer.dump_log()
                raise SystemExit(f"trial {trial}: primary never came back up")
            t_ready = time.monotonic() + 5
            while ask() != [PRIMARY_IP]:
                if time.monotonic() > t_ready:
                    raise SystemExit(f"trial {trial}: answer is not the primary")
                time.sleep(0.005)
            time.sleep(random.uniform(0, interval))
            n_tr = len(veer.transitions)

            # Kill -> first answer naming the secondary.
            primary.kill()
            t0 = time.monotonic()
            sent0 = dns.sent
            deadline = t0 + 10 * bound + 5
            while True:
                a = ask()
                now = time.monotonic()
                if a is not None and SECONDARY_IP in a and PRIMARY_IP not in a:
                    break
                if now > deadline:
                    veer.dump_log()
                    raise SystemExit(f"trial {trial}: no failover within {now - t0:.1f}s")
                if args.query_gap:
                    time.sleep(args.query_gap)
            down.append(now - t0)
            qcount.append(dns.sent - sent0)
            t_log = veer.wait_for(lambda: next(
                (t[0] for t in veer.transitions[n_tr:] if t[1] == "primary" and t[3] == "down"), None), 2)
            if t_log is not None:
                detect.append(t_log - t0)

            # Restore -> first answer naming the primary again. The failover
            # answer came right after a probe, so sleep a random fraction of
            # the interval first (else the restart is phase-locked to it).
            time.sleep(random.uniform(0, interval))
            n_tr = len(veer.transitions)
            primary.start()
            t1 = time.monotonic()
            deadline = t1 + 10 * rbound + 5
            while True:
                a = ask()
                now = time.monotonic()
                if a == [PRIMARY_IP]:
                    break
                if now > deadline:
                    veer.dump_log()
                    raise SystemExit(f"trial {trial}: primary not answered again within {now - t1:.1f}s")
                if args.query_gap:
                    time.sleep(args.query_gap)
            up.append(now - t1)
            t_log = veer.wait_for(lambda: next(
                (t[0] for t in veer.transitions[n_tr:] if t[1] == "primary" and t[3] == "up"), None), 2)
            if t_log is not None:
                redetect.append(t_log - t1)
            if args.verbose:
                print(f"trial {trial + 1:3d}: kill -> secondary {down[-1] * 1000:7.1f} ms "
                      f"({qcount[-1]} queries)   restore -> primary {up[-1] * 1000:7.1f} ms")

        ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
        def row(label, vals, b):
            lo, med, hi = vb.stats(vals)
            over = sum(1 for v in vals if v > b)
            return (f"{label:<34} min {ms(lo):>9}  median {ms(med):>9}  max {ms(hi):>9}   "
                    f"(n={len(vals)}, {over} over the bound)")

        jit = args.jitter or f"veer default {interval / 10 * 1000:.0f}ms"
        print(f"\nveer failover convergence, {args.trials} trials "
              f"(interval {args.interval}, fall {args.fall}, rise {args.rise}, jitter {jit})")
        jitter = parse_duration(args.jitter) if args.jitter else interval / 10
        print(f"  bound fall x interval = {ms(bound)}; rise x interval = {ms(rbound)} "
              f"(with jitter: fall x (interval + jitter) = {ms(args.fall * (interval + jitter))}, "
              f"rise x (interval + jitter) = {ms(args.rise * (interval + jitter))})")
        print(row("kill -> first answer = secondary", down, bound))
        print(row("  kill -> 'up -> down' log line", detect, bound))
        print(row("restore -> first answer = primary", up, rbound))
        print(row("  restore -> 'down -> up' log line", redetect, rbound))
        lo, med, hi = vb.stats(qcount)
        print(f"  queries per failover: min {lo} median {med} max {hi} "
              f"(resolution ~{1000 * vb.stats(down)[1] / max(med, 1):.2f} ms/query)")
        print(f"  primary backend served {primary.requests} probe requests")
        print(f"command: {cmd}")
    finally:
        veer.stop()


if __name__ == "__main__":
    main()
