//! Zones: master files loaded into an immutable, query-ready tree.
//!
//! A [`Zone`] maps every name that exists in it (owners and the empty
//! non-terminals above them) to a [`Node`]. Everything the query path needs
//! is computed here, once per load: negative-answer SOA with the RFC 2308
//! TTL, delegation points and their glue, additional-section data for MX,
//! SRV and NS answers, and each RRset's encoded size for the UDP limit.

mod key;
mod nodes;
pub mod parse;
mod records;
pub mod sign;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

pub use key::{Key, NodeKey, owned_key, same};
pub use nodes::hash as key_hash;
pub use records::Records;

use crate::diag::{Diagnostic, Diagnostics};
use parse::Loc;

/// An RRset as served, with what the answer path needs precomputed.
/// In C order: the prepared bytes, which a query reads, come first.
#[derive(Debug)]
#[repr(C)]
pub struct Rrset {
    /// Its bytes for the query fast path, made at the first query that
    /// needs them (after the snapshot is published, so after the
    /// additionals and RRSIGs are in place; a zone of a million records
    /// pays for the names that are asked for).
    pub(crate) wire: std::sync::OnceLock<Option<wire::Wire>>,
    /// The records (shared with the previous load of the zone when a
    /// reload finds them unchanged).
    pub records: Arc<Records>,
    /// Address records of in-zone targets (MX, SRV, NS answers).
    pub additionals: Box<[Arc<Records>]>,
    // The sizes as u32 (saturated): with them a name's place in the zone
    // is two cache lines, not three (see `nodes`).
    /// Uncompressed wire size of all records (an upper bound of what they
    /// add to a message).
    pub wire_len: u32,
    /// Wire size of `additionals`.
    pub additionals_len: u32,
    /// Uncompressed wire size of its RRSIG records (sent with DO).
    pub sig_len: u32,
}

/// `n` as a u32, saturated (sizes are upper bounds).
pub(crate) fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Rrset {
    /// `set` as it is (not packed), with its sizes computed and no
    /// additional data.
    pub fn new(set: RecordSet) -> Self {
        Rrset::of(Arc::new(Records::full(set)))
    }

    /// An RRset of `records`, with its sizes computed and no additional
    /// data.
    pub fn of(records: Arc<Records>) -> Self {
        let (wire_len, sig_len) = match records.packed_wire_len() {
            Some(len) => (len, 0),
            None => {
                let set = records.set();
                (wire_len(set), records_len(set.rrsigs().iter()))
            }
        };
        Rrset {
            wire_len: len32(wire_len),
            sig_len: len32(sig_len),
            records,
            additionals: Box::new([]),
            additionals_len: 0,
            wire: std::sync::OnceLock::new(),
        }
    }

    /// [`Rrset::wire_len`] as a size.
    pub fn wire_len(&self) -> usize {
        self.wire_len as usize
    }

    /// [`Rrset::sig_len`] as a size.
    pub fn sig_len(&self) -> usize {
        self.sig_len as usize
    }

    /// [`Rrset::additionals_len`] as a size.
    pub fn additionals_len(&self) -> usize {
        self.additionals_len as usize
    }

    /// The records as a hickory `RecordSet` (made at the first call for
    /// a packed set, and kept: see [`Records::set`]).
    pub fn set(&self) -> &RecordSet {
        self.records.set()
    }

    /// The prepared bytes (None if a record cannot be encoded). Made from
    /// a copy of a packed set's records, not kept.
    pub fn wire(&self) -> Option<&wire::Wire> {
        self.wire
            .get_or_init(|| wire::Wire::new(&self.records.to_set(), &self.additionals))
            .as_ref()
    }
}

/// The data of one name and type.
#[derive(Debug)]
pub enum Data {
    /// Records from the zone file.
    Static(Rrset),
    /// Records that change while serving (the SOA, routes): index of the
    /// snapshot slot holding the current answer.
    Slot(usize),
}

/// One name and type at a node.
#[derive(Debug)]
#[repr(C)]
pub struct Entry {
    /// The type.
    pub rtype: RecordType,
    /// The records, or where to find them.
    pub data: Data,
}

/// A name that exists in the zone. In C order: what a query reads first
/// (`cut`, then the first entry) comes first.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Node {
    /// A delegation point: NS records below the apex.
    pub cut: bool,
    /// RRsets at this name (empty for an empty non-terminal); one is
    /// held inline, as most names have one.
    pub rrsets: smallvec::SmallVec<[Entry; 1]>,
    /// What few names have (glue, NSEC), behind one pointer: a name's
    /// place in the zone is then two cache lines.
    extra: Option<Box<Extra>>,
}

/// What a [`Node`] holds for a delegation point or in a signed zone.
#[derive(Debug, Default)]
pub struct Extra {
    /// For a cut: address records of the NS targets inside this zone.
    pub glue: Box<[Arc<Records>]>,
    /// Wire size of `glue`.
    pub glue_len: usize,
    /// Its NSEC records, in a signed zone (names with data only).
    pub nsec: Option<sign::Nsec>,
}

impl Node {
    /// For a cut: address records of the NS targets inside this zone.
    pub fn glue(&self) -> &[Arc<Records>] {
        self.extra.as_ref().map_or(&[], |x| &x.glue)
    }

    /// Wire size of [`Node::glue`].
    pub fn glue_len(&self) -> usize {
        self.extra.as_ref().map_or(0, |x| x.glue_len)
    }

    /// Its NSEC records, in a signed zone (names with data only).
    pub fn nsec(&self) -> Option<&sign::Nsec> {
        self.extra.as_ref()?.nsec.as_ref()
    }

    /// The glue and NSEC, made empty if there are none yet.
    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// The entry of type `rtype`, if any.
    pub fn get(&self, rtype: RecordType) -> Option<&Entry> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    /// What [`Zone::static_sets`] holds of this name.
    pub fn static_sets(&self) -> impl Iterator<Item = &Records> + Send {
        let nsec = self
            .nsec()
            .filter(|x| x.without.is_empty())
            .map(|x| &*x.full.records);
        self.rrsets
            .iter()
            .filter_map(|e| match &e.data {
                Data::Static(r) => Some(&*r.records),
                Data::Slot(_) => None,
            })
            .chain(nsec)
    }

    /// The static RRset of type `rtype`, if any.
    pub fn get_static(&self, rtype: RecordType) -> Option<&Rrset> {
        match self.get(rtype).map(|e| &e.data) {
            Some(Data::Static(r)) => Some(r),
            _ => None,
        }
    }
}

/// The outcome of looking a name up in one zone.
pub enum Found<'z> {
    /// The name exists (`wildcard`: it was synthesised from `*.<encloser>`).
    Name { node: &'z Node, wildcard: bool },
    /// The name is at or below a delegation point.
    Referral(&'z Node),
    /// No such name.
    NxDomain,
}

/// Address RRsets for additional data, with their total wire size.
type Addresses = (Box<[Arc<Records>]>, usize);

/// Why a route cannot be served at a name of the zone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Collision {
    /// Below a delegation (the child zone's data, not ours).
    #[error("{name} is below the delegation at {cut}")]
    BelowCut {
        /// The route's name.
        name: String,
        /// The delegation point.
        cut: String,
    },
    /// At a delegation point.
    #[error("{0} is a delegation point")]
    AtCut(String),
    /// Records of the same type, or a CNAME beside other data.
    #[error("{name} {rtype} collides with the {what} {there} records {}", if there == rtype { "of the zone" } else { "there (a CNAME must be alone at its name)" })]
    Data {
        /// The route's name.
        name: String,
        /// The route's type.
        rtype: RecordType,
        /// `static` or `routed`.
        what: &'static str,
        /// The type already there.
        there: RecordType,
    },
}

/// One loaded zone.
#[derive(Debug)]
pub struct Zone {
    /// The apex.
    pub origin: Name,
    /// The apex's label count.
    pub origin_labels: usize,
    /// The SOA as written in the file.
    pub file_soa: RecordSet,
    /// Snapshot slot of the served SOA; the next slot holds the SOA for
    /// negative answers (TTL = min(SOA TTL, MINIMUM)).
    pub soa_slot: usize,
    /// Every existing name.
    nodes: nodes::Nodes,
    /// Number of records loaded from the files.
    pub records: usize,
    /// The zone file and its includes.
    pub files: Vec<PathBuf>,
    /// Hash of the files' text (see [`parse::ParsedFile::content_hash`]).
    pub content_hash: u64,
    /// Query counters (shared with the previous load of the same origin).
    pub stats: Arc<crate::metrics::ZoneStats>,
    /// Fetched from a primary (routes replace its RRsets of their type).
    pub transferred: bool,
    /// Signed: the NSEC chain's order (None: an unsigned zone).
    pub signed: Option<sign::Signed>,
}

impl Zone {
    /// Reads and validates the zone `origin` from `file`, building it as
    /// the records are read.
    pub fn load(origin: &Name, file: &Path) -> Result<Zone, Diagnostics> {
        Zone::load_after(origin, file, None)
    }

    /// [`Zone::load`] for a reload: the RRsets of `previous` (the zone
    /// being served, loaded from a file) that the file still holds as they
    /// were are shared with it, not made again.
    pub fn load_after(
        origin: &Name,
        file: &Path,
        previous: Option<&Zone>,
    ) -> Result<Zone, Diagnostics> {
        // Its index sized from the file's size (about a record per 24
        // bytes or more), so that a large zone's is not rehashed as it
        // grows; room reserved and never used is not resident.
        let hint = std::fs::metadata(file).map_or(0, |m| m.len() as usize / 24);
        // (A hint of names: most names of a large zone have one record.)
        let mut builder = Builder::with_capacity(origin, hint);
        builder.previous = previous.filter(|p| !p.transferred && p.origin == *origin);
        let (files, hash) =
            parse::read_file_into(file, origin, &mut |r, loc| builder.add_at(r, loc))?;
        let mut zone = builder.finish(file, files)?;
        zone.content_hash = hash;
        Ok(zone)
    }

    /// Builds a zone from located records; checks what a server must refuse
    /// to serve (missing SOA, data outside the zone, CNAME beside other data).
    pub fn build(
        origin: &Name,
        file: &Path,
        records: Vec<(Record, Loc)>,
        files: Vec<PathBuf>,
    ) -> Result<Zone, Diagnostics> {
        let mut builder = Builder::new(origin);
        for (record, loc) in records {
            builder.add(record, loc);
        }
        builder.finish(file, files)
    }
}

/// A zone being built, one record at a time.
pub struct Builder<'p> {
    origin: Name,
    /// The apex's key length (its ancestors are not nodes).
    apex_len: usize,
    errors: Vec<Diagnostic>,
    count: usize,
    /// The zone's names as they are found (owners and the empty
    /// non-terminals above them): the table the zone is served from,
    /// filled with its RRsets at the end.
    nodes: nodes::Nodes,
    /// For each node, its first set in `sets` (or [`NONE`]).
    first: Vec<u32>,
    /// Every RRset, in the order of its first record. Shared from the
    /// start: the zone takes them without a copy.
    sets: Vec<BuildSet>,
    /// The files of the sets' locations.
    files: Vec<Arc<Path>>,
    /// The zone this one replaces, whose unchanged RRsets are shared.
    previous: Option<&'p Zone>,
    /// Where the names of `previous` are against the new ones (see
    /// [`Zone::node_near`]).
    shift: isize,
}

/// One RRset being built.
struct BuildSet {
    set: Building,
    /// Its node.
    node: u32,
    /// The next set of the same node (or [`NONE`]).
    next: u32,
    /// Where its first record is: the file (in [`Builder`]'s `files`)
    /// and the line.
    file: u32,
    line: usize,
}

/// No set.
const NONE: u32 = u32::MAX;

/// The records of a set being built: most sets have one record and are
/// made in their final form (packed, or shared with the previous load)
/// from it; a second record opens the set, packed again at the end.
enum Building {
    Done(Arc<Records>),
    Open(Box<RecordSet>),
}

impl Building {
    fn record_type(&self) -> RecordType {
        match self {
            Building::Done(r) => r.record_type(),
            Building::Open(s) => s.record_type(),
        }
    }

    /// The owner (for messages).
    fn name(&self) -> Name {
        match self {
            Building::Done(r) => r.to_set().name().clone(),
            Building::Open(s) => s.name().clone(),
        }
    }

    /// The set, to add to.
    fn open(&mut self) -> &mut RecordSet {
        if let Building::Done(r) = self {
            *self = Building::Open(Box::new(r.to_set().into_owned()));
        }
        match self {
            Building::Open(s) => s,
            Building::Done(_) => unreachable!("opened above"),
        }
    }

    /// The set as the zone holds it.
    fn finish(self) -> Arc<Records> {
        match self {
            Building::Done(r) => r,
            // A copy of a set that grew past one record holds exactly its
            // records, if not packed.
            Building::Open(s) => Arc::new(Records::new((*s).clone())),
        }
    }
}

impl Builder<'_> {
    /// An empty zone `origin`.
    pub fn new(origin: &Name) -> Self {
        Builder::with_capacity(origin, 0)
    }

    /// An empty zone `origin` with room for about `names` names.
    pub fn with_capacity(origin: &Name, names: usize) -> Self {
        let names = names.min(1 << 26);
        let mut nodes = nodes::Nodes::default();
        nodes.reserve(names);
        Builder {
            origin: origin.clone(),
            apex_len: Key::new(origin).as_bytes().len(),
            errors: Vec::new(),
            count: 0,
            nodes,
            first: Vec::with_capacity(names),
            sets: Vec::with_capacity(names),
            files: Vec::new(),
            previous: None,
            shift: 0,
        }
    }

    /// The sets of node `node`, in the order they were found.
    fn sets_of(&self, node: usize) -> impl Iterator<Item = usize> + Clone + '_ {
        let some = |i: u32| (i != NONE).then_some(i as usize);
        std::iter::successors(some(self.first[node]), move |&i| some(self.sets[i].next))
    }

    /// Adds a record read at `loc`.
    pub fn add(&mut self, record: Record, loc: Loc) {
        self.add_at(record, &loc);
    }

    /// Where set `s` was found.
    fn loc(&self, s: &BuildSet) -> Loc {
        Loc {
            file: self.files[s.file as usize].clone(),
            line: s.line,
        }
    }

    /// [`Builder::add`], the location borrowed (kept only by a new set).
    pub fn add_at(&mut self, record: Record, loc: &Loc) {
        self.count += 1;
        if !self.origin.zone_of(&record.name) {
            self.errors.push(loc.error(format!(
                "{} is outside the zone {}",
                record.name, self.origin
            )));
            return;
        }
        let key = Key::new(&record.name);
        let node = self.node_index(key.as_bytes(), key.hash());
        let rtype = record.record_type();
        let mut last = None;
        let same = self.sets_of(node).find(|&i| {
            last = Some(i);
            self.sets[i].set.record_type() == rtype
        });
        if let Some(i) = same {
            self.merge(i, record, loc);
            return;
        }
        // Packed from the record itself, its owner written from the key
        // (the name lowercased, as it is served).
        let mut record = record;
        if record.name.iter().flatten().any(u8::is_ascii_uppercase) {
            record.name = record.name.to_lowercase();
        }
        let i = u32::try_from(self.sets.len()).expect("fewer than 2^32 sets");
        let previous = self.previous;
        let records = Records::of_keyed_record(record, key.as_bytes());
        let shared =
            previous.and_then(|p| p.unchanged(key.as_bytes(), node, &mut self.shift, &records));
        let set = Building::Done(shared.unwrap_or_else(|| Arc::new(records)));
        if self.files.last().is_none_or(|f| !Arc::ptr_eq(f, &loc.file)) {
            self.files.push(loc.file.clone());
        }
        self.sets.push(BuildSet {
            set,
            node: node as u32,
            next: NONE,
            file: (self.files.len() - 1) as u32,
            line: loc.line,
        });
        match last {
            Some(l) => self.sets[l].next = i,
            None => self.first[node] = i,
        }
    }

    /// Adds `record` to the set `i` of its name and type.
    fn merge(&mut self, i: usize, record: Record, loc: &Loc) {
        let first_line = self.sets[i].line;
        // (A copy: packed, or the previous zone's.)
        let set = self.sets[i].set.open();
        let rtype = record.record_type();
        if rtype == RecordType::SOA {
            self.errors.push(loc.error(format!(
                "a second SOA record (the first is at line {first_line})"
            )));
        } else if rtype == RecordType::CNAME
            && !set.records_without_rrsigs().any(|r| r.data == record.data)
        {
            self.errors
                .push(loc.error(format!("{} has more than one CNAME record", record.name)));
        } else {
            if set.ttl() != record.ttl {
                tracing::warn!(
                    "{}:{}: warning: TTL {} differs from the RRset's TTL {}; using {}",
                    loc.file.display(),
                    loc.line,
                    record.ttl,
                    set.ttl(),
                    set.ttl()
                );
            }
            set.add_rdata(record.data);
        }
    }

    /// The node of `key`, added (with the empty non-terminals above it)
    /// when new: one probe of the table for a name already there.
    fn node_index(&mut self, key: &[u8], hash: u64) -> usize {
        let first = &mut self.first;
        self.nodes
            .find_or_insert_name(key, Some(hash), self.apex_len, |_| first.push(NONE))
    }

    /// The zone, or every error found.
    pub fn finish(mut self, file: &Path, files: Vec<PathBuf>) -> Result<Zone, Diagnostics> {
        let origin = self.origin.clone();
        let origin = &origin;
        let mut errors = std::mem::take(&mut self.errors);
        // CNAME and other data (RFC 1034 3.6.2), in the order of the
        // names' keys.
        let mut cnames = Vec::new();
        for node in 0..self.nodes.count() {
            let mut sets = self.sets_of(node);
            let cname = sets
                .clone()
                .find(|&i| self.sets[i].set.record_type() == RecordType::CNAME);
            if let Some(c) = cname
                && let Some(other) = sets.find(|&i| i != c)
            {
                let (c, other) = (&self.sets[c], &self.sets[other]);
                let later = if c.line > other.line { c } else { other };
                cnames.push((node, self.loc(later).error(format!(
                    "{} has a CNAME (line {}) and other data ({} at line {}); a CNAME must be alone at its name",
                    c.set.name(),
                    c.line,
                    other.set.record_type(),
                    other.line
                ))));
            }
        }
        cnames.sort_by(|a, b| self.nodes.at(a.0).0[..].cmp(&self.nodes.at(b.0).0[..]));
        errors.extend(cnames.into_iter().map(|(_, e)| e));
        // SOA only at the apex.
        let apex = self.nodes.find(Key::new(origin).as_bytes());
        let mut soa = None;
        for s in self
            .sets
            .iter()
            .filter(|s| s.set.record_type() == RecordType::SOA)
        {
            if Some(s.node as usize) == apex {
                soa = Some(match &s.set {
                    Building::Done(r) => r.to_set().into_owned(),
                    Building::Open(set) => (**set).clone(),
                });
            } else {
                errors.push(self.loc(s).error(format!(
                    "SOA record at {} is not at the zone apex {origin}",
                    s.set.name()
                )));
            }
        }
        let Some(soa) = soa else {
            errors.push(Diagnostic::new(
                file,
                1,
                format!("zone {origin} has no SOA record at its apex"),
            ));
            return Err(Diagnostics(errors));
        };
        if !errors.is_empty() {
            errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            return Err(Diagnostics(errors));
        }
        let apex = apex.expect("the SOA's node");
        if !self
            .sets_of(apex)
            .any(|i| self.sets[i].set.record_type() == RecordType::NS)
        {
            tracing::warn!(
                "{}: warning: zone {origin} has no NS records at its apex",
                file.display()
            );
        }

        // The sets into their nodes, taken (not cloned: a million
        // reference counts touched twice). A node's sets come in the
        // order of their indices, as in its chain.
        let mut nodes = std::mem::take(&mut self.nodes);
        for s in std::mem::take(&mut self.sets) {
            let rtype = s.set.record_type();
            let data = match rtype {
                RecordType::SOA => Data::Slot(0),
                _ => Data::Static(Rrset::of(s.set.finish())),
            };
            nodes
                .at_mut(s.node as usize)
                .rrsets
                .push(Entry { rtype, data });
        }
        let count = self.count;
        drop(self);
        let mut zone = Zone {
            origin: origin.to_lowercase(),
            origin_labels: Key::new(origin).labels(),
            file_soa: soa,
            soa_slot: 0,
            nodes,
            records: count,
            files,
            content_hash: 0,
            stats: Arc::default(),
            transferred: false,
            signed: None,
        };
        zone.mark_cuts();
        zone.link_additionals();
        Ok(zone)
    }
}

impl Zone {
    /// This zone's RRset at `key` of the type of `new` (a set of one
    /// record) if it holds exactly that record (and no signatures): a
    /// reload shares it instead of making it again. Packed sets compare
    /// their bytes; sets held as they are compare with [`same_record`]
    /// (a packed set of the previous load is not unpacked for it).
    /// `i` and `shift`: see [`Zone::node_near`].
    fn unchanged(
        &self,
        key: &[u8],
        i: usize,
        shift: &mut isize,
        new: &Records,
    ) -> Option<Arc<Records>> {
        let node = self.node_near(key, i, shift)?;
        let old = &node.get_static(new.record_type())?.records;
        if new.is_packed() || old.is_packed() {
            return old.same_packed(new).then(|| old.clone());
        }
        let (set, record) = (old.set(), new.set());
        let mut records = set.records_without_rrsigs();
        let same = set.rrsigs().is_empty()
            && set.ttl() == record.ttl()
            && records.next().is_some_and(|r| {
                record
                    .records_without_rrsigs()
                    .next()
                    .is_some_and(|n| same_record(r, n))
            })
            && records.next().is_none();
        same.then(|| old.clone())
    }

    /// Marks the delegation points: NS records below the apex.
    fn mark_cuts(&mut self) {
        let origin_key = Key::new(&self.origin);
        for i in 0..self.nodes.count() {
            let (k, n) = self.nodes.at(i);
            if k[..] != *origin_key.as_bytes() && n.get(RecordType::NS).is_some() {
                self.nodes.at_mut(i).cut = true;
            }
        }
    }

    /// Gives MX, SRV and NS sets (and delegations their glue) the address
    /// sets of their in-zone targets, as they are now (after signing:
    /// with their RRSIGs). Walks the nodes in place: only the address
    /// sets are read, and they are not changed here.
    fn link_additionals(&mut self) {
        for i in 0..self.nodes.count() {
            let node = self.nodes.at(i).1;
            let glue = node
                .cut
                .then(|| self.addresses_of(node.get_static(RecordType::NS).expect("a cut has NS")));
            let extra: Vec<(usize, Addresses)> = node
                .rrsets
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match &e.data {
                    Data::Static(r)
                        if matches!(e.rtype, RecordType::MX | RecordType::SRV | RecordType::NS) =>
                    {
                        Some((i, self.addresses_of(r)))
                    }
                    _ => None,
                })
                .collect();
            if glue.is_none() && extra.is_empty() {
                continue;
            }
            let node = self.nodes.at_mut(i);
            if let Some((glue, glue_len)) = glue {
                let x = node.extra_mut();
                x.glue = glue;
                x.glue_len = glue_len;
            }
            for (i, (add, len)) in extra {
                if let Data::Static(r) = &mut node.rrsets[i].data {
                    r.additionals = add;
                    r.additionals_len = len32(len);
                }
            }
        }
    }

    /// The node for `key`, created (with its empty non-terminals up to the
    /// apex) when missing.
    fn node_mut(&mut self, key: &[u8]) -> &mut Node {
        let i = self.node_index(key);
        self.nodes.at_mut(i)
    }

    /// The index of [`Zone::node_mut`]'s node.
    fn node_index(&mut self, key: &[u8]) -> usize {
        let apex_len = Key::new(&self.origin).as_bytes().len();
        self.nodes.find_or_insert_name(key, None, apex_len, |_| {})
    }

    /// Assigns the snapshot slots of the SOA (`soa_slot` and the next one).
    pub fn bind_soa(&mut self, soa_slot: usize) {
        self.soa_slot = soa_slot;
        let apex = owned_key(&self.origin);
        if let Some(e) = self
            .node_mut(&apex)
            .rrsets
            .iter_mut()
            .find(|e| e.rtype == RecordType::SOA)
        {
            e.data = Data::Slot(soa_slot);
        }
    }

    /// Removes the static RRset of `rtype` at `name` (a transferred RRset
    /// a route replaces); whether there was one.
    pub fn remove_static(&mut self, name: &Name, rtype: RecordType) -> bool {
        let key = Key::new(name);
        let Some(node) = self.nodes.get_mut(key.as_bytes()) else {
            return false;
        };
        let before = node.rrsets.len();
        node.rrsets
            .retain(|e| !(e.rtype == rtype && matches!(e.data, Data::Static(_))));
        let removed = node.rrsets.len() != before;
        if removed {
            tracing::info!("{name} {rtype}: the route replaces the transferred records");
        }
        removed
    }

    /// Adds a routed name and type served from snapshot slot `slot`.
    /// Fails when it collides with zone data.
    pub fn add_dynamic(
        &mut self,
        name: &Name,
        rtype: RecordType,
        slot: usize,
    ) -> Result<(), Collision> {
        let key = Key::new(name);
        let depth = key.labels() - self.origin_labels;
        for i in 1..depth {
            if self.nodes.get(key.suffix(i)).is_some_and(|n| n.cut) {
                return Err(Collision::BelowCut {
                    name: name.to_string(),
                    cut: Name::from_labels(name.iter().skip(i))
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                });
            }
        }
        if let Some(node) = self.nodes.get(key.as_bytes()) {
            if node.cut {
                return Err(Collision::AtCut(name.to_string()));
            }
            for e in &node.rrsets {
                let what = match &e.data {
                    Data::Static(_) => "static",
                    Data::Slot(_) => "routed",
                };
                if e.rtype == rtype || e.rtype == RecordType::CNAME || rtype == RecordType::CNAME {
                    return Err(Collision::Data {
                        name: name.to_string(),
                        rtype,
                        what,
                        there: e.rtype,
                    });
                }
            }
        }
        self.node_mut(key.as_bytes()).rrsets.push(Entry {
            rtype,
            data: Data::Slot(slot),
        });
        Ok(())
    }

    /// The SOA as served with `serial`, and the negative-answer SOA.
    pub fn soa_sets(&self, serial: u32) -> (Rrset, Rrset) {
        let mut soa = self.file_soa.clone();
        let mut rec = soa
            .records_without_rrsigs()
            .next()
            .expect("zone has a SOA")
            .clone();
        if let RData::SOA(s) = &mut rec.data {
            s.serial = serial;
        }
        soa.set_records(vec![rec]);
        let neg = negative_soa(&soa);
        (Rrset::new(soa), Rrset::new(neg))
    }

    /// Every RRset loaded from the files except the SOA (which is served
    /// from a slot), with its name's key, in no particular order: what a
    /// zone transfer sends besides the SOA and the routes. In a signed
    /// zone, with their RRSIGs, the DNSKEY set, and the NSEC records of
    /// names without routes (a routed name's NSEC depends on what its
    /// route transfers, and goes with the routes).
    pub fn static_sets(&self) -> impl Iterator<Item = (&[u8], &Records)> + Send + '_ {
        self.nodes
            .iter()
            .flat_map(|(k, n)| n.static_sets().map(move |s| (&k[..], s)))
    }

    /// Every name of this zone with its node, and the node of the same
    /// name in `other`, if any: what compares two loads of a zone. A
    /// reloaded file keeps its order, so `other`'s node is looked for at
    /// the same position (shifted by the names added or removed before
    /// it) before its table is probed: a walk through both in order, not
    /// a random probe per name.
    pub fn nodes_against<'a>(
        &'a self,
        other: &'a Zone,
    ) -> impl Iterator<Item = (&'a [u8], &'a Node, Option<&'a Node>)> + 'a {
        let mut shift = 0isize;
        (0..self.nodes.count()).map(move |i| {
            let (k, n) = self.nodes.at(i);
            (&k[..], n, other.node_near(k, i, &mut shift))
        })
    }

    /// The node of `key`, looked for at position `i + shift` first (the
    /// position of the same name in another load of this zone, shifted
    /// by the names added or removed before it), then by a probe of the
    /// table; `shift` follows what is found.
    fn node_near(&self, key: &[u8], i: usize, shift: &mut isize) -> Option<&Node> {
        let at = i
            .checked_add_signed(*shift)
            .filter(|&j| j < self.nodes.count() && self.nodes.at(j).0[..] == *key)
            .or_else(|| self.nodes.find(key));
        if let Some(j) = at {
            *shift = j as isize - i as isize;
        }
        at.map(|j| self.nodes.at(j).1)
    }

    /// The static RRset at `key` of `rtype` (made and kept if packed:
    /// see [`Records::set`]).
    pub fn static_set(&self, key: &[u8], rtype: RecordType) -> Option<&RecordSet> {
        self.nodes.get(key)?.get_static(rtype).map(|r| r.set())
    }

    /// The serial written in the zone file.
    pub fn file_serial(&self) -> u32 {
        match self
            .file_soa
            .records_without_rrsigs()
            .next()
            .map(|r| &r.data)
        {
            Some(RData::SOA(s)) => s.serial,
            _ => 0,
        }
    }

    /// A/AAAA sets in this zone for the targets named by `rr`'s records.
    fn addresses_of(&self, rr: &Rrset) -> Addresses {
        let mut out: Vec<&Rrset> = Vec::new();
        let origin = Key::new(&self.origin);
        let mut add = |target: &Key| {
            if target.labels() < self.origin_labels
                || target.suffix(target.labels() - self.origin_labels) != origin.as_bytes()
            {
                return;
            }
            if let Some(node) = self.nodes.get(target.as_bytes()) {
                for t in [RecordType::A, RecordType::AAAA] {
                    if let Some(a) = node.get_static(t)
                        && !out.iter().any(|o| Arc::ptr_eq(&o.records, &a.records))
                    {
                        out.push(a);
                    }
                }
            }
        };
        match rr.records.packed_rdata() {
            // Packed: MX records (a preference, then the exchange).
            Some(rdata) => {
                for r in rdata {
                    if let Some((target, _)) = r.get(2..).and_then(Key::from_wire) {
                        add(&target);
                    }
                }
            }
            None => {
                for r in rr.set().records_without_rrsigs() {
                    let target = match &r.data {
                        RData::NS(ns) => &ns.0,
                        RData::MX(mx) => &mx.exchange,
                        RData::SRV(srv) => &srv.target,
                        _ => continue,
                    };
                    add(&Key::new(target));
                }
            }
        }
        // With their RRSIGs, if signed: an upper bound either way.
        let len = out.iter().map(|a| a.wire_len() + a.sig_len()).sum();
        (out.into_iter().map(|a| a.records.clone()).collect(), len)
    }

    /// Starts loading what [`Zone::find`] reads last for a key (the name's
    /// own node) into the cache, given the key's [`key_hash`].
    pub fn prefetch(&self, hash: u64) {
        self.nodes.prefetch(hash);
    }

    /// Looks `key` up (a name at or below this zone's apex) for `qtype`.
    pub fn find(&self, key: &Key, qtype: RecordType) -> Found<'_> {
        // The whole name by the hash its key carries.
        let get = |i: usize| match i {
            0 => self.nodes.get_hashed(key.as_bytes(), key.hash()),
            _ => self.nodes.get(key.suffix(i)),
        };
        let depth = key.labels() - self.origin_labels;
        // Walk down from the apex: a delegation above the name wins, and the
        // first missing ancestor makes its parent the closest encloser.
        for i in (0..depth).rev() {
            match get(i) {
                Some(node) if node.cut && !(i == 0 && qtype == RecordType::DS) => {
                    return Found::Referral(node);
                }
                Some(node) if i == 0 => {
                    return Found::Name {
                        node,
                        wildcard: false,
                    };
                }
                Some(_) => {}
                None => {
                    let mut buf = [0; 258];
                    return match self.nodes.get(key.wildcard_of(i + 1, &mut buf)) {
                        Some(node) => Found::Name {
                            node,
                            wildcard: true,
                        },
                        None => Found::NxDomain,
                    };
                }
            }
        }
        // depth == 0: the apex itself.
        match get(0) {
            Some(node) => Found::Name {
                node,
                wildcard: false,
            },
            None => Found::NxDomain,
        }
    }
}

/// `a` and `b` are the same record, names compared with their case (a
/// reload that only changes a name's case is a change). Types other than
/// the common ones are never the same.
fn same_record(a: &Record, b: &Record) -> bool {
    let data = match (&a.data, &b.data) {
        (RData::A(x), RData::A(y)) => x == y,
        (RData::AAAA(x), RData::AAAA(y)) => x == y,
        (RData::TXT(x), RData::TXT(y)) => x == y,
        (RData::MX(x), RData::MX(y)) => {
            x.preference == y.preference && x.exchange.eq_case(&y.exchange)
        }
        (RData::CNAME(x), RData::CNAME(y)) => x.0.eq_case(&y.0),
        (RData::NS(x), RData::NS(y)) => x.0.eq_case(&y.0),
        (RData::PTR(x), RData::PTR(y)) => x.0.eq_case(&y.0),
        (RData::SRV(x), RData::SRV(y)) => {
            (x.priority, x.weight, x.port) == (y.priority, y.weight, y.port)
                && x.target.eq_case(&y.target)
        }
        _ => false,
    };
    data && a.ttl == b.ttl && a.dns_class == b.dns_class && a.name.eq_case(&b.name)
}

/// The SOA used in NXDOMAIN/NODATA answers: TTL = min(TTL, MINIMUM)
/// (RFC 2308 section 3).
fn negative_soa(soa: &RecordSet) -> RecordSet {
    let mut neg = soa.clone();
    if let Some(RData::SOA(s)) = soa.records_without_rrsigs().next().map(|r| &r.data) {
        neg.set_ttl(soa.ttl().min(s.minimum));
    }
    neg
}

/// Uncompressed wire size of all records of `set`.
pub fn wire_len(set: &RecordSet) -> usize {
    records_len(set.records_without_rrsigs())
}

/// Uncompressed wire size of `records`.
fn records_len<'a>(records: impl Iterator<Item = &'a Record>) -> usize {
    let mut buf = Vec::new();
    records
        .map(|r| plain_len(r).unwrap_or_else(|| encoded_len(r, &mut buf)))
        .sum()
}

/// A record's size as written by the encoder (512 if it cannot be).
fn encoded_len(r: &Record, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    let mut enc = BinEncoder::new(buf);
    match r.emit(&mut enc) {
        Ok(()) => buf.len(),
        Err(_) => 512,
    }
}

/// [`encoded_len`] computed, for the records that hold no names (the
/// encoder compresses names within a record) and encode without error:
/// the bulk of a large zone is not encoded once at load to be measured.
fn plain_len(r: &Record) -> Option<usize> {
    let rdata = match &r.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::TXT(t) => {
            let strings = &t.txt_data;
            if strings.iter().any(|s| s.len() > 255) || strings.len() > 64 {
                return None;
            }
            strings.iter().map(|s| 1 + s.len()).sum()
        }
        _ => return None,
    };
    let name: usize = r.name.iter().map(|l| 1 + l.len()).sum::<usize>() + 1;
    Some(name + 10 + rdata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, TXT};

    #[test]
    fn computed_sizes_are_the_encoders() {
        let names = ["a.test.", "WWW.Example.Test.", "x.", "*.w.example.test."];
        let long = "x".repeat(255);
        let texts: [&[&str]; 5] = [&[""], &["v=spf1 -all"], &["a", "b c", ""], &[&long], &[]];
        let mut buf = Vec::new();
        for n in names {
            let name = Name::from_ascii(n).unwrap();
            let mut data = vec![
                RData::A(A::new(192, 0, 2, 1)),
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            ];
            data.extend(
                texts
                    .iter()
                    .map(|t| RData::TXT(TXT::new(t.iter().map(|s| s.to_string()).collect()))),
            );
            for d in data {
                let r = Record::from_rdata(name.clone(), 300, d);
                assert_eq!(plain_len(&r), Some(encoded_len(&r, &mut buf)), "{r}");
            }
            let too_long = TXT::new(vec!["y".repeat(256)]);
            let r = Record::from_rdata(name.clone(), 300, RData::TXT(too_long));
            assert_eq!(plain_len(&r), None);
            assert_eq!(records_len(std::iter::once(&r)), 512);
        }
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    fn set<'z>(z: &'z Zone, name: &str, t: RecordType) -> &'z Arc<Records> {
        let key = Key::new(&Name::from_ascii(name).unwrap());
        &z.nodes[key.as_bytes()].get_static(t).unwrap().records
    }

    fn zone_of(dir: &Path, names: &[&str]) -> Zone {
        let path = dir.join("z.zone");
        let mut text = "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n".to_string();
        for n in names {
            text.push_str(&format!("{n} A 192.0.2.1\n"));
        }
        std::fs::write(&path, text).unwrap();
        Zone::load(&Name::from_ascii("t.").unwrap(), &path).unwrap()
    }

    #[test]
    fn nodes_are_matched_by_name_whatever_moved() {
        let dir = tempfile::tempdir().unwrap();
        let old = zone_of(dir.path(), &["a", "b", "c.sub", "d", "e", "f"]);
        let new = zone_of(dir.path(), &["a", "x", "y", "b", "d", "e", "c.sub", "g"]);
        for (a, b) in [(&old, &new), (&new, &old)] {
            let mut seen = 0;
            for (k, n, other) in a.nodes_against(b) {
                assert!(std::ptr::eq(n, &a.nodes[k]));
                match (other, b.nodes.get(k)) {
                    (Some(o), Some(expected)) => assert!(std::ptr::eq(o, expected)),
                    (None, None) => {}
                    (o, e) => panic!("{k:?}: {:?} vs {:?}", o.is_some(), e.is_some()),
                }
                seen += 1;
            }
            assert_eq!(seen, a.nodes.count());
        }
    }

    #[test]
    fn a_reload_shares_the_rrsets_it_did_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        let head = "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
        std::fs::write(
            &path,
            format!("{head}a A 192.0.2.2\nb MX 10 _mail.example.\nc TXT \"x\"\nd A 192.0.2.4\nt 60 A 192.0.2.5\n"),
        )
        .unwrap();
        let origin = Name::from_ascii("t.").unwrap();
        let old = Zone::load(&origin, &path).unwrap();
        std::fs::write(
            &path,
            format!("{head}a A 192.0.2.2\nb MX 10 _Mail.example.\nc TXT \"x\"\nd A 192.0.2.4\nd A 192.0.2.44\nt 61 A 192.0.2.5\n"),
        )
        .unwrap();
        let new = Zone::load_after(&origin, &path, Some(&old)).unwrap();
        let shared = |n: &str, t| Arc::ptr_eq(set(&old, n, t), set(&new, n, t));
        assert!(shared("a.t.", RecordType::A));
        assert!(set(&new, "a.t.", RecordType::A).is_packed());
        assert!(set(&new, "b.t.", RecordType::MX).is_packed());
        assert!(shared("c.t.", RecordType::TXT));
        assert!(shared("ns.t.", RecordType::A));
        assert!(
            !shared("b.t.", RecordType::MX),
            "the exchange's case changed (`_` labels keep it)"
        );
        assert!(!shared("t.t.", RecordType::A), "the TTL changed");
        assert!(!shared("d.t.", RecordType::A), "a record was added");
        assert_eq!(set(&old, "d.t.", RecordType::A).records_count(), 1);
        assert_eq!(set(&new, "d.t.", RecordType::A).records_count(), 2);
        let mx = set(&new, "b.t.", RecordType::MX);
        match &mx.set().records_without_rrsigs().next().unwrap().data {
            RData::MX(mx) => assert_eq!(mx.exchange.to_string(), "_Mail.example."),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod packed_tests {
    use super::*;

    /// The records a zone gives back (packed or not) are the records it
    /// was built from, with the case of every name, in order; the common
    /// types are packed.
    #[test]
    fn records_made_on_demand_are_the_loaded_ones() {
        let origin = Name::from_ascii("t.").unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut records = vec![Record::from_rdata(
            origin.clone(),
            300,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                Name::from_ascii("ns.t.").unwrap(),
                Name::from_ascii("h.t.").unwrap(),
                1,
                2,
                3,
                4,
                5,
            )),
        )];
        let mut expected: std::collections::BTreeMap<(String, RecordType), Vec<String>> =
            Default::default();
        for i in 0..400u32 {
            let owner = Name::from_ascii(format!("h{}.t.", i % 150)).unwrap();
            let data = match rng.usize(..5) {
                0 => RData::A(hickory_proto::rr::rdata::A::from(std::net::Ipv4Addr::from(
                    i,
                ))),
                1 => RData::AAAA(hickory_proto::rr::rdata::AAAA::from(
                    std::net::Ipv6Addr::from(u128::from(i) << 64 | 1),
                )),
                2 => RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
                    format!("Text {i}"),
                    String::new(),
                ])),
                3 => RData::MX(hickory_proto::rr::rdata::MX::new(
                    i as u16,
                    Name::from_ascii(format!("_M{i}.Example.")).unwrap(),
                )),
                _ => RData::SRV(hickory_proto::rr::rdata::SRV::new(
                    1,
                    2,
                    i as u16,
                    Name::from_ascii(format!("_T{i}.Example.")).unwrap(),
                )),
            };
            let r = Record::from_rdata(owner.clone(), 60, data);
            expected
                .entry((owner.to_string(), r.record_type()))
                .or_default()
                .push(r.to_string());
            records.push(r);
        }
        let loc = Loc {
            file: Arc::from(Path::new("t.zone")),
            line: 1,
        };
        let zone = Zone::build(
            &origin,
            Path::new("t.zone"),
            records.into_iter().map(|r| (r, loc.clone())).collect(),
            Vec::new(),
        )
        .unwrap();
        let mut seen = 0;
        for (_, s) in zone.static_sets() {
            let set = s.to_set();
            let texts: Vec<String> = set.records_with_rrsigs().map(|r| r.to_string()).collect();
            let made: Vec<String> = s.records_with_rrsigs().map(|r| r.to_string()).collect();
            let key = (set.name().to_string(), set.record_type());
            assert_eq!(Some(&texts), expected.get(&key), "{key:?}");
            assert_eq!(made, texts);
            assert_eq!(s.records_count(), texts.len());
            assert_eq!(s.ttl(), 60);
            assert_eq!(
                s.is_packed(),
                set.record_type() != RecordType::SRV,
                "{key:?}"
            );
            seen += 1;
        }
        assert_eq!(seen, expected.len());
    }
}

#[cfg(test)]
mod reload_random_tests {
    use super::*;

    /// Every static record of `z`, as text with its names' case, sorted.
    fn records_of(z: &Zone) -> Vec<String> {
        let mut out: Vec<String> = z
            .static_sets()
            .flat_map(|(_, s)| s.records_with_rrsigs().map(|r| r.to_string()))
            .collect();
        out.sort();
        out
    }

    /// Each RRset of `z` in order, with its records in order.
    fn sets_of(z: &Zone) -> Vec<(Vec<u8>, String)> {
        let mut out: Vec<(Vec<u8>, String)> = z
            .static_sets()
            .map(|(k, s)| {
                let recs: Vec<String> = s.records_with_rrsigs().map(|r| r.to_string()).collect();
                (
                    k.to_vec(),
                    format!("{:?} {} {}", s.record_type(), s.ttl(), recs.join(" | ")),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn random_line(rng: &mut fastrand::Rng) -> String {
        let names = ["a", "b", "c.sub", "d", "_x", "e.sub", "f"];
        let name = names[rng.usize(..names.len())];
        let ttl = [60, 300][rng.usize(..2)];
        let data = match rng.usize(..5) {
            0 => format!("A 192.0.2.{}", rng.u8(1..4)),
            1 => format!("TXT \"{}\"", ["x", "y", "x y"][rng.usize(..3)]),
            2 => format!(
                "MX {} {}",
                [10, 20][rng.usize(..2)],
                ["_m.example.", "_M.example.", "m"][rng.usize(..3)]
            ),
            3 => format!("AAAA 2001:db8::{}", rng.u8(1..3)),
            _ => format!("SRV 1 2 {} _t.example.", rng.u8(1..3)),
        };
        format!("{name} {ttl} {data}")
    }

    /// Random edits reloaded one after the other: the zone a reload makes
    /// with the previous one is the zone a fresh load makes, the previous
    /// one is not changed, and the IXFR difference leads from one to the
    /// other.
    #[test]
    fn random_reloads_match_fresh_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        let origin = Name::from_ascii("t.").unwrap();
        let head = "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
        let mut rng = fastrand::Rng::with_seed(5);
        let mut lines: Vec<String> = (0..12).map(|_| random_line(&mut rng)).collect();
        let write = |lines: &[String]| {
            std::fs::write(&path, format!("{head}{}\n", lines.join("\n"))).unwrap();
        };
        write(&lines);
        let mut prev = Zone::load(&origin, &path).unwrap();
        for step in 0..600 {
            for _ in 0..rng.usize(1..4) {
                match rng.usize(..5) {
                    0 if !lines.is_empty() => {
                        lines.remove(rng.usize(..lines.len()));
                    }
                    1 if lines.len() > 1 => {
                        let (i, j) = (rng.usize(..lines.len()), rng.usize(..lines.len()));
                        lines.swap(i, j);
                    }
                    2 if !lines.is_empty() => {
                        let i = rng.usize(..lines.len());
                        lines[i] = random_line(&mut rng);
                    }
                    _ => {
                        let at = rng.usize(..=lines.len());
                        lines.insert(at, random_line(&mut rng));
                    }
                }
            }
            write(&lines);
            let before = sets_of(&prev);
            let new = Zone::load_after(&origin, &path, Some(&prev)).unwrap();
            let fresh = Zone::load(&origin, &path).unwrap();
            assert_eq!(
                sets_of(&prev),
                before,
                "step {step}: the served zone changed"
            );
            assert_eq!(
                sets_of(&new),
                sets_of(&fresh),
                "step {step}:\n{}",
                lines.join("\n")
            );
            let soa = prev
                .file_soa
                .records_without_rrsigs()
                .next()
                .unwrap()
                .clone();
            let diff =
                crate::xfr::journal::Diff::between(soa.clone(), soa, (&prev, &[]), (&new, &[]));
            let mut applied = records_of(&prev);
            for r in &diff.removed {
                let t = r.to_string();
                let i = applied.iter().position(|x| x.eq_ignore_ascii_case(&t));
                applied.remove(i.unwrap_or_else(|| panic!("step {step}: {t} removed, not there")));
            }
            applied.extend(diff.added.iter().map(|r| r.to_string()));
            applied.sort();
            let lower = |v: Vec<String>| {
                let mut v: Vec<String> = v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
                v.sort();
                v
            };
            assert_eq!(lower(applied), lower(records_of(&new)), "step {step}");
            prev = new;
        }
    }
}

#[cfg(test)]
mod journal_case_tests {
    use super::*;

    /// A reload that only changes the case of a name in RDATA (kept by
    /// `_` labels) is a change the IXFR difference must carry (hickory's
    /// `==` ignores the case of names: the journal compares wire bytes).
    #[test]
    fn a_case_change_in_rdata_is_in_the_ixfr_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        let origin = Name::from_ascii("t.").unwrap();
        let head = "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
        std::fs::write(&path, format!("{head}b MX 10 _mail.example.\n")).unwrap();
        let old = Zone::load(&origin, &path).unwrap();
        std::fs::write(&path, format!("{head}b MX 10 _Mail.example.\n")).unwrap();
        let new = Zone::load_after(&origin, &path, Some(&old)).unwrap();
        let soa = old
            .file_soa
            .records_without_rrsigs()
            .next()
            .unwrap()
            .clone();
        let diff = crate::xfr::journal::Diff::between(soa.clone(), soa, (&old, &[]), (&new, &[]));
        assert_eq!(diff.added.len(), 1, "{diff:?}");
        assert_eq!(diff.removed.len(), 1, "{diff:?}");
    }
}

#[cfg(test)]
mod include_location_tests {
    use super::*;

    /// Errors found when the zone is built name the file and line of the
    /// record, whichever file of an `$INCLUDE` chain it is in.
    #[test]
    fn build_errors_name_the_included_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("z.zone");
        let inc = dir.path().join("inc.zone");
        std::fs::write(&inc, "; included\nb A 192.0.2.9\nsub SOA ns h 1 2 3 4 5\n").unwrap();
        std::fs::write(
            &main,
            format!(
                "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\n$INCLUDE {}\nb CNAME x\nc CNAME y\n",
                inc.display()
            ),
        )
        .unwrap();
        let err = Zone::load(&Name::from_ascii("t.").unwrap(), &main).unwrap_err();
        let found: Vec<(String, usize)> = err
            .0
            .iter()
            .map(|d| {
                (
                    d.file.file_name().unwrap().to_string_lossy().into_owned(),
                    d.line,
                )
            })
            .collect();
        assert!(found.contains(&("z.zone".to_string(), 5)), "{err:?}");
        assert!(found.contains(&("inc.zone".to_string(), 3)), "{err:?}");
    }
}
