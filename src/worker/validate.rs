//! The worker's gate: everything that arrives over IPC is checked here before
//! the filesystem code sees it. The supervisor is the same binary and is
//! trusted, but a check is cheap and a bug (or a hostile peer on the socket)
//! must never turn into a read or write outside the roots.

use crate::copy::{temp, valid_rel};
use crate::protocol::{RootFds, Task, TaskKind};
use rustix::fs::FileType;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Take over the root directories inherited at spawn. Each number must be an
/// open directory with exactly the (device, inode) the supervisor validated;
/// anything else (a closed number, a socket, another directory) is refused.
pub fn adopt_roots(r: &RootFds) -> io::Result<(OwnedFd, OwnedFd)> {
    Ok((
        adopt(r.src_fd, r.src_id, "source")?,
        adopt(r.dst_fd, r.dst_id, "destination")?,
    ))
}

/// The basis directories, checked as the roots are.
pub fn adopt_bases(bases: &[(i32, (u64, u64))]) -> io::Result<Vec<OwnedFd>> {
    bases
        .iter()
        .map(|&(fd, id)| adopt(fd, id, "basis"))
        .collect()
}

fn adopt(fd: i32, id: (u64, u64), what: &str) -> io::Result<OwnedFd> {
    let refused = |why: &str| {
        io::Error::other(format!(
            "{what} root descriptor {fd}: {why}; refusing to run"
        ))
    };
    // SAFETY: F_GETFD only queries the descriptor table; any number is fine.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(refused("not open (not inherited)"));
    }
    // SAFETY: `fd` is open (checked above) and nothing in this
    // single-threaded process closes it while it is borrowed here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = rustix::fs::fstat(borrowed)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(refused("not a directory"));
    }
    if (st.st_dev, st.st_ino) != id {
        return Err(refused("not the directory the supervisor validated"));
    }
    let owned = rustix::io::fcntl_dupfd_cloexec(borrowed, 3)?;
    // SAFETY: the inherited number is ours alone, and no longer used: every
    // access goes through the close-on-exec duplicate.
    unsafe { libc::close(fd) };
    Ok(owned)
}

/// Check every path-like field of a task: `rel` must be a relative path
/// with no `.`, `..` or empty component, and a chunk's `temp` must be a
/// single name in pcopy's temp grammar for a large file of this run.
pub fn task(t: &Task, run_id: u64) -> Result<(), String> {
    if !valid_rel(&t.rel.0) {
        return Err(format!(
            "invalid task path {}",
            crate::util::escape_bytes(&t.rel.0)
        ));
    }
    if t.basis.is_some() && !matches!(t.kind, TaskKind::File { .. }) {
        return Err("a basis for an entry that is not a regular file".into());
    }
    if let TaskKind::Chunk {
        offset,
        len,
        file_size,
        ref temp,
        ..
    } = t.kind
    {
        let ours =
            temp::parse(&temp.0).is_some_and(|p| p.run_id == run_id && p.kind == temp::Kind::Big);
        if !ours {
            return Err(format!(
                "invalid chunk temp name {}",
                crate::util::escape_bytes(&temp.0)
            ));
        }
        if offset.checked_add(len).is_none_or(|end| end > file_size) {
            return Err(format!(
                "invalid chunk range {offset}+{len} of a {file_size}-byte file"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RelPath, Time};

    fn chunk(temp: &[u8], offset: u64, len: u64) -> Task {
        Task {
            rel: RelPath(b"a/big".to_vec()),
            kind: TaskKind::Chunk {
                offset,
                len,
                file_size: 100,
                mtime: Time::default(),
                temp: RelPath(temp.to_vec()),
            },
            dir: crate::protocol::DestDir::Existing,
            basis: None,
        }
    }

    #[test]
    fn chunk_temp_must_be_this_runs_big_temp() {
        let good = temp::big(7, 1);
        assert!(task(&chunk(&good, 0, 100), 7).is_ok());
        for bad in [
            b"../outside/v".to_vec(),
            b"/etc/passwd".to_vec(),
            b"x".to_vec(),
            temp::big(8, 1),
            temp::worker(7, 1, 1),
            [b"../".as_slice(), &good].concat(),
        ] {
            assert!(task(&chunk(&bad, 0, 1), 7).is_err(), "{bad:?}");
        }
        assert!(task(&chunk(&good, 50, 51), 7).is_err());
        assert!(task(&chunk(&good, u64::MAX, 2), 7).is_err());
    }

    #[test]
    fn roots_must_be_the_validated_directories() {
        let d = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            d.path(),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        use std::os::fd::IntoRawFd;
        let raw = fd.into_raw_fd();
        assert!(adopt(raw, (st.st_dev, st.st_ino + 1), "source").is_err());
        assert!(adopt(-1, (st.st_dev, st.st_ino), "source").is_err());
        let owned = adopt(raw, (st.st_dev, st.st_ino), "source").unwrap();
        let again = rustix::fs::fstat(&owned).unwrap();
        assert_eq!(again.st_ino, st.st_ino);
    }
}
