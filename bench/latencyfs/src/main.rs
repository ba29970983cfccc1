//! latencyfs BACKING MOUNTPOINT DELAY_US [THREADS]: mirror BACKING at
//! MOUNTPOINT, every FUSE request answered after DELAY_US microseconds by a
//! pool of THREADS (default 64) so delays overlap the way a network
//! filesystem's round trips do. Attributes and entries are never cached
//! (TTL 0), so each metadata operation of a copier is one delayed round
//! trip. Path-based passthrough: good enough for a benchmark, not a product.

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, FUSE_ROOT_ID,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::ZERO;

type Job = Box<dyn FnOnce() + Send>;

struct Lfs {
    root: PathBuf,
    delay: Duration,
    paths: Arc<Mutex<HashMap<u64, PathBuf>>>,
    files: Arc<Mutex<HashMap<u64, std::fs::File>>>,
    next_fh: u64,
    pool: Sender<Job>,
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(m: &std::fs::Metadata, ino: u64) -> FileAttr {
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else if ft.is_socket() {
        FileType::Socket
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino,
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind,
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

/// Answer a getxattr/listxattr: the error, the size asked for (size 0),
/// or the bytes.
fn xattr_reply(reply: ReplyXattr, r: isize, size: u32, buf: &[u8]) {
    if r < 0 {
        reply.error(errno(std::io::Error::last_os_error()))
    } else if size == 0 {
        reply.size(r as u32)
    } else {
        reply.data(&buf[..r as usize])
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn check(r: libc::c_int) -> Result<(), i32> {
    if r == 0 {
        Ok(())
    } else {
        Err(errno(std::io::Error::last_os_error()))
    }
}

impl Lfs {
    fn path(&self, ino: u64) -> Option<PathBuf> {
        if ino == FUSE_ROOT_ID {
            return Some(self.root.clone());
        }
        self.paths.lock().ok()?.get(&ino).cloned()
    }

    /// Run `f` on the pool after the delay.
    fn later(&self, f: impl FnOnce() + Send + 'static) {
        let d = self.delay;
        let _ = self.pool.send(Box::new(move || {
            std::thread::sleep(d);
            f()
        }));
    }

    /// Reply with the entry for `p` (lstat), remembering its inode.
    fn entry_job(&self, p: PathBuf, reply: ReplyEntry, before: impl FnOnce(&Path) -> Result<(), i32> + Send + 'static) {
        let paths = Arc::clone(&self.paths);
        let root_ino = std::fs::symlink_metadata(&self.root).map(|m| m.ino()).unwrap_or(0);
        self.later(move || match before(&p).and_then(|()| std::fs::symlink_metadata(&p).map_err(errno)) {
            Ok(m) => {
                let ino = if m.ino() == root_ino { FUSE_ROOT_ID } else { m.ino() };
                if let Ok(mut t) = paths.lock() {
                    t.insert(ino, p);
                }
                reply.entry(&TTL, &attr(&m, ino), 0)
            }
            Err(e) => reply.error(e),
        });
    }
}

macro_rules! path_or {
    ($s:expr, $ino:expr, $reply:expr) => {
        match $s.path($ino) {
            Some(p) => p,
            None => return $reply.error(libc::ENOENT),
        }
    };
}

impl Filesystem for Lfs {
    fn lookup(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let p = path_or!(self, parent, reply).join(name);
        self.entry_job(p, reply, |_| Ok(()));
    }

    fn getattr(&mut self, _r: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let p = path_or!(self, ino, reply);
        self.later(move || match std::fs::symlink_metadata(&p) {
            Ok(m) => reply.attr(&TTL, &attr(&m, ino)),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn setattr(
        &mut self,
        _r: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let p = path_or!(self, ino, reply);
        self.later(move || {
            let c = cpath(&p);
            let ts = |t: Option<TimeOrNow>| match t {
                None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
                Some(TimeOrNow::Now) => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
                Some(TimeOrNow::SpecificTime(t)) => {
                    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                    libc::timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as i64 }
                }
            };
            // SAFETY: valid C strings and arguments for each call.
            let r = (|| unsafe {
                if uid.is_some() || gid.is_some() {
                    check(libc::lchown(c.as_ptr(), uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX)))?;
                }
                if let Some(m) = mode {
                    check(libc::chmod(c.as_ptr(), m & 0o7777))?;
                }
                if let Some(s) = size {
                    check(libc::truncate(c.as_ptr(), s as i64))?;
                }
                if atime.is_some() || mtime.is_some() {
                    let t = [ts(atime), ts(mtime)];
                    check(libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW))?;
                }
                Ok(())
            })();
            match r.and_then(|()| std::fs::symlink_metadata(&p).map_err(errno)) {
                Ok(m) => reply.attr(&TTL, &attr(&m, ino)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readlink(&mut self, _r: &Request<'_>, ino: u64, reply: ReplyData) {
        let p = path_or!(self, ino, reply);
        self.later(move || match std::fs::read_link(&p) {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn mknod(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let p = path_or!(self, parent, reply).join(name);
        self.entry_job(p, reply, move |p| {
            // SAFETY: a valid C string.
            check(unsafe { libc::mknod(cpath(p).as_ptr(), mode & !umask, rdev as libc::dev_t) })
        });
    }

    fn mkdir(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let p = path_or!(self, parent, reply).join(name);
        self.entry_job(p, reply, move |p| {
            // SAFETY: a valid C string.
            check(unsafe { libc::mkdir(cpath(p).as_ptr(), mode & !umask) })
        });
    }

    fn unlink(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let p = path_or!(self, parent, reply).join(name);
        self.later(move || match std::fs::remove_file(&p) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn rmdir(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let p = path_or!(self, parent, reply).join(name);
        self.later(move || match std::fs::remove_dir(&p) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn symlink(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, target: &Path, reply: ReplyEntry) {
        let p = path_or!(self, parent, reply).join(name);
        let target = target.to_path_buf();
        self.entry_job(p, reply, move |p| std::os::unix::fs::symlink(&target, p).map_err(errno));
    }

    fn rename(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32, reply: ReplyEmpty) {
        let from = path_or!(self, parent, reply).join(name);
        let to = path_or!(self, newparent, reply).join(newname);
        self.later(move || {
            let (a, b) = (cpath(&from), cpath(&to));
            // SAFETY: valid C strings.
            let r = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), flags) };
            match check(r) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn link(&mut self, _r: &Request<'_>, ino: u64, newparent: u64, newname: &OsStr, reply: ReplyEntry) {
        let from = path_or!(self, ino, reply);
        let to = path_or!(self, newparent, reply).join(newname);
        self.entry_job(to, reply, move |to| std::fs::hard_link(&from, to).map_err(errno));
    }

    fn open(&mut self, _r: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let p = path_or!(self, ino, reply);
        self.next_fh += 1;
        let fh = self.next_fh;
        let files = Arc::clone(&self.files);
        self.later(move || {
            let acc = flags & libc::O_ACCMODE;
            let f = std::fs::OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(acc != libc::O_RDONLY)
                .custom_flags(flags & !(libc::O_ACCMODE | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOFOLLOW))
                .open(&p);
            match f {
                Ok(f) => {
                    if let Ok(mut t) = files.lock() {
                        t.insert(fh, f);
                    }
                    reply.opened(fh, 0)
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn read(&mut self, _r: &Request<'_>, _ino: u64, fh: u64, offset: i64, size: u32, _f: i32, _l: Option<u64>, reply: ReplyData) {
        let files = Arc::clone(&self.files);
        self.later(move || {
            let f = files.lock().ok().and_then(|t| t.get(&fh).and_then(|f| f.try_clone().ok()));
            let Some(f) = f else { return reply.error(libc::EBADF) };
            let mut buf = vec![0u8; size as usize];
            match f.read_at(&mut buf, offset as u64) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn write(&mut self, _r: &Request<'_>, _ino: u64, fh: u64, offset: i64, data: &[u8], _wf: u32, _f: i32, _l: Option<u64>, reply: ReplyWrite) {
        let files = Arc::clone(&self.files);
        let data = data.to_vec();
        self.later(move || {
            let f = files.lock().ok().and_then(|t| t.get(&fh).and_then(|f| f.try_clone().ok()));
            let Some(f) = f else { return reply.error(libc::EBADF) };
            match f.write_all_at(&data, offset as u64) {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn release(&mut self, _r: &Request<'_>, _ino: u64, fh: u64, _f: i32, _l: Option<u64>, _fl: bool, reply: ReplyEmpty) {
        let files = Arc::clone(&self.files);
        self.later(move || {
            if let Ok(mut t) = files.lock() {
                t.remove(&fh);
            }
            reply.ok()
        });
    }

    fn fsync(&mut self, _r: &Request<'_>, _ino: u64, fh: u64, _d: bool, reply: ReplyEmpty) {
        let files = Arc::clone(&self.files);
        self.later(move || {
            let f = files.lock().ok().and_then(|t| t.get(&fh).and_then(|f| f.try_clone().ok()));
            match f.map(|f| f.sync_all()) {
                Some(Ok(())) => reply.ok(),
                Some(Err(e)) => reply.error(errno(e)),
                None => reply.error(libc::EBADF),
            }
        });
    }

    fn readdir(&mut self, _r: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let p = path_or!(self, ino, reply);
        self.later(move || {
            let Ok(rd) = std::fs::read_dir(&p) else { return reply.error(libc::ENOENT) };
            let mut names: Vec<(OsString, FileType, u64)> = rd
                .filter_map(Result::ok)
                .map(|e| {
                    let ft = e.file_type().ok();
                    let kind = match ft {
                        Some(t) if t.is_dir() => FileType::Directory,
                        Some(t) if t.is_symlink() => FileType::Symlink,
                        _ => FileType::RegularFile,
                    };
                    let ino = e.metadata().map(|m| m.ino()).unwrap_or(0);
                    (e.file_name(), kind, ino)
                })
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let all = [(OsString::from("."), FileType::Directory, ino), (OsString::from(".."), FileType::Directory, ino)]
                .into_iter()
                .chain(names);
            for (i, (name, kind, ino)) in all.enumerate().skip(offset as usize) {
                if reply.add(ino.max(2), (i + 1) as i64, kind, &name) {
                    break;
                }
            }
            reply.ok()
        });
    }

    fn statfs(&mut self, _r: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let root = self.root.clone();
        self.later(move || {
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: a valid C string and a statvfs to fill.
            match check(unsafe { libc::statvfs(cpath(&root).as_ptr(), &mut s) }) {
                Ok(()) => reply.statfs(s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree, s.f_bsize as u32, s.f_namemax as u32, s.f_frsize as u32),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setxattr(&mut self, _r: &Request<'_>, ino: u64, name: &OsStr, value: &[u8], flags: i32, _pos: u32, reply: ReplyEmpty) {
        let p = path_or!(self, ino, reply);
        let (name, value) = (name.to_os_string(), value.to_vec());
        self.later(move || {
            let n = CString::new(name.as_bytes()).unwrap_or_default();
            // SAFETY: valid C strings and buffer.
            let r = unsafe { libc::lsetxattr(cpath(&p).as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
            match check(r) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn getxattr(&mut self, _r: &Request<'_>, ino: u64, name: &OsStr, size: u32, reply: ReplyXattr) {
        let p = path_or!(self, ino, reply);
        let name = name.to_os_string();
        self.later(move || {
            let n = CString::new(name.as_bytes()).unwrap_or_default();
            let mut buf = vec![0u8; size as usize];
            // SAFETY: valid C strings and buffer.
            let r = unsafe { libc::lgetxattr(cpath(&p).as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            xattr_reply(reply, r, size, &buf)
        });
    }

    fn listxattr(&mut self, _r: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let p = path_or!(self, ino, reply);
        self.later(move || {
            let mut buf = vec![0u8; size as usize];
            // SAFETY: a valid C string and buffer.
            let r = unsafe { libc::llistxattr(cpath(&p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            xattr_reply(reply, r, size, &buf)
        });
    }

    fn removexattr(&mut self, _r: &Request<'_>, ino: u64, name: &OsStr, reply: ReplyEmpty) {
        let p = path_or!(self, ino, reply);
        let name = name.to_os_string();
        self.later(move || {
            let n = CString::new(name.as_bytes()).unwrap_or_default();
            // SAFETY: valid C strings.
            match check(unsafe { libc::lremovexattr(cpath(&p).as_ptr(), n.as_ptr()) }) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn access(&mut self, _r: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        self.later(move || reply.ok());
    }

    fn create(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        let p = path_or!(self, parent, reply).join(name);
        self.next_fh += 1;
        let fh = self.next_fh;
        let (files, paths) = (Arc::clone(&self.files), Arc::clone(&self.paths));
        self.later(move || {
            let acc = flags & libc::O_ACCMODE;
            let f = std::fs::OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(true)
                .create(true)
                .custom_flags(flags & (libc::O_EXCL | libc::O_NOFOLLOW))
                .mode(mode & !umask)
                .open(&p);
            let f = match f {
                Ok(f) => f,
                Err(e) => return reply.error(errno(e)),
            };
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777));
            match f.metadata() {
                Ok(m) => {
                    if let Ok(mut t) = paths.lock() {
                        t.insert(m.ino(), p);
                    }
                    if let Ok(mut t) = files.lock() {
                        t.insert(fh, f);
                    }
                    reply.created(&TTL, &attr(&m, m.ino()), 0, fh, 0)
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: latencyfs BACKING MOUNTPOINT DELAY_US [THREADS]");
        std::process::exit(2);
    }
    let delay = Duration::from_micros(args[3].parse().unwrap_or(500));
    let threads: usize = args.get(4).and_then(|t| t.parse().ok()).unwrap_or(64);
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..threads {
        let rx = Arc::clone(&rx);
        std::thread::spawn(move || loop {
            let job = match rx.lock() {
                Ok(r) => r.recv(),
                Err(_) => return,
            };
            match job {
                Ok(j) => j(),
                Err(_) => return,
            }
        });
    }
    let fs = Lfs {
        root: PathBuf::from(&args[1]),
        delay,
        paths: Arc::new(Mutex::new(HashMap::new())),
        files: Arc::new(Mutex::new(HashMap::new())),
        next_fh: 0,
        pool: tx,
    };
    let opts = [
        MountOption::FSName("latencyfs".into()),
        MountOption::AllowOther,
        MountOption::DefaultPermissions,
    ];
    if let Err(e) = fuser::mount2(fs, &args[2], &opts) {
        eprintln!("latencyfs: mount {}: {e}", args[2]);
        std::process::exit(1);
    }
}
