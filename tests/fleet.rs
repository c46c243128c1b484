//! Fleet quorum: several veer instances agree on health. Tested as an
//! operator would run it: three real `veer serve` instances on loopback
//! (`support/fleet.rs`), each probing from its own source address
//! (ns1 from 127.0.0.2, ns2 from .3, ns3 from .4: three vantage points),
//! exchanging votes over their fleet listeners; a real HTTP backend that
//! can fail the probes of chosen sources only (`support/backends.rs`);
//! `dig` as the client, the admin API and the status page for what each
//! instance believes.
//!
//! Every instance serves `www.example.test`: a failover route whose
//! primary 10.0.0.1 has the http check `web` and whose secondary 10.0.0.2
//! has no check (always up). Probes run every 200 ms (timeout 150 ms,
//! fall 2, rise 2) and `peer_timeout` is 1 s, so every wait is a short
//! poll against a deadline, and the bounds asserted are in probe rounds
//! and peer timeouts plus a margin for a loaded 2-core machine.
//!
//! What is asserted is what clients get (the answers), then what the
//! status says and what is logged.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/backends.rs"]
mod backends;
mod common;
#[path = "support/fleet.rs"]
mod fleet;
#[path = "support/secondary.rs"]
mod secondary;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backends::HttpBackend;
use common::*;
use fleet::{
    FLEET_TOKEN, FakePeer, FakeRequest, Fleet, Options, Responder, VOTES_PATH, bearer, has_class,
    line_with, opening_tag, ranked, rows, score, section, source_of, text, vote_of, vote_state,
};
use serde_json::Value;

/// The probe interval of the check.
const INTERVAL: Duration = Duration::from_millis(200);

/// Failed probes before a vantage point says down.
const FALL: u32 = 2;

/// Successful probes before a vantage point says up again.
const RISE: u32 = 2;

/// `[fleet] peer_timeout` of every instance.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// Slack on top of a bound: the probe's phase, the long-poll's round
/// trip, dig's own start-up, and a loaded 2-core machine running other
/// tests in parallel.
const MARGIN: Duration = Duration::from_millis(1000);

/// Deadline for changes waited for without a bound asserted.
const WAIT: Duration = Duration::from_secs(15);

/// How long after the backend changes every instance must have moved:
/// `fall` failed probes (plus the phase of the first: one more
/// interval), the votes' trip through the fleet (under one
/// peer_timeout), and the margin.
const FAILOVER_BOUND: Duration = Duration::from_millis(
    INTERVAL.as_millis() as u64 * (FALL as u64 + 1)
        + PEER_TIMEOUT.as_millis() as u64
        + MARGIN.as_millis() as u64,
);

/// How far apart the first and the last instance may move: one round
/// (`fall × interval`) plus one peer_timeout.
const SPREAD_BOUND: Duration = Duration::from_millis(
    INTERVAL.as_millis() as u64 * FALL as u64 + PEER_TIMEOUT.as_millis() as u64,
);

const WWW: &str = "www.example.test";
const PRIMARY: &str = "10.0.0.1";
const SECONDARY: &str = "10.0.0.2";
const CHECK: &str = "web";

/// The check `web` on `url` and the route `www` over it.
fn body(url: &str) -> String {
    format!(
        "[check.{CHECK}]\nhttp = \"{url}\"\ninterval = \"{}ms\"\ntimeout = \"150ms\"\nfall = {FALL}\nrise = {RISE}\n\n\
         [[route]]\nname = \"{WWW}.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ {{ tier = 1, value = \"{PRIMARY}\", check = \"{CHECK}\" }}, {{ tier = 2, value = \"{SECONDARY}\" }} ]\n\n",
        INTERVAL.as_millis()
    )
}

/// Three instances probing `web` (majority quorum: 2 of 3).
fn three(web: &HttpBackend) -> Fleet {
    Fleet::start(&Options::new(3, &body(&web.url("/health"))))
}

/// Polls members `idx` round-robin until each has answered `to`, and
/// returns when each first did (since the call). While `from` is given,
/// any other answer fails, and so does answering `from` again after `to`
/// (a flap).
#[track_caller]
fn wait_all(
    f: &Fleet,
    idx: &[usize],
    from: Option<&str>,
    to: &str,
    timeout: Duration,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut first: Vec<Option<Duration>> = vec![None; idx.len()];
    let mut last: Vec<Vec<String>> = vec![Vec::new(); idx.len()];
    while first.iter().any(Option::is_none) {
        if start.elapsed() > timeout {
            let who: Vec<String> = idx
                .iter()
                .zip(&first)
                .zip(&last)
                .filter(|((_, t), _)| t.is_none())
                .map(|((i, _), a)| format!("{} (last {a:?})", f.m(*i).name))
                .collect();
            panic!(
                "not every instance answered {to} within {timeout:?}: {}\n{}",
                who.join(", "),
                f.all_logs()
            );
        }
        for (k, &i) in idx.iter().enumerate() {
            let m = f.m(i);
            let a = m.answer(WWW);
            let at = start.elapsed();
            last[k] = a.clone();
            if a == [to] {
                first[k].get_or_insert(at);
                continue;
            }
            if let Some(from) = from {
                if let Some(t) = first[k] {
                    panic!(
                        "{} answered {a:?} at {at:?}, after it had answered {to} at {t:?} (a flap)\n{}",
                        m.name,
                        f.all_logs()
                    );
                }
                assert!(
                    a == [from],
                    "{} answered {a:?} at {at:?} (neither {from} nor {to})\n{}",
                    m.name,
                    f.all_logs()
                );
            }
        }
    }
    first.into_iter().map(Option::unwrap).collect()
}

/// Samples members `idx` round-robin for `period` (at least once each)
/// and fails on any answer but `want`. Returns the number of answers.
#[track_caller]
fn assert_stays(f: &Fleet, idx: &[usize], want: &str, period: Duration) -> usize {
    let start = Instant::now();
    let mut n = 0;
    loop {
        for &i in idx {
            let m = f.m(i);
            let a = m.answer(WWW);
            assert!(
                a == [want],
                "{} answered {a:?} {:?} into a period where it must answer {want}\n{}",
                m.name,
                start.elapsed(),
                f.all_logs()
            );
            n += 1;
        }
        if start.elapsed() >= period {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until member `i`'s `fleet.checks` entry for `web` satisfies
/// `pred`; returns it. Panics with `what`, the last entry and the logs.
#[track_caller]
fn wait_check(f: &Fleet, i: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let m = f.m(i);
    let mut last = Value::Null;
    let ok = wait_until_every(WAIT, Duration::from_millis(50), || {
        match m.try_check(CHECK) {
            Some(c) => {
                let ok = pred(&c);
                last = c;
                ok
            }
            None => false,
        }
    });
    assert!(
        ok,
        "{}: {what}: not within {WAIT:?}; last `{CHECK}` entry of fleet.checks: {last}\n{}",
        m.name,
        f.all_logs()
    );
    last
}

/// Whether a check entry has `verdict` and exactly these vote states.
fn votes_are(c: &Value, verdict: &str, states: &[(&str, &str)]) -> bool {
    c["verdict"] == verdict && states.iter().all(|(i, s)| vote_state(c, i) == *s)
}

/// The row of the `fleet` table for `web` on a status page.
#[track_caller]
fn fleet_row(page: &str) -> String {
    let table = section(page, "id=\"fleet-votes\"", "</table>");
    rows(table)
        .into_iter()
        .find(|r| {
            r.contains(&format!("data-check=\"{CHECK}\""))
                || text(r).split_whitespace().any(|w| w == CHECK)
        })
        .unwrap_or_else(|| panic!("no row for `{CHECK}` in the fleet table:\n{table}"))
        .to_string()
}

/// The visible text of a row, `name : state` written `name: state`.
fn row_text(row: &str) -> String {
    text(row).replace(" :", ":")
}

fn max(t: &[Duration]) -> Duration {
    t.iter().copied().max().unwrap_or_default()
}

fn min(t: &[Duration]) -> Duration {
    t.iter().copied().min().unwrap_or_default()
}

/// Request counts per source that changed between two snapshots.
fn delta(before: &HashMap<IpAddr, u64>, after: &HashMap<IpAddr, u64>) -> HashMap<IpAddr, u64> {
    after
        .iter()
        .map(|(ip, n)| (*ip, n - before.get(ip).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

// ---------------------------------------------------------------------------
// The harness itself (these pass without the feature)
// ---------------------------------------------------------------------------

/// One `GET /health` to `to` from `source` (a loopback address the
/// socket binds before connecting); the status code.
fn get_from(source: IpAddr, to: SocketAddr) -> u16 {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {to} from {source}: {e}"));
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {resp:?}"))
}

#[test]
fn backend_on_127_0_0_1_sees_and_fails_chosen_loopback_sources() {
    let web = HttpBackend::start();
    let (a, b, c) = (source_of(0), source_of(1), source_of(2));
    // Any 127.x is local on Linux: a socket bound to 127.0.0.1 accepts a
    // connection from 127.0.0.3 and sees that address as its peer.
    assert_eq!(get_from(a, web.addr()), 200);
    assert_eq!(get_from(b, web.addr()), 200);
    web.set_failing_sources(&[b]);
    assert_eq!(get_from(a, web.addr()), 200, "127.0.0.2 is not failing");
    assert_eq!(get_from(b, web.addr()), 503, "127.0.0.3 is failing");
    assert_eq!(get_from(c, web.addr()), 200, "127.0.0.4 is not failing");
    web.set_status(500);
    assert_eq!(get_from(a, web.addr()), 500, "others get the set status");
    assert_eq!(get_from(b, web.addr()), 503);
    web.set_status(200);
    web.set_failing_sources(&[]);
    assert_eq!(get_from(b, web.addr()), 200, "nobody fails any more");
    assert_eq!(web.hits_from(a), 3);
    assert_eq!(web.hits_from(b), 4);
    assert_eq!(web.hits_from(c), 1);
    assert_eq!(web.hits(), 8);
    assert_eq!(web.hits_by_source().len(), 3, "{:?}", web.hits_by_source());
}

#[test]
fn rendezvous_copy_matches_veers() {
    // The value `health::quorum`'s own test pins.
    assert_eq!(score("web", "ns1"), 0x7940_0969_2377_598c);
    let names: Vec<String> = ["ns1", "ns2", "ns3"].map(String::from).to_vec();
    let order = ranked(CHECK, &names);
    let mut reversed = names.clone();
    reversed.reverse();
    assert_eq!(order, ranked(CHECK, &reversed), "independent of list order");
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, names);
}

#[test]
fn fake_peer_records_requests_and_answers_as_told() {
    let fake = FakePeer::start();
    fake.set_delay(Duration::from_millis(100));
    let addr: SocketAddr = fake.url().trim_start_matches("http://").parse().unwrap();
    let r = fleet::votes(addr, "7", Some(&bearer())).expect("ask the fake");
    assert_eq!(r.status, 503, "no responder yet: {}", r.body);
    fake.respond(200, r#"{"instance":"ns3","seq":"x"}"#);
    let t = Instant::now();
    let r = fleet::votes(addr, "8", None).expect("ask the fake");
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"instance":"ns3","seq":"x"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].path, format!("{VOTES_PATH}?after=7"));
    assert_eq!(reqs[0].authorization.as_deref(), Some(bearer().as_str()));
    assert_eq!(reqs[1].authorization, None);
    assert_eq!(fake.answered(), 2);
}

#[test]
fn relay_rewrite_renames_the_instance_and_maps_states() {
    let mut doc = serde_json::json!({
        "instance": "ns1",
        "seq": 4,
        "votes": [
            {"check": "web", "instance": "ns1", "state": "up", "since": "2026-01-01T00:00:00Z", "note": ""},
            {"check": "api", "state": "Down"},
        ],
        "by_instance": {"ns1": {"web": "UP"}},
    });
    rewrite(&mut doc, "ns1", "ns3", &flip_up);
    assert_eq!(
        doc,
        serde_json::json!({
            "instance": "ns3",
            "seq": 4,
            "votes": [
                {"check": "web", "instance": "ns3", "state": "down", "since": "2026-01-01T00:00:00Z", "note": ""},
                {"check": "api", "state": "Down"},
            ],
            "by_instance": {"ns3": {"web": "DOWN"}},
        })
    );
    rewrite(&mut doc, "ns3", "ns3", &|_| "sideways".to_string());
    assert_eq!(doc["votes"][0]["state"], "sideways");
    assert_eq!(doc["votes"][1]["state"], "sideways");
    assert_eq!(doc["by_instance"]["ns3"]["web"], "sideways");
}

// ---------------------------------------------------------------------------
// Votes and verdicts
// ---------------------------------------------------------------------------

/// One vantage point fails (the path from ns2 is broken): the other two
/// outvote it, so the route keeps answering the primary everywhere (ns2
/// included, though its own probes fail), and the status shows the
/// dissent.
#[test]
fn one_failing_vantage_point_stays_up_everywhere_and_shows_the_dissent() {
    let web = HttpBackend::start();
    let ns2_source = source_of(1);
    web.set_failing_sources(&[ns2_source]);
    let f = three(&web);
    f.wait_live(WAIT);
    for i in 0..3 {
        wait_check(&f, i, "ns2 votes down, ns1 and ns3 up, verdict up", |c| {
            votes_are(c, "up", &[("ns1", "up"), ("ns2", "down"), ("ns3", "up")])
        });
    }
    // Every vantage point probes from its own source, nobody from another.
    for i in 0..3 {
        assert!(
            web.hits_from(source_of(i)) > 0,
            "no probe from {}: {:?}",
            source_of(i),
            web.hits_by_source()
        );
    }
    let sources: Vec<IpAddr> = (0..3).map(source_of).collect();
    assert!(
        web.hits_by_source().keys().all(|ip| sources.contains(ip)),
        "probes from elsewhere than the configured sources: {:?}",
        web.hits_by_source()
    );

    // Several probe rounds: every answer of every instance is the primary.
    let before = web.hits_from(ns2_source);
    let period = Duration::from_secs(2);
    let n = assert_stays(&f, &[0, 1, 2], PRIMARY, period);
    let failed = web.hits_from(ns2_source) - before;
    eprintln!(
        "one vantage point failing: {n} answers over {period:?} from ns1..ns3, all {PRIMARY}; \
         ns2 meanwhile probed {failed} times (503 each)"
    );
    assert!(
        failed >= 4,
        "ns2 must keep probing (and failing) all along: {failed} probes in {period:?}"
    );

    // The status of ns1 describes the fleet.
    let fl = f.m(0).fleet();
    assert_eq!(fl["name"], "ns1", "{fl}");
    assert_eq!(fl["quorum"], 2, "majority of 3: {fl}");
    assert_eq!(fl["probers"], 3, "{fl}");
    assert_eq!(fl["peer_timeout_ms"], 1000, "{fl}");
    let peers = fl["peers"].as_array().expect("fleet.peers");
    let mut names: Vec<&str> = peers.iter().filter_map(|p| p["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["ns2", "ns3"], "{fl}");
    for p in peers {
        let port = f.fleet_ports[f.index(p["name"].as_str().unwrap())];
        assert!(
            p["url"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("http://127.0.0.1:{port}"))),
            "{p}"
        );
        assert_eq!(p["live"], true, "{p}");
        assert!(p["last_heard"].is_string(), "{p}");
        assert!(p["error"].is_null(), "{p}");
    }
    // Each instance's view of `web`: outvoted dissent, not degraded.
    for i in 0..3 {
        let c = f.m(i).check(CHECK);
        assert!(
            votes_are(&c, "up", &[("ns1", "up"), ("ns2", "down"), ("ns3", "up")]),
            "{}: {c}",
            f.m(i).name
        );
        assert_eq!(c["degraded"], false, "{}: {c}", f.m(i).name);
        assert_eq!(c["probing"], true, "every instance probes: {c}");
        let votes = c["votes"].as_array().expect("votes");
        assert_eq!(votes.len(), 3, "one vote per instance: {c}");
        for v in votes {
            assert!(
                v["since"].is_string(),
                "{}: vote without since: {v}",
                f.m(i).name
            );
        }
    }

    // The status page marks the row and shows each vote.
    for m in f.running() {
        let row = fleet_row(&m.page());
        assert!(
            has_class(opening_tag(&row), "dissent"),
            "{}: the `{CHECK}` row must have class dissent: {row}",
            m.name
        );
        let t = row_text(&row);
        for v in ["ns1: up", "ns2: down", "ns3: up"] {
            assert!(t.contains(v), "{}: no `{v}` in the row: {t}", m.name);
        }
    }
}

/// Two of three vantage points fail: a majority, so every instance fails
/// over (ns1 too, whose own probes still succeed), all within one round
/// of each other; and back together when the paths heal.
#[test]
fn two_failing_vantage_points_fail_over_everywhere_within_one_round() {
    let web = HttpBackend::start();
    let f = three(&web);
    f.wait_live(WAIT);
    for i in 0..3 {
        wait_check(&f, i, "all vote up", |c| {
            votes_are(c, "up", &[("ns1", "up"), ("ns2", "up"), ("ns3", "up")])
        });
    }
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);
    // No dissent while they agree.
    let row = fleet_row(&f.m(0).page());
    assert!(
        !has_class(opening_tag(&row), "dissent"),
        "every vote is up, no dissent: {row}"
    );

    let ns1_hits = web.hits_from(source_of(0));
    web.set_failing_sources(&[source_of(1), source_of(2)]);
    let times = wait_all(&f, &[0, 1, 2], Some(PRIMARY), SECONDARY, WAIT);
    let spread = max(&times) - min(&times);
    eprintln!(
        "two vantage points failing: ns1..ns3 answered {SECONDARY} after {times:?}; \
         first to last {spread:?} (bound {SPREAD_BOUND:?}), last {:?} (bound {FAILOVER_BOUND:?})",
        max(&times)
    );
    assert!(
        spread <= SPREAD_BOUND,
        "the instances disagreed for {spread:?} (> {SPREAD_BOUND:?}): {times:?}\n{}",
        f.all_logs()
    );
    assert!(
        max(&times) <= FAILOVER_BOUND,
        "the last instance failed over {:?} after the paths broke (> {FAILOVER_BOUND:?})\n{}",
        max(&times),
        f.all_logs()
    );
    // ns1 kept probing successfully: the verdict is the fleet's.
    assert!(
        web.hits_from(source_of(0)) > ns1_hits,
        "ns1 stopped probing"
    );
    assert_stays(&f, &[0, 1, 2], SECONDARY, Duration::from_secs(1));
    for i in 0..3 {
        let c = f.m(i).check(CHECK);
        assert!(
            votes_are(
                &c,
                "down",
                &[("ns1", "up"), ("ns2", "down"), ("ns3", "down")]
            ),
            "{}: {c}",
            f.m(i).name
        );
        assert_eq!(c["degraded"], false, "{}: {c}", f.m(i).name);
    }

    // Healed: back to the primary, together.
    web.set_failing_sources(&[]);
    let times = wait_all(&f, &[0, 1, 2], Some(SECONDARY), PRIMARY, WAIT);
    let spread = max(&times) - min(&times);
    eprintln!(
        "paths healed: ns1..ns3 answered {PRIMARY} after {times:?}; first to last {spread:?}"
    );
    assert!(
        spread <= SPREAD_BOUND,
        "the instances disagreed for {spread:?} on the way back (> {SPREAD_BOUND:?}): {times:?}\n{}",
        f.all_logs()
    );
    assert!(
        max(&times) <= FAILOVER_BOUND,
        "the last instance came back {:?} after the paths healed (> {FAILOVER_BOUND:?})\n{}",
        max(&times),
        f.all_logs()
    );
}

/// A stopped peer (SIGSTOP) neither stops the others answering right nor
/// keeps them from failing over: two of three still agree. With two peers
/// stopped the last instance is degraded: it says so, and its own probes
/// decide until the peers come back.
#[test]
fn a_stopped_peer_causes_no_wrong_answer_and_two_stopped_degrade() {
    let mut web = HttpBackend::start();
    let mut f = three(&web);
    f.wait_live(WAIT);
    for i in 0..3 {
        wait_check(&f, i, "all vote up", |c| {
            votes_are(c, "up", &[("ns1", "up"), ("ns2", "up"), ("ns3", "up")])
        });
    }
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);

    // ns3 stopped: through and past its peer_timeout, ns1 and ns2 answer
    // the primary (two fresh up votes are a quorum). (Each instance was
    // alone for a moment at start, so logs count from here.)
    let marks: Vec<usize> = f.members.iter().map(|m| m.log_mark()).collect();
    f.stop(2);
    let stopped = Instant::now();
    assert_stays(&f, &[0, 1], PRIMARY, PEER_TIMEOUT * 2);
    for i in [0, 1] {
        assert!(
            wait_until(WAIT, || f
                .m(i)
                .peer("ns3")
                .is_some_and(|p| p["live"] == false)),
            "{} still sees the stopped ns3 live: {}",
            f.m(i).name,
            f.m(i).fleet()
        );
        wait_check(&f, i, "up, not degraded, with ns3 stopped", |c| {
            c["verdict"] == "up" && c["degraded"] == false
        });
    }
    eprintln!(
        "ns3 stopped: ns1 and ns2 saw it gone within {:?} (peer_timeout {PEER_TIMEOUT:?})",
        stopped.elapsed()
    );

    // The backend dies: ns1 and ns2 agree (2 of 3) and fail over.
    web.kill();
    let times = wait_all(&f, &[0, 1], Some(PRIMARY), SECONDARY, WAIT);
    eprintln!(
        "backend killed, ns3 stopped: ns1 and ns2 answered {SECONDARY} after {times:?} (bound {FAILOVER_BOUND:?})"
    );
    assert!(
        max(&times) <= FAILOVER_BOUND,
        "failover with one peer stopped took {:?} (> {FAILOVER_BOUND:?})\n{}",
        max(&times),
        f.all_logs()
    );
    for i in [0, 1] {
        let c = f.m(i).check(CHECK);
        assert!(
            votes_are(&c, "down", &[("ns1", "down"), ("ns2", "down")]),
            "{}: {c}",
            f.m(i).name
        );
        assert_eq!(c["degraded"], false, "2 fresh votes are a quorum: {c}");
        assert!(
            vote_of(&c, "ns3").is_none_or(|v| v["counted"] != true),
            "{}: the stopped ns3's vote is stale and must not count: {c}",
            f.m(i).name
        );
        assert!(
            !f.m(i).logs_since(marks[i]).contains("fleet: degraded"),
            "{} degraded with a quorum of fresh votes:\n{}",
            f.m(i).name,
            f.m(i).logs()
        );
    }

    // Backend back, ns3 resumed: everyone converges on the primary.
    web.restart();
    f.cont(2);
    let times = wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);
    eprintln!("backend restored, ns3 resumed: ns1..ns3 answered {PRIMARY} after {times:?}");
    f.wait_live(WAIT);
    for i in 0..3 {
        wait_check(&f, i, "all vote up again", |c| {
            votes_are(c, "up", &[("ns1", "up"), ("ns2", "up"), ("ns3", "up")])
        });
    }
    assert_stays(&f, &[0, 1, 2], PRIMARY, Duration::from_millis(500));

    // Two peers stopped: ns1 has fewer fresh votes than the quorum.
    let mark = f.m(0).log_mark();
    f.stop(1);
    f.stop(2);
    let stopped = Instant::now();
    let ns1 = f.m(0);
    let line = ns1
        .wait_line_since(mark, &["fleet: degraded", CHECK], WAIT)
        .unwrap_or_else(|| {
            panic!(
                "ns1 alone did not log `fleet: degraded` for `{CHECK}`:\n{}",
                ns1.logs()
            )
        });
    eprintln!(
        "ns2 and ns3 stopped: ns1 degraded after {:?}: {line}",
        stopped.elapsed()
    );
    assert!(
        !ns1.logs_since(mark).contains("left degraded mode"),
        "ns1 left degraded mode with both peers stopped:\n{}",
        ns1.logs()
    );
    wait_check(&f, 0, "degraded with two peers stopped", |c| {
        c["degraded"] == true
    });
    // Degraded, its own probes decide: up ...
    assert_stays(&f, &[0], PRIMARY, INTERVAL * 4);
    // ... then down, alone ...
    web.kill();
    let t = wait_all(&f, &[0], Some(PRIMARY), SECONDARY, WAIT);
    eprintln!("degraded ns1 failed over on its own probes after {t:?}");
    assert!(
        max(&t) <= FAILOVER_BOUND,
        "degraded failover took {t:?} (> {FAILOVER_BOUND:?})\n{}",
        ns1.logs()
    );
    // ... and up again.
    web.restart();
    let t = wait_all(&f, &[0], Some(SECONDARY), PRIMARY, WAIT);
    eprintln!("degraded ns1 came back on its own probes after {t:?}");

    // The peers resume: ns1 leaves degraded mode.
    let mark = f.m(0).log_mark();
    f.cont(1);
    f.cont(2);
    let resumed = Instant::now();
    let ns1 = f.m(0);
    let line = ns1
        .wait_line_since(mark, &["left degraded mode"], WAIT)
        .unwrap_or_else(|| {
            panic!(
                "ns1 did not log `left degraded mode` once its peers resumed:\n{}",
                ns1.logs()
            )
        });
    eprintln!(
        "ns2 and ns3 resumed: ns1 left degraded mode after {:?}: {line}",
        resumed.elapsed()
    );
    wait_check(&f, 0, "not degraded once the peers are back", |c| {
        c["degraded"] == false && c["verdict"] == "up"
    });
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);
    f.wait_live(WAIT);
}

/// `probers = 1`: one instance (the highest rendezvous score) probes the
/// check and the others follow its vote; killed, the next takes over
/// within about one peer_timeout and one interval.
#[test]
fn with_one_prober_only_it_probes_and_a_killed_prober_is_replaced() {
    let web = HttpBackend::start();
    let mut opts = Options::new(3, &body(&web.url("/health")));
    opts.probers = Some(1);
    let mut f = Fleet::start(&opts);
    f.wait_live(WAIT);
    let order = ranked(CHECK, &f.names());
    let (p, q, r) = (f.index(&order[0]), f.index(&order[1]), f.index(&order[2]));
    eprintln!("rendezvous order for `{CHECK}`: {order:?}");
    for i in 0..3 {
        wait_check(
            &f,
            i,
            &format!("only {} probes `{CHECK}`, verdict up", order[0]),
            |c| c["verdict"] == "up" && c["probing"] == (i == p),
        );
    }
    let fl = f.m(0).fleet();
    assert_eq!(fl["probers"], 1, "{fl}");
    assert_eq!(fl["quorum"], 1, "majority of 1: {fl}");
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);

    // Over a few intervals only p's source probes; the other two would
    // fail, but they do not probe, so nothing moves.
    web.set_failing_sources(&[source_of(q), source_of(r)]);
    let before = web.hits_by_source();
    let period = INTERVAL * 6;
    assert_stays(&f, &[0, 1, 2], PRIMARY, period);
    let d = delta(&before, &web.hits_by_source());
    eprintln!("probers = 1: probes per source over {period:?}: {d:?}");
    assert!(
        d.get(&source_of(p)).copied().unwrap_or(0) >= 3,
        "{} ({}) must probe every interval: {d:?}",
        order[0],
        source_of(p)
    );
    assert_eq!(
        d.len(),
        1,
        "probes came from more than {}'s source {}: {d:?}",
        order[0],
        source_of(p)
    );
    web.set_failing_sources(&[]);

    // p killed: another instance starts probing. The survivors answer the
    // primary all along (the backend never failed).
    let base_q = web.hits_from(source_of(q));
    let base_r = web.hits_from(source_of(r));
    let killed = Instant::now();
    f.kill(p);
    let mut took = None;
    while killed.elapsed() < WAIT {
        for i in [q, r] {
            let a = f.m(i).answer(WWW);
            assert!(
                a == [PRIMARY],
                "{} answered {a:?} {:?} after the prober {} was killed (the backend is up)\n{}",
                f.m(i).name,
                killed.elapsed(),
                order[0],
                f.all_logs()
            );
        }
        if web.hits_from(source_of(q)) > base_q || web.hits_from(source_of(r)) > base_r {
            took = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let bound = PEER_TIMEOUT + INTERVAL + MARGIN;
    let Some(took) = took else {
        panic!(
            "nobody took `{CHECK}` over within {WAIT:?} of killing {}\n{}",
            order[0],
            f.all_logs()
        );
    };
    eprintln!(
        "prober {} killed: probes from {} / {} after {took:?} (bound {bound:?}: peer_timeout + interval + margin)",
        order[0],
        source_of(q),
        source_of(r)
    );
    assert!(
        took <= bound,
        "the check went unprobed for {took:?} (> {bound:?})\n{}",
        f.all_logs()
    );

    // Settled: q (next in rendezvous order) probes, r does not.
    for i in [q, r] {
        wait_check(&f, i, &format!("{} took `{CHECK}` over", order[1]), |c| {
            c["verdict"] == "up" && c["probing"] == (i == q) && c["degraded"] == false
        });
    }
    let before = web.hits_by_source();
    assert_stays(&f, &[q, r], PRIMARY, period);
    let d = delta(&before, &web.hits_by_source());
    eprintln!("after the takeover: probes per source over {period:?}: {d:?}");
    assert!(
        d.get(&source_of(q)).copied().unwrap_or(0) >= 3,
        "{} must probe every interval now: {d:?}",
        order[1]
    );
    assert_eq!(
        d.len(),
        1,
        "only {} probes now: {d:?}\n{}",
        order[1],
        f.all_logs()
    );

    // q's vote is the fleet's: its path failing fails both survivors over.
    web.set_failing_sources(&[source_of(q)]);
    let times = wait_all(&f, &[q, r], Some(PRIMARY), SECONDARY, WAIT);
    eprintln!(
        "the sole prober {} sees the backend down: {} and {} answered {SECONDARY} after {times:?}",
        order[1], order[1], order[2]
    );
    assert!(
        max(&times) <= FAILOVER_BOUND,
        "failover on the sole prober's vote took {:?} (> {FAILOVER_BOUND:?})\n{}",
        max(&times),
        f.all_logs()
    );
}

// ---------------------------------------------------------------------------
// The fleet channel
// ---------------------------------------------------------------------------

/// The votes endpoint answers the token only: a wrong or missing one is
/// 401, logged as `fleet: refused`; the right one gets the instance's
/// votes, at once when `after` is not the current sequence number and
/// after a long-poll wait when it is.
#[test]
fn the_fleet_endpoint_refuses_a_wrong_token_and_logs_it() {
    let web = HttpBackend::start();
    let f = Fleet::start(&Options::new(2, &body(&web.url("/health"))));
    f.wait_live(WAIT);
    let ns1 = f.m(0);
    assert!(
        line_with(&ns1.logs(), &["fleet: refused"]).is_none(),
        "a peer with the right token was refused:\n{}",
        ns1.logs()
    );

    // The right token.
    let r = ns1
        .votes("999999999", Some(&bearer()))
        .expect("GET votes with the token");
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["instance"], "ns1", "{doc}");
    let seq = doc["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("seq is not a number: {doc}"));

    // At once when `after` is not the current sequence number.
    let t = Instant::now();
    let r = ns1
        .votes(&(seq + 1000).to_string(), Some(&bearer()))
        .expect("GET votes");
    let at_once = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    eprintln!("votes with after != seq: answered in {at_once:?}");
    assert!(
        at_once < Duration::from_millis(250),
        "after != seq must answer at once, took {at_once:?}"
    );
    // After a wait (about peer_timeout / 3) when it is, unless the votes
    // changed meanwhile.
    let t = Instant::now();
    let r = ns1
        .votes(&seq.to_string(), Some(&bearer()))
        .expect("GET votes");
    let waited = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let now_seq = r.json()["seq"].as_u64();
    eprintln!("votes with after = seq {seq}: answered in {waited:?} with seq {now_seq:?}");
    assert!(
        waited <= PEER_TIMEOUT / 3 + MARGIN,
        "the long-poll held the request {waited:?} (peer_timeout / 3 = {:?})",
        PEER_TIMEOUT / 3
    );
    if now_seq == Some(seq) {
        assert!(
            waited >= Duration::from_millis(150),
            "nothing changed, yet the long-poll answered after {waited:?} only"
        );
    }

    // Wrong, truncated, extended or missing token: 401, no votes.
    let wrong = [
        Some("Bearer wrong-token-0123456789".to_string()),
        Some(format!("Bearer {}", &FLEET_TOKEN[..FLEET_TOKEN.len() - 1])),
        Some(format!("Bearer {FLEET_TOKEN}x")),
        Some("Bearer ".to_string()),
        None,
    ];
    for auth in &wrong {
        let r = ns1
            .votes("999999999", auth.as_deref())
            .expect("GET votes with a wrong token");
        assert_eq!(r.status, 401, "Authorization {auth:?}: {}", r.body);
        assert!(
            !r.body.contains("\"seq\""),
            "Authorization {auth:?}: votes leaked with the 401: {}",
            r.body
        );
    }
    let line = ns1
        .wait_line_since(0, &["fleet: refused"], WAIT)
        .unwrap_or_else(|| panic!("no `fleet: refused` in ns1's logs:\n{}", ns1.logs()));
    eprintln!("refused: {line}");
    // The peer, with the right token, is still heard.
    assert!(
        line_with(&f.m(1).logs(), &["fleet: refused"]).is_none(),
        "ns2 refused someone:\n{}",
        f.m(1).logs()
    );
    f.wait_live(WAIT);
}

/// Is `s` a health state as votes spell it?
fn is_state(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "up" | "down" | "unknown")
}

/// `up` turned `down`, in the same letter case; other states unchanged.
fn flip_up(s: &str) -> String {
    match s {
        "up" => "down".into(),
        "Up" => "Down".into(),
        "UP" => "DOWN".into(),
        other => other.into(),
    }
}

/// Rewrites a votes document: every string `own` (and every key `own`)
/// becomes `as_name`, every health state `s` becomes `state(s)`.
fn rewrite(v: &mut Value, own: &str, as_name: &str, state: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) if s == own => *s = as_name.to_string(),
        Value::String(s) if is_state(s) => *s = state(s),
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, own, as_name, state)),
        Value::Object(o) => {
            if let Some(x) = o.remove(own) {
                o.insert(as_name.to_string(), x);
            }
            o.values_mut().for_each(|x| rewrite(x, own, as_name, state));
        }
        _ => {}
    }
}

/// A [`FakePeer`] responder that relays ns1's own current votes (fetched
/// from its fleet endpoint) as if they were `as_name`'s, each state
/// mapped by `state`, with a `seq` of its own that grows per answer: a
/// peer that probes what ns1 probes and sees it differently.
fn relay(
    ns1: SocketAddr,
    as_name: &'static str,
    state: fn(&str) -> String,
) -> impl Fn(&FakeRequest) -> (u16, String) + Send + Sync + 'static {
    let seq = AtomicU64::new(1_000);
    move |_| {
        let r = match fleet::votes(ns1, "999999999", Some(&bearer())) {
            Ok(r) if r.status == 200 => r,
            Ok(r) => return (503, format!("{{\"error\":\"ns1 said {}\"}}", r.status)),
            Err(e) => return (503, format!("{{\"error\":\"{e}\"}}")),
        };
        let Ok(mut doc) = serde_json::from_str::<Value>(&r.body) else {
            return (503, "{\"error\":\"ns1 sent no JSON\"}".into());
        };
        rewrite(&mut doc, "ns1", as_name, &state);
        doc["instance"] = Value::from(as_name);
        doc["seq"] = Value::from(seq.fetch_add(1, Ordering::SeqCst) + 1);
        (200, doc.to_string())
    }
}

/// A peer answering the long-poll with garbage (not JSON, wrong types,
/// unknown states, a name not in the fleet) changes nothing: ns1's
/// verdict and answers follow its own probes. First, to show the fake's
/// answers do reach ns1, a well-formed down vote from it (quorum 1: down
/// wins) does fail ns1 over.
#[test]
fn a_peer_answering_garbage_changes_nothing() {
    let mut web = HttpBackend::start();
    let fake = FakePeer::start();
    let mut opts = Options::new(1, &body(&web.url("/health")));
    opts.extra_peers = vec![("ns3".into(), fake.url())];
    opts.quorum = "1".into();
    let f = Fleet::start(&opts);
    let ns1 = f.m(0);
    let ns1_fleet = ns1.fleet_addr;
    // The peer answers 503 so far: ns1's own vote decides (quorum 1).
    wait_all(&f, &[0], None, PRIMARY, WAIT);
    assert!(
        wait_until(WAIT, || !fake.requests().is_empty()),
        "ns1 never asked its peer ns3 for votes:\n{}",
        ns1.logs()
    );
    let req = fake.requests()[0].clone();
    assert!(
        req.path.starts_with(VOTES_PATH),
        "ns1 asked its peer for {} (expected {VOTES_PATH}?after=...)",
        req.path
    );
    assert_eq!(
        req.authorization.as_deref(),
        Some(bearer().as_str()),
        "ns1 must send the fleet token to its peers"
    );

    // Control: a well-formed down vote from ns3 (ns1's own document,
    // renamed, up turned down) fails ns1 over although its probes succeed.
    fake.respond_with(relay(ns1_fleet, "ns3", flip_up));
    let t = Instant::now();
    assert!(
        wait_until(WAIT, || ns1.answer(WWW) == [SECONDARY]),
        "control failed: ns1 did not act on well-formed down votes relayed by the fake peer \
         ns3 (its own votes document with `instance` renamed and `up` turned `down`), so the \
         garbage cases below would prove nothing. ns1's fleet status: {}\nlogs:\n{}",
        ns1.fleet(),
        ns1.logs()
    );
    eprintln!(
        "control: ns1 followed ns3's relayed down vote after {:?}",
        t.elapsed()
    );
    let c = ns1.check(CHECK);
    assert!(
        votes_are(&c, "down", &[("ns1", "up"), ("ns3", "down")]),
        "the relayed vote must show as ns3's: {c}"
    );

    // Garbage, in turns. Each reaches ns1 several times; meanwhile ns1
    // answers as its own probes say (up), and shows no vote of ns3 that
    // counts.
    // (what, responder, whether ns1 must show an error for the peer)
    let phases: Vec<(&str, Responder, bool)> = vec![
        (
            "not JSON",
            Arc::new(|_: &FakeRequest| (200, "{\"instance\":\"ns3\",\"seq\":".into())),
            true,
        ),
        (
            "seq not a number",
            Arc::new(|_: &FakeRequest| (200, r#"{"instance":"ns3","seq":"x"}"#.into())),
            true,
        ),
        (
            "states `sideways`",
            Arc::new(relay(ns1_fleet, "ns3", |_| "sideways".into())),
            false,
        ),
        (
            "votes signed by ns9, an instance not in the fleet",
            Arc::new(relay(ns1_fleet, "ns9", flip_up)),
            false,
        ),
    ];
    for (what, responder, errs) in phases {
        fake.respond_with(move |r| responder(r));
        let served = fake.answered();
        let t = Instant::now();
        assert!(
            wait_until(WAIT, || fake.answered() >= served + 2),
            "{what}: ns1 stopped asking its peer ({} answers)",
            fake.answered()
        );
        let back = wait_all(&f, &[0], None, PRIMARY, WAIT);
        let n = assert_stays(&f, &[0], PRIMARY, PEER_TIMEOUT + INTERVAL * 2);
        eprintln!(
            "garbage ({what}): ns1 answers {PRIMARY} ({:?} after the switch, then {n} answers), {} answers served",
            max(&back),
            fake.answered() - served
        );
        let c = ns1.check(CHECK);
        assert_eq!(c["verdict"], "up", "{what}: {c}");
        assert!(
            vote_of(&c, "ns3").is_none_or(|v| v["counted"] != true),
            "{what}: a vote of ns3 counts: {c}"
        );
        assert!(vote_of(&c, "ns9").is_none(), "{what}: a vote of ns9: {c}");
        let status = ns1.status().to_string();
        assert!(
            !status.contains("sideways"),
            "{what}: the status repeats an invalid state: {status}"
        );
        if errs {
            assert!(
                wait_until(WAIT, || ns1
                    .peer("ns3")
                    .is_some_and(|p| p["error"].is_string())),
                "{what}: ns1's status shows no error for ns3: {}",
                ns1.fleet()
            );
        }
        eprintln!("  phase took {:?}", t.elapsed());
    }

    // With garbage still coming, ns1's own probes decide both ways.
    web.kill();
    let t = wait_all(&f, &[0], Some(PRIMARY), SECONDARY, WAIT);
    eprintln!("garbage peer, backend killed: ns1 failed over after {t:?}");
    assert!(
        max(&t) <= FAILOVER_BOUND,
        "failover took {t:?} (> {FAILOVER_BOUND:?})\n{}",
        ns1.logs()
    );
    web.restart();
    let t = wait_all(&f, &[0], Some(SECONDARY), PRIMARY, WAIT);
    eprintln!("garbage peer, backend restored: ns1 came back after {t:?}");
}

/// Over TLS (each listener with its certificate, each peer trusting it by
/// `tls_ca`), the fleet forms and fails over on two vantage points; the
/// listener refuses plain HTTP.
#[test]
fn a_fleet_over_tls_agrees_and_fails_over() {
    let web = HttpBackend::start();
    let mut opts = Options::new(3, &body(&web.url("/health")));
    opts.tls = true;
    let f = Fleet::start(&opts);
    f.wait_live(WAIT);
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);
    assert!(
        f.m(0).votes("0", Some(&bearer())).is_err()
            || f.m(0).votes("0", Some(&bearer())).unwrap().status != 200,
        "plain HTTP to a TLS fleet listener must not be answered"
    );
    web.set_failing_sources(&[source_of(1), source_of(2)]);
    let t = wait_all(&f, &[0, 1, 2], Some(PRIMARY), SECONDARY, WAIT);
    eprintln!("over TLS: every instance answered the secondary after {t:?}");
}

/// A fleet override made on one instance applies on all three, outlives
/// that instance's restart (and the others keep it while it is gone), and
/// a clear made on another instance ends it everywhere.
#[test]
fn a_fleet_override_reaches_every_instance_and_survives_a_restart() {
    let web = HttpBackend::start();
    let mut f = three(&web);
    f.wait_live(WAIT);
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);
    let r = f.m(0).api.authed(
        "PUT",
        "/v1/overrides/web",
        Some(r#"{"state": "down", "reason": "maintenance", "fleet": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = wait_all(&f, &[0, 1, 2], Some(PRIMARY), SECONDARY, WAIT);
    eprintln!("fleet override applied everywhere after {t:?}");
    let c = f.m(2).api.check("web");
    assert_eq!(c["forced"], true, "{c}");
    assert!(
        c["override_reason"]
            .as_str()
            .is_some_and(|r| r.contains("by ns1") && r.contains("maintenance")),
        "{c}"
    );
    // A local override stays local.
    let r = f.m(1).api.authed(
        "PUT",
        "/v1/overrides/web",
        Some(r#"{"state": "up", "reason": "only here"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_all(&f, &[1], None, PRIMARY, WAIT);
    assert_stays(&f, &[0, 2], SECONDARY, 4 * INTERVAL);
    let r = f.m(1).api.authed("DELETE", "/v1/overrides/web", None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_all(&f, &[1], None, SECONDARY, WAIT);

    // ns1 gone: the others keep its override; back, it still holds it.
    f.kill(0);
    assert_stays(&f, &[1, 2], SECONDARY, PEER_TIMEOUT + 4 * INTERVAL);
    f.restart(0);
    f.wait_live(WAIT);
    assert_stays(&f, &[0, 1, 2], SECONDARY, 4 * INTERVAL);

    // Cleared on ns3: later than ns1's, so it wins everywhere.
    let r = f
        .m(2)
        .api
        .authed("DELETE", "/v1/overrides/web?fleet=true", None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_all(&f, &[0, 1, 2], Some(SECONDARY), PRIMARY, WAIT);
}

/// A reload in the middle: the fleet goes from every instance probing to
/// `probers = 1` while one vantage point (not the one that keeps the
/// check) fails. No instance answers anything but the primary before,
/// during or after, and afterwards the backend hears one source only.
#[test]
fn a_reload_to_one_prober_changes_no_answer() {
    let web = HttpBackend::start();
    let f = three(&web);
    f.wait_live(WAIT);
    wait_all(&f, &[0, 1, 2], None, PRIMARY, WAIT);
    let order = ranked(CHECK, &f.names());
    let keeper = f.index(&order[0]);
    let dissenter = f.index(&order[1]);
    web.set_failing_sources(&[source_of(dissenter)]);
    assert_stays(&f, &[0, 1, 2], PRIMARY, 3 * INTERVAL);
    for m in &f.members {
        let text = std::fs::read_to_string(&m.config).unwrap();
        let edited = text.replace("[fleet]\n", "[fleet]\nprobers = 1\n");
        assert_ne!(text, edited);
        m.veer.reload_with(&edited);
    }
    // Answers stay while the reloads land, and after.
    assert_stays(&f, &[0, 1, 2], PRIMARY, PEER_TIMEOUT + 4 * INTERVAL);
    for m in &f.members {
        let fl = m.fleet();
        assert_eq!(fl["probers"], 1, "{}: {fl}", m.name);
    }
    let before = web.hits_by_source();
    std::thread::sleep(5 * INTERVAL);
    let d = delta(&before, &web.hits_by_source());
    assert_eq!(
        d.keys().copied().collect::<Vec<_>>(),
        vec![source_of(keeper)],
        "only {} probes after the reload: {d:?}",
        order[0]
    );
    assert_stays(&f, &[0, 1, 2], PRIMARY, 2 * INTERVAL);
}
