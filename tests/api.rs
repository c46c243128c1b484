//! The admin HTTP API (issue 5, item 5): every read endpoint, overrides
//! (idempotent PUT, `until`, DELETE), the bearer token (401 without or
//! with a wrong one, 403 when no token is configured), the default
//! loopback listen address, and `veer status` reading `/v1/health`.
//!
//! Checks probe real HTTP backends (`support/backends.rs`); the API is
//! spoken to with a plain HTTP/1.1 client (`support/admin.rs`).

#[path = "support/admin.rs"]
mod admin;
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use admin::{Admin, TOKEN, config_text, dns, token_line, zone_text};
use backends::HttpBackend;
use common::*;
use serde_json::Value;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(10);

/// An http check probed every 200 ms, stable on a loaded machine.
fn http_check(name: &str, url: &str) -> String {
    format!(
        "[check.{name}]\nhttp = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"180ms\"\nfall = 3\nrise = 1\n\n"
    )
}

/// Routes over checks `a` (10.0.0.1) and `b` (10.0.0.2): `www` fails over
/// from a to b; `pool` answers every healthy member plus 10.0.1.9
/// (unchecked).
const ROUTES: &str = "[[route]]\nname = \"www.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
    members = [ { tier = 1, value = \"10.0.0.1\", check = \"a\" }, { tier = 2, value = \"10.0.0.2\", check = \"b\" } ]\n\n\
    [[route]]\nname = \"pool.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"multivalue\"\n\
    members = [ { value = \"10.0.0.1\", check = \"a\" }, { value = \"10.0.0.2\", check = \"b\" }, { value = \"10.0.1.9\" } ]\n\n";

/// A running scenario: backends for checks `a` and `b`, the server, its API.
struct Scene {
    _dir: TempDir,
    config: PathBuf,
    web_a: HttpBackend,
    web_b: HttpBackend,
    veer: Veer,
    api: Admin,
}

/// Starts the scenario with `[api]` extra lines `api` and waits until
/// both checks have their first verdict.
fn scene(api: &str, b_status: u16) -> Scene {
    let web_a = HttpBackend::start();
    let web_b = HttpBackend::start();
    web_b.set_status(b_status);
    let dir = tempfile::Builder::new()
        .prefix("veer-api-")
        .tempdir()
        .unwrap();
    write_file(
        dir.path(),
        "example.test.zone",
        &zone_text(1, "static  IN A   192.0.2.10\n"),
    );
    let body = format!(
        "[health]\nguard_min_checks = 100\n\n{}{}{ROUTES}",
        http_check("a", &web_a.url("/a")),
        http_check("b", &web_b.url("/b")),
    );
    let config = write_file(dir.path(), "veer.toml", &config_text(Some(api), &body));
    let veer = Veer::start(&config);
    let api = Admin::from_logs(&veer.logs(), TOKEN);
    let want_b = if b_status == 200 { "up" } else { "down" };
    assert!(
        wait_until(WAIT, || api.check("a")["real_state"] == "up"
            && api.check("b")["real_state"] == want_b),
        "checks did not settle: {}; logs:\n{}",
        api.get("/v1/health").body,
        veer.logs()
    );
    Scene {
        _dir: dir,
        config,
        web_a,
        web_b,
        veer,
        api,
    }
}

/// The sorted A records of `name` over UDP.
fn a(veer: &Veer, name: &str) -> Vec<String> {
    let r = dns::ask_a(veer.addr, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut v: Vec<String> = r.a.iter().map(|ip| ip.to_string()).collect();
    v.sort();
    v
}

#[track_caller]
fn wait_a(veer: &Veer, name: &str, want: &[&str]) {
    let mut last = Vec::new();
    assert!(
        wait_until(WAIT, || {
            last = a(veer, name);
            last == want
        }),
        "{name}: wanted {want:?}, last {last:?}; logs:\n{}",
        veer.logs()
    );
}

/// The route entry `name` of `/v1/routes`.
fn route(api: &Admin, name: &str) -> Value {
    let r = api.get_json("/v1/routes");
    r["routes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no route {name} in {r}"))
}

fn strings(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    s.sort();
    s
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

#[test]
fn metrics_is_prometheus_text_with_every_documented_family() {
    let s = scene(&token_line(), 500);
    // Traffic of each kind: answers, NXDOMAIN, REFUSED.
    for _ in 0..5 {
        assert_eq!(a(&s.veer, "www.example.test"), ["10.0.0.1"]);
    }
    assert_eq!(a(&s.veer, "static.example.test"), ["192.0.2.10"]);
    let nx = dns::ask_a(s.veer.addr, "nope.example.test").unwrap();
    assert_eq!(nx.rcode, 3);
    let refused = dns::ask_a(s.veer.addr, "www.elsewhere.test").unwrap();
    assert_eq!(refused.rcode, 5);

    let r = s.api.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain") && c.contains("version=0.0.4")),
        "{:?}",
        r.headers
    );
    let m = s.api.metrics();
    for (family, kind) in [
        ("veer_queries_total", "counter"),
        ("veer_response_time_seconds", "histogram"),
        ("veer_probe_results_total", "counter"),
        ("veer_probe_latency_seconds", "histogram"),
        ("veer_transitions_total", "counter"),
        ("veer_reloads_total", "counter"),
        ("veer_snapshot_generation", "gauge"),
        ("veer_last_reload_ok", "gauge"),
    ] {
        assert_eq!(
            m.types.get(family).map(String::as_str),
            Some(kind),
            "# TYPE of {family}"
        );
        assert!(m.helps.contains(family), "no # HELP for {family}");
    }

    // Queries by zone, qtype and rcode (and by policy).
    let zone = ("zone", "example.test.");
    assert!(
        m.sum(
            "veer_queries_total",
            &[zone, ("qtype", "A"), ("rcode", "NOERROR")]
        ) >= 6.0
    );
    assert!(
        m.sum(
            "veer_queries_total",
            &[zone, ("qtype", "A"), ("rcode", "NXDOMAIN")]
        ) >= 1.0
    );
    assert!(m.sum("veer_queries_total", &[("zone", ""), ("rcode", "REFUSED")]) >= 1.0);
    assert!(m.sum("veer_queries_total", &[zone, ("policy", "failover")]) >= 5.0);
    assert!(m.sum("veer_queries_total", &[zone, ("policy", "static")]) >= 1.0);
    // The response-time histogram counted every query.
    assert!(m.get("veer_response_time_seconds_count", &[]) >= 8.0);
    assert!(m.get("veer_response_time_seconds_sum", &[]) > 0.0);
    assert!(
        m.find("veer_response_time_seconds_bucket", &[]).len() >= 5,
        "too few buckets"
    );

    // Probes per check: a succeeds, b fails; latency histograms per check.
    assert!(
        m.get(
            "veer_probe_results_total",
            &[("check", "a"), ("result", "ok")]
        ) >= 1.0
    );
    assert!(
        m.get(
            "veer_probe_results_total",
            &[("check", "b"), ("result", "failed")]
        ) >= 1.0
    );
    for c in ["a", "b"] {
        assert!(m.get("veer_probe_latency_seconds_count", &[("check", c)]) >= 1.0);
        assert!(
            m.find(
                "veer_probe_latency_seconds_bucket",
                &[("check", c), ("le", "+Inf")]
            )
            .len()
                == 1
        );
    }
    // unknown -> up, unknown -> down.
    assert!(m.get("veer_transitions_total", &[]) >= 2.0);
    assert_eq!(m.get("veer_reloads_total", &[("result", "ok")]), 0.0);
    assert_eq!(m.get("veer_reloads_total", &[("result", "failed")]), 0.0);
    assert_eq!(m.get("veer_last_reload_ok", &[]), 1.0);
    assert_eq!(m.get("veer_check_up", &[("check", "a")]), 1.0);
    assert_eq!(m.get("veer_check_up", &[("check", "b")]), 0.0);

    // The generation agrees with /v1/status (both read one snapshot; wait
    // out a probe-driven change between the two requests).
    assert!(
        wait_until(WAIT, || {
            let g = s.api.metrics().get("veer_snapshot_generation", &[]);
            g >= 1.0 && s.api.status()["generation"].as_f64() == Some(g)
        }),
        "generation differs"
    );
    assert!(m.get("veer_zone_serial", &[zone]) >= 1.0, "served serial");
}

#[test]
fn status_health_routes_and_explain_describe_the_current_state() {
    let s = scene(&token_line(), 500);
    let api = &s.api;

    let st = api.status();
    assert!(st["generation"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["started"].as_str().unwrap().ends_with('Z'), "{st}");
    assert_eq!(st["config"], s.config.display().to_string(), "{st}");
    assert_eq!(st["checks"], 2, "{st}");
    assert_eq!(st["routes"], 2, "{st}");
    assert_eq!(st["reloads_ok"], 0, "{st}");
    assert_eq!(st["reloads_failed"], 0, "{st}");
    assert_eq!(st["guard_frozen"], false, "{st}");
    assert!(st["last_reload"].is_null(), "{st}");
    assert_eq!(st["zones"][0]["origin"], "example.test.", "{st}");
    assert!(st["zones"][0]["serial"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["zones"][0]["records"].as_u64().unwrap() >= 4, "{st}");

    // /v1/health: every check with its state and the evidence.
    let h = api.get_json("/v1/health");
    let checks = h["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{h}");
    let ca = api.check("a");
    assert_eq!(ca["kind"], "http", "{ca}");
    assert_eq!(ca["state"], "up", "{ca}");
    assert_eq!(ca["real_state"], "up", "{ca}");
    assert_eq!(ca["forced"], false, "{ca}");
    assert!(ca["since"].as_str().unwrap().ends_with('Z'), "{ca}");
    assert!(ca["last_latency_ms"].as_f64().is_some(), "{ca}");
    assert!(
        ca["reason"].as_str().unwrap().contains("status 200"),
        "{ca}"
    );
    let cb = api.check("b");
    assert_eq!(cb["state"], "down", "{cb}");
    // (500, or a timeout on a loaded machine: the reasons themselves are
    // the health tests' business.)
    assert!(
        cb["reason"]
            .as_str()
            .unwrap()
            .starts_with("first probe failed"),
        "{cb}"
    );

    // /v1/routes: the current answer of every route, as served.
    let www = route(api, "www.example.test.");
    assert_eq!(www["type"], "A", "{www}");
    assert_eq!(www["policy"], "failover", "{www}");
    assert_eq!(www["outcome"], "members", "{www}");
    assert_eq!(www["healthy"], true, "{www}");
    assert_eq!(strings(&www["answer"]), ["10.0.0.1"], "{www}");
    assert_eq!(strings(&www["answer"]), a(&s.veer, "www.example.test"));
    assert!(!www["path"].as_array().unwrap().is_empty(), "{www}");
    let pool = route(api, "pool.example.test.");
    assert_eq!(pool["policy"], "multivalue", "{pool}");
    assert_eq!(strings(&pool["answer"]), ["10.0.0.1", "10.0.1.9"], "{pool}");
    assert_eq!(strings(&pool["answer"]), a(&s.veer, "pool.example.test"));

    // When b comes back, /v1/routes follows.
    s.web_b.set_status(200);
    assert!(
        wait_until(WAIT, || strings(
            &route(api, "pool.example.test.")["answer"]
        ) == ["10.0.0.1", "10.0.0.2", "10.0.1.9"]),
        "{}",
        api.get("/v1/routes").body
    );

    // /v1/explain: the query path and the route's decision.
    let e = api.get_json("/v1/explain?name=www.example.test&type=A&client=192.0.2.77");
    assert_eq!(e["name"], "www.example.test.", "{e}");
    assert_eq!(e["type"], "A", "{e}");
    assert_eq!(e["client"], "192.0.2.77", "{e}");
    assert_eq!(e["zone"], "example.test.", "{e}");
    assert_eq!(e["authoritative"], true, "{e}");
    assert_eq!(e["policy"], "failover", "{e}");
    assert_eq!(e["answer"].as_array().unwrap().len(), 1, "{e}");
    assert!(e["answer"][0].as_str().unwrap().contains("10.0.0.1"), "{e}");
    assert_eq!(e["route"]["name"], "www.example.test.", "{e}");
    assert!(!e["route"]["path"].as_array().unwrap().is_empty(), "{e}");
    let rcode_ok = e["rcode"].clone();

    // A static name: no route.
    let e = api.get_json("/v1/explain?name=static.example.test.&type=a");
    assert_eq!(e["policy"], "static", "{e}");
    assert!(e["route"].is_null(), "{e}");
    assert!(
        e["answer"][0].as_str().unwrap().contains("192.0.2.10"),
        "{e}"
    );
    assert_eq!(e["rcode"], rcode_ok, "{e}");
    // No such name; a name outside our zones.
    let e = api.get_json("/v1/explain?name=nope.example.test&type=A");
    assert_ne!(e["rcode"], rcode_ok, "{e}");
    assert!(e["answer"].as_array().unwrap().is_empty(), "{e}");
    let e = api.get_json("/v1/explain?name=www.elsewhere.test&type=A");
    assert_eq!(e["authoritative"], false, "{e}");
    assert!(e["zone"].is_null(), "{e}");
    // Bad input.
    assert_eq!(
        api.get("/v1/explain?name=www.example.test&type=NOPE")
            .status,
        400
    );
    assert_eq!(api.get("/v1/explain").status, 400);

    // The page and an unknown path.
    let page = api.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.body.contains("data-check=\"a\""), "{}", page.body);
    assert_eq!(api.get("/v1/nope").status, 404);

    // `veer status` prints the same health as a table.
    let out = run_veer(&["status", "--api", &format!("http://{}", api.addr)], WAIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{stdout}"))
            .to_string()
    };
    assert!(stdout.lines().next().unwrap().contains("STATE"), "{stdout}");
    assert!(row("a").contains(" up "), "{stdout}");
    assert!(row("b").contains("http"), "{stdout}");

    // `veer explain --api` asks the running server the same question.
    let out = run_veer(
        &[
            "explain",
            "--api",
            &format!("http://{}", api.addr),
            "pool.example.test",
            "A",
            "--client",
            "192.0.2.77",
        ],
        WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("route pool.example.test. A (policy multivalue):"),
        "{stdout}"
    );
    assert!(stdout.contains("answer: NOERROR"), "{stdout}");
    for addr in ["10.0.0.1", "10.0.0.2", "10.0.1.9"] {
        assert!(stdout.contains(addr), "{addr} missing:\n{stdout}");
    }
    assert!(stdout.contains("ecs scope: /0"), "{stdout}");
    // As much as the offline form: every check's state, the class, the TTL.
    assert!(stdout.lines().any(|l| l == "checks:"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("  a: up")), "{stdout}");
    assert!(stdout.contains(" IN A 10.0.0.1"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ttl: ")), "{stdout}");
}

// ---------------------------------------------------------------------------
// Overrides
// ---------------------------------------------------------------------------

/// The fields of a check an override decides.
fn override_view(c: &Value) -> Value {
    serde_json::json!({
        "name": c["name"],
        "state": c["state"],
        "real_state": c["real_state"],
        "forced": c["forced"],
        "override_reason": c["override_reason"],
        "override_until": c["override_until"],
        "since": c["since"],
    })
}

fn rfc3339_in(d: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + d).to_string()
}

#[test]
fn override_put_is_idempotent_until_expires_and_delete_clears() {
    let s = scene(&token_line(), 200);
    let api = &s.api;
    wait_a(&s.veer, "www.example.test", &["10.0.0.1"]);
    let admin_state = s.config.parent().unwrap().join("state/admin-state");

    // PUT twice: the same result, one change.
    let body = r#"{"state": "down", "reason": "maintenance 4711"}"#;
    let first = api.authed("PUT", "/v1/overrides/a", Some(body));
    assert_eq!(first.status, 200, "{}", first.body);
    let c = first.json()["check"].clone();
    assert_eq!(c["name"], "a", "{c}");
    assert_eq!(c["state"], "down", "{c}");
    assert_eq!(c["real_state"], "up", "{c}");
    assert_eq!(c["forced"], true, "{c}");
    assert_eq!(c["override_reason"], "maintenance 4711", "{c}");
    assert!(c.get("override_until").is_none(), "{c}");
    wait_a(&s.veer, "www.example.test", &["10.0.0.2"]);
    let file = std::fs::read_to_string(&admin_state).expect("admin-state written");
    assert!(file.contains("a = down # maintenance 4711"), "{file}");

    let second = api.authed("PUT", "/v1/overrides/a", Some(body));
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        override_view(&second.json()["check"]),
        override_view(&c),
        "PUT is not idempotent"
    );
    assert_eq!(std::fs::read_to_string(&admin_state).unwrap(), file);
    assert_eq!(a(&s.veer, "www.example.test"), ["10.0.0.2"]);
    assert_eq!(
        s.veer.logs().matches("check a: forced down").count(),
        1,
        "the second PUT changed something:\n{}",
        s.veer.logs()
    );
    assert_eq!(api.metrics().get("veer_check_up", &[("check", "a")]), 0.0);

    // With `until` far ahead: shown as given (whole seconds).
    let until = rfc3339_in(Duration::from_secs(3600));
    let r = api.authed(
        "PUT",
        "/v1/overrides/a",
        Some(&format!(
            r#"{{"state": "down", "reason": "window", "until": "{until}"}}"#
        )),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json()["check"].clone();
    let shown = c["override_until"]
        .as_str()
        .unwrap_or_else(|| panic!("{c}"));
    assert!(
        shown.starts_with(until.trim_end_matches('Z')),
        "until {until} shown as {shown}"
    );
    assert_eq!(c["override_reason"], "window", "{c}");

    // DELETE: back to the real state; DELETE again is fine too.
    let r = api.authed("DELETE", "/v1/overrides/a", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["check"]["forced"], false, "{}", r.body);
    assert_eq!(r.json()["check"]["state"], "up", "{}", r.body);
    wait_a(&s.veer, "www.example.test", &["10.0.0.1"]);
    let r = api.authed("DELETE", "/v1/overrides/a", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["check"]["forced"], false, "{}", r.body);

    // `until` two seconds ahead: it lifts by itself.
    let until = rfc3339_in(Duration::from_secs(2));
    let r = api.authed(
        "PUT",
        "/v1/overrides/b",
        Some(&format!(r#"{{"state": "down", "until": "{until}"}}"#)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let forced_at = Instant::now();
    wait_a(&s.veer, "pool.example.test", &["10.0.0.1", "10.0.1.9"]);
    wait_a(
        &s.veer,
        "pool.example.test",
        &["10.0.0.1", "10.0.0.2", "10.0.1.9"],
    );
    assert!(forced_at.elapsed() >= Duration::from_millis(900));
    assert_eq!(api.check("b")["forced"], false);
    assert!(
        s.veer.logs().contains("check b: override (down) expired"),
        "{}",
        s.veer.logs()
    );

    // Unknown check: 404 for both verbs; bad bodies: 400.
    let r = api.authed("PUT", "/v1/overrides/nope", Some(r#"{"state": "down"}"#));
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("nope"),
        "{}",
        r.body
    );
    assert_eq!(api.authed("DELETE", "/v1/overrides/nope", None).status, 404);
    for bad in [
        r#"{"state": "sideways"}"#,
        r#"{"state": "down", "until": "next tuesday"}"#,
        r#"{"state": "down", "colour": "red"}"#,
        "not json",
    ] {
        let r = api.authed("PUT", "/v1/overrides/a", Some(bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert_eq!(api.check("a")["forced"], false);
    drop(s.web_a);
}

#[test]
fn an_override_that_cannot_be_written_is_an_error_and_changes_nothing() {
    // The admin-state file is written durably before the override applies;
    // when the write fails (a full disk; here a directory stands where the
    // file must go) the API says why and nothing changes.
    let s = scene(&token_line(), 200);
    let api = &s.api;
    wait_a(&s.veer, "www.example.test", &["10.0.0.1"]);
    let state = s.config.parent().unwrap().join("state");
    std::fs::create_dir_all(state.join("admin-state/x")).unwrap();
    let r = api.authed("PUT", "/v1/overrides/a", Some(r#"{"state": "down"}"#));
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("cannot write"),
        "{}",
        r.body
    );
    assert_eq!(api.check("a")["forced"], false);
    assert_eq!(a(&s.veer, "www.example.test"), ["10.0.0.1"]);
    assert!(state.join("admin-state/x").is_dir());
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn the_api_bounds_connections_header_time_and_body_size() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let s = scene(&token_line(), 200);
    let api = &s.api;
    // A body over the limit (64 KiB) is refused, not buffered.
    let big = format!(
        r#"{{"state": "down", "reason": "{}"}}"#,
        "x".repeat(100_000)
    );
    let r = api.authed("PUT", "/v1/overrides/a", Some(&big));
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(api.check("a")["forced"], false);

    // 64 silent connections take every slot: the 65th is closed at once.
    let silent: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(api.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(api.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = extra.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0; 64];
    assert!(
        matches!(extra.read(&mut buf), Ok(0) | Err(_)),
        "a 65th connection was served"
    );
    // Headers that never finish are cut off at the 5 s header timeout,
    // which frees the slots.
    let started = Instant::now();
    let mut slow = silent;
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let _ = slow[0].write_all(b"GET / HTTP/1.1\r\n");
    let n = slow[0].read(&mut buf).unwrap_or(0);
    let took = started.elapsed();
    println!("a client that never finished its headers was closed after {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let _ = n;
    drop(slow);
    assert!(
        wait_until(WAIT, || api.get("/v1/status").status == 200),
        "the API did not recover"
    );
}

// ---------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------

/// The state-changing requests.
fn writes() -> [(&'static str, &'static str, Option<&'static str>); 3] {
    [
        ("PUT", "/v1/overrides/a", Some(r#"{"state": "down"}"#)),
        ("DELETE", "/v1/overrides/a", None),
        ("POST", "/v1/reload", None),
    ]
}

#[test]
fn state_changing_endpoints_need_the_bearer_token() {
    let s = scene(&token_line(), 200);
    let api = &s.api;
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    let short = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    for (method, path, body) in writes() {
        for auth in [
            None,
            Some(wrong.as_str()),
            Some(basic.as_str()),
            Some(short.as_str()),
        ] {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = auth {
                headers.push(("Authorization", a));
            }
            let r = api.request(method, path, &headers, body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.body);
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{r:?}");
            assert!(r.json()["error"].is_string(), "{}", r.body);
        }
    }
    // Nothing happened.
    assert_eq!(api.check("a")["forced"], false);
    assert_eq!(api.status()["reloads_ok"], 0);
    assert!(!s.veer.logs().contains("reload applied"));
    // With the token it works; reads never need it.
    for (method, path, body) in writes() {
        let r = api.authed(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    }
    for path in ["/", "/metrics", "/v1/status", "/v1/health", "/v1/routes"] {
        assert_eq!(api.get(path).status, 200, "{path}");
    }
}

#[test]
fn without_a_token_the_state_changing_endpoints_are_off() {
    let s = scene("", 200);
    let api = &s.api;
    assert!(
        s.veer
            .logs()
            .contains("api: no token configured, so overrides and reload over HTTP are off"),
        "{}",
        s.veer.logs()
    );
    for (method, path, body) in writes() {
        for auth in [
            None,
            Some(format!("Bearer {TOKEN}")),
            Some("Bearer ".into()),
        ] {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            let r = api.request(method, path, &headers, body);
            assert_eq!(r.status, 403, "{method} {path} with {auth:?}: {}", r.body);
            assert!(
                r.json()["error"].as_str().unwrap().contains("token"),
                "{}",
                r.body
            );
        }
    }
    assert_eq!(api.check("a")["forced"], false);
    assert_eq!(api.status()["reloads_ok"], 0);
    for path in ["/", "/metrics", "/v1/status", "/v1/health", "/v1/routes"] {
        assert_eq!(api.get(path).status, 200, "{path}");
    }
}

#[test]
fn token_file_is_read_relative_to_the_config() {
    let dir = tempfile::Builder::new()
        .prefix("veer-api-")
        .tempdir()
        .unwrap();
    write_file(dir.path(), "example.test.zone", &zone_text(1, ""));
    let token = "file-token-abcdefghijklmnop";
    write_file(dir.path(), "secrets/api-token", &format!("{token}\n"));
    let config = write_file(
        dir.path(),
        "veer.toml",
        &config_text(Some("token_file = \"secrets/api-token\""), ""),
    );
    let veer = Veer::start(&config);
    let api = Admin::from_logs(&veer.logs(), token);
    let r = api.reload();
    assert_eq!(r.status, 200, "{}", r.body);
    let other = Admin::from_logs(&veer.logs(), TOKEN);
    assert_eq!(other.reload().status, 401);

    // Rotating the token file and reloading swaps the accepted token.
    let rotated = "rotated-token-qrstuvwxyz0123";
    write_file(dir.path(), "secrets/api-token", &format!("{rotated}\n"));
    assert_eq!(
        api.reload().status,
        200,
        "the reload itself uses the old token"
    );
    assert_eq!(api.reload().status, 401, "the old token must stop working");
    let new = Admin::from_logs(&veer.logs(), rotated);
    assert_eq!(new.reload().status, 200);

    // A token under 16 characters is refused by `veer check`.
    let short = write_file(
        dir.path(),
        "short.toml",
        &config_text(Some("token = \"short\""), ""),
    );
    let out = run_veer(&["check", "--config", short.to_str().unwrap()], WAIT);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[api]` without `listen` binds 127.0.0.1:8053. The test does not need
/// the port to be free: the server either logs that it listens there or
/// that it cannot; either way the address is the loopback default.
#[test]
fn api_listens_on_loopback_8053_by_default() {
    let dir = tempfile::Builder::new()
        .prefix("veer-api-")
        .tempdir()
        .unwrap();
    write_file(dir.path(), "example.test.zone", &zone_text(1, ""));
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[api]\n{}\n\n\
         [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n",
        token_line()
    );
    let config = write_file(dir.path(), "veer.toml", &text);
    let mut child = Command::new(veer_bin())
        .args(["serve", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start veer");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut logs = String::new();
    let mut found = None;
    while Instant::now() < deadline && found.is_none() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if line.contains("api listening on 127.0.0.1:8053") {
                    found = Some("listening");
                } else if line.contains("127.0.0.1:8053") && line.contains("cannot listen") {
                    found = Some("port busy");
                }
                logs.push_str(&line);
                logs.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let found = found.unwrap_or_else(|| panic!("no 127.0.0.1:8053 in the logs:\n{logs}"));
    eprintln!("default API address 127.0.0.1:8053: {found}");
    assert!(!logs.contains("0.0.0.0:8053"), "{logs}");
}

/// The exposition parser the metrics test relies on rejects what a
/// Prometheus scraper would (so "parses" means something).
#[test]
fn metrics_parser_rejects_malformed_exposition() {
    let good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    let m = admin::parse_metrics(good).expect("valid");
    assert_eq!(m.get("x_total", &[("b", "q\"")]), 3.0);
    assert_eq!(m.get("h_count", &[]), 2.0);
    for bad in [
        "x_total 1\n",                                                    // no TYPE
        "# TYPE x counter\nx{a=1} 1\n",                                   // unquoted label
        "# TYPE x counter\nx 1 2 3\n",                                    // trailing text
        "# TYPE x counter\nx one\n",                                      // bad value
        "# TYPE x counter\nx 1\nx 2\n",                                   // duplicate series
        "# TYPE x counter\nx 1\n# TYPE x counter\n",                      // TYPE twice
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // not cumulative
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", // count mismatch
        "# TYPE 9x counter\n9x 1\n",                                         // bad name
    ] {
        assert!(admin::parse_metrics(bad).is_err(), "accepted:\n{bad}");
    }
}
