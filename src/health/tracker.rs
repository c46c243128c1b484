//! Hysteresis: turns a stream of probe outcomes into states.
//!
//! ```text
//!             first success                 rise consecutive successes
//!   Unknown ───────────────> Up   <──────────────────────────────── Down
//!      │                      │                                      ^
//!      │ first failure        └──────────────────────────────────────┘
//!      └──────────────────────> Down      fall consecutive failures
//! ```
//!
//! The first verdict leaves Unknown at once (a cold start should not wait
//! `fall` intervals to learn that a backend is dead). A tracker may also
//! start from a state carried over from before a config edit: resumed
//! with its streak (the probe's timing changed, not what it probes), or
//! provisional (the target changed: the old verdict holds until the new
//! probe has confirmed it `fall`/`rise` times, or has flipped it, and the
//! check counts as pending meanwhile). Pure: no clock, no I/O.

use std::time::SystemTime;

use super::{Outcome, State, Transition};

/// Fall/rise state machine for one check.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: State,
    fall: u32,
    rise: u32,
    /// Consecutive results that disagree with `state`.
    streak: u32,
    /// Agreeing results still needed to confirm a provisional state.
    confirm: u32,
    /// The state was seen by a probe (not assumed, not provisional).
    established: bool,
}

impl Tracker {
    /// A tracker starting in `state`.
    pub fn new(state: State, fall: u32, rise: u32) -> Self {
        Tracker {
            state,
            fall: fall.max(1),
            rise: rise.max(1),
            streak: 0,
            confirm: 0,
            established: false,
        }
    }

    /// Marks the starting state as seen by a probe before (a checkpoint,
    /// or a timing edit of a check with a verdict).
    pub fn established(mut self, yes: bool) -> Self {
        self.established = yes && self.state != State::Unknown;
        self
    }

    /// Whether the state was seen by a probe.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// A tracker resuming `state` with `streak` disagreeing results seen.
    pub fn resume(state: State, streak: u32, fall: u32, rise: u32) -> Self {
        Tracker {
            streak,
            ..Tracker::new(state, fall, rise)
        }
    }

    /// A tracker holding `state` provisionally: pending until `rise` (Up)
    /// or `fall` (Down) agreeing results confirm it; disagreeing results
    /// flip it as usual. Unknown is never provisional.
    pub fn provisional(state: State, fall: u32, rise: u32) -> Self {
        let mut t = Tracker::new(state, fall, rise);
        t.confirm = match state {
            State::Up => t.rise,
            State::Down => t.fall,
            State::Unknown => 0,
        };
        t
    }

    /// Consecutive results that disagree with the state.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Counters are moving: a result disagreeing with the state was seen,
    /// so the state may flip within the next few probes.
    pub fn pending(&self) -> bool {
        self.streak > 0 || self.confirm > 0
    }

    /// Feeds one outcome; returns the transition it caused, if any, at
    /// `now()` (the clock is read only for a transition).
    pub fn observe(
        &mut self,
        outcome: &Outcome,
        now: impl FnOnce() -> SystemTime,
    ) -> Option<Transition> {
        let (to, threshold, word) = match (self.state, outcome.ok) {
            (State::Unknown, true) => (State::Up, 1, "first probe succeeded"),
            (State::Unknown, false) => (State::Down, 1, "first probe failed"),
            (State::Up, true) | (State::Down, false) => {
                self.streak = 0;
                self.confirm = self.confirm.saturating_sub(1);
                self.established |= self.confirm == 0;
                return None;
            }
            (State::Up, false) => (State::Down, self.fall, "consecutive failures"),
            (State::Down, true) => (State::Up, self.rise, "consecutive successes"),
        };
        self.streak += 1;
        if self.streak < threshold {
            return None;
        }
        let reason = if self.state == State::Unknown {
            format!("{word}: {}", outcome.reason)
        } else {
            format!("{} {word}: {}", self.streak, outcome.reason)
        };
        let from = self.state;
        self.state = to;
        self.streak = 0;
        self.confirm = 0;
        self.established = true;
        Some(Transition {
            from,
            to,
            reason,
            at: now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ok(ok: bool) -> Outcome {
        Outcome {
            ok,
            latency: Duration::from_millis(1),
            local: false,
            reason: if ok {
                "200 OK".into()
            } else {
                "connect refused".into()
            },
        }
    }

    /// Runs `results` through a tracker; returns the state after each.
    fn run(start: State, fall: u32, rise: u32, results: &[bool]) -> Vec<State> {
        let mut t = Tracker::new(start, fall, rise);
        results
            .iter()
            .map(|&r| {
                t.observe(&ok(r), || SystemTime::UNIX_EPOCH);
                t.state()
            })
            .collect()
    }

    #[test]
    fn first_verdict_leaves_unknown_at_once() {
        assert_eq!(run(State::Unknown, 3, 2, &[true]), [State::Up]);
        assert_eq!(run(State::Unknown, 3, 2, &[false]), [State::Down]);
    }

    #[test]
    fn fall_and_rise_thresholds() {
        use State::*;
        let s = run(
            Up,
            3,
            2,
            &[false, false, true, false, false, false, true, true],
        );
        assert_eq!(s, [Up, Up, Up, Up, Up, Down, Down, Up]);
        // A success in the middle resets the failure streak.
        let s = run(Down, 3, 3, &[true, true, false, true, true, true]);
        assert_eq!(s, [Down, Down, Down, Down, Down, Up]);
    }

    #[test]
    fn provisional_state_is_pending_until_confirmed_or_flipped() {
        use State::*;
        let mut t = Tracker::provisional(Down, 2, 3);
        assert!(t.pending());
        // Two agreeing failures (fall = 2) confirm Down.
        assert!(t.observe(&ok(false), || SystemTime::UNIX_EPOCH).is_none());
        assert!(t.pending());
        assert!(t.observe(&ok(false), || SystemTime::UNIX_EPOCH).is_none());
        assert!(!t.pending());
        // A provisional Up flips after `fall` failures, not at the first.
        let mut t = Tracker::provisional(Up, 2, 3);
        assert!(t.observe(&ok(false), || SystemTime::UNIX_EPOCH).is_none());
        let tr = t.observe(&ok(false), || SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!((tr.from, tr.to), (Up, Down));
        assert!(!t.pending());
        assert!(!Tracker::provisional(Unknown, 2, 2).pending());
    }

    #[test]
    fn resume_keeps_the_streak() {
        let mut t = Tracker::resume(State::Up, 2, 3, 1);
        assert!(t.pending());
        let tr = t.observe(&ok(false), || SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(tr.reason, "3 consecutive failures: connect refused");
    }

    #[test]
    fn transition_carries_reason_and_pending_tracks_streaks() {
        let mut t = Tracker::new(State::Up, 2, 2);
        assert!(t.observe(&ok(false), || SystemTime::UNIX_EPOCH).is_none());
        assert!(t.pending());
        let tr = t.observe(&ok(false), || SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!((tr.from, tr.to), (State::Up, State::Down));
        assert_eq!(tr.reason, "2 consecutive failures: connect refused");
        assert!(!t.pending());
        assert!(t.observe(&ok(false), || SystemTime::UNIX_EPOCH).is_none());
        assert!(!t.pending());
    }
}
