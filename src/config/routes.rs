//! `[[route]]` validation: the routed record set, its policy and members.
//! Member values are parsed as zone-file RDATA of the route's type.

use std::collections::BTreeMap;
use std::str::FromStr;

use hickory_proto::rr::{Name, Record, RecordType};
use toml::Spanned;

use super::file::{MinHealthySpec, RouteSpec};
use super::{CheckConfig, Validator, ZoneConfig};
use crate::route::prefix::Net;
use crate::zone::parse::parse_record;

/// Most members a weighted route answers with at once (`pick`).
pub const MAX_PICK: usize = 8;
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
    /// The record answered (owner = route name, TTL set per answer);
    /// `None` for a member naming another route.
    pub record: Option<Record>,
    /// The route this member answers with (index into
    /// [`super::Config::routes`]), instead of a record.
    pub route: Option<usize>,
    /// The name of that route.
    pub route_name: Option<Name>,
    /// The check deciding its health (`None` = always healthy).
    pub check: Option<usize>,
    /// Failover tier (1 = first).
    pub tier: u32,
    /// Weight (weighted routes; 0 = standby).
    pub weight: u32,
    /// Where the member serves (geo routes).
    pub area: Option<Area>,
    /// Networks it serves (cidr routes).
    pub networks: Vec<Net>,
    /// Position and bias (nearest routes).
    pub place: Option<Place>,
    /// `default = true` (geo and cidr routes).
    pub default: bool,
    /// Line of the member in the config file.
    pub line: usize,
}

impl Member {
    /// A short name for logs and `veer explain`: the value or `route NAME`.
    pub fn label(&self, routes: &[RouteConfig]) -> String {
        match (&self.record, self.route) {
            (Some(r), _) => r.data.to_string(),
            (None, Some(i)) => format!("route {}", routes[i].name),
            (None, None) => "?".into(),
        }
    }
}

/// A geo member's area, most specific first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Area {
    /// A subdivision: ISO 3166-1 country and the ISO 3166-2 code after the dash (`DE`, `BY`).
    Subdivision(String, String),
    /// An ISO 3166-1 alpha-2 country code.
    Country(String),
    /// A continent code (`AF AN AS EU NA OC SA`).
    Continent(String),
    /// Everyone else.
    Default,
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Area::Subdivision(c, s) => write!(f, "subdivision {c}-{s}"),
            Area::Country(c) => write!(f, "country {c}"),
            Area::Continent(c) => write!(f, "continent {c}"),
            Area::Default => f.write_str("default"),
        }
    }
}

/// A nearest member's position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Percent (-99..=99) by which the member's distances shrink (positive
    /// draws clients from further away, negative pushes them off).
    pub bias: f64,
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
    /// One member (or `pick`) by weight among the healthy; weight 0 is standby.
    Weighted {
        /// Consistent hashing on the client subnet instead of chance.
        sticky: bool,
        /// Members per answer.
        pick: usize,
    },
    /// The most specific healthy area of the client's location.
    Geo,
    /// The longest healthy prefix containing the client.
    Cidr,
    /// The healthy member nearest to the client's location.
    Nearest,
}

impl Policy {
    /// The policy's config name.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::Multivalue { .. } => "multivalue",
            Policy::Weighted { .. } => "weighted",
            Policy::Geo => "geo",
            Policy::Cidr => "cidr",
            Policy::Nearest => "nearest",
        }
    }

    /// The policy needs client locations (`[geo]`).
    pub fn needs_location(&self) -> bool {
        matches!(self, Policy::Geo | Policy::Nearest)
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
    ) -> (Vec<RouteConfig>, Vec<usize>) {
        let mut out: Vec<RouteConfig> = Vec::new();
        // Route references by member, resolved once every route is known.
        let mut refs: Vec<Vec<(usize, String, usize)>> = Vec::new();
        let mut seen: BTreeMap<(Name, RecordType), usize> = BTreeMap::new();
        for spec in specs {
            let line = self.line(&spec);
            let s = spec.get_ref();
            let before = self.errors.len();
            let fail = |v: &mut Validator<'_>, m: String| {
                v.error_at(line, format!("route {} {}: {m}", s.name, s.rtype))
            };
            let name = match parse_name(&s.name) {
                Ok(n) => n,
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
                "weighted" => Policy::Weighted {
                    sticky: s.sticky.unwrap_or(false),
                    pick: s.pick.unwrap_or(1),
                },
                "geo" => Policy::Geo,
                "cidr" => Policy::Cidr,
                "nearest" => Policy::Nearest,
                other => {
                    fail(
                        self,
                        format!(
                            "unknown policy `{other}` (failover, multivalue, weighted, geo, cidr or nearest)"
                        ),
                    );
                    continue;
                }
            };
            let weighted = matches!(policy, Policy::Weighted { .. });
            if let Policy::Multivalue { max: 0 } = policy {
                fail(self, "max must be at least 1".into());
            }
            if s.max.is_some() && !matches!(policy, Policy::Multivalue { .. }) {
                fail(self, "max only applies to multivalue routes".into());
            }
            if (s.sticky.is_some() || s.pick.is_some()) && !weighted {
                fail(self, "sticky and pick only apply to weighted routes".into());
            }
            if s.pick.is_some_and(|p| p == 0 || p > MAX_PICK) {
                fail(self, format!("pick must be 1..={MAX_PICK}"));
            }
            if s.members.is_empty() {
                fail(self, "needs at least one member".into());
            }
            let mut members = Vec::new();
            let mut route_refs = Vec::new();
            for (i, spanned) in s.members.iter().enumerate() {
                let m = spanned.get_ref();
                let mline = self.line(spanned);
                let mfail = |v: &mut Validator<'_>, msg: String| {
                    v.error_at(
                        mline,
                        format!("route {} {}: member {}: {msg}", s.name, s.rtype, i + 1),
                    )
                };
                let record = match (&m.value, &m.route) {
                    (Some(value), None) => {
                        match parse_record(&name, ttl, &format!("{rtype} {value}"), origin) {
                            Ok(r) => Some(r),
                            Err(e) => {
                                mfail(self, format!("bad {rtype} value `{value}`: {e}"));
                                continue;
                            }
                        }
                    }
                    (None, Some(r)) => {
                        route_refs.push((i, r.clone(), mline));
                        None
                    }
                    _ => {
                        mfail(self, "needs exactly one of value and route".into());
                        continue;
                    }
                };
                let check = match &m.check {
                    None => None,
                    Some(c) => match checks.iter().position(|k| &k.name == c) {
                        Some(i) => Some(i),
                        None => {
                            mfail(self, format!("check `{c}` is not configured"));
                            continue;
                        }
                    },
                };
                if m.tier.is_some() && policy != Policy::Failover {
                    mfail(self, "tier only applies to failover routes".into());
                }
                if m.weight.is_some() && !weighted {
                    mfail(self, "weight only applies to weighted routes".into());
                }
                let weight = m.weight.unwrap_or(1);
                if weight > 255 {
                    mfail(self, format!("weight {weight} is above 255"));
                }
                let area = self.area(m, policy, &mut |v, msg| mfail(v, msg));
                let mut networks = Vec::new();
                match (&m.networks, policy) {
                    (Some(nets), Policy::Cidr) => {
                        for n in nets {
                            match n.parse::<Net>() {
                                Ok(net) => networks.push(net),
                                Err(e) => mfail(self, format!("networks: {e}")),
                            }
                        }
                    }
                    (Some(_), _) => mfail(self, "networks only apply to cidr routes".into()),
                    (None, _) => {}
                }
                if policy == Policy::Cidr && m.default != Some(true) && m.networks.is_none() {
                    mfail(self, "needs networks = [...] or default = true".into());
                }
                if policy == Policy::Cidr && m.default == Some(true) && m.networks.is_some() {
                    mfail(
                        self,
                        "default = true and networks do not go together".into(),
                    );
                }
                let place = match (m.lat, m.lon, policy) {
                    (Some(lat), Some(lon), Policy::Nearest) => {
                        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                            mfail(self, format!("lat {lat}, lon {lon} is not on Earth"));
                        }
                        let bias = m.bias.unwrap_or(0.0);
                        if !(-99.0..=99.0).contains(&bias) {
                            mfail(
                                self,
                                format!("bias {bias} is not between -99 and 99 (percent)"),
                            );
                        }
                        Some(Place { lat, lon, bias })
                    }
                    (_, _, Policy::Nearest) => {
                        mfail(self, "needs lat and lon".into());
                        None
                    }
                    (None, None, _) if m.bias.is_none() => None,
                    _ => {
                        mfail(
                            self,
                            "lat, lon and bias only apply to nearest routes".into(),
                        );
                        None
                    }
                };
                members.push(Member {
                    record,
                    route: None,
                    route_name: None,
                    check,
                    tier: m.tier.unwrap_or(1),
                    weight,
                    area,
                    networks,
                    place,
                    default: m.default == Some(true),
                    line: mline,
                });
            }
            for (i, _, _) in &route_refs {
                let alone = match policy {
                    Policy::Failover => {
                        let tier = members.get(*i).map(|m| m.tier);
                        members.iter().filter(|m| Some(m.tier) == tier).count() == 1
                    }
                    Policy::Multivalue { .. } => false,
                    _ => true,
                };
                if !alone {
                    fail(
                        self,
                        format!(
                            "member {}: a member naming a route must be alone in its tier (multivalue cannot name routes)",
                            i + 1
                        ),
                    );
                }
            }
            if let Policy::Weighted { pick, .. } = policy
                && pick > 1
                && !route_refs.is_empty()
            {
                fail(self, "pick > 1 needs every member to have a value".into());
            }
            if rtype == RecordType::CNAME
                && (matches!(policy, Policy::Multivalue { .. })
                    || matches!(policy, Policy::Weighted { pick, .. } if pick > 1))
            {
                fail(
                    self,
                    "a CNAME route must answer with exactly one member".into(),
                );
            }
            self.member_overlaps(&members, &mut |v, msg| fail(v, msg));
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
            refs.push(route_refs);
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
        self.resolve_route_refs(&mut out, refs)
    }
}

pub(super) fn parse_name(s: &str) -> Result<Name, String> {
    let mut n = Name::from_utf8(s).map_err(|e| e.to_string())?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}
