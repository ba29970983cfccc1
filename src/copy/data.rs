//! Moving file data: clones (`FICLONE`/`FICLONERANGE`: extents shared, no
//! bytes moved) when `--reflink` allows, else `copy_file_range` (which the
//! kernel may itself turn into a clone on XFS/btrfs) with a read/write
//! fallback, or read/write only (`--reflink=never`: an independent physical
//! copy). Hole-aware via SEEK_DATA/SEEK_HOLE, so sparse files stay sparse.

use rustix::fs::SeekFrom;
use std::io;
use std::os::fd::BorrowedFd;

/// Bytes per `copy_file_range` call: small enough that progress and
/// shutdown checks happen several times a second on slow disks.
const CHUNK: usize = 8 << 20;

/// Called after each chunk with the bytes just written; returning `false`
/// aborts the copy (shutdown requested).
pub type Tick<'a> = &'a mut dyn FnMut(u64) -> bool;

/// `--reflink`: whether copies may share extents with their source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reflink {
    /// Clone where the filesystem can, else copy.
    #[default]
    Auto,
    /// Clone or fail the file.
    Always,
    /// Copy the bytes; never share extents (not even through
    /// `copy_file_range`, which may clone).
    Never,
}

/// Below this size `--reflink=auto` writes the bytes instead of cloning.
pub const CLONE_MIN: u64 = 64 << 10;

/// Make `dst` share all of `src`'s extents (`FICLONE`).
pub fn clone_file(dst: BorrowedFd, src: BorrowedFd) -> io::Result<()> {
    Ok(rustix::fs::ioctl_ficlone(dst, src)?)
}

/// Make `dst`'s bytes `off..off+len` share `src`'s at the same offsets
/// (`FICLONERANGE`; `off` block-aligned, `len` too unless it ends at EOF).
pub fn clone_range(dst: BorrowedFd, src: BorrowedFd, off: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct FileCloneRange {
        src_fd: i64,
        src_offset: u64,
        src_length: u64,
        dest_offset: u64,
    }
    // _IOW(0x94, 13, struct file_clone_range): not in libc or rustix.
    const FICLONERANGE: libc::c_ulong = 0x4020_940d;
    let arg = FileCloneRange {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: off,
        src_length: len,
        dest_offset: off,
    };
    // SAFETY: a valid descriptor and a pointer to a live, correctly laid
    // out struct file_clone_range that the kernel only reads.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONERANGE as _, &arg) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The filesystem (or this pair of files) cannot clone: fall back to
/// copying, and stop trying on this filesystem.
pub fn clone_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS)
    )
}

pub fn interrupted() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "shutdown requested")
}

/// Copy all of `src` into the empty file `dst`. `size` and `blocks` are the
/// source's fstat values; a file with fewer allocated blocks than its size is
/// copied hole by hole. Returns the file length written.
pub fn copy_data(
    src: BorrowedFd,
    dst: BorrowedFd,
    (size, blocks): (u64, u64),
    bytes_only: bool,
    tick: Tick,
) -> io::Result<u64> {
    if blocks.saturating_mul(512) < size {
        if let Some(n) = copy_sparse(src, dst, size, bytes_only, tick)? {
            return Ok(n);
        }
    }
    // Copy st_size bytes: a file that grows or shrinks meanwhile is caught
    // by the caller's post-copy fstat and copied again, and stopping at the
    // size saves the final zero-length copy_file_range per file.
    copy_range(src, dst, (0, size), bytes_only, tick)
}

/// Copy bytes `off..off+len` into the same range of `dst` (a pre-sized temp
/// shared by several workers). With `sparse`, holes in the range are
/// skipped, so they stay holes in `dst`.
pub fn copy_span(
    src: BorrowedFd,
    dst: BorrowedFd,
    (off, len): (u64, u64),
    (sparse, bytes_only): (bool, bool),
    tick: Tick,
) -> io::Result<u64> {
    if !sparse {
        return copy_range(src, dst, (off, len), bytes_only, tick);
    }
    let end = off + len;
    let (mut pos, mut n) = (off, 0);
    while pos < end {
        let data = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) if pos == off => {
                return copy_range(src, dst, (off, len), bytes_only, tick);
            }
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = rustix::fs::seek(src, SeekFrom::Hole(data))?.min(end);
        n += copy_range(src, dst, (data, hole - data), bytes_only, tick)?;
        pos = hole;
    }
    Ok(n)
}

/// Copy the data segments only, then extend to `size`. `None` when the
/// filesystem does not support SEEK_DATA (the caller copies densely).
fn copy_sparse(
    src: BorrowedFd,
    dst: BorrowedFd,
    size: u64,
    bytes_only: bool,
    tick: Tick,
) -> io::Result<Option<u64>> {
    let mut off = 0u64;
    while off < size {
        let data = match rustix::fs::seek(src, SeekFrom::Data(off)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) if off == 0 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(src, SeekFrom::Hole(data))?;
        copy_range(src, dst, (data, hole - data), bytes_only, tick)?;
        off = hole;
    }
    rustix::fs::ftruncate(dst, size)?;
    Ok(Some(size))
}

/// Copy `len` bytes (or to EOF) from offset `off` to the same offset;
/// `bytes_only`: read/write, never `copy_file_range` (which may clone).
fn copy_range(
    src: BorrowedFd,
    dst: BorrowedFd,
    (off, len): (u64, u64),
    bytes_only: bool,
    tick: Tick,
) -> io::Result<u64> {
    if bytes_only {
        return fallback(src, dst, off, len, tick);
    }
    let (mut in_off, mut out_off) = (off, off);
    let mut left = len;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut in_off), dst, Some(&mut out_off), want) {
            Ok(0) if in_off == 0 => {
                // /proc-style files report 0 here; cp falls back to read too.
                return fallback(src, dst, in_off, left, tick).map(|n| n + (in_off - off));
            }
            Ok(0) => break,
            Ok(n) => {
                left -= n as u64;
                if !tick(n as u64) {
                    return Err(interrupted());
                }
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::PERM,
            ) => {
                return fallback(src, dst, in_off, left, tick).map(|n| n + (in_off - off));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(in_off - off)
}

/// Plain pread/pwrite (filesystems without copy_file_range, and
/// `--reflink=never`), on the descriptors as they are: no dup per file.
fn fallback(src: BorrowedFd, dst: BorrowedFd, off: u64, len: u64, tick: Tick) -> io::Result<u64> {
    // Sized to the data (a 4 KiB file gets a 4 KiB buffer, not a fresh
    // 1 MiB mapping per file).
    let mut buf = vec![0u8; len.clamp(1, 1 << 20) as usize];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = match rustix::io::pread(src, &mut buf[..want], off + done) {
            Ok(0) => break,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut written = 0;
        while written < n {
            match rustix::io::pwrite(dst, &buf[written..n], off + done + written as u64) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(w) => written += w,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        done += n as u64;
        if !tick(n as u64) {
            return Err(interrupted());
        }
    }
    Ok(done)
}
