//! What travels between instances: one JSON document per answer.
//!
//! ```json
//! {"instance": "ns1", "seq": 7, "time_ms": 1764500000000,
//!  "votes": [{"check": "web", "hash": "9f…", "state": "down", "since_ms": 1764499990000, "streak": 0}],
//!  "overrides": [{"check": "web", "state": "down", "until_ms": null, "reason": "…", "set_ms": 1764499000000}]}
//! ```
//!
//! Times are milliseconds since the epoch, for display and for ordering
//! fleet overrides; freshness is judged by when a peer was heard, on the
//! follower's own clock, so clock skew never makes a vote fresh.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::health::State;

/// Most bytes of one peer answer read (a few hundred bytes per check).
pub const MAX_FEED_BYTES: usize = 8 << 20;

/// Longest check name, hash or override reason taken from a peer.
pub const MAX_TEXT: usize = 256;

/// How far ahead of this instance's clock a peer's time may be (an
/// override "set" further in the future would win against every later
/// one): a day.
const MAX_AHEAD_MS: u64 = 86_400_000;

/// One instance's verdicts and fleet overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Feed {
    /// The instance's `[fleet] name`.
    pub instance: String,
    /// Raised by every change of what follows.
    pub seq: u64,
    /// The instance's clock when it answered.
    pub time_ms: u64,
    /// Its verdict on each check it probes.
    pub votes: Vec<Vote>,
    /// Overrides made with `fleet = true` on this instance.
    pub overrides: Vec<FleetOverride>,
}

/// One instance's verdict on one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The check's name.
    pub check: String,
    /// Fingerprint of the check's definition: a peer whose definition
    /// differs does not vote on it.
    pub hash: String,
    /// The verdict after the instance's own fall/rise.
    pub state: State,
    /// When the verdict was reached.
    pub since_ms: u64,
    /// Consecutive results disagreeing with it (counters moving).
    pub streak: u32,
}

impl Vote {
    /// Short texts, and no time past `limit` (ms).
    fn valid(&self, limit: u64) -> bool {
        self.check.len() <= MAX_TEXT && self.hash.len() <= MAX_TEXT && self.since_ms <= limit
    }
}

impl FleetOverride {
    /// Short texts, and set no later than `limit` (ms); an expiry may be
    /// far off, but not past the year 9999.
    pub fn valid(&self, limit: u64) -> bool {
        self.check.len() <= MAX_TEXT
            && self.reason.len() <= MAX_TEXT
            && self.set_ms <= limit
            && self.until_ms.is_none_or(|u| u <= MAX_MS)
    }
}

/// The last millisecond of the year 9999 (RFC 3339's last year).
pub const MAX_MS: u64 = 253_402_300_799_999;

/// An override made with `fleet = true`: set (`state`) or cleared (None).
/// For each check the most recent one of the fleet applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetOverride {
    /// The check's name.
    pub check: String,
    /// The forced state; None: the override was cleared.
    pub state: Option<State>,
    /// When it stops applying.
    pub until_ms: Option<u64>,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// When it was made (orders overrides of different instances).
    pub set_ms: u64,
}

/// The envelope, read leniently: votes and overrides are checked one by one.
#[derive(Deserialize)]
struct Raw {
    instance: String,
    seq: u64,
    time_ms: u64,
    #[serde(default)]
    votes: Vec<serde_json::Value>,
    #[serde(default)]
    overrides: Vec<serde_json::Value>,
}

/// A peer's answer: the feed, and how many entries were ignored (that
/// did not parse, or carry texts over [`MAX_TEXT`] or times more than a
/// day ahead of `now`).
pub fn parse(bytes: &[u8], now: SystemTime) -> Result<(Feed, usize), String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a fleet answer: {e}"))?;
    let (n_votes, n_overrides) = (raw.votes.len(), raw.overrides.len());
    let limit = ms(now).saturating_add(MAX_AHEAD_MS);
    let votes: Vec<Vote> = raw
        .votes
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Vote>(v).ok())
        .filter(|v| v.valid(limit))
        .collect();
    let overrides: Vec<FleetOverride> = raw
        .overrides
        .into_iter()
        .filter_map(|v| serde_json::from_value::<FleetOverride>(v).ok())
        .filter(|o| o.valid(limit))
        .collect();
    let ignored = n_votes + n_overrides - votes.len() - overrides.len();
    Ok((
        Feed {
            instance: raw.instance,
            seq: raw.seq,
            time_ms: raw.time_ms,
            votes,
            overrides,
        },
        ignored,
    ))
}

/// Milliseconds since the epoch.
pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Back from milliseconds since the epoch.
pub fn from_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lenient_entries() {
        let f = Feed {
            instance: "ns1".into(),
            seq: 3,
            time_ms: 5,
            votes: vec![Vote {
                check: "web".into(),
                hash: "ab".into(),
                state: State::Down,
                since_ms: 4,
                streak: 1,
            }],
            overrides: vec![FleetOverride {
                check: "web".into(),
                state: None,
                until_ms: None,
                reason: String::new(),
                set_ms: 2,
            }],
        };
        let bytes = serde_json::to_vec(&f).unwrap();
        assert_eq!(parse(&bytes, SystemTime::now()).unwrap(), (f, 0));
        let (f, ignored) = parse(
            br#"{"instance":"ns2","seq":1,"time_ms":1,"votes":[{"check":"a","hash":"h","state":"sideways","since_ms":1,"streak":0},7,{"check":"b","hash":"h","state":"up","since_ms":1,"streak":0}]}"#,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(
            (f.votes.len(), f.votes[0].check.as_str(), ignored),
            (1, "b", 2)
        );
        assert!(parse(br#"{"instance":"ns2","seq":"x"}"#, SystemTime::now()).is_err());
        assert!(parse(b"\xff garbage", SystemTime::now()).is_err());
        // A time far ahead, or an over-long text, is ignored.
        let (f, ignored) = parse(
            br#"{"instance":"ns2","seq":1,"time_ms":1,"votes":[{"check":"a","hash":"h","state":"up","since_ms":300000000000000,"streak":0}],"overrides":[{"check":"a","state":"down","until_ms":null,"reason":"","set_ms":18446744073709551615}]}"#,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!((f.votes.len(), f.overrides.len(), ignored), (0, 0, 2));
    }
}
