//! Health checks and failover (issue 3), tested as a user would: real
//! HTTP(S), TCP and DNS backends on loopback (`tests/support/backends.rs`),
//! the real `veer serve` binary, and `dig` (or raw UDP for the chaos test)
//! as the client.
//!
//! Probes run every 50 ms here, so every wait is a short poll against a
//! deadline; the timing bounds asserted are `fall × interval` (or
//! `rise × interval`) plus a margin for a loaded 2-core machine.

#[path = "support/backends.rs"]
mod backends;
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use backends::{HttpBackend, TcpBackend, write_atomic};
use common::*;
use tempfile::TempDir;

/// The probe interval of most checks below.
const INTERVAL: Duration = Duration::from_millis(50);

/// `interval` and `timeout` of a fast check (TOML lines).
const FAST: &str = "interval = \"50ms\"\ntimeout = \"40ms\"";

/// Slack on top of `fall × interval` (or `rise × interval`) for one
/// observed change: the probe's phase (up to one interval), jitter, the
/// controller's publish, dig's own start-up and a loaded 2-core machine
/// running other tests in parallel.
const MARGIN: Duration = Duration::from_millis(750);

/// Deadline for changes the tests wait for without asserting a bound.
const WAIT: Duration = Duration::from_secs(10);

/// The zone every scenario serves. `static` is a static A record set (a
/// route on it collides).
const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@       300 IN SOA ns1 hostmaster 1000 7200 3600 1209600 60
        IN  NS  ns1
ns1     IN  A   192.0.2.53
static  IN  A   192.0.2.10
";

/// A scenario directory: `veer.toml` (the `[server]` and `[[zone]]`
/// header, then `body`), the zone, and `state_dir = "state"`.
fn setup(body: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("veer-health-")
        .tempdir()
        .expect("temp dir");
    write_file(dir.path(), "example.test.zone", ZONE);
    let config = write_file(dir.path(), "veer.toml", &config_text(body));
    (dir, config)
}

fn config_text(body: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
         [rrl]\nresponses_per_second = 0\n\n\
         [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n\n{body}"
    )
}

/// A `[[route]]` of type A with `ttl = 30` and the given extra lines and
/// members (`(tier, value, check)`; tier 0 = no tier key, check "" = none).
fn route(name: &str, extra: &str, members: &[(u32, &str, &str)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|&(tier, value, check)| {
            let mut m = Vec::new();
            if tier > 0 {
                m.push(format!("tier = {tier}"));
            }
            m.push(format!("value = \"{value}\""));
            if !check.is_empty() {
                m.push(format!("check = \"{check}\""));
            }
            format!("  {{ {} }},", m.join(", "))
        })
        .collect();
    format!(
        "[[route]]\nname = \"{name}.example.test.\"\ntype = \"A\"\nttl = 30\n{extra}\nmembers = [\n{}\n]\n\n",
        members.join("\n")
    )
}

/// A fast `[check.NAME]` with the kind line and extra options.
fn check(name: &str, kind: &str, extra: &str) -> String {
    check_timed(name, kind, FAST, extra)
}

/// [`check`] with its own interval and timeout (`timing`).
fn check_timed(name: &str, kind: &str, timing: &str, extra: &str) -> String {
    format!("[check.{name}]\n{kind}\n{timing}\n{extra}\n\n")
}

/// For a test that needs a check's first probe to get its answer: the
/// first probes run while the server is still starting (a debug build,
/// beside other tests on two cores), and a probe task that cannot run for
/// 40 ms times out however fast the answer came.
const FIRST_PROBE: &str = "interval = \"1s\"\ntimeout = \"500ms\"";

/// Status and sorted A records of `name.example.test`.
fn ask(veer: &Veer, name: &str) -> (String, Vec<String>) {
    let r = veer.dig(&[&format!("{name}.example.test"), "A"]);
    let mut a: Vec<String> = r.answer_of("A").iter().map(|r| r.data.clone()).collect();
    a.sort();
    (r.status, a)
}

/// The sorted A records of `name`, asserting NOERROR.
#[track_caller]
fn a(veer: &Veer, name: &str) -> Vec<String> {
    let (status, a) = ask(veer, name);
    assert_eq!(status, "NOERROR", "{name}; logs:\n{}", veer.logs());
    a
}

/// Waits until `name` answers `status` with exactly the A records `want`
/// (any order); panics with the logs after `timeout`.
#[track_caller]
fn wait_answer(veer: &Veer, name: &str, status: &str, want: &[&str], timeout: Duration) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut last = (String::new(), Vec::new());
    let ok = wait_until(timeout, || {
        last = ask(veer, name);
        last.0 == status && last.1 == want
    });
    assert!(
        ok,
        "{name}: wanted {status} {want:?} within {timeout:?}, last answer {last:?}; logs:\n{}",
        veer.logs()
    );
}

/// [`wait_answer`] for NOERROR with records.
#[track_caller]
fn wait_a(veer: &Veer, name: &str, want: &[&str], timeout: Duration) {
    wait_answer(veer, name, "NOERROR", want, timeout);
}

#[track_caller]
fn wait_log(veer: &Veer, text: &str) {
    veer.expect_log(text, WAIT);
}

/// The serial of example.test.'s SOA.
fn serial(veer: &Veer) -> u32 {
    let r = veer.dig(&["example.test", "SOA"]);
    let soa = r.answer_of("SOA");
    assert_eq!(soa.len(), 1, "{}", r.raw);
    soa_serial(&soa[0].data)
}

fn soa_serial(data: &str) -> u32 {
    data.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in SOA `{data}`"))
}

/// Asserts a NODATA answer: NOERROR, AA, no answer, the zone's SOA in the
/// authority section. Returns that SOA's serial.
#[track_caller]
fn assert_nodata(veer: &Veer, name: &str) -> u32 {
    let r = veer.dig(&[&format!("{name}.example.test"), "A"]);
    assert_eq!(r.status, "NOERROR", "{}", r.raw);
    assert!(r.has_flag("aa"), "{}", r.raw);
    assert!(r.answer.is_empty(), "{}", r.raw);
    let soa: Vec<&Rr> = r.authority.iter().filter(|r| r.rtype == "SOA").collect();
    assert_eq!(soa.len(), 1, "NODATA without SOA:\n{}", r.raw);
    assert_eq!(soa[0].name, "example.test.", "{}", r.raw);
    soa_serial(&soa[0].data)
}

/// Samples `name` for `period` and asserts it never differs from `want`.
#[track_caller]
fn assert_stays(veer: &Veer, name: &str, want: &[&str], period: Duration) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert_eq!(a(veer, name), want, "{name} moved; logs:\n{}", veer.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------

#[test]
fn primary_killed_fails_over_to_tier_2_and_back_after_rise() {
    let mut primary = HttpBackend::start();
    let secondary = HttpBackend::start();
    let (_dir, config) = setup(&format!(
        "{}{}{}",
        check(
            "primary",
            &format!("http = \"{}\"", primary.url("/health")),
            "fall = 3\nrise = 2"
        ),
        check(
            "secondary",
            &format!("http = \"{}\"", secondary.url("/health")),
            "fall = 3\nrise = 2"
        ),
        route(
            "www",
            "policy = \"failover\"",
            &[(1, "10.0.0.1", "primary"), (2, "10.0.0.2", "secondary")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check primary: unknown -> up");
    wait_log(&veer, "check secondary: unknown -> up");
    assert_eq!(a(&veer, "www"), ["10.0.0.1"]);

    // Killed: tier 2 answers within fall × interval (+ margin).
    let bound = INTERVAL * 3 + MARGIN;
    let killed = Instant::now();
    primary.kill();
    wait_a(&veer, "www", &["10.0.0.2"], WAIT);
    let took = killed.elapsed();
    eprintln!("failover: first changed answer {took:?} after the kill (fall × interval = 150ms)");
    assert!(
        took <= bound,
        "failover took {took:?}, bound {bound:?}; logs:\n{}",
        veer.logs()
    );
    let logs = veer.logs();
    assert!(
        logs.contains("check primary: up -> down (3 consecutive failures: "),
        "{logs}"
    );

    // Restored: back to tier 1 after `rise` successes.
    let hits = primary.hits();
    let restored = Instant::now();
    primary.restart();
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
    let took = restored.elapsed();
    eprintln!(
        "failback: first changed answer {took:?} after the restart (rise × interval = 100ms)"
    );
    let bound = INTERVAL * 2 + MARGIN;
    assert!(
        took <= bound,
        "failback took {took:?}, bound {bound:?}; logs:\n{}",
        veer.logs()
    );
    assert!(
        primary.hits() >= hits + 2,
        "moved back after {} probe(s), rise = 2",
        primary.hits() - hits
    );
    assert!(
        veer.logs()
            .contains("check primary: down -> up (2 consecutive successes: status 200)"),
        "{}",
        veer.logs()
    );
}

#[test]
fn every_when_all_down_value_over_a_tcp_check() {
    let mut db = TcpBackend::start();
    let members = [(1, "10.0.0.1", "db"), (2, "10.0.0.2", "db")];
    let (_dir, config) = setup(&format!(
        "{}{}{}{}{}",
        check(
            "db",
            &format!("tcp = \"{}\"", db.addr()),
            "fall = 2\nrise = 1"
        ),
        route(
            "open",
            "policy = \"failover\"\nwhen_all_down = \"open\"",
            &members
        ),
        route(
            "closed",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &members
        ),
        route(
            "fallback",
            "policy = \"failover\"\nwhen_all_down = \"fallback\"\nfallback = [\"192.0.2.250\", \"192.0.2.251\"]",
            &members
        ),
        route(
            "servfail",
            "policy = \"failover\"\nwhen_all_down = \"servfail\"",
            &members
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(
        &veer,
        "check db: unknown -> up (first probe succeeded: connected to",
    );
    assert!(db.accepted() > 0);
    for name in ["open", "closed", "fallback", "servfail"] {
        assert_eq!(a(&veer, name), ["10.0.0.1"], "{name}");
    }

    db.kill();
    wait_log(
        &veer,
        "check db: up -> down (2 consecutive failures: connect",
    );
    // Let the snapshot with the transition be published.
    wait_answer(&veer, "servfail", "SERVFAIL", &[], WAIT);
    // open: answer as if all were healthy (tier 1).
    assert_eq!(a(&veer, "open"), ["10.0.0.1"]);
    // closed: NODATA with the zone's SOA.
    assert_nodata(&veer, "closed");
    // fallback: the fallback values.
    assert_eq!(a(&veer, "fallback"), ["192.0.2.250", "192.0.2.251"]);
    // servfail.
    let r = veer.dig(&["servfail.example.test", "A"]);
    assert_eq!(r.status, "SERVFAIL", "{}", r.raw);
    assert!(r.answer.is_empty(), "{}", r.raw);

    db.restart();
    for name in ["open", "closed", "fallback", "servfail"] {
        wait_a(&veer, name, &["10.0.0.1"], WAIT);
    }
}

#[test]
fn multivalue_answers_only_healthy_members_and_at_most_max() {
    let mut web: Vec<HttpBackend> = (0..4).map(|_| HttpBackend::start()).collect();
    let mut body = "[health]\nguard_min_checks = 100\n\n".to_string();
    for (i, b) in web.iter().enumerate() {
        body += &check(
            &format!("m{}", i + 1),
            &format!("http = \"{}\"", b.url("/")),
            "fall = 2\nrise = 1",
        );
    }
    // The last member has no check: always healthy.
    let members = [
        (0, "10.0.1.1", "m1"),
        (0, "10.0.1.2", "m2"),
        (0, "10.0.1.3", "m3"),
        (0, "10.0.1.4", "m4"),
        (0, "10.0.1.9", ""),
    ];
    body += &route("pool", "policy = \"multivalue\"", &members);
    body += &route("pair", "policy = \"multivalue\"\nmax = 2", &members);
    let (_dir, config) = setup(&body);
    let veer = Veer::start(&config);
    for i in 1..=4 {
        wait_log(&veer, &format!("check m{i}: unknown -> up"));
    }
    let all = ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.9"];
    wait_a(&veer, "pool", &all, WAIT);

    web[0].kill();
    web[2].kill();
    let healthy = ["10.0.1.2", "10.0.1.4", "10.0.1.9"];
    wait_a(&veer, "pool", &healthy, WAIT);
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let pair = a(&veer, "pair");
        assert_eq!(pair.len(), 2, "max = 2: {pair:?}");
        assert_ne!(pair[0], pair[1], "{pair:?}");
        for ip in pair {
            assert!(healthy.contains(&ip.as_str()), "unhealthy {ip} answered");
            seen.insert(ip);
        }
    }
    assert!(seen.len() >= 2, "{seen:?}");

    web[0].restart();
    wait_a(
        &veer,
        "pool",
        &["10.0.1.1", "10.0.1.2", "10.0.1.4", "10.0.1.9"],
        WAIT,
    );
}

#[test]
fn min_healthy_fails_a_tier_over_as_a_count_and_a_fraction() {
    let mut web: Vec<HttpBackend> = (0..4).map(|_| HttpBackend::start()).collect();
    let mut body = "[health]\nguard_min_checks = 100\n\n".to_string();
    for (i, b) in web.iter().enumerate() {
        body += &check(
            &format!("w{}", i + 1),
            &format!("http = \"{}\"", b.url("/")),
            "fall = 2\nrise = 1",
        );
    }
    // min_healthy applies to every tier, so tier 2 has two members too
    // (10.0.0.10 has no check: always healthy).
    let members = [
        (1, "10.0.0.1", "w1"),
        (1, "10.0.0.2", "w2"),
        (1, "10.0.0.3", "w3"),
        (2, "10.0.0.9", "w4"),
        (2, "10.0.0.10", ""),
    ];
    body += &route("count", "policy = \"failover\"\nmin_healthy = 2", &members);
    // 0.75 of 3 members = 3, of 2 members = 2 (rounded up).
    body += &route(
        "share",
        "policy = \"failover\"\nmin_healthy = 0.75",
        &members,
    );
    let (_dir, config) = setup(&body);
    let veer = Veer::start(&config);
    for i in 1..=4 {
        wait_log(&veer, &format!("check w{i}: unknown -> up"));
    }
    let tier1 = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    let tier2 = ["10.0.0.10", "10.0.0.9"];
    wait_a(&veer, "count", &tier1, WAIT);
    assert_eq!(a(&veer, "share"), tier1);

    // 2 of 3 healthy: enough for 2, not for 0.75.
    web[0].kill();
    wait_a(&veer, "count", &["10.0.0.2", "10.0.0.3"], WAIT);
    wait_a(&veer, "share", &tier2, WAIT);

    // 1 of 3 healthy: tier 2 for both.
    web[1].kill();
    wait_a(&veer, "count", &tier2, WAIT);
    assert_eq!(a(&veer, "share"), tier2);

    // Tier 2 below min_healthy too: no tier qualifies, so the first tier
    // with a healthy member answers whole (one survivor should not take
    // all the traffic).
    web[3].kill();
    wait_a(&veer, "count", &tier1, WAIT);
    assert_eq!(a(&veer, "share"), tier1);
}

// ---------------------------------------------------------------------------
// Check kinds
// ---------------------------------------------------------------------------

#[test]
fn https_self_signed_is_up_without_verification_and_down_with_it() {
    let web = HttpBackend::start_tls();
    let url = web.url("/health");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let (_dir, config) = setup(&format!(
        "{}{}{}{}",
        check(
            "lax",
            &format!("https = \"{url}\""),
            "tls_verify = false\nfall = 1\nrise = 1"
        ),
        check(
            "strict",
            &format!("https = \"{url}\""),
            "tls_verify = true\nfall = 1\nrise = 1"
        ),
        route(
            "lax",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "lax")]
        ),
        route(
            "strict",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.2", "strict")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(
        &veer,
        "check lax: unknown -> up (first probe succeeded: status 200)",
    );
    wait_log(&veer, "check strict: unknown -> down (first probe failed: ");
    let logs = veer.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("check strict: unknown -> down"))
        .unwrap();
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    assert!(web.hits() > 0, "the HTTPS backend served nothing");
    assert!(
        web.last_request().starts_with("GET /health HTTP/1.1"),
        "{}",
        web.last_request()
    );
    wait_a(&veer, "lax", &["10.0.0.1"], WAIT);
    assert_nodata(&veer, "strict");
}

#[test]
fn http_body_mismatch_and_status_500_are_down() {
    let web = HttpBackend::start();
    web.set_body("service: ok\n");
    let (_dir, config) = setup(&format!(
        "{}{}{}{}",
        check(
            "body",
            &format!("http = \"{}\"", web.url("/body")),
            "expect = { body = \"ok\" }\nfall = 1\nrise = 1"
        ),
        check(
            "status",
            &format!("http = \"{}\"", web.url("/status")),
            "host = \"health.example\"\nheaders = { X-Probe = \"veer\" }\nfall = 1\nrise = 1"
        ),
        route(
            "body",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "body")]
        ),
        route(
            "status",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.2", "status")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check body: unknown -> up");
    wait_log(&veer, "check status: unknown -> up");
    wait_a(&veer, "body", &["10.0.0.1"], WAIT);
    wait_a(&veer, "status", &["10.0.0.2"], WAIT);
    // Method, Host override and extra headers reach the backend.
    assert!(
        wait_until(WAIT, || {
            let req = web.last_request().to_lowercase();
            req.starts_with("get /status ")
                && req.contains("\r\nhost: health.example\r\n")
                && req.contains("\r\nx-probe: veer\r\n")
        }),
        "request: {}",
        web.last_request()
    );

    // Body mismatch (status still 200): only the body check goes down.
    web.set_body("service: degraded\n");
    wait_log(
        &veer,
        "check body: up -> down (1 consecutive failures: status 200, body does not contain `ok`)",
    );
    wait_answer(&veer, "body", "NOERROR", &[], WAIT);
    assert_nodata(&veer, "body");
    assert_eq!(a(&veer, "status"), ["10.0.0.2"]);

    // Status 500 (body fine again): the status check goes down.
    web.set_body("ok");
    web.set_status(500);
    wait_log(
        &veer,
        "check status: up -> down (1 consecutive failures: status 500)",
    );
    wait_answer(&veer, "status", "NOERROR", &[], WAIT);
    assert_nodata(&veer, "status");

    web.set_status(200);
    wait_a(&veer, "body", &["10.0.0.1"], WAIT);
    wait_a(&veer, "status", &["10.0.0.2"], WAIT);
}

#[test]
fn exec_check_follows_exit_status_and_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    let (_cfg_dir, config) = setup(&format!(
        "{}[check.slow]\nexec = [\"/bin/sleep\", \"5\"]\ninterval = \"300ms\"\ntimeout = \"100ms\"\nfall = 1\n\n{}",
        check(
            "flag",
            &format!(
                "exec = [\"/bin/sh\", \"-c\", \"test -e '{}'\"]",
                flag.display()
            ),
            "fall = 1\nrise = 1"
        ),
        route(
            "flag",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "flag")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check flag: unknown -> down (first probe failed: ");
    wait_answer(&veer, "flag", "NOERROR", &[], WAIT);
    assert_nodata(&veer, "flag");

    std::fs::write(&flag, "").unwrap();
    wait_a(&veer, "flag", &["10.0.0.1"], WAIT);
    wait_log(
        &veer,
        "check flag: down -> up (1 consecutive successes: exit 0)",
    );

    std::fs::remove_file(&flag).unwrap();
    wait_answer(&veer, "flag", "NOERROR", &[], WAIT);

    wait_log(
        &veer,
        "check slow: unknown -> down (first probe failed: timeout after 100ms)",
    );
}

/// Processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> usize {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c == want.as_bytes())
        .count()
}

#[test]
fn exec_timeout_kills_the_whole_process_group() {
    // sh stays the parent of sleep; killing only sh left sleep orphaned,
    // one more per probe, without bound.
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let secs = format!("37.{}", std::process::id());
    let (_cfg_dir, config) = setup(&format!(
        "[check.hang]\nexec = [\"/bin/sh\", \"-c\", \"echo >> '{}'; sleep {secs}; true\"]\n\
         interval = \"150ms\"\ntimeout = \"50ms\"\njitter = \"0ms\"\nfall = 1\n",
        runs.display()
    ));
    let veer = Veer::start(&config);
    let probes = || std::fs::read_to_string(&runs).map_or(0, |t| t.lines().count());
    assert!(
        wait_until(WAIT, || probes() >= 5),
        "probes did not run; logs:\n{}",
        veer.logs()
    );
    // At most the probe in flight is alive.
    let alive = processes_running(&["sleep", &secs]);
    println!("after {} probes: {alive} sleep processes", probes());
    assert!(alive <= 1, "{alive} probe processes outlived their timeout");
}

#[test]
fn http_probes_ignore_proxy_variables() {
    let web = HttpBackend::start();
    let (_dir, config) = setup(&check(
        "web",
        &format!("http = \"{}\"", web.url("/")),
        "fall = 1\nrise = 1",
    ));
    // A proxy that refuses every connection: a probe through it fails.
    let proxy = "http://127.0.0.1:9";
    let env = [
        ("HTTP_PROXY", proxy),
        ("http_proxy", proxy),
        ("HTTPS_PROXY", proxy),
        ("ALL_PROXY", proxy),
        ("NO_PROXY", ""),
    ];
    let veer = Veer::start_env(&config, &[], &env);
    wait_log(&veer, "check web: unknown -> up");
}

#[test]
fn an_http_check_with_its_own_proxy_goes_through_it() {
    // The target (port 9, closed) is reached only through the proxy, a
    // backend that answers any request: up only if the proxy is used.
    let proxy = HttpBackend::start();
    let (_dir, config) = setup(&check(
        "web",
        &format!(
            "http = \"http://127.0.0.1:9/health\"\nproxy = \"{}\"",
            proxy.url("")
        ),
        "fall = 1\nrise = 1",
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    let req = proxy.last_request();
    assert!(
        req.starts_with("GET http://127.0.0.1:9/health"),
        "not a proxy request: {req}"
    );
}

/// An HTTP/1.1 backend that keeps connections alive, answers 200 on every
/// connection it has, and stops accepting new ones after the first.
fn keep_alive_backend() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        // New connections are refused from now on.
        drop(listener);
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buf[..n]);
            while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.drain(..end + 4);
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if conn.write_all(reply).is_err() {
                    return;
                }
            }
        }
    });
    addr
}

#[test]
fn http_probes_open_a_fresh_connection_each_time() {
    // A pooled keep-alive connection kept this backend "up" although it
    // refuses every new connection.
    let addr = keep_alive_backend();
    let (_dir, config) = setup(&check(
        "web",
        &format!("http = \"http://{addr}/\""),
        "fall = 1\nrise = 1",
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    wait_log(&veer, "check web: up -> down");
}

#[test]
fn file_check_is_reread_when_the_file_changes() {
    // interval = 30s: only the file watcher can make the changes below
    // show within seconds.
    let (dir, config) = setup(&format!(
        "[check.web]\nfile = \"flags/web.state\"\ninterval = \"30s\"\nfall = 1\nrise = 1\n\n{}",
        route(
            "web",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "web")]
        ),
    ));
    let flag = write_file(dir.path(), "flags/web.state", "up\n");
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    wait_a(&veer, "web", &["10.0.0.1"], WAIT);

    let bound = Duration::from_secs(3);
    let t = Instant::now();
    write_atomic(&flag, "down\n").unwrap();
    wait_answer(&veer, "web", "NOERROR", &[], WAIT);
    assert!(t.elapsed() < bound, "took {:?}", t.elapsed());
    assert!(veer.logs().contains("check web: up -> down"));

    let t = Instant::now();
    write_atomic(&flag, "up\n").unwrap();
    wait_a(&veer, "web", &["10.0.0.1"], WAIT);
    assert!(t.elapsed() < bound, "took {:?}", t.elapsed());
}

#[test]
fn one_change_of_a_file_is_one_probe_result() {
    // A write is several events (truncate, write; a rename's two). They
    // used to count as several probes, so fall = 2 flipped at once.
    let (dir, config) = setup(&format!(
        "[check.web]\nfile = \"flags/web.state\"\ninterval = \"2s\"\njitter = \"0s\"\nfall = 2\nrise = 2\n\n{}",
        route(
            "web",
            "policy = \"failover\"",
            &[(1, "10.0.0.1", "web"), (2, "10.0.0.2", "")]
        ),
    ));
    let flag = write_file(dir.path(), "flags/web.state", "up\n");
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    for (how, write) in [("in place", false), ("by rename", true)] {
        let t = Instant::now();
        if write {
            write_atomic(&flag, "down\n").unwrap();
        } else {
            std::fs::write(&flag, "down\n").unwrap();
        }
        // One failure: still up for most of an interval.
        assert_stays(&veer, "web", &["10.0.0.1"], Duration::from_millis(1200));
        wait_a(&veer, "web", &["10.0.0.2"], WAIT);
        println!(
            "{how}: down after {:?} (fall 2 x interval 2 s)",
            t.elapsed()
        );
        std::fs::write(&flag, "up\n").unwrap();
        wait_a(&veer, "web", &["10.0.0.1"], WAIT);
    }
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis((f[0] + f[1]) * 10)
}

#[test]
fn idle_file_check_does_not_spin() {
    // One file check probed every 30 s and a file nobody writes: the
    // server has nothing to do between probes.
    let (dir, config) = setup(&format!(
        "[check.web]\nfile = \"web.state\"\ninterval = \"30s\"\n\n{}",
        route("web", "policy = \"failover\"", &[(1, "10.0.0.1", "web")]),
    ));
    write_file(dir.path(), "web.state", "up\n");
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    let window = Duration::from_secs(1);
    let before = cpu_time(veer.pid());
    std::thread::sleep(window);
    let used = cpu_time(veer.pid()) - before;
    assert!(
        used < window / 5,
        "an idle veer with one file check used {used:?} of CPU in {window:?}"
    );
}

#[test]
fn calculated_check_needs_min_healthy_children() {
    let (dir, config) = setup(&format!(
        "{}{}{}[check.all]\nchildren = [\"f1\", \"f2\", \"f3\"]\nmin_healthy = 2\n\n{}",
        check("f1", "file = \"f1\"", "fall = 1\nrise = 1"),
        check("f2", "file = \"f2\"", "fall = 1\nrise = 1"),
        check("f3", "file = \"f3\"", "fall = 1\nrise = 1"),
        route(
            "svc",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "all")]
        ),
    ));
    let files: Vec<PathBuf> = (1..=3)
        .map(|i| write_file(dir.path(), &format!("f{i}"), "up"))
        .collect();
    let veer = Veer::start(&config);
    for i in 1..=3 {
        wait_log(&veer, &format!("check f{i}: unknown -> up"));
    }
    wait_a(&veer, "svc", &["10.0.0.1"], WAIT);

    // 2 of 3: still up.
    write_atomic(&files[0], "down").unwrap();
    wait_log(&veer, "check f1: up -> down");
    assert_stays(&veer, "svc", &["10.0.0.1"], INTERVAL * 4);
    // 1 of 3: down.
    write_atomic(&files[1], "down").unwrap();
    wait_answer(&veer, "svc", "NOERROR", &[], WAIT);
    wait_log(
        &veer,
        "check all: up -> down (1 of 3 children healthy, need 2)",
    );
    write_atomic(&files[0], "up").unwrap();
    wait_a(&veer, "svc", &["10.0.0.1"], WAIT);
    wait_log(
        &veer,
        "check all: down -> up (2 of 3 children healthy, need 2)",
    );
}

#[test]
fn inverted_check_is_up_when_the_probe_fails() {
    // "Answer while the maintenance page is NOT served (status 200)".
    let maint = HttpBackend::start();
    let (_dir, config) = setup(&format!(
        "{}{}",
        check(
            "maint",
            &format!("http = \"{}\"", maint.url("/maintenance")),
            "invert = true\nfall = 1\nrise = 1"
        ),
        route(
            "www",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "maint")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(
        &veer,
        "check maint: unknown -> down (first probe failed: inverted: status 200)",
    );
    wait_answer(&veer, "www", "NOERROR", &[], WAIT);
    maint.set_status(404);
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
    wait_log(
        &veer,
        "check maint: down -> up (1 consecutive successes: inverted: status 404)",
    );
}

#[test]
fn dns_check_asks_another_server() {
    // The upstream is a second veer serving the same zone.
    let (_up_dir, up_config) = setup("");
    let mut upstream = Veer::start(&up_config);
    let server = upstream.addr;
    let dns = |query: &str, answer: &str| {
        format!(
            "dns = \"{server}\"\nquery = \"{query}\"\nqtype = \"A\"\nexpect = {{ answer = \"{answer}\" }}"
        )
    };
    let (_dir, config) = setup(&format!(
        "{}{}{}{}",
        check_timed(
            "good",
            &dns("static.example.test", "192.0.2.10"),
            FIRST_PROBE,
            "fall = 1\nrise = 1"
        ),
        // 192.0.2.1 is a prefix of the real answer 192.0.2.10: RDATA is
        // matched exactly, not as a substring.
        check_timed(
            "wrong",
            &dns("static.example.test", "192.0.2.1"),
            FIRST_PROBE,
            "fall = 1\nrise = 1"
        ),
        check_timed(
            "nx",
            &format!("dns = \"{server}\"\nquery = \"nosuch.example.test\""),
            FIRST_PROBE,
            "fall = 1\nrise = 1"
        ),
        route(
            "www",
            "policy = \"multivalue\"\nwhen_all_down = \"closed\"",
            &[
                (0, "10.0.0.1", "good"),
                (0, "10.0.0.2", "wrong"),
                (0, "10.0.0.3", "nx")
            ]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check good: unknown -> up");
    wait_log(&veer, "check wrong: unknown -> down");
    wait_log(&veer, "check nx: unknown -> down");
    let logs = veer.logs();
    let nx = logs
        .lines()
        .find(|l| l.contains("check nx: unknown -> down"))
        .unwrap();
    assert!(
        nx.contains("nosuch.example.test. A: ") && !nx.contains("NOERROR"),
        "{nx}"
    );
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);

    upstream.terminate();
    wait_log(&veer, "check good: up -> down");
    wait_answer(&veer, "www", "NOERROR", &[], WAIT);
}

// ---------------------------------------------------------------------------
// Overrides and checkpoint
// ---------------------------------------------------------------------------

/// A failover route `www` (tier 1 = 10.0.0.1 checked by `a`, tier 2 =
/// 10.0.0.2 checked by `c`), both checks on `web`.
fn override_scenario(web: &HttpBackend) -> (TempDir, PathBuf) {
    setup(&format!(
        "{}{}{}",
        check(
            "a",
            &format!("http = \"{}\"", web.url("/a")),
            "fall = 2\nrise = 1"
        ),
        check(
            "c",
            &format!("http = \"{}\"", web.url("/c")),
            "fall = 2\nrise = 1"
        ),
        route(
            "www",
            "policy = \"failover\"",
            &[(1, "10.0.0.1", "a"), (2, "10.0.0.2", "c")]
        ),
    ))
}

fn admin_state(dir: &Path) -> PathBuf {
    dir.join("state").join("admin-state")
}

#[test]
fn override_with_until_reverts_by_itself() {
    let web = HttpBackend::start();
    let (dir, config) = override_scenario(&web);
    let veer = Veer::start(&config);
    wait_log(&veer, "check a: unknown -> up");
    wait_log(&veer, "check c: unknown -> up");
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);

    // RFC 3339 with whole seconds: `until` is 2..3 s from now.
    let until = SystemTime::now() + Duration::from_secs(3);
    let stamp = humantime::format_rfc3339_seconds(until).to_string();
    let until = humantime::parse_rfc3339(&stamp).unwrap();
    write_atomic(
        &admin_state(dir.path()),
        &format!("a = down until {stamp} # maintenance\n"),
    )
    .unwrap();
    wait_a(&veer, "www", &["10.0.0.2"], WAIT);
    assert!(
        SystemTime::now() < until,
        "the override applied too late to test its expiry"
    );
    wait_log(
        &veer,
        &format!(
            "check a: forced down until {stamp} by the admin-state file (maintenance); real state up"
        ),
    );

    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
    let now = SystemTime::now();
    assert!(
        now >= until,
        "reverted {:?} early",
        until.duration_since(now)
    );
    let late = now.duration_since(until).unwrap();
    assert!(late <= MARGIN * 2, "reverted {late:?} after the expiry");
    // The file still holds the (expired) line; nothing else changed.
    assert!(
        std::fs::read_to_string(admin_state(dir.path()))
            .unwrap()
            .contains("a = down until")
    );
}

#[test]
fn malformed_admin_state_is_rejected_whole_and_the_overrides_stay() {
    let web = HttpBackend::start();
    let (dir, config) = override_scenario(&web);
    let veer = Veer::start(&config);
    wait_log(&veer, "check a: unknown -> up");
    wait_log(&veer, "check c: unknown -> up");
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
    let path = admin_state(dir.path());

    write_atomic(&path, "# drain a\na = down # drain\n").unwrap();
    wait_a(&veer, "www", &["10.0.0.2"], WAIT);
    wait_log(
        &veer,
        "check a: forced down by the admin-state file (drain); real state up",
    );

    // Line 1 alone would lift the override; lines 2 and 3 are errors.
    write_atomic(&path, "a = up\nc = sideways\nghost = down\n").unwrap();
    wait_log(&veer, "rejected whole; the current overrides stay");
    let logs = veer.logs();
    assert!(
        logs.contains("admin-state:2: state for `c` must be up or down"),
        "{logs}"
    );
    assert!(
        logs.contains("admin-state:3: `ghost` is not a configured check"),
        "{logs}"
    );
    assert!(!logs.contains("check a: forced up"), "{logs}");
    assert_stays(&veer, "www", &["10.0.0.2"], INTERVAL * 6);

    // A valid file again: the override is gone.
    write_atomic(&path, "").unwrap();
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
    wait_log(&veer, "check a: override removed");
}

#[test]
fn admin_state_naming_a_removed_check_keeps_the_other_overrides_at_start() {
    // The check `gone` was removed from the config while veer was down:
    // its line is skipped, the maintenance override on `a` still holds.
    let web = HttpBackend::start();
    let (dir, config) = override_scenario(&web);
    write_file(
        dir.path(),
        "state/admin-state",
        "gone = down # old\na = down # maintenance\n",
    );
    let veer = Veer::start(&config);
    wait_log(
        &veer,
        "admin-state:1: `gone` is not a configured check; line skipped",
    );
    wait_log(
        &veer,
        "check a: forced down by the admin-state file (maintenance)",
    );
    wait_a(&veer, "www", &["10.0.0.2"], WAIT);
}

#[test]
fn checkpoint_answers_the_first_query_after_a_restart() {
    let mut web = HttpBackend::start();
    web.kill();
    let url = web.url("/");
    let body = |name: &str, url: &str, interval: &str| {
        format!(
            "[check.{name}]\nhttp = \"{url}\"\ninterval = \"{interval}\"\n\n{}",
            route(
                "www",
                "policy = \"failover\"",
                &[(1, "10.0.0.1", name), (2, "10.0.0.2", "")]
            )
        )
    };
    let (dir, config) = setup(&body("a", &url, "30s"));
    let mut veer = Veer::start(&config);
    // The first probe runs within 2 s of the start (the start spread).
    wait_log(
        &veer,
        "check a: unknown -> down (first probe failed: connect",
    );
    wait_a(&veer, "www", &["10.0.0.2"], WAIT);
    let serial_before = serial(&veer);
    let checkpoint = dir.path().join("state/health.json");
    let saved = std::fs::read_to_string(&checkpoint).expect("checkpoint written");
    assert!(saved.contains("\"down\""), "{saved}");
    assert!(veer.terminate().success());

    // The backend now accepts connections but never answers: with a 15 s
    // probe timeout no probe can complete while we ask, so the answer can
    // only come from the checkpoint (without it, `a` would be unknown,
    // which is eligible, and tier 1 would answer).
    web.set_hang(true);
    web.restart();
    let veer = Veer::start(&config);
    assert_eq!(
        a(&veer, "www"),
        ["10.0.0.2"],
        "first answer after restart; logs:\n{}",
        veer.logs()
    );
    assert!(
        serial(&veer) >= serial_before,
        "serial went back after restart"
    );
    assert!(!veer.logs().contains("check a: "), "{}", veer.logs());
    drop(veer);

    // Restored by name across edits made while veer was down: a timing
    // edit restores the verdict, a target edit restores it provisionally
    // (answered with min_ttl until a probe confirms it).
    let ask_ttl = |veer: &Veer| {
        let r = veer.dig(&["www.example.test", "A"]);
        (r.answer_data(), r.answer.first().map(|a| a.ttl))
    };
    std::fs::write(&config, config_text(&body("a", &url, "20s"))).unwrap();
    let veer = Veer::start(&config);
    assert_eq!(
        ask_ttl(&veer),
        (vec!["10.0.0.2".into()], Some(30)),
        "timing edit"
    );
    drop(veer);
    let other = url.replace("127.0.0.1", "localhost");
    std::fs::write(&config, config_text(&body("a", &other, "20s"))).unwrap();
    let veer = Veer::start(&config);
    assert_eq!(
        ask_ttl(&veer),
        (vec!["10.0.0.2".into()], Some(10)),
        "target edit"
    );
    drop(veer);

    // Control: a check of another name is not restored.
    std::fs::write(&config, config_text(&body("b", &url, "20s"))).unwrap();
    let veer = Veer::start(&config);
    assert_eq!(
        a(&veer, "www"),
        ["10.0.0.1"],
        "new check; logs:\n{}",
        veer.logs()
    );
}

// ---------------------------------------------------------------------------
// Serial and TTL
// ---------------------------------------------------------------------------

#[test]
fn soa_serial_rises_with_each_transition() {
    let mut web = HttpBackend::start();
    let (_dir, config) = setup(&format!(
        "{}{}",
        check(
            "web",
            &format!("http = \"{}\"", web.url("/")),
            "fall = 2\nrise = 2"
        ),
        route(
            "www",
            "policy = \"failover\"\nwhen_all_down = \"closed\"\nmin_ttl = 30",
            &[(1, "10.0.0.1", "web")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
    let s0 = serial(&veer);
    assert!(s0 >= 1000, "serial {s0} below the zone file's");

    // No transition: no new serial.
    std::thread::sleep(INTERVAL * 4);
    assert_eq!(serial(&veer), s0);

    let mut last = s0;
    for round in 0..2 {
        web.kill();
        wait_answer(&veer, "www", "NOERROR", &[], WAIT);
        let s = serial(&veer);
        assert!(
            s > last,
            "round {round}: serial {s} after going down, was {last}"
        );
        assert_eq!(assert_nodata(&veer, "www"), s, "NODATA carries the new SOA");
        last = s;

        web.restart();
        wait_a(&veer, "www", &["10.0.0.1"], WAIT);
        let s = serial(&veer);
        assert!(
            s > last,
            "round {round}: serial {s} after coming up, was {last}"
        );
        last = s;
    }
}

#[test]
fn ttl_drops_to_min_ttl_while_a_change_is_pending() {
    let mut web = HttpBackend::start();
    // fall = 100: the check stays up for 5 s of failures, pending all along.
    let (_dir, config) = setup(&format!(
        "{}{}",
        check(
            "web",
            &format!("http = \"{}\"", web.url("/")),
            "fall = 100\nrise = 1"
        ),
        route(
            "www",
            "policy = \"failover\"\nmin_ttl = 5",
            &[(1, "10.0.0.1", "web")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check web: unknown -> up");
    let ttl = || {
        let r = veer.dig(&["www.example.test", "A"]);
        assert_eq!(r.answer_data(), ["10.0.0.1"], "{}", r.raw);
        r.answer[0].ttl
    };
    assert!(wait_until(WAIT, || ttl() == 30), "steady TTL is not 30");

    web.kill();
    assert!(
        wait_until(WAIT, || ttl() == 5),
        "no min_ttl while failing; logs:\n{}",
        veer.logs()
    );
    web.restart();
    assert!(
        wait_until(WAIT, || ttl() == 30),
        "TTL did not return to 30; logs:\n{}",
        veer.logs()
    );
    assert!(!veer.logs().contains("check web: up -> down"));
}

#[test]
fn unknown_answers_carry_min_ttl_and_edits_never_revive_a_dead_primary() {
    // The probe takes 1 s and fails: the check is Unknown for that long,
    // and the dead primary is eligible meanwhile (cold start fails open).
    let slow = |secs: &str| {
        format!(
            "[check.slow]\nexec = [\"sh\", \"-c\", \"sleep {secs}; exit 1\"]\n\
             interval = \"5s\"\ntimeout = \"4s\"\nfall = 1\nrise = 1\n\n{}",
            route(
                "www",
                "policy = \"failover\"\nmin_ttl = 2",
                &[(1, "10.0.0.1", "slow"), (2, "10.0.0.2", "")]
            )
        )
    };
    let (dir, config) = setup(&slow("1"));
    let veer = Veer::start(&config);
    // Every answer naming the primary while its check is Unknown must
    // carry min_ttl: a resolver would keep a dead address for 30 s.
    let watch_unknown = |downs: usize| {
        let mut primary = 0;
        let done = wait_until(WAIT, || {
            let r = veer.dig(&["www.example.test", "A"]);
            if r.answer_data() == ["10.0.0.1"] {
                primary += 1;
                assert!(
                    r.answer[0].ttl <= 2,
                    "Unknown answered with TTL 30:\n{}",
                    r.raw
                );
            }
            veer.logs().matches("check slow: unknown -> down").count() >= downs
        });
        assert!(done, "no verdict; logs:\n{}", veer.logs());
        primary
    };
    let seen = watch_unknown(1);
    assert!(seen > 0, "never saw the Unknown window");
    wait_a(&veer, "www", &["10.0.0.2"], WAIT);
    let r = veer.dig(&["www.example.test", "A"]);
    assert_eq!(r.answer[0].ttl, 30, "{}", r.raw);

    // An edit of what the check runs (its target) keeps the last verdict
    // provisionally: the dead primary is never answered, and the answer
    // is short-lived (pending) until the new probe confirms the verdict.
    let follow = |what: &str, want_pending: bool| {
        let mut pending_seen = false;
        let confirmed = wait_until(WAIT, || {
            let r = veer.dig(&["www.example.test", "A"]);
            assert_eq!(r.answer_data(), ["10.0.0.2"], "{what}: {}", r.raw);
            pending_seen |= r.answer[0].ttl <= 2;
            !want_pending || (pending_seen && r.answer[0].ttl == 30)
        });
        assert!(confirmed, "{what}: never confirmed; logs:\n{}", veer.logs());
        pending_seen
    };
    write_file(dir.path(), "veer.toml", &config_text(&slow("1.5")));
    veer.signal("HUP");
    veer.expect_log("check slow: target edited; keeping down", WAIT);
    assert!(follow("target edit", true));
    assert_eq!(
        veer.logs().matches("check slow: unknown -> down").count(),
        1
    );

    // A timing edit keeps state and counters: no pending window at all.
    write_file(
        dir.path(),
        "veer.toml",
        &config_text(&slow("1.5").replace("interval = \"5s\"", "interval = \"6s\"")),
    );
    veer.signal("HUP");
    veer.expect_log("check slow: timing edited; state and counters kept", WAIT);
    let pending = follow("timing edit", false);
    assert!(!pending, "a timing edit made the answer pending");
}

// ---------------------------------------------------------------------------
// veer check
// ---------------------------------------------------------------------------

#[test]
fn check_rejects_a_route_colliding_with_a_static_record_set() {
    let body = format!(
        "{}{}",
        route("static", "policy = \"failover\"", &[(1, "10.0.0.1", "")]),
        route("www", "policy = \"failover\"", &[(1, "10.0.0.2", "")]),
    );
    let (dir, config) = setup(&body);
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .position(|l| l.trim() == "[[route]]")
        .expect("route line")
        + 1;
    let out = run_veer(
        &["check", "--config", config.to_str().unwrap()],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let want = format!(
        "{}:{line}: route static.example.test. A: ",
        config.display()
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(&want) && l.contains("collides with the static A records")),
        "no `{want}... collides ...` in:\n{stderr}"
    );
    assert_eq!(stderr.matches("collides").count(), 1, "{stderr}");

    // The same name with another type does not collide.
    std::fs::write(
        &config,
        config_text(
            &body
                .replacen("type = \"A\"", "type = \"AAAA\"", 1)
                .replacen("10.0.0.1", "2001:db8::1", 1),
        ),
    )
    .unwrap();
    let out = run_veer(
        &["check", "--config", config.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(dir);
}

// ---------------------------------------------------------------------------
// Chaos
// ---------------------------------------------------------------------------

/// How long the driver kills and restarts backends.
const CHAOS_TIME: Duration = Duration::from_secs(15);

/// A backend that has been dead for longer than `fall × interval` plus
/// this margin must not be answered. 500 ms over the 100 ms detection time:
/// the next probe may be one interval (+ jitter) away, the controller
/// publishes a few ms later, and on a loaded 2-core CI box (this test runs
/// beside the others, veer's threads compete with the client and the
/// backends) threads can be descheduled for a few hundred ms; the bound
/// still catches a server that does not fail over (or fails over per
/// `interval × fall` of wall time several times too slowly).
const CHAOS_MARGIN: Duration = Duration::from_millis(500);

/// One query of the chaos client.
struct Sample {
    sent: Instant,
    received: Instant,
    answer: Vec<String>,
}

/// Sends an A query for `name` over UDP and waits for the matching
/// response; `Err` on timeout or a malformed response.
fn udp_ask(sock: &UdpSocket, id: u16, name: &str) -> Result<(u8, Vec<String>), String> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut q = Message::query();
    q.metadata.id = id;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    sock.send(&q.to_vec().unwrap()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .map_err(|e| format!("no response: {e}"))?;
        let r = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
        if r.metadata.id != id {
            continue; // a late answer to an earlier query
        }
        let rcode = u16::from(r.metadata.response_code) as u8;
        let answer = r
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .map(|r| r.data.to_string())
            .collect();
        return Ok((rcode, answer));
    }
}

#[test]
fn chaos_random_kills_never_answer_a_long_dead_backend() {
    const FALL: u32 = 2;
    let backends: Vec<HttpBackend> = (0..3).map(|_| HttpBackend::start()).collect();
    let values = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    let mut body = String::new();
    for (i, b) in backends.iter().enumerate() {
        body += &check(
            &format!("b{}", i + 1),
            &format!("http = \"{}\"", b.url("/health")),
            &format!("fall = {FALL}\nrise = 2"),
        );
    }
    body += &route(
        "www",
        "policy = \"failover\"\nwhen_all_down = \"open\"",
        &[
            (1, values[0], "b1"),
            (2, values[1], "b2"),
            (3, values[2], "b3"),
        ],
    );
    let (_dir, config) = setup(&body);
    let veer = Veer::start(&config);
    for i in 1..=3 {
        wait_log(&veer, &format!("check b{i}: unknown -> up"));
    }
    wait_a(&veer, "www", &[values[0]], WAIT);
    let bound = INTERVAL * FALL + CHAOS_MARGIN;

    // Driver: toggles a random backend every 50..600 ms, never killing the
    // last one alive (with all three dead, when_all_down = open answers
    // tier 1, which is by design). Events: (backend, alive after, when);
    // a kill is stamped after the listener closed, a restart before it
    // opens, so dead periods are never overstated.
    let seed = fastrand::u64(..);
    eprintln!("chaos seed {seed}");
    let start = Instant::now();
    let driver = std::thread::spawn(move || {
        let mut backends = backends;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut events: Vec<(usize, bool, Instant)> = Vec::new();
        while start.elapsed() < CHAOS_TIME {
            std::thread::sleep(Duration::from_millis(rng.u64(50..600)));
            let k = rng.usize(0..3);
            if backends[k].is_alive() {
                if backends.iter().filter(|b| b.is_alive()).count() > 1 {
                    backends[k].kill();
                    events.push((k, false, Instant::now()));
                }
            } else {
                events.push((k, true, Instant::now()));
                backends[k].restart();
            }
        }
        for (k, b) in backends.iter_mut().enumerate() {
            if !b.is_alive() {
                events.push((k, true, Instant::now()));
                b.restart();
            }
        }
        (backends, events)
    });

    // Client: continuous queries over UDP, ~2 ms apart.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(veer.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut samples = Vec::new();
    let mut id = 0u16;
    while !driver.is_finished() {
        id = id.wrapping_add(1);
        let sent = Instant::now();
        let result = udp_ask(&sock, id, "www.example.test.");
        let received = Instant::now();
        match result {
            Ok((0, answer)) if answer.len() == 1 => samples.push(Sample {
                sent,
                received,
                answer,
            }),
            other => panic!(
                "query {} at {:?} not answered with one record: {other:?}; logs:\n{}",
                samples.len(),
                sent - start,
                veer.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (backends, events) = driver.join().unwrap();

    // Dead periods per backend: [died, revived).
    let mut dead: Vec<Vec<(Instant, Option<Instant>)>> = vec![Vec::new(); 3];
    for &(k, alive, at) in &events {
        if alive {
            if let Some(last) = dead[k].last_mut() {
                last.1.get_or_insert(at);
            }
        } else {
            dead[k].push((at, None));
        }
    }
    let long_dead = dead
        .iter()
        .flatten()
        .filter(|(d, r)| r.is_none_or(|r| r.duration_since(*d) > bound))
        .count();
    let mut violations = Vec::new();
    let mut per_backend = [0usize; 3];
    // The longest a backend had been dead when an answer still named it.
    let mut worst = Duration::ZERO;
    for s in &samples {
        let k = values
            .iter()
            .position(|v| *v == s.answer[0])
            .unwrap_or_else(|| panic!("unknown answer {:?}", s.answer));
        per_backend[k] += 1;
        for (d, r) in &dead[k] {
            if *d <= s.sent && r.is_none_or(|r| r >= s.received) {
                worst = worst.max(s.sent - *d);
            }
        }
        // Dead for more than `bound` before the query was sent, and still
        // dead when the answer arrived.
        if let Some((d, r)) = dead[k]
            .iter()
            .find(|(d, r)| *d + bound <= s.sent && r.is_none_or(|r| r >= s.received))
        {
            violations.push(format!(
                "{} answered at {:?}, dead since {:?} (revived {:?})",
                values[k],
                s.sent - start,
                *d - start,
                r.map(|r| r - start)
            ));
        }
    }
    let kills = events.iter().filter(|e| !e.1).count();
    eprintln!(
        "chaos: {} queries, {kills} kills, {long_dead} dead periods longer than {bound:?}, answers per tier {per_backend:?}, a dead backend answered at most {worst:?} after its death",
        samples.len()
    );
    assert!(
        violations.is_empty(),
        "{} answer(s) named a backend dead for longer than {bound:?} (seed {seed}):\n{}\nlogs:\n{}",
        violations.len(),
        violations[..violations.len().min(20)].join("\n"),
        veer.logs()
    );
    assert!(samples.len() > 500, "only {} queries", samples.len());
    assert!(kills >= 5 && long_dead >= 1, "the driver barely acted");
    assert!(
        per_backend[1] + per_backend[2] > 0,
        "never failed over: {per_backend:?}"
    );

    // Everything alive again: back to tier 1.
    wait_a(&veer, "www", &[values[0]], WAIT);
    drop(backends);
}

#[test]
fn dns_check_retries_a_truncated_answer_over_tcp() {
    // The upstream serves a TXT set far larger than 512 bytes, so the
    // probe's plain UDP query comes back with TC set.
    let (up_dir, up_config) = setup("");
    let chunks: Vec<String> = (0..20)
        .map(|i| format!("\"chunk-{i:02} {}\"", "x".repeat(40)))
        .collect();
    let zone_path = up_dir.path().join("example.test.zone");
    let mut zone = std::fs::read_to_string(&zone_path).unwrap();
    zone.push_str(&format!("big 300 IN TXT {}\n", chunks.join(" ")));
    std::fs::write(&zone_path, zone).unwrap();
    let upstream = Veer::start(&up_config);
    let server = upstream.addr;
    let (_dir, config) = setup(&format!(
        "{}{}",
        check_timed(
            "big",
            &format!(
                "dns = \"{server}\"\nquery = \"big.example.test\"\nqtype = \"TXT\"\nexpect = {{ answer = '{}' }}",
                chunks.join(" ")
            ),
            FIRST_PROBE,
            "fall = 1\nrise = 1"
        ),
        route(
            "www",
            "policy = \"failover\"\nwhen_all_down = \"closed\"",
            &[(1, "10.0.0.1", "big")]
        ),
    ));
    let veer = Veer::start(&config);
    wait_log(&veer, "check big: unknown -> up");
    let logs = veer.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("check big: unknown -> up"))
        .unwrap();
    assert!(line.contains("over TCP"), "{line}");
    wait_a(&veer, "www", &["10.0.0.1"], WAIT);
}
