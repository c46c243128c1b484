//! The published state: one immutable [`Snapshot`] behind an atomic
//! pointer. The query path calls [`Store::load`] once per query and takes
//! no lock; the single writer builds a whole new snapshot and swaps it in
//! with [`Store::publish`], so a query sees either the old or the new
//! state, never a mix.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use crate::zone::{Key, Zone, owned_key};

/// Everything needed to answer a query.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases with every publish.
    pub generation: u64,
    /// Zones by origin key.
    zones: FxHashMap<Box<[u8]>, Arc<Zone>>,
    /// Largest UDP response we send.
    pub max_udp_payload: u16,
}

impl Snapshot {
    /// A snapshot serving `zones`.
    pub fn new(
        generation: u64,
        zones: impl IntoIterator<Item = Arc<Zone>>,
        max_udp_payload: u16,
    ) -> Self {
        let zones = zones
            .into_iter()
            .map(|z| (owned_key(&z.origin), z))
            .collect();
        Snapshot {
            generation,
            zones,
            max_udp_payload,
        }
    }

    /// The most specific zone containing `key`, with the number of labels
    /// of `key` below its apex.
    pub fn zone_for(&self, key: &Key) -> Option<&Zone> {
        (0..=key.labels()).find_map(|i| self.zones.get(key.suffix(i)).map(|z| &**z))
    }

    /// Every zone, in no particular order.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }
}

/// The atomic pointer to the current snapshot.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
}

impl Store {
    /// A store publishing `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Store {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current snapshot (one atomic load; no lock).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `snapshot` current. Only the controller calls this.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
