//! DNSSEC helpers for integration tests: a zone key made by the real
//! `veer dnssec keygen` (its DS checked against `veer dnssec ds`), the
//! trust anchor written for `delv` and Unbound, a `delv` runner with a
//! deadline, and RRSIG parsing (expiration and inception as Unix times).
//!
//! Needs `mod common;` in the test crate.
//!
//! ```ignore
//! mod common;
//! #[path = "support/dnssec.rs"]
//! mod dnssec;
//! let key = dnssec::keygen(&config, "s.test.");
//! let anchors = key.write_anchors(dir.path());
//! let v = dnssec::delv(veer.addr, &anchors, "s.test.", "www.s.test", "A");
//! assert!(v.fully_validated(), "{}", v.raw);
//! ```

#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{Dig, Rr, run_veer, wait_until};

/// How long one `delv` run may take.
pub const DELV_TIMEOUT: Duration = Duration::from_secs(20);

/// A zone's key as `veer dnssec keygen` made it.
#[derive(Debug, Clone)]
pub struct ZoneKey {
    /// The zone, fully qualified and lowercase (`s.test.`).
    pub zone: String,
    /// The `.key` file.
    pub key_file: PathBuf,
    /// The `.private` file.
    pub private: PathBuf,
    /// The DS line as veer printed it (`zone. 3600 IN DS TAG 13 2 HEX`).
    pub ds_line: String,
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// Digest type.
    pub digest_type: u8,
    /// The digest, hex.
    pub digest: String,
}

/// Runs `veer dnssec keygen --config CONFIG ZONE` (a CSK), then `veer
/// dnssec ds` and checks both print the same DS. Panics with veer's
/// output if either fails.
pub fn keygen(config: &Path, zone: &str) -> ZoneKey {
    let c = config.to_str().expect("utf-8 config path");
    let out = run_veer(
        &["dnssec", "keygen", "--config", c, zone],
        Duration::from_secs(20),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "veer dnssec keygen {zone} failed: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "keygen output:\n{stdout}{stderr}");
    let ds_line = lines[2].trim().to_string();
    let out = run_veer(
        &["dnssec", "ds", "--config", c, zone],
        Duration::from_secs(20),
    );
    let ds_out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "veer dnssec ds {zone} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ds_out.trim(), ds_line, "ds disagrees with keygen");
    let w: Vec<&str> = ds_line.split_whitespace().collect();
    assert!(w.len() == 8 && w[3] == "DS", "not a DS line: `{ds_line}`");
    ZoneKey {
        zone: w[0].to_lowercase(),
        key_file: PathBuf::from(lines[0].trim()),
        private: PathBuf::from(lines[1].trim()),
        tag: w[4].parse().expect("key tag"),
        algorithm: w[5].parse().expect("algorithm"),
        digest_type: w[6].parse().expect("digest type"),
        digest: w[7].to_string(),
        ds_line,
    }
}

impl ZoneKey {
    /// `TAG ALG DIGEST-TYPE DIGEST`.
    pub fn ds_rdata(&self) -> String {
        format!(
            "{} {} {} {}",
            self.tag, self.algorithm, self.digest_type, self.digest
        )
    }

    /// The `trust-anchor:` line of an `unbound.conf` `server:` clause.
    pub fn unbound_anchor(&self) -> String {
        format!("trust-anchor: \"{} DS {}\"", self.zone, self.ds_rdata())
    }

    /// The same key with a wrong digest (its last hex digit changed): an
    /// anchor nothing the zone serves matches.
    pub fn wrong(&self) -> ZoneKey {
        let mut k = self.clone();
        let last = k.digest.pop().expect("a digest");
        k.digest.push(if last == '0' { '1' } else { '0' });
        k
    }

    /// Writes `anchors.conf` for `delv -a` into `dir`:
    /// `trust-anchors { "zone." static-ds TAG ALG TYPE "HEX"; };`.
    pub fn write_anchors(&self, dir: &Path) -> PathBuf {
        self.write_anchors_as(dir, "anchors.conf")
    }

    /// [`ZoneKey::write_anchors`] to `dir/name`.
    pub fn write_anchors_as(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "trust-anchors {{ \"{}\" static-ds {} {} {} \"{}\"; }};\n",
                self.zone, self.tag, self.algorithm, self.digest_type, self.digest
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Replaces the `PrivateKey:` line of the `.private` file with
    /// `garbage`; returns the file's previous content.
    pub fn corrupt_private(&self, garbage: &str) -> String {
        let good = std::fs::read_to_string(&self.private)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.private.display()));
        assert!(good.contains("\nPrivateKey: "), "{good}");
        let bad: String = good
            .lines()
            .map(|l| {
                if l.starts_with("PrivateKey: ") {
                    format!("PrivateKey: {garbage}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&self.private, bad).expect("write the corrupt key");
        good
    }
}

/// What `delv` printed.
#[derive(Debug, Clone)]
pub struct Delv {
    /// The command line, for messages.
    pub cmd: String,
    /// stdout then stderr.
    pub raw: String,
}

impl Delv {
    /// True if delv says the answer, positive or negative, is fully
    /// validated (`; fully validated`, `; negative response, fully
    /// validated`).
    pub fn fully_validated(&self) -> bool {
        self.raw.lines().any(|l| {
            let l = l.trim();
            l == "; fully validated" || l == "; negative response, fully validated"
        })
    }

    /// True for a validated negative answer.
    pub fn negative(&self) -> bool {
        self.raw
            .lines()
            .any(|l| l.trim() == "; negative response, fully validated")
    }

    /// The negative kind delv printed (`NXDOMAIN` or `NXRRSET`), if any.
    pub fn negative_kind(&self) -> Option<&'static str> {
        if self.raw.contains(";-$NXDOMAIN") {
            Some("NXDOMAIN")
        } else if self.raw.contains(";-$NXRRSET") {
            Some("NXRRSET")
        } else {
            None
        }
    }

    /// The RDATA of the answer records of type `rtype` delv printed.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        self.raw
            .lines()
            .filter(|l| !l.starts_with(';'))
            .filter_map(crate::common::parse_rr)
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data)
            .collect()
    }
}

/// `delv -a ANCHORS +root=ZONE @server -p PORT NAME TYPE`: validation
/// from the zone's trust anchor down, straight against `server`.
/// Panics if delv cannot be run or takes longer than [`DELV_TIMEOUT`].
pub fn delv(server: SocketAddr, anchors: &Path, zone: &str, name: &str, rtype: &str) -> Delv {
    delv_with(server, anchors, zone, name, rtype, &[])
}

/// [`delv`] with extra arguments (`+vtrace`, `+tcp`, ...).
pub fn delv_with(
    server: SocketAddr,
    anchors: &Path,
    zone: &str,
    name: &str,
    rtype: &str,
    extra: &[&str],
) -> Delv {
    let mut cmd = Command::new("delv");
    cmd.arg("-a")
        .arg(anchors)
        .arg(format!("+root={}", zone.trim_end_matches('.')))
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()]);
    // As crate::common::try_dig: a source port just found free, never the
    // server's own ephemeral port.
    if server.ip().is_loopback()
        && server.is_ipv4()
        && let Ok(port) = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
    {
        cmd.args(["-b", &format!("127.0.0.1#{port}")]);
    }
    cmd.args(extra).arg(name).arg(rtype);
    let line = format!("{cmd:?}");
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`delv` is not installed: it comes with bind9-dnsutils")
        }
        Err(e) => panic!("cannot run delv: {e}"),
    };
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut done = false;
    wait_until(DELV_TIMEOUT, || {
        done = matches!(child.try_wait(), Ok(Some(_)));
        done
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{line} did not finish within {DELV_TIMEOUT:?}");
    }
    let mut raw = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    raw.push_str(&String::from_utf8_lossy(&err.join().unwrap()));
    Delv { cmd: line, raw }
}

/// `dig +dnssec +multi +norec` output against `server`, verbatim: what a
/// defect report shows.
pub fn dig_multi(server: SocketAddr, name: &str, rtype: &str) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+dnssec", "+multi", "+norec", "+time=2", "+tries=1"])
        .arg(name)
        .arg(rtype)
        .stdin(Stdio::null())
        .output()
        .expect("run dig");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One RRSIG as dig printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrsig {
    /// Owner name.
    pub owner: String,
    /// TTL of the record.
    pub ttl: u32,
    /// The type covered.
    pub covered: String,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    /// Signature expiration, seconds since 1970.
    pub expiration: u64,
    /// Signature inception, seconds since 1970.
    pub inception: u64,
    pub tag: u16,
    /// Signer's name.
    pub signer: String,
}

/// The RRSIG in `rr`, if it is one (dig's default one-line format).
pub fn parse_rrsig(rr: &Rr) -> Option<Rrsig> {
    if rr.rtype != "RRSIG" {
        return None;
    }
    let w: Vec<&str> = rr.data.split_whitespace().collect();
    if w.len() < 8 {
        return None;
    }
    Some(Rrsig {
        owner: rr.name.clone(),
        ttl: rr.ttl,
        covered: w[0].to_string(),
        algorithm: w[1].parse().ok()?,
        labels: w[2].parse().ok()?,
        original_ttl: w[3].parse().ok()?,
        expiration: rrsig_time(w[4])?,
        inception: rrsig_time(w[5])?,
        tag: w[6].parse().ok()?,
        signer: w[7].to_string(),
    })
}

/// Every RRSIG of a response (answer, authority, additional), in order.
pub fn rrsigs(d: &Dig) -> Vec<Rrsig> {
    d.answer
        .iter()
        .chain(&d.authority)
        .chain(&d.additional)
        .filter_map(parse_rrsig)
        .collect()
}

/// An RRSIG time field: `YYYYMMDDHHMMSS` (UTC) or plain seconds since
/// 1970 (RFC 4034 3.2), as seconds since 1970.
pub fn rrsig_time(s: &str) -> Option<u64> {
    if s.len() != 14 {
        return s.parse().ok();
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap() };
    let (y, mo, d, h, mi, se) = (n(0, 4), n(4, 6), n(6, 8), n(8, 10), n(10, 12), n(12, 14));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86400 + h * 3600 + mi * 60 + se).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Now, in seconds since 1970 (fractional).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrsig_times_parse() {
        assert_eq!(rrsig_time("19700101000000"), Some(0));
        assert_eq!(rrsig_time("20000301000000"), Some(951_868_800));
        assert_eq!(rrsig_time("20261214135320"), Some(1_797_256_400));
        assert_eq!(rrsig_time("1797256400"), Some(1_797_256_400));
        assert_eq!(rrsig_time("2026121413532x"), None);
    }
}
