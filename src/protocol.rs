//! Every type that crosses the process boundary between supervisor and
//! worker: IPC messages and the shared-memory words `Position` and
//! `Budget`. (The messages between MPI ranks are the cluster's own,
//! `cluster::mpi::msg`.)
//!
//! Both sides are the same binary, so the types always match; `PROTOCOL_VERSION`
//! still guards against a worker executable replaced mid-run. Paths travel as raw
//! bytes (`RelPath`) because file names need not be UTF-8.

use ipc_channel::ipc::{IpcSender, IpcSharedMemory};
use serde::{Deserialize, Serialize};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped whenever a message type changes shape.
pub const PROTOCOL_VERSION: u32 = 14;

/// Environment variable the supervisor sets on each worker: its own pid, so
/// a worker whose parent died before PR_SET_PDEATHSIG was armed exits.
pub const PARENT_ENV: &str = "PCOPY_SUPERVISOR_PID";

/// A path as raw bytes, relative to the source/destination roots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelPath(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl RelPath {
    pub fn from_path(p: &Path) -> Self {
        RelPath(p.as_os_str().as_bytes().to_vec())
    }
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }
    pub fn to_path_buf(&self) -> PathBuf {
        PathBuf::from(OsString::from_vec(self.0.clone()))
    }
    /// Human-readable form for messages: invalid UTF-8 is escaped, never lost
    /// silently (the bytes on disk are untouched).
    pub fn display(&self) -> String {
        crate::util::escape_bytes(&self.0)
    }
}

/// A timestamp as (seconds, nanoseconds): `FileTime` has no serde support.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

/// What the walker saw, so the worker can notice a change since the walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// A regular file; `size` is the walk's `lstat` size.
    File { size: u64 },
    /// A symbolic link, copied verbatim.
    Symlink,
    /// A FIFO, recreated with mknod, never opened.
    Fifo,
    /// A character or block device (recreated only when privileged).
    Device,
    /// Bytes `offset..offset+len` of a large file, written into the shared
    /// temp `temp` (a name in the same destination directory) that the
    /// supervisor created and will place once every chunk is in. `file_size`
    /// and `mtime` are what the walk saw; a source that differs is "changed".
    Chunk {
        offset: u64,
        len: u64,
        file_size: u64,
        mtime: Time,
        temp: RelPath,
    },
}

/// One entry for a worker to place at the destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Path relative to the source root (and the destination root).
    pub rel: RelPath,
    pub kind: TaskKind,
    /// Whether this run created the entry's destination directory (a fact;
    /// the worker derives its policies from it). Kept on retried and
    /// large-file tasks.
    pub dir: DestDir,
    /// `--copy-dest` (or a `--link-dest` link the filesystem refused): the
    /// data may be read from a basis directory's entry of the same path,
    /// which the walk found holding the source's data.
    pub basis: Option<FromBasis>,
}

/// A basis entry a worker may read a file's data from: basis `index` (of
/// `WorkerInit::bases`), as the walk saw it. A basis entry that no longer
/// has this size and mtime is not used (the source is read instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromBasis {
    pub index: u16,
    pub size: u64,
    pub mtime: Time,
}

// The copier's own vocabulary crosses the wire as it is (`DestDir` here,
// its `Options`, with `Reflink` and `Preserve`, in `WorkerInit`): no
// look-alike types to map between (plain values: copy/ still knows nothing
// of IPC).
pub use crate::copy::DestDir;

/// The run's root directories, as descriptors a worker inherits at spawn
/// (their numbers in the worker), with the (device, inode) the supervisor
/// validated. A worker never opens a root by path: a root renamed and
/// replaced by a symlink mid-run cannot redirect a respawned worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFds {
    pub src_fd: i32,
    pub dst_fd: i32,
    pub src_id: (u64, u64),
    pub dst_id: (u64, u64),
}

/// The settings a worker needs; sent once in `ToWorker::Init`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInit {
    pub worker: u32,
    pub roots: RootFds,
    /// The basis directories (`--copy-dest` ...), inherited like the roots:
    /// descriptor numbers and the (device, inode) each must have.
    pub bases: Vec<(i32, (u64, u64))>,
    /// What to preserve and how carefully: the copier's own options,
    /// as they are (`copy::Options`: run id, rank, flags, ownership,
    /// `--reflink`).
    pub copy: crate::copy::Options,
    /// `--bwlimit`: bytes per second for the whole run (0: none), drawn
    /// from the shared `Budget` sent with `Init`.
    pub bwlimit: u64,
    /// Highest log level the worker forwards.
    pub log_level: log::LevelFilter,
}

/// The first 8 bytes of a shared mapping as one atomic word (`Position`,
/// `Budget`).
fn shared_word(shm: &IpcSharedMemory) -> Option<&AtomicU64> {
    let bytes: &[u8] = shm;
    if bytes.len() < 8 {
        return None;
    }
    // SAFETY: the mapping is page-aligned, at least 8 bytes, lives as long
    // as `shm`, and is only ever accessed through this atomic.
    Some(unsafe { AtomicU64::from_ptr(bytes.as_ptr() as *mut u64) })
}

/// Which task a worker is on, in memory shared with the supervisor: one
/// atomic word the worker stores before each task (no message per file), so
/// after a crash the supervisor knows exactly which task was in progress even
/// though outcomes are reported in batches.
#[derive(Debug, Serialize, Deserialize)]
pub struct Position(IpcSharedMemory);

impl Position {
    pub fn new() -> Self {
        Position(IpcSharedMemory::from_byte(0, 8))
    }

    fn word(&self) -> Option<&AtomicU64> {
        shared_word(&self.0)
    }

    /// Worker side: about to run task `index` of batch `batch`.
    pub fn set(&self, batch: u64, index: usize) {
        if let Some(w) = self.word() {
            w.store(
                ((batch + 1) << 24) | (index as u64 & 0xFF_FFFF),
                Ordering::Release,
            );
        }
    }

    /// Supervisor side: the last (batch, index) the worker started.
    pub fn get(&self) -> Option<(u64, usize)> {
        let v = self.word()?.load(Ordering::Acquire);
        (v != 0).then(|| ((v >> 24) - 1, (v & 0xFF_FFFF) as usize))
    }

    pub fn share(&self) -> Self {
        Position(self.0.clone())
    }
}

impl Default for Position {
    fn default() -> Self {
        Self::new()
    }
}

/// The run's one I/O budget (`--bwlimit`), in memory shared by the
/// supervisor and every worker: a single atomic word holding the
/// "theoretical arrival time" of the generic cell rate algorithm, in
/// nanoseconds of CLOCK_MONOTONIC (the same clock in every process). Each
/// worker charges the bytes it wrote and sleeps off any debt, so N workers
/// together keep to the limit, never N times it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Budget(IpcSharedMemory);

impl Budget {
    /// How far ahead of the rate a burst may run: a few hundred ms.
    const BURST_NS: u64 = 200_000_000;

    pub fn new() -> Self {
        Budget(IpcSharedMemory::from_byte(0, 8))
    }

    fn word(&self) -> Option<&AtomicU64> {
        shared_word(&self.0)
    }

    pub fn share(&self) -> Self {
        Budget(self.0.clone())
    }

    /// Charge `bytes` at `rate` bytes per second (0: no limit); returns how
    /// long the caller must wait to stay within the shared budget.
    pub fn charge(&self, bytes: u64, rate: u64) -> std::time::Duration {
        self.charge_at(bytes, rate, monotonic_ns())
    }

    /// `charge` at the moment `now` (nanoseconds of CLOCK_MONOTONIC): the
    /// arithmetic apart from the clock, so it can be checked exactly.
    fn charge_at(&self, bytes: u64, rate: u64, now: u64) -> std::time::Duration {
        let Some(tat) = self.word().filter(|_| rate > 0 && bytes > 0) else {
            return std::time::Duration::ZERO;
        };
        let cost = (u128::from(bytes) * 1_000_000_000 / u128::from(rate)) as u64;
        let mut old = tat.load(Ordering::Acquire);
        loop {
            let new = old.max(now) + cost;
            match tat.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let wait = new.saturating_sub(now + Self::BURST_NS);
                    return std::time::Duration::from_nanos(wait);
                }
                Err(seen) => old = seen,
            }
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of a run.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// Supervisor to worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Init(WorkerInit, Position, Budget),
    Batch {
        id: u64,
        tasks: Vec<Task>,
    },
    /// Finish the current file (or discard its temp) and exit.
    Shutdown,
}

/// Why an entry failed, as a plain enum (io::Error is not serde).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    /// The source changed (size/mtime) while being copied, after retries.
    Changed,
    /// The destination has an entry of another type in the way.
    TypeClash,
    NoSpace,
    Unsupported,
    /// `--verify` found the copy differs from the source.
    VerifyMismatch,
    Other,
}

/// The result of one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Placed at its final name; `bytes` of file data written; `verified`
    /// when `--verify` re-read both and the checksums matched.
    Copied {
        bytes: u64,
        verified: bool,
        /// Cloned (`--reflink`): extents shared, no bytes moved.
        cloned: bool,
        /// Still growing: `bytes` is the prefix it had when first read.
        grew: bool,
    },
    /// Destination already up to date (size and mtime match).
    Skipped { bytes: u64, repaired: bool },
    /// Intentionally not copied (e.g. a socket); the message says why.
    Ignored { msg: String },
    Failed {
        kind: ErrorKind,
        msg: String,
        /// The failing operation was on the destination side: messages name
        /// the destination path, not the source.
        dst: bool,
        /// The OS error number behind it, 0 if none (for the JSON `kind`).
        errno: i32,
    },
}

/// Worker to supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// First message: the worker's task channel travels inside it, so the
    /// supervisor holds the only sender and the worker the only receiver.
    Hello {
        pid: u32,
        version: u32,
        tasks: IpcSender<ToWorker>,
    },
    /// Outcomes for the next `outcomes.len()` tasks of batch `batch`, in task
    /// order. `finished` means the batch is complete. Tasks are processed in
    /// order, so after a crash the first unreported task is the culprit.
    Report {
        batch: u64,
        outcomes: Vec<Outcome>,
        finished: bool,
    },
    /// Heartbeat while a large file is in progress: data bytes written since
    /// the last Progress/Report.
    Progress { bytes: u64 },
    /// A forwarded log record (only the supervisor writes the log file).
    Log { level: log::Level, msg: String },
    /// Sent once by a worker that cannot continue (e.g. bad Init).
    Fatal { msg: String },
}

/// Sent by the supervisor itself to unblock a handshake `accept()` whose
/// worker died before connecting.
pub fn abort_hello() -> FromWorker {
    FromWorker::Fatal {
        msg: "handshake aborted".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_channel::ipc;

    #[test]
    fn messages_round_trip_through_a_real_channel() {
        let (tx, rx) = ipc::channel::<ToWorker>().unwrap();
        let name = RelPath(b"dir/\xff\xfe name\n".to_vec());
        let task = Task {
            rel: name.clone(),
            kind: TaskKind::File { size: 42 },
            dir: DestDir::Created,
            basis: Some(FromBasis {
                index: 1,
                size: 42,
                mtime: Time { secs: -1, nanos: 5 },
            }),
        };
        tx.send(ToWorker::Batch {
            id: 7,
            tasks: vec![task.clone()],
        })
        .unwrap();
        match rx.recv().unwrap() {
            ToWorker::Batch { id, tasks } => {
                assert_eq!(id, 7);
                assert_eq!(tasks, vec![task]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let (tx2, rx2) = ipc::channel::<FromWorker>().unwrap();
        tx2.send(FromWorker::Report {
            batch: 3,
            outcomes: vec![
                Outcome::Copied {
                    bytes: 9,
                    verified: false,
                    cloned: false,
                    grew: true,
                },
                Outcome::Failed {
                    kind: ErrorKind::Changed,
                    msg: "x".into(),
                    dst: false,
                    errno: 0,
                },
            ],
            finished: true,
        })
        .unwrap();
        match rx2.recv().unwrap() {
            FromWorker::Report {
                batch,
                outcomes,
                finished,
            } => {
                assert_eq!((batch, outcomes.len(), finished), (3, 2, true));
                assert_eq!(
                    outcomes[0],
                    Outcome::Copied {
                        bytes: 9,
                        verified: false,
                        cloned: false,
                        grew: true,
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn position_is_shared_through_a_real_channel() {
        let mine = Position::new();
        assert_eq!(mine.get(), None);
        let (tx, rx) = ipc::channel::<Position>().unwrap();
        tx.send(mine.share()).unwrap();
        let theirs = rx.recv().unwrap();
        theirs.set(41, 7);
        assert_eq!(mine.get(), Some((41, 7)));
        theirs.set(0, 0);
        assert_eq!(mine.get(), Some((0, 0)));
    }

    #[test]
    fn the_budget_is_shared_and_keeps_the_rate() {
        let mine = Budget::new();
        let (tx, rx) = ipc::channel::<Budget>().unwrap();
        tx.send(mine.share()).unwrap();
        let theirs = rx.recv().unwrap();
        // 10 MB/s: the first 2 MB ride the 200 ms burst, the next 1 MB,
        // charged through the other mapping at the same moment, must wait
        // exactly 100 ms; 100 ms later the debt is paid.
        let ms = std::time::Duration::from_millis;
        let t0 = 5_000_000_000;
        assert_eq!(mine.charge_at(2_000_000, 10_000_000, t0), ms(0));
        assert_eq!(theirs.charge_at(1_000_000, 10_000_000, t0), ms(100));
        assert_eq!(
            mine.charge_at(1_000_000, 10_000_000, t0 + 300_000_000),
            ms(0)
        );
        assert_eq!(
            mine.charge(1_000_000, 0),
            std::time::Duration::ZERO,
            "no limit"
        );
    }

    #[test]
    fn non_utf8_paths_keep_their_bytes() {
        let p = RelPath(b"a/\xff".to_vec());
        assert_eq!(RelPath::from_path(p.as_path()), p);
        assert_eq!(p.display(), "a/\\xff");
    }
}
