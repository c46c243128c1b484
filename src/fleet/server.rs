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

/// Open fleet connections from one address at most.
const PER_SOURCE: usize = 8;

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
        PER_SOURCE,
        tls,
        "fleet listener",
        shutdown,
    )
    .await
}

/// The query, read leniently (the token is checked first).
#[derive(Deserialize)]
struct After {
    after: Option<String>,
    /// How long the asking peer waits at most (ms): its own heartbeat.
    wait_ms: Option<String>,
}

async fn votes(
    AxState(s): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: Result<Query<After>, axum::extract::rejection::QueryRejection>,
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
        // Closed after the answer: a refused client holds no slot.
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONNECTION, "close")],
            "fleet token required\n",
        )
            .into_response();
    }
    let (after, wait_ms) = q.map_or((None, None), |Query(q)| {
        (
            q.after.and_then(|a| a.parse::<u64>().ok()),
            q.wait_ms.and_then(|w| w.parse::<u64>().ok()),
        )
    });
    let mut feed = s.feed.clone();
    if feed.has_changed().is_err() {
        // The controller is gone: votes from here are no longer current.
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let current = feed.borrow_and_update().clone();
    let published = if after == Some(current.seq) {
        // Held at most this instance's heartbeat, and less than the asking
        // peer waits (its peer_timeout may be shorter than ours).
        let mut wait = *s.heartbeat.borrow();
        if let Some(w) = wait_ms {
            wait = wait.min(Duration::from_millis(w / 2));
        }
        match tokio::time::timeout(wait, feed.changed()).await {
            Ok(Ok(())) => feed.borrow().clone(),
            Ok(Err(_)) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
            }
            Err(_) => current,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, token: &str) -> std::io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET /v1/fleet/votes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n").as_bytes()).await?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut out))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        Ok(out)
    }

    /// A listener on a free loopback port serving `seq`, with heartbeat
    /// `hb`; the feed's sender (drop it to play a controller gone).
    async fn listener(hb: Duration, seq: u64) -> (SocketAddr, watch::Sender<Arc<Published>>) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_t, token) = watch::channel("fleet-token-0123456789".to_string());
        let (_h, hb) = watch::channel(hb);
        let (f, feed) = watch::channel(Arc::new(Published {
            seq,
            body: "{}".into(),
        }));
        tokio::spawn(serve(
            listener,
            None,
            token,
            hb,
            feed,
            std::future::pending(),
        ));
        (addr, f)
    }

    /// Connections without the token, as many as the listener takes, are
    /// answered 401 and closed: a peer with the token still gets in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_connections_do_not_lock_peers_out() {
        let (addr, _f) = listener(Duration::from_millis(500), 1).await;
        assert!(
            get(addr, "fleet-token-0123456789")
                .await
                .unwrap()
                .starts_with("HTTP/1.1 200")
        );
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /v1/fleet/votes HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await.unwrap();
            held.push(s);
        }
        let r = get(addr, "fleet-token-0123456789").await;
        assert!(
            r.as_ref().is_ok_and(|r| r.starts_with("HTTP/1.1 200")),
            "a peer with the token is refused: {r:?}"
        );
    }

    /// Once the controller is gone (its feed sender dropped), a long-poll
    /// is not answered with the frozen votes at once (followers would
    /// spin and count them fresh): 503.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gone_controller_answers_503_not_frozen_votes() {
        let (addr, f) = listener(Duration::from_secs(2), 7).await;
        drop(f);
        let t = std::time::Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /v1/fleet/votes?after=7 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer fleet-token-0123456789\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(
            !out.starts_with("HTTP/1.1 200") || t.elapsed() >= Duration::from_secs(1),
            "answered 200 in {:?} with the frozen feed",
            t.elapsed()
        );
    }
}
