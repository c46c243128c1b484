//! Helpers for the operations tests (reload, admin API, status page,
//! webhooks), std only:
//!
//! - [`Admin`]: a tiny blocking HTTP/1.1 client for the admin API (found
//!   from the `api listening on ADDR` log line), with the bearer token.
//! - [`Metrics`]: a strict parser for the Prometheus text format.
//! - [`Receiver`]: a webhook receiver recording every request, which can
//!   fail the first attempts or hang.
//! - [`dns`]: a minimal query encoder and A-answer decoder for raw-socket
//!   clients that must be fast (thousands of queries a second).
//! - [`zone_text`] / [`config_text`]: the scenario every file builds on.
//!
//! ```ignore
//! #[path = "support/admin.rs"]
//! mod admin;
//! let api = admin::Admin::from_logs(&veer.logs(), admin::TOKEN);
//! let m = api.metrics();
//! assert!(m.value("veer_reloads_total", &[("result", "ok")]).is_some());
//! ```

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bearer token of the scenarios (≥ 16 characters).
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The log line the server prints once the admin API is bound.
pub const API_LISTENING: &str = "api listening on ";

/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Scenario text
// ---------------------------------------------------------------------------

/// The `example.test.` zone: SOA with `serial`, NS, `ns1`, then `extra`
/// (whole lines).
pub fn zone_text(serial: u32, extra: &str) -> String {
    format!(
        "$ORIGIN example.test.\n$TTL 300\n\
         @       IN SOA ns1 hostmaster {serial} 7200 3600 1209600 60\n\
         \x20       IN NS  ns1\n\
         ns1     IN A   192.0.2.53\n{extra}"
    )
}

/// A config: `[server]` on an ephemeral loopback port with
/// `state_dir = "state"`, the `example.test.` zone from
/// `example.test.zone`, `[api]` on an ephemeral loopback port with `api`
/// as its extra lines (e.g. `token = "..."`; None = no `[api]`), then `body`.
/// Rate limiting is off: these tests poll one name every few milliseconds.
pub fn config_text(api: Option<&str>, body: &str) -> String {
    let api = api
        .map(|extra| format!("[api]\nlisten = \"127.0.0.1:0\"\n{extra}\n\n"))
        .unwrap_or_default();
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
         [rrl]\nresponses_per_second = 0\n\n\
         {api}[[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n\n{body}"
    )
}

/// `token = "TOKEN"`, the `[api]` extra line of most scenarios.
pub fn token_line() -> String {
    format!("token = \"{TOKEN}\"")
}

/// Writes `text` to `path` the way many editors save: a temp file in the
/// same directory, then rename over the original (a new inode).
pub fn save_by_rename(path: &std::path::Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// Overwrites `path` in place (same inode: open, truncate, write).
pub fn save_in_place(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: String,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON; panics with the body if it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body:\n{}",
                self.status, self.body
            )
        })
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw).map_err(std::io::Error::other)
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&b[..eol]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("chunk size `{size}`: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The admin API of one server.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token sent with state-changing requests.
    pub token: String,
}

/// The address in the `api listening on ADDR` log line, if any.
pub fn api_addr(logs: &str) -> Option<SocketAddr> {
    let i = logs.find(API_LISTENING)?;
    let rest = &logs[i + API_LISTENING.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Admin {
    /// The API whose address the server logged (`api listening on ADDR`;
    /// it is logged before the DNS listen lines `Veer::start` waits for).
    #[track_caller]
    pub fn from_logs(logs: &str, token: &str) -> Admin {
        let addr = api_addr(logs)
            .unwrap_or_else(|| panic!("no `{API_LISTENING}ADDR` in the logs:\n{logs}"));
        Admin {
            addr,
            token: token.to_string(),
        }
    }

    /// `method path` with the given headers and body.
    #[track_caller]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        try_http(self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.addr))
    }

    /// `GET path`, no token.
    #[track_caller]
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], None)
    }

    /// `GET path` expecting 200 and a JSON body.
    #[track_caller]
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    /// `method path` with `Authorization: Bearer TOKEN` (and a JSON body).
    #[track_caller]
    pub fn authed(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, body)
    }

    /// [`Admin::authed`] without panicking on a transport error.
    pub fn try_authed(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        try_http(self.addr, method, path, &headers, body)
    }

    /// `POST /v1/reload` with the token.
    #[track_caller]
    pub fn reload(&self) -> Response {
        self.authed("POST", "/v1/reload", None)
    }

    /// `GET /v1/status`.
    #[track_caller]
    pub fn status(&self) -> serde_json::Value {
        self.get_json("/v1/status")
    }

    /// `GET /metrics`, parsed (panics if it is not valid exposition text).
    #[track_caller]
    pub fn metrics(&self) -> Metrics {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.body);
        parse_metrics(&r.body)
            .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{}", r.body))
    }

    /// The `/v1/health` entry of check `name`.
    #[track_caller]
    pub fn check(&self, name: &str) -> serde_json::Value {
        let h = self.get_json("/v1/health");
        h["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no check `{name}` in /v1/health: {h}"))
    }
}

// ---------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `# TYPE` of every family.
    pub types: BTreeMap<String, String>,
    /// Families with a `# HELP` line.
    pub helps: BTreeSet<String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Samples named `name` whose labels include every `(key, value)`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample `name` with these labels (None if absent; panics if
    /// several match).
    #[track_caller]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, labels);
        assert!(
            found.len() <= 1,
            "{name} {labels:?} is ambiguous: {found:?}"
        );
        found.first().map(|s| s.value)
    }

    /// Like [`Metrics::value`] but panics when absent.
    #[track_caller]
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    /// The sum over samples `name` with these labels.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|s| s.value).sum()
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|e| format!("value `{v}`: {e}")),
    }
}

/// Parses `name{labels}` and returns (name, labels, rest of the line).
fn parse_series(line: &str) -> Result<(String, BTreeMap<String, String>, &str), String> {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..end];
    if !valid_metric_name(name) {
        return Err(format!("bad metric name `{name}`"));
    }
    let mut labels = BTreeMap::new();
    let b = line.as_bytes();
    let mut j = end;
    if b.get(j) == Some(&b'{') {
        j += 1;
        loop {
            if b.get(j) == Some(&b'}') {
                j += 1;
                break;
            }
            let eq = line[j..].find('=').ok_or("label without =")? + j;
            let lname = &line[j..eq];
            if !valid_label_name(lname) {
                return Err(format!("bad label name `{lname}`"));
            }
            if b.get(eq + 1) != Some(&b'"') {
                return Err(format!("label {lname}: value not quoted"));
            }
            let mut value = String::new();
            j = eq + 2;
            loop {
                match b.get(j) {
                    None => return Err(format!("label {lname}: unterminated value")),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        match b.get(j + 1) {
                            Some(b'\\') => value.push('\\'),
                            Some(b'"') => value.push('"'),
                            Some(b'n') => value.push('\n'),
                            other => return Err(format!("label {lname}: bad escape {other:?}")),
                        }
                        j += 2;
                    }
                    Some(_) => {
                        let ch = line[j..].chars().next().unwrap();
                        value.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("label {lname} twice"));
            }
            j += 1;
            match b.get(j) {
                Some(b',') => j += 1,
                Some(b'}') => {}
                other => return Err(format!("after label {lname}: {other:?}")),
            }
        }
    }
    let rest = &line[j..];
    if !rest.starts_with(' ') {
        return Err("no space before the value".into());
    }
    Ok((name.to_string(), labels, rest.trim()))
}

/// Parses the Prometheus text exposition format strictly: every sample
/// belongs to a family declared by `# TYPE` (before its samples, once),
/// label syntax and values are valid, no series appears twice, and every
/// histogram has cumulative buckets ending in `le="+Inf"` equal to its
/// `_count`, plus a `_sum`.
pub fn parse_metrics(text: &str) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: `{line}`", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim_start();
            if let Some(rest) = c.strip_prefix("TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| at("TYPE".into()))?;
                if !matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(at(format!("unknown type {kind}")));
                }
                if m.samples.iter().any(|s| family(&m, &s.name) == name) {
                    return Err(at(format!("TYPE {name} after its samples")));
                }
                if m.types.insert(name.into(), kind.into()).is_some() {
                    return Err(at(format!("TYPE {name} twice")));
                }
            } else if let Some(rest) = c.strip_prefix("HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if !valid_metric_name(name) {
                    return Err(at("bad HELP name".into()));
                }
                m.helps.insert(name.into());
            }
            continue;
        }
        let (name, labels, rest) = parse_series(line).map_err(at)?;
        let mut parts = rest.split_whitespace();
        let value = parse_value(parts.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = parts.next() {
            ts.parse::<i64>()
                .map_err(|e| at(format!("timestamp: {e}")))?;
        }
        if parts.next().is_some() {
            return Err(at("trailing text".into()));
        }
        if !m.types.contains_key(family(&m, &name)) {
            return Err(at(format!("sample of {name} without a # TYPE")));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(at("duplicate series".into()));
        }
        m.samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    check_histograms(&m)?;
    Ok(m)
}

/// The family a sample name belongs to (histogram suffixes stripped when
/// the base is a declared histogram or summary).
fn family<'a>(m: &Metrics, name: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                m.types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return base;
        }
    }
    name
}

fn check_histograms(m: &Metrics) -> Result<(), String> {
    for (name, kind) in &m.types {
        if kind != "histogram" {
            continue;
        }
        // Series (labels without `le`) → buckets.
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for s in m
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let mut l = s.labels.clone();
            let le = l
                .remove("le")
                .ok_or_else(|| format!("{name}_bucket without le: {s:?}"))?;
            let le = parse_value(&le)?;
            series
                .entry(format!("{l:?}"))
                .or_default()
                .push((le, s.value));
        }
        for (labels, buckets) in &series {
            for w in buckets.windows(2) {
                if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                    return Err(format!(
                        "{name}{labels}: buckets not increasing/cumulative: {buckets:?}"
                    ));
                }
            }
            let last = buckets.last().unwrap();
            if last.0 != f64::INFINITY {
                return Err(format!("{name}{labels}: no le=\"+Inf\" bucket"));
            }
            let with = |suffix: &str| {
                m.samples
                    .iter()
                    .find(|s| {
                        s.name == format!("{name}{suffix}") && format!("{:?}", s.labels) == *labels
                    })
                    .map(|s| s.value)
            };
            let count = with("_count").ok_or_else(|| format!("{name}{labels}: no _count"))?;
            if count != last.1 {
                return Err(format!(
                    "{name}{labels}: _count {count} != +Inf bucket {}",
                    last.1
                ));
            }
            with("_sum").ok_or_else(|| format!("{name}{labels}: no _sum"))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Hit {
    /// When the request was complete.
    pub at: Instant,
    /// `POST`, ...
    pub method: String,
    /// Request path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// The status answered (0 = none: hanging).
    pub answered: u16,
}

impl Hit {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    fail_first: AtomicUsize,
    hang: AtomicBool,
    stop: AtomicBool,
}

/// An HTTP server on 127.0.0.1 that records every request. It answers
/// 500 to the first `fail_first` requests and 204 after that, or never
/// answers while hanging. Stopped when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver that fails the first `fail_first` requests with 500.
    pub fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState {
            hits: Mutex::default(),
            fail_first: AtomicUsize::new(fail_first),
            hang: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            while !st.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve_hook(stream, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Receiver {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// A receiver that reads requests and never answers them.
    pub fn start_hanging() -> Receiver {
        let r = Receiver::start(0);
        r.state.hang.store(true, Ordering::SeqCst);
        r
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// The bodies of requests answered with success, parsed as JSON.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.hits()
            .iter()
            .filter(|h| (200..300).contains(&h.answered))
            .map(|h| {
                serde_json::from_str(&h.body)
                    .unwrap_or_else(|e| panic!("webhook body is not JSON ({e}): {}", h.body))
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Reads an HTTP request up to the end of its head (at most `limit`
/// bytes): the bytes read and where the head ends (`\r\n\r\n`), or None
/// when the client closes, errs or sends too much.
pub fn read_head(s: &mut TcpStream, limit: usize) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((buf, p));
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > limit {
            return None;
        }
    }
}

fn serve_hook(mut s: TcpStream, st: &ReceiverState) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut chunk = [0u8; 4096];
    let Some((buf, head_end)) = read_head(&mut s, usize::MAX) else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let hang = st.hang.load(Ordering::SeqCst);
    let fail = st
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if hang {
        0
    } else if fail {
        500
    } else {
        204
    };
    st.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
    });
    if hang {
        while !st.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        return;
    }
    let reason = if answered == 500 {
        "Internal Server Error"
    } else {
        "No Content"
    };
    let resp = if answered == 500 {
        format!("HTTP/1.1 500 {reason}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfail")
    } else {
        format!("HTTP/1.1 204 {reason}\r\nConnection: close\r\n\r\n")
    };
    let _ = s.write_all(resp.as_bytes());
    let _ = s.flush();
    let _ = s.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// DNS on raw sockets
// ---------------------------------------------------------------------------

/// A minimal DNS client codec: fast enough for load tests.
pub mod dns {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
    use std::time::Duration;

    /// A parsed response: header fields and the A records of the answer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Reply {
        /// Message id.
        pub id: u16,
        /// Header flags.
        pub flags: u16,
        /// Header rcode.
        pub rcode: u8,
        /// The question name, lower-cased, without the trailing dot.
        pub qname: String,
        /// The question type.
        pub qtype: u16,
        /// A records of the answer section, in order.
        pub a: Vec<Ipv4Addr>,
        /// Records of the answer section (any type).
        pub answers: usize,
        /// The SOA serial of an SOA answer, if any.
        pub soa_serial: Option<u32>,
    }

    /// A query (RD clear, one IN question, no EDNS).
    pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = Vec::with_capacity(64);
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.trim_end_matches('.').split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), String> {
        let mut labels = Vec::new();
        let mut end = None;
        for _ in 0..128 {
            let len = *msg.get(pos).ok_or("name runs past the end")? as usize;
            if len == 0 {
                return Ok((labels.join("."), end.unwrap_or(pos + 1)));
            }
            if len & 0xc0 == 0xc0 {
                let lo = *msg.get(pos + 1).ok_or("truncated pointer")? as usize;
                end.get_or_insert(pos + 2);
                pos = ((len & 0x3f) << 8) | lo;
                continue;
            }
            let label = msg.get(pos + 1..pos + 1 + len).ok_or("truncated label")?;
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            pos += 1 + len;
        }
        Err("name pointer loop".into())
    }

    fn u16_at(msg: &[u8], pos: usize) -> Result<u16, String> {
        msg.get(pos..pos + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated".to_string())
    }

    /// Parses a response.
    pub fn parse(msg: &[u8]) -> Result<Reply, String> {
        if msg.len() < 12 {
            return Err(format!("{} bytes: no header", msg.len()));
        }
        let id = u16_at(msg, 0)?;
        let flags = u16_at(msg, 2)?;
        let qd = u16_at(msg, 4)?;
        let an = u16_at(msg, 6)?;
        if flags & 0x8000 == 0 {
            return Err("QR not set".into());
        }
        let mut pos = 12;
        let (mut qname, mut qtype) = (String::new(), 0);
        for _ in 0..qd {
            let (n, p) = read_name(msg, pos)?;
            qname = n;
            qtype = u16_at(msg, p)?;
            pos = p + 4;
        }
        let mut a = Vec::new();
        let mut soa_serial = None;
        for _ in 0..an {
            let (_, p) = read_name(msg, pos)?;
            let rtype = u16_at(msg, p)?;
            let rdlen = u16_at(msg, p + 8)? as usize;
            let rdata = msg.get(p + 10..p + 10 + rdlen).ok_or("truncated rdata")?;
            match rtype {
                1 if rdlen == 4 => a.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
                6 => {
                    let (_, q) = read_name(msg, p + 10)?;
                    let (_, q) = read_name(msg, q)?;
                    let s = msg.get(q..q + 4).ok_or("truncated SOA")?;
                    soa_serial = Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
                }
                _ => {}
            }
            pos = p + 10 + rdlen;
        }
        Ok(Reply {
            id,
            flags,
            rcode: (flags & 0xf) as u8,
            qname,
            qtype,
            a,
            answers: an as usize,
            soa_serial,
        })
    }

    /// A connected UDP socket with `timeout` as its read timeout.
    pub fn udp(server: SocketAddr, timeout: Duration) -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        s.connect(server).expect("connect UDP");
        s.set_read_timeout(Some(timeout)).expect("read timeout");
        s
    }

    /// Sends `query` on `sock` and waits for the response with the same id
    /// (skipping late answers to earlier queries); Err on timeout.
    pub fn udp_ask(sock: &UdpSocket, query: &[u8]) -> Result<Reply, String> {
        let id = u16::from_be_bytes([query[0], query[1]]);
        sock.send(query).map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 1500];
        loop {
            let n = sock.recv(&mut buf).map_err(|e| format!("no answer: {e}"))?;
            let r = parse(&buf[..n])?;
            if r.id == id {
                return Ok(r);
            }
        }
    }

    /// One A query for `name` on a fresh socket: the answer's addresses.
    pub fn ask_a(server: SocketAddr, name: &str) -> Result<Reply, String> {
        let s = udp(server, Duration::from_secs(2));
        udp_ask(&s, &query(fastrand_id(), name, 1))
    }

    /// The SOA serial of `zone` (over UDP).
    pub fn soa_serial(server: SocketAddr, zone: &str) -> Result<u32, String> {
        let s = udp(server, Duration::from_secs(2));
        let r = udp_ask(&s, &query(fastrand_id(), zone, 6))?;
        r.soa_serial.ok_or_else(|| format!("no SOA in {r:?}"))
    }

    fn fastrand_id() -> u16 {
        use std::time::{SystemTime, UNIX_EPOCH};
        (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
            >> 4) as u16
    }

    /// One DNS-over-TCP connection with length-prefixed messages.
    pub struct Tcp(TcpStream);

    impl Tcp {
        /// Connects with `timeout` for connect, reads and writes.
        pub fn connect(server: SocketAddr, timeout: Duration) -> std::io::Result<Tcp> {
            let s = TcpStream::connect_timeout(&server, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.set_nodelay(true)?;
            Ok(Tcp(s))
        }

        /// Sends one query.
        pub fn send(&mut self, query: &[u8]) -> std::io::Result<()> {
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
            framed.extend_from_slice(query);
            self.0.write_all(&framed)
        }

        /// Reads one response.
        pub fn recv(&mut self) -> Result<Reply, String> {
            let mut len = [0u8; 2];
            self.0
                .read_exact(&mut len)
                .map_err(|e| format!("no answer: {e}"))?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            self.0
                .read_exact(&mut buf)
                .map_err(|e| format!("truncated answer: {e}"))?;
            parse(&buf)
        }
    }
}

/// The first header named `name` (case-insensitive) in lowercased `headers`.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}
