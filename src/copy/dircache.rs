//! The per-worker cache of the directory the current entry is in, with
//! the facts about it each entry's plan needs (its stat, the owner a new
//! inode gets there, whether it has a default ACL): walk order puts
//! siblings together, so each is computed once per directory, not per file.

use super::{open_beneath, open_src_dir};
use rustix::fs::{OFlags, Stat};
use std::io;
use std::os::fd::OwnedFd;

/// A directory descriptor cached by its relative path: consecutive tasks
/// usually share a parent (walk order), so this saves an openat2 per file.
#[derive(Default)]
pub(super) struct DirCache {
    rel: Vec<u8>,
    fd: Option<OwnedFd>,
    /// Follow symlinks (source side with --dereference only).
    follow: bool,
    /// Owner and group a new inode gets in this directory (computed once
    /// per directory, only when ownership is preserved).
    new_owner: Option<(u32, u32)>,
    /// The directory's own stat (computed once per directory).
    stat: Option<Stat>,
    /// Whether the directory has a default ACL (new inodes inherit an ACL
    /// and have their mode masked); computed once per directory.
    default_acl: Option<bool>,
}

impl DirCache {
    /// An empty cache; `follow` for the source side with --dereference.
    pub(super) fn following(follow: bool) -> Self {
        DirCache {
            follow,
            ..DirCache::default()
        }
    }

    pub(super) fn get(&mut self, root: &OwnedFd, rel: &[u8]) -> io::Result<&OwnedFd> {
        if self.fd.is_none() || self.rel != rel {
            self.fd = None;
            self.new_owner = None;
            self.stat = None;
            self.default_acl = None;
            let fd = if self.follow {
                open_src_dir(root, rel, true)?
            } else {
                open_beneath(root, rel, OFlags::DIRECTORY | OFlags::RDONLY)?
            };
            self.rel = rel.to_vec();
            self.fd = Some(fd);
        }
        self.fd
            .as_ref()
            .ok_or_else(|| io::Error::other("directory cache empty"))
    }

    /// The cached directory's stat.
    pub(super) fn stat(&mut self) -> io::Result<Stat> {
        if let Some(st) = self.stat {
            return Ok(st);
        }
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| io::Error::other("directory cache empty"))?;
        let st = rustix::fs::fstat(fd)?;
        self.stat = Some(st);
        Ok(st)
    }

    pub(super) fn new_owner(&mut self, (uid, gid): (u32, u32)) -> io::Result<(u32, u32)> {
        if let Some(o) = self.new_owner {
            return Ok(o);
        }
        let st = self.stat()?;
        let o = if st.st_mode & libc::S_ISGID != 0 {
            (uid, st.st_gid)
        } else {
            (uid, gid)
        };
        self.new_owner = Some(o);
        Ok(o)
    }

    /// Whether the cached directory has a default ACL.
    pub(super) fn default_acl(&mut self) -> bool {
        if let Some(d) = self.default_acl {
            return d;
        }
        // A one-byte buffer: ERANGE means "present" (rustix reports a
        // size-0 query as Ok(0) whatever the size).
        let d = self.fd.as_ref().is_some_and(|fd| {
            let mut probe = [0u8; 1];
            match rustix::fs::fgetxattr(fd, "system.posix_acl_default", &mut probe[..]) {
                Ok(n) => n > 0,
                Err(e) => e == rustix::io::Errno::RANGE,
            }
        });
        self.default_acl = Some(d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_fd(p: &std::path::Path) -> OwnedFd {
        OwnedFd::from(std::fs::File::open(p).unwrap())
    }

    #[test]
    fn new_inodes_in_a_setgid_directory_get_its_group() {
        let t = tempfile::tempdir().unwrap();
        let ids = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let mut cache = DirCache::default();
        let root = dir_fd(t.path());
        cache.get(&root, b"").unwrap();
        let dir_gid = rustix::fs::fstat(&root).unwrap().st_gid;
        // Not setgid: our own group, whatever the directory's.
        assert_eq!(cache.new_owner((ids.0, 4242)).unwrap(), (ids.0, 4242));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o2775)).unwrap();
        let mut cache = DirCache::default();
        cache.get(&root, b"").unwrap();
        assert_eq!(cache.new_owner((ids.0, 4242)).unwrap(), (ids.0, dir_gid));
    }
}
