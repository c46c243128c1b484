//! Wiring: load the config and zones, publish the first snapshot, bind the
//! listeners, run hickory's server until shutdown.

use std::future::Future;
use std::sync::Arc;

use hickory_server::Server;

use crate::config::Config;
use crate::diag::Diagnostics;
use crate::dns::{self, Handler};
use crate::store::{Snapshot, Store};
use crate::zone::Zone;

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

/// Loads every zone of `config`, collecting all errors.
pub fn load_zones(config: &Config) -> Result<Vec<Zone>, Diagnostics> {
    let mut zones = Vec::new();
    let mut errors = Vec::new();
    for z in &config.zones {
        match Zone::load(&z.origin, &z.file) {
            Ok(zone) => zones.push(zone),
            Err(d) => errors.extend(d.0),
        }
    }
    if errors.is_empty() {
        Ok(zones)
    } else {
        Err(Diagnostics(errors))
    }
}

/// Builds the snapshot for `config` and its zones.
pub fn build_snapshot(config: &Config, generation: u64) -> Result<Snapshot, Diagnostics> {
    let zones = load_zones(config)?;
    Ok(Snapshot::new(
        generation,
        zones.into_iter().map(Arc::new),
        config.server.max_udp_payload,
    ))
}

/// Runs the server for `config` until `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let snapshot = build_snapshot(&config, 1)?;
    let records: usize = snapshot.zones().map(|z| z.records).sum();
    tracing::info!(zones = snapshot.zones().count(), records, "zones loaded");
    let store = Arc::new(Store::new(snapshot));

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
    server
        .shutdown_gracefully()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
