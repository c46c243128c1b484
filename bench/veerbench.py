"""Shared helpers for bench/failover.py and bench/probe-cpu.py (stdlib only).

- build_veer(): `cargo build --profile dist` (what operators install;
  VEER_PROFILE=release for the quicker build), returns a private copy of
  target/dist/veer
- Veer: runs `veer serve` on a config, follows its log (each line stamped
  with time.monotonic() as it is read), parses `dns listening on ADDR`
  and `check NAME: OLD -> NEW (reason)` lines
- DnsClient: a raw UDP DNS client (A queries, RD clear), much faster than
  spawning dig; dig_a() asks dig the same thing, to cross-check it once
"""

import os
import random
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LISTEN_RE = re.compile(r"dns listening on (\S+) \(udp, tcp\)")
CHECK_RE = re.compile(r"check (\S+): (\w+) -> (\w+) \((.*)\)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def target_dir():
    """Cargo's target directory (CARGO_TARGET_DIR, else target/)."""
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def proc_times(pid):
    """(utime, stime) of a process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime/stime are fields 14/15.
    return int(fields[11]), int(fields[12])


def build_veer(skip=False):
    profile = os.environ.get("VEER_PROFILE", "dist")
    if not skip:
        subprocess.run(
            ["cargo", "build", "--profile", profile, "--quiet"],
            cwd=ROOT,
            check=True,
        )
    path = os.path.join(target_dir(), profile, "veer")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} missing: run cargo build --profile {profile}")
    # Run a private copy: other people rebuilding target/ mid-run must not
    # swap the binary under the measurement.
    copy = os.path.join(tempfile.mkdtemp(prefix="veer-bin-"), "veer")
    shutil.copy2(path, copy)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        head = "?"
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(path).st_mtime))
    print(f"veer binary: {path} built {built} (HEAD {head}, plus any uncommitted changes)")
    return copy


class Veer:
    """`veer serve --config CONFIG` with its stderr followed in a thread."""

    def __init__(self, binary, config, cpus=None, log_level="info", extra=()):
        argv = [binary, "--log-level", log_level, "serve", "--config", config, *extra]
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + argv
        self.argv = argv
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.pid = self.proc.pid
        self.cond = threading.Condition()
        self.lines = []  # (monotonic, text)
        # (monotonic, name, old, new, reason)
        self.transitions = []
        self.listen = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            now = time.monotonic()
            line = ANSI_RE.sub("", raw.decode("utf-8", "replace").rstrip("\n"))
            with self.cond:
                self.lines.append((now, line))
                m = LISTEN_RE.search(line)
                if m:
                    self.listen.append(m.group(1))
                m = CHECK_RE.search(line)
                if m:
                    self.transitions.append((now, *m.groups()))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """Waits until pred() (called under the lock) is truthy; returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return pred()
                self.cond.wait(min(left, 0.1))

    def udp_addr(self, timeout=15):
        ok = self.wait_for(lambda: self.listen, timeout)
        if not ok:
            self.dump_log()
            raise SystemExit("veer did not log `dns listening on ...`")
        host, port = self.listen[0].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def cpu_ticks(self):
        """utime + stime of the process (all threads), in clock ticks."""
        return sum(proc_times(self.pid))

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def threads(self):
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def dump_log(self, last=40):
        with self.cond:
            for _, line in self.lines[-last:]:
                print("  veer| " + line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP (as bench/lib.sh's)."""
    for _ in range(200):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise SystemExit("no free port on 127.0.0.1")


# --- DNS ---------------------------------------------------------------

def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def parse_a_answers(msg, qid):
    """(rcode, [ipv4 strings]) of a response, or None if it is not ours."""
    if len(msg) < 12:
        return None
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        return None
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[off:off + 4]))
        off += rdlen
    return flags & 0xF, sorted(addrs)


class DnsClient:
    """One UDP socket; query() asks `name A` and returns (rcode, [addrs])."""

    def __init__(self, server, timeout=0.5):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(server)
        self.sock.settimeout(timeout)
        self.qid = random.randrange(65536)
        self.sent = 0

    def query(self, name, qtype=1):
        self.qid = (self.qid + 1) & 0xFFFF
        qid = self.qid
        # flags 0: standard query, RD clear (like dig +norec)
        pkt = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, 1)
        self.sock.send(pkt)
        self.sent += 1
        while True:
            try:
                msg = self.sock.recv(4096)
            except socket.timeout:
                return None
            r = parse_a_answers(msg, qid)
            if r is not None:
                return r


def dig_a(server, name):
    """dig's view of `name A` (sorted addresses), or None without dig."""
    if not shutil.which("dig"):
        return None
    out = subprocess.run(
        ["dig", f"@{server[0]}", "-p", str(server[1]), name, "A", "+norec", "+short", "+tries=1", "+time=2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(l for l in out.split() if re.fullmatch(r"[0-9.]+", l))


ZONE_TEMPLATE = """$ORIGIN {origin}
$TTL 300
@   IN SOA ns1.{origin} hostmaster.{origin} 1 7200 3600 1209600 60
    IN NS  ns1.{origin}
ns1 IN A   192.0.2.53
"""


def write_zone(path, origin):
    with open(path, "w") as f:
        f.write(ZONE_TEMPLATE.format(origin=origin))


def stats(values):
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return v[0], med, v[-1]
