//! The fleet listener: `GET /v1/fleet/votes?after=SEQ` answers this
//! instance's [`Feed`](super::Feed) at once when SEQ is not the current
//! one, else on the next change or after a heartbeat, whichever is first.
//! Every request needs the fleet token.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::watch;

/// What the listener serves: the feed's sequence number and its JSON.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The feed's `seq`.
    pub seq: u64,
    /// The feed, encoded once per change.
    pub body: axum::body::Bytes,
}

/// Open fleet connections at most (a peer holds one long-poll).
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Clone)]
struct Shared {
    token: Arc<watch::Receiver<String>>,
    feed: watch::Receiver<Arc<Published>>,
    heartbeat: watch::Receiver<Duration>,
    refused_log: Arc<Mutex<Option<Instant>>>,
}

/// Binds the fleet listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for the fleet: {e}"),
        )
    })
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
pub fn tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves the fleet endpoint until `shutdown`. `token` and `heartbeat`
/// follow reloads.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    token: watch::Receiver<String>,
    heartbeat: watch::Receiver<Duration>,
    feed: watch::Receiver<Arc<Published>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let shared = Shared {
        token: Arc::new(token),
        feed,
        heartbeat,
        refused_log: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/fleet/votes", get(votes))
        .with_state(shared)
        .layer(axum::extract::DefaultBodyLimit::max(1024));
    crate::api::serve_app(
        listener,
        app,
        MAX_CONNECTIONS,
        tls,
        "fleet listener",
        shutdown,
    )
    .await
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

async fn votes(
    AxState(s): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let ok = crate::api::constant_time_eq(given.as_bytes(), s.token.borrow().as_bytes());
    if !ok {
        // Said once in a while: a stream of bad requests must not flood the log.
        let mut last = s.refused_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(
                "fleet: refused a request from {peer}: {} token",
                if given.is_empty() { "no" } else { "wrong" }
            );
            *last = Some(Instant::now());
        }
        return (StatusCode::UNAUTHORIZED, "fleet token required\n").into_response();
    }
    let mut feed = s.feed.clone();
    let current = feed.borrow_and_update().clone();
    let published = if q.after == Some(current.seq) {
        let wait = *s.heartbeat.borrow();
        match tokio::time::timeout(wait, feed.changed()).await {
            Ok(Ok(())) => feed.borrow().clone(),
            _ => current,
        }
    } else {
        current
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        published.body.clone(),
    )
        .into_response()
}
