//! Large files, held back until the walk ends. Writers of one file serialise
//! on its inode lock, so splitting only pays when there are fewer large files
//! than CPUs: then each is cut into `parallel / count` chunks (measured on
//! tmpfs: one 1 GiB file 0.57 s whole, 0.43 s in 2 chunks; three such files
//! 0.84 s whole but 1.69 s chunked). Otherwise each goes whole to a worker,
//! and so does every file when the destination clones from this source: one
//! `FICLONE` takes a whole file, and chunks would only cost worker starts
//! (one 1 GiB file on XFS: 8 ms split, against `cp -a`'s 1.2 ms).

use super::{Batcher, Walker};
use crate::copy::Stamp;
use crate::protocol::{DestDir, RelPath, Task, TaskKind, Time};
use crate::work::LargeFile;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::io;
use std::os::fd::AsFd;

/// A large file held back until the end of the walk.
pub struct Large {
    pub rel: RelPath,
    /// The version the walk saw (its size decides the split).
    pub file: Stamp,
    pub dir: DestDir,
}

impl Large {
    fn whole(&self) -> Task {
        Task {
            rel: self.rel.clone(),
            kind: TaskKind::File {
                size: self.file.size,
            },
            dir: self.dir,
            basis: None,
        }
    }
}

/// Queue the large files, split or whole. `false` when the dispatcher is gone.
pub fn place(w: &Walker, large: Vec<Large>, b: &mut Batcher) -> bool {
    let Some(min_chunk) = w.opts.chunk_bytes else {
        return large.into_iter().all(|l| b.push(l.whole(), l.file.size));
    };
    // Under MPI every rank's workers can write a share of the chunks.
    let writers = w.opts.parallel * w.ranks.max(1) as usize;
    let mut parts = (writers / large.len().max(1)).max(1) as u64;
    if parts > 1 && large.first().is_some_and(|l| clones(w, l)) {
        parts = 1;
    }
    for (seq, l) in large.into_iter().enumerate() {
        let chunk = l
            .file
            .size
            .div_ceil(parts)
            .max(min_chunk)
            .next_multiple_of(1 << 20);
        if parts > 1 {
            match split(w, &l, chunk, seq as u64, b) {
                Ok(true) => continue,
                Ok(false) => return false,
                Err(e) => log::debug!("{}: not split ({e}); copying whole", l.rel.display()),
            }
        }
        if !b.push(l.whole(), l.file.size) {
            return false;
        }
    }
    true
}

/// Whether the destination clones from this source: a one-block
/// `FICLONERANGE` from `l` into an unnamed temp beside its destination (none
/// of it is ever linked in). Asked once per run, of the first large file.
fn clones(w: &Walker, l: &Large) -> bool {
    let Some(root) = w
        .dst_root
        .as_ref()
        .filter(|_| w.opts.may_clone && !w.opts.dry_run)
    else {
        return false;
    };
    let probe = || -> io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let src = crate::copy::open_beneath(&w.src_root, &l.rel.0, flags)?;
        let (parent, _) = crate::copy::split_rel(&l.rel.0);
        let dir = crate::copy::open_beneath(root, parent, OFlags::DIRECTORY | OFlags::RDONLY)?;
        let tmp = rustix::fs::openat(
            &dir,
            ".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        crate::copy::data::clone_range(tmp.as_fd(), src.as_fd(), 0, 4096)
    };
    let r = probe();
    log::debug!(
        "large files {} (clone probe on {}: {r:?})",
        if r.is_ok() {
            "go whole: the destination clones"
        } else {
            "may be split"
        },
        l.rel.display()
    );
    r.is_ok()
}

/// Create the shared, pre-sized temp for a large file, register it, and
/// queue its chunks behind the registration. `Ok(false)` when the dispatcher is gone.
/// Long because the temp's creation, its registration and its chunks must stay in this order (no chunk before its file is known).
fn split(w: &Walker, l: &Large, chunk: u64, seq: u64, b: &mut Batcher) -> io::Result<bool> {
    let Some(root) = &w.dst_root else {
        return Err(io::Error::other("no destination"));
    };
    let (parent, _) = crate::copy::split_rel(&l.rel.0);
    let dir = crate::copy::open_beneath(root, parent, OFlags::DIRECTORY | OFlags::RDONLY)?;
    let seq = crate::copy::temp::writer(w.rank, seq);
    let temp = RelPath(crate::copy::temp::big(w.run_id, seq));
    let size = l.file.size;
    let fd = rustix::fs::openat(
        &dir,
        &temp.0[..],
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    if let Err(e) = rustix::fs::ftruncate(&fd, size) {
        let _ = rustix::fs::unlinkat(&dir, &temp.0[..], AtFlags::empty());
        return Err(e.into());
    }
    drop(fd);
    let parts = size.div_ceil(chunk);
    b.register(LargeFile {
        rel: l.rel.0.clone(),
        temp: temp.0.clone(),
        file: l.file,
        dir: l.dir,
        parts: parts as u32,
    });
    let mtime = Time {
        secs: l.file.mtime_secs,
        nanos: l.file.mtime_nanos,
    };
    for i in 0..parts {
        let offset = i * chunk;
        let len = chunk.min(size - offset);
        let kind = TaskKind::Chunk {
            offset,
            len,
            file_size: size,
            mtime,
            temp: temp.clone(),
        };
        let task = Task {
            rel: l.rel.clone(),
            kind,
            dir: l.dir,
            basis: None,
        };
        // Under MPI chunk i goes to rank (this + i) mod K; chunk 0, whose
        // batch carries the registration, stays here.
        let to = (w.rank + i as u32) % w.ranks.max(1);
        if to != w.rank {
            w.jobs.give_chunk(to, task);
            continue;
        }
        // A batch of its own: chunks exist to be written in parallel.
        if !b.push(task, len) || !b.flush() {
            return Ok(false);
        }
    }
    Ok(true)
}
