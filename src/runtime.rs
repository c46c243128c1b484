//! Wiring for `veer serve`: load the config and zones, start the
//! controller and the probes, bind the listeners, run hickory's server
//! until shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use hickory_server::Server;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::control::build::Base;
use crate::control::{ADMIN_STATE, Command, Controller};
use crate::diag::Diagnostics;
use crate::dns::{self, Handler};
use crate::health::probe::Clients;
use crate::health::scheduler;
use crate::store::Store;

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config or a zone is invalid.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    /// A socket could not be bound or the server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the server for `config` until `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let base = Arc::new(Base::load(config)?);
    let config = &base.config;
    tracing::info!(
        zones = base.zones.len(),
        records = base.records(),
        checks = config.checks.len(),
        routes = config.routes.len(),
        "config loaded"
    );
    let (controller, plans) = Controller::new(base.clone());
    let store = Arc::new(Store::new(controller.snapshot()));
    let mut tasks = JoinSet::new();

    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let clients = Clients::new()
        .map_err(|e| std::io::Error::other(format!("cannot build the HTTP client: {e}")))?;
    tracing::info!(probes = plans.len(), "starting probes");
    scheduler::spawn(plans, clients, report_tx, &mut tasks);
    let _geo_watch = watch_geo(config, command_tx.clone());
    let _admin_watch = config
        .server
        .state_dir
        .as_deref()
        .and_then(|dir| watch_admin_state(dir, command_tx));
    tasks.spawn(controller.run(store.clone(), report_rx, command_rx));

    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let udp_sockets = config.server.udp_sockets.unwrap_or(workers.max(1) * 2);
    let listeners = dns::bind(&config.server.listen, udp_sockets)?;
    let mut server = Server::new(Handler::new(store.clone()));
    for s in listeners.udp {
        server.register_socket(s);
    }
    for l in listeners.tcp {
        server.register_listener(l, config.server.tcp_idle_timeout, 64);
    }
    for addr in &listeners.addrs {
        // Tests and scripts find the bound port from this line.
        tracing::info!("dns listening on {addr} (udp, tcp)");
    }

    shutdown.await;
    tracing::info!("shutting down");
    tasks.abort_all();
    server
        .shutdown_gracefully()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}

/// Watches the `[geo]` files (their directories, so a replace-by-rename
/// is seen) and tells the controller when one changes.
fn watch_geo(
    config: &Config,
    tx: mpsc::UnboundedSender<Command>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let files: Vec<std::path::PathBuf> = [&config.geo.database, &config.geo.networks]
        .into_iter()
        .flatten()
        .map(|(p, _)| p.clone())
        .collect();
    if files.is_empty() {
        return None;
    }
    let names: Vec<std::ffi::OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_os_string()))
        .collect();
    let mut watcher = match notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
            && ev
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
        {
            let _ = tx.send(Command::GeoChanged);
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the [geo] files: {e}; changes need a restart");
            return None;
        }
    };
    for f in &files {
        let dir = f
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(
                "cannot watch {}: {e}; changes of {} need a restart",
                dir.display(),
                f.display()
            );
        }
    }
    Some(watcher)
}

/// Watches `state_dir` for changes of the admin-state file (watching the
/// directory, so an editor's save-by-rename is seen).
fn watch_admin_state(
    dir: &Path,
    tx: mpsc::UnboundedSender<Command>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!("cannot create state_dir {}: {e}", dir.display());
        return None;
    }
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && ev
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == ADMIN_STATE))
        {
            let _ = tx.send(Command::AdminStateChanged);
        }
    });
    match watcher.and_then(|mut w| {
        w.watch(dir, notify::RecursiveMode::NonRecursive)
            .map(|()| w)
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; admin-state changes need a restart",
                dir.display()
            );
            None
        }
    }
}
