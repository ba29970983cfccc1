//! A worker's death: reap it, blame the exact task it was on (quarantined
//! after `MAX_CRASHES`), remove its temp, re-dispatch the rest and start
//! another within the restart rate cap. It spans the four parts, so it is
//! the dispatcher's own.

use super::pool::{describe, reap};
use super::scheduler::MAX_CRASHES;
use super::Dispatch;
use crate::error::Result;
use crate::protocol::{Outcome, Task};

impl Dispatch<'_> {
    /// A worker's channel closed: it exited or died. Reap it; unless we are
    /// shutting down, re-dispatch its unfinished tasks and replace it.
    pub(super) fn on_closed(&mut self, slot: usize) -> Result<()> {
        let Some(mut w) = self.pool.slots[slot].worker.take() else {
            return Ok(());
        };
        let status = reap(&mut w.child);
        let inflight = std::mem::take(&mut self.pool.slots[slot].inflight);
        if self.shutting_down {
            for b in inflight {
                self.scheduler.retry(b.tasks.into_iter().skip(b.reported));
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
        self.pool.deaths += 1;
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
            if let Some(quarantined) = self.scheduler.blame(culprit) {
                let msg = format!("worker crashed {MAX_CRASHES} times while copying it; skipped");
                self.account(
                    &quarantined,
                    Outcome::Failed {
                        kind: crate::protocol::ErrorKind::Other,
                        msg,
                        dst: false,
                        errno: 0,
                    },
                );
            }
        }
        self.scheduler.retry(unfinished);
        self.pool.note_restart()?;
        self.pool.start(slot)
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
            let init = &self.pool.init;
            match crate::copy::temp::remove_worker_temps(
                &dir,
                init.copy.run_id,
                crate::copy::temp::writer(init.copy.rank, u64::from(pid)),
            ) {
                Ok(n) if n > 0 => log::debug!("removed {n} temp file(s) of dead worker {pid}"),
                Ok(_) => {}
                Err(e) => log::warn!("cleaning up after worker {pid}: {e}"),
            }
        }
    }
}
