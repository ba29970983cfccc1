//! Large files split into chunks copied by several workers. The walker
//! creates one named temp per file, pre-sized; workers fill byte ranges; this
//! registry counts the chunks in and, when the last one arrives, checks the
//! source is unchanged, sets metadata on the temp and renames it into place —
//! the same "final name only when complete" rule as whole files.

use crate::copy::attrs::{is_root, Attrs};
use crate::copy::{open_beneath, split_rel};
use crate::protocol::{Outcome, RelPath, Time};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// One large file in flight.
pub struct Big {
    pub temp: Vec<u8>,
    pub size: u64,
    pub mtime: Time,
    pub parts_left: u32,
    /// First chunk failure, reported once for the whole file.
    pub failed: Option<String>,
    /// A chunk saw the source change: copy the file again whole.
    pub changed: bool,
}

/// What finalizing found.
pub enum Placed {
    Done,
    /// The source changed since the walk: copy it again as a whole file.
    Changed,
    Failed(String),
}

#[derive(Default)]
pub struct Registry {
    files: HashMap<Vec<u8>, Big>,
}

impl Registry {
    pub fn add(&mut self, rel: Vec<u8>, big: Big) {
        self.files.insert(rel, big);
    }

    /// Count one chunk's outcome; returns the file once all chunks are in.
    pub fn chunk_done(&mut self, rel: &[u8], o: &Outcome) -> Option<Big> {
        let big = self.files.get_mut(rel)?;
        match o {
            Outcome::Failed {
                kind: crate::protocol::ErrorKind::Changed,
                ..
            } => big.changed = true,
            Outcome::Failed { msg, .. } => {
                big.failed.get_or_insert_with(|| msg.clone());
            }
            _ => {}
        }
        big.parts_left = big.parts_left.saturating_sub(1);
        if big.parts_left == 0 {
            self.files.remove(rel)
        } else {
            None
        }
    }

    /// Interrupted or fatal: remove the temps of files not yet complete.
    pub fn abandon(&mut self, dst_root: &OwnedFd) {
        for (rel, big) in self.files.drain() {
            discard(dst_root, &rel, &big.temp);
        }
    }
}

pub fn discard(dst_root: &OwnedFd, rel: &[u8], temp: &[u8]) {
    let (parent, _) = split_rel(rel);
    if let Ok(dir) = open_beneath(dst_root, parent, OFlags::DIRECTORY | OFlags::RDONLY) {
        let _ = rustix::fs::unlinkat(&dir, temp, AtFlags::empty());
    }
}

/// Everything `finalize` needs besides the file itself.
pub struct Roots<'a> {
    pub src: &'a OwnedFd,
    pub dst: &'a OwnedFd,
    pub dereference: bool,
    pub fsync: bool,
}

/// All chunks are in: check, set metadata, place. The temp is removed on
/// any outcome but `Done`.
pub fn finalize(roots: &Roots, rel: &[u8], big: &Big) -> Placed {
    let r = place(roots, rel, big);
    if !matches!(r, Placed::Done) {
        discard(roots.dst, rel, &big.temp);
    }
    r
}

fn place(roots: &Roots, rel: &[u8], big: &Big) -> Placed {
    let (parent, name) = split_rel(rel);
    let fail = |what: &str, e: io::Error| Placed::Failed(format!("{what}: {e}"));
    let sdir = match crate::copy::open_src_dir(roots.src, parent, roots.dereference) {
        Ok(d) => d,
        Err(e) => return fail("open source directory", e),
    };
    let (src, st) = match crate::copy::open_source(&sdir, name, roots.dereference) {
        Ok(opened) => opened,
        Err(Outcome::Failed { msg, .. }) => return Placed::Failed(msg),
        Err(_) => return Placed::Failed("cannot open source".into()),
    };
    if st.st_size as u64 != big.size
        || (st.st_mtime, st.st_mtime_nsec as u32) != (big.mtime.secs, big.mtime.nanos)
    {
        return Placed::Changed;
    }
    let r = (|| -> io::Result<()> {
        let ddir = open_beneath(roots.dst, parent, OFlags::DIRECTORY | OFlags::RDONLY)?;
        let out = rustix::fs::openat(
            &ddir,
            &big.temp[..],
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Attrs::from_stat(&st).apply_fd(&out, is_root())?;
        let mut buf = Vec::new();
        for r in crate::copy::xattrs::copy(src.as_fd(), out.as_fd(), &mut buf)? {
            log::warn!(
                "{}: extended attribute not copied: {r}",
                crate::util::escape_bytes(rel)
            );
        }
        if roots.fsync {
            rustix::fs::fsync(&out)?;
        }
        drop(out);
        rustix::fs::renameat(&ddir, &big.temp[..], &ddir, name)?;
        Ok(())
    })();
    match r {
        Ok(()) => Placed::Done,
        Err(e) => fail("place", e),
    }
}

/// Name of the shared temp for the `seq`-th large file of a run.
pub fn temp_name(run_id: u64, seq: u64) -> RelPath {
    RelPath(crate::copy::temp::big(run_id, seq))
}
