//! Moving file bytes: `copy_file_range` (the kernel's copy path, reflinks on
//! filesystems that support them) with a read/write fallback, and hole-aware
//! copying via SEEK_DATA/SEEK_HOLE so sparse files stay sparse.

use rustix::fs::SeekFrom;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

/// Bytes per `copy_file_range` call: small enough that progress and
/// shutdown checks happen several times a second on slow disks.
const CHUNK: usize = 8 << 20;

/// Called after each chunk with the bytes just written; returning `false`
/// aborts the copy (shutdown requested).
pub type Tick<'a> = &'a mut dyn FnMut(u64) -> bool;

pub fn interrupted() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "shutdown requested")
}

/// Copy all of `src` into the empty file `dst`. `size` and `blocks` are the
/// source's fstat values; a file with fewer allocated blocks than its size is
/// copied hole by hole. Returns the file length written.
pub fn copy_data(
    src: BorrowedFd,
    dst: BorrowedFd,
    size: u64,
    blocks: u64,
    tick: Tick,
) -> io::Result<u64> {
    if blocks.saturating_mul(512) < size {
        if let Some(n) = copy_sparse(src, dst, size, tick)? {
            return Ok(n);
        }
    }
    // Copy st_size bytes: a file that grows or shrinks meanwhile is caught
    // by the caller's post-copy fstat and copied again, and stopping at the
    // size saves the final zero-length copy_file_range per file.
    copy_range(src, dst, 0, size, tick)
}

/// Copy bytes `off..off+len` into the same range of `dst` (a pre-sized temp
/// shared by several workers). With `sparse`, holes in the range are
/// skipped, so they stay holes in `dst`.
pub fn copy_span(
    src: BorrowedFd,
    dst: BorrowedFd,
    off: u64,
    len: u64,
    sparse: bool,
    tick: Tick,
) -> io::Result<u64> {
    if !sparse {
        return copy_range(src, dst, off, len, tick);
    }
    let end = off + len;
    let (mut pos, mut n) = (off, 0);
    while pos < end {
        let data = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) if pos == off => {
                return copy_range(src, dst, off, len, tick);
            }
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = rustix::fs::seek(src, SeekFrom::Hole(data))?.min(end);
        n += copy_range(src, dst, data, hole - data, tick)?;
        pos = hole;
    }
    Ok(n)
}

/// Copy the data segments only, then extend to `size`. `None` when the
/// filesystem does not support SEEK_DATA (the caller copies densely).
fn copy_sparse(src: BorrowedFd, dst: BorrowedFd, size: u64, tick: Tick) -> io::Result<Option<u64>> {
    let mut off = 0u64;
    while off < size {
        let data = match rustix::fs::seek(src, SeekFrom::Data(off)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) if off == 0 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(src, SeekFrom::Hole(data))?;
        copy_range(src, dst, data, hole - data, tick)?;
        off = hole;
    }
    rustix::fs::ftruncate(dst, size)?;
    Ok(Some(size))
}

/// Copy `len` bytes (or to EOF) from offset `off` to the same offset.
fn copy_range(src: BorrowedFd, dst: BorrowedFd, off: u64, len: u64, tick: Tick) -> io::Result<u64> {
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

/// Plain pread/pwrite for filesystems without copy_file_range.
fn fallback(src: BorrowedFd, dst: BorrowedFd, off: u64, len: u64, tick: Tick) -> io::Result<u64> {
    let src = std::fs::File::from(src.try_clone_to_owned()?);
    let dst = std::fs::File::from(dst.try_clone_to_owned()?);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = match src.read_at(&mut buf[..want], off + done) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all_at(&buf[..n], off + done)?;
        done += n as u64;
        if !tick(n as u64) {
            return Err(interrupted());
        }
    }
    Ok(done)
}
