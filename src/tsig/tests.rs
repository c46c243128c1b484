use std::slice;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

use super::wire::{self, Fields};
use super::*;

const T0: u64 = 1_700_000_000;
/// 32 bytes, as `tsig-keygen` makes for hmac-sha256.
const SECRET: &str = "2ZTWtuLVvRF1VqYXs4l1DX8hv6NTt9GkzSEEEhP4d2k=";
const OTHER_SECRET: &str = "6Oo0ZJb4uBUPGCFL3xAGeU0cb5gzr8gEvrHp1gN2FwE=";

fn key(name: &str) -> Key {
    Key::new(name, "hmac-sha256", SECRET).unwrap()
}

fn secret() -> Vec<u8> {
    data_encoding::BASE64.decode(SECRET.as_bytes()).unwrap()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn request(qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::query();
    msg.add_query(Query::query(name("example.com."), qtype));
    msg.to_vec().unwrap()
}

/// Message `n` (from 1) of an answer to `request`, with a few A records.
fn response(request: &[u8], n: u8) -> Vec<u8> {
    let req = Message::from_vec(request).unwrap();
    let mut msg = Message::response(req.id, req.op_code);
    msg.metadata.authoritative = true;
    if n == 1 {
        msg.add_queries(req.queries.clone());
    }
    for i in 0..3 {
        msg.add_answer(Record::from_rdata(
            name("www.example.com."),
            300,
            RData::A(A::new(192, 0, 2, n * 10 + i)),
        ));
    }
    msg.to_vec().unwrap()
}

fn signed_request(key: &Key, now: u64) -> (Vec<u8>, ResponseVerifier) {
    let mut req = request(RecordType::AXFR);
    let verifier = sign_request(key, &mut req, now).unwrap();
    (req, verifier)
}

fn valid(checked: Checked) -> (Name, ResponseSigner) {
    match checked {
        Checked::Valid { key, signer } => (key, signer),
        other => panic!("expected Valid, got {other:?}"),
    }
}

fn rejected(checked: Checked) -> Rejection {
    match checked {
        Checked::Rejected(rejection) => rejection,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// Signs messages 1..=n of an answer to `req`.
fn signed_answer(signer: &mut ResponseSigner, req: &[u8], n: u8, now: u64) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| {
            let mut msg = response(req, i);
            let before = msg.len();
            signer.sign(&mut msg, now).unwrap();
            assert_eq!(msg.len() - before, signer.overhead());
            msg
        })
        .collect()
}

/// `msg` with its TSIG replaced: `edit` gets the decoded one's fields.
fn retsig(msg: &[u8], edit: impl FnOnce(&mut Name, &mut Vec<u8>, &mut Vec<u8>)) -> Vec<u8> {
    let found = wire::scan(msg).unwrap().unwrap();
    let mut out = msg[..found.start].to_vec();
    let arcount = u16::from_be_bytes([out[10], out[11]]) - 1;
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    let (mut owner, mut mac) = (found.name.clone(), found.tsig.mac.clone());
    let mut algorithm = Vec::new();
    wire::put_name(&mut algorithm, &found.tsig.algorithm.to_name(), false);
    edit(&mut owner, &mut algorithm, &mut mac);
    let t = &found.tsig;
    let fields = Fields {
        algorithm: &algorithm,
        time: t.time,
        fudge: t.fudge,
        mac: &mac,
        oid: t.oid,
        error: t.error.map_or(0, u16::from),
        other: &t.other,
    };
    wire::append(&mut out, &owner, &fields).unwrap();
    out
}

#[test]
fn round_trip_three_messages() {
    let key = key("xfr");
    let (req, mut verifier) = signed_request(&key, T0);
    let (key_name, mut signer) = valid(check_request(slice::from_ref(&key), &req, T0 + 2));
    assert_eq!(key_name, name("xfr."));
    for msg in signed_answer(&mut signer, &req, 3, T0 + 3) {
        verifier.verify(&msg, T0 + 4).unwrap();
        let parsed = Message::from_vec(&msg).unwrap();
        assert_eq!(parsed.answers.len(), 3);
        assert!(parsed.signature().is_some());
    }
}

#[test]
fn flipped_byte_in_message_two_fails_from_there() {
    let key = key("xfr");
    let (req, mut verifier) = signed_request(&key, T0);
    let (_, mut signer) = valid(check_request(&[key], &req, T0));
    let mut answer = signed_answer(&mut signer, &req, 3, T0);
    // The last byte of message 2's first address, 192.0.2.20.
    let second = &mut answer[1];
    let at = second
        .windows(4)
        .position(|w| w == [192, 0, 2, 20])
        .unwrap();
    second[at + 3] ^= 1;
    verifier.verify(&answer[0], T0).unwrap();
    assert!(verifier.verify(&answer[1], T0).unwrap_err().contains("MAC"));
    // The chain is broken: message 3 was signed over message 2's MAC.
    assert!(verifier.verify(&answer[2], T0).is_err());
}

#[test]
fn unknown_key_gets_unsigned_badkey() {
    let (req, _) = signed_request(&key("other"), T0);
    let rejection = rejected(check_request(&[key("xfr")], &req, T0));
    assert_eq!(rejection.error(), "BADKEY");
    let reply = Message::from_vec(&rejection.reply(&req)).unwrap();
    let request = Message::from_vec(&req).unwrap();
    assert_eq!(reply.id, request.id);
    assert_eq!(reply.message_type, MessageType::Response);
    assert_eq!(reply.response_code, ResponseCode::NotAuth);
    assert_eq!(reply.queries, request.queries);
    let tsig = reply.signature().unwrap();
    assert_eq!(tsig.name, name("other."));
    assert_eq!(tsig.data.error, Some(TsigError::BadKey));
    assert_eq!(u16::from(TsigError::BadKey), 17);
    assert!(tsig.data.mac.is_empty());
}

#[test]
fn other_algorithm_gets_badkey() {
    let client = Key::new("xfr", "hmac-sha512", SECRET).unwrap();
    let (req, _) = signed_request(&client, T0);
    let rejection = rejected(check_request(&[key("xfr")], &req, T0));
    assert_eq!(rejection.error(), "BADKEY");
    let reply = Message::from_vec(&rejection.reply(&req)).unwrap();
    assert_eq!(
        reply.signature().unwrap().data.algorithm,
        TsigAlgorithm::HmacSha512
    );
}

#[test]
fn wrong_secret_gets_unsigned_badsig() {
    let client = Key::new("xfr", "hmac-sha256", OTHER_SECRET).unwrap();
    let (req, _) = signed_request(&client, T0);
    let rejection = rejected(check_request(&[key("xfr")], &req, T0));
    assert_eq!(rejection.error(), "BADSIG");
    let reply = Message::from_vec(&rejection.reply(&req)).unwrap();
    assert_eq!(reply.response_code, ResponseCode::NotAuth);
    let tsig = reply.signature().unwrap();
    assert_eq!(tsig.data.error, Some(TsigError::BadSig));
    assert_eq!(u16::from(TsigError::BadSig), 16);
    assert!(tsig.data.mac.is_empty());
}

#[test]
fn time_off_by_fudge_plus_one_gets_signed_badtime() {
    let key = key("xfr");
    let fudge = u64::from(FUDGE);
    for now in [T0 + fudge + 1, T0 - fudge - 1] {
        let (req, _) = signed_request(&key, T0);
        let rejection = rejected(check_request(slice::from_ref(&key), &req, now));
        assert_eq!(rejection.error(), "BADTIME");
        let reply = rejection.reply(&req);
        let parsed = Message::from_vec(&reply).unwrap();
        assert_eq!(parsed.response_code, ResponseCode::NotAuth);
        let tsig = &parsed.signature().unwrap().data;
        assert_eq!(tsig.error, Some(TsigError::BadTime));
        assert_eq!(u16::from(TsigError::BadTime), 18);
        assert_eq!(tsig.time, T0, "Time Signed echoes the request's");
        assert_eq!(tsig.other, now.to_be_bytes()[2..].to_vec());
        // Signed over the request MAC: hickory's verifier agrees.
        let request_mac = Message::from_vec(&req)
            .unwrap()
            .signature()
            .unwrap()
            .data
            .mac
            .clone();
        let hickory =
            TSigner::new(secret(), TsigAlgorithm::HmacSha256, name("xfr."), FUDGE).unwrap();
        hickory
            .verify_message_byte(&reply, Some(&request_mac), true)
            .unwrap();
    }
}

#[test]
fn time_window_is_inclusive() {
    let key = key("xfr");
    let fudge = u64::from(FUDGE);
    for now in [T0 + fudge, T0 - fudge] {
        let (req, mut verifier) = signed_request(&key, T0);
        let (_, mut signer) = valid(check_request(slice::from_ref(&key), &req, now));
        let answer = signed_answer(&mut signer, &req, 1, T0);
        verifier.verify(&answer[0], now).unwrap();
    }
    let (req, mut verifier) = signed_request(&key, T0);
    let (_, mut signer) = valid(check_request(slice::from_ref(&key), &req, T0));
    let answer = signed_answer(&mut signer, &req, 1, T0 + fudge + 1);
    assert!(
        verifier
            .verify(&answer[0], T0)
            .unwrap_err()
            .contains("signed at")
    );
}

#[test]
fn names_compare_without_case() {
    let server = Key::new("XFR.Example", "HMAC-SHA256.", SECRET).unwrap();
    assert_eq!(server.name(), &name("xfr.example."));
    assert_eq!(server.name().to_ascii(), "xfr.example.");
    assert_eq!(server.algorithm_name(), "hmac-sha256");
    let (req, mut verifier) = signed_request(&key("xfr.example."), T0);
    // The same MAC under an upper-case key and algorithm name: both are
    // covered in lowercase, so it still verifies.
    let shouting = retsig(&req, |owner, algorithm, _| {
        *owner = name("XFR.EXAMPLE.");
        *algorithm = b"\x0bHMAC-SHA256\x00".to_vec();
    });
    let (key_name, mut signer) = valid(check_request(&[server], &shouting, T0));
    assert_eq!(key_name, name("xfr.example."));
    let answer = signed_answer(&mut signer, &shouting, 2, T0);
    for msg in &answer {
        verifier.verify(msg, T0).unwrap();
    }
}

#[test]
fn all_three_algorithms() {
    for (algorithm, mac_len) in [
        ("hmac-sha256", 32),
        ("hmac-sha384", 48),
        ("hmac-sha512", 64),
    ] {
        let key = Key::new("xfr", algorithm, SECRET).unwrap();
        assert_eq!(key.algorithm_name(), algorithm);
        let (req, mut verifier) = signed_request(&key, T0);
        let (_, mut signer) = valid(check_request(slice::from_ref(&key), &req, T0));
        for msg in signed_answer(&mut signer, &req, 2, T0) {
            verifier.verify(&msg, T0).unwrap();
            let parsed = Message::from_vec(&msg).unwrap();
            assert_eq!(parsed.signature().unwrap().data.mac.len(), mac_len);
        }
        // A server holding all three keys under the same name picks by algorithm.
        let ring = ["hmac-sha256", "hmac-sha384", "hmac-sha512"]
            .map(|a| Key::new("xfr", a, SECRET).unwrap());
        valid(check_request(&ring, &req, T0));
    }
}

#[test]
fn hickory_interop() {
    let key = key("xfr");
    let hickory = TSigner::new(secret(), TsigAlgorithm::HmacSha256, name("xfr."), FUDGE).unwrap();
    let mut msg = Message::query();
    msg.add_query(Query::query(name("example.com."), RecordType::AXFR));
    let mut hickory_verifier = msg.finalize(&hickory, T0).unwrap().unwrap();
    let req = msg.to_vec().unwrap();
    let (_, mut signer) = valid(check_request(slice::from_ref(&key), &req, T0));
    for msg in signed_answer(&mut signer, &req, 3, T0) {
        hickory_verifier.verify(&msg).unwrap();
    }
    // And hickory's server side accepts our request.
    let (req, _) = signed_request(&key, T0);
    hickory.verify_message_byte(&req, None, true).unwrap();
}

#[test]
fn key_new_errors() {
    let err = |name, algorithm, secret| Key::new(name, algorithm, secret).unwrap_err();
    for old in [
        "hmac-md5",
        "HMAC-MD5.SIG-ALG.REG.INT.",
        "hmac-sha1",
        "hmac-sha224",
    ] {
        assert!(err("k", old, SECRET).contains("not supported"), "{old}");
    }
    assert!(err("k", "hmac-sha3", SECRET).contains("unknown TSIG algorithm"));
    assert!(err("k", "", SECRET).contains("unknown TSIG algorithm"));
    assert!(err("k", "hmac-sha256", "not*base64").contains("base64"));
    assert!(err("k", "hmac-sha256", "").contains("empty"));
    assert!(err("k", "hmac-sha256", "  ").contains("empty"));
    // 15 bytes.
    assert!(err("k", "hmac-sha256", "AAAAAAAAAAAAAAAAAAAA").contains("15 bytes"));
    assert!(err("", "hmac-sha256", SECRET).contains("name"));
    assert!(err(".", "hmac-sha256", SECRET).contains("name"));
    assert!(err("a..b", "hmac-sha256", SECRET).contains("not a domain name"));

    // 16 bytes: fine for sha256, worth a warning for sha512.
    let short = "AAAAAAAAAAAAAAAAAAAAAA==";
    assert!(
        Key::new("k", "hmac-sha256", short)
            .unwrap()
            .warning()
            .is_none()
    );
    assert!(
        Key::new("k", "hmac-sha512", short)
            .unwrap()
            .warning()
            .is_some()
    );
    // Wrapped secrets and trailing dots are fine.
    let wrapped = format!("{}\n  {}", &SECRET[..20], &SECRET[20..]);
    assert_eq!(
        Key::new("k.", "hmac-sha256.", &wrapped).unwrap(),
        Key::new("K", "hmac-sha256", SECRET).unwrap()
    );
}

#[test]
fn debug_never_prints_the_secret() {
    let shown = format!("{:?}", key("xfr"));
    assert!(
        shown.contains("xfr.") && shown.contains("hmac-sha256"),
        "{shown}"
    );
    assert!(
        !shown.contains(SECRET) && !shown.contains("2ZTW"),
        "{shown}"
    );
    let checked = check_request(&[key("xfr")], &signed_request(&key("xfr"), T0).0, T0);
    assert!(!format!("{checked:?}").contains("2ZTW"));
}

#[test]
fn time_signed_zero_does_not_panic() {
    let key = key("xfr");
    let (req, mut verifier) = signed_request(&key, 0);
    let (_, mut signer) = valid(check_request(slice::from_ref(&key), &req, 0));
    for msg in signed_answer(&mut signer, &req, 2, 0) {
        verifier.verify(&msg, 0).unwrap();
    }
    assert_eq!(
        rejected(check_request(
            slice::from_ref(&key),
            &req,
            u64::from(FUDGE) + 1
        ))
        .error(),
        "BADTIME"
    );
    valid(check_request(slice::from_ref(&key), &req, u64::from(FUDGE)));
    // A time beyond 48 bits cannot be signed (the message is left as it
    // was), and a clock that far off is just BADTIME.
    let mut req = request(RecordType::AXFR);
    let before = req.clone();
    assert!(sign_request(&key, &mut req, u64::MAX).is_err());
    assert_eq!(req, before);
    let (req, _) = signed_request(&key, 5);
    let rejection = rejected(check_request(&[key], &req, u64::MAX));
    assert_eq!(rejection.error(), "BADTIME");
    Message::from_vec(&rejection.reply(&req)).unwrap();
}

#[test]
fn unsigned_request_is_unsigned() {
    let req = request(RecordType::SOA);
    assert!(matches!(
        check_request(&[key("xfr")], &req, T0),
        Checked::Unsigned
    ));
}

#[test]
fn misplaced_tsig_is_formerr() {
    let key = key("xfr");
    // Two TSIGs: the first is not last.
    let (mut twice, _) = signed_request(&key, T0);
    sign_request(&key, &mut twice, T0).unwrap();
    // The only record, counted as an answer instead of an additional.
    let (mut in_answer, _) = signed_request(&key, T0);
    in_answer[6..8].copy_from_slice(&1u16.to_be_bytes());
    in_answer[10..12].copy_from_slice(&0u16.to_be_bytes());
    // Bytes after the TSIG.
    let (mut trailing, _) = signed_request(&key, T0);
    trailing.push(0);
    for req in [twice, in_answer, trailing] {
        let rejection = rejected(check_request(slice::from_ref(&key), &req, T0));
        assert_eq!(rejection.error(), "FORMERR");
        let reply = Message::from_vec(&rejection.reply(&req)).unwrap();
        assert_eq!(reply.response_code, ResponseCode::FormErr);
        assert!(reply.signature().is_none());
        assert_eq!(reply.queries.len(), 1);
    }
}

#[test]
fn truncated_mac_is_badtrunc_and_too_short_is_formerr() {
    let key = key("xfr");
    let (req, _) = signed_request(&key, T0);
    // The MAC is not covered by itself: its first 20 bytes still verify.
    let truncated = retsig(&req, |_, _, mac| mac.truncate(20));
    let rejection = rejected(check_request(slice::from_ref(&key), &truncated, T0));
    assert_eq!(rejection.error(), "BADTRUNC");
    let reply = Message::from_vec(&rejection.reply(&truncated)).unwrap();
    assert_eq!(
        reply.signature().unwrap().data.error,
        Some(TsigError::BadTrunc)
    );
    assert_eq!(reply.signature().unwrap().data.mac.len(), 32);

    let wrong = retsig(&req, |_, _, mac| {
        mac.truncate(20);
        mac[0] ^= 1;
    });
    assert_eq!(
        rejected(check_request(slice::from_ref(&key), &wrong, T0)).error(),
        "BADSIG"
    );
    for len in [0, 10, 15] {
        let short = retsig(&req, |_, _, mac| mac.truncate(len));
        assert_eq!(
            rejected(check_request(slice::from_ref(&key), &short, T0)).error(),
            "FORMERR"
        );
    }
    let long = retsig(&req, |_, _, mac| mac.push(0));
    assert_eq!(
        rejected(check_request(&[key], &long, T0)).error(),
        "FORMERR"
    );
}

#[test]
fn verifier_refuses_unsigned_foreign_and_error_responses() {
    let key = key("xfr");
    let (req, mut verifier) = signed_request(&key, T0);
    let plain = response(&req, 1);
    assert!(
        verifier
            .verify(&plain, T0)
            .unwrap_err()
            .contains("not TSIG-signed")
    );

    let other_key = Key::new("other", "hmac-sha256", SECRET).unwrap();
    let (other_req, _) = signed_request(&other_key, T0);
    let (_, mut other) = valid(check_request(&[other_key], &other_req, T0));
    let mut foreign = response(&req, 1);
    other.sign(&mut foreign, T0).unwrap();
    assert!(
        verifier
            .verify(&foreign, T0)
            .unwrap_err()
            .contains("other.")
    );

    let client = Key::new("xfr", "hmac-sha256", OTHER_SECRET).unwrap();
    let (bad_req, mut bad_verifier) = signed_request(&client, T0);
    let rejection = rejected(check_request(&[key], &bad_req, T0));
    let reply = rejection.reply(&bad_req);
    assert!(
        bad_verifier
            .verify(&reply, T0)
            .unwrap_err()
            .contains("BADSIG")
    );
}

#[test]
fn mangled_requests_never_panic() {
    let key = key("xfr");
    let (req, _) = signed_request(&key, T0);
    let mut rng = fastrand::Rng::with_seed(8945);
    for len in 0..=req.len() {
        check_request(slice::from_ref(&key), &req[..len], T0);
        rejection_reply_is_sane(&key, &req[..len]);
    }
    for _ in 0..2000 {
        let mut bytes = req.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..bytes.len());
            bytes[at] = rng.u8(..);
        }
        rejection_reply_is_sane(&key, &bytes);
        let mut verifier = sign_request(&key, &mut request(RecordType::AXFR), T0).unwrap();
        let _ = verifier.verify(&bytes, T0);
    }
}

fn rejection_reply_is_sane(key: &Key, bytes: &[u8]) {
    if let Checked::Rejected(rejection) = check_request(slice::from_ref(key), bytes, T0) {
        let reply = rejection.reply(bytes);
        assert!(reply.len() >= HEADER_LEN);
        assert_eq!(reply[2] & 0x80, 0x80);
    }
}
