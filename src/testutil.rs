//! Unit-test scaffolding: a config and one zone written to a temporary
//! directory, loaded and decided offline by the server's own code.

use std::path::Path;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::control::Controller;
use crate::control::build::Base;
use crate::dns::answer::resolve;
use crate::store::Snapshot;

/// The zone every scaffold serves: `t.` with a 900 s negative TTL.
pub const ZONE: &str = "$ORIGIN t.\n$TTL 3600\n\
@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 900\n\
  IN NS ns\n\
ns IN A 192.0.2.53\n\
www IN A 192.0.2.80\n";

/// `config` (its `[[zone]]` for `t.` is added) with the checks in `down`
/// taken as down and every other check up, as `veer explain --down` sees
/// it; with `None`, every check is as at a cold start (Unknown).
pub fn controller(config: &str, down: Option<&[&str]>) -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("veer.toml");
    std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n{config}"
    );
    std::fs::write(&path, text).unwrap();
    let c = load(&path, down);
    (dir, c)
}

fn load(path: &Path, down: Option<&[&str]>) -> Controller {
    let config = crate::config::load(path).unwrap_or_else(|d| panic!("{d}"));
    let base = Base::load(config).unwrap_or_else(|d| panic!("{d}"));
    let down: Option<Vec<String>> = down.map(|d| d.iter().map(|s| s.to_string()).collect());
    Controller::offline(base, down.as_deref()).expect("offline controller")
}

/// The snapshot a server with `config` publishes with `down` down.
pub fn snapshot(config: &str, down: &[&str]) -> Snapshot {
    controller(config, Some(down)).1.snapshot()
}

/// What `client` (an address, or `addr/prefix` as from ECS) is answered
/// for `name A` from `snap`: rcode, (value, TTL) per answer record, the
/// authority's TTL, and the ECS scope.
pub fn ask(snap: &Snapshot, name: &str, client: &str) -> Asked {
    let qname = hickory_proto::rr::Name::from_ascii(name).unwrap();
    let (addr, prefix) = match client.split_once('/') {
        Some((a, p)) => (a.parse().unwrap(), p.parse().unwrap()),
        None => {
            let a: std::net::IpAddr = client.parse().unwrap();
            (a, crate::route::prefix::width(&a))
        }
    };
    let c = crate::route::Client { addr, prefix };
    let a = resolve(snap, &qname, RecordType::A, &c, &mut (), false);
    let mut values: Vec<(String, u32)> = a
        .answer
        .iter()
        .flat_map(|p| {
            p.records()
                .records_without_rrsigs()
                .map(|r| (r.data.to_string(), r.ttl))
                .collect::<Vec<_>>()
        })
        .collect();
    values.sort();
    Asked {
        rcode: a.rcode,
        values,
        authority_ttl: a.authority.map(|s| a.authority_ttl.unwrap_or(s.ttl())),
        scope: a.scope,
    }
}

/// See [`ask`].
#[derive(Debug, PartialEq)]
pub struct Asked {
    /// Response code.
    pub rcode: ResponseCode,
    /// (value, TTL) of each answer record, sorted.
    pub values: Vec<(String, u32)>,
    /// The TTL of the authority section's record (SOA or NS).
    pub authority_ttl: Option<u32>,
    /// ECS scope.
    pub scope: u8,
}

impl Asked {
    /// The values alone.
    pub fn values(&self) -> Vec<&str> {
        self.values.iter().map(|(v, _)| v.as_str()).collect()
    }
}

/// A new ECDSA P-256 combined signing key for `origin` in `dir`, made
/// `age` ago.
pub fn csk(origin: &str, dir: &Path, age: std::time::Duration) -> crate::dnssec::ZoneKey {
    crate::dnssec::generate(
        &hickory_proto::rr::Name::from_ascii(origin).unwrap(),
        hickory_proto::dnssec::Algorithm::ECDSAP256SHA256,
        true,
        dir,
        std::time::SystemTime::now() - age,
    )
    .unwrap()
}
