//! A minimal HTTP/1.1 client for plain `http://` checks without a proxy:
//! connect (from the configured source), write one request with
//! `Connection: close`, read the status line and headers and, when the
//! check expects a body text, at most [`BODY_LIMIT`] bytes of the body;
//! then close. reqwest spent most of a probe's user CPU on work a health
//! check does not need (URL parsing with IDNA, a connection task, a
//! dispatcher and its channels per request); this does the same request
//! with a handful of syscalls. https, proxied checks and URLs this parser
//! does not take as they are (userinfo, dot segments, characters reqwest
//! would percent-encode, hosts reqwest would rewrite) stay with reqwest.
//!
//! Hostile backends are bounded: the head by [`HEAD_LIMIT`] bytes and
//! [`MAX_HEADERS`] lines, the body by [`BODY_LIMIT`], a chunk-size line by
//! [`LINE_LIMIT`] and all of them by [`EXTENSIONS_LIMIT`], and everything
//! by the check's timeout (the caller's).
//! Error texts follow hyper's, so reasons read as they did with reqwest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BODY_LIMIT, ProbeError, USER_AGENT, body_contains, io_is_local, local_for};
use crate::config::HttpCheck;

/// Most bytes of a response head (status line and headers).
const HEAD_LIMIT: usize = 64 * 1024;

/// Most header lines in a response head (hyper's default).
const MAX_HEADERS: usize = 100;

/// Bytes a read asks for at least.
const READ_CHUNK: usize = 1024;

/// Reads of one [`Exchange::advance`] at most.
const READS_PER_CALL: usize = 16;

/// Most bytes of a chunk-size line (with extensions), its end not counted.
const LINE_LIMIT: usize = 4096;

/// Most bytes of a chunked body's size lines that are not the sizes'
/// digits (extensions, blanks), all lines together: with [`LINE_LIMIT`]
/// alone, a chunk of one byte could come after 4 KiB of them, and a body
/// of [`BODY_LIMIT`] bytes take 256 MiB (hyper's limit of extensions).
const EXTENSIONS_LIMIT: usize = 16 * 1024;

/// Where a plain-http check connects and what it asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target<'a> {
    /// The host as written (an IPv4 address, or an IPv6 address without
    /// brackets).
    host: &'a str,
    /// The address.
    ip: IpAddr,
    port: u16,
    /// `Host:` as reqwest sends it (lowercase, the port unless 80).
    authority: String,
    /// Path and query (never empty).
    path: &'a str,
}

impl<'a> Target<'a> {
    /// `http://host[:port][/path][?query][#fragment]` when it needs no
    /// rewriting; None sends the check through reqwest instead.
    fn parse(url: &'a str) -> Option<Target<'a>> {
        let rest = url.strip_prefix("http://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let tail = tail.split('#').next().unwrap_or("");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h, after)
        } else {
            match authority.rfind(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            }
        };
        let port = match port {
            "" => 80,
            p => {
                let digits = p.strip_prefix(':')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok()?
            }
        };
        let ip = if authority.starts_with('[') {
            // `::ffff:a.b.c.d` displays dotted; the URL parser writes hex.
            IpAddr::V6(
                host.parse::<Ipv6Addr>()
                    .ok()
                    .filter(|a| a.to_ipv4_mapped().is_none())?,
            )
        } else {
            let plain = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !host.starts_with(['.', '-']);
            if !plain {
                return None;
            }
            // The URL parser reads hosts ending in a numeric label as IPv4
            // (`127.1`, `0x7f.1`): only the plain dotted quad is taken here.
            let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
            if !last.starts_with(|c: char| c.is_ascii_digit()) {
                // A name goes to reqwest: it races the address families
                // (a dual-stack backend whose IPv6 path drops packets is
                // up there; one address after another, it would time out).
                return None;
            }
            IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
        };
        if !tail.bytes().all(path_byte) || dot_segment(tail) {
            return None;
        }
        let shown = match ip {
            IpAddr::V6(a) => format!("[{a}]"),
            _ => host.to_ascii_lowercase(),
        };
        let authority = if port == 80 {
            shown
        } else {
            format!("{shown}:{port}")
        };
        let path = if tail.is_empty() || tail.starts_with('?') {
            // reqwest asks for `/` (`/?q` with a query alone); the rare
            // query-only URL goes to it.
            if !tail.is_empty() {
                return None;
            }
            "/"
        } else {
            tail
        };
        Some(Target {
            host,
            ip,
            port,
            authority,
            path,
        })
    }
}

/// Bytes a URL's path and query keep as they are (RFC 3986 unreserved,
/// sub-delims but `'`, which reqwest encodes in a query, and `:@/?%`);
/// reqwest would percent-encode the others.
fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/?%".contains(&b)
}

/// A `.` or `..` segment (written or percent-encoded) in the path, which
/// reqwest would resolve.
fn dot_segment(tail: &str) -> bool {
    let path = tail.split('?').next().unwrap_or("");
    path.split('/').any(|s| {
        let s = s.to_ascii_lowercase();
        s == "." || s == ".." || s.contains("%2e")
    })
}

/// Whether reqwest takes all of the check's headers (when it does not,
/// the check goes to it, which has the reason text).
fn headers_valid(h: &HttpCheck) -> bool {
    use reqwest::header::{HeaderName, HeaderValue};
    h.headers.iter().all(|(k, v)| {
        HeaderName::from_bytes(k.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok()
    }) && h
        .host
        .as_ref()
        .is_none_or(|v| HeaderValue::from_str(v).is_ok())
}

/// A plain-http check made ready once: where to connect and the request's
/// bytes, so that a probe parses and formats nothing.
#[derive(Debug)]
pub(super) struct Plain {
    to: SocketAddr,
    request: Vec<u8>,
    /// What judging a response needs, kept here beside the address (the
    /// check's own strings and lists are cold in the cache by the next
    /// probe, a second later): the method is HEAD, and the accepted
    /// statuses when they are one range.
    head: bool,
    statuses: Option<(u16, u16)>,
}

impl Plain {
    /// `h` made ready, when the minimal client takes it (see [`Target`]).
    pub(super) fn new(h: &HttpCheck) -> Option<Plain> {
        if h.proxy.is_some() || !headers_valid(h) {
            return None;
        }
        let t = Target::parse(&h.url)?;
        Some(Plain {
            to: SocketAddr::new(t.ip, t.port),
            request: request(h, &t),
            head: h.method == "HEAD",
            statuses: match h.status[..] {
                [range] => Some(range),
                _ => None,
            },
        })
    }
}

/// One probe of `h` (made ready as `p`), leaving from `source` when set.
pub(super) async fn probe(
    h: &HttpCheck,
    p: &Plain,
    source: Option<IpAddr>,
) -> Result<String, ProbeError> {
    let s = connect_and_send(p, source).await?;
    // Most responses come whole in the first read: read into the stack
    // (not kept in the task: no await while it lives), and when the head
    // and any body wanted are there, judged from there, allocating
    // nothing. Otherwise the bytes go to the reader's buffer.
    let (first, reading) = loop {
        s.readable().await.map_err(|e| io_error(&e))?;
        let mut chunk = [0u8; READ_CHUNK];
        match s.try_read(&mut chunk) {
            Ok(n) => {
                let got = &chunk[..n];
                if let Some((k, head)) = parse_head(got)?
                    && !informational(head.status)
                {
                    match after_head(h, p, &head, &got[k..]) {
                        Next::Done(result) => return result,
                        Next::Body(reading) => break (Vec::new(), Some(reading)),
                    }
                }
                // Within the allocator's per-thread cache (glibc's ends at
                // 1032 bytes), unlike 2048: a head rarely needs more, and
                // more is added as it comes.
                let mut buf = Vec::with_capacity(READ_CHUNK);
                buf.extend_from_slice(got);
                break (buf, None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_error(&e)),
        }
    };
    let mut r = Reader {
        s,
        buf: first,
        pos: 0,
    };
    let mut reading = match reading {
        Some(reading) => reading,
        None => {
            let head = r.head().await?;
            match after_head(h, p, &head, &r.buf[r.pos..]) {
                Next::Done(result) => return result,
                Next::Body(reading) => {
                    // What came after the head is the reading's.
                    r.pos = r.buf.len();
                    reading
                }
            }
        }
    };
    r.body(&mut reading.body).await.map_err(body_read)?;
    reading.verdict(h)
}

/// What a final head and the bytes that came after it (`rest`) come to.
enum Next {
    /// The probe's result.
    Done(Result<String, ProbeError>),
    /// A body to read on (what `rest` held of it is in).
    Body(Box<Reading>),
}

/// A response whose body is being read for `expect.body`.
#[derive(Debug)]
struct Reading {
    status: u16,
    body: BodyReader,
}

impl Reading {
    /// The probe's result once the body is read.
    fn verdict(&self, h: &HttpCheck) -> Result<String, ProbeError> {
        let want = h.body.as_deref().unwrap_or_default();
        body_contains(self.status, &self.body.body, want)?;
        Ok(super::status_reason(self.status))
    }
}

/// Judges a final head (see [`Next`]): by its status, and when a body
/// text is expected, by the body as far as `rest` holds it.
fn after_head(h: &HttpCheck, p: &Plain, head: &Head, rest: &[u8]) -> Next {
    let framing = match judge(h, p, head) {
        Ok(f) => f,
        Err(e) => return Next::Done(Err(e)),
    };
    let Some(want) = &h.body else {
        return Next::Done(Ok(super::status_reason(head.status)));
    };
    if let Some(body) = BodyReader::whole(framing, rest) {
        return Next::Done(
            body_contains(head.status, body, want).map(|()| super::status_reason(head.status)),
        );
    }
    let mut reading = Reading {
        status: head.status,
        body: BodyReader::new(framing),
    };
    match reading.body.feed(rest) {
        Ok(true) => Next::Done(reading.verdict(h)),
        Ok(false) => Next::Body(Box::new(reading)),
        Err(e) => Next::Done(Err(body_read(e))),
    }
}

/// A body that could not be read, in the probe's words.
fn body_read(e: BodyError) -> ProbeError {
    ProbeError::BodyRead(e.to_string())
}

/// A 1xx head that another head follows (101 ends the exchange).
fn informational(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// The response's verdict from its head (the status), and how its body
/// is framed.
fn judge(h: &HttpCheck, p: &Plain, head: &Head) -> Result<Framing, ProbeError> {
    let status = head.status;
    // As hyper: no body, so no length to judge, after HEAD and for
    // 101/204/304; otherwise a bad length fails the probe.
    let framing = if p.head || matches!(status, 101 | 204 | 304) {
        Framing::Length(0)
    } else {
        head.framing.map_err(protocol)?
    };
    let accepted = match p.statuses {
        Some((a, b)) => (a..=b).contains(&status),
        None => h.status.iter().any(|&(a, b)| (a..=b).contains(&status)),
    };
    if !accepted {
        return Err(ProbeError::Status(status));
    }
    Ok(framing)
}

/// Connects to the target's address and sends the request. Often (on
/// loopback, say) the connection is up by the time connect(2) returns:
/// then the request goes out at once, a wakeup sooner than waiting for
/// the reactor to report the socket writable. Otherwise the send says
/// EAGAIN and the request follows once the connection is up, as before.
async fn connect_and_send(p: &Plain, source: Option<IpAddr>) -> Result<TcpStream, ProbeError> {
    let (sock, sent) = open(p, source)?;
    let mut s = TcpStream::from_std(sock.into()).map_err(failed)?;
    if sent == 0 {
        // As tokio's connect: writable, then the socket's error if any.
        s.writable().await.map_err(failed)?;
        if let Some(e) = s.take_error().map_err(failed)? {
            return Err(failed(e));
        }
    }
    s.write_all(&p.request[sent..])
        .await
        .map_err(|e| io_error(&e))?;
    Ok(s)
}

/// A non-blocking socket connecting (or connected) to the target, and how
/// much of the request it took at once (0 while the handshake is under
/// way).
fn open(p: &Plain, source: Option<IpAddr>) -> Result<(Socket, usize), ProbeError> {
    let domain = if p.to.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    // Non-blocking and close-on-exec from the start, as tokio's TcpSocket.
    let sock =
        Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP)).map_err(failed)?;
    if source.is_some() {
        sock.bind(&local_for(&p.to, source).into())
            .map_err(failed)?;
    }
    if let Err(e) = sock.connect(&p.to.into())
        && e.raw_os_error() != Some(libc::EINPROGRESS)
    {
        return Err(failed(e));
    }
    // While the handshake is under way this is EAGAIN; an error other
    // than that is the connection's (refused, unreachable), which the
    // send takes from the socket: it is the connect's failure.
    let sent = match sock.send_with_flags(&p.request, libc::MSG_NOSIGNAL) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(failed(e)),
    };
    Ok((sock, sent))
}

/// A connect(2) or socket failure, in reqwest's words.
fn failed(e: std::io::Error) -> ProbeError {
    ProbeError::Http {
        message: format!("connect failed: {e}"),
        local: io_is_local(&e),
    }
}

/// One probe of a plain-http check driven by readiness instead of a
/// task: the scheduler's engine calls [`Exchange::advance`] whenever the
/// socket may have become writable or readable (edge triggered: each call
/// goes on until the socket would block). The same steps, errors and
/// bounds as [`probe`].
#[derive(Debug)]
pub struct Exchange {
    sock: Socket,
    /// Bytes of the request sent so far, of `len`.
    sent: usize,
    len: usize,
    /// The response so far, when its first read did not hold a whole
    /// final head (empty otherwise: nothing is allocated then).
    buf: Vec<u8>,
    /// After the final head, when a body text is expected and the body
    /// did not come with the head.
    reading: Option<Box<Reading>>,
}

impl Exchange {
    /// Connects and sends what the socket takes at once.
    pub(super) fn open(p: &Plain, source: Option<IpAddr>) -> Result<Exchange, ProbeError> {
        let (sock, sent) = open(p, source)?;
        Ok(Exchange {
            sock,
            sent,
            len: p.request.len(),
            buf: Vec::new(),
            reading: None,
        })
    }

    /// Part of the request waits for the socket to become writable.
    pub fn sending(&self) -> bool {
        self.sent < self.len
    }

    /// The socket, to wait on.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.sock.as_raw_fd()
    }

    /// Sends the rest of the request and reads what came, until the
    /// probe's result (the status's reason on success), the socket would
    /// block, or [`READS_PER_CALL`] reads (a backend streaming without
    /// end must not hold up every other probe, nor its own timeout).
    pub(super) fn advance(&mut self, h: &HttpCheck, p: &Plain) -> Progress {
        use std::io::{ErrorKind, Read};
        if self.sent < p.request.len() {
            if self.sent == 0 {
                // The handshake's outcome (refused, unreachable) first.
                match self.sock.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => return Progress::Done(Err(failed(e))),
                }
            }
            match self
                .sock
                .send_with_flags(&p.request[self.sent..], libc::MSG_NOSIGNAL)
            {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Blocked,
                Err(e) if self.sent == 0 => return Progress::Done(Err(failed(e))),
                Err(e) => return Progress::Done(Err(io_error(&e))),
            }
            if self.sent < p.request.len() {
                return Progress::Blocked;
            }
        }
        for _ in 0..READS_PER_CALL {
            let mut chunk = [0u8; READ_CHUNK];
            let read = (&self.sock).read(&mut chunk);
            if let Some(reading) = &mut self.reading {
                // The body, as `Reader::body` reads it.
                let fed = match read {
                    Ok(0) => reading.body.end().map(|()| true),
                    Ok(n) => reading.body.feed(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Blocked,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => Err(BodyError::Io(e)),
                };
                match fed {
                    Ok(true) => return Progress::Done(reading.verdict(h)),
                    Ok(false) => continue,
                    Err(e) => return Progress::Done(Err(body_read(e))),
                }
            }
            let n = match read {
                Ok(0) => {
                    return Progress::Done(Err(protocol(
                        "connection closed before message completed",
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Blocked,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Done(Err(io_error(&e))),
            };
            let got = &chunk[..n];
            if self.buf.is_empty() {
                // Most responses come whole in the first read: judged from
                // the stack, allocating nothing.
                match parse_head(got) {
                    Err(e) => return Progress::Done(Err(e)),
                    Ok(Some((k, head))) if !informational(head.status) => {
                        match after_head(h, p, &head, &got[k..]) {
                            Next::Done(result) => return Progress::Done(result),
                            Next::Body(reading) => {
                                self.reading = Some(reading);
                                continue;
                            }
                        }
                    }
                    Ok(_) => {}
                }
            }
            self.buf.extend_from_slice(got);
            // Final heads after any informational ones, as `Reader::head`.
            let mut pos = 0;
            while let Some((k, head)) = match parse_head(&self.buf[pos..]) {
                Ok(found) => found,
                Err(e) => return Progress::Done(Err(e)),
            } {
                pos += k;
                if !informational(head.status) {
                    match after_head(h, p, &head, &self.buf[pos..]) {
                        Next::Done(result) => return Progress::Done(result),
                        Next::Body(reading) => {
                            self.reading = Some(reading);
                            self.buf = Vec::new();
                            break;
                        }
                    }
                }
            }
            if self.reading.is_none() {
                self.buf.drain(..pos);
                if self.buf.len() >= HEAD_LIMIT {
                    return Progress::Done(Err(protocol("message head is too large")));
                }
            }
        }
        Progress::Yield
    }
}

/// What a call of [`Exchange::advance`] came to.
#[derive(Debug)]
pub enum Progress {
    /// The probe's result.
    Done(Result<String, ProbeError>),
    /// Nothing more until the socket is ready again.
    Blocked,
    /// The socket may have more, and others have their turn first: ask
    /// again (an edge-triggered waiter must re-arm, as no new edge may
    /// come).
    Yield,
}

/// The request: headers as reqwest sends them (the check's own replace
/// the defaults of the same name; `Connection: close` always).
fn request(h: &HttpCheck, t: &Target<'_>) -> Vec<u8> {
    let has = |name: &str| h.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut out = Vec::with_capacity(256);
    let mut line = |k: &str, v: &str| {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    line("connection", "close");
    for (k, v) in &h.headers {
        line(k, v);
    }
    if let Some(host) = &h.host {
        line("host", host);
    } else if !has("host") {
        line("host", &t.authority);
    }
    if !has("user-agent") {
        line("user-agent", USER_AGENT);
    }
    if !has("accept") {
        line("accept", "*/*");
    }
    let mut req = Vec::with_capacity(out.len() + 64);
    req.extend_from_slice(h.method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(t.path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\n");
    req.extend_from_slice(&out);
    req.extend_from_slice(b"\r\n");
    req
}

fn io_error(e: &std::io::Error) -> ProbeError {
    ProbeError::Http {
        message: e.to_string(),
        local: io_is_local(e),
    }
}

fn protocol(message: &str) -> ProbeError {
    ProbeError::Http {
        message: message.into(),
        local: false,
    }
}

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

struct Head {
    status: u16,
    /// The framing, or why the headers give none.
    framing: Result<Framing, &'static str>,
}

/// A connection with what was read from it and not yet used.
struct Reader {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

/// Why a body could not be read (hyper's words).
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("end of file before message length reached")]
    Incomplete,
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("invalid chunk body")]
    ChunkBody,
    #[error("chunk extensions over limit")]
    Extensions,
}

impl Reader {
    /// Reads more into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.pos > 0 {
            // What was used goes (all of it, or the 1xx heads before a
            // partial head): the buffer holds at most one head.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        self.s.read_buf(&mut self.buf).await
    }

    /// The response head, skipping informational (1xx) ones.
    async fn head(&mut self) -> Result<Head, ProbeError> {
        loop {
            if let Some((n, head)) = parse_head(&self.buf[self.pos..])? {
                self.pos += n;
                if informational(head.status) {
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() - self.pos >= HEAD_LIMIT {
                return Err(protocol("message head is too large"));
            }
            if self.fill().await.map_err(|e| io_error(&e))? == 0 {
                return Err(protocol("connection closed before message completed"));
            }
        }
    }

    /// Reads the rest of the body into `b` (from what is buffered, then
    /// from the stream).
    async fn body(&mut self, b: &mut BodyReader) -> Result<(), BodyError> {
        loop {
            let done = b.feed(&self.buf[self.pos..])?;
            self.pos = self.buf.len();
            if done {
                return Ok(());
            }
            if self.fill().await? == 0 {
                return b.end();
            }
        }
    }
}

/// A body read as its bytes come (pushed, not pulled): at most
/// [`BODY_LIMIT`] bytes of it, by its framing. The task's reader and the
/// engine's [`Exchange`] both feed one, so they read bodies alike however
/// the bytes are split across reads.
#[derive(Debug)]
struct BodyReader {
    body: Vec<u8>,
    state: BodyState,
    /// A line read in part, or whole (without its end) once
    /// [`BodyReader::line`] says so (chunked framing).
    line: Vec<u8>,
    /// Bytes of the size lines so far that are not digits (see
    /// [`EXTENSIONS_LIMIT`]).
    extensions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// This many more bytes (the length, or the limit).
    Length(usize),
    /// Up to the limit or the end of the stream.
    Close,
    /// A chunk-size line.
    Size,
    /// This many more bytes of a chunk; then its line end when the chunk
    /// is taken whole (`whole`), else the limit is reached.
    Data { left: usize, whole: bool },
    /// The (empty) line that ends a chunk's data.
    DataEnd,
    /// The body is read (the rest of the stream is not looked at).
    Done,
}

impl BodyReader {
    fn new(framing: Framing) -> BodyReader {
        let (state, room) = match framing {
            Framing::Length(n) => match usize::try_from(n).unwrap_or(usize::MAX).min(BODY_LIMIT) {
                0 => (BodyState::Done, 0),
                // Its room at once, not grown by doubling to twice that.
                want => (BodyState::Length(want), want),
            },
            Framing::Close => (BodyState::Close, 0),
            Framing::Chunked => (BodyState::Size, 0),
        };
        BodyReader {
            body: Vec::with_capacity(room),
            state,
            line: Vec::new(),
            extensions: 0,
        }
    }

    /// The body, when `data` (the bytes after the head) holds all of it
    /// that is read: a length within them. Judged where it lies, without
    /// a copy.
    fn whole(framing: Framing, data: &[u8]) -> Option<&[u8]> {
        match framing {
            Framing::Length(n) => {
                let want = usize::try_from(n).unwrap_or(usize::MAX).min(BODY_LIMIT);
                data.get(..want)
            }
            _ => None,
        }
    }

    /// Takes the next bytes of the stream; true once the body is read.
    fn feed(&mut self, mut data: &[u8]) -> Result<bool, BodyError> {
        loop {
            match self.state {
                BodyState::Done => return Ok(true),
                _ if data.is_empty() => return Ok(false),
                BodyState::Length(left) => {
                    let k = left.min(data.len());
                    self.body.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    self.state = match left - k {
                        0 => BodyState::Done,
                        left => BodyState::Length(left),
                    };
                }
                BodyState::Close => {
                    let k = (BODY_LIMIT - self.body.len()).min(data.len());
                    self.body.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if self.body.len() >= BODY_LIMIT {
                        self.state = BodyState::Done;
                    }
                }
                BodyState::Size => {
                    if !self.line(&mut data)? {
                        continue;
                    }
                    let (size, digits) = chunk_size(&self.line)?;
                    self.extensions += self.line.len() - digits;
                    self.line.clear();
                    if self.extensions > EXTENSIONS_LIMIT {
                        return Err(BodyError::Extensions);
                    }
                    self.state = if size == 0 {
                        // The last chunk (trailers are not read).
                        BodyState::Done
                    } else {
                        let room = BODY_LIMIT - self.body.len();
                        let want = usize::try_from(size).unwrap_or(usize::MAX).min(room);
                        BodyState::Data {
                            left: want,
                            whole: want as u64 == size,
                        }
                    };
                }
                BodyState::Data { left, whole } => {
                    let k = left.min(data.len());
                    self.body.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    self.state = match (left - k, whole) {
                        (0, true) => BodyState::DataEnd,
                        (0, false) => BodyState::Done,
                        (left, _) => BodyState::Data { left, whole },
                    };
                }
                BodyState::DataEnd => {
                    if !self.line(&mut data)? {
                        continue;
                    }
                    if !self.line.is_empty() {
                        return Err(BodyError::ChunkBody);
                    }
                    self.state = if self.body.len() < BODY_LIMIT {
                        BodyState::Size
                    } else {
                        BodyState::Done
                    };
                }
            }
        }
    }

    /// The stream ended: whether the body was whole.
    fn end(&mut self) -> Result<(), BodyError> {
        match self.state {
            BodyState::Done | BodyState::Close => {
                self.state = BodyState::Done;
                Ok(())
            }
            _ => Err(BodyError::Incomplete),
        }
    }

    /// Reads a CRLF- (or LF-) terminated line from `data` (what it takes
    /// is cut from the front): true when it is whole, in `self.line`
    /// without its end (the caller clears it); false when `data` ends first (the part kept for
    /// the next bytes). A line past [`LINE_LIMIT`] fails however it is
    /// split.
    fn line(&mut self, data: &mut &[u8]) -> Result<bool, BodyError> {
        let (part, found) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], true),
            None => (*data, false),
        };
        // Its CR may still come: one byte more before the end is known.
        if self.line.len() + part.len() > LINE_LIMIT + 1 {
            return Err(BodyError::ChunkSize);
        }
        self.line.extend_from_slice(part);
        *data = &data[part.len() + usize::from(found)..];
        if !found {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > LINE_LIMIT {
            return Err(BodyError::ChunkSize);
        }
        Ok(true)
    }
}

/// A chunk-size line's size (extensions ignored), and how many of the
/// line's bytes are its digits.
fn chunk_size(line: &[u8]) -> Result<(u64, usize), BodyError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(BodyError::ChunkSize);
    }
    let text = std::str::from_utf8(digits).map_err(|_| BodyError::ChunkSize)?;
    let size = u64::from_str_radix(text, 16).map_err(|_| BodyError::ChunkSize)?;
    Ok((size, digits.len()))
}

/// A complete head at the start of `buf` and its length; None if more is
/// needed. (Not part of the async reader: the header array would make
/// every probe task larger by 3 KiB.)
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, ProbeError> {
    // Left uninitialized (3.2 KiB a probe not to write): the parser
    // fills what it returns.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    match parsed {
        Ok(httparse::Status::Complete(n)) => {
            let status = resp.code.unwrap_or(0);
            if !(100..=999).contains(&status) {
                return Err(protocol("invalid HTTP status-code parsed"));
            }
            let framing = framing(resp.headers);
            Ok(Some((n, Head { status, framing })))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(protocol(parse_error(e))),
    }
}

/// The body's framing from the headers (RFC 9112 6.3).
fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, &'static str> {
    // A Transfer-Encoding decides, and Content-Length is not looked at:
    // the last coding of the last one, chunked or else read to close.
    if let Some(te) = headers
        .iter()
        .rfind(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        let last = te.value.rsplit(|&b| b == b',').next().unwrap_or(&[]);
        return Ok(if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    // hyper's reading: lengths (a list is several) must all be equal.
    let mut length: Option<u64> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for v in h.value.split(|&b| b == b',') {
            let v = v.trim_ascii();
            let n = (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or("invalid content-length parsed")?;
            if length.is_some_and(|l| l != n) {
                return Err("invalid content-length parsed");
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::Status => "invalid HTTP status-code parsed",
        httparse::Error::Version => "invalid HTTP version parsed",
        httparse::Error::TooManyHeaders => "message head is too large",
        _ => "invalid HTTP header parsed",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Clients, Prepared, attempt};
    use super::*;
    use crate::config::CheckKind;
    use crate::health::Outcome;
    use std::time::Duration;
    use tokio::net::TcpListener;

    use super::super::tests::http_check as check;

    /// A loopback server for one connection: reads the request head, then
    /// writes `parts` (pausing `gap` between them) and closes, unless
    /// `hold`. Its task returns the request head.
    async fn server(
        parts: Vec<Vec<u8>>,
        gap: Duration,
        hold: bool,
    ) -> (SocketAddr, tokio::task::JoinHandle<(Vec<u8>, SocketAddr)>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, from) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            for p in parts {
                if s.write_all(&p).await.is_err() {
                    break;
                }
                tokio::time::sleep(gap).await;
            }
            if hold {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            (head, from)
        });
        (at, task)
    }

    async fn probe_with(h: HttpCheck, timeout: Duration, source: Option<IpAddr>) -> Outcome {
        let kind = CheckKind::Http(h);
        let prepared = Prepared::new(&kind);
        assert!(prepared.plain.is_some(), "not taken by the minimal client");
        let clients = Clients::new(source).unwrap();
        attempt(
            &kind,
            &prepared,
            timeout,
            &clients,
            &mut clients.timers.timer(),
        )
        .await
    }

    /// Serves `response` once and probes it with `h` (its URL replaced).
    /// It is probed a second time as the engine does it (an
    /// [`Exchange`]), which must send the same request and come to the
    /// same verdict.
    async fn run(h: HttpCheck, response: &[u8]) -> (Outcome, String) {
        let mut served = Vec::new();
        let mut outcomes = Vec::new();
        for way in 0..2 {
            let (at, task) = server(vec![response.to_vec()], Duration::ZERO, false).await;
            outcomes.push(one_way(way, &h, at).await);
            let head = String::from_utf8_lossy(&task.await.unwrap().0).into_owned();
            served.push(head.replace(&at.to_string(), "ADDR"));
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "the task's and the engine's verdicts"
        );
        assert_eq!(served[0], served[1], "the task's and the engine's requests");
        let (ok, reason) = outcomes.swap_remove(0);
        let o = Outcome {
            ok,
            latency: Duration::ZERO,
            local: false,
            reason,
        };
        (o, served.swap_remove(0))
    }

    /// Serves `parts` (`gap` apart, then holding the connection) to `h`
    /// (its URL replaced) probed by its task and by an [`Exchange`]:
    /// both verdicts, which must agree.
    async fn in_parts(h: &HttpCheck, parts: &[Vec<u8>], gap: Duration) -> (bool, String) {
        let mut got = Vec::new();
        for way in 0..2 {
            let (at, _task) = server(parts.to_vec(), gap, true).await;
            got.push(one_way(way, h, at).await);
        }
        assert_eq!(got[0], got[1], "the task's and the engine's verdicts");
        got.swap_remove(0)
    }

    /// `h` (its URL's `ADDR` replaced by `at`) probed by its task (`way`
    /// 0) or by an [`Exchange`] (1): ok and the reason.
    async fn one_way(way: usize, h: &HttpCheck, at: SocketAddr) -> (bool, String) {
        let mut h = h.clone();
        h.url = h.url.replace("ADDR", &at.to_string());
        if way == 0 {
            let o = probe_with(h, Duration::from_secs(5), None).await;
            (o.ok, o.reason)
        } else {
            exchange(&h, Duration::from_secs(5)).await
        }
    }

    /// Probes `h` with an [`Exchange`] driven as the engine drives it: on
    /// a thread, its socket edge-triggered in an epoll set, advanced only
    /// when an event comes and re-armed after a yield. (A probe that
    /// waits for an edge that never comes times out here, as it would
    /// in the engine.)
    async fn exchange(h: &HttpCheck, timeout: Duration) -> (bool, String) {
        let h = h.clone();
        tokio::task::spawn_blocking(move || exchange_on_epoll(&h, timeout))
            .await
            .unwrap()
    }

    fn exchange_on_epoll(h: &HttpCheck, timeout: Duration) -> (bool, String) {
        use std::os::fd::{FromRawFd, OwnedFd};
        let p = Plain::new(h).expect("not taken by the minimal client");
        let deadline = std::time::Instant::now() + timeout;
        // SAFETY: plain calls on descriptors this function owns.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epoll >= 0);
        let _epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let arm = |x: &Exchange, op| {
            let mut events = libc::EPOLLIN | libc::EPOLLET;
            if x.sending() {
                events |= libc::EPOLLOUT;
            }
            let mut ev = libc::epoll_event {
                events: events as u32,
                u64: 0,
            };
            assert_eq!(unsafe { libc::epoll_ctl(epoll, op, x.fd(), &mut ev) }, 0);
        };
        let result = (|| {
            let mut x = Exchange::open(&p, None)?;
            arm(&x, libc::EPOLL_CTL_ADD);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
                let n =
                    unsafe { libc::epoll_wait(epoll, ev.as_mut_ptr(), 1, left.as_millis() as i32) };
                if n == 0 {
                    return Ok(None);
                }
                match x.advance(h, &p) {
                    Progress::Done(r) => return r.map(Some),
                    Progress::Blocked => {}
                    Progress::Yield => arm(&x, libc::EPOLL_CTL_MOD),
                }
            }
        })();
        match result {
            Ok(Some(reason)) => (true, reason),
            Ok(None) => (false, "timeout".into()),
            Err(e) => (false, e.to_string()),
        }
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nall is well\n";

    #[tokio::test]
    async fn status_and_request() {
        let mut h = check("http://ADDR/hc/1?x=y#frag");
        h.headers = vec![
            ("X-Probe".into(), "1".into()),
            ("User-Agent".into(), "me".into()),
        ];
        let (o, head) = run(h, OK).await;
        assert!(o.ok && o.reason == "status 200", "{o:?}");
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "GET /hc/1?x=y HTTP/1.1");
        assert!(lines.contains(&"connection: close"), "{head}");
        assert!(lines.contains(&"X-Probe: 1"), "{head}");
        assert!(lines.contains(&"User-Agent: me"), "{head}");
        assert!(!head.contains("veer-health"), "{head}");
        assert!(lines.contains(&"host: ADDR"), "{head}");

        let mut h = check("http://ADDR");
        h.host = Some("example.org".into());
        h.method = "HEAD".into();
        h.body = Some("x".into());
        let (o, head) = run(h, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n").await;
        assert!(head.starts_with("HEAD / HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("host: example.org\r\n"), "{head}");
        assert!(head.contains("user-agent: veer-health/"), "{head}");
        // No body after HEAD: the expectation fails at once.
        assert_eq!(o.reason, "status 200, body does not contain `x`");

        let (o, _) = run(check("http://ADDR/"), b"HTTP/1.1 503 Busy\r\n\r\n").await;
        assert!(!o.ok && !o.local && o.reason == "status 503", "{o:?}");
        // Informational responses are skipped.
        let (o, _) = run(
            check("http://ADDR/"),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        )
        .await;
        assert_eq!(o.reason, "status 204");
    }

    #[tokio::test]
    async fn body_expectations() {
        let cases: [(&str, &[u8], &str); 5] = [
            ("is well", OK, "status 200"),
            ("is ill", OK, "status 200, body does not contain `is ill`"),
            // Read to close without a length.
            ("well", b"HTTP/1.0 200 OK\r\n\r\nall is well", "status 200"),
            // Shorter than its length.
            (
                "well",
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nwell",
                "reading body: end of file before message length reached",
            ),
            (
                "well",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nwell",
                "invalid content-length parsed",
            ),
        ];
        for (want, response, reason) in cases {
            let (o, _) = run(check_with_body("http://ADDR/", want), response).await;
            assert_eq!(o.reason, reason);
        }
    }

    /// A body longer than a read, sent with its head on a connection held
    /// open: read on until it is whole (no edge comes for what the
    /// socket already holds).
    #[tokio::test]
    async fn a_body_longer_than_a_read() {
        let body = [vec![b'a'; 3000], b"is ok!".to_vec()].concat();
        let mut length = b"HTTP/1.1 200 OK\r\nContent-Length: 3006\r\n\r\n".to_vec();
        length.extend_from_slice(&body);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        chunked.extend_from_slice(b"bbe\r\n");
        chunked.extend_from_slice(&body);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        for r in [length, chunked] {
            let h = check_with_body("http://ADDR/", "is ok");
            let got = in_parts(&h, &[r], Duration::ZERO).await;
            assert_eq!(got, (true, "status 200".to_string()));
        }
    }

    /// A connection reset inside the body: the same reason both ways.
    #[tokio::test]
    async fn a_reset_inside_the_body() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = l.accept().unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
                std::thread::sleep(Duration::from_millis(50));
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        });
        let h = check_with_body("http://ADDR/", "x");
        let task = one_way(0, &h, at).await;
        let engine = one_way(1, &h, at).await;
        assert_eq!(task, engine);
        assert!(
            task.1.starts_with("reading body: Connection reset by peer"),
            "{task:?}"
        );
    }

    #[tokio::test]
    async fn chunked_bodies() {
        let mut h = check("http://ADDR/");
        h.body = Some("is well".into());
        // The text spans two chunks, one with an extension.
        let (o, _) = run(
            h.clone(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nall i\r\n6;x=y\r\ns well\r\n0\r\n\r\n",
        )
        .await;
        assert!(o.ok, "{o:?}");
        // Delivered a few bytes at a time.
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nb\r\nall is well\r\n0\r\n\r\n";
        let parts: Vec<_> = resp.chunks(3).map(<[u8]>::to_vec).collect();
        let got = in_parts(&h, &parts, Duration::from_millis(1)).await;
        assert_eq!(got, (true, "status 200".to_string()));
        for bad in [
            &b"zz\r\nall\r\n0\r\n\r\n"[..],
            b"ffffffffffffffffff\r\n",
            b"3\r\nallXX",
        ] {
            let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            resp.extend_from_slice(bad);
            let (o, _) = run(check_with_body("http://ADDR/", "well"), &resp).await;
            assert!(!o.ok && o.reason.starts_with("reading body: "), "{o:?}");
        }
    }

    /// A head in pieces, after an informational one split across reads:
    /// the exchange keeps what came until the final head is whole.
    #[tokio::test]
    async fn a_head_in_pieces() {
        let parts: Vec<Vec<u8>> = [
            &b"HTTP/1.1 100 Continue\r\n"[..],
            b"\r\nHTTP/1.1 2",
            b"03 OK\r\nContent-Len",
            b"gth: 0\r\n\r\n",
        ]
        .iter()
        .map(|p| p.to_vec())
        .collect();
        let mut h = check("http://ADDR/");
        h.status = vec![(200, 204)];
        let got = in_parts(&h, &parts, Duration::from_millis(5)).await;
        assert_eq!(got, (true, "status 203".to_string()));
    }

    fn check_with_body(url: &str, body: &str) -> HttpCheck {
        let mut h = check(url);
        h.body = Some(body.into());
        h
    }

    /// A body reads the same however its bytes are split across reads:
    /// whole, byte by byte, and at every single split point.
    #[test]
    fn a_body_reads_alike_however_it_is_split() {
        let long_line = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(LINE_LIMIT));
        // Lines of LINE_LIMIT bytes, their ends not counted: taken.
        let at_limit =
            |end: &str| format!("1;{}{end}x\r\n0\r\n\r\n", "e".repeat(LINE_LIMIT - 2)).into_bytes();
        let past_limit = format!("1;{}\nx\r\n0\r\n\r\n", "e".repeat(LINE_LIMIT - 1));
        let cases: Vec<(Framing, Vec<u8>)> = vec![
            (Framing::Length(11), b"all is well and more".to_vec()),
            (Framing::Length(11), b"all is".to_vec()),
            (Framing::Length(0), b"x".to_vec()),
            (Framing::Close, b"all is well".to_vec()),
            (Framing::Close, Vec::new()),
            (
                Framing::Chunked,
                b"5\r\nall i\r\n6;x=y\r\ns well\r\n0\r\n\r\n".to_vec(),
            ),
            (Framing::Chunked, b"5\nall i\n6\ns well\n0\n".to_vec()),
            (Framing::Chunked, b"5\r\nall iXX\r\n".to_vec()),
            (Framing::Chunked, b"zz\r\n".to_vec()),
            (Framing::Chunked, b"5\r\nall".to_vec()),
            (Framing::Chunked, b"5\r\nall i".to_vec()),
            (Framing::Chunked, b"5\r\nall i\r\n".to_vec()),
            (Framing::Chunked, long_line.into_bytes()),
            (Framing::Chunked, at_limit("\r\n")),
            (Framing::Chunked, at_limit("\n")),
            (Framing::Chunked, past_limit.into_bytes()),
            (Framing::Chunked, {
                // Past the limit inside a chunk: the rest is not read.
                let mut b = format!("{:x}\r\n", BODY_LIMIT + 5).into_bytes();
                b.extend(std::iter::repeat_n(b'a', BODY_LIMIT));
                b
            }),
        ];
        let read = |framing: Framing, pieces: &[&[u8]]| {
            let mut b = BodyReader::new(framing);
            for p in pieces {
                match b.feed(p) {
                    Ok(true) => return Ok(b.body),
                    Ok(false) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            b.end().map_err(|e| e.to_string())?;
            Ok(b.body)
        };
        for (framing, data) in &cases {
            let whole = read(*framing, &[data]);
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(read(*framing, &bytes), whole, "{framing:?} byte by byte");
            for at in 0..=data.len() {
                let (a, b) = data.split_at(at);
                assert_eq!(read(*framing, &[a, b]), whole, "{framing:?} split at {at}");
            }
            if let Some(body) = BodyReader::whole(*framing, data) {
                assert_eq!(Ok(body.to_vec()), whole, "{framing:?} judged in place");
            }
        }
        // What the cases come to.
        let got: Vec<_> = cases.iter().map(|(f, d)| read(*f, &[d])).collect();
        assert_eq!(got[0], Ok(b"all is well".to_vec()));
        assert_eq!(
            got[1],
            Err("end of file before message length reached".into())
        );
        assert_eq!(got[2], Ok(Vec::new()));
        assert_eq!(got[3], Ok(b"all is well".to_vec()));
        assert_eq!(got[5], Ok(b"all is well".to_vec()));
        assert_eq!(got[6], Ok(b"all is well".to_vec()));
        assert_eq!(got[7], Err("invalid chunk body".into()));
        assert_eq!(got[8], Err("invalid chunk size line".into()));
        for g in &got[9..=11] {
            assert_eq!(*g, Err("end of file before message length reached".into()));
        }
        assert_eq!(got[12], Err("invalid chunk size line".into()));
        assert_eq!(got[13], Ok(b"x".to_vec()));
        assert_eq!(got[14], Ok(b"x".to_vec()));
        assert_eq!(got[15], Err("invalid chunk size line".into()));
        assert_eq!(got[16].as_ref().map(Vec::len), Ok(BODY_LIMIT));
    }

    /// Endless heads, endless bodies and silence are all bounded.
    #[tokio::test]
    async fn hostile_servers() {
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(HEAD_LIMIT));
        let (o, _) = run(check("http://ADDR/"), big.as_bytes()).await;
        assert_eq!(o.reason, "message head is too large");
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        let (o, _) = run(check("http://ADDR/"), many.as_bytes()).await;
        assert_eq!(o.reason, "message head is too large");
        let (o, _) = run(check("http://ADDR/"), b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert_eq!(o.reason, "invalid HTTP version parsed");
        let (o, _) = run(check("http://ADDR/"), b"HTTP/1.1 abc OK\r\n\r\n").await;
        assert_eq!(o.reason, "invalid HTTP status-code parsed");
        let (o, _) = run(check("http://ADDR/"), b"HTTP/1.1 200 OK\r\nX").await;
        assert_eq!(o.reason, "connection closed before message completed");
        // A body that never ends: only BODY_LIMIT bytes are read.
        let no_b = (false, "status 200, body does not contain `b`".to_string());
        let mut parts = vec![b"HTTP/1.1 200 OK\r\n\r\n".to_vec()];
        parts.extend(std::iter::repeat_n(vec![b'a'; 16 * 1024], 64));
        let h = check_with_body("http://ADDR/", "b");
        assert_eq!(in_parts(&h, &parts, Duration::ZERO).await, no_b);
        // A huge chunk, and a huge length: likewise.
        for head in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        ] {
            parts[0] = head.to_vec();
            assert_eq!(in_parts(&h, &parts, Duration::ZERO).await, no_b);
        }
        // The text in the limit's last bytes, the connection held open:
        // found without waiting for more.
        let mut body = vec![b'a'; BODY_LIMIT];
        body[BODY_LIMIT - 1] = b'b';
        let parts = vec![b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), body];
        let got = in_parts(&h, &parts, Duration::ZERO).await;
        assert_eq!(got, (true, "status 200".to_string()));
        // A chunk that fills the limit exactly, its line end, and then
        // nothing: decided at once, not at the timeout.
        let mut chunk = format!("{BODY_LIMIT:x}\r\n").into_bytes();
        chunk.extend(std::iter::repeat_n(b'a', BODY_LIMIT));
        chunk.extend_from_slice(b"\r\n");
        let parts = vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            chunk,
        ];
        assert_eq!(in_parts(&h, &parts, Duration::ZERO).await, no_b);
        // Chunks of a byte behind kilobytes of extensions: stopped once
        // the extensions pass their limit, long before the body's.
        let mut flood = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..(EXTENSIONS_LIMIT / LINE_LIMIT + 1) {
            flood
                .extend_from_slice(format!("1;{}\r\na\r\n", "e".repeat(LINE_LIMIT - 2)).as_bytes());
        }
        let got = in_parts(&h, &[flood], Duration::ZERO).await;
        assert_eq!(
            got,
            (
                false,
                "reading body: chunk extensions over limit".to_string()
            )
        );
        // A head that trickles in, and a server that never answers: the
        // check's timeout.
        let parts = b"HTTP/1.1 200 OK\r\n".iter().map(|&b| vec![b]).collect();
        for (parts, gap) in [
            (parts, Duration::from_millis(50)),
            (Vec::new(), Duration::ZERO),
        ] {
            let (at, _task) = server(parts, gap, true).await;
            let o = probe_with(
                check(&format!("http://{at}/")),
                Duration::from_millis(300),
                None,
            )
            .await;
            assert!(!o.ok && o.reason == "timeout after 300ms", "{o:?}");
            // The probes' timer service keeps the timeout: never early.
            assert!(o.latency >= Duration::from_millis(300), "{o:?}");
        }
    }

    #[tokio::test]
    async fn connect_failures_and_source() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        drop(l);
        let o = probe_with(
            check(&format!("http://{at}/")),
            Duration::from_secs(2),
            None,
        )
        .await;
        assert!(!o.ok && !o.local, "{o:?}");
        assert!(
            o.reason.starts_with("connect failed: Connection refused"),
            "{o:?}"
        );
        // From the configured source.
        let (at, task) = server(vec![OK.to_vec()], Duration::ZERO, false).await;
        let from: IpAddr = "127.0.0.2".parse().unwrap();
        let o = probe_with(
            check(&format!("http://{at}/")),
            Duration::from_secs(2),
            Some(from),
        )
        .await;
        assert!(o.ok, "{o:?}");
        assert_eq!(task.await.unwrap().1.ip(), from);
        // A name is reqwest's (it races IPv6 and IPv4).
        assert!(Target::parse("http://localhost:8080/").is_none());
    }

    #[test]
    fn urls_taken_as_they_are() {
        let t = Target::parse("http://10.0.0.2:8080/a/b?c=d#e").unwrap();
        assert_eq!((t.host, t.port, t.path), ("10.0.0.2", 8080, "/a/b?c=d"));
        assert_eq!(t.authority, "10.0.0.2:8080");
        let t = Target::parse("http://[::1]:80").unwrap();
        assert_eq!(
            (t.ip, t.authority.as_str(), t.path),
            ("::1".parse().unwrap(), "[::1]", "/")
        );
        let t = Target::parse("http://10.0.0.1/.well-known/x").unwrap();
        assert_eq!(t.ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        for url in [
            "https://example.com/",
            "http://user@example.com/",
            "http://example.com/a/../b",
            "http://example.com/a/%2E/b",
            "http://example.com/a b",
            "http://example.com/ä",
            "http://example.com/{x}",
            "http://example.com/?q='x'",
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://example.com:99999/",
            "http://example.com:/",
            "http://[::1/",
            "http://ex_ample.com/",
            "http://example.com?q",
            "http:///x",
        ] {
            assert_eq!(Target::parse(url), None, "{url}");
        }
        // Headers reqwest refuses go to reqwest, which says why.
        let mut h = check("http://127.0.0.1/");
        h.headers = vec![("X".into(), "a\r\nInjected: 1".into())];
        assert!(Plain::new(&h).is_none());
        h.headers.clear();
        h.proxy = Some("http://127.0.0.1:3128".into());
        assert!(Plain::new(&h).is_none());
    }

    // ---- review ----
    /// Serves `response` once; probes with reqwest (old) or http1 (new).
    async fn both(h: &HttpCheck, response: &[u8]) -> (String, String, String, String) {
        let mut out = Vec::new();
        for plain in [false, true] {
            let (at, task) = server(vec![response.to_vec()], Duration::ZERO, false).await;
            let mut h = h.clone();
            h.url = h.url.replace("ADDR", &at.to_string());
            let kind = CheckKind::Http(h);
            let prepared = if plain {
                Prepared::new(&kind)
            } else {
                Prepared::default()
            };
            assert_eq!(prepared.plain.is_some(), plain);
            let clients = Clients::new(None).unwrap();
            let o = attempt(
                &kind,
                &prepared,
                Duration::from_secs(3),
                &clients,
                &mut clients.timers.timer(),
            )
            .await;
            let head = String::from_utf8_lossy(&task.await.unwrap().0).into_owned();
            out.push((format!("{} {}", o.ok, o.reason), head));
        }
        let (n, o) = (out.pop().unwrap(), out.pop().unwrap());
        (o.0, n.0, o.1, n.1)
    }

    #[tokio::test]
    async fn review_differential() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(100 * 1024)
        );
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok".to_vec()),
            ("GET", "", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok".to_vec()),
            ("GET", "", b"HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n".to_vec()),
            ("HEAD", "", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec()),
            ("GET", "ok", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec()),
            ("GET", "", big.into_bytes()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n".to_vec()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000002\r\nok\r\n0\r\n\r\n".to_vec()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n".to_vec()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n".to_vec()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXY0\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n".to_vec()),
            ("GET", "", b"HTTP/1.1 200\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 200 \xff\xfe\r\nX: \xff\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 200 OK\r\nX : y\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 200 OK\r\n folded\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec()),
            ("GET", "ok", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nok".to_vec()),
            ("GET", "", b"HTTP/1.1 101 Switching\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 1000 OK\r\n\r\n".to_vec()),
            ("GET", "", b"HTTP/1.1 099 OK\r\n\r\n".to_vec()),
            ("GET", "", b"\r\nHTTP/1.1 200 OK\r\n\r\n".to_vec()),
        ];
        let mut diffs = Vec::new();
        for (method, body, resp) in cases {
            let mut h = check("http://ADDR/x");
            h.method = method.into();
            if !body.is_empty() {
                h.body = Some(body.into());
            }
            let (o, n, _, _) = both(&h, &resp).await;
            let tag = String::from_utf8_lossy(&resp[..resp.len().min(90)]).into_owned();
            // The engine's exchange agrees with the minimal client.
            let (at, task) = server(vec![resp.clone()], Duration::ZERO, false).await;
            h.url = h.url.replace("ADDR", &at.to_string());
            let (ok, reason) = exchange(&h, Duration::from_secs(3)).await;
            task.await.unwrap();
            assert_eq!(format!("{ok} {reason}"), n, "{}", tag.escape_debug());
            eprintln!("{}\n   old: {o}\n   new: {n}", tag.escape_debug());
            if o != n {
                diffs.push(tag);
            }
        }
        // Requests.
        let mut h = check("http://ADDR/x");
        h.method = "POST".into();
        h.headers = vec![
            ("X-A".into(), "1".into()),
            ("x-a".into(), "2".into()),
            ("Transfer-Encoding".into(), "chunked".into()),
        ];
        let (o, n, oh, nh) = both(&h, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        eprintln!("POST old {o}\n{oh}\nnew {n}\n{nh}");
        eprintln!("DIFFS: {diffs:#?}");
    }

    /// A backend that answers with endless informational heads: the read
    /// buffer is never compacted while a partial head follows a parsed
    /// 1xx, so it grows with everything received (HEAD_LIMIT only counts
    /// the unparsed tail).
    #[tokio::test]
    async fn review_endless_informational_heads_are_bounded() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let one = format!("HTTP/1.1 100 Continue\r\nX: {}\r\n\r\n", "a".repeat(60_001));
            // Every write ends inside a head, so nearly every read does too.
            let one = one.as_bytes();
            let cut = one.len() - 7;
            // The stream is `one` endlessly, but every write ends 7 bytes
            // before a head's end.
            let next = [&one[cut..], &one[..cut]].concat();
            let mut part = &one[..cut];
            loop {
                if s.write_all(part).await.is_err() {
                    return;
                }
                part = &next;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let s = TcpStream::connect(at).await.unwrap();
        let mut r = Reader {
            s,
            buf: Vec::new(),
            pos: 0,
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), r.head()).await;
        assert!(
            r.buf.capacity() <= 4 * HEAD_LIMIT,
            "read buffer grew to {} bytes ({} capacity)",
            r.buf.len(),
            r.buf.capacity()
        );
    }

    /// Responses reqwest (hyper) accepted that the minimal client calls down.
    #[tokio::test]
    async fn review_content_length_as_hyper_reads_it() {
        // A list of equal lengths (RFC 9110 8.6 lets a recipient take it).
        let (o, _) = run(
            check_with_body("http://ADDR/", "ok"),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        )
        .await;
        assert!(o.ok, "{o:?}");
        // No body, so no length to judge: 204/304, HEAD, 1xx, or a
        // Transfer-Encoding (which overrides Content-Length).
        for (method, resp) in [
            ("GET", &b"HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n"[..]),
            ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            ("GET", b"HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
            ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n"),
        ] {
            let mut h = check("http://ADDR/");
            h.method = method.into();
            let (o, _) = run(h, resp).await;
            assert!(o.ok, "{}: {o:?}", String::from_utf8_lossy(resp));
        }
    }

    #[test]
    fn review_ipv4_mapped_host_header() {
        for a in [
            "::ffff:10.0.0.1",
            "1:0:2:3:4:5:6:7",
            "1:0:0:2:0:0:3:4",
            "::ABCD",
            "::1.2.3.4",
            "64:ff9b::10.0.0.1",
        ] {
            let url = format!("http://[{a}]:8080/");
            let want = reqwest::Url::parse(&url).unwrap();
            let want = format!("{}:8080", want.host_str().unwrap());
            let got = Target::parse(&url).map(|t| t.authority);
            assert!(
                got.is_none() || got.as_deref() == Some(&*want),
                "{got:?} {want}"
            );
        }
    }
}
