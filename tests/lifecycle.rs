//! Process lifecycle of `veer serve`: graceful shutdown on SIGTERM and
//! SIGINT, JSON logs, and refusing to start on a bad config.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    let r = veer.dig(&["www.example.test", "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    let status = veer.terminate();
    assert!(
        status.success(),
        "exit status {status}; logs:\n{}",
        veer.logs()
    );
    assert!(
        veer.logs().contains("shutting down"),
        "logs:\n{}",
        veer.logs()
    );
    // Nothing answers any more.
    assert!(
        try_dig(veer.addr, &["www.example.test", "A", "+time=1"]).is_err(),
        "still answering after exit"
    );
}

#[test]
fn sigint_shuts_down_gracefully() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    veer.signal("INT");
    let status = veer.wait_exit(EXIT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}; logs:\n{}",
        veer.logs()
    );
    assert!(
        veer.logs().contains("shutting down"),
        "logs:\n{}",
        veer.logs()
    );
}

#[test]
fn sigterm_with_an_open_tcp_connection_still_exits() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    // An idle client connection must not keep the process alive for long.
    let _idle = std::net::TcpStream::connect(veer.addr).expect("connect");
    let status = veer.terminate();
    assert!(
        status.success(),
        "exit status {status}; logs:\n{}",
        veer.logs()
    );
}

#[test]
fn json_log_format_writes_json_lines() {
    let dir = scenario("auth");
    let mut veer = Veer::start_with(&dir.path().join("veer.toml"), &["--log-format", "json"]);
    let r = veer.dig(&["www.example.test", "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    assert!(veer.terminate().success(), "logs:\n{}", veer.logs());
    let logs = veer.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.starts_with('{') && l.ends_with('}'),
            "not a JSON object line: {l}\nlogs:\n{logs}"
        );
    }
    let listening = lines
        .iter()
        .find(|l| l.contains(&format!("dns listening on {} (udp, tcp)", veer.addr)))
        .unwrap_or_else(|| panic!("no listening line:\n{logs}"));
    assert!(listening.contains("\"level\":\"INFO\""), "{listening}");
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "logs:\n{logs}"
    );
}

#[test]
fn serve_refuses_a_config_with_errors() {
    // A zone error: exit 1, file:line on stderr, nothing bound.
    let dir = scenario("auth");
    let zone = dir.path().join("zones/child.example.test.zone");
    let text = std::fs::read_to_string(&zone).unwrap();
    let broken = text.replace(
        "www     IN  A    192.0.2.201",
        "www     IN  A    192.0.2.2011",
    );
    assert_ne!(text, broken, "fixture changed");
    std::fs::write(&zone, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.contains("192.0.2.2011"))
        .unwrap()
        + 1;
    let config = dir.path().join("veer.toml");
    let out = run_veer(
        &["serve", "--config", config.to_str().unwrap()],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:{line}: ", zone.display())),
        "no {}:{line} in stderr:\n{stderr}",
        zone.display()
    );
    assert!(!stderr.contains(LISTENING), "it listened:\n{stderr}");

    // A config error (the zone fixed again).
    std::fs::write(&zone, &text).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[server]\n", "[server]\nlisen = 1\n", 1),
    )
    .unwrap();
    let out = run_veer(
        &["serve", "--config", config.to_str().unwrap()],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:", config.display())) && stderr.contains("lisen"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn serve_fails_when_the_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = scenario("auth");
    let config = dir.path().join("veer.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("127.0.0.1:0", &addr.to_string())).unwrap();
    let out = run_veer(
        &["serve", "--config", config.to_str().unwrap()],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "stderr:\n{stderr}"
    );
}

#[test]
fn sigterm_exits_promptly() {
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    let r = veer.dig(&["www.example.test", "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    let r = veer.dig(&["www.example.test", "A", "+tcp"]);
    assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    let start = std::time::Instant::now();
    veer.signal("TERM");
    // Polled every 1 ms: the measure is the exit, not the polling.
    wait_until_every(EXIT_TIMEOUT, Duration::from_millis(1), || {
        !veer.is_running()
    });
    let took = start.elapsed();
    println!("exited {took:?} after SIGTERM");
    assert!(
        veer.wait_exit(Duration::ZERO).is_some_and(|s| s.success()),
        "logs:\n{}",
        veer.logs()
    );
    // Typically 10-30 ms (a debug build); the bound is for loaded hosts.
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?}; logs:\n{}",
        veer.logs()
    );
}

#[test]
fn sigterm_lets_a_tcp_query_in_flight_finish() {
    use std::io::{Read, Write};
    let dir = scenario("auth");
    let mut veer = Veer::start_in(dir.path());
    let query = wire::query(0x5eed, wire::RD, "www.example.test.", 1);
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let mut s = std::net::TcpStream::connect(veer.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The first bytes: the message is in flight when SIGTERM comes.
    s.write_all(&framed[..3]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    veer.signal("TERM");
    assert!(veer.wait_for_log("shutting down", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(veer.is_running(), "exited with a query in flight");
    s.write_all(&framed[3..]).unwrap();
    let mut len = [0; 2];
    s.read_exact(&mut len).unwrap();
    let mut answer = vec![0; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut answer).unwrap();
    let h = wire::Header::parse(&answer).unwrap();
    assert_eq!((h.id, h.ancount, h.rcode()), (0x5eed, 1, 0), "{h:?}");
    // Then the connection closes and the process exits.
    assert_eq!(s.read(&mut len).unwrap_or(0), 0);
    let status = veer.wait_exit(EXIT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
