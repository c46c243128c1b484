//! Health state across change: a reload, a restart or a shared probe in
//! the middle of a failover must neither lose nor invent state. Checks
//! here are `file` checks (probed every 50 ms and re-read when the file
//! changes), so each scenario flips backends by writing a word.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(10);

const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@       300 IN SOA ns1 hostmaster 1000 7200 3600 1209600 60
        IN  NS  ns1
ns1     IN  A   192.0.2.53
";

/// `[check.NAME]` reading `health/FILE`.
fn check(name: &str, file: &str) -> String {
    format!(
        "[check.{name}]\nfile = \"health/{file}\"\ninterval = \"50ms\"\ntimeout = \"40ms\"\nfall = 1\nrise = 1\n\n"
    )
}

/// A failover route `NAME.example.test.`: tier 1 = 10.0.0.N checked by
/// `check`, tier 2 = the unchecked 10.0.0.2NN.
fn route(name: &str, n: u8, check: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}.example.test.\"\ntype = \"A\"\nttl = 30\npolicy = \"failover\"\n\
         members = [ {{ tier = 1, value = \"10.0.0.{n}\", check = \"{check}\" }}, {{ tier = 2, value = \"10.0.0.2{n:02}\" }} ]\n\n"
    )
}

struct Scenario {
    dir: TempDir,
    config: PathBuf,
}

impl Scenario {
    fn new(body: &str) -> Scenario {
        let dir = tempfile::Builder::new()
            .prefix("veer-state-")
            .tempdir()
            .unwrap();
        write_file(dir.path(), "example.test.zone", ZONE);
        let config = write_file(dir.path(), "veer.toml", &config_text(body));
        Scenario { dir, config }
    }

    fn set(&self, file: &str, state: &str) {
        write_file(self.dir.path(), &format!("health/{file}"), state);
    }

    fn rewrite(&self, body: &str) {
        write_file(self.dir.path(), "veer.toml", &config_text(body));
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn config_text(body: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
         [rrl]\nresponses_per_second = 0\n\n\
         [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n\n{body}"
    )
}

fn answer(veer: &Veer, name: &str) -> Vec<String> {
    veer.dig(&[&format!("{name}.example.test"), "A"])
        .answer_data()
}

#[track_caller]
fn wait_answer(veer: &Veer, name: &str, want: &str) {
    let mut last = Vec::new();
    assert!(
        wait_until(WAIT, || {
            last = answer(veer, name);
            last == [want]
        }),
        "{name}: wanted {want}, last {last:?}; logs:\n{}",
        veer.logs()
    );
}

/// Asks `name` `n` times, asserting every answer is `want`.
#[track_caller]
fn assert_always(veer: &Veer, name: &str, want: &str, n: usize) {
    for _ in 0..n {
        assert_eq!(answer(veer, name), [want], "{name}; logs:\n{}", veer.logs());
    }
}

#[test]
fn a_check_joining_a_running_probe_takes_its_state() {
    // a's backend is down. A reload adds b with a's definition: b shares
    // a's probe, which reports nothing new while the backend stays down,
    // so b must take the probe's state at once (it stayed Unknown, which
    // is eligible, and answered the dead backend indefinitely).
    let s = Scenario::new(&format!("{}{}", check("a", "web"), route("one", 1, "a")));
    s.set("web", "down");
    let veer = Veer::start(&s.config);
    wait_answer(&veer, "one", "10.0.0.201");
    s.rewrite(&format!(
        "{}{}{}{}",
        check("a", "web"),
        check("b", "web"),
        route("one", 1, "a"),
        route("two", 2, "b")
    ));
    veer.signal("HUP");
    veer.expect_log("reload applied", WAIT);
    assert_always(&veer, "two", "10.0.0.202", 20);

    // And at a restart: a restored from the checkpoint, c new with the
    // same definition, joins a's probe.
    drop(veer);
    s.rewrite(&format!(
        "{}{}{}{}",
        check("a", "web"),
        check("c", "web"),
        route("one", 1, "a"),
        route("two", 2, "c")
    ));
    let veer = Veer::start(&s.config);
    assert_always(&veer, "two", "10.0.0.202", 20);
}

/// Four checks on four files and a route on each, guarded (more than half
/// down within 30 s freezes).
fn guarded() -> String {
    let mut body = String::from(
        "[health]\nguard_share = 0.5\nguard_window = \"30s\"\nguard_min_checks = 4\n\n",
    );
    for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
        body += &check(n, n);
        body += &route(n, i as u8 + 1, n);
    }
    body
}

#[test]
fn the_prober_guard_holds_across_a_reload_and_a_restart() {
    let s = Scenario::new(&guarded());
    for n in ["a", "b", "c", "d"] {
        s.set(n, "up");
    }
    let veer = Veer::start(&s.config);
    for n in ["a", "b", "c", "d"] {
        veer.expect_log(&format!("check {n}: unknown -> up"), WAIT);
    }
    // Three of four go down together: the prober's own fault is likelier.
    for n in ["a", "b", "c"] {
        s.set(n, "down");
    }
    veer.expect_log("prober guard: more than 50%", WAIT);
    assert_always(&veer, "a", "10.0.0.1", 5);

    // A reload (an unrelated edit) keeps the freeze.
    s.rewrite(&format!("{}# edited\n", guarded()));
    veer.signal("HUP");
    veer.expect_log("reload applied", WAIT);
    assert_always(&veer, "a", "10.0.0.1", 10);
    assert!(!veer.logs().contains("guard lifted"), "{}", veer.logs());

    // So does a restart, through the checkpoint.
    drop(veer);
    let veer = Veer::start(&s.config);
    veer.expect_log("prober guard: still holding", WAIT);
    assert_always(&veer, "a", "10.0.0.1", 10);

    // Probes recover: the guard lifts, and says so.
    for n in ["a", "b", "c"] {
        s.set(n, "up");
    }
    veer.expect_log("prober guard lifted", WAIT);
    s.set("a", "down");
    wait_answer(&veer, "a", "10.0.0.201");
}

#[test]
fn first_verdicts_are_never_frozen_at_a_cold_start() {
    // Three of four backends are dead when veer starts: their first
    // verdicts are not a burst of failures, and their routes fail over.
    let s = Scenario::new(&guarded());
    for n in ["a", "b", "c"] {
        s.set(n, "down");
    }
    s.set("d", "up");
    let veer = Veer::start(&s.config);
    for (n, want) in [
        ("a", "10.0.0.201"),
        ("b", "10.0.0.202"),
        ("c", "10.0.0.203"),
    ] {
        wait_answer(&veer, n, want);
    }
    wait_answer(&veer, "d", "10.0.0.4");
    assert!(!veer.logs().contains("prober guard:"), "{}", veer.logs());
    let _ = s.path();
}

#[test]
fn a_second_process_on_the_same_state_dir_is_refused() {
    let s = Scenario::new(&guarded());
    s.set("a", "up");
    let veer = Veer::start(&s.config);
    let out = run_veer(
        &["serve", "--config", s.config.to_str().unwrap()],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another veer process"),
        "{stderr}"
    );
    // The first one serves on.
    wait_answer(&veer, "a", "10.0.0.1");
}
