//! Signatures and denial of existence: RRSIG records over RRsets (RFC 4034
//! section 3, RFC 4035 section 2.2) and the NSEC chain (RFC 4034 section
//! 4, RFC 4035 section 2.3).
//!
//! The signed data is built here rather than with hickory's
//! `TBS::from_input`, which orders an RRset by RDATA encoded as received
//! (names not lowercased): an MX set holding `MAIL.example.com.` and
//! `beta.example.com.` came out in the wrong order and its signature did
//! not validate. Here every RDATA is put in canonical form first (RFC 4034
//! section 6.2: names lowercased, no compression), then sorted and
//! deduplicated as bytes (section 6.3).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::ProtoError;
use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSSECRData, NSEC, RRSIG, SigInput};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, TBS};
use hickory_proto::rr::rdata::{CNAME, NS, PTR};
use hickory_proto::rr::{
    DNSClass, Name, RData, Record, RecordData, RecordSet, RecordType, SerialNumber,
};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::key::ZoneKey;

/// Signs the RRsets of one zone with its keys.
///
/// Which keys sign follows BIND: per algorithm, the active keys with the
/// SEP bit (KSKs) sign the apex DNSKEY, CDS and CDNSKEY sets and the
/// others (ZSKs) sign everything else; an algorithm with active keys of
/// one kind only signs everything with them (a CSK, or a KSK alone). Keys
/// are judged at the time of each signing, so a key's Activate or
/// Signatures made since start (`/metrics`).
pub static SIGNATURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Inactive time takes effect at the next signing after it.
#[derive(Debug)]
pub struct Signer {
    zone: Name,
    keys: Vec<Arc<ZoneKey>>,
    /// How long a signature is valid from its signing.
    pub validity: Duration,
    /// How far before its signing a signature's validity starts (clock
    /// skew of validators).
    pub inception_back: Duration,
}

impl Signer {
    /// A signer for `zone` with `keys` (any timing; they are judged at
    /// each signing).
    pub fn new(
        zone: &Name,
        keys: Vec<ZoneKey>,
        validity: Duration,
        inception_back: Duration,
    ) -> Signer {
        let mut zone = zone.to_lowercase();
        zone.set_fqdn(true);
        let mut keys: Vec<Arc<ZoneKey>> = keys.into_iter().map(Arc::new).collect();
        keys.sort_by_key(|k| (u8::from(k.algorithm), k.tag));
        Signer {
            zone,
            keys,
            validity,
            inception_back,
        }
    }

    /// The zone (lowercase).
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// Every key, by algorithm and tag.
    pub fn keys(&self) -> &[Arc<ZoneKey>] {
        &self.keys
    }

    /// Whether some key signs at `now`: without one nothing can be signed.
    pub fn usable(&self, now: SystemTime) -> bool {
        self.keys.iter().any(|k| k.timing.active_at(now))
    }

    /// The keys that sign the apex key sets (`key_sets`) or everything
    /// else at `now`.
    pub fn signing_keys(&self, key_sets: bool, now: SystemTime) -> Vec<&Arc<ZoneKey>> {
        let active: Vec<&Arc<ZoneKey>> = self
            .keys
            .iter()
            .filter(|k| k.timing.active_at(now))
            .collect();
        let mut algorithms: Vec<Algorithm> = active.iter().map(|k| k.algorithm).collect();
        algorithms.dedup();
        let mut out = Vec::new();
        for alg in algorithms {
            let of_alg = active.iter().filter(|k| k.algorithm == alg);
            let preferred: Vec<&Arc<ZoneKey>> = of_alg
                .clone()
                .filter(|k| k.is_ksk() == key_sets)
                .copied()
                .collect();
            if preferred.is_empty() {
                out.extend(of_alg.copied());
            } else {
                out.extend(preferred);
            }
        }
        out
    }

    /// The validity window of a signature made at `now`: (inception,
    /// expiration) in RRSIG form, seconds since 1970 modulo 2^32 (RFC 4034
    /// section 3.1.5).
    pub fn window(&self, now: SystemTime) -> (u32, u32) {
        (
            rrsig_time(now.checked_sub(self.inception_back).unwrap_or(UNIX_EPOCH)),
            rrsig_time(now + self.validity),
        )
    }

    /// The RRSIG records of `set`, one per signing key at `now`: the apex
    /// DNSKEY, CDS and CDNSKEY sets by the KSKs, others by the ZSKs (see
    /// [`Signer`]). The original TTL is the set's TTL; the labels count
    /// leaves out a leading `*` (a wildcard's signature is served as is
    /// with each name it answers for). Empty for an RRSIG set or an empty
    /// set. Which sets to sign is the caller's: not glue, not the NS set
    /// of a delegation.
    pub fn sign(&self, set: &RecordSet, now: SystemTime) -> Vec<Record> {
        let rtype = set.record_type();
        if rtype == RecordType::RRSIG {
            return Vec::new();
        }
        let key_sets = matches!(
            rtype,
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        ) && *set.name() == self.zone;
        let signers = self.signing_keys(key_sets, now);
        if signers.is_empty() {
            return Vec::new();
        }
        let rdatas = match canonical_rdatas(set.records_without_rrsigs().map(|r| &r.data)) {
            Ok(r) if r.is_empty() => return Vec::new(),
            Ok(r) => r,
            Err(e) => {
                tracing::error!(
                    "{} {rtype}: cannot put the RRset in canonical form: {e}",
                    set.name()
                );
                return Vec::new();
            }
        };
        let owner = set.name().to_lowercase();
        let (inception, expiration) = self.window(now);
        let mut out = Vec::with_capacity(signers.len());
        for key in signers {
            let input = SigInput {
                type_covered: rtype,
                algorithm: key.algorithm,
                num_labels: owner.num_labels(),
                original_ttl: set.ttl(),
                sig_expiration: SerialNumber::new(expiration),
                sig_inception: SerialNumber::new(inception),
                key_tag: key.tag,
                signer_name: self.zone.clone(),
            };
            let signed = signed_data(&owner, set.dns_class(), &input, &rdatas)
                .map_err(|e| e.to_string())
                .and_then(|tbs| key.sign(&tbs).map_err(|e| e.to_string()));
            match signed {
                Ok(sig) => {
                    SIGNATURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut r = Record::from_rdata(
                        set.name().clone(),
                        set.ttl(),
                        RRSIG::from_sig(input, sig).into_rdata(),
                    );
                    r.dns_class = set.dns_class();
                    out.push(r);
                }
                // Signing cannot fail short of the system's randomness
                // failing (ECDSA); the set goes out with the other keys'
                // signatures, if any.
                Err(e) => tracing::error!(
                    "{} {rtype}: cannot sign with key {}: {e}",
                    set.name(),
                    key.tag
                ),
            }
        }
        out
    }

    /// What `/v1/status` shows of the keys: tag, algorithm, role, whether
    /// published and active at `now`, and the DS of each KSK/CSK.
    pub fn status(&self, now: SystemTime) -> Vec<crate::status::KeyStatus> {
        self.keys
            .iter()
            .map(|k| crate::status::KeyStatus {
                tag: k.tag,
                algorithm: u8::from(k.algorithm),
                ksk: k.is_ksk(),
                published: k.timing.published_at(now),
                active: k.timing.active_at(now),
                file: k.path.display().to_string(),
                ds: k
                    .is_ksk()
                    .then(|| k.ds(hickory_proto::dnssec::DigestType::SHA256).ok())
                    .flatten()
                    .map(|ds| {
                        format!(
                            "{} 3600 IN DS {} {} 2 {}",
                            self.zone,
                            k.tag,
                            u8::from(k.algorithm),
                            data_encoding::HEXUPPER.encode(ds.digest())
                        )
                    }),
            })
            .collect()
    }

    /// The apex DNSKEY set: every key published at `now`.
    pub fn dnskey_set(&self, ttl: u32, now: SystemTime) -> RecordSet {
        let mut set = RecordSet::with_ttl(self.zone.clone(), RecordType::DNSKEY, ttl);
        for k in self.keys.iter().filter(|k| k.timing.published_at(now)) {
            set.add_rdata(k.dnskey.clone().into());
        }
        set
    }

    /// The apex CDS (SHA-256) and CDNSKEY sets (RFC 7344): the KSKs
    /// active at `now`, which the parent's DS set should match.
    pub fn cds_sets(&self, ttl: u32, now: SystemTime) -> (RecordSet, RecordSet) {
        let mut cds = RecordSet::with_ttl(self.zone.clone(), RecordType::CDS, ttl);
        let mut cdnskey = RecordSet::with_ttl(self.zone.clone(), RecordType::CDNSKEY, ttl);
        for k in self
            .keys
            .iter()
            .filter(|k| k.is_ksk() && k.timing.active_at(now))
        {
            if let Ok(ds) = k.ds(DigestType::SHA256) {
                cds.add_rdata(
                    CDS::new(
                        ds.key_tag(),
                        Some(ds.algorithm()),
                        ds.digest_type(),
                        ds.digest().to_vec(),
                    )
                    .into_rdata(),
                );
            }
            cdnskey.add_rdata(
                CDNSKEY::with_flags(
                    k.flags,
                    Some(k.algorithm),
                    k.dnskey.public_key().public_bytes().to_vec(),
                )
                .into_rdata(),
            );
        }
        (cds, cdnskey)
    }

    /// The first moment after `now` at which a key is published, becomes
    /// active, inactive or is removed: the DNSKEY set and the signatures
    /// change then.
    pub fn next_key_event(&self, now: SystemTime) -> Option<SystemTime> {
        self.keys
            .iter()
            .filter_map(|k| k.timing.next_event(now))
            .min()
    }
}

/// `t` as an RRSIG time field: seconds since 1970, modulo 2^32.
fn rrsig_time(t: SystemTime) -> u32 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    // Serial number arithmetic (RFC 4034 section 3.1.5): wraps in 2106.
    secs as u32
}

/// The earliest expiration among `rrsigs` (other records ignored), as a
/// time: when the set must have been signed again.
pub fn earliest_expiry<'a>(rrsigs: impl IntoIterator<Item = &'a Record>) -> Option<SystemTime> {
    rrsigs
        .into_iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig.input().sig_expiration.get()),
            _ => None,
        })
        .min()
        .map(|secs| UNIX_EPOCH + Duration::from_secs(u64::from(secs)))
}

/// `rdata` with the names RFC 4034 section 6.2 puts in lowercase for
/// signing, for the types veer serves with names in them (NS, CNAME, PTR,
/// MX, SRV, SOA). Types defined later keep their case (RFC 6840 section
/// 5.1); hickory's canonical encoding also lowercases these, this makes
/// sure of it.
pub fn lowercase_names(rdata: &RData) -> RData {
    match rdata {
        RData::NS(n) => RData::NS(NS(n.0.to_lowercase())),
        RData::CNAME(n) => RData::CNAME(CNAME(n.0.to_lowercase())),
        RData::PTR(n) => RData::PTR(PTR(n.0.to_lowercase())),
        RData::MX(mx) => {
            let mut mx = mx.clone();
            mx.exchange = mx.exchange.to_lowercase();
            RData::MX(mx)
        }
        RData::SRV(srv) => {
            let mut srv = srv.clone();
            srv.target = srv.target.to_lowercase();
            RData::SRV(srv)
        }
        RData::SOA(soa) => {
            let mut soa = soa.clone();
            soa.mname = soa.mname.to_lowercase();
            soa.rname = soa.rname.to_lowercase();
            RData::SOA(soa)
        }
        other => other.clone(),
    }
}

/// One RDATA in canonical form (RFC 4034 section 6.2).
fn canonical_rdata(rdata: &RData) -> Result<Vec<u8>, ProtoError> {
    let mut buf = Vec::new();
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_canonical_form(true);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    lowercase_names(rdata).emit(&mut encoder)?;
    Ok(buf)
}

/// The RDATAs of an RRset in canonical form and order, duplicates
/// removed (RFC 4034 section 6.3: sorted as octet strings, a shorter one
/// first when it is a prefix of the other).
pub fn canonical_rdatas<'a>(
    rdatas: impl Iterator<Item = &'a RData>,
) -> Result<Vec<Vec<u8>>, ProtoError> {
    let mut out = rdatas.map(canonical_rdata).collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// The data an RRSIG signs (RFC 4034 section 3.1.8.1): its RDATA without
/// the signature, then every RR of the set with `owner` (lowercase; a
/// wildcard owner as it is) and the original TTL. `rdatas` come from
/// [`canonical_rdatas`].
pub fn signed_data(
    owner: &Name,
    class: DNSClass,
    input: &SigInput,
    rdatas: &[Vec<u8>],
) -> Result<TBS, ProtoError> {
    let mut buf = Vec::new();
    {
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_canonical_form(true);
        encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
        input.emit(&mut encoder)?;
        for rdata in rdatas {
            let len = u16::try_from(rdata.len())
                .map_err(|_| ProtoError::from("RDATA longer than 65535 bytes"))?;
            owner.emit(&mut encoder)?;
            input.type_covered.emit(&mut encoder)?;
            class.emit(&mut encoder)?;
            encoder.emit_u32(input.original_ttl)?;
            encoder.emit_u16(len)?;
            encoder.emit_vec(rdata)?;
        }
    }
    Ok(TBS::from(buf.as_slice()))
}

/// The NSEC records of a zone: one per owner of `owners` (every name with
/// authoritative data or a delegation, in canonical order, which is
/// `Name`'s order: RFC 4034 section 6.1), naming the following owner, the
/// last one the apex. Each bitmap holds the owner's types and NSEC and
/// RRSIG (the caller leaves out what is not authoritative: glue, and at a
/// delegation everything but NS and DS). Names are lowercase.
pub fn nsec_chain(zone: &Name, owners: &BTreeMap<Name, Vec<RecordType>>, ttl: u32) -> Vec<Record> {
    let names: Vec<&Name> = owners.keys().collect();
    owners
        .iter()
        .enumerate()
        .map(|(i, (owner, types))| {
            let next = names.get(i + 1).copied().unwrap_or(zone).to_lowercase();
            let nsec = NSEC::new(
                next,
                types
                    .iter()
                    .copied()
                    .chain([RecordType::NSEC, RecordType::RRSIG]),
            );
            Record::from_rdata(owner.to_lowercase(), ttl, nsec.into_rdata())
        })
        .collect()
}

/// The owner whose NSEC covers `qname` (a name that does not exist): the
/// greatest owner before it in canonical order, the last one if none is
/// before it (the last NSEC wraps around to the apex). `sorted` is the
/// owners of [`nsec_chain`] in its order and never empty (it holds the
/// apex).
pub fn covering<'a>(sorted: &'a [Name], qname: &Name) -> &'a Name {
    let i = sorted.partition_point(|n| n < qname);
    let last = sorted
        .len()
        .checked_sub(1)
        .expect("the chain holds the apex");
    &sorted[if i == 0 { last } else { i - 1 }]
}
