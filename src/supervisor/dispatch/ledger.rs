//! The ledger: the one fold of the walk's events, the workers' outcomes and
//! the pool's counts into the run's `Summary`, with the log line each one
//! owes. Whatever a task came to is counted here and nowhere else.

use super::chunks::Finished;
use crate::protocol::{ErrorKind, Outcome, Task, TaskKind};
use crate::stats::{Failed, Paths, Summary};
use crate::work::{Found, WalkEvent};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct Ledger {
    pub summary: Summary,
    /// The walk's shared counters; also where "destination full" is raised.
    pub found: Arc<Found>,
    pub paths: Paths,
}

impl Ledger {
    pub fn new(found: Arc<Found>, paths: Paths) -> Self {
        Ledger {
            summary: Summary::default(),
            found,
            paths,
        }
    }

    fn source(&self, t: &Task) -> String {
        self.paths.source(&t.rel.0)
    }

    fn destination(&self, t: &Task) -> String {
        self.paths.destination(&t.rel.0)
    }

    /// Fold the walk's events in.
    pub fn walk_event(&mut self, ev: WalkEvent) {
        match ev {
            WalkEvent::NoSpace { path, msg } => self.no_space(path, msg),
            ev => fold_walk_event(&mut self.summary, ev),
        }
    }

    /// The pool's counts: workers started and deaths survived. The pool
    /// only grows (lazy starts never lower the figure).
    pub fn pool(&mut self, slots: usize, started: u32, deaths: u32) {
        let sm = &mut self.summary;
        sm.workers = sm.workers.max(slots as u32);
        sm.workers_started = started;
        sm.worker_restarts = deaths;
    }

    /// The destination is full: say so once, stop dispatching data, and let
    /// the walk go on only counting what is left.
    pub fn no_space(&mut self, path: String, msg: String) {
        if !self.summary.disk_full {
            self.summary.disk_full = true;
            self.found.no_space.store(true, Ordering::Relaxed);
            log::error!("{path}: {msg}; destination full: no more data is dispatched");
            self.summary
                .push_error("disk_full", path, format!("{msg} (destination full)"));
        }
    }

    /// A task not copied because the destination is full.
    pub fn count_unsent(&mut self, t: &Task) {
        let sm = &mut self.summary;
        match t.kind {
            TaskKind::File { size } => {
                sm.files_not_copied += 1;
                sm.bytes_not_copied += size;
            }
            TaskKind::Chunk { offset, len, .. } => {
                sm.files_not_copied += u64::from(offset == 0);
                sm.bytes_not_copied += len;
            }
            _ => sm.files_not_copied += 1,
        }
    }

    /// What a whole-entry task (not a chunk) came to.
    pub fn outcome(&mut self, t: &Task, o: Outcome) {
        match o {
            Outcome::Copied {
                bytes,
                verified,
                cloned,
                grew,
            } => self.copied(t, bytes, verified, cloned, grew),
            Outcome::Skipped { bytes, repaired } => {
                let sm = &mut self.summary;
                sm.files_skipped += 1;
                sm.entries_repaired += u64::from(repaired);
                sm.bytes_skipped += bytes;
                log::trace!("up to date {}", t.rel.display());
            }
            Outcome::Ignored { msg } => {
                self.summary.entries_ignored += 1;
                log::warn!("{}: {msg}", t.rel.display());
            }
            Outcome::Failed {
                kind: ErrorKind::NoSpace,
                msg,
                ..
            } => {
                self.no_space(self.destination(t), msg);
                self.count_unsent(t);
            }
            Outcome::Failed {
                kind: ErrorKind::NotFound,
                msg,
                dst: false,
                ..
            } => {
                if let TaskKind::File { size } = t.kind {
                    self.summary.bytes_failed += size;
                }
                let path = self.source(t);
                self.summary.fail(Failed::Vanished, path, msg);
            }
            Outcome::Failed {
                msg,
                dst,
                kind,
                errno,
            } => {
                if let TaskKind::File { size } = t.kind {
                    self.summary.bytes_failed += size;
                }
                let path = if dst {
                    self.destination(t)
                } else {
                    self.source(t)
                };
                let word = crate::util::errno_name(errno).unwrap_or(kind_word(kind));
                self.summary.fail_kind(Failed::File, word, path, msg);
            }
        }
    }

    fn copied(&mut self, t: &Task, bytes: u64, verified: bool, cloned: bool, grew: bool) {
        let sm = &mut self.summary;
        sm.files_verified += u64::from(verified);
        if grew {
            sm.files_grown += 1;
            log::warn!(
                "{}: still growing: copied the first {bytes} bytes, as first read \
                 (unchanged after the copy); the next run copies the rest",
                self.paths.source(&t.rel.0)
            );
        }
        // The size the copy found, not the walk's: a file that grew (or
        // shrank) in between still adds up in bytes_found.
        if let TaskKind::File { size } = t.kind {
            if bytes >= size {
                self.found.bytes.fetch_add(bytes - size, Ordering::Relaxed);
            } else {
                let less = |b: u64| Some(b.saturating_sub(size - bytes));
                let _ = self
                    .found
                    .bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less);
            }
        }
        if cloned {
            sm.files_cloned += 1;
            sm.bytes_cloned += bytes;
            log::debug!("cloned {}", t.rel.display());
        } else {
            count_placed(sm, &t.kind, bytes);
            log::debug!("copied {}", t.rel.display());
        }
    }

    /// A chunk's own share: its bytes, and a full destination. The file it
    /// belongs to is counted once, when finished (`finished`).
    pub fn chunk(&mut self, t: &Task, o: &Outcome) {
        match o {
            Outcome::Failed {
                kind: ErrorKind::NoSpace,
                msg,
                ..
            } => self.no_space(self.destination(t), msg.clone()),
            Outcome::Copied {
                bytes,
                cloned: true,
                ..
            } => self.summary.bytes_cloned += bytes,
            Outcome::Copied { bytes, .. } => self.summary.bytes_copied += bytes,
            _ => {}
        }
    }

    /// A chunked file whose chunks are all in (`file_size` bytes): placed,
    /// failed, or (`Changed`) to be copied again whole, which the caller
    /// queues.
    pub fn finished(&mut self, t: &Task, file_size: u64, placed: Finished, copied_bytes: bool) {
        let sm = &mut self.summary;
        match placed {
            Finished::Placed if !copied_bytes => {
                sm.files_cloned += 1;
                log::debug!("cloned {} (in chunks)", t.rel.display());
            }
            Finished::Placed => {
                sm.files_copied += 1;
                log::debug!("copied {} (in chunks)", t.rel.display());
            }
            Finished::Changed => log::warn!(
                "{}: changed during a chunked copy; copying it again whole",
                self.source(t)
            ),
            Finished::Failed(_) if sm.disk_full => {
                sm.files_not_copied += 1;
                sm.bytes_not_copied += file_size;
            }
            Finished::Failed(msg) => {
                let path = self.source(t);
                self.summary.bytes_failed += file_size;
                self.summary.fail(Failed::File, path, msg);
            }
        }
    }

    /// A large file the run ended without placing: the source's path and
    /// why, unless that was expected (interrupted, or the destination full).
    pub fn unplaced(&mut self, rel: &[u8], msg: String) {
        let path = self.paths.source(rel);
        self.summary.fail(Failed::File, path, msg);
    }
}

/// Fold a walk event into the run's counters (and log failures); a full
/// destination is the ledger's (`Ledger::walk_event`). Also the dry run's
/// whole accounting, which has no dispatcher.
pub fn fold_walk_event(sm: &mut Summary, ev: WalkEvent) {
    match ev {
        WalkEvent::DirCreated => sm.dirs_created += 1,
        WalkEvent::Failed {
            path,
            msg,
            what,
            kind,
        } => sm.fail_kind(what, kind, path, msg),
        WalkEvent::Ignored { path, msg } => {
            log::warn!("{path}: {msg}");
            sm.entries_ignored += 1;
        }
        WalkEvent::Excluded => sm.entries_excluded += 1,
        WalkEvent::NoSpace { .. } => {}
        WalkEvent::Dry {
            up_to_date: true,
            bytes,
            ..
        } => {
            sm.files_skipped += 1;
            sm.bytes_skipped += bytes;
        }
        WalkEvent::Dry { kind, bytes, .. } => count_placed(sm, &kind, bytes),
    }
}

/// Count one entry placed (or, in a dry run, that would be placed).
fn count_placed(sm: &mut Summary, kind: &TaskKind, bytes: u64) {
    match kind {
        TaskKind::File { .. } => {
            sm.files_copied += 1;
            sm.bytes_copied += bytes;
        }
        TaskKind::Symlink => sm.symlinks_copied += 1,
        TaskKind::Fifo | TaskKind::Device => sm.specials_copied += 1,
        // Chunks count their bytes, and the file once when it is placed.
        TaskKind::Chunk { .. } => {}
    }
}

/// The JSON `kind` of an outcome without an errno.
fn kind_word(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::NotFound => "vanished",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::Changed => "changed",
        ErrorKind::TypeClash => "type_clash",
        ErrorKind::NoSpace => "disk_full",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::VerifyMismatch => "verify_mismatch",
        ErrorKind::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DestDir, RelPath};

    fn task(kind: TaskKind) -> Task {
        Task {
            rel: RelPath(b"d/f".to_vec()),
            kind,
            dir: DestDir::Existing,
            basis: None,
        }
    }

    /// The first 8 bytes of a 16-byte file.
    fn first_chunk() -> Task {
        task(TaskKind::Chunk {
            offset: 0,
            len: 8,
            file_size: 16,
            mtime: Default::default(),
            temp: RelPath(b"t".to_vec()),
        })
    }

    fn failed(kind: ErrorKind, dst: bool, errno: i32) -> Outcome {
        Outcome::Failed {
            kind,
            msg: "m".into(),
            dst,
            errno,
        }
    }

    /// Each outcome lands in its own counters, a failure names the side it
    /// happened on, and a full destination is one event after which what
    /// is left counts as not copied.
    #[test]
    fn each_outcome_is_counted_once_where_it_belongs() {
        let found = Arc::new(Found::default());
        found.bytes.store(100, Ordering::Relaxed);
        let paths = Paths::new(std::path::Path::new("/s"), std::path::Path::new("/t"));
        let mut l = Ledger::new(Arc::clone(&found), paths);
        let file = |size| task(TaskKind::File { size });
        let copied = |bytes, cloned, grew| Outcome::Copied {
            bytes,
            verified: true,
            cloned,
            grew,
        };
        l.outcome(&file(10), copied(10, false, false));
        l.outcome(&file(20), copied(20, true, false));
        // Grew from 30 to 35 bytes: bytes_found follows the copy.
        l.outcome(&file(30), copied(35, false, true));
        l.outcome(&task(TaskKind::Symlink), copied(0, false, false));
        l.outcome(
            &file(5),
            Outcome::Skipped {
                bytes: 5,
                repaired: true,
            },
        );
        l.outcome(&file(7), failed(ErrorKind::NotFound, false, 0));
        l.outcome(
            &file(9),
            failed(ErrorKind::PermissionDenied, true, libc::EACCES),
        );
        let sm = &l.summary;
        assert_eq!((sm.files_copied, sm.bytes_copied), (2, 45));
        assert_eq!((sm.files_cloned, sm.bytes_cloned), (1, 20));
        assert_eq!((sm.files_grown, sm.files_verified), (1, 4));
        assert_eq!(sm.symlinks_copied, 1);
        assert_eq!(
            (sm.files_skipped, sm.bytes_skipped, sm.entries_repaired),
            (1, 5, 1)
        );
        assert_eq!(found.bytes.load(Ordering::Relaxed), 105);
        assert_eq!(sm.bytes_failed, 16);
        assert_eq!(sm.errors.len(), 2);
        assert_eq!(
            sm.errors[0].path, "/s/d/f",
            "a vanished source names the source"
        );
        assert_eq!(
            sm.errors[1].path, "/t/d/f",
            "a destination failure names it"
        );
        assert_eq!(sm.errors[1].kind, "EACCES");
        assert!(!sm.disk_full);

        l.outcome(&file(50), failed(ErrorKind::NoSpace, true, libc::ENOSPC));
        l.outcome(&file(60), failed(ErrorKind::NoSpace, true, libc::ENOSPC));
        let chunk = first_chunk();
        l.count_unsent(&chunk);
        let sm = &l.summary;
        assert!(sm.disk_full && found.no_space());
        assert_eq!(sm.errors.len(), 3, "a full destination is reported once");
        assert_eq!(sm.errors[2].kind, "disk_full");
        assert_eq!((sm.files_not_copied, sm.bytes_not_copied), (3, 118));
    }

    /// A chunk counts its bytes; its file counts once, when finished.
    #[test]
    fn a_chunked_file_counts_once() {
        let paths = Paths::new(std::path::Path::new("/s"), std::path::Path::new("/t"));
        let mut l = Ledger::new(Arc::default(), paths);
        let chunk = first_chunk();
        let copied = Outcome::Copied {
            bytes: 8,
            verified: false,
            cloned: false,
            grew: false,
        };
        l.chunk(&chunk, &copied);
        l.chunk(&chunk, &copied);
        assert_eq!((l.summary.files_copied, l.summary.bytes_copied), (0, 16));
        l.finished(&chunk, 16, Finished::Placed, true);
        assert_eq!(l.summary.files_copied, 1);
        l.finished(&chunk, 16, Finished::Placed, false);
        assert_eq!(l.summary.files_cloned, 1);
        l.finished(&chunk, 16, Finished::Failed("x".into()), true);
        assert_eq!((l.summary.files_failed, l.summary.bytes_failed), (1, 16));
    }
}
