//! Everything that calls MPI (feature `mpi`). One thread at a time calls it
//! (`MPI_THREAD_SERIALIZED`): the walk's peer thread while the walk runs,
//! then the supervisor's thread for the collectives of start and finish.
//! Payloads are serde types encoded with bincode.

mod msg;
pub mod quarantine;
mod walk;

use super::{Counts, DispatchSide, Peered};
use crate::error::{Error, Result};
use crate::protocol::{Outcome, Task};
use crate::work::{Batch, Jobs};
use crossbeam_channel::{Receiver, Sender};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Messages of the walk.
const TAG_WALK: i32 = 11;
/// Point-to-point gathers to rank 0 (summary, deletions, quarantine).
const TAG_GATHER: i32 = 12;

pub struct Mpi {
    /// Finalizes MPI when dropped (at the end of `supervisor::run`).
    _universe: mpi::environment::Universe,
    rank: u32,
    size: u32,
}

/// MPI for this rank, or None when the launcher started only this one
/// (MPI's start-up, 0.1-0.3 s measured here, would be its only effect).
pub fn init() -> Result<Option<Mpi>> {
    if launched_ranks() == Some(1) {
        return Ok(None);
    }
    let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or_else(|| Error::Fatal("--mpi: MPI was already initialised".into()))?;
    if matches!(threading, Threading::Single | Threading::Funneled) {
        return Err(Error::Fatal(format!(
            "--mpi: the MPI library offers thread level {threading:?}; pcopy needs MPI_THREAD_SERIALIZED"
        )));
    }
    let world = universe.world();
    Ok(Some(Mpi {
        rank: world.rank() as u32,
        size: world.size() as u32,
        _universe: universe,
    }))
}

/// How many ranks the launcher started, when it says so (Open MPI's
/// mpirun, MPICH's hydra, Slurm's srun); `Some(1)` also when no launcher
/// started this process at all (MPI would make it a world of one).
fn launched_ranks() -> Option<u32> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if let Some(n) = var("OMPI_COMM_WORLD_SIZE").or_else(|| var("PMI_SIZE")) {
        return Some(n);
    }
    if var("SLURM_PROCID").is_some() {
        return var("SLURM_STEP_NUM_TASKS").or_else(|| var("SLURM_NTASKS"));
    }
    let launched = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    (!launched).then_some(1)
}

/// Say why, then end the whole job. For what one rank cannot get past on
/// its own: returning an error would leave the others waiting for it in
/// the next message or collective for ever.
fn end_job(why: &str, code: i32) -> ! {
    log::error!("{why}");
    log::logger().flush();
    SimpleCommunicator::world().abort(code)
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Plain data into a Vec: a bug if it ever fails.
    bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap_or_else(|e| {
        end_job(
            &format!("--mpi: cannot encode a message: {e}"),
            crate::error::ExitStatus::Internal.code().into(),
        )
    })
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| Error::Fatal(format!("--mpi: undecodable message from another rank: {e}")))
}

impl Mpi {
    pub fn rank(&self) -> u32 {
        self.rank
    }
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Say why, then end the whole job (`end_job`).
    pub fn end_job(&self, why: &str, code: i32) -> ! {
        end_job(why, code)
    }

    fn world(&self) -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    pub fn barrier(&self) {
        self.world().barrier();
    }

    pub fn max(&self, v: u64) -> u64 {
        let mut out = 0u64;
        self.world()
            .all_reduce_into(&v, &mut out, mpi::collective::SystemOperation::max());
        out
    }

    /// Rank 0's bytes to every rank.
    pub fn broadcast(&self, mine: Vec<u8>) -> Vec<u8> {
        let world = self.world();
        let root = world.process_at_rank(0);
        let mut len = mine.len() as u64;
        root.broadcast_into(&mut len);
        let mut buf = if self.rank == 0 {
            mine
        } else {
            vec![0u8; len as usize]
        };
        if len > 0 {
            root.broadcast_into(&mut buf[..]);
        }
        buf
    }

    /// Every rank's bytes at rank 0 (rank 0's first); empty elsewhere.
    pub fn gather(&self, mine: Vec<u8>) -> Vec<Vec<u8>> {
        let world = self.world();
        if self.rank != 0 {
            world
                .process_at_rank(0)
                .send_with_tag(&mine[..], TAG_GATHER);
            return Vec::new();
        }
        let mut all = vec![mine];
        for r in 1..self.size as i32 {
            let (v, _) = world
                .process_at_rank(r)
                .receive_vec_with_tag::<u8>(TAG_GATHER);
            all.push(v);
        }
        all
    }

    pub fn gather_t<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        v: &T,
    ) -> Result<Vec<T>> {
        let all = self.gather(encode(v)).iter().map(|b| decode(b)).collect();
        self.or_abort(all)
    }

    pub fn broadcast_t<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        v: &T,
    ) -> Result<T> {
        let v = decode(&self.broadcast(encode(v)));
        self.or_abort(v)
    }

    /// A collective's data that cannot be decoded ends the job (`end_job`).
    fn or_abort<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            let why = format!("{e} (are all ranks the same pcopy build?)");
            end_job(&why, crate::error::ExitStatus::Fatal.code().into());
        }
        r
    }

    /// The walk's peer thread: answers other ranks, steals when idle,
    /// forwards hard-linked entries, and (rank 0) detects the end.
    pub fn spawn_walk(
        &self,
        jobs: Arc<Jobs>,
        batches: (Sender<Batch>, Receiver<Batch>),
        show_progress: bool,
    ) -> (std::thread::JoinHandle<Peered>, DispatchSide) {
        let (rank, size) = (self.rank, self.size);
        let (dispatch, link) = link(Arc::clone(&jobs.fed), show_progress);
        let h = std::thread::spawn(move || walk::Walk::new(rank, size, jobs, batches, link).run());
        (h, dispatch)
    }
}

/// The peer thread's end of that link.
pub struct PeerSide {
    pub outcomes_out: Receiver<(u32, Task, Outcome)>,
    pub outcomes_in: Sender<(Task, Outcome)>,
    pub state: Arc<AtomicU64>,
    pub fed: Arc<AtomicU64>,
    pub counts: Arc<Counts>,
    /// Rank 0 prints the job's progress line on stderr.
    pub show_progress: bool,
}

impl PeerSide {
    /// The dispatcher had nothing to do, and no batch was queued since.
    pub fn dispatcher_idle(&self) -> bool {
        let s = self.state.load(Ordering::Acquire);
        s & 1 == 1 && s >> 1 == self.fed.load(Ordering::Acquire)
    }
}

/// A linked pair around the channel's count of queued batches (`fed`).
/// Until the dispatcher answers it counts as idle with nothing queued: a
/// dry run has no dispatcher, and any batch queued makes that stale.
pub fn link(fed: Arc<AtomicU64>, show_progress: bool) -> (DispatchSide, PeerSide) {
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    let (in_tx, in_rx) = crossbeam_channel::unbounded();
    let state = Arc::new(AtomicU64::new(1));
    let counts = Arc::new(Counts::default());
    (
        DispatchSide {
            outcomes_out: out_tx,
            outcomes_in: in_rx,
            state: Arc::clone(&state),
            fed: Arc::clone(&fed),
            counts: Arc::clone(&counts),
        },
        PeerSide {
            outcomes_out: out_rx,
            outcomes_in: in_tx,
            state,
            fed,
            counts,
            show_progress,
        },
    )
}
