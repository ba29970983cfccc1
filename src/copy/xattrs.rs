//! Extended attributes (user.*, security.*, trusted.*, system.posix_acl_*),
//! copied descriptor to descriptor. Best effort: an attribute the
//! destination refuses (EPERM, ENOTSUP) is a warning, never a lost file.

use std::io;
use std::os::fd::BorrowedFd;

/// The largest attribute list / value Linux allows.
pub const XATTR_MAX: usize = 64 << 10;

/// What a first list or get asks for. The kernel allocates a buffer of the
/// size passed on every call (and zeroes it for a value), so asking for
/// 64 KiB cost a page allocation per file even with no attribute at all:
/// 5 % of pcopy's CPU on small files. Nearly every list and value fits here.
const SMALL: usize = 256;

/// `call` on the first `SMALL` bytes of `buf`, then, only if that was too
/// small (ERANGE), on all of it.
pub fn small_first(
    buf: &mut [u8],
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<usize> {
    let len = buf.len();
    match call(&mut buf[..SMALL.min(len)]) {
        Err(rustix::io::Errno::RANGE) if len > SMALL => call(buf),
        r => r,
    }
}

/// Copy every attribute of `src` onto `dst`; with `exact`, also remove the
/// attributes `dst` has and `src` has not (an ACL inherited from a default
/// ACL, a stale `user.*`), except `security.*`, which the system assigns
/// (SELinux labels). Returns what could not be copied or removed, with the
/// reason.
pub fn copy(
    src: BorrowedFd,
    dst: BorrowedFd,
    buf: &mut Vec<u8>,
    exact: bool,
) -> io::Result<Vec<String>> {
    if buf.len() < 2 * XATTR_MAX {
        buf.resize(2 * XATTR_MAX, 0);
    }
    let (list, value) = buf.split_at_mut(XATTR_MAX);
    let n = match small_first(list, |b| rustix::fs::flistxattr(src, b)) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut refused = Vec::new();
    if exact {
        remove_extra(&list[..n], dst, value, &mut refused)?;
    }
    for name in list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let shown = String::from_utf8_lossy(name).into_owned();
        let len = match small_first(value, |b| rustix::fs::fgetxattr(src, name, b)) {
            Ok(len) => len,
            Err(e) => {
                refused.push(format!("{shown}: read: {e}"));
                continue;
            }
        };
        if let Err(e) =
            rustix::fs::fsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty())
        {
            refused.push(format!("{shown}: {e}"));
        }
    }
    Ok(refused)
}

/// Remove from `dst` every attribute not in the NUL-separated `keep` list
/// (the source's), `security.*` aside.
fn remove_extra(
    keep: &[u8],
    dst: BorrowedFd,
    scratch: &mut [u8],
    refused: &mut Vec<String>,
) -> io::Result<()> {
    let n = match small_first(scratch, |b| rustix::fs::flistxattr(dst, b)) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let names = |l: &[u8]| -> Vec<Vec<u8>> {
        l.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let keep = names(keep);
    for name in names(&scratch[..n]) {
        if keep.contains(&name) || name.starts_with(b"security.") {
            continue;
        }
        if let Err(e) = rustix::fs::fremovexattr(dst, &name[..]) {
            refused.push(format!("{}: remove: {e}", String::from_utf8_lossy(&name)));
        }
    }
    Ok(())
}

/// `copy`, with every attribute not copied logged as a warning naming the
/// entry (`shown` is only called then: no per-file allocation on the hot
/// path). The copy is kept: attributes are best effort.
pub fn copy_or_warn(
    src: BorrowedFd,
    dst: BorrowedFd,
    buf: &mut Vec<u8>,
    shown: impl Fn() -> String,
    exact: bool,
) {
    match copy(src, dst, buf, exact) {
        Ok(refused) => {
            for r in refused {
                log::warn!("{}: extended attribute not copied: {r}", shown());
            }
        }
        Err(e) => log::warn!("{}: extended attributes not copied: {e}", shown()),
    }
}
