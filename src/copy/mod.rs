//! Placing one entry at the destination. Used by workers; every path is
//! resolved beneath held root descriptors with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so neither a symlink in the source nor one planted
//! in the destination can redirect a read or a write outside the trees.
//!
//! Invariant: a final name only ever appears through `renameat` of a fully
//! written temporary that already carries its metadata.

pub mod attrs;
pub mod data;
mod error;
mod file;
pub mod repair;
mod special;
pub mod temp;
pub mod verify;
pub mod xattrs;

pub use attrs::Stamp;
pub use error::{CopyError, Op};

use attrs::Attrs;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};
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

/// A directory descriptor cached by its relative path: consecutive tasks
/// usually share a parent (walk order), so this saves an openat2 per file.
#[derive(Default)]
struct DirCache {
    rel: Vec<u8>,
    fd: Option<OwnedFd>,
    /// Follow symlinks (source side with --dereference only).
    follow: bool,
    /// Owner and group a new inode gets in this directory (computed once
    /// per directory, only when ownership is preserved).
    new_owner: Option<(u32, u32)>,
    /// The directory's own stat (computed once per directory).
    stat: Option<Stat>,
    /// Whether the directory has a default ACL (new inodes inherit an ACL
    /// and have their mode masked); computed once per directory.
    default_acl: Option<bool>,
}

impl DirCache {
    fn get(&mut self, root: &OwnedFd, rel: &[u8]) -> io::Result<&OwnedFd> {
        if self.fd.is_none() || self.rel != rel {
            self.fd = None;
            self.new_owner = None;
            self.stat = None;
            self.default_acl = None;
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

    /// The cached directory's stat.
    fn stat(&mut self) -> io::Result<Stat> {
        if let Some(st) = self.stat {
            return Ok(st);
        }
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| io::Error::other("directory cache empty"))?;
        let st = rustix::fs::fstat(fd)?;
        self.stat = Some(st);
        Ok(st)
    }

    fn new_owner(&mut self, (uid, gid): (u32, u32)) -> io::Result<(u32, u32)> {
        if let Some(o) = self.new_owner {
            return Ok(o);
        }
        let st = self.stat()?;
        let o = if st.st_mode & libc::S_ISGID != 0 {
            (uid, st.st_gid)
        } else {
            (uid, gid)
        };
        self.new_owner = Some(o);
        Ok(o)
    }
}

impl DirCache {
    /// Whether the cached directory has a default ACL.
    fn default_acl(&mut self) -> bool {
        if let Some(d) = self.default_acl {
            return d;
        }
        // A one-byte buffer: ERANGE means "present" (rustix reports a
        // size-0 query as Ok(0) whatever the size).
        let d = self.fd.as_ref().is_some_and(|fd| {
            let mut probe = [0u8; 1];
            match rustix::fs::fgetxattr(fd, "system.posix_acl_default", &mut probe[..]) {
                Ok(n) => n > 0,
                Err(e) => e == rustix::io::Errno::RANGE,
            }
        });
        self.default_acl = Some(d);
        d
    }
}

/// Whether this run created the directory an entry goes into: a fact the
/// walker knows. Every policy that depends on it is derived in `Plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestDir {
    Created,
    Existing,
    /// Existing, with an entry an unclean earlier run may have left with
    /// lost data: no quick check, a named temp (the name exists).
    Unverified,
}

/// Whether to compare with what the destination has before copying (the
/// quick check): never with `--ignore-times`, and not in a directory this run
/// created (only a crashed attempt at the very same entry can have left
/// something there, and copying again is right then too). The walker and
/// the copier both ask here.
pub fn quick_check(dir: DestDir, ignore_times: bool) -> bool {
    dir == DestDir::Existing && !ignore_times
}

/// What to preserve and how carefully; the same for every entry of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Unique per run; part of every temporary file name.
    pub run_id: u64,
    /// Copy even when size and mtime match (`--ignore-times`).
    pub ignore_times: bool,
    /// Preserve uid/gid (only attempted when running as root).
    pub preserve_owner: bool,
    /// fsync each file before placing it.
    pub fsync: bool,
    /// Follow symlinks in the source (`-L`).
    pub dereference: bool,
    /// Re-read source and copy and compare BLAKE3 hashes before placing.
    pub verify: bool,
    /// `-c`: a destination file is current when its content (BLAKE3)
    /// equals the source's, whatever its mtime.
    pub checksum: bool,
    /// `--reflink`: clone where possible, always, or never.
    pub reflink: data::Reflink,
    /// This process's MPI rank (0 without MPI): part of every temp name.
    pub rank: u32,
}

/// One entry to place: its path relative to both roots, what it is, and
/// whether its destination directory is new.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    pub rel: &'a [u8],
    pub what: What<'a>,
    pub dir: DestDir,
}

#[derive(Clone, Copy, Debug)]
pub enum What<'a> {
    /// A regular file; its data may come from a basis entry.
    File {
        basis: Option<FromBasis>,
    },
    Symlink,
    /// A FIFO or device node.
    Special,
    /// Bytes of a large file, written into the shared temp `temp` (a name
    /// in the entry's destination directory) that the supervisor owns.
    Chunk {
        temp: &'a [u8],
        span: Span,
    },
}

/// A basis directory's entry the walk found holding a file's data
/// (`--copy-dest`): which basis, and its size and mtime then. Read instead
/// of the source only while it still has them; the copy still gets the
/// source's attributes and is checked against the source.
#[derive(Clone, Copy, Debug)]
pub struct FromBasis {
    pub index: usize,
    pub file: Stamp,
}

/// A chunk's byte range and the source version the walk saw.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub offset: u64,
    pub len: u64,
    pub file: Stamp,
}

/// What placing an entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Placed at its final name; `bytes` of data written; `verified` when
    /// `--verify` read both back and they matched.
    Copied {
        bytes: u64,
        verified: bool,
        /// The data was cloned (`--reflink`): extents shared, no bytes moved.
        cloned: bool,
        /// The source kept growing by appends: `bytes` is the prefix it had
        /// when first read, checked unchanged after the copy.
        grew: bool,
    },
    /// The destination already had its data (quick check); `repaired` when
    /// its metadata differed and was fixed in place.
    UpToDate { bytes: u64, repaired: bool },
}

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
            owner: opts.preserve_owner && attrs::is_root(),
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
            src_dir: DirCache {
                follow: opts.dereference,
                ..DirCache::default()
            },
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

    fn copy_symlink(&mut self, rel: &[u8], dir: DestDir) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let r = (|| -> io::Result<Placed> {
            let sdir = self.src_dir.get(&self.src_root, parent)?;
            let st = rustix::fs::statat(sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let target = rustix::fs::readlinkat(sdir, name, Vec::new())?;
            self.dst_dir.get(&self.dst_root, parent)?;
            let plan = self.plan(dir, &st)?;
            let ddir = self.dst_dir.get(&self.dst_root, parent)?.try_clone()?;
            if plan.quick_check {
                if let Ok(dst) = rustix::fs::statat(&ddir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    if rustix::fs::FileType::from_raw_mode(dst.st_mode)
                        == rustix::fs::FileType::Symlink
                        && attrs::same_size_and_mtime(&st, &dst)
                        && rustix::fs::readlinkat(&ddir, name, Vec::new())? == target
                    {
                        let sdir = self.src_dir.get(&self.src_root, parent)?;
                        let repaired =
                            repair_in_place((sdir, &ddir), name, (&st, &dst), self.owner)?;
                        return Ok(Placed::UpToDate { bytes: 0, repaired });
                    }
                }
            }
            let tmp = self.temp_name();
            rustix::fs::symlinkat(&*target, &ddir, &tmp[..])?;
            let sdir = self.src_dir.get(&self.src_root, parent)?;
            // Root's `trusted.*` on the link itself; best effort, as for files.
            if let Err(e) = repair::copy_node_xattrs((sdir.as_fd(), ddir.as_fd()), name, &tmp) {
                log::warn!(
                    "{}: extended attributes not copied: {e}",
                    crate::util::escape_bytes(rel)
                );
            }
            special::finish(&ddir, &tmp, name, &Attrs::from_stat(&st), plan.chown, true)?;
            Ok(Placed::Copied {
                grew: false,
                bytes: 0,
                verified: false,
                cloned: false,
            })
        })();
        r.map_err(CopyError::at(Op::Symlink))
    }

    fn copy_special(&mut self, rel: &[u8], dir: DestDir) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let tmp = self.temp_name();
        let (sdir, ddir, st, plan) = (|| -> io::Result<_> {
            let sdir = self.src_dir.get(&self.src_root, parent)?.try_clone()?;
            let st = rustix::fs::statat(&sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            self.dst_dir.get(&self.dst_root, parent)?;
            let plan = self.plan(dir, &st)?;
            let ddir = self.dst_dir.get(&self.dst_root, parent)?.try_clone()?;
            Ok((sdir, ddir, st, plan))
        })()
        .map_err(CopyError::at(Op::Special))?;
        special::make_node((&sdir, &ddir), &tmp, name, &st, (&plan, self.owner))
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

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(split_rel(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_rel(b"c"), (&b""[..], &b"c"[..]));
    }

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
    fn new_inodes_in_a_setgid_directory_get_its_group() {
        let t = tempfile::tempdir().unwrap();
        let ids = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let mut cache = DirCache::default();
        let root = dir_fd(t.path());
        cache.get(&root, b"").unwrap();
        let dir_gid = rustix::fs::fstat(&root).unwrap().st_gid;
        // Not setgid: our own group, whatever the directory's.
        assert_eq!(cache.new_owner((ids.0, 4242)).unwrap(), (ids.0, 4242));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o2775)).unwrap();
        let mut cache = DirCache::default();
        cache.get(&root, b"").unwrap();
        assert_eq!(cache.new_owner((ids.0, 4242)).unwrap(), (ids.0, dir_gid));
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
