//! `--delete` in the walk: the destination entries a completely read
//! source directory lacks, and an entry of another type in the way of a
//! source entry.

use super::*;

impl Walker {
    /// `--delete`: the entries of destination directory `dst` (for `rel`)
    /// that the completely read source directory does not have. Excluded
    /// names are kept unless `--delete-excluded`; this run's temps are
    /// never extras (workers are writing them).
    /// Long because listing, filtering and protecting the extras is one pass over the destination directory.
    pub(super) fn find_extras(
        &self,
        sh: &Shared,
        rel: &[u8],
        dst: &OwnedFd,
        seen: &std::collections::HashSet<Vec<u8>>,
    ) {
        // -x: a destination directory on another filesystem (something
        // mounted in the destination) is not looked into, as in rsync.
        if self.deleter.foreign_device(dst.as_fd()) {
            return;
        }
        let entries = match rustix::fs::Dir::read_from(dst) {
            Ok(d) => d,
            Err(e) => {
                let e = std::io::Error::from(e);
                let msg = format!("list destination for --delete: {e}");
                return self.fail_io(rel, &msg, &e, true);
            }
        };
        let mut extras = Vec::new();
        let mut listed = 0;
        for ent in entries {
            let Ok(ent) = ent else {
                // An incomplete listing only means fewer deletions.
                break;
            };
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // This run's temps (workers are writing them) and every run's
            // marker (`recovery`: an earlier run's goes with this run's
            // clean end, or with its own durability child) are pcopy's
            // bookkeeping, never extras.
            if crate::copy::temp::parse(name)
                .is_some_and(|t| t.run_id == self.run_id || t.kind == crate::copy::temp::Kind::Run)
            {
                continue;
            }
            listed += 1;
            let is_dir = crate::supervisor::delete::is_dir_entry(dst.as_fd(), &ent);
            let xrel = join_rel(rel, name);
            // Protected (excluded, unless --delete-excluded): kept. Excluded
            // under --delete-excluded: an extra even when the source has it
            // (the source's copy was not sent), as in rsync.
            let keep = if self.deleter.protected(&xrel, is_dir) {
                true
            } else if self.filter.excluded(&xrel, is_dir) {
                false
            } else {
                seen.contains(name)
            };
            if keep {
                continue;
            }
            extras.push(crate::work::Extra {
                rel: xrel,
                dir: is_dir,
            });
        }
        self.found.dest_entries.fetch_add(listed, Ordering::Relaxed);
        lock(&sh.out).extras.extend(extras);
    }

    /// `--delete`: remove the destination entry in the way of source entry
    /// `e` when it has another type (`want_dir`: the source's is a
    /// directory). True when nothing (any more) is in the way.
    pub(super) fn clear_clash(&self, e: &Entry, want_dir: bool) -> bool {
        let Some(dst) = e.dst else { return true };
        let Ok(st) = rustix::fs::statat(dst, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
            return true;
        };
        if (FileType::from_raw_mode(st.st_mode) == FileType::Directory) == want_dir {
            return true;
        }
        match self.deleter.clear_way(dst.as_fd(), e.name, &e.rel) {
            Ok(true) => true,
            Ok(false) => {
                let msg = "could not make way for it: the destination entry of another type \
                           holds what --delete must keep (excluded, a mount point, or --max-delete)";
                self.fail(&e.rel, msg, want_dir);
                false
            }
            Err(err) => {
                self.fail_io(
                    &e.rel,
                    &format!("delete (type clash): {err}"),
                    &err,
                    want_dir,
                );
                false
            }
        }
    }
}
