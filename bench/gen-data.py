#!/usr/bin/env python3
"""Writes the benchmark's zone and query sets (deterministic: fixed seeds).

  bench/gen-data.py DIR

DIR/bench.test.zone    the zone bench.test. (master file, every server reads
                       it as is):
                         apex SOA, NS x2, MX x2, TXT
                         host0..host4999 A      (198.18.0.0/15, RFC 2544)
                         host0..host999  AAAA   (2001:db8::/32, RFC 3849)
                         www0..www499    CNAME  host<i>
                         txt0..txt199    TXT
                         mx0..mx19       MX
                         *.wild          A + TXT
                         dyn             A 127.0.0.1 (TTL 30; the name the
                                         routed rows turn into a route)
DIR/queries-mix.txt    100,000 queries: 80% A of a host, 10% AAAA of a host,
                       5% names that do not exist (NXDOMAIN), 5% the rest
                       (apex MX and SOA, TXT, www A through the CNAME, a
                       wildcard A, mx<i> MX)
DIR/queries-dyn.txt    100% "dyn.bench.test A"
DIR/queries-nx.txt     100% NXDOMAIN
DIR/queries-wild.txt   100% wildcard A

Addresses are data only; nothing is ever sent to them.
"""

import os
import random
import sys

ORIGIN = "bench.test."
HOSTS = 5000
HOSTS6 = 1000
ALIASES = 500
TEXTS = 200
MAILS = 20


def zone():
    lines = [
        f"$ORIGIN {ORIGIN}",
        "$TTL 300",
        "@ IN SOA ns1 hostmaster 2026010101 3600 900 604800 300",
        "@ IN NS ns1",
        "@ IN NS ns2",
        "@ IN MX 10 mail1",
        "@ IN MX 20 mail2",
        '@ IN TXT "v=spf1 -all"',
        "ns1 IN A 198.19.255.1",
        "ns2 IN A 198.19.255.2",
        "mail1 IN A 198.19.255.25",
        "mail2 IN A 198.19.255.26",
    ]
    lines += [f"host{i} IN A 198.18.{i >> 8}.{i & 255}" for i in range(HOSTS)]
    lines += [f"host{i} IN AAAA 2001:db8::{i:x}" for i in range(HOSTS6)]
    lines += [f"www{i} IN CNAME host{i}" for i in range(ALIASES)]
    lines += [f'txt{i} IN TXT "text record {i}"' for i in range(TEXTS)]
    lines += [f"mx{i} IN MX 10 mail{1 + i % 2}" for i in range(MAILS)]
    lines += [
        "*.wild IN A 198.19.0.1",
        '*.wild IN TXT "wildcard"',
        "dyn 30 IN A 127.0.0.1",
    ]
    return "\n".join(lines) + "\n"


def mix(rng, n=100_000):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.80:
            out.append(f"host{rng.randrange(HOSTS)}.bench.test A")
        elif r < 0.90:
            out.append(f"host{rng.randrange(HOSTS6)}.bench.test AAAA")
        elif r < 0.95:
            out.append(f"nx{rng.randrange(10**6)}.bench.test A")
        else:
            out.append(rng.choice((
                lambda: "bench.test MX",
                lambda: "bench.test SOA",
                lambda: f"txt{rng.randrange(TEXTS)}.bench.test TXT",
                lambda: f"www{rng.randrange(ALIASES)}.bench.test A",
                lambda: f"w{rng.randrange(10**6)}.wild.bench.test A",
                lambda: f"mx{rng.randrange(MAILS)}.bench.test MX",
            ))())
    return out


def write(path, text):
    # Write only when the content changes, so that reruns keep the files'
    # times (and a server that watches its zone file sees nothing happen).
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: gen-data.py DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "bench.test.zone"), zone())
    rng = random.Random(1035)
    sets = {
        "mix": mix(rng),
        "dyn": ["dyn.bench.test A"] * 1000,
        "nx": [f"nx{rng.randrange(10**6)}.bench.test A" for _ in range(10_000)],
        "wild": [f"w{rng.randrange(10**6)}.wild.bench.test A" for _ in range(10_000)],
    }
    for name, queries in sets.items():
        write(os.path.join(out, f"queries-{name}.txt"), "\n".join(queries) + "\n")


if __name__ == "__main__":
    main()
