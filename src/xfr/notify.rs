//! NOTIFY (RFC 1996) to each zone's targets when its serial moves: one
//! task per (zone, target), fed the newest serial through a watch channel,
//! so changes that come faster than a target answers coalesce into one
//! NOTIFY for the newest serial. An unanswered NOTIFY is sent again after
//! `notify_timeout`, doubling, `notify_retries` times (RFC 1996 3.6).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::ZoneXfr;
use crate::config::TransferConfig;
use crate::tsig::Key;

/// One NOTIFY to make (the newest serial wins).
#[derive(Clone)]
struct Job {
    serial: u32,
    soa: Record,
    key: Option<Key>,
    retries: u32,
    timeout: Duration,
}

struct Task {
    key: Option<Name>,
    tx: watch::Sender<Option<Job>>,
    abort: AbortHandle,
}

/// What the status API shows of one target.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TargetStatus {
    /// The zone.
    pub zone: String,
    /// The target (IP:PORT).
    pub target: String,
    /// The last serial announced.
    pub serial_sent: Option<u32>,
    /// The last serial the target acknowledged.
    pub serial_acked: Option<u32>,
    /// When (RFC 3339).
    pub acked_at: Option<String>,
    /// The last failure, cleared by an acknowledgement.
    pub last_error: Option<String>,
}

/// NOTIFY counters and per-target state, shared with the API.
#[derive(Debug, Default)]
pub struct NotifyStatus {
    targets: Mutex<BTreeMap<(String, SocketAddr), TargetStatus>>,
    /// NOTIFY messages sent (retries included).
    pub sent: AtomicU64,
    /// NOTIFYs acknowledged.
    pub acked: AtomicU64,
    /// NOTIFYs given up after every retry.
    pub failed: AtomicU64,
}

impl NotifyStatus {
    /// Every target's state, by zone and address.
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.targets
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, zone: &Name, target: SocketAddr, f: impl FnOnce(&mut TargetStatus)) {
        if let Ok(mut t) = self.targets.lock() {
            let e = t
                .entry((zone.to_string(), target))
                .or_insert_with(|| TargetStatus {
                    zone: zone.to_string(),
                    target: target.to_string(),
                    ..TargetStatus::default()
                });
            f(e);
        }
    }

    fn forget(&self, zone: &Name, target: SocketAddr) {
        if let Ok(mut t) = self.targets.lock() {
            t.remove(&(zone.to_string(), target));
        }
    }
}

/// The NOTIFY tasks (inside the controller's runtime).
pub struct Notifier {
    tasks: FxHashMap<(Name, SocketAddr), Task>,
    /// Shared with the API and metrics.
    pub status: Arc<NotifyStatus>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort.abort();
        }
    }
}

impl Notifier {
    /// A notifier reporting into `status`.
    pub fn new(status: Arc<NotifyStatus>) -> Notifier {
        Notifier {
            tasks: FxHashMap::default(),
            status,
        }
    }

    /// Starts, stops and feeds the tasks for `zones`: every target of a
    /// zone in `changed`, and every new target, is sent the zone's serial.
    pub fn update(
        &mut self,
        zones: &FxHashMap<Name, Arc<ZoneXfr>>,
        keys: &[Key],
        config: &TransferConfig,
        changed: &[Name],
    ) {
        let status = self.status.clone();
        self.tasks.retain(|(zone, addr), task| {
            let keep = zones.get(zone).is_some_and(|z| {
                z.notify
                    .iter()
                    .any(|t| t.address == *addr && t.key == task.key)
            });
            if !keep {
                task.abort.abort();
                status.forget(zone, *addr);
            }
            keep
        });
        for (origin, z) in zones {
            for t in z.notify.iter() {
                let id = (origin.clone(), t.address);
                let fresh = !self.tasks.contains_key(&id);
                if fresh {
                    let (tx, rx) = watch::channel(None);
                    let handle =
                        tokio::spawn(run(origin.clone(), t.address, rx, self.status.clone()));
                    self.tasks.insert(
                        id.clone(),
                        Task {
                            key: t.key.clone(),
                            tx,
                            abort: handle.abort_handle(),
                        },
                    );
                }
                if fresh || changed.contains(origin) {
                    let key = t
                        .key
                        .as_ref()
                        .and_then(|k| keys.iter().find(|c| c.name() == k).cloned());
                    let job = Job {
                        serial: z.serial,
                        soa: z.soa.clone(),
                        key,
                        retries: config.notify_retries,
                        timeout: config.notify_timeout,
                    };
                    let _ = self.tasks[&id].tx.send(Some(job));
                }
            }
        }
    }
}

/// Sends each job to `target` until acknowledged, retries exhausted, or
/// a newer job replaces it.
async fn run(
    zone: Name,
    target: SocketAddr,
    mut rx: watch::Receiver<Option<Job>>,
    status: Arc<NotifyStatus>,
) {
    while rx.changed().await.is_ok() {
        'job: loop {
            let Some(job) = rx.borrow_and_update().clone() else {
                break;
            };
            let mut timeout = job.timeout;
            let mut last = String::new();
            for attempt in 0..=job.retries {
                let started = tokio::time::Instant::now();
                status.sent.fetch_add(1, Ordering::Relaxed);
                status.update(&zone, target, |s| s.serial_sent = Some(job.serial));
                let result = tokio::select! {
                    r = notify_once(&zone, target, &job, timeout) => r,
                    c = rx.changed() => {
                        if c.is_err() {
                            return;
                        }
                        // A newer serial: announce that one instead.
                        continue 'job;
                    }
                };
                match result {
                    Ok(()) => {
                        status.acked.fetch_add(1, Ordering::Relaxed);
                        status.update(&zone, target, |s| {
                            s.serial_acked = Some(job.serial);
                            s.acked_at = Some(crate::status::rfc3339(std::time::SystemTime::now()));
                            s.last_error = None;
                        });
                        tracing::info!(
                            "NOTIFY {zone} serial {} to {target}: acknowledged{}",
                            job.serial,
                            if attempt > 0 {
                                format!(" (attempt {})", attempt + 1)
                            } else {
                                String::new()
                            }
                        );
                        break 'job;
                    }
                    Err(e) => {
                        last = e;
                        // An answer that came early (an error RCODE, a bad
                        // signature, a send error) waits out the timeout as
                        // silence does: retries keep their spacing instead
                        // of going out back to back.
                        if attempt < job.retries {
                            tokio::select! {
                                _ = tokio::time::sleep_until(started + timeout) => {}
                                c = rx.changed() => {
                                    if c.is_err() {
                                        return;
                                    }
                                    continue 'job;
                                }
                            }
                        }
                        timeout = timeout.saturating_mul(2);
                    }
                }
            }
            status.failed.fetch_add(1, Ordering::Relaxed);
            status.update(&zone, target, |s| s.last_error = Some(last.clone()));
            tracing::warn!(
                "NOTIFY {zone} serial {} to {target}: no acknowledgement after {} attempts ({last})",
                job.serial,
                job.retries + 1
            );
            break;
        }
    }
}

/// One NOTIFY and its answer within `timeout`.
async fn notify_once(
    zone: &Name,
    target: SocketAddr,
    job: &Job,
    timeout: Duration,
) -> Result<(), String> {
    let mut msg = Message::query();
    msg.metadata.op_code = OpCode::Notify;
    msg.metadata.authoritative = true;
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(zone.clone(), RecordType::SOA));
    msg.add_answer(job.soa.clone());
    let id = msg.metadata.id;
    let mut bytes = msg.to_vec().map_err(|e| format!("cannot encode: {e}"))?;
    let mut verifier = match &job.key {
        Some(k) => Some(crate::tsig::sign_request(
            k,
            &mut bytes,
            crate::tsig::now(),
        )?),
        None => None,
    };
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    sock.send_to(&bytes, target)
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
            let reply = &buf[..n];
            // Only the target's answer to this message counts.
            if from != target || n < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id {
                continue;
            }
            let Ok(m) = Message::from_vec(reply) else {
                continue;
            };
            if m.metadata.message_type != MessageType::Response
                || m.metadata.op_code != OpCode::Notify
            {
                continue;
            }
            if let Some(v) = verifier.as_mut() {
                v.verify(reply, crate::tsig::now())
                    .map_err(|e| format!("answer fails TSIG: {e}"))?;
            }
            return match m.metadata.response_code {
                ResponseCode::NoError => Ok(()),
                rc => Err(format!("answered {rc}")),
            };
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::SOA;
    use std::time::Instant;

    /// A target that answers every NOTIFY with `rcode` at once.
    async fn answering(rcode: ResponseCode) -> (SocketAddr, Arc<Mutex<Vec<Instant>>>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                log.lock().unwrap().push(Instant::now());
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, OpCode::Notify);
                r.metadata.response_code = rcode;
                r.add_queries(q.queries.iter().cloned());
                let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn an_error_answer_is_retried_after_the_timeout_not_at_once() {
        let (target, seen) = answering(ResponseCode::Refused).await;
        let zone = Name::from_ascii("t.").unwrap();
        let soa = Record::from_rdata(
            zone.clone(),
            300,
            RData::SOA(SOA::new(zone.clone(), zone.clone(), 7, 1, 1, 1, 1)),
        );
        let (tx, rx) = watch::channel(None);
        let status = Arc::new(NotifyStatus::default());
        let task = tokio::spawn(run(zone.clone(), target, rx, status.clone()));
        tx.send(Some(Job {
            serial: 7,
            soa,
            key: None,
            retries: 2,
            timeout: Duration::from_millis(150),
        }))
        .unwrap();
        // Attempts at 0, 150 ms and 450 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen.lock().unwrap().len(), 1, "retried at once");
        tokio::time::sleep(Duration::from_millis(700)).await;
        let times = seen.lock().unwrap().clone();
        assert_eq!(times.len(), 3);
        assert!(times[1] - times[0] >= Duration::from_millis(140));
        assert!(times[2] - times[1] >= Duration::from_millis(290));
        assert_eq!(status.failed.load(Ordering::Relaxed), 1);
        let t = &status.targets()[0];
        assert!(
            t.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Refused"))
        );
        task.abort();
    }
}
