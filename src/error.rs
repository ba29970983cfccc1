//! The one error type for fatal conditions, and the documented exit codes.
//!
//! Per-entry failures are not errors here: they are counted in `Stats` and
//! turn the exit code into `Partial` at the end (like coreutils'
//! `NotAllFilesCopied`).

use std::io;
use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A condition that stops the whole run before or during the copy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad settings found after parsing (clap's own parse errors never get
    /// here: `cli::usage_error` prints them and exits 2).
    #[error("{0}")]
    Usage(String),
    /// config.json could not be read or parsed.
    #[error("config {path}: {msg}")]
    Config { path: String, msg: String },
    /// An OS error on a named path (source root, destination root, log file).
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Anything else that makes continuing pointless (e.g. workers keep dying).
    #[error("{0}")]
    Fatal(String),
    /// Another run holds the destination's lock: retrying later will work.
    #[error("{0}")]
    Locked(String),
    /// A `--delete` safety guard refused the run before anything was
    /// written (an empty source root).
    #[error("{0}")]
    Refused(String),
    /// Under MPI: another rank refused to start and said why; this one
    /// exits with the same code and prints nothing.
    #[error("another rank refused to start")]
    Elsewhere { locked: bool },
}

impl Error {
    pub fn io(path: &Path, source: io::Error) -> Self {
        Error::Io {
            path: crate::util::escape_bytes(path.as_os_str().as_encoded_bytes()),
            source,
        }
    }
    /// Machine-readable kind for the fatal JSON object.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::Config { .. } => "config",
            Error::Io { .. } => "io",
            Error::Fatal(_) => "fatal",
            Error::Locked(_) => "locked",
            Error::Refused(_) => "refused",
            Error::Elsewhere { .. } => "elsewhere",
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Locked(_) | Error::Elsewhere { locked: true } => ExitStatus::Locked,
            Error::Refused(_) => ExitStatus::DeleteRefused,
            _ => ExitStatus::Fatal,
        }
    }
}

/// Process exit codes (documented in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every entry copied or already up to date.
    Success,
    /// 1: the run finished but some entries failed (each named in the log).
    Partial,
    /// 2: usage, config or fatal error; nothing (more) was written.
    Fatal,
    /// 11: the destination filled up (ENOSPC/EDQUOT); what fits was
    /// copied, the rest is counted, nothing is left half-written.
    DiskFull,
    /// 24: the only failures were source files that vanished during the
    /// run (log rotation, temp files): rsync's code for the same.
    Vanished,
    /// 25: `--max-delete` stopped deletions (rsync's code for the same);
    /// everything else succeeded.
    DeleteLimit,
    /// 26: a `--delete` guard held every deletion back: the source root
    /// is empty (nothing was done; `--allow-empty-source`), or more than
    /// `--max-delete-percent` of the destination would go (copied, nothing
    /// deleted).
    DeleteRefused,
    /// 75: the destination is in use by another run (its lock is held);
    /// sysexits' EX_TEMPFAIL: a retry later will work.
    Locked,
    /// 70: an internal error (a bug; sysexits' EX_SOFTWARE). One line on
    /// stderr says where; please report it.
    Internal,
    /// 128 + signal: interrupted by SIGHUP (129), SIGINT (130) or SIGTERM
    /// (143).
    Interrupted(i32),
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Partial => 1,
            ExitStatus::Fatal => 2,
            ExitStatus::DiskFull => 11,
            ExitStatus::Vanished => 24,
            ExitStatus::DeleteLimit => 25,
            ExitStatus::DeleteRefused => 26,
            ExitStatus::Locked => 75,
            ExitStatus::Internal => 70,
            ExitStatus::Interrupted(sig) => (128 + sig).clamp(0, 255) as u8,
        }
    }
}

impl ExitStatus {
    /// Every documented code with its one-line meaning: the source of the
    /// README's table and `--help` (a test keeps them equal).
    pub const TABLE: &'static [(u8, &'static str)] = &[
        (0, "every entry copied or already up to date"),
        (
            1,
            "finished, but some entries failed (each named in the log, on stderr and in `errors`)",
        ),
        (
            2,
            "usage, config or fatal error; nothing (more) was written",
        ),
        (
            11,
            "the destination filled up; what fit was copied, nothing is half-written",
        ),
        (
            24,
            "the only failures were source files that vanished during the run",
        ),
        (
            25,
            "`--max-delete` stopped deletions; everything else succeeded",
        ),
        (
            26,
            "a `--delete` guard deleted nothing: the source root is empty, or more than `--max-delete-percent` would go",
        ),
        (70, "internal error (a bug); one line says where"),
        (
            75,
            "the destination is in use by another pcopy run; retry later",
        ),
        (130, "interrupted by SIGINT (129: SIGHUP, 143: SIGTERM)"),
    ];
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}

thread_local! {
    /// A panic here is expected and handled by the caller (`quiet_panic`).
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`; None if it panicked, without the internal-error line: for a
/// library that asserts where it should return an error (ipc-channel on a
/// failed `dup` when descriptors run out).
pub fn quiet_panic<R>(f: impl FnOnce() -> R) -> Option<R> {
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r.ok()
}

/// Replace Rust's multi-line panic report (and backtrace) with one line on
/// stderr naming the place; `main` turns the unwound panic into exit 70.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if QUIET.with(|q| q.get()) {
            return;
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = what.replace('\n', " ");
        crate::util::err_line(&format!(
            "pcopy: internal error: {what}{at} (exit 70; please report this)"
        ));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_panic_is_a_none_and_the_next_one_is_not_quiet() {
        assert_eq!(quiet_panic(|| 7), Some(7));
        assert_eq!(quiet_panic(|| -> u8 { panic!("expected") }), None);
        assert!(!QUIET.with(|q| q.get()), "reset after the panic");
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Partial.code(), 1);
        assert_eq!(ExitStatus::Fatal.code(), 2);
        assert_eq!(ExitStatus::DiskFull.code(), 11);
        assert_eq!(ExitStatus::Vanished.code(), 24);
        assert_eq!(ExitStatus::DeleteLimit.code(), 25);
        assert_eq!(ExitStatus::Internal.code(), 70);
        assert_eq!(ExitStatus::Locked.code(), 75);
        assert_eq!(ExitStatus::Interrupted(libc::SIGINT).code(), 130);
        assert_eq!(ExitStatus::Interrupted(libc::SIGTERM).code(), 143);
    }

    #[test]
    fn the_table_lists_every_code_once() {
        let all = [
            ExitStatus::Success,
            ExitStatus::Partial,
            ExitStatus::Fatal,
            ExitStatus::DiskFull,
            ExitStatus::Vanished,
            ExitStatus::DeleteLimit,
            ExitStatus::DeleteRefused,
            ExitStatus::Internal,
            ExitStatus::Locked,
            ExitStatus::Interrupted(libc::SIGINT),
        ];
        let codes: Vec<u8> = all.iter().map(|s| s.code()).collect();
        let table: Vec<u8> = ExitStatus::TABLE.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, table);
        // None clashes with the shell's 126-128 or a signal's 128+n.
        assert!(codes.iter().all(|&c| c < 126 || c == 130));
    }

    #[test]
    fn io_error_names_the_path() {
        let e = Error::io(
            Path::new("/x/y"),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert!(e.to_string().starts_with("/x/y: "), "{e}");
    }
}
