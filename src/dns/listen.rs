//! Listening sockets. hickory-server runs one receive task per UDP socket
//! and spawns a task per datagram whose reply goes through a 32-slot queue
//! that drops when full; several SO_REUSEPORT sockets per address with
//! large buffers keep a load test from losing packets.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Socket buffer size asked for (the kernel may cap it at rmem_max).
const SOCKET_BUFFER: usize = 8 << 20;

/// Bound sockets for every listen address.
pub struct Listeners {
    /// UDP sockets (several per address), blocking-capable std sockets.
    pub udp: Vec<std::net::UdpSocket>,
    /// One TCP listener per address.
    pub tcp: Vec<tokio::net::TcpListener>,
    /// The addresses actually bound (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
}

/// Binds `udp_sockets` UDP sockets and one TCP listener per address. With
/// port 0, UDP and TCP share one ephemeral port.
pub fn bind(listen: &[SocketAddr], udp_sockets: usize) -> io::Result<Listeners> {
    let mut out = Listeners {
        udp: Vec::new(),
        tcp: Vec::new(),
        addrs: Vec::new(),
    };
    for &addr in listen {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match bind_one(addr, udp_sockets) {
                Ok((udp, tcp, bound)) => {
                    out.udp.extend(udp);
                    out.tcp.push(tcp);
                    out.addrs.push(bound);
                    break;
                }
                // The ephemeral UDP port may be taken on TCP: try another.
                Err(e)
                    if addr.port() == 0 && attempt < 20 && e.kind() == io::ErrorKind::AddrInUse => {
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot listen on {addr}: {e}"),
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn bind_one(
    addr: SocketAddr,
    udp_sockets: usize,
) -> io::Result<(
    Vec<std::net::UdpSocket>,
    tokio::net::TcpListener,
    SocketAddr,
)> {
    let first = udp_socket(addr)?;
    let bound = first.local_addr()?.as_socket().expect("inet socket");
    let mut udp = vec![first];
    for _ in 1..udp_sockets.max(1) {
        udp.push(udp_socket(bound)?);
    }
    let tcp = tcp_listener(bound)?;
    let udp = udp.into_iter().map(std::net::UdpSocket::from).collect();
    Ok((udp, tokio::net::TcpListener::from_std(tcp.into())?, bound))
}

fn udp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // Best effort: a small buffer is slower, not wrong.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn tcp_listener(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s)
}
