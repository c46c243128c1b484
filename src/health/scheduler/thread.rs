//! The probes' own thread: a current-thread tokio runtime that runs every
//! probe task, the timer service ([`super::timers`]) and the I/O of the
//! probes, apart from the DNS server and the admin API. (Plain `http://`
//! checks are probed on the engine's thread instead, see
//! [`super::engine`]; their tasks wait here.)
//!
//! Why a thread of their own: on the multi-threaded runtime a probe's
//! connect, write and read were woken on whichever worker parked on the
//! reactor and often moved to another, so each probe cost several worker
//! wakeups (futex calls, a worker stealing) for a few microseconds of
//! work. Here a probe's wakeups stay on one thread, which parks in
//! epoll_wait between them. And a flood of DNS queries or a crowd of idle
//! TCP connections on the server's runtime cannot delay a probe (it would
//! then time out and fail a healthy backend): the kernel schedules this
//! thread on its own.
//!
//! The thread ends when the [`ProbeThread`] is dropped: its runtime then
//! drops every task still on it (the controller aborts them first).

use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long the thread waits, when it ends, for blocking work still
/// running (a name lookup, a file read) before leaving it behind.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

/// The running thread; dropping it ends the thread.
#[derive(Debug)]
pub struct ProbeThread {
    handle: Handle,
    /// Dropped to end the thread.
    _stop: oneshot::Sender<()>,
}

impl ProbeThread {
    /// Starts the thread and its runtime (I/O, time, signals for exec
    /// probes' children).
    pub fn start() -> std::io::Result<ProbeThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("veer-probes")
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("veer-probes".into())
            .spawn(move || {
                // Sender dropped (or a value sent): the thread's work is over.
                // A probe task's panic is caught by its task; one of the
                // runtime itself would end every probe and leave health
                // frozen while answers go on: better the process ends and
                // its supervisor restarts it.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = rt.block_on(stopped);
                }));
                if run.is_err() {
                    tracing::error!("the probe thread failed; health cannot change, so veer stops");
                    std::process::abort();
                }
                rt.shutdown_timeout(SHUTDOWN_WAIT);
            })?;
        Ok(ProbeThread {
            handle,
            _stop: stop,
        })
    }

    /// Where probe tasks are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks spawned on the handle run on the thread, and the thread ends
    /// (dropping them) once the `ProbeThread` is dropped.
    #[test]
    fn runs_tasks_and_ends_when_dropped() {
        let t = ProbeThread::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        t.handle().spawn(async move {
            let name = std::thread::current().name().map(str::to_string);
            tx.send(name).unwrap();
        });
        let name = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(name.as_deref(), Some("veer-probes"));
        // A task that never ends is dropped with the runtime.
        struct Dropped(std::sync::mpsc::Sender<()>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let guard = Dropped(tx);
        t.handle().spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        drop(t);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the task was not dropped when the thread ended");
    }
}
