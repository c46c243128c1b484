//! systemd notifications (`NOTIFY_SOCKET`): the real binary talks to a
//! unix datagram socket the test binds, as systemd would.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Every datagram received, with when it arrived.
struct Socket {
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Socket {
    fn bind() -> Socket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        // Ends with the test process (blocked in recv).
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        Socket {
            got,
            _dir: dir,
            path,
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Index of the first message from `from` on with a line `line`,
    /// waiting up to 10 s.
    #[track_caller]
    fn wait(&self, from: usize, line: &str) -> usize {
        let mut at = None;
        wait_until(Duration::from_secs(10), || {
            at = self
                .messages()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, (_, m))| m.lines().any(|l| l == line))
                .map(|(i, _)| i);
            at.is_some()
        });
        at.unwrap_or_else(|| panic!("no {line} within 10 s; got {:?}", self.texts()))
    }

    fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|(_, m)| m).collect()
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the struct given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[test]
fn ready_reloading_stopping_are_sent() {
    let sock = Socket::bind();
    let dir = scenario("auth");
    let mut veer = Veer::start_env(
        &dir.path().join("veer.toml"),
        &[],
        &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())],
    );
    let ready = sock.wait(0, "READY=1");
    // Nothing before READY; READY says what is served; and by then DNS
    // answers.
    assert_eq!(ready, 0, "{:?}", sock.texts());
    assert!(
        sock.texts()[0].contains("STATUS=serving generation "),
        "{:?}",
        sock.texts()
    );
    let r = veer.dig(&["www.example.test", "A"]);
    assert_eq!(r.answer_data(), ["192.0.2.80"], "{}", r.raw);
    // No watchdog asked for: no pings.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !sock.texts().iter().any(|m| m.contains("WATCHDOG=1")),
        "{:?}",
        sock.texts()
    );

    // SIGHUP: RELOADING=1 with a current MONOTONIC_USEC, then READY=1.
    let before = monotonic_usec();
    let n = sock.messages().len();
    veer.signal("HUP");
    let reloading = sock.wait(n, "RELOADING=1");
    let after = monotonic_usec();
    let msg = &sock.texts()[reloading];
    let usec: u64 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {msg:?}"))
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC {usec} not within [{before}, {after}]"
    );
    let ready = sock.wait(reloading + 1, "READY=1");
    assert!(
        sock.texts()[ready].contains("STATUS=serving generation "),
        "{:?}",
        sock.texts()
    );

    // A rejected reload ends with READY=1 too (still serving).
    let config = dir.path().join("veer.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replacen("[server]\n", "[server]\nlisen = 1\n", 1),
    )
    .unwrap();
    let n = sock.messages().len();
    veer.signal("HUP");
    let reloading = sock.wait(n, "RELOADING=1");
    let ready = sock.wait(reloading + 1, "READY=1");
    assert!(
        sock.texts()[ready].contains("STATUS=reload rejected"),
        "{:?}",
        sock.texts()
    );

    // SIGTERM: STOPPING=1, then the exit.
    let n = sock.messages().len();
    assert!(veer.terminate().success(), "logs:\n{}", veer.logs());
    assert!(
        sock.texts()[n..].iter().any(|m| m.contains("STOPPING=1")),
        "{:?}",
        sock.texts()
    );
}

#[test]
fn watchdog_pings_arrive_every_half_period() {
    let sock = Socket::bind();
    let dir = scenario("auth");
    let mut veer = Veer::start_env(
        &dir.path().join("veer.toml"),
        &[],
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    sock.wait(0, "READY=1");
    let from = sock.messages().len();
    std::thread::sleep(Duration::from_millis(1500));
    let pings: Vec<Instant> = sock.messages()[from..]
        .iter()
        .filter(|(_, m)| m.lines().next() == Some("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    println!("{} pings in 1.5 s; gaps {gaps:?}", pings.len());
    assert!(
        pings.len() >= 8,
        "{} pings: {:?}",
        pings.len(),
        sock.texts()
    );
    // systemd wants one every WATCHDOG_USEC (200 ms); veer pings every
    // 100 ms, so a gap over 200 ms means one was missed.
    let worst = gaps.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(200),
        "a gap of {worst:?}: {gaps:?}"
    );
    assert!(veer.terminate().success(), "logs:\n{}", veer.logs());
}

#[test]
fn watchdog_pid_of_another_process_means_no_pings() {
    let sock = Socket::bind();
    let dir = scenario("auth");
    let mut veer = Veer::start_env(
        &dir.path().join("veer.toml"),
        &[],
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    sock.wait(0, "READY=1");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !sock.texts().iter().any(|m| m.contains("WATCHDOG=1")),
        "{:?}",
        sock.texts()
    );
    assert!(veer.terminate().success(), "logs:\n{}", veer.logs());
}
