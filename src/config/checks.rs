//! `[check.NAME]` validation: one probe kind per check, timing options,
//! expectations. Produces [`CheckConfig`]s; calculated checks refer to their
//! children by index.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use toml::Spanned;

use super::file::{CheckSpec, StatusSpec};
use super::{Validator, parse_duration};
use crate::zone::parse::parse_record;

/// One validated check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The check's name (`[check.NAME]`).
    pub name: String,
    /// Line of the table in the config file.
    pub line: usize,
    /// What to probe.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Time allowed for one probe attempt (below `interval`).
    pub timeout: Duration,
    /// Random spread added to each interval, ± this much.
    pub jitter: Duration,
    /// Consecutive failures before Down.
    pub fall: u32,
    /// Consecutive successes before Up.
    pub rise: u32,
    /// Extra attempts inside one cycle, with exponential backoff.
    pub retries: u32,
    /// Up means the probe failed.
    pub invert: bool,
    /// What to assume before the first verdict.
    pub initial: Initial,
}

impl CheckConfig {
    /// What the check probes and how a result reads (kind, target,
    /// expectation, `invert`), as text: an edit of anything else (timing,
    /// thresholds) keeps the check's verdict and counters; an edit of this
    /// keeps the verdict only provisionally.
    pub fn target(&self) -> String {
        format!("{:?} invert={}", self.kind, self.invert)
    }

    /// Everything that decides this check's verdicts, as text: two checks
    /// with the same definition share one probe.
    pub fn definition(&self) -> String {
        format!(
            "{:?} interval={:?} timeout={:?} jitter={:?} fall={} rise={} retries={} invert={}",
            self.kind,
            self.interval,
            self.timeout,
            self.jitter,
            self.fall,
            self.rise,
            self.retries,
            self.invert
        )
    }
}

/// Things in `config` that are valid but probably wrong, for `veer check`:
/// an exec check whose program or a file check whose file does not exist
/// (now: it may be deployed later, so this is not an error).
pub fn warnings(config: &super::Config) -> Vec<crate::diag::Diagnostic> {
    let mut out = Vec::new();
    for c in &config.checks {
        let missing = match &c.kind {
            CheckKind::Exec { argv } => {
                let program = std::path::Path::new(&argv[0]);
                let found = if program.components().count() > 1 {
                    program.is_file()
                } else {
                    std::env::var_os("PATH").is_some_and(|p| {
                        std::env::split_paths(&p).any(|d| d.join(program).is_file())
                    })
                };
                (!found).then(|| format!("check {}: program {} not found", c.name, argv[0]))
            }
            CheckKind::File { path } => (!path.exists()).then(|| {
                format!(
                    "check {}: file {} does not exist (the check is down until it does)",
                    c.name,
                    path.display()
                )
            }),
            _ => None,
        };
        if let Some(m) = missing {
            out.push(crate::diag::Diagnostic::new(
                &config.path,
                c.line,
                format!("warning: {m}"),
            ));
        }
    }
    out.extend(transfer_warnings(config));
    out
}

/// A zone with secondaries while `[server]` has no `state_dir`: veer
/// raises a zone's serial at every health transition, and without a
/// checkpoint a restart serves the zone file's serial again, below what
/// the secondaries hold, so they ignore every change until it passes
/// theirs.
pub fn transfer_warnings(config: &super::Config) -> Vec<crate::diag::Diagnostic> {
    if config.server.state_dir.is_some() {
        return Vec::new();
    }
    config
        .zones
        .iter()
        .filter(|z| !z.allow_transfer.is_empty() || !z.notify.is_empty())
        .map(|z| {
            crate::diag::Diagnostic::new(
                &config.path,
                z.line,
                format!(
                    "warning: zone {} has secondaries but [server] has no state_dir: after a restart its serial starts again from the zone file, below what the secondaries hold, and they ignore changes until it passes theirs",
                    z.origin
                ),
            )
        })
        .collect()
}

/// What to assume before the first verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// The checkpointed state of the check's name (as is when only its
    /// timing changed, provisionally when its target changed), else Unknown.
    LastKnown,
    /// Up.
    Up,
    /// Down.
    Down,
}

/// The probe kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// HTTP or HTTPS request.
    Http(HttpCheck),
    /// TCP connect.
    Tcp {
        /// `host:port`.
        target: String,
    },
    /// DNS query.
    Dns {
        /// The server asked.
        server: SocketAddr,
        /// The name asked for.
        name: Name,
        /// The type asked for.
        qtype: RecordType,
        /// Up only if some answer record has exactly this RDATA (of `qtype`).
        answer: Option<RData>,
    },
    /// A command; exit status 0 is up.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// A file holding `up` or `down`.
    File {
        /// The file.
        path: PathBuf,
    },
    /// Up when at least `min_healthy` children are.
    Calculated {
        /// Indices of the children in [`super::Config::checks`].
        children: Vec<usize>,
        /// How many children must be healthy.
        min_healthy: u32,
    },
}

/// An HTTP(S) probe.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// The URL (scheme http or https).
    pub url: String,
    /// Request method.
    pub method: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Host header override (SNI stays the URL's host).
    pub host: Option<String>,
    /// Verify the server certificate.
    pub tls_verify: bool,
    /// Accepted status ranges (inclusive).
    pub status: Vec<(u16, u16)>,
    /// Required substring of the first 64 KiB of the body.
    pub body: Option<String>,
    /// Send the probe through this HTTP proxy (never one from the
    /// environment).
    pub proxy: Option<String>,
}

impl Validator<'_> {
    pub(super) fn checks(
        &mut self,
        specs: BTreeMap<String, Spanned<CheckSpec>>,
    ) -> Vec<CheckConfig> {
        let names: Vec<String> = specs.keys().cloned().collect();
        let mut out = Vec::new();
        for (name, spec) in specs {
            let line = self.line(&spec);
            let errors_before = self.errors.len();
            let err =
                |v: &mut Validator<'_>, m: String| v.error(&spec, format!("check {name}: {m}"));
            let s = spec.get_ref();
            let kinds = [
                s.http.is_some(),
                s.https.is_some(),
                s.tcp.is_some(),
                s.dns.is_some(),
                s.exec.is_some(),
                s.file.is_some(),
                s.children.is_some(),
            ];
            let kind_count = kinds.iter().filter(|&&k| k).count();
            if kind_count != 1 {
                err(
                    self,
                    format!(
                        "needs exactly one of http, https, tcp, dns, exec, file or children (found {kind_count})"
                    ),
                );
                continue;
            }
            let interval = self.duration_or(
                &spec,
                &name,
                "interval",
                s.interval.as_deref(),
                Duration::from_secs(10),
            );
            let timeout =
                self.duration_or(&spec, &name, "timeout", s.timeout.as_deref(), interval / 2);
            let jitter =
                self.duration_or(&spec, &name, "jitter", s.jitter.as_deref(), interval / 10);
            if interval.is_zero() {
                err(self, "interval must be above 0".into());
            }
            for (what, v) in [("fall", s.fall), ("rise", s.rise)] {
                if v == Some(0) {
                    err(self, format!("{what} must be at least 1"));
                }
            }
            if timeout >= interval || timeout.is_zero() {
                err(
                    self,
                    format!(
                        "timeout ({timeout:?}) must be above 0 and below the interval ({interval:?})"
                    ),
                );
            }
            if jitter >= interval {
                err(
                    self,
                    format!("jitter ({jitter:?}) must be below the interval ({interval:?})"),
                );
            }
            let initial = match s.initial.as_deref() {
                None | Some("last-known") => Initial::LastKnown,
                Some("up") => Initial::Up,
                Some("down") => Initial::Down,
                Some(o) => {
                    err(
                        self,
                        format!("initial = \"{o}\": use last-known, up or down"),
                    );
                    Initial::LastKnown
                }
            };
            let kind = match self.kind(s, &names) {
                Ok(k) => k,
                Err(m) => {
                    err(self, m);
                    continue;
                }
            };
            if self.errors.len() > errors_before {
                continue;
            }
            out.push(CheckConfig {
                name,
                line,
                kind,
                interval,
                timeout,
                jitter,
                fall: s.fall.unwrap_or(3).max(1),
                rise: s.rise.unwrap_or(2).max(1),
                retries: s.retries.unwrap_or(0),
                invert: s.invert.unwrap_or(false),
                initial,
            });
        }
        // Children were resolved against all names; re-map to the indices of
        // the checks that validated, and reject cycles.
        let index: BTreeMap<String, usize> = out
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut broken = Vec::new();
        for c in &mut out {
            if let CheckKind::Calculated { children, .. } = &mut c.kind {
                let mut mapped = Vec::new();
                for &child in children.iter() {
                    match index.get(&names[child]) {
                        Some(&i) => mapped.push(i),
                        None => broken.push((
                            c.line,
                            format!("check {}: child {} is invalid", c.name, names[child]),
                        )),
                    }
                }
                *children = mapped;
            }
        }
        for (line, m) in broken {
            self.error_at(line, m);
        }
        for (i, c) in out.iter().enumerate() {
            if reaches(&out, i, i, 0) {
                self.error_at(
                    c.line,
                    format!("check {}: calculated checks form a cycle", c.name),
                );
            }
        }
        out
    }

    fn duration_or(
        &mut self,
        at: &Spanned<CheckSpec>,
        name: &str,
        key: &str,
        v: Option<&str>,
        default: Duration,
    ) -> Duration {
        match v.map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.error(at, format!("check {name}: {key}: {e}"));
                default
            }
        }
    }

    fn kind(&self, s: &CheckSpec, names: &[String]) -> Result<CheckKind, String> {
        if let Some(url) = s.http.as_ref().or(s.https.as_ref()) {
            let scheme = if s.http.is_some() {
                "http://"
            } else {
                "https://"
            };
            let url = if url.contains("://") {
                url.clone()
            } else {
                format!("{scheme}{url}")
            };
            let parsed = reqwest::Url::parse(&url).map_err(|e| format!("bad URL `{url}`: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("URL `{url}` must be http or https"));
            }
            let status = match &s.expect.status {
                None => vec![(200, 399)],
                Some(StatusSpec::Code(c)) if !(100..=599).contains(c) => {
                    return Err(format!("expect.status {c} is not an HTTP status (100-599)"));
                }
                Some(StatusSpec::Code(c)) => vec![(*c, *c)],
                Some(StatusSpec::Ranges(r)) => parse_status(r)?,
            };
            let method = s
                .method
                .clone()
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase();
            reqwest::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("bad method `{method}`"))?;
            if let Some(p) = &s.proxy {
                reqwest::Proxy::all(p.as_str()).map_err(|e| format!("bad proxy `{p}`: {e}"))?;
            }
            return Ok(CheckKind::Http(HttpCheck {
                url,
                method,
                headers: s
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                host: s.host.clone(),
                tls_verify: s.tls_verify.unwrap_or(true),
                status,
                body: s.expect.body.clone(),
                proxy: s.proxy.clone(),
            }));
        }
        if let Some(t) = &s.tcp {
            if !t.contains(':') {
                return Err(format!("tcp = \"{t}\" must be host:port"));
            }
            return Ok(CheckKind::Tcp { target: t.clone() });
        }
        if let Some(server) = &s.dns {
            // IP:PORT, [IPv6]:PORT, or a bare IPv4 or IPv6 address (port 53).
            let server = server
                .parse::<SocketAddr>()
                .or_else(|_| {
                    server
                        .parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| format!("dns = \"{server}\" must be IP, IP:PORT or [IPv6]:PORT"))?;
            let q = s
                .query
                .as_deref()
                .ok_or("a dns check needs query = \"name\"")?;
            let mut name = Name::from_utf8(q).map_err(|e| format!("query `{q}`: {e}"))?;
            name.set_fqdn(true);
            let qtype = s.qtype.as_deref().unwrap_or("A");
            let qtype = RecordType::from_str(&qtype.to_ascii_uppercase())
                .map_err(|_| format!("unknown qtype `{qtype}`"))?;
            return Ok(CheckKind::Dns {
                server,
                name: name.clone(),
                qtype,
                answer: s
                    .expect
                    .answer
                    .as_deref()
                    .map(|a| {
                        parse_record(&name, 0, &format!("{qtype} {a}"), &Name::root())
                            .map(|r| r.data)
                            .map_err(|e| format!("expect.answer `{a}` is not {qtype} data: {e}"))
                    })
                    .transpose()?,
            });
        }
        if let Some(argv) = &s.exec {
            if argv.is_empty() || argv[0].is_empty() {
                return Err("exec needs a command: exec = [\"/path/to/cmd\", \"arg\"]".into());
            }
            return Ok(CheckKind::Exec { argv: argv.clone() });
        }
        if let Some(f) = &s.file {
            return Ok(CheckKind::File {
                path: self.resolve(f),
            });
        }
        let children = s.children.as_ref().expect("one kind is set");
        if children.is_empty() {
            return Err("children must name at least one check".into());
        }
        let mut idx = Vec::new();
        for c in children {
            match names.iter().position(|n| n == c) {
                Some(i) => idx.push(i),
                None => return Err(format!("child `{c}` is not a configured check")),
            }
        }
        let min_healthy = s.min_healthy.unwrap_or(1);
        if min_healthy == 0 || min_healthy as usize > idx.len() {
            return Err(format!(
                "min_healthy = {min_healthy} must be between 1 and the number of children ({})",
                idx.len()
            ));
        }
        Ok(CheckKind::Calculated {
            children: idx,
            min_healthy,
        })
    }
}

/// Whether `from` reaches `target` through calculated children.
fn reaches(checks: &[super::CheckConfig], from: usize, target: usize, depth: usize) -> bool {
    if depth > checks.len() {
        return true;
    }
    match &checks[from].kind {
        CheckKind::Calculated { children, .. } => children
            .iter()
            .any(|&c| c == target || reaches(checks, c, target, depth + 1)),
        _ => false,
    }
}

/// `"200-299,301"` into inclusive ranges.
fn parse_status(text: &str) -> Result<Vec<(u16, u16)>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let a: u16 = a
                .trim()
                .parse()
                .map_err(|_| format!("bad status range `{part}`"))?;
            let b: u16 = b
                .trim()
                .parse()
                .map_err(|_| format!("bad status range `{part}`"))?;
            if a > b || !(100..=599).contains(&a) || b > 599 {
                return Err(format!("bad status range `{part}`"));
            }
            Ok((a, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status("200-399"), Ok(vec![(200, 399)]));
        assert_eq!(
            parse_status("200, 301-302"),
            Ok(vec![(200, 200), (301, 302)])
        );
        assert!(parse_status("300-200").is_err());
        assert!(parse_status("abc").is_err());
    }

    fn errors(body: &str) -> Vec<String> {
        let text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{body}");
        match crate::config::parse(std::path::Path::new("/x/veer.toml"), &text) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Found while writing the reference: values that were accepted or
    /// silently changed are errors now, and a bare IPv6 server works.
    #[test]
    fn reference_mistakes_are_errors() {
        let e = errors("[check.a]\nhttp = \"http://127.0.0.1/\"\nfall = 0\n");
        assert!(
            e.iter().any(|m| m.contains("fall must be at least 1")),
            "{e:?}"
        );
        let e = errors("[check.a]\nhttp = \"http://127.0.0.1/\"\nexpect.status = 42\n");
        assert!(e.iter().any(|m| m.contains("not an HTTP status")), "{e:?}");
        let e = errors("[health]\nguard_window = \"0s\"\n");
        assert!(
            e.iter().any(|m| m.contains("guard_window must be above 0")),
            "{e:?}"
        );
        let e = errors("[check.a]\ndns = \"2001:db8::53\"\nquery = \"x.test\"\n");
        assert!(e.is_empty(), "{e:?}");
        let e = errors("[check.a]\ndns = \"[2001:db8::53]:5353\"\nquery = \"x.test\"\n");
        assert!(e.is_empty(), "{e:?}");
    }
}
