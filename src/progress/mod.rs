//! Live progress, one interface for every display (xcp's `StatusUpdater`
//! shape): the dispatcher takes one `Snapshot` per round, by one rule for
//! what counts as done, and hands it to each display, which decides itself
//! when to show it: the terminal bar (`bar.rs`, every 100 ms), the log
//! file's plain line (`LogLine`, every 10 s, so long runs leave a trace),
//! and under MPI rank 0's job line on stderr (`JobLine`, every 5 s, from
//! every rank's snapshot summed).

mod bar;

pub use bar::Bar;

use crate::stats::Summary;
use crate::work::Found;
use indicatif::{HumanBytes, HumanDuration};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(10);
#[cfg(feature = "mpi")]
const JOB_EVERY: Duration = Duration::from_secs(5);

/// What the dispatch loop knows beyond the summary.
pub struct Live {
    pub workers_alive: usize,
    pub walking: bool,
    /// Bytes of files still being copied (from heartbeats).
    pub partial_bytes: u64,
}

/// One moment of the run, as every display shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The walk is still finding entries: the totals are lower bounds.
    pub walking: bool,
    /// Entries dealt with: copied, cloned, up to date (found so by the
    /// walk or a worker), failed, ignored.
    pub files_done: u64,
    pub files_found: u64,
    /// Their bytes, and those of the files being copied now.
    pub bytes_done: u64,
    pub bytes_found: u64,
    /// Bytes written by copying (not cloning), the ones being written now
    /// included: what the rate measures.
    pub bytes_copied: u64,
    /// Bytes of files placed, copied or cloned (not those being copied
    /// now): the job line's "copied".
    pub bytes_placed: u64,
    pub workers: usize,
    pub restarts: u32,
}

impl Snapshot {
    /// The one rule for what is done, for every display and every rank.
    pub fn of(sm: &Summary, found: &Found, live: &Live) -> Self {
        let skipped = found.skipped_files.load(Ordering::Relaxed);
        Snapshot {
            walking: live.walking,
            files_done: sm.files_copied
                + sm.files_cloned
                + sm.files_skipped
                + skipped
                + sm.files_failed
                + sm.symlinks_copied
                + sm.specials_copied
                + sm.entries_ignored,
            files_found: found.files.load(Ordering::Relaxed),
            bytes_done: sm.bytes_copied
                + sm.bytes_cloned
                + sm.bytes_skipped
                + found.skipped_bytes.load(Ordering::Relaxed)
                + live.partial_bytes,
            bytes_found: found.bytes.load(Ordering::Relaxed),
            bytes_copied: sm.bytes_copied + live.partial_bytes,
            bytes_placed: sm.bytes_copied + sm.bytes_cloned,
            workers: live.workers_alive,
            restarts: sm.worker_restarts,
        }
    }
}

/// A display of the run's progress.
pub trait Display {
    /// The run's latest snapshot; the display decides whether to show it now.
    fn update(&mut self, s: &Snapshot);
    /// The run ended or stopped: nothing more is shown.
    fn clear(&mut self) {}
}

/// The log file's line every 10 s:
/// `1234/5000 files 1.20 GiB/4.00 GiB 350 MiB/s ETA 12 seconds 2 workers, 0 restarts`
/// (`+` after the totals and no ETA while the walk still counts).
pub struct LogLine {
    start: Instant,
    last: Instant,
}

impl LogLine {
    pub fn new() -> Self {
        LogLine {
            start: Instant::now(),
            last: Instant::now(),
        }
    }

    fn line(&self, s: &Snapshot) -> String {
        let more = if s.walking { "+" } else { "" };
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = s.bytes_copied as f64 / secs;
        let eta = if s.walking || rate <= 0.0 || s.bytes_found <= s.bytes_done {
            String::new()
        } else {
            let left = Duration::from_secs_f64((s.bytes_found - s.bytes_done) as f64 / rate);
            format!(" ETA {}", HumanDuration(left))
        };
        format!(
            "{}/{}{more} files {}/{}{more} {}/s{eta} {} workers, {} restarts",
            s.files_done,
            s.files_found,
            HumanBytes(s.bytes_done),
            HumanBytes(s.bytes_found),
            HumanBytes(rate as u64),
            s.workers,
            s.restarts
        )
    }
}

impl Display for LogLine {
    fn update(&mut self, s: &Snapshot) {
        if self.last.elapsed() >= LOG_EVERY {
            self.last = Instant::now();
            log::info!("progress: {}", self.line(s));
        }
    }
}

/// Under MPI, rank 0's line for the whole job on stderr (mpirun's, rarely a
/// terminal, so a plain line): `pcopy: 1234/5000 files, 1.20 GiB copied, 4 ranks`.
#[cfg(feature = "mpi")]
pub struct JobLine {
    ranks: u32,
    last: Instant,
}

#[cfg(feature = "mpi")]
impl JobLine {
    pub fn new(ranks: u32) -> Self {
        JobLine {
            ranks,
            last: Instant::now(),
        }
    }
}

#[cfg(feature = "mpi")]
impl Display for JobLine {
    fn update(&mut self, s: &Snapshot) {
        if self.last.elapsed() >= JOB_EVERY {
            self.last = Instant::now();
            crate::util::err_line(&format!(
                "pcopy: {}/{} files, {} copied, {} ranks",
                s.files_done,
                s.files_found,
                HumanBytes(s.bytes_placed),
                self.ranks
            ));
        }
    }
}

/// The dispatcher's side: one snapshot per round, to every display.
pub struct Tracker {
    found: Arc<Found>,
    displays: Vec<Box<dyn Display>>,
}

impl Tracker {
    /// The terminal bar (when there is one) and the log line, their
    /// clocks started now (the dispatcher's start).
    pub fn new(mut bar: Bar, found: Arc<Found>) -> Self {
        bar.start_clock();
        Tracker {
            found,
            displays: vec![Box::new(bar), Box::new(LogLine::new())],
        }
    }

    /// Take this round's snapshot, show it, and return it (under MPI the
    /// dispatcher publishes it for rank 0's job line).
    pub fn tick(&mut self, sm: &Summary, live: &Live) -> Snapshot {
        let s = Snapshot::of(sm, &self.found, live);
        for d in &mut self.displays {
            d.update(&s);
        }
        s
    }

    pub fn clear(&mut self) {
        for d in &mut self.displays {
            d.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the run has dealt with counts as done, in files and
    /// bytes: cloned files too (they were missing from the bar's and the
    /// log line's count, so a cloning run never reached its total), and
    /// files the walk found up to date (missing from the MPI line's).
    #[test]
    fn every_kind_of_done_counts() {
        let sm = Summary {
            files_copied: 1,
            files_cloned: 2,
            files_skipped: 4,
            files_failed: 8,
            symlinks_copied: 16,
            specials_copied: 32,
            entries_ignored: 64,
            bytes_copied: 100,
            bytes_cloned: 1000,
            bytes_skipped: 10_000,
            worker_restarts: 3,
            ..Summary::default()
        };
        let found = Found::default();
        found.files.store(1000, Ordering::Relaxed);
        found.bytes.store(1 << 20, Ordering::Relaxed);
        found.skipped_files.store(128, Ordering::Relaxed);
        found.skipped_bytes.store(100_000, Ordering::Relaxed);
        let live = Live {
            workers_alive: 2,
            walking: true,
            partial_bytes: 7,
        };
        let s = Snapshot::of(&sm, &found, &live);
        assert_eq!(s.files_done, 255);
        assert_eq!(s.bytes_done, 111_107);
        assert_eq!(s.bytes_copied, 107);
        assert_eq!(s.bytes_placed, 1100);
        assert_eq!((s.files_found, s.bytes_found), (1000, 1 << 20));
        assert_eq!((s.workers, s.restarts, s.walking), (2, 3, true));
        let line = LogLine::new().line(&s);
        assert!(line.starts_with("255/1000+ files"), "{line}");
        assert!(line.ends_with("2 workers, 3 restarts"), "{line}");
        assert!(!line.contains("ETA"), "{line}");
    }
}
