//! Printing the end-of-run summary and choosing the exit status from it.

use crate::error::ExitStatus;
use crate::stats::Summary;
use crate::util::{err_line, out_line};

/// Print the summary (JSON object or text on stdout) and return the status.
/// A closed stdout (`pcopy ... | head -1`) is not an error: the copy is
/// done and the exit status still says how it went.
pub fn print(s: &Summary, json: bool, quiet: bool) -> ExitStatus {
    if s.silent {
        // Another MPI rank (rank 0) prints the job's summary.
    } else if json {
        match serde_json::to_string(s) {
            Ok(j) => out_line(&j),
            Err(e) => err_line(&format!("pcopy: cannot encode summary: {e}")),
        }
    } else if !quiet {
        out_line(&s.human());
    }
    exit_status(s)
}

pub fn exit_status(s: &Summary) -> ExitStatus {
    if let Some(sig) = s.signal.filter(|_| s.interrupted) {
        ExitStatus::Interrupted(sig)
    } else if s.disk_full {
        ExitStatus::DiskFull
    } else if s.only_vanished() {
        ExitStatus::Vanished
    } else if s.any_failed() {
        ExitStatus::Partial
    } else if s.delete_refused {
        ExitStatus::DeleteRefused
    } else if s.delete_limit_reached {
        ExitStatus::DeleteLimit
    } else {
        ExitStatus::Success
    }
}

/// A run that could not start or continue (exit 2 or 75): one line on
/// stderr and, with `--json`, still one JSON object on stdout so a script
/// never parses an empty output.
pub fn fatal(e: &crate::error::Error, json: bool) -> ExitStatus {
    let status = e.exit_status();
    if matches!(e, crate::error::Error::Elsewhere { .. }) {
        return status;
    }
    err_line(&format!("pcopy: {e}"));
    if json {
        let v = serde_json::json!({
            "schema_version": crate::stats::SCHEMA_VERSION,
            "exit_code": status.code(),
            "error": { "kind": e.kind(), "message": e.to_string() },
        });
        out_line(&v.to_string());
    }
    status
}
