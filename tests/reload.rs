//! Hot reload (issue 5), tested as an operator would: edit the files of a
//! running `veer serve` and watch the answers change. Every trigger (the
//! file watcher, SIGHUP, `POST /v1/reload`) has its own test; a rejected
//! reload keeps the old answers and says `file:line` in the log, in
//! `/v1/status` and in `/metrics`; checks are reconciled by identity.
//!
//! Answers are read with raw UDP queries (`support/admin.rs`), which are
//! fast enough to poll every few milliseconds, and with `dig` where a
//! user would use it (SOA serials).

#[path = "support/admin.rs"]
mod admin;
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use admin::{Admin, TOKEN, config_text, dns, save_by_rename, save_in_place, token_line, zone_text};
use backends::HttpBackend;
use common::*;
use tempfile::TempDir;

/// Deadline for a change the tests wait for.
const WAIT: Duration = Duration::from_secs(10);

/// A scenario: the config and the zone file of `example.test.`.
struct Files {
    dir: TempDir,
    config: PathBuf,
    zone: PathBuf,
}

/// `www IN A` lines for `ips`.
fn www(ips: &[&str]) -> String {
    ips.iter()
        .map(|ip| format!("www     IN A   {ip}\n"))
        .collect()
}

/// A scenario with the API (and token) on, the zone's extra lines and
/// the config's body.
fn setup(zone_extra: &str, body: &str) -> Files {
    let dir = tempfile::Builder::new()
        .prefix("veer-reload-")
        .tempdir()
        .expect("temp dir");
    let zone = write_file(dir.path(), "example.test.zone", &zone_text(1, zone_extra));
    let config = write_file(
        dir.path(),
        "veer.toml",
        &config_text(Some(&token_line()), body),
    );
    Files { dir, config, zone }
}

/// The sorted A records of `name` (NOERROR asserted), over UDP.
#[track_caller]
fn a(veer: &Veer, name: &str) -> Vec<String> {
    let r = dns::ask_a(veer.addr, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(r.rcode, 0, "{name}: {r:?}; logs:\n{}", veer.logs());
    let mut v: Vec<String> = r.a.iter().map(|ip| ip.to_string()).collect();
    v.sort();
    v
}

/// Waits until `name` answers exactly `want` (any order); panics with the
/// last answer and the logs after `WAIT`. Returns how long it took.
#[track_caller]
fn wait_a(veer: &Veer, name: &str, want: &[&str]) -> Duration {
    let start = Instant::now();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut last = Err(String::new());
    let ok = common::wait_until_every(WAIT, Duration::from_millis(2), || {
        last = dns::ask_a(veer.addr, name);
        let mut got: Vec<String> = match &last {
            Ok(r) if r.rcode == 0 => r.a.iter().map(|ip| ip.to_string()).collect(),
            _ => return false,
        };
        got.sort();
        got == want
    });
    assert!(
        ok,
        "{name}: wanted {want:?} within {WAIT:?}, last answer {last:?}; logs:\n{}",
        veer.logs()
    );
    start.elapsed()
}

#[track_caller]
fn wait_log(veer: &Veer, text: &str) {
    veer.expect_log(text, WAIT);
}

/// Waits until the logs contain `text` at least `n` times.
#[track_caller]
fn wait_log_count(veer: &Veer, text: &str, n: usize) {
    assert!(
        wait_until(WAIT, || veer.logs().matches(text).count() >= n),
        "wanted `{text}` {n} time(s) in the logs within {WAIT:?}:\n{}",
        veer.logs()
    );
}

/// Starts the server and waits until its file watcher is armed: the
/// config is rewritten unchanged until the watcher reacts (one extra
/// reload, content unchanged).
///
/// The watcher is armed by a task that may still be starting when the
/// server logs `dns listening on`: an edit made in that window is never
/// seen (reported as a server bug; see the final report). Tests that are
/// about something else must not trip over it.
fn start_watched(f: &Files) -> Veer {
    let veer = Veer::start(&f.config);
    let text = std::fs::read_to_string(&f.config).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        save_in_place(&f.config, &text);
        if veer.wait_for_log(
            "config or zone file changed: reloading",
            Duration::from_millis(500),
        ) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file watcher never reacted; logs:\n{}",
            veer.logs()
        );
    }
    wait_log(&veer, "reload applied: generation ");
    veer
}

fn api(veer: &Veer) -> Admin {
    Admin::from_logs(&veer.logs(), TOKEN)
}

/// The generation `/v1/status` reports.
fn generation(api: &Admin) -> u64 {
    api.status()["generation"]
        .as_u64()
        .expect("generation is a number")
}

/// The served SOA serial of `example.test.`, asked with dig.
#[track_caller]
fn soa_serial(veer: &Veer) -> u32 {
    let r = veer.dig(&["example.test", "SOA"]);
    let soa = r.answer_of("SOA");
    assert_eq!(soa.len(), 1, "{}", r.raw);
    soa[0]
        .data
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {}", soa[0]))
}

// ---------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------

#[test]
fn watcher_reloads_a_zone_edited_in_place() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let veer = start_watched(&f);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);

    let inode = inode(&f.zone);
    save_in_place(&f.zone, &zone_text(2, &www(&["192.0.2.2", "192.0.2.3"])));
    assert_eq!(inode, self::inode(&f.zone), "not an in-place write");
    let took = wait_a(&veer, "www.example.test", &["192.0.2.2", "192.0.2.3"]);
    eprintln!("in-place edit served after {took:?}");
    wait_log_count(&veer, "config or zone file changed: reloading", 2);
    wait_log_count(&veer, "reload applied: generation ", 2);

    // And again: the watch survives the first reload.
    save_in_place(&f.zone, &zone_text(3, &www(&["192.0.2.4"])));
    wait_a(&veer, "www.example.test", &["192.0.2.4"]);
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).expect("stat").ino()
}

#[test]
fn watcher_reloads_a_zone_saved_by_rename() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let veer = start_watched(&f);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);

    // Editors save by writing a temp file and renaming it over the
    // original: a new inode each time. Three saves in a row, so a watch
    // on the old inode would miss the later ones.
    for (serial, ip) in [(2, "192.0.2.2"), (3, "192.0.2.3"), (4, "192.0.2.4")] {
        let before = inode(&f.zone);
        save_by_rename(&f.zone, &zone_text(serial, &www(&[ip])));
        assert_ne!(before, inode(&f.zone), "not a new inode");
        let took = wait_a(&veer, "www.example.test", &[ip]);
        eprintln!("save-by-rename {serial} served after {took:?}");
    }
    wait_log_count(&veer, "reload applied: generation ", 4);
}

#[test]
fn watcher_reloads_an_included_file() {
    let f = setup("$INCLUDE inc/www.inc\n", "");
    let inc = write_file(f.dir.path(), "inc/www.inc", &www(&["192.0.2.1"]));
    let veer = start_watched(&f);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);
    save_by_rename(&inc, &www(&["192.0.2.7", "192.0.2.8"]));
    wait_a(&veer, "www.example.test", &["192.0.2.7", "192.0.2.8"]);
    save_in_place(&inc, &www(&["192.0.2.9"]));
    wait_a(&veer, "www.example.test", &["192.0.2.9"]);
}

#[test]
fn watcher_reloads_a_config_edit_adding_a_zone_and_a_route() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let veer = start_watched(&f);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);
    let r = dns::ask_a(veer.addr, "www.other.test").unwrap();
    assert_eq!(r.rcode, 5, "other.test. is not ours yet: {r:?}");

    // A second zone in a directory not watched so far (its file first:
    // no reload) and a route in the first zone.
    let other = write_file(
        f.dir.path(),
        "more/other.test.zone",
        "$ORIGIN other.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n  IN NS ns1\nns1 IN A 198.51.100.53\nwww IN A 198.51.100.1\n",
    );
    let body = "[[zone]]\norigin = \"other.test.\"\nfile = \"more/other.test.zone\"\n\n\
                [[route]]\nname = \"api.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"multivalue\"\n\
                members = [ { value = \"203.0.113.1\" }, { value = \"203.0.113.2\" } ]\n";
    save_by_rename(&f.config, &config_text(Some(&token_line()), body));
    wait_a(&veer, "www.other.test", &["198.51.100.1"]);
    wait_a(&veer, "api.example.test", &["203.0.113.1", "203.0.113.2"]);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);

    // The new zone file (and its directory) is watched from now on.
    save_in_place(
        &other,
        &std::fs::read_to_string(&other)
            .unwrap()
            .replace("198.51.100.1", "198.51.100.2"),
    );
    wait_a(&veer, "www.other.test", &["198.51.100.2"]);

    // The route's members edited in the config: the new answer.
    let body = body.replace("203.0.113.2", "203.0.113.3");
    save_in_place(&f.config, &config_text(Some(&token_line()), &body));
    wait_a(&veer, "api.example.test", &["203.0.113.1", "203.0.113.3"]);
}

#[test]
fn reload_adding_geo_and_a_geo_route_answers_at_once() {
    // `veer check` accepted this config, but the running server kept its
    // start-time geo data (none) and answered SERVFAIL until a restart.
    let f = setup(&www(&["192.0.2.1"]), "");
    let veer = start_watched(&f);
    write_file(
        f.dir.path(),
        "geo/networks.txt",
        "100.64.0.0/16 EU DE BY
",
    );
    let body = "[geo]\nnetworks = \"geo/networks.txt\"\n\n\
                [[route]]\nname = \"geo.example.test.\"\ntype = \"A\"\npolicy = \"geo\"\n\
                members = [ { country = \"DE\", value = \"203.0.113.1\" }, { default = true, value = \"203.0.113.9\" } ]\n";
    save_by_rename(&f.config, &config_text(Some(&token_line()), body));
    wait_a(&veer, "geo.example.test", &["203.0.113.9"]);
    let r = veer.dig(&["geo.example.test", "A", "+subnet=100.64.1.0/24"]);
    assert_eq!(r.answer_data(), ["203.0.113.1"], "{}", r.raw);

    // The route decides per place of the networks file when it is built:
    // an edited file moves the clients at the reload, with the new scope.
    write_file(
        f.dir.path(),
        "geo/networks.txt",
        "100.64.0.0/16 EU FR\n100.65.0.0/17 EU DE BY\n",
    );
    veer.signal("HUP");
    let geo = |subnet: &str| veer.dig(&["geo.example.test", "A", &format!("+subnet={subnet}")]);
    assert!(
        wait_until(WAIT, || geo("100.65.1.0/24").answer_data()
            == ["203.0.113.1"]),
        "{}",
        geo("100.65.1.0/24").raw
    );
    let r = geo("100.65.1.0/24");
    assert!(r.raw.contains("100.65.1.0/24/17"), "{}", r.raw);
    let r = geo("100.64.1.0/24");
    assert_eq!(r.answer_data(), ["203.0.113.9"], "{}", r.raw);
    assert!(r.raw.contains("100.64.1.0/24/16"), "{}", r.raw);
}

/// A scenario whose zone file is a symlink to `data/live.zone`: an edit
/// of the target happens in a directory the watcher does not watch, so
/// only an explicit trigger (SIGHUP, the API) reloads it. Returns the
/// target's path.
fn unwatched_zone(f: &Files) -> PathBuf {
    let target = write_file(
        f.dir.path(),
        "data/live.zone",
        &std::fs::read_to_string(&f.zone).unwrap(),
    );
    std::fs::remove_file(&f.zone).unwrap();
    std::os::unix::fs::symlink(&target, &f.zone).unwrap();
    target
}

#[test]
fn sighup_reloads() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let target = unwatched_zone(&f);
    let veer = Veer::start(&f.config);
    let api = api(&veer);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);

    save_in_place(&target, &zone_text(2, &www(&["192.0.2.2"])));
    veer.signal("HUP");
    wait_log(&veer, "SIGHUP: reloading");
    wait_a(&veer, "www.example.test", &["192.0.2.2"]);
    wait_log_count(&veer, "reload applied: generation ", 1);

    // A SIGHUP with nothing changed still reloads (and keeps the answers).
    let ok = api.status()["reloads_ok"].as_u64().unwrap();
    veer.signal("HUP");
    wait_log_count(&veer, "SIGHUP: reloading", 2);
    wait_log_count(&veer, "reload applied: generation ", 2);
    assert!(
        wait_until(WAIT, || api.status()["reloads_ok"].as_u64().unwrap()
            == ok + 1),
        "{}",
        api.status()
    );
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.2"]);
}

#[test]
fn api_reload_applies_and_returns_the_generation() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let target = unwatched_zone(&f);
    let veer = Veer::start(&f.config);
    let api = api(&veer);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);

    for (serial, ip) in [(2, "192.0.2.2"), (3, "192.0.2.3"), (4, "192.0.2.4")] {
        let before = generation(&api);
        save_in_place(&target, &zone_text(serial, &www(&[ip])));
        let r = api.reload();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
        let j = r.json();
        assert_eq!(j["ok"], true, "{j}");
        let g = j["generation"].as_u64().expect("generation");
        assert!(g > before, "generation {g} after {before}");
        // The reload is applied by the time the API answers.
        assert!(
            wait_until(WAIT, || generation(&api) >= g),
            "status never reached generation {g}: {}",
            api.status()
        );
        assert_eq!(a(&veer, "www.example.test"), [ip]);
        assert!(api.metrics().get("veer_snapshot_generation", &[]) as u64 >= g);
    }
    let s = api.status();
    assert_eq!(s["reloads_ok"], 3, "{s}");
    assert_eq!(s["last_reload"]["ok"], true, "{s}");
    // The watcher saw nothing: every reload came from the API.
    assert!(
        !veer.logs().contains("config or zone file changed"),
        "{}",
        veer.logs()
    );
}

// ---------------------------------------------------------------------------
// Rejected reloads
// ---------------------------------------------------------------------------

/// The assertions after a rejected reload: old answers, `file:line` in
/// the log and in `/v1/status`, the failure in `/metrics` and on the page.
#[track_caller]
fn assert_rejected(veer: &Veer, api: &Admin, file_line: &str, failed: u64, old: &[&str]) {
    wait_log(veer, &format!("reload rejected: {file_line}"));
    assert!(
        wait_until(WAIT, || {
            let s = api.status();
            s["reloads_failed"].as_u64() == Some(failed) && s["last_reload"]["ok"] == false
        }),
        "{}",
        api.status()
    );
    let s = api.status();
    let errors = s["last_reload"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {s}"));
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains(file_line))),
        "no `{file_line}` in {s}"
    );
    assert!(s["last_reload"]["at"].is_string(), "{s}");
    let m = api.metrics();
    assert_eq!(m.get("veer_last_reload_ok", &[]), 0.0);
    assert!(m.get("veer_reloads_total", &[("result", "failed")]) >= failed as f64);
    let page = api.get("/");
    assert!(
        page.body.contains("reload-error") && page.body.contains(file_line),
        "the status page does not show the failure:\n{}",
        page.body
    );
    // Still the old answers.
    let mut old: Vec<String> = old.iter().map(|s| s.to_string()).collect();
    old.sort();
    assert_eq!(a(veer, "www.example.test"), old);
}

#[track_caller]
fn assert_applied(api: &Admin) {
    assert!(
        wait_until(WAIT, || api.status()["last_reload"]["ok"] == true),
        "{}",
        api.status()
    );
    assert_eq!(api.metrics().get("veer_last_reload_ok", &[]), 1.0);
}

#[test]
fn broken_zone_is_rejected_the_old_answers_stay_and_a_fix_applies() {
    let f = setup(&www(&["192.0.2.1", "192.0.2.2"]), "");
    let veer = start_watched(&f);
    let api = api(&veer);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1", "192.0.2.2"]);
    let m = api.metrics();
    assert_eq!(m.get("veer_last_reload_ok", &[]), 1.0);

    // Line 7: a bad address, and the www records changed too (so a
    // partial apply would show).
    let broken = zone_text(
        2,
        &format!("{}broken  IN A   300.1.2.3\n", www(&["192.0.2.9"])),
    );
    assert!(broken.lines().nth(6).unwrap().starts_with("broken"));
    save_by_rename(&f.zone, &broken);
    let file_line = format!("{}:7:", f.zone.display());
    assert_rejected(&veer, &api, &file_line, 1, &["192.0.2.1", "192.0.2.2"]);
    assert!(
        veer.logs()
            .contains("reload rejected: still serving generation"),
        "{}",
        veer.logs()
    );

    // The same error through the API: 422 with the errors.
    let r = api.reload();
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json();
    assert_eq!(j["ok"], false, "{j}");
    assert!(j["errors"][0].as_str().unwrap().contains(&file_line), "{j}");

    // Fixed: applied.
    save_by_rename(&f.zone, &zone_text(3, &www(&["192.0.2.9"])));
    wait_a(&veer, "www.example.test", &["192.0.2.9"]);
    assert_applied(&api);
    assert!(!api.get("/").body.contains("reload-error"));
}

#[test]
fn broken_config_is_rejected_the_old_answers_stay_and_a_fix_applies() {
    let route = |ip: &str| {
        format!(
            "[[route]]\nname = \"api.example.test.\"\ntype = \"A\"\npolicy = \"multivalue\"\n\
             members = [ {{ value = \"{ip}\" }} ]\n"
        )
    };
    let f = setup(&www(&["192.0.2.1"]), &route("203.0.113.1"));
    let veer = start_watched(&f);
    let api = api(&veer);
    assert_eq!(a(&veer, "api.example.test"), ["203.0.113.1"]);

    // An unknown key on the last line, with the route changed as well.
    let good = config_text(Some(&token_line()), &route("203.0.113.2"));
    let bad = format!("{good}bogus = 1\n");
    let line = bad.lines().count();
    save_by_rename(&f.config, &bad);
    let file_line = format!("{}:{line}:", f.config.display());
    assert_rejected(&veer, &api, &file_line, 1, &["192.0.2.1"]);
    assert_eq!(a(&veer, "api.example.test"), ["203.0.113.1"]);

    // A TOML syntax error.
    let bad = format!("{good}[server\n");
    let line = bad.lines().count();
    save_by_rename(&f.config, &bad);
    let file_line = format!("{}:{line}:", f.config.display());
    assert_rejected(&veer, &api, &file_line, 2, &["192.0.2.1"]);
    assert_eq!(a(&veer, "api.example.test"), ["203.0.113.1"]);

    // Fixed: applied.
    save_by_rename(&f.config, &good);
    wait_a(&veer, "api.example.test", &["203.0.113.2"]);
    assert_applied(&api);
    let m = api.metrics();
    assert_eq!(m.get("veer_reloads_total", &[("result", "failed")]), 2.0);
    assert!(m.get("veer_reloads_total", &[("result", "ok")]) >= 1.0);
}

#[test]
fn zone_edited_without_a_serial_change_is_served_with_a_higher_serial() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let veer = start_watched(&f);
    assert_eq!(soa_serial(&veer), 1);

    // Content changed, file serial still 1.
    save_by_rename(&f.zone, &zone_text(1, &www(&["192.0.2.2"])));
    wait_a(&veer, "www.example.test", &["192.0.2.2"]);
    assert_eq!(soa_serial(&veer), 2, "the served serial must rise");
    wait_log(
        &veer,
        "zone example.test.: content changed but its SOA serial (1) did not",
    );

    // Again: it keeps rising.
    save_by_rename(&f.zone, &zone_text(1, &www(&["192.0.2.3"])));
    wait_a(&veer, "www.example.test", &["192.0.2.3"]);
    assert_eq!(soa_serial(&veer), 3);

    // A file serial above the served one wins.
    save_by_rename(&f.zone, &zone_text(100, &www(&["192.0.2.4"])));
    wait_a(&veer, "www.example.test", &["192.0.2.4"]);
    assert_eq!(soa_serial(&veer), 100);

    // Nothing changed: the serial stays.
    let api = api(&veer);
    let r = api.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(soa_serial(&veer), 100);
}

// ---------------------------------------------------------------------------
// Reconcile by identity
// ---------------------------------------------------------------------------

/// An http check probed every 100 ms; `fall` consecutive failures take it
/// down (high, so a loaded machine does not flap it).
fn http_check(name: &str, url: &str, fall: u32) -> String {
    format!(
        "[check.{name}]\nhttp = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\nfall = {fall}\nrise = 1\n\n"
    )
}

fn probes_ok(api: &Admin, check: &str) -> f64 {
    api.metrics().get(
        "veer_probe_results_total",
        &[("check", check), ("result", "ok")],
    )
}

#[test]
fn reload_reconciles_checks_by_identity() {
    let web_a = HttpBackend::start();
    let web_b = HttpBackend::start();
    let web_c = HttpBackend::start();
    let route = "[[route]]\nname = \"www.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
                 members = [ { tier = 1, value = \"10.0.0.1\", check = \"a\" }, { tier = 2, value = \"10.0.0.2\", check = \"b\" } ]\n\n";
    let body = |b_fall: u32, with_c: bool| {
        let mut s = String::from("[health]\nguard_min_checks = 100\n\n");
        s += &http_check("a", &web_a.url("/a"), 5);
        s += &http_check("b", &web_b.url("/b"), b_fall);
        if with_c {
            s += &http_check("c", &web_c.url("/c"), 5);
        }
        s + route
    };
    let f = setup("", &body(5, true));
    let veer = start_watched(&f);
    let api = api(&veer);
    for c in ["a", "b", "c"] {
        assert!(
            wait_until(WAIT, || api.check(c)["state"] == "up"),
            "{c} never came up: {}",
            api.check(c)
        );
    }
    wait_a(&veer, "www.example.test", &["10.0.0.1"]);
    // Enough probes that a restarted counter is clearly lower.
    assert!(
        wait_until(WAIT, || probes_ok(&api, "b") >= 10.0),
        "{}",
        api.get("/metrics").body
    );
    let a_before = probes_ok(&api, "a");
    let b_before = probes_ok(&api, "b");
    let a_since = api.check("a")["since"].clone();
    let b_since = api.check("b")["since"].clone();
    let a_first = veer.logs().matches("check a: unknown ->").count();
    assert_eq!(a_first, 1, "{}", veer.logs());

    // Change b's threshold (fall 5 → 6); a and c are untouched. b's probe
    // restarts with the new threshold, its state and counters kept.
    save_by_rename(&f.config, &config_text(Some(&token_line()), &body(6, true)));
    wait_log(&veer, "check b: timing edited; state and counters kept");
    assert!(
        wait_until(WAIT, || probes_ok(&api, "b") >= 1.0
            && probes_ok(&api, "b") < b_before),
        "b's probe did not restart"
    );
    let m = api.metrics();
    let (a_after, b_after) = (
        m.get(
            "veer_probe_results_total",
            &[("check", "a"), ("result", "ok")],
        ),
        m.get(
            "veer_probe_results_total",
            &[("check", "b"), ("result", "ok")],
        ),
    );
    assert!(
        a_after >= a_before,
        "a's probe counter went back from {a_before} to {a_after}"
    );
    assert!(
        b_after < b_before,
        "b's probe counter should restart: {b_before} before, {b_after} after"
    );
    assert!(
        wait_until(WAIT, || probes_ok(&api, "a") > a_after),
        "a's probes stopped"
    );
    let logs = veer.logs();
    assert_eq!(
        logs.matches("check a: unknown ->").count(),
        1,
        "a restarted:\n{logs}"
    );
    assert!(!logs.contains("check a: timing edited"), "{logs}");
    assert!(!logs.contains("check c: timing edited"), "{logs}");
    assert_eq!(api.check("a")["since"], a_since, "a kept its state");
    assert_eq!(api.check("b")["since"], b_since, "b kept its state");
    assert_eq!(logs.matches("check b: unknown ->").count(), 1, "{logs}");
    wait_a(&veer, "www.example.test", &["10.0.0.1"]);

    // Remove c: its probes stop at once.
    save_by_rename(
        &f.config,
        &config_text(Some(&token_line()), &body(6, false)),
    );
    wait_log(&veer, "check c: removed");
    let c_hits = web_c.hits();
    let a_hits = web_a.hits();
    // While a is probed 5 more times, c is probed at most once more (a
    // request already in flight when the reload landed).
    assert!(
        wait_until(WAIT, || web_a.hits() >= a_hits + 5),
        "a's probes should go on: {a_hits} → {}",
        web_a.hits()
    );
    assert!(
        web_c.hits() <= c_hits + 1,
        "the removed check is still probed: {c_hits} → {}",
        web_c.hits()
    );
    let h = api.get_json("/v1/health");
    assert!(
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "c"),
        "{h}"
    );
    assert!(
        api.metrics()
            .find("veer_probe_results_total", &[("check", "c")])
            .is_empty()
    );
    assert_eq!(
        veer.logs().matches("check a: unknown ->").count(),
        1,
        "{}",
        veer.logs()
    );
    assert_eq!(api.check("a")["since"], a_since, "a kept its state");
}

/// Reloads while probes run (on their own thread): every reload restarts
/// one probe (an unrelated check whose interval changes each time), and
/// the probes of the unchanged checks go on as if nothing happened, none
/// lost (a probe task aborted and not restarted, a wait forgotten) and
/// none doubled (a second task, or a restart probing early). A backend
/// failing during reloads still fails over within its fall threshold.
#[test]
fn reloads_while_probing_lose_and_double_no_probe_and_failover_follows() {
    const CHECKS: usize = 6;
    const INTERVAL_MS: u64 = 200;
    let webs: Vec<HttpBackend> = (0..CHECKS).map(|_| HttpBackend::start()).collect();
    let other = HttpBackend::start();
    let route = "[[route]]\nname = \"www.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
                 members = [ { tier = 1, value = \"10.0.0.1\", check = \"c0\" }, { tier = 2, value = \"10.0.0.2\", check = \"c1\" } ]\n\n";
    let body = |n: u64| {
        let mut s = String::from("[health]\nguard_min_checks = 100\n\n");
        for (i, w) in webs.iter().enumerate() {
            // jitter 20ms (a tenth of the interval), fall 2.
            s += &format!(
                "[check.c{i}]\nhttp = \"{}\"\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"150ms\"\nfall = 2\nrise = 1\n\n",
                w.url(&format!("/c{i}"))
            );
        }
        // The check each reload restarts.
        s += &format!(
            "[check.x]\nhttp = \"{}\"\ninterval = \"{}ms\"\n\n",
            other.url("/x"),
            300 + n
        );
        s + route
    };
    let f = setup("", &body(0));
    let veer = start_watched(&f);
    let api = api(&veer);
    for i in 0..CHECKS {
        let c = format!("c{i}");
        assert!(
            wait_until(WAIT, || api.check(&c)["state"] == "up"),
            "{c} never came up: {}",
            api.check(&c)
        );
    }
    wait_a(&veer, "www.example.test", &["10.0.0.1"]);

    // 20 reloads, 150ms apart, each restarting x's probe.
    let hits = |webs: &[HttpBackend]| webs.iter().map(HttpBackend::hits).collect::<Vec<_>>();
    let (t0, before) = (Instant::now(), hits(&webs));
    for n in 1..=20 {
        save_by_rename(&f.config, &config_text(Some(&token_line()), &body(n)));
        assert_eq!(api.reload().status, 200, "reload {n}: {}", veer.logs());
        std::thread::sleep(Duration::from_millis(150));
    }
    let (elapsed, after) = (t0.elapsed().as_secs_f64(), hits(&webs));
    // Each interval is 200ms ± 20ms: as many probes as that allows, give
    // or take the one in flight at each end.
    let (lo, hi) = (elapsed / 0.22 - 2.0, elapsed / 0.18 + 2.0);
    for i in 0..CHECKS {
        let n = (after[i] - before[i]) as f64;
        assert!(
            (lo..=hi).contains(&n),
            "c{i}: {n} probes in {elapsed:.2}s of reloads, expected {lo:.1}..={hi:.1}; logs:\n{}",
            veer.logs()
        );
    }
    let logs = veer.logs();
    assert!(
        logs.matches("check x: timing edited").count() >= 20,
        "{logs}"
    );
    for i in 0..CHECKS {
        assert_eq!(
            logs.matches(&format!("check c{i}: unknown ->")).count(),
            1,
            "c{i} restarted:\n{logs}"
        );
        assert!(
            !logs.contains(&format!("check c{i}: timing edited")),
            "{logs}"
        );
    }

    // c0's backend fails while reloads go on: two failed probes (fall 2),
    // each within an interval, flip the answer to tier 2.
    let reloads = std::thread::spawn({
        let (config, api) = (f.config.clone(), Admin::from_logs(&veer.logs(), TOKEN));
        let texts: Vec<String> = (21..=35)
            .map(|n| config_text(Some(&token_line()), &body(n)))
            .collect();
        move || {
            for text in texts {
                save_by_rename(&config, &text);
                api.reload();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    webs[0].set_status(503);
    let took = wait_a(&veer, "www.example.test", &["10.0.0.2"]);
    reloads.join().unwrap();
    // Two failures are at most 2 intervals (+ jitter) away, plus the
    // answer's publication: well within a second; 3s for a loaded host.
    assert!(
        took < Duration::from_secs(3),
        "failover took {took:?}; logs:\n{}",
        veer.logs()
    );
}

// ---------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------

/// File saved → new answer served, over 20 edits (save-by-rename, watcher).
/// Prints the distribution for the closing note; asserts a loose bound.
#[test]
fn reload_latency_file_saved_to_new_answer_over_20_edits() {
    let f = setup(&www(&["192.0.2.0"]), "");
    let veer = start_watched(&f);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.0"]);
    let mut took = Vec::new();
    for i in 1..=20u32 {
        let ip = format!("192.0.2.{i}");
        let saved = Instant::now();
        save_by_rename(&f.zone, &zone_text(1 + i, &www(&[&ip])));
        wait_a(&veer, "www.example.test", &[&ip]);
        took.push(saved.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "reload latency over 20 edits (file saved -> new answer): min {:.1} ms, median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        ms(took[0]),
        ms(took[10]),
        ms(took[18]),
        ms(took[19])
    );
    assert!(
        took[19] < Duration::from_secs(3),
        "slowest reload {:?}",
        took[19]
    );
}

/// A reload that moves `state_dir` is refused at its line (the lock, the
/// checkpoint writer and the watchers cannot follow), and the running
/// state keeps serving; `[server]` settings a restart needs are named.
#[test]
fn moving_state_dir_is_refused_and_restart_only_settings_are_named() {
    let f = setup(&www(&["192.0.2.1"]), "");
    // The scenario's config has `state_dir = "state"` on line 3.
    let with_state = std::fs::read_to_string(&f.config).unwrap();
    assert_eq!(with_state.lines().nth(2), Some("state_dir = \"state\""));
    let veer = Veer::start(&f.config);
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);
    let moved = with_state.replace(
        "state_dir = \"state\"",
        "state_dir = \"elsewhere\"\nworkers = 3",
    );
    std::fs::write(&f.config, &moved).unwrap();
    veer.signal("HUP");
    wait_log(
        &veer,
        "veer.toml:3: [server] state_dir cannot change while running",
    );
    assert_eq!(a(&veer, "www.example.test"), ["192.0.2.1"]);
    assert!(!f.dir.path().join("elsewhere").exists());
    // Back to the same directory: applied, and `workers` named as
    // restart-only.
    let workers = with_state.replace("[server]\n", "[server]\nworkers = 3\n");
    veer.reload_with(&workers);
    wait_log(
        &veer,
        "[server] workers changed: takes effect after a restart",
    );
}

/// A static route at `app.example.test A` answering `ip`.
fn app_route(ip: &str) -> String {
    format!(
        "[[route]]\nname = \"app.example.test.\"\ntype = \"A\"\npolicy = \"failover\"\nttl = 30\nmembers = [ {{ value = \"{ip}\" }} ]\n"
    )
}

/// The generation and summary of the `n`th (1-based) `reload applied`
/// line of the logs.
fn applied_line(logs: &str, n: usize) -> Option<(u64, String)> {
    let prefix = "reload applied: generation ";
    let line = logs.lines().filter(|l| l.contains(prefix)).nth(n - 1)?;
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let (generation, summary) = rest.split_once(": ")?;
    Some((generation.parse().ok()?, summary.trim().to_string()))
}

/// A reload logs one summary of what it changed, with the generation
/// `/v1/status` shows right after; `last_reload` and the status page show
/// it too; `veer diff` says the same before a reload, from the running
/// server (`--api`) or offline (`--against`).
#[test]
fn a_reload_logs_what_it_changed_and_veer_diff_says_it_before() {
    let f = setup(&www(&["192.0.2.1", "192.0.2.2"]), &app_route("192.0.2.10"));
    // Config and zone live in a directory the watcher does not watch, so
    // only the SIGHUP below reloads.
    let zone = unwatched_zone(&f);
    let config = write_file(
        f.dir.path(),
        "data/veer.toml",
        &std::fs::read_to_string(&f.config).unwrap(),
    );
    std::fs::remove_file(&f.config).unwrap();
    std::os::unix::fs::symlink(&config, &f.config).unwrap();
    let old_config = std::fs::read_to_string(&config).unwrap();
    let veer = Veer::start(&f.config);
    let api = api(&veer);
    assert_eq!(a(&veer, "app.example.test"), ["192.0.2.10"]);

    // The edit: one address of www replaced, a TXT added; the route's
    // member changed.
    save_in_place(
        &zone,
        &zone_text(
            2,
            &format!("{}txt IN TXT \"hi\"\n", www(&["192.0.2.1", "192.0.2.3"])),
        ),
    );
    save_in_place(&config, &old_config.replace("192.0.2.10", "192.0.2.11"));
    let want = "zone example.test.: +3 -2 records ~2 rrsets; routes ~1";

    // Before: the running server compares the files with what it serves,
    // and changes nothing.
    let token = write_file(f.dir.path(), "token", TOKEN);
    let url = format!("http://{}", api.addr);
    let out = run_veer(
        &[
            "diff",
            "--config",
            f.config.to_str().unwrap(),
            "--api",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ],
        WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().next(), Some(want), "{stdout}");
    for line in [
        "  ~ www.example.test. A",
        "  + txt.example.test. TXT",
        "  ~ example.test. SOA",
        "route redefined: app.example.test. A",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no `{line}` in:\n{stdout}"
        );
    }
    // The same without a path (the running config's file) and the JSON.
    let r = api.authed("POST", "/v1/diff", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["summary"], want);
    assert_eq!(
        r.json()["diff"]["routes"]["redefined"][0],
        "app.example.test. A"
    );
    // Without the token: refused.
    assert_eq!(api.request("POST", "/v1/diff", &[], None).status, 401);
    assert_eq!(a(&veer, "app.example.test"), ["192.0.2.10"]);
    assert!(!veer.logs().contains("reload applied"));
    // A config that does not load: its errors, exit 1.
    let broken = write_file(f.dir.path(), "data/broken.toml", "[server]\nlisten = 3\n");
    let out = run_veer(
        &[
            "diff",
            "--config",
            broken.to_str().unwrap(),
            "--api",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ],
        WAIT,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.toml:2:"),
        "{out:?}"
    );

    // The reload: one line with the summary, its generation the one
    // served when the line is written.
    veer.signal("HUP");
    wait_log(&veer, "reload applied: generation ");
    let status = api.status();
    let (generation, summary) = applied_line(&veer.logs(), 1).expect("the line");
    assert_eq!(summary, want, "{}", veer.logs());
    assert_eq!(status["generation"].as_u64(), Some(generation), "{status}");
    assert_eq!(status["last_reload"]["ok"], true);
    assert_eq!(
        status["last_reload"]["diff"]["zones"][0]["records_added"], 3,
        "{status}"
    );
    assert_eq!(
        status["last_reload"]["diff"]["routes"]["redefined"][0],
        "app.example.test. A"
    );
    assert_eq!(a(&veer, "app.example.test"), ["192.0.2.11"]);
    let page = api.get("/").body;
    assert!(page.contains(&format!("{want}</p>")), "{page}");

    // Nothing changed: said so, with the new generation.
    veer.signal("HUP");
    wait_log_count(&veer, "reload applied: generation ", 2);
    let (again, summary) = applied_line(&veer.logs(), 2).expect("the line");
    assert_eq!(summary, "no changes");
    assert_eq!(api.status()["generation"].as_u64(), Some(again));
    assert!(again > generation);
    assert_eq!(
        veer.logs().matches("listen changed").count(),
        0,
        "{}",
        veer.logs()
    );

    // Offline: two config files compared.
    let other = write_file(
        f.dir.path(),
        "other.toml",
        &std::fs::read_to_string(&config)
            .unwrap()
            .replace("192.0.2.11", "192.0.2.12"),
    );
    let out = run_veer(
        &[
            "diff",
            "--config",
            other.to_str().unwrap(),
            "--against",
            f.config.to_str().unwrap(),
        ],
        WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "routes ~1\nroute redefined: app.example.test. A\n");
    let out = run_veer(
        &[
            "diff",
            "--config",
            f.config.to_str().unwrap(),
            "--against",
            f.config.to_str().unwrap(),
        ],
        WAIT,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no changes\n");
}

/// Review r17: `POST /v1/diff` reads whatever path the body names, on the
/// controller's behalf, and the controller waits for it: a FIFO (or a
/// slow file system, or a big config) wedges the controller, so reloads,
/// overrides, health transitions and the watchdog ping all stop.
#[test]
fn a_diff_of_a_fifo_does_not_wedge_the_controller() {
    let f = setup(&www(&["192.0.2.1"]), "");
    let veer = Veer::start(&f.config);
    let api = api(&veer);
    let fifo = f.dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let body = format!("{{\"config\": \"{}\"}}", fifo.display());
    let a2 = api.clone();
    let (dtx, drx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = dtx.send(a2.try_authed("POST", "/v1/diff", Some(&body)));
    });
    // Refused at once: not a regular file.
    let diff = drx.recv_timeout(Duration::from_secs(5));
    assert!(
        matches!(&diff, Ok(Ok(r)) if r.status == 422 && r.body.contains("not a regular file")),
        "{diff:?}"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let a3 = api.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a3.try_authed("POST", "/v1/reload", None).map(|r| r.status));
    });
    let got = rx.recv_timeout(Duration::from_secs(5));
    // Unblock a reader, if there is one (never blocks when there is none).
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    assert!(
        matches!(got, Ok(Ok(200))),
        "a reload after a diff of a FIFO did not answer within 5 s: {got:?}"
    );
}
