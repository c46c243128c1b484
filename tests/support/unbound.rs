//! A real Unbound recursive resolver in front of a test's veer, as a
//! domain's users see veer: `dig +rec` asks Unbound, Unbound asks veer.
//!
//! [`Unbound::start`] writes an `unbound.conf` into a fresh temporary
//! directory (no chroot, no user switch, no daemon, no syslog, no
//! remote control, no trust anchor or validator), with a `stub-zone` that
//! sends the test zone's queries to veer, and starts `/usr/sbin/unbound`
//! on a free loopback port. It returns once Unbound answers; the process
//! is killed, by PID, on drop.
//!
//! Nothing leaves loopback: besides the test zone, a stub for the root
//! points at veer too (which refuses names outside its zones), so a name
//! Unbound might chase elsewhere (a CNAME out of the zone, a typo) fails
//! fast instead of reaching the internet's root servers.
//!
//! Needs `mod common;` in the test crate (it uses [`crate::common::dig`]).
//!
//! ```ignore
//! mod common;
//! #[path = "support/unbound.rs"]
//! mod unbound;
//! let ub = unbound::Unbound::start(veer.addr, "example.test.", &[]);
//! let r = ub.dig(&["www.example.test", "A"]);
//! ```

#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::{Dig, dig, try_dig, wait_until};

/// How long [`Unbound::start`] waits for Unbound to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many free ports [`Unbound::start`] tries before giving up (another
/// process may take a port between our probe and Unbound's bind).
const PORT_TRIES: usize = 5;

/// The unbound binary: `unbound` on PATH, else Debian's `/usr/sbin/unbound`
/// (sbin is often not on a normal user's PATH).
pub fn unbound_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("unbound");
            if p.is_file() {
                return p;
            }
        }
    }
    let sbin = PathBuf::from("/usr/sbin/unbound");
    assert!(
        sbin.is_file(),
        "`unbound` is not installed: run ./scripts/test.sh, it installs the Debian package unbound"
    );
    sbin
}

/// A loopback port free for both UDP and TCP right now: bound to port 0
/// over UDP, then the same port over TCP, and both released.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running Unbound, killed when dropped.
pub struct Unbound {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// Its `unbound.conf`.
    pub config: PathBuf,
    dir: TempDir,
    child: Child,
}

impl Unbound {
    /// Starts Unbound resolving `zone` (e.g. `"example.test."`) through
    /// veer at `upstream`. `extra` are `server:` lines added after the
    /// defaults; for a single-valued option the later line wins, so
    /// `module-config: "subnetcache iterator"` replaces the default
    /// `"iterator"`.
    ///
    /// The defaults keep Unbound from doing anything a test did not ask
    /// for: no qname minimisation (one query to veer per name, not one
    /// per label), no speculative fetches of NS targets, no prefetch, no
    /// serving of expired data, no minimum TTL: a query to veer happens
    /// only on a cache miss, and a cached answer lives exactly its TTL.
    pub fn start(upstream: SocketAddr, zone: &str, extra: &[&str]) -> Unbound {
        let dir = tempfile::Builder::new()
            .prefix("veer-unbound-")
            .tempdir()
            .expect("create temp dir");
        let bin = unbound_bin();
        let config = dir.path().join("unbound.conf");
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let text = config_text(dir.path(), addr, upstream, zone, extra);
            std::fs::write(&config, &text).expect("write unbound.conf");
            // Before its logfile is open (config errors, bind errors)
            // Unbound writes to stderr. Fresh files per try, so an old
            // bind error does not decide about this one.
            let _ = std::fs::remove_file(dir.path().join("unbound.log"));
            let stderr = File::create(dir.path().join("stderr.log")).expect("create stderr.log");
            let mut child = Command::new(&bin)
                .arg("-d")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            match wait_ready(&mut child, addr) {
                Ok(()) => {
                    return Unbound {
                        addr,
                        config,
                        dir,
                        child,
                    };
                }
                Err(()) => {
                    kill(&mut child);
                    let log = read_log(dir.path());
                    if !bind_failed(&log) {
                        panic!(
                            "unbound did not answer on {addr} within {START_TIMEOUT:?}; its log:\n{log}\nconfig:\n{text}"
                        );
                    }
                    // Someone took the port after our probe: another one.
                    last_log = log;
                }
            }
        }
        panic!("unbound could not bind a free port in {PORT_TRIES} tries; last log:\n{last_log}");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Unbound's stderr and logfile so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// `dig @unbound +rec <args>`, as a user's client asks (recursion
    /// desired), parsed. Panics if no response arrived.
    pub fn dig(&self, args: &[&str]) -> Dig {
        let mut all = vec!["+rec"];
        all.extend_from_slice(args);
        dig(self.addr, &all)
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Waits until Unbound at `addr` answers a query it answers itself
/// (`version.server CH TXT`: veer sees nothing, the cache stays empty).
/// Err if the process exits first or the deadline passes.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), ()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(());
        }
        // A short timeout: the first tries may race Unbound's bind.
        if try_dig(addr, &["+time=1", "version.server", "CH", "TXT"]).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL to `child`'s PID (only), then reap it.
fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = wait_until(Duration::from_secs(5), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
}

/// Unbound's stderr, then its logfile, in `dir`.
fn read_log(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("stderr.log"), read("unbound.log"))
}

/// True if Unbound's log says it could not bind its listening port.
fn bind_failed(log: &str) -> bool {
    // `error: bind: address already in use`, then `fatal error: could
    // not open ports` (on stderr: the logfile is not open yet).
    log.contains("could not open ports") || log.to_lowercase().contains("address already in use")
}

/// The `unbound.conf` of [`Unbound::start`].
fn config_text(
    dir: &Path,
    addr: SocketAddr,
    upstream: SocketAddr,
    zone: &str,
    extra: &[&str],
) -> String {
    let d = dir.display();
    let extra: String = extra.iter().map(|l| format!("    {l}\n")).collect();
    let up = format!("{}@{}", upstream.ip(), upstream.port());
    format!(
        r#"server:
    interface: {ip}@{port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    # A plain process the test owns: no chroot, no user switch, no fork.
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    do-daemonize: no
    use-syslog: no
    logfile: "{d}/unbound.log"
    verbosity: 1
    num-threads: 1
    # A port shared with another SO_REUSEPORT socket would split the
    # queries: fail to bind instead, and the harness picks another port.
    so-reuseport: no
    outgoing-interface: 127.0.0.1
    outgoing-range: 64
    num-queries-per-thread: 32
    # veer is on loopback.
    do-not-query-localhost: no
    # One query to veer per cache miss, nothing on the side.
    qname-minimisation: no
    target-fetch-policy: "0 0 0 0 0"
    prefetch: no
    prefetch-key: no
    serve-expired: no
    cache-min-ttl: 0
    # No trust anchor, no validator.
    module-config: "iterator"
    # "test." is one of Unbound's default local zones (RFC 6761): let
    # queries for the veer zone through to the stub.
    local-zone: "{zone}" transparent
{extra}
remote-control:
    control-enable: no

stub-zone:
    name: "{zone}"
    stub-addr: {up}

# Everything else goes to veer too, which refuses it: no query leaves
# loopback for the internet's root servers.
stub-zone:
    name: "."
    stub-addr: {up}
"#,
        ip = addr.ip(),
        port = addr.port(),
    )
}
