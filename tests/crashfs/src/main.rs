//! crashfs: a FUSE passthrough filesystem that simulates a power cut.
//!
//! Usage: `crashfs [--size-on-write] BACKING MOUNTPOINT` (runs in the
//! foreground; prints `ready` on stdout once mounted).
//!
//! # The model (ext4's default rule, as issue 24 describes it)
//!
//! * Every metadata operation reaches BACKING at once, in the order it was
//!   made, and is durable from then on: create, mknod, mkdir, unlink, rmdir,
//!   rename (with RENAME_NOREPLACE / RENAME_EXCHANGE), link, symlink,
//!   chmod, chown, utimens, truncate (extending or shrinking), fallocate
//!   (modes 0 and KEEP_SIZE), setxattr and removexattr. A write also
//!   updates BACKING's mtime, as a real write does (the inode change is
//!   journalled; the data is not).
//! * The bytes of `write` (and of `copy_file_range` inside the mount) do
//!   not reach BACKING: they are kept in memory, per inode, as dirty ranges.
//!   `read` returns BACKING's bytes overlaid with the dirty ranges (as the
//!   page cache would) and `getattr` reports the size as the larger of
//!   BACKING's size and the end of the dirty data, and the blocks as
//!   BACKING's plus the dirty bytes. A write past the end therefore grows
//!   the file only in memory: after a cut the file has its durable size
//!   (ext4's delayed allocation), while an explicit truncate is durable.
//! * `fsync` and `fdatasync` on a file (also those that `O_SYNC` writes
//!   imply) write that file's dirty ranges to BACKING. `fsyncdir` does
//!   nothing: directory metadata is durable already.
//! * SIGUSR1 is the power cut: every dirty range of every inode is dropped,
//!   the kernel's cached pages and attributes of those inodes are
//!   invalidated, and `cut FILES BYTES` is printed on stdout when done.
//!   BACKING (and the mount) then holds what a machine would have after a
//!   power cut under this model. The test should have killed the writers
//!   first: a request in flight when the cut comes lands after it.
//! * `--size-on-write`, a harsher model: a write past the end makes the new
//!   size durable at once (BACKING is extended; the bytes stay dirty), so
//!   after a cut *every* unsynced file has its full size, its mtime and
//!   zeros for data, as on filesystems that log the size before the data
//!   (XFS's old "NULL files", ext4 with `data=writeback`).
//! * SIGUSR2 writes every dirty range to BACKING (what the kernel's
//!   periodic writeback, or `sync`, would do) and prints `synced FILES BYTES`.
//! * SIGTERM or SIGINT is a clean shutdown: everything dirty is written to
//!   BACKING, the mount is removed, and crashfs exits 0.
//!
//! # What reaches crashfs, and what does not
//!
//! * `syncfs(2)` and `sync(2)` never reach it: the kernel sends FUSE_SYNCFS
//!   only to virtiofs connections (`fc->sync_fs`), not to a /dev/fuse mount,
//!   and fuser has no callback for it (an unknown opcode is answered
//!   ENOSYS). So under crashfs a `syncfs` makes nothing durable, where on
//!   ext4 it would write every dirty file of the filesystem. Run with
//!   `CRASHFS_DEBUG=1` to log every request and see for yourself. The
//!   tests (`tests/it/power_cut.rs`) make up for it: pcopy runs under a
//!   seccomp filter that reports its `syncfs`/`sync` calls, and the test
//!   sends SIGUSR2 before letting the call go on.
//! * The reboot that follows a power cut is not crashfs's either: the tests
//!   give each pcopy the simulated boot's `/proc/sys/kernel/random/boot_id`
//!   (a new one after each cut) in a mount namespace of its own.
//! * `O_TMPFILE` (FUSE_TMPFILE) is not implemented: the kernel turns the
//!   ENOSYS into EOPNOTSUPP, and callers fall back to named temp files.
//! * `FICLONE`/`FICLONERANGE` fail (FUSE has no remap_file_range), SEEK_DATA
//!   and SEEK_HOLE are the kernel's generic ones (the whole file is data).
//! * The kernel's FUSE writeback cache is left off: every `write(2)` reaches
//!   crashfs before it returns, so crashfs's dirty ranges *are* the page cache.
//!
//! # What it does not simulate
//!
//! * Reordering of metadata operations: a real journal commits them in
//!   order too, but also in batches, so a cut can lose the last few seconds
//!   of metadata as well; here none is ever lost.
//! * Writeback before the cut: on a real machine dirty data older than
//!   ~30 s (or under memory pressure) is written anyway; here it is lost
//!   unless fsynced (or SIGUSR2 is sent). This is the worst case, which is
//!   what a test wants.
//! * Torn writes and partially written pages or sectors: a range is lost or
//!   kept as a whole.
//! * ext4's `auto_da_alloc` heuristics (data flushed on rename over an
//!   existing file, or on close after truncate to 0), data=journal mode, and
//!   the journal itself.
//! * Timestamps exactly: writing the dirty data back (fsync, SIGUSR2)
//!   puts BACKING's atime and mtime back but moves its ctime, which a disk
//!   writing back its cache would not.
//! * Ordering between data and metadata of one file beyond the above (e.g.
//!   data=ordered writing a file's allocated blocks before the commit that
//!   references them is modelled as "the data is lost", never as garbage).
//! * More than one filesystem: BACKING must have nothing mounted below it
//!   (node ids are BACKING's inode numbers; another device is EXDEV).

use fuser::{
    AccessFlags, BsdFileFlags, Config, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, IoctlFlags, KernelConfig, LockOwner, MountOption,
    Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    Session, SessionACL, TimeOrNow, WriteFlags,
};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps, CWD};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirEntryExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache entries and attributes. A cut invalidates
/// the inodes whose data it drops; metadata never changes behind the
/// kernel's back.
const TTL: Duration = Duration::from_secs(1);

type Res<T> = Result<T, Errno>;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn ioerr(e: std::io::Error) -> Errno {
    Errno::from(e)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The unsynced bytes of one file: non-overlapping ranges by offset.
#[derive(Default)]
struct Dirty {
    ranges: BTreeMap<u64, Vec<u8>>,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// One past the last dirty byte (0 when clean).
    fn end(&self) -> u64 {
        self.ranges
            .last_key_value()
            .map_or(0, |(s, v)| s + v.len() as u64)
    }

    fn bytes(&self) -> u64 {
        self.ranges.values().map(|v| v.len() as u64).sum()
    }

    fn write(&mut self, off: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = off + data.len() as u64;
        // Ranges overlapping [off, end): ranges are sorted and disjoint, so
        // they are the tail of those starting before `end`.
        let hit: Vec<u64> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(s, v)| **s + v.len() as u64 > off)
            .map(|(s, _)| *s)
            .collect();
        if hit.is_empty() {
            // Sequential append to the range just before: extend it.
            if let Some((_, v)) = self
                .ranges
                .range_mut(..off)
                .next_back()
                .filter(|(s, v)| **s + v.len() as u64 == off)
            {
                v.extend_from_slice(data);
                return;
            }
        }
        for s in hit {
            let v = self.ranges.remove(&s).expect("range");
            let e = s + v.len() as u64;
            if e > end {
                self.ranges.insert(end, v[(end - s) as usize..].to_vec());
            }
            if s < off {
                let mut left = v;
                left.truncate((off - s) as usize);
                self.ranges.insert(s, left);
            }
        }
        self.ranges.insert(off, data.to_vec());
    }

    /// The file now ends at `size`: forget what lies beyond.
    fn truncate(&mut self, size: u64) {
        let beyond: Vec<u64> = self.ranges.range(size..).map(|(s, _)| *s).collect();
        for s in beyond {
            self.ranges.remove(&s);
        }
        if let Some((s, v)) = self.ranges.range_mut(..size).next_back() {
            if s + v.len() as u64 > size {
                v.truncate((size - s) as usize);
            }
        }
    }

    /// Copy the dirty bytes over `buf`, which holds the file from `off`.
    fn overlay(&self, off: u64, buf: &mut [u8]) {
        let end = off + buf.len() as u64;
        for (s, v) in self.ranges.range(..end) {
            let e = s + v.len() as u64;
            if e <= off {
                continue;
            }
            let from = (*s).max(off);
            let to = e.min(end);
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&v[(from - s) as usize..(to - s) as usize]);
        }
    }
}

/// One inode of BACKING that the kernel knows (or that still has dirty
/// data). The O_PATH descriptor keeps the inode alive, so its number cannot
/// be reused while it is here.
struct Inode {
    fd: OwnedFd,
    /// The FUSE node id, which fuser also reports as `st_ino`: BACKING's
    /// inode number (1 for the root), so hard links share it and it stays
    /// the same across lookups.
    id: u64,
    data: Mutex<Dirty>,
}

impl Inode {
    /// `/proc/self/fd/N`: reopens the inode itself, symlinks included (the
    /// magic link is not followed further).
    fn proc(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    fn stat(&self) -> Res<rustix::fs::Stat> {
        rustix::fs::statat(
            &self.fd,
            "",
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)
    }

    /// Write the dirty ranges to BACKING. Returns the bytes written.
    /// BACKING's atime and mtime are put back: writing back data changes
    /// no timestamp on a real disk (its ctime does move here).
    fn sync(&self) -> Res<u64> {
        let mut d = lock(&self.data);
        if d.is_empty() {
            return Ok(0);
        }
        let st = self.stat()?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.proc())
            .map_err(ioerr)?;
        let mut n = 0;
        for (off, v) in &d.ranges {
            f.write_all_at(v, *off).map_err(ioerr)?;
            n += v.len() as u64;
        }
        d.ranges.clear();
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: st.st_atime as _,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rustix::fs::futimens(&f, &times).map_err(errno)?;
        Ok(n)
    }
}

struct Node {
    inode: Arc<Inode>,
    nlookup: u64,
}

struct Table {
    nodes: HashMap<u64, Node>,
    /// BACKING's root (device, inode): node 1.
    root: (u64, u64),
}

impl Table {
    /// The node id of a BACKING inode. BACKING must be one filesystem.
    fn id_of(&self, dev: u64, ino: u64) -> Res<u64> {
        if (dev, ino) == self.root {
            Ok(INodeNo::ROOT.0)
        } else if dev != self.root.0 || ino == INodeNo::ROOT.0 {
            // Another filesystem mounted below BACKING, or an inode number
            // that would pass for the root.
            Err(Errno::EXDEV)
        } else {
            Ok(ino)
        }
    }
}

struct DirHandle {
    entries: Vec<(u64, FileType, OsString)>,
}

/// The state shared by the FUSE threads and the signal thread.
struct State {
    backing: PathBuf,
    table: Mutex<Table>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
    root_owner: bool,
    /// `--size-on-write`: a write past the end makes the new size durable
    /// at once (its data still is not).
    size_on_write: bool,
}

fn time(secs: i64, nsec: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn timespec(t: Option<TimeOrNow>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos().into(),
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut n) = (-(d.as_secs() as i64), i64::from(d.subsec_nanos()));
                if n > 0 {
                    s -= 1;
                    n = 1_000_000_000 - n;
                }
                Timespec {
                    tv_sec: s,
                    tv_nsec: n as _,
                }
            }
        },
    }
}

fn kind(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

impl State {
    fn inode(&self, ino: INodeNo) -> Res<Arc<Inode>> {
        lock(&self.table)
            .nodes
            .get(&ino.0)
            .map(|n| n.inode.clone())
            .ok_or(Errno::ESTALE)
    }

    /// The attributes the kernel sees: BACKING's, with the dirty data's
    /// size and blocks on top.
    fn attr(&self, inode: &Inode, st: &rustix::fs::Stat) -> FileAttr {
        let (end, bytes) = {
            let d = lock(&inode.data);
            (d.end(), d.bytes())
        };
        FileAttr {
            ino: INodeNo(inode.id),
            size: (st.st_size as u64).max(end),
            blocks: st.st_blocks as u64 + bytes.div_ceil(512),
            atime: time(st.st_atime, st.st_atime_nsec as i64),
            mtime: time(st.st_mtime, st.st_mtime_nsec as i64),
            ctime: time(st.st_ctime, st.st_ctime_nsec as i64),
            crtime: UNIX_EPOCH,
            kind: kind(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    /// Register an O_PATH descriptor (one more kernel reference to its
    /// inode) and return the node id and attributes for an entry reply.
    fn register(&self, fd: OwnedFd) -> Res<(u64, FileAttr)> {
        let st = rustix::fs::statat(&fd, "", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno)?;
        let inode = {
            let mut t = lock(&self.table);
            let id = t.id_of(st.st_dev as u64, st.st_ino as u64)?;
            let n = t.nodes.entry(id).or_insert_with(|| Node {
                inode: Arc::new(Inode {
                    fd,
                    id,
                    data: Mutex::default(),
                }),
                nlookup: 0,
            });
            n.nlookup += 1;
            (id, n.inode.clone())
        };
        Ok((inode.0, self.attr(&inode.1, &st)))
    }

    fn lookup_at(&self, dir: BorrowedFd, name: &OsStr) -> Res<(u64, FileAttr)> {
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        self.register(fd)
    }

    /// A node the caller created: owned by the caller, as the kernel would
    /// make it (only when crashfs runs as root; the group stays the
    /// directory's under a set-group-ID directory).
    fn own(&self, req: &Request, parent: &Inode, name: &OsStr) {
        if !self.root_owner || (req.uid() == 0 && req.gid() == 0) {
            return;
        }
        let sgid = parent
            .stat()
            .map(|s| s.st_mode & libc::S_ISGID != 0)
            .unwrap_or(false);
        let gid = (!sgid).then(|| rustix::fs::Gid::from_raw(req.gid()));
        let _ = rustix::fs::chownat(
            &parent.fd,
            name,
            Some(rustix::fs::Uid::from_raw(req.uid())),
            gid,
            AtFlags::SYMLINK_NOFOLLOW,
        );
    }

    fn forget(&self, ino: u64, n: u64) {
        let mut t = lock(&self.table);
        let Some(node) = t.nodes.get_mut(&ino) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup > 0 || ino == INodeNo::ROOT.0 {
            return;
        }
        // Keep an inode the kernel forgot while it has dirty data that can
        // still be reached (a later lookup or the cut finds it).
        let inode = node.inode.clone();
        let keep = !lock(&inode.data).is_empty() && inode.stat().is_ok_and(|s| s.st_nlink > 0);
        if !keep {
            t.nodes.remove(&ino);
        }
    }

    fn file(&self, ino: &Inode, fh: FileHandle) -> Res<Arc<File>> {
        if let Some(f) = lock(&self.files).get(&fh.0) {
            return Ok(f.clone());
        }
        // No handle (e.g. a read after the handle went): open anew.
        std::fs::File::open(ino.proc()).map(Arc::new).map_err(ioerr)
    }

    fn new_fh(&self, f: File) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(fh, Arc::new(f));
        fh
    }

    /// The file's bytes as a reader sees them: BACKING overlaid with the
    /// dirty ranges, up to the logical size.
    fn read_logical(&self, inode: &Inode, f: &File, off: u64, len: u64) -> Res<Vec<u8>> {
        let d = lock(&inode.data);
        let disk = f.metadata().map_err(ioerr)?.len();
        let size = disk.max(d.end());
        if off >= size {
            return Ok(Vec::new());
        }
        let n = len.min(size - off) as usize;
        let mut buf = vec![0u8; n];
        if off < disk {
            let want = ((disk - off) as usize).min(n);
            let mut got = 0;
            while got < want {
                match f.read_at(&mut buf[got..want], off + got as u64) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ioerr(e)),
                }
            }
        }
        d.overlay(off, &mut buf);
        Ok(buf)
    }

    fn dirty_write(&self, inode: &Inode, off: u64, data: &[u8]) -> Res<()> {
        {
            let mut d = lock(&inode.data);
            let end = off + data.len() as u64;
            if self.size_on_write && !data.is_empty() {
                // --size-on-write: the new size is durable before the data.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(inode.proc())
                    .map_err(ioerr)?;
                if f.metadata().map_err(ioerr)?.len() < end {
                    f.set_len(end).map_err(ioerr)?;
                }
            }
            d.write(off, data);
        }
        // The inode's mtime is metadata: durable now, like the journalled
        // inode update of a real write (its data is not).
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        let _ = rustix::fs::utimensat(
            CWD,
            inode.proc(),
            &Timestamps {
                last_access: omit,
                last_modification: now,
            },
            AtFlags::empty(),
        );
        Ok(())
    }

    fn all_inodes(&self) -> Vec<(u64, Arc<Inode>, u64)> {
        lock(&self.table)
            .nodes
            .iter()
            .map(|(id, n)| (*id, n.inode.clone(), n.nlookup))
            .collect()
    }

    /// SIGUSR1: drop every dirty range. Returns (files, bytes) dropped.
    fn cut(&self, notifier: &Notifier) -> (u64, u64) {
        let (mut files, mut bytes) = (0, 0);
        let mut inval = Vec::new();
        for (id, inode, nlookup) in self.all_inodes() {
            let mut d = lock(&inode.data);
            if d.is_empty() {
                continue;
            }
            files += 1;
            bytes += d.bytes();
            d.ranges.clear();
            if nlookup > 0 {
                inval.push(id);
            }
        }
        // Forgotten inodes kept only for their dirty data can go now.
        {
            let mut t = lock(&self.table);
            let gone: Vec<u64> = t
                .nodes
                .iter()
                .filter(|(id, n)| n.nlookup == 0 && **id != INodeNo::ROOT.0)
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                t.nodes.remove(&id);
            }
        }
        // The kernel's cached pages and size of those files are gone too.
        for id in inval {
            let _ = notifier.inval_inode(INodeNo(id), 0, 0);
        }
        (files, bytes)
    }

    /// Write everything dirty to BACKING. Returns (files, bytes) written.
    fn sync_all(&self) -> (u64, u64) {
        let (mut files, mut bytes) = (0, 0);
        for (_, inode, _) in self.all_inodes() {
            match inode.sync() {
                Ok(0) => {}
                Ok(n) => {
                    files += 1;
                    bytes += n;
                }
                Err(e) => eprintln!("crashfs: sync of inode {} failed: {e:?}", inode.id),
            }
        }
        (files, bytes)
    }
}

struct CrashFs(Arc<State>);

macro_rules! tri {
    ($reply:ident, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $reply.error(e),
        }
    };
}

impl Filesystem for CrashFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = &self.0;
        let dir = tri!(reply, s.inode(parent));
        let (_, attr) = tri!(reply, s.lookup_at(dir.fd.as_fd(), name));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.0.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let inode = tri!(reply, self.0.inode(ino));
        let st = tri!(reply, inode.stat());
        reply.attr(&TTL, &self.0.attr(&inode, &st));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        if uid.is_some() || gid.is_some() {
            tri!(
                reply,
                rustix::fs::chownat(
                    &inode.fd,
                    "",
                    uid.map(rustix::fs::Uid::from_raw),
                    gid.map(rustix::fs::Gid::from_raw),
                    AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(errno)
            );
        }
        if let Some(mode) = mode {
            tri!(
                reply,
                rustix::fs::chmod(inode.proc(), Mode::from_raw_mode(mode & 0o7777)).map_err(errno)
            );
        }
        if let Some(size) = size {
            // Durable at once, extending or shrinking; dirty bytes beyond
            // the new end are gone.
            let mut d = lock(&inode.data);
            let f = tri!(
                reply,
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(inode.proc())
                    .map_err(ioerr)
            );
            tri!(reply, f.set_len(size).map_err(ioerr));
            d.truncate(size);
        }
        if atime.is_some() || mtime.is_some() {
            // Not while a sync puts the old times back.
            let _d = lock(&inode.data);
            tri!(
                reply,
                rustix::fs::utimensat(
                    CWD,
                    inode.proc(),
                    &Timestamps {
                        last_access: timespec(atime),
                        last_modification: timespec(mtime),
                    },
                    AtFlags::empty(),
                )
                .map_err(errno)
            );
        }
        let st = tri!(reply, inode.stat());
        reply.attr(&TTL, &s.attr(&inode, &st));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let inode = tri!(reply, self.0.inode(ino));
        let t = tri!(
            reply,
            rustix::fs::readlinkat(&inode.fd, "", Vec::new()).map_err(errno)
        );
        reply.data(t.as_bytes());
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let s = &self.0;
        let dir = tri!(reply, s.inode(parent));
        tri!(
            reply,
            rustix::fs::mknodat(
                &dir.fd,
                name,
                rustix::fs::FileType::from_raw_mode(mode),
                Mode::from_raw_mode(mode & 0o7777),
                u64::from(rdev),
            )
            .map_err(errno)
        );
        s.own(req, &dir, name);
        let (_, attr) = tri!(reply, s.lookup_at(dir.fd.as_fd(), name));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let s = &self.0;
        let dir = tri!(reply, s.inode(parent));
        tri!(
            reply,
            rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(mode & 0o7777)).map_err(errno)
        );
        s.own(req, &dir, name);
        let (_, attr) = tri!(reply, s.lookup_at(dir.fd.as_fd(), name));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let dir = tri!(reply, self.0.inode(parent));
        tri!(
            reply,
            rustix::fs::unlinkat(&dir.fd, name, AtFlags::empty()).map_err(errno)
        );
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let dir = tri!(reply, self.0.inode(parent));
        tri!(
            reply,
            rustix::fs::unlinkat(&dir.fd, name, AtFlags::REMOVEDIR).map_err(errno)
        );
        reply.ok();
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let s = &self.0;
        let dir = tri!(reply, s.inode(parent));
        tri!(
            reply,
            rustix::fs::symlinkat(target, &dir.fd, link_name).map_err(errno)
        );
        s.own(req, &dir, link_name);
        let (_, attr) = tri!(reply, s.lookup_at(dir.fd.as_fd(), link_name));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let s = &self.0;
        let from = tri!(reply, s.inode(parent));
        let to = tri!(reply, s.inode(newparent));
        tri!(
            reply,
            rustix::fs::renameat_with(
                &from.fd,
                name,
                &to.fd,
                newname,
                rustix::fs::RenameFlags::from_bits_retain(flags.bits()),
            )
            .map_err(errno)
        );
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        let dir = tri!(reply, s.inode(newparent));
        tri!(
            reply,
            rustix::fs::linkat(&inode.fd, "", &dir.fd, newname, AtFlags::EMPTY_PATH).map_err(errno)
        );
        let (_, attr) = tri!(reply, s.lookup_at(dir.fd.as_fd(), newname));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        // The kernel checked the caller's access (default_permissions);
        // crashfs reads BACKING through this and writes it only on sync.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(inode.proc())
            .or_else(|_| std::fs::File::open(inode.proc()));
        let f = tri!(reply, f.map_err(ioerr));
        let _ = flags;
        let fh = s.new_fh(f);
        // No FOPEN_KEEP_CACHE: the kernel drops its cached pages on open.
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        let f = tri!(reply, s.file(&inode, fh));
        let buf = tri!(reply, s.read_logical(&inode, &f, offset, u64::from(size)));
        reply.data(&buf);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        tri!(reply, s.dirty_write(&inode, offset, data));
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.0.files).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let inode = tri!(reply, self.0.inode(ino));
        tri!(reply, inode.sync());
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        let mut entries = vec![
            (inode.id, FileType::Directory, OsString::from(".")),
            (1, FileType::Directory, OsString::from("..")),
        ];
        let rd = tri!(reply, std::fs::read_dir(inode.proc()).map_err(ioerr));
        for e in rd {
            let e = tri!(reply, e.map_err(ioerr));
            let kind = e
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            entries.push((e.ino(), kind, e.file_name()));
        }
        let fh = s.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&s.dirs).insert(fh, Arc::new(DirHandle { entries }));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(h) = lock(&self.0.dirs).get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in h.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.0.dirs).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory entries and attributes are durable the moment they
        // change; a directory has no data to write.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let v = tri!(reply, rustix::fs::statvfs(&self.0.backing).map_err(errno));
        reply.statfs(
            v.f_blocks,
            v.f_bfree,
            v.f_bavail,
            v.f_files,
            v.f_ffree,
            v.f_bsize as u32,
            v.f_namemax as u32,
            v.f_frsize as u32,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let inode = tri!(reply, self.0.inode(ino));
        tri!(
            reply,
            rustix::fs::setxattr(
                inode.proc(),
                name,
                value,
                rustix::fs::XattrFlags::from_bits_retain(flags as _),
            )
            .map_err(errno)
        );
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let inode = tri!(reply, self.0.inode(ino));
        let mut buf = vec![0u8; size as usize];
        let n = tri!(
            reply,
            rustix::fs::getxattr(inode.proc(), name, &mut buf[..]).map_err(errno)
        );
        if size == 0 {
            reply.size(n as u32);
        } else {
            reply.data(&buf[..n]);
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let inode = tri!(reply, self.0.inode(ino));
        let mut buf = vec![0u8; size as usize];
        let n = tri!(
            reply,
            rustix::fs::listxattr(inode.proc(), &mut buf[..]).map_err(errno)
        );
        if size == 0 {
            reply.size(n as u32);
        } else {
            reply.data(&buf[..n]);
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let inode = tri!(reply, self.0.inode(ino));
        tri!(
            reply,
            rustix::fs::removexattr(inode.proc(), name).map_err(errno)
        );
        reply.ok();
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let s = &self.0;
        let dir = tri!(reply, s.inode(parent));
        // Opened read-write whatever the caller asked (the kernel checks its
        // access); no O_APPEND/O_SYNC/O_DIRECT: crashfs writes only at sync.
        let mut o = OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if flags & libc::O_EXCL != 0 {
            o |= OFlags::EXCL;
        }
        let fd = tri!(
            reply,
            rustix::fs::openat(&dir.fd, name, o, Mode::from_raw_mode(mode & 0o7777)).map_err(errno)
        );
        s.own(req, &dir, name);
        let path = tri!(
            reply,
            rustix::fs::openat(
                CWD,
                format!("/proc/self/fd/{}", fd.as_raw_fd()),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)
        );
        let (_, attr) = tri!(reply, s.register(path));
        let fh = s.new_fh(File::from(fd));
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(fh),
            FopenFlags::empty(),
        );
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        // No FICLONE and friends: callers fall back to copying.
        reply.error(Errno::ENOTTY);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Allocation (and the size it may extend) is metadata: durable.
        // Modes that change bytes (punch, zero, collapse, insert) would
        // have to edit the dirty ranges too: not supported.
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let s = &self.0;
        let inode = tri!(reply, s.inode(ino));
        let f = tri!(reply, s.file(&inode, fh));
        tri!(
            reply,
            rustix::fs::fallocate(
                f.as_fd(),
                rustix::fs::FallocateFlags::from_bits_retain(mode as _),
                offset,
                length,
            )
            .map_err(errno)
        );
        reply.ok();
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // A read and a (dirty) write, at most 8 MiB at a time.
        let s = &self.0;
        let src = tri!(reply, s.inode(ino_in));
        let dst = tri!(reply, s.inode(ino_out));
        let f = tri!(reply, s.file(&src, fh_in));
        let buf = tri!(reply, s.read_logical(&src, &f, offset_in, len.min(8 << 20)));
        tri!(reply, s.dirty_write(&dst, offset_out, &buf));
        reply.written(buf.len() as u32);
    }
}

/// `CRASHFS_DEBUG=1`: fuser's own log (every request) on stderr.
struct Logger;
impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        eprintln!("crashfs [{}] {}", r.level(), r.args());
    }
    fn flush(&self) {}
}
static LOGGER: Logger = Logger;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let size_on_write = args.first().is_some_and(|a| a == "--size-on-write");
    if size_on_write {
        args.remove(0);
    }
    let [backing, mountpoint] = &args[..] else {
        eprintln!("usage: crashfs [--size-on-write] BACKING MOUNTPOINT");
        eprintln!("  --size-on-write: a write's new file size is durable at once, its data is not");
        eprintln!("  SIGUSR1: power cut (drop unsynced data; prints `cut FILES BYTES`)");
        eprintln!("  SIGUSR2: write all dirty data (prints `synced FILES BYTES`)");
        eprintln!("  SIGTERM/SIGINT: write all dirty data, unmount, exit");
        std::process::exit(2);
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if std::env::var_os("CRASHFS_DEBUG").is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Error
    });
    // Modes arrive with the caller's umask applied already.
    rustix::process::umask(Mode::empty());
    // One O_PATH descriptor per inode the kernel holds.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }

    let backing = PathBuf::from(backing);
    let root = match rustix::fs::open(
        &backing,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("crashfs: {}: {e}", backing.display());
            std::process::exit(1);
        }
    };
    let st = rustix::fs::fstat(&root).expect("fstat backing");
    let mut table = Table {
        nodes: HashMap::new(),
        root: (st.st_dev as u64, st.st_ino as u64),
    };
    table.nodes.insert(
        INodeNo::ROOT.0,
        Node {
            inode: Arc::new(Inode {
                fd: root,
                id: INodeNo::ROOT.0,
                data: Mutex::default(),
            }),
            nlookup: 1,
        },
    );
    let root_owner = rustix::process::geteuid().is_root();
    let state = Arc::new(State {
        backing,
        table: Mutex::new(table),
        files: Mutex::default(),
        dirs: Mutex::default(),
        next_fh: AtomicU64::new(1),
        root_owner,
        size_on_write,
    });

    // Signals are taken before mounting, so a test that signals right after
    // `ready` never kills crashfs by default action.
    let mut signals = signal_hook::iterator::Signals::new([
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTERM,
        libc::SIGINT,
    ])
    .expect("signal handlers");

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("crashfs".into()),
        MountOption::Subtype("crashfs".into()),
        MountOption::DefaultPermissions,
        MountOption::Dev,
        MountOption::Suid,
    ];
    // CRASHFS_FUSERMOUNT=1: mount through the setuid `fusermount3` even as
    // root (fuser takes that way for auto_unmount), to check it works.
    if std::env::var_os("CRASHFS_FUSERMOUNT").is_some() {
        config.mount_options.push(MountOption::AutoUnmount);
    }
    // Other users may use the mount (root may always mount so).
    config.acl = if root_owner {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(4);
    let mut session = match Session::new(CrashFs(state.clone()), mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crashfs: mount on {}: {e}", Path::new(mountpoint).display());
            std::process::exit(1);
        }
    };
    let mut unmounter = session.unmount_callable();
    let notifier = session.notifier();
    let runner = std::thread::spawn(move || session.run());
    say("ready");

    for sig in signals.forever() {
        match sig {
            libc::SIGUSR1 => {
                let (f, b) = state.cut(&notifier);
                say(&format!("cut {f} {b}"));
            }
            libc::SIGUSR2 => {
                let (f, b) = state.sync_all();
                say(&format!("synced {f} {b}"));
            }
            _ => break,
        }
    }
    let (f, b) = state.sync_all();
    if let Err(e) = unmounter.unmount() {
        eprintln!("crashfs: unmount: {e}");
    }
    // The session ends when the kernel closes the connection. If it has
    // not (a mount still in use, or fusermount3's auto_unmount that did
    // not act), detach the mount and do not wait forever.
    let wait = |ticks: u32| {
        for _ in 0..ticks {
            if runner.is_finished() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        runner.is_finished()
    };
    if !wait(200) {
        let _ = rustix::mount::unmount(Path::new(mountpoint), rustix::mount::UnmountFlags::DETACH);
        wait(300);
    }
    say(&format!("unmounted {f} {b}"));
}
