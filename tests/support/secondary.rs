//! A real NSD or Knot beside a test's veer, as a secondary of one of its
//! zones (AXFR/IXFR, TSIG, NOTIFY) — and a real Knot as a primary, for
//! tests where veer is the one that transfers in.
//!
//! [`Secondary::start`] writes the server's own config into a fresh
//! temporary directory (no chroot, no user switch, no daemon, no syslog;
//! every state file, database, journal and socket in that directory) and
//! starts `/usr/sbin/nsd` or `/usr/sbin/knotd` on a free `127.0.0.1`
//! port. It returns once the server answers (SERVFAIL until it has the
//! zone); [`Secondary::wait_serial`] waits for a transfer. The process is
//! stopped, by PID, on drop (SIGTERM, then SIGKILL).
//!
//! What each server is told:
//!
//! - transfers from `primary`, signed with the [`Tsig`] key if one is
//!   given; a secondary that already has the zone asks IXFR first (both
//!   NSD and Knot; Knot logs which one it got: `IXFR, incoming` or
//!   `AXFR, incoming`);
//! - NOTIFY is accepted from `primary`'s address (any source port, as
//!   NOTIFY comes from an ephemeral one) and must be signed with the key
//!   when there is one, as a real deployment would demand;
//!   [`Secondary::start_with`] can also accept unsigned NOTIFY;
//! - AXFR out to loopback without a key ([`Secondary::axfr`]), to compare
//!   whole zones;
//! - the zone is kept in memory and the journal (Knot) only: nothing is
//!   written back as a zone file.
//!
//! [`start_knot_primary`] runs Knot as the primary of a zone file the test
//! writes ([`Primary::set_zone`] rewrites it and reloads: Knot computes
//! the difference, so it serves IXFR, and sends NOTIFY).
//!
//! Order of starts: the secondaries need the primary's address, the
//! primary theirs (for NOTIFY). Reserve the primary's port with
//! [`free_port`], start the secondaries against it (they answer SERVFAIL
//! and retry), then the primary on that port with their addresses
//! ([`start_knot_primary_on`], or veer with that `listen`): it NOTIFYs
//! them as it loads the zone.
//!
//! Needs `mod common;` in the test crate (it uses [`crate::common::dig`]).
//!
//! ```ignore
//! mod common;
//! #[path = "support/secondary.rs"]
//! mod secondary;
//! use secondary::{Kind, Secondary, Tsig};
//! let key = Tsig::hmac_sha256("xfr-key", "…base64…");
//! let nsd = Secondary::start(Kind::Nsd, "example.test.", veer.addr, Some(&key));
//! nsd.wait_serial(2, Duration::from_secs(10));
//! assert_eq!(nsd.ask("www.example.test", "A"), vec!["192.0.2.10"]);
//! ```

#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::{dig, parse_rr, try_dig, wait_until};

/// How long a server may take to answer after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long drop waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many free ports a start tries before giving up (another process
/// may take a port between our probe and the server's bind).
const PORT_TRIES: usize = 5;

/// Lines of log printed when something fails.
const LOG_TAIL: usize = 60;

/// A TSIG key, as both servers (and `dig -y`) spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tsig {
    /// Key name (`xfr-key` or `xfr-key.`: both servers treat it as a
    /// domain name).
    pub name: String,
    /// `hmac-sha256`, `hmac-sha512`, ...
    pub algorithm: String,
    /// The secret, base64.
    pub secret: String,
}

impl Tsig {
    /// An `hmac-sha256` key.
    pub fn hmac_sha256(name: &str, secret: &str) -> Tsig {
        Tsig {
            name: name.to_string(),
            algorithm: "hmac-sha256".to_string(),
            secret: secret.to_string(),
        }
    }

    /// `ALG:NAME:SECRET`, the argument of `dig -y`.
    pub fn dig_key(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name, self.secret)
    }
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nsd,
    Knot,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nsd => "nsd",
            Kind::Knot => "knot",
        }
    }
}

/// A running NSD or Knot, secondary for one zone; stopped when dropped.
pub struct Secondary {
    kind: Kind,
    primary: SocketAddr,
    d: Daemon,
}

impl Secondary {
    /// Starts NSD or Knot on a free `127.0.0.1` port as a secondary for
    /// `zone` (e.g. `"example.test."`) whose primary is `primary`,
    /// transfers (and NOTIFY) signed with `tsig` if given. Returns once
    /// the server answers queries; it starts transferring at once.
    pub fn start(kind: Kind, zone: &str, primary: SocketAddr, tsig: Option<&Tsig>) -> Secondary {
        Secondary::start_with(kind, zone, primary, tsig, false)
    }

    /// [`Secondary::start`]; with `unsigned_notify`, NOTIFY from the
    /// primary's address is accepted without TSIG too (with a key, it
    /// must still verify).
    pub fn start_with(
        kind: Kind,
        zone: &str,
        primary: SocketAddr,
        tsig: Option<&Tsig>,
        unsigned_notify: bool,
    ) -> Secondary {
        let zone = fqdn(zone);
        let d = Daemon::start(kind, &zone, None, |dir, addr| match kind {
            Kind::Nsd => nsd_secondary_conf(dir, addr, &zone, primary, tsig, unsigned_notify),
            Kind::Knot => knot_secondary_conf(dir, addr, &zone, primary, tsig, unsigned_notify),
        });
        Secondary { kind, primary, d }
    }

    /// Which server this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.d.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.d.child.id()
    }

    /// Its config file.
    pub fn config(&self) -> &Path {
        &self.d.config
    }

    /// The SOA serial it serves for the zone; None until it answers
    /// authoritatively (NOERROR, AA, an SOA in the answer).
    pub fn serial(&self) -> Option<u32> {
        self.d.serial()
    }

    /// Polls until it serves serial `>= serial` (plain comparison, no
    /// RFC 1982); how long that took. Panics with the log tail after
    /// `deadline`.
    #[track_caller]
    pub fn wait_serial(&self, serial: u32, deadline: Duration) -> Duration {
        self.d.wait_serial(serial, deadline)
    }

    /// The RDATA of the answer to `name`/`rtype` (every answer record,
    /// CNAMEs included, in dig's presentation format), sorted. Panics if
    /// it does not respond.
    pub fn ask(&self, name: &str, rtype: &str) -> Vec<String> {
        self.d.ask(name, rtype)
    }

    /// The whole zone by AXFR over TCP (no key), one `name ttl class type
    /// rdata` line per record as dig prints it, sorted, the closing SOA
    /// left out. Empty if the transfer fails.
    pub fn axfr(&self) -> Vec<String> {
        self.d.axfr(None)
    }

    /// Everything the server logged so far (stderr, then its log file).
    pub fn log(&self) -> String {
        self.d.log()
    }

    /// Asks it to check the primary's SOA now and transfer if the serial
    /// is newer (IXFR first): `nsd-control transfer` / `knotc
    /// zone-refresh`. Returns once the command is accepted, not when the
    /// transfer is done: use [`Secondary::wait_serial`].
    pub fn refresh(&self) {
        match self.kind {
            Kind::Nsd => self.d.nsd_control(&["transfer", &self.d.zone]),
            Kind::Knot => self.d.knotc(&["zone-refresh", &self.d.zone]),
        }
    }

    /// Asks it to transfer the whole zone now (AXFR) whatever the
    /// serials: `nsd-control force_transfer` / `knotc zone-retransfer`.
    pub fn retransfer(&self) {
        match self.kind {
            Kind::Nsd => self.d.nsd_control(&["force_transfer", &self.d.zone]),
            Kind::Knot => self.d.knotc(&["zone-retransfer", &self.d.zone]),
        }
    }
}

/// A running Knot, primary for one zone from a zone file; stopped when
/// dropped.
pub struct Primary {
    zonefile: PathBuf,
    tsig: Option<Tsig>,
    d: Daemon,
}

/// Starts Knot on a free `127.0.0.1` port as the primary for `zone` with
/// the zone file `zonefile_text`. It allows transfers (AXFR and IXFR) to
/// any loopback address, signed with `tsig` if given (then only signed),
/// and sends NOTIFY (signed with `tsig` if given) to every `notify_to` on
/// start and on every change. Returns once it serves the zone; panics
/// (with the log) if it does not load it.
pub fn start_knot_primary(
    zone: &str,
    zonefile_text: &str,
    tsig: Option<&Tsig>,
    notify_to: &[SocketAddr],
) -> Primary {
    start_primary(None, zone, zonefile_text, tsig, notify_to)
}

/// [`start_knot_primary`] on `addr` (e.g. one reserved with
/// [`free_port`] and given to secondaries started before, so that the
/// primary can name them for NOTIFY and they it for transfers). Panics
/// if the port is taken.
pub fn start_knot_primary_on(
    addr: SocketAddr,
    zone: &str,
    zonefile_text: &str,
    tsig: Option<&Tsig>,
    notify_to: &[SocketAddr],
) -> Primary {
    start_primary(Some(addr), zone, zonefile_text, tsig, notify_to)
}

fn start_primary(
    at: Option<SocketAddr>,
    zone: &str,
    zonefile_text: &str,
    tsig: Option<&Tsig>,
    notify_to: &[SocketAddr],
) -> Primary {
    let zone = fqdn(zone);
    let mut zonefile = PathBuf::new();
    let d = Daemon::start(Kind::Knot, &zone, at, |dir, addr| {
        zonefile = dir.join("primary.zone");
        std::fs::write(&zonefile, zonefile_text).expect("write primary.zone");
        knot_primary_conf(dir, addr, &zone, &zonefile, tsig, notify_to)
    });
    let p = Primary {
        zonefile,
        tsig: tsig.cloned(),
        d,
    };
    // A zone file Knot cannot load fails at once, not at the deadline.
    let loaded = wait_until(START_TIMEOUT, || {
        p.serial().is_some() || p.log().contains("zone event 'load' failed")
    });
    if !loaded || p.serial().is_none() {
        panic!(
            "knot primary does not serve {} (waited up to {START_TIMEOUT:?}); log tail:\n{}",
            p.d.zone,
            p.d.log_tail()
        );
    }
    p
}

impl Primary {
    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.d.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.d.child.id()
    }

    /// The zone file it serves.
    pub fn zonefile(&self) -> &Path {
        &self.zonefile
    }

    /// Its config file.
    pub fn config(&self) -> &Path {
        &self.d.config
    }

    /// Rewrites the zone file with `text` and reloads it (`knotc -b
    /// zone-reload`, so Knot has loaded it when this returns; panics with
    /// the log if the reload fails). With a higher serial, Knot keeps the
    /// difference for IXFR and sends NOTIFY.
    pub fn set_zone(&self, text: &str) {
        std::fs::write(&self.zonefile, text).expect("write primary.zone");
        self.d.knotc(&["-b", "zone-reload", &self.d.zone]);
    }

    /// The SOA serial it serves.
    pub fn serial(&self) -> Option<u32> {
        self.d.serial()
    }

    /// See [`Secondary::wait_serial`].
    #[track_caller]
    pub fn wait_serial(&self, serial: u32, deadline: Duration) -> Duration {
        self.d.wait_serial(serial, deadline)
    }

    /// See [`Secondary::ask`].
    pub fn ask(&self, name: &str, rtype: &str) -> Vec<String> {
        self.d.ask(name, rtype)
    }

    /// The whole zone by AXFR (signed with the key if it has one): see
    /// [`Secondary::axfr`].
    pub fn axfr(&self) -> Vec<String> {
        self.d.axfr(self.tsig.as_ref())
    }

    /// Everything Knot logged so far (debug level: ACL decisions too).
    pub fn log(&self) -> String {
        self.d.log()
    }
}

/// The binary `name`: on PATH, else Debian's `/usr/sbin/<name>` (sbin is
/// often not on a normal user's PATH).
pub fn sbin(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    let p = Path::new("/usr/sbin").join(name);
    assert!(
        p.is_file(),
        "`{name}` is not installed: run ./scripts/test.sh, it installs the Debian packages nsd and knot"
    );
    p
}

/// A loopback port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `name` with a trailing dot.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// One NSD or Knot process with its temp dir.
struct Daemon {
    kind: Kind,
    zone: String,
    addr: SocketAddr,
    config: PathBuf,
    dir: TempDir,
    child: Child,
}

impl Daemon {
    /// Writes `conf(dir, addr)` for `at` or a free port and starts the
    /// server on it; another free port if the bind fails. Returns once the
    /// server answers a query (any rcode).
    fn start(
        kind: Kind,
        zone: &str,
        at: Option<SocketAddr>,
        mut conf: impl FnMut(&Path, SocketAddr) -> String,
    ) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix(&format!("veer-{}-", kind.name()))
            .tempdir()
            .expect("create temp dir");
        let (bin, conf_name) = match kind {
            Kind::Nsd => (sbin("nsd"), "nsd.conf"),
            Kind::Knot => (sbin("knotd"), "knot.conf"),
        };
        let config = dir.path().join(conf_name);
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            let addr = at.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
            let text = conf(dir.path(), addr);
            std::fs::write(&config, &text).expect("write config");
            // Fresh logs per try, so an old bind error does not decide
            // about this one.
            let _ = std::fs::remove_file(dir.path().join(log_name(kind)));
            let stderr = File::create(dir.path().join("stderr.log")).expect("create stderr.log");
            let mut cmd = Command::new(&bin);
            match kind {
                // -d: foreground. NSD forks its main and server processes
                // from this one (which becomes xfrd); they exit with it.
                Kind::Nsd => cmd.arg("-d").arg("-c").arg(&config),
                // knotd stays in the foreground unless -d.
                Kind::Knot => cmd.arg("-c").arg(&config),
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            if wait_ready(&mut child, addr, zone) {
                return Daemon {
                    kind,
                    zone: zone.to_string(),
                    addr,
                    config,
                    dir,
                    child,
                };
            }
            stop(&mut child);
            let log = read_log(dir.path(), kind);
            if at.is_some() || !log.to_lowercase().contains("already in use") {
                panic!(
                    "{} did not answer on {addr} within {START_TIMEOUT:?}; its log:\n{log}\nconfig:\n{text}",
                    kind.name()
                );
            }
            // Someone took the port after our probe: another one.
            last_log = log;
        }
        panic!(
            "{} could not bind a free port in {PORT_TRIES} tries; last log:\n{last_log}",
            kind.name()
        );
    }

    fn serial(&self) -> Option<u32> {
        let r = try_dig(self.addr, &["+time=1", &self.zone, "SOA"]).ok()?;
        if r.status != "NOERROR" || !r.has_flag("aa") {
            return None;
        }
        let soa = r.answer.iter().find(|rr| rr.rtype == "SOA")?;
        soa.data.split_whitespace().nth(2)?.parse().ok()
    }

    #[track_caller]
    fn wait_serial(&self, serial: u32, deadline: Duration) -> Duration {
        let start = Instant::now();
        let mut last = None;
        loop {
            last = self.serial().or(last);
            if last.is_some_and(|s| s >= serial) {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                panic!(
                    "{} on {} does not serve {} serial {serial} after {deadline:?} (last seen: {last:?}); log tail:\n{}",
                    self.kind.name(),
                    self.addr,
                    self.zone,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ask(&self, name: &str, rtype: &str) -> Vec<String> {
        let mut data = dig(self.addr, &[name, rtype]).answer_data();
        data.sort();
        data
    }

    fn axfr(&self, tsig: Option<&Tsig>) -> Vec<String> {
        let mut cmd = Command::new("dig");
        if let Some(k) = tsig {
            cmd.arg("-y").arg(k.dig_key());
        }
        let out = cmd
            .arg(format!("@{}", self.addr.ip()))
            .arg("-p")
            .arg(self.addr.port().to_string())
            .args(["+time=2", "+tries=1", "+nocmd", "+nostats"])
            .arg(&self.zone)
            .arg("AXFR")
            .stdin(Stdio::null())
            .output()
            .expect("run dig");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rrs: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .filter_map(parse_rr)
            .filter(|rr| rr.rtype != "TSIG")
            .map(|rr| rr.to_string())
            .collect();
        // The SOA opens and closes the transfer: keep one.
        if let Some(last) = rrs.last()
            && rrs.len() > 1
            && *last == rrs[0]
        {
            rrs.pop();
        }
        rrs.sort();
        rrs
    }

    fn log(&self) -> String {
        read_log(self.dir.path(), self.kind)
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    /// `knotc -s SOCKET <args>`; panics (with the log tail) unless it
    /// succeeds.
    fn knotc(&self, args: &[&str]) {
        let sock = self.dir.path().join("knot.sock");
        let mut cmd = Command::new(sbin("knotc"));
        cmd.arg("-s").arg(&sock).args(args);
        self.control(cmd, args);
    }

    /// `nsd-control -c CONFIG <args>` (over the unix socket in the temp
    /// dir: no TLS keys); panics (with the log tail) unless it succeeds.
    fn nsd_control(&self, args: &[&str]) {
        let mut cmd = Command::new(sbin("nsd-control"));
        cmd.arg("-c").arg(&self.config).args(args);
        self.control(cmd, args);
    }

    fn control(&self, mut cmd: Command, args: &[&str]) {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // nsd-control prints `error ...` with exit status 0 for some
        // failures.
        if !out.status.success() || text.starts_with("error") {
            panic!(
                "{} control {args:?} failed ({}): {text}\nlog tail:\n{}",
                self.kind.name(),
                out.status,
                self.log_tail()
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// True once the server at `addr` answers a query for `zone`'s SOA (any
/// rcode: SERVFAIL before it has the zone); false if it exits first or
/// [`START_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, addr: SocketAddr, zone: &str) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if try_dig(addr, &["+time=1", zone, "SOA"]).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to `child`'s PID (only), up to [`STOP_TIMEOUT`] for it to
/// exit, then SIGKILL; reaped either way.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's PID, not yet reaped (so the
        // PID cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !wait_until(STOP_TIMEOUT, || matches!(child.try_wait(), Ok(Some(_)))) {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// The server's stderr, then its log file, in `dir`.
fn read_log(dir: &Path, kind: Kind) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("stderr.log"), read(log_name(kind)))
}

/// The server's own log file in its temp dir.
fn log_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Nsd => "nsd.log",
        Kind::Knot => "knot.log",
    }
}

/// NSD 4.x as a secondary.
fn nsd_secondary_conf(
    dir: &Path,
    addr: SocketAddr,
    zone: &str,
    primary: SocketAddr,
    tsig: Option<&Tsig>,
    unsigned_notify: bool,
) -> String {
    let d = dir.display();
    let key_block = match tsig {
        Some(k) => format!(
            "key:\n    name: \"{}\"\n    algorithm: {}\n    secret: \"{}\"\n\n",
            k.name, k.algorithm, k.secret
        ),
        None => String::new(),
    };
    let key = tsig.map_or("NOKEY".to_string(), |k| format!("\"{}\"", k.name));
    let mut notify = format!("    allow-notify: {} {key}\n", primary.ip());
    if unsigned_notify && tsig.is_some() {
        notify.push_str(&format!("    allow-notify: {} NOKEY\n", primary.ip()));
    }
    format!(
        r#"server:
    ip-address: {ip}@{port}
    do-ip4: yes
    do-ip6: no
    # A plain process the test owns: no chroot, no user switch (NSD
    # would switch to user nsd otherwise), everything in {d}.
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    logfile: "{d}/nsd.log"
    # 2: notifies, transfers and soft warnings in the log.
    verbosity: 2
    server-count: 1
    tcp-count: 32
    reuseport: no
    # Serve a transfer at once (default: reload at most once a second).
    xfrd-reload-timeout: 0
    # The zone lives in memory only: no zone file written back.
    zonefiles-write: 0

remote-control:
    control-enable: yes
    # A unix socket needs no TLS keys (nsd-control-setup).
    control-interface: "{d}/nsd.ctl"

{key_block}zone:
    name: "{zone}"
    zonefile: "{d}/secondary.zone"
    request-xfr: {pip}@{pport} {key}
{notify}    provide-xfr: 127.0.0.0/8 NOKEY
"#,
        ip = addr.ip(),
        port = addr.port(),
        pip = primary.ip(),
        pport = primary.port(),
    )
}

/// The `server`, `log`, `database` and `control` sections of a Knot 3.x
/// config, everything in `dir`, and the `key` section for `tsig`.
fn knot_common_conf(dir: &Path, addr: SocketAddr, tsig: Option<&Tsig>) -> String {
    let d = dir.display();
    let key = match tsig {
        Some(k) => format!(
            "key:\n  - id: \"{}\"\n    algorithm: {}\n    secret: \"{}\"\n\n",
            k.name, k.algorithm, k.secret
        ),
        None => String::new(),
    };
    format!(
        r#"# No `user:`: Knot runs as whoever started it (root here), without
# switching (the Debian package's own config says knot:knot).
server:
    rundir: "{d}"
    listen: {ip}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: "{d}/knot.log"
    any: debug

database:
    storage: "{d}"
    journal-db: "{d}/journal"
    kasp-db: "{d}/kasp"
    timer-db: "{d}/timer"
    catalog-db: "{d}/catalog"

control:
    listen: "{d}/knot.sock"

{key}"#,
        ip = addr.ip(),
        port = addr.port(),
    )
}

/// `    key: NAME\n` for `tsig`, or nothing.
fn knot_key_line(tsig: Option<&Tsig>) -> String {
    tsig.map_or(String::new(), |k| format!("    key: \"{}\"\n", k.name))
}

/// Knot 3.x as a secondary.
fn knot_secondary_conf(
    dir: &Path,
    addr: SocketAddr,
    zone: &str,
    primary: SocketAddr,
    tsig: Option<&Tsig>,
    unsigned_notify: bool,
) -> String {
    let d = dir.display();
    let key = knot_key_line(tsig);
    // An ACL rule with a key matches only messages signed with it, one
    // without a key only unsigned ones.
    let unsigned = if unsigned_notify && tsig.is_some() {
        format!(
            "  - id: notify-unsigned\n    address: {}\n    action: notify\n\n",
            primary.ip()
        )
    } else {
        String::new()
    };
    let acls = if unsigned.is_empty() {
        "[notify, axfr-out]"
    } else {
        "[notify, notify-unsigned, axfr-out]"
    };
    format!(
        r#"{common}remote:
  - id: primary
    address: {pip}@{pport}
{key}
acl:
  - id: notify
    address: {pip}
    action: notify
{key}
{unsigned}  - id: axfr-out
    address: 127.0.0.0/8
    action: transfer

zone:
  - domain: "{zone}"
    storage: "{d}"
    file: "{d}/secondary.zone"
    master: primary
    acl: {acls}
    # The zone lives in the journal (whole, so a restart keeps it) and
    # in memory: never written back as a zone file, never read from one.
    zonefile-sync: -1
    zonefile-load: none
    journal-content: all
"#,
        common = knot_common_conf(dir, addr, tsig),
        pip = primary.ip(),
        pport = primary.port(),
    )
}

/// Knot 3.x as a primary of `zonefile`.
fn knot_primary_conf(
    dir: &Path,
    addr: SocketAddr,
    zone: &str,
    zonefile: &Path,
    tsig: Option<&Tsig>,
    notify_to: &[SocketAddr],
) -> String {
    let d = dir.display();
    let key = knot_key_line(tsig);
    let mut remotes = String::new();
    let mut ids = Vec::new();
    for (i, a) in notify_to.iter().enumerate() {
        remotes.push_str(&format!(
            "  - id: notify{i}\n    address: {}@{}\n{key}",
            a.ip(),
            a.port()
        ));
        ids.push(format!("notify{i}"));
    }
    let remote_section = if remotes.is_empty() {
        String::new()
    } else {
        format!("remote:\n{remotes}\n")
    };
    let notify = if ids.is_empty() {
        String::new()
    } else {
        format!("    notify: [{}]\n", ids.join(", "))
    };
    format!(
        r#"{common}{remote_section}acl:
  - id: transfer
    address: 127.0.0.0/8
    action: transfer
{key}
zone:
  - domain: "{zone}"
    storage: "{d}"
    file: "{zf}"
    acl: transfer
{notify}    # A reload keeps the difference to the zone file in the journal
    # (IXFR), and Knot never writes the test's zone file.
    zonefile-load: difference
    journal-content: changes
    zonefile-sync: -1
"#,
        common = knot_common_conf(dir, addr, tsig),
        zf = zonefile.display(),
    )
}
