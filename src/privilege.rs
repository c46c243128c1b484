//! Running unprivileged: bind port 53 as root, then become `[server] user`
//! (and `group`). `state_dir` is handed to that user first, so the
//! checkpoint and the admin-state file stay writable; if that cannot be
//! done, veer refuses to start rather than run without its state.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// A resolved user to become.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// User id.
    pub uid: libc::uid_t,
    /// Group id.
    pub gid: libc::gid_t,
}

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DropError {
    /// No such user or group.
    #[error("[server] {what} `{name}`: no such {what}")]
    Unknown {
        /// `user` or `group`.
        what: &'static str,
        /// As configured.
        name: String,
    },
    /// The state directory cannot be given to the user.
    #[error("[server] user: cannot make {path} writable for uid {uid}: {source}")]
    State {
        /// The directory or file.
        path: String,
        /// The user.
        uid: libc::uid_t,
        /// Why.
        source: io::Error,
    },
    /// A system call failed.
    #[error("[server] user: {call} failed: {source}")]
    Call {
        /// Which.
        call: &'static str,
        /// Why.
        source: io::Error,
    },
}

/// Looks up `user` (and `group`, else the user's primary group).
pub fn resolve(user: &str, group: Option<&str>) -> Result<Target, DropError> {
    let unknown = |what, name: &str| DropError::Unknown {
        what,
        name: name.to_string(),
    };
    let cuser = CString::new(user).map_err(|_| unknown("user", user))?;
    // SAFETY: getpwnam returns a pointer to static storage or null; it is
    // read at once, before any other call could overwrite it (start-up,
    // before the tasks that might call it run).
    let pw = unsafe { libc::getpwnam(cuser.as_ptr()) };
    if pw.is_null() {
        return Err(unknown("user", user));
    }
    // SAFETY: non-null, as checked.
    let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Some(g) = group {
        let cgroup = CString::new(g).map_err(|_| unknown("group", g))?;
        // SAFETY: as for getpwnam.
        let gr = unsafe { libc::getgrnam(cgroup.as_ptr()) };
        if gr.is_null() {
            return Err(unknown("group", g));
        }
        // SAFETY: non-null, as checked.
        gid = unsafe { (*gr).gr_gid };
    }
    Ok(Target { uid, gid })
}

/// Creates `dir` if needed and gives it, and the files in it, to `t`.
pub fn hand_over(dir: &Path, t: Target) -> Result<(), DropError> {
    let fail = |p: &Path, source| DropError::State {
        path: p.display().to_string(),
        uid: t.uid,
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    std::os::unix::fs::chown(dir, Some(t.uid), Some(t.gid)).map_err(|e| fail(dir, e))?;
    for e in std::fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let p = e.map_err(|e| fail(dir, e))?.path();
        std::os::unix::fs::chown(&p, Some(t.uid), Some(t.gid)).map_err(|e| fail(&p, e))?;
    }
    Ok(())
}

/// Becomes `t` for good: supplementary groups dropped, then the group,
/// then the user (in that order: after setuid the others are refused).
/// Every thread of the process changes (glibc applies it process-wide).
pub fn become_user(t: Target) -> Result<(), DropError> {
    let check = |call, r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(DropError::Call {
                call,
                source: io::Error::last_os_error(),
            })
        }
    };
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        check("setgroups", libc::setgroups(0, std::ptr::null()))?;
        check("setgid", libc::setgid(t.gid))?;
        check("setuid", libc::setuid(t.uid))?;
        // Verify it cannot be undone.
        if libc::setuid(0) == 0 && t.uid != 0 {
            return Err(DropError::Call {
                call: "setuid (still able to regain root)",
                source: io::Error::other("privileges not dropped"),
            });
        }
    }
    Ok(())
}

/// Proves, as the new user, that `dir` takes a file (its parents must be
/// searchable too): else veer would run without a checkpoint.
pub fn check_writable(dir: &Path, t: Target) -> Result<(), DropError> {
    let probe = ".veer-write-check";
    crate::durable::replace(dir, probe, b"")
        .and_then(|()| std::fs::remove_file(dir.join(probe)))
        .map_err(|source| DropError::State {
            path: dir.display().to_string(),
            uid: t.uid,
            source,
        })
}
