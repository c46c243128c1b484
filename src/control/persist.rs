//! Persistence: the checkpoint (health, served serials, the guard's
//! memory) written off the controller's thread, durably.

use std::path::PathBuf;

use super::Controller;
use crate::health::State;
use crate::health::checkpoint::{self, Checkpoint, Saved};

impl Controller {
    /// Hands the states to the checkpoint writer (inline before `run`).
    pub(super) fn save_checkpoint(&self) {
        if !self.persist {
            return;
        }
        let Some(dir) = &self.base.config.server.state_dir else {
            return;
        };
        let config = &self.base.config;
        let c = Checkpoint {
            checks: config
                .checks
                .iter()
                .zip(&self.health)
                .zip(&self.base.fingerprints)
                .filter(|((_, h), _)| h.observed != State::Unknown)
                .map(|((c, h), (definition, target))| {
                    let saved = Saved {
                        state: h.observed,
                        definition: definition.clone(),
                        target: target.clone(),
                        assumed: !h.established,
                        since: checkpoint::epoch_secs(h.since),
                        reason: h.reason.clone(),
                    };
                    (c.name.clone(), saved)
                })
                .collect(),
            serials: self
                .base
                .zones
                .iter()
                .zip(&self.serials)
                .map(|(z, s)| (z.origin.to_string(), *s))
                .collect(),
            guard: self.guard.save(
                &config
                    .checks
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
            ),
        };
        match &self.checkpoints {
            Some(tx) => {
                tx.send_replace(Some(c));
            }
            None => {
                if let Err(e) = checkpoint::save(dir, &c) {
                    tracing::warn!("cannot write {}: {e}", checkpoint::path(dir).display());
                }
            }
        }
    }
}

/// Writes the latest checkpoint off the controller's thread; a burst of
/// transitions ends in one write of the last state.
pub(super) async fn write_checkpoints(
    dir: PathBuf,
    mut rx: tokio::sync::watch::Receiver<Option<Checkpoint>>,
) {
    while rx.changed().await.is_ok() {
        let Some(c) = rx.borrow_and_update().clone() else {
            continue;
        };
        let dir = dir.clone();
        let result =
            tokio::task::spawn_blocking(move || checkpoint::save(&dir, &c).map_err(|e| (e, dir)))
                .await;
        if let Ok(Err((e, dir))) = result {
            tracing::warn!("cannot write {}: {e}", checkpoint::path(&dir).display());
        }
    }
}
