//! Logging. Only the supervisor writes the log file (simplelog's records are
//! written with several `write!` calls, so two processes would interleave
//! mid-line); workers forward their records over IPC (`worker/forward.rs`).

use crate::config::Settings;
use crate::error::{Error, Result};
use log::LevelFilter;
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};
use std::fs::OpenOptions;
use std::io::Write;

/// The log target of the change lines (`-i` in the log file): the log
/// file's, not the console's.
pub const CHANGES: &str = "pcopy::change";

/// Console level: errors only with -q, warnings by default, more with -v.
fn console_level(s: &Settings) -> LevelFilter {
    match (s.quiet, s.verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Info,
        _ => LevelFilter::Debug,
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything
/// non-empty (no-color.org). termcolor's `Auto` looks at `TERM` alone, so
/// `2>err.txt` would get escape codes.
fn color_choice() -> ColorChoice {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if !no_color && std::io::stderr().is_terminal() {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    }
}

/// Log-file level: run lifecycle and errors by default; -v adds a line per
/// entry, -vv debug detail.
pub fn file_level(s: &Settings) -> LevelFilter {
    match s.verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Install the supervisor's loggers: stderr (never stdout, which `--json`
/// owns) plus the optional log file, opened for append.
pub fn init_supervisor(
    s: &Settings,
    bar: Option<indicatif::MultiProgress>,
    run_id: u64,
    rank: Option<u32>,
) -> Result<()> {
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![TermLogger::new(
        console_level(s),
        ConfigBuilder::new()
            .set_time_level(LevelFilter::Off)
            .set_target_level(LevelFilter::Off)
            .set_thread_level(LevelFilter::Off)
            // Each change is for the log file (-i prints it on stdout).
            .add_filter_ignore_str(CHANGES)
            .build(),
        TerminalMode::Stderr,
        color_choice(),
    )];
    if let Some(path) = &s.log_file {
        loggers.push(file_logger(path, s, run_id, rank)?);
    }
    let max = loggers
        .iter()
        .map(|l| l.level())
        .max()
        .unwrap_or(LevelFilter::Off);
    // A second init (only possible in tests) is harmless.
    match bar {
        Some(multi) => {
            let combined = CombinedLogger::new(loggers);
            let _ = indicatif_log_bridge::LogWrapper::new(multi, combined).try_init();
        }
        None => {
            let _ = CombinedLogger::init(loggers);
        }
    }
    log::set_max_level(max);
    Ok(())
}

/// The log file's logger, the file opened for append (its directory
/// created if missing).
fn file_logger(
    path: &std::path::Path,
    s: &Settings,
    run_id: u64,
    rank: Option<u32>,
) -> Result<Box<dyn SharedLogger>> {
    // Say it is about the log file, not the copy.
    let about = |p: &std::path::Path, e: std::io::Error| Error::Io {
        path: format!(
            "log file {}",
            crate::util::escape_bytes(p.as_os_str().as_encoded_bytes())
        ),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| about(dir, e))?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| about(path, e))?;
    let rank = rank.map_or(String::new(), |r| format!("rank {r} "));
    let prefix = format!("run {:016x} {rank}pid {} ", run_id, std::process::id());
    // The time comes from `Stamped` (fixed width, UTC, milliseconds), with
    // the run id and pid, so lines of runs sharing one log file can be told
    // apart; the level is padded to a fixed width too.
    let cfg = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_level_padding(simplelog::LevelPadding::Right)
        .build();
    Ok(WriteLogger::new(
        file_level(s),
        cfg,
        Stamped::new(f, prefix),
    ))
}

/// The log file's writer: starts every line with `<RFC 3339 time> run <id>
/// pid <pid> `. simplelog writes a record in several calls, so the line is
/// assembled here and written whole, one `write` on an `O_APPEND` file: the
/// lines of processes sharing one log (MPI ranks, runs) never interleave.
struct Stamped<W: Write> {
    inner: W,
    prefix: String,
    line: Vec<u8>,
}

impl<W: Write> Stamped<W> {
    fn new(inner: W, prefix: String) -> Self {
        Stamped {
            inner,
            prefix,
            line: Vec::new(),
        }
    }
}

impl<W: Write> Write for Stamped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.line.is_empty() {
                let now = crate::util::rfc3339(std::time::SystemTime::now());
                write!(self.line, "{now} {}", self.prefix)?;
            }
            let (part, more) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..=i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            self.line.extend_from_slice(part);
            if part.ends_with(b"\n") {
                let r = self.inner.write_all(&self.line);
                self.line.clear();
                r?;
            }
            rest = more;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
