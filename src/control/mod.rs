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
//!
//! - `reconcile`: the only place a config becomes running state.
//! - `effective`: probe reports, overrides and the guard into effective health.
//! - `build`: a config's zones and route slots, and a decision's slot content.
//! - `decide`: route decisions into slots, children before parents; serials.
//! - `persist`: the checkpoint. `view`: the API's status view.
//! - `watch`: file watching. `webhook`: one ordered delivery queue per URL.

pub mod build;
mod decide;
pub mod diff;
mod effective;
mod fleet;
mod persist;
mod reconcile;
mod secondary;
mod view;
pub mod watch;
pub mod webhook;
mod xfr;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use crate::config::CheckKind;
use crate::diag::Diagnostics;
use crate::geo::Geo;
use crate::health::checkpoint::Checkpoint;
use crate::health::guard::Guard;
use crate::health::overrides::Override;
use crate::health::probe::Clients;
use crate::health::scheduler::{Plan, Report};
use crate::health::{CheckHealth, State};
use crate::metrics::ProbeStats;
use crate::route::Decision;
use crate::status::{ReloadRecord, TransitionRecord, rfc3339};
use crate::store::{Dyn, Snapshot, Store};
use build::Base;

/// The admin-state file's name inside `state_dir`.
pub const ADMIN_STATE: &str = "admin-state";

/// Most transitions kept for the status page.
const RECENT_TRANSITIONS: usize = 100;

/// How long the controller waits for more probe reports before rebuilding.
const COALESCE: Duration = Duration::from_millis(5);

/// Appends `item` to `ring`, dropping what is older than the page's window
/// (relative to `now`) and the oldest past `max`.
fn push_recent<T>(
    ring: &mut VecDeque<T>,
    item: T,
    max: usize,
    at: impl Fn(&T) -> SystemTime,
    now: SystemTime,
) {
    let horizon = now.checked_sub(crate::status::HISTORY_WINDOW);
    while ring
        .front()
        .is_some_and(|f| ring.len() >= max || horizon.is_some_and(|h| at(f) < h))
    {
        ring.pop_front();
    }
    ring.push_back(item);
}

/// Why an override was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// No check of that name is configured.
    #[error("`{0}` is not a configured check")]
    UnknownCheck(String),
    /// `fleet = true` on an instance without `[fleet]`.
    #[error("this instance is not one of a fleet: no [fleet] in its config")]
    NoFleet,
    /// The admin-state file could not be written; nothing changed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The admin-state file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Operator input for the controller.
#[derive(Debug)]
pub enum Command {
    /// Re-read the config and zone files; reply with the new generation
    /// or the errors.
    Reload {
        /// Where the result goes (the API waits for it).
        reply: Option<oneshot::Sender<Result<u64, Diagnostics>>>,
    },
    /// Load the config at `path` (None: the running config's file as it
    /// is on disk now) and compare it with the running one, changing
    /// nothing; reply with the changes or the load errors.
    Diff {
        /// The config file to compare.
        path: Option<std::path::PathBuf>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<diff::ReloadDiff, Diagnostics>>,
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
        /// Made for the whole fleet (`fleet = true`), not this instance only.
        fleet: bool,
        /// Ok, or why not.
        reply: oneshot::Sender<Result<(), OverrideError>>,
    },
    /// Liveness: answered with the generation in force (the systemd
    /// watchdog pings only once the controller answers).
    Ping {
        /// Where the generation goes.
        reply: oneshot::Sender<u64>,
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
    /// Starts and pauses the task (in a fleet; None: it always runs).
    activity: Option<tokio::sync::watch::Sender<crate::health::scheduler::Activity>>,
}

impl Probe {
    /// Whether the task probes (a fleet may have paused it).
    fn probing(&self) -> bool {
        self.activity
            .as_ref()
            .is_none_or(|a| a.borrow().seed.is_some())
    }
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
    /// Each check's recent transitions, by name (the status page's timeline).
    check_history: rustc_hash::FxHashMap<String, VecDeque<crate::status::StateChange>>,
    /// Each route's recent answer changes, by (name, type).
    answer_changes: rustc_hash::FxHashMap<(String, String), VecDeque<crate::status::AnswerChange>>,
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
    /// Each zone's transfer state as last published.
    xfr: rustc_hash::FxHashMap<hickory_proto::rr::Name, Arc<crate::xfr::ZoneXfr>>,
    /// The NOTIFY tasks (started by `run`).
    notifier: Option<crate::xfr::notify::Notifier>,
    /// What they report, in every snapshot from the first.
    notify_status: Arc<crate::xfr::notify::NotifyStatus>,
    /// Secondary zones that answer SERVFAIL (expired, or never fetched).
    expired: rustc_hash::FxHashSet<hickory_proto::rr::Name>,
    /// The secondary zones' tasks (started by `run`).
    secondaries: secondary::Secondaries,
    /// Where those tasks send fetched zones (set by `run`).
    secondary_updates: Option<mpsc::UnboundedSender<crate::xfr::secondary::Update>>,
    /// This instance's part in a fleet (`[fleet]`; never for `veer explain`).
    fleet: Option<fleet::Fleet>,
    /// After a failed re-signing: not again before this.
    resign_retry: Option<SystemTime>,
}

impl Controller {
    /// The controller for `base`: a reconcile from nothing (checkpointed
    /// states by check name, `initial` otherwise, the admin-state file),
    /// and the first snapshot.
    pub fn new(base: Base) -> Controller {
        Self::build(base, true)
    }

    /// A controller that never writes the checkpoint, for `veer explain`:
    /// the checkpointed states, or with `down`, every probed check up
    /// except these. Fails on a name that is not a check.
    pub fn offline(base: Base, down: Option<&[String]>) -> Result<Controller, OverrideError> {
        let mut c = Self::build(base, false);
        if let Some(down) = down {
            let checks = &c.base.config.checks;
            if let Some(bad) = down.iter().find(|d| !checks.iter().any(|k| &k.name == *d)) {
                return Err(OverrideError::UnknownCheck(bad.clone()));
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
        let expired = secondary::expired_at_start(&base);
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
            check_history: Default::default(),
            answer_changes: Default::default(),
            last_reload: None,
            reloads: (0, 0),
            webhooks: webhook::Webhooks::default(),
            seen: Vec::new(),
            checkpoints: None,
            persist,
            geo: None,
            xfr: Default::default(),
            notifier: None,
            notify_status: Arc::default(),
            expired,
            secondaries: secondary::Secondaries::default(),
            secondary_updates: None,
            fleet: None,
            resign_retry: None,
        };
        if persist {
            let dir = c.base.config.server.state_dir.clone();
            c.fleet = c
                .base
                .config
                .fleet
                .clone()
                .map(|f| fleet::Fleet::new(f, dir.as_deref()));
        }
        // A start is a reconcile from nothing.
        c.reconcile(None, now);
        c.refresh_xfr();
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
        s.cookies = self.base.config.cookies.clone().map(Arc::new);
        s.rrl = Arc::new(self.base.config.rrl.clone());
        s.api_token = self
            .base
            .config
            .api
            .as_ref()
            .and_then(|a| a.token.as_deref())
            .map(Arc::from);
        s.status = Arc::new(self.status());
        s.xfr = self.xfr_snapshot();
        s
    }

    /// Publishes the current state if `store` holds an older generation,
    /// bringing the transfer state (journal, NOTIFY) up to date first.
    fn publish(&mut self, store: &Store) {
        if store.generation() < self.generation {
            let changed = self.refresh_xfr();
            store.publish(self.snapshot());
            self.notify(&changed);
        }
    }

    /// Every DNSSEC key file of the signed zones.
    pub fn key_files(&self) -> Vec<std::path::PathBuf> {
        self.base
            .signers
            .iter()
            .flatten()
            .flat_map(|s| s.keys().iter().flat_map(|k| [k.path.clone(), k.key_path()]))
            .collect()
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
            tasks.spawn(persist::write_checkpoints(dir, rx));
        }
        self.start_tasks(&clients, &report_tx, &mut tasks);
        let (fleet_tx, mut fleet_events) = mpsc::unbounded_channel();
        if let Some(f) = &mut self.fleet {
            f.start_followers(&fleet_tx, &mut tasks);
        }
        let mut tick_period = self.fleet_tick();
        let mut fleet_tick = tick_period.map(ticker);
        // NOTIFY for every zone with targets: a start is a change.
        self.notifier = Some(crate::xfr::notify::Notifier::new(
            self.notify_status.clone(),
        ));
        let all: Vec<_> = self.xfr.keys().cloned().collect();
        self.notify(&all);
        let (update_tx, mut updates) = mpsc::unbounded_channel();
        self.secondaries.update(&self.base, &update_tx);
        self.secondary_updates = Some(update_tx);
        // The snapshot that knows the secondary zones' tasks (NOTIFY in).
        self.generation += 1;
        self.publish(&store);
        loop {
            let now = SystemTime::now();
            let expiry = self.next_expiry(now);
            let resign = self.next_resign(now);
            tokio::select! {
                Some(r) = reports.recv() => {
                    // Coalesce: reports arriving within a few milliseconds of
                    // each other (a switch failing, a burst after start) go
                    // into one rebuild and one snapshot.
                    tokio::time::sleep(COALESCE).await;
                    let transitions = self.apply(r);
                    // Coalesce: everything already queued goes into one snapshot.
                    self.drain(&mut reports, Some(transitions));
                }
                c = commands.recv() => {
                    let Some(c) = c else { break };
                    if matches!(c, Command::Reload { .. }) {
                        // Reports queued by probes a reload may replace are
                        // applied first, so their transitions are not lost
                        // and the new probes start from them.
                        self.drain(&mut reports, None);
                    }
                    self.command(c, &store, &mut commands, &clients, &report_tx, &mut tasks).await;
                    // A reload may change peer_timeout, and so the tick.
                    if self.fleet_tick() != tick_period {
                        tick_period = self.fleet_tick();
                        fleet_tick = tick_period.map(ticker);
                    }
                    // Reap probe tasks a reload aborted.
                    while tasks.try_join_next().is_some() {}
                }
                Some(u) = updates.recv() => {
                    self.secondary_update(u);
                }
                Some(ev) = fleet_events.recv() => {
                    // Coalesce like probe reports: peers answer together.
                    let mut changed = self.fleet_event(ev);
                    while let Ok(ev) = fleet_events.try_recv() {
                        changed |= self.fleet_event(ev);
                    }
                    self.rebuild(SystemTime::now(), changed);
                }
                _ = sleep_for(resign) => {
                    // Signatures are made again before they run out: the
                    // same path as a reload signs every zone and slot now.
                    tracing::info!("dnssec: signatures due for refresh; signing again");
                    self.drain(&mut reports, None);
                    let failed = self.reloads.1;
                    let c = Command::Reload { reply: None };
                    self.command(c, &store, &mut commands, &clients, &report_tx, &mut tasks).await;
                    while tasks.try_join_next().is_some() {}
                    if self.reloads.1 > failed {
                        // The files no longer load (a key gone, a zone
                        // broken): the last good signatures keep serving
                        // until they expire; try again in a while.
                        let wait = (self.base.config.dnssec.refresh / 8).clamp(Duration::from_secs(1), Duration::from_secs(60));
                        tracing::error!("dnssec: signing again failed; next try in {}", humantime::format_duration(wait));
                        self.resign_retry = Some(SystemTime::now() + wait);
                    } else {
                        // The new signatures raised the serials (reconcile).
                        self.resign_retry = None;
                    }
                }
                _ = tick(&mut fleet_tick) => {
                    // A peer going silent is noticed by time alone.
                    self.rebuild(SystemTime::now(), false);
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
            self.publish(&store);
        }
        tasks.abort_all();
    }

    /// Applies every queued report, then rebuilds if any was applied
    /// (`first`: one was already applied, with this transition result).
    fn drain(&mut self, reports: &mut mpsc::UnboundedReceiver<Report>, first: Option<bool>) {
        let mut any = first.is_some();
        let mut transitions = first.unwrap_or(false);
        while let Ok(r) = reports.try_recv() {
            transitions |= self.apply(r);
            any = true;
        }
        if any {
            self.rebuild(SystemTime::now(), transitions);
        }
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
                crate::sdnotify::reload_clock().start();
                crate::sdnotify::reloading();
                let result = self.reload(clients, report_tx, tasks).await;
                if let Some(tx) = &self.secondary_updates {
                    self.secondaries.update(&self.base, tx);
                }
                // Answers change before the log says so, or systemd or the
                // caller hear back: the generation logged is the one served.
                self.publish(store);
                if result.is_ok() {
                    // The previous zones go once queries in flight let go
                    // of the old snapshot.
                    crate::memory::trim_soon();
                }
                self.log_reload(&result);
                crate::sdnotify::reload_clock().end();
                crate::sdnotify::ready(&match &result {
                    Ok(_) => format!("serving generation {}", self.generation),
                    Err(_) => format!("reload rejected; serving generation {}", self.generation),
                });
                if let Some(reply) = reply {
                    let _ = reply.send(result.map(|_| self.generation));
                }
            }
            Command::Diff { path, reply } => {
                // Loaded and compared beside the controller, never in it:
                // a slow or hostile file must not hold up health.
                let running = self.base.clone();
                tokio::spawn(async move {
                    let _ = reply.send(diff_against(running, path).await);
                });
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
                if self.read_admin_state(now, true) {
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
            Command::SetOverride {
                check,
                set,
                fleet,
                reply,
            } => {
                let r = if fleet {
                    self.set_fleet_override(&check, set)
                } else {
                    self.set_override(&check, set)
                };
                self.publish(store);
                let _ = reply.send(r);
            }
            Command::Ping { reply } => {
                let _ = reply.send(self.generation);
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
            let new = Base::load_path(&path, Some(&previous))?;
            let changes = diff::diff(&previous, &new);
            Ok((new, changes))
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
        // The state directory holds the lock, the checkpoint writer and
        // the watchers of this process: it cannot move under them.
        let loaded = loaded.and_then(|(b, changes)| {
            if b.config.server.state_dir == self.base.config.server.state_dir {
                return Ok((b, changes));
            }
            let line = crate::diag::line_of_key(&b.config.path, "state_dir").unwrap_or(1);
            Err(Diagnostics::one(crate::diag::Diagnostic::new(
                &b.config.path,
                line,
                "[server] state_dir cannot change while running: restart to move it",
            )))
        });
        match loaded {
            Err(d) => {
                self.reloads.1 += 1;
                self.last_reload = Some(ReloadRecord {
                    at: rfc3339(now),
                    ok: false,
                    errors: d.0.iter().map(|e| e.to_string()).collect(),
                    diff: None,
                });
                self.generation += 1; // the status page shows the failure
                Err(d)
            }
            Ok((base, changes)) => {
                let old = std::mem::replace(&mut self.base, Arc::new(base));
                self.reconcile_fleet(Some(tasks));
                if old.config.health.source != self.base.config.health.source {
                    tracing::warn!(
                        "[health] source changed: probes keep leaving from {} until a restart",
                        old.config
                            .health
                            .source
                            .map_or("any address".to_string(), |a| a.to_string())
                    );
                }
                self.reconcile(Some(old), now);
                self.start_tasks(clients, report_tx, tasks);
                self.reloads.0 += 1;
                self.last_reload = Some(ReloadRecord {
                    at: rfc3339(now),
                    ok: true,
                    errors: Vec::new(),
                    diff: Some(changes),
                });
                Ok(self.generation)
            }
        }
    }

    /// One summary of a reload, with the generation now published.
    fn log_reload(&self, result: &Result<u64, Diagnostics>) {
        match result {
            Ok(_) => {
                let summary = self
                    .last_reload
                    .as_ref()
                    .and_then(|r| r.diff.as_ref())
                    .map_or_else(|| "no changes".into(), |d| d.summary());
                tracing::info!("reload applied: generation {}: {summary}", self.generation);
            }
            Err(d) => {
                for e in &d.0 {
                    tracing::error!("reload rejected: {e}");
                }
                tracing::error!(
                    "reload rejected: still serving generation {} (the last good config)",
                    self.generation
                );
            }
        }
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
}

/// One diff at a time: each holds a blocking thread while it loads.
static DIFF_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Largest config file a diff reads.
const DIFF_MAX_BYTES: u64 = 16 << 20;

/// `POST /v1/diff`: the config at `path` (default: the running config's
/// file as it is on disk now) loaded and compared with `running`. Only a
/// regular file in the running config's directory or below, of sane
/// size, is read.
async fn diff_against(
    running: Arc<Base>,
    path: Option<std::path::PathBuf>,
) -> Result<diff::ReloadDiff, Diagnostics> {
    use std::sync::atomic::Ordering;
    let own = running.config.path.clone();
    let fail = |m: String| Err(Diagnostics::one(crate::diag::Diagnostic::new(&own, 1, m)));
    let path = path.unwrap_or_else(|| own.clone());
    let dir = |p: &std::path::Path| {
        p.parent().and_then(|d| {
            std::fs::canonicalize(if d.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                d
            })
            .ok()
        })
    };
    match (dir(&path), dir(&own)) {
        (Some(p), Some(o)) if p.starts_with(&o) => {}
        _ => {
            return fail(format!(
                "{}: a diff reads configs in the running config's directory (or below) only",
                path.display()
            ));
        }
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= DIFF_MAX_BYTES => {}
        Ok(_) => {
            return fail(format!(
                "{}: not a regular file of at most {DIFF_MAX_BYTES} bytes",
                path.display()
            ));
        }
        Err(e) => return fail(format!("{}: {e}", path.display())),
    }
    if DIFF_RUNNING.swap(true, Ordering::AcqRel) {
        return fail("another diff is running; try again".into());
    }
    let result = tokio::task::spawn_blocking(move || {
        let new = Base::load_path(&path, Some(&running))?;
        Ok(diff::diff(&running, &new))
    })
    .await;
    DIFF_RUNNING.store(false, Ordering::Release);
    result.unwrap_or_else(|e| fail(format!("diff failed: {e}")))
}

/// An interval that, when late, waits a whole period again (no bursts).
fn ticker(period: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// The next tick of `interval`, or never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Controller {
    /// When the signatures of a signed zone are next due (`[dnssec]
    /// refresh` before the earliest expiration made at load), if any.
    fn next_resign(&self, now: SystemTime) -> Option<Duration> {
        let refresh = self.base.config.dnssec.refresh;
        let due = self
            .base
            .zones
            .iter()
            .filter_map(|z| z.signed.as_ref()?.expires)
            .map(|e| {
                e.checked_sub(refresh)
                    .and_then(|t| t.duration_since(now).ok())
                    .unwrap_or(Duration::ZERO)
            })
            .min()?;
        // A key's timing (publish, activate, retire) changes what is signed.
        let keys = self
            .base
            .signers
            .iter()
            .flatten()
            .filter_map(|s| s.next_key_event(now))
            .min()
            .map(|t| t.duration_since(now).unwrap_or(Duration::ZERO));
        let due = keys.map_or(due, |k| due.min(k));
        let retry = self
            .resign_retry
            .and_then(|r| r.duration_since(now).ok())
            .unwrap_or(Duration::ZERO);
        Some(due.max(retry))
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

#[cfg(test)]
#[path = "dnssec_review_tests.rs"]
mod dnssec_review_tests;
