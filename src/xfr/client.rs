//! Zone transfers in (AXFR, RFC 5936; IXFR, RFC 1995): veer as the
//! secondary of a primary.
//!
//! ```text
//! soa_serial ── UDP SOA query (TC: again over TCP) ──> the primary's serial
//! fetch ── TCP IXFR/AXFR ──> frames ──> TSIG chain ──> Transfer (RFC 1995) ──> Fetched
//! apply(held records, Incremental steps) ──> the new zone
//! ```
//!
//! Its own TCP reader rather than hickory's client: that one's timeout
//! covers the whole transfer and ends the stream as if complete, and a
//! slow consumer loses messages. Here every message must arrive within
//! [`Limits::timeout`], every one is verified when a key is given, and
//! anything short of the closing SOA is an error, never a smaller zone.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::journal::newer;
use crate::tsig::{self, Key, ResponseVerifier};

#[cfg(test)]
mod tests;

/// A primary to fetch from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it answers (UDP and TCP).
    pub address: SocketAddr,
    /// Sign requests with it and require it on every response message.
    pub key: Option<Key>,
}

/// Bounds against a hostile or broken primary.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For connecting, for each message of a transfer, and for a whole
    /// SOA query.
    pub timeout: Duration,
    /// Records in one transfer's answer (every message counted).
    pub max_records: usize,
    /// Bytes in one transfer's answer (length prefixes included).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(10),
            max_records: 10_000_000,
            max_bytes: 2 << 30,
        }
    }
}

/// One step of an incremental answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// The SOA of the version this starts from.
    pub from: Record,
    /// The SOA of the version this leads to.
    pub to: Record,
    /// Records gone.
    pub removed: Vec<Record>,
    /// Records new.
    pub added: Vec<Record>,
}

/// What a transfer brought.
#[derive(Debug)]
pub enum Fetched {
    /// The primary is not newer than `have` (RFC 1982): nothing to do.
    UpToDate,
    /// The whole zone (AXFR, or IXFR answered AXFR-style): every record
    /// once, the SOA first.
    Full(Vec<Record>),
    /// The differences from `have` (IXFR).
    Incremental(Vec<Step>),
}

/// UDP answers are read up to this size (the EDNS payload we offer).
const UDP_PAYLOAD: u16 = 1232;

/// The primary's SOA serial for `zone`: a UDP query (signed, and the
/// answer verified, when `src.key` is set), AA required and the answer's
/// SOA owned by the zone; on TC, the same over TCP.
pub async fn soa_serial(zone: &Name, src: &Source, limits: Limits) -> Result<u32, String> {
    let zone = fqdn(zone);
    let msg = match soa_udp(&zone, src, limits.timeout).await {
        Ok(Some(msg)) => Ok(msg),
        Ok(None) => match tokio::time::timeout(limits.timeout, soa_tcp(&zone, src, limits)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", limits.timeout)),
        }
        .map_err(|e| format!("over TCP (the UDP answer was truncated): {e}")),
        Err(e) => Err(e),
    };
    msg.and_then(|m| serial_in(&zone, &m))
        .map_err(|e| format!("SOA query for {zone} to {}: {e}", src.address))
}

/// Asks over UDP: the verified answer, or None if it came truncated.
/// Datagrams that are not the answer (another ID or question, or one
/// that does not verify) are skipped; the last such reason is the error
/// if no answer comes within `timeout`.
async fn soa_udp(zone: &Name, src: &Source, timeout: Duration) -> Result<Option<Message>, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let bind: SocketAddr = if src.address.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(src.address).await.map_err(|e| e.to_string())?;
    let (id, req, mut verifier) = request(zone, RecordType::SOA, None, src.key.as_ref(), true)?;
    sock.send(&req).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let mut skipped = None;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            // ICMP unreachable and the like: the answer will not come.
            Ok(Err(e)) => return Err(skipped.unwrap_or(e.to_string())),
            Err(_) => {
                return Err(skipped.unwrap_or(format!("no answer within {timeout:?}")));
            }
        };
        let raw = &buf[..n];
        if n < 12 || u16::from_be_bytes([raw[0], raw[1]]) != id {
            continue;
        }
        let msg = match Message::from_vec(raw) {
            Ok(m) => m,
            Err(e) => {
                skipped = Some(format!("an answer that does not parse: {e}"));
                continue;
            }
        };
        if let Err(e) = check_header(&msg, id, zone, RecordType::SOA) {
            skipped = Some(e);
            continue;
        }
        // A truncated answer only sends us to TCP, where all is checked.
        if msg.metadata.truncation {
            return Ok(None);
        }
        if let Err(e) = verify(verifier.as_mut(), raw, &msg) {
            skipped = Some(e);
            continue;
        }
        return Ok(Some(msg));
    }
}

/// Asks over TCP, one message.
async fn soa_tcp(zone: &Name, src: &Source, limits: Limits) -> Result<Message, String> {
    let mut stream = connect(src.address, limits.timeout).await?;
    let (id, req, mut verifier) = request(zone, RecordType::SOA, None, src.key.as_ref(), false)?;
    write_frame(&mut stream, &req, limits.timeout).await?;
    let mut buf = Vec::new();
    read_frame(&mut stream, &mut buf, limits.timeout, u64::from(u16::MAX))
        .await?
        .ok_or("the primary closed the connection without answering")?;
    let msg = Message::from_vec(&buf).map_err(|e| format!("the answer does not parse: {e}"))?;
    check_header(&msg, id, zone, RecordType::SOA)?;
    verify(verifier.as_mut(), &buf, &msg)?;
    if msg.metadata.truncation {
        return Err("the answer over TCP is truncated".to_string());
    }
    Ok(msg)
}

/// The serial of the zone's SOA in an answer to the SOA query.
fn serial_in(zone: &Name, msg: &Message) -> Result<u32, String> {
    rcode_ok(msg)?;
    if !msg.metadata.authoritative {
        return Err(format!(
            "the answer is not authoritative (AA=0): no zone {zone} there"
        ));
    }
    let soa = msg
        .answers
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .ok_or("the answer holds no SOA record")?;
    if soa.name != *zone {
        return Err(format!("the answer's SOA is for {}, not {zone}", soa.name));
    }
    if soa.dns_class != DNSClass::IN {
        return Err(format!("the answer's SOA is of class {}", soa.dns_class));
    }
    serial(soa).ok_or_else(|| "the SOA record does not parse".to_string())
}

/// Fetches `zone` over TCP: IXFR from `have` (our current SOA record) when
/// given, else AXFR. With `src.key`, every message's TSIG is verified (one
/// without TSIG, or with a bad one, fails the whole fetch). The answer is
/// read until its closing SOA (RFC 1995's sequence); one that ends early
/// (EOF, timeout, garbage, RCODE other than NOERROR, a record of another
/// zone or class, a first record that is not the zone's SOA, a limit
/// exceeded) is an Err with the reason.
///
/// An IXFR answered by a lone SOA (a first message holding only the SOA)
/// newer than `have` means "ask AXFR", which this does once, on a new
/// connection; a lone SOA not newer is [`Fetched::UpToDate`].
/// So is any answer whose first SOA is not newer than `have`.
pub async fn fetch(
    zone: &Name,
    src: &Source,
    have: Option<&Record>,
    limits: Limits,
) -> Result<Fetched, String> {
    let zone = fqdn(zone);
    let have = match have {
        None => None,
        Some(r) => {
            let s = serial(r).ok_or_else(|| format!("IXFR of {zone}: `{r}` is not an SOA"))?;
            if r.name != zone {
                return Err(format!("IXFR of {zone}: our SOA is for {}", r.name));
            }
            Some((r, s))
        }
    };
    let outcome = transfer(&zone, src, have, limits).await?;
    match outcome {
        Outcome::Fetched(f) => Ok(f),
        Outcome::AskAxfr(s) => {
            tracing::debug!(
                "IXFR of {zone} from {}: the primary sent only its SOA (serial {s}); asking AXFR",
                src.address
            );
            match transfer(&zone, src, None, limits).await? {
                Outcome::Fetched(f) => Ok(f),
                Outcome::AskAxfr(_) => Err(format!(
                    "AXFR of {zone} from {}: the answer is a lone SOA",
                    src.address
                )),
            }
        }
    }
}

/// One transfer on one connection.
async fn transfer(
    zone: &Name,
    src: &Source,
    have: Option<(&Record, u32)>,
    limits: Limits,
) -> Result<Outcome, String> {
    let (qtype, what) = match have {
        Some(_) => (RecordType::IXFR, "IXFR"),
        None => (RecordType::AXFR, "AXFR"),
    };
    let mut t = Transfer::new(zone.clone(), have.map(|h| h.1), limits.max_records);
    let started = std::time::Instant::now();
    let mut bytes = 0u64;
    let run = async {
        let (id, req, mut verifier) =
            request(zone, qtype, have.map(|h| h.0), src.key.as_ref(), false)?;
        let mut stream = connect(src.address, limits.timeout).await?;
        write_frame(&mut stream, &req, limits.timeout).await?;
        let mut buf = Vec::new();
        loop {
            let budget = limits.max_bytes.saturating_sub(bytes);
            let Some(n) = read_frame(&mut stream, &mut buf, limits.timeout, budget).await? else {
                return Err(format!(
                    "the primary closed the connection after {} messages and {} records, before the closing SOA",
                    t.messages, t.count
                ));
            };
            bytes += n as u64 + 2;
            let msg = Message::from_vec(&buf)
                .map_err(|e| format!("message {} does not parse: {e}", t.messages + 1))?;
            check_header(&msg, id, zone, qtype)
                .and_then(|()| verify(verifier.as_mut(), &buf, &msg))
                .and_then(|()| {
                    if msg.metadata.truncation {
                        Err("TC set on a TCP answer".to_string())
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| format!("message {}: {e}", t.messages + 1))?;
            if let Some(outcome) = t.feed(msg.answers)? {
                return Ok(outcome);
            }
        }
    };
    let outcome = run
        .await
        .map_err(|e| format!("{what} of {zone} from {}: {e}", src.address))?;
    tracing::debug!(
        "{what} of {zone} from {}: {} messages, {} records, {bytes} bytes in {:.1} ms",
        src.address,
        t.messages,
        t.count,
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(outcome)
}

/// How a transfer ended.
#[derive(Debug)]
enum Outcome {
    Fetched(Fetched),
    /// IXFR answered by a lone SOA newer than ours (its serial).
    AskAxfr(u32),
}

/// Where the answer is in RFC 1995's sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Expecting the zone's SOA (the serial the answer leads to).
    First,
    /// After it: another SOA makes the answer incremental (or a whole
    /// zone of just the SOA), another record AXFR-style.
    Second,
    /// The zone's records, until the SOA again.
    Axfr,
    /// A step's removals, until its new SOA.
    Removed,
    /// A step's additions, until the next step's old SOA or the end.
    Added,
    /// The closing SOA was read.
    Done,
}

/// A step being read.
#[derive(Debug)]
struct Open {
    from: Record,
    removed: Vec<Record>,
    /// Once read.
    to: Option<Record>,
    added: Vec<Record>,
}

impl Open {
    fn new(from: Record) -> Open {
        Open {
            from,
            removed: Vec::new(),
            to: None,
            added: Vec::new(),
        }
    }
}

/// The answer being read: fed each message's answer section.
#[derive(Debug)]
struct Transfer {
    zone: Name,
    /// IXFR: our serial.
    have: Option<u32>,
    max_records: usize,
    state: State,
    /// The serial of the first SOA, which the answer ends with.
    serial: u32,
    first: Option<Record>,
    /// AXFR-style: every record so far, the SOA first.
    records: Vec<Record>,
    /// Incremental: the steps complete so far, and the one being read.
    steps: Vec<Step>,
    step: Option<Open>,
    outcome: Option<Outcome>,
    /// Messages and records read.
    messages: usize,
    count: usize,
}

impl Transfer {
    fn new(zone: Name, have: Option<u32>, max_records: usize) -> Transfer {
        Transfer {
            zone,
            have,
            max_records,
            state: State::First,
            serial: 0,
            first: None,
            records: Vec::new(),
            steps: Vec::new(),
            step: None,
            outcome: None,
            messages: 0,
            count: 0,
        }
    }

    /// Reads one message's answer section; the outcome once the answer is
    /// complete. An IXFR whose first message holds just the SOA is a lone
    /// SOA (up to date, or "ask AXFR").
    fn feed(&mut self, answers: Vec<Record>) -> Result<Option<Outcome>, String> {
        self.messages += 1;
        if self.state == State::Done {
            return Err("a message after the closing SOA".to_string());
        }
        if self.messages == 1 && answers.is_empty() {
            return Err("the answer holds no records".to_string());
        }
        for r in answers {
            if self.state == State::Done {
                return Err(format!("`{r}` after the closing SOA"));
            }
            self.count += 1;
            if self.count > self.max_records {
                return Err(format!("more than {} records", self.max_records));
            }
            self.record(r)?;
            if matches!(self.outcome, Some(Outcome::Fetched(Fetched::UpToDate))) {
                // Whatever follows is not newer than what we have.
                self.state = State::Done;
                return Ok(self.outcome.take());
            }
        }
        if self.state == State::Done {
            return Ok(self.outcome.take());
        }
        if self.messages == 1
            && self.state == State::Second
            && let Some(have) = self.have
        {
            // Not newer was already UpToDate (Done).
            debug_assert!(newer(self.serial, have));
            self.state = State::Done;
            return Ok(Some(Outcome::AskAxfr(self.serial)));
        }
        Ok(None)
    }

    fn record(&mut self, r: Record) -> Result<(), String> {
        if r.dns_class != DNSClass::IN {
            return Err(format!("`{r}` is of class {}, not IN", r.dns_class));
        }
        if !self.zone.zone_of(&r.name) {
            return Err(format!("`{r}` is not in zone {}", self.zone));
        }
        let soa = serial(&r);
        if soa.is_some() && r.name != self.zone {
            return Err(format!("`{r}`: an SOA below the apex of {}", self.zone));
        }
        match (self.state, soa) {
            (State::First, None) => {
                return Err(format!("the first record, `{r}`, is not the zone's SOA"));
            }
            (State::First, Some(s)) => {
                self.serial = s;
                if let Some(have) = self.have
                    && !newer(s, have)
                {
                    self.finish(Fetched::UpToDate);
                } else {
                    self.first = Some(r);
                    self.state = State::Second;
                }
            }
            (State::Second, None) => {
                self.records.extend(self.first.take());
                self.records.push(r);
                self.state = State::Axfr;
            }
            // A zone of just its SOA.
            (State::Second, Some(s)) if s == self.serial => {
                let first = self.first.take().into_iter().collect();
                self.finish(Fetched::Full(first));
            }
            (State::Second, Some(s)) => match self.have {
                None => {
                    return Err(format!(
                        "an SOA with serial {s} where the zone (serial {}) should follow",
                        self.serial
                    ));
                }
                Some(have) if s != have => {
                    return Err(format!(
                        "the incremental answer starts from serial {s}, not ours ({have})"
                    ));
                }
                Some(_) => {
                    self.step = Some(Open::new(r));
                    self.state = State::Removed;
                }
            },
            (State::Axfr, None) => self.records.push(r),
            (State::Axfr, Some(s)) if s == self.serial => {
                let records = dedup(std::mem::take(&mut self.records));
                self.finish(Fetched::Full(records));
            }
            (State::Axfr, Some(s)) => {
                return Err(format!(
                    "an SOA with serial {s} inside the zone (serial {})",
                    self.serial
                ));
            }
            (State::Removed, None) => self.step_mut().removed.push(r),
            (State::Removed, Some(_)) => {
                self.step_mut().to = Some(r);
                self.state = State::Added;
            }
            (State::Added, None) => self.step_mut().added.push(r),
            (State::Added, Some(s)) => {
                let Open {
                    from,
                    removed,
                    to,
                    added,
                } = self.step.take().expect("a step is open");
                let to = to.expect("the step has its new SOA");
                let reached = serial(&to).unwrap_or_default();
                self.steps.push(Step {
                    from,
                    to,
                    removed,
                    added,
                });
                if s == self.serial && reached == self.serial {
                    let steps = std::mem::take(&mut self.steps);
                    self.finish(Fetched::Incremental(steps));
                } else if s == reached {
                    self.step = Some(Open::new(r));
                    self.state = State::Removed;
                } else {
                    return Err(format!(
                        "a step starts from serial {s}, but the previous one ended at {reached}"
                    ));
                }
            }
            (State::Done, _) => unreachable!("feed stops at Done"),
        }
        Ok(())
    }

    fn step_mut(&mut self) -> &mut Open {
        self.step.as_mut().expect("a step is open")
    }

    fn finish(&mut self, f: Fetched) {
        self.outcome = Some(Outcome::Fetched(f));
        self.state = State::Done;
    }
}

/// Applies incremental `steps` to `records` (the zone as held, its one SOA
/// included). Each step's `from` must have the current SOA's serial; every
/// removed record must be present (name without regard to case, type,
/// class and rdata; TTL ignored); added records are added, replacing an
/// equal one (so a TTL change sticks, and nothing is there twice); the SOA
/// becomes `to`. Err on any mismatch (the caller then asks AXFR).
///
/// Records keep their order; additions go to the end. Linear in the zone
/// plus the steps: a hash index over the records, built once.
pub fn apply(mut records: Vec<Record>, steps: &[Step]) -> Result<Vec<Record>, String> {
    let extra: usize = steps.iter().map(|s| s.added.len()).sum();
    records.reserve(extra);
    // Removed (or repeated) records are marked here and dropped at the end.
    let mut gone = vec![false; records.len()];
    gone.reserve(extra);
    let mut index = Index::new(records.len() + extra);
    let mut soa_at = None;
    for (i, r) in records.iter().enumerate() {
        if r.record_type() == RecordType::SOA {
            if soa_at.is_some() {
                return Err("the zone holds more than one SOA".to_string());
            }
            soa_at = Some(i);
        } else if index.find(&records, &gone, r).is_some() {
            gone[i] = true;
        } else {
            index.insert(r, i);
        }
    }
    let soa_at = soa_at.ok_or("the zone holds no SOA")?;
    for (n, step) in steps.iter().enumerate() {
        let n = n + 1;
        let current = &records[soa_at];
        let (Some(have), Some(from), Some(_)) =
            (serial(current), serial(&step.from), serial(&step.to))
        else {
            return Err(format!("step {n}: its from or to is not an SOA"));
        };
        if have != from {
            return Err(format!(
                "step {n} starts from serial {from}, but the zone is at {have}"
            ));
        }
        if step.to.name != current.name {
            return Err(format!(
                "step {n} leads to an SOA for {}, not {}",
                step.to.name, current.name
            ));
        }
        for r in &step.removed {
            if r.record_type() == RecordType::SOA {
                return Err(format!("step {n} removes an SOA: `{r}`"));
            }
            let Some((hash, at)) = index.find(&records, &gone, r) else {
                return Err(format!(
                    "step {n} removes `{r}`, which the zone does not hold"
                ));
            };
            index.remove(hash, at);
            gone[at] = true;
        }
        for r in &step.added {
            if r.record_type() == RecordType::SOA {
                return Err(format!("step {n} adds an SOA: `{r}`"));
            }
            match index.find(&records, &gone, r) {
                Some((_, at)) => records[at] = r.clone(),
                None => {
                    index.insert(r, records.len());
                    records.push(r.clone());
                    gone.push(false);
                }
            }
        }
        records[soa_at] = step.to.clone();
    }
    drop_gone(&mut records, &gone);
    Ok(records)
}

/// Drops the records marked in `gone` (one flag per record), keeping the
/// order of the rest.
fn drop_gone(records: &mut Vec<Record>, gone: &[bool]) {
    if gone.contains(&true) {
        let mut i = 0;
        records.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
    }
}

/// Positions of records by a hash of what identifies them (owner without
/// regard to case, class, rdata: what `Record ==` compares). Seeded per
/// index, so a primary cannot choose colliding records.
struct Index {
    seed: RandomState,
    map: FxHashMap<u64, SmallVec<[usize; 1]>>,
}

impl Index {
    fn new(capacity: usize) -> Index {
        let mut map = FxHashMap::default();
        map.reserve(capacity);
        Index {
            seed: RandomState::new(),
            map,
        }
    }

    fn hash(&self, r: &Record) -> u64 {
        self.seed.hash_one((&r.name, r.dns_class, &r.data))
    }

    /// The hash of `r` and the position in `records` of one equal to it
    /// and not `gone`.
    fn find(&self, records: &[Record], gone: &[bool], r: &Record) -> Option<(u64, usize)> {
        let hash = self.hash(r);
        let at = self
            .map
            .get(&hash)?
            .iter()
            .copied()
            .find(|&i| !gone[i] && records[i] == *r)?;
        Some((hash, at))
    }

    fn insert(&mut self, r: &Record, at: usize) {
        let hash = self.hash(r);
        self.map.entry(hash).or_default().push(at);
    }

    fn remove(&mut self, hash: u64, at: usize) {
        if let Some(v) = self.map.get_mut(&hash) {
            v.retain(|i| *i != at);
            if v.is_empty() {
                self.map.remove(&hash);
            }
        }
    }
}

/// `records` without repeats (the first kept; TTL not compared).
fn dedup(mut records: Vec<Record>) -> Vec<Record> {
    let mut index = Index::new(records.len());
    let mut gone = vec![false; records.len()];
    for (i, r) in records.iter().enumerate() {
        if index.find(&records, &gone, r).is_some() {
            gone[i] = true;
        } else {
            index.insert(r, i);
        }
    }
    drop_gone(&mut records, &gone);
    records
}

/// The serial of an SOA record; None for anything else.
fn serial(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

fn fqdn(name: &Name) -> Name {
    let mut n = name.clone();
    n.set_fqdn(true);
    n
}

/// A query for `zone` `qtype` (IN, RD=0), with `have` in the authority
/// section (IXFR) and an OPT (UDP): its ID, its bytes (signed with `key`)
/// and what verifies the answer.
fn request(
    zone: &Name,
    qtype: RecordType,
    have: Option<&Record>,
    key: Option<&Key>,
    edns: bool,
) -> Result<(u16, Vec<u8>, Option<ResponseVerifier>), String> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(zone.clone(), qtype));
    if let Some(h) = have {
        msg.add_authority(h.clone());
    }
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(UDP_PAYLOAD);
        msg.set_edns(e);
    }
    let id = msg.metadata.id;
    let mut buf = msg
        .to_vec()
        .map_err(|e| format!("cannot encode the {qtype} query: {e}"))?;
    let verifier = match key {
        Some(k) => Some(tsig::sign_request(k, &mut buf, tsig::now())?),
        None => None,
    };
    Ok((id, buf, verifier))
}

/// An answer to our query `id` for `zone` `qtype`: ID, QR, opcode, and the
/// question when there is one. (Later messages of a transfer may omit it.)
fn check_header(msg: &Message, id: u16, zone: &Name, qtype: RecordType) -> Result<(), String> {
    if msg.metadata.id != id {
        return Err(format!("ID {} instead of {id}", msg.metadata.id));
    }
    if msg.metadata.message_type != MessageType::Response {
        return Err("a query instead of a response".to_string());
    }
    if msg.metadata.op_code != OpCode::Query {
        return Err(format!("opcode {} instead of QUERY", msg.metadata.op_code));
    }
    match msg.queries.as_slice() {
        [] => Ok(()),
        [q] if q.name() == zone && q.query_type() == qtype && q.query_class() == DNSClass::IN => {
            Ok(())
        }
        qs => Err(format!(
            "the question is {} instead of {zone} IN {qtype}",
            qs.iter()
                .map(|q| q.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Verifies the TSIG of `raw` (parsed as `msg`) when a key is in use, then
/// the RCODE. A bad TSIG on an error answer reports both.
fn verify(
    verifier: Option<&mut ResponseVerifier>,
    raw: &[u8],
    msg: &Message,
) -> Result<(), String> {
    if let Some(v) = verifier
        && let Err(e) = v.verify(raw, tsig::now())
    {
        return Err(match msg.metadata.response_code {
            ResponseCode::NoError => format!("TSIG: {e}"),
            rcode => format!("the primary answered {} (TSIG: {e})", rcode_name(rcode)),
        });
    }
    rcode_ok(msg)
}

fn rcode_ok(msg: &Message) -> Result<(), String> {
    match msg.metadata.response_code {
        ResponseCode::NoError => Ok(()),
        rcode => Err(format!("the primary answered {}", rcode_name(rcode))),
    }
}

/// `REFUSED`, `NOTAUTH`, `SERVFAIL`...
fn rcode_name(rcode: ResponseCode) -> String {
    format!("{rcode:?}").to_uppercase()
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err(format!("cannot connect within {timeout:?}")),
    }
}

async fn write_frame(stream: &mut TcpStream, msg: &[u8], timeout: Duration) -> Result<(), String> {
    let len = u16::try_from(msg.len()).map_err(|_| "the query is too long".to_string())?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    match tokio::time::timeout(timeout, stream.write_all(&framed)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot send the query: {e}")),
        Err(_) => Err(format!("cannot send the query within {timeout:?}")),
    }
}

/// Reads one length-prefixed message into `buf` within `timeout`: its
/// length, or None at a clean end of stream before it. Err if it would
/// take more than `budget` bytes (prefix included).
async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
    budget: u64,
) -> Result<Option<usize>, String> {
    let read = async {
        let mut len = [0u8; 2];
        match stream.read(&mut len[..1]).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(format!("reading: {e}")),
        }
        stream
            .read_exact(&mut len[1..])
            .await
            .map_err(|e| format!("reading a length prefix: {e}"))?;
        let n = usize::from(u16::from_be_bytes(len));
        if n < 12 {
            return Err(format!("a message of {n} bytes"));
        }
        if n as u64 + 2 > budget {
            return Err("more bytes than the limit allows".to_string());
        }
        buf.resize(n, 0);
        stream
            .read_exact(buf)
            .await
            .map_err(|e| format!("reading a {n}-byte message: {e}"))?;
        Ok(Some(n))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("no complete message within {timeout:?}")),
    }
}
