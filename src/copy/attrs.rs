//! Metadata preservation: ownership, then mode, then times — the order
//! coreutils uses, because chown clears setuid bits and nothing after the
//! time step may touch the inode. Applied to open descriptors (files,
//! directories) or, for symlinks and FIFOs, with `*at(AT_SYMLINK_NOFOLLOW)`.

use rustix::fs::Timespec;
use rustix::fs::{AtFlags, Gid, Mode, Stat, Timestamps, Uid};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

/// The attributes we carry from a source `stat` to its copy.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: Timespec,
    pub mtime: Timespec,
}

impl Attrs {
    pub fn from_stat(st: &Stat) -> Self {
        Attrs {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            atime: Timespec {
                tv_sec: st.st_atime as _,
                tv_nsec: st.st_atime_nsec as _,
            },
            mtime: Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
        }
    }

    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime,
            last_modification: self.mtime,
        }
    }

    /// Apply to an open file or directory. `owner` is only attempted when
    /// running as root; its failure is returned like any other.
    pub fn apply_fd(&self, fd: impl AsFd, owner: bool) -> io::Result<()> {
        self.apply(fd.as_fd(), owner, true)
    }

    /// Finish a file we just created with `mode & 0o777`: chown only when
    /// asked, chmod only when chown ran or special bits are needed.
    pub fn apply_new_file(&self, fd: impl AsFd, chown: bool) -> io::Result<()> {
        self.apply(fd.as_fd(), chown, chown || self.mode & 0o7000 != 0)
    }

    /// Ownership, then mode, then times (chown clears setuid bits).
    fn apply(&self, fd: BorrowedFd, chown: bool, chmod: bool) -> io::Result<()> {
        if chown {
            rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.gid)),
            )?;
        }
        if chmod {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode))?;
        }
        rustix::fs::futimens(fd, &self.times())?;
        Ok(())
    }

    /// Apply to `name` in `dir` without following it (symlinks, FIFOs,
    /// devices). Symlinks have no mode of their own on Linux.
    pub fn apply_at(
        &self,
        dir: impl AsFd,
        name: &[u8],
        owner: bool,
        is_link: bool,
    ) -> io::Result<()> {
        let dir = dir.as_fd();
        if owner {
            rustix::fs::chownat(
                dir,
                name,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if !is_link {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(self.mode), AtFlags::empty())?;
        }
        rustix::fs::utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// Same size and mtime (to the nanosecond): the rsync "quick check" that
/// decides a destination file is already up to date.
pub fn same_size_and_mtime(a: &Stat, b: &Stat) -> bool {
    a.st_size == b.st_size && a.st_mtime == b.st_mtime && a.st_mtime_nsec == b.st_mtime_nsec
}

/// The quick check: `name` in `dir` has the source's type, size and mtime
/// (never following a symlink there).
pub fn up_to_date(dir: impl AsFd, name: &[u8], src: &Stat) -> bool {
    let Ok(d) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    rustix::fs::FileType::from_raw_mode(d.st_mode)
        == rustix::fs::FileType::from_raw_mode(src.st_mode)
        && same_size_and_mtime(&d, src)
}

/// Whether we are privileged to set ownership.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
