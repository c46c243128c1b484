//! systemd's readiness protocol (`sd_notify(3)`), without libsystemd: one
//! datagram of `KEY=value` lines to the unix socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`).
//!
//! - `READY=1` once the listeners are bound and the zones loaded, and
//!   again when a reload ends (applied or rejected);
//! - `RELOADING=1` with `MONOTONIC_USEC` when a reload starts;
//! - `STOPPING=1` at shutdown;
//! - `WATCHDOG=1` every `WATCHDOG_USEC / 2`, from [`watchdog`], which
//!   pings only after the controller answered a [`Command::Ping`]: a
//!   hung controller stops the pings and systemd restarts veer.
//!
//! Without `NOTIFY_SOCKET` every function here does nothing. Sending is
//! best effort: an error is logged at debug level and otherwise ignored.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::control::Command;

/// The socket to notify, from the environment (read once).
struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// How long a reload may keep the controller from answering pings before
/// the watchdog stops vouching for it.
const RELOAD_GRACE: Duration = Duration::from_secs(300);

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER
        .get_or_init(|| {
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            match connect(&path) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!("NOTIFY_SOCKET {}: {e}", path.to_string_lossy());
                    None
                }
            }
        })
        .as_ref()
}

fn connect(path: &std::ffi::OsStr) -> std::io::Result<Notifier> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(path)?,
        None => {
            return Err(std::io::Error::other(
                "neither an absolute path nor an abstract name (@...)",
            ));
        }
    };
    let socket = UnixDatagram::unbound()?;
    // A full queue at the receiver must never stall the server.
    socket.set_nonblocking(true)?;
    Ok(Notifier { socket, addr })
}

/// Whether `NOTIFY_SOCKET` names a usable socket.
pub fn enabled() -> bool {
    notifier().is_some()
}

/// Sends `state` (newline-separated `KEY=value` lines) if enabled.
pub fn notify(state: &str) {
    if let Some(n) = notifier()
        && let Err(e) = n.socket.send_to_addr(state.as_bytes(), &n.addr)
    {
        tracing::debug!("sd_notify {state:?}: {e}");
    }
}

/// `READY=1`, with a `STATUS=` line.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// `RELOADING=1` with `MONOTONIC_USEC` (now), as `Type=notify-reload`
/// and systemd's reload tracking expect.
pub fn reloading() {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
        monotonic_usec()
    ));
}

/// `STOPPING=1`.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=shutting down");
}

/// `CLOCK_MONOTONIC` in microseconds.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the struct given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The watchdog period asked for (`WATCHDOG_USEC`, for this process if
/// `WATCHDOG_PID` is set), halved as `sd_watchdog_enabled(3)` advises.
pub fn watchdog_interval() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

/// Marks when the controller started a reload (so the watchdog knows why
/// it is not answering pings), cleared when the reload ends.
#[derive(Debug, Default)]
pub struct ReloadClock(std::sync::Mutex<Option<Instant>>);

impl ReloadClock {
    /// A reload starts now.
    pub fn start(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// The reload ended.
    pub fn end(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How long the current reload has run, if one is running.
    pub fn running(&self) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }
}

/// The process-wide reload clock the controller updates.
pub fn reload_clock() -> &'static ReloadClock {
    static CLOCK: OnceLock<ReloadClock> = OnceLock::new();
    CLOCK.get_or_init(ReloadClock::default)
}

/// Pings systemd's watchdog every `period` while the controller is alive:
/// each round sends [`Command::Ping`] and pings only once it is answered
/// within `period` (or while a reload, which keeps the controller busy,
/// has run for less than [`RELOAD_GRACE`]). Returns when the command
/// channel closes.
pub async fn watchdog(period: Duration, commands: mpsc::UnboundedSender<Command>) {
    watchdog_with(period, commands, reload_clock(), notify).await
}

/// [`watchdog`] sending its notifications through `send`.
async fn watchdog_with(
    period: Duration,
    commands: mpsc::UnboundedSender<Command>,
    reloads: &ReloadClock,
    send: impl Fn(&str),
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_generation = None;
    loop {
        tick.tick().await;
        let (tx, rx) = oneshot::channel();
        if commands.send(Command::Ping { reply: tx }).is_err() {
            return;
        }
        match tokio::time::timeout(period, rx).await {
            Ok(Ok(generation)) => {
                if last_generation != Some(generation) {
                    last_generation = Some(generation);
                    send(&format!(
                        "WATCHDOG=1\nSTATUS=serving generation {generation}"
                    ));
                } else {
                    send("WATCHDOG=1");
                }
            }
            Ok(Err(_)) => return, // the controller is gone: shutting down
            Err(_) => match reloads.running() {
                Some(d) if d < RELOAD_GRACE => send("WATCHDOG=1"),
                _ => tracing::warn!(
                    "watchdog: the controller did not answer within {}; not pinging systemd",
                    humantime::format_duration(period)
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_usec_is_halved_and_pid_checked() {
        assert_eq!(
            parse_watchdog(Some("200000"), None, 7),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("x"), None, 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
    }

    #[test]
    fn a_datagram_reaches_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = connect(path.as_os_str()).unwrap();
        n.socket.send_to_addr(b"READY=1", &n.addr).unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("veer-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = connect(std::ffi::OsStr::new(&format!("@{name}"))).unwrap();
        n.socket.send_to_addr(b"STOPPING=1", &n.addr).unwrap();
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");

        assert!(connect(std::ffi::OsStr::new("relative")).is_err());
    }

    #[tokio::test]
    async fn the_watchdog_pings_only_while_the_controller_answers() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A controller that answers three pings, then hangs (keeps the
        // channel open, answers nothing).
        let controller = tokio::spawn(async move {
            let mut answered = 0;
            let mut held = Vec::new();
            while let Some(c) = rx.recv().await {
                if let Command::Ping { reply } = c {
                    if answered < 3 {
                        let _ = reply.send(7);
                        answered += 1;
                    } else {
                        held.push(reply);
                    }
                }
            }
        });
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log = sent.clone();
        let dog = tokio::spawn(async move {
            let clock = ReloadClock::default();
            watchdog_with(Duration::from_millis(10), tx, &clock, move |s| {
                log.lock().unwrap().push(s.to_string())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        dog.abort();
        controller.abort();
        let sent = sent.lock().unwrap();
        assert_eq!(
            *sent,
            [
                "WATCHDOG=1\nSTATUS=serving generation 7",
                "WATCHDOG=1",
                "WATCHDOG=1"
            ]
        );
    }

    #[test]
    fn monotonic_usec_advances() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() >= a + 1_000);
    }
}
