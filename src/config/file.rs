//! The serde shape of `veer.toml`. Unknown keys are errors, so a typo is
//! reported instead of silently ignored.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub server: ServerSpec,
    #[serde(default)]
    pub zone: Vec<ZoneSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub listen: Vec<Spanned<String>>,
    pub max_udp_payload: Option<Spanned<u16>>,
    pub workers: Option<Spanned<usize>>,
    pub udp_sockets: Option<Spanned<usize>>,
    pub tcp_idle_timeout: Option<Spanned<String>>,
    pub state_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    pub origin: Spanned<String>,
    pub file: Spanned<String>,
}
