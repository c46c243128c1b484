//! Unit tests of the routed answers a config gives, decided offline by
//! the server's own code (see `crate::testutil`).

use hickory_proto::op::ResponseCode;

use crate::testutil::{ask, controller, snapshot};

/// File checks named in `names` (their files need not exist: the
/// tests decide offline).
fn checks(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("[check.{n}]\nfile = \"health/{n}\"\n"))
        .collect()
}

#[test]
fn a_cold_start_answers_with_min_ttl() {
    let config = format!(
        "{}{}",
        checks(&["a", "b"]),
        r#"
[[route]]
name = "app.t."
type = "A"
policy = "failover"
ttl = 30
min_ttl = 5
members = [
  { tier = 1, value = "192.0.2.1", check = "a" },
  { tier = 2, value = "192.0.2.2", check = "b" },
]
"#
    );
    // Every check Unknown: tier 1 answers, but only for min_ttl.
    let (_dir, c) = controller(&config, None);
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(got.values, vec![("192.0.2.1".into(), 5)]);
    // Both up: the full TTL.
    let snap = snapshot(&config, &[]);
    let got = ask(&snap, "app.t.", "198.51.100.1");
    assert_eq!(got.values, vec![("192.0.2.1".into(), 30)]);
}

#[test]
fn a_routed_nodata_is_cached_no_longer_than_the_route() {
    // The zone's negative TTL is 900; the route's TTL is 20.
    let config = format!(
        "{}{}",
        checks(&["a"]),
        r#"
[[route]]
name = "closed.t."
type = "A"
policy = "failover"
ttl = 20
when_all_down = "closed"
members = [ { value = "192.0.2.1", check = "a" } ]

[[route]]
name = "cidr.t."
type = "A"
ttl = 15
policy = "cidr"
members = [ { networks = ["10.0.0.0/8"], value = "10.1.1.1" } ]
"#
    );
    let snap = snapshot(&config, &["a"]);
    let got = ask(&snap, "closed.t.", "198.51.100.1");
    assert_eq!((got.rcode, got.values.len()), (ResponseCode::NoError, 0));
    assert_eq!(got.authority_ttl, Some(20));
    // A cidr miss without default.
    let got = ask(&snap, "cidr.t.", "198.51.100.1");
    assert_eq!((got.values.len(), got.authority_ttl), (0, Some(15)));
    // Zone NODATA keeps the zone's negative TTL.
    let got = ask(&snap, "www.t.", "198.51.100.1");
    assert_eq!(got.values.len(), 1);
    let got = ask(&snap, "ns.t.", "198.51.100.1");
    assert_eq!(got.values.len(), 1);
}

#[test]
fn a_nested_route_answers_with_the_lower_ttl() {
    let config = format!(
        "{}{}",
        checks(&["a", "p1"]),
        r#"
[[route]]
name = "pool.t."
type = "A"
ttl = 3600
policy = "multivalue"
members = [ { value = "192.0.2.10", check = "p1" }, { value = "192.0.2.11" } ]

[[route]]
name = "app.t."
type = "A"
policy = "failover"
ttl = 10
members = [
  { tier = 1, route = "pool.t." },
  { tier = 2, value = "192.0.2.2", check = "a" },
]

[[route]]
name = "slow.t."
type = "A"
policy = "failover"
ttl = 7200
members = [ { tier = 1, route = "app.t." } ]
"#
    );
    let snap = snapshot(&config, &[]);
    let got = ask(&snap, "app.t.", "198.51.100.1");
    assert_eq!(
        got.values,
        vec![("192.0.2.10".into(), 10), ("192.0.2.11".into(), 10)]
    );
    // A parent with a longer TTL than its child: the child's.
    let got = ask(&snap, "slow.t.", "198.51.100.1");
    assert!(got.values.iter().all(|v| v.1 == 10), "{got:?}");
}

#[test]
fn weighted_pick_follows_the_weights_for_every_pick() {
    for sticky in [false, true] {
        let config = format!(
            r#"
[[route]]
name = "w.t."
type = "A"
policy = "weighted"
pick = 2
sticky = {sticky}
members = [
  {{ value = "192.0.2.1", weight = 90 }},
  {{ value = "192.0.2.2", weight = 5 }},
  {{ value = "192.0.2.3", weight = 5 }},
]
"#
        );
        let snap = snapshot(&config, &[]);
        let mut seen = [0u32; 3];
        let n = 4000;
        for i in 0..n {
            // Sticky hashes the client's /24: a different one each time.
            let client = format!("10.{}.{}.1", i / 256, i % 256);
            let got = ask(&snap, "w.t.", &client);
            let v = got.values();
            assert_eq!(v.len(), 2, "{got:?}");
            assert_ne!(v[0], v[1]);
            for (k, s) in seen.iter_mut().enumerate() {
                *s += u32::from(v.contains(&format!("192.0.2.{}", k + 1).as_str()));
            }
        }
        // Weighted sampling without replacement: the 90 is in ~99.7%
        // of answers and each 5 in ~50.3%. The old fixed pairs gave
        // the first 5 ~95% and the second ~10%. Bounds: > 6 sigma.
        assert!(seen[0] > n * 97 / 100, "sticky={sticky}: {seen:?}");
        for s in &seen[1..] {
            let share = f64::from(*s) / f64::from(n);
            assert!((0.45..0.56).contains(&share), "sticky={sticky}: {seen:?}");
        }
    }
}

#[test]
fn weighted_pick_never_sends_a_record_twice() {
    // Two members with the same value are one entry (weights added).
    let config = r#"
[[route]]
name = "w.t."
type = "A"
policy = "weighted"
pick = 2
members = [
  { value = "192.0.2.1", weight = 1 },
  { value = "192.0.2.1", weight = 1 },
  { value = "192.0.2.2", weight = 1 },
  { value = "192.0.2.3", weight = 1 },
]
"#;
    let snap = snapshot(config, &[]);
    let mut ones = 0;
    for _ in 0..2000 {
        let got = ask(&snap, "w.t.", "198.51.100.1");
        let v = got.values();
        assert!(v.len() == 2 && v[0] != v[1], "{got:?}");
        ones += usize::from(v.contains(&"192.0.2.1"));
    }
    // Weight 2 of 4: in ~83% of the pairs (2/4 + 1/4*2/3 + 1/4*2/3).
    assert!((1550..1780).contains(&ones), "{ones}");
}

#[test]
fn only_a_failover_parent_falls_through() {
    // A cidr parent's own miss stays NODATA even when one member names
    // a route; it never reaches a down default.
    let config = format!(
        "{}{}",
        checks(&["x"]),
        r#"
[[route]]
name = "child.t."
type = "A"
policy = "multivalue"
members = [ { value = "10.1.1.1" } ]

[[route]]
name = "parent.t."
type = "A"
policy = "cidr"
members = [
  { networks = ["10.0.0.0/8"], route = "child.t." },
  { default = true, value = "192.0.2.99", check = "x" },
]
"#
    );
    let snap = snapshot(&config, &["x"]);
    assert_eq!(
        ask(&snap, "parent.t.", "10.9.9.9").values(),
        vec!["10.1.1.1"]
    );
    let got = ask(&snap, "parent.t.", "198.51.100.1");
    assert!(got.values.is_empty(), "{got:?}");
}

#[test]
fn a_changing_check_behind_a_named_route_shortens_the_parent_ttl() {
    // Cold start: p is Unknown, q starts down (initial = "down"). The
    // pool needs both, so app's tier 2 answers, a choice that depends
    // on p's pending verdict: min_ttl.
    let config = r#"
[check.p]
file = "health/p"
[check.q]
file = "health/q"
initial = "down"

[[route]]
name = "pool.t."
type = "A"
ttl = 300
min_ttl = 5
policy = "multivalue"
min_healthy = 2
members = [ { value = "192.0.2.1", check = "p" }, { value = "192.0.2.3", check = "q" } ]

[[route]]
name = "app.t."
type = "A"
ttl = 300
min_ttl = 5
policy = "failover"
members = [
  { tier = 1, route = "pool.t." },
  { tier = 2, value = "192.0.2.2" },
]
"#;
    let (_dir, c) = controller(config, None);
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(got.values, vec![("192.0.2.2".into(), 5)]);
    // Every verdict in: the full TTL.
    let snap = snapshot(config, &["q"]);
    let got = ask(&snap, "app.t.", "198.51.100.1");
    assert_eq!(got.values, vec![("192.0.2.2".into(), 300)]);
}

#[test]
fn a_nested_route_without_an_answer_falls_through_per_client() {
    let config = format!(
        "{}{}",
        checks(&["n1", "n2", "b"]),
        r#"
[[route]]
name = "local.t."
type = "A"
policy = "cidr"
members = [ { networks = ["10.0.0.0/8"], value = "10.1.1.1" } ]

[[route]]
name = "pair.t."
type = "A"
policy = "multivalue"
min_healthy = 2
when_all_down = "open"
members = [ { value = "192.0.2.21", check = "n1" }, { value = "192.0.2.22", check = "n2" } ]

[[route]]
name = "app.t."
type = "A"
policy = "failover"
members = [
  { tier = 1, route = "local.t." },
  { tier = 2, value = "192.0.2.2", check = "b" },
]

[[route]]
name = "app2.t."
type = "A"
policy = "failover"
members = [
  { tier = 1, route = "pair.t." },
  { tier = 2, value = "192.0.2.2", check = "b" },
]
"#
    );
    let snap = snapshot(&config, &[]);
    // In the child's network: the child's answer, scope of its block.
    let got = ask(&snap, "app.t.", "10.9.9.0/24");
    assert_eq!((got.values(), got.scope), (vec!["10.1.1.1"], 8));
    // Outside: the parent's next tier, not NODATA.
    let got = ask(&snap, "app.t.", "198.51.100.0/24");
    assert_eq!(got.values(), vec!["192.0.2.2"]);
    // The next tier down too: NODATA would be wrong only if another
    // tier were healthy; with tier 2 down the parent fails open.
    let snap = snapshot(&config, &["b"]);
    let got = ask(&snap, "app.t.", "198.51.100.0/24");
    assert_eq!(got.values(), vec!["192.0.2.2"], "{got:?}");

    // A child below its own min_healthy is down for its parent.
    let snap = snapshot(&config, &["n1"]);
    let got = ask(&snap, "app2.t.", "198.51.100.1");
    assert_eq!(got.values(), vec!["192.0.2.2"]);
    // A child that answers only because it fails open is down too.
    let snap = snapshot(&config, &["n1", "n2"]);
    let got = ask(&snap, "app2.t.", "198.51.100.1");
    assert_eq!(got.values(), vec!["192.0.2.2"]);
    // Both healthy: the child answers.
    let snap = snapshot(&config, &[]);
    let got = ask(&snap, "app2.t.", "198.51.100.1");
    assert_eq!(got.values(), vec!["192.0.2.21", "192.0.2.22"]);
}

#[test]
fn a_signed_zone_gets_a_signer_of_its_keys_or_an_error() {
    use crate::control::build::Base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.zone"), crate::testutil::ZONE).unwrap();
    std::fs::write(
        dir.path().join("u.zone"),
        crate::testutil::ZONE.replace(" t.", " u."),
    )
    .unwrap();
    let path = dir.path().join("veer.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
         [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\ndnssec = true\n\
         [[zone]]\norigin = \"u.\"\nfile = \"u.zone\"\n",
    )
    .unwrap();
    // No key yet: an error at the zone, saying what to run.
    let e = Base::load_path(&path, None).unwrap_err().to_string();
    let keys = dir.path().join("state/keys");
    assert_eq!(
        e,
        format!(
            "{}:5: zone t.: dnssec = true but no usable key in {} (run veer dnssec keygen --config {} t.)",
            path.display(),
            keys.display(),
            path.display()
        )
    );
    let name = hickory_proto::rr::Name::from_ascii("t.").unwrap();
    let now = std::time::SystemTime::now();
    let k = crate::dnssec::generate(
        &name,
        hickory_proto::dnssec::Algorithm::ED25519,
        true,
        &keys,
        now,
    )
    .unwrap();
    let base = Base::load_path(&path, None).unwrap();
    assert_eq!(base.signers.len(), 2);
    let signer = base.signers[0].as_ref().expect("t. is signed");
    assert_eq!(signer.keys()[0].tag, k.tag);
    assert!(base.signers[1].is_none());
    // A key that is not active yet is no usable key.
    crate::dnssec::key::set_timing(
        &k,
        &crate::dnssec::Timing {
            activate: Some(now + std::time::Duration::from_secs(3600)),
            ..k.timing
        },
    )
    .unwrap();
    let e = Base::load_path(&path, None).unwrap_err().to_string();
    assert!(e.contains("no usable key in"), "{e}");
    assert!(e.contains("(1 key(s) there, none active now)"), "{e}");
    // A corrupt key is reported at its file and line.
    std::fs::write(
        &k.path,
        "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: !!\n",
    )
    .unwrap();
    let e = Base::load_path(&path, None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}:3: PrivateKey is not base64", k.path.display())
    );
}

/// What a signed zone cannot serve is an error at the route's line: a geo
/// or cidr route without `default`, weighted `pick > 1`.
#[test]
fn a_signed_zone_refuses_routes_it_cannot_prove() {
    use crate::control::build::Base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.zone"), crate::testutil::ZONE).unwrap();
    std::fs::write(dir.path().join("nets"), "10.0.0.0/8 EU DE\n").unwrap();
    crate::testutil::csk(
        "t.",
        &dir.path().join("state/keys"),
        std::time::Duration::ZERO,
    );
    let path = dir.path().join("veer.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
         [geo]\nnetworks = \"nets\"\n\
         [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\ndnssec = true\n\
         [[route]]\nname = \"geo.t.\"\ntype = \"A\"\npolicy = \"geo\"\n\
         members = [ { country = \"DE\", value = \"192.0.2.1\" } ]\n\
         [[route]]\nname = \"w.t.\"\ntype = \"A\"\npolicy = \"weighted\"\npick = 2\n\
         members = [ { value = \"192.0.2.1\", weight = 1 }, { value = \"192.0.2.2\", weight = 1 } ]\n",
    )
    .unwrap();
    let e = Base::load_path(&path, None).unwrap_err().to_string();
    assert!(
        e.contains(":10: route geo.t. A: a geo route in a signed zone needs a `default` member"),
        "{e}"
    );
    assert!(
        e.contains(":15: route w.t. A: pick = 2 in a signed zone is not supported yet"),
        "{e}"
    );
}

/// Key timing that leaves a zone without an active key later is refused
/// now (a gap would serve routed answers unsigned).
#[test]
fn a_gap_in_key_timing_is_an_error() {
    use crate::control::build::Base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.zone"), crate::testutil::ZONE).unwrap();
    let path = dir.path().join("veer.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
         [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\ndnssec = true\n",
    )
    .unwrap();
    let now = std::time::SystemTime::now();
    let k = crate::testutil::csk(
        "t.",
        &dir.path().join("state/keys"),
        std::time::Duration::ZERO,
    );
    Base::load_path(&path, None).unwrap();
    let mut timing = k.timing;
    timing.inactive = Some(now + std::time::Duration::from_secs(3600));
    crate::dnssec::key::set_timing(&k, &timing).unwrap();
    let e = Base::load_path(&path, None).unwrap_err().to_string();
    assert!(e.contains("leaves a gap"), "{e}");
}
