//! Proves tests/support/secondary.rs without veer: Knot as the primary,
//! NSD and Knot as its secondaries (TSIG, NOTIFY, IXFR, refresh).
//!
//! TEMPORARY: this file goes (or is replaced by veer's transfer tests)
//! once veer serves AXFR/IXFR and sends NOTIFY; the harness stays.

mod common;
#[path = "support/secondary.rs"]
mod secondary;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use secondary::{Kind, Secondary, Tsig, free_port, start_knot_primary, start_knot_primary_on};

const ZONE: &str = "example.test.";

/// How long a secondary may take to follow the primary.
const FOLLOW: Duration = Duration::from_secs(10);

fn key() -> Tsig {
    Tsig::hmac_sha256("veer-xfr", "Vh3cMJlR0Wm0nU9bR3pHb1pkQ2l0eFZwN2dGa0l2c2E=")
}

/// The test zone at `serial`; `records` after the fixed ones.
fn zone_text(serial: u32, records: &str) -> String {
    format!(
        "$ORIGIN {ZONE}\n$TTL 300\n\
         @ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.1\n\
         {records}"
    )
}

const V1: &str = "www IN A 192.0.2.10\nwww IN A 192.0.2.11\nold IN TXT \"going\"\n";
const V2: &str = "www IN A 192.0.2.10\nwww IN A 192.0.2.12\nnew IN TXT \"here\"\n";

#[test]
fn nsd_and_knot_follow_a_knot_primary_with_tsig_and_notify() {
    let tsig = key();
    // The secondaries need the primary's address, the primary theirs (for
    // NOTIFY): reserve its port, start them against it (nothing answers
    // there yet), then the primary, which NOTIFYs them as it loads.
    let primary_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let t = Instant::now();
    let nsd = Secondary::start(Kind::Nsd, ZONE, primary_addr, Some(&tsig));
    println!("nsd up in {:?}", t.elapsed());
    let t = Instant::now();
    let knot = Secondary::start(Kind::Knot, ZONE, primary_addr, Some(&tsig));
    println!("knot up in {:?}", t.elapsed());
    assert_eq!(nsd.serial(), None);
    assert_eq!(knot.serial(), None);

    let t = Instant::now();
    let primary = start_knot_primary_on(
        primary_addr,
        ZONE,
        &zone_text(1, V1),
        Some(&tsig),
        &[nsd.addr(), knot.addr()],
    );
    println!("primary up in {:?}", t.elapsed());
    let t = Instant::now();
    assert_eq!(primary.axfr().len(), 6, "{:?}", primary.axfr());
    for s in [&nsd, &knot] {
        s.wait_serial(1, FOLLOW);
        println!(
            "{:?} has serial 1 {:?} after the primary answered",
            s.kind(),
            t.elapsed()
        );
        assert_eq!(s.ask("www.example.test", "A"), ["192.0.2.10", "192.0.2.11"]);
        assert_eq!(s.axfr(), primary.axfr(), "{:?}", s.kind());
    }
    assert!(knot.log().contains("AXFR, incoming"), "{}", knot.log());

    // A new serial: Knot keeps the difference (IXFR) and NOTIFYs.
    let t = Instant::now();
    primary.set_zone(&zone_text(2, V2));
    println!("primary reloaded in {:?}", t.elapsed());
    assert_eq!(primary.serial(), Some(2));
    for s in [&nsd, &knot] {
        s.wait_serial(2, FOLLOW);
        println!(
            "{:?} has serial 2 {:?} after the reload",
            s.kind(),
            t.elapsed()
        );
        assert_eq!(s.ask("www.example.test", "A"), ["192.0.2.10", "192.0.2.12"]);
        assert_eq!(s.ask("new.example.test", "TXT"), ["\"here\""]);
        assert!(s.ask("old.example.test", "TXT").is_empty());
        assert_eq!(s.axfr(), primary.axfr(), "{:?}", s.kind());
    }
    // Both asked IXFR and got it: the primary logs one per secondary,
    // Knot its own, NSD the NOTIFY it acted on.
    let plog = primary.log();
    let ixfrs = plog
        .lines()
        .filter(|l| l.contains("IXFR, outgoing") && l.contains("started"))
        .count();
    assert_eq!(ixfrs, 2, "{plog}");
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());
    assert!(
        nsd.log()
            .contains("notify for example.test. from 127.0.0.1 serial 2"),
        "{}",
        nsd.log()
    );
}

#[test]
fn refresh_transfers_without_notify() {
    let tsig = key();
    // No NOTIFY targets: only a refresh (or the SOA refresh timer, an
    // hour) brings a change across.
    let primary = start_knot_primary(ZONE, &zone_text(7, V1), Some(&tsig), &[]);
    let nsd = Secondary::start(Kind::Nsd, ZONE, primary.addr(), Some(&tsig));
    let knot = Secondary::start(Kind::Knot, ZONE, primary.addr(), Some(&tsig));
    for s in [&nsd, &knot] {
        let took = s.wait_serial(7, FOLLOW);
        println!("{:?} has serial 7 {took:?} after it started", s.kind());
    }
    primary.set_zone(&zone_text(8, V2));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(nsd.serial(), Some(7));
    assert_eq!(knot.serial(), Some(7));
    for s in [&nsd, &knot] {
        let t = Instant::now();
        s.refresh();
        s.wait_serial(8, FOLLOW);
        println!(
            "{:?} has serial 8 {:?} after refresh",
            s.kind(),
            t.elapsed()
        );
        assert_eq!(s.axfr(), primary.axfr(), "{:?}", s.kind());
    }
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());

    // A forced transfer is a whole one.
    let before = knot.log().matches("AXFR, incoming").count();
    knot.retransfer();
    nsd.retransfer();
    assert!(
        common::wait_until(FOLLOW, || knot.log().matches("AXFR, incoming").count()
            > before),
        "{}",
        knot.log()
    );
    assert_eq!(knot.serial(), Some(8));
    assert_eq!(nsd.serial(), Some(8));
}

#[test]
fn wrong_tsig_secret_gets_no_zone() {
    let tsig = key();
    let primary = start_knot_primary(ZONE, &zone_text(1, V1), Some(&tsig), &[]);
    let wrong = Tsig::hmac_sha256(&tsig.name, "d3JvbmctZGlmZmVyZW50LXNlY3JldC0zMi1ieXRlcyE=");
    let nsd = Secondary::start(Kind::Nsd, ZONE, primary.addr(), Some(&wrong));
    let knot = Secondary::start(Kind::Knot, ZONE, primary.addr(), Some(&wrong));
    nsd.refresh();
    knot.refresh();
    std::thread::sleep(Duration::from_secs(2));
    for s in [&nsd, &knot] {
        assert_eq!(
            s.serial(),
            None,
            "{:?} got the zone with a wrong key:\n{}",
            s.kind(),
            s.log()
        );
    }
    assert!(nsd.log().contains("bad tsig signature"), "{}", nsd.log());
    assert!(
        knot.log().contains("failed (failed to verify TSIG)"),
        "{}",
        knot.log()
    );
    // The same primary gives it to the right key.
    let right = Secondary::start(Kind::Knot, ZONE, primary.addr(), Some(&tsig));
    right.wait_serial(1, FOLLOW);
}
