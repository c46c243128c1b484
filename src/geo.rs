//! Client locations for the `geo` and `nearest` policies: a MaxMind-format
//! database (`[geo] database`, read with the maxminddb crate) and/or a
//! CIDR map file (`[geo] networks`) that overrides it.
//!
//! A lookup returns the location and the widest prefix around the address
//! in which every address has that same location (the ECS scope): the
//! database record's network, narrowed where a networks-file entry lies
//! inside it.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

use crate::config::GeoConfig;
use crate::diag::{Diagnostic, Diagnostics};
use crate::route::prefix::{Net, PrefixMap};

/// A client's location, borrowed from the database or the map file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Location<'a> {
    /// Continent code (`EU`).
    pub continent: Option<&'a str>,
    /// ISO 3166-1 country code (`DE`).
    pub country: Option<&'a str>,
    /// ISO 3166-2 subdivision code without the country (`BY`).
    pub subdivision: Option<&'a str>,
    /// Latitude and longitude in degrees.
    pub coords: Option<(f64, f64)>,
}

/// One line of the networks file.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    continent: String,
    country: String,
    subdivision: Option<String>,
    coords: Option<(f64, f64)>,
}

impl Entry {
    fn location(&self) -> Location<'_> {
        Location {
            continent: Some(&self.continent),
            country: Some(&self.country),
            subdivision: self.subdivision.as_deref(),
            coords: self.coords,
        }
    }
}

/// The location sources of `[geo]`.
pub struct Geo {
    db: Option<Reader<Vec<u8>>>,
    networks: PrefixMap<Entry>,
    /// Per networks-file line (in `networks.values()` order): its place,
    /// the index of its distinct (continent, country, subdivision).
    place_of: Box<[u32]>,
    /// Per place: a line that has it.
    places: Box<[u32]>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("db", &self.db.as_ref().map(|d| &d.metadata().database_type))
            .field("networks", &self.networks.values().len())
            .finish()
    }
}

impl Geo {
    fn new(db: Option<Reader<Vec<u8>>>, mut networks: PrefixMap<Entry>) -> Geo {
        networks.freeze();
        let mut seen = std::collections::HashMap::new();
        let mut places = Vec::new();
        let place_of = networks
            .values()
            .iter()
            .enumerate()
            .map(|(line, e)| {
                let key = (
                    e.continent.as_str(),
                    e.country.as_str(),
                    e.subdivision.as_deref(),
                );
                *seen.entry(key).or_insert_with(|| {
                    places.push(line as u32);
                    places.len() as u32 - 1
                })
            })
            .collect();
        Geo {
            db,
            networks,
            place_of,
            places: places.into(),
        }
    }

    /// Opens the database and reads the networks file of `config`.
    /// `config_path` names the config file in diagnostics.
    pub fn load(config: &GeoConfig, config_path: &Path) -> Result<Geo, Diagnostics> {
        let mut errors = Vec::new();
        let db = match &config.database {
            Some((path, line)) => match Reader::open_readfile(path) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(Diagnostic::new(
                        config_path,
                        *line,
                        format!("[geo] database {}: {e}", path.display()),
                    ));
                    None
                }
            },
            None => None,
        };
        let mut networks = PrefixMap::new();
        if let Some((path, line)) = &config.networks {
            match std::fs::read_to_string(path) {
                Ok(text) => match parse_networks(path, &text) {
                    Ok(n) => networks = n,
                    Err(d) => errors.extend(d.0),
                },
                Err(e) => errors.push(Diagnostic::new(
                    config_path,
                    *line,
                    format!("[geo] networks {}: {e}", path.display()),
                )),
            }
        }
        if errors.is_empty() {
            Ok(Geo::new(db, networks))
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// Without a database a location is a place of the networks file (a
    /// distinct continent, country and subdivision): then `f` of each
    /// place's location, in [`Geo::place_of`]'s numbering, and `f` of no
    /// location. None with a database. This lets a route decide once per
    /// place rather than once per query.
    pub fn per_place<R>(&self, f: impl Fn(&Location<'_>) -> R) -> Option<(Box<[R]>, R)> {
        if self.db.is_some() {
            return None;
        }
        let values = self.networks.values();
        let each = self
            .places
            .iter()
            .map(|&l| f(&values[l as usize].location()));
        Some((each.collect(), f(&Location::default())))
    }

    /// Without a database: the place of `addr` (in [`Geo::per_place`]'s
    /// numbering; None: unknown) and the scope, as [`Geo::locate`] gives it.
    pub fn place_of(&self, addr: IpAddr) -> (Option<u32>, u8) {
        let (line, _, scope) = self.networks.find(addr);
        (line.map(|l| self.place_of[l]), scope)
    }

    /// The location of `addr` (None if unknown) and the scope: every
    /// address in `addr/scope` has the same location. `coords` asks for
    /// latitude and longitude, otherwise only the codes are read.
    pub fn locate(&self, addr: IpAddr, coords: bool) -> (Option<Location<'_>>, u8) {
        let m = self.networks.lookup(addr);
        if let Some(e) = m.value {
            return (Some(e.location()), m.scope);
        }
        let Some(db) = &self.db else {
            return (None, m.scope);
        };
        let Ok(r) = db.lookup(addr) else {
            return (None, crate::route::prefix::width(&addr));
        };
        let prefix = r
            .network()
            .ok()
            .filter(|n| n.is_ipv4() == addr.is_ipv4())
            .map_or(crate::route::prefix::width(&addr), |n| n.prefix());
        let scope = prefix.max(m.scope);
        if !r.has_data() {
            return (None, scope);
        }
        use PathElement::{Index, Key};
        let s = |path: &[PathElement<'_>]| r.decode_path::<&str>(path).ok().flatten();
        let loc = if coords {
            let f = |k| {
                r.decode_path::<f64>(&[Key("location"), Key(k)])
                    .ok()
                    .flatten()
            };
            Location {
                coords: f("latitude").zip(f("longitude")),
                ..Location::default()
            }
        } else {
            Location {
                continent: s(&[Key("continent"), Key("code")]),
                country: s(&[Key("country"), Key("iso_code")]),
                subdivision: s(&[Key("subdivisions"), Index(0), Key("iso_code")]),
                coords: None,
            }
        };
        (Some(loc), scope)
    }
}

/// Parses a networks file: `CIDR CONTINENT COUNTRY [SUBDIVISION] [LAT LON]`
/// per line, `#` starts a comment.
fn parse_networks(path: &Path, text: &str) -> Result<PrefixMap<Entry>, Diagnostics> {
    let mut map = PrefixMap::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |m: String| Diagnostic::new(path, i + 1, m);
        let line = line.split('#').next().unwrap_or("");
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        if !(3..=6).contains(&t.len()) {
            errors.push(err(
                "expected CIDR CONTINENT COUNTRY [SUBDIVISION] [LAT LON]".into(),
            ));
            continue;
        }
        let net: Net = match t[0].parse() {
            Ok(n) => n,
            Err(e) => {
                errors.push(err(e.to_string()));
                continue;
            }
        };
        let country = t[2].to_ascii_uppercase();
        let (sub, coords) = match &t[3..] {
            [] => (None, None),
            [s] => (Some(*s), None),
            [lat, lon] => (None, Some((*lat, *lon))),
            [s, lat, lon] => (Some(*s), Some((*lat, *lon))),
            _ => unreachable!(),
        };
        let coords = match coords {
            None => None,
            Some((lat, lon)) => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                (Ok(a), Ok(o)) if (-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&o) => {
                    Some((a, o))
                }
                _ => {
                    errors.push(err(format!(
                        "`{lat} {lon}` is not a latitude and longitude"
                    )));
                    continue;
                }
            },
        };
        // `DE-BY` or `BY`: keep the part after the country.
        let subdivision = sub.map(|s| {
            let s = s.to_ascii_uppercase();
            match s.split_once('-') {
                Some((_, rest)) => rest.to_string(),
                None => s,
            }
        });
        let entry = Entry {
            continent: t[1].to_ascii_uppercase(),
            country,
            subdivision,
            coords,
        };
        if !map.insert(net, entry) {
            errors.push(err(format!("{net} is listed twice")));
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(Diagnostics(errors))
    }
}

// The integration tests' MaxMind DB writer, for the unit tests too.
#[cfg(test)]
#[path = "../tests/common/mmdb.rs"]
mod test_mmdb;

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_mmdb as mmdb;

    #[test]
    fn database_lookup_with_network_scope_and_override() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.mmdb");
        let de = mmdb::Loc {
            continent: "EU",
            country: "DE",
            subdivision: Some("BY"),
            coords: Some((48.1, 11.6)),
        };
        let us = mmdb::Loc {
            continent: "NA",
            country: "US",
            subdivision: None,
            coords: Some((39.0, -77.5)),
        };
        mmdb::write(
            &db,
            &[
                ("198.51.100.0/24", us),
                ("203.0.113.0/25", de),
                ("2001:db8:de::/48", de),
            ],
        );
        let nets = dir.path().join("nets.txt");
        std::fs::write(&nets, "198.51.100.128/26 OC AU\n").unwrap();
        let config = GeoConfig {
            database: Some((db, 1)),
            networks: Some((nets, 2)),
        };
        let geo = Geo::load(&config, Path::new("veer.toml")).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (loc, scope) = geo.locate(ip("203.0.113.7"), false);
        let loc = loc.unwrap();
        assert_eq!(
            (loc.continent, loc.country, loc.subdivision, scope),
            (Some("EU"), Some("DE"), Some("BY"), 25)
        );
        let (loc, _) = geo.locate(ip("203.0.113.7"), true);
        assert_eq!(loc.unwrap().coords, Some((48.1, 11.6)));
        let (loc, scope) = geo.locate(ip("2001:db8:de:1::1"), false);
        assert_eq!((loc.unwrap().country, scope), (Some("DE"), 48));
        // The map file wins inside its network, and narrows the database's
        // scope outside it: 198.51.100.0/24 is US except the /26.
        let (loc, scope) = geo.locate(ip("198.51.100.130"), false);
        assert_eq!((loc.unwrap().country, scope), (Some("AU"), 26));
        let (loc, scope) = geo.locate(ip("198.51.100.1"), false);
        assert_eq!((loc.unwrap().country, scope), (Some("US"), 25));
        let (loc, scope) = geo.locate(ip("203.0.113.200"), false);
        assert_eq!((loc, scope), (None, 25));
    }

    #[test]
    fn networks_file_parses_and_reports_lines() {
        let p = Path::new("nets.txt");
        let m = parse_networks(
            p,
            "# comment\n10.0.0.0/8 EU DE BY 48.1 11.6\n2001:db8::/32 NA US\n",
        )
        .unwrap();
        let geo = Geo::new(None, m);
        let (loc, scope) = geo.locate("10.1.2.3".parse().unwrap(), false);
        let loc = loc.unwrap();
        assert_eq!(
            (loc.continent, loc.country, loc.subdivision, scope),
            (Some("EU"), Some("DE"), Some("BY"), 8)
        );
        let (loc, scope) = geo.locate("192.0.2.1".parse().unwrap(), false);
        assert_eq!((loc, scope), (None, 1));
        let e = parse_networks(p, "10.0.0.1/8 EU DE\nfoo\n").unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert!(e.0[0].to_string().starts_with("nets.txt:1: "), "{e}");
        assert!(e.0[1].to_string().starts_with("nets.txt:2: "), "{e}");
    }

    /// A route decides once per place what it would decide per query from
    /// the location: same place for lines with the same codes, the same
    /// scope as `locate`, None for unknown addresses.
    #[test]
    fn places_stand_for_locations() {
        let p = Path::new("nets.txt");
        let m = parse_networks(
            p,
            "10.0.0.0/8 EU DE BY\n10.1.0.0/16 EU FR\n10.2.0.0/16 EU DE BY 1 2\n\
             10.2.3.0/24 NA US\n2001:db8::/32 EU FR\n",
        )
        .unwrap();
        let geo = Geo::new(None, m);
        let (names, unknown) = geo
            .per_place(|l| format!("{:?}/{:?}/{:?}", l.continent, l.country, l.subdivision))
            .unwrap();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(unknown, "None/None/None");
        let mut rng = fastrand::Rng::with_seed(18);
        for _ in 0..2000 {
            let addr = if rng.bool() {
                IpAddr::from([10, rng.u8(0..4), rng.u8(0..5), rng.u8(..)])
            } else {
                IpAddr::from([0x2001, 0xdb8 + rng.u16(0..2), 0, 0, 0, 0, 0, rng.u16(..)])
            };
            let (loc, scope) = geo.locate(addr, false);
            let (place, place_scope) = geo.place_of(addr);
            assert_eq!(scope, place_scope, "{addr}");
            let name = match place {
                Some(p) => names[p as usize].clone(),
                None => unknown.clone(),
            };
            let loc = loc.unwrap_or_default();
            let want = format!(
                "{:?}/{:?}/{:?}",
                loc.continent, loc.country, loc.subdivision
            );
            assert_eq!(name, want, "{addr}");
        }
    }
}
