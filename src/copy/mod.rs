//! Placing one entry at the destination. Used by workers; every path is
//! resolved beneath held root descriptors with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so neither a symlink in the source nor one planted
//! in the destination can redirect a read or a write outside the trees.
//!
//! Invariant: a final name only ever appears through `renameat` of a fully
//! written temporary that already carries its metadata.
//!
//! This file holds the `Copier` and the per-entry `Plan`; the job types are
//! in `job`, path confinement in `paths`, and each kind of entry in its own
//! file: regular files (`file`, filled by `fill`, placed and finished by
//! `place`), large files' chunks (`chunk`), and the rest (`special`).

pub(crate) mod attrs;
mod chunk;
pub(crate) mod data;
mod dircache;
mod error;
mod file;
mod fill;
mod job;
mod paths;
mod place;
pub(crate) mod repair;
mod special;
pub mod temp;
pub(crate) mod verify;
pub(crate) mod xattrs;

pub use attrs::Stamp;
pub use error::{CopyError, Op};
pub use job::{quick_check, DestDir, FromBasis, Job, Options, Placed, Preserve, Span, What};
pub use paths::{join_rel, open_beneath, open_src_dir, split_rel, valid_rel};

use dircache::DirCache;
use rustix::fs::{OFlags, Stat};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Attempts at copying a file that keeps changing under us.
const CHANGE_RETRIES: usize = 3;

/// The choices for one entry, derived in this one place from the facts
/// (`DestDir`, the options, the source's and the directory's owners).
struct Plan {
    /// Compare with what the destination has (`quick_check`).
    quick_check: bool,
    /// Write an unnamed `O_TMPFILE` and link it in: only where nothing is
    /// expected in the way, because `linkat` cannot replace.
    unnamed: bool,
    /// chown the copy: preserving owners (as root) and a new inode here
    /// would not already have the source's owner and group (a setgid
    /// directory gives new files its group, whoever created it).
    chown: bool,
    /// The directory has a default ACL: a new inode inherits an ACL the
    /// source may not have and its mode is masked, so chmod and remove the
    /// attributes the source lacks (rsync -A and cp -a give the source's).
    inherits_acl: bool,
}

impl Plan {
    fn new(
        dir: DestDir,
        opts: &Options,
        new_owner: Option<(u32, u32)>,
        default_acl: bool,
        src: &Stat,
    ) -> Self {
        Plan {
            quick_check: quick_check(dir, opts.ignore_times),
            unnamed: dir == DestDir::Created,
            chown: new_owner.is_some_and(|o| o != (src.st_uid, src.st_gid)),
            inherits_acl: default_acl,
        }
    }
}

/// A copier's state: root descriptors, caches, temp-name sequence. Workers
/// hold one; the supervisor holds one to finish files copied in chunks.
pub struct Copier {
    src_root: OwnedFd,
    dst_root: OwnedFd,
    /// Basis directories (`--copy-dest`), validated like the roots.
    bases: Vec<OwnedFd>,
    opts: Options,
    /// Ownership is preserved (asked for, and we are root).
    owner: bool,
    /// Cached: part of every temp name (`temp::writer` of rank and pid).
    pid: u64,
    /// Our (euid, egid): the owner of what we create, setgid aside.
    ids: (u32, u32),
    seq: u64,
    /// Scratch space for extended attribute lists and values.
    xattr_buf: Vec<u8>,
    /// (data source, destination) filesystems (st_dev) that refused a
    /// clone: copied. By pair: a source on another filesystem says nothing
    /// of a `--copy-dest` basis beside the destination.
    clone_refused: Vec<(u64, u64)>,
    /// Pairs that cloned (small files are written there: `copy_file_range`
    /// would clone them too, and cloning costs more).
    clone_ok: Vec<(u64, u64)>,
    /// O_TMPFILE + linkat works on this destination (cleared on the first
    /// "unsupported"; a name already in the way does not clear it).
    tmpfile_ok: bool,
    src_dir: DirCache,
    dst_dir: DirCache,
    /// `--fsync`: directories a name was placed in since `sync_dirs`.
    placed_in: std::collections::BTreeSet<Vec<u8>>,
}

impl Copier {
    /// `src_root` and `dst_root` are the run's validated root directories;
    /// every path is resolved beneath them.
    pub fn new(src_root: OwnedFd, dst_root: OwnedFd, opts: Options) -> Self {
        Copier {
            src_root,
            dst_root,
            bases: Vec::new(),
            owner: opts.preserve.owner,
            opts,
            pid: temp::writer(opts.rank, u64::from(std::process::id())),
            ids: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            seq: 0,
            clone_refused: Vec::new(),
            clone_ok: Vec::new(),
            tmpfile_ok: true,
            src_dir: DirCache::following(opts.dereference),
            xattr_buf: Vec::new(),
            dst_dir: DirCache::default(),
            placed_in: Default::default(),
        }
    }

    /// The basis directories a `What::File` may name.
    pub fn with_bases(mut self, bases: Vec<OwnedFd>) -> Self {
        self.bases = bases;
        self
    }

    fn temp_name(&mut self) -> Vec<u8> {
        self.seq += 1;
        temp::worker(self.opts.run_id, self.pid, self.seq)
    }

    /// The plan for `src` going into the cached destination directory.
    /// (Its only error is a failed `fstat` of the destination directory.)
    fn plan(&mut self, dir: DestDir, src: &Stat) -> io::Result<Plan> {
        let new_owner = if self.owner {
            Some(self.dst_dir.new_owner(self.ids)?)
        } else {
            None
        };
        let default_acl = self.dst_dir.default_acl();
        let mut plan = Plan::new(dir, &self.opts, new_owner, default_acl, src);
        plan.unnamed &= self.tmpfile_ok;
        Ok(plan)
    }

    /// Place one entry (the caller has checked its path with `valid_rel`).
    /// Never panics on I/O; every failure is a `CopyError`.
    pub fn run(&mut self, job: &Job, tick: data::Tick) -> Result<Placed, CopyError> {
        crate::failpoint::hit("worker::before_task", job.rel);
        let r = match job.what {
            What::File { basis } => self.copy_file(job.rel, job.dir, basis, tick),
            What::Symlink => self.copy_symlink(job.rel, job.dir),
            What::Special => self.copy_special(job.rel, job.dir),
            What::Chunk { temp, span } => self.copy_chunk(job.rel, temp, span, tick),
        };
        if self.opts.fsync && matches!(r, Ok(Placed::Copied { .. })) {
            self.placed_in.insert(split_rel(job.rel).0.to_vec());
        }
        r
    }

    /// `--fsync`: make the names placed since the last call durable, one
    /// `fsync` per directory (a worker calls it before reporting, so an
    /// outcome it reports is on disk, name included).
    pub fn sync_dirs(&mut self) -> io::Result<()> {
        for rel in std::mem::take(&mut self.placed_in) {
            let dir = open_beneath(&self.dst_root, &rel, OFlags::DIRECTORY | OFlags::RDONLY)?;
            rustix::fs::fsync(&dir)?;
        }
        Ok(())
    }
}

/// The data of `name` is current: fix its metadata if it differs (see
/// `repair`); true when something was fixed.
fn repair_in_place(
    (sdir, ddir): (&OwnedFd, &OwnedFd),
    name: &[u8],
    stats: (&Stat, &Stat),
    owner: bool,
) -> io::Result<bool> {
    let how = repair::How {
        owner,
        apply: true,
        follow_src: false,
    };
    Ok(repair::repair((sdir.as_fd(), ddir.as_fd()), name, stats, how)?.any())
}

/// Close explicitly so a deferred write error (NFS, quota) fails the file
/// instead of vanishing in `Drop`.
fn close_checked(fd: impl Into<OwnedFd>) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into().into_raw_fd();
    // SAFETY: `raw` came from an OwnedFd we own and is closed exactly once.
    if unsafe { libc::close(raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_fd(p: &std::path::Path) -> OwnedFd {
        OwnedFd::from(std::fs::File::open(p).unwrap())
    }

    fn file_job(rel: &[u8], dir: DestDir) -> Job<'_> {
        Job {
            rel,
            what: What::File { basis: None },
            dir,
        }
    }

    #[test]
    fn a_name_in_the_way_of_linkat_is_replaced_and_keeps_o_tmpfile_on() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("s"), t.path().join("d"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("a"), b"new data").unwrap();
        std::fs::write(src.join("b"), b"more").unwrap();
        // What a crashed earlier attempt at this entry left in a new directory.
        std::fs::write(dst.join("a"), b"old").unwrap();
        let mut c = Copier::new(dir_fd(&src), dir_fd(&dst), Options::default());
        let r = c.run(&file_job(b"a", DestDir::Created), &mut |_| true);
        assert!(matches!(r, Ok(Placed::Copied { bytes: 8, .. })), "{r:?}");
        assert_eq!(std::fs::read(dst.join("a")).unwrap(), b"new data");
        assert!(c.tmpfile_ok, "EEXIST is not 'unsupported'");
        let r = c.run(&file_job(b"b", DestDir::Created), &mut |_| true);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(std::fs::read(dst.join("b")).unwrap(), b"more");
        let names: Vec<_> = std::fs::read_dir(&dst).unwrap().collect();
        assert_eq!(names.len(), 2, "no temp left behind");
    }

    #[test]
    fn chown_is_planned_only_when_a_new_inode_would_differ() {
        let t = tempfile::tempdir().unwrap();
        let mut st = rustix::fs::stat(t.path()).unwrap();
        st.st_uid = 0;
        st.st_gid = 0;
        let opts = Options::default();
        let p = Plan::new(DestDir::Created, &opts, Some((0, 4242)), false, &st);
        assert!(p.chown, "setgid parent gave group 4242; the source's is 0");
        let p = Plan::new(DestDir::Created, &opts, Some((0, 0)), false, &st);
        assert!(!p.chown);
        assert!(!Plan::new(DestDir::Existing, &opts, None, false, &st).chown);
        let p = Plan::new(DestDir::Existing, &opts, None, false, &st);
        assert!(p.quick_check && !p.unnamed);
        let p = Plan::new(DestDir::Created, &opts, None, false, &st);
        assert!(!p.quick_check && p.unnamed);
    }
}
