//! Printing the end-of-run summary and choosing the exit status from it.

use crate::error::ExitStatus;
use crate::stats::Summary;

/// Print the summary (JSON object or text on stdout) and return the status.
pub fn print(s: &Summary, json: bool, quiet: bool) -> ExitStatus {
    if json {
        match serde_json::to_string(s) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("pcopy: cannot encode summary: {e}"),
        }
    } else if !quiet {
        println!("{}", s.human());
    }
    exit_status(s)
}

pub fn exit_status(s: &Summary) -> ExitStatus {
    if let Some(sig) = s.signal.filter(|_| s.interrupted) {
        ExitStatus::Interrupted(sig)
    } else if s.any_failed() {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    }
}
