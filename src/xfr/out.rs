//! Answering AXFR and IXFR: who may (TSIG, then the zone's
//! `allow_transfer`), and the answer as a stream of messages of about
//! 16 KiB, each with AA and signed when the request was, SOA first and
//! last, all from one snapshot.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::ProtoError;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::journal::newer;
use super::{Xfr, ZoneXfr};
use crate::tsig::{Checked, ResponseSigner};

/// A message is closed once it passes this size (compression works per
/// message and hickory compresses only its first names, so smaller
/// messages are smaller in all).
const SOFT_LIMIT: usize = 16 * 1024;

/// Transfer counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Complete AXFR answers (IXFR answered with the whole zone included).
    pub axfr: AtomicU64,
    /// Complete incremental answers.
    pub ixfr: AtomicU64,
    /// IXFR answered with the current SOA alone (client up to date, or UDP).
    pub up_to_date: AtomicU64,
    /// Requests refused (ACL, not a zone of ours, bad TSIG).
    pub refused: AtomicU64,
    /// Transfers cut off (client gone or too slow).
    pub failed: AtomicU64,
}

/// The process's transfer counters.
pub static STATS: Stats = Stats {
    axfr: AtomicU64::new(0),
    ixfr: AtomicU64::new(0),
    up_to_date: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

/// AXFR or IXFR, if `msg` is a query (QR=0, opcode QUERY, one question)
/// for one of them. Cheap: reads the header and walks the question name.
pub fn transfer_type(msg: &[u8]) -> Option<RecordType> {
    if msg.len() < 12 || msg[2] & 0xf8 != 0 || msg[4..6] != [0, 1] {
        return None;
    }
    let mut i = 12;
    loop {
        let l = *msg.get(i)? as usize;
        if l == 0 {
            break;
        }
        if l & 0xc0 != 0 {
            return None;
        }
        i += 1 + l;
    }
    match u16::from_be_bytes([*msg.get(i + 1)?, *msg.get(i + 2)?]) {
        252 => Some(RecordType::AXFR),
        251 => Some(RecordType::IXFR),
        _ => None,
    }
}

/// What a transfer request gets.
enum Plan {
    /// One message, and done.
    Reply(Vec<u8>),
    /// The transfer.
    Send(Box<Transfer>),
}

struct Transfer {
    zone: Arc<ZoneXfr>,
    signer: Option<ResponseSigner>,
    query: Query,
    id: u16,
    /// IXFR: the client's serial.
    client_serial: Option<u32>,
}

/// A header-only reply with `rcode` to a message that did not parse.
fn bare(raw: &[u8], rcode: u8) -> Vec<u8> {
    let mut out = raw.get(..2).unwrap_or(&[0, 0]).to_vec();
    out.push(0x80 | raw.get(2).map_or(0, |b| b & 0x78));
    out.push(rcode);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A reply to `msg` with `rcode` and no records, signed by `signer`.
fn reply(msg: &Message, rcode: ResponseCode, signer: Option<&mut ResponseSigner>) -> Vec<u8> {
    let mut m = Message::response(msg.metadata.id, msg.metadata.op_code);
    m.metadata.response_code = rcode;
    m.metadata.recursion_desired = msg.metadata.recursion_desired;
    m.add_queries(msg.queries.iter().cloned());
    // An OPT answers an OPT (RFC 6891 7).
    if msg.edns.is_some() {
        let mut e = hickory_proto::op::Edns::new();
        e.set_max_payload(1232);
        e.set_version(0);
        m.edns = Some(e);
    }
    let mut out = match m.to_vec() {
        Ok(b) => b,
        Err(_) => return bare(&msg.metadata.id.to_be_bytes(), rcode.low()),
    };
    if let Some(s) = signer
        && let Err(e) = s.sign(&mut out, crate::tsig::now())
    {
        tracing::warn!("cannot sign a reply: {e}");
    }
    out
}

/// Logs a refused transfer at most once a minute per client address.
fn log_refused(src: IpAddr, why: std::fmt::Arguments<'_>) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashMap<IpAddr, Instant>>> = Mutex::new(None);
    let now = Instant::now();
    let Ok(mut seen) = SEEN.lock() else { return };
    let seen = seen.get_or_insert_with(HashMap::new);
    if seen.len() >= 4096 {
        seen.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        if seen.len() >= 4096 {
            return; // a flood of sources: stay quiet rather than grow
        }
    }
    match seen.get(&src) {
        Some(t) if now.duration_since(*t) < Duration::from_secs(60) => {}
        _ => {
            seen.insert(src, now);
            tracing::warn!("transfer refused to {src}: {why} (logged once a minute per client)");
        }
    }
}

/// Who may have what.
fn plan(xfr: &Xfr, raw: &[u8], src: IpAddr) -> Plan {
    let Ok(msg) = Message::from_vec(raw) else {
        STATS.refused.fetch_add(1, Ordering::Relaxed);
        return Plan::Reply(bare(raw, 1));
    };
    let (key, mut signer) = match crate::tsig::check_request(&xfr.keys, raw, crate::tsig::now()) {
        Checked::Unsigned => (None, None),
        Checked::Valid { key, signer } => (Some(key), Some(signer)),
        Checked::Rejected(r) => {
            STATS.refused.fetch_add(1, Ordering::Relaxed);
            log_refused(src, format_args!("TSIG {}", r.error()));
            return Plan::Reply(r.reply(raw));
        }
    };
    let Some(query) = msg.queries.first().cloned() else {
        return Plan::Reply(reply(&msg, ResponseCode::FormErr, signer.as_mut()));
    };
    if msg.queries.len() != 1 || query.query_class() != DNSClass::IN {
        STATS.refused.fetch_add(1, Ordering::Relaxed);
        return Plan::Reply(reply(&msg, ResponseCode::Refused, signer.as_mut()));
    }
    let Some(zone) = xfr.zone(query.name()) else {
        STATS.refused.fetch_add(1, Ordering::Relaxed);
        log_refused(
            src,
            format_args!("{} is not a zone served here", query.name()),
        );
        return Plan::Reply(reply(&msg, ResponseCode::NotAuth, signer.as_mut()));
    };
    if !zone.allow.iter().any(|a| a.matches(src, key.as_ref())) {
        STATS.refused.fetch_add(1, Ordering::Relaxed);
        log_refused(
            src,
            format_args!(
                "zone {}: no allow_transfer entry matches ({})",
                zone.zone.origin,
                key.as_ref()
                    .map_or("unsigned".to_string(), |k| format!("key {k}"))
            ),
        );
        return Plan::Reply(reply(&msg, ResponseCode::Refused, signer.as_mut()));
    }
    // Expired: only a client the ACL admits learns it.
    if zone.expired {
        return Plan::Reply(reply(&msg, ResponseCode::ServFail, signer.as_mut()));
    }
    let client_serial = if query.query_type() == RecordType::IXFR {
        let soa = msg.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        });
        match soa {
            Some(s) => Some(s),
            // RFC 1995 3: the client's SOA is in the authority section.
            None => return Plan::Reply(reply(&msg, ResponseCode::FormErr, signer.as_mut())),
        }
    } else {
        None
    };
    Plan::Send(Box::new(Transfer {
        zone: zone.clone(),
        signer,
        query,
        id: msg.metadata.id,
        client_serial,
    }))
}

/// What the answer holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Axfr,
    Ixfr,
    UpToDate,
}

/// The answer's records, in order, and what kind of answer it is.
fn records(
    z: &ZoneXfr,
    client_serial: Option<u32>,
) -> (Box<dyn Iterator<Item = Cow<'_, Record>> + Send + '_>, Kind) {
    // Records of a packed set are made as they go out (see
    // `zone::Records`); the rest are borrowed.
    let soa = std::iter::once(Cow::Borrowed(&z.soa));
    if let Some(s) = client_serial {
        // Up to date, or newer than us (a secondary of another instance):
        // the current SOA alone.
        if !newer(z.serial, s) {
            return (Box::new(soa), Kind::UpToDate);
        }
        if let Some(diffs) = z.journal.since(s) {
            let body = diffs.iter().flat_map(|d| {
                std::iter::once(&d.from)
                    .chain(&d.removed)
                    .chain(std::iter::once(&d.to))
                    .chain(&d.added)
                    .map(Cow::Borrowed)
            });
            return (
                Box::new(
                    soa.clone()
                        .chain(body)
                        .chain(std::iter::once(Cow::Borrowed(&z.soa))),
                ),
                Kind::Ixfr,
            );
        }
    }
    let body = z
        .zone
        .static_sets()
        .flat_map(|(_, s)| s.records_with_rrsigs())
        .chain(z.routed.iter().map(Cow::Borrowed));
    (
        Box::new(
            soa.clone()
                .chain(body)
                .chain(std::iter::once(Cow::Borrowed(&z.soa))),
        ),
        Kind::Axfr,
    )
}

/// A message [`pack`] made, the record that did not fit into it, and
/// whether it is the last.
type Packed<'a> = (Vec<u8>, Option<Cow<'a, Record>>, bool);

/// Encodes records from `rrs` into one message of at most `max` bytes
/// (closed after [`SOFT_LIMIT`]): header, the question if `question`,
/// then as many records as fit. `pending` is a record that did not fit
/// into the previous message. Returns the message and the record that
/// did not fit into this one, if any.
fn pack<'a>(
    t: &Transfer,
    question: bool,
    rrs: &mut dyn Iterator<Item = Cow<'a, Record>>,
    pending: Option<Cow<'a, Record>>,
    max: u16,
) -> Result<Packed<'a>, ProtoError> {
    let mut buf = Vec::with_capacity(SOFT_LIMIT + 1024);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_max_size(max);
    // ID, QR AA, RCODE 0, counts patched below.
    enc.emit_u16(t.id)?;
    enc.emit_vec(&[0x84, 0x00, 0, u8::from(question), 0, 0, 0, 0, 0, 0])?;
    if question {
        t.query.emit(&mut enc)?;
    }
    let mut count: u16 = 0;
    let mut next = pending;
    let mut done = false;
    loop {
        let Some(r) = next.take().or_else(|| rrs.next()) else {
            done = true;
            break;
        };
        let mark = enc.offset();
        match r.emit(&mut enc) {
            Ok(()) => count += 1,
            Err(e) if matches!(e, ProtoError::MaxBufferSizeExceeded(_)) && count > 0 => {
                enc.set_offset(mark);
                enc.trim();
                next = Some(r);
                break;
            }
            Err(e) => return Err(e),
        }
        if enc.offset() >= SOFT_LIMIT {
            // Closed: the next record, if any, opens the next message;
            // with none left this one is the last (no empty message
            // may follow the final SOA).
            next = rrs.next();
            done = next.is_none();
            break;
        }
    }
    drop(enc);
    buf[6..8].copy_from_slice(&count.to_be_bytes());
    Ok((buf, next, done))
}

/// Writes `msg` with its length prefix within `timeout`.
async fn write_msg<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: Vec<u8>,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    framed.extend_from_slice(&msg);
    match tokio::time::timeout(timeout, stream.write_all(&framed)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "transfer message not taken within the timeout",
        )),
    }
}

/// Answers the transfer request `raw` from `peer` on `stream`, all from
/// `xfr`. Each message must be taken within `write_timeout`.
pub async fn serve_tcp<S: AsyncWrite + Unpin>(
    stream: &mut S,
    xfr: &Xfr,
    raw: &[u8],
    peer: SocketAddr,
    write_timeout: Duration,
) -> std::io::Result<()> {
    let mut t = match plan(xfr, raw, peer.ip()) {
        Plan::Reply(msg) => return write_msg(stream, msg, write_timeout).await,
        Plan::Send(t) => t,
    };
    let started = Instant::now();
    let zone = t.zone.clone();
    let (mut rrs, kind) = records(&zone, t.client_serial);
    let overhead = t.signer.as_ref().map_or(0, |s| s.overhead());
    let max = (usize::from(u16::MAX) - overhead) as u16;
    let mut pending = None;
    let (mut messages, mut first) = (0u32, true);
    loop {
        let (mut msg, rest, done) = match pack(&t, first, &mut rrs, pending, max) {
            Ok(m) => m,
            Err(e) => {
                STATS.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "transfer of {} to {peer}: cannot encode: {e}",
                    zone.zone.origin
                );
                let mut m = bare(raw, 2);
                if let Some(s) = t.signer.as_mut() {
                    let _ = s.sign(&mut m, crate::tsig::now());
                }
                return write_msg(stream, m, write_timeout).await;
            }
        };
        if let Some(s) = t.signer.as_mut()
            && let Err(e) = s.sign(&mut msg, crate::tsig::now())
        {
            STATS.failed.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::other(format!("cannot sign: {e}")));
        }
        if let Err(e) = write_msg(stream, msg, write_timeout).await {
            STATS.failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        messages += 1;
        first = false;
        pending = rest;
        if done && pending.is_none() {
            break;
        }
    }
    match kind {
        Kind::Axfr => &STATS.axfr,
        Kind::Ixfr => &STATS.ixfr,
        Kind::UpToDate => &STATS.up_to_date,
    }
    .fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        "{} of {} serial {} to {peer}: {} messages in {:.1} ms{}",
        match (kind, t.client_serial) {
            (Kind::Axfr, None) => "AXFR",
            (Kind::Axfr, Some(_)) =>
                "IXFR (whole zone: the journal does not reach the client's serial)",
            (Kind::Ixfr, _) => "IXFR",
            (Kind::UpToDate, _) => "IXFR (up to date)",
        },
        zone.zone.origin,
        zone.serial,
        messages,
        started.elapsed().as_secs_f64() * 1000.0,
        t.client_serial
            .map_or(String::new(), |s| format!(" from serial {s}"))
    );
    Ok(())
}

/// Answers an IXFR over UDP into `out`: the whole answer when it fits in
/// `limit` bytes, else the current SOA alone, which tells the client to
/// come back over TCP (RFC 1995 2). With an OPT in the request, the
/// answer carries one.
pub fn serve_udp(xfr: &Xfr, raw: &[u8], src: IpAddr, edns: bool, limit: u16, out: &mut Vec<u8>) {
    let mut t = match plan(xfr, raw, src) {
        Plan::Reply(msg) => {
            *out = msg;
            return;
        }
        Plan::Send(t) => t,
    };
    let payload = limit.to_be_bytes();
    let opt_bytes = [0, 0, 41, payload[0], payload[1], 0, 0, 0, 0, 0, 0];
    // Root, OPT, our payload size (the limit), no extended flags or options.
    let opt: &[u8] = if edns { &opt_bytes } else { &[] };
    let overhead = t.signer.as_ref().map_or(0, |s| s.overhead()) + opt.len();
    let max = usize::from(limit).saturating_sub(overhead).max(12) as u16;
    let zone = t.zone.clone();
    let (mut rrs, mut kind) = records(&zone, t.client_serial);
    let mut msg = match pack(&t, true, &mut rrs, None, max) {
        Ok((m, None, true)) => m,
        // Does not fit in one datagram: the SOA alone.
        _ => {
            kind = Kind::UpToDate;
            match pack(
                &t,
                true,
                &mut std::iter::once(Cow::Borrowed(&zone.soa)),
                None,
                max,
            ) {
                Ok((m, _, _)) => m,
                Err(_) => bare(raw, 2),
            }
        }
    };
    if !opt.is_empty() && msg.len() >= 12 {
        msg.extend_from_slice(opt);
        let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
        msg[10..12].copy_from_slice(&ar.to_be_bytes());
    }
    if let Some(s) = t.signer.as_mut()
        && let Err(e) = s.sign(&mut msg, crate::tsig::now())
    {
        tracing::warn!("cannot sign an IXFR answer: {e}");
    }
    match kind {
        Kind::Axfr => &STATS.axfr,
        Kind::Ixfr => &STATS.ixfr,
        Kind::UpToDate => &STATS.up_to_date,
    }
    .fetch_add(1, Ordering::Relaxed);
    *out = msg;
}

/// The origin of a transfer request's zone, for logs.
pub fn zone_of(raw: &[u8]) -> Option<Name> {
    Message::from_vec(raw)
        .ok()?
        .queries
        .first()
        .map(|q| q.name().clone())
}

#[cfg(test)]
#[path = "out/tests.rs"]
mod tests;
