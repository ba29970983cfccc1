//! Regular files: open the source safely, write an unnamed `O_TMPFILE` (new
//! directories) or a named temp (`place`), check the source did not change
//! (`fill`), finish the copy (`place::finish_file`: owner, xattrs, mode,
//! times, verify, fsync), and only then link or rename it into place. This
//! file holds the decisions around one whole file: the attempts while its
//! source keeps changing, the quick check (`-c`: by content), and a
//! `--copy-dest` basis read instead of the source. Large files' chunks, and
//! placing one once all its chunks are in, are `chunk`.

use super::attrs::{self, Attrs, Stamp};
use super::fill::DataMode;
use super::place::{Finish, Placing, Unnamed};
use super::{
    data, split_rel, verify, Copier, CopyError, DestDir, FromBasis, Op, Options, Placed, Plan,
    CHANGE_RETRIES,
};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use std::os::fd::{AsFd, OwnedFd};

impl Copier {
    pub(super) fn copy_file(
        &mut self,
        rel: &[u8],
        dir: DestDir,
        basis: Option<FromBasis>,
        tick: data::Tick,
    ) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let mut mismatches = 0;
        let mut attempts = 0;
        while attempts < CHANGE_RETRIES {
            attempts += 1;
            match self.try_copy_file(parent, name, (dir, basis), tick) {
                Ok(Some(placed)) => return Ok(placed),
                Ok(None) => continue, // changed while copying: try again
                Err(CopyError::VerifyMismatch) if mismatches == 0 => {
                    // --verify: copy once more before giving up.
                    mismatches += 1;
                    attempts -= 1;
                    log::warn!(
                        "{}: checksum mismatch after copy; copying again",
                        escape_bytes(rel)
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Err(CopyError::KeptChanging {
            attempts: CHANGE_RETRIES,
        })
    }

    /// One attempt. `Ok(None)` means the source changed during the copy.
    fn try_copy_file(
        &mut self,
        parent: &[u8],
        name: &[u8],
        (dir, basis): (DestDir, Option<FromBasis>),
        tick: data::Tick,
    ) -> Result<Option<Placed>, CopyError> {
        let (src, st) = self.open_source(parent, name)?;
        let from_basis = basis.and_then(|b| self.open_basis(parent, name, b, &st));
        let data_dev = from_basis.as_ref().map_or(st.st_dev, |b| b.1);
        let from_basis = from_basis.map(|b| b.0);
        let (plan, dst_dev) = self.plan_into(parent, dir, &st)?;
        let pair = (data_dev, dst_dev);
        let fs_clone = self.fs_clone(pair);
        if let Some(placed) = self.current(&plan, parent, name, (&src, &st))? {
            return Ok(Some(placed));
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let placing = Placing {
            ddir,
            src: &src,
            data_src: from_basis.as_ref().unwrap_or(&src),
            st: &st,
            name,
            finish: whole_file_finish(&plan, &self.opts, &st),
            data: DataMode {
                reflink: self.opts.reflink,
                fs: fs_clone,
            },
            moved: Default::default(),
        };
        let mut result = None;
        if plan.unnamed {
            match placing.unnamed(&mut self.xattr_buf, tick) {
                Err(Unnamed::Unsupported) => self.tmpfile_ok = false,
                // An earlier attempt at this entry placed it: replace it
                // through a named temp; O_TMPFILE stays on for the rest.
                Err(Unnamed::Exists) => {}
                Err(Unnamed::Failed(e)) => result = Some(Err(e)),
                Ok(r) => result = Some(Ok(r)),
            }
        }
        let result = match result {
            Some(r) => r,
            None => {
                // Named only now: most files in new directories never need
                // one (temp_name's fields, as `placing` holds the dir cache).
                self.seq += 1;
                let tmp = super::temp::worker(self.opts.run_id, self.pid, self.seq);
                placing.named(&tmp, &mut self.xattr_buf, tick)
            }
        };
        let moved = placing.moved.get();
        self.note_moved(pair, moved);
        result
    }

    /// Open (cached) destination directory `parent` and plan `st`'s copy
    /// into it; also the directory's filesystem (`st_dev`).
    fn plan_into(
        &mut self,
        parent: &[u8],
        dir: DestDir,
        st: &Stat,
    ) -> Result<(Plan, u64), CopyError> {
        self.dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let plan = self.plan(dir, st).map_err(CopyError::at(Op::OpenDestDir))?;
        let dst_dev = self
            .dst_dir
            .stat()
            .map_err(CopyError::at(Op::OpenDestDir))?
            .st_dev;
        Ok((plan, dst_dev))
    }

    /// The quick check (`-c`: by content) of `name` in the cached
    /// destination directory `parent`, where the plan has one: `Some` when
    /// the destination is current, so there is nothing to copy.
    fn current(
        &mut self,
        plan: &Plan,
        parent: &[u8],
        name: &[u8],
        (src, st): (&OwnedFd, &Stat),
    ) -> Result<Option<Placed>, CopyError> {
        if !plan.quick_check {
            return Ok(None);
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let current = if self.opts.checksum {
            same_content(ddir, src, name, st, &mut self.xattr_buf)?
        } else {
            attrs::up_to_date(ddir, name, st)
        };
        if !current {
            return Ok(None);
        }
        // With -c only the content was compared: bring times,
        // permissions, owner and xattrs over in place.
        let repaired = self.opts.checksum && self.repair_current(parent, name, st)?;
        Ok(Some(Placed::UpToDate {
            bytes: st.st_size as u64,
            repaired,
        }))
    }

    /// `-c`: the destination's data of `name` equals the source's; fix
    /// everything else in place (metadata, and the mtime the quick check
    /// would have compared). True when anything differed.
    fn repair_current(&mut self, parent: &[u8], name: &[u8], st: &Stat) -> Result<bool, CopyError> {
        let sdir = self
            .src_dir
            .get(&self.src_root, parent)
            .map_err(CopyError::at(Op::Copy))?
            .try_clone()
            .map_err(CopyError::at(Op::Copy))?;
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::Copy))?;
        let dst = rustix::fs::statat(ddir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(CopyError::at(Op::Copy))?;
        let mut changed = super::repair_in_place((&sdir, ddir), name, (st, &dst), self.owner)
            .map_err(CopyError::at(Op::Copy))?;
        if (dst.st_mtime, dst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec) {
            Attrs::from_stat(st)
                .set_times_at(ddir, name)
                .map_err(CopyError::at(Op::Copy))?;
            changed = true;
        }
        Ok(changed)
    }

    /// Basis `b`'s file `name` in `parent`, when it is still what the walk
    /// found there (a regular file of that size and mtime) and the source
    /// still has that size: its data is the source's. Anything else (gone,
    /// changed, an index this worker was not given): `None`, the source is
    /// read. Never followed through a symlink.
    fn open_basis(
        &self,
        parent: &[u8],
        name: &[u8],
        b: FromBasis,
        st: &Stat,
    ) -> Option<(OwnedFd, u64)> {
        let root = self.bases.get(b.index)?;
        let dir = super::open_beneath(root, parent, OFlags::DIRECTORY | OFlags::RDONLY).ok()?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, name, flags | OFlags::NOATIME, Mode::empty())
            .or_else(|_| rustix::fs::openat(&dir, name, flags, Mode::empty()))
            .ok()?;
        let bst = rustix::fs::fstat(&fd).ok()?;
        let regular =
            rustix::fs::FileType::from_raw_mode(bst.st_mode) == rustix::fs::FileType::RegularFile;
        (regular && Stamp::of(&bst) == b.file && bst.st_size == st.st_size)
            .then_some((fd, bst.st_dev))
    }

    /// Open source file `name` in directory `parent` (see `open_source`).
    pub(super) fn open_source(
        &mut self,
        parent: &[u8],
        name: &[u8],
    ) -> Result<(OwnedFd, Stat), CopyError> {
        let sdir = self
            .src_dir
            .get(&self.src_root, parent)
            .map_err(CopyError::at(Op::OpenSourceDir))?;
        open_source(sdir, name, self.opts.dereference)
    }
}

/// `-c`: the destination has a regular file `name` of the source's size
/// whose BLAKE3 equals the source's (both read through descriptors; the
/// destination opened without following a symlink).
fn same_content(
    ddir: &OwnedFd,
    src: &OwnedFd,
    name: &[u8],
    st: &Stat,
    buf: &mut Vec<u8>,
) -> Result<bool, CopyError> {
    let Ok(dst) = rustix::fs::openat(
        ddir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(false);
    };
    let dst_st = rustix::fs::fstat(&dst).map_err(CopyError::at(Op::Copy))?;
    let regular =
        rustix::fs::FileType::from_raw_mode(dst_st.st_mode) == rustix::fs::FileType::RegularFile;
    if !regular || dst_st.st_size != st.st_size {
        return Ok(false);
    }
    let len = st.st_size as u64;
    let a = verify::hash_fd(src.as_fd(), len, buf).map_err(CopyError::at(Op::Copy))?;
    let b = verify::hash_fd(dst.as_fd(), len, buf).map_err(CopyError::at(Op::Copy))?;
    Ok(a == b)
}

/// Open a regular source file beneath its (held) directory, refusing a
/// symlink unless dereferencing, without blocking on a FIFO swapped in, and
/// without updating its atime where permitted.
fn open_source(
    sdir: &OwnedFd,
    name: &[u8],
    dereference: bool,
) -> Result<(OwnedFd, Stat), CopyError> {
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
        rustix::io::Errno::NOENT => CopyError::Vanished,
        rustix::io::Errno::LOOP => {
            CopyError::Changed("became a symlink since the walk (not followed)")
        }
        e => CopyError::io(Op::OpenSource, e),
    })?;
    let st = rustix::fs::fstat(&src).map_err(CopyError::at(Op::StatSource))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(CopyError::Changed("source is no longer a regular file"));
    }
    Ok((src, st))
}

/// The finish of a whole file's copy. Created with its final permission
/// bits (the worker's umask is 0), so fchmod is only needed for
/// setuid/setgid/sticky, after chown, or where a default ACL masked the bits
/// at creation.
fn whole_file_finish(plan: &Plan, opts: &Options, st: &Stat) -> Finish {
    Finish {
        op: Op::Copy,
        chown: plan.chown,
        chmod: plan.chown || plan.inherits_acl || st.st_mode & 0o7000 != 0,
        exact_xattrs: plan.inherits_acl,
        fsync: opts.fsync,
        // A sparse copy gets its length from ftruncate, journaled
        // apart from the data: never placed before the data is
        // durable, or a power cut leaves the size over zeros.
        datasync: sparse(st),
        verify: opts.verify,
    }
}

/// A file with fewer allocated blocks than its size: copied hole by hole,
/// its length set by `ftruncate`.
pub(super) fn sparse(st: &Stat) -> bool {
    (st.st_blocks as u64).saturating_mul(512) < st.st_size as u64
}
