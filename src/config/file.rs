//! The serde shape of `veer.toml`. Unknown keys are errors, so a typo is
//! reported instead of silently ignored: they are collected while
//! deserializing (`serde_ignored`, in `config::parse`), every one of them
//! with its line, rather than failing at the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
pub struct Spec {
    pub server: ServerSpec,
    #[serde(default)]
    pub zone: Vec<ZoneSpec>,
    #[serde(default)]
    pub health: HealthSpec,
    #[serde(default)]
    pub check: BTreeMap<String, Spanned<CheckSpec>>,
    #[serde(default)]
    pub route: Vec<Spanned<RouteSpec>>,
    pub geo: Option<Spanned<GeoSpec>>,
    pub api: Option<ApiSpec>,
    pub cookies: Option<Spanned<CookiesSpec>>,
    pub rrl: Option<Spanned<RrlSpec>>,
    #[serde(default)]
    pub webhook: Vec<WebhookSpec>,
    #[serde(default)]
    pub key: BTreeMap<String, Spanned<KeySpec>>,
    pub transfer: Option<Spanned<TransferSpec>>,
    pub fleet: Option<Spanned<FleetSpec>>,
    #[serde(default)]
    pub peer: Vec<Spanned<PeerSpec>>,
    pub dnssec: Option<Spanned<DnssecSpec>>,
    pub dnstap: Option<Spanned<DnstapSpec>>,
}

/// `[dnstap]`: query logging in dnstap format.
#[derive(Debug, Deserialize)]
pub struct DnstapSpec {
    pub socket: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub identity: Option<Spanned<String>>,
    pub queries: Option<bool>,
    pub responses: Option<bool>,
    pub sample: Option<Spanned<i64>>,
    pub queue: Option<Spanned<i64>>,
}

/// `[dnssec]`: where zone keys are and how long signatures last.
#[derive(Debug, Deserialize)]
pub struct DnssecSpec {
    pub key_dir: Option<Spanned<String>>,
    pub algorithm: Option<Spanned<toml::Value>>,
    pub validity: Option<Spanned<String>>,
    pub refresh: Option<Spanned<String>>,
    pub inception: Option<Spanned<String>>,
    pub publish_cds: Option<bool>,
    pub nsec_ttl: Option<Spanned<u32>>,
}

/// `[fleet]`: this instance in a fleet of veer instances that decide
/// health together.
#[derive(Debug, Deserialize)]
pub struct FleetSpec {
    pub name: Spanned<String>,
    pub listen: Spanned<String>,
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub quorum: Option<Spanned<toml::Value>>,
    pub probers: Option<Spanned<i64>>,
    pub peer_timeout: Option<Spanned<String>>,
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    pub tls_ca: Option<Spanned<String>>,
    pub allow_plain_http: Option<bool>,
}

/// `[[peer]]`: another instance of the fleet.
#[derive(Debug, Deserialize)]
pub struct PeerSpec {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
}

/// `[key.NAME]`: a TSIG key, as `tsig-keygen` prints it.
#[derive(Debug, Deserialize)]
pub struct KeySpec {
    pub algorithm: Spanned<String>,
    pub secret: Spanned<String>,
}

/// `[transfer]`: zone transfers out and NOTIFY.
#[derive(Debug, Deserialize)]
pub struct TransferSpec {
    pub journal_entries: Option<Spanned<usize>>,
    pub journal_bytes: Option<Spanned<u64>>,
    pub notify_retries: Option<Spanned<u32>>,
    pub notify_timeout: Option<Spanned<String>>,
}

/// An `allow_transfer` entry: every field given must match.
#[derive(Debug, Deserialize)]
pub struct AllowSpec {
    pub network: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// A `primary` of a secondary zone, or a `notify` target.
#[derive(Debug, Deserialize)]
pub struct TargetSpec {
    pub address: Spanned<String>,
    pub key: Option<Spanned<String>>,
}

/// `[api]`: the admin HTTP server.
#[derive(Debug, Deserialize)]
pub struct ApiSpec {
    pub listen: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
}

/// `[rrl]`: response rate limiting.
#[derive(Debug, Deserialize)]
pub struct RrlSpec {
    pub responses_per_second: Option<u32>,
    pub slip: Option<u32>,
    pub window: Option<Spanned<String>>,
    pub ipv4_prefix: Option<Spanned<u8>>,
    pub ipv6_prefix: Option<Spanned<u8>>,
    #[serde(default)]
    pub exempt: Vec<Spanned<String>>,
}

/// `[cookies]`: DNS cookies (RFC 7873, RFC 9018).
#[derive(Debug, Deserialize)]
pub struct CookiesSpec {
    pub enabled: Option<bool>,
    pub secret: Option<Spanned<String>>,
    pub previous_secret: Option<Spanned<String>>,
    pub require_cookie: Option<bool>,
}

/// `[[webhook]]`.
#[derive(Debug, Deserialize)]
pub struct WebhookSpec {
    pub url: Spanned<String>,
}

/// `[geo]`: where client locations come from.
#[derive(Debug, Deserialize)]
pub struct GeoSpec {
    pub database: Option<Spanned<String>>,
    pub networks: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ServerSpec {
    pub listen: Vec<Spanned<String>>,
    pub max_udp_payload: Option<Spanned<u16>>,
    pub workers: Option<Spanned<usize>>,
    pub udp_sockets: Option<Spanned<usize>>,
    pub tcp_idle_timeout: Option<Spanned<String>>,
    pub tcp_read_timeout: Option<Spanned<String>>,
    pub tcp_max_connections: Option<Spanned<usize>>,
    pub tcp_max_per_network: Option<Spanned<usize>>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub state_dir: Option<String>,
    pub udp_path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ZoneSpec {
    pub origin: Spanned<String>,
    pub file: Option<Spanned<String>>,
    pub primary: Option<Spanned<Vec<TargetSpec>>>,
    #[serde(default)]
    pub allow_transfer: Vec<Spanned<AllowSpec>>,
    #[serde(default)]
    pub notify: Vec<Spanned<TargetSpec>>,
    pub dnssec: Option<Spanned<bool>>,
}

/// `[health]`: the prober guard.
#[derive(Debug, Default, Deserialize)]
pub struct HealthSpec {
    pub guard_share: Option<Spanned<f64>>,
    pub guard_window: Option<Spanned<String>>,
    pub guard_min_checks: Option<usize>,
    pub source: Option<Spanned<String>>,
}

/// `[check.NAME]`: exactly one of the kind keys (`http`, `https`, `tcp`,
/// `dns`, `exec`, `file`, `children`) plus options.
#[derive(Debug, Deserialize)]
pub struct CheckSpec {
    pub http: Option<String>,
    pub https: Option<String>,
    pub tcp: Option<String>,
    pub dns: Option<String>,
    pub exec: Option<Vec<String>>,
    pub file: Option<String>,
    pub children: Option<Vec<String>>,
    pub min_healthy: Option<u32>,

    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub host: Option<String>,
    pub tls_verify: Option<bool>,
    pub proxy: Option<String>,
    pub query: Option<String>,
    pub qtype: Option<String>,
    #[serde(default)]
    pub expect: ExpectSpec,

    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub jitter: Option<String>,
    pub fall: Option<u32>,
    pub rise: Option<u32>,
    pub retries: Option<u32>,
    pub invert: Option<bool>,
    pub initial: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ExpectSpec {
    pub status: Option<StatusSpec>,
    pub body: Option<String>,
    pub answer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    Code(u16),
    Ranges(String),
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
pub struct RouteSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: Option<u32>,
    pub min_ttl: Option<u32>,
    pub policy: String,
    pub members: Vec<Spanned<MemberSpec>>,
    pub min_healthy: Option<MinHealthySpec>,
    pub when_all_down: Option<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
    pub max: Option<usize>,
    pub sticky: Option<bool>,
    pub pick: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MinHealthySpec {
    Count(u32),
    Fraction(f64),
}

#[derive(Debug, Deserialize)]
pub struct MemberSpec {
    pub value: Option<String>,
    pub route: Option<String>,
    pub check: Option<String>,
    pub tier: Option<u32>,
    pub weight: Option<u32>,
    pub continent: Option<String>,
    pub country: Option<String>,
    pub subdivision: Option<String>,
    pub default: Option<bool>,
    pub networks: Option<Vec<String>>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub bias: Option<f64>,
}
