//! DNSSEC for a loaded zone: every static RRset signed, the DNSKEY set at
//! the apex, and an NSEC chain over every owner name (static and routed),
//! all when the zone is built, so the query path only looks signatures up.
//!
//! A routed owner gets two NSEC variants: with the route's type (it
//! answers) and without (the route answers NODATA, `when_all_down =
//! "closed"`); the answer path picks by what the route serves now.

use std::cmp::Ordering;
use std::time::SystemTime;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType};

use super::{Data, Entry, Key, Rrset, Zone, owned_key};
use crate::config::DnssecConfig;
use crate::dnssec::sign::Signer;

/// TTL of the DNSKEY set.
pub const DNSKEY_TTL: u32 = 3600;

/// The NSEC records of one owner name.
#[derive(Debug)]
pub struct Nsec {
    /// Every type at the name.
    pub full: Rrset,
    /// For each routed type at the name, every type but that one: what a
    /// route of that type answering NODATA proves (empty: no route).
    pub without: Vec<(RecordType, Rrset)>,
}

/// A signed zone's chain: owner keys in canonical order (RFC 4034 6.1).
#[derive(Debug, Default)]
pub struct Signed {
    /// Keys of the names that have an NSEC record, in canonical order.
    pub order: Box<[Box<[u8]>]>,
    /// The earliest expiration of the signatures it serves.
    pub expires: Option<SystemTime>,
    /// Some signature was made by this load (not all taken over from the
    /// previous load): the zone's content changed, so its serial must.
    pub fresh: bool,
}

/// Canonical order of two name keys: labels compared right to left as
/// (already lowercased) octet strings, a shorter name first.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (la, lb) = (labels(a), labels(b));
    for (x, y) in la.iter().rev().zip(lb.iter().rev()) {
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    la.len().cmp(&lb.len())
}

fn labels(key: &[u8]) -> smallvec::SmallVec<[&[u8]; 8]> {
    let mut out = smallvec::SmallVec::new();
    let mut i = 0;
    while i < key.len() {
        let n = key[i] as usize;
        out.push(&key[(i + 1).min(key.len())..(i + 1 + n).min(key.len())]);
        i += 1 + n;
    }
    out
}

/// The name of a key (fully qualified).
pub fn key_name(key: &[u8]) -> Name {
    let mut n = Name::from_labels(labels(key)).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n
}

/// An RRset with `signer`'s signatures added (sizes recomputed), keeping
/// its additional data.
pub fn signed(rr: &Rrset, signer: &Signer, now: SystemTime) -> Rrset {
    with_sigs(rr, signer.sign(&rr.records.to_set(), now))
}

/// `rr` with these RRSIGs (sizes recomputed, additional data kept).
fn with_sigs(rr: &Rrset, sigs: Vec<Record>) -> Rrset {
    let mut set = rr.records.to_set().into_owned();
    set.clear_rrsigs();
    for sig in sigs {
        set.insert_rrsig(sig);
    }
    let mut out = Rrset::new(set);
    out.additionals = rr.additionals.clone();
    out.additionals_len = rr.additionals_len;
    out
}

/// The signatures the previous load made over the same records, if they
/// are still good for a while (more than `refresh` left) and made by
/// exactly the keys that sign now: taken over, so an unchanged zone keeps
/// its signatures (and its serial) across a reload.
pub fn reusable(
    prev: Option<&RecordSet>,
    set: &RecordSet,
    signer: &Signer,
    now: SystemTime,
    refresh: std::time::Duration,
) -> Option<Vec<Record>> {
    let prev = prev?;
    let sigs = prev.rrsigs();
    if sigs.is_empty()
        || prev.ttl() != set.ttl()
        || !prev
            .records_without_rrsigs()
            .eq(set.records_without_rrsigs())
    {
        return None;
    }
    let key_sets = matches!(
        set.record_type(),
        RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
    ) && set.name() == signer.zone();
    let mut want: Vec<u16> = signer
        .signing_keys(key_sets, now)
        .iter()
        .map(|k| k.tag)
        .collect();
    let mut have: Vec<u16> = Vec::new();
    for s in sigs {
        let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &s.data else {
            return None;
        };
        let expires = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::from(sig.input().sig_expiration.get()));
        if expires <= now + refresh {
            return None;
        }
        have.push(sig.input().key_tag);
    }
    want.sort();
    have.sort();
    (want == have).then(|| sigs.to_vec())
}

impl Zone {
    /// Whether the node at `key` is occluded: strictly below a delegation
    /// (the child's data; glue is not signed and has no NSEC).
    fn occluded(&self, key: &[u8]) -> bool {
        let apex = owned_key(&self.origin).len();
        let mut k = key;
        while k.len() > apex {
            k = &k[1 + k[0] as usize..];
            if k.len() > apex && self.nodes.get(k).is_some_and(|n| n.cut) {
                return true;
            }
        }
        false
    }

    /// Signs the zone with `signer` at `now`: DNSKEY at the apex, a
    /// signature on every authoritative static RRset (at a delegation only
    /// the DS set), and the NSEC chain. Routed RRsets and the SOA are
    /// signed where their slots are built. Signatures of `previous` (the
    /// same zone's last load) over the same records are taken over while
    /// they are good (see [`Signed::fresh`]).
    pub fn sign(
        &mut self,
        signer: &Signer,
        now: SystemTime,
        config: &DnssecConfig,
        previous: Option<&Zone>,
    ) {
        let refresh = config.refresh;
        let mut fresh = false;
        let prev_static = |k: &[u8], t: RecordType| previous.and_then(|p| p.static_set(k, t));
        let apex = owned_key(&self.origin);
        let mut apex_sets = vec![signer.dnskey_set(DNSKEY_TTL, now)];
        if config.publish_cds {
            // CDS/CDNSKEY of the active KSKs (RFC 7344): a parent that
            // reads them follows a key change by itself.
            let (cds, cdnskey) = signer.cds_sets(DNSKEY_TTL, now);
            apex_sets.extend([cds, cdnskey]);
        }
        let node = self.node_mut(&apex);
        for set in apex_sets {
            let rtype = set.record_type();
            node.rrsets.retain(|e| e.rtype != rtype);
            if !set.is_empty() {
                node.rrsets.push(Entry {
                    rtype,
                    data: Data::Static(Rrset::new(set)),
                });
            }
        }
        let keys: Vec<Box<[u8]>> = self.nodes.keys().map(|k| Box::from(&k[..])).collect();
        let mut owners: Vec<Box<[u8]>> = Vec::new();
        let mut expires: Option<SystemTime> = None;
        for k in &keys {
            if self.occluded(k) {
                continue;
            }
            let cut = self.nodes[&k[..]].cut;
            let node = self.nodes.get_mut(&k[..]).expect("listed above");
            for e in &mut node.rrsets {
                if let Data::Static(rr) = &mut e.data
                    && (!cut || e.rtype == RecordType::DS)
                {
                    let set = rr.records.to_set();
                    let reused = reusable(prev_static(k, e.rtype), &set, signer, now, refresh);
                    drop(set);
                    *rr = match reused {
                        Some(sigs) => with_sigs(rr, sigs),
                        None => {
                            fresh = true;
                            signed(rr, signer, now)
                        }
                    };
                    expires = min_time(
                        expires,
                        crate::dnssec::sign::earliest_expiry(rr.set().rrsigs()),
                    );
                }
            }
            if !node.rrsets.is_empty() {
                owners.push(k.clone());
            }
        }
        // Additional data points at the signed address sets now.
        self.link_additionals();
        owners.sort_by(|a, b| canonical_cmp(a, b));
        let ttl = config.nsec_ttl.unwrap_or_else(|| self.nsec_ttl());
        for (i, k) in owners.iter().enumerate() {
            let next = key_name(&owners[(i + 1) % owners.len()]);
            let node = &self.nodes[&k[..]];
            let mut types: Vec<RecordType> = node.rrsets.iter().map(|e| e.rtype).collect();
            let routed: Vec<RecordType> = node
                .rrsets
                .iter()
                .filter(|e| matches!(e.data, Data::Slot(_)) && e.rtype != RecordType::SOA)
                .map(|e| e.rtype)
                .collect();
            types.extend([RecordType::NSEC, RecordType::RRSIG]);
            let owner = key_name(k);
            let mut make = |types: &[RecordType]| {
                let mut t = types.to_vec();
                t.sort();
                t.dedup();
                let mut set = RecordSet::with_ttl(owner.clone(), RecordType::NSEC, ttl);
                set.insert(
                    Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next.clone(), t))),
                    ),
                    0,
                );
                let rr = Rrset::new(set);
                let prev = previous
                    .and_then(|p| p.nodes.get(&k[..])?.nsec())
                    .and_then(|n| {
                        std::iter::once(&n.full)
                            .chain(n.without.iter().map(|(_, r)| r))
                            .find(|p| {
                                p.set()
                                    .records_without_rrsigs()
                                    .eq(rr.set().records_without_rrsigs())
                            })
                    });
                match reusable(prev.map(|p| p.set()), rr.set(), signer, now, refresh) {
                    Some(sigs) => with_sigs(&rr, sigs),
                    None => {
                        fresh = true;
                        signed(&rr, signer, now)
                    }
                }
            };
            let full = make(&types);
            // One per routed type: a route answering NODATA must not
            // deny another route's type at the same name.
            let without: Vec<(RecordType, Rrset)> = routed
                .iter()
                .map(|&r| {
                    let fewer: Vec<RecordType> =
                        types.iter().copied().filter(|t| *t != r).collect();
                    (r, make(&fewer))
                })
                .collect();
            expires = min_time(
                expires,
                crate::dnssec::sign::earliest_expiry(full.set().rrsigs()),
            );
            self.nodes
                .get_mut(&k[..])
                .expect("an owner")
                .extra_mut()
                .nsec = Some(Nsec { full, without });
        }
        self.signed = Some(Signed {
            order: owners.into_boxed_slice(),
            expires,
            fresh,
        });
    }

    /// The key of the wildcard at `key`'s closest encloser (the deepest
    /// ancestor that exists), written into `buf`: the name an NXDOMAIN
    /// must also prove absent.
    pub fn source_of_synthesis<'b>(&self, key: &Key, buf: &'b mut [u8; 258]) -> &'b [u8] {
        let depth = key.labels().saturating_sub(self.origin_labels);
        for i in 1..=depth {
            if self.nodes.contains_key(key.suffix(i)) {
                return key.wildcard_of(i, buf);
            }
        }
        key.wildcard_of(depth, buf)
    }

    /// TTL of NSEC records: min(SOA TTL, SOA MINIMUM) (RFC 9077).
    pub fn nsec_ttl(&self) -> u32 {
        let ttl = self.file_soa.ttl();
        match self
            .file_soa
            .records_without_rrsigs()
            .next()
            .map(|r| &r.data)
        {
            Some(RData::SOA(s)) => ttl.min(s.minimum),
            _ => ttl,
        }
    }

    /// The NSEC that covers `key` (a name that does not exist): the one
    /// of the greatest owner before it in canonical order (wrapping).
    pub fn covering(&self, key: &[u8]) -> Option<&Rrset> {
        let signed = self.signed.as_ref()?;
        if signed.order.is_empty() {
            return None;
        }
        let i = match signed.order.binary_search_by(|o| canonical_cmp(o, key)) {
            Ok(i) => i,
            Err(0) => signed.order.len() - 1,
            Err(i) => i - 1,
        };
        let node = self.nodes.get(&signed.order[i][..])?;
        node.nsec().map(|n| &n.full)
    }

    /// The NSEC of the name at `key` (None if it has none: an empty
    /// non-terminal, whose proof is the covering NSEC): with every type,
    /// or, for a route of type `nodata` answering NODATA, without it.
    pub fn nsec_at(&self, key: &[u8], nodata: Option<RecordType>) -> Option<&Rrset> {
        self.nodes.get(key)?.nsec().map(|n| n.for_nodata(nodata))
    }
}

impl Nsec {
    /// The NSEC to send: without `nodata`'s type if a route of that type
    /// answers NODATA, else the full one.
    pub fn for_nodata(&self, nodata: Option<RecordType>) -> &Rrset {
        nodata
            .and_then(|t| self.without.iter().find(|(r, _)| *r == t))
            .map_or(&self.full, |(_, rr)| rr)
    }
}

fn min_time(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Box<[u8]> {
        owned_key(&Name::from_ascii(s).unwrap())
    }

    /// A key from raw labels (for octets hickory's text form escapes).
    fn raw(labels: &[&[u8]]) -> Box<[u8]> {
        owned_key(&Name::from_labels(labels.iter().copied()).unwrap())
    }

    /// RFC 4034 6.1's example order.
    #[test]
    fn canonical_order_is_rfc_4034s() {
        let mut keys: Vec<Box<[u8]>> = vec![
            key("example."),
            key("a.example."),
            key("yljkjljk.a.example."),
            key("Z.a.example."),
            key("zABC.a.EXAMPLE."),
            key("z.example."),
        ];
        keys.push(raw(&[&[1u8], b"z", b"example"]));
        keys.push(raw(&[b"*", b"z", b"example"]));
        keys.push(raw(&[&[200u8], b"z", b"example"]));
        let want = keys.clone();
        keys.reverse();
        keys.sort_by(|a, b| canonical_cmp(a, b));
        assert_eq!(keys, want);
        assert_eq!(key_name(&key("A.b.example.")).to_string(), "a.b.example.");
    }
}
