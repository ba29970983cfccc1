//! Live progress: on a terminal, an indicatif line drawn from templates. While
//! the walk still runs the totals are not known: a spinner with what is done
//! against what was found so far (marked `+`), no ETA. Once the walk is done:
//! a bar over the bytes with indicatif's ETA (`HumanDuration`). Both fit 80
//! columns (`{wide_msg}` takes what is left and is cut, never wrapped). In
//! the log file, a plain line every 10 s so long runs leave a trace.

use super::walk::Found;
use crate::config::Settings;
use crate::stats::Summary;
use indicatif::{HumanBytes, HumanDuration};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DRAW_EVERY: Duration = Duration::from_millis(100);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The terminal bar, or nothing when stderr is not a terminal, with `-q`,
/// `--no-progress` or `--dry-run`.
pub struct Bar {
    multi: Option<MultiProgress>,
    pb: Option<ProgressBar>,
    /// The walk is done: the bar shows totals and an ETA.
    counted: bool,
}

/// While walking: totals still growing, so no ETA.
const WALKING: &str = "{spinner} {elapsed:>4} {wide_msg}";
/// After the walk: a bar over the bytes, with indicatif's ETA.
const COUNTED: &str = "{bar:12} {percent:>3}% {binary_bytes_per_sec:>11} ETA {eta:<4} {wide_msg}";

impl Bar {
    pub fn new(s: &Settings) -> Self {
        // Under MPI stderr is mpirun's, shared by every rank: no bar.
        let on =
            !s.quiet && !s.no_progress && !s.dry_run && !s.mpi && std::io::stderr().is_terminal();
        if !on {
            return Bar {
                multi: None,
                pb: None,
                counted: false,
            };
        }
        let multi = MultiProgress::new();
        let pb = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template(WALKING) {
            pb.set_style(style);
        }
        Bar {
            multi: Some(multi),
            pb: Some(pb),
            counted: false,
        }
    }

    /// For the logger, so log lines print above the bar without tearing it.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.multi.clone()
    }
}

/// What the dispatch loop knows beyond the summary.
pub struct Live {
    pub workers_alive: usize,
    pub walking: bool,
    /// Bytes of files still being copied (from heartbeats).
    pub partial_bytes: u64,
}

pub struct Tracker {
    bar: Bar,
    found: Arc<Found>,
    start: Instant,
    last_draw: Option<Instant>,
    last_log: Instant,
}

impl Tracker {
    pub fn new(bar: Bar, found: Arc<Found>) -> Self {
        Tracker {
            bar,
            found,
            start: Instant::now(),
            last_draw: None,
            last_log: Instant::now(),
        }
    }

    pub fn tick(&mut self, sm: &Summary, live: &Live) {
        let due = self.last_draw.is_none_or(|t| t.elapsed() >= DRAW_EVERY);
        if due && self.bar.pb.is_some() {
            self.last_draw = Some(Instant::now());
            self.draw(sm, live);
        }
        if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            log::info!("progress: {}", self.line(sm, live));
        }
    }

    fn draw(&mut self, sm: &Summary, live: &Live) {
        let Some(pb) = &self.bar.pb else { return };
        let (files_done, bytes_done) = self.done(sm, live);
        let files_found = self.found.files.load(Ordering::Relaxed);
        let bytes_found = self.found.bytes.load(Ordering::Relaxed);
        if live.walking {
            pb.set_message(format!(
                "{files_done}/{files_found}+ files {}/{}+ w{} (counting)",
                HumanBytes(bytes_done),
                HumanBytes(bytes_found),
                live.workers_alive
            ));
            pb.tick();
            return;
        }
        if !self.bar.counted {
            self.bar.counted = true;
            if let Ok(style) = ProgressStyle::with_template(COUNTED) {
                pb.set_style(style.progress_chars("=> "));
            }
        }
        // The message first: setting the position may draw, and a frame
        // with the counted style must not carry the walk's "(counting)".
        pb.set_message(format!(
            "{files_done}/{files_found} files w{}",
            live.workers_alive
        ));
        pb.set_length(bytes_found.max(1));
        pb.set_position(bytes_done.min(bytes_found));
    }

    /// Files and bytes dealt with so far (copied, up to date, failed...).
    fn done(&self, sm: &Summary, live: &Live) -> (u64, u64) {
        let skipped = self.found.skipped_files.load(Ordering::Relaxed);
        let files = sm.files_copied
            + sm.files_skipped
            + skipped
            + sm.files_failed
            + sm.symlinks_copied
            + sm.specials_copied
            + sm.entries_ignored;
        let bytes = sm.bytes_copied
            + sm.bytes_skipped
            + self.found.skipped_bytes.load(Ordering::Relaxed)
            + live.partial_bytes;
        (files, bytes)
    }

    /// Take the bar off the screen for good (end of run, or interrupt:
    /// nothing is drawn after it).
    pub fn clear(&mut self) {
        if let Some(pb) = self.bar.pb.take() {
            pb.finish_and_clear();
        }
    }

    /// The log's line: `1234/5000 files 1.20 GiB/4.00 GiB 350 MiB/s ETA 12 seconds 2 workers`
    /// (`+` after the totals and no ETA while the walk still counts).
    pub fn line(&self, sm: &Summary, live: &Live) -> String {
        let (files_done, bytes_done) = self.done(sm, live);
        let files_found = self.found.files.load(Ordering::Relaxed);
        let bytes_found = self.found.bytes.load(Ordering::Relaxed);
        let more = if live.walking { "+" } else { "" };
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = (sm.bytes_copied + live.partial_bytes) as f64 / secs;
        let eta = if live.walking || rate <= 0.0 || bytes_found <= bytes_done {
            String::new()
        } else {
            let left = Duration::from_secs_f64((bytes_found - bytes_done) as f64 / rate);
            format!(" ETA {}", HumanDuration(left))
        };
        format!(
            "{files_done}/{files_found}{more} files {}/{}{more} {}/s{eta} {} workers, {} restarts",
            HumanBytes(bytes_done),
            HumanBytes(bytes_found),
            HumanBytes(rate as u64),
            live.workers_alive,
            sm.worker_restarts
        )
    }
}
