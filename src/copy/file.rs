//! Regular files: open the source safely, write an unnamed `O_TMPFILE` (new
//! directories) or a named temp, check the source did not change, finish the
//! copy (`finish_file`: owner, xattrs, mode, times, verify, fsync), and only
//! then link or rename it into place. Also the chunks of large files, and
//! placing a large file once all its chunks are in.

use super::attrs::{Attrs, Stamp};
use super::{
    close_checked, data, split_rel, verify, xattrs, Copier, CopyError, DestDir, Op, Placed, Span,
    CHANGE_RETRIES,
};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

impl Copier {
    pub(super) fn copy_file(
        &mut self,
        rel: &[u8],
        dir: DestDir,
        basis: Option<super::FromBasis>,
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
        (dir, basis): (DestDir, Option<super::FromBasis>),
        tick: data::Tick,
    ) -> Result<Option<Placed>, CopyError> {
        let (src, st) = self.open_source(parent, name)?;
        let from_basis = basis.and_then(|b| self.open_basis(parent, name, b, &st));
        let data_dev = from_basis.as_ref().map_or(st.st_dev, |b| b.1);
        let from_basis = from_basis.map(|b| b.0);
        self.dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let plan = self
            .plan(dir, &st)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let dst_dev = self
            .dst_dir
            .stat()
            .map_err(CopyError::at(Op::OpenDestDir))?
            .st_dev;
        let pair = (data_dev, dst_dev);
        let fs_clone = self.fs_clone(pair);
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        if plan.quick_check {
            let current = if self.opts.checksum {
                same_content(ddir, &src, name, &st, &mut self.xattr_buf)?
            } else {
                super::attrs::up_to_date(ddir, name, &st)
            };
            if current {
                // With -c only the content was compared: bring times,
                // permissions, owner and xattrs over in place.
                let repaired = self.opts.checksum && self.repair_current(parent, name, &st)?;
                return Ok(Some(Placed::UpToDate {
                    bytes: st.st_size as u64,
                    repaired,
                }));
            }
        }
        // Created with its final permission bits (the worker's umask is 0),
        // so fchmod is only needed for setuid/setgid/sticky, after chown, or
        // where a default ACL masked the bits at creation.
        let finish = Finish {
            op: Op::Copy,
            chown: plan.chown,
            chmod: plan.chown || plan.inherits_acl || st.st_mode & 0o7000 != 0,
            exact_xattrs: plan.inherits_acl,
            fsync: self.opts.fsync,
            // A sparse copy gets its length from ftruncate, journaled
            // apart from the data: never placed before the data is
            // durable, or a power cut leaves the size over zeros.
            datasync: sparse(&st),
            verify: self.opts.verify,
        };
        let placing = Placing {
            ddir,
            src: &src,
            data_src: from_basis.as_ref().unwrap_or(&src),
            st: &st,
            name,
            finish,
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
        if moved.clone_refused {
            // Once per filesystem, without a warning per file.
            log::debug!("no reflink on this destination filesystem; copying bytes");
            self.clone_refused.push(pair);
        } else if moved.cloned && !self.clone_ok.contains(&pair) {
            self.clone_ok.push(pair);
        }
        result
    }

    /// Write one chunk of a large file into the supervisor's shared temp.
    pub(super) fn copy_chunk(
        &mut self,
        rel: &[u8],
        temp: &[u8],
        span: Span,
        tick: data::Tick,
    ) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let (src, st) = self.open_source(parent, name)?;
        let changed = CopyError::Changed("source changed since the walk");
        if Stamp::of(&st) != span.file {
            return Err(changed);
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        // Beneath the directory, like every other path from a task.
        let out = super::open_beneath(ddir, temp, OFlags::WRONLY)
            .and_then(only_link)
            .map_err(CopyError::at(Op::OpenSharedTemp))?;
        let sparse = sparse(&st);
        let reflink = self.opts.reflink;
        let dst_dev = self
            .dst_dir
            .stat()
            .map_err(CopyError::at(Op::OpenDestDir))?
            .st_dev;
        let pair = (st.st_dev, dst_dev);
        let try_clone = reflink == data::Reflink::Always
            || (reflink == data::Reflink::Auto && !self.clone_refused.contains(&pair));
        // Chunk ranges are multiples of 1 MiB, or end at EOF: clonable.
        let mut cloned = false;
        if try_clone {
            match data::clone_range(out.as_fd(), src.as_fd(), span.offset, span.len) {
                Ok(()) => cloned = true,
                Err(e) if reflink == data::Reflink::Always => {
                    return Err(CopyError::io(
                        Op::CopyChunk,
                        io::Error::new(e.kind(), format!("cannot clone (--reflink=always): {e}")),
                    ))
                }
                Err(e) if data::clone_unsupported(&e) => self.clone_refused.push(pair),
                Err(e) => return Err(CopyError::io(Op::CopyChunk, e)),
            }
        }
        if !cloned {
            data::copy_span(
                src.as_fd(),
                out.as_fd(),
                (span.offset, span.len),
                (sparse, reflink == data::Reflink::Never),
                tick,
            )
            .map_err(CopyError::at(Op::CopyChunk))?;
        }
        crate::failpoint::mutate_hook("worker::chunk_done", src.as_fd(), name);
        let after = rustix::fs::fstat(&src).map_err(CopyError::at(Op::StatSource))?;
        if Stamp::of(&after) != span.file {
            return Err(changed);
        }
        close_checked(out).map_err(CopyError::at(Op::CopyChunk))?;
        // Logical bytes, as for whole files (holes included).
        Ok(Placed::Copied {
            grew: false,
            bytes: span.len,
            verified: false,
            cloned,
        })
    }

    /// Every chunk of `rel` is in its shared temp `temp` (created mode 0600
    /// by the walk): check the source is still the version `file` the walk
    /// saw, finish the temp like any copy, and rename it into place. The
    /// temp is removed unless placed.
    pub fn place_chunked(&mut self, rel: &[u8], temp: &[u8], file: Stamp) -> Result<(), CopyError> {
        let r = self.try_place_chunked(rel, temp, file);
        if r.is_err() {
            self.discard(rel, temp);
        }
        r
    }

    fn try_place_chunked(&mut self, rel: &[u8], temp: &[u8], file: Stamp) -> Result<(), CopyError> {
        let (parent, name) = split_rel(rel);
        let (src, st) = self.open_source(parent, name)?;
        if Stamp::of(&st) != file {
            return Err(CopyError::Changed("source changed since the walk"));
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let out = rustix::fs::openat(
            ddir,
            temp,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .and_then(only_link)
        .map(File::from)
        .map_err(CopyError::at(Op::Place))?;
        let finish = Finish {
            op: Op::Place,
            chown: self.owner,
            chmod: true,
            exact_xattrs: true,
            fsync: self.opts.fsync,
            // Pre-sized by ftruncate before any chunk was written.
            datasync: true,
            verify: false,
        };
        finish_file(&src, &out, &st, name, &finish, &mut self.xattr_buf)?;
        close_checked(out).map_err(CopyError::at(Op::Place))?;
        rustix::fs::renameat(ddir, temp, ddir, name).map_err(CopyError::at(Op::Place))?;
        if self.opts.fsync {
            rustix::fs::fsync(ddir).map_err(CopyError::at(Op::Place))?;
        }
        Ok(())
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

    /// What cloning from filesystem `pair.0` to `pair.1` came to so far.
    fn fs_clone(&self, pair: (u64, u64)) -> FsClone {
        if self.clone_refused.contains(&pair) {
            FsClone::No
        } else if self.clone_ok.contains(&pair) {
            FsClone::Yes
        } else {
            FsClone::Unknown
        }
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
        b: super::FromBasis,
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
    fn open_source(&mut self, parent: &[u8], name: &[u8]) -> Result<(OwnedFd, Stat), CopyError> {
        let sdir = self
            .src_dir
            .get(&self.src_root, parent)
            .map_err(CopyError::at(Op::OpenSourceDir))?;
        open_source(sdir, name, self.opts.dereference)
    }

    /// Remove a large file's shared temp (best effort: a later run's stale
    /// temp cleanup removes anything left).
    pub fn discard(&mut self, rel: &[u8], temp: &[u8]) {
        let (parent, _) = split_rel(rel);
        if let Ok(dir) = self.dst_dir.get(&self.dst_root, parent) {
            let _ = rustix::fs::unlinkat(dir, temp, AtFlags::empty());
        }
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

/// How a file's data is to be moved, and what happened.
#[derive(Clone, Copy, Debug)]
pub(super) struct DataMode {
    pub reflink: data::Reflink,
    /// What this filesystem did with a clone so far.
    pub fs: FsClone,
}

/// Whether a destination filesystem clones: learnt from the first try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FsClone {
    Unknown,
    Yes,
    No,
}

/// What moving the data did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Moved {
    /// The copy shares the source's extents; no bytes were written.
    pub cloned: bool,
    /// The filesystem refused a clone: stop trying on it.
    pub clone_refused: bool,
    /// The source grew by appends during the copy; its first `st_size`
    /// bytes, as first read, were copied and found unchanged.
    pub grew: bool,
}

/// Clone (when the mode allows and the filesystem can) or copy the data
/// into `out`, then report whether the source still has the size and
/// mtime it had when opened (false: it changed during the copy). A source
/// that only grew (a log being appended to) counts as unchanged when the
/// bytes it had at first are still the ones copied: the copy is that
/// consistent prefix, as rsync copies what it read (`Moved::grew`).
fn copy_unchanged(
    (src, data_src): (&OwnedFd, &OwnedFd),
    out: &File,
    st: &Stat,
    name: &[u8],
    (mode, tick): (DataMode, data::Tick),
) -> io::Result<(bool, Moved)> {
    let mut moved = Moved::default();
    let always = mode.reflink == data::Reflink::Always;
    // auto: a small file is cheaper to write than to clone (measured on
    // XFS: 50,000 4-KiB files 2.47 s cloned, 2.05 s written), and sharing
    // its one extent saves nothing worth having.
    let small = (st.st_size as u64) < data::CLONE_MIN;
    let clone = match (mode.reflink, mode.fs) {
        (data::Reflink::Always, _) => true,
        (data::Reflink::Never, _) | (data::Reflink::Auto, FsClone::No) => false,
        // The first file on a filesystem finds out whether it clones.
        (data::Reflink::Auto, FsClone::Unknown) => true,
        (data::Reflink::Auto, FsClone::Yes) => !small,
    };
    if clone {
        match data::clone_file(out.as_fd(), data_src.as_fd()) {
            Ok(()) => moved.cloned = true,
            Err(e) if always => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot clone (--reflink=always): {e}"),
                ))
            }
            Err(e) if data::clone_unsupported(&e) => moved.clone_refused = true,
            Err(e) => return Err(e),
        }
    }
    if !moved.cloned {
        data::copy_data(
            data_src.as_fd(),
            out.as_fd(),
            (st.st_size as u64, st.st_blocks as u64),
            // Bytes only where copy_file_range would clone behind our back
            // (never; or a small file on a filesystem that clones).
            mode.reflink == data::Reflink::Never || (mode.fs == FsClone::Yes && !moved.cloned),
            tick,
        )?;
    }
    crate::failpoint::hit("worker::after_data", name);
    crate::failpoint::mutate_hook("worker::source_changes", src.as_fd(), name);
    let after = rustix::fs::fstat(src)?;
    if Stamp::of(st) == Stamp::of(&after) {
        return Ok((true, moved));
    }
    // Bytes only (a clone took the grown tail too), and only growth.
    if moved.cloned || after.st_size <= st.st_size {
        return Ok((false, moved));
    }
    let len = st.st_size as u64;
    let mut buf = Vec::new();
    let copied = super::verify::hash_fd(out.as_fd(), len, &mut buf)?;
    let now = super::verify::hash_fd(src.as_fd(), len, &mut buf)?;
    moved.grew = copied == now;
    Ok((moved.grew, moved))
}

/// One regular file on its way into place: the opened source, where it
/// goes, and how to finish it.
struct Placing<'a> {
    ddir: &'a OwnedFd,
    src: &'a OwnedFd,
    /// Where the data is read: the source, or a basis entry holding the
    /// same data (`--copy-dest`).
    data_src: &'a OwnedFd,
    st: &'a Stat,
    name: &'a [u8],
    finish: Finish,
    data: DataMode,
    /// What the last fill did (read by the caller after placing).
    moved: std::cell::Cell<Moved>,
}

impl Placing<'_> {
    /// New directory: write an unnamed O_TMPFILE and link it in when it is
    /// complete. Nothing is ever visible before that, and a crash leaves no
    /// temp behind. `linkat` cannot replace: a name in the way (an earlier
    /// attempt at this entry) sends the caller to the rename path.
    fn unnamed(&self, buf: &mut Vec<u8>, tick: data::Tick) -> Result<Option<Placed>, Unnamed> {
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
    fn named(
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

/// How to finish a written temp file.
struct Finish {
    /// The step named if it fails.
    op: Op,
    chown: bool,
    /// The inode does not already have the source's permission bits.
    chmod: bool,
    /// Remove attributes the source lacks (the inode inherited an ACL).
    exact_xattrs: bool,
    fsync: bool,
    /// `fdatasync` before placing (the size was set apart from the data).
    datasync: bool,
    verify: bool,
}

/// The one finish of every copied file, whole or assembled from chunks:
/// owner → extended attributes (best effort) → mode → times on the
/// descriptor, the `--verify` read-back, then fsync if asked.
fn finish_file(
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

/// A large file's shared temp is opened by name: refuse it unless it is
/// still the walk's own file, a regular file with this one name (a hard
/// link planted in the destination mid-run would otherwise receive data).
fn only_link(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_nlink != 1
    {
        return Err(std::io::Error::other(
            "the shared temp is not a regular file with one link (changed by someone else)",
        ));
    }
    Ok(fd)
}

/// A file with fewer allocated blocks than its size: copied hole by hole,
/// its length set by `ftruncate`.
fn sparse(st: &Stat) -> bool {
    (st.st_blocks as u64).saturating_mul(512) < st.st_size as u64
}

/// Why the unnamed-temp path did not place a file.
enum Unnamed {
    /// O_TMPFILE or linkat(AT_EMPTY_PATH) not available here: use named
    /// temps from now on.
    Unsupported,
    /// The name already exists (`linkat` cannot replace): rename this one.
    Exists,
    Failed(CopyError),
}

#[cfg(test)]
mod tests {
    use super::only_link;
    use std::os::fd::OwnedFd;

    #[test]
    fn a_shared_temp_with_a_second_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("temp");
        std::fs::write(&p, b"").unwrap();
        let open = || OwnedFd::from(std::fs::File::open(&p).unwrap());
        assert!(only_link(open()).is_ok());
        std::fs::hard_link(&p, t.path().join("planted")).unwrap();
        assert!(only_link(open()).is_err());
    }
}
