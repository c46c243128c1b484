//! veer: an authoritative DNS server whose answers follow the health of the
//! endpoints behind them.
//!
//! # Data flow
//!
//! ```text
//! config + zone files ──> config::load, zone::Zone::load ──> store::Snapshot ──┐
//!                                                                              v
//! UDP/TCP query ──> hickory Server ──> dns::Handler ──> Store::load (atomic) ──> dns::answer::resolve ──> response
//! ```
//!
//! # Layout
//!
//! - [`config`]: `veer.toml` into a validated [`config::Config`]; every error as `file:line: message`.
//! - [`zone`]: master files (with line numbers) into an immutable, query-ready tree.
//! - [`store`]: the one published [`store::Snapshot`] behind an atomic pointer.
//! - [`dns`]: sockets, hickory's server loop, the request handler and resolution.
//! - [`route`]: the policies: `decide` (health half, run by the controller) and
//!   `Table::pick` (client half, run per query and by `veer explain`).
//! - [`explain`]: `veer explain`, offline, through the server's own resolution.
//! - [`geo`]: client locations from a `.mmdb` database and/or a CIDR map file.
//! - [`runtime`]: wiring for `veer serve`.
//! - [`cli`]: the command line.
//! - [`diag`]: operator-facing diagnostics.

pub mod api;
pub mod cli;
pub mod config;
pub mod control;
pub mod diag;
pub mod dns;
pub mod explain;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod route;
pub mod runtime;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod zone;
