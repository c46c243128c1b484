//! The file watcher: one trigger of the reload path. It watches the
//! parent directories of the config file, the zone files (and their
//! includes), the `[geo]` files and the admin-state file, so an editor's
//! save-by-rename is seen; after a burst of events it waits until things
//! are quiet for the debounce window, then sends one command per kind of
//! change. The set of files follows the config: the controller publishes
//! a new [`WatchSet`] after every reload.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::Watcher;
use tokio::sync::{mpsc, watch};

use super::{ADMIN_STATE, Command};

/// Quiet time after the last event before a command is sent.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The files whose changes matter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchSet {
    /// Config, zone and included files: a change reloads.
    pub reload: Vec<PathBuf>,
    /// The `[geo]` database and networks file: a change re-reads them.
    pub geo: Vec<PathBuf>,
}

/// (canonical directory, file name): how event paths and configured paths
/// are compared (configured paths may be relative or symlinked).
type Key = (PathBuf, OsString);

/// What one burst of events changed.
#[derive(Default)]
struct Changed {
    reload: bool,
    admin: bool,
    geo: bool,
}

/// Watches `files` (and `state_dir/admin-state`); sends commands to `tx`.
/// The watches are in place when this returns (so an edit made right
/// after start-up is seen); the returned future handles the events and
/// runs until `tx` closes.
pub fn start(
    mut files: watch::Receiver<WatchSet>,
    state_dir: Option<PathBuf>,
    tx: mpsc::UnboundedSender<Command>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (ev_tx, mut events) = mpsc::unbounded_channel::<notify::Event>();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let _ = ev_tx.send(ev);
        }
    });
    let admin = state_dir.as_ref().map(|d| {
        let _ = std::fs::create_dir_all(d);
        key(&d.join(ADMIN_STATE))
    });
    let mut set = Watched {
        dirs: BTreeSet::new(),
        reload: BTreeSet::new(),
        geo: BTreeSet::new(),
        admin,
    };
    let watcher = match watcher {
        Ok(mut w) => {
            let list = files.borrow_and_update().clone();
            set.update(&mut w, &list);
            Some(w)
        }
        Err(e) => {
            tracing::error!(
                "file watcher unavailable ({e}): reload with SIGHUP or POST /v1/reload"
            );
            None
        }
    };
    async move {
        let Some(mut watcher) = watcher else { return };
        run(&mut watcher, &mut set, &mut files, &mut events, tx).await
    }
}

async fn run(
    watcher: &mut notify::RecommendedWatcher,
    set: &mut Watched,
    files: &mut watch::Receiver<WatchSet>,
    events: &mut mpsc::UnboundedReceiver<notify::Event>,
    tx: mpsc::UnboundedSender<Command>,
) {
    loop {
        tokio::select! {
            changed = files.changed() => {
                if changed.is_err() {
                    return;
                }
                let list = files.borrow_and_update().clone();
                set.update(watcher, &list);
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                let mut changed = Changed::default();
                if !set.classify(&ev, &mut changed) {
                    continue;
                }
                // Debounce: wait until no relevant event for DEBOUNCE.
                loop {
                    match tokio::time::timeout(DEBOUNCE, events.recv()).await {
                        Ok(Some(ev)) => {
                            set.classify(&ev, &mut changed);
                        }
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let mut commands = Vec::new();
                if changed.admin {
                    commands.push(Command::AdminStateChanged);
                }
                if changed.geo {
                    commands.push(Command::GeoChanged);
                }
                if changed.reload {
                    tracing::info!("config or zone file changed: reloading");
                    commands.push(Command::Reload { reply: None });
                }
                for c in commands {
                    if tx.send(c).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// What is watched: directories, and the files in them that matter.
struct Watched {
    dirs: BTreeSet<PathBuf>,
    reload: BTreeSet<Key>,
    geo: BTreeSet<Key>,
    admin: Option<Key>,
}

impl Watched {
    fn update(&mut self, watcher: &mut notify::RecommendedWatcher, list: &WatchSet) {
        self.reload = list.reload.iter().map(|p| key(p)).collect();
        self.geo = list.geo.iter().map(|p| key(p)).collect();
        let dirs: BTreeSet<PathBuf> = self
            .reload
            .iter()
            .chain(&self.geo)
            .chain(&self.admin)
            .map(|(d, _)| d.clone())
            .collect();
        for d in self.dirs.difference(&dirs) {
            let _ = watcher.unwatch(d);
        }
        for d in dirs.difference(&self.dirs) {
            if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", d.display());
            }
        }
        self.dirs = dirs;
    }

    /// Adds what `ev` changed to `c`; false if it changed nothing we watch.
    fn classify(&self, ev: &notify::Event, c: &mut Changed) -> bool {
        // Reads (ours included) are not changes.
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return false;
        }
        let mut any = false;
        for p in &ev.paths {
            let k = key(p);
            let (r, g, a) = (
                self.reload.contains(&k),
                self.geo.contains(&k),
                self.admin.as_ref() == Some(&k),
            );
            c.reload |= r;
            c.geo |= g;
            c.admin |= a;
            any |= r || g || a;
        }
        any
    }
}

/// The comparison key of a path.
fn key(p: &Path) -> Key {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    (
        dir,
        p.file_name().map(|n| n.to_os_string()).unwrap_or_default(),
    )
}
