//! `[key.NAME]`, `[transfer]` and each zone's `allow_transfer` and
//! `notify`: who may transfer a zone, whom veer tells about new serials,
//! and with which TSIG keys.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::{Validator, file, parse_duration};
use crate::route::prefix::Net;
use crate::tsig::Key;

/// `[transfer]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferConfig {
    /// Most differences kept per zone for IXFR.
    pub journal_entries: usize,
    /// Most bytes (records' wire size) the differences of a zone hold.
    pub journal_bytes: u64,
    /// NOTIFY attempts after the first one.
    pub notify_retries: u32,
    /// How long the first NOTIFY waits for its answer; doubles per retry.
    pub notify_timeout: Duration,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            journal_entries: 100,
            journal_bytes: 16 << 20,
            notify_retries: 5,
            notify_timeout: Duration::from_secs(1),
        }
    }
}

/// One `allow_transfer` entry: every field given must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    /// The client's address is inside.
    pub network: Option<Net>,
    /// The request is signed with this key (lower case).
    pub key: Option<Name>,
}

impl Allow {
    /// Whether a request from `ip`, signed with `key` (validly), matches.
    pub fn matches(&self, ip: std::net::IpAddr, key: Option<&Name>) -> bool {
        self.network.is_none_or(|n| n.contains(ip))
            && self.key.as_ref().is_none_or(|k| key == Some(k))
    }
}

/// A `notify` target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyTarget {
    /// Where NOTIFY goes (UDP).
    pub address: SocketAddr,
    /// Signed with this key (lower case).
    pub key: Option<Name>,
}

impl Validator<'_> {
    pub(super) fn keys(
        &mut self,
        specs: std::collections::BTreeMap<String, Spanned<file::KeySpec>>,
    ) -> Vec<Key> {
        let mut keys: Vec<Key> = Vec::new();
        for (name, spec) in specs {
            let spec = spec.into_inner();
            match Key::new(&name, spec.algorithm.get_ref(), spec.secret.get_ref()) {
                Ok(k) => {
                    if let Some(w) = k.warning() {
                        tracing::warn!(
                            "{}:{}: warning: [key.{name}]: {w}",
                            self.path.display(),
                            self.line(&spec.secret)
                        );
                    }
                    if keys.iter().any(|o| o.name() == k.name()) {
                        self.error(
                            &spec.algorithm,
                            format!(
                                "[key.{name}]: a key named {} is already configured",
                                k.name()
                            ),
                        );
                    } else {
                        keys.push(k);
                    }
                }
                Err(e) => {
                    let at = if e.contains("secret") || e.contains("base64") {
                        &spec.secret
                    } else {
                        &spec.algorithm
                    };
                    self.error(at, format!("[key.{name}]: {e}"));
                }
            }
        }
        keys
    }

    pub(super) fn transfer(&mut self, t: Option<Spanned<file::TransferSpec>>) -> TransferConfig {
        let mut out = TransferConfig::default();
        let Some(t) = t else { return out };
        let t = t.into_inner();
        if let Some(n) = &t.journal_entries {
            out.journal_entries = *n.get_ref();
        }
        if let Some(n) = &t.journal_bytes {
            out.journal_bytes = *n.get_ref();
        }
        if let Some(n) = &t.notify_retries {
            if *n.get_ref() > 20 {
                self.error(n, "[transfer] notify_retries must be at most 20");
            } else {
                out.notify_retries = *n.get_ref();
            }
        }
        if let Some(d) = &t.notify_timeout {
            match parse_duration(d.get_ref()) {
                Ok(v) if !v.is_zero() && v <= Duration::from_secs(60) => out.notify_timeout = v,
                Ok(_) => self.error(
                    d,
                    "[transfer] notify_timeout must be above 0 and at most 60s",
                ),
                Err(e) => self.error(d, format!("[transfer] notify_timeout: {e}")),
            }
        }
        out
    }

    /// A key named in a zone: must be a configured `[key.NAME]`.
    fn key_ref(&mut self, keys: &[Key], at: &Spanned<String>, origin: &Name) -> Option<Name> {
        let name = match Name::from_utf8(at.get_ref()) {
            Ok(mut n) => {
                n.set_fqdn(true);
                n.to_lowercase()
            }
            Err(e) => {
                self.error(at, format!("zone {origin}: key `{}`: {e}", at.get_ref()));
                return None;
            }
        };
        if keys.iter().any(|k| k.name() == &name) {
            Some(name)
        } else {
            self.error(
                at,
                format!(
                    "zone {origin}: key `{}` is not a configured [key.NAME]",
                    at.get_ref()
                ),
            );
            None
        }
    }

    pub(super) fn allow_transfer(
        &mut self,
        keys: &[Key],
        specs: Vec<Spanned<file::AllowSpec>>,
        origin: &Name,
    ) -> Vec<Allow> {
        let mut out = Vec::new();
        for s in specs {
            let line = self.line(&s);
            let s = s.into_inner();
            if s.network.is_none() && s.key.is_none() {
                self.error_at(
                    line,
                    format!("zone {origin}: an allow_transfer entry needs network, key or both"),
                );
                continue;
            }
            let network = match &s.network {
                None => None,
                Some(n) => match n.get_ref().parse::<Net>() {
                    Ok(net) => Some(net),
                    Err(e) => {
                        self.error(n, format!("zone {origin}: allow_transfer network: {e}"));
                        continue;
                    }
                },
            };
            let key = match &s.key {
                None => None,
                Some(k) => match self.key_ref(keys, k, origin) {
                    Some(k) => Some(k),
                    None => continue,
                },
            };
            out.push(Allow { network, key });
        }
        out
    }

    pub(super) fn primaries(
        &mut self,
        keys: &[Key],
        specs: Spanned<Vec<file::TargetSpec>>,
        origin: &Name,
    ) -> Vec<NotifyTarget> {
        let line = self.line(&specs);
        let specs = specs.into_inner();
        if specs.is_empty() {
            self.error_at(
                line,
                format!("zone {origin}: primary needs at least one address"),
            );
        }
        self.targets(keys, specs, origin, "primary")
    }

    pub(super) fn notify(
        &mut self,
        keys: &[Key],
        specs: Vec<Spanned<file::TargetSpec>>,
        origin: &Name,
    ) -> Vec<NotifyTarget> {
        let specs = specs.into_iter().map(Spanned::into_inner).collect();
        self.targets(keys, specs, origin, "notify")
    }

    /// `primary` or `notify` entries: IP:PORT each, listed once, with a
    /// configured key if any.
    fn targets(
        &mut self,
        keys: &[Key],
        specs: Vec<file::TargetSpec>,
        origin: &Name,
        what: &str,
    ) -> Vec<NotifyTarget> {
        let mut out: Vec<NotifyTarget> = Vec::new();
        for s in specs {
            let Ok(address) = s.address.get_ref().parse::<SocketAddr>() else {
                self.error(
                    &s.address,
                    format!(
                        "zone {origin}: {what} address `{}` is not IP:PORT",
                        s.address.get_ref()
                    ),
                );
                continue;
            };
            let key = match &s.key {
                None => None,
                Some(k) => match self.key_ref(keys, k, origin) {
                    Some(k) => Some(k),
                    None => continue,
                },
            };
            if out.iter().any(|t| t.address == address) {
                self.error(
                    &s.address,
                    format!("zone {origin}: {what} {address} is listed twice"),
                );
                continue;
            }
            out.push(NotifyTarget { address, key });
        }
        out
    }
}
