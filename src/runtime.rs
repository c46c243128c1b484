//! Wiring for `veer serve`: load the config and zones, start the
//! controller (which runs the probes), the file watcher, SIGHUP, webhooks
//! and the admin API; bind the DNS listeners; run until shutdown.

use std::future::Future;
use std::sync::Arc;

use hickory_server::Server;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{self, Api};
use crate::control::build::Base;
use crate::control::{Command, Controller, watch};
use crate::diag::Diagnostics;
use crate::dns::{self, Handler};
use crate::health::probe::Clients;
use crate::health::scheduler::thread::ProbeThread;
use crate::metrics::ServerStats;
use crate::privilege;
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
    /// `[server] user` could not be taken on.
    #[error("{0}")]
    Privilege(#[from] crate::privilege::DropError),
}

/// Takes an exclusive lock on `dir/.lock` (flock), or says which
/// directory another process holds.
fn lock_state_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(".lock");
    // Not through a symlink planted in the directory; read-only, so a lock
    // file left by root (before `[server] user`, or a run as root) still
    // opens; non-blocking, so a FIFO there cannot hang the start.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            e.kind(),
            format!(
                "state_dir {} is in use by another veer process ({e})",
                dir.display()
            ),
        ));
    }
    Ok(f)
}

/// Runs the server for `config` until `shutdown` completes.
pub async fn serve(base: Base, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let config = base.config.clone();
    tracing::info!(
        zones = base.zones.len(),
        records = base.records(),
        checks = config.checks.len(),
        routes = config.routes.len(),
        "config loaded"
    );
    for w in crate::config::transfer_warnings(&config)
        .into_iter()
        .chain(crate::config::fleet_warnings(&config))
    {
        tracing::warn!("{w}");
    }
    // Running as `[server] user`: its state directory is handed over
    // before anything writes there.
    let target = match &config.server.user {
        Some(user) => {
            let t = privilege::resolve(user, config.server.group.as_deref())?;
            if let Some(dir) = &config.server.state_dir {
                privilege::hand_over(dir, t)?;
            }
            Some(t)
        }
        None => None,
    };
    // One process per state directory: two would overwrite each other's
    // checkpoint and zone copies. Held until serve returns.
    let _state_lock = match &config.server.state_dir {
        Some(dir) => Some(lock_state_dir(dir)?),
        None => None,
    };
    let controller = Controller::new(base);
    let store = Arc::new(Store::new(controller.snapshot()));
    let stats = Arc::new(ServerStats::default());
    let mut tasks = JoinSet::new();
    let (command_tx, command_rx) = mpsc::unbounded_channel();

    // Every socket is bound before privileges are dropped.
    let api_listener = match &config.api {
        Some(a) => Some(api::bind(a.listen).await?),
        None => None,
    };
    let fleet = controller.fleet_listener();
    let fleet_socket = match &fleet {
        Some(f) => Some(crate::fleet::server::bind(f.listen).await?),
        None => None,
    };
    let fleet_tls = match fleet.as_ref().and_then(|f| f.tls.as_ref()) {
        Some((cert, key)) => Some(
            crate::fleet::server::tls(cert, key)
                .map_err(|e| std::io::Error::other(format!("[fleet] TLS: {e}")))?,
        ),
        None => None,
    };
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let udp_sockets = config.server.udp_sockets.unwrap_or(workers.max(1) * 2);
    let listeners = dns::bind(&config.server.listen, udp_sockets)?;
    let nofile = raise_nofile();
    if let Some(t) = target {
        privilege::become_user(t)?;
        if let Some(dir) = &config.server.state_dir {
            privilege::check_writable(dir, t)?;
        }
        // A reload reads these as the new user: say now if it cannot.
        let mut files = vec![config.path.clone()];
        files.extend(controller.watched_files().borrow().reload.iter().cloned());
        // Signing again reads the keys as that user too.
        files.extend(controller.key_files());
        for f in files {
            if let Err(e) = std::fs::File::open(&f) {
                tracing::warn!(
                    "{}: unreadable as {} ({e}); reloads will fail",
                    f.display(),
                    config.server.user.as_deref().unwrap_or_default()
                );
            }
        }
        tracing::info!(
            "running as uid {} gid {} ({})",
            t.uid,
            t.gid,
            config.server.user.as_deref().unwrap_or_default()
        );
    }

    tasks.spawn(watch::start(
        controller.watched_files(),
        config.server.state_dir.clone(),
        command_tx.clone(),
    ));
    tasks.spawn(sighup(command_tx.clone()));
    // Probes run on a thread of their own (see `scheduler::thread`); it
    // ends when serve returns.
    let probe_thread = ProbeThread::start()
        .map_err(|e| std::io::Error::other(format!("cannot start the probe thread: {e}")))?;
    let clients = Clients::new(config.health.source)
        .map_err(|e| std::io::Error::other(format!("cannot build the HTTP client: {e}")))?
        .on(probe_thread.handle().clone());
    tasks.spawn(controller.run(store.clone(), clients, command_rx));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let (Some(a), Some(listener)) = (&config.api, api_listener) {
        tracing::info!("api listening on {}", listener.local_addr()?);
        if a.token.is_none() {
            tracing::info!("api: no token configured, so overrides and reload over HTTP are off");
        }
        let api = Api {
            store: store.clone(),
            stats: stats.clone(),
            commands: command_tx.clone(),
        };
        let mut stop = stop_rx.clone();
        tasks.spawn(api::serve(listener, api, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }

    if let (Some(f), Some(listener)) = (fleet, fleet_socket) {
        tracing::info!(
            "fleet: listening on {} ({})",
            listener.local_addr()?,
            if fleet_tls.is_some() { "https" } else { "http" }
        );
        let mut stop = stop_rx.clone();
        tasks.spawn(crate::fleet::server::serve(
            listener,
            fleet_tls,
            f.token,
            f.heartbeat,
            f.feed,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }

    // The query log, started as `[server] user` (the file is created,
    // the socket connected, as that user).
    let (tap, dnstap_writer) = match &config.dnstap {
        Some(d) => {
            let (tap, writer) = crate::dnstap::start(d, stats.dnstap.clone())?;
            if !config.server.udp_batched {
                tracing::warn!(
                    "[dnstap]: UDP queries are not logged with [server] udp_path = \"hickory\" (TCP ones are)"
                );
            }
            match &d.output {
                crate::config::DnstapOutput::File(p) => {
                    tracing::info!("dnstap: logging to {}", p.display())
                }
                crate::config::DnstapOutput::Socket(p) => {
                    tracing::info!("dnstap: logging to the socket {}", p.display())
                }
            }
            (Some(tap), Some(writer))
        }
        None => (None, None),
    };
    let handler = Handler::new(store.clone(), stats).with_dnstap(tap);
    let mut server = Server::new(handler.clone());
    let mut udp_threads = None;
    if config.server.udp_batched {
        udp_threads = Some(dns::udp::spawn(listeners.udp, Arc::new(handler.clone()))?);
    } else {
        for s in listeners.udp {
            s.set_nonblocking(true)?;
            server.register_socket(tokio::net::UdpSocket::from_std(s)?);
        }
    }
    // TCP: veer's own accept loop, with connection caps and timeouts. DNS
    // clients never get the last descriptors: a reserve stays for probes,
    // the checkpoint and the admin API.
    // What DNS clients may use: the limit less what is open now, what the
    // admin API may take, and the reserve.
    let open_now = std::fs::read_dir("/proc/self/fd").map_or(32, |d| d.count());
    let api_max = if config.api.is_some() {
        api::MAX_CONNECTIONS
    } else {
        0
    } + if config.fleet.is_some() {
        crate::fleet::server::MAX_CONNECTIONS
    } else {
        0
    };
    let fd_cap = nofile
        .saturating_sub(open_now + api_max + fd_reserve(nofile))
        .max(1);
    let max_connections = config.server.tcp_max_connections.min(fd_cap);
    if max_connections < config.server.tcp_max_connections {
        tracing::warn!(
            "tcp_max_connections lowered to {max_connections}: the descriptor limit is {nofile}; {open_now} are open, {api_max} are for the admin API and {} stay reserved for probes and the checkpoint",
            fd_reserve(nofile)
        );
    }
    let limits = dns::tcp::Limits {
        max_connections,
        max_per_network: config.server.tcp_max_per_network,
        idle_timeout: config.server.tcp_idle_timeout,
        read_timeout: config.server.tcp_read_timeout,
    };
    let conns = Arc::new(dns::tcp::Connections::default());
    let tcp_handler = Arc::new(handler.clone());
    for l in listeners.tcp {
        tasks.spawn(dns::tcp::serve(
            l,
            tcp_handler.clone(),
            conns.clone(),
            limits,
        ));
    }
    for addr in &listeners.addrs {
        // Tests and scripts find the bound port from this line.
        tracing::info!("dns listening on {addr} (udp, tcp)");
    }
    // Bound, zones loaded, the first snapshot published: ready.
    crate::sdnotify::ready(&format!("serving generation {}", store.generation()));
    // The load's intermediate copies are free: give their pages back.
    crate::memory::trim_soon();
    if crate::sdnotify::enabled()
        && let Some(period) = crate::sdnotify::watchdog_interval()
    {
        tasks.spawn(crate::sdnotify::watchdog(period, command_tx.clone()));
    }

    shutdown.await;
    tracing::info!("shutting down");
    crate::sdnotify::stopping();
    let started = std::time::Instant::now();
    let _ = stop_tx.send(true);
    drop(command_tx);
    // The accept loops, the controller, the watcher, the API: all stop.
    tasks.abort_all();
    // Open TCP connections: idle ones close now, one answering a query
    // closes after writing it (a zone transfer gets TCP_DRAIN).
    conns.close();
    // UDP: each thread answers the batch in hand and stops; datagrams
    // still queued in the socket are not read (their clients retry).
    let udp = async move {
        if let Some(t) = udp_threads {
            let _ = tokio::task::spawn_blocking(move || t.stop()).await;
        }
    };
    let hickory = async {
        if config.server.udp_batched {
            return Ok(()); // it serves nothing
        }
        server
            .shutdown_gracefully()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    let (drained, (), served) = tokio::join!(conns.drained(TCP_DRAIN), udp, hickory);
    if !drained {
        tracing::warn!(
            "{} TCP connections still busy after {}; closing them",
            conns.open(),
            humantime::format_duration(TCP_DRAIN)
        );
    }
    served?;
    tracing::debug!("stopped in {:?}", started.elapsed());
    // The query log ends its stream (STOP) once no query is answered.
    if let Some(w) = dnstap_writer {
        tokio::task::spawn_blocking(move || w.shutdown(std::time::Duration::from_secs(5)))
            .await
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// How long shutdown waits for TCP connections to finish the answer (or
/// zone transfer) in flight.
const TCP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit in
/// force.
fn raise_nofile() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// Descriptors kept out of the DNS clients' reach: for the listeners,
/// probes, the checkpoint, webhooks and the admin API.
fn fd_reserve(nofile: usize) -> usize {
    (nofile / 4).clamp(64, 1024)
}

/// SIGHUP reloads, like the watcher and `POST /v1/reload`.
async fn sighup(tx: mpsc::UnboundedSender<Command>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        if tx.send(Command::Reload { reply: None }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_lock_is_exclusive_and_opens_no_fifo_nor_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_state_dir(dir.path()).unwrap();
        let e = lock_state_dir(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("in use by another veer process"),
            "{e}"
        );
        drop(held);
        // A lock file nobody may write (left by root): it still locks.
        use std::os::unix::fs::PermissionsExt;
        let lock = dir.path().join(".lock");
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o444)).unwrap();
        drop(lock_state_dir(dir.path()).unwrap());
        // A FIFO planted there: refused at once, not a start hung on open.
        std::fs::remove_file(&lock).unwrap();
        let c = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = lock_state_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // A symlink: not followed.
        std::fs::remove_file(&lock).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &lock).unwrap();
        assert!(lock_state_dir(dir.path()).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }
}
