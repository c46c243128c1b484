//! Adversarial review of DNSSEC key handling through the binary.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;

/// `veer dnssec keygen` run as root hands the key files to `[server]
/// user` (the server reads them on every reload after dropping
/// privileges), but `veer dnssec retire` rewrites both files of the key as
/// root, mode 0600: the next reload (and every re-signing, which is a
/// reload) fails with "cannot read: Permission denied" until the
/// signatures expire.
#[test]
fn retire_as_root_keeps_the_key_files_the_server_users() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "t.zone",
        "$ORIGIN t.\n$TTL 300\n@ IN SOA ns host 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\n",
    );
    let config = write_file(
        dir.path(),
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\nuser = \"nobody\"\n\
         [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\ndnssec = true\n",
    );
    let c = config.to_str().unwrap();
    let mut tags = Vec::new();
    for _ in 0..2 {
        let out = run_veer(
            &["dnssec", "keygen", "--config", c, "t."],
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ds = text.lines().find(|l| l.contains(" DS ")).unwrap();
        tags.push(ds.split_whitespace().nth(4).unwrap().to_string());
    }
    let keys = dir.path().join("state/keys");
    let owner = |tag: &str| -> Vec<u32> {
        let mut v: Vec<u32> = std::fs::read_dir(&keys)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains(&format!("+{:0>5}.", tag))
            })
            .map(|e| e.metadata().unwrap().uid())
            .collect();
        v.sort();
        v
    };
    let nobody = owner(&tags[0]);
    assert!(
        nobody.iter().all(|&u| u != 0),
        "keygen handed the files over: {nobody:?}"
    );
    let out = run_veer(
        &["dnssec", "retire", "--config", c, "t.", &tags[0]],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        owner(&tags[0]),
        nobody,
        "retire rewrote key {}'s files as root: the server (user nobody) can no longer read them",
        tags[0]
    );
}

/// A `.private` file with a malformed line (here `PrivateKey` without its
/// colon) is reported with the line's text, i.e. the private key, in the
/// log and in `/v1/status` `last_reload.errors` (served without a token).
#[test]
fn a_malformed_private_key_line_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "t.zone",
        "$ORIGIN t.\n$TTL 300\n@ IN SOA ns host 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\n",
    );
    let config = write_file(
        dir.path(),
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[dnssec]\nkey_dir = \"keys\"\n\
         [[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\ndnssec = true\n",
    );
    let c = config.to_str().unwrap();
    let out = run_veer(
        &["dnssec", "keygen", "--config", c, "t."],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    let private = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "private"))
        .unwrap();
    let text = std::fs::read_to_string(&private).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey: "))
        .unwrap()
        .to_string();
    std::fs::write(&private, text.replace("PrivateKey: ", "PrivateKey ")).unwrap();
    let out = run_veer(&["check", "--config", c], Duration::from_secs(20));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        !said.contains(&secret),
        "the private key is printed: {said}"
    );
}
