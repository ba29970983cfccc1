//! `-i` and `--json-lines` for the walk: what placing an entry changes
//! (created, updated with rsync's letters, or repaired), decided from the
//! same facts the walk acts on, so the dry run and the real run say the
//! same.

use super::*;

impl Walker {
    /// `-i`/`--json-lines`: what placing non-directory `e` will change:
    /// created (nothing, or another type, there), or updated with the
    /// reasons; nothing when the worker will find it current (symlinks and
    /// special files are compared there).
    pub(super) fn note_copy(&self, job: &DirJob, e: &Entry, st: &Stat, ft: FileType) {
        let kind = Kind::of(ft);
        let target = (ft == FileType::Symlink)
            .then(|| rustix::fs::readlinkat(e.src, e.name, Vec::new()).ok())
            .flatten();
        let existing = match (job.dir, e.dst) {
            (DestDir::Existing, Some(d)) => {
                rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW)
                    .ok()
                    .filter(|d| Kind::of(FileType::from_raw_mode(d.st_mode)) == kind)
            }
            _ => None,
        };
        let (action, reasons) = match existing {
            None => (Action::Created, Reasons::default()),
            Some(d) => {
                let mut r = Reasons {
                    size: kind == Kind::File && d.st_size != st.st_size,
                    mtime: (d.st_mtime, d.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec),
                    ..Reasons::default()
                };
                if let (Some(t), Some(dd)) = (&target, e.dst) {
                    r.content = rustix::fs::readlinkat(dd, e.name, Vec::new())
                        .map_or(true, |dt| dt.as_bytes() != t.as_bytes());
                }
                // rsync marks every transfer under -c with `c` (the content
                // was compared and differs, or the size does).
                r.content |= kind == Kind::File && self.opts.checksum;
                let data_same = match kind {
                    // Same size and mtime without -c or -I: current (its
                    // attributes are reported by data_current).
                    Kind::File => !self.opts.ignore_times && !self.opts.checksum && !r.any(),
                    Kind::Symlink => !r.content,
                    _ => d.st_rdev == st.st_rdev,
                };
                if data_same {
                    // A symlink, FIFO or device whose target or number is
                    // the source's is repaired in place (times included)
                    // by data_current, which reports it.
                    return;
                }
                // What the copy will also change: the attributes the
                // existing entry has otherwise (rsync's `pogax`).
                (Action::Updated, self.attribute_reasons(e, st, &d, r))
            }
        };
        self.changes.record(&Change {
            rel: &e.rel,
            kind,
            action,
            reasons,
            size: (kind == Kind::File).then_some(st.st_size as u64),
            target: target.as_ref().map(|t| t.as_bytes()),
        });
    }

    /// `r` with the attribute differences between source `st` and the
    /// existing destination entry `dst` added.
    pub(super) fn attribute_reasons(
        &self,
        e: &Entry,
        st: &Stat,
        dst: &Stat,
        r: Reasons,
    ) -> Reasons {
        match e.dst {
            Some(dst_dir) => self.reasons_against(dst_dir, e, st, dst, r),
            None => r,
        }
    }

    /// `r` with the attribute differences (`pogax`) between source `st`
    /// and entry `other` of `e`'s name in directory `dir` (the
    /// destination's, or a basis directory's) added.
    pub(super) fn reasons_against(
        &self,
        dir: &OwnedFd,
        e: &Entry,
        st: &Stat,
        other: &Stat,
        r: Reasons,
    ) -> Reasons {
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: false,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dir.as_fd());
        match crate::copy::repair::repair(dirs, e.name, (st, other), how) {
            Ok(d) => Reasons {
                content: r.content,
                size: r.size,
                mtime: r.mtime,
                ..reasons(&d)
            },
            Err(_) => r,
        }
    }

    /// rsync's `.d..t.pog..` for a root: mode, owner and group (as root)
    /// and mtime of source root `s` against directory `d`.
    pub(super) fn root_reasons(&self, s: &Stat, d: &Stat) -> Reasons {
        Reasons {
            mtime: (s.st_mtime, s.st_mtime_nsec) != (d.st_mtime, d.st_mtime_nsec),
            perms: s.st_mode & 0o7777 != d.st_mode & 0o7777,
            owner: self.opts.owner && s.st_uid != d.st_uid,
            group: self.opts.owner && s.st_gid != d.st_gid,
            ..Reasons::default()
        }
    }

    /// Directory `e`: created, or the attributes its existing copy will
    /// have set at the end. A difference in permissions, owner, group,
    /// ACLs or xattrs counts as a repair (the finish pass makes it);
    /// `-i`/`--json-lines` also hear of an mtime difference, as rsync says.
    pub(super) fn note_dir(&self, e: &Entry, st: &Stat, created: bool, before: Option<Stat>) {
        if created {
            let (action, reasons) = match self.basis_dir_note(e, st) {
                None => (Action::Created, Reasons::default()),
                Some(None) => return,
                Some(Some(r)) => (Action::CopiedFromBasis, r),
            };
            return self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::Dir,
                action,
                reasons,
                size: None,
                target: None,
            });
        }
        let (Some(dst_dir), Some(dst)) = (e.dst, before) else {
            return;
        };
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: false,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dst_dir.as_fd());
        let Ok(d) = crate::copy::repair::repair(dirs, e.name, (st, &dst), how) else {
            return;
        };
        if d.any() {
            self.found.repaired.fetch_add(1, Ordering::Relaxed);
        }
        let mut r = reasons(&d);
        r.mtime = (dst.st_mtime, dst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec);
        if r.any() {
            self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::Dir,
                action: Action::Repaired,
                reasons: r,
                size: None,
                target: None,
            });
        }
    }

    /// `-i`/`--json-lines` for the roots themselves (rsync's `./` line):
    /// the destination root gets the source root's mode, owner and times.
    pub(super) fn note_root(&self) {
        let src = rustix::fs::fstat(&self.src_root);
        if let (true, Ok(s)) = (self.root_created, &src) {
            // rsync itemizes a created root against a basis's root.
            if let Some(r) = self.basis_root_note(s) {
                if r.any() {
                    self.changes.record(&Change {
                        rel: b".",
                        kind: Kind::Dir,
                        action: Action::CopiedFromBasis,
                        reasons: r,
                        size: None,
                        target: None,
                    });
                }
                return;
            }
        }
        let Some(dst) = &self.dst_root else {
            return self.changes.record(&Change {
                rel: b".",
                kind: Kind::Dir,
                action: Action::Created,
                reasons: Reasons::default(),
                size: None,
                target: None,
            });
        };
        let (Ok(s), Ok(d)) = (src, rustix::fs::fstat(dst)) else {
            return;
        };
        let r = self.root_reasons(&s, &d);
        if r.any() {
            self.changes.record(&Change {
                rel: b".",
                kind: Kind::Dir,
                action: if self.root_created {
                    Action::Created
                } else {
                    Action::Repaired
                },
                reasons: if self.root_created {
                    Reasons::default()
                } else {
                    r
                },
                size: None,
                target: None,
            });
        }
    }
}
