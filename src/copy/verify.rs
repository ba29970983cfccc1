//! `--verify`: BLAKE3 of the source and of the written copy, read back
//! through their descriptors before the copy is placed.

use std::io;
use std::os::fd::BorrowedFd;

/// Hash the first `len` bytes of `fd` (positional reads; the offset of the
/// descriptor is untouched).
pub fn hash_fd(fd: BorrowedFd, len: u64, buf: &mut Vec<u8>) -> io::Result<blake3::Hash> {
    const CHUNK: usize = 1 << 20;
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    let mut h = blake3::Hasher::new();
    let mut off = 0u64;
    while off < len {
        let want = (len - off).min(CHUNK as u64) as usize;
        match rustix::io::pread(fd, &mut buf[..want], off) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                off += n as u64;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(h.finalize())
}

/// `-c`: whether regular files `a` and `b`, both `len` bytes long, hold the
/// same bytes. Compared directly, block by block, rather than hashed: on one
/// machine both sides are at hand, and the first differing block ends the
/// read.
pub fn same_bytes(a: BorrowedFd, b: BorrowedFd, len: u64) -> io::Result<bool> {
    const CHUNK: usize = 1 << 18;
    let (mut x, mut y) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut off = 0u64;
    while off < len {
        let want = (len - off).min(CHUNK as u64) as usize;
        let n = read_full(a, &mut x[..want], off)?;
        let m = read_full(b, &mut y[..want], off)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n < want {
            // Both ended early (shrunk while read): what was read agrees,
            // and the caller's size comparison has the last word.
            return Ok(true);
        }
        off += n as u64;
    }
    Ok(true)
}

/// Fill `buf` from `off` on, short only at the end of the file.
fn read_full(fd: BorrowedFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(fd, &mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}
