//! The terminal's display: one line that pcopy composes itself to fit the
//! terminal's width, read again at every frame (indicatif only draws it and
//! keeps log lines above it). While the walk still runs the totals are not
//! known: a spinner with what is done against what was found so far (marked
//! `+`, as rsync's `ir-chk`) and the rate, no ETA. Once the walk is done: a
//! bar over the bytes, the rate and an ETA. The rate is measured over the
//! last few seconds by pcopy; until there is one to measure the line says
//! nothing rather than "0 B/s, ETA 0s".

use super::{Display, Snapshot};
use crate::config::Settings;
use indicatif::HumanBytes;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const DRAW_EVERY: Duration = Duration::from_millis(100);
/// The rate is the bytes of this last stretch of the run over its length.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// A shorter stretch says too little to quote a rate or an ETA.
const RATE_MIN: Duration = Duration::from_millis(900);
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// The terminal bar, or nothing when stderr is not a terminal, with `-q`,
/// `--no-progress` or `--dry-run`.
pub struct Bar {
    multi: Option<MultiProgress>,
    pb: Option<ProgressBar>,
    start: Instant,
    last_draw: Option<Instant>,
    rate: Rate,
}

impl Bar {
    pub fn new(s: &Settings) -> Self {
        // Under MPI stderr is mpirun's, shared by every rank: no bar.
        let on =
            !s.quiet && !s.no_progress && !s.dry_run && !s.mpi && std::io::stderr().is_terminal();
        if !on {
            return Bar {
                multi: None,
                pb: None,
                start: Instant::now(),
                last_draw: None,
                rate: Rate::default(),
            };
        }
        let multi = MultiProgress::new();
        let pb = multi.add(ProgressBar::new_spinner());
        // The whole line is pcopy's (`render`), fitted to the width.
        if let Ok(style) = ProgressStyle::with_template("{msg}") {
            pb.set_style(style);
        }
        Bar {
            multi: Some(multi),
            pb: Some(pb),
            start: Instant::now(),
            last_draw: None,
            rate: Rate::default(),
        }
    }

    /// Its elapsed time counts from now.
    pub fn start_clock(&mut self) {
        self.start = Instant::now();
    }

    /// Whether there is a bar on the terminal.
    pub fn shown(&self) -> bool {
        self.pb.is_some()
    }

    /// For the logger, so log lines print above the bar without tearing it.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.multi.clone()
    }
}

/// The terminal's width in columns (80 when it cannot be read).
fn terminal_width() -> usize {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(ws) if ws.ws_col > 0 => usize::from(ws.ws_col),
        _ => 80,
    }
}

/// One frame's facts, apart from how they are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub elapsed: Duration,
    /// The walk is still finding entries: the totals are lower bounds.
    pub walking: bool,
    pub files_done: u64,
    pub files_found: u64,
    pub bytes_done: u64,
    pub bytes_found: u64,
    /// Bytes per second over the last seconds; `None` until measurable.
    pub rate: Option<f64>,
    pub workers: usize,
}

/// The line for a terminal `width` columns wide: never wider than
/// `width - 1` (writing the last column makes some terminals wrap), the
/// fields that matter most kept first when they do not all fit.
/// Long because it lays out the bar's one line field by field, each with its own unit and width.
pub fn render(v: &View, width: usize) -> String {
    let room = width.saturating_sub(1);
    let more = if v.walking { "+" } else { "" };
    let ticks = (v.elapsed.as_millis() / DRAW_EVERY.as_millis()) as usize;
    let head = if v.walking {
        format!(
            "{} {}",
            SPINNER[ticks % SPINNER.len()],
            short_time(v.elapsed)
        )
    } else {
        let pct = (v.bytes_done.min(v.bytes_found) * 100)
            .checked_div(v.bytes_found)
            .unwrap_or(100);
        format!("{pct:>3}%")
    };
    let eta = match (v.walking, v.rate) {
        (false, Some(r)) if r > 0.0 && v.bytes_found > v.bytes_done => Some(format!(
            "ETA {}",
            // Rounded up: "0s" only once nothing is left.
            short_time(Duration::from_secs_f64(
                ((v.bytes_found - v.bytes_done) as f64 / r).ceil().min(1e9)
            ))
        )),
        _ => None,
    };
    // In the order they are shown, each with its rank when the line is
    // too narrow for all: the lower ranks are kept.
    let fields = [
        (0, Some(head)),
        (
            3,
            Some(format!(
                "{}/{}{more}",
                HumanBytes(v.bytes_done),
                HumanBytes(v.bytes_found)
            )),
        ),
        (2, v.rate.map(|r| format!("{}/s", HumanBytes(r as u64)))),
        (1, eta),
        (
            4,
            Some(format!("{}/{}{more} files", v.files_done, v.files_found)),
        ),
        (5, Some(format!("{} workers", v.workers))),
    ];
    let mut by_rank: Vec<(usize, usize)> = fields
        .iter()
        .enumerate()
        .filter_map(|(i, (rank, f))| f.as_ref().map(|_| (*rank, i)))
        .collect();
    by_rank.sort_unstable();
    let mut used = 0;
    let mut keep = [false; 6];
    for (_, i) in by_rank {
        let w = fields[i].1.as_ref().map_or(0, |f| f.chars().count()) + usize::from(used > 0);
        if used + w <= room {
            used += w;
            keep[i] = true;
        }
    }
    let kept: Vec<&String> = fields
        .iter()
        .zip(keep)
        .filter_map(|((_, f), k)| if k { f.as_ref() } else { None })
        .collect();
    let mut line = String::new();
    // The bar takes what is left, between 10 and 30 columns, after the
    // percentage; below 10 it is left out.
    let bar_w = room.saturating_sub(used + 3).min(30);
    for (i, f) in kept.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(f);
        if i == 0 && !v.walking && bar_w >= 10 {
            line.push_str(&format!(
                " [{}]",
                bar(v.bytes_done, v.bytes_found, bar_w - 2)
            ));
        }
    }
    line
}

fn bar(done: u64, total: u64, w: usize) -> String {
    let filled = if total == 0 {
        w
    } else {
        (done.min(total) as u128 * w as u128 / total as u128) as usize
    };
    let mut s = "=".repeat(filled);
    if filled < w {
        s.push('>');
        s.push_str(&" ".repeat(w - filled - 1));
    }
    s
}

/// `42s`, `3m05s`, `2h07m`: short and of stable width.
fn short_time(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// Bytes over the last seconds, from samples taken at each frame.
#[derive(Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn sample(&mut self, now: Instant, bytes: u64) -> Option<f64> {
        self.samples.push_back((now, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (t0, b0) = *self.samples.front()?;
        let span = now.duration_since(t0);
        (span >= RATE_MIN).then(|| bytes.saturating_sub(b0) as f64 / span.as_secs_f64())
    }
}

impl Display for Bar {
    fn update(&mut self, s: &Snapshot) {
        let Some(pb) = &self.pb else { return };
        if self.last_draw.is_some_and(|t| t.elapsed() < DRAW_EVERY) {
            return;
        }
        let now = Instant::now();
        self.last_draw = Some(now);
        let view = View {
            elapsed: self.start.elapsed(),
            walking: s.walking,
            files_done: s.files_done,
            files_found: s.files_found,
            bytes_done: s.bytes_done,
            bytes_found: s.bytes_found,
            rate: self.rate.sample(now, s.bytes_copied),
            workers: s.workers,
        };
        pb.set_message(render(&view, terminal_width()));
        pb.tick();
    }

    /// Take the bar off the screen for good (end of run, or interrupt:
    /// nothing is drawn after it).
    fn clear(&mut self) {
        if let Some(pb) = self.pb.take() {
            pb.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(walking: bool, rate: Option<f64>) -> View {
        View {
            elapsed: Duration::from_secs(75),
            walking,
            files_done: 123_456,
            files_found: 987_654,
            bytes_done: 5 << 30,
            bytes_found: 17 << 30,
            rate,
            workers: 12,
        }
    }

    #[test]
    fn every_width_gets_a_line_that_fits() {
        for walking in [false, true] {
            for rate in [None, Some(3.5e8)] {
                let v = view(walking, rate);
                for width in 0..220 {
                    let line = render(&v, width);
                    assert!(
                        line.chars().count() < width.max(1),
                        "{width} cols: {line:?}"
                    );
                }
                // Wide enough, nothing is left out.
                let line = render(&v, 200);
                assert!(line.contains("123456/987654"), "{line}");
                assert!(line.contains("12 workers"), "{line}");
                assert_eq!(line.contains("/s"), rate.is_some(), "{line}");
            }
        }
    }

    #[test]
    fn the_walk_marks_its_totals_as_growing_and_has_no_eta() {
        let line = render(&view(true, Some(1e8)), 200);
        assert!(line.contains("17.00 GiB+"), "{line}");
        assert!(line.contains("987654+ files"), "{line}");
        assert!(line.contains("1m15s"), "{line}");
        assert!(!line.contains("ETA"), "{line}");
        let line = render(&view(false, Some(1e8)), 200);
        assert!(line.starts_with(" 29% ["), "{line}");
        // 12 GiB left at 100 MB/s: 129 s, rounded up.
        assert!(line.contains("ETA 2m09s"), "{line}");
        assert!(!line.contains('+'), "{line}");
    }

    #[test]
    fn no_rate_before_a_second_of_samples() {
        let mut r = Rate::default();
        let t = Instant::now();
        assert_eq!(r.sample(t, 0), None);
        assert_eq!(r.sample(t + Duration::from_millis(500), 1000), None);
        let v = r.sample(t + Duration::from_secs(2), 4000);
        assert_eq!(v, Some(2000.0));
        // Old samples leave the window: the rate follows the recent pace.
        let v = r.sample(t + Duration::from_secs(10), 4000);
        assert_eq!(v, None, "one sample left in the window");
    }
}
