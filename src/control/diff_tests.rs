//! Unit tests of [`diff`]: two configs (with their zone files) loaded as
//! a server loads them, compared.

use super::*;

const ZONE: &str = "$ORIGIN t.\n$TTL 3600\n\
@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 900\n\
  IN NS ns\n\
ns IN A 192.0.2.53\n\
www IN A 192.0.2.80\n\
www IN A 192.0.2.81\n\
old IN TXT \"gone soon\"\n";

const CONFIG: &str = r#"
[check.a]
file = "health/a"
[check.b]
file = "health/b"
[check.both]
children = ["a", "b"]
min_healthy = 1

[[route]]
name = "app.t."
type = "A"
policy = "failover"
ttl = 30
members = [
  { tier = 1, value = "192.0.2.1", check = "a" },
  { tier = 2, value = "192.0.2.2", check = "b" },
]

[[route]]
name = "api.t."
type = "A"
policy = "failover"
ttl = 30
members = [ { value = "192.0.2.3", check = "both" } ]
"#;

/// A directory the configs of one test are written to, in turn (the
/// same paths, as an operator edits files in place).
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("temp dir"))
    }

    /// `config` with a `[[zone]]` for `t.` (and `extra` zones' files, by
    /// origin), written and loaded.
    fn load(&self, zone: &str, config: &str, extra: &[(&str, &str)]) -> Base {
        let dir = self.0.path();
        std::fs::write(dir.join("t.zone"), zone).unwrap();
        let mut zones = String::new();
        for (origin, text) in extra {
            let file = format!("{origin}zone");
            std::fs::write(dir.join(&file), text).unwrap();
            zones.push_str(&format!(
                "[[zone]]\norigin = \"{origin}\"\nfile = \"{file}\"\n"
            ));
        }
        let path = dir.join("veer.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n{zones}{config}"
            ),
        )
        .unwrap();
        Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"))
    }
}

#[test]
fn the_same_files_change_nothing() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    let new = dir.load(ZONE, CONFIG, &[]);
    let d = diff(&old, &new);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d.summary(), "no changes");
    assert_eq!(d.details(), "");
}

#[test]
fn zone_records_added_removed_and_changed() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    // www: one address replaced; old TXT gone; new: two records; the SOA
    // serial raised (a changed RRset).
    let zone = ZONE
        .replace("www IN A 192.0.2.81", "www IN A 192.0.2.82")
        .replace("old IN TXT \"gone soon\"\n", "")
        .replace("hostmaster 1 ", "hostmaster 2 ")
        + "new IN A 192.0.2.90\nnew IN A 192.0.2.91\n";
    let new = dir.load(&zone, CONFIG, &[]);
    let d = diff(&old, &new);
    assert_eq!(d.zones.len(), 1, "{d:?}");
    let z = &d.zones[0];
    assert_eq!(z.zone, "t.");
    // + 192.0.2.82, the new SOA, two `new` A; - .81, the old SOA, the TXT.
    assert_eq!((z.records_added, z.records_removed), (4, 3), "{z:?}");
    assert_eq!(z.rrsets_changed, 2, "{z:?}");
    assert!(!z.settings);
    let mut sets = z.sets.clone();
    sets.sort();
    assert_eq!(
        sets,
        ["+ new.t. A", "- old.t. TXT", "~ t. SOA", "~ www.t. A"],
        "{z:?}"
    );
    assert_eq!(d.summary(), "zone t.: +4 -3 records ~2 rrsets");
    assert!(d.routes.is_empty() && d.checks.is_empty() && d.tables.is_empty());
}

#[test]
fn a_ttl_edit_changes_an_rrset_and_no_record() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    let zone = ZONE.replace("ns IN A", "ns 60 IN A");
    let new = dir.load(&zone, CONFIG, &[]);
    let d = diff(&old, &new);
    assert_eq!(d.summary(), "zone t.: ~1 rrset");
    assert_eq!(d.zones[0].sets, ["~ ns.t. A"]);
}

#[test]
fn zones_added_and_removed() {
    let other = "$ORIGIN u.\n$TTL 3600\n@ IN SOA ns hostmaster 1 7200 3600 1209600 900\n  IN NS ns\nns IN A 192.0.2.53\n";
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    let new = dir.load(ZONE, CONFIG, &[("u.", other)]);
    let d = diff(&old, &new);
    assert_eq!(d.zones_added, ["u."]);
    assert!(d.zones.is_empty(), "{d:?}");
    assert_eq!(d.summary(), "zones +1");
    let back = diff(&new, &old);
    assert_eq!(back.zones_removed, ["u."]);
    assert_eq!(back.summary(), "zones -1");
    assert_eq!(back.details(), "zone removed: u.\n");
}

#[test]
fn routes_added_removed_and_redefined() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    // app: a member's address edited; api: gone; web: new. Lines move
    // (a comment on top) without redefining anything.
    let config = format!(
        "# moved down a line\n{}",
        CONFIG
            .replace("192.0.2.2\"", "192.0.2.22\"")
            .replace("name = \"api.t.\"", "name = \"web.t.\"")
    );
    let new = dir.load(ZONE, &config, &[]);
    let d = diff(&old, &new);
    assert_eq!(d.routes.added, ["web.t. A"]);
    assert_eq!(d.routes.removed, ["api.t. A"]);
    assert_eq!(d.routes.redefined, ["app.t. A"]);
    assert!(d.zones.is_empty() && d.checks.is_empty(), "{d:?}");
    assert_eq!(d.summary(), "routes +1 -1 ~1");
    assert_eq!(
        d.details(),
        "route added: web.t. A\nroute removed: api.t. A\nroute redefined: app.t. A\n"
    );
}

#[test]
fn a_route_whose_member_names_another_check_is_redefined() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    let config = CONFIG.replace(
        "{ value = \"192.0.2.3\", check = \"both\" }",
        "{ value = \"192.0.2.3\", check = \"a\" }",
    );
    let new = dir.load(ZONE, &config, &[]);
    let d = diff(&old, &new);
    assert_eq!(d.routes.redefined, ["api.t. A"], "{d:?}");
    assert_eq!(d.summary(), "routes ~1");
}

#[test]
fn checks_added_removed_and_redefined() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    // A new check sorted first moves every index: no one is redefined by
    // that; b's file edited; both's threshold edited.
    let config = CONFIG
        .replace("[check.a]", "[check.aa]\nfile = \"health/aa\"\n[check.a]")
        .replace("health/b", "health/b2")
        .replace("min_healthy = 1", "min_healthy = 2");
    let new = dir.load(ZONE, &config, &[]);
    let d = diff(&old, &new);
    assert_eq!(d.checks.added, ["aa"]);
    assert!(d.checks.removed.is_empty());
    assert_eq!(d.checks.redefined, ["b", "both"]);
    assert!(d.routes.is_empty(), "{d:?}");
    assert_eq!(d.summary(), "checks +1 ~2");
    // And a check removed (with the route member that used it).
    let config = CONFIG
        .replace(
            "[check.both]\nchildren = [\"a\", \"b\"]\nmin_healthy = 1\n",
            "",
        )
        .replace("check = \"both\"", "check = \"a\"");
    let fewer = dir.load(ZONE, &config, &[]);
    let d = diff(&old, &fewer);
    assert_eq!(d.checks.removed, ["both"]);
    assert_eq!(d.summary(), "routes ~1; checks -1");
}

#[test]
fn other_tables_by_name() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    let config = format!("{CONFIG}\n[rrl]\nresponses_per_second = 7\n");
    let new = dir.load(ZONE, &config, &[]);
    let d = diff(&old, &new);
    assert_eq!(d.tables, ["[rrl]"], "{d:?}");
    assert_eq!(d.summary(), "changed [rrl]");
}

#[test]
fn the_diff_serializes_and_reads_back() {
    let dir = Dir::new();
    let old = dir.load(ZONE, CONFIG, &[]);
    let new = dir.load(&format!("{ZONE}x IN A 192.0.2.9\n"), CONFIG, &[]);
    let d = diff(&old, &new);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["zones"][0]["records_added"], 1);
    let back: ReloadDiff = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
    assert_eq!(d.summary(), "zone t.: +1 record");
}
