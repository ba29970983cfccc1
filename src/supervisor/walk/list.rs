//! `--files-from`: walk only the listed paths (and, for each, its parent
//! directories, which are created with their source attributes), in list
//! order, on one thread. A listed directory is created but not descended
//! into, as with rsync's `--files-from` (whose `-a` then implies no `-r`).

use super::{join_rel, Batcher, DirJob, Entry, Shared, Walker};
use crate::copy::{open_beneath, open_src_dir, split_rel, valid_rel};
use crate::protocol::DestDir;
use rustix::fs::OFlags;
use std::collections::HashSet;
use std::sync::Arc;

impl Walker {
    /// Handle every listed path; false when the dispatcher is gone.
    pub(super) fn walk_list(&self, sh: &Shared, list: &[Vec<u8>]) -> bool {
        let mut b = Batcher::new(self);
        // Directories already handled (as a parent or as listed).
        let mut done: HashSet<Vec<u8>> = HashSet::new();
        for raw in list {
            let Some(rel) = normalize(raw) else {
                self.fail(raw, "--files-from: not a path inside the source", false);
                continue;
            };
            if !self.listed_exists(&rel) {
                // A typo in the list is an error (rsync: exit 23), not a
                // file that vanished during the run (exit 24, harmless).
                let msg = "--files-from: listed, but not in the source";
                self.fail_kind(&rel, msg, false, "ENOENT");
                continue;
            }
            let mut parent = Vec::new();
            for comp in rel.split(|&c| c == b'/') {
                let here = join_rel(&parent, comp);
                let last = here.len() == rel.len();
                if !done.contains(&here) && !self.list_entry(sh, &here, DestDir::Existing, &mut b) {
                    return false;
                }
                if !last {
                    done.insert(here.clone());
                }
                parent = here;
            }
        }
        b.flush()
    }

    /// Whether listed path `rel` exists in the source (any type; a
    /// dangling symlink counts unless `-L`). Other errors are left to the
    /// walk, which reports them with their cause.
    fn listed_exists(&self, rel: &[u8]) -> bool {
        let (parent, name) = split_rel(rel);
        let follow = if self.opts.dereference {
            rustix::fs::AtFlags::empty()
        } else {
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW
        };
        match open_src_dir(&self.src_root, parent, self.opts.dereference) {
            Ok(dir) => !matches!(
                rustix::fs::statat(&dir, name, follow),
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR)
            ),
            Err(e) => !matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)),
        }
    }

    /// One listed path (or one of its parents), or a hard-linked entry
    /// another rank walked: handled like a walked entry of its parent
    /// directory (`dir`: whether this run created that directory).
    pub(super) fn list_entry(
        &self,
        sh: &Shared,
        rel: &[u8],
        dir: DestDir,
        b: &mut Batcher,
    ) -> bool {
        let (parent, name) = split_rel(rel);
        let src = match open_src_dir(&self.src_root, parent, self.opts.dereference) {
            Ok(fd) => fd,
            Err(e) => {
                self.fail(rel, &format!("--files-from: {e}"), false);
                return true;
            }
        };
        let dst = self
            .dst_root
            .as_ref()
            .and_then(|root| open_beneath(root, parent, OFlags::DIRECTORY | OFlags::RDONLY).ok());
        let job = DirJob {
            rel: parent.to_vec(),
            dir,
            ancestors: Arc::new(Vec::new()),
        };
        let e = Entry {
            name,
            rel: rel.to_vec(),
            src: &src,
            dst: dst.as_ref(),
            leader: false,
        };
        self.entry(sh, &job, &e, b)
    }
}

/// A listed path made relative to the source: leading `/` and `./`,
/// repeated and trailing `/` dropped; `None` if empty or escaping (`..`).
fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let parts: Vec<&[u8]> = raw
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let rel = parts.join(&b'/');
    valid_rel(&rel).then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn listed_paths_are_made_relative_and_never_escape() {
        assert_eq!(normalize(b"/a//b/./c/"), Some(b"a/b/c".to_vec()));
        assert_eq!(normalize(b"./x"), Some(b"x".to_vec()));
        assert_eq!(normalize(b"a/../../etc"), None);
        assert_eq!(normalize(b""), None);
        assert_eq!(normalize(b"/"), None);
    }
}
