//! From a config to served state: [`Base`] is everything that only changes
//! with the config (zones with their slots bound, route slots); the slot
//! contents are rebuilt from health by the controller.

use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordSet};

use crate::config::{AllDown, Area, Config, Place, Policy};
use crate::diag::{Diagnostic, Diagnostics};
use crate::geo::Geo;
use crate::route::prefix::PrefixMap;
use crate::route::table::{Kind, Table, seed};
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
    /// Checkpoint fingerprint of each check's definition.
    pub fingerprints: Vec<String>,
    /// The routes whose members each check decides (reverse index).
    pub routes_of_check: Vec<Vec<usize>>,
}

impl Base {
    /// Loads every zone of `config` and binds the SOA and route slots.
    /// Reports every problem (zone files, routes colliding with zone data).
    pub fn load(config: Config) -> Result<Base, Diagnostics> {
        Base::load_after(config, None)
    }

    /// Like [`Base::load`], keeping the query counters of zones that
    /// `previous` served too.
    pub fn load_after(config: Config, previous: Option<&Base>) -> Result<Base, Diagnostics> {
        let mut zones = Vec::new();
        let mut errors = Vec::new();
        for z in &config.zones {
            match Zone::load(&z.origin, &z.file) {
                Ok(mut zone) => {
                    if let Some(old) =
                        previous.and_then(|p| p.zones.iter().find(|o| o.origin == zone.origin))
                    {
                        zone.stats = old.stats.clone();
                    }
                    zones.push(zone)
                }
                Err(d) => errors.extend(d.0),
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
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let mut next = 0;
        for z in &mut zones {
            z.bind_soa(next);
            next += 2;
        }
        let mut route_slots = Vec::new();
        for r in &config.routes {
            if let Err(m) = zones[r.zone].add_dynamic(&r.name, r.rtype, next) {
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
        let fingerprints = config
            .checks
            .iter()
            .map(|c| crate::health::checkpoint::fingerprint(&c.definition()))
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
        })
    }

    /// Number of records in the zone files.
    pub fn records(&self) -> usize {
        self.zones.iter().map(|z| z.records).sum()
    }
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
    let route = &base.config.routes[ri];
    let set = |records: &mut dyn Iterator<Item = &Record>| {
        let mut set = RecordSet::with_ttl(route.name.clone(), route.rtype, d.ttl);
        for r in records {
            set.add_rdata(r.data.clone());
        }
        Rrset::new(Arc::new(set))
    };
    let records = |members: &[usize]| -> Vec<&Record> {
        members
            .iter()
            .filter_map(|&i| route.members[i].record.as_ref())
            .collect()
    };
    let members = match &d.chosen {
        Chosen::NoData => return Dyn::NoData,
        Chosen::ServFail => return Dyn::ServFail,
        Chosen::Fallback => {
            return match &route.when_all_down {
                AllDown::Fallback(records) => Dyn::Set(set(&mut records.iter())),
                _ => Dyn::NoData,
            };
        }
        Chosen::Members(m) => m,
    };
    // What one member answers: its record, or the slot of the route it names.
    let target = |i: usize| -> Arc<Dyn> {
        let m = &route.members[i];
        match (&m.record, m.route) {
            (Some(r), _) => Arc::new(Dyn::Set(set(&mut std::iter::once(r)))),
            (None, Some(child)) => Arc::new(renamed(&slots[base.route_slots[child]], &route.name)),
            (None, None) => Arc::new(Dyn::NoData),
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
            // pick > 1: an entry per member, answering it and the next
            // pick-1 eligible members (validation: all have values).
            let targets: Box<[Arc<Dyn>]> = if pick > 1 {
                (0..members.len())
                    .map(|k| {
                        let combo: Vec<usize> = (0..pick.min(members.len()))
                            .map(|j| members[(k + j) % members.len()])
                            .collect();
                        Arc::new(Dyn::Set(set(&mut records(&combo).into_iter())))
                    })
                    .collect()
            } else {
                members.iter().map(|&i| target(i)).collect()
            };
            if targets.len() == 1 {
                return Dyn::Via(targets[0].clone());
            }
            // All weights 0 (standbys, or a route of standbys only): equal odds.
            let all_zero = members.iter().all(|&i| route.members[i].weight == 0);
            let weight = |i: usize| {
                if all_zero { 1 } else { route.members[i].weight }
            };
            let kind = if sticky {
                Kind::Sticky {
                    keys: members
                        .iter()
                        .map(|&i| {
                            (
                                seed(&route.members[i].label(&base.config.routes)),
                                f64::from(weight(i)),
                            )
                        })
                        .collect(),
                }
            } else {
                Kind::Random {
                    cumulative: members
                        .iter()
                        .scan(0, |sum, &i| {
                            *sum += weight(i);
                            Some(*sum)
                        })
                        .collect(),
                }
            };
            Dyn::Routed(Box::new(Table {
                route: name,
                targets,
                labels: labels(members),
                kind,
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
                        geo: geo.clone(),
                        areas: areas.into(),
                    },
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
                })),
                None => Dyn::ServFail,
            }
        }
    }
}

/// `d` with every record owned by `name`: a route that names another
/// answers with that route's records under its own name. Tables are
/// copied (sharing the location sources); this runs only on rebuilds.
fn renamed(d: &Dyn, name: &Name) -> Dyn {
    let rename = |rr: &Rrset| {
        let mut set = RecordSet::with_ttl(name.clone(), rr.set.record_type(), rr.set.ttl());
        for r in rr.set.records_without_rrsigs() {
            set.add_rdata(r.data.clone());
        }
        Rrset::new(Arc::new(set))
    };
    match d {
        Dyn::Set(rr) => Dyn::Set(rename(rr)),
        Dyn::Choice(sets) => Dyn::Choice(sets.iter().map(rename).collect()),
        Dyn::NoData => Dyn::NoData,
        Dyn::ServFail => Dyn::ServFail,
        Dyn::Via(inner) => renamed(inner, name),
        Dyn::Routed(t) => Dyn::Routed(Box::new(Table {
            route: t.route.clone(),
            targets: t
                .targets
                .iter()
                .map(|x| Arc::new(renamed(x, name)))
                .collect(),
            labels: t.labels.clone(),
            kind: t.kind.clone(),
        })),
    }
}

/// The two SOA slots of `zone` served with `serial`.
pub fn soa_slots(zone: &Zone, serial: u32) -> [Dyn; 2] {
    let (soa, neg) = zone.soa_sets(serial);
    [Dyn::Set(soa), Dyn::Set(neg)]
}
