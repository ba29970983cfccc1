//! The walk: a pool of threads in the supervisor streams the source tree
//! (symlinks never followed unless `-L`), creates each destination directory
//! before any of its entries is dispatched, applies the quick check to files
//! (an up-to-date file costs one `fstatat` and no IPC), and groups the rest
//! into batches bounded by count and bytes. Directories are processed as jobs
//! from a shared stack, each resolved beneath the held roots with `openat2`;
//! entries are read with `getdents` and stat'ed relative to their directory
//! descriptor. Directory attributes are collected and applied last (see
//! `finish`); large files are decided at the end (`large`).

mod basis;
mod content;
mod dest;
mod large;
mod links;
mod list;
mod share;

use super::work::{io_threads, Batch, DirMeta, Found, Link, WalkEvent, WalkOutput};
pub use basis::Bases;
pub use dest::remove_worker_temps;
use share::Job;
pub use share::Jobs;

use super::changes::{Action, Change, Kind, Reasons};
use crate::config::Settings;
use crate::copy::attrs::Attrs;
use crate::copy::{join_rel, open_beneath};
use crate::protocol::{DestDir, RelPath, Task, TaskKind};
use crate::stats::{Failed, Paths};
use crate::util::escape_bytes;
use crossbeam_channel::Sender;
use rustix::fs::{AtFlags, FileType, OFlags, Stat};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The walk's share of the settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Report what would happen; create and write nothing.
    pub dry_run: bool,
    pub ignore_times: bool,
    /// Follow source symlinks (`-L`); loops are reported and skipped.
    pub dereference: bool,
    /// Files of at least twice this size may be split into chunks of at
    /// least this size (None: never).
    pub chunk_bytes: Option<u64>,
    /// min(workers, CPUs): how many writers can run at once.
    pub parallel: usize,
    /// Walker threads.
    pub threads: usize,
    pub batch_files: usize,
    pub batch_bytes: u64,
    /// Ownership is preserved (we are root).
    pub owner: bool,
    /// `--delete`: list the destination's extras, and replace an entry of
    /// another type in the way of a source entry.
    pub delete: bool,
    /// `--delete-excluded`: excluded names are extras too.
    pub delete_excluded: bool,
    /// `-x`: do not descend into directories on another filesystem.
    pub one_file_system: bool,
    /// `-u`: a file newer at the destination is left alone.
    pub update: bool,
    /// `-c`: no size+mtime skip here; the workers compare content.
    pub checksum: bool,
    /// `--files-from`: only these paths (relative to the source).
    pub files_from: Option<Arc<Vec<Vec<u8>>>>,
    /// `--reflink` auto or always: a worker may clone a file whole.
    pub may_clone: bool,
    /// An earlier run into this destination did not end cleanly: entries
    /// changed at or after this moment are copied again (`recovery`).
    pub unverified_since: Option<super::recovery::Moment>,
}

impl From<&Settings> for Options {
    fn from(s: &Settings) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Options {
            dry_run: s.dry_run,
            ignore_times: s.ignore_times,
            dereference: s.dereference,
            // One worker gains nothing from splitting; --verify hashes
            // whole files.
            chunk_bytes: (s.processes > 1 && !s.verify).then_some(s.chunk_bytes),
            parallel: s.processes.min(cpus),
            threads: io_threads(),
            batch_files: s.batch_files,
            batch_bytes: s.batch_bytes,
            owner: rustix::process::geteuid().is_root(),
            delete: s.delete,
            delete_excluded: s.delete_excluded,
            one_file_system: s.one_file_system,
            update: s.update,
            checksum: s.checksum,
            files_from: s.files_from.clone(),
            may_clone: s.reflink != crate::cli::ReflinkArg::Never,
            unverified_since: None,
        }
    }
}

pub struct Walker {
    pub opts: Options,
    /// For messages only: every access goes through the root descriptors.
    pub paths: Paths,
    /// The source root the supervisor validated (never re-opened by path).
    pub src_root: OwnedFd,
    pub found: Arc<Found>,
    /// None only in a dry run whose destination does not exist yet.
    pub dst_root: Option<OwnedFd>,
    pub filter: Arc<crate::filter::Filter>,
    /// Removes what is in the way of a source entry (`--delete`).
    pub deleter: Arc<super::delete::Deleter>,
    /// The destination root did not exist before this run.
    pub root_created: bool,
    pub run_id: u64,
    pub batches: Sender<Batch>,
    pub events: Sender<WalkEvent>,
    /// `-i` and `--json-lines`: what each entry's fate changes.
    pub changes: Arc<super::changes::Changes>,
    /// The source root's device (`-x`).
    pub root_dev: u64,
    /// The job stack; under MPI shared with other ranks.
    pub jobs: Arc<Jobs>,
    /// This rank and how many there are (0 and 1 without MPI).
    pub rank: u32,
    pub ranks: u32,
    /// `--mpi`: entries quarantined by an earlier run (they crashed
    /// workers), reported as failed and not tried again.
    pub quarantined: Arc<std::collections::HashSet<Vec<u8>>>,
    /// `--link-dest`, `--compare-dest`, `--copy-dest`.
    pub basis: Option<Arc<Bases>>,
}

/// Groups tasks into batches; one per walker thread.
pub struct Batcher<'a> {
    batch: Batch,
    bytes: u64,
    w: &'a Walker,
}

impl<'a> Batcher<'a> {
    /// Add a task; send the batch when full, or early when the dispatcher is
    /// waiting (channel empty), so workers never idle behind a half batch.
    fn push(&mut self, task: Task, bytes: u64) -> bool {
        let tasks = &mut self.batch.tasks;
        tasks.push(task);
        self.bytes += bytes;
        let full = tasks.len() >= self.w.opts.batch_files || self.bytes >= self.w.opts.batch_bytes;
        let starving = tasks.len() >= 16 && self.w.batches.is_empty();
        if full || starving {
            return self.flush();
        }
        true
    }
    /// A large file, registered ahead of its chunks (pushed next).
    fn register(&mut self, rel: Vec<u8>, big: super::bigfile::Big) {
        self.batch.big.push((rel, big));
    }
    fn flush(&mut self) -> bool {
        self.bytes = 0;
        if self.batch.tasks.is_empty() && self.batch.big.is_empty() {
            return true;
        }
        let sent = self.w.batches.send(std::mem::take(&mut self.batch)).is_ok();
        if sent {
            self.w.jobs.note_fed();
        }
        sent
    }
    fn new(w: &'a Walker) -> Self {
        Batcher {
            batch: Batch::default(),
            bytes: 0,
            w,
        }
    }
}

/// A directory to read: its path relative to both roots, whether this run
/// created its destination, and (with `-L`) its ancestors' identities.
pub(super) struct DirJob {
    rel: Vec<u8>,
    dir: DestDir,
    ancestors: Arc<Vec<(u64, u64)>>,
}

/// State shared by the walker threads.
struct Shared {
    /// The dispatcher is gone (fatal error or interrupt): stop walking.
    stop: AtomicBool,
    /// Hard-linked inodes' names, decided after the walk (`links`).
    groups: Mutex<links::Groups>,
    out: Mutex<WalkOutput>,
    large: Mutex<Vec<large::Large>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking walker thread is reported at join; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The rank that owns an inode's names: a fixed mix of (dev, ino), the
/// same on every rank.
fn owner_of(dev: u64, ino: u64, ranks: u32) -> u32 {
    let mut x = dev.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ino;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % u64::from(ranks.max(1))) as u32
}

impl Walker {
    pub fn run(self) -> WalkOutput {
        crate::failpoint::hit("walk::start", b"");
        let src_root = &self.src_root;
        let root_id = rustix::fs::fstat(src_root).map_or((0, 0), |s| (s.st_dev, s.st_ino));

        if self.rank == 0 && self.opts.files_from.is_none() {
            // Under MPI the other ranks start empty and steal.
            self.jobs.push(Job::Dir(DirJob {
                rel: Vec::new(),
                dir: if self.root_created {
                    DestDir::Created
                } else {
                    DestDir::Existing
                },
                ancestors: Arc::new(vec![root_id]),
            }));
            self.jobs.started();
        }
        let shared = Shared {
            stop: AtomicBool::new(false),
            groups: Mutex::new(HashMap::new()),
            out: Mutex::new(WalkOutput::default()),
            large: Mutex::new(Vec::new()),
        };
        // With --files-from the root is itemized only when listed (`.`), as
        // rsync sends it only then.
        let root_listed = self
            .opts
            .files_from
            .as_ref()
            .is_none_or(|l| l.iter().any(|r| list::is_root(r)));
        if self.changes.on() && root_listed {
            self.note_root();
        }
        // After note_root, which reports the mode as it was.
        if let (Some(root), false, 0) = (&self.dst_root, self.opts.dry_run, self.rank) {
            dest::open_up(root);
        }
        match &self.opts.files_from {
            Some(list) => {
                // One thread reads the list (rank 0's); under MPI the other
                // ranks still own hard-linked entries sent to them.
                if self.rank == 0 {
                    if !self.walk_list(&shared, list) {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    self.jobs.started();
                }
                self.thread(&shared, src_root);
            }
            None => std::thread::scope(|s| {
                for _ in 0..self.opts.threads.max(1) {
                    s.spawn(|| self.thread(&shared, src_root));
                }
            }),
        }
        if !shared.stop.load(Ordering::Relaxed) && !self.decide_groups(&shared) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        let large = std::mem::take(&mut *lock(&shared.large));
        if !shared.stop.load(Ordering::Relaxed) {
            let mut b = Batcher::new(&self);
            if large::place(&self, large, &mut b) {
                b.flush();
            }
        }
        self.jobs.set_placed();
        let mut out = std::mem::take(&mut *lock(&shared.out));
        out.dirs.sort_by_key(|d| std::cmp::Reverse(d.depth()));
        out
    }

    /// One walker thread: take directory jobs until none are left anywhere.
    fn thread(&self, sh: &Shared, src_root: &OwnedFd) {
        let mut b = Batcher::new(self);
        let flush = |b: &mut Batcher| {
            if !b.flush() {
                sh.stop.store(true, Ordering::Relaxed);
            }
        };
        while let Some(job) = self.jobs.next(&sh.stop, || flush(&mut b)) {
            let ok = match job {
                Job::Dir(job) => self.read_dir(sh, src_root, &job, &mut b),
                Job::Entry { rel, dir } => self.list_entry(sh, &rel, dir, &mut b),
            };
            if !ok {
                sh.stop.store(true, Ordering::Relaxed);
            }
            self.jobs.done_one();
        }
        flush(&mut b);
    }

    /// Read one directory and handle its entries. `false` when the
    /// dispatcher is gone.
    fn read_dir(&self, sh: &Shared, src_root: &OwnedFd, job: &DirJob, b: &mut Batcher) -> bool {
        let src = match crate::copy::open_src_dir(src_root, &job.rel, self.opts.dereference) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.vanished(&job.rel, true);
                return true;
            }
            Err(e) => {
                self.fail_io(&job.rel, &e.to_string(), &e, true);
                return true;
            }
        };
        let dst = match &self.dst_root {
            Some(root) => match open_beneath(root, &job.rel, OFlags::DIRECTORY | OFlags::RDONLY) {
                Ok(fd) => Some(fd),
                Err(_) if self.opts.dry_run || self.found.no_space() => None,
                Err(e) => {
                    let msg = format!("open destination directory: {e}");
                    self.fail_io(&job.rel, &msg, &e, true);
                    return true;
                }
            },
            None => None,
        };
        if let (Some(d), DestDir::Existing, false) = (&dst, job.dir, self.opts.dry_run) {
            if let Err(e) = dest::remove_stale_temps(d, Some(&src), self.run_id) {
                let msg = format!("remove stale temporaries: {e}");
                self.fail_io(&job.rel, &msg, &e, true);
            }
        }
        let entries = match rustix::fs::Dir::read_from(&src) {
            Ok(d) => d,
            Err(e) => {
                let e = std::io::Error::from(e);
                self.fail_io(&job.rel, &e.to_string(), &e, true);
                return true;
            }
        };
        // --delete: the names the source has (from getdents, whether or not
        // each could be stat'ed), and whether the listing was complete.
        let mut seen = (self.opts.delete && job.dir == DestDir::Existing && dst.is_some())
            .then(std::collections::HashSet::new);
        let mut complete = true;
        let basis = self.basis_dirs(&job.rel);
        for ent in entries {
            let ent = match ent {
                Ok(e) => e,
                Err(e) => {
                    let e = std::io::Error::from(e);
                    self.fail_io(&job.rel, &e.to_string(), &e, true);
                    complete = false;
                    break;
                }
            };
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if let Some(seen) = seen.as_mut() {
                seen.insert(name.to_vec());
            }
            if crate::failpoint::drop_hook("walk::read_dir", &job.rel) {
                // Test hook: the listing breaks off here, like an I/O error.
                self.fail(&job.rel, "simulated read error", true);
                complete = false;
                break;
            }
            if sh.stop.load(Ordering::Relaxed) {
                return false;
            }
            let e = Entry {
                name,
                rel: join_rel(&job.rel, name),
                src: &src,
                dst: dst.as_ref(),
                leader: false,
                basis: &basis,
                outcome: Default::default(),
            };
            if !self.entry(sh, job, &e, b) {
                return false;
            }
        }
        if let (Some(seen), Some(d), true) = (seen, &dst, complete) {
            self.find_extras(sh, &job.rel, d, &seen);
        }
        true
    }

    /// `-i`/`--json-lines`: what placing non-directory `e` will change:
    /// created (nothing, or another type, there), or updated with the
    /// reasons; nothing when the worker will find it current (symlinks and
    /// special files are compared there).
    fn note_copy(&self, job: &DirJob, e: &Entry, st: &Stat, ft: FileType) {
        let kind = Kind::of(ft);
        let target = (ft == FileType::Symlink)
            .then(|| rustix::fs::readlinkat(e.src, e.name, Vec::new()).ok())
            .flatten();
        let existing = match (job.dir, e.dst) {
            (DestDir::Existing, Some(d)) => {
                rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW)
                    .ok()
                    .filter(|d| Kind::of(FileType::from_raw_mode(d.st_mode)) == kind)
            }
            _ => None,
        };
        let (action, reasons) = match existing {
            None => (Action::Created, Reasons::default()),
            Some(d) => {
                let mut r = Reasons {
                    size: kind == Kind::File && d.st_size != st.st_size,
                    mtime: (d.st_mtime, d.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec),
                    ..Reasons::default()
                };
                if let (Some(t), Some(dd)) = (&target, e.dst) {
                    r.content = rustix::fs::readlinkat(dd, e.name, Vec::new())
                        .map_or(true, |dt| dt.as_bytes() != t.as_bytes());
                }
                // rsync marks every transfer under -c with `c` (the content
                // was compared and differs, or the size does).
                r.content |= kind == Kind::File && self.opts.checksum;
                let data_same = match kind {
                    // Same size and mtime without -c or -I: current (its
                    // attributes are reported by data_current).
                    Kind::File => !self.opts.ignore_times && !self.opts.checksum && !r.any(),
                    Kind::Symlink => !r.content,
                    _ => d.st_rdev == st.st_rdev,
                };
                if data_same {
                    // A symlink, FIFO or device whose target or number is
                    // the source's is repaired in place (times included)
                    // by data_current, which reports it.
                    return;
                }
                // What the copy will also change: the attributes the
                // existing entry has otherwise (rsync's `pogax`).
                (Action::Updated, self.attribute_reasons(e, st, &d, r))
            }
        };
        self.changes.record(&Change {
            rel: &e.rel,
            kind,
            action,
            reasons,
            size: (kind == Kind::File).then_some(st.st_size as u64),
            target: target.as_ref().map(|t| t.as_bytes()),
        });
    }

    /// `r` with the attribute differences between source `st` and the
    /// existing destination entry `dst` added.
    fn attribute_reasons(&self, e: &Entry, st: &Stat, dst: &Stat, r: Reasons) -> Reasons {
        let Some(dst_dir) = e.dst else { return r };
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: false,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dst_dir.as_fd());
        match crate::copy::repair::repair(dirs, e.name, (st, dst), how) {
            Ok(d) => Reasons {
                content: r.content,
                size: r.size,
                mtime: r.mtime,
                ..reasons(&d)
            },
            Err(_) => r,
        }
    }

    /// Directory `e`: created, or the attributes its existing copy will
    /// have set at the end. A difference in permissions, owner, group,
    /// ACLs or xattrs counts as a repair (the finish pass makes it);
    /// `-i`/`--json-lines` also hear of an mtime difference, as rsync says.
    fn note_dir(&self, e: &Entry, st: &Stat, created: bool, before: Option<Stat>) {
        if created {
            let (action, reasons) = match self.basis_dir_note(e, st) {
                None => (Action::Created, Reasons::default()),
                Some(None) => return,
                Some(Some(r)) => (Action::CopiedFromBasis, r),
            };
            return self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::Dir,
                action,
                reasons,
                size: None,
                target: None,
            });
        }
        let (Some(dst_dir), Some(dst)) = (e.dst, before) else {
            return;
        };
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: false,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dst_dir.as_fd());
        let Ok(d) = crate::copy::repair::repair(dirs, e.name, (st, &dst), how) else {
            return;
        };
        if d.any() {
            self.found.repaired.fetch_add(1, Ordering::Relaxed);
        }
        let mut r = reasons(&d);
        r.mtime = (dst.st_mtime, dst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec);
        if r.any() {
            self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::Dir,
                action: Action::Repaired,
                reasons: r,
                size: None,
                target: None,
            });
        }
    }

    /// `-i`/`--json-lines` for the roots themselves (rsync's `./` line):
    /// the destination root gets the source root's mode, owner and times.
    fn note_root(&self) {
        let src = rustix::fs::fstat(&self.src_root);
        if let (true, Ok(s)) = (self.root_created, &src) {
            // rsync itemizes a created root against a basis's root.
            if let Some(r) = self.basis_root_note(s) {
                if r.any() {
                    self.changes.record(&Change {
                        rel: b".",
                        kind: Kind::Dir,
                        action: Action::CopiedFromBasis,
                        reasons: r,
                        size: None,
                        target: None,
                    });
                }
                return;
            }
        }
        let Some(dst) = &self.dst_root else {
            return self.changes.record(&Change {
                rel: b".",
                kind: Kind::Dir,
                action: Action::Created,
                reasons: Reasons::default(),
                size: None,
                target: None,
            });
        };
        let (Ok(s), Ok(d)) = (src, rustix::fs::fstat(dst)) else {
            return;
        };
        let r = Reasons {
            mtime: (s.st_mtime, s.st_mtime_nsec) != (d.st_mtime, d.st_mtime_nsec),
            perms: s.st_mode & 0o7777 != d.st_mode & 0o7777,
            owner: self.opts.owner && s.st_uid != d.st_uid,
            group: self.opts.owner && s.st_gid != d.st_gid,
            ..Reasons::default()
        };
        if r.any() {
            self.changes.record(&Change {
                rel: b".",
                kind: Kind::Dir,
                action: if self.root_created {
                    Action::Created
                } else {
                    Action::Repaired
                },
                reasons: if self.root_created {
                    Reasons::default()
                } else {
                    r
                },
                size: None,
                target: None,
            });
        }
    }

    /// `--delete`: the entries of destination directory `dst` (for `rel`)
    /// that the completely read source directory does not have. Excluded
    /// names are kept unless `--delete-excluded`; this run's temps are
    /// never extras (workers are writing them).
    fn find_extras(
        &self,
        sh: &Shared,
        rel: &[u8],
        dst: &OwnedFd,
        seen: &std::collections::HashSet<Vec<u8>>,
    ) {
        // -x: a destination directory on another filesystem (something
        // mounted in the destination) is not looked into, as in rsync.
        if self.deleter.foreign_device(dst.as_fd()) {
            return;
        }
        let entries = match rustix::fs::Dir::read_from(dst) {
            Ok(d) => d,
            Err(e) => {
                let e = std::io::Error::from(e);
                let msg = format!("list destination for --delete: {e}");
                return self.fail_io(rel, &msg, &e, true);
            }
        };
        let mut extras = Vec::new();
        let mut listed = 0;
        for ent in entries {
            let Ok(ent) = ent else {
                // An incomplete listing only means fewer deletions.
                break;
            };
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // This run's temps (workers are writing them) and every run's
            // marker (`recovery`: an earlier run's goes with this run's
            // clean end, or with its own durability child) are pcopy's
            // bookkeeping, never extras.
            if crate::copy::temp::parse(name)
                .is_some_and(|t| t.run_id == self.run_id || t.kind == crate::copy::temp::Kind::Run)
            {
                continue;
            }
            listed += 1;
            let is_dir = super::delete::is_dir_entry(dst.as_fd(), &ent);
            let xrel = join_rel(rel, name);
            // Protected (excluded, unless --delete-excluded): kept. Excluded
            // under --delete-excluded: an extra even when the source has it
            // (the source's copy was not sent), as in rsync.
            let keep = if self.deleter.protected(&xrel, is_dir) {
                true
            } else if self.filter.excluded(&xrel, is_dir) {
                false
            } else {
                seen.contains(name)
            };
            if keep {
                continue;
            }
            extras.push(super::delete::Extra {
                rel: xrel,
                dir: is_dir,
            });
        }
        self.found.dest_entries.fetch_add(listed, Ordering::Relaxed);
        lock(&sh.out).extras.extend(extras);
    }

    /// `--delete`: remove the destination entry in the way of source entry
    /// `e` when it has another type (`want_dir`: the source's is a
    /// directory). True when nothing (any more) is in the way.
    fn clear_clash(&self, e: &Entry, want_dir: bool) -> bool {
        let Some(dst) = e.dst else { return true };
        let Ok(st) = rustix::fs::statat(dst, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
            return true;
        };
        if (FileType::from_raw_mode(st.st_mode) == FileType::Directory) == want_dir {
            return true;
        }
        match self.deleter.clear_way(dst.as_fd(), e.name, &e.rel) {
            Ok(true) => true,
            Ok(false) => {
                let msg = "could not make way for it: the destination entry of another type \
                           holds what --delete must keep (excluded, a mount point, or --max-delete)";
                self.fail(&e.rel, msg, want_dir);
                false
            }
            Err(err) => {
                self.fail_io(
                    &e.rel,
                    &format!("delete (type clash): {err}"),
                    &err,
                    want_dir,
                );
                false
            }
        }
    }

    fn entry(&self, sh: &Shared, job: &DirJob, e: &Entry, b: &mut Batcher) -> bool {
        let follow = if self.opts.dereference {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let st = match rustix::fs::statat(e.src, e.name, follow) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) if self.opts.dereference => {
                self.fail(&e.rel, "dangling symlink (not followed)", false);
                return true;
            }
            Err(rustix::io::Errno::NOENT) => {
                self.vanished(&e.rel, false);
                return true;
            }
            Err(err) => {
                let err = std::io::Error::from(err);
                self.fail_io(&e.rel, &err.to_string(), &err, false);
                return true;
            }
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if self.filter.excluded(&e.rel, ft == FileType::Directory) {
            let _ = self.events.send(WalkEvent::Excluded);
            return true;
        }
        if ft == FileType::Directory {
            self.dir_entry(sh, job, e, &st);
            return true;
        }
        self.file_entry(sh, job, e, &st, ft, b)
    }

    fn dir_entry(&self, sh: &Shared, job: &DirJob, e: &Entry, st: &Stat) {
        let id = (st.st_dev, st.st_ino);
        if self.opts.dereference && job.ancestors.contains(&id) {
            self.fail(
                &e.rel,
                "filesystem loop: a symlink leads back to an ancestor directory (skipped)",
                true,
            );
            return;
        }
        // Destination full: only count, but keep the attributes of a
        // directory that exists (it may hold files copied before).
        let counting = !self.opts.dry_run && self.found.no_space();
        let exists = counting && dest::peek_dir(e.dst, e.name);
        if self.opts.delete && !counting && !self.clear_clash(e, true) {
            return;
        }
        // As found, before make_dir gives the owner rwx to write inside:
        // what -i reports and the repair counts compare with this.
        let before = e
            .dst
            .and_then(|d| rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW).ok());
        let created = if self.opts.dry_run {
            !dest::peek_dir(e.dst, e.name)
        } else if counting {
            false
        } else {
            let Some(parent) = e.dst else { return };
            match dest::make_dir(parent, e.name) {
                Ok((_, created)) => created,
                Err(err) if is_no_space(&err) => {
                    self.found.no_space.store(true, Ordering::Relaxed);
                    let _ = self.events.send(WalkEvent::NoSpace {
                        path: self.paths.destination(&e.rel),
                        msg: format!("create directory: {err}"),
                    });
                    return self.dir_entry(sh, job, e, st);
                }
                Err(err) => {
                    // A destination-side failure: name the destination path.
                    let _ = self.events.send(WalkEvent::Failed {
                        path: self.paths.destination(&e.rel),
                        msg: format!("create directory: {err}"),
                        what: Failed::Dir,
                        kind: crate::stats::io_kind(&err),
                    });
                    return;
                }
            }
        };
        if created {
            let _ = self.events.send(WalkEvent::DirCreated);
        }
        if !counting {
            self.note_dir(e, st, created, before);
        }
        if !counting || exists {
            lock(&sh.out).dirs.push(DirMeta {
                rel: e.rel.clone(),
                attrs: Attrs::from_stat(st),
            });
        }
        if self.opts.one_file_system && st.st_dev != self.root_dev {
            // -x: the mount point is created, its contents are not walked.
            return;
        }
        let ancestors = if self.opts.dereference {
            let mut a = (*job.ancestors).clone();
            a.push(id);
            Arc::new(a)
        } else {
            Arc::clone(&job.ancestors)
        };
        if self.opts.files_from.is_some() {
            // --files-from: listed directories are not descended into.
            return;
        }
        self.jobs.push(Job::Dir(DirJob {
            rel: e.rel.clone(),
            dir: if created {
                DestDir::Created
            } else {
                DestDir::Existing
            },
            ancestors,
        }));
    }

    fn file_entry(
        &self,
        sh: &Shared,
        job: &DirJob,
        e: &Entry,
        st: &Stat,
        ft: FileType,
        b: &mut Batcher,
    ) -> bool {
        let size = if ft == FileType::RegularFile {
            st.st_size as u64
        } else {
            0
        };
        if !e.leader {
            if ft != FileType::Socket && self.foreign(st, e, job) {
                return true;
            }
            self.found.files.fetch_add(1, Ordering::Relaxed);
            self.found.bytes.fetch_add(size, Ordering::Relaxed);
        }
        if !self.quarantined.is_empty() && self.quarantined.contains(&e.rel) {
            let msg =
                "quarantined: it crashed workers in an earlier run (the log names the list to delete to retry)";
            self.fail_kind(&e.rel, msg, false, "quarantined");
            return true;
        }
        let rel = RelPath(e.rel.clone());
        if ft != FileType::Socket && !e.leader && self.hold_link(sh, st, &e.rel, job.dir) {
            return true;
        }
        let dst_st = match (job.dir, e.dst, &self.basis) {
            (DestDir::Existing, Some(d), Some(_)) => {
                rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW).ok()
            }
            _ => None,
        };
        // What a basis directory decides comes first, as in rsync.
        let (against, from) = match self.basis_decide(e, st, ft, dst_st.as_ref()) {
            basis::Decision::Done => return true,
            basis::Decision::Usual => (None, None),
            basis::Decision::Copy { note, from } => (Some(note), from),
        };
        if ft == FileType::RegularFile
            && job.dir == DestDir::Existing
            && (self.opts.checksum || self.opts.ignore_times || self.opts.dry_run)
            && self.newer_at_destination(e, st)
        {
            // -u keeps a newer destination file whatever else would compare
            // (-c, -I) and in a dry run too, as rsync does: one skip, counted
            // where the quick check counts its own.
            self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
            self.found.skipped_bytes.fetch_add(size, Ordering::Relaxed);
            return true;
        }
        // -c: the content decides, here, once, for every output.
        // (-c before -I, as in rsync's quick_check_ok: same content is
        // current even under -I.)
        let content_differs =
            if ft == FileType::RegularFile && self.opts.checksum && job.dir == DestDir::Existing {
                match self.compare_content(e, st) {
                    content::Content::Same => return true,
                    content::Content::Differs => true,
                    content::Content::Unknown => false,
                }
            } else {
                false
            };
        let unverified = content_differs
            || matches!(ft, FileType::RegularFile | FileType::Symlink) && self.unverified(job, e);
        let kind = match ft {
            FileType::RegularFile if self.current(job, e, st, unverified) => return true,
            FileType::RegularFile => TaskKind::File { size },
            FileType::Symlink if self.current(job, e, st, unverified) => return true,
            FileType::Symlink => TaskKind::Symlink,
            FileType::Fifo | FileType::BlockDevice | FileType::CharacterDevice
                if self.current(job, e, st, false) =>
            {
                return true
            }
            FileType::Fifo => TaskKind::Fifo,
            FileType::BlockDevice | FileType::CharacterDevice => TaskKind::Device,
            _ => {
                let _ = self.events.send(WalkEvent::Ignored {
                    path: self.paths.source(&rel.0),
                    msg: "socket not copied".into(),
                });
                return true;
            }
        };
        if self.opts.delete && job.dir == DestDir::Existing && !self.clear_clash(e, false) {
            return true;
        }
        if let (Some(dst), DestDir::Existing) = (e.dst, job.dir) {
            // --backup-dir: the inode about to be replaced is kept first;
            // if it cannot be, the entry is not replaced.
            if let Err(err) = self.deleter.back_up(dst.as_fd(), e.name, &e.rel) {
                self.fail(
                    &e.rel,
                    &format!("--backup-dir: {err} (not replaced)"),
                    false,
                );
                return true;
            }
        }
        match &against {
            _ if !self.changes.on() => {}
            None => self.note_copy(job, e, st, ft),
            Some(Some(m)) => self.note_against_basis(e, st, ft, m),
            // An exact match under --copy-dest: nothing to say (rsync).
            Some(None) => {}
        }
        if self.opts.dry_run {
            // -I copies every file, and -c has compared the content above:
            // size and mtime alone do not make such a file current.
            let by_stamps =
                !(ft == FileType::RegularFile && (self.opts.ignore_times || self.opts.checksum));
            let up_to_date = (by_stamps && self.data_current(e, st))
                || (ft == FileType::RegularFile && self.newer_at_destination(e, st));
            let _ = self.events.send(WalkEvent::Dry {
                kind,
                up_to_date,
                bytes: size,
            });
            return true;
        }
        if self.found.no_space() {
            self.found.unsent_files.fetch_add(1, Ordering::Relaxed);
            self.found.unsent_bytes.fetch_add(size, Ordering::Relaxed);
            return true;
        }
        let dir = if unverified {
            DestDir::Unverified
        } else {
            job.dir
        };
        let large = matches!(kind, TaskKind::File { .. })
            && self.opts.chunk_bytes.is_some_and(|c| size >= 2 * c);
        if large {
            lock(&sh.large).push(large::Large {
                rel,
                file: crate::copy::Stamp::of(st),
                dir,
            });
            return true;
        }
        let task = Task {
            rel,
            kind,
            dir,
            basis: from,
        };
        b.push(task, size)
    }

    /// Under MPI every name of a hard-linked inode is handled by one rank,
    /// chosen by its (dev, ino), so the names stay links whichever ranks
    /// walked them: an entry another rank owns goes there (and is counted
    /// there).
    fn foreign(&self, st: &Stat, e: &Entry, job: &DirJob) -> bool {
        if self.ranks < 2 || st.st_nlink < 2 {
            return false;
        }
        let owner = owner_of(st.st_dev, st.st_ino, self.ranks);
        if owner == self.rank {
            return false;
        }
        self.jobs.forward(
            owner,
            crate::protocol::PeerJob {
                rel: e.rel.clone(),
                created: job.dir == DestDir::Created,
                entry: true,
                ancestors: Vec::new(),
            },
        );
        true
    }

    /// A regular file or symlink up to date at the destination: the rsync
    /// quick check, done right here (one fstatat, and one readlinkat per
    /// side for a symlink; no IPC). A re-run where everything is current
    /// needs no worker at all.
    fn current(&self, job: &DirJob, e: &Entry, st: &Stat, unverified: bool) -> bool {
        let file = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
        // -c and -I concern regular files only (rsync's quick_check_ok):
        // a symlink, FIFO or device is current by its target or number.
        let checkable = !self.opts.dry_run
            && job.dir == DestDir::Existing
            && (!file || (!self.opts.checksum && !self.opts.ignore_times));
        // An unverified entry is never current by its size and times; a
        // newer one under -u was written by someone else, and is kept.
        if !checkable
            || !((!unverified && self.data_current(e, st))
                || (file && self.newer_at_destination(e, st)))
        {
            return false;
        }
        self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
        if file {
            self.found
                .skipped_bytes
                .fetch_add(st.st_size as u64, Ordering::Relaxed);
        }
        true
    }

    /// The destination's entry changed since an unclean earlier run began
    /// (`recovery`): its size and times prove nothing.
    fn unverified(&self, job: &DirJob, e: &Entry) -> bool {
        let (Some(since), Some(dst), DestDir::Existing) =
            (self.opts.unverified_since, e.dst, job.dir)
        else {
            return false;
        };
        rustix::fs::statat(dst, e.name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| super::recovery::unverified(&st, since))
    }

    /// `-u`: the destination has a regular file with a newer mtime.
    fn newer_at_destination(&self, e: &Entry, st: &Stat) -> bool {
        if !self.opts.update {
            return false;
        }
        let Some(d) = e
            .dst
            .and_then(|d| rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW).ok())
        else {
            return false;
        };
        let newer = FileType::from_raw_mode(d.st_mode) == FileType::RegularFile
            && (d.st_mtime, d.st_mtime_nsec) > (st.st_mtime, st.st_mtime_nsec);
        if newer {
            log::debug!(
                "{}: newer at the destination (-u), kept",
                escape_bytes(&e.rel)
            );
        }
        newer
    }

    /// Whether the destination's data is current (the quick check); if so,
    /// its metadata is compared and repaired (only compared in a dry run),
    /// and a repair is counted.
    fn data_current(&self, e: &Entry, st: &Stat) -> bool {
        let Some(dst_dir) = e.dst else {
            return false;
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        // A regular file's data is current by the quick check; a symlink's
        // "data" is its target, a FIFO's or device's its type and number:
        // for those the mtime is an attribute, set in place as rsync does
        // (`.L..t......`), not a reason to make the entry again.
        let (dst, target) = if ft == FileType::RegularFile {
            match crate::copy::attrs::current(dst_dir, e.name, st) {
                Some(d) => (d, None),
                None => return false,
            }
        } else {
            let Ok(d) = rustix::fs::statat(dst_dir, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
                return false;
            };
            if FileType::from_raw_mode(d.st_mode) != ft
                || (ft != FileType::Symlink && d.st_rdev != st.st_rdev)
            {
                return false;
            }
            let mut target = None;
            if ft == FileType::Symlink {
                let read = |dir| rustix::fs::readlinkat(dir, e.name, Vec::new()).ok();
                let t = read(e.src.as_fd());
                if t.is_none() || t != read(dst_dir.as_fd()) {
                    return false;
                }
                target = t;
            }
            (d, target)
        };
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: !self.opts.dry_run,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dst_dir.as_fd());
        let d = match crate::copy::repair::repair(dirs, e.name, (st, &dst), how) {
            Ok(d) => d,
            Err(err) => {
                self.fail_io(&e.rel, &format!("repair metadata: {err}"), &err, false);
                return true;
            }
        };
        let mut r = reasons(&d);
        r.mtime = ft != FileType::RegularFile
            && (dst.st_mtime, dst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec);
        if r.mtime && !self.opts.dry_run {
            if let Err(err) = Attrs::from_stat(st).set_times_at(dst_dir, e.name) {
                self.fail_io(&e.rel, &format!("set times: {err}"), &err, false);
                return true;
            }
        }
        if r.any() {
            self.found.repaired.fetch_add(1, Ordering::Relaxed);
            log::debug!("repaired {} ({d})", escape_bytes(&e.rel));
            self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::of(ft),
                action: Action::Repaired,
                reasons: r,
                size: None,
                target: target.as_ref().map(|t| t.as_bytes()),
            });
        }
        true
    }

    fn fail(&self, rel: &[u8], msg: &str, dir: bool) {
        self.fail_kind(rel, msg, dir, "other");
    }

    /// A failure caused by an OS error: its errno name is the kind.
    fn fail_io(&self, rel: &[u8], msg: &str, e: &std::io::Error, dir: bool) {
        self.fail_kind(rel, msg, dir, crate::stats::io_kind(e));
    }

    fn fail_kind(&self, rel: &[u8], msg: &str, dir: bool, kind: &'static str) {
        let _ = self.events.send(WalkEvent::Failed {
            path: self.paths.source(rel),
            msg: msg.to_string(),
            what: if dir { Failed::Dir } else { Failed::File },
            kind,
        });
    }

    /// A source entry listed by its directory but gone when looked at.
    fn vanished(&self, rel: &[u8], dir: bool) {
        let _ = self.events.send(WalkEvent::Failed {
            path: self.paths.source(rel),
            msg: "vanished since the walk (not copied)".into(),
            what: if dir {
                Failed::VanishedDir
            } else {
                Failed::Vanished
            },
            kind: "vanished",
        });
    }
}

/// One directory entry being handled.
pub(super) struct Entry<'a> {
    name: &'a [u8],
    rel: Vec<u8>,
    src: &'a OwnedFd,
    dst: Option<&'a OwnedFd>,
    /// The chosen name of a hard-linked inode (`links`): counted and
    /// held back already, handled now as a file.
    leader: bool,
    /// The basis directories' copies of the entry's directory.
    basis: &'a [Option<OwnedFd>],
    /// What the basis step did with it (for its hard-link group).
    outcome: std::cell::Cell<Option<basis::Outcome>>,
}

/// The itemize reasons of a metadata difference.
pub(super) fn reasons(d: &crate::copy::repair::Differences) -> Reasons {
    Reasons {
        perms: d.perms,
        owner: d.owner,
        group: d.group,
        acl: d.acl,
        xattrs: d.xattrs,
        ..Reasons::default()
    }
}

/// The destination is full (or over quota): one event for the whole run.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}
