//! The run's phases once its roots are open: start the walk, then either
//! copy (dispatch to workers, then hard links, deletions and directory
//! attributes, then durability) or dry-run it, and total up, across ranks
//! under MPI.

use super::*;

impl Run<'_> {
    pub(super) fn start_walk(
        &self,
        filter: Arc<crate::filter::Filter>,
        unverified_since: Option<recovery::Moment>,
    ) -> Result<Walking> {
        let (s, roots) = (self.settings, self.roots);
        let (batch_tx, batches) = crossbeam_channel::bounded(2 * self.plan.workers + 2);
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let cluster = self.cluster;
        let jobs = crate::work::Jobs::new(cluster.size() > 1, cluster.rank() == 0);
        let show = !s.quiet && !s.no_progress && s.json_lines.as_deref().is_none_or(|p| p != "-");
        let (peer, link) = cluster
            .spawn_walk(&jobs, (&batch_tx, &batches), show)
            .unzip();
        let opts = walk::Options::new(s, &self.plan, unverified_since);
        let walker = walk::Walker {
            jobs: Arc::clone(&jobs),
            rank: cluster.rank(),
            ranks: cluster.size(),
            quarantined: Arc::clone(&self.quarantined),
            basis: self.bases.clone(),
            opts,
            paths: self.paths.clone(),
            src_root: dup(&roots.src_fd, &roots.source)?,
            found: Arc::clone(&self.found),
            dst_root: roots
                .dst_fd
                .as_ref()
                .map(|fd| dup(fd, &roots.destination))
                .transpose()?,
            filter,
            deleter: Arc::clone(&self.deleter),
            root_created: roots.created,
            run_id: self.run_id,
            changes: Arc::clone(&self.changes),
            root_dev: rustix::fs::fstat(&roots.src_fd).map_or(0, |st| st.st_dev),
            batches: batch_tx,
            events: ev_tx,
        };
        Ok(Walking {
            thread: std::thread::spawn(move || walker.run()),
            peer,
            link,
            batches,
            events,
        })
    }

    /// The real run: workers copy what the walk sends; then hard links,
    /// deletions and directory attributes (`after_copies`).
    pub(super) fn copy(
        &self,
        dst_fd: &OwnedFd,
        walking: Walking,
        bar: crate::progress::Bar,
        marker: Option<recovery::Marker>,
    ) -> Result<Summary> {
        let (s, roots) = (self.settings, self.roots);
        let d = dispatch::Dispatch::new(
            dispatch::Options::new(s, &self.plan),
            self.paths.clone(),
            self.worker()?,
            dispatch::Links {
                // Moved, not cloned: when the dispatcher is gone, a walker
                // blocked on a full batch channel sees it closed and stops.
                batches: walking.batches,
                events: walking.events,
                found: Arc::clone(&self.found),
                stop: self.stop,
                progress: crate::progress::Tracker::new(bar, Arc::clone(&self.found)),
                peer: walking.link,
            },
            (
                dup(&roots.src_fd, &roots.source)?,
                dup(dst_fd, &roots.destination)?,
            ),
        )?;
        let checkpoints = match marker {
            Some(m) => Some(recovery::Checkpoints::start(
                m,
                dup(dst_fd, &roots.destination)?,
            )),
            None => None,
        };
        // Consumed: when it returns the batch channel is closed, so a
        // still-running walker stops.
        let (result, dispatched) = d.run();
        let mut summary = dispatched.summary;
        *self.newly_quarantined.borrow_mut() = dispatched.quarantined;
        let walked = join(walking.thread)?;
        self.end_job_if_stopped(&result, &summary);
        self.peer_done(walking.peer);
        result?;
        if summary.interrupted {
            // Stopped at a file boundary: everything placed is complete.
            self.durable(checkpoints);
            return Ok(summary);
        }
        self.after_copies(dst_fd, walked, &mut summary)?;
        // Last: the marker's removal puts back the root's times it finds.
        self.durable(checkpoints);
        Ok(summary)
    }

    /// A rank that stopped (an error, an interrupt) must not wait for the
    /// others (they wait for it): it ends the job before joining its peer
    /// thread.
    fn end_job_if_stopped(&self, result: &Result<()>, summary: &Summary) {
        if result.is_ok() && !summary.interrupted {
            return;
        }
        let code = match result {
            Err(e) => {
                if self.cluster.size() > 1 {
                    log::error!("{e}");
                }
                e.exit_status().code()
            }
            Ok(()) => crate::report::exit_status(summary).code(),
        };
        self.cluster.abort(code.into());
    }

    /// The executable workers run and what each is told.
    fn worker(&self) -> Result<(std::path::PathBuf, crate::protocol::WorkerInit)> {
        let s = self.settings;
        let exe = match &s.worker_exe {
            Some(p) => p.clone(),
            None => {
                std::env::current_exe().map_err(|e| Error::Fatal(format!("current_exe: {e}")))?
            }
        };
        let mut init = worker_init(s, &self.plan, self.run_id, self.cluster.rank());
        init.bases = self.bases.as_ref().map_or_else(Vec::new, |b| b.inherited());
        Ok((exe, init))
    }

    /// Every copy is in: hard links, then deletions, then directory
    /// attributes, in that order.
    fn after_copies(
        &self,
        dst_fd: &OwnedFd,
        walked: crate::work::WalkOutput,
        summary: &mut Summary,
    ) -> Result<()> {
        // Under MPI the first name of a linked inode may have been copied
        // by another rank: all copies are done before any link is made.
        self.cluster.barrier();
        let extras = if summary.disk_full {
            summary.files_not_copied += walked.links.len() as u64;
            Vec::new()
        } else {
            finish::hard_links(
                dst_fd,
                &walked.links,
                (self.run_id, self.cluster.rank()),
                &finish::LinkRules {
                    update: self.settings.update,
                    deleter: &self.deleter,
                },
                &self.paths,
                summary,
            );
            walked.extras
        };
        // After every copy, before directory times (a deletion changes its
        // directory's mtime).
        self.delete(dst_fd, extras, summary)?;
        self.dir_attrs(dst_fd, &walked.dirs, summary);
        Ok(())
    }

    /// Every placement of the run is complete: one syncfs makes it
    /// durable, and the run's marker goes (`recovery`): in a detached
    /// child by default (the run does not wait for the write-back), before
    /// exiting under `--fsync` (exit 0 then means durable) and under MPI
    /// (no fork beside an MPI library).
    fn durable(&self, checkpoints: Option<recovery::Checkpoints>) {
        let (Some(marker), Some(dst_fd)) = (
            checkpoints.and_then(recovery::Checkpoints::stop),
            &self.roots.dst_fd,
        ) else {
            return;
        };
        let r = if self.settings.fsync || self.cluster.mpi() {
            marker.finish(dst_fd)
        } else {
            // Every write of the run is done: the lock goes now, or the
            // child would hold it (it shares the locked descriptor until it
            // closes it) and refuse the next run with exit 75.
            let _ = rustix::fs::flock(dst_fd, rustix::fs::FlockOperation::Unlock);
            marker.finish_detached(dst_fd)
        };
        if let Err(e) = r {
            log::warn!(
                "{}: could not make the run durable ({e}); the next run checks what it wrote",
                self.roots.destination.display()
            );
        }
    }

    /// Log what the peer thread did for the other ranks.
    fn peer_done(&self, peer: Option<std::thread::JoinHandle<cluster::Peered>>) {
        if let Some(p) = peer.and_then(|h| h.join().ok()) {
            log::info!(
                "rank {} walk: asked {} times for work, took {} directories and {} copy tasks, \
                 gave {} and {}; sent {} and received {} hard-linked entries; \
                 sent {} and received {} chunks of large files",
                self.cluster.rank(),
                p.steals,
                p.jobs_taken,
                p.tasks_taken,
                p.jobs_given,
                p.tasks_given,
                p.entries_sent,
                p.entries_received,
                p.chunks_sent,
                p.chunks_received
            );
        }
    }

    /// Directory attributes, deepest first, the root last. Under MPI every
    /// rank applies its own directories level by level, all ranks finishing
    /// a level before any starts the next one up; rank 0 does the root.
    fn dir_attrs(&self, dst_fd: &OwnedFd, dirs: &[crate::work::DirMeta], summary: &mut Summary) {
        let src = &self.roots.src_fd;
        let rules = finish::DirRules {
            follow: self.settings.dereference,
            preserve: self.plan.preserve,
        };
        if !self.cluster.mpi() {
            finish::some_dirs(dst_fd, dirs.iter(), src, rules, &self.paths, summary);
        } else {
            let depth = |d: &crate::work::DirMeta| d.depth() as u64 + 1;
            let deepest = self.cluster.max(dirs.iter().map(depth).max().unwrap_or(0));
            for level in (1..=deepest).rev() {
                let here = dirs.iter().filter(|d| depth(d) == level);
                finish::some_dirs(dst_fd, here, src, rules, &self.paths, summary);
                self.cluster.barrier();
            }
        }
        if self.cluster.rank() != 0 {
            return;
        }
        let sent = self.settings.files_from.as_ref();
        if sent.is_none_or(|l| walk::sends_root(l)) {
            finish::root_attrs(dst_fd, src, rules, &self.paths, summary);
        } else {
            let (created, before) = (self.roots.created, self.root_mode);
            finish::root_unsent(dst_fd, created, before, &self.paths, summary);
        }
    }

    /// Dry run: the walker reports each entry's fate; nothing is spawned,
    /// created or written.
    pub(super) fn dry_run(&self, walking: Walking) -> Result<Summary> {
        let mut summary = Summary::default();
        drop(walking.batches);
        // Ends when the walker thread, the only sender, is done.
        for ev in walking.events.iter() {
            dispatch::fold_walk_event(&mut summary, ev);
        }
        let walked = join(walking.thread)?;
        self.peer_done(walking.peer);
        // As the finish pass will count them: a name already linked to an
        // inode that stays is up to date.
        summary.hardlinks_created = walked.relinks;
        summary.files_skipped += walked.links.len() as u64 - walked.relinks;
        if let Some(dst_fd) = &self.roots.dst_fd {
            self.delete(dst_fd, walked.extras, &mut summary)?;
        }
        summary.dry_run = true;
        summary.workers = 0;
        Ok(summary)
    }

    /// `--delete`: remove (in a dry run: list) the extras the walk found.
    /// Under MPI rank 0 deletes what every rank found, so `--max-delete`
    /// counts for the whole job.
    fn delete(
        &self,
        dst_fd: &OwnedFd,
        extras: Vec<crate::work::Extra>,
        summary: &mut Summary,
    ) -> Result<()> {
        let s = self.settings;
        if !s.delete {
            return Ok(());
        }
        let extras: Vec<crate::work::Extra> =
            self.cluster.gather(extras)?.into_iter().flatten().collect();
        if let Some(pct) = s.max_delete_percent {
            let (would, inside) = self.deleter.count(dst_fd, &extras);
            let total = self.found.dest_entries.load(Ordering::Relaxed) + inside;
            let gone = would + self.deleter.deleted();
            if total > 0 && gone as f64 * 100.0 > pct * total as f64 {
                log::error!(
                    "--max-delete-percent {pct}: {gone} of the destination's {total} entries \
                     would be deleted ({:.1} %); nothing deleted",
                    gone as f64 * 100.0 / total as f64
                );
                summary.delete_refused = true;
                summary.deletes_kept += would;
                return Ok(());
            }
        }
        self.deleter.extras(dst_fd, &extras);
        Ok(())
    }

    /// Totals the walk counted itself, and the closing lines of the log.
    pub(super) fn totals(&self, summary: &mut Summary, start: Instant) -> Result<()> {
        self.deleter.account(summary);
        let found = &self.found;
        summary.files_skipped += found.skipped_files.load(Ordering::Relaxed);
        summary.bytes_skipped += found.skipped_bytes.load(Ordering::Relaxed);
        summary.entries_repaired += found.repaired.load(Ordering::Relaxed);
        summary.bytes_linked = found.linked_bytes.load(Ordering::Relaxed);
        summary.files_linked_from_basis = found.basis_files.load(Ordering::Relaxed);
        summary.bytes_linked_from_basis = found.basis_bytes.load(Ordering::Relaxed);
        summary.verify = self.settings.verify;
        summary.files_not_copied += found.unsent_files.load(Ordering::Relaxed);
        summary.bytes_not_copied += found.unsent_bytes.load(Ordering::Relaxed);
        summary.files_found = found.files.load(Ordering::Relaxed);
        summary.bytes_found = found.bytes.load(Ordering::Relaxed);
        summary.elapsed_seconds = start.elapsed().as_secs_f64();
        let shown =
            |p: &std::path::Path| crate::util::escape_bytes(p.as_os_str().as_encoded_bytes());
        summary.schema_version = crate::stats::SCHEMA_VERSION;
        summary.source = shown(&self.settings.source);
        summary.destination = shown(&self.settings.destination);
        summary.started_at = crate::util::rfc3339(self.started);
        summary.finished_at = crate::util::rfc3339(std::time::SystemTime::now());
        self.gather(summary)?;
        summary.exit_code = crate::report::exit_status(summary).code();
        // Under MPI the job's summary is rank 0's to log.
        if !summary.silent {
            for line in summary.human().lines() {
                log::info!("{line}");
            }
        }
        log::info!(
            "finished: exit code {}; {} copied, {} up to date, {} failed, {} deleted, {} repaired",
            summary.exit_code,
            summary.files_copied,
            summary.files_skipped,
            summary.files_failed + summary.dirs_failed,
            summary.entries_deleted,
            summary.entries_repaired
        );
        self.changes.finish(summary);
        Ok(())
    }

    /// Under MPI: log this rank's share, persist the job's quarantine, sum
    /// every rank's summary at rank 0 and give its total to every rank, so
    /// all exit with the same code (rank 0 alone prints it).
    fn gather(&self, summary: &mut Summary) -> Result<()> {
        let c = self.cluster;
        if !c.mpi() {
            return Ok(());
        }
        log::info!(
            "rank {} share: {} files copied ({} bytes), {} up to date, {} failed, {} directories created",
            c.rank(),
            summary.files_copied,
            summary.bytes_copied,
            summary.files_skipped,
            summary.files_failed,
            summary.dirs_created
        );
        let newly = self.newly_quarantined.borrow().clone();
        let newly: Vec<Vec<u8>> = c.gather(newly)?.into_iter().flatten().collect();
        let old: Vec<Vec<u8>> = self.quarantined.iter().cloned().collect();
        c.save_quarantine(&self.roots.destination, &old, &newly);
        c.reduce(summary)?;
        let (verify, signal) = (summary.verify, summary.signal);
        *summary = c.broadcast(summary.clone())?;
        (summary.verify, summary.signal) = (verify, signal);
        summary.silent = c.rank() != 0;
        Ok(())
    }
}
