//! The controller's side of a fleet: what the peers said, which checks
//! this instance probes, and each check's verdict from the votes
//! (`health::quorum`). Without `[fleet]` none of this runs and a check's
//! verdict is this instance's own.
//!
//! ```text
//! own probe reports ──> own verdict ─┐
//! followers: Event::Heard/Lost ──────┼──> decide per check ──> observed ──> effective ──> routes
//! tick (peer_timeout / 4) ───────────┘        └──> which probes run (assigned, or degraded)
//!                                              └──> the feed this instance serves
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use super::Controller;
use crate::config::{CheckKind, FleetConfig};
use crate::fleet::server::Published;
use crate::fleet::wire::{self, Feed, FleetOverride};
use crate::fleet::{Event, peer};
use crate::health::State;
use crate::health::overrides::Override;
use crate::health::quorum::{self, Decided, Vote};
use crate::health::scheduler::Activity;
use crate::status::{FleetCheck, FleetPeer, FleetStatus, FleetVote, rfc3339};

/// A fleet instance's running state.
pub(super) struct Fleet {
    /// The running settings (name, listen and TLS need a restart).
    pub(super) cfg: FleetConfig,
    seq: u64,
    feed: watch::Sender<Arc<Published>>,
    token: watch::Sender<String>,
    heartbeat: watch::Sender<Duration>,
    peers: Vec<Peer>,
    /// What the feed last said (votes, overrides).
    published: (Vec<wire::Vote>, Vec<FleetOverride>),
    /// Checks decided from this instance's own probes for want of votes.
    degraded: FxHashSet<String>,
    /// For each check, its probers, those new among them and since when.
    handover: FxHashMap<String, Handover>,
    /// Overrides made here with `fleet = true` (set or cleared).
    pub(super) own_overrides: Vec<FleetOverride>,
    /// The fleet's overrides in force: for each check, the most recent.
    pub(super) merged: Vec<Override>,
    followers: Vec<AbortHandle>,
    events: Option<mpsc::UnboundedSender<Event>>,
    client: Option<reqwest::Client>,
    /// When this instance started (it is alone until it hears its peers).
    started: std::time::Instant,
}

/// A check's assignment as last computed. Instances see a prober go at
/// slightly different times: a newly assigned prober gets one
/// peer_timeout to vote before the check counts as degraded, or every
/// other instance would probe it once at each takeover.
struct Handover {
    assigned: Vec<String>,
    newcomers: Vec<String>,
    since: SystemTime,
}

struct Peer {
    name: String,
    url: reqwest::Url,
    /// When it last answered (this instance's clock).
    heard: Option<SystemTime>,
    /// Why the last request failed (None after an answer).
    error: Option<String>,
    /// Its votes on checks this instance has, by check name.
    votes: FxHashMap<String, wire::Vote>,
    /// Its fleet overrides of checks this instance has.
    overrides: Vec<FleetOverride>,
    /// Checks whose definition differs there (logged once each).
    mismatched: FxHashSet<String>,
    ignored: usize,
}

/// What the runtime needs to serve the fleet listener.
pub struct Listener {
    /// Where.
    pub listen: std::net::SocketAddr,
    /// Certificate and key files, for TLS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Plain HTTP off loopback was allowed.
    pub plain_off_loopback: bool,
    /// The token (follows reloads).
    pub token: watch::Receiver<String>,
    /// How long a long-poll waits for a change (follows reloads).
    pub heartbeat: watch::Receiver<Duration>,
    /// The feed.
    pub feed: watch::Receiver<Arc<Published>>,
}

/// The file in `state_dir` that keeps this instance's fleet overrides.
pub const FLEET_OVERRIDES: &str = "fleet-overrides.json";

impl Fleet {
    pub(super) fn new(cfg: FleetConfig, state_dir: Option<&std::path::Path>) -> Fleet {
        let heartbeat = cfg.peer_timeout / 3;
        let mut f = Fleet {
            seq: 0,
            feed: watch::Sender::new(Arc::default()),
            token: watch::Sender::new(cfg.token.clone()),
            heartbeat: watch::Sender::new(heartbeat),
            peers: Vec::new(),
            published: Default::default(),
            degraded: FxHashSet::default(),
            handover: FxHashMap::default(),
            own_overrides: Vec::new(),
            merged: Vec::new(),
            followers: Vec::new(),
            events: None,
            client: None,
            started: std::time::Instant::now(),
            cfg,
        };
        f.set_peers();
        // This instance's fleet overrides survive a restart: the others
        // would otherwise forget them when it comes back with none.
        if let Some(dir) = state_dir {
            let path = dir.join(FLEET_OVERRIDES);
            match std::fs::read(&path) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(o) => f.own_overrides = o,
                    Err(e) => tracing::error!(
                        "{}: {e}; this instance's fleet overrides are lost",
                        path.display()
                    ),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!("{}: {e}", path.display()),
            }
        }
        f.merged = f.overrides();
        f
    }

    /// Peers by name from the config, keeping what is known of those
    /// that stay (same name and URL).
    fn set_peers(&mut self) {
        let old = std::mem::take(&mut self.peers);
        self.peers = self
            .cfg
            .peers
            .iter()
            .map(|p| {
                old.iter()
                    .position(|o| o.name == p.name && o.url == p.url)
                    .map(|i| &old[i])
                    .map_or_else(
                        || Peer {
                            name: p.name.clone(),
                            url: p.url.clone(),
                            heard: None,
                            error: None,
                            votes: FxHashMap::default(),
                            overrides: Vec::new(),
                            mismatched: FxHashSet::default(),
                            ignored: 0,
                        },
                        |o| Peer {
                            name: o.name.clone(),
                            url: o.url.clone(),
                            heard: o.heard,
                            error: o.error.clone(),
                            votes: o.votes.clone(),
                            overrides: o.overrides.clone(),
                            mismatched: o.mismatched.clone(),
                            ignored: o.ignored,
                        },
                    )
            })
            .collect();
    }

    /// The listener's side (before `run`).
    pub(super) fn listener(&self) -> Listener {
        Listener {
            listen: self.cfg.listen,
            tls: self.cfg.tls.clone(),
            plain_off_loopback: self.cfg.tls.is_none() && !self.cfg.listen.ip().is_loopback(),
            token: self.token.subscribe(),
            heartbeat: self.heartbeat.subscribe(),
            feed: self.feed.subscribe(),
        }
    }

    /// (Re)starts one follower per peer.
    pub(super) fn start_followers(
        &mut self,
        events: &mpsc::UnboundedSender<Event>,
        tasks: &mut JoinSet<()>,
    ) {
        for a in self.followers.drain(..) {
            a.abort();
        }
        self.events = Some(events.clone());
        if self.client.is_none() {
            match peer::client(self.cfg.tls_ca.as_deref()) {
                Ok(c) => self.client = Some(c),
                Err(e) => {
                    tracing::error!("fleet: cannot build the peers' HTTP client: {e}");
                    return;
                }
            }
        }
        let Some(client) = &self.client else { return };
        for p in &self.cfg.peers {
            self.followers.push(tasks.spawn(peer::follow(
                p.clone(),
                self.cfg.token.clone(),
                client.clone(),
                self.cfg.peer_timeout,
                events.clone(),
            )));
        }
    }

    /// Whether a peer was heard within `peer_timeout` of `now`.
    fn live(&self, p: &Peer, now: SystemTime) -> bool {
        p.heard
            .is_some_and(|h| fresh(h, now, self.cfg.peer_timeout))
    }

    /// Recomputes the fleet overrides in force, logging new ones.
    fn remerge(&mut self) {
        let merged = self.overrides();
        for o in merged.iter().filter(|o| !self.merged.contains(o)) {
            tracing::info!("check {}: forced {} ({})", o.check, o.state, o.reason);
        }
        self.merged = merged;
    }

    /// This instance and every peer heard within `peer_timeout`.
    fn live_set(&self, now: SystemTime) -> Vec<&str> {
        std::iter::once(self.cfg.name.as_str())
            .chain(
                self.peers
                    .iter()
                    .filter(|p| self.live(p, now))
                    .map(|p| p.name.as_str()),
            )
            .collect()
    }

    /// The most recent fleet override per check (any instance's, this
    /// one's included), as overrides, if it sets a state. Ties go to the
    /// smaller instance name, so every instance picks the same one.
    pub(super) fn overrides(&self) -> Vec<Override> {
        let mut latest: FxHashMap<&str, (&FleetOverride, &str)> = FxHashMap::default();
        let all = self
            .own_overrides
            .iter()
            .map(|o| (o, self.cfg.name.as_str()))
            .chain(
                self.peers
                    .iter()
                    .flat_map(|p| p.overrides.iter().map(|o| (o, p.name.as_str()))),
            );
        for (o, by) in all {
            let l = latest.entry(o.check.as_str()).or_insert((o, by));
            if (o.set_ms, std::cmp::Reverse(by)) > (l.0.set_ms, std::cmp::Reverse(l.1)) {
                *l = (o, by);
            }
        }
        let mut out: Vec<Override> = latest
            .into_values()
            .filter_map(|(o, by)| {
                Some(Override {
                    check: o.check.clone(),
                    state: o.state?,
                    until: o.until_ms.map(wire::from_ms),
                    reason: format!("fleet override by {by}: {}", o.reason),
                })
            })
            .collect();
        out.sort_by(|a, b| a.check.cmp(&b.check));
        out
    }
}

/// Whether something heard at `at` is still fresh at `now`.
fn fresh(at: SystemTime, now: SystemTime, timeout: Duration) -> bool {
    now.duration_since(at).map_or(true, |age| age <= timeout)
}

impl Controller {
    /// The fleet listener's side, if this instance is one of a fleet.
    pub fn fleet_listener(&self) -> Option<Listener> {
        self.fleet.as_ref().map(|f| f.listener())
    }

    /// How often the fleet's verdicts are looked at without an event
    /// (a peer going silent is noticed by time alone).
    pub(super) fn fleet_tick(&self) -> Option<Duration> {
        self.fleet.as_ref().map(|f| f.cfg.peer_timeout / 4)
    }

    /// A reload's new `[fleet]`: settings that can change now do.
    pub(super) fn reconcile_fleet(&mut self, tasks: Option<&mut JoinSet<()>>) {
        let new = self.base.config.fleet.clone();
        let Some(f) = &mut self.fleet else {
            if new.is_some() {
                tracing::warn!("[fleet] added: this instance joins the fleet at the next restart");
            }
            return;
        };
        let Some(new) = new else {
            tracing::warn!("[fleet] removed: this instance stays in the fleet until a restart");
            return;
        };
        for (what, changed) in [
            ("name", new.name != f.cfg.name),
            ("listen", new.listen != f.cfg.listen),
            ("tls_cert/tls_key", new.tls != f.cfg.tls),
            ("tls_ca", new.tls_ca != f.cfg.tls_ca),
        ] {
            if changed {
                tracing::warn!("[fleet] {what} changed: takes effect at the next restart");
            }
        }
        let restart_followers = new.peers != f.cfg.peers
            || new.token != f.cfg.token
            || new.peer_timeout != f.cfg.peer_timeout;
        f.cfg = FleetConfig {
            name: f.cfg.name.clone(),
            listen: f.cfg.listen,
            tls: f.cfg.tls.clone(),
            tls_ca: f.cfg.tls_ca.clone(),
            ..new
        };
        f.token.send_replace(f.cfg.token.clone());
        f.heartbeat.send_replace(f.cfg.peer_timeout / 3);
        f.set_peers();
        // A peer removed takes its overrides with it.
        f.remerge();
        if restart_followers && let (Some(events), Some(tasks)) = (f.events.clone(), tasks) {
            f.start_followers(&events, tasks);
        }
    }

    /// An override for the whole fleet (API with `fleet = true`): set
    /// (`Some`) or cleared (`None`), written to `state_dir` and published.
    pub(super) fn set_fleet_override(
        &mut self,
        check: &str,
        set: Option<Override>,
    ) -> Result<(), super::OverrideError> {
        if !self.base.config.checks.iter().any(|c| c.name == check) {
            return Err(super::OverrideError::UnknownCheck(check.to_string()));
        }
        let Some(f) = &mut self.fleet else {
            return Err(super::OverrideError::NoFleet);
        };
        let now = SystemTime::now();
        // Later than any override of this check the fleet knows, so it
        // wins even against a peer whose clock runs a little ahead.
        let latest = f
            .own_overrides
            .iter()
            .chain(f.peers.iter().flat_map(|p| &p.overrides))
            .filter(|o| o.check == check)
            .map(|o| o.set_ms)
            .max()
            .unwrap_or(0);
        let entry = FleetOverride {
            check: check.to_string(),
            state: set.as_ref().map(|o| o.state),
            until_ms: set.as_ref().and_then(|o| o.until).map(wire::ms),
            reason: set.map(|o| o.reason).unwrap_or_default(),
            set_ms: wire::ms(now).max(latest.saturating_add(1)),
        };
        let mut own: Vec<FleetOverride> = f
            .own_overrides
            .iter()
            .filter(|o| o.check != check)
            .cloned()
            .map(|mut o| {
                // An expired one becomes a clear at the same time: still
                // later than what it superseded, so nothing older returns.
                if o.until_ms.is_some_and(|u| u <= wire::ms(now)) {
                    o.state = None;
                    o.until_ms = None;
                }
                o
            })
            .collect();
        own.push(entry);
        if let Some(dir) = &self.base.config.server.state_dir {
            let text = serde_json::to_vec_pretty(&own).unwrap_or_default();
            crate::durable::replace(dir, FLEET_OVERRIDES, &text).map_err(|source| {
                super::OverrideError::Write {
                    path: dir.join(FLEET_OVERRIDES),
                    source,
                }
            })?;
        }
        f.own_overrides = own;
        f.remerge();
        tracing::info!("check {check}: fleet override set by the API; the fleet follows");
        if self.guard.frozen().is_some() {
            tracing::warn!("prober guard lifted by the operator's override");
            self.guard.lift();
        }
        self.rebuild(now, true);
        Ok(())
    }

    /// A follower's news; true if the fleet's view changed.
    pub(super) fn fleet_event(&mut self, ev: Event) -> bool {
        let Some(f) = &mut self.fleet else {
            return false;
        };
        let checks = &self.base.config.checks;
        match ev {
            Event::Heard {
                peer,
                at,
                feed,
                ignored,
            } => {
                let Some(p) = f.peers.iter_mut().find(|p| p.name == peer) else {
                    return false; // a follower a reload stopped
                };
                if p.error.is_some() || p.heard.is_none() {
                    tracing::info!("fleet: peer {peer} heard at {}", p.url);
                }
                if ignored > 0 && p.ignored == 0 {
                    tracing::warn!(
                        "fleet: peer {peer} sent {ignored} malformed votes or overrides; they are ignored"
                    );
                }
                p.ignored = ignored;
                // Only what concerns checks this instance has is kept.
                let index: FxHashMap<&str, usize> = checks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name.as_str(), i))
                    .collect();
                let limit = wire::ms(SystemTime::now()).saturating_add(86_400_000);
                let mut votes = FxHashMap::default();
                let mut mismatched = FxHashSet::default();
                for v in feed.votes {
                    let Some(&i) = index.get(v.check.as_str()) else {
                        continue;
                    };
                    if v.hash != self.base.vote_hash(i) {
                        if !p.mismatched.contains(&v.check) {
                            tracing::warn!(
                                "fleet: check {}: peer {peer} probes a different target; its votes on it are not counted",
                                v.check
                            );
                        }
                        mismatched.insert(v.check.clone());
                    }
                    votes.insert(v.check.clone(), v);
                }
                p.mismatched = mismatched;
                let overrides: Vec<FleetOverride> = feed
                    .overrides
                    .into_iter()
                    .filter(|o| index.contains_key(o.check.as_str()) && o.valid(limit))
                    .collect();
                let new_overrides = p.overrides != overrides;
                let changed =
                    p.error.is_some() || p.heard.is_none() || p.votes != votes || new_overrides;
                p.heard = Some(at);
                p.error = None;
                p.votes = votes;
                p.overrides = overrides;
                if new_overrides {
                    f.remerge();
                }
                changed
            }
            Event::Lost { peer, why } => {
                let Some(p) = f.peers.iter_mut().find(|p| p.name == peer) else {
                    return false;
                };
                if p.error.as_ref() != Some(&why) {
                    tracing::warn!("fleet: peer {peer} ({}): {why}", p.url);
                    p.error = Some(why);
                    return true;
                }
                false
            }
        }
    }

    /// Decides every probed check from the votes, starts or pauses this
    /// instance's probes to follow the assignment, and updates the feed.
    /// True if anything the status shows changed.
    pub(super) fn fleet_refresh(&mut self, now: SystemTime) -> bool {
        let probe_of = self.probe_of();
        let Some(f) = &mut self.fleet else {
            return false;
        };
        let me = f.cfg.name.clone();
        let live: Vec<String> = f.live_set(now).into_iter().map(String::from).collect();
        let live: Vec<&str> = live.iter().map(String::as_str).collect();
        let q = f.cfg.needed();
        let checks = &self.base.config.checks;
        let mut want = vec![false; checks.len()];
        // (check, verdict, reason, decided alone)
        let mut verdicts: Vec<(usize, State, String, bool)> = Vec::new();
        let (mut entered, mut left) = (Vec::new(), Vec::new());
        let mut handover_next = FxHashMap::default();
        for (i, c) in checks.iter().enumerate() {
            if matches!(c.kind, CheckKind::Calculated { .. }) {
                continue;
            }
            let assigned = quorum::assigned(&c.name, &live, f.cfg.probers);
            let probing = probe_of[i].is_some_and(|p| self.probes[p].probing());
            let h = &self.health[i];
            let hash = self.base.vote_hash(i);
            let mine = assigned.contains(&me.as_str());
            let vote = |inst: &str| -> Option<Vote> {
                if inst == me {
                    return match (probing, mine) {
                        // No vote until a probe has run since it started.
                        (true, _) => Some(Vote {
                            state: if h.own_probed { h.own } else { State::Unknown },
                            at: now,
                        }),
                        // Just assigned: taken on from the current verdict
                        // (below), which is its vote until its probe runs.
                        (false, true) => Some(Vote {
                            state: h.observed,
                            at: now,
                        }),
                        (false, false) => None,
                    };
                }
                let p = f.peers.iter().find(|p| p.name == inst)?;
                let v = p.votes.get(&c.name).filter(|v| v.hash == hash)?;
                Some(Vote {
                    state: v.state,
                    at: p.heard?,
                })
            };
            let mut decided = quorum::decide(&assigned, vote, q, now, f.cfg.peer_timeout);
            let mut handover = match f.handover.remove(&c.name) {
                Some(h)
                    if h.assigned
                        .iter()
                        .map(String::as_str)
                        .eq(assigned.iter().copied()) =>
                {
                    h
                }
                prev => Handover {
                    newcomers: match &prev {
                        Some(p) => assigned
                            .iter()
                            .filter(|a| !p.assigned.iter().any(|b| b == *a))
                            .map(|a| a.to_string())
                            .collect(),
                        // First computed: no takeover to wait for.
                        None => Vec::new(),
                    },
                    assigned: assigned.iter().map(|a| a.to_string()).collect(),
                    since: now,
                },
            };
            // A newcomer that voted has taken over: its grace is spent.
            handover.newcomers.retain(|n| vote(n).is_none());
            if decided == Decided::Degraded
                && !mine
                && h.observed != State::Unknown
                && fresh(handover.since, now, f.cfg.peer_timeout)
                && !handover.newcomers.is_empty()
            {
                // A prober is taking over: the verdict holds meanwhile.
                decided = Decided::Split;
            }
            handover_next.insert(c.name.clone(), handover);
            let degraded = decided == Decided::Degraded;
            if degraded && f.degraded.insert(c.name.clone()) {
                entered.push(c.name.as_str());
            } else if !degraded && f.degraded.remove(&c.name) {
                left.push(c.name.as_str());
            }
            want[i] = degraded || mine;
            let to = match decided {
                Decided::Verdict(s) => s,
                Decided::Split => h.observed,
                Decided::Degraded if probing && h.own_probed => h.own,
                Decided::Degraded => h.observed,
            };
            if to != h.observed && to != State::Unknown {
                let reason = match decided {
                    Decided::Degraded => format!(
                        "fleet degraded, this instance's own probes: {}",
                        h.own_reason
                    ),
                    _ => {
                        let votes: Vec<String> = assigned
                            .iter()
                            .map(|a| match vote(a) {
                                Some(v) if fresh(v.at, now, f.cfg.peer_timeout) => {
                                    format!("{a} {}", v.state)
                                }
                                _ => format!("{a} silent"),
                            })
                            .collect();
                        format!(
                            "fleet: {q} needed of {} probers: {}",
                            assigned.len(),
                            votes.join(", ")
                        )
                    }
                };
                verdicts.push((i, to, reason, degraded));
            }
        }
        f.handover = handover_next;
        // Every instance is alone until it hears its peers: that is said
        // once, not as a fault.
        let starting = f.started.elapsed() < f.cfg.peer_timeout;
        if !entered.is_empty() && starting {
            tracing::info!(
                "fleet: waiting for peers; until then {} check{} {} decided from this instance's own probes",
                entered.len(),
                if entered.len() == 1 { "" } else { "s" },
                if entered.len() == 1 { "is" } else { "are" }
            );
        } else if !entered.is_empty() {
            tracing::warn!(
                "fleet: degraded: fewer than {q} fresh votes for check{} {}; deciding from this instance's own probes",
                if entered.len() == 1 { "" } else { "s" },
                entered.join(", ")
            );
        }
        if !left.is_empty() {
            tracing::info!(
                "fleet: check{} {} left degraded mode: the fleet's votes decide again",
                if left.len() == 1 { "" } else { "s" },
                left.join(", ")
            );
        }
        let mut changed = !entered.is_empty() || !left.is_empty();
        for (i, to, reason, alone) in verdicts {
            let from = self.health[i].observed;
            let from_established = self.health[i].established;
            self.health[i].established = true;
            // The prober guard is about this instance's own network: a
            // verdict of other vantage points is no evidence of that.
            self.observe(i, from, to, &reason, now, from_established, alone);
            changed = true;
        }
        // Probes follow the assignment: a probe shared by several checks
        // runs while any of them is this instance's.
        for p in &mut self.probes {
            let Some(activity) = &p.activity else {
                continue;
            };
            let wanted = p.checks.iter().any(|&c| want[c]);
            let a = *activity.borrow();
            if wanted && a.seed.is_none() {
                // Each check is taken on from its own verdict; the shared
                // tracker starts from theirs if they agree, else afresh.
                let first = self.health[p.checks[0]].observed;
                let seed = if p.checks.iter().all(|&c| self.health[c].observed == first) {
                    first
                } else {
                    State::Unknown
                };
                activity.send_replace(Activity {
                    seed: Some(seed),
                    starts: a.starts + 1,
                });
                for &c in &p.checks {
                    let h = &mut self.health[c];
                    h.own = h.observed;
                    h.own_probed = h.observed != State::Unknown;
                    h.own_reason = "taken on from the fleet's verdict".into();
                }
                changed = true;
            } else if !wanted && a.seed.is_some() {
                activity.send_replace(Activity { seed: None, ..a });
                // Its counters stop: nothing of this instance's is moving.
                for &c in &p.checks {
                    self.health[c].pending = false;
                }
                changed = true;
            }
        }
        changed | self.fleet_publish(now)
    }

    /// Each check's probe (by index into `probes`).
    pub(super) fn probe_of(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.health.len()];
        for (n, p) in self.probes.iter().enumerate() {
            for &c in &p.checks {
                out[c] = Some(n);
            }
        }
        out
    }

    /// Updates the feed if this instance's votes or fleet overrides
    /// changed; true if they did.
    fn fleet_publish(&mut self, now: SystemTime) -> bool {
        let Some(f) = &mut self.fleet else {
            return false;
        };
        let mut votes = Vec::new();
        for p in self.probes.iter().filter(|p| p.probing()) {
            for &c in &p.checks {
                let h = &self.health[c];
                votes.push(wire::Vote {
                    check: self.base.config.checks[c].name.clone(),
                    hash: self.base.vote_hash(c).to_string(),
                    state: if h.own_probed { h.own } else { State::Unknown },
                    since_ms: wire::ms(h.since),
                    streak: p.streak,
                });
            }
        }
        votes.sort_by(|a, b| a.check.cmp(&b.check));
        if (&votes, &f.own_overrides) == (&f.published.0, &f.published.1) && f.seq > 0 {
            return false;
        }
        f.seq += 1;
        let feed = Feed {
            instance: f.cfg.name.clone(),
            seq: f.seq,
            time_ms: wire::ms(now),
            votes,
            overrides: f.own_overrides.clone(),
        };
        let body = serde_json::to_vec(&feed).unwrap_or_default();
        f.feed.send_replace(Arc::new(Published {
            seq: f.seq,
            body: body.into(),
        }));
        f.published = (feed.votes, feed.overrides);
        true
    }

    /// The status page's and `/v1/status`'s view of the fleet.
    pub(super) fn fleet_status(&self, now: SystemTime) -> Option<FleetStatus> {
        let probe_of = self.probe_of();
        let f = self.fleet.as_ref()?;
        let me = f.cfg.name.as_str();
        let live = f.live_set(now);
        let checks = self
            .base
            .config
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| !matches!(c.kind, CheckKind::Calculated { .. }))
            .map(|(i, c)| {
                let assigned = quorum::assigned(&c.name, &live, f.cfg.probers);
                let h = &self.health[i];
                let probing = probe_of[i].is_some_and(|p| self.probes[p].probing());
                let hash = self.base.vote_hash(i);
                let mut votes = Vec::new();
                if probing {
                    let state = if h.own_probed { h.own } else { State::Unknown };
                    let note = if state == State::Unknown {
                        "no probe result yet"
                    } else if assigned.contains(&me) {
                        ""
                    } else {
                        "not assigned: probing for want of votes"
                    };
                    votes.push(FleetVote {
                        instance: me.to_string(),
                        state,
                        since: rfc3339(h.since),
                        counted: note.is_empty(),
                        note: note.into(),
                    });
                }
                for p in &f.peers {
                    let Some(v) = p.votes.get(&c.name) else {
                        continue;
                    };
                    let live = f.live(p, now);
                    let note = if v.hash != hash {
                        "probes a different target".to_string()
                    } else if v.state == State::Unknown {
                        "no probe result yet".to_string()
                    } else if !live {
                        "stale: peer not heard within peer_timeout".to_string()
                    } else if !assigned.contains(&p.name.as_str()) {
                        "not assigned".to_string()
                    } else {
                        String::new()
                    };
                    votes.push(FleetVote {
                        instance: p.name.clone(),
                        state: v.state,
                        since: rfc3339(wire::from_ms(v.since_ms)),
                        counted: note.is_empty(),
                        note,
                    });
                }
                FleetCheck {
                    check: c.name.clone(),
                    verdict: h.observed,
                    degraded: f.degraded.contains(&c.name),
                    probing,
                    assigned: assigned.iter().map(|a| a.to_string()).collect(),
                    votes,
                }
            })
            .collect();
        Some(FleetStatus {
            name: f.cfg.name.clone(),
            quorum: f.cfg.needed(),
            probers: f.cfg.probers,
            peer_timeout_ms: f.cfg.peer_timeout.as_millis() as u64,
            peers: f
                .peers
                .iter()
                .map(|p| FleetPeer {
                    name: p.name.clone(),
                    url: p.url.to_string(),
                    live: f.live(p, now),
                    last_heard: p.heard.map(rfc3339),
                    error: p.error.clone(),
                    mismatched: {
                        let mut m: Vec<String> = p.mismatched.iter().cloned().collect();
                        m.sort();
                        m
                    },
                })
                .collect(),
            checks,
        })
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
