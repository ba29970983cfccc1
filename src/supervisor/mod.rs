//! Supervisor mode: validate and lock the destination, start the walker
//! thread and the worker pool, run the dispatch loop, then finish hard links
//! and directory attributes and return the summary.

mod dispatch;
mod finish;
mod pool;
mod prepare;
mod signals;
pub mod walk;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::protocol::{RelPath, WorkerInit};
use crate::stats::Summary;
use std::os::unix::ffi::OsStrExt;
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

pub fn run(settings: Settings) -> Result<Summary> {
    let stop = signals::Signals::install().map_err(|e| Error::Fatal(format!("signals: {e}")))?;
    let start = Instant::now();
    let roots = prepare::prepare(&settings.source, &settings.destination)?;
    crate::logging::init_supervisor(&settings)?;
    short_tmpdir();
    log::info!(
        "pcopy {} starting: {} -> {} with {} workers (ignore_times={}, fsync={})",
        env!("CARGO_PKG_VERSION"),
        roots.source.display(),
        roots.destination.display(),
        settings.processes,
        settings.ignore_times,
        settings.fsync
    );
    walk::remove_stale_temps(&roots.dst_fd).map_err(|e| Error::io(&roots.destination, e))?;
    let run_id = run_id();
    let exe = match &settings.worker_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| Error::Fatal(format!("current_exe: {e}")))?,
    };
    let init = WorkerInit {
        worker: 0,
        source: RelPath(roots.source.as_os_str().as_bytes().to_vec()),
        destination: RelPath(roots.destination.as_os_str().as_bytes().to_vec()),
        run_id,
        ignore_times: settings.ignore_times,
        preserve_owner: true,
        fsync: settings.fsync,
        dereference: settings.dereference,
        log_level: crate::logging::file_level(&settings).max(log::max_level()) as u8,
    };
    let (batch_tx, batch_rx) = crossbeam_channel::bounded(2 * settings.processes + 2);
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let found = Arc::new(walk::Found::default());
    let walker = walk::Walker {
        source: roots.source.clone(),
        found: Arc::clone(&found),
        dst_root: roots
            .dst_fd
            .try_clone()
            .map_err(|e| Error::io(&roots.destination, e))?,
        root_created: roots.created,
        dereference: settings.dereference,
        batch_files: settings.batch_files,
        batch_bytes: settings.batch_bytes,
        batches: batch_tx,
        events: ev_tx,
    };
    let walker = std::thread::spawn(move || walker.run());
    let dst_fd = roots
        .dst_fd
        .try_clone()
        .map_err(|e| Error::io(&roots.destination, e))?;
    let mut d = dispatch::Dispatch::new(&settings, exe, init, batch_rx, ev_rx, &stop, dst_fd)?;
    let result = d.run();
    let mut summary = std::mem::take(&mut d.summary);
    drop(d); // closes the batch channel so a still-running walker stops
    let walked = walker
        .join()
        .map_err(|_| Error::Fatal("walker thread panicked".into()))?;
    result?;
    if !summary.interrupted {
        finish::hard_links(&roots.dst_fd, &walked.links, run_id, &mut summary);
        finish::dir_attrs(
            &roots.dst_fd,
            &walked.dirs,
            &roots.source,
            settings.dereference,
            &mut summary,
        );
    }
    summary.files_found = found.files.load(Ordering::Relaxed);
    summary.bytes_found = found.bytes.load(Ordering::Relaxed);
    summary.elapsed_seconds = start.elapsed().as_secs_f64();
    for line in summary.human().lines() {
        log::info!("{line}");
    }
    Ok(summary)
}
