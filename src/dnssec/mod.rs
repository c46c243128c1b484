//! DNSSEC: zone keys in BIND's key files, RRSIG records over RRsets and
//! the NSEC chain (RFC 4033, 4034, 4035).
//!
//! [`key`] reads and writes the keys (`veer dnssec keygen` makes them,
//! the zone loader reads them for every zone with `dnssec = true`);
//! [`sign`] turns RRsets into their signatures with a zone's
//! [`sign::Signer`] and builds NSEC records. Only algorithms 13
//! (ECDSAP256SHA256) and 15 (ED25519) are supported.

pub mod key;
pub mod sign;

pub use key::{Timing, ZoneKey, generate, load_zone_keys};
pub use sign::{Signer, covering, nsec_chain};

#[cfg(test)]
mod tests;
