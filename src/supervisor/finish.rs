//! The last phase, after every worker is done: hard links between files that
//! are now in place, then directory modes and times deepest-first (creating
//! entries changes a directory's mtime, and a read-only directory would stop
//! its own children from being written).

use super::walk::DirMeta;
use crate::copy::attrs::{is_root, Attrs};
use crate::copy::{open_beneath, split_rel, TEMP_PREFIX};
use crate::protocol::RelPath;
use crate::stats::Summary;
use rustix::fs::{AtFlags, OFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

fn dir(root: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    open_beneath(root, rel, OFlags::DIRECTORY | OFlags::RDONLY)
}

/// Make `link` a hard link to the already placed `first`. Atomic: link to a
/// temp name, then rename over whatever is there.
fn link_one(root: &OwnedFd, link: &[u8], first: &[u8], run_id: u64, seq: u64) -> io::Result<bool> {
    let (fp, fname) = split_rel(first);
    let (lp, lname) = split_rel(link);
    let fdir = dir(root, fp)?;
    let ldir = dir(root, lp)?;
    let fst = rustix::fs::statat(&fdir, fname, AtFlags::SYMLINK_NOFOLLOW)?;
    if let Ok(lst) = rustix::fs::statat(&ldir, lname, AtFlags::SYMLINK_NOFOLLOW) {
        if (lst.st_dev, lst.st_ino) == (fst.st_dev, fst.st_ino) {
            return Ok(false);
        }
    }
    let mut tmp = TEMP_PREFIX.to_vec();
    tmp.extend_from_slice(format!("{run_id:016x}.s.{seq}").as_bytes());
    rustix::fs::linkat(&fdir, fname, &ldir, &tmp[..], AtFlags::empty())?;
    if let Err(e) = rustix::fs::renameat(&ldir, &tmp[..], &ldir, lname) {
        let _ = rustix::fs::unlinkat(&ldir, &tmp[..], AtFlags::empty());
        return Err(e.into());
    }
    Ok(true)
}

pub fn hard_links(root: &OwnedFd, links: &[(RelPath, RelPath)], run_id: u64, sm: &mut Summary) {
    for (seq, (link, first)) in links.iter().enumerate() {
        match link_one(root, &link.0, &first.0, run_id, seq as u64) {
            Ok(true) => sm.hardlinks_created += 1,
            Ok(false) => sm.files_skipped += 1,
            Err(e) => {
                let msg = format!("hard link to {}: {e}", first.display());
                log::error!("{}: {msg}", link.display());
                sm.files_failed += 1;
                sm.push_error(link.display(), msg);
            }
        }
    }
}

/// Apply directory attributes children-first, then the root's own.
pub fn dir_attrs(root: &OwnedFd, dirs: &[DirMeta], src_root: &Path, sm: &mut Summary) {
    let owner = is_root();
    for d in dirs.iter().rev() {
        if let Err(e) = dir(root, &d.rel).and_then(|fd| d.attrs.apply_fd(&fd, owner)) {
            let path = crate::util::escape_bytes(&d.rel);
            log::error!("{path}: set directory attributes: {e}");
            sm.dirs_failed += 1;
            sm.push_error(path, format!("set directory attributes: {e}"));
        }
    }
    match std::fs::metadata(src_root) {
        Ok(md) => {
            let a: Attrs = super::walk::attrs_of(&md);
            if let Err(e) = a.apply_fd(root, owner) {
                log::error!("destination root: set attributes: {e}");
                sm.dirs_failed += 1;
            }
        }
        Err(e) => log::error!("{}: {e}", src_root.display()),
    }
}
