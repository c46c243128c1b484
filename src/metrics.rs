//! Counters. The query path only does relaxed atomic increments on
//! counters that live inside the snapshot's objects (per zone, per slot),
//! so no lookup or lock is added per query; a UDP thread adds a batch's
//! runs of one counter at once ([`Tally`]). `/metrics` reads them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Query types counted by name; everything else is `other`.
pub const QTYPES: [RecordType; 15] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::ANY,
    RecordType::DS,
    RecordType::HTTPS,
    RecordType::SVCB,
    RecordType::DNSKEY,
];

/// Response codes counted by name; everything else is `other`.
pub const RCODES: [ResponseCode; 6] = [
    ResponseCode::NoError,
    ResponseCode::FormErr,
    ResponseCode::ServFail,
    ResponseCode::NXDomain,
    ResponseCode::NotImp,
    ResponseCode::Refused,
];

/// Policy labels for answers.
pub const POLICIES: [&str; 7] = [
    "static",
    "failover",
    "multivalue",
    "weighted",
    "geo",
    "cidr",
    "nearest",
];

fn qtype_index(t: RecordType) -> usize {
    QTYPES.iter().position(|&q| q == t).unwrap_or(QTYPES.len())
}

fn rcode_index(r: ResponseCode) -> usize {
    RCODES.iter().position(|&q| q == r).unwrap_or(RCODES.len())
}

/// Label of a query type index (`other` past the named ones).
pub fn qtype_label(i: usize) -> String {
    QTYPES.get(i).map_or("other".to_string(), |t| t.to_string())
}

/// The RFC mnemonic of a response code (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_name(r: ResponseCode) -> String {
    match RCODES.iter().position(|&c| c == r) {
        Some(i) => rcode_label(i).to_string(),
        None => format!("RCODE{}", u16::from(r)),
    }
}

/// Label of a response code index (the RFC mnemonic).
pub fn rcode_label(i: usize) -> &'static str {
    [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    ]
    .get(i)
    .copied()
    .unwrap_or("other")
}

/// Query counters of one zone, kept across reloads.
#[derive(Debug)]
pub struct ZoneStats {
    /// [policy][qtype][rcode].
    pub queries: [[[AtomicU64; RCODES.len() + 1]; QTYPES.len() + 1]; POLICIES.len()],
    /// Queries per second over the last hour, one point per
    /// [`QPS_INTERVAL`] (written by the sampler, not the query path).
    pub qps: Mutex<QpsRing>,
}

impl Default for ZoneStats {
    fn default() -> Self {
        ZoneStats {
            queries: std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            }),
            qps: Mutex::default(),
        }
    }
}

impl ZoneStats {
    /// Counts one answered query.
    pub fn count(&self, qtype: RecordType, rcode: ResponseCode, policy: usize) {
        self.counter(qtype, rcode, policy)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The counter of answered queries of this type, code and policy.
    fn counter(&self, qtype: RecordType, rcode: ResponseCode, policy: usize) -> &AtomicU64 {
        &self.queries[policy.min(POLICIES.len() - 1)][qtype_index(qtype)][rcode_index(rcode)]
    }

    /// Queries answered since start.
    pub fn total(&self) -> u64 {
        self.queries
            .iter()
            .flatten()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Adds a point to the queries-per-second ring (the sampler's tick).
    pub fn sample(&self, now: Instant, at: SystemTime) {
        let total = self.total();
        self.qps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(total, now, at);
    }

    /// The points of the last hour, oldest first, and the rate since the
    /// last point (the point in the making).
    pub fn qps(&self, now: Instant) -> (Vec<QpsPoint>, Option<f64>) {
        let total = self.total();
        let r = self.qps.lock().unwrap_or_else(|e| e.into_inner());
        (r.points.iter().copied().collect(), r.current(total, now))
    }
}

/// A query thread's answered queries not yet added to their zone's
/// counter. Queries in a row that land on the same counter (a batch of
/// one name's queries, a run of one zone's) cost one atomic add between
/// them instead of one each: a locked add is a few percent of a fast-path
/// query. Lives no longer than the snapshot it counts into (the UDP loop
/// keeps one per batch), and adds what it holds when it moves to another
/// counter, when flushed, and when dropped, so `/metrics` lags a batch at
/// most.
#[derive(Debug, Default)]
pub struct Tally<'s> {
    counter: Option<&'s AtomicU64>,
    pending: u64,
}

impl<'s> Tally<'s> {
    /// Counts one answered query, as [`ZoneStats::count`].
    #[inline(always)]
    pub fn count(
        &mut self,
        stats: &'s ZoneStats,
        qtype: RecordType,
        rcode: ResponseCode,
        policy: usize,
    ) {
        let c = stats.counter(qtype, rcode, policy);
        match self.counter {
            Some(last) if std::ptr::eq(last, c) => self.pending += 1,
            _ => {
                self.flush();
                self.counter = Some(c);
                self.pending = 1;
            }
        }
    }

    /// Adds what is held to its counter.
    pub fn flush(&mut self) {
        if let Some(c) = self.counter.take() {
            c.fetch_add(std::mem::take(&mut self.pending), Ordering::Relaxed);
        }
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// How often the sampler adds a queries-per-second point.
pub const QPS_INTERVAL: Duration = Duration::from_secs(10);

/// Points kept: an hour of [`QPS_INTERVAL`].
pub const QPS_POINTS: usize = 360;

/// One queries-per-second point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QpsPoint {
    /// The end of its interval.
    pub at: SystemTime,
    /// Queries per second over the interval.
    pub qps: f64,
}

/// The last [`QPS_POINTS`] points and the counter they were taken from.
#[derive(Debug, Default)]
pub struct QpsRing {
    /// Oldest first.
    pub points: VecDeque<QpsPoint>,
    /// The counter and time of the last sample (None before the first).
    last: Option<(u64, Instant)>,
}

impl QpsRing {
    /// Adds the point for the interval since the last sample (the first
    /// sample only sets the baseline).
    pub fn push(&mut self, total: u64, now: Instant, at: SystemTime) {
        if let Some(qps) = self.current(total, now) {
            if self.points.len() == QPS_POINTS {
                self.points.pop_front();
            }
            self.points.push_back(QpsPoint { at, qps });
        }
        self.last = Some((total, now));
    }

    /// The rate since the last sample.
    pub fn current(&self, total: u64, now: Instant) -> Option<f64> {
        let (before, then) = self.last?;
        let secs = now.saturating_duration_since(then).as_secs_f64();
        (secs > 0.0).then(|| total.saturating_sub(before) as f64 / secs)
    }
}

/// Upper bounds (seconds) of the response-time histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 100e-3,
];

/// A histogram with fixed buckets (cumulative on export).
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// Records `n` observations of `d` (the queries of one batch).
    pub fn observe_n(&self, d: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(n, Ordering::Relaxed);
        self.sum_ns
            .fetch_add((d.as_nanos() as u64).saturating_mul(n), Ordering::Relaxed);
    }

    /// Writes the histogram in Prometheus text format.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        use std::fmt::Write;
        let mut cum = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| format!("{b}"));
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cum}");
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{braces} {cum}");
    }
}

/// Server-wide DNS counters (queries that reached no zone, timing).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Queries answered without a zone (REFUSED, FORMERR, NOTIMP, BADVERS) by rcode.
    pub no_zone: [AtomicU64; RCODES.len() + 1],
    /// Time from request to response sent.
    pub response_time: Histogram,
    /// Response rate limiting's buckets and counters.
    pub rrl: crate::rrl::Table,
    /// Query log messages written and dropped (`[dnstap]`).
    pub dnstap: Arc<DnstapCounters>,
}

/// dnstap messages written and dropped, for `/metrics`.
#[derive(Debug, Default)]
pub struct DnstapCounters {
    /// Messages handed to the socket or file.
    pub written: AtomicU64,
    /// Messages dropped: the queue was full, or the write failed.
    pub dropped: AtomicU64,
}

impl ServerStats {
    /// Counts a query that reached no zone.
    pub fn count_no_zone(&self, rcode: ResponseCode) {
        self.no_zone[rcode_index(rcode)].fetch_add(1, Ordering::Relaxed);
    }
}

/// One probe's results, written by its task. Laid out so that a probe's
/// writes touch few cache lines (it is cold by the next probe): the
/// counters together at the start of a line of their own.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct ProbeStats {
    /// Successful probe cycles.
    pub ok: AtomicU64,
    /// Failed probe cycles.
    pub failed: AtomicU64,
    /// Latency of the last cycle, in microseconds.
    pub last_latency_us: AtomicU64,
    /// Latencies recorded so far.
    recorded: AtomicU64,
    /// Cycles that could not run for a local reason (not counted).
    pub local_faults: AtomicU64,
    /// The last [`RECENT_LATENCIES`] latencies in microseconds, a ring:
    /// the next one goes to `recorded % RECENT_LATENCIES`. Atomics, not a
    /// lock: one write per probe, from the probe's task.
    recent: [AtomicU32; RECENT_LATENCIES],
    /// Probe latency.
    pub latency: Histogram,
}

impl Default for ProbeStats {
    fn default() -> Self {
        ProbeStats {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_latency_us: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            local_faults: AtomicU64::new(0),
            recent: std::array::from_fn(|_| AtomicU32::new(0)),
            latency: Histogram::default(),
        }
    }
}

/// Probe latencies kept for the status page's sparkline.
pub const RECENT_LATENCIES: usize = 60;

impl ProbeStats {
    /// Records one probe cycle's latency.
    pub fn observe_latency(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u32::MAX)) as u32;
        self.last_latency_us.store(u64::from(us), Ordering::Relaxed);
        self.latency.observe(d);
        let n = self.recorded.fetch_add(1, Ordering::Relaxed);
        self.recent[(n % RECENT_LATENCIES as u64) as usize].store(us, Ordering::Relaxed);
    }

    /// The recent latencies in microseconds, oldest first. (Read while a
    /// probe records, the newest may show the value it replaces.)
    pub fn recent_latencies(&self) -> Vec<u32> {
        let n = self.recorded.load(Ordering::Relaxed);
        let kept = n.min(RECENT_LATENCIES as u64);
        (n - kept..n)
            .map(|i| self.recent[(i % RECENT_LATENCIES as u64) as usize].load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ring_keeps_the_last_ones() {
        let p = ProbeStats::default();
        for i in 0..(RECENT_LATENCIES as u64 + 5) {
            p.observe_latency(Duration::from_micros(i));
        }
        let r = p.recent_latencies();
        assert_eq!(r.len(), RECENT_LATENCIES);
        assert_eq!(r[0], 5);
        assert_eq!(*r.last().unwrap(), RECENT_LATENCIES as u32 + 4);
        assert_eq!(
            p.last_latency_us.load(Ordering::Relaxed),
            RECENT_LATENCIES as u64 + 4
        );
    }

    /// A tally adds a run to its counter when the run ends (another
    /// counter, another zone), when flushed and when dropped; nothing is
    /// lost or counted twice.
    #[test]
    fn a_tally_adds_every_query_to_its_own_counter() {
        let (a, b) = (ZoneStats::default(), ZoneStats::default());
        let (ok, nx) = (ResponseCode::NoError, ResponseCode::NXDomain);
        let mut t = Tally::default();
        for _ in 0..3 {
            t.count(&a, RecordType::A, ok, 0);
        }
        assert_eq!(a.total(), 0, "held while the run goes on");
        t.count(&a, RecordType::AAAA, ok, 0);
        assert_eq!(a.total(), 3);
        t.count(&b, RecordType::AAAA, ok, 0);
        t.count(&a, RecordType::AAAA, nx, 4);
        t.count(&a, RecordType::AAAA, nx, 4);
        t.flush();
        t.flush();
        assert_eq!((a.total(), b.total()), (6, 1));
        t.count(&b, RecordType::MX, ok, 0);
        drop(t);
        assert_eq!(b.total(), 2);
        let at = |s: &ZoneStats, p: usize, t, r| s.counter(t, r, p).load(Ordering::Relaxed);
        assert_eq!(at(&a, 0, RecordType::A, ok), 3);
        assert_eq!(at(&a, 0, RecordType::AAAA, ok), 1);
        assert_eq!(at(&a, 4, RecordType::AAAA, nx), 2);
        assert_eq!(at(&b, 0, RecordType::AAAA, ok), 1);
        assert_eq!(at(&b, 0, RecordType::MX, ok), 1);
    }

    #[test]
    fn qps_ring_is_deltas_over_time_and_bounded() {
        let mut r = QpsRing::default();
        let t0 = Instant::now();
        let at = SystemTime::UNIX_EPOCH;
        r.push(100, t0, at);
        assert!(r.points.is_empty(), "the first sample is the baseline");
        assert_eq!(r.current(150, t0 + Duration::from_secs(5)), Some(10.0));
        r.push(200, t0 + Duration::from_secs(10), at);
        assert_eq!(r.points[0].qps, 10.0);
        for i in 2..(QPS_POINTS as u64 + 10) {
            r.push(200, t0 + Duration::from_secs(10 * i), at);
        }
        assert_eq!(r.points.len(), QPS_POINTS);
        assert!(r.points.iter().all(|p| p.qps == 0.0));
    }
}
