//! `[dnssec]` and each zone's `dnssec = true`: where the zone keys are,
//! which algorithm `veer dnssec keygen` uses, and how long signatures
//! last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::dnssec::Algorithm;
use toml::Spanned;

use super::{Validator, file, parse_duration};

/// `[dnssec]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DnssecConfig {
    /// Where the zones' key files are: `key_dir`, else `state_dir/keys`
    /// (None: neither is set, and no zone may have `dnssec = true`).
    pub key_dir: Option<PathBuf>,
    /// What `veer dnssec keygen` makes by default: 13 (ECDSAP256SHA256)
    /// or 15 (ED25519).
    pub algorithm: Algorithm,
    /// How long a signature is valid from its signing.
    pub validity: Duration,
    /// Signatures are made again when less than this of their validity
    /// remains.
    pub refresh: Duration,
    /// How far before its signing a signature's validity starts, for
    /// validators whose clocks are behind.
    pub inception: Duration,
    /// Publish CDS and CDNSKEY records at the apex (RFC 7344), so a parent
    /// that reads them follows key changes by itself.
    pub publish_cds: bool,
    /// The TTL of NSEC records; None: min(SOA TTL, SOA MINIMUM) (RFC 4034 section
    /// 4, RFC 9077 takes the smaller of it and the SOA's TTL).
    pub nsec_ttl: Option<u32>,
}

/// Default signature validity: two weeks, as BIND's and Knot's defaults
/// are in that range; a week of outage still leaves a week to notice.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(14 * 86400);

impl Default for DnssecConfig {
    fn default() -> Self {
        DnssecConfig {
            key_dir: None,
            algorithm: Algorithm::ECDSAP256SHA256,
            validity: DEFAULT_VALIDITY,
            refresh: DEFAULT_VALIDITY / 4,
            inception: Duration::from_secs(3600),
            publish_cds: false,
            nsec_ttl: None,
        }
    }
}

impl Validator<'_> {
    pub(super) fn dnssec(
        &mut self,
        spec: Option<Spanned<file::DnssecSpec>>,
        state_dir: Option<&Path>,
    ) -> DnssecConfig {
        let mut out = DnssecConfig {
            key_dir: state_dir.map(|d| d.join("keys")),
            ..DnssecConfig::default()
        };
        let Some(spec) = spec else { return out };
        let d = spec.into_inner();
        if let Some(dir) = &d.key_dir {
            out.key_dir = Some(self.resolve(dir.get_ref()));
        }
        if let Some(a) = &d.algorithm {
            let text = match a.get_ref() {
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match crate::dnssec::key::parse_algorithm(&text) {
                Some(alg) => out.algorithm = alg,
                None => self.error(
                    a,
                    format!(
                        "[dnssec] algorithm `{text}`: use 13 (\"ecdsap256sha256\") or 15 (\"ed25519\")"
                    ),
                ),
            }
        }
        let duration = |v: &Self, d: &Option<Spanned<String>>, name: &str| {
            d.as_ref().map(|s| match parse_duration(s.get_ref()) {
                Ok(t) => Ok(t),
                Err(e) => Err((v.line(s), format!("[dnssec] {name}: {e}"))),
            })
        };
        let validity = duration(self, &d.validity, "validity");
        let refresh = duration(self, &d.refresh, "refresh");
        let inception = duration(self, &d.inception, "inception");
        for r in [&validity, &refresh, &inception] {
            if let Some(Err((line, m))) = r {
                self.error_at(*line, m.clone());
            }
        }
        if let Some(Ok(v)) = validity {
            if v.is_zero() {
                self.error(
                    d.validity.as_ref().expect("given"),
                    "[dnssec] validity must be above 0",
                );
            } else {
                out.validity = v;
                out.refresh = v / 4;
            }
        }
        if let Some(Ok(r)) = refresh {
            let at = d.refresh.as_ref().expect("given");
            if r.is_zero() || r >= out.validity {
                self.error(
                    at,
                    format!(
                        "[dnssec] refresh must be above 0 and below validity ({})",
                        humantime::format_duration(out.validity)
                    ),
                );
            } else {
                out.refresh = r;
            }
        }
        if let Some(Ok(i)) = inception {
            out.inception = i;
        }
        out.publish_cds = d.publish_cds.unwrap_or(false);
        out.nsec_ttl = d.nsec_ttl.map(Spanned::into_inner);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::config::Config, Vec<String>> {
        let text = format!("[server]\nlisten = [\"127.0.0.1:5353\"]\n{text}");
        crate::config::parse(Path::new("/x/veer.toml"), &text)
            .map_err(|d| d.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_and_every_key() {
        let c = parse("").unwrap();
        assert_eq!(c.dnssec, DnssecConfig::default());
        assert_eq!(c.dnssec.refresh, Duration::from_secs(14 * 86400 / 4));
        let c = parse("state_dir = \"/var/lib/veer\"\n").unwrap();
        assert_eq!(c.dnssec.key_dir, Some(PathBuf::from("/var/lib/veer/keys")));
        let c = parse(
            "state_dir = \"state\"\n[dnssec]\nkey_dir = \"k\"\nalgorithm = \"Ed25519\"\nvalidity = \"7d\"\n\
             inception = \"2h\"\npublish_cds = true\nnsec_ttl = 60\n\
             [[zone]]\norigin = \"example.test.\"\nfile = \"z\"\ndnssec = true\n",
        )
        .unwrap();
        let d = &c.dnssec;
        assert_eq!(d.key_dir, Some(PathBuf::from("/x/k")));
        assert_eq!(d.algorithm, Algorithm::ED25519);
        assert_eq!(d.validity, Duration::from_secs(7 * 86400));
        assert_eq!(d.refresh, Duration::from_secs(7 * 86400 / 4));
        assert_eq!(d.inception, Duration::from_secs(7200));
        assert!(d.publish_cds);
        assert_eq!(d.nsec_ttl, Some(60));
        assert!(c.zones[0].dnssec);
        let c = parse("[dnssec]\nalgorithm = 15\nrefresh = \"1d\"\n").unwrap();
        assert_eq!(c.dnssec.algorithm, Algorithm::ED25519);
        assert_eq!(c.dnssec.refresh, Duration::from_secs(86400));
        assert_eq!(c.dnssec.key_dir, None);
    }

    #[test]
    fn mistakes_are_errors_at_their_lines() {
        let mut e = parse(
            "[dnssec]\nalgorithm = 8\nvalidity = \"2w\"\nrefresh = \"20d\"\ninception = \"x\"\nkeydir = \"k\"\n",
        )
        .unwrap_err();
        e.sort();
        assert_eq!(
            e,
            [
                "/x/veer.toml:4: [dnssec] algorithm `8`: use 13 (\"ecdsap256sha256\") or 15 (\"ed25519\")",
                "/x/veer.toml:5: [dnssec] validity: `2w`: unknown unit `w` (use ms, s, m, h or d)",
                "/x/veer.toml:6: [dnssec] refresh must be above 0 and below validity (14days)",
                "/x/veer.toml:7: [dnssec] inception: `x` is not a duration (expected e.g. 500ms, 2s, 1m)",
                "/x/veer.toml:8: unknown key `keydir`",
            ]
        );
        // A signed zone needs somewhere for its keys.
        let e = parse("[[zone]]\norigin = \"example.test.\"\nfile = \"z\"\ndnssec = true\n")
            .unwrap_err();
        assert_eq!(
            e,
            [
                "/x/veer.toml:6: zone example.test.: dnssec = true needs [dnssec] key_dir or [server] state_dir (the zone's keys are there)"
            ]
        );
        assert!(
            parse("[[zone]]\norigin = \"example.test.\"\nfile = \"z\"\ndnssec = false\n").is_ok()
        );
    }
}
