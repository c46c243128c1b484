//! TEMPORARY STUB (replaced by the real module on merge).
use hickory_proto::rr::Name;

/// A TSIG key.
#[derive(Clone, Debug)]
pub struct Key {
    name: Name,
}

impl Key {
    /// Stub.
    pub fn new(name: &str, _algorithm: &str, _secret: &str) -> Result<Key, String> {
        let mut n = Name::from_utf8(name).map_err(|e| e.to_string())?;
        n.set_fqdn(true);
        Ok(Key {
            name: n.to_lowercase(),
        })
    }
    /// Stub.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

/// Stub.
pub enum Checked {
    /// Stub.
    Unsigned,
    /// Stub.
    Valid {
        /// Stub.
        key: Name,
        /// Stub.
        signer: ResponseSigner,
    },
    /// Stub.
    Rejected(Rejection),
}
/// Stub.
pub struct Rejection;
impl Rejection {
    /// Stub.
    pub fn error(&self) -> &'static str {
        "BADKEY"
    }
    /// Stub.
    pub fn reply(&self, _r: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}
/// Stub.
pub struct ResponseSigner;
impl ResponseSigner {
    /// Stub.
    pub fn sign(&mut self, _m: &mut Vec<u8>, _now: u64) -> Result<(), String> {
        Err("stub".into())
    }
    /// Stub.
    pub fn overhead(&self) -> usize {
        0
    }
}
/// Stub.
pub struct ResponseVerifier;
impl ResponseVerifier {
    /// Stub.
    pub fn verify(&mut self, _m: &[u8], _now: u64) -> Result<(), String> {
        Err("stub".into())
    }
}
/// Stub.
pub fn check_request(_k: &[Key], _raw: &[u8], _now: u64) -> Checked {
    Checked::Unsigned
}
/// Stub.
pub fn sign_request(_k: &Key, _m: &mut Vec<u8>, _now: u64) -> Result<ResponseVerifier, String> {
    Err("stub".into())
}
/// Stub.
pub fn now() -> u64 {
    0
}
