//! The controller: the single writer. It owns health state, overrides and
//! the prober guard, turns probe reports and operator input into route
//! decisions, raises SOA serials and publishes snapshots. Nothing else
//! builds or publishes state.
//!
//! ```text
//! probe tasks ──Report──┐
//! admin-state watcher ──┼──> Controller ──> decide() per route ──> slots ──> Store::publish
//! override expiry ──────┘        └──> checkpoint (state_dir/health.json)
//! ```

pub mod build;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::config::{CheckKind, Initial};
use crate::geo::Geo;
use crate::health::checkpoint::{self, Checkpoint, Saved};
use crate::health::guard::Guard;
use crate::health::overrides::{self, Override};
use crate::health::scheduler::{Plan, Report};
use crate::health::{CheckHealth, State};
use crate::route::{Decision, View, decide};
use crate::store::{Dyn, Snapshot, Store};
use build::{Base, route_slot, soa_slots};

/// The admin-state file's name inside `state_dir`.
pub const ADMIN_STATE: &str = "admin-state";

/// Operator input for the controller.
#[derive(Debug)]
pub enum Command {
    /// The admin-state file may have changed.
    AdminStateChanged,
    /// A `[geo]` file (database or networks map) may have changed.
    GeoChanged,
}

/// The single writer of served state.
pub struct Controller {
    base: Arc<Base>,
    store: Option<Arc<Store>>,
    health: Vec<CheckHealth>,
    /// For each probe, the checks sharing it (identical definitions).
    probes: Vec<Vec<usize>>,
    overrides: Vec<Override>,
    guard: Guard,
    decisions: Vec<Option<Decision>>,
    slots: Vec<Arc<Dyn>>,
    serials: Vec<u32>,
    generation: u64,
    /// Write the checkpoint (false for `veer explain`).
    persist: bool,
    /// Client locations; replaced when the `[geo]` files change.
    geo: Option<Arc<Geo>>,
}

impl Controller {
    /// The controller for `base`: restores checkpointed states (for checks
    /// whose definition is unchanged), applies `initial` otherwise, reads
    /// the admin-state file, and computes the first snapshot. Returns the
    /// probes to run.
    pub fn new(base: Arc<Base>) -> (Controller, Vec<Plan>) {
        Self::build(base, true)
    }

    /// A controller that never writes the checkpoint, for `veer explain`:
    /// the checkpointed states, or with `down`, every probed check up
    /// except these. Fails on a name that is not a check.
    pub fn offline(base: Arc<Base>, down: Option<&[String]>) -> Result<Controller, String> {
        let (mut c, _) = Self::build(base, false);
        if let Some(down) = down {
            let checks = &c.base.config.checks;
            if let Some(bad) = down.iter().find(|d| !checks.iter().any(|k| &k.name == *d)) {
                return Err(format!("--down {bad}: no such check"));
            }
            for (i, k) in checks.iter().enumerate() {
                let state = if down.contains(&k.name) {
                    State::Down
                } else {
                    State::Up
                };
                c.health[i].observed = state;
                c.health[i].pending = false;
                c.health[i].reason = "given on the command line".into();
            }
            // A named calculated check is forced down like an override.
            c.overrides = checks
                .iter()
                .filter(|k| matches!(k.kind, CheckKind::Calculated { .. }))
                .filter(|k| down.contains(&k.name))
                .map(|k| Override {
                    check: k.name.clone(),
                    state: State::Down,
                    until: None,
                    reason: "--down".into(),
                })
                .collect();
            // Decide every route afresh, so each path reflects these states.
            c.decisions.iter_mut().for_each(|d| *d = None);
            c.rebuild(SystemTime::now(), false);
        }
        Ok(c)
    }

    /// Each route's current decision, in config order.
    pub fn decisions(&self) -> &[Option<Decision>] {
        &self.decisions
    }

    fn build(base: Arc<Base>, persist: bool) -> (Controller, Vec<Plan>) {
        let now = SystemTime::now();
        let config = &base.config;
        let saved = match &config.server.state_dir {
            Some(dir) => checkpoint::load(dir).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: unreadable checkpoint ignored: {e}",
                    checkpoint::path(dir).display()
                );
                Checkpoint::default()
            }),
            None => Checkpoint::default(),
        };
        let mut health = Vec::new();
        for c in &config.checks {
            let restored = saved.checks.get(&c.name).filter(|s| {
                c.initial == Initial::LastKnown
                    && s.definition == checkpoint::fingerprint(&c.definition())
            });
            let h = match (restored, c.initial) {
                (Some(s), _) => CheckHealth {
                    since: checkpoint::from_epoch_secs(s.since),
                    reason: format!("restored from checkpoint: {}", s.reason),
                    ..CheckHealth::new(s.state, now)
                },
                (None, Initial::Up) => CheckHealth::new(State::Up, now),
                (None, Initial::Down) => CheckHealth::new(State::Down, now),
                (None, Initial::LastKnown) => CheckHealth::new(State::Unknown, now),
            };
            health.push(h);
        }
        // Identical definitions share one probe.
        let mut probes: Vec<Vec<usize>> = Vec::new();
        let mut plans: Vec<Plan> = Vec::new();
        for (i, c) in config.checks.iter().enumerate() {
            if matches!(c.kind, CheckKind::Calculated { .. }) {
                continue;
            }
            match plans
                .iter()
                .position(|p| p.check.definition() == c.definition())
            {
                Some(p) => probes[p].push(i),
                None => {
                    probes.push(vec![i]);
                    plans.push(Plan {
                        check: c.clone(),
                        initial: health[i].observed,
                    });
                }
            }
        }
        let serials = base
            .zones
            .iter()
            .map(|z| {
                let file = z.file_serial();
                match saved.serials.get(&z.origin.to_string()) {
                    Some(&s) if serial_gt(s, file) => s,
                    _ => file,
                }
            })
            .collect();
        let h = &config.health;
        let mut c = Controller {
            guard: Guard::new(h.guard_share, h.guard_window, h.guard_min_checks),
            decisions: vec![None; config.routes.len()],
            slots: (0..base.slot_count)
                .map(|_| Arc::new(Dyn::NoData))
                .collect(),
            base,
            store: None,
            persist,
            geo: None,
            health,
            probes,
            overrides: Vec::new(),
            serials,
            generation: 0,
        };
        c.geo = c.base.geo.clone();
        c.read_admin_state(now);
        for (i, z) in c.base.zones.iter().enumerate() {
            let [soa, neg] = soa_slots(z, c.serials[i]);
            c.slots[z.soa_slot] = Arc::new(soa);
            c.slots[z.soa_slot + 1] = Arc::new(neg);
        }
        c.rebuild(now, false);
        (c, plans)
    }

    /// The snapshot for the current state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(
            self.generation,
            self.base.zones.iter().cloned(),
            self.slots.clone(),
            self.base.config.server.max_udp_payload,
        )
    }

    /// Health of every check, in config order.
    pub fn health(&self) -> &[CheckHealth] {
        &self.health
    }

    /// Runs until both channels close, publishing into `store`.
    pub async fn run(
        mut self,
        store: Arc<Store>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        self.store = Some(store);
        loop {
            let now = SystemTime::now();
            let expiry = self.next_expiry(now);
            tokio::select! {
                r = reports.recv() => {
                    let Some(r) = r else { return };
                    let mut transitions = self.apply(r);
                    // Coalesce: everything already queued goes into one snapshot.
                    while let Ok(r) = reports.try_recv() {
                        transitions |= self.apply(r);
                    }
                    self.rebuild(SystemTime::now(), transitions);
                }
                // Without a state_dir nobody sends commands and the channel
                // closes at once: that disables this branch, it must not
                // stop the controller (probe reports keep coming).
                Some(c) = commands.recv() => {
                    // Editors write in bursts: let it settle, then read once.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let (mut admin, mut geo) = (false, false);
                    for c in std::iter::once(c).chain(std::iter::from_fn(|| commands.try_recv().ok())) {
                        match c {
                            Command::AdminStateChanged => admin = true,
                            Command::GeoChanged => geo = true,
                        }
                    }
                    let now = SystemTime::now();
                    let mut changed = admin && self.read_admin_state(now);
                    if geo {
                        changed |= self.reload_geo().await;
                    }
                    if changed {
                        self.rebuild(now, true);
                    }
                }
                _ = sleep_for(expiry) => {
                    self.rebuild(SystemTime::now(), true);
                }
            }
        }
    }

    /// Applies one probe report; true if a check's observed state changed.
    fn apply(&mut self, r: Report) -> bool {
        let checks = self.probes[r.probe].clone();
        let mut changed = false;
        for c in checks {
            let name = &self.base.config.checks[c].name;
            let h = &mut self.health[c];
            h.pending = r.pending;
            h.latency = Some(r.outcome.latency);
            let Some(t) = &r.transition else { continue };
            let forced = self
                .overrides
                .iter()
                .find(|o| &o.check == name && o.active(t.at));
            match forced {
                Some(o) => tracing::info!(
                    "check {name}: {} -> {} ({}); forced {} by override, so routes keep using {}",
                    t.from,
                    t.to,
                    t.reason,
                    o.state,
                    o.state
                ),
                None => tracing::info!("check {name}: {} -> {} ({})", t.from, t.to, t.reason),
            }
            h.observed = t.to;
            h.since = t.at;
            h.reason = t.reason.clone();
            changed = true;
            let observed: Vec<Option<State>> = self
                .base
                .config
                .checks
                .iter()
                .zip(&self.health)
                .map(|(k, h)| {
                    (!matches!(k.kind, CheckKind::Calculated { .. })).then_some(h.observed)
                })
                .collect();
            let current: Vec<State> = self.health.iter().map(|h| h.effective).collect();
            match self
                .guard
                .observe(c, t.from, t.to, t.at, &observed, &current)
            {
                Some(true) => tracing::error!(
                    "prober guard: more than {:.0}% of {} checks went down within {}; the likelier fault is this prober's own network, so the last states are kept until probes recover or an operator overrides",
                    self.base.config.health.guard_share * 100.0,
                    observed.iter().flatten().count(),
                    humantime::format_duration(self.base.config.health.guard_window)
                ),
                Some(false) => tracing::warn!(
                    "prober guard lifted: probes recovered; routes follow probe results again"
                ),
                None => {}
            }
        }
        changed
    }

    /// Recomputes effective states and route decisions; publishes a new
    /// snapshot if any answer changed. `checkpoint` asks for the states to
    /// be saved.
    fn rebuild(&mut self, now: SystemTime, checkpoint: bool) {
        self.recompute_effective(now);
        let config = &self.base.config;
        let mut zone_changed = vec![false; self.base.zones.len()];
        // Children before parents: a parent sees its children's fresh
        // health bits and slots, and is rebuilt when a child's slot changed.
        let mut route_healthy: Vec<bool> = self
            .decisions
            .iter()
            .map(|d| d.as_ref().is_none_or(|d| d.healthy))
            .collect();
        let mut replaced = vec![false; config.routes.len()];
        for &i in &config.route_order {
            let route = &config.routes[i];
            let view = View {
                checks: &self.health,
                routes: &route_healthy,
            };
            let d = decide(route, &view);
            let same = self.decisions[i].as_ref().is_some_and(|old| {
                old.chosen == d.chosen && old.ttl == d.ttl && old.healthy == d.healthy
            });
            let child_replaced = route
                .members
                .iter()
                .any(|m| m.route.is_some_and(|c| replaced[c]));
            if same && !child_replaced {
                continue;
            }
            if self.decisions[i].is_some() {
                tracing::debug!(
                    "route {} {}: {}",
                    route.name,
                    route.rtype,
                    d.path.join("; ")
                );
                zone_changed[route.zone] = true;
            }
            self.slots[self.base.route_slots[i]] = Arc::new(route_slot(
                &self.base,
                self.geo.as_ref(),
                i,
                &d,
                &self.slots,
            ));
            route_healthy[i] = d.healthy;
            replaced[i] = true;
            self.decisions[i] = Some(d);
        }
        // A route rebuilt without a zone change (new location data) is
        // published too.
        let any =
            zone_changed.iter().any(|&c| c) || replaced.iter().any(|&r| r) || self.generation == 0;
        for (z, changed) in zone_changed.into_iter().enumerate() {
            if changed {
                self.serials[z] = next_serial(self.serials[z]);
                let zone = &self.base.zones[z];
                let [soa, neg] = soa_slots(zone, self.serials[z]);
                self.slots[zone.soa_slot] = Arc::new(soa);
                self.slots[zone.soa_slot + 1] = Arc::new(neg);
            }
        }
        if any {
            self.generation += 1;
            if let Some(store) = &self.store {
                store.publish(self.snapshot());
            }
        }
        if self.persist && (checkpoint || any) {
            self.save_checkpoint();
        }
    }

    /// effective = override, else (guard freeze or observed); calculated
    /// checks from their children's effective states.
    fn recompute_effective(&mut self, now: SystemTime) {
        let checks = &self.base.config.checks;
        let frozen = self.guard.frozen().map(|f| f.to_vec());
        let forced = |name: &str| {
            self.overrides
                .iter()
                .find(|o| o.check == name && o.active(now))
        };
        for (i, c) in checks.iter().enumerate() {
            if matches!(c.kind, CheckKind::Calculated { .. }) {
                continue;
            }
            let real = frozen.as_ref().map_or(self.health[i].observed, |f| f[i]);
            let h = &mut self.health[i];
            match forced(&c.name) {
                Some(o) => (h.effective, h.forced) = (o.state, true),
                None => (h.effective, h.forced) = (real, false),
            }
        }
        // Calculated checks may depend on each other (cycles are rejected at
        // load): iterate until nothing moves.
        for _ in 0..=checks.len() {
            let mut moved = false;
            for (i, c) in checks.iter().enumerate() {
                let CheckKind::Calculated {
                    children,
                    min_healthy,
                } = &c.kind
                else {
                    continue;
                };
                let healthy = children
                    .iter()
                    .filter(|&&ch| self.health[ch].effective.eligible())
                    .count();
                let observed = if healthy >= *min_healthy as usize {
                    State::Up
                } else {
                    State::Down
                };
                let (effective, is_forced) = match forced(&c.name) {
                    Some(o) => (o.state, true),
                    None => (observed, false),
                };
                let h = &mut self.health[i];
                if h.observed != observed {
                    if h.observed != State::Unknown || observed == State::Down {
                        tracing::info!(
                            "check {}: {} -> {} ({healthy} of {} children healthy, need {min_healthy})",
                            c.name,
                            h.observed,
                            observed,
                            children.len()
                        );
                    }
                    h.reason = format!(
                        "{healthy} of {} children healthy, need {min_healthy}",
                        children.len()
                    );
                    h.observed = observed;
                    h.since = now;
                }
                if (h.effective, h.forced) != (effective, is_forced) {
                    (h.effective, h.forced) = (effective, is_forced);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Reads the admin-state file; true if the overrides changed. A file
    /// with any error is rejected whole and the current overrides stay.
    fn read_admin_state(&mut self, now: SystemTime) -> bool {
        let Some(dir) = &self.base.config.server.state_dir else {
            return false;
        };
        let path = dir.join(ADMIN_STATE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::error!("{}: {e}; the current overrides stay", path.display());
                return false;
            }
        };
        let checks = &self.base.config.checks;
        let parsed = overrides::parse(&path, &text, |n| checks.iter().any(|c| c.name == n));
        let new = match parsed {
            Ok(o) => o,
            Err(errors) => {
                for e in errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    "{}: rejected whole; the current overrides stay",
                    path.display()
                );
                return false;
            }
        };
        if new == self.overrides {
            return false;
        }
        for o in &new {
            let real = checks
                .iter()
                .position(|c| c.name == o.check)
                .map(|i| self.health[i].observed);
            let until = o
                .until
                .map(|u| format!(" until {}", humantime::format_rfc3339_seconds(u)))
                .unwrap_or_default();
            let active = if o.active(now) {
                ""
            } else {
                " (already expired)"
            };
            tracing::info!(
                "check {}: forced {}{until} by the admin-state file{active} ({}); real state {}",
                o.check,
                o.state,
                if o.reason.is_empty() {
                    "no reason given"
                } else {
                    &o.reason
                },
                real.map_or("unknown".to_string(), |s| s.to_string())
            );
        }
        for o in &self.overrides {
            if !new.iter().any(|n| n.check == o.check) {
                tracing::info!("check {}: override removed", o.check);
            }
        }
        self.overrides = new;
        if self.guard.frozen().is_some() {
            tracing::warn!("prober guard lifted by the operator's override");
            self.guard.lift();
        }
        true
    }

    /// Re-reads the `[geo]` files; on success the routes that use client
    /// locations are rebuilt with them. A file that does not load changes
    /// nothing (the previous data keeps serving) and says why.
    async fn reload_geo(&mut self) -> bool {
        let config = self.base.config.geo.clone();
        let path = self.base.config.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Geo::load(&config, &path)).await;
        match loaded {
            Ok(Ok(geo)) => {
                tracing::info!("[geo] files reloaded");
                self.geo = Some(Arc::new(geo));
                for (i, r) in self.base.config.routes.iter().enumerate() {
                    if r.policy.needs_location() {
                        self.decisions[i] = None;
                    }
                }
                true
            }
            Ok(Err(d)) => {
                for e in &d.0 {
                    tracing::error!("{e}");
                }
                tracing::error!("[geo] reload rejected; the previous location data stays");
                false
            }
            Err(e) => {
                tracing::error!("[geo] reload failed: {e}");
                false
            }
        }
    }

    /// When the next override expires.
    fn next_expiry(&self, now: SystemTime) -> Option<Duration> {
        self.overrides
            .iter()
            .filter_map(|o| o.until)
            .filter_map(|u| u.duration_since(now).ok())
            .filter(|d| !d.is_zero())
            .min()
    }

    fn save_checkpoint(&self) {
        let Some(dir) = &self.base.config.server.state_dir else {
            return;
        };
        let config = &self.base.config;
        let c = Checkpoint {
            checks: config
                .checks
                .iter()
                .zip(&self.health)
                .filter(|(_, h)| h.observed != State::Unknown)
                .map(|(c, h)| {
                    let saved = Saved {
                        state: h.observed,
                        definition: checkpoint::fingerprint(&c.definition()),
                        since: checkpoint::epoch_secs(h.since),
                        reason: h.reason.clone(),
                    };
                    (c.name.clone(), saved)
                })
                .collect(),
            serials: self
                .base
                .zones
                .iter()
                .zip(&self.serials)
                .map(|(z, s)| (z.origin.to_string(), *s))
                .collect(),
        };
        if let Err(e) = checkpoint::save(dir, &c) {
            tracing::warn!("cannot write {}: {e}", checkpoint::path(dir).display());
        }
    }
}

async fn sleep_for(d: Option<Duration>) {
    match d {
        // Wake just after the expiry so `active(now)` is false by then.
        Some(d) => tokio::time::sleep(d + Duration::from_millis(5)).await,
        None => std::future::pending().await,
    }
}

/// RFC 1982 serial arithmetic: `a` is after `b`.
fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// The next serial (never 0, which some secondaries treat specially).
fn next_serial(s: u32) -> u32 {
    match s.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// The checkpoint directory, if configured.
pub fn state_dir(base: &Base) -> Option<PathBuf> {
    base.config.server.state_dir.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 2));
        assert!(serial_gt(1, u32::MAX));
        assert_eq!(next_serial(u32::MAX), 1);
    }
}
