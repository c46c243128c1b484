//! Protocol behaviour of `veer serve` (issue 2, item 5), asked with `dig` as
//! a user would, against the `auth` fixture: `example.test.` (wildcards,
//! CNAME chains, large TXT sets, a delegation to `sub.`, `$INCLUDE`) and its
//! child `child.example.test.`, delegated from it and served by the same
//! server.

mod common;

use std::time::Duration;

use common::wire;
use common::*;
use tempfile::TempDir;

/// A server on the `auth` scenario. `veer` is declared first so the process
/// is killed before its directory is removed.
struct Auth {
    veer: Veer,
    _dir: TempDir,
}

impl std::ops::Deref for Auth {
    type Target = Veer;
    fn deref(&self) -> &Veer {
        &self.veer
    }
}

fn auth() -> Auth {
    let dir = scenario("auth");
    let veer = Veer::start_in(dir.path());
    Auth { veer, _dir: dir }
}

/// Records from `name ttl class type rdata` lines.
fn rrs(lines: &[&str]) -> Vec<Rr> {
    lines
        .iter()
        .map(|l| parse_rr(l).unwrap_or_else(|| panic!("bad test record `{l}`")))
        .collect()
}

/// The parent zone's SOA as served in negative answers: TTL
/// min(3600, MINIMUM 300) = 300.
const NEG_SOA: &str = "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112701 7200 3600 1209600 300";

/// The child zone's negative SOA: TTL min(60, MINIMUM 600) = 60.
const CHILD_NEG_SOA: &str = "child.example.test. 60 IN SOA ns1.child.example.test. hostmaster.child.example.test. 2026112701 7200 3600 1209600 600";

/// Asserts rcode and AA, and what must hold for every response of an
/// authoritative-only server: QR set, RA clear.
#[track_caller]
fn check(r: &Dig, status: &str, aa: bool) {
    assert_eq!(r.status, status, "rcode:\n{}", r.raw);
    assert!(r.has_flag("qr"), "QR clear:\n{}", r.raw);
    assert_eq!(r.has_flag("aa"), aa, "AA should be {aa}:\n{}", r.raw);
    assert!(!r.has_flag("ra"), "RA set:\n{}", r.raw);
}

/// Asserts a NOERROR/AA answer whose answer section is exactly `answer` and
/// whose authority section is empty.
#[track_caller]
fn check_answer(r: &Dig, answer: &[&str]) {
    check(r, "NOERROR", true);
    assert_eq!(r.answer, rrs(answer), "answer section:\n{}", r.raw);
    assert!(r.authority.is_empty(), "authority section:\n{}", r.raw);
}

/// Asserts a negative answer: `status`, AA, empty answer, exactly `soa` in
/// the authority section.
#[track_caller]
fn check_negative(r: &Dig, status: &str, soa: &str) {
    check(r, status, true);
    assert!(r.answer.is_empty(), "answer section:\n{}", r.raw);
    assert_eq!(r.authority, rrs(&[soa]), "authority section:\n{}", r.raw);
}

#[test]
fn answers_from_our_zones_are_authoritative() {
    let s = auth();
    check_answer(
        &s.dig(&["www.example.test", "A"]),
        &["www.example.test. 3600 IN A 192.0.2.80"],
    );
    check_answer(
        &s.dig(&["www.example.test", "AAAA"]),
        &["www.example.test. 3600 IN AAAA 2001:db8::80"],
    );
    // The SOA itself is served with its own TTL (not the negative TTL).
    check_answer(
        &s.dig(&["example.test", "SOA"]),
        &[
            "example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 2026112701 7200 3600 1209600 300",
        ],
    );
    // MX with an in-zone target: the target's addresses in additional.
    let r = s.dig(&["example.test", "MX"]);
    check_answer(&r, &["example.test. 3600 IN MX 10 mail.example.test."]);
    let mut additional = r.additional.clone();
    additional.sort_by(|a, b| a.rtype.cmp(&b.rtype));
    assert_eq!(
        additional,
        rrs(&[
            "mail.example.test. 3600 IN A 192.0.2.25",
            "mail.example.test. 3600 IN AAAA 2001:db8::25",
        ]),
        "MX additional section:\n{}",
        r.raw
    );
}

#[test]
fn nxdomain_carries_soa_with_negative_ttl() {
    let s = auth();
    check_negative(&s.dig(&["nothere.example.test", "A"]), "NXDOMAIN", NEG_SOA);
    check_negative(
        &s.dig(&["a.b.nothere.example.test", "TXT"]),
        "NXDOMAIN",
        NEG_SOA,
    );
    // The child zone: here the SOA TTL (60) is below MINIMUM (600).
    check_negative(
        &s.dig(&["nothere.child.example.test", "A"]),
        "NXDOMAIN",
        CHILD_NEG_SOA,
    );
}

#[test]
fn nodata_carries_soa_with_negative_ttl() {
    let s = auth();
    check_negative(&s.dig(&["www.example.test", "MX"]), "NOERROR", NEG_SOA);
    check_negative(&s.dig(&["example.test", "SRV"]), "NOERROR", NEG_SOA);
    check_negative(
        &s.dig(&["www.child.example.test", "MX"]),
        "NOERROR",
        CHILD_NEG_SOA,
    );
}

#[test]
fn names_outside_our_zones_are_refused() {
    let s = auth();
    for (name, qtype) in [
        ("www.example.org", "A"),
        ("test", "SOA"),
        (".", "NS"),
        ("example.test.evil", "A"),
        ("notexample.test", "A"),
    ] {
        let r = s.dig(&[name, qtype]);
        check(&r, "REFUSED", false);
        assert!(
            r.answer.is_empty() && r.authority.is_empty() && r.additional.is_empty(),
            "{name} {qtype}: REFUSED with records:\n{}",
            r.raw
        );
    }
    // Only class IN is served.
    let r = s.dig(&["version.bind", "CH", "TXT"]);
    check(&r, "REFUSED", false);
    assert!(r.answer.is_empty(), "{}", r.raw);
}

#[test]
fn rd_is_ignored_and_ra_never_set() {
    let s = auth();
    let plain = s.dig(&["www.example.test", "A"]);
    let rec = s.dig(&["www.example.test", "A", "+rec"]);
    check_answer(&rec, &["www.example.test. 3600 IN A 192.0.2.80"]);
    assert!(
        rec.has_flag("rd"),
        "RD is copied into the response (RFC 1035 4.1.1):\n{}",
        rec.raw
    );
    assert!(!plain.has_flag("rd"), "{}", plain.raw);
    assert_eq!(rec.answer, plain.answer);
    // Asking us to recurse for a foreign name changes nothing: REFUSED.
    let r = s.dig(&["www.example.org", "A", "+rec"]);
    check(&r, "REFUSED", false);
    assert!(r.answer.is_empty(), "{}", r.raw);
    // Negative answers do not advertise recursion either.
    check(
        &s.dig(&["nothere.example.test", "A", "+rec"]),
        "NXDOMAIN",
        true,
    );
}

#[test]
fn wildcard_synthesises_the_query_name() {
    let s = auth();
    check_answer(
        &s.dig(&["x.wild.example.test", "A"]),
        &["x.wild.example.test. 3600 IN A 192.0.2.99"],
    );
    // A wildcard matches any number of missing labels.
    check_answer(
        &s.dig(&["a.b.wild.example.test", "A"]),
        &["a.b.wild.example.test. 3600 IN A 192.0.2.99"],
    );
    check_answer(
        &s.dig(&["x.wild.example.test", "TXT"]),
        &["x.wild.example.test. 3600 IN TXT \"from the wildcard\""],
    );
    // A wildcard CNAME: synthesised owner, then the chain is followed.
    check_answer(
        &s.dig(&["x.cn.example.test", "A"]),
        &[
            "x.cn.example.test. 3600 IN CNAME www.example.test.",
            "www.example.test. 3600 IN A 192.0.2.80",
        ],
    );
}

#[test]
fn wildcard_without_the_type_is_nodata() {
    let s = auth();
    check_negative(&s.dig(&["x.wild.example.test", "MX"]), "NOERROR", NEG_SOA);
    check_negative(&s.dig(&["x.wild.example.test", "AAAA"]), "NOERROR", NEG_SOA);
}

#[test]
fn no_wildcard_match_at_or_below_an_existing_name() {
    let s = auth();
    // host.wild exists: its own data, not the wildcard's.
    check_answer(
        &s.dig(&["host.wild.example.test", "A"]),
        &["host.wild.example.test. 3600 IN A 192.0.2.98"],
    );
    check_negative(
        &s.dig(&["host.wild.example.test", "TXT"]),
        "NOERROR",
        NEG_SOA,
    );
    // Below it, host.wild is the closest encloser and has no wildcard.
    check_negative(
        &s.dig(&["sub.host.wild.example.test", "A"]),
        "NXDOMAIN",
        NEG_SOA,
    );
}

#[test]
fn empty_non_terminal_is_nodata_not_wildcard() {
    let s = auth();
    // ent.wild exists (deep.ent.wild is below it) but owns nothing.
    check_negative(&s.dig(&["ent.wild.example.test", "A"]), "NOERROR", NEG_SOA);
    check_negative(
        &s.dig(&["ent.wild.example.test", "TXT"]),
        "NOERROR",
        NEG_SOA,
    );
    // Below the empty non-terminal, it is the closest encloser: no *.ent.wild.
    check_negative(
        &s.dig(&["x.ent.wild.example.test", "A"]),
        "NXDOMAIN",
        NEG_SOA,
    );
    check_answer(
        &s.dig(&["deep.ent.wild.example.test", "A"]),
        &["deep.ent.wild.example.test. 3600 IN A 192.0.2.97"],
    );
}

#[test]
fn cname_chain_is_followed_inside_the_zone() {
    let s = auth();
    check_answer(
        &s.dig(&["alias.example.test", "A"]),
        &[
            "alias.example.test. 300 IN CNAME www.example.test.",
            "www.example.test. 3600 IN A 192.0.2.80",
        ],
    );
    check_answer(
        &s.dig(&["alias.example.test", "AAAA"]),
        &[
            "alias.example.test. 300 IN CNAME www.example.test.",
            "www.example.test. 3600 IN AAAA 2001:db8::80",
        ],
    );
    check_answer(
        &s.dig(&["chain1.example.test", "A"]),
        &[
            "chain1.example.test. 3600 IN CNAME chain2.example.test.",
            "chain2.example.test. 3600 IN CNAME chain3.example.test.",
            "chain3.example.test. 3600 IN CNAME www.example.test.",
            "www.example.test. 3600 IN A 192.0.2.80",
        ],
    );
    // Asking for the CNAME itself does not follow it.
    check_answer(
        &s.dig(&["alias.example.test", "CNAME"]),
        &["alias.example.test. 300 IN CNAME www.example.test."],
    );
    // The target has no data of the type: the chain, then NODATA.
    let r = s.dig(&["alias.example.test", "MX"]);
    check(&r, "NOERROR", true);
    assert_eq!(
        r.answer,
        rrs(&["alias.example.test. 300 IN CNAME www.example.test."]),
        "{}",
        r.raw
    );
    assert_eq!(r.authority, rrs(&[NEG_SOA]), "{}", r.raw);
    // The target does not exist: NXDOMAIN with the CNAME (RFC 6604).
    let r = s.dig(&["dangling.example.test", "A"]);
    check(&r, "NXDOMAIN", true);
    assert_eq!(
        r.answer,
        rrs(&["dangling.example.test. 3600 IN CNAME nothere.example.test."]),
        "{}",
        r.raw
    );
    assert_eq!(r.authority, rrs(&[NEG_SOA]), "{}", r.raw);
}

#[test]
fn cname_chain_into_the_child_zone_is_followed() {
    let s = auth();
    check_answer(
        &s.dig(&["tochild.example.test", "A"]),
        &[
            "tochild.example.test. 3600 IN CNAME www.child.example.test.",
            "www.child.example.test. 600 IN A 192.0.2.201",
        ],
    );
}

#[test]
fn cname_chain_stops_at_an_external_target() {
    let s = auth();
    check_answer(
        &s.dig(&["external.example.test", "A"]),
        &["external.example.test. 3600 IN CNAME www.example.net."],
    );
}

#[test]
fn cname_loop_ends_without_repeating_records() {
    let s = auth();
    let r = s.dig(&["loop1.example.test", "A"]);
    assert!(
        r.status == "NOERROR" || r.status == "SERVFAIL",
        "rcode:\n{}",
        r.raw
    );
    let mut seen = Vec::new();
    for rr in &r.answer {
        assert!(
            !seen.contains(rr),
            "record {rr} appears twice in the answer (RFC 2181 5):\n{}",
            r.raw
        );
        seen.push(rr.clone());
    }
}

#[test]
fn delegation_gets_a_referral_with_glue() {
    let s = auth();
    for (name, qtype) in [
        ("www.sub.example.test", "A"),
        ("sub.example.test", "A"),
        ("sub.example.test", "NS"),
        ("deep.www.sub.example.test", "TXT"),
    ] {
        let r = s.dig(&[name, qtype]);
        check(&r, "NOERROR", false);
        assert!(r.answer.is_empty(), "{name} {qtype}: answer:\n{}", r.raw);
        assert_eq!(
            r.authority,
            rrs(&[
                "sub.example.test. 3600 IN NS ns1.sub.example.test.",
                "sub.example.test. 3600 IN NS ns.example.net.",
            ]),
            "{name} {qtype}: authority:\n{}",
            r.raw
        );
        // Glue for the in-bailiwick server only.
        assert_eq!(
            r.additional,
            rrs(&["ns1.sub.example.test. 3600 IN A 192.0.2.210"]),
            "{name} {qtype}: additional:\n{}",
            r.raw
        );
    }
}

#[test]
fn child_zone_served_here_answers_authoritatively() {
    let s = auth();
    // The parent has a cut at child.example.test., but the child zone is
    // served too: the most specific origin wins, no referral.
    check_answer(
        &s.dig(&["www.child.example.test", "A"]),
        &["www.child.example.test. 600 IN A 192.0.2.201"],
    );
    check_answer(
        &s.dig(&["child.example.test", "SOA"]),
        &[
            "child.example.test. 60 IN SOA ns1.child.example.test. hostmaster.child.example.test. 2026112701 7200 3600 1209600 600",
        ],
    );
    let r = s.dig(&["child.example.test", "NS"]);
    check(&r, "NOERROR", true);
    assert_eq!(
        r.answer,
        rrs(&[
            "child.example.test. 600 IN NS ns1.child.example.test.",
            "child.example.test. 600 IN NS ns2.child.example.test.",
        ]),
        "{}",
        r.raw
    );
    check_answer(
        &s.dig(&["ns1.child.example.test", "A"]),
        &["ns1.child.example.test. 600 IN A 192.0.2.200"],
    );
}

#[test]
fn edns_query_gets_opt_with_capped_payload() {
    let s = auth();
    let r = s.dig(&["www.example.test", "A", "+bufsize=4096"]);
    check_answer(&r, &["www.example.test. 3600 IN A 192.0.2.80"]);
    let e = r
        .edns
        .as_ref()
        .unwrap_or_else(|| panic!("no OPT:\n{}", r.raw));
    assert_eq!((e.version, e.udp), (0, 1232), "{}", r.raw);
    // Every response to an OPT query has an OPT, negative and error ones too.
    for args in [
        &["nothere.example.test", "A"][..],
        &["www.example.test", "MX"],
        &["www.example.org", "A"],
        &["www.sub.example.test", "A"],
        &["www.example.test", "A", "+opcode=15"],
        &["example.test", "+header-only"],
    ] {
        let r = s.dig(args);
        assert!(r.edns.is_some(), "{args:?}: no OPT:\n{}", r.raw);
    }
}

#[test]
fn no_opt_without_edns_in_the_query() {
    let s = auth();
    for args in [
        &["www.example.test", "A", "+noedns"][..],
        &["nothere.example.test", "A", "+noedns"],
        &["www.example.org", "A", "+noedns"],
    ] {
        let r = s.dig(args);
        assert!(r.edns.is_none(), "{args:?}: OPT without EDNS:\n{}", r.raw);
    }
    check_answer(
        &s.dig(&["www.example.test", "A", "+noedns"]),
        &["www.example.test. 3600 IN A 192.0.2.80"],
    );
}

#[test]
fn edns_version_above_zero_gets_badvers() {
    let s = auth();
    let r = s.dig(&["www.example.test", "A", "+edns=1", "+noednsnegotiation"]);
    assert_eq!(r.status, "BADVERS", "{}", r.raw);
    assert!(!r.has_flag("aa") && !r.has_flag("ra"), "{}", r.raw);
    assert!(r.answer.is_empty(), "{}", r.raw);
    let e = r
        .edns
        .as_ref()
        .unwrap_or_else(|| panic!("no OPT:\n{}", r.raw));
    assert_eq!(e.version, 0, "responder's highest version:\n{}", r.raw);
}

#[test]
fn unknown_edns_option_is_ignored() {
    let s = auth();
    let r = s.dig(&["www.example.test", "A", "+ednsopt=65001:abcd"]);
    check_answer(&r, &["www.example.test. 3600 IN A 192.0.2.80"]);
    let e = r
        .edns
        .as_ref()
        .unwrap_or_else(|| panic!("no OPT:\n{}", r.raw));
    assert!(
        !e.options.iter().any(|o| o.contains("65001")),
        "unknown option echoed:\n{}",
        r.raw
    );
}

#[test]
fn client_subnet_is_echoed_with_scope_zero() {
    let s = auth();
    for (subnet, echoed) in [
        ("192.0.2.0/24", "192.0.2.0/24/0"),
        ("2001:db8::/56", "2001:db8::/56/0"),
    ] {
        let arg = format!("+subnet={subnet}");
        for name in ["www.example.test", "x.wild.example.test"] {
            let r = s.dig(&[name, "A", &arg]);
            check(&r, "NOERROR", true);
            assert_eq!(r.answer.len(), 1, "{}", r.raw);
            let e = r
                .edns
                .as_ref()
                .unwrap_or_else(|| panic!("no OPT:\n{}", r.raw));
            assert_eq!(e.subnet.as_deref(), Some(echoed), "{}", r.raw);
        }
    }
    let r = s.dig(&["nothere.example.test", "A", "+subnet=192.0.2.0/24"]);
    check(&r, "NXDOMAIN", true);
    let e = r
        .edns
        .as_ref()
        .unwrap_or_else(|| panic!("no OPT:\n{}", r.raw));
    assert_eq!(e.subnet.as_deref(), Some("192.0.2.0/24/0"), "{}", r.raw);
}

/// The six `big` TXT records, as served.
fn big_txt() -> Vec<String> {
    (0..6)
        .map(|i| {
            let s = format!("big-{i}-");
            format!("\"{s}{}\"", "x".repeat(250 - s.len()))
        })
        .collect()
}

#[test]
fn udp_answer_that_does_not_fit_is_truncated() {
    let s = auth();
    // > 1232 bytes: truncated at the EDNS cap even when 1232 is offered.
    let r = s.dig(&["big.example.test", "TXT", "+bufsize=1232", "+ignore"]);
    check(&r, "NOERROR", true);
    assert!(r.has_flag("tc"), "TC clear:\n{}", r.raw);
    assert_eq!(r.transport, "UDP", "{}", r.raw);
    assert!(r.answer.len() < 6, "{}", r.raw);
    // Offering more than the cap does not lift it.
    let r = s.dig(&["big.example.test", "TXT", "+bufsize=4096", "+ignore"]);
    assert!(r.has_flag("tc"), "TC clear above the cap:\n{}", r.raw);
    // Without EDNS the limit is 512.
    let r = s.dig(&["big.example.test", "TXT", "+noedns", "+ignore"]);
    check(&r, "NOERROR", true);
    assert!(r.has_flag("tc"), "TC clear:\n{}", r.raw);
    // 512 < medium < 1232: truncated without EDNS, whole with it.
    let r = s.dig(&["medium.example.test", "TXT", "+noedns", "+ignore"]);
    check(&r, "NOERROR", true);
    assert!(r.has_flag("tc"), "TC clear:\n{}", r.raw);
    let r = s.dig(&["medium.example.test", "TXT", "+bufsize=1232", "+ignore"]);
    check(&r, "NOERROR", true);
    assert!(!r.has_flag("tc"), "TC set:\n{}", r.raw);
    assert_eq!(r.transport, "UDP", "{}", r.raw);
    assert_eq!(r.answer.len(), 3, "{}", r.raw);
}

#[test]
fn tcp_gets_the_whole_answer() {
    let s = auth();
    for args in [
        &["big.example.test", "TXT", "+tcp"][..],
        &["big.example.test", "TXT", "+tcp", "+noedns"],
        // dig's own retry after TC.
        &["big.example.test", "TXT"],
    ] {
        let r = s.dig(args);
        check(&r, "NOERROR", true);
        assert!(!r.has_flag("tc"), "{args:?}: TC over TCP:\n{}", r.raw);
        assert_eq!(r.transport, "TCP", "{args:?}:\n{}", r.raw);
        let mut data = r.answer_data();
        data.sort();
        assert_eq!(data, big_txt(), "{args:?}: answer:\n{}", r.raw);
        assert!(
            r.answer
                .iter()
                .all(|rr| rr.name == "big.example.test." && rr.ttl == 3600),
            "{}",
            r.raw
        );
    }
}

#[test]
fn max_udp_payload_is_configurable() {
    let dir = scenario("auth");
    let config = dir.path().join("veer.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[server]\n", "[server]\nmax_udp_payload = 4096\n", 1);
    std::fs::write(&config, text).unwrap();
    let veer = Veer::start(&config);
    let r = veer.dig(&["big.example.test", "TXT", "+bufsize=4096", "+ignore"]);
    check(&r, "NOERROR", true);
    assert!(!r.has_flag("tc"), "TC set:\n{}", r.raw);
    assert_eq!(r.answer.len(), 6, "{}", r.raw);
    assert_eq!(r.edns.as_ref().map(|e| e.udp), Some(4096), "{}", r.raw);
    // The client's smaller buffer still wins.
    let r = veer.dig(&["big.example.test", "TXT", "+bufsize=1232", "+ignore"]);
    assert!(r.has_flag("tc"), "TC clear:\n{}", r.raw);
}

#[test]
fn query_without_question_is_formerr() {
    let s = auth();
    let r = s.dig(&["example.test", "+header-only"]);
    check(&r, "FORMERR", false);
    assert_eq!(r.counts.query, 0, "{}", r.raw);
    assert!(r.answer.is_empty(), "{}", r.raw);
}

#[test]
fn query_with_two_questions_is_formerr() {
    let s = auth();
    let mut q = wire::header(0x1234, 0, 2, 0, 0, 0);
    q.extend(wire::question(
        "www.example.test",
        wire::TYPE_A,
        wire::CLASS_IN,
    ));
    q.extend(wire::question(
        "mail.example.test",
        wire::TYPE_A,
        wire::CLASS_IN,
    ));
    for attempt in 0..3 {
        let Some(resp) = wire::udp_exchange(s.addr, &q, Duration::from_secs(2)) else {
            assert!(attempt < 2, "no response to QDCOUNT=2");
            continue;
        };
        let h = wire::Header::parse(&resp).expect("response header");
        assert_eq!(h.id, 0x1234);
        assert!(h.qr(), "{h:?}");
        assert_eq!(h.rcode(), wire::FORMERR, "{h:?}");
        assert_eq!((h.ancount, h.nscount), (0, 0), "{h:?}");
        assert!(!h.aa(), "{h:?}");
        break;
    }
}

#[test]
fn unknown_opcode_is_notimp() {
    let s = auth();
    let r = s.dig(&["www.example.test", "A", "+opcode=15"]);
    check(&r, "NOTIMP", false);
    assert!(r.answer.is_empty(), "{}", r.raw);
    // STATUS (2) and the obsolete IQUERY (1), by hand.
    for op in [1u8, 2, 3, 15] {
        let q = wire::query(
            0x4000 + u16::from(op),
            wire::opcode(op),
            "www.example.test",
            wire::TYPE_A,
        );
        let resp = wire::udp_exchange(s.addr, &q, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no response to opcode {op}"));
        let h = wire::Header::parse(&resp).expect("response header");
        assert_eq!(h.id, 0x4000 + u16::from(op));
        assert!(h.qr(), "opcode {op}: {h:?}");
        assert_eq!(h.rcode(), wire::NOTIMP, "opcode {op}: {h:?}");
        assert_eq!(h.ancount, 0, "opcode {op}: {h:?}");
    }
}

#[test]
fn any_is_answered_with_one_rrset() {
    let s = auth();
    for transport in ["+notcp", "+tcp"] {
        for name in ["example.test", "www.example.test", "x.wild.example.test"] {
            let r = s.dig(&[name, "ANY", transport]);
            check(&r, "NOERROR", true);
            assert!(!r.answer.is_empty(), "{name} ANY: empty:\n{}", r.raw);
            let first = &r.answer[0];
            assert!(
                r.answer
                    .iter()
                    .all(|rr| rr.name == first.name && rr.rtype == first.rtype),
                "{name} ANY {transport}: more than one RRset (RFC 8482):\n{}",
                r.raw
            );
            assert_eq!(first.name, format!("{name}."), "{}", r.raw);
        }
    }
    check_negative(
        &s.dig(&["nothere.example.test", "ANY"]),
        "NXDOMAIN",
        NEG_SOA,
    );
}

#[test]
fn question_letter_case_is_preserved() {
    let s = auth();
    let r = s.dig(&["WwW.ExAmPlE.TeSt", "A"]);
    check(&r, "NOERROR", true);
    assert_eq!(r.question, ["WwW.ExAmPlE.TeSt. IN A"], "{}", r.raw);
    assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    let r = s.dig(&["NoThErE.ExAmPlE.TeSt", "A"]);
    check(&r, "NXDOMAIN", true);
    assert_eq!(r.question, ["NoThErE.ExAmPlE.TeSt. IN A"], "{}", r.raw);
    // Byte for byte, over UDP.
    let q = wire::query(0x2020, 0, "wWw.eXaMpLe.TEST", wire::TYPE_A);
    let resp = wire::udp_exchange(s.addr, &q, Duration::from_secs(2)).expect("response");
    assert_eq!(
        &resp[wire::HEADER_LEN..q.len()],
        &q[wire::HEADER_LEN..],
        "question bytes differ"
    );
    let h = wire::Header::parse(&resp).unwrap();
    assert_eq!((h.rcode(), h.ancount), (wire::NOERROR, 1), "{h:?}");
}

#[test]
fn answers_are_identical_over_udp_and_tcp() {
    let s = auth();
    for q in [
        &["www.example.test", "A"][..],
        &["example.test", "MX"],
        &["example.test", "NS"],
        &["chain1.example.test", "A"],
        &["tochild.example.test", "A"],
        &["x.wild.example.test", "TXT"],
        &["medium.example.test", "TXT"],
        &["nothere.example.test", "A"],
        &["www.example.test", "MX"],
        &["www.sub.example.test", "A"],
        &["www.example.org", "A"],
        &["www.child.example.test", "A"],
    ] {
        // Without cookies: each dig run sends its own client cookie.
        let udp = s.dig(&[q, &["+notcp", "+ignore", "+nocookie"][..]].concat());
        let tcp = s.dig(&[q, &["+tcp", "+nocookie"][..]].concat());
        assert_eq!(udp.transport, "UDP", "{}", udp.raw);
        assert_eq!(tcp.transport, "TCP", "{}", tcp.raw);
        assert_eq!(
            udp.content(),
            tcp.content(),
            "{q:?} differs:\nUDP:\n{}\nTCP:\n{}",
            udp.raw,
            tcp.raw
        );
        assert_eq!(udp.edns, tcp.edns, "{q:?}: OPT differs");
    }
}

#[test]
fn included_records_are_served() {
    let s = auth();
    check_answer(
        &s.dig(&["inc.example.test", "A"]),
        &["inc.example.test. 3600 IN A 192.0.2.150"],
    );
    check_answer(
        &s.dig(&["inc.example.test", "TXT"]),
        &["inc.example.test. 3600 IN TXT \"from an included file\""],
    );
    // `$INCLUDE lab.inc lab.example.test.`: names relative to the given origin.
    check_answer(
        &s.dig(&["lab.example.test", "A"]),
        &["lab.example.test. 3600 IN A 192.0.2.170"],
    );
    check_answer(
        &s.dig(&["db.lab.example.test", "A"]),
        &["db.lab.example.test. 3600 IN A 192.0.2.171"],
    );
    // The including file's origin is back after the include.
    check_answer(
        &s.dig(&["after-include.example.test", "A"]),
        &["after-include.example.test. 3600 IN A 192.0.2.160"],
    );
}

#[test]
fn zone_transfers_are_refused() {
    let s = auth();
    for qtype in [252u16, 251] {
        let q = wire::query(0x7000, 0, "example.test", qtype);
        let resp = wire::tcp_exchange(s.addr, &q, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("type {qtype}: no TCP response: {e}"));
        let h = wire::Header::parse(&resp).expect("header");
        assert_eq!(h.id, 0x7000);
        assert_eq!(h.rcode(), wire::REFUSED, "type {qtype}: {h:?}");
        assert_eq!(h.ancount, 0, "type {qtype}: {h:?}");
    }
}

#[test]
fn ipv6_listen_address_works() {
    let v6_ok = std::net::UdpSocket::bind("[::1]:0").is_ok()
        && std::net::TcpListener::bind("[::1]:0").is_ok();
    if !v6_ok {
        eprintln!("skipped: [::1] is not available here");
        return;
    }
    let dir = scenario("auth");
    let config = dir.path().join("veer.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"[::1]:0\", \"127.0.0.1:0\"]",
    );
    assert!(text.contains("[::1]:0"), "fixture listen line changed");
    std::fs::write(&config, text).unwrap();
    let veer = Veer::start(&config);
    assert_eq!(veer.addrs.len(), 2, "{:?}\n{}", veer.addrs, veer.logs());
    let v6 = *veer
        .addrs
        .iter()
        .find(|a| a.is_ipv6())
        .expect("a v6 address");
    assert!(v6.ip().is_loopback() && v6.port() != 0, "{v6}");
    for extra in ["+notcp", "+tcp"] {
        let r = dig(v6, &["www.example.test", "AAAA", extra]);
        check_answer(&r, &["www.example.test. 3600 IN AAAA 2001:db8::80"]);
        assert!(
            r.raw.contains(&format!("SERVER: ::1#{}", v6.port())),
            "{}",
            r.raw
        );
    }
    let v4 = *veer
        .addrs
        .iter()
        .find(|a| a.is_ipv4())
        .expect("a v4 address");
    check_answer(
        &dig(v4, &["www.example.test", "A"]),
        &["www.example.test. 3600 IN A 192.0.2.80"],
    );
}

#[test]
fn dig_gets_a_good_server_cookie_and_comes_back_with_it() {
    // A real client's view of DNS cookies (RFC 7873): dig sends a client
    // cookie, checks the echo ("good"), and may send the server cookie
    // back, which veer accepts and renews.
    let dir = scenario("auth");
    let veer = Veer::start_in(dir.path());
    let r = veer.dig(&["www.example.test", "A", "+cookie"]);
    let line = r
        .raw
        .lines()
        .find(|l| l.contains("COOKIE:"))
        .unwrap_or_else(|| panic!("no COOKIE in:\n{}", r.raw));
    assert!(line.contains("(good)"), "{line}");
    let full = line.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(full.len(), 48, "client 8 + server 16 bytes: {line}");
    let r = veer.dig(&["www.example.test", "A", &format!("+cookie={full}")]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert!(r.raw.contains("(good)"), "{}", r.raw);
    // A malformed cookie (client part of 7 bytes) gets FORMERR.
    let r = veer.dig(&["www.example.test", "A", "+cookie=01020304050607"]);
    assert_eq!(r.status, "FORMERR", "{}", r.raw);
}
