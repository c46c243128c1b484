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

/// Prepared bytes of one RRset, with and without its RRSIGs, in one
/// allocation with where each part is: the query path follows one pointer
/// and reads one cache line for a small answer.
///
/// Layout: [`HEADER`] bytes (the owner's length, then the two variants'
/// [`Meta`]), then the records.
#[derive(Debug)]
pub struct Wire {
    bytes: Box<[u8]>,
}

/// Where one variant is in [`Wire::bytes`] (offsets from the start of the
/// records, so after the header).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Meta {
    start: u16,
    answer_end: u16,
    end: u16,
    answer_count: u16,
    additional_count: u16,
    pointers: [u16; 3],
    pointer_count: u8,
    movable: bool,
}

/// A [`Meta`] in the header: 8 u16 and two u8.
const META_LEN: usize = 18;
/// The owner's length and two [`Meta`].
const HEADER: usize = 1 + 2 * META_LEN;

impl Meta {
    fn write(&self, out: &mut [u8]) {
        let words = [
            self.start,
            self.answer_end,
            self.end,
            self.answer_count,
            self.additional_count,
            self.pointers[0],
            self.pointers[1],
            self.pointers[2],
        ];
        for (i, w) in words.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&w.to_ne_bytes());
        }
        out[16] = self.pointer_count;
        out[17] = u8::from(self.movable);
    }

    fn read(b: &[u8; META_LEN]) -> Meta {
        let w = |i: usize| u16::from_ne_bytes([b[2 * i], b[2 * i + 1]]);
        Meta {
            start: w(0),
            answer_end: w(1),
            end: w(2),
            answer_count: w(3),
            additional_count: w(4),
            pointers: [w(5), w(6), w(7)],
            pointer_count: b[16],
            movable: b[17] != 0,
        }
    }
}

/// One variant's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'w> {
    /// The answer records.
    pub answer: &'w [u8],
    /// The additional records.
    pub additional: &'w [u8],
    /// How many answer records.
    pub answer_count: u16,
    /// How many additional records.
    pub additional_count: u16,
    /// For a SOA: where its compression pointers are in `answer` (owner,
    /// MNAME and RNAME), to move when the question is longer than the
    /// apex.
    pointers: [u16; 3],
    pointer_count: u8,
    /// No additional records, and no compression pointer in the answer
    /// but each record's owner pointing at the question's name: the bytes
    /// hold for a question of any length (a wildcard's answer), and with
    /// the owners pointed elsewhere for another owner (a CNAME's target).
    pub movable: bool,
}

impl Sections<'_> {
    /// For a SOA: where its compression pointers are in `answer` (owner,
    /// MNAME and RNAME), to move when the question is longer than the
    /// apex.
    pub fn pointers(&self) -> &[u16] {
        &self.pointers[..self.pointer_count as usize]
    }
}

impl Wire {
    /// The length of the question name the bytes were prepared for.
    pub fn owner_len(&self) -> usize {
        self.bytes[0] as usize
    }

    /// The records without RRSIGs (DO clear, or an unsigned zone).
    pub fn plain(&self) -> Sections<'_> {
        self.sections(0)
    }

    /// The records with their RRSIGs (DO set in a signed zone).
    pub fn signed(&self) -> Sections<'_> {
        self.sections(1)
    }

    fn sections(&self, i: usize) -> Sections<'_> {
        let (head, records) = self.bytes.split_at(HEADER);
        let m = Meta::read(
            head[1 + i * META_LEN..1 + (i + 1) * META_LEN]
                .try_into()
                .expect("a header holds two metas"),
        );
        Sections {
            answer: &records[m.start as usize..m.answer_end as usize],
            additional: &records[m.answer_end as usize..m.end as usize],
            answer_count: m.answer_count,
            additional_count: m.additional_count,
            pointers: m.pointers,
            pointer_count: m.pointer_count,
            movable: m.movable,
        }
    }

    /// Prepares `set` (answer records) and `additionals`; None when they
    /// do not fit a message.
    pub fn new(set: &RecordSet, additionals: &[std::sync::Arc<super::Records>]) -> Option<Wire> {
        let additionals: Vec<std::borrow::Cow<'_, RecordSet>> =
            additionals.iter().map(|a| a.to_set()).collect();
        let mut bytes = vec![0; HEADER];
        // The variant's place in `bytes`, and the owner's length.
        let variant = |dnssec: bool, bytes: &mut Vec<u8>| -> Option<(Meta, u8)> {
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
            let q = 12 + name_len(&all[12..])? + 4;
            let records = all.get(q..)?;
            let start = u16::try_from(bytes.len() - HEADER).ok()?;
            let mut meta = Meta {
                start,
                answer_end: start
                    .checked_add(u16::try_from(answer_only.len().checked_sub(q)?).ok()?)?,
                end: start.checked_add(u16::try_from(records.len()).ok()?)?,
                answer_count,
                additional_count,
                ..Meta::default()
            };
            if set.record_type() == RecordType::SOA
                && let Some(RData::SOA(_)) = set.records_without_rrsigs().next().map(|r| &r.data)
                && answer_count == 1
            {
                let p = soa_pointers(records, q)?;
                meta.pointers[..p.len()].copy_from_slice(&p);
                meta.pointer_count = p.len() as u8;
            }
            meta.movable = additional_count == 0 && movable(records.get(..answer_only.len() - q)?);
            bytes.extend_from_slice(records);
            Some((meta, u8::try_from(q - 16).ok()?))
        };
        let plain = variant(false, &mut bytes)?;
        let signed = if set.rrsigs().is_empty() && additionals.iter().all(|a| a.rrsigs().is_empty())
        {
            plain
        } else {
            variant(true, &mut bytes)?
        };
        bytes[0] = plain.1;
        plain.0.write(&mut bytes[1..1 + META_LEN]);
        signed.0.write(&mut bytes[1 + META_LEN..HEADER]);
        Some(Wire {
            bytes: bytes.into(),
        })
    }
}

/// Whether every record in `b` has its owner as a pointer to the question
/// (offset 12) and RDATA of a type that holds no name, so no other
/// pointer.
fn movable(b: &[u8]) -> bool {
    let be16 = |i: usize| b.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let mut i = 0;
    while i < b.len() {
        if b.get(i..i + 2) != Some(&[0xc0, 12]) {
            return false;
        }
        // A, HINFO, TXT, AAAA, SSHFP, TLSA, OPENPGPKEY, CAA.
        if !matches!(be16(i + 2), Some(1 | 13 | 16 | 28 | 44 | 52 | 61 | 257)) {
            return false;
        }
        match be16(i + 10) {
            Some(rdlen) => i += 12 + rdlen as usize,
            None => return false,
        }
    }
    i == b.len()
}

/// Points the owner of every record in `b` (bytes that are
/// [`Sections::movable`]) at `to`, a name's offset in the message.
pub fn point_owners(b: &mut [u8], to: u16) {
    debug_assert!(to < 0x4000);
    let mut i = 0;
    while i + 12 <= b.len() {
        b[i..i + 2].copy_from_slice(&(0xc000 | to).to_be_bytes());
        i += 12 + u16::from_be_bytes([b[i + 10], b[i + 11]]) as usize;
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
        let w = Wire::new(
            &set,
            &[std::sync::Arc::new(super::super::Records::new(glue))],
        )
        .unwrap();
        let s = w.plain();
        assert_eq!((s.answer_count, s.additional_count), (1, 1));
        assert_eq!(w.owner_len(), 19, "mail.example.test. in wire form");
        // Owner: a pointer to the question; MX, IN, TTL 300, RDLENGTH 7:
        // preference 10, `mx` and a pointer to `example.test` (offset 17).
        assert_eq!(
            s.answer,
            [
                0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 44, 0, 7, 0, 10, 2, b'm', b'x', 0xc0, 17
            ]
        );
        // The glue's owner points at the MX's exchange (the question ends
        // at 35, the exchange's `mx` label is at 35 + 2 + 10 + 2).
        assert_eq!(&s.additional[..2], [0xc0, 49]);
        assert!(s.pointers().is_empty());
        // Unsigned: the signed variant is the same records, stored once.
        assert_eq!(w.signed().answer.as_ptr(), s.answer.as_ptr());
        assert_eq!(w.bytes.len(), HEADER + s.answer.len() + s.additional.len());

        let cname = RecordSet::from(Record::from_rdata(
            owner.clone(),
            5,
            RData::CNAME(CNAME(mx)),
        ));
        let w = Wire::new(&cname, &[]).unwrap();
        assert!(w.plain().answer.ends_with(&[2, b'm', b'x', 0xc0, 17]));
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
        let w = Wire::new(&set, &[]).unwrap();
        let s = w.plain();
        // Owner at 0; MNAME `ns1` + pointer at 12 + 4; RNAME
        // `hostmaster` + pointer at 18 + 11.
        assert_eq!(s.pointers(), [0, 16, 29]);
        for &p in s.pointers() {
            assert_eq!(s.answer[p as usize] & 0xc0, 0xc0);
        }
    }
}
