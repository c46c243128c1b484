//! Probe scheduling: one task per unique probe, however many checks and
//! routes refer to it. A task owns its [`Tracker`] outright (nothing is
//! locked), probes at `interval ± jitter` from a jittered start, retries
//! inside a cycle with exponential backoff, and sends a report only when
//! the state changes or the counters start or stop moving; steady-state
//! results never cross a channel. Probes never touch the DNS path.
//!
//! No task has a tokio timer of its own: starts, backoffs and the
//! timeouts of probes in flight wait on one timer for all probes
//! ([`timers`]), which starts the probes that fall due together in one
//! batch (see [`start_slack`]) and fires a timeout at most an eighth of
//! it late (see [`probe::timeout_slack`]).
//!
//! In `veer serve` the tasks run on the probes' own thread ([`thread`]),
//! not on the workers that answer DNS over TCP and the API.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::probe::{self, Clients, Prepared};
use super::tracker::Tracker;
use super::{Outcome, State, Transition};
use crate::config::{CheckConfig, CheckKind};
use crate::metrics::ProbeStats;
use engine::Lent;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use timers::{MAX_SLACK, Timer};

pub mod engine;
pub mod thread;
pub mod timers;

/// What a probe task tells the controller.
#[derive(Debug, Clone)]
pub struct Report {
    /// The probe's id (see [`spawn_one`]).
    pub probe: u64,
    /// The state change, if the last outcome caused one.
    pub transition: Option<Transition>,
    /// Counters are moving (a change may come soon).
    pub pending: bool,
    /// Consecutive results disagreeing with the state (carried over when
    /// an edit of the check's timing restarts its probe).
    pub streak: u32,
    /// The state was seen by a probe (see `CheckHealth::established`).
    pub established: bool,
    /// The last outcome.
    pub outcome: Outcome,
    /// The probe's [`Activity::starts`] when the outcome was observed: a
    /// report from before the latest start is stale.
    pub starts: u64,
}

/// One probe to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The definition (shared by every check with the same definition).
    pub check: CheckConfig,
    /// The state the tracker starts in.
    pub initial: State,
    /// How that state was carried over.
    pub start: Start,
    /// The initial state was seen by a probe (see `Tracker::established`).
    pub established: bool,
    /// Counters the task updates after every cycle.
    pub stats: Arc<ProbeStats>,
    /// Whether the task probes; None: always (an instance without a
    /// fleet).
    pub active: Option<tokio::sync::watch::Receiver<Activity>>,
}

/// Whether a probe task probes. A fleet assigns each check to some of its
/// instances only; when this one takes a check (back) on, its tracker
/// restarts from `seed`, the fleet's verdict, and probes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Probe (Some), starting from this state, or wait (None).
    pub seed: Option<State>,
    /// Raised by every start, so a task that slept through a pause and
    /// a start still starts over from the seed.
    pub starts: u64,
}

/// How a probe's tracker takes its initial state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// As given (a verdict or Unknown), with this streak.
    Resume(u32),
    /// Held provisionally until the new probe confirms or flips it (the
    /// check's target or expectation changed).
    Provisional,
}

/// Spawns the task of probe `id` into `tasks`, on the clients' runtime
/// (the probe thread's, see [`thread`]) if they have one; reports go to
/// `tx`.
pub fn spawn_one(
    id: u64,
    plan: Plan,
    clients: Clients,
    tx: mpsc::UnboundedSender<Report>,
    tasks: &mut JoinSet<()>,
) -> tokio::task::AbortHandle {
    match clients.runtime.clone() {
        Some(rt) => tasks.spawn_on(run(id, plan, clients, tx), &rt),
        None => tasks.spawn(run(id, plan, clients, tx)),
    }
}

/// How long a file check waits for a change's events to settle.
const CHANGE_SETTLE: Duration = Duration::from_millis(30);

/// Extra attempts after a local fault within one cycle.
const LOCAL_RETRIES: u32 = 3;

/// How often a probe's local faults are logged at most.
const LOCAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// The first probe is spread over this much time (or the interval, if shorter).
const START_SPREAD: Duration = Duration::from_secs(2);

/// What a probe's loop carries from one cycle to the next: the task's
/// while it probes with its own timer, the engine's ([`engine`]) while a
/// plain-http check is lent to it.
#[derive(Debug)]
pub struct Steady {
    probe: u64,
    check: CheckConfig,
    prepared: Prepared,
    tracker: Tracker,
    stats: Arc<ProbeStats>,
    tx: mpsc::UnboundedSender<Report>,
    /// The fleet's say in whether this probe runs (None: always).
    active: Option<tokio::sync::watch::Receiver<Activity>>,
    /// The activity's `starts` the tracker belongs to.
    starts: u64,
    /// Report the next result even if it changes nothing.
    announce: bool,
    last_local: Option<Instant>,
    /// When the next cycle starts, and how late it may.
    next: Instant,
    slack: Duration,
    /// The controller is gone: the task ends.
    gone: bool,
}

impl Steady {
    /// The activity changed since the tracker started (or its sender is
    /// gone): a result in flight belongs to the tracker that was.
    fn activity_moved(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.has_changed().unwrap_or(true))
    }

    /// Takes a cycle's outcome: counts it, feeds the tracker, reports what
    /// changed, and sets the next start. The caller has checked
    /// [`Steady::activity_moved`]. `now` is a recent reading of the clock.
    fn settle(&mut self, outcome: Outcome, now: Instant) {
        let (check, stats) = (&self.check, &self.stats);
        if outcome.local {
            // The prober's own fault (no descriptor, buffer or address):
            // says nothing about the backend, so the state stays.
            stats.local_faults.fetch_add(1, Ordering::Relaxed);
            if self
                .last_local
                .is_none_or(|t: Instant| t.elapsed() >= LOCAL_LOG_EVERY)
            {
                tracing::warn!(
                    "check {}: the probe could not run here ({}); not counted against the backend",
                    check.name,
                    outcome.reason
                );
                self.last_local = Some(Instant::now());
            }
        } else {
            if outcome.ok { &stats.ok } else { &stats.failed }.fetch_add(1, Ordering::Relaxed);
            stats.observe_latency(outcome.latency);
            let tracker = &mut self.tracker;
            let was = (
                tracker.pending(),
                tracker.streak(),
                tracker.is_established(),
            );
            let transition = tracker.observe(&outcome, SystemTime::now);
            // Steady results cross no channel; while counters move, each does.
            let now = (
                tracker.pending(),
                tracker.streak(),
                tracker.is_established(),
            );
            if transition.is_some() || now != was || self.announce {
                self.announce = false;
                let report = Report {
                    probe: self.probe,
                    transition,
                    pending: tracker.pending(),
                    streak: tracker.streak(),
                    established: tracker.is_established(),
                    outcome,
                    starts: self.starts,
                };
                if self.tx.send(report).is_err() {
                    self.gone = true; // the controller is gone: shutting down
                    return;
                }
            }
        }
        // The start may be up to `slack` late: the jitter drawn is as
        // much smaller, so each interval stays within interval ± jitter.
        let step = || jittered(check.interval, check.jitter - self.slack);
        self.next += step();
        if self.next < now {
            // A slow probe: skip missed slots instead of bursting.
            self.next = now + step();
        }
    }
}

async fn run(probe: u64, plan: Plan, clients: Clients, tx: mpsc::UnboundedSender<Report>) {
    let check = plan.check;
    let active = plan.active;
    let starts = active.as_ref().map_or(0, |a| a.borrow().starts);
    let mut waiting = active.as_ref().is_some_and(|a| a.borrow().seed.is_none());
    let tracker = match plan.start {
        Start::Resume(streak) => Tracker::resume(plan.initial, streak, check.fall, check.rise)
            .established(plan.established),
        Start::Provisional => Tracker::provisional(plan.initial, check.fall, check.rise),
    };
    let (_watcher, mut changed) = match &check.kind {
        CheckKind::File { path } => {
            let (w, rx) = watch(path);
            (w, Some(rx))
        }
        _ => (None, None),
    };
    let prepared = Prepared::new(&check.kind);
    // A plain-http check is probed by the engine, without this task (see
    // `engine`).
    let mut lend = prepared.plain_http();
    let mut timer = clients.timers.timer();
    let slack = start_slack(check.jitter);
    let spread = check.interval.min(START_SPREAD);
    let mut st = Steady {
        probe,
        tracker,
        stats: plan.stats,
        tx,
        // In a fleet the first result after every start is reported even
        // if it changes nothing: until then this instance's vote is
        // unprobed.
        announce: active.is_some(),
        active,
        starts,
        last_local: None,
        next: Instant::now() + spread.mul_f64(fastrand::f64()),
        slack,
        gone: false,
        check,
        prepared,
    };
    loop {
        if lend && !waiting {
            // Back when the activity changed (handled below), the
            // controller went away, or the engine could not run.
            // Boxed: the future holds the state until the engine takes it,
            // and inline that would be a second copy in every task.
            st = match Box::pin(clients.engine.lend(st, clients.source())).await {
                Lent::Back(st) => st,
                Lent::Refused(st) => {
                    lend = false;
                    st
                }
                // The engine ended with it: the runtime is shutting down.
                Lent::Lost => return,
            };
            if st.gone {
                return;
            }
        }
        tokio::select! {
            () = timer.until(st.next, st.slack), if !waiting => {}
            r = activity_changed(&mut st.active) => {
                let Ok(a) = r else { return }; // the controller is gone
                waiting = a.seed.is_none();
                if a.starts == st.starts {
                    continue;
                }
                // Taken (back) on: start over from the fleet's verdict.
                st.starts = a.starts;
                let seed = a.seed.unwrap_or(State::Unknown);
                let check = &st.check;
                st.tracker = Tracker::resume(seed, 0, check.fall, check.rise)
                    .established(seed != State::Unknown);
                st.announce = true;
                if waiting {
                    continue;
                }
                st.next = Instant::now();
            }
            Some(()) = file_changed(&mut changed) => {
                let Some(changed) = &mut changed else { continue };
                if waiting {
                    // Paused: the file's events are not for us; drop them.
                    while changed.try_recv().is_ok() {}
                    continue;
                }
                // One write is several events (truncate, write; or a
                // rename's two): let them settle and probe once, so a
                // change counts as one result towards fall/rise, and the
                // next scheduled probe is an interval away.
                timer.sleep(CHANGE_SETTLE).await;
                while changed.try_recv().is_ok() {}
                // The schedule restarts here (an interval is added below).
                st.next = Instant::now();
            }
        }
        let outcome = cycle(&st.check, &st.prepared, &clients, &mut timer).await;
        if st.activity_moved() {
            // Paused or started over while this probe ran: its result
            // belongs to the tracker that was, so it is dropped.
            continue;
        }
        st.settle(outcome, Instant::now());
        if st.gone {
            return;
        }
    }
}

/// The next change of a probe's activity (never, without a fleet).
async fn activity_changed(
    active: &mut Option<tokio::sync::watch::Receiver<Activity>>,
) -> Result<Activity, tokio::sync::watch::error::RecvError> {
    match active {
        Some(a) => {
            a.changed().await?;
            Ok(*a.borrow_and_update())
        }
        None => std::future::pending().await,
    }
}

/// The next event of a file check's watcher (never, for other checks).
async fn file_changed(changed: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match changed {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How late a probe with this jitter may start so that it starts with
/// others (a quarter of the jitter, at most [`MAX_SLACK`]; none without
/// jitter).
pub fn start_slack(jitter: Duration) -> Duration {
    (jitter / 4).min(MAX_SLACK)
}

/// One probe cycle: the first attempt plus `retries`, backing off
/// exponentially with jitter; `invert` applied to the result. `prepared`
/// is `check.kind` made ready ([`Prepared::new`]); `timer` is the probe
/// task's.
pub async fn cycle(
    check: &CheckConfig,
    prepared: &Prepared,
    clients: &Clients,
    timer: &mut Timer,
) -> Outcome {
    let mut retries = Retries::default();
    loop {
        let o = probe::attempt(&check.kind, prepared, check.timeout, clients, timer).await;
        match retries.after(check, o) {
            Step::Again(wait) => timer.sleep(wait).await,
            Step::Done(outcome) => return outcome,
        }
    }
}

/// Where a cycle stands between its attempts.
#[derive(Debug, Default, Clone, Copy)]
struct Retries {
    /// Attempts after a backend's failure so far.
    attempt: u32,
    /// Attempts after a local fault so far.
    local_tries: u32,
}

/// What follows an attempt.
#[derive(Debug)]
enum Step {
    /// Another attempt after this wait.
    Again(Duration),
    /// The cycle's outcome.
    Done(Outcome),
}

impl Retries {
    /// What follows attempt outcome `o` of `check`'s cycle.
    fn after(&mut self, check: &CheckConfig, o: Outcome) -> Step {
        if o.local && self.local_tries < LOCAL_RETRIES {
            // A local fault (say, descriptors momentarily exhausted) is
            // retried a few times before the cycle gives up on it.
            self.local_tries += 1;
            return Step::Again(Duration::from_millis(50) * self.local_tries);
        }
        if o.ok || o.local || self.attempt >= check.retries {
            return Step::Done(self.finish(check, o));
        }
        let backoff =
            (Duration::from_millis(50) * 2u32.pow(self.attempt.min(10))).min(check.timeout);
        self.attempt += 1;
        Step::Again(backoff.mul_f64(0.5 + fastrand::f64()))
    }

    /// The cycle's outcome from its last attempt's: the attempts counted,
    /// `invert` applied.
    fn finish(&self, check: &CheckConfig, mut outcome: Outcome) -> Outcome {
        if self.attempt > 0 {
            outcome.reason = format!("{} (after {} attempts)", outcome.reason, self.attempt + 1);
        }
        if check.invert && !outcome.local {
            outcome.ok = !outcome.ok;
            outcome.reason = format!("inverted: {}", outcome.reason);
        }
        outcome
    }
}

/// `interval` ± a random share of `jitter`.
fn jittered(interval: Duration, jitter: Duration) -> Duration {
    let j = jitter.mul_f64(fastrand::f64() * 2.0);
    (interval + j).saturating_sub(jitter)
}

/// Watches `path`'s directory (editors replace files by rename); a message
/// arrives on the receiver when the file may have changed.
fn watch(
    path: &Path,
) -> (
    Option<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<()>,
) {
    use notify::Watcher;
    let (tx, rx) = mpsc::unbounded_channel();
    let file = path.to_path_buf();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // Reads (ours included) are not changes.
        if let Ok(ev) = ev
            && !matches!(ev.kind, notify::EventKind::Access(_))
            && ev.paths.iter().any(|p| p.file_name() == file.file_name())
        {
            let _ = tx.send(());
        }
    });
    match watcher {
        Ok(mut w) => match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => (Some(w), rx),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; re-reading it every interval",
                    dir.display()
                );
                (None, rx)
            }
        },
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; re-reading it every interval",
                dir.display()
            );
            (None, rx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Initial;

    pub(super) fn file_check(path: &Path, interval_ms: u64) -> CheckConfig {
        CheckConfig {
            name: "f".into(),
            line: 1,
            kind: CheckKind::File {
                path: path.to_path_buf(),
            },
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(interval_ms / 2),
            jitter: Duration::ZERO,
            fall: 2,
            rise: 1,
            retries: 0,
            invert: false,
            initial: Initial::LastKnown,
        }
    }

    /// Every probe task is as large as its largest state: kinds other than
    /// plain http are boxed, and nothing large is held across an await.
    #[test]
    fn a_probe_task_stays_small() {
        let check = file_check(Path::new("/nonexistent"), 1000);
        let clients = Clients::new(None).unwrap();
        let prepared = Prepared::new(&check.kind);
        let mut timer = clients.timers.timer();
        let attempt = size_of_val(&probe::attempt(
            &check.kind,
            &prepared,
            check.timeout,
            &clients,
            &mut timer,
        ));
        assert!(attempt <= 1024, "{attempt}");
        let plan = Plan {
            check: check.clone(),
            initial: State::Unknown,
            start: Start::Resume(0),
            established: false,
            stats: Arc::default(),
            active: None,
        };
        let task = run(0, plan, clients.clone(), mpsc::unbounded_channel().0);
        assert!(size_of_val(&task) <= 3072, "{}", size_of_val(&task));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10), Duration::from_secs(1));
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }

    /// A start is held back by at most a quarter of the jitter (none
    /// without jitter, at most MAX_SLACK), and the jitter drawn shrinks by
    /// as much, so the time between two starts stays within interval ±
    /// jitter even when one of them is late by the whole slack.
    #[test]
    fn slack_keeps_intervals_within_the_jitter() {
        assert_eq!(start_slack(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            start_slack(Duration::from_millis(20)),
            Duration::from_millis(5)
        );
        assert_eq!(start_slack(Duration::from_secs(1)), MAX_SLACK);
        for jitter_ms in [0, 4, 20, 100, 500] {
            let (interval, jitter) = (Duration::from_secs(1), Duration::from_millis(jitter_ms));
            let slack = start_slack(jitter);
            for _ in 0..1000 {
                let d = jittered(interval, jitter - slack);
                assert!(
                    d - slack >= interval - jitter && d + slack <= interval + jitter,
                    "{d:?} (jitter {jitter:?})"
                );
            }
        }
    }

    /// With paused time, the scheduler reports the first verdict and then
    /// the fall threshold after exactly `fall` more intervals.
    #[tokio::test(start_paused = true)]
    async fn reports_transitions_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, "up").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let plan = Plan {
            check: file_check(&path, 10_000),
            initial: State::Unknown,
            start: Start::Resume(0),
            established: false,
            stats: Arc::default(),
            active: None,
        };
        spawn_one(0, plan, Clients::new(None).unwrap(), tx, &mut tasks);
        let start = Instant::now();
        let r = rx.recv().await.unwrap();
        assert_eq!(r.transition.unwrap().to, State::Up);
        assert!(start.elapsed() <= START_SPREAD);
        std::fs::write(&path, "down").unwrap();
        // The watcher may wake the task early; either way the first failure
        // only makes the counters move, and the second one flips the state.
        let r = rx.recv().await.unwrap();
        assert!(r.transition.is_none() && r.pending);
        let r = rx.recv().await.unwrap();
        let t = r.transition.unwrap();
        assert_eq!((t.from, t.to), (State::Up, State::Down));
        assert!(
            t.reason.starts_with("2 consecutive failures"),
            "{}",
            t.reason
        );
        assert!(start.elapsed() <= START_SPREAD + Duration::from_secs(20));
    }

    #[tokio::test]
    async fn retries_and_invert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let mut c = file_check(&path, 1000);
        c.retries = 2;
        let clients = Clients::new(None).unwrap();
        let mut timer = clients.timers.timer();
        let o = cycle(&c, &Prepared::new(&c.kind), &clients, &mut timer).await;
        assert!(!o.ok);
        assert!(o.reason.ends_with("(after 3 attempts)"), "{}", o.reason);
        c.invert = true;
        c.retries = 0;
        let o = cycle(&c, &Prepared::new(&c.kind), &clients, &mut timer).await;
        assert!(o.ok && o.reason.starts_with("inverted: "));
    }

    /// A cycle in flight when the fleet pauses and restarts the probe (new
    /// seed) still reports the old tracker's transition afterwards: the
    /// controller takes it as this instance's vote, though the restarted
    /// tracker, seeded Down and seeing failures, never reports again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_from_before_a_restart_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("ok");
        std::fs::write(&flag, "").unwrap();
        let mut check = file_check(&flag, 100);
        check.kind = CheckKind::Exec {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!("test -e {} && sleep 0.6", flag.display()),
            ],
        };
        check.timeout = Duration::from_secs(3);
        check.interval = Duration::from_millis(100);
        check.fall = 1;
        check.rise = 1;
        let (act_tx, act_rx) = tokio::sync::watch::channel(Activity {
            seed: Some(State::Down),
            starts: 0,
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let plan = Plan {
            check,
            initial: State::Down,
            start: Start::Resume(0),
            established: true,
            stats: Arc::default(),
            active: Some(act_rx),
        };
        spawn_one(0, plan, Clients::new(None).unwrap(), tx, &mut tasks);
        // Let the first cycle start (spread <= interval), then pause and
        // restart from Down while it is still in flight; the backend fails
        // from now on.
        tokio::time::sleep(Duration::from_millis(250)).await;
        act_tx.send_replace(Activity {
            seed: None,
            starts: 0,
        });
        act_tx.send_replace(Activity {
            seed: Some(State::Down),
            starts: 1,
        });
        std::fs::remove_file(&flag).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
        if let Ok(Some(r)) = r {
            assert!(
                r.transition.as_ref().is_none_or(|t| t.to != State::Up),
                "after the restart from Down (backend failing) a stale Up arrived: {:?}",
                r.transition
            );
        }
    }
}
