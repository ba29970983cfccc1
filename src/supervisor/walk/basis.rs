//! `--link-dest`, `--compare-dest`, `--copy-dest`: a basis directory is one
//! more place the per-entry decision looks before it chooses "copy", as
//! rsync's `try_dests_reg`/`try_dests_non` do. For an entry the destination
//! lacks, each basis is searched in order for the best match: the same type
//! (level 1), also the same data by the quick check or by content under
//! `-c` (level 2), also the same attributes: mtime, mode, owner and group
//! as root, ACLs and xattrs (level 3, which ends the search). An exact match
//! is hard-linked (`--link-dest`), left out (`--compare-dest`) or copied
//! (`--copy-dest`); anything less is copied, itemized against the basis
//! entry as rsync itemizes it. A destination file that exists is replaced
//! only by an exact match under `--link-dest` (a link) or `--compare-dest`
//! (removed: the destination holds only what differs from the basis).
//!
//! Every basis access is beneath a descriptor opened once at the start
//! (`openat2`, no symlinks): a basis renamed or swapped for a symlink
//! mid-run is never followed, and nothing here writes into a basis.

use super::{Entry, Walker};
use crate::config::BasisKind;
use crate::copy::open_beneath;
use crate::protocol::{FromBasis, Time};
use crate::supervisor::changes::{Action, Change, Kind, Reasons};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The run's basis directories, open.
pub struct Bases {
    pub kind: BasisKind,
    pub(super) roots: Vec<OwnedFd>,
    /// Each root's (device, inode), for the workers that inherit them.
    ids: Vec<(u64, u64)>,
    /// A link refused for a reason that will repeat (EMLINK, EXDEV) has
    /// been warned about once.
    warned: AtomicBool,
    /// Names for this run's own link temps (`temp::link`), apart from the
    /// finish pass's.
    seq: AtomicU64,
}

impl Bases {
    /// Open each directory of `b`: an absolute one as given, a relative one
    /// against the destination (as rsync, which works in the destination).
    /// One that cannot be opened is left out with a warning, as rsync does.
    pub fn open(b: &crate::config::Basis, destination: &Path, dst: Option<&OwnedFd>) -> Self {
        let mut roots = Vec::new();
        let mut ids = Vec::new();
        for dir in &b.dirs {
            let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
            let opened = match dst {
                Some(fd) if dir.is_relative() => rustix::fs::openat(fd, dir, flags, Mode::empty()),
                // A dry run into a destination that does not exist yet.
                _ if dir.is_relative() => {
                    rustix::fs::open(lexical(&destination.join(dir)), flags, Mode::empty())
                }
                _ => rustix::fs::open(dir, flags, Mode::empty()),
            };
            match opened.and_then(|fd| rustix::fs::fstat(&fd).map(|st| (fd, st))) {
                Ok((fd, st)) => {
                    roots.push(fd);
                    ids.push((st.st_dev, st.st_ino));
                }
                Err(e) => log::warn!(
                    "{} {}: {} (not used)",
                    b.kind.flag(),
                    escape_bytes(dir.as_os_str().as_encoded_bytes()),
                    std::io::Error::from(e)
                ),
            }
        }
        Bases {
            kind: b.kind,
            roots,
            ids,
            warned: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        }
    }
}

impl Bases {
    /// The descriptors workers inherit (these very numbers, held for the
    /// whole run) with the identities a worker checks them against.
    pub fn inherited(&self) -> Vec<(i32, (u64, u64))> {
        use std::os::fd::AsRawFd;
        self.roots
            .iter()
            .zip(&self.ids)
            .map(|(fd, &id)| (fd.as_raw_fd(), id))
            .collect()
    }
}

/// `a/b/../c` as `a/c`, for a path whose directories do not exist yet.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir
                if !matches!(
                    out.components().next_back(),
                    None | Some(Component::ParentDir)
                ) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The basis directories' copies of one source directory, in search
/// order (None where a basis lacks it).
pub(super) type BasisDirs = Vec<Option<OwnedFd>>;

/// How well a basis entry matches the source entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Level {
    /// The same type.
    Type,
    /// Also the same data (regular file: size and mtime, or content under
    /// `-c`; symlink: target; device: number).
    Data,
    /// Also the same attributes: nothing would differ.
    Exact,
}

/// The best basis entry for a source entry.
pub(super) struct Match {
    /// Which basis (index into the entry's `BasisDirs`).
    pub j: usize,
    pub level: Level,
    pub st: Stat,
}

/// What the basis decided for an entry.
pub(super) enum Decision {
    /// No basis has it (or the destination's entry is what counts): the
    /// usual decision.
    Usual,
    /// Decided, counted and reported here.
    Done,
    /// Copied (created): itemized against the basis entry `note`, or not
    /// at all (an exact match under `--copy-dest`); its data read from the
    /// basis entry `from` when one holds it (rsync's copy_altdest_file).
    Copy {
        note: Option<Match>,
        from: Option<FromBasis>,
    },
}

impl Walker {
    /// Open the basis directories' copies of directory `rel`.
    pub(super) fn basis_dirs(&self, rel: &[u8]) -> BasisDirs {
        let Some(b) = &self.basis else {
            return Vec::new();
        };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY;
        b.roots
            .iter()
            .map(|r| open_beneath(r, rel, flags).ok())
            .collect()
    }

    /// The basis step of the per-entry decision for non-directory `e`
    /// (`dst`: the destination's entry, if any).
    /// Long because it is rsync's `try_dests_reg` search, step for step, so the two can be compared.
    pub(super) fn basis_decide(
        &self,
        e: &Entry,
        st: &Stat,
        ft: FileType,
        dst: Option<&Stat>,
    ) -> Decision {
        let Some(b) = &self.basis else {
            return Decision::Usual;
        };
        if e.basis.iter().all(Option::is_none) || ft == FileType::Socket {
            return Decision::Usual;
        }
        let file = ft == FileType::RegularFile;
        if !file && dst.is_some() {
            // rsync asks the bases about a symlink, FIFO or device only
            // when nothing at all is at its name.
            return Decision::Usual;
        }
        let dtype = dst.map(|d| FileType::from_raw_mode(d.st_mode));
        if dtype == Some(FileType::Directory) {
            // A directory in the way goes only under --delete, as without
            // a basis; then the name is free.
            if !self.opts.delete {
                return Decision::Usual;
            }
            let Some(m) = self.find(e, st, ft) else {
                return Decision::Usual;
            };
            if m.level == Level::Exact && b.kind != BasisKind::Copy {
                // Linked or left out here: the directory goes first.
                if !self.clear_clash(e, false) {
                    return Decision::Done;
                }
            }
            // A copy clears it on the usual path, once.
            return self.decide_free(b, e, st, ft, m, false);
        }
        if dtype == Some(ft) {
            // rsync looks past an existing entry only for a regular file
            // that a basis has exactly, and not under -u when it is newer.
            if !file || b.kind == BasisKind::Copy || self.newer_at_destination(e, st) {
                return Decision::Usual;
            }
            let Some(m) = self.find(e, st, ft).filter(|m| m.level == Level::Exact) else {
                return Decision::Usual;
            };
            let d = dst.map(|d| (d.st_dev, d.st_ino));
            if b.kind == BasisKind::Link && d == Some((m.st.st_dev, m.st.st_ino)) {
                // Already the basis's inode: current, whatever an unclean
                // earlier run says of its ctime (this run only linked it).
                self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
                self.found
                    .skipped_bytes
                    .fetch_add(st.st_size as u64, Ordering::Relaxed);
                e.outcome
                    .set(Some(Outcome::Linked((m.st.st_dev, m.st.st_ino))));
                return Decision::Done;
            }
            return self.exact(b, e, st, ft, m, true);
        }
        // Nothing there, or an entry of another type (not a directory),
        // which rsync removes first: a link or copy replaces it.
        let Some(m) = self.find(e, st, ft) else {
            return Decision::Usual;
        };
        self.decide_free(b, e, st, ft, m, dst.is_some())
    }

    /// The decision for a name whose destination holds nothing of its type
    /// (`replace`: something of another type is in the way).
    fn decide_free(
        &self,
        b: &Bases,
        e: &Entry,
        st: &Stat,
        ft: FileType,
        m: Match,
        replace: bool,
    ) -> Decision {
        match m.level {
            Level::Exact => self.exact(b, e, st, ft, m, replace),
            Level::Data => Decision::Copy {
                from: from_basis(&m, ft),
                note: Some(m),
            },
            Level::Type => Decision::Copy {
                note: Some(m),
                from: None,
            },
        }
    }

    /// The best match among the bases, searched in order: the first
    /// exact one, else the first with the same data, else the first of
    /// the same type.
    pub(super) fn find(&self, e: &Entry, st: &Stat, ft: FileType) -> Option<Match> {
        let mut best: Option<Match> = None;
        for (j, dir) in e.basis.iter().enumerate() {
            let Some(dir) = dir else { continue };
            let Ok(bst) = rustix::fs::statat(dir, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if FileType::from_raw_mode(bst.st_mode) != ft {
                continue;
            }
            let level = if !self.same_data(e, st, ft, dir, &bst) {
                Level::Type
            } else if self.same_attrs(e, st, dir, &bst) {
                Level::Exact
            } else {
                Level::Data
            };
            if best.as_ref().is_none_or(|b| level > b.level) {
                best = Some(Match { j, level, st: bst });
            }
            if level == Level::Exact {
                break;
            }
        }
        best
    }

    /// rsync's quick_check_ok against a basis entry of the same type.
    pub(super) fn same_data(
        &self,
        e: &Entry,
        st: &Stat,
        ft: FileType,
        dir: &OwnedFd,
        b: &Stat,
    ) -> bool {
        match ft {
            FileType::RegularFile => {
                if b.st_size != st.st_size {
                    false
                } else if self.opts.checksum {
                    super::content::same_file((e.src, Some(dir)), e.name, st, self.opts.dereference)
                } else {
                    !self.opts.ignore_times
                        && (b.st_mtime, b.st_mtime_nsec) == (st.st_mtime, st.st_mtime_nsec)
                }
            }
            FileType::Symlink => {
                let read = |d| rustix::fs::readlinkat(d, e.name, Vec::new()).ok();
                let t = read(e.src.as_fd());
                t.is_some() && t == read(dir.as_fd())
            }
            FileType::BlockDevice | FileType::CharacterDevice => b.st_rdev == st.st_rdev,
            _ => true,
        }
    }

    /// rsync's unchanged_attrs: nothing a copy would set differs.
    pub(super) fn same_attrs(&self, e: &Entry, st: &Stat, dir: &OwnedFd, b: &Stat) -> bool {
        (b.st_mtime, b.st_mtime_nsec) == (st.st_mtime, st.st_mtime_nsec)
            && self
                .basis_differences(e, st, dir, b)
                .is_some_and(|d| !d.any())
    }

    pub(super) fn basis_differences(
        &self,
        e: &Entry,
        st: &Stat,
        dir: &OwnedFd,
        b: &Stat,
    ) -> Option<crate::copy::repair::Differences> {
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: false,
            follow_src: self.opts.dereference,
        };
        crate::copy::repair::repair((e.src.as_fd(), dir.as_fd()), e.name, (st, b), how).ok()
    }

    /// An exact match: linked, left out, or copied without a word.
    /// `replace`: the destination has a regular file of its own there.
    fn exact(
        &self,
        b: &Bases,
        e: &Entry,
        st: &Stat,
        ft: FileType,
        m: Match,
        replace: bool,
    ) -> Decision {
        let size = if ft == FileType::RegularFile {
            st.st_size as u64
        } else {
            0
        };
        match b.kind {
            BasisKind::Copy => Decision::Copy {
                from: from_basis(&m, ft),
                note: None,
            },
            BasisKind::Compare => {
                if replace && !self.remove_for_basis(e) {
                    return Decision::Done;
                }
                self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
                self.found.skipped_bytes.fetch_add(size, Ordering::Relaxed);
                e.outcome.set(Some(Outcome::Left));
                Decision::Done
            }
            BasisKind::Link => {
                if self.found.no_space() {
                    // The destination is full: counted, not tried.
                    self.found.unsent_files.fetch_add(1, Ordering::Relaxed);
                    self.found.unsent_bytes.fetch_add(size, Ordering::Relaxed);
                    return Decision::Done;
                }
                if !self.opts.dry_run {
                    if let Err(err) = self.link_from(b, e, m.j, replace) {
                        return self.link_refused(b, e, (ft, size), m, &err);
                    }
                }
                self.found.basis_files.fetch_add(1, Ordering::Relaxed);
                self.found.basis_bytes.fetch_add(size, Ordering::Relaxed);
                e.outcome
                    .set(Some(Outcome::Linked((m.st.st_dev, m.st.st_ino))));
                // rsync says nothing of it under -i (only -ii); the JSON
                // lines and the log still hear of it.
                self.changes.record(&Change {
                    rel: &e.rel,
                    kind: Kind::of(ft),
                    action: Action::LinkedFromBasis,
                    reasons: Reasons::default(),
                    size: (ft == FileType::RegularFile).then_some(size),
                    target: None,
                });
                Decision::Done
            }
        }
    }

    /// A link the filesystem refused: a copy instead, as rsync does
    /// (`try_a_copy`), with one warning for a reason that repeats.
    fn link_refused(
        &self,
        b: &Bases,
        e: &Entry,
        (ft, size): (FileType, u64),
        m: Match,
        err: &std::io::Error,
    ) -> Decision {
        if crate::util::is_no_space(err) {
            // A full destination (on tmpfs a link takes an inode): one
            // event for the run, as for a directory; nothing more is made.
            if !self.found.no_space.swap(true, Ordering::Relaxed) {
                let _ = self.events.send(super::WalkEvent::NoSpace {
                    path: self.paths.destination(&e.rel),
                    msg: format!("--link-dest: {err}"),
                });
            }
            self.found.unsent_files.fetch_add(1, Ordering::Relaxed);
            self.found.unsent_bytes.fetch_add(size, Ordering::Relaxed);
            return Decision::Done;
        }
        let repeats = matches!(err.raw_os_error(), Some(libc::EMLINK | libc::EXDEV));
        if !repeats {
            self.fail_io(&e.rel, &format!("--link-dest: {err}"), err, false);
            return Decision::Done;
        }
        if !b.warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                "{}: cannot hard-link from the basis ({err}); copying instead (this and any \
                 other such entry)",
                self.paths.destination(&e.rel)
            );
        }
        log::debug!("{}: link from basis refused: {err}", escape_bytes(&e.rel));
        match ft {
            // rsync: itemized as a local copy from the basis entry.
            FileType::RegularFile => Decision::Copy {
                from: from_basis(&m, ft),
                note: Some(Match {
                    level: Level::Data,
                    ..m
                }),
            },
            _ => Decision::Copy {
                note: None,
                from: None,
            },
        }
    }

    /// Hard-link basis `j`'s entry in place of `e`: straight to the name
    /// when nothing is there (link(2) makes the whole name at once), else
    /// through a temp name renamed over the file it replaces (kept first
    /// under --backup-dir).
    fn link_from(&self, b: &Bases, e: &Entry, j: usize, replace: bool) -> std::io::Result<()> {
        let Some(Some(from)) = e.basis.get(j) else {
            return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        };
        // A hard-link group's leader in a directory this run created comes
        // without its destination directory open.
        let opened;
        let to = match (e.dst, &self.dst_root) {
            (Some(d), _) => d,
            (None, Some(root)) => {
                let (parent, _) = crate::copy::split_rel(&e.rel);
                opened = open_beneath(root, parent, OFlags::DIRECTORY | OFlags::RDONLY)?;
                &opened
            }
            (None, None) => return Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
        };
        crate::failpoint::hit("walk::link_from_basis", &e.rel);
        if !replace {
            match rustix::fs::linkat(from, e.name, to, e.name, AtFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::EXIST) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.deleter.back_up(to.as_fd(), e.name, &e.rel)?;
        let seq =
            crate::copy::temp::writer(self.rank, (1 << 31) | b.seq.fetch_add(1, Ordering::Relaxed));
        let tmp = crate::copy::temp::link(self.run_id, seq);
        rustix::fs::linkat(from, e.name, to, &tmp[..], AtFlags::empty())?;
        if let Err(err) = rustix::fs::renameat(to, &tmp[..], to, e.name) {
            let _ = rustix::fs::unlinkat(to, &tmp[..], AtFlags::empty());
            return Err(err.into());
        }
        Ok(())
    }

    /// `--compare-dest`: the destination's own file, exactly what a basis
    /// has, goes (rsync removes it too); kept first under --backup-dir.
    fn remove_for_basis(&self, e: &Entry) -> bool {
        if self.opts.dry_run {
            return true;
        }
        let Some(to) = e.dst else { return true };
        let gone = self
            .deleter
            .back_up(to.as_fd(), e.name, &e.rel)
            .and_then(|()| Ok(rustix::fs::unlinkat(to, e.name, AtFlags::empty())?));
        match gone {
            Ok(()) => true,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
            Err(err) => {
                self.fail_io(
                    &e.rel,
                    &format!("--compare-dest: remove: {err}"),
                    &err,
                    false,
                );
                false
            }
        }
    }
}

/// The task's pointer to the basis entry holding a regular file's data.
fn from_basis(m: &Match, ft: FileType) -> Option<FromBasis> {
    (ft == FileType::RegularFile && m.level >= Level::Data).then_some(FromBasis {
        index: m.j as u16,
        size: m.st.st_size as u64,
        mtime: Time {
            secs: m.st.st_mtime,
            nanos: m.st.st_mtime_nsec as u32,
        },
    })
}

/// What the basis step did with an entry, for its hard-link group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Linked from (or already) this basis inode.
    Linked((u64, u64)),
    /// Left out (`--compare-dest`): the group needs another leader.
    Left,
}

#[cfg(test)]
mod tests {
    use super::lexical;
    use std::path::Path;

    #[test]
    fn a_missing_destinations_parent_steps_resolve_by_name() {
        assert_eq!(lexical(Path::new("/b/snap/../base")), Path::new("/b/base"));
        assert_eq!(lexical(Path::new("snap/../../x")), Path::new("../x"));
        assert_eq!(lexical(Path::new("a/./b")), Path::new("a/b"));
    }
}
