//! Bytes from the network, as a UDP datagram and as a TCP message, into
//! the handler's response: never a panic, and a response (when there is
//! one) that is a response to that query's ID.
#![no_main]

use std::sync::{Arc, OnceLock};

use hickory_server::net::xfer::Protocol;
use libfuzzer_sys::fuzz_target;
use veer::control::Controller;
use veer::control::build::Base;
use veer::dns::Handler;
use veer::metrics::ServerStats;
use veer::store::{Snapshot, Store};

/// A zone with every kind of answer (static, CNAME chain, wildcard,
/// delegation) and a routed name, decided once.
fn setup() -> &'static (Handler, Snapshot) {
    static S: OnceLock<(Handler, Snapshot)> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.zone"),
            "$ORIGIN t.\n$TTL 300\n@ IN SOA ns hostmaster 1 7200 3600 1209600 60\n  IN NS ns\n\
             ns IN A 192.0.2.53\nwww IN A 192.0.2.80\n  IN AAAA 2001:db8::80\n\
             alias IN CNAME www\n*.w IN TXT \"wild\"\nsub IN NS ns.sub\nns.sub IN A 192.0.2.54\n",
        )
        .unwrap();
        let config = dir.path().join("veer.toml");
        std::fs::write(
            &config,
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[rrl]\nresponses_per_second = 0\n\
             [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n\
             [[route]]\nname = \"app.t.\"\ntype = \"A\"\npolicy = \"cidr\"\n\
             members = [ { networks = [\"10.0.0.0/8\"], value = \"10.1.1.1\" }, { default = true, value = \"192.0.2.1\" } ]\n",
        )
        .unwrap();
        let base = Base::load_path(&config, None).unwrap();
        let snap = Controller::offline(base, Some(&[])).unwrap().snapshot();
        let handler = Handler::new(
            Arc::new(Store::new(Snapshot::default())),
            Arc::new(ServerStats::default()),
        );
        (handler, snap)
    })
}

fuzz_target!(|data: &[u8]| {
    let (handler, snap) = setup();
    let src = "127.0.0.1:5300".parse().unwrap();
    for protocol in [Protocol::Udp, Protocol::Tcp] {
        let mut out = Vec::new();
        if handler.answer_packet(snap, data, src, protocol, &mut out) {
            assert!(out.len() >= 12, "short response");
            assert_eq!(out[..2], data[..2], "response to another ID");
            assert!(out[2] & 0x80 != 0, "QR not set");
        }
    }
    // As a UDP thread answers a batch: the name read ahead first (to load
    // its node), then the answer from that read.
    let mut ahead = veer::dns::fast::Ahead::new();
    veer::dns::fast::prefetch(snap, data, &mut ahead);
    let mut out = Vec::new();
    let mut tally = veer::metrics::Tally::default();
    let answered = handler.answer_packet_at(
        snap,
        data,
        src,
        None,
        Protocol::Udp,
        &mut out,
        &mut ahead,
        &mut tally,
    );
    let mut plain = Vec::new();
    assert_eq!(
        answered,
        handler.answer_packet(snap, data, src, Protocol::Udp, &mut plain),
        "read ahead, answered otherwise"
    );
    if answered {
        assert_eq!(out[..2], data[..2], "response to another ID");
        assert_eq!(out.len(), plain.len(), "read ahead, answered otherwise");
    }
});
