//! veer behind a real recursive resolver, as a domain's users see it: a
//! user's `dig +rec` asks Unbound (tests/support/unbound.rs), Unbound asks
//! veer through a stub zone, everything on loopback.
//!
//! - Static, CNAME, wildcard, NXDOMAIN and NODATA answers come through
//!   unchanged, negative answers are cached with their SOA, and a cached
//!   answer counts its TTL down without veer being asked again.
//! - EDNS Client Subnet: clients of different networks of a geo and of a
//!   cidr route get their own answers, cached by Unbound with veer's
//!   scope, so a second client inside that scope never reaches veer.
//! - Failover: once the primary is down, Unbound's answer follows within
//!   the TTL veer gave; a route answering NODATA while all its members are
//!   down (`when_all_down = "closed"`) lets users back within its TTL too.
//! - A ~5 KB answer: veer truncates over UDP, Unbound retries over TCP and
//!   the user gets every record.
//!
//! veer's queries are counted with `veer_queries_total` on `/metrics`
//! (every label summed): the only way to see whether Unbound asked.

#[path = "support/admin.rs"]
mod admin;
mod common;
#[path = "support/dnssec.rs"]
mod dnssec;
#[path = "support/unbound.rs"]
mod unbound;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use admin::Admin;
use common::*;
use unbound::Unbound;

/// How long a health flip or a cache expiry may take to show (generous,
/// for loaded CI machines; the tests poll and finish as soon as it shows).
const WAIT: Duration = Duration::from_secs(10);

/// The admin API on an ephemeral loopback port, for `/metrics` (which
/// needs no token).
const API: &str = "\n[api]\nlisten = \"127.0.0.1:0\"\n";

/// Appends `text` to `dir/rel`.
fn append(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    let mut all =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    all.push_str(text);
    write_file(dir, rel, &all);
}

/// Every query veer has answered so far (`veer_queries_total`, all labels).
fn queries(api: &Admin) -> u64 {
    api.metrics().sum("veer_queries_total", &[]) as u64
}

/// The answer section as a set of `owner type rdata` (TTLs left out:
/// Unbound's count down).
fn rrs(d: &Dig) -> BTreeSet<String> {
    d.answer
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.rtype, r.data))
        .collect()
}

/// The SOA records of the authority section, without TTLs.
fn soa(d: &Dig) -> Vec<String> {
    d.authority
        .iter()
        .filter(|r| r.rtype == "SOA")
        .map(|r| format!("{} {}", r.name, r.data))
        .collect()
}

/// The scope prefix of the response's CLIENT-SUBNET option, as dig prints
/// it (`ADDR/SOURCE/SCOPE`); the last one if there are several.
fn scope(d: &Dig) -> Option<u8> {
    d.edns
        .as_ref()?
        .subnet
        .as_ref()?
        .rsplit('/')
        .next()?
        .parse()
        .ok()
}

/// Every CLIENT-SUBNET option of the response, as dig prints them.
fn ecs_options(d: &Dig) -> Vec<String> {
    d.edns
        .iter()
        .flat_map(|e| &e.options)
        .filter(|o| o.starts_with("CLIENT-SUBNET"))
        .cloned()
        .collect()
}

/// The message size dig printed last (`;; MSG SIZE  rcvd: N`).
fn msg_size(d: &Dig) -> usize {
    d.raw
        .lines()
        .filter_map(|l| l.strip_prefix(";; MSG SIZE  rcvd: "))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no MSG SIZE in:\n{}", d.raw))
}

// ---------------------------------------------------------------------------
// Answers and caching
// ---------------------------------------------------------------------------

/// Names of the `auth` scenario (tests/fixtures/auth), one per kind of
/// answer: (what, name, type).
const KINDS: &[(&str, &str, &str)] = &[
    ("static", "www.example.test", "A"),
    ("static", "ns2.example.test", "AAAA"),
    ("static at the apex", "example.test", "MX"),
    ("CNAME chain, three hops", "chain1.example.test", "A"),
    ("wildcard", "anything.wild.example.test", "A"),
    ("wildcard", "anything.wild.example.test", "TXT"),
    ("wildcard CNAME", "x.cn.example.test", "A"),
    ("NXDOMAIN", "nothere.example.test", "A"),
    ("NXDOMAIN below a name", "a.b.www.example.test", "A"),
    ("NODATA", "www.example.test", "MX"),
    (
        "NODATA at an empty non-terminal",
        "ent.wild.example.test",
        "A",
    ),
];

#[test]
fn answers_through_unbound_equal_veer_and_are_cached() {
    let dir = scenario("auth");
    append(dir.path(), "veer.toml", API);
    // A short TTL, so the countdown below is about a cache entry that
    // expires within the minute, as routed answers do.
    append(
        dir.path(),
        "zones/example.test.zone",
        "short 30 IN A 192.0.2.30\n",
    );
    let veer = Veer::start_in(dir.path());
    let api = Admin::from_logs(&veer.logs(), admin::TOKEN);
    let ub = Unbound::start(veer.addr, "example.test.", &[]);

    let start = queries(&api);
    let mut directs = Vec::new();
    for &(what, name, qtype) in KINDS {
        let direct = veer.dig(&[name, qtype]);
        let via = ub.dig(&[name, qtype]);
        let ctx = format!(
            "{what}: {name} {qtype}\n--- veer:\n{}\n--- through Unbound:\n{}",
            direct.raw, via.raw
        );
        // RA: this answer really came from the resolver (veer never sets it).
        assert!(via.has_flag("ra"), "no RA from Unbound; {ctx}");
        assert_eq!(via.status, direct.status, "rcode differs; {ctx}");
        assert_eq!(rrs(&via), rrs(&direct), "answer differs; {ctx}");
        let negative = direct.answer.is_empty();
        assert_eq!(
            negative,
            what.starts_with("NXDOMAIN") || what.starts_with("NODATA"),
            "the fixture no longer gives a {what} answer; {ctx}"
        );
        if negative {
            // Unbound caches the negative answer and hands out veer's SOA
            // with it (RFC 2308), which is what lets the next resolver in
            // a chain cache it too.
            assert_eq!(soa(&via).len(), 1, "no SOA in the authority; {ctx}");
            assert_eq!(soa(&via), soa(&direct), "SOA differs; {ctx}");
        }
        directs.push(direct);
    }
    let first = queries(&api);
    // Every direct query above counted once; Unbound's cache misses on top.
    let asked = first - start - KINDS.len() as u64;
    assert!(
        asked > 0,
        "veer counted no query from Unbound: is the metrics counter still veer_queries_total?"
    );
    println!(
        "{} questions through Unbound: veer asked {asked} times (a CNAME chain costs one query per hop: Unbound keeps only the answer records owned by the name it asked for)",
        KINDS.len()
    );

    // The same questions again: all from Unbound's cache, negative ones
    // included; veer sees nothing.
    for (&(what, name, qtype), direct) in KINDS.iter().zip(&directs) {
        let again = ub.dig(&[name, qtype]);
        assert_eq!(
            (again.status.as_str(), rrs(&again)),
            (direct.status.as_str(), rrs(direct)),
            "{what}: {name} {qtype} changed in the cache:\n{}",
            again.raw
        );
    }
    let second = queries(&api);
    assert_eq!(
        second, first,
        "Unbound asked veer again for answers it had cached"
    );

    // The TTL counts down in the cache: ask until it is lower than in the
    // first answer, which carried veer's TTL.
    let ttl = |d: &Dig| {
        assert_eq!(d.answer_data(), ["192.0.2.30"], "{}", d.raw);
        d.answer[0].ttl
    };
    let t0 = Instant::now();
    let fresh = ub.dig(&["short.example.test", "A"]);
    let before = queries(&api);
    let first_ttl = ttl(&fresh);
    assert!(
        (29..=30).contains(&first_ttl),
        "a fresh cache entry should carry veer's TTL 30:\n{}",
        fresh.raw
    );
    let mut last = fresh.clone();
    let counted_down = wait_until_every(WAIT, Duration::from_millis(100), || {
        last = ub.dig(&["short.example.test", "A"]);
        ttl(&last) < first_ttl
    });
    let after = queries(&api);
    assert!(
        counted_down,
        "the TTL did not count down within {WAIT:?}; first:\n{}\nlast:\n{}",
        fresh.raw, last.raw
    );
    assert_eq!(
        after, before,
        "veer was asked again while the answer was cached; last:\n{}",
        last.raw
    );
    println!(
        "short.example.test: TTL {first_ttl} -> {} after {:?}, served from Unbound's cache (veer's count stayed at {after})",
        ttl(&last),
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// EDNS Client Subnet
// ---------------------------------------------------------------------------

/// A routed name, three client networks with the answer each should get,
/// and a second client inside the first network's scope.
struct EcsCase {
    name: &'static str,
    networks: [(&'static str, &'static str); 3],
    same_scope: &'static str,
}

/// The geo route of the `routing` scenario: 100.64.0.0/16 is DE in
/// geo/networks.txt (scope /16), 198.51.100.0/24 is US-VA in the database
/// (/24), 192.0.2.0/24 is nowhere (the default, scope /6). The cidr route:
/// 10.20.0.0/16 (/16), 10/8 seen from 10.1.0.0 (/12), the default (/1).
/// Each client sends a /24, Unbound's default max-client-subnet-ipv4, so
/// Unbound forwards it unchanged and no scope is longer than the source.
const ECS_CASES: [EcsCase; 2] = [
    EcsCase {
        name: "geo.routing.test",
        networks: [
            ("100.64.9.0/24", "192.0.2.40"),
            ("198.51.100.0/24", "192.0.2.42"),
            ("192.0.2.0/24", "192.0.2.49"),
        ],
        same_scope: "100.64.200.0/24",
    },
    EcsCase {
        name: "app.routing.test",
        networks: [
            ("10.20.30.0/24", "10.2.2.2"),
            ("10.1.0.0/24", "10.1.1.1"),
            ("192.0.2.0/24", "192.0.2.50"),
        ],
        same_scope: "10.20.99.0/24",
    },
];

#[test]
fn ecs_through_unbound_gives_each_network_its_answer_and_caches_by_scope() {
    let dir = routing_scenario();
    append(dir.path(), "veer.toml", API);
    let veer = Veer::start_in(dir.path());
    let api = Admin::from_logs(&veer.logs(), admin::TOKEN);
    // The subnet cache module; ECS goes to veer's address only.
    let ub = Unbound::start(
        veer.addr,
        "routing.test.",
        &[
            "module-config: \"subnetcache iterator\"",
            "send-client-subnet: 127.0.0.1",
        ],
    );

    for case in &ECS_CASES {
        let name = case.name;
        for &(subnet, want) in &case.networks {
            let arg = format!("+subnet={subnet}");
            let direct = veer.dig(&[name, "A", &arg]);
            assert_eq!(direct.answer_data(), [want], "veer itself:\n{}", direct.raw);
            let veer_scope = scope(&direct)
                .unwrap_or_else(|| panic!("no CLIENT-SUBNET from veer:\n{}", direct.raw));

            let before = queries(&api);
            let via = ub.dig(&[name, "A", &arg]);
            let asked = queries(&api) - before;
            let ctx = format!(
                "{name} for client {subnet}; veer's CLIENT-SUBNET options: {:?}\n--- veer:\n{}\n--- through Unbound:\n{}",
                ecs_options(&direct),
                direct.raw,
                via.raw
            );
            assert_eq!(via.status, "NOERROR", "{ctx}");
            assert_eq!(
                via.answer_data(),
                [want],
                "the client got another network's answer (veer asked {asked} times): Unbound served a cache entry whose scope covers every client; {ctx}"
            );
            assert_eq!(
                scope(&via),
                Some(veer_scope),
                "Unbound cached veer's answer with another scope than veer's /{veer_scope} (Unbound reads the first CLIENT-SUBNET option of a response); {ctx}"
            );
            assert_eq!(asked, 1, "a new network must cost one query to veer; {ctx}");
            println!(
                "{name} {subnet}: {want}, scope /{veer_scope} from veer and from Unbound, veer asked {asked}"
            );
        }

        // A second client inside the first network's scope: Unbound's
        // cache answers it, veer sees nothing.
        let (first, want) = case.networks[0];
        let arg = format!("+subnet={}", case.same_scope);
        let before = queries(&api);
        let via = ub.dig(&[name, "A", &arg]);
        let asked = queries(&api) - before;
        assert_eq!(via.answer_data(), [want], "{}", via.raw);
        assert_eq!(
            asked, 0,
            "Unbound asked veer for {} although the answer cached for {first} covers it:\n{}",
            case.same_scope, via.raw
        );
        println!(
            "{name} {}: {want} from Unbound's cache (scope of {first}), veer asked 0",
            case.same_scope
        );
    }
}

// ---------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------

/// Appends a `file` check `name` on `health/NAME` (probed every 50 ms,
/// fall = rise = 1, as the scenario's own) and writes `state` into it.
fn add_file_check(dir: &Path, name: &str, state: &str) {
    append(
        dir,
        "veer.toml",
        &format!(
            "\n[check.{name}]\nfile = \"health/{name}\"\ninterval = \"50ms\"\nfall = 1\nrise = 1\n"
        ),
    );
    set_health(dir, name, state);
}

const PRIMARY: &str = "192.0.2.91";
const SECONDARY: &str = "198.51.100.91";
/// The route's TTL: short, so the test is fast.
const FAILOVER_TTL: u32 = 3;

#[test]
fn failover_through_unbound_follows_within_the_ttl() {
    let dir = routing_scenario();
    add_file_check(dir.path(), "fo1", "up");
    append(
        dir.path(),
        "veer.toml",
        &format!(
            "\n[[route]]\nname = \"fo.routing.test.\"\ntype = \"A\"\nttl = {FAILOVER_TTL}\n\
             policy = \"failover\"\nmembers = [\n\
             \x20 {{ tier = 1, value = \"{PRIMARY}\", check = \"fo1\" }},\n\
             \x20 {{ tier = 2, value = \"{SECONDARY}\" }},\n]\n"
        ),
    );
    let veer = Veer::start_in(dir.path());
    veer.expect_log("check fo1: unknown -> up", WAIT);
    let direct = veer.dig(&["fo.routing.test", "A"]);
    assert_eq!(direct.answer_data(), [PRIMARY], "{}", direct.raw);
    let veer_ttl = direct.answer[0].ttl;
    assert_eq!(veer_ttl, FAILOVER_TTL, "{}", direct.raw);
    let ub = Unbound::start(veer.addr, "routing.test.", &[]);

    // The user's answer, now cached by Unbound for up to veer's TTL.
    let cached = ub.dig(&["fo.routing.test", "A"]);
    assert_eq!(cached.answer_data(), [PRIMARY], "{}", cached.raw);

    set_health(dir.path(), "fo1", "down");
    let down = Instant::now();
    let bound = Duration::from_secs(u64::from(veer_ttl) + 5);
    let mut veer_moved = None;
    let mut last = cached.clone();
    let followed = wait_until_every(bound, Duration::from_millis(50), || {
        if veer_moved.is_none() && veer.dig(&["fo.routing.test", "A"]).answer_data() == [SECONDARY]
        {
            veer_moved = Some(down.elapsed());
        }
        last = ub.dig(&["fo.routing.test", "A"]);
        let a = last.answer_data();
        assert!(
            a == [PRIMARY] || a == [SECONDARY],
            "neither member:\n{}",
            last.raw
        );
        // Unbound must not stretch veer's TTL (cache-min-ttl 0, no
        // prefetch, no serve-expired).
        assert!(
            last.answer[0].ttl <= veer_ttl,
            "TTL above veer's {veer_ttl}:\n{}",
            last.raw
        );
        a == [SECONDARY]
    });
    let took = down.elapsed();
    assert!(
        followed,
        "Unbound still answered the primary {took:?} after it went down (TTL {veer_ttl} s); last:\n{}\nveer logs:\n{}",
        last.raw,
        veer.logs()
    );
    println!(
        "failover: veer answered the secondary after {:?}, the user through Unbound after {took:?} (TTL {veer_ttl} s, bound {bound:?})",
        veer_moved.unwrap_or_default()
    );
}

/// A route that answers NODATA while its members are down
/// (`when_all_down = "closed"`) must not keep users from the member once it
/// is back for longer than the route's TTL: the NODATA is cached by the
/// SOA's TTL (RFC 2308), so that TTL must not exceed the route's (the
/// zone's own negative TTL here is 300 s).
#[test]
fn closed_route_nodata_through_unbound_ends_within_the_ttl() {
    let dir = routing_scenario();
    add_file_check(dir.path(), "cl1", "down");
    append(
        dir.path(),
        "veer.toml",
        &format!(
            "\n[[route]]\nname = \"closed.routing.test.\"\ntype = \"A\"\nttl = {FAILOVER_TTL}\n\
             policy = \"failover\"\nwhen_all_down = \"closed\"\n\
             members = [ {{ tier = 1, value = \"{PRIMARY}\", check = \"cl1\" }} ]\n"
        ),
    );
    let veer = Veer::start_in(dir.path());
    veer.expect_log("check cl1: unknown -> down", WAIT);
    let ub = Unbound::start(veer.addr, "routing.test.", &[]);

    let direct = veer.dig(&["closed.routing.test", "A"]);
    let nodata = ub.dig(&["closed.routing.test", "A"]);
    for (who, d) in [("veer", &direct), ("Unbound", &nodata)] {
        assert_eq!(d.status, "NOERROR", "{who}:\n{}", d.raw);
        assert!(d.answer.is_empty(), "{who}: not NODATA:\n{}", d.raw);
        let soa: Vec<&Rr> = d.authority.iter().filter(|r| r.rtype == "SOA").collect();
        assert_eq!(soa.len(), 1, "{who}: NODATA without SOA:\n{}", d.raw);
        assert!(
            soa[0].ttl <= FAILOVER_TTL,
            "{who}: the NODATA's SOA TTL {} outlives the route's TTL {FAILOVER_TTL}:\n{}",
            soa[0].ttl,
            d.raw
        );
    }

    set_health(dir.path(), "cl1", "up");
    let up = Instant::now();
    let bound = Duration::from_secs(u64::from(FAILOVER_TTL) + 5);
    let mut last = nodata.clone();
    let back = wait_until_every(bound, Duration::from_millis(50), || {
        last = ub.dig(&["closed.routing.test", "A"]);
        last.answer_data() == [PRIMARY]
    });
    let took = up.elapsed();
    assert!(
        back,
        "Unbound still answered NODATA {took:?} after the member came back (route TTL {FAILOVER_TTL} s); last:\n{}",
        last.raw
    );
    println!(
        "closed route: the user through Unbound got the member back after {took:?} (TTL {FAILOVER_TTL} s, bound {bound:?})"
    );
}

// ---------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------

/// TXT records of `huge.example.test`, and the length of each string:
/// 20 × (240 + 13 bytes of RR overhead) ≈ 5 KB on the wire.
const HUGE_RECORDS: usize = 20;
const HUGE_LEN: usize = 240;

#[test]
fn five_kilobyte_answer_reaches_the_user_through_unbound() {
    let dir = scenario("auth");
    let zone: String = (0..HUGE_RECORDS)
        .map(|i| {
            let s = format!("huge-{i:02}-");
            format!("huge IN TXT \"{s}{}\"\n", "x".repeat(HUGE_LEN - s.len()))
        })
        .collect();
    append(dir.path(), "zones/example.test.zone", &zone);
    let veer = Veer::start_in(dir.path());
    let ub = Unbound::start(veer.addr, "example.test.", &[]);

    // veer over UDP: truncated, nothing in it (`+ignore`: no TCP retry).
    let udp = veer.dig(&["huge.example.test", "TXT", "+ignore"]);
    assert!(udp.has_flag("tc"), "veer did not truncate:\n{}", udp.raw);
    assert!(udp.answer.is_empty(), "{}", udp.raw);
    // veer over TCP: everything.
    let tcp = veer.dig(&["huge.example.test", "TXT", "+tcp"]);
    assert_eq!(tcp.answer.len(), HUGE_RECORDS, "{}", tcp.raw);
    let size = msg_size(&tcp);
    assert!((4500..6000).contains(&size), "{size} bytes:\n{}", tcp.raw);

    // Through Unbound: Unbound can only have the records from veer over
    // TCP (every UDP answer of veer is truncated and empty). Its own UDP
    // answer to dig is truncated too (1232 bytes), so dig retries over TCP,
    // as a user's stub resolver does.
    let via = ub.dig(&["huge.example.test", "TXT"]);
    assert_eq!(via.status, "NOERROR", "{}", via.raw);
    assert_eq!(via.answer.len(), HUGE_RECORDS, "{}", via.raw);
    assert_eq!(
        rrs(&via),
        rrs(&tcp),
        "data differs from veer's TCP answer:\n{}",
        via.raw
    );
    println!(
        "huge.example.test TXT: veer UDP tc with {} records, veer TCP {size} bytes, through Unbound {} records, {} bytes over {}",
        udp.answer.len(),
        via.answer.len(),
        msg_size(&via),
        via.transport
    );
}

/// ECS and DNSSEC together: the routing scenario's zone signed, a
/// validating Unbound with the subnet cache in front (`subnetcache
/// validator iterator`, the order Unbound documents): each network of the
/// geo and the cidr route gets its own answer, and every answer validates
/// (AD).
#[test]
fn ecs_answers_of_a_signed_zone_validate_for_every_network() {
    let dir = routing_scenario();
    let config = dir.path().join("veer.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // A signed zone answers weighted `pick = 2` not yet: that route goes.
    let start = text
        .find("[[route]]                       # two members per answer")
        .unwrap();
    let end = start + text[start..].find("]\n\n").unwrap() + 3;
    let text = format!("{}{}", &text[..start], &text[end..])
        .replace(
            "file = \"zones/routing.test.zone\"\n",
            "file = \"zones/routing.test.zone\"\ndnssec = true\n",
        )
        .replace("[server]\n", "[server]\nstate_dir = \"state\"\n");
    assert!(text.contains("dnssec = true") && !text.contains("pick = 2"));
    std::fs::write(&config, &text).unwrap();
    let key = dnssec::keygen(&config, "routing.test.");
    let veer = Veer::start_in(dir.path());
    let anchor = key.unbound_anchor();
    let ub = Unbound::start(
        veer.addr,
        "routing.test.",
        &[
            "module-config: \"subnetcache validator iterator\"",
            "send-client-subnet: 127.0.0.1",
            &anchor,
            "val-sig-skew-min: 0",
            "val-sig-skew-max: 0",
        ],
    );
    for case in &ECS_CASES {
        for &(subnet, want) in &case.networks {
            let via = ub.dig(&[case.name, "A", &format!("+subnet={subnet}"), "+adflag"]);
            assert_eq!(via.status, "NOERROR", "{}\n{}", via.raw, ub.log());
            assert_eq!(via.answer_data(), [want], "{}", via.raw);
            assert!(
                via.has_flag("ad"),
                "not validated:\n{}\n{}",
                via.raw,
                ub.log()
            );
            println!("{} {subnet}: {want}, validated (AD)", case.name);
        }
    }
}
