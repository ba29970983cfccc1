//! Entries without data: symlinks (target read and recreated), and FIFOs
//! and device nodes recreated with mknod (never opened, so a FIFO cannot
//! hang a worker). Each goes in through a named temp and `finish`.

use super::attrs::{self, Attrs};
use super::{repair, repair_in_place, split_rel, Copier, CopyError, DestDir, Op, Placed, Plan};
use rustix::fs::{AtFlags, FileType, Mode, Stat};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

impl Copier {
    pub(super) fn copy_symlink(&mut self, rel: &[u8], dir: DestDir) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let r = (|| -> io::Result<Placed> {
            let sdir = self.src_dir.get(&self.src_root, parent)?;
            let st = rustix::fs::statat(sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let target = rustix::fs::readlinkat(sdir, name, Vec::new())?;
            self.dst_dir.get(&self.dst_root, parent)?;
            let plan = self.plan(dir, &st)?;
            let ddir = self.dst_dir.get(&self.dst_root, parent)?.try_clone()?;
            if plan.quick_check {
                if let Ok(dst) = rustix::fs::statat(&ddir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    if rustix::fs::FileType::from_raw_mode(dst.st_mode)
                        == rustix::fs::FileType::Symlink
                        && attrs::same_size_and_mtime(&st, &dst)
                        && rustix::fs::readlinkat(&ddir, name, Vec::new())? == target
                    {
                        let sdir = self.src_dir.get(&self.src_root, parent)?;
                        let repaired =
                            repair_in_place((sdir, &ddir), name, (&st, &dst), self.owner)?;
                        return Ok(Placed::UpToDate { bytes: 0, repaired });
                    }
                }
            }
            let tmp = self.temp_name();
            rustix::fs::symlinkat(&*target, &ddir, &tmp[..])?;
            let sdir = self.src_dir.get(&self.src_root, parent)?;
            // Root's `trusted.*` on the link itself; best effort, as for files.
            if let Err(e) = repair::copy_node_xattrs((sdir.as_fd(), ddir.as_fd()), name, &tmp) {
                log::warn!(
                    "{}: extended attributes not copied: {e}",
                    crate::util::escape_bytes(rel)
                );
            }
            finish(&ddir, &tmp, name, &Attrs::from_stat(&st), plan.chown, true)?;
            Ok(Placed::Copied {
                grew: false,
                bytes: 0,
                verified: false,
                cloned: false,
            })
        })();
        r.map_err(CopyError::at(Op::Symlink))
    }

    pub(super) fn copy_special(&mut self, rel: &[u8], dir: DestDir) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let tmp = self.temp_name();
        let (sdir, ddir, st, plan) = (|| -> io::Result<_> {
            let sdir = self.src_dir.get(&self.src_root, parent)?.try_clone()?;
            let st = rustix::fs::statat(&sdir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            self.dst_dir.get(&self.dst_root, parent)?;
            let plan = self.plan(dir, &st)?;
            let ddir = self.dst_dir.get(&self.dst_root, parent)?.try_clone()?;
            Ok((sdir, ddir, st, plan))
        })()
        .map_err(CopyError::at(Op::Special))?;
        make_node((&sdir, &ddir), &tmp, name, &st, (&plan, self.owner))
    }
}

/// Set metadata on the temp entry `tmp` and rename it to `name`; on failure
/// remove the temp so nothing is left behind.
pub fn finish(
    dir: &OwnedFd,
    tmp: &[u8],
    name: &[u8],
    attrs: &Attrs,
    owner: bool,
    is_link: bool,
) -> io::Result<()> {
    let r = attrs
        .apply_at(dir, tmp, owner, is_link)
        .and_then(|()| Ok(rustix::fs::renameat(dir, tmp, dir, name)?));
    if r.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
    }
    r
}

/// Recreate a FIFO or device node. Devices need CAP_MKNOD; without it the
/// entry is reported, not silently dropped.
pub(super) fn make_node(
    (sdir, dir): (&OwnedFd, &OwnedFd),
    tmp: &[u8],
    name: &[u8],
    st: &Stat,
    (plan, owner): (&Plan, bool),
) -> Result<Placed, CopyError> {
    let ft = FileType::from_raw_mode(st.st_mode);
    if plan.quick_check {
        if let Ok(dst) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(dst.st_mode) == ft
                && dst.st_rdev == st.st_rdev
                && super::attrs::same_size_and_mtime(st, &dst)
            {
                let repaired = super::repair_in_place((sdir, dir), name, (st, &dst), owner)
                    .map_err(CopyError::at(Op::Special))?;
                return Ok(Placed::UpToDate { bytes: 0, repaired });
            }
        }
    }
    match rustix::fs::mknodat(dir, tmp, ft, Mode::from_raw_mode(0o600), st.st_rdev) {
        Ok(()) => {}
        Err(rustix::io::Errno::PERM) if ft != FileType::Fifo => {
            return Err(CopyError::NeedsPrivilege(
                "device node not recreated: needs root (CAP_MKNOD)",
            ))
        }
        Err(e) => return Err(CopyError::io(Op::Special, e)),
    }
    // Before the mode (an ACL rewrites mode bits) and before the name is
    // placed, so the first run gives the node its ACL; best effort, as for
    // files.
    if let Err(e) = super::repair::copy_node_xattrs((sdir.as_fd(), dir.as_fd()), name, tmp) {
        log::warn!(
            "{}: extended attributes not copied: {e}",
            crate::util::escape_bytes(name)
        );
    }
    finish(dir, tmp, name, &Attrs::from_stat(st), plan.chown, false)
        .map_err(CopyError::at(Op::Special))?;
    Ok(Placed::Copied {
        grew: false,
        bytes: 0,
        verified: false,
        cloned: false,
    })
}
