//! Entry point: pick the mode first, then hand off. Nothing else lives here.

use pcopy::cli::{self, Mode};
use pcopy::config::Settings;
use pcopy::error::ExitStatus;
use std::process::ExitCode;

fn main() -> ExitCode {
    pcopy::error::install_panic_hook();
    // A panic is a bug: the hook has printed one line; unwinding has run
    // every destructor on the way (temps, children); exit with its code.
    std::panic::catch_unwind(run).unwrap_or_else(|_| ExitStatus::Internal.into())
}

fn run() -> ExitCode {
    match cli::parse() {
        Mode::Worker(token) => pcopy::worker::run(token).into(),
        Mode::Print(text) => {
            use std::io::Write;
            // A closed pipe (`pcopy --man | head`) is not a failure.
            match std::io::stdout().write_all(&text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(_) => ExitStatus::Fatal.into(),
            }
        }
        Mode::Supervisor(cli) => {
            let result = Settings::resolve(&cli).and_then(|s| {
                let json = s.json;
                // `--json-lines -` owns stdout: its last line is the summary.
                let quiet = s.quiet || s.json_lines.as_deref() == Some("-".as_ref());
                pcopy::supervisor::run(s).map(|sum| (sum, json, quiet))
            });
            match result {
                Ok((summary, json, quiet)) => pcopy::report::print(&summary, json, quiet).into(),
                Err(e) => pcopy::report::fatal(&e, cli.json).into(),
            }
        }
    }
}
