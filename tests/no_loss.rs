//! No query lost to a reload (issue 5, item 4): while clients keep
//! querying over UDP and TCP, 50 reloads alternate valid edits (an A
//! RRset of three records switches between two sets) and invalid ones (a
//! syntax error in the zone or the config). Every query must be answered,
//! and every answer must be exactly one of the two sets, never a mix.
//!
//! The clients are raw sockets (`support/admin.rs`): two UDP threads with
//! one query in flight each, and one long-lived TCP connection with a
//! window of pipelined queries. Each reload is triggered with
//! `POST /v1/reload` and confirmed by its response (200 for a valid edit,
//! 422 for an invalid one); after a valid one the test waits until the
//! clients have seen the new set. Query latency is recorded before and
//! during the reloads and printed (p50/p99) for the closing note.

#[path = "support/admin.rs"]
mod admin;
mod common;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admin::{Admin, TOKEN, config_text, dns, save_by_rename, token_line, zone_text};
use common::*;

/// The two contents of `www.example.test. A`.
const SET_X: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(192, 0, 2, 2),
    Ipv4Addr::new(192, 0, 2, 3),
];
const SET_Y: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(198, 51, 100, 8),
    Ipv4Addr::new(198, 51, 100, 9),
];

/// Reloads, alternating valid and invalid edits.
const RELOADS: usize = 50;
/// Queries that must be answered while the reloads run.
const MIN_QUERIES: u64 = 20_000;
/// The whole test must finish within this.
const BUDGET: Duration = Duration::from_secs(30);
/// Queries a client waits for an answer before counting it lost.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries in flight on the TCP connection.
const TCP_WINDOW: usize = 4;

/// Pause after each answer, per client: the clients run at a few
/// thousand queries a second, below saturation, so the latency figures
/// show what reloads cost rather than CPU contention.
const PACE: Duration = Duration::from_micros(250);

/// Phases, for latency bookkeeping (0 = baseline, before any reload).
const RELOADING: u8 = 1;
const AFTER: u8 = 2;

fn zone_with(set: &[Ipv4Addr; 3], serial: u32) -> String {
    let www: String = set.iter().map(|ip| format!("www IN A {ip}\n")).collect();
    zone_text(serial, &format!("{www}other IN A 192.0.2.200\n"))
}

/// What the clients share with the reload driver.
#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    stop: AtomicBool,
    answered: AtomicU64,
    answered_while_reloading: AtomicU64,
    /// Answers with set X / set Y.
    seen_x: AtomicU64,
    seen_y: AtomicU64,
    /// Problems (lost queries, wrong answers), with context.
    problems: Mutex<Vec<String>>,
    lost: AtomicU64,
    bad: AtomicU64,
    /// Latencies in microseconds per phase.
    latency: Mutex<[Vec<u32>; 3]>,
}

impl Shared {
    /// Checks one reply; true if it is one of the two sets.
    fn record(&self, client: &str, reply: Result<dns::Reply, String>, took: Duration) {
        let phase = self.phase.load(Ordering::SeqCst);
        match reply {
            Ok(r) => {
                let mut a = r.a.clone();
                a.sort();
                let ok = r.rcode == 0
                    && r.flags & 0x0400 != 0
                    && r.qname == "www.example.test"
                    && r.answers == 3;
                if ok && a == SET_X {
                    self.seen_x.fetch_add(1, Ordering::Relaxed);
                } else if ok && a == SET_Y {
                    self.seen_y.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.bad.fetch_add(1, Ordering::Relaxed);
                    self.problem(format!("{client}: neither set X nor Y: {r:?}"));
                }
                self.answered.fetch_add(1, Ordering::Relaxed);
                if phase == RELOADING {
                    self.answered_while_reloading
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
                self.problem(format!("{client}: {e}"));
            }
        }
        let us = took.as_micros().min(u32::MAX as u128) as u32;
        self.latency.lock().unwrap()[phase as usize].push(us);
    }

    fn problem(&self, p: String) {
        let mut v = self.problems.lock().unwrap();
        if v.len() < 20 {
            v.push(p);
        }
    }
}

fn udp_client(server: SocketAddr, shared: Arc<Shared>, n: u16) {
    let sock = dns::udp(server, QUERY_TIMEOUT);
    let mut id = n.wrapping_mul(10_000);
    while !shared.stop.load(Ordering::SeqCst) {
        id = id.wrapping_add(1);
        let q = dns::query(id, "www.example.test", 1);
        let sent = Instant::now();
        let r = dns::udp_ask(&sock, &q);
        shared.record(&format!("udp{n} id {id}"), r, sent.elapsed());
        std::thread::sleep(PACE);
    }
}

fn tcp_client(server: SocketAddr, shared: Arc<Shared>) {
    let mut conn = match dns::Tcp::connect(server, QUERY_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            shared.problem(format!("tcp: connect: {e}"));
            shared.lost.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    let mut in_flight: VecDeque<(u16, Instant)> = VecDeque::new();
    let mut id = 0u16;
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        while !stopping && in_flight.len() < TCP_WINDOW {
            id = id.wrapping_add(1);
            if let Err(e) = conn.send(&dns::query(id, "www.example.test", 1)) {
                shared.problem(format!("tcp: send: {e}"));
                shared
                    .lost
                    .fetch_add(in_flight.len() as u64 + 1, Ordering::SeqCst);
                return;
            }
            in_flight.push_back((id, Instant::now()));
        }
        let Some((want, sent)) = in_flight.pop_front() else {
            return; // stopping, and everything answered
        };
        let r = conn.recv().and_then(|r| {
            if r.id == want {
                Ok(r)
            } else {
                Err(format!("id {} where {want} was next", r.id))
            }
        });
        let broken = r.is_err();
        shared.record(&format!("tcp id {want}"), r, sent.elapsed());
        if broken {
            shared
                .lost
                .fetch_add(in_flight.len() as u64, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(PACE);
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Edit `i` (0-based): even = valid (the set flips), odd = invalid (a
/// syntax error in the zone, or every other time in the config).
fn edit(i: usize, zone: &Path, config: &Path, good_config: &str) -> (bool, &'static [Ipv4Addr; 3]) {
    let valid = i.is_multiple_of(2);
    // After valid edit i the set is Y for i = 0, 4, 8, ... and X for 2, 6, ...
    let set = if (i / 2).is_multiple_of(2) {
        &SET_Y
    } else {
        &SET_X
    };
    let serial = 10 + i as u32;
    if valid {
        save_by_rename(config, good_config);
        save_by_rename(zone, &zone_with(set, serial));
    } else if (i / 2).is_multiple_of(2) {
        // The zone: a record with a bad type after the (unchanged) set.
        let text = zone_with(set, serial) + "broken IN NOTATYPE x\n";
        save_by_rename(zone, &text);
    } else {
        // The config: a TOML syntax error.
        save_by_rename(config, &format!("{good_config}[server\n"));
    }
    (valid, set)
}

#[test]
fn fifty_reloads_under_query_load_lose_nothing_and_never_mix() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("veer-noloss-")
        .tempdir()
        .unwrap();
    let zone = write_file(dir.path(), "example.test.zone", &zone_with(&SET_X, 1));
    let good_config = config_text(Some(&token_line()), "");
    let config = write_file(dir.path(), "veer.toml", &good_config);
    let veer = Veer::start(&config);
    let api = Admin::from_logs(&veer.logs(), TOKEN);

    let shared = Arc::new(Shared::default());
    let mut clients = Vec::new();
    for n in 0..2 {
        let (s, addr) = (shared.clone(), veer.addr);
        clients.push(std::thread::spawn(move || udp_client(addr, s, n)));
    }
    {
        let (s, addr) = (shared.clone(), veer.addr);
        clients.push(std::thread::spawn(move || tcp_client(addr, s)));
    }

    // Baseline: latency without reloads.
    let baseline_end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < baseline_end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let baseline_queries = shared.answered.load(Ordering::SeqCst);
    assert!(
        baseline_queries > 100,
        "clients barely run: {baseline_queries} answers in 1 s; problems: {:?}",
        shared.problems.lock().unwrap()
    );

    // Spread the reloads over at least MIN_QUERIES answers.
    let per_reload = MIN_QUERIES / RELOADS as u64 + 1;
    shared.phase.store(RELOADING, Ordering::SeqCst);
    let reload_start = Instant::now();
    let mut reload_times = Vec::new();
    let mut current = &SET_X;
    let mut stale_after_post = 0;
    let mut reloads_done = 0;
    let mut stalled = None;
    for i in 0..RELOADS {
        let mark = shared.answered.load(Ordering::SeqCst);
        let (valid, set) = edit(i, &zone, &config, &good_config);
        let t = Instant::now();
        let r = api.reload();
        reload_times.push(t.elapsed());
        if valid {
            assert_eq!(r.status, 200, "reload {i} (valid): {}", r.body);
            assert_eq!(r.json()["ok"], true, "{}", r.body);
            current = set;
        } else {
            assert_eq!(r.status, 422, "reload {i} (invalid): {}", r.body);
            assert_eq!(r.json()["ok"], false, "{}", r.body);
        }
        // The served set is the one of the last valid edit.
        let want = *current;
        if valid {
            let first = dns::ask_a(veer.addr, "www.example.test").map(|r| {
                let mut a = r.a;
                a.sort();
                a
            });
            if !first.is_ok_and(|a| a == want) {
                stale_after_post += 1;
            }
        }
        let seen_new = wait_until(Duration::from_secs(5), || {
            dns::ask_a(veer.addr, "www.example.test").is_ok_and(|r| {
                let mut a = r.a;
                a.sort();
                a == want
            })
        });
        assert!(seen_new, "reload {i}: {want:?} never served");
        // Let the clients put enough queries through this generation.
        let left = BUDGET.saturating_sub(started.elapsed());
        let ok = wait_until(left, || {
            shared.answered.load(Ordering::SeqCst) >= mark + per_reload
                || shared.lost.load(Ordering::SeqCst) > 0
        });
        if !ok {
            stalled = Some(format!(
                "after reload {i} the clients got {} answers in {left:?} (wanted {per_reload})",
                shared.answered.load(Ordering::SeqCst) - mark
            ));
            break;
        }
        reloads_done += 1;
        if shared.lost.load(Ordering::SeqCst) > 0 || started.elapsed() >= BUDGET {
            break;
        }
    }
    let reloading = reload_start.elapsed();
    shared.phase.store(AFTER, Ordering::SeqCst);
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread");
    }

    let answered = shared.answered.load(Ordering::SeqCst);
    let during = shared.answered_while_reloading.load(Ordering::SeqCst);
    let lost = shared.lost.load(Ordering::SeqCst);
    let bad = shared.bad.load(Ordering::SeqCst);
    let mut lat = shared.latency.lock().unwrap().clone();
    for l in lat.iter_mut() {
        l.sort_unstable();
    }
    reload_times.sort();
    eprintln!(
        "no-loss: {stale_after_post} stale first answers after a 200 from POST /v1/reload; {answered} answers ({during} during {RELOADS} reloads in {reloading:?}), \
         {lost} lost, {bad} wrong; set X {} / set Y {}",
        shared.seen_x.load(Ordering::SeqCst),
        shared.seen_y.load(Ordering::SeqCst)
    );
    eprintln!(
        "query latency without reloads: p50 {:.3} ms, p99 {:.3} ms ({} queries); \
         during reloads: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} queries); \
         POST /v1/reload: median {:?}, max {:?}",
        percentile(&lat[0], 0.5),
        percentile(&lat[0], 0.99),
        lat[0].len(),
        percentile(&lat[1], 0.5),
        percentile(&lat[1], 0.99),
        percentile(&lat[1], 1.0),
        lat[1].len(),
        reload_times[reload_times.len() / 2],
        reload_times[reload_times.len() - 1],
    );
    let problems = shared.problems.lock().unwrap().clone();
    assert_eq!(
        (lost, bad),
        (0, 0),
        "lost or mixed answers:\n{}\nlogs:\n{}",
        problems.join("\n"),
        veer.logs()
    );
    assert!(
        reloads_done == RELOADS && during >= MIN_QUERIES,
        "{reloads_done} of {RELOADS} reloads, {during} queries answered during them \
         (want {MIN_QUERIES}) in {:?}: {stalled:?}; slowest answer {:.1} ms; logs:\n{}",
        started.elapsed(),
        lat[1].last().copied().unwrap_or(0) as f64 / 1000.0,
        veer.logs()
    );
    assert!(
        shared.seen_x.load(Ordering::SeqCst) > 0 && shared.seen_y.load(Ordering::SeqCst) > 0,
        "both sets must have been served"
    );
    let s = api.status();
    assert!(s["reloads_ok"].as_u64().unwrap() >= 25, "{s}");
    assert!(s["reloads_failed"].as_u64().unwrap() >= 25, "{s}");
    let logs = veer.logs();
    assert!(
        logs.matches("reload rejected: ").count() >= 25,
        "rejections not logged:\n{logs}"
    );
    assert!(
        started.elapsed() < BUDGET,
        "took {:?} (budget {BUDGET:?})",
        started.elapsed()
    );
}
