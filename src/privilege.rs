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

/// The files veer writes in `state_dir` (and their temporary names begin
/// with a dot and one of these).
const OWN_FILES: [&str; 2] = ["health.json", "admin-state"];

/// Creates `dir` if needed and gives it, and veer's own state files in it,
/// to `t`. Symlinks are never followed and nothing else is touched: the
/// directory belongs to the unprivileged user, who could plant a link to
/// a root-owned file. A directory owned by anyone but root or `t` is
/// refused.
pub fn hand_over(dir: &Path, t: Target) -> Result<(), DropError> {
    use std::os::unix::fs::{MetadataExt, lchown};
    let fail = |p: &Path, source| DropError::State {
        path: p.display().to_string(),
        uid: t.uid,
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(dir, e))?;
    if !meta.is_dir() {
        return Err(fail(dir, io::Error::other("not a directory")));
    }
    if meta.uid() != 0 && meta.uid() != t.uid {
        return Err(fail(
            dir,
            io::Error::other(format!(
                "owned by uid {}, not root nor the user",
                meta.uid()
            )),
        ));
    }
    lchown(dir, Some(t.uid), Some(t.gid)).map_err(|e| fail(dir, e))?;
    for name in OWN_FILES {
        let p = dir.join(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => {
                lchown(&p, Some(t.uid), Some(t.gid)).map_err(|e| fail(&p, e))?
            }
            Ok(_) => return Err(fail(&p, io::Error::other("not a regular file"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&p, e)),
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn hand_over_follows_no_symlink_and_touches_only_veers_files() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: not root, so chown to another user is not possible");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "root only").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("health.json"), "{}").unwrap();
        std::os::unix::fs::symlink(&outside, state.join("evil")).unwrap();
        let nobody = Target {
            uid: 65534,
            gid: 65534,
        };
        hand_over(&state, nobody).unwrap();
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0);
        assert_eq!(
            std::fs::symlink_metadata(state.join("evil")).unwrap().uid(),
            0
        );
        assert_eq!(
            std::fs::metadata(state.join("health.json")).unwrap().uid(),
            65534
        );
        // A link in place of veer's own file is refused.
        std::fs::remove_file(state.join("health.json")).unwrap();
        std::os::unix::fs::symlink(&outside, state.join("health.json")).unwrap();
        assert!(hand_over(&state, nobody).is_err());
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0);
    }
}
