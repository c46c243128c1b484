//! The fast path against the general path (hickory's parser, `resolve`,
//! hickory's encoder) on a generated corpus: names that exist, do not,
//! hit a wildcard, a CNAME, a delegation, routes of every policy; types;
//! EDNS with and without DO, ECS and cookies; odd header bits; in an
//! unsigned and a signed zone. The RNG is seeded, and reseeded before
//! each path answers, so a weighted or multivalue choice is the same on
//! both. Every response the fast path sends must equal the general path's
//! after parsing (the cookie's server part aside, made a second apart at
//! worst), and for static data be byte for byte what hickory writes for
//! that message with the question as a compression target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;

use super::Fast;
use crate::control::Controller;
use crate::control::build::Base;
use crate::dns::Handler;
use crate::metrics::ServerStats;
use crate::store::{Snapshot, Store};

const ZONE: &str = "$ORIGIN t.\n$TTL 3600\n\
@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 900\n\
  IN NS ns\n\
  IN MX 10 mail\n\
  IN TXT \"v=spf1 -all\"\n\
ns IN A 192.0.2.53\n\
www IN A 192.0.2.80\n\
www IN AAAA 2001:db8::80\n\
Mixed IN A 192.0.2.81\n\
mail IN A 192.0.2.25\n\
mail IN AAAA 2001:db8::25\n\
alias IN CNAME www\n\
alias2 IN CNAME alias\n\
toroute IN CNAME fo\n\
tomx IN CNAME mx2\n\
anc.www IN CNAME www\n\
out IN CNAME www.example.\n\
*.wild IN A 192.0.2.99\n\
*.wild IN TXT \"w\"\n\
*.wild IN MX 10 mail\n\
sub IN NS ns.sub\n\
ns.sub IN A 192.0.2.54\n\
deep.empty IN A 192.0.2.7\n\
txt IN TXT \"a\" \"b\"\n\
_https._tcp IN SRV 0 5 443 www\n\
mx2 IN MX 10 mail\n\
mx2 IN MX 20 mx.example.\n";

const ROUTES: &str = r#"
[check.a]
file = "health/a"
[check.b]
file = "health/b"

[[route]]
name = "fo.t."
type = "A"
policy = "failover"
ttl = 30
min_ttl = 5
members = [
  { tier = 1, value = "192.0.2.1", check = "a" },
  { tier = 2, value = "192.0.2.2", check = "b" },
]

[[route]]
name = "down.t."
type = "A"
policy = "failover"
ttl = 20
members = [ { tier = 1, value = "192.0.2.3", check = "b" }, { tier = 2, value = "192.0.2.4" } ]

[[route]]
name = "w.t."
type = "A"
policy = "weighted"
members = [
  { value = "192.0.2.11", weight = 1 },
  { value = "192.0.2.12", weight = 1 },
  { value = "192.0.2.13", weight = 2 },
]

[[route]]
name = "mv.t."
type = "A"
policy = "multivalue"
max = 3
members = [ { value = "192.0.2.21" }, { value = "192.0.2.22" }, { value = "192.0.2.23" } ]

[[route]]
name = "net.t."
type = "A"
policy = "cidr"
members = [
  { networks = ["10.0.0.0/8", "2001:db8::/32"], value = "10.1.1.1" },
  { default = true, value = "192.0.2.50" },
]
"#;

/// A snapshot of `ZONE` and `ROUTES` (check `b` down), signed if asked.
fn snapshot(signed: bool, cookies: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
    if signed {
        crate::testutil::csk("t.", &dir.path().join("state/keys"), Duration::ZERO);
    }
    let path = dir.path().join("veer.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
             [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\ndnssec = {signed}\n\
             [rrl]\nresponses_per_second = 0\n{cookies}\n{ROUTES}"
        ),
    )
    .unwrap();
    let base = Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"));
    let c = Controller::offline(base, Some(&["b".to_string()])).unwrap();
    (dir, c.snapshot())
}

const NAMES: &[&str] = &[
    "t.",
    "T.",
    "ns.t.",
    "www.t.",
    "WWW.t.",
    "wWw.T.",
    "mixed.t.",
    "Mixed.t.",
    "mail.t.",
    "alias.t.",
    "ALIAS.t.",
    "alias2.t.",
    "toroute.t.",
    "tomx.t.",
    "anc.www.t.",
    "out.t.",
    "x.wild.t.",
    "a.b.wild.t.",
    "wild.t.",
    "sub.t.",
    "a.sub.t.",
    "ns.sub.t.",
    "empty.t.",
    "deep.empty.t.",
    "txt.t.",
    "_https._tcp.t.",
    "mx2.t.",
    "nope.t.",
    "a.nope.t.",
    "fo.t.",
    "down.t.",
    "w.t.",
    "mv.t.",
    "net.t.",
    "FO.t.",
    "example.",
    ".",
    "x.t.example.",
];

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::NS,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::DS,
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::ANY,
    RecordType::CAA,
];

/// One random query.
fn query(rng: &mut fastrand::Rng) -> (Vec<u8>, bool) {
    let name = NAMES[rng.usize(..NAMES.len())];
    let t = TYPES[rng.usize(..TYPES.len())];
    let mut m = Message::query();
    m.metadata.id = rng.u16(..);
    m.metadata.recursion_desired = rng.bool();
    m.metadata.checking_disabled = rng.u8(..4) == 0;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    let mut msg = m.to_vec().unwrap();
    if rng.u8(..4) == 0 {
        msg[3] |= 0x20; // AD, as dig sends
    }
    let edns = rng.u8(..5) != 0;
    if edns {
        msg[11] = 1;
        msg.push(0);
        msg.extend_from_slice(&41u16.to_be_bytes());
        let payload = [0u16, 512, 1232, 4096, 700][rng.usize(..5)];
        msg.extend_from_slice(&payload.to_be_bytes());
        msg.extend_from_slice(&[0, 0, if rng.bool() { 0x80 } else { 0 }, 0]);
        let mut opts = Vec::new();
        match rng.u8(..4) {
            0 => opts.extend(option(8, &[0, 1, 24, 0, 10, 2, 3])),
            1 => opts.extend(option(8, &[0, 1, 0, 0])),
            2 => opts.extend(option(8, &[0, 2, 48, 0, 0x20, 1, 0xd, 0xb8, 0, 1])),
            _ => {}
        }
        match rng.u8(..3) {
            0 => opts.extend(option(10, &rng.u64(..).to_be_bytes())),
            1 => opts.extend(option(12, &[0; 6])), // padding: ignored
            _ => {}
        }
        msg.extend_from_slice(&(opts.len() as u16).to_be_bytes());
        msg.extend_from_slice(&opts);
    }
    (msg, edns)
}

fn option(code: u16, data: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(data.len() as u16).to_be_bytes());
    o.extend_from_slice(data);
    o
}

/// A handler with no snapshot of its own (each test passes one) and fresh
/// counters.
/// The fast path's answer, without a name read ahead.
fn fast_answer(
    h: &Handler,
    snap: &Snapshot,
    msg: &[u8],
    src: SocketAddr,
    udp: bool,
    out: &mut Vec<u8>,
) -> Fast {
    let tally = &mut crate::metrics::Tally::default();
    super::answer(h, snap, msg, src, udp, out, &mut super::Ahead::new(), tally)
}

fn handler() -> Handler {
    Handler::new(
        Arc::new(Store::new(Snapshot::default())),
        Arc::new(ServerStats::default()),
    )
}

/// The general path's response, as hickory encodes it.
fn general(h: &Handler, snap: &Snapshot, msg: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    general_over(h, snap, msg, src, Protocol::Udp)
}

/// [`general`] over `protocol` (TCP: no size limit but the message's).
fn general_over(
    h: &Handler,
    snap: &Snapshot,
    msg: &[u8],
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let req = Request::from_bytes(msg.to_vec(), src, protocol).ok()?;
    let mut p = h.prepare(&req, snap);
    p.attach_cookie();
    if p.dropped() {
        return None;
    }
    let mut out = Vec::new();
    let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut out);
    enc.set_max_size(if protocol == Protocol::Udp {
        p.udp_limit()
    } else {
        u16::MAX
    });
    p.response(&req).destructive_emit(&mut enc).ok()?;
    Some(out)
}

/// `m` parsed, with the cookie's server part blanked.
fn parsed(m: &[u8]) -> Message {
    let mut m = Message::from_vec(m).unwrap_or_else(|e| panic!("{e}: {m:?}"));
    if let Some(e) = m.edns.as_mut() {
        let opts: Vec<_> = e.options().as_ref().to_vec();
        for (code, o) in opts {
            if let hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, d) = o {
                let mut d = d.clone();
                d[8..].fill(0);
                e.options_mut().remove(code);
                e.options_mut()
                    .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, d));
            }
        }
    }
    m
}

fn run(signed: bool, cookies: &str, n: usize) -> (usize, usize) {
    let (_d, snap) = snapshot(signed, cookies);
    let h = handler();
    let mut rng = fastrand::Rng::with_seed(0x5eed_0018);
    let (mut fast, mut identical) = (0, 0);
    // Kept from query to query, as a UDP thread keeps one per slot of its
    // batch: half the queries have their name read ahead (a batch's), the
    // others not (a batch of one), and none may see another's name.
    let mut ahead = super::Ahead::new();
    for i in 0..n {
        let (msg, _) = query(&mut rng);
        let src: SocketAddr = if rng.bool() {
            "127.0.0.1:5300".parse().unwrap()
        } else {
            "[2001:db8::1]:5300".parse().unwrap()
        };
        let seed = rng.u64(..);
        fastrand::seed(seed);
        let mut out = Vec::new();
        if i % 2 == 0 {
            super::prefetch(&snap, &msg, &mut ahead);
        }
        let tally = &mut crate::metrics::Tally::default();
        let f = super::answer(&h, &snap, &msg, src, true, &mut out, &mut ahead, tally);
        if f != Fast::Sent {
            assert_eq!(f, Fast::General, "nothing is rate limited here");
            continue;
        }
        fast += 1;
        fastrand::seed(seed);
        let g = general(&h, &snap, &msg, src).expect("the general path answers");
        let (pf, pg) = (parsed(&out), parsed(&g));
        assert_eq!(
            pf,
            pg,
            "query {i} {:?}: fast {out:?}\ngeneral {g:?}",
            Message::from_vec(&msg).map(|m| m.queries)
        );
        assert!(out.len() <= g.len(), "query {i}: longer than hickory's");
        // Static data (no route answered): exactly what hickory writes
        // for that message when the question is a compression target,
        // if the question is in the zone's case (lower: hickory compares
        // names byte for byte when it compresses).
        let q = &pg.queries[0];
        let routed = ["fo", "down", "w", "mv", "net"]
            .iter()
            .any(|r| q.name().to_ascii().to_lowercase() == format!("{r}.t."));
        let lower = q.name().to_ascii() == q.name().to_ascii().to_lowercase();
        // A negative answer's SOA is prepared against the apex: where its
        // MNAME or RNAME is the question or an ancestor below the apex,
        // hickory points into the question's longer suffix, the fast path
        // at the apex (both valid).
        let soa_in_question = pg.authorities.iter().any(|r| match &r.data {
            hickory_proto::rr::RData::SOA(soa) => {
                soa.mname.zone_of(q.name()) || soa.rname.zone_of(q.name())
            }
            _ => false,
        });
        if !routed && lower && !soa_in_question {
            let mut again = Message::from_vec(&g).unwrap();
            // The cookie as the fast path wrote it (same client part).
            again.edns = Message::from_vec(&out).unwrap().edns;
            assert_eq!(
                out,
                again.to_vec().unwrap(),
                "query {i} {q}: not byte-identical to hickory's"
            );
            identical += 1;
        }
    }
    (fast, identical)
}

#[test]
fn both_paths_agree_on_a_generated_corpus() {
    let (fast, identical) = run(false, "", 4000);
    eprintln!("unsigned: {fast} of 4000 on the fast path, {identical} byte-identical");
    assert!(fast > 1500 && identical > 500, "{fast} {identical}");
}

#[test]
fn both_paths_agree_with_cookies_on() {
    let (fast, identical) = run(false, "[cookies]\n", 2000);
    eprintln!("cookies: {fast} of 2000 on the fast path, {identical} byte-identical");
    assert!(fast > 700 && identical > 200, "{fast} {identical}");
}

#[test]
fn both_paths_agree_in_a_signed_zone() {
    let (fast, identical) = run(true, "", 4000);
    eprintln!("signed: {fast} of 4000 on the fast path, {identical} byte-identical");
    assert!(fast > 1000 && identical > 300, "{fast} {identical}");
}

/// Wildcards and one CNAME hop inside the zone are answered in place when
/// their records hold for the question as prepared; the rest (longer
/// chains, targets whose records point into a name) stays general. Both
/// give the same answer, byte for byte.
#[test]
fn wildcards_and_cname_hops_go_fast_when_their_bytes_hold() {
    let (_d, snap) = snapshot(false, "");
    let h = handler();
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let a = RecordType::A;
    for (name, t, fast) in [
        ("x.wild.t.", a, true),
        ("a.b.wild.t.", RecordType::TXT, true),
        ("x.wild.t.", RecordType::MX, false),
        ("alias.t.", a, true),
        ("alias.t.", RecordType::AAAA, true),
        ("anc.www.t.", RecordType::AAAA, true),
        ("toroute.t.", a, true),
        ("alias2.t.", a, false),
        ("tomx.t.", RecordType::MX, false),
        ("out.t.", a, false),
    ] {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        let msg = m.to_vec().unwrap();
        let mut out = Vec::new();
        let f = fast_answer(&h, &snap, &msg, src, true, &mut out);
        assert_eq!(f == Fast::Sent, fast, "{name} {t}");
        if fast {
            let g = general(&h, &snap, &msg, src).unwrap();
            assert!(!parsed(&g).answers.is_empty(), "{name} {t}");
            // What hickory writes for that message (its general path
            // writes a wildcard's owner in full, not as a pointer).
            if name != "toroute.t." {
                let again = Message::from_vec(&g).unwrap().to_vec().unwrap();
                assert_eq!(out, again, "{name} {t}");
            }
            assert_eq!(parsed(&out), parsed(&g), "{name} {t}");
        }
    }
}

/// A snapshot of one zone `origin` with the text `zone`.
fn zone_snapshot(origin: &str, zone: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("z.zone"), zone).unwrap();
    let path = dir.path().join("veer.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
             [[zone]]\norigin = \"{origin}\"\nfile = \"z.zone\"\n\
             [rrl]\nresponses_per_second = 0\n"
        ),
    )
    .unwrap();
    let base = Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"));
    (dir, Controller::offline(base, None).unwrap().snapshot())
}

/// The general path answers packed sets from a copy made for the
/// response and dropped with it: answers, additional data and glue.
/// Before, each set it answered kept its hickory copy for as long as the
/// zone, so one sweep of ANY queries brought a zone's memory back to what
/// it was before sets were packed.
#[test]
fn the_general_path_keeps_no_copy_of_packed_sets() {
    let (_dir, snap) = zone_snapshot(
        "p.test.",
        "$TTL 300\n@ SOA ns1 host 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n\
         www A 192.0.2.2\nwww AAAA 2001:db8::2\nwww TXT \"x\"\n@ MX 10 mail\n\
         mail A 192.0.2.3\nsub NS ns.sub\nns.sub A 192.0.2.4\n",
    );
    let h = handler();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let asked = [
        // ANY: one RRset (RFC 8482).
        ("www.p.test.", RecordType::ANY, 1),
        ("www.p.test.", RecordType::A, 1),
        ("p.test.", RecordType::MX, 1),
        ("p.test.", RecordType::NS, 1),
        ("x.sub.p.test.", RecordType::A, 0),
    ];
    for (name, t, answers) in asked {
        let q = query_ecs(&Name::from_ascii(name).unwrap(), t, None, None);
        let m = parsed(&general(&h, &snap, &q, src).expect("an answer"));
        assert_eq!(m.answers.len(), answers, "{name} {t}");
        if t == RecordType::MX || t == RecordType::NS || answers == 0 {
            // The target's address, or the glue of the referral.
            assert_eq!(m.additionals.len(), 1, "{name} {t}: {m:?}");
        }
    }
    let zone = snap.zone_for(&crate::zone::Key::new(
        &Name::from_ascii("p.test.").unwrap(),
    ));
    let sets: Vec<_> = zone.unwrap().static_sets().collect();
    assert!(sets.iter().filter(|(_, r)| r.is_packed()).count() >= 6);
    for (key, r) in sets {
        assert!(!r.keeps_a_copy(), "{key:?} {}", r.record_type());
    }
}

/// From a review: hickory's label count leaves out a leading `*`, which
/// shifted a negative answer's SOA pointers by one label in a zone whose
/// origin starts with one.
#[test]
fn a_wildcard_labelled_origin_shifts_the_soa_by_the_right_amount() {
    let (_d, snap) = zone_snapshot(
        "*.w.",
        "$ORIGIN *.w.\n$TTL 60\n@ IN SOA ns.*.w. h.*.w. 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n",
    );
    let h = handler();
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    for name in ["*.w.", "ns.*.w.", "nope.*.w.", "a.b.*.w."] {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::TXT,
        ));
        let msg = m.to_vec().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            fast_answer(&h, &snap, &msg, src, true, &mut out),
            Fast::Sent,
            "{name}"
        );
        let g = general(&h, &snap, &msg, src).unwrap();
        assert_eq!(parsed(&out), parsed(&g), "{name}");
    }
}

/// A snapshot of several zones (origin, text) and `extra` config, signed
/// if asked.
fn zones_snapshot_signed(
    zones: &[(&str, &str)],
    extra: &str,
    signed: bool,
) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
         [rrl]\nresponses_per_second = 0\n",
    );
    for (i, (origin, text)) in zones.iter().enumerate() {
        std::fs::write(dir.path().join(format!("z{i}.zone")), text).unwrap();
        if signed {
            crate::testutil::csk(origin, &dir.path().join("state/keys"), Duration::ZERO);
        }
        cfg.push_str(&format!(
            "[[zone]]\norigin = \"{origin}\"\nfile = \"z{i}.zone\"\ndnssec = {signed}\n"
        ));
    }
    cfg.push_str(extra);
    let path = dir.path().join("veer.toml");
    std::fs::write(&path, cfg).unwrap();
    let base = Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"));
    (dir, Controller::offline(base, None).unwrap().snapshot())
}

/// A query for `name` `t`: without EDNS, or with EDNS payload `payload`
/// and DO as given, and an ECS option's data.
fn query_ecs(name: &Name, t: RecordType, edns: Option<(u16, bool)>, ecs: Option<&[u8]>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.add_query(Query::query(name.clone(), t));
    let mut msg = m.to_vec().unwrap();
    if let Some((payload, dnssec)) = edns {
        msg[11] = 1;
        msg.push(0);
        msg.extend_from_slice(&41u16.to_be_bytes());
        msg.extend_from_slice(&payload.to_be_bytes());
        msg.extend_from_slice(&[0, 0, if dnssec { 0x80 } else { 0 }, 0]);
        let opts = ecs.map(|d| option(8, d)).unwrap_or_default();
        msg.extend_from_slice(&(opts.len() as u16).to_be_bytes());
        msg.extend_from_slice(&opts);
    }
    msg
}

/// Every name and type of the product, with and without EDNS and DO:
/// what the fast path sends must be what the general path sends (after
/// parsing), header flags included. Returns how many went fast.
fn compare_all(snap: &Snapshot, names: &[Name], types: &[RecordType]) -> usize {
    let h = handler();
    let src: SocketAddr = "192.0.2.200:5300".parse().unwrap();
    let mut fast = 0;
    for name in names {
        for &t in types {
            for (edns, ecs) in [
                (None, None),
                (Some((512, false)), None),
                (Some((1232, true)), None),
                (Some((4096, false)), None),
                (Some((1232, false)), Some(&[0u8, 1, 24, 0, 192, 0, 2][..])),
                (Some((1232, false)), Some(&[0u8, 1, 8, 0, 10][..])),
                (Some((1232, true)), Some(&[0u8, 1, 0, 0][..])),
            ] {
                let msg = query_ecs(name, t, edns, ecs);
                // Over TCP: no truncation, no rate limiting.
                let mut out = Vec::new();
                if fast_answer(&h, snap, &msg, src, false, &mut out) == Fast::Sent {
                    let g = general_over(&h, snap, &msg, src, Protocol::Tcp).unwrap();
                    assert_eq!(parsed(&out), parsed(&g), "{name} {t} {edns:?} over TCP");
                }
                let mut out = Vec::new();
                let f = fast_answer(&h, snap, &msg, src, true, &mut out);
                if f != Fast::Sent {
                    continue;
                }
                fast += 1;
                let g = general(&h, snap, &msg, src).expect("the general path answers");
                let (pf, pg) = (parsed(&out), parsed(&g));
                // hickory's general path does not compress against the
                // question: it may truncate what the fast path fits.
                if pg.metadata.truncation && !pf.metadata.truncation && out.len() < g.len() + 300 {
                    eprintln!(
                        "{name} {t} {edns:?}: the general path truncates, the fast path fits ({} bytes)",
                        out.len()
                    );
                    continue;
                }
                assert_eq!(pf, pg, "{name} {t} {edns:?}\nfast {out:?}\ngeneral {g:?}");
                // Names compare without case in hickory: compare the
                // owners as sent too.
                let owners = |m: &Message| -> Vec<String> {
                    m.answers.iter().map(|r| r.name.to_string()).collect()
                };
                if name.to_ascii() == name.to_ascii().to_lowercase() {
                    assert_eq!(
                        owners(&pf),
                        owners(&pg),
                        "{name} {t} {edns:?}: owners' case"
                    );
                }
            }
        }
    }
    fast
}

const TRICKY: &str = "$ORIGIN z.
$TTL 300
@ IN SOA ns hostmaster 1 7200 3600 1209600 60
@ IN NS ns
@ IN A 192.0.2.9
ns IN A 192.0.2.53
* IN A 192.0.2.1
* IN TXT \"apex\"
x IN A 192.0.2.2
x IN AAAA 2001:db8::2
a.x IN A 192.0.2.3
c2x IN CNAME x
c2X2 IN CNAME X
c2apex IN CNAME z.
c2self IN CNAME c2self
c2sub IN CNAME a.sub
sub IN NS ns.sub
ns.sub IN A 192.0.2.54
c2nssub IN CNAME ns.sub
c2wild IN CNAME foo.w
*.w IN A 192.0.2.66
*.w IN TXT \"w\"
c2ent IN CNAME ent
a.ent IN A 192.0.2.7
c2anc.x IN CNAME x
desc IN CNAME a.desc
a.desc IN A 192.0.2.8
c2multi IN CNAME multi
multi IN A 192.0.2.10
multi IN A 192.0.2.11
multi IN A 192.0.2.12
c2txt IN CNAME txt
txt IN TXT \"hello\" \"world\"
c2mx IN CNAME mx
mx IN MX 10 x
c2other IN CNAME www.other.
c2child IN CNAME www.child
c2route IN CNAME r
c2rc IN CNAME rc
c2big IN CNAME big
big IN TXT \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\" \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"
*.bw IN TXT \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\" \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"
c2c IN CNAME c2x
*.cw IN CNAME x
c2star IN CNAME *.w
ttl 30 IN CNAME x
mixed IN CNAME MiXeD.X
huge IN TXT \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\" \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\" \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\"
c2huge IN CNAME huge
*.hw IN TXT \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\" \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\" \"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh\"
MiXeD.x IN A 192.0.2.13
";

const TRICKY_ROUTES: &str = r#"
[[route]]
name = "r.z."
type = "A"
policy = "cidr"
members = [
  { networks = ["192.0.2.0/24"], value = "10.1.1.1" },
  { default = true, value = "192.0.2.50" },
]

[[route]]
name = "rc.z."
type = "CNAME"
policy = "cidr"
members = [
  { networks = ["192.0.2.0/24"], value = "x.z." },
  { default = true, value = "multi.z." },
]

[[route]]
name = "*.rwild.z."
type = "A"
policy = "cidr"
members = [
  { networks = ["192.0.2.0/24"], value = "10.1.1.2" },
  { default = true, value = "192.0.2.51" },
]

[[route]]
name = "*.rcw.z."
type = "CNAME"
policy = "cidr"
members = [
  { networks = ["192.0.2.0/24"], value = "x.z." },
  { default = true, value = "r.z." },
]

[[route]]
name = "rw.z."
type = "CNAME"
policy = "failover"
members = [ { tier = 1, value = "r.z." } ]
"#;

/// Wildcards (at the apex, under a delegation, with a `*` label in the
/// question) and CNAME hops of every shape: the fast path answers as the
/// general path does, case of the owners included.
#[test]
fn tricky_wildcards_and_cnames_agree() {
    tricky(false);
}

#[test]
fn tricky_wildcards_and_cnames_agree_signed() {
    tricky(true);
}

fn tricky(signed: bool) {
    let (_d, snap) = zones_snapshot_signed(
        &[
            ("z.", TRICKY),
            (
                "child.z.",
                "$ORIGIN child.z.\n@ 60 IN SOA ns.z. h.z. 1 2 3 4 5\n@ 60 IN NS ns.z.\nwww 60 IN A 192.0.2.77\n",
            ),
            (
                "other.",
                "$ORIGIN other.\n@ 60 IN SOA ns.z. h.z. 1 2 3 4 5\n@ 60 IN NS ns.z.\nwww 60 IN A 192.0.2.78\n",
            ),
        ],
        TRICKY_ROUTES,
        signed,
    );
    let mut names: Vec<String> = [
        "z.",
        "x.z.",
        "a.x.z.",
        "c2x.z.",
        "C2X.Z.",
        "c2x2.z.",
        "c2apex.z.",
        "c2self.z.",
        "c2sub.z.",
        "c2nssub.z.",
        "c2wild.z.",
        "c2ent.z.",
        "c2anc.x.z.",
        "C2ANC.X.z.",
        "desc.z.",
        "c2multi.z.",
        "c2txt.z.",
        "c2mx.z.",
        "c2other.z.",
        "c2child.z.",
        "c2route.z.",
        "c2rc.z.",
        "rc.z.",
        "rw.z.",
        "c2big.z.",
        "big.z.",
        "foo.bw.z.",
        "c2c.z.",
        "foo.cw.z.",
        "c2star.z.",
        "ttl.z.",
        "mixed.z.",
        "foo.rwild.z.",
        "*.rwild.z.",
        "foo.rcw.z.",
        "huge.z.",
        "c2huge.z.",
        "foo.hw.z.",
        "foo.z.",
        "FOO.z.",
        "a.b.z.",
        "*.z.",
        "*.w.z.",
        "a.*.w.z.",
        "foo.w.z.",
        "Foo.W.z.",
        "*.x.z.",
        "a.sub.z.",
        "x.sub.z.",
        "ent.z.",
        "x.ent.z.",
        "www.child.z.",
        "foo.child.z.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Names of 255 bytes (and 254, 253) under a wildcard and the apex
    // wildcard.
    for tail in ["w.z.", "z."] {
        for fill in 0..3 {
            let mut n = String::new();
            while n.len() + 64 + tail.len() < 255 - fill {
                n.push_str(&"a".repeat(63));
                n.push('.');
            }
            let rest = 255 - fill - 1 - n.len() - tail.len() - 1;
            if rest > 0 {
                n.push_str(&"b".repeat(rest));
                n.push('.');
            }
            n.push_str(tail);
            names.push(n);
        }
    }
    let names: Vec<Name> = names.iter().map(|n| Name::from_ascii(n).unwrap()).collect();
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::NS,
        RecordType::SOA,
        RecordType::SRV,
        RecordType::CAA,
    ];
    let fast = compare_all(&snap, &names, &types);
    eprintln!("{fast} answered fast");
    assert!(fast > 100, "{fast}");
}

/// Mangled queries (bytes flipped, cut, grown; label lengths, pointers,
/// counts): the fast path and the prefetch never panic, and whatever the
/// fast path sends the general path sends too.
#[test]
fn mangled_queries_do_not_panic() {
    let (_d, snap) = zones_snapshot_signed(&[("z.", TRICKY)], TRICKY_ROUTES, false);
    let h = handler();
    let src: SocketAddr = "192.0.2.200:5300".parse().unwrap();
    let names = [
        "foo.w.z.",
        "c2x.z.",
        "x.z.",
        "c2anc.x.z.",
        "foo.z.",
        "z.",
        "rc.z.",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut sent, n) = (0, 60_000);
    for _ in 0..n {
        let name = Name::from_ascii(names[rng.usize(..names.len())]).unwrap();
        let t = [RecordType::A, RecordType::TXT, RecordType::AAAA][rng.usize(..3)];
        let edns = rng.bool().then(|| (rng.u16(..), rng.bool()));
        let mut msg = query_ecs(&name, t, edns, None);
        for _ in 0..rng.usize(1..4) {
            match rng.u8(..6) {
                _ if msg.is_empty() => msg.push(0),
                0 => {
                    let i = rng.usize(..msg.len());
                    msg[i] = rng.u8(..);
                }
                1 => msg.truncate(rng.usize(..msg.len())),
                2 => {
                    let i = rng.usize(..=msg.len());
                    let b = rng.u8(..);
                    msg.insert(i, b);
                }
                3 if msg.len() > 13 => {
                    // A label length or a pointer somewhere in the name.
                    let i = rng.usize(12..msg.len().min(40));
                    msg[i] = [0xc0, 0x40, 64, 0xff, 0x3f, 0][rng.usize(..6)];
                }
                4 if msg.len() > 12 => {
                    let i = rng.usize(4..12);
                    msg[i] = rng.u8(..3);
                }
                _ => {
                    // More labels.
                    let extra: Vec<u8> = (0..rng.usize(1..40)).flat_map(|_| [1, b'a']).collect();
                    if msg.len() > 12 {
                        msg.splice(12..12, extra);
                    }
                }
            }
        }
        let mut ahead = super::Ahead::new();
        super::prefetch(&snap, &msg, &mut ahead);
        let mut out = Vec::new();
        let tally = &mut crate::metrics::Tally::default();
        if super::answer(&h, &snap, &msg, src, true, &mut out, &mut ahead, tally) == Fast::Sent {
            sent += 1;
            let g = general(&h, &snap, &msg, src).expect("the general path answers");
            let (pf, pg) = (parsed(&out), parsed(&g));
            if !pg.metadata.truncation || pf.metadata.truncation {
                assert_eq!(pf, pg, "{msg:?}");
            }
        }
    }
    eprintln!("{sent} of {n} mangled queries answered fast");
}

/// Random small zones of wildcards, CNAMEs (to names that may or may not
/// exist), delegations and data at names of labels `a`, `b`, `*`: every
/// name of up to four such labels, asked every type, is answered by the
/// fast path as by the general path.
#[test]
fn random_zones_of_wildcards_and_cnames_agree() {
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x7e57),
    );
    let labels = ["a", "b", "*", "A"];
    let name = |rng: &mut fastrand::Rng, max: usize| -> String {
        let n = rng.usize(1..=max);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(labels[rng.usize(..labels.len())]);
            s.push('.');
        }
        s.push_str("r.");
        s
    };
    let mut all = vec!["r.".to_string()];
    for n in 1..=4 {
        let mut next = Vec::new();
        for s in all.iter().filter(|s| s.matches('.').count() == n) {
            for l in ["a", "b", "*", "A", "c"] {
                next.push(format!("{l}.{s}"));
            }
        }
        all.extend(next);
    }
    let names: Vec<Name> = all.iter().map(|n| Name::from_ascii(n).unwrap()).collect();
    let types = [
        RecordType::A,
        RecordType::TXT,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::NS,
    ];
    let mut fast = 0;
    // More with ROUNDS and another SEED.
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for _ in 0..rounds {
        let mut zone = String::from(
            "$ORIGIN r.\n$TTL 60\n@ IN SOA ns.r. h.r. 1 2 3 4 5\n@ IN NS ns.r.\nns IN A 192.0.2.1\n",
        );
        let mut cnames = std::collections::HashSet::new();
        let mut owners = std::collections::HashSet::new();
        for i in 0..rng.usize(4..14) {
            let owner = name(&mut rng, 3);
            let key = owner.to_lowercase();
            match rng.u8(..6) {
                0 | 1 if !cnames.contains(&key) => {
                    zone.push_str(&format!("{owner} IN A 192.0.2.{}\n", 10 + i));
                    owners.insert(key);
                }
                2 if !cnames.contains(&key) => {
                    zone.push_str(&format!("{owner} IN TXT \"t{i}\"\n"));
                    owners.insert(key);
                }
                3 if !cnames.contains(&key) && !owners.contains(&key) => {
                    let target = name(&mut rng, 4);
                    zone.push_str(&format!("{owner} IN CNAME {target}\n"));
                    cnames.insert(key);
                }
                4 if !cnames.contains(&key) && !owner.starts_with('*') => {
                    zone.push_str(&format!(
                        "{owner} IN NS ns.{owner}\nns.{owner} IN A 192.0.2.9\n"
                    ));
                    owners.insert(key);
                }
                _ if !cnames.contains(&key) => {
                    zone.push_str(&format!("{owner} IN MX 10 {}\n", name(&mut rng, 2)));
                    owners.insert(key);
                }
                _ => {}
            }
        }
        let (_d, snap) = zones_snapshot_signed(&[("r.", &zone)], "", rng.bool());
        fast += compare_all(&snap, &names, &types);
    }
    eprintln!("{fast} answered fast");
}

/// From a review (the general path, before and after the fast path's
/// wildcards): hickory writes the question as sent and does not compress
/// against it, so an answer's first owner goes out in full (hickory-server
/// 0.26.3 `QueriesEmitAndCount::emit` stores the question's bytes as a
/// compression target with its type and class, which no name matches). A wildcard's
/// answer to a 255-byte name is 287 bytes from the fast path and over 512
/// from the general path, which truncates it (TC, no records): the same
/// query is answered or sent to TCP depending on the path it takes (with
/// DO in a signed zone, or with `require_cookie`, it takes the general
/// one). Ignored: fails until the general path compresses against the
/// question.
#[test]
#[ignore]
fn the_general_path_does_not_truncate_a_long_names_wildcard_answer_that_fits() {
    let (_d, snap) = zones_snapshot_signed(&[("z.", TRICKY)], "", false);
    let h = handler();
    let src: SocketAddr = "192.0.2.200:5300".parse().unwrap();
    let long = format!(
        "{a}.{a}.{a}.{b}.w.z.",
        a = "a".repeat(63),
        b = "b".repeat(57)
    );
    let name = Name::from_ascii(&long).unwrap();
    let msg = query_ecs(&name, RecordType::A, None, None);
    assert_eq!(msg.len(), 12 + 255 + 4, "a 255-byte name");
    let mut out = Vec::new();
    assert_eq!(
        fast_answer(&h, &snap, &msg, src, true, &mut out),
        Fast::Sent
    );
    assert!(out.len() < 300 && !parsed(&out).metadata.truncation);
    let g = parsed(&general(&h, &snap, &msg, src).unwrap());
    assert!(!g.metadata.truncation, "the general path truncates");
    assert_eq!(g.answers.len(), 1);
}

/// Rate limiting: a wildcard's answers share the wildcard's bucket, a
/// CNAME hop's the name's, NODATA and NXDOMAIN the zone's, on both paths:
/// the same queries are sent, slipped and dropped in the same order.
#[test]
fn both_paths_rate_limit_wildcards_and_cname_hops_alike() {
    let (_d, snap) = zones_snapshot_signed(&[("z.", TRICKY)], "", false);
    let mut snap = snap;
    snap.rrl = Arc::new(crate::rrl::Config {
        responses_per_second: 2,
        slip: 2,
        ..Default::default()
    });
    let src: SocketAddr = "192.0.2.200:5300".parse().unwrap();
    let mut queries = Vec::new();
    for i in 0..8 {
        for (name, t) in [
            (format!("f{i}.w.z."), RecordType::A),
            (format!("g{i}.W.z."), RecordType::TXT),
            ("c2x.z.".to_string(), RecordType::A),
            ("C2X.z.".to_string(), RecordType::A),
            (format!("f{i}.w.z."), RecordType::MX),
            (format!("n{i}.*.w.z."), RecordType::A),
            (format!("q{i}.z."), RecordType::A),
        ] {
            queries.push(query_ecs(&Name::from_ascii(&name).unwrap(), t, None, None));
        }
    }
    let outcome = |m: Option<Vec<u8>>| -> &'static str {
        match m {
            None => "dropped",
            Some(m) if parsed(&m).metadata.truncation => "slipped",
            Some(_) => "sent",
        }
    };
    let (fast_h, general_h) = (handler(), handler());
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for q in &queries {
        let mut out = Vec::new();
        let sent = fast_h.answer_packet(&snap, q, src, Protocol::Udp, &mut out);
        fast.push(outcome(sent.then_some(out)));
        slow.push(outcome(general(&general_h, &snap, q, src)));
    }
    assert!(fast.contains(&"dropped") && fast.contains(&"slipped"));
    assert_eq!(fast, slow);
}

/// The zone's counters (type, rcode, the answer's policy) move alike on
/// both paths for wildcards and CNAME hops, routed or not.
#[test]
fn both_paths_count_wildcards_and_cname_hops_alike() {
    let load = || zones_snapshot_signed(&[("z.", TRICKY)], TRICKY_ROUTES, false);
    let ((_d1, fast_snap), (_d2, general_snap)) = (load(), load());
    let h = handler();
    let src: SocketAddr = "192.0.2.200:5300".parse().unwrap();
    let mut went_fast = 0;
    // One tally for all of them, as a UDP thread's batch: runs of one
    // counter and changes between counters.
    let mut tally = crate::metrics::Tally::default();
    for name in [
        "foo.w.z.",
        "foo.rwild.z.",
        "c2x.z.",
        "c2route.z.",
        "rc.z.",
        "rw.z.",
        "c2rc.z.",
        "foo.z.",
        "a.*.w.z.",
        "c2multi.z.",
    ] {
        for t in [RecordType::A, RecordType::TXT, RecordType::MX] {
            let msg = query_ecs(
                &Name::from_ascii(name).unwrap(),
                t,
                Some((1232, false)),
                None,
            );
            let mut out = Vec::new();
            let ahead = &mut super::Ahead::new();
            let fast = super::answer(&h, &fast_snap, &msg, src, true, &mut out, ahead, &mut tally);
            if fast == Fast::Sent {
                went_fast += 1;
            } else {
                general(&h, &fast_snap, &msg, src).unwrap();
            }
            general(&h, &general_snap, &msg, src).unwrap();
        }
    }
    drop(tally);
    assert!(went_fast > 15, "{went_fast}");
    let counts = |snap: &Snapshot| -> Vec<u64> {
        let z = snap
            .zone_for(&crate::zone::Key::new(&Name::from_ascii("z.").unwrap()))
            .unwrap();
        z.stats
            .queries
            .iter()
            .flatten()
            .flatten()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    };
    let (f, g) = (counts(&fast_snap), counts(&general_snap));
    assert_eq!(f.iter().sum::<u64>(), 30, "two loads, two sets of counters");
    assert_eq!(f, g);
}

/// A name read ahead serves the packet it was read from and no other: a
/// packet dropped before the fast path (here a response, QR set) does not
/// leave its name behind for the next query of the same slot.
#[test]
fn a_name_read_ahead_serves_its_own_packet_only() {
    let (_d, snap) = snapshot(false, "");
    let h = handler();
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let www = Name::from_ascii("www.t.").unwrap();
    let query = query_ecs(&www, RecordType::A, None, None);
    let mut response = query_ecs(
        &Name::from_ascii("mail.t.").unwrap(),
        RecordType::A,
        None,
        None,
    );
    response[2] |= 0x80;
    let mut ahead = super::Ahead::new();
    let udp = |msg: &[u8], ahead: &mut super::Ahead, out: &mut Vec<u8>| {
        out.clear();
        let tally = &mut crate::metrics::Tally::default();
        h.answer_packet_at(&snap, msg, src, None, Protocol::Udp, out, ahead, tally)
    };
    super::prefetch(&snap, &response, &mut ahead);
    let mut out = Vec::new();
    assert!(!udp(&response, &mut ahead, &mut out));
    assert!(udp(&query, &mut ahead, &mut out));
    let m = parsed(&out);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].name, www);
    // And read ahead, it answers its own packet.
    super::prefetch(&snap, &query, &mut ahead);
    let mut again = Vec::new();
    assert!(udp(&query, &mut ahead, &mut again));
    assert_eq!(again, out);
}

/// `put` appends exactly the bytes given, of every length around its
/// cases' edges, whatever the buffer held and had room for before.
#[test]
fn put_appends_every_length_exactly() {
    let src: Vec<u8> = (0..200u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(1))
        .collect();
    for n in 0..=130 {
        for (before, room) in [(0, 0), (3, 0), (12, 1232), (17, 20)] {
            let mut out = Vec::with_capacity(room);
            out.extend(std::iter::repeat_n(0xee, before));
            let s = &src[n % 7..n % 7 + n];
            super::put(&mut out, s);
            assert_eq!(out.len(), before + n);
            assert!(out[..before].iter().all(|&b| b == 0xee));
            assert_eq!(&out[before..], s, "{n} bytes after {before}");
        }
    }
}

/// `put_fields` appends each field big-endian, in order, and nothing
/// else, for every count of fields at any length and room before.
#[test]
fn put_fields_appends_big_endian_numbers() {
    let fields: Vec<u16> = (0..8u16)
        .map(|i| 0x0102u16.wrapping_mul(i + 1) ^ 0x8001)
        .collect();
    for n in 0..=8 {
        for (before, room) in [(0, 0), (1, 1), (12, 1232), (30, 32), (1220, 1232)] {
            let mut out = Vec::with_capacity(room);
            out.extend(std::iter::repeat_n(0xee, before));
            let capacity = out.capacity();
            super::put_fields(&mut out, &fields[..n]);
            if before + 2 * n <= capacity {
                assert_eq!(out.capacity(), capacity, "{n} fields fit: no reallocation");
            }
            let want: Vec<u8> = fields[..n].iter().flat_map(|f| f.to_be_bytes()).collect();
            assert!(out[..before].iter().all(|&b| b == 0xee));
            assert_eq!(&out[before..], want, "{n} fields after {before}");
        }
    }
}

/// ECS of every source prefix length, IPv4 and IPv6, inside and outside
/// a cidr route's networks: the fast path answers as the general path
/// does, and echoes the option as sent with its scope set; an option with
/// bits set past its source length is the general path's (FORMERR).
#[test]
fn ecs_of_every_prefix_length_is_read_and_echoed() {
    let (_d, snap) = snapshot(false, "");
    let h = handler();
    let src: SocketAddr = "192.0.2.200:5300".parse().unwrap();
    let name = Name::from_ascii("net.t.").unwrap();
    let cases: [(u16, u8, &[u8]); 4] = [
        (1, 32, &[10, 9, 8, 7]),
        (1, 32, &[198, 51, 100, 201]),
        (
            2,
            128,
            &[
                0x20, 1, 0x0d, 0xb8, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
            ],
        ),
        (
            2,
            128,
            &[
                0x20, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff,
            ],
        ),
    ];
    for (family, width, addr) in cases {
        for source in 0..=width {
            let mut bytes = addr[..usize::from(source).div_ceil(8)].to_vec();
            if source % 8 != 0 {
                *bytes.last_mut().unwrap() &= 0xff << (8 - source % 8);
            }
            let mut data = family.to_be_bytes().to_vec();
            data.extend_from_slice(&[source, 0]);
            data.extend_from_slice(&bytes);
            let msg = query_ecs(&name, RecordType::A, Some((1232, false)), Some(&data));
            let mut out = Vec::new();
            let f = fast_answer(&h, &snap, &msg, src, true, &mut out);
            assert_eq!(f, Fast::Sent, "family {family} /{source}");
            let g = general(&h, &snap, &msg, src).unwrap();
            assert_eq!(parsed(&out), parsed(&g), "family {family} /{source}");
            // The option ends the response: as sent, the scope set.
            let echoed = &out[out.len() - data.len()..];
            assert_eq!(echoed[..3], data[..3], "family {family} /{source}");
            assert_eq!(echoed[4..], data[4..], "family {family} /{source}");
            assert_eq!(out[out.len() - data.len() - 4..][..2], [0, 8]);
            // A bit past the source length: not the fast path's.
            if source % 8 != 0 {
                let mut bad = data.clone();
                *bad.last_mut().unwrap() |= 1;
                let msg = query_ecs(&name, RecordType::A, Some((1232, false)), Some(&bad));
                let f = fast_answer(&h, &snap, &msg, src, true, &mut Vec::new());
                assert_eq!(f, Fast::General, "family {family} /{source}, a stray bit");
            }
        }
    }
}

/// A snapshot of three zones, one the child of another: the zone a
/// name's read ahead found is the zone that answers it, whatever order a
/// batch's queries are answered in, and a read ahead in another snapshot
/// is not trusted for its zone.
#[test]
fn a_zone_found_ahead_answers_its_own_query() {
    let build = || {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
        for (origin, addr) in [("u.", "192.0.2.71"), ("sub.t.", "192.0.2.72")] {
            std::fs::write(
                dir.path().join(format!("{origin}zone")),
                format!(
                    "$ORIGIN {origin}\n@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 900\n\
                     @ IN NS ns\nns IN A 192.0.2.53\nwww IN A {addr}\n"
                ),
            )
            .unwrap();
        }
        let path = dir.path().join("veer.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
             [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n\
             [[zone]]\norigin = \"u.\"\nfile = \"u.zone\"\n\
             [[zone]]\norigin = \"sub.t.\"\nfile = \"sub.t.zone\"\n\
             [rrl]\nresponses_per_second = 0\n",
        )
        .unwrap();
        let base = Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"));
        let c = Controller::offline(base, None).unwrap();
        (dir, c.snapshot())
    };
    let (_d1, snap) = build();
    let (_d2, other) = build();
    let h = handler();
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let names = ["www.u.", "www.t.", "www.sub.t.", "ns.sub.t.", "nowhere.v."];
    let queries: Vec<Vec<u8>> = names
        .iter()
        .map(|n| query_ecs(&Name::from_ascii(n).unwrap(), RecordType::A, None, None))
        .collect();
    let answer = |snap: &Snapshot, msg: &[u8], ahead: &mut super::Ahead| {
        let mut out = Vec::new();
        let tally = &mut crate::metrics::Tally::default();
        let f = super::answer(&h, snap, msg, src, true, &mut out, ahead, tally);
        (f, out)
    };
    let want: Vec<_> = queries
        .iter()
        .map(|q| answer(&snap, q, &mut super::Ahead::new()))
        .collect();
    assert_eq!(want[0].0, Fast::Sent);
    assert_eq!(parsed(&want[2].1).answers[0].data.to_string(), "192.0.2.72");
    assert_eq!(want[4].0, Fast::General, "no zone");
    // A batch: every name read ahead, then answered last to first.
    let mut ahead: Vec<super::Ahead> = queries.iter().map(|_| super::Ahead::new()).collect();
    for (q, a) in queries.iter().zip(&mut ahead) {
        super::prefetch(&snap, q, a);
    }
    for i in (0..queries.len()).rev() {
        assert_eq!(
            answer(&snap, &queries[i], &mut ahead[i]),
            want[i],
            "{}",
            names[i]
        );
    }
    // Read ahead in one snapshot, answered from another.
    let want_other: Vec<_> = queries
        .iter()
        .map(|q| answer(&other, q, &mut super::Ahead::new()))
        .collect();
    for (i, q) in queries.iter().enumerate() {
        let a = &mut super::Ahead::new();
        super::prefetch(&snap, q, a);
        assert_eq!(answer(&other, q, a), want_other[i], "{}", names[i]);
    }
}
