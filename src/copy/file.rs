//! Regular files: open the source safely, write an unnamed `O_TMPFILE` (fresh
//! directories) or a named temp, check the source did not change, set
//! metadata, optionally verify, and only then link or rename it into place.
//! Also the chunks of large files, written into a temp the supervisor owns.

use super::attrs::{same_size_and_mtime, Attrs};
use super::{close_checked, data, failed, split_rel, verify, xattrs, Copier, CHANGE_RETRIES};
use crate::protocol::{ErrorKind, Outcome};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

impl Copier {
    pub(super) fn copy_file(&mut self, rel: &[u8], fresh: bool, tick: data::Tick) -> Outcome {
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
            dst: false,
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
        if !fresh && !self.init.ignore_times && super::attrs::up_to_date(ddir, name, &st) {
            return Ok(Some(Outcome::Skipped {
                bytes: st.st_size as u64,
            }));
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
    pub(super) fn copy_chunk(
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
            dst: false,
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
        // Beneath the directory, like every other path from a task.
        let out = super::open_beneath(ddir, temp, OFlags::WRONLY)
            .map_err(|e| failed(&e, "open shared temporary file"))?;
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
}

/// Open a regular source file beneath its (held) directory, refusing a
/// symlink unless dereferencing, without blocking on a FIFO swapped in, and
/// without updating its atime where permitted.
pub(crate) fn open_source(
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
            dst: false,
        },
        rustix::io::Errno::LOOP => Outcome::Failed {
            kind: ErrorKind::Changed,
            msg: "became a symlink since the walk (not followed)".into(),
            dst: false,
        },
        e => failed(&e.into(), "open source"),
    })?;
    let st = rustix::fs::fstat(&src).map_err(|e| failed(&e.into(), "stat source"))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Outcome::Failed {
            kind: ErrorKind::Changed,
            msg: "source is no longer a regular file".into(),
            dst: false,
        });
    }
    Ok((src, st))
}

/// Copy the data into `out`, then report whether the source still has the
/// size and mtime it had when opened (false: it changed during the copy).
fn copy_unchanged(
    src: &OwnedFd,
    out: &OwnedFd,
    st: &rustix::fs::Stat,
    name: &[u8],
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
    Ok(same_size_and_mtime(st, &after))
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
    if !copy_unchanged(src, &out, st, name, tick)? {
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
    let fin = |e: io::Error| Unnamed::Failed(failed(&e, "copy"));
    if !copy_unchanged(src, &out, st, name, tick).map_err(fin)? {
        return Ok(None);
    }
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
pub(super) struct Span {
    pub offset: u64,
    pub len: u64,
    pub file_size: u64,
    pub mtime: crate::protocol::Time,
}

/// Why the unnamed-temp path did not place a file.
enum Unnamed {
    /// O_TMPFILE or linkat(AT_EMPTY_PATH) not available here (or the name
    /// exists): use a named temp and rename instead.
    Unsupported,
    Failed(Outcome),
}
