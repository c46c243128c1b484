//! veer's DNS front: a hickory `RequestHandler` over the current snapshot.
//!
//! Per query: one `Store::load`, protocol checks (opcode, QDCOUNT, EDNS
//! version, class), [`resolve`], then the response is built from
//! references into the snapshot. Only wildcard-synthesised records are
//! copied. hickory-server owns the sockets and the wire encoding.

use std::ops::Range;
use std::sync::Arc;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode, emit_message_parts,
};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordSet, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use smallvec::SmallVec;

use super::answer::{Answer, Part, resolve};
use crate::metrics::ServerStats;
use crate::route::Client;
use crate::route::prefix::mask;
use crate::store::{Snapshot, Store};

/// DNS header size.
const HEADER_LEN: usize = 12;

/// Answers queries from the store's current snapshot.
#[derive(Debug, Clone)]
pub struct Handler {
    store: Arc<Store>,
    stats: Arc<ServerStats>,
}

impl Handler {
    /// A handler answering from `store`, counting into `stats`.
    pub fn new(store: Arc<Store>, stats: Arc<ServerStats>) -> Self {
        Handler { store, stats }
    }
}

/// The response's sections, ready to iterate.
struct Sections<'a> {
    answer: SmallVec<[Sec<'a>; 2]>,
    owned: Vec<Record>,
    authority: Option<&'a RecordSet>,
    additional: &'a [Arc<RecordSet>],
}

enum Sec<'a> {
    Set(&'a RecordSet),
    Owned(Range<usize>),
}

impl<'a> Sections<'a> {
    fn new(a: &Answer<'a>) -> Self {
        let mut owned = Vec::new();
        let answer = a
            .answer
            .iter()
            .map(|p| match *p {
                Part::Set(s) => Sec::Set(s),
                Part::Synth(s, owner) => {
                    let start = owned.len();
                    owned.extend(s.records_without_rrsigs().map(|r| {
                        let mut r = r.clone();
                        r.name = owner.clone();
                        r
                    }));
                    Sec::Owned(start..owned.len())
                }
            })
            .collect();
        Sections {
            answer,
            owned,
            authority: a.authority,
            additional: a.additional,
        }
    }

    fn answers(&self) -> impl Iterator<Item = &Record> + Send {
        self.answer.iter().flat_map(|s| match s {
            Sec::Set(set) => SecIter::A(set.records_without_rrsigs()),
            Sec::Owned(r) => SecIter::B(self.owned[r.clone()].iter()),
        })
    }

    fn authorities(&self) -> impl Iterator<Item = &Record> + Send {
        self.authority
            .into_iter()
            .flat_map(|s| s.records_without_rrsigs())
    }

    fn additionals(&self) -> impl Iterator<Item = &Record> + Send {
        self.additional
            .iter()
            .flat_map(|s| s.records_without_rrsigs())
    }

    /// Encodes exactly (rare path) to see whether the message fits.
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
        let mut none = std::iter::empty::<&Record>();
        let mut add = self.additionals();
        let additionals: &mut dyn Iterator<Item = &Record> =
            if with_additional { &mut add } else { &mut none };
        match emit_message_parts(
            meta,
            &mut request.queries.queries().iter(),
            &mut self.answers(),
            &mut self.authorities(),
            &mut DynIter(additionals),
            edns,
            None,
            &mut enc,
        ) {
            Ok(header) => !header.metadata.truncation,
            Err(_) => false,
        }
    }
}

struct DynIter<'a, 'b>(&'b mut dyn Iterator<Item = &'a Record>);

impl<'a> Iterator for DynIter<'a, '_> {
    type Item = &'a Record;
    fn next(&mut self) -> Option<&'a Record> {
        self.0.next()
    }
}

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
}

impl Prepared<'_> {
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

        // EDNS(0): answer an OPT with an OPT; cap the UDP payload.
        let mut edns = None;
        // A v4-mapped source (dual-stack socket) is the IPv4 client it maps.
        let mut client = Client::addr(request.src().ip().to_canonical());
        let mut bad_ecs = false;
        if let Some(req) = request.edns.as_ref() {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512).min(snap.max_udp_payload));
            e.set_version(0);
            if let Some(EdnsOption::Subnet(ecs)) = req.option(EdnsCode::Subnet) {
                let addr = ecs.addr();
                let source = ecs.source_prefix();
                // RFC 7871 6: address bits beyond the source prefix must be zero.
                bad_ecs = mask(addr, source) != addr;
                // Source prefix 0: the resolver withholds the client (RFC 7871
                // 7.1.2); route on the source address, answer with scope 0.
                if source > 0 {
                    client = Client {
                        addr,
                        prefix: source,
                    };
                }
                // The scope is set once the answer is known.
                let mut echo = *ecs;
                echo.set_scope_prefix(0);
                e.options_mut().insert(EdnsOption::Subnet(echo));
            }
            edns = Some(e);
        }

        let rcode = if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if bad_ecs {
            Some(ResponseCode::FormErr)
        } else if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else {
            let q = &request.queries.queries()[0];
            match q.query_type() {
                _ if q.query_class() != DNSClass::IN => Some(ResponseCode::Refused),
                // Zone transfers are not offered (yet): nobody is allowed.
                RecordType::AXFR | RecordType::IXFR => Some(ResponseCode::Refused),
                RecordType::OPT | RecordType::TSIG | RecordType::Unknown(0) => {
                    Some(ResponseCode::FormErr)
                }
                _ => None,
            }
        };
        if let Some(rcode) = rcode {
            meta.response_code = rcode;
            self.stats.count_no_zone(rcode);
            return Prepared {
                meta,
                edns,
                sections: None,
                fit: Fit::All,
            };
        }

        let q = &request.queries.queries()[0];
        let answer = resolve(snap, q.name(), q.query_type(), &client, &mut ());
        if answer.scope > 0
            && let Some(e) = edns.as_mut()
            && let Some(EdnsOption::Subnet(ecs)) = e.option(EdnsCode::Subnet)
            && ecs.source_prefix() > 0
        {
            // The prefix the routed choice really depended on (RFC 7871 7.2.1).
            let mut echo = *ecs;
            echo.set_scope_prefix(answer.scope);
            e.options_mut().insert(EdnsOption::Subnet(echo));
        }
        meta.response_code = answer.rcode;
        meta.authoritative = answer.authoritative;
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
                }
            });
            let base = HEADER_LEN + request.queries.as_bytes().len() + opt_len + answer.size;
            if base + answer.additional_size > limit as usize {
                // The bound says it might not fit: measure exactly.
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
        }
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
        let prepared = self.prepare(request, &snap);
        let meta = prepared.meta;
        let info = send(&mut handle, prepared.response(request), meta).await;
        self.stats.response_time.observe(start.elapsed());
        info
    }
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
