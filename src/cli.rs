//! Command-line definition (clap derive). No filesystem work happens here:
//! `config::Settings::resolve` turns these raw values into validated settings.

use clap::{CommandFactory, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

/// Copy the contents of SOURCE into DESTINATION with parallel worker processes.
///
/// Like `rsync -a SOURCE/ DESTINATION/`: directories, regular files, symlinks
/// (verbatim, never followed), hard links, FIFOs, with modes and nanosecond
/// times. Files are written under a temporary name and renamed into place, so
/// a re-run after any interruption finishes the job without recopying.
#[derive(Debug, Parser)]
#[command(name = "pcopy", version, args_override_self = true)]
pub struct Cli {
    /// Source directory (its contents are copied)
    pub source: Option<PathBuf>,
    /// Destination directory (created if missing)
    pub destination: Option<PathBuf>,

    /// Read settings from this JSON file [default: ./config.json when no paths are given]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Number of worker processes [default: number of CPUs, at least 4]
    #[arg(short = 'j', long, value_name = "N")]
    pub processes: Option<usize>,

    /// Append the run's log to FILE [default: none, or config's log_file]
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Print one JSON summary object on stdout instead of the text summary
    #[arg(long)]
    pub json: bool,

    /// Print only errors on the console (no summary text); with -v the log file still gets the detail
    #[arg(short, long)]
    pub quiet: bool,

    /// More detail: -v info on the console and a line per entry in the log file; -vv a line per entry on the console too
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Copy every file even if the destination has the same size and mtime
    #[arg(short = 'I', long)]
    pub ignore_times: bool,

    /// Follow symlinks in the source and copy what they point to (loops are reported and skipped)
    #[arg(short = 'L', long)]
    pub dereference: bool,

    /// Show what would be copied and skipped; write nothing at all
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Skip entries matching PATTERN, as rsync does ("+ PAT" includes, "- PAT" excludes, "!" clears; repeatable; see FILTER RULES in the man page)
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    pub exclude: Vec<OsString>,

    /// Keep entries matching PATTERN (repeatable; rules are checked in the order given, the first match wins)
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    pub include: Vec<OsString>,

    /// Read --exclude patterns from FILE, one per line (empty lines and lines starting with # or ; are skipped)
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,

    /// Read --include patterns from FILE, one per line
    #[arg(long, value_name = "FILE")]
    pub include_from: Vec<PathBuf>,

    /// The filter flags above in the order they were given (filled by `parse`).
    #[arg(skip)]
    pub rules: Vec<RuleArg>,

    /// After copying each file, re-read source and copy and compare BLAKE3 checksums
    #[arg(long)]
    pub verify: bool,

    /// Never draw the progress bar (it is drawn only when stderr is a terminal)
    #[arg(long)]
    pub no_progress: bool,

    /// Print a shell completion script for SHELL and exit
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit
    #[arg(long)]
    pub man: bool,

    /// fsync each file before renaming it into place (slower; survives power loss)
    #[arg(long)]
    pub fsync: bool,

    /// Kill and replace a worker that makes no progress for SECS seconds [default: 60]
    #[arg(long, value_name = "SECS")]
    pub stall_timeout: Option<f64>,

    /// Split files of at least twice BYTES into chunks of at least BYTES that several workers copy at once [default: 134217728]
    #[arg(long, value_name = "BYTES", env = "PCOPY_CHUNK_BYTES")]
    pub chunk_bytes: Option<String>,

    /// Delete destination entries the source does not have (mirror), after the copy (rsync's --delete-after; its --delete-before/-during/-delay are taken as this)
    #[arg(
        long,
        visible_alias = "delete-after",
        alias = "delete-before",
        alias = "delete-during",
        alias = "delete-delay"
    )]
    pub delete: bool,

    /// Also delete destination entries that --exclude matches (implies --delete, as in rsync)
    #[arg(long)]
    pub delete_excluded: bool,

    /// With --delete, delete at most N entries; the rest are kept and the exit code is 25 (without --delete: nothing to limit, as in rsync)
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,

    /// With --delete, delete nothing at all when more than PERCENT % of the destination's entries would go (exit 26)
    #[arg(long, value_name = "PERCENT")]
    pub max_delete_percent: Option<f64>,

    /// With --delete, run even when the source root is empty (by default an empty source, such as a mount point that is not mounted, is refused with exit 26 when the destination is not empty)
    #[arg(long)]
    pub allow_empty_source: bool,

    /// Move every entry the run deletes or replaces into DIR (relative: to the destination; same filesystem) instead of destroying it
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// With --backup-dir, append SUFFIX to each backed-up name [default: none]
    #[arg(long, value_name = "SUFFIX", requires = "backup_dir")]
    pub suffix: Option<String>,

    /// Snapshot backups: hard-link an entry the destination lacks from DIR when DIR has it unchanged (same type, size, mtime, mode, owner as root, ACLs, xattrs) instead of copying it; repeatable up to 20, searched in order; relative: to the destination, as in rsync
    #[arg(long, value_name = "DIR", conflicts_with_all = ["compare_dest", "copy_dest"])]
    pub link_dest: Vec<PathBuf>,

    /// Leave out an entry that DIR has unchanged (the destination gets only what differs from DIR); repeatable up to 20; relative: to the destination
    #[arg(long, value_name = "DIR", conflicts_with = "copy_dest")]
    pub compare_dest: Vec<PathBuf>,

    /// Copy an entry that DIR has unchanged from DIR, a local copy (cloned where the filesystem can); repeatable up to 20; relative: to the destination
    #[arg(long, value_name = "DIR")]
    pub copy_dest: Vec<PathBuf>,

    /// Print one line per change in rsync's itemize format (YXcstpoguax path)
    #[arg(short = 'i', long)]
    pub itemize_changes: bool,

    /// Write one JSON object per changed entry to FILE (- for stdout), then the summary object
    #[arg(long, value_name = "FILE")]
    pub json_lines: Option<PathBuf>,

    /// Share extents with the source where the filesystem can (auto), always (else the file fails), or never (an independent physical copy) [default: auto]
    #[arg(long, value_name = "WHEN")]
    pub reflink: Option<ReflinkArg>,

    /// Limit the data written by all workers together to RATE per second (rsync's units: K, M, G = 1024-based, KB, MB, GB = 1000-based, no suffix = KiB; 0 = no limit)
    #[arg(long, value_name = "RATE")]
    pub bwlimit: Option<String>,

    /// Skip files whose content (BLAKE3, hashed by the workers) equals the source's, instead of comparing size and mtime
    #[arg(short = 'c', long)]
    pub checksum: bool,

    /// Copy only the paths listed in FILE (- for stdin), one per line, relative to the source, with their parent directories; listed directories are not descended into
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,

    /// The --files-from list is separated by NUL bytes, not newlines (find -print0)
    #[arg(long, requires = "files_from")]
    pub from0: bool,

    /// Don't cross filesystem boundaries: a mount point is created, its contents are not copied
    #[arg(short = 'x', long)]
    pub one_file_system: bool,

    /// Skip files that are newer at the destination
    #[arg(short = 'u', long)]
    pub update: bool,

    /// Create the destination's missing parent directories (without it a missing parent is an error)
    #[arg(long)]
    pub mkpath: bool,

    /// Run as one rank of an MPI job (under mpirun or srun): the ranks share the walk and the copy (needs a build with the `mpi` feature)
    #[arg(long, hide = !cfg!(feature = "mpi"))]
    pub mpi: bool,

    /// rsync's flags for what pcopy always does (accepted so an rsync command line works)
    #[command(flatten)]
    pub rsync: RsyncFlags,

    /// Internal (tests, packaging): the executable started as each worker [default: this one]
    #[arg(long, hide = true, value_name = "PATH", env = "PCOPY_WORKER_EXE")]
    pub worker_exe: Option<PathBuf>,

    /// Internal: run as a worker connecting to this IPC server name.
    #[arg(long, hide = true, value_name = "TOKEN")]
    pub worker: Option<OsString>,
}

const EXAMPLES: &str = "\
Examples:
  pcopy /data/src /backup/dst          copy the contents of /data/src into /backup/dst
                                       (with or without a trailing /: like rsync's src/ dst/,
                                       unlike cp -a, which would create dst/src)
  pcopy --delete -i src dst            mirror, printing each change rsync-style
  pcopy -n -i src dst                  what would change? (writes nothing)
  pcopy -j 8 --log-file copy.log a b   8 workers, log to copy.log
  pcopy --json src dst | jq .files_failed
  pcopy                                use ./config.json (source, destination, processes, log_file)";

/// The text after the options in `--help`: examples, then the exit codes
/// from the one table in code (`ExitStatus::TABLE`).
fn after_help() -> String {
    let mut s = format!("{EXAMPLES}\n\nExit status:\n");
    for (code, meaning) in crate::error::ExitStatus::TABLE {
        s += &format!("  {code:>3}  {}\n", meaning.replace('`', ""));
    }
    s
}

/// The command with its generated help text (also what the completions
/// are made from).
pub fn command() -> clap::Command {
    base_command().after_help(after_help())
}

/// The command as completions offer it: without hidden arguments (the
/// completion generators list those too).
fn completion_command() -> clap::Command {
    let full = command();
    full.get_arguments()
        .filter(|a| !a.is_hide_set())
        .fold(clap::Command::new("pcopy"), |c, a| c.arg(a.clone()))
}

/// The command without the `--help` epilogue (the man page has sections).
pub fn base_command() -> clap::Command {
    Cli::command()
}

/// rsync flags whose meaning pcopy always has: accepted and ignored, so an
/// `rsync -aHAXS --numeric-ids --stats` line runs unchanged. (Read by
/// nothing: each says what pcopy does anyway.)
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "rsync compatibility (pcopy always does these)")]
pub struct RsyncFlags {
    /// Archive mode: recursive, symlinks, permissions, times, group, owner (as root), devices and specials
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// -r -l -p -t -g -o: recursive, symlinks as symlinks, permissions, times, group, owner (as root)
    #[arg(
        short = 'r',
        long = "recursive",
        alias = "links",
        alias = "perms",
        alias = "times",
        alias = "group",
        alias = "owner"
    )]
    pub parts: bool,
    #[arg(short = 'l', hide = true)]
    pub links: bool,
    #[arg(short = 'p', hide = true)]
    pub perms: bool,
    #[arg(short = 't', hide = true)]
    pub times: bool,
    #[arg(short = 'g', hide = true)]
    pub group: bool,
    #[arg(short = 'o', hide = true)]
    pub owner: bool,
    /// Hard links stay hard links
    #[arg(short = 'H', long = "hard-links")]
    pub hard_links: bool,
    /// ACLs are copied (as the system.posix_acl_* extended attributes)
    #[arg(short = 'A', long = "acls")]
    pub acls: bool,
    /// Extended attributes are copied
    #[arg(short = 'X', long = "xattrs")]
    pub xattrs: bool,
    /// Holes stay holes
    #[arg(short = 'S', long = "sparse")]
    pub sparse: bool,
    /// Devices and special files are copied (--devices --specials)
    #[arg(short = 'D', alias = "devices", alias = "specials")]
    pub devices: bool,
    /// Owners and groups are kept by number (pcopy never maps names)
    #[arg(long = "numeric-ids")]
    pub numeric_ids: bool,
    /// Files are copied whole
    #[arg(short = 'W', long = "whole-file")]
    pub whole_file: bool,
    /// The progress bar (drawn when stderr is a terminal; --no-progress turns it off)
    #[arg(long = "progress")]
    pub progress: bool,
    /// --partial --progress: an interrupted file never appears under its name, and the bar
    #[arg(short = 'P', alias = "partial")]
    pub partial_progress: bool,
    /// The summary (printed at the end unless -q or --json)
    #[arg(long = "stats")]
    pub stats: bool,
}

/// rsync flags pcopy refuses, with what it does instead: one line, exit 2,
/// before clap (which would only say "unexpected argument").
const REFUSED: &[(&[&str], &str)] = &[
    (&["-z", "--compress"], "pcopy copies locally: there is nothing to compress"),
    (&["-e", "--rsh"], "pcopy copies locally (no remote shell); mount the remote side, or use --mpi across machines"),
    (&["--inplace", "--append", "--append-verify"], "pcopy never writes into a file in place: each file is written under a temporary name and renamed"),
    (&["-b", "--backup"], "use --backup-dir DIR (and --suffix): pcopy keeps what it replaces or deletes there"),
    (&["--partial-dir", "--temp-dir", "-T"], "pcopy writes temporaries beside their final names (unnamed where the filesystem can), never in another directory"),
    (&["--filter", "-f", "-F"], "pcopy takes --include/--exclude (and their -from files), with rsync's matching; merge files are not supported"),
];

/// The refusal for an rsync flag pcopy does not take, if `arg` is one (a
/// long flag, a short one, or a bundle of short ones like `-avz`).
fn refused(arg: &str) -> Option<String> {
    let flags: Vec<String> = match arg.strip_prefix("--") {
        Some(long) => vec![format!("--{}", long.split('=').next().unwrap_or(long))],
        None => match arg.strip_prefix('-') {
            Some(shorts) => shorts.chars().map(|c| format!("-{c}")).collect(),
            None => Vec::new(),
        },
    };
    flags.iter().find_map(|f| {
        REFUSED
            .iter()
            .find(|(names, _)| names.contains(&f.as_str()))
            .map(|(names, why)| format!("{} is not supported: {why}", names.join("/")))
    })
}

/// `--reflink WHEN`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ReflinkArg {
    Auto,
    Always,
    Never,
}

/// One filter flag, in command-line order; pattern files are read by
/// `config` (no filesystem work here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleArg {
    Include(OsString),
    Exclude(OsString),
    IncludeFrom(PathBuf),
    ExcludeFrom(PathBuf),
}

/// The filter flags of `m` in the order given (clap keeps each flag's
/// values apart; their indices say how they interleave).
fn ordered_rules(m: &clap::ArgMatches) -> Vec<RuleArg> {
    fn take<T: Clone + Send + Sync + 'static>(
        m: &clap::ArgMatches,
        id: &str,
        wrap: fn(T) -> RuleArg,
        out: &mut Vec<(usize, RuleArg)>,
    ) {
        if let (Some(idx), Some(vals)) = (m.indices_of(id), m.get_many::<T>(id)) {
            out.extend(idx.zip(vals.cloned().map(wrap)));
        }
    }
    let mut out = Vec::new();
    take::<OsString>(m, "include", RuleArg::Include, &mut out);
    take::<OsString>(m, "exclude", RuleArg::Exclude, &mut out);
    take::<PathBuf>(m, "include_from", RuleArg::IncludeFrom, &mut out);
    take::<PathBuf>(m, "exclude_from", RuleArg::ExcludeFrom, &mut out);
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

impl Cli {
    /// Parse `args` (tests) the way `parse` parses argv.
    pub fn try_parse_ordered<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let m = command().try_get_matches_from(args)?;
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m)?;
        cli.rules = ordered_rules(&m);
        Ok(cli)
    }
}

/// What this process is: decided first, before any other setup.
pub enum Mode {
    Worker(String),
    /// `--completions SHELL` or `--man`: print generated text and exit.
    Print(Vec<u8>),
    Supervisor(Box<Cli>),
}

/// `--help`/`--version` print as clap does; a usage error is one line on
/// stderr (clap's first line, which names the flag and the problem) and
/// exit 2, not a usage block.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    if matches!(
        e.kind(),
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    // An rsync flag pcopy does not take: say what it does instead.
    let refused = (e.kind() == K::UnknownArgument)
        .then(|| args.iter().find_map(|a| refused(a)))
        .flatten();
    let msg = match refused {
        Some(why) => why.to_string(),
        None => format!("{} (see pcopy --help)", first_sentence(&e.to_string())),
    };
    crate::util::err_line(&format!("pcopy: {msg}"));
    if args.iter().any(|a| a == "--json") {
        // Scripts parse stdout: the promised object, even now.
        let v = serde_json::json!({
            "schema_version": crate::stats::SCHEMA_VERSION,
            "exit_code": 2,
            "error": { "kind": "usage", "message": msg },
        });
        crate::util::out_line(&v.to_string());
    }
    std::process::exit(2)
}

/// clap's message as one line: its first paragraph, lines joined (a
/// missing argument is named on the line after "were not provided:").
fn first_sentence(text: &str) -> String {
    let para: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let joined = para.join(" ");
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    if joined.is_empty() {
        "invalid arguments".to_string()
    } else {
        joined.to_string()
    }
}

/// Parse argv. `--help` and `--version` exit inside clap; a usage error
/// is printed by `usage_error` (also as JSON under `--json`) and exits 2.
pub fn parse() -> Mode {
    let cli = Cli::try_parse_ordered(std::env::args_os()).unwrap_or_else(|e| usage_error(e));
    if let Some(token) = &cli.worker {
        return Mode::Worker(token.to_string_lossy().into_owned());
    }
    if let Some(shell) = cli.completions {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut completion_command(), "pcopy", &mut out);
        return Mode::Print(out);
    }
    if cli.man {
        return Mode::Print(crate::manpage::render(base_command()));
    }
    Mode::Supervisor(Box::new(cli))
}
