//! The last phase, after every worker is done: hard links between files that
//! are now in place, then directory modes and times deepest-first (creating
//! entries changes a directory's mtime, and a read-only directory would stop
//! its own children from being written).

use crate::copy::attrs::Attrs;
use crate::copy::Preserve;
use crate::copy::{open_beneath, split_rel, temp};
use crate::stats::{Failed, Paths, Summary};
use crate::work::{DirMeta, Link};
use rustix::fs::{AtFlags, OFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

fn dir(root: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    open_beneath(root, rel, OFlags::DIRECTORY | OFlags::RDONLY)
}

/// Make `link` a hard link to the already placed `first`. Atomic: link to a
/// temp name, then rename over whatever is there.
/// How names in the way of a link are treated.
pub struct LinkRules<'a> {
    /// `-u`: a regular file newer than the linked inode is kept.
    pub update: bool,
    /// `--backup-dir`: what a link replaces is kept there first.
    pub deleter: &'a super::delete::Deleter,
}

fn link_one(
    root: &OwnedFd,
    l: &Link,
    (run_id, seq): (u64, u64),
    rules: &LinkRules,
) -> io::Result<bool> {
    let (link, first) = (&l.name.0[..], &l.leader.0[..]);
    let (fp, fname) = split_rel(first);
    let (lp, lname) = split_rel(link);
    let fdir = dir(root, fp)?;
    let ldir = dir(root, lp)?;
    let fst = rustix::fs::statat(&fdir, fname, AtFlags::SYMLINK_NOFOLLOW)?;
    let existing = rustix::fs::statat(&ldir, lname, AtFlags::SYMLINK_NOFOLLOW).ok();
    if let Some(lst) = &existing {
        if (lst.st_dev, lst.st_ino) == (fst.st_dev, fst.st_ino) {
            return Ok(false);
        }
        // The first name carries the source's mtime: under -u a newer
        // file in the link's place is someone's newer data, kept.
        let file = |st: &rustix::fs::Stat| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        };
        if rules.update
            && file(lst)
            && file(&fst)
            && (lst.st_mtime, lst.st_mtime_nsec) > (fst.st_mtime, fst.st_mtime_nsec)
        {
            return Ok(false);
        }
    }
    // Before anything in the name's place is touched (backed up): a leader
    // whose copy failed gets no links.
    if l.stamp.is_some_and(|s| crate::copy::Stamp::of(&fst) != s) {
        return Err(io::Error::other(format!(
            "not linked: {} was not copied by this run (its copy is not the source's)",
            crate::util::escape_bytes(first)
        )));
    }
    if existing.is_some() {
        rules.deleter.back_up(ldir.as_fd(), lname, link)?;
    }
    let tmp = temp::link(run_id, seq);
    rustix::fs::linkat(&fdir, fname, &ldir, &tmp[..], AtFlags::empty())?;
    if let Err(e) = rustix::fs::renameat(&ldir, &tmp[..], &ldir, lname) {
        let _ = rustix::fs::unlinkat(&ldir, &tmp[..], AtFlags::empty());
        return Err(e.into());
    }
    Ok(true)
}

pub fn hard_links(
    root: &OwnedFd,
    links: &[Link],
    (run_id, rank): (u64, u32),
    rules: &LinkRules,
    paths: &Paths,
    sm: &mut Summary,
) {
    for (seq, l) in links.iter().enumerate() {
        let seq = temp::writer(rank, seq as u64);
        let (link, first) = (&l.name, &l.leader);
        match link_one(root, l, (run_id, seq), rules) {
            // Itemized by the walk, when it decided the group.
            Ok(true) => sm.hardlinks_created += 1,
            Ok(false) => sm.files_skipped += 1,
            Err(e) => sm.fail_kind(
                Failed::File,
                crate::stats::io_kind(&e),
                paths.destination(&link.0),
                format!("hard link to {}: {e}", first.display()),
            ),
        }
    }
}

/// Extended attributes of a source directory onto its copy (best effort).
fn dir_xattrs(src_root: &OwnedFd, rel: &[u8], dst: &File, follow: bool, buf: &mut Vec<u8>) {
    let shown = || format!("{}/", crate::util::escape_bytes(rel));
    match crate::copy::open_src_dir(src_root, rel, follow) {
        Ok(src) => crate::copy::xattrs::copy_or_warn(src.as_fd(), dst.as_fd(), buf, shown, true),
        // The walk has reported the directory it could not read.
        Err(e) => log::debug!("{}: extended attributes not copied: {e}", shown()),
    }
}

/// How directories get their attributes: through symlinks in the source
/// (`-L`) or not, and what of ownership the run keeps.
#[derive(Clone, Copy)]
pub struct DirRules {
    pub follow: bool,
    pub preserve: Preserve,
}

fn dir_failed(sm: &mut Summary, paths: &Paths, rel: &[u8], e: io::Error) {
    sm.fail_kind(
        Failed::Dir,
        crate::stats::io_kind(&e),
        paths.destination(rel),
        format!("set directory attributes: {e}"),
    )
}

/// Apply the attributes of `dirs` (deepest first), one depth at a time,
/// each depth spread over threads: a directory's attributes never change
/// its parent's, so only the order between depths matters (a parent made
/// read-only first would shut out its children). On one thread this was the
/// idle tail of a copy (3,253 directories of /usr/share: 33 ms of CPU while
/// every worker had finished) and, behind a 0.5 ms-per-operation
/// destination, most of the run (28.1 s, now 9.7 s). Threads as for the
/// walk, so a latency-bound destination keeps several round trips in flight.
pub fn some_dirs<'a>(
    root: &OwnedFd,
    dirs: impl Iterator<Item = &'a DirMeta>,
    src_root: &OwnedFd,
    rules: DirRules,
    paths: &Paths,
    sm: &mut Summary,
) {
    let dirs: Vec<&DirMeta> = dirs.collect();
    let threads = crate::work::io_threads();
    let mut failures = Vec::new();
    for level in dirs.chunk_by(|a, b| a.depth() == b.depth()) {
        // A thread costs about what 3 directories do on tmpfs.
        let per = level.len().div_ceil(threads).max(8);
        std::thread::scope(|s| {
            let mut parts = level.chunks(per);
            let first = parts.next();
            let mut others = Vec::new();
            for part in parts {
                let run = move || apply(root, part, src_root, rules);
                // A thread the system refuses (thread limit): this share
                // is done here, in order.
                match std::thread::Builder::new().spawn_scoped(s, run) {
                    Ok(t) => others.push((part, t)),
                    Err(_) => failures.extend(apply(root, part, src_root, rules)),
                }
            }
            failures.extend(first.map_or_else(Vec::new, |p| apply(root, p, src_root, rules)));
            for (part, t) in others {
                match t.join() {
                    Ok(f) => failures.extend(f),
                    // Not expected; then none of its directories is known
                    // to be set, and each is reported.
                    Err(_) => failures.extend(
                        part.iter()
                            .map(|d| (&d.rel[..], io::Error::other("attribute thread panicked"))),
                    ),
                }
            }
        });
    }
    for (rel, e) in failures {
        dir_failed(sm, paths, rel, e);
    }
}

/// One thread's share of a depth: the directories that could not be set.
fn apply<'a>(
    root: &OwnedFd,
    dirs: &[&'a DirMeta],
    src_root: &OwnedFd,
    rules: DirRules,
) -> Vec<(&'a [u8], io::Error)> {
    let owner = rules.preserve.owner;
    let mut buf = Vec::new();
    let mut failed = Vec::new();
    for d in dirs {
        let r = dir(root, &d.rel).and_then(|fd| {
            let fd = File::from(fd);
            dir_xattrs(src_root, &d.rel, &fd, rules.follow, &mut buf);
            d.attrs.apply_fd(&fd, owner)
        });
        if let Err(e) = r {
            failed.push((&d.rel[..], e));
        }
    }
    failed
}

/// With `--files-from` not sending the root (`walk::sends_root`), rsync
/// leaves it alone: a root this run created keeps the default mode (0777
/// less the umask; pcopy made it 0700 to work in), an existing one the mode
/// it had before the walk opened it up (`before`, `dest::open_up`).
pub fn root_unsent(
    root: &OwnedFd,
    created: bool,
    before: Option<u32>,
    paths: &Paths,
    sm: &mut Summary,
) {
    let mode = if created {
        // Read by setting it back at once: nothing else of this process
        // creates files now (the walk is over; workers are processes).
        let mask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(mask);
        0o777 & !mask.bits()
    } else {
        match before {
            Some(m) => m,
            None => return,
        }
    };
    if rustix::fs::fstat(root).is_ok_and(|st| st.st_mode & 0o7777 == mode) {
        return;
    }
    if let Err(e) = rustix::fs::fchmod(root, rustix::fs::Mode::from_raw_mode(mode)) {
        dir_failed(sm, paths, b"", e.into());
    }
}

/// The root's own attributes (last: its mtime must survive every change
/// below it).
pub fn root_attrs(
    root: &OwnedFd,
    src_root: &OwnedFd,
    rules: DirRules,
    paths: &Paths,
    sm: &mut Summary,
) {
    let mut failed = |rel: &[u8], e: io::Error| dir_failed(sm, paths, rel, e);
    let owner = rules.preserve.owner;
    let mut buf = Vec::new();
    let root = match root.try_clone() {
        Ok(fd) => File::from(fd),
        Err(e) => return failed(b"", e),
    };
    dir_xattrs(src_root, b"", &root, rules.follow, &mut buf);
    let r = rustix::fs::fstat(src_root)
        .map_err(io::Error::from)
        .and_then(|st| Attrs::from_stat(&st).apply_fd(&root, owner));
    if let Err(e) = r {
        failed(b"", e);
    }
}
