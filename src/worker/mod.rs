//! Worker mode: connect to the supervisor, receive `Init`, then copy batches
//! in order, reporting outcomes in task order, until `Shutdown` or until the
//! supervisor disappears (IPC end-of-file, or PR_SET_PDEATHSIG).

use crate::copy::Copier;
use crate::error::ExitStatus;
use crate::protocol::{FromWorker, Outcome, Position, Task, ToWorker, PROTOCOL_VERSION};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use ipc_channel::TryRecvError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Partial outcomes are flushed at least this often, so a crash loses little
/// and the supervisor's stall watchdog sees activity.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How often the worker peeks at its task channel for `Shutdown` mid-batch.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Environment variable carrying the supervisor's pid, to detect a parent
/// that died before PR_SET_PDEATHSIG was armed.
pub const PARENT_ENV: &str = "PCOPY_SUPERVISOR_PID";

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
    // Files are created with their final permission bits.
    rustix::process::umask(rustix::fs::Mode::empty());
    match serve(token) {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            eprintln!("pcopy worker {}: {e}", std::process::id());
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
    let (init, position) = match tasks_rx.recv() {
        Ok(ToWorker::Init(init, position)) => (init, position),
        Ok(_) => return Err("expected Init".into()),
        Err(_) => return Ok(()), // supervisor gone before Init: nothing to do
    };
    crate::logging::init_worker(up.clone(), init.log_level);
    let copier = match Copier::new(init) {
        Ok(c) => c,
        Err(e) => {
            let _ = up.send(FromWorker::Fatal { msg: e.to_string() });
            return Err(e.to_string());
        }
    };
    Worker {
        up,
        rx: tasks_rx,
        position,
        queue: VecDeque::new(),
        stop: false,
        last_send: Instant::now(),
        last_poll: Instant::now(),
        unreported_bytes: 0,
    }
    .main_loop(copier);
    Ok(())
}

struct Worker {
    up: IpcSender<FromWorker>,
    rx: IpcReceiver<ToWorker>,
    position: Position,
    /// Batches received while busy (read early when polling for Shutdown).
    queue: VecDeque<(u64, Vec<Task>)>,
    stop: bool,
    last_send: Instant,
    last_poll: Instant,
    unreported_bytes: u64,
}

impl Worker {
    fn main_loop(mut self, mut copier: Copier) {
        while !self.stop {
            let (id, tasks) = match self.queue.pop_front() {
                Some(b) => b,
                None => match self.rx.recv() {
                    Ok(ToWorker::Batch { id, tasks }) => (id, tasks),
                    Ok(_) | Err(_) => return, // Shutdown, stray Init, or disconnect
                },
            };
            if self.run_batch(&mut copier, id, &tasks).is_err() {
                return; // supervisor unreachable
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
            let outcome = copier.run(task, &mut |n| self.tick(n));
            if self.stop && matches!(outcome, Outcome::Failed { .. }) {
                break; // interrupted mid-file: the temp is gone, report nothing
            }
            outcomes.push(outcome);
            if self.last_send.elapsed() >= FLUSH_EVERY {
                self.report(id, std::mem::take(&mut outcomes), false)?;
            }
        }
        let finished = !self.stop;
        self.report(id, outcomes, finished)
    }

    fn report(&mut self, batch: u64, outcomes: Vec<Outcome>, finished: bool) -> Result<(), ()> {
        self.last_send = Instant::now();
        self.unreported_bytes = 0;
        self.up
            .send(FromWorker::Report {
                batch,
                outcomes,
                finished,
            })
            .map_err(|_| ())
    }

    /// Called after each data chunk: heartbeat, and shutdown check.
    fn tick(&mut self, bytes: u64) -> bool {
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
                Ok(ToWorker::Batch { id, tasks }) => self.queue.push_back((id, tasks)),
                Ok(_) => self.stop = true,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::IpcError(_)) => {
                    self.stop = true;
                    return;
                }
            }
        }
    }
}
