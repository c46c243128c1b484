//! A DNS "server" that does nothing: every UDP datagram that holds a DNS
//! header goes back to its sender as is, with the QR bit set. dnsperf counts
//! that as an answer (NOERROR, no records), so its QPS and CPU per query are
//! what the kernel and one socket cost, the floor under any real server in
//! bench/run.sh.
//!
//! One thread, one socket: recvmmsg takes up to BATCH datagrams at a time
//! (blocking until at least one is there), sendmmsg returns them in one call.
//!
//!   echo 127.0.0.1:PORT

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::ptr::null_mut;

const BATCH: usize = 64;
const SIZE: usize = 4096;
const HEADER: u32 = 12;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: echo ADDR:PORT");
        std::process::exit(2)
    });
    let socket = UdpSocket::bind(&addr).unwrap_or_else(|e| {
        eprintln!("echo: bind {addr}: {e}");
        std::process::exit(1)
    });
    if let Err(e) = serve(&socket) {
        eprintln!("echo: {e}");
        std::process::exit(1)
    }
}

fn serve(socket: &UdpSocket) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; SIZE]; BATCH];
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut peers: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = vec![unsafe { zeroed() }; BATCH];
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; BATCH];
    let mut out: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    loop {
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: SIZE,
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            msgs[i].msg_len = 0;
        }
        // SAFETY: every header points at a live buffer, iovec and address
        // of the sizes it states; they outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        out.clear();
        for (i, m) in msgs.iter_mut().enumerate().take(n as usize) {
            if m.msg_len < HEADER || m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            bufs[i][2] |= 0x80; // QR: this is a response
            iovs[i].iov_len = m.msg_len as usize;
            out.push(*m);
        }
        let mut sent = 0;
        while sent < out.len() {
            // SAFETY: as above; the headers in `out` are copies that point
            // at the same live buffers, with the received lengths.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    out[sent..].as_mut_ptr(),
                    (out.len() - sent) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    // A datagram the kernel will not take (say, its sender's
                    // port is gone): skip it, as a server would.
                    _ => sent += 1,
                }
            } else {
                sent += r as usize;
            }
        }
    }
}
