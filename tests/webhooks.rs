//! Webhooks (issue 5, item 8): every transition is POSTed once, as JSON
//! (check, from, to, reason, at), to every `[[webhook]] url`; a receiver
//! that fails is retried with exponential backoff; a receiver that hangs
//! blocks neither probes nor queries. The receivers are std HTTP servers
//! the test runs (`support/admin.rs`).

#[path = "support/admin.rs"]
mod admin;
#[path = "support/backends.rs"]
mod backends;
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use admin::{Admin, Receiver, TOKEN, config_text, dns, token_line, zone_text};
use backends::HttpBackend;
use common::*;
use serde_json::Value;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(10);

/// A scenario: one http check `web` on `url` (probed every 200 ms, fall 2,
/// rise 1), a failover route `www` (10.0.0.1 checked by web, then the
/// unchecked 10.0.0.2), and one `[[webhook]]` per URL.
fn setup(url: &str, hooks: &[String]) -> (TempDir, Veer) {
    let dir = tempfile::Builder::new()
        .prefix("veer-webhook-")
        .tempdir()
        .unwrap();
    write_file(dir.path(), "example.test.zone", &zone_text(1, ""));
    let config = write_file(dir.path(), "veer.toml", &config(url, hooks));
    let veer = Veer::start(&config);
    (dir, veer)
}

/// The scenario's config text (see [`setup`]).
fn config(url: &str, hooks: &[String]) -> String {
    let mut body = format!(
        "[check.web]\nhttp = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"180ms\"\nfall = 2\nrise = 1\n\n\
         [[route]]\nname = \"www.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ {{ tier = 1, value = \"10.0.0.1\", check = \"web\" }}, {{ tier = 2, value = \"10.0.0.2\" }} ]\n\n"
    );
    for h in hooks {
        body += &format!("[[webhook]]\nurl = \"{h}\"\n\n");
    }
    config_text(Some(&token_line()), &body)
}

/// Asserts one delivered transition document.
#[track_caller]
fn assert_transition(doc: &Value, from: &str, to: &str, reason: &str) {
    let keys: BTreeSet<&str> = doc
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {doc}"))
        .keys()
        .map(String::as_str)
        .collect();
    for k in ["check", "from", "to", "reason", "at"] {
        assert!(keys.contains(k), "no `{k}` in {doc}");
    }
    assert_eq!(doc["check"], "web", "{doc}");
    assert_eq!(doc["from"], from, "{doc}");
    assert_eq!(doc["to"], to, "{doc}");
    assert!(
        doc["reason"].as_str().unwrap().contains(reason),
        "reason should mention `{reason}`: {doc}"
    );
    let at = humantime::parse_rfc3339(doc["at"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("`at` is not RFC 3339 ({e}): {doc}"));
    let age = SystemTime::now()
        .duration_since(at)
        .unwrap_or_else(|_| panic!("`at` is in the future: {doc}"));
    assert!(age < Duration::from_secs(60), "{doc}");
}

#[track_caller]
fn wait_delivered(r: &Receiver, n: usize, veer: &Veer) -> Vec<Value> {
    assert!(
        wait_until(WAIT, || r.delivered().len() >= n),
        "wanted {n} deliveries, got {:?}; logs:\n{}",
        r.hits(),
        veer.logs()
    );
    r.delivered()
}

#[test]
fn each_transition_is_posted_once_as_json_to_every_webhook() {
    let mut web = HttpBackend::start();
    let r1 = Receiver::start(0);
    let r2 = Receiver::start(0);
    let (_dir, veer) = setup(
        &web.url("/health"),
        &[r1.url("/hook"), r2.url("/other/path")],
    );
    let api = Admin::from_logs(&veer.logs(), TOKEN);

    // unknown -> up
    let d = wait_delivered(&r1, 1, &veer);
    assert_transition(&d[0], "unknown", "up", "status 200");
    // up -> down
    web.kill();
    let d = wait_delivered(&r1, 2, &veer);
    assert_transition(&d[1], "up", "down", "2 consecutive failures");
    // down -> up
    web.restart();
    let d = wait_delivered(&r1, 3, &veer);
    assert_transition(&d[2], "down", "up", "status 200");
    wait_delivered(&r2, 3, &veer);

    // Exactly one POST per transition per receiver, JSON, to the path
    // configured: wait until the server has counted its transitions, let
    // any stray retry arrive, then count.
    assert!(
        wait_until(WAIT, || api.metrics().get("veer_transitions_total", &[])
            == 3.0),
        "{}",
        api.get("/metrics").body
    );
    std::thread::sleep(Duration::from_millis(300));
    for (r, path) in [(&r1, "/hook"), (&r2, "/other/path")] {
        let hits = r.hits();
        assert_eq!(hits.len(), 3, "{hits:?}");
        for h in &hits {
            assert_eq!(h.method, "POST", "{h:?}");
            assert_eq!(h.path, path, "{h:?}");
            assert!(
                h.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{h:?}"
            );
        }
    }
    // Both receivers got the same documents, in the order they happened.
    let (d1, d2) = (r1.delivered(), r2.delivered());
    let key = |d: &Value| (d["at"].as_str().unwrap().to_string(), d["to"].clone());
    let mut k1: Vec<_> = d1.iter().map(key).collect();
    let mut k2: Vec<_> = d2.iter().map(key).collect();
    k1.sort_by(|a, b| a.0.cmp(&b.0));
    k2.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(k1, k2);
    let tos: Vec<&Value> = k1.iter().map(|k| &k.1).collect();
    assert_eq!(tos, ["up", "down", "up"]);
}

#[test]
fn a_failing_receiver_gets_the_delivery_after_retries_with_backoff() {
    let web = HttpBackend::start();
    let hook = Receiver::start(3); // 500, 500, 500, then 204
    let (_dir, veer) = setup(&web.url("/health"), &[hook.url("/hook")]);

    let d = wait_delivered(&hook, 1, &veer);
    assert_transition(&d[0], "unknown", "up", "status 200");
    let hits = hook.hits();
    let answered: Vec<u16> = hits.iter().map(|h| h.answered).collect();
    assert_eq!(answered, [500, 500, 500, 204], "{hits:?}");
    assert!(
        hits.iter().all(|h| h.body == hits[0].body),
        "every attempt carries the same document: {hits:?}"
    );
    // Exponential backoff (200 ms doubling, ±25% jitter): the gaps are
    // about 200, 400 and 800 ms.
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!("webhook retry gaps: {gaps:?}");
    assert!(
        gaps[0] >= Duration::from_millis(100),
        "no backoff: {gaps:?}"
    );
    assert!(gaps[1] >= Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(500), "{gaps:?}");
    assert!(gaps[2] > gaps[0], "the backoff does not grow: {gaps:?}");
    // And no more after the success.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.hits().len(), 4);
}

#[test]
fn a_hanging_receiver_blocks_neither_probes_nor_queries() {
    let mut web = HttpBackend::start();
    let hook = Receiver::start_hanging();
    let (_dir, veer) = setup(&web.url("/health"), &[hook.url("/hook")]);
    assert!(
        wait_until(WAIT, || !hook.hits().is_empty()),
        "the first transition was not posted; logs:\n{}",
        veer.logs()
    );
    let ask = || {
        let t = Instant::now();
        let r = dns::ask_a(veer.addr, "www.example.test").expect("answered");
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "query took {took:?}");
        r.a.iter().map(|ip| ip.to_string()).collect::<Vec<_>>()
    };
    assert!(wait_until(WAIT, || ask() == ["10.0.0.1"]));

    // The receiver holds every delivery open; failover and failback still
    // happen within a few probe intervals.
    let killed = Instant::now();
    web.kill();
    assert!(
        wait_until(WAIT, || ask() == ["10.0.0.2"]),
        "no failover; logs:\n{}",
        veer.logs()
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(3), "failover took {took:?}");
    let restarted = Instant::now();
    web.restart();
    assert!(wait_until(WAIT, || ask() == ["10.0.0.1"]), "no failback");
    let took = restarted.elapsed();
    assert!(took < Duration::from_secs(3), "failback took {took:?}");
    // Deliveries to one URL are ordered: the later transitions wait
    // behind the hanging one (and nothing was delivered).
    assert!(!hook.hits().is_empty());
    assert!(hook.delivered().is_empty());
}

#[test]
fn deliveries_to_one_url_arrive_in_the_order_of_the_transitions() {
    // The first transition needs 5 attempts (about 3 s of backoff); the
    // next two happen meanwhile. Delivered in parallel, they overtook it.
    let mut web = HttpBackend::start();
    let hook = Receiver::start(4);
    let (_dir, veer) = setup(&web.url("/health"), &[hook.url("/hook")]);
    assert!(wait_until(WAIT, || !hook.hits().is_empty()));
    web.kill();
    wait_log(&veer, "check web: up -> down");
    web.restart();
    wait_log(&veer, "check web: down -> up");
    let d = wait_delivered(&hook, 3, &veer);
    let order: Vec<String> = d
        .iter()
        .map(|t| {
            format!(
                "{} -> {}",
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        ["unknown -> up", "up -> down", "down -> up"],
        "{:?}",
        hook.hits()
    );
}

#[test]
fn a_webhook_added_by_reload_gets_the_next_transition() {
    let mut web = HttpBackend::start();
    let (dir, veer) = setup(&web.url("/health"), &[]);
    wait_log(&veer, "check web: unknown -> up");
    let hook = Receiver::start(0);
    write_file(
        dir.path(),
        "veer.toml",
        &config(&web.url("/health"), &[hook.url("/hook")]),
    );
    veer.signal("HUP");
    wait_log(&veer, "reload applied");
    web.kill();
    let d = wait_delivered(&hook, 1, &veer);
    assert_transition(&d[0], "up", "down", "2 consecutive failures");
}

#[track_caller]
fn wait_log(veer: &Veer, text: &str) {
    veer.expect_log(text, WAIT);
}
