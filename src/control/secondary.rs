//! The controller's side of secondary zones: which start expired, the
//! tasks that fetch them, and taking a fetched zone into the served state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::rr::Name;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::build::Base;
use super::{Controller, next_serial};
use crate::xfr::client::Source;
use crate::xfr::journal::newer;
use crate::xfr::secondary::{Handle, Status, Task, Update, load_meta};

/// Secondary zones without a copy that serves, or whose copy expired.
pub(super) fn expired_at_start(base: &Base) -> FxHashSet<Name> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    base.config
        .zones
        .iter()
        .filter(|z| !z.primaries.is_empty())
        // No data (no copy, or one that could not be served): the
        // placeholder, which must not answer.
        .filter(|z| {
            !base.transferred.contains_key(&z.origin)
                || load_meta(&z.file).is_none_or(|m| m.expires_at <= now)
        })
        .map(|z| z.origin.clone())
        .collect()
}

/// The expired set after a reload from `old` to `new`: a zone that is no
/// longer a secondary (removed, or served from a file now) leaves it; a
/// zone that is newly a secondary starts as its copy says (SERVFAIL
/// without one, not the placeholder's NXDOMAIN until its task's first
/// refresh ends); the others keep their state.
pub(super) fn expired_after_reload(
    old: &Base,
    new: &Base,
    expired: &FxHashSet<Name>,
) -> FxHashSet<Name> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let was_secondary = |o: &Name| {
        old.config
            .zones
            .iter()
            .any(|z| &z.origin == o && !z.primaries.is_empty())
    };
    new.config
        .zones
        .iter()
        .filter(|z| !z.primaries.is_empty())
        .filter(|z| {
            if was_secondary(&z.origin) {
                expired.contains(&z.origin)
            } else {
                !new.transferred.contains_key(&z.origin)
                    || load_meta(&z.file).is_none_or(|m| m.expires_at <= now)
            }
        })
        .map(|z| z.origin.clone())
        .collect()
}

/// A zone's primaries with their keys (a new secret restarts the task).
type Primaries = Vec<(SocketAddr, Option<crate::tsig::Key>)>;

/// The running tasks, by zone.
#[derive(Default)]
pub struct Secondaries {
    tasks: FxHashMap<Name, (Primaries, AbortHandle, Arc<Handle>)>,
}

impl Drop for Secondaries {
    fn drop(&mut self) {
        for (_, abort, _) in self.tasks.values() {
            abort.abort();
        }
    }
}

impl Secondaries {
    /// Starts a task for every secondary zone of `base` that has none (or
    /// whose primaries changed) and stops those of zones gone.
    pub fn update(&mut self, base: &Base, updates: &mpsc::UnboundedSender<Update>) {
        let wanted: FxHashMap<Name, Primaries> = base
            .config
            .zones
            .iter()
            .filter(|z| !z.primaries.is_empty())
            .map(|z| {
                (
                    z.origin.clone(),
                    z.primaries
                        .iter()
                        .map(|p| {
                            let key = p.key.as_ref().and_then(|k| {
                                base.config.keys.iter().find(|c| c.name() == k).cloned()
                            });
                            (p.address, key)
                        })
                        .collect(),
                )
            })
            .collect();
        self.tasks.retain(|origin, (primaries, abort, _)| {
            let keep = wanted.get(origin) == Some(primaries);
            if !keep {
                abort.abort();
            }
            keep
        });
        for z in base.config.zones.iter().filter(|z| !z.primaries.is_empty()) {
            if self.tasks.contains_key(&z.origin) {
                continue;
            }
            let primaries = wanted[&z.origin].clone();
            let sources = primaries
                .iter()
                .map(|(address, key)| Source {
                    address: *address,
                    key: key.clone(),
                })
                .collect();
            // The records served (no second decode of the copy), with the
            // copy's timers.
            let held = base.transferred.get(&z.origin).cloned().and_then(|r| {
                let mut meta = load_meta(&z.file)?;
                // The copy on disk may lag what is served.
                meta.serial = r.iter().find_map(|r| match &r.data {
                    hickory_proto::rr::RData::SOA(s) => Some(s.serial),
                    _ => None,
                })?;
                Some((meta, r))
            });
            let handle = Arc::new(Handle {
                trigger: tokio::sync::Notify::new(),
                primaries: primaries
                    .iter()
                    .map(|(a, k)| (*a, k.as_ref().map(|k| k.name().clone())))
                    .collect(),
                status: std::sync::Mutex::new(Status {
                    zone: z.origin.to_string(),
                    primaries: primaries.iter().map(|(a, _)| a.to_string()).collect(),
                    serial: held.as_ref().map(|(m, _)| m.serial),
                    ..Status::default()
                }),
            });
            let task = Task {
                origin: z.origin.clone(),
                sources,
                path: z.file.clone(),
                held,
                handle: handle.clone(),
                updates: updates.clone(),
            };
            let abort = tokio::spawn(task.run()).abort_handle();
            self.tasks
                .insert(z.origin.clone(), (primaries, abort, handle));
        }
    }

    /// The handles, for the snapshot (NOTIFY in, status).
    pub fn handles(&self) -> FxHashMap<Name, Arc<Handle>> {
        self.tasks
            .iter()
            .map(|(n, (_, _, h))| (n.clone(), h.clone()))
            .collect()
    }
}

impl Controller {
    /// Takes a task's update into the served state.
    pub(super) fn secondary_update(&mut self, u: Update) {
        match u {
            Update::Expired { origin, expired } => {
                if !self.is_secondary(&origin) {
                    // A task a reload stopped (the zone went, or is
                    // served from a file now): its word no longer counts.
                    return;
                }
                let changed = if expired {
                    self.expired.insert(origin.clone())
                } else {
                    self.expired.remove(&origin)
                };
                if changed && let Some(i) = self.zone_index(&origin) {
                    self.set_soa_slots(i);
                    self.generation += 1;
                }
            }
            Update::Zone {
                origin,
                records,
                reply,
            } => {
                let _ = reply.send(self.take_transferred(&origin, records));
            }
        }
    }

    /// `origin` is configured, as a secondary zone.
    fn is_secondary(&self, origin: &Name) -> bool {
        self.base
            .config
            .zones
            .iter()
            .any(|z| &z.origin == origin && !z.primaries.is_empty())
    }

    fn zone_index(&self, origin: &Name) -> Option<usize> {
        self.base.zones.iter().position(|z| &z.origin == origin)
    }

    fn set_soa_slots(&mut self, i: usize) {
        let [soa, neg] = self.soa_pair(i);
        let slot = self.base.zones[i].soa_slot;
        self.slots[slot] = Arc::new(soa);
        self.slots[slot + 1] = Arc::new(neg);
    }

    /// Serves `records` as secondary zone `origin`: the zone is built with
    /// the routes over it; the served serial follows the primary's when it
    /// is newer, else moves on by one (routes may have raised ours).
    fn take_transferred(
        &mut self,
        origin: &Name,
        records: Arc<Vec<hickory_proto::rr::Record>>,
    ) -> Result<(), String> {
        let i = self
            .zone_index(origin)
            .filter(|_| self.is_secondary(origin))
            .ok_or_else(|| format!("zone {origin} is no longer configured as a secondary"))?;
        // The first data the zone has, and no serial served before (the
        // placeholder's 0, never transferred out): the primary's serial
        // whatever it is. A serial from the checkpoint was served: it
        // only moves forward.
        let first = !self.base.transferred.contains_key(origin) && self.serials[i] == 0;
        let base = self.base.with_transferred(i, records)?;
        let transferred = base.zones[i].file_serial();
        self.base = Arc::new(base);
        self.serials[i] = if first || newer(transferred, self.serials[i]) {
            transferred
        } else {
            next_serial(self.serials[i])
        };
        self.expired.remove(origin);
        self.set_soa_slots(i);
        self.generation += 1;
        self.save_checkpoint();
        Ok(())
    }
}

#[cfg(test)]
#[path = "secondary_tests.rs"]
mod tests;
