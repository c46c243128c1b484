//! Probe kinds: one attempt of each, under a timeout, as an [`Outcome`].
//! The only code (with `scheduler`) that does probe I/O.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::Outcome;
use crate::config::{CheckKind, HttpCheck};

/// Most body bytes read for `expect.body`.
const BODY_LIMIT: usize = 64 * 1024;

/// Shared HTTP clients, one per TLS verification mode. They keep no idle
/// connections: every probe opens a fresh one (a pooled keep-alive
/// connection kept a backend that refuses new connections "up") and asks
/// the backend to close it. They ignore `HTTP(S)_PROXY`: a probe checks
/// the path from veer to the backend, not to a proxy.
#[derive(Debug, Clone)]
pub struct Clients {
    verify: reqwest::Client,
    insecure: reqwest::Client,
}

impl Clients {
    /// Builds the clients.
    pub fn new() -> Result<Self, reqwest::Error> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(insecure)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .no_proxy()
                .user_agent(concat!("veer-health/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Clients {
            verify: build(false)?,
            insecure: build(true)?,
        })
    }
}

/// Runs one attempt of `kind` within `timeout`.
pub async fn attempt(kind: &CheckKind, timeout: Duration, clients: &Clients) -> Outcome {
    let start = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        match kind {
            CheckKind::Http(h) => http(h, clients).await,
            CheckKind::Tcp { target } => tcp(target).await,
            CheckKind::Dns {
                server,
                name,
                qtype,
                answer,
            } => dns(*server, name, *qtype, answer.as_ref()).await,
            CheckKind::Exec { argv } => exec(argv).await,
            CheckKind::File { path } => file(path).await,
            CheckKind::Calculated { .. } => Err("calculated checks are not probed".into()),
        }
    })
    .await;
    let latency = start.elapsed();
    match result {
        Ok(Ok(reason)) => Outcome {
            ok: true,
            latency,
            reason,
        },
        Ok(Err(reason)) => Outcome {
            ok: false,
            latency,
            reason,
        },
        Err(_) => Outcome {
            ok: false,
            latency,
            reason: format!("timeout after {}", fmt_duration(timeout)),
        },
    }
}

/// `1s`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

async fn http(h: &HttpCheck, clients: &Clients) -> Result<String, String> {
    let client = if h.tls_verify {
        &clients.verify
    } else {
        &clients.insecure
    };
    let method = reqwest::Method::from_bytes(h.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client
        .request(method, &h.url)
        .header(reqwest::header::CONNECTION, "close");
    for (k, v) in &h.headers {
        req = req.header(k, v);
    }
    if let Some(host) = &h.host {
        req = req.header(reqwest::header::HOST, host);
    }
    let mut resp = req.send().await.map_err(|e| describe_reqwest(&e))?;
    let status = resp.status().as_u16();
    if !h.status.iter().any(|&(a, b)| (a..=b).contains(&status)) {
        return Err(format!("status {status}"));
    }
    if let Some(want) = &h.body {
        let mut body = Vec::new();
        while body.len() < BODY_LIMIT {
            match resp
                .chunk()
                .await
                .map_err(|e| format!("reading body: {}", describe_reqwest(&e)))?
            {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(BODY_LIMIT);
        if !body
            .windows(want.len().max(1))
            .any(|w| w == want.as_bytes())
        {
            return Err(format!("status {status}, body does not contain `{want}`"));
        }
    }
    Ok(format!("status {status}"))
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

async fn tcp(target: &str) -> Result<String, String> {
    tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect {target}: {e}"))?;
    Ok(format!("connected to {target}"))
}

async fn dns(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    want: Option<&RData>,
) -> Result<String, String> {
    let id = fastrand::u16(..);
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.op_code = OpCode::Query;
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(name.clone(), qtype));
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let mut resp = dns_udp(server, id, &bytes).await?;
    let mut via = "";
    if resp.metadata.truncation {
        // The answer did not fit in UDP: ask again over TCP (RFC 7766).
        resp = dns_tcp(server, id, &bytes).await?;
        via = " over TCP";
    }
    let rcode = resp.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(format!("{name} {qtype}: {rcode}{via}"));
    }
    if let Some(want) = want
        && !resp
            .answers
            .iter()
            .any(|r| r.record_type() == qtype && r.data == *want)
    {
        return Err(format!("{name} {qtype}: no answer is `{want}`{via}"));
    }
    Ok(format!(
        "{name} {qtype}: NOERROR, {} answers{via}",
        resp.answers.len()
    ))
}

async fn dns_udp(server: SocketAddr, id: u16, query: &[u8]) -> Result<Message, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    sock.send(query)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let mut buf = vec![0; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        let Ok(resp) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if resp.metadata.id == id && resp.metadata.message_type == MessageType::Response {
            return Ok(resp);
        }
    }
}

async fn dns_tcp(server: SocketAddr, id: u16, query: &[u8]) -> Result<Message, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("{server} (tcp): {e}"))?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed)
        .await
        .map_err(|e| format!("{server} (tcp): {e}"))?;
    loop {
        let len = s
            .read_u16()
            .await
            .map_err(|e| format!("{server} (tcp): {e}"))?;
        let mut buf = vec![0; len as usize];
        s.read_exact(&mut buf)
            .await
            .map_err(|e| format!("{server} (tcp): {e}"))?;
        let resp =
            Message::from_vec(&buf).map_err(|e| format!("{server} (tcp): bad response: {e}"))?;
        if resp.metadata.id == id && resp.metadata.message_type == MessageType::Response {
            return Ok(resp);
        }
    }
}

async fn exec(argv: &[String]) -> Result<String, String> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so everything it started can be killed.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    // Kills the whole group when the probe ends: at the timeout (this
    // future is dropped) and after an exit that left children behind
    // (`sh -c 'sleep 37'` would otherwise leave orphans without bound).
    let _group = child.id().map(GroupKill);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for {}: {e}", argv[0]))?;
    if status.success() {
        Ok("exit 0".into())
    } else {
        Err(format!("{}: {status}", argv[0]))
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

async fn file(path: &std::path::Path) -> Result<String, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match text.trim().to_ascii_lowercase().as_str() {
        "up" => Ok(format!("{} says up", path.display())),
        "down" => Err(format!("{} says down", path.display())),
        other => Err(format!(
            "{} says `{other}`, expected up or down",
            path.display()
        )),
    }
}
