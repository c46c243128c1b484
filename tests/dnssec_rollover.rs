//! A CSK rollover by double signature, as the README describes it, with a
//! running server, and `delv` (a validator) asking after every step:
//!
//! 1. `veer dnssec keygen`: the new key is published and signs beside the
//!    old one (after a reload); answers validate under the old DS and the
//!    new one alike;
//! 2. the parent's DS moves to the new key (here: the trust anchor);
//! 3. `veer dnssec retire` the old key and reload: answers validate under
//!    the new DS, and the old key is gone from the DNSKEY set.
//!
//! A health transition between the steps shows routed answers are signed
//! with whatever keys are active.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const ZONE: &str = "$ORIGIN roll.test.\n$TTL 300\n\
@ IN SOA ns1 host 1 3600 600 86400 60\n\
@ IN NS ns1\n\
ns1 IN A 127.0.0.1\n\
www IN A 192.0.2.10\n";

fn config(dir: &Path) -> std::path::PathBuf {
    write_file(dir, "roll.test.zone", ZONE);
    write_file(dir, "health/app", "up");
    write_file(
        dir,
        "veer.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
         [rrl]\nresponses_per_second = 0\n\n\
         [[zone]]\norigin = \"roll.test.\"\nfile = \"roll.test.zone\"\ndnssec = true\n\n\
         [check.app]\nfile = \"health/app\"\ninterval = \"50ms\"\nfall = 1\nrise = 1\n\n\
         [[route]]\nname = \"app.roll.test.\"\ntype = \"A\"\nttl = 5\npolicy = \"failover\"\n\
         members = [ { tier = 1, value = \"192.0.2.1\", check = \"app\" }, { tier = 2, value = \"192.0.2.2\" } ]\n",
    )
}

/// `veer dnssec SUBCOMMAND --config CONFIG roll.test. ARGS`, which must
/// succeed; its stdout.
fn dnssec(config: &Path, sub: &str, args: &[&str]) -> String {
    let mut a = vec![
        "dnssec",
        sub,
        "--config",
        config.to_str().unwrap(),
        "roll.test.",
    ];
    a.extend_from_slice(args);
    let out = run_veer(&a, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "veer {a:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tag of a DS line (`roll.test. 3600 IN DS TAG 13 2 HEX`).
fn tag(ds: &str) -> String {
    ds.split_whitespace().nth(4).unwrap().to_string()
}

/// delv's verdict on `name A` against veer at `addr`, trusting `ds`.
fn delv(dir: &Path, addr: std::net::SocketAddr, ds: &str, name: &str) -> String {
    let f: Vec<&str> = ds.split_whitespace().collect();
    let anchors = write_file(
        dir,
        "anchors.conf",
        &format!(
            "trust-anchors {{ \"{}\" static-ds {} {} {} \"{}\"; }};\n",
            f[0], f[4], f[5], f[6], f[7]
        ),
    );
    let out = Command::new("delv")
        .args(["-a", anchors.to_str().unwrap(), "+root=roll.test"])
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), name, "A"])
        .output()
        .expect("run delv (bind9-dnsutils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn validates(dir: &Path, addr: std::net::SocketAddr, ds: &str, name: &str, want: &str) {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        last = delv(dir, addr, ds, name);
        last.contains("; fully validated") && last.contains(want)
    });
    assert!(
        ok,
        "{name} under DS {ds}: not validated with {want}:\n{last}"
    );
}

/// The keys in the DNSKEY set (their tags, from dig's comments).
fn dnskey_tags(v: &Veer) -> Vec<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", v.addr.ip()))
        .args(["-p", &v.addr.port().to_string()])
        .args(["+norec", "+multi", "roll.test.", "DNSKEY"])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut tags: Vec<String> = text
        .lines()
        .filter_map(|l| l.split("key id = ").nth(1))
        .map(|t| t.trim().to_string())
        .collect();
    tags.sort();
    tags
}

#[test]
fn a_csk_rollover_validates_through_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let old_ds = dnssec(&config, "keygen", &[])
        .lines()
        .find(|l| l.contains(" DS "))
        .unwrap()
        .to_string();
    let mut v = Veer::start(&config);
    let addr = v.addr;
    validates(dir.path(), addr, &old_ds, "www.roll.test", "192.0.2.10");
    validates(dir.path(), addr, &old_ds, "app.roll.test", "192.0.2.1");
    assert_eq!(dnskey_tags(&v), vec![tag(&old_ds)]);

    // 1. A new key, published and signing beside the old one.
    let new_ds = dnssec(&config, "keygen", &[])
        .lines()
        .find(|l| l.contains(" DS "))
        .unwrap()
        .to_string();
    assert_ne!(tag(&old_ds), tag(&new_ds));
    v.reload_with(&std::fs::read_to_string(&config).unwrap());
    let mut both = vec![tag(&old_ds), tag(&new_ds)];
    both.sort();
    assert!(
        wait_until(Duration::from_secs(5), || dnskey_tags(&v) == both),
        "DNSKEY set {:?}, want {both:?}",
        dnskey_tags(&v)
    );
    let ds_lines = dnssec(&config, "ds", &[]);
    assert!(
        ds_lines.contains(&new_ds) && ds_lines.contains(&old_ds),
        "{ds_lines}"
    );
    // Double signature: either DS at the parent validates everything.
    for ds in [&old_ds, &new_ds] {
        validates(dir.path(), addr, ds, "www.roll.test", "192.0.2.10");
        validates(dir.path(), addr, ds, "app.roll.test", "192.0.2.1");
    }
    // A transition now: signed with both keys.
    write_file(dir.path(), "health/app", "down");
    for ds in [&old_ds, &new_ds] {
        validates(dir.path(), addr, ds, "app.roll.test", "192.0.2.2");
    }

    // 2. The parent's DS is the new key's (the anchor moves); 3. the old
    // key retires.
    dnssec(&config, "retire", &[&tag(&old_ds)]);
    let keys = dnssec(&config, "keys", &[]);
    assert!(
        keys.lines()
            .any(|l| l.starts_with(&tag(&old_ds)) && l.contains("retired")),
        "{keys}"
    );
    // The last active key is never retired.
    let out = run_veer(
        &[
            "dnssec",
            "retire",
            "--config",
            config.to_str().unwrap(),
            "roll.test.",
            &tag(&new_ds),
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success(), "the last key was retired");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is the last"),
        "{out:?}"
    );
    v.reload_with(&std::fs::read_to_string(&config).unwrap());
    assert!(
        wait_until(Duration::from_secs(5), || dnskey_tags(&v)
            == vec![tag(&new_ds)]),
        "DNSKEY set {:?} after retiring {}",
        dnskey_tags(&v),
        tag(&old_ds)
    );
    validates(dir.path(), addr, &new_ds, "www.roll.test", "192.0.2.10");
    write_file(dir.path(), "health/app", "up");
    validates(dir.path(), addr, &new_ds, "app.roll.test", "192.0.2.1");
    // The old DS no longer leads anywhere.
    let last = delv(dir.path(), addr, &old_ds, "www.roll.test");
    assert!(!last.contains("; fully validated"), "{last}");
    v.terminate();
}
