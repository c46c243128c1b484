//! Real backends for health-check tests, on 127.0.0.1 ephemeral ports.
//!
//! - [`HttpBackend`]: an HTTP/1.1 server (or HTTPS with a fresh self-signed
//!   certificate) whose status code and body can be changed at runtime,
//!   that can hang instead of answering, and that answers every request
//!   with `Connection: close` (so a probe never reuses a pooled connection
//!   and sees a kill at once).
//! - [`TcpBackend`]: a listener that accepts and closes connections.
//!
//! An [`HttpBackend`] also knows where each request came from: it counts
//! requests per source address ([`HttpBackend::hits_from`]) and can fail
//! the requests of chosen sources only ([`HttpBackend::set_failing_sources`]:
//! 503 to them, the configured status to everyone else), as a broken path
//! from one prober would. It listens on 127.0.0.1, which on Linux accepts
//! connections from any local 127.x source (a prober bound to 127.0.0.3
//! reaches it and is seen as 127.0.0.3).
//!
//! Both can be killed ([`HttpBackend::kill`]: the listener is closed and
//! in-flight connections are shut down, so new connects are refused) and
//! restarted on the same port. Everything runs on plain std threads; a
//! backend is killed when dropped.
//!
//! ```ignore
//! #[path = "support/backends.rs"]
//! mod backends;
//! let mut web = backends::HttpBackend::start();
//! let url = web.url("/health");
//! web.set_status(500);
//! web.kill();
//! web.restart();
//! ```

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`Server::start`] keeps retrying to re-bind a port that is
/// momentarily busy.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head a backend reads.
const MAX_HEAD: usize = 16 * 1024;

/// Serves one accepted connection; the flag turns true when the server is
/// stopped.
type Serve = Arc<dyn Fn(TcpStream, &AtomicBool) + Send + Sync>;

/// A TCP server on a fixed loopback port that can be stopped and started
/// again. Each accepted connection is served on its own thread.
pub struct Server {
    addr: SocketAddr,
    serve: Serve,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
}

impl Server {
    /// Binds 127.0.0.1 on an ephemeral port and starts serving.
    pub fn start_new(serve: Serve) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let mut s = Server {
            addr,
            serve,
            running: None,
        };
        s.run(listener);
        s
    }

    /// The bound address (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while the listener is open.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Re-binds the same port and serves again (no-op while running).
    /// Panics if the port cannot be bound within [`REBIND_TIMEOUT`].
    pub fn start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("cannot re-bind {}: {e}", self.addr),
            }
        };
        self.run(listener);
    }

    /// "Kills" the server: closes the listener (new connects are refused)
    /// and shuts down every in-flight connection. Returns once the
    /// listener is closed. No-op while stopped.
    pub fn stop(&mut self) {
        let Some(r) = self.running.take() else {
            return;
        };
        r.stop.store(true, Ordering::SeqCst);
        // The accept thread owns the listener and drops it on its way out.
        let _ = r.accept.join();
        for (_, c) in r.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn run(&mut self, listener: TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let accept = {
            let (stop, conns, serve) = (stop.clone(), conns.clone(), self.serve.clone());
            std::thread::spawn(move || {
                let mut next_id = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_nodelay(true);
                            let id = next_id;
                            next_id += 1;
                            if let Ok(c) = stream.try_clone() {
                                conns.lock().unwrap().insert(id, c);
                            }
                            let (stop, conns, serve) = (stop.clone(), conns.clone(), serve.clone());
                            std::thread::spawn(move || {
                                serve(stream, &stop);
                                conns.lock().unwrap().remove(&id);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                drop(listener);
            })
        };
        self.running = Some(Running {
            stop,
            accept,
            conns,
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// HTTP(S)
// ---------------------------------------------------------------------------

/// What an [`HttpBackend`] answers, changeable at runtime.
struct HttpState {
    status: AtomicU16,
    body: Mutex<String>,
    hang: AtomicBool,
    hits: AtomicU64,
    last_request: Mutex<String>,
    /// Requests received per source (TCP peer) address.
    hits_from: Mutex<HashMap<IpAddr, u64>>,
    /// Sources whose requests get 503 whatever `status` says.
    failing: Mutex<HashSet<IpAddr>>,
}

/// The status a request from `from` gets while the configured status is
/// `status`: 503 for a failing source.
fn status_for(st: &HttpState, from: Option<IpAddr>) -> u16 {
    match from {
        Some(ip) if st.failing.lock().unwrap().contains(&ip) => 503,
        _ => st.status.load(Ordering::SeqCst),
    }
}

/// An HTTP (or HTTPS) backend. Every request path gets the same response:
/// the current status and body, `Connection: close`.
pub struct HttpBackend {
    server: Server,
    state: Arc<HttpState>,
    tls: bool,
}

impl HttpBackend {
    /// An HTTP backend answering `200` with body `ok`.
    pub fn start() -> HttpBackend {
        HttpBackend::start_with(None)
    }

    /// An HTTPS backend with a fresh self-signed certificate for
    /// `localhost` and `127.0.0.1`, answering `200` with body `ok`.
    pub fn start_tls() -> HttpBackend {
        HttpBackend::start_with(Some(self_signed_config()))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> HttpBackend {
        let state = Arc::new(HttpState {
            status: AtomicU16::new(200),
            body: Mutex::new("ok".into()),
            hang: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            last_request: Mutex::default(),
            hits_from: Mutex::default(),
            failing: Mutex::default(),
        });
        let is_tls = tls.is_some();
        let st = state.clone();
        let serve: Serve = Arc::new(move |stream: TcpStream, stop: &AtomicBool| {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let from = stream.peer_addr().ok().map(|a| a.ip());
            match &tls {
                None => {
                    let mut s = stream;
                    serve_http(&mut s, &st, from, stop);
                    let _ = s.shutdown(Shutdown::Both);
                }
                Some(cfg) => {
                    let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
                        return;
                    };
                    let mut s = rustls::StreamOwned::new(conn, stream);
                    if serve_http(&mut s, &st, from, stop) {
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    let _ = s.sock.shutdown(Shutdown::Both);
                }
            }
        });
        HttpBackend {
            server: Server::start_new(serve),
            state,
            tls: is_tls,
        }
    }

    /// `http://127.0.0.1:PORT{path}` (or `https://`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.server.addr())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The status code of later responses.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// The body of later responses.
    pub fn set_body(&self, body: &str) {
        *self.state.body.lock().unwrap() = body.to_string();
    }

    /// While true, requests are read but never answered (the connection
    /// is held open until the backend is killed or this is cleared).
    pub fn set_hang(&self, hang: bool) {
        self.state.hang.store(hang, Ordering::SeqCst);
    }

    /// Requests received so far (across restarts).
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Requests received so far from source address `ip` (across
    /// restarts).
    pub fn hits_from(&self, ip: IpAddr) -> u64 {
        self.state
            .hits_from
            .lock()
            .unwrap()
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }

    /// Every source address seen so far with its request count.
    pub fn hits_by_source(&self) -> HashMap<IpAddr, u64> {
        self.state.hits_from.lock().unwrap().clone()
    }

    /// From now on requests whose TCP peer address is one of `sources`
    /// get `503` (whatever [`HttpBackend::set_status`] says); others get
    /// the configured status. An empty slice fails nobody.
    pub fn set_failing_sources(&self, sources: &[IpAddr]) {
        *self.state.failing.lock().unwrap() = sources.iter().copied().collect();
    }

    /// The head (request line and headers) of the last request received.
    pub fn last_request(&self) -> String {
        self.state.last_request.lock().unwrap().clone()
    }

    /// Closes the listener and drops in-flight connections.
    pub fn kill(&mut self) {
        self.server.stop();
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.server.start();
    }

    /// True while listening.
    pub fn is_alive(&self) -> bool {
        self.server.is_running()
    }
}

/// Reads one request head (from `from`) and answers it; false if nothing
/// was answered.
fn serve_http(
    s: &mut (impl Read + Write),
    st: &HttpState,
    from: Option<IpAddr>,
    stop: &AtomicBool,
) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            return false;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let text = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    *st.last_request.lock().unwrap() = text;
    st.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(ip) = from {
        *st.hits_from.lock().unwrap().entry(ip).or_insert(0) += 1;
    }
    while st.hang.load(Ordering::SeqCst) {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = status_for(st, from);
    let body = st.body.lock().unwrap().clone();
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(resp.as_bytes())
        .and_then(|()| s.flush())
        .is_ok()
}

/// A rustls server config with a fresh self-signed certificate.
fn self_signed_config() -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".into()])
        .expect("generate a self-signed certificate");
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server certificate");
    Arc::new(cfg)
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

/// A TCP listener that accepts connections and closes them at once.
pub struct TcpBackend {
    server: Server,
    accepted: Arc<AtomicU64>,
}

impl TcpBackend {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> TcpBackend {
        let accepted = Arc::new(AtomicU64::new(0));
        let n = accepted.clone();
        let serve: Serve = Arc::new(move |stream: TcpStream, _stop: &AtomicBool| {
            n.fetch_add(1, Ordering::SeqCst);
            let _ = stream.shutdown(Shutdown::Both);
        });
        TcpBackend {
            server: Server::start_new(serve),
            accepted,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes the listener: connects are refused.
    pub fn kill(&mut self) {
        self.server.stop();
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.server.start();
    }

    /// True while listening.
    pub fn is_alive(&self) -> bool {
        self.server.is_running()
    }
}

/// Writes `text` to `path` atomically (temp file + rename), so a watcher
/// never reads a half-written file.
pub fn write_atomic(path: &std::path::Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
