//! The file watcher: one trigger of the reload path. It watches the
//! parent directories of the config file, the zone files (and their
//! includes) and the admin-state file, so an editor's save-by-rename is
//! seen; after a burst of events it waits until things are quiet for the
//! debounce window, then sends one command. The set of files follows the
//! config (the controller publishes it after every reload).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::Watcher;
use tokio::sync::{mpsc, watch};

use super::{ADMIN_STATE, Command};

/// Quiet time after the last event before a reload.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Watches `files` (and `state_dir/admin-state`); sends commands to `tx`.
/// The watches are in place when this returns (so an edit made right
/// after start-up is seen); the returned future handles the events and
/// runs until `tx` closes.
pub fn start(
    mut files: watch::Receiver<Vec<PathBuf>>,
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
        interesting: BTreeSet::new(),
    };
    let watcher = match watcher {
        Ok(mut w) => {
            let list = files.borrow_and_update().clone();
            set.update(&mut w, &list, admin.as_ref());
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
        run(&mut watcher, &mut set, &mut files, &mut events, admin, tx).await
    }
}

async fn run(
    watcher: &mut notify::RecommendedWatcher,
    set: &mut Watched,
    files: &mut watch::Receiver<Vec<PathBuf>>,
    events: &mut mpsc::UnboundedReceiver<notify::Event>,
    admin: Option<(PathBuf, std::ffi::OsString)>,
    tx: mpsc::UnboundedSender<Command>,
) {
    loop {
        tokio::select! {
            changed = files.changed() => {
                if changed.is_err() {
                    return;
                }
                let list = files.borrow_and_update().clone();
                set.update(watcher, &list, admin.as_ref());
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                if matches!(ev.kind, notify::EventKind::Access(_)) {
                    continue;
                }
                let (mut reload, mut admin_changed) = classify(&ev, &set.interesting, admin.as_ref());
                if !reload && !admin_changed {
                    continue;
                }
                // Debounce: wait until no relevant event for DEBOUNCE.
                loop {
                    match tokio::time::timeout(DEBOUNCE, events.recv()).await {
                        Ok(Some(ev)) => {
                            let (r, a) = classify(&ev, &set.interesting, admin.as_ref());
                            reload |= r;
                            admin_changed |= a;
                        }
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if admin_changed && tx.send(Command::AdminStateChanged).is_err() {
                    return;
                }
                if reload {
                    tracing::info!("config or zone file changed: reloading");
                    if tx.send(Command::Reload { reply: None }).is_err() {
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
    interesting: BTreeSet<(PathBuf, std::ffi::OsString)>,
}

impl Watched {
    fn update(
        &mut self,
        watcher: &mut notify::RecommendedWatcher,
        list: &[PathBuf],
        admin: Option<&(PathBuf, std::ffi::OsString)>,
    ) {
        self.interesting = list.iter().map(|p| key(p)).collect();
        let mut dirs: BTreeSet<PathBuf> = self.interesting.iter().map(|(d, _)| d.clone()).collect();
        if let Some((d, _)) = admin {
            dirs.insert(d.clone());
        }
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
}

/// (reload, admin-state) relevance of one event.
fn classify(
    ev: &notify::Event,
    interesting: &BTreeSet<(PathBuf, std::ffi::OsString)>,
    admin: Option<&(PathBuf, std::ffi::OsString)>,
) -> (bool, bool) {
    let mut r = (false, false);
    for p in &ev.paths {
        let k = key(p);
        r.0 |= interesting.contains(&k);
        r.1 |= admin == Some(&k);
    }
    r
}

/// (canonical directory, file name): how event paths and configured
/// paths are compared (configured paths may be relative or symlinked).
fn key(p: &Path) -> (PathBuf, std::ffi::OsString) {
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
