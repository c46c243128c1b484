//! Any text as veer.toml: a config or file:line diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = veer::config::parse_partial(std::path::Path::new("/nonexistent/veer.toml"), &text);
});
