use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::{BASE64, HEXLOWER};
use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, TBS, Verifier};
use hickory_proto::rr::rdata::{A, CNAME, MX, NS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordSet, RecordType};

use super::key::{self, KSK_FLAGS, Timing, ZSK_FLAGS, ZoneKey};
use super::sign::{self, Signer};

/// A name keeping its case (`Name::from_str` lowercases, as the zone
/// parser does not).
fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap();
    n.set_fqdn(true);
    n
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn set(owner: &str, ttl: u32, rdatas: Vec<RData>) -> RecordSet {
    let rtype = rdatas[0].record_type();
    let mut s = RecordSet::with_ttl(name(owner), rtype, ttl);
    for r in rdatas {
        s.add_rdata(r);
    }
    s
}

fn mx(pref: u16, host: &str) -> RData {
    RData::MX(MX::new(pref, name(host)))
}

fn rrsig(r: &Record) -> &RRSIG {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => s,
        other => panic!("not an RRSIG: {other:?}"),
    }
}

/// Writes a key's two files as BIND would.
fn write_key(dir: &Path, base: &str, private: &str, public: &str) {
    std::fs::write(dir.join(format!("{base}.private")), private).unwrap();
    std::fs::write(dir.join(format!("{base}.key")), public).unwrap();
}

/// RFC 8080 section 6.1 (Ed25519) with erratum 4935: the key, its tag and
/// DS, and the signature over the example MX set (EdDSA is
/// deterministic, so it must come out byte for byte).
const RFC8080_PRIVATE: &str = "Private-key-format: v1.2\nAlgorithm: 15 (ED25519)\nPrivateKey: ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=\n";
const RFC8080_DNSKEY: &str = "l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=";
const RFC8080_DS: &str = "3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b";
const RFC8080_RRSIG: &str =
    "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg==";

fn rfc8080_key(dir: &Path) -> ZoneKey {
    write_key(
        dir,
        "Kexample.com.+015+03613",
        RFC8080_PRIVATE,
        // As BIND writes it: comments, and the key in parentheses.
        &format!(
            "; This is a key-signing key, keyid 3613, for example.com.\n\
             example.com. 3600 IN DNSKEY 257 3 15 (\n  {RFC8080_DNSKEY} ) ; KSK\n"
        ),
    );
    let mut keys = key::load_zone_keys(&name("Example.COM"), dir).unwrap();
    assert_eq!(keys.len(), 1);
    keys.remove(0)
}

#[test]
fn rfc8080_ed25519_key_tag_ds_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let k = rfc8080_key(dir.path());
    assert_eq!(k.tag, 3613);
    assert_eq!(k.flags, KSK_FLAGS);
    assert_eq!(k.algorithm, Algorithm::ED25519);
    assert_eq!(
        BASE64.encode(k.dnskey.public_key().public_bytes()),
        RFC8080_DNSKEY
    );
    assert_eq!(k.timing, Timing::default());
    let ds = k.ds(DigestType::SHA256).unwrap();
    assert_eq!(ds.key_tag(), 3613);
    assert_eq!(HEXLOWER.encode(ds.digest()), RFC8080_DS);

    // example.com. 3600 IN RRSIG MX 15 2 3600 1440021600 1438207200 3613 example.com.
    let signer = Signer::new(
        &name("example.com."),
        vec![k],
        Duration::from_secs(1440021600 - 1438207200),
        Duration::ZERO,
    );
    let mx_set = set("example.com.", 3600, vec![mx(10, "mail.example.com.")]);
    let sigs = signer.sign(&mx_set, at(1438207200));
    assert_eq!(sigs.len(), 1);
    let r = &sigs[0];
    assert_eq!(r.name, name("example.com."));
    assert_eq!(r.ttl, 3600);
    let s = rrsig(r);
    let input = s.input();
    assert_eq!(input.type_covered, RecordType::MX);
    assert_eq!(input.algorithm, Algorithm::ED25519);
    assert_eq!(input.num_labels, 2);
    assert_eq!(input.original_ttl, 3600);
    assert_eq!(input.sig_expiration.get(), 1440021600);
    assert_eq!(input.sig_inception.get(), 1438207200);
    assert_eq!(input.key_tag, 3613);
    assert_eq!(input.signer_name, name("example.com."));
    assert_eq!(BASE64.encode(s.sig()), RFC8080_RRSIG);

    // The signed data, field by field (RFC 4034 section 3.1.8.1).
    let rdatas = sign::canonical_rdatas(mx_set.records_without_rrsigs().map(|r| &r.data)).unwrap();
    let tbs = sign::signed_data(&name("example.com."), DNSClass::IN, input, &rdatas).unwrap();
    let want = "000f0f0200000e1055d4fc6055b94ce00e1d076578616d706c6503636f6d00\
                076578616d706c6503636f6d00000f000100000e100014000a046d61696c076578616d706c6503636f6d00";
    assert_eq!(HEXLOWER.encode(tbs.as_ref()), want);
}

/// RFC 6605 section 6.1 (P-256): the private key and the DNSKEY it
/// belongs to, its tag and DS. ECDSA signatures are random, so the
/// signature is checked by verifying it with hickory.
#[test]
fn rfc6605_p256_key_loads_and_its_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    let dnskey =
        "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==";
    write_key(
        dir.path(),
        "Kexample.net.+013+55648",
        "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n",
        &format!("example.net. 3600 IN DNSKEY 257 3 13 {dnskey}\n"),
    );
    let keys = key::load_zone_keys(&name("example.net."), dir.path()).unwrap();
    let k = &keys[0];
    assert_eq!(k.tag, 55648);
    let ds = k.ds(DigestType::SHA256).unwrap();
    assert_eq!(
        HEXLOWER.encode(ds.digest()),
        "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17"
    );
    let dnskey_rdata = k.dnskey.clone();
    let signer = Signer::new(
        &name("example.net."),
        keys,
        Duration::from_secs(86400),
        Duration::from_secs(3600),
    );
    let a = set(
        "www.example.net.",
        3600,
        vec![RData::A(A::new(192, 0, 2, 1))],
    );
    let now = at(1_800_000_000);
    let sigs = signer.sign(&a, now);
    assert_eq!(sigs.len(), 1);
    let s = rrsig(&sigs[0]);
    assert_eq!(s.sig().len(), 64);
    assert_eq!(s.input().sig_inception.get(), 1_800_000_000 - 3600);
    assert_eq!(s.input().sig_expiration.get(), 1_800_000_000 + 86400);
    let records: Vec<Record> = a.records_without_rrsigs().cloned().collect();
    dnskey_rdata
        .verify_rrsig(&name("www.example.net."), DNSClass::IN, s, records.iter())
        .expect("the signature verifies");
    // And a changed RRset does not.
    let other = [Record::from_rdata(
        name("www.example.net."),
        3600,
        RData::A(A::new(192, 0, 2, 2)),
    )];
    assert!(
        dnskey_rdata
            .verify_rrsig(&name("www.example.net."), DNSClass::IN, s, other.iter())
            .is_err()
    );
}

#[test]
fn upper_case_names_in_rdata_sign_in_canonical_order() {
    // hickory's TBS::from_input sorts by RDATA as given: `MAIL` (0x4d)
    // before `beta` (0x62), while canonically `beta` < `mail`.
    let dir = tempfile::tempdir().unwrap();
    let k = key::generate(
        &name("example.com."),
        Algorithm::ECDSAP256SHA256,
        true,
        dir.path(),
        at(1_800_000_000),
    )
    .unwrap();
    let dnskey = k.dnskey.clone();
    let signer = Signer::new(
        &name("example.com."),
        vec![k],
        Duration::from_secs(86400),
        Duration::ZERO,
    );
    let mx_set = set(
        "Example.COM.",
        300,
        vec![mx(10, "MAIL.example.com."), mx(10, "beta.example.com.")],
    );
    // The names keep their case on the wire.
    use hickory_proto::serialize::binary::BinEncodable;
    let raw: Vec<Vec<u8>> = mx_set
        .records_without_rrsigs()
        .map(|r| r.data.to_bytes().unwrap())
        .collect();
    assert!(raw.iter().any(|b| b.windows(4).any(|w| w == b"MAIL")));
    let sigs = signer.sign(&mx_set, at(1_800_000_000));
    assert_eq!(sigs.len(), 1);
    let s = rrsig(&sigs[0]);
    // What a validator sees after putting the set in canonical form.
    let lowered: Vec<Record> = mx_set
        .records_without_rrsigs()
        .map(|r| Record::from_rdata(name("example.com."), 300, sign::lowercase_names(&r.data)))
        .collect();
    dnskey
        .verify_rrsig(&name("example.com."), DNSClass::IN, s, lowered.iter())
        .expect("verifies over the canonical set");
    // The same bytes as hickory's construction over the lowercase set.
    let rdatas = sign::canonical_rdatas(mx_set.records_without_rrsigs().map(|r| &r.data)).unwrap();
    let ours = sign::signed_data(&name("example.com."), DNSClass::IN, s.input(), &rdatas).unwrap();
    let theirs = TBS::from_input(
        &name("example.com."),
        DNSClass::IN,
        s.input(),
        lowered.iter(),
    )
    .unwrap();
    assert_eq!(ours.as_ref(), theirs.as_ref());
    // beta sorts before mail.
    let beta = ours.as_ref().windows(4).position(|w| w == b"beta");
    let mail = ours.as_ref().windows(4).position(|w| w == b"mail");
    assert!(beta < mail, "{beta:?} {mail:?}");
}

#[test]
fn duplicates_differing_in_case_are_signed_once() {
    let rdatas = [
        mx(10, "MAIL.example.com."),
        mx(10, "mail.example.com."),
        mx(5, "a.example.com."),
    ];
    let c = sign::canonical_rdatas(rdatas.iter()).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(&c[0][..2], &[0, 5]);
}

#[test]
fn ksks_sign_the_key_sets_and_zsks_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let zone = name("example.test.");
    let now = at(1_800_000_000);
    let ksk = key::generate(&zone, Algorithm::ED25519, true, dir.path(), now).unwrap();
    let zsk = key::generate(&zone, Algorithm::ED25519, false, dir.path(), now).unwrap();
    assert_eq!(zsk.flags, ZSK_FLAGS);
    assert!(ksk.is_ksk() && !zsk.is_ksk());
    let (ksk_tag, zsk_tag) = (ksk.tag, zsk.tag);
    let signer = Signer::new(
        &zone,
        vec![ksk, zsk],
        Duration::from_secs(86400),
        Duration::ZERO,
    );
    let tags =
        |sigs: Vec<Record>| -> Vec<u16> { sigs.iter().map(|r| rrsig(r).input().key_tag).collect() };

    let dnskeys = signer.dnskey_set(3600, now);
    assert_eq!(dnskeys.records_without_rrsigs().count(), 2);
    assert_eq!(tags(signer.sign(&dnskeys, now)), [ksk_tag]);
    let a = set(
        "www.example.test.",
        60,
        vec![RData::A(A::new(192, 0, 2, 1))],
    );
    assert_eq!(tags(signer.sign(&a, now)), [zsk_tag]);
    let (cds, cdnskey) = signer.cds_sets(3600, now);
    assert_eq!(cds.records_without_rrsigs().count(), 1);
    assert_eq!(tags(signer.sign(&cds, now)), [ksk_tag]);
    assert_eq!(tags(signer.sign(&cdnskey, now)), [ksk_tag]);
    // Only the key sets at the apex are the KSK's.
    let below = set(
        "sub.example.test.",
        60,
        vec![RData::NS(NS(name("ns.example.net.")))],
    );
    assert_eq!(tags(signer.sign(&below, now)), [zsk_tag]);

    // Alone, a KSK signs everything (a CSK); so does a ZSK.
    let keys = key::load_zone_keys(&zone, dir.path()).unwrap();
    for k in keys {
        let tag = k.tag;
        let alone = Signer::new(&zone, vec![k], Duration::from_secs(86400), Duration::ZERO);
        assert_eq!(tags(alone.sign(&a, now)), [tag]);
        assert_eq!(tags(alone.sign(&alone.dnskey_set(3600, now), now)), [tag]);
    }
}

#[test]
fn timing_decides_which_keys_are_published_and_sign() {
    let dir = tempfile::tempdir().unwrap();
    let zone = name("example.test.");
    let t0 = at(1_800_000_000);
    let old = key::generate(&zone, Algorithm::ECDSAP256SHA256, true, dir.path(), t0).unwrap();
    let new = key::generate(&zone, Algorithm::ECDSAP256SHA256, true, dir.path(), t0).unwrap();
    let hour = Duration::from_secs(3600);
    // old: inactive after an hour, deleted after two; new: published
    // now, active after an hour.
    key::set_timing(
        &old,
        &Timing {
            inactive: Some(t0 + hour),
            delete: Some(t0 + 2 * hour),
            ..old.timing
        },
    )
    .unwrap();
    key::set_timing(
        &new,
        &Timing {
            activate: Some(t0 + hour),
            ..new.timing
        },
    )
    .unwrap();
    let keys = key::load_zone_keys(&zone, dir.path()).unwrap();
    let (old_tag, new_tag) = (old.tag, new.tag);
    let signer = Signer::new(&zone, keys, Duration::from_secs(86400), Duration::ZERO);
    let a = set("example.test.", 60, vec![RData::A(A::new(192, 0, 2, 1))]);
    let state = |t: SystemTime| {
        let published: Vec<u16> = signer
            .keys()
            .iter()
            .filter(|k| k.timing.published_at(t))
            .map(|k| k.tag)
            .collect();
        let mut signing: Vec<u16> = signer
            .sign(&a, t)
            .iter()
            .map(|r| rrsig(r).input().key_tag)
            .collect();
        signing.sort();
        (published.len(), signing)
    };
    assert_eq!(state(t0), (2, vec![old_tag]));
    assert_eq!(state(t0 + hour), (2, vec![new_tag]));
    assert_eq!(state(t0 + 2 * hour), (1, vec![new_tag]));
    assert_eq!(signer.next_key_event(t0), Some(t0 + hour));
    assert_eq!(signer.next_key_event(t0 + hour), Some(t0 + 2 * hour));
    assert_eq!(signer.next_key_event(t0 + 2 * hour), None);
    assert_eq!(
        signer
            .dnskey_set(60, t0 + 2 * hour)
            .records_without_rrsigs()
            .count(),
        1
    );

    // No field: published and active from the start, never retired.
    let none = Timing::default();
    assert!(none.published_at(UNIX_EPOCH) && none.active_at(UNIX_EPOCH));
    // Active without a Publish time means published.
    let active = Timing {
        publish: Some(t0 + hour),
        activate: Some(t0),
        ..Timing::default()
    };
    assert!(active.published_at(t0));
}

#[test]
fn a_wildcard_signature_counts_the_labels_without_the_star() {
    let dir = tempfile::tempdir().unwrap();
    let zone = name("example.test.");
    let now = at(1_800_000_000);
    let k = key::generate(&zone, Algorithm::ED25519, true, dir.path(), now).unwrap();
    let dnskey = k.dnskey.clone();
    let signer = Signer::new(&zone, vec![k], Duration::from_secs(86400), Duration::ZERO);
    let w = set("*.example.test.", 60, vec![RData::A(A::new(192, 0, 2, 1))]);
    let sigs = signer.sign(&w, now);
    let s = rrsig(&sigs[0]);
    assert_eq!(s.input().num_labels, 2);
    // A validator checks it against the name the wildcard answered.
    let answered = [Record::from_rdata(
        name("www.example.test."),
        60,
        RData::A(A::new(192, 0, 2, 1)),
    )];
    dnskey
        .verify_rrsig(&name("www.example.test."), DNSClass::IN, s, answered.iter())
        .expect("a synthesised answer verifies");
}

#[test]
fn name_order_is_canonical() {
    // RFC 4034 section 6.1's example, reversed.
    let labels: [&[&[u8]]; 9] = [
        &[b"example"],
        &[b"a", b"example"],
        &[b"yljkjljk", b"a", b"example"],
        &[b"Z", b"a", b"example"],
        &[b"zABC", b"a", b"EXAMPLE"],
        &[b"z", b"example"],
        &[b"\x01", b"z", b"example"],
        &[b"*", b"z", b"example"],
        &[b"\x80", b"z", b"example"],
    ];
    let canonical: Vec<Name> = labels
        .iter()
        .map(|l| {
            let mut n = Name::from_labels(l.iter().copied()).unwrap();
            n.set_fqdn(true);
            n
        })
        .collect();
    let mut names: Vec<Name> = canonical.iter().rev().cloned().collect();
    names.sort();
    for (got, want) in names.iter().zip(&canonical) {
        assert!(got.eq_case(want), "{got} != {want}");
    }
}

#[test]
fn nsec_chain_links_owners_in_order_with_their_types() {
    let zone = name("example.test.");
    let mut owners: BTreeMap<Name, Vec<RecordType>> = BTreeMap::new();
    owners.insert(
        name("WWW.example.test."),
        vec![RecordType::A, RecordType::AAAA],
    );
    owners.insert(
        name("example.test."),
        vec![
            RecordType::SOA,
            RecordType::NS,
            RecordType::MX,
            RecordType::DNSKEY,
        ],
    );
    owners.insert(name("a.b.example.test."), vec![RecordType::TXT]);
    owners.insert(
        name("sub.example.test."),
        vec![RecordType::NS, RecordType::DS],
    );
    owners.insert(name("*.example.test."), vec![RecordType::A]);
    let chain = sign::nsec_chain(&zone, &owners, 300);
    let links: Vec<(String, String, Vec<RecordType>)> = chain
        .iter()
        .map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => (
                r.name.to_ascii(),
                n.next_domain_name().to_ascii(),
                n.type_bit_maps().collect(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    use RecordType::*;
    assert_eq!(
        links,
        [
            (
                "example.test.".into(),
                "*.example.test.".into(),
                vec![NS, SOA, MX, RRSIG, NSEC, DNSKEY]
            ),
            (
                "*.example.test.".into(),
                "a.b.example.test.".into(),
                vec![A, RRSIG, NSEC]
            ),
            (
                "a.b.example.test.".into(),
                "sub.example.test.".into(),
                vec![TXT, RRSIG, NSEC]
            ),
            (
                "sub.example.test.".into(),
                "www.example.test.".into(),
                vec![NS, DS, RRSIG, NSEC]
            ),
            (
                "www.example.test.".into(),
                "example.test.".into(),
                vec![A, AAAA, RRSIG, NSEC]
            ),
        ]
    );
    assert!(chain.iter().all(|r| r.ttl == 300));

    let sorted: Vec<Name> = owners.keys().cloned().collect();
    let cover = |q: &str| sign::covering(&sorted, &name(q)).to_lowercase().to_ascii();
    // An empty non-terminal sorts before the names below it.
    assert_eq!(cover("b.example.test."), "*.example.test.");
    assert_eq!(cover("c.example.test."), "a.b.example.test.");
    assert_eq!(cover("zzz.example.test."), "www.example.test.");
    assert_eq!(cover("x.sub.example.test."), "sub.example.test.");
    assert_eq!(cover("a.example.test."), "*.example.test.");
    assert_eq!(cover("c.a.b.example.test."), "a.b.example.test.");
    // Before the apex (out of the zone): the last NSEC, which wraps.
    assert_eq!(cover("test."), "www.example.test.");
}

#[test]
fn generated_keys_round_trip_through_their_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("state/keys");
    let zone = name("Example.Test");
    let now = at(1_800_000_000) + Duration::from_millis(700);
    let mut made = Vec::new();
    for (alg, ksk) in [
        (Algorithm::ECDSAP256SHA256, true),
        (Algorithm::ECDSAP256SHA256, false),
        (Algorithm::ED25519, true),
    ] {
        made.push(key::generate(&zone, alg, ksk, &keys_dir, now).unwrap());
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys_dir), 0o700);
    for k in &made {
        assert_eq!(mode(&k.path), 0o600, "{}", k.path.display());
        let file = k.path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            file,
            format!(
                "Kexample.test.+{:03}+{:05}.private",
                u8::from(k.algorithm),
                k.tag
            )
        );
        let private = std::fs::read_to_string(&k.path).unwrap();
        assert!(
            private.starts_with("Private-key-format: v1.3\nAlgorithm: "),
            "{private}"
        );
        assert!(
            private.contains(
                "\nCreated: 20270115080000\nPublish: 20270115080000\nActivate: 20270115080000\n"
            ),
            "{private}"
        );
        let public = std::fs::read_to_string(k.key_path()).unwrap();
        assert!(
            public.contains(&format!("example.test. 3600 IN DNSKEY {} 3 ", k.flags)),
            "{public}"
        );
    }
    let mut loaded = key::load_zone_keys(&name("example.test."), &keys_dir).unwrap();
    assert_eq!(loaded.len(), 3);
    made.sort_by_key(|k| (u8::from(k.algorithm), k.tag));
    loaded.sort_by_key(|k| (u8::from(k.algorithm), k.tag));
    for (m, l) in made.iter().zip(&loaded) {
        assert_eq!((m.tag, m.flags, m.algorithm), (l.tag, l.flags, l.algorithm));
        assert_eq!(m.dnskey, l.dnskey);
        assert_eq!(m.timing, l.timing);
        assert_eq!(m.timing.created, Some(at(1_800_000_000)));
        assert_eq!(m.path, l.path);
        // The loaded private key is the generated one: its signature
        // verifies with the generated public key.
        let signer = Signer::new(
            &name("example.test."),
            vec![l.clone()],
            Duration::from_secs(60),
            Duration::ZERO,
        );
        let a = set("example.test.", 60, vec![RData::A(A::new(192, 0, 2, 1))]);
        let sigs = signer.sign(&a, now);
        let records: Vec<Record> = a.records_without_rrsigs().cloned().collect();
        m.dnskey
            .verify_rrsig(
                &name("example.test."),
                DNSClass::IN,
                rrsig(&sigs[0]),
                records.iter(),
            )
            .unwrap();
        // hickory's own view of the key agrees with the DNSKEY.
        assert_eq!(m.dnskey.calculate_key_tag().unwrap(), m.tag);
    }
    // Keys of other zones in the same directory are not this zone's.
    key::generate(&name("test."), Algorithm::ED25519, true, &keys_dir, now).unwrap();
    key::generate(
        &name("sub.example.test."),
        Algorithm::ED25519,
        true,
        &keys_dir,
        now,
    )
    .unwrap();
    assert_eq!(
        key::load_zone_keys(&name("example.test."), &keys_dir)
            .unwrap()
            .len(),
        3
    );
    // A zone without keys, or without a directory, has none.
    assert!(
        key::load_zone_keys(&name("other.test."), &keys_dir)
            .unwrap()
            .is_empty()
    );
    assert!(
        key::load_zone_keys(&zone, &dir.path().join("nowhere"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn times_are_bind_timestamps() {
    assert_eq!(key::format_time(at(1_767_225_600)), "20260101000000");
    assert_eq!(key::parse_time("20260101000000"), Some(at(1_767_225_600)));
    assert_eq!(key::parse_time("20261301000000"), None);
    assert_eq!(key::parse_time("2026010100000"), None);
    assert_eq!(key::parse_algorithm("ed25519"), Some(Algorithm::ED25519));
    assert_eq!(key::parse_algorithm("13"), Some(Algorithm::ECDSAP256SHA256));
    assert_eq!(
        key::parse_algorithm("ECDSAP256SHA256"),
        Some(Algorithm::ECDSAP256SHA256)
    );
    assert_eq!(key::parse_algorithm("8"), None);
}

/// The errors of `load_zone_keys` in `dir` for zone example.test., as
/// `file:line: message` with the file's name only.
fn load_errors(dir: &Path) -> Vec<String> {
    let errors = key::load_zone_keys(&name("example.test."), dir).unwrap_err();
    errors
        .iter()
        .map(|d| {
            format!(
                "{}:{}: {}",
                d.file.file_name().unwrap().to_string_lossy(),
                d.line,
                d.message
            )
        })
        .collect()
}

#[test]
fn corrupt_or_missing_key_files_are_errors_naming_file_and_line() {
    let now = at(1_800_000_000);
    let make = || {
        let dir = tempfile::tempdir().unwrap();
        let k = key::generate(
            &name("example.test."),
            Algorithm::ECDSAP256SHA256,
            true,
            dir.path(),
            now,
        )
        .unwrap();
        (dir, k)
    };
    let edit = |path: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    };
    let base = |k: &ZoneKey| k.base_name();

    // PrivateKey not base64.
    let (dir, k) = make();
    let text = std::fs::read_to_string(&k.path).unwrap();
    let b64 = text
        .lines()
        .nth(2)
        .unwrap()
        .trim_start_matches("PrivateKey: ")
        .to_string();
    edit(&k.path, &b64, "not*base64");
    assert_eq!(
        load_errors(dir.path()),
        [format!("{}.private:3: PrivateKey is not base64", base(&k))]
    );

    // Another key's private key: does not belong to the public key.
    let (dir, k) = make();
    let other = key::generate(
        &name("other.test."),
        Algorithm::ECDSAP256SHA256,
        true,
        dir.path(),
        now,
    )
    .unwrap();
    let other_text = std::fs::read_to_string(&other.path).unwrap();
    let other_b64 = other_text.lines().nth(2).unwrap().to_string();
    let text = std::fs::read_to_string(&k.path).unwrap();
    let own = text.lines().nth(2).unwrap().to_string();
    edit(&k.path, &own, &other_b64);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}.private:3: the private key does not belong to the public key in the .key file",
            base(&k)
        )]
    );

    // The same with Ed25519 (derived and compared here, not by ring).
    let dir = tempfile::tempdir().unwrap();
    let k = key::generate(
        &name("example.test."),
        Algorithm::ED25519,
        true,
        dir.path(),
        now,
    )
    .unwrap();
    edit(&k.path, "PrivateKey: ", "PrivateKey: AAAA");
    let text = std::fs::read_to_string(&k.path).unwrap();
    let line = text.lines().nth(2).unwrap();
    let mut seed = BASE64
        .decode(line.trim_start_matches("PrivateKey: AAAA").as_bytes())
        .unwrap();
    seed[0] ^= 1;
    edit(
        &k.path,
        line,
        &format!("PrivateKey: {}", BASE64.encode(&seed)),
    );
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}.private:3: the private key does not belong to the public key in {}.key",
            base(&k),
            base(&k)
        )]
    );

    // A missing private key, and a missing public key.
    let (dir, k) = make();
    std::fs::remove_file(&k.path).unwrap();
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{0}.key:1: no private key: {0}.private is missing",
            base(&k)
        )]
    );
    let (dir, k) = make();
    std::fs::remove_file(k.key_path()).unwrap();
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{0}.private:1: no public key: {0}.key is missing",
            base(&k)
        )]
    );

    // An empty private file.
    let (dir, k) = make();
    std::fs::write(&k.path, "").unwrap();
    assert_eq!(
        load_errors(dir.path()),
        [
            format!(
                "{}.private:1: not a BIND private key file (no Private-key-format line)",
                base(&k)
            ),
            format!("{}.private:1: no Algorithm line", base(&k)),
            format!("{}.private:1: no PrivateKey line", base(&k)),
        ]
    );

    // A bad time, and an unsupported algorithm.
    let (dir, k) = make();
    edit(&k.path, "Activate: 2027", "Activate: 1027x");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}.private:6: Activate `1027x0115080000` is not a time (YYYYMMDDHHMMSS, UTC)",
            base(&k)
        )]
    );
    let dir = tempfile::tempdir().unwrap();
    write_key(
        dir.path(),
        "Kexample.test.+008+01234",
        "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nPrivateKey: AAAA\n",
        "example.test. IN DNSKEY 257 3 8 AwEAAQ==\n",
    );
    assert_eq!(
        load_errors(dir.path()),
        [
            "Kexample.test.+008+01234.private:2: algorithm 8 is not supported: veer signs with 13 (ECDSAP256SHA256) or 15 (ED25519)"
        ]
    );

    // A file renamed to another tag; a key of another zone under this
    // zone's name; a revoked key's flags.
    let (dir, k) = make();
    let wrong = format!("Kexample.test.+013+{:05}", k.tag.wrapping_add(1));
    std::fs::rename(&k.path, dir.path().join(format!("{wrong}.private"))).unwrap();
    std::fs::rename(k.key_path(), dir.path().join(format!("{wrong}.key"))).unwrap();
    let errors = load_errors(dir.path());
    assert_eq!(
        errors,
        [format!(
            "{wrong}.key:5: the key tag is {:05}, the file name says {:05}",
            k.tag,
            k.tag.wrapping_add(1)
        )]
    );
    let (dir, k) = make();
    edit(&k.key_path(), "\nexample.test. 3600", "\nexample.net. 3600");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}.key:5: the DNSKEY is for example.net., not the zone example.test.",
            base(&k)
        )]
    );
    let (dir, k) = make();
    edit(&k.key_path(), "DNSKEY 257 3", "DNSKEY 385 3");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}.key:5: DNSKEY flags 385 are not supported (257: KSK or CSK, 256: ZSK)",
            base(&k)
        )]
    );
}

#[test]
fn set_timing_keeps_other_fields_and_the_private_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let now = at(1_800_000_000);
    let k = key::generate(
        &name("example.test."),
        Algorithm::ED25519,
        false,
        dir.path(),
        now,
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&k.path).unwrap();
    text.push_str("SyncPublish: 20270115080000\n");
    std::fs::write(&k.path, &text).unwrap();
    let timing = Timing {
        inactive: Some(now + Duration::from_secs(60)),
        ..k.timing
    };
    key::set_timing(&k, &timing).unwrap();
    let text = std::fs::read_to_string(&k.path).unwrap();
    assert!(text.contains("SyncPublish: 20270115080000\n"), "{text}");
    assert!(text.ends_with("Inactive: 20270115080100\n"), "{text}");
    assert_eq!(
        std::fs::metadata(&k.path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = std::fs::read_to_string(k.key_path()).unwrap();
    assert!(
        public.contains("; Inactive: 20270115080100 (2027-01-15T08:01:00Z)\n"),
        "{public}"
    );
    let loaded = key::load_zone_keys(&name("example.test."), dir.path()).unwrap();
    assert_eq!(loaded[0].timing, timing);
    // Nothing else is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn debug_output_shows_no_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let k = rfc8080_key(dir.path());
    let text = format!("{k:?}");
    assert!(text.contains("tag: 3613"), "{text}");
    assert!(!text.contains("ODIy"), "{text}");
}

/// A small zone signed here passes BIND's `dnssec-verify` (when it is
/// installed): RRSIGs over every kind of set veer serves, upper case in
/// RDATA, a wildcard, a delegation, and the NSEC chain.
#[test]
fn a_signed_zone_passes_dnssec_verify() {
    let Ok(tool) = which("dnssec-verify") else {
        eprintln!("skipped: dnssec-verify is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = name("example.test.");
    let now = SystemTime::now();
    let ksk = key::generate(&zone, Algorithm::ECDSAP256SHA256, true, dir.path(), now).unwrap();
    let zsk = key::generate(&zone, Algorithm::ECDSAP256SHA256, false, dir.path(), now).unwrap();
    let signer = Signer::new(
        &zone,
        vec![ksk, zsk],
        Duration::from_secs(86400),
        Duration::from_secs(3600),
    );
    use hickory_proto::rr::rdata::{AAAA, SOA, SRV, TXT};
    let sets = vec![
        set(
            "example.test.",
            300,
            vec![RData::SOA(SOA::new(
                name("NS1.example.test."),
                name("Hostmaster.Example.test."),
                1,
                3600,
                600,
                86400,
                300,
            ))],
        ),
        set(
            "example.test.",
            300,
            vec![
                RData::NS(NS(name("ns1.example.test."))),
                RData::NS(NS(name("NS2.example.test."))),
            ],
        ),
        set(
            "example.test.",
            300,
            vec![
                mx(10, "MAIL.example.test."),
                mx(10, "beta.example.test."),
                mx(20, "Alpha.example.net."),
            ],
        ),
        set(
            "ns1.example.test.",
            300,
            vec![RData::A(A::new(192, 0, 2, 53))],
        ),
        set(
            "NS2.example.test.",
            300,
            vec![RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 53))],
        ),
        set(
            "mail.example.test.",
            300,
            vec![RData::A(A::new(192, 0, 2, 25))],
        ),
        set(
            "beta.example.test.",
            300,
            vec![RData::TXT(TXT::new(vec!["hello".into()]))],
        ),
        set(
            "_sip._tcp.example.test.",
            300,
            vec![
                RData::SRV(SRV::new(1, 2, 5060, name("SIP.example.test."))),
                RData::SRV(SRV::new(1, 2, 5060, name("another.example.test."))),
            ],
        ),
        set(
            "*.wild.example.test.",
            300,
            vec![RData::A(A::new(192, 0, 2, 80))],
        ),
        set(
            "www.example.test.",
            300,
            vec![RData::CNAME(CNAME(name("Mail.Example.Test.")))],
        ),
        set(
            "sub.example.test.",
            300,
            vec![RData::NS(NS(name("ns.sub.example.test.")))],
        ),
        set(
            "ns.sub.example.test.",
            300,
            vec![RData::A(A::new(192, 0, 2, 54))],
        ),
    ];
    let mut text = String::new();
    let mut owners: BTreeMap<Name, Vec<RecordType>> = BTreeMap::new();
    let push = |text: &mut String, s: &RecordSet, signed: bool| {
        for r in s.records_without_rrsigs() {
            text.push_str(&format!("{r}\n"));
        }
        if signed {
            for r in signer.sign(s, now) {
                text.push_str(&format!("{r}\n"));
            }
        }
    };
    for s in &sets {
        let cut = s.name() == &name("sub.example.test.");
        let glue = s.name() == &name("ns.sub.example.test.");
        // The delegation's NS set and glue are not signed, and glue has
        // no NSEC.
        push(&mut text, s, !cut && !glue);
        if !glue {
            owners
                .entry(s.name().clone())
                .or_default()
                .push(s.record_type());
        }
    }
    let dnskeys = signer.dnskey_set(300, now);
    push(&mut text, &dnskeys, true);
    owners.get_mut(&zone).unwrap().push(RecordType::DNSKEY);
    for nsec in sign::nsec_chain(&zone, &owners, 300) {
        let mut s = RecordSet::with_ttl(nsec.name.clone(), RecordType::NSEC, nsec.ttl);
        s.add_rdata(nsec.data.clone());
        push(&mut text, &s, true);
    }
    let file = dir.path().join("example.test.zone");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(tool)
        .args(["-o", "example.test."])
        .arg(&file)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}\n{text}");
    assert!(report.contains("Zone fully signed"), "{report}");
}

fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or(())
}
