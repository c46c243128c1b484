//! DNS cookies (RFC 7873), server cookies built as RFC 9018 specifies, so
//! every instance of a fleet that shares the secret accepts the others':
//!
//! ```text
//! server cookie = Version (1) | Reserved (3) | Timestamp (4) | Hash (8)
//! Hash = SipHash-2-4(secret, Client Cookie | Version | Reserved | Timestamp | Client IP)
//! ```
//!
//! A server cookie is valid for an hour (and up to five minutes ahead of
//! this clock); every response carries one: the client's own when it is
//! valid and younger than half an hour, else a fresh one. `previous_secret`
//! keeps cookies made with the last secret valid while a new one rolls
//! out.

use std::net::IpAddr;
use std::sync::OnceLock;

use siphasher::sip::SipHasher24;

/// The COOKIE option's code.
pub const CODE: u16 = 10;

/// RFC 9018's version.
const VERSION: u8 = 1;

/// How long a server cookie stays valid, and how far ahead it may be.
const LIFETIME: u32 = 3600;
const AHEAD: u32 = 300;

/// The secrets server cookies are made and checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Makes new cookies and checks them.
    pub secret: [u8; 16],
    /// Also accepted (a secret being rotated out).
    pub previous: Option<[u8; 16]>,
    /// Answer BADCOOKIE (or TC without any cookie) over UDP unless the
    /// query carries a valid server cookie.
    pub require: bool,
}

/// A secret for this process when none is configured (instances then do
/// not accept each other's cookies; clients just get a fresh one).
pub fn generated_secret() -> [u8; 16] {
    static SECRET: OnceLock<[u8; 16]> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let mut s = [0u8; 16];
        if getrandom::getrandom(&mut s).is_err() {
            // No system randomness (should not happen on Linux).
            s[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
            s[8..].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        }
        s
    })
}

/// What a query's COOKIE option says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A client cookie only (or a server cookie that is not valid).
    Client([u8; 8]),
    /// A client cookie and a valid server cookie.
    Valid([u8; 8]),
}

impl Seen {
    /// The client cookie.
    pub fn client(&self) -> [u8; 8] {
        match self {
            Seen::Client(c) | Seen::Valid(c) => *c,
        }
    }
}

/// Why a COOKIE option is malformed (FORMERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl Keys {
    /// Reads a COOKIE option's data from `ip` at `now` (seconds since the
    /// epoch): 8 bytes of client cookie, then optionally 8 to 32 of
    /// server cookie.
    pub fn check(&self, data: &[u8], ip: IpAddr, now: u32) -> Result<Seen, Malformed> {
        self.read(data, ip, now).map(|(seen, _)| seen)
    }

    /// What `check` says, and the COOKIE option data to answer with: the
    /// server cookie the client sent when it is valid, made with the
    /// current secret and younger than half its lifetime (RFC 9018 4.3:
    /// no need to make a new one), else a fresh one.
    pub fn respond(
        &self,
        data: &[u8],
        ip: IpAddr,
        now: u32,
    ) -> Result<(Seen, [u8; 24]), Malformed> {
        let (seen, age) = self.read(data, ip, now)?;
        let out = match age {
            Some(age) if (0..(LIFETIME / 2) as i32).contains(&age) => {
                data[..24].try_into().expect("a valid cookie is 24 bytes")
            }
            _ => self.answer(seen.client(), ip, now),
        };
        Ok((seen, out))
    }

    /// The client cookie and whether the server cookie is valid; with the
    /// age of a valid one made with the current secret.
    fn read(&self, data: &[u8], ip: IpAddr, now: u32) -> Result<(Seen, Option<i32>), Malformed> {
        if !(data.len() == 8 || (16..=40).contains(&data.len())) {
            return Err(Malformed);
        }
        let client: [u8; 8] = data[..8].try_into().expect("checked length");
        let server = &data[8..];
        // Version 1 and a zero Reserved field (both hashed as made here):
        // else not a cookie of ours, and never one to echo.
        if server.len() != 16 || server[..4] != [VERSION, 0, 0, 0] {
            return Ok((Seen::Client(client), None));
        }
        // Its age, signed: up to AHEAD in the future (a peer's clock), up
        // to LIFETIME in the past.
        let t = u32::from_be_bytes(server[4..8].try_into().expect("16 bytes"));
        let age = now.wrapping_sub(t) as i32;
        if !(-(AHEAD as i32)..=LIFETIME as i32).contains(&age) {
            return Ok((Seen::Client(client), None));
        }
        let hash_ok = |k: &[u8; 16]| hash(k, &client, t, ip).to_le_bytes() == server[8..16];
        Ok(if hash_ok(&self.secret) {
            (Seen::Valid(client), Some(age))
        } else if self.previous.as_ref().is_some_and(hash_ok) {
            (Seen::Valid(client), None)
        } else {
            (Seen::Client(client), None)
        })
    }

    /// The COOKIE option data to answer `client` from `ip` with at `now`.
    pub fn answer(&self, client: [u8; 8], ip: IpAddr, now: u32) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&client);
        out[8] = VERSION;
        out[12..16].copy_from_slice(&now.to_be_bytes());
        out[16..].copy_from_slice(&hash(&self.secret, &client, now, ip).to_le_bytes());
        out
    }
}

fn hash(secret: &[u8; 16], client: &[u8; 8], t: u32, ip: IpAddr) -> u64 {
    // One contiguous input, hashed in one call (the streaming interface
    // costs more than the hash for inputs this short).
    let mut input = [0u8; 32];
    input[..8].copy_from_slice(client);
    input[8] = VERSION;
    input[12..16].copy_from_slice(&t.to_be_bytes());
    let len = match ip.to_canonical() {
        IpAddr::V4(a) => {
            input[16..20].copy_from_slice(&a.octets());
            20
        }
        IpAddr::V6(a) => {
            input[16..32].copy_from_slice(&a.octets());
            32
        }
    };
    SipHasher24::new_with_key(secret).hash(&input[..len])
}

/// Seconds since the epoch, as cookies count them.
pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: u8) -> Keys {
        Keys {
            secret: [secret; 16],
            previous: None,
            require: false,
        }
    }

    #[test]
    fn rfc9018_test_vector() {
        // RFC 9018 appendix A.1: client 2464c4abcf10c957, client IP
        // 198.51.100.100, timestamp 1559731985, secret e5e973e5a6b2a43f48e7dc849e37bfcf.
        let secret: [u8; 16] = [
            0xe5, 0xe9, 0x73, 0xe5, 0xa6, 0xb2, 0xa4, 0x3f, 0x48, 0xe7, 0xdc, 0x84, 0x9e, 0x37,
            0xbf, 0xcf,
        ];
        let k = Keys {
            secret,
            previous: None,
            require: false,
        };
        let client = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let out = k.answer(client, ip, 1559731985);
        assert_eq!(
            out[8..],
            [
                0x01, 0x00, 0x00, 0x00, 0x5c, 0xf7, 0x9f, 0x11, 0x1f, 0x81, 0x30, 0xc3, 0xee, 0xe2,
                0x94, 0x80
            ]
        );
    }

    #[test]
    fn valid_stale_wrong_and_rotated_cookies() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_800_000_000;
        let k = keys(1);
        let c = [7u8; 8];
        let answer = k.answer(c, ip, now);
        assert_eq!(k.check(&answer, ip, now + 10), Ok(Seen::Valid(c)));
        // Another address, an hour and more later, another secret: not valid.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(k.check(&answer, other, now), Ok(Seen::Client(c)));
        assert_eq!(k.check(&answer, ip, now + 3601), Ok(Seen::Client(c)));
        // Made by a peer whose clock is a little ahead: still valid.
        let ahead = k.answer(c, ip, now + 10);
        assert_eq!(k.check(&ahead, ip, now), Ok(Seen::Valid(c)));
        let far_ahead = k.answer(c, ip, now + 301);
        assert_eq!(k.check(&far_ahead, ip, now), Ok(Seen::Client(c)));
        assert_eq!(keys(2).check(&answer, ip, now), Ok(Seen::Client(c)));
        // Rotation: the previous secret is still accepted.
        let rotated = Keys {
            secret: [2; 16],
            previous: Some([1; 16]),
            require: false,
        };
        assert_eq!(rotated.check(&answer, ip, now), Ok(Seen::Valid(c)));
        // Lengths: 8, or 16 to 40; anything else is malformed.
        assert_eq!(k.check(&c, ip, now), Ok(Seen::Client(c)));
        for bad in [0, 7, 9, 15, 41] {
            assert_eq!(k.check(&vec![0; bad], ip, now), Err(Malformed), "{bad}");
        }
    }

    #[test]
    fn a_young_valid_cookie_is_echoed_an_older_one_renewed() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_800_000_000;
        let k = keys(1);
        let c = [7u8; 8];
        let given = k.answer(c, ip, now);
        // Ten minutes later: the same cookie back, no new hash.
        assert_eq!(
            k.respond(&given, ip, now + 600),
            Ok((Seen::Valid(c), given))
        );
        // Forty minutes later: valid, and a fresh one with today's time.
        let (seen, fresh) = k.respond(&given, ip, now + 2400).unwrap();
        assert_eq!((seen, fresh), (Seen::Valid(c), k.answer(c, ip, now + 2400)));
        // A cookie from a clock ahead of ours, or made with the previous
        // secret, is valid but renewed.
        let ahead = k.answer(c, ip, now + 60);
        assert_eq!(
            k.respond(&ahead, ip, now),
            Ok((Seen::Valid(c), k.answer(c, ip, now)))
        );
        let rotated = Keys {
            secret: [2; 16],
            previous: Some([1; 16]),
            require: false,
        };
        let (seen, fresh) = rotated.respond(&given, ip, now + 10).unwrap();
        assert_eq!(
            (seen, fresh),
            (Seen::Valid(c), rotated.answer(c, ip, now + 10))
        );
        // A client cookie alone gets a fresh one; a bad length, FORMERR.
        assert_eq!(
            k.respond(&c, ip, now),
            Ok((Seen::Client(c), k.answer(c, ip, now)))
        );
        assert_eq!(k.respond(&[1; 12], ip, now), Err(Malformed));
    }

    #[test]
    fn a_server_cookie_with_reserved_bits_set_is_neither_valid_nor_echoed() {
        // RFC 9018 4.2: Reserved is zero, and it is hashed; a cookie that
        // differs there is not one this server made.
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_800_000_000;
        let k = keys(1);
        let c = [7u8; 8];
        let mut tampered = k.answer(c, ip, now);
        tampered[9] = 0xff;
        assert_eq!(k.check(&tampered, ip, now + 10), Ok(Seen::Client(c)));
        let (seen, out) = k.respond(&tampered, ip, now + 10).unwrap();
        assert_eq!((seen, out), (Seen::Client(c), k.answer(c, ip, now + 10)));
    }

    #[test]
    fn only_this_clients_own_young_cookie_is_echoed() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_800_000_000;
        let k = keys(1);
        let c = [7u8; 8];
        let given = k.answer(c, ip, now);
        // Up to 1799 s old: echoed; from 1800 s: renewed.
        assert_eq!(k.respond(&given, ip, now + 1799).unwrap().1, given);
        assert_eq!(
            k.respond(&given, ip, now + 1800).unwrap().1,
            k.answer(c, ip, now + 1800)
        );
        // From another address: not valid, a fresh one for that address.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            k.respond(&given, other, now),
            Ok((Seen::Client(c), k.answer(c, other, now)))
        );
        // The same address v4-mapped (a dual-stack socket): the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            k.respond(&given, mapped, now + 1),
            Ok((Seen::Valid(c), given))
        );
        // With bytes past its 16: not a cookie of ours.
        let mut long = given.to_vec();
        long.extend_from_slice(&[0; 16]);
        assert_eq!(
            k.respond(&long, ip, now),
            Ok((Seen::Client(c), k.answer(c, ip, now)))
        );
    }
}
