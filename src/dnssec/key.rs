//! Zone keys in BIND's key file format: `K<zone>+<alg>+<tag>.key` holds the
//! DNSKEY record, `K<zone>+<alg>+<tag>.private` the private key and the
//! key's timing. The format is BIND's so that keys move between veer, BIND
//! (`dnssec-dsfromkey`, `dnssec-settime`) and Knot (`keymgr import-bind`)
//! without conversion.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64;
use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, PublicKeyBuf, SigningKey, TBS};
use hickory_proto::rr::Name;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use crate::diag::Diagnostic;

/// DNSKEY flags of a zone-signing key (Zone Key bit).
pub const ZSK_FLAGS: u16 = 256;
/// DNSKEY flags of a key-signing key or a combined signing key (Zone Key
/// and Secure Entry Point bits).
pub const KSK_FLAGS: u16 = 257;

/// The algorithms veer signs with: the two RFC 8624 recommends for signing
/// and both of which ring implements (RSA would need key generation ring
/// does not offer, and its signatures make large responses).
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::ECDSAP256SHA256, Algorithm::ED25519];

/// The TTL written into a new `.key` file. Only informational: the DNSKEY
/// RRset is served with the TTL the zone chooses.
const KEY_FILE_TTL: u32 = 3600;

/// Reads an algorithm as an operator writes it: `13`, `15`,
/// `ECDSAP256SHA256` or `ED25519` (any case). None: not one veer signs
/// with.
pub fn parse_algorithm(text: &str) -> Option<Algorithm> {
    match text.trim().to_ascii_lowercase().as_str() {
        "13" | "ecdsap256sha256" => Some(Algorithm::ECDSAP256SHA256),
        "15" | "ed25519" => Some(Algorithm::ED25519),
        _ => None,
    }
}

/// The mnemonic BIND writes after the number (`Algorithm: 13 (ECDSAP256SHA256)`).
fn mnemonic(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::ECDSAP256SHA256 => "ECDSAP256SHA256",
        Algorithm::ED25519 => "ED25519",
        _ => "?",
    }
}

/// The timing fields as BIND names them, in the order it writes them.
const TIMING_FIELDS: [&str; 5] = ["Created", "Publish", "Activate", "Inactive", "Delete"];

/// When a key is published, used for signing and removed. BIND's fields;
/// an absent one never happens (no Publish or Activate: published or
/// active from the start; no Inactive or Delete: never retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// When the key was made (informational).
    pub created: Option<SystemTime>,
    /// From then on the DNSKEY is in the zone.
    pub publish: Option<SystemTime>,
    /// From then on the key signs.
    pub activate: Option<SystemTime>,
    /// From then on the key no longer signs (it stays published).
    pub inactive: Option<SystemTime>,
    /// From then on the DNSKEY is out of the zone.
    pub delete: Option<SystemTime>,
}

impl Timing {
    /// Whether the DNSKEY belongs in the zone at `now`. An active key is
    /// always published, as BIND does: signatures by a key resolvers
    /// cannot find are bogus.
    pub fn published_at(&self, now: SystemTime) -> bool {
        let reached = |t: Option<SystemTime>| t.is_none_or(|t| t <= now);
        (reached(self.publish) || self.activate.is_some_and(|a| a <= now))
            && self.delete.is_none_or(|d| d > now)
    }

    /// Whether the key signs at `now`.
    pub fn active_at(&self, now: SystemTime) -> bool {
        self.activate.is_none_or(|a| a <= now)
            && self.inactive.is_none_or(|i| i > now)
            && self.delete.is_none_or(|d| d > now)
    }

    /// The first moment after `now` at which the key's state changes.
    pub fn next_event(&self, now: SystemTime) -> Option<SystemTime> {
        [self.publish, self.activate, self.inactive, self.delete]
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
    }

    /// The fields with their names ([`TIMING_FIELDS`]).
    fn fields(&self) -> [(&'static str, Option<SystemTime>); 5] {
        let t = [
            self.created,
            self.publish,
            self.activate,
            self.inactive,
            self.delete,
        ];
        std::array::from_fn(|i| (TIMING_FIELDS[i], t[i]))
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut Option<SystemTime>> {
        match name {
            "Created" => Some(&mut self.created),
            "Publish" => Some(&mut self.publish),
            "Activate" => Some(&mut self.activate),
            "Inactive" => Some(&mut self.inactive),
            "Delete" => Some(&mut self.delete),
            _ => None,
        }
    }
}

/// A time as BIND writes it in key files: `YYYYMMDDHHMMSS`, UTC.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Reads `YYYYMMDDHHMMSS` (UTC).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let t = text.trim();
    if t.len() != 14 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// Why a key cannot be made or rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// An algorithm veer does not sign with.
    #[error("algorithm {0} is not supported: use 13 (ECDSAP256SHA256) or 15 (ED25519)")]
    Algorithm(u8),
    /// The zone's name cannot be part of a file name.
    #[error("zone {0}: its name cannot be a key file name")]
    ZoneName(String),
    /// The cryptography failed (no randomness, a rejected key).
    #[error("{0}")]
    Crypto(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A zone's signing key, loaded from its BIND key files.
#[derive(Clone)]
pub struct ZoneKey {
    /// The zone (lowercase, fully qualified).
    pub zone: Name,
    /// 13 (ECDSAP256SHA256) or 15 (ED25519).
    pub algorithm: Algorithm,
    /// 257 (KSK or CSK) or 256 (ZSK).
    pub flags: u16,
    /// The public key as the zone publishes it.
    pub dnskey: DNSKEY,
    /// The key tag (RFC 4034 appendix B) of `dnskey`.
    pub tag: u16,
    /// When the key is published and signs.
    pub timing: Timing,
    /// The `.private` file (the `.key` file is beside it).
    pub path: PathBuf,
    signing: Arc<dyn SigningKey>,
}

impl fmt::Debug for ZoneKey {
    /// Names the key, never the private half.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("zone", &self.zone.to_ascii())
            .field("algorithm", &u8::from(self.algorithm))
            .field("flags", &self.flags)
            .field("tag", &self.tag)
            .field("timing", &self.timing)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// Signs `tbs` (RFC 4034 section 3.1.8.1 data) with the private key.
    pub fn sign(&self, tbs: &TBS) -> Result<Vec<u8>, KeyError> {
        self.signing
            .sign(tbs)
            .map_err(|e| KeyError::Crypto(format!("signing with key {}: {e}", self.tag)))
    }

    /// The DS record for this key, as the parent zone publishes it.
    /// Built here rather than with hickory's `DS::from_key`, which takes
    /// every key for a KSK and gets a ZSK's tag wrong.
    pub fn ds(&self, digest: DigestType) -> Result<DS, KeyError> {
        let d = self
            .dnskey
            .to_digest(&self.zone, digest)
            .map_err(|e| KeyError::Crypto(format!("digest of key {}: {e}", self.tag)))?;
        Ok(DS::new(
            self.tag,
            self.algorithm,
            digest,
            d.as_ref().to_vec(),
        ))
    }

    /// Whether the Secure Entry Point bit is set: a KSK, or a CSK (a KSK
    /// signs the zone's data too while no ZSK of its algorithm is active).
    pub fn is_ksk(&self) -> bool {
        self.flags & 1 == 1
    }

    /// `K<zone>+<alg>+<tag>`, the name both files share.
    pub fn base_name(&self) -> String {
        base_name(&self.zone, self.algorithm, self.tag)
    }

    /// The `.key` file.
    pub fn key_path(&self) -> PathBuf {
        self.path.with_extension("key")
    }
}

/// The zone as BIND writes it in key file names: lowercase with the
/// trailing dot (`Kexample.com.+013+12345`).
fn zone_file_text(zone: &Name) -> String {
    let mut z = zone.to_lowercase();
    z.set_fqdn(true);
    z.to_ascii()
}

fn base_name(zone: &Name, algorithm: Algorithm, tag: u16) -> String {
    format!(
        "K{}+{:03}+{tag:05}",
        zone_file_text(zone),
        u8::from(algorithm)
    )
}

/// A key pair from its raw private key (BIND's `PrivateKey:` value) and,
/// for ECDSA, the public point the DNSKEY holds (ring derives the point
/// from the scalar and refuses a pair that does not match). Returns the
/// signing key and the DNSKEY public key bytes.
fn key_pair(
    algorithm: Algorithm,
    private: &[u8],
    public: &[u8],
) -> Result<(Arc<dyn SigningKey>, Vec<u8>), String> {
    match algorithm {
        Algorithm::ED25519 => {
            if private.len() != 32 {
                return Err(format!(
                    "PrivateKey is {} bytes; an ED25519 key is 32",
                    private.len()
                ));
            }
            let pair = Ed25519KeyPair::from_seed_unchecked(private)
                .map_err(|e| format!("PrivateKey is not an ED25519 key: {e}"))?;
            let derived = pair.public_key().as_ref().to_vec();
            Ok((Arc::new(Ed25519SigningKey::from_ed25519(pair)), derived))
        }
        Algorithm::ECDSAP256SHA256 => {
            // A scalar with leading zero bytes written out or left off
            // (either happens with other tools); ring wants exactly 32.
            let trimmed: &[u8] = {
                let first = private
                    .iter()
                    .position(|&b| b != 0)
                    .unwrap_or(private.len());
                &private[first..]
            };
            if trimmed.len() > 32 || private.is_empty() {
                return Err(format!(
                    "PrivateKey is {} bytes; an ECDSAP256SHA256 key is 32",
                    private.len()
                ));
            }
            let mut d = vec![0u8; 32 - trimmed.len()];
            d.extend_from_slice(trimmed);
            if public.len() != 64 {
                return Err(format!(
                    "the public key is {} bytes; an ECDSAP256SHA256 key is 64",
                    public.len()
                ));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(public);
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &d,
                &point,
                &SystemRandom::new(),
            )
            .map_err(|e| match e.to_string().as_str() {
                "InconsistentComponents" => {
                    "the private key does not belong to the public key in the .key file".to_string()
                }
                other => format!("PrivateKey is not an ECDSAP256SHA256 key: {other}"),
            })?;
            Ok((
                Arc::new(EcdsaSigningKey::from_ecdsa(pair, algorithm)),
                public.to_vec(),
            ))
        }
        other => Err(unsupported(u8::from(other))),
    }
}

fn unsupported(alg: u8) -> String {
    format!(
        "algorithm {alg} is not supported: veer signs with 13 (ECDSAP256SHA256) or 15 (ED25519)"
    )
}

/// A fresh private key and its public key (DNSKEY form).
fn new_private_key(algorithm: Algorithm) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let rng = SystemRandom::new();
    let crypto = |what: &str| KeyError::Crypto(format!("generating a key: {what}"));
    match algorithm {
        Algorithm::ED25519 => {
            // The seed is the private key (RFC 8080 section 3).
            let mut seed = [0u8; 32];
            rng.fill(&mut seed).map_err(|_| crypto("no randomness"))?;
            let pair =
                Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| crypto(&e.to_string()))?;
            Ok((seed.to_vec(), pair.public_key().as_ref().to_vec()))
        }
        Algorithm::ECDSAP256SHA256 => {
            // ring only generates PKCS#8; in its P-256 template the
            // scalar is bytes 36..68. Rebuilding the pair from that scalar
            // and the public point (in key_pair) proves the slice right.
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| crypto("no randomness"))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                    .map_err(|e| crypto(&e.to_string()))?;
            let d = doc
                .as_ref()
                .get(36..68)
                .ok_or_else(|| crypto("unexpected PKCS#8 layout"))?
                .to_vec();
            Ok((d, pair.public_key().as_ref()[1..].to_vec()))
        }
        other => Err(KeyError::Algorithm(u8::from(other))),
    }
}

/// The `.private` file's text.
fn private_text(algorithm: Algorithm, private: &[u8], timing: &Timing) -> String {
    let mut s = format!(
        "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\n",
        u8::from(algorithm),
        mnemonic(algorithm),
        BASE64.encode(private)
    );
    for (name, t) in timing.fields() {
        if let Some(t) = t {
            s.push_str(&format!("{name}: {}\n", format_time(t)));
        }
    }
    s
}

/// The `.key` file's text: comments as BIND writes them, then the record.
fn public_text(zone: &Name, dnskey: &DNSKEY, tag: u16, timing: &Timing) -> String {
    let key = dnskey.public_key();
    let kind = if dnskey.flags() & 1 == 1 {
        "key-signing"
    } else {
        "zone-signing"
    };
    let zone_text = zone_file_text(zone);
    let mut s = format!("; This is a {kind} key, keyid {tag}, for {zone_text}\n");
    for (name, t) in timing.fields() {
        if let Some(t) = t {
            s.push_str(&format!(
                "; {name}: {} ({})\n",
                format_time(t),
                humantime::format_rfc3339_seconds(t)
            ));
        }
    }
    s.push_str(&format!(
        "{zone_text} {KEY_FILE_TTL} IN DNSKEY {} 3 {} {}\n",
        dnskey.flags(),
        u8::from(key.algorithm()),
        BASE64.encode(key.public_bytes())
    ));
    s
}

/// Writes a new file that must not exist yet, with `mode`, synced.
fn create_new(path: &Path, mode: u32, text: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Creates `dir` (and missing parents) readable by its owner only: it
/// holds private keys.
pub fn create_key_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

/// Makes a new key for `zone` and writes its two files into `dir`
/// (created if missing): a KSK/CSK (flags 257) or a ZSK (256), created,
/// published and active at `now`. The private file is created readable by
/// its owner only, and no file is ever overwritten: a key tag already
/// used in `dir` gets another key.
pub fn generate(
    zone: &Name,
    algorithm: Algorithm,
    ksk: bool,
    dir: &Path,
    now: SystemTime,
) -> Result<ZoneKey, KeyError> {
    if !ALGORITHMS.contains(&algorithm) {
        return Err(KeyError::Algorithm(u8::from(algorithm)));
    }
    let mut zone = zone.to_lowercase();
    zone.set_fqdn(true);
    if zone_file_text(&zone).contains('/') {
        return Err(KeyError::ZoneName(zone.to_ascii()));
    }
    create_key_dir(dir)?;
    // Files hold whole seconds: so does the returned key.
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let now = UNIX_EPOCH + Duration::from_secs(secs);
    let timing = Timing {
        created: Some(now),
        publish: Some(now),
        activate: Some(now),
        inactive: None,
        delete: None,
    };
    let flags = if ksk { KSK_FLAGS } else { ZSK_FLAGS };
    for _ in 0..16 {
        let (private, public) = new_private_key(algorithm)?;
        let (signing, public) = key_pair(algorithm, &private, &public).map_err(KeyError::Crypto)?;
        let dnskey = DNSKEY::with_flags(flags, PublicKeyBuf::new(public, algorithm));
        let tag = dnskey
            .calculate_key_tag()
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let base = base_name(&zone, algorithm, tag);
        let private_path = dir.join(format!("{base}.private"));
        let key_path = dir.join(format!("{base}.key"));
        if key_path.exists() {
            continue;
        }
        match create_new(
            &private_path,
            0o600,
            &private_text(algorithm, &private, &timing),
        ) {
            Ok(()) => {}
            // Another key of this tag (or a leftover): try another key.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&private_path)(e)),
        }
        if let Err(e) = create_new(&key_path, 0o644, &public_text(&zone, &dnskey, tag, &timing)) {
            let _ = std::fs::remove_file(&private_path);
            if e.kind() == io::ErrorKind::AlreadyExists {
                continue;
            }
            return Err(io_error(&key_path)(e));
        }
        sync_dir(dir);
        return Ok(ZoneKey {
            zone,
            algorithm,
            flags,
            dnskey,
            tag,
            timing,
            path: private_path,
            signing,
        });
    }
    Err(KeyError::Crypto(
        "no unused key tag in 16 tries".to_string(),
    ))
}

/// Makes new entries of `dir` durable; a failure only weakens that
/// against a power loss, so it is logged.
fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!("{}: cannot sync the directory: {e}", dir.display());
    }
}

/// Rewrites the timing of `key` in both its files (the `.private` file's
/// fields, the `.key` file's comments), each replaced whole so that a
/// crash leaves the old file or the new one. Other lines of the
/// `.private` file (fields of other tools) are kept. The caller loads
/// the keys again to see the change.
pub fn set_timing(key: &ZoneKey, timing: &Timing) -> Result<(), KeyError> {
    let text = std::fs::read_to_string(&key.path).map_err(io_error(&key.path))?;
    let mut out = String::new();
    for line in text.lines() {
        let field = line.split_once(':').map(|(f, _)| f.trim());
        if field.is_some_and(|f| TIMING_FIELDS.contains(&f)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for (name, t) in timing.fields() {
        if let Some(t) = t {
            out.push_str(&format!("{name}: {}\n", format_time(t)));
        }
    }
    let dir = key.path.parent().unwrap_or(Path::new("."));
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    replace(dir, &name(&key.path), 0o600, &out).map_err(io_error(&key.path))?;
    let key_path = key.key_path();
    let public = public_text(&key.zone, &key.dnskey, key.tag, timing);
    replace(dir, &name(&key_path), 0o644, &public).map_err(io_error(&key_path))
}

/// Replaces `dir/name` by a new file of `mode` holding `text`: written
/// beside it, synced, renamed over it.
fn replace(dir: &Path, name: &str, mode: u32, text: &str) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    create_new(&tmp, mode, text)?;
    // The file keeps its owner (keygen gives key files to `[server]
    // user`; a rewrite as root must not take them back).
    if let Ok(meta) = std::fs::metadata(dir.join(name)) {
        use std::os::unix::fs::MetadataExt;
        if let Err(e) = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid())) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    if let Err(e) = std::fs::rename(&tmp, dir.join(name)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir);
    Ok(())
}

/// What a `.private` file says.
struct PrivateFile {
    algorithm: (u8, usize),
    private: (Vec<u8>, usize),
    timing: Timing,
}

/// Reads a BIND `.private` file. Fields other tools add (BIND's
/// `SyncPublish`, Knot's own) are ignored.
fn parse_private(path: &Path, text: &str) -> Result<PrivateFile, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut err = |line: usize, m: String| errors.push(Diagnostic::new(path, line, m));
    let mut format_seen = false;
    let mut algorithm: Option<(u8, usize)> = None;
    let mut private: Option<(Vec<u8>, usize)> = None;
    let mut timing = Timing::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            // Never quoted: the line may hold the private key.
            err(n, "is not `Field: value`".to_string());
            continue;
        };
        let (field, value) = (field.trim(), value.trim());
        if let Some(first) = seen.insert(field.to_string(), n) {
            err(
                n,
                format!("a second {field} (the first is at line {first})"),
            );
            continue;
        }
        match field {
            "Private-key-format" => {
                format_seen = true;
                if !value.starts_with("v1.") {
                    err(
                        n,
                        format!("Private-key-format {value} is not supported (v1.x)"),
                    );
                }
            }
            "Algorithm" => {
                let number = value.split_whitespace().next().unwrap_or("");
                match number.parse::<u8>() {
                    Ok(a) => algorithm = Some((a, n)),
                    Err(_) => err(n, format!("Algorithm `{value}` is not a number")),
                }
            }
            "PrivateKey" => {
                let compact: String = value.split_whitespace().collect();
                match BASE64.decode(compact.as_bytes()) {
                    Ok(k) if !k.is_empty() => private = Some((k, n)),
                    Ok(_) => err(n, "PrivateKey is empty".to_string()),
                    Err(_) => err(n, "PrivateKey is not base64".to_string()),
                }
            }
            other => {
                if let Some(slot) = timing.field_mut(other) {
                    match parse_time(value) {
                        Some(t) => *slot = Some(t),
                        None => err(
                            n,
                            format!("{other} `{value}` is not a time (YYYYMMDDHHMMSS, UTC)"),
                        ),
                    }
                }
            }
        }
    }
    if !format_seen {
        err(
            1,
            "not a BIND private key file (no Private-key-format line)".to_string(),
        );
    }
    if algorithm.is_none() && !seen.contains_key("Algorithm") {
        err(1, "no Algorithm line".to_string());
    }
    if private.is_none() && !seen.contains_key("PrivateKey") {
        err(1, "no PrivateKey line".to_string());
    }
    match (algorithm, private) {
        (Some(algorithm), Some(private)) if errors.is_empty() => Ok(PrivateFile {
            algorithm,
            private,
            timing,
        }),
        _ => Err(errors),
    }
}

/// What a `.key` file says.
struct PublicFile {
    owner: Name,
    flags: u16,
    algorithm: u8,
    public: Vec<u8>,
    line: usize,
}

/// Reads a BIND `.key` file: comment lines (`;`), then one DNSKEY record,
/// possibly with a TTL and class and with its key in parentheses over
/// several lines.
fn parse_public(path: &Path, text: &str) -> Result<PublicFile, Diagnostic> {
    let err = |line: usize, m: String| Diagnostic::new(path, line, m);
    // Tokens with their lines; comments and parentheses dropped.
    let mut tokens: Vec<(&str, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let data = line.split(';').next().unwrap_or("");
        for t in data.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            if !t.is_empty() {
                tokens.push((t, i + 1));
            }
        }
    }
    let Some(&(owner_text, line)) = tokens.first() else {
        return Err(err(1, "no DNSKEY record".to_string()));
    };
    let owner = Name::from_ascii(owner_text)
        .map(|mut n| {
            n.set_fqdn(true);
            n
        })
        .map_err(|e| err(line, format!("owner `{owner_text}`: {e}")))?;
    let mut rest = tokens[1..].iter().map(|&(t, _)| t).peekable();
    // TTL and class, in either order.
    for _ in 0..2 {
        match rest.peek() {
            Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
                rest.next();
            }
            Some(t) if t.eq_ignore_ascii_case("IN") => {
                rest.next();
            }
            _ => {}
        }
    }
    match rest.next() {
        Some(t) if t.eq_ignore_ascii_case("DNSKEY") => {}
        Some(t) => return Err(err(line, format!("`{t}`: a DNSKEY record was expected"))),
        None => return Err(err(line, "no DNSKEY record".to_string())),
    }
    let mut number = |what: &str| -> Result<u32, Diagnostic> {
        let t = rest
            .next()
            .ok_or_else(|| err(line, format!("the DNSKEY record has no {what}")))?;
        t.parse::<u32>()
            .map_err(|_| err(line, format!("DNSKEY {what} `{t}` is not a number")))
    };
    let flags = number("flags")?;
    let protocol = number("protocol")?;
    let algorithm = number("algorithm")?;
    if protocol != 3 {
        return Err(err(line, format!("DNSKEY protocol is {protocol}, not 3")));
    }
    let (Ok(flags), Ok(algorithm)) = (u16::try_from(flags), u8::try_from(algorithm)) else {
        return Err(err(
            line,
            "DNSKEY flags or algorithm out of range".to_string(),
        ));
    };
    let key: String = rest.collect();
    let public = BASE64
        .decode(key.as_bytes())
        .map_err(|_| err(line, "the DNSKEY public key is not base64".to_string()))?;
    if public.is_empty() {
        return Err(err(line, "the DNSKEY record has no public key".to_string()));
    }
    Ok(PublicFile {
        owner,
        flags,
        algorithm,
        public,
        line,
    })
}

/// Every key of `zone` in `dir`: each `K<zone>+<alg>+<tag>.private` with
/// its `.key`, sorted by algorithm and tag. A missing directory has no
/// keys. Every problem is reported, as `file:line: message`: a file that
/// does not parse, a private key without its public key or the other way
/// round, a private key that does not belong to its public key, a key tag
/// or algorithm other than the file name says, a key of another zone.
pub fn load_zone_keys(zone: &Name, dir: &Path) -> Result<Vec<ZoneKey>, Vec<Diagnostic>> {
    let mut zone = zone.to_lowercase();
    zone.set_fqdn(true);
    let prefix = format!("K{}+", zone_file_text(&zone));
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![Diagnostic::new(
                dir,
                1,
                format!("cannot read the key directory: {e}"),
            )]);
        }
    };
    // Base name -> (has .private, has .key).
    let mut found: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&prefix) {
            continue;
        }
        if let Some(base) = name.strip_suffix(".private") {
            found.entry(base.to_string()).or_default().0 = true;
        } else if let Some(base) = name.strip_suffix(".key") {
            found.entry(base.to_string()).or_default().1 = true;
        }
    }
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (base, files) in found {
        let private_path = dir.join(format!("{base}.private"));
        let key_path = dir.join(format!("{base}.key"));
        match files {
            (true, true) => match load_pair(&zone, &base[prefix.len()..], &private_path, &key_path)
            {
                Ok(k) => keys.push(k),
                Err(e) => errors.extend(e),
            },
            (true, false) => errors.push(Diagnostic::new(
                &private_path,
                1,
                format!("no public key: {base}.key is missing"),
            )),
            (false, true) => errors.push(Diagnostic::new(
                &key_path,
                1,
                format!("no private key: {base}.private is missing"),
            )),
            (false, false) => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    keys.sort_by_key(|k: &ZoneKey| (u8::from(k.algorithm), k.tag));
    Ok(keys)
}

/// One key from its two files; `id` is the `<alg>+<tag>` part of their
/// name.
fn load_pair(
    zone: &Name,
    id: &str,
    private_path: &Path,
    key_path: &Path,
) -> Result<ZoneKey, Vec<Diagnostic>> {
    let named: Option<(u8, u16)> = id
        .split_once('+')
        .filter(|(a, t)| a.len() == 3 && t.len() == 5)
        .and_then(|(a, t)| Some((a.parse().ok()?, t.parse().ok()?)));
    let Some((named_alg, named_tag)) = named else {
        return Err(vec![Diagnostic::new(
            private_path,
            1,
            "the file name is not K<zone>+<algorithm>+<key tag>.private (3 and 5 digits)",
        )]);
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| vec![Diagnostic::new(p, 1, format!("cannot read: {e}"))])
    };
    let private_text = read(private_path)?;
    let public_text = read(key_path)?;
    let private = parse_private(private_path, &private_text);
    let public = parse_public(key_path, &public_text);
    let (private, public) = match (private, public) {
        (Ok(p), Ok(k)) => (p, k),
        (p, k) => {
            let mut errors = p.err().unwrap_or_default();
            errors.extend(k.err());
            return Err(errors);
        }
    };
    let at_private = |line: usize, m: String| vec![Diagnostic::new(private_path, line, m)];
    let at_key = |m: String| vec![Diagnostic::new(key_path, public.line, m)];
    let (alg, alg_line) = private.algorithm;
    if alg != named_alg {
        return Err(at_private(
            alg_line,
            format!("Algorithm is {alg}, the file name says {named_alg:03}"),
        ));
    }
    let algorithm = Algorithm::from_u8(alg);
    if !ALGORITHMS.contains(&algorithm) {
        return Err(at_private(alg_line, unsupported(alg)));
    }
    if public.algorithm != alg {
        return Err(at_key(format!(
            "the DNSKEY's algorithm is {}, the private key's {alg}",
            public.algorithm
        )));
    }
    if public.owner != *zone {
        return Err(at_key(format!(
            "the DNSKEY is for {}, not the zone {zone}",
            public.owner
        )));
    }
    if public.flags != KSK_FLAGS && public.flags != ZSK_FLAGS {
        return Err(at_key(format!(
            "DNSKEY flags {} are not supported (257: KSK or CSK, 256: ZSK)",
            public.flags
        )));
    }
    let (private_key, private_line) = &private.private;
    let (signing, derived) = key_pair(algorithm, private_key, &public.public)
        .map_err(|m| at_private(*private_line, m))?;
    if derived != public.public {
        return Err(at_private(
            *private_line,
            format!(
                "the private key does not belong to the public key in {}",
                key_path.file_name().unwrap_or_default().to_string_lossy()
            ),
        ));
    }
    let dnskey = DNSKEY::with_flags(public.flags, PublicKeyBuf::new(derived, algorithm));
    let tag = dnskey
        .calculate_key_tag()
        .map_err(|e| at_key(format!("cannot compute the key tag: {e}")))?;
    if tag != named_tag {
        return Err(at_key(format!(
            "the key tag is {tag:05}, the file name says {named_tag:05}"
        )));
    }
    Ok(ZoneKey {
        zone: zone.clone(),
        algorithm,
        flags: public.flags,
        dnskey,
        tag,
        timing: private.timing,
        path: private_path.to_path_buf(),
        signing,
    })
}
