//! Entry point: pick the mode first, then hand off. Nothing else lives here.

use pcopy::cli::{self, Mode};
use pcopy::config::Settings;
use pcopy::error::ExitStatus;
use pcopy::Cluster;
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
            // Under `--mpi` it outlives the run: dropping it waits for every
            // rank, so rank 0 has printed before any rank exits (mpirun
            // ends the job when one exits non-zero).
            let mut cluster = None;
            let result = Settings::resolve(&cli).and_then(|s| {
                let json = s.json;
                // `--json-lines -` owns stdout: its last line is the summary.
                let quiet = s.quiet || s.json_lines.as_deref() == Some("-".as_ref());
                let c = cluster.insert(Cluster::join(s.mpi)?);
                pcopy::supervisor::run(s, c).map(|sum| (sum, json, quiet))
            });
            let status = match result {
                Ok((summary, json, quiet)) => pcopy::report::print(&summary, json, quiet),
                Err(e) => {
                    let status = pcopy::report::fatal(&e, cli.json);
                    if let Some(c) = &cluster {
                        c.end_on_error(status.code());
                    }
                    status
                }
            };
            drop(cluster);
            status.into()
        }
    }
}
