//! A whole file's temp, from creation to its final name: an unnamed
//! `O_TMPFILE` linked in (new directories) or a named temp renamed over the
//! name, and between the two the one finish every copied file gets, whole
//! or assembled from chunks (`finish_file`: owner → extended attributes →
//! mode → times, then `--verify` and fsync).

use super::attrs::Attrs;
use super::fill::{copy_unchanged, DataMode, Moved};
use super::{close_checked, data, verify, xattrs, CopyError, Op, Placed};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

/// One regular file on its way into place: the opened source, where it
/// goes, and how to finish it.
pub(super) struct Placing<'a> {
    pub(super) ddir: &'a OwnedFd,
    pub(super) src: &'a OwnedFd,
    /// Where the data is read: the source, or a basis entry holding the
    /// same data (`--copy-dest`).
    pub(super) data_src: &'a OwnedFd,
    pub(super) st: &'a Stat,
    pub(super) name: &'a [u8],
    pub(super) finish: Finish,
    pub(super) data: DataMode,
    /// What the last fill did (read by the caller after placing).
    pub(super) moved: std::cell::Cell<Moved>,
}

impl Placing<'_> {
    /// New directory: write an unnamed O_TMPFILE and link it in when it is
    /// complete. Nothing is ever visible before that, and a crash leaves no
    /// temp behind. `linkat` cannot replace: a name in the way (an earlier
    /// attempt at this entry) sends the caller to the rename path.
    pub(super) fn unnamed(
        &self,
        buf: &mut Vec<u8>,
        tick: data::Tick,
    ) -> Result<Option<Placed>, Unnamed> {
        let (ddir, st, name) = (self.ddir, self.st, self.name);
        let out = match rustix::fs::openat(
            ddir,
            ".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(st.st_mode & 0o777),
        ) {
            Ok(fd) => File::from(fd),
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL,
            ) => return Err(Unnamed::Unsupported),
            Err(e) => return Err(Unnamed::Failed(CopyError::io(Op::CreateTemp, e))),
        };
        if !self.fill(&out, buf, tick).map_err(Unnamed::Failed)? {
            return Ok(None);
        }
        crate::failpoint::hit("worker::before_rename", name);
        match rustix::fs::linkat(&out, "", ddir, name, AtFlags::EMPTY_PATH) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => return Err(Unnamed::Exists),
            // No CAP_DAC_READ_SEARCH (older kernels), or no AT_EMPTY_PATH.
            Err(rustix::io::Errno::PERM | rustix::io::Errno::NOENT) => {
                return Err(Unnamed::Unsupported)
            }
            Err(e) => return Err(Unnamed::Failed(CopyError::io(Op::Link, e))),
        }
        if let Err(e) = close_checked(out) {
            // A deferred write error: take the name back out.
            let _ = rustix::fs::unlinkat(ddir, name, AtFlags::empty());
            return Err(Unnamed::Failed(CopyError::io(Op::Copy, e)));
        }
        Ok(Some(self.placed()))
    }

    /// Existing directory (or no O_TMPFILE): write the named temp `tmp`,
    /// then rename it over the final name. `Ok(None)`: the source changed.
    pub(super) fn named(
        &self,
        tmp: &[u8],
        buf: &mut Vec<u8>,
        tick: data::Tick,
    ) -> Result<Option<Placed>, CopyError> {
        let (ddir, name) = (self.ddir, self.name);
        let out = rustix::fs::openat(
            ddir,
            tmp,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(self.st.st_mode & 0o777),
        )
        .map(File::from)
        .map_err(CopyError::at(Op::CreateTemp))?;
        let filled = self.fill(&out, buf, tick).and_then(|same| {
            close_checked(out).map_err(CopyError::at(Op::Copy))?;
            Ok(same)
        });
        let placed = match filled {
            Ok(true) => {
                crate::failpoint::hit("worker::before_rename", name);
                rustix::fs::renameat(ddir, tmp, ddir, name)
                    .map(|()| Some(self.placed()))
                    .map_err(CopyError::at(Op::Rename))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        if !matches!(placed, Ok(Some(_))) {
            let _ = rustix::fs::unlinkat(ddir, tmp, AtFlags::empty());
        }
        placed
    }

    /// Data, then (if the source held still) the finish. `Ok(false)`: the
    /// source changed during the copy.
    fn fill(&self, out: &File, buf: &mut Vec<u8>, tick: data::Tick) -> Result<bool, CopyError> {
        let (same, moved) = copy_unchanged(
            (self.src, self.data_src),
            out,
            self.st,
            self.name,
            (self.data, tick),
        )
        .map_err(CopyError::at(Op::Copy))?;
        self.moved.set(moved);
        if same {
            finish_file(self.src, out, self.st, self.name, &self.finish, buf)?;
        }
        Ok(same)
    }

    fn placed(&self) -> Placed {
        Placed::Copied {
            grew: self.moved.get().grew,
            bytes: self.st.st_size as u64,
            verified: self.finish.verify,
            cloned: self.moved.get().cloned,
        }
    }
}

/// Why the unnamed-temp path did not place a file.
pub(super) enum Unnamed {
    /// O_TMPFILE or linkat(AT_EMPTY_PATH) not available here: use named
    /// temps from now on.
    Unsupported,
    /// The name already exists (`linkat` cannot replace): rename this one.
    Exists,
    Failed(CopyError),
}

/// How to finish a written temp file.
pub(super) struct Finish {
    /// The step named if it fails.
    pub(super) op: Op,
    pub(super) chown: bool,
    /// The inode does not already have the source's permission bits.
    pub(super) chmod: bool,
    /// Remove attributes the source lacks (the inode inherited an ACL).
    pub(super) exact_xattrs: bool,
    pub(super) fsync: bool,
    /// `fdatasync` before placing (the size was set apart from the data).
    pub(super) datasync: bool,
    pub(super) verify: bool,
}

/// The one finish of every copied file, whole or assembled from chunks:
/// owner → extended attributes (best effort) → mode → times on the
/// descriptor, the `--verify` read-back, then fsync if asked.
pub(super) fn finish_file(
    src: &OwnedFd,
    out: &File,
    st: &Stat,
    name: &[u8],
    f: &Finish,
    buf: &mut Vec<u8>,
) -> Result<(), CopyError> {
    let at = CopyError::at(f.op);
    let attrs = Attrs::from_stat(st);
    if f.chown {
        attrs.chown(out).map_err(&at)?;
    }
    // Before chmod: setting or removing an access ACL rewrites mode bits.
    xattrs::copy_or_warn(
        src.as_fd(),
        out.as_fd(),
        buf,
        || escape_bytes(name),
        f.exact_xattrs,
    );
    if f.chmod {
        attrs.chmod(out).map_err(&at)?;
    }
    attrs.set_times(out).map_err(&at)?;
    if f.verify {
        crate::failpoint::corrupt_hook("worker::before_verify", out.as_fd(), name);
        let len = st.st_size as u64;
        let a = verify::hash_fd(src.as_fd(), len, buf).map_err(&at)?;
        let b = verify::hash_fd(out.as_fd(), len, buf).map_err(&at)?;
        if a != b {
            return Err(CopyError::VerifyMismatch);
        }
    }
    if f.fsync {
        rustix::fs::fsync(out).map_err(CopyError::at(f.op))?;
    } else if f.datasync {
        rustix::fs::fdatasync(out).map_err(CopyError::at(f.op))?;
    }
    Ok(())
}
