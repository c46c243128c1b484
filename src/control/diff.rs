//! What a reload changes: the old and the new [`Base`] compared, for one
//! summary line in the log, `/v1/status`'s `last_reload` and `veer diff`.
//!
//! - zones by origin: each zone's static RRsets (route slots are not zone
//!   data) by owner and type: records added and removed (by RDATA), and
//!   RRsets whose records or TTL changed; the `[[zone]]` settings;
//! - routes by (name, type), redefined when anything but a line number
//!   changed (members naming checks and routes by name);
//! - checks by name, redefined when their [`CheckConfig::definition`]
//!   changed (a calculated check's children by name);
//! - every other table of the config, as a whole.
//!
//! A pure function of the two bases: it changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::{RecordSet, RecordType};
use serde::{Deserialize, Serialize};

use super::build::Base;
use crate::config::{CheckConfig, CheckKind, Config, RouteConfig};
use crate::zone::{Node, Records, Zone};

/// Most RRsets named per zone in a diff (the counts are always whole).
pub const MAX_SETS: usize = 50;

/// What a reload changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadDiff {
    /// Zones in the new config only (origins).
    pub zones_added: Vec<String>,
    /// Zones in the old config only.
    pub zones_removed: Vec<String>,
    /// Zones in both whose data or settings changed.
    pub zones: Vec<ZoneDiff>,
    /// Routes, as `NAME TYPE`.
    pub routes: Changes,
    /// Checks, by name.
    pub checks: Changes,
    /// Other tables that changed (`[server]`, `[rrl]`, ...).
    pub tables: Vec<String>,
}

/// One zone's changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneDiff {
    /// The origin.
    pub zone: String,
    /// Records in the new zone only (by owner, type and RDATA).
    pub records_added: usize,
    /// Records in the old zone only.
    pub records_removed: usize,
    /// RRsets in both whose records or TTL changed.
    pub rrsets_changed: usize,
    /// Its `[[zone]]` settings changed (file, transfer, NOTIFY, DNSSEC).
    pub settings: bool,
    /// The RRsets, `+ NAME TYPE` (new), `- NAME TYPE` (gone) or
    /// `~ NAME TYPE` (changed), at most [`MAX_SETS`].
    pub sets: Vec<String>,
    /// RRsets not named in `sets`.
    pub sets_omitted: usize,
}

/// Things added, removed and redefined, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// In the new config only.
    pub added: Vec<String>,
    /// In the old config only.
    pub removed: Vec<String>,
    /// In both, defined differently.
    pub redefined: Vec<String>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.redefined.is_empty()
    }

    /// `+1 -2 ~3`, zero counts left out.
    fn counts(&self) -> String {
        let parts: Vec<String> = [
            ('+', self.added.len()),
            ('-', self.removed.len()),
            ('~', self.redefined.len()),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{c}{n}"))
        .collect();
        parts.join(" ")
    }

    /// Compares two name → definition maps.
    fn of(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Changes {
        let mut c = Changes::default();
        for (k, v) in new {
            match old.get(k) {
                None => c.added.push(k.clone()),
                Some(o) if o != v => c.redefined.push(k.clone()),
                Some(_) => {}
            }
        }
        c.removed = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        c
    }
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("{n} {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

impl ZoneDiff {
    /// `+3 -1 records ~2 rrsets`, zero counts left out (`settings` too).
    fn counts(&self) -> String {
        let mut parts = Vec::new();
        let records: Vec<String> = [('+', self.records_added), ('-', self.records_removed)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| format!("{c}{n}"))
            .collect();
        if !records.is_empty() {
            let n = self.records_added.max(self.records_removed);
            let word = if n == 1 { "record" } else { "records" };
            parts.push(format!("{} {word}", records.join(" ")));
        }
        if self.rrsets_changed > 0 {
            let word = if self.rrsets_changed == 1 {
                "rrset"
            } else {
                "rrsets"
            };
            parts.push(format!("~{} {word}", self.rrsets_changed));
        }
        if self.settings {
            parts.push("settings".into());
        }
        parts.join(" ")
    }
}

impl ReloadDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.zones_added.is_empty()
            && self.zones_removed.is_empty()
            && self.zones.is_empty()
            && self.routes.is_empty()
            && self.checks.is_empty()
            && self.tables.is_empty()
    }

    /// One line: `zone example.test.: +3 -1 records ~2 rrsets; routes +1
    /// ~1; checks -1`, or `no changes`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let mut parts = Vec::new();
        for z in &self.zones {
            parts.push(format!("zone {}: {}", z.zone, z.counts()));
        }
        let zones = Changes {
            added: self.zones_added.clone(),
            removed: self.zones_removed.clone(),
            redefined: Vec::new(),
        };
        if !zones.is_empty() {
            parts.push(format!("zones {}", zones.counts()));
        }
        if !self.routes.is_empty() {
            parts.push(format!("routes {}", self.routes.counts()));
        }
        if !self.checks.is_empty() {
            parts.push(format!("checks {}", self.checks.counts()));
        }
        if !self.tables.is_empty() {
            parts.push(format!("changed {}", self.tables.join(" ")));
        }
        parts.join("; ")
    }

    /// Every change named, one per line (for `veer diff`).
    pub fn details(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let w = &mut out;
        for z in &self.zones_added {
            let _ = writeln!(w, "zone added: {z}");
        }
        for z in &self.zones_removed {
            let _ = writeln!(w, "zone removed: {z}");
        }
        for z in &self.zones {
            let _ = writeln!(w, "zone {}: {}", z.zone, z.counts());
            if z.settings {
                let _ = writeln!(w, "  [[zone]] settings changed");
            }
            for s in &z.sets {
                let _ = writeln!(w, "  {s}");
            }
            if z.sets_omitted > 0 {
                let _ = writeln!(w, "  ... and {} more", plural(z.sets_omitted, "rrset"));
            }
        }
        for (what, c) in [("route", &self.routes), ("check", &self.checks)] {
            for (how, names) in [
                ("added", &c.added),
                ("removed", &c.removed),
                ("redefined", &c.redefined),
            ] {
                for n in names {
                    let _ = writeln!(w, "{what} {how}: {n}");
                }
            }
        }
        for t in &self.tables {
            let _ = writeln!(w, "changed: {t}");
        }
        out
    }
}

/// What changes from `old` to `new`.
pub fn diff(old: &Base, new: &Base) -> ReloadDiff {
    let mut d = ReloadDiff::default();
    for z in &new.zones {
        match old.zones.iter().find(|o| o.origin == z.origin) {
            None => d.zones_added.push(z.origin.to_string()),
            Some(o) => {
                let mut zd = zone_diff(o, z);
                zd.settings =
                    zone_settings(&old.config, &o.origin) != zone_settings(&new.config, &z.origin);
                let changed = zd.records_added + zd.records_removed + zd.rrsets_changed > 0;
                if changed || zd.settings {
                    d.zones.push(zd);
                }
            }
        }
    }
    for o in &old.zones {
        if !new.zones.iter().any(|z| z.origin == o.origin) {
            d.zones_removed.push(o.origin.to_string());
        }
    }
    d.routes = Changes::of(&routes(&old.config), &routes(&new.config));
    d.checks = Changes::of(&checks(&old.config), &checks(&new.config));
    let (o, n) = (tables(&old.config), tables(&new.config));
    d.tables = n
        .iter()
        .zip(&o)
        .filter(|((_, a), (_, b))| a != b)
        .map(|((name, _), _)| name.to_string())
        .collect();
    d
}

/// A name's static RRsets (no NSEC: those follow the data).
fn sets(n: &Node) -> impl Iterator<Item = &Records> {
    n.static_sets()
        .filter(|s| s.record_type() != RecordType::NSEC)
}

/// The static RRset of type `t` at `n`, if any.
fn set_of(n: Option<&Node>, t: RecordType) -> Option<&Records> {
    n?.get_static(t).map(|r| &*r.records)
}

/// [`set_diff`] of two stored sets: one a reload shared, or packed sets
/// of the same bytes, are the same without a look at their records.
fn records_diff(old: &Records, new: &Records) -> (usize, usize, bool) {
    if std::ptr::eq(old, new) || old.same_packed(new) {
        return (0, 0, false);
    }
    set_diff(&old.to_set(), &new.to_set())
}

/// How `old` and `new` (the same owner and type) differ: (records added,
/// records removed, changed). Sets loaded from the same text hold their
/// records in the same order, so most compare without a copy; a changed
/// one is compared as sorted RDATA text.
fn set_diff(old: &RecordSet, new: &RecordSet) -> (usize, usize, bool) {
    // A set a reload shared with the previous load.
    if std::ptr::eq(old, new) {
        return (0, 0, false);
    }
    fn data(s: &RecordSet) -> impl Iterator<Item = &hickory_proto::rr::RData> {
        s.records_without_rrsigs().map(|r| &r.data)
    }
    if old.ttl() == new.ttl() && data(old).eq(data(new)) {
        return (0, 0, false);
    }
    let text = |s: &RecordSet| {
        let mut v: Vec<String> = data(s).map(|d| d.to_string()).collect();
        v.sort();
        v
    };
    let (o, n) = (text(old), text(new));
    if old.ttl() == new.ttl() && o == n {
        return (0, 0, false);
    }
    let (a, r) = multiset_diff(&o, &n);
    (a, r, true)
}

fn zone_diff(old: &Zone, new: &Zone) -> ZoneDiff {
    let mut zd = ZoneDiff {
        zone: new.origin.to_string(),
        ..ZoneDiff::default()
    };
    // Same files, same text: the same data (a cheap way out for big zones).
    if old.content_hash == new.content_hash
        && old.files == new.files
        && old.transferred == new.transferred
        && !old.transferred
        && old.signed.is_none()
        && new.signed.is_none()
    {
        return zd;
    }
    // Walks both zones' own tables (a million-record zone must not be
    // copied into strings to be compared).
    let mut named = Vec::new();
    let mut name = |sign: char, s: &Records, omitted: &mut usize| {
        if named.len() < MAX_SETS {
            named.push(format!(
                "{sign} {} {}",
                s.to_set().name().to_lowercase(),
                s.record_type()
            ));
        } else {
            *omitted += 1;
        }
    };
    let mut omitted = 0;
    let new_sets = new
        .nodes_against(old)
        .flat_map(|(_, n, o)| sets(n).map(move |s| (s, set_of(o, s.record_type()))));
    let (new_soa, old_soa) = (
        Records::full(new.file_soa.clone()),
        Records::full(old.file_soa.clone()),
    );
    let soa = std::iter::once((&new_soa, Some(&old_soa)));
    for (set, before) in new_sets.chain(soa) {
        match before {
            None => {
                zd.records_added += set.records_count();
                name('+', set, &mut omitted);
            }
            Some(before) => {
                let (a, r, changed) = records_diff(before, set);
                if changed {
                    zd.records_added += a;
                    zd.records_removed += r;
                    zd.rrsets_changed += 1;
                    name('~', set, &mut omitted);
                }
            }
        }
    }
    for (set, n) in old
        .nodes_against(new)
        .flat_map(|(_, o, n)| sets(o).map(move |s| (s, n)))
    {
        if set_of(n, set.record_type()).is_none() {
            zd.records_removed += set.records_count();
            name('-', set, &mut omitted);
        }
    }
    zd.sets_omitted = omitted;
    zd.sets = named;
    zd
}

/// (in `new` only, in `old` only) of two sorted lists.
fn multiset_diff(old: &[String], new: &[String]) -> (usize, usize) {
    let (mut i, mut j, mut added, mut removed) = (0, 0, 0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed += 1;
                i += 1;
            }
            (Some(_), None) => {
                removed += 1;
                i += 1;
            }
            _ => {
                added += 1;
                j += 1;
            }
        }
    }
    (added, removed)
}

/// A zone's `[[zone]]` settings, without line numbers.
fn zone_settings(config: &Config, origin: &hickory_proto::rr::Name) -> Option<String> {
    let z = config.zones.iter().find(|z| &z.origin == origin)?;
    Some(format!(
        "{:?} {:?} {:?} {:?} {}",
        z.file, z.primaries, z.allow_transfer, z.notify, z.dnssec
    ))
}

/// Each route by `NAME TYPE`: its definition, without line numbers and
/// with the checks and routes its members name by name.
fn routes(config: &Config) -> BTreeMap<String, String> {
    config
        .routes
        .iter()
        .map(|r| {
            let key = format!("{} {}", r.name.to_lowercase(), r.rtype);
            (key, route_definition(config, r))
        })
        .collect()
}

fn route_definition(config: &Config, r: &RouteConfig) -> String {
    let mut r = r.clone();
    r.line = 0;
    r.zone = 0;
    let mut names = Vec::new();
    for m in &mut r.members {
        m.line = 0;
        names.push(m.check.map(|c| config.checks[c].name.clone()));
        m.check = None;
        m.route = None;
    }
    format!("{r:?} checks={names:?}")
}

/// Each check by name: its definition (a calculated check's children by
/// name, not by their place in the sorted list).
fn checks(config: &Config) -> BTreeMap<String, String> {
    config
        .checks
        .iter()
        .map(|c| (c.name.clone(), check_definition(config, c)))
        .collect()
}

fn check_definition(config: &Config, c: &CheckConfig) -> String {
    match &c.kind {
        CheckKind::Calculated {
            children,
            min_healthy,
        } => {
            let names: BTreeSet<&str> = children
                .iter()
                .map(|&i| config.checks[i].name.as_str())
                .collect();
            format!("calculated children={names:?} min_healthy={min_healthy}")
        }
        _ => c.definition(),
    }
}

/// The other tables, each as text (compared only: secrets never leave).
fn tables(c: &Config) -> Vec<(&'static str, String)> {
    let fleet = c.fleet.clone().map(|mut f| {
        f.warnings.clear();
        f
    });
    let geo = (
        c.geo.database.as_ref().map(|d| &d.0),
        c.geo.networks.as_ref().map(|d| &d.0),
    );
    vec![
        ("[server]", format!("{:?}", c.server)),
        ("[health]", format!("{:?}", c.health)),
        ("[geo]", format!("{geo:?}")),
        ("[api]", format!("{:?}", c.api)),
        ("[[webhook]]", format!("{:?}", c.webhooks)),
        ("[rrl]", format!("{:?}", c.rrl)),
        ("[cookies]", format!("{:?}", c.cookies)),
        ("[key]", format!("{:?}", c.keys)),
        ("[transfer]", format!("{:?}", c.transfer)),
        ("[fleet]", format!("{fleet:?}")),
        ("[dnssec]", format!("{:?}", c.dnssec)),
    ]
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;

#[cfg(test)]
mod shared_sets_tests {
    use super::*;
    use hickory_proto::rr::Name;

    /// The reload summary of a zone that shares RRsets with the previous
    /// load is the summary of a fresh load of the same file.
    #[test]
    fn sharing_does_not_change_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        let origin = Name::from_ascii("t.").unwrap();
        let head = "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
        let mut rng = fastrand::Rng::with_seed(11);
        let names = ["a", "b", "c.sub", "_x", "d"];
        let line = |rng: &mut fastrand::Rng| {
            let n = names[rng.usize(..names.len())];
            match rng.usize(..3) {
                0 => format!(
                    "{n} {} A 192.0.2.{}",
                    [60, 300][rng.usize(..2)],
                    rng.u8(1..4)
                ),
                1 => format!("{n} TXT \"{}\"", ["x", "y"][rng.usize(..2)]),
                _ => format!("{n} MX 10 {}", ["_m.e.", "_M.e.", "m"][rng.usize(..3)]),
            }
        };
        let mut lines: Vec<String> = (0..8).map(|_| line(&mut rng)).collect();
        std::fs::write(&path, format!("{head}{}\n", lines.join("\n"))).unwrap();
        let mut prev = Zone::load(&origin, &path).unwrap();
        for step in 0..300 {
            match rng.usize(..3) {
                0 if !lines.is_empty() => {
                    lines.remove(rng.usize(..lines.len()));
                }
                1 if !lines.is_empty() => {
                    let i = rng.usize(..lines.len());
                    lines[i] = line(&mut rng);
                }
                _ => {
                    let at = rng.usize(..=lines.len());
                    lines.insert(at, line(&mut rng));
                }
            }
            std::fs::write(&path, format!("{head}{}\n", lines.join("\n"))).unwrap();
            let new = Zone::load_after(&origin, &path, Some(&prev)).unwrap();
            let fresh = Zone::load(&origin, &path).unwrap();
            assert_eq!(
                zone_diff(&prev, &new),
                zone_diff(&prev, &fresh),
                "step {step}"
            );
            prev = new;
        }
    }
}
