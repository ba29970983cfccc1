//! `-c` decided in the walk: the walker compares the content of a file that
//! exists at the destination with the same size, so what `-i`, the dry run
//! and the counters say about it is what the real run does. A file with the
//! same content is current (its times and attributes are brought over in
//! place, reported as rsync reports them: `.f..t......`); one with other
//! content is copied (`>fc........`) by a worker told not to compare again.

use super::{reasons, Entry, WalkEvent, Walker};
use crate::copy::attrs::Attrs;
use crate::protocol::TaskKind;
use crate::supervisor::changes::{Action, Change, Kind};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

/// What comparing the content decided.
pub(super) enum Content {
    /// Same bytes: current, already counted and reported.
    Same,
    /// Other bytes (or another size): copy without comparing again.
    Differs,
    /// No regular file there, or it could not be read: decide as without `-c`.
    Unknown,
}

impl Walker {
    pub(super) fn compare_content(&self, e: &Entry, st: &Stat) -> Content {
        let Some(dst_dir) = e.dst else {
            return Content::Unknown;
        };
        let Ok(dst) = rustix::fs::statat(dst_dir, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
            return Content::Unknown;
        };
        if FileType::from_raw_mode(dst.st_mode) != FileType::RegularFile {
            return Content::Unknown;
        }
        if dst.st_size != st.st_size {
            return Content::Differs;
        }
        let same = same_bytes((e.src, dst_dir), e.name, st, self.opts.dereference);
        match same {
            Ok(true) => {
                self.content_current(e, st, &dst);
                Content::Same
            }
            Ok(false) => Content::Differs,
            Err(err) => {
                log::debug!("{}: -c: comparing: {err}", escape_bytes(&e.rel));
                Content::Unknown
            }
        }
    }

    /// Same content: count it as up to date and bring times, permissions,
    /// owner and xattrs over (only compared in a dry run).
    fn content_current(&self, e: &Entry, st: &Stat, dst: &Stat) {
        let size = st.st_size as u64;
        if self.opts.dry_run {
            let _ = self.events.send(WalkEvent::Dry {
                kind: TaskKind::File { size },
                up_to_date: true,
                bytes: size,
            });
        } else {
            self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
            self.found.skipped_bytes.fetch_add(size, Ordering::Relaxed);
        }
        let Some(dst_dir) = e.dst else { return };
        let how = crate::copy::repair::How {
            owner: self.opts.owner,
            apply: !self.opts.dry_run,
            follow_src: self.opts.dereference,
        };
        let dirs = (e.src.as_fd(), dst_dir.as_fd());
        let d = match crate::copy::repair::repair(dirs, e.name, (st, dst), how) {
            Ok(d) => d,
            Err(err) => {
                return self.fail_io(&e.rel, &format!("repair metadata: {err}"), &err, false);
            }
        };
        let mut r = reasons(&d);
        r.mtime = (dst.st_mtime, dst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec);
        if r.mtime && !self.opts.dry_run {
            if let Err(err) = Attrs::from_stat(st).set_times_at(dst_dir, e.name) {
                return self.fail_io(&e.rel, &format!("set times: {err}"), &err, false);
            }
        }
        if r.any() {
            self.found.repaired.fetch_add(1, Ordering::Relaxed);
            self.changes.record(&Change {
                rel: &e.rel,
                kind: Kind::File,
                action: Action::Repaired,
                reasons: r,
                size: None,
                target: None,
            });
        }
    }
}

/// Whether `name` holds the same bytes in both directories (`st` is the
/// source's stat, the destination's size already found equal).
/// `follow`: `-L`, the source name may be a symlink to the file (the
/// destination's never is followed).
fn same_bytes(
    (src, dst): (&OwnedFd, &OwnedFd),
    name: &[u8],
    st: &Stat,
    follow: bool,
) -> std::io::Result<bool> {
    let open = |dir, extra: OFlags| {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | extra;
        rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty())
            .or_else(|_| rustix::fs::openat(dir, name, flags, Mode::empty()))
    };
    let s = open(
        src,
        if follow {
            OFlags::empty()
        } else {
            OFlags::NOFOLLOW
        },
    )?;
    let d = open(dst, OFlags::NOFOLLOW)?;
    crate::copy::verify::same_bytes(s.as_fd(), d.as_fd(), st.st_size as u64)
}

/// `same_bytes` for a caller that only needs yes or no (a read error: no).
pub(super) fn same_file(
    (src, dst): (&OwnedFd, Option<&OwnedFd>),
    name: &[u8],
    st: &Stat,
    follow: bool,
) -> bool {
    dst.is_some_and(|d| same_bytes((src, d), name, st, follow).unwrap_or(false))
}
