//! The journal of a zone: the differences between the versions a
//! secondary may hold and the one served, so IXFR sends only what
//! changed. Bounded in entries and bytes; the oldest differences go
//! first, and a client older than the journal gets the whole zone.

use std::sync::Arc;

use hickory_proto::rr::{Record, RecordType, SerialNumber};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::zone::{Node, Records, Zone};

/// One step between two published versions of a zone.
#[derive(Debug)]
pub struct Diff {
    /// The SOA of the version this starts from.
    pub from: Record,
    /// The SOA of the version this leads to.
    pub to: Record,
    /// Records gone.
    pub removed: Vec<Record>,
    /// Records new.
    pub added: Vec<Record>,
    /// Encoded size of all its records (uncompressed).
    pub bytes: u64,
}

impl Diff {
    /// The difference from `(old zone, old routes)` to `(new zone, new
    /// routes)`, between SOAs `from` and `to`. Routes are compared as sets.
    pub fn between(
        from: Record,
        to: Record,
        old: (&Zone, &[Record]),
        new: (&Zone, &[Record]),
    ) -> Diff {
        let mut removed = Vec::new();
        let mut added = Vec::new();
        if !std::ptr::eq(old.0, new.0) {
            static_diff(old.0, new.0, &mut removed, &mut added);
        }
        set_diff(old.1, new.1, &mut removed, &mut added);
        let bytes = [&from, &to]
            .into_iter()
            .chain(&removed)
            .chain(&added)
            .map(wire_size)
            .sum();
        Diff {
            from,
            to,
            removed,
            added,
            bytes,
        }
    }

    /// The serial this starts from.
    pub fn from_serial(&self) -> u32 {
        soa_serial(&self.from)
    }

    /// The serial this leads to.
    pub fn to_serial(&self) -> u32 {
        soa_serial(&self.to)
    }

    /// No record changed (only the SOA).
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// The serial of an SOA record (0 for anything else).
pub fn soa_serial(r: &Record) -> u32 {
    match &r.data {
        hickory_proto::rr::RData::SOA(s) => s.serial,
        _ => 0,
    }
}

/// Uncompressed wire size of `r`.
fn wire_size(r: &Record) -> u64 {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    match r.emit(&mut enc) {
        Ok(()) => buf.len() as u64,
        Err(_) => 512,
    }
}

/// `r` in wire form, names uncompressed and with their case: what
/// tells two records apart exactly (hickory's `==` ignores the case of
/// names, so a change of case in RDATA would not be a difference).
fn exact(r: &Record) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    if r.emit(&mut enc).is_err() {
        // Not encodable (never in a loaded zone): its text, also exact.
        return r.to_string().into_bytes();
    }
    buf
}

/// Records of `old` not in `new` go to `removed`, of `new` not in `old`
/// to `added` (as sets: order and duplicates do not matter), compared
/// [`exact`]ly.
fn set_diff(old: &[Record], new: &[Record], removed: &mut Vec<Record>, added: &mut Vec<Record>) {
    // Sorted and merged: a signed zone's routes bring many records.
    let keyed = |v: &[Record]| {
        let mut k: Vec<(Vec<u8>, usize)> = v.iter().map(exact).zip(0..).collect();
        k.sort_unstable();
        k
    };
    let (o, n) = (keyed(old), keyed(new));
    let (mut i, mut j) = (0, 0);
    while i < o.len() || j < n.len() {
        match (o.get(i), n.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                removed.push(old[a.1].clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                added.push(new[b.1].clone());
                j += 1;
            }
            (Some(a), None) => {
                removed.push(old[a.1].clone());
                i += 1;
            }
            (None, Some(b)) => {
                added.push(new[b.1].clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
}

/// The records of one RRset (with its RRSIGs, in a signed zone), for
/// comparing.
fn records(set: &Records) -> Vec<Record> {
    set.records_with_rrsigs().map(|r| r.into_owned()).collect()
}

/// The static RRset of type `t` at `n` (NSEC included).
fn of_type(n: &Node, t: RecordType) -> Option<&Records> {
    n.static_sets().find(|s| s.record_type() == t)
}

/// The static data of two loads of a zone, RRset by RRset. An RRset a
/// reload shared with the previous load is the same set: skipped.
fn static_diff(old: &Zone, new: &Zone, removed: &mut Vec<Record>, added: &mut Vec<Record>) {
    for (_, old_node, new_node) in old.nodes_against(new) {
        for o in old_node.static_sets() {
            match new_node.and_then(|n| of_type(n, o.record_type())) {
                Some(n) if std::ptr::eq(o, n) || n.same_packed(o) => {}
                Some(n) => {
                    if o.ttl() == n.ttl() && o.to_set().name() == n.to_set().name() {
                        set_diff(&records(o), &records(n), removed, added);
                    } else {
                        removed.extend(records(o));
                        added.extend(records(n));
                    }
                }
                None => removed.extend(records(o)),
            }
        }
    }
    for (_, new_node, old_node) in new.nodes_against(old) {
        for n in new_node.static_sets() {
            if old_node.is_none_or(|o| of_type(o, n.record_type()).is_none()) {
                added.extend(records(n));
            }
        }
    }
}

/// The differences that lead to the served version, oldest first.
#[derive(Debug, Default)]
pub struct Journal {
    diffs: Vec<Arc<Diff>>,
    bytes: u64,
}

impl Journal {
    /// This journal with `diff` appended, then the oldest differences
    /// dropped until at most `max_entries` and `max_bytes` remain. A
    /// difference that alone passes `max_bytes` empties the journal.
    pub fn with(&self, diff: Diff, max_entries: usize, max_bytes: u64) -> Journal {
        // It must continue the chain; otherwise start again.
        let continues = self
            .diffs
            .last()
            .is_none_or(|d| d.to_serial() == diff.from_serial());
        let mut diffs: Vec<Arc<Diff>> = if continues {
            self.diffs.clone()
        } else {
            Vec::new()
        };
        let mut bytes: u64 = diffs.iter().map(|d| d.bytes).sum();
        bytes += diff.bytes;
        diffs.push(Arc::new(diff));
        let mut drop = 0;
        while drop < diffs.len() && (diffs.len() - drop > max_entries || bytes > max_bytes) {
            bytes -= diffs[drop].bytes;
            drop += 1;
        }
        diffs.drain(..drop);
        Journal { diffs, bytes }
    }

    /// The differences from `serial` to the served version, or `None`
    /// when the journal does not reach back to `serial`.
    pub fn since(&self, serial: u32) -> Option<&[Arc<Diff>]> {
        let i = self.diffs.iter().position(|d| d.from_serial() == serial)?;
        Some(&self.diffs[i..])
    }

    /// Differences held.
    pub fn len(&self) -> usize {
        self.diffs.len()
    }

    /// No difference held.
    pub fn is_empty(&self) -> bool {
        self.diffs.is_empty()
    }

    /// Their size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Whether serial `a` is newer than `b` (RFC 1982).
pub fn newer(a: u32, b: u32) -> bool {
    SerialNumber::new(a) > SerialNumber::new(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData};

    fn soa(serial: u32) -> Record {
        let n = Name::from_ascii("t.").unwrap();
        Record::from_rdata(
            n.clone(),
            3600,
            RData::SOA(SOA::new(n.clone(), n, serial, 1, 1, 1, 1)),
        )
    }

    fn a(name: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }

    fn zone(text: &str) -> Zone {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zone");
        std::fs::write(&path, text).unwrap();
        Zone::load(&Name::from_ascii("t.").unwrap(), &path).unwrap()
    }

    #[test]
    fn differences_of_files_and_routes() {
        let old = zone(
            "$ORIGIN t.\n@ 60 SOA ns h 1 1 1 1 1\n@ 60 NS ns\nns 60 A 192.0.2.1\nold 60 A 192.0.2.9\nttl 60 A 192.0.2.7\n",
        );
        let new = zone(
            "$ORIGIN t.\n@ 60 SOA ns h 2 1 1 1 1\n@ 60 NS ns\nns 60 A 192.0.2.1\nns 60 A 192.0.2.2\nttl 90 A 192.0.2.7\nnew 60 TXT x\n",
        );
        let routes_old = [a("app.t.", [10, 0, 0, 1]), a("app.t.", [10, 0, 0, 2])];
        let routes_new = [a("app.t.", [10, 0, 0, 2])];
        let d = Diff::between(soa(1), soa(2), (&old, &routes_old), (&new, &routes_new));
        let show = |v: &[Record]| {
            let mut s: Vec<String> = v
                .iter()
                .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
                .collect();
            s.sort();
            s
        };
        assert_eq!(
            show(&d.removed),
            [
                "app.t. 60 10.0.0.1",
                "old.t. 60 192.0.2.9",
                "ttl.t. 60 192.0.2.7"
            ]
        );
        assert_eq!(
            show(&d.added),
            ["new.t. 60 x", "ns.t. 60 192.0.2.2", "ttl.t. 90 192.0.2.7"]
        );
        assert_eq!((d.from_serial(), d.to_serial()), (1, 2));
    }

    #[test]
    fn the_journal_is_bounded_and_chained() {
        let z = zone("$ORIGIN t.\n@ 60 SOA ns h 1 1 1 1 1\n");
        let step = |from: u32, to: u32| {
            let old = [a("x.t.", [10, 0, 0, from as u8])];
            let new = [a("x.t.", [10, 0, 0, to as u8])];
            Diff::between(soa(from), soa(to), (&z, &old), (&z, &new))
        };
        let mut j = Journal::default();
        for s in 1..=5 {
            j = j.with(step(s, s + 1), 3, u64::MAX);
        }
        assert_eq!(j.len(), 3);
        assert!(j.since(2).is_none(), "dropped");
        assert_eq!(j.since(3).unwrap().len(), 3);
        assert_eq!(j.since(5).unwrap().len(), 1);
        // A step that does not continue the chain starts it again.
        let j = j.with(step(9, 10), 3, u64::MAX);
        assert_eq!((j.len(), j.since(9).map(|d| d.len())), (1, Some(1)));
        // Bytes: one diff alone over the bound empties the journal.
        let one = step(1, 2).bytes;
        let j = Journal::default()
            .with(step(1, 2), 10, one * 2)
            .with(step(2, 3), 10, one * 2);
        assert_eq!(j.len(), 2);
        let j = j.with(step(3, 4), 10, one * 2);
        assert_eq!((j.len(), j.bytes()), (2, one * 2));
        assert!(Journal::default().with(step(1, 2), 10, one - 1).is_empty());
    }

    #[test]
    fn serials_compare_by_rfc_1982() {
        assert!(newer(2, 1));
        assert!(newer(0, u32::MAX));
        assert!(newer(5, u32::MAX - 5));
        assert!(!newer(1, 1));
        assert!(!newer(u32::MAX, 0));
    }
}
