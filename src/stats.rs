//! Run counters aggregated by the supervisor from worker outcomes, and the
//! summary (human text and the `--json` object).

use serde::{Deserialize, Serialize};

/// Maximum number of `{path, message}` entries kept in the JSON `errors` list;
/// `errors_truncated` says how many more there were.
pub const MAX_REPORTED_ERRORS: usize = 100;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorEntry {
    pub path: String,
    /// Machine-readable: the errno name (`EACCES`) when the OS said why,
    /// else a word (`vanished`, `changed`, `type_clash`, `verify_mismatch`,
    /// `crashed`, `disk_full`, `other`).
    pub kind: String,
    pub message: String,
}

/// The `--json` schema's version: bumped when a field changes meaning or
/// goes away (new fields do not bump it). Documented in docs/json.md.
pub const SCHEMA_VERSION: u32 = 1;

/// Counters for one run. `*_found` come from the walk, the rest from outcomes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    /// The source and destination as given (undecodable bytes as `\xNN`).
    pub source: String,
    pub destination: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// The process's exit code for this run (see the README's table).
    pub exit_code: u8,
    pub files_found: u64,
    pub files_copied: u64,
    pub files_skipped: u64,
    pub files_failed: u64,
    /// Of the failed files and directories: source entries that vanished
    /// during the run (harmless; exit 24 when they are the only failures).
    pub entries_vanished: u64,
    pub dirs_created: u64,
    pub dirs_failed: u64,
    pub symlinks_copied: u64,
    pub hardlinks_created: u64,
    pub specials_copied: u64,
    pub entries_ignored: u64,
    pub bytes_found: u64,
    pub bytes_copied: u64,
    /// Regular files (and their bytes) placed as clones (`--reflink`):
    /// extents shared with the source, no bytes moved. Not in `*_copied`.
    pub files_cloned: u64,
    pub bytes_cloned: u64,
    /// Bytes of files found up to date (skipped).
    pub bytes_skipped: u64,
    /// Bytes of further names of files already counted (hard links): made
    /// links, never copied. bytes_found = copied + skipped + linked +
    /// failed + not copied.
    pub bytes_linked: u64,
    /// Bytes of regular files that failed.
    pub bytes_failed: u64,
    /// `--link-dest`: entries hard-linked from a basis directory, where
    /// they were unchanged (and the bytes of the regular files among
    /// them): no data written. Not in `*_copied` or `*_skipped`.
    pub files_linked_from_basis: u64,
    pub bytes_linked_from_basis: u64,
    pub elapsed_seconds: f64,
    /// The pool: `-j` (or the configured processes), or what it grew to.
    pub workers: u32,
    /// Worker processes started, replacements aside: workers start as
    /// work arrives, so a run with little or nothing to copy starts fewer
    /// than `workers`, or none.
    pub workers_started: u32,
    pub worker_restarts: u32,
    pub interrupted: bool,
    /// `--dry-run`: the counts say what would have been done.
    pub dry_run: bool,
    /// Entries skipped by `--exclude` (an excluded directory counts once).
    pub entries_excluded: u64,
    /// Entries whose data was current but whose permissions, owner, group
    /// or extended attributes differed and were fixed in place (counted
    /// among the skipped too: no data was copied).
    pub entries_repaired: u64,
    /// `--delete`: destination entries removed (every entry of a removed
    /// subtree counts; in a dry run: would be).
    pub entries_deleted: u64,
    /// `--max-delete` stopped deletions (exit 25).
    pub delete_limit_reached: bool,
    /// Deletions `--max-delete` held back (rsync's "N skipped").
    pub deletes_kept: u64,
    /// `--max-delete-percent` held every deletion back (exit 26).
    pub delete_refused: bool,
    /// Files whose copy was re-read and matched the source (`--verify`).
    pub files_verified: u64,
    /// Files still growing by appends when copied: each was copied as the
    /// prefix it had when first read (a warning names it).
    pub files_grown: u64,
    /// The destination filled up (ENOSPC/EDQUOT): reported once, no new
    /// data dispatched after it; exit code 11.
    pub disk_full: bool,
    /// Files (and bytes) left uncopied because the destination was full.
    pub files_not_copied: u64,
    pub bytes_not_copied: u64,
    pub errors: Vec<ErrorEntry>,
    pub errors_truncated: u64,
    /// Signal that interrupted the run, if any (exit code 128 + signal).
    #[serde(skip)]
    pub signal: Option<i32>,
    /// `--verify` was asked for (the text summary then says how many).
    #[serde(skip)]
    pub verify: bool,
    /// Under MPI, a rank other than 0: rank 0 prints the job's summary.
    #[serde(skip)]
    pub silent: bool,
}

/// What failed: one of the two counters every failure lands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    File,
    Dir,
    /// A source file (or directory) that disappeared during the run: a
    /// failure that needs no action (log rotation, temp files), exit 24
    /// when it is the only kind.
    Vanished,
    VanishedDir,
}

/// The machine-readable kind of an OS error: its errno name, or "other".
pub fn io_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    e.raw_os_error()
        .and_then(crate::util::errno_name)
        .unwrap_or(match e.kind() {
            K::NotFound => "ENOENT",
            K::PermissionDenied => "EACCES",
            K::AlreadyExists => "EEXIST",
            _ => "other",
        })
}

/// How failures name entries: always a full path, the source's or the
/// destination's, with the root itself named as given on the command line.
#[derive(Clone, Debug)]
pub struct Paths {
    source: String,
    destination: String,
}

impl Paths {
    pub fn new(source: &std::path::Path, destination: &std::path::Path) -> Self {
        let shown =
            |p: &std::path::Path| crate::util::escape_bytes(p.as_os_str().as_encoded_bytes());
        Paths {
            source: shown(source),
            destination: shown(destination),
        }
    }

    pub fn source(&self, rel: &[u8]) -> String {
        Self::join(&self.source, rel)
    }

    pub fn destination(&self, rel: &[u8]) -> String {
        Self::join(&self.destination, rel)
    }

    fn join(root: &str, rel: &[u8]) -> String {
        if rel.is_empty() {
            return root.to_string();
        }
        let root = root.trim_end_matches('/');
        format!("{root}/{}", crate::util::escape_bytes(rel))
    }
}

impl Summary {
    /// Add another rank's counts to these (MPI): counters add up, flags
    /// combine, elapsed is the longest, error details are appended up to
    /// the cap; the paths, times and exit code stay this rank's. Every
    /// field is named (no `..`), so one added later does not compile until
    /// it is given its rule here.
    /// Long because every field of `Summary` is named, each with its rule, so a new field does not compile until it has one.
    pub fn absorb(&mut self, other: Summary) {
        let Summary {
            schema_version: _,
            source: _,
            destination: _,
            started_at: _,
            finished_at: _,
            exit_code: _,
            files_found,
            files_copied,
            files_skipped,
            files_failed,
            entries_vanished,
            dirs_created,
            dirs_failed,
            symlinks_copied,
            hardlinks_created,
            specials_copied,
            entries_ignored,
            bytes_found,
            bytes_copied,
            files_cloned,
            bytes_cloned,
            bytes_skipped,
            bytes_linked,
            bytes_failed,
            files_linked_from_basis,
            bytes_linked_from_basis,
            elapsed_seconds,
            workers,
            workers_started,
            worker_restarts,
            interrupted,
            dry_run,
            entries_excluded,
            entries_repaired,
            entries_deleted,
            delete_limit_reached,
            deletes_kept,
            delete_refused,
            files_verified,
            files_grown,
            disk_full,
            files_not_copied,
            bytes_not_copied,
            errors,
            errors_truncated,
            signal,
            verify: _,
            silent: _,
        } = other;
        let sums = [
            (&mut self.files_found, files_found),
            (&mut self.files_copied, files_copied),
            (&mut self.files_skipped, files_skipped),
            (&mut self.files_failed, files_failed),
            (&mut self.entries_vanished, entries_vanished),
            (&mut self.dirs_created, dirs_created),
            (&mut self.dirs_failed, dirs_failed),
            (&mut self.symlinks_copied, symlinks_copied),
            (&mut self.hardlinks_created, hardlinks_created),
            (&mut self.specials_copied, specials_copied),
            (&mut self.entries_ignored, entries_ignored),
            (&mut self.bytes_found, bytes_found),
            (&mut self.bytes_copied, bytes_copied),
            (&mut self.files_cloned, files_cloned),
            (&mut self.bytes_cloned, bytes_cloned),
            (&mut self.bytes_skipped, bytes_skipped),
            (&mut self.bytes_linked, bytes_linked),
            (&mut self.bytes_failed, bytes_failed),
            (&mut self.files_linked_from_basis, files_linked_from_basis),
            (&mut self.bytes_linked_from_basis, bytes_linked_from_basis),
            (&mut self.entries_excluded, entries_excluded),
            (&mut self.entries_repaired, entries_repaired),
            (&mut self.entries_deleted, entries_deleted),
            (&mut self.deletes_kept, deletes_kept),
            (&mut self.files_verified, files_verified),
            (&mut self.files_grown, files_grown),
            (&mut self.files_not_copied, files_not_copied),
            (&mut self.bytes_not_copied, bytes_not_copied),
            (&mut self.errors_truncated, errors_truncated),
        ];
        for (mine, theirs) in sums {
            *mine += theirs;
        }
        for (mine, theirs) in [
            (&mut self.workers, workers),
            (&mut self.workers_started, workers_started),
            (&mut self.worker_restarts, worker_restarts),
        ] {
            *mine += theirs;
        }
        for (mine, theirs) in [
            (&mut self.interrupted, interrupted),
            (&mut self.dry_run, dry_run),
            (&mut self.delete_limit_reached, delete_limit_reached),
            (&mut self.delete_refused, delete_refused),
            (&mut self.disk_full, disk_full),
        ] {
            *mine |= theirs;
        }
        self.elapsed_seconds = self.elapsed_seconds.max(elapsed_seconds);
        self.signal = self.signal.or(signal);
        for e in errors {
            self.push_error(&e.kind, e.path, e.message);
        }
    }

    /// The one way a failure is accounted: logged as an error, counted, and
    /// listed (the first `MAX_REPORTED_ERRORS`).
    pub fn fail(&mut self, what: Failed, path: String, msg: String) {
        self.fail_kind(what, "other", path, msg);
    }

    /// `fail`, with the machine-readable kind of the error (see `ErrorEntry`).
    pub fn fail_kind(&mut self, what: Failed, kind: &str, path: String, msg: String) {
        match what {
            Failed::File => self.files_failed += 1,
            Failed::Dir => self.dirs_failed += 1,
            Failed::Vanished => self.files_failed += 1,
            Failed::VanishedDir => self.dirs_failed += 1,
        }
        if matches!(what, Failed::Vanished | Failed::VanishedDir) {
            self.entries_vanished += 1;
            log::warn!("{path}: {msg}");
        } else {
            log::error!("{path}: {msg}");
        }
        let kind = match what {
            Failed::Vanished | Failed::VanishedDir => "vanished",
            _ => kind,
        };
        self.push_error(kind, path, msg);
    }

    /// Every failure was a vanished source entry (exit 24, not 1).
    pub fn only_vanished(&self) -> bool {
        self.any_failed() && self.files_failed + self.dirs_failed == self.entries_vanished
    }

    /// Record a failed entry, keeping at most `MAX_REPORTED_ERRORS` details.
    pub fn push_error(&mut self, kind: &str, path: String, message: String) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(ErrorEntry {
                path,
                kind: kind.to_string(),
                message,
            });
        } else {
            self.errors_truncated += 1;
        }
    }

    pub fn any_failed(&self) -> bool {
        self.files_failed > 0 || self.dirs_failed > 0
    }

    pub fn throughput(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.bytes_copied as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }

    /// The end-of-run summary for humans (stdout, and the log file).
    /// Long because it is the text summary's lines in their printed order, one block per line.
    pub fn human(&self) -> String {
        use indicatif::HumanBytes;
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut lines = Vec::new();
        if self.dry_run {
            lines.push("dry run: nothing was written; the counts say what would be done".into());
        }
        let mut files = format!(
            "files found: {}, copied: {}, skipped (up to date): {}, failed: {}",
            self.files_found, self.files_copied, self.files_skipped, self.files_failed
        );
        if self.files_cloned > 0 {
            files += &format!(", cloned (reflink): {}", self.files_cloned);
        }
        if self.files_linked_from_basis > 0 {
            files += &format!(
                ", linked from --link-dest: {}",
                self.files_linked_from_basis
            );
        }
        if self.entries_vanished > 0 {
            files += &format!(" (vanished during the run: {})", self.entries_vanished);
        }
        lines.push(files);
        let mut other = format!(
            "directories created: {}, failed: {}; symlinks: {}, hard links: {}, specials: {}",
            self.dirs_created,
            self.dirs_failed,
            self.symlinks_copied,
            self.hardlinks_created,
            self.specials_copied
        );
        if self.entries_ignored > 0 {
            other += &format!(", ignored (sockets): {}", self.entries_ignored);
        }
        lines.push(other);
        let mut size = format!(
            "size: {} found = {} copied + {} up to date + {} hard-linked",
            HumanBytes(self.bytes_found),
            HumanBytes(self.bytes_copied),
            HumanBytes(self.bytes_skipped),
            HumanBytes(self.bytes_linked)
        );
        if self.bytes_cloned > 0 || self.files_cloned > 0 {
            size += &format!(" + {} cloned", HumanBytes(self.bytes_cloned));
        }
        if self.files_linked_from_basis > 0 {
            size += &format!(
                " + {} linked from --link-dest",
                HumanBytes(self.bytes_linked_from_basis)
            );
        }
        if self.bytes_failed > 0 {
            size += &format!(" + {} failed", HumanBytes(self.bytes_failed));
        }
        if self.bytes_not_copied > 0 {
            size += &format!(" + {} not copied", HumanBytes(self.bytes_not_copied));
        }
        lines.push(size);
        let mut time = format!("time: {:.2} s", self.elapsed_seconds);
        if !self.dry_run {
            time += &format!(
                " ({}/s) with {}, {}",
                HumanBytes(self.throughput() as u64),
                plural(self.workers.into(), "worker", "workers"),
                plural(self.worker_restarts.into(), "restart", "restarts")
            );
        }
        lines.push(time);
        if self.entries_deleted > 0 || self.delete_limit_reached || self.delete_refused {
            let mut d = format!("deleted (not in the source): {}", self.entries_deleted);
            if self.delete_limit_reached {
                d += &format!(" (--max-delete reached: {} kept)", self.deletes_kept);
            }
            if self.delete_refused {
                d += &format!(
                    " (--max-delete-percent: {} would have gone; nothing deleted)",
                    self.deletes_kept
                );
            }
            lines.push(d);
        }
        if self.entries_repaired > 0 {
            lines.push(format!(
                "metadata repaired (data already current): {}",
                self.entries_repaired
            ));
        }
        if self.entries_excluded > 0 {
            lines.push(format!("excluded: {}", self.entries_excluded));
        }
        if self.verify {
            lines.push(format!("verified: {}", self.files_verified));
        }
        if self.files_grown > 0 {
            lines.push(format!(
                "still growing, copied as first read: {}",
                self.files_grown
            ));
        }
        if self.disk_full {
            lines.push(format!(
                "destination full: {} ({}) not copied; free space and re-run to finish",
                plural(self.files_not_copied, "file", "files"),
                HumanBytes(self.bytes_not_copied)
            ));
        }
        if self.interrupted {
            lines.push("interrupted: the copy is incomplete; re-run to finish it".into());
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_add_up_flags_combine_and_the_longest_time_wins() {
        let mut a = Summary {
            source: "/a".into(),
            files_copied: 2,
            bytes_linked_from_basis: 5,
            workers: 4,
            elapsed_seconds: 1.5,
            ..Summary::default()
        };
        a.push_error("EIO", "/a/x".into(), "bad".into());
        let mut b = Summary {
            source: "/b".into(),
            files_copied: 3,
            bytes_linked_from_basis: 7,
            workers: 2,
            elapsed_seconds: 2.5,
            disk_full: true,
            errors_truncated: 4,
            signal: Some(15),
            ..Summary::default()
        };
        b.push_error("ENOSPC", "/b/y".into(), "full".into());
        a.absorb(b);
        assert_eq!(a.source, "/a");
        assert_eq!(
            (a.files_copied, a.bytes_linked_from_basis, a.workers),
            (5, 12, 6)
        );
        assert_eq!(a.elapsed_seconds, 2.5);
        assert!(a.disk_full);
        assert_eq!(a.signal, Some(15));
        assert_eq!(a.errors.len(), 2);
        assert_eq!(a.errors[1].kind, "ENOSPC");
        assert_eq!(a.errors_truncated, 4);
    }

    #[test]
    fn paths_are_full_and_the_root_is_named() {
        let p = Paths::new("/s/".as_ref(), "d".as_ref());
        assert_eq!(p.source(b""), "/s/");
        assert_eq!(p.source(b"a/\xff"), "/s/a/\\xff");
        assert_eq!(p.destination(b"x"), "d/x");
        let mut s = Summary::default();
        s.fail(Failed::Dir, p.destination(b""), "m".into());
        assert_eq!((s.dirs_failed, s.files_failed), (1, 0));
        assert_eq!(s.errors[0].path, "d");
    }

    #[test]
    fn error_list_is_capped() {
        let mut s = Summary::default();
        for i in 0..(MAX_REPORTED_ERRORS + 5) {
            s.push_error("other", format!("p{i}"), "m".into());
        }
        assert_eq!(s.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(s.errors_truncated, 5);
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v = serde_json::to_value(Summary::default()).unwrap();
        for k in [
            "files_found",
            "files_copied",
            "files_skipped",
            "files_failed",
            "dirs_created",
            "symlinks_copied",
            "bytes_found",
            "bytes_copied",
            "elapsed_seconds",
            "workers",
            "workers_started",
            "worker_restarts",
            "errors",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }
}
