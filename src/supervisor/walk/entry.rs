//! One entry of a source directory: a directory is created (or checked)
//! and queued as a job, anything else goes through the per-entry decision
//! (hard-link groups, a basis, `-u`, `-c`, the quick check) and, when it
//! must be placed, into a batch.

use super::*;

impl Walker {
    pub(super) fn entry(&self, sh: &Shared, job: &DirJob, e: &Entry, b: &mut Batcher) -> bool {
        let follow = if self.opts.dereference {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let st = match rustix::fs::statat(e.src, e.name, follow) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) if self.opts.dereference => {
                self.fail(&e.rel, "dangling symlink (not followed)", false);
                return true;
            }
            Err(rustix::io::Errno::NOENT) => {
                self.vanished(&e.rel, false);
                return true;
            }
            Err(err) => {
                let err = std::io::Error::from(err);
                self.fail_io(&e.rel, &err.to_string(), &err, false);
                return true;
            }
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if self.filter.excluded(&e.rel, ft == FileType::Directory) {
            let _ = self.events.send(WalkEvent::Excluded);
            return true;
        }
        if ft == FileType::Directory {
            self.dir_entry(sh, job, e, &st);
            return true;
        }
        self.file_entry(sh, job, e, &st, ft, b)
    }

    /// Long because the directory's steps (filter, clash, mkdir, -i, attributes, the job) share one opened parent and one stat.
    pub(super) fn dir_entry(&self, sh: &Shared, job: &DirJob, e: &Entry, st: &Stat) {
        let id = (st.st_dev, st.st_ino);
        if self.opts.dereference && job.ancestors.contains(&id) {
            self.fail(
                &e.rel,
                "filesystem loop: a symlink leads back to an ancestor directory (skipped)",
                true,
            );
            return;
        }
        // Destination full: only count, but keep the attributes of a
        // directory that exists (it may hold files copied before).
        let counting = !self.opts.dry_run && self.found.no_space();
        let exists = counting && dest::peek_dir(e.dst, e.name);
        if self.opts.delete && !counting && !self.clear_clash(e, true) {
            return;
        }
        // As found, before make_dir gives the owner rwx to write inside:
        // what -i reports and the repair counts compare with this.
        let before = e
            .dst
            .and_then(|d| rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW).ok());
        let created = if self.opts.dry_run {
            !dest::peek_dir(e.dst, e.name)
        } else if counting {
            false
        } else {
            let Some(parent) = e.dst else { return };
            match dest::make_dir(parent, e.name) {
                Ok((_, created)) => created,
                Err(err) if crate::util::is_no_space(&err) => {
                    self.found.no_space.store(true, Ordering::Relaxed);
                    let _ = self.events.send(WalkEvent::NoSpace {
                        path: self.paths.destination(&e.rel),
                        msg: format!("create directory: {err}"),
                    });
                    return self.dir_entry(sh, job, e, st);
                }
                Err(err) => {
                    // A destination-side failure: name the destination path.
                    let _ = self.events.send(WalkEvent::Failed {
                        path: self.paths.destination(&e.rel),
                        msg: format!("create directory: {err}"),
                        what: Failed::Dir,
                        kind: crate::stats::io_kind(&err),
                    });
                    return;
                }
            }
        };
        if created {
            let _ = self.events.send(WalkEvent::DirCreated);
        }
        if !counting {
            self.note_dir(e, st, created, before);
        }
        if !counting || exists {
            lock(&sh.out).dirs.push(DirMeta {
                rel: e.rel.clone(),
                attrs: Attrs::from_stat(st),
            });
        }
        if self.opts.one_file_system && st.st_dev != self.root_dev {
            // -x: the mount point is created, its contents are not walked.
            return;
        }
        let ancestors = if self.opts.dereference {
            let mut a = (*job.ancestors).clone();
            a.push(id);
            Arc::new(a)
        } else {
            Arc::clone(&job.ancestors)
        };
        if self.opts.files_from.is_some() {
            // --files-from: listed directories are not descended into.
            return;
        }
        self.jobs.push(Job::Dir(DirJob {
            rel: e.rel.clone(),
            dir: if created {
                DestDir::Created
            } else {
                DestDir::Existing
            },
            ancestors,
        }));
    }

    /// A non-directory entry: the one decision for it, in rsync's order
    /// (another rank's inode, a hard-link group, a basis, `-u`, `-c`, the
    /// quick check, a type clash, `--backup-dir`, `-i`, the dry run, a
    /// batch). Long because each step returns early, so read top to
    /// bottom it is that order.
    pub(super) fn file_entry(
        &self,
        sh: &Shared,
        job: &DirJob,
        e: &Entry,
        st: &Stat,
        ft: FileType,
        b: &mut Batcher,
    ) -> bool {
        let size = if ft == FileType::RegularFile {
            st.st_size as u64
        } else {
            0
        };
        if !e.leader {
            if ft != FileType::Socket && self.foreign(st, e, job) {
                return true;
            }
            self.found.files.fetch_add(1, Ordering::Relaxed);
            self.found.bytes.fetch_add(size, Ordering::Relaxed);
        }
        if !self.quarantined.is_empty() && self.quarantined.contains(&e.rel) {
            let msg =
                "quarantined: it crashed workers in an earlier run (the log names the list to delete to retry)";
            self.fail_kind(&e.rel, msg, false, "quarantined");
            return true;
        }
        let rel = RelPath(e.rel.clone());
        if ft != FileType::Socket && !e.leader && self.hold_link(sh, st, &e.rel, job.dir) {
            return true;
        }
        let dst_st = match (job.dir, e.dst, &self.basis) {
            (DestDir::Existing, Some(d), Some(_)) => {
                rustix::fs::statat(d, e.name, AtFlags::SYMLINK_NOFOLLOW).ok()
            }
            _ => None,
        };
        // What a basis directory decides comes first, as in rsync.
        let (against, from) = match self.basis_decide(e, st, ft, dst_st.as_ref()) {
            basis::Decision::Done => return true,
            basis::Decision::Usual => (None, None),
            basis::Decision::Copy { note, from } => (Some(note), from),
        };
        if ft == FileType::RegularFile
            && job.dir == DestDir::Existing
            && (self.opts.checksum || self.opts.ignore_times || self.opts.dry_run)
            && self.newer_at_destination(e, st)
        {
            // -u keeps a newer destination file whatever else would compare
            // (-c, -I) and in a dry run too, as rsync does: one skip, counted
            // where the quick check counts its own.
            self.found.skipped_files.fetch_add(1, Ordering::Relaxed);
            self.found.skipped_bytes.fetch_add(size, Ordering::Relaxed);
            return true;
        }
        // -c: the content decides, here, once, for every output.
        // (-c before -I, as in rsync's quick_check_ok: same content is
        // current even under -I.)
        let content_differs =
            if ft == FileType::RegularFile && self.opts.checksum && job.dir == DestDir::Existing {
                match self.compare_content(e, st) {
                    content::Content::Same => return true,
                    content::Content::Differs => true,
                    content::Content::Unknown => false,
                }
            } else {
                false
            };
        let unverified = content_differs
            || matches!(ft, FileType::RegularFile | FileType::Symlink) && self.unverified(job, e);
        let kind = match ft {
            FileType::RegularFile if self.current(job, e, st, unverified) => return true,
            FileType::RegularFile => TaskKind::File { size },
            FileType::Symlink if self.current(job, e, st, unverified) => return true,
            FileType::Symlink => TaskKind::Symlink,
            FileType::Fifo | FileType::BlockDevice | FileType::CharacterDevice
                if self.current(job, e, st, false) =>
            {
                return true
            }
            FileType::Fifo => TaskKind::Fifo,
            FileType::BlockDevice | FileType::CharacterDevice => TaskKind::Device,
            _ => {
                let _ = self.events.send(WalkEvent::Ignored {
                    path: self.paths.source(&rel.0),
                    msg: "socket not copied".into(),
                });
                return true;
            }
        };
        if self.opts.delete && job.dir == DestDir::Existing && !self.clear_clash(e, false) {
            return true;
        }
        if let (Some(dst), DestDir::Existing) = (e.dst, job.dir) {
            // --backup-dir: the inode about to be replaced is kept first;
            // if it cannot be, the entry is not replaced.
            if let Err(err) = self.deleter.back_up(dst.as_fd(), e.name, &e.rel) {
                self.fail(
                    &e.rel,
                    &format!("--backup-dir: {err} (not replaced)"),
                    false,
                );
                return true;
            }
        }
        match &against {
            _ if !self.changes.on() => {}
            None => self.note_copy(job, e, st, ft),
            Some(Some(m)) => self.note_against_basis(e, st, ft, m),
            // An exact match under --copy-dest: nothing to say (rsync).
            Some(None) => {}
        }
        if self.opts.dry_run {
            // -I copies every file, and -c has compared the content above:
            // size and mtime alone do not make such a file current.
            let by_stamps =
                !(ft == FileType::RegularFile && (self.opts.ignore_times || self.opts.checksum));
            let up_to_date = (by_stamps && self.data_current(e, st))
                || (ft == FileType::RegularFile && self.newer_at_destination(e, st));
            let _ = self.events.send(WalkEvent::Dry {
                kind,
                up_to_date,
                bytes: size,
            });
            return true;
        }
        if self.found.no_space() {
            self.found.unsent_files.fetch_add(1, Ordering::Relaxed);
            self.found.unsent_bytes.fetch_add(size, Ordering::Relaxed);
            return true;
        }
        let dir = if unverified {
            DestDir::Unverified
        } else {
            job.dir
        };
        let large = matches!(kind, TaskKind::File { .. })
            && self.opts.chunk_bytes.is_some_and(|c| size >= 2 * c);
        if large {
            lock(&sh.large).push(large::Large {
                rel,
                file: crate::copy::Stamp::of(st),
                dir,
            });
            return true;
        }
        let task = Task {
            rel,
            kind,
            dir,
            basis: from,
        };
        b.push(task, size)
    }
}
