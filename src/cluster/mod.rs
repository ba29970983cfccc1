//! The supervisor's one view of the other ranks of an MPI job (`--mpi`),
//! beside the supervisor: of the run's parts it knows only the work
//! contract (`work`) and the progress displays (rank 0's job line). Without `--mpi` (or without
//! the `mpi` feature) it is a single rank and every call does nothing; all
//! MPI calls live in `cluster/mpi/`, and a build without the feature has
//! `single.rs`'s value-less stand-in in its place.

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(not(feature = "mpi"))]
#[path = "single.rs"]
mod mpi;

use crate::error::{Error, Result};
use crate::protocol::{Outcome, Task};
use crate::stats::Summary;
use crate::work::{Batch, Jobs};
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What one rank did for the others during the walk (logged, and summed
/// into the shares report of the tests).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Peered {
    pub steals: u64,
    pub jobs_taken: u64,
    pub jobs_given: u64,
    /// Copy tasks taken from and given to other ranks' queues.
    pub tasks_taken: u64,
    pub tasks_given: u64,
    /// Chunks of this rank's large files sent to others, and of others'
    /// files received.
    pub chunks_sent: u64,
    pub chunks_received: u64,
    pub entries_sent: u64,
    pub entries_received: u64,
}

/// The dispatcher's end of its link to the peer thread (MPI): chunks of
/// large files may be copied by one rank and counted in by another.
pub struct DispatchSide {
    /// Outcomes of other ranks' chunks copied here: (owner, task, outcome).
    pub outcomes_out: Sender<(u32, Task, Outcome)>,
    /// Outcomes of this rank's chunks copied elsewhere.
    pub outcomes_in: Receiver<(Task, Outcome)>,
    /// `fed << 1 | idle`, written by the dispatcher every round: whether it
    /// had nothing left to do, and how many batches the peer had queued
    /// when it decided (a batch queued since makes the answer stale).
    pub state: Arc<AtomicU64>,
    /// Batches queued into the channel so far (by the walker or the peer,
    /// counted after each is queued): `work::Jobs::fed`.
    pub fed: Arc<AtomicU64>,
    /// This rank's progress, for rank 0's job-wide line.
    pub counts: Arc<Counts>,
}

/// One rank's progress: files found, files done (copied, up to date or
/// failed), bytes copied.
#[derive(Default)]
pub struct Counts {
    pub found: AtomicU64,
    pub done: AtomicU64,
    pub bytes: AtomicU64,
}

/// Rank 0's verdict at start, sent to every rank.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Verdict {
    Go {
        run_id: u64,
        /// The destination root did not exist before this run.
        created: bool,
        /// Entries quarantined by earlier runs (the state file).
        quarantined: Vec<serde_bytes::ByteBuf>,
        /// An earlier run did not end cleanly: what changed since this
        /// moment is copied again (`recovery`).
        unverified_since: Option<(i64, i64)>,
    },
    /// Rank 0 refused (and said why); `locked` picks the exit code.
    Refused { locked: bool },
}

pub struct Cluster {
    /// MPI, initialised only when there are other ranks to talk to.
    mpi: Option<mpi::Mpi>,
    /// `--mpi` was given (even if this is the only rank).
    asked: bool,
    /// Every rank returned the same refusal from `start`: each exits on its
    /// own, no rank needs to end the job.
    agreed: std::cell::Cell<bool>,
    rank: u32,
    size: u32,
}

impl Cluster {
    pub fn join(want: bool) -> Result<Self> {
        let single = Cluster {
            mpi: None,
            asked: want,
            agreed: Default::default(),
            rank: 0,
            size: 1,
        };
        if !want {
            return Ok(single);
        }
        // One rank has nobody to talk to: no MPI then.
        let Some(m) = mpi::init()? else {
            return Ok(single);
        };
        Ok(Cluster {
            asked: true,
            agreed: Default::default(),
            rank: m.rank(),
            size: m.size(),
            mpi: Some(m),
        })
    }

    pub fn rank(&self) -> u32 {
        self.rank
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    /// Under `--mpi`, even with one rank.
    pub fn mpi(&self) -> bool {
        self.asked
    }

    /// Rank 0 decides (`first`: validate, create and lock the destination);
    /// every rank learns the verdict, the others then open the roots
    /// (`then`). A refusal is printed once, by the rank that refused; the
    /// others exit with the same code and say nothing.
    pub fn start<R>(
        &self,
        first: impl FnOnce() -> Result<(R, Verdict)>,
        then: impl FnOnce(&Verdict) -> Result<R>,
    ) -> Result<(R, Verdict)> {
        if let Some(m) = &self.mpi {
            let mine = if self.rank == 0 { Some(first()) } else { None };
            let verdict = match &mine {
                Some(Ok((_, v))) => v.clone(),
                Some(Err(e)) => Verdict::Refused {
                    locked: matches!(e, Error::Locked(_)),
                },
                None => Verdict::Refused { locked: false },
            };
            let verdict: Verdict = m.broadcast_t(&verdict)?;
            if let Verdict::Refused { locked } = verdict {
                self.agreed.set(true);
                return match mine {
                    Some(Err(e)) => Err(e),
                    _ => Err(Error::Elsewhere { locked }),
                };
            }
            let mine = match mine {
                Some(r) => r.map(|(r, _)| r),
                None => then(&verdict),
            };
            // Every rank must have its roots, or none goes on.
            let failed = m.max(u64::from(mine.is_err()));
            self.agreed.set(failed != 0);
            return match (mine, failed) {
                (Ok(r), 0) => Ok((r, verdict)),
                (Ok(_), _) => Err(Error::Elsewhere { locked: false }),
                (Err(e), _) => Err(e),
            };
        }
        first()
    }

    /// The walk's peer thread (only with other ranks to talk to).
    /// `batches`: this rank's batch channel, both ends. Also returns the
    /// dispatcher's end of the link, for `dispatch::Links::peer`. `show_progress`:
    /// rank 0 prints a plain progress line for the job every 5 s.
    #[allow(clippy::type_complexity)]
    pub fn spawn_walk(
        &self,
        jobs: &Arc<Jobs>,
        batches: (&Sender<Batch>, &Receiver<Batch>),
        show_progress: bool,
    ) -> Option<(std::thread::JoinHandle<Peered>, DispatchSide)> {
        if let Some(m) = self.mpi.as_ref().filter(|_| self.size > 1) {
            let (tx, rx) = batches;
            let show = show_progress && self.rank == 0;
            let (h, dispatch) = m.spawn_walk(Arc::clone(jobs), (tx.clone(), rx.clone()), show);
            return Some((h, dispatch));
        }
        None
    }

    pub fn barrier(&self) {
        if let Some(m) = &self.mpi {
            m.barrier();
        }
    }

    /// The largest `v` over all ranks.
    pub fn max(&self, v: u64) -> u64 {
        if let Some(m) = &self.mpi {
            return m.max(v);
        }
        v
    }

    /// Every rank's `v` at rank 0 (its own first); empty on the others.
    pub fn gather<T: Serialize + serde::de::DeserializeOwned>(&self, v: T) -> Result<Vec<T>> {
        if let Some(m) = &self.mpi {
            return m.gather_t(&v);
        }
        Ok(vec![v])
    }

    /// Rank 0's `v` on every rank.
    pub fn broadcast<T: Serialize + serde::de::DeserializeOwned>(&self, v: T) -> Result<T> {
        if let Some(m) = &self.mpi {
            return m.broadcast_t(&v);
        }
        Ok(v)
    }

    /// Sum every rank's summary into rank 0's; the others keep theirs.
    pub fn reduce(&self, summary: &mut Summary) -> Result<()> {
        if !self.mpi() {
            return Ok(());
        }
        let all = self.gather(summary.clone())?;
        for other in all.into_iter().skip(1) {
            summary.absorb(other);
        }
        Ok(())
    }

    /// Entries quarantined for `destination` by earlier MPI runs.
    pub fn load_quarantine(&self, destination: &std::path::Path) -> Vec<Vec<u8>> {
        if !self.mpi() {
            return Vec::new();
        }
        mpi::quarantine::state_file(destination)
            .map_or_else(Vec::new, |f| mpi::quarantine::load(&f))
    }

    /// Say, at the start, which entries stay quarantined and how to retry.
    pub fn announce_quarantine(&self, destination: &std::path::Path, n: usize) {
        if self.mpi() && n > 0 && self.rank == 0 {
            if let Some(f) = mpi::quarantine::state_file(destination) {
                log::warn!(
                    "{n} entr(ies) quarantined by an earlier run are skipped; delete {} to retry them",
                    f.display()
                );
            }
        }
    }

    /// Rank 0: add the entries this job quarantined to the state file.
    pub fn save_quarantine(&self, destination: &std::path::Path, old: &[Vec<u8>], new: &[Vec<u8>]) {
        if self.mpi() && self.rank == 0 && !new.is_empty() {
            if let Some(f) = mpi::quarantine::state_file(destination) {
                match mpi::quarantine::save(&f, old, new) {
                    Ok(()) => log::warn!(
                        "{} entr(ies) quarantined; listed in {} (delete it to retry them)",
                        new.len(),
                        f.display()
                    ),
                    Err(e) => log::error!("{}: cannot save the quarantine list: {e}", f.display()),
                }
            }
        }
    }

    /// This rank is stopping with an error (already printed). Unless every
    /// rank stopped with it at the start, the others are waiting for this
    /// one in some collective: end the job rather than leave them there.
    pub fn end_on_error(&self, code: u8) {
        if !self.agreed.get() {
            self.abort(code.into());
        }
    }

    /// End the whole job now (a rank that cannot go on: MPI's rule).
    pub fn abort(&self, code: i32) {
        if let Some(m) = self.mpi.as_ref().filter(|_| self.size > 1) {
            let why = format!("rank {} stops the MPI job (exit code {code})", self.rank);
            m.end_job(&why, code);
        }
    }
}

impl Drop for Cluster {
    /// Leave together: no rank exits (and makes mpirun end the job) before
    /// rank 0 has printed the summary or the refusal. A panicking rank
    /// cannot meet the others: it ends the job instead.
    fn drop(&mut self) {
        if self.size > 1 {
            if std::thread::panicking() {
                self.abort(crate::error::ExitStatus::Internal.code().into());
            }
            self.barrier();
        }
    }
}
