//! From a config to served state: [`Base`] is everything that only changes
//! with the config (zones with their slots bound, route slots); the slot
//! contents are rebuilt from health by the controller.

use std::sync::Arc;

use hickory_proto::rr::{Record, RecordSet};

use crate::config::{AllDown, Config, Policy, RouteConfig};
use crate::diag::{Diagnostic, Diagnostics};
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
            fingerprints,
            routes_of_check,
        })
    }

    /// Number of records in the zone files.
    pub fn records(&self) -> usize {
        self.zones.iter().map(|z| z.records).sum()
    }
}

/// The slot content for a route's decision.
pub fn route_slot(route: &RouteConfig, d: &Decision) -> Dyn {
    let set = |records: &mut dyn Iterator<Item = &Record>| {
        let mut set = RecordSet::with_ttl(route.name.clone(), route.rtype, d.ttl);
        for r in records {
            set.add_rdata(r.data.clone());
        }
        Rrset::new(Arc::new(set))
    };
    match &d.chosen {
        Chosen::NoData => Dyn::NoData,
        Chosen::ServFail => Dyn::ServFail,
        Chosen::Fallback => match &route.when_all_down {
            AllDown::Fallback(records) => Dyn::Set(set(&mut records.iter())),
            _ => Dyn::NoData,
        },
        Chosen::Members(members) => match route.policy {
            Policy::Multivalue { max } if members.len() > 1 => {
                let mut rng = fastrand::Rng::new();
                let shuffles = (0..SHUFFLES)
                    .map(|_| {
                        let mut order = members.clone();
                        rng.shuffle(&mut order);
                        order.truncate(max);
                        set(&mut order.iter().map(|&i| &route.members[i].record))
                    })
                    .collect();
                Dyn::Choice(shuffles)
            }
            _ => Dyn::Set(set(&mut members.iter().map(|&i| &route.members[i].record))),
        },
    }
}

/// The two SOA slots of `zone` served with `serial`.
pub fn soa_slots(zone: &Zone, serial: u32) -> [Dyn; 2] {
    let (soa, neg) = zone.soa_sets(serial);
    [Dyn::Set(soa), Dyn::Set(neg)]
}
