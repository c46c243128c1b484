//! Reconcile: the one place where a validated config becomes running
//! state. `(running state, new config) -> new running state`; a start is a
//! reconcile from nothing, and every reload (watcher, SIGHUP, API) goes
//! through it. Nothing else derives state from the config, so no copy of
//! config-derived state (probe sharing, guard, geo data, webhook list,
//! watched files) can be forgotten by one path and updated by another.
//!
//! Check health is carried by check name:
//!
//! ```text
//!   same definition ................ kept as is (state, counters, probe task)
//!   timing/thresholds edited ....... state and counters kept, probe restarted
//!   target/expectation edited ...... last verdict kept provisionally: pending
//!                                    (min_ttl) until the new probe confirms
//!                                    it fall/rise times or flips it
//!   new name ....................... the checkpoint by the same rules, else
//!                                    `initial`
//! ```
//!
//! A check whose definition another check's running probe already has
//! joins that probe and takes its current state. Probe tasks to start are
//! queued in `unspawned` and started by the runtime step ([`Controller::
//! start_tasks`]), with the webhook queues, so `veer explain` can reconcile
//! without a runtime.

use std::sync::Arc;
use std::time::SystemTime;

use super::build::Base;
use super::{Controller, Probe, next_serial, serial_gt, watch};
use crate::config::{CheckConfig, CheckKind, Initial};
use crate::health::checkpoint::{self, Checkpoint};
use crate::health::guard::Guard;
use crate::health::probe::Clients;
use crate::health::scheduler::{self, Activity, Plan, Report, Start};
use crate::health::{CheckHealth, State};
use crate::metrics::ProbeStats;
use crate::route::Decision;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

impl Controller {
    /// Makes the running state follow the config in `self.base`; `old` is
    /// the config the current state was built for (`None` at start).
    pub(super) fn reconcile(&mut self, old: Option<Arc<Base>>, now: SystemTime) {
        let new = self.base.clone();
        if let Some(old) = &old {
            warn_restart_only(old, &new);
            self.expired = super::secondary::expired_after_reload(old, &new, &self.expired);
        }
        let saved = load_checkpoint(&new);

        // Health by check name, and how each probe's tracker starts.
        let mut starts = Vec::new();
        let mut health = Vec::new();
        for c in &new.config.checks {
            let prev = old.as_ref().and_then(|o| {
                let i = o.config.checks.iter().position(|k| k.name == c.name)?;
                Some((&o.config.checks[i], &self.health[i], i))
            });
            let (h, start) = match prev {
                // A calculated check is recomputed from its children: it
                // keeps its state by name and is never provisional.
                _ if matches!(c.kind, CheckKind::Calculated { .. }) => {
                    let h = prev.map_or_else(
                        || CheckHealth::new(State::Unknown, now),
                        |(_, h, _)| CheckHealth {
                            pending: false,
                            ..h.clone()
                        },
                    );
                    (h, Start::Resume(0))
                }
                Some((k, h, _)) if k.definition() == c.definition() => {
                    (h.clone(), Start::Resume(self.streak_of(k)))
                }
                Some((k, h, _)) if k.target() == c.target() => {
                    tracing::info!("check {}: timing edited; state and counters kept", c.name);
                    (h.clone(), Start::Resume(self.streak_of(k)))
                }
                Some((_, h, _)) => provisional(c, h, now),
                None => initial_health(c, &saved, now),
            };
            if old.as_ref().is_some_and(|_| prev.is_none()) {
                tracing::info!("check {}: new", c.name);
            }
            health.push(h);
            starts.push(start);
        }
        if let Some(old) = &old {
            for c in &old.config.checks {
                if !new.config.checks.iter().any(|n| n.name == c.name) {
                    tracing::info!("check {}: removed", c.name);
                }
            }
        }

        // Probes: one per definition. A check joining a running probe (of
        // this config or the last) takes that probe's current state (in a
        // fleet only the probe's side of it: each check keeps its verdict).
        let fleet = self.fleet.is_some();
        let mut old_probes: Vec<(Probe, Option<CheckHealth>)> = std::mem::take(&mut self.probes)
            .into_iter()
            .map(|p| {
                let h = p.checks.first().map(|&i| self.health[i].clone());
                (p, h)
            })
            .collect();
        for (i, c) in new.config.checks.iter().enumerate() {
            if matches!(c.kind, CheckKind::Calculated { .. }) {
                continue;
            }
            let def = c.definition();
            if let Some(p) = self.probes.iter_mut().find(|p| p.definition == def) {
                let seed = p.checks[0];
                let plan = self.unspawned.iter_mut().find(|(id, _)| *id == p.id);
                match plan {
                    // A probe started by this reconcile: its checks start
                    // from the best evidence any of them has (seen by a
                    // probe beats assumed; then the most recent).
                    Some((_, plan)) if better_seed(&health[i], &health[seed]) => {
                        plan.initial = health[i].observed;
                        plan.start = starts[i];
                        plan.established = health[i].established;
                        for &k in &p.checks {
                            let from = health[i].clone();
                            share_probe(&mut health[k], &from, fleet);
                        }
                    }
                    // A running probe (or a worse seed): take its state.
                    _ => {
                        let from = health[seed].clone();
                        share_probe(&mut health[i], &from, fleet);
                    }
                }
                p.checks.push(i);
                continue;
            }
            let probe = match old_probes.iter().position(|(p, _)| p.definition == def) {
                Some(k) => {
                    let (mut p, state) = old_probes.swap_remove(k);
                    if let Some(state) = state {
                        share_probe(&mut health[i], &state, fleet);
                    }
                    p.checks = vec![i];
                    p
                }
                None => {
                    let stats = Arc::new(ProbeStats::default());
                    self.next_probe += 1;
                    // In a fleet a new probe starts running (every check
                    // is this instance's until peers are heard); the
                    // fleet's assignment then pauses what is not.
                    let activity = self.fleet.as_ref().map(|_| {
                        tokio::sync::watch::Sender::new(Activity {
                            seed: Some(health[i].observed),
                            starts: 0,
                        })
                    });
                    if fleet {
                        // A new tracker: no vote until it has probed.
                        health[i].own = health[i].observed;
                        health[i].own_probed = false;
                    }
                    self.unspawned.push((
                        self.next_probe,
                        Plan {
                            check: c.clone(),
                            initial: health[i].observed,
                            start: starts[i],
                            established: health[i].established,
                            stats: stats.clone(),
                            active: activity.as_ref().map(|a| a.subscribe()),
                        },
                    ));
                    Probe {
                        id: self.next_probe,
                        definition: def,
                        checks: vec![i],
                        stats,
                        streak: match starts[i] {
                            Start::Resume(s) => s,
                            Start::Provisional => 0,
                        },
                        abort: None,
                        activity,
                    }
                }
            };
            self.probes.push(probe);
        }
        for (p, _) in old_probes {
            if let Some(a) = p.abort {
                a.abort();
            }
        }
        self.unspawned
            .retain(|(id, _)| self.probes.iter().any(|p| p.id == *id));

        // Served serials: kept, or raised when a zone's content changed.
        let mut kept_serials: Vec<bool> = new
            .zones
            .iter()
            .map(|z| {
                old.as_ref()
                    .and_then(|o| o.zones.iter().position(|x| x.origin == z.origin))
                    .is_some_and(|i| {
                        serial_for(old.as_deref(), &self.serials, &new, z, &saved)
                            == self.serials[i]
                    })
            })
            .collect();
        // Each unchanged route's last answer, to see what the reload changes.
        let before: Vec<(String, Decision)> = old
            .as_ref()
            .map(|o| {
                o.config
                    .routes
                    .iter()
                    .zip(&self.decisions)
                    .filter_map(|(r, d)| Some((format!("{r:?}"), d.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        self.serials = new
            .zones
            .iter()
            .map(|z| serial_for(old.as_deref(), &self.serials, &new, z, &saved))
            .collect();

        // The guard's memory by check name; its settings from the config.
        let old_names = old.as_ref().map(|o| check_names(o));
        let memory = match &old_names {
            Some(names) => self.guard.save(names),
            None => saved.guard.clone(),
        };
        let h = &new.config.health;
        let was_frozen = self.guard.frozen().is_some() || memory.frozen.is_some();
        self.guard = Guard::new(h.guard_share, h.guard_window, h.guard_min_checks);
        self.guard.restore(&memory, &check_names(&new));
        if self
            .guard
            .frozen()
            .is_some_and(|f| f.iter().all(|s| *s == State::Unknown))
        {
            self.guard.lift();
        }
        match (was_frozen, self.guard.frozen().is_some()) {
            (true, false) => tracing::warn!(
                "prober guard lifted: none of the checks it held remains; routes follow probe results again"
            ),
            (true, true) if old.is_none() => tracing::error!(
                "prober guard: still holding the states from before the last burst of failures (checkpoint); it lifts when probes recover or an operator overrides"
            ),
            _ => {}
        }

        self.health = health;
        self.files.send_replace(watched_files(&new));
        self.geo = new.geo.clone();
        self.overrides
            .retain(|o| new.config.checks.iter().any(|c| c.name == o.check));
        // At start the file only restores what was set before.
        self.read_admin_state(now, old.is_some());
        self.reset_slots();
        self.rebuild(now, old.is_some());
        // A route whose config is unchanged but whose answer changed (say a
        // calculated check's min_healthy was edited) changed its zone too.
        let mut raised = false;
        for (r, d) in new.config.routes.iter().zip(&self.decisions) {
            let config = format!("{r:?}");
            let changed = before
                .iter()
                .find(|(c, _)| *c == config)
                .zip(d.as_ref())
                .is_some_and(|((_, was), now)| !was.same_content(now));
            if changed && kept_serials[r.zone] {
                self.serials[r.zone] = next_serial(self.serials[r.zone]);
                let zone = &new.zones[r.zone];
                let [soa, neg] = self.soa_pair(r.zone);
                self.slots[zone.soa_slot] = Arc::new(soa);
                self.slots[zone.soa_slot + 1] = Arc::new(neg);
                kept_serials[r.zone] = false;
                raised = true;
            }
        }
        if raised {
            self.generation += 1;
            self.save_checkpoint();
        }
    }

    /// Starts what the last reconcile queued: probe tasks and the webhook
    /// queues. Only inside the runtime.
    pub(super) fn start_tasks(
        &mut self,
        clients: &Clients,
        tx: &mpsc::UnboundedSender<Report>,
        tasks: &mut JoinSet<()>,
    ) {
        for (id, plan) in self.unspawned.drain(..) {
            let abort = scheduler::spawn_one(id, plan, clients.clone(), tx.clone(), tasks);
            if let Some(p) = self.probes.iter_mut().find(|p| p.id == id) {
                p.abort = Some(abort);
            }
        }
        self.webhooks.reconcile(&self.base.config.webhooks);
    }

    /// The last reported streak of the probe that checked `k`.
    fn streak_of(&self, k: &CheckConfig) -> u32 {
        let def = k.definition();
        self.probes
            .iter()
            .find(|p| p.definition == def)
            .map_or(0, |p| p.streak)
    }
}

/// Check health `to` takes on a probe whose state `from` holds: all of it,
/// or in a fleet, where checks sharing a probe have verdicts of their own
/// (different probers), only the probe's side.
fn share_probe(to: &mut CheckHealth, from: &CheckHealth, fleet: bool) {
    if !fleet {
        *to = from.clone();
        return;
    }
    to.own = from.own;
    to.own_reason = from.own_reason.clone();
    to.own_probed = from.own_probed;
    to.pending = from.pending;
    to.latency = from.latency;
}

/// Whether `a` is better evidence than `b` to start a shared probe from.
fn better_seed(a: &CheckHealth, b: &CheckHealth) -> bool {
    (a.established, a.since) > (b.established, b.since)
}

/// The names of `base`'s checks, in order.
fn check_names(base: &Base) -> Vec<String> {
    base.config.checks.iter().map(|c| c.name.clone()).collect()
}

/// A check whose target changed: its last verdict, held provisionally.
fn provisional(c: &CheckConfig, h: &CheckHealth, now: SystemTime) -> (CheckHealth, Start) {
    if h.observed == State::Unknown {
        tracing::info!("check {}: target edited; no verdict yet", c.name);
        return (CheckHealth::new(State::Unknown, now), Start::Resume(0));
    }
    tracing::info!(
        "check {}: target edited; keeping {} until the new probe confirms it",
        c.name,
        h.observed
    );
    let mut h = h.clone();
    h.pending = true;
    h.established = false;
    h.reason = format!("kept from before the edit until confirmed: {}", h.reason);
    (h, Start::Provisional)
}

fn warn_restart_only(old: &Base, new: &Base) {
    for w in restart_only(old, new) {
        tracing::warn!("{w}");
    }
}

/// What changed that takes effect only after a restart, one line each.
pub(super) fn restart_only(old: &Base, new: &Base) -> Vec<String> {
    let mut out = Vec::new();
    // The same addresses in another order bind the same sockets.
    let sorted = |b: &Base| {
        let mut l = b.config.server.listen.clone();
        l.sort();
        l
    };
    if sorted(new) != sorted(old) {
        out.push("[server] listen changed: the new addresses take effect after a restart".into());
    }
    let (o, n) = (&old.config.server, &new.config.server);
    for (key, changed) in [
        ("workers", o.workers != n.workers),
        ("udp_sockets", o.udp_sockets != n.udp_sockets),
        ("udp_path", o.udp_batched != n.udp_batched),
        ("tcp_idle_timeout", o.tcp_idle_timeout != n.tcp_idle_timeout),
        ("tcp_read_timeout", o.tcp_read_timeout != n.tcp_read_timeout),
        (
            "tcp_max_connections",
            o.tcp_max_connections != n.tcp_max_connections,
        ),
        (
            "tcp_max_per_network",
            o.tcp_max_per_network != n.tcp_max_per_network,
        ),
        ("user", o.user != n.user),
        ("group", o.group != n.group),
    ] {
        if changed {
            out.push(format!(
                "[server] {key} changed: takes effect after a restart"
            ));
        }
    }
    if new.config.dnstap != old.config.dnstap {
        tracing::warn!("[dnstap] changed: takes effect after a restart");
    }
    if new.config.api.as_ref().map(|a| a.listen) != old.config.api.as_ref().map(|a| a.listen) {
        out.push(
            "[api] listen changed: takes effect after a restart (the token applies now)".into(),
        );
    }
    out
}

/// The serial to serve for `z`: the checkpointed or running one while the
/// zone is unchanged, raised past it when the content or its routes changed.
fn serial_for(
    old: Option<&Base>,
    serials: &[u32],
    new: &Base,
    z: &crate::zone::Zone,
    saved: &Checkpoint,
) -> u32 {
    let file = z.file_serial();
    // New signatures are new content: secondaries must fetch them.
    let resigned = z.signed.as_ref().is_some_and(|s| s.fresh);
    let Some(old) = old else {
        return match saved.serials.get(&z.origin.to_string()) {
            Some(&s) if resigned && !serial_gt(file, s) => next_serial(s),
            Some(&s) if serial_gt(s, file) => s,
            _ => file,
        };
    };
    let Some(i) = old.zones.iter().position(|o| o.origin == z.origin) else {
        return file;
    };
    let served = serials[i];
    let routes = |b: &Base| {
        let zi = b.zones.iter().position(|x| x.origin == z.origin);
        format!(
            "{:?}",
            b.config
                .routes
                .iter()
                .filter(|r| Some(r.zone) == zi)
                .collect::<Vec<_>>()
        )
    };
    let changed =
        old.zones[i].content_hash != z.content_hash || routes(old) != routes(new) || resigned;
    if !changed {
        served
    } else if serial_gt(file, served) {
        file
    } else {
        if old.zones[i].content_hash != z.content_hash && file == old.zones[i].file_serial() {
            tracing::warn!(
                "zone {}: content changed but its SOA serial ({file}) did not; serving serial {}",
                z.origin,
                next_serial(served)
            );
        }
        next_serial(served)
    }
}

pub(super) fn load_checkpoint(base: &Base) -> Checkpoint {
    match &base.config.server.state_dir {
        Some(dir) => checkpoint::load(dir).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: unreadable checkpoint ignored: {e}",
                checkpoint::path(dir).display()
            );
            Checkpoint::default()
        }),
        None => Checkpoint::default(),
    }
}

/// A check's state before any probe, from the checkpoint by its name (with
/// `initial = last-known`) by the same rules as an edit, else `initial`.
fn initial_health(c: &CheckConfig, saved: &Checkpoint, now: SystemTime) -> (CheckHealth, Start) {
    let restored = saved
        .checks
        .get(&c.name)
        .filter(|s| c.initial == Initial::LastKnown && s.state != State::Unknown);
    match (restored, c.initial) {
        (Some(s), _) => {
            let h = CheckHealth {
                since: checkpoint::from_epoch_secs(s.since),
                reason: format!("restored from checkpoint: {}", s.reason),
                ..CheckHealth::new(s.state, now)
            };
            let same_target = s.definition == checkpoint::fingerprint(&c.definition())
                || s.target == checkpoint::fingerprint(&c.target());
            if same_target {
                let h = CheckHealth {
                    established: !s.assumed,
                    ..h
                };
                (h, Start::Resume(0))
            } else {
                provisional(c, &h, now)
            }
        }
        (None, Initial::Up) => (CheckHealth::new(State::Up, now), Start::Resume(0)),
        (None, Initial::Down) => (CheckHealth::new(State::Down, now), Start::Resume(0)),
        (None, Initial::LastKnown) => (CheckHealth::new(State::Unknown, now), Start::Resume(0)),
    }
}

/// Config file, zone files and their includes (reload); the [geo] files.
pub(super) fn watched_files(base: &Base) -> watch::WatchSet {
    let mut reload = vec![base.config.path.clone()];
    for z in &base.zones {
        reload.extend(z.files.iter().cloned());
    }
    let geo = &base.config.geo;
    let geo = [&geo.database, &geo.networks]
        .into_iter()
        .flatten()
        .map(|(p, _)| p.clone())
        .collect();
    watch::WatchSet { reload, geo }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
