//! Entry point: pick the mode first, then hand off. Nothing else lives here.

use pcopy::cli::{self, Mode};
use pcopy::config::Settings;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::parse() {
        Mode::Worker(token) => pcopy::worker::run(token).into(),
        Mode::Print(text) => {
            use std::io::Write;
            match std::io::stdout().write_all(&text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(2),
            }
        }
        Mode::Supervisor(cli) => {
            let result = Settings::resolve(&cli).and_then(|s| {
                let json = s.json;
                let quiet = s.quiet;
                pcopy::supervisor::run(s).map(|sum| (sum, json, quiet))
            });
            match result {
                Ok((summary, json, quiet)) => pcopy::report::print(&summary, json, quiet).into(),
                Err(e) => {
                    eprintln!("pcopy: {e}");
                    e.exit_status().into()
                }
            }
        }
    }
}
