//! The documentation's configuration is real: every TOML block in the
//! README and in `docs/` passes `veer check` as printed. A block with a
//! `[server]` table is a whole config; any other block is a fragment,
//! checked after a minimal `[server]` and `[[zone]]` header. Each is
//! checked in a directory laid out like the repository's root (its
//! `zones/` and `examples/`), where the documented relative paths lead.
//!
//! And the reference is complete: every key `src/config/file.rs` accepts
//! has a row in its table's section of `docs/config.md`.

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
                ("secrets/api.token", "api-token-0123456789abcdef"),
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

/// Where each `*Spec` struct of `src/config/file.rs` is documented in
/// `docs/config.md`: the section whose heading holds `` `NAME` ``. `Spec`
/// itself is the file's top level: each of its fields is a table, which
/// needs a `##` heading of its own. A struct missing here fails the test,
/// so a new table cannot slip through undocumented.
const SECTIONS: &[(&str, &[&str])] = &[
    ("Spec", &[]),
    ("ServerSpec", &["[server]"]),
    ("ZoneSpec", &["[[zone]]"]),
    ("AllowSpec", &["allow_transfer"]),
    ("TargetSpec", &["notify", "primary"]),
    ("CheckSpec", &["[check.NAME]"]),
    ("ExpectSpec", &["expect"]),
    ("RouteSpec", &["[[route]]"]),
    ("MemberSpec", &["members"]),
    ("HealthSpec", &["[health]"]),
    ("GeoSpec", &["[geo]"]),
    ("ApiSpec", &["[api]"]),
    ("WebhookSpec", &["[[webhook]]"]),
    ("RrlSpec", &["[rrl]"]),
    ("CookiesSpec", &["[cookies]"]),
    ("KeySpec", &["[key.NAME]"]),
    ("TransferSpec", &["[transfer]"]),
    ("FleetSpec", &["[fleet]"]),
    ("PeerSpec", &["[[peer]]"]),
    ("DnssecSpec", &["[dnssec]"]),
    ("DnstapSpec", &["[dnstap]"]),
];

/// Every `pub struct XxxSpec { ... }` of `text`: its name, its config keys
/// (field names, or their `#[serde(rename = "...")]`) and the structs it
/// `#[serde(flatten)]`s (whose keys live in the same table).
fn spec_structs(text: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("pub struct ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.ends_with("Spec") {
            continue;
        }
        assert!(
            rest.trim_end().ends_with('{'),
            "src/config/file.rs: struct {name}: only `pub struct {name} {{` with named fields is understood here"
        );
        let (mut keys, mut flattened) = (Vec::new(), Vec::new());
        let (mut rename, mut flatten) = (None, false);
        for field in lines.by_ref() {
            if field.starts_with('}') {
                break;
            }
            let f = field.trim();
            if let Some(attr) = f.strip_prefix("#[serde(") {
                for item in attr.trim_end_matches(")]").split(',').map(str::trim) {
                    if item == "flatten" {
                        flatten = true;
                    }
                    if let Some(value) = item
                        .strip_prefix("rename")
                        .and_then(|r| r.trim_start().strip_prefix('='))
                    {
                        rename = Some(value.trim().trim_matches('"').to_string());
                    }
                }
                continue;
            }
            if f.is_empty() || f.starts_with("//") || f.starts_with("#[") {
                continue;
            }
            // A field starts at the struct's indentation: `pub name: Type,`.
            if field.len() - field.trim_start().len() != 4 {
                continue;
            }
            let f = match f.strip_prefix("pub(").and_then(|r| r.split_once(')')) {
                Some((_, r)) => r.trim_start(),
                None => f.strip_prefix("pub ").unwrap_or(f).trim_start(),
            };
            let Some((ident, ty)) = f.split_once(':') else {
                continue;
            };
            let ident = ident.trim().trim_start_matches("r#").to_string();
            if std::mem::take(&mut flatten) {
                // The flattened struct: the `...Spec` identifier in its type.
                let inner = ty
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .find(|w| w.ends_with("Spec"))
                    .unwrap_or_else(|| panic!("{name}.{ident}: flatten of a non-Spec type"));
                flattened.push(inner.to_string());
                rename = None;
            } else {
                keys.push(rename.take().unwrap_or(ident));
            }
        }
        out.push((name, keys, flattened));
    }
    out
}

/// `text`'s headings outside fenced code blocks: (line index, level,
/// heading text).
fn headings(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            out.push((i, level, line[level..].trim().to_string()));
        }
    }
    out
}

#[test]
fn every_config_key_is_in_the_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(root.join("src/config/file.rs")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/config.md")).unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let heads = headings(&doc);
    let structs = spec_structs(&code);
    let mut missing: Vec<String> = Vec::new();

    // The map and the code name the same structs (a flattened struct is
    // documented with the struct that flattens it).
    let flattened_somewhere =
        |name: &str| structs.iter().any(|(_, _, f)| f.iter().any(|x| x == name));
    for (name, _, _) in &structs {
        if !SECTIONS.iter().any(|(s, _)| s == name) && !flattened_somewhere(name) {
            missing.push(format!(
                "struct {name} (src/config/file.rs) has no docs section: add it to SECTIONS in tests/docs.rs and to docs/config.md"
            ));
        }
    }
    for (s, _) in SECTIONS {
        if !structs.iter().any(|(name, _, _)| name == s) {
            missing.push(format!(
                "SECTIONS in tests/docs.rs names struct {s}, which src/config/file.rs no longer has"
            ));
        }
    }
    // A flattened struct's keys are documented in its parent's section(s).
    let sections_of = |name: &str| -> Vec<&str> {
        let mut name = name.to_string();
        for _ in 0..structs.len() {
            if let Some((_, s)) = SECTIONS.iter().find(|(s, _)| *s == name)
                && !s.is_empty()
            {
                return s.to_vec();
            }
            match structs.iter().find(|(_, _, f)| f.contains(&name)) {
                Some((parent, _, _)) => name = parent.clone(),
                None => break,
            }
        }
        Vec::new()
    };

    for (name, keys, flattened) in &structs {
        if name == "Spec" {
            // Top level: every field is a table with a `##` heading.
            for key in keys {
                let forms = [
                    format!("`[{key}]`"),
                    format!("`[[{key}]]`"),
                    format!("`[{key}.NAME]`"),
                ];
                if !heads
                    .iter()
                    .any(|(_, level, h)| *level == 2 && forms.iter().any(|f| h.contains(f)))
                {
                    missing.push(format!(
                        "table `{key}`: no `## \\`[{key}]\\`` (or `[[{key}]]`, `[{key}.NAME]`) heading"
                    ));
                }
            }
            assert!(flattened.is_empty(), "Spec flattens: not understood here");
            continue;
        }
        // (No section: reported above.)
        for section in sections_of(name) {
            let needle = format!("`{section}`");
            let found: Vec<_> = heads
                .iter()
                .filter(|(_, _, h)| h.contains(&needle))
                .collect();
            let &[&(start, level, _)] = found.as_slice() else {
                missing.push(format!(
                    "{name}: {} headings of docs/config.md contain {needle} (one is needed)",
                    found.len()
                ));
                continue;
            };
            let end = heads
                .iter()
                .find(|(i, l, _)| *i > start && *l <= level)
                .map_or(lines.len(), |(i, _, _)| *i);
            for key in keys {
                // A table row whose first cell holds `key`.
                let cell = format!("`{key}`");
                let documented = lines[start..end].iter().any(|l| {
                    l.trim_start()
                        .strip_prefix('|')
                        .and_then(|r| r.split('|').next())
                        .is_some_and(|first| first.contains(&cell))
                });
                if !documented {
                    missing.push(format!(
                        "key `{key}` ({name}) has no row in section {needle} of docs/config.md"
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/config.md is missing {} config key(s) or section(s):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn spec_structs_reads_renames_and_flattens() {
    let text = "pub struct ASpec {\n    /// Doc.\n    pub name: String,\n    #[serde(rename = \"type\")]\n    pub rtype: String,\n\n    #[serde(default = \"rename_me\")]\n    pub(crate) publish: Vec<u8>,\n    #[serde(flatten)]\n    pub inner: Option<BSpec>,\n    pub r#for: bool,\n}\n\nstruct Other {\n    pub x: u8,\n}\n";
    assert_eq!(
        spec_structs(text),
        [(
            "ASpec".to_string(),
            vec![
                "name".to_string(),
                "type".into(),
                "publish".into(),
                "for".into()
            ],
            vec!["BSpec".to_string()],
        )]
    );
}
