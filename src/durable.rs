//! Durable replacement of a small state file: a crash or power loss leaves
//! either the old file or the new one, never a torn or empty one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `dir/name`: a temporary file in `dir` is written and
/// fsynced, renamed over the target, and the directory fsynced so the
/// rename itself survives a crash. On error the old file is untouched.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    // Unique per process and write: two writers (an overlapping restart)
    // never share a temporary file.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, dir.join(name)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The file is in place: a failed directory sync only weakens the
    // guarantee against a power loss, so it is logged, not returned (the
    // caller would report a write that happened as failed).
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!("{}: cannot sync the directory: {e}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state");
        replace(&sub, "f", b"one").unwrap();
        replace(&sub, "f", b"two").unwrap();
        assert_eq!(std::fs::read(sub.join("f")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&sub).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
