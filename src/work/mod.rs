//! The contract between the walk and everything that consumes it: what a
//! walker thread hands the dispatcher (`Batch`, `WalkEvent`), the totals it
//! counts as it goes (`Found`), and what it leaves for the finish
//! (`WalkOutput`: directory attributes, hard links, extras), and the job
//! stack the walker threads and other MPI ranks share (`jobs`). Dispatch,
//! progress, the finish and the MPI ranks import this, not the walker.

mod jobs;

pub use jobs::{DirJob, Job, Jobs, PeerJob};

use crate::copy::attrs::Attrs;
use crate::copy::Stamp;
use crate::protocol::{DestDir, RelPath, Task, TaskKind};
use crate::stats::Failed;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A destination directory whose final mode and times are applied after
/// all its children are in place.
pub struct DirMeta {
    pub rel: Vec<u8>,
    pub attrs: Attrs,
}

impl DirMeta {
    /// How deep below the root (a top-level directory is 0): attributes
    /// are applied deepest first.
    pub fn depth(&self) -> usize {
        self.rel.iter().filter(|&&c| c == b'/').count()
    }
}

/// Threads for metadata round trips (the walk, directory attributes): more
/// than CPUs, so a latency-bound filesystem has several in flight (source
/// behind a 0.5 ms FUSE delay, 2,000 files, -j 16: 2.26 s with 2 threads,
/// 1.06 s with 8); on tmpfs 8 threads cost nothing measurable.
pub fn io_threads() -> usize {
    (crate::util::cpus() * 4).clamp(4, 16)
}

/// What the walker hands back when it is done.
#[derive(Default)]
pub struct WalkOutput {
    /// Deepest first, so applying them in order never touches a directory
    /// before its subdirectories.
    pub dirs: Vec<DirMeta>,
    /// The names of hard-linked inodes other than the one handled as a
    /// file (`links`).
    pub links: Vec<Link>,
    /// How many of `links` the finish pass will (re)make; the others are
    /// already names of the leader's inode, which stays.
    pub relinks: u64,
    /// `--delete`: destination entries without a source counterpart, in
    /// directories whose source was read completely.
    pub extras: Vec<Extra>,
}

/// An entry of the destination the source has no counterpart for
/// (`--delete`; under MPI gathered to rank 0, which deletes).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Extra {
    #[serde(with = "serde_bytes")]
    pub rel: Vec<u8>,
    pub dir: bool,
}

/// A name to make a hard link to its group's leader at the end.
pub struct Link {
    pub name: RelPath,
    pub leader: RelPath,
    /// A regular file's size and mtime in the source: the leader's copy
    /// must have them, or the leader was not placed by this run (it failed,
    /// or changed) and linking to its old copy would give this name data
    /// the source does not have.
    pub stamp: Option<crate::copy::Stamp>,
}

/// Events besides batches, drained by the dispatch loop.
pub enum WalkEvent {
    DirCreated,
    /// An entry could not be walked or created.
    Failed {
        path: String,
        msg: String,
        what: Failed,
        /// Machine-readable kind (errno name or a word).
        kind: &'static str,
    },
    /// An entry deliberately not copied (sockets).
    Ignored {
        path: String,
        msg: String,
    },
    /// An entry skipped by --exclude.
    Excluded,
    /// The destination is full (ENOSPC/EDQUOT creating a directory);
    /// `path` is the destination's.
    NoSpace {
        path: String,
        msg: String,
    },
    /// Dry run: what would happen to a non-directory entry.
    Dry {
        kind: TaskKind,
        up_to_date: bool,
        bytes: u64,
    },
}

/// Totals found so far (they grow while the walk runs).
#[derive(Default)]
pub struct Found {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Regular files the walker found up to date (never dispatched).
    pub skipped_files: AtomicU64,
    pub skipped_bytes: AtomicU64,
    /// The destination is full: the walk goes on only to count what is
    /// left, creating and dispatching nothing more.
    pub no_space: AtomicBool,
    /// Bytes of further names of an inode already counted (hard links).
    pub linked_bytes: AtomicU64,
    /// Entries whose data was current but whose metadata was repaired
    /// (in a dry run: would be).
    pub repaired: AtomicU64,
    /// Files (and their bytes) found after that, never dispatched.
    pub unsent_files: AtomicU64,
    pub unsent_bytes: AtomicU64,
    /// `--delete`: entries listed in the destination directories compared
    /// (`--max-delete-percent`'s whole).
    pub dest_entries: AtomicU64,
    /// `--link-dest`: entries (and bytes of regular files) hard-linked from
    /// a basis directory instead of copied (in a dry run: would be).
    pub basis_files: AtomicU64,
    pub basis_bytes: AtomicU64,
}

impl Found {
    pub fn no_space(&self) -> bool {
        self.no_space.load(Ordering::Relaxed)
    }
}

/// Tasks for the dispatcher, and the large files whose chunks are among
/// them or in later batches: registration travels in band, so the
/// dispatcher knows a file before it can send any of its chunks.
#[derive(Default)]
pub struct Batch {
    pub tasks: Vec<Task>,
    pub large: Vec<LargeFile>,
    /// Under MPI: the rank whose walk made these tasks, when it is not
    /// this one (its large files' chunks are counted in there).
    pub from: Option<u32>,
}

/// A large file the walk split into chunks: what the dispatcher needs to
/// count its chunks in and place it. The walk describes it; the
/// dispatcher's chunk registry keeps its own state about it.
pub struct LargeFile {
    pub rel: Vec<u8>,
    /// The shared, pre-sized temp every chunk writes into (a name in the
    /// destination directory).
    pub temp: Vec<u8>,
    /// The source version the walk saw.
    pub file: Stamp,
    /// Whether this run created its destination directory (kept for the
    /// whole-file retry when the source changes mid-copy).
    pub dir: DestDir,
    /// How many chunks it was cut into.
    pub parts: u32,
}
