//! The dispatch loop: feeds batches to workers within a credit window, folds
//! their outcomes into the summary, and handles worker death.
//!
//! Each worker processes its batches and their tasks strictly in order and
//! reports outcomes in that order, so the supervisor always knows exactly
//! which tasks a worker still holds, and after a crash the first unreported
//! task is the one it died on (its "culprit" count decides quarantine).

mod recovery;

use super::bigfile;
use super::pool::{self, Spawned};
use super::work::{Batch, WalkEvent};
use crate::config::Settings;
use crate::copy::Copier;
use crate::error::{Error, Result};
use crate::protocol::{
    ErrorKind, FromWorker, Outcome, RootFds, Task, TaskKind, ToWorker, WorkerInit,
};
use crate::stats::Summary;
use crate::stats::{Failed, Paths};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use ipc_channel::ipc::{IpcReceiverSet, IpcSelectionResult};
use ipc_channel::TrySelectError;
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Batches a worker may hold at once (one running, one queued): enough to
/// hide IPC latency, small enough that `send` never blocks on a full socket.
const WINDOW: usize = 2;
/// A task during which this many workers died is quarantined.
pub const MAX_CRASHES: u32 = 3;

struct InFlight {
    id: u64,
    tasks: Vec<Task>,
    reported: usize,
}

#[derive(Default)]
struct Slot {
    worker: Option<Spawned>,
    inflight: VecDeque<InFlight>,
    last_activity: Option<Instant>,
    stall_killed: bool,
    /// Bytes reported by heartbeats for the file in progress.
    partial: u64,
}

/// The dispatcher's share of the settings.
#[derive(Clone, Debug)]
pub struct Options {
    pub workers: usize,
    /// More workers may be started, up to this, while they mostly wait.
    pub max_workers: usize,
    pub batch_files: usize,
    pub stall_timeout: Duration,
    pub max_restarts_per_minute: usize,
    /// Descriptors left free for the walker threads while a worker starts
    /// (`limits::walker_fds`), so a start never starves the walk.
    pub spare_fds: usize,
}

impl Options {
    pub fn new(s: &Settings, walkers: usize) -> Self {
        Options {
            workers: s.processes,
            // Workers sleeping off a --bwlimit debt look like workers
            // waiting on I/O; more of them would only share the same rate.
            max_workers: if s.bwlimit > 0 {
                s.processes
            } else {
                s.max_processes.max(s.processes)
            },
            batch_files: s.batch_files,
            stall_timeout: s.stall_timeout,
            max_restarts_per_minute: s.max_restarts_per_minute,
            spare_fds: super::limits::walker_fds(walkers),
        }
    }
}

pub struct Dispatch<'a> {
    pub opts: Options,
    pub paths: Paths,
    pub exe: PathBuf,
    pub init: WorkerInit,
    pub batches: Receiver<Batch>,
    /// A batch taken off `batches` while waiting for the first one with no
    /// worker started (there is nothing to select on then).
    held: Option<Batch>,
    pub events: Receiver<WalkEvent>,
    pub summary: Summary,
    pub stop: &'a super::signals::Signals,
    pub progress: Option<super::progress::Tracker>,
    /// The walk's shared counters; also where "destination full" is raised.
    pub found: std::sync::Arc<super::work::Found>,
    /// Destination root, to remove the temp a dead worker left behind.
    pub dst_root: OwnedFd,
    /// Places large files once all their chunks are in (same roots).
    finisher: Copier,
    /// `--bwlimit`: the one budget every worker draws from.
    budget: crate::protocol::Budget,
    big: bigfile::Registry,
    set: IpcReceiverSet,
    slots: Vec<Slot>,
    set_ids: HashMap<u64, usize>,
    walker_done: bool,
    retry: VecDeque<Task>,
    crashes: HashMap<Vec<u8>, u32>,
    restarts: VecDeque<Instant>,
    next_batch: u64,
    shutting_down: bool,
    /// When the stall watchdog last ran (to notice the supervisor paused).
    last_check: Option<Instant>,
    /// Samples of worker states since the last growth decision.
    busy: Busy,
    /// Under MPI: chunk outcomes to and from other ranks, and this
    /// dispatcher's idle state for the end of the job.
    pub peer: Option<super::cluster::DispatchSide>,
    /// Chunks of other ranks' large files queued here: (file, offset) to
    /// the rank that registered the file.
    foreign: HashMap<(Vec<u8>, u64), u32>,
}

/// Worker states sampled since the last growth decision (`maybe_grow`).
#[derive(Default)]
struct Busy {
    /// Samples that found a worker running (not asleep on I/O).
    running: u32,
    /// All samples.
    total: u32,
    /// When this window of samples started.
    since: Option<Instant>,
    /// When the last sample was taken (samples are 20 ms apart at least).
    last: Option<Instant>,
}

impl<'a> Dispatch<'a> {
    pub fn new(
        opts: Options,
        paths: Paths,
        exe: PathBuf,
        init: WorkerInit,
        (batches, events): (Receiver<Batch>, Receiver<WalkEvent>),
        stop: &'a super::signals::Signals,
        (src_root, dst_root): (OwnedFd, OwnedFd),
    ) -> Result<Self> {
        let mut init = init;
        init.roots = root_fds(&src_root, &dst_root)
            .map_err(|e| Error::Fatal(format!("stat root directories: {e}")))?;
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Error::Fatal(format!("duplicate root descriptor: {e}")))
        };
        let finisher = Copier::new(src_root, dup(&dst_root)?, (&init).into());
        Ok(Dispatch {
            opts,
            paths,
            exe,
            init,
            batches,
            held: None,
            events,
            summary: Summary::default(),
            stop,
            progress: None,
            found: Default::default(),
            dst_root,
            finisher,
            budget: crate::protocol::Budget::new(),
            big: bigfile::Registry::default(),
            set: IpcReceiverSet::new().map_err(|e| Error::Fatal(format!("ipc: {e}")))?,
            slots: Vec::new(),
            set_ids: HashMap::new(),
            walker_done: false,
            retry: VecDeque::new(),
            crashes: HashMap::new(),
            restarts: VecDeque::new(),
            next_batch: 0,
            shutting_down: false,
            last_check: None,
            busy: Busy::default(),
            peer: None,
            foreign: HashMap::new(),
        })
    }

    /// Entries quarantined in this run (they crashed `MAX_CRASHES` workers).
    pub fn quarantined(&self) -> Vec<Vec<u8>> {
        let mut q: Vec<Vec<u8>> = self
            .crashes
            .iter()
            .filter(|(_, &n)| n >= MAX_CRASHES)
            .map(|(rel, _)| rel.clone())
            .collect();
        q.sort();
        q
    }

    pub fn run(&mut self) -> Result<()> {
        self.summary.workers = self.opts.workers as u32;
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
                break;
            }
            self.publish_idle();
            let starving = !self.walker_done && self.idle_capacity();
            // Under MPI another rank's outcomes arrive outside the select.
            let wait = if starving || self.peer.is_some() {
                2
            } else {
                100
            };
            let timeout = Duration::from_millis(wait);
            if self.slots.iter().all(|s| s.worker.is_none()) {
                // No worker started yet: nothing to select on, wait for work.
                match self.batches.recv_timeout(timeout) {
                    Ok(b) => self.held = Some(b),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.walker_done = true,
                }
            } else {
                self.select(timeout)?;
            }
            self.check_stalls();
            self.maybe_grow()?;
            self.show_progress();
        }
        self.drain_events();
        self.stop_all();
        self.left_registered();
        if let Some(p) = self.progress.as_mut() {
            p.clear();
        }
        Ok(())
    }

    /// Wait up to `timeout` for the workers' messages and handle them.
    fn select(&mut self, timeout: Duration) -> Result<()> {
        match self.set.try_select_timeout(timeout) {
            Ok(results) => {
                for r in results {
                    match r {
                        IpcSelectionResult::MessageReceived(id, msg) => match msg.to() {
                            Ok(m) => self.on_message(id, m),
                            Err(e) => self.kill_bad(id, &e.to_string()),
                        },
                        IpcSelectionResult::ChannelClosed(id) => self.on_closed(id)?,
                    }
                }
            }
            Err(TrySelectError::Empty) => {}
            Err(TrySelectError::IoError(e)) => {
                return Err(Error::Fatal(format!("ipc select: {e:?}")));
            }
        }
        Ok(())
    }

    /// Latency-bound storage: when every worker holds work, more is waiting,
    /// and the workers were found running (not sleeping on I/O) in fewer than
    /// half of the samples of the last second, start one more worker, up to
    /// `max_workers`. CPU-bound workers show as running (even on a loaded
    /// machine, where they wait runnable), so a CPU-bound run does not grow.
    fn maybe_grow(&mut self) -> Result<()> {
        if self.shutting_down || self.slots.len() >= self.opts.max_workers {
            return Ok(());
        }
        let pending = !self.no_batch() || !self.retry.is_empty();
        let all_busy = self
            .slots
            .iter()
            .all(|s| s.worker.is_some() && !s.inflight.is_empty());
        if !pending || !all_busy {
            // Not a sample (a worker between batches is not idle time).
            return Ok(());
        }
        // Sample every 20 ms at most (a /proc read per worker), decide
        // every 300 ms, and grow by half the workers at a time so a slow
        // filesystem gets enough of them within a few seconds.
        let now = Instant::now();
        if self
            .busy
            .last
            .is_some_and(|t| now - t < Duration::from_millis(20))
        {
            return Ok(());
        }
        self.busy.last = Some(now);
        for s in &self.slots {
            if let Some(w) = &s.worker {
                self.busy.total += 1;
                self.busy.running += u32::from(running(w.pid));
            }
        }
        let start = *self.busy.since.get_or_insert(now);
        if now - start < Duration::from_millis(300) {
            return Ok(());
        }
        let (running, total) = (self.busy.running, self.busy.total);
        self.busy = Busy {
            last: self.busy.last,
            ..Busy::default()
        };
        if running * 2 < total {
            let more = (self.slots.len() / 2).max(1);
            let target = (self.slots.len() + more).min(self.opts.max_workers);
            while self.slots.len() < target.min(self.opts.max_workers) {
                if self.add_worker()?.is_none() {
                    break;
                }
            }
            // The pool only grows (lazy starts never lower it).
            self.summary.workers = self.summary.workers.max(self.slots.len() as u32);
            log::info!(
                "workers wait on I/O ({running} of {total} samples running): now {} workers",
                self.slots.len()
            );
        }
        Ok(())
    }

    fn show_progress(&mut self) {
        if let Some(p) = self.progress.as_mut() {
            let live = super::progress::Live {
                workers_alive: self.slots.iter().filter(|s| s.worker.is_some()).count(),
                walking: !self.walker_done,
                partial_bytes: self.slots.iter().map(|s| s.partial).sum(),
            };
            p.tick(&self.summary, &live);
        }
    }

    /// Start the worker of `slot`. One that dies before it connects (killed
    /// by an operator or the OOM killer while starting) is a worker death
    /// like any other: counted against the restart budget and tried again,
    /// never fatal by itself.
    fn start(&mut self, slot: usize) -> Result<()> {
        let mut init = self.init.clone();
        init.worker = slot as u32;
        let (w, rx) = loop {
            match pool::spawn(&self.exe, init.clone(), &self.budget, self.opts.spare_fds) {
                Ok(started) => break started,
                Err(pool::NotStarted::NoDescriptors) => return self.no_descriptors(),
                Err(pool::NotStarted::Failed(msg)) => {
                    log::warn!("worker {slot} did not start: {msg}; starting another");
                    self.summary.worker_restarts += 1;
                    self.note_restart()
                        .map_err(|e| Error::Fatal(format!("{e}; last: {msg}")))?;
                }
            }
        };
        log::debug!("worker {slot} started as pid {}", w.pid);
        let id = self
            .set
            .add(rx)
            .map_err(|e| Error::Fatal(format!("ipc: {e}")))?;
        self.set_ids.insert(id, slot);
        let s = &mut self.slots[slot];
        s.worker = Some(w);
        s.stall_killed = false;
        s.last_activity = None;
        Ok(())
    }

    /// Out of file descriptors starting a worker: the run goes
    /// on with the workers it has (the pool is capped there, once, with a
    /// warning); with none at all it cannot copy, and says why.
    fn no_descriptors(&mut self) -> Result<()> {
        let live = self.slots.iter().filter(|s| s.worker.is_some()).count();
        if live == 0 {
            return Err(Error::Fatal(format!(
                "too few file descriptors to start even one worker (the limit is {}, ulimit -n); \
                 raise the limit",
                super::limits::raise_nofile()
            )));
        }
        if self.opts.workers > live || self.opts.max_workers > live {
            log::warn!(
                "the file-descriptor limit ({}, ulimit -n) leaves room for {live} workers; \
                 running with {live}",
                super::limits::raise_nofile()
            );
        }
        self.opts.workers = self.opts.workers.min(live);
        self.opts.max_workers = self.opts.max_workers.min(live);
        Ok(())
    }

    /// Add a worker to the pool; its index, or None when no more fit.
    fn add_worker(&mut self) -> Result<Option<usize>> {
        let i = self.slots.len();
        self.slots.push(Slot::default());
        self.start(i)?;
        if self.slots[i].worker.is_none() {
            self.slots.pop();
            return Ok(None);
        }
        self.summary.workers_started += 1;
        Ok(Some(i))
    }

    /// Whether no batch is waiting, queued or held.
    fn no_batch(&self) -> bool {
        self.held.is_none() && self.batches.is_empty()
    }

    fn idle_capacity(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.worker.is_some() && s.inflight.len() < WINDOW)
    }

    fn done(&self) -> bool {
        if self.shutting_down {
            return self.slots.iter().all(|s| s.worker.is_none());
        }
        self.walker_done
            && self.retry.is_empty()
            && self.no_batch()
            && self.slots.iter().all(|s| s.inflight.is_empty())
    }

    /// Next batch: retried tasks first (a task that crashed a worker goes
    /// alone, so blame stays exact), then the walker's.
    fn next_tasks(&mut self) -> Option<Vec<Task>> {
        if let Some(t) = self.retry.pop_front() {
            let mut tasks = vec![t];
            if !self.crashes.contains_key(&tasks[0].rel.0) {
                while tasks.len() < self.opts.batch_files {
                    match self.retry.front() {
                        Some(n) if !self.crashes.contains_key(&n.rel.0) => {
                            tasks.extend(self.retry.pop_front())
                        }
                        _ => break,
                    }
                }
            }
            return Some(tasks);
        }
        loop {
            let next = match self.held.take() {
                Some(b) => Ok(b),
                None => self.batches.try_recv(),
            };
            match next {
                Ok(b) => {
                    // Registered before any of their chunks can be sent
                    // (under MPI outcomes that came back first are held).
                    for (rel, big) in b.big {
                        for (t, o) in self.big.add(rel, big) {
                            self.settle_chunk(&t, o);
                        }
                    }
                    if let Some(owner) = b.from {
                        for t in &b.tasks {
                            if let TaskKind::Chunk { offset, .. } = t.kind {
                                self.foreign.insert((t.rel.0.clone(), offset), owner);
                            }
                        }
                    }
                    if !b.tasks.is_empty() {
                        return Some(b.tasks);
                    }
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    self.walker_done = true;
                    return None;
                }
            }
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
        if self.summary.disk_full {
            // Nothing more is sent; what the walk still produces is counted.
            while let Some(tasks) = self.next_tasks() {
                tasks.iter().for_each(|t| self.count_unsent(t));
            }
            return Ok(());
        }
        for depth in 1..=WINDOW {
            for i in 0..self.slots.len() {
                if self.slots[i].worker.is_some() && self.slots[i].inflight.len() < depth {
                    let Some(tasks) = self.next_tasks() else {
                        return Ok(());
                    };
                    self.send_batch(i, tasks);
                }
            }
            while depth == 1 && self.slots.len() < self.opts.workers {
                let Some(tasks) = self.next_tasks() else {
                    return Ok(());
                };
                let Some(i) = self.add_worker()? else {
                    // No room for another worker: the tasks wait for one.
                    for t in tasks.into_iter().rev() {
                        self.retry.push_front(t);
                    }
                    break;
                };
                self.send_batch(i, tasks);
            }
        }
        Ok(())
    }

    fn send_batch(&mut self, i: usize, tasks: Vec<Task>) {
        let id = self.next_batch;
        self.next_batch += 1;
        let slot = &mut self.slots[i];
        if slot.inflight.is_empty() {
            slot.last_activity = Some(Instant::now());
        }
        if let Some(w) = &slot.worker {
            // A failed send means the worker is dying: the tasks stay in
            // flight and are re-dispatched when its channel closes.
            if let Err(e) = w.tx.send(ToWorker::Batch {
                id,
                tasks: tasks.clone(),
            }) {
                log::debug!("send to worker {}: {e:?}", w.pid);
            }
        }
        slot.inflight.push_back(InFlight {
            id,
            tasks,
            reported: 0,
        });
    }

    fn on_message(&mut self, set_id: u64, msg: FromWorker) {
        let Some(&slot) = self.set_ids.get(&set_id) else {
            return;
        };
        let pid = self.slots[slot].worker.as_ref().map_or(0, |w| w.pid);
        self.slots[slot].last_activity = Some(Instant::now());
        match msg {
            FromWorker::Report {
                batch,
                outcomes,
                finished,
            } => self.on_report(slot, batch, outcomes, finished),
            FromWorker::Progress { bytes } => self.slots[slot].partial += bytes,
            FromWorker::Log { level, msg } => log::log!(level, "worker {pid}: {msg}"),
            FromWorker::Fatal { msg } => log::error!("worker {pid}: {msg}"),
            FromWorker::Hello { .. } => {}
        }
    }

    fn on_report(&mut self, slot: usize, batch: u64, outcomes: Vec<Outcome>, finished: bool) {
        let s = &mut self.slots[slot];
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
        self.slots[slot].inflight[pos].tasks = tasks;
        if finished {
            if let Some(b) = self.slots[slot].inflight.remove(pos) {
                // Tasks a stopping worker did not reach go back in the queue.
                self.retry.extend(b.tasks.into_iter().skip(b.reported));
            }
        }
    }

    fn path_of(&self, t: &Task) -> String {
        self.paths.source(&t.rel.0)
    }

    fn dst_path_of(&self, t: &Task) -> String {
        self.paths.destination(&t.rel.0)
    }

    /// The destination is full: say so once, stop dispatching data, and let
    /// the walk go on only counting what is left.
    fn no_space(&mut self, path: String, msg: String) {
        if !self.summary.disk_full {
            self.summary.disk_full = true;
            self.found
                .no_space
                .store(true, std::sync::atomic::Ordering::Relaxed);
            log::error!("{path}: {msg}; destination full: no more data is dispatched");
            self.summary
                .push_error("disk_full", path, format!("{msg} (destination full)"));
        }
    }

    /// A task not copied because the destination is full.
    fn count_unsent(&mut self, t: &Task) {
        match t.kind {
            TaskKind::File { size } => {
                self.summary.files_not_copied += 1;
                self.summary.bytes_not_copied += size;
            }
            TaskKind::Chunk { offset, len, .. } => {
                self.summary.files_not_copied += u64::from(offset == 0);
                self.summary.bytes_not_copied += len;
            }
            _ => self.summary.files_not_copied += 1,
        }
    }

    fn account(&mut self, t: &Task, o: Outcome) {
        if let TaskKind::Chunk { .. } = t.kind {
            return self.account_chunk(t, o);
        }
        let sm = &mut self.summary;
        match o {
            Outcome::Copied {
                bytes,
                verified,
                cloned,
                grew,
            } => {
                sm.files_verified += u64::from(verified);
                if grew {
                    sm.files_grown += 1;
                    log::warn!(
                        "{}: still growing: copied the first {bytes} bytes, as first read \
                         (unchanged after the copy); the next run copies the rest",
                        self.paths.source(&t.rel.0)
                    );
                }
                // The size the copy found, not the walk's: a file that grew
                // (or shrank) in between still adds up in bytes_found.
                if let TaskKind::File { size } = t.kind {
                    if bytes >= size {
                        self.found.bytes.fetch_add(bytes - size, Ordering::Relaxed);
                    } else {
                        let less = |b: u64| Some(b.saturating_sub(size - bytes));
                        let _ = self.found.bytes.fetch_update(
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                            less,
                        );
                    }
                }
                if cloned {
                    sm.files_cloned += 1;
                    sm.bytes_cloned += bytes;
                    log::debug!("cloned {}", t.rel.display());
                } else {
                    sm.count_placed(&t.kind, bytes);
                    log::debug!("copied {}", t.rel.display());
                }
            }
            Outcome::Skipped { bytes, repaired } => {
                sm.files_skipped += 1;
                sm.entries_repaired += u64::from(repaired);
                sm.bytes_skipped += bytes;
                log::trace!("up to date {}", t.rel.display());
            }
            Outcome::Ignored { msg } => {
                sm.entries_ignored += 1;
                log::warn!("{}: {msg}", t.rel.display());
            }
            Outcome::Failed {
                kind: ErrorKind::NoSpace,
                msg,
                ..
            } => {
                let path = self.dst_path_of(t);
                self.no_space(path, msg);
                self.count_unsent(t);
            }
            Outcome::Failed {
                kind: ErrorKind::NotFound,
                msg,
                dst: false,
                ..
            } => {
                if let TaskKind::File { size } = t.kind {
                    self.summary.bytes_failed += size;
                }
                let path = self.path_of(t);
                self.summary.fail(Failed::Vanished, path, msg);
            }
            Outcome::Failed {
                msg,
                dst,
                kind,
                errno,
            } => {
                if let TaskKind::File { size } = t.kind {
                    self.summary.bytes_failed += size;
                }
                let path = if dst {
                    self.dst_path_of(t)
                } else {
                    self.path_of(t)
                };
                let word = crate::util::errno_name(errno).unwrap_or(kind_word(kind));
                self.summary.fail_kind(Failed::File, word, path, msg);
            }
        }
    }

    /// A chunk of a large file: count its bytes; when it was the last one,
    /// place the file (or report it, or recopy it whole if it changed).
    fn account_chunk(&mut self, t: &Task, o: Outcome) {
        if crate::failpoint::drop_hook("supervisor::chunk_outcome", &t.rel.0) {
            return;
        }
        if let Outcome::Failed {
            kind: ErrorKind::NoSpace,
            msg,
            ..
        } = &o
        {
            let path = self.dst_path_of(t);
            self.no_space(path, msg.clone());
        }
        match o {
            Outcome::Copied {
                bytes,
                cloned: true,
                ..
            } => self.summary.bytes_cloned += bytes,
            Outcome::Copied { bytes, .. } => self.summary.bytes_copied += bytes,
            _ => {}
        }
        if let TaskKind::Chunk { offset, .. } = t.kind {
            if let Some(owner) = self.foreign.remove(&(t.rel.0.clone(), offset)) {
                // Another rank's file: its rank counts the chunk in and
                // places the file.
                if let Some(p) = &self.peer {
                    let _ = p.outcomes_out.send((owner, t.clone(), o));
                }
                return;
            }
        }
        self.settle_chunk(t, o);
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
        let Some(p) = &self.peer else { return };
        let fed = p.fed.load(std::sync::atomic::Ordering::Acquire);
        let idle = self.retry.is_empty()
            && self.no_batch()
            && self.big.is_empty()
            && self.slots.iter().all(|s| s.inflight.is_empty());
        p.state.store(
            (fed << 1) | u64::from(idle),
            std::sync::atomic::Ordering::Release,
        );
        use std::sync::atomic::Ordering::Relaxed;
        let sm = &self.summary;
        let c = &p.counts;
        c.found.store(self.found.files.load(Relaxed), Relaxed);
        c.done.store(
            sm.files_copied + sm.files_skipped + sm.files_failed + sm.files_cloned,
            Relaxed,
        );
        c.bytes.store(sm.bytes_copied + sm.bytes_cloned, Relaxed);
    }

    /// Count a chunk of one of this rank's large files in; when it was the
    /// last one, place the file (or report it, or recopy it whole if it
    /// changed).
    fn settle_chunk(&mut self, t: &Task, o: Outcome) {
        let TaskKind::Chunk { file_size, .. } = t.kind else {
            return;
        };
        let big = match self.big.chunk_done(&t.rel.0, &o) {
            bigfile::Counted::Complete(big) => big,
            bigfile::Counted::Pending => return,
            bigfile::Counted::Unknown => {
                // Its registration has not been taken yet (MPI): later.
                self.big.hold(t.clone(), o);
                return;
            }
        };
        match bigfile::finish(&mut self.finisher, &t.rel.0, &big) {
            bigfile::Placed::Done if !big.copied_bytes => {
                self.summary.files_cloned += 1;
                log::debug!("cloned {} (in chunks)", t.rel.display());
            }
            bigfile::Placed::Done => {
                self.summary.files_copied += 1;
                log::debug!("copied {} (in chunks)", t.rel.display());
            }
            bigfile::Placed::Changed => {
                log::warn!(
                    "{}: changed during a chunked copy; copying it again whole",
                    self.path_of(t)
                );
                self.retry.push_back(Task {
                    rel: t.rel.clone(),
                    kind: TaskKind::File { size: file_size },
                    dir: big.dir,
                    basis: None,
                });
            }
            bigfile::Placed::Failed(_) if self.summary.disk_full => {
                self.summary.files_not_copied += 1;
                self.summary.bytes_not_copied += file_size;
            }
            bigfile::Placed::Failed(msg) => {
                let path = self.path_of(t);
                self.summary.bytes_failed += file_size;
                self.summary.fail(Failed::File, path, msg);
            }
        }
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                WalkEvent::NoSpace { path, msg } => self.no_space(path, msg),
                ev => ev.apply(&mut self.summary),
            }
        }
    }

    /// The run is over: every large file must have been placed or
    /// reported. After an interrupt or a full disk the rest are expected
    /// (their temps are removed); otherwise a file still registered is a
    /// lost outcome, reported by name so the run cannot exit 0.
    fn left_registered(&mut self) {
        let expected = self.shutting_down || self.summary.disk_full;
        for rel in self.big.drain_held() {
            if expected {
                continue;
            }
            let path = self.paths.source(&rel);
            let msg = "internal error: a chunk of a large file that was never registered; \
                       the file was not placed"
                .to_string();
            self.summary.fail(Failed::File, path, msg);
        }
        for (rel, big) in self.big.drain() {
            self.finisher.discard(&rel, &big.temp);
            if expected {
                continue;
            }
            let path = self.paths.source(&rel);
            let msg = format!(
                "internal error: large file left unplaced ({} of its chunks never reported)",
                big.parts_left
            );
            self.summary.fail(Failed::File, path, msg);
        }
    }

    fn begin_shutdown(&mut self) {
        // Off the screen now: the interrupted summary must not sit under a
        // stale frame.
        if let Some(p) = self.progress.as_mut() {
            p.clear();
        }
        log::warn!("interrupted: stopping workers at a file boundary");
        self.shutting_down = true;
        self.summary.interrupted = true;
        self.summary.signal = self.stop.requested();
        for s in &self.slots {
            if let Some(w) = &s.worker {
                let _ = w.tx.send(ToWorker::Shutdown);
            }
        }
    }

    /// Tell every live worker to exit, then reap them: all are told first so
    /// they exit side by side rather than one after another.
    fn stop_all(&mut self) {
        let mut stopping: Vec<_> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.worker.take())
            .collect();
        for w in &stopping {
            let _ = w.tx.send(ToWorker::Shutdown);
        }
        for w in &mut stopping {
            recovery::reap(&mut w.child);
        }
    }
}

/// Whether process `pid` is running or runnable (state `R` in
/// /proc/PID/stat), as opposed to sleeping or waiting on I/O.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('R'))
        })
        .unwrap_or(true)
}

/// The JSON `kind` of an outcome without an errno.
fn kind_word(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::NotFound => "vanished",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::Changed => "changed",
        ErrorKind::TypeClash => "type_clash",
        ErrorKind::NoSpace => "disk_full",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::VerifyMismatch => "verify_mismatch",
        ErrorKind::Other => "other",
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
