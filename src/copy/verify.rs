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
