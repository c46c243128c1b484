//! `[fleet]` and `[[peer]]`: several veer instances, run with the same
//! config on different hosts, that decide health together (see
//! `health::quorum` for the rules and `fleet` for the channel).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::{Validator, file, parse_duration};
use crate::health::quorum::Quorum;

/// Default time after which a silent peer counts as gone.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// `[fleet]` with its peers.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// This instance's name (the peers know it by it).
    pub name: String,
    /// Where the fleet listener listens (needs a restart to change).
    pub listen: SocketAddr,
    /// The bearer token every fleet request carries, both ways.
    pub token: String,
    /// How many agreeing votes decide.
    pub quorum: Quorum,
    /// Instances that probe each check (every instance by default).
    pub probers: usize,
    /// A peer not heard for this long is gone; its votes are stale.
    pub peer_timeout: Duration,
    /// The listener's certificate and key (PEM); None: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Extra trusted root (PEM) for the peers' certificates.
    pub tls_ca: Option<PathBuf>,
    /// Plain HTTP off loopback was allowed explicitly.
    pub allow_plain_http: bool,
    /// The other instances.
    pub peers: Vec<PeerConfig>,
    /// What `veer check` and the start warn about (line, message).
    pub warnings: Vec<(usize, String)>,
}

impl FleetConfig {
    /// The votes needed among the probers of a check.
    pub fn needed(&self) -> usize {
        self.quorum.needed(self.probers).max(1)
    }
}

/// One `[[peer]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Its `[fleet] name`.
    pub name: String,
    /// Its fleet listener (`http://` or `https://`).
    pub url: reqwest::Url,
}

/// What `veer check` and a start warn about in `[fleet]`.
pub fn fleet_warnings(config: &super::Config) -> Vec<crate::diag::Diagnostic> {
    config
        .fleet
        .iter()
        .flat_map(|f| &f.warnings)
        .map(|(line, m)| crate::diag::Diagnostic::new(&config.path, *line, m.clone()))
        .collect()
}

/// Whether `name` may name an instance: it travels in logs, JSON and
/// rendezvous hashes, so plain characters only.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Whether plain HTTP to `url` stays on this machine.
fn loopback_url(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Validator<'_> {
    pub(super) fn fleet(
        &mut self,
        spec: Option<Spanned<file::FleetSpec>>,
        peers: Vec<Spanned<file::PeerSpec>>,
    ) -> Option<FleetConfig> {
        let Some(spec) = spec else {
            if let Some(p) = peers.first() {
                self.error(p, "[[peer]] needs a [fleet] table naming this instance");
            }
            return None;
        };
        let table = self.line(&spec);
        let f = spec.into_inner();
        let name = f.name.get_ref().clone();
        if !valid_name(&name) {
            self.error(
                &f.name,
                format!("[fleet] name `{name}`: 1 to 63 letters, digits, `-`, `_` or `.`"),
            );
        }
        let listen: SocketAddr = f.listen.get_ref().parse().unwrap_or_else(|_| {
            self.error(
                &f.listen,
                format!("[fleet] listen `{}` is not IP:PORT", f.listen.get_ref()),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        let token = self.token("[fleet]", &f.token, &f.token_file);
        if token.is_none() && f.token.is_none() && f.token_file.is_none() {
            self.error_at(
                table,
                "[fleet] needs token or token_file: every fleet request carries it",
            );
        }
        let allow_plain_http = f.allow_plain_http.unwrap_or(false);
        let tls = match (&f.tls_cert, &f.tls_key) {
            (Some(c), Some(k)) => Some((self.resolve(c.get_ref()), self.resolve(k.get_ref()))),
            (None, None) => None,
            (Some(c), None) => {
                self.error(c, "[fleet] tls_cert needs tls_key");
                None
            }
            (None, Some(k)) => {
                self.error(k, "[fleet] tls_key needs tls_cert");
                None
            }
        };
        let mut warnings = Vec::new();
        if tls.is_none() && !listen.ip().is_loopback() {
            if allow_plain_http {
                warnings.push((
                    self.line(&f.listen),
                    format!("[fleet] listen {listen}: plain HTTP off loopback (allow_plain_http): votes and the token cross the network unencrypted"),
                ));
            } else {
                self.error(
                    &f.listen,
                    format!("[fleet] listen {listen} is not loopback: set tls_cert and tls_key, or allow_plain_http = true"),
                );
            }
        }
        let tls_ca = f.tls_ca.as_ref().map(|c| self.resolve(c.get_ref()));
        for path in tls.iter().flat_map(|(c, k)| [c, k]).chain(&tls_ca) {
            if let Err(e) = std::fs::metadata(path) {
                self.error_at(table, format!("[fleet] {}: {e}", path.display()));
            }
        }

        let mut out_peers: Vec<PeerConfig> = Vec::new();
        for p in peers {
            let line = self.line(&p);
            let p = p.into_inner();
            let pname = p.name.get_ref().clone();
            if !valid_name(&pname) {
                self.error(
                    &p.name,
                    format!("peer name `{pname}`: 1 to 63 letters, digits, `-`, `_` or `.`"),
                );
            } else if pname == name {
                self.error(
                    &p.name,
                    format!("peer `{pname}` is this instance's [fleet] name"),
                );
            } else if out_peers.iter().any(|o| o.name == pname) {
                self.error(&p.name, format!("peer `{pname}` is listed twice"));
            }
            let url = match reqwest::Url::parse(p.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
                _ => {
                    self.error(
                        &p.url,
                        format!(
                            "peer {pname}: url `{}` must be http(s)://HOST:PORT",
                            p.url.get_ref()
                        ),
                    );
                    continue;
                }
            };
            if url.scheme() == "http" && !loopback_url(&url) {
                if allow_plain_http {
                    warnings.push((
                        line,
                        format!("peer {pname}: plain HTTP to {url} (allow_plain_http): votes and the token cross the network unencrypted"),
                    ));
                } else {
                    self.error(
                        &p.url,
                        format!("peer {pname}: plain HTTP to {url} leaves this host: use https, or allow_plain_http = true"),
                    );
                }
            }
            out_peers.push(PeerConfig { name: pname, url });
        }

        let n = out_peers.len() + 1;
        let probers = match &f.probers {
            None => n,
            Some(k) if *k.get_ref() < 1 || *k.get_ref() as usize > n => {
                self.error(
                    k,
                    format!(
                        "[fleet] probers = {}: between 1 and the {n} instances of the fleet",
                        k.get_ref()
                    ),
                );
                n
            }
            Some(k) => *k.get_ref() as usize,
        };
        let quorum = match &f.quorum {
            None => Quorum::Majority,
            Some(q) => match q.get_ref() {
                toml::Value::String(s) if s == "majority" => Quorum::Majority,
                toml::Value::Integer(c) if *c >= 1 && *c as usize <= probers => {
                    Quorum::Count(*c as usize)
                }
                toml::Value::Integer(c) => {
                    self.error(
                        q,
                        format!("[fleet] quorum = {c}: between 1 and probers ({probers})"),
                    );
                    Quorum::Majority
                }
                _ => {
                    self.error(q, "[fleet] quorum is \"majority\" or a count of probers");
                    Quorum::Majority
                }
            },
        };
        let q = quorum.needed(probers);
        if 2 * q <= probers
            && let Some(line) = f.quorum.as_ref().map(|q| self.line(q))
        {
            warnings.push((
                line,
                format!("[fleet] quorum {q} of {probers} probers: a minority can fail a backend over (down wins when both sides reach the quorum)"),
            ));
        }
        let peer_timeout = match &f.peer_timeout {
            None => DEFAULT_PEER_TIMEOUT,
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) if d >= Duration::from_millis(300) && d <= Duration::from_secs(300) => d,
                Ok(_) => {
                    self.error(t, "[fleet] peer_timeout: between 300ms and 5m");
                    DEFAULT_PEER_TIMEOUT
                }
                Err(e) => {
                    self.error(t, format!("[fleet] peer_timeout: {e}"));
                    DEFAULT_PEER_TIMEOUT
                }
            },
        };
        Some(FleetConfig {
            name,
            listen,
            token: token.unwrap_or_default(),
            quorum,
            probers,
            peer_timeout,
            tls,
            tls_ca,
            allow_plain_http,
            peers: out_peers,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fleet: &str) -> Result<crate::config::Config, Vec<String>> {
        let text = format!("[server]\nlisten = [\"127.0.0.1:5353\"]\n{fleet}");
        crate::config::parse(std::path::Path::new("/x/veer.toml"), &text)
            .map_err(|d| d.0.iter().map(|e| e.to_string()).collect())
    }

    const TOKEN: &str = "token = \"0123456789abcdef\"\n";

    #[test]
    fn a_fleet_of_three() {
        let c = parse(&format!(
            "[fleet]\nname = \"ns1\"\nlisten = \"127.0.0.1:8054\"\n{TOKEN}probers = 2\npeer_timeout = \"2s\"\n\
             [[peer]]\nname = \"ns2\"\nurl = \"http://127.0.0.2:8054\"\n\
             [[peer]]\nname = \"ns3\"\nurl = \"https://ns3.example:8054\"\n"
        ))
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!((f.probers, f.needed()), (2, 2));
        assert_eq!(f.peer_timeout, Duration::from_secs(2));
        assert_eq!(f.peers.len(), 2);
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn mistakes_are_errors_at_their_lines() {
        let e = parse(&format!(
            "[fleet]\nname = \"ns1\"\nlisten = \"192.0.2.1:8054\"\n{TOKEN}quorum = 3\nprobers = 2\n\
             [[peer]]\nname = \"ns1\"\nurl = \"http://192.0.2.2:8054\"\n"
        ))
        .unwrap_err();
        let all = e.join("\n");
        assert!(
            all.contains("veer.toml:5: [fleet] listen 192.0.2.1:8054 is not loopback"),
            "{all}"
        );
        assert!(
            all.contains(":7: [fleet] quorum = 3: between 1 and probers (2)"),
            "{all}"
        );
        assert!(
            all.contains(":10: peer `ns1` is this instance's [fleet] name"),
            "{all}"
        );
        assert!(all.contains(":11: peer ns1: plain HTTP to"), "{all}");
        let e = parse("[fleet]\nname = \"a b\"\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(
            e.iter().any(|m| m.contains("needs token or token_file")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("name `a b`")), "{e:?}");
        let e = parse("[[peer]]\nname = \"x\"\nurl = \"http://127.0.0.1:1\"\n").unwrap_err();
        assert!(e[0].contains("needs a [fleet] table"), "{e:?}");
    }

    #[test]
    fn a_minority_quorum_is_allowed_with_a_warning() {
        let c = parse(&format!(
            "[fleet]\nname = \"ns1\"\nlisten = \"127.0.0.1:8054\"\n{TOKEN}quorum = 1\n\
             [[peer]]\nname = \"ns2\"\nurl = \"http://127.0.0.1:8055\"\n"
        ))
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(f.needed(), 1);
        assert!(
            f.warnings[0].1.contains("a minority can fail"),
            "{:?}",
            f.warnings
        );
    }
}
