//! The seam between the protocol and the filesystem code: a `Task` becomes a
//! copy `Job`, the copier's `Result` becomes an `Outcome` (`WorkerInit`
//! carries the copier's own `Options` as they are). `copy/` knows nothing
//! of IPC; this file is why.

use crate::copy::{self, Copier, CopyError, Job, Placed, Span, Stamp, What};
use crate::protocol::{ErrorKind, Outcome, Task, TaskKind};
use std::io;

/// The copy job a (validated) task asks for.
pub fn job(t: &Task) -> Job<'_> {
    let what = match t.kind {
        TaskKind::File { .. } => What::File {
            basis: t.basis.map(|b| copy::FromBasis {
                index: usize::from(b.index),
                file: Stamp {
                    size: b.size,
                    mtime_secs: b.mtime.secs,
                    mtime_nanos: b.mtime.nanos,
                },
            }),
        },
        TaskKind::Symlink => What::Symlink,
        TaskKind::Fifo | TaskKind::Device => What::Special,
        TaskKind::Chunk {
            offset,
            len,
            file_size,
            mtime,
            ref temp,
        } => What::Chunk {
            temp: &temp.0,
            span: Span {
                offset,
                len,
                file: Stamp {
                    size: file_size,
                    mtime_secs: mtime.secs,
                    mtime_nanos: mtime.nanos,
                },
            },
        },
    };
    Job {
        rel: &t.rel.0,
        what,
        dir: t.dir,
    }
}

/// Run one validated task and report it in the protocol's terms.
pub fn run(copier: &mut Copier, t: &Task, tick: copy::data::Tick) -> Outcome {
    outcome(copier.run(&job(t), tick))
}

pub fn outcome(r: Result<Placed, CopyError>) -> Outcome {
    match r {
        Ok(Placed::Copied {
            bytes,
            verified,
            cloned,
            grew,
        }) => Outcome::Copied {
            bytes,
            verified,
            cloned,
            grew,
        },
        Ok(Placed::UpToDate { bytes, repaired }) => Outcome::Skipped { bytes, repaired },
        Err(e) => Outcome::Failed {
            kind: kind(&e),
            msg: e.to_string(),
            dst: e.on_destination(),
            errno: e.errno().unwrap_or(0),
        },
    }
}

/// The protocol's plain error kind for a copy error.
pub fn kind(e: &CopyError) -> ErrorKind {
    match e {
        CopyError::Io { source, .. } => classify(source),
        CopyError::Vanished => ErrorKind::NotFound,
        CopyError::Changed(_) | CopyError::KeptChanging { .. } => ErrorKind::Changed,
        CopyError::VerifyMismatch => ErrorKind::VerifyMismatch,
        CopyError::NeedsPrivilege(_) => ErrorKind::PermissionDenied,
    }
}

/// Map an OS error to the protocol's plain error kind.
fn classify(e: &io::Error) -> ErrorKind {
    if crate::util::is_no_space(e) {
        return ErrorKind::NoSpace;
    }
    match e.raw_os_error() {
        Some(libc::EISDIR) | Some(libc::ENOTDIR) | Some(libc::ENOTEMPTY) | Some(libc::ELOOP) => {
            ErrorKind::TypeClash
        }
        Some(libc::EOPNOTSUPP) => ErrorKind::Unsupported,
        _ => match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::Op;

    #[test]
    fn classifies_errno() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(classify(&e), ErrorKind::NoSpace);
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(classify(&e), ErrorKind::NotFound);
    }

    #[test]
    fn copy_errors_become_outcomes_naming_the_right_side() {
        let full = CopyError::io(Op::Copy, io::Error::from_raw_os_error(libc::ENOSPC));
        match outcome(Err(full)) {
            Outcome::Failed { kind, dst, msg, .. } => {
                assert_eq!(kind, ErrorKind::NoSpace);
                assert!(dst);
                assert!(msg.starts_with("copy: "), "{msg}");
            }
            o => panic!("{o:?}"),
        }
        match outcome(Err(CopyError::VerifyMismatch)) {
            Outcome::Failed { kind, dst, .. } => {
                assert_eq!(kind, ErrorKind::VerifyMismatch);
                assert!(dst);
            }
            o => panic!("{o:?}"),
        }
        match outcome(Err(CopyError::Vanished)) {
            Outcome::Failed { kind, dst, .. } => {
                assert_eq!(kind, ErrorKind::NotFound);
                assert!(!dst);
            }
            o => panic!("{o:?}"),
        }
    }
}
