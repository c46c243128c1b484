//! Handing freed memory back to the system.
//!
//! glibc's allocator keeps freed memory for reuse instead of returning
//! it. A zone load frees its intermediate copies, and a reload frees the
//! previous zones once the last query holding the old snapshot ends: a
//! server with a large zone stayed at its peak size after loading, and
//! after a few reloads at about three times its size. A moment after
//! each, a short-lived thread returns the free pages.

use std::time::Duration;

/// How long the previous snapshot may still be held by queries in flight.
const SETTLE: Duration = Duration::from_millis(300);

/// Returns free memory to the system soon, off the calling thread.
pub fn trim_soon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("veer-trim".into())
            .spawn(|| {
                std::thread::sleep(SETTLE);
                // SAFETY: malloc_trim only releases free memory; it is
                // safe to call at any time from any thread.
                unsafe { libc::malloc_trim(0) };
            });
        if let Err(e) = spawned {
            tracing::debug!("cannot start the memory trim thread: {e}");
        }
    }
}
