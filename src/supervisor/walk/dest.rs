//! Destination-side steps of the walk: create or reuse a directory without
//! following a symlink in its place, and clear stale temporaries from
//! reused ones. (The quick check itself is `copy::attrs::up_to_date`.)

use crate::copy::temp;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;

/// Create (or reuse) directory `name` under `parent` without following a
/// symlink in its place. Created owner-only; its real mode comes last. A
/// reused directory is made owner-writable (the walker clears its stale
/// temps when it reads it).
pub fn make_dir(parent: &OwnedFd, name: &[u8]) -> io::Result<(OwnedFd, bool)> {
    let created = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let fd = open_dir(parent, name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) | Some(libc::ELOOP) => io::Error::new(
            io::ErrorKind::AlreadyExists,
            "destination has a non-directory in the way",
        ),
        _ => e,
    })?;
    if !created {
        let st = rustix::fs::fstat(&fd)?;
        if st.st_mode & 0o700 != 0o700 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777))?;
        }
    }
    Ok((fd, created))
}

fn open_dir(parent: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        parent,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Dry run: whether directory `name` exists (it would be created if not).
pub fn peek_dir(parent: Option<&OwnedFd>, name: &[u8]) -> bool {
    parent.is_some_and(|p| open_dir(p, name).is_ok())
}

/// Delete pcopy temporaries left by a killed run from the destination
/// directory `dst`. Safe because the destination lock guarantees no other
/// run is writing here. Only names in pcopy's exact temp grammar
/// (`copy::temp`) are touched, never one of this run (`run_id`), never a
/// directory, never a name the source directory `src` itself has (a source
/// file of that name is copied like any other).
pub fn remove_stale_temps(dst: &OwnedFd, src: Option<&OwnedFd>, run_id: u64) -> io::Result<usize> {
    // Run markers are not stale temps: each goes when its obligation is
    // met (`recovery`), not when a later run happens to list the root.
    let stale = |name: &[u8]| {
        temp::parse(name).is_some_and(|t| t.run_id != run_id && t.kind != temp::Kind::Run)
            && src.is_none_or(|s| rustix::fs::statat(s, name, AtFlags::SYMLINK_NOFOLLOW).is_err())
    };
    let n = temp::remove_matching(dst, stale)?;
    if n > 0 {
        log::info!("removed {n} stale temporary file(s) from an earlier run");
    }
    Ok(n)
}

/// Give the owner rwx on directory `fd` if it lacks them (as make_dir does
/// for the directories below), so a read-only destination root can be
/// written into; the finish pass puts the source root's mode back.
pub fn open_up(fd: &OwnedFd) {
    if let Ok(st) = rustix::fs::fstat(fd) {
        if st.st_mode & 0o700 != 0o700 {
            let mode = Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777);
            if let Err(e) = rustix::fs::fchmod(fd, mode) {
                log::debug!("destination root: add u+rwx: {e}");
            }
        }
    }
}
