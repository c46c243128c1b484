//! The published state: one immutable [`Snapshot`] behind an atomic
//! pointer. The query path calls [`Store::load`] once per query and takes
//! no lock; the single writer (the controller) builds a whole new snapshot
//! and swaps it in with [`Store::publish`], so a query sees either the old
//! or the new state, never a mix.
//!
//! Zones are immutable and shared between snapshots. What changes while
//! serving (each zone's SOA, each route's answer) lives in `slots`; a
//! health transition builds a new slot vector that shares every unchanged
//! slot with the previous snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use smallvec::SmallVec;

use crate::route::table::{MAX_PICK, Table};
use crate::route::{Client, Trace};
use crate::zone::{Key, Rrset, Zone, owned_key, same};

/// The current content of a slot.
#[derive(Debug)]
pub enum Dyn {
    /// These records.
    Set(Rrset),
    /// One of these record sets, picked per query (multivalue shuffles).
    Choice(Box<[Rrset]>),
    /// No records of this type: NODATA, whose SOA may be cached no longer
    /// than this (the route's current TTL; `u32::MAX`: the zone's
    /// negative TTL applies).
    NoData(u32),
    /// SERVFAIL.
    ServFail,
    /// Whatever another slot holds (a failover tier that names a route).
    Via(Arc<Dyn>),
    /// The first, or the second for a client the first has no answer for
    /// (a nested geo or cidr route without default falls through to the
    /// parent's next tier).
    Else(Arc<Dyn>, Arc<Dyn>),
    /// Chosen per client from a table (weighted, geo, cidr, nearest).
    Routed(Box<Table>),
}

/// A slot's records for one client.
#[derive(Debug, Clone)]
pub enum Served<'a> {
    /// These records.
    Set(&'a Rrset),
    /// These records, one RRset sent in parts (weighted `pick` > 1).
    Parts(SmallVec<[&'a Rrset; MAX_PICK]>),
    /// NODATA, its SOA cached no longer than this.
    NoData(u32),
    /// SERVFAIL.
    ServFail,
}

impl Dyn {
    /// The records for `client` and the ECS scope the choice depended on
    /// (0 when it did not depend on the client). No lock, no allocation;
    /// `trace` collects the steps for `veer explain` (pass `()` otherwise).
    pub fn serve<'a>(&'a self, client: &Client, trace: &mut impl Trace) -> (Served<'a>, u8) {
        match self {
            Dyn::Set(rr) => (Served::Set(rr), 0),
            // Precomputed shuffles: pick one, no per-query allocation.
            Dyn::Choice(sets) => (Served::Set(&sets[fastrand::usize(..sets.len())]), 0),
            Dyn::NoData(ttl) => (Served::NoData(*ttl), 0),
            Dyn::ServFail => (Served::ServFail, 0),
            Dyn::Via(other) => other.serve(client, trace),
            Dyn::Else(first, then) => match first.serve(client, trace) {
                (Served::NoData(_), scope) => {
                    trace.step(|| "no answer for this client: the next tier answers".into());
                    let (served, inner) = then.serve(client, trace);
                    (served, scope.max(inner))
                }
                answered => answered,
            },
            Dyn::Routed(table) if table.pick > 1 => {
                let (entries, scope) = table.pick_many(client, trace);
                let parts = entries
                    .into_iter()
                    .filter_map(|d| match d {
                        Dyn::Set(rr) => Some(rr),
                        _ => None,
                    })
                    .collect();
                (Served::Parts(parts), scope)
            }
            Dyn::Routed(table) => {
                let (next, scope) = table.pick(client, trace);
                // Most routes pick a set: returned here, not copied out of
                // a call (the copy loads in wide words what the call
                // stored in narrow ones, and waits for those stores).
                if let Dyn::Set(rr) = next {
                    return (Served::Set(rr), scope);
                }
                let (served, inner) = next.serve(client, trace);
                // Both choices hold on the narrower of the two blocks.
                (served, scope.max(inner))
            }
        }
    }
}

/// A zone's origin key, its label count, and the zone.
type Origin = (Box<[u8]>, usize, Arc<Zone>);

/// Up to this many zones, [`Snapshot::zone_for`] compares origins.
const FEW_ZONES: usize = 8;

/// Everything needed to answer a query.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases with every publish.
    pub generation: u64,
    /// Zones by origin key.
    zones: FxHashMap<Box<[u8]>, Arc<Zone>>,
    /// The label counts of the origins, longest first.
    origin_labels: Arc<[usize]>,
    /// With a few zones: each origin's key and label count, longest first
    /// (comparing a suffix or two beats hashing one).
    few: Box<[Origin]>,
    /// Current SOAs and route answers, indexed by `zone::Data::Slot`.
    pub slots: Vec<Arc<Dyn>>,
    /// Largest UDP response we send.
    pub max_udp_payload: u16,
    /// Metrics label ([`crate::metrics::POLICIES`] index) of each slot.
    pub slot_policy: Arc<[u8]>,
    /// The admin API's bearer token (`[api] token`), so a reload rotates it.
    pub api_token: Option<Arc<str>>,
    /// Response rate limiting settings (`[rrl]`).
    pub rrl: Arc<crate::rrl::Config>,
    /// DNS cookie secrets (`[cookies]`), so a reload rotates them.
    pub cookies: Option<Arc<crate::cookie::Keys>>,
    /// Zone transfer state: what AXFR and IXFR send, and who may ask.
    pub xfr: Arc<crate::xfr::Xfr>,
    /// The view the admin API shows, consistent with the answers.
    pub status: Arc<crate::status::Status>,
}

impl Snapshot {
    /// A snapshot serving `zones` with `slots`.
    pub fn new(
        generation: u64,
        zones: impl IntoIterator<Item = Arc<Zone>>,
        slots: Vec<Arc<Dyn>>,
        max_udp_payload: u16,
    ) -> Self {
        let zones: FxHashMap<Box<[u8]>, Arc<Zone>> = zones
            .into_iter()
            .map(|z| (owned_key(&z.origin), z))
            .collect();
        let mut origin_labels: Vec<usize> = zones
            .values()
            .map(|z| Key::new(&z.origin).labels())
            .collect();
        origin_labels.sort_unstable_by(|a, b| b.cmp(a));
        origin_labels.dedup();
        let mut few: Vec<_> = if zones.len() <= FEW_ZONES {
            zones
                .iter()
                .map(|(k, z)| (k.clone(), Key::new(&z.origin).labels(), z.clone()))
                .collect()
        } else {
            Vec::new()
        };
        few.sort_unstable_by_key(|o| std::cmp::Reverse(o.1));
        Snapshot {
            generation,
            zones,
            origin_labels: origin_labels.into(),
            few: few.into(),
            slots,
            max_udp_payload,
            ..Default::default()
        }
    }

    /// The most specific zone containing `key`: only suffixes as long as
    /// some origin are looked up (one lookup with one zone).
    pub fn zone_for(&self, key: &Key) -> Option<&Zone> {
        self.zone_for_at(key).map(|(z, _)| z)
    }

    /// [`Snapshot::zone_for`], and where [`Snapshot::zone_at`] finds the
    /// zone again without looking (with a few zones; else None).
    pub fn zone_for_at(&self, key: &Key) -> Option<(&Zone, Option<u8>)> {
        if !self.few.is_empty() {
            let n = key.labels();
            return self
                .few
                .iter()
                .position(|(origin, labels, _)| {
                    *labels <= n && same(key.suffix(n - labels), origin)
                })
                .map(|i| (&*self.few[i].2, Some(i as u8)));
        }
        self.origin_labels
            .iter()
            .filter(|&&n| n <= key.labels())
            .find_map(|&n| self.zones.get(key.suffix(key.labels() - n)))
            .map(|z| (&**z, None))
    }

    /// The zone [`Snapshot::zone_for_at`] found at `at`.
    pub fn zone_at(&self, at: u8) -> Option<&Zone> {
        self.few.get(usize::from(at)).map(|(_, _, z)| &**z)
    }

    /// The zone above `key`'s own (the parent side of a zone cut, which
    /// answers DS queries for a child apex, RFC 4035 3.1.4.1).
    pub fn zone_above(&self, key: &Key) -> Option<&Zone> {
        self.origin_labels
            .iter()
            .filter(|&&n| n < key.labels())
            .find_map(|&n| self.zones.get(key.suffix(key.labels() - n)).map(|z| &**z))
    }

    /// A slot's content.
    pub fn slot(&self, i: usize) -> &Dyn {
        &self.slots[i]
    }

    /// The served SOA of `zone` and the SOA for its negative answers.
    pub fn soa(&self, zone: &Zone) -> (&Rrset, &Rrset) {
        match (&*self.slots[zone.soa_slot], &*self.slots[zone.soa_slot + 1]) {
            (Dyn::Set(soa), Dyn::Set(neg)) => (soa, neg),
            _ => unreachable!("SOA slots always hold a set"),
        }
    }
}

/// The atomic pointer to the current snapshot.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    /// Bumped after every publish: what a [`Reader`] compares.
    version: AtomicU64,
}

impl Store {
    /// A store publishing `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        free_thread();
        Store {
            current: ArcSwap::from_pointee(snapshot),
            version: AtomicU64::new(0),
        }
    }

    /// A reader's own handle on the current snapshot (see [`Reader`]).
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            store: self,
            version: self.version.load(Ordering::Acquire),
            snap: self.current.load_full(),
        }
    }

    /// The current snapshot (one atomic load; no lock), held until the
    /// result is dropped.
    pub fn load(&self) -> Held {
        Held(Some(self.current.load_full()))
    }

    /// The generation of the current snapshot.
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// Publishes the snapshot `make` builds if `generation` is newer than
    /// the current one. Only the controller calls this.
    pub fn publish_if_newer(&self, generation: u64, make: impl FnOnce() -> Snapshot) {
        if self.current.load().generation < generation {
            self.publish(make());
        }
    }

    /// Makes `snapshot` current. Only the controller calls this.
    pub fn publish(&self, snapshot: Snapshot) {
        let old = self.current.swap(Arc::new(snapshot));
        self.version.fetch_add(1, Ordering::Release);
        retire(old);
    }
}

/// A snapshot [`Store::load`] handed out. Dropping it lets go through
/// [`retire`]: a TCP connection, a zone transfer or an API request that
/// held a replaced snapshot last does not free it on its own thread.
pub struct Held(Option<Arc<Snapshot>>);

impl Held {
    /// The snapshot's `Arc` (to watch it with a `Weak`).
    pub fn arc(&self) -> &Arc<Snapshot> {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::Deref for Held {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        self.arc()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(snap) = self.0.take() {
            retire(snap);
        }
    }
}

/// A query thread's handle on the current snapshot: its `load` costs one
/// atomic load while the snapshot stays the same, and it holds the
/// snapshot it last loaded until its next `load`.
pub struct Reader<'s> {
    store: &'s Store,
    version: u64,
    snap: Arc<Snapshot>,
}

impl Reader<'_> {
    /// The current snapshot. A replaced one is let go here, and freed on
    /// a thread of its own if this was its last holder.
    pub fn load(&mut self) -> &Snapshot {
        let v = self.store.version.load(Ordering::Acquire);
        if v != self.version {
            // The version first: a publish after this load is seen at the
            // next call.
            self.version = v;
            retire(std::mem::replace(
                &mut self.snap,
                self.store.current.load_full(),
            ));
        }
        &self.snap
    }
}

/// Lets go of `snap`; if it was the last holder, the snapshot is freed
/// on the thread `veer-free`, not here. Freeing the zones of a replaced
/// snapshot after a reload takes a tenth of a second for a million names:
/// on a query thread that is a tenth of a second without answers, and on
/// the controller's a tenth of a second without health transitions.
fn retire(snap: Arc<Snapshot>) {
    let Some(last) = Arc::into_inner(snap) else {
        return;
    };
    // Without that thread (it could not start), freed here.
    if let Some(tx) = free_thread() {
        #[cfg(test)]
        SENT_TO_FREE.with(|n| n.set(n.get() + 1));
        let _ = tx.send(last);
    }
}

/// The channel to `veer-free`, started at the first call (by
/// [`Store::new`], so not on a query thread); None if it could not start.
fn free_thread() -> Option<&'static mpsc::Sender<Snapshot>> {
    static FREE: OnceLock<Option<mpsc::Sender<Snapshot>>> = OnceLock::new();
    FREE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Snapshot>();
        match std::thread::Builder::new()
            .name("veer-free".into())
            .spawn(move || rx.into_iter().for_each(drop))
        {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(
                    "could not start the thread that frees replaced snapshots ({e}); \
                     they are freed where they are let go"
                );
                None
            }
        }
    })
    .as_ref()
}

#[cfg(test)]
thread_local! {
    /// Snapshots this thread handed to `veer-free`.
    static SENT_TO_FREE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::str::FromStr;

    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::{Name, RData, Record};

    use super::*;
    use crate::zone::parse::Loc;

    fn zone(origin: &str) -> Arc<Zone> {
        let name = Name::from_str(origin).unwrap();
        let soa = SOA::new(name.clone(), name.clone(), 1, 2, 3, 4, 5);
        let loc = Loc {
            file: Arc::from(Path::new("z")),
            line: 1,
        };
        let records = vec![(Record::from_rdata(name.clone(), 5, RData::SOA(soa)), loc)];
        Arc::new(Zone::build(&name, Path::new("z"), records, Vec::new()).unwrap())
    }

    fn origin_for(snap: &Snapshot, name: &str) -> Option<String> {
        let key = Key::new(&Name::from_str(name).unwrap());
        snap.zone_for(&key).map(|z| z.origin.to_string())
    }

    /// A reader that held the last reference to a replaced snapshot
    /// hands it to `veer-free` instead of freeing it (a large zone's free
    /// would stop its queries), and it is freed there.
    #[test]
    fn a_reader_never_frees_a_replaced_snapshot_itself() {
        let store = Store::new(Snapshot::default());
        let mut reader = store.reader();
        let first = Arc::downgrade(&reader.snap);
        let sent = super::SENT_TO_FREE.with(|n| n.get());
        store.publish(Snapshot {
            generation: 1,
            ..Snapshot::default()
        });
        // The reader still holds it: publishing let go of its own only.
        assert!(first.upgrade().is_some());
        assert_eq!(reader.load().generation, 1);
        assert_eq!(super::SENT_TO_FREE.with(|n| n.get()), sent + 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while first.strong_count() > 0 {
            assert!(std::time::Instant::now() < deadline, "never freed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Unchanged: nothing let go.
        assert_eq!(reader.load().generation, 1);
        assert_eq!(super::SENT_TO_FREE.with(|n| n.get()), sent + 1);
    }

    /// A snapshot from `Store::load` held past its replacement (a TCP
    /// query, a zone transfer) goes to `veer-free` when let go last.
    #[test]
    fn a_loaded_snapshot_let_go_last_is_freed_elsewhere() {
        let store = Store::new(Snapshot::default());
        let held = store.load();
        let first = Arc::downgrade(held.arc());
        let sent = super::SENT_TO_FREE.with(|n| n.get());
        store.publish(Snapshot {
            generation: 1,
            ..Snapshot::default()
        });
        assert_eq!(super::SENT_TO_FREE.with(|n| n.get()), sent);
        drop(held);
        assert_eq!(super::SENT_TO_FREE.with(|n| n.get()), sent + 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while first.strong_count() > 0 {
            assert!(std::time::Instant::now() < deadline, "never freed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Not the last: nothing sent.
        let again = store.load();
        drop(again);
        assert_eq!(super::SENT_TO_FREE.with(|n| n.get()), sent + 1);
    }

    /// A few zones are compared, many hashed: both find the most specific
    /// zone, and nothing outside every zone.
    #[test]
    fn the_most_specific_zone_is_found_with_few_and_many_zones() {
        let nested = ["t.", "a.t.", "b.a.t.", "other.test."];
        let few = Snapshot::new(1, nested.iter().map(|o| zone(o)), Vec::new(), 1232);
        assert!(!few.few.is_empty());
        let fillers: Vec<String> = (0..FEW_ZONES).map(|i| format!("f{i}.example.")).collect();
        let many = Snapshot::new(
            1,
            nested
                .iter()
                .map(|o| zone(o))
                .chain(fillers.iter().map(|o| zone(o))),
            Vec::new(),
            1232,
        );
        assert!(many.few.is_empty());
        for snap in [&few, &many] {
            for (name, want) in [
                ("t.", Some("t.")),
                ("www.t.", Some("t.")),
                ("A.T.", Some("a.t.")),
                ("x.a.t.", Some("a.t.")),
                ("b.a.t.", Some("b.a.t.")),
                ("deep.er.B.a.t.", Some("b.a.t.")),
                ("www.other.test.", Some("other.test.")),
                ("test.", None),
                (".", None),
                ("t.example.", None),
            ] {
                assert_eq!(origin_for(snap, name).as_deref(), want, "{name}");
            }
        }
        assert_eq!(
            origin_for(&many, "x.f3.example.").as_deref(),
            Some("f3.example.")
        );
    }
}
