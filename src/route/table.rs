//! The client half of the policies: per-route tables built once per
//! decision, and [`Table::pick`], which chooses a member for one client
//! without locks and without allocating. It also returns the ECS scope:
//! the prefix length of the widest block around the client in which every
//! client gets the same choice (0 when the choice does not depend on the
//! client at all).

use std::net::IpAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::prefix::{PrefixMap, mask};
use super::{Client, Trace};
pub use crate::config::MAX_PICK;
use crate::config::{Area, Place};
use crate::geo::{Geo, Location};
use crate::store::Dyn;

/// Sticky weighted routes hash the client's /24 (IPv4) or /56 (IPv6).
pub const STICKY_V4: u8 = 24;
/// See [`STICKY_V4`].
pub const STICKY_V6: u8 = 56;

/// A route's member table for one decision.
#[derive(Debug)]
pub struct Table {
    /// `NAME TYPE policy`, for `veer explain`.
    pub route: String,
    /// What each entry answers: a member's records or the slot of the
    /// route it names.
    pub targets: Box<[Arc<Dyn>]>,
    /// Each entry's label (the member's value or `route NAME`).
    pub labels: Box<[String]>,
    /// How an entry is chosen.
    pub kind: Kind,
    /// How many entries answer together (weighted `pick`; 1 otherwise).
    pub pick: usize,
    /// What a client without an entry gets (NODATA with the route's TTL).
    pub no_data: Dyn,
}

/// A geo route's entry per place of the networks file, and for clients
/// in none.
pub type ByPlace = (Box<[Option<u32>]>, Option<u32>);

/// How a [`Table`] chooses.
#[derive(Debug, Clone)]
pub enum Kind {
    /// By chance, in proportion to weight: `cumulative[i]` is the sum of
    /// the weights of entries `0..=i`.
    Random {
        /// Running sums of the weights.
        cumulative: Box<[u32]>,
    },
    /// Rendezvous (highest random weight) hashing of the client subnet:
    /// a client keeps its entry while that entry is eligible, and only the
    /// clients of a removed entry move.
    Sticky {
        /// Per entry: a seed from the member's value, and its weight.
        keys: Box<[(u64, f64)]>,
    },
    /// Longest prefix match of the client address.
    Cidr {
        /// Network → entry.
        map: PrefixMap<u32>,
        /// The entry for clients in no listed network.
        default: Option<u32>,
    },
    /// The client's location: subdivision, then country, then continent,
    /// then default.
    Geo {
        /// The location sources.
        geo: Arc<Geo>,
        /// (area, entry), most specific areas first.
        areas: Box<[(Area, u32)]>,
        /// Without a database, the entry of each of `geo`'s places and of
        /// an unknown location, decided when the table is built.
        by_place: Option<ByPlace>,
    },
    /// The nearest entry to the client's coordinates.
    Nearest {
        /// The location sources.
        geo: Arc<Geo>,
        /// Per entry.
        places: Box<[Place]>,
    },
}

/// The first of `areas` (most specific first) that holds `loc`.
pub fn area_hit<'a>(areas: &'a [(Area, u32)], loc: &Location<'_>) -> Option<&'a (Area, u32)> {
    areas.iter().find(|(a, _)| match a {
        Area::Subdivision(c, s) => {
            loc.country == Some(c.as_str()) && loc.subdivision == Some(s.as_str())
        }
        Area::Country(c) => loc.country == Some(c.as_str()),
        Area::Continent(c) => loc.continent == Some(c.as_str()),
        Area::Default => true,
    })
}

impl Table {
    /// The entry for `client` and the ECS scope of that choice.
    pub fn pick<'a>(&'a self, client: &Client, trace: &mut impl Trace) -> (&'a Dyn, u8) {
        let (entry, scope) = match &self.kind {
            Kind::Random { cumulative } => {
                let total = cumulative.last().copied().unwrap_or(0);
                let x = fastrand::u32(..total.max(1));
                let i = cumulative.partition_point(|&c| c <= x);
                trace.step(|| {
                    format!(
                        "{}: weighted by chance ({}): {}",
                        self.route,
                        self.weights(cumulative),
                        self.labels[i]
                    )
                });
                (Some(i as u32), 0)
            }
            Kind::Sticky { keys } => {
                let (subnet, scope, h) = sticky_subnet(client);
                let mut best = (0, f64::NEG_INFINITY);
                for (i, &(seed, weight)) in keys.iter().enumerate() {
                    let score = sticky_score(h, seed, weight);
                    if score > best.1 {
                        best = (i, score);
                    }
                }
                trace.step(|| {
                    format!(
                        "{}: sticky by client subnet {subnet}/{scope}: {}",
                        self.route, self.labels[best.0]
                    )
                });
                (Some(best.0 as u32), scope)
            }
            Kind::Cidr { map, default } => {
                let m = map.lookup(client.addr);
                let entry = m.value.copied().or(*default);
                trace.step(|| {
                    let what = match m.value {
                        Some(_) => format!("longest match /{}", m.len),
                        None => "no network matches, default".into(),
                    };
                    format!(
                        "{}: client {client}: {what}: {} (same answer for all of /{})",
                        self.route,
                        self.label(entry),
                        m.scope
                    )
                });
                (entry, m.scope)
            }
            Kind::Geo {
                geo,
                areas,
                by_place,
            } => {
                let (entry, scope) = match by_place {
                    Some((each, unknown)) => {
                        let (place, scope) = geo.place_of(client.addr);
                        (place.map_or(*unknown, |p| each[p as usize]), scope)
                    }
                    None => {
                        let (loc, scope) = geo.locate(client.addr, false);
                        (
                            area_hit(areas, &loc.unwrap_or_default()).map(|h| h.1),
                            scope,
                        )
                    }
                };
                trace.step(|| {
                    let loc = geo.locate(client.addr, false).0.unwrap_or_default();
                    format!(
                        "{}: client {client} located at continent {} country {} subdivision {} (same location for all of /{scope}): {}",
                        self.route,
                        loc.continent.unwrap_or("-"),
                        loc.country.unwrap_or("-"),
                        loc.subdivision.unwrap_or("-"),
                        match area_hit(areas, &loc) {
                            Some((a, i)) => format!("{a} -> {}", self.labels[*i as usize]),
                            None => "no area matches and no default: NODATA".into(),
                        }
                    )
                });
                (entry, scope)
            }
            Kind::Nearest { geo, places } => {
                let (loc, scope) = geo.locate(client.addr, true);
                let coords = loc.and_then(|l| l.coords);
                let entry = match coords {
                    Some((lat, lon)) => {
                        let mut best = (0, f64::INFINITY);
                        for (i, p) in places.iter().enumerate() {
                            let d = distance_km(lat, lon, p.lat, p.lon) * (1.0 - p.bias / 100.0);
                            if d < best.1 {
                                best = (i, d);
                            }
                        }
                        best.0
                    }
                    None => 0,
                };
                trace.step(|| match coords {
                    Some((lat, lon)) => format!(
                        "{}: client {client} at {lat:.2},{lon:.2} (same location for all of /{scope}): nearest {} ({:.0} km)",
                        self.route,
                        self.labels[entry],
                        distance_km(lat, lon, places[entry].lat, places[entry].lon)
                    ),
                    None => format!(
                        "{}: client {client} has no known coordinates (for all of /{scope}): first eligible member {}",
                        self.route, self.labels[entry]
                    ),
                });
                (Some(entry as u32), scope)
            }
        };
        match entry {
            Some(i) => (&self.targets[i as usize], scope),
            None => (&self.no_data, scope),
        }
    }

    /// `pick` distinct entries for `client` (weighted routes): by chance,
    /// weighted sampling without replacement, so every pick follows the
    /// weights; sticky, the `pick` highest rendezvous scores. No lock, no
    /// allocation (`pick` is at most [`MAX_PICK`]).
    pub fn pick_many<'a>(
        &'a self,
        client: &Client,
        trace: &mut impl Trace,
    ) -> (SmallVec<[&'a Dyn; MAX_PICK]>, u8) {
        let k = self.pick.min(self.targets.len()).min(MAX_PICK);
        let mut chosen: SmallVec<[usize; MAX_PICK]> = SmallVec::new();
        let scope = match &self.kind {
            Kind::Random { cumulative } => {
                let weight = |i: usize| cumulative[i] - if i == 0 { 0 } else { cumulative[i - 1] };
                let mut left = cumulative.last().copied().unwrap_or(0);
                while chosen.len() < k && left > 0 {
                    let mut x = fastrand::u32(..left);
                    for i in 0..cumulative.len() {
                        if chosen.contains(&i) {
                            continue;
                        }
                        if x < weight(i) {
                            chosen.push(i);
                            left -= weight(i);
                            break;
                        }
                        x -= weight(i);
                    }
                }
                0
            }
            Kind::Sticky { keys } => {
                let (_, scope, h) = sticky_subnet(client);
                // The k best (index, score), best first.
                let mut best: SmallVec<[(usize, f64); MAX_PICK]> = SmallVec::new();
                for (i, &(seed, weight)) in keys.iter().enumerate() {
                    let score = sticky_score(h, seed, weight);
                    let at = best.partition_point(|&(_, s)| s >= score);
                    if at < k {
                        if best.len() == k {
                            best.pop();
                        }
                        best.insert(at, (i, score));
                    }
                }
                chosen.extend(best.iter().map(|&(i, _)| i));
                scope
            }
            _ => {
                let (d, scope) = self.pick(client, trace);
                return (smallvec::smallvec![d], scope);
            }
        };
        trace.step(|| {
            let how = match self.kind {
                Kind::Sticky { .. } => "sticky by client subnet",
                _ => "weighted by chance, without replacement",
            };
            let picked: Vec<&str> = chosen.iter().map(|&i| self.labels[i].as_str()).collect();
            format!("{}: pick {k} {how}: {}", self.route, picked.join(", "))
        });
        (chosen.iter().map(|&i| &*self.targets[i]).collect(), scope)
    }

    fn label(&self, entry: Option<u32>) -> &str {
        entry.map_or("NODATA", |i| &self.labels[i as usize])
    }

    fn weights(&self, cumulative: &[u32]) -> String {
        let mut prev = 0;
        let mut out = Vec::new();
        for (l, &c) in self.labels.iter().zip(cumulative) {
            out.push(format!("{l}={}", c - prev));
            prev = c;
        }
        out.join(" ")
    }
}

/// The sticky hash block around `client` (its /24 or /56), its prefix
/// length, and the block's hash.
fn sticky_subnet(client: &Client) -> (IpAddr, u8, u64) {
    let (subnet, scope) = match client.addr {
        IpAddr::V4(_) => (mask(client.addr, STICKY_V4), STICKY_V4),
        IpAddr::V6(_) => (mask(client.addr, STICKY_V6), STICKY_V6),
    };
    (subnet, scope, hash_addr(subnet))
}

/// An entry's rendezvous score for the block hashed to `h`: with u in
/// (0, 1), ln(u) / weight is largest for the winner (Efraimidis–Spirakis),
/// so each entry wins in proportion to its weight, and the k highest are a
/// weighted sample of k without replacement.
fn sticky_score(h: u64, seed: u64, weight: f64) -> f64 {
    let u = ((mix(h ^ seed) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    u.ln() / weight
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().min(1.0).asin()
}

/// A stable 64-bit seed for a member (from its value), so stickiness
/// survives config reordering.
pub fn seed(label: &str) -> u64 {
    // FNV-1a, then mixed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    mix(h)
}

fn hash_addr(a: IpAddr) -> u64 {
    let bits = match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) | 1 << 127,
        IpAddr::V6(v6) => u128::from(v6),
    };
    mix((bits as u64) ^ mix((bits >> 64) as u64))
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(kind: Kind, n: usize) -> Table {
        Table {
            route: "t. A weighted".into(),
            targets: (0..n).map(|_| Arc::new(Dyn::NoData(60))).collect(),
            labels: (0..n).map(|i| format!("m{i}")).collect(),
            kind,
            pick: 1,
            no_data: Dyn::NoData(60),
        }
    }

    /// Which entry `pick` chose (targets are told apart by address).
    fn entry(t: &Table, c: &Client) -> (usize, u8) {
        let (d, scope) = t.pick(c, &mut ());
        let i = t
            .targets
            .iter()
            .position(|x| std::ptr::eq(&**x, d))
            .unwrap();
        (i, scope)
    }

    fn sticky(members: &[(&str, f64)]) -> Table {
        let keys = members.iter().map(|&(l, w)| (seed(l), w)).collect();
        table(Kind::Sticky { keys }, members.len())
    }

    fn client(i: u32) -> Client {
        Client {
            addr: IpAddr::V4((0x0a00_0000 | (i << 8)).into()),
            prefix: 24,
        }
    }

    #[test]
    fn sticky_moves_only_the_clients_of_a_removed_member() {
        let all = sticky(&[("a", 2.0), ("b", 1.0), ("c", 1.0)]);
        let without_c = sticky(&[("a", 2.0), ("b", 1.0)]);
        let mut counts = [0; 3];
        for i in 0..4000 {
            let (e, scope) = entry(&all, &client(i));
            assert_eq!(scope, STICKY_V4);
            counts[e] += 1;
            // Same /24, other host bits: same answer.
            let mut c = client(i);
            c.addr = match c.addr {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) | 0x7f).into()),
                v6 => v6,
            };
            assert_eq!(entry(&all, &c).0, e);
            let (after, _) = entry(&without_c, &client(i));
            if e != 2 {
                assert_eq!(after, e, "client {i} moved from a healthy member");
            }
        }
        // Weights 2:1:1 over 4000 clients (loose: hashing, not chance).
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
        assert!((800..1200).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn random_follows_cumulative_weights() {
        let t = table(
            Kind::Random {
                cumulative: vec![3, 4].into(),
            },
            2,
        );
        let mut heavy = 0;
        for i in 0..4000 {
            let (e, scope) = entry(&t, &client(i));
            assert_eq!(scope, 0);
            heavy += usize::from(e == 0);
        }
        // Hoeffding, as in tests/routing.rs: 3000 +- 171 fails < 1e-6.
        assert!((3000 - 171..=3000 + 171).contains(&heavy), "{heavy}");
    }

    #[test]
    fn cidr_default_carries_the_scope_of_its_block() {
        let mut map = PrefixMap::new();
        map.insert("10.0.0.0/8".parse().unwrap(), 0);
        let t = table(
            Kind::Cidr {
                map,
                default: Some(1),
            },
            2,
        );
        let c = |s: &str, p| Client {
            addr: s.parse().unwrap(),
            prefix: p,
        };
        assert_eq!(entry(&t, &c("10.9.0.0", 16)), (0, 8));
        assert_eq!(entry(&t, &c("11.0.0.0", 16)), (1, 8));
        assert_eq!(entry(&t, &c("2001:db8::", 48)), (1, 0));
    }

    #[test]
    fn nearest_with_bias() {
        let dir = tempfile::tempdir().unwrap();
        let nets = dir.path().join("nets.txt");
        std::fs::write(&nets, "10.0.0.0/8 EU DE BY 48.1 11.6\n").unwrap();
        let config = crate::config::GeoConfig {
            database: None,
            networks: Some((nets, 1)),
        };
        let geo = Arc::new(Geo::load(&config, std::path::Path::new("veer.toml")).unwrap());
        let fra = Place {
            lat: 50.11,
            lon: 8.68,
            bias: 0.0,
        };
        let iad = |bias| Place {
            lat: 39.04,
            lon: -77.49,
            bias,
        };
        let t = |places: Vec<Place>| {
            table(
                Kind::Nearest {
                    geo: geo.clone(),
                    places: places.into(),
                },
                2,
            )
        };
        // Munich is ~300 km from Frankfurt and ~6,900 km from Ashburn.
        assert_eq!(entry(&t(vec![fra, iad(0.0)]), &client(1)), (0, 8));
        // A 99% bias shrinks Ashburn's distance to ~69 km.
        assert_eq!(entry(&t(vec![fra, iad(99.0)]), &client(1)), (1, 8));
        // No coordinates: the first entry, for the whole block without any.
        let far = Client {
            addr: "192.0.2.1".parse().unwrap(),
            prefix: 32,
        };
        assert_eq!(entry(&t(vec![fra, iad(0.0)]), &far), (0, 1));
    }

    #[test]
    fn haversine_frankfurt_to_ashburn() {
        let d = distance_km(50.11, 8.68, 39.04, -77.49);
        assert!((d - 6560.0).abs() < 50.0, "{d}");
    }
}
