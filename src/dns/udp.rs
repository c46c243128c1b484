//! The UDP fast path. hickory-server's UDP loop spawns a tokio task per
//! datagram and queues each reply through a channel, one syscall per
//! packet each way; on loopback that per-packet overhead, not the
//! answering, bounds throughput. Here each SO_REUSEPORT socket gets a
//! thread that receives up to [`BATCH`] datagrams with one `recvmmsg`,
//! answers them with the same [`Handler::prepare`] as the hickory path
//! (TCP stays on hickory), encodes into reused buffers and sends the
//! batch with one `sendmmsg`.

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_server::net::xfer::Protocol;

use super::Handler;
use super::fast::Ahead;
use crate::metrics::Tally;

/// Datagrams per `recvmmsg` / `sendmmsg`.
const BATCH: usize = 32;
/// Largest datagram read (as hickory).
const RECV_SIZE: usize = 4096;
/// How far apart the receive buffers are: a cache line more than their
/// size. At 4096 apart, every query's first bytes fell in the same set of
/// the L1 cache (its index is bits 6 to 11 of the address), which holds 8
/// lines: a batch of 32 evicted its own queries between their read ahead
/// and their answer.
const RECV_STRIDE: usize = RECV_SIZE + 64;
/// How long a receive waits before the thread looks again (at `stop`,
/// and at the snapshot it holds).
const IDLE: Duration = Duration::from_millis(250);

/// The running UDP threads; [`Threads::stop`] ends them.
pub struct Threads {
    threads: Vec<std::thread::JoinHandle<()>>,
    sockets: Vec<Arc<UdpSocket>>,
    stop: Arc<AtomicBool>,
}

impl Threads {
    /// Stops every thread and waits for them. Each answers the batch it
    /// holds; datagrams still queued in the socket are not read (their
    /// clients retry elsewhere). A thread blocked in `recvmmsg` wakes at
    /// once: `shutdown(SHUT_RD)` on a UDP socket makes an empty receive
    /// return 0 (Linux wakes the waiters even on an unconnected socket,
    /// and reports ENOTCONN, which is expected here).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for s in &self.sockets {
            // SAFETY: shutdown on a descriptor this struct keeps open.
            unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_RD) };
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Runs one thread per socket until [`Threads::stop`].
pub fn spawn(sockets: Vec<UdpSocket>, handler: Arc<Handler>) -> io::Result<Threads> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut shared = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        sock.set_nonblocking(false)?;
        // A safety net only: `stop` wakes the thread at once.
        // It also bounds how long an idle thread holds a replaced
        // snapshot (see `serve`).
        sock.set_read_timeout(Some(IDLE))?;
        let sock = Arc::new(sock);
        shared.push(sock.clone());
        let handler = handler.clone();
        let stop = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("veer-udp-{i}"))
                .spawn(move || serve(&sock, &handler, &stop, &BatchClock::new()))?,
        );
    }
    Ok(Threads {
        threads,
        sockets: shared,
        stop,
    })
}

/// A thread's buffers. The headers' pointers into the batch itself (to
/// `names` and the iovecs) are stored again from the `&mut Batch` of each
/// receive and send, so that the kernel writes through pointers derived
/// from the latest borrow (Rust's aliasing rules); what else they hold is
/// set once.
struct Batch {
    rx: Vec<[u8; RECV_STRIDE]>,
    tx: Vec<Vec<u8>>,
    names: [libc::sockaddr_storage; BATCH],
    rx_iov: [libc::iovec; BATCH],
    rx_hdrs: [libc::mmsghdr; BATCH],
    /// How many receive headers the last receive filled (to reset).
    rx_used: usize,
    tx_iov: [libc::iovec; BATCH],
    tx_hdrs: [libc::mmsghdr; BATCH],
    /// The query each answer goes back to (its index in `names`).
    tx_to: [u8; BATCH],
    /// The received queries' sources, converted before any is answered:
    /// read right after they are written (in narrower stores than the
    /// loads that copy an address), they made every query wait for the
    /// stores to retire.
    srcs: [Option<SocketAddr>; BATCH],
    /// Each query's name, read once for its prefetch and its answer (and
    /// never zeroed again: a query writes only what it reads).
    ahead: Vec<Ahead>,
}

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut b = Box::new(Batch {
            rx: vec![[0; RECV_STRIDE]; BATCH],
            tx: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            names: unsafe { MaybeUninit::zeroed().assume_init() },
            rx_iov: unsafe { MaybeUninit::zeroed().assume_init() },
            rx_hdrs: unsafe { MaybeUninit::zeroed().assume_init() },
            rx_used: BATCH,
            tx_iov: unsafe { MaybeUninit::zeroed().assume_init() },
            tx_hdrs: unsafe { MaybeUninit::zeroed().assume_init() },
            tx_to: [0; BATCH],
            srcs: [None; BATCH],
            ahead: (0..BATCH).map(|_| Ahead::new()).collect(),
        });
        for i in 0..BATCH {
            // The receive buffers are the Vec's (another allocation).
            b.rx_iov[i] = libc::iovec {
                iov_base: b.rx[i].as_mut_ptr().cast(),
                iov_len: RECV_SIZE,
            };
            b.rx_hdrs[i].msg_hdr.msg_iovlen = 1;
            b.tx_hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        b
    }
}

/// The response-time histogram's clock: the CPU's time-stamp counter
/// where the kernel keeps time by it too (a read is half of
/// `clock_gettime`'s, which a batch paid twice), else the monotonic clock.
/// The counter is calibrated once per process (0.6 to 30 ms in runs on a
/// 2-core VM; quanta stops at 200 ms), by the first UDP thread, before its
/// first receive.
enum BatchClock {
    Tsc(quanta::Clock),
    Monotonic(Instant),
}

impl BatchClock {
    fn new() -> BatchClock {
        // quanta checks the CPU's flags; the kernel also drops the counter
        // when it finds it unstable (some VMs, some multi-socket boxes).
        let kernel_tsc = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .is_ok_and(|s| s.trim() == "tsc");
        if kernel_tsc {
            BatchClock::Tsc(quanta::Clock::new())
        } else {
            BatchClock::Monotonic(Instant::now())
        }
    }

    /// A reading, for [`BatchClock::since`].
    fn raw(&self) -> u64 {
        match self {
            BatchClock::Tsc(c) => c.raw(),
            BatchClock::Monotonic(base) => base.elapsed().as_nanos() as u64,
        }
    }

    /// The time from `start` (a reading) to now; zero if the clock went
    /// back (a counter that differs between cores).
    fn since(&self, start: u64) -> Duration {
        match self {
            BatchClock::Tsc(c) => c.delta(start, c.raw()),
            BatchClock::Monotonic(_) => Duration::from_nanos(self.raw().saturating_sub(start)),
        }
    }
}

fn serve(sock: &UdpSocket, handler: &Handler, stop: &AtomicBool, clock: &BatchClock) {
    let fd = sock.as_raw_fd();
    // The query log's response address (only read when it is on).
    let local = if handler.logs_queries() {
        sock.local_addr().ok()
    } else {
        None
    };
    let mut b = Batch::new();
    // The snapshot, loaded again at every batch: one atomic load while it
    // stays the same. A replaced one is let go at the next batch, or at
    // the next timeout ([`IDLE`]) when no query comes; this thread never
    // frees one (see `Reader`).
    let mut cache = handler.store().reader();
    while !stop.load(Ordering::Acquire) {
        let n = recv_batch(fd, &mut b);
        if n == 0 {
            // A timeout, an error, or shut down (stop is set).
            cache.load();
            continue;
        }
        for i in 0..n {
            b.srcs[i] = to_std(&b.names[i], b.rx_hdrs[i].msg_hdr.msg_namelen);
        }
        // One snapshot per batch: the batch is answered within microseconds.
        let snap = cache.load();
        let mut out = 0;
        // Each query's response time is the batch's: from its receipt to
        // the send of every answer (two clock reads per batch).
        let start = clock.raw();
        if n > 1 {
            // A hint; a bug in it must not cost the thread either.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for i in 0..n {
                    let len = b.rx_hdrs[i].msg_len as usize;
                    super::fast::prefetch(snap, &b.rx[i][..len], &mut b.ahead[i]);
                }
            }));
        } else {
            b.ahead[0].clear();
        }
        // The batch's counts, added when it is answered (before the
        // snapshot can be let go).
        let mut tally = Tally::default();
        let mut queries = 0;
        for i in 0..n {
            let len = b.rx_hdrs[i].msg_len as usize;
            if len == 0 {
                // No query; also what a receive on a shut down socket
                // returns (with no source address).
                b.ahead[i].clear();
                continue;
            }
            let namelen = b.rx_hdrs[i].msg_hdr.msg_namelen;
            let Some(src) = b.srcs[i] else {
                b.ahead[i].clear();
                continue;
            };
            let mut reply = std::mem::take(&mut b.tx[out]);
            reply.clear();
            // A bug must cost one query, not this socket's thread.
            let packet = &b.rx[i][..len];
            let ahead = &mut b.ahead[i];
            let tally = &mut tally;
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler.answer_packet_at(
                    snap,
                    packet,
                    src,
                    local,
                    Protocol::Udp,
                    &mut reply,
                    ahead,
                    tally,
                )
            }))
            .unwrap_or_else(|_| {
                tracing::error!("internal error answering a query from {src}; dropped it");
                reply.clear();
                false
            });
            b.tx[out] = reply;
            if answered {
                // The answer goes where the query came from: its source
                // stays in `names` until the next receive.
                b.tx_to[out] = i as u8;
                b.tx_hdrs[out].msg_hdr.msg_namelen = namelen;
                out += 1;
            }
            queries += 1;
        }
        tally.flush();
        send_batch(fd, &mut b, out);
        handler
            .stats()
            .response_time
            .observe_n(clock.since(start), queries);
    }
}

fn recv_batch(fd: i32, b: &mut Batch) -> usize {
    // What the last receive changed: the source lengths and the lengths.
    for h in &mut b.rx_hdrs[..b.rx_used] {
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }
    b.rx_used = BATCH;
    let names = b.names.as_mut_ptr();
    let iov = b.rx_iov.as_mut_ptr();
    for (i, h) in b.rx_hdrs.iter_mut().enumerate() {
        h.msg_hdr.msg_name = names.wrapping_add(i).cast();
        h.msg_hdr.msg_iov = iov.wrapping_add(i);
    }
    // SAFETY: every header points at live buffers of the stated sizes in `b`.
    // (The system call itself: libc's wrapper is a cancellation point,
    // whose bookkeeping this thread has no use for.)
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvmmsg,
            fd,
            b.rx_hdrs.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut::<libc::timespec>(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::TimedOut
        ) {
            tracing::warn!("udp receive: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
        return 0;
    }
    b.rx_used = n as usize;
    n as usize
}

fn send_batch(fd: i32, b: &mut Batch, count: usize) {
    let mut sent = 0;
    while sent < count {
        for i in sent..count {
            b.tx_iov[i] = libc::iovec {
                iov_base: b.tx[i].as_mut_ptr().cast(),
                iov_len: b.tx[i].len(),
            };
        }
        // Derived after the last write to what they point at.
        let names = b.names.as_mut_ptr();
        let iov = b.tx_iov.as_mut_ptr();
        for i in sent..count {
            let h = &mut b.tx_hdrs[i].msg_hdr;
            h.msg_name = names.wrapping_add(b.tx_to[i] as usize).cast();
            h.msg_iov = iov.wrapping_add(i);
        }
        // SAFETY: headers sent..count point at live buffers in `b` (the
        // answers, and the sources of their queries).
        // (The system call itself, as in `recv_batch`.)
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendmmsg,
                fd,
                b.tx_hdrs[sent..].as_mut_ptr(),
                (count - sent) as libc::c_uint,
                0 as libc::c_int,
            )
        };
        if n <= 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // A send error (e.g. an unreachable client) drops that reply only.
            tracing::debug!("udp send: {e}");
            sent += 1;
            continue;
        }
        sent += n as usize;
    }
}

fn to_std(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match s.ss_family as i32 {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::sync::Arc;
    use std::time::Duration;

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    use crate::dns::Handler;
    use crate::metrics::ServerStats;
    use crate::store::Store;

    /// Bursts from many sockets, v4 and v6, with garbage between the
    /// queries (not answered, so answers and queries do not line up in a
    /// batch): each answer goes back to the socket that asked, with its ID.
    #[test]
    fn every_answer_of_a_batch_goes_to_its_querys_source() {
        let snap = crate::testutil::snapshot("[rrl]\nresponses_per_second = 0\n", &[]);
        let h = Arc::new(Handler::new(
            Arc::new(Store::new(snap)),
            Arc::new(ServerStats::default()),
        ));
        let v6 = UdpSocket::bind("[::1]:0").ok();
        let mut servers = vec![UdpSocket::bind("127.0.0.1:0").unwrap()];
        servers.extend(v6);
        let addrs: Vec<_> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
        let threads = super::spawn(servers, h.clone()).unwrap();
        for round in 0..20u16 {
            let mut clients = Vec::new();
            for (k, server) in addrs.iter().enumerate() {
                let bind = if server.is_ipv4() {
                    "127.0.0.1:0"
                } else {
                    "[::1]:0"
                };
                for c in 0..40u16 {
                    let s = UdpSocket::bind(bind).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let id = round * 1000 + k as u16 * 100 + c;
                    let mut m = Message::query();
                    m.metadata.id = id;
                    let name = if c % 3 == 0 { "nope.t." } else { "www.t." };
                    let t = if c % 5 == 0 {
                        RecordType::ANY
                    } else {
                        RecordType::A
                    };
                    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
                    // Garbage first (a response: dropped), then the query.
                    let mut garbage = m.to_vec().unwrap();
                    garbage[2] |= 0x80;
                    s.send_to(&garbage, server).unwrap();
                    s.send_to(&m.to_vec().unwrap(), server).unwrap();
                    clients.push((s, id));
                }
            }
            for (s, id) in &clients {
                let mut buf = [0; 4096];
                let (n, _) = s.recv_from(&mut buf).expect("an answer");
                let r = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(r.metadata.id, *id);
            }
        }
        threads.stop();
    }

    /// A thread answers from the snapshot published last, and an idle
    /// thread lets go of a replaced one within its receive timeout (a
    /// reload must not keep the old zones alive while nobody asks).
    #[test]
    fn a_replaced_snapshot_is_let_go_busy_or_idle() {
        let config = "[rrl]\nresponses_per_second = 0\n";
        let store = Arc::new(Store::new(crate::testutil::snapshot(config, &[])));
        let h = Arc::new(Handler::new(
            store.clone(),
            Arc::new(ServerStats::default()),
        ));
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let threads = super::spawn(vec![server], h).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let ask = || {
            let mut m = Message::query();
            m.add_query(Query::query(
                Name::from_ascii("www.t.").unwrap(),
                RecordType::A,
            ));
            client.send_to(&m.to_vec().unwrap(), addr).unwrap();
            let mut buf = [0; 4096];
            let (n, _) = client.recv_from(&mut buf).expect("an answer");
            Message::from_vec(&buf[..n]).unwrap()
        };
        ask();
        for generation in [5, 6] {
            let old = Arc::downgrade(store.load().arc());
            store.publish_if_newer(generation, || {
                let mut s = crate::testutil::snapshot(config, &[]);
                s.generation = generation;
                s
            });
            if generation == 5 {
                // Busy: the next query is answered from the new one.
                ask();
            }
            // Far past IDLE: a loaded machine may be slow to run the thread.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while old.strong_count() > 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "generation {generation}: the old snapshot is still held"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        threads.stop();
    }
}
