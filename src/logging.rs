//! Logging. Only the supervisor writes the log file (simplelog's records are
//! written with several `write!` calls, so two processes would interleave
//! mid-line); workers install `Forwarder`, which sends records over IPC.

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::protocol::FromWorker;
use ipc_channel::ipc::IpcSender;
use log::{LevelFilter, Log, Metadata, Record};
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};
use std::fs::OpenOptions;

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
pub fn init_supervisor(s: &Settings, bar: Option<indicatif::MultiProgress>) -> Result<()> {
    let cfg = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![TermLogger::new(
        console_level(s),
        ConfigBuilder::new()
            .set_time_level(LevelFilter::Off)
            .set_target_level(LevelFilter::Off)
            .set_thread_level(LevelFilter::Off)
            .build(),
        TerminalMode::Stderr,
        color_choice(),
    )];
    if let Some(path) = &s.log_file {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        loggers.push(WriteLogger::new(file_level(s), cfg, f));
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

/// Worker-side logger: forwards each record to the supervisor.
pub struct Forwarder {
    pub tx: IpcSender<FromWorker>,
}

impl Log for Forwarder {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            let _ = self.tx.send(FromWorker::Log {
                level: r.level(),
                msg: r.args().to_string(),
            });
        }
    }
    fn flush(&self) {}
}

/// Install the forwarder with the level the supervisor chose, so filtered
/// records are never serialized.
pub fn init_worker(tx: IpcSender<FromWorker>, level: LevelFilter) {
    if log::set_boxed_logger(Box::new(Forwarder { tx })).is_ok() {
        log::set_max_level(level);
    }
}
