//! Any bytes as a zone file: a zone or file:line diagnostics, never a
//! panic.
#![no_main]

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.zone");
    std::fs::write(&path, data).unwrap();
    let _ = veer::zone::Zone::load(&Name::from_ascii("t.").unwrap(), &path);
});
