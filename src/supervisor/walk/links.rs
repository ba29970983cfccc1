//! Hard-link groups decided whole, after the walk: every name of an inode
//! the source has more than once is held back until all are known, then one
//! name (the leader) is handled as a file and the others become links to it.
//! The leader is a name whose destination already holds the current data,
//! when one does (so a new name of a group that is already in the
//! destination is linked, never copied again), else one whose destination
//! has a file to update, else the first name in byte order. Each other name's
//! fate is itemized here, against its own destination entry, as rsync does:
//! `hf+++++++++` for a new name, `hf` with the letters of what changes for a
//! name whose inode changes, spaces for an identical name split off.

use super::basis::Outcome;
use super::{content, DirJob, Entry, Shared, Walker};
use crate::copy::{open_beneath, open_src_dir, split_rel};
use crate::protocol::{DestDir, RelPath};
use crate::supervisor::changes::{Action, Change, Kind, Reasons};
use crate::util::escape_bytes;
use rustix::fs::{AtFlags, FileType, OFlags, Stat};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One name of a group, and whether the walk created its destination
/// directory.
pub(super) struct Name {
    pub rel: Vec<u8>,
    pub dir: DestDir,
}

/// The names found per source inode, with the inode's stat.
pub(super) type Groups = HashMap<(u64, u64), (Stat, Vec<Name>)>;

/// A name's directories, open: the source's and (if it exists) the
/// destination's.
struct Opened {
    src: OwnedFd,
    dst: Option<OwnedFd>,
    /// The basis directories' copies of it (none without bases), opened
    /// once for the leader choice and the name's own decision.
    basis: super::basis::BasisDirs,
}

impl Walker {
    /// Hold back a further name of a hard-linked inode (`true`), or let a
    /// singly linked entry through (`false`).
    pub(super) fn hold_link(&self, sh: &Shared, st: &Stat, rel: &[u8], dir: DestDir) -> bool {
        if st.st_nlink < 2 {
            return false;
        }
        let mut groups = super::lock(&sh.groups);
        let g = groups
            .entry((st.st_dev, st.st_ino))
            .or_insert_with(|| (*st, Vec::new()));
        g.1.push(Name {
            rel: rel.to_vec(),
            dir,
        });
        true
    }

    /// A name's directories; the source's must open (its error is the
    /// name's), the destination's need not exist.
    fn try_open_dirs(&self, rel: &[u8], dir: DestDir) -> std::io::Result<Opened> {
        let (parent, _) = split_rel(rel);
        let src = open_src_dir(&self.src_root, parent, self.opts.dereference)?;
        let dst = match (dir, &self.dst_root) {
            (DestDir::Created, _) | (_, None) => None,
            (_, Some(root)) => open_beneath(root, parent, OFlags::DIRECTORY | OFlags::RDONLY).ok(),
        };
        let basis = self.basis_dirs(parent);
        Ok(Opened { src, dst, basis })
    }

    /// `try_open_dirs`, a failure reported as the name's.
    fn open_dirs(&self, rel: &[u8], dir: DestDir) -> Option<Opened> {
        self.try_open_dirs(rel, dir)
            .map_err(|e| self.fail_io(rel, &format!("open source directory: {e}"), &e, false))
            .ok()
    }

    /// Decide every group: the leader through the usual per-entry path,
    /// the others recorded as links to it. `false` when the dispatcher is
    /// gone.
    pub(super) fn decide_groups(&self, sh: &Shared) -> bool {
        let groups = std::mem::take(&mut *super::lock(&sh.groups));
        let mut groups: Vec<(Stat, Vec<Name>)> = groups.into_values().collect();
        for g in &mut groups {
            g.1.sort_by(|x, y| flist_order(&x.rel, &y.rel));
        }
        groups.sort_by(|x, y| x.1[0].rel.cmp(&y.1[0].rel));
        // On the walk's threads: a tree made with `cp -al` holds back every
        // file, and one thread would then decide them all in a row.
        let queue = std::sync::Mutex::new(groups.into_iter());
        let work = || {
            let mut b = super::Batcher::new(self);
            loop {
                if sh.stop.load(Ordering::Relaxed) {
                    return false;
                }
                let next = super::lock(&queue).next();
                let Some((st, names)) = next else { break };
                let names = self.without_kept(&st, names);
                if !names.is_empty() && !self.decide_group(sh, &st, names, &mut b) {
                    return false;
                }
            }
            b.flush()
        };
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..self.opts.threads.max(1))
                .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
                .collect();
            let mine = work();
            // Every helper is joined, whatever the others say.
            let theirs: Vec<bool> = helpers
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect();
            mine && theirs.into_iter().all(|ok| ok)
        })
    }

    /// `-u`: a name whose destination is a newer file (with other data) is
    /// left as it is, like any file under -u, and is no part of the
    /// group's links: linking another name to it would give that name data
    /// the source does not have.
    fn without_kept(&self, st: &Stat, names: Vec<Name>) -> Vec<Name> {
        if !self.opts.update {
            return names;
        }
        let mut rest = Vec::with_capacity(names.len());
        for n in names {
            // Reported once, by decide_group's own open.
            let Ok(o) = self.try_open_dirs(&n.rel, n.dir) else {
                rest.push(n);
                continue;
            };
            let o = Some(o);
            let (_, name) = split_rel(&n.rel);
            let d = o
                .as_ref()
                .and_then(|o| o.dst.as_ref())
                .and_then(|d| rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW).ok());
            if self.newer_kept(st, d.as_ref())
                && !self.holds_current(st, &n, o.as_ref(), d.as_ref())
            {
                log::debug!(
                    "{}: newer at the destination (-u), kept",
                    escape_bytes(&n.rel)
                );
                self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
                self.found
                    .skipped_bytes
                    .fetch_add(st.st_size as u64, Ordering::Relaxed);
            } else {
                rest.push(n);
            }
        }
        rest
    }

    /// One group: its leader chosen and decided through the usual
    /// per-entry path, then each other name recorded as a link to it (or
    /// left, when it already is one). Long because both halves share
    /// the names' opened directories and destination stats.
    fn decide_group(
        &self,
        sh: &Shared,
        st: &Stat,
        names: Vec<Name>,
        b: &mut super::Batcher,
    ) -> bool {
        // A name whose source directory cannot be opened any more is
        // reported by open_dirs and left out; the others stay a group.
        let (names, opened): (Vec<Name>, Vec<Opened>) = names
            .into_iter()
            .filter_map(|n| self.open_dirs(&n.rel, n.dir).map(|o| (n, o)))
            .unzip();
        if names.is_empty() {
            return true;
        }
        let opened: Vec<Option<Opened>> = opened.into_iter().map(Some).collect();
        let dst_of = |i: usize| -> Option<Stat> {
            let d = opened[i].as_ref()?.dst.as_ref()?;
            let (_, name) = split_rel(&names[i].rel);
            rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW).ok()
        };
        let dsts: Vec<Option<Stat>> = (0..names.len()).map(dst_of).collect();
        let regular = |d: &Option<Stat>| {
            d.is_some_and(|d| FileType::from_raw_mode(d.st_mode) == FileType::RegularFile)
        };
        // Of the names holding the data, the one whose inode the most
        // names share already: the fewest links to remake.
        let sharing = |i: usize| {
            let id = dsts[i].map(|d| (d.st_dev, d.st_ino));
            dsts.iter()
                .filter(|d| d.map(|d| (d.st_dev, d.st_ino)) == id)
                .count()
        };
        // Once per name: under -c each answer reads both files whole.
        let current: Vec<bool> = (0..names.len())
            .map(|i| self.holds_current(st, &names[i], opened[i].as_ref(), dsts[i].as_ref()))
            .collect();
        // With basis directories the leader is rsync's: whether the group
        // is linked from a basis, copied from one or sent depends on it.
        // rsync goes through the names in file-list order; the first with
        // something to work from (a file at the destination, or a file in
        // a basis) is handled and the others follow it; with none, the last
        // name is sent. A name a basis leaves out (--compare-dest) leads
        // nothing: the choice is made again among the others.
        let rsyncs = |left: &[bool]| {
            let open: Vec<usize> = (0..names.len()).filter(|&i| !left[i]).collect();
            open.iter()
                .copied()
                .find(|&i| regular(&dsts[i]) || self.in_a_basis(&names[i].rel, opened[i].as_ref()))
                .or_else(|| open.last().copied())
        };
        let lead = if self.basis.is_some() {
            rsyncs(&vec![false; names.len()]).unwrap_or(0)
        } else {
            (0..names.len())
                .filter(|&i| current[i])
                .min_by_key(|&i| (std::cmp::Reverse(sharing(i)), i))
                .or_else(|| (0..names.len()).find(|&i| regular(&dsts[i])))
                .unwrap_or(0)
        };
        // The leader, as any other entry (quick check, -c, -u, a basis,
        // itemize). One a basis leaves out (--compare-dest) is no leader:
        // the next name is handled as if first, as in rsync.
        let mut lead = lead;
        let mut left = vec![false; names.len()];
        let outcome = loop {
            let Some(lo) = &opened[lead] else { return true };
            let (parent, name) = split_rel(&names[lead].rel);
            let job = DirJob {
                rel: parent.to_vec(),
                dir: names[lead].dir,
                ancestors: Arc::new(Vec::new()),
            };
            let e = Entry {
                name,
                rel: names[lead].rel.clone(),
                src: &lo.src,
                dst: lo.dst.as_ref(),
                leader: true,
                basis: &lo.basis,
                outcome: Default::default(),
            };
            if !self.entry(sh, &job, &e, b) {
                return false;
            }
            let outcome = e.outcome.get();
            if outcome != Some(Outcome::Left) {
                break outcome;
            }
            left[lead] = true;
            match rsyncs(&left) {
                Some(next) => lead = next,
                None => return true,
            }
        };
        let leader_dst = dsts[lead].map(|d| (d.st_dev, d.st_ino));
        // Whether the leader's destination inode stays: then names already
        // linked to it need nothing. Not when a basis link replaced it.
        let relinked_from_basis =
            matches!(outcome, Some(Outcome::Linked(id)) if Some(id) != leader_dst);
        let leader_stays = leader_dst.is_some()
            && !relinked_from_basis
            && (current[lead]
                || self.node_current(st, &names[lead], opened[lead].as_ref(), dsts[lead].as_ref())
                || self.newer_kept(st, dsts[lead].as_ref()));
        let leader = RelPath(names[lead].rel.clone());
        let size = if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
            st.st_size as u64
        } else {
            0
        };
        for (i, n) in names.iter().enumerate() {
            if i == lead || left[i] {
                continue;
            }
            let Some(o) = &opened[i] else { continue };
            let (_, name) = split_rel(&n.rel);
            let e = Entry {
                name,
                rel: n.rel.clone(),
                src: &o.src,
                dst: o.dst.as_ref(),
                leader: false,
                basis: &o.basis,
                outcome: Default::default(),
            };
            // --delete: a directory in the way of the link goes now, as
            // for any file (what --delete must keep stays, and the link
            // is not made).
            let is_dir = |d: &Stat| FileType::from_raw_mode(d.st_mode) == FileType::Directory;
            if dsts[i].as_ref().is_some_and(is_dir)
                && (!self.opts.delete || !self.clear_clash(&e, false))
            {
                if !self.opts.delete {
                    self.fail(
                        &n.rel,
                        "not linked: a directory is in the way (--delete replaces it)",
                        false,
                    );
                }
                continue;
            }
            let same_inode =
                leader_dst.is_some() && dsts[i].map(|d| (d.st_dev, d.st_ino)) == leader_dst;
            let relink = !(same_inode && leader_stays);
            if relink {
                self.note_link(&e, st, dsts[i].as_ref(), (&leader, outcome));
            }
            self.found.linked_bytes.fetch_add(size, Ordering::Relaxed);
            // A leader that stays is known good; one about to be copied is
            // checked at the end (its copy may fail).
            let stamp = (!leader_stays
                && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
                .then(|| crate::copy::Stamp::of(st));
            let mut out = super::lock(&sh.out);
            out.links.push(super::Link {
                name: RelPath(n.rel.clone()),
                leader: leader.clone(),
                stamp,
            });
            if relink {
                out.relinks += 1;
            }
        }
        true
    }

    /// Whether name `n`'s destination entry holds the source's data now
    /// (same type; a regular file by the quick check, or its content under
    /// `-c`; `-I` trusts none).
    fn holds_current(&self, st: &Stat, n: &Name, o: Option<&Opened>, dst: Option<&Stat>) -> bool {
        let (Some(o), Some(d)) = (o, dst) else {
            return false;
        };
        if n.dir != DestDir::Existing
            || (self.opts.ignore_times && !self.opts.checksum)
            || FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
            || FileType::from_raw_mode(d.st_mode) != FileType::RegularFile
            || d.st_size != st.st_size
        {
            return false;
        }
        if let Some(since) = self.opts.unverified_since {
            if crate::supervisor::recovery::unverified(d, since) {
                return false;
            }
        }
        if self.opts.checksum {
            let (_, name) = split_rel(&n.rel);
            return content::same_file((&o.src, o.dst.as_ref()), name, st, self.opts.dereference);
        }
        (d.st_mtime, d.st_mtime_nsec) == (st.st_mtime, st.st_mtime_nsec)
    }

    /// A symlink, FIFO or device whose destination has its type and its
    /// target or device number: kept in place (its attributes repaired),
    /// as `data_current` decides for any such entry.
    fn node_current(&self, st: &Stat, n: &Name, o: Option<&Opened>, dst: Option<&Stat>) -> bool {
        let ft = FileType::from_raw_mode(st.st_mode);
        let (Some(o), Some(d), DestDir::Existing) = (o, dst, n.dir) else {
            return false;
        };
        if ft == FileType::RegularFile || FileType::from_raw_mode(d.st_mode) != ft {
            return false;
        }
        if ft != FileType::Symlink {
            return d.st_rdev == st.st_rdev;
        }
        let (_, name) = split_rel(&n.rel);
        let read = |dir: &OwnedFd| rustix::fs::readlinkat(dir, name, Vec::new()).ok();
        let t = read(&o.src);
        t.is_some() && o.dst.as_ref().and_then(read) == t
    }

    /// Whether a basis directory has a regular file at `rel`.
    fn in_a_basis(&self, rel: &[u8], o: Option<&Opened>) -> bool {
        let (_, name) = split_rel(rel);
        o.iter().flat_map(|o| o.basis.iter().flatten()).any(|d| {
            rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|b| FileType::from_raw_mode(b.st_mode) == FileType::RegularFile)
        })
    }

    /// `-u` keeps a newer regular file at the destination.
    fn newer_kept(&self, st: &Stat, dst: Option<&Stat>) -> bool {
        self.opts.update
            && dst.is_some_and(|d| {
                FileType::from_raw_mode(d.st_mode) == FileType::RegularFile
                    && (d.st_mtime, d.st_mtime_nsec) > (st.st_mtime, st.st_mtime_nsec)
            })
    }

    /// The `-i` record of a name that becomes a link to `leader` (again:
    /// a name of an inode that stays is not itemized, as in rsync's real
    /// run).
    fn note_link(
        &self,
        e: &Entry,
        st: &Stat,
        dst: Option<&Stat>,
        (leader, outcome): (&RelPath, Option<Outcome>),
    ) {
        if !self.changes.on() {
            return;
        }
        let kind = Kind::of(FileType::from_raw_mode(st.st_mode));
        let existing = dst.filter(|d| Kind::of(FileType::from_raw_mode(d.st_mode)) == kind);
        let basis = match existing {
            None => self.basis_link_note(e, st, outcome),
            Some(_) => None,
        };
        let (action, reasons) = match (existing, basis) {
            // The basis's own name of the inode the leader was linked
            // from: rsync is silent under -i.
            (None, Some(None)) => (Action::LinkedFromBasis, Reasons::default()),
            (None, Some(Some(r))) => (Action::Repaired, r),
            (None, None) => (Action::Created, Reasons::default()),
            (Some(d), _) => {
                let r = Reasons {
                    size: kind == Kind::File && d.st_size != st.st_size,
                    mtime: (d.st_mtime, d.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec),
                    ..Reasons::default()
                };
                (Action::Repaired, self.attribute_reasons(e, st, d, r))
            }
        };
        self.changes.record(&Change {
            rel: &e.rel,
            kind,
            action: match action {
                Action::Created => Action::Linked,
                Action::LinkedFromBasis => action,
                _ => Action::Relinked,
            },
            reasons,
            size: None,
            target: Some(&leader.0),
        });
    }
}

/// rsync's file-list order, in which it goes through a hard-link group's
/// names: a directory's own entries before anything in its subdirectories
/// (incremental recursion sends each directory's list whole), directories
/// depth first by name. So `f` comes before `b/h`, and `b/z/k` before `c/m`.
fn flist_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let (pa, na) = split_rel(a);
    let (pb, nb) = split_rel(b);
    let parts = |p: &'_ [u8]| -> Vec<Vec<u8>> {
        if p.is_empty() {
            Vec::new()
        } else {
            // Each directory as rsync's f_name_cmp sees it, with its
            // slash: `a-b/` sorts before `a/`.
            p.split(|&c| c == b'/')
                .map(|c| [c, b"/"].concat())
                .collect()
        }
    };
    parts(pa).cmp(&parts(pb)).then_with(|| na.cmp(nb))
}

#[cfg(test)]
mod tests {
    use super::flist_order;
    use std::cmp::Ordering::Less;

    #[test]
    fn a_directorys_own_names_come_before_its_subdirectories() {
        assert_eq!(flist_order(b"f", b"b/h"), Less);
        assert_eq!(flist_order(b"b/z/k", b"c/m"), Less);
        assert_eq!(flist_order(b"b/k", b"b/a/x"), Less);
        assert_eq!(flist_order(b"a/x", b"a/y"), Less);
        assert_eq!(flist_order(b"a-b/x", b"a/y"), Less);
    }
}
