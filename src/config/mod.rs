//! The configuration: `veer.toml` turned into a validated [`Config`].
//!
//! `file` holds the serde shape of the file (unknown keys rejected);
//! [`load`] is the only way to a [`Config`] and reports every problem it
//! finds as `file:line: message`.

mod checks;
mod dnssec;
mod dnstap;
mod duration;
mod file;
mod fleet;
mod members;
mod routes;
mod transfer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use toml::Spanned;

pub use checks::{CheckConfig, CheckKind, HttpCheck, Initial, transfer_warnings, warnings};
pub use dnssec::{DEFAULT_VALIDITY, DnssecConfig};
pub use dnstap::{DnstapConfig, DnstapOutput};
pub use duration::parse_duration;
pub use fleet::{FleetConfig, PeerConfig, fleet_warnings};
pub use routes::{AllDown, Area, MAX_PICK, Member, MinHealthy, Place, Policy, RouteConfig};
pub use transfer::{Allow, NotifyTarget, TransferConfig};

use crate::diag::{Diagnostic, Diagnostics, line_of};

/// Default maximum UDP payload (RFC 9715 / DNS flag day 2020).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// A validated configuration. Paths are absolute or relative to the
/// working directory (resolved against the config file's directory).
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file this was loaded from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[zone]]`, in file order.
    pub zones: Vec<ZoneConfig>,
    /// `[health]`.
    pub health: HealthConfig,
    /// `[check.NAME]`, sorted by name.
    pub checks: Vec<CheckConfig>,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteConfig>,
    /// Route indices such that every route comes after the routes its
    /// members name.
    pub route_order: Vec<usize>,
    /// `[geo]`.
    pub geo: GeoConfig,
    /// `[api]`, if configured.
    pub api: Option<ApiConfig>,
    /// `[[webhook]] url`s.
    pub webhooks: Vec<String>,
    /// Response rate limiting.
    pub rrl: crate::rrl::Config,
    /// DNS cookies: the secrets (None: cookies off).
    pub cookies: Option<crate::cookie::Keys>,
    /// `[key.NAME]`: TSIG keys.
    pub keys: Vec<crate::tsig::Key>,
    /// `[transfer]`.
    pub transfer: TransferConfig,
    /// `[fleet]` and `[[peer]]`, if this instance is one of a fleet.
    pub fleet: Option<FleetConfig>,
    /// `[dnssec]` (defaults when absent).
    pub dnssec: DnssecConfig,
    /// `[dnstap]`: query logging (None: off).
    pub dnstap: Option<DnstapConfig>,
}

/// `[geo]`: where client locations come from. Either, both or neither.
#[derive(Debug, Clone, Default)]
pub struct GeoConfig {
    /// A MaxMind-format database (`.mmdb`) and the line naming it.
    pub database: Option<(PathBuf, usize)>,
    /// A CIDR → location map file overriding the database, and its line.
    pub networks: Option<(PathBuf, usize)>,
}

/// `[api]`: the admin HTTP server (listen address needs a restart).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Where it listens (loopback by default).
    pub listen: SocketAddr,
    /// Bearer token for state-changing endpoints; `None` turns them off.
    pub token: Option<String>,
}

/// `[health]`: the prober guard.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Freeze when more than this share of checks go down within `guard_window`.
    pub guard_share: f64,
    /// The window.
    pub guard_window: Duration,
    /// The guard only acts with at least this many probed checks.
    pub guard_min_checks: usize,
    /// Every probe's source address (needs a restart to change).
    pub source: Option<std::net::IpAddr>,
}

/// `[server]`: settings that need a restart to change.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses served over UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// Largest UDP response we send (and advertise), 512..=4096.
    pub max_udp_payload: u16,
    /// Tokio worker threads; `None` = one per core.
    pub workers: Option<usize>,
    /// SO_REUSEPORT UDP sockets per listen address; `None` = two per worker.
    pub udp_sockets: Option<usize>,
    /// Idle time allowed between messages on a TCP connection.
    pub tcp_idle_timeout: Duration,
    /// Time allowed for one whole TCP message once its first byte arrived
    /// (and for writing one answer).
    pub tcp_read_timeout: Duration,
    /// Open TCP connections at most, all clients together.
    pub tcp_max_connections: usize,
    /// Open TCP connections at most from one client network (/24, /56).
    pub tcp_max_per_network: usize,
    /// Run as this user after binding (and as `group`, else its group).
    pub user: Option<String>,
    /// See `user`.
    pub group: Option<String>,
    /// Where checkpointed health states and the admin-state file live.
    pub state_dir: Option<PathBuf>,
    /// Serve UDP with veer's batched threads (true) or hickory's loop.
    pub udp_batched: bool,
}

/// One `[[zone]]`.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// Zone apex, fully qualified.
    pub origin: Name,
    /// The master file.
    pub file: PathBuf,
    /// Line of the `origin` key in the config file, for diagnostics.
    pub line: usize,
    /// Line of the `file` key.
    pub file_line: usize,
    /// Where the zone comes from by transfer (a secondary zone; then
    /// `file` is veer's copy in `state_dir`). Empty: from `file`.
    pub primaries: Vec<NotifyTarget>,
    /// Who may transfer the zone (nobody when empty).
    pub allow_transfer: Vec<Allow>,
    /// Where NOTIFY goes when the serial changes.
    pub notify: Vec<NotifyTarget>,
    /// Signed with the keys in `[dnssec] key_dir` (`dnssec = true`).
    pub dnssec: bool,
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::one(Diagnostic::new(
            path,
            1,
            format!("cannot read config file: {e}"),
        ))
    })?;
    parse(path, &text)
}

/// Reads and validates the config file at `path`, keeping going past
/// errors (see [`parse_partial`]).
pub fn load_partial(path: &Path) -> (Option<Config>, Vec<Diagnostic>) {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_partial(path, &text),
        Err(e) => (
            None,
            vec![Diagnostic::new(
                path,
                1,
                format!("cannot read config file: {e}"),
            )],
        ),
    }
}

/// Validates config `text` as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    match parse_partial(path, text) {
        (Some(config), errors) if errors.is_empty() => Ok(config),
        (_, errors) => Err(Diagnostics(errors)),
    }
}

/// Validates config `text`: the config with every invalid part left out
/// (None when the file is not well-formed TOML of the right shape) and
/// every error found, so later stages (zones, geo) can still be checked.
pub fn parse_partial(path: &Path, text: &str) -> (Option<Config>, Vec<Diagnostic>) {
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let spec: Result<file::Spec, _> =
        serde_ignored::deserialize(toml::Deserializer::new(text), |p| {
            unknown.push(segments(&p))
        });
    // Every unknown key or section, each at its own line.
    let mut errors: Vec<Diagnostic> = unknown
        .iter()
        .map(|key| {
            let line = key_line(text, key).unwrap_or(1);
            let name = match key.last() {
                Some(Seg::Key(k)) => k.as_str(),
                _ => "",
            };
            Diagnostic::new(path, line, format!("unknown key `{name}`"))
        })
        .collect();
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            errors.push(Diagnostic::new(
                path,
                line,
                e.message().trim_end().to_string(),
            ));
            errors.sort_by_key(|d| d.line);
            return (None, errors);
        }
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut v = Validator {
        path,
        text,
        base,
        errors,
    };
    let config = v.config(spec);
    (Some(config), v.errors)
}

/// One step of a path into the TOML document.
enum Seg {
    Key(String),
    Index(usize),
}

/// `serde_ignored`'s path as steps, without toml's private `Spanned`
/// wrappers (keys may hold dots or look like numbers: kept as they are).
fn segments(p: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path;
    let mut out = match p {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    };
    match p {
        Path::Seq { index, .. } => out.push(Seg::Index(*index)),
        Path::Map { key, .. } if !key.starts_with("$__serde_spanned") => {
            out.push(Seg::Key(key.clone()))
        }
        _ => {}
    }
    out
}

/// The line of the key at `path` in `text`.
fn key_line(text: &str, path: &[Seg]) -> Option<usize> {
    use toml_edit::{Item, Value};
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let (Seg::Key(last), parents) = path.split_last()? else {
        return None;
    };
    let mut item: &Item = doc.as_item();
    for seg in parents {
        item = match seg {
            Seg::Index(i) => item.get(*i)?,
            Seg::Key(k) => item.get(k.as_str())?,
        };
    }
    let span = match item {
        Item::Table(t) => t.key(last).and_then(|k| k.span()),
        Item::Value(Value::InlineTable(t)) => t.key(last).and_then(|k| k.span()),
        _ => None,
    }?;
    Some(line_of(text, span.start))
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    base: PathBuf,
    errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error_at(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.path, line, message));
    }

    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.text, s.span().start)
    }

    fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let line = self.line(at);
        self.errors.push(Diagnostic::new(self.path, line, message));
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn config(&mut self, spec: file::Spec) -> Config {
        let server = self.server(spec.server);
        let keys = self.keys(spec.key);
        let transfer = self.transfer(spec.transfer);
        let dnssec = self.dnssec(spec.dnssec, server.state_dir.as_deref());
        let zones = self.zones(
            spec.zone,
            &keys,
            server.state_dir.as_deref(),
            dnssec.key_dir.is_some(),
        );
        let health = self.health(spec.health);
        let checks = self.checks(spec.check);
        let (routes, route_order) = self.routes(spec.route, &zones, &checks);
        let geo = self.geo(spec.geo);
        if geo.database.is_none() && geo.networks.is_none() {
            for r in &routes {
                if r.policy.needs_location() {
                    self.error_at(
                        r.line,
                        format!(
                            "route {} {}: policy {} needs client locations: add [geo] database and/or networks",
                            r.name,
                            r.rtype,
                            r.policy.name()
                        ),
                    );
                }
            }
        }
        let api = spec.api.map(|a| self.api(a));
        let fleet = self.fleet(spec.fleet, spec.peer);
        let cookies = self.cookies(spec.cookies);
        let rrl = self.rrl(spec.rrl);
        let dnstap = self.dnstap(spec.dnstap);
        let mut webhooks = Vec::new();
        for w in spec.webhook {
            match reqwest::Url::parse(w.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {
                    webhooks.push(w.url.into_inner())
                }
                _ => self.error(
                    &w.url,
                    format!("webhook url `{}` must be an http(s) URL", w.url.get_ref()),
                ),
            }
        }
        Config {
            path: self.path.to_path_buf(),
            server,
            zones,
            health,
            checks,
            routes,
            route_order,
            geo,
            api,
            webhooks,
            cookies,
            rrl,
            keys,
            transfer,
            fleet,
            dnssec,
            dnstap,
        }
    }

    fn geo(&mut self, g: Option<Spanned<file::GeoSpec>>) -> GeoConfig {
        let Some(g) = g else {
            return GeoConfig::default();
        };
        let line = self.line(&g);
        let g = g.into_inner();
        let path =
            |v: &Self, p: Option<Spanned<String>>| p.map(|p| (v.resolve(p.get_ref()), v.line(&p)));
        let out = GeoConfig {
            database: path(self, g.database),
            networks: path(self, g.networks),
        };
        if out.database.is_none() && out.networks.is_none() {
            self.error_at(line, "[geo] needs database and/or networks");
        }
        out
    }

    fn rrl(&mut self, r: Option<Spanned<file::RrlSpec>>) -> crate::rrl::Config {
        let mut out = crate::rrl::Config::default();
        let Some(r) = r else { return out };
        let r = r.into_inner();
        if let Some(n) = r.responses_per_second {
            out.responses_per_second = n;
        }
        if let Some(n) = r.slip {
            out.slip = n;
        }
        if let Some(w) = &r.window {
            match parse_duration(w.get_ref()) {
                Ok(d) if !d.is_zero() && d.as_millis() <= 3_600_000 => {
                    out.window_ms = d.as_millis() as u32
                }
                Ok(_) => self.error(w, "[rrl] window must be above 0 and at most 1h"),
                Err(e) => self.error(w, format!("[rrl] window: {e}")),
            }
        }
        for (p, max, slot) in [
            (&r.ipv4_prefix, 32, &mut out.ipv4_prefix),
            (&r.ipv6_prefix, 128, &mut out.ipv6_prefix),
        ] {
            if let Some(p) = p {
                if *p.get_ref() > max {
                    self.error(
                        p,
                        format!("[rrl] prefix /{} is longer than {max}", p.get_ref()),
                    );
                } else {
                    *slot = *p.get_ref();
                }
            }
        }
        for n in &r.exempt {
            match n.get_ref().parse() {
                Ok(net) => out.exempt.push(net),
                Err(e) => self.error(n, format!("[rrl] exempt: {e}")),
            }
        }
        if out.responses_per_second > 0
            && u64::from(out.responses_per_second) * u64::from(out.window_ms) < 1000
        {
            self.error_at(
                1,
                "[rrl] responses_per_second x window must hold at least one response",
            );
        }
        out
    }

    fn cookies(&mut self, c: Option<Spanned<file::CookiesSpec>>) -> Option<crate::cookie::Keys> {
        let c = match c {
            None => {
                return Some(crate::cookie::Keys {
                    secret: crate::cookie::generated_secret(),
                    previous: None,
                    require: false,
                });
            }
            Some(c) => c.into_inner(),
        };
        let mut hex = |s: &Option<Spanned<String>>, what: &str| -> Option<[u8; 16]> {
            let s = s.as_ref()?;
            let text = s.get_ref();
            let bytes: Option<Vec<u8>> = (text.len() == 32 && text.is_ascii())
                .then(|| {
                    (0..16)
                        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                        .collect()
                })
                .flatten();
            match bytes {
                Some(b) => b.try_into().ok(),
                None => {
                    self.error(
                        s,
                        format!("[cookies] {what} must be 32 hex digits (16 bytes)"),
                    );
                    None
                }
            }
        };
        // Checked even when off: turning them on must not find a mistake.
        let secret = hex(&c.secret, "secret");
        let previous = hex(&c.previous_secret, "previous_secret");
        if c.enabled == Some(false) {
            return None;
        }
        Some(crate::cookie::Keys {
            secret: secret.unwrap_or_else(crate::cookie::generated_secret),
            previous,
            require: c.require_cookie.unwrap_or(false),
        })
    }

    fn api(&mut self, a: file::ApiSpec) -> ApiConfig {
        let listen = match &a.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8053)),
            Some(l) => l.get_ref().parse().unwrap_or_else(|_| {
                self.error(l, format!("[api] listen `{}` is not IP:PORT", l.get_ref()));
                SocketAddr::from(([127, 0, 0, 1], 8053))
            }),
        };
        let token = self.token("[api]", &a.token, &a.token_file);
        ApiConfig { listen, token }
    }

    /// A bearer token given inline or in a file (of `table`), at least
    /// 16 characters.
    fn token(
        &mut self,
        table: &str,
        token: &Option<Spanned<String>>,
        token_file: &Option<Spanned<String>>,
    ) -> Option<String> {
        // The token and the line that gave it (the key, or token_file's).
        let token: Option<(String, usize)> = match (token, token_file) {
            (Some(_), Some(f)) => {
                self.error(f, format!("{table} takes token or token_file, not both"));
                None
            }
            (Some(t), None) => Some((t.get_ref().clone(), self.line(t))),
            (None, Some(f)) => {
                let path = self.resolve(f.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(t) if !t.trim().is_empty() => Some((t.trim().to_string(), self.line(f))),
                    Ok(_) => {
                        self.error(f, format!("token_file {} is empty", path.display()));
                        None
                    }
                    Err(e) => {
                        self.error(f, format!("cannot read token_file {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, None) => None,
        };
        if let Some((t, line)) = &token
            && t.len() < 16
        {
            self.error_at(
                *line,
                format!("{table} token must be at least 16 characters"),
            );
        }
        token.map(|(t, _)| t)
    }

    fn health(&mut self, h: file::HealthSpec) -> HealthConfig {
        let guard_share = match &h.guard_share {
            Some(s) if !(0.0..=1.0).contains(s.get_ref()) => {
                self.error(s, "guard_share must be between 0 and 1");
                0.5
            }
            Some(s) => *s.get_ref(),
            None => 0.5,
        };
        let guard_window = match &h.guard_window {
            Some(w) => match parse_duration(w.get_ref()) {
                Ok(d) if d.is_zero() => {
                    self.error(w, "guard_window must be above 0");
                    Duration::from_secs(30)
                }
                Ok(d) => d,
                Err(e) => {
                    self.error(w, format!("guard_window: {e}"));
                    Duration::from_secs(30)
                }
            },
            None => Duration::from_secs(30),
        };
        let source = h.source.as_ref().and_then(|s| match s.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    s,
                    format!("[health] source `{}` is not an IP address", s.get_ref()),
                );
                None
            }
        });
        HealthConfig {
            guard_share,
            guard_window,
            guard_min_checks: h.guard_min_checks.unwrap_or(4),
            source,
        }
    }

    fn server(&mut self, s: file::ServerSpec) -> ServerConfig {
        let mut listen = Vec::new();
        for addr in &s.listen {
            match addr.get_ref().parse::<SocketAddr>() {
                Ok(a) if listen.contains(&a) => {
                    self.error(addr, format!("listen address {a} is given twice"))
                }
                Ok(a) => listen.push(a),
                Err(_) => self.error(
                    addr,
                    format!(
                        "listen address `{}` is not IP:PORT (e.g. 127.0.0.1:5353 or [::1]:5353)",
                        addr.get_ref()
                    ),
                ),
            }
        }
        if s.listen.is_empty() {
            self.errors.push(Diagnostic::new(
                self.path,
                1,
                "[server] listen must name at least one address",
            ));
        }
        let max_udp_payload = match &s.max_udp_payload {
            Some(p) if !(512..=4096).contains(p.get_ref()) => {
                self.error(p, "max_udp_payload must be between 512 and 4096");
                DEFAULT_MAX_UDP_PAYLOAD
            }
            Some(p) => *p.get_ref(),
            None => DEFAULT_MAX_UDP_PAYLOAD,
        };
        let tcp_idle_timeout = match &s.tcp_idle_timeout {
            Some(t) => parse_duration(t.get_ref()).unwrap_or_else(|e| {
                self.error(t, format!("tcp_idle_timeout: {e}"));
                Duration::from_secs(10)
            }),
            None => Duration::from_secs(10),
        };
        if let Some(t) = &s.tcp_idle_timeout
            && tcp_idle_timeout.is_zero()
        {
            self.error(t, "tcp_idle_timeout must be above 0");
        }
        let tcp_read_timeout = match &s.tcp_read_timeout {
            Some(t) => parse_duration(t.get_ref()).unwrap_or_else(|e| {
                self.error(t, format!("tcp_read_timeout: {e}"));
                Duration::from_secs(5)
            }),
            None => Duration::from_secs(5),
        };
        if let Some(t) = &s.tcp_read_timeout
            && tcp_read_timeout.is_zero()
        {
            self.error(t, "tcp_read_timeout must be above 0");
        }
        let mut count = |v: &Option<Spanned<usize>>, name: &str, default: usize| match v {
            Some(n) if *n.get_ref() == 0 => {
                self.error(n, format!("{name} must be at least 1"));
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        };
        let tcp_max_connections = count(&s.tcp_max_connections, "tcp_max_connections", 1024);
        let tcp_max_per_network = count(&s.tcp_max_per_network, "tcp_max_per_network", 64);
        if s.group.is_some() && s.user.is_none() {
            self.error_at(1, "[server] group needs user (the user to run as)");
        }
        for (name, v) in [("workers", &s.workers), ("udp_sockets", &s.udp_sockets)] {
            if let Some(v) = v
                && !(1..=256).contains(v.get_ref())
            {
                self.error(v, format!("{name} must be between 1 and 256"));
            }
        }
        ServerConfig {
            listen,
            max_udp_payload,
            workers: s.workers.map(|w| w.into_inner()),
            udp_sockets: s.udp_sockets.map(|w| w.into_inner()),
            tcp_idle_timeout,
            tcp_read_timeout,
            tcp_max_connections,
            tcp_max_per_network,
            user: s.user.clone(),
            group: s.group.clone(),
            state_dir: s.state_dir.map(|d| self.resolve(&d)),
            udp_batched: match s.udp_path.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("batched") => true,
                Some("hickory") => false,
                Some(other) => {
                    let p = s.udp_path.as_ref().expect("matched Some");
                    self.error(p, format!("udp_path = \"{other}\": use batched or hickory"));
                    true
                }
            },
        }
    }

    fn zones(
        &mut self,
        specs: Vec<file::ZoneSpec>,
        keys: &[crate::tsig::Key],
        state_dir: Option<&Path>,
        has_key_dir: bool,
    ) -> Vec<ZoneConfig> {
        let mut zones: Vec<ZoneConfig> = Vec::new();
        for z in specs {
            let line = self.line(&z.origin);
            let origin = match Name::from_utf8(z.origin.get_ref()) {
                Ok(mut n) => {
                    n.set_fqdn(true);
                    n.to_lowercase()
                }
                Err(e) => {
                    self.error(
                        &z.origin,
                        format!("zone origin `{}`: {e}", z.origin.get_ref()),
                    );
                    continue;
                }
            };
            if let Some(first) = zones.iter().find(|o| o.origin == origin) {
                let msg = format!(
                    "zone {origin} is configured twice (first at line {})",
                    first.line
                );
                self.error(&z.origin, msg);
                continue;
            }
            let dnssec = z.dnssec.as_ref().is_some_and(|d| *d.get_ref());
            if dnssec && !has_key_dir {
                let at = z.dnssec.as_ref().expect("set");
                self.error(
                    at,
                    format!("zone {origin}: dnssec = true needs [dnssec] key_dir or [server] state_dir (the zone's keys are there)"),
                );
            }
            let allow_transfer = self.allow_transfer(keys, z.allow_transfer, &origin);
            let notify = self.notify(keys, z.notify, &origin);
            let (file, file_line, primaries) = match (&z.file, z.primary) {
                (Some(f), None) => (self.resolve(f.get_ref()), self.line(f), Vec::new()),
                (None, Some(p)) => {
                    let at = self.line(&p);
                    let primaries = self.primaries(keys, p, &origin);
                    match state_dir {
                        Some(dir) => (
                            crate::xfr::secondary::copy_path(dir, &origin),
                            at,
                            primaries,
                        ),
                        None => {
                            self.error_at(
                                at,
                                format!("zone {origin}: a zone from a primary needs [server] state_dir (veer keeps its copy there)"),
                            );
                            continue;
                        }
                    }
                }
                (Some(f), Some(_)) => {
                    self.error(
                        f,
                        format!("zone {origin}: file and primary exclude each other"),
                    );
                    continue;
                }
                (None, None) => {
                    self.error(&z.origin, format!("zone {origin}: needs file or primary"));
                    continue;
                }
            };
            zones.push(ZoneConfig {
                origin,
                file,
                line,
                file_line,
                primaries,
                allow_transfer,
                notify,
                dnssec,
            });
        }
        zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("veer.toml"), text) {
            Ok(_) => vec![],
            Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn minimal_config() {
        let c = parse(
            Path::new("/etc/veer/veer.toml"),
            "[server]\nlisten = [\"127.0.0.1:5353\", \"[::1]:5353\"]\n[[zone]]\norigin = \"Example.Test\"\nfile = \"z/example.zone\"\n",
        )
        .unwrap();
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.server.max_udp_payload, 1232);
        assert_eq!(c.zones[0].origin.to_string(), "example.test.");
        assert_eq!(c.zones[0].file, PathBuf::from("/etc/veer/z/example.zone"));
    }

    #[test]
    fn unknown_keys_with_dots_or_numeric_names_are_found_at_their_lines() {
        let e = errors(
            "[server]\nlisten = [\"127.0.0.1:53\"]\n\"top.dotted\" = 1\n\n\
             [check.\"web.1\"]\ntcp = \"127.0.0.1:1\"\nintervall = \"1s\"\n\n\
             [check.2]\ntcp = \"127.0.0.1:1\"\nfal = 3\n",
        );
        assert_eq!(
            e,
            [
                "veer.toml:3: unknown key `top.dotted`",
                "veer.toml:7: unknown key `intervall`",
                "veer.toml:11: unknown key `fal`",
            ],
        );
    }

    #[test]
    fn unknown_key_names_its_line() {
        let e = errors("[server]\nlisten = [\"127.0.0.1:53\"]\nlisen = 3\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("veer.toml:3: unknown key `lisen`"),
            "{e:?}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let e = errors(
            "[server]\nlisten = [\"nonsense\"]\nmax_udp_payload = 100\n[[zone]]\norigin = \"a.test.\"\nfile = \"a\"\n[[zone]]\norigin = \"A.test\"\nfile = \"b\"\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("veer.toml:2: listen address `nonsense`"));
        assert!(e[1].starts_with("veer.toml:3: max_udp_payload"));
        assert!(
            e[2].starts_with("veer.toml:8: zone a.test. is configured twice (first at line 5)")
        );
    }
}
