//! `veer explain`: which answer a client gets for a name, and why, worked
//! out offline from the config plus the checkpointed health states (or a
//! given set of down checks). It builds the same snapshot the server
//! publishes (the controller's `decide` per route) and resolves the query
//! with the server's own [`resolve`], collecting the pick steps; nothing
//! here decides anything itself.

use std::fmt::Write;
use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};

use crate::control::build::Base;
use crate::control::{Controller, OverrideError};
use crate::dns::answer::{Part, resolve};
use crate::route::Client;
use crate::route::prefix::Net;

/// What to explain.
#[derive(Debug, Clone)]
pub struct Query {
    /// Query name.
    pub name: String,
    /// Query type.
    pub rtype: String,
    /// The source address of the query.
    pub client: IpAddr,
    /// An ECS prefix the query carries (`203.0.113.0/24`).
    pub ecs: Option<String>,
    /// Checks to take as down (every other probed check up) instead of
    /// the checkpointed states.
    pub down: Option<Vec<String>>,
}

/// What is wrong with a query to explain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The name does not parse.
    #[error("{name}: {source}")]
    Name {
        /// As given.
        name: String,
        /// Why.
        source: hickory_proto::ProtoError,
    },
    /// Not a record type.
    #[error("unknown type `{0}`")]
    Type(String),
    /// The ECS prefix does not parse.
    #[error("--ecs {0}")]
    Ecs(#[from] crate::route::prefix::NetError),
    /// `--down` names no check.
    #[error("--down {0}: no such check")]
    Down(String),
}

/// The explanation as text, or what is wrong with the query.
pub fn explain(base: Base, q: &Query) -> Result<String, ExplainError> {
    let mut name = Name::from_utf8(&q.name).map_err(|source| ExplainError::Name {
        name: q.name.clone(),
        source,
    })?;
    name.set_fqdn(true);
    let name = name.to_lowercase();
    let rtype = RecordType::from_str(&q.rtype.to_ascii_uppercase())
        .map_err(|_| ExplainError::Type(q.rtype.clone()))?;
    let (client, ecs) = match &q.ecs {
        None => (Client::addr(q.client), None),
        Some(p) => {
            let net: Net = p.parse().map_err(ExplainError::Ecs)?;
            let c = if net.len == 0 {
                // Source prefix 0: the server routes on the source address.
                Client::addr(q.client)
            } else {
                Client {
                    addr: net.addr,
                    prefix: net.len,
                }
            };
            (c, Some(net))
        }
    };
    let controller = Controller::offline(base, q.down.as_deref()).map_err(|e| match e {
        OverrideError::UnknownCheck(c) => ExplainError::Down(c),
        other => ExplainError::Down(other.to_string()),
    })?;
    let snap = controller.snapshot();
    let config = &controller.base().config;

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "query: {name} {rtype}");
    let _ = match ecs {
        Some(net) => writeln!(
            w,
            "client: {} with ECS {net}: routing on {client}",
            q.client
        ),
        None => writeln!(w, "client: {} (no ECS)", q.client),
    };
    let _ = match &q.down {
        Some(d) if d.is_empty() => writeln!(w, "health: every check up (--down given empty)"),
        Some(d) => writeln!(
            w,
            "health: down: {}; every other check up (--down)",
            d.join(", ")
        ),
        None => writeln!(
            w,
            "health: checkpointed states and admin-state overrides{}",
            config
                .server
                .state_dir
                .as_ref()
                .map(|d| format!(" in {}", d.display()))
                .unwrap_or_else(|| " (no state_dir: unknown, counted healthy)".into())
        ),
    };
    if !config.checks.is_empty() {
        let _ = writeln!(w, "checks:");
        for (c, h) in config.checks.iter().zip(controller.health()) {
            let forced = if h.forced {
                format!(" (forced; real state {})", h.observed)
            } else {
                String::new()
            };
            let _ = writeln!(w, "  {}: {}{forced}: {}", c.name, h.effective, h.reason);
        }
    }

    // The routes at this name, and every route they name.
    let mut todo: Vec<usize> = config
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name == name && (r.rtype == rtype || r.rtype == RecordType::CNAME))
        .map(|(i, _)| i)
        .collect();
    let mut shown = Vec::new();
    let mut next = 0;
    while next < todo.len() {
        let i = todo[next];
        next += 1;
        if shown.contains(&i) {
            continue;
        }
        shown.push(i);
        let r = &config.routes[i];
        let _ = writeln!(
            w,
            "route {} {} (policy {}, line {}):",
            r.name,
            r.rtype,
            r.policy.name(),
            r.line
        );
        if let Some(d) = &controller.decisions()[i] {
            for step in &d.path {
                let _ = writeln!(w, "  {step}");
            }
            let _ = writeln!(
                w,
                "  route health: {}",
                if d.healthy { "healthy" } else { "down" }
            );
            // What clients the named route has no answer for get instead.
            let mut then = d.then.as_deref();
            while let Some(t) = then {
                let _ = writeln!(w, "  for clients the named route has no answer for:");
                for step in &t.path {
                    let _ = writeln!(w, "    {step}");
                }
                then = t.then.as_deref();
            }
        }
        todo.extend(r.members.iter().filter_map(|m| m.route));
    }
    if shown.is_empty() {
        let _ = writeln!(w, "no route at {name} {rtype}: zone data answers");
    }

    let mut steps: Vec<String> = Vec::new();
    let answer = resolve(&snap, &name, rtype, &client, &mut steps, false);
    if !steps.is_empty() {
        let _ = writeln!(w, "pick:");
        for s in &steps {
            let _ = writeln!(w, "  {s}");
        }
    }
    let _ = writeln!(
        w,
        "answer: {}",
        format!("{:?}", answer.rcode).to_ascii_uppercase()
    );
    let mut ttl = None;
    for part in &answer.answer {
        for r in part.records().records_without_rrsigs() {
            let owner = match part {
                Part::Synth(_, owner) => *owner,
                Part::Set(_) | Part::Sigs(_) => &r.name,
            };
            ttl = Some(ttl.map_or(r.ttl, |t: u32| t.min(r.ttl)));
            let _ = writeln!(w, "  {owner} {} IN {} {}", r.ttl, r.record_type(), r.data);
        }
    }
    if let Some(auth) = answer.authority {
        for r in auth.records_without_rrsigs() {
            let _ = writeln!(
                w,
                "  (authority) {} {} IN {} {}",
                r.name,
                answer.authority_ttl.unwrap_or(r.ttl),
                r.record_type(),
                r.data
            );
        }
    }
    if let Some(t) = ttl {
        let _ = writeln!(w, "ttl: {t}");
    }
    // Source prefix 0 is answered with scope 0 (RFC 7871 7.1.2).
    let scope = if ecs.is_some_and(|n| n.len == 0) {
        0
    } else {
        answer.scope
    };
    let _ = writeln!(
        w,
        "ecs scope: /{scope}{}",
        if scope == 0 {
            " (the answer does not depend on the client)"
        } else {
            ""
        }
    );
    Ok(out)
}
