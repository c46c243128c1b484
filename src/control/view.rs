//! The read-only view the admin API and the status page show, built from
//! the controller's state and published inside each snapshot.

use std::time::SystemTime;

use super::Controller;
use crate::config::{self, CheckKind};
use crate::route::Chosen;
use crate::status::{CheckStatus, RouteStatus, Status, ZoneStatus, rfc3339};

impl Controller {
    /// The API's view of the current state.
    pub(super) fn status(&self) -> Status {
        let config = &self.base.config;
        let now = SystemTime::now();
        let probe_of = self.probe_of();
        let checks = config
            .checks
            .iter()
            .zip(&self.health)
            .enumerate()
            .map(|(i, (c, h))| {
                let o = self.forced(&c.name, now);
                let probe = probe_of[i].map(|p| &self.probes[p]);
                CheckStatus {
                    name: c.name.clone(),
                    kind: kind_name(&c.kind).to_string(),
                    state: h.effective,
                    real_state: h.observed,
                    forced: h.forced,
                    override_reason: o.map(|o| o.reason.clone()),
                    override_until: o.and_then(|o| o.until).map(rfc3339),
                    pending: h.pending,
                    since: rfc3339(h.since),
                    reason: h.reason.clone(),
                    last_latency_ms: h.latency.map(|l| l.as_secs_f64() * 1000.0),
                    stats: probe.map(|p| p.stats.clone()),
                    history: self
                        .check_history
                        .get(&c.name)
                        .map(|h| h.iter().cloned().collect())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .zip(&self.decisions)
            .enumerate()
            .map(|(ri, (r, d))| {
                let d = d.as_ref();
                let (answer, outcome) = answer_of(config, r, d);
                RouteStatus {
                    name: r.name.to_string(),
                    rtype: r.rtype.to_string(),
                    policy: r.policy.name().to_string(),
                    answer,
                    outcome: outcome.to_string(),
                    healthy: d.is_some_and(|d| d.healthy),
                    ttl: d.map_or(r.ttl, |d| d.ttl),
                    path: d.map(|d| d.path.clone()).unwrap_or_default(),
                    answer_changes: self
                        .answer_changes
                        .get(&(r.name.to_string(), r.rtype.to_string()))
                        .map(|h| h.iter().cloned().collect())
                        .unwrap_or_default(),
                    variants: self
                        .slots
                        .get(self.base.route_slots[ri])
                        .map_or(0, |s| variants(s)),
                    checks: r
                        .members
                        .iter()
                        .filter_map(|m| m.check)
                        .map(|c| config.checks[c].name.clone())
                        .collect(),
                }
            })
            .collect();
        let zones = self
            .base
            .zones
            .iter()
            .zip(&self.serials)
            .enumerate()
            .map(|(i, (z, &serial))| ZoneStatus {
                origin: z.origin.to_string(),
                serial,
                records: z.records,
                stats: Some(z.stats.clone()),
                dnssec: self
                    .base
                    .signers
                    .get(i)
                    .and_then(|s| s.as_deref())
                    .map(|s| crate::status::ZoneDnssec {
                        keys: s.status(now),
                        earliest_expiry: z.signed.as_ref().and_then(|x| x.expires).map(rfc3339),
                        next_signing: z
                            .signed
                            .as_ref()
                            .and_then(|x| x.expires)
                            .and_then(|e| e.checked_sub(config.dnssec.refresh))
                            .map(rfc3339),
                        backlog: 0,
                    }),
            })
            .collect();
        Status {
            generation: self.generation,
            started: rfc3339(self.started),
            config: config.path.display().to_string(),
            checks,
            routes,
            zones,
            transitions: self.transitions.iter().cloned().collect(),
            transitions_total: self.transitions_total,
            last_reload: self.last_reload.clone(),
            reloads_ok: self.reloads.0,
            reloads_failed: self.reloads.1,
            guard_frozen: self.guard.frozen().is_some(),
            fleet: self.fleet_status(now),
        }
    }
}

/// A route's answer for decision `d`: the records, and `members`,
/// `fallback`, `nodata` or `servfail`.
pub(super) fn answer_of(
    config: &config::Config,
    r: &config::RouteConfig,
    d: Option<&crate::route::Decision>,
) -> (Vec<String>, &'static str) {
    match d.map(|d| &d.chosen) {
        Some(Chosen::Members(m)) => (
            m.iter()
                .map(|&i| r.members[i].label(&config.routes))
                .collect(),
            "members",
        ),
        Some(Chosen::Fallback) => match &r.when_all_down {
            config::AllDown::Fallback(v) => {
                (v.iter().map(|r| r.data.to_string()).collect(), "fallback")
            }
            _ => (Vec::new(), "fallback"),
        },
        Some(Chosen::NoData) => (Vec::new(), "nodata"),
        Some(Chosen::ServFail) | None => (Vec::new(), "servfail"),
    }
}

/// A route's answer for decision `d` in a line: its records, or
/// `NODATA`, `SERVFAIL`, `FALLBACK`.
pub(super) fn answer_text(
    config: &config::Config,
    r: &config::RouteConfig,
    d: Option<&crate::route::Decision>,
) -> String {
    let (answer, outcome) = answer_of(config, r, d);
    if answer.is_empty() {
        outcome.to_uppercase()
    } else {
        answer.join(", ")
    }
}

/// Distinct RRsets in a slot (shared ones once).
fn variants(d: &crate::store::Dyn) -> usize {
    use crate::store::Dyn;
    fn walk<'a>(d: &'a Dyn, seen: &mut Vec<*const crate::zone::Records>) {
        let mut add = |rr: &'a crate::zone::Rrset| {
            let p = std::sync::Arc::as_ptr(&rr.records);
            if !seen.contains(&p) {
                seen.push(p);
            }
        };
        match d {
            Dyn::Set(rr) => add(rr),
            Dyn::Choice(sets) => sets.iter().for_each(add),
            Dyn::NoData(_) | Dyn::ServFail => {}
            Dyn::Via(x) => walk(x, seen),
            Dyn::Else(a, b) => {
                walk(a, seen);
                walk(b, seen);
            }
            Dyn::Routed(t) => {
                t.targets.iter().for_each(|x| walk(x, seen));
                walk(&t.no_data, seen);
            }
        }
    }
    let mut seen = Vec::new();
    walk(d, &mut seen);
    seen.len()
}

/// The probe kind's name.
pub fn kind_name(k: &CheckKind) -> &'static str {
    match k {
        CheckKind::Http(h) if h.url.starts_with("https") => "https",
        CheckKind::Http(_) => "http",
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Dns { .. } => "dns",
        CheckKind::Exec { .. } => "exec",
        CheckKind::File { .. } => "file",
        CheckKind::Calculated { .. } => "calculated",
    }
}
