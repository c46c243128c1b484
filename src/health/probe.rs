//! Probe kinds: one attempt of each, under a timeout, as an [`Outcome`].
//! The only code (with `scheduler`) that does probe I/O.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::Outcome;
use super::scheduler::engine::Engine;
use super::scheduler::timers::{MAX_SLACK, Timer, Timers};
use crate::config::{CheckKind, HttpCheck};

mod http1;

pub use http1::{Exchange, Progress};

/// Most body bytes read for `expect.body`.
const BODY_LIMIT: usize = 64 * 1024;

/// Every HTTP probe's `User-Agent` (unless the check sets one).
const USER_AGENT: &str = concat!("veer-health/", env!("CARGO_PKG_VERSION"));

/// Shared HTTP clients, one per TLS verification mode, and the timer of
/// every probe (see `scheduler::timers`). The clients keep no idle
/// connections: every probe opens a fresh one (a pooled keep-alive
/// connection kept a backend that refuses new connections "up") and asks
/// the backend to close it. They ignore `HTTP(S)_PROXY`: a probe checks
/// the path from veer to the backend, not to a proxy.
#[derive(Debug, Clone)]
pub struct Clients {
    verify: reqwest::Client,
    insecure: reqwest::Client,
    /// Every probe's source address (`[health] source`), if set.
    source: Option<IpAddr>,
    /// The clients of checks with their own proxy, by (proxy, insecure):
    /// built at a check's first probe, not at every one (building one
    /// reads the TLS roots, and every probe shares one thread).
    proxied: Arc<Mutex<HashMap<(String, bool), reqwest::Client>>>,
    /// The one timer of all probes.
    pub timers: Timers,
    /// What probes plain-http checks judged by their head (see
    /// `scheduler::engine`).
    pub engine: Engine,
    /// The runtime probe tasks run on (see `scheduler::thread`); None: the
    /// one they are spawned from.
    pub runtime: Option<tokio::runtime::Handle>,
}

impl Clients {
    /// Builds the clients; every probe leaves from `source` when given.
    pub fn new(source: Option<IpAddr>) -> Result<Self, reqwest::Error> {
        Ok(Clients {
            verify: Clients::builder(false, source).build()?,
            insecure: Clients::builder(true, source).build()?,
            source,
            proxied: Arc::default(),
            timers: Timers::default(),
            engine: Engine::default(),
            runtime: None,
        })
    }

    /// Where every probe leaves from (`[health] source`), if set.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }

    /// The same clients, their probes run on `runtime` (the probe thread's).
    pub fn on(self, runtime: tokio::runtime::Handle) -> Self {
        Clients {
            runtime: Some(runtime),
            ..self
        }
    }

    /// The client of a check whose probes go through `proxy`.
    fn proxied(&self, proxy: &str, insecure: bool) -> Result<reqwest::Client, ProbeError> {
        /// Distinct proxies kept; past it (edits over a long uptime) the
        /// cache starts again.
        const MOST: usize = 256;
        let key = (proxy.to_string(), insecure);
        let lock = || self.proxied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = lock().get(&key) {
            return Ok(c.clone());
        }
        let p = reqwest::Proxy::all(proxy).map_err(|e| ProbeError::http(&e))?;
        let client = Clients::builder(insecure, self.source)
            .proxy(p)
            .build()
            .map_err(|e| ProbeError::http(&e))?;
        let mut cache = lock();
        if cache.len() >= MOST {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    /// How every probe client is built: no redirects, no pooling, no
    /// proxy from the environment, from `source`.
    fn builder(insecure: bool, source: Option<IpAddr>) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .no_proxy()
            .local_address(source)
            .user_agent(USER_AGENT)
    }
}

/// The local address a probe to `to` binds: `source` when it is of the
/// same family, else any.
fn local_for(to: &SocketAddr, source: Option<IpAddr>) -> SocketAddr {
    match source {
        Some(s) if s.is_ipv4() == to.is_ipv4() => SocketAddr::new(s, 0),
        _ if to.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        _ => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// A TCP connection to `to` from `source` (when set).
async fn connect_from(
    to: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let sock = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if source.is_some() {
        sock.bind(local_for(&to, source))?;
    }
    sock.connect(to).await
}

/// Why one probe attempt failed (its text is the outcome's reason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The HTTP request failed (connect, TLS, reset): the innermost cause.
    #[error("{message}")]
    Http {
        /// The innermost cause.
        message: String,
        /// The cause is local (see [`ProbeError::is_local`]).
        local: bool,
    },
    /// The method is not a valid HTTP method.
    #[error("bad method: {0}")]
    Method(String),
    /// A status outside the accepted ranges.
    #[error("status {0}")]
    Status(u16),
    /// The body could not be read.
    #[error("reading body: {0}")]
    BodyRead(String),
    /// The body lacks the expected text.
    #[error("status {status}, body does not contain `{want}`")]
    Body {
        /// The response status.
        status: u16,
        /// The text looked for.
        want: String,
    },
    /// A TCP connect failed.
    #[error("connect {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// A DNS answer was wrong (rcode, missing record, unparsable).
    #[error("{0}")]
    Dns(String),
    /// A DNS exchange failed on the socket.
    #[error("{server}: {source}")]
    DnsIo {
        /// `ADDR:PORT`, with ` (tcp)` for the TCP retry.
        server: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program could not be started or waited for.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{program}: {status}")]
    Exit {
        /// `argv[0]`.
        program: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The state file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The state file says down, or something else.
    #[error("{path} says {said}")]
    Says {
        /// The file.
        path: String,
        /// `down`, or the unexpected text quoted.
        said: String,
    },
    /// Calculated checks have no probe.
    #[error("calculated checks are not probed")]
    Calculated,
}

/// Errors that are the prober's own fault, not the backend's: out of
/// descriptors or buffers, or no usable local address.
const LOCAL_ERRNOS: [i32; 5] = [
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOBUFS,
    libc::ENOMEM,
    libc::EADDRNOTAVAIL,
];

fn io_is_local(e: &std::io::Error) -> bool {
    e.raw_os_error().is_some_and(|n| LOCAL_ERRNOS.contains(&n))
}

impl ProbeError {
    /// The probe could not run for a reason of veer's host (no descriptor,
    /// no buffer, no local address): a fault of the prober, never counted
    /// against the backend.
    pub fn is_local(&self) -> bool {
        match self {
            ProbeError::Http { local, .. } => *local,
            // fork() failing with EAGAIN: the user's process limit.
            ProbeError::Spawn { source, .. } => {
                io_is_local(source) || source.raw_os_error() == Some(libc::EAGAIN)
            }
            ProbeError::Connect { source, .. }
            | ProbeError::DnsIo { source, .. }
            | ProbeError::Read { source, .. } => io_is_local(source),
            _ => false,
        }
    }

    fn http(e: &reqwest::Error) -> ProbeError {
        let mut local = false;
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                local |= io_is_local(io);
            }
            source = s.source();
        }
        ProbeError::Http {
            message: describe_reqwest(e),
            local,
        }
    }
}

/// Runs one attempt of `kind` (made ready as `prepared`, see
/// [`Prepared::new`]) within `timeout`, which `timer` (the probe task's)
/// keeps.
///
/// The timeout is a wait of the probes' one timer service, not a tokio
/// timer of its own: a new tokio timer unparks the thread's poller (a
/// write to its eventfd, and another turn of the event loop) whenever
/// tokio's wheel holds nothing earlier, which between the service's
/// wake-ups was so for nearly every probe. The service may fire it up to
/// [`timeout_slack`] late, with its other waits; a result that comes
/// after the timeout is a timeout all the same.
pub async fn attempt(
    kind: &CheckKind,
    prepared: &Prepared,
    timeout: Duration,
    clients: &Clients,
    timer: &mut Timer,
) -> Outcome {
    // One clock read for the start and the deadline.
    let start = tokio::time::Instant::now();
    // Only the minimal HTTP client's future is held inline: the others
    // are boxed, so that a probe task stays small (the largest kind sets
    // the size of every task, and each cycle moves the future).
    let mut work = std::pin::pin!(async {
        match kind {
            CheckKind::Http(h) => match &prepared.plain {
                Some(plain) => http1::probe(h, plain, clients.source).await,
                None => Box::pin(http(h, clients)).await,
            },
            CheckKind::Tcp { target } => Box::pin(tcp(target, clients.source)).await,
            CheckKind::Dns {
                server,
                name,
                qtype,
                answer,
            } => Box::pin(dns(*server, name, *qtype, answer.as_ref(), clients.source)).await,
            CheckKind::Exec { argv } => Box::pin(exec(argv)).await,
            CheckKind::File { path } => Box::pin(file(path)).await,
            CheckKind::Calculated { .. } => Err(ProbeError::Calculated),
        }
    });
    // Armed only if the work is still under way after its first poll; the
    // work goes first, so a result there at the deadline counts.
    let mut expiry = timer.until(start + timeout, timeout_slack(timeout));
    let result = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        Pin::new(&mut expiry).poll(cx).map(|()| None)
    })
    .await;
    outcome(result, start.elapsed(), timeout)
}

/// An attempt's outcome from its result (None: it timed out) after
/// `latency`; a result after the timeout is a timeout all the same.
pub fn outcome(
    result: Option<Result<String, ProbeError>>,
    latency: Duration,
    timeout: Duration,
) -> Outcome {
    // Within the timer's slack after the deadline: too late all the same.
    let result = result.filter(|_| latency <= timeout);
    match result {
        Some(Ok(reason)) => Outcome {
            ok: true,
            latency,
            local: false,
            reason,
        },
        Some(Err(e)) => Outcome {
            ok: false,
            latency,
            local: e.is_local(),
            reason: e.to_string(),
        },
        None => Outcome {
            ok: false,
            latency,
            local: false,
            reason: format!("timeout after {}", fmt_duration(timeout)),
        },
    }
}

/// How late the timer service may fire a probe's timeout (to fire it with
/// other waits): an eighth of it, at most [`MAX_SLACK`].
pub fn timeout_slack(timeout: Duration) -> Duration {
    (timeout / 8).min(MAX_SLACK)
}

/// `1s`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What a probe prepares once for all its attempts: for a plain-http
/// check the minimal client's request (see `http1`).
#[derive(Debug, Default)]
pub struct Prepared {
    plain: Option<http1::Plain>,
}

impl Prepared {
    /// A plain-http check (the minimal client's): the engine's to probe.
    pub fn plain_http(&self) -> bool {
        self.plain.is_some()
    }

    /// Opens `kind`'s exchange ([`Prepared::plain_http`] checks only),
    /// leaving from `source` when set.
    pub fn open(&self, source: Option<IpAddr>) -> Option<Result<Exchange, ProbeError>> {
        Some(Exchange::open(self.plain.as_ref()?, source))
    }

    /// Advances exchange `x` of `kind` (see [`Exchange::advance`]).
    pub fn advance(&self, kind: &CheckKind, x: &mut Exchange) -> Progress {
        match (kind, &self.plain) {
            (CheckKind::Http(h), Some(p)) => x.advance(h, p),
            _ => Progress::Done(Err(ProbeError::Http {
                message: "not a plain http check".into(),
                local: true,
            })),
        }
    }

    /// Makes `kind` ready.
    pub fn new(kind: &CheckKind) -> Prepared {
        Prepared {
            plain: match kind {
                CheckKind::Http(h) => http1::Plain::new(h),
                _ => None,
            },
        }
    }
}

/// An HTTP probe through reqwest: https, a proxy, or a URL or header the
/// minimal client does not take (see `http1`).
async fn http(h: &HttpCheck, clients: &Clients) -> Result<String, ProbeError> {
    let shared = if h.tls_verify {
        &clients.verify
    } else {
        &clients.insecure
    };
    // A check with its own proxy gets a client of its own.
    let own;
    let client = match &h.proxy {
        None => shared,
        Some(p) => {
            own = clients.proxied(p, !h.tls_verify)?;
            &own
        }
    };
    let method = reqwest::Method::from_bytes(h.method.as_bytes())
        .map_err(|e| ProbeError::Method(e.to_string()))?;
    let mut req = client
        .request(method, &h.url)
        .header(reqwest::header::CONNECTION, "close");
    for (k, v) in &h.headers {
        req = req.header(k, v);
    }
    if let Some(host) = &h.host {
        req = req.header(reqwest::header::HOST, host);
    }
    let mut resp = req.send().await.map_err(|e| ProbeError::http(&e))?;
    let status = resp.status().as_u16();
    if !h.status.iter().any(|&(a, b)| (a..=b).contains(&status)) {
        return Err(ProbeError::Status(status));
    }
    if let Some(want) = &h.body {
        let mut body = Vec::new();
        while body.len() < BODY_LIMIT {
            match resp
                .chunk()
                .await
                .map_err(|e| ProbeError::BodyRead(describe_reqwest(&e)))?
            {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body_contains(status, &body, want)?;
    }
    Ok(status_reason(status))
}

/// `status 200`: a passing HTTP probe's reason, written without the
/// formatting machinery (every probe makes one).
fn status_reason(status: u16) -> String {
    let mut s = String::with_capacity(10);
    s.push_str("status ");
    if !(100..1000).contains(&status) {
        s.push_str(&status.to_string());
    } else {
        for d in [status / 100, status / 10 % 10, status % 10] {
            s.push(char::from(b'0' + d as u8));
        }
    }
    s
}

/// `expect.body`: the first [`BODY_LIMIT`] bytes of a `status` response's
/// body contain `want`.
fn body_contains(status: u16, body: &[u8], want: &str) -> Result<(), ProbeError> {
    let body = &body[..body.len().min(BODY_LIMIT)];
    // Linear in the body whatever the backend sends (a window-by-window
    // compare is body × want on a body built to defeat it, and every
    // probe shares one thread).
    if memchr::memmem::find(body, want.as_bytes()).is_some() {
        Ok(())
    } else {
        Err(ProbeError::Body {
            status,
            want: want.to_string(),
        })
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    // The innermost cause says what happened (refused, reset, certificate).
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    if e.is_connect() {
        format!("connect failed: {msg}")
    } else {
        msg
    }
}

async fn tcp(target: &str, from: Option<IpAddr>) -> Result<String, ProbeError> {
    let err = |source| ProbeError::Connect {
        target: target.to_string(),
        source,
    };
    // Every address the name has, in order, until one connects.
    let mut last = None;
    for to in tokio::net::lookup_host(target).await.map_err(err)? {
        match connect_from(to, from).await {
            Ok(_) => return Ok(format!("connected to {target}")),
            Err(e) => last = Some(e),
        }
    }
    Err(err(last.unwrap_or_else(|| {
        // As tokio's TcpStream::connect says it (the text is unchanged).
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    })))
}

async fn dns(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    want: Option<&RData>,
    from: Option<IpAddr>,
) -> Result<String, ProbeError> {
    dns_exchange(server, name, qtype, want, from).await
}

async fn dns_exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    want: Option<&RData>,
    from: Option<IpAddr>,
) -> Result<String, ProbeError> {
    let id = fastrand::u16(..);
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.op_code = OpCode::Query;
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(name.clone(), qtype));
    let bytes = msg.to_vec().map_err(|e| ProbeError::Dns(e.to_string()))?;
    let mut resp = dns_udp(server, id, &bytes, from).await?;
    let mut via = "";
    if resp.metadata.truncation {
        // The answer did not fit in UDP: ask again over TCP (RFC 7766).
        resp = dns_tcp(server, id, &bytes, from).await?;
        via = " over TCP";
    }
    let rcode = resp.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(ProbeError::Dns(format!("{name} {qtype}: {rcode}{via}")));
    }
    if let Some(want) = want
        && !resp
            .answers
            .iter()
            .any(|r| r.record_type() == qtype && r.data == *want)
    {
        return Err(ProbeError::Dns(format!(
            "{name} {qtype}: no answer is `{want}`{via}"
        )));
    }
    Ok(format!(
        "{name} {qtype}: NOERROR, {} answers{via}",
        resp.answers.len()
    ))
}

async fn dns_udp(
    server: SocketAddr,
    id: u16,
    query: &[u8],
    from: Option<IpAddr>,
) -> Result<Message, ProbeError> {
    let io = |source| ProbeError::DnsIo {
        server: server.to_string(),
        source,
    };
    let bind = local_for(&server, from);
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(query).await.map_err(io)?;
    let mut buf = vec![0; 4096];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        let Ok(resp) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if resp.metadata.id == id && resp.metadata.message_type == MessageType::Response {
            return Ok(resp);
        }
    }
}

async fn dns_tcp(
    server: SocketAddr,
    id: u16,
    query: &[u8],
    from: Option<IpAddr>,
) -> Result<Message, ProbeError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |source| ProbeError::DnsIo {
        server: format!("{server} (tcp)"),
        source,
    };
    let mut s = connect_from(server, from).await.map_err(io)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).await.map_err(io)?;
    loop {
        let len = s.read_u16().await.map_err(io)?;
        let mut buf = vec![0; len as usize];
        s.read_exact(&mut buf).await.map_err(io)?;
        let resp = Message::from_vec(&buf)
            .map_err(|e| ProbeError::Dns(format!("{server} (tcp): bad response: {e}")))?;
        if resp.metadata.id == id && resp.metadata.message_type == MessageType::Response {
            return Ok(resp);
        }
    }
}

async fn exec(argv: &[String]) -> Result<String, ProbeError> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so everything it started can be killed.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: argv[0].clone(),
            source,
        })?;
    // Kills the whole group when the probe ends: at the timeout (this
    // future is dropped) and after an exit that left children behind
    // (`sh -c 'sleep 37'` would otherwise leave orphans without bound).
    let _group = child.id().map(GroupKill);
    let status = child.wait().await.map_err(|source| ProbeError::Spawn {
        program: argv[0].clone(),
        source,
    })?;
    if status.success() {
        Ok("exit 0".into())
    } else {
        Err(ProbeError::Exit {
            program: argv[0].clone(),
            status,
        })
    }
}

/// SIGKILL to a probe's process group on drop.
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.0) {
            // SAFETY: kill(2) with a negative pid signals that process
            // group; no memory is touched. ESRCH (nothing left) is fine.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

async fn file(path: &std::path::Path) -> Result<String, ProbeError> {
    let shown = || path.display().to_string();
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| ProbeError::Read {
            path: shown(),
            source,
        })?;
    match text.trim().to_ascii_lowercase().as_str() {
        "up" => Ok(format!("{} says up", shown())),
        "down" => Err(ProbeError::Says {
            path: shown(),
            said: "down".into(),
        }),
        other => Err(ProbeError::Says {
            path: shown(),
            said: format!("`{other}`, expected up or down"),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `expect.body` finds the text anywhere in the first BODY_LIMIT
    /// bytes, and only there; an empty text is in every body.
    #[test]
    fn body_contains_finds_text_within_the_limit() {
        let mut body = vec![b'a'; BODY_LIMIT + 10];
        assert!(body_contains(200, &body, "").is_ok());
        assert!(body_contains(200, &body, "aab").is_err());
        body[BODY_LIMIT - 1] = b'b';
        assert!(body_contains(200, &body, "aab").is_ok());
        assert!(body_contains(200, &body, "ab").is_ok());
        assert!(body_contains(200, &body, "aba").is_err(), "past the limit");
        assert!(body_contains(200, b"", "a").is_err());
    }

    /// A proxied check's client is built once per proxy and TLS mode, not
    /// at every probe on the shared probe thread.
    #[test]
    fn a_proxy_client_is_built_once() {
        let clients = Clients::new(None).unwrap();
        for _ in 0..3 {
            clients.proxied("http://127.0.0.1:3128", false).unwrap();
        }
        clients.proxied("http://127.0.0.1:3128", true).unwrap();
        clients.proxied("http://127.0.0.1:3129", false).unwrap();
        assert_eq!(clients.proxied.lock().unwrap().len(), 3);
        assert!(clients.proxied("not a url", false).is_err());
    }

    /// A GET of `url` expecting 200-399, as the config's defaults make it.
    pub(crate) fn http_check(url: &str) -> HttpCheck {
        HttpCheck {
            url: url.into(),
            method: "GET".into(),
            headers: Vec::new(),
            host: None,
            tls_verify: true,
            status: vec![(200, 399)],
            body: None,
            proxy: None,
        }
    }

    /// `[health] source`: TCP, DNS (UDP) and HTTP probes leave from it.
    #[tokio::test]
    async fn probes_leave_from_the_configured_source() {
        let from: IpAddr = "127.0.0.2".parse().unwrap();
        // TCP: the listener sees the source.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap().to_string();
        let (probe, accepted) = tokio::join!(tcp(&target, Some(from)), l.accept());
        assert!(probe.is_ok(), "{probe:?}");
        assert_eq!(accepted.unwrap().1.ip(), from);
        // DNS over UDP: the query comes from the source.
        let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = u.local_addr().unwrap();
        let name = Name::from_ascii("t.").unwrap();
        let ask = tokio::time::timeout(
            Duration::from_millis(300),
            dns(server, &name, RecordType::A, None, Some(from)),
        );
        let mut buf = [0u8; 512];
        let (_, got) = tokio::join!(ask, u.recv_from(&mut buf));
        assert_eq!(got.unwrap().1.ip(), from);
        // HTTP: the connection comes from the source.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let clients = Clients::new(Some(from)).unwrap();
        let get = tokio::time::timeout(Duration::from_millis(300), clients.verify.get(&url).send());
        let (_, accepted) = tokio::join!(get, l.accept());
        assert_eq!(accepted.unwrap().1.ip(), from);
    }

    /// A `[health] source` that is not on this host: every probe is the
    /// prober's own fault (EADDRNOTAVAIL), never the backend's.
    #[tokio::test]
    async fn a_source_not_on_the_host_is_a_local_fault() {
        let from: IpAddr = "192.0.2.1".parse().unwrap();
        let clients = Clients::new(Some(from)).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        let t = Duration::from_secs(2);
        let kinds = [
            CheckKind::Tcp {
                target: at.to_string(),
            },
            CheckKind::Dns {
                server: at,
                name: Name::from_ascii("t.").unwrap(),
                qtype: RecordType::A,
                answer: None,
            },
            CheckKind::Http(http_check(&format!("http://{at}/"))),
        ];
        for kind in &kinds {
            let o = attempt(
                kind,
                &Prepared::new(kind),
                t,
                &clients,
                &mut clients.timers.timer(),
            )
            .await;
            assert!(!o.ok && o.local, "{kind:?}: {o:?}");
        }
    }

    #[test]
    fn status_reasons_read_as_formatted() {
        for status in [0, 7, 99, 100, 200, 204, 302, 404, 599, 999, 1000, 65535] {
            assert_eq!(status_reason(status), format!("status {status}"));
        }
    }

    #[test]
    fn local_faults_are_told_from_backend_faults() {
        let io = |n| std::io::Error::from_raw_os_error(n);
        for local in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::EADDRNOTAVAIL,
        ] {
            let e = ProbeError::Connect {
                target: "192.0.2.1:80".into(),
                source: io(local),
            };
            assert!(e.is_local(), "{e}");
        }
        for backend in [libc::ECONNREFUSED, libc::ECONNRESET, libc::EHOSTUNREACH] {
            let e = ProbeError::DnsIo {
                server: "192.0.2.1:53".into(),
                source: io(backend),
            };
            assert!(!e.is_local(), "{e}");
        }
        assert!(!ProbeError::Status(500).is_local());
    }
}
