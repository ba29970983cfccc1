//! File-descriptor budget. Every worker costs the supervisor a few
//! descriptors (its IPC socket pair, its shared-memory position word, a
//! transient handshake socket and spawn pipe), and each walker thread holds a
//! source and a destination directory open. Running out mid-run makes
//! ipc-channel fail deep inside (it asserts on a failed mmap), so the budget
//! is settled before anything starts: raise the soft limit to the hard one,
//! as most servers do, then fit the worker count inside it.

use crate::error::{Error, Result};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the supervisor holds regardless of workers: stdio, roots and
/// their dups, the log file, the IPC receiver set, the lock, the signal
/// pipe (15, counted in /proc/self/fd at the first spawn, walkers' aside),
/// and one worker's spawn in progress (`SPAWN_PEAK`: handshake socket,
/// exec pipe, channel pair, memfd and its dups).
const BASE: u64 = 15 + SPAWN_PEAK as u64;
/// Descriptors a spawn holds at once in the supervisor beyond what the
/// worker keeps (measured with strace: the one-shot server's socket, the
/// exec-error pipe, the accepted channel pair, the memfd of its position
/// word and the dups made to share it and the I/O budget), with margin.
pub const SPAWN_PEAK: usize = 10;
/// Per walker thread: the source and destination directories it holds,
/// and as many kept free for it while a worker starts (the spawn checks
/// that room before it begins, `walker_fds`).
const PER_WALKER: u64 = 4;
/// Per worker, held by the supervisor for the worker's life (measured: 3:
/// the results socket, the task sender, the position memfd).
const PER_WORKER: u64 = 3;
/// What one worker process needs itself (measured: 12 while copying, plus
/// source, temp and a long-path segment).
const WORKER_NEEDS: u64 = 20;

/// Descriptors a worker start leaves free for `walkers` walker threads
/// (a directory on each side, and a long path's segment: 2 each).
pub fn walker_fds(walkers: usize) -> usize {
    2 * walkers
}

/// Raise the soft descriptor limit to the hard limit; return the soft
/// limit now in force.
pub fn raise_nofile() -> u64 {
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.unwrap_or(1 << 20);
    if lim.current.is_some_and(|c| c < hard) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: lim.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// How many of the `requested` workers fit in `limit` descriptors with
/// `walkers` walker threads. `Err` when not even one does.
pub fn workers_within(limit: u64, requested: usize, walkers: usize) -> Result<usize> {
    let base = BASE + PER_WALKER * walkers as u64;
    let need_one = (base + PER_WORKER).max(WORKER_NEEDS);
    if limit < need_one {
        return Err(Error::Fatal(format!(
            "too few file descriptors: the limit is {limit} (ulimit -n) and one worker \
             needs at least {need_one}; raise the limit"
        )));
    }
    let fit = ((limit - base) / PER_WORKER).max(1) as usize;
    Ok(requested.min(fit))
}

/// Settle the worker count for this run; the message says why it shrank
/// (logged as a warning once logging is up).
pub fn fit_workers(requested: usize, walkers: usize) -> Result<(usize, Option<String>)> {
    let limit = raise_nofile();
    let n = workers_within(limit, requested, walkers)?;
    let why = (n < requested).then(|| {
        format!(
            "only {n} of {requested} workers fit in the file-descriptor limit of {limit} \
             (ulimit -n); running with {n}"
        )
    });
    Ok((n, why))
}

/// mpirun binds each rank to one core by default (with 2 ranks or fewer),
/// and workers inherit the binding: say so when the CPUs this rank may use
/// are fewer than its workers.
pub fn warn_affinity(workers: usize) {
    let Ok(set) = rustix::thread::sched_getaffinity(None) else {
        return;
    };
    let cpus = set.count() as usize;
    if cpus < workers.min(online_cpus().unwrap_or(usize::MAX)) {
        log::warn!(
            "this rank may use {cpus} CPU(s) for {workers} workers: mpirun binds ranks to cores; \
             run with --bind-to none (srun: --cpu-bind=none)"
        );
    }
}

/// CPUs online on this machine (`/sys/devices/system/cpu/online`, e.g.
/// `0-3,8`), whatever this process may use.
fn online_cpus() -> Option<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut n = 0;
    for part in text.trim().split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_count_shrinks_to_fit_and_refuses_below_one() {
        assert_eq!(workers_within(1 << 20, 8, 2).unwrap(), 8);
        let lowered = workers_within(48, 8, 2).unwrap();
        assert!((1..8).contains(&lowered), "{lowered}");
        let e = workers_within(16, 8, 2).unwrap_err().to_string();
        assert!(e.contains("ulimit -n") && e.contains("16"), "{e}");
    }
}
