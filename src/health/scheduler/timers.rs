//! One timer for every probe: a heap of deadlines served by a single task
//! with a single tokio sleep. A probe task waits on its [`Timer`] (the
//! next start, a retry's backoff) instead of a tokio timer of its own,
//! and the probes whose starts fall due together are woken in one batch:
//! a start may be late by its `slack` (see [`super::start_slack`]), and
//! the service, waking for the earliest `due + slack`, starts every probe
//! already due, so that a thousand checks at 1s cost about a hundred
//! wakeups a second instead of a thousand. Nothing fires before it is
//! due; a wait without slack fires as a tokio timer would.
//!
//! A wait that is dropped (its task was woken by something else first,
//! or aborted by a reload) is not searched for: its entry stays in the
//! heap, disarmed, and is discarded when it comes up, without waking
//! anyone. Disarmed entries are counted; once they are the larger part
//! of the heap (a reload that restarted many probes with long intervals,
//! a file check whose file changes often, the timeouts of probes that
//! ended in time), the heap is rebuilt without them, so it holds at most
//! about twice the waits in progress. A wait dropped while the service
//! sleeps until its deadline (a probe's timeout when no start is due
//! before it) tells the service, which then sleeps until the next armed
//! deadline instead of waking for nothing.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The most a start is held back to be batched with others.
pub const MAX_SLACK: Duration = Duration::from_millis(10);

/// The timer service: cloned into every probe task (through `Clients`).
/// Its task starts with the first wait, inside the runtime, and ends when
/// the last handle is gone.
#[derive(Clone, Default)]
pub struct Timers {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timers")
    }
}

/// Dropped with the last [`Timers`]: tells the task to end.
#[derive(Default)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, SeqCst);
        self.shared.notify.notify_one();
    }
}

#[derive(Default)]
struct Shared {
    heap: Mutex<Heap>,
    /// A deadline earlier than the one the task sleeps until was added,
    /// or the service closed.
    notify: Notify,
    started: AtomicBool,
    closed: AtomicBool,
}

/// Below this many entries the heap is never rebuilt.
const COMPACT_MIN: usize = 64;

#[derive(Default)]
struct Heap {
    entries: BinaryHeap<Entry>,
    /// What the task sleeps until (None: nothing to wait for, or not
    /// sleeping yet).
    wake_at: Option<Instant>,
    /// Disarmed entries in the heap (about: a wait dropped just as it
    /// fired is counted too, until the next rebuild).
    disarmed: usize,
}

impl Heap {
    /// Rebuilds the heap without its disarmed entries once they are more
    /// than half of it (amortized: a rebuild removes more than half the
    /// entries it scans).
    fn compact(&mut self) {
        if self.entries.len() >= COMPACT_MIN && self.disarmed * 2 > self.entries.len() {
            self.entries.retain(|e| !e.cancelled());
            self.disarmed = 0;
        }
    }
}

/// One wait: fires once `due` has passed, at the latest at `deadline`
/// (`due + slack`).
struct Entry {
    deadline: Instant,
    due: Instant,
    armed: u64,
    slot: Arc<Slot>,
}

impl Entry {
    /// Its wait was dropped (or superseded by the next one).
    fn cancelled(&self) -> bool {
        self.slot.armed.load(SeqCst) != self.armed
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// The earliest deadline on top of the (max-)heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

/// A probe task's side: which of its waits is armed and which fired.
#[derive(Default)]
struct Slot {
    /// The wait in progress (0: none).
    armed: AtomicU64,
    /// The latest wait that fired.
    fired: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn fire(&self, n: u64) {
        self.fired.fetch_max(n, SeqCst);
        if let Some(w) = lock(&self.waker).as_ref() {
            w.wake_by_ref();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Timers {
    /// A probe task's timer (one wait at a time).
    pub fn timer(&self) -> Timer {
        Timer {
            timers: self.clone(),
            slot: Arc::default(),
            count: 0,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Adds a wait; wakes the task if it now has to wake earlier.
    fn add(&self, e: Entry) {
        let shared = self.shared();
        if !shared.started.swap(true, SeqCst) {
            tokio::spawn(serve(shared.clone()));
        }
        let earlier = {
            let mut h = lock(&shared.heap);
            let earlier = h.wake_at.is_none_or(|w| e.deadline < w);
            if earlier {
                h.wake_at = Some(e.deadline);
            }
            h.compact();
            h.entries.push(e);
            earlier
        };
        if earlier {
            shared.notify.notify_one();
        }
    }
}

/// The service's task: sleeps until the earliest deadline, then fires
/// every wait that is due.
async fn serve(shared: Arc<Shared>) {
    let (mut due, mut later) = (Vec::new(), Vec::new());
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    loop {
        if shared.closed.load(SeqCst) {
            return;
        }
        let next = {
            let mut h = lock(&shared.heap);
            let before = h.entries.len();
            let next = fire_due(&mut h.entries, Instant::now(), &mut due, &mut later);
            // The disarmed entries it discarded are no longer in the heap
            // (nearly every probe's timeout ends there): the count that
            // decides a rebuild is of those still in it.
            let discarded = before - h.entries.len() - due.len();
            h.disarmed = h.disarmed.saturating_sub(discarded);
            h.wake_at = next;
            next
        };
        for (slot, n) in due.drain(..) {
            slot.fire(n);
        }
        match next {
            Some(at) => {
                sleep.as_mut().reset(at);
                tokio::select! {
                    () = &mut sleep => {}
                    () = shared.notify.notified() => {}
                }
            }
            None => shared.notify.notified().await,
        }
    }
}

/// Takes from `entries` into `out` every armed wait that is due at `now`
/// (cancelled ones are dropped; `later` is scratch space); returns the
/// next deadline.
fn fire_due(
    entries: &mut BinaryHeap<Entry>,
    now: Instant,
    out: &mut Vec<(Arc<Slot>, u64)>,
    later: &mut Vec<Entry>,
) -> Option<Instant> {
    while let Some(top) = entries.peek() {
        if top.cancelled() {
            entries.pop();
            continue;
        }
        // Past `now + MAX_SLACK` nothing can be due yet.
        if top.deadline > now + MAX_SLACK {
            break;
        }
        let Some(e) = entries.pop() else { break };
        if e.due <= now {
            out.push((e.slot, e.armed));
        } else {
            later.push(e);
        }
    }
    entries.extend(later.drain(..));
    while entries.peek().is_some_and(Entry::cancelled) {
        entries.pop();
    }
    entries.peek().map(|e| e.deadline)
}

/// A probe task's timer: one wait at a time (`until` borrows it).
pub struct Timer {
    timers: Timers,
    slot: Arc<Slot>,
    /// Waits so far (numbers them).
    count: u64,
}

impl Drop for Timer {
    fn drop(&mut self) {
        // Entries of this timer still in the heap keep the slot, not the
        // task (a waker keeps its task's memory).
        lock(&self.slot.waker).take();
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timer")
    }
}

impl Timer {
    /// Completes once `due` has passed, at the latest `slack` after it
    /// (as the service's other waits make it convenient).
    pub fn until(&mut self, due: Instant, slack: Duration) -> Wait<'_> {
        Wait {
            timer: self,
            due,
            slack,
            armed: 0,
        }
    }

    /// [`Timer::until`] `d` from now, without slack (as `tokio::time::sleep`).
    pub fn sleep(&mut self, d: Duration) -> Wait<'_> {
        self.until(Instant::now() + d, Duration::ZERO)
    }
}

/// A wait of a [`Timer`].
#[must_use = "a wait does nothing unless awaited"]
pub struct Wait<'a> {
    timer: &'a mut Timer,
    due: Instant,
    slack: Duration,
    /// Its number once registered.
    armed: u64,
}

impl Wait<'_> {
    /// When it fires at the latest.
    fn deadline(&self) -> Instant {
        self.due + self.slack.min(MAX_SLACK)
    }
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let slot = &this.timer.slot;
        {
            let mut w = lock(&slot.waker);
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        if this.armed == 0 {
            // Registered even when already due (no clock read here: the
            // caller has usually just read it): the service fires it at
            // once.
            this.timer.count += 1;
            this.armed = this.timer.count;
            slot.armed.store(this.armed, SeqCst);
            this.timer.timers.add(Entry {
                deadline: this.deadline(),
                due: this.due,
                armed: this.armed,
                slot: slot.clone(),
            });
            return Poll::Pending;
        }
        if slot.fired.load(SeqCst) >= this.armed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let slot = &self.timer.slot;
        if self.armed != 0
            && slot
                .armed
                .compare_exchange(self.armed, 0, SeqCst, SeqCst)
                .is_ok()
            && slot.fired.load(SeqCst) < self.armed
        {
            // Disarmed before it fired: the entry is discarded when it
            // comes up, or when the heap is rebuilt. If the service sleeps
            // until it, it is told to sleep until the next one instead.
            let shared = self.timer.timers.shared();
            let front = {
                let mut h = lock(&shared.heap);
                h.disarmed += 1;
                h.wake_at == Some(self.deadline())
            };
            if front {
                shared.notify.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(deadline_ms: u64, due_ms: u64, t0: Instant, slot: &Arc<Slot>, n: u64) -> Entry {
        slot.armed.store(n, SeqCst);
        Entry {
            deadline: t0 + Duration::from_millis(deadline_ms),
            due: t0 + Duration::from_millis(due_ms),
            armed: n,
            slot: slot.clone(),
        }
    }

    /// Due waits fire together, those not due yet stay (even within the
    /// slack window), cancelled ones are dropped without firing.
    #[test]
    fn fires_what_is_due_and_nothing_early() {
        let t0 = Instant::now();
        let slots: Vec<Arc<Slot>> = (0..4).map(|_| Arc::default()).collect();
        let mut heap = BinaryHeap::new();
        heap.push(entry(10, 0, t0, &slots[0], 1)); // due, slack left
        heap.push(entry(12, 2, t0, &slots[1], 1)); // due
        heap.push(entry(8, 8, t0, &slots[2], 1)); // not due: no slack
        heap.push(entry(20, 19, t0, &slots[3], 1)); // later
        let mut out = Vec::new();
        let next = fire_due(
            &mut heap,
            t0 + Duration::from_millis(5),
            &mut out,
            &mut Vec::new(),
        );
        let fired: Vec<_> = out
            .iter()
            .map(|(s, _)| slots.iter().position(|x| Arc::ptr_eq(x, s)).unwrap())
            .collect();
        assert_eq!(fired, [0, 1]);
        assert_eq!(next, Some(t0 + Duration::from_millis(8)));
        assert_eq!(heap.len(), 2);
        // Cancelled (superseded) entries go without firing.
        slots[2].armed.store(2, SeqCst);
        out.clear();
        let next = fire_due(
            &mut heap,
            t0 + Duration::from_millis(9),
            &mut out,
            &mut Vec::new(),
        );
        assert!(out.is_empty());
        assert_eq!(next, Some(t0 + Duration::from_millis(20)));
        assert_eq!(heap.len(), 1);
    }

    /// Waits complete when due, never before; a wait with slack is held
    /// back to be batched with the next one, within its slack.
    #[tokio::test(start_paused = true)]
    async fn waits_complete_when_due() {
        let timers = Timers::default();
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for (due_ms, slack_ms) in [(30u64, 0u64), (10, 0), (50, 40), (55, 0), (80, 5)] {
            let mut timer = timers.timer();
            tasks.push(tokio::spawn(async move {
                let due = t0 + Duration::from_millis(due_ms);
                timer.until(due, Duration::from_millis(slack_ms)).await;
                Instant::now() - t0
            }));
        }
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap().as_millis());
        }
        // The one due at 50 waits for the one at 55 (within its slack,
        // capped at MAX_SLACK); the one at 80 has nothing to wait for
        // and fires at the end of its slack.
        assert_eq!(at, [30, 10, 55, 55, 85]);
    }

    /// A dropped wait never wakes its task; the next one on the same
    /// timer still fires.
    #[tokio::test]
    async fn a_dropped_wait_is_forgotten() {
        let timers = Timers::default();
        let mut timer = timers.timer();
        let r = tokio::time::timeout(
            Duration::from_millis(20),
            timer.sleep(Duration::from_secs(60)),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(timer.slot.armed.load(SeqCst), 0);
        let t = Instant::now();
        timer.sleep(Duration::from_millis(30)).await;
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(timer.slot.fired.load(SeqCst), 2);
    }

    /// Polls a wait of `timer` `d` from now once (with `waker`), then drops
    /// it, as a probe task woken by something else, or aborted, does.
    fn arm_and_drop(timer: &mut Timer, d: Duration, waker: &Waker) {
        let mut w = Box::pin(timer.sleep(d));
        let mut cx = Context::from_waker(waker);
        assert!(w.as_mut().poll(&mut cx).is_pending());
    }

    /// When the wait the service sleeps until is dropped (a probe's
    /// timeout, the probe done in time), the service goes on to sleep
    /// until the next armed one instead of waking for nothing.
    #[tokio::test]
    async fn the_service_does_not_sleep_until_a_dropped_wait() {
        let timers = Timers::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut hour = timers.timer();
        let mut a = Box::pin(hour.sleep(Duration::from_secs(3600)));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        let mut minute = timers.timer();
        let mut b = Box::pin(minute.sleep(Duration::from_secs(60)));
        assert!(b.as_mut().poll(&mut cx).is_pending());
        let wake_at = || lock(&timers.shared().heap).wake_at.unwrap();
        // The service has run and sleeps until the minute.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(wake_at() < Instant::now() + Duration::from_secs(61));
        drop(b);
        let deadline = Instant::now() + Duration::from_secs(5);
        while wake_at() < Instant::now() + Duration::from_secs(3000) {
            assert!(
                Instant::now() < deadline,
                "still sleeping until a dropped wait"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(a);
    }

    /// Disarmed entries discarded as they come up (a probe's timeout, the
    /// probe done in time) are no longer counted: the count that decides
    /// a rebuild is of those still in the heap.
    #[tokio::test]
    async fn discarded_entries_leave_the_disarmed_count() {
        let timers = Timers::default();
        let waker = Waker::noop();
        for _ in 0..100 {
            arm_and_drop(&mut timers.timer(), Duration::from_millis(5), waker);
        }
        {
            // (Rebuilds as they were added kept the heap small.)
            let h = lock(&timers.shared().heap);
            assert!(h.disarmed > 0 && h.disarmed == h.entries.len());
        }
        // A wait past theirs: the service has come by them when it fires.
        timers.timer().sleep(Duration::from_millis(30)).await;
        let h = lock(&timers.shared().heap);
        assert_eq!((h.disarmed, h.entries.len()), (0, 0));
    }

    /// Waits dropped long before they are due (reloads aborting probe
    /// tasks, a file check re-arming at each change) do not pile up: the
    /// heap keeps about the waits in progress, not every wait ever
    /// dropped (it held all 10,000 here, for an hour).
    #[tokio::test]
    async fn dropped_waits_do_not_pile_up() {
        let timers = Timers::default();
        let waker = Waker::noop();
        // 100 probes re-arming their waits 50 times.
        let mut kept: Vec<Timer> = (0..100).map(|_| timers.timer()).collect();
        for _ in 0..50 {
            for t in &mut kept {
                arm_and_drop(t, Duration::from_secs(3600), waker);
            }
        }
        // 50 reloads restarting 100 probes (their timers dropped too).
        for _ in 0..50 {
            for _ in 0..100 {
                arm_and_drop(&mut timers.timer(), Duration::from_secs(3600), waker);
            }
        }
        let len = lock(&timers.shared().heap).entries.len();
        assert!(len <= 2 * 100 + COMPACT_MIN, "{len} entries in the heap");
        // The waits in progress are all still there and fire.
        let mut live: Vec<Timer> = (0..100).map(|_| timers.timer()).collect();
        let t = Instant::now();
        let waits = live.iter_mut().map(|t| t.sleep(Duration::from_millis(20)));
        for w in waits {
            w.await;
        }
        assert!(t.elapsed() >= Duration::from_millis(20));
        drop(kept);
    }

    /// A dropped timer's entries still in the heap keep no waker, so an
    /// aborted probe task's memory is freed at once, not when its wait
    /// would have come up (an interval later).
    #[tokio::test]
    async fn a_dropped_timer_keeps_no_waker() {
        struct Task;
        impl std::task::Wake for Task {
            fn wake(self: Arc<Self>) {}
        }
        let task = Arc::new(Task);
        let waker = Waker::from(task.clone());
        let timers = Timers::default();
        let mut timer = timers.timer();
        arm_and_drop(&mut timer, Duration::from_secs(3600), &waker);
        drop(waker);
        assert_eq!(Arc::strong_count(&task), 2, "the slot holds the waker");
        drop(timer);
        assert_eq!(Arc::strong_count(&task), 1, "the heap kept the task");
        assert_eq!(lock(&timers.shared().heap).entries.len(), 1);
    }

    /// The service's task ends with the last handle.
    #[tokio::test]
    async fn the_service_ends_with_its_handles() {
        let timers = Timers::default();
        let shared = timers.shared().clone();
        timers.timer().sleep(Duration::from_millis(1)).await;
        assert!(shared.started.load(SeqCst));
        drop(timers);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&shared) > 1 {
            assert!(std::time::Instant::now() < deadline, "the task did not end");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
