//! `--delete`: removing destination entries the source does not have, and
//! clearing an entry of another type out of a source entry's way.
//!
//! The walk decides what is extra, directory by directory, and only for a
//! source directory it read completely (a transient read error must never
//! wipe a backup). The removal itself happens here, after every copy of the
//! run has finished, and only if the run was neither interrupted nor out of
//! space. Everything goes through held directory descriptors: `openat` with
//! `O_NOFOLLOW` beneath the destination root, `unlinkat`, never a path and
//! never a symlink followed, so nothing outside the destination can go.
//!
//! One `Deleter` per run makes every removal, whatever led to it, follow
//! rsync's rules (delete.c): an excluded entry is protected (unless
//! `--delete-excluded`) and keeps its directory, which is then reported as
//! "cannot delete non-empty directory" and kept; with `-x` nothing on
//! another device than the destination root is removed or descended into;
//! every removal but the replaced entry itself spends the one
//! `--max-delete` budget; with `--backup-dir` what would be destroyed is
//! moved there instead.

use super::backup::Backup;
use super::changes::{Action, Change, Changes, Kind};
use crate::copy::join_rel;
use crate::copy::{open_beneath, split_rel};
use crate::filter::Filter;
use crate::stats::{Failed, Paths, Summary};
use crate::work::Extra;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Deletions left before `--max-delete` stops them (None: no limit);
/// shared by the walker threads (type clashes) and the deletion pass.
struct Allowance {
    left: Option<AtomicU64>,
    /// The limit stopped a deletion.
    reached: AtomicBool,
}

impl Allowance {
    /// Take one deletion from the allowance; false when it is spent.
    fn take(&self) -> bool {
        let Some(left) = &self.left else {
            return true;
        };
        let took = left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !took {
            self.reached.store(true, Ordering::Relaxed);
        }
        took
    }
}

/// An entry that could not be removed: (rel, is_dir, message, errno kind).
type Failure = (Vec<u8>, bool, String, &'static str);

/// What a removal left behind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gone {
    /// The entry is gone (in a dry run: would be).
    Yes,
    /// Kept: protected, a mount point, the limit, or something inside it
    /// was kept.
    Kept,
}

/// How the run removes entries; see the module comment.
pub struct Deleter {
    /// Only count and list (a dry run).
    dry_run: bool,
    changes: Arc<Changes>,
    filter: Arc<Filter>,
    /// `--delete-excluded`: excluded entries are not protected.
    delete_excluded: bool,
    /// `-x`: the destination root's device bounds what is removed.
    root_dev: Option<u64>,
    allowance: Allowance,
    backup: Option<Backup>,
    paths: Paths,
    deleted: AtomicU64,
    /// Deletions `--max-delete` held back.
    kept: AtomicU64,
    /// Entries that could not be removed.
    failures: Mutex<Vec<Failure>>,
}

/// The settings a `Deleter` is made from.
pub struct Rules {
    pub dry_run: bool,
    pub delete_excluded: bool,
    pub max_delete: Option<u64>,
    /// `-x` and the destination root's device.
    pub one_file_system: Option<u64>,
}

impl Deleter {
    pub fn new(
        r: Rules,
        filter: Arc<Filter>,
        changes: Arc<Changes>,
        backup: Option<Backup>,
        paths: Paths,
    ) -> Self {
        Deleter {
            dry_run: r.dry_run,
            changes,
            filter,
            delete_excluded: r.delete_excluded,
            root_dev: r.one_file_system,
            allowance: Allowance {
                left: r.max_delete.map(AtomicU64::new),
                reached: AtomicBool::new(false),
            },
            backup,
            paths,
            deleted: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// An excluded entry is kept unless `--delete-excluded`; the backup
    /// directory, when it lies in the destination, always.
    pub fn protected(&self, rel: &[u8], is_dir: bool) -> bool {
        self.backup.as_ref().is_some_and(|b| b.holds(rel))
            || (!self.delete_excluded && self.filter.excluded(rel, is_dir))
    }

    /// `--backup-dir`: keep the destination's `name` in `dir` (at `rel`),
    /// which a worker is about to replace; nothing without a backup
    /// directory or in a dry run.
    pub fn back_up(&self, dir: BorrowedFd, name: &[u8], rel: &[u8]) -> io::Result<()> {
        match &self.backup {
            Some(b) if !self.dry_run => b.link(dir, name, rel),
            _ => Ok(()),
        }
    }

    /// Entries removed so far (not counting replaced ones).
    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    /// `--max-delete-percent`: how many entries removing `extras` would
    /// delete, and how many entries their directories hold (the walk did
    /// not list those). Nothing is changed.
    pub fn count(&self, dst_root: &OwnedFd, extras: &[Extra]) -> (u64, u64) {
        let (mut would, mut inside) = (0, 0);
        for x in extras {
            let (parent, name) = split_rel(&x.rel);
            if let Ok(dir) = open_beneath(dst_root, parent, OFlags::DIRECTORY | OFlags::RDONLY) {
                would += 1;
                if x.dir {
                    self.count_in(dir.as_fd(), name, &x.rel, (&mut would, &mut inside));
                }
            }
        }
        (would, inside)
    }

    fn count_in(&self, dir: BorrowedFd, name: &[u8], rel: &[u8], n: (&mut u64, &mut u64)) {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        let Ok(sub) = rustix::fs::openat(dir, name, flags, Mode::empty()) else {
            return;
        };
        if self.foreign_device(sub.as_fd()) {
            return;
        }
        let Ok(entries) = rustix::fs::Dir::read_from(&sub) else {
            return;
        };
        let (would, inside) = n;
        for ent in entries.flatten() {
            let child = ent.file_name().to_bytes();
            if child == b"." || child == b".." {
                continue;
            }
            *inside += 1;
            let crel = join_rel(rel, child);
            let child_dir = is_dir_entry(sub.as_fd(), &ent);
            if !self.protected(&crel, child_dir) {
                *would += 1;
                if child_dir {
                    self.count_in(sub.as_fd(), child, &crel, (&mut *would, &mut *inside));
                }
            }
        }
    }

    /// `-x`: directory `dir` is on another device than the destination
    /// root, so it is not looked into (no syscall without `-x`).
    pub fn foreign_device(&self, dir: BorrowedFd) -> bool {
        self.root_dev
            .is_some_and(|root| rustix::fs::fstat(dir).is_ok_and(|st| st.st_dev != root))
    }

    /// Remove the extras (after every copy of the run). A failure is
    /// recorded and the rest go on.
    pub fn extras(&self, dst_root: &OwnedFd, extras: &[Extra]) {
        for x in extras {
            let (parent, name) = split_rel(&x.rel);
            let r = open_beneath(dst_root, parent, OFlags::DIRECTORY | OFlags::RDONLY)
                .and_then(|dir| self.remove(dir.as_fd(), name, &x.rel, x.dir, false));
            if let Err(e) = r {
                self.failed(&x.rel, x.dir, &e);
            }
        }
    }

    /// A type clash: remove the destination entry `name` in `dir` that is
    /// in the way of a source entry of another type. As in rsync, the
    /// entry itself is replaced, not deleted (no budget, no `*deleting`
    /// line); what a directory in the way holds is deleted like any extra.
    /// Ok(false) when something had to be kept, so the way is not clear.
    pub fn clear_way(&self, dir: BorrowedFd, name: &[u8], rel: &[u8]) -> io::Result<bool> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        Ok(self.remove(dir, name, rel, is_dir, true)? == Gone::Yes)
    }

    /// Remove `name` in `dir`: a whole subtree when it is a directory that
    /// is still a directory now, never following a symlink, keeping what
    /// is protected. `replaced`: the entry is making room for another.
    fn remove(
        &self,
        dir: BorrowedFd,
        name: &[u8],
        rel: &[u8],
        is_dir: bool,
        replaced: bool,
    ) -> io::Result<Gone> {
        let mut is_dir = is_dir;
        if is_dir {
            let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, name, flags, Mode::empty()) {
                Ok(sub) => {
                    // A directory without u+w (0555) cannot be emptied; its
                    // owner may add it, as rsync does before deleting.
                    let mut was = None;
                    if !self.dry_run {
                        if let Ok(st) = rustix::fs::fstat(&sub) {
                            if st.st_mode & 0o700 != 0o700 {
                                let mode = Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777);
                                if rustix::fs::fchmod(&sub, mode).is_ok() {
                                    was = Some(Mode::from_raw_mode(st.st_mode & 0o7777));
                                }
                            }
                        }
                    }
                    let gone = self.empty_out(&sub, rel);
                    if !matches!(gone, Ok(Gone::Yes)) {
                        // Kept (or failed): it keeps the mode it had.
                        if let Some(mode) = was {
                            let _ = rustix::fs::fchmod(&sub, mode);
                        }
                    }
                    if gone? == Gone::Kept {
                        return Ok(Gone::Kept);
                    }
                }
                // Replaced by a non-directory since the walk: removed as one.
                Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => is_dir = false,
                Err(rustix::io::Errno::NOENT) => return Ok(Gone::Yes),
                Err(e) => return Err(e.into()),
            }
        }
        self.unlink(dir, name, rel, is_dir, replaced)
    }

    /// Remove what directory `sub` (at `rel`) holds; Kept when anything
    /// stays (protected, a mount point under `-x`, the limit, a failure).
    fn empty_out(&self, sub: &OwnedFd, rel: &[u8]) -> io::Result<Gone> {
        if self.foreign_device(sub.as_fd()) {
            log::info!("cannot delete mount point: {}", self.paths.destination(rel));
            return Ok(Gone::Kept);
        }
        let mut all = Gone::Yes;
        for ent in rustix::fs::Dir::read_from(sub)? {
            let ent = ent?;
            let child = ent.file_name().to_bytes();
            if child == b"." || child == b".." {
                continue;
            }
            let crel = join_rel(rel, child);
            let child_dir = is_dir_entry(sub.as_fd(), &ent);
            if self.protected(&crel, child_dir) {
                all = Gone::Kept;
                continue;
            }
            match self.remove(sub.as_fd(), child, &crel, child_dir, false) {
                Ok(Gone::Yes) => {}
                Ok(Gone::Kept) => all = Gone::Kept,
                Err(e) => {
                    self.failed(&crel, child_dir, &e);
                    all = Gone::Kept;
                }
            }
        }
        if all == Gone::Kept {
            log::info!(
                "cannot delete non-empty directory: {}",
                self.paths.destination(rel)
            );
        }
        Ok(all)
    }

    fn unlink(
        &self,
        dir: BorrowedFd,
        name: &[u8],
        rel: &[u8],
        is_dir: bool,
        replaced: bool,
    ) -> io::Result<Gone> {
        if !replaced && !self.allowance.take() {
            self.kept.fetch_add(1, Ordering::Relaxed);
            return Ok(Gone::Kept);
        }
        let kind = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Kind::of(FileType::from_raw_mode(st.st_mode)),
            Err(rustix::io::Errno::NOENT) => return Ok(Gone::Yes),
            Err(_) if is_dir => Kind::Dir,
            Err(_) => Kind::File,
        };
        if !self.dry_run {
            crate::failpoint::hit("supervisor::delete", rel);
            match &self.backup {
                // A directory's contents were moved one by one; the empty
                // directory itself has nothing to keep.
                Some(b) if !is_dir => b.keep(dir, name, rel)?,
                _ => {
                    let flags = if is_dir {
                        AtFlags::REMOVEDIR
                    } else {
                        AtFlags::empty()
                    };
                    match rustix::fs::unlinkat(dir, name, flags) {
                        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                        Err(rustix::io::Errno::NOTEMPTY) => {
                            // Something appeared since it was emptied.
                            log::info!(
                                "cannot delete non-empty directory: {}",
                                self.paths.destination(rel)
                            );
                            return Ok(Gone::Kept);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if replaced {
            return Ok(Gone::Yes);
        }
        self.deleted.fetch_add(1, Ordering::Relaxed);
        self.changes.record(&Change {
            rel,
            kind,
            action: Action::Deleted,
            reasons: Default::default(),
            size: None,
            target: None,
        });
        log::debug!("deleted {}", crate::util::escape_bytes(rel));
        Ok(Gone::Yes)
    }

    fn failed(&self, rel: &[u8], is_dir: bool, e: &io::Error) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.push((
            rel.to_vec(),
            is_dir,
            format!("delete: {e}"),
            crate::stats::io_kind(e),
        ));
    }

    /// The failures recorded so far (each reported once).
    fn take_failures(&self) -> Vec<Failure> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Fold the run's deletions into the summary (once, at the end).
    pub fn account(&self, sm: &mut Summary) {
        for (rel, dir, msg, kind) in self.take_failures() {
            let what = if dir { Failed::Dir } else { Failed::File };
            sm.fail_kind(what, kind, self.paths.destination(&rel), msg);
        }
        let kept = self.kept.load(Ordering::Relaxed);
        sm.entries_deleted += self.deleted.load(Ordering::Relaxed);
        sm.deletes_kept += kept;
        if self.allowance.reached.load(Ordering::Relaxed) {
            sm.delete_limit_reached = true;
            log::error!(
                "--max-delete limit reached after {} deletions ({kept} kept)",
                self.deleted.load(Ordering::Relaxed)
            );
        }
    }
}

/// Whether directory entry `ent` of `dir` is a directory: its `d_type`,
/// or an `lstat` where the filesystem does not fill that in.
pub fn is_dir_entry(dir: BorrowedFd, ent: &rustix::fs::DirEntry) -> bool {
    match ent.file_type() {
        FileType::Unknown => rustix::fs::statat(dir, ent.file_name(), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory),
        t => t == FileType::Directory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleter(rules: &[crate::filter::Rule], max: Option<u64>) -> Deleter {
        Deleter::new(
            Rules {
                dry_run: false,
                delete_excluded: false,
                max_delete: max,
                one_file_system: None,
            },
            Arc::new(Filter::new(rules).unwrap()),
            Default::default(),
            None,
            Paths::new("s".as_ref(), "d".as_ref()),
        )
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
        let d = deleter(&[], None);
        d.extras(&root, &extras);
        assert_eq!(
            d.deleted.load(Ordering::Relaxed),
            1,
            "only the symlink itself"
        );
        assert!(std::fs::symlink_metadata(dst.join("d")).is_err());
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
        assert_eq!(std::fs::read(outside.join("sub/also")).unwrap(), b"keep");
    }

    #[test]
    fn an_excluded_entry_keeps_its_directory() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("x/y")).unwrap();
        std::fs::write(t.path().join("x/keep.log"), b"L").unwrap();
        std::fs::write(t.path().join("x/y/gone"), b"g").unwrap();
        let root = OwnedFd::from(std::fs::File::open(t.path()).unwrap());
        let d = deleter(&[crate::filter::Rule::exclude("*.log")], None);
        d.extras(
            &root,
            &[Extra {
                rel: b"x".to_vec(),
                dir: true,
            }],
        );
        assert_eq!(std::fs::read(t.path().join("x/keep.log")).unwrap(), b"L");
        assert!(
            !t.path().join("x/y").exists(),
            "the unprotected subtree goes"
        );
        assert_eq!(d.deleted.load(Ordering::Relaxed), 2, "x/y/gone and x/y");
    }
}
