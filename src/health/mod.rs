//! Health: what the probes say about each check, and what the routes use.
//!
//! ```text
//! probe task: Outcome ──> Tracker::observe (fall/rise) ──> Transition ──> controller
//! admin-state file ──> Overrides ─────────────────────────────────────────> controller
//! controller: observed + override ──> Effective ──> calculated checks ──> HealthView ──> routes
//! ```
//!
//! `tracker`, `overrides`, `guard` and `calculated` are pure (time is an
//! argument); `probe` and `scheduler` are the only code that does probe I/O.

pub mod checkpoint;
pub mod guard;
pub mod overrides;
pub mod probe;
pub mod quorum;
pub mod scheduler;
pub mod tracker;

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A check's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No verdict yet.
    Unknown,
    /// Healthy.
    Up,
    /// Unhealthy.
    Down,
}

impl State {
    /// Whether routes may answer with a member in this state. Unknown
    /// counts as healthy, so a cold start fails open.
    pub fn eligible(self) -> bool {
        self != State::Down
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        })
    }
}

/// One probe result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The endpoint passed.
    pub ok: bool,
    /// How long the probe took.
    pub latency: Duration,
    /// It failed for a reason of veer's own host (no descriptor, buffer
    /// or local address): a fault of the prober, not of the backend.
    pub local: bool,
    /// What happened, for logs (`connect timeout after 1s`, `status 500`).
    pub reason: String,
}

/// A change of observed state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Why (`3 consecutive failures: connect refused`).
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// What the controller knows about one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckHealth {
    /// What the probes say.
    pub observed: State,
    /// The state routes use (override, guard freeze or calculated result applied).
    pub effective: State,
    /// Counters are moving: the state may change soon (health-aware TTL).
    pub pending: bool,
    /// When `observed` last changed.
    pub since: SystemTime,
    /// Why it is in this state.
    pub reason: String,
    /// Latency of the last probe.
    pub latency: Option<Duration>,
    /// An operator override is in force.
    pub forced: bool,
    /// `observed` was seen by a probe (now, or before a restart), not
    /// assumed (`initial`) nor carried over provisionally from before a
    /// target edit. Only established states count toward, or are held
    /// by, the prober guard.
    pub established: bool,
    /// This instance's own probe verdict. Without a fleet it is
    /// `observed`; in a fleet it is this instance's vote.
    pub own: State,
    /// Why `own` is what it is.
    pub own_reason: String,
    /// `own` comes from a probe run since this instance (re)started the
    /// probe, or from taking the check on (a fleet's verdict): before
    /// that it is no vote.
    pub own_probed: bool,
}

impl CheckHealth {
    /// A check that has not been probed yet, starting in `state`.
    pub fn new(state: State, now: SystemTime) -> Self {
        CheckHealth {
            observed: state,
            effective: state,
            pending: false,
            since: now,
            reason: "no probe has completed yet".into(),
            latency: None,
            forced: false,
            established: false,
            own: state,
            own_reason: "no probe has completed yet".into(),
            own_probed: false,
        }
    }
}
