//! Adversarial review of DNSSEC signing: each test drives the real loader,
//! controller and answer path and fails on a defect a validator (or a
//! secondary) would see.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType};

use crate::control::Controller;
use crate::control::build::Base;
use crate::dns::answer::{Answer, resolve};
use crate::route::Client;
use crate::store::Snapshot;
use crate::zone::owned_key;
use crate::zone::sign::canonical_cmp;

const T_ZONE: &str = "$ORIGIN t.\n$TTL 300\n\
@ IN SOA ns host 1 3600 600 86400 60\n\
@ IN NS ns\n\
ns IN A 192.0.2.53\n\
www IN A 192.0.2.80\n\
foo.*.went IN A 192.0.2.81\n";

struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// Zones (origin, text) all signed with a fresh ECDSA CSK each, and
/// `body` (checks, routes) in the config. A zone text may hold `{DS
/// origin}`: replaced by that zone's DS record data.
fn setup(zones: &[(&str, &str)], body: &str) -> Setup {
    setup_with(zones, &[], body)
}

/// [`setup`] with the zones in `unsigned` not signed (no key, `dnssec =
/// false`).
fn setup_with(zones: &[(&str, &str)], unsigned: &[&str], body: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let mut ds = Vec::new();
    for (origin, _) in zones.iter().filter(|(o, _)| !unsigned.contains(o)) {
        let k = crate::testutil::csk(origin, &keys, Duration::from_secs(60));
        let d = k.ds(hickory_proto::dnssec::DigestType::SHA256).unwrap();
        ds.push((origin.to_string(), d.to_string()));
    }
    let mut config =
        String::from("[server]\nlisten = [\"127.0.0.1:0\"]\n[dnssec]\nkey_dir = \"keys\"\n");
    for (i, (origin, text)) in zones.iter().enumerate() {
        let mut text = text.to_string();
        for (o, d) in &ds {
            text = text.replace(&format!("{{DS {o}}}"), d);
        }
        std::fs::write(dir.path().join(format!("z{i}.zone")), text).unwrap();
        config.push_str(&format!(
            "[[zone]]\norigin = \"{origin}\"\nfile = \"z{i}.zone\"\ndnssec = {}\n",
            !unsigned.contains(origin)
        ));
    }
    config.push_str(body);
    let path = dir.path().join("veer.toml");
    std::fs::write(&path, config).unwrap();
    Setup { _dir: dir, path }
}

fn controller(s: &Setup, down: &[&str]) -> Controller {
    let base = Base::load_path(&s.path, None).unwrap_or_else(|d| panic!("{d}"));
    let down: Vec<String> = down.iter().map(|d| d.to_string()).collect();
    Controller::offline(base, Some(&down)).unwrap()
}

fn ask<'a>(snap: &'a Snapshot, qname: &'a Name, qtype: RecordType, client: &str) -> Answer<'a> {
    let addr: std::net::IpAddr = client.parse().unwrap();
    let c = Client {
        addr,
        prefix: crate::route::prefix::width(&addr),
    };
    resolve(snap, qname, qtype, &c, &mut (), true)
}

/// The NSEC records of an answer's proofs: (owner, next, types).
fn nsecs(a: &Answer<'_>) -> Vec<(Name, Name, Vec<RecordType>)> {
    a.proofs
        .iter()
        .flat_map(|s: &&RecordSet| s.records_without_rrsigs())
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((
                r.name.clone(),
                n.next_domain_name().clone(),
                n.type_bit_maps().collect(),
            )),
            _ => None,
        })
        .collect()
}

fn covers(owner: &Name, next: &Name, name: &Name) -> bool {
    let (o, n, x) = (owned_key(owner), owned_key(next), owned_key(name));
    canonical_cmp(&o, &x).is_lt()
        && (canonical_cmp(&x, &n).is_lt() || canonical_cmp(&n, &o).is_le())
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// Two routes at one owner, the AAAA route closed, the A route up: the
/// AAAA NODATA's NSEC must still list A. It does not (`without_routes`
/// drops every routed type), so a resolver using NSEC aggressively (RFC
/// 8198, Unbound's aggressive-nsec) answers NODATA for the A route that
/// is up.
#[test]
fn a_closed_routes_nodata_keeps_the_other_routes_type_in_its_nsec() {
    let s = setup(
        &[("t.", T_ZONE)],
        "[check.app]\nfile = \"app\"\n[check.six]\nfile = \"six\"\n\
         [[route]]\nname = \"app.t.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ { tier = 1, value = \"192.0.2.1\", check = \"app\" } ]\n\
         [[route]]\nname = \"app.t.\"\ntype = \"AAAA\"\nttl = 30\npolicy = \"failover\"\n\
         when_all_down = \"closed\"\n\
         members = [ { tier = 1, value = \"2001:db8::1\", check = \"six\" } ]\n",
    );
    let c = controller(&s, &["six"]);
    let snap = c.snapshot();
    let app = name("app.t.");
    let a = ask(&snap, &app, RecordType::A, "198.51.100.1");
    assert_eq!(a.answer.len(), 1, "the A route answers");
    let aaaa = ask(&snap, &app, RecordType::AAAA, "198.51.100.1");
    assert!(aaaa.answer.is_empty(), "the AAAA route is closed");
    let proofs = nsecs(&aaaa);
    let at_app = proofs
        .iter()
        .find(|(o, _, _)| *o == app)
        .expect("the NODATA carries app.t.'s NSEC");
    assert!(
        at_app.2.contains(&RecordType::A),
        "the AAAA NODATA's NSEC denies the A record the A route serves: {:?}",
        at_app.2
    );
}

/// A wildcard that exists only as an empty non-terminal (`*.went.t.`
/// above `foo.*.went.t.`) still matches (RFC 4592 2.2.2): the NODATA for
/// `x.went.t.` needs the NSEC that proves `*.went.t.` empty, and only
/// carries the one covering `x.went.t.` (delv: "broken trust chain").
#[test]
fn nodata_from_an_empty_non_terminal_wildcard_carries_its_proof() {
    let s = setup(&[("t.", T_ZONE)], "");
    let c = controller(&s, &[]);
    let snap = c.snapshot();
    let q = name("x.went.t.");
    let a = ask(&snap, &q, RecordType::A, "198.51.100.1");
    assert_eq!(a.rcode, hickory_proto::op::ResponseCode::NoError);
    assert!(a.answer.is_empty());
    let proofs = nsecs(&a);
    let wildcard = name("*.went.t.");
    assert!(
        proofs.iter().any(|(o, n, _)| covers(o, n, &wildcard)),
        "no NSEC proves {wildcard} has no A: {proofs:?}"
    );
}

/// A query for the NSEC type at a name that has one: answered NODATA
/// with that very NSEC, whose bitmap says NSEC exists (delv: "no valid
/// RRSIG"); a validator takes it as bogus.
#[test]
fn a_query_for_nsec_is_answered_with_the_nsec() {
    let s = setup(&[("t.", T_ZONE)], "");
    let c = controller(&s, &[]);
    let snap = c.snapshot();
    let q = name("www.t.");
    let a = ask(&snap, &q, RecordType::NSEC, "198.51.100.1");
    if a.answer.is_empty() {
        let proofs = nsecs(&a);
        assert!(
            !proofs
                .iter()
                .any(|(o, _, types)| *o == q && types.contains(&RecordType::NSEC)),
            "NODATA for www.t. NSEC proven by an NSEC listing NSEC: {proofs:?}"
        );
    }
}

/// Parent and child hosted together, the delegation secure (DS in the
/// parent): a DS query for the child's apex is answered from the child
/// (NODATA, the child's apex NSEC with SOA) instead of the parent's DS
/// set (RFC 4035 3.1.4.1), so the child cannot be validated at all.
#[test]
fn ds_of_a_cohosted_child_comes_from_the_parent_side() {
    let child = "$ORIGIN c.t.\n$TTL 300\n@ IN SOA ns.t. host.t. 1 3600 600 86400 60\n\
                 @ IN NS ns.t.\nwww IN A 192.0.2.90\n";
    let parent = format!("{T_ZONE}c IN NS ns.t.\nc IN DS {{DS c.t.}}\n");
    let s = setup(&[("t.", &parent), ("c.t.", child)], "");
    let c = controller(&s, &[]);
    let snap = c.snapshot();
    let q = name("c.t.");
    let a = ask(&snap, &q, RecordType::DS, "198.51.100.1");
    let types: Vec<RecordType> = a
        .answer
        .iter()
        .map(|p| p.rrset().records.record_type())
        .collect();
    assert_eq!(
        types,
        vec![RecordType::DS],
        "the parent's DS set, not the child's NODATA ({:?})",
        nsecs(&a)
    );
}

/// The same with an unsigned child under a signed parent (an insecure
/// delegation): the parent's NSEC proving there is no DS never goes out,
/// the child's unsigned NODATA does, and validators fail the child
/// (Unbound: SERVFAIL, "no DNSSEC records ... for DS while building chain
/// of trust").
#[test]
fn ds_of_a_cohosted_unsigned_child_carries_the_insecurity_proof() {
    let child = "$ORIGIN c.t.\n$TTL 300\n@ IN SOA ns.t. host.t. 1 3600 600 86400 60\n\
                 @ IN NS ns.t.\nwww IN A 192.0.2.90\n";
    let parent = format!("{T_ZONE}c IN NS ns.t.\n");
    let s = setup_with(&[("t.", &parent), ("c.t.", child)], &["c.t."], "");
    let c = controller(&s, &[]);
    let snap = c.snapshot();
    let q = name("c.t.");
    let a = ask(&snap, &q, RecordType::DS, "198.51.100.1");
    let proofs = nsecs(&a);
    assert!(
        proofs.iter().any(|(o, _, types)| *o == q
            && types.contains(&RecordType::NS)
            && !types.contains(&RecordType::DS)
            && !types.contains(&RecordType::SOA)),
        "no parent-side NSEC for c.t. proving the delegation insecure: {proofs:?}"
    );
}

/// A reload that changes nothing signs every RRset again (new
/// signatures, later expiry) but keeps the serial: secondaries keep the
/// old signatures (no transfer), which now expire before the next
/// re-signing is due (it is computed from the new ones); a later IXFR
/// deletes signatures they never had.
#[test]
fn a_reload_keeps_signatures_or_moves_the_serial() {
    let s = setup(&[("t.", T_ZONE)], "");
    let mut c = controller(&s, &[]);
    c.refresh_xfr();
    let sigs = |c: &Controller| -> (u32, Vec<hickory_proto::rr::Record>) {
        let x = c.xfr.get(&name("t.")).unwrap();
        let set = x
            .zone
            .static_set(&owned_key(&name("www.t.")), RecordType::A)
            .unwrap();
        (x.serial, set.rrsigs().to_vec())
    };
    let before = sigs(&c);
    std::thread::sleep(Duration::from_millis(1100));
    let new = Base::load_path(&s.path, Some(&c.base)).unwrap_or_else(|d| panic!("{d}"));
    let old = std::mem::replace(&mut c.base, Arc::new(new));
    c.reconcile(Some(old), SystemTime::now());
    c.refresh_xfr();
    let after = sigs(&c);
    assert!(
        before.0 != after.0 || before.1 == after.1,
        "serial {} kept while the signatures changed:\n{:?}\n->\n{:?}",
        after.0,
        before.1,
        after.1
    );
}

/// A cidr route in a signed zone must have a `default` member (so that
/// no client gets a NODATA the others would be denied by through RFC
/// 8198), but nothing keeps the default *healthy*: with it down, clients
/// outside the listed networks get a signed NODATA while listed ones get
/// the record.
#[test]
fn a_cidr_route_whose_default_is_down_answers_every_client() {
    let s = setup(
        &[("t.", T_ZONE)],
        "[check.d]\nfile = \"d\"\n[check.n]\nfile = \"n\"\n\
         [[route]]\nname = \"c.t.\"\ntype = \"A\"\nttl = 30\npolicy = \"cidr\"\n\
         members = [ { networks = [\"10.0.0.0/8\"], value = \"192.0.2.1\", check = \"n\" },\n\
                     { default = true, value = \"192.0.2.2\", check = \"d\" } ]\n",
    );
    let c = controller(&s, &["d"]);
    let snap = c.snapshot();
    let q = name("c.t.");
    let inside = ask(&snap, &q, RecordType::A, "10.1.2.3");
    assert_eq!(inside.answer.len(), 1);
    let outside = ask(&snap, &q, RecordType::A, "198.51.100.1");
    assert!(
        !outside.answer.is_empty() || outside.proofs.is_empty(),
        "a client outside 10/8 gets a signed NODATA ({:?}) that RFC 8198 resolvers apply to 10/8 too",
        nsecs(&outside)
    );
}

/// A CSK rollover as the README tells it (keygen + reload, retire +
/// reload) moves no serial: the transfer view keeps the routes', routed
/// NSECs' and SOA's signatures from before (cached by serial), made by the
/// key that is now deleted from the DNSKEY set. An AXFR then fails
/// `dnssec-verify`, and a secondary serves those names bogus; existing
/// secondaries never see the new key (same serial).
#[test]
fn after_a_rollover_the_transfer_is_signed_by_the_new_key_only() {
    let s = setup(
        &[("t.", T_ZONE)],
        "[[route]]\nname = \"app.t.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ { tier = 1, value = \"192.0.2.1\" } ]\n",
    );
    let mut c = controller(&s, &[]);
    c.refresh_xfr();
    let serial = c.serials[0];
    let dir = s.path.parent().unwrap().join("keys");
    let t = name("t.");
    let old = crate::dnssec::load_zone_keys(&t, &dir).unwrap().remove(0);
    let reload = |c: &mut Controller| {
        let new = Base::load_path(&s.path, Some(&c.base)).unwrap_or_else(|d| panic!("{d}"));
        let old = std::mem::replace(&mut c.base, Arc::new(new));
        c.reconcile(Some(old), SystemTime::now());
        c.refresh_xfr();
    };
    // 1. A new key, then reload.
    crate::testutil::csk(&t.to_ascii(), &dir, Duration::from_secs(60));
    reload(&mut c);
    // 3. The old key retired (what `veer dnssec retire` writes), reload.
    let now = SystemTime::now() - Duration::from_secs(1);
    crate::dnssec::key::set_timing(
        &old,
        &crate::dnssec::Timing {
            inactive: Some(now),
            delete: Some(now),
            ..old.timing
        },
    )
    .unwrap();
    reload(&mut c);
    let x = c.xfr.get(&t).unwrap().clone();
    let dnskeys: Vec<u16> = x
        .zone
        .static_set(&owned_key(&t), RecordType::DNSKEY)
        .unwrap()
        .records_without_rrsigs()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => k.calculate_key_tag().ok(),
            _ => None,
        })
        .collect();
    assert!(
        !dnskeys.contains(&old.tag),
        "the old key left the DNSKEY set"
    );
    let stale: Vec<String> = x
        .routed
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) if !dnskeys.contains(&sig.input().key_tag) => {
                Some(format!("{} RRSIG {}", r.name, sig.input().type_covered))
            }
            _ => None,
        })
        .collect();
    assert!(
        stale.is_empty(),
        "serial {serial} -> {}: the transfer signs {stale:?} only with deleted key {}",
        c.serials[0],
        old.tag
    );
}
