//! The engine: one thread that probes every plain-http check (the minimal
//! client's: `http://` without a proxy, the bulk of most configs), its
//! status and any body text it expects, without a task, a tokio timer or
//! a tokio socket per probe.
//!
//! Why: with a task per probe, most of a probe's user time went to the
//! machinery around its few syscalls: registering and deregistering the
//! socket with tokio's reactor (allocations, a lock, an `epoll_ctl` to
//! remove it), waking and polling the task two or three times, the shared
//! timer's heap and wakers, and a turn of the runtime for each wakeup.
//! Here a probe is a slot in a table. Its socket goes into the engine's
//! own epoll set (closing the socket takes it out, with no syscall of its
//! own); its start and timeout are plain numbers in a heap and in FIFO
//! queues; its result is judged and counted where its event is read. The
//! thread sleeps in `epoll_wait` until a socket is ready, the next entry
//! is due, or a command arrives (an eventfd).
//!
//! A probe's task still owns the probe's life: it lends its [`Steady`]
//! state to the engine ([`Engine::lend`]) and waits, without being polled,
//! until the engine hands it back. That happens when the fleet changes
//! the probe's activity (the task then does what it always did: pause,
//! or start over from a seed) or when the controller is gone. A task
//! aborted by a reload drops its lend future, which tells the engine to
//! drop the lease at once ([`Cmd::Forget`]), so an aborted probe neither
//! probes again nor reports.
//!
//! A probe here goes through the same steps as in its task: the start
//! spread and jitter, starts held back by their slack to go together, the
//! timeout (fired at most [`timeout_slack`] late, a result after it being
//! a timeout), retries with backoff, local faults retried and not
//! counted, `invert`, and reports only when something changed
//! ([`Steady::settle`]). The engine's clock is the real one, also in tests
//! with tokio's time paused. If the engine cannot start (no eventfd,
//! epoll set or thread), leases come back refused and the tasks probe as
//! before.
//!
//! [`timeout_slack`]: crate::health::probe::timeout_slack

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Retries, Steady, Step};
use crate::health::Outcome;
use crate::health::probe::{self, Exchange, ProbeError, Progress};

/// Events read from the epoll set at a time.
const EVENTS: usize = 64;

/// The epoll data of the engine's eventfd (a socket's is its slot and
/// round, never all ones).
const WAKE: u64 = u64::MAX;

/// The engine's handle, cloned into every probe task (through
/// `Clients`). Its thread starts with the first lease and ends when the
/// last handle is gone.
#[derive(Clone, Default)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

struct Shared {
    tx: Sender<Cmd>,
    /// Taken by the thread when it starts.
    rx: Mutex<Option<Receiver<Cmd>>>,
    /// Written after every command: the thread waits in epoll_wait, where
    /// a channel alone would not wake it. None: no eventfd to be had.
    wake: Option<Arc<OwnedFd>>,
    /// The engine cannot run: tasks probe on their own.
    refused: Arc<AtomicBool>,
    /// The last handle is gone: the thread ends.
    stop: Arc<AtomicBool>,
}

impl Default for Shared {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let wake = eventfd().map(Arc::new);
        Shared {
            tx,
            rx: Mutex::new(Some(rx)),
            refused: Arc::new(AtomicBool::new(wake.is_err())),
            wake: wake.ok(),
            stop: Arc::default(),
        }
    }
}

impl Shared {
    fn send(&self, cmd: Cmd) -> Result<(), Cmd> {
        self.tx.send(cmd).map_err(|e| e.0)?;
        if let Some(fd) = &self.wake {
            signal(fd.as_raw_fd());
        }
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(fd) = &self.wake {
            signal(fd.as_raw_fd());
        }
    }
}

/// How a lease ended.
#[derive(Debug)]
pub enum Lent {
    /// Handed back: the activity changed, or the controller is gone
    /// (`Steady::gone`).
    Back(Steady),
    /// The engine cannot run: probe in the task from now on.
    Refused(Steady),
    /// The engine ended with the lease (veer is shutting down).
    Lost,
}

enum Cmd {
    Lend(Box<Lease>),
    /// The activity of lease `id`'s probe changed: hand it back.
    Recall(u64),
    /// The task of lease `id` is gone (aborted): drop the lease.
    Forget(u64),
}

/// A probe's state while the engine has it.
struct Lease {
    /// The lease's own number (see [`Cmd::Forget`]).
    id: u64,
    st: Steady,
    source: Option<IpAddr>,
    back: oneshot::Sender<Steady>,
}

impl Engine {
    /// Lends `st` (a `Prepared::plain_http` check, not paused) to the
    /// engine, probing from `source`, until it comes back.
    pub async fn lend(&self, st: Steady, source: Option<IpAddr>) -> Lent {
        let shared = &self.shared;
        if shared.refused.load(Ordering::Relaxed) || !self.start() {
            return Lent::Refused(st);
        }
        let (back, mut back_rx) = oneshot::channel();
        // Sees the activity's changes from where the task left off (a
        // clone has seen what the original has), without marking them
        // seen for the task.
        let mut activity = st.active.clone();
        static IDS: AtomicU64 = AtomicU64::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let lease = Lease {
            id,
            st,
            source,
            back,
        };
        if let Err(cmd) = shared.send(Cmd::Lend(Box::new(lease))) {
            // The engine's thread is gone.
            return match cmd {
                Cmd::Lend(lease) => Lent::Refused(lease.st),
                _ => Lent::Lost,
            };
        }
        // If this future is dropped before the lease comes back (the task
        // was aborted), the engine hears of it at once, so it checks
        // nothing per probe to find out.
        let mut forget = Forget {
            shared,
            id: Some(id),
        };
        let changed = async {
            match &mut activity {
                Some(a) => {
                    let _ = a.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        let got = tokio::select! {
            r = &mut back_rx => r,
            () = changed => {
                let _ = shared.send(Cmd::Recall(id));
                back_rx.await
            }
        };
        forget.id = None;
        match got {
            Ok(st) if shared.refused.load(Ordering::Relaxed) => Lent::Refused(st),
            Ok(st) => Lent::Back(st),
            Err(_) => Lent::Lost,
        }
    }

    /// Starts the engine's thread, once; false if it cannot run.
    fn start(&self) -> bool {
        let shared = &self.shared;
        let rx = shared
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let (Some(rx), Some(wake)) = (rx, &shared.wake) else {
            return !shared.refused.load(Ordering::Relaxed);
        };
        let (wake, refused, stop) = (wake.clone(), shared.refused.clone(), shared.stop.clone());
        let started = std::thread::Builder::new()
            .name("veer-http-probes".into())
            .spawn(move || serve(&rx, &wake, &refused, &stop));
        if let Err(e) = started {
            tracing::warn!("cannot start the probe engine ({e}); every probe runs as its own task");
            shared.refused.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Tells the engine that lease `id` (if any) has no task any more.
struct Forget<'a> {
    shared: &'a Shared,
    id: Option<u64>,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let _ = self.shared.send(Cmd::Forget(id));
        }
    }
}

/// Ends the process if the engine panics: every probe it holds would stop
/// while answers go on, health frozen. Better that the supervisor
/// restarts veer (as when the probe thread fails).
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the probe engine failed; health cannot change, so veer stops");
            std::process::abort();
        }
    }
}

/// The engine's thread: waits in epoll_wait for sockets, commands (the
/// eventfd) and the next due entry, until the last handle is gone.
fn serve(rx: &Receiver<Cmd>, wake: &OwnedFd, refused: &AtomicBool, stop: &AtomicBool) {
    let _abort = AbortOnPanic;
    let epoll = epoll_create().and_then(|ep| {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE,
        };
        // SAFETY: `ev` is valid for the call; both descriptors are open.
        if unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                wake.as_raw_fd(),
                &mut ev,
            )
        } < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(ep)
    });
    let epoll = match epoll {
        Ok(ep) => ep,
        Err(e) => {
            tracing::warn!("cannot start the probe engine ({e}); every probe runs as its own task");
            refused.store(true, Ordering::SeqCst);
            // Leases sent before the flag was seen go back, refused.
            while !stop.load(Ordering::SeqCst) {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Cmd::Lend(lease)) => {
                        let _ = lease.back.send(lease.st);
                    }
                    Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            return;
        }
    };
    let mut core = Core::new(epoll.as_raw_fd());
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut now = Instant::now();
    loop {
        let wait = match core.first() {
            None => -1,
            Some(t) => {
                // epoll_wait counts milliseconds: round up, never early
                // (`now` is a little behind the clock: if anything, later).
                let ns = t.saturating_sub(core.ns(now));
                libc::c_int::try_from(ns.div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `events` is valid for EVENTS entries; `epoll` is open.
        let n = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as libc::c_int,
                wait,
            )
        };
        // One clock reading serves everything this wakeup does.
        now = Instant::now();
        for ev in &events[..usize::try_from(n).unwrap_or(0)] {
            let data = ev.u64;
            if data == WAKE {
                drain_wake(wake.as_raw_fd());
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                loop {
                    match rx.try_recv() {
                        Ok(Cmd::Lend(lease)) => core.lend(lease),
                        Ok(Cmd::Recall(id) | Cmd::Forget(id)) => core.release_lease(id),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
            } else {
                core.event((data >> 32) as u32, data as u32, now);
            }
        }
        core.fire_due(now);
        core.prune();
        // The next wait counts from here: the work above took a while.
        now = Instant::now();
    }
}

/// A new non-blocking eventfd.
fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to eventfd `fd` (its counter, reset at every wakeup, would
/// take 2^64 writes to fill).
fn signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from `one`, which lives across the call.
    let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
}

/// Resets eventfd `fd`'s counter.
fn drain_wake(fd: RawFd) {
    let mut n: u64 = 0;
    // SAFETY: reads at most 8 bytes into `n`.
    let _ = unsafe { libc::read(fd, (&raw mut n).cast(), 8) };
}

/// A start or a timeout: its slot's phase at `round` is due at `due` (ns
/// since the engine's epoch); how late it may fire is its heap's or
/// queue's. Ordered by `due` first. 16 bytes: four to a cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    due: u64,
    slot: u32,
    round: u32,
}

/// A probe's place in the engine.
struct Slot {
    /// Inline, not boxed: every probe's state lies in one array, so that
    /// a probe's first touch after its interval is one miss, not several
    /// pages apart.
    lease: Option<Lease>,
    /// Raised at every change of phase: events and entries of an earlier
    /// phase carry an older value and are ignored.
    round: u32,
    phase: Phase,
    retries: Retries,
}

enum Phase {
    /// Waiting for the next cycle's start.
    Idle,
    /// Waiting between attempts of a cycle.
    Backoff,
    /// An attempt under way since `started`.
    InFlight { x: Exchange, started: Instant },
}

struct Core {
    /// The epoll set (owned by the task's `AsyncFd`).
    epoll: RawFd,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The slot of each lease, by its id.
    ids: HashMap<u64, u32>,
    /// Starts and backoffs, a heap for each slack (a config has a few:
    /// a quarter of each check's jitter, at most 10 ms, and none for
    /// backoffs), the first due on top. Within one the first due is the
    /// first that can wait no longer.
    starts: Vec<(u64, BinaryHeap<Reverse<Due>>)>,
    /// Timeouts, a queue for each length: an attempt begins at the time
    /// its wakeup read, which never goes back, so each queue is in order
    /// of its deadlines, and taking one out or putting one in is O(1).
    /// (Nearly every attempt ends before its timeout, which then waits
    /// here disarmed until its time.) A config has a few lengths.
    /// (The length, how late it may fire, the queue.)
    timeouts: Vec<(Duration, u64, VecDeque<Due>)>,
    /// The entries that fire together, taken off the heap first.
    batch: Vec<Due>,
    epoch: Instant,
}

impl Core {
    fn new(epoll: RawFd) -> Core {
        Core {
            epoll,
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
            starts: Vec::new(),
            timeouts: Vec::new(),
            batch: Vec::new(),
            epoch: Instant::now(),
        }
    }

    /// `t` as ns since the epoch (0 if before it).
    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Slot `slot`'s entry at its current round, due at `due`.
    fn entry(&self, slot: u32, due: Instant) -> Due {
        Due {
            due: self.ns(due),
            slot,
            round: self.slots[slot as usize].round,
        }
    }

    /// Slot `slot`'s start (or backoff), due at `due`, firing at most
    /// `slack` later.
    fn push(&mut self, slot: u32, due: Instant, slack: Duration) {
        let d = self.entry(slot, due);
        let slack = nanos(slack);
        let k = match self.starts.iter().position(|(s, _)| *s == slack) {
            Some(k) => k,
            None => {
                self.starts.push((slack, BinaryHeap::new()));
                self.starts.len() - 1
            }
        };
        self.starts[k].1.push(Reverse(d));
    }

    /// Arms the timeout of the attempt slot `slot` began at `started`.
    fn push_timeout(&mut self, slot: u32, started: Instant, timeout: Duration) {
        let d = self.entry(slot, started + timeout);
        let q = match self.timeouts.iter().position(|(t, _, _)| *t == timeout) {
            Some(q) => q,
            None => {
                let slack = nanos(probe::timeout_slack(timeout));
                self.timeouts.push((timeout, slack, VecDeque::new()));
                self.timeouts.len() - 1
            }
        };
        self.timeouts[q].2.push_back(d);
    }

    /// When the next entry must fire, if there is one.
    fn first(&self) -> Option<u64> {
        let starts = self
            .starts
            .iter()
            .filter_map(|(slack, h)| Some(h.peek()?.0.due.saturating_add(*slack)));
        let timeouts = self
            .timeouts
            .iter()
            .filter_map(|(_, slack, q)| Some(q.front()?.due.saturating_add(*slack)));
        starts.chain(timeouts).min()
    }

    /// Whether entry `d` still applies: its slot is at the same round.
    fn armed(&self, d: &Due) -> bool {
        self.slots
            .get(d.slot as usize)
            .is_some_and(|s| s.round == d.round)
    }

    /// Drops the disarmed entries at the fronts (nearly every timeout:
    /// its attempt ended in time), so that the thread does not wake for
    /// them.
    fn prune(&mut self) {
        for q in 0..self.timeouts.len() {
            while let Some(d) = self.timeouts[q].2.front() {
                if self.armed(d) {
                    break;
                }
                self.timeouts[q].2.pop_front();
            }
        }
        for k in 0..self.starts.len() {
            while let Some(Reverse(d)) = self.starts[k].1.peek() {
                if self.armed(d) {
                    break;
                }
                self.starts[k].1.pop();
            }
        }
        self.starts.retain(|(_, h)| !h.is_empty());
    }

    /// Takes a lease; its first start is the one its task had set.
    fn lend(&mut self, lease: Box<Lease>) {
        let (id, next, slack) = (lease.id, lease.st.next, lease.st.slack);
        let slot = match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.lease = Some(*lease);
                s.round = s.round.wrapping_add(1);
                s.phase = Phase::Idle;
                i
            }
            None => {
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    // 4 billion probes: cannot happen; hand it back.
                    let _ = lease.back.send(lease.st);
                    return;
                };
                self.slots.push(Slot {
                    lease: Some(*lease),
                    round: 0,
                    phase: Phase::Idle,
                    retries: Retries::default(),
                });
                i
            }
        };
        self.ids.insert(id, slot);
        self.push(slot, next, slack);
    }

    /// Ends slot `i`'s lease: back to its task (if it is still there) with
    /// any attempt under way abandoned; the slot is free.
    fn release(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        s.round = s.round.wrapping_add(1);
        s.phase = Phase::Idle;
        if let Some(lease) = s.lease.take() {
            self.ids.remove(&lease.id);
            let _ = lease.back.send(lease.st);
            self.free.push(i);
        }
    }

    /// Ends lease `id`, if the engine still has it (see [`Core::release`]).
    fn release_lease(&mut self, id: u64) {
        if let Some(&i) = self.ids.get(&id) {
            self.release(i);
        }
    }

    /// Slot `i`'s socket, registered at `round`, may be ready.
    fn event(&mut self, i: u32, round: u32, now: Instant) {
        let Some(s) = self.slots.get_mut(i as usize) else {
            return;
        };
        if s.round != round {
            return; // an attempt that ended
        }
        let (Phase::InFlight { x, .. }, Some(lease)) = (&mut s.phase, &s.lease) else {
            return;
        };
        match lease.st.prepared.advance(&lease.st.check.kind, x) {
            Progress::Done(result) => self.finish(i, Some(result), now),
            Progress::Blocked => {}
            Progress::Yield => {
                // More may be waiting, and no new edge may come for it:
                // re-arming queues an event if the socket is readable, to
                // be taken after the others (and any timeout) have had
                // their turn.
                if let Err(e) = watch(self.epoll, x, i, round, libc::EPOLL_CTL_MOD) {
                    self.finish(i, Some(Err(e)), now);
                }
            }
        }
    }

    /// Fires the timeouts that are due, and the starts and backoffs once
    /// one of them can wait no longer: then every one that is due fires
    /// with it, so that starts held back by their slack go together.
    fn fire_due(&mut self, at: Instant) {
        let now = self.ns(at);
        for q in 0..self.timeouts.len() {
            while let Some(&d) = self.timeouts[q].2.front() {
                if d.due > now {
                    break;
                }
                self.timeouts[q].2.pop_front();
                self.fire(d, at);
            }
        }
        if !self.starts.iter().any(|(slack, h)| {
            h.peek()
                .is_some_and(|Reverse(d)| d.due.saturating_add(*slack) <= now)
        }) {
            return;
        }
        // Everything due goes, then fires: what firing adds waits for the
        // next round.
        for (_, h) in &mut self.starts {
            while h.peek().is_some_and(|Reverse(d)| d.due <= now) {
                let Some(Reverse(d)) = h.pop() else { break };
                self.batch.push(d);
            }
        }
        let mut batch = std::mem::take(&mut self.batch);
        for d in batch.drain(..) {
            self.fire(d, at);
        }
        self.batch = batch;
    }

    fn fire(&mut self, d: Due, now: Instant) {
        let Some(s) = self.slots.get_mut(d.slot as usize) else {
            return;
        };
        if s.round != d.round {
            return; // disarmed: its phase ended
        }
        match s.phase {
            Phase::Idle => {
                let Some(lease) = &s.lease else { return };
                if lease.st.activity_moved() {
                    // The fleet changed the probe's activity: no more
                    // probes here.
                    self.release(d.slot);
                    return;
                }
                s.retries = Retries::default();
                self.begin(d.slot);
            }
            Phase::Backoff => self.begin(d.slot),
            Phase::InFlight { .. } => self.finish(d.slot, None, now),
        }
    }

    /// Starts an attempt in slot `i`.
    fn begin(&mut self, i: u32) {
        // Its own reading: a batch of starts takes a while, and the last
        // one's timeout counts from when it connects.
        let started = Instant::now();
        let epoll = self.epoll;
        let s = &mut self.slots[i as usize];
        let Some(lease) = &s.lease else { return };
        s.round = s.round.wrapping_add(1);
        let timeout = lease.st.check.timeout;
        let opened = match lease.st.prepared.open(lease.source) {
            Some(Ok(x)) => watch(epoll, &x, i, s.round, libc::EPOLL_CTL_ADD).map(|()| x),
            Some(Err(e)) => Err(e),
            None => Err(ProbeError::Http {
                message: "not a plain http check".into(),
                local: true,
            }),
        };
        match opened {
            Ok(x) => {
                s.phase = Phase::InFlight { x, started };
                self.push_timeout(i, started, timeout);
            }
            Err(e) => self.conclude(i, started, Some(Err(e)), started),
        }
    }

    /// Ends slot `i`'s attempt with `result` (None: it timed out).
    fn finish(&mut self, i: u32, result: Option<Result<String, ProbeError>>, now: Instant) {
        let s = &mut self.slots[i as usize];
        // The exchange is dropped here: its socket closes, which takes it
        // out of the epoll set.
        let Phase::InFlight { started, .. } = std::mem::replace(&mut s.phase, Phase::Backoff)
        else {
            return;
        };
        self.conclude(i, started, result, now);
    }

    /// The attempt of slot `i` that began at `started` ended with
    /// `result`: another attempt after a wait, or the cycle's outcome.
    fn conclude(
        &mut self,
        i: u32,
        started: Instant,
        result: Option<Result<String, ProbeError>>,
        now: Instant,
    ) {
        let s = &mut self.slots[i as usize];
        // Its timeout entry and any late event no longer apply.
        s.round = s.round.wrapping_add(1);
        s.phase = Phase::Backoff;
        let Some(lease) = &s.lease else { return };
        let check = &lease.st.check;
        let o = probe::outcome(
            result,
            now.saturating_duration_since(started),
            check.timeout,
        );
        match s.retries.after(check, o) {
            Step::Again(wait) => self.push(i, now + wait, Duration::ZERO),
            Step::Done(o) => self.settle(i, o, now),
        }
    }

    /// Slot `i`'s cycle ended with `o`: counted and reported as its task
    /// would, then the next start is set.
    fn settle(&mut self, i: u32, o: Outcome, now: Instant) {
        let s = &mut self.slots[i as usize];
        let Some(lease) = &mut s.lease else { return };
        if lease.st.activity_moved() {
            // The result belongs to the tracker that was.
            self.release(i);
            return;
        }
        lease.st.settle(o, now);
        if lease.st.gone {
            self.release(i);
            return;
        }
        s.phase = Phase::Idle;
        let (next, slack) = (lease.st.next, lease.st.slack);
        self.push(i, next, slack);
    }
}

/// `d` in ns, saturated.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A new epoll set.
fn epoll_create() -> std::io::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds (`op` `EPOLL_CTL_ADD`) or re-arms (`EPOLL_CTL_MOD`) exchange `x`
/// of slot `i` at `round` in the epoll set: readable, and writable while
/// part of the request waits; edge triggered, since each event is taken
/// until the socket would block or the exchange yields
/// ([`Exchange::advance`]).
fn watch(
    epoll: RawFd,
    x: &Exchange,
    i: u32,
    round: u32,
    op: libc::c_int,
) -> Result<(), ProbeError> {
    let mut events = libc::EPOLLIN | libc::EPOLLET;
    if x.sending() {
        events |= libc::EPOLLOUT;
    }
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: (u64::from(i) << 32) | u64::from(round),
    };
    // SAFETY: `ev` is a valid event for the call's duration; both
    // descriptors are open.
    if unsafe { libc::epoll_ctl(epoll, op, x.fd(), &mut ev) } < 0 {
        let e = std::io::Error::last_os_error();
        return Err(ProbeError::Http {
            message: format!("cannot wait on the socket: {e}"),
            local: true,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicUsize};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::{mpsc, watch};
    use tokio::task::JoinSet;

    use super::super::{Activity, Plan, Report, Start, spawn_one};
    use super::*;
    use crate::config::{CheckConfig, CheckKind};
    use crate::health::State;
    use crate::health::probe::Clients;

    /// A backend answering every connection with `status` and the body
    /// `s<status>` (0: accept, read the request and never answer),
    /// counting the requests.
    struct Backend {
        at: std::net::SocketAddr,
        status: Arc<AtomicU16>,
        requests: Arc<AtomicUsize>,
    }

    async fn backend(status: u16) -> Backend {
        backend_after(status, Duration::ZERO).await
    }

    /// As [`backend`], answering `delay` after the request came, with the
    /// status set by then.
    async fn backend_after(status: u16, delay: Duration) -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        let (st, requests) = (
            Arc::new(AtomicU16::new(status)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s2, r2) = (st.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                let (status, requests) = (s2.clone(), r2.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&b[..n]),
                        }
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    match status.load(Ordering::SeqCst) {
                        0 => tokio::time::sleep(Duration::from_secs(30)).await,
                        s => {
                            let r = format!("HTTP/1.1 {s} X\r\nContent-Length: 4\r\n\r\ns{s}");
                            let _ = c.write_all(r.as_bytes()).await;
                        }
                    }
                });
            }
        });
        Backend {
            at,
            status: st,
            requests,
        }
    }

    fn check(at: std::net::SocketAddr, interval_ms: u64) -> CheckConfig {
        let url = format!("http://{at}/hc");
        CheckConfig {
            name: "e".into(),
            kind: CheckKind::Http(crate::health::probe::tests::http_check(&url)),
            ..super::super::tests::file_check(std::path::Path::new("/"), interval_ms)
        }
    }

    /// A check probing every 20 ms, with a timeout (500 ms) that a busy
    /// test machine does not reach: the tests using it are not about
    /// timeouts.
    fn quick(at: std::net::SocketAddr) -> CheckConfig {
        CheckConfig {
            timeout: Duration::from_millis(500),
            ..check(at, 20)
        }
    }

    fn plan(check: CheckConfig, active: Option<watch::Receiver<Activity>>) -> Plan {
        Plan {
            check,
            initial: State::Unknown,
            start: Start::Resume(0),
            established: false,
            stats: Arc::default(),
            active,
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Report>) -> Report {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no report within 5 s")
            .expect("the probe ended")
    }

    /// Waits until `n` requests more than `from` came, or fails.
    async fn requests_past(b: &Backend, from: usize, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = b.requests.load(Ordering::SeqCst);
            if now >= from + n {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{now} requests, waited for {}",
                from + n
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The engine probes a check that expects a body text: up while the
    /// body holds it, down when the body changes under the same status.
    #[tokio::test]
    async fn the_engine_reads_bodies() {
        let b = backend(200).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let clients = Clients::new(None).unwrap();
        let mut c = quick(b.at);
        let CheckKind::Http(h) = &mut c.kind else {
            unreachable!()
        };
        h.body = Some("s200".into());
        h.status = vec![(200, 299)];
        spawn_one(0, plan(c, None), clients.clone(), tx, &mut tasks);
        let r = next(&mut rx).await;
        assert_eq!(r.transition.unwrap().to, State::Up);
        assert_eq!(r.outcome.reason, "status 200");
        b.status.store(201, Ordering::SeqCst);
        let r = next(&mut rx).await;
        assert!(r.transition.is_none() && r.pending, "{r:?}");
        let r = next(&mut rx).await;
        assert_eq!(r.transition.unwrap().to, State::Down);
        assert_eq!(r.outcome.reason, "status 201, body does not contain `s200`");
        b.status.store(200, Ordering::SeqCst);
        let r = next(&mut rx).await;
        assert_eq!(r.transition.unwrap().to, State::Up);
        // The engine probed it.
        assert!(clients.engine.shared.rx.lock().unwrap().is_none());
        assert!(!clients.engine.shared.refused.load(Ordering::Relaxed));
    }

    /// The engine probes a check judged by its status: its first verdict, a failure
    /// that only moves the counters, the fall, and the rise, each
    /// reported once; steady results are not.
    #[tokio::test]
    async fn the_engine_probes_and_reports() {
        let b = backend(200).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let clients = Clients::new(None).unwrap();
        let p = plan(quick(b.at), None);
        let stats = p.stats.clone();
        spawn_one(0, p, clients.clone(), tx, &mut tasks);
        let r = next(&mut rx).await;
        assert_eq!(r.transition.unwrap().to, State::Up);
        assert_eq!(r.outcome.reason, "status 200");
        // Steady: probes go on, nothing is reported.
        let seen = b.requests.load(Ordering::SeqCst);
        requests_past(&b, seen, 3).await;
        assert!(rx.try_recv().is_err());
        assert!(stats.ok.load(Ordering::Relaxed) >= 3);
        b.status.store(503, Ordering::SeqCst);
        let r = next(&mut rx).await;
        assert!(r.transition.is_none() && r.pending, "{r:?}");
        let r = next(&mut rx).await;
        let t = r.transition.unwrap();
        assert_eq!((t.from, t.to), (State::Up, State::Down));
        assert_eq!(r.outcome.reason, "status 503");
        b.status.store(204, Ordering::SeqCst);
        let r = next(&mut rx).await;
        assert_eq!(r.transition.unwrap().to, State::Up);
        // The probe was the engine's: its task lent its state once.
        assert!(clients.engine.shared.rx.lock().unwrap().is_none());
        assert!(!clients.engine.shared.refused.load(Ordering::Relaxed));
    }

    /// A silent backend times out; retries back off and are counted in
    /// the reason; `invert` turns the verdict; a refused connection fails.
    #[tokio::test]
    async fn timeouts_retries_and_refusals() {
        let silent = backend(0).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let clients = Clients::new(None).unwrap();
        for (id, retries, invert, to, reason) in [
            (
                0,
                1,
                false,
                State::Down,
                "timeout after 100ms (after 2 attempts)",
            ),
            (1, 0, true, State::Up, "inverted: timeout after 100ms"),
        ] {
            let mut c = check(silent.at, 200);
            (c.retries, c.invert, c.fall) = (retries, invert, 1);
            spawn_one(id, plan(c, None), clients.clone(), tx.clone(), &mut tasks);
            let r = next(&mut rx).await;
            assert_eq!(r.transition.unwrap().to, to);
            assert_eq!(r.outcome.reason, reason);
            assert!(r.outcome.latency >= Duration::from_millis(100));
            tasks.abort_all();
        }
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = closed.local_addr().unwrap();
        drop(closed);
        let mut c = check(at, 200);
        c.fall = 1;
        spawn_one(2, plan(c, None), clients.clone(), tx, &mut tasks);
        let r = next(&mut rx).await;
        assert_eq!(r.transition.unwrap().to, State::Down);
        assert!(
            r.outcome.reason.starts_with("connect failed: "),
            "{}",
            r.outcome.reason
        );
    }

    /// A backend that streams informational heads without end, as fast
    /// as it can, times out like a silent one, and holds up neither the
    /// engine nor another probe.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endless_stream_times_out_and_blocks_no_one() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hostile = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let heads = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(512);
                    while c.write_all(&heads).await.is_ok() {}
                });
            }
        });
        let b = backend(200).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let clients = Clients::new(None).unwrap();
        let mut c = check(hostile, 400);
        c.fall = 1;
        spawn_one(0, plan(c, None), clients.clone(), tx.clone(), &mut tasks);
        let mut c = check(b.at, 200);
        c.fall = 1;
        spawn_one(1, plan(c, None), clients.clone(), tx, &mut tasks);
        let (mut hostile_down, mut fine_up) = (false, false);
        while !(hostile_down && fine_up) {
            let r = next(&mut rx).await;
            let to = r.transition.map(|t| t.to);
            if r.probe == 0 {
                assert_eq!(to, Some(State::Down));
                assert_eq!(r.outcome.reason, "timeout after 200ms");
                hostile_down = true;
            } else {
                assert_eq!(to, Some(State::Up), "{:?}", r.outcome);
                fine_up = true;
            }
        }
        // The other probe goes on while the stream does.
        let seen = b.requests.load(Ordering::SeqCst);
        requests_past(&b, seen, 5).await;
    }

    /// An aborted task's probe stops (at most the attempt under way
    /// finishes) and reports nothing more; the engine frees its slot.
    #[tokio::test]
    async fn an_aborted_probe_stops() {
        let b = backend(200).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let clients = Clients::new(None).unwrap();
        let abort = spawn_one(0, plan(quick(b.at), None), clients.clone(), tx, &mut tasks);
        next(&mut rx).await;
        requests_past(&b, 0, 3).await;
        b.status.store(500, Ordering::SeqCst);
        abort.abort();
        // Counted once the task is gone (its lend future dropped, which
        // sends the engine its `Forget`), not when the abort is asked
        // for: on a busy machine the task may be dropped a few probes
        // later. Then the attempt under way may finish, and one may
        // start while the engine has yet to read the command; at 20 ms,
        // a probe still going would make ten more.
        while tasks.join_next().await.is_some_and(|r| r.is_ok()) {}
        let at_abort = b.requests.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = b.requests.load(Ordering::SeqCst);
        assert!(
            after <= at_abort + 2,
            "{at_abort} requests once the task was gone, {after} after"
        );
        assert!(rx.try_recv().is_err(), "a report after the abort");
        // Another probe takes the freed slot, and probes.
        let (tx, mut rx) = mpsc::unbounded_channel();
        b.status.store(200, Ordering::SeqCst);
        spawn_one(1, plan(quick(b.at), None), clients.clone(), tx, &mut tasks);
        assert_eq!(next(&mut rx).await.probe, 1);
    }

    /// The fleet pauses a lent probe: it stops at once (no probe after
    /// the pause is counted) and resumes from the new seed when started
    /// again, announcing its first result.
    #[tokio::test]
    async fn a_pause_and_a_start_reach_a_lent_probe() {
        let b = backend(200).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let clients = Clients::new(None).unwrap();
        let (act, act_rx) = watch::channel(Activity {
            seed: Some(State::Up),
            starts: 0,
        });
        let mut c = quick(b.at);
        c.fall = 1;
        let mut p = plan(c, Some(act_rx));
        p.initial = State::Up;
        p.established = true;
        spawn_one(0, p, clients, tx, &mut tasks);
        // The first result is announced though it changes nothing.
        let r = next(&mut rx).await;
        assert!(r.transition.is_none() && r.starts == 0, "{r:?}");
        requests_past(&b, 0, 3).await;
        act.send_replace(Activity {
            seed: None,
            starts: 0,
        });
        // A probe under way at the pause may still reach the backend.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let paused = b.requests.load(Ordering::SeqCst);
        b.status.store(500, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            b.requests.load(Ordering::SeqCst),
            paused,
            "probed while paused"
        );
        assert!(rx.try_recv().is_err(), "reported while paused");
        act.send_replace(Activity {
            seed: Some(State::Up),
            starts: 1,
        });
        let r = next(&mut rx).await;
        assert_eq!(r.starts, 1);
        let t = r
            .transition
            .expect("a failure with fall 1 flips the new seed");
        assert_eq!((t.from, t.to), (State::Up, State::Down));
    }

    /// More than one turn's reads arrive at once (a thousand 1xx heads,
    /// then the final one), and then nothing: the exchange is re-armed and
    /// comes back for the rest instead of waiting for an edge that never
    /// comes.
    #[tokio::test]
    async fn a_burst_longer_than_one_turn_is_read_whole() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    let _ = c.read(&mut b).await;
                    let mut r = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
                    r.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = c.write_all(&r).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        spawn_one(
            0,
            plan(check(at, 2000), None),
            Clients::new(None).unwrap(),
            tx,
            &mut tasks,
        );
        assert_eq!(next(&mut rx).await.outcome.reason, "status 200");
    }

    /// A start from the fleet reaches a lent probe at once, not at its
    /// next start an interval later: the task recalls its lease.
    #[tokio::test]
    async fn a_restart_reaches_a_lent_probe_at_once() {
        let b = backend(200).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let (act, act_rx) = watch::channel(Activity {
            seed: Some(State::Up),
            starts: 0,
        });
        let mut p = plan(check(b.at, 5000), Some(act_rx));
        (p.initial, p.established) = (State::Up, true);
        spawn_one(0, p, Clients::new(None).unwrap(), tx, &mut tasks);
        assert_eq!(next(&mut rx).await.starts, 0);
        act.send_replace(Activity {
            seed: Some(State::Down),
            starts: 1,
        });
        let asked = Instant::now();
        let r = next(&mut rx).await;
        assert_eq!(r.starts, 1);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "the restart waited {:?} for the next start",
            asked.elapsed()
        );
    }

    /// A result in flight when the fleet restarts the probe belongs to the
    /// tracker that was, and is not reported: here it would flip the old
    /// tracker Up, while the new one, seeded Down, sees only failures.
    #[tokio::test]
    async fn a_result_from_before_a_restart_is_dropped() {
        let b = backend_after(200, Duration::from_millis(300)).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let (act, act_rx) = watch::channel(Activity {
            seed: Some(State::Down),
            starts: 0,
        });
        let mut c = check(b.at, 1000);
        (c.fall, c.rise) = (1, 1);
        let mut p = plan(c, Some(act_rx));
        (p.initial, p.established) = (State::Down, true);
        spawn_one(0, p, Clients::new(None).unwrap(), tx, &mut tasks);
        // The first attempt is under way (its request came): restart the
        // probe from Down, and fail from now on.
        requests_past(&b, 0, 1).await;
        b.status.store(500, Ordering::SeqCst);
        act.send_replace(Activity {
            seed: None,
            starts: 0,
        });
        act.send_replace(Activity {
            seed: Some(State::Down),
            starts: 1,
        });
        let r = next(&mut rx).await;
        assert_eq!(r.starts, 1, "{r:?}");
        assert!(
            r.transition.as_ref().is_none_or(|t| t.to != State::Up),
            "a stale Up: {:?}",
            r.transition
        );
    }

    /// Starts wait for their slack and then go together with every other
    /// start that is due; a zero-slack entry elsewhere does not spoil
    /// that; disarmed entries at the front do not wake the thread.
    #[test]
    fn starts_wait_for_their_slack_together() {
        let mut core = Core::new(-1);
        for _ in 0..4 {
            core.slots.push(Slot {
                lease: None,
                round: 0,
                phase: Phase::Idle,
                retries: Retries::default(),
            });
        }
        let (t0, ms) = (core.epoch, Duration::from_millis(1));
        let at = |n: u32| t0 + ms * n;
        let ns = |n: u64| n * 1_000_000;
        core.push(0, at(100), ms * 10);
        core.push(1, at(105), ms * 10);
        core.push(2, at(112), ms * 10);
        core.push(3, at(10_000), Duration::ZERO);
        assert_eq!(core.first(), Some(ns(110)));
        let left = |core: &Core| core.starts.iter().map(|(_, h)| h.len()).sum::<usize>();
        core.fire_due(at(109));
        assert_eq!(left(&core), 4, "fired before any start had to");
        core.fire_due(at(110));
        assert_eq!(left(&core), 2, "0 and 1 go together, 2 is not due");
        assert_eq!(core.first(), Some(ns(122)));
        core.slots[2].round = 1;
        core.prune();
        assert_eq!(core.first(), Some(ns(10_000)));
        // A timeout is due at its deadline and wakes at most its slack
        // later; a disarmed one is pruned.
        core.push_timeout(0, at(200), Duration::from_secs(8));
        assert_eq!(core.first(), Some(ns(200 + 8000 + 10)));
        core.slots[0].round = 1;
        core.prune();
        assert_eq!(core.first(), Some(ns(10_000)));
    }
}
