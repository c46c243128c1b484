//! Unit-test scaffolding: a config and one zone written to a temporary
//! directory, loaded and decided offline by the server's own code.

use std::path::Path;

use crate::control::Controller;
use crate::control::build::Base;
use crate::store::Snapshot;

/// The zone every scaffold serves: `t.` with a 900 s negative TTL.
pub const ZONE: &str = "$ORIGIN t.\n$TTL 3600\n\
@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 900\n\
  IN NS ns\n\
ns IN A 192.0.2.53\n\
www IN A 192.0.2.80\n";

/// `config` (its `[[zone]]` for `t.` is added) with `checks` taken as down
/// and every other check up, as `veer explain --down` sees it.
pub fn controller(config: &str, down: &[&str]) -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("veer.toml");
    std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n{config}"
    );
    std::fs::write(&path, text).unwrap();
    let c = load(&path, down);
    (dir, c)
}

fn load(path: &Path, down: &[&str]) -> Controller {
    let config = crate::config::load(path).unwrap_or_else(|d| panic!("{d}"));
    let base = Base::load(config).unwrap_or_else(|d| panic!("{d}"));
    let down: Vec<String> = down.iter().map(|s| s.to_string()).collect();
    Controller::offline(base, Some(&down)).expect("offline controller")
}

/// The snapshot a server with `config` publishes with `down` down.
pub fn snapshot(config: &str, down: &[&str]) -> Snapshot {
    controller(config, down).1.snapshot()
}
