//! Destination-side steps of the walk: create or reuse a directory without
//! following a symlink in its place, and clear stale temporaries from
//! reused ones. (The quick check itself is `copy::attrs::up_to_date`.)

use crate::copy::TEMP_PREFIX;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;

/// Create (or reuse) directory `name` under `parent` without following a
/// symlink in its place. Created owner-only; its real mode comes last. A
/// reused directory is made owner-writable and cleared of stale temps.
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
        remove_stale_temps(&fd)?;
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

/// Delete pcopy temporaries left by a killed run. Safe because the
/// destination lock guarantees no other run is writing here. Only our exact
/// prefix is touched, and only non-directories (never followed).
pub fn remove_stale_temps(dir: &OwnedFd) -> io::Result<usize> {
    let n = remove_temps_with_prefix(dir, TEMP_PREFIX)?;
    if n > 0 {
        log::info!("removed {n} stale temporary file(s) from an earlier run");
    }
    Ok(n)
}

/// Unlink the non-directory entries of `dir` whose names start with `prefix`.
pub fn remove_temps_with_prefix(dir: &OwnedFd, prefix: &[u8]) -> io::Result<usize> {
    let mut n = 0;
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name.starts_with(prefix) && ent.file_type() != FileType::Directory {
            match rustix::fs::unlinkat(dir, ent.file_name(), AtFlags::empty()) {
                Ok(()) => n += 1,
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(n)
}
