use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::*;
use crate::tsig::{Checked, Key, ResponseSigner};

const SECRET: &str = "2ZTWtuLVvRF1VqYXs4l1DX8hv6NTt9GkzSEEEhP4d2k=";
const OTHER_SECRET: &str = "6Oo0ZJb4uBUPGCFL3xAGeU0cb5gzr8gEvrHp1gN2FwE=";

fn n(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn zone() -> Name {
    n("example.test.")
}

fn soa(serial: u32) -> Record {
    Record::from_rdata(
        zone(),
        3600,
        RData::SOA(SOA::new(
            n("ns.example.test."),
            n("hostmaster.example.test."),
            serial,
            7200,
            3600,
            1_209_600,
            900,
        )),
    )
}

/// `label.example.test. A 192.0.2.last`.
fn a(label: &str, last: u8) -> Record {
    Record::from_rdata(
        n(&format!("{label}.example.test.")),
        300,
        RData::A(A::new(192, 0, 2, last)),
    )
}

fn key() -> Key {
    Key::new("xfr-key", "hmac-sha256", SECRET).unwrap()
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

fn serials(steps: &[Step]) -> Vec<(u32, u32)> {
    steps
        .iter()
        .map(|s| (serial(&s.from).unwrap(), serial(&s.to).unwrap()))
        .collect()
}

// ---- apply ----

fn zone_v1() -> Vec<Record> {
    vec![soa(1), a("www", 1), a("www", 2), a("mail", 3)]
}

#[test]
fn apply_removes_and_adds() {
    let steps = [
        Step {
            from: soa(1),
            to: soa(2),
            removed: vec![a("www", 2)],
            added: vec![a("ftp", 4)],
        },
        Step {
            from: soa(2),
            to: soa(3),
            removed: vec![a("mail", 3)],
            added: vec![a("mail", 5), a("www", 2)],
        },
    ];
    let got = apply(zone_v1(), &steps).unwrap();
    assert_eq!(
        got,
        vec![soa(3), a("www", 1), a("ftp", 4), a("mail", 5), a("www", 2)]
    );
    assert_eq!(serial(&got[0]), Some(3));
}

#[test]
fn apply_matches_names_without_case_and_ignores_ttl() {
    let mut removed = a("WWW", 1);
    removed.ttl = 1;
    let steps = [Step {
        from: soa(1),
        to: soa(2),
        removed: vec![removed],
        added: vec![],
    }];
    let got = apply(zone_v1(), &steps).unwrap();
    assert_eq!(got, vec![soa(2), a("www", 2), a("mail", 3)]);
}

#[test]
fn apply_adds_no_duplicates_and_keeps_the_new_ttl() {
    let mut again = a("Www", 1);
    again.ttl = 60;
    let steps = [Step {
        from: soa(1),
        to: soa(2),
        removed: vec![],
        added: vec![again.clone(), again],
    }];
    let got = apply(zone_v1(), &steps).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[1].ttl, 60);
}

#[test]
fn apply_compares_rdata_names_and_classes() {
    let cname = |target: &str| {
        Record::from_rdata(
            n("alias.example.test."),
            300,
            RData::CNAME(CNAME(n(target))),
        )
    };
    let held = vec![soa(1), cname("www.example.test.")];
    let step = |removed: Record| {
        [Step {
            from: soa(1),
            to: soa(2),
            removed: vec![removed],
            added: vec![],
        }]
    };
    assert!(apply(held.clone(), &step(cname("WWW.Example.Test."))).is_ok());
    assert!(apply(held.clone(), &step(cname("ftp.example.test."))).is_err());
    let mut chaos = cname("www.example.test.");
    chaos.dns_class = DNSClass::CH;
    assert!(apply(held, &step(chaos)).is_err());
}

#[test]
fn apply_refuses_a_broken_soa_chain() {
    let steps = [
        Step {
            from: soa(1),
            to: soa(2),
            removed: vec![],
            added: vec![a("x", 9)],
        },
        Step {
            from: soa(5),
            to: soa(6),
            removed: vec![],
            added: vec![],
        },
    ];
    let e = apply(zone_v1(), &steps).unwrap_err();
    assert!(
        e.contains("step 2 starts from serial 5, but the zone is at 2"),
        "{e}"
    );
    let e = apply(zone_v1(), &steps[1..]).unwrap_err();
    assert!(e.contains("zone is at 1"), "{e}");
}

#[test]
fn apply_refuses_removing_what_is_not_there() {
    let steps = [Step {
        from: soa(1),
        to: soa(2),
        removed: vec![a("www", 1), a("www", 1)],
        added: vec![],
    }];
    let e = apply(zone_v1(), &steps).unwrap_err();
    assert!(e.contains("does not hold"), "{e}");
    let steps = [Step {
        from: soa(1),
        to: soa(2),
        removed: vec![a("nope", 1)],
        added: vec![],
    }];
    assert!(apply(zone_v1(), &steps).is_err());
}

#[test]
fn apply_refuses_soa_changes_inside_steps_and_zones_without_one_soa() {
    let steps = [Step {
        from: soa(1),
        to: soa(2),
        removed: vec![],
        added: vec![soa(7)],
    }];
    assert!(apply(zone_v1(), &steps).is_err());
    assert!(apply(vec![a("www", 1)], &[]).is_err());
    assert!(apply(vec![soa(1), soa(2)], &[]).is_err());
}

#[test]
fn apply_is_linear_on_a_large_zone() {
    let records: Vec<Record> = std::iter::once(soa(1))
        .chain((0..100_000u32).map(|i| {
            Record::from_rdata(
                n(&format!("h{i}.example.test.")),
                300,
                RData::A(A::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
            )
        }))
        .collect();
    let steps: Vec<Step> = (1..=10u32)
        .map(|s| Step {
            from: soa(s),
            to: soa(s + 1),
            removed: vec![records[s as usize * 1000].clone()],
            added: vec![a(&format!("new{s}"), s as u8)],
        })
        .collect();
    let started = Instant::now();
    let got = apply(records, &steps).unwrap();
    let took = started.elapsed();
    assert_eq!(got.len(), 100_001);
    assert_eq!(serial(&got[0]), Some(11));
    // Quadratic would be minutes; linear is well under a second even in
    // a debug build.
    assert!(took < Duration::from_secs(10), "{took:?}");
}

// ---- the RFC 1995 state machine ----

/// Feeds `messages` to a transfer (IXFR from `have` if given); the outcome
/// and how many messages were read.
fn run(have: Option<u32>, messages: Vec<Vec<Record>>) -> Result<Option<(Outcome, usize)>, String> {
    let mut t = Transfer::new(zone(), have, 1000);
    for (i, m) in messages.into_iter().enumerate() {
        if let Some(o) = t.feed(m)? {
            return Ok(Some((o, i + 1)));
        }
    }
    Ok(None)
}

fn full(o: Outcome) -> Vec<Record> {
    match o {
        Outcome::Fetched(Fetched::Full(r)) => r,
        o => panic!("not a full zone: {o:?}"),
    }
}

fn steps(o: Outcome) -> Vec<Step> {
    match o {
        Outcome::Fetched(Fetched::Incremental(s)) => s,
        o => panic!("not incremental: {o:?}"),
    }
}

#[test]
fn axfr_over_several_messages() {
    let (o, read) = run(
        None,
        vec![
            vec![soa(5), a("www", 1)],
            vec![a("www", 2), a("WWW", 1)],
            vec![a("mail", 3), soa(5)],
        ],
    )
    .unwrap()
    .unwrap();
    assert_eq!(read, 3);
    // The repeat is dropped; the closing SOA is not kept.
    assert_eq!(
        full(o),
        vec![soa(5), a("www", 1), a("www", 2), a("mail", 3)]
    );
}

#[test]
fn axfr_with_the_soa_alone_in_the_first_message_goes_on() {
    let (o, read) = run(None, vec![vec![soa(5)], vec![a("www", 1), soa(5)]])
        .unwrap()
        .unwrap();
    assert_eq!(read, 2);
    assert_eq!(full(o).len(), 2);
    // A zone of only its SOA.
    let (o, _) = run(None, vec![vec![soa(5), soa(5)]]).unwrap().unwrap();
    assert_eq!(full(o), vec![soa(5)]);
}

#[test]
fn ixfr_answered_axfr_style() {
    let (o, _) = run(
        Some(3),
        vec![vec![soa(5), a("www", 1)], vec![a("mail", 2), soa(5)]],
    )
    .unwrap()
    .unwrap();
    assert_eq!(full(o), vec![soa(5), a("www", 1), a("mail", 2)]);
}

#[test]
fn ixfr_incremental_with_several_steps() {
    let (o, read) = run(
        Some(1),
        vec![
            vec![soa(4), soa(1), a("www", 1), soa(2), a("www", 2)],
            // An empty step, split across messages.
            vec![soa(2)],
            vec![soa(3), soa(3), a("www", 2), a("mail", 3), soa(4)],
            vec![a("ftp", 4), soa(4)],
        ],
    )
    .unwrap()
    .unwrap();
    assert_eq!(read, 4);
    let s = steps(o);
    assert_eq!(serials(&s), vec![(1, 2), (2, 3), (3, 4)]);
    assert_eq!(s[0].removed, vec![a("www", 1)]);
    assert_eq!(s[0].added, vec![a("www", 2)]);
    assert!(s[1].removed.is_empty() && s[1].added.is_empty());
    assert_eq!(s[2].removed, vec![a("www", 2), a("mail", 3)]);
    assert_eq!(s[2].added, vec![a("ftp", 4)]);
    let got = apply(zone_v1(), &s).unwrap();
    assert_eq!(got, vec![soa(4), a("ftp", 4)]);
}

#[test]
fn ixfr_lone_soa() {
    // Newer: ask AXFR.
    let (o, _) = run(Some(3), vec![vec![soa(4)]]).unwrap().unwrap();
    assert!(matches!(o, Outcome::AskAxfr(4)), "{o:?}");
    // The same serial, or older (RFC 1982: 2^31 - 1 ahead of 3 is not newer).
    for s in [3, 2, 3 + (1 << 31)] {
        let (o, _) = run(Some(3), vec![vec![soa(s)]]).unwrap().unwrap();
        assert!(
            matches!(o, Outcome::Fetched(Fetched::UpToDate)),
            "{s}: {o:?}"
        );
    }
    // Wrapped around: 1 is newer than 0xFFFF_FFF0.
    let (o, _) = run(Some(0xFFFF_FFF0), vec![vec![soa(1)]]).unwrap().unwrap();
    assert!(matches!(o, Outcome::AskAxfr(1)), "{o:?}");
}

#[test]
fn ixfr_not_newer_is_up_to_date_whatever_follows() {
    let (o, read) = run(Some(5), vec![vec![soa(5), a("www", 1)], vec![soa(5)]])
        .unwrap()
        .unwrap();
    assert_eq!(read, 1);
    assert!(matches!(o, Outcome::Fetched(Fetched::UpToDate)));
}

#[test]
fn truncated_sequences_are_incomplete() {
    // AXFR without its closing SOA.
    assert!(
        run(None, vec![vec![soa(5), a("www", 1)], vec![a("x", 2)]])
            .unwrap()
            .is_none()
    );
    // IXFR stopping inside a step.
    assert!(
        run(Some(1), vec![vec![soa(3), soa(1), a("www", 1), soa(2)]])
            .unwrap()
            .is_none()
    );
    // ... or after a complete step that does not reach the serial.
    assert!(
        run(
            Some(1),
            vec![vec![soa(3), soa(1), soa(2), a("x", 1)], vec![soa(2)]]
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn malformed_sequences_fail() {
    type Case = (Option<u32>, Vec<Vec<Record>>, &'static str);
    let cases: Vec<Case> = vec![
        (
            None,
            vec![vec![a("www", 1), soa(5)]],
            "is not the zone's SOA",
        ),
        (None, vec![vec![]], "no records"),
        (
            None,
            vec![vec![soa(5), a("www", 1), soa(4)]],
            "an SOA with serial 4 inside the zone",
        ),
        (
            None,
            vec![vec![soa(5), soa(4)]],
            "where the zone (serial 5) should follow",
        ),
        (
            None,
            vec![vec![
                soa(5),
                Record::from_rdata(n("www.example.org."), 300, RData::A(A::new(1, 2, 3, 4))),
            ]],
            "is not in zone example.test.",
        ),
        (
            None,
            vec![vec![soa(5), {
                let mut r = a("www", 1);
                r.dns_class = DNSClass::CH;
                r
            }]],
            "not IN",
        ),
        (
            None,
            vec![vec![soa(5), {
                let mut r = soa(5);
                r.name = n("sub.example.test.");
                r
            }]],
            "an SOA below the apex",
        ),
        (
            None,
            vec![vec![soa(5), a("www", 1), soa(5), a("x", 1)]],
            "after the closing SOA",
        ),
        (
            Some(1),
            vec![vec![soa(3), soa(2), soa(3), soa(3)]],
            "starts from serial 2, not ours (1)",
        ),
        (
            Some(1),
            vec![vec![soa(4), soa(1), soa(2), soa(3), soa(4), soa(4)]],
            "a step starts from serial 3, but the previous one ended at 2",
        ),
    ];
    for (have, messages, want) in cases {
        let e = run(have, messages.clone()).unwrap_err();
        assert!(e.contains(want), "{messages:?}: {e}");
    }
}

#[test]
fn too_many_records_fail() {
    let mut t = Transfer::new(zone(), None, 3);
    assert!(
        t.feed(vec![soa(5), a("a", 1), a("b", 2)])
            .unwrap()
            .is_none()
    );
    let e = t.feed(vec![soa(5)]).unwrap_err();
    assert!(e.contains("more than 3 records"), "{e}");
}

// ---- against a primary on loopback ----

/// What the test primary sends on one connection.
#[derive(Debug, Clone)]
enum Frame {
    /// A response with these answers (signed if the request was).
    Answers(Vec<Record>),
    /// An empty response with this RCODE.
    Rcode(ResponseCode),
    /// A response without a TSIG.
    Unsigned(Vec<Record>),
    /// A response with the second list's records under the TSIG made for
    /// the first list's.
    Forged(Vec<Record>, Vec<Record>),
    /// A response with another ID.
    WrongId(Vec<Record>),
    /// Bytes, framed as they are.
    Raw(Vec<u8>),
    /// A pause.
    Sleep(Duration),
    /// Close the connection now.
    Close,
}

type Script = Arc<dyn Fn(RecordType, Option<u32>) -> Vec<Frame> + Send + Sync>;

fn encode(req: &Message, first: bool, answers: &[Record], rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::response(req.metadata.id, OpCode::Query);
    m.metadata.authoritative = true;
    m.metadata.response_code = rcode;
    if first {
        m.add_queries(req.queries.clone());
    }
    m.add_answers(answers.iter().cloned());
    m.to_vec().unwrap()
}

async fn send(s: &mut TcpStream, msg: &[u8]) {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    let _ = s.write_all(&framed).await;
}

/// A primary on 127.0.0.1 answering every transfer request with
/// `script(qtype, client serial)`, signed when the request is signed with
/// `key` (rejected, as a server does, when signed with another).
async fn primary(key: Option<Key>, script: Script) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_one(s, key.clone(), script.clone()));
        }
    });
    addr
}

async fn serve_one(mut s: TcpStream, key: Option<Key>, script: Script) {
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut raw).await.unwrap();
    let req = Message::from_vec(&raw).unwrap();
    let mut signer: Option<ResponseSigner> = None;
    if let Some(k) = &key {
        match crate::tsig::check_request(std::slice::from_ref(k), &raw, crate::tsig::now()) {
            Checked::Valid { signer: sg, .. } => signer = Some(sg),
            Checked::Unsigned => {}
            Checked::Rejected(r) => {
                send(&mut s, &r.reply(&raw)).await;
                return;
            }
        }
    }
    let q = &req.queries[0];
    let client = req.authorities.iter().find_map(serial);
    let mut first = true;
    for f in script(q.query_type(), client) {
        let mut sign = |msg: &mut Vec<u8>| {
            if let Some(sg) = signer.as_mut() {
                sg.sign(msg, crate::tsig::now()).unwrap();
            }
        };
        let msg = match f {
            Frame::Answers(rrs) => {
                let mut m = encode(&req, first, &rrs, ResponseCode::NoError);
                sign(&mut m);
                m
            }
            Frame::Rcode(rcode) => {
                let mut m = encode(&req, first, &[], rcode);
                sign(&mut m);
                m
            }
            Frame::Unsigned(rrs) => encode(&req, first, &rrs, ResponseCode::NoError),
            Frame::Forged(signed, sent) => {
                let mut m = encode(&req, first, &signed, ResponseCode::NoError);
                let unsigned = m.len();
                sign(&mut m);
                let tsig = m[unsigned..].to_vec();
                let mut f = encode(&req, first, &sent, ResponseCode::NoError);
                f.extend_from_slice(&tsig);
                f[11] += 1;
                f
            }
            Frame::WrongId(rrs) => {
                let mut m = encode(&req, first, &rrs, ResponseCode::NoError);
                m[1] = m[1].wrapping_add(1);
                m
            }
            Frame::Raw(b) => b,
            Frame::Sleep(d) => {
                tokio::time::sleep(d).await;
                continue;
            }
            Frame::Close => return,
        };
        send(&mut s, &msg).await;
        first = false;
    }
    // Stay open until the client is done, as a server does.
    let mut sink = [0u8; 64];
    while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
}

fn script(f: impl Fn(RecordType, Option<u32>) -> Vec<Frame> + Send + Sync + 'static) -> Script {
    Arc::new(f)
}

fn src(address: SocketAddr, key: Option<Key>) -> Source {
    Source { address, key }
}

/// An AXFR answer of `count` A records in messages of 100.
fn big_axfr(serial: u32, count: u32) -> Vec<Frame> {
    let rrs: Vec<Record> = std::iter::once(soa(serial))
        .chain((0..count).map(|i| {
            Record::from_rdata(
                n(&format!("h{i}.example.test.")),
                300,
                RData::A(A::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
            )
        }))
        .chain(std::iter::once(soa(serial)))
        .collect();
    rrs.chunks(100)
        .map(|c| Frame::Answers(c.to_vec()))
        .collect()
}

#[tokio::test]
async fn fetches_a_signed_axfr_of_many_messages() {
    let addr = primary(Some(key()), script(|_, _| big_axfr(7, 2000))).await;
    let got = fetch(&zone(), &src(addr, Some(key())), None, limits())
        .await
        .unwrap();
    let Fetched::Full(rrs) = got else {
        panic!("{got:?}")
    };
    assert_eq!(rrs.len(), 2001);
    assert_eq!(rrs[0], soa(7));
}

#[tokio::test]
async fn fetches_unsigned_when_no_key() {
    let addr = primary(None, script(|_, _| big_axfr(7, 10))).await;
    let got = fetch(&zone(), &src(addr, None), None, limits())
        .await
        .unwrap();
    assert!(matches!(got, Fetched::Full(r) if r.len() == 11));
}

#[tokio::test]
async fn a_bad_or_missing_tsig_on_any_message_fails_the_fetch() {
    let cases: Vec<(Vec<Frame>, &str)> = vec![
        (
            vec![
                Frame::Answers(vec![soa(7), a("www", 1)]),
                Frame::Unsigned(vec![a("x", 1)]),
                Frame::Answers(vec![soa(7)]),
            ],
            "message 2: TSIG: the response is not TSIG-signed",
        ),
        (
            vec![
                Frame::Answers(vec![soa(7), a("www", 1)]),
                Frame::Forged(vec![a("x", 1)], vec![a("evil", 66)]),
                Frame::Answers(vec![soa(7)]),
            ],
            "message 2: TSIG: the response's MAC does not verify",
        ),
        (
            vec![Frame::Forged(
                vec![soa(7), a("www", 1), soa(7)],
                vec![soa(7), a("www", 2), soa(7)],
            )],
            "message 1: TSIG: the response's MAC does not verify",
        ),
    ];
    for (frames, want) in cases {
        let addr = primary(Some(key()), script(move |_, _| frames.clone())).await;
        let e = fetch(&zone(), &src(addr, Some(key())), None, limits())
            .await
            .unwrap_err();
        assert!(e.contains(want), "{e}");
        assert!(
            e.starts_with(&format!("AXFR of example.test. from {addr}: ")),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_primary_with_another_secret_is_refused() {
    let theirs = Key::new("xfr-key", "hmac-sha256", OTHER_SECRET).unwrap();
    let addr = primary(Some(theirs), script(|_, _| big_axfr(7, 10))).await;
    let e = fetch(&zone(), &src(addr, Some(key())), None, limits())
        .await
        .unwrap_err();
    assert!(
        e.contains("answered NOTAUTH") && e.contains("BADSIG"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unsigned_answer_to_a_signed_request_fails() {
    // The primary does not know the key's name and answers unsigned.
    let addr = primary(None, script(|_, _| big_axfr(7, 10))).await;
    let e = fetch(&zone(), &src(addr, Some(key())), None, limits())
        .await
        .unwrap_err();
    assert!(e.contains("not TSIG-signed"), "{e}");
}

#[tokio::test]
async fn fetches_an_incremental_answer_and_applies_it() {
    let addr = primary(
        Some(key()),
        script(|qtype, client| {
            assert_eq!((qtype, client), (RecordType::IXFR, Some(1)));
            vec![
                Frame::Answers(vec![soa(3), soa(1), a("www", 1), soa(2)]),
                Frame::Answers(vec![a("www", 9), soa(2), soa(3), a("ftp", 4), soa(3)]),
            ]
        }),
    )
    .await;
    let got = fetch(&zone(), &src(addr, Some(key())), Some(&soa(1)), limits())
        .await
        .unwrap();
    let Fetched::Incremental(s) = got else {
        panic!("{got:?}")
    };
    assert_eq!(serials(&s), vec![(1, 2), (2, 3)]);
    let zone = apply(zone_v1(), &s).unwrap();
    assert_eq!(
        zone,
        vec![soa(3), a("www", 2), a("mail", 3), a("www", 9), a("ftp", 4)]
    );
}

#[tokio::test]
async fn a_lone_newer_soa_falls_back_to_axfr_once() {
    let addr = primary(
        Some(key()),
        script(|qtype, _| match qtype {
            RecordType::IXFR => vec![Frame::Answers(vec![soa(9)])],
            _ => big_axfr(9, 5),
        }),
    )
    .await;
    let got = fetch(&zone(), &src(addr, Some(key())), Some(&soa(3)), limits())
        .await
        .unwrap();
    assert!(
        matches!(&got, Fetched::Full(r) if r.len() == 6 && r[0] == soa(9)),
        "{got:?}"
    );

    // An AXFR answered with a lone SOA too: an error, not a loop.
    let addr = primary(None, script(|_, _| vec![Frame::Answers(vec![soa(9)])])).await;
    let quick = Limits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let e = fetch(&zone(), &src(addr, None), Some(&soa(3)), quick)
        .await
        .unwrap_err();
    assert!(e.starts_with("AXFR of example.test."), "{e}");
    assert!(e.contains("no complete message within"), "{e}");
}

#[tokio::test]
async fn a_lone_soa_not_newer_is_up_to_date() {
    let addr = primary(None, script(|_, _| vec![Frame::Answers(vec![soa(3)])])).await;
    let got = fetch(&zone(), &src(addr, None), Some(&soa(3)), limits())
        .await
        .unwrap();
    assert!(matches!(got, Fetched::UpToDate), "{got:?}");
}

#[tokio::test]
async fn transfers_that_end_early_fail() {
    let quick = Limits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let head = || Frame::Answers(vec![soa(7), a("www", 1)]);
    let cases: Vec<(Vec<Frame>, Limits, &str)> = vec![
        (
            vec![head(), Frame::Close],
            limits(),
            "closed the connection after 1 messages and 2 records",
        ),
        (
            vec![Frame::Close],
            limits(),
            "closed the connection after 0 messages",
        ),
        (
            vec![head(), Frame::Sleep(Duration::from_secs(2))],
            quick,
            "no complete message within 300ms",
        ),
        (
            vec![head(), Frame::WrongId(vec![soa(7)])],
            limits(),
            "message 2: ID",
        ),
        (
            vec![Frame::Raw(vec![1, 2, 3])],
            limits(),
            "a message of 3 bytes",
        ),
        (
            vec![Frame::Rcode(ResponseCode::Refused)],
            limits(),
            "the primary answered REFUSED",
        ),
        (
            vec![Frame::Answers(vec![a("www", 1)])],
            limits(),
            "is not the zone's SOA",
        ),
        (
            big_axfr(7, 500),
            Limits {
                max_records: 300,
                ..limits()
            },
            "more than 300 records",
        ),
        (
            big_axfr(7, 500),
            Limits {
                max_bytes: 5000,
                ..limits()
            },
            "more bytes than the limit allows",
        ),
    ];
    for (frames, lim, want) in cases {
        let addr = primary(None, script(move |_, _| frames.clone())).await;
        let e = fetch(&zone(), &src(addr, None), None, lim)
            .await
            .unwrap_err();
        assert!(
            e.to_lowercase().contains(&want.to_lowercase()),
            "want {want:?}: {e}"
        );
    }
}

#[tokio::test]
async fn garbage_after_a_valid_header_fails() {
    // A header with our ID and QR, then junk where the records should be.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.unwrap();
            let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut raw).await.unwrap();
            let mut m = vec![raw[0], raw[1], 0x84, 0, 0, 0, 0, 5, 0, 0, 0, 0];
            m.extend_from_slice(&[0xc0, 0xff, 1, 2, 3]);
            send(&mut s, &m).await;
            let _ = s.read(&mut len).await;
        });
        addr
    };
    let e = fetch(&zone(), &src(addr, None), None, limits())
        .await
        .unwrap_err();
    assert!(e.contains("message 1 does not parse"), "{e}");
}

// ---- SOA queries ----

/// A UDP (and, on the same port, TCP) server answering SOA queries with
/// `answer(request, over_tcp)`, signed when the request is.
async fn soa_server(
    key: Option<Key>,
    answer: impl Fn(&Message, bool) -> Message + Send + Sync + 'static,
) -> SocketAddr {
    let answer = Arc::new(answer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let udp = UdpSocket::bind(addr).await.unwrap();
    let respond = {
        let key = key.clone();
        move |raw: &[u8], tcp: bool, answer: &dyn Fn(&Message, bool) -> Message| {
            let req = Message::from_vec(raw).unwrap();
            let mut signer = None;
            if let Some(k) = &key
                && let Checked::Valid { signer: s, .. } =
                    crate::tsig::check_request(std::slice::from_ref(k), raw, crate::tsig::now())
            {
                signer = Some(s);
            }
            let mut out = answer(&req, tcp).to_vec().unwrap();
            if let Some(s) = signer.as_mut() {
                s.sign(&mut out, crate::tsig::now()).unwrap();
            }
            out
        }
    };
    let r2 = respond.clone();
    let a2 = answer.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((len, from)) = udp.recv_from(&mut buf).await {
            let out = respond(&buf[..len], false, &*answer);
            let _ = udp.send_to(&out, from).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.unwrap();
            let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut raw).await.unwrap();
            let out = r2(&raw, true, &*a2);
            send(&mut s, &out).await;
        }
    });
    addr
}

fn soa_answer(req: &Message, record: Record) -> Message {
    let mut m = Message::response(req.metadata.id, OpCode::Query);
    m.metadata.authoritative = true;
    m.add_queries(req.queries.clone());
    m.add_answer(record);
    m
}

#[tokio::test]
async fn soa_serial_over_udp_signed() {
    let addr = soa_server(Some(key()), |req, tcp| {
        assert!(!tcp);
        assert!(req.edns.is_some());
        soa_answer(req, soa(42))
    })
    .await;
    let got = soa_serial(&zone(), &src(addr, Some(key())), limits()).await;
    assert_eq!(got, Ok(42));
}

#[tokio::test]
async fn soa_serial_goes_to_tcp_on_tc() {
    let addr = soa_server(Some(key()), |req, tcp| {
        if tcp {
            soa_answer(req, soa(43))
        } else {
            let mut m = Message::response(req.metadata.id, OpCode::Query);
            m.metadata.truncation = true;
            m.add_queries(req.queries.clone());
            m
        }
    })
    .await;
    let got = soa_serial(&zone(), &src(addr, Some(key())), limits()).await;
    assert_eq!(got, Ok(43));
}

#[tokio::test]
async fn soa_serial_refuses_what_is_not_the_zones_authoritative_soa() {
    let quick = Limits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let not_aa = soa_server(None, |req, _| {
        let mut m = soa_answer(req, soa(1));
        m.metadata.authoritative = false;
        m
    })
    .await;
    let e = soa_serial(&zone(), &src(not_aa, None), quick)
        .await
        .unwrap_err();
    assert!(e.contains("not authoritative"), "{e}");

    let other_owner = soa_server(None, |req, _| {
        let mut r = soa(1);
        r.name = n("test.");
        soa_answer(req, r)
    })
    .await;
    let e = soa_serial(&zone(), &src(other_owner, None), quick)
        .await
        .unwrap_err();
    assert!(
        e.contains("the answer's SOA is for test., not example.test."),
        "{e}"
    );

    let refused = soa_server(None, |req, _| {
        let mut m = Message::response(req.metadata.id, OpCode::Query);
        m.metadata.response_code = ResponseCode::Refused;
        m.add_queries(req.queries.clone());
        m
    })
    .await;
    let e = soa_serial(&zone(), &src(refused, None), quick)
        .await
        .unwrap_err();
    assert!(e.contains("answered REFUSED"), "{e}");

    // Signed request, unsigned answer: skipped until the timeout.
    let unsigned = soa_server(None, |req, _| soa_answer(req, soa(1))).await;
    let e = soa_serial(&zone(), &src(unsigned, Some(key())), quick)
        .await
        .unwrap_err();
    assert!(e.contains("not TSIG-signed"), "{e}");
}
