//! Malformed input: the server survives bursts of garbage over UDP and TCP,
//! answers malformed queries whose header parses with FORMERR, never gives a
//! normal answer to a response packet, and still answers the next query.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::wire::{self, Header, Rng};
use common::*;

const TIMEOUT: Duration = Duration::from_secs(2);

/// The server still gives the right answer, over UDP and TCP, and is alive.
#[track_caller]
fn assert_healthy(veer: &mut Veer) {
    for transport in ["+notcp", "+tcp"] {
        let r = veer.dig(&["www.example.test", "A", transport]);
        assert_eq!(r.status, "NOERROR", "{}", r.raw);
        assert!(r.has_flag("aa"), "{}", r.raw);
        assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    }
    assert!(veer.is_running(), "veer exited; logs:\n{}", veer.logs());
    assert!(
        !veer.logs().contains("panicked"),
        "veer panicked; logs:\n{}",
        veer.logs()
    );
}

/// A well-formed query for www.example.test A.
fn good_query(id: u16) -> Vec<u8> {
    wire::query(id, 0, "www.example.test", wire::TYPE_A)
}

/// Malformed messages whose 12-byte header is intact, with their ids.
fn broken_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let q = wire::question("www.example.test", wire::TYPE_A, wire::CLASS_IN);
    let mut cases = Vec::new();
    let with = |id: u16, qd, an, ns, ar, body: &[u8]| {
        let mut m = wire::header(id, 0, qd, an, ns, ar);
        m.extend_from_slice(body);
        m
    };
    cases.push(("QDCOUNT=1, no question", with(0x0101, 1, 0, 0, 0, &[])));
    cases.push((
        "question claims 5 answers that are not there",
        with(0x0102, 1, 5, 0, 0, &q),
    ));
    cases.push((
        "claims 3 authority and 2 additional records",
        with(0x0103, 1, 0, 3, 2, &q),
    ));
    cases.push(("QDCOUNT=3, one question", with(0x0104, 3, 0, 0, 0, &q)));
    cases.push((
        "question without type and class",
        with(0x0105, 1, 0, 0, 0, &wire::name("www.example.test")),
    ));
    cases.push((
        "label runs past the end",
        with(0x0106, 1, 0, 0, 0, b"\x3fabc"),
    ));
    cases.push((
        "compression pointer to itself",
        with(0x0107, 1, 0, 0, 0, b"\xc0\x0c\x00\x01\x00\x01"),
    ));
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    cases.push((
        "name longer than 255 bytes",
        with(0x0108, 1, 0, 0, 0, &long),
    ));
    let mut opt = q.clone();
    opt.extend_from_slice(b"\x00\x00\x29");
    cases.push(("truncated OPT record", with(0x0109, 1, 0, 0, 1, &opt)));
    cases
}

#[test]
fn malformed_query_with_a_parsable_header_gets_formerr() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    for (what, msg) in broken_bodies() {
        let id = Header::parse(&msg).unwrap().id;
        let resp = wire::udp_exchange(veer.addr, &msg, TIMEOUT)
            .unwrap_or_else(|| panic!("{what}: no response"));
        let h = Header::parse(&resp).unwrap_or_else(|| panic!("{what}: short response"));
        assert_eq!(h.id, id, "{what}: {h:?}");
        assert!(h.qr(), "{what}: {h:?}");
        assert_eq!(h.rcode(), wire::FORMERR, "{what}: {h:?}");
        assert_eq!((h.ancount, h.nscount), (0, 0), "{what}: {h:?}");
        assert!(!h.aa(), "{what}: {h:?}");
    }
    assert_healthy(&mut veer);
}

#[test]
fn response_packet_sent_as_query_gets_no_normal_answer() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    // Silence is the expected outcome, so this waits for a (short) timeout:
    // send every variant first, then collect whatever comes back.
    let sock = wire::udp_socket(veer.addr, Duration::from_millis(500));
    for (id, flags) in [
        (0x0201, wire::QR),
        (0x0202, wire::QR | wire::AA),
        (0x0203, wire::QR | wire::opcode(4)),
        (0x0204, wire::QR | wire::RD),
    ] {
        let msg = wire::query(id, flags, "www.example.test", wire::TYPE_A);
        sock.send(&msg).expect("send");
    }
    // A real query last, on the same socket: proves replies do reach us.
    sock.send(&good_query(0x0205)).expect("send");
    let mut answered = false;
    let mut buf = [0; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        let h = Header::parse(&buf[..n]).expect("response header");
        if h.id == 0x0205 && !answered {
            assert_eq!((h.rcode(), h.ancount), (wire::NOERROR, 1), "{h:?}");
            answered = true;
            continue;
        }
        assert!(
            h.ancount == 0 && h.rcode() != wire::NOERROR,
            "a response packet got a normal answer: {h:?}"
        );
    }
    assert!(answered, "the real query got no answer");
    assert_healthy(&mut veer);
}

#[test]
fn udp_garbage_burst_leaves_the_server_answering() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    let mut rng = Rng::new(0x5eed_0fbe_ef00);
    let sock = wire::udp_socket(veer.addr, Duration::from_millis(100));
    let mut sent = 0;
    let mut send = |m: &[u8]| {
        // The server may answer (FORMERR) or not; send errors such as
        // ECONNREFUSED from an earlier ICMP are irrelevant here.
        let _ = sock.send(m);
        sent += 1;
    };
    // Random bytes of every length up to 64, then of random lengths.
    for len in 0..=64 {
        send(&rng.bytes(len));
    }
    for _ in 0..300 {
        let len = rng.below(1500) as usize;
        send(&rng.bytes(len));
    }
    // A plausible header (query, QDCOUNT=1) followed by random bytes.
    for _ in 0..200 {
        let len = rng.below(300) as usize;
        let mut m = wire::header(rng.next_u64() as u16, 0, 1, 0, 0, 0);
        m.extend(rng.bytes(len));
        send(&m);
    }
    // Truncated headers (< 12 bytes) and truncated queries.
    let good = good_query(0x0301);
    for len in 0..good.len() {
        send(&good[..len]);
    }
    // Headers claiming records that are not there, and other broken bodies.
    for (_, m) in broken_bodies() {
        send(&m);
    }
    // A response packet as a query.
    send(&wire::query(
        0x0302,
        wire::QR | wire::AA,
        "www.example.test",
        1,
    ));
    // A good query with flipped bits, many times.
    for _ in 0..200 {
        let mut m = good.clone();
        let i = rng.below(m.len() as u64) as usize;
        m[i] ^= 1 << rng.below(8);
        send(&m);
    }
    assert!(sent > 800);
    // Drain whatever came back, then check the server.
    let mut buf = [0; 4096];
    while sock.recv(&mut buf).is_ok() {}
    assert_healthy(&mut veer);
}

/// Opens a TCP connection to `addr` with timeouts set.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

#[test]
fn tcp_garbage_and_truncated_frames_leave_the_server_answering() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    let addr = veer.addr;
    let mut rng = Rng::new(0x07c9_f4a3);
    let good = good_query(0x0401);

    // Connections left open with a partial frame while the server must go
    // on answering others.
    let mut held = Vec::new();
    for bytes in [
        vec![0x01],                          // half a length prefix
        vec![0x00, 0x40],                    // a length prefix, nothing after it
        [&[0x00, 0xff][..], &good].concat(), // claims 255 bytes, sends fewer
    ] {
        let mut s = connect(addr);
        s.write_all(&bytes).unwrap();
        held.push(s);
    }

    // Truncated frames, then close.
    for cut in 1..good.len() + 2 {
        let mut framed = (good.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&good);
        let mut s = connect(addr);
        let _ = s.write_all(&framed[..cut]);
    }
    // A length prefix then close; a zero-length frame.
    for bytes in [&[0x00, 0x20][..], &[0x00, 0x00], &[0xff, 0xff]] {
        let mut s = connect(addr);
        let _ = s.write_all(bytes);
    }
    // Garbage: random bytes, and random frames with a correct length.
    for _ in 0..30 {
        let mut s = connect(addr);
        let len = 1 + rng.below(2000) as usize;
        let _ = s.write_all(&rng.bytes(len));
    }
    for _ in 0..30 {
        let len = rng.below(600) as usize;
        let body = rng.bytes(len);
        let mut framed = (body.len() as u16).to_be_bytes().to_vec();
        framed.extend(body);
        let mut s = connect(addr);
        let _ = s.write_all(&framed);
        // Whatever the server does (FORMERR, close), it must not hang us.
        let mut sink = [0; 1024];
        let _ = s.read(&mut sink);
    }
    // Malformed queries with a parsable header over TCP get FORMERR too.
    for (what, msg) in broken_bodies() {
        let resp = wire::tcp_exchange(addr, &msg, TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: no TCP response: {e}"));
        let h = Header::parse(&resp).unwrap_or_else(|| panic!("{what}: short response"));
        assert_eq!(h.rcode(), wire::FORMERR, "{what} over TCP: {h:?}");
    }

    // With the held connections still open, others are answered, including
    // two queries pipelined on one connection.
    assert_healthy(&mut veer);
    let mut s = connect(addr);
    let mut two = Vec::new();
    for id in [0x0501u16, 0x0502] {
        let q = good_query(id);
        two.extend((q.len() as u16).to_be_bytes());
        two.extend(q);
    }
    s.write_all(&two).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut len = [0; 2];
        s.read_exact(&mut len).expect("pipelined response length");
        let mut m = vec![0; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m).expect("pipelined response");
        let h = Header::parse(&m).expect("header");
        assert_eq!((h.rcode(), h.ancount), (wire::NOERROR, 1), "{h:?}");
        ids.push(h.id);
    }
    ids.sort();
    assert_eq!(ids, [0x0501, 0x0502]);
    drop(held);
    assert_healthy(&mut veer);
}
