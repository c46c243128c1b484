//! Binding as root, running as `[server] user`: veer answers on the port
//! it bound, runs as that user, and still writes its checkpoint.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// The real uid of `pid`.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn started_as_root_it_runs_as_nobody_and_keeps_its_state() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: the tests do not run as root, so veer cannot drop privileges here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The user must be able to reach its state directory and check files.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_file(
        dir.path(),
        "example.test.zone",
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n  IN NS ns1\nns1 IN A 192.0.2.53\n",
    );
    let health = write_file(dir.path(), "health/a", "up");
    let config = write_file(
        dir.path(),
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\nuser = \"nobody\"\n\n\
         [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n\n\
         [check.a]\nfile = \"health/a\"\ninterval = \"100ms\"\nfall = 1\nrise = 1\n\n\
         [[route]]\nname = \"app.example.test.\"\ntype = \"A\"\npolicy = \"failover\"\n\
         members = [ { tier = 1, value = \"10.0.0.1\", check = \"a\" }, { tier = 2, value = \"10.0.0.2\" } ]\n",
    );
    let veer = Veer::start(&config);
    veer.expect_log("running as uid 65534", WAIT);
    assert_eq!(uid_of(veer.pid()), 65534, "not running as nobody");
    veer.expect_log("check a: unknown -> up", WAIT);
    let r = veer.dig(&["app.example.test", "A"]);
    assert_eq!(r.answer_data(), ["10.0.0.1"], "{}", r.raw);

    // A transition is checkpointed by the unprivileged process.
    std::fs::write(&health, "down").unwrap();
    veer.expect_log("check a: up -> down", WAIT);
    let checkpoint = dir.path().join("state/health.json");
    assert!(
        wait_until(WAIT, || std::fs::read_to_string(&checkpoint)
            .is_ok_and(|t| t.contains("\"down\""))),
        "checkpoint not written; logs:\n{}",
        veer.logs()
    );
    assert_eq!(std::fs::metadata(&checkpoint).unwrap().uid(), 65534);
    assert!(!veer.logs().contains("cannot write"), "{}", veer.logs());
}

#[test]
fn an_unknown_user_refuses_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "example.test.zone",
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n  IN NS ns1\nns1 IN A 192.0.2.53\n",
    );
    let config = write_file(
        dir.path(),
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nuser = \"no-such-user-veer\"\n\n\
         [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n",
    );
    let out = run_veer(&["serve", "--config", config.to_str().unwrap()], WAIT);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[server] user `no-such-user-veer`: no such user"),
        "{err}"
    );
}
