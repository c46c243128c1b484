//! The controller: the single writer. It owns health state, overrides,
//! the prober guard and the probe tasks; it turns probe reports, reloads
//! and operator input into route decisions, raises SOA serials and
//! publishes snapshots. Nothing else builds or publishes state.
//!
//! ```text
//! probe tasks ──Report───────┐
//! watcher / SIGHUP / API ────┤  Command::Reload: load + validate off-thread,
//!   (Command)                │  reconcile by identity, or keep serving as is
//! admin-state file, API ─────┼──> Controller ──> decide() per route ──> slots ──> Store::publish
//! override expiry ───────────┘        ├──> checkpoint (state_dir/health.json)
//!                                     └──> webhooks (one JSON POST per transition)
//! ```

pub mod build;
mod reconcile;
pub mod status;
pub mod watch;
pub mod webhook;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use crate::config::{self, CheckKind};
use crate::diag::Diagnostics;
use crate::geo::Geo;
use crate::health::checkpoint::{self, Checkpoint, Saved};
use crate::health::guard::Guard;
use crate::health::overrides::{self, Override};
use crate::health::probe::Clients;
use crate::health::scheduler::{Plan, Report};
use crate::health::{CheckHealth, State};
use crate::metrics::ProbeStats;
use crate::route::{Chosen, Decision, View, decide};
use crate::store::{Dyn, Snapshot, Store};
use build::{Base, route_slot, soa_slots};
use status::{
    CheckStatus, ReloadRecord, RouteStatus, Status, TransitionRecord, ZoneStatus, rfc3339,
};

/// The admin-state file's name inside `state_dir`.
pub const ADMIN_STATE: &str = "admin-state";

/// Most transitions kept for the status page.
const RECENT_TRANSITIONS: usize = 100;

/// How long the controller waits for more probe reports before rebuilding.
const COALESCE: Duration = Duration::from_millis(5);

/// Operator input for the controller.
#[derive(Debug)]
pub enum Command {
    /// Re-read the config and zone files; reply with the new generation
    /// or the errors.
    Reload {
        /// Where the result goes (the API waits for it).
        reply: Option<oneshot::Sender<Result<u64, Diagnostics>>>,
    },
    /// The admin-state file may have changed.
    AdminStateChanged,
    /// A `[geo]` file (database or networks map) may have changed.
    GeoChanged,
    /// Set (`Some`) or clear (`None`) the override of a check (the API).
    SetOverride {
        /// The check.
        check: String,
        /// The override.
        set: Option<Override>,
        /// Ok, or why not.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// A running probe task and the checks that share it.
struct Probe {
    id: u64,
    definition: String,
    checks: Vec<usize>,
    stats: Arc<ProbeStats>,
    /// The tracker's last reported streak (carried over a timing edit).
    streak: u32,
    /// None until the runtime has started the task.
    abort: Option<AbortHandle>,
}

/// The single writer of served state.
pub struct Controller {
    base: Arc<Base>,
    health: Vec<CheckHealth>,
    probes: Vec<Probe>,
    /// Probe tasks the last reconcile queued for [`Controller::start_tasks`].
    unspawned: Vec<(u64, Plan)>,
    next_probe: u64,
    overrides: Vec<Override>,
    guard: Guard,
    decisions: Vec<Option<Decision>>,
    slots: Vec<Arc<Dyn>>,
    slot_policy: Arc<[u8]>,
    serials: Vec<u32>,
    generation: u64,
    started: SystemTime,
    transitions: VecDeque<TransitionRecord>,
    transitions_total: u64,
    last_reload: Option<ReloadRecord>,
    reloads: (u64, u64),
    /// One ordered delivery queue per `[[webhook]]` URL (started by `run`).
    webhooks: webhook::Webhooks,
    /// The files whose change triggers a reload (for the watcher).
    files: tokio::sync::watch::Sender<watch::WatchSet>,
    /// (effective, pending) of each check when routes were last decided.
    seen: Vec<(State, bool)>,
    /// To the checkpoint writer task (absent before `run`: writes inline).
    checkpoints: Option<tokio::sync::watch::Sender<Option<Checkpoint>>>,
    /// Write the checkpoint (false for `veer explain`).
    persist: bool,
    /// Client locations; replaced when the `[geo]` files change.
    geo: Option<Arc<Geo>>,
}

impl Controller {
    /// The controller for `base`: restores checkpointed states (for checks
    /// whose definition is unchanged), applies `initial` otherwise, reads
    /// the admin-state file, and computes the first snapshot.
    pub fn new(base: Base) -> Controller {
        Self::build(base, true)
    }

    /// A controller that never writes the checkpoint, for `veer explain`:
    /// the checkpointed states, or with `down`, every probed check up
    /// except these. Fails on a name that is not a check.
    pub fn offline(base: Base, down: Option<&[String]>) -> Result<Controller, String> {
        let mut c = Self::build(base, false);
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

    /// Health of every check, in config order.
    pub fn health(&self) -> &[CheckHealth] {
        &self.health
    }

    /// The config-derived state.
    pub fn base(&self) -> &Base {
        &self.base
    }

    /// Each route's current decision, in config order.
    pub fn decisions(&self) -> &[Option<Decision>] {
        &self.decisions
    }

    fn build(base: Base, persist: bool) -> Controller {
        let now = SystemTime::now();
        let h = &base.config.health;
        let mut c = Controller {
            guard: Guard::new(h.guard_share, h.guard_window, h.guard_min_checks),
            decisions: Vec::new(),
            slots: Vec::new(),
            slot_policy: Arc::new([]),
            files: tokio::sync::watch::channel(reconcile::watched_files(&base)).0,
            base: Arc::new(base),
            health: Vec::new(),
            probes: Vec::new(),
            unspawned: Vec::new(),
            next_probe: 0,
            overrides: Vec::new(),
            serials: Vec::new(),
            generation: 0,
            started: now,
            transitions: VecDeque::new(),
            transitions_total: 0,
            last_reload: None,
            reloads: (0, 0),
            webhooks: webhook::Webhooks::default(),
            seen: Vec::new(),
            checkpoints: None,
            persist,
            geo: None,
        };
        // A start is a reconcile from nothing.
        c.reconcile(None, now);
        c
    }

    /// The snapshot for the current state.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new(
            self.generation,
            self.base.zones.iter().cloned(),
            self.slots.clone(),
            self.base.config.server.max_udp_payload,
        );
        s.slot_policy = self.slot_policy.clone();
        s.api_token = self
            .base
            .config
            .api
            .as_ref()
            .and_then(|a| a.token.as_deref())
            .map(Arc::from);
        s.status = Arc::new(self.status());
        s
    }

    /// The files a watcher should watch (config, zones, includes).
    pub fn watched_files(&self) -> tokio::sync::watch::Receiver<watch::WatchSet> {
        self.files.subscribe()
    }

    /// Runs until the command channel closes, publishing into `store`.
    pub async fn run(
        mut self,
        store: Arc<Store>,
        clients: Clients,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let (report_tx, mut reports) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        if let Some(dir) = self.base.config.server.state_dir.clone() {
            let (tx, rx) = tokio::sync::watch::channel(None);
            self.checkpoints = Some(tx);
            tasks.spawn(write_checkpoints(dir, rx));
        }
        self.start_tasks(&clients, &report_tx, &mut tasks);
        loop {
            let now = SystemTime::now();
            let expiry = self.next_expiry(now);
            tokio::select! {
                Some(r) = reports.recv() => {
                    // Coalesce: reports arriving within a few milliseconds of
                    // each other (a switch failing, a burst after start) go
                    // into one rebuild and one snapshot.
                    tokio::time::sleep(COALESCE).await;
                    let mut transitions = self.apply(r);
                    // Coalesce: everything already queued goes into one snapshot.
                    while let Ok(r) = reports.try_recv() {
                        transitions |= self.apply(r);
                    }
                    self.rebuild(SystemTime::now(), transitions);
                }
                c = commands.recv() => {
                    let Some(c) = c else { break };
                    self.command(c, &store, &mut commands, &clients, &report_tx, &mut tasks).await;
                }
                _ = sleep_for(expiry) => {
                    let now = SystemTime::now();
                    for o in self.overrides.iter().filter(|o| !o.active(now)) {
                        let real = self.base.config.checks.iter().position(|c| c.name == o.check).map(|i| self.health[i].observed);
                        tracing::info!(
                            "check {}: override ({}) expired; routes follow the real state {}",
                            o.check,
                            o.state,
                            real.map_or("unknown".into(), |s| s.to_string())
                        );
                    }
                    self.overrides.retain(|o| o.active(now));
                    self.rebuild(now, true);
                }
            }
            store.publish_if_newer(self.generation, || self.snapshot());
        }
        tasks.abort_all();
    }

    async fn command(
        &mut self,
        c: Command,
        store: &Store,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        clients: &Clients,
        report_tx: &mpsc::UnboundedSender<Report>,
        tasks: &mut JoinSet<()>,
    ) {
        match c {
            Command::Reload { reply } => {
                let result = self.reload(clients, report_tx, tasks).await;
                if let Some(reply) = reply {
                    // Answers change before the caller hears back.
                    store.publish_if_newer(self.generation, || self.snapshot());
                    let _ = reply.send(result);
                }
            }
            Command::AdminStateChanged => {
                // Editors write in bursts: let it settle, then read once.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut again = Vec::new();
                while let Ok(c) = commands.try_recv() {
                    if !matches!(c, Command::AdminStateChanged) {
                        again.push(c);
                    }
                }
                let now = SystemTime::now();
                if self.read_admin_state(now) {
                    self.rebuild(now, true);
                }
                for c in again {
                    Box::pin(self.command(c, store, commands, clients, report_tx, tasks)).await;
                }
            }
            Command::GeoChanged => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if self.reload_geo().await {
                    self.rebuild(SystemTime::now(), true);
                }
            }
            Command::SetOverride { check, set, reply } => {
                let r = self.set_override(&check, set);
                store.publish_if_newer(self.generation, || self.snapshot());
                let _ = reply.send(r);
            }
        }
    }

    /// Loads and validates the config off the async threads; applies it
    /// only if valid. A failed reload changes nothing.
    async fn reload(
        &mut self,
        clients: &Clients,
        report_tx: &mpsc::UnboundedSender<Report>,
        tasks: &mut JoinSet<()>,
    ) -> Result<u64, Diagnostics> {
        let path = self.base.config.path.clone();
        let previous = self.base.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            config::load(&path).and_then(|c| Base::load_after(c, Some(&previous)))
        })
        .await
        .unwrap_or_else(|e| {
            Err(Diagnostics::one(crate::diag::Diagnostic::new(
                &self.base.config.path,
                1,
                format!("reload failed: {e}"),
            )))
        });
        let now = SystemTime::now();
        match loaded {
            Err(d) => {
                for e in &d.0 {
                    tracing::error!("reload rejected: {e}");
                }
                tracing::error!(
                    "reload rejected: still serving generation {}",
                    self.generation
                );
                self.reloads.1 += 1;
                self.last_reload = Some(ReloadRecord {
                    at: rfc3339(now),
                    ok: false,
                    errors: d.0.iter().map(|e| e.to_string()).collect(),
                });
                self.generation += 1; // the status page shows the failure
                Err(d)
            }
            Ok(base) => {
                let old = std::mem::replace(&mut self.base, Arc::new(base));
                self.reconcile(Some(old), now);
                self.start_tasks(clients, report_tx, tasks);
                self.reloads.0 += 1;
                self.last_reload = Some(ReloadRecord {
                    at: rfc3339(now),
                    ok: true,
                    errors: Vec::new(),
                });
                tracing::info!("reload applied: generation {}", self.generation);
                Ok(self.generation)
            }
        }
    }

    /// Applies one probe report; true if a check's observed state changed.
    fn apply(&mut self, r: Report) -> bool {
        let Some(probe) = self.probes.iter_mut().find(|p| p.id == r.probe) else {
            return false; // a probe stopped by a reload
        };
        probe.streak = r.streak;
        let checks = probe.checks.clone();
        let mut changed = false;
        for c in checks {
            let name = self.base.config.checks[c].name.clone();
            let h = &mut self.health[c];
            h.pending = r.pending;
            h.latency = Some(r.outcome.latency);
            let Some(t) = &r.transition else { continue };
            let forced = self
                .overrides
                .iter()
                .find(|o| o.check == name && o.active(t.at));
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
            self.record_transition(&name, t.from, t.to, &t.reason, t.at);
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

    fn record_transition(
        &mut self,
        check: &str,
        from: State,
        to: State,
        reason: &str,
        at: SystemTime,
    ) {
        let rec = TransitionRecord {
            check: check.to_string(),
            from,
            to,
            reason: reason.to_string(),
            at: rfc3339(at),
        };
        self.webhooks.send(&rec);
        self.transitions.push_front(rec);
        self.transitions_total += 1;
        self.transitions.truncate(RECENT_TRANSITIONS);
    }

    /// Fresh slots for the current base (every route re-decided).
    fn reset_slots(&mut self) {
        let base = &self.base;
        self.slots = (0..base.slot_count)
            .map(|_| Arc::new(Dyn::NoData(u32::MAX)))
            .collect();
        let mut policy = vec![0u8; base.slot_count];
        for (i, r) in base.config.routes.iter().enumerate() {
            let label = crate::metrics::POLICIES
                .iter()
                .position(|p| *p == r.policy.name())
                .unwrap_or(0);
            policy[base.route_slots[i]] = label as u8;
        }
        self.slot_policy = policy.into();
        self.decisions = vec![None; base.config.routes.len()];
        for (i, z) in base.zones.iter().enumerate() {
            let [soa, neg] = soa_slots(z, self.serials[i]);
            self.slots[z.soa_slot] = Arc::new(soa);
            self.slots[z.soa_slot + 1] = Arc::new(neg);
        }
        self.generation += 1;
    }

    /// Recomputes effective states and route decisions; raises the serial
    /// of zones whose answers changed. `checkpoint` asks for the states to
    /// be saved. Publishing happens in `run` when the generation moved.
    fn rebuild(&mut self, now: SystemTime, checkpoint: bool) {
        self.recompute_effective(now);
        let config = &self.base.config;
        // Only routes with a member whose check changed are decided again
        // (and their parents, below).
        let mut todo = vec![false; config.routes.len()];
        for (c, h) in self.health.iter().enumerate() {
            if self.seen.get(c) != Some(&(h.effective, h.pending)) {
                for &r in &self.base.routes_of_check[c] {
                    todo[r] = true;
                }
            }
        }
        self.seen = self
            .health
            .iter()
            .map(|h| (h.effective, h.pending))
            .collect();
        let mut zone_changed = vec![false; self.base.zones.len()];
        // Children before parents: a parent sees its children's fresh
        // health bits and slots, and is rebuilt when a child's slot changed.
        let mut route_healthy: Vec<bool> = self
            .decisions
            .iter()
            .map(|d| d.as_ref().is_none_or(|d| d.healthy))
            .collect();
        let mut route_uncertain: Vec<bool> = self
            .decisions
            .iter()
            .map(|d| d.as_ref().is_some_and(|d| d.uncertain))
            .collect();
        let mut replaced = vec![false; config.routes.len()];
        for &i in &config.route_order {
            let route = &config.routes[i];
            let child_replaced = route
                .members
                .iter()
                .any(|m| m.route.is_some_and(|c| replaced[c]));
            if !todo[i] && !child_replaced && self.decisions[i].is_some() {
                continue;
            }
            let view = View {
                checks: &self.health,
                routes: &route_healthy,
                uncertain: &route_uncertain,
            };
            let d = decide(route, &view);
            let old = self.decisions[i].as_ref();
            let same = old.is_some_and(|o| o.same_answer(&d));
            if same && !child_replaced {
                // Same answer; keep the fresh path for explain and the API.
                self.decisions[i] = Some(d);
                continue;
            }
            // The zone's content changed (not only a TTL): raise its serial.
            if old.is_some_and(|o| !o.same_content(&d)) || child_replaced {
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
            route_uncertain[i] = d.uncertain;
            replaced[i] = true;
            self.decisions[i] = Some(d);
        }
        let any = replaced.iter().any(|&r| r);
        let serial_moved = zone_changed.iter().any(|&c| c);
        for (z, changed) in zone_changed.into_iter().enumerate() {
            if changed {
                self.serials[z] = next_serial(self.serials[z]);
                let zone = &self.base.zones[z];
                let [soa, neg] = soa_slots(zone, self.serials[z]);
                self.slots[zone.soa_slot] = Arc::new(soa);
                self.slots[zone.soa_slot + 1] = Arc::new(neg);
            }
        }
        if any || checkpoint {
            self.generation += 1;
        }
        if checkpoint || serial_moved {
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
            // A frozen Unknown holds nothing: the check follows its probe.
            let real = match frozen.as_ref().map(|f| f[i]) {
                Some(State::Unknown) | None => self.health[i].observed,
                Some(held) => held,
            };
            let h = &mut self.health[i];
            match forced(&c.name) {
                Some(o) => (h.effective, h.forced) = (o.state, true),
                None => (h.effective, h.forced) = (real, false),
            }
        }
        // Calculated checks may depend on each other (cycles are rejected at
        // load): iterate until nothing moves.
        let mut records = Vec::new();
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
                    let reason = format!(
                        "{healthy} of {} children healthy, need {min_healthy}",
                        children.len()
                    );
                    tracing::info!(
                        "check {}: {} -> {} ({reason})",
                        c.name,
                        h.observed,
                        observed
                    );
                    records.push((c.name.clone(), h.observed, observed, reason.clone()));
                    h.reason = reason;
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
        for (name, from, to, reason) in records {
            self.record_transition(&name, from, to, &reason, now);
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
        let mut skipped = Vec::new();
        let parsed = overrides::parse(
            &path,
            &text,
            |n| checks.iter().any(|c| c.name == n),
            &mut skipped,
        );
        for w in skipped {
            tracing::warn!("{w}");
        }
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
        self.replace_overrides(new, now, "the admin-state file")
    }

    fn replace_overrides(&mut self, new: Vec<Override>, now: SystemTime, source: &str) -> bool {
        if new == self.overrides {
            return false;
        }
        let checks = &self.base.config.checks;
        for o in &new {
            if self.overrides.contains(o) {
                continue;
            }
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
                "check {}: forced {}{until} by {source}{active} ({}); real state {}",
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

    /// The API's override: applied at once and written to the admin-state
    /// file (when there is a state_dir), which stays the one source of truth.
    fn set_override(&mut self, check: &str, set: Option<Override>) -> Result<(), String> {
        if !self.base.config.checks.iter().any(|c| c.name == check) {
            return Err(format!("`{check}` is not a configured check"));
        }
        let mut new: Vec<Override> = self
            .overrides
            .iter()
            .filter(|o| o.check != check)
            .cloned()
            .collect();
        if let Some(o) = set {
            new.push(o);
        }
        if let Some(dir) = &self.base.config.server.state_dir {
            let mut text = String::from(
                "# CHECK = up|down [until RFC3339] [# reason]; also written by the API\n",
            );
            for o in &new {
                text.push_str(&format!("{} = {}", o.check, o.state));
                if let Some(u) = o.until {
                    text.push_str(&format!(" until {}", humantime::format_rfc3339_seconds(u)));
                }
                if !o.reason.is_empty() {
                    text.push_str(&format!(" # {}", o.reason.replace('\n', " ")));
                }
                text.push('\n');
            }
            // Durably: an override the API acknowledged survives a crash.
            crate::durable::replace(dir, ADMIN_STATE, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", dir.join(ADMIN_STATE).display()))?;
        }
        let now = SystemTime::now();
        if self.replace_overrides(new, now, "the API") {
            self.rebuild(now, true);
        }
        Ok(())
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

    /// When the next override expires (zero if one already has: the
    /// expiry branch then drops it and rebuilds).
    fn next_expiry(&self, now: SystemTime) -> Option<Duration> {
        self.overrides
            .iter()
            .filter_map(|o| o.until)
            .map(|u| u.duration_since(now).unwrap_or(Duration::ZERO))
            .min()
    }

    /// Hands the states to the checkpoint writer (inline before `run`).
    fn save_checkpoint(&self) {
        if !self.persist {
            return;
        }
        let Some(dir) = &self.base.config.server.state_dir else {
            return;
        };
        let config = &self.base.config;
        let c = Checkpoint {
            checks: config
                .checks
                .iter()
                .zip(&self.health)
                .zip(&self.base.fingerprints)
                .filter(|((_, h), _)| h.observed != State::Unknown)
                .map(|((c, h), (definition, target))| {
                    let saved = Saved {
                        state: h.observed,
                        definition: definition.clone(),
                        target: target.clone(),
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
            guard: self.guard.save(
                &config
                    .checks
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
            ),
        };
        match &self.checkpoints {
            Some(tx) => {
                tx.send_replace(Some(c));
            }
            None => {
                if let Err(e) = checkpoint::save(dir, &c) {
                    tracing::warn!("cannot write {}: {e}", checkpoint::path(dir).display());
                }
            }
        }
    }

    /// The API's view of the current state.
    fn status(&self) -> Status {
        let config = &self.base.config;
        let now = SystemTime::now();
        let checks = config
            .checks
            .iter()
            .zip(&self.health)
            .enumerate()
            .map(|(i, (c, h))| {
                let o = self
                    .overrides
                    .iter()
                    .find(|o| o.check == c.name && o.active(now));
                let probe = self.probes.iter().find(|p| p.checks.contains(&i));
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
                }
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .zip(&self.decisions)
            .map(|(r, d)| {
                let d = d.as_ref();
                let (answer, outcome) = match d.map(|d| &d.chosen) {
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
                };
                RouteStatus {
                    name: r.name.to_string(),
                    rtype: r.rtype.to_string(),
                    policy: r.policy.name().to_string(),
                    answer,
                    outcome: outcome.to_string(),
                    healthy: d.is_some_and(|d| d.healthy),
                    ttl: d.map_or(r.ttl, |d| d.ttl),
                    path: d.map(|d| d.path.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let zones = self
            .base
            .zones
            .iter()
            .zip(&self.serials)
            .map(|(z, &serial)| ZoneStatus {
                origin: z.origin.to_string(),
                serial,
                records: z.records,
                stats: Some(z.stats.clone()),
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
        }
    }
}

/// Writes the latest checkpoint off the controller's thread; a burst of
/// transitions ends in one write of the last state.
async fn write_checkpoints(dir: PathBuf, mut rx: tokio::sync::watch::Receiver<Option<Checkpoint>>) {
    while rx.changed().await.is_ok() {
        let Some(c) = rx.borrow_and_update().clone() else {
            continue;
        };
        let dir = dir.clone();
        let result =
            tokio::task::spawn_blocking(move || checkpoint::save(&dir, &c).map_err(|e| (e, dir)))
                .await;
        if let Ok(Err((e, dir))) = result {
            tracing::warn!("cannot write {}: {e}", checkpoint::path(&dir).display());
        }
    }
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

async fn sleep_for(d: Option<Duration>) {
    match d {
        // Wake just after the expiry so `active(now)` is false by then.
        Some(d) if d.is_zero() => {}
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
