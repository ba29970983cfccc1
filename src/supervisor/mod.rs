//! Supervisor mode: validate and lock the destination, start the walker
//! thread and the worker pool, run the dispatch loop, then finish hard links
//! and directory attributes and return the summary.

mod backup;

mod changes;

mod delete;
mod dispatch;
mod finish;
mod limits;

mod phases;
mod plan;
mod prepare;
mod recovery;
mod signals;
mod walk;

use crate::cli::ReflinkArg;
use crate::cluster::{self, Cluster, Verdict};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::protocol::{RootFds, WorkerInit};
use crate::stats::{Paths, Summary};
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
fn worker_init(s: &Settings, plan: &plan::Plan, run_id: u64, rank: u32) -> WorkerInit {
    WorkerInit {
        worker: 0,
        // Filled in by `Dispatch::new` from the descriptors it holds.
        roots: RootFds::default(),
        bases: Vec::new(),
        copy: crate::copy::Options {
            run_id,
            ignore_times: s.ignore_times,
            preserve: plan.preserve,
            fsync: s.fsync,
            dereference: s.dereference,
            verify: s.verify,
            checksum: s.checksum,
            reflink: match s.reflink {
                ReflinkArg::Auto => crate::copy::data::Reflink::Auto,
                ReflinkArg::Always => crate::copy::data::Reflink::Always,
                ReflinkArg::Never => crate::copy::data::Reflink::Never,
            },
            rank,
        },
        // `--bwlimit` is for the whole job: each rank draws its share.
        bwlimit: match s.bwlimit {
            0 => 0,
            b => (b / u64::from(plan.ranks.max(1))).max(1),
        },
        log_level: crate::logging::file_level(s).max(log::max_level()),
    }
}

/// What every phase of a run shares.
struct Run<'a> {
    settings: &'a Settings,
    roots: &'a prepare::Roots,
    paths: Paths,
    run_id: u64,
    found: Arc<crate::work::Found>,
    stop: &'a signals::Signals,
    /// `-i` and `--json-lines`.
    changes: Arc<changes::Changes>,
    /// The run's sizes (workers, walker threads), fitted to this machine.
    plan: plan::Plan,
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
    /// The destination root's mode before the walk (which may open it up
    /// to work in): put back when `--files-from` does not send the root.
    root_mode: Option<u32>,
}

/// The walker thread, its two channels, and (MPI) the peer thread.
struct Walking {
    thread: std::thread::JoinHandle<crate::work::WalkOutput>,
    peer: Option<std::thread::JoinHandle<cluster::Peered>>,
    /// The dispatcher's end of the peer link (MPI, several ranks).
    link: Option<cluster::DispatchSide>,
    batches: Receiver<crate::work::Batch>,
    events: Receiver<crate::work::WalkEvent>,
}

/// Wait for the walker thread.
fn join(
    thread: std::thread::JoinHandle<crate::work::WalkOutput>,
) -> Result<crate::work::WalkOutput> {
    thread
        .join()
        .map_err(|_| Error::Fatal("walker thread panicked".into()))
}

/// Long because it is the run's order of events read top to bottom: plan, begin, logging, the shared parts, the walk, the copy.
pub fn run(settings: Settings, cluster: &Cluster) -> Result<Summary> {
    let start = Instant::now();
    let started = std::time::SystemTime::now();
    crate::failpoint::setup();
    let stop = signals::Signals::install().map_err(|e| Error::Fatal(format!("signals: {e}")))?;
    let filter = Arc::new(crate::filter::Filter::new(&settings.filters).map_err(Error::Usage)?);
    let plan = plan::Plan::new(&settings, cluster.size())?;
    let Begun {
        roots,
        marker,
        run_id,
        quarantined,
        unverified_since,
    } = begin(&settings, cluster)?;
    let bar = crate::progress::Bar::new(&settings);
    if bar.shown() {
        // A second Ctrl-C exits at once: it must not leave a frame behind.
        signals::erase_line_on_exit();
    }
    let rank = cluster.mpi().then_some(cluster.rank());
    crate::logging::init_supervisor(&settings, bar.multi(), run_id, rank)?;
    if cluster.mpi() {
        limits::warn_affinity(plan.workers);
    }
    short_tmpdir();
    if let Some(why) = &plan.shrunk {
        log::warn!("{why}");
    }
    announce(&settings, &plan, &roots);
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
        root_mode: roots
            .dst_fd
            .as_ref()
            .and_then(|fd| rustix::fs::fstat(fd).ok())
            .map(|st| st.st_mode & 0o7777),
        bases,
        deleter,
        settings: &settings,
        roots: &roots,
        paths,
        run_id,
        found: Arc::new(crate::work::Found::default()),
        stop: &stop,
        started,
        plan,
        cluster,
        quarantined: Arc::new(quarantined.into_iter().map(|b| b.into_vec()).collect()),
        newly_quarantined: Default::default(),
        changes,
    };
    let marker = keep_marker(marker, &settings, &roots);
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

/// What rank 0 decided at the start, with this rank's open roots.
struct Begun {
    roots: prepare::Roots,
    /// This run's power-cut marker (rank 0 of a real run only).
    marker: Option<std::io::Result<recovery::Marker>>,
    run_id: u64,
    /// Entries quarantined by earlier runs.
    quarantined: Vec<serde_bytes::ByteBuf>,
    /// An earlier run did not end cleanly: what changed since then is
    /// copied again.
    unverified_since: Option<recovery::Moment>,
}

/// Rank 0 validates, creates and locks the destination, starts the run's
/// marker and reads the quarantine; every rank learns the verdict and
/// opens its roots (`Cluster::start`).
fn begin(settings: &Settings, cluster: &Cluster) -> Result<Begun> {
    let (roots, verdict) = cluster.start(
        || {
            let roots = prepare::prepare(settings)?;
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
    Ok(Begun {
        roots,
        marker,
        run_id,
        quarantined,
        unverified_since,
    })
}

/// A marker that could not be written is a warning, not an error: the
/// copy itself may still succeed. Under `--files-from` it keeps what an
/// earlier run left unverified (this run may not visit it).
fn keep_marker(
    marker: Option<std::io::Result<recovery::Marker>>,
    settings: &Settings,
    roots: &prepare::Roots,
) -> Option<recovery::Marker> {
    match marker {
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
    }
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

fn announce(s: &Settings, plan: &plan::Plan, roots: &prepare::Roots) {
    log::info!(
        "pcopy {} starting: {} -> {}",
        env!("CARGO_PKG_VERSION"),
        roots.source.display(),
        roots.destination.display(),
    );
    let filters: Vec<String> = s.filters.iter().map(crate::filter::Rule::shown).collect();
    log::info!(
        "settings: workers={} ignore_times={} checksum={} update={} fsync={} verify={} \
         dereference={} one_file_system={} dry_run={} delete={} delete_excluded={} \
         max_delete={} mkpath={} files_from={} chunk_bytes={} stall_timeout={}s \
         log_file={} filters=[{}]",
        plan.workers,
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
