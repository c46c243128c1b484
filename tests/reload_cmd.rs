//! `veer reload`: POST /v1/reload on a running server's admin API, with
//! the token from --token, --token-file or VEER_API_TOKEN.

#[path = "support/admin.rs"]
mod admin;
mod common;

use std::process::{Command, Output, Stdio};

use admin::{TOKEN, config_text, token_line, zone_text};
use common::*;

/// `veer reload --api URL args...` with `env`.
fn reload(api: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, String, String) {
    let out = Command::new(veer_bin())
        .args(["reload", "--api", api])
        .args(args)
        .env_remove("VEER_API_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run veer reload");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The N of `reload applied: generation N` on `stdout`.
#[track_caller]
fn generation(stdout: &str) -> u64 {
    stdout
        .trim()
        .strip_prefix("reload applied: generation ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stdout: {stdout:?}"))
}

#[test]
fn reload_prints_the_generation_or_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "example.test.zone", &zone_text(1, ""));
    let config = write_file(
        dir.path(),
        "veer.toml",
        &config_text(Some(&token_line()), ""),
    );
    let veer = Veer::start(&config);
    let api = admin::Admin::from_logs(&veer.logs(), TOKEN);
    let url = format!("http://{}", api.addr);

    // --token: applied, and the server logged that generation.
    let (out, stdout, stderr) = reload(&url, &["--token", TOKEN], &[]);
    assert!(out.status.success(), "stderr: {stderr}");
    let g1 = generation(&stdout);
    assert!(
        veer.wait_for_log(
            &format!("reload applied: generation {g1}"),
            std::time::Duration::from_secs(5)
        ),
        "logs:\n{}",
        veer.logs()
    );

    // VEER_API_TOKEN, then --token-file (a trailing newline is fine).
    let (out, stdout, stderr) = reload(&url, &[], &[("VEER_API_TOKEN", TOKEN)]);
    assert!(out.status.success(), "stderr: {stderr}");
    let g2 = generation(&stdout);
    assert!(g2 > g1, "{g2} after {g1}");
    let file = write_file(dir.path(), "token", &format!("{TOKEN}\n"));
    let (out, stdout, stderr) = reload(&url, &["--token-file", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(generation(&stdout) > g2);

    // A wrong token, or none: exit 1, and why.
    let (out, stdout, stderr) = reload(&url, &["--token", "wrong-token-0123456789"], &[]);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(
        stderr.contains("401") && stderr.contains("bearer token"),
        "{stderr}"
    );
    let (out, _, stderr) = reload(&url, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("VEER_API_TOKEN"), "{stderr}");

    // A broken zone: exit 1, the error (file:line) on its own line.
    let zone = dir.path().join("example.test.zone");
    std::fs::write(&zone, zone_text(2, "www IN A 192.0.2.2011\n")).unwrap();
    let (out, stdout, stderr) = reload(&url, &["--token", TOKEN], &[]);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    let prefix = format!("{}:6: ", zone.display());
    assert!(
        stderr.lines().any(|l| l.starts_with(&prefix)),
        "no line starting {prefix:?}:\n{stderr}"
    );
    // Nothing answers the API: exit 1.
    drop(veer);
    let (out, _, stderr) = reload(&url, &["--token", TOKEN], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.starts_with("veer reload: "), "{stderr}");
}
