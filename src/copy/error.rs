//! What can go wrong placing one entry, in the filesystem's own terms: the
//! operation that failed and the OS error, or a fact about the source
//! (vanished, changed) or the copy (checksum mismatch). The worker turns it
//! into a protocol outcome; nothing here knows about IPC.

use std::fmt;
use std::io;

/// The step that failed. Its text is what a message names; its side says
/// whether the source or the destination path is the one to name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    OpenSourceDir,
    OpenSource,
    StatSource,
    OpenDestDir,
    CreateTemp,
    OpenSharedTemp,
    /// Data, metadata and extended attributes of a whole file.
    Copy,
    CopyChunk,
    Rename,
    Link,
    Symlink,
    Special,
    /// Metadata and rename of a large file assembled from chunks.
    Place,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::OpenSourceDir => "open source directory",
            Op::OpenSource => "open source",
            Op::StatSource => "stat source",
            Op::OpenDestDir => "open destination directory",
            Op::CreateTemp => "create temporary file",
            Op::OpenSharedTemp => "open shared temporary file",
            Op::Copy => "copy",
            Op::CopyChunk => "copy chunk",
            Op::Rename => "rename into place",
            Op::Link => "link into place",
            Op::Symlink => "symlink",
            Op::Special => "special file",
            Op::Place => "place",
        }
    }

    /// Operations only the destination can fail.
    fn on_destination(self) -> bool {
        matches!(
            self,
            Op::OpenDestDir | Op::CreateTemp | Op::OpenSharedTemp | Op::Rename | Op::Link
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Why one entry was not placed. The entry's path is the caller's (the job
/// it handed in); `on_destination` says which of its two paths to name.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{op}: {source}")]
    Io {
        op: Op,
        #[source]
        source: io::Error,
    },
    /// The source is gone since the walk.
    #[error("vanished since the walk (not copied)")]
    Vanished,
    /// The source is not what the walk saw (size, mtime or type), or kept
    /// changing while being copied.
    #[error("{0}")]
    Changed(&'static str),
    /// The source changed during every one of `attempts` copies.
    #[error("source changed while being copied ({attempts} attempts)")]
    KeptChanging { attempts: usize },
    /// `--verify`: the copy read back differs from the source.
    #[error("verify: checksum mismatch: copy differs from source")]
    VerifyMismatch,
    /// Placing it needs a privilege this process lacks (CAP_MKNOD).
    #[error("{0}")]
    NeedsPrivilege(&'static str),
}

impl CopyError {
    pub fn io(op: Op, source: impl Into<io::Error>) -> Self {
        CopyError::Io {
            op,
            source: source.into(),
        }
    }

    /// A closure for `map_err`: the OS error of step `op`.
    pub fn at<E: Into<io::Error>>(op: Op) -> impl Fn(E) -> Self {
        move |e| CopyError::io(op, e)
    }

    /// The OS error number behind it, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CopyError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            CopyError::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the message should name the destination path: the step is one
    /// only the destination has, or the error is one only a destination can
    /// raise (full, over quota, read-only, file too big), whatever the step.
    pub fn on_destination(&self) -> bool {
        match self {
            CopyError::Io { op, source } => {
                op.on_destination()
                    || matches!(
                        source.raw_os_error(),
                        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EFBIG)
                    )
            }
            CopyError::VerifyMismatch => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_follows_the_step_and_the_errno() {
        let e = CopyError::io(Op::OpenSource, io::Error::from_raw_os_error(libc::EACCES));
        assert!(!e.on_destination());
        assert_eq!(
            e.to_string(),
            format!("open source: {}", e.io_error().unwrap())
        );
        let e = CopyError::io(Op::Copy, io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(e.on_destination());
        let e = CopyError::io(Op::Rename, io::Error::from_raw_os_error(libc::EACCES));
        assert!(e.on_destination());
        assert!(CopyError::VerifyMismatch.on_destination());
        assert!(!CopyError::Vanished.on_destination());
    }
}
