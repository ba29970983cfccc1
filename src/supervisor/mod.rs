//! Supervisor mode: validate and lock the destination, start the walker
//! thread and the worker pool, run the dispatch loop, then finish hard links
//! and directory attributes and return the summary.

pub mod bigfile;
mod dispatch;
mod finish;
mod limits;
mod pool;
mod prepare;
pub mod progress;
mod signals;
pub mod walk;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::protocol::{RootFds, WorkerInit};
use crate::stats::Summary;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn dup(fd: &OwnedFd, what: &std::path::Path) -> Result<OwnedFd> {
    fd.try_clone().map_err(|e| Error::io(what, e))
}

pub fn run(mut settings: Settings) -> Result<Summary> {
    let walk_threads = cpus().min(8);
    let stop = signals::Signals::install().map_err(|e| Error::Fatal(format!("signals: {e}")))?;
    let start = Instant::now();
    let filter =
        crate::filter::Filter::new(&settings.include, &settings.exclude).map_err(Error::Usage)?;
    let mut shrunk = None;
    if !settings.dry_run {
        (settings.processes, shrunk) = limits::fit_workers(settings.processes, walk_threads)?;
    }
    let roots = prepare::prepare(&settings.source, &settings.destination, settings.dry_run)?;
    let bar = progress::Bar::new(&settings);
    crate::logging::init_supervisor(&settings, bar.multi())?;
    short_tmpdir();
    if let Some(why) = shrunk {
        log::warn!("{why}");
    }
    log::info!(
        "pcopy {} starting: {} -> {} with {} workers (ignore_times={}, fsync={}, dereference={}, verify={}, dry_run={}, exclude={:?}, include={:?})",
        env!("CARGO_PKG_VERSION"),
        roots.source.display(),
        roots.destination.display(),
        settings.processes,
        settings.ignore_times,
        settings.fsync,
        settings.dereference,
        settings.verify,
        settings.dry_run,
        settings.exclude,
        settings.include,
    );
    let run_id = run_id();
    let (batch_tx, batch_rx) = crossbeam_channel::bounded(2 * settings.processes + 2);
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let found = Arc::new(walk::Found::default());
    let walker = walk::Walker {
        source: roots.source.clone(),
        src_root: dup(&roots.src_fd, &roots.source)?,
        found: Arc::clone(&found),
        dst_root: roots
            .dst_fd
            .as_ref()
            .map(|fd| dup(fd, &roots.destination))
            .transpose()?,
        filter,
        dry_run: settings.dry_run,
        root_created: roots.created,
        run_id,
        ignore_times: settings.ignore_times,
        // One worker gains nothing from splitting; --verify hashes whole files.
        chunk_bytes: (settings.processes > 1 && !settings.verify).then_some(settings.chunk_bytes),
        parallel: settings.processes.min(cpus()),
        // The quick check and the walk are stat-bound: one thread per CPU.
        threads: walk_threads,
        dereference: settings.dereference,
        batch_files: settings.batch_files,
        batch_bytes: settings.batch_bytes,
        batches: batch_tx,
        events: ev_tx,
    };
    let walker = std::thread::spawn(move || walker.run());
    let mut summary = Summary::default();
    match (&roots.dst_fd, settings.dry_run) {
        (Some(dst_fd), false) => {
            let exe = match &settings.worker_exe {
                Some(p) => p.clone(),
                None => std::env::current_exe()
                    .map_err(|e| Error::Fatal(format!("current_exe: {e}")))?,
            };
            let init = WorkerInit {
                worker: 0,
                // Filled in by `Dispatch::new` from the descriptors it holds.
                roots: RootFds::default(),
                run_id,
                ignore_times: settings.ignore_times,
                preserve_owner: true,
                fsync: settings.fsync,
                dereference: settings.dereference,
                verify: settings.verify,
                log_level: crate::logging::file_level(&settings).max(log::max_level()) as u8,
            };
            let mut d = dispatch::Dispatch::new(
                &settings,
                exe,
                init,
                batch_rx,
                ev_rx,
                &stop,
                (
                    dup(&roots.src_fd, &roots.source)?,
                    dup(dst_fd, &roots.destination)?,
                ),
            )?;
            d.progress = Some(progress::Tracker::new(bar, Arc::clone(&found)));
            d.found = Arc::clone(&found);
            let result = d.run();
            summary = std::mem::take(&mut d.summary);
            drop(d); // closes the batch channel so a still-running walker stops
            let walked = walker
                .join()
                .map_err(|_| Error::Fatal("walker thread panicked".into()))?;
            result?;
            if !summary.interrupted {
                if summary.disk_full {
                    summary.files_not_copied += walked.links.len() as u64;
                } else {
                    finish::hard_links(dst_fd, &walked.links, run_id, &mut summary);
                }
                finish::dir_attrs(
                    dst_fd,
                    &walked.dirs,
                    &roots.src_fd,
                    settings.dereference,
                    &mut summary,
                );
            }
        }
        _ => {
            // Dry run: the walker reports each entry's fate; nothing is
            // spawned, created or written.
            drop(batch_rx);
            while !walker.is_finished() || !ev_rx.is_empty() {
                if let Ok(ev) = ev_rx.recv_timeout(Duration::from_millis(50)) {
                    ev.apply(&mut summary);
                }
            }
            let walked = walker
                .join()
                .map_err(|_| Error::Fatal("walker thread panicked".into()))?;
            while let Ok(ev) = ev_rx.try_recv() {
                ev.apply(&mut summary);
            }
            summary.hardlinks_created = walked.links.len() as u64;
            summary.dry_run = true;
            summary.workers = 0;
        }
    }
    summary.files_skipped += found.skipped_files.load(Ordering::Relaxed);
    summary.bytes_skipped += found.skipped_bytes.load(Ordering::Relaxed);
    summary.files_not_copied += found.unsent_files.load(Ordering::Relaxed);
    summary.bytes_not_copied += found.unsent_bytes.load(Ordering::Relaxed);
    summary.files_found = found.files.load(Ordering::Relaxed);
    summary.bytes_found = found.bytes.load(Ordering::Relaxed);
    summary.elapsed_seconds = start.elapsed().as_secs_f64();
    for line in summary.human().lines() {
        log::info!("{line}");
    }
    Ok(summary)
}
