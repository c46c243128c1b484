//! From a config to served state: [`Base`] is everything that only changes
//! with the config (zones with their slots bound, route slots); the slot
//! contents are rebuilt from health by the controller.

use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType};

use crate::config::{AllDown, Area, Config, Place, Policy};
use crate::diag::{Diagnostic, Diagnostics};
use crate::dnssec::Signer;
use crate::geo::Geo;
use crate::route::prefix::PrefixMap;
use crate::route::table::{Kind, Table, area_hit, seed};
use crate::route::{Chosen, Decision};
use crate::store::Dyn;
use crate::zone::{Rrset, Zone};

/// Number of precomputed shuffles of a multivalue answer.
const SHUFFLES: usize = 16;

/// The config-derived part of the served state.
#[derive(Debug)]
pub struct Base {
    /// The validated config.
    pub config: Config,
    /// Zones in config order, with their slots bound.
    pub zones: Vec<Arc<Zone>>,
    /// Slot of each route (in config order).
    pub route_slots: Vec<usize>,
    /// Number of slots.
    pub slot_count: usize,
    /// Client locations (`[geo]`), if configured.
    pub geo: Option<Arc<Geo>>,
    /// Checkpoint fingerprints of each check's definition and target.
    pub fingerprints: Vec<(String, String)>,
    /// The routes whose members each check decides (reverse index).
    pub routes_of_check: Vec<Vec<usize>>,
    /// The records served for each secondary zone that has any (what a
    /// reload builds the zone from again: the copy on disk may lag).
    pub transferred: rustc_hash::FxHashMap<Name, Arc<Vec<Record>>>,
    /// The signer of each zone (in config order) with `dnssec = true`,
    /// holding its keys as loaded with this config; None: not signed.
    pub signers: Vec<Option<Arc<Signer>>>,
}

impl Base {
    /// What a fleet vote on check `i` is about: a fingerprint of what the
    /// check probes and expects (not its timing, which only changes how
    /// fast a verdict comes), so instances vote on the same question.
    pub fn vote_hash(&self, i: usize) -> &str {
        &self.fingerprints[i].1
    }

    /// Loads every zone of `config` and binds the SOA and route slots.
    /// Reports every problem (zone files, routes colliding with zone data).
    pub fn load(config: Config) -> Result<Base, Diagnostics> {
        Base::load_after(config, None)
    }

    /// Like [`Base::load`], keeping the query counters of zones that
    /// `previous` served too.
    pub fn load_after(config: Config, previous: Option<&Base>) -> Result<Base, Diagnostics> {
        Base::load_collecting(config, previous, Vec::new())
    }

    /// Reads and validates the config at `path` and loads what it names,
    /// reporting every error of every stage that can run: a config error
    /// leaves out only its part, and the zones, `[geo]` files and route
    /// collisions of the rest are still checked.
    pub fn load_path(path: &std::path::Path, previous: Option<&Base>) -> Result<Base, Diagnostics> {
        match crate::config::load_partial(path) {
            (Some(config), errors) => Base::load_collecting(config, previous, errors),
            (None, errors) => Err(Diagnostics(errors)),
        }
    }

    /// [`Base::load_after`] adding to `errors` found before (it fails if
    /// any).
    fn load_collecting(
        config: Config,
        previous: Option<&Base>,
        mut errors: Vec<Diagnostic>,
    ) -> Result<Base, Diagnostics> {
        let mut zones = Vec::new();
        let mut transferred = rustc_hash::FxHashMap::default();
        for z in &config.zones {
            if !z.primaries.is_empty() {
                // A secondary zone: veer's copy, or a placeholder that
                // answers SERVFAIL until the first transfer.
                // What is served now, else the copy (at start).
                let records = previous
                    .and_then(|p| p.transferred.get(&z.origin).cloned())
                    .or_else(|| {
                        crate::xfr::secondary::load_copy(&z.file).map(|(_, r)| Arc::new(r))
                    });
                if let Some(r) = &records {
                    transferred.insert(z.origin.clone(), r.clone());
                }
                match transferred_zone(
                    &z.origin,
                    &z.file,
                    records.as_deref().cloned(),
                    &config,
                    previous,
                ) {
                    Ok(zone) => zones.push(Some(zone)),
                    // A copy veer cannot serve (it was taken under other
                    // rules): the placeholder, and the zone is fetched anew.
                    Err(e) => {
                        tracing::error!("{e}; fetching the zone anew");
                        transferred.remove(&z.origin);
                        match transferred_zone(&z.origin, &z.file, None, &config, previous) {
                            Ok(zone) => zones.push(Some(zone)),
                            Err(e) => {
                                errors.push(Diagnostic::new(&config.path, z.file_line, e));
                                zones.push(None);
                            }
                        }
                    }
                }
                continue;
            }
            // An unreadable zone file is the config line's problem.
            if let Err(e) = std::fs::File::open(&z.file) {
                errors.push(Diagnostic::new(
                    &config.path,
                    z.file_line,
                    format!("cannot read zone file {}: {e}", z.file.display()),
                ));
                zones.push(None);
                continue;
            }
            let old = previous.and_then(|p| p.zones.iter().find(|o| o.origin == z.origin));
            match Zone::load_after(&z.origin, &z.file, old.map(|o| &**o)) {
                Ok(mut zone) => {
                    if let Some(old) = old {
                        zone.stats = old.stats.clone();
                    }
                    zones.push(Some(zone))
                }
                Err(d) => {
                    errors.extend(d.0);
                    zones.push(None);
                }
            }
        }
        let signers = signers(&config, &mut errors);
        // What a signed zone cannot serve yet, said at the line.
        for z in config
            .zones
            .iter()
            .filter(|z| z.dnssec && !z.primaries.is_empty())
        {
            errors.push(Diagnostic::new(
                &config.path,
                z.line,
                format!(
                    "zone {}: dnssec = true on a secondary zone is not supported (sign it on its primary)",
                    z.origin
                ),
            ));
        }
        for r in config.routes.iter().filter(|r| config.zones[r.zone].dnssec) {
            // A NODATA for some clients only would be generalised to all
            // of them by resolvers' aggressive use of NSEC (RFC 8198).
            if matches!(r.policy, Policy::Geo | Policy::Cidr)
                && !r.members.iter().any(|m| m.default)
            {
                errors.push(Diagnostic::new(
                    &config.path,
                    r.line,
                    format!(
                        "route {} {}: a {} route in a signed zone needs a `default` member (a NODATA for some clients would be cached as proof for all)",
                        r.name,
                        r.rtype,
                        r.policy.name()
                    ),
                ));
            }
            if let Policy::Weighted { pick, .. } = &r.policy
                && *pick > 1
            {
                errors.push(Diagnostic::new(
                    &config.path,
                    r.line,
                    format!(
                        "route {} {}: pick = {pick} in a signed zone is not supported yet (each combination would need its own signature); use pick = 1 or multivalue",
                        r.name, r.rtype
                    ),
                ));
            }
        }
        let geo = if config.geo.database.is_some() || config.geo.networks.is_some() {
            match Geo::load(&config.geo, &config.path) {
                Ok(g) => Some(Arc::new(g)),
                Err(d) => {
                    errors.extend(d.0);
                    None
                }
            }
        } else {
            None
        };
        // Route collisions are checked in every zone that loaded; over a
        // transferred zone a route replaces the RRset of its name and type.
        let mut next = 2 * zones.len();
        let mut route_slots = Vec::new();
        for r in &config.routes {
            if let Some(Err(m)) = zones[r.zone].as_mut().map(|z| {
                if z.transferred {
                    z.remove_static(&r.name, r.rtype);
                }
                z.add_dynamic(&r.name, r.rtype, next)
            }) {
                errors.push(Diagnostic::new(
                    &config.path,
                    r.line,
                    format!("route {} {}: {m}", r.name, r.rtype),
                ));
            }
            route_slots.push(next);
            next += 1;
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let mut zones: Vec<Zone> = zones.into_iter().flatten().collect();
        for (i, z) in zones.iter_mut().enumerate() {
            z.bind_soa(2 * i);
        }
        // Signed zones: every static RRset, DNSKEY and the NSEC chain now;
        // the SOA and routes where their slots are built.
        let now = std::time::SystemTime::now();
        for (z, s) in zones.iter_mut().zip(&signers) {
            if let Some(s) = s {
                let prev = previous.and_then(|p| p.zones.iter().find(|o| o.origin == z.origin));
                z.sign(s, now, &config.dnssec, prev.map(|z| &**z));
            }
        }
        let fingerprints = config
            .checks
            .iter()
            .map(|c| {
                use crate::health::checkpoint::fingerprint;
                (fingerprint(&c.definition()), fingerprint(&c.target()))
            })
            .collect();
        let mut routes_of_check = vec![Vec::new(); config.checks.len()];
        for (r, route) in config.routes.iter().enumerate() {
            for c in route.members.iter().filter_map(|m| m.check) {
                if routes_of_check[c].last() != Some(&r) {
                    routes_of_check[c].push(r);
                }
            }
        }
        Ok(Base {
            config,
            zones: zones.into_iter().map(Arc::new).collect(),
            route_slots,
            slot_count: next,
            geo,
            fingerprints,
            routes_of_check,
            transferred,
            signers,
        })
    }

    /// This base with secondary zone `i` built from `records` (a transfer),
    /// the routes laid over it. The other zones are shared.
    pub fn with_transferred(&self, i: usize, records: Arc<Vec<Record>>) -> Result<Base, String> {
        let z = &self.config.zones[i];
        let mut zone = transferred_zone(
            &z.origin,
            &z.file,
            Some((*records).clone()),
            &self.config,
            Some(self),
        )?;
        for (ri, r) in self.config.routes.iter().enumerate() {
            if r.zone == i {
                zone.remove_static(&r.name, r.rtype);
                zone.add_dynamic(&r.name, r.rtype, self.route_slots[ri])
                    .map_err(|m| format!("route {} {}: {m}", r.name, r.rtype))?;
            }
        }
        zone.bind_soa(2 * i);
        let mut zones = self.zones.clone();
        zones[i] = Arc::new(zone);
        Ok(Base {
            config: self.config.clone(),
            zones,
            route_slots: self.route_slots.clone(),
            slot_count: self.slot_count,
            geo: self.geo.clone(),
            fingerprints: self.fingerprints.clone(),
            routes_of_check: self.routes_of_check.clone(),
            transferred: {
                let mut t = self.transferred.clone();
                t.insert(z.origin.clone(), records);
                t
            },
            signers: self.signers.clone(),
        })
    }

    /// Number of records in the zone files.
    pub fn records(&self) -> usize {
        self.zones.iter().map(|z| z.records).sum()
    }
}

/// The signer of every zone with `dnssec = true` (None for the others),
/// with its keys from `[dnssec] key_dir`. A zone whose keys do not load,
/// or of which no key is active now, is an error: it would be served
/// unsigned or bogus.
fn signers(config: &Config, errors: &mut Vec<Diagnostic>) -> Vec<Option<Arc<Signer>>> {
    let now = std::time::SystemTime::now();
    let d = &config.dnssec;
    config
        .zones
        .iter()
        .map(|z| {
            // Without a key directory the config already has an error.
            let dir = d.key_dir.as_ref().filter(|_| z.dnssec)?;
            let keys = match crate::dnssec::load_zone_keys(&z.origin, dir) {
                Ok(k) => k,
                Err(e) => {
                    errors.extend(e);
                    return None;
                }
            };
            let count = keys.len();
            let signer = Signer::new(&z.origin, keys, d.validity, d.inception);
            if !signer.usable(now) {
                let none_active = if count > 0 {
                    format!(" ({count} key(s) there, none active now)")
                } else {
                    String::new()
                };
                errors.push(Diagnostic::new(
                    &config.path,
                    z.line,
                    format!(
                        "zone {}: dnssec = true but no usable key in {}{none_active} (run veer dnssec keygen --config {} {})",
                        z.origin,
                        dir.display(),
                        config.path.display(),
                        z.origin
                    ),
                ));
                return None;
            }
            // The keys' timing must never leave the zone without a
            // signing key (a gap would serve routes unsigned: bogus).
            let mut events: Vec<std::time::SystemTime> = Vec::new();
            let mut t = now;
            while let Some(next) = signer.next_key_event(t) {
                events.push(next);
                t = next;
            }
            if let Some(gap) = events.into_iter().find(|&t| !signer.usable(t)) {
                errors.push(Diagnostic::new(
                    &config.path,
                    z.line,
                    format!(
                        "zone {}: from {} no key in {} is active (the key files' timing leaves a gap): make a successor first",
                        z.origin,
                        crate::status::rfc3339(gap),
                        dir.display()
                    ),
                ));
                return None;
            }
            Some(Arc::new(signer))
        })
        .collect()
}

/// A secondary zone from transferred `records` (None: not fetched yet: a
/// zone of its SOA alone, which answers SERVFAIL until the first
/// transfer), keeping the query counters of the zone `previous` served.
fn transferred_zone(
    origin: &Name,
    copy: &std::path::Path,
    records: Option<Vec<Record>>,
    config: &Config,
    previous: Option<&Base>,
) -> Result<Zone, String> {
    // The placeholder has an NS record only so that loading it does not
    // warn about a missing one; it answers nothing (SERVFAIL).
    let records = records.unwrap_or_else(|| {
        vec![
            Record::from_rdata(
                origin.clone(),
                0,
                hickory_proto::rr::RData::SOA(hickory_proto::rr::rdata::SOA::new(
                    origin.clone(),
                    origin.clone(),
                    0,
                    3600,
                    600,
                    86400,
                    0,
                )),
            ),
            Record::from_rdata(
                origin.clone(),
                0,
                hickory_proto::rr::RData::NS(hickory_proto::rr::rdata::NS(origin.clone())),
            ),
        ]
    });
    let file: Arc<std::path::Path> = Arc::from(copy);
    let located = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r,
                crate::zone::parse::Loc {
                    file: file.clone(),
                    line: i + 1,
                },
            )
        })
        .collect();
    let mut zone = Zone::build(origin, copy, located, Vec::new()).map_err(|d| {
        format!(
            "zone {origin} as transferred cannot be served: {}",
            d.0.iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    zone.transferred = true;
    let _ = config;
    if let Some(old) = previous.and_then(|p| p.zones.iter().find(|o| o.origin == zone.origin)) {
        zone.stats = old.stats.clone();
    }
    Ok(zone)
}

/// The slot content for route `ri`'s decision: fixed records, or a table
/// the query path picks from per client. `slots` holds the current content
/// of every slot (the routes this one names are already rebuilt); `geo`
/// is the current location data.
pub fn route_slot(
    base: &Base,
    geo: Option<&Arc<Geo>>,
    ri: usize,
    d: &Decision,
    slots: &[Arc<Dyn>],
) -> Dyn {
    let slot = unsigned_slot(base, geo, ri, d, slots);
    // In a signed zone every answer the route can give now is signed
    // here, with the slot: the query path only sends signatures.
    match base
        .signers
        .get(base.config.routes[ri].zone)
        .and_then(|s| s.as_deref())
    {
        Some(signer) => sign_dyn(&slot, signer, std::time::SystemTime::now()),
        None => slot,
    }
}

fn unsigned_slot(
    base: &Base,
    geo: Option<&Arc<Geo>>,
    ri: usize,
    d: &Decision,
    slots: &[Arc<Dyn>],
) -> Dyn {
    let first = decided_slot(base, geo, ri, d, slots);
    match &d.then {
        // Clients the named route has no answer for get the next tier.
        Some(then) => Dyn::Else(
            Arc::new(first),
            Arc::new(unsigned_slot(base, geo, ri, then, slots)),
        ),
        None => first,
    }
}

/// `d` with every RRset signed by `signer`. RRsets with the same records
/// (a multivalue route's shuffles) share one signing.
pub fn sign_dyn(d: &Dyn, signer: &crate::dnssec::sign::Signer, now: std::time::SystemTime) -> Dyn {
    let mut done = Vec::new();
    sign_dyn_with(d, signer, now, &mut done)
}

/// An RRset's identity for signing: owner, type, TTL, sorted records.
type Signed = ((Name, RecordType, u32, Vec<RData>), Vec<Record>);

fn sign_dyn_with(
    d: &Dyn,
    signer: &crate::dnssec::sign::Signer,
    now: std::time::SystemTime,
    done: &mut Vec<Signed>,
) -> Dyn {
    let mut sign = |rr: &Rrset| -> Rrset {
        let mut data: Vec<RData> = rr
            .set()
            .records_without_rrsigs()
            .map(|r| r.data.clone())
            .collect();
        data.sort();
        let id = (
            rr.set().name().clone(),
            rr.set().record_type(),
            rr.set().ttl(),
            data,
        );
        let sigs = match done.iter().find(|(k, _)| *k == id) {
            Some((_, sigs)) => sigs.clone(),
            None => {
                let sigs = signer.sign(rr.set(), now);
                done.push((id, sigs.clone()));
                sigs
            }
        };
        let mut set = rr.set().clone();
        set.clear_rrsigs();
        for sig in sigs {
            set.insert_rrsig(sig);
        }
        let mut out = Rrset::new(set);
        out.additionals = rr.additionals.clone();
        out.additionals_len = rr.additionals_len;
        out
    };
    match d {
        Dyn::Set(rr) => Dyn::Set(sign(rr)),
        Dyn::Choice(sets) => Dyn::Choice(sets.iter().map(&mut sign).collect()),
        Dyn::NoData(t) => Dyn::NoData(*t),
        Dyn::ServFail => Dyn::ServFail,
        Dyn::Via(inner) => Dyn::Via(Arc::new(sign_dyn_with(inner, signer, now, done))),
        Dyn::Else(first, then) => Dyn::Else(
            Arc::new(sign_dyn_with(first, signer, now, done)),
            Arc::new(sign_dyn_with(then, signer, now, done)),
        ),
        Dyn::Routed(t) => Dyn::Routed(Box::new(Table {
            route: t.route.clone(),
            targets: t
                .targets
                .iter()
                .map(|x| Arc::new(sign_dyn_with(x, signer, now, done)))
                .collect(),
            labels: t.labels.clone(),
            kind: t.kind.clone(),
            pick: t.pick,
            no_data: sign_dyn_with(&t.no_data, signer, now, done),
        })),
    }
}

fn decided_slot(
    base: &Base,
    geo: Option<&Arc<Geo>>,
    ri: usize,
    d: &Decision,
    slots: &[Arc<Dyn>],
) -> Dyn {
    let route = &base.config.routes[ri];
    let signed = base.signers.get(route.zone).is_some_and(|s| s.is_some());
    let set = |records: &mut dyn Iterator<Item = &Record>| {
        let mut set = RecordSet::with_ttl(route.name.clone(), route.rtype, d.ttl);
        for r in records {
            set.add_rdata(r.data.clone());
        }
        Rrset::new(set)
    };
    let records = |members: &[usize]| -> Vec<&Record> {
        members
            .iter()
            .filter_map(|&i| route.members[i].record.as_ref())
            .collect()
    };
    let members = match &d.chosen {
        Chosen::NoData => return Dyn::NoData(d.ttl),
        Chosen::ServFail => return Dyn::ServFail,
        Chosen::Fallback => {
            return match &route.when_all_down {
                AllDown::Fallback(records) => Dyn::Set(set(&mut records.iter())),
                _ => Dyn::NoData(d.ttl),
            };
        }
        Chosen::Members(m) if m.is_empty() => return Dyn::NoData(d.ttl),
        Chosen::Members(m) => m,
    };
    // What one member answers: its record, or the slot of the route it names.
    let target = |i: usize| -> Arc<Dyn> {
        let m = &route.members[i];
        match (&m.record, m.route) {
            (Some(r), _) => Arc::new(Dyn::Set(set(&mut std::iter::once(r)))),
            // Answered no longer than either route's current TTL.
            (None, Some(child)) => {
                Arc::new(renamed(&slots[base.route_slots[child]], &route.name, d.ttl))
            }
            (None, None) => Arc::new(Dyn::NoData(d.ttl)),
        }
    };
    let labels = |ms: &[usize]| -> Box<[String]> {
        ms.iter()
            .map(|&i| route.members[i].label(&base.config.routes))
            .collect()
    };
    let name = format!("{} {} {}", route.name, route.rtype, route.policy.name());
    match route.policy {
        // Validation keeps a route-naming member alone in its group.
        Policy::Failover | Policy::Multivalue { .. }
            if members.len() == 1 && route.members[members[0]].route.is_some() =>
        {
            Dyn::Via(target(members[0]))
        }
        Policy::Multivalue { max } if members.len() > 1 => {
            let mut rng = fastrand::Rng::new();
            let shuffles = (0..SHUFFLES)
                .map(|_| {
                    let mut order = members.clone();
                    rng.shuffle(&mut order);
                    order.truncate(max);
                    set(&mut records(&order).into_iter())
                })
                .collect();
            Dyn::Choice(shuffles)
        }
        Policy::Failover | Policy::Multivalue { .. } => {
            Dyn::Set(set(&mut records(members).into_iter()))
        }
        Policy::Weighted { sticky, pick } => {
            // All weights 0 (standbys, or a route of standbys only): equal odds.
            let all_zero = members.iter().all(|&i| route.members[i].weight == 0);
            let weight = |i: usize| {
                if all_zero { 1 } else { route.members[i].weight }
            };
            // pick > 1: the query path samples `pick` distinct entries, each
            // one member's record (validation: all have values); members
            // with the same value are one entry with their weights added,
            // so an answer never holds a record twice.
            let mut entries: Vec<(usize, u32)> = Vec::new();
            for &i in members {
                let same = |&(e, _): &(usize, u32)| {
                    pick > 1
                        && route.members[e].record.as_ref().map(|r| &r.data)
                            == route.members[i].record.as_ref().map(|r| &r.data)
                };
                match entries.iter_mut().find(|e| same(e)) {
                    Some(e) => e.1 += weight(i),
                    None => entries.push((i, weight(i))),
                }
            }
            let firsts: Vec<usize> = entries.iter().map(|e| e.0).collect();
            let targets: Box<[Arc<Dyn>]> = firsts.iter().map(|&i| target(i)).collect();
            if targets.len() == 1 {
                return Dyn::Via(targets[0].clone());
            }
            if pick >= targets.len() {
                // Every eligible member answers.
                return Dyn::Set(set(&mut records(&firsts).into_iter()));
            }
            let kind = if sticky {
                Kind::Sticky {
                    keys: entries
                        .iter()
                        .map(|&(i, w)| {
                            (
                                seed(&route.members[i].label(&base.config.routes)),
                                f64::from(w),
                            )
                        })
                        .collect(),
                }
            } else {
                Kind::Random {
                    cumulative: entries
                        .iter()
                        .scan(0, |sum, &(_, w)| {
                            *sum += w;
                            Some(*sum)
                        })
                        .collect(),
                }
            };
            Dyn::Routed(Box::new(Table {
                route: name,
                targets,
                labels: labels(&firsts),
                kind,
                pick,
                no_data: Dyn::NoData(d.ttl),
            }))
        }
        Policy::Cidr => {
            let mut map = PrefixMap::new();
            let mut default = None;
            for (e, &i) in members.iter().enumerate() {
                let m = &route.members[i];
                if m.default {
                    default = Some(e as u32);
                }
                for n in &m.networks {
                    map.insert(*n, e as u32);
                }
            }
            map.freeze();
            // In a signed zone a client must never get a NODATA another
            // client does not (resolvers apply NSEC to everyone, RFC
            // 8198): while the default is down, the first eligible member
            // stands in for it, as the transfer view does.
            if default.is_none() && signed && !members.is_empty() {
                default = Some(0);
            }
            let targets: Box<[Arc<Dyn>]> = members.iter().map(|&i| target(i)).collect();
            if map.is_empty()
                && let Some(d) = default
            {
                // Only the default is eligible: the same for every client.
                return Dyn::Via(targets[d as usize].clone());
            }
            Dyn::Routed(Box::new(Table {
                route: name,
                targets,
                labels: labels(members),
                kind: Kind::Cidr { map, default },
                pick: 1,
                no_data: Dyn::NoData(d.ttl),
            }))
        }
        Policy::Geo => {
            let mut areas: Vec<(Area, u32)> = members
                .iter()
                .enumerate()
                .filter_map(|(e, &i)| route.members[i].area.clone().map(|a| (a, e as u32)))
                .collect();
            // Most specific first; `Area`'s variants are declared in that order.
            areas.sort_by_key(|(a, _)| match a {
                Area::Subdivision(..) => 0,
                Area::Country(_) => 1,
                Area::Continent(_) => 2,
                Area::Default => 3,
            });
            // As for cidr: a signed zone answers every client.
            if signed && !members.is_empty() && !areas.iter().any(|(a, _)| *a == Area::Default) {
                areas.push((Area::Default, 0));
            }
            let targets: Box<[Arc<Dyn>]> = members.iter().map(|&i| target(i)).collect();
            if let [(Area::Default, e)] = areas.as_slice() {
                return Dyn::Via(targets[*e as usize].clone());
            }
            match geo {
                Some(geo) => Dyn::Routed(Box::new(Table {
                    route: name,
                    targets,
                    labels: labels(members),
                    kind: Kind::Geo {
                        by_place: geo.per_place(|loc| area_hit(&areas, loc).map(|h| h.1)),
                        geo: geo.clone(),
                        areas: areas.into(),
                    },
                    pick: 1,
                    no_data: Dyn::NoData(d.ttl),
                })),
                None => Dyn::ServFail,
            }
        }
        Policy::Nearest => {
            let targets: Box<[Arc<Dyn>]> = members.iter().map(|&i| target(i)).collect();
            if targets.len() == 1 {
                return Dyn::Via(targets[0].clone());
            }
            match geo {
                Some(geo) => Dyn::Routed(Box::new(Table {
                    route: name,
                    targets,
                    labels: labels(members),
                    kind: Kind::Nearest {
                        geo: geo.clone(),
                        places: members
                            .iter()
                            .map(|&i| {
                                route.members[i].place.unwrap_or(Place {
                                    lat: 0.0,
                                    lon: 0.0,
                                    bias: 0.0,
                                })
                            })
                            .collect(),
                    },
                    pick: 1,
                    no_data: Dyn::NoData(d.ttl),
                })),
                None => Dyn::ServFail,
            }
        }
    }
}

/// `d` with every record owned by `name` and no TTL above `ttl`: a route
/// that names another answers with that route's records under its own
/// name, for no longer than either route's current TTL. Tables are copied
/// (sharing the location sources); this runs only on rebuilds.
fn renamed(d: &Dyn, name: &Name, ttl: u32) -> Dyn {
    let rename = |rr: &Rrset| {
        let ttl = rr.set().ttl().min(ttl);
        let mut set = RecordSet::with_ttl(name.clone(), rr.set().record_type(), ttl);
        for r in rr.set().records_without_rrsigs() {
            set.add_rdata(r.data.clone());
        }
        Rrset::new(set)
    };
    let again = |x: &Arc<Dyn>| Arc::new(renamed(x, name, ttl));
    match d {
        Dyn::Set(rr) => Dyn::Set(rename(rr)),
        Dyn::Choice(sets) => Dyn::Choice(sets.iter().map(rename).collect()),
        Dyn::NoData(t) => Dyn::NoData((*t).min(ttl)),
        Dyn::ServFail => Dyn::ServFail,
        Dyn::Via(inner) => renamed(inner, name, ttl),
        Dyn::Else(first, then) => Dyn::Else(again(first), again(then)),
        Dyn::Routed(t) => Dyn::Routed(Box::new(Table {
            route: t.route.clone(),
            targets: t.targets.iter().map(again).collect(),
            labels: t.labels.clone(),
            kind: t.kind.clone(),
            pick: t.pick,
            no_data: renamed(&t.no_data, name, ttl),
        })),
    }
}

/// The two SOA slots of `zone` served with `serial`.
pub fn soa_slots(zone: &Zone, serial: u32) -> [Dyn; 2] {
    let (soa, neg) = zone.soa_sets(serial);
    [Dyn::Set(soa), Dyn::Set(neg)]
}

/// The SOA slots of a secondary zone that expired (or never arrived):
/// every query for the zone gets SERVFAIL.
pub fn expired_slots() -> [Dyn; 2] {
    [Dyn::ServFail, Dyn::ServFail]
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
