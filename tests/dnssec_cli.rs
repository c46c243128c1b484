//! `veer dnssec keygen` and `veer dnssec ds`, run as the real binary, and
//! what `veer check` says about a zone with `dnssec = true` and its keys.
//! BIND's tools, where installed, check the files: `dnssec-dsfromkey`
//! computes the same DS, and keys `dnssec-keygen` made load.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;

const ZONE: &str = "$ORIGIN example.test.\n$TTL 3600\n\
@ IN SOA ns hostmaster 1 7200 3600 1209600 900\n\
  IN NS ns\n\
ns IN A 192.0.2.53\n";

/// A directory with a config (`dnssec = true` for example.test., keys in
/// `state/keys`) and the zone.
fn setup(dnssec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "zones/example.test.zone", ZONE);
    let config = write_file(
        dir.path(),
        "veer.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
             [[zone]]\norigin = \"example.test.\"\nfile = \"zones/example.test.zone\"\n{dnssec}"
        ),
    );
    (dir, config)
}

fn veer(args: &[&str]) -> Output {
    run_veer(args, Duration::from_secs(20))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A BIND tool's path, if installed.
fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `tag alg digest-type DIGEST` of a DS line, whatever comes before
/// (veer prints a TTL, dnssec-dsfromkey does not).
fn ds_rdata(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "DS").expect("a DS line");
    words[at + 1..].join(" ")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_bind_key_files_and_ds_prints_their_ds() {
    let (dir, config) = setup("dnssec = true\n");
    let c = config.to_str().unwrap();
    let out = veer(&["dnssec", "keygen", "--config", c, "Example.Test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let keys = dir.path().join("state/keys");
    let key_file = PathBuf::from(lines[0]);
    let private = PathBuf::from(lines[1]);
    assert_eq!(key_file.parent(), Some(keys.as_path()));
    let base = key_file.file_stem().unwrap().to_str().unwrap().to_string();
    assert!(base.starts_with("Kexample.test.+013+"), "{base}");
    assert_eq!(private, keys.join(format!("{base}.private")));
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&keys), 0o700);
    let tag: u16 = base.rsplit('+').next().unwrap().parse().unwrap();
    assert!(
        lines[2].starts_with(&format!("example.test. 3600 IN DS {tag} 13 2 ")),
        "{}",
        lines[2]
    );
    let private_text = std::fs::read_to_string(&private).unwrap();
    assert!(
        private_text
            .starts_with("Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: "),
        "{private_text}"
    );

    // A ZSK of the other algorithm: no DS of its own.
    let out = veer(&[
        "dnssec",
        "keygen",
        "-c",
        c,
        "example.test.",
        "--role",
        "zsk",
        "--algorithm",
        "ed25519",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let zsk = text(&out.stdout);
    assert_eq!(zsk.lines().count(), 2, "{zsk}");
    assert!(zsk.contains("Kexample.test.+015+"), "{zsk}");
    let zsk_public = std::fs::read_to_string(zsk.lines().next().unwrap()).unwrap();
    assert!(zsk_public.contains("IN DNSKEY 256 3 15 "), "{zsk_public}");

    // `ds` prints the CSK's DS only, as keygen did.
    let out = veer(&["dnssec", "ds", "-c", c, "example.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{}\n", lines[2]));

    // BIND computes the same DS from the .key file.
    if let Some(dsfromkey) = tool("dnssec-dsfromkey") {
        let bind = std::process::Command::new(dsfromkey)
            .arg("-2")
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(bind.status.success(), "{}", text(&bind.stderr));
        assert_eq!(
            ds_rdata(text(&bind.stdout).trim()),
            ds_rdata(lines[2]),
            "dnssec-dsfromkey disagrees"
        );
    } else {
        eprintln!("dnssec-dsfromkey not installed: DS not compared with BIND");
    }

    // With keys, the config checks.
    let out = veer(&["check", "-c", c]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn check_fails_without_a_key_and_with_a_corrupt_one() {
    let (dir, config) = setup("dnssec = true\n");
    let c = config.to_str().unwrap();
    let out = veer(&["check", "-c", c]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let keys = dir.path().join("state/keys");
    let want = format!(
        "{c}:6: zone example.test.: dnssec = true but no usable key in {} (run veer dnssec keygen --config {c} example.test.)",
        keys.display()
    );
    assert!(stderr.lines().any(|l| l == want), "{stderr}");

    let out = veer(&["dnssec", "keygen", "-c", c, "example.test."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let private = PathBuf::from(text(&out.stdout).lines().nth(1).unwrap());
    let good = std::fs::read_to_string(&private).unwrap();
    let corrupt: String = good
        .lines()
        .map(|l| {
            if l.starts_with("PrivateKey: ") {
                "PrivateKey: not-base64!".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&private, corrupt).unwrap();
    let out = veer(&["check", "-c", c]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let want = format!("{}:3: PrivateKey is not base64", private.display());
    assert!(stderr.lines().any(|l| l == want), "{stderr}");
    // `ds` reads the same files and says the same.
    let out = veer(&["dnssec", "ds", "-c", c, "example.test."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));

    // A missing private key.
    std::fs::remove_file(&private).unwrap();
    let out = veer(&["check", "-c", c]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1: no private key: {} is missing",
            private.with_extension("key").display(),
            private.file_name().unwrap().to_string_lossy()
        )),
        "{stderr}"
    );
}

#[test]
fn keygen_needs_a_configured_zone_and_a_key_directory() {
    let (_dir, config) = setup("");
    let c = config.to_str().unwrap();
    let out = veer(&["dnssec", "keygen", "-c", c, "other.test."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("zone other.test. is not a [[zone]] of"),
        "{}",
        text(&out.stderr)
    );
    let out = veer(&[
        "dnssec",
        "keygen",
        "-c",
        c,
        "example.test.",
        "--algorithm",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("algorithm `8`"),
        "{}",
        text(&out.stderr)
    );
    // A zone without dnssec = true may get keys ahead of signing.
    let out = veer(&["dnssec", "keygen", "-c", c, "example.test."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("does not have dnssec = true"));

    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "z.zone", ZONE);
    let config = write_file(
        dir.path(),
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\norigin = \"example.test.\"\nfile = \"z.zone\"\n",
    );
    let out = veer(&[
        "dnssec",
        "keygen",
        "-c",
        config.to_str().unwrap(),
        "example.test.",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("set [dnssec] key_dir or [server] state_dir"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keys_bind_made_load() {
    let Some(keygen) = tool("dnssec-keygen") else {
        eprintln!("skipped: dnssec-keygen is not installed");
        return;
    };
    let (dir, config) = setup("dnssec = true\n[dnssec]\nkey_dir = \"bind-keys\"\n");
    let keys = dir.path().join("bind-keys");
    std::fs::create_dir(&keys).unwrap();
    let mut made = Vec::new();
    for args in [
        &["-a", "ECDSAP256SHA256", "-f", "KSK"][..],
        &["-a", "ED25519"][..],
    ] {
        let out = std::process::Command::new(&keygen)
            .args(["-q", "-K"])
            .arg(&keys)
            .args(args)
            .arg("example.test")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        made.push(text(&out.stdout).trim().to_string());
    }
    let c = config.to_str().unwrap();
    let out = veer(&["check", "-c", c]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = veer(&["dnssec", "ds", "-c", c, "example.test."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ours = text(&out.stdout);
    assert_eq!(ours.lines().count(), 1, "only the KSK: {ours}");
    let bind = std::process::Command::new(tool("dnssec-dsfromkey").unwrap())
        .arg("-2")
        .arg(keys.join(format!("{}.key", made[0])))
        .output()
        .unwrap();
    assert_eq!(ds_rdata(text(&bind.stdout).trim()), ds_rdata(ours.trim()));
}
