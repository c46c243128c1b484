//! Response rate limiting, as NSD, Knot and BIND do it: a token bucket
//! per (client network, response class, imputed name), so spoofed floods
//! cannot use veer as a reflector while a large resolver behind one /24
//! still gets every name it asks for at the full rate.
//!
//! The table is a fixed array of slots (bounded memory, no allocation on
//! the query path, no lock): a bucket lives in the slot its key hashes to,
//! and a different key hashing there takes the slot over with a full
//! bucket. Each slot packs the bucket into one atomic word: the last
//! refill time in milliseconds (32 bits, wrapping) and the credit in
//! thousandths of a response (32 bits).

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hickory_proto::rr::Name;

use crate::route::prefix::{Net, mask};

/// Slots in the table (a power of two).
const SLOTS: usize = 1 << 16;

/// What a response is, for its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Records for the query name.
    Answer,
    /// A wildcard's records (imputed to the wildcard).
    Wildcard,
    /// NXDOMAIN (imputed to the zone).
    NxDomain,
    /// NOERROR without records (imputed to the zone).
    NoData,
    /// A referral (imputed to the delegation point).
    Referral,
    /// Any error (imputed to the zone, or to nothing outside our zones).
    Error,
}

/// The `[rrl]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Responses per second per bucket; 0 turns limiting off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response goes out truncated (0: none).
    pub slip: u32,
    /// A bucket holds `responses_per_second × window` responses.
    pub window_ms: u32,
    /// IPv4 clients are grouped by this prefix.
    pub ipv4_prefix: u8,
    /// IPv6 clients are grouped by this prefix.
    pub ipv6_prefix: u8,
    /// Networks never limited.
    pub exempt: Vec<Net>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            responses_per_second: 200,
            slip: 2,
            window_ms: 1000,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
        }
    }
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send it truncated (TC, no records): a real resolver retries over TCP.
    Slip,
    /// Send nothing.
    Drop,
}

/// The buckets, shared by every UDP thread and kept across reloads.
#[derive(Debug)]
pub struct Table {
    /// Mixed into every key: which networks collide is not predictable.
    seed: u64,
    keys: Box<[AtomicU64]>,
    state: Box<[AtomicU64]>,
    limited: AtomicU64,
    start: Instant,
    /// Responses dropped.
    pub dropped: AtomicU64,
    /// Responses sent truncated.
    pub slipped: AtomicU64,
}

impl Default for Table {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            seed = fastrand::u64(..).to_le_bytes();
        }
        Table {
            seed: u64::from_le_bytes(seed),
            keys: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            state: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            limited: AtomicU64::new(0),
            start: Instant::now(),
            dropped: AtomicU64::new(0),
            slipped: AtomicU64::new(0),
        }
    }
}

impl Table {
    /// The verdict for a response of `class` imputed to `name` (compared
    /// case-insensitively) for the UDP client `src`.
    pub fn check(&self, cfg: &Config, src: IpAddr, class: Class, name: Option<&Name>) -> Verdict {
        self.check_labels(cfg, src, class, name.into_iter().flat_map(|n| n.iter()))
    }

    /// [`Table::check`] for a name given as a key (the query fast path):
    /// the same bucket as the same name given as a `Name`.
    pub fn check_key(
        &self,
        cfg: &Config,
        src: IpAddr,
        class: Class,
        name: &crate::zone::Key,
    ) -> Verdict {
        self.check_labels(cfg, src, class, name.labels_iter())
    }

    fn check_labels<'n>(
        &self,
        cfg: &Config,
        src: IpAddr,
        class: Class,
        labels: impl Iterator<Item = &'n [u8]>,
    ) -> Verdict {
        if cfg.responses_per_second == 0 {
            return Verdict::Send;
        }
        let src = src.to_canonical();
        if cfg
            .exempt
            .iter()
            .any(|n| n.addr.is_ipv4() == src.is_ipv4() && mask(src, n.len) == n.addr)
        {
            return Verdict::Send;
        }
        let net = match src {
            IpAddr::V4(_) => mask(src, cfg.ipv4_prefix),
            IpAddr::V6(_) => mask(src, cfg.ipv6_prefix),
        };
        let mut h = rustc_hash::FxHasher::default();
        self.seed.hash(&mut h);
        net.hash(&mut h);
        class.hash(&mut h);
        // The name's labels, lower case, hashed in place (no copy).
        for label in labels {
            for b in label {
                h.write_u8(b.to_ascii_lowercase());
            }
            h.write_u8(b'.');
        }
        let key = h.finish() | 1;
        let slot = (key as usize) & (SLOTS - 1);
        let now = self.start.elapsed().as_millis() as u32;
        let capacity = u64::from(cfg.responses_per_second) * u64::from(cfg.window_ms.max(1));
        let capacity = capacity.min(u64::from(u32::MAX)) as u32;
        // Only an empty slot starts full. Keys that collide share one
        // bucket (which refilled by itself if the slot sat idle): taking a
        // slot over never resets it, so alternating with a colliding
        // network buys nothing.
        if self.keys[slot].swap(key, Ordering::Relaxed) == 0 {
            let _ = self.state[slot].compare_exchange(
                0,
                pack(now, capacity),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let mut cur = self.state[slot].load(Ordering::Relaxed);
        let allowed = loop {
            let (last, credit) = unpack(cur);
            // Another thread may have stored a later time than our `now`:
            // that is no time passing (not 2^32 ms of it).
            let elapsed = now.wrapping_sub(last);
            let (elapsed, at) = if elapsed > u32::MAX / 2 {
                (0, last)
            } else {
                (elapsed, now)
            };
            // Credit in thousandths: rate per second = rate thousandths per ms.
            let earned = u64::from(elapsed) * u64::from(cfg.responses_per_second);
            let credit = (u64::from(credit) + earned).min(u64::from(capacity));
            let (next, ok) = if credit >= 1000 {
                (pack(at, (credit - 1000) as u32), true)
            } else {
                (pack(at, credit as u32), false)
            };
            match self.state[slot].compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break ok,
                Err(actual) => cur = actual,
            }
        };
        if allowed {
            return Verdict::Send;
        }
        let n = self.limited.fetch_add(1, Ordering::Relaxed) + 1;
        if cfg.slip > 0 && n.is_multiple_of(u64::from(cfg.slip)) {
            self.slipped.fetch_add(1, Ordering::Relaxed);
            Verdict::Slip
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        }
    }
}

fn pack(ms: u32, credit: u32) -> u64 {
    (u64::from(ms) << 32) | u64::from(credit)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_per_network_class_and_name() {
        let t = Table::default();
        // A bucket of 10 that earns one response a second: the test holds
        // unless the machine stalls it for a second.
        let cfg = Config {
            responses_per_second: 1,
            window_ms: 10_000,
            ..Config::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other_net: IpAddr = "192.0.3.1".parse().unwrap();
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let sent = |src, class, name: &Name| {
            (0..30)
                .filter(|_| t.check(&cfg, src, class, Some(name)) == Verdict::Send)
                .count()
        };
        // A burst of 30: the bucket's 10.
        assert_eq!(sent(a, Class::Answer, &n("www.t.")), 10);
        // The same /24 shares it (names compare without case); another
        // /24, name or class does not.
        assert_eq!(sent(same_net, Class::Answer, &n("WWW.t.")), 0);
        assert_eq!(sent(other_net, Class::Answer, &n("www.t.")), 10);
        assert_eq!(sent(a, Class::Answer, &n("mail.t.")), 10);
        assert_eq!(sent(a, Class::NxDomain, &n("www.t.")), 10);
        // The query fast path's key lands in the same bucket as the name.
        let (key, _) = crate::zone::Key::from_wire(b"\x04MAIL\x01t\x00").unwrap();
        assert_eq!(
            (0..30)
                .filter(|_| t.check_key(&cfg, a, Class::Answer, &key) == Verdict::Send)
                .count(),
            0,
            "mail.t.'s bucket is empty"
        );
        // Every 2nd limited response slips.
        assert!(t.slipped.load(Ordering::Relaxed) > 0);
        let (s, d) = (
            t.slipped.load(Ordering::Relaxed),
            t.dropped.load(Ordering::Relaxed),
        );
        assert!(s.abs_diff(d) <= 1, "slipped {s}, dropped {d}");
        // Off, and exempt networks, are never limited.
        let off = Config {
            responses_per_second: 0,
            ..Config::default()
        };
        assert!((0..100).all(|_| t.check(&off, a, Class::Answer, None) == Verdict::Send));
        let exempt = Config {
            responses_per_second: 10,
            exempt: vec!["192.0.2.0/24".parse().unwrap()],
            ..Config::default()
        };
        assert!((0..100).all(|_| t.check(&exempt, a, Class::Answer, None) == Verdict::Send));
    }

    #[test]
    fn racing_threads_get_no_free_refills() {
        let t = std::sync::Arc::new(Table::default());
        let cfg = Config {
            responses_per_second: 1,
            window_ms: 100_000,
            slip: 0,
            ..Config::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let started = Instant::now();
        let sent: usize = (0..2)
            .map(|_| {
                let (t, cfg) = (t.clone(), cfg.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while started.elapsed() < std::time::Duration::from_millis(1500) {
                        n += usize::from(t.check(&cfg, a, Class::Answer, None) == Verdict::Send);
                    }
                    n
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        // The bucket (100) plus 1.5 s of 1/s.
        assert!(sent <= 103, "{sent}");
    }

    #[test]
    fn credit_comes_back_at_the_rate() {
        let t = Table::default();
        let cfg = Config {
            responses_per_second: 1000,
            slip: 0,
            ..Config::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        while t.check(&cfg, a, Class::Answer, None) == Verdict::Send {}
        std::thread::sleep(std::time::Duration::from_millis(50));
        // About 50 responses' worth came back in 50 ms (1000/s).
        let n = (0..200)
            .filter(|_| t.check(&cfg, a, Class::Answer, None) == Verdict::Send)
            .count();
        assert!((40..=120).contains(&n), "{n}");
    }
}
