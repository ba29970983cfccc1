//! The worker pool: its slots and what each holds, starting workers
//! (`spawn`), growing the pool while workers wait on I/O, the stall
//! watchdog, the restart rate cap, and stopping and reaping them. It knows
//! nothing of what the tasks mean: the scheduler decides what to send, the
//! ledger what outcomes count for.

use super::spawn::{self, Spawned};
use crate::error::{Error, Result};
use crate::protocol::{Budget, FromWorker, Task, ToWorker, WorkerInit};
use ipc_channel::ipc::{IpcReceiverSet, IpcSelectionResult};
use ipc_channel::TrySelectError;
use std::collections::{HashMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Batches a worker may hold at once (one running, one queued): enough to
/// hide IPC latency, small enough that `send` never blocks on a full socket.
pub const WINDOW: usize = 2;

/// The dispatch loop wakes at least every 100 ms; a longer gap between two
/// stall checks means the supervisor itself was not running.
const PAUSE_GAP: Duration = Duration::from_secs(1);

/// A batch sent to a worker and how many of its outcomes came back.
pub struct InFlight {
    pub id: u64,
    pub tasks: Vec<Task>,
    pub reported: usize,
}

#[derive(Default)]
pub struct Slot {
    pub worker: Option<Spawned>,
    pub inflight: VecDeque<InFlight>,
    last_activity: Option<Instant>,
    stall_killed: bool,
    /// Bytes reported by heartbeats for the file in progress.
    pub partial: u64,
}

/// The pool's share of the settings.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub workers: usize,
    /// More workers may be started, up to this, while they mostly wait.
    pub max_workers: usize,
    pub stall_timeout: Duration,
    pub max_restarts_per_minute: usize,
    /// Descriptors left free for the walker threads while a worker starts
    /// (`limits::walker_fds`), so a start never starves the walk.
    pub spare_fds: usize,
}

/// What the pool's channels brought, by slot.
pub enum Heard {
    Message(usize, FromWorker),
    /// A message that does not decode: its worker is to be killed
    /// (`kill_bad`), in its turn among the others.
    Undecodable(usize, String),
    /// The worker of this slot exited or died.
    Closed(usize),
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

pub struct Pool {
    pub sizes: Sizes,
    exe: PathBuf,
    pub init: WorkerInit,
    /// `--bwlimit`: the one budget every worker draws from.
    budget: Budget,
    set: IpcReceiverSet,
    pub slots: Vec<Slot>,
    set_ids: HashMap<u64, usize>,
    restarts: VecDeque<Instant>,
    /// When the stall watchdog last ran (to notice the supervisor paused).
    last_check: Option<Instant>,
    busy: Busy,
    /// Workers started, and worker deaths survived (failed starts
    /// included): the ledger copies them into the summary.
    pub started: u32,
    pub deaths: u32,
}

impl Pool {
    pub fn new(sizes: Sizes, exe: PathBuf, init: WorkerInit) -> Result<Self> {
        Ok(Pool {
            sizes,
            exe,
            init,
            budget: Budget::new(),
            set: IpcReceiverSet::new().map_err(|e| Error::Fatal(format!("ipc: {e}")))?,
            slots: Vec::new(),
            set_ids: HashMap::new(),
            restarts: VecDeque::new(),
            last_check: None,
            busy: Busy::default(),
            started: 0,
            deaths: 0,
        })
    }

    pub fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.worker.is_some()).count()
    }

    /// Whether a started worker has room for another batch.
    pub fn idle_capacity(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.worker.is_some() && s.inflight.len() < WINDOW)
    }

    /// Whether no worker holds any batch.
    pub fn drained(&self) -> bool {
        self.slots.iter().all(|s| s.inflight.is_empty())
    }

    pub fn partial_bytes(&self) -> u64 {
        self.slots.iter().map(|s| s.partial).sum()
    }

    /// Wait up to `timeout` for the workers' messages. An undecodable
    /// message kills its worker (its channel then closes).
    pub fn select(&mut self, timeout: Duration) -> Result<Vec<Heard>> {
        let results = match self.set.try_select_timeout(timeout) {
            Ok(results) => results,
            Err(TrySelectError::Empty) => return Ok(Vec::new()),
            Err(TrySelectError::IoError(e)) => {
                return Err(Error::Fatal(format!("ipc select: {e:?}")));
            }
        };
        let mut heard = Vec::new();
        for r in results {
            match r {
                IpcSelectionResult::MessageReceived(id, msg) => {
                    let Some(&slot) = self.set_ids.get(&id) else {
                        continue;
                    };
                    match msg.to() {
                        Ok(m) => {
                            self.slots[slot].last_activity = Some(Instant::now());
                            heard.push(Heard::Message(slot, m));
                        }
                        Err(e) => heard.push(Heard::Undecodable(slot, e.to_string())),
                    }
                }
                IpcSelectionResult::ChannelClosed(id) => {
                    if let Some(slot) = self.set_ids.remove(&id) {
                        heard.push(Heard::Closed(slot));
                    }
                }
            }
        }
        Ok(heard)
    }

    pub fn kill_bad(&mut self, slot: usize, why: &str) {
        if let Some(w) = self.slots[slot].worker.as_mut() {
            log::warn!("worker {}: undecodable message ({why}); killing it", w.pid);
            let _ = w.child.kill();
        }
    }

    /// Send batch `id` to the worker of slot `i`. A failed send means the
    /// worker is dying: the tasks stay in flight and are re-dispatched when
    /// its channel closes.
    pub fn send(&mut self, i: usize, id: u64, tasks: Vec<Task>) {
        let slot = &mut self.slots[i];
        if slot.inflight.is_empty() {
            slot.last_activity = Some(Instant::now());
        }
        if let Some(w) = &slot.worker {
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

    /// Add a worker to the pool; its index, or None when no more fit.
    pub fn add_worker(&mut self) -> Result<Option<usize>> {
        let i = self.slots.len();
        self.slots.push(Slot::default());
        if let Err(e) = self.start(i) {
            // The run ends; its counts must not show a slot never started.
            self.slots.pop();
            return Err(e);
        }
        if self.slots[i].worker.is_none() {
            self.slots.pop();
            return Ok(None);
        }
        self.started += 1;
        Ok(Some(i))
    }

    /// Start the worker of `slot`. One that dies before it connects (killed
    /// by an operator or the OOM killer while starting) is a worker death
    /// like any other: counted against the restart budget and tried again,
    /// never fatal by itself.
    pub fn start(&mut self, slot: usize) -> Result<()> {
        let mut init = self.init.clone();
        init.worker = slot as u32;
        let (w, rx) = loop {
            match spawn::spawn(&self.exe, init.clone(), &self.budget, self.sizes.spare_fds) {
                Ok(started) => break started,
                Err(spawn::NotStarted::NoDescriptors) => return self.no_descriptors(),
                Err(spawn::NotStarted::Failed(msg)) => {
                    log::warn!("worker {slot} did not start: {msg}; starting another");
                    self.deaths += 1;
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
        let live = self.live();
        if live == 0 {
            return Err(Error::Fatal(format!(
                "too few file descriptors to start even one worker (the limit is {}, ulimit -n); \
                 raise the limit",
                super::super::limits::raise_nofile()
            )));
        }
        if self.sizes.workers > live || self.sizes.max_workers > live {
            log::warn!(
                "the file-descriptor limit ({}, ulimit -n) leaves room for {live} workers; \
                 running with {live}",
                super::super::limits::raise_nofile()
            );
        }
        self.sizes.workers = self.sizes.workers.min(live);
        self.sizes.max_workers = self.sizes.max_workers.min(live);
        Ok(())
    }

    /// A worker died: count it against the restart rate cap, which ends the
    /// run when workers keep dying.
    pub fn note_restart(&mut self) -> Result<()> {
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() > self.sizes.max_restarts_per_minute {
            return Err(Error::Fatal(format!(
                "workers keep dying ({} restarts within a minute); giving up",
                self.restarts.len()
            )));
        }
        Ok(())
    }

    /// Latency-bound storage: when every worker holds work, more is waiting
    /// (`pending`), and the workers were found running (not sleeping on
    /// I/O) in fewer than half of the samples of the last second, start one
    /// more worker, up to `max_workers`. CPU-bound workers show as running
    /// (even on a loaded machine, where they wait runnable), so a CPU-bound
    /// run does not grow.
    pub fn maybe_grow(&mut self, pending: bool) -> Result<()> {
        if self.slots.len() >= self.sizes.max_workers {
            return Ok(());
        }
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
            let target = (self.slots.len() + more).min(self.sizes.max_workers);
            while self.slots.len() < target.min(self.sizes.max_workers) {
                if self.add_worker()?.is_none() {
                    break;
                }
            }
            log::info!(
                "workers wait on I/O ({running} of {total} samples running): now {} workers",
                self.slots.len()
            );
        }
        Ok(())
    }

    /// Kill a worker that holds work but has reported nothing for
    /// `--stall-timeout` of the supervisor's own running time. A gap in the
    /// supervisor's loop longer than `PAUSE_GAP` (the whole job frozen,
    /// `docker pause`, a suspended VM, or the loop busy) says nothing about
    /// the workers, so it restarts every stall clock instead of counting.
    pub fn check_stalls(&mut self) {
        let now = Instant::now();
        let gap = self.last_check.replace(now).map(|t| now - t);
        if let Some(gap) = gap.filter(|g| *g > PAUSE_GAP) {
            log::debug!(
                "supervisor did not run for {:.1} s; stall clocks restarted",
                gap.as_secs_f64()
            );
            for s in &mut self.slots {
                if s.last_activity.is_some() {
                    s.last_activity = Some(now);
                }
            }
            return;
        }
        let limit = self.sizes.stall_timeout;
        for s in &mut self.slots {
            let stalled = !s.inflight.is_empty()
                && !s.stall_killed
                && s.last_activity.is_some_and(|t| t.elapsed() > limit);
            if let (true, Some(w)) = (stalled, s.worker.as_mut()) {
                log::warn!(
                    "worker {} made no progress for {:.1} s; killing it",
                    w.pid,
                    limit.as_secs_f64()
                );
                s.stall_killed = true;
                let _ = w.child.kill();
            }
        }
    }

    /// Ask every live worker to stop at its next file boundary.
    pub fn ask_to_stop(&self) {
        for s in &self.slots {
            if let Some(w) = &s.worker {
                let _ = w.tx.send(ToWorker::Shutdown);
            }
        }
    }

    /// Tell every live worker to exit, then reap them: all are told first so
    /// they exit side by side rather than one after another.
    pub fn stop_all(&mut self) {
        let mut stopping: Vec<_> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.worker.take())
            .collect();
        for w in &stopping {
            let _ = w.tx.send(ToWorker::Shutdown);
        }
        for w in &mut stopping {
            reap(&mut w.child);
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

/// Wait up to ~1 s for a worker to exit, then kill it. The poll starts at
/// 50 µs and doubles up to 5 ms: a worker told to stop exits in about a
/// millisecond, and a flat 5 ms sleep per worker was most of the idle tail of
/// a small-file copy (4 workers reaped one after another: ~20 ms).
pub fn reap(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut pause = Duration::from_micros(50);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                return child.wait().ok();
            }
        }
    }
}

/// How a reaped worker ended, for the log.
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match (s.signal(), s.code()) {
            (Some(sig), _) => format!(
                "was killed by signal {sig} ({})",
                signal_hook::low_level::signal_name(sig).unwrap_or("signal")
            ),
            (_, Some(code)) => format!("exited with status {code}"),
            _ => "ended".into(),
        },
        None => "could not be reaped".into(),
    }
}
