//! The fleet channel: how instances of a fleet tell each other their
//! verdicts. Each instance serves its own votes on the fleet listener
//! (not the admin API) and follows every peer's by a long-poll; the
//! controller combines them (`health::quorum`).
//!
//! ```text
//! controller ──Feed (seq, votes, fleet overrides)──> watch ──> server: GET /v1/fleet/votes?after=SEQ
//!     ^                                                         (answers at once when SEQ is old,
//!     └──── Event::{Heard, Lost} ──── follower per peer <───────  else on the next change or heartbeat)
//! ```
//!
//! Every request carries the fleet token; a peer with a wrong token is
//! refused and logged. A peer's answer is checked field by field: votes or
//! overrides that do not parse are ignored one by one, and an answer that
//! does not parse at all counts as not heard.

pub mod peer;
pub mod server;
pub mod wire;

pub use peer::Event;
pub use wire::Feed;
