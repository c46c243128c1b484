//! DNS over TCP (RFC 7766) with veer's own accept loop: hickory-server's
//! has no connection cap, and spins on EMFILE when descriptors run out, so
//! idle connections from outside could starve the probes of descriptors
//! and fail every backend over.
//!
//! Bounds, each a config key of `[server]`:
//!
//! - `tcp_max_connections` open connections in all, `tcp_max_per_network`
//!   from one client network (/24 for IPv4, /56 for IPv6); a connection
//!   over either cap is closed at once;
//! - `tcp_idle_timeout` from accept (and between messages) until a message
//!   starts: a connection that never sends a byte is closed;
//! - `tcp_read_timeout` for the rest of a message once its first byte has
//!   arrived (a client sending a byte per second is closed), and for
//!   writing one answer;
//! - one query in flight per connection: pipelined queries are read and
//!   answered in order, one at a time (answering is CPU-only and short), so
//!   a client cannot queue work inside veer.
//!
//! On EMFILE/ENFILE the loop backs off instead of spinning, and says so
//! once per interval.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Handler;
use crate::route::prefix::mask;

/// The limits a listener applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one client network.
    pub max_per_network: usize,
    /// Until a message starts (from accept, and between messages).
    pub idle_timeout: Duration,
    /// For the rest of a message, and for writing one answer.
    pub read_timeout: Duration,
}

/// How long the accept loop pauses when descriptors run out.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// How often running out of descriptors is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Open connections, in all and per client network. Shared by every
/// listener; held by each connection's guard.
#[derive(Debug, Default)]
pub struct Connections {
    inner: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Set at shutdown: idle connections close, busy ones after their
    /// answer.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Connections {
    /// Admits a connection from `peer` within `limits`; None over a cap.
    // A std mutex: held for a few instructions, never across an await.
    fn admit(self: &Arc<Self>, peer: IpAddr, limits: &Limits) -> Option<Slot> {
        let net = network(peer);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (total, nets) = &mut *g;
        let here = nets.get(&net).copied().unwrap_or(0);
        if *total >= limits.max_connections || here >= limits.max_per_network {
            return None;
        }
        *total += 1;
        nets.insert(net, here + 1);
        Some(Slot {
            conns: self.clone(),
            net,
        })
    }

    /// Open connections in all.
    pub fn open(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Shutdown: idle connections close now, a connection answering a
    /// query closes once the answer is written. Stop the accept loops
    /// first, then [`Connections::drained`].
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Waits until every connection has closed, or `timeout`; true if
    /// all did.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    conns: Arc<Connections>,
    net: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.conns.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (total, nets) = &mut *g;
        *total -= 1;
        if let Some(n) = nets.get_mut(&self.net) {
            *n -= 1;
            if *n == 0 {
                nets.remove(&self.net);
            }
        }
    }
}

/// The client network a connection counts against: /24 or /56.
fn network(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    match ip {
        IpAddr::V4(_) => mask(ip, 24),
        IpAddr::V6(_) => mask(ip, 56),
    }
}

/// Accepts on `listener` until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    conns: Arc<Connections>,
    limits: Limits,
) {
    let mut last_log: Option<Instant> = None;
    let mut refused = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    if out_of_fds {
                        tracing::warn!(
                            "tcp accept: out of file descriptors ({e}); pausing accepts ({refused} connections over the caps since the last message)"
                        );
                    } else {
                        tracing::warn!("tcp accept: {e}");
                    }
                    last_log = Some(Instant::now());
                    refused = 0;
                }
                tokio::time::sleep(EMFILE_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = conns.admit(peer.ip(), &limits) else {
            // Over a cap: closed at once (dropping the stream).
            refused += 1;
            continue;
        };
        let handler = handler.clone();
        let closing = conns.closing.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, peer, &handler, &limits, closing).await {
                tracing::debug!("tcp {peer}: {e}");
            }
        });
    }
}

/// Serves one connection: message, answer, message, ... in order.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &Handler,
    limits: &Limits,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    // The query log's response address (only read when it is on).
    let local = if handler.logs_queries() {
        stream.local_addr().ok()
    } else {
        None
    };
    let mut msg = Vec::with_capacity(512);
    let mut body = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(514);
    loop {
        // Idle until the first byte of the next message (or EOF), or
        // shutdown.
        let mut first = [0u8; 1];
        let read = tokio::time::timeout(limits.idle_timeout, stream.read(&mut first));
        let n = tokio::select! {
            biased;
            r = read => match r {
                Ok(r) => r?,
                Err(_) => return Ok(()), // idle: close
            },
            _ = closing.wait_for(|c| *c) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        // The rest of the message within the read timeout.
        let rest = async {
            let second = stream.read_u8().await?;
            let len = usize::from(u16::from_be_bytes([first[0], second]));
            msg.resize(len, 0);
            stream.read_exact(&mut msg).await?;
            io::Result::Ok(())
        };
        match tokio::time::timeout(limits.read_timeout, rest).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "message not complete within the read timeout",
                ));
            }
        }
        out.clear();
        out.extend_from_slice(&[0, 0]);
        let snap = handler.store().load();
        if crate::xfr::out::transfer_type(&msg).is_some() {
            // A zone transfer: many messages, all from this snapshot; a
            // slow secondary gets longer per message than a query does.
            let per_message = limits.read_timeout.max(Duration::from_secs(10));
            crate::xfr::out::serve_tcp(&mut stream, &snap.xfr, &msg, peer, per_message).await?;
            if *closing.borrow() {
                return Ok(());
            }
            continue;
        }
        let start = Instant::now();
        body.clear();
        let ahead = &mut super::fast::Ahead::new();
        // Counted when answered (the tally is dropped with the call), not
        // after the write, which may take a slow client's timeout.
        if !handler.answer_packet_at(
            &snap,
            &msg,
            peer,
            local,
            Protocol::Tcp,
            &mut body,
            ahead,
            &mut crate::metrics::Tally::default(),
        ) {
            // Not a query (a response, or shorter than a header): nothing
            // to answer, and nothing a real client sends; close.
            return Ok(());
        }
        handler.stats().response_time.observe(start.elapsed());
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        out[..2].copy_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        match tokio::time::timeout(limits.read_timeout, stream.write_all(&out)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "answer not taken within the read timeout",
                ));
            }
        }
        if *closing.borrow() {
            return Ok(()); // shutdown: this answer was the last
        }
        // A big message or answer must not pin its buffers while the
        // connection idles.
        for buf in [&mut msg, &mut body, &mut out] {
            if buf.capacity() > 4096 {
                buf.clear();
                buf.shrink_to(512);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_network_and_release_on_drop() {
        let conns = Arc::new(Connections::default());
        let limits = Limits {
            max_connections: 3,
            max_per_network: 2,
            idle_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        };
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let s1 = conns.admit(a("10.0.0.1"), &limits).unwrap();
        let _s2 = conns.admit(a("10.0.0.2"), &limits).unwrap();
        // Same /24: over the per-network cap.
        assert!(conns.admit(a("10.0.0.3"), &limits).is_none());
        let _s3 = conns.admit(a("10.0.1.1"), &limits).unwrap();
        // Over the global cap.
        assert!(conns.admit(a("10.0.2.1"), &limits).is_none());
        drop(s1);
        assert_eq!(conns.open(), 2);
        assert!(conns.admit(a("10.0.0.9"), &limits).is_some());
        // A v4-mapped address counts as the IPv4 client.
        assert_eq!(network(a("::ffff:10.0.0.7")), a("10.0.0.0"));
        assert_eq!(network(a("2001:db8:1:2ff::1")), a("2001:db8:1:200::"));
    }
}
