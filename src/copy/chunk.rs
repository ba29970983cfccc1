//! Large files, copied in chunks by several workers at once into one shared
//! temp the walk created and sized: writing one chunk (clone or bytes,
//! checked against the source version the walk saw), and placing the file
//! once every chunk is in, through the same finish as any copy.

use super::attrs::Stamp;
use super::file::sparse;
use super::place::{finish_file, Finish};
use super::{close_checked, data, split_rel, Copier, CopyError, Op, Placed, Span};
use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

impl Copier {
    /// Write one chunk of a large file into the supervisor's shared temp.
    pub(super) fn copy_chunk(
        &mut self,
        rel: &[u8],
        temp: &[u8],
        span: Span,
        tick: data::Tick,
    ) -> Result<Placed, CopyError> {
        let (parent, name) = split_rel(rel);
        let (src, st) = self.open_source(parent, name)?;
        let changed = CopyError::Changed("source changed since the walk");
        if Stamp::of(&st) != span.file {
            return Err(changed);
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        // Beneath the directory, like every other path from a task.
        let out = super::open_beneath(ddir, temp, OFlags::WRONLY)
            .and_then(only_link)
            .map_err(CopyError::at(Op::OpenSharedTemp))?;
        let dst_dev = self
            .dst_dir
            .stat()
            .map_err(CopyError::at(Op::OpenDestDir))?
            .st_dev;
        let cloned = self.chunk_data((&src, &out), span, (&st, dst_dev), tick)?;
        crate::failpoint::mutate_hook("worker::chunk_done", src.as_fd(), name);
        let after = rustix::fs::fstat(&src).map_err(CopyError::at(Op::StatSource))?;
        if Stamp::of(&after) != span.file {
            return Err(changed);
        }
        close_checked(out).map_err(CopyError::at(Op::CopyChunk))?;
        // Logical bytes, as for whole files (holes included).
        Ok(Placed::Copied {
            grew: false,
            bytes: span.len,
            verified: false,
            cloned,
        })
    }

    /// Clone the chunk's range (when `--reflink` allows and this pair of
    /// filesystems has not refused) or else copy its bytes; true when cloned.
    fn chunk_data(
        &mut self,
        (src, out): (&OwnedFd, &OwnedFd),
        span: Span,
        (st, dst_dev): (&Stat, u64),
        tick: data::Tick,
    ) -> Result<bool, CopyError> {
        let sparse = sparse(st);
        let reflink = self.opts.reflink;
        let pair = (st.st_dev, dst_dev);
        let try_clone = reflink == data::Reflink::Always
            || (reflink == data::Reflink::Auto && !self.clone_refused.contains(&pair));
        // Chunk ranges are multiples of 1 MiB, or end at EOF: clonable.
        let mut cloned = false;
        if try_clone {
            match data::clone_range(out.as_fd(), src.as_fd(), span.offset, span.len) {
                Ok(()) => cloned = true,
                Err(e) if reflink == data::Reflink::Always => {
                    return Err(CopyError::io(
                        Op::CopyChunk,
                        io::Error::new(e.kind(), format!("cannot clone (--reflink=always): {e}")),
                    ))
                }
                Err(e) if data::clone_unsupported(&e) => self.clone_refused.push(pair),
                Err(e) => return Err(CopyError::io(Op::CopyChunk, e)),
            }
        }
        if !cloned {
            data::copy_span(
                src.as_fd(),
                out.as_fd(),
                (span.offset, span.len),
                (sparse, reflink == data::Reflink::Never),
                tick,
            )
            .map_err(CopyError::at(Op::CopyChunk))?;
        }
        Ok(cloned)
    }

    /// Every chunk of `rel` is in its shared temp `temp` (created mode 0600
    /// by the walk): check the source is still the version `file` the walk
    /// saw, finish the temp like any copy, and rename it into place. The
    /// temp is removed unless placed.
    pub fn place_chunked(&mut self, rel: &[u8], temp: &[u8], file: Stamp) -> Result<(), CopyError> {
        let r = self.try_place_chunked(rel, temp, file);
        if r.is_err() {
            self.discard(rel, temp);
        }
        r
    }

    fn try_place_chunked(&mut self, rel: &[u8], temp: &[u8], file: Stamp) -> Result<(), CopyError> {
        let (parent, name) = split_rel(rel);
        let (src, st) = self.open_source(parent, name)?;
        if Stamp::of(&st) != file {
            return Err(CopyError::Changed("source changed since the walk"));
        }
        let ddir = self
            .dst_dir
            .get(&self.dst_root, parent)
            .map_err(CopyError::at(Op::OpenDestDir))?;
        let out = rustix::fs::openat(
            ddir,
            temp,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .and_then(only_link)
        .map(File::from)
        .map_err(CopyError::at(Op::Place))?;
        let finish = Finish {
            op: Op::Place,
            chown: self.owner,
            chmod: true,
            exact_xattrs: true,
            fsync: self.opts.fsync,
            // Pre-sized by ftruncate before any chunk was written.
            datasync: true,
            verify: false,
        };
        finish_file(&src, &out, &st, name, &finish, &mut self.xattr_buf)?;
        close_checked(out).map_err(CopyError::at(Op::Place))?;
        rustix::fs::renameat(ddir, temp, ddir, name).map_err(CopyError::at(Op::Place))?;
        if self.opts.fsync {
            rustix::fs::fsync(ddir).map_err(CopyError::at(Op::Place))?;
        }
        Ok(())
    }

    /// Remove a large file's shared temp (best effort: a later run's stale
    /// temp cleanup removes anything left).
    pub fn discard(&mut self, rel: &[u8], temp: &[u8]) {
        let (parent, _) = split_rel(rel);
        if let Ok(dir) = self.dst_dir.get(&self.dst_root, parent) {
            let _ = rustix::fs::unlinkat(dir, temp, AtFlags::empty());
        }
    }
}

/// A large file's shared temp is opened by name: refuse it unless it is
/// still the walk's own file, a regular file with this one name (a hard
/// link planted in the destination mid-run would otherwise receive data).
fn only_link(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_nlink != 1
    {
        return Err(std::io::Error::other(
            "the shared temp is not a regular file with one link (changed by someone else)",
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::only_link;
    use std::os::fd::OwnedFd;

    #[test]
    fn a_shared_temp_with_a_second_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("temp");
        std::fs::write(&p, b"").unwrap();
        let open = || OwnedFd::from(std::fs::File::open(&p).unwrap());
        assert!(only_link(open()).is_ok());
        std::fs::hard_link(&p, t.path().join("planted")).unwrap();
        assert!(only_link(open()).is_err());
    }
}
