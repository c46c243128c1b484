//! TSIG (RFC 8945): shared-secret signatures on zone transfers and NOTIFY.
//!
//! ```text
//! server: check_request(keys, request) ─Valid─> ResponseSigner::sign(message 1..n)
//!                                      └Rejected─> Rejection::reply(request)
//! client: sign_request(key, request) ─> ResponseVerifier::verify(response 1..n)
//! ```
//!
//! hickory-proto computes the HMACs; the rest is done here because its own
//! TSIG code does not fit a server: it compares algorithm names case by
//! case (`HMAC-SHA256.` fails as a bad signature), its time range excludes
//! `time + fudge` and underflows (a debug-build panic) when Time Signed is
//! below the fudge, it signs only the first message of an answer, and its
//! BADTIME replies lack the server's time.
//!
//! Every message of an answer is signed (RFC 8945 allows up to 99 unsigned
//! ones in between; hickory's client, for one, does not accept them).

mod key;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;

pub use key::Key;
use wire::{Fields, Found, HEADER_LEN, MAX_TIME};

/// How far (seconds) a Time Signed may be from our clock: the value RFC
/// 8945 recommends. We sign with it, and accept a peer's own
/// Fudge only up to it, so a peer cannot widen the replay window.
pub const FUDGE: u16 = 300;

const FORMERR: u8 = 1;
const NOTAUTH: u8 = 9;
const BADSIG: u16 = 16;
const BADKEY: u16 = 17;
const BADTIME: u16 = 18;
const BADTRUNC: u16 = 22;

/// Seconds since the epoch (0 if the clock is before it).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Outcome of checking a request's TSIG.
#[derive(Debug)]
pub enum Checked {
    /// No TSIG record.
    Unsigned,
    /// Signed and valid with `key`; `signer` signs the response messages.
    Valid { key: Name, signer: ResponseSigner },
    /// Signed but not acceptable; answer with [`Rejection::reply`].
    Rejected(Rejection),
}

/// Checks the TSIG of the request `raw` (the whole message as received)
/// against `keys` at `now`, in RFC 8945 section 5.2's order: placement,
/// key and algorithm, MAC, time, truncation.
///
/// A message this cannot walk, or a TSIG that is not the last record of
/// the additional section, is rejected with FORMERR (no TSIG in the reply).
pub fn check_request(keys: &[Key], raw: &[u8], now: u64) -> Checked {
    let reject = |reason| Checked::Rejected(Rejection { reason, now });
    let found = match wire::scan(raw) {
        Ok(Some(found)) => found,
        Ok(None) => return Checked::Unsigned,
        Err(why) => return reject(Reason::FormErr(why)),
    };
    let tsig = &found.tsig;

    // Key names compare without regard to case (Name's ==); so do the
    // algorithm names. An unknown key or algorithm is BADKEY (5.2.1).
    let Some(key) = keys
        .iter()
        .find(|k| *k.name() == found.name && k.algorithm().matches(&tsig.algorithm))
    else {
        let mut algorithm = Vec::new();
        wire::put_name(&mut algorithm, &tsig.algorithm.to_name(), false);
        return reject(Reason::Unsigned {
            error: BADKEY,
            key_name: found.name,
            algorithm,
        });
    };

    // 5.2.2.1: a MAC longer than the hash, or shorter than both 10 bytes
    // and half the hash, is malformed.
    let full = key.algorithm().output_len();
    let got = tsig.mac.len();
    if got > full || got < (full / 2).max(10) {
        return reject(Reason::FormErr("the TSIG MAC size is not allowed"));
    }
    if !verify_received(key, raw, &found, None, false) {
        return reject(Reason::Unsigned {
            error: BADSIG,
            key_name: found.name.clone(),
            algorithm: key.algorithm().wire().to_vec(),
        });
    }
    if !in_window(now, tsig.time, tsig.fudge) {
        // 5.2.3: signed, Time Signed echoing the request's, our time in Other Data.
        return reject(Reason::Signed {
            error: BADTIME,
            key: key.clone(),
            request_mac: tsig.mac.clone(),
            time_signed: tsig.time,
            other: now.min(MAX_TIME).to_be_bytes()[2..].to_vec(),
        });
    }
    if got < full {
        // 5.2.4: a valid truncated MAC, but we only accept full ones.
        return reject(Reason::Signed {
            error: BADTRUNC,
            key: key.clone(),
            request_mac: tsig.mac.clone(),
            time_signed: now.min(MAX_TIME),
            other: Vec::new(),
        });
    }
    Checked::Valid {
        key: key.name().clone(),
        signer: ResponseSigner {
            key: key.clone(),
            prior: found.tsig.mac,
            first: true,
        },
    }
}

/// A signed request that is not acceptable.
#[derive(Debug)]
pub struct Rejection {
    reason: Reason,
    now: u64,
}

#[derive(Debug)]
enum Reason {
    /// The TSIG is misplaced or malformed: FORMERR without a TSIG.
    FormErr(&'static str),
    /// BADKEY or BADSIG: the TSIG must go back unsigned (RFC 8945 5.3.2),
    /// naming the request's key and algorithm.
    Unsigned {
        error: u16,
        key_name: Name,
        /// In wire form.
        algorithm: Vec<u8>,
    },
    /// BADTIME or BADTRUNC: signed with the key, over the request MAC.
    Signed {
        error: u16,
        key: Key,
        request_mac: Vec<u8>,
        time_signed: u64,
        other: Vec<u8>,
    },
}

impl Rejection {
    /// The error's name for logs: `"FORMERR"`, `"BADKEY"`, `"BADSIG"`,
    /// `"BADTIME"` or `"BADTRUNC"`.
    pub fn error(&self) -> &'static str {
        match &self.reason {
            Reason::FormErr(_) => "FORMERR",
            Reason::Unsigned { error, .. } | Reason::Signed { error, .. } => error_name(*error),
        }
    }

    /// The complete error response to `request` (the bytes given to
    /// [`check_request`]): ID, opcode, RD and question copied, RCODE
    /// NOTAUTH with a TSIG carrying the error, or FORMERR without one.
    pub fn reply(&self, request: &[u8]) -> Vec<u8> {
        let rcode = match self.reason {
            Reason::FormErr(_) => FORMERR,
            _ => NOTAUTH,
        };
        let mut out = error_header(request, rcode);
        let oid = u16::from_be_bytes([out[0], out[1]]);
        // Failing to add the TSIG (which cannot happen to a message this
        // small) leaves the plain error response, still worth sending.
        let _ = match &self.reason {
            Reason::FormErr(_) => Ok(()),
            Reason::Unsigned {
                error,
                key_name,
                algorithm,
            } => wire::append(
                &mut out,
                key_name,
                &Fields {
                    algorithm,
                    time: self.now.min(MAX_TIME),
                    fudge: FUDGE,
                    mac: &[],
                    oid,
                    error: *error,
                    other: &[],
                },
            ),
            Reason::Signed {
                error,
                key,
                request_mac,
                time_signed,
                other,
            } => sign(
                key,
                &mut out,
                Chain::First(request_mac),
                *time_signed,
                *error,
                other,
            )
            .map(drop),
        };
        out
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::FormErr(why) => write!(f, "FORMERR: {why}"),
            Reason::Unsigned {
                error, key_name, ..
            } => write!(f, "{} (key {key_name})", error_name(*error)),
            Reason::Signed { error, key, .. } => {
                write!(f, "{} (key {})", error_name(*error), key.name())
            }
        }
    }
}

/// Signs response messages 1..n of one answer.
#[derive(Debug)]
pub struct ResponseSigner {
    key: Key,
    /// The request's MAC, then the last message's.
    prior: Vec<u8>,
    first: bool,
}

impl ResponseSigner {
    /// Appends a TSIG RR to `msg` (a complete encoded DNS message) and
    /// increments ARCOUNT. Message 1 is signed over the request MAC with
    /// all TSIG variables (RFC 8945 5.3), later ones over the previous
    /// MAC with the timers only (5.3.1).
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) -> Result<(), String> {
        let chain = if self.first {
            Chain::First(&self.prior)
        } else {
            Chain::Later(&self.prior)
        };
        self.prior = sign(&self.key, msg, chain, now, 0, &[])?;
        self.first = false;
        Ok(())
    }

    /// Bytes `sign` adds (so callers can keep the message under 65,535 or
    /// the UDP limit).
    pub fn overhead(&self) -> usize {
        overhead(&self.key)
    }
}

/// Signs the request `msg` (NOTIFY out, a transfer request) with `key`,
/// returning what verifies the responses.
pub fn sign_request(key: &Key, msg: &mut Vec<u8>, now: u64) -> Result<ResponseVerifier, String> {
    let mac = sign(key, msg, Chain::Request, now, 0, &[])?;
    Ok(ResponseVerifier {
        key: key.clone(),
        prior: mac,
        first: true,
    })
}

/// Bytes [`sign_request`] adds to a request.
pub fn request_overhead(key: &Key) -> usize {
    overhead(key)
}

/// Verifies the responses to a request signed by [`sign_request`].
#[derive(Debug)]
pub struct ResponseVerifier {
    key: Key,
    /// The request's MAC, then the last response's.
    prior: Vec<u8>,
    first: bool,
}

impl ResponseVerifier {
    /// Verifies one response message (chained for multi-message answers).
    /// Err(reason) if unsigned, signed with another key, carrying a TSIG
    /// error, with a bad or truncated MAC, or outside the time window.
    pub fn verify(&mut self, msg: &[u8], now: u64) -> Result<(), String> {
        let found = wire::scan(msg)
            .map_err(|why| format!("malformed response: {why}"))?
            .ok_or("the response is not TSIG-signed")?;
        let tsig = &found.tsig;
        let algorithm = self.key.algorithm();
        if found.name != *self.key.name() || !algorithm.matches(&tsig.algorithm) {
            return Err(format!(
                "the response is signed with key {} ({}), not {} ({})",
                found.name,
                tsig.algorithm,
                self.key.name(),
                algorithm.name()
            ));
        }
        if let Some(error) = tsig.error {
            let code = u16::from(error);
            return Err(format!(
                "the peer rejected our signature: {} ({code})",
                error_name(code)
            ));
        }
        if tsig.mac.len() != algorithm.output_len() {
            return Err(format!(
                "the response's MAC is {} bytes, not {}",
                tsig.mac.len(),
                algorithm.output_len()
            ));
        }
        if !verify_received(&self.key, msg, &found, Some(&self.prior), !self.first) {
            return Err("the response's MAC does not verify".to_string());
        }
        if !in_window(now, tsig.time, tsig.fudge) {
            return Err(format!(
                "the response was signed at {}, {} s from our clock (fudge {})",
                tsig.time,
                now.abs_diff(tsig.time),
                tsig.fudge.min(FUDGE)
            ));
        }
        self.prior = found.tsig.mac;
        self.first = false;
        Ok(())
    }
}

/// What a MAC covers besides the message and its own fields (RFC 8945 4.3).
enum Chain<'a> {
    /// A request: nothing before, all variables after.
    Request,
    /// A response's first message: the request MAC, all variables.
    First(&'a [u8]),
    /// A later message: the previous MAC, the timers only.
    Later(&'a [u8]),
}

/// Signs `msg` with `key`, appending the TSIG; returns the MAC.
fn sign(
    key: &Key,
    msg: &mut Vec<u8>,
    chain: Chain,
    time: u64,
    error: u16,
    other: &[u8],
) -> Result<Vec<u8>, String> {
    if msg.len() < HEADER_LEN {
        return Err("the message is shorter than a DNS header".to_string());
    }
    if time > MAX_TIME {
        return Err(format!("time {time} does not fit TSIG's 48 bits"));
    }
    let mut fields = Fields {
        algorithm: key.algorithm().wire(),
        time,
        fudge: FUDGE,
        mac: &[],
        // Our own messages keep their ID: Original ID is the message's.
        oid: u16::from_be_bytes([msg[0], msg[1]]),
        error,
        other,
    };
    let mut tbs = Vec::with_capacity(msg.len() + 2 * key.algorithm().output_len() + 128);
    match chain {
        Chain::Request => {}
        Chain::First(prior) | Chain::Later(prior) => wire::put_prior(&mut tbs, prior),
    }
    tbs.extend_from_slice(msg);
    match chain {
        Chain::Later(_) => wire::put_timers(&mut tbs, time, FUDGE),
        Chain::Request | Chain::First(_) => wire::put_variables(&mut tbs, key.name(), &fields),
    }
    let mac = key.mac(&tbs)?;
    fields.mac = &mac;
    wire::append(msg, key.name(), &fields)?;
    Ok(mac)
}

/// Whether the MAC of the received message `msg`, whose TSIG is `found`,
/// verifies with `key` (already matched by name and algorithm).
fn verify_received(
    key: &Key,
    msg: &[u8],
    found: &Found,
    prior: Option<&[u8]>,
    timers_only: bool,
) -> bool {
    let tsig = &found.tsig;
    let mut tbs = Vec::with_capacity(msg.len() + 128);
    if let Some(prior) = prior {
        wire::put_prior(&mut tbs, prior);
    }
    wire::put_unsigned(&mut tbs, msg, found);
    if timers_only {
        wire::put_timers(&mut tbs, tsig.time, tsig.fudge);
    } else {
        let error = tsig.error.map_or(0, u16::from);
        let fields = Fields {
            algorithm: key.algorithm().wire(),
            time: tsig.time,
            fudge: tsig.fudge,
            mac: &[],
            oid: tsig.oid,
            error,
            other: &tsig.other,
        };
        wire::put_variables(&mut tbs, key.name(), &fields);
    }
    key.verify(&tbs, &tsig.mac)
}

/// Whether `now` is within the fudge of `signed`, both ends included. The
/// message's Fudge counts up to [`FUDGE`]. Plain distance, so no time
/// underflows.
fn in_window(now: u64, signed: u64, fudge: u16) -> bool {
    now.abs_diff(signed) <= u64::from(fudge.min(FUDGE))
}

fn overhead(key: &Key) -> usize {
    let algorithm = key.algorithm();
    wire::rr_len(key.name(), algorithm.wire(), algorithm.output_len())
}

/// A response header for `request` with `rcode`: ID, opcode and RD copied,
/// the question copied when it can be walked.
fn error_header(request: &[u8], rcode: u8) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    let Some(header) = request.get(..HEADER_LEN) else {
        out[2] = 0x80;
        out[3] = rcode;
        return out;
    };
    out[..2].copy_from_slice(&header[..2]);
    // QR, then the request's opcode (0x78) and RD (0x01).
    out[2] = 0x80 | (header[2] & 0x79);
    out[3] = rcode & 0x0F;
    if let Ok(end) = wire::question_end(request) {
        out[4..6].copy_from_slice(&header[4..6]);
        out.extend_from_slice(&request[HEADER_LEN..end]);
    }
    out
}

fn error_name(code: u16) -> &'static str {
    match code {
        BADSIG => "BADSIG",
        BADKEY => "BADKEY",
        BADTIME => "BADTIME",
        BADTRUNC => "BADTRUNC",
        _ => "TSIG error",
    }
}
