//! The query fast path: the shapes that make up nearly all traffic (one
//! question of class IN, at most an OPT record with or without ECS and a
//! cookie) answered without building a message. The query is read in
//! place, the name looked up by its key on the stack, and the response
//! written from bytes each RRset prepared once ([`crate::zone::wire`]):
//! the header, the question copied as sent, the records with their owner
//! as a pointer to the question, and an OPT record written here.
//!
//! It answers exact names (static or routed data, and the RRSIGs with DO),
//! wildcards and one CNAME hop inside the zone whose records hold as
//! prepared (without DO), NODATA and NXDOMAIN (without DO in a signed
//! zone), with rate limiting and cookies as the general path applies them.
//! Anything else returns [`Fast::General`] before a counter moves, and the
//! general path (hickory's parser, [`super::answer::resolve`]) answers:
//! other opcodes and classes, several questions, transfers, TSIG, longer
//! CNAME chains, referrals, denial proofs, errors, whatever does not fit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::cookie::Seen;
use crate::metrics::Tally;
use crate::route::Client;
use crate::rrl::{Class, Verdict};
use crate::store::{Dyn, Served, Snapshot};
use crate::zone::wire::{self, Sections};
use crate::zone::{Data, Entry, Found, Key, Rrset, Zone};

use super::Handler;

/// What the fast path did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fast {
    /// `out` holds the response.
    Sent,
    /// Rate limiting dropped it: send nothing.
    Dropped,
    /// Not for this path: nothing was counted; the general path answers.
    General,
}

/// The query's OPT record, read in place.
struct Opt<'p> {
    payload: u16,
    dnssec_ok: bool,
    /// The ECS option's data as sent (validated), and the client it names.
    ecs: Option<(&'p [u8], Client)>,
    /// The client cookie seen and the cookie to answer with.
    cookie: Option<(Seen, [u8; 24])>,
}

impl Opt<'_> {
    /// The length of the options the response's OPT record holds.
    fn options_len(&self) -> usize {
        self.ecs.as_ref().map_or(0, |(d, _)| 4 + d.len())
            + if self.cookie.is_some() { 28 } else { 0 }
    }
}

/// A query's name read once: [`prefetch`] reads it to start loading its
/// node, and [`answer`] takes it from there instead of reading it again.
/// The caller keeps one for each query it holds (the UDP loop, one per
/// query of a batch), so that a query neither zeroes nor moves a key.
pub struct Ahead {
    key: Key,
    /// The name's length in the question, while `key` holds the name of
    /// the query last given to [`prefetch`] (until [`answer`] takes it, or
    /// [`Ahead::clear`]).
    read: Option<usize>,
    /// With `read`: the snapshot's address (compared, never followed) and
    /// where [`Snapshot::zone_at`] finds the name's zone in it, if
    /// [`prefetch`] found it so.
    zone: Option<(usize, u8)>,
}

impl Ahead {
    pub fn new() -> Ahead {
        Ahead {
            key: Key::empty(),
            read: None,
            zone: None,
        }
    }

    /// Forgets a name read ahead: the next query is read afresh.
    pub fn clear(&mut self) {
        self.read = None;
        self.zone = None;
    }
}

impl Default for Ahead {
    fn default() -> Self {
        Ahead::new()
    }
}

/// Answers `packet` from `snap` into `out`, or says the general path must.
/// `ahead` holds the packet's name if [`prefetch`] read it, or nothing.
/// What it answers is counted in `tally`.
#[allow(clippy::too_many_arguments)]
pub fn answer<'s>(
    h: &Handler,
    snap: &'s Snapshot,
    packet: &[u8],
    src: SocketAddr,
    udp: bool,
    out: &mut Vec<u8>,
    ahead: &mut Ahead,
    tally: &mut Tally<'s>,
) -> Fast {
    // Taken before anything else: a name read ahead serves this packet
    // only, whatever happens to it.
    let read = ahead.read.take();
    let known = ahead
        .zone
        .take()
        .filter(|&(s, _)| read.is_some() && s == address(snap));
    // The OPT record is read into its place here and never moved: a
    // copy of it loads in wide words what was stored in narrow ones, and
    // those loads wait for the stores to retire.
    let mut opt = None;
    let Some(q) = parse(snap, packet, src, &mut ahead.key, read, &mut opt) else {
        return Fast::General;
    };
    let opt = opt.as_ref();
    let cookie_valid = matches!(
        opt.and_then(|o| o.cookie.as_ref()),
        Some((Seen::Valid(_), _))
    );
    // Without a valid server cookie, require_cookie is the general path's.
    if udp && snap.cookies.as_ref().is_some_and(|k| k.require) && !cookie_valid {
        return Fast::General;
    }
    // The zone the name's read ahead found, or looked up now. (Read
    // ahead in this snapshot: the UDP loop reads a batch's names ahead
    // and answers them with the one snapshot it holds for the batch; the
    // label count is checked all the same, so that a zone above the name
    // is all `find` can ever be given.)
    let zone = match known
        .and_then(|(_, at)| snap.zone_at(at))
        .filter(|z| z.origin_labels <= q.key.labels())
    {
        Some(z) => {
            debug_assert!(
                snap.zone_for(q.key).is_some_and(|w| std::ptr::eq(w, z)),
                "a zone found ahead for another name"
            );
            z
        }
        None => match snap.zone_for(q.key) {
            Some(z) => z,
            None => return Fast::General,
        },
    };
    if matches!(snap.slot(zone.soa_slot), Dyn::ServFail) {
        return Fast::General;
    }
    let dnssec = opt.is_some_and(|o| o.dnssec_ok) && zone.signed.is_some();
    let own;
    let client = match opt.and_then(|o| o.ecs.as_ref()) {
        Some((_, c)) if c.prefix > 0 => c,
        _ => {
            own = Client::addr(src.ip().to_canonical());
            &own
        }
    };
    let found = match zone.find(q.key, q.qtype) {
        Found::Name { node, wildcard } => match node.get(q.qtype) {
            Some(e) => {
                let Some((rr, scope, policy)) = served(snap, e, client) else {
                    return Fast::General;
                };
                let Some(wire) = rr.wire() else {
                    return Fast::General;
                };
                let sections = if dnssec { wire.signed() } else { wire.plain() };
                // The bytes point into a question as long as the owner
                // (always so for the name itself: a route's records carry
                // its own name). A wildcard's hold for any question when
                // nothing but the owners points into it; its proof that
                // the name does not exist (DO) is the general path's.
                let fits = if wildcard {
                    !dnssec && sections.movable
                } else {
                    wire.owner_len() == q.question.len() - 4
                };
                if !fits {
                    return Fast::General;
                }
                Body::Positive {
                    sections,
                    scope,
                    policy: policy.unwrap_or(0),
                    wildcard: wildcard.then(|| rr.set().name()),
                    target: None,
                }
            }
            None => match node.get(RecordType::CNAME) {
                // A CNAME answers other types: one hop inside the zone
                // here, longer chains and proofs on the general path.
                Some(c) if !dnssec && !wildcard => match chain(snap, zone, c, &q, client) {
                    Some(body) => body,
                    None => return Fast::General,
                },
                Some(_) => return Fast::General,
                None if dnssec => return Fast::General,
                None => Body::Negative(ResponseCode::NoError),
            },
        },
        Found::NxDomain if !dnssec => Body::Negative(ResponseCode::NXDomain),
        _ => return Fast::General,
    };
    // A negative answer's authority: the zone's SOA for negative answers.
    let neg_soa = match &found {
        Body::Negative(_) => match snap.soa(zone).1.wire() {
            Some(w) => Some(w),
            None => return Fast::General,
        },
        Body::Positive { .. } => None,
    };
    let neg = neg_soa.map(|w| w.plain());

    // What fits: everything, or all but the additional records (as the
    // general path decides); a truncated answer is the general path's.
    let limit = match (opt, udp) {
        (_, false) => u16::MAX as usize,
        (Some(o), true) => o.payload as usize,
        (None, true) => 512,
    };
    // The question is longer than the apex by this much: the SOA's
    // pointers move by as much. (Counted in bytes: hickory does not count
    // a leading `*` label, and an origin may start with one.)
    let shift = neg_soa.map_or(0, |w| (q.question.len() - 4).saturating_sub(w.owner_len()));
    let opt_len = opt.map_or(0, |o| 11 + o.options_len());
    let base = 12 + q.question.len() + opt_len;
    let (an_len, ns_len, ad_len) = match (&found, neg) {
        (
            Body::Positive {
                sections, target, ..
            },
            _,
        ) => (
            sections.answer.len() + target.map_or(0, |(t, _)| t.answer.len()),
            0,
            sections.additional.len(),
        ),
        (_, Some(s)) => (0, s.answer.len(), 0),
        _ => unreachable!("a negative answer has its SOA"),
    };
    let with_additional = if base + an_len + ns_len + ad_len <= limit {
        true
    } else if base + an_len + ns_len <= limit {
        false
    } else {
        return Fast::General;
    };

    // From here the query is ours: rate limited, counted, answered.
    let (rcode, scope, policy, wildcard) = match found {
        Body::Positive {
            scope,
            policy,
            wildcard,
            ..
        } => (ResponseCode::NoError, scope, policy, wildcard),
        Body::Negative(rcode) => (rcode, 0, 0, None),
    };
    let ecs_scope = match opt.and_then(|o| o.ecs.as_ref()) {
        Some((_, c)) if c.prefix > 0 => scope,
        _ => 0,
    };
    if udp && !cookie_valid {
        let verdict = match rcode {
            // A wildcard's answers are imputed to the wildcard.
            ResponseCode::NoError if wildcard.is_some() => {
                h.stats()
                    .rrl
                    .check(&snap.rrl, src.ip(), Class::Wildcard, wildcard)
            }
            ResponseCode::NoError if neg.is_none() => {
                h.stats()
                    .rrl
                    .check_key(&snap.rrl, src.ip(), Class::Answer, q.key)
            }
            ResponseCode::NoError => {
                h.stats()
                    .rrl
                    .check(&snap.rrl, src.ip(), Class::NoData, Some(&zone.origin))
            }
            _ => h
                .stats()
                .rrl
                .check(&snap.rrl, src.ip(), Class::NxDomain, Some(&zone.origin)),
        };
        match verdict {
            Verdict::Send => {}
            Verdict::Drop => return Fast::Dropped,
            Verdict::Slip => {
                // As the general path: a cookie client gets BADCOOKIE
                // with a fresh cookie, any other a truncated reply.
                let client_cookie = matches!(
                    opt.and_then(|o| o.cookie.as_ref()),
                    Some((Seen::Client(_), _))
                );
                let (code, aa, tc) = if client_cookie {
                    (ResponseCode::BADCOOKIE, false, false)
                } else {
                    (rcode, true, true)
                };
                header(out, packet, aa, tc, wire_code(code), [0, 0, 0]);
                put(out, q.question);
                finish(out, opt, wire_code(code), ecs_scope);
                return Fast::Sent;
            }
        }
    }
    tally.count(&zone.stats, q.qtype, rcode, policy);

    match (&found, neg) {
        (
            Body::Positive {
                sections, target, ..
            },
            _,
        ) => {
            let ar = if with_additional {
                sections.additional_count
            } else {
                0
            };
            let an = sections.answer_count + target.map_or(0, |(t, _)| t.answer_count);
            header(out, packet, true, false, wire_code(rcode), [an, 0, ar]);
            put(out, q.question);
            put(out, sections.answer);
            if let Some((t, at)) = target {
                let start = out.len();
                put(out, t.answer);
                wire::point_owners(&mut out[start..], *at);
            }
            if with_additional {
                put(out, sections.additional);
            }
        }
        (_, Some(soa)) => {
            header(
                out,
                packet,
                true,
                false,
                wire_code(rcode),
                [0, soa.answer_count, 0],
            );
            put(out, q.question);
            let at = out.len();
            put(out, soa.answer);
            for &p in soa.pointers() {
                let p = at + p as usize;
                let to = u16::from_be_bytes([out[p], out[p + 1]]) + shift as u16;
                out[p..p + 2].copy_from_slice(&to.to_be_bytes());
            }
        }
        _ => unreachable!("a negative answer has its SOA"),
    }
    finish(out, opt, wire_code(rcode), ecs_scope);
    Fast::Sent
}

/// Starts loading the node a query of the fast path's shape will look up
/// (a batch's queries each start theirs, then are answered: their cache
/// misses overlap instead of following one another).
/// The name read stays in `ahead` for [`answer`] of the same packet.
pub fn prefetch(snap: &Snapshot, packet: &[u8], ahead: &mut Ahead) {
    ahead.clear();
    if packet.len() >= 17
        && let Some(len) = ahead.key.read_wire(&packet[12..])
    {
        ahead.read = Some(len);
        if let Some((zone, at)) = snap.zone_for_at(&ahead.key) {
            zone.prefetch(ahead.key.hash());
            ahead.zone = at.map(|at| (address(snap), at));
        }
    }
}

/// Which snapshot a name was read ahead in: its address, compared only.
fn address(snap: &Snapshot) -> usize {
    std::ptr::from_ref(snap) as usize
}

enum Body<'a> {
    Positive {
        sections: Sections<'a>,
        scope: u8,
        policy: usize,
        /// A wildcard's answer: the wildcard's name (rate limiting
        /// imputes the answer to it).
        wildcard: Option<&'a Name>,
        /// After a CNAME (`sections`): its target's records, and where the
        /// target's name is in the response (their owner).
        target: Option<(Sections<'a>, u16)>,
    },
    Negative(ResponseCode),
}

/// The one RRset `e` answers `client` with, its ECS scope, and its
/// metrics policy if routed; None when it is not one set (parts, NODATA,
/// SERVFAIL: the general path's).
fn served<'s>(
    snap: &'s Snapshot,
    e: &'s Entry,
    client: &Client,
) -> Option<(&'s Rrset, u8, Option<usize>)> {
    match &e.data {
        Data::Static(rr) => Some((rr, 0, None)),
        Data::Slot(i) => match snap.slot(*i).serve(client, &mut ()) {
            (Served::Set(rr), scope) => Some((
                rr,
                scope,
                Some(snap.slot_policy.get(*i).map_or(0, |&p| p as usize)),
            )),
            _ => None,
        },
    }
}

/// A CNAME (`cname`, at the query's name) and the records of the query's
/// type at its target, when the target is a name of the same zone with
/// such records that can follow the CNAME as prepared (see
/// [`Sections::movable`]); else None.
fn chain<'s>(
    snap: &'s Snapshot,
    zone: &'s Zone,
    cname: &'s Entry,
    q: &Query,
    client: &Client,
) -> Option<Body<'s>> {
    let (rr, scope, policy) = served(snap, cname, client)?;
    let wire = rr.wire()?;
    let first = wire.plain();
    // One CNAME record, its owner the question, nothing else.
    if wire.owner_len() != q.question.len() - 4
        || first.answer_count != 1
        || first.additional_count != 0
        || first.answer.get(..4) != Some(&[0xc0, 12, 0, 5])
    {
        return None;
    }
    let Some(RData::CNAME(target)) = rr.set().records_without_rrsigs().next().map(|r| &r.data)
    else {
        return None;
    };
    let key = Key::new(&target.0);
    if !snap.zone_for(&key).is_some_and(|z| std::ptr::eq(z, zone)) {
        return None;
    }
    let Found::Name {
        node,
        wildcard: false,
    } = zone.find(&key, q.qtype)
    else {
        return None;
    };
    let (next, next_scope, next_policy) = served(snap, node.get(q.qtype)?, client)?;
    let next = next.wire()?.plain();
    if !next.movable {
        return None;
    }
    // The target's name: the CNAME's RDATA (after the header, the
    // question, the owner's pointer and 10 bytes), or where the RDATA
    // points when it is a pointer alone (as hickory, the first place the
    // name is written).
    let rdata = first.answer.get(12..14)?;
    let at = if rdata[0] & 0xc0 == 0xc0 {
        u16::from_be_bytes([rdata[0] & 0x3f, rdata[1]])
    } else {
        u16::try_from(12 + q.question.len() + 12).ok()?
    };
    if at >= 0x4000 {
        return None;
    }
    Some(Body::Positive {
        sections: first,
        scope: scope.max(next_scope),
        // As the general path: the last routed hop's policy.
        policy: next_policy.or(policy).unwrap_or(0),
        wildcard: None,
        target: Some((next, at)),
    })
}

/// The parsed query.
struct Query<'p> {
    key: &'p Key,
    /// The question as sent (name, type, class).
    question: &'p [u8],
    qtype: RecordType,
}

fn be16(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// Reads a query of the fast path's shape, or None; its OPT record into
/// `opt`.
fn parse<'p>(
    snap: &Snapshot,
    p: &'p [u8],
    src: SocketAddr,
    key: &'p mut Key,
    read: Option<usize>,
    opt: &mut Option<Opt<'p>>,
) -> Option<Query<'p>> {
    // A query (QR clear), opcode QUERY, no AA or TC; RD as it likes.
    // Byte 3: AD and CD may be set (dig sets AD); RA, Z and RCODE not.
    if p.len() < 17 || p[2] & 0xfe != 0 || p[3] & 0xcf != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(p, 4)?, be16(p, 6)?, be16(p, 8)?, be16(p, 10)?);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    // `read`: the name's length when `key` holds it already.
    let name_len = match read {
        Some(len) => {
            debug_assert_eq!(
                Key::from_wire(&p[12..]).map(|(k, l)| (k.as_bytes().to_vec(), l)),
                Some((key.as_bytes().to_vec(), len)),
                "a name read ahead from another packet"
            );
            len
        }
        None => key.read_wire(&p[12..])?,
    };
    let key = &*key;
    let end = 12 + name_len + 4;
    let code = be16(p, 12 + name_len)?;
    if be16(p, 12 + name_len + 2)? != 1 {
        return None; // class IN only
    }
    match code {
        // Meta types, transfers, TSIG, OPT, and the DNSSEC types whose
        // answers are assembled (RRSIG, NSEC, DS from the parent).
        0 | 41 | 43 | 46 | 47 | 249..=255 => return None,
        _ => {}
    }
    let question = p.get(12..end)?;
    if ar == 1 {
        read_opt(snap, p.get(end..)?, src, opt)?;
    } else if end != p.len() {
        return None;
    }
    Some(Query {
        key,
        question,
        // The common types without hickory's conversion (a call, and a
        // jump through a table of every type).
        qtype: match code {
            1 => RecordType::A,
            28 => RecordType::AAAA,
            _ => RecordType::from(code),
        },
    })
}

/// Reads the OPT record that ends the message `r` into `slot`.
fn read_opt<'p>(
    snap: &Snapshot,
    r: &'p [u8],
    src: SocketAddr,
    slot: &mut Option<Opt<'p>>,
) -> Option<()> {
    // Owner the root, type OPT; extended RCODE 0 and version 0 (else
    // BADVERS, the general path's); the RDATA ends the message.
    // Owner, type, class (the payload size), TTL (extended RCODE,
    // version, flags), RDLENGTH.
    if r.len() < 11 || r[0] != 0 || be16(r, 1)? != 41 || r[5] != 0 || r[6] != 0 {
        return None;
    }
    let payload = be16(r, 3)?;
    let dnssec_ok = r[7] & 0x80 != 0;
    let rdlen = be16(r, 9)? as usize;
    if 11 + rdlen != r.len() {
        return None;
    }
    let opt = slot.insert(Opt {
        // As the general path: at least 512, at most the server's limit.
        payload: payload.max(512).min(snap.max_udp_payload),
        dnssec_ok,
        ecs: None,
        cookie: None,
    });
    let mut rest = &r[11..];
    let (mut seen_ecs, mut seen_cookie) = (false, false);
    while !rest.is_empty() {
        let code = be16(rest, 0)?;
        let len = be16(rest, 2)? as usize;
        let data = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        match code {
            8 => {
                if std::mem::replace(&mut seen_ecs, true) {
                    return None;
                }
                opt.ecs = Some((data, ecs_client(data)?));
            }
            crate::cookie::CODE => {
                if std::mem::replace(&mut seen_cookie, true) {
                    return None;
                }
                if let Some(keys) = &snap.cookies {
                    opt.cookie = Some(keys.respond(data, src.ip(), crate::cookie::now()).ok()?);
                }
            }
            _ => {}
        }
    }
    Some(())
}

/// The client an ECS option names, if it is well formed (RFC 7871 6:
/// exactly the address octets the source prefix needs, the bits beyond
/// it zero, scope 0 in a query); else None, for the general path to say
/// FORMERR.
#[inline(always)]
fn ecs_client(d: &[u8]) -> Option<Client> {
    let family = be16(d, 0)?;
    let (source, scope) = (*d.get(2)?, *d.get(3)?);
    let addr = &d[4.min(d.len())..];
    let width = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if scope != 0 || source > width || addr.len() != (source as usize).div_ceil(8) {
        return None;
    }
    if source % 8 != 0 && addr.last()? & (0xff >> (source % 8)) != 0 {
        return None;
    }
    // The octets sent, then zeros (not a copy into an array: a call to
    // memcpy for three bytes); IPv4's in a word, not in 128 bits.
    let ip = if family == 1 {
        let bits = addr.iter().fold(0u64, |b, &x| b << 8 | u64::from(x));
        IpAddr::V4(Ipv4Addr::from((bits << (32 - 8 * addr.len())) as u32))
    } else {
        let bits = addr.iter().fold(0u128, |b, &x| b << 8 | u128::from(x));
        IpAddr::V6(Ipv6Addr::from(bits << ((128 - 8 * addr.len()) % 128)))
    };
    Some(Client {
        addr: ip,
        prefix: source,
    })
}

/// Appends `s` to `out`. What a response is made of (the question, a few
/// records, an option) is mostly short: up to 64 bytes are copied here
/// in at most four word moves, not by a call to libc's `memcpy`, whose
/// call and size dispatch cost more than the copy (7 % of a query with
/// ECS in perf's samples).
#[inline(always)]
fn put(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n > 64 {
        out.extend_from_slice(s);
        return;
    }
    out.reserve(n);
    let at = out.len();
    let d = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let w8 = |i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let w16 = |i: usize| u128::from_ne_bytes(s[i..i + 16].try_into().expect("16 bytes"));
    // SAFETY: `reserve` made room for n bytes past `at`; every write
    // below stays within them (each range is inside 0..n), and together
    // they write all n (the last word of each case ends at n, overlapping
    // the first with the same bytes), so the new length covers only
    // written bytes.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                *d = s[0];
                *d.add(n / 2) = s[n / 2];
                *d.add(n - 1) = s[n - 1];
            }
            4..=7 => {
                let w4 = |i: usize| u32::from_ne_bytes(s[i..i + 4].try_into().expect("4 bytes"));
                d.cast::<u32>().write_unaligned(w4(0));
                d.add(n - 4).cast::<u32>().write_unaligned(w4(n - 4));
            }
            8..=15 => {
                d.cast::<u64>().write_unaligned(w8(0));
                d.add(n - 8).cast::<u64>().write_unaligned(w8(n - 8));
            }
            16..=32 => {
                d.cast::<u128>().write_unaligned(w16(0));
                d.add(n - 16).cast::<u128>().write_unaligned(w16(n - 16));
            }
            _ => {
                d.cast::<u128>().write_unaligned(w16(0));
                d.add(16).cast::<u128>().write_unaligned(w16(16));
                d.add(n - 32).cast::<u128>().write_unaligned(w16(n - 32));
                d.add(n - 16).cast::<u128>().write_unaligned(w16(n - 16));
            }
        }
        out.set_len(at + n);
    }
}

/// The 12 bits of `rcode`: the answers of this path's own without
/// hickory's conversion, a jump through a table of every code.
#[inline(always)]
fn wire_code(rcode: ResponseCode) -> u16 {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::NXDomain => 3,
        other => u16::from(other),
    }
}

/// Appends `fields` as big-endian 16-bit numbers (up to 8 of them), in
/// one store made in a register. Not bytes put together in memory and
/// copied: loads of words over bytes just stored one by one wait for the
/// stores to retire (half of the samples of the OPT record's writing).
#[inline(always)]
fn put_fields(out: &mut Vec<u8>, fields: &[u16]) {
    assert!(fields.len() <= 8);
    if out.capacity() - out.len() < 16 {
        // Near the end of the buffer: byte by byte, not a reallocation
        // for the word's spare bytes.
        out.extend(fields.iter().flat_map(|f| f.to_be_bytes()));
        return;
    }
    let word = fields.iter().enumerate().fold(0u128, |w, (i, f)| {
        w | u128::from(u16::from_le_bytes(f.to_be_bytes())) << (16 * i)
    });
    let at = out.len();
    // SAFETY: there is room for 16 bytes past `at` (checked above), which the store
    // fills (the word's bytes in little-endian order: each field's bytes
    // high first, the fields in order); the new length covers the fields'
    // bytes only, all written.
    unsafe {
        let d = out.spare_capacity_mut().as_mut_ptr().cast::<u128>();
        d.write_unaligned(word.to_le());
        out.set_len(at + 2 * fields.len());
    }
}

/// Writes the header: the query's ID, RD and CD; QR; AA and TC as told;
/// the low 4 bits of `rcode` (see [`wire_code`]).
fn header(out: &mut Vec<u8>, q: &[u8], aa: bool, tc: bool, rcode: u16, [an, ns, ar]: [u16; 3]) {
    let flags = [
        0x80 | (q[2] & 0x01) | if aa { 0x04 } else { 0 } | if tc { 0x02 } else { 0 },
        (q[3] & 0x10) | (rcode & 0x0f) as u8,
    ];
    out.clear();
    put_fields(
        out,
        &[
            u16::from_be_bytes([q[0], q[1]]),
            u16::from_be_bytes(flags),
            1,
            an,
            ns,
            ar,
        ],
    );
}

/// Appends the OPT record (if the query had one; ARCOUNT counts it), in
/// one write per part; its extended RCODE is the high bits of `rcode`
/// (see [`wire_code`]).
fn finish(out: &mut Vec<u8>, opt: Option<&Opt>, rcode: u16, scope: u8) {
    let Some(o) = opt else { return };
    let ar = u16::from_be_bytes([out[10], out[11]]) + 1;
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    let len = o.options_len();
    out.reserve(11 + len);
    // The root, then the type, the payload size, the extended RCODE and
    // version, the flags (DO) and the length of the options.
    out.push(0);
    put_fields(
        out,
        &[
            41,
            o.payload,
            (rcode >> 4) << 8,
            if o.dnssec_ok { 0x8000 } else { 0 },
            len as u16,
        ],
    );
    if let Some((d, _)) = &o.ecs {
        // The option as sent (at most 4 + 4 + 16 bytes), its scope set.
        put_fields(out, &[8, d.len() as u16]);
        let at = out.len();
        put(out, d);
        out[at + 3] = scope;
    }
    if let Some((_, c)) = &o.cookie {
        put_fields(out, &[crate::cookie::CODE, 24]);
        put(out, c);
    }
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
