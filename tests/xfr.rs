//! Zone transfers out, as dig and a raw TCP client see them: AXFR in
//! several messages with the SOA first and last, IXFR from the journal
//! after a health transition, the SOA alone when up to date, the whole
//! zone when the journal does not reach back; one snapshot per transfer
//! even while a transition publishes a new one; refusals; malformed
//! requests.

#[path = "support/admin.rs"]
mod admin;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RData;

/// A zone of `hosts` A records plus apex data, and a failover route on
/// `app.t.` whose primary follows the file check `p`.
fn start(hosts: usize, allow: &str) -> (tempfile::TempDir, Veer) {
    start_with(hosts, allow, "")
}

/// [`start`] with `zone_extra` lines in the `[[zone]]` table and an
/// `[api]` on an ephemeral port.
fn start_with(hosts: usize, allow: &str, zone_extra: &str) -> (tempfile::TempDir, Veer) {
    let dir = tempfile::tempdir().unwrap();
    let mut zone = String::from(
        "$ORIGIN t.\n$TTL 300\n@ SOA ns hostmaster 100 7200 3600 1209600 900\n@ NS ns\nns A 192.0.2.53\n",
    );
    for i in 0..hosts {
        zone.push_str(&format!(
            "h{i} A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    write_file(dir.path(), "t.zone", &zone);
    std::fs::create_dir_all(dir.path().join("health")).unwrap();
    set_health(dir.path(), "p", "up");
    let config = write_file(
        dir.path(),
        "veer.toml",
        &format!(
            r#"[server]
listen = ["127.0.0.1:0"]
[rrl]
responses_per_second = 0
[check.p]
file = "health/p"
interval = "50ms"
[api]
listen = "127.0.0.1:0"
[transfer]
notify_timeout = "200ms"
notify_retries = 3
[[zone]]
origin = "t."
file = "t.zone"
allow_transfer = [ {allow} ]
{zone_extra}
[[route]]
name = "app.t."
type = "A"
ttl = 30
policy = "failover"
members = [ {{ value = "192.0.2.1", check = "p", tier = 1 }}, {{ value = "192.0.2.2", tier = 2 }} ]
"#
        ),
    );
    let veer = Veer::start(&config);
    (dir, veer)
}

/// `dig +tcp` for a transfer: the records, and dig's summary line.
fn transfer(addr: SocketAddr, args: &[&str]) -> (Vec<Rr>, String) {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            "+tcp",
            "+time=5",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rrs = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(parse_rr)
        .collect();
    (rrs, text)
}

fn serial_of(rr: &Rr) -> u32 {
    assert_eq!(rr.rtype, "SOA", "{rr:?}");
    rr.data.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn served_serial(veer: &Veer) -> u32 {
    let d = dig(veer.addr, &["t.", "SOA"]);
    serial_of(&d.answer_of("SOA")[0].clone())
}

/// Waits until the served serial differs from `old`; returns it.
fn next_serial(veer: &Veer, old: u32) -> u32 {
    let mut now = old;
    assert!(
        wait_until(Duration::from_secs(10), || {
            now = served_serial(veer);
            now != old
        }),
        "serial stayed {old}\n{}",
        veer.logs()
    );
    now
}

fn app_values(rrs: &[Rr]) -> Vec<String> {
    let mut v: Vec<String> = rrs
        .iter()
        .filter(|r| r.name == "app.t." && r.rtype == "A")
        .map(|r| r.data.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn axfr_then_ixfr_after_a_transition() {
    let (dir, veer) = start(2000, r#"{ network = "127.0.0.0/8" }"#);
    let s0 = served_serial(&veer);
    let (rrs, text) = transfer(veer.addr, &["t.", "AXFR"]);
    assert_eq!(rrs.len(), 2000 + 2 + 2 + 1, "{text}");
    assert_eq!(
        (serial_of(&rrs[0]), serial_of(rrs.last().unwrap())),
        (s0, s0)
    );
    assert_eq!(app_values(&rrs), ["192.0.2.1"]);
    let messages: usize = text
        .split("messages ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("dig's XFR size line");
    assert!(messages >= 3, "about 16 KiB per message: {text}");

    // The primary goes down: one new serial; IXFR from s0 is exactly the
    // difference.
    set_health(dir.path(), "p", "down");
    let s1 = next_serial(&veer, s0);
    let (ixfr, text) = transfer(veer.addr, &["t.", &format!("IXFR={s0}")]);
    let shape: Vec<String> = ixfr
        .iter()
        .map(|r| match r.rtype.as_str() {
            "SOA" => format!("SOA {}", serial_of(r)),
            _ => format!("{} {}", r.name, r.data),
        })
        .collect();
    assert_eq!(
        shape,
        [
            format!("SOA {s1}"),
            format!("SOA {s0}"),
            "app.t. 192.0.2.1".into(),
            format!("SOA {s1}"),
            "app.t. 192.0.2.2".into(),
            format!("SOA {s1}"),
        ],
        "{text}"
    );
    // A reload of the same files keeps the journal.
    veer.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || veer
        .logs()
        .contains("reload applied")));
    let (again, text) = transfer(veer.addr, &["t.", &format!("IXFR={s0}")]);
    assert_eq!(
        again.len(),
        6,
        "still the difference after a reload: {text}"
    );
    assert!(!veer.logs().contains("IXFR restarts"), "{}", veer.logs());
    // Up to date: the SOA alone; over UDP too.
    let (same, text) = transfer(veer.addr, &["t.", &format!("IXFR={s1}")]);
    assert_eq!(same.len(), 1, "{text}");
    assert_eq!(serial_of(&same[0]), s1);
    let (udp, text) = transfer(veer.addr, &["+notcp", "t.", &format!("IXFR={s0}")]);
    assert!(text.contains("(UDP)"), "{text}");
    assert_eq!(udp.len(), 6, "a small IXFR fits in UDP: {text}");
    // Older than the journal: the whole zone, in IXFR form.
    let (whole, text) = transfer(veer.addr, &["t.", &format!("IXFR={}", s0.wrapping_sub(7))]);
    assert_eq!(whole.len(), 2000 + 2 + 2 + 1, "{text}");
    assert_eq!(app_values(&whole), ["192.0.2.2"]);
    veer.expect_log("IXFR of t.", Duration::from_secs(5));
}

/// An AXFR request, raw, with a client whose receive buffer is small, so
/// veer's writer waits for it.
fn slow_client(addr: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns until
    // it is handed to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 only")
        };
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

fn read_message(s: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

#[test]
fn one_transfer_is_one_snapshot_while_a_transition_publishes() {
    let (dir, veer) = start(150_000, r#"{ network = "127.0.0.0/8" }"#);
    let s0 = served_serial(&veer);
    let mut c = slow_client(veer.addr);
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut q = wire::query(7, 0, "t.", 252);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.append(&mut q);
    c.write_all(&framed).unwrap();
    let first = read_message(&mut c);
    assert!(first.metadata.authoritative);
    // A transition publishes a new serial while the transfer is open.
    set_health(dir.path(), "p", "down");
    let s1 = next_serial(&veer, s0);
    assert!(
        !veer.logs().contains("AXFR of t."),
        "the transfer ended before the change: the test needs a bigger zone \
         (more than the kernel's send and receive buffers hold)"
    );
    let mut answers = first.answers.clone();
    let mut messages = 1;
    let started = Instant::now();
    loop {
        let m = read_message(&mut c);
        assert!(m.metadata.authoritative, "AA on every message");
        messages += 1;
        let end = m
            .answers
            .last()
            .is_some_and(|r| matches!(r.data, RData::SOA(_)));
        answers.extend(m.answers);
        if end || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let serials: Vec<u32> = answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
        .collect();
    assert_eq!(serials, [s0, s0], "SOA first and last, the old serial");
    let app: Vec<String> = answers
        .iter()
        .filter(|r| r.name.to_string() == "app.t.")
        .map(|r| r.data.to_string())
        .collect();
    assert_eq!(app, ["192.0.2.1"], "the old snapshot's answer, not {s1}'s");
    assert_eq!(answers.len(), 150_000 + 2 + 2 + 1);
    println!("{messages} messages; serial {s1} published during the transfer");
}

/// Sends `msg` over TCP and returns the first response.
fn tcp_ask(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    wire::tcp_exchange(addr, msg, Duration::from_secs(5)).expect("an answer")
}

#[test]
fn refusals_and_malformed_requests() {
    let (_dir, veer) = start(10, r#"{ network = "10.0.0.0/8" }"#);
    let s0 = served_serial(&veer);
    let rcode = |resp: &[u8]| resp[3] & 0xf;
    // Outside the ACL: REFUSED; a zone not served here: NOTAUTH (9).
    assert_eq!(
        rcode(&tcp_ask(veer.addr, &wire::query(1, 0, "t.", 252))),
        wire::REFUSED
    );
    assert_eq!(
        rcode(&tcp_ask(veer.addr, &wire::query(2, 0, "other.", 252))),
        9
    );
    veer.expect_log("transfer refused to 127.0.0.1", Duration::from_secs(5));
    // Garbage behind a transfer question, a second question, a cut-off
    // message: an error answer or a closed connection, never a crash.
    let mut trailing = wire::query(3, 0, "t.", 252);
    trailing.extend_from_slice(&[0xff; 40]);
    let _ = wire::tcp_exchange(veer.addr, &trailing, Duration::from_secs(2));
    let mut two = wire::query(4, 0, "t.", 252);
    two[5] = 2;
    let _ = wire::tcp_exchange(veer.addr, &two, Duration::from_secs(2));
    let mut cut = wire::query(5, 0, "t.", 252);
    cut.truncate(cut.len() - 1);
    let _ = wire::tcp_exchange(veer.addr, &cut, Duration::from_secs(2));
    // UDP AXFR is refused.
    let udp = wire::udp_exchange(
        veer.addr,
        &wire::query(6, 0, "t.", 252),
        Duration::from_secs(2),
    )
    .expect("an answer");
    assert_eq!(rcode(&udp), wire::REFUSED);
    assert_eq!(served_serial(&veer), s0, "nothing served changed");
}

#[test]
fn ixfr_without_the_clients_soa_is_formerr() {
    let (_dir, veer) = start(10, r#"{ network = "127.0.0.0/8" }"#);
    let resp = tcp_ask(veer.addr, &wire::query(1, 0, "t.", 251));
    assert_eq!(resp[3] & 0xf, wire::FORMERR);
}

/// The serial a NOTIFY carries (its SOA hint), if `msg` is one.
fn notify_serial(msg: &[u8]) -> Option<u32> {
    let m = Message::from_vec(msg).ok()?;
    if m.metadata.op_code != hickory_proto::op::OpCode::Notify {
        return None;
    }
    m.answers.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    })
}

/// The acknowledgement of a NOTIFY: the same message with QR set.
fn ack(msg: &[u8]) -> Vec<u8> {
    let mut r = msg.to_vec();
    r[2] |= 0x80;
    r
}

#[test]
fn notify_is_retried_coalesced_and_shown() {
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (dir, veer) = start_with(
        10,
        r#"{ network = "127.0.0.0/8" }"#,
        &format!(
            "notify = [ {{ address = \"{}\" }} ]",
            target.local_addr().unwrap()
        ),
    );
    let api = admin::Admin::from_logs(&veer.logs(), "");
    let s0 = served_serial(&veer);
    let mut buf = [0u8; 4096];
    let mut recv = |deadline: Duration| -> Option<(Vec<u8>, SocketAddr, Instant)> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Ok((n, from)) = target.recv_from(&mut buf) {
                return Some((buf[..n].to_vec(), from, Instant::now()));
            }
        }
        None
    };
    // At start: a NOTIFY for s0. Left unanswered, it comes again after
    // notify_timeout (200 ms), then after twice that; the third is
    // answered. (The first may wait in the socket while the test starts,
    // so the gap is measured between the second and the third.)
    let (first, _, _) = recv(Duration::from_secs(5)).expect("a NOTIFY at start");
    assert_eq!(notify_serial(&first), Some(s0));
    let (second, _, t2) = recv(Duration::from_secs(5)).expect("a retry");
    assert_eq!(notify_serial(&second), Some(s0));
    let (third, from, t3) = recv(Duration::from_secs(5)).expect("a second retry");
    assert_eq!(notify_serial(&third), Some(s0));
    let gap = t3 - t2;
    assert!(
        gap >= Duration::from_millis(300),
        "the timeout doubles: {gap:?}"
    );
    target.send_to(&ack(&third), from).unwrap();
    let acked = |serial: u32| {
        wait_until(Duration::from_secs(5), || {
            api.status()["transfers"][0]["notify"][0]["serial_acked"] == serial
        })
    };
    assert!(acked(s0), "{}", api.status());

    // Two transitions before the target answers: the newer serial
    // replaces the older one, which is not announced again after it.
    set_health(dir.path(), "p", "down");
    let s1 = next_serial(&veer, s0);
    set_health(dir.path(), "p", "up");
    let s2 = next_serial(&veer, s1);
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if let Some((m, from, _)) = recv(Duration::from_millis(200)) {
            let s = notify_serial(&m);
            seen.push(s);
            if s == Some(s2) {
                target.send_to(&ack(&m), from).unwrap();
                break;
            }
        }
    }
    assert_eq!(
        seen.last(),
        Some(&Some(s2)),
        "the newest serial is announced: {seen:?}"
    );
    assert!(acked(s2), "{}", api.status());
    // Nothing older follows.
    let late = recv(Duration::from_millis(600));
    assert!(late.is_none(), "after the ack: {late:?}");
    // The status page lists the target with what it acknowledged.
    let page = api.get("/").body;
    let table = page
        .split("id=\"secondaries\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no secondaries table:\n{page}"));
    assert!(
        table.contains(&target.local_addr().unwrap().to_string())
            && table.contains(&format!("<td>{s2}")),
        "{table}"
    );
    let m = api.metrics();
    assert!(m.value("veer_notify_total", &[("result", "acknowledged")]) >= Some(2.0));
}

#[test]
fn a_cname_route_transfers_one_cname() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "t.zone",
        "$ORIGIN t.\n$TTL 300\n@ SOA ns hostmaster 100 7200 3600 1209600 900\n@ NS ns\nns A 192.0.2.53\n",
    );
    let config = write_file(
        dir.path(),
        "veer.toml",
        r#"[server]
listen = ["127.0.0.1:0"]
[rrl]
responses_per_second = 0
[[zone]]
origin = "t."
file = "t.zone"
allow_transfer = [ { network = "127.0.0.0/8" } ]
[[route]]
name = "app.t."
type = "CNAME"
ttl = 30
policy = "failover"
members = [ { value = "a.example.", tier = 1 }, { value = "b.example.", tier = 1 } ]
[[route]]
name = "w.t."
type = "CNAME"
ttl = 30
policy = "weighted"
members = [ { value = "c.example.", weight = 1 }, { value = "d.example.", weight = 1 } ]
"#,
    );
    let veer = Veer::start(&config);
    let (rrs, text) = transfer(veer.addr, &["t.", "AXFR"]);
    let cnames: Vec<String> = rrs
        .iter()
        .filter(|r| r.rtype == "CNAME")
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(cnames, ["app.t. a.example.", "w.t. c.example."], "{text}");
}
