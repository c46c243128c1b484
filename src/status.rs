//! What the admin API and the status page show: a read-only view built by
//! the controller and published inside each snapshot, so the page, the
//! JSON API and the answers always agree.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::health::State;
use crate::metrics::{ProbeStats, ZoneStats};

/// Everything the API shows.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// Snapshot generation.
    pub generation: u64,
    /// When the server started (RFC 3339).
    pub started: String,
    /// The config file.
    pub config: String,
    /// Every check.
    pub checks: Vec<CheckStatus>,
    /// Every route's current answer.
    pub routes: Vec<RouteStatus>,
    /// Every zone.
    pub zones: Vec<ZoneStatus>,
    /// Recent transitions, newest first.
    pub transitions: Vec<TransitionRecord>,
    /// Transitions since start.
    pub transitions_total: u64,
    /// The last reload attempt.
    pub last_reload: Option<ReloadRecord>,
    /// Successful reloads since start.
    pub reloads_ok: u64,
    /// Failed reloads since start.
    pub reloads_failed: u64,
    /// The prober guard holds the last states.
    pub guard_frozen: bool,
    /// This instance's fleet, if it is one of a fleet.
    pub fleet: Option<FleetStatus>,
}

/// A fleet as this instance sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// This instance.
    pub name: String,
    /// Agreeing votes needed.
    pub quorum: usize,
    /// Instances probing each check.
    pub probers: usize,
    /// A peer not heard for this long is gone.
    pub peer_timeout_ms: u64,
    /// The other instances.
    pub peers: Vec<FleetPeer>,
    /// Every probed check's votes.
    pub checks: Vec<FleetCheck>,
}

/// A peer.
#[derive(Debug, Clone, Serialize)]
pub struct FleetPeer {
    /// Its name.
    pub name: String,
    /// Its fleet listener.
    pub url: String,
    /// Heard within `peer_timeout`.
    pub live: bool,
    /// When it last answered (RFC 3339).
    pub last_heard: Option<String>,
    /// Why the last request failed.
    pub error: Option<String>,
    /// Checks it defines differently (its votes on them do not count).
    pub mismatched: Vec<String>,
}

/// The votes behind one check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct FleetCheck {
    /// The check.
    pub check: String,
    /// What the votes decided (or this instance's own probes, degraded).
    pub verdict: State,
    /// Fewer than quorum fresh votes: decided from this instance's probes.
    pub degraded: bool,
    /// This instance probes it.
    pub probing: bool,
    /// The instances assigned to probe it.
    pub assigned: Vec<String>,
    /// Every vote known.
    pub votes: Vec<FleetVote>,
}

/// One instance's vote.
#[derive(Debug, Clone, Serialize)]
pub struct FleetVote {
    /// Who.
    pub instance: String,
    /// Its verdict.
    pub state: State,
    /// Since when (RFC 3339).
    pub since: String,
    /// It counts toward the verdict.
    pub counted: bool,
    /// Why not, if it does not.
    pub note: String,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    /// Name.
    pub name: String,
    /// Probe kind (`http`, `tcp`, ... `calculated`).
    pub kind: String,
    /// The state routes use.
    pub state: State,
    /// What the probes say.
    pub real_state: State,
    /// An override is in force.
    pub forced: bool,
    /// The override's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
    /// The override's expiry (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_until: Option<String>,
    /// Counters are moving.
    pub pending: bool,
    /// Last transition of the real state (RFC 3339).
    pub since: String,
    /// Why it is in this state.
    pub reason: String,
    /// Last probe latency in milliseconds.
    pub last_latency_ms: Option<f64>,
    /// Probe counters; shown as `local_faults`, read when shown: probe
    /// cycles that could not run for a reason of veer's host since start
    /// (they leave the state as it was, so a rising count says the state
    /// is getting stale).
    #[serde(rename = "local_faults", serialize_with = "local_faults")]
    pub stats: Option<Arc<ProbeStats>>,
    /// Its last transitions of the real state, oldest first (at most
    /// [`CHECK_HISTORY`], none older than [`HISTORY_WINDOW`] when recorded).
    pub history: Vec<StateChange>,
}

/// How far back the page's pictures look.
pub const HISTORY_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// Transitions kept per check for the timeline.
pub const CHECK_HISTORY: usize = 64;

/// Answer changes kept per route.
pub const ANSWER_CHANGES: usize = 32;

/// A transition of one check, for its timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    /// When (RFC 3339 in JSON).
    #[serde(serialize_with = "time")]
    pub at: SystemTime,
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
}

/// A route's answer changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerChange {
    /// When (RFC 3339 in JSON).
    #[serde(serialize_with = "time")]
    pub at: SystemTime,
    /// The new answer: its records, or `NODATA`, `SERVFAIL`.
    pub answer: String,
}

fn time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// One route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    /// Owner name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Policy.
    pub policy: String,
    /// The records answered now (multivalue: all candidates).
    pub answer: Vec<String>,
    /// `members`, `fallback`, `nodata` or `servfail`.
    pub outcome: String,
    /// Enough members are healthy.
    pub healthy: bool,
    /// TTL now.
    pub ttl: u32,
    /// Decision steps.
    pub path: Vec<String>,
    /// The checks its members use.
    pub checks: Vec<String>,
    /// Answers (RRsets) its slot holds now, each multivalue shuffle
    /// counted; in a signed zone those with the same records share one
    /// signing.
    pub variants: usize,
    /// When its answer changed, oldest first (at most [`ANSWER_CHANGES`]).
    pub answer_changes: Vec<AnswerChange>,
}

/// One zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatus {
    /// Apex.
    pub origin: String,
    /// Served SOA serial.
    pub serial: u32,
    /// Records in the zone files.
    pub records: usize,
    /// Query counters (not serialised).
    #[serde(skip)]
    pub stats: Option<Arc<ZoneStats>>,
    /// DNSSEC, for a signed zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<ZoneDnssec>,
}

/// A signed zone's keys and signatures.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneDnssec {
    /// Its keys.
    pub keys: Vec<KeyStatus>,
    /// The earliest expiration of the signatures it serves (RFC 3339).
    pub earliest_expiry: Option<String>,
    /// When they are made again (RFC 3339).
    pub next_signing: Option<String>,
    /// Signatures are made as the snapshot is built: nothing waits.
    pub backlog: usize,
}

/// One key of a signed zone.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// A KSK or CSK (flags 257): it signs the DNSKEY set; its DS goes to
    /// the parent.
    pub ksk: bool,
    /// In the DNSKEY set now.
    pub published: bool,
    /// Signing now.
    pub active: bool,
    /// Its `.private` file.
    pub file: String,
    /// The DS record to publish at the parent (KSK/CSK only).
    pub ds: Option<String>,
}

/// A transition, for the page and webhooks.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionRecord {
    /// Check name.
    pub check: String,
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    /// When (RFC 3339).
    pub at: String,
    /// It was applied.
    pub ok: bool,
    /// The errors (`file:line: message`) when it was not.
    pub errors: Vec<String>,
    /// What it changed, when it was applied.
    pub diff: Option<crate::control::diff::ReloadDiff>,
}

/// RFC 3339 with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    // humantime panics past the year 9999 when formatting: a time from a
    // peer or a file never gets that far (checked where read), and this
    // keeps a mistake from taking the controller down.
    let max = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_millis(t.min(max)).to_string()
}

fn local_faults<S: serde::Serializer>(
    stats: &Option<Arc<ProbeStats>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_u64(stats.as_ref().map_or(0, |p| {
        p.local_faults.load(std::sync::atomic::Ordering::Relaxed)
    }))
}
