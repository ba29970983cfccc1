//! The walk's peer thread: one per rank while the walk runs. It answers
//! other ranks' steals, steals when this rank is idle, forwards hard-linked
//! entries to the rank that owns their inode, carries chunks and their
//! outcomes between ranks, and (rank 0) detects the end of each phase with
//! waves of probes.

use super::msg::{PeerJob, PeerMsg};
use super::PeerSide;
use super::{decode, encode, end_job, TAG_WALK};
use crate::cluster::Peered;
use crate::progress::{Display, JobLine, Snapshot};
use crate::work::{Batch, Jobs};
use crossbeam_channel::{Receiver, Sender};
use mpi::request::Request;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many jobs per message: bounded messages, and an idle rank
/// comes back for more.
const MAX_SHARE: usize = 1024;

/// Sends in flight: each buffer lives until MPI is done with it.
#[derive(Default)]
struct Outgoing {
    pending: Vec<(Request<'static, [u8]>, *mut [u8])>,
}

impl Outgoing {
    fn send(&mut self, world: &SimpleCommunicator, to: u32, msg: &PeerMsg) {
        let buf: &'static mut [u8] = Box::leak(encode(msg).into_boxed_slice());
        let ptr: *mut [u8] = buf;
        let buf: &'static [u8] = buf;
        let req = world.process_at_rank(to as i32).immediate_send_with_tag(
            mpi::request::StaticScope,
            buf,
            TAG_WALK,
        );
        self.pending.push((req, ptr));
    }

    /// Free what MPI has finished sending; true when nothing is pending.
    fn progress(&mut self) -> bool {
        let pending = std::mem::take(&mut self.pending);
        for (req, ptr) in pending {
            match req.test() {
                // SAFETY: `ptr` came from `Box::leak` in `send`, and the
                // request that borrowed it has completed and been consumed:
                // nothing refers to the buffer any more.
                Ok(_) => drop(unsafe { Box::from_raw(ptr) }),
                Err(req) => self.pending.push((req, ptr)),
            }
        }
        self.pending.is_empty()
    }
}

/// Rank 0's termination detection: waves of `Probe`; the walk is over when
/// two consecutive waves find every rank idle with the same totals of
/// job-carrying messages sent and received, and those totals equal (no job
/// in flight, and none sent in between: a rank only becomes busy by
/// receiving one).
#[derive(Default)]
struct Waves {
    wave: u64,
    /// Probes of `wave` are out.
    open: bool,
    /// Reports still expected in the current wave.
    waiting: u32,
    all_idle: bool,
    sent: u64,
    received: u64,
    last: Option<(u64, u64)>,
}

/// The peer thread's two phases, each ended by the same termination waves:
/// the walk (directories stolen, hard-linked names forwarded), then the
/// copy (queued tasks, large files' chunks included, given to idle ranks;
/// chunk outcomes sent back to the rank that placed the file).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Walk,
    Copy,
}

pub(super) struct Walk {
    phase: Phase,
    /// The dispatcher's chunk outcomes and idle state.
    link: PeerSide,
    rank: u32,
    size: u32,
    jobs: Arc<Jobs>,
    world: SimpleCommunicator,
    out: Outgoing,
    sent: u64,
    received: u64,
    /// A `Steal` of ours awaits its answer.
    asking: bool,
    next_steal: Instant,
    seed: u64,
    done: bool,
    waves: Waves,
    /// What this rank did for the others, for the log.
    stats: Peered,
    /// This rank's batch channel: the dispatcher's end, to give batches
    /// away, and the walker's end, to queue batches received.
    tx: Sender<Batch>,
    rx: Receiver<Batch>,
    /// Received batches the channel had no room for yet.
    inbox: std::collections::VecDeque<Batch>,
    /// Rank 0: every rank's latest (found, done, bytes).
    progress: Vec<(u64, u64, u64)>,
    /// When progress was last sent to rank 0 (the other ranks).
    last_progress: Instant,
    /// Rank 0, unless quiet: the job's progress line.
    job_line: Option<JobLine>,
}

impl Walk {
    pub(super) fn new(
        rank: u32,
        size: u32,
        jobs: Arc<Jobs>,
        (tx, rx): (Sender<Batch>, Receiver<Batch>),
        link: PeerSide,
    ) -> Self {
        let job_line = link.show_progress.then(|| JobLine::new(size));
        Walk {
            phase: Phase::Walk,
            link,
            rank,
            size,
            jobs,
            world: SimpleCommunicator::world(),
            out: Outgoing::default(),
            sent: 0,
            received: 0,
            asking: false,
            next_steal: Instant::now(),
            seed: 0x9e37_79b9_7f4a_7c15 ^ u64::from(rank).wrapping_mul(0xff51_afd7_ed55_8ccd),
            done: false,
            waves: Waves::default(),
            stats: Peered::default(),
            tx,
            rx,
            inbox: Default::default(),
            progress: vec![(0, 0, 0); size as usize],
            last_progress: Instant::now(),
            job_line,
        }
    }

    fn send(&mut self, to: u32, msg: &PeerMsg) {
        self.out.send(&self.world, to, msg);
    }

    pub(super) fn run(mut self) -> Peered {
        if !self.phase_loop() {
            return self.stats;
        }
        log::debug!("rank {}: the walk is over on every rank", self.rank);
        // The walker threads end while the last messages are settled. A
        // faster rank may already be in the copy phase: what this one
        // answers while leaving the walk (probes) already describes the
        // copy, and what it receives (chunks, outcomes) is counted, so the
        // counters run on across both phases, never reset.
        self.jobs.finish();
        self.phase = Phase::Copy;
        self.drain();
        (self.done, self.asking) = (false, false);
        self.waves = Waves::default();
        if !self.phase_loop() {
            return self.stats;
        }
        log::debug!("rank {}: the copy is over on every rank", self.rank);
        self.drain();
        // Whatever is still held goes to the dispatcher before this end of
        // the channel closes (it waits for every sender to be gone).
        for b in self.inbox.drain(..) {
            if self.tx.send(b).is_err() {
                break;
            }
        }
        self.stats
    }

    /// Run one phase until rank 0 says it is over everywhere; false when
    /// this rank stopped (interrupt, fatal error): the supervisor then ends
    /// the job, and nothing here may wait for the others.
    fn phase_loop(&mut self) -> bool {
        while !self.done {
            if self.jobs.halted() {
                return false;
            }
            let busy = self.receive();
            self.flush_outbox();
            self.send_chunks();
            self.forward_outcomes();
            self.queue_received();
            if !self.done && !self.asking && self.size > 1 && self.idle() {
                self.steal();
            }
            if self.rank == 0 && !self.done {
                self.terminate();
            }
            self.out.progress();
            self.report_progress();
            if !busy {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        true
    }

    /// Every 2 s each rank sends its counts to rank 0, whose job line
    /// (`progress::JobLine`) shows their sum when it is due (every 5 s).
    fn report_progress(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.link.counts;
        let mine = (
            c.found.load(Relaxed),
            c.done.load(Relaxed),
            c.bytes.load(Relaxed),
        );
        if self.rank != 0 {
            if self.last_progress.elapsed() < Duration::from_secs(2) {
                return;
            }
            self.last_progress = Instant::now();
            let (found, done, bytes) = mine;
            self.send(0, &PeerMsg::Progress { found, done, bytes });
            return;
        }
        self.progress[0] = mine;
        let Some(line) = self.job_line.as_mut() else {
            return;
        };
        let (files_found, files_done, bytes_placed) = self
            .progress
            .iter()
            .fold((0, 0, 0), |a, p| (a.0 + p.0, a.1 + p.1, a.2 + p.2));
        line.update(&Snapshot {
            files_found,
            files_done,
            bytes_placed,
            ..Snapshot::default()
        });
    }

    /// Nothing to do here in this phase: in the walk, no directory or entry
    /// queued, running or waiting to be sent; in the copy, the walker has
    /// queued its last batch and nothing is queued, running, held or
    /// waiting to be reported anywhere on this rank.
    fn idle(&self) -> bool {
        match self.phase {
            Phase::Walk => self.jobs.idle(),
            Phase::Copy => {
                self.jobs.placed()
                    && self.jobs.chunks_sent()
                    && self.inbox.is_empty()
                    && self.rx.is_empty()
                    && self.link.outcomes_out.is_empty()
                    && self.link.dispatcher_idle()
            }
        }
    }

    /// Chunks of this rank's large files to the ranks that copy them.
    fn send_chunks(&mut self) {
        let mut by_rank: std::collections::BTreeMap<u32, Vec<crate::protocol::Task>> =
            Default::default();
        for (to, t) in self.jobs.take_chunks() {
            by_rank.entry(to).or_default().push(t);
        }
        for (to, tasks) in by_rank {
            self.sent += 1;
            self.stats.chunks_sent += tasks.len() as u64;
            self.send(to, &PeerMsg::Chunks(tasks));
        }
    }

    /// Chunk outcomes of other ranks' files, back to them.
    fn forward_outcomes(&mut self) {
        let outcomes: Vec<_> = self.link.outcomes_out.try_iter().collect();
        for (owner, task, outcome) in outcomes {
            self.sent += 1;
            self.send(owner, &PeerMsg::ChunkDone { task, outcome });
        }
    }

    /// Handle every message that has arrived; true if there was one.
    fn receive(&mut self) -> bool {
        let mut any = false;
        while let Some(probed) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(TAG_WALK)
        {
            any = true;
            // (The receive is a method of the (message, status) pair.)
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            let from = status.source_rank() as u32;
            let msg = match decode::<PeerMsg>(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    // Likely ranks running different pcopy builds.
                    let why = format!("rank {from}: {e} (are all ranks the same pcopy build?)");
                    end_job(&why, crate::error::ExitStatus::Fatal.code().into());
                }
            };
            self.handle(from, msg);
        }
        any
    }

    /// Long because it is one match over every `PeerMsg`, one arm per message, as the table in docs/architecture.md lists them.
    fn handle(&mut self, from: u32, msg: PeerMsg) {
        match msg {
            PeerMsg::Steal { hungry } => {
                let mut share = if self.done {
                    Vec::new()
                } else {
                    self.jobs.share()
                };
                if share.len() > MAX_SHARE {
                    // Keep the rest: the thief comes back.
                    self.jobs.give(share.split_off(MAX_SHARE));
                }
                let tasks = if share.is_empty() && hungry && !self.done {
                    self.spare_tasks()
                } else {
                    Vec::new()
                };
                if !share.is_empty() || !tasks.is_empty() {
                    self.sent += 1;
                    self.stats.jobs_given += share.len() as u64;
                    self.stats.tasks_given += tasks.len() as u64;
                }
                self.send(from, &PeerMsg::Work { jobs: share, tasks });
            }
            PeerMsg::Work { jobs, tasks } => {
                self.asking = false;
                if jobs.is_empty() && tasks.is_empty() {
                    // Nothing there: try elsewhere soon, not in a tight loop.
                    self.next_steal = Instant::now() + Duration::from_millis(2);
                } else {
                    self.received += 1;
                    self.stats.jobs_taken += jobs.len() as u64;
                    self.stats.tasks_taken += tasks.len() as u64;
                    if !jobs.is_empty() {
                        self.jobs.give(jobs);
                    }
                    if !tasks.is_empty() {
                        self.inbox.push_back(Batch {
                            tasks,
                            large: Vec::new(),
                            from: Some(from),
                        });
                    }
                }
            }
            PeerMsg::Entries(jobs) => {
                self.received += 1;
                self.stats.entries_received += jobs.len() as u64;
                self.jobs.give(jobs);
            }
            PeerMsg::Probe(wave) => {
                let report = PeerMsg::Report {
                    wave,
                    idle: self.idle(),
                    sent: self.sent,
                    received: self.received,
                };
                self.send(0, &report);
            }
            PeerMsg::Report {
                wave,
                idle,
                sent,
                received,
            } if wave == self.waves.wave => {
                let w = &mut self.waves;
                w.waiting = w.waiting.saturating_sub(1);
                w.all_idle &= idle;
                w.sent += sent;
                w.received += received;
            }
            PeerMsg::Report { .. } => {}
            PeerMsg::Chunks(tasks) => {
                self.received += 1;
                self.stats.chunks_received += tasks.len() as u64;
                self.inbox.push_back(Batch {
                    tasks,
                    large: Vec::new(),
                    from: Some(from),
                });
            }
            PeerMsg::ChunkDone { task, outcome } => {
                self.received += 1;
                let _ = self.link.outcomes_in.send((task, outcome));
            }
            PeerMsg::Progress { found, done, bytes } => {
                if let Some(slot) = self.progress.get_mut(from as usize) {
                    *slot = (found, done, bytes);
                }
            }
            PeerMsg::Done => self.done = true,
        }
    }

    /// Batches waiting in this rank's channel, for a hungry thief: about
    /// half of them (at least one). Only this rank's own batches travel
    /// (a chunk's outcome must find the rank that registered its file); a
    /// large file's registration stays here and is queued again (an
    /// outcome that comes back first is held until it is taken).
    fn spare_tasks(&mut self) -> Vec<crate::protocol::Task> {
        let n = self.rx.len().div_ceil(2);
        let mut tasks = Vec::new();
        for _ in 0..n {
            let Ok(mut b) = self.rx.try_recv() else { break };
            if b.from.is_some() {
                self.inbox.push_back(b);
                continue;
            }
            tasks.append(&mut b.tasks);
            if !b.large.is_empty() {
                self.inbox.push_back(b);
            }
        }
        tasks
    }

    /// Move received batches into this rank's channel as room allows.
    fn queue_received(&mut self) {
        while let Some(b) = self.inbox.pop_front() {
            match self.tx.try_send(b) {
                // Counted once queued: the dispatcher's idle answer names
                // the count it saw, so one given before this is stale.
                Ok(()) => self.jobs.note_fed(),
                Err(crossbeam_channel::TrySendError::Full(b)) => {
                    self.inbox.push_front(b);
                    break;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    // The dispatcher is gone (fatal error, interrupt).
                    self.inbox.clear();
                    break;
                }
            }
        }
    }

    /// Hard-linked entries to their owners, grouped per owner.
    fn flush_outbox(&mut self) {
        let mut by_owner: std::collections::BTreeMap<u32, Vec<PeerJob>> = Default::default();
        for (owner, job) in self.jobs.take_outbox() {
            by_owner.entry(owner).or_default().push(job);
        }
        for (owner, jobs) in by_owner {
            for part in jobs.chunks(MAX_SHARE) {
                self.sent += 1;
                self.stats.entries_sent += part.len() as u64;
                self.send(owner, &PeerMsg::Entries(part.to_vec()));
            }
        }
    }

    /// Ask a random other rank for work.
    fn steal(&mut self) {
        if Instant::now() < self.next_steal {
            return;
        }
        // xorshift: cheap, and different on every rank.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let mut victim = (self.seed % u64::from(self.size - 1)) as u32;
        if victim >= self.rank {
            victim += 1;
        }
        self.asking = true;
        self.stats.steals += 1;
        let hungry = self.phase == Phase::Copy || (self.tx.is_empty() && self.inbox.is_empty());
        self.send(victim, &PeerMsg::Steal { hungry });
    }

    /// Rank 0: run termination waves while it is idle itself.
    fn terminate(&mut self) {
        let idle = self.idle();
        let w = &mut self.waves;
        if w.open {
            if w.waiting > 0 {
                return;
            }
            w.open = false;
            let now = (w.sent, w.received);
            let quiet = w.all_idle && w.sent == w.received;
            log::trace!(
                "wave {} done: idle {} sent {} received {}",
                w.wave,
                w.all_idle,
                w.sent,
                w.received
            );
            if quiet && w.last == Some(now) {
                self.done = true;
                for r in 1..self.size {
                    self.send(r, &PeerMsg::Done);
                }
                return;
            }
            w.last = quiet.then_some(now);
        }
        if !idle {
            w.last = None;
            return;
        }
        w.wave += 1;
        w.open = true;
        w.waiting = self.size - 1;
        w.all_idle = true;
        w.sent = self.sent;
        w.received = self.received;
        let wave = w.wave;
        for r in 1..self.size {
            self.send(r, &PeerMsg::Probe(wave));
        }
    }

    /// After `Done`: answer any `Steal` still coming (empty), wait for the
    /// answer to our own, then leave together (a non-blocking barrier, so
    /// answering goes on while waiting), so no walk message is left
    /// unreceived when the next phase starts.
    fn drain(&mut self) {
        let mut barrier = None;
        loop {
            self.receive();
            self.out.progress();
            if barrier.is_none() && !self.asking {
                barrier = Some(self.world.immediate_barrier());
            }
            if let Some(b) = barrier.take() {
                match b.test() {
                    Ok(_) => break,
                    Err(b) => barrier = Some(b),
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        while !self.out.progress() {
            std::thread::sleep(Duration::from_micros(200));
        }
        // A progress line sent just before its rank left may still arrive.
        self.receive();
    }
}
