//! veer as hidden primary for real secondaries: NSD 4 and Knot 3 transfer
//! the zone with TSIG, follow health transitions by NOTIFY and IXFR, fall
//! back to AXFR when veer's journal no longer reaches their serial, and
//! take a 100,000-record zone complete. Transfers without the key, with a
//! wrong key, or from outside the ACL are refused.

mod common;
#[path = "support/secondary.rs"]
mod secondary;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use secondary::{Kind, Secondary, Tsig};

/// How long a secondary may take to follow (generous: shared machines).
const FOLLOW: Duration = Duration::from_secs(15);

fn key() -> Tsig {
    Tsig::hmac_sha256("xfr-key", "Vh3cMJlR0Wm0nU9bR3pHb1pkQ2l0eFZwN2dGa0l2c2E=")
}

/// The zone: `hosts` A records, apex data, and the failover route
/// `app.example.test.` whose primary follows the file check `p`.
fn zone_text(hosts: usize) -> String {
    let mut z = String::from(
        "$ORIGIN example.test.\n$TTL 300\n\
         @ SOA ns1 hostmaster 1000 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.53\n\
         www A 192.0.2.80\nmail MX 10 www\ntxt TXT \"hello\" \"world\"\n",
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

/// veer's config: TSIG key, transfers allowed to loopback with the key,
/// `notify` targets (with the key), `transfer` lines.
fn config(notify: &[&Secondary], transfer: &str) -> String {
    config_net(notify, transfer, "127.0.0.0/8")
}

/// [`config`] with transfers allowed from `net` only.
fn config_net(notify: &[&Secondary], transfer: &str, net: &str) -> String {
    let k = key();
    let targets: Vec<String> = notify
        .iter()
        .map(|s| format!("{{ address = \"{}\", key = \"{}\" }}", s.addr(), k.name))
        .collect();
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[rrl]
responses_per_second = 0
[key.{name}]
algorithm = "{alg}"
secret = "{secret}"
[transfer]
notify_timeout = "300ms"
{transfer}
[check.p]
file = "health/p"
interval = "50ms"
[[zone]]
origin = "example.test."
file = "example.test.zone"
allow_transfer = [ {{ network = "{net}", key = "{name}" }} ]
notify = [ {targets} ]
[[route]]
name = "app.example.test."
type = "A"
ttl = 30
policy = "failover"
members = [ {{ value = "192.0.2.1", check = "p", tier = 1 }}, {{ value = "192.0.2.2", tier = 2 }} ]
"#,
        name = k.name,
        alg = k.algorithm,
        secret = k.secret,
        targets = targets.join(", ")
    )
}

fn start_veer(dir: &Path, hosts: usize, transfer: &str) -> Veer {
    write_file(dir, "example.test.zone", &zone_text(hosts));
    std::fs::create_dir_all(dir.join("health")).unwrap();
    set_health(dir, "p", "up");
    let path = write_file(dir, "veer.toml", &config(&[], transfer));
    Veer::start(&path)
}

fn served_serial(veer: &Veer) -> u32 {
    let d = dig(veer.addr, &["example.test.", "SOA"]);
    d.answer_of("SOA")[0]
        .data
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

/// Rewrites veer's config with `notify` targets and waits for the reload.
fn set_notify(veer: &Veer, notify: &[&Secondary], transfer: &str) {
    veer.reload_with(&config(notify, transfer));
}

/// veer's AXFR (signed), as the harness prints a secondary's: sorted,
/// closing SOA left out.
fn veer_axfr(veer: &Veer) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", veer.addr.ip()))
        .args([
            "-p",
            &veer.addr.port().to_string(),
            "+tcp",
            "+nocmd",
            "+nostats",
        ])
        .args(["-y", &key().dig_key(), "example.test.", "AXFR"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter(|l| l.split_whitespace().nth(3).is_none_or(|t| t != "TSIG"))
        .filter_map(parse_rr)
        .map(|r| format!("{} {} {} {} {}", r.name, r.ttl, r.class, r.rtype, r.data))
        .collect();
    lines.pop();
    lines.sort();
    lines
}

#[test]
fn nsd_and_knot_follow_health_by_notify_and_ixfr() {
    let dir = tempfile::tempdir().unwrap();
    let veer = start_veer(dir.path(), 50, "");
    let s0 = served_serial(&veer);
    let k = key();
    let nsd = Secondary::start(Kind::Nsd, "example.test.", veer.addr, Some(&k));
    let knot = Secondary::start(Kind::Knot, "example.test.", veer.addr, Some(&k));
    for s in [&nsd, &knot] {
        let t = s.wait_serial(s0, FOLLOW);
        println!("{:?} has serial {s0} after {t:?}", s.kind());
        assert_eq!(
            s.axfr(),
            veer_axfr(&veer),
            "{:?} holds what veer serves",
            s.kind()
        );
        assert_eq!(s.ask("app.example.test.", "A"), ["192.0.2.1"]);
    }
    // NOTIFY targets arrive by reload; then the primary goes down.
    set_notify(&veer, &[&nsd, &knot], "");
    let started = Instant::now();
    set_health(dir.path(), "p", "down");
    let mut times = Vec::new();
    for s in [&nsd, &knot] {
        assert!(
            wait_until(FOLLOW, || s.ask("app.example.test.", "A") == ["192.0.2.2"]),
            "{:?} did not follow\n{}\n{}",
            s.kind(),
            s.log(),
            veer.logs()
        );
        times.push((s.kind(), started.elapsed()));
    }
    println!("health transition -> secondaries answering the new record: {times:?}");
    let s1 = served_serial(&veer);
    assert_ne!(s1, s0);
    assert!(
        wait_until(Duration::from_secs(5), || knot
            .log()
            .contains("IXFR, incoming")),
        "{}",
        knot.log()
    );
    veer.expect_log("IXFR of example.test.", Duration::from_secs(5));
    for s in [&nsd, &knot] {
        assert_eq!(
            s.axfr(),
            veer_axfr(&veer),
            "{:?} holds what veer serves",
            s.kind()
        );
    }
}

#[test]
fn knot_gets_the_whole_zone_when_the_journal_does_not_reach_its_serial() {
    let dir = tempfile::tempdir().unwrap();
    // One difference kept: two transitions push Knot's serial out.
    let veer = start_veer(dir.path(), 20, "journal_entries = 1");
    let s0 = served_serial(&veer);
    let k = key();
    let knot = Secondary::start(Kind::Knot, "example.test.", veer.addr, Some(&k));
    knot.wait_serial(s0, FOLLOW);
    // Covered: one transition, IXFR.
    set_health(dir.path(), "p", "down");
    let s1 = wait_serial_change(&veer, s0);
    knot.refresh();
    knot.wait_serial(s1, FOLLOW);
    assert!(
        veer.logs()
            .contains(&format!("IXFR of example.test. serial {s1}"))
    );
    // Not covered: two transitions while Knot is not told.
    set_health(dir.path(), "p", "up");
    let s2 = wait_serial_change(&veer, s1);
    set_health(dir.path(), "p", "down");
    let s3 = wait_serial_change(&veer, s2);
    knot.refresh();
    knot.wait_serial(s3, FOLLOW);
    veer.expect_log(
        "IXFR (whole zone: the journal does not reach the client's serial) of example.test.",
        Duration::from_secs(5),
    );
    assert_eq!(knot.axfr(), veer_axfr(&veer));
}

fn wait_serial_change(veer: &Veer, old: u32) -> u32 {
    let mut s = old;
    assert!(wait_until(Duration::from_secs(10), || {
        s = served_serial(veer);
        s != old
    }));
    s
}

#[test]
fn a_100000_record_zone_arrives_complete() {
    let dir = tempfile::tempdir().unwrap();
    let veer = start_veer(dir.path(), 100_000, "");
    let s0 = served_serial(&veer);
    let k = key();
    let started = Instant::now();
    let nsd = Secondary::start(Kind::Nsd, "example.test.", veer.addr, Some(&k));
    let knot = Secondary::start(Kind::Knot, "example.test.", veer.addr, Some(&k));
    for s in [&nsd, &knot] {
        s.wait_serial(s0, Duration::from_secs(60));
    }
    println!(
        "100,000 records at both secondaries after {:?}",
        started.elapsed()
    );
    let ours = veer_axfr(&veer);
    assert_eq!(ours.len(), 100_000 + 7, "veer's own AXFR");
    for s in [&nsd, &knot] {
        assert_eq!(s.axfr(), ours, "{:?}", s.kind());
    }
}

#[test]
fn transfers_without_the_key_with_a_wrong_key_or_from_outside_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let veer = start_veer(dir.path(), 5, "");
    let axfr = |extra: &[&str]| -> String {
        let out = std::process::Command::new("dig")
            .arg(format!("@{}", veer.addr.ip()))
            .args([
                "-p",
                &veer.addr.port().to_string(),
                "+tcp",
                "+time=3",
                "+tries=1",
            ])
            .args(extra)
            .args(["example.test.", "AXFR"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ok = axfr(&["-y", &key().dig_key()]);
    assert!(ok.contains("XFR size"), "{ok}");
    let unsigned = axfr(&[]);
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    let wrong = Tsig::hmac_sha256("xfr-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let bad = axfr(&["-y", &wrong.dig_key()]);
    assert!(
        bad.contains(" BADSIG ") && !bad.contains("XFR size"),
        "{bad}"
    );
    let unknown = Tsig::hmac_sha256("other-key", &key().secret);
    let bad = axfr(&["-y", &unknown.dig_key()]);
    assert!(
        bad.contains(" BADKEY ") && !bad.contains("XFR size"),
        "{bad}"
    );
    // From outside the ACL's network, with the key: refused.
    veer.reload_with(&config_net(&[], "", "127.0.0.1/32"));
    let outside = axfr(&["-b", "127.0.0.2", "-y", &key().dig_key()]);
    assert!(outside.contains("Transfer failed"), "{outside}");
    let inside = axfr(&["-b", "127.0.0.1", "-y", &key().dig_key()]);
    assert!(inside.contains("XFR size"), "{inside}");
    veer.expect_log("transfer refused to 127.0.0.2", Duration::from_secs(5));
}

/// A secondary checks an up-to-date zone with a signed SOA query: the
/// answer must be signed too, or Knot's refresh fails ("failed to verify
/// TSIG"), retries, and the zone expires on it while health is stable.
#[test]
fn knots_refresh_of_an_up_to_date_zone_succeeds_because_soa_answers_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let veer = start_veer(dir.path(), 5, "");
    let s0 = served_serial(&veer);
    let k = key();
    let knot = Secondary::start(Kind::Knot, "example.test.", veer.addr, Some(&k));
    knot.wait_serial(s0, FOLLOW);
    knot.refresh();
    assert!(
        wait_until(FOLLOW, || knot.log().contains("zone is up-to-date")),
        "{}",
        knot.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = knot.log();
    assert!(
        !log.contains("failed to verify TSIG") && !log.contains("no usable master"),
        "{log}"
    );
    // dig's view: signed over UDP and TCP; a wrong secret gets BADSIG.
    let soa = |extra: &[&str]| -> String {
        let out = std::process::Command::new("dig")
            .arg(format!("@{}", veer.addr.ip()))
            .args(["-p", &veer.addr.port().to_string(), "+time=3", "+tries=1"])
            .args(extra)
            .args(["example.test.", "SOA"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for transport in ["+notcp", "+tcp"] {
        let ok = soa(&[transport, "-y", &k.dig_key()]);
        assert!(
            ok.contains("status: NOERROR")
                && ok.contains("TSIG PSEUDOSECTION")
                && !ok.contains("could not be validated"),
            "{ok}"
        );
    }
    let wrong = Tsig::hmac_sha256("xfr-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let bad = soa(&["-y", &wrong.dig_key()]);
    assert!(
        bad.contains("status: NOTAUTH") && bad.contains(" BADSIG "),
        "{bad}"
    );
    let unsigned = soa(&[]);
    assert!(
        unsigned.contains("status: NOERROR") && !unsigned.contains("TSIG"),
        "{unsigned}"
    );
}
