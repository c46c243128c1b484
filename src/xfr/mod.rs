//! Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995) and NOTIFY
//! (RFC 1996), signed with TSIG (RFC 8945): veer as the primary of
//! standard secondaries.
//!
//! What a secondary receives is what veer serves, frozen: the zone file's
//! records, the SOA with the served serial, and for every route the
//! records it answers under the current health, chosen by
//! [`crate::control`] as the README's "Zone transfers" section says. Every
//! publish whose serial moved adds a [`journal::Diff`] to the zone's
//! bounded journal, so IXFR sends only the difference; the NOTIFY sender
//! tells every target of the new serial.
//!
//! The transfer state travels in the snapshot ([`Xfr`]), so one transfer
//! answers from one snapshot even while a newer one is published.
//!
//! [`client`] is the other direction: veer as a secondary, asking a
//! primary for its serial and fetching the zone by IXFR or AXFR.

pub mod client;
pub mod journal;
pub mod notify;
pub mod out;
pub mod secondary;

use std::sync::Arc;

use hickory_proto::rr::{Name, Record};
use rustc_hash::FxHashMap;

use crate::config::{Allow, NotifyTarget};
use crate::zone::Zone;
pub use journal::{Diff, Journal};

/// What the transfer code needs of one zone, as published.
#[derive(Debug)]
pub struct ZoneXfr {
    /// The zone's static data.
    pub zone: Arc<Zone>,
    /// The served serial.
    pub serial: u32,
    /// The served SOA record (with `serial`).
    pub soa: Record,
    /// The routes' records as a transfer shows them, sorted; in a signed
    /// zone followed by their RRSIGs, the routed names' NSEC records (with
    /// the types their routes transfer now) and the SOA's RRSIGs.
    pub routed: Arc<[Record]>,
    /// `routed` without what signing added, to see what changed.
    pub routed_plain: Arc<[Record]>,
    /// Differences from earlier serials to `serial`.
    pub journal: Arc<Journal>,
    /// Who may transfer it.
    pub allow: Arc<[Allow]>,
    /// Whom NOTIFY goes to.
    pub notify: Arc<[NotifyTarget]>,
    /// A secondary zone that expired (or never arrived): not transferred.
    pub expired: bool,
}

/// Every zone's transfer state and the TSIG keys, as published.
#[derive(Debug, Default)]
pub struct Xfr {
    /// By origin (lower case).
    pub zones: FxHashMap<Name, Arc<ZoneXfr>>,
    /// `[key.NAME]`.
    pub keys: Arc<[crate::tsig::Key]>,
    /// What the NOTIFY targets acknowledged (live, shared with the sender).
    pub notify: Arc<notify::NotifyStatus>,
    /// Secondary zones by origin (lower case): NOTIFY in, status.
    pub secondaries: FxHashMap<Name, Arc<secondary::Handle>>,
}

impl Xfr {
    /// The zone whose apex is `name`.
    pub fn zone(&self, name: &Name) -> Option<&Arc<ZoneXfr>> {
        self.zones.get(&name.to_lowercase())
    }
}
