//! Worker mode: connect to the supervisor, receive `Init`, then copy batches
//! in order, reporting outcomes in task order, until `Shutdown` or until the
//! supervisor disappears (IPC end-of-file, or PR_SET_PDEATHSIG).

mod forward;
#[cfg(test)]
mod fuzz;
mod translate;
mod validate;
pub use validate::task as validate_task;

use crate::copy::Copier;
use crate::error::ExitStatus;
use crate::protocol::{
    ErrorKind, FromWorker, Outcome, Position, Task, ToWorker, PARENT_ENV, PROTOCOL_VERSION,
};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use ipc_channel::IpcError;
use ipc_channel::TryRecvError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Partial outcomes are flushed at least this often, so a crash loses little
/// and the supervisor's stall watchdog sees activity.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How often the worker peeks at its task channel for `Shutdown` mid-batch.
const POLL_EVERY: Duration = Duration::from_millis(50);

pub fn run(token: String) -> ExitStatus {
    // Die with the supervisor: no orphan keeps copying.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Some(ppid) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    {
        if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(ppid) {
            return ExitStatus::Fatal;
        }
    }
    crate::failpoint::setup();
    crate::failpoint::hit("worker::before_connect", b"");
    // Files are created with their final permission bits.
    rustix::process::umask(rustix::fs::Mode::empty());
    match serve(token) {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            crate::util::err_line(&format!("pcopy worker {}: {e}", std::process::id()));
            ExitStatus::Fatal
        }
    }
}

fn serve(token: String) -> Result<(), String> {
    let up: IpcSender<FromWorker> =
        IpcSender::connect(token).map_err(|e| format!("connect: {e}"))?;
    let (tasks_tx, tasks_rx) = ipc::channel::<ToWorker>().map_err(|e| e.to_string())?;
    up.send(FromWorker::Hello {
        pid: std::process::id(),
        version: PROTOCOL_VERSION,
        tasks: tasks_tx,
    })
    .map_err(|e| format!("hello: {e}"))?;
    let fatal = |msg: String| {
        let _ = up.send(FromWorker::Fatal { msg: msg.clone() });
        msg
    };
    let (init, position, budget) = match tasks_rx.recv() {
        Ok(ToWorker::Init(init, position, budget)) => (init, position, budget),
        Ok(_) => return Err(fatal("protocol error: expected Init first".into())),
        Err(IpcError::Disconnected) => return Ok(()), // supervisor gone before Init
        Err(e) => return Err(fatal(format!("undecodable Init message: {e}"))),
    };
    forward::init_worker(up.clone(), init.log_level);
    let (src, dst) = validate::adopt_roots(&init.roots).map_err(|e| fatal(e.to_string()))?;
    let run_id = init.copy.run_id;
    let bwlimit = init.bwlimit;
    let bases = validate::adopt_bases(&init.bases).map_err(|e| fatal(e.to_string()))?;
    let copier = Copier::new(src, dst, init.copy).with_bases(bases);
    Worker {
        up: up.clone(),
        rx: tasks_rx,
        position,
        queue: VecDeque::new(),
        stop: false,
        broken: None,
        last_send: Instant::now(),
        last_report: Instant::now(),
        last_poll: Instant::now(),
        unreported_bytes: 0,
        run_id,
        budget,
        bwlimit,
    }
    .main_loop(copier)
    .map_err(fatal)
}

struct Worker {
    up: IpcSender<FromWorker>,
    rx: IpcReceiver<ToWorker>,
    position: Position,
    /// Batches received while busy (read early when polling for Shutdown).
    queue: VecDeque<(u64, Vec<Task>)>,
    stop: bool,
    /// Why the task channel can no longer be trusted (an undecodable or
    /// out-of-protocol message): the worker stops and exits non-zero.
    broken: Option<String>,
    /// Any message up: heartbeats are due this long after it.
    last_send: Instant,
    /// Outcomes up: heartbeats must not hold back the files finished since,
    /// or the live count of files lags the bytes by a whole batch.
    last_report: Instant,
    last_poll: Instant,
    unreported_bytes: u64,
    run_id: u64,
    /// `--bwlimit`: the run's shared budget and its rate (0: none).
    budget: crate::protocol::Budget,
    bwlimit: u64,
}

impl Worker {
    /// `Err` when the supervisor sent something undecodable or out of
    /// protocol; a disconnect or Shutdown ends the loop normally.
    fn main_loop(mut self, mut copier: Copier) -> Result<(), String> {
        while !self.stop {
            let (id, tasks) = match self.queue.pop_front() {
                Some(b) => b,
                None => match self.rx.recv() {
                    Ok(msg) => match self.accept(msg) {
                        Some(b) => b,
                        None => break,
                    },
                    Err(IpcError::Disconnected) => break,
                    Err(e) => {
                        self.broken = Some(format!("undecodable message from supervisor: {e}"));
                        break;
                    }
                },
            };
            if self.run_batch(&mut copier, id, &tasks).is_err() {
                break; // supervisor unreachable
            }
        }
        self.broken.take().map_or(Ok(()), Err)
    }

    /// A decoded message: a batch to run, or `None` after Shutdown or a
    /// protocol violation (noted in `broken`).
    fn accept(&mut self, msg: ToWorker) -> Option<(u64, Vec<Task>)> {
        match msg {
            ToWorker::Batch { id, tasks } => Some((id, tasks)),
            ToWorker::Shutdown => {
                self.stop = true;
                None
            }
            ToWorker::Init(..) => {
                self.broken = Some("protocol error: a second Init".into());
                self.stop = true;
                None
            }
        }
    }

    fn run_batch(&mut self, copier: &mut Copier, id: u64, tasks: &[Task]) -> Result<(), ()> {
        let mut outcomes = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            self.position.set(id, i);
            self.poll();
            if self.stop {
                break;
            }
            let outcome = match validate::task(task, self.run_id) {
                Ok(()) => translate::run(copier, task, &mut |n| self.tick(n)),
                Err(msg) => Outcome::Failed {
                    kind: ErrorKind::Other,
                    msg,
                    dst: false,
                    errno: 0,
                },
            };
            if self.stop && matches!(outcome, Outcome::Failed { .. }) {
                break; // interrupted mid-file: the temp is gone, report nothing
            }
            outcomes.push(outcome);
            if self.last_report.elapsed() >= FLUSH_EVERY {
                self.report(copier, id, std::mem::take(&mut outcomes), false)?;
            }
        }
        let finished = !self.stop;
        self.report(copier, id, outcomes, finished)
    }

    /// Send outcomes; under `--fsync` only once the names they report are
    /// durable (`Copier::sync_dirs`).
    fn report(
        &mut self,
        copier: &mut Copier,
        batch: u64,
        outcomes: Vec<Outcome>,
        finished: bool,
    ) -> Result<(), ()> {
        self.last_send = Instant::now();
        self.last_report = self.last_send;
        if let Err(e) = copier.sync_dirs() {
            log::warn!("--fsync: syncing the directories written: {e}");
        }
        self.unreported_bytes = 0;
        self.up
            .send(FromWorker::Report {
                batch,
                outcomes,
                finished,
            })
            .map_err(|_| ())
    }

    /// Called after each data chunk: the shared I/O budget, heartbeat, and
    /// shutdown check.
    fn tick(&mut self, bytes: u64) -> bool {
        let mut wait = self.budget.charge(bytes, self.bwlimit);
        // Sleep off the debt in short steps, still answering Shutdown.
        while !wait.is_zero() && !self.stop {
            let step = wait.min(POLL_EVERY);
            std::thread::sleep(step);
            wait -= step;
            self.poll();
        }
        self.unreported_bytes += bytes;
        if self.last_send.elapsed() >= FLUSH_EVERY {
            let bytes = std::mem::take(&mut self.unreported_bytes);
            self.last_send = Instant::now();
            if self.up.send(FromWorker::Progress { bytes }).is_err() {
                self.stop = true;
            }
        }
        self.poll();
        !self.stop
    }

    /// Peek at the task channel (rate-limited): queue batches, note Shutdown.
    fn poll(&mut self) {
        if self.last_poll.elapsed() < POLL_EVERY {
            return;
        }
        self.last_poll = Instant::now();
        loop {
            match self.rx.try_recv() {
                Ok(msg) => {
                    if let Some(b) = self.accept(msg) {
                        self.queue.push_back(b);
                    }
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::IpcError(IpcError::Disconnected)) => {
                    self.stop = true;
                    return;
                }
                Err(TryRecvError::IpcError(e)) => {
                    self.broken = Some(format!("undecodable message from supervisor: {e}"));
                    self.stop = true;
                    return;
                }
            }
        }
    }
}
