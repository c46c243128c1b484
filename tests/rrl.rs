//! Not a reflector: response rate limiting, as a spoofed flood meets it.
//! One name flooded from 127.0.0.1 is held to the configured rate (every
//! `slip`-th limited reply truncated, the rest dropped) while another /24
//! (127.0.1.0/24) and other names are answered in full; TCP and queries
//! with a valid server cookie are never limited.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@       300 IN SOA ns1 hostmaster 1000 7200 3600 1209600 60
        IN  NS  ns1
ns1     IN  A   192.0.2.53
www     IN  A   192.0.2.80
mail    IN  A   192.0.2.25
";

fn start(rate: u32) -> (tempfile::TempDir, Veer) {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "example.test.zone", ZONE);
    let config = write_file(
        dir.path(),
        "veer.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
             [rrl]\nresponses_per_second = {rate}\nslip = 2\n\n\
             [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n"
        ),
    );
    let veer = Veer::start(&config);
    (dir, veer)
}

/// A query for `name A` with EDNS and, when given, a COOKIE option.
fn query(id: u16, name: &str, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut q = wire::query(id, 0, name, 1);
    q[11] = 1; // ARCOUNT: the OPT record
    let opt: Vec<u8> = match cookie {
        Some(c) => [&10u16.to_be_bytes()[..], &(c.len() as u16).to_be_bytes(), c].concat(),
        None => Vec::new(),
    };
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&(opt.len() as u16).to_be_bytes());
    q.extend(opt);
    q
}

/// Responses to a burst, by kind, and the bytes each way.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    truncated: usize,
    badcookie: usize,
    silent: usize,
    bytes_in: usize,
    bytes_out: usize,
}

/// How long a query of a flood waits for its reply (most are dropped).
const FLOOD_WAIT: Duration = Duration::from_millis(20);
/// How long a query that must be answered waits: long, so that a busy
/// machine's late reply is not taken for a limited one.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Sends `n` queries for `name` from `local` as fast as replies allow
/// (each waits at most `wait`), and tallies what came back.
fn burst(
    local: &str,
    to: SocketAddr,
    name: &str,
    n: usize,
    cookie: Option<&[u8]>,
    wait: Duration,
) -> Tally {
    let s = UdpSocket::bind(format!("{local}:0")).unwrap();
    s.connect(to).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut t = Tally::default();
    let mut buf = [0u8; 1500];
    for i in 0..n {
        let id = i as u16;
        let q = query(id, name, cookie);
        t.bytes_in += q.len();
        s.send(&q).unwrap();
        // The reply to this query (a late reply to an earlier one is
        // counted in bytes, not as this one's).
        let reply = loop {
            match s.recv(&mut buf) {
                Ok(len) => {
                    t.bytes_out += len;
                    if u16::from_be_bytes([buf[0], buf[1]]) == id {
                        break Some(len);
                    }
                }
                Err(_) => break None,
            }
        };
        match reply {
            Some(_) => {
                let ancount = u16::from_be_bytes([buf[6], buf[7]]);
                if buf[2] & 0x02 != 0 {
                    t.truncated += 1;
                } else if buf[3] & 0x0f == 7 {
                    t.badcookie += 1;
                } else if ancount > 0 {
                    t.answered += 1;
                }
            }
            None => t.silent += 1,
        }
    }
    t
}

#[test]
fn a_flood_for_one_name_is_held_to_the_rate_and_others_are_answered() {
    let (_dir, veer) = start(20);
    let addr = veer.addr;
    // The flood (10x the rate for about a second) and, at the same time,
    // a legitimate resolver in another /24 asking for the same name.
    let legit = std::thread::spawn(move || {
        let mut t = Tally::default();
        for _ in 0..10 {
            let one = burst("127.0.1.5", addr, "www.example.test", 1, None, ANSWER_WAIT);
            t.answered += one.answered;
            t.silent += one.silent + one.truncated;
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    });
    let started = Instant::now();
    let flood = burst("127.0.0.1", addr, "www.example.test", 300, None, FLOOD_WAIT);
    let took = started.elapsed();
    let legit = legit.join().unwrap();
    println!(
        "flood of 300 in {took:?} at rate 20/s: {} answered, {} truncated, {} dropped; bytes out/in {:.2}; the other /24: {}/10 answered",
        flood.answered,
        flood.truncated,
        flood.silent,
        flood.bytes_out as f64 / flood.bytes_in as f64,
        legit.answered
    );
    // At most the bucket (20) plus what 20/s refills during the flood.
    let allowed = 20 + (took.as_secs_f64() * 20.0).ceil() as usize + 2;
    assert!(flood.answered <= allowed, "{flood:?}, allowed {allowed}");
    assert!(flood.answered >= 20, "{flood:?}");
    let limited = flood.truncated + flood.silent;
    assert!(
        flood.truncated.abs_diff(limited / 2) <= 2,
        "every 2nd limited reply slips: {flood:?}"
    );
    assert!(flood.bytes_out <= flood.bytes_in, "amplified: {flood:?}");
    assert_eq!(legit.answered, 10, "the other network was limited");

    // Another name from the flooded network has its own bucket.
    let mail = burst(
        "127.0.0.1",
        addr,
        "mail.example.test",
        10,
        None,
        ANSWER_WAIT,
    );
    assert_eq!(mail.answered, 10, "{mail:?}");

    // TCP is never limited, even for the flooded name.
    for i in 0..10 {
        let resp = wire::tcp_exchange(
            addr,
            &wire::query(0x7000 + i, 0, "www.example.test", 1),
            Duration::from_secs(2),
        )
        .expect("TCP answer");
        assert_eq!(u16::from_be_bytes([resp[6], resp[7]]), 1, "TCP answer {i}");
    }
    let m = veer.dig(&["www.example.test", "A", "+tcp"]);
    assert_eq!(m.status, "NOERROR");
}

#[test]
fn a_valid_server_cookie_is_never_limited() {
    let (_dir, veer) = start(5);
    let client = [9u8, 8, 7, 6, 5, 4, 3, 2];
    // Exhaust the bucket, then learn a server cookie from a reply (a
    // truncated one carries it too).
    let _ = burst(
        "127.0.0.1",
        veer.addr,
        "www.example.test",
        20,
        None,
        FLOOD_WAIT,
    );
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(veer.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut full = None;
    let mut buf = [0u8; 1500];
    for i in 0..10 {
        s.send(&query(0x100 + i, "www.example.test", Some(&client)))
            .unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            // The COOKIE option is the OPT's last 28 bytes: code, length,
            // client cookie and the 16-byte server cookie.
            let opt = &buf[n - 28..n];
            assert_eq!(&opt[..4], &[0, 10, 0, 24], "no cookie in the reply");
            full = Some(opt[4..].to_vec());
            break;
        }
    }
    let full = full.expect("no reply carried a cookie");
    let with_cookie = burst(
        "127.0.0.1",
        veer.addr,
        "www.example.test",
        50,
        Some(&full),
        ANSWER_WAIT,
    );
    assert_eq!(with_cookie.answered, 50, "{with_cookie:?}");
    // Across a reload the (generated) secret and the exhausted bucket stay:
    // the cookie is still valid, and without it the client is still limited.
    veer.signal("HUP");
    veer.expect_log("reload applied", Duration::from_secs(10));
    let after = burst(
        "127.0.0.1",
        veer.addr,
        "www.example.test",
        50,
        Some(&full),
        ANSWER_WAIT,
    );
    assert_eq!(after.answered, 50, "after a reload: {after:?}");
    let plain = burst(
        "127.0.0.1",
        veer.addr,
        "www.example.test",
        20,
        None,
        FLOOD_WAIT,
    );
    assert!(
        plain.answered < 20,
        "the bucket was reset by the reload: {plain:?}"
    );
}

#[test]
fn a_flood_carrying_client_cookies_is_limited_too() {
    // A client cookie is 8 bytes anyone can add: it must not turn limiting
    // off. Where a truncated reply would slip, the client gets BADCOOKIE
    // instead; the rest is dropped as for any flood.
    let (_dir, veer) = start(20);
    let flood = burst(
        "127.0.0.1",
        veer.addr,
        "www.example.test",
        200,
        Some(&[5u8; 8]),
        FLOOD_WAIT,
    );
    println!("cookie flood of 200 at 20/s: {flood:?}");
    let limited = flood.badcookie + flood.silent;
    assert!(flood.answered <= 20 + 20 * 3, "{flood:?}");
    assert!(flood.badcookie.abs_diff(limited / 2) <= 2, "{flood:?}");
    assert_eq!(flood.truncated, 0, "{flood:?}");
    assert!(flood.bytes_out <= flood.bytes_in * 3 / 2, "{flood:?}");
}
