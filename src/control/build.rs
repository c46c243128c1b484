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
    /// Checkpoint fingerprints of each check's definition and target.
    pub fingerprints: Vec<(String, String)>,
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
    let first = decided_slot(base, geo, ri, d, slots);
    match &d.then {
        // Clients the named route has no answer for get the next tier.
        Some(then) => Dyn::Else(
            Arc::new(first),
            Arc::new(route_slot(base, geo, ri, then, slots)),
        ),
        None => first,
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
        let ttl = rr.set.ttl().min(ttl);
        let mut set = RecordSet::with_ttl(name.clone(), rr.set.record_type(), ttl);
        for r in rr.set.records_without_rrsigs() {
            set.add_rdata(r.data.clone());
        }
        Rrset::new(Arc::new(set))
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

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use crate::testutil::{ask, controller, snapshot};

    /// File checks named in `names` (their files need not exist: the
    /// tests decide offline).
    fn checks(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| format!("[check.{n}]\nfile = \"health/{n}\"\n"))
            .collect()
    }

    #[test]
    fn a_cold_start_answers_with_min_ttl() {
        let config = format!(
            "{}{}",
            checks(&["a", "b"]),
            r#"
[[route]]
name = "app.t."
type = "A"
policy = "failover"
ttl = 30
min_ttl = 5
members = [
  { tier = 1, value = "192.0.2.1", check = "a" },
  { tier = 2, value = "192.0.2.2", check = "b" },
]
"#
        );
        // Every check Unknown: tier 1 answers, but only for min_ttl.
        let (_dir, c) = controller(&config, None);
        let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
        assert_eq!(got.values, vec![("192.0.2.1".into(), 5)]);
        // Both up: the full TTL.
        let snap = snapshot(&config, &[]);
        let got = ask(&snap, "app.t.", "198.51.100.1");
        assert_eq!(got.values, vec![("192.0.2.1".into(), 30)]);
    }

    #[test]
    fn a_routed_nodata_is_cached_no_longer_than_the_route() {
        // The zone's negative TTL is 900; the route's TTL is 20.
        let config = format!(
            "{}{}",
            checks(&["a"]),
            r#"
[[route]]
name = "closed.t."
type = "A"
policy = "failover"
ttl = 20
when_all_down = "closed"
members = [ { value = "192.0.2.1", check = "a" } ]

[[route]]
name = "cidr.t."
type = "A"
ttl = 15
policy = "cidr"
members = [ { networks = ["10.0.0.0/8"], value = "10.1.1.1" } ]
"#
        );
        let snap = snapshot(&config, &["a"]);
        let got = ask(&snap, "closed.t.", "198.51.100.1");
        assert_eq!((got.rcode, got.values.len()), (ResponseCode::NoError, 0));
        assert_eq!(got.authority_ttl, Some(20));
        // A cidr miss without default.
        let got = ask(&snap, "cidr.t.", "198.51.100.1");
        assert_eq!((got.values.len(), got.authority_ttl), (0, Some(15)));
        // Zone NODATA keeps the zone's negative TTL.
        let got = ask(&snap, "www.t.", "198.51.100.1");
        assert_eq!(got.values.len(), 1);
        let got = ask(&snap, "ns.t.", "198.51.100.1");
        assert_eq!(got.values.len(), 1);
    }

    #[test]
    fn a_nested_route_answers_with_the_lower_ttl() {
        let config = format!(
            "{}{}",
            checks(&["a", "p1"]),
            r#"
[[route]]
name = "pool.t."
type = "A"
ttl = 3600
policy = "multivalue"
members = [ { value = "192.0.2.10", check = "p1" }, { value = "192.0.2.11" } ]

[[route]]
name = "app.t."
type = "A"
policy = "failover"
ttl = 10
members = [
  { tier = 1, route = "pool.t." },
  { tier = 2, value = "192.0.2.2", check = "a" },
]

[[route]]
name = "slow.t."
type = "A"
policy = "failover"
ttl = 7200
members = [ { tier = 1, route = "app.t." } ]
"#
        );
        let snap = snapshot(&config, &[]);
        let got = ask(&snap, "app.t.", "198.51.100.1");
        assert_eq!(
            got.values,
            vec![("192.0.2.10".into(), 10), ("192.0.2.11".into(), 10)]
        );
        // A parent with a longer TTL than its child: the child's.
        let got = ask(&snap, "slow.t.", "198.51.100.1");
        assert!(got.values.iter().all(|v| v.1 == 10), "{got:?}");
    }

    #[test]
    fn weighted_pick_follows_the_weights_for_every_pick() {
        for sticky in [false, true] {
            let config = format!(
                r#"
[[route]]
name = "w.t."
type = "A"
policy = "weighted"
pick = 2
sticky = {sticky}
members = [
  {{ value = "192.0.2.1", weight = 90 }},
  {{ value = "192.0.2.2", weight = 5 }},
  {{ value = "192.0.2.3", weight = 5 }},
]
"#
            );
            let snap = snapshot(&config, &[]);
            let mut seen = [0u32; 3];
            let n = 4000;
            for i in 0..n {
                // Sticky hashes the client's /24: a different one each time.
                let client = format!("10.{}.{}.1", i / 256, i % 256);
                let got = ask(&snap, "w.t.", &client);
                let v = got.values();
                assert_eq!(v.len(), 2, "{got:?}");
                assert_ne!(v[0], v[1]);
                for (k, s) in seen.iter_mut().enumerate() {
                    *s += u32::from(v.contains(&format!("192.0.2.{}", k + 1).as_str()));
                }
            }
            // Weighted sampling without replacement: the 90 is in ~99.7%
            // of answers and each 5 in ~50.3%. The old fixed pairs gave
            // the first 5 ~95% and the second ~10%. Bounds: > 6 sigma.
            assert!(seen[0] > n * 97 / 100, "sticky={sticky}: {seen:?}");
            for s in &seen[1..] {
                let share = f64::from(*s) / f64::from(n);
                assert!((0.45..0.56).contains(&share), "sticky={sticky}: {seen:?}");
            }
        }
    }

    #[test]
    fn weighted_pick_never_sends_a_record_twice() {
        // Two members with the same value are one entry (weights added).
        let config = r#"
[[route]]
name = "w.t."
type = "A"
policy = "weighted"
pick = 2
members = [
  { value = "192.0.2.1", weight = 1 },
  { value = "192.0.2.1", weight = 1 },
  { value = "192.0.2.2", weight = 1 },
  { value = "192.0.2.3", weight = 1 },
]
"#;
        let snap = snapshot(config, &[]);
        let mut ones = 0;
        for _ in 0..2000 {
            let got = ask(&snap, "w.t.", "198.51.100.1");
            let v = got.values();
            assert!(v.len() == 2 && v[0] != v[1], "{got:?}");
            ones += usize::from(v.contains(&"192.0.2.1"));
        }
        // Weight 2 of 4: in ~83% of the pairs (2/4 + 1/4*2/3 + 1/4*2/3).
        assert!((1550..1780).contains(&ones), "{ones}");
    }

    #[test]
    fn only_a_failover_parent_falls_through() {
        // A cidr parent's own miss stays NODATA even when one member names
        // a route; it never reaches a down default.
        let config = format!(
            "{}{}",
            checks(&["x"]),
            r#"
[[route]]
name = "child.t."
type = "A"
policy = "multivalue"
members = [ { value = "10.1.1.1" } ]

[[route]]
name = "parent.t."
type = "A"
policy = "cidr"
members = [
  { networks = ["10.0.0.0/8"], route = "child.t." },
  { default = true, value = "192.0.2.99", check = "x" },
]
"#
        );
        let snap = snapshot(&config, &["x"]);
        assert_eq!(
            ask(&snap, "parent.t.", "10.9.9.9").values(),
            vec!["10.1.1.1"]
        );
        let got = ask(&snap, "parent.t.", "198.51.100.1");
        assert!(got.values.is_empty(), "{got:?}");
    }

    #[test]
    fn a_changing_check_behind_a_named_route_shortens_the_parent_ttl() {
        // Cold start: p is Unknown, q starts down (initial = "down"). The
        // pool needs both, so app's tier 2 answers, a choice that depends
        // on p's pending verdict: min_ttl.
        let config = r#"
[check.p]
file = "health/p"
[check.q]
file = "health/q"
initial = "down"

[[route]]
name = "pool.t."
type = "A"
ttl = 300
min_ttl = 5
policy = "multivalue"
min_healthy = 2
members = [ { value = "192.0.2.1", check = "p" }, { value = "192.0.2.3", check = "q" } ]

[[route]]
name = "app.t."
type = "A"
ttl = 300
min_ttl = 5
policy = "failover"
members = [
  { tier = 1, route = "pool.t." },
  { tier = 2, value = "192.0.2.2" },
]
"#;
        let (_dir, c) = controller(config, None);
        let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
        assert_eq!(got.values, vec![("192.0.2.2".into(), 5)]);
        // Every verdict in: the full TTL.
        let snap = snapshot(config, &["q"]);
        let got = ask(&snap, "app.t.", "198.51.100.1");
        assert_eq!(got.values, vec![("192.0.2.2".into(), 300)]);
    }

    #[test]
    fn a_nested_route_without_an_answer_falls_through_per_client() {
        let config = format!(
            "{}{}",
            checks(&["n1", "n2", "b"]),
            r#"
[[route]]
name = "local.t."
type = "A"
policy = "cidr"
members = [ { networks = ["10.0.0.0/8"], value = "10.1.1.1" } ]

[[route]]
name = "pair.t."
type = "A"
policy = "multivalue"
min_healthy = 2
when_all_down = "open"
members = [ { value = "192.0.2.21", check = "n1" }, { value = "192.0.2.22", check = "n2" } ]

[[route]]
name = "app.t."
type = "A"
policy = "failover"
members = [
  { tier = 1, route = "local.t." },
  { tier = 2, value = "192.0.2.2", check = "b" },
]

[[route]]
name = "app2.t."
type = "A"
policy = "failover"
members = [
  { tier = 1, route = "pair.t." },
  { tier = 2, value = "192.0.2.2", check = "b" },
]
"#
        );
        let snap = snapshot(&config, &[]);
        // In the child's network: the child's answer, scope of its block.
        let got = ask(&snap, "app.t.", "10.9.9.0/24");
        assert_eq!((got.values(), got.scope), (vec!["10.1.1.1"], 8));
        // Outside: the parent's next tier, not NODATA.
        let got = ask(&snap, "app.t.", "198.51.100.0/24");
        assert_eq!(got.values(), vec!["192.0.2.2"]);
        // The next tier down too: NODATA would be wrong only if another
        // tier were healthy; with tier 2 down the parent fails open.
        let snap = snapshot(&config, &["b"]);
        let got = ask(&snap, "app.t.", "198.51.100.0/24");
        assert_eq!(got.values(), vec!["192.0.2.2"], "{got:?}");

        // A child below its own min_healthy is down for its parent.
        let snap = snapshot(&config, &["n1"]);
        let got = ask(&snap, "app2.t.", "198.51.100.1");
        assert_eq!(got.values(), vec!["192.0.2.2"]);
        // A child that answers only because it fails open is down too.
        let snap = snapshot(&config, &["n1", "n2"]);
        let got = ask(&snap, "app2.t.", "198.51.100.1");
        assert_eq!(got.values(), vec!["192.0.2.2"]);
        // Both healthy: the child answers.
        let snap = snapshot(&config, &[]);
        let got = ask(&snap, "app2.t.", "198.51.100.1");
        assert_eq!(got.values(), vec!["192.0.2.21", "192.0.2.22"]);
    }
}
