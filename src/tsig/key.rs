//! TSIG keys as `tsig-keygen` prints them: a name, an HMAC algorithm and a
//! base64 secret.

use std::fmt;
use std::sync::Arc;

use data_encoding::BASE64;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

/// The shortest secret accepted, whatever the algorithm. RFC 2104 section 3
/// discourages HMAC keys shorter than the hash output; below half of it
/// [`Key::warning`] speaks up, and below 16 bytes the key is refused.
const MIN_SECRET: usize = 16;

/// The HMACs hickory can compute. RFC 8945 section 6 makes HMAC-SHA256
/// mandatory; MD5, SHA-1, SHA-224 and the truncated variants are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// Reads the name `tsig-keygen` prints, in any case, with or without
    /// a trailing dot.
    fn parse(text: &str) -> Result<Algorithm, String> {
        let trimmed = text.trim();
        let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
        match bare.to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Algorithm::HmacSha256),
            "hmac-sha384" => Ok(Algorithm::HmacSha384),
            "hmac-sha512" => Ok(Algorithm::HmacSha512),
            "hmac-md5"
            | "hmac-md5.sig-alg.reg.int"
            | "hmac-sha1"
            | "hmac-sha224"
            | "hmac-sha256-128"
            | "hmac-sha384-192"
            | "hmac-sha512-256" => Err(format!(
                "TSIG algorithm {trimmed} is not supported; use hmac-sha256, hmac-sha384 or hmac-sha512"
            )),
            _ => Err(format!(
                "unknown TSIG algorithm {trimmed:?}; expected hmac-sha256, hmac-sha384 or hmac-sha512"
            )),
        }
    }

    /// The name as `tsig-keygen` and the DNS write it (lowercase).
    pub(super) fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The name in canonical wire form (one 11-byte label, then the root),
    /// as both the TSIG RDATA and the MAC input carry it.
    pub(super) fn wire(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    /// The length of an untruncated MAC.
    pub(super) fn output_len(self) -> usize {
        match self {
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
        }
    }

    /// Whether a received TSIG names this algorithm. Compared here rather
    /// than with `==`, because hickory maps only the exact lowercase name to
    /// its variant: `HMAC-SHA256` arrives as `Unknown`.
    pub(super) fn matches(self, seen: &TsigAlgorithm) -> bool {
        match seen {
            TsigAlgorithm::HmacSha256 => self == Algorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => self == Algorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => self == Algorithm::HmacSha512,
            TsigAlgorithm::Unknown(name) => {
                let text = name.to_ascii();
                let bare = text.strip_suffix('.').unwrap_or(&text);
                bare.eq_ignore_ascii_case(self.name())
            }
            _ => false,
        }
    }

    fn hickory(self) -> TsigAlgorithm {
        match self {
            Algorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            Algorithm::HmacSha384 => TsigAlgorithm::HmacSha384,
            Algorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }
}

/// A TSIG key from `[key.NAME]` in the config.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// Lowercase and fully qualified: TSIG compares key names without
    /// regard to case, and the MAC covers the lowercase form.
    name: Name,
    algorithm: Algorithm,
    /// Shared between clones: every response signer holds a key.
    secret: Arc<[u8]>,
}

impl Key {
    /// A key from its config text: the name as written (`xfr`, `xfr.` or
    /// `XFR.example.`), the algorithm as `tsig-keygen` prints it
    /// (`hmac-sha256`, `hmac-sha384` or `hmac-sha512`, in any case, with
    /// or without a trailing dot) and the secret in base64. Errors are
    /// sentences fit for a `file:line: ...` config error.
    pub fn new(name: &str, algorithm: &str, secret_base64: &str) -> Result<Key, String> {
        let name = parse_name(name)?;
        let algorithm = Algorithm::parse(algorithm)?;
        // Whitespace is allowed inside, so a long secret may be wrapped.
        let compact: Vec<u8> = secret_base64
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if compact.is_empty() {
            return Err("the TSIG secret is empty".to_string());
        }
        let secret = BASE64
            .decode(&compact)
            .map_err(|e| format!("the TSIG secret is not valid base64: {e}"))?;
        if secret.len() < MIN_SECRET {
            return Err(format!(
                "the TSIG secret is {} bytes; at least {MIN_SECRET} are required (tsig-keygen makes {})",
                secret.len(),
                algorithm.output_len()
            ));
        }
        Ok(Key {
            name,
            algorithm,
            secret: secret.into(),
        })
    }

    /// The key's name: lowercase, fully qualified.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The algorithm's name, `"hmac-sha256"`, `"hmac-sha384"` or `"hmac-sha512"`.
    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// A sentence worth a config warning when the secret is shorter than
    /// half the hash output, which only hmac-sha384 and hmac-sha512 keys
    /// can be (anything under 16 bytes is already an error).
    pub fn warning(&self) -> Option<String> {
        let half = self.algorithm.output_len() / 2;
        (self.secret.len() < half).then(|| {
            format!(
                "the TSIG secret is {} bytes; {} wants at least {half}",
                self.secret.len(),
                self.algorithm.name()
            )
        })
    }

    pub(super) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The HMAC of `data`.
    pub(super) fn mac(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        self.algorithm
            .hickory()
            .mac_data(&self.secret, data)
            .map_err(|e| format!("computing the TSIG MAC: {e}"))
    }

    /// Whether `mac` is the HMAC of `data`, or its first `mac.len()` bytes
    /// (a truncated MAC, RFC 8945 section 5.2.2.1), compared in constant time.
    pub(super) fn verify(&self, data: &[u8], mac: &[u8]) -> bool {
        let hickory = self.algorithm.hickory();
        if mac.len() == self.algorithm.output_len() {
            return hickory.verify_mac(&self.secret, data, mac).is_ok();
        }
        if mac.is_empty() || mac.len() > self.algorithm.output_len() {
            return false;
        }
        match hickory.mac_data(&self.secret, data) {
            Ok(full) => {
                full.iter()
                    .zip(mac)
                    .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0
            }
            Err(_) => false,
        }
    }
}

/// The debug form names the key and algorithm, never the secret.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name.to_ascii())
            .field("algorithm", &self.algorithm.name())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A key name as written in the config, as a lowercase FQDN.
fn parse_name(text: &str) -> Result<Name, String> {
    let text = text.trim();
    if text.is_empty() || text == "." {
        return Err("a TSIG key needs a name".to_string());
    }
    let mut name = Name::from_ascii(text)
        .map_err(|e| format!("TSIG key name {text:?} is not a domain name: {e}"))?
        .to_lowercase();
    name.set_fqdn(true);
    Ok(name)
}
