//! `--backup-dir DIR` (rsync's `--backup --backup-dir`): what a run would
//! destroy is kept in DIR under its relative path instead: a deleted entry
//! or one replaced by another type is moved there (`renameat`), a file the
//! workers are about to rewrite is hard-linked there first (`linkat`: the
//! old inode survives its replacement). No copy, so DIR must be on the
//! destination's filesystem (checked once at the start). A relative DIR is taken relative to the destination, as
//! rsync does; DIR inside the destination is never deleted or copied into.

use crate::copy::split_rel;
use crate::error::{Error, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub struct Backup {
    root: OwnedFd,
    suffix: Vec<u8>,
    /// DIR relative to the destination root when it lies inside it.
    pub inside: Option<Vec<u8>>,
}

impl Backup {
    /// Create (with parents) and open DIR; refuse one on another device.
    pub fn open(dir: &Path, suffix: &str, destination: &Path, dst_root: &OwnedFd) -> Result<Self> {
        let path: PathBuf = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            destination.join(dir)
        };
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let root = rustix::fs::open(
            &path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&path, e.into()))?;
        let (b, d) = (
            rustix::fs::fstat(&root).map_err(|e| Error::io(&path, e.into()))?,
            rustix::fs::fstat(dst_root).map_err(|e| Error::io(destination, e.into()))?,
        );
        if b.st_dev != d.st_dev {
            return Err(Error::Usage(format!(
                "--backup-dir {}: not on the destination's filesystem ({}); \
                 entries are moved there, never copied",
                path.display(),
                destination.display()
            )));
        }
        let canon = std::fs::canonicalize(&path).map_err(|e| Error::io(&path, e))?;
        let dest = std::fs::canonicalize(destination).map_err(|e| Error::io(destination, e))?;
        let inside = canon
            .strip_prefix(&dest)
            .ok()
            .map(|r| r.as_os_str().as_encoded_bytes().to_vec());
        if inside.as_deref() == Some(b"") {
            return Err(Error::Usage(format!(
                "--backup-dir {}: it is the destination itself",
                path.display()
            )));
        }
        Ok(Backup {
            root,
            suffix: suffix.as_bytes().to_vec(),
            inside,
        })
    }

    /// Whether `rel` (relative to the destination) is the backup directory
    /// or inside it.
    pub fn holds(&self, rel: &[u8]) -> bool {
        self.inside
            .as_deref()
            .is_some_and(|b| rel.starts_with(b) && (rel.len() == b.len() || rel[b.len()] == b'/'))
    }

    /// Move `name` in `dir` (at `rel`) into the backup directory, replacing
    /// an older backup of the same name.
    pub fn keep(&self, dir: BorrowedFd, name: &[u8], rel: &[u8]) -> io::Result<()> {
        let (parent, _) = split_rel(rel);
        let to = self.dirs(parent)?;
        let mut target = name.to_vec();
        target.extend_from_slice(&self.suffix);
        match rustix::fs::renameat(dir, name, &to, &target[..]) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::XDEV) => Err(io::Error::other(
                "--backup-dir is on another filesystem than this entry",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Hard-link `name` in `dir` (at `rel`) into the backup directory: the
    /// inode a worker is about to replace stays there, whole, without a
    /// copy (an older backup of the same name is replaced).
    pub fn link(&self, dir: BorrowedFd, name: &[u8], rel: &[u8]) -> io::Result<()> {
        let (parent, _) = split_rel(rel);
        let to = self.dirs(parent)?;
        let mut target = name.to_vec();
        target.extend_from_slice(&self.suffix);
        let link = || rustix::fs::linkat(dir, name, &to, &target[..], AtFlags::empty());
        match link() {
            Err(rustix::io::Errno::EXIST) => {
                rustix::fs::unlinkat(&to, &target[..], AtFlags::empty())?;
                Ok(link()?)
            }
            Err(rustix::io::Errno::NOENT) => Ok(()),
            r => Ok(r?),
        }
    }

    /// Open (creating) `parent` beneath the backup root, one component at
    /// a time, never following a symlink.
    fn dirs(&self, parent: &[u8]) -> io::Result<OwnedFd> {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        let mut dir = rustix::fs::openat(&self.root, ".", flags, Mode::empty())?;
        for c in parent.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            match rustix::fs::mkdirat(&dir, c, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = rustix::fs::openat(dir.as_fd(), c, flags, Mode::empty())?;
        }
        Ok(dir)
    }
}
