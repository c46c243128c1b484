//! A fleet of real `veer serve` instances on loopback that decide health
//! together (`[fleet]`, `[[peer]]`), for the fleet-quorum tests.
//!
//! - [`Fleet::start`]: picks every fleet port up front ([`free_port`]:
//!   each config names the others' ports), writes one directory per
//!   instance (`ns1`, `ns2`, ... with probe sources 127.0.0.2, .3, ...:
//!   [`source_of`]) and starts them one after the other. DNS and the
//!   admin API listen on ephemeral ports (found from the logs, as
//!   everywhere else).
//! - [`Fleet::stop`] / [`Fleet::cont`] / [`Fleet::kill`]: SIGSTOP, SIGCONT
//!   and SIGKILL one instance by PID. On drop every stopped instance gets
//!   SIGCONT, then every instance is killed (SIGKILL by PID, through
//!   [`Veer`]'s own drop).
//! - [`Member`]: one instance: its answers, its `/v1/status` `fleet`
//!   section, its status page, its fleet endpoint.
//! - [`FakePeer`]: an HTTP server that stands where a peer's URL points
//!   and answers every request as a test says (garbage, or someone else's
//!   votes), after a delay like a long-poll would.
//! - [`score`] / [`ranked`]: the rendezvous order of instances for a check
//!   (a copy of `health::quorum::score`, pinned by a test), to know which
//!   instance must probe a check when `probers` is below the fleet size.
//!
//! Needs, in the test crate: `mod common;`, and the support files
//! `admin.rs` (as `mod admin`) and `secondary.rs` (as `mod secondary`,
//! for [`free_port`]).
//!
//! ```ignore
//! mod common;
//! #[path = "support/admin.rs"]
//! mod admin;
//! #[path = "support/secondary.rs"]
//! mod secondary;
//! #[path = "support/fleet.rs"]
//! mod fleet;
//! let f = fleet::Fleet::start(&fleet::Options::new(3, &body));
//! f.wait_live(Duration::from_secs(10));
//! assert_eq!(f.m(0).answer("www.example.test"), ["10.0.0.1"]);
//! f.stop(2);
//! ```

#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::admin::{self, Admin, Response};
use crate::common::{EXIT_TIMEOUT, Veer, wait_until_every, write_file};
use crate::secondary::free_port;

/// The fleet token of every instance (≥ 16 characters).
pub const FLEET_TOKEN: &str = "fleet-token-0123456789";

/// The log line (without the address) an instance prints once its fleet
/// listener is bound: `fleet: listening on ADDR`.
pub const FLEET_LISTENING: &str = "fleet: listening on ";

/// The path of the votes long-poll on the fleet listener.
pub const VOTES_PATH: &str = "/v1/fleet/votes";

/// The `example.test.` zone every fleet serves (routes are added by the
/// config).
pub const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@       300 IN SOA ns1 hostmaster 1000 7200 3600 1209600 60
        IN  NS  ns1
ns1     IN  A   192.0.2.53
";

/// The name of instance `i` (0-based): `ns1`, `ns2`, ...
pub fn name_of(i: usize) -> String {
    format!("ns{}", i + 1)
}

/// The probe source of instance `i` (0-based): 127.0.0.2, .3, ...
pub fn source_of(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))
}

// ---------------------------------------------------------------------------
// Rendezvous order
// ---------------------------------------------------------------------------

/// The rendezvous score of `instance` for `check`, as veer computes it
/// (`health::quorum::score`: FNV-1a 64 over the check name, a zero byte
/// and the instance name, then the SplitMix64 finaliser).
pub fn score(check: &str, instance: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in check.bytes().chain([0]).chain(instance.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// `instances` in the order they take a check on: highest score first,
/// ties by name (the first `probers` of the live ones probe it).
pub fn ranked(check: &str, instances: &[String]) -> Vec<String> {
    let mut r: Vec<(u64, String)> = instances
        .iter()
        .map(|i| (score(check, i), i.clone()))
        .collect();
    r.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    r.into_iter().map(|(_, i)| i).collect()
}

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// How a fleet is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Real instances to start: `ns1` .. `nsN`.
    pub instances: usize,
    /// Peers every real instance lists but nobody starts (name, url):
    /// e.g. a [`FakePeer`].
    pub extra_peers: Vec<(String, String)>,
    /// `quorum` as a TOML value: `"\"majority\""` or `"1"`.
    pub quorum: String,
    /// `probers` (None: not written, every instance probes).
    pub probers: Option<usize>,
    /// `peer_timeout`.
    pub peer_timeout: Duration,
    /// The checks and routes (TOML), appended to every config.
    pub body: String,
    /// The fleet listeners speak TLS with one self-signed certificate for
    /// 127.0.0.1, which every instance trusts (`tls_ca`).
    pub tls: bool,
}

impl Options {
    /// `instances` real instances, majority quorum, every instance
    /// probing, `peer_timeout = "1s"`, with `body`.
    pub fn new(instances: usize, body: &str) -> Options {
        Options {
            instances,
            extra_peers: Vec::new(),
            quorum: "\"majority\"".into(),
            probers: None,
            peer_timeout: Duration::from_secs(1),
            body: body.to_string(),
            tls: false,
        }
    }
}

/// The config of instance `i`: DNS and API on ephemeral loopback ports,
/// probes from [`source_of`]`(i)`, the fleet listener on
/// `fleet_ports[i]`, every other instance (and `extra_peers`) as a peer.
pub fn config_text(opts: &Options, i: usize, fleet_ports: &[u16]) -> String {
    let mut s = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
         [rrl]\nresponses_per_second = 0\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\ntoken = \"{}\"\n\n\
         [health]\nguard_min_checks = 100\nsource = \"{}\"\n\n\
         [fleet]\nname = \"{}\"\nlisten = \"127.0.0.1:{}\"\ntoken = \"{FLEET_TOKEN}\"\n\
         quorum = {}\npeer_timeout = \"{}ms\"\n",
        admin::TOKEN,
        source_of(i),
        name_of(i),
        fleet_ports[i],
        opts.quorum,
        opts.peer_timeout.as_millis(),
    );
    if let Some(k) = opts.probers {
        s.push_str(&format!("probers = {k}\n"));
    }
    if opts.tls {
        s.push_str(
            "tls_cert = \"../tls/cert.pem\"\ntls_key = \"../tls/key.pem\"\ntls_ca = \"../tls/cert.pem\"\n",
        );
    }
    let scheme = if opts.tls { "https" } else { "http" };
    s.push('\n');
    let peers = fleet_ports
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(j, port)| (name_of(j), format!("{scheme}://127.0.0.1:{port}")))
        .chain(opts.extra_peers.iter().cloned());
    for (name, url) in peers {
        s.push_str(&format!("[[peer]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"));
    }
    s.push_str("[[zone]]\norigin = \"example.test.\"\nfile = \"example.test.zone\"\n\n");
    s.push_str(&opts.body);
    s
}

// ---------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------

/// What became of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Running,
    Stopped,
    Killed,
}

/// One instance of a [`Fleet`].
pub struct Member {
    /// `ns1`, ...
    pub name: String,
    /// Where its probes come from.
    pub source: IpAddr,
    /// Its fleet listener.
    pub fleet_addr: SocketAddr,
    /// Its config file.
    pub config: PathBuf,
    /// The process.
    pub veer: Veer,
    /// Its admin API.
    pub api: Admin,
    run: Run,
}

impl Member {
    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.veer.logs()
    }

    /// Whether it runs (not stopped, not killed).
    pub fn is_running(&self) -> bool {
        self.run == Run::Running
    }

    /// DNS status and sorted A records of `name`, or None if no response.
    pub fn try_answer(&self, name: &str) -> Option<(String, Vec<String>)> {
        let r = crate::common::try_dig(self.veer.addr, &[name, "A"]).ok()?;
        let mut a: Vec<String> = r.answer_of("A").iter().map(|r| r.data.clone()).collect();
        a.sort();
        Some((r.status, a))
    }

    /// The sorted A records of `name`, asserting a NOERROR response.
    #[track_caller]
    pub fn answer(&self, name: &str) -> Vec<String> {
        match self.try_answer(name) {
            Some((status, a)) if status == "NOERROR" => a,
            other => panic!("{}: {name} A: {other:?}; logs:\n{}", self.name, self.logs()),
        }
    }

    /// `GET /v1/status`.
    #[track_caller]
    pub fn status(&self) -> Value {
        self.api.status()
    }

    /// The `fleet` object of `/v1/status`; panics if it has none.
    #[track_caller]
    pub fn fleet(&self) -> Value {
        let s = self.status();
        let f = s["fleet"].clone();
        assert!(
            f.is_object(),
            "{}: /v1/status has no `fleet` object: {s}",
            self.name
        );
        f
    }

    /// The length of its logs so far: a mark for [`Member::logs_since`].
    pub fn log_mark(&self) -> usize {
        self.veer.logs().len()
    }

    /// What it logged after `mark` (a [`Member::log_mark`]).
    pub fn logs_since(&self, mark: usize) -> String {
        self.veer.logs().get(mark..).unwrap_or_default().to_string()
    }

    /// Waits until a line logged after `mark` contains every one of
    /// `parts`; returns it, or None after `timeout`.
    pub fn wait_line_since(
        &self,
        mark: usize,
        parts: &[&str],
        timeout: Duration,
    ) -> Option<String> {
        let mut found = None;
        crate::common::wait_until(timeout, || {
            found = line_with(&self.logs_since(mark), parts);
            found.is_some()
        });
        found
    }

    /// The entry for `check` in `fleet.checks`, if any (None also when
    /// the API does not answer).
    pub fn try_check(&self, check: &str) -> Option<Value> {
        let s = admin::try_http(self.api.addr, "GET", "/v1/status", &[], None).ok()?;
        if s.status != 200 {
            return None;
        }
        let s: Value = serde_json::from_str(&s.body).ok()?;
        s["fleet"]["checks"]
            .as_array()?
            .iter()
            .find(|c| c["check"] == check)
            .cloned()
    }

    /// The entry for `check` in `fleet.checks`; panics without one.
    #[track_caller]
    pub fn check(&self, check: &str) -> Value {
        let f = self.fleet();
        f["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["check"] == check).cloned())
            .unwrap_or_else(|| panic!("{}: no check `{check}` in fleet.checks: {f}", self.name))
    }

    /// The entry for peer `name` in `fleet.peers`, if any.
    pub fn peer(&self, name: &str) -> Option<Value> {
        self.fleet()["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    /// `GET /` on the admin API: the status page.
    #[track_caller]
    pub fn page(&self) -> String {
        let r = self.api.get("/");
        assert_eq!(r.status, 200, "{}: GET /: {}", self.name, r.body);
        r.body
    }

    /// `GET /v1/fleet/votes?after=AFTER` on its fleet listener, with
    /// `Authorization` set to `auth` as given (None: no header).
    pub fn votes(&self, after: &str, auth: Option<&str>) -> std::io::Result<Response> {
        votes(self.fleet_addr, after, auth)
    }
}

/// `GET /v1/fleet/votes?after=AFTER` on a fleet listener, with
/// `Authorization: auth` when given.
pub fn votes(addr: SocketAddr, after: &str, auth: Option<&str>) -> std::io::Result<Response> {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    admin::try_http(
        addr,
        "GET",
        &format!("{VOTES_PATH}?after={after}"),
        &headers,
        None,
    )
}

/// `Bearer FLEET_TOKEN`.
pub fn bearer() -> String {
    format!("Bearer {FLEET_TOKEN}")
}

/// The vote of `instance` in a `fleet.checks[]` entry, if any.
pub fn vote_of(check: &Value, instance: &str) -> Option<Value> {
    check["votes"]
        .as_array()?
        .iter()
        .find(|v| v["instance"] == instance)
        .cloned()
}

/// The `state` of `instance`'s vote in a `fleet.checks[]` entry ("" if
/// it has none).
pub fn vote_state(check: &Value, instance: &str) -> String {
    vote_of(check, instance)
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Instances started from one [`Options`], each in its own directory.
pub struct Fleet {
    /// The members, `ns1` first.
    pub members: Vec<Member>,
    /// The fleet listener ports, in member order.
    pub fleet_ports: Vec<u16>,
    _dir: TempDir,
}

impl Fleet {
    /// Writes the configs and starts every instance, in order; returns
    /// once each has logged its DNS and fleet listen lines (the peers may
    /// not have heard of each other yet: see [`Fleet::wait_live`]).
    pub fn start(opts: &Options) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("veer-fleet-")
            .tempdir()
            .expect("temp dir");
        let mut fleet_ports: Vec<u16> = Vec::new();
        while fleet_ports.len() < opts.instances {
            let p = free_port();
            if !fleet_ports.contains(&p) {
                fleet_ports.push(p);
            }
        }
        if opts.tls {
            let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
                .expect("generate a self-signed certificate");
            write_file(dir.path(), "tls/cert.pem", &ck.cert.pem());
            write_file(dir.path(), "tls/key.pem", &ck.key_pair.serialize_pem());
        }
        let mut members = Vec::new();
        for i in 0..opts.instances {
            let name = name_of(i);
            let d = dir.path().join(&name);
            write_file(&d, "example.test.zone", ZONE);
            let config = write_file(&d, "veer.toml", &config_text(opts, i, &fleet_ports));
            let veer = Veer::start(&config);
            let fleet_addr = SocketAddr::from(([127, 0, 0, 1], fleet_ports[i]));
            veer.expect_log(
                &format!("{FLEET_LISTENING}{fleet_addr}"),
                Duration::from_secs(10),
            );
            let api = Admin::from_logs(&veer.logs(), admin::TOKEN);
            members.push(Member {
                name,
                source: source_of(i),
                fleet_addr,
                config,
                veer,
                api,
                run: Run::Running,
            });
        }
        Fleet {
            members,
            fleet_ports,
            _dir: dir,
        }
    }

    /// Member `i` (0-based: `m(0)` is `ns1`).
    pub fn m(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// The members that run (neither stopped nor killed).
    pub fn running(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_running())
    }

    /// Every member's name.
    pub fn names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    /// The index of the member named `name`.
    #[track_caller]
    pub fn index(&self, name: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    /// Every member's logs, labelled (for failure messages).
    pub fn all_logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("===== {} ({:?}) =====\n{}", m.name, m.run, m.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every running member reports every other running
    /// member as a live peer in `/v1/status`; panics with the logs if
    /// that takes longer than `timeout`.
    #[track_caller]
    pub fn wait_live(&self, timeout: Duration) {
        let running: Vec<String> = self.running().map(|m| m.name.clone()).collect();
        let mut last = String::new();
        let ok = wait_until_every(timeout, Duration::from_millis(50), || {
            self.running().all(|m| {
                running.iter().filter(|n| **n != m.name).all(|n| {
                    let live = m.peer(n).is_some_and(|p| p["live"] == true);
                    if !live {
                        last = format!("{} does not see {n} live: {}", m.name, m.fleet());
                    }
                    live
                })
            })
        });
        assert!(
            ok,
            "the fleet did not see each other live within {timeout:?}: {last}\n{}",
            self.all_logs()
        );
    }

    /// SIGSTOP member `i`.
    pub fn stop(&mut self, i: usize) {
        assert_eq!(
            self.members[i].run,
            Run::Running,
            "{}",
            self.members[i].name
        );
        self.members[i].veer.signal("STOP");
        self.members[i].run = Run::Stopped;
    }

    /// SIGCONT member `i` (stopped before).
    pub fn cont(&mut self, i: usize) {
        assert_eq!(
            self.members[i].run,
            Run::Stopped,
            "{}",
            self.members[i].name
        );
        self.members[i].veer.signal("CONT");
        self.members[i].run = Run::Running;
    }

    /// Starts member `i` again (killed before) with its config and state
    /// directory, and waits for its fleet listener.
    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert_eq!(m.run, Run::Killed, "{}", m.name);
        m.veer = Veer::start(&m.config);
        m.veer.expect_log(
            &format!("{FLEET_LISTENING}{}", m.fleet_addr),
            Duration::from_secs(10),
        );
        m.api = Admin::from_logs(&m.veer.logs(), admin::TOKEN);
        m.run = Run::Running;
    }

    /// SIGKILL member `i` and wait for it to exit (its logs stay readable).
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if m.run == Run::Killed {
            return;
        }
        if m.run == Run::Stopped {
            m.veer.signal("CONT");
        }
        m.veer.signal("KILL");
        assert!(
            m.veer.wait_exit(EXIT_TIMEOUT).is_some(),
            "{} did not exit after SIGKILL",
            m.name
        );
        m.run = Run::Killed;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // A stopped process is resumed first (SIGKILL would do, but a
        // stopped child left behind by a panicking test must not linger),
        // then every one is killed by `Veer`'s drop, by PID.
        for m in &self.members {
            if m.run == Run::Stopped {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(m.veer.pid().to_string())
                    .status();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// A fake peer
// ---------------------------------------------------------------------------

/// One request a [`FakePeer`] got.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// When it arrived.
    pub at: Instant,
    /// `GET`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// What a [`FakePeer`] answers: (status, JSON body) for a request.
pub type Responder = Arc<dyn Fn(&FakeRequest) -> (u16, String) + Send + Sync>;

struct FakeState {
    responder: Mutex<Responder>,
    delay: Mutex<Duration>,
    requests: Mutex<Vec<FakeRequest>>,
    answered: AtomicU64,
    stop: AtomicBool,
}

/// An HTTP server on 127.0.0.1 that a fleet member takes for a peer. It
/// records every request and answers each with what the current
/// [`Responder`] returns (`Content-Type: application/json`), after a
/// delay (default 300 ms, as a long-poll that has nothing new would).
/// Until a responder is set it answers 503. Stopped when dropped.
pub struct FakePeer {
    addr: SocketAddr,
    state: Arc<FakeState>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl FakePeer {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake peer");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            responder: Mutex::new(Arc::new(|_: &FakeRequest| {
                (503, "{\"error\":\"not yet\"}".to_string())
            })),
            delay: Mutex::new(Duration::from_millis(300)),
            requests: Mutex::default(),
            answered: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            while !st.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve_fake(stream, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakePeer {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, the url to configure for the peer.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers later requests with `f`.
    pub fn respond_with(&self, f: impl Fn(&FakeRequest) -> (u16, String) + Send + Sync + 'static) {
        *self.state.responder.lock().unwrap() = Arc::new(f);
    }

    /// Answers later requests with `status` and `body`.
    pub fn respond(&self, status: u16, body: &str) {
        let body = body.to_string();
        self.respond_with(move |_| (status, body.clone()));
    }

    /// How long each answer is held back.
    pub fn set_delay(&self, d: Duration) {
        *self.state.delay.lock().unwrap() = d;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Responses sent so far (whole, before the connection closed).
    pub fn answered(&self) -> u64 {
        self.state.answered.load(Ordering::SeqCst)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve_fake(mut s: TcpStream, st: &FakeState) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let Some((buf, head_end)) = admin::read_head(&mut s, 64 * 1024) else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    let req = FakeRequest {
        at: Instant::now(),
        method,
        path,
        authorization,
    };
    st.requests.lock().unwrap().push(req.clone());
    let delay = *st.delay.lock().unwrap();
    let end = Instant::now() + delay;
    while Instant::now() < end {
        if st.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let responder = st.responder.lock().unwrap().clone();
    let (status, body) = responder(&req);
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(resp.as_bytes())
        .and_then(|()| s.flush())
        .is_ok()
    {
        st.answered.fetch_add(1, Ordering::SeqCst);
    }
    let _ = s.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// Logs and markup
// ---------------------------------------------------------------------------

/// The first log line containing every one of `parts`, if any.
pub fn line_with(logs: &str, parts: &[&str]) -> Option<String> {
    logs.lines()
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_string)
}

/// The markup from `start` (a unique marker) to the next `end`.
#[track_caller]
pub fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the page:\n{html}"));
    let j = html[i..]
        .find(end)
        .unwrap_or_else(|| panic!("no `{end}` after `{start}` in the page:\n{html}"));
    &html[i..i + j]
}

/// The `<tr ...>...</tr>` rows of some markup (each from `<tr` up to, not
/// including, the next `<tr` or the end).
pub fn rows(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<tr") {
        let after = &rest[i + 3..];
        let end = after.find("<tr").map(|j| i + 3 + j).unwrap_or(rest.len());
        out.push(&rest[i..end]);
        rest = &rest[end..];
    }
    out
}

/// The opening tag of a row (`<tr ...>`).
pub fn opening_tag(row: &str) -> &str {
    match row.find('>') {
        Some(i) => &row[..=i],
        None => row,
    }
}

/// Whether an opening tag has `class` among its classes.
pub fn has_class(tag: &str, class: &str) -> bool {
    let Some(i) = tag.find("class=\"") else {
        return false;
    };
    let rest = &tag[i + 7..];
    let end = rest.find('"').unwrap_or(rest.len());
    rest[..end].split_whitespace().any(|c| c == class)
}

/// Visible text of some markup: tags removed, whitespace collapsed, the
/// usual entities decoded.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
