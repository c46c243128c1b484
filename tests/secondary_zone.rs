//! veer as secondary of a real Knot primary, with routes laid over the
//! transferred zone: the zone arrives (TSIG), an edit on Knot reaches
//! veer by NOTIFY and IXFR, a route replaces Knot's placeholder record,
//! the copy in state_dir survives a restart while Knot is down and the
//! zone goes SERVFAIL at the SOA's expire; a wrong key, a lower serial and
//! a transfer cut short change nothing that is served.

#[path = "support/admin.rs"]
mod admin;
mod common;
#[path = "support/secondary.rs"]
mod secondary;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use secondary::{Primary, Tsig, free_port, start_knot_primary_on};

const ZONE: &str = "example.test.";

fn key() -> Tsig {
    Tsig::hmac_sha256("xfr-key", "Vh3cMJlR0Wm0nU9bR3pHb1pkQ2l0eFZwN2dGa0l2c2E=")
}

/// Knot's zone: SOA with `serial` and the given timers, `www` at
/// `www`, the placeholder `app A 203.0.113.99`, and `hosts` more records.
fn knot_zone(serial: u32, refresh: u32, expire: u32, www: &str, hosts: usize) -> String {
    let mut z = format!(
        "$ORIGIN {ZONE}\n$TTL 300\n\
         @ SOA ns1 hostmaster {serial} {refresh} 1 {expire} 60\n\
         @ NS ns1\nns1 A 192.0.2.53\nwww A {www}\napp A 203.0.113.99\n"
    );
    for i in 0..hosts {
        z.push_str(&format!(
            "h{i} A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    z
}

/// veer's config: `example.test.` from `primary` with `key_secret`, the
/// failover route `app` over it (check `p`).
fn veer_config(primary: SocketAddr, key_secret: &str) -> String {
    let k = key();
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
state_dir = "state"
[api]
listen = "127.0.0.1:0"
[rrl]
responses_per_second = 0
[key.{name}]
algorithm = "hmac-sha256"
secret = "{key_secret}"
[check.p]
file = "health/p"
interval = "50ms"
fall = 1
rise = 1
[[zone]]
origin = "{ZONE}"
primary = [ {{ address = "{primary}", key = "{name}" }} ]
[[route]]
name = "app.{ZONE}"
type = "A"
ttl = 30
policy = "failover"
members = [ {{ value = "192.0.2.1", check = "p", tier = 1 }}, {{ value = "192.0.2.2", tier = 2 }} ]
"#,
        name = k.name
    )
}

fn start_veer(dir: &Path, primary: SocketAddr) -> Veer {
    std::fs::create_dir_all(dir.join("health")).unwrap();
    if !dir.join("health/p").exists() {
        set_health(dir, "p", "up");
    }
    let config = write_file(dir, "veer.toml", &veer_config(primary, &key().secret));
    Veer::start(&config)
}

fn answer(veer: &Veer, name: &str) -> (String, Vec<String>) {
    let d = dig(veer.addr, &[name, "A"]);
    let mut v = d.answer_data();
    v.sort();
    (d.content().0, v)
}

fn wait_answer(veer: &Veer, name: &str, want: &[&str], deadline: Duration) -> Duration {
    let start = Instant::now();
    assert!(
        wait_until(deadline, || answer(veer, name).1 == want),
        "{name} never became {want:?} (now {:?})\n{}",
        answer(veer, name),
        veer.logs()
    );
    start.elapsed()
}

/// Waits until veer logs `needle` after byte `mark` of its log; that
/// line.
fn log_after(veer: &Veer, mark: usize, needle: &str, deadline: Duration) -> String {
    let mut line = String::new();
    let found = wait_until(deadline, || {
        let logs = veer.logs();
        match logs
            .get(mark..)
            .and_then(|l| l.lines().find(|l| l.contains(needle)))
        {
            Some(l) => {
                line = l.to_string();
                true
            }
            None => false,
        }
    });
    assert!(found, "no `{needle}` after byte {mark}:\n{}", veer.logs());
    line
}

/// veer, then Knot on a reserved port naming veer for NOTIFY.
fn veer_and_knot(dir: &Path, zone: &str) -> (Veer, Primary) {
    let port = free_port();
    let knot_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let veer = start_veer(dir, knot_addr);
    let knot = start_knot_primary_on(knot_addr, ZONE, zone, Some(&key()), &[veer.addr]);
    (veer, knot)
}

/// [`veer_and_knot`] with Knot's zone at `serial` (`www` 192.0.2.80),
/// once veer serves it.
fn serving_knots_zone(dir: &Path, serial: u32) -> (Veer, Primary) {
    let (veer, knot) = veer_and_knot(dir, &knot_zone(serial, 3600, 86400, "192.0.2.80", 0));
    wait_answer(
        &veer,
        "www.example.test.",
        &["192.0.2.80"],
        Duration::from_secs(15),
    );
    (veer, knot)
}

#[test]
fn the_zone_arrives_follows_knot_and_carries_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (veer, knot) = veer_and_knot(dir.path(), &knot_zone(10, 3600, 86400, "192.0.2.80", 0));
    let t = wait_answer(
        &veer,
        "www.example.test.",
        &["192.0.2.80"],
        Duration::from_secs(15),
    );
    println!("zone at veer {t:?} after start");
    // The route replaces Knot's placeholder, and answers by health.
    assert_eq!(answer(&veer, "app.example.test.").1, ["192.0.2.1"]);
    set_health(dir.path(), "p", "down");
    wait_answer(
        &veer,
        "app.example.test.",
        &["192.0.2.2"],
        Duration::from_secs(5),
    );
    // An edit on Knot: NOTIFY, IXFR, served within a second.
    let mut times = Vec::new();
    for (serial, www) in [(11, "192.0.2.81"), (12, "192.0.2.82"), (13, "192.0.2.83")] {
        knot.set_zone(&knot_zone(serial, 3600, 86400, www, 0));
        let t = wait_answer(&veer, "www.example.test.", &[www], Duration::from_secs(10));
        times.push(t);
    }
    println!("Knot edit -> veer serving it: {times:?}");
    // The status API and page show the zone's primary, serial and timers.
    let api = admin::Admin::from_logs(&veer.logs(), "");
    let z = &api.status()["secondaries"][0];
    assert_eq!(z["zone"], ZONE, "{z}");
    assert_eq!(z["serial"], 13, "{z}");
    assert_eq!(z["primary"], knot.addr().to_string(), "{z}");
    assert!(
        z["last_refresh"].is_string() && z["next_refresh"].is_string() && z["expires"].is_string(),
        "{z}"
    );
    assert_eq!(z["expired"], false, "{z}");
    let page = api.get("/").body;
    assert!(page.contains("id=\"secondary-zones\""), "{page}");
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(1)),
        "{times:?}"
    );
    assert!(veer.logs().contains("IXFR from"), "{}", veer.logs());
    // The routed answer is still by health, not Knot's placeholder.
    assert_eq!(answer(&veer, "app.example.test.").1, ["192.0.2.2"]);
}

#[test]
fn a_100000_record_zone_arrives_complete() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (veer, _knot) = veer_and_knot(
        dir.path(),
        &knot_zone(10, 3600, 86400, "192.0.2.80", 100_000),
    );
    wait_answer(
        &veer,
        "h99999.example.test.",
        &["10.1.134.159"],
        Duration::from_secs(60),
    );
    println!(
        "100,000 records at veer {:?} after start",
        started.elapsed()
    );
    assert_eq!(answer(&veer, "h0.example.test.").1, ["10.0.0.0"]);
    assert_eq!(answer(&veer, "h54321.example.test.").1, ["10.0.212.49"]);
    let logs = veer.logs();
    assert!(
        logs.contains("100006 records")
            || logs.contains("100,006 records")
            || logs.contains("records in"),
        "{logs}"
    );
}

#[test]
fn the_copy_survives_a_restart_and_the_zone_expires() {
    let dir = tempfile::tempdir().unwrap();
    // refresh 1 s, expire 4 s: veer refreshes every second while Knot is up.
    let (mut veer, knot) = veer_and_knot(dir.path(), &knot_zone(10, 1, 4, "192.0.2.80", 0));
    wait_answer(
        &veer,
        "www.example.test.",
        &["192.0.2.80"],
        Duration::from_secs(15),
    );
    // Knot stops; veer restarts at once and serves its copy.
    let knot_addr = knot.addr();
    drop(knot);
    let stopped = Instant::now();
    veer.terminate();
    let veer = start_veer(dir.path(), knot_addr);
    assert_eq!(
        answer(&veer, "www.example.test.").1,
        ["192.0.2.80"],
        "{}",
        veer.logs()
    );
    // Without a refresh, the zone expires: SERVFAIL.
    assert!(
        wait_until(Duration::from_secs(15), || answer(
            &veer,
            "www.example.test."
        )
        .0 == "SERVFAIL"),
        "{}",
        veer.logs()
    );
    let t = stopped.elapsed();
    println!("SERVFAIL {t:?} after the primary stopped (expire 4 s)");
    assert!(t >= Duration::from_secs(2), "expired too early: {t:?}");
    assert!(veer.logs().contains("expired"), "{}", veer.logs());
}

#[test]
fn a_wrong_key_or_a_lower_serial_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (veer, knot) = serving_knots_zone(dir.path(), 20);
    // A primary with a lower serial (Knot restarted with an older file):
    // veer keeps its zone.
    let mark = veer.logs().len();
    let addr = knot.addr();
    drop(knot);
    let knot = start_knot_primary_on(
        addr,
        ZONE,
        &knot_zone(19, 3600, 86400, "192.0.2.66", 0),
        Some(&key()),
        &[veer.addr],
    );
    log_after(&veer, mark, "lower than ours", Duration::from_secs(10));
    assert_eq!(answer(&veer, "www.example.test.").1, ["192.0.2.80"]);
    // The wrong secret: the refresh fails (Knot answers BADSIG), then
    // Knot's signed NOTIFY for a new serial fails veer's check; veer
    // keeps serving what it has.
    veer.reload_with(&veer_config(
        knot.addr(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ));
    let why = log_after(&veer, mark, "refresh failed", Duration::from_secs(15));
    assert!(why.contains("BADSIG"), "{why}");
    knot.set_zone(&knot_zone(21, 3600, 86400, "192.0.2.77", 0));
    log_after(
        &veer,
        mark,
        "NOTIFY from 127.0.0.1 rejected",
        Duration::from_secs(10),
    );
    assert_eq!(answer(&veer, "www.example.test.").1, ["192.0.2.80"]);
}

/// A primary that answers the SOA query with `serial` (unsigned) and cuts
/// every transfer after its first message.
fn cutting_primary(serial: u32) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record};
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A port free for both UDP and TCP.
    let (udp, tcp) = (0..50)
        .find_map(|_| {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            let tcp = std::net::TcpListener::bind(udp.local_addr().ok()?).ok()?;
            Some((udp, tcp))
        })
        .expect("a port free for UDP and TCP");
    let addr = udp.local_addr().unwrap();
    let origin = Name::from_ascii(ZONE).unwrap();
    let soa = Record::from_rdata(
        origin.clone(),
        300,
        RData::SOA(SOA::new(
            Name::from_ascii("ns1.example.test.").unwrap(),
            Name::from_ascii("h.example.test.").unwrap(),
            serial,
            3600,
            1,
            86400,
            60,
        )),
    );
    let reply = move |query: &[u8], answers: Vec<Record>| -> Vec<u8> {
        let q = Message::from_vec(query).unwrap();
        let mut m = Message::response(q.metadata.id, q.metadata.op_code);
        m.metadata.message_type = MessageType::Response;
        m.metadata.authoritative = true;
        m.add_queries(q.queries.clone());
        for a in answers {
            m.add_answer(a);
        }
        m.to_vec().unwrap()
    };
    let cut = std::sync::Arc::new(AtomicUsize::new(0));
    let (soa2, reply2) = (soa.clone(), reply);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            // An ICMP error from an earlier reply surfaces here: go on.
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&reply2(&buf[..n], vec![soa2.clone()]), from);
            }
        }
    });
    let counter = cut.clone();
    std::thread::spawn(move || {
        for stream in tcp.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut q).is_err() {
                continue;
            }
            // The SOA and some records, then the connection closes: no
            // closing SOA.
            let mut answers = vec![soa.clone()];
            for i in 0..50u8 {
                answers.push(Record::from_rdata(
                    Name::from_ascii(format!("cut{i}.example.test.")).unwrap(),
                    60,
                    RData::A(A::new(198, 51, 100, i)),
                ));
            }
            let m = reply(&q, answers);
            let _ = s.write_all(&(m.len() as u16).to_be_bytes());
            let _ = s.write_all(&m);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    (addr, cut)
}

#[test]
fn a_transfer_cut_short_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (veer, knot) = serving_knots_zone(dir.path(), 20);
    drop(knot);
    // The zone now comes from a primary that cuts every transfer (no key:
    // it signs nothing).
    let (cutter, cuts) = cutting_primary(30);
    let mark = veer.logs().len();
    veer.reload_with(&veer_config(cutter, &key().secret).replace(", key = \"xfr-key\"", ""));
    let why = log_after(&veer, mark, "refresh failed", Duration::from_secs(15));
    assert!(
        cuts.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "a transfer was tried"
    );
    assert!(why.contains("before the closing SOA"), "{why}");
    assert_eq!(answer(&veer, "www.example.test.").1, ["192.0.2.80"]);
    assert_eq!(answer(&veer, "cut1.example.test.").0, "NXDOMAIN");
    assert_eq!(answer(&veer, "example.test.").0, "NOERROR");
}
