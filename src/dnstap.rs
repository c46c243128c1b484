//! Query logging in dnstap format (<https://dnstap.info>): `Dnstap`
//! protobuf messages of type MESSAGE holding an AUTH_QUERY and an
//! AUTH_RESPONSE `Message` per logged query, in Frame Streams framing, to
//! a unix socket (bidirectional: READY, ACCEPT, START ... STOP, FINISH)
//! or a file (START ... STOP).
//!
//! The query path never waits for the log: [`Tap::log`] copies the query
//! and response bytes into one queue entry and `try_send`s it into a
//! bounded channel; a full queue (a slow or absent reader) drops the
//! entry and counts its messages as dropped. One thread does every write,
//! encodes the protobuf there (by hand: a few fields), and reconnects to
//! the socket with backoff.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{DnstapConfig, DnstapOutput};

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Frame Streams control frame types.
pub mod control {
    /// Reader to writer: the content type is accepted.
    pub const ACCEPT: u32 = 1;
    /// Writer: data frames follow.
    pub const START: u32 = 2;
    /// Writer: no more data frames.
    pub const STOP: u32 = 3;
    /// Writer to reader: the content types offered.
    pub const READY: u32 = 4;
    /// Reader to writer: the STOP was seen.
    pub const FINISH: u32 = 5;
    /// The one control field: a content type.
    pub const FIELD_CONTENT_TYPE: u32 = 1;
}

pub use crate::metrics::DnstapCounters as Counters;

/// The transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SocketProtocol UDP.
    Udp,
    /// SocketProtocol TCP.
    Tcp,
}

/// One logged query: its bytes and its response's, in one allocation.
#[derive(Debug)]
pub struct Entry {
    /// The query's bytes (if logged), then the response's (if any).
    bytes: Vec<u8>,
    /// Where the query's bytes end.
    split: usize,
    query: bool,
    response: bool,
    client: SocketAddr,
    local: Option<SocketAddr>,
    transport: Transport,
    query_time: SystemTime,
    response_time: SystemTime,
}

impl Entry {
    fn messages(&self) -> u64 {
        u64::from(self.query) + u64::from(self.response)
    }
}

/// The query path's side: samples and enqueues.
#[derive(Debug)]
pub struct Tap {
    tx: SyncSender<Entry>,
    sample: u64,
    seen: AtomicU64,
    queries: bool,
    responses: bool,
    counters: Arc<Counters>,
}

impl Tap {
    /// Whether this query is logged (one in `sample`).
    #[inline]
    pub fn sampled(&self) -> bool {
        self.sample == 1
            || self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.sample)
    }

    /// Enqueues `query` (received at `query_time`) and its `response`
    /// (None: nothing was sent); drops and counts when the queue is full.
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &self,
        query: &[u8],
        response: Option<&[u8]>,
        client: SocketAddr,
        local: Option<SocketAddr>,
        transport: Transport,
        query_time: SystemTime,
        response_time: SystemTime,
    ) {
        let response = response.filter(|_| self.responses);
        if !self.queries && response.is_none() {
            return;
        }
        let q = if self.queries { query } else { &[] };
        let r = response.unwrap_or(&[]);
        let mut bytes = Vec::with_capacity(q.len() + r.len());
        bytes.extend_from_slice(q);
        bytes.extend_from_slice(r);
        let entry = Entry {
            bytes,
            split: q.len(),
            query: self.queries,
            response: response.is_some(),
            client,
            local,
            transport,
            query_time,
            response_time,
        };
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => {
                self.counters
                    .dropped
                    .fetch_add(e.messages(), Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread; [`Writer::shutdown`] ends the stream (STOP) and
/// waits for the thread.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Drains the queue, ends the stream and waits (up to `timeout`).
    pub fn shutdown(mut self, timeout: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + timeout;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("dnstap: the writer did not finish within {timeout:?}");
            }
        }
    }
}

/// Starts logging per `cfg`, counting into `counters`. A file is created
/// (replaced) now, so a path that cannot be written fails the start; a
/// socket is connected by the writer, again and again while it fails.
pub fn start(cfg: &DnstapConfig, counters: Arc<Counters>) -> io::Result<(Arc<Tap>, Writer)> {
    let per_entry = usize::from(cfg.queries) + usize::from(cfg.responses);
    let capacity = (cfg.queue / per_entry.max(1)).max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    let out = match &cfg.output {
        DnstapOutput::File(path) => {
            let f = std::fs::File::create(path).map_err(|e| {
                io::Error::new(e.kind(), format!("[dnstap] file {}: {e}", path.display()))
            })?;
            Out::File(
                path.clone(),
                Some(io::BufWriter::with_capacity(64 << 10, f)),
            )
        }
        DnstapOutput::Socket(path) => Out::Socket(path.clone(), None),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = Worker {
        rx,
        out,
        stop: stop.clone(),
        counters: counters.clone(),
        identity: cfg.identity.clone().into_bytes(),
        version: format!("veer {}", env!("CARGO_PKG_VERSION")).into_bytes(),
        buf: Vec::with_capacity(1024),
        msg: Vec::with_capacity(1024),
        pending: 0,
    };
    let thread = std::thread::Builder::new()
        .name("veer-dnstap".into())
        .spawn(move || w.run())?;
    let tap = Tap {
        tx,
        sample: u64::from(cfg.sample.max(1)),
        seen: AtomicU64::new(0),
        queries: cfg.queries,
        responses: cfg.responses,
        counters,
    };
    Ok((
        Arc::new(tap),
        Writer {
            stop,
            thread: Some(thread),
        },
    ))
}

enum Out {
    /// The file and its writer (None after a write error: the rest is dropped).
    File(PathBuf, Option<io::BufWriter<std::fs::File>>),
    /// The socket and, while connected, the stream.
    Socket(PathBuf, Option<io::BufWriter<UnixStream>>),
}

/// First and longest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A reader that takes no bytes for this long is dropped (and reconnected).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries written between flushes at most.
const BATCH: usize = 256;

struct Worker {
    rx: Receiver<Entry>,
    out: Out,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    identity: Vec<u8>,
    version: Vec<u8>,
    /// The frame being built.
    buf: Vec<u8>,
    /// The Message being built.
    msg: Vec<u8>,
    /// Messages written into the buffer since the last flush.
    pending: u64,
}

impl Worker {
    fn run(&mut self) {
        if let Out::File(path, Some(f)) = &mut self.out
            && let Err(e) = f.write_all(&control_frame(control::START, true))
        {
            tracing::error!("dnstap: {}: {e}; nothing is logged", path.display());
            self.out = Out::File(path.clone(), None);
        }
        let mut backoff = BACKOFF_MIN;
        let mut next_connect = Instant::now();
        let mut failing = false;
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            if let Out::Socket(path, conn @ None) = &mut self.out
                && !stopping
                && Instant::now() >= next_connect
            {
                match connect(path) {
                    Ok(s) => {
                        tracing::info!("dnstap: connected to {}", path.display());
                        *conn = Some(io::BufWriter::with_capacity(64 << 10, s));
                        backoff = BACKOFF_MIN;
                        failing = false;
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(
                                "dnstap: cannot connect to {}: {e}; retrying, messages queue and then drop",
                                path.display()
                            );
                            failing = true;
                        }
                        next_connect = Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            let connected = match &self.out {
                Out::Socket(_, c) => c.is_some(),
                Out::File(..) => true,
            };
            if stopping {
                if connected {
                    while let Ok(e) = self.rx.try_recv() {
                        self.write(&e);
                    }
                }
                self.finish();
                return;
            }
            if !connected {
                // Entries wait in the queue for the reader (and drop once
                // it is full).
                std::thread::sleep(Duration::from_millis(50).min(backoff));
                continue;
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(e) => {
                    self.write(&e);
                    for _ in 1..BATCH {
                        match self.rx.try_recv() {
                            Ok(e) => self.write(&e),
                            Err(_) => break,
                        }
                    }
                    self.flush();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish();
                    return;
                }
            }
        }
    }

    fn sink(&mut self) -> Option<&mut dyn Write> {
        match &mut self.out {
            Out::File(_, Some(f)) => Some(f),
            Out::Socket(_, Some(s)) => Some(s),
            _ => None,
        }
    }

    /// Writes one entry's messages into the buffer.
    fn write(&mut self, e: &Entry) {
        let (query, response) = e.bytes.split_at(e.split);
        let mut n = 0;
        let mut frames = std::mem::take(&mut self.buf);
        frames.clear();
        if e.query {
            self.frame(&mut frames, e, 1, query, None);
            n += 1;
        }
        if e.response {
            self.frame(&mut frames, e, 2, query, Some(response));
            n += 1;
        }
        let ok = match self.sink() {
            Some(w) => w.write_all(&frames).map_err(Some),
            None => Err(None),
        };
        self.buf = frames;
        match ok {
            Ok(()) => self.pending += n,
            Err(err) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                if let Some(err) = err {
                    self.failed(err);
                }
            }
        }
    }

    /// Appends one data frame: a Dnstap holding an AUTH_QUERY (type 1,
    /// the query's bytes) or an AUTH_RESPONSE (type 2, the response's).
    fn frame(
        &mut self,
        out: &mut Vec<u8>,
        e: &Entry,
        mtype: u64,
        query: &[u8],
        response: Option<&[u8]>,
    ) {
        let m = &mut self.msg;
        m.clear();
        pb::varint_field(m, 1, mtype);
        let client = canonical(e.client);
        let v4 = client.is_ipv4();
        pb::varint_field(m, 2, if v4 { 1 } else { 2 });
        pb::varint_field(
            m,
            3,
            match e.transport {
                Transport::Udp => 1,
                Transport::Tcp => 2,
            },
        );
        pb::bytes_field(m, 4, &ip_bytes(client.ip()));
        if let Some(local) = e.local.map(canonical) {
            if local.is_ipv4() == v4 && !local.ip().is_unspecified() {
                pb::bytes_field(m, 5, &ip_bytes(local.ip()));
            }
            pb::varint_field(m, 7, u64::from(local.port()));
        }
        pb::varint_field(m, 6, u64::from(client.port()));
        let (qs, qn) = epoch(e.query_time);
        pb::varint_field(m, 8, qs);
        pb::fixed32_field(m, 9, qn);
        match response {
            None => pb::bytes_field(m, 10, query),
            Some(r) => {
                let (rs, rn) = epoch(e.response_time);
                pb::varint_field(m, 12, rs);
                pb::fixed32_field(m, 13, rn);
                pb::bytes_field(m, 14, r);
            }
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        pb::bytes_field(out, 1, &self.identity);
        pb::bytes_field(out, 2, &self.version);
        pb::bytes_field(out, 14, &self.msg);
        pb::varint_field(out, 15, 1);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn flush(&mut self) {
        let r = match self.sink() {
            Some(w) => w.flush(),
            None => return,
        };
        match r {
            Ok(()) => {
                self.counters
                    .written
                    .fetch_add(std::mem::take(&mut self.pending), Ordering::Relaxed);
            }
            Err(e) => self.failed(e),
        }
    }

    /// A write failed: what the buffer held is dropped; a socket is
    /// reconnected, a file is given up.
    fn failed(&mut self, e: io::Error) {
        self.counters
            .dropped
            .fetch_add(std::mem::take(&mut self.pending), Ordering::Relaxed);
        match &mut self.out {
            Out::Socket(path, conn) => {
                tracing::warn!("dnstap: {}: {e}; reconnecting", path.display());
                if let Some(c) = conn.take() {
                    // Whatever is still buffered is lost with the stream.
                    let (s, _) = c.into_parts();
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
            Out::File(path, f) => {
                tracing::error!(
                    "dnstap: {}: {e}; no more messages are written to it",
                    path.display()
                );
                if let Some(f) = f.take() {
                    let _ = f.into_parts();
                }
            }
        }
    }

    /// Ends the stream: STOP (and FINISH from a socket's reader).
    fn finish(&mut self) {
        self.flush();
        let stop = control_frame(control::STOP, false);
        match &mut self.out {
            Out::File(_, Some(f)) => {
                if f.write_all(&stop).and_then(|_| f.flush()).is_err() {
                    tracing::warn!("dnstap: could not end the file");
                }
                let _ = f.get_ref().sync_data();
            }
            // The reader answers STOP with FINISH: waited for briefly.
            Out::Socket(_, Some(s)) => {
                let _ = s.write_all(&stop).and_then(|_| s.flush()).and_then(|_| {
                    s.get_ref().set_read_timeout(Some(Duration::from_secs(1)))?;
                    read_control(&mut s.get_ref())
                });
            }
            _ => {}
        }
        // What is still queued is not written.
        let mut left = 0;
        while let Ok(e) = self.rx.try_recv() {
            left += e.messages();
        }
        self.counters.dropped.fetch_add(left, Ordering::Relaxed);
    }
}

/// Connects to a Frame Streams reader and does the handshake: READY,
/// ACCEPT (with our content type), START.
fn connect(path: &Path) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(path)?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    s.set_read_timeout(Some(WRITE_TIMEOUT))?;
    s.write_all(&control_frame(control::READY, true))?;
    let (kind, types) = read_control(&mut s)?;
    if kind != control::ACCEPT {
        return Err(io::Error::other(format!(
            "the reader answered READY with control frame {kind}, not ACCEPT"
        )));
    }
    if !types.is_empty() && !types.iter().any(|t| t == CONTENT_TYPE) {
        return Err(io::Error::other(
            "the reader does not accept protobuf:dnstap.Dnstap",
        ));
    }
    s.write_all(&control_frame(control::START, true))?;
    Ok(s)
}

/// A control frame: escape, length, type and (with `content_type`) the
/// dnstap content type field.
pub fn control_frame(kind: u32, content_type: bool) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if content_type {
        body.extend_from_slice(&control::FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        body.extend_from_slice(CONTENT_TYPE);
    }
    let mut out = vec![0; 4];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads one control frame: its type and content types.
pub fn read_control(r: &mut impl Read) -> io::Result<(u32, Vec<Vec<u8>>)> {
    let mut word = [0u8; 4];
    r.read_exact(&mut word)?;
    if word != [0; 4] {
        return Err(io::Error::other("expected a control frame"));
    }
    r.read_exact(&mut word)?;
    let len = u32::from_be_bytes(word) as usize;
    if !(4..=512).contains(&len) {
        return Err(io::Error::other("control frame of a bad length"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mut types = Vec::new();
    let mut i = 4;
    while i + 8 <= body.len() {
        let field = u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let flen =
            u32::from_be_bytes([body[i + 4], body[i + 5], body[i + 6], body[i + 7]]) as usize;
        let Some(v) = body.get(i + 8..i + 8 + flen) else {
            break;
        };
        if field == control::FIELD_CONTENT_TYPE {
            types.push(v.to_vec());
        }
        i += 8 + flen;
    }
    Ok((kind, types))
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn epoch(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

/// The few protobuf encodings dnstap needs.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, (u64::from(field) << 3) | u64::from(wire));
    }

    pub fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, 0);
        varint(out, v);
    }

    pub fn fixed32_field(out: &mut Vec<u8>, field: u32, v: u32) {
        key(out, field, 5);
        out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_encodings() {
        let mut v = Vec::new();
        pb::varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        v.clear();
        pb::varint_field(&mut v, 15, 1);
        assert_eq!(v, [0x78, 0x01]);
        v.clear();
        pb::bytes_field(&mut v, 14, b"ab");
        assert_eq!(v, [0x72, 2, b'a', b'b']);
        v.clear();
        pb::fixed32_field(&mut v, 9, 1);
        assert_eq!(v, [0x4d, 1, 0, 0, 0]);
    }

    #[test]
    fn control_frames_round_trip() {
        let f = control_frame(control::READY, true);
        assert_eq!(&f[..4], &[0; 4]);
        assert_eq!(
            u32::from_be_bytes([f[4], f[5], f[6], f[7]]) as usize,
            f.len() - 8
        );
        let (kind, types) = read_control(&mut &f[..]).unwrap();
        assert_eq!(kind, control::READY);
        assert_eq!(types, vec![CONTENT_TYPE.to_vec()]);
        let (kind, types) = read_control(&mut &control_frame(control::STOP, false)[..]).unwrap();
        assert_eq!((kind, types.len()), (control::STOP, 0));
    }

    fn cfg(queue: usize) -> DnstapConfig {
        DnstapConfig {
            output: DnstapOutput::Socket(PathBuf::from("/nonexistent/veer-dnstap.sock")),
            identity: "t".into(),
            queries: true,
            responses: true,
            sample: 1,
            queue,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let counters = Arc::new(Counters::default());
        let (tap, writer) = start(&cfg(4), counters.clone()).unwrap();
        let a: SocketAddr = "192.0.2.1:5300".parse().unwrap();
        let t = SystemTime::now();
        let started = Instant::now();
        for _ in 0..100 {
            tap.log(b"q", Some(b"r"), a, None, Transport::Udp, t, t);
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        // 4 messages: 2 entries queued, 98 dropped with 2 messages each.
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 196);
        writer.shutdown(Duration::from_secs(5));
        assert_eq!(counters.written.load(Ordering::Relaxed), 0);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 200);
    }

    #[test]
    fn sampling_logs_one_in_n() {
        let counters = Arc::new(Counters::default());
        let mut c = cfg(1000);
        c.sample = 10;
        let (tap, writer) = start(&c, counters).unwrap();
        let n = (0..100).filter(|_| tap.sampled()).count();
        assert_eq!(n, 10);
        writer.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn a_file_holds_start_frames_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.fstrm");
        let mut c = cfg(100);
        c.output = DnstapOutput::File(path.clone());
        c.queries = false;
        let counters = Arc::new(Counters::default());
        let (tap, writer) = start(&c, counters.clone()).unwrap();
        let a: SocketAddr = "[::ffff:192.0.2.1]:5300".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        tap.log(b"q", Some(b"resp"), a, Some(local), Transport::Tcp, t, t);
        tap.log(b"q", None, a, Some(local), Transport::Tcp, t, t);
        writer.shutdown(Duration::from_secs(5));
        assert_eq!(counters.written.load(Ordering::Relaxed), 1);
        let data = std::fs::read(&path).unwrap();
        let mut r = &data[..];
        assert_eq!(read_control(&mut r).unwrap().0, control::START);
        let len = u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize;
        let frame = &r[4..4 + len];
        r = &r[4 + len..];
        assert_eq!(read_control(&mut r).unwrap().0, control::STOP);
        assert!(r.is_empty());
        // identity, version, message, type MESSAGE.
        assert_eq!(&frame[..3], &[0x0a, 1, b't']);
        assert!(frame.ends_with(&[0x78, 1]));
        let mut m = Vec::new();
        pb::varint_field(&mut m, 1, 2); // AUTH_RESPONSE
        pb::varint_field(&mut m, 2, 1); // INET (the v4-mapped client)
        pb::varint_field(&mut m, 3, 2); // TCP
        pb::bytes_field(&mut m, 4, &[192, 0, 2, 1]);
        pb::bytes_field(&mut m, 5, &[127, 0, 0, 1]);
        pb::varint_field(&mut m, 7, 53);
        pb::varint_field(&mut m, 6, 5300);
        pb::varint_field(&mut m, 8, 1_700_000_000);
        pb::fixed32_field(&mut m, 9, 5);
        pb::varint_field(&mut m, 12, 1_700_000_000);
        pb::fixed32_field(&mut m, 13, 5);
        pb::bytes_field(&mut m, 14, b"resp");
        let mut tail = Vec::new();
        pb::bytes_field(&mut tail, 14, &m);
        pb::varint_field(&mut tail, 15, 1);
        assert!(frame.ends_with(&tail));
    }
}
