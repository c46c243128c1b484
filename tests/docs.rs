//! The documentation's configuration is real: every TOML block in the
//! README and in `docs/` passes `veer check` as printed. A block with a
//! `[server]` table is a whole config; any other block is a fragment,
//! checked after a minimal `[server]` and `[[zone]]` header. Each is
//! checked in a directory laid out like the repository's root (its
//! `zones/` and `examples/`), where the documented relative paths lead.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// What a fragment is checked after.
const HEADER: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
                      [[zone]]\norigin = \"example.test.\"\nfile = \"zones/example.test.zone\"\n\n";

/// Every ```toml block of `file`: (line of its first line, text).
fn toml_blocks(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, l)
                if ["```toml", "~~~toml"]
                    .iter()
                    .any(|f| l.to_ascii_lowercase().starts_with(f)) =>
            {
                current = Some((i + 2, String::new()))
            }
            (Some(_), l) if l.starts_with("```") || l.starts_with("~~~") => {
                out.push(current.take().unwrap())
            }
            (Some((_, block)), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert!(
        current.is_none(),
        "{}: unterminated ```toml block",
        file.display()
    );
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn every_toml_block_of_the_docs_passes_veer_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        files.extend(
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    let mut checked = 0;
    for file in &files {
        for (line, block) in toml_blocks(file) {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(&root.join("zones"), &dir.path().join("zones"));
            copy_dir(&root.join("examples"), &dir.path().join("examples"));
            // Secrets and certificates are the operator's own, never in
            // the repository: stand-ins where a block names them.
            for (path, content) in [
                ("secrets/fleet.token", "fleet-token-0123456789abcdef"),
                ("tls/ns1.crt", ""),
                ("tls/ns1.key", ""),
            ] {
                if block.contains(path) {
                    write_file(dir.path(), path, content);
                }
            }
            let text = if block.contains("[server]") {
                block.clone()
            } else {
                format!("{HEADER}{block}")
            };
            let config = write_file(dir.path(), "veer.toml", &text);
            // Keys are the operator's too: made as the README says.
            if block.contains("dnssec = true") {
                for origin in block
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("origin = \""))
                    .filter_map(|l| l.split('"').next())
                {
                    let out = run_veer(
                        &[
                            "dnssec",
                            "keygen",
                            "--config",
                            config.to_str().unwrap(),
                            origin,
                        ],
                        Duration::from_secs(20),
                    );
                    assert!(out.status.success(), "keygen {origin}: {out:?}");
                }
            }
            let out = run_veer(
                &["check", "--config", config.to_str().unwrap()],
                Duration::from_secs(20),
            );
            assert!(
                out.status.success(),
                "{}:{line}: this block fails veer check:\n{}\n{block}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    println!("{checked} TOML blocks checked");
    assert!(
        checked >= 2,
        "the README's configuration examples were not found"
    );
}
