//! Metadata repair: a destination entry whose data is current (same type,
//! size and mtime) but whose permissions, owner, group or extended
//! attributes (ACLs included) differ from the source's is fixed in place,
//! without copying data, as `rsync -aAX` does. Every step goes through the
//! held directory descriptor and an `O_PATH|O_NOFOLLOW` descriptor of the
//! entry itself (checked to be the inode that was compared), so a symlink
//! swapped in meanwhile is never followed.

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Uid};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// What differs between a source entry and its current copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Differences {
    pub perms: bool,
    pub owner: bool,
    pub group: bool,
    /// POSIX ACLs (`system.posix_acl_*`) differ.
    pub acl: bool,
    /// Other extended attributes differ.
    pub xattrs: bool,
}

impl std::fmt::Display for Differences {
    /// The attributes that differ, in words ("permissions, owner").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = [
            (self.perms, "permissions"),
            (self.owner, "owner"),
            (self.group, "group"),
            (self.acl, "ACL"),
            (self.xattrs, "extended attributes"),
        ];
        let on: Vec<&str> = words.iter().filter(|(d, _)| *d).map(|(_, w)| *w).collect();
        f.write_str(&on.join(", "))
    }
}

impl Differences {
    pub fn any(&self) -> bool {
        self.perms || self.owner || self.group || self.acl || self.xattrs
    }
}

/// How to compare and repair.
#[derive(Clone, Copy, Debug)]
pub struct How {
    /// Ownership is preserved (we are root).
    pub owner: bool,
    /// Repair; without it only report (a dry run).
    pub apply: bool,
    /// The source name may be a symlink to follow (`-L`).
    pub follow_src: bool,
}

/// Compare `name` in `src_dir` (stat `src`) with `name` in `dst_dir` (stat
/// `dst`, whose data is current) and, when `apply`, repair what differs.
/// `owner`: ownership is preserved (we are root). Returns what differed.
pub fn repair(
    (src_dir, dst_dir): (BorrowedFd, BorrowedFd),
    name: &[u8],
    (src, dst): (&Stat, &Stat),
    how: How,
) -> io::Result<Differences> {
    let How {
        owner,
        apply,
        follow_src,
    } = how;
    let link = FileType::from_raw_mode(src.st_mode) == FileType::Symlink;
    let mut d = Differences {
        perms: !link && src.st_mode & 0o7777 != dst.st_mode & 0o7777,
        owner: owner && src.st_uid != dst.st_uid,
        group: owner && src.st_gid != dst.st_gid,
        acl: false,
        xattrs: false,
    };
    // A symlink's own (never its target's): Linux refuses `user.*` there,
    // but root's `trusted.*` are kept, as rsync -X keeps them.
    let (src_x, dst_x) = (
        Xattrs::read(src_dir, name, follow_src && !link)?,
        Xattrs::read(dst_dir, name, false)?,
    );
    (d.acl, d.xattrs) = src_x.differs(&dst_x);
    if !apply || !d.any() {
        return Ok(d);
    }
    fix(dst_dir, name, (src, dst), d, (&src_x, &dst_x))?;
    Ok(d)
}

/// Repair what `d` says differs, in the order that keeps each step's
/// result: owner, then extended attributes, then mode. Through an
/// `O_PATH|O_NOFOLLOW` descriptor checked to be the inode `dst` describes.
fn fix(
    dst_dir: BorrowedFd,
    name: &[u8],
    (src, dst): (&Stat, &Stat),
    d: Differences,
    (src_x, dst_x): (&Xattrs, &Xattrs),
) -> io::Result<()> {
    let link = FileType::from_raw_mode(src.st_mode) == FileType::Symlink;
    let fd = rustix::fs::openat(
        dst_dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let now = rustix::fs::fstat(&fd)?;
    if (now.st_dev, now.st_ino) != (dst.st_dev, dst.st_ino) {
        return Err(io::Error::other(
            "destination entry replaced while repairing",
        ));
    }
    if d.owner || d.group {
        rustix::fs::chownat(
            &fd,
            "",
            Some(Uid::from_raw(src.st_uid)),
            Some(Gid::from_raw(src.st_gid)),
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    // The entry itself, by its O_PATH descriptor: /proc/self/fd/N is
    // followed to the inode, never to a path.
    let me = proc_fd(&fd);
    if (d.acl || d.xattrs) && link {
        // Through the name, not following it: the magic /proc link of an
        // O_PATH symlink descriptor is no way to reach the symlink itself.
        src_x.apply_over(dst_x, &at(dst_dir, name), false)?;
    } else if d.acl || d.xattrs {
        src_x.apply_over(dst_x, &me, true)?;
    }
    // After xattrs (an ACL rewrites mode bits) and after chown (which clears
    // setuid bits).
    if !link && d.any() {
        rustix::fs::chmod(&me[..], Mode::from_raw_mode(src.st_mode & 0o7777))?;
    }
    Ok(())
}

/// `listxattrat(2)` (Linux 6.13) was refused with ENOSYS once: use /proc.
static NO_LISTXATTRAT: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// A test on this thread takes the /proc path (the global above is
    /// left alone: other tests run beside it).
    static FORCE_PROC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether to try `listxattrat`.
fn use_listxattrat() -> bool {
    #[cfg(test)]
    if FORCE_PROC.with(|f| f.get()) {
        return false;
    }
    !NO_LISTXATTRAT.load(Ordering::Relaxed)
}

/// The attribute names of `name` in `dir` into `buf` (its length used).
/// `listxattrat` resolves the single name in the held directory (no
/// symlink followed without `follow`); older kernels get the same through
/// `/proc/self/fd/<dir>/<name>` (`path`), three path lookups slower.
fn list_at(
    dir: BorrowedFd,
    name: &[u8],
    path: &[u8],
    follow: bool,
    buf: &mut [u8],
) -> io::Result<usize> {
    if use_listxattrat() {
        const SYS_LISTXATTRAT: libc::c_long = 465; // same number on every arch
        let cname = std::ffi::CString::new(name)?;
        let flags: libc::c_uint = if follow {
            0
        } else {
            libc::AT_SYMLINK_NOFOLLOW as libc::c_uint
        };
        // SAFETY: listxattrat(dfd, path, at_flags, list, size) with a valid
        // descriptor, a NUL-terminated name and a buffer of `buf.len()`.
        let r = unsafe {
            libc::syscall(
                SYS_LISTXATTRAT,
                dir.as_raw_fd(),
                cname.as_ptr(),
                flags,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
        NO_LISTXATTRAT.store(true, Ordering::Relaxed);
    }
    let r = if follow {
        rustix::fs::listxattr(path, buf)
    } else {
        rustix::fs::llistxattr(path, buf)
    };
    Ok(r?)
}

/// `/proc/self/fd/<dir>/<name>`: a single name resolved in a held
/// directory; the l*xattr calls do not follow it if it is a symlink.
fn at(dir: BorrowedFd, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// Give the new symlink, FIFO or device node `tmp` in `dst_dir` the
/// extended attributes and ACLs of `name` in `src_dir`, through paths that
/// never open or follow either (opening a device can act on it).
pub fn copy_node_xattrs(
    (src_dir, dst_dir): (BorrowedFd, BorrowedFd),
    name: &[u8],
    tmp: &[u8],
) -> io::Result<()> {
    let src_x = Xattrs::read(src_dir, name, false)?;
    if src_x == Xattrs::default() {
        return Ok(());
    }
    src_x.apply_over(&Xattrs::default(), &at(dst_dir, tmp), false)
}

fn proc_fd(fd: &OwnedFd) -> Vec<u8> {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()).into_bytes()
}

/// An entry's extended attributes, sorted by name; `security.*` is left out
/// (assigned by the system, never removed by pcopy).
#[derive(Debug, Default, PartialEq, Eq)]
struct Xattrs(Vec<(Vec<u8>, Vec<u8>)>);

impl Xattrs {
    /// Read `name` in `dir` without following it unless `follow`. Most
    /// files have none: one `listxattrat` (or, before Linux 6.13, one
    /// `llistxattr` through /proc) into a small stack buffer.
    fn read(dir: BorrowedFd, name: &[u8], follow: bool) -> io::Result<Self> {
        let path = at(dir, name);
        let mut small = [0u8; 256];
        let list: Vec<u8> = match list_at(dir, name, &path, follow, &mut small[..]) {
            Ok(0) => return Ok(Xattrs::default()),
            Ok(n) => small[..n].to_vec(),
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {
                let mut big = vec![0u8; super::xattrs::XATTR_MAX];
                let n = list_at(dir, name, &path, follow, &mut big[..])?;
                big.truncate(n);
                big
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Xattrs::default()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut value = vec![0u8; super::xattrs::XATTR_MAX];
        for name in list.split(|&b| b == 0).filter(|s| !s.is_empty()) {
            if name.starts_with(b"security.") {
                continue;
            }
            let got = super::xattrs::small_first(&mut value[..], |b| {
                if follow {
                    rustix::fs::getxattr(&path[..], name, b)
                } else {
                    rustix::fs::lgetxattr(&path[..], name, b)
                }
            });
            match got {
                Ok(n) => out.push((name.to_vec(), value[..n].to_vec())),
                // Removed meanwhile.
                Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.sort();
        Ok(Xattrs(out))
    }

    /// Whether the ACLs differ, and whether the other attributes do.
    fn differs(&self, other: &Xattrs) -> (bool, bool) {
        let part = |x: &Xattrs, acl: bool| -> Vec<(Vec<u8>, Vec<u8>)> {
            x.0.iter()
                .filter(|(n, _)| n.starts_with(b"system.posix_acl_") == acl)
                .cloned()
                .collect()
        };
        (
            part(self, true) != part(other, true),
            part(self, false) != part(other, false),
        )
    }

    /// Make `target` (currently `old`) carry exactly these attributes;
    /// `follow`: set them on what `target` leads to (a /proc magic link),
    /// else on `target` itself (a name that may be a symlink).
    fn apply_over(&self, old: &Xattrs, target: &[u8], follow: bool) -> io::Result<()> {
        let none = rustix::fs::XattrFlags::empty();
        for (name, _) in &old.0 {
            if !self.0.iter().any(|(n, _)| n == name) {
                if follow {
                    rustix::fs::removexattr(target, &name[..])?;
                } else {
                    rustix::fs::lremovexattr(target, &name[..])?;
                }
            }
        }
        for (name, value) in &self.0 {
            if !old.0.contains(&(name.clone(), value.clone())) {
                if follow {
                    rustix::fs::setxattr(target, &name[..], value, none)?;
                } else {
                    rustix::fs::lsetxattr(target, &name[..], value, none)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_listing_paths_see_the_same_attributes_and_never_follow() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        let flags = rustix::fs::XattrFlags::empty();
        // ext4 and tmpfs (where tests run) have user xattrs.
        rustix::fs::setxattr(&f, "user.a", b"1", flags).expect("user xattrs");
        let dir = std::fs::File::open(t.path()).unwrap();
        let with_syscall = Xattrs::read(dir.as_fd(), b"f", false).unwrap();
        let link = Xattrs::read(dir.as_fd(), b"l", false).unwrap();
        FORCE_PROC.with(|f| f.set(true));
        let with_proc = Xattrs::read(dir.as_fd(), b"f", false).unwrap();
        let link_proc = Xattrs::read(dir.as_fd(), b"l", false).unwrap();
        let followed = Xattrs::read(dir.as_fd(), b"l", true).unwrap();
        FORCE_PROC.with(|f| f.set(false));
        assert_eq!(with_syscall.0, vec![(b"user.a".to_vec(), b"1".to_vec())]);
        assert_eq!(with_syscall, with_proc);
        assert_eq!(link, Xattrs::default(), "the symlink itself has none");
        assert_eq!(link_proc, Xattrs::default());
        assert_eq!(followed, with_syscall);
    }
}
