//! DNSSEC as validators see it: the real `veer serve` with a signed zone
//! (keys from `veer dnssec keygen`, trust anchor from `veer dnssec ds`),
//! checked by independent validators on loopback.
//!
//! - A validating Unbound in front of veer (tests/support/unbound.rs)
//!   sets AD on static, CNAME, wildcard, NXDOMAIN, NODATA (empty
//!   non-terminal, wildcard, DS at a delegation) answers, on failover,
//!   multivalue and weighted routes, on a failover route right after a
//!   transition and on a `closed` route's NODATA, and finds the insecure
//!   delegation insecure (no AD, no SERVFAIL). With a wrong anchor the
//!   same Unbound answers SERVFAIL: the validator is on.
//! - `delv` with the anchor says "fully validated" for the same names
//!   straight against veer; the referral to the insecure child is checked
//!   in dig's output (NS, NSEC with NS RRSIG NSEC, its RRSIG; no DS).
//! - Edge cases, through both: wildcard CNAME, CNAMEs into routes and to
//!   a missing name, mixed case, canonical order at the chain's ends,
//!   routes below empty non-terminals, TCP-sized answers, questions for
//!   the NSEC and RRSIG types; and a DS question at a cut to a child zone
//!   veer serves too.
//! - Signatures with a 6 s validity are made again before they expire:
//!   every RRSIG seen is still valid when it arrives, the expirations move
//!   forward, and delv keeps validating.
//! - A corrupt, foreign or missing private key: `veer check` fails naming
//!   the file; a running server's reload fails and the last good zone
//!   keeps serving answers that validate.
//! - NSD and Knot as secondaries of the signed zone serve answers that
//!   validate, before and after health transitions, and follow the
//!   re-signing before the signatures they hold expire.
//!
//! Every failure prints what veer sent (`dig +dnssec +multi`) and what the
//! validator said (Unbound's log, delv's `+vtrace`).

mod common;
#[path = "support/dnssec.rs"]
mod dnssec;
#[path = "support/secondary.rs"]
mod secondary;
#[path = "support/unbound.rs"]
mod unbound;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use dnssec::{Delv, ZoneKey, delv, delv_with, dig_multi, rrsigs, unix_now};
use secondary::{Kind, Secondary, Tsig};
use tempfile::TempDir;
use unbound::Unbound;

/// The signed zone.
const ORIGIN: &str = "s.test.";

/// Deadline for anything the tests wait for (a health flip, a cache
/// expiry, a transfer); they poll and go on as soon as it shows.
const WAIT: Duration = Duration::from_secs(15);

/// The zone: static data of every kind, a wildcard, an empty
/// non-terminal (`ent`, above `deep.ent`), CNAMEs and the insecure
/// delegation `sub` (no DS); after `sub`, names for the edge cases: a
/// wildcard CNAME, CNAMEs to a missing name and to routes, an owner in
/// mixed case, underscore and hyphen labels (canonical order), and a
/// TXT set too big for UDP with its signature.
const ZONE: &str = "\
$ORIGIN s.test.
$TTL 300
@        300 IN SOA ns1 hostmaster 1000 7200 3600 1209600 60
         IN  NS    ns1
         IN  MX    10 mail
ns1      IN  A     192.0.2.53
www      IN  A     192.0.2.80
         IN  AAAA  2001:db8::80
mail     IN  A     192.0.2.25
alias    IN  CNAME chain2
chain2   IN  CNAME www
*.wild   IN  A     192.0.2.99
         IN  TXT   \"from the wildcard\"
deep.ent IN  A     192.0.2.97
sub      IN  NS    ns1.sub
ns1.sub  IN  A     192.0.2.210
*.cn      IN  CNAME www
dangling  IN  CNAME nothere
appalias  IN  CNAME app
shutalias IN  CNAME shut
MiXeD     IN  A     192.0.2.77
_srv._tcp IN  SRV   0 0 443 www
a-b       IN  A     192.0.2.78
big       IN  TXT   \"big-0-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"
          IN  TXT   \"big-1-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"
          IN  TXT   \"big-2-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"
          IN  TXT   \"big-3-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"
          IN  TXT   \"big-4-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"
";

/// The delegated child `sub.s.test.`, unsigned, served by a second veer.
const CHILD_ZONE: &str = "\
$ORIGIN sub.s.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 60
     IN NS  ns1
ns1  IN A   192.0.2.210
www  IN A   192.0.2.211
";

/// The failover route's members: tier 1 follows check `p`.
const APP_UP: &str = "192.0.2.1";
const APP_DOWN: &str = "192.0.2.2";
/// The `closed` route's only member, following check `c`.
const SHUT: &str = "192.0.2.3";
/// The route below the empty non-terminal `deep2`.
const DEEP: &str = "192.0.2.5";

/// What an answer should be.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// NOERROR with exactly these RDATAs of the asked type.
    Data(&'static [&'static str]),
    /// NOERROR with at least one record of the asked type.
    Some,
    /// NOERROR, no record of the asked type.
    NoData,
    /// NXDOMAIN.
    NxDomain,
}

impl Want {
    fn status(self) -> &'static str {
        match self {
            Want::NxDomain => "NXDOMAIN",
            _ => "NOERROR",
        }
    }
}

/// One question and its expected answer.
struct Case {
    what: &'static str,
    name: &'static str,
    rtype: &'static str,
    want: Want,
}

const fn case(what: &'static str, name: &'static str, rtype: &'static str, want: Want) -> Case {
    Case {
        what,
        name,
        rtype,
        want,
    }
}

/// Every kind of answer the signed zone gives while both checks are up
/// (routes included), referrals left out. CDS and CDNSKEY need
/// `publish_cds = true`.
const CASES: &[Case] = &[
    case("static A", "www.s.test.", "A", Want::Data(&["192.0.2.80"])),
    case(
        "static AAAA",
        "www.s.test.",
        "AAAA",
        Want::Data(&["2001:db8::80"]),
    ),
    case(
        "MX at the apex",
        "s.test.",
        "MX",
        Want::Data(&["10 mail.s.test."]),
    ),
    case(
        "NS at the apex",
        "s.test.",
        "NS",
        Want::Data(&["ns1.s.test."]),
    ),
    case("SOA", "s.test.", "SOA", Want::Some),
    case("DNSKEY", "s.test.", "DNSKEY", Want::Some),
    case(
        "CNAME chain, two hops",
        "alias.s.test.",
        "A",
        Want::Data(&["192.0.2.80"]),
    ),
    case(
        "wildcard A",
        "x.wild.s.test.",
        "A",
        Want::Data(&["192.0.2.99"]),
    ),
    case(
        "wildcard TXT, two labels below",
        "a.b.wild.s.test.",
        "TXT",
        Want::Data(&["\"from the wildcard\""]),
    ),
    case("wildcard NODATA", "y.wild.s.test.", "MX", Want::NoData),
    case("NXDOMAIN", "nx.s.test.", "A", Want::NxDomain),
    case(
        "NXDOMAIN below an empty non-terminal",
        "x.ent.s.test.",
        "A",
        Want::NxDomain,
    ),
    case(
        "NXDOMAIN below an existing name",
        "a.www.s.test.",
        "A",
        Want::NxDomain,
    ),
    case("NODATA", "www.s.test.", "MX", Want::NoData),
    case(
        "NODATA at an empty non-terminal",
        "ent.s.test.",
        "A",
        Want::NoData,
    ),
    case(
        "NODATA for DS at an insecure delegation",
        "sub.s.test.",
        "DS",
        Want::NoData,
    ),
    case(
        "NODATA for DS where there is no delegation",
        "www.s.test.",
        "DS",
        Want::NoData,
    ),
    case(
        "failover route, primary up",
        "app.s.test.",
        "A",
        Want::Data(&[APP_UP]),
    ),
    case(
        "NODATA at a routed name (other type)",
        "app.s.test.",
        "AAAA",
        Want::NoData,
    ),
    case(
        "closed route, member up",
        "shut.s.test.",
        "A",
        Want::Data(&[SHUT]),
    ),
    case(
        "multivalue route",
        "m.s.test.",
        "A",
        Want::Data(&["192.0.2.7", "192.0.2.8"]),
    ),
    case("weighted route", "w.s.test.", "A", Want::Some),
    case("CDS (publish_cds)", "s.test.", "CDS", Want::Some),
    case("CDNSKEY (publish_cds)", "s.test.", "CDNSKEY", Want::Some),
];

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// A scenario directory with the zone, health files `p` and `c` (up), a
/// config and a key.
struct Setup {
    dir: TempDir,
    config: PathBuf,
    key: ZoneKey,
    anchors: PathBuf,
}

/// veer's config: `[dnssec]` lines `dnssec`, `head` before the checks
/// (keys, `[transfer]`), `zone_extra` in the `[[zone]]` table.
fn config_text(dnssec: &str, head: &str, zone_extra: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
state_dir = "state"

[rrl]
responses_per_second = 0

[dnssec]
{dnssec}

{head}

[check.p]
file = "health/p"
interval = "50ms"
fall = 1
rise = 1

[check.c]
file = "health/c"
interval = "50ms"
fall = 1
rise = 1

[[zone]]
origin = "{ORIGIN}"
file = "s.test.zone"
dnssec = true
{zone_extra}

[[route]]
name = "app.s.test."
type = "A"
ttl = 2
policy = "failover"
members = [ {{ value = "{APP_UP}", check = "p", tier = 1 }}, {{ value = "{APP_DOWN}", tier = 2 }} ]

[[route]]
name = "shut.s.test."
type = "A"
ttl = 2
policy = "failover"
when_all_down = "closed"
members = [ {{ value = "{SHUT}", check = "c" }} ]

[[route]]
name = "r.deep2.s.test."
type = "A"
ttl = 2
policy = "failover"
members = [ {{ value = "{DEEP}" }} ]

[[route]]
name = "m.s.test."
type = "A"
ttl = 5
policy = "multivalue"
members = [ {{ value = "192.0.2.7" }}, {{ value = "192.0.2.8" }} ]

[[route]]
name = "w.s.test."
type = "A"
ttl = 5
policy = "weighted"
members = [ {{ value = "192.0.2.9", weight = 1 }}, {{ value = "192.0.2.10", weight = 1 }} ]
"#
    )
}

fn setup(dnssec: &str) -> Setup {
    setup_with(dnssec, "", "")
}

fn setup_with(dnssec: &str, head: &str, zone_extra: &str) -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("veer-dnssec-")
        .tempdir()
        .expect("temp dir");
    write_file(dir.path(), "s.test.zone", ZONE);
    std::fs::create_dir_all(dir.path().join("health")).unwrap();
    set_health(dir.path(), "p", "up");
    set_health(dir.path(), "c", "up");
    let config = write_file(
        dir.path(),
        "veer.toml",
        &config_text(dnssec, head, zone_extra),
    );
    let key = dnssec::keygen(&config, ORIGIN);
    eprintln!("key: {}", key.ds_line);
    let anchors = key.write_anchors(dir.path());
    Setup {
        dir,
        config,
        key,
        anchors,
    }
}

/// A second veer serving the unsigned child zone `sub.s.test.`.
fn start_child() -> (TempDir, Veer) {
    let dir = tempfile::Builder::new()
        .prefix("veer-dnssec-child-")
        .tempdir()
        .expect("temp dir");
    write_file(dir.path(), "sub.s.test.zone", CHILD_ZONE);
    let config = write_file(
        dir.path(),
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[rrl]\nresponses_per_second = 0\n\
         [[zone]]\norigin = \"sub.s.test.\"\nfile = \"sub.s.test.zone\"\n",
    );
    let veer = Veer::start(&config);
    (dir, veer)
}

/// The `server:` lines of a validating Unbound trusting `key`, plus
/// `extra`.
fn validator_lines(key: &ZoneKey, extra: &[String]) -> Vec<String> {
    let mut lines = vec![
        "module-config: \"validator iterator\"".to_string(),
        key.unbound_anchor(),
        "val-sig-skew-min: 0".to_string(),
        "val-sig-skew-max: 0".to_string(),
        "val-log-level: 2".to_string(),
        // A bogus answer is asked again at once, not cached for a minute.
        "val-bogus-ttl: 0".to_string(),
    ];
    lines.extend_from_slice(extra);
    lines
}

fn start_unbound(upstream: SocketAddr, key: &ZoneKey, extra: &[String]) -> Unbound {
    let lines = validator_lines(key, extra);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    Unbound::start(upstream, ORIGIN, &refs)
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// The RDATA of the answer's records of type `rtype`, whatever their
/// owner (a CNAME chain ends at another name), sorted.
fn data_of(d: &Dig, rtype: &str) -> Vec<String> {
    let mut v: Vec<String> = d
        .answer
        .iter()
        .filter(|r| r.rtype == rtype)
        .map(|r| r.data.clone())
        .collect();
    v.sort();
    v
}

/// Whether `d` is the answer `want` to a question of type `rtype`.
fn matches(d: &Dig, rtype: &str, want: Want) -> bool {
    if d.status != want.status() {
        return false;
    }
    let got = data_of(d, rtype);
    match want {
        Want::Data(w) => {
            let mut w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            w.sort();
            got == w
        }
        Want::Some => !got.is_empty(),
        Want::NoData | Want::NxDomain => got.is_empty(),
    }
}

/// Asks the validating Unbound `name rtype` with `+dnssec +adflag`;
/// panics unless the answer is `want` with AD set, printing Unbound's
/// answer and log and veer's own answer to the same question.
#[track_caller]
fn secure(ub: &Unbound, veer: &Veer, what: &str, name: &str, rtype: &str, want: Want) -> Dig {
    try_secure(ub, veer, what, name, rtype, want).unwrap_or_else(|e| panic!("{e}"))
}

/// [`secure`], the failure as Err (with everything [`secure`] prints).
fn try_secure(
    ub: &Unbound,
    veer: &Veer,
    what: &str,
    name: &str,
    rtype: &str,
    want: Want,
) -> Result<Dig, String> {
    let d = ub.dig(&["+dnssec", "+adflag", name, rtype]);
    if d.has_flag("ad") && matches(&d, rtype, want) {
        return Ok(d);
    }
    Err(format!(
        "{what}: {name} {rtype} through the validating Unbound: status {}, flags {:?} (want {want:?} with AD)\n\
         --- Unbound's answer:\n{}\n--- veer's answer (dig +dnssec +multi):\n{}\n--- Unbound's log:\n{}",
        d.status,
        d.flags,
        d.raw,
        dig_multi(veer.addr, name, rtype),
        ub.log()
    ))
}

/// delv against `server`; panics unless it says "fully validated" and the
/// answer is `want`, printing delv's `+vtrace` and the server's answer.
#[track_caller]
fn validated(
    server: SocketAddr,
    anchors: &Path,
    what: &str,
    name: &str,
    rtype: &str,
    want: Want,
) -> Delv {
    try_validated(server, anchors, what, name, rtype, want).unwrap_or_else(|e| panic!("{e}"))
}

/// [`validated`], the failure as Err.
fn try_validated(
    server: SocketAddr,
    anchors: &Path,
    what: &str,
    name: &str,
    rtype: &str,
    want: Want,
) -> Result<Delv, String> {
    let v = delv(server, anchors, ORIGIN, name, rtype);
    let ok = v.fully_validated()
        && match want {
            Want::Data(w) => {
                let mut got = v.data(rtype);
                got.sort();
                let mut w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
                w.sort();
                got == w
            }
            Want::Some => !v.data(rtype).is_empty(),
            Want::NoData => v.negative_kind() == Some("NXRRSET"),
            Want::NxDomain => v.negative_kind() == Some("NXDOMAIN"),
        };
    if ok {
        return Ok(v);
    }
    let trace = delv_with(server, anchors, ORIGIN, name, rtype, &["+vtrace"]);
    Err(format!(
        "{what}: {name} {rtype}: delv does not say \"fully validated\" for {want:?}\n\
         --- {}\n{}\n--- delv +vtrace:\n{}\n--- the server's answer (dig +dnssec +multi):\n{}",
        v.cmd,
        v.raw,
        trace.raw,
        dig_multi(server, name, rtype)
    ))
}

/// Asks Unbound until the answer matches `want` (each answer on the way
/// must be validated: NOERROR/NXDOMAIN with AD); how long that took.
#[track_caller]
fn until_secure(
    ub: &Unbound,
    veer: &Veer,
    what: &str,
    name: &str,
    rtype: &str,
    want: Want,
) -> Duration {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let d = ub.dig(&["+dnssec", "+adflag", name, rtype]);
        if d.status == "SERVFAIL" || !d.has_flag("ad") {
            panic!(
                "{what}: {name} {rtype} through the validating Unbound: status {}, flags {:?} (want AD on every answer)\n\
                 --- Unbound's answer:\n{}\n--- veer's answer (dig +dnssec +multi):\n{}\n--- Unbound's log:\n{}",
                d.status,
                d.flags,
                d.raw,
                dig_multi(veer.addr, name, rtype),
                ub.log()
            );
        }
        if matches(&d, rtype, want) {
            return start.elapsed();
        }
        seen.push(format!("{} {:?}", d.status, data_of(&d, rtype)));
        if start.elapsed() > WAIT {
            panic!(
                "{what}: {name} {rtype} through Unbound is not {want:?} after {WAIT:?}; seen: {seen:?}\n--- veer:\n{}",
                dig_multi(veer.addr, name, rtype)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until veer itself answers `name A` with `want`.
#[track_caller]
fn wait_veer(veer: &Veer, name: &str, want: Want) {
    assert!(
        wait_until(WAIT, || matches(&veer.dig(&[name, "A"]), "A", want)),
        "veer does not answer {name} A with {want:?}:\n{}\n{}",
        dig_multi(veer.addr, name, "A"),
        veer.logs()
    );
}

// ---------------------------------------------------------------------------
// 1. A validating Unbound
// ---------------------------------------------------------------------------

#[test]
fn a_validating_unbound_sets_ad_on_every_kind_of_answer() {
    let s = setup("publish_cds = true");
    let veer = Veer::start(&s.config);
    let (_child_dir, child) = start_child();
    // The child is reached by a stub (its glue, 192.0.2.210, is not on
    // loopback); the proof that it has no DS still comes from veer.
    let stub = vec![
        "stub-zone:".to_string(),
        "    name: \"sub.s.test.\"".to_string(),
        format!("    stub-addr: {}@{}", child.addr.ip(), child.addr.port()),
    ];
    let ub = start_unbound(veer.addr, &s.key, &stub);

    // The validator is on: with a wrong anchor nothing validates.
    let wrong = start_unbound(veer.addr, &s.key.wrong(), &[]);
    let d = wrong.dig(&["+dnssec", "www.s.test.", "A"]);
    assert_eq!(
        d.status,
        "SERVFAIL",
        "a wrong trust anchor still gave an answer: is the validator on?\n{}\n{}",
        d.raw,
        wrong.log()
    );
    assert!(!d.has_flag("ad"), "{}", d.raw);
    drop(wrong);

    for c in CASES {
        let d = secure(&ub, &veer, c.what, c.name, c.rtype, c.want);
        eprintln!(
            "unbound: {:<45} {} {:<6} -> {} ad {:?}",
            c.what,
            c.name,
            c.rtype,
            d.status,
            data_of(&d, c.rtype)
        );
    }
    // The CNAME chain arrives whole, each link signed.
    let d = ub.dig(&["+dnssec", "alias.s.test.", "A"]);
    assert_eq!(
        data_of(&d, "CNAME"),
        ["chain2.s.test.", "www.s.test."],
        "{}",
        d.raw
    );
    let covered: BTreeSet<String> = rrsigs(&d)
        .iter()
        .map(|r| format!("{} {}", r.owner, r.covered))
        .collect();
    for want in [
        "alias.s.test. CNAME",
        "chain2.s.test. CNAME",
        "www.s.test. A",
    ] {
        assert!(covered.contains(want), "no RRSIG {want}:\n{}", d.raw);
    }

    // The insecure delegation: the child's answer comes through, not
    // validated (no AD) and not bogus (no SERVFAIL): veer proved there is
    // no DS.
    let d = ub.dig(&["+dnssec", "+adflag", "www.sub.s.test.", "A"]);
    eprintln!(
        "unbound: insecure delegation www.sub.s.test. A -> {} {:?} flags {:?}",
        d.status,
        data_of(&d, "A"),
        d.flags
    );
    assert!(
        d.status == "NOERROR" && data_of(&d, "A") == ["192.0.2.211"] && !d.has_flag("ad"),
        "the insecure child: want NOERROR 192.0.2.211 without AD\n{}\n--- veer's DS answer:\n{}\n--- Unbound's log:\n{}",
        d.raw,
        dig_multi(veer.addr, "sub.s.test.", "DS"),
        ub.log()
    );

    // Failover: right after the transition the new answer validates.
    set_health(s.dir.path(), "p", "down");
    let t = until_secure(
        &ub,
        &veer,
        "failover, primary down",
        "app.s.test.",
        "A",
        Want::Data(&[APP_DOWN]),
    );
    eprintln!("unbound: app.s.test. A -> {APP_DOWN} with AD {t:?} after the primary went down");
    set_health(s.dir.path(), "p", "up");
    let t = until_secure(
        &ub,
        &veer,
        "failover, primary back",
        "app.s.test.",
        "A",
        Want::Data(&[APP_UP]),
    );
    eprintln!("unbound: app.s.test. A -> {APP_UP} with AD {t:?} after the primary came back");

    // The closed route: NODATA while its member is down, validated.
    set_health(s.dir.path(), "c", "down");
    let t = until_secure(
        &ub,
        &veer,
        "closed route, member down",
        "shut.s.test.",
        "A",
        Want::NoData,
    );
    eprintln!("unbound: shut.s.test. A -> NODATA with AD {t:?} after its member went down");
    set_health(s.dir.path(), "c", "up");
    let t = until_secure(
        &ub,
        &veer,
        "closed route, member back",
        "shut.s.test.",
        "A",
        Want::Data(&[SHUT]),
    );
    eprintln!("unbound: shut.s.test. A -> {SHUT} with AD {t:?} after its member came back");

    let log = ub.log();
    assert!(
        !log.contains("validation failure"),
        "Unbound logged a validation failure:\n{log}"
    );
}

// ---------------------------------------------------------------------------
// 2. delv straight against veer
// ---------------------------------------------------------------------------

#[test]
fn delv_fully_validates_every_kind_of_answer() {
    let s = setup("publish_cds = true");
    let veer = Veer::start(&s.config);

    // delv validates at all: a wrong anchor fails.
    let wrong = s.key.wrong().write_anchors_as(s.dir.path(), "wrong.conf");
    let v = delv(veer.addr, &wrong, ORIGIN, "www.s.test.", "A");
    assert!(
        !v.fully_validated(),
        "delv validated with a wrong anchor:\n{}",
        v.raw
    );

    for c in CASES {
        let v = validated(veer.addr, &s.anchors, c.what, c.name, c.rtype, c.want);
        let first = v
            .raw
            .lines()
            .find(|l| l.starts_with("; ") && l.contains("validated"))
            .unwrap_or("");
        eprintln!("delv: {:<45} {} {:<6} -> {first}", c.what, c.name, c.rtype);
    }

    // Failover before and after a transition.
    set_health(s.dir.path(), "p", "down");
    wait_veer(&veer, "app.s.test.", Want::Data(&[APP_DOWN]));
    validated(
        veer.addr,
        &s.anchors,
        "failover, primary down",
        "app.s.test.",
        "A",
        Want::Data(&[APP_DOWN]),
    );
    set_health(s.dir.path(), "p", "up");
    wait_veer(&veer, "app.s.test.", Want::Data(&[APP_UP]));
    validated(
        veer.addr,
        &s.anchors,
        "failover, primary back",
        "app.s.test.",
        "A",
        Want::Data(&[APP_UP]),
    );

    // The closed route's NODATA: validated, and its NSEC (without A)
    // lives no longer than the route's TTL.
    set_health(s.dir.path(), "c", "down");
    wait_veer(&veer, "shut.s.test.", Want::NoData);
    validated(
        veer.addr,
        &s.anchors,
        "closed route, member down",
        "shut.s.test.",
        "A",
        Want::NoData,
    );
    let d = veer.dig(&["+dnssec", "shut.s.test.", "A"]);
    let nsec: Vec<&Rr> = d.authority.iter().filter(|r| r.rtype == "NSEC").collect();
    assert!(
        nsec.iter().any(|r| r.name == "shut.s.test."),
        "no NSEC at shut.s.test.:\n{}",
        d.raw
    );
    for r in &nsec {
        assert!(
            r.ttl <= 2,
            "NSEC TTL {} above the route's 2:\n{}",
            r.ttl,
            d.raw
        );
        if r.name == "shut.s.test." {
            let types: Vec<&str> = r.data.split_whitespace().skip(1).collect();
            assert!(!types.contains(&"A"), "the NSEC lists A:\n{}", d.raw);
        }
    }
    set_health(s.dir.path(), "c", "up");
    wait_veer(&veer, "shut.s.test.", Want::Data(&[SHUT]));
    validated(
        veer.addr,
        &s.anchors,
        "closed route, member back",
        "shut.s.test.",
        "A",
        Want::Data(&[SHUT]),
    );
    // After it reopened, the NSEC at the name lists A again.
    let d = veer.dig(&["+dnssec", "shut.s.test.", "AAAA"]);
    let at: Vec<&Rr> = d
        .authority
        .iter()
        .filter(|r| r.rtype == "NSEC" && r.name == "shut.s.test.")
        .collect();
    assert!(
        at.len() == 1 && at[0].data.split_whitespace().any(|t| t == "A"),
        "{}",
        d.raw
    );

    // The referral to the insecure child (delv cannot follow it): NS,
    // the NSEC proving no DS (NS RRSIG NSEC) and its RRSIG; no AA, no DS.
    let d = veer.dig(&["+dnssec", "www.sub.s.test.", "A"]);
    eprintln!(
        "referral:\n{}",
        dig_multi(veer.addr, "www.sub.s.test.", "A")
    );
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(!d.has_flag("aa"), "a referral with AA:\n{}", d.raw);
    assert!(d.answer.is_empty(), "{}", d.raw);
    let types: BTreeSet<(String, String)> = d
        .authority
        .iter()
        .map(|r| (r.name.clone(), r.rtype.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("sub.s.test.", "NS"),
        ("sub.s.test.", "NSEC"),
        ("sub.s.test.", "RRSIG"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(types, want, "authority of the referral:\n{}", d.raw);
    let nsec = d.authority.iter().find(|r| r.rtype == "NSEC").unwrap();
    let bitmap: BTreeSet<&str> = nsec.data.split_whitespace().skip(1).collect();
    assert_eq!(
        bitmap,
        ["NS", "NSEC", "RRSIG"].into_iter().collect(),
        "the delegation's NSEC bitmap:\n{}",
        d.raw
    );
    let sigs = rrsigs(&d);
    assert!(
        sigs.len() == 1 && sigs[0].covered == "NSEC" && sigs[0].tag == s.key.tag,
        "the referral's RRSIGs: {sigs:?}\n{}",
        d.raw
    );
    assert_eq!(
        d.additional
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["ns1.sub.s.test. 300 IN A 192.0.2.210"],
        "glue, unsigned:\n{}",
        d.raw
    );
    // The same referral without DO: no DNSSEC records.
    let d = veer.dig(&["www.sub.s.test.", "A"]);
    assert!(
        d.authority.iter().all(|r| r.rtype == "NS"),
        "DNSSEC records without DO:\n{}",
        d.raw
    );
    let d = veer.dig(&["www.s.test.", "A"]);
    assert!(
        d.answer.iter().all(|r| r.rtype == "A") && d.authority.is_empty(),
        "DNSSEC records without DO:\n{}",
        d.raw
    );
}

// ---------------------------------------------------------------------------
// Edge cases, through Unbound and delv
// ---------------------------------------------------------------------------

/// Less common questions to the same zone (both checks up).
const EDGE_CASES: &[Case] = &[
    case(
        "wildcard CNAME",
        "x.cn.s.test.",
        "A",
        Want::Data(&["192.0.2.80"]),
    ),
    case(
        "CNAME to a missing name",
        "dangling.s.test.",
        "A",
        Want::NxDomain,
    ),
    case(
        "CNAME to a failover route",
        "appalias.s.test.",
        "A",
        Want::Data(&[APP_UP]),
    ),
    case(
        "CNAME to a closed route, member up",
        "shutalias.s.test.",
        "A",
        Want::Data(&[SHUT]),
    ),
    case(
        "owner in mixed case in the zone file",
        "mixed.s.test.",
        "A",
        Want::Data(&["192.0.2.77"]),
    ),
    case(
        "question in upper case",
        "WWW.S.TEST.",
        "A",
        Want::Data(&["192.0.2.80"]),
    ),
    case(
        "SRV below an underscore label",
        "_srv._tcp.s.test.",
        "SRV",
        Want::Data(&["0 0 443 www.s.test."]),
    ),
    case(
        "NODATA at an underscore empty non-terminal",
        "_tcp.s.test.",
        "A",
        Want::NoData,
    ),
    case(
        "NXDOMAIN sorting before every name but the apex",
        "0.s.test.",
        "A",
        Want::NxDomain,
    ),
    case(
        "NXDOMAIN beside a hyphenated name",
        "a-c.s.test.",
        "A",
        Want::NxDomain,
    ),
    case(
        "NXDOMAIN sorting after the last name",
        "zzzz.s.test.",
        "A",
        Want::NxDomain,
    ),
    case(
        "route below an empty non-terminal",
        "r.deep2.s.test.",
        "A",
        Want::Data(&[DEEP]),
    ),
    case(
        "NODATA at a route's empty non-terminal",
        "deep2.s.test.",
        "A",
        Want::NoData,
    ),
    case(
        "NXDOMAIN below a routed name",
        "x.app.s.test.",
        "A",
        Want::NxDomain,
    ),
    case(
        "TXT set too big for UDP (TCP retry)",
        "big.s.test.",
        "TXT",
        Want::Some,
    ),
    case("NSEC at the apex", "s.test.", "NSEC", Want::Some),
    case("NSEC at a name", "www.s.test.", "NSEC", Want::Some),
];

#[test]
fn edge_cases_validate_through_unbound_and_delv() {
    let s = setup("");
    let veer = Veer::start(&s.config);
    let ub = start_unbound(veer.addr, &s.key, &[]);
    let mut failures = Vec::new();
    let mut note = |what: &str, r: Result<String, String>| match r {
        Ok(line) => eprintln!("{what}: {line}"),
        Err(e) => {
            eprintln!("{what}: FAILED");
            failures.push(e);
        }
    };
    for c in EDGE_CASES {
        note(
            &format!("unbound {:<45} {} {}", c.what, c.name, c.rtype),
            try_secure(&ub, &veer, c.what, c.name, c.rtype, c.want)
                .map(|d| format!("{} ad {:?}", d.status, data_of(&d, c.rtype))),
        );
        note(
            &format!("delv    {:<45} {} {}", c.what, c.name, c.rtype),
            try_validated(veer.addr, &s.anchors, c.what, c.name, c.rtype, c.want)
                .map(|_| "fully validated".to_string()),
        );
    }

    // A question for type RRSIG: validators do not validate the answer
    // (RRSIGs are not signed), but veer's answer must not contradict its
    // own NSEC, which lists RRSIG at the name: the RRSIGs in the answer
    // (as NSD, BIND and Knot answer), never a NODATA Unbound finds bogus.
    let d = veer.dig(&["+dnssec", "www.s.test.", "RRSIG"]);
    let answered: BTreeSet<String> = d
        .answer
        .iter()
        .filter_map(dnssec::parse_rrsig)
        .map(|r| r.covered)
        .collect();
    note(
        "veer    the RRSIGs at a name                    www.s.test. RRSIG",
        if answered.contains("A") && answered.contains("AAAA") {
            Ok(format!("{} RRSIGs covering {answered:?}", d.answer.len()))
        } else {
            Err(format!(
                "www.s.test. RRSIG: the answer holds RRSIGs over {answered:?}, want A and AAAA (the NSEC at the name lists RRSIG)\n{}",
                dig_multi(veer.addr, "www.s.test.", "RRSIG")
            ))
        },
    );
    let d = ub.dig(&["+dnssec", "www.s.test.", "RRSIG"]);
    note(
        "unbound the RRSIGs at a name                    www.s.test. RRSIG",
        if d.status == "NOERROR" {
            Ok(format!("{} {} records", d.status, d.answer.len()))
        } else {
            Err(format!(
                "www.s.test. RRSIG through the validating Unbound: {} (want NOERROR)\n{}\n--- veer:\n{}\n--- Unbound's log:\n{}",
                d.status,
                d.raw,
                dig_multi(veer.addr, "www.s.test.", "RRSIG"),
                ub.log()
            ))
        },
    );

    // A CNAME into a closed route: NODATA for the target, proven.
    set_health(s.dir.path(), "c", "down");
    wait_veer(&veer, "shut.s.test.", Want::NoData);
    note(
        "unbound CNAME to a closed route, member down    shutalias.s.test. A",
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            until_secure(
                &ub,
                &veer,
                "CNAME to a closed route, member down",
                "shutalias.s.test.",
                "A",
                Want::NoData,
            )
        }))
        .map(|t| format!("NODATA with AD after {t:?}"))
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panicked".to_string())
        }),
    );
    note(
        "delv    CNAME to a closed route, member down    shutalias.s.test. A",
        try_validated(
            veer.addr,
            &s.anchors,
            "CNAME to a closed route, member down",
            "shutalias.s.test.",
            "A",
            Want::NoData,
        )
        .map(|_| "negative response, fully validated".to_string()),
    );

    assert!(
        failures.is_empty(),
        "{} edge case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n=====\n\n")
    );
}

/// veer serves the unsigned child `sub.s.test.` too: the DS question
/// belongs to the parent side of the cut (RFC 4035 3.1.4.1), where the
/// NSEC proves there is none; answered from the child (its unsigned SOA)
/// it proves nothing, and the whole child turns bogus.
#[test]
fn ds_at_a_cut_to_a_zone_veer_also_serves_comes_from_the_signed_parent() {
    let s = setup("");
    write_file(s.dir.path(), "sub.s.test.zone", CHILD_ZONE);
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push_str("\n[[zone]]\norigin = \"sub.s.test.\"\nfile = \"sub.s.test.zone\"\n");
    std::fs::write(&s.config, text).unwrap();
    let veer = Veer::start(&s.config);
    let ub = start_unbound(veer.addr, &s.key, &[]);
    let mut failures = Vec::new();

    let d = veer.dig(&["+dnssec", "sub.s.test.", "DS"]);
    eprintln!(
        "veer: sub.s.test. DS:\n{}",
        dig_multi(veer.addr, "sub.s.test.", "DS")
    );
    let parent_side = d
        .authority
        .iter()
        .any(|r| r.rtype == "NSEC" && r.name == "sub.s.test.")
        && d.authority
            .iter()
            .any(|r| r.rtype == "SOA" && r.name == "s.test.");
    if !parent_side {
        failures.push(format!(
            "sub.s.test. DS is answered from the child (want the parent's SOA and the NSEC at sub.s.test.):\n{}",
            dig_multi(veer.addr, "sub.s.test.", "DS")
        ));
    }
    if let Err(e) = try_validated(
        veer.addr,
        &s.anchors,
        "DS at a cut, child served too",
        "sub.s.test.",
        "DS",
        Want::NoData,
    ) {
        failures.push(e);
    }
    if let Err(e) = try_secure(
        &ub,
        &veer,
        "DS at a cut, child served too",
        "sub.s.test.",
        "DS",
        Want::NoData,
    ) {
        failures.push(e);
    }
    // The child's own answer: insecure (no AD), not bogus.
    let d = ub.dig(&["+dnssec", "+adflag", "www.sub.s.test.", "A"]);
    eprintln!(
        "unbound: www.sub.s.test. A -> {} {:?} flags {:?}",
        d.status,
        data_of(&d, "A"),
        d.flags
    );
    if d.status != "NOERROR" || data_of(&d, "A") != ["192.0.2.211"] || d.has_flag("ad") {
        failures.push(format!(
            "www.sub.s.test. A through the validating Unbound: want NOERROR 192.0.2.211 without AD\n{}\n--- Unbound's log:\n{}",
            d.raw,
            ub.log()
        ));
    }
    let v = delv(veer.addr, &s.anchors, ORIGIN, "www.sub.s.test.", "A");
    eprintln!("delv www.sub.s.test. A:\n{}", v.raw);
    if !(v.raw.contains("; unsigned answer") && v.data("A") == ["192.0.2.211"]) {
        failures.push(format!(
            "www.sub.s.test. A: delv does not find an insecure (unsigned) answer:\n{}",
            v.raw
        ));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n=====\n\n")
    );
}

// ---------------------------------------------------------------------------
// 3. Signatures made again before they expire
// ---------------------------------------------------------------------------

#[test]
fn short_lived_signatures_are_made_again_and_keep_validating() {
    let s = setup("validity = \"6s\"\nrefresh = \"4s\"\ninception = \"1h\"");
    let veer = Veer::start(&s.config);
    // Names whose RRSIGs cover the zone's kinds of signatures: static,
    // routed, the SOA (in the NXDOMAIN proof), NSEC, DNSKEY.
    let names: &[(&str, &str)] = &[
        ("www.s.test.", "A"),
        ("app.s.test.", "A"),
        ("nx.s.test.", "A"),
        ("s.test.", "DNSKEY"),
        ("s.test.", "SOA"),
    ];
    let start = Instant::now();
    let mut expirations: BTreeSet<u64> = BTreeSet::new();
    let mut min_margin = f64::MAX;
    let mut queries = 0;
    let mut delvs = 0;
    let mut last_delv = None::<Instant>;
    let mut flipped = false;
    let mut serials = BTreeSet::new();
    while start.elapsed() < Duration::from_secs(11) {
        serials.insert(serial(veer.addr));
        for &(name, rtype) in names {
            let d = veer.dig(&["+dnssec", name, rtype]);
            let now = unix_now();
            queries += 1;
            let sigs = rrsigs(&d);
            assert!(!sigs.is_empty(), "no RRSIG for {name} {rtype}:\n{}", d.raw);
            for sig in &sigs {
                let margin = sig.expiration as f64 - now;
                min_margin = min_margin.min(margin);
                // An RRSIG is valid up to and including its expiration
                // second (RFC 4034 3.1.5).
                assert!(
                    sig.expiration as f64 >= now.floor(),
                    "{name} {rtype}: an expired RRSIG ({} {}: expiration {}, now {now:.1}) at {:?}:\n{}\n{}",
                    sig.owner,
                    sig.covered,
                    sig.expiration,
                    start.elapsed(),
                    d.raw,
                    veer.logs()
                );
                assert!(
                    sig.expiration as f64 <= now + 7.0,
                    "{name} {rtype}: expiration {} is more than the 6 s validity away ({now:.1}):\n{}",
                    sig.expiration,
                    d.raw
                );
                assert!(
                    sig.inception as f64 <= now - 3590.0,
                    "{name} {rtype}: inception {} not an hour back:\n{}",
                    sig.inception,
                    d.raw
                );
                expirations.insert(sig.expiration);
            }
        }
        if last_delv.is_none_or(|t| t.elapsed() >= Duration::from_millis(900)) {
            last_delv = Some(Instant::now());
            delvs += 1;
            validated(
                veer.addr,
                &s.anchors,
                "re-signed static",
                "www.s.test.",
                "A",
                Want::Data(&["192.0.2.80"]),
            );
            validated(
                veer.addr,
                &s.anchors,
                "re-signed NXDOMAIN",
                "nx.s.test.",
                "A",
                Want::NxDomain,
            );
            let want = if flipped { APP_DOWN } else { APP_UP };
            // Right after the flip veer may still answer the old member.
            let v = delv(veer.addr, &s.anchors, ORIGIN, "app.s.test.", "A");
            assert!(
                v.fully_validated() && v.data("A").len() == 1,
                "re-signed route: delv says\n{}\n{}",
                v.raw,
                dig_multi(veer.addr, "app.s.test.", "A")
            );
            if !flipped {
                assert_eq!(v.data("A"), [want], "{}", v.raw);
            }
        }
        // Halfway: a health transition between re-signings.
        if !flipped && start.elapsed() > Duration::from_secs(5) {
            set_health(s.dir.path(), "p", "down");
            flipped = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let resigns = veer.logs().matches("signatures due for refresh").count();
    eprintln!(
        "{queries} queries over {:?}: {} distinct expirations {:?}; smallest margin to expiry {min_margin:.2} s; {delvs} delv rounds; {resigns} re-signings logged",
        start.elapsed(),
        expirations.len(),
        expirations
    );
    eprintln!("SOA serials seen: {serials:?}");
    assert!(
        expirations.len() >= 3,
        "the expirations did not move forward twice: {expirations:?}\n{}",
        veer.logs()
    );
    assert!(resigns >= 2, "{}", veer.logs());
    // The flip was answered and validated too.
    wait_veer(&veer, "app.s.test.", Want::Data(&[APP_DOWN]));
    validated(
        veer.addr,
        &s.anchors,
        "re-signed route after the flip",
        "app.s.test.",
        "A",
        Want::Data(&[APP_DOWN]),
    );
}

// ---------------------------------------------------------------------------
// 4. A corrupt or missing private key
// ---------------------------------------------------------------------------

fn check(config: &Path) -> (bool, String) {
    let out = run_veer(
        &["check", "--config", config.to_str().unwrap()],
        Duration::from_secs(20),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn veer_check_names_a_corrupt_or_missing_private_key() {
    let s = setup("");
    let (ok, out) = check(&s.config);
    assert!(ok, "{out}");
    let private = s.key.private.display().to_string();

    let good = s.key.corrupt_private("garbage!!");
    let (ok, out) = check(&s.config);
    eprintln!("corrupt key: veer check says: {}", out.trim());
    assert!(!ok, "veer check passed a corrupt key:\n{out}");
    assert!(
        out.contains(&private),
        "the message does not name {private}:\n{out}"
    );

    // Valid base64 that is no P-256 key either.
    s.key.corrupt_private("AAAA");
    let (ok, out) = check(&s.config);
    eprintln!("short key: veer check says: {}", out.trim());
    assert!(!ok, "veer check passed a 3-byte key:\n{out}");
    assert!(
        out.contains(&private),
        "the message does not name {private}:\n{out}"
    );

    // A well-formed private key of another key pair.
    let other = setup("");
    let theirs = std::fs::read_to_string(&other.key.private).unwrap();
    let their_line = theirs
        .lines()
        .find(|l| l.starts_with("PrivateKey: "))
        .unwrap();
    s.key
        .corrupt_private(their_line.trim_start_matches("PrivateKey: "));
    let (ok, out) = check(&s.config);
    eprintln!("another pair's key: veer check says: {}", out.trim());
    assert!(
        !ok,
        "veer check passed a private key that does not match the .key file:\n{out}"
    );
    assert!(
        out.contains(&private),
        "the message does not name {private}:\n{out}"
    );

    std::fs::write(&s.key.private, &good).unwrap();
    let (ok, out) = check(&s.config);
    assert!(ok, "{out}");

    std::fs::remove_file(&s.key.private).unwrap();
    let (ok, out) = check(&s.config);
    eprintln!("missing key: veer check says: {}", out.trim());
    assert!(!ok, "veer check passed without the private key:\n{out}");
    let file_name = s.key.private.file_name().unwrap().to_string_lossy();
    assert!(
        out.contains(&*file_name),
        "the message does not name {file_name}:\n{out}"
    );
}

#[test]
fn a_reload_with_a_broken_key_fails_and_the_last_good_zone_keeps_validating() {
    let s = setup("");
    let mut veer = Veer::start(&s.config);
    validated(
        veer.addr,
        &s.anchors,
        "before",
        "www.s.test.",
        "A",
        Want::Data(&["192.0.2.80"]),
    );
    let rejected = |veer: &Veer| {
        veer.logs()
            .matches("reload rejected: still serving")
            .count()
    };
    let private = s.key.private.display().to_string();

    // The key goes bad, then the zone is edited: the watcher's reload
    // fails, naming the key file.
    let good = s.key.corrupt_private("garbage!!");
    let before = rejected(&veer);
    write_file(
        s.dir.path(),
        "s.test.zone",
        &format!(
            "{}new      IN  A     192.0.2.123\n",
            ZONE.replace(" 1000 ", " 1001 ")
        ),
    );
    assert!(
        wait_until(WAIT, || rejected(&veer) > before),
        "editing the zone with a corrupt key was not a failed reload:\n{}",
        veer.logs()
    );
    let logs = veer.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("reload rejected") && l.contains(&private)),
        "no reload error names {private}:\n{logs}"
    );
    eprintln!(
        "zone edited with a corrupt key: {}",
        logs.lines()
            .filter(|l| l.contains("reload rejected"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The last good zone: still signed, still validating, without the
    // new name.
    let check_old = |when: &str| {
        let old: &[(&str, &str, Want)] = &[
            ("www.s.test.", "A", Want::Data(&["192.0.2.80"])),
            ("s.test.", "DNSKEY", Want::Some),
            ("x.wild.s.test.", "A", Want::Data(&["192.0.2.99"])),
            ("ent.s.test.", "A", Want::NoData),
            ("nx.s.test.", "A", Want::NxDomain),
            ("new.s.test.", "A", Want::NxDomain),
        ];
        for &(name, rtype, want) in old {
            validated(veer.addr, &s.anchors, when, name, rtype, want);
        }
        eprintln!("{when}: the last good zone validates");
    };
    check_old("after a failed reload by the watcher");

    // SIGHUP: fails the same way.
    let before = rejected(&veer);
    veer.signal("HUP");
    assert!(
        wait_until(WAIT, || rejected(&veer) > before),
        "SIGHUP with a corrupt key was not a failed reload:\n{}",
        veer.logs()
    );
    check_old("after a failed SIGHUP reload");
    // A health transition after the failed reloads is still signed with
    // the last good key.
    set_health(s.dir.path(), "p", "down");
    wait_veer(&veer, "app.s.test.", Want::Data(&[APP_DOWN]));
    validated(
        veer.addr,
        &s.anchors,
        "failover after failed reloads",
        "app.s.test.",
        "A",
        Want::Data(&[APP_DOWN]),
    );

    // The key file gone: the same.
    std::fs::remove_file(&s.key.private).unwrap();
    let before = rejected(&veer);
    veer.signal("HUP");
    assert!(
        wait_until(WAIT, || rejected(&veer) > before),
        "SIGHUP without the private key was not a failed reload:\n{}",
        veer.logs()
    );
    check_old("after a reload without the private key");

    // The key back: the edited zone loads, signed.
    std::fs::write(&s.key.private, good).unwrap();
    veer.reload_with(&std::fs::read_to_string(&s.config).unwrap());
    validated(
        veer.addr,
        &s.anchors,
        "the edited zone once the key is back",
        "new.s.test.",
        "A",
        Want::Data(&["192.0.2.123"]),
    );
    validated(
        veer.addr,
        &s.anchors,
        "the edited zone once the key is back",
        "www.s.test.",
        "A",
        Want::Data(&["192.0.2.80"]),
    );
    assert!(veer.is_running());
    veer.terminate();
}

// ---------------------------------------------------------------------------
// 5. NSD and Knot as secondaries of the signed zone
// ---------------------------------------------------------------------------

fn tsig() -> Tsig {
    Tsig::hmac_sha256("xfr-key", "Vh3cMJlR0Wm0nU9bR3pHb1pkQ2l0eFZwN2dGa0l2c2E=")
}

fn xfr_head() -> String {
    let k = tsig();
    format!(
        "[key.{}]\nalgorithm = \"{}\"\nsecret = \"{}\"\n\n[transfer]\nnotify_timeout = \"300ms\"\n",
        k.name, k.algorithm, k.secret
    )
}

fn xfr_zone(notify: &[&Secondary]) -> String {
    let k = tsig();
    let targets: Vec<String> = notify
        .iter()
        .map(|s| format!("{{ address = \"{}\", key = \"{}\" }}", s.addr(), k.name))
        .collect();
    format!(
        "allow_transfer = [ {{ network = \"127.0.0.0/8\", key = \"{}\" }} ]\nnotify = [ {} ]\n",
        k.name,
        targets.join(", ")
    )
}

fn serial(addr: SocketAddr) -> u32 {
    let d = dig(addr, &["s.test.", "SOA"]);
    d.answer_of("SOA")[0]
        .data
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

/// The secondary's answers validate (delv against it) and carry RRSIGs;
/// `up`: both checks up (else both down: the failover route on its
/// second tier, the closed route without an RRset).
fn secondary_validates(s: &Secondary, anchors: &Path, up: bool) {
    let who = format!("{:?}", s.kind());
    let d = dig(s.addr(), &["+dnssec", "www.s.test.", "A"]);
    let sigs = rrsigs(&d);
    eprintln!(
        "{who}: www.s.test. A +dnssec -> {} records, {} RRSIGs",
        d.answer.len(),
        sigs.len()
    );
    assert!(
        sigs.iter().any(|r| r.covered == "A"),
        "{who} serves www.s.test. A without an RRSIG (did the transfer carry the signatures?):\n{}",
        dig_multi(s.addr(), "www.s.test.", "A")
    );
    let (app, shut) = if up {
        (Want::Data(&[APP_UP]), Want::Data(&[SHUT]))
    } else {
        (Want::Data(&[APP_DOWN]), Want::NoData)
    };
    let cases = [
        case("static A", "www.s.test.", "A", Want::Data(&["192.0.2.80"])),
        case("DNSKEY", "s.test.", "DNSKEY", Want::Some),
        case("SOA", "s.test.", "SOA", Want::Some),
        case(
            "CNAME chain",
            "alias.s.test.",
            "A",
            Want::Data(&["192.0.2.80"]),
        ),
        case(
            "wildcard",
            "x.wild.s.test.",
            "A",
            Want::Data(&["192.0.2.99"]),
        ),
        case("NXDOMAIN", "nx.s.test.", "A", Want::NxDomain),
        case("NODATA", "www.s.test.", "MX", Want::NoData),
        case(
            "NODATA at an empty non-terminal",
            "ent.s.test.",
            "A",
            Want::NoData,
        ),
        case(
            "DS at the insecure delegation",
            "sub.s.test.",
            "DS",
            Want::NoData,
        ),
        case("the failover route", "app.s.test.", "A", app),
        case("the closed route", "shut.s.test.", "A", shut),
        case(
            "the multivalue route (every healthy member)",
            "m.s.test.",
            "A",
            Want::Data(&["192.0.2.7", "192.0.2.8"]),
        ),
        case(
            "the weighted route (every eligible member)",
            "w.s.test.",
            "A",
            Want::Data(&["192.0.2.9", "192.0.2.10"]),
        ),
        case(
            "route below an empty non-terminal",
            "r.deep2.s.test.",
            "A",
            Want::Data(&[DEEP]),
        ),
    ];
    let mut failures = Vec::new();
    for c in cases {
        match try_validated(
            s.addr(),
            anchors,
            &format!("{who}: {}", c.what),
            c.name,
            c.rtype,
            c.want,
        ) {
            Ok(_) => eprintln!("{who}: delv {} {}: fully validated", c.name, c.rtype),
            Err(e) => {
                eprintln!("{who}: delv {} {}: FAILED", c.name, c.rtype);
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{who}: {} answer(s) do not validate:\n\n{}",
        failures.len(),
        failures.join("\n\n=====\n\n")
    );
}

#[test]
fn nsd_and_knot_secondaries_serve_answers_that_validate() {
    let s = setup_with("", &xfr_head(), &xfr_zone(&[]));
    let veer = Veer::start(&s.config);
    let s0 = serial(veer.addr);
    let k = tsig();
    let nsd = Secondary::start(Kind::Nsd, ORIGIN, veer.addr, Some(&k));
    let knot = Secondary::start(Kind::Knot, ORIGIN, veer.addr, Some(&k));
    for sec in [&nsd, &knot] {
        let t = sec.wait_serial(s0, WAIT);
        eprintln!("{:?} has serial {s0} after {t:?}", sec.kind());
    }
    // veer's own transfer, for the record.
    let axfr = std::process::Command::new("dig")
        .arg(format!("@{}", veer.addr.ip()))
        .args([
            "-p",
            &veer.addr.port().to_string(),
            "+tcp",
            "+nocmd",
            "+nostats",
        ])
        .args(["-y", &k.dig_key(), "s.test.", "AXFR"])
        .output()
        .unwrap();
    let axfr = String::from_utf8_lossy(&axfr.stdout).into_owned();
    let types: BTreeSet<&str> = axfr
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    eprintln!("types in veer's AXFR: {types:?}");
    assert!(
        ["DNSKEY", "RRSIG", "NSEC"]
            .iter()
            .all(|t| types.contains(t)),
        "veer's AXFR of the signed zone lacks DNSKEY, RRSIG or NSEC (types: {types:?}):\n{axfr}"
    );

    // NOTIFY targets arrive by reload.
    let config = config_text("", &xfr_head(), &xfr_zone(&[&nsd, &knot]));
    veer.reload_with(&config);

    for sec in [&nsd, &knot] {
        secondary_validates(sec, &s.anchors, true);
    }

    // Health transitions reach them by NOTIFY and IXFR, signed.
    set_health(s.dir.path(), "p", "down");
    set_health(s.dir.path(), "c", "down");
    for sec in [&nsd, &knot] {
        assert!(
            wait_until(WAIT, || sec.ask("app.s.test.", "A") == [APP_DOWN]
                && sec.ask("shut.s.test.", "A").is_empty()),
            "{:?} did not follow the transition\n{}\n{}",
            sec.kind(),
            sec.log(),
            veer.logs()
        );
    }
    let s1 = serial(veer.addr);
    assert_ne!(s1, s0);
    for sec in [&nsd, &knot] {
        sec.wait_serial(s1, WAIT);
        secondary_validates(sec, &s.anchors, false);
    }
}

/// Signatures made again at the primary must reach the secondaries before
/// the old ones expire: each re-signing is a new version of the zone (a
/// higher serial, NOTIFY, IXFR), or the secondaries go on serving
/// signatures that run out.
#[test]
fn nsd_and_knot_follow_re_signing_before_the_signatures_expire() {
    let dnssec = "validity = \"10s\"\nrefresh = \"6s\"\ninception = \"1h\"";
    let s = setup_with(dnssec, &xfr_head(), &xfr_zone(&[]));
    let veer = Veer::start(&s.config);
    let s0 = serial(veer.addr);
    let k = tsig();
    let nsd = Secondary::start(Kind::Nsd, ORIGIN, veer.addr, Some(&k));
    let knot = Secondary::start(Kind::Knot, ORIGIN, veer.addr, Some(&k));
    for sec in [&nsd, &knot] {
        sec.wait_serial(s0, WAIT);
    }
    veer.reload_with(&config_text(dnssec, &xfr_head(), &xfr_zone(&[&nsd, &knot])));

    let start = Instant::now();
    let mut serials: Vec<BTreeSet<u32>> = vec![BTreeSet::new(), BTreeSet::new()];
    let mut expirations: Vec<BTreeSet<u64>> = vec![BTreeSet::new(), BTreeSet::new()];
    // Longer than one validity: signatures from the first transfer would
    // have expired by the end.
    while start.elapsed() < Duration::from_secs(14) {
        for (i, sec) in [&nsd, &knot].into_iter().enumerate() {
            if let Some(sn) = sec.serial() {
                serials[i].insert(sn);
            }
            let d = dig(sec.addr(), &["+dnssec", "www.s.test.", "A"]);
            let now = unix_now();
            let sigs = rrsigs(&d);
            assert!(
                !sigs.is_empty(),
                "{:?} at {:?}: www.s.test. A without RRSIG:\n{}",
                sec.kind(),
                start.elapsed(),
                d.raw
            );
            for sig in &sigs {
                assert!(
                    sig.expiration as f64 >= now.floor(),
                    "{:?} at {:?} serves an expired RRSIG ({} {} expired {}, now {now:.1}); serials seen {:?}, veer's {}:\n{}",
                    sec.kind(),
                    start.elapsed(),
                    sig.owner,
                    sig.covered,
                    sig.expiration,
                    serials[i],
                    serial(veer.addr),
                    d.raw
                );
                expirations[i].insert(sig.expiration);
            }
            validated(
                sec.addr(),
                &s.anchors,
                &format!("{:?} across re-signing", sec.kind()),
                "www.s.test.",
                "A",
                Want::Data(&["192.0.2.80"]),
            );
            validated(
                sec.addr(),
                &s.anchors,
                &format!("{:?} across re-signing", sec.kind()),
                "nx.s.test.",
                "A",
                Want::NxDomain,
            );
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    let resigns = veer.logs().matches("signatures due for refresh").count();
    eprintln!(
        "{resigns} re-signings at veer; serials at NSD {:?}, Knot {:?}; expirations at NSD {:?}, Knot {:?}",
        serials[0], serials[1], expirations[0], expirations[1]
    );
    for (i, kind) in ["NSD", "Knot"].iter().enumerate() {
        assert!(
            serials[i].len() >= 3 && expirations[i].len() >= 3,
            "{kind} did not follow two re-signings: serials {:?}, expirations {:?}",
            serials[i],
            expirations[i]
        );
    }
}
