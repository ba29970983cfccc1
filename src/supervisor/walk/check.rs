//! The quick check and its companions: whether the destination's entry
//! is current (size and mtime; a symlink's target; a device's number), its
//! metadata repaired in place when it is; `-u`; an entry an unclean earlier
//! run may have left unverified.

use super::*;

impl Walker {
    /// A regular file or symlink up to date at the destination: the rsync
    /// quick check, done right here (one fstatat, and one readlinkat per
    /// side for a symlink; no IPC). A re-run where everything is current
    /// needs no worker at all.
    pub(super) fn current(&self, job: &DirJob, e: &Entry, st: &Stat, unverified: bool) -> bool {
        let file = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
        // -c and -I concern regular files only (rsync's quick_check_ok):
        // a symlink, FIFO or device is current by its target or number.
        let checkable = !self.opts.dry_run
            && job.dir == DestDir::Existing
            && (!file || (!self.opts.checksum && !self.opts.ignore_times));
        // An unverified entry is never current by its size and times; a
        // newer one under -u was written by someone else, and is kept.
        if !checkable
            || !((!unverified && self.data_current(e, st))
                || (file && self.newer_at_destination(e, st)))
        {
            return false;
        }
        self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
        if file {
            self.found
                .skipped_bytes
                .fetch_add(st.st_size as u64, Ordering::Relaxed);
        }
        true
    }

    /// The destination's entry changed since an unclean earlier run began
    /// (`recovery`): its size and times prove nothing.
    pub(super) fn unverified(&self, job: &DirJob, e: &Entry) -> bool {
        let (Some(since), Some(dst), DestDir::Existing) =
            (self.opts.unverified_since, e.dst, job.dir)
        else {
            return false;
        };
        rustix::fs::statat(dst, e.name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| crate::supervisor::recovery::unverified(&st, since))
    }

    /// `-u`: the destination has a regular file with a newer mtime.
    pub(super) fn newer_at_destination(&self, e: &Entry, st: &Stat) -> bool {
        if !self.opts.update {
            return false;
        }
        let Some(d) = e
            .dst
            .and_then(|d| rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW).ok())
        else {
            return false;
        };
        let newer = FileType::from_raw_mode(d.st_mode) == FileType::RegularFile
            && (d.st_mtime, d.st_mtime_nsec) > (st.st_mtime, st.st_mtime_nsec);
        if newer {
            log::debug!(
                "{}: newer at the destination (-u), kept",
                escape_bytes(&e.rel)
            );
        }
        newer
    }

    /// Whether the destination's data is current (the quick check); if so,
    /// its metadata is compared and repaired (only compared in a dry run),
    /// and a repair is counted.
    /// Long because it is the quick check's cases in rsync's order (-I, -c, size, mtime, unverified), each returning early.
    pub(super) fn data_current(&self, e: &Entry, st: &Stat) -> bool {
        let Some(dst_dir) = e.dst else {
            return false;
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        // A regular file's data is current by the quick check; a symlink's
        // "data" is its target, a FIFO's or device's its type and number:
        // for those the mtime is an attribute, set in place as rsync does
        // (`.L..t......`), not a reason to make the entry again.
        let (dst, target) = if ft == FileType::RegularFile {
            match crate::copy::attrs::current(dst_dir, e.name, st) {
                Some(d) => (d, None),
                None => return false,
            }
        } else {
            let Ok(d) = rustix::fs::statat(dst_dir, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
                return false;
            };
            if FileType::from_raw_mode(d.st_mode) != ft
                || (ft != FileType::Symlink && d.st_rdev != st.st_rdev)
            {
                return false;
            }
            let mut target = None;
            if ft == FileType::Symlink {
                let read = |dir| rustix::fs::readlinkat(dir, e.name, Vec::new()).ok();
                let t = read(e.src.as_fd());
                if t.is_none() || t != read(dst_dir.as_fd()) {
                    return false;
                }
                target = t;
            }
            (d, target)
        };
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: !self.opts.dry_run,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dst_dir.as_fd());
        let d = match crate::copy::repair::repair(dirs, e.name, (st, &dst), how) {
            Ok(d) => d,
            Err(err) => {
                self.fail_io(&e.rel, &format!("repair metadata: {err}"), &err, false);
                return true;
            }
        };
        let mut r = reasons(&d);
        r.mtime = ft != FileType::RegularFile
            && (dst.st_mtime, dst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec);
        if r.mtime && !self.opts.dry_run {
            if let Err(err) = Attrs::from_stat(st).set_times_at(dst_dir, e.name) {
                self.fail_io(&e.rel, &format!("set times: {err}"), &err, false);
                return true;
            }
        }
        if r.any() {
            self.found.repaired.fetch_add(1, Ordering::Relaxed);
            log::debug!("repaired {} ({d})", escape_bytes(&e.rel));
            self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::of(ft),
                action: Action::Repaired,
                reasons: r,
                size: None,
                target: target.as_ref().map(|t| t.as_bytes()),
            });
        }
        true
    }
}
