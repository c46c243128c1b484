//! The prober guard. When a large share of all checks goes down within a
//! short window, the likelier fault is the prober's own network, not every
//! backend at once: keep the states from before the burst and say so
//! loudly, instead of emptying every route. The freeze lifts when the
//! probes recover or an operator overrides. Pure: time is an argument.

use std::time::{Duration, SystemTime};

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

    /// The frozen states, while the guard holds.
    pub fn frozen(&self) -> Option<&[State]> {
        self.frozen.as_deref()
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
        if to == State::Down && from != State::Down {
            self.recent.push((now, check, from));
        }
        let total = observed.iter().filter(|s| s.is_some()).count();
        let down_now = observed.iter().filter(|s| **s == Some(State::Down)).count();
        let limit = self.share * total as f64;
        match &self.frozen {
            None if total >= self.min_checks && self.recent.len() as f64 > limit => {
                let mut frozen = current.to_vec();
                for &(_, c, before) in &self.recent {
                    frozen[c] = before;
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
