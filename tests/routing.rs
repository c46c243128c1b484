//! Routing policies end to end: weighted (by chance, standby, sticky),
//! nested pools, geo, cidr and nearest, with EDNS Client Subnet, asked
//! with `dig +subnet=...`; and `veer explain` for the same cases.
//!
//! Scenario `routing` (tests/fixtures/routing): health comes from `file`
//! checks polled every 50 ms with fall = rise = 1, so a test flips a
//! member by writing `up` or `down` into `health/NAME`. The geo database
//! is written by the test (tests/common/mmdb.rs), never downloaded.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mmdb::{self, Loc};
use common::*;
use tempfile::TempDir;

/// How long a health flip may take to show (50 ms probes; generous, for
/// loaded CI machines).
const FLIP: Duration = Duration::from_secs(10);

fn start() -> (TempDir, Veer) {
    let dir = routing_scenario();
    let veer = Veer::start_in(dir.path());
    (dir, veer)
}

/// `name A` with `+subnet=subnet`: (answer addresses, echoed CLIENT-SUBNET).
fn ask(veer: &Veer, name: &str, subnet: &str) -> (Vec<String>, String) {
    let arg = format!("+subnet={subnet}");
    let r = veer.dig(&[name, "A", &arg]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    let echo = r
        .edns
        .as_ref()
        .and_then(|e| e.subnet.clone())
        .unwrap_or_else(|| panic!("no CLIENT-SUBNET in the response:\n{}", r.raw));
    (r.answer_data(), echo)
}

#[track_caller]
fn assert_answer(veer: &Veer, name: &str, subnet: &str, want: &str, echo: &str) {
    let (answer, got) = ask(veer, name, subnet);
    assert_eq!(answer, [want], "{name} for {subnet}");
    assert_eq!(got, echo, "{name} for {subnet}: CLIENT-SUBNET");
}

/// `name A` for each of `subnets`, in one dig run: (answers, echo) each.
fn ask_many(veer: &Veer, name: &str, subnets: &[String]) -> Vec<(Vec<String>, String)> {
    let batch: String = subnets
        .iter()
        .map(|s| format!("{name} A +subnet={s}\n"))
        .collect();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), batch).unwrap();
    let out = Command::new("dig")
        .arg(format!("@{}", veer.addr.ip()))
        .args(["-p", &veer.addr.port().to_string()])
        .args(["+norec", "+time=2", "+tries=2", "-f"])
        .arg(f.path())
        .stdin(Stdio::null())
        .output()
        .expect("run dig");
    let raw = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<(Vec<String>, String)> = raw
        .split("; <<>> DiG")
        .skip(1)
        .map(|chunk| {
            let d = Dig::parse(chunk);
            assert_eq!(d.status, "NOERROR", "{chunk}");
            let echo = d.edns.as_ref().and_then(|e| e.subnet.clone());
            (d.answer_data(), echo.unwrap_or_default())
        })
        .collect();
    assert_eq!(replies.len(), subnets.len(), "{raw}");
    replies
}

/// Runs dig once over a batch file of queries (`-f`), `+short`: one output
/// line per answer record.
fn dig_batch(veer: &Veer, queries: &str) -> Vec<String> {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), queries).unwrap();
    // veer listens on an ephemeral port, and now and then the kernel gives
    // dig that same port for its source: dig then reads its own query
    // ("query response not set") in place of one answer. Captured on the
    // wire: a query from port P to port P; not veer's doing. A fresh dig
    // (another source port) is asked again.
    // So dig gets a source port of its own: one just free, never veer's.
    let mut out = String::new();
    for _ in 0..5 {
        let source = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let run = Command::new("dig")
            .arg(format!("@{}", veer.addr.ip()))
            .args(["-p", &veer.addr.port().to_string()])
            .args(["-b", &format!("127.0.0.1#{source}")])
            .args(["+norec", "+short", "+time=5", "+tries=3", "-f"])
            .arg(f.path())
            .stdin(Stdio::null())
            .output()
            .expect("run dig");
        out = String::from_utf8_lossy(&run.stdout).into_owned();
        if !out.contains("query response not set") {
            break;
        }
    }
    out.lines().map(str::to_string).collect()
}

fn explain(dir: &Path, args: &[&str]) -> String {
    let config = dir.join("veer.toml");
    let mut all = vec!["explain", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_veer(&all, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "veer {all:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[track_caller]
fn assert_has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "no `{n}` in:\n{text}");
    }
}

#[test]
fn weighted_follows_weights_over_4000_queries() {
    let (_dir, veer) = start();
    const N: usize = 4000;
    let answers = dig_batch(&veer, &"w.routing.test A\n".repeat(N));
    assert_eq!(answers.len(), N, "one answer per query");
    let heavy = answers.iter().filter(|a| *a == "192.0.2.1").count();
    let light = answers.iter().filter(|a| *a == "192.0.2.2").count();
    assert_eq!(heavy + light, N, "{answers:?}");
    // Each answer is 192.0.2.1 with p = 3/4, independently, so `heavy` is
    // Binomial(4000, 3/4) with mean 3000. Hoeffding's inequality bounds
    // P(|heavy - 3000| >= t) <= 2 exp(-2 t^2 / N) for any such sum; for
    // this to be below 1e-6, t >= sqrt(N ln(2e6) / 2) = sqrt(2000 * 14.51)
    // = 170.4. So a correct implementation lands in 3000 +- 171 in all but
    // fewer than one run in a million (the normal approximation, sd 27.4,
    // puts the real odds far lower), while 1:1 (2000) or 2:1 (2667) fail.
    assert!(
        (3000 - 171..=3000 + 171).contains(&heavy),
        "192.0.2.1 answered {heavy} of {N} times; expected 3000 +- 171"
    );
    // The choice is by chance, not by client: scope 0.
    let (_, echo) = ask(&veer, "w.routing.test", "203.0.113.0/24");
    assert_eq!(echo, "203.0.113.0/24/0");
}

#[test]
fn weighted_pick_answers_with_distinct_members() {
    let (_dir, veer) = start();
    let answers = dig_batch(&veer, &"pick.routing.test A\n".repeat(60));
    assert_eq!(answers.len(), 120, "two records per answer: {answers:?}");
    for pair in answers.chunks(2) {
        assert_ne!(pair[0], pair[1], "{answers:?}");
    }
    // Every member leads some answers.
    for m in ["192.0.2.71", "192.0.2.72", "192.0.2.73"] {
        assert!(answers.iter().any(|a| a == m), "{m} never answered");
    }
}

#[test]
fn weight_zero_is_standby() {
    let (dir, veer) = start();
    let many = "standby.routing.test A\n".repeat(50);
    let answers = dig_batch(&veer, &many);
    assert!(
        answers.iter().all(|a| a == "192.0.2.11") && answers.len() == 50,
        "the standby answered while the weighted member is up: {answers:?}"
    );
    set_health(dir.path(), "s1", "down");
    assert!(
        wait_until(FLIP, || ask(&veer, "standby.routing.test", "192.0.2.0/24")
            .0
            == ["192.0.2.19"]),
        "the standby did not take over; logs:\n{}",
        veer.logs()
    );
    set_health(dir.path(), "s1", "up");
    assert!(wait_until(FLIP, || ask(
        &veer,
        "standby.routing.test",
        "192.0.2.0/24"
    )
    .0 == ["192.0.2.11"]));
}

#[test]
fn sticky_answers_stay_when_an_unrelated_member_fails() {
    let (dir, veer) = start();
    let q = "sticky.routing.test";
    let subnets: Vec<String> = (0..40).map(|i| format!("10.{i}.7.0/24")).collect();
    let answers = |v: &Veer| -> Vec<String> {
        ask_many(v, q, &subnets)
            .into_iter()
            .map(|(a, _)| a.join(","))
            .collect()
    };
    let first = ask_many(&veer, q, &subnets);
    for ((a, echo), s) in first.iter().zip(&subnets) {
        assert_eq!(a.len(), 1, "{s}: {a:?}");
        // Consistent hashing on the /24: the answer holds for the whole /24.
        assert_eq!(echo, &format!("{s}/24"));
    }
    let before: Vec<String> = first.into_iter().map(|(a, _)| a.join(",")).collect();
    // Asking again gives the same answers.
    assert_eq!(answers(&veer), before);
    let used: std::collections::BTreeSet<&String> = before.iter().collect();
    assert_eq!(
        used.len(),
        3,
        "40 subnets should reach all 3 members: {before:?}"
    );

    set_health(dir.path(), "st3", "down");
    assert!(wait_until(FLIP, || !answers(&veer).contains(&"192.0.2.23".to_string())));
    for (s, (was, now)) in subnets.iter().zip(before.iter().zip(answers(&veer))) {
        if was == "192.0.2.23" {
            assert_ne!(now, "192.0.2.23", "{s} still on the failed member");
        } else {
            assert_eq!(&now, was, "{s} moved although its member is up");
        }
    }
    // Back up: every client returns to where it was.
    set_health(dir.path(), "st3", "up");
    assert!(wait_until(FLIP, || answers(&veer) == before));
}

#[test]
fn failover_between_weighted_pools() {
    let (dir, veer) = start();
    let pool_a = ["192.0.2.31", "192.0.2.32"];
    let r = veer.dig(&["shop.routing.test", "A", "+subnet=192.0.2.0/24"]);
    assert!(pool_a.contains(&r.answer_data()[0].as_str()), "{}", r.raw);
    // The pool's records answer under the parent's name.
    assert_eq!(r.answer[0].name, "shop.routing.test.", "{}", r.raw);
    assert_eq!(r.edns.unwrap().subnet.unwrap(), "192.0.2.0/24/0");

    // One member of pool A down: still pool A, its healthy member.
    set_health(dir.path(), "pa1", "down");
    assert!(wait_until(FLIP, || {
        (0..10).all(|_| ask(&veer, "shop.routing.test", "192.0.2.0/24").0 == ["192.0.2.32"])
    }));

    // The whole pool down: pool A still answers its own name (fail open),
    // but it reports itself down, so shop moves to pool B.
    set_health(dir.path(), "pa2", "down");
    assert!(
        wait_until(FLIP, || ask(&veer, "shop.routing.test", "192.0.2.0/24").0
            == ["198.51.100.31"]),
        "shop did not fail over to pool B; logs:\n{}",
        veer.logs()
    );
    let own = ask(&veer, "pool-a.routing.test", "192.0.2.0/24").0;
    assert!(
        pool_a.contains(&own[0].as_str()),
        "pool A fails open: {own:?}"
    );

    // Pool A back: shop returns.
    set_health(dir.path(), "pa1", "up");
    assert!(wait_until(FLIP, || ask(
        &veer,
        "shop.routing.test",
        "192.0.2.0/24"
    )
    .0 == ["192.0.2.31"]));
}

#[test]
fn geo_answers_with_the_location_scope() {
    let (dir, veer) = start();
    let q = "geo.routing.test";
    // Country beats continent; the database record is a /25.
    assert_answer(
        &veer,
        q,
        "203.0.113.0/25",
        "192.0.2.40",
        "203.0.113.0/25/25",
    );
    // FR has no member: continent EU.
    assert_answer(
        &veer,
        q,
        "203.0.113.128/25",
        "192.0.2.41",
        "203.0.113.128/25/25",
    );
    // Subdivision US-VA.
    assert_answer(
        &veer,
        q,
        "198.51.100.0/24",
        "192.0.2.42",
        "198.51.100.0/24/24",
    );
    // The networks file overrides the database (100.64.0.0/16 is DE).
    assert_answer(&veer, q, "100.64.9.0/24", "192.0.2.40", "100.64.9.0/24/16");
    // IPv6 clients too.
    assert_answer(
        &veer,
        q,
        "2001:db8:de::/48",
        "192.0.2.40",
        "2001:db8:de::/48/48",
    );
    // Unknown location: the default, but never with scope 0 (other clients
    // get other answers). 192.0.0.0/6 holds no database network: the tree
    // parts from 198.51.100.0/24 at bit 5 and from 203.0.113.0/24 at bit 4.
    assert_answer(&veer, q, "192.0.2.0/24", "192.0.2.49", "192.0.2.0/24/6");

    // DE down: German clients fall back to continent EU.
    set_health(dir.path(), "de", "down");
    assert!(wait_until(FLIP, || ask(&veer, q, "203.0.113.0/25").0 == ["192.0.2.41"]));
    let (_, echo) = ask(&veer, q, "203.0.113.0/25");
    assert_eq!(echo, "203.0.113.0/25/25");
}

#[test]
fn cidr_longest_prefix_with_honest_scope() {
    let (_dir, veer) = start();
    let q = "app.routing.test";
    assert_answer(&veer, q, "10.20.30.0/24", "10.2.2.2", "10.20.30.0/24/16");
    // 10.1.0.0 is in 10/8 but 10.20/16 is near: 10.1 and 10.20 part at
    // bit 11, so the /8's answer holds for 10.0.0.0/12 around it.
    assert_answer(&veer, q, "10.1.0.0/16", "10.1.1.1", "10.1.0.0/16/12");
    assert_answer(
        &veer,
        q,
        "2001:db8:1::/48",
        "10.1.1.1",
        "2001:db8:1::/48/48",
    );
    // The default: scope 1 (0.0.0.0/1 holds 10/8), not 0.
    assert_answer(&veer, q, "192.0.2.0/24", "192.0.2.50", "192.0.2.0/24/1");
    // Without ECS the source address (127.0.0.1) is the client.
    let r = veer.dig(&[q, "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.50"], "{}", r.raw);
}

#[test]
fn nearest_by_great_circle_distance() {
    let (dir, veer) = start();
    let q = "near.routing.test";
    assert_answer(
        &veer,
        q,
        "203.0.113.0/25",
        "192.0.2.60",
        "203.0.113.0/25/25",
    );
    assert_answer(
        &veer,
        q,
        "198.51.100.0/24",
        "198.51.100.60",
        "198.51.100.0/24/24",
    );
    set_health(dir.path(), "fra", "down");
    assert!(wait_until(FLIP, || ask(&veer, q, "203.0.113.0/25").0
        == ["198.51.100.60"]));
}

#[test]
fn ecs_with_bits_beyond_the_source_prefix_is_formerr() {
    let (_dir, veer) = start();
    // dig masks the address itself, so build the query by hand: ECS
    // 10.20.255.0/20 (bits set beyond /20), RFC 7871 6 says FORMERR.
    let ecs = |addr: [u8; 3], source: u8| {
        let mut m = wire::header(0x4ec5, 0, 1, 0, 0, 1);
        m.extend(wire::question(
            "app.routing.test",
            wire::TYPE_A,
            wire::CLASS_IN,
        ));
        // OPT: root owner, type 41, UDP 1232, TTL 0, one ECS option.
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11]);
        m.extend_from_slice(&[0, 8, 0, 7, 0, 1, source, 0]);
        m.extend_from_slice(&addr);
        m
    };
    let reply = wire::udp_exchange(veer.addr, &ecs([10, 20, 255], 20), Duration::from_secs(2))
        .expect("a response");
    let h = wire::Header::parse(&reply).unwrap();
    assert_eq!(h.rcode(), wire::FORMERR, "{h:?}");
    // The same prefix with clean bits is answered.
    let reply = wire::udp_exchange(veer.addr, &ecs([10, 20, 240], 20), Duration::from_secs(2))
        .expect("a response");
    let h = wire::Header::parse(&reply).unwrap();
    assert_eq!((h.rcode(), h.ancount), (wire::NOERROR, 1), "{h:?}");
}

#[test]
fn explain_shows_the_decision_path() {
    let dir = routing_scenario();
    let d = dir.path();
    let geo = explain(
        d,
        &[
            "geo.routing.test",
            "A",
            "--client",
            "192.0.2.1",
            "--ecs",
            "203.0.113.0/25",
            "--down",
            "de",
        ],
    );
    assert_has(
        &geo,
        &[
            "route geo.routing.test. A (policy geo",
            "member 1 (192.0.2.40): down [check down]",
            "located at continent EU country DE subdivision BY",
            "continent EU -> 192.0.2.41",
            "geo.routing.test. 60 IN A 192.0.2.41",
            "ttl: 60",
            "ecs scope: /25",
        ],
    );
    let cidr = explain(
        d,
        &[
            "app.routing.test",
            "A",
            "--client",
            "192.0.2.1",
            "--ecs",
            "10.20.30.0/24",
        ],
    );
    assert_has(&cidr, &["longest match /16: 10.2.2.2", "ecs scope: /16"]);
    let near = explain(d, &["near.routing.test", "A", "--client", "198.51.100.7"]);
    assert_has(&near, &["nearest 198.51.100.60", "ecs scope: /24"]);
    let shop = explain(
        d,
        &[
            "shop.routing.test",
            "A",
            "--client",
            "192.0.2.1",
            "--down",
            "pa1,pa2",
        ],
    );
    assert_has(
        &shop,
        &[
            "route pool-a.routing.test. A (policy weighted",
            "when_all_down = open",
            "route health: down",
            "tier 2 answers",
            "198.51.100.31",
            "ecs scope: /0",
        ],
    );
    let standby = explain(
        d,
        &[
            "standby.routing.test",
            "A",
            "--client",
            "192.0.2.1",
            "--down",
            "s1",
        ],
    );
    assert_has(
        &standby,
        &["standby members (weight 0) answers", "192.0.2.19"],
    );
    let sticky = explain(
        d,
        &[
            "sticky.routing.test",
            "A",
            "--client",
            "192.0.2.1",
            "--ecs",
            "10.3.7.0/24",
        ],
    );
    assert_has(
        &sticky,
        &["sticky by client subnet 10.3.7.0/24", "ecs scope: /24"],
    );

    // Explain and the server agree for the same client.
    let veer = Veer::start_in(d);
    for i in 0..10 {
        let s = format!("10.{i}.7.0/24");
        let text = explain(
            d,
            &[
                "sticky.routing.test",
                "A",
                "--client",
                "192.0.2.1",
                "--ecs",
                &s,
            ],
        );
        let served = ask(&veer, "sticky.routing.test", &s).0;
        assert_has(&text, &[&format!("IN A {}", served[0])]);
    }
}

#[test]
fn check_rejects_cycles_mismatches_and_misplaced_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        fixture_dir("routing").join("zones/routing.test.zone"),
        write_file(d, "zones/routing.test.zone", ""),
    )
    .unwrap();
    let text = r#"[server]
listen = ["127.0.0.1:0"]

[[zone]]
origin = "routing.test."
file = "zones/routing.test.zone"

[[route]]
name = "c.routing.test."
type = "AAAA"
policy = "cidr"
members = [
  { networks = ["10.0.0.0/8"], value = "2001:db8::1" },
  { default = true, value = "2001:db8::2" },
]

[[route]]
name = "m.routing.test."
type = "A"
policy = "weighted"
members = [
  { route = "c.routing.test." },  # MISMATCH
]

[[route]]
name = "x.routing.test."
type = "A"
policy = "cidr"
members = [
  { networks = ["10.0.0.1/8"], value = "192.0.2.1" },  # HOSTBITS
  { default = true, value = "192.0.2.2", weight = 3 },  # WEIGHT
]

[[route]]
name = "g.routing.test."
type = "A"
policy = "geo"
members = [
  { country = "Germany", value = "192.0.2.9" },  # COUNTRY
]

[[route]]  # NEAREST
name = "n.routing.test."
type = "A"
policy = "nearest"
members = [
  { lat = 50.1, lon = 8.7, value = "192.0.2.9" },
]
"#;
    let config = write_file(d, "veer.toml", text);
    let line = |marker: &str| {
        text.lines()
            .position(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no {marker}"))
            + 1
    };
    let check = || {
        let out = run_veer(
            &["check", "--config", config.to_str().unwrap()],
            Duration::from_secs(20),
        );
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = check();
    let at = |line: usize, words: &[&str]| {
        let prefix = format!("{}:{line}: ", config.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && words.iter().all(|w| l.contains(w))),
            "no `{prefix}` line with {words:?} in:\n{stderr}"
        );
    };
    at(line("HOSTBITS"), &["member 1", "networks", "host bits"]);
    at(
        line("WEIGHT"),
        &["member 2", "weight only applies to weighted routes"],
    );
    at(line("COUNTRY"), &["country `GERMANY`"]);
    at(line("NEAREST"), &["needs client locations", "[geo]"]);
    at(
        line("MISMATCH"),
        &[
            "type mismatch",
            "c.routing.test. is routed only as AAAA, not A",
        ],
    );

    // A cycle a -> b -> a.
    let cycle = r#"[server]
listen = ["127.0.0.1:0"]

[[zone]]
origin = "routing.test."
file = "zones/routing.test.zone"

[[route]]
name = "a.routing.test."
type = "A"
policy = "failover"
members = [
  { tier = 1, route = "b.routing.test." },
  { tier = 2, value = "192.0.2.1" },
]

[[route]]
name = "b.routing.test."
type = "A"
policy = "weighted"
members = [
  { route = "a.routing.test.", weight = 1 },
  { value = "192.0.2.2", weight = 1 },
]
"#;
    std::fs::write(&config, cycle).unwrap();
    let stderr = check();
    assert!(
        stderr.contains(
            "veer.toml:8: route a.routing.test. A: routes name each other in a cycle: a.routing.test. -> b.routing.test. -> a.routing.test."
        ),
        "{stderr}"
    );
}

#[test]
fn explain_reads_the_checkpointed_states() {
    let dir = routing_scenario();
    let d = dir.path();
    let config = d.join("veer.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "udp_sockets = 2\n",
            "udp_sockets = 2\nstate_dir = \"state\"\n",
        ),
    )
    .unwrap();
    let veer = Veer::start_in(d);
    set_health(d, "pa1", "down");
    set_health(d, "pa2", "down");
    assert!(wait_until(FLIP, || ask(
        &veer,
        "shop.routing.test",
        "192.0.2.0/24"
    )
    .0 == ["198.51.100.31"]));
    // The server checkpointed the transitions; explain (no --down) sees
    // them. Until pool-b's check pb1 has a checkpointed verdict, it is
    // Unknown and the answer carries min_ttl, not 60: wait for it.
    let mut text = String::new();
    assert!(
        wait_until(FLIP, || {
            text = explain(d, &["shop.routing.test", "A", "--client", "192.0.2.1"]);
            text.contains("pb1: up")
        }),
        "pb1 never checkpointed:\n{text}"
    );
    assert_has(
        &text,
        &[
            "health: checkpointed states",
            "pa1: down",
            "member 1 (route pool-a.routing.test.): down [route down]",
            "shop.routing.test. 60 IN A 198.51.100.31",
        ],
    );
}

#[test]
fn geo_database_is_reloaded_when_it_changes() {
    let (dir, veer) = start();
    let q = "geo.routing.test";
    assert_answer(&veer, q, "192.0.2.0/24", "192.0.2.49", "192.0.2.0/24/6");
    // A new database (written aside, renamed over, as geoipupdate does)
    // that places 192.0.2.0/24 in Germany.
    let db = dir.path().join("geo/test.mmdb");
    let tmp = dir.path().join("geo/test.mmdb.tmp");
    mmdb::write(
        &tmp,
        &[(
            "192.0.2.0/24",
            Loc {
                continent: "EU",
                country: "DE",
                subdivision: None,
                coords: None,
            },
        )],
    );
    std::fs::rename(&tmp, &db).unwrap();
    assert!(
        wait_until(FLIP, || ask(&veer, q, "192.0.2.0/24").0 == ["192.0.2.40"]),
        "the new database was not used; logs:\n{}",
        veer.logs()
    );
    assert_answer(&veer, q, "192.0.2.0/24", "192.0.2.40", "192.0.2.0/24/24");
    // A broken database is rejected whole; the last good one keeps serving.
    std::fs::write(&tmp, b"not a database").unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    assert!(
        veer.wait_for_log("reload rejected", FLIP),
        "{}",
        veer.logs()
    );
    assert_answer(&veer, q, "192.0.2.0/24", "192.0.2.40", "192.0.2.0/24/24");
}
