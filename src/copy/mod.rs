//! Placing one entry at the destination. Used by workers; every path is
//! resolved beneath held root descriptors with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so neither a symlink in the source nor one planted
//! in the destination can redirect a read or a write outside the trees.
//!
//! Invariant: a final name only ever appears through `renameat` of a fully
//! written temporary that already carries its metadata.

pub mod attrs;
pub mod data;
mod special;
mod verify;
pub mod xattrs;

use crate::protocol::{ErrorKind, Outcome, Task, TaskKind, WorkerInit};
use crate::util::{classify, escape_bytes};
use attrs::{same_size_and_mtime, Attrs};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Prefix of every temporary name; the walker removes stale ones (from a
/// killed run) when it revisits a destination directory.
pub const TEMP_PREFIX: &[u8] = b".pcopy-tmp.";

/// The part of a temp name after `TEMP_PREFIX` that identifies one worker
/// process of one run; the supervisor uses it to remove a dead worker's temp.
pub fn temp_stem(run_id: u64, pid: u32) -> String {
    format!("{run_id:016x}.{pid}.")
}

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
                // --dereference: the user asked for source symlinks to be
                // followed, wherever they point.
                let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
                rustix::fs::openat(
                    root,
                    rel,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?
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

/// Open a regular source file beneath its (held) directory, refusing a
/// symlink unless dereferencing, without blocking on a FIFO swapped in, and
/// without updating its atime where permitted.
fn open_source(
    sdir: &OwnedFd,
    name: &[u8],
    dereference: bool,
) -> Result<(OwnedFd, rustix::fs::Stat), Outcome> {
    crate::failpoint::swap_hook("worker::before_open", sdir.as_fd(), name);
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if !dereference {
        flags |= OFlags::NOFOLLOW;
    }
    let src = match rustix::fs::openat(sdir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(sdir, name, flags, Mode::empty()),
        r => r,
    }
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => Outcome::Failed {
            kind: ErrorKind::NotFound,
            msg: "vanished since the walk (not copied)".into(),
        },
        rustix::io::Errno::LOOP => Outcome::Failed {
            kind: ErrorKind::Changed,
            msg: "became a symlink since the walk (not followed)".into(),
        },
        e => failed(&e.into(), "open source"),
    })?;
    let st = rustix::fs::fstat(&src).map_err(|e| failed(&e.into(), "stat source"))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Outcome::Failed {
            kind: ErrorKind::Changed,
            msg: "source is no longer a regular file".into(),
        });
    }
    Ok((src, st))
}

/// Failure while placing an entry, with the protocol's kind.
fn failed(e: &io::Error, what: &str) -> Outcome {
    if e.kind() == io::ErrorKind::InvalidData && e.to_string() == verify::MISMATCH {
        return Outcome::Failed {
            kind: ErrorKind::VerifyMismatch,
            msg: format!("{}: {e}", "verify"),
        };
    }
    Outcome::Failed {
        kind: classify(e),
        msg: format!("{what}: {e}"),
    }
}

impl Copier {
    pub fn new(init: WorkerInit) -> io::Result<Self> {
        let deref = init.dereference;
        let open_root = |p: &[u8]| {
            rustix::fs::open(
                p,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        Ok(Copier {
            src_root: open_root(&init.source.0)?,
            dst_root: open_root(&init.destination.0)?,
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
        })
    }

    fn temp_name(&mut self) -> Vec<u8> {
        self.seq += 1;
        let mut n = TEMP_PREFIX.to_vec();
        n.extend_from_slice(
            format!("{}{}", temp_stem(self.init.run_id, self.pid), self.seq).as_bytes(),
        );
        n
    }

    /// Place one entry. Never panics on I/O; every failure is an `Outcome`.
    pub fn run(&mut self, task: &Task, tick: data::Tick) -> Outcome {
        if !valid_rel(&task.rel.0) {
            return Outcome::Failed {
                kind: ErrorKind::Other,
                msg: format!("invalid task path {}", escape_bytes(&task.rel.0)),
            };
        }
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
                let span = Span {
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

    fn copy_file(&mut self, rel: &[u8], fresh: bool, tick: data::Tick) -> Outcome {
        let (parent, name) = split_rel(rel);
        let mut mismatches = 0;
        let mut attempts = 0;
        while attempts < CHANGE_RETRIES {
            attempts += 1;
            match self.try_copy_file(parent, name, fresh, tick) {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => continue, // changed while copying: try again
                Err(Outcome::Failed {
                    kind: ErrorKind::VerifyMismatch,
                    ..
                }) if mismatches == 0 => {
                    // --verify: copy once more before giving up.
                    mismatches += 1;
                    attempts -= 1;
                    log::warn!(
                        "{}: checksum mismatch after copy; copying again",
                        escape_bytes(rel)
                    );
                }
                Err(outcome) => return outcome,
            }
        }
        Outcome::Failed {
            kind: ErrorKind::Changed,
            msg: format!("source changed while being copied ({CHANGE_RETRIES} attempts)"),
        }
    }

    /// One attempt. `Ok(None)` means the source changed during the copy.
    /// `fresh`: the destination directory was created by this run, so there
    /// is nothing to compare against (saves a stat per file).
    fn try_copy_file(
        &mut self,
        parent: &[u8],
        name: &[u8],
        fresh: bool,
        tick: data::Tick,
    ) -> Result<Option<Outcome>, Outcome> {
        let tmp = self.temp_name();
        let sdir = self
            .src_dir
            .get(&self.src_root, parent)
            .map_err(|e| failed(&e, "open source directory"))?;
        let (src, st) = open_source(sdir, name, self.init.dereference)?;
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(|e| failed(&e, "open destination directory"))?;
        if !fresh && !self.init.ignore_times {
            if let Ok(dst) = rustix::fs::statat(ddir, name, AtFlags::SYMLINK_NOFOLLOW) {
                let is_reg = rustix::fs::FileType::from_raw_mode(dst.st_mode)
                    == rustix::fs::FileType::RegularFile;
                if is_reg && same_size_and_mtime(&st, &dst) {
                    return Ok(Some(Outcome::Skipped {
                        bytes: st.st_size as u64,
                    }));
                }
            }
        }
        let chown = self.owner && (!fresh || (st.st_uid, st.st_gid) != self.ids);
        if fresh && self.tmpfile_ok {
            let opts = Finish {
                chown,
                fsync: self.init.fsync,
                verify: self.init.verify,
                xattrs: &mut self.xattr_buf,
            };
            match place_unnamed(ddir, &src, &st, name, opts, tick) {
                Err(Unnamed::Unsupported) => self.tmpfile_ok = false,
                Err(Unnamed::Failed(o)) => return Err(o),
                Ok(r) => return Ok(r),
            }
        }
        // Created with its final permission bits (the worker's umask is 0),
        // so fchmod is only needed for setuid/setgid/sticky or after chown.
        let out = rustix::fs::openat(
            ddir,
            &tmp[..],
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(st.st_mode & 0o777),
        )
        .map_err(|e| failed(&e.into(), "create temporary file"))?;
        let opts = Finish {
            chown,
            fsync: self.init.fsync,
            verify: self.init.verify,
            xattrs: &mut self.xattr_buf,
        };
        let result = fill_temp(&src, out, &st, name, opts, tick);
        let unlink_tmp = || {
            let _ = rustix::fs::unlinkat(ddir, &tmp[..], AtFlags::empty());
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                unlink_tmp();
                return Ok(None);
            }
            Err(e) => {
                unlink_tmp();
                return Err(failed(&e, "copy"));
            }
        }
        crate::failpoint::hit("worker::before_rename", name);
        if let Err(e) = rustix::fs::renameat(ddir, &tmp[..], ddir, name) {
            unlink_tmp();
            let e: io::Error = e.into();
            return Err(failed(&e, "rename into place"));
        }
        Ok(Some(Outcome::Copied {
            bytes: st.st_size as u64,
            verified: self.init.verify,
        }))
    }

    /// Write one chunk of a large file into the supervisor's shared temp.
    fn copy_chunk(
        &mut self,
        rel: &[u8],
        temp: &[u8],
        span: Span,
        tick: data::Tick,
    ) -> Result<Outcome, Outcome> {
        let (parent, name) = split_rel(rel);
        let sdir = self
            .src_dir
            .get(&self.src_root, parent)
            .map_err(|e| failed(&e, "open source directory"))?;
        let (src, st) = open_source(sdir, name, self.init.dereference)?;
        let changed = || Outcome::Failed {
            kind: ErrorKind::Changed,
            msg: "source changed since the walk".into(),
        };
        let as_walked = |st: &rustix::fs::Stat| {
            st.st_size as u64 == span.file_size
                && (st.st_mtime, st.st_mtime_nsec as u32) == (span.mtime.secs, span.mtime.nanos)
        };
        if !as_walked(&st) {
            return Err(changed());
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(|e| failed(&e, "open destination directory"))?;
        let out = rustix::fs::openat(
            ddir,
            temp,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed(&e.into(), "open shared temporary file"))?;
        let sparse = (st.st_blocks as u64).saturating_mul(512) < span.file_size;
        data::copy_span(
            src.as_fd(),
            out.as_fd(),
            span.offset,
            span.len,
            sparse,
            tick,
        )
        .map_err(|e| failed(&e, "copy chunk"))?;
        crate::failpoint::mutate_hook("worker::chunk_done", src.as_fd(), name);
        let after = rustix::fs::fstat(&src).map_err(|e| failed(&e.into(), "stat source"))?;
        if !as_walked(&after) {
            return Err(changed());
        }
        close_checked(out).map_err(|e| failed(&e, "copy chunk"))?;
        // Logical bytes, as for whole files (holes included).
        Ok(Outcome::Copied {
            bytes: span.len,
            verified: false,
        })
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

/// Write data and metadata into the temp file and close it. `Ok(false)`
/// when the source changed (size or mtime) during the copy.
fn fill_temp(
    src: &OwnedFd,
    out: OwnedFd,
    st: &rustix::fs::Stat,
    name: &[u8],
    opts: Finish,
    tick: data::Tick,
) -> io::Result<bool> {
    data::copy_data(
        src.as_fd(),
        out.as_fd(),
        st.st_size as u64,
        st.st_blocks as u64,
        tick,
    )?;
    crate::failpoint::hit("worker::after_data", name);
    crate::failpoint::mutate_hook("worker::source_changes", src.as_fd(), name);
    let after = rustix::fs::fstat(src)?;
    if !same_size_and_mtime(st, &after) {
        return Ok(false);
    }
    opts.finish(src, &out, st, name)?;
    close_checked(out)?;
    Ok(true)
}

/// Fresh directory: write an unnamed O_TMPFILE and link it in when it is
/// complete. Nothing is ever visible before that, and a crash leaves no
/// temp behind. `linkat` cannot replace, which is fine: in a directory
/// this run created only a retry of this very task can have put the name
/// there, and then EEXIST falls back to the rename path.
fn place_unnamed(
    ddir: &OwnedFd,
    src: &OwnedFd,
    st: &rustix::fs::Stat,
    name: &[u8],
    opts: Finish,
    tick: data::Tick,
) -> Result<Option<Outcome>, Unnamed> {
    let out = match rustix::fs::openat(
        ddir,
        ".",
        OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::from_raw_mode(st.st_mode & 0o777),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
            return Err(Unnamed::Unsupported)
        }
        Err(e) => return Err(Unnamed::Failed(failed(&e.into(), "create temporary file"))),
    };
    data::copy_data(
        src.as_fd(),
        out.as_fd(),
        st.st_size as u64,
        st.st_blocks as u64,
        tick,
    )
    .map_err(|e| Unnamed::Failed(failed(&e, "copy")))?;
    crate::failpoint::hit("worker::after_data", name);
    crate::failpoint::mutate_hook("worker::source_changes", src.as_fd(), name);
    let after =
        rustix::fs::fstat(src).map_err(|e| Unnamed::Failed(failed(&e.into(), "stat source")))?;
    if !same_size_and_mtime(st, &after) {
        return Ok(None);
    }
    let fin = |e: io::Error| Unnamed::Failed(failed(&e, "copy"));
    let verified = opts.verify;
    opts.finish(src, &out, st, name).map_err(fin)?;
    crate::failpoint::hit("worker::before_rename", name);
    match rustix::fs::linkat(&out, "", ddir, name, AtFlags::EMPTY_PATH) {
        Ok(()) => {}
        Err(rustix::io::Errno::PERM | rustix::io::Errno::NOENT | rustix::io::Errno::EXIST) => {
            return Err(Unnamed::Unsupported)
        }
        Err(e) => return Err(Unnamed::Failed(failed(&e.into(), "link into place"))),
    }
    if let Err(e) = close_checked(out) {
        // A deferred write error: take the name back out.
        let _ = rustix::fs::unlinkat(ddir, name, AtFlags::empty());
        return Err(fin(e));
    }
    Ok(Some(Outcome::Copied {
        bytes: st.st_size as u64,
        verified,
    }))
}

/// How to finish a written temp file: metadata, xattrs, durability.
struct Finish<'a> {
    chown: bool,
    fsync: bool,
    verify: bool,
    xattrs: &'a mut Vec<u8>,
}

impl Finish<'_> {
    /// Owner → mode → times on the descriptor, then extended attributes
    /// (best effort), then fsync if asked.
    fn finish(
        self,
        src: &OwnedFd,
        out: &OwnedFd,
        st: &rustix::fs::Stat,
        name: &[u8],
    ) -> io::Result<()> {
        Attrs::from_stat(st).apply_new_file(out, self.chown)?;
        match xattrs::copy(src.as_fd(), out.as_fd(), self.xattrs) {
            Ok(refused) => {
                for r in refused {
                    log::warn!("{}: extended attribute not copied: {r}", escape_bytes(name));
                }
            }
            Err(e) => log::warn!(
                "{}: extended attributes not copied: {e}",
                escape_bytes(name)
            ),
        }
        if self.verify {
            crate::failpoint::corrupt_hook("worker::before_verify", out.as_fd(), name);
            let len = st.st_size as u64;
            let a = verify::hash_fd(src.as_fd(), len, self.xattrs)?;
            let b = verify::hash_fd(out.as_fd(), len, self.xattrs)?;
            if a != b {
                return Err(io::Error::new(io::ErrorKind::InvalidData, verify::MISMATCH));
            }
        }
        if self.fsync {
            rustix::fs::fsync(out)?;
        }
        Ok(())
    }
}

/// A chunk's byte range and the source identity the walk saw.
#[derive(Clone, Copy)]
struct Span {
    offset: u64,
    len: u64,
    file_size: u64,
    mtime: crate::protocol::Time,
}

/// Why the unnamed-temp path did not place a file.
enum Unnamed {
    /// O_TMPFILE or linkat(AT_EMPTY_PATH) not available here (or the name
    /// exists): use a named temp and rename instead.
    Unsupported,
    Failed(Outcome),
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
