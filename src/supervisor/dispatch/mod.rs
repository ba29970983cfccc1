//! The dispatch loop: feeds batches to workers within a credit window, folds
//! their outcomes into the summary, and handles worker death. It joins four
//! parts, each with its own state: the scheduler (what goes next), the pool
//! (the workers), the ledger (what everything counted for) and the chunk
//! registry (large files cut into chunks).
//!
//! Each worker processes its batches and their tasks strictly in order and
//! reports outcomes in that order, so the supervisor always knows exactly
//! which tasks a worker still holds, and after a crash the first unreported
//! task is the one it died on (its "culprit" count decides quarantine).

mod chunks;
mod ledger;
mod pool;
mod recovery;
mod scheduler;
mod spawn;

pub use ledger::fold_walk_event;

use crate::config::Settings;
use crate::copy::Copier;
use crate::error::{Error, Result};
use crate::protocol::{FromWorker, Outcome, RootFds, Task, TaskKind, WorkerInit};
use crate::stats::{Paths, Summary};
use crate::work::{Batch, Found, WalkEvent};
use crossbeam_channel::Receiver;
use pool::{Heard, Pool, WINDOW};
use scheduler::Scheduler;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The dispatcher's share of the settings.
#[derive(Clone, Debug)]
pub struct Options {
    pool: pool::Sizes,
    batch_files: usize,
}

impl Options {
    pub fn new(s: &Settings, plan: &super::plan::Plan) -> Self {
        Options {
            pool: pool::Sizes {
                workers: plan.workers,
                // Workers sleeping off a --bwlimit debt look like workers
                // waiting on I/O; more of them would only share the same
                // rate.
                max_workers: if s.bwlimit > 0 {
                    plan.workers
                } else {
                    plan.max_workers.max(plan.workers)
                },
                stall_timeout: s.stall_timeout,
                max_restarts_per_minute: s.max_restarts_per_minute,
                spare_fds: super::limits::walker_fds(plan.walk_threads),
            },
            batch_files: s.batch_files,
        }
    }
}

/// What the dispatcher is connected to: the walk's two channels and
/// counters, the run's stop signal, the progress bar, and under MPI the
/// link to the peer thread.
pub struct Links<'a> {
    pub batches: Receiver<Batch>,
    pub events: Receiver<WalkEvent>,
    pub found: Arc<Found>,
    pub stop: &'a super::signals::Signals,
    pub progress: crate::progress::Tracker,
    pub peer: Option<crate::cluster::DispatchSide>,
}

pub struct Dispatch<'a> {
    scheduler: Scheduler,
    pool: Pool,
    ledger: ledger::Ledger,
    chunks: chunks::Chunks,
    events: Receiver<WalkEvent>,
    stop: &'a super::signals::Signals,
    progress: crate::progress::Tracker,
    /// Destination root, to remove the temp a dead worker left behind.
    dst_root: OwnedFd,
    shutting_down: bool,
    /// Under MPI: chunk outcomes to and from other ranks, and this
    /// dispatcher's idle state for the end of the job.
    peer: Option<crate::cluster::DispatchSide>,
}

/// What the dispatcher leaves: the run's counts, and the entries it
/// quarantined.
pub struct Dispatched {
    pub summary: Summary,
    pub quarantined: Vec<Vec<u8>>,
}

impl<'a> Dispatch<'a> {
    pub fn new(
        opts: Options,
        paths: Paths,
        (exe, init): (PathBuf, WorkerInit),
        links: Links<'a>,
        (src_root, dst_root): (OwnedFd, OwnedFd),
    ) -> Result<Self> {
        let mut init = init;
        init.roots = root_fds(&src_root, &dst_root)
            .map_err(|e| Error::Fatal(format!("stat root directories: {e}")))?;
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Error::Fatal(format!("duplicate root descriptor: {e}")))
        };
        let finisher = Copier::new(src_root, dup(&dst_root)?, init.copy);
        let mut ledger = ledger::Ledger::new(links.found, paths);
        ledger.summary.workers = opts.pool.workers as u32;
        Ok(Dispatch {
            scheduler: Scheduler::new(links.batches, opts.batch_files),
            pool: Pool::new(opts.pool, exe, init)?,
            ledger,
            chunks: chunks::Chunks::new(finisher),
            events: links.events,
            stop: links.stop,
            progress: links.progress,
            dst_root,
            shutting_down: false,
            peer: links.peer,
        })
    }

    /// Run until the walk is done and every task is accounted for, or the
    /// run is stopped. The counts come back with the result; the workers
    /// of a failed run are not waited for (dropping their channels ends
    /// them).
    pub fn run(mut self) -> (Result<()>, Dispatched) {
        let result = self.run_loop();
        if result.is_ok() {
            self.drain_events();
            self.pool.stop_all();
            self.left_registered();
            self.progress.clear();
        }
        self.count_pool();
        let quarantined = self.scheduler.quarantined();
        (
            result,
            Dispatched {
                summary: self.ledger.summary,
                quarantined,
            },
        )
    }

    fn run_loop(&mut self) -> Result<()> {
        loop {
            self.drain_events();
            self.remote_outcomes();
            if !self.shutting_down && self.stop.requested().is_some() {
                self.begin_shutdown();
            }
            if !self.shutting_down {
                self.fill()?;
            }
            if self.done() {
                return Ok(());
            }
            self.publish_idle();
            let starving = !self.scheduler.walker_done && self.pool.idle_capacity();
            // Under MPI another rank's outcomes arrive outside the select.
            let wait = if starving || self.peer.is_some() {
                2
            } else {
                100
            };
            let timeout = Duration::from_millis(wait);
            if self.pool.live() == 0 {
                // No worker started yet: nothing to select on, wait for work.
                self.scheduler.wait(timeout);
            } else {
                for heard in self.pool.select(timeout)? {
                    match heard {
                        Heard::Message(slot, m) => self.on_message(slot, m),
                        Heard::Undecodable(slot, why) => self.pool.kill_bad(slot, &why),
                        Heard::Closed(slot) => self.on_closed(slot)?,
                    }
                }
            }
            self.pool.check_stalls();
            if !self.shutting_down {
                self.pool.maybe_grow(self.scheduler.pending())?;
            }
            self.count_pool();
            self.show_progress();
        }
    }

    fn count_pool(&mut self) {
        let p = &self.pool;
        self.ledger.pool(p.slots.len(), p.started, p.deaths);
    }

    fn show_progress(&mut self) {
        let live = crate::progress::Live {
            workers_alive: self.pool.live(),
            walking: !self.scheduler.walker_done,
            partial_bytes: self.pool.partial_bytes(),
        };
        let s = self.progress.tick(&self.ledger.summary, &live);
        // Under MPI the same snapshot goes to rank 0's job line.
        if let Some(p) = &self.peer {
            use std::sync::atomic::Ordering::Relaxed;
            p.counts.found.store(s.files_found, Relaxed);
            p.counts.done.store(s.files_done, Relaxed);
            p.counts.bytes.store(s.bytes_placed, Relaxed);
        }
    }

    fn done(&self) -> bool {
        if self.shutting_down {
            return self.pool.live() == 0;
        }
        self.scheduler.exhausted() && self.pool.drained()
    }

    /// The next tasks to send, with the large files their batch registers
    /// taken into the chunk registry first.
    /// A retried task settled here (a chunked file that changed) waits
    /// for the next call: the walk's batches are read on until one has
    /// tasks.
    fn next_tasks(&mut self) -> Option<Vec<Task>> {
        let mut b = self.scheduler.next()?;
        loop {
            for (t, o) in self.chunks.register(b.large, b.from, &b.tasks) {
                self.settle_chunk(&t, o);
            }
            if !b.tasks.is_empty() {
                return Some(b.tasks);
            }
            b = self.scheduler.next_walked()?;
        }
    }

    /// Give every worker one batch before any gets a second, so a few large
    /// files spread over all workers.
    ///
    /// Workers start as work arrives, up to `-j`: one more for a batch that
    /// finds every started worker holding one. A run with nothing to copy
    /// (an empty tree, a re-run where every file is current) starts none, a
    /// tiny tree only what it uses, and the walk overlaps each start (a
    /// fork, an exec and a connect).
    fn fill(&mut self) -> Result<()> {
        if self.ledger.summary.disk_full {
            // Nothing more is sent; what the walk still produces is counted.
            while let Some(tasks) = self.next_tasks() {
                tasks.iter().for_each(|t| self.ledger.count_unsent(t));
            }
            return Ok(());
        }
        for depth in 1..=WINDOW {
            for i in 0..self.pool.slots.len() {
                let slot = &self.pool.slots[i];
                if slot.worker.is_some() && slot.inflight.len() < depth {
                    let Some(tasks) = self.next_tasks() else {
                        return Ok(());
                    };
                    self.send(i, tasks);
                }
            }
            while depth == 1 && self.pool.slots.len() < self.pool.sizes.workers {
                let Some(tasks) = self.next_tasks() else {
                    return Ok(());
                };
                let Some(i) = self.pool.add_worker()? else {
                    // No room for another worker: the tasks wait for one.
                    self.scheduler.put_back(tasks);
                    break;
                };
                self.send(i, tasks);
            }
        }
        Ok(())
    }

    fn send(&mut self, i: usize, tasks: Vec<Task>) {
        let id = self.scheduler.batch_id();
        self.pool.send(i, id, tasks);
    }

    fn on_message(&mut self, slot: usize, msg: FromWorker) {
        let pid = self.pool.slots[slot].worker.as_ref().map_or(0, |w| w.pid);
        match msg {
            FromWorker::Report {
                batch,
                outcomes,
                finished,
            } => self.on_report(slot, batch, outcomes, finished),
            FromWorker::Progress { bytes } => self.pool.slots[slot].partial += bytes,
            FromWorker::Log { level, msg } => log::log!(level, "worker {pid}: {msg}"),
            FromWorker::Fatal { msg } => log::error!("worker {pid}: {msg}"),
            FromWorker::Hello { .. } => {}
        }
    }

    fn on_report(&mut self, slot: usize, batch: u64, outcomes: Vec<Outcome>, finished: bool) {
        let s = &mut self.pool.slots[slot];
        s.partial = 0;
        let Some(pos) = s.inflight.iter().position(|b| b.id == batch) else {
            log::warn!("report for unknown batch {batch}");
            return;
        };
        // Borrow the batch's tasks out while accounting (which needs
        // `&mut self`), instead of cloning one per outcome.
        let b = &mut s.inflight[pos];
        let start = b.reported;
        b.reported += outcomes.len();
        let tasks = std::mem::take(&mut b.tasks);
        for (t, o) in tasks.iter().skip(start).zip(outcomes) {
            self.account(t, o);
        }
        let s = &mut self.pool.slots[slot];
        s.inflight[pos].tasks = tasks;
        if finished {
            if let Some(b) = s.inflight.remove(pos) {
                // Tasks a stopping worker did not reach go back in the queue.
                self.scheduler.retry(b.tasks.into_iter().skip(b.reported));
            }
        }
    }

    /// What a task came to: a whole entry's outcome is the ledger's; a
    /// chunk's bytes are, and its file is counted in by the rank that
    /// registered it, here or (MPI) elsewhere.
    fn account(&mut self, t: &Task, o: Outcome) {
        let TaskKind::Chunk { .. } = t.kind else {
            return self.ledger.outcome(t, o);
        };
        if crate::failpoint::drop_hook("supervisor::chunk_outcome", &t.rel.0) {
            return;
        }
        self.ledger.chunk(t, &o);
        if let Some(owner) = self.chunks.owner(t) {
            if let Some(p) = &self.peer {
                let _ = p.outcomes_out.send((owner, t.clone(), o));
            }
            return;
        }
        self.settle_chunk(t, o);
    }

    /// Count a chunk of one of this rank's large files in; the last one
    /// places the file, or queues it whole again when it changed.
    fn settle_chunk(&mut self, t: &Task, o: Outcome) {
        let TaskKind::Chunk { file_size, .. } = t.kind else {
            return;
        };
        if let chunks::Settled::File {
            placed,
            copied_bytes,
            again,
        } = self.chunks.settle(t, o)
        {
            self.ledger.finished(t, file_size, placed, copied_bytes);
            self.scheduler.retry(again);
        }
    }

    /// Outcomes of this rank's chunks copied by other ranks (MPI).
    fn remote_outcomes(&mut self) {
        let Some(p) = &self.peer else { return };
        let came: Vec<(Task, Outcome)> = p.outcomes_in.try_iter().collect();
        for (t, o) in came {
            self.settle_chunk(&t, o);
        }
    }

    /// Under MPI: say whether this rank has nothing left to do, tagged with
    /// how many batches the peer had queued when that was decided (a batch
    /// queued since makes the answer stale).
    fn publish_idle(&self) {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let Some(p) = &self.peer else { return };
        let fed = p.fed.load(Acquire);
        let idle = !self.scheduler.pending() && self.chunks.is_empty() && self.pool.drained();
        p.state.store((fed << 1) | u64::from(idle), Release);
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.ledger.walk_event(ev);
        }
    }

    /// The run is over: every large file must have been placed or
    /// reported. After an interrupt or a full disk the rest are expected
    /// (their temps are removed); otherwise a file still registered is a
    /// lost outcome, reported by name so the run cannot exit 0.
    fn left_registered(&mut self) {
        let expected = self.shutting_down || self.ledger.summary.disk_full;
        let ledger = &mut self.ledger;
        self.chunks.left(|rel, msg| {
            if !expected {
                ledger.unplaced(rel, msg);
            }
        });
    }

    fn begin_shutdown(&mut self) {
        // Off the screen now: the interrupted summary must not sit under a
        // stale frame.
        self.progress.clear();
        log::warn!("interrupted: stopping workers at a file boundary");
        self.shutting_down = true;
        let sm = &mut self.ledger.summary;
        sm.interrupted = true;
        sm.signal = self.stop.requested();
        self.pool.ask_to_stop();
    }
}

/// The descriptors workers inherit (these very fds, held for the whole run)
/// and the identities a worker checks them against.
fn root_fds(src: &OwnedFd, dst: &OwnedFd) -> std::io::Result<RootFds> {
    use std::os::fd::AsRawFd;
    let id = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|s| (s.st_dev, s.st_ino));
    Ok(RootFds {
        src_fd: src.as_raw_fd(),
        dst_fd: dst.as_raw_fd(),
        src_id: id(src)?,
        dst_id: id(dst)?,
    })
}
