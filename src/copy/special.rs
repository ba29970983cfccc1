//! Entries without data: the final steps for symlinks, and FIFOs and device
//! nodes recreated with mknod (never opened, so a FIFO cannot hang a worker).

use super::attrs::Attrs;
use super::{CopyError, Op, Placed, Plan};
use rustix::fs::{AtFlags, FileType, Mode, Stat};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

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
