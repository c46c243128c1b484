//! `[[route]]` validation: the routed record set, its policy and members.
//! Member values are parsed as zone-file RDATA of the route's type.

use std::collections::BTreeMap;
use std::str::FromStr;

use hickory_proto::rr::{Name, Record, RecordType};
use toml::Spanned;

use super::file::{MinHealthySpec, RouteSpec};
use super::{CheckConfig, Validator, ZoneConfig};
use crate::zone::parse::parse_record;

/// One validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Owner name.
    pub name: Name,
    /// Record type.
    pub rtype: RecordType,
    /// Index of the zone (in [`super::Config::zones`]) the route lives in.
    pub zone: usize,
    /// Maximum TTL (used while health is steady).
    pub ttl: u32,
    /// TTL floor while a state change is pending.
    pub min_ttl: u32,
    /// How members are chosen.
    pub policy: Policy,
    /// The members, in config order.
    pub members: Vec<Member>,
    /// Fewer healthy members than this fails a tier.
    pub min_healthy: MinHealthy,
    /// What to answer when no member is healthy.
    pub when_all_down: AllDown,
    /// Line of the `[[route]]` table.
    pub line: usize,
}

/// A route member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The record answered (owner = route name, TTL set per answer).
    pub record: Record,
    /// The check deciding its health (`None` = always healthy).
    pub check: Option<usize>,
    /// Failover tier (1 = first).
    pub tier: u32,
}

/// Routing policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The first tier with a healthy member answers with its healthy members.
    Failover,
    /// Up to `max` healthy members, shuffled.
    Multivalue {
        /// Most records in one answer.
        max: usize,
    },
}

impl Policy {
    /// The policy's config name.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::Multivalue { .. } => "multivalue",
        }
    }
}

/// The minimum number of healthy members of a tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinHealthy {
    /// At least this many.
    Count(u32),
    /// At least this share (0..=1) of the tier's members.
    Fraction(f64),
}

impl MinHealthy {
    /// The count required of a tier with `members` members (at least 1).
    pub fn required(&self, members: usize) -> usize {
        match *self {
            MinHealthy::Count(n) => n as usize,
            MinHealthy::Fraction(f) => (f * members as f64).ceil() as usize,
        }
        .max(1)
    }
}

/// `when_all_down`.
#[derive(Debug, Clone, PartialEq)]
pub enum AllDown {
    /// Answer as if every member were healthy (Route 53's rule).
    Open,
    /// NODATA.
    Closed,
    /// These records.
    Fallback(Vec<Record>),
    /// SERVFAIL.
    ServFail,
}

impl Validator<'_> {
    pub(super) fn routes(
        &mut self,
        specs: Vec<Spanned<RouteSpec>>,
        zones: &[ZoneConfig],
        checks: &[CheckConfig],
    ) -> Vec<RouteConfig> {
        let mut out: Vec<RouteConfig> = Vec::new();
        let mut seen: BTreeMap<(Name, RecordType), usize> = BTreeMap::new();
        for spec in specs {
            let line = self.line(&spec);
            let s = spec.get_ref();
            let before = self.errors.len();
            let fail = |v: &mut Validator<'_>, m: String| {
                v.error_at(line, format!("route {} {}: {m}", s.name, s.rtype))
            };
            let name = match Name::from_utf8(&s.name) {
                Ok(mut n) => {
                    n.set_fqdn(true);
                    n.to_lowercase()
                }
                Err(e) => {
                    fail(self, format!("bad name: {e}"));
                    continue;
                }
            };
            let Ok(rtype) = RecordType::from_str(&s.rtype.to_ascii_uppercase()) else {
                fail(self, format!("unknown type `{}`", s.rtype));
                continue;
            };
            if matches!(
                rtype,
                RecordType::SOA
                    | RecordType::NS
                    | RecordType::ANY
                    | RecordType::OPT
                    | RecordType::AXFR
                    | RecordType::IXFR
            ) {
                fail(self, format!("type {rtype} cannot be routed"));
                continue;
            }
            // The most specific configured zone holds the route.
            let Some(zone) = zones
                .iter()
                .enumerate()
                .filter(|(_, z)| z.origin.zone_of(&name))
                .max_by_key(|(_, z)| z.origin.num_labels())
                .map(|(i, _)| i)
            else {
                fail(self, format!("{name} is not inside any configured zone"));
                continue;
            };
            if let Some(first) = seen.get(&(name.clone(), rtype)) {
                fail(
                    self,
                    format!("the same name and type is routed twice (first at line {first})"),
                );
                continue;
            }
            seen.insert((name.clone(), rtype), line);
            let origin = &zones[zone].origin;
            let ttl = s.ttl.unwrap_or(60);
            let min_ttl = s.min_ttl.unwrap_or(ttl.min(10));
            if min_ttl > ttl {
                fail(self, format!("min_ttl ({min_ttl}) is above ttl ({ttl})"));
            }
            let policy = match s.policy.as_str() {
                "failover" => Policy::Failover,
                "multivalue" => Policy::Multivalue {
                    max: s.max.unwrap_or(8),
                },
                other => {
                    fail(
                        self,
                        format!("unknown policy `{other}` (failover or multivalue)"),
                    );
                    continue;
                }
            };
            if let Policy::Multivalue { max: 0 } = policy {
                fail(self, "max must be at least 1".into());
            }
            if s.max.is_some() && policy == Policy::Failover {
                fail(self, "max only applies to multivalue routes".into());
            }
            if s.members.is_empty() {
                fail(self, "needs at least one member".into());
            }
            let mut members = Vec::new();
            for (i, m) in s.members.iter().enumerate() {
                let record = match parse_record(&name, ttl, &format!("{rtype} {}", m.value), origin)
                {
                    Ok(r) => r,
                    Err(e) => {
                        fail(
                            self,
                            format!("member {}: bad {rtype} value `{}`: {e}", i + 1, m.value),
                        );
                        continue;
                    }
                };
                let check = match &m.check {
                    None => None,
                    Some(c) => match checks.iter().position(|k| &k.name == c) {
                        Some(i) => Some(i),
                        None => {
                            fail(
                                self,
                                format!("member {}: check `{c}` is not configured", i + 1),
                            );
                            continue;
                        }
                    },
                };
                if m.tier.is_some() && policy != Policy::Failover {
                    fail(
                        self,
                        format!("member {}: tier only applies to failover routes", i + 1),
                    );
                }
                members.push(Member {
                    record,
                    check,
                    tier: m.tier.unwrap_or(1),
                });
            }
            if rtype == RecordType::CNAME && policy != Policy::Failover {
                fail(
                    self,
                    "a CNAME route must use failover (exactly one member answers)".into(),
                );
            }
            let min_healthy = match s.min_healthy {
                None => MinHealthy::Count(1),
                Some(MinHealthySpec::Count(n)) => MinHealthy::Count(n),
                Some(MinHealthySpec::Fraction(f)) if (0.0..=1.0).contains(&f) => {
                    MinHealthy::Fraction(f)
                }
                Some(MinHealthySpec::Fraction(f)) => {
                    fail(
                        self,
                        format!("min_healthy = {f}: a fraction must be between 0 and 1"),
                    );
                    MinHealthy::Count(1)
                }
            };
            let when_all_down = match s.when_all_down.as_deref().unwrap_or("open") {
                "open" => AllDown::Open,
                "closed" => AllDown::Closed,
                "servfail" => AllDown::ServFail,
                "fallback" => {
                    let mut recs = Vec::new();
                    for v in &s.fallback {
                        match parse_record(&name, ttl, &format!("{rtype} {v}"), origin) {
                            Ok(r) => recs.push(r),
                            Err(e) => fail(self, format!("fallback: bad {rtype} value `{v}`: {e}")),
                        }
                    }
                    if s.fallback.is_empty() {
                        fail(
                            self,
                            "when_all_down = \"fallback\" needs fallback = [values]".into(),
                        );
                    }
                    AllDown::Fallback(recs)
                }
                other => {
                    fail(
                        self,
                        format!(
                            "when_all_down = \"{other}\": use open, closed, fallback or servfail"
                        ),
                    );
                    AllDown::Open
                }
            };
            if !s.fallback.is_empty() && !matches!(when_all_down, AllDown::Fallback(_)) {
                fail(
                    self,
                    "fallback values need when_all_down = \"fallback\"".into(),
                );
            }
            if self.errors.len() > before {
                continue;
            }
            out.push(RouteConfig {
                name,
                rtype,
                zone,
                ttl,
                min_ttl,
                policy,
                members,
                min_healthy,
                when_all_down,
                line,
            });
        }
        out
    }
}
