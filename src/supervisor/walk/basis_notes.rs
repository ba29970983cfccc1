//! What `-i` and `--json-lines` say of an entry a basis directory had a
//! say in, as rsync itemizes it: against the basis entry (its `c` for a
//! local copy, the letters of what differs), silent for an exact match
//! under `--link-dest`, and a hard-link group's other names against the
//! basis's (hlink.c's hard_link_check).

use super::basis::{Level, Match, Outcome};
use super::*;
use crate::config::BasisKind;

impl Walker {
    /// `-i` for an entry copied or created with a basis entry of its type
    /// (rsync itemizes against that entry): a regular file with other data
    /// as an update (`>f.st......`), one with the same data but other
    /// attributes as a local copy (`cf...p.....`), other types as created
    /// locally with what differs (`cL..t......`).
    pub(super) fn note_against_basis(&self, e: &Entry, st: &Stat, ft: FileType, m: &Match) {
        if !self.changes.on() {
            return;
        }
        let Some(Some(dir)) = e.basis.get(m.j) else {
            return;
        };
        let kind = Kind::of(ft);
        let target = (ft == FileType::Symlink)
            .then(|| rustix::fs::readlinkat(e.src, e.name, Vec::new()).ok())
            .flatten();
        let r = Reasons {
            size: kind == Kind::File && m.st.st_size != st.st_size,
            mtime: (m.st.st_mtime, m.st.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec),
            // rsync: `c` on a transferred file under -c (not on a local
            // copy of the same data), and on every symlink, FIFO or device
            // created against a basis entry (ITEM_REPORT_CHANGE there).
            content: if kind == Kind::File {
                self.opts.checksum && m.level == Level::Type
            } else {
                kind != Kind::Dir
            },
            ..Reasons::default()
        };
        let r = self.reasons_against(dir, e, st, &m.st, r);
        let action = if kind == Kind::File && m.level == Level::Type {
            Action::Updated
        } else {
            Action::CopiedFromBasis
        };
        self.changes.record(&Change {
            rel: &e.rel,
            kind,
            action,
            reasons: r,
            size: (kind == Kind::File).then_some(st.st_size as u64),
            target: target.as_ref().map(|t| t.as_bytes()),
        });
    }

    /// `-i` for a directory this run creates, when a basis has it (rsync
    /// itemizes against the basis's): `None` when none does, `Some(None)`
    /// when nothing differs (no line), else what differs (`cd..t......`).
    pub(super) fn basis_dir_note(&self, e: &Entry, st: &Stat) -> Option<Option<Reasons>> {
        self.basis.as_ref()?;
        let m = self.find(e, st, FileType::Directory)?;
        if m.level == Level::Exact {
            return Some(None);
        }
        let Some(Some(dir)) = e.basis.get(m.j) else {
            return None;
        };
        let r = Reasons {
            mtime: (m.st.st_mtime, m.st.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec),
            ..Reasons::default()
        };
        let r = self.reasons_against(dir, e, st, &m.st, r);
        Some(Some(r))
    }

    /// `basis_dir_note` for the destination root this run creates: none
    /// when a basis root has the source root's mode, owner and group (as
    /// root) and mtime, else what differs from the first basis root.
    pub(super) fn basis_root_note(&self, src: &Stat) -> Option<Reasons> {
        let b = self.basis.as_ref()?;
        let against = |d: &Stat| self.root_reasons(src, d);
        let roots: Vec<Stat> = b
            .roots
            .iter()
            .filter_map(|r| rustix::fs::fstat(r).ok())
            .collect();
        if roots.iter().any(|d| !against(d).any()) {
            return Some(Reasons::default());
        }
        roots.first().map(against)
    }

    /// The `-i` record of hard-link group member `e` that the destination
    /// lacks, when a basis has that name (rsync's hard_link_check): under
    /// `--link-dest` a basis name of the inode the leader was linked from
    /// is not reported; otherwise a basis file with the same data is what
    /// the name is itemized against (`hf` and what differs, or spaces).
    /// `None`: no basis has a say, itemize as usual.
    pub(super) fn basis_link_note(
        &self,
        e: &Entry,
        st: &Stat,
        leader: Option<Outcome>,
    ) -> Option<Option<Reasons>> {
        let b = self.basis.as_ref()?;
        let ft = FileType::from_raw_mode(st.st_mode);
        // hard_link_check: the last basis entry stat'ed is what the name is
        // compared with, once one had the same data; the search ends at the
        // first with the same attributes too.
        let mut last: Option<(&OwnedFd, Stat)> = None;
        let mut matched = false;
        for dir in e.basis.iter() {
            let Some(dir) = dir else { continue };
            let Ok(bst) = rustix::fs::statat(dir, e.name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            last = Some((dir, bst));
            if b.kind == BasisKind::Link {
                if leader == Some(Outcome::Linked((bst.st_dev, bst.st_ino))) {
                    return Some(None);
                }
                continue;
            }
            if ft != FileType::RegularFile
                || FileType::from_raw_mode(bst.st_mode) != ft
                || !self.same_data(e, st, ft, dir, &bst)
            {
                continue;
            }
            matched = true;
            if self.same_attrs(e, st, dir, &bst) {
                break;
            }
        }
        let (dir, bst) = last.filter(|_| matched)?;
        let r = Reasons {
            mtime: (bst.st_mtime, bst.st_mtime_nsec) != (st.st_mtime, st.st_mtime_nsec),
            ..Reasons::default()
        };
        let r = self.reasons_against(dir, e, st, &bst, r);
        Some(Some(r))
    }
}
