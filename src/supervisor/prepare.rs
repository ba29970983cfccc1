//! Checks made before anything is written, then the destination root: the
//! source must be a directory; the destination must be neither the source
//! nor inside it (decided by device and inode, so symlinked and bind-mounted
//! aliases are caught); the destination is created and locked so a second
//! run into it refuses instead of racing.

use crate::error::{Error, Result};
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The opened source root, the opened and locked destination root. Every
/// later access of either tree, in the supervisor or in any worker, goes
/// through these descriptors (or dups of them): a root renamed or replaced
/// by a symlink during the run is never followed.
pub struct Roots {
    /// Canonical paths, for messages only.
    pub source: PathBuf,
    pub destination: PathBuf,
    pub src_fd: OwnedFd,
    /// Held for the whole run: its flock is the one-run-per-destination lock.
    /// None only in a dry run whose destination does not exist.
    pub dst_fd: Option<OwnedFd>,
    /// The destination did not exist before this run.
    pub created: bool,
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(p, e.into()))
}

pub fn prepare(s: &crate::config::Settings) -> Result<Roots> {
    let roots = open_and_lock(&s.source, &s.destination, s.dry_run, s.mkpath)?;
    if s.delete {
        check_delete(&roots, s.allow_empty_source || s.files_from.is_some())?;
    }
    Ok(roots)
}

/// `--delete` guards, before anything is written: a source inside the
/// destination would delete itself (rsync does; pcopy refuses, as it
/// refuses the other nesting), and an empty source root (a mount point
/// that is not mounted tonight) would wipe the mirror.
fn check_delete(r: &Roots, allow_empty: bool) -> Result<()> {
    let Some(dst_fd) = &r.dst_fd else {
        return Ok(());
    };
    let d = rustix::fs::fstat(dst_fd).map_err(|e| Error::io(&r.destination, e.into()))?;
    let is_dst =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == (d.st_dev, d.st_ino));
    if r.source.ancestors().skip(1).any(is_dst) {
        return Err(Error::Usage(format!(
            "{}: the source is inside the destination {}; --delete would delete the source itself",
            r.source.display(),
            r.destination.display()
        )));
    }
    let has_entries = |fd: &OwnedFd, p: &Path| -> Result<bool> {
        let dir = rustix::fs::Dir::read_from(fd).map_err(|e| Error::io(p, e.into()))?;
        for ent in dir {
            let ent = ent.map_err(|e| Error::io(p, e.into()))?;
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." && crate::copy::temp::parse(name).is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if !allow_empty && !has_entries(&r.src_fd, &r.source)? && has_entries(dst_fd, &r.destination)? {
        return Err(Error::Refused(format!(
            "refusing --delete: the source {} is empty but the destination {} is not \
             (is the source mounted?); --allow-empty-source mirrors an empty source",
            r.source.display(),
            r.destination.display()
        )));
    }
    Ok(())
}

fn open_and_lock(source: &Path, destination: &Path, dry_run: bool, mkpath: bool) -> Result<Roots> {
    check_kinds(source, destination)?;
    let src_fd = open_dir(source)?;
    let sst = rustix::fs::fstat(&src_fd).map_err(|e| Error::io(source, e.into()))?;
    let source = std::fs::canonicalize(source).map_err(|e| Error::io(source, e))?;
    check_not_inside(&source, (sst.st_dev, sst.st_ino), destination)?;
    let created = !destination.exists();
    if dry_run && created {
        // The real run's refusal, predicted.
        missing_parent(destination, mkpath)?;
        return Ok(not_yet(source, destination, src_fd));
    }
    if created {
        create_root(destination, mkpath)?;
    }
    let destination = std::fs::canonicalize(destination).map_err(|e| Error::io(destination, e))?;
    let dst_fd = open_dir(&destination)?;
    // Re-checked on the descriptor itself: the path may have changed since.
    let dst = rustix::fs::fstat(&dst_fd).map_err(|e| Error::io(&destination, e.into()))?;
    if (dst.st_dev, dst.st_ino) == (sst.st_dev, sst.st_ino) {
        return Err(Error::Fatal(format!(
            "{}: source and destination are the same directory",
            destination.display()
        )));
    }
    // A finished run's durability child holds the lock for the moment it
    // takes to remove its marker (`recovery`): waited for, briefly; a run
    // still going is not.
    let mut tries = 0;
    let locked = loop {
        match rustix::fs::flock(&dst_fd, FlockOperation::NonBlockingLockExclusive) {
            Err(rustix::io::Errno::WOULDBLOCK) if tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r,
        }
    };
    match locked {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            return Err(Error::Locked(format!(
                "{}: destination is in use by another pcopy run (retry when it has finished)",
                destination.display()
            )))
        }
        Err(e) => return Err(Error::io(&destination, e.into())),
    }
    Ok(Roots {
        source,
        destination,
        src_fd,
        dst_fd: Some(dst_fd),
        created,
    })
}

/// A dry run whose destination does not exist yet: nothing to open there.
fn not_yet(source: PathBuf, destination: &Path, src_fd: OwnedFd) -> Roots {
    Roots {
        source,
        destination: destination.to_path_buf(),
        src_fd,
        dst_fd: None,
        created: true,
    }
}

/// Under MPI, every rank but 0: open the roots rank 0 has validated,
/// created and locked (`created`: it did not exist before this run).
pub fn open_roots(
    source: &Path,
    destination: &Path,
    dry_run: bool,
    created: bool,
) -> Result<Roots> {
    let src_fd = open_dir(source)?;
    let source = std::fs::canonicalize(source).map_err(|e| Error::io(source, e))?;
    if dry_run && created {
        return Ok(not_yet(source, destination, src_fd));
    }
    let destination = std::fs::canonicalize(destination).map_err(|e| Error::io(destination, e))?;
    let dst_fd = open_dir(&destination)?;
    Ok(Roots {
        source,
        destination,
        src_fd,
        dst_fd: Some(dst_fd),
        created,
    })
}

/// Say in one line what is wrong with the two paths before any error number
/// would: pcopy copies a directory's contents into a directory.
fn check_kinds(source: &Path, destination: &Path) -> Result<()> {
    match std::fs::metadata(source) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "{}: the source does not exist",
                source.display()
            )))
        }
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!(
                "{}: the source is not a directory; pcopy copies a directory's contents (for one file, use cp)",
                source.display()
            )))
        }
        _ => {}
    }
    if let Ok(m) = std::fs::metadata(destination) {
        if !m.is_dir() {
            return Err(Error::Usage(format!(
                "{}: the destination exists and is not a directory; give a directory (it is created if missing)",
                destination.display()
            )));
        }
    }
    Ok(())
}

/// Create the destination directory owner-only, like every directory a run
/// creates (its real mode is applied last). Its parent must exist unless
/// `--mkpath`: a mistyped mount point must not fill the filesystem above it.
fn create_root(destination: &Path, mkpath: bool) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = missing_parent(destination, mkpath)? {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(destination) {
        Ok(()) => Ok(()),
        // Created meanwhile (a race with another process): the lock and the
        // same-directory checks below still apply.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(destination, e)),
    }
}

/// The destination's parent when it does not exist and `--mkpath` may
/// create it; without `--mkpath` its absence is a usage error.
fn missing_parent(destination: &Path, mkpath: bool) -> Result<Option<&Path>> {
    let parent = destination
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if parent.exists() {
        return Ok(None);
    }
    if !mkpath {
        return Err(Error::Usage(format!(
            "{}: the destination's parent {} does not exist (check the path, or use --mkpath to create it)",
            destination.display(),
            parent.display()
        )));
    }
    Ok(Some(parent))
}

/// Refuse a destination equal to the source or below it. Walks up from the
/// nearest existing ancestor of `dst` comparing (dev, ino) with the source.
fn check_not_inside(src: &Path, id: (u64, u64), dst: &Path) -> Result<()> {
    let mut probe = Some(dst);
    let existing = loop {
        match probe {
            Some(p) if p.as_os_str().is_empty() => break PathBuf::from("."),
            Some(p) if p.exists() => break p.to_path_buf(),
            Some(p) => probe = p.parent(),
            None => break PathBuf::from("."),
        }
    };
    let existing = std::fs::canonicalize(&existing).map_err(|e| Error::io(&existing, e))?;
    let is_src = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.dev(), m.ino()) == id)
            .unwrap_or(false)
    };
    if dst.exists() && is_src(dst) {
        return Err(Error::Fatal(format!(
            "{}: source and destination are the same directory",
            dst.display()
        )));
    }
    if existing.ancestors().any(is_src) {
        return Err(Error::Fatal(format!(
            "{}: destination is inside the source {} (cannot copy a directory into itself)",
            dst.display(),
            src.display()
        )));
    }
    Ok(())
}
