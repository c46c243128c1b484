//! veer: an authoritative DNS server whose answers follow the health of the
//! endpoints behind them.
//!
//! # Data flow
//!
//! ```text
//! veer.toml + zone files ──> config::load ──> control::build::Base (zones, route slots)
//!                                                 │
//!                              control::reconcile │ (start = reconcile from nothing;
//!                                                 v  every reload goes through it)
//! health probe tasks ──Report──> control::Controller ──route::decide──> slots ──> store::Store::publish
//!   (health::scheduler)            ^       │                                          │
//! admin-state file, API ──Command──┘       ├──> checkpoint, webhooks                  │ one atomic
//! watcher, SIGHUP ────────Command──┘       └──> status::Status (inside the snapshot)   │ snapshot
//!                                                                                      v
//! UDP/TCP query ──> dns::Handler ──> Store::load ──> dns::answer::resolve ──> route::table::Table::pick ──> response
//!                        └──(query, response bytes; [dnstap] on)──> bounded queue ──> dnstap writer thread
//! ```
//!
//! # Layout
//!
//! From the bottom up: a module uses the modules above it in this list,
//! with two exceptions: `config` and `geo` parse networks with `route::prefix`, and
//! a `route::table::Table`'s entries are `store::Dyn` slot contents.
//!
//! - [`diag`]: operator-facing diagnostics (`file:line: message`).
//! - [`durable`]: crash-safe replacement of the state files.
//! - [`metrics`]: lock-free counters and histograms.
//! - [`cookie`]: DNS cookies (RFC 7873, RFC 9018 server cookies).
//! - [`tsig`]: TSIG keys, request checks and signed responses (RFC 8945).
//! - [`dnssec`]: zone keys in BIND key files, RRSIG and NSEC records.
//! - [`zone`]: master files (with line numbers) into an immutable, query-ready tree.
//! - [`config`]: `veer.toml` into a validated [`config::Config`]; every error as `file:line: message`.
//! - [`geo`]: client locations from a `.mmdb` database and/or a CIDR map file.
//! - [`health`]: check states, probes and their scheduler, hysteresis, the
//!   prober guard, overrides and the checkpoint format.
//! - [`route`]: the policies: `decide` (health half, run by the controller) and
//!   `Table::pick` (client half, run per query and by `veer explain`).
//! - [`rrl`]: response rate limiting (token buckets per network, class and name).
//! - [`status`]: the read-only view the API shows, published with each snapshot.
//! - [`store`]: the one published [`store::Snapshot`] behind an atomic pointer.
//! - [`dnstap`]: query logging (dnstap in Frame Streams) through a bounded
//!   queue and one writer thread.
//! - [`dns`]: sockets, the request handler and resolution.
//! - [`control`]: the single writer: reconcile, health reports, overrides,
//!   decisions, snapshots, checkpoint and webhooks.
//! - [`explain`]: `veer explain`, offline, through the server's own resolution.
//! - [`api`]: the admin HTTP API, `/metrics` and the status page.
//! - [`privilege`]: binding as root, then running as `[server] user`.
//! - [`runtime`]: wiring for `veer serve`.
//! - [`sdnotify`]: systemd readiness, reload, stop and watchdog notifications.
//! - [`cli`]: the command line.

pub mod api;
pub mod cli;
pub mod config;
pub mod control;
pub mod cookie;
pub mod diag;
pub mod dns;
pub mod dnssec;
pub mod dnstap;
pub mod durable;
pub mod explain;
pub mod fleet;
pub mod geo;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod privilege;
pub mod route;
pub mod rrl;
pub mod runtime;
pub mod sdnotify;
pub mod status;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod tsig;
pub mod xfr;
pub mod zone;
