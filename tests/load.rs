//! Outside load never changes health: idle TCP connections by the
//! thousand, slow clients and a low descriptor limit must neither starve
//! the probes nor stop veer answering others.

#[path = "support/backends.rs"]
mod backends;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backends::HttpBackend;
use common::*;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(10);

const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@       300 IN SOA ns1 hostmaster 1000 7200 3600 1209600 60
        IN  NS  ns1
ns1     IN  A   192.0.2.53
www     IN  A   192.0.2.80
";

/// A config with `server_extra` lines in `[server]` and an http check on
/// `url` (a fresh connection per probe, every 100 ms) deciding `app`.
fn setup(server_extra: &str, url: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("veer-load-")
        .tempdir()
        .unwrap();
    write_file(dir.path(), "example.test.zone", ZONE);
    let config = write_file(
        dir.path(),
        "veer.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n{server_extra}\n\n\
             [[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n\n\
             [check.web]\nhttp = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\nfall = 1\nrise = 1\n\n\
             [[route]]\nname = \"app.example.test.\"\ntype = \"A\"\npolicy = \"failover\"\n\
             members = [ {{ tier = 1, value = \"10.0.0.1\", check = \"web\" }}, {{ tier = 2, value = \"10.0.0.2\" }} ]\n"
        ),
    );
    (dir, config)
}

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Raises this test process's descriptor limit (for thousands of clients).
fn raise_own_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct in and out.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// A TCP query for www.example.test A from `local` (an address of its own
/// network on loopback); its rcode, or why not.
fn tcp_query_from(local: &str, addr: SocketAddr) -> Result<u8, String> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    let bind: SocketAddr = format!("{local}:0").parse().unwrap();
    s.bind(&bind.into()).map_err(|e| e.to_string())?;
    s.connect_timeout(&addr.into(), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let q = wire::query(0x4242, 0, "www.example.test", 1);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(q);
    s.write_all(&framed).map_err(|e| e.to_string())?;
    let mut len = [0; 2];
    s.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut m = vec![0; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m).map_err(|e| e.to_string())?;
    Ok(m[3] & 0x0f)
}

#[test]
fn idle_connection_flood_changes_no_health_and_others_are_answered() {
    let web = HttpBackend::start();
    let (_dir, config) = setup("", &web.url("/"));
    // A low descriptor limit, as on a small host: without caps and a
    // reserve, idle clients took every descriptor and the probes failed.
    let veer = Veer::start_wrapped(&["prlimit", "--nofile=256:256", "--"], &config, &[], &[]);
    veer.expect_log("check web: unknown -> up", WAIT);
    veer.expect_log("tcp_max_connections lowered to", WAIT);
    raise_own_nofile();

    // 5,000 idle connections from 127.0.0.1's /24 (held open).
    let mut idle = Vec::new();
    let started = Instant::now();
    for _ in 0..5000 {
        if let Ok(s) = TcpStream::connect_timeout(&veer.addr, Duration::from_millis(500)) {
            idle.push(s);
        }
    }
    println!(
        "{} of 5000 idle connections opened in {:?}",
        idle.len(),
        started.elapsed()
    );

    // Over 5 s of the flood: veer's CPU, UDP queries and TCP queries from
    // another network (127.0.1.0/24), and the check's state.
    let cpu0 = cpu_seconds(veer.pid());
    let t0 = Instant::now();
    let (mut udp_ok, mut udp_sent, mut tcp_ok, mut tcp_sent) = (0, 0, 0, 0);
    let sock = wire::udp_socket(veer.addr, Duration::from_millis(500));
    while t0.elapsed() < Duration::from_secs(5) {
        udp_sent += 1;
        let q = wire::query(udp_sent as u16, 0, "app.example.test", 1);
        sock.send(&q).unwrap();
        let mut buf = [0; 512];
        if let Ok(n) = sock.recv(&mut buf)
            && n > 12
            && buf[3] & 0x0f == 0
        {
            udp_ok += 1;
        }
        tcp_sent += 1;
        if tcp_query_from("127.0.1.1", veer.addr) == Ok(0) {
            tcp_ok += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = (cpu_seconds(veer.pid()) - cpu0) / t0.elapsed().as_secs_f64();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", veer.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "under the flood: UDP {udp_ok}/{udp_sent} answered, TCP from 127.0.1.0/24 {tcp_ok}/{tcp_sent}, veer CPU {:.0}% of a core, {fds} open descriptors (limit 256)",
        cpu * 100.0
    );
    assert_eq!(udp_ok, udp_sent, "UDP queries lost under the flood");
    assert_eq!(tcp_ok, tcp_sent, "TCP from another network refused");
    assert!(cpu < 0.5, "veer spent {:.0}% of a core", cpu * 100.0);
    assert!(fds < 256, "{fds} descriptors");
    let logs = veer.logs();
    assert_eq!(
        logs.matches("check web:").count(),
        1,
        "the flood changed health:\n{logs}"
    );
    assert!(!logs.contains("Too many open files"), "{logs}");
    drop(idle);
}

#[test]
fn slow_and_silent_clients_are_closed_at_the_timeouts() {
    let web = HttpBackend::start();
    let (_dir, config) = setup(
        "tcp_idle_timeout = \"1s\"\ntcp_read_timeout = \"1500ms\"",
        &web.url("/"),
    );
    let veer = Veer::start(&config);
    let closed_after = |mut s: TcpStream, drip: bool| -> Duration {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let start = Instant::now();
        let q = wire::query(7, 0, "www.example.test", 1);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend(q);
        let mut sent = 0;
        let mut last = Instant::now() - Duration::from_secs(1);
        loop {
            assert!(start.elapsed() < WAIT, "never closed");
            if drip && sent < framed.len() && last.elapsed() >= Duration::from_secs(1) {
                // One byte per second.
                if s.write_all(&framed[sent..sent + 1]).is_err() {
                    return start.elapsed();
                }
                sent += 1;
                last = Instant::now();
            }
            let mut b = [0; 1];
            match s.read(&mut b) {
                Ok(0) => return start.elapsed(),
                Ok(_) => panic!("answered a dripped query"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return start.elapsed(),
            }
        }
    };
    // A byte per second: closed 1.5 s after the first byte.
    let t = closed_after(TcpStream::connect(veer.addr).unwrap(), true);
    println!("dripping client closed after {t:?}");
    assert!(
        (Duration::from_millis(1400)..Duration::from_secs(3)).contains(&t),
        "{t:?}"
    );
    // Silent: closed at the idle timeout (1 s).
    let t = closed_after(TcpStream::connect(veer.addr).unwrap(), false);
    println!("silent client closed after {t:?}");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&t),
        "{t:?}"
    );
}

#[test]
fn dns_and_api_clients_together_never_take_the_probes_descriptors() {
    // Connections from four /24s (each up to its per-network cap) plus
    // silent admin API connections, under a 256-descriptor limit: the
    // reserve must leave descriptors for the probes.
    let web = HttpBackend::start();
    let (dir, config) = setup("", &web.url("/"));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[[zone]]", "[api]\nlisten = \"127.0.0.1:0\"\n\n[[zone]]"),
    )
    .unwrap();
    let veer = Veer::start_wrapped(&["prlimit", "--nofile=256:256", "--"], &config, &[], &[]);
    veer.expect_log("check web: unknown -> up", WAIT);
    raise_own_nofile();
    let api_addr: SocketAddr = veer
        .logs()
        .lines()
        .find_map(|l| l.split("api listening on ").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut held = Vec::new();
    for net in 2..6 {
        for host in 1..=70 {
            use socket2::{Domain, Socket, Type};
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let local: SocketAddr = format!("127.0.{net}.{host}:0").parse().unwrap();
            s.bind(&local.into()).unwrap();
            if s.connect_timeout(&veer.addr.into(), Duration::from_millis(500))
                .is_ok()
            {
                held.push(TcpStream::from(s));
            }
        }
    }
    for _ in 0..70 {
        if let Ok(s) = TcpStream::connect_timeout(&api_addr, Duration::from_millis(500)) {
            held.push(s);
        }
    }
    // Probes go on for a second (about ten of them) with every client held.
    let before = web.hits();
    std::thread::sleep(Duration::from_secs(1));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", veer.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "{} client connections held; veer has {fds} descriptors of 256; {} probes in 1 s",
        held.len(),
        web.hits() - before
    );
    assert!(web.hits() - before >= 5, "the probes stopped");
    let logs = veer.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    assert!(!logs.contains("could not run here"), "{logs}");
    assert_eq!(logs.matches("check web:").count(), 1, "{logs}");
    drop(held);
    drop(dir);
}
