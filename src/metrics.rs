//! Counters. The query path only does relaxed atomic increments on
//! counters that live inside the snapshot's objects (per zone, per slot),
//! so no lookup or lock is added per query; `/metrics` reads them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
}

impl Default for ZoneStats {
    fn default() -> Self {
        ZoneStats {
            queries: std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            }),
        }
    }
}

impl ZoneStats {
    /// Counts one answered query.
    pub fn count(&self, qtype: RecordType, rcode: ResponseCode, policy: usize) {
        self.queries[policy.min(POLICIES.len() - 1)][qtype_index(qtype)][rcode_index(rcode)]
            .fetch_add(1, Ordering::Relaxed);
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
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
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

/// One probe's results, written by its task.
#[derive(Debug, Default)]
pub struct ProbeStats {
    /// Successful probe cycles.
    pub ok: AtomicU64,
    /// Failed probe cycles.
    pub failed: AtomicU64,
    /// Cycles that could not run for a local reason (not counted).
    pub local_faults: AtomicU64,
    /// Latency of the last cycle, in microseconds.
    pub last_latency_us: AtomicU64,
    /// Probe latency.
    pub latency: Histogram,
}
