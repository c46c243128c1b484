//! An RRset's records as response bytes, prepared once so the query fast
//! path copies instead of encoding.
//!
//! The bytes are what hickory writes after the question of a message that
//! asks for the RRset's owner and type: the answer records (each owner a
//! pointer to the question, RDATA names compressed as usual), then the
//! additional records (glue, the addresses of MX, SRV and NS targets). A
//! query for that name has a question of the same length, so every
//! pointer holds as prepared. A zone's SOA is also the authority record of
//! its negative answers, where the question is longer than the apex by
//! some labels: its pointers are listed, to be moved by that much.

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{RData, RecordSet, RecordType};
use smallvec::SmallVec;

/// Prepared bytes of one RRset, with and without its RRSIGs.
#[derive(Debug)]
pub struct Wire {
    /// Without RRSIGs (DO clear, or an unsigned zone).
    pub plain: Sections,
    /// With RRSIGs (DO set in a signed zone).
    pub signed: Sections,
}

/// One variant's bytes.
#[derive(Debug, Default)]
pub struct Sections {
    /// The answer records, then the additional records.
    pub bytes: Box<[u8]>,
    /// Where the additional records start.
    pub answer_end: usize,
    /// How many answer records.
    pub answer_count: u16,
    /// How many additional records.
    pub additional_count: u16,
    /// For a SOA: where its compression pointers are (owner, MNAME and
    /// RNAME), to move when the question is longer than the apex.
    pub pointers: SmallVec<[u16; 3]>,
}

impl Sections {
    /// The answer records.
    pub fn answer(&self) -> &[u8] {
        &self.bytes[..self.answer_end]
    }

    /// The additional records.
    pub fn additional(&self) -> &[u8] {
        &self.bytes[self.answer_end..]
    }
}

impl Wire {
    /// Prepares `set` (answer records) and `additionals`.
    pub fn new(set: &RecordSet, additionals: &[std::sync::Arc<RecordSet>]) -> Option<Wire> {
        let variant = |dnssec: bool| -> Option<Sections> {
            let mut m = Message::query();
            m.add_query(Query::query(set.name().clone(), set.record_type()));
            m.add_answers(set.records(dnssec).cloned());
            let answer_count = u16::try_from(m.answers.len()).ok()?;
            let answer_only = m.to_vec().ok()?;
            m.add_additionals(additionals.iter().flat_map(|a| a.records(dnssec).cloned()));
            let additional_count = u16::try_from(m.additionals.len()).ok()?;
            let all = m.to_vec().ok()?;
            // The question: the owner in full (nothing precedes it), type
            // and class.
            let start = 12 + name_len(&all[12..])? + 4;
            let mut s = Sections {
                bytes: all.get(start..)?.into(),
                answer_end: answer_only.len().checked_sub(start)?,
                answer_count,
                additional_count,
                pointers: SmallVec::new(),
            };
            if set.record_type() == RecordType::SOA
                && let Some(RData::SOA(_)) = set.records_without_rrsigs().next().map(|r| &r.data)
                && answer_count == 1
            {
                s.pointers = soa_pointers(&s.bytes, start)?;
            }
            Some(s)
        };
        Some(Wire {
            plain: variant(false)?,
            signed: variant(true)?,
        })
    }
}

/// The length of the uncompressed name at the start of `b`.
fn name_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        match *b.get(i)? as usize {
            0 => return Some(i + 1),
            l if l <= 63 => i += 1 + l,
            _ => return None,
        }
    }
}

/// Where the name at `b[i..]` ends, and where its pointer is, if any.
fn name_end(b: &[u8], mut i: usize) -> Option<(usize, Option<usize>)> {
    loop {
        match *b.get(i)? {
            0 => return Some((i + 1, None)),
            l if l & 0xc0 == 0xc0 => return Some((i + 2, Some(i))),
            l if l <= 63 => i += 1 + l as usize,
            _ => return None,
        }
    }
}

/// The pointers of the one SOA record in `b` (placed at `base` in its
/// message): owner, MNAME, RNAME. Each must point past the header.
fn soa_pointers(b: &[u8], base: usize) -> Option<SmallVec<[u16; 3]>> {
    let mut out: SmallVec<[usize; 3]> = SmallVec::new();
    let (end, p) = name_end(b, 0)?;
    out.extend(p);
    let (end, p) = name_end(b, end + 10)?;
    out.extend(p);
    let (_, p) = name_end(b, end)?;
    out.extend(p);
    for &at in &out {
        let target = u16::from_be_bytes([b[at], b[at + 1]]) & 0x3fff;
        if (target as usize) < 12 || target as usize >= base + b.len() {
            return None;
        }
    }
    Some(out.into_iter().map(|at| at as u16).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, MX, SOA};
    use hickory_proto::rr::{Name, Record};
    use std::str::FromStr;

    #[test]
    fn records_are_what_hickory_writes_after_the_question() {
        let owner = Name::from_str("mail.example.test.").unwrap();
        let mut set = RecordSet::new(owner.clone(), RecordType::MX, 0);
        let mx = Name::from_str("mx.example.test.").unwrap();
        set.insert(
            Record::from_rdata(owner.clone(), 300, RData::MX(MX::new(10, mx.clone()))),
            0,
        );
        let mut glue = RecordSet::new(mx.clone(), RecordType::A, 0);
        glue.insert(
            Record::from_rdata(mx.clone(), 60, RData::A(A::new(192, 0, 2, 1))),
            0,
        );
        let w = Wire::new(&set, &[std::sync::Arc::new(glue)]).unwrap();
        let s = &w.plain;
        assert_eq!((s.answer_count, s.additional_count), (1, 1));
        // Owner: a pointer to the question; MX, IN, TTL 300, RDLENGTH 7:
        // preference 10, `mx` and a pointer to `example.test` (offset 17).
        assert_eq!(
            s.answer(),
            [
                0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 44, 0, 7, 0, 10, 2, b'm', b'x', 0xc0, 17
            ]
        );
        // The glue's owner points at the MX's exchange (the question ends
        // at 35, the exchange's `mx` label is at 35 + 2 + 10 + 2).
        assert_eq!(&s.additional()[..2], [0xc0, 49]);
        assert!(s.pointers.is_empty());
        // Unsigned: the signed variant is the same records.
        assert_eq!(w.signed.bytes, s.bytes);

        let cname = RecordSet::from(Record::from_rdata(
            owner.clone(),
            5,
            RData::CNAME(CNAME(mx)),
        ));
        let w = Wire::new(&cname, &[]).unwrap();
        assert!(w.plain.answer().ends_with(&[2, b'm', b'x', 0xc0, 17]));
    }

    #[test]
    fn a_soas_pointers_are_listed() {
        let apex = Name::from_str("example.test.").unwrap();
        let soa = SOA::new(
            Name::from_str("ns1.example.test.").unwrap(),
            Name::from_str("hostmaster.example.test.").unwrap(),
            1,
            2,
            3,
            4,
            5,
        );
        let set = RecordSet::from(Record::from_rdata(apex, 5, RData::SOA(soa)));
        let s = Wire::new(&set, &[]).unwrap().plain;
        // Owner at 0; MNAME `ns1` + pointer at 12 + 4; RNAME
        // `hostmaster` + pointer at 18 + 11.
        assert_eq!(s.pointers.as_slice(), [0, 16, 29]);
        for &p in &s.pointers {
            assert_eq!(s.bytes[p as usize] & 0xc0, 0xc0);
        }
    }
}
