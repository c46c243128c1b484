//! Health decided by a fleet: which instances probe a check, and what
//! their votes decide. Pure (time is an argument), so every instance that
//! holds the same votes computes the same verdict.
//!
//! - **Assignment.** `probers = k` instances probe each check: the k live
//!   instances with the highest rendezvous score for the check's name
//!   ([`assigned`]). When one disappears, the next in score order takes
//!   its place, and no other check moves.
//! - **Votes** are verdicts (after each instance's own fall/rise), with the
//!   time they were observed; a vote older than `peer_timeout` is stale.
//! - **Verdict.** Down when at least q of the assigned probers vote Down,
//!   Up when at least q vote Up ([`decide`]); otherwise the previous
//!   verdict holds. With fewer than q fresh votes the instance is
//!   degraded: it decides from its own probing, and says so.
//!
//! This module is the decision only; the fleet channel that carries the
//! votes between instances is not built yet.

use std::time::{Duration, SystemTime};

use super::State;

/// The rendezvous score of `instance` for `check`: FNV-1a (64 bit) over
/// the check's name, a zero byte and the instance's name, then a final
/// avalanche (SplitMix64), so every instance and version computes the
/// same order.
pub fn score(check: &str, instance: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in check.bytes().chain([0]).chain(instance.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The `k` instances of `live` that probe `check`, highest score first
/// (ties broken by name). `k` at least the number live: all of them.
pub fn assigned<'a>(check: &str, live: &[&'a str], k: usize) -> Vec<&'a str> {
    let mut ranked: Vec<(u64, &'a str)> = live.iter().map(|i| (score(check, i), *i)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked.into_iter().take(k).map(|(_, i)| i).collect()
}

/// How many agreeing votes decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// ⌊k/2⌋ + 1 of the k assigned probers.
    Majority,
    /// This many.
    Count(usize),
}

impl Quorum {
    /// The number of votes needed among `k` assigned probers.
    pub fn needed(self, k: usize) -> usize {
        match self {
            Quorum::Majority => k / 2 + 1,
            Quorum::Count(q) => q,
        }
    }
}

/// One instance's verdict on a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vote {
    /// Up or Down (Unknown: no verdict yet, counts for nothing).
    pub state: State,
    /// When the instance observed it.
    pub at: SystemTime,
}

/// What the votes decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// At least q fresh votes agree.
    Verdict(State),
    /// Enough fresh votes, but neither side has q: the previous verdict
    /// holds.
    Split,
    /// Fewer than q fresh votes: decide from this instance's own probing.
    Degraded,
}

/// The verdict on a check from the votes of its `assigned` probers
/// (`votes(instance)` gives an instance's vote), `q` of them needed,
/// votes older than `timeout` at `now` ignored.
pub fn decide(
    assigned: &[&str],
    votes: impl Fn(&str) -> Option<Vote>,
    q: usize,
    now: SystemTime,
    timeout: Duration,
) -> Decided {
    let fresh: Vec<State> = assigned
        .iter()
        .enumerate()
        // An instance named twice votes once.
        .filter(|(n, i)| !assigned[..*n].contains(i))
        .filter_map(|(_, i)| votes(i))
        .filter(|v| {
            // A vote from a clock ahead of ours is fresh, by as much as
            // `timeout` only: else a peer whose clock runs far ahead would
            // vote on long after it stopped.
            match now.duration_since(v.at) {
                Ok(age) => age <= timeout,
                Err(ahead) => ahead.duration() <= timeout,
            }
        })
        .map(|v| v.state)
        .filter(|s| *s != State::Unknown)
        .collect();
    let q = q.max(1);
    let down = fresh.iter().filter(|s| **s == State::Down).count();
    let up = fresh.len() - down;
    if down >= q {
        Decided::Verdict(State::Down)
    } else if up >= q {
        Decided::Verdict(State::Up)
    } else if fresh.len() >= q {
        Decided::Split
    } else {
        Decided::Degraded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_moves_only_the_lost_prober() {
        let fleet = ["ns1", "ns2", "ns3", "ns4", "ns5"];
        let checks: Vec<String> = (0..200).map(|i| format!("check-{i}")).collect();
        let mut load = std::collections::HashMap::new();
        for c in &checks {
            let a = assigned(c, &fleet, 2);
            assert_eq!(a.len(), 2);
            assert_eq!(
                a,
                assigned(c, &["ns5", "ns4", "ns3", "ns2", "ns1"], 2),
                "order of peers"
            );
            for i in &a {
                *load.entry(*i).or_insert(0) += 1;
            }
            // ns3 gone: a check it probed gets the next instance; the
            // other prober stays; checks it did not probe do not move.
            let without: Vec<&str> = fleet.iter().copied().filter(|i| *i != "ns3").collect();
            let b = assigned(c, &without, 2);
            if a.contains(&"ns3") {
                let kept: Vec<_> = a.iter().filter(|i| **i != "ns3").collect();
                assert!(kept.iter().all(|i| b.contains(i)), "{c}: {a:?} -> {b:?}");
            } else {
                assert_eq!(a, b, "{c}");
            }
        }
        // Spread: each of 5 instances gets roughly 2/5 of 200 checks.
        for (i, n) in &load {
            assert!((50..=110).contains(n), "{i} probes {n} of 200");
        }
        assert_eq!(assigned("x", &fleet, 9).len(), 5, "k above the fleet: all");
        // A fixed value, so a change of the hash is a visible decision.
        // (computed independently from the definition above)
        assert_eq!(score("web", "ns1"), 0x7940_0969_2377_598c);
        assert_ne!(score("web", "ns1"), score("ns1", "web"));
    }

    #[test]
    fn votes_decide_by_quorum_and_stale_ones_degrade() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let t = Duration::from_secs(3);
        let v = |state, age: u64| {
            Some(Vote {
                state,
                at: now - Duration::from_secs(age),
            })
        };
        let fleet = ["a", "b", "c"];
        let q = Quorum::Majority.needed(3);
        assert_eq!(q, 2);
        let with = |a, b, c| {
            move |i: &str| match i {
                "a" => a,
                "b" => b,
                _ => c,
            }
        };
        use State::{Down, Unknown, Up};
        // One vantage point down: stays up.
        assert_eq!(
            decide(&fleet, with(v(Down, 0), v(Up, 0), v(Up, 1)), q, now, t),
            Decided::Verdict(Up)
        );
        // Two of three down: down.
        assert_eq!(
            decide(&fleet, with(v(Down, 0), v(Down, 2), v(Up, 0)), q, now, t),
            Decided::Verdict(Down)
        );
        // Two stale peers: degraded.
        assert_eq!(
            decide(&fleet, with(v(Down, 0), v(Down, 9), None), q, now, t),
            Decided::Degraded
        );
        // n = 2, majority: both must agree; one alone is degraded; a
        // disagreement is a split (the previous verdict holds).
        let two = ["a", "b"];
        let q2 = Quorum::Majority.needed(2);
        assert_eq!(q2, 2);
        assert_eq!(
            decide(&two, with(v(Down, 0), v(Up, 0), None), q2, now, t),
            Decided::Split
        );
        assert_eq!(
            decide(&two, with(v(Down, 0), None, None), q2, now, t),
            Decided::Degraded
        );
        assert_eq!(
            decide(&two, with(v(Down, 0), v(Down, 0), None), q2, now, t),
            Decided::Verdict(Down)
        );
        // Unknown counts for nothing; a clock a little ahead of ours is fresh.
        let ahead = Some(Vote {
            state: Down,
            at: now + Duration::from_secs(2),
        });
        assert_eq!(
            decide(&fleet, with(v(Unknown, 0), ahead, v(Down, 0)), q, now, t),
            Decided::Verdict(Down)
        );
        assert_eq!(Quorum::Count(1).needed(3), 1);
        // A clock far ahead: the vote is stale, not fresh for ever.
        let far = Some(Vote {
            state: Down,
            at: now + Duration::from_secs(3600),
        });
        assert_eq!(
            decide(&fleet, with(far, v(Down, 0), v(Up, 0)), q, now, t),
            Decided::Split
        );
        // An instance listed twice votes once.
        assert_eq!(
            decide(
                &["a", "a", "b"],
                with(v(Down, 0), v(Up, 0), None),
                q,
                now,
                t
            ),
            Decided::Split
        );
        // k = 0 or nobody live: no votes, degraded; q = 0 counts as 1.
        assert!(assigned("x", &fleet, 0).is_empty());
        assert!(assigned("x", &[], 2).is_empty());
        assert_eq!(
            decide(
                &[],
                with(None, None, None),
                Quorum::Majority.needed(0),
                now,
                t
            ),
            Decided::Degraded
        );
        assert_eq!(
            decide(&fleet, with(v(Up, 0), None, None), 0, now, t),
            Decided::Verdict(Up)
        );
    }
}
