//! Supervisor mode: validate and lock the destination, start the walker
//! thread and the worker pool, run the dispatch loop, then finish hard links
//! and directory attributes and return the summary.

mod backup;
pub mod bigfile;
pub mod changes;
pub mod cluster;
mod delete;
mod dispatch;
mod finish;
mod limits;
mod pool;
mod prepare;
pub mod progress;
mod recovery;
mod signals;
pub mod walk;
pub mod work;

use crate::cli::ReflinkArg;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::protocol::{RootFds, WorkerInit};
use crate::stats::{Paths, Summary};
use cluster::{Cluster, Verdict};
use crossbeam_channel::Receiver;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// ipc-channel silently truncates socket paths over 107 bytes; keep its
/// temporary directory short.
fn short_tmpdir() {
    if std::env::temp_dir().as_os_str().len() > 89 {
        let _ = tempfile::env::override_temp_dir(std::path::Path::new("/tmp"));
    }
}

fn run_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ ((std::process::id() as u64) << 32)
}

fn dup(fd: &OwnedFd, what: &std::path::Path) -> Result<OwnedFd> {
    fd.try_clone().map_err(|e| Error::io(what, e))
}

/// What a worker is told, from the settings.
fn worker_init(s: &Settings, run_id: u64, (rank, ranks): (u32, u32)) -> WorkerInit {
    WorkerInit {
        worker: 0,
        // Filled in by `Dispatch::new` from the descriptors it holds.
        roots: RootFds::default(),
        bases: Vec::new(),
        run_id,
        ignore_times: s.ignore_times,
        preserve_owner: true,
        fsync: s.fsync,
        dereference: s.dereference,
        verify: s.verify,
        checksum: s.checksum,
        reflink: match s.reflink {
            ReflinkArg::Auto => crate::protocol::Reflink::Auto,
            ReflinkArg::Always => crate::protocol::Reflink::Always,
            ReflinkArg::Never => crate::protocol::Reflink::Never,
        },
        // `--bwlimit` is for the whole job: each rank draws its share.
        bwlimit: match s.bwlimit {
            0 => 0,
            b => (b / u64::from(ranks.max(1))).max(1),
        },
        log_level: crate::logging::file_level(s).max(log::max_level()),
        rank,
    }
}

/// What every phase of a run shares.
struct Run<'a> {
    settings: &'a Settings,
    roots: &'a prepare::Roots,
    paths: Paths,
    run_id: u64,
    found: Arc<work::Found>,
    stop: &'a signals::Signals,
    /// `-i` and `--json-lines`.
    changes: Arc<changes::Changes>,
    /// Walker threads that fit the descriptor budget.
    walk_threads: usize,
    started: std::time::SystemTime,
    cluster: &'a Cluster,
    /// Entries quarantined by earlier runs (`--mpi` only), skipped.
    quarantined: Arc<std::collections::HashSet<Vec<u8>>>,
    /// Entries this run quarantined.
    newly_quarantined: std::cell::RefCell<Vec<Vec<u8>>>,
    /// Every removal of the run (`--delete` extras, type clashes).
    deleter: Arc<delete::Deleter>,
    /// `--link-dest` and friends, open for the whole run (workers inherit
    /// them for `--copy-dest`).
    bases: Option<Arc<walk::Bases>>,
}

/// The walker thread, its two channels, and (MPI) the peer thread.
struct Walking {
    thread: std::thread::JoinHandle<work::WalkOutput>,
    peer: Option<std::thread::JoinHandle<cluster::Peered>>,
    /// The dispatcher's end of the peer link (MPI, several ranks).
    link: Option<cluster::DispatchSide>,
    batches: Receiver<work::Batch>,
    events: Receiver<work::WalkEvent>,
}

/// Wait for the walker thread.
fn join(thread: std::thread::JoinHandle<work::WalkOutput>) -> Result<work::WalkOutput> {
    thread
        .join()
        .map_err(|_| Error::Fatal("walker thread panicked".into()))
}

pub fn run(mut settings: Settings, cluster: &Cluster) -> Result<Summary> {
    let start = Instant::now();
    let started = std::time::SystemTime::now();
    crate::failpoint::setup();
    let stop = signals::Signals::install().map_err(|e| Error::Fatal(format!("signals: {e}")))?;
    let filter = Arc::new(crate::filter::Filter::new(&settings.filters).map_err(Error::Usage)?);
    let mut shrunk = None;
    let mut walk_threads = walk::Options::from(&settings).threads;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !settings.dry_run {
        // Walker threads beyond one per CPU only help on latency-bound
        // storage: under a tight descriptor limit, workers come first.
        // The growth limit must fit the descriptor budget too (silently:
        // growing is an optimisation, not something the user asked for).
        if settings.max_processes > settings.processes {
            settings.max_processes = limits::fit_workers(settings.max_processes, walk_threads)
                .map_or(settings.processes, |(n, _)| n.max(settings.processes));
        }
        // Fewer walker threads first (one per CPU, then one), then fewer
        // workers, then a refusal.
        let mut tries = [walk_threads, cpus.min(walk_threads), 1]
            .into_iter()
            .peekable();
        while let Some(w) = tries.next() {
            match limits::fit_workers(settings.processes, w) {
                Ok(fit) => {
                    (walk_threads, (settings.processes, shrunk)) = (w, fit);
                    break;
                }
                Err(e) if tries.peek().is_none() => return Err(e),
                Err(_) => {}
            }
        }
    }
    let (roots, verdict) = cluster.start(
        || {
            let roots = prepare::prepare(&settings)?;
            let id = run_id();
            // Before anything is written: this run's marker, and what an
            // unclean earlier run left unverified.
            let marker = match (&roots.dst_fd, settings.dry_run) {
                (Some(fd), false) => Some(recovery::Marker::start(fd, id)),
                _ => None,
            };
            let quarantined = cluster
                .load_quarantine(&roots.destination)
                .into_iter()
                .map(serde_bytes::ByteBuf::from)
                .collect();
            let v = Verdict::Go {
                run_id: id,
                created: roots.created,
                quarantined,
                unverified_since: marker
                    .as_ref()
                    .and_then(|m| m.as_ref().ok())
                    .and_then(|m| m.unverified),
            };
            Ok(((roots, marker), v))
        },
        |v| {
            let created = matches!(v, Verdict::Go { created: true, .. });
            prepare::open_roots(
                &settings.source,
                &settings.destination,
                settings.dry_run,
                created,
            )
            .map(|r| (r, None))
        },
    )?;
    let (roots, marker) = roots;
    let Verdict::Go {
        run_id,
        quarantined,
        unverified_since,
        ..
    } = verdict
    else {
        return Err(Error::Elsewhere { locked: false });
    };
    let bar = progress::Bar::new(&settings);
    let rank = cluster.mpi().then_some(cluster.rank());
    crate::logging::init_supervisor(&settings, bar.multi(), run_id, rank)?;
    if cluster.mpi() {
        limits::warn_affinity(settings.processes);
    }
    short_tmpdir();
    if let Some(why) = shrunk {
        log::warn!("{why}");
    }
    announce(&settings, &roots);
    cluster.announce_quarantine(&roots.destination, quarantined.len());
    let paths = Paths::new(&settings.source, &settings.destination);
    let changes = Arc::new(changes::Changes::open(
        settings.itemize,
        (settings.json, settings.json_lines.as_deref()),
        settings.log_file.is_some(),
    )?);
    let deleter = Arc::new(deleter(&settings, &roots, &filter, &changes, &paths)?);
    let bases = settings.basis.as_ref().map(|b| {
        Arc::new(walk::Bases::open(
            b,
            &roots.destination,
            roots.dst_fd.as_ref(),
        ))
    });
    let run = Run {
        bases,
        deleter,
        settings: &settings,
        roots: &roots,
        paths,
        run_id,
        found: Arc::new(work::Found::default()),
        stop: &stop,
        started,
        walk_threads,
        cluster,
        quarantined: Arc::new(quarantined.into_iter().map(|b| b.into_vec()).collect()),
        newly_quarantined: Default::default(),
        changes,
    };
    let marker = match marker {
        Some(Err(e)) => {
            // Not fatal: the copy itself may still succeed.
            log::warn!(
                "{}: cannot keep the power-cut marker ({e}): a power cut during this run \
                 would not be noticed by the next one",
                roots.destination.display()
            );
            None
        }
        m => m.and_then(Result::ok).map(|mut m| {
            if settings.files_from.is_some() {
                m.keep_earlier();
            }
            m
        }),
    };
    if let Some((s, ns)) = unverified_since {
        log::warn!(
            "an earlier run into {} did not end cleanly (a crash or power cut): what it changed \
             since {} is copied again, not trusted by size and time",
            roots.destination.display(),
            crate::util::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::new(s.max(0) as u64, ns as u32)
            )
        );
    }
    let walking = run.start_walk(filter, unverified_since)?;
    let mut summary = match (&roots.dst_fd, settings.dry_run) {
        (Some(dst_fd), false) => run.copy(dst_fd, walking, bar, marker)?,
        _ => run.dry_run(walking)?,
    };
    if roots.created && cluster.rank() == 0 {
        // The destination root is a directory this run created (or, in a
        // dry run, would create).
        summary.dirs_created += 1;
    }
    run.totals(&mut summary, start)?;
    Ok(summary)
}

/// The run's one `Deleter`: its rules, budget and backup directory.
fn deleter(
    s: &Settings,
    roots: &prepare::Roots,
    filter: &Arc<crate::filter::Filter>,
    changes: &Arc<changes::Changes>,
    paths: &Paths,
) -> Result<delete::Deleter> {
    let dst_dev = roots
        .dst_fd
        .as_ref()
        .and_then(|fd| rustix::fs::fstat(fd).ok())
        .map(|st| st.st_dev);
    let backup = match (&s.backup_dir, &roots.dst_fd) {
        (Some(dir), Some(fd)) => Some(backup::Backup::open(
            dir,
            &s.suffix,
            &roots.destination,
            fd,
        )?),
        _ => None,
    };
    Ok(delete::Deleter::new(
        delete::Rules {
            dry_run: s.dry_run,
            delete_excluded: s.delete_excluded,
            max_delete: s.max_delete,
            one_file_system: dst_dev.filter(|_| s.one_file_system),
        },
        Arc::clone(filter),
        Arc::clone(changes),
        backup,
        paths.clone(),
    ))
}

fn announce(s: &Settings, roots: &prepare::Roots) {
    log::info!(
        "pcopy {} starting: {} -> {}",
        env!("CARGO_PKG_VERSION"),
        roots.source.display(),
        roots.destination.display(),
    );
    let filters: Vec<String> = s
        .filters
        .iter()
        .map(|r| format!("{}{}", if r.include { "+ " } else { "- " }, r.pattern))
        .collect();
    log::info!(
        "settings: workers={} ignore_times={} checksum={} update={} fsync={} verify={} \
         dereference={} one_file_system={} dry_run={} delete={} delete_excluded={} \
         max_delete={} mkpath={} files_from={} chunk_bytes={} stall_timeout={}s \
         log_file={} filters=[{}]",
        s.processes,
        s.ignore_times,
        s.checksum,
        s.update,
        s.fsync,
        s.verify,
        s.dereference,
        s.one_file_system,
        s.dry_run,
        s.delete,
        s.delete_excluded,
        s.max_delete.map_or("none".to_string(), |n| n.to_string()),
        s.mkpath,
        s.files_from.as_ref().map_or(0, |l| l.len()),
        s.chunk_bytes,
        s.stall_timeout.as_secs_f64(),
        s.log_file.as_ref().map_or("none".to_string(), |p| {
            crate::util::escape_bytes(p.as_os_str().as_encoded_bytes())
        }),
        filters.join(", "),
    );
}

impl Run<'_> {
    fn start_walk(
        &self,
        filter: Arc<crate::filter::Filter>,
        unverified_since: Option<recovery::Moment>,
    ) -> Result<Walking> {
        let (s, roots) = (self.settings, self.roots);
        let (batch_tx, batches) = crossbeam_channel::bounded(2 * s.processes + 2);
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let cluster = self.cluster;
        let jobs = work::Jobs::new(cluster.size() > 1, cluster.rank() == 0);
        let show = !s.quiet && !s.no_progress && s.json_lines.as_deref().is_none_or(|p| p != "-");
        let (peer, link) = cluster
            .spawn_walk(&jobs, (&batch_tx, &batches), show)
            .unzip();
        let mut opts = walk::Options {
            threads: self.walk_threads,
            unverified_since,
            ..s.into()
        };
        if cluster.size() > 1 && !s.verify {
            // Other ranks' workers can write chunks too, even with -j 1.
            opts.chunk_bytes = Some(s.chunk_bytes);
        }
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

    /// The real run: workers copy what the walk sends; then hard links and
    /// directory attributes.
    fn copy(
        &self,
        dst_fd: &OwnedFd,
        walking: Walking,
        bar: progress::Bar,
        marker: Option<recovery::Marker>,
    ) -> Result<Summary> {
        let (s, roots) = (self.settings, self.roots);
        let exe = match &s.worker_exe {
            Some(p) => p.clone(),
            None => {
                std::env::current_exe().map_err(|e| Error::Fatal(format!("current_exe: {e}")))?
            }
        };
        let mut init = worker_init(s, self.run_id, (self.cluster.rank(), self.cluster.size()));
        init.bases = self.bases.as_ref().map_or_else(Vec::new, |b| b.inherited());
        let mut d = dispatch::Dispatch::new(
            dispatch::Options::new(s, self.walk_threads),
            self.paths.clone(),
            exe,
            init,
            // Moved, not cloned: when the dispatcher is gone, a walker
            // blocked on a full batch channel sees it closed and stops.
            (walking.batches, walking.events),
            self.stop,
            (
                dup(&roots.src_fd, &roots.source)?,
                dup(dst_fd, &roots.destination)?,
            ),
        )?;
        d.progress = Some(progress::Tracker::new(bar, Arc::clone(&self.found)));
        d.peer = walking.link;
        d.found = Arc::clone(&self.found);
        let checkpoints = match marker {
            Some(m) => Some(recovery::Checkpoints::start(
                m,
                dup(dst_fd, &roots.destination)?,
            )),
            None => None,
        };
        let result = d.run();
        let mut summary = std::mem::take(&mut d.summary);
        *self.newly_quarantined.borrow_mut() = d.quarantined();
        drop(d); // closes the batch channel so a still-running walker stops
        let walked = join(walking.thread)?;
        // A rank that stopped must not wait for the others (they wait for
        // it): it ends the job before joining its peer thread.
        if result.is_err() || summary.interrupted {
            let code = match &result {
                Err(e) => {
                    if self.cluster.size() > 1 {
                        log::error!("{e}");
                    }
                    e.exit_status().code()
                }
                Ok(()) => crate::report::exit_status(&summary).code(),
            };
            self.cluster.abort(code.into());
        }
        self.peer_done(walking.peer);
        result?;
        if summary.interrupted {
            // Stopped at a file boundary: everything placed is complete.
            self.durable(checkpoints);
            return Ok(summary);
        }
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
                &mut summary,
            );
            walked.extras
        };
        // After every copy, before directory times (a deletion changes its
        // directory's mtime).
        self.delete(dst_fd, extras, &mut summary)?;
        self.dir_attrs(dst_fd, &walked.dirs, &mut summary);
        // Last: the marker's removal puts back the root's times it finds.
        self.durable(checkpoints);
        Ok(summary)
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
    fn dir_attrs(&self, dst_fd: &OwnedFd, dirs: &[work::DirMeta], summary: &mut Summary) {
        let (s, src) = (self.settings, &self.roots.src_fd);
        if !self.cluster.mpi() {
            finish::dir_attrs(dst_fd, dirs, src, s.dereference, &self.paths, summary);
            return;
        }
        let depth = |d: &work::DirMeta| d.depth() as u64 + 1;
        let deepest = self.cluster.max(dirs.iter().map(depth).max().unwrap_or(0));
        for level in (1..=deepest).rev() {
            let here = dirs.iter().filter(|d| depth(d) == level);
            finish::some_dirs(dst_fd, here, src, s.dereference, &self.paths, summary);
            self.cluster.barrier();
        }
        if self.cluster.rank() == 0 {
            finish::root_attrs(dst_fd, src, s.dereference, &self.paths, summary);
        }
    }

    /// Dry run: the walker reports each entry's fate; nothing is spawned,
    /// created or written.
    fn dry_run(&self, walking: Walking) -> Result<Summary> {
        let mut summary = Summary::default();
        drop(walking.batches);
        // Ends when the walker thread, the only sender, is done.
        for ev in walking.events.iter() {
            ev.apply(&mut summary);
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
        extras: Vec<delete::Extra>,
        summary: &mut Summary,
    ) -> Result<()> {
        let s = self.settings;
        if !s.delete {
            return Ok(());
        }
        let extras: Vec<delete::Extra> =
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
    fn totals(&self, summary: &mut Summary, start: Instant) -> Result<()> {
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
