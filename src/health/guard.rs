//! The prober guard. When a large share of all checks goes down within a
//! short window, the likelier fault is the prober's own network, not every
//! backend at once: keep the states from before the burst and say so
//! loudly, instead of emptying every route. The freeze lifts when the
//! probes recover or an operator overrides. Pure: time is an argument.
//!
//! Only established states are guarded: a first verdict (Unknown -> Down)
//! never counts toward a burst and is never held back, so a cold start
//! against dead backends answers with the live ones. Each check counts
//! once per window however often it flaps. The memory is kept by check
//! name ([`Saved`]), so a reload or a restart neither drops a freeze nor
//! forgets the recent failures.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::State;

/// Guard settings and memory.
#[derive(Debug, Clone)]
pub struct Guard {
    share: f64,
    window: Duration,
    min_checks: usize,
    /// Recent Up/Unknown -> Down transitions: (when, check, state before).
    recent: Vec<(SystemTime, usize, State)>,
    /// While frozen: the states routes use for probed checks.
    frozen: Option<Vec<State>>,
}

impl Guard {
    /// A guard acting when more than `share` of at least `min_checks`
    /// probed checks go down within `window`.
    pub fn new(share: f64, window: Duration, min_checks: usize) -> Self {
        Guard {
            share,
            window,
            min_checks,
            recent: Vec::new(),
            frozen: None,
        }
    }

    /// The frozen states, while the guard holds (Unknown: not frozen,
    /// the check follows its probe).
    pub fn frozen(&self) -> Option<&[State]> {
        self.frozen.as_deref()
    }

    /// The memory by check name (`names` in check order), to carry it
    /// across a reload or a restart.
    pub fn save(&self, names: &[String]) -> Saved {
        let name = |c: usize| names.get(c).cloned().unwrap_or_default();
        Saved {
            recent: self
                .recent
                .iter()
                .map(|&(t, c, before)| (super::checkpoint::epoch_secs(t), name(c), before))
                .collect(),
            frozen: self.frozen.as_ref().map(|f| {
                f.iter()
                    .enumerate()
                    .filter(|(_, s)| **s != State::Unknown)
                    .map(|(c, s)| (name(c), *s))
                    .collect()
            }),
        }
    }

    /// Takes over `saved` for the checks `names` (in check order): checks
    /// that no longer exist are forgotten; new checks are not frozen.
    pub fn restore(&mut self, saved: &Saved, names: &[String]) {
        let index = |n: &str| names.iter().position(|x| x == n);
        self.recent = saved
            .recent
            .iter()
            .filter_map(|(t, n, before)| {
                Some((super::checkpoint::from_epoch_secs(*t), index(n)?, *before))
            })
            .collect();
        self.frozen = saved.frozen.as_ref().map(|f| {
            let mut states = vec![State::Unknown; names.len()];
            for (n, s) in f {
                if let Some(c) = index(n) {
                    states[c] = *s;
                }
            }
            states
        });
    }

    /// Records a transition of `check`; `observed` holds every probed
    /// check's observed state after it (`None` for unprobed checks) and
    /// `current` the states routes used before it. Returns `Some(true)`
    /// when the guard engages, `Some(false)` when it lifts.
    pub fn observe(
        &mut self,
        check: usize,
        from: State,
        to: State,
        now: SystemTime,
        observed: &[Option<State>],
        current: &[State],
    ) -> Option<bool> {
        self.recent
            .retain(|(t, _, _)| now.duration_since(*t).unwrap_or_default() <= self.window);
        // An established state going down, counted once per check.
        if to == State::Down && from == State::Up && !self.recent.iter().any(|r| r.1 == check) {
            self.recent.push((now, check, from));
        }
        let total = observed.iter().filter(|s| s.is_some()).count();
        let down_now = observed.iter().filter(|s| **s == Some(State::Down)).count();
        let limit = self.share * total as f64;
        match &self.frozen {
            // A burst: more than the share went down within the window and
            // are still down (flaps that recovered are no burst).
            None if total >= self.min_checks
                && self.recent.len() as f64 > limit
                && down_now as f64 > limit =>
            {
                let mut frozen = current.to_vec();
                for &(_, c, before) in &self.recent {
                    frozen[c] = before;
                }
                // Nothing to keep for a check without a verdict, nor for
                // an unprobed (calculated) one.
                for (f, o) in frozen.iter_mut().zip(observed) {
                    if o.is_none() {
                        *f = State::Unknown;
                    }
                }
                self.frozen = Some(frozen);
                Some(true)
            }
            Some(_) if down_now as f64 <= limit => {
                self.lift();
                Some(false)
            }
            _ => None,
        }
    }

    /// Lifts the freeze (operator action).
    pub fn lift(&mut self) {
        self.frozen = None;
        self.recent.clear();
    }
}

/// The guard's memory by check name (in the checkpoint).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// Recent Up -> Down transitions: (seconds since the epoch, check,
    /// state before).
    pub recent: Vec<(u64, String, State)>,
    /// While frozen: the held state by check.
    pub frozen: Option<BTreeMap<String, State>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::{Down, Up};

    #[test]
    fn engages_on_a_burst_and_lifts_on_recovery() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut g = Guard::new(0.5, Duration::from_secs(30), 4);
        let mut obs = vec![Some(Up); 6];
        let cur = vec![Up; 6];
        for c in 0..3 {
            obs[c] = Some(Down);
            assert_eq!(
                g.observe(c, Up, Down, t0, &obs, &cur),
                None,
                "3 of 6 is not more than half"
            );
        }
        obs[3] = Some(Down);
        assert_eq!(g.observe(3, Up, Down, t0, &obs, &cur), Some(true));
        assert_eq!(g.frozen().unwrap(), &[Up; 6]);
        obs[..3].fill(Some(Up));
        assert_eq!(g.observe(0, Down, Up, t0, &obs, &cur), Some(false));
        assert!(g.frozen().is_none());
    }

    #[test]
    fn first_verdicts_and_flaps_do_not_make_a_burst() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut g = Guard::new(0.5, Duration::from_secs(30), 4);
        // A cold start: 4 of 6 checks' first verdicts are Down.
        let mut obs = vec![Some(Up); 6];
        for c in 0..4 {
            obs[c] = Some(Down);
            let cur = vec![State::Unknown; 6];
            assert_eq!(g.observe(c, State::Unknown, Down, t0, &obs, &cur), None);
        }
        // One check flapping 5 times counts once.
        let mut g = Guard::new(0.5, Duration::from_secs(30), 4);
        let mut obs = vec![Some(Up); 6];
        for _ in 0..5 {
            obs[0] = Some(Down);
            assert_eq!(g.observe(0, Up, Down, t0, &obs, &[Up; 6]), None);
            obs[0] = Some(Up);
            assert_eq!(g.observe(0, Down, Up, t0, &obs, &[Up; 6]), None);
        }
    }

    #[test]
    fn memory_survives_a_renumbering_by_name() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let mut g = Guard::new(0.5, Duration::from_secs(30), 4);
        let mut obs = vec![Some(Up); 5];
        for c in 0..3 {
            obs[c] = Some(Down);
            g.observe(c, Up, Down, t0, &obs, &[Up; 5]);
        }
        assert!(g.frozen().is_some());
        let saved = g.save(&names);
        // The same checks in another order, `a` removed, `z` added.
        let renamed: Vec<String> = ["z", "c", "b", "e", "d"].map(String::from).to_vec();
        let mut h = Guard::new(0.5, Duration::from_secs(30), 4);
        h.restore(&saved, &renamed);
        assert_eq!(h.frozen().unwrap(), &[State::Unknown, Up, Up, Up, Up]);
        assert_eq!(h.save(&renamed).recent.len(), 2);
    }

    #[test]
    fn slow_failures_and_small_sets_do_not_engage() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut g = Guard::new(0.5, Duration::from_secs(10), 4);
        let mut obs = vec![Some(Up); 4];
        let cur = vec![Up; 4];
        for c in 0..4 {
            obs[c] = Some(Down);
            let at = t0 + Duration::from_secs(20 * c as u64);
            assert_eq!(g.observe(c, Up, Down, at, &obs, &cur), None);
        }
        let mut g = Guard::new(0.5, Duration::from_secs(10), 4);
        let obs = vec![Some(Down); 3];
        assert_eq!(g.observe(0, Up, Down, t0, &obs, &[Up; 3]), None);
    }
}
