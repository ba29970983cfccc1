//! `--delete`: removing destination entries the source does not have.
//!
//! The walk decides what is extra, directory by directory, and only for a
//! source directory it read completely (a transient read error must never
//! wipe a backup). The removal itself happens here, after every copy of the
//! run has finished, and only if the run was neither interrupted nor out of
//! space. Everything goes through held directory descriptors: `openat` with
//! `O_NOFOLLOW` beneath the destination root, `unlinkat`, never a path and
//! never a symlink followed, so nothing outside the destination can go.

use crate::copy::{open_beneath, split_rel};
use crate::stats::{Failed, Paths, Summary};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// An entry of the destination the source has no counterpart for.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Extra {
    #[serde(with = "serde_bytes")]
    pub rel: Vec<u8>,
    pub dir: bool,
}

/// Deletions left before `--max-delete` stops them (None: no limit).
pub struct Budget {
    left: Option<u64>,
    /// The limit stopped a deletion.
    pub reached: bool,
}

impl Budget {
    pub fn new(max: Option<u64>) -> Self {
        Budget {
            left: max,
            reached: false,
        }
    }

    /// Take one deletion from the budget; false when it is spent.
    fn take(&mut self) -> bool {
        match &mut self.left {
            None => true,
            Some(0) => {
                self.reached = true;
                false
            }
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

/// How deletions are carried out and counted.
pub struct Tally {
    /// Only count and list (a dry run).
    pub dry_run: bool,
    /// Where each deletion is reported (`-i`: `*deleting   path`).
    pub changes: std::sync::Arc<super::changes::Changes>,
    pub deleted: u64,
    pub budget: Budget,
}

/// Remove the extras. Each entry removed (every file of a removed subtree
/// too) is counted; a failure is accounted and the rest go on.
pub fn run(dst_root: &OwnedFd, extras: &[Extra], t: &mut Tally, paths: &Paths, sm: &mut Summary) {
    for x in extras {
        let (parent, name) = split_rel(&x.rel);
        let r = open_beneath(dst_root, parent, OFlags::DIRECTORY | OFlags::RDONLY)
            .and_then(|dir| remove(dir.as_fd(), name, &x.rel, x.dir, t));
        if let Err(e) = r {
            sm.fail_kind(
                if x.dir { Failed::Dir } else { Failed::File },
                crate::stats::io_kind(&e),
                paths.destination(&x.rel),
                format!("delete: {e}"),
            );
        }
        if t.budget.reached {
            log::error!(
                "--max-delete limit reached after {} deletions; the other extra entries are kept",
                t.deleted
            );
            break;
        }
    }
}

/// Remove `name` in `dir` (a whole subtree when it is a directory that is
/// still a directory now; never following a symlink).
fn remove(dir: BorrowedFd, name: &[u8], rel: &[u8], is_dir: bool, t: &mut Tally) -> io::Result<()> {
    if is_dir {
        let sub = match rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Some(fd),
            // Replaced by a non-directory since the walk: removed as one.
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => None,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some(sub) = sub {
            for ent in rustix::fs::Dir::read_from(&sub)? {
                let ent = ent?;
                let child = ent.file_name().to_bytes();
                if child == b"." || child == b".." {
                    continue;
                }
                let mut crel = rel.to_vec();
                crel.push(b'/');
                crel.extend_from_slice(child);
                let child_dir = ent.file_type() == FileType::Directory;
                remove(sub.as_fd(), child, &crel, child_dir, t)?;
                if t.budget.reached {
                    return Ok(());
                }
            }
            return unlink(dir, name, rel, true, t);
        }
    }
    unlink(dir, name, rel, false, t)
}

fn unlink(dir: BorrowedFd, name: &[u8], rel: &[u8], is_dir: bool, t: &mut Tally) -> io::Result<()> {
    if !t.budget.take() {
        return Ok(());
    }
    if !t.dry_run {
        crate::failpoint::hit("supervisor::delete", rel);
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(dir, name, flags) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    t.deleted += 1;
    t.changes.record(&super::changes::Change {
        rel,
        kind: if is_dir {
            super::changes::Kind::Dir
        } else {
            super::changes::Kind::File
        },
        action: super::changes::Action::Deleted,
        reasons: Default::default(),
        size: None,
        target: None,
    });
    log::debug!("deleted {}", crate::util::escape_bytes(rel));
    Ok(())
}

/// `--delete` type clash: remove the destination entry `name` in `dir`
/// that is in the way of a source entry of another type, right away (the
/// source entry replaces it). Counted like any deletion; not limited by
/// `--max-delete` (it is part of placing the source entry).
pub fn clear_way(dir: BorrowedFd, name: &[u8], rel: &[u8], t: &mut Tally) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    remove(dir, name, rel, is_dir, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally() -> Tally {
        Tally {
            dry_run: false,
            changes: Default::default(),
            deleted: 0,
            budget: Budget::new(None),
        }
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_after_the_walk_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (dst, outside) = (t.path().join("dst"), t.path().join("outside"));
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("precious"), b"keep").unwrap();
        std::fs::write(outside.join("sub/also"), b"keep").unwrap();
        std::fs::create_dir(&dst).unwrap();
        // The walk saw a directory "d"; by deletion time it is a symlink.
        std::os::unix::fs::symlink(&outside, dst.join("d")).unwrap();
        let root = OwnedFd::from(std::fs::File::open(&dst).unwrap());
        let extras = [Extra {
            rel: b"d".to_vec(),
            dir: true,
        }];
        let mut sm = Summary::default();
        let mut t = tally();
        let paths = Paths::new("s".as_ref(), "d".as_ref());
        run(&root, &extras, &mut t, &paths, &mut sm);
        assert_eq!(t.deleted, 1, "only the symlink itself");
        assert!(std::fs::symlink_metadata(dst.join("d")).is_err());
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
        assert_eq!(std::fs::read(outside.join("sub/also")).unwrap(), b"keep");
    }
}
