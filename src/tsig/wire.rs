//! The TSIG record on the wire (RFC 8945 section 4): finding it in a
//! message, appending one, and the bytes a MAC covers.
//!
//! Messages are walked here rather than decoded whole: only the positions
//! matter, and the MAC must cover the exact bytes received.

use hickory_proto::rr::rdata::tsig::TSIG;
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// A DNS header's length.
pub(super) const HEADER_LEN: usize = 12;
/// Time Signed is a 48-bit field.
pub(super) const MAX_TIME: u64 = (1 << 48) - 1;

const TYPE_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;
const TRUNCATED: &str = "the message ends inside a record";

/// A message's TSIG record and the offset it starts at.
pub(super) struct Found {
    pub start: usize,
    pub name: Name,
    pub tsig: TSIG,
}

/// Walks `msg` and returns its TSIG, if it has one. A TSIG anywhere but as the last record of the additional
/// section (RFC 8945 section 5.1: a second TSIG, one in another section,
/// or records after it) is an error, as is a TSIG that does not parse.
pub(super) fn scan(msg: &[u8]) -> Result<Option<Found>, &'static str> {
    let mut pos = question_end(msg)?;
    let before_additional = usize::from(be16(msg, 6)) + usize::from(be16(msg, 8));
    let total = before_additional + usize::from(be16(msg, 10));
    let mut tsig_start = None;
    for i in 0..total {
        let start = pos;
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10).ok_or(TRUNCATED)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = u16::from_be_bytes([fixed[8], fixed[9]]);
        pos = advance(msg, pos, 10 + usize::from(rdlength))?;
        if rtype == TYPE_TSIG {
            if i + 1 != total || i < before_additional {
                return Err("a TSIG record is not the last record of the additional section");
            }
            tsig_start = Some(start);
        }
    }
    match tsig_start {
        None => Ok(None),
        Some(_) if pos != msg.len() => Err("bytes follow the TSIG record"),
        Some(start) => read_tsig(msg, start).map(Some),
    }
}

/// The offset just past the question section. Fails on a message shorter
/// than a header.
pub(super) fn question_end(msg: &[u8]) -> Result<usize, &'static str> {
    if msg.len() < HEADER_LEN {
        return Err("the message is shorter than a DNS header");
    }
    let mut pos = HEADER_LEN;
    for _ in 0..be16(msg, 4) {
        pos = skip_name(msg, pos)?;
        pos = advance(msg, pos, 4)?;
    }
    Ok(pos)
}

/// Decodes the TSIG record at `start` (hickory follows any compression).
fn read_tsig(msg: &[u8], start: usize) -> Result<Found, &'static str> {
    const MALFORMED: &str = "the TSIG record is malformed";
    let mut decoder = BinDecoder::new(msg);
    decoder.read_slice(start).map_err(|_| TRUNCATED)?;
    let record = Record::read(&mut decoder).map_err(|_| MALFORMED)?;
    if record.dns_class != DNSClass::ANY {
        return Err("the TSIG record's class is not ANY");
    }
    match record.data {
        RData::TSIG(tsig) => Ok(Found {
            start,
            name: record.name,
            tsig,
        }),
        _ => Err(MALFORMED),
    }
}

/// The fields of a TSIG RDATA, for writing one or a MAC input.
pub(super) struct Fields<'a> {
    /// Algorithm name in wire form.
    pub algorithm: &'a [u8],
    pub time: u64,
    pub fudge: u16,
    pub mac: &'a [u8],
    pub oid: u16,
    pub error: u16,
    pub other: &'a [u8],
}

/// Appends a TSIG RR owned by `key_name` to the complete message `msg`,
/// uncompressed, and counts it in ARCOUNT. Leaves `msg` unchanged on error.
pub(super) fn append(msg: &mut Vec<u8>, key_name: &Name, f: &Fields) -> Result<(), String> {
    if msg.len() < HEADER_LEN {
        return Err("the message is shorter than a DNS header".to_string());
    }
    let arcount = be16(msg, 10)
        .checked_add(1)
        .ok_or("the additional section is full")?;
    let rdlength = u16::try_from(f.algorithm.len() + 16 + f.mac.len() + f.other.len())
        .map_err(|_| "the TSIG record is too long".to_string())?;
    msg.reserve(name_len(key_name) + 10 + usize::from(rdlength));
    put_name(msg, key_name, false);
    msg.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&rdlength.to_be_bytes());
    msg.extend_from_slice(f.algorithm);
    put_time(msg, f.time);
    msg.extend_from_slice(&f.fudge.to_be_bytes());
    put_len(msg, f.mac.len());
    msg.extend_from_slice(f.mac);
    msg.extend_from_slice(&f.oid.to_be_bytes());
    msg.extend_from_slice(&f.error.to_be_bytes());
    put_len(msg, f.other.len());
    msg.extend_from_slice(f.other);
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    Ok(())
}

/// The length of the TSIG RR [`append`] writes.
pub(super) fn rr_len(key_name: &Name, algorithm: &[u8], mac_len: usize) -> usize {
    name_len(key_name) + 10 + algorithm.len() + 16 + mac_len
}

/// Appends the TSIG variables (RFC 8945 section 4.3.3) a first message's
/// MAC covers: key name and algorithm in canonical (lowercase) form, class
/// ANY, TTL 0, the timers, Error and Other Data.
pub(super) fn put_variables(tbs: &mut Vec<u8>, key_name: &Name, f: &Fields) {
    put_name(tbs, key_name, true);
    tbs.extend_from_slice(&CLASS_ANY.to_be_bytes());
    tbs.extend_from_slice(&0u32.to_be_bytes());
    tbs.extend(f.algorithm.iter().map(u8::to_ascii_lowercase));
    put_timers(tbs, f.time, f.fudge);
    tbs.extend_from_slice(&f.error.to_be_bytes());
    put_len(tbs, f.other.len());
    tbs.extend_from_slice(f.other);
}

/// Appends the timers (Time Signed, Fudge) that later messages of a
/// multi-message answer are signed with (RFC 8945 section 5.3.1).
pub(super) fn put_timers(tbs: &mut Vec<u8>, time: u64, fudge: u16) {
    put_time(tbs, time);
    tbs.extend_from_slice(&fudge.to_be_bytes());
}

/// Appends a prior MAC with its length, as chained MACs are covered.
pub(super) fn put_prior(tbs: &mut Vec<u8>, mac: &[u8]) {
    put_len(tbs, mac.len());
    tbs.extend_from_slice(mac);
}

/// Appends `msg` as it was before `found` was added: ARCOUNT one less,
/// the ID replaced by the Original ID (RFC 8945 section 4.3.1).
pub(super) fn put_unsigned(tbs: &mut Vec<u8>, msg: &[u8], found: &Found) {
    let arcount = be16(msg, 10).saturating_sub(1);
    tbs.extend_from_slice(&found.tsig.oid.to_be_bytes());
    tbs.extend_from_slice(&msg[2..10]);
    tbs.extend_from_slice(&arcount.to_be_bytes());
    tbs.extend_from_slice(&msg[HEADER_LEN..found.start]);
}

/// A name in uncompressed wire form, optionally lowercased.
pub(super) fn put_name(out: &mut Vec<u8>, name: &Name, lowercase: bool) {
    for label in name.iter() {
        // Labels are at most 63 bytes: hickory checks that when it builds a Name.
        out.push(label.len() as u8);
        if lowercase {
            out.extend(label.iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(label);
        }
    }
    out.push(0);
}

fn name_len(name: &Name) -> usize {
    name.iter().map(|label| label.len() + 1).sum::<usize>() + 1
}

/// A 48-bit time; callers keep `time` within [`MAX_TIME`].
fn put_time(out: &mut Vec<u8>, time: u64) {
    out.extend_from_slice(&time.min(MAX_TIME).to_be_bytes()[2..]);
}

/// A length that came from (or is bounded by) a 16-bit wire field.
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
}

/// The 16-bit field at `at`; callers have checked the header is there.
fn be16(msg: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([msg[at], msg[at + 1]])
}

fn advance(msg: &[u8], pos: usize, by: usize) -> Result<usize, &'static str> {
    let end = pos.checked_add(by).ok_or(TRUNCATED)?;
    if end > msg.len() {
        return Err(TRUNCATED);
    }
    Ok(end)
}

/// The offset past the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, &'static str> {
    loop {
        let len = *msg.get(pos).ok_or(TRUNCATED)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos = advance(msg, pos + 1, usize::from(len))?,
            0xC0 => return advance(msg, pos, 2),
            _ => return Err("a name has an unknown label type"),
        }
    }
}
