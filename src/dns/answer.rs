//! Authoritative resolution against one snapshot: exact match, CNAME
//! chains, wildcards (RFC 4592), delegations, NXDOMAIN and NODATA. The
//! result is a value ([`Answer`]) of references into the snapshot; turning
//! it into a message is the handler's job.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType};
use smallvec::SmallVec;

use crate::route::{Client, Trace};
use crate::store::{Dyn, Served, Snapshot};
use crate::zone::{Data, Entry, Found, Key, Records, Rrset, Zone};

/// RRsets (or parts of one) an answer holds without allocating: a
/// weighted `pick` of up to [`crate::config::MAX_PICK`] parts, or a CNAME
/// chain's first hops.
pub const ANSWER_PARTS: usize = crate::config::MAX_PICK + 1;

/// Longest CNAME chain followed inside our zones.
const MAX_CNAME_CHAIN: usize = 8;

/// One RRset in the answer section. It is the RRset itself, not a
/// hickory `RecordSet`: a packed set is unpacked for the response and
/// dropped with it, never kept (see [`Records::set`]).
#[derive(Debug)]
pub enum Part<'a> {
    /// Served as stored.
    Set(&'a Rrset),
    /// Synthesised from a wildcard: served with `owner` as the owner name.
    Synth(&'a Rrset, &'a Name),
    /// Only the RRSIGs of this set (a query for type RRSIG).
    Sigs(&'a Rrset),
}

impl<'a> Part<'a> {
    /// The stored RRset.
    pub fn rrset(&self) -> &'a Rrset {
        match *self {
            Part::Set(s) | Part::Synth(s, _) | Part::Sigs(s) => s,
        }
    }

    /// Its records: the set held, or a copy made of a packed one.
    pub fn records(&self) -> std::borrow::Cow<'a, RecordSet> {
        self.rrset().records.to_set()
    }
}

/// What to answer, before it becomes a message.
#[derive(Debug)]
pub struct Answer<'a> {
    /// Response code.
    pub rcode: ResponseCode,
    /// AA: the answer comes from our zone data (not a referral).
    pub authoritative: bool,
    /// This is a referral: authority holds the child's NS set.
    pub referral: bool,
    /// Answer section.
    pub answer: SmallVec<[Part<'a>; ANSWER_PARTS]>,
    /// Authority section.
    pub authority: Option<&'a RecordSet>,
    /// More of it in a signed zone with DO: NSEC proofs, a DS set.
    pub proofs: SmallVec<[&'a RecordSet; 3]>,
    /// RRSIGs go with every RRset (DO set, the zone signed).
    pub dnssec: bool,
    /// Additional section.
    pub additional: &'a [std::sync::Arc<Records>],
    /// Upper bound of the encoded size of the answer and authority records.
    pub size: usize,
    /// Upper bound of the encoded size of the additional records.
    pub additional_size: usize,
    /// ECS scope prefix: the longest prefix a routed choice depended on.
    pub scope: u8,
    /// The zone the query landed in.
    pub zone: Option<&'a Zone>,
    /// Metrics label of the answer's source ([`crate::metrics::POLICIES`]).
    pub policy: usize,
    /// The authority SOA's TTL when a route's NODATA lowers it below the
    /// zone's negative TTL (resolvers cache the NODATA no longer than the
    /// route's answer).
    pub authority_ttl: Option<u32>,
}

impl<'a> Answer<'a> {
    fn new() -> Self {
        Answer {
            rcode: ResponseCode::Refused,
            authoritative: false,
            referral: false,
            answer: SmallVec::new(),
            authority: None,
            proofs: SmallVec::new(),
            dnssec: false,
            additional: &[],
            size: 0,
            additional_size: 0,
            scope: 0,
            zone: None,
            policy: 0,
            authority_ttl: None,
        }
    }

    fn push(&mut self, rr: &'a Rrset, synth_owner: Option<&'a Name>) {
        let sigs = if self.dnssec { rr.sig_len() } else { 0 };
        match synth_owner {
            Some(owner) => {
                self.answer.push(Part::Synth(rr, owner));
                let n = rr.records.records_count()
                    + if self.dnssec {
                        rr.records.rrsig_count()
                    } else {
                        0
                    };
                self.size += rr.wire_len() + sigs + n * owner.len();
            }
            None => {
                self.answer.push(Part::Set(rr));
                self.size += rr.wire_len() + sigs;
            }
        }
    }

    /// The RRSIGs of `rr` as answer records (a query for type RRSIG).
    fn push_sigs(&mut self, rr: &'a Rrset) {
        if rr.records.rrsig_count() == 0 {
            return;
        }
        self.answer.push(Part::Sigs(rr));
        self.size += rr.sig_len();
    }

    /// An NSEC proof (or DS set) for the authority section, once.
    fn prove(&mut self, rr: Option<&'a Rrset>) {
        let Some(rr) = rr else { return };
        if self.proofs.iter().any(|p| std::ptr::eq(*p, rr.set())) {
            return;
        }
        self.proofs.push(rr.set());
        self.size += rr.wire_len() + rr.sig_len();
    }

    fn additional(&mut self, sets: &'a [std::sync::Arc<Records>], size: usize) {
        self.additional = sets;
        self.additional_size = size;
    }
}

/// An entry's records in this snapshot for `client`, and the ECS scope.
fn served<'a>(
    snap: &'a Snapshot,
    e: &'a Entry,
    client: &Client,
    trace: &mut impl Trace,
) -> (Served<'a>, u8) {
    match &e.data {
        Data::Static(rr) => (Served::Set(rr), 0),
        Data::Slot(i) => snap.slot(*i).serve(client, trace),
    }
}

/// Resolves `qname`/`qtype` against `snap`.
///
/// `client` is who asks (for routed answers); the answer's `scope` is the
/// ECS scope prefix the routed choices used (0 if none depended on the
/// client). `trace` collects the routing steps for `veer explain`; the
/// server passes `()`. With `dnssec` (the query's DO bit), a signed
/// zone's answers carry their RRSIGs and the NSEC records that prove a
/// denial or a wildcard expansion.
pub fn resolve<'a>(
    snap: &'a Snapshot,
    qname: &'a Name,
    qtype: RecordType,
    client: &Client,
    trace: &mut impl Trace,
    dnssec: bool,
) -> Answer<'a> {
    let mut a = Answer::new();
    let mut owner = qname;
    let mut key = Key::new(qname);
    for hop in 0..MAX_CNAME_CHAIN {
        let Some(mut zone) = snap.zone_for(&key) else {
            // hop 0: not ours (REFUSED); later: the chain leaves our zones.
            return a;
        };
        // A DS set lives on the parent side of a cut: a child apex we also
        // serve answers DS from its parent zone, if we serve that too.
        if qtype == RecordType::DS
            && key.labels() == zone.origin.num_labels() as usize
            && let Some(parent) = snap.zone_above(&key)
        {
            zone = parent;
        }
        if hop == 0 {
            a.rcode = ResponseCode::NoError;
            a.authoritative = true;
            a.zone = Some(zone);
            a.dnssec = dnssec && zone.signed.is_some();
        }
        // Proofs come from the zone the name is in (a CNAME chain may
        // cross into an unsigned one: no proofs there).
        let prove = a.dnssec && zone.signed.is_some();
        // A secondary zone that expired (or never arrived) answers
        // SERVFAIL; its SOA slot says so.
        if matches!(snap.slot(zone.soa_slot), Dyn::ServFail) {
            a.rcode = ResponseCode::ServFail;
            a.authoritative = false;
            a.answer.clear();
            a.authority = None;
            return a;
        }
        let negative = |a: &mut Answer<'a>, rcode| {
            let neg = snap.soa(zone).1;
            a.rcode = rcode;
            a.authority = Some(neg.set());
            a.size += neg.wire_len() + if a.dnssec { neg.sig_len() } else { 0 };
        };
        match zone.find(&key, qtype) {
            Found::NxDomain => {
                negative(&mut a, ResponseCode::NXDomain);
                if prove {
                    // No such name, and no wildcard at the closest
                    // encloser could have made one (RFC 4035 3.1.3.2).
                    a.prove(zone.covering(key.as_bytes()));
                    let mut buf = [0; 258];
                    a.prove(zone.covering(zone.source_of_synthesis(&key, &mut buf)));
                }
                return a;
            }
            Found::Referral(node) => {
                if hop == 0 {
                    let ns = node
                        .get_static(RecordType::NS)
                        .expect("a cut has NS records");
                    a.authoritative = false;
                    a.referral = true;
                    a.authority = Some(ns.set());
                    a.size += ns.wire_len();
                    a.additional(node.glue(), node.glue_len());
                    if prove {
                        // A secure delegation's DS set, or the NSEC that
                        // proves there is none (an insecure one).
                        match node.get_static(RecordType::DS) {
                            Some(ds) => a.prove(Some(ds)),
                            None => a.prove(node.nsec().map(|n| &n.full)),
                        }
                    }
                }
                return a;
            }
            Found::Name { node, wildcard } => {
                let synth = wildcard.then_some(owner);
                // The DNSSEC types themselves: NSEC is stored beside the
                // data, RRSIGs with each RRset.
                if zone.signed.is_some() && !wildcard {
                    match qtype {
                        RecordType::NSEC => {
                            if let Some(n) = node.nsec() {
                                a.push(&n.full, None);
                                return a;
                            }
                        }
                        RecordType::RRSIG => {
                            for e in &node.rrsets {
                                if let (Served::Set(rr), _) = served(snap, e, client, &mut ()) {
                                    a.push_sigs(rr);
                                }
                            }
                            if let Some(n) = node.nsec() {
                                a.push_sigs(&n.full);
                            }
                            if !a.answer.is_empty() {
                                return a;
                            }
                        }
                        _ => {}
                    }
                }
                let entry = match qtype {
                    RecordType::ANY => node.rrsets.first(),
                    t => node.get(t),
                };
                let (entry, is_cname) = match (entry, node.get(RecordType::CNAME)) {
                    (Some(e), _) => (e, false),
                    (None, Some(c)) => (c, true),
                    (None, None) => {
                        negative(&mut a, ResponseCode::NoError);
                        if prove {
                            // The name's NSEC lists its types (the routed
                            // ones too: they are not the type asked);
                            // an empty non-terminal has none, and the
                            // NSEC covering it proves it empty.
                            match node.nsec() {
                                Some(n) => a.prove(Some(&n.full)),
                                // A wildcard that is itself an empty
                                // non-terminal: the NSEC covering it.
                                None if wildcard => {
                                    let mut buf = [0; 258];
                                    a.prove(
                                        zone.covering(zone.source_of_synthesis(&key, &mut buf)),
                                    );
                                }
                                None => a.prove(zone.covering(key.as_bytes())),
                            }
                            if wildcard {
                                a.prove(zone.covering(key.as_bytes()));
                            }
                        }
                        return a;
                    }
                };
                if let Data::Slot(i) = entry.data {
                    a.policy = snap.slot_policy.get(i).map_or(0, |&p| p as usize);
                }
                let (served, scope) = served(snap, entry, client, trace);
                a.scope = a.scope.max(scope);
                let rr = match served {
                    Served::Set(rr) => rr,
                    Served::Parts(parts) => {
                        // One RRset in several parts: a routed type, never
                        // a CNAME, so the answer ends here.
                        for rr in parts {
                            a.push(rr, synth);
                        }
                        if prove && wildcard {
                            a.prove(zone.covering(key.as_bytes()));
                        }
                        return a;
                    }
                    Served::NoData(ttl) => {
                        negative(&mut a, ResponseCode::NoError);
                        if a.authority.is_some_and(|soa| soa.ttl() > ttl) {
                            a.authority_ttl = Some(ttl);
                        }
                        if prove {
                            // The route answers nothing now: the NSEC
                            // variant without its type.
                            a.prove(node.nsec().map(|n| n.for_nodata(Some(entry.rtype))));
                            if wildcard {
                                a.prove(zone.covering(key.as_bytes()));
                            }
                        }
                        return a;
                    }
                    Served::ServFail => {
                        a.rcode = ResponseCode::ServFail;
                        a.authoritative = false;
                        a.answer.clear();
                        return a;
                    }
                };
                if is_cname && a.answer.iter().any(|p| std::ptr::eq(p.rrset(), rr)) {
                    // A CNAME loop: every RRset goes out once (RFC 2181 5).
                    return a;
                }
                a.push(rr, synth);
                if prove && wildcard {
                    // The exact name does not exist (RFC 4035 3.1.3.3).
                    a.prove(zone.covering(key.as_bytes()));
                }
                if !is_cname {
                    a.additional(&rr.additionals, rr.additionals_len());
                    return a;
                }
                let Some(RData::CNAME(target)) =
                    rr.set().records_without_rrsigs().next().map(|r| &r.data)
                else {
                    return a;
                };
                owner = &target.0;
                key = Key::new(owner);
            }
        }
    }
    a
}
