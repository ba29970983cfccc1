//! Metadata preservation: ownership, then mode, then times — the order
//! coreutils uses, because chown clears setuid bits and nothing after the
//! time step may touch the inode. Applied to open descriptors (files,
//! directories) or, for symlinks and FIFOs, with `*at(AT_SYMLINK_NOFOLLOW)`.

use filetime::FileTime;
use rustix::fs::{AtFlags, Gid, Mode, Stat, Timespec, Timestamps, Uid};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// The attributes we carry from a source `stat` to its copy.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: FileTime,
    pub mtime: FileTime,
}

impl Attrs {
    pub fn from_stat(st: &Stat) -> Self {
        Attrs {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            atime: FileTime::from_unix_time(st.st_atime, st.st_atime_nsec as u32),
            mtime: FileTime::from_unix_time(st.st_mtime, st.st_mtime_nsec as u32),
        }
    }

    /// For `utimensat` on a name (filetime has no directory-relative call).
    fn timestamps(&self) -> Timestamps {
        let ts = |t: FileTime| Timespec {
            tv_sec: t.unix_seconds(),
            tv_nsec: t.nanoseconds().into(),
        };
        Timestamps {
            last_access: ts(self.atime),
            last_modification: ts(self.mtime),
        }
    }

    /// Apply to an open file or directory. `owner` is only attempted when
    /// running as root; its failure is returned like any other.
    pub fn apply_fd(&self, f: &File, owner: bool) -> io::Result<()> {
        self.apply(f, owner, true)
    }

    /// Ownership, then mode, then times (chown clears setuid bits). A
    /// caller that created the inode with the right permission bits may
    /// skip `chmod`.
    pub fn apply(&self, f: &File, chown: bool, chmod: bool) -> io::Result<()> {
        if chown {
            self.chown(f)?;
        }
        if chmod {
            self.chmod(f)?;
        }
        self.set_times(f)
    }

    pub fn chown(&self, f: &File) -> io::Result<()> {
        Ok(rustix::fs::fchown(
            f,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        )?)
    }

    pub fn chmod(&self, f: &File) -> io::Result<()> {
        Ok(rustix::fs::fchmod(f, Mode::from_raw_mode(self.mode))?)
    }

    /// futimens(2), through the crate the design names for times.
    pub fn set_times(&self, f: &File) -> io::Result<()> {
        filetime::set_file_handle_times(f, Some(self.atime), Some(self.mtime))
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
        self.set_times_at(dir, name)
    }

    /// The times alone, on `name` in `dir` without following it (an entry
    /// whose data is current but whose mtime is not).
    pub fn set_times_at(&self, dir: impl AsFd, name: &[u8]) -> io::Result<()> {
        rustix::fs::utimensat(dir, name, &self.timestamps(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// What tells one version of a file from another for the quick check and
/// every "changed since" check: size and mtime to the nanosecond (rsync's
/// rule). One definition, so the walk, the worker and the chunk finish agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
}

impl Stamp {
    pub fn of(st: &Stat) -> Self {
        Stamp {
            size: st.st_size as u64,
            mtime_secs: st.st_mtime,
            mtime_nanos: st.st_mtime_nsec as u32,
        }
    }
}

/// Same size and mtime (to the nanosecond): the rsync "quick check" that
/// decides a destination file is already up to date.
pub fn same_size_and_mtime(a: &Stat, b: &Stat) -> bool {
    Stamp::of(a) == Stamp::of(b)
}

/// The quick check: `name` in `dir` has the source's type, size and mtime
/// (never following a symlink there).
pub fn up_to_date(dir: impl AsFd, name: &[u8], src: &Stat) -> bool {
    current(dir, name, src).is_some()
}

/// The destination's stat of `name` when its data is current (the quick
/// check passes), for the metadata comparison that follows.
pub fn current(dir: impl AsFd, name: &[u8], src: &Stat) -> Option<Stat> {
    let d = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let same_type = rustix::fs::FileType::from_raw_mode(d.st_mode)
        == rustix::fs::FileType::from_raw_mode(src.st_mode);
    (same_type && same_size_and_mtime(&d, src)).then_some(d)
}

/// Whether we are privileged to set ownership.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
