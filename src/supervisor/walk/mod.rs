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
mod batcher;
use batcher::Batcher;
pub use list::sends_root;
mod basis_notes;
mod check;
mod content;
mod dest;
mod entry;
mod extras;
mod itemize;
mod large;
mod links;
mod list;
mod ownership;

use crate::work::{Batch, DirMeta, Found, Link, WalkEvent, WalkOutput};
use crate::work::{DirJob, Job, Jobs};
pub use basis::Bases;

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

impl Options {
    /// The walk's options: the settings, sized by the plan. `unverified_since`:
    /// what an unclean earlier run left unverified (`recovery`).
    pub fn new(
        s: &Settings,
        plan: &super::plan::Plan,
        unverified_since: Option<super::recovery::Moment>,
    ) -> Self {
        // One worker gains nothing from splitting, unless other ranks'
        // workers write chunks too; --verify hashes whole files.
        let split = (plan.workers > 1 || plan.ranks > 1) && !s.verify;
        Options {
            dry_run: s.dry_run,
            ignore_times: s.ignore_times,
            dereference: s.dereference,
            chunk_bytes: split.then_some(s.chunk_bytes),
            parallel: plan.workers.min(plan.cpus),
            threads: plan.walk_threads,
            batch_files: s.batch_files,
            batch_bytes: s.batch_bytes,
            owner: plan.preserve.owner,
            delete: s.delete,
            one_file_system: s.one_file_system,
            update: s.update,
            checksum: s.checksum,
            files_from: s.files_from.clone(),
            may_clone: s.reflink != crate::cli::ReflinkArg::Never,
            unverified_since,
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

impl Walker {
    /// Long because it starts, feeds and joins the walker threads and places the large files, in that order.
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
        // With --files-from the root is itemized only when the list sends
        // it, as rsync's does (`list::sends_root`).
        let root_listed = self
            .opts
            .files_from
            .as_ref()
            .is_none_or(|l| list::sends_root(l));
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
    /// Long because one getdents loop handles every entry kind with the directory's descriptor held once.
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
