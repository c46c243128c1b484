//! Routing policies, in two halves that together are the pure function
//! `(route, health view, client) -> answer`:
//!
//! - [`decide`] (health half): which members are eligible, from the
//!   effective health of their checks and of the routes they name. The
//!   controller calls it when health changes. Its [`Decision`] carries its
//!   own health bit (a route that fails open still says it is down, so a
//!   parent can skip it) and the steps that led to it (`path`).
//! - [`table::Table::pick`] (client half): among the eligible members,
//!   the one for this client, from tables built once per decision
//!   (`control::build`). The query path and `veer explain` both call it,
//!   and it returns the ECS scope the choice really depended on.
//!
//! No clock and no I/O here; randomness only in the weighted pick.

pub mod prefix;
pub mod table;

use std::net::IpAddr;

use crate::config::{AllDown, Policy, RouteConfig};
use crate::health::{CheckHealth, State};

/// Who is asking: the ECS address (masked to its source prefix) when the
/// query carries one, else the source address with its full width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address (bits beyond `prefix` are zero).
    pub addr: IpAddr,
    /// How many leading bits of `addr` are known.
    pub prefix: u8,
}

impl Client {
    /// A client known by its full address.
    pub fn addr(addr: IpAddr) -> Client {
        Client {
            addr,
            prefix: prefix::width(&addr),
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Collects the steps of a client-side pick for `veer explain`. The query
/// path passes `()`, whose steps compile to nothing.
pub trait Trace {
    /// Records one step (the closure runs only when steps are kept).
    fn step(&mut self, f: impl FnOnce() -> String);
}

impl Trace for () {
    #[inline(always)]
    fn step(&mut self, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<String> {
    fn step(&mut self, f: impl FnOnce() -> String) {
        self.push(f());
    }
}

/// What the health half of the policies sees: the effective state of every
/// check and the health bit of every route decided so far (routes are
/// decided after the routes their members name).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Per check, in config order.
    pub checks: &'a [CheckHealth],
    /// Per route, in config order: its last decision was healthy.
    pub routes: &'a [bool],
    /// Per route, in config order: its last decision depended on a check
    /// that is Unknown or changing (it answers with `min_ttl`).
    pub uncertain: &'a [bool],
}

/// What a route answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Chosen {
    /// These members (indices into the route's members): the eligible
    /// ones, among which the client half picks.
    Members(Vec<usize>),
    /// The route's fallback records.
    Fallback,
    /// NODATA.
    NoData,
    /// SERVFAIL.
    ServFail,
}

/// A route's current answer and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The answer.
    pub chosen: Chosen,
    /// At least the required number of members is healthy.
    pub healthy: bool,
    /// TTL of the answer: `min_ttl` while the choice depends on a check
    /// that is Unknown or whose counters are moving.
    pub ttl: u32,
    /// The choice depended on a check that is Unknown or changing (so
    /// `ttl` is `min_ttl`), here or in a route a member names.
    pub uncertain: bool,
    /// When `chosen` is one member naming a route: what a client gets for
    /// whom that route has no answer (a geo or cidr miss without default),
    /// decided as if that member were down.
    pub then: Option<Box<Decision>>,
    /// The steps of the decision, for `veer explain` and logs.
    pub path: Vec<String>,
}

impl Decision {
    /// Whether `self` answers every client as `other` does (paths aside).
    pub fn same_answer(&self, other: &Decision) -> bool {
        self.chosen == other.chosen
            && self.ttl == other.ttl
            && self.healthy == other.healthy
            && self.uncertain == other.uncertain
            && match (&self.then, &other.then) {
                (Some(a), Some(b)) => a.same_answer(b),
                (a, b) => a.is_none() && b.is_none(),
            }
    }

    /// Whether the zone's content differs (not only a TTL).
    pub fn same_content(&self, other: &Decision) -> bool {
        self.chosen == other.chosen
            && self.healthy == other.healthy
            && match (&self.then, &other.then) {
                (Some(a), Some(b)) => a.same_content(b),
                (a, b) => a.is_none() && b.is_none(),
            }
    }
}

/// Decides `route`'s eligible members from the effective health of their
/// checks (and of the routes they name).
pub fn decide(route: &RouteConfig, view: &View<'_>) -> Decision {
    decide_without(route, view, &[])
}

/// [`decide`] with the members in `excluded` taken as down.
fn decide_without(route: &RouteConfig, view: &View<'_>, excluded: &[usize]) -> Decision {
    let health = view.checks;
    let up = |i: usize| {
        let m = &route.members[i];
        !excluded.contains(&i)
            && m.check.is_none_or(|c| health[c].effective.eligible())
            && m.route.is_none_or(|r| view.routes[r])
    };
    // A member whose state may change soon: the answer it helped decide
    // gets min_ttl, so resolvers do not cache a guess for the full TTL.
    let uncertain = |i: usize| {
        let m = &route.members[i];
        m.check
            .is_some_and(|c| health[c].pending || health[c].effective == State::Unknown)
            || m.route
                .is_some_and(|r| view.uncertain.get(r) == Some(&true))
    };
    let ttl_over = |groups: &[(String, Vec<usize>)]| {
        let u = groups.iter().flat_map(|g| &g.1).any(|&i| uncertain(i));
        (if u { route.min_ttl } else { route.ttl }, u)
    };
    let mut path = Vec::new();
    for (i, m) in route.members.iter().enumerate() {
        let mut why = Vec::new();
        if excluded.contains(&i) {
            why.push("no answer for some clients".into());
        }
        if let Some(c) = m.check {
            why.push(format!("check {}", health[c].effective));
        }
        if let Some(r) = m.route {
            why.push(format!(
                "route {}",
                if view.routes[r] { "healthy" } else { "down" }
            ));
        }
        if why.is_empty() {
            why.push("no check".into());
        }
        path.push(format!(
            "member {} ({}): {} [{}]",
            i + 1,
            match (&m.record, &m.route_name) {
                (Some(r), _) => r.data.to_string(),
                (None, Some(n)) => format!("route {n}"),
                (None, None) => "?".into(),
            },
            if up(i) { "healthy" } else { "down" },
            why.join(", ")
        ));
    }
    let all: Vec<usize> = (0..route.members.len()).collect();

    // Groups tried in order: failover tiers, weighted members before
    // standbys (weight 0), or the single pool of the other policies.
    let groups: Vec<(String, Vec<usize>)> = match route.policy {
        Policy::Failover => {
            let mut tiers: Vec<u32> = route.members.iter().map(|m| m.tier).collect();
            tiers.sort_unstable();
            tiers.dedup();
            tiers
                .into_iter()
                .map(|t| {
                    (
                        format!("tier {t}"),
                        all.iter()
                            .copied()
                            .filter(|&i| route.members[i].tier == t)
                            .collect(),
                    )
                })
                .collect()
        }
        Policy::Weighted { .. } => {
            let (weighted, standby): (Vec<usize>, Vec<usize>) =
                all.iter().partition(|&&i| route.members[i].weight > 0);
            [
                ("members with weight > 0".to_string(), weighted),
                ("standby members (weight 0)".to_string(), standby),
            ]
            .into_iter()
            .filter(|g| !g.1.is_empty())
            .collect()
        }
        Policy::Multivalue { .. } | Policy::Geo | Policy::Cidr | Policy::Nearest => {
            vec![("members".to_string(), all.clone())]
        }
    };

    for (g, (label, members)) in groups.iter().enumerate() {
        let healthy: Vec<usize> = members.iter().copied().filter(|&i| up(i)).collect();
        let need = route.min_healthy.required(members.len());
        path.push(format!(
            "{label}: {}/{} healthy (need {need})",
            healthy.len(),
            members.len()
        ));
        if healthy.len() >= need {
            path.push(format!("{label} answers with its healthy members"));
            // A member naming a route may have no answer for some clients:
            // they get what this route answers without it.
            // Only a failover route has a next tier to fall through to.
            let then = match healthy.as_slice() {
                &[i] if route.members[i].route.is_some()
                    && matches!(route.policy, Policy::Failover) =>
                {
                    let mut without = excluded.to_vec();
                    without.push(i);
                    Some(Box::new(decide_without(route, view, &without)))
                }
                _ => None,
            };
            let (ttl, uncertain) = ttl_over(&groups[..=g]);
            return Decision {
                chosen: Chosen::Members(healthy),
                healthy: true,
                ttl,
                uncertain,
                then,
                path,
            };
        }
    }
    let (ttl, uncertain) = ttl_over(&groups);
    // No group meets min_healthy: the first group with any healthy member
    // answers whole, so one survivor does not take all the traffic.
    if let Some((label, members)) = groups.iter().find(|(_, m)| m.iter().any(|&i| up(i))) {
        path.push(format!(
            "no group meets min_healthy: {label} answers with all its members"
        ));
        return Decision {
            chosen: Chosen::Members(members.clone()),
            healthy: false,
            ttl,
            uncertain,
            then: None,
            path,
        };
    }
    path.push("no member is healthy".into());
    let chosen = match &route.when_all_down {
        AllDown::Open => {
            path.push("when_all_down = open: answer as if all were healthy".into());
            // The first group, less a named route that has no answer for
            // the clients this decision is for.
            Chosen::Members(
                groups
                    .iter()
                    .map(|g| -> Vec<usize> {
                        g.1.iter()
                            .copied()
                            .filter(|i| !excluded.contains(i))
                            .collect()
                    })
                    .find(|g| !g.is_empty())
                    .unwrap_or_default(),
            )
        }
        AllDown::Closed => {
            path.push("when_all_down = closed: NODATA".into());
            Chosen::NoData
        }
        AllDown::Fallback(_) => {
            path.push("when_all_down = fallback: the fallback values".into());
            Chosen::Fallback
        }
        AllDown::ServFail => {
            path.push("when_all_down = servfail: SERVFAIL".into());
            Chosen::ServFail
        }
    };
    Decision {
        chosen,
        healthy: false,
        ttl,
        uncertain,
        then: None,
        path,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

    use super::*;
    use crate::config::{Member, MinHealthy};

    fn route(
        policy: Policy,
        tiers: &[u32],
        min_healthy: MinHealthy,
        all_down: AllDown,
    ) -> RouteConfig {
        let name = Name::from_ascii("www.example.test.").unwrap();
        RouteConfig {
            name: name.clone(),
            rtype: RecordType::A,
            zone: 0,
            ttl: 60,
            min_ttl: 5,
            policy,
            members: tiers
                .iter()
                .enumerate()
                .map(|(i, &tier)| Member {
                    record: Some(Record::from_rdata(
                        name.clone(),
                        60,
                        RData::A(A::new(192, 0, 2, i as u8)),
                    )),
                    route: None,
                    route_name: None,
                    check: Some(i),
                    tier,
                    weight: 1,
                    area: None,
                    networks: Vec::new(),
                    place: None,
                    default: false,
                    line: 1,
                })
                .collect(),
            min_healthy,
            when_all_down: all_down,
            line: 1,
        }
    }

    fn health(states: &[State]) -> Vec<CheckHealth> {
        states
            .iter()
            .map(|&s| CheckHealth::new(s, SystemTime::UNIX_EPOCH))
            .collect()
    }

    use State::{Down, Unknown, Up};

    fn dec(r: &RouteConfig, h: &[CheckHealth]) -> Decision {
        decide(
            r,
            &View {
                checks: h,
                routes: &[],
                uncertain: &[],
            },
        )
    }

    #[test]
    fn failover_takes_first_healthy_tier() {
        let r = route(
            Policy::Failover,
            &[1, 1, 2, 3],
            MinHealthy::Count(1),
            AllDown::Open,
        );
        let d = dec(&r, &health(&[Up, Down, Up, Up]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![0]), true));
        let d = dec(&r, &health(&[Down, Down, Down, Up]));
        assert_eq!(d.chosen, Chosen::Members(vec![3]));
    }

    #[test]
    fn min_healthy_falls_through_then_answers_whole_tier() {
        let r = route(
            Policy::Failover,
            &[1, 1, 2, 2],
            MinHealthy::Count(2),
            AllDown::Open,
        );
        let d = dec(&r, &health(&[Up, Down, Up, Up]));
        assert_eq!(d.chosen, Chosen::Members(vec![2, 3]));
        let d = dec(&r, &health(&[Up, Down, Up, Down]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![0, 1]), false));
        let r = route(
            Policy::Multivalue { max: 8 },
            &[1, 1, 1, 1],
            MinHealthy::Fraction(0.5),
            AllDown::Open,
        );
        let d = dec(&r, &health(&[Up, Down, Down, Down]));
        assert_eq!(
            (d.chosen, d.healthy),
            (Chosen::Members(vec![0, 1, 2, 3]), false)
        );
        let d = dec(&r, &health(&[Up, Up, Down, Down]));
        assert_eq!(d.chosen, Chosen::Members(vec![0, 1]));
    }

    #[test]
    fn every_when_all_down() {
        let down = health(&[Down, Down]);
        for (all_down, want) in [
            (AllDown::Open, Chosen::Members(vec![0])),
            (AllDown::Closed, Chosen::NoData),
            (AllDown::Fallback(vec![]), Chosen::Fallback),
            (AllDown::ServFail, Chosen::ServFail),
        ] {
            let d = dec(
                &route(Policy::Failover, &[1, 2], MinHealthy::Count(1), all_down),
                &down,
            );
            assert_eq!((d.chosen, d.healthy), (want, false));
        }
    }

    #[test]
    fn pending_shortens_ttl_and_unchecked_members_are_healthy() {
        let mut r = route(
            Policy::Multivalue { max: 8 },
            &[1, 1],
            MinHealthy::Count(1),
            AllDown::Closed,
        );
        r.members[1].check = None;
        let mut h = health(&[Down]);
        let d = dec(&r, &h);
        assert_eq!((d.chosen, d.ttl), (Chosen::Members(vec![1]), 60));
        h[0].pending = true;
        assert_eq!(dec(&r, &h).ttl, 5);
    }

    #[test]
    fn unknown_in_the_answering_tier_or_an_earlier_one_gives_min_ttl() {
        let r = route(
            Policy::Failover,
            &[1, 2, 3],
            MinHealthy::Count(1),
            AllDown::Open,
        );
        // The choice depends on tier 1's Unknown check.
        assert_eq!(dec(&r, &health(&[Unknown, Up, Up])).ttl, 5);
        // Tier 1 down, tier 2 answers while its own check is Unknown.
        assert_eq!(dec(&r, &health(&[Down, Unknown, Up])).ttl, 5);
        // A later tier's Unknown check does not matter.
        let d = dec(&r, &health(&[Up, Unknown, Unknown]));
        assert_eq!((d.chosen, d.ttl), (Chosen::Members(vec![0]), 60));
        // All down but one Unknown: every tier was looked at.
        let d = dec(&r, &health(&[Down, Down, Unknown]));
        assert_eq!((d.chosen, d.ttl), (Chosen::Members(vec![2]), 5));
        assert_eq!(dec(&r, &health(&[Down, Down, Down])).ttl, 60);
    }

    #[test]
    fn weighted_standby_answers_only_when_every_weighted_member_is_down() {
        let mut r = route(
            Policy::Weighted {
                sticky: false,
                pick: 1,
            },
            &[1, 1, 1],
            MinHealthy::Count(1),
            AllDown::Open,
        );
        for (m, w) in r.members.iter_mut().zip([2, 1, 0]) {
            m.weight = w;
        }
        let d = dec(&r, &health(&[Up, Down, Up]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![0]), true));
        let d = dec(&r, &health(&[Down, Down, Up]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![2]), true));
        // All down, fail open: the weighted members, reported down.
        let d = dec(&r, &health(&[Down, Down, Down]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![0, 1]), false));
        // All weights 0: one pool (equal odds are the table's job).
        for m in &mut r.members {
            m.weight = 0;
        }
        let d = dec(&r, &health(&[Up, Down, Up]));
        assert_eq!(d.chosen, Chosen::Members(vec![0, 2]));
    }

    #[test]
    fn a_member_naming_a_route_follows_that_routes_health() {
        let mut r = route(
            Policy::Failover,
            &[1, 2],
            MinHealthy::Count(1),
            AllDown::Open,
        );
        r.members[0].check = None;
        r.members[0].route = Some(0);
        let h = health(&[Up, Up]);
        let view = |routes: &'static [bool]| View {
            checks: &h,
            routes,
            uncertain: &[],
        };
        let d = decide(&r, &view(&[true]));
        assert_eq!(d.chosen, Chosen::Members(vec![0]));
        let d = decide(&r, &view(&[false]));
        assert_eq!(d.chosen, Chosen::Members(vec![1]));
    }
}
