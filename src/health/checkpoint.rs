//! Checkpointed health: the observed state of every check and the served
//! SOA serial of every zone, written atomically (temp file + rename) into
//! `state_dir` on every transition, so a restart answers right before any
//! probe has completed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::State;

/// The checkpoint file's name inside `state_dir`.
pub const FILE: &str = "health.json";

/// What is saved.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// By check name.
    pub checks: BTreeMap<String, Saved>,
    /// Served SOA serial by zone origin.
    pub serials: BTreeMap<String, u32>,
    /// The prober guard's memory.
    #[serde(default)]
    pub guard: super::guard::Saved,
}

/// One check's saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// Observed state.
    pub state: State,
    /// Fingerprint of the check's definition: restored as is if unchanged.
    pub definition: String,
    /// Fingerprint of what it probes: restored provisionally if changed.
    #[serde(default)]
    pub target: String,
    /// The state was assumed or provisional, not seen by a probe.
    #[serde(default)]
    pub assumed: bool,
    /// Seconds since the epoch of the last transition.
    pub since: u64,
    /// Why.
    pub reason: String,
}

/// A stable fingerprint (FNV-1a 64) of a check definition.
pub fn fingerprint(definition: &str) -> String {
    use crate::zone::parse::{FNV_START, fnv64};
    format!("{:016x}", fnv64(FNV_START, definition.as_bytes()))
}

/// Seconds since the epoch.
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Back from seconds since the epoch.
pub fn from_epoch_secs(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(s)
}

/// The checkpoint path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the checkpoint in `dir`; a missing file is an empty checkpoint.
pub fn load(dir: &Path) -> io::Result<Checkpoint> {
    match std::fs::read(path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Checkpoint::default()),
        Err(e) => Err(e),
    }
}

/// Writes the checkpoint atomically and durably.
pub fn save(dir: &Path, c: &Checkpoint) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(c).map_err(io::Error::other)?;
    crate::durable::replace(dir, FILE, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Checkpoint::default());
        let mut c = Checkpoint::default();
        c.checks.insert(
            "web".into(),
            Saved {
                state: State::Down,
                definition: fingerprint("x"),
                target: fingerprint("y"),
                assumed: false,
                since: 5,
                reason: "r".into(),
            },
        );
        c.serials.insert("example.test.".into(), 7);
        save(dir.path(), &c).unwrap();
        assert_eq!(load(dir.path()).unwrap(), c);
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}
