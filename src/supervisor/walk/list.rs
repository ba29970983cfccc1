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
            let Some((rel, contents)) = normalize(raw) else {
                self.fail(raw, "--files-from: not a path inside the source", false);
                continue;
            };
            if !rel.is_empty() {
                if !self.listed_exists(&rel) {
                    // A typo in the list is an error (rsync: exit 23), not
                    // a file that vanished during the run (exit 24, harmless).
                    let msg = "--files-from: listed, but not in the source";
                    self.fail_kind(&rel, msg, false, "ENOENT");
                    continue;
                }
                let mut parent = Vec::new();
                for comp in rel.split(|&c| c == b'/') {
                    let here = join_rel(&parent, comp);
                    // Each name once, however often it is listed or is the
                    // parent of a listed one (rsync's list has no duplicates).
                    if done.insert(here.clone())
                        && !self.list_entry(sh, &here, DestDir::Existing, &mut b)
                    {
                        return false;
                    }
                    parent = here;
                }
            }
            if contents && !self.list_contents(sh, &rel, &mut done, &mut b) {
                return false;
            }
        }
        b.flush()
    }

    /// `dir/` or `.` in the list: the directory's immediate entries too
    /// (rsync's `--dirs` rule for a name with a trailing slash); its
    /// subdirectories are created, not descended into.
    fn list_contents(
        &self,
        sh: &Shared,
        rel: &[u8],
        done: &mut HashSet<Vec<u8>>,
        b: &mut Batcher,
    ) -> bool {
        let dir = match open_src_dir(&self.src_root, rel, self.opts.dereference) {
            Ok(d) => d,
            // Not a directory: the entry itself was all there is to send.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return true,
            Err(e) => {
                self.fail_io(rel, &format!("--files-from: {e}"), &e, true);
                return true;
            }
        };
        let entries = match rustix::fs::Dir::read_from(&dir) {
            Ok(d) => d,
            Err(e) => {
                let e = std::io::Error::from(e);
                self.fail_io(rel, &format!("--files-from: {e}"), &e, true);
                return true;
            }
        };
        let mut names = Vec::new();
        for ent in entries {
            match ent {
                Ok(ent) => {
                    let name = ent.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        names.push(join_rel(rel, name));
                    }
                }
                Err(e) => {
                    let e = std::io::Error::from(e);
                    self.fail_io(rel, &format!("--files-from: {e}"), &e, true);
                    break;
                }
            }
        }
        names.sort();
        for child in names {
            if done.insert(child.clone()) && !self.list_entry(sh, &child, DestDir::Existing, b) {
                return false;
            }
        }
        true
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
        let basis = self.basis_dirs(parent);
        let e = Entry {
            name,
            rel: rel.to_vec(),
            src: &src,
            dst: dst.as_ref(),
            leader: false,
            basis: &basis,
            outcome: Default::default(),
        };
        self.entry(sh, &job, &e, b)
    }
}

/// Whether a `--files-from` list sends the source root itself, as rsync's
/// does: a line naming it (`.`), or a line starting with `./`, whose `.`
/// is the implied directory rsync sends (`-R`). Otherwise the root is
/// neither itemized nor given the source root's attributes: rsync leaves
/// it as it was (or, created, with the default mode).
pub fn sends_root(list: &[Vec<u8>]) -> bool {
    list.iter().any(|r| is_root(r) || r.starts_with(b"./"))
}

/// Whether a listed path names the source root itself.
pub(super) fn is_root(raw: &[u8]) -> bool {
    normalize(raw).is_some_and(|(rel, _)| rel.is_empty())
}

/// A listed path made relative to the source: leading `/` and `./`,
/// repeated `/` and `.` components dropped; whether its contents are sent
/// too (a trailing `/`, or `.`: rsync's `--dirs` rule). `None` if escaping
/// (`..`) or empty.
fn normalize(raw: &[u8]) -> Option<(Vec<u8>, bool)> {
    let contents = raw.ends_with(b"/") || raw == b"." || raw.ends_with(b"/.");
    let parts: Vec<&[u8]> = raw
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let rel = parts.join(&b'/');
    if rel.is_empty() {
        // `.`, `./`, `/`: the source root's own entries.
        return (contents || raw == b"/").then_some((rel, true));
    }
    valid_rel(&rel).then_some((rel, contents))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn listed_paths_are_made_relative_and_never_escape() {
        let n = |s: &[u8]| normalize(s);
        assert_eq!(n(b"/a//b/./c"), Some((b"a/b/c".to_vec(), false)));
        assert_eq!(n(b"./x"), Some((b"x".to_vec(), false)));
        assert_eq!(n(b"a/../../etc"), None);
        assert_eq!(n(b""), None);
        // A trailing slash or `.`: the directory's contents too.
        assert_eq!(n(b"dir/sub/"), Some((b"dir/sub".to_vec(), true)));
        assert_eq!(n(b"dir/."), Some((b"dir".to_vec(), true)));
        assert_eq!(n(b"."), Some((Vec::new(), true)));
        assert_eq!(n(b"./"), Some((Vec::new(), true)));
        assert_eq!(n(b"/"), Some((Vec::new(), true)));
    }
}
