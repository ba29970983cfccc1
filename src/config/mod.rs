//! A run's settings, and the single place where precedence is decided:
//! built-in defaults < config file < command line, where a flag documented
//! with an environment variable (`PCOPY_CHUNK_BYTES`, `PCOPY_WORKER_EXE`)
//! reads it when the flag itself is absent (clap's `env`). config.json's
//! format and loading are `file`; the lists and pattern files a run reads
//! are `lists`.

mod file;
mod lists;

pub use file::{parse_bytes, parse_rate, FileConfig, Rate};

use crate::cli::{Cli, ReflinkArg};
use crate::error::{Error, Result};
use crate::filter::Rule;
use lists::{filters, read_list};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Smallest `--chunk-bytes` (one page: smaller chunks only add overhead).
const MIN_CHUNK: u64 = 4096;

/// Validated settings for one run. Built once; workers get a `WorkerInit` slice.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Directory whose contents are copied (CLI arg 1 or `source`).
    pub source: PathBuf,
    /// Directory the contents land in (CLI arg 2 or `destination`).
    pub destination: PathBuf,
    /// Worker processes (`-j` or `processes`); default: CPU count, at least 4.
    pub processes: usize,
    /// Up to how many workers the run may grow while its workers mostly
    /// wait on I/O (latency-bound storage): `processes` when it was given,
    /// else 16.
    pub max_processes: usize,
    /// Log file (`--log-file` or `log_file`); default: none.
    pub log_file: Option<PathBuf>,
    /// `--json`: one JSON object on stdout at the end.
    pub json: bool,
    /// `-q`: errors only on the console.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// `-I/--ignore-times` or `ignore_times`: never skip up-to-date files.
    pub ignore_times: bool,
    /// `--fsync` or `fsync`: fsync files before rename (default off).
    pub fsync: bool,
    /// `-L/--dereference` or `dereference`: follow source symlinks (default off).
    pub dereference: bool,
    /// `-n/--dry-run`: report only; write nothing (default off).
    pub dry_run: bool,
    /// Filter rules in the order they apply (the first match wins): the
    /// config file's includes, its excludes (includes first, so an include
    /// keeps what an exclude would skip, as before), then the command
    /// line's `--include`/`--exclude`/`--*-from` in the order given.
    pub filters: Vec<Rule>,
    /// `--verify` or `verify`: BLAKE3-compare each copy (default off).
    pub verify: bool,
    /// `-x/--one-file-system` or `one_file_system`: stay on the source
    /// root's filesystem (mount points are created empty).
    pub one_file_system: bool,
    /// `-u/--update` or `update`: skip files newer at the destination.
    pub update: bool,
    /// `-c/--checksum` or `checksum`: compare content, not size and mtime.
    pub checksum: bool,
    /// `--reflink` or `reflink`: auto (default), always, never.
    pub reflink: ReflinkArg,
    /// `--bwlimit` or `bwlimit`: bytes per second written by all workers
    /// together (0: no limit).
    pub bwlimit: u64,
    /// `--files-from` or `files_from` (`--from0`/`from0`: NUL-separated):
    /// the listed paths, read when the settings are built.
    pub files_from: Option<std::sync::Arc<Vec<Vec<u8>>>>,
    /// `--delete` or `delete`: remove destination entries the source lacks.
    pub delete: bool,
    /// `--delete-excluded` or `delete_excluded`: excluded names are extras.
    pub delete_excluded: bool,
    /// `--max-delete` or `max_delete`: most deletions (exit 25 when reached).
    pub max_delete: Option<u64>,
    /// `--max-delete-percent`: no deletion at all when more than this share
    /// of the destination's entries would go (exit 26).
    pub max_delete_percent: Option<f64>,
    /// `--allow-empty-source`: `--delete` from an empty source root.
    pub allow_empty_source: bool,
    /// `--backup-dir`: deleted and replaced entries are moved here.
    pub backup_dir: Option<PathBuf>,
    /// `--suffix` for backed-up names.
    pub suffix: String,
    /// `--link-dest`, `--compare-dest` or `--copy-dest`: where an entry the
    /// destination lacks may already be, unchanged.
    pub basis: Option<Basis>,
    /// `-i/--itemize-changes`: a line per change on stdout.
    pub itemize: bool,
    /// `--json-lines FILE|-`: a JSON object per change, then the summary.
    pub json_lines: Option<PathBuf>,
    /// `--mkpath` or `mkpath`: create the destination's missing parents
    /// (default off: a missing parent is a usage error).
    pub mkpath: bool,
    /// `--no-progress`: never draw the bar (default: drawn on a terminal).
    pub no_progress: bool,
    /// `--stall-timeout` or `stall_timeout`: a worker with work but no
    /// progress for this long is killed and replaced (default 60 s).
    pub stall_timeout: Duration,
    /// Most files per batch (default 256).
    pub batch_files: usize,
    /// Most bytes per batch (default 64 MiB); a larger file goes alone.
    pub batch_bytes: u64,
    /// `--chunk-bytes` or `PCOPY_CHUNK_BYTES`: files of at least twice this
    /// size are split into chunks of this size copied by several workers
    /// (default 128 MiB, at least 4 KiB).
    pub chunk_bytes: u64,
    /// Respawns allowed within any 60 s window before the run is abandoned
    /// (default 10 + 2 × processes).
    pub max_restarts_per_minute: usize,
    /// `--worker-exe` or `PCOPY_WORKER_EXE` (hidden): the worker executable
    /// (default: this executable).
    pub worker_exe: Option<PathBuf>,
    /// `--mpi`: one rank of an MPI job (command line only: the same config
    /// file serves runs with and without MPI).
    pub mpi: bool,
}

impl Settings {
    /// Merge defaults < config file < CLI. The config file is `--config`, or
    /// `./config.json` when no paths are given on the command line.
    pub fn resolve(cli: &Cli) -> Result<Self> {
        let file = match (&cli.config, &cli.source) {
            (Some(_), Some(src)) if cli.destination.is_none() => {
                return Err(Error::Usage(format!(
                    "one path ({}) with --config is ambiguous: give both SOURCE and DESTINATION \
                     (they override the config's), or neither",
                    src.display()
                )))
            }
            (Some(p), _) => FileConfig::load(p)?,
            (None, None) => {
                let p = Path::new("config.json");
                if !p.exists() {
                    return Err(Error::Usage(
                        "no SOURCE and DESTINATION given and ./config.json not found \
                         (see pcopy --help)"
                            .into(),
                    ));
                }
                FileConfig::load(p)?
            }
            (None, Some(_)) => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    /// `file` under `cli`, every value checked (the checks that take more
    /// than a line are the functions after `impl Settings`).
    /// Long because the `Settings` literal gives each field its precedence rule on one line.
    fn merge(cli: &Cli, mut file: FileConfig) -> Result<Self> {
        let usage = |msg: &str| Error::Usage(msg.into());
        let filters = filters(cli, &file)?;
        let basis = basis(cli, &file)?;
        let source = (cli.source.clone().or(file.source.take()))
            .ok_or_else(|| usage("no source given (argument 1 or config key \"source\")"))?;
        let destination =
            (cli.destination.clone().or(file.destination.take())).ok_or_else(|| {
                usage("no destination given (argument 2 or config key \"destination\")")
            })?;
        let given = cli.processes.or(file.processes);
        let processes = processes(given).map_err(|msg| match cli.processes {
            None => file.bad("processes", msg),
            Some(_) => Error::Usage(msg),
        })?;
        // Growth only happens while workers sleep on I/O, so it is bounded
        // by what a latency-bound destination can use, not by CPUs.
        let max_processes = given.unwrap_or(16.max(processes));
        let bwlimit = bwlimit(cli, &file)?;
        let files_from = files_from(cli, &file)?;
        // rsync: --delete-excluded implies --delete.
        let delete_excluded = cli.delete_excluded || file.delete_excluded.unwrap_or(false);
        let stall = stall_timeout(cli, &file)?;
        let chunk_bytes = chunk_bytes(cli)?;
        let max_delete_percent = max_delete_percent(cli, &file)?;
        Ok(Settings {
            basis,
            source,
            destination,
            processes,
            log_file: cli.log_file.clone().or(file.log_file),
            json: cli.json,
            quiet: cli.quiet,
            verbose: cli.verbose,
            ignore_times: cli.ignore_times || file.ignore_times.unwrap_or(false),
            fsync: cli.fsync || file.fsync.unwrap_or(false),
            dereference: cli.dereference || file.dereference.unwrap_or(false),
            dry_run: cli.dry_run,
            filters,
            verify: cli.verify || file.verify.unwrap_or(false),
            no_progress: cli.no_progress,
            mkpath: cli.mkpath || file.mkpath.unwrap_or(false),
            one_file_system: cli.one_file_system || file.one_file_system.unwrap_or(false),
            update: cli.update || file.update.unwrap_or(false),
            checksum: cli.checksum || file.checksum.unwrap_or(false),
            bwlimit,
            // The wire's own enum is chosen where the worker's settings are
            // made (supervisor::worker_init): config knows no wire type.
            reflink: cli.reflink.or(file.reflink).unwrap_or(ReflinkArg::Auto),
            files_from,
            delete: cli.delete || file.delete.unwrap_or(false) || delete_excluded,
            delete_excluded,
            max_delete: cli.max_delete.or(file.max_delete),
            max_delete_percent,
            allow_empty_source: cli.allow_empty_source || file.allow_empty_source.unwrap_or(false),
            backup_dir: cli.backup_dir.clone().or_else(|| file.backup_dir.clone()),
            suffix: cli
                .suffix
                .clone()
                .or_else(|| file.suffix.clone())
                .unwrap_or_default(),
            itemize: cli.itemize_changes,
            json_lines: cli.json_lines.clone(),
            stall_timeout: Duration::from_secs_f64(stall),
            batch_files: 256,
            batch_bytes: 64 << 20,
            chunk_bytes,
            max_restarts_per_minute: 10 + 2 * max_processes,
            max_processes,
            worker_exe: cli.worker_exe.clone(),
            mpi: cli.mpi,
        })
    }
}

/// `--bwlimit` or `bwlimit` in bytes per second (0: no limit).
fn bwlimit(cli: &Cli, file: &FileConfig) -> Result<u64> {
    Ok(match (&cli.bwlimit, &file.bwlimit) {
        (Some(t), _) => parse_rate(t).map_err(Error::Usage)?,
        (None, Some(Rate::Text(t))) => parse_rate(t).map_err(|e| file.bad("bwlimit", e))?,
        (None, Some(Rate::KiB(k))) if *k >= 0.0 && k.is_finite() => (k * 1024.0) as u64,
        (None, Some(Rate::KiB(k))) => {
            return Err(file.bad(
                "bwlimit",
                format!("bwlimit must be a number of KiB/s of at least 0 (0: no limit), got {k}"),
            ))
        }
        (None, None) => 0,
    })
}

/// The `--files-from` list, read now; refused with `--delete`, which would
/// have no whole directory to compare.
fn files_from(cli: &Cli, file: &FileConfig) -> Result<Option<std::sync::Arc<Vec<Vec<u8>>>>> {
    let files_from = match cli.files_from.as_ref().or(file.files_from.as_ref()) {
        Some(p) => Some(std::sync::Arc::new(read_list(
            p,
            cli.from0 || file.from0.unwrap_or(false),
        )?)),
        None => None,
    };
    if files_from.is_some() && (cli.delete || file.delete.unwrap_or(false) || cli.delete_excluded) {
        return Err(Error::Usage(
            "--delete cannot be combined with --files-from (which entries would be extra?)".into(),
        ));
    }
    Ok(files_from)
}

/// `--stall-timeout` or `stall_timeout` in seconds (default 60, over 0).
fn stall_timeout(cli: &Cli, file: &FileConfig) -> Result<f64> {
    let stall = cli.stall_timeout.or(file.stall_timeout).unwrap_or(60.0);
    if !(stall.is_finite() && stall > 0.0) {
        let msg = format!("stall timeout must be > 0, got {stall}");
        return Err(match cli.stall_timeout {
            None => file.bad("stall_timeout", msg),
            Some(_) => Error::Usage(msg),
        });
    }
    Ok(stall)
}

/// `--chunk-bytes` (default 128 MiB, at least `MIN_CHUNK`).
fn chunk_bytes(cli: &Cli) -> Result<u64> {
    match cli.chunk_bytes.as_deref().map(parse_bytes).transpose() {
        Err(e) => Err(Error::Usage(e)),
        Ok(Some(n)) if n < MIN_CHUNK => Err(Error::Usage(format!(
            "chunk size must be at least {MIN_CHUNK} bytes, got {n}"
        ))),
        Ok(Some(n)) => Ok(n),
        Ok(None) => Ok(128 << 20),
    }
}

/// `--max-delete-percent` or `max_delete_percent`, between 0 and 100.
fn max_delete_percent(cli: &Cli, file: &FileConfig) -> Result<Option<f64>> {
    match cli.max_delete_percent.or(file.max_delete_percent) {
        Some(p) if !(0.0..=100.0).contains(&p) => {
            let msg = format!("--max-delete-percent must be between 0 and 100, got {p}");
            Err(match cli.max_delete_percent {
                None => file.bad("max_delete_percent", msg),
                Some(_) => Error::Usage(msg),
            })
        }
        p => Ok(p),
    }
}

/// What a basis directory is for (rsync's `alt_dest_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BasisKind {
    /// `--link-dest`: an unchanged entry is hard-linked from the basis.
    Link,
    /// `--compare-dest`: an unchanged entry is left out.
    Compare,
    /// `--copy-dest`: an unchanged entry is copied locally.
    Copy,
}

impl BasisKind {
    /// The option's name, for messages.
    pub fn flag(self) -> &'static str {
        match self {
            BasisKind::Link => "--link-dest",
            BasisKind::Compare => "--compare-dest",
            BasisKind::Copy => "--copy-dest",
        }
    }
}

/// The basis directories of a run, in the order they are searched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Basis {
    pub kind: BasisKind,
    /// As given; a relative one is resolved against the destination.
    pub dirs: Vec<PathBuf>,
}

/// rsync's MAX_BASIS_DIRS.
pub const MAX_BASIS_DIRS: usize = 20;

/// The one kind of basis directory given, if any (the command line's
/// replaces the config file's; kinds never mix, as in rsync).
fn basis(cli: &Cli, file: &FileConfig) -> Result<Option<Basis>> {
    let pick = |c: &Vec<PathBuf>, f: &Option<Vec<PathBuf>>| {
        if c.is_empty() {
            f.clone().unwrap_or_default()
        } else {
            c.clone()
        }
    };
    let given: Vec<Basis> = [
        (BasisKind::Link, pick(&cli.link_dest, &file.link_dest)),
        (
            BasisKind::Compare,
            pick(&cli.compare_dest, &file.compare_dest),
        ),
        (BasisKind::Copy, pick(&cli.copy_dest, &file.copy_dest)),
    ]
    .into_iter()
    .filter(|(_, d)| !d.is_empty())
    .map(|(kind, dirs)| Basis { kind, dirs })
    .collect();
    match &given[..] {
        [] => Ok(None),
        [b] if b.dirs.len() > MAX_BASIS_DIRS => Err(Error::Usage(format!(
            "{}: at most {MAX_BASIS_DIRS} directories, got {}",
            b.kind.flag(),
            b.dirs.len()
        ))),
        [b] => Ok(Some(b.clone())),
        [a, b, ..] => Err(Error::Usage(format!(
            "{} and {} cannot be combined (one kind of basis directory per run, as in rsync)",
            a.kind.flag(),
            b.kind.flag()
        ))),
    }
}

/// Worker count: given (1 to 1024), or the CPU count but at least 4: a
/// worker blocked on I/O or copying one large file leaves a CPU idle
/// otherwise (xcp chooses 4 for the same reason).
fn processes(given: Option<usize>) -> std::result::Result<usize, String> {
    match given {
        Some(0) => Err("processes must be at least 1, got 0".into()),
        Some(n) if n > 1024 => Err(format!("processes must be at most 1024, got {n}")),
        Some(n) => Ok(n),
        None => Ok(crate::util::cpus().max(4)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_ordered(std::iter::once("pcopy").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn filter_flags_keep_their_command_line_order() {
        let file = FileConfig {
            source: Some("a".into()),
            destination: Some("b".into()),
            exclude: Some(vec!["*.o".into()]),
            include: Some(vec!["keep.o".into()]),
            ..Default::default()
        };
        let c = cli(&["--exclude", "x/", "--include", "x/", "--exclude", "y"]);
        let s = Settings::merge(&c, file).unwrap();
        let got: Vec<(bool, &str)> = s
            .filters
            .iter()
            .map(|r| (r.include, std::str::from_utf8(&r.pattern).unwrap_or("?")))
            .collect();
        assert_eq!(
            got,
            [
                (true, "keep.o"),
                (false, "*.o"),
                (false, "x/"),
                (true, "x/"),
                (false, "y")
            ]
        );
    }

    #[test]
    fn cli_overrides_file() {
        let file = FileConfig {
            source: Some("fs".into()),
            destination: Some("fd".into()),
            processes: Some(3),
            ..Default::default()
        };
        let s = Settings::merge(&cli(&["-j", "5"]), file).unwrap();
        assert_eq!(s.processes, 5);
        assert_eq!(s.source, PathBuf::from("fs"));
    }

    #[test]
    fn chunk_bytes_below_a_page_is_a_usage_error() {
        let file = FileConfig {
            source: Some("a".into()),
            destination: Some("b".into()),
            ..Default::default()
        };
        let e = Settings::merge(&cli(&["--chunk-bytes", "100"]), file).unwrap_err();
        assert!(e.to_string().contains("chunk size"), "{e}");
    }

    #[test]
    fn zero_processes_rejected() {
        let file = FileConfig {
            source: Some("a".into()),
            destination: Some("b".into()),
            processes: Some(0),
            ..Default::default()
        };
        let e = Settings::merge(&cli(&[]), file).unwrap_err();
        assert!(e.to_string().contains("processes"), "{e}");
    }
}
