//! The run's sizes, decided once before anything starts: the settings ask
//! for workers, the machine answers with its CPUs and its descriptor
//! budget (ripgrep's low-to-high arguments step). Nothing rewrites the
//! settings afterwards; the walk, the dispatcher and the log take their
//! sizes from here.

use super::limits;
use crate::config::Settings;
use crate::error::Result;

/// What this run uses, once the machine had its say.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Workers (`-j`, lowered to fit the descriptor limit).
    pub workers: usize,
    /// Workers the pool may grow to while they wait on I/O.
    pub max_workers: usize,
    /// Walker threads.
    pub walk_threads: usize,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Ranks of the MPI job (1 without one).
    pub ranks: u32,
    /// Why the worker count was lowered, for the log once it is up.
    pub shrunk: Option<String>,
    /// What of ownership the walk compares and the copies and directories
    /// keep: one decision for all three.
    pub preserve: crate::copy::Preserve,
}

impl Plan {
    /// Fit the settings' sizes to this machine. A dry run starts no worker,
    /// so it keeps them as asked.
    pub fn new(s: &Settings, ranks: u32) -> Result<Self> {
        let cpus = crate::util::cpus();
        let mut plan = Plan {
            workers: s.processes,
            max_workers: s.max_processes.max(s.processes),
            walk_threads: crate::work::io_threads(),
            cpus,
            ranks,
            shrunk: None,
            preserve: crate::copy::Preserve::for_this_process(),
        };
        if s.dry_run {
            return Ok(plan);
        }
        // Walker threads beyond one per CPU only help on latency-bound
        // storage: under a tight descriptor limit, workers come first. The
        // growth limit must fit the descriptor budget too (silently:
        // growing is an optimisation, not something the user asked for).
        if s.max_processes > s.processes {
            plan.max_workers = limits::fit_workers(s.max_processes, plan.walk_threads)
                .map_or(s.processes, |(n, _)| n.max(s.processes));
        }
        // Fewer walker threads first (one per CPU, then one), then fewer
        // workers, then a refusal.
        let walkers = plan.walk_threads;
        let mut tries = [walkers, cpus.min(walkers), 1].into_iter().peekable();
        while let Some(w) = tries.next() {
            match limits::fit_workers(s.processes, w) {
                Ok((n, why)) => {
                    (plan.walk_threads, plan.workers, plan.shrunk) = (w, n, why);
                    break;
                }
                Err(e) if tries.peek().is_none() => return Err(e),
                Err(_) => {}
            }
        }
        Ok(plan)
    }
}
