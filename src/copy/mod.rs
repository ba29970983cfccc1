//! Placing one entry at the destination. Used by workers; every path is
//! resolved beneath held root descriptors with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so neither a symlink in the source nor one planted
//! in the destination can redirect a read or a write outside the trees.
//!
//! Invariant: a final name only ever appears through `renameat` of a fully
//! written temporary that already carries its metadata.

pub mod attrs;
pub mod data;
mod file;
pub(crate) use file::open_source;
mod special;
pub mod temp;
mod verify;
pub mod xattrs;

use crate::protocol::{ErrorKind, Outcome, Task, TaskKind, WorkerInit};
use crate::util::classify;
use attrs::{same_size_and_mtime, Attrs};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Attempts at copying a file that keeps changing under us.
const CHANGE_RETRIES: usize = 3;

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

/// Whether a task path is acceptable: relative, no empty, `.` or `..`
/// components, no NUL. The supervisor is trusted, but the check is cheap.
pub fn valid_rel(rel: &[u8]) -> bool {
    !rel.is_empty()
        && !rel.contains(&0)
        && rel
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// A directory descriptor cached by its relative path: consecutive tasks
/// usually share a parent (walk order), so this saves an openat2 per file.
#[derive(Default)]
struct DirCache {
    rel: Vec<u8>,
    fd: Option<OwnedFd>,
    /// Follow symlinks (source side with --dereference only).
    follow: bool,
}

impl DirCache {
    fn get(&mut self, root: &OwnedFd, rel: &[u8]) -> io::Result<&OwnedFd> {
        if self.fd.is_none() || self.rel != rel {
            self.fd = None;
            let fd = if self.follow {
                open_src_dir(root, rel, true)?
            } else {
                open_beneath(root, rel, OFlags::DIRECTORY | OFlags::RDONLY)?
            };
            self.rel = rel.to_vec();
            self.fd = Some(fd);
        }
        self.fd
            .as_ref()
            .ok_or_else(|| io::Error::other("directory cache empty"))
    }
}

/// A worker's copying state: root descriptors, caches, temp-name sequence.
pub struct Copier {
    src_root: OwnedFd,
    dst_root: OwnedFd,
    init: WorkerInit,
    owner: bool,
    /// Cached: part of every temp name.
    pid: u32,
    /// Our (euid, egid): what a file we create is owned by in a directory
    /// this run created (no setgid bit), so chown can be skipped.
    ids: (u32, u32),
    seq: u64,
    /// Scratch space for extended attribute lists and values.
    xattr_buf: Vec<u8>,
    /// O_TMPFILE + linkat works on this destination (cleared on first refusal).
    tmpfile_ok: bool,
    src_dir: DirCache,
    dst_dir: DirCache,
}

/// Failure while placing an entry, with the protocol's kind. The side is
/// the operation's (`what`), or the destination whatever the operation for
/// errors only a destination can raise (full, quota, read-only, too big).
fn failed(e: &io::Error, what: &str) -> Outcome {
    if e.kind() == io::ErrorKind::InvalidData && e.to_string() == verify::MISMATCH {
        return Outcome::Failed {
            kind: ErrorKind::VerifyMismatch,
            msg: format!("{}: {e}", "verify"),
            dst: true,
        };
    }
    let dst_op = matches!(
        what,
        "open destination directory"
            | "create temporary file"
            | "open shared temporary file"
            | "rename into place"
            | "link into place"
    );
    let dst_errno = matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EFBIG)
    );
    Outcome::Failed {
        kind: classify(e),
        msg: format!("{what}: {e}"),
        dst: dst_op || dst_errno,
    }
}

impl Copier {
    /// `src_root` and `dst_root` are the run's validated root directories;
    /// every path is resolved beneath them.
    pub fn new(src_root: OwnedFd, dst_root: OwnedFd, init: WorkerInit) -> Self {
        let deref = init.dereference;
        Copier {
            src_root,
            dst_root,
            owner: init.preserve_owner && attrs::is_root(),
            init,
            pid: std::process::id(),
            ids: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            seq: 0,
            tmpfile_ok: true,
            src_dir: DirCache {
                follow: deref,
                ..DirCache::default()
            },
            xattr_buf: Vec::new(),
            dst_dir: DirCache::default(),
        }
    }

    fn temp_name(&mut self) -> Vec<u8> {
        self.seq += 1;
        temp::worker(self.init.run_id, self.pid, self.seq)
    }

    /// Place one entry (already checked by `worker::validate_task`). Never
    /// panics on I/O; every failure is an `Outcome`.
    pub fn run(&mut self, task: &Task, tick: data::Tick) -> Outcome {
        crate::failpoint::hit("worker::before_task", &task.rel.0);
        match task.kind {
            TaskKind::File { .. } => self.copy_file(&task.rel.0, task.fresh, tick),
            TaskKind::Symlink => self.copy_symlink(&task.rel.0),
            TaskKind::Fifo | TaskKind::Device => self.copy_special(&task.rel.0),
            TaskKind::Chunk {
                offset,
                len,
                file_size,
                mtime,
                ref temp,
            } => {
                let span = file::Span {
                    offset,
                    len,
                    file_size,
                    mtime,
                };
                self.copy_chunk(&task.rel.0, &temp.0, span, tick)
                    .unwrap_or_else(|o| o)
            }
        }
    }

    fn copy_symlink(&mut self, rel: &[u8]) -> Outcome {
        let (parent, name) = split_rel(rel);
        let r = (|| -> io::Result<Outcome> {
            let sdir = self.src_dir.get(&self.src_root, parent)?;
            let st = rustix::fs::statat(sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let target = rustix::fs::readlinkat(sdir, name, Vec::new())?;
            let ddir = self.dst_dir.get(&self.dst_root, parent)?.try_clone()?;
            if !self.init.ignore_times {
                if let Ok(dst) = rustix::fs::statat(&ddir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    if rustix::fs::FileType::from_raw_mode(dst.st_mode)
                        == rustix::fs::FileType::Symlink
                        && same_size_and_mtime(&st, &dst)
                        && rustix::fs::readlinkat(&ddir, name, Vec::new())? == target
                    {
                        return Ok(Outcome::Skipped { bytes: 0 });
                    }
                }
            }
            let tmp = self.temp_name();
            rustix::fs::symlinkat(&*target, &ddir, &tmp[..])?;
            special::finish(&ddir, &tmp, name, &Attrs::from_stat(&st), self.owner, true)?;
            Ok(Outcome::Copied {
                bytes: 0,
                verified: false,
            })
        })();
        r.unwrap_or_else(|e| failed(&e, "symlink"))
    }

    fn copy_special(&mut self, rel: &[u8]) -> Outcome {
        let (parent, name) = split_rel(rel);
        let tmp = self.temp_name();
        let owner = self.owner;
        let r = (|| -> io::Result<Outcome> {
            let sdir = self.src_dir.get(&self.src_root, parent)?;
            let st = rustix::fs::statat(sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let ddir = self.dst_dir.get(&self.dst_root, parent)?.try_clone()?;
            special::make_node(&ddir, &tmp, name, &st, owner)
        })();
        r.unwrap_or_else(|e| failed(&e, "special file"))
    }
}

/// Close explicitly so a deferred write error (NFS, quota) fails the file
/// instead of vanishing in `Drop`.
fn close_checked(fd: OwnedFd) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from an OwnedFd we own and is closed exactly once.
    if unsafe { libc::close(raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
