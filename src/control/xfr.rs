//! What a zone transfer shows of each route, and the upkeep of the
//! transfer state at every publish: a journal entry and a NOTIFY when a
//! zone's serial moved.
//!
//! A secondary cannot run policies, so a route transfers as one RRset:
//! - failover: the current tier's healthy members;
//! - multivalue: the current healthy set; weighted: every eligible member
//!   of the current pool;
//! - geo and cidr: the `default` member when it is eligible, else the
//!   first eligible member in config order; nearest: the first eligible
//!   member in config order;
//! - no member healthy: `when_all_down`'s answer (`open`: the members it
//!   opens to; `fallback`: the fallback values; `closed` and `servfail`:
//!   no RRset).
//!
//! A member naming another route contributes what that route transfers.
//! A CNAME route transfers the first of its records only. Records carry
//! the route's configured `ttl`.

use std::sync::Arc;

use hickory_proto::rr::{RData, Record};
use rustc_hash::FxHashMap;

use super::Controller;
use super::build::Base;
use crate::config::{AllDown, Policy};
use crate::route::{Chosen, Decision};
use crate::xfr::{Diff, Journal, Xfr, ZoneXfr, journal::newer};

/// The records route `ri` transfers under `decisions`.
fn route_rdata(base: &Base, decisions: &[Option<Decision>], ri: usize, depth: usize) -> Vec<RData> {
    let route = &base.config.routes[ri];
    let Some(d) = decisions.get(ri).and_then(|d| d.as_ref()) else {
        return Vec::new();
    };
    let members: Vec<usize> = match &d.chosen {
        Chosen::Members(ms) if ms.is_empty() => return Vec::new(),
        Chosen::Members(ms) => match route.policy {
            Policy::Failover | Policy::Multivalue { .. } | Policy::Weighted { .. } => ms.clone(),
            Policy::Geo | Policy::Cidr => {
                let default = ms.iter().copied().find(|&i| route.members[i].default);
                vec![default.unwrap_or(ms[0])]
            }
            Policy::Nearest => vec![ms[0]],
        },
        Chosen::Fallback => {
            return match &route.when_all_down {
                AllDown::Fallback(records) => records.iter().map(|r| r.data.clone()).collect(),
                _ => Vec::new(),
            };
        }
        Chosen::NoData | Chosen::ServFail => return Vec::new(),
    };
    let mut out: Vec<RData> = Vec::new();
    for i in members {
        let m = &route.members[i];
        match (&m.record, m.route) {
            (Some(r), _) => out.push(r.data.clone()),
            // Validation forbids cycles; the depth bound is a second guard.
            (None, Some(child)) if depth < 16 => {
                out.extend(route_rdata(base, decisions, child, depth + 1))
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

/// Every route's transferred records in zone `z`, sorted.
pub(super) fn routed_records(base: &Base, decisions: &[Option<Decision>], z: usize) -> Vec<Record> {
    let mut out = Vec::new();
    for (ri, route) in base.config.routes.iter().enumerate() {
        if route.zone != z {
            continue;
        }
        let mut data = route_rdata(base, decisions, ri, 0);
        if route.rtype == hickory_proto::rr::RecordType::CNAME {
            // A name has one CNAME at most (RFC 2181 10.1): secondaries
            // reject a zone with more. The first in config order.
            data.truncate(1);
        }
        for data in data {
            let r = Record::from_rdata(route.name.to_lowercase(), route.ttl, data);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.name, u16::from(a.record_type()), &a.data).cmp(&(
            &b.name,
            u16::from(b.record_type()),
            &b.data,
        ))
    });
    out
}

/// Zone `z`'s routed records for a transfer, signed: each route's RRset
/// with its RRSIGs, every routed name's NSEC (its static types, the
/// routed types that transfer records now, NSEC and RRSIG) signed, and
/// the SOA's RRSIGs (`soa_sigs`).
fn signed_routes(
    base: &Base,
    z: usize,
    plain: &[Record],
    before: &[Record],
    soa_sigs: &[Record],
    signer: &crate::dnssec::sign::Signer,
) -> Vec<Record> {
    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    use hickory_proto::rr::{RecordSet, RecordType};
    let now = std::time::SystemTime::now();
    let refresh = base.config.dnssec.refresh;
    let zone = &base.zones[z];
    // The last transfer view's sets with their signatures: an unchanged
    // set keeps them (a transition re-signs only what it changed).
    let mut old: FxHashMap<(hickory_proto::rr::Name, RecordType), RecordSet> = FxHashMap::default();
    for r in before {
        let (t, sig) = match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => (s.input().type_covered, true),
            _ => (r.record_type(), false),
        };
        let set = old
            .entry((r.name.clone(), t))
            .or_insert_with(|| RecordSet::with_ttl(r.name.clone(), t, r.ttl));
        if sig {
            set.insert_rrsig(r.clone());
        } else {
            set.insert(r.clone(), 0);
        }
    }
    let sign = |set: &RecordSet| {
        let prev = old.get(&(set.name().clone(), set.record_type()));
        crate::zone::sign::reusable(prev, set, signer, now, refresh)
            .unwrap_or_else(|| signer.sign(set, now))
    };
    let mut out: Vec<Record> = plain.to_vec();
    // Each RRset of the routes (`plain` is sorted by name and type).
    let mut i = 0;
    while i < plain.len() {
        let (name, rtype) = (&plain[i].name, plain[i].record_type());
        let mut set = RecordSet::with_ttl(name.clone(), rtype, plain[i].ttl);
        while i < plain.len() && plain[i].name == *name && plain[i].record_type() == rtype {
            set.add_rdata(plain[i].data.clone());
            i += 1;
        }
        out.extend(sign(&set));
    }
    // Each routed name's NSEC, with the types it transfers now.
    let mut owners: Vec<&hickory_proto::rr::Name> = base
        .config
        .routes
        .iter()
        .filter(|r| r.zone == z)
        .map(|r| &r.name)
        .collect();
    owners.sort();
    owners.dedup();
    for owner in owners {
        let key = crate::zone::Key::new(owner);
        let Some(full) = zone.nsec_at(key.as_bytes(), None) else {
            continue;
        };
        let Some(RData::DNSSEC(DNSSECRData::NSEC(nsec))) =
            full.set().records_without_rrsigs().next().map(|r| &r.data)
        else {
            continue;
        };
        let routed: Vec<RecordType> = base
            .config
            .routes
            .iter()
            .filter(|r| r.zone == z && r.name == *owner)
            .map(|r| r.rtype)
            .collect();
        let types: Vec<RecordType> = nsec
            .type_bit_maps()
            .filter(|t| {
                !routed.contains(t)
                    || plain
                        .iter()
                        .any(|r| r.name == *owner && r.record_type() == *t)
            })
            .collect();
        let ttl = full.set().ttl();
        let mut set = RecordSet::with_ttl(full.set().name().clone(), RecordType::NSEC, ttl);
        set.add_rdata(RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(
            nsec.next_domain_name().clone(),
            types,
        ))));
        out.extend(set.records_without_rrsigs().cloned());
        out.extend(sign(&set));
    }
    out.extend(soa_sigs.iter().cloned());
    out
}

impl Controller {
    /// Brings the transfer state up to the current serials: a zone whose
    /// serial moved gets a journal entry for the difference. Called before
    /// every publish; returns the zones whose serial moved, to be told to
    /// their notify targets once the snapshot is published (a secondary
    /// told earlier could ask before the new serial is served).
    pub(super) fn refresh_xfr(&mut self) -> Vec<hickory_proto::rr::Name> {
        let base = self.base.clone();
        let limits = &base.config.transfer;
        let mut zones: FxHashMap<hickory_proto::rr::Name, Arc<ZoneXfr>> = FxHashMap::default();
        let mut changed = Vec::new();
        for (i, zone) in base.zones.iter().enumerate() {
            let serial = self.serials[i];
            let config = &base.config.zones[i];
            let soa = zone
                .soa_sets(serial)
                .0
                .set()
                .records_without_rrsigs()
                .next()
                .cloned()
                .expect("a zone has its SOA");
            let old = self.xfr.get(&zone.origin);
            // A zone nobody may transfer and nobody is told about needs
            // no transfer view (nor signatures for one).
            let transfers = !config.allow_transfer.is_empty() || !config.notify.is_empty();
            let routed_plain: Arc<[Record]> = {
                let now = if transfers {
                    routed_records(&base, &self.decisions, i)
                } else {
                    Vec::new()
                };
                match old {
                    Some(o) if *o.routed_plain == now[..] => o.routed_plain.clone(),
                    _ => now.into(),
                }
            };
            // Signatures are made only when the routes' records or the
            // serial moved: the same content keeps the same signatures.
            let routed: Arc<[Record]> = match (old, base.signers.get(i).and_then(|s| s.as_deref()))
            {
                (Some(o), _)
                    if Arc::ptr_eq(&o.routed_plain, &routed_plain) && o.serial == serial =>
                {
                    o.routed.clone()
                }
                (_, Some(signer)) if transfers => {
                    let soa_sigs: Vec<Record> = match &*self.slots[zone.soa_slot] {
                        crate::store::Dyn::Set(rr) => rr.set().rrsigs().to_vec(),
                        _ => Vec::new(),
                    };
                    let before = old.map(|o| &o.routed[..]).unwrap_or_default();
                    signed_routes(&base, i, &routed_plain, before, &soa_sigs, signer).into()
                }
                _ => routed_plain.clone(),
            };
            let journal = match old {
                // Unchanged.
                Some(o) if o.serial == serial => {
                    // A reload parses the files again: the same text is
                    // the same zone.
                    let same_zone = Arc::ptr_eq(&o.zone, zone)
                        || (o.zone.content_hash == zone.content_hash && o.zone.files == zone.files);
                    if !same_zone || !Arc::ptr_eq(&o.routed_plain, &routed_plain) {
                        // Content moved without the serial (should not
                        // happen): the old differences no longer lead here.
                        tracing::warn!(
                            "zone {}: content changed at serial {serial}; IXFR restarts from here",
                            zone.origin
                        );
                        Arc::new(Journal::default())
                    } else {
                        o.journal.clone()
                    }
                }
                // From an expired zone (or the placeholder before the
                // first transfer) nobody can ask a difference: none kept.
                Some(o) if newer(serial, o.serial) && !o.expired => {
                    let diff = Diff::between(
                        o.soa.clone(),
                        soa.clone(),
                        (&o.zone, &o.routed),
                        (zone, &routed),
                    );
                    Arc::new(
                        o.journal
                            .with(diff, limits.journal_entries, limits.journal_bytes),
                    )
                }
                // New zone, or the serial went back: no history.
                _ => Arc::new(Journal::default()),
            };
            if old.is_none_or(|o| o.serial != serial) {
                changed.push(zone.origin.clone());
            }
            let x = Arc::new(ZoneXfr {
                zone: zone.clone(),
                serial,
                soa,
                routed,
                routed_plain,
                journal,
                allow: config.allow_transfer.clone().into(),
                notify: config.notify.clone().into(),
                expired: self.expired.contains(&zone.origin),
            });
            zones.insert(zone.origin.clone(), x);
        }
        self.xfr = zones;
        changed
    }

    /// Starts, stops and feeds the NOTIFY tasks; every target of a zone
    /// in `changed` is told its serial. Call after publishing.
    pub(super) fn notify(&mut self, changed: &[hickory_proto::rr::Name]) {
        if let Some(n) = self.notifier.as_mut() {
            let config = &self.base.config;
            n.update(&self.xfr, &config.keys, &config.transfer, changed);
        }
    }

    /// The transfer state for the snapshot.
    pub(super) fn xfr_snapshot(&self) -> Arc<Xfr> {
        Arc::new(Xfr {
            zones: self.xfr.clone(),
            keys: self.base.config.keys.clone().into(),
            notify: self.notify_status.clone(),
            secondaries: self.secondaries.handles(),
        })
    }
}
