//! The status page (`GET /`, issue 5 item 6) in headless Chromium: load
//! it against a running server, assert on the DOM Chromium built (check
//! rows with their states, the forced check's real state, routes with
//! their current answers, recent transitions; the pictures: a file check
//! flipped down shows a `down` stretch on its timeline and its route an
//! answer change, probes draw sparklines, queries a zone's chart; the
//! page refreshes itself in place), and save a screenshot to
//! `target/test-artifacts/status-page.png`.
//!
//! Needs Debian's `chromium`; `./scripts/test.sh` installs it. Without it
//! the test fails (it is not skipped).

#[path = "support/admin.rs"]
mod admin;
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use admin::{Admin, TOKEN, config_text, dns, token_line, zone_text};
use backends::HttpBackend;
use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// How long one Chromium run may take (a cold start on a loaded machine).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

fn http_check(name: &str, url: &str) -> String {
    format!(
        "[check.{name}]\nhttp = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"180ms\"\nfall = 3\nrise = 1\n\n"
    )
}

/// Runs `chromium --headless ... <extra> URL` with a fresh profile and
/// returns its output; panics with a clear message if Chromium is not
/// installed or does not finish in time.
fn chromium(extra: &[&str], url: &str) -> Output {
    let profile = tempfile::Builder::new()
        .prefix("veer-chromium-")
        .tempdir()
        .unwrap();
    let spawned = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`chromium` is not installed: the status page is tested in headless Chromium; \
             run ./scripts/test.sh, which installs it (Debian package `chromium`)"
        ),
        Err(e) => panic!("cannot run chromium: {e}"),
    };
    // Drain the pipes while waiting, so a chatty Chromium never blocks.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out_pipe, &mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err_pipe, &mut b);
        b
    });
    let mut status = None;
    wait_until(CHROMIUM_TIMEOUT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromium {extra:?} {url} did not finish within {CHROMIUM_TIMEOUT:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Fails at once, with the fix, when Chromium is missing.
fn require_chromium() {
    match Command::new("chromium")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`chromium --version` failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`chromium` is not installed: the status page is tested in headless Chromium; \
             run ./scripts/test.sh, which installs it (Debian package `chromium`)"
        ),
        Err(e) => panic!("cannot run chromium: {e}"),
    }
}

/// `target/test-artifacts/` (under `CARGO_TARGET_DIR` when set).
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// The markup from `start` (a unique marker) to the next `end`.
fn section<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let i = dom
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the DOM:\n{dom}"));
    let j = dom[i..]
        .find(end)
        .unwrap_or_else(|| panic!("no `{end}` after `{start}`"));
    &dom[i..i + j]
}

/// Visible text of some markup: tags removed, whitespace collapsed, the
/// few entities the page uses decoded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn status_page_in_headless_chromium() {
    require_chromium();
    let alpha = HttpBackend::start();
    let beta = HttpBackend::start();
    beta.set_status(500);
    let gamma = HttpBackend::start();
    let dir = tempfile::Builder::new()
        .prefix("veer-page-")
        .tempdir()
        .unwrap();
    write_file(dir.path(), "example.test.zone", &zone_text(1, ""));
    let flag = write_file(dir.path(), "delta.state", "up\n");
    let body = format!(
        "[health]\nguard_min_checks = 100\n\n{}{}{}\
         [[route]]\nname = \"www.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ {{ tier = 1, value = \"10.0.0.1\", check = \"alpha\" }}, {{ tier = 2, value = \"10.0.0.3\", check = \"gamma\" }} ]\n\n\
         [[route]]\nname = \"pool.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"multivalue\"\n\
         members = [ {{ value = \"10.0.0.1\", check = \"alpha\" }}, {{ value = \"10.0.0.2\", check = \"beta\" }}, {{ value = \"10.0.0.3\", check = \"gamma\" }} ]\n\n\
         [[route]]\nname = \"dead.example.test.\"\ntype = \"A\"\npolicy = \"failover\"\nwhen_all_down = \"fallback\"\nfallback = [\"192.0.2.250\"]\n\
         members = [ {{ value = \"10.0.0.2\", check = \"beta\" }} ]\n\n\
         [[route]]\nname = \"file.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ {{ tier = 1, value = \"10.0.0.4\", check = \"delta\" }}, {{ tier = 2, value = \"10.0.0.3\", check = \"gamma\" }} ]\n\n\
         [check.delta]\nfile = \"delta.state\"\ninterval = \"200ms\"\nfall = 1\nrise = 1\n\n",
        http_check("alpha", &alpha.url("/")),
        http_check("beta", &beta.url("/")),
        http_check("gamma", &gamma.url("/")),
    );
    let config = write_file(
        dir.path(),
        "veer.toml",
        &config_text(Some(&token_line()), &body),
    );
    let veer = Veer::start(&config);
    let api = Admin::from_logs(&veer.logs(), TOKEN);
    for (c, want) in [
        ("alpha", "up"),
        ("beta", "down"),
        ("gamma", "up"),
        ("delta", "up"),
    ] {
        assert!(
            wait_until(WAIT, || api.check(c)["real_state"] == want),
            "{c}: {}; logs:\n{}",
            api.check(c),
            veer.logs()
        );
    }
    // alpha forced down by an operator (its probes still say up).
    let r = api.authed(
        "PUT",
        "/v1/overrides/alpha",
        Some(r#"{"state": "down", "reason": "planned maintenance"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        wait_until(WAIT, || dns::ask_a(veer.addr, "www.example.test")
            .is_ok_and(|r| r.a.len() == 1 && r.a[0].to_string() == "10.0.0.3")),
        "www never failed over to gamma"
    );
    // The file check flips down: its route's answer changes.
    assert!(
        wait_until(WAIT, || dns::ask_a(veer.addr, "file.example.test")
            .is_ok_and(|r| r.a.len() == 1 && r.a[0].to_string() == "10.0.0.4")),
        "file never answered delta"
    );
    std::fs::write(&flag, "down\n").unwrap();
    assert!(
        wait_until(WAIT, || dns::ask_a(veer.addr, "file.example.test")
            .is_ok_and(|r| r.a.len() == 1 && r.a[0].to_string() == "10.0.0.3")),
        "file never failed over to gamma; logs:\n{}",
        veer.logs()
    );
    // Queries for the zone's chart (the waits above sent some, too).
    for _ in 0..20 {
        dns::ask_a(veer.addr, "www.example.test").unwrap();
    }

    let url = format!("http://{}/", api.addr);
    let out = chromium(&["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium --dump-dom failed ({}):\nstdout:\n{dom}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The title and summary count the states routes use.
    assert!(
        dom.contains("<title>veer: 3 of 4 checks down</title>"),
        "{dom}"
    );
    let summary = text(section(&dom, "id=\"summary\"", "</p>"));
    assert!(
        summary.contains("1 of 4 checks healthy, 3 down"),
        "{summary}"
    );

    // Checks: one row each, with the state routes use.
    let checks = section(&dom, "id=\"checks\"", "</table>");
    let row = |name: &str| section(checks, &format!("data-check=\"{name}\""), "</tr>").to_string();
    let alpha_row = row("alpha");
    assert!(
        alpha_row.contains("class=\"state down\""),
        "alpha is forced down: {alpha_row}"
    );
    let alpha_text = text(&alpha_row);
    assert!(
        alpha_text.contains("forced") && alpha_text.contains("real state up"),
        "the forced check must show its real state: {alpha_text}"
    );
    assert!(alpha_text.contains("planned maintenance"), "{alpha_text}");
    let beta_row = row("beta");
    assert!(beta_row.contains("class=\"state down\""), "{beta_row}");
    assert!(!text(&beta_row).contains("forced"), "{beta_row}");
    assert!(
        text(&beta_row).contains("first probe failed"),
        "beta's reason: {beta_row}"
    );
    let gamma_row = row("gamma");
    assert!(gamma_row.contains("class=\"state up\""), "{gamma_row}");
    assert!(
        text(&gamma_row).contains(" ms"),
        "gamma's latency: {gamma_row}"
    );
    for r in [&alpha_row, &beta_row, &gamma_row] {
        assert!(text(r).contains("http"), "kind: {r}");
    }

    // Pictures of the last hour, per check: the timeline, ending in the
    // real state (delta's down after up), and the probe latencies.
    let timeline = |name: &str| {
        section(
            checks,
            &format!("<svg class=\"timeline\" data-check=\"{name}\""),
            "</svg>",
        )
        .to_string()
    };
    let states = |svg: &str| -> Vec<String> {
        svg.split("data-state=\"")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_string())
            .collect()
    };
    let delta = states(&timeline("delta"));
    assert!(
        delta.ends_with(&["up".to_string(), "down".to_string()]),
        "delta's timeline: {delta:?}: {}; {}",
        timeline("delta"),
        api.check("delta")
    );
    assert_eq!(states(&timeline("beta")).last().unwrap(), "down");
    assert_eq!(
        states(&timeline("gamma")).last().unwrap(),
        "up",
        "{}",
        timeline("gamma")
    );
    for c in ["alpha", "beta", "gamma", "delta"] {
        let spark = section(
            checks,
            &format!("<svg class=\"sparkline\" data-check=\"{c}\""),
            "</svg>",
        );
        assert!(
            spark.contains("<polyline points=\""),
            "{c}'s sparkline: {spark}"
        );
    }

    // Routes with their current answers, and when they changed.
    let routes = section(&dom, "id=\"routes\"", "</table>");
    let row = |name: &str| {
        section(
            routes,
            &format!("data-route=\"{name}.example.test. A\""),
            "</tr>",
        )
        .to_string()
    };
    let route = |name: &str| text(section(&row(name), "class=\"answer\"", "</td>"));
    let www = route("www");
    assert!(
        www.contains("10.0.0.3") && !www.contains("10.0.0.1"),
        "www answers gamma while alpha is forced down: {www}"
    );
    assert!(text(&row("www")).contains("failover"), "{www}");
    let changes = |name: &str| {
        text(section(
            &row(name),
            &format!("<ul class=\"answer-changes\" data-route=\"{name}.example.test. A\""),
            "</ul>",
        ))
    };
    let file = changes("file");
    assert!(
        file.ends_with("→ 10.0.0.3") || file.contains("→ 10.0.0.3 "),
        "file's answer changed to gamma: {file}"
    );
    assert!(changes("www").contains("→ 10.0.0.3"), "{}", changes("www"));
    let pool = route("pool");
    assert!(
        pool.contains("10.0.0.3") && !pool.contains("10.0.0.1") && !pool.contains("10.0.0.2"),
        "pool answers the healthy members only: {pool}"
    );
    let dead = route("dead");
    assert!(
        dead.contains("192.0.2.250") && dead.contains("fallback"),
        "all down: the fallback: {dead}"
    );

    // Recent transitions (the real states), newest first.
    let transitions = text(section(&dom, "id=\"transitions\"", "</table>"));
    for t in [
        "alpha unknown → up",
        "beta unknown → down",
        "gamma unknown → up",
    ] {
        assert!(transitions.contains(t), "no `{t}` in: {transitions}");
    }
    // Zones, with queries per second over the last hour.
    let zones = section(&dom, "id=\"zones\"", "</table>");
    assert!(text(zones).contains("example.test."), "{dom}");
    let qps = section(
        zones,
        "<svg class=\"qps\" data-zone=\"example.test.\"",
        "</svg>",
    );
    assert!(qps.contains("<polyline points=\""), "{qps}");
    let peak: f64 = {
        let p = section(qps, "data-peak=\"", "\" ");
        p["data-peak=\"".len()..].parse().unwrap()
    };
    assert!(peak > 0.0, "queries were sent: {qps}");
    // Refreshed in place (a meta refresh only without scripts), and no
    // external assets.
    assert!(
        dom.contains("<main id=\"page\">")
            && !dom.contains("http-equiv=\"refresh\" content=\"5\"><title"),
        "{dom}"
    );
    assert!(!dom.contains("src=\"http"), "external asset: {dom}");
    assert!(!dom.contains("<link"), "external stylesheet: {dom}");

    // Eleven seconds of (virtual) time: the script fetched the page twice
    // and swapped <main> each time; the page is whole after.
    let out = chromium(&["--dump-dom", "--virtual-time-budget=11000"], &url);
    let again = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        again.contains("data-refreshed=\"2\"") || again.contains("data-refreshed=\"3\""),
        "the page did not refresh itself in place:\n{again}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(again.matches("<main id=\"page\">").count(), 1, "{again}");
    assert!(again.contains("<svg class=\"timeline\" data-check=\"delta\""));

    // The screenshot, kept as a test artefact.
    let png = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let out = chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1000",
            "--hide-scrollbars",
        ],
        &url,
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium {}:\n{}",
            png.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be32 = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!((be32(16), be32(20)), (1280, 1000), "screenshot size");
    assert!(
        bytes.len() > 20_000,
        "screenshot of {} bytes is too small to show the page",
        bytes.len()
    );
    eprintln!(
        "status page screenshot: {} ({} bytes)",
        png.display(),
        bytes.len()
    );
}
