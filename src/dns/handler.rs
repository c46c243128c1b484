//! veer's DNS front: a hickory `RequestHandler` over the current snapshot.
//!
//! Per query: one `Store::load`, protocol checks (opcode, QDCOUNT, EDNS
//! version, class), [`resolve`], then the response is built from
//! references into the snapshot. Only wildcard-synthesised records are
//! copied. hickory-server owns the sockets and the wire encoding.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, Record, RecordSet, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use smallvec::SmallVec;

use super::answer::{ANSWER_PARTS, Answer, Part, resolve};
use super::fast::Ahead;
use crate::metrics::{ServerStats, Tally};
use crate::route::Client;
use crate::route::prefix::mask;
use crate::rrl::{Class, Verdict};
use crate::store::{Snapshot, Store};

/// DNS header size.
const HEADER_LEN: usize = 12;

/// Answers queries from the store's current snapshot.
#[derive(Debug, Clone)]
pub struct Handler {
    store: Arc<Store>,
    stats: Arc<ServerStats>,
    /// Query logging (`[dnstap]`), None when off.
    dnstap: Option<Arc<crate::dnstap::Tap>>,
}

impl Handler {
    /// A handler answering from `store`, counting into `stats`.
    pub fn new(store: Arc<Store>, stats: Arc<ServerStats>) -> Self {
        Handler {
            store,
            stats,
            dnstap: None,
        }
    }

    /// Logs queries and responses of [`Handler::answer_packet_at`] to `tap`.
    pub fn with_dnstap(mut self, tap: Option<Arc<crate::dnstap::Tap>>) -> Self {
        self.dnstap = tap;
        self
    }

    /// Whether queries are logged (dnstap is on).
    pub fn logs_queries(&self) -> bool {
        self.dnstap.is_some()
    }
}

/// The response's sections, ready to iterate.
struct Sections<'a> {
    answer: SmallVec<[Sec<'a>; ANSWER_PARTS]>,
    owned: Vec<Record>,
    authority: Option<&'a RecordSet>,
    /// The authority SOA with a lowered TTL (a route's NODATA), and with
    /// DO its RRSIGs and the NSEC proofs, their TTLs lowered alike.
    authority_owned: Option<Vec<Record>>,
    /// NSEC proofs (and a delegation's DS set) after the SOA or NS.
    proofs: SmallVec<[&'a RecordSet; 3]>,
    additional: SmallVec<[Sec<'a>; 4]>,
    /// Send RRSIGs with every RRset.
    dnssec: bool,
}

enum Sec<'a> {
    Set(&'a RecordSet),
    /// Only the RRSIGs of the set.
    Sigs(&'a RecordSet),
    Owned(Range<usize>),
}

/// `records` as a section part: borrowed when held as a hickory set, else
/// unpacked into `owned` for this response only (a packed set has no
/// RRSIGs).
fn sec<'a>(records: &'a crate::zone::Records, owned: &mut Vec<Record>) -> Sec<'a> {
    match records.to_set() {
        Cow::Borrowed(set) => Sec::Set(set),
        Cow::Owned(set) => {
            let start = owned.len();
            owned.extend(set.into_parts().records);
            Sec::Owned(start..owned.len())
        }
    }
}

impl<'a> Sections<'a> {
    fn new(a: &Answer<'a>) -> Self {
        let mut owned = Vec::new();
        let answer = a
            .answer
            .iter()
            .map(|p| match *p {
                Part::Set(rr) => sec(&rr.records, &mut owned),
                Part::Sigs(rr) => match rr.records.to_set() {
                    Cow::Borrowed(set) => Sec::Sigs(set),
                    // Packed: no RRSIGs (never asked for: see `push_sigs`).
                    Cow::Owned(_) => Sec::Owned(0..0),
                },
                Part::Synth(rr, owner) => {
                    let start = owned.len();
                    let set = rr.records.to_set();
                    owned.extend(set.records(a.dnssec).map(|r| {
                        let mut r = r.clone();
                        r.name = owner.clone();
                        r
                    }));
                    Sec::Owned(start..owned.len())
                }
            })
            .collect();
        let additional = a.additional.iter().map(|r| sec(r, &mut owned)).collect();
        let authority_owned = a.authority_ttl.zip(a.authority).map(|(ttl, set)| {
            std::iter::once(set)
                .chain(a.proofs.iter().copied())
                .flat_map(|s| s.records(a.dnssec))
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.min(ttl);
                    r
                })
                .collect()
        });
        Sections {
            answer,
            owned,
            authority: a.authority,
            authority_owned,
            proofs: a.proofs.clone(),
            additional,
            dnssec: a.dnssec,
        }
    }

    fn answers(&self) -> impl Iterator<Item = &Record> + Send {
        self.parts(&self.answer)
    }

    fn authorities(&self) -> impl Iterator<Item = &Record> + Send {
        let dnssec = self.dnssec;
        match &self.authority_owned {
            Some(r) => SecIter::A(r.iter()),
            None => SecIter::B(
                self.authority
                    .into_iter()
                    .chain(self.proofs.iter().copied())
                    .flat_map(move |s| s.records(dnssec)),
            ),
        }
    }

    fn additionals(&self) -> impl Iterator<Item = &Record> + Send {
        self.parts(&self.additional)
    }

    fn parts<'s>(&'s self, parts: &'s [Sec<'a>]) -> impl Iterator<Item = &'s Record> + Send {
        let dnssec = self.dnssec;
        parts.iter().flat_map(move |s| match s {
            Sec::Set(set) => SecIter::A(set.records(dnssec)),
            Sec::Sigs(set) => SecIter::B(set.rrsigs().iter()),
            Sec::Owned(r) => SecIter::B(self.owned[r.clone()].iter()),
        })
    }

    /// Encodes exactly as the response will be (rare path) to see whether
    /// the message fits. hickory writes the question from the request's
    /// bytes without making it a compression target, so this goes through
    /// the same builder, never `emit_message_parts` with parsed queries.
    fn fits(
        &self,
        request: &Request,
        meta: &Metadata,
        edns: Option<&Edns>,
        limit: u16,
        with_additional: bool,
    ) -> bool {
        let mut buf = Vec::with_capacity(limit as usize);
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_max_size(limit);
        let additionals = if with_additional {
            SecIter::A(self.additionals())
        } else {
            SecIter::B(std::iter::empty())
        };
        match MessageResponseBuilder::new(&request.queries, edns)
            .build(
                *meta,
                self.answers(),
                self.authorities(),
                std::iter::empty(),
                additionals,
            )
            .destructive_emit(&mut enc)
        {
            Ok(info) => !info.truncation,
            Err(_) => false,
        }
    }
}

/// The COOKIE option in a response: code, length, 8 bytes of client
/// cookie, 16 of server cookie.
const COOKIE_LEN: usize = 28;

/// How much of the answer goes out over UDP.
#[derive(PartialEq, Clone, Copy)]
enum Fit {
    All,
    NoAdditional,
    Truncated,
}

/// A response ready to encode, borrowing from the request and the
/// snapshot. Built by [`Handler::prepare`]; the hickory path sends it
/// through hickory's response handle, the UDP fast path encodes it itself.
pub struct Prepared<'a> {
    meta: Metadata,
    edns: Option<Edns>,
    sections: Option<Sections<'a>>,
    fit: Fit,
    /// Rate limiting says: send nothing.
    drop: bool,
    /// The COOKIE option's data to answer with (RFC 7873). Kept out of
    /// `edns` so the fast path appends it to the encoded OPT record:
    /// hickory clones every option twice while encoding.
    cookie: Option<[u8; 24]>,
}

impl Prepared<'_> {
    /// Nothing is to be sent (rate limited).
    pub fn dropped(&self) -> bool {
        self.drop
    }

    /// Puts the COOKIE option into the OPT record hickory will encode
    /// (for the paths that encode through hickory's response handle).
    pub fn attach_cookie(&mut self) {
        if let (Some(e), Some(c)) = (self.edns.as_mut(), self.cookie.take()) {
            e.options_mut()
                .insert(EdnsOption::Unknown(crate::cookie::CODE, c.to_vec()));
        }
    }

    /// The length of the OPT record's RDATA as hickory encodes `edns`.
    fn opt_rdata_len(&self) -> usize {
        self.edns.as_ref().map_or(0, |e| {
            let opts: &[(EdnsCode, EdnsOption)] = e.options().as_ref();
            opts.iter().map(|(_, o)| 4 + o.len() as usize).sum()
        })
    }

    /// Appends the COOKIE option to the OPT record at the end of `out`
    /// (a message encoded from this response: the OPT record is the last
    /// record written). False when `out` does not end as expected, hickory
    /// truncated it, or the option would pass `limit`: then `out` is
    /// unchanged.
    fn append_cookie(&self, out: &mut Vec<u8>, opt_rdata_len: usize, limit: u16) -> bool {
        let Some(cookie) = &self.cookie else {
            return true;
        };
        let Some(start) = out.len().checked_sub(11 + opt_rdata_len) else {
            return false;
        };
        let rdlen = (opt_rdata_len + COOKIE_LEN) as u16;
        let arcount = out
            .get(10..12)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        // hickory sets TC itself when a record did not fit, maybe the OPT
        // record, and leaves the dropped record's bytes past the end: only
        // a TC this response asked for (no records but the OPT) is trusted.
        let tc = out[2] & 0x02 != 0;
        if start < HEADER_LEN
            || arcount == 0
            || (tc && (self.fit != Fit::Truncated || arcount != 1))
            || out[start..start + 3] != [0, 0, 41]
            || out[start + 9..start + 11] != (opt_rdata_len as u16).to_be_bytes()
            || out.len() + COOKIE_LEN > limit as usize
        {
            return false;
        }
        out[start + 9..start + 11].copy_from_slice(&rdlen.to_be_bytes());
        out.extend_from_slice(&crate::cookie::CODE.to_be_bytes());
        out.extend_from_slice(&24u16.to_be_bytes());
        out.extend_from_slice(cookie);
        true
    }

    /// The largest UDP message this response may use.
    pub fn udp_limit(&self) -> u16 {
        self.edns.as_ref().map_or(512, |e| e.max_payload())
    }

    /// The message.
    pub fn response<'b>(
        &'b self,
        request: &'b Request,
    ) -> MessageResponse<
        'b,
        'b,
        impl Iterator<Item = &'b Record> + Send + 'b,
        impl Iterator<Item = &'b Record> + Send + 'b,
        impl Iterator<Item = &'b Record> + Send + 'b,
        impl Iterator<Item = &'b Record> + Send + 'b,
    > {
        let builder = MessageResponseBuilder::new(&request.queries, self.edns.as_ref());
        let none = || std::iter::empty::<&Record>();
        let mut meta = self.meta;
        let (an, ns, ad) = match (&self.sections, self.fit) {
            (Some(s), Fit::All) => (
                SecIter::A(s.answers()),
                SecIter::A(s.authorities()),
                SecIter::A(s.additionals()),
            ),
            (Some(s), Fit::NoAdditional) => (
                SecIter::A(s.answers()),
                SecIter::A(s.authorities()),
                SecIter::B(none()),
            ),
            (_, fit) => {
                meta.truncation = fit == Fit::Truncated;
                (SecIter::B(none()), SecIter::B(none()), SecIter::B(none()))
            }
        };
        builder.build(meta, an, ns, none(), ad)
    }
}

impl Handler {
    /// Decides the response to `request` from `snap` (and counts it).
    pub fn prepare<'a>(&self, request: &'a Request, snap: &'a Snapshot) -> Prepared<'a> {
        let mut meta = Metadata::response_from_request(&request.metadata);

        // EDNS(0): answer an OPT with an OPT; cap the UDP payload; mirror
        // DO (RFC 3225). ECS is echoed once, after the answer is known.
        let mut edns = None;
        // A v4-mapped source (dual-stack socket) is the IPv4 client it maps.
        let mut client = Client::addr(request.src().ip().to_canonical());
        let mut ecs = None;
        let mut bad_ecs = false;
        let mut cookie = None;
        let mut cookie_answer = None;
        let mut bad_cookie = false;
        if let Some(req) = request.edns.as_ref() {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512).min(snap.max_udp_payload));
            e.set_version(0);
            e.set_dnssec_ok(req.flags().dnssec_ok);
            if let Some(EdnsOption::Subnet(subnet)) = req.option(EdnsCode::Subnet) {
                let addr = subnet.addr();
                let source = subnet.source_prefix();
                // RFC 7871 6: exactly the address octets the source prefix
                // needs, and the bits beyond it zero; else FORMERR.
                bad_ecs = mask(addr, source) != addr
                    || ecs_option_len(request.as_slice()) != Some(subnet.len());
                // Source prefix 0: the resolver withholds the client (RFC 7871
                // 7.1.2); route on the source address, answer with scope 0.
                if source > 0 {
                    client = Client {
                        addr,
                        prefix: source,
                    };
                }
                if !bad_ecs {
                    ecs = Some(*subnet);
                }
            }
            // DNS cookies (RFC 7873): checked against the source address,
            // never ECS; every answer to a client cookie carries a server
            // cookie (the client's own while valid and young, else fresh).
            if let (Some(keys), Some(EdnsOption::Unknown(code, data))) =
                (&snap.cookies, req.option(EdnsCode::Cookie))
                && *code == crate::cookie::CODE
            {
                let now = crate::cookie::now();
                match keys.respond(data, request.src().ip(), now) {
                    Ok((seen, answer)) => {
                        cookie = Some(seen);
                        cookie_answer = Some(answer);
                    }
                    Err(crate::cookie::Malformed) => bad_cookie = true,
                }
            }
            edns = Some(e);
        }
        // With require_cookie, UDP needs a valid server cookie: a client
        // cookie alone gets BADCOOKIE (with a fresh cookie to retry with),
        // no cookie at all gets TC (so the client comes back over TCP).
        let require = request.protocol() == Protocol::Udp
            && snap.cookies.as_ref().is_some_and(|k| k.require)
            && !matches!(cookie, Some(crate::cookie::Seen::Valid(_)));

        let rcode = if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if bad_ecs || bad_cookie {
            Some(ResponseCode::FormErr)
        } else if require && cookie.is_some() {
            Some(ResponseCode::BADCOOKIE)
        } else if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else {
            let q = &request.queries.queries()[0];
            match q.query_type() {
                _ if q.query_class() != DNSClass::IN => Some(ResponseCode::Refused),
                // Transfers are answered over TCP (and IXFR over UDP)
                // before this; AXFR over UDP is not defined (RFC 5936
                // 4.2), and hickory's UDP path does not transfer.
                RecordType::AXFR | RecordType::IXFR => Some(ResponseCode::Refused),
                RecordType::OPT | RecordType::TSIG | RecordType::ZERO => {
                    Some(ResponseCode::FormErr)
                }
                _ => None,
            }
        };
        // UDP responses are rate limited (RRL), unless the client proved
        // its address with a valid server cookie.
        let limit = request.protocol() == Protocol::Udp
            && !matches!(cookie, Some(crate::cookie::Seen::Valid(_)));
        if let Some(rcode) = rcode {
            echo_ecs(&mut edns, ecs, 0);
            meta.response_code = rcode;
            self.stats.count_no_zone(rcode);
            let verdict = if limit {
                self.stats
                    .rrl
                    .check(&snap.rrl, request.src().ip(), Class::Error, None)
            } else {
                Verdict::Send
            };
            return Prepared {
                meta,
                edns,
                sections: None,
                fit: if verdict == Verdict::Slip {
                    Fit::Truncated
                } else {
                    Fit::All
                },
                drop: verdict == Verdict::Drop,
                cookie: cookie_answer,
            };
        }
        if require {
            // No cookie at all: truncated, nothing answered over UDP (and
            // those replies are rate limited like errors).
            let verdict = self
                .stats
                .rrl
                .check(&snap.rrl, request.src().ip(), Class::Error, None);
            return Prepared {
                meta,
                edns,
                sections: None,
                fit: Fit::Truncated,
                drop: verdict == Verdict::Drop,
                cookie: cookie_answer,
            };
        }

        let q = &request.queries.queries()[0];
        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let answer = resolve(snap, q.name(), q.query_type(), &client, &mut (), dnssec_ok);
        // The prefix the routed choice really depended on (RFC 7871 7.2.1);
        // 0 when the resolver withheld the client (source prefix 0).
        echo_ecs(
            &mut edns,
            ecs,
            if ecs.is_some_and(|e| e.source_prefix() > 0) {
                answer.scope
            } else {
                0
            },
        );
        meta.response_code = answer.rcode;
        meta.authoritative = answer.authoritative;
        let verdict = if limit {
            let (class, name) = rrl_class(&answer, q.name());
            self.stats
                .rrl
                .check(&snap.rrl, request.src().ip(), class, name)
        } else {
            Verdict::Send
        };
        if verdict != Verdict::Send {
            // Where a truncated reply would slip out, a client that sent a
            // cookie gets BADCOOKIE with a fresh server cookie instead (as
            // BIND and Knot do): coming back with it takes it past the
            // limit. Dropped stays dropped.
            if verdict == Verdict::Slip && matches!(cookie, Some(crate::cookie::Seen::Client(_))) {
                meta.response_code = ResponseCode::BADCOOKIE;
                meta.authoritative = false;
                return Prepared {
                    meta,
                    edns,
                    sections: None,
                    fit: Fit::All,
                    drop: false,
                    cookie: cookie_answer,
                };
            }
            return Prepared {
                meta,
                edns,
                sections: None,
                fit: Fit::Truncated,
                drop: verdict == Verdict::Drop,
                cookie: cookie_answer,
            };
        }
        let sections = Sections::new(&answer);
        match answer.zone {
            Some(zone) => zone
                .stats
                .count(q.query_type(), answer.rcode, answer.policy),
            None => self.stats.count_no_zone(answer.rcode),
        }

        let mut fit = Fit::All;
        if request.protocol() == Protocol::Udp {
            let limit = edns.as_ref().map_or(512, |e| e.max_payload());
            let opt_len = edns.as_ref().map_or(0, |e| {
                11 + if e.option(EdnsCode::Subnet).is_some() {
                    24
                } else {
                    0
                } + if cookie_answer.is_some() {
                    COOKIE_LEN
                } else {
                    0
                }
            });
            let base = HEADER_LEN + request.queries.as_bytes().len() + opt_len + answer.size;
            if base + answer.additional_size > limit as usize {
                // The bound says it might not fit: measure exactly.
                // The cookie is appended after encoding: leave room for it.
                let limit = limit
                    - if cookie_answer.is_some() {
                        COOKIE_LEN as u16
                    } else {
                        0
                    };
                fit = if sections.fits(request, &meta, edns.as_ref(), limit, true) {
                    Fit::All
                } else if !answer.referral
                    && sections.fits(request, &meta, edns.as_ref(), limit, false)
                {
                    Fit::NoAdditional
                } else {
                    Fit::Truncated
                };
            }
        }
        Prepared {
            meta,
            edns,
            sections: Some(sections),
            fit,
            drop: false,
            cookie: cookie_answer,
        }
    }

    /// Answers one query message (a UDP datagram or a TCP message without
    /// its length prefix) from `snap` into `out`; false when nothing
    /// should be sent (a response, or shorter than a header).
    pub fn answer_packet(
        &self,
        snap: &Snapshot,
        packet: &[u8],
        src: SocketAddr,
        protocol: Protocol,
        out: &mut Vec<u8>,
    ) -> bool {
        self.answer_packet_at(
            snap,
            packet,
            src,
            None,
            protocol,
            out,
            &mut Ahead::new(),
            &mut Tally::default(),
        )
    }

    /// [`Handler::answer_packet`] for a query that arrived at `local` (the
    /// socket's address, for the query log). Every answer of the UDP fast
    /// path and of TCP passes here: with `[dnstap]` on, a sampled query
    /// and its response are queued for the log (never waiting for it).
    /// `ahead`: the caller's scratch for the query's name, holding it if
    /// [`super::fast::prefetch`] read it from this packet.
    #[allow(clippy::too_many_arguments)]
    pub fn answer_packet_at<'s>(
        &self,
        snap: &'s Snapshot,
        packet: &[u8],
        src: SocketAddr,
        local: Option<SocketAddr>,
        protocol: Protocol,
        out: &mut Vec<u8>,
        ahead: &mut Ahead,
        tally: &mut Tally<'s>,
    ) -> bool {
        let Some(tap) = &self.dnstap else {
            return self.answer(snap, packet, src, protocol, out, ahead, tally);
        };
        if !tap.sampled() {
            return self.answer(snap, packet, src, protocol, out, ahead, tally);
        }
        let received = std::time::SystemTime::now();
        let answered = self.answer(snap, packet, src, protocol, out, ahead, tally);
        // What is not a query (a response, a runt) is not logged.
        if packet.len() >= HEADER_LEN && packet[2] & 0x80 == 0 {
            tap.log(
                packet,
                answered.then_some(&out[..]),
                src,
                local,
                match protocol {
                    Protocol::Udp => crate::dnstap::Transport::Udp,
                    _ => crate::dnstap::Transport::Tcp,
                },
                received,
                std::time::SystemTime::now(),
            );
        }
        answered
    }

    #[allow(clippy::too_many_arguments)]
    fn answer<'s>(
        &self,
        snap: &'s Snapshot,
        packet: &[u8],
        src: SocketAddr,
        protocol: Protocol,
        out: &mut Vec<u8>,
        ahead: &mut Ahead,
        tally: &mut Tally<'s>,
    ) -> bool {
        let handler = self;
        // Like hickory: shorter than a header, or a response: drop silently.
        if packet.len() < 12 || packet[2] & 0x80 != 0 || src.port() == 0 {
            ahead.clear();
            return false;
        }
        // Nearly every query: answered in place (nothing counted when not).
        match super::fast::answer(
            self,
            snap,
            packet,
            src,
            protocol == Protocol::Udp,
            out,
            ahead,
            tally,
        ) {
            super::fast::Fast::Sent => return true,
            super::fast::Fast::Dropped => return false,
            super::fast::Fast::General => {}
        }
        let request = match Request::from_bytes(packet.to_vec(), src, protocol) {
            Ok(r) => r,
            Err(_) => {
                // The header parsed (12 bytes), the rest did not: FORMERR.
                out.extend_from_slice(&packet[..2]);
                out.push(0x80 | (packet[2] & 0x79)); // QR, the request's opcode and RD
                out.push(1); // RCODE FORMERR
                out.extend_from_slice(&[0; 8]);
                handler
                    .stats()
                    .count_no_zone(hickory_proto::op::ResponseCode::FormErr);
                return true;
            }
        };
        // NOTIFY (RFC 1996) for a secondary zone: from its primaries only.
        if request.metadata.op_code == OpCode::Notify {
            *out = crate::xfr::secondary::notify_in(
                &snap.xfr.secondaries,
                &snap.xfr.keys,
                packet,
                src.ip(),
            );
            return true;
        }
        // IXFR over UDP: the answer if it fits, else the current SOA.
        if protocol == Protocol::Udp
            && request.metadata.op_code == OpCode::Query
            && request
                .queries
                .queries()
                .first()
                .is_some_and(|q| q.query_type() == RecordType::IXFR)
        {
            let limit = request.edns.as_ref().map_or(512, |e| {
                e.max_payload().clamp(512, snap.max_udp_payload.max(512))
            });
            crate::xfr::out::serve_udp(
                &snap.xfr,
                packet,
                src.ip(),
                request.edns.is_some(),
                limit,
                out,
            );
            return true;
        }
        let mut prepared = handler.prepare(&request, snap);
        if prepared.dropped() {
            return false;
        }
        // A TSIG-signed query (a secondary's SOA check before a transfer)
        // gets a signed answer, or the TSIG error (RFC 8945 5.2, 5.3): an
        // unsigned answer fails the secondary's refresh. Only for a query
        // hickory's parser found a TSIG in (an OPT alone costs nothing).
        let mut signer = None;
        if request.signature.is_some() {
            match crate::tsig::check_request(&snap.xfr.keys, packet, crate::tsig::now()) {
                crate::tsig::Checked::Unsigned => {}
                crate::tsig::Checked::Valid { signer: s, .. } => signer = Some(s),
                crate::tsig::Checked::Rejected(r) => {
                    out.clear();
                    out.extend_from_slice(&r.reply(packet));
                    return true;
                }
            }
        }
        let reserve = signer.as_ref().map_or(0, |s| s.overhead());
        let limit = match protocol {
            Protocol::Udp => prepared.udp_limit(),
            _ => u16::MAX,
        }
        .saturating_sub(u16::try_from(reserve).unwrap_or(u16::MAX));
        let opt_rdata_len = prepared.opt_rdata_len();
        let emit = |p: &Prepared, out: &mut Vec<u8>| {
            out.clear();
            let mut enc = BinEncoder::new(out);
            enc.set_max_size(limit);
            let ok = p.response(&request).destructive_emit(&mut enc).is_ok();
            // A record hickory rolled back (it did not fit) can leave its
            // bytes behind the message's end: send the message only.
            let end = enc.offset();
            out.truncate(end);
            ok
        };
        let encoded = emit(&prepared, out)
            && (prepared.append_cookie(out, opt_rdata_len, limit) || {
                // Not where it was expected (or no room): encode again
                // with the option inside hickory's OPT record.
                prepared.attach_cookie();
                emit(&prepared, out)
            });
        if !encoded {
            // Could not encode at all: a header-only SERVFAIL, as hickory does.
            out.clear();
            out.extend_from_slice(&packet[..2]);
            out.push(0x80 | (packet[2] & 0x79));
            out.push(2);
            out.extend_from_slice(&[0; 8]);
        }
        if let Some(s) = signer.as_mut()
            && let Err(e) = s.sign(out, crate::tsig::now())
        {
            tracing::warn!("cannot sign an answer: {e}");
        }
        true
    }

    /// Server-wide counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The store answers come from.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut handle: R,
    ) -> ResponseInfo {
        let start = std::time::Instant::now();
        let snap = self.store.load();
        let mut prepared = self.prepare(request, &snap);
        prepared.attach_cookie();
        let meta = prepared.meta;
        if prepared.dropped() {
            return ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            });
        }
        let info = send(&mut handle, prepared.response(request), meta).await;
        self.stats.response_time.observe(start.elapsed());
        info
    }
}

/// The rate-limiting class of `a` and the name it is imputed to: the
/// query name for answers, the zone for wildcard answers, NXDOMAIN, NODATA
/// and errors, the delegation point for referrals.
fn rrl_class<'a>(a: &Answer<'a>, qname: &'a Name) -> (Class, Option<&'a Name>) {
    let zone = a.zone.map(|z| &z.origin);
    match a.rcode {
        ResponseCode::NXDomain => (Class::NxDomain, zone),
        ResponseCode::NoError if a.referral => {
            (Class::Referral, a.authority.map(|ns| ns.name()).or(zone))
        }
        ResponseCode::NoError if a.answer.is_empty() => (Class::NoData, zone),
        ResponseCode::NoError => {
            let wildcard = a.answer.iter().find_map(|p| match *p {
                Part::Synth(rr, _) => Some(rr),
                Part::Set(_) | Part::Sigs(_) => None,
            });
            match wildcard {
                // Imputed to the wildcard itself (`*.x.zone.`; its hickory
                // set is kept: wildcards are few).
                Some(rr) => (Class::Wildcard, Some(rr.set().name())),
                None => (Class::Answer, Some(qname)),
            }
        }
        _ => (Class::Error, zone),
    }
}

/// Puts the query's ECS option, with `scope`, into the response's OPT:
/// exactly one ECS option (RFC 7871 7.2.1), whatever `edns` held before.
fn echo_ecs(edns: &mut Option<Edns>, ecs: Option<ClientSubnet>, scope: u8) {
    if let (Some(e), Some(mut subnet)) = (edns.as_mut(), ecs) {
        subnet.set_scope_prefix(scope);
        // hickory's `insert` appends: drop any option of the code first.
        e.options_mut().remove(EdnsCode::Subnet);
        e.options_mut().insert(EdnsOption::Subnet(subnet));
    }
}

/// The length of the first ECS option in the query's OPT record, read from
/// the wire: hickory decodes only the octets the source prefix needs and
/// ignores any beyond them, which RFC 7871 6 makes a FORMERR. `None` when
/// the message has no ECS option or does not parse.
fn ecs_option_len(msg: &[u8]) -> Option<u16> {
    opt_options(opt_rdata(msg)?)
        .find(|&(code, _)| code == u16::from(EdnsCode::Subnet))
        .map(|(_, data)| data.len() as u16)
}

fn be16(msg: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]))
}

/// The RDATA of the OPT record in a message's additional section, found by
/// walking the wire bytes (not through a parser that merges or drops).
fn opt_rdata(msg: &[u8]) -> Option<&[u8]> {
    let (qd, an, ns, ar) = (be16(msg, 4)?, be16(msg, 6)?, be16(msg, 8)?, be16(msg, 10)?);
    // A name on the wire: labels up to a zero octet or a pointer.
    let skip_name = |mut i: usize| -> Option<usize> {
        loop {
            match *msg.get(i)? {
                0 => return Some(i + 1),
                l if l & 0xc0 == 0xc0 => return Some(i + 2),
                l if l & 0xc0 == 0 => i += 1 + usize::from(l),
                _ => return None,
            }
        }
    };
    let mut i = HEADER_LEN;
    for _ in 0..qd {
        i = skip_name(i)? + 4;
    }
    let before = u32::from(an) + u32::from(ns);
    for n in 0..before + u32::from(ar) {
        i = skip_name(i)?;
        let rtype = be16(msg, i)?;
        let rdata = i + 10;
        let end = rdata + usize::from(be16(msg, i + 8)?);
        if n >= before && rtype == u16::from(RecordType::OPT) {
            return msg.get(rdata..end);
        }
        i = end;
    }
    None
}

/// The (code, data) options of an OPT RDATA, up to the first that overruns.
fn opt_options(rdata: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut o = 0;
    std::iter::from_fn(move || {
        let (code, len) = (be16(rdata, o)?, usize::from(be16(rdata, o + 2)?));
        let data = rdata.get(o + 4..o + 4 + len)?;
        o += 4 + len;
        Some((code, data))
    })
}

/// Either of two record iterators (so every branch has one type per section).
enum SecIter<A, B> {
    A(A),
    B(B),
}

impl<'a, A: Iterator<Item = &'a Record>, B: Iterator<Item = &'a Record>> Iterator
    for SecIter<A, B>
{
    type Item = &'a Record;
    fn next(&mut self) -> Option<&'a Record> {
        match self {
            SecIter::A(a) => a.next(),
            SecIter::B(b) => b.next(),
        }
    }
}

async fn send<'q, 'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::zone_handler::MessageResponse<
        'q,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    meta: Metadata,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("error sending response: {e}");
            ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::opt::ClientSubnet;
    use hickory_proto::serialize::binary::BinEncodable;

    use super::*;

    const CIDR: &str = r#"
[[route]]
name = "app.t."
type = "A"
policy = "cidr"
members = [
  { networks = ["10.0.0.0/8"], value = "10.1.1.1" },
  { default = true, value = "192.0.2.50" },
]

[[route]]
name = "miss.t."
type = "A"
ttl = 15
policy = "cidr"
members = [ { networks = ["10.0.0.0/8"], value = "10.1.1.1" } ]
"#;

    fn handler() -> (Handler, Snapshot) {
        let snap = crate::testutil::snapshot(CIDR, &[]);
        let h = Handler::new(
            Arc::new(Store::new(Snapshot::default())),
            Arc::new(ServerStats::default()),
        );
        (h, snap)
    }

    /// A query for `name A`; `opt` appends raw OPT RDATA options.
    fn query(name: &str, qtype: RecordType, do_bit: bool, options: &[u8]) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let mut msg = m.to_bytes().unwrap();
        msg[11] = 1; // ARCOUNT: the OPT record below
        msg.push(0); // root owner
        msg.extend_from_slice(&41u16.to_be_bytes());
        msg.extend_from_slice(&1232u16.to_be_bytes());
        msg.extend_from_slice(&[0, 0, if do_bit { 0x80 } else { 0 }, 0]);
        msg.extend_from_slice(&(options.len() as u16).to_be_bytes());
        msg.extend_from_slice(options);
        msg
    }

    /// An ECS option exactly as written, address octets included.
    fn ecs(family: u16, source: u8, addr: &[u8]) -> Vec<u8> {
        let mut o = 8u16.to_be_bytes().to_vec();
        o.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
        o.extend_from_slice(&family.to_be_bytes());
        o.extend_from_slice(&[source, 0]);
        o.extend_from_slice(addr);
        o
    }

    /// The wire response to `msg` over UDP from 127.0.0.1.
    fn answer(msg: Vec<u8>) -> Vec<u8> {
        let (h, snap) = handler();
        answer_from(&h, &snap, msg)
    }

    fn answer_from(h: &Handler, snap: &Snapshot, msg: Vec<u8>) -> Vec<u8> {
        let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let mut out = Vec::new();
        h.answer_packet(snap, &msg, src, Protocol::Udp, &mut out);
        out
    }

    /// The options of `code` in the response's OPT record, off the wire.
    fn options_of(resp: &[u8], code: u16) -> Vec<Vec<u8>> {
        opt_options(opt_rdata(resp).expect("an OPT record"))
            .filter(|&(c, _)| c == code)
            .map(|(_, d)| d.to_vec())
            .collect()
    }

    /// The ECS options of the response.
    fn ecs_options(resp: &[u8]) -> Vec<Vec<u8>> {
        options_of(resp, 8)
    }

    #[test]
    fn exactly_one_ecs_option_with_the_routed_scope() {
        // A routed answer: the choice depends on 10/8, so scope 8.
        let resp = answer(query(
            "app.t.",
            RecordType::A,
            false,
            &ecs(1, 24, &[10, 9, 0]),
        ));
        assert_eq!(resp[3] & 0xf, 0, "NOERROR");
        assert_eq!(ecs_options(&resp), vec![vec![0, 1, 24, 8, 10, 9, 0]]);
        // A static answer: one option, scope 0.
        let resp = answer(query(
            "www.t.",
            RecordType::A,
            false,
            &ecs(1, 24, &[10, 9, 0]),
        ));
        assert_eq!(ecs_options(&resp), vec![vec![0, 1, 24, 0, 10, 9, 0]]);
        // An error answer echoes it once too.
        let resp = answer(query(
            "www.t.",
            RecordType::AXFR,
            false,
            &ecs(1, 24, &[10, 9, 0]),
        ));
        assert_eq!(ecs_options(&resp), vec![vec![0, 1, 24, 0, 10, 9, 0]]);
        // IPv6: the source prefix's octets, mirrored, with the scope.
        let v6 = ecs(2, 56, &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0x01]);
        let resp = answer(query("app.t.", RecordType::A, false, &v6));
        let got = ecs_options(&resp);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(&got[0][..3], &[0, 2, 56]);
        assert_eq!(&got[0][4..], &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0x01]);
    }

    #[test]
    fn a_routed_nodata_carries_the_routes_ttl_on_its_soa() {
        // 127.0.0.1 is outside 10/8 and there is no default: NODATA.
        let resp = Message::from_vec(&answer(query("miss.t.", RecordType::A, false, &[]))).unwrap();
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
        assert!(resp.answers.is_empty());
        let soa = &resp.authorities[0];
        assert_eq!((soa.record_type(), soa.ttl), (RecordType::SOA, 15));
        // The zone's own NODATA keeps its negative TTL (900).
        let resp = Message::from_vec(&answer(query("www.t.", RecordType::MX, false, &[]))).unwrap();
        assert_eq!(resp.authorities[0].ttl, 900);
    }

    /// A COOKIE option with `data`.
    fn cookie(data: &[u8]) -> Vec<u8> {
        let mut o = 10u16.to_be_bytes().to_vec();
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        o
    }

    fn cookies_of(resp: &[u8]) -> Vec<Vec<u8>> {
        options_of(resp, 10)
    }

    #[test]
    fn cookies_are_answered_checked_and_required() {
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        // A client cookie gets exactly one COOKIE: it, and a server cookie.
        let resp = answer(query("www.t.", RecordType::A, false, &cookie(&client)));
        assert_eq!(resp[3] & 0xf, 0);
        let got = cookies_of(&resp);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].len(), &got[0][..8]), (24, &client[..]));
        // Malformed lengths: FORMERR.
        for bad in [&[1u8; 7][..], &[1u8; 12][..], &[1u8; 41][..]] {
            let resp = answer(query("www.t.", RecordType::A, false, &cookie(bad)));
            assert_eq!(resp[3] & 0xf, 1, "{} bytes", bad.len());
        }
        // require_cookie: a client cookie alone gets BADCOOKIE (23: 7 in
        // the header, 1 in the OPT's extended rcode) with a fresh cookie;
        // no cookie gets TC; the server cookie it was given is accepted.
        let snap =
            crate::testutil::snapshot(&format!("{CIDR}\n[cookies]\nrequire_cookie = true\n"), &[]);
        let (h, _) = handler();
        let resp = answer_from(
            &h,
            &snap,
            query("www.t.", RecordType::A, false, &cookie(&client)),
        );
        let flags_at = opt_rdata(&resp).unwrap().as_ptr() as usize - resp.as_ptr() as usize - 6;
        assert_eq!((resp[3] & 0xf, resp[flags_at]), (7, 1), "BADCOOKIE");
        let fresh = cookies_of(&resp).pop().unwrap();
        let resp = answer_from(&h, &snap, query("www.t.", RecordType::A, false, &[]));
        assert!(resp[2] & 0x02 != 0, "no cookie: TC");
        let resp = answer_from(
            &h,
            &snap,
            query("www.t.", RecordType::A, false, &cookie(&fresh)),
        );
        assert_eq!(resp[3] & 0xf, 0, "a valid server cookie is answered");
        assert_eq!(
            u16::from_be_bytes([resp[6], resp[7]]),
            1,
            "one answer record"
        );
    }

    #[test]
    fn a_cookie_client_over_the_rate_limit_gets_badcookie() {
        let snap = crate::testutil::snapshot(
            &format!("{CIDR}\n[rrl]\nresponses_per_second = 2\nslip = 1\n"),
            &[],
        );
        let (h, _) = handler();
        let client = [3u8; 8];
        let rcodes: Vec<u8> = (0..6)
            .map(|_| {
                let resp = answer_from(
                    &h,
                    &snap,
                    query("www.t.", RecordType::A, false, &cookie(&client)),
                );
                assert_eq!(cookies_of(&resp).len(), 1, "a fresh cookie in every reply");
                let ext = opt_rdata(&resp).unwrap().as_ptr() as usize - resp.as_ptr() as usize - 6;
                (resp[ext] << 4) | (resp[3] & 0xf)
            })
            .collect();
        // The bucket's 2 are answered; then, where a truncated reply would
        // slip (slip = 1: every one), BADCOOKIE (23).
        assert_eq!(rcodes, [0, 0, 23, 23, 23, 23]);
        // With slip = 0 every limited reply is dropped, cookie or not (a
        // fresh table).
        let (h, _) = handler();
        let snap = crate::testutil::snapshot(
            &format!("{CIDR}\n[rrl]\nresponses_per_second = 2\nslip = 0\n"),
            &[],
        );
        let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let dropped: Vec<bool> = (0..4)
            .map(|_| {
                let msg = query("www.t.", RecordType::A, false, &cookie(&client));
                let req = Request::from_bytes(msg, src, Protocol::Udp).unwrap();
                h.prepare(&req, &snap).dropped()
            })
            .collect();
        assert_eq!(dropped, [false, false, true, true]);
    }

    #[test]
    fn do_bit_is_copied() {
        for do_bit in [false, true] {
            let resp = answer(query("www.t.", RecordType::A, do_bit, &[]));
            // The OPT's TTL field holds the flags: DO is its top bit.
            let rdata = opt_rdata(&resp).unwrap();
            let flags_at = rdata.as_ptr() as usize - resp.as_ptr() as usize - 4;
            assert_eq!(resp[flags_at] & 0x80 != 0, do_bit);
        }
    }

    #[test]
    fn qtype_zero_and_oversized_ecs_are_formerr() {
        let resp = answer(query("www.t.", RecordType::ZERO, false, &[]));
        assert_eq!(resp[3] & 0xf, 1, "QTYPE 0");
        // /24 needs 3 address octets; 4 is one too many (RFC 7871 6).
        let resp = answer(query(
            "www.t.",
            RecordType::A,
            false,
            &ecs(1, 24, &[10, 9, 0, 0]),
        ));
        assert_eq!(resp[3] & 0xf, 1, "oversized ECS address");
        // Bits beyond the source prefix set.
        let resp = answer(query(
            "www.t.",
            RecordType::A,
            false,
            &ecs(1, 23, &[10, 9, 1]),
        ));
        assert_eq!(resp[3] & 0xf, 1, "ECS address bits beyond the prefix");
        // And the well-formed one is fine.
        let resp = answer(query(
            "www.t.",
            RecordType::A,
            false,
            &ecs(1, 24, &[10, 9, 1]),
        ));
        assert_eq!(resp[3] & 0xf, 0);
    }

    #[test]
    fn ecs_from_a_real_client_subnet() {
        // Sanity: hickory's own encoding of a /24 is what `ecs` writes.
        let s: ClientSubnet = "10.9.0.0/24".parse().unwrap();
        let mut bytes = Vec::new();
        s.emit(&mut BinEncoder::new(&mut bytes)).unwrap();
        assert_eq!(bytes, ecs(1, 24, &[10, 9, 0])[4..]);
    }

    #[test]
    fn the_appended_cookie_fits_every_payload_size_and_parses() {
        // Eight TXT values of about 70 bytes: around 600 bytes of answer,
        // so payload sizes from 512 up cross every fit decision.
        let members: Vec<String> = (0..8)
            .map(|i| format!("{{ value = \"{}\" }}", format!("{i}").repeat(60)))
            .collect();
        let config = format!(
            "[[route]]\nname = \"big.t.\"\ntype = \"TXT\"\npolicy = \"multivalue\"\nmax = 8\n\
             members = [ {} ]\n[rrl]\nresponses_per_second = 0\n",
            members.join(", ")
        );
        let snap = crate::testutil::snapshot(&config, &[]);
        let (h, _) = handler();
        let mut opts = cookie(&[9; 8]);
        opts.extend_from_slice(&ecs(1, 24, &[192, 0, 2]));
        let mut seen = (false, false);
        for payload in 512u16..760 {
            let mut msg = query("big.t.", RecordType::TXT, false, &opts);
            let at = msg.len() - opts.len() - 8;
            msg[at..at + 2].copy_from_slice(&payload.to_be_bytes());
            let resp = answer_from(&h, &snap, msg);
            assert!(resp.len() <= payload as usize, "{} > {payload}", resp.len());
            assert_eq!(cookies_of(&resp).len(), 1, "payload {payload}");
            assert_eq!(ecs_options(&resp).len(), 1, "payload {payload}");
            let m = Message::from_vec(&resp).unwrap();
            let edns = m.edns.as_ref().expect("OPT");
            assert!(edns.option(EdnsCode::Cookie).is_some());
            if m.metadata.truncation {
                seen.0 = true;
            } else {
                assert_eq!(m.answers.len(), 8, "payload {payload}");
                seen.1 = true;
            }
        }
        assert_eq!(seen, (true, true), "both truncated and whole answers");
    }

    #[test]
    fn a_cookie_is_not_appended_where_the_opt_record_is_not_last() {
        let (h, snap) = handler();
        let msg = query("www.t.", RecordType::A, false, &cookie(&[9; 8]));
        let req =
            Request::from_bytes(msg, "127.0.0.1:5300".parse().unwrap(), Protocol::Udp).unwrap();
        let p = h.prepare(&req, &snap);
        let mut junk = vec![0u8; 40];
        assert!(!p.append_cookie(&mut junk, 0, 1232));
        assert_eq!(junk, vec![0u8; 40], "unchanged");
    }

    /// What the hickory path sends: the cookie inside hickory's Edns,
    /// encoded as hickory's UDP or TCP handle encodes it.
    fn via_hickory(h: &Handler, snap: &Snapshot, msg: &[u8], proto: Protocol) -> Option<Vec<u8>> {
        let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let req = Request::from_bytes(msg.to_vec(), src, proto).ok()?;
        let mut p = h.prepare(&req, snap);
        p.attach_cookie();
        if p.dropped() {
            return None;
        }
        let mut out = Vec::new();
        let mut enc = BinEncoder::new(&mut out);
        enc.set_max_size(match proto {
            Protocol::Udp => p.udp_limit(),
            _ => u16::MAX,
        });
        match p.response(&req).destructive_emit(&mut enc) {
            Ok(_) => Some(out),
            // hickory sends a header-only SERVFAIL.
            Err(_) => Some(Vec::new()),
        }
    }

    /// What the fast path (`answer_packet`) sends.
    fn fast(h: &Handler, snap: &Snapshot, msg: &[u8], proto: Protocol) -> Option<Vec<u8>> {
        let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let mut out = Vec::new();
        h.answer_packet(snap, msg, src, proto, &mut out)
            .then_some(out)
    }

    /// A query with an OPT record: UDP payload size, EDNS version, DO
    /// set, raw options.
    fn query_with(name: &str, t: RecordType, payload: u16, version: u8, options: &[u8]) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        let mut msg = m.to_bytes().unwrap();
        msg[11] = 1;
        msg.push(0);
        msg.extend_from_slice(&41u16.to_be_bytes());
        msg.extend_from_slice(&payload.to_be_bytes());
        msg.extend_from_slice(&[0, version, 0x80, 0]);
        msg.extend_from_slice(&(options.len() as u16).to_be_bytes());
        msg.extend_from_slice(options);
        msg
    }

    /// An EDNS option.
    fn option(code: u16, data: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        o
    }

    /// A route of eight ~70-byte TXT values: about 600 bytes of answer.
    fn big_txt() -> String {
        let members: Vec<String> = (0..8)
            .map(|i| format!("{{ value = \"{}\" }}", format!("{i}").repeat(60)))
            .collect();
        format!(
            "[[route]]\nname = \"big.t.\"\ntype = \"TXT\"\npolicy = \"multivalue\"\nmax = 8\n\
             members = [ {} ]\n[rrl]\nresponses_per_second = 0\n",
            members.join(", ")
        )
    }

    /// What two encodings of a response must agree on: header, the
    /// answer records sorted (multivalue answers come in random order)
    /// and the OPT record with the cookie's server part blanked (the two
    /// encodings may straddle a second). Not the length: the fast path
    /// compresses owners against the question, hickory's path does not.
    fn norm(m: &[u8]) -> (Vec<u8>, Vec<String>, Vec<u8>) {
        let mut tail = m.to_vec();
        if let Some(rdata) = opt_rdata(m) {
            let at = rdata.as_ptr() as usize - m.as_ptr() as usize;
            let mut o = 0;
            for (code, data) in opt_options(rdata) {
                if code == 10 && data.len() == 24 {
                    tail[at + o + 4 + 8..at + o + 4 + 24].fill(0);
                }
                o += 4 + data.len();
            }
        }
        let mut answers: Vec<String> = Message::from_vec(m)
            .map(|p| p.answers.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        answers.sort();
        let opt = opt_rdata(m).map_or(Vec::new(), |r| {
            let at = r.as_ptr() as usize - m.as_ptr() as usize;
            tail[at - 11..at + r.len()].to_vec()
        });
        (m[..HEADER_LEN.min(m.len())].to_vec(), answers, opt)
    }

    #[test]
    fn the_fast_path_sends_what_the_hickory_path_sends() {
        let plain = crate::testutil::snapshot(&big_txt(), &[]);
        let require = crate::testutil::snapshot(
            &format!("{}\n[cookies]\nrequire_cookie = true\n", big_txt()),
            &[],
        );
        let (h, _) = handler();
        let c = option(10, &[5; 8]);
        let mut c_ecs4 = c.clone();
        c_ecs4.extend(option(8, &[0, 1, 24, 0, 192, 0, 2]));
        let mut c_ecs6 = option(
            8,
            &[
                0, 2, 128, 0, 0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            ],
        );
        c_ecs6.extend(c.clone());
        let mut bad_ecs = c.clone();
        bad_ecs.extend(option(8, &[0, 1, 24, 0, 192, 0, 2, 0]));
        let two = [c.clone(), option(10, &[6; 8])].concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("a", query_with("www.t.", RecordType::A, 1232, 0, &c)),
            (
                "ecs4",
                query_with("www.t.", RecordType::A, 1232, 0, &c_ecs4),
            ),
            (
                "ecs6",
                query_with("www.t.", RecordType::A, 1232, 0, &c_ecs6),
            ),
            (
                "badvers",
                query_with("www.t.", RecordType::A, 1232, 1, &c_ecs4),
            ),
            (
                "bad ecs",
                query_with("www.t.", RecordType::A, 1232, 0, &bad_ecs),
            ),
            ("axfr", query_with("t.", RecordType::AXFR, 1232, 0, &c)),
            ("nx", query_with("nope.t.", RecordType::A, 1232, 0, &c)),
            (
                "refused",
                query_with("example.", RecordType::A, 1232, 0, &c),
            ),
            (
                "two cookies",
                query_with("www.t.", RecordType::A, 1232, 0, &two),
            ),
            (
                "no cookie",
                query_with("www.t.", RecordType::A, 1232, 0, &[]),
            ),
        ];
        let mut n = 0;
        for snap in [&plain, &require] {
            for (what, msg) in &cases {
                for proto in [Protocol::Udp, Protocol::Tcp] {
                    let a = fast(&h, snap, msg, proto).map(|a| norm(&a));
                    let b = via_hickory(&h, snap, msg, proto).map(|b| norm(&b));
                    assert_eq!(a, b, "{what} {proto:?}");
                    n += 1;
                }
            }
            for payload in 512..800 {
                for opts in [&c, &c_ecs4, &c_ecs6] {
                    let msg = query_with("big.t.", RecordType::TXT, payload, 0, opts);
                    let a = fast(&h, snap, &msg, Protocol::Udp).unwrap();
                    let b = via_hickory(&h, snap, &msg, Protocol::Udp).unwrap();
                    assert!(a.len() <= payload as usize);
                    // The fast path's owners are pointers: it fits the
                    // whole answer at sizes hickory truncates.
                    if b[2] & 0x02 != 0 && a[2] & 0x02 == 0 {
                        assert_eq!(&a[6..8], [0, 8], "big {payload}: all or nothing");
                        assert!(a.len() + 21 - 16 > payload as usize, "big {payload}");
                    } else {
                        assert_eq!(norm(&a), norm(&b), "big {payload}");
                    }
                    n += 1;
                }
            }
        }
        assert!(n > 100);
    }

    /// hickory sets TC when it drops a record that does not fit (the OPT
    /// record among them) and leaves the dropped bytes past the end; then
    /// the last bytes are zone data or the client's question, and an
    /// answer whose last record happens to end like an OPT record must not
    /// be patched.
    #[test]
    fn a_message_hickory_truncated_is_not_patched() {
        let snap = crate::testutil::snapshot(&big_txt(), &[]);
        let (h, _) = handler();
        let msg = query_with("big.t.", RecordType::TXT, 1232, 0, &option(10, &[5; 8]));
        let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let req = Request::from_bytes(msg, src, Protocol::Tcp).unwrap();
        let p = h.prepare(&req, &snap);
        // Header: TC, one answer, one additional (a record, not an OPT);
        // the TXT's RDATA ends in what an empty OPT record looks like.
        let mut out = vec![0, 1, 0x86, 0, 0, 1, 0, 1, 0, 0, 0, 1];
        out.extend_from_slice(&[3, b'b', b'i', b'g', 1, b't', 0, 0, 16, 0, 1]);
        out.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 12]);
        out.extend_from_slice(&[11, 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        let before = out.clone();
        assert!(!p.append_cookie(&mut out, 0, u16::MAX));
        assert_eq!(out, before, "unchanged");
    }

    /// Several questions (FORMERR) that together nearly fill the payload:
    /// the OPT record may not fit, and the question's last bytes are the
    /// client's to choose (here: bytes that look like an OPT record with
    /// the 24 bytes of RDATA an IPv6 /128 ECS option takes).
    #[test]
    fn a_question_section_that_looks_like_an_opt_record_is_not_patched() {
        let snap = crate::testutil::snapshot(&big_txt(), &[]);
        let (h, _) = handler();
        let ecs6 = [
            option(
                8,
                &[
                    0, 2, 128, 0, 0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                ],
            ),
            option(10, &[5; 8]),
        ]
        .concat();
        let mut crafted = vec![b'c'; 63];
        // The question ends: crafted label, root, QTYPE, QCLASS (5 bytes);
        // an OPT record of 35 bytes would start 30 bytes into the label's end.
        crafted[63 - 30..63 - 27].copy_from_slice(&[0, 0, 41]);
        crafted[63 - 21..63 - 19].copy_from_slice(&24u16.to_be_bytes());
        for m in 1..=61usize {
            let mut name = vec![m as u8];
            name.extend(std::iter::repeat_n(b'm', m));
            for _ in 0..2 {
                name.push(63);
                name.extend_from_slice(&[b'a'; 63]);
            }
            name.push(63);
            name.extend_from_slice(&crafted);
            name.push(0);
            let base = query_with("www.t.", RecordType::A, 512, 0, &ecs6);
            let qend = 12 + 7 + 4; // www.t. A IN
            for extra in 1..=2u8 {
                let mut msg = base[..qend].to_vec();
                for _ in 0..extra {
                    msg.extend_from_slice(&name);
                    msg.extend_from_slice(&[0, 1, 0, 1]);
                }
                msg.extend_from_slice(&base[qend..]);
                msg[5] = 1 + extra;
                let a = fast(&h, &snap, &msg, Protocol::Udp).unwrap();
                let b = via_hickory(&h, &snap, &msg, Protocol::Udp).unwrap();
                assert!(a.len() <= 512, "{}", a.len());
                if b.is_empty() {
                    assert_eq!((a.len(), a[3] & 0xf), (12, 2), "SERVFAIL");
                } else {
                    // The fast path trims bytes hickory left behind a
                    // rolled-back record; the rest is the same.
                    assert!(a.len() <= b.len(), "m {m} x{extra}");
                    assert_eq!(norm(&a), norm(&b), "m {m} x{extra}");
                }
            }
        }
    }

    #[test]
    fn a_young_valid_server_cookie_comes_back_as_sent_on_both_paths() {
        let (h, snap) = handler();
        let first = fast(
            &h,
            &snap,
            &query_with("www.t.", RecordType::A, 1232, 0, &option(10, &[4; 8])),
            Protocol::Udp,
        )
        .unwrap();
        let given = cookies_of(&first).pop().unwrap();
        let msg = query_with("www.t.", RecordType::A, 1232, 0, &option(10, &given));
        for resp in [
            fast(&h, &snap, &msg, Protocol::Udp).unwrap(),
            via_hickory(&h, &snap, &msg, Protocol::Udp).unwrap(),
        ] {
            assert_eq!(cookies_of(&resp), vec![given.clone()]);
        }
        // The same cookie padded to 40 bytes of server cookie: not ours,
        // a fresh one of 24.
        let mut long = given.clone();
        long.extend_from_slice(&[0; 16]);
        let msg = query_with("www.t.", RecordType::A, 1232, 0, &option(10, &long));
        let got = cookies_of(&fast(&h, &snap, &msg, Protocol::Udp).unwrap());
        assert_eq!(
            (got.len(), got[0].len(), &got[0][..8]),
            (1, 24, &given[..8])
        );
    }
}
