//! The vocabulary of a placement, as the worker hands it in and gets it
//! back: the run's options, one entry's job (what it is, where its data
//! may come from, whether its directory is new) and what placing it did.
//! Plain data: what crosses between the worker's translation of a task and
//! the copier.

use super::{data, Stamp};

/// Whether this run created the directory an entry goes into: a fact the
/// walker knows. Every policy that depends on it is derived in `Plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// What a run keeps of each entry's ownership, decided once for the run
/// (`Preserve::for_this_process`) and carried to the walk's comparison,
/// the copier and the directory pass, so all three agree (uutils cp's
/// `Attributes`). Data, mode, times, ACLs and xattrs are always kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Preserve {
    /// uid and gid: only root can give a file away, so only root keeps
    /// them (as rsync -a does).
    pub owner: bool,
}

impl Preserve {
    pub fn for_this_process() -> Self {
        Preserve {
            owner: super::attrs::is_root(),
        }
    }
}

/// What to preserve and how carefully; the same for every entry of a run.
/// Workers get it as it is (`WorkerInit.copy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Unique per run; part of every temporary file name.
    pub run_id: u64,
    /// Copy even when size and mtime match (`--ignore-times`).
    pub ignore_times: bool,
    /// Ownership kept (decided once for the run, by the supervisor).
    pub preserve: Preserve,
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
    /// This process's MPI rank (0 without MPI): part of every temp name,
    /// so workers on two nodes with the same pid never pick the same one.
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
