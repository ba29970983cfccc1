//! The messages of the distributed walk between MPI ranks, encoded with
//! bincode and never seen by workers.

use crate::protocol::{Outcome, Task};
use serde::{Deserialize, Serialize};

pub use crate::work::PeerJob;

/// Messages of the distributed walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// An idle rank asks for work; `hungry`: its workers have nothing
    /// queued either, so copy tasks are welcome too.
    Steal { hungry: bool },
    /// The answer to `Steal` (possibly empty): directories to walk, or,
    /// when there are none to give and the thief is hungry, copy tasks
    /// this rank walked but its workers have not started.
    Work {
        jobs: Vec<PeerJob>,
        tasks: Vec<Task>,
    },
    /// Hard-linked entries for the rank that owns their inodes.
    Entries(Vec<PeerJob>),
    /// Chunks of the sender's large files for the receiver to copy (their
    /// outcomes go back in `ChunkDone`).
    Chunks(Vec<Task>),
    /// Rank 0 asks every rank for its state (termination wave `n`).
    Probe(u64),
    /// A rank's state: idle, and how many job-carrying messages it has
    /// sent and received since the start.
    Report {
        wave: u64,
        idle: bool,
        sent: u64,
        received: u64,
    },
    /// The outcome of a chunk of the receiver's large file, copied here.
    ChunkDone { task: Task, outcome: Outcome },
    /// A rank's progress for rank 0's line (files found, files done,
    /// bytes copied); carries no work.
    Progress { found: u64, done: u64, bytes: u64 },
    /// The phase (walk, then copy) is over everywhere.
    Done,
}
