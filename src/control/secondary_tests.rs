//! Secondary zones in the controller across reloads (review-14).
use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use crate::control::Controller;
use crate::control::build::Base;
use crate::testutil::{ZONE, ask};
use crate::xfr::secondary::Update;

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
        T { dir }
    }
    /// `t.` from a primary (true) or from its file.
    fn write(&self, secondary: bool) {
        let zone = if secondary {
            "primary = [ { address = \"127.0.0.1:1\" } ]"
        } else {
            "file = \"t.zone\""
        };
        std::fs::write(
            self.dir.path().join("veer.toml"),
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n[[zone]]\norigin = \"t.\"\n{zone}\n"
            ),
        )
        .unwrap();
    }
    fn base(&self) -> Base {
        Base::load_path(&self.dir.path().join("veer.toml"), None).unwrap_or_else(|d| panic!("{d}"))
    }
}

fn reload(c: &mut Controller, t: &T) {
    let new = Base::load_path(&t.dir.path().join("veer.toml"), Some(&c.base))
        .unwrap_or_else(|d| panic!("{d}"));
    let old = std::mem::replace(&mut c.base, Arc::new(new));
    c.reconcile(Some(old), SystemTime::now());
}

fn rcode(c: &Controller, name: &str) -> ResponseCode {
    ask(&c.snapshot(), name, "198.51.100.1").rcode
}

#[test]
fn a_secondary_zone_never_fetched_then_served_from_a_file_answers() {
    let t = T::new();
    t.write(true);
    let mut c = Controller::new(t.base());
    assert_eq!(rcode(&c, "www.t."), ResponseCode::ServFail);
    // The operator gives up on the primary: the file serves.
    t.write(false);
    reload(&mut c, &t);
    assert_eq!(rcode(&c, "www.t."), ResponseCode::NoError);
    // A word from the stopped task, queued before the reload, changes
    // nothing.
    let origin = Name::from_ascii("t.").unwrap();
    c.secondary_update(Update::Expired {
        origin: origin.clone(),
        expired: true,
    });
    assert_eq!(rcode(&c, "www.t."), ResponseCode::NoError);
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let records = vec![hickory_proto::rr::Record::from_rdata(
        origin.clone(),
        60,
        hickory_proto::rr::RData::SOA(hickory_proto::rr::rdata::SOA::new(
            origin.clone(),
            origin.clone(),
            99,
            60,
            60,
            60,
            60,
        )),
    )];
    c.secondary_update(Update::Zone {
        origin,
        records: Arc::new(records),
        reply: tx,
    });
    assert!(
        rx.try_recv().unwrap().is_err(),
        "a file zone took a transfer"
    );
    assert_eq!(rcode(&c, "www.t."), ResponseCode::NoError);
}

#[test]
fn a_file_zone_made_secondary_answers_servfail_until_fetched() {
    let t = T::new();
    t.write(false);
    let mut c = Controller::new(t.base());
    assert_eq!(rcode(&c, "www.t."), ResponseCode::NoError);
    t.write(true);
    reload(&mut c, &t);
    // Not the placeholder's NXDOMAIN, which resolvers would cache.
    assert_eq!(rcode(&c, "www.t."), ResponseCode::ServFail);
    assert_eq!(rcode(&c, "t."), ResponseCode::ServFail);
}

/// A copy that cannot be served (a CNAME beside other data): the start
/// goes on with the placeholder, which answers SERVFAIL (expired), not
/// its NXDOMAIN, and is not transferred out, until the zone is fetched.
#[test]
fn an_unservable_copy_starts_expired_until_fetched() {
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use hickory_proto::rr::{RData, Record};
    let t = T::new();
    t.write(true);
    let origin = Name::from_ascii("t.").unwrap();
    let www = Name::from_ascii("www.t.").unwrap();
    let soa = SOA::new(origin.clone(), origin.clone(), 7, 60, 60, 86400, 60);
    let bad = vec![
        Record::from_rdata(origin.clone(), 60, RData::SOA(soa)),
        Record::from_rdata(www.clone(), 60, RData::CNAME(CNAME(origin.clone()))),
        Record::from_rdata(www.clone(), 60, RData::A(A::new(192, 0, 2, 1))),
    ];
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let meta = crate::xfr::secondary::Meta {
        serial: 7,
        refreshed_at: now,
        expires_at: now + 86400,
    };
    let state = t.dir.path().join("state");
    let copy = crate::xfr::secondary::copy_path(&state, &origin);
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(
        &copy,
        crate::xfr::secondary::encode_copy(&meta, &bad).unwrap(),
    )
    .unwrap();
    let c = Controller::new(t.base());
    assert!(!c.base.transferred.contains_key(&origin));
    assert_eq!(rcode(&c, "www.t."), ResponseCode::ServFail);
    assert_eq!(rcode(&c, "t."), ResponseCode::ServFail);
    assert!(c.expired.contains(&origin));
}

/// The first transfer takes the primary's serial, whatever it is (2^31 and
/// more included); a later one lower than what was served moves ours on
/// by one instead of going back.
#[test]
fn the_served_serial_follows_the_primary_and_never_goes_back() {
    let t = T::new();
    t.write(true);
    let mut c = Controller::new(t.base());
    let origin = Name::from_ascii("t.").unwrap();
    let take = |c: &mut Controller, serial: u32, www: [u8; 4]| {
        use hickory_proto::rr::rdata::{A, NS, SOA};
        use hickory_proto::rr::{RData, Record};
        let records = vec![
            Record::from_rdata(
                origin.clone(),
                60,
                RData::SOA(SOA::new(
                    origin.clone(),
                    origin.clone(),
                    serial,
                    60,
                    60,
                    86400,
                    60,
                )),
            ),
            Record::from_rdata(origin.clone(), 60, RData::NS(NS(origin.clone()))),
            Record::from_rdata(
                Name::from_ascii("www.t.").unwrap(),
                60,
                RData::A(A::from(std::net::Ipv4Addr::from(www))),
            ),
        ];
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        c.secondary_update(Update::Zone {
            origin: origin.clone(),
            records: Arc::new(records),
            reply: tx,
        });
        rx.try_recv().unwrap().unwrap();
        c.serials[0]
    };
    let big = 3_000_000_000;
    assert_eq!(
        take(&mut c, big, [192, 0, 2, 1]),
        big,
        "first data: the primary's"
    );
    assert_eq!(rcode(&c, "www.t."), ResponseCode::NoError);
    assert_eq!(take(&mut c, big + 5, [192, 0, 2, 2]), big + 5);
    // The primary went back (restored from a backup): ours moves on.
    assert_eq!(take(&mut c, big + 1, [192, 0, 2, 3]), big + 6);
}
