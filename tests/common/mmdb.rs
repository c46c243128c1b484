//! A tiny writer of MaxMind DB files (format 2.0), so tests build their
//! own `.mmdb` instead of downloading one. It writes an IPv6 tree (IPv4
//! networks live under `::/96`, as in MaxMind's databases) with 24-bit
//! records, and GeoIP2-City-shaped data: `continent.code`,
//! `country.iso_code`, `subdivisions[0].iso_code`, `location.latitude` /
//! `location.longitude`.
//!
//! Spec: <https://maxmind.github.io/MaxMind-DB/>.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;

/// One network's location.
#[derive(Debug, Clone, Copy)]
pub struct Loc<'a> {
    pub continent: &'a str,
    pub country: &'a str,
    pub subdivision: Option<&'a str>,
    pub coords: Option<(f64, f64)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// Writes `networks` (`"CIDR"`, location) as a MaxMind DB to `path`.
/// Nested networks are fine (the more specific one wins inside it).
pub fn write(path: &Path, networks: &[(&str, Loc<'_>)]) {
    std::fs::write(path, build(networks)).expect("write mmdb");
}

/// The bytes of a MaxMind DB holding `networks`.
pub fn build(networks: &[(&str, Loc<'_>)]) -> Vec<u8> {
    // (bits left-aligned in 128, prefix length in the IPv6 tree, data index)
    let mut nets: Vec<(u128, u8, usize)> = networks
        .iter()
        .enumerate()
        .map(|(i, (cidr, _))| {
            let (a, l) = cidr.split_once('/').expect("CIDR");
            let l: u8 = l.parse().expect("prefix length");
            match a.parse::<IpAddr>().expect("address") {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + l, i),
                IpAddr::V6(v6) => (u128::from(v6), l, i),
            }
        })
        .collect();
    nets.sort_by_key(|n| n.1);
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for (bits, len, data) in nets {
        assert!(len > 0, "a /0 network is not supported");
        let mut node = 0;
        for depth in 0..len {
            let dir = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                nodes[node][dir] = Rec::Data(data);
                break;
            }
            node = match nodes[node][dir] {
                Rec::Node(n) => n,
                other => {
                    // Empty, or a less specific network: split it.
                    let inherit = match other {
                        Rec::Data(_) => other,
                        _ => Rec::Empty,
                    };
                    nodes.push([inherit, inherit]);
                    let n = nodes.len() - 1;
                    nodes[node][dir] = Rec::Node(n);
                    n
                }
            };
        }
    }

    // Data section: one map per network.
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (_, loc) in networks {
        offsets.push(data.len());
        let mut entries: Vec<(&str, Vec<u8>)> = vec![
            ("continent", map(&[("code", string(loc.continent))])),
            ("country", map(&[("iso_code", string(loc.country))])),
        ];
        if let Some(s) = loc.subdivision {
            entries.push(("subdivisions", array(&[map(&[("iso_code", string(s))])])));
        }
        if let Some((lat, lon)) = loc.coords {
            entries.push((
                "location",
                map(&[("latitude", double(lat)), ("longitude", double(lon))]),
            ));
        }
        data.extend(map(&entries));
    }

    let count = nodes.len();
    let value = |r: Rec| -> usize {
        match r {
            Rec::Empty => count,
            Rec::Node(n) => n,
            Rec::Data(d) => count + 16 + offsets[d],
        }
    };
    let mut out = Vec::new();
    for [l, r] in &nodes {
        for v in [value(*l), value(*r)] {
            assert!(v < 1 << 24, "record does not fit 24 bits");
            out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend(data);
    out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    out.extend(map(&[
        ("binary_format_major_version", uint(5, 2, 2)),
        ("binary_format_minor_version", uint(5, 2, 0)),
        ("build_epoch", uint(9, 8, 1_700_000_000)),
        ("database_type", string("veer-Test-City")),
        ("description", map(&[("en", string("veer test database"))])),
        ("ip_version", uint(5, 2, 6)),
        ("languages", array(&[string("en")])),
        ("node_count", uint(6, 4, count as u64)),
        ("record_size", uint(5, 2, 24)),
    ]));
    out
}

/// A control byte (and extended-type byte) for `typ` with `size` < 29.
fn ctrl(typ: u8, size: usize) -> Vec<u8> {
    assert!(size < 29, "sizes of 29 and more are not needed here");
    if typ <= 7 {
        vec![(typ << 5) | size as u8]
    } else {
        vec![size as u8, typ - 7]
    }
}

fn string(s: &str) -> Vec<u8> {
    let mut v = ctrl(2, s.len());
    v.extend_from_slice(s.as_bytes());
    v
}

fn double(f: f64) -> Vec<u8> {
    let mut v = ctrl(3, 8);
    v.extend_from_slice(&f.to_be_bytes());
    v
}

/// An unsigned integer of type `typ` (5 = uint16, 6 = uint32, 9 = uint64)
/// in `bytes` bytes.
fn uint(typ: u8, bytes: usize, n: u64) -> Vec<u8> {
    let mut v = ctrl(typ, bytes);
    v.extend_from_slice(&n.to_be_bytes()[8 - bytes..]);
    v
}

fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut v = ctrl(7, entries.len());
    for (k, val) in entries {
        v.extend(string(k));
        v.extend_from_slice(val);
    }
    v
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = ctrl(11, items.len());
    for i in items {
        v.extend_from_slice(i);
    }
    v
}
