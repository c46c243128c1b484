//! `dist/veer.service`: the settings the README promises, and (where
//! `systemd-analyze` exists) a clean `systemd-analyze verify`.

mod common;

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/veer.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_unit_has_the_promised_settings() {
    let text = unit();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "ExecStart=/usr/local/bin/veer serve --config /etc/veer/veer.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "User=veer",
        "StateDirectory=veer",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        "RestrictNamespaces=yes",
        "LimitNOFILE=65536",
    ] {
        assert!(lines.contains(&want), "no `{want}` in dist/veer.service");
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not found: skipped");
        return;
    }
    // verify wants ExecStart's binary to exist: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veer.service");
    std::fs::write(
        &path,
        unit().replace("/usr/local/bin/veer", common::veer_bin()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An unknown key or a bad value is only a warning: none are allowed.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}
