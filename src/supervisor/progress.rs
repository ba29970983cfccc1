//! Live progress: on a terminal, an indicatif line with files and bytes done
//! against the totals found so far (marked `+` while the walk still runs),
//! throughput, ETA, live workers and restarts; in the log file, the same line
//! every 10 s so long runs leave a trace.

use super::walk::Found;
use crate::config::Settings;
use crate::stats::Summary;
use indicatif::HumanBytes;
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
}

impl Bar {
    pub fn new(s: &Settings) -> Self {
        let on = !s.quiet && !s.no_progress && !s.dry_run && std::io::stderr().is_terminal();
        if !on {
            return Bar {
                multi: None,
                pb: None,
            };
        }
        let multi = MultiProgress::new();
        let pb = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {wide_msg}") {
            pb.set_style(style);
        }
        Bar {
            multi: Some(multi),
            pb: Some(pb),
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
        if let (Some(pb), true) = (&self.bar.pb, due) {
            self.last_draw = Some(Instant::now());
            pb.set_message(self.line(sm, live));
            pb.tick();
        }
        if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            log::info!("progress: {}", self.line(sm, live));
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.bar.pb {
            pb.finish_and_clear();
        }
    }

    /// `1,234/5,000+ files  1.2 GiB/4.0 GiB+  350.0 MiB/s  ETA 12s  workers 2  restarts 0`
    pub fn line(&self, sm: &Summary, live: &Live) -> String {
        let skipped = self.found.skipped_files.load(Ordering::Relaxed);
        let files_done = sm.files_copied
            + sm.files_skipped
            + skipped
            + sm.files_failed
            + sm.symlinks_copied
            + sm.specials_copied
            + sm.entries_ignored;
        let bytes_done = sm.bytes_copied
            + sm.bytes_skipped
            + self.found.skipped_bytes.load(Ordering::Relaxed)
            + live.partial_bytes;
        let files_found = self.found.files.load(Ordering::Relaxed);
        let bytes_found = self.found.bytes.load(Ordering::Relaxed);
        let more = if live.walking { "+" } else { "" };
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = (sm.bytes_copied + live.partial_bytes) as f64 / secs;
        let eta = if rate > 0.0 && bytes_found > bytes_done {
            format!("{:.0}s{more}", (bytes_found - bytes_done) as f64 / rate)
        } else {
            "-".into()
        };
        format!(
            "{files_done}/{files_found}{more} files  {}/{}{more}  {}/s  ETA {eta}  workers {}  restarts {}",
            HumanBytes(bytes_done),
            HumanBytes(bytes_found),
            HumanBytes(rate as u64),
            live.workers_alive,
            sm.worker_restarts
        )
    }
}
