//! Relative paths and how they are opened: the `openat2` confinement every
//! read and write goes through, and the small byte-path helpers (split,
//! join, validate) the supervisor and the workers share, kept apart from
//! the copying so the one security boundary is readable on its own.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Open `rel` beneath `root`, refusing any symlink on the way and any
/// escape (`..`, absolute paths). An empty `rel` opens the root itself.
///
/// Paths longer than PATH_MAX are resolved in segments of at most
/// `SEGMENT` bytes, each beneath the directory the previous one opened, so
/// tree depth is limited by nothing but the filesystem.
pub fn open_beneath(root: impl AsFd, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let mut dir: Option<OwnedFd> = None;
    let mut rest = rel;
    while rest.len() > SEGMENT {
        let cut = rest[..SEGMENT]
            .iter()
            .rposition(|&b| b == b'/')
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
        let base = dir.as_ref().map_or(root.as_fd(), |d| d.as_fd());
        let next = open_segment(base, &rest[..cut], OFlags::DIRECTORY | OFlags::RDONLY)?;
        dir = Some(next);
        rest = &rest[cut + 1..];
    }
    let base = dir.as_ref().map_or(root.as_fd(), |d| d.as_fd());
    open_segment(base, rest, flags)
}

/// Longest relative path handed to one `openat2` call (PATH_MAX is 4096).
const SEGMENT: usize = 4000;

fn open_segment(base: BorrowedFd, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    Ok(rustix::fs::openat2(
        base,
        rel,
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        resolve,
    )?)
}

/// Open source directory `rel`. Without `follow` it is resolved beneath the
/// root with no symlinks; with `follow` (`--dereference`) the user asked for
/// source symlinks to be followed, wherever they point.
pub fn open_src_dir(root: impl AsFd, rel: &[u8], follow: bool) -> io::Result<OwnedFd> {
    if !follow {
        return open_beneath(root, rel, OFlags::DIRECTORY | OFlags::RDONLY);
    }
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(root, rel, flags, Mode::empty())?)
}

/// Split `a/b/c` into (`a/b`, `c`); a bare name has an empty parent.
pub fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// `a/b` and `c` as `a/b/c`; an empty parent gives the bare name.
pub fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        r.extend_from_slice(parent);
        r.push(b'/');
    }
    r.extend_from_slice(name);
    r
}

/// Whether a task path is acceptable: relative, no empty, `.` or `..`
/// components, no NUL. The supervisor is trusted, but the check is cheap.
pub fn valid_rel(rel: &[u8]) -> bool {
    !rel.is_empty()
        && !rel.contains(&0)
        && rel
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(split_rel(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_rel(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn rejects_escaping_task_paths() {
        assert!(valid_rel(b"a/b"));
        assert!(valid_rel(b"\xff\n-x"));
        for bad in [
            &b"../x"[..],
            b"/etc",
            b"a/../b",
            b"a//b",
            b"a\0b",
            b"",
            b".",
        ] {
            assert!(!valid_rel(bad), "{:?}", bad);
        }
    }
}
