//! An RRset's records as stored: packed into one byte string when the
//! set is of a common type without names that need care (A, AAAA, TXT,
//! MX), else hickory's `RecordSet`.
//!
//! A hickory `Record` is about 280 bytes with its own copy of the owner's
//! `Name`, and a `RecordSet` 144 more; the bulk of a large zone is sets of
//! one small record, so a million-record zone held 650 bytes a name. A
//! packed set is its owner, type, TTL and the records' RDATA in wire form,
//! about 40 bytes for an A record. The hickory form is made from it when
//! asked: [`Records::set`] makes it once and keeps it (the general query
//! path borrows it for the answer it builds), [`Records::to_set`] makes a
//! copy that is dropped after use (transfers, differences, prepared
//! bytes: what walks the whole zone must not make it whole again).

use std::borrow::Cow;
use std::sync::OnceLock;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordSet, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, Restrict};

/// The records of one RRset.
#[derive(Debug)]
pub struct Records {
    /// The hickory form: given for a set that is not packed, made at the
    /// first [`Records::set`] for one that is.
    full: OnceLock<Box<RecordSet>>,
    /// The packed form (empty if not packed). Layout: type (2 bytes),
    /// TTL (4), number of records (2), all big-endian; the owner in wire
    /// form with its case; then each record's RDATA length (2) and RDATA
    /// (names in it uncompressed, with their case).
    packed: Box<[u8]>,
}

/// Bytes before the owner in [`Records::packed`].
const HEAD: usize = 8;

impl Records {
    /// `set`, packed if it can be.
    pub fn new(set: RecordSet) -> Records {
        if !set.rrsigs().is_empty() || set.dns_class() != DNSClass::IN {
            return Records::full(set);
        }
        let records: Vec<&Record> = set.records_without_rrsigs().collect();
        match pack(
            set.name(),
            None,
            set.record_type(),
            set.ttl(),
            records.iter().copied(),
        ) {
            Some(packed) => Records {
                full: OnceLock::new(),
                packed,
            },
            None => Records::full(set),
        }
    }

    /// One record as a set, packed if it can be (what a zone's load makes
    /// of most records, without making a `RecordSet` first).
    pub fn of_record(record: Record) -> Records {
        Records::of_keyed_record_at(record, None)
    }

    /// [`Records::of_record`] for a record whose owner is `key` (its
    /// labels in wire form without the root label, with the owner's
    /// case), which is not made again from the name.
    pub fn of_keyed_record(record: Record, key: &[u8]) -> Records {
        debug_assert!({
            let mut wire = Vec::new();
            push_name(&mut wire, &record.name);
            wire.pop();
            wire == key
        });
        Records::of_keyed_record_at(record, Some(key))
    }

    fn of_keyed_record_at(record: Record, key: Option<&[u8]>) -> Records {
        match pack(
            &record.name,
            key,
            record.record_type(),
            record.ttl,
            std::iter::once(&record),
        ) {
            Some(packed) => Records {
                full: OnceLock::new(),
                packed,
            },
            None => Records::full(RecordSet::from(record)),
        }
    }

    /// `set` as it is, not packed.
    pub fn full(set: RecordSet) -> Records {
        Records {
            full: OnceLock::from(Box::new(set)),
            packed: Box::new([]),
        }
    }

    /// Whether a packed set also holds its hickory set (made by
    /// [`Records::set`]).
    #[cfg(test)]
    pub fn keeps_a_copy(&self) -> bool {
        self.is_packed() && self.full.get().is_some()
    }

    /// Whether the records are held packed.
    pub fn is_packed(&self) -> bool {
        !self.packed.is_empty()
    }

    /// The records as a hickory `RecordSet`, made once for a packed set
    /// and kept as long as it is: for what is not packed (the types
    /// [`Records::new`] does not pack) or few. What may meet every name
    /// (answers, transfers) uses [`Records::to_set`].
    pub fn set(&self) -> &RecordSet {
        self.full.get_or_init(|| Box::new(unpack(&self.packed)))
    }

    /// The records as a hickory `RecordSet`: the one held, or a copy
    /// made for the caller (not kept).
    pub fn to_set(&self) -> Cow<'_, RecordSet> {
        match self.full.get() {
            Some(set) => Cow::Borrowed(set),
            None => Cow::Owned(unpack(&self.packed)),
        }
    }

    /// Every record with its RRSIGs, borrowed from the set held or made
    /// for the caller.
    pub fn records_with_rrsigs(&self) -> impl Iterator<Item = Cow<'_, Record>> + Send {
        let (held, made) = match self.to_set() {
            Cow::Borrowed(s) => (Some(s.records_with_rrsigs().map(Cow::Borrowed)), None),
            Cow::Owned(s) => {
                let mut parts = s.into_parts();
                parts.records.append(&mut parts.rrsigs);
                (None, Some(parts.records.into_iter().map(Cow::Owned)))
            }
        };
        held.into_iter().flatten().chain(made.into_iter().flatten())
    }

    /// The type.
    pub fn record_type(&self) -> RecordType {
        match self.full.get() {
            Some(set) => set.record_type(),
            None => RecordType::from(u16::from_be_bytes([self.packed[0], self.packed[1]])),
        }
    }

    /// The TTL.
    pub fn ttl(&self) -> u32 {
        match self.full.get() {
            Some(set) => set.ttl(),
            None => u32::from_be_bytes(self.packed[2..6].try_into().expect("4 bytes")),
        }
    }

    /// How many RRSIGs (a packed set has none).
    pub fn rrsig_count(&self) -> usize {
        self.full.get().map_or(0, |set| set.rrsigs().len())
    }

    /// How many records (RRSIGs not counted).
    pub fn records_count(&self) -> usize {
        match self.full.get() {
            Some(set) => set.records_count(),
            None => u16::from_be_bytes([self.packed[6], self.packed[7]]) as usize,
        }
    }

    /// Whether this and `other` are packed and hold the same bytes: the
    /// same owner, type, TTL and records in the same order, names compared
    /// with their case.
    pub fn same_packed(&self, other: &Records) -> bool {
        self.is_packed() && self.packed == other.packed
    }

    /// Each record's RDATA in wire form, if packed (names uncompressed).
    pub fn packed_rdata(&self) -> Option<impl Iterator<Item = &[u8]> + Clone> {
        if !self.is_packed() {
            return None;
        }
        let start = HEAD + name_len(&self.packed[HEAD..]);
        let mut rest = &self.packed[start..];
        Some(std::iter::from_fn(move || {
            let len = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
            let (rdata, next) = rest[2..].split_at(len);
            rest = next;
            Some(rdata)
        }))
    }

    /// Uncompressed wire size of the records (RRSIGs not counted), if
    /// packed: an upper bound of what they add to a message.
    pub fn packed_wire_len(&self) -> Option<usize> {
        let owner = name_len(self.packed.get(HEAD..)?);
        let rdata = self.packed_rdata()?;
        Some(rdata.map(|r| owner + 10 + r.len()).sum())
    }
}

/// The length of the uncompressed wire name at the start of `b`.
fn name_len(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(&l) = b.get(i) {
        i += 1 + l as usize;
        if l == 0 {
            break;
        }
    }
    i
}

/// `records` (owned by `name`, of type `rtype` and TTL `ttl`) packed, if
/// they are all of a packed type, class IN, with that owner (its case
/// too) and TTL, a name that is not a wildcard, and RDATA that packs.
fn pack<'a>(
    name: &Name,
    key: Option<&[u8]>,
    rtype: RecordType,
    ttl: u32,
    records: impl Iterator<Item = &'a Record> + Clone,
) -> Option<Box<[u8]>> {
    if !matches!(
        rtype,
        RecordType::A | RecordType::AAAA | RecordType::TXT | RecordType::MX
    ) || !name.is_fqdn()
        || name.is_wildcard()
    {
        return None;
    }
    // The exact size first: one allocation, never grown nor shrunk.
    let mut len = HEAD + key.map_or_else(|| name_wire_len(name), |k| k.len() + 1);
    let mut count: u16 = 0;
    for r in records.clone() {
        let same_owner = std::ptr::eq(&r.name, name) || r.name.eq_case(name);
        if r.ttl != ttl || r.dns_class != DNSClass::IN || !same_owner {
            return None;
        }
        len += 2 + rdata_len(&r.data)?;
        count = count.checked_add(1)?;
    }
    if count == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&u16::from(rtype).to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    match key {
        Some(k) => {
            out.extend_from_slice(k);
            out.push(0);
        }
        None => push_name(&mut out, name),
    }
    for r in records {
        let rdlen = rdata_len(&r.data)? as u16;
        out.extend_from_slice(&rdlen.to_be_bytes());
        match &r.data {
            RData::A(a) => out.extend_from_slice(&a.0.octets()),
            RData::AAAA(a) => out.extend_from_slice(&a.0.octets()),
            RData::TXT(t) => {
                for s in &t.txt_data {
                    out.push(s.len() as u8);
                    out.extend_from_slice(s);
                }
            }
            RData::MX(mx) => {
                out.extend_from_slice(&mx.preference.to_be_bytes());
                push_name(&mut out, &mx.exchange);
            }
            _ => return None,
        }
    }
    debug_assert_eq!(out.len(), len);
    Some(out.into_boxed_slice())
}

/// The RDATA length of `data` packed, if of a packed type and it packs
/// (no TXT string over 255 bytes, an exchange fully qualified, at most
/// 65535 bytes).
fn rdata_len(data: &RData) -> Option<usize> {
    let len = match data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::TXT(t) => {
            if t.txt_data.iter().any(|s| s.len() > 255) {
                return None;
            }
            t.txt_data.iter().map(|s| 1 + s.len()).sum()
        }
        RData::MX(mx) if mx.exchange.is_fqdn() => 2 + name_wire_len(&mx.exchange),
        _ => return None,
    };
    (len <= usize::from(u16::MAX)).then_some(len)
}

/// The length of `name` in wire form, uncompressed.
fn name_wire_len(name: &Name) -> usize {
    name.iter().map(|l| 1 + l.len()).sum::<usize>() + 1
}

/// Appends `name` in wire form, uncompressed, with its case.
fn push_name(out: &mut Vec<u8>, name: &Name) {
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

/// The `RecordSet` of packed bytes.
fn unpack(p: &[u8]) -> RecordSet {
    let rtype = RecordType::from(u16::from_be_bytes([p[0], p[1]]));
    let ttl = u32::from_be_bytes(p[2..6].try_into().expect("4 bytes"));
    let count = u16::from_be_bytes([p[6], p[7]]) as usize;
    let mut d = BinDecoder::new(&p[HEAD..]);
    let owner = Name::read(&mut d).expect("a packed owner decodes");
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len = d.read_u16().expect("packed").unverified();
        let data = RData::read(&mut d, rtype, Restrict::new(len)).expect("packed RDATA decodes");
        records.push(Record::from_rdata(owner.clone(), ttl, data));
    }
    let mut set = RecordSet::with_ttl(owner, rtype, ttl);
    set.set_records(records);
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, MX, TXT};
    use hickory_proto::serialize::binary::BinEncodable;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// Each record as text, with its names' case.
    fn text(s: &RecordSet) -> Vec<String> {
        s.records_with_rrsigs().map(|r| r.to_string()).collect()
    }

    #[test]
    fn packed_sets_give_back_their_records() {
        let long = "x".repeat(255);
        let owner = name("www.example.test.");
        let sets: Vec<Vec<RData>> = vec![
            vec![
                RData::A(A::new(192, 0, 2, 1)),
                RData::A(A::new(192, 0, 2, 2)),
            ],
            vec![RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))],
            vec![
                RData::TXT(TXT::new(vec![])),
                RData::TXT(TXT::new(vec![String::new()])),
                RData::TXT(TXT::new(vec!["a".into(), "B c".into(), long.clone()])),
            ],
            vec![
                RData::MX(MX::new(10, name("_Mail.Example."))),
                RData::MX(MX::new(20, name("mx.example.test."))),
                RData::MX(MX::new(30, Name::root())),
            ],
        ];
        for data in sets {
            let rtype = data[0].record_type();
            let mut set = RecordSet::with_ttl(owner.clone(), rtype, 300);
            for d in &data {
                set.add_rdata(d.clone());
            }
            let packed = Records::new(set.clone());
            assert!(packed.is_packed(), "{rtype}");
            assert_eq!(packed.record_type(), rtype);
            assert_eq!(packed.ttl(), 300);
            assert_eq!(packed.records_count(), data.len());
            assert_eq!(text(&packed.to_set()), text(&set));
            assert_eq!(*packed.to_set(), set);
            let each: Vec<String> = packed
                .records_with_rrsigs()
                .map(|r| r.to_string())
                .collect();
            assert_eq!(each, text(&set));
            let mut buf = Vec::new();
            let len: usize = set
                .records_without_rrsigs()
                .map(|r| {
                    buf.clear();
                    let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut buf);
                    r.emit(&mut enc).unwrap();
                    buf.len()
                })
                .sum();
            assert!(packed.packed_wire_len().unwrap() >= len, "{rtype}");
            if rtype != RecordType::MX {
                assert_eq!(packed.packed_wire_len(), Some(len), "{rtype}");
            }
            // Made once and kept.
            assert!(std::ptr::eq(packed.set(), packed.set()));
            assert_eq!(text(packed.set()), text(&set));
        }
    }

    #[test]
    fn what_does_not_pack_is_held_as_it_is() {
        let owner = name("a.test.");
        let cname = Record::from_rdata(
            owner.clone(),
            60,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(name("b.test."))),
        );
        let wild = Record::from_rdata(name("*.test."), 60, RData::A(A::new(192, 0, 2, 1)));
        let long = RData::TXT(TXT::new(vec!["y".repeat(256)]));
        let too_long = Record::from_rdata(owner.clone(), 60, long);
        let mut chaos = Record::from_rdata(owner.clone(), 60, RData::A(A::new(192, 0, 2, 1)));
        chaos.dns_class = DNSClass::CH;
        for r in [cname, wild, too_long, chaos] {
            let text = r.to_string();
            let rec = Records::of_record(r);
            assert!(!rec.is_packed(), "{text}");
            assert_eq!(
                rec.records_with_rrsigs()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>(),
                [text]
            );
        }
        // The owner's case is kept.
        let upper = Record::from_rdata(name("WwW.test."), 60, RData::A(A::new(192, 0, 2, 1)));
        let rec = Records::of_record(upper.clone());
        assert!(rec.is_packed());
        assert!(rec.set().name().eq_case(&upper.name));
    }
}
