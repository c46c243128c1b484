//! TEMPORARY STUB (the real module comes from its own branch).
#![allow(missing_docs, dead_code)]
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{Name, Record};

#[derive(Debug, Clone)]
pub struct Source {
    pub address: SocketAddr,
    pub key: Option<crate::tsig::Key>,
}
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_records: usize,
    pub max_bytes: u64,
}
impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            max_records: 10_000_000,
            max_bytes: 2 << 30,
        }
    }
}
#[derive(Debug, Clone)]
pub struct Step {
    pub from: Record,
    pub to: Record,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}
#[derive(Debug)]
pub enum Fetched {
    UpToDate,
    Full(Vec<Record>),
    Incremental(Vec<Step>),
}
pub async fn soa_serial(_zone: &Name, _src: &Source, _limits: Limits) -> Result<u32, String> {
    Err("stub".into())
}
pub async fn fetch(
    _zone: &Name,
    _src: &Source,
    _have: Option<&Record>,
    _limits: Limits,
) -> Result<Fetched, String> {
    Err("stub".into())
}
pub fn apply(_records: Vec<Record>, _steps: &[Step]) -> Result<Vec<Record>, String> {
    Err("stub".into())
}
