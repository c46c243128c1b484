//! veer as a secondary: zones fetched from a primary (IXFR, falling back
//! to AXFR), refreshed on the SOA's timers and on NOTIFY, kept in
//! `state_dir` with their timers so a restart forgets neither the zone nor
//! its expiry. After `expire` without a successful refresh the zone
//! answers SERVFAIL, as a secondary must.
//!
//! One task per secondary zone. A fetched zone goes to the controller
//! ([`Update`]), which builds it with the routes laid over it and
//! publishes it; only then is the copy written. A fetch that fails part
//! way, a TSIG failure, garbage or a lower serial changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use super::client::{self, Fetched, Limits, Source};
use super::journal::newer;
use crate::tsig::Key;

/// The copy of `origin` in `state_dir`.
pub fn copy_path(state_dir: &Path, origin: &Name) -> PathBuf {
    let name = origin.to_lowercase().to_string();
    let name = name.trim_end_matches('.');
    let name = if name.is_empty() { "root" } else { name };
    state_dir.join("secondary").join(format!("{name}.zone.bin"))
}

/// What is kept beside the records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// The serial of the copy (the primary's).
    pub serial: u32,
    /// The last successful refresh (seconds since the epoch).
    pub refreshed_at: u64,
    /// When the zone expires without another (seconds since the epoch).
    pub expires_at: u64,
}

const MAGIC: &[u8] = b"veer secondary zone copy 1\n";

/// Encodes the copy: magic, meta (JSON, length-prefixed), then every
/// record in wire form, length-prefixed.
pub fn encode_copy(meta: &Meta, records: &[Record]) -> Result<Vec<u8>, String> {
    let mut out = MAGIC.to_vec();
    let m = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    let mut buf = Vec::with_capacity(256);
    for r in records {
        buf.clear();
        let mut enc = BinEncoder::new(&mut buf);
        r.emit(&mut enc).map_err(|e| format!("{}: {e}", r.name))?;
        out.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

/// Decodes a copy written by [`encode_copy`].
pub fn decode_copy(bytes: &[u8]) -> Result<(Meta, Vec<Record>), String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a veer secondary zone copy")?;
    let take = |rest: &mut &[u8]| -> Result<Vec<u8>, String> {
        let (len, tail) = rest.split_at_checked(4).ok_or("cut short")?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (item, tail) = tail.split_at_checked(len).ok_or("cut short")?;
        *rest = tail;
        Ok(item.to_vec())
    };
    let mut rest = rest;
    let meta: Meta = serde_json::from_slice(&take(&mut rest)?).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let bytes = take(&mut rest)?;
        let mut dec = BinDecoder::new(&bytes);
        records.push(Record::read(&mut dec).map_err(|e| e.to_string())?);
    }
    Ok((meta, records))
}

/// Reads the copy at `path` (None if there is none or it is unreadable,
/// logged).
pub fn load_copy(path: &Path) -> Option<(Meta, Vec<Record>)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!("{}: cannot read the zone copy: {e}", path.display());
            return None;
        }
    };
    match decode_copy(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(
                "{}: the zone copy is damaged ({e}); fetching anew",
                path.display()
            );
            None
        }
    }
}

/// Only the timers of the copy at `path`: its header, not its records
/// (what the expiry checks and a new task need; the records are already
/// in the served base).
pub fn load_meta(path: &Path) -> Option<Meta> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; MAGIC.len() + 4];
    f.read_exact(&mut head).ok()?;
    if !head.starts_with(MAGIC) {
        return None;
    }
    let len = u32::from_be_bytes(head[MAGIC.len()..].try_into().ok()?) as usize;
    if len > 64 * 1024 {
        return None;
    }
    let mut meta = vec![0u8; len];
    f.read_exact(&mut meta).ok()?;
    serde_json::from_slice(&meta).ok()
}

fn write_copy(path: &Path, meta: &Meta, records: &[Record]) -> Result<(), String> {
    let bytes = encode_copy(meta, records)?;
    let dir = path.parent().ok_or("no directory")?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("no file name")?;
    crate::durable::replace(dir, name, &bytes).map_err(|e| e.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The SOA timers of `records` (refresh, retry, expire), bounded to sane
/// values: a primary cannot make veer poll it every millisecond.
fn timers(records: &[Record]) -> (Duration, Duration, Duration) {
    let soa = records.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s),
        _ => None,
    });
    let secs = |v: Option<i32>, default: u64| {
        Duration::from_secs(
            v.map_or(default, |v| u64::from(v.max(0) as u32))
                .clamp(1, 7 * 86400 * 4),
        )
    };
    (
        secs(soa.map(|s| s.refresh), 3600),
        secs(soa.map(|s| s.retry), 600),
        secs(soa.map(|s| s.expire), 86400 * 14),
    )
}

/// What a secondary zone shows in `/v1/status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Status {
    /// The zone.
    pub zone: String,
    /// Its primaries (IP:PORT).
    pub primaries: Vec<String>,
    /// The primary of the last successful refresh.
    pub primary: Option<String>,
    /// The serial held (the primary's); None before the first transfer.
    pub serial: Option<u32>,
    /// Last successful refresh (RFC 3339).
    pub last_refresh: Option<String>,
    /// Next refresh (RFC 3339).
    pub next_refresh: Option<String>,
    /// When the zone expires without a refresh (RFC 3339).
    pub expires: Option<String>,
    /// The zone answers SERVFAIL (expired, or never transferred).
    pub expired: bool,
    /// The last failure, cleared by a success.
    pub last_error: Option<String>,
}

/// A secondary zone as the query path and the API see it.
#[derive(Debug)]
pub struct Handle {
    /// Wakes the task (NOTIFY).
    pub trigger: Notify,
    /// Its primaries, for the NOTIFY ACL.
    pub primaries: Vec<(SocketAddr, Option<Name>)>,
    /// For the API.
    pub status: Mutex<Status>,
}

/// What a task asks the controller to do.
#[derive(Debug)]
pub enum Update {
    /// Serve these records (a fetched zone) as `origin`; reply whether
    /// they were taken.
    Zone {
        /// The zone.
        origin: Name,
        /// Every record, the SOA first.
        records: Arc<Vec<Record>>,
        /// Taken, or why not.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// `origin` expired (true) or came back (false).
    Expired {
        /// The zone.
        origin: Name,
        /// Expired.
        expired: bool,
    },
}

/// Everything one task needs.
pub struct Task {
    /// The zone.
    pub origin: Name,
    /// Its primaries, tried in order.
    pub sources: Vec<Source>,
    /// The copy's path.
    pub path: PathBuf,
    /// The copy as loaded at start (or last taken).
    pub held: Option<(Meta, Arc<Vec<Record>>)>,
    /// Shared with the query path and the API.
    pub handle: Arc<Handle>,
    /// To the controller.
    pub updates: mpsc::UnboundedSender<Update>,
}

impl Task {
    /// Runs until aborted.
    pub async fn run(mut self) {
        let limits = Limits::default();
        let mut expired_told = None;
        let mut backoff = Duration::from_millis(500);
        // At start: refresh at once (the copy may be old).
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.handle.trigger.notified() => {
                    tracing::info!("zone {}: NOTIFY received, refreshing", self.origin);
                }
            }
            // The zone expires on time even while a refresh hangs (a
            // primary that drips a transfer keeps each message within the
            // per-message timeout, for as long as it likes).
            let expires_at = self
                .held
                .as_ref()
                .map(|(m, _)| m.expires_at)
                .filter(|_| expired_told != Some(true));
            let (updates, origin) = (self.updates.clone(), self.origin.clone());
            let mut expired_meanwhile = false;
            let outcome = {
                let refresh = self.refresh(limits);
                tokio::pin!(refresh);
                match expires_at {
                    Some(at) => {
                        let until = Duration::from_secs(at.saturating_sub(now()));
                        tokio::select! {
                            r = &mut refresh => r,
                            _ = tokio::time::sleep(until) => {
                                tracing::error!(
                                    "zone {origin}: expired during a refresh that has not ended; answering SERVFAIL"
                                );
                                let _ = updates.send(Update::Expired {
                                    origin: origin.clone(),
                                    expired: true,
                                });
                                expired_meanwhile = true;
                                refresh.await
                            }
                        }
                    }
                    None => refresh.await,
                }
            };
            if expired_meanwhile {
                expired_told = Some(true);
            }
            let records = self.held.as_ref().map(|(_, r)| r.clone());
            let (refresh, retry, expire) = timers(records.as_deref().map_or(&[][..], |r| &r[..]));
            let now = now();
            match outcome {
                Ok(primary) => {
                    wait = refresh;
                    if let Some((meta, records)) = self.held.as_mut() {
                        meta.refreshed_at = now;
                        meta.expires_at = now + expire.as_secs();
                        if let Err(e) = write_copy(&self.path, meta, records) {
                            tracing::error!("zone {}: cannot save the copy: {e}", self.origin);
                        }
                    }
                    self.set_status(|s| {
                        s.primary = Some(primary.to_string());
                        s.last_refresh = Some(crate::status::rfc3339(SystemTime::now()));
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    // Without any copy, try again soon (1 s, doubling up
                    // to the retry timer): the zone is SERVFAIL meanwhile.
                    wait = if self.held.is_none() {
                        backoff = (backoff * 2)
                            .clamp(Duration::from_secs(1), retry.min(Duration::from_secs(60)));
                        backoff
                    } else {
                        retry
                    };
                    tracing::warn!(
                        "zone {}: refresh failed: {e}; next try in {wait:?}",
                        self.origin
                    );
                    self.set_status(|s| s.last_error = Some(e.clone()));
                }
            }
            let expires_at = self.held.as_ref().map_or(0, |(m, _)| m.expires_at);
            let expired = self.held.is_none() || now >= expires_at;
            if expired_told != Some(expired) {
                if expired && self.held.is_some() {
                    tracing::error!(
                        "zone {}: expired (no successful refresh within the SOA expire); answering SERVFAIL",
                        self.origin
                    );
                }
                let _ = self.updates.send(Update::Expired {
                    origin: self.origin.clone(),
                    expired,
                });
                expired_told = Some(expired);
            }
            // Wake up at the expiry too.
            if !expired && expires_at > now {
                wait = wait.min(Duration::from_secs(expires_at - now));
            }
            let at = SystemTime::now() + wait;
            self.set_status(|s| {
                s.serial = self.held.as_ref().map(|(m, _)| m.serial);
                s.next_refresh = Some(crate::status::rfc3339(at));
                s.expires = self.held.as_ref().map(|(m, _)| {
                    crate::status::rfc3339(UNIX_EPOCH + Duration::from_secs(m.expires_at))
                });
                s.expired = expired;
            });
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.handle.status.lock() {
            f(&mut s);
        }
    }

    /// One refresh: the first primary that answers decides. Ok(primary)
    /// when the zone is current (fetched or already up to date).
    async fn refresh(&mut self, limits: Limits) -> Result<SocketAddr, String> {
        let mut errors = Vec::new();
        for src in self.sources.clone() {
            match self.refresh_from(&src, limits).await {
                Ok(()) => return Ok(src.address),
                Err(e) => errors.push(format!("{}: {e}", src.address)),
            }
        }
        Err(errors.join("; "))
    }

    async fn refresh_from(&mut self, src: &Source, limits: Limits) -> Result<(), String> {
        let serial = client::soa_serial(&self.origin, src, limits).await?;
        let have = self.held.as_ref().map(|(m, _)| m.serial);
        if let Some(h) = have
            && !newer(serial, h)
        {
            if newer(h, serial) {
                tracing::warn!(
                    "zone {}: primary {} has serial {serial}, lower than ours ({h}); keeping ours",
                    self.origin,
                    src.address
                );
            }
            return Ok(());
        }
        let soa = self
            .held
            .as_ref()
            .and_then(|(_, r)| r.iter().find(|r| matches!(r.data, RData::SOA(_))).cloned());
        let started = std::time::Instant::now();
        let fetched = client::fetch(&self.origin, src, soa.as_ref(), limits).await?;
        let (records, how) = match fetched {
            Fetched::UpToDate => return Ok(()),
            Fetched::Full(records) => (records, "AXFR"),
            Fetched::Incremental(steps) => {
                let current = self
                    .held
                    .as_ref()
                    .map(|(_, r)| (**r).clone())
                    .ok_or("IXFR without a zone held")?;
                match client::apply(current, &steps) {
                    Ok(r) => (r, "IXFR"),
                    Err(e) => {
                        tracing::warn!(
                            "zone {}: the IXFR from {} does not apply ({e}); asking AXFR",
                            self.origin,
                            src.address
                        );
                        match client::fetch(&self.origin, src, None, limits).await? {
                            Fetched::Full(r) => (r, "AXFR"),
                            _ => return Err("AXFR did not return the zone".into()),
                        }
                    }
                }
            }
        };
        let new_serial = records
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            })
            .ok_or("the transfer has no SOA")?;
        if let Some(h) = have
            && !newer(new_serial, h)
        {
            return Err(format!(
                "the transfer's serial {new_serial} is not newer than ours ({h})"
            ));
        }
        let count = records.len();
        let records = Arc::new(records);
        let (tx, rx) = oneshot::channel();
        self.updates
            .send(Update::Zone {
                origin: self.origin.clone(),
                records: records.clone(),
                reply: tx,
            })
            .map_err(|_| "the controller is gone")?;
        rx.await.map_err(|_| "the controller is gone")??;
        tracing::info!(
            "zone {}: {how} from {} to serial {new_serial}: {count} records in {:.1} ms",
            self.origin,
            src.address,
            started.elapsed().as_secs_f64() * 1000.0
        );
        self.held = Some((
            Meta {
                serial: new_serial,
                refreshed_at: now(),
                expires_at: 0,
            },
            records,
        ));
        Ok(())
    }
}

/// Answers a NOTIFY (RFC 1996) for a secondary zone: from one of its
/// primaries' addresses, signed with that primary's key when it has one.
/// Wakes the zone's task. `None`: not a NOTIFY for us to take (the caller
/// answers as for any other opcode).
pub fn notify_in(
    zones: &rustc_hash::FxHashMap<Name, Arc<Handle>>,
    keys: &[Key],
    raw: &[u8],
    src: IpAddr,
) -> Vec<u8> {
    use crate::tsig::Checked;
    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    let Ok(msg) = Message::from_vec(raw) else {
        let mut out = raw.get(..2).unwrap_or(&[0, 0]).to_vec();
        out.extend_from_slice(&[0x80 | (4 << 3), 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        return out;
    };
    let (key, mut signer) = match crate::tsig::check_request(keys, raw, crate::tsig::now()) {
        Checked::Unsigned => (None, None),
        Checked::Valid { key, signer } => (Some(key), Some(signer)),
        Checked::Rejected(r) => {
            tracing::warn!("NOTIFY from {src} rejected: TSIG {}", r.error());
            return r.reply(raw);
        }
    };
    let mut reply = Message::response(msg.metadata.id, OpCode::Notify);
    reply.metadata.message_type = MessageType::Response;
    reply.add_queries(msg.queries.iter().cloned());
    let src = src.to_canonical();
    let rcode = match msg
        .queries
        .first()
        .and_then(|q| zones.get(&q.name().to_lowercase()))
    {
        _ if msg.queries.len() != 1 => ResponseCode::FormErr,
        None => ResponseCode::NotAuth,
        Some(h) => {
            let allowed = h.primaries.iter().any(|(a, k)| {
                a.ip().to_canonical() == src && k.as_ref().is_none_or(|k| key.as_ref() == Some(k))
            });
            if allowed {
                h.trigger.notify_one();
                reply.metadata.authoritative = true;
                ResponseCode::NoError
            } else {
                tracing::warn!(
                    "NOTIFY for {} from {src} refused: not a primary of the zone{}",
                    msg.queries[0].name(),
                    if key.is_none() { " (or unsigned)" } else { "" }
                );
                ResponseCode::Refused
            }
        }
    };
    reply.metadata.response_code = rcode;
    let mut out = reply.to_vec().unwrap_or_default();
    if let Some(s) = signer.as_mut()
        && let Err(e) = s.sign(&mut out, crate::tsig::now())
    {
        tracing::warn!("cannot sign a NOTIFY answer: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_round_trips_and_damage_is_detected() {
        let text = "$ORIGIN t.\n@ 60 SOA ns h 7 60 30 600 5\n@ 60 NS ns\nns 60 A 192.0.2.1\nx 60 TXT \"a b\" c\nm 60 MX 10 ns\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zone");
        std::fs::write(&path, text).unwrap();
        let parsed =
            crate::zone::parse::read_file(&path, &Name::from_ascii("t.").unwrap()).unwrap();
        let records: Vec<Record> = parsed.records.into_iter().map(|(r, _)| r).collect();
        let meta = Meta {
            serial: 7,
            refreshed_at: 1,
            expires_at: 2,
        };
        let bytes = encode_copy(&meta, &records).unwrap();
        let (m, back) = decode_copy(&bytes).unwrap();
        assert_eq!((m, back), (meta.clone(), records.clone()));
        assert!(decode_copy(&bytes[..bytes.len() - 3]).is_err());
        // The timers alone, from the header.
        let file = dir.path().join("copy.bin");
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(load_meta(&file), Some(meta));
        std::fs::write(&file, b"garbage").unwrap();
        assert_eq!(load_meta(&file), None);
        assert!(decode_copy(b"garbage").is_err());
        assert_eq!(timers(&records).0, Duration::from_secs(60));
        assert_eq!(
            copy_path(Path::new("/s"), &Name::from_ascii("Example.Test.").unwrap()),
            Path::new("/s/secondary/example.test.zone.bin")
        );
    }

    /// A primary whose SOA is newer and whose transfer drips one record
    /// every 200 ms, never ending.
    async fn dripping_primary(origin: Name) -> SocketAddr {
        use hickory_proto::op::{Message, MessageType, OpCode};
        use hickory_proto::rr::rdata::{A, SOA};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The same port for both (the TCP port may be taken: try another).
        let (udp, tcp, addr) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                break (udp, tcp, addr);
            }
        };
        let soa = Record::from_rdata(
            origin.clone(),
            60,
            RData::SOA(SOA::new(origin.clone(), origin.clone(), 2, 60, 60, 60, 60)),
        );
        let answer = move |req: &Message, records: Vec<Record>| {
            let mut m = Message::response(req.metadata.id, OpCode::Query);
            m.metadata.message_type = MessageType::Response;
            m.metadata.authoritative = true;
            m.add_queries(req.queries.iter().cloned());
            m.add_answers(records);
            m.to_vec().unwrap()
        };
        let soa2 = soa.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let req = Message::from_vec(&buf[..n]).unwrap();
                let _ = udp.send_to(&answer(&req, vec![soa2.clone()]), from).await;
            }
        });
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let soa = soa.clone();
                let origin = origin.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len).await.unwrap();
                    let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    s.read_exact(&mut req).await.unwrap();
                    let req = Message::from_vec(&req).unwrap();
                    let mut first = Some(soa);
                    for i in 0u32.. {
                        let a = Record::from_rdata(
                            Name::from_ascii(format!("h{i}"))
                                .unwrap()
                                .append_domain(&origin)
                                .unwrap(),
                            60,
                            RData::A(A::new(192, 0, 2, 1)),
                        );
                        let msg = answer(&req, first.take().into_iter().chain([a]).collect());
                        let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&msg);
                        if s.write_all(&framed).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_zone_expires_while_a_transfer_drips() {
        let origin = Name::from_ascii("t.").unwrap();
        let address = dripping_primary(origin.clone()).await;
        let soa = Record::from_rdata(
            origin.clone(),
            60,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                origin.clone(),
                origin.clone(),
                1,
                60,
                60,
                60,
                60,
            )),
        );
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = Task {
            origin: origin.clone(),
            sources: vec![Source { address, key: None }],
            path: dir.path().join("t.zone.bin"),
            held: Some((
                Meta {
                    serial: 1,
                    refreshed_at: now(),
                    expires_at: now() + 1,
                },
                Arc::new(vec![soa]),
            )),
            handle: Arc::new(Handle {
                trigger: Notify::new(),
                primaries: Vec::new(),
                status: Mutex::new(Status::default()),
            }),
            updates: tx,
        };
        let run = tokio::spawn(task.run());
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        run.abort();
        match got {
            Ok(Some(Update::Expired { expired: true, .. })) => {}
            other => panic!("no expiry while the transfer drips: {other:?}"),
        }
    }
}
