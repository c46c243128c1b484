//! `veer check --config FILE`: validates the config and every zone without
//! binding sockets; one summary line and exit 0, or every error as
//! `file:line: message` on stderr and exit 1.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tempfile::TempDir;

/// What `veer check` did.
struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// Asserts exit 1, nothing on stdout, and that stderr has a line
    /// starting with `file:line: ` and containing every one of `words`.
    #[track_caller]
    fn assert_error(&self, file: &Path, line: usize, words: &[&str]) {
        assert_eq!(self.code, Some(1), "exit code; stderr:\n{}", self.stderr);
        assert!(
            self.stdout.trim().is_empty(),
            "stdout on error:\n{}",
            self.stdout
        );
        let prefix = format!("{}:{line}: ", file.display());
        assert!(
            self.stderr
                .lines()
                .any(|l| l.contains(&prefix) && words.iter().all(|w| l.contains(w))),
            "no line with `{prefix}` and {words:?} in stderr:\n{}",
            self.stderr
        );
    }

    /// Asserts exit 0 and exactly one stdout line, starting with
    /// `config: ok: counts` (later counts, e.g. of checks, may follow).
    #[track_caller]
    fn assert_summary(&self, config: &Path, counts: &str) {
        assert_eq!(self.code, Some(0), "exit code; stderr:\n{}", self.stderr);
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "stdout:\n{}", self.stdout);
        let want = format!("{}: ok: {counts}", config.display());
        assert!(
            lines[0] == want || lines[0].starts_with(&format!("{want},")),
            "summary `{}` is not `{want}[, ...]`",
            lines[0]
        );
    }

    /// Lines of the `file:LINE: ` diagnostics for `file` on stderr.
    fn errors_in(&self, file: &Path) -> Vec<usize> {
        let prefix = format!("{}:", file.display());
        self.stderr
            .lines()
            .filter_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
            .filter_map(|rest| rest.split_once(": ")?.0.parse().ok())
            .collect()
    }
}

fn check(config: &Path) -> Checked {
    let out = run_veer(
        &["check", "--config", config.to_str().unwrap()],
        Duration::from_secs(10),
    );
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const CONFIG: &str = r#"[server]
listen = ["127.0.0.1:0"]

[[zone]]
origin = "a.test."
file = "zones/a.test.zone"
"#;

/// Line 1 .. 7 of a valid zone for a.test. (5 records: SOA, NS, 3 A).
const ZONE_A: &str = "$ORIGIN a.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 60
     IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   192.0.2.2
mail IN A   192.0.2.3
";

/// A temp dir with `veer.toml` = `config` and `zones/a.test.zone` = `zone`;
/// returns the dir, the config path and the zone path.
fn setup(config: &str, zone: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "veer.toml", config);
    let z = write_file(dir.path(), "zones/a.test.zone", zone);
    (dir, cfg, z)
}

#[test]
fn valid_config_prints_one_summary_line() {
    let config =
        format!("{CONFIG}\n[[zone]]\norigin = \"b.test.\"\nfile = \"zones/b.test.zone\"\n");
    let (dir, cfg, _) = setup(&config, ZONE_A);
    write_file(
        dir.path(),
        "zones/b.test.zone",
        "$TTL 60\nb.test. IN SOA ns.a.test. h.a.test. 1 2 3 4 5\nb.test. IN NS ns.a.test.\nx.b.test. IN TXT \"x\"\n",
    );
    let c = check(&cfg);
    c.assert_summary(&cfg, "2 zones, 8 records");
}

#[test]
fn check_accepts_the_test_fixture() {
    let cfg = fixture_dir("auth").join("veer.toml");
    let c = check(&cfg);
    c.assert_summary(&cfg, "2 zones, 55 records");
}

/// The bundled example (README command one) stays valid.
#[test]
fn check_accepts_the_bundled_example() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/veer.toml");
    let c = check(&cfg);
    c.assert_summary(&cfg, "1 zones, 24 records");
    assert!(c.stdout.contains("2 checks, 1 routes"), "{}", c.stdout);
}

#[test]
fn check_binds_no_sockets() {
    // The configured address is in use (UDP and TCP): serve could not start,
    // check does not care.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let _tcp = std::net::TcpListener::bind(("127.0.0.1", port));
    let config = CONFIG.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    let c = check(&cfg);
    c.assert_summary(&cfg, "1 zones, 5 records");
}

#[test]
fn syntax_error_names_file_and_line() {
    let zone = ZONE_A.replace("192.0.2.2", "192.0.2.300");
    let (_dir, cfg, z) = setup(CONFIG, &zone);
    let c = check(&cfg);
    c.assert_error(&z, 6, &["A"]);
    assert_eq!(c.errors_in(&z), [6], "stderr:\n{}", c.stderr);
    assert!(
        c.stderr.contains("1 error(s)"),
        "summary missing:\n{}",
        c.stderr
    );
}

#[test]
fn every_error_in_a_file_is_reported() {
    let zone = "$ORIGIN a.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 60
bad1 IN A   1.2.3
     IN NS  ns1.a.test.
bad2 IN BOGUS foo
ok   IN A   192.0.2.1
bad3 99999999999 IN A 192.0.2.2
bad4 IN MX  notapref mail
";
    let (_dir, cfg, z) = setup(CONFIG, zone);
    let c = check(&cfg);
    c.assert_error(&z, 4, &["bad A record"]);
    c.assert_error(&z, 6, &["BOGUS"]);
    c.assert_error(&z, 8, &["TTL"]);
    c.assert_error(&z, 9, &["MX"]);
    assert_eq!(c.errors_in(&z), [4, 6, 8, 9], "stderr:\n{}", c.stderr);
    assert!(c.stderr.contains("4 error(s)"), "{}", c.stderr);
}

#[test]
fn errors_in_several_zone_files_are_all_reported() {
    let config =
        format!("{CONFIG}\n[[zone]]\norigin = \"b.test.\"\nfile = \"zones/b.test.zone\"\n");
    let (dir, cfg, z) = setup(&config, &ZONE_A.replace("192.0.2.3", "nonsense"));
    let b = write_file(
        dir.path(),
        "zones/b.test.zone",
        "$TTL 60\n@ IN SOA ns.a.test. h.a.test. 1 2 3 4 5\nx IN AAAA 192.0.2.1\n",
    );
    let c = check(&cfg);
    c.assert_error(&z, 7, &["A"]);
    c.assert_error(&b, 3, &["AAAA"]);
}

#[test]
fn error_in_an_included_file_names_that_file() {
    let zone = format!("{ZONE_A}$INCLUDE inc.zone\nafter IN A 192.0.2.9\n");
    let (dir, cfg, z) = setup(CONFIG, &zone);
    let inc = write_file(
        dir.path(),
        "zones/inc.zone",
        "good IN A 192.0.2.7\nbroken IN A 192.0.2.256\n",
    );
    let c = check(&cfg);
    c.assert_error(&inc, 2, &["A"]);
    assert!(c.errors_in(&z).is_empty(), "stderr:\n{}", c.stderr);
}

#[test]
fn zone_without_soa_is_rejected() {
    let zone = "$ORIGIN a.test.\n$TTL 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n";
    let (_dir, cfg, z) = setup(CONFIG, zone);
    check(&cfg).assert_error(&z, 1, &["a.test.", "SOA"]);
}

#[test]
fn record_outside_the_origin_is_rejected() {
    let zone = format!("{ZONE_A}www.other.test. IN A 192.0.2.9\n");
    let (_dir, cfg, z) = setup(CONFIG, &zone);
    let c = check(&cfg);
    c.assert_error(&z, 8, &["www.other.test.", "outside"]);
    assert_eq!(c.errors_in(&z), [8], "stderr:\n{}", c.stderr);
}

#[test]
fn cname_beside_other_data_is_reported_at_the_later_line() {
    // Data first, CNAME later (line 8).
    let zone = format!("{ZONE_A}www  IN CNAME mail\n");
    let (_dir, cfg, z) = setup(CONFIG, &zone);
    let c = check(&cfg);
    c.assert_error(&z, 8, &["www.a.test.", "CNAME"]);
    assert_eq!(c.errors_in(&z), [8], "stderr:\n{}", c.stderr);

    // CNAME first (line 8), data later (line 10).
    let zone = format!("{ZONE_A}alias IN CNAME www\nx IN A 192.0.2.8\nalias IN TXT \"x\"\n");
    let (_dir, cfg, z) = setup(CONFIG, &zone);
    let c = check(&cfg);
    c.assert_error(&z, 10, &["alias.a.test.", "CNAME"]);
    assert_eq!(c.errors_in(&z), [10], "stderr:\n{}", c.stderr);
}

#[test]
fn duplicate_zone_in_config_names_the_config_line() {
    let config = format!("{CONFIG}\n[[zone]]\norigin = \"A.Test\"\nfile = \"zones/a.test.zone\"\n");
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    // Lines: 4 [[zone]], 5 origin, ..., 8 [[zone]], 9 origin.
    check(&cfg).assert_error(&cfg, 9, &["a.test.", "twice"]);
}

#[test]
fn unknown_config_key_names_its_line() {
    let config = CONFIG.replace("listen = [", "lisen = 3\nlisten = [");
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    check(&cfg).assert_error(&cfg, 2, &["lisen"]);

    let config = CONFIG.replace("file = ", "weight = 3\nfile = ");
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    check(&cfg).assert_error(&cfg, 6, &["weight"]);
}

#[test]
fn missing_zone_file_is_reported_at_the_config_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "veer.toml", CONFIG);
    let line = CONFIG
        .lines()
        .position(|l| l.starts_with("file ="))
        .unwrap()
        + 1;
    check(&cfg).assert_error(&cfg, line, &["cannot read zone file", "a.test.zone"]);
}

#[test]
fn every_mistake_of_every_stage_is_reported_at_once() {
    // Config errors used to stop before zones, [geo] files and route
    // collisions were looked at, and the first unknown key hid the rest.
    let config = format!(
        "{CONFIG}
[[zone]]
origin = \"missing.test.\"
file = \"zones/missing.zone\"

[api]
listen = \"127.0.0.1:0\"
token_file = \"nope.token\"

[geo]
database = \"nope.mmdb\"

[healthh]
guard_share = 0.5

[[route]]
name = \"www.a.test.\"
type = \"A\"
policy = \"failover\"
members = [ {{ value = \"192.0.2.9\" }} ]

[[route]]
name = \"w.a.test.\"
type = \"A\"
policy = \"weighted\"
members = [ {{ value = \"192.0.2.1\", weight = 300 }}, {{ value = \"192.0.2.2\", tier = 2 }} ]

[[route]]
name = \"x.other.test.\"
type = \"A\"
policy = \"failover\"
members = [ {{ value = \"192.0.2.300\", tierr = 1 }} ]
"
    );
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    let line = |needle: &str| config.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let c = check(&cfg);
    c.assert_error(&cfg, line("zones/missing.zone"), &["cannot read zone file"]);
    c.assert_error(&cfg, line("nope.token"), &["token_file"]);
    c.assert_error(&cfg, line("nope.mmdb"), &["nope.mmdb"]);
    c.assert_error(&cfg, line("[healthh]"), &["unknown key `healthh`"]);
    c.assert_error(&cfg, line("tierr"), &["unknown key `tierr`"]);
    // Route errors point at the route's [[route]] line.
    c.assert_error(&cfg, line("name = \"www.a.test.") - 1, &["collides"]);
    c.assert_error(&cfg, line("weight = 300"), &["weight 300"]);
    c.assert_error(&cfg, line("weight = 300"), &["tier only applies"]);
    c.assert_error(
        &cfg,
        line("name = \"x.other") - 1,
        &["not inside any configured zone"],
    );
    assert!(c.stderr.contains("9 error(s)"), "{}", c.stderr);
}

#[test]
fn missing_config_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("nope.toml");
    check(&cfg).assert_error(&cfg, 1, &["cannot read"]);
}

#[test]
fn absurd_duration_is_an_error_at_its_line() {
    // Was a panic in Duration::from_secs_f64 (or a dead probe task).
    let config = format!(
        "{CONFIG}\n[check.web]\ntcp = \"127.0.0.1:9\"\ninterval = \"99999999999999999999999s\"\n"
    );
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    let line = config
        .lines()
        .position(|l| l.starts_with("[check.web]"))
        .unwrap()
        + 1;
    check(&cfg).assert_error(&cfg, line, &["too long"]);
}

#[test]
fn one_bad_ttl_is_one_error_and_a_negative_ttl_says_so() {
    // A bad $TTL used to give one more error for every record after it.
    let zone = ZONE_A.replace("$TTL 300", "$TTL abc") + "web -5 IN CNAME www\n";
    let (_dir, cfg, z) = setup(CONFIG, &zone);
    let c = check(&cfg);
    c.assert_error(&z, 2, &["bad TTL `abc`"]);
    c.assert_error(&z, 8, &["TTL -5 is negative"]);
    assert_eq!(c.errors_in(&z), [2, 8], "{}", c.stderr);
}

#[test]
fn a_short_token_points_at_its_line() {
    let config = format!("{CONFIG}\n[api]\nlisten = \"127.0.0.1:0\"\ntoken = \"short\"\n");
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    let line = config
        .lines()
        .position(|l| l.starts_with("token ="))
        .unwrap()
        + 1;
    check(&cfg).assert_error(&cfg, line, &["at least 16 characters"]);
}

#[test]
fn check_warns_of_missing_programs_and_files_without_log_lines() {
    let config = format!(
        "{CONFIG}\n[check.x]\nexec = [\"/nonexistent/probe\"]\n\n[check.y]\nfile = \"nope/flag\"\n"
    );
    let zone = format!("{ZONE_A}www 60 IN A 192.0.2.9\n");
    let (_dir, cfg, z) = setup(&config, &zone);
    let c = check(&cfg);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    let line = |needle: &str| config.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (file, line, words) in [
        (
            &cfg,
            line("[check.x]"),
            "warning: check x: program /nonexistent/probe not found",
        ),
        (&cfg, line("[check.y]"), "warning: check y: file"),
        (&z, 8, "warning: TTL 60 differs"),
    ] {
        let prefix = format!("{}:{line}: {words}", file.display());
        assert!(
            c.stderr.contains(&prefix),
            "no `{prefix}` in:\n{}",
            c.stderr
        );
    }
    // Diagnostics only: every stderr line starts with a path.
    for l in c.stderr.lines() {
        assert!(l.starts_with('/'), "not a diagnostic: `{l}`");
    }
}

#[test]
fn group_without_user_and_zero_tcp_timeouts_are_errors() {
    let config = CONFIG.replace(
        "listen = [",
        "group = \"nogroup\"\ntcp_read_timeout = \"0s\"\nlisten = [",
    );
    let (_dir, cfg, _) = setup(&config, ZONE_A);
    let c = check(&cfg);
    c.assert_error(&cfg, 1, &["group needs user"]);
    let line = config
        .lines()
        .position(|l| l.starts_with("tcp_read_timeout"))
        .unwrap()
        + 1;
    c.assert_error(&cfg, line, &["tcp_read_timeout must be above 0"]);
}

#[test]
fn bad_tsig_keys_and_transfer_acls_are_errors_at_their_lines() {
    let config = r#"[server]
listen = ["127.0.0.1:0"]

[key.md5]
algorithm = "hmac-md5"
secret = "Vh3cMJlR0Wm0nU9bR3pHb1pkQ2l0eFZwN2dGa0l2c2E="

[key.short]
algorithm = "HMAC-SHA256."
secret = "c2hvcnQ="

[key.garbled]
algorithm = "hmac-sha512"
secret = "not base64!"

[key.good]
algorithm = "hmac-sha256"
secret = "Vh3cMJlR0Wm0nU9bR3pHb1pkQ2l0eFZwN2dGa0l2c2E="

[[zone]]
origin = "a.test."
file = "zones/a.test.zone"
allow_transfer = [ { key = "missing" }, { network = "192.0.2.1/24" }, {} ]
notify = [ { address = "192.0.2.1", key = "good" } ]
"#;
    let (_dir, cfg, _) = setup(config, ZONE_A);
    let c = check(&cfg);
    c.assert_error(&cfg, 5, &["md5"]);
    c.assert_error(&cfg, 10, &["short"]);
    c.assert_error(&cfg, 14, &["garbled"]);
    c.assert_error(&cfg, 23, &["missing", "not a configured"]);
    c.assert_error(&cfg, 23, &["192.0.2.1/24"]);
    c.assert_error(&cfg, 23, &["needs network, key or both"]);
    c.assert_error(&cfg, 24, &["192.0.2.1", "IP:PORT"]);
}

#[test]
fn a_zone_with_secondaries_but_no_state_dir_is_a_warning() {
    let with = |state: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n{state}\n[[zone]]\norigin = \"a.test.\"\nfile = \"zones/a.test.zone\"\nallow_transfer = [ {{ network = \"192.0.2.0/24\" }} ]\n"
        )
    };
    let (_dir, cfg, _) = setup(&with(""), ZONE_A);
    let c = check(&cfg);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    let prefix = format!("{}:5: warning: zone a.test. has secondaries", cfg.display());
    assert!(
        c.stderr.contains(&prefix),
        "no `{prefix}` in:\n{}",
        c.stderr
    );
    let (_dir, cfg, _) = setup(&with("state_dir = \"state\""), ZONE_A);
    let c = check(&cfg);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert!(!c.stderr.contains("state_dir"), "{}", c.stderr);
}

#[test]
fn a_zone_from_a_primary_needs_state_dir_and_not_a_file() {
    let config = r#"[server]
listen = ["127.0.0.1:0"]

[[zone]]
origin = "a.test."
primary = [ { address = "192.0.2.1:53" }, { address = "192.0.2.1:53" } ]

[[zone]]
origin = "b.test."
file = "zones/a.test.zone"
primary = [ { address = "192.0.2.1" } ]

[[zone]]
origin = "c.test."
"#;
    let (_dir, cfg, _) = setup(config, ZONE_A);
    let c = check(&cfg);
    c.assert_error(&cfg, 6, &["a.test.", "state_dir"]);
    c.assert_error(
        &cfg,
        6,
        &["a.test.", "primary 192.0.2.1:53 is listed twice"],
    );
    c.assert_error(&cfg, 10, &["b.test.", "file and primary"]);
    c.assert_error(&cfg, 14, &["c.test.", "needs file or primary"]);
}

/// `veer manpage` is roff naming every subcommand; `veer completions
/// bash` is a script bash accepts; the other shells get theirs.
#[test]
fn manpage_and_completions_come_from_the_cli_definition() {
    let out = run_veer(&["manpage"], Duration::from_secs(10));
    assert!(out.status.success(), "{out:?}");
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(man.contains(".TH veer 1"), "{man}");
    for sub in [
        "serve",
        "check",
        "explain",
        "status",
        "dnssec",
        "completions",
    ] {
        assert!(man.contains(sub), "the man page lacks `{sub}`");
    }
    let out = run_veer(&["completions", "bash"], Duration::from_secs(10));
    assert!(out.status.success(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("veer.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("dnssec"));
    for shell in ["zsh", "fish"] {
        let out = run_veer(&["completions", shell], Duration::from_secs(10));
        assert!(
            out.status.success() && out.stdout.len() > 100,
            "{shell}: {out:?}"
        );
    }
}
