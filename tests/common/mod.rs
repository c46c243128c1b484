//! Shared harness for veer's integration tests.
//!
//! Every test file that needs it starts with `mod common;`. The pieces:
//!
//! - [`Veer`]: the real `veer serve` binary on an ephemeral loopback port,
//!   its stderr collected in the background, killed on drop.
//! - [`scenario`]: a fresh, editable copy of `tests/fixtures/<name>/`
//!   (a `veer.toml` with `listen = ["127.0.0.1:0"]` and relative zone paths,
//!   plus its zone files); [`routing_scenario`] adds the geo database the
//!   `routing` scenario needs, [`set_health`] flips its `file` checks.
//! - [`dig`] / [`Dig`]: run `dig` as a user would and parse its default
//!   output into rcode, flags, sections and the EDNS pseudo-section.
//! - [`wait_until`]: poll a condition against a deadline (no fixed sleeps).
//! - [`wire`]: hand-built packets for malformed-input tests.
//! - [`run_veer`]: run a one-shot command (`veer check ...`) with a deadline.
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! let dir = scenario("auth");
//! let veer = Veer::start_in(dir.path());
//! let r = veer.dig(&["www.example.test", "A"]);
//! assert_eq!(r.status, "NOERROR", "{}", r.raw);
//! assert!(r.has_flag("aa"));
//! ```

#![allow(dead_code)]

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long `Veer::start` waits for the server to log its listen addresses.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `Veer::terminate` waits for the process to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The log line (without the address) the server prints per bound address:
/// `dns listening on ADDR (udp, tcp)`.
pub const LISTENING: &str = "dns listening on ";

/// Path of the `veer` binary Cargo built for these tests.
pub fn veer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_veer")
}

/// `tests/fixtures/<name>` in the source tree (read-only: use [`scenario`]
/// to get a copy the test may edit).
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies `tests/fixtures/<name>/` (recursively) into a fresh temporary
/// directory, so a test can edit the config or zones without touching the
/// source tree. The directory is removed when the `TempDir` drops.
pub fn scenario(name: &str) -> TempDir {
    let src = fixture_dir(name);
    assert!(
        src.join("veer.toml").is_file(),
        "fixture {} has no veer.toml",
        src.display()
    );
    let dir = tempfile::Builder::new()
        .prefix(&format!("veer-{name}-"))
        .tempdir()
        .expect("create temp dir");
    copy_dir(&src, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("read_dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// [`scenario`] `routing` with its geo database `geo/test.mmdb` written
/// (tests/common/mmdb.rs; never downloaded): 203.0.113.0/25 EU DE BY,
/// 203.0.113.128/25 EU FR, 198.51.100.0/24 NA US VA, 2001:db8:de::/48
/// EU DE BY. The fixture's `geo/networks.txt` adds 100.64.0.0/16 EU DE BY.
pub fn routing_scenario() -> TempDir {
    use mmdb::Loc;
    let dir = scenario("routing");
    let de = Loc {
        continent: "EU",
        country: "DE",
        subdivision: Some("BY"),
        coords: Some((48.1, 11.6)),
    };
    mmdb::write(
        &dir.path().join("geo/test.mmdb"),
        &[
            ("203.0.113.0/25", de),
            (
                "203.0.113.128/25",
                Loc {
                    continent: "EU",
                    country: "FR",
                    subdivision: None,
                    coords: Some((48.85, 2.35)),
                },
            ),
            (
                "198.51.100.0/24",
                Loc {
                    continent: "NA",
                    country: "US",
                    subdivision: Some("VA"),
                    coords: Some((39.0, -77.5)),
                },
            ),
            ("2001:db8:de::/48", de),
        ],
    );
    dir
}

/// Writes `state` (`up`/`down`) into `dir/health/NAME`, the file a `file`
/// check of the `routing` scenario reads, atomically (write, then rename).
pub fn set_health(dir: &Path, name: &str, state: &str) {
    let tmp = dir.join(format!("health/.{name}.tmp"));
    std::fs::write(&tmp, format!("{state}\n")).unwrap();
    std::fs::rename(&tmp, dir.join(format!("health/{name}"))).unwrap();
}

/// Writes `text` to `dir/rel` (creating parent directories) and returns the
/// full path. Handy for configs and zones built inside a test.
pub fn write_file(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dir");
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Polls `cond` every 10 ms until it returns true (→ true) or `timeout`
/// passes (→ false). `cond` is always evaluated at least once, and once
/// more at the deadline.
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    wait_until_every(timeout, Duration::from_millis(10), cond)
}

/// [`wait_until`] polling every `every`.
pub fn wait_until_every(
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `veer serve`, killed (SIGKILL) when dropped unless it already
/// exited through [`Veer::terminate`] or [`Veer::wait_exit`].
pub struct Veer {
    /// The first address the server reported listening on (port resolved).
    pub addr: SocketAddr,
    /// Every address it reported, in log order.
    pub addrs: Vec<SocketAddr>,
    /// The config file it was started with.
    pub config: PathBuf,
    child: Child,
    logs: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Veer {
    /// Starts `veer serve --config <config>` and waits until it has logged
    /// every listen address of the config (`dns listening on ADDR (udp, tcp)`).
    /// Panics, with the server's logs, if that does not happen within
    /// [`START_TIMEOUT`] or the process exits first.
    pub fn start(config: &Path) -> Veer {
        Veer::start_with(config, &[])
    }

    /// [`Veer::start`] for the config at `dir/veer.toml` (e.g. a [`scenario`]).
    pub fn start_in(dir: &Path) -> Veer {
        Veer::start(&dir.join("veer.toml"))
    }

    /// [`Veer::start`] with extra command-line arguments appended after
    /// `serve --config PATH` (e.g. `["--log-format", "json"]`,
    /// `["--workers", "1"]`). `RUST_LOG` is removed from the child's
    /// environment so the default `info` level (which logs the listen line)
    /// applies; pass `--log-level` to change it.
    pub fn start_with(config: &Path, args: &[&str]) -> Veer {
        Veer::start_env(config, args, &[])
    }

    /// [`Veer::start_with`] with `env` (name, value) set for the server.
    pub fn start_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Veer {
        Veer::start_wrapped(&[], config, args, env)
    }

    /// [`Veer::start_env`] run under `wrapper` (e.g. `["prlimit",
    /// "--nofile=256:256", "--"]`); the PID is the wrapper's, which execs.
    pub fn start_wrapped(
        wrapper: &[&str],
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Veer {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(veer_bin());
                c
            }
            None => Command::new(veer_bin()),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", veer_bin()));
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&line)),
                }
            }
        });
        let mut veer = Veer {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            addrs: Vec::new(),
            config: config.to_path_buf(),
            child,
            logs,
            reader: Some(reader),
            status: None,
        };
        let expected = listen_count(config);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let addrs = listening_addrs(&veer.logs());
            if addrs.len() >= expected {
                veer.addr = addrs[0];
                veer.addrs = addrs;
                return veer;
            }
            if let Ok(Some(status)) = veer.child.try_wait() {
                veer.status = Some(status);
                veer.join_reader();
                panic!(
                    "veer serve --config {} exited with {status} before listening; logs:\n{}",
                    config.display(),
                    veer.logs()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "veer serve --config {} did not log `{LISTENING}...` for {expected} address(es) within {START_TIMEOUT:?}; logs:\n{}",
                    config.display(),
                    veer.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the logs contain `substr`; false on timeout.
    pub fn wait_for_log(&self, substr: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.logs.lock().unwrap().contains(substr))
    }

    /// Fails the test (with the logs) unless `text` shows up within `timeout`.
    #[track_caller]
    pub fn expect_log(&self, text: &str, timeout: Duration) {
        assert!(
            self.wait_for_log(text, timeout),
            "no `{text}` in the logs within {timeout:?}:\n{}",
            self.logs()
        );
    }

    /// Sends a signal by name (`"TERM"`, `"INT"`, `"HUP"`, ...) with `kill`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Replaces its config file with `text` (by rename), sends SIGHUP
    /// and waits until the reload is applied; panics with the logs if it
    /// is not within 10 s.
    #[track_caller]
    pub fn reload_with(&self, text: &str) {
        let before = self.logs().matches("reload applied").count();
        let tmp = self.config.with_extension("toml.tmp");
        std::fs::write(&tmp, text).expect("write the new config");
        std::fs::rename(&tmp, &self.config).expect("rename the new config");
        self.signal("HUP");
        assert!(
            wait_until(Duration::from_secs(10), || self
                .logs()
                .matches("reload applied")
                .count()
                > before),
            "the reload was not applied:\n{}",
            self.logs()
        );
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.status = Some(s);
                self.join_reader();
                false
            }
            _ => true,
        }
    }

    /// Waits up to `timeout` for the process to exit; its status, or None
    /// if it is still running. Once it has exited the logs are complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || !self.is_running());
        self.status
    }

    /// Sends SIGTERM and waits up to [`EXIT_TIMEOUT`] for the exit status.
    /// Panics (after SIGKILL) if the process does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        self.signal("TERM");
        match self.wait_exit(EXIT_TIMEOUT) {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "veer did not exit within {EXIT_TIMEOUT:?} of SIGTERM; logs:\n{}",
                    self.logs()
                );
            }
        }
    }

    /// [`dig`] against this server's first address.
    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.addr, args)
    }

    fn join_reader(&mut self) {
        // The child has exited, so stderr reaches EOF soon (unless a
        // grandchild holds it): wait for the reader with a deadline.
        if let Some(h) = self.reader.take()
            && wait_until(Duration::from_secs(2), || h.is_finished())
        {
            let _ = h.join();
        }
    }
}

impl Drop for Veer {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Number of `[server] listen` entries of the config at `path` (1 if the
/// file cannot be read as TOML).
fn listen_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("server")?.get("listen")?.as_array().map(|a| a.len()))
        .unwrap_or(1)
        .max(1)
}

/// Every `dns listening on ADDR (udp, tcp)` address found in `logs` (works
/// for both the text and the JSON log format).
pub fn listening_addrs(logs: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let mut rest = logs;
    while let Some(i) = rest.find(LISTENING) {
        rest = &rest[i + LISTENING.len()..];
        if let Some(end) = rest.find(" (udp, tcp)")
            && let Ok(a) = rest[..end].parse::<SocketAddr>()
        {
            out.push(a);
        }
    }
    out
}

/// Runs `veer <args>` to completion (stdin closed, `RUST_LOG` removed) and
/// returns its output. Panics if it takes longer than `timeout`.
pub fn run_veer(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(veer_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", veer_bin()));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("veer {args:?} did not finish within {timeout:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------
// dig
// ---------------------------------------------------------------------------

/// One resource record as dig prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// Owner name as printed (fully qualified, trailing dot).
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Class (`IN`).
    pub class: String,
    /// Type mnemonic (`A`, `CNAME`, ...).
    pub rtype: String,
    /// RDATA in presentation format, as printed by dig.
    pub data: String,
}

impl fmt::Display for Rr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.name, self.ttl, self.class, self.rtype, self.data
        )
    }
}

/// The OPT pseudo-section of a response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EdnsInfo {
    /// EDNS version.
    pub version: u8,
    /// Advertised UDP payload size.
    pub udp: u16,
    /// EDNS flags (`do`).
    pub flags: Vec<String>,
    /// The CLIENT-SUBNET option as printed (`192.0.2.0/24/0`: address,
    /// source prefix, scope prefix).
    pub subnet: Option<String>,
    /// Every option line other than the `EDNS:` line, without the leading
    /// `; ` (e.g. `CLIENT-SUBNET: 192.0.2.0/24/0`, `COOKIE: ...`).
    pub options: Vec<String>,
}

/// Header counts as printed by dig (ADDITIONAL includes the OPT record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub query: u16,
    pub answer: u16,
    pub authority: u16,
    pub additional: u16,
}

/// A parsed dig response (the last one dig printed, if it retried).
#[derive(Debug, Clone, Default)]
pub struct Dig {
    /// Opcode as printed (`QUERY`, `RESERVED15`, ...).
    pub opcode: String,
    /// Rcode as printed, extended rcodes included (`NOERROR`, `BADVERS`, ...).
    /// Empty if no response was received.
    pub status: String,
    /// Header flags (`qr`, `aa`, `tc`, `rd`, `ra`, ...).
    pub flags: Vec<String>,
    /// Header counts.
    pub counts: Counts,
    /// Question lines, whitespace-normalised: `www.example.test. IN A`.
    pub question: Vec<String>,
    /// Answer section.
    pub answer: Vec<Rr>,
    /// Authority section.
    pub authority: Vec<Rr>,
    /// Additional section (without the OPT record).
    pub additional: Vec<Rr>,
    /// The OPT pseudo-section, if the response had one.
    pub edns: Option<EdnsInfo>,
    /// Transport of the last response (`UDP` or `TCP`, from `;; SERVER:`).
    pub transport: String,
    /// dig's whole output, for assertion messages.
    pub raw: String,
}

impl Dig {
    /// True if dig printed a response header.
    pub fn responded(&self) -> bool {
        !self.status.is_empty()
    }

    /// True if the header flag `flag` (`aa`, `tc`, `rd`, `ra`, `qr`) is set.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// RDATA of every answer record, in order.
    pub fn answer_data(&self) -> Vec<String> {
        self.answer.iter().map(|r| r.data.clone()).collect()
    }

    /// Answer records of type `rtype`.
    pub fn answer_of(&self, rtype: &str) -> Vec<&Rr> {
        self.answer.iter().filter(|r| r.rtype == rtype).collect()
    }

    /// `(rcode, flags, answer, authority, additional)`: everything but the
    /// transport-specific parts (OPT, message id), for comparing responses.
    pub fn content(&self) -> (String, Vec<String>, Vec<Rr>, Vec<Rr>, Vec<Rr>) {
        let mut flags = self.flags.clone();
        flags.sort();
        (
            self.status.clone(),
            flags,
            self.answer.clone(),
            self.authority.clone(),
            self.additional.clone(),
        )
    }

    /// Parses dig's default output. When dig printed several responses
    /// (e.g. a retry over TCP after TC), the last one wins.
    pub fn parse(raw: &str) -> Dig {
        #[derive(PartialEq)]
        enum Sec {
            None,
            Opt,
            Question,
            Answer,
            Authority,
            Additional,
        }
        let mut d = Dig {
            raw: raw.to_string(),
            ..Dig::default()
        };
        let mut sec = Sec::None;
        for line in raw.lines() {
            let t = line.trim();
            if t.is_empty() {
                sec = Sec::None;
                continue;
            }
            if let Some(h) = t.strip_prefix(";; ->>HEADER<<- ") {
                // A new response: forget any earlier one.
                d = Dig {
                    raw: raw.to_string(),
                    ..Dig::default()
                };
                for part in h.split(", ") {
                    if let Some(v) = part.strip_prefix("opcode: ") {
                        d.opcode = v.to_string();
                    } else if let Some(v) = part.strip_prefix("status: ") {
                        d.status = v.to_string();
                    }
                }
                sec = Sec::None;
                continue;
            }
            if let Some(f) = t.strip_prefix(";; flags:") {
                let (flags, counts) = f.split_once(';').unwrap_or((f, ""));
                d.flags = flags.split_whitespace().map(str::to_string).collect();
                for part in counts.split(',') {
                    if let Some((k, v)) = part.trim().split_once(": ") {
                        let v = v.trim().parse().unwrap_or(0);
                        match k {
                            "QUERY" => d.counts.query = v,
                            "ANSWER" => d.counts.answer = v,
                            "AUTHORITY" => d.counts.authority = v,
                            "ADDITIONAL" => d.counts.additional = v,
                            _ => {}
                        }
                    }
                }
                continue;
            }
            match t {
                ";; OPT PSEUDOSECTION:" => {
                    sec = Sec::Opt;
                    d.edns = Some(EdnsInfo::default());
                    continue;
                }
                ";; QUESTION SECTION:" => {
                    sec = Sec::Question;
                    continue;
                }
                ";; ANSWER SECTION:" => {
                    sec = Sec::Answer;
                    continue;
                }
                ";; AUTHORITY SECTION:" => {
                    sec = Sec::Authority;
                    continue;
                }
                ";; ADDITIONAL SECTION:" => {
                    sec = Sec::Additional;
                    continue;
                }
                _ => {}
            }
            if let Some(s) = t.strip_prefix(";; SERVER: ") {
                if let (Some(a), Some(b)) = (s.rfind('('), s.rfind(')')) {
                    d.transport = s[a + 1..b].to_string();
                }
                continue;
            }
            if t.starts_with(";;") {
                continue;
            }
            match sec {
                Sec::None => {}
                Sec::Opt => {
                    let e = d.edns.get_or_insert_with(EdnsInfo::default);
                    let t = t.trim_start_matches(';').trim();
                    if let Some(v) = t.strip_prefix("EDNS: ") {
                        for part in v.split([',', ';']) {
                            let part = part.trim();
                            if let Some(x) = part.strip_prefix("version: ") {
                                e.version = x.trim().parse().unwrap_or(255);
                            } else if let Some(x) = part.strip_prefix("udp: ") {
                                e.udp = x.trim().parse().unwrap_or(0);
                            } else if let Some(x) = part.strip_prefix("flags:") {
                                e.flags = x.split_whitespace().map(str::to_string).collect();
                            }
                        }
                    } else {
                        if let Some(v) = t.strip_prefix("CLIENT-SUBNET: ") {
                            e.subnet = Some(v.trim().to_string());
                        }
                        e.options.push(t.to_string());
                    }
                }
                Sec::Question => {
                    let q = t.trim_start_matches(';');
                    d.question
                        .push(q.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                Sec::Answer | Sec::Authority | Sec::Additional => {
                    if t.starts_with(';') {
                        continue;
                    }
                    let Some(rr) = parse_rr(t) else {
                        panic!("cannot parse dig record line `{t}` in:\n{raw}");
                    };
                    match sec {
                        Sec::Answer => d.answer.push(rr),
                        Sec::Authority => d.authority.push(rr),
                        _ => d.additional.push(rr),
                    }
                }
            }
        }
        d
    }
}

fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Parses `name ttl class type rdata...` (rdata kept verbatim).
pub fn parse_rr(line: &str) -> Option<Rr> {
    let (name, rest) = next_token(line)?;
    let (ttl, rest) = next_token(rest)?;
    let (class, rest) = next_token(rest)?;
    let (rtype, rest) = next_token(rest)?;
    Some(Rr {
        name: name.to_string(),
        ttl: ttl.parse().ok()?,
        class: class.to_string(),
        rtype: rtype.to_string(),
        data: rest.trim().to_string(),
    })
}

/// Runs `dig @IP -p PORT +norec +time=2 +tries=1 <args>` and parses the
/// output. Later arguments override the defaults (`+rec`, `+tries=3`).
/// Panics if dig is missing or no response arrived (use [`try_dig`] when
/// silence is an acceptable outcome).
pub fn dig(addr: SocketAddr, args: &[&str]) -> Dig {
    match try_dig(addr, args) {
        Ok(d) => d,
        Err(raw) => panic!("dig {args:?} against {addr} got no response:\n{raw}"),
    }
}

/// [`dig`], but a missing response is `Err(dig's output)` instead of a panic.
pub fn try_dig(addr: SocketAddr, args: &[&str]) -> Result<Dig, String> {
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", addr.ip()))
        .arg("-p")
        .arg(addr.port().to_string());
    // veer listens on an ephemeral port, and the kernel may give dig that
    // same port as its source (dig then reads its own query): a source
    // port just found free, never veer's.
    if addr.ip().is_loopback()
        && addr.is_ipv4()
        && !args.contains(&"-b")
        && let Ok(port) = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
    {
        cmd.args(["-b", &format!("127.0.0.1#{port}")]);
    }
    let out = match cmd
        .args(["+norec", "+time=2", "+tries=1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`dig` is not installed: run ./scripts/test.sh, it installs bind9-dnsutils")
        }
        Err(e) => panic!("cannot run dig: {e}"),
    };
    let mut raw = String::from_utf8_lossy(&out.stdout).into_owned();
    raw.push_str(&String::from_utf8_lossy(&out.stderr));
    let d = Dig::parse(&raw);
    if d.responded() { Ok(d) } else { Err(raw) }
}

// ---------------------------------------------------------------------------
// Raw packets
// ---------------------------------------------------------------------------

/// Hand-built DNS messages and plain-socket exchanges, for inputs `dig`
/// cannot produce.
pub mod mmdb;

pub mod wire {
    use std::io::{self, Read, Write};
    use std::net::{SocketAddr, TcpStream, UdpSocket};
    use std::time::{Duration, Instant};

    /// DNS header size.
    pub const HEADER_LEN: usize = 12;
    /// QR: this is a response.
    pub const QR: u16 = 0x8000;
    /// AA: authoritative answer.
    pub const AA: u16 = 0x0400;
    /// TC: truncated.
    pub const TC: u16 = 0x0200;
    /// RD: recursion desired.
    pub const RD: u16 = 0x0100;
    /// RA: recursion available.
    pub const RA: u16 = 0x0080;
    /// Type A.
    pub const TYPE_A: u16 = 1;
    /// Class IN.
    pub const CLASS_IN: u16 = 1;
    /// Rcodes.
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;

    /// The opcode bits for `op` (0..=15), to OR into the flags.
    pub fn opcode(op: u8) -> u16 {
        u16::from(op & 0xf) << 11
    }

    /// A 12-byte header.
    pub fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
        [id, flags, qd, an, ns, ar]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }

    /// `name` in wire format, letter case kept (`"www.example.test"` or
    /// with the trailing dot).
    pub fn name(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            assert!(label.len() < 64, "label too long: {label}");
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A question entry.
    pub fn question(qname: &str, qtype: u16, qclass: u16) -> Vec<u8> {
        let mut q = name(qname);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&qclass.to_be_bytes());
        q
    }

    /// A standard query (flags as given, one IN question, nothing else).
    pub fn query(id: u16, flags: u16, qname: &str, qtype: u16) -> Vec<u8> {
        let mut m = header(id, flags, 1, 0, 0, 0);
        m.extend(question(qname, qtype, CLASS_IN));
        m
    }

    /// A parsed message header.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Header {
        pub id: u16,
        pub flags: u16,
        pub qdcount: u16,
        pub ancount: u16,
        pub nscount: u16,
        pub arcount: u16,
    }

    impl Header {
        /// The header of `msg`, if it has 12 bytes.
        pub fn parse(msg: &[u8]) -> Option<Header> {
            if msg.len() < HEADER_LEN {
                return None;
            }
            let w = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
            Some(Header {
                id: w(0),
                flags: w(2),
                qdcount: w(4),
                ancount: w(6),
                nscount: w(8),
                arcount: w(10),
            })
        }
        pub fn qr(&self) -> bool {
            self.flags & QR != 0
        }
        pub fn opcode(&self) -> u8 {
            ((self.flags >> 11) & 0xf) as u8
        }
        pub fn aa(&self) -> bool {
            self.flags & AA != 0
        }
        pub fn tc(&self) -> bool {
            self.flags & TC != 0
        }
        pub fn rd(&self) -> bool {
            self.flags & RD != 0
        }
        pub fn ra(&self) -> bool {
            self.flags & RA != 0
        }
        /// The 4-bit header rcode (extended bits live in the OPT record).
        pub fn rcode(&self) -> u8 {
            (self.flags & 0xf) as u8
        }
    }

    fn local_for(addr: SocketAddr) -> SocketAddr {
        if addr.is_ipv6() {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        }
    }

    /// A UDP socket connected to `addr` with `timeout` as read timeout.
    pub fn udp_socket(addr: SocketAddr, timeout: Duration) -> UdpSocket {
        let s = UdpSocket::bind(local_for(addr)).expect("bind UDP");
        s.connect(addr).expect("connect UDP");
        s.set_read_timeout(Some(timeout)).expect("read timeout");
        s
    }

    /// Sends `msg` over UDP and returns the first datagram that comes back
    /// within `timeout`, or None.
    pub fn udp_exchange(addr: SocketAddr, msg: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        let s = udp_socket(addr, timeout);
        s.send(msg).expect("send UDP");
        let mut buf = vec![0; 65535];
        match s.recv(&mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Sends one length-prefixed `msg` over a new TCP connection and reads
    /// one length-prefixed response (everything within `timeout`).
    pub fn tcp_exchange(addr: SocketAddr, msg: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(msg);
        s.write_all(&framed)?;
        let mut len = [0; 2];
        s.read_exact(&mut len)?;
        let mut buf = vec![0; u16::from_be_bytes(len) as usize];
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))?;
        s.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// A small deterministic PRNG (xorshift64*) for fuzz-like inputs.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// `n` random bytes.
        pub fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next_u64() as u8).collect()
        }
        /// A value in `0..n`.
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
    }
}
