//! Recovering from worker failures: the stall watchdog, undecodable
//! messages, and a worker's death (reap, blame the exact task it was on,
//! quarantine after `MAX_CRASHES`, re-dispatch the rest, respawn within a
//! rate cap).

use super::{Dispatch, MAX_CRASHES};
use crate::error::{Error, Result};
use crate::protocol::{Outcome, Task};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The dispatch loop wakes at least every 100 ms; a longer gap between two
/// stall checks means the supervisor itself was not running.
const PAUSE_GAP: Duration = Duration::from_secs(1);

impl Dispatch<'_> {
    pub(super) fn kill_bad(&mut self, set_id: u64, why: &str) {
        if let Some(&slot) = self.set_ids.get(&set_id) {
            if let Some(w) = self.slots[slot].worker.as_mut() {
                log::warn!("worker {}: undecodable message ({why}); killing it", w.pid);
                let _ = w.child.kill();
            }
        }
    }

    /// Kill a worker that holds work but has reported nothing for
    /// `--stall-timeout` of the supervisor's own running time. A gap in the
    /// supervisor's loop longer than `PAUSE_GAP` (the whole job frozen,
    /// `docker pause`, a suspended VM, or the loop busy) says nothing about
    /// the workers, so it restarts every stall clock instead of counting.
    pub(super) fn check_stalls(&mut self) {
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
        let limit = self.opts.stall_timeout;
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

    /// A worker's channel closed: it exited or died. Reap it; unless we are
    /// shutting down, re-dispatch its unfinished tasks and replace it.
    pub(super) fn on_closed(&mut self, set_id: u64) -> Result<()> {
        let Some(slot) = self.set_ids.remove(&set_id) else {
            return Ok(());
        };
        let Some(mut w) = self.slots[slot].worker.take() else {
            return Ok(());
        };
        let status = reap(&mut w.child);
        let inflight = std::mem::take(&mut self.slots[slot].inflight);
        if self.shutting_down {
            for b in inflight {
                self.retry.extend(b.tasks.into_iter().skip(b.reported));
            }
            return Ok(());
        }
        // The culprit is the task the worker last started (shared memory);
        // the reported order is not enough, as outcomes are sent in groups.
        let at = w.position.get();
        let mut culprit = None;
        let mut unfinished: Vec<Task> = Vec::new();
        for b in inflight {
            for (i, t) in b.tasks.into_iter().enumerate().skip(b.reported) {
                if culprit.is_none() && at == Some((b.id, i)) {
                    culprit = Some(t);
                } else {
                    unfinished.push(t);
                }
            }
        }
        self.summary.worker_restarts += 1;
        // Survived: a warning. An ERROR is for what the user must act on
        // (a quarantined entry is reported as a failed entry).
        log::warn!(
            "worker {} {}; re-dispatching its {} unfinished entries",
            w.pid,
            describe(status),
            unfinished.len()
        );
        if let Some(culprit) = culprit {
            self.remove_dead_temp(&culprit, w.pid);
            let n = self.crashes.entry(culprit.rel.0.clone()).or_insert(0);
            *n += 1;
            if *n >= MAX_CRASHES {
                let msg = format!("worker crashed {MAX_CRASHES} times while copying it; skipped");
                self.account(
                    &culprit,
                    Outcome::Failed {
                        kind: crate::protocol::ErrorKind::Other,
                        msg,
                        dst: false,
                        errno: 0,
                    },
                );
            } else {
                self.retry.push_back(culprit);
            }
        }
        self.retry.extend(unfinished);
        self.note_restart()?;
        self.start(slot)
    }

    /// A worker dies in the middle of at most one entry (its culprit); its
    /// temp, if any, sits in that entry's destination directory.
    fn remove_dead_temp(&self, culprit: &Task, pid: u32) {
        let (parent, _) = crate::copy::split_rel(&culprit.rel.0);
        let dir = crate::copy::open_beneath(
            &self.dst_root,
            parent,
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
        );
        if let Ok(dir) = dir {
            match crate::copy::temp::remove_worker_temps(
                &dir,
                self.init.run_id,
                crate::copy::temp::writer(self.init.rank, u64::from(pid)),
            ) {
                Ok(n) if n > 0 => log::debug!("removed {n} temp file(s) of dead worker {pid}"),
                Ok(_) => {}
                Err(e) => log::warn!("cleaning up after worker {pid}: {e}"),
            }
        }
    }

    pub(super) fn note_restart(&mut self) -> Result<()> {
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() > self.opts.max_restarts_per_minute {
            return Err(Error::Fatal(format!(
                "workers keep dying ({} restarts within a minute); giving up",
                self.restarts.len()
            )));
        }
        Ok(())
    }
}

/// Wait up to ~1 s for a worker to exit, then kill it. The poll starts at
/// 50 µs and doubles up to 5 ms: a worker told to stop exits in about a
/// millisecond, and a flat 5 ms sleep per worker was most of the idle tail of
/// a small-file copy (4 workers reaped one after another: ~20 ms).
pub(super) fn reap(child: &mut Child) -> Option<ExitStatus> {
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

fn describe(status: Option<ExitStatus>) -> String {
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
