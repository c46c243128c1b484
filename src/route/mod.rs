//! Routing policies: pure functions from (route, health) to a [`Decision`].
//!
//! A decision carries its own health bit (a route that fails open still
//! says it is down, so a parent can skip it) and the steps that led to it
//! (`path`, printed by `veer explain`). No clock, no RNG, no I/O: the
//! controller calls [`decide`] when health changes and publishes the
//! result; the query path only picks among precomputed answers.

use crate::config::{AllDown, Policy, RouteConfig};
use crate::health::CheckHealth;

/// What a route answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Chosen {
    /// These members (indices into the route's members).
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
    /// TTL of the answer: `min_ttl` while a member's state may change soon.
    pub ttl: u32,
    /// The steps of the decision, for `veer explain` and logs.
    pub path: Vec<String>,
}

/// Decides `route`'s answer from the effective health of its checks.
pub fn decide(route: &RouteConfig, health: &[CheckHealth]) -> Decision {
    let up = |i: usize| {
        route.members[i]
            .check
            .is_none_or(|c| health[c].effective.eligible())
    };
    let pending = route
        .members
        .iter()
        .any(|m| m.check.is_some_and(|c| health[c].pending));
    let ttl = if pending { route.min_ttl } else { route.ttl };
    let mut path = Vec::new();
    let all: Vec<usize> = (0..route.members.len()).collect();

    // Groups tried in order: failover tiers, or the single multivalue pool.
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
        Policy::Multivalue { .. } => vec![("members".to_string(), all.clone())],
    };

    for (label, members) in &groups {
        let healthy: Vec<usize> = members.iter().copied().filter(|&i| up(i)).collect();
        let need = route.min_healthy.required(members.len());
        path.push(format!(
            "{label}: {}/{} healthy (need {need})",
            healthy.len(),
            members.len()
        ));
        if healthy.len() >= need {
            path.push(format!("{label} answers with its healthy members"));
            return Decision {
                chosen: Chosen::Members(healthy),
                healthy: true,
                ttl,
                path,
            };
        }
    }
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
            path,
        };
    }
    path.push("no member is healthy".into());
    let chosen = match &route.when_all_down {
        AllDown::Open => {
            path.push("when_all_down = open: answer as if all were healthy".into());
            Chosen::Members(groups.first().map(|g| g.1.clone()).unwrap_or_default())
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
        path,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

    use super::*;
    use crate::config::{Member, MinHealthy};
    use crate::health::State;

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
                    record: Record::from_rdata(
                        name.clone(),
                        60,
                        RData::A(A::new(192, 0, 2, i as u8)),
                    ),
                    check: Some(i),
                    tier,
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

    use State::{Down, Up};

    #[test]
    fn failover_takes_first_healthy_tier() {
        let r = route(
            Policy::Failover,
            &[1, 1, 2, 3],
            MinHealthy::Count(1),
            AllDown::Open,
        );
        let d = decide(&r, &health(&[Up, Down, Up, Up]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![0]), true));
        let d = decide(&r, &health(&[Down, Down, Down, Up]));
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
        let d = decide(&r, &health(&[Up, Down, Up, Up]));
        assert_eq!(d.chosen, Chosen::Members(vec![2, 3]));
        let d = decide(&r, &health(&[Up, Down, Up, Down]));
        assert_eq!((d.chosen, d.healthy), (Chosen::Members(vec![0, 1]), false));
        let r = route(
            Policy::Multivalue { max: 8 },
            &[1, 1, 1, 1],
            MinHealthy::Fraction(0.5),
            AllDown::Open,
        );
        let d = decide(&r, &health(&[Up, Down, Down, Down]));
        assert_eq!(
            (d.chosen, d.healthy),
            (Chosen::Members(vec![0, 1, 2, 3]), false)
        );
        let d = decide(&r, &health(&[Up, Up, Down, Down]));
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
            let d = decide(
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
        let d = decide(&r, &h);
        assert_eq!((d.chosen, d.ttl), (Chosen::Members(vec![1]), 60));
        h[0].pending = true;
        assert_eq!(decide(&r, &h).ttl, 5);
    }
}
