use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use rustc_hash::FxHashMap;

use super::*;
use crate::config::Allow;
use crate::xfr::{Journal, Xfr, ZoneXfr};
use crate::zone::Zone;

const SECRET: &str = "2ZTWtuLVvRF1VqYXs4l1DX8hv6NTt9GkzSEEEhP4d2k=";

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A zone `t.` of `hosts` A records, served at serial 100, transferable by
/// anyone (and by anyone signing with key `xfr`).
fn xfr_of(hosts: usize) -> Xfr {
    let mut text = String::from(
        "$ORIGIN t.\n$TTL 300\n@ SOA ns hostmaster 100 7200 3600 1209600 900\n@ NS ns\nns A 192.0.2.53\n",
    );
    for i in 0..hosts {
        text.push_str(&format!("h{i} A 10.0.{}.{}\n", (i >> 8) & 255, i & 255));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zone");
    std::fs::write(&path, text).unwrap();
    let zone = Arc::new(Zone::load(&name("t."), &path).unwrap());
    let soa = zone
        .soa_sets(100)
        .0
        .set()
        .records_without_rrsigs()
        .next()
        .unwrap()
        .clone();
    let z = ZoneXfr {
        zone,
        serial: 100,
        soa,
        routed: Arc::from(Vec::new()),
        routed_plain: Arc::from(Vec::new()),
        journal: Arc::new(Journal::default()),
        allow: Arc::from(vec![Allow {
            network: Some("0.0.0.0/0".parse().unwrap()),
            key: None,
        }]),
        notify: Arc::from(Vec::new()),
        expired: false,
    };
    let mut zones = FxHashMap::default();
    zones.insert(name("t."), Arc::new(z));
    Xfr {
        zones,
        keys: Arc::from(vec![
            crate::tsig::Key::new("xfr", "hmac-sha256", SECRET).unwrap(),
        ]),
        notify: Arc::default(),
        secondaries: FxHashMap::default(),
    }
}

fn axfr_request() -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(name("t."), RecordType::AXFR));
    m.to_vec().unwrap()
}

/// The messages `serve_tcp` writes for `raw`.
fn serve(xfr: &Xfr, raw: &[u8]) -> Vec<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out: Vec<u8> = Vec::new();
    let peer: SocketAddr = (IpAddr::from([127, 0, 0, 1]), 5353).into();
    rt.block_on(serve_tcp(&mut out, xfr, raw, peer, Duration::from_secs(1)))
        .unwrap();
    let mut msgs = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(rest.len() >= 2 + len, "a message is cut short");
        msgs.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    msgs
}

/// Every message has AA, no TC, at least one record; the first and last
/// records are the SOA and nothing else is.
fn check_stream(msgs: &[Vec<u8>], hosts: usize) {
    let mut soas = 0;
    let mut total = 0;
    for (i, raw) in msgs.iter().enumerate() {
        let m = Message::from_vec(raw).unwrap();
        assert!(m.metadata.authoritative, "message {i}: AA");
        assert!(!m.metadata.truncation, "message {i}: TC");
        assert!(
            !m.answers.is_empty(),
            "message {i} of {} has no record (hosts {hosts})",
            msgs.len()
        );
        for r in &m.answers {
            if matches!(r.data, RData::SOA(_)) {
                soas += 1;
            }
        }
        total += m.answers.len();
    }
    let first = Message::from_vec(&msgs[0]).unwrap();
    let last = Message::from_vec(msgs.last().unwrap()).unwrap();
    assert!(matches!(first.answers[0].data, RData::SOA(_)));
    assert!(matches!(last.answers.last().unwrap().data, RData::SOA(_)));
    assert_eq!(soas, 2);
    assert_eq!(total, hosts + 4, "SOA, NS, ns A, hosts, SOA");
}

#[test]
fn no_message_of_an_axfr_is_empty_whatever_the_zone_size() {
    // The message is closed once it passes 16 KiB; when the final SOA is
    // what passes it, no empty message may follow. Sizes around one and
    // two closings cover that case.
    for hosts in (740..756).chain(1470..1485).chain(2188..2200) {
        let msgs = serve(&xfr_of(hosts), &axfr_request());
        check_stream(&msgs, hosts);
    }
}

#[test]
fn a_signed_axfr_is_signed_in_every_message_and_chained() {
    let key = crate::tsig::Key::new("xfr", "hmac-sha256", SECRET).unwrap();
    let mut raw = axfr_request();
    let mut verifier = crate::tsig::sign_request(&key, &mut raw, crate::tsig::now()).unwrap();
    let msgs = serve(&xfr_of(1480), &raw);
    assert!(msgs.len() >= 3);
    for (i, m) in msgs.iter().enumerate() {
        assert!(m.len() <= 65535);
        verifier
            .verify(m, crate::tsig::now())
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
}

#[test]
fn a_refusal_to_an_edns_request_carries_an_opt_and_one_without_none() {
    let xfr = xfr_of(3);
    for edns in [true, false] {
        let mut m = Message::query();
        m.add_query(Query::query(name("other."), RecordType::AXFR));
        if edns {
            m.edns = Some(hickory_proto::op::Edns::new());
        }
        let msgs = serve(&xfr, &m.to_vec().unwrap());
        assert_eq!(msgs.len(), 1);
        let r = Message::from_vec(&msgs[0]).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NotAuth);
        assert_eq!(r.edns.is_some(), edns, "OPT answers OPT");
    }
}
