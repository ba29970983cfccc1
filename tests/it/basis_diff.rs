//! Differential test of `--link-dest`, `--compare-dest` and `--copy-dest`
//! against rsync, on generated trees (itemize_diff's generator and
//! mutations).
//!
//! For each seed: a random source tree; 1 to 3 basis directories, siblings
//! of the destination (`b0`, `b1`, `b2`), each a copy of the source with
//! itemize_diff's mutations (content, size, mtime, mode, owner as root,
//! removed, extra, type clash, hard links split or joined, symlink target,
//! directory mode or mtime); a destination that is missing, empty or a
//! mutated copy of the source (a snapshot half done); one of the three
//! options naming every basis (each as `../bK`, relative to the destination,
//! or absolute), and some of `--delete`, `-c`, `-u`, `-I`. Then:
//!
//! 1. `rsync -n -i -aHAX --numeric-ids FLAGS SRC/ DST/` and
//!    `pcopy -n -i --json FLAGS SRC DST`: the itemize records must be the
//!    same set (compared as itemize_diff compares them).
//! 2. The real runs, each in its own directory `runK/{b0,b1,dst}` (a
//!    relative basis must sit where it sits for the other tool): the trees
//!    left must be equal (types, bytes, modes, mtimes, symlink targets,
//!    hard-link groups, owners as root), and each destination file must
//!    share its inode with the same basis names (`b0/a/f`, ...) after both
//!    runs: what `--link-dest` linked.
//! 3. pcopy's real `-i` records must be its dry run's, and its `--json`
//!    counters (`files_linked_from_basis`, ...) the dry run's.
//! 4. pcopy must leave every basis as it was (bytes, metadata, inodes), in
//!    the dry run and the real run.
//!
//! Tolerated, as in itemize_diff: a pcopy `-n` record that differs from
//! rsync's `-n` one but equals rsync's real run's (rsync's dry run
//! mispredicting itself; `BASIS_DIFF_STRICT_DRY=1` counts them too), and
//! within a source hard-link group which name carries the data (`>f` or
//! `hf ... => FIRST`), through itemize_diff's `compare_items`. Type clashes
//! in the destination are generated only with `--delete` (README, "How
//! pcopy differs"); a basis may have any type at a path.
//!
//! Knobs: `PCOPY_BASIS_SEEDS=N` (default 100, about 30 s in a debug build) seeds from 0;
//! `PCOPY_BASIS_SEED=S` runs only seed S, prints its trees and keeps its temp
//! dir; `PCOPY_BASIS_REPORTS=N` full seed reports in the failure message
//! (default 6); `BASIS_DIFF_NO_<NAME>=1` switches off one of [`DIMENSIONS`].

use crate::difftest::{env_num, rsync_ran, rsync_version};
use crate::itemize_diff::{
    bag, command_line, compare_counters, compare_items, compare_trees, env_flag, items,
    letters_only, listing, materialize, mutate, parent_of, run, show, snapshot, status_line,
    unlock, Dims, Finding, Flags, Items, Rng, Seen, Tree,
};
use crate::util::{bin, is_root, settled, skip};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every switchable dimension: `BASIS_DIFF_NO_<NAME>=1` turns one off.
pub const DIMENSIONS: &[&str] = &[
    // what the source holds (itemize_diff's generator)
    "HARDLINKS",
    "FIFOS",
    "SYMLINKS",
    "DIR_MODES",
    "OWNER", // as root: entries owned by another uid, and owner changes
    // what the destination is
    "MISSING",
    "EMPTY",
    "MUTATED",
    // mutations (of the bases and of a mutated destination)
    "SAME_SIZE",
    "SIZE",
    "MTIME",
    "MODE",
    "REMOVED",
    "EXTRA",
    "TYPE_CLASH", // in a basis always; in the destination only with --delete
    "LINK_SPLIT",
    "LINK_JOIN",
    "NEWER",
    "SYMLINK_TARGET",
    "DIR_META",
    // the option and its directories
    "LINK_DEST",
    "COMPARE_DEST",
    "COPY_DEST",
    "MULTI",    // 2 or 3 bases (else 1)
    "RELATIVE", // a basis given as ../bK (else absolute)
    "ABSOLUTE",
    // flags
    "DELETE",
    "CHECKSUM",
    "UPDATE",
    "IGNORE_TIMES",
    // checks
    "REAL_RUN",        // trees equal, real -i = dry -i
    "INODES",          // which basis names each destination file is linked to
    "COUNTS",          // --json counters of dry and real run
    "DIR_MTIMES",      // directories' mtimes in the tree comparison
    "BASIS_UNCHANGED", // pcopy leaves the bases as they were
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Link,
    Compare,
    Copy,
}

impl Opt {
    fn flag(self) -> &'static str {
        match self {
            Opt::Link => "--link-dest",
            Opt::Compare => "--compare-dest",
            Opt::Copy => "--copy-dest",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DestKind {
    Missing,
    Empty,
    Mutated,
}

/// A generated tree and what was done to which path.
struct Gen {
    tree: Tree,
    notes: BTreeMap<String, String>,
}

/// What was done to `p` (or to a directory above it) in `notes`.
fn note_of(notes: &BTreeMap<String, String>, p: &str) -> String {
    if let Some(n) = notes.get(p) {
        return n.clone();
    }
    let mut q = p;
    while !q.is_empty() {
        q = parent_of(q);
        if let Some(n) = notes.get(q) {
            return format!("under: {n}");
        }
    }
    "same".into()
}

struct Case {
    seed: u64,
    root: bool,
    tmp: Option<tempfile::TempDir>,
    src: PathBuf,
    src_tree: Tree,
    bases: Vec<Gen>,
    /// Per basis: given relative to the destination (`../bK`).
    relative: Vec<bool>,
    opt: Opt,
    dest: Option<Gen>,
    dest_kind: DestKind,
    flags: Flags,
}

impl Drop for Case {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            if std::env::var_os("PCOPY_BASIS_SEED").is_some() {
                eprintln!("kept {}", tmp.keep().display());
            } else {
                unlock(tmp.path());
            }
        }
    }
}

impl Case {
    fn new(seed: u64, dims: &Dims) -> Case {
        let root = is_root();
        let mut r = Rng::new(seed ^ 0xba51_5000);
        let src_tree = crate::itemize_diff::gen_source(&mut r, dims, root);
        let flags = Flags::gen(&mut r, dims);
        let opt = r.weighted(
            dims,
            &[
                (Opt::Link, "LINK_DEST", 3),
                (Opt::Compare, "COMPARE_DEST", 2),
                (Opt::Copy, "COPY_DEST", 2),
            ],
            Opt::Link,
        );
        let n = if dims.on("MULTI") { r.range(1, 3) } else { 1 };
        // A type clash in a basis is only another basis entry, whatever
        // --delete says.
        let any_clash = Flags {
            delete: true,
            ..Flags::default()
        };
        let bases: Vec<Gen> = (0..n)
            .map(|_| {
                let mut notes = BTreeMap::new();
                let tree = mutate(&mut r, dims, &src_tree, any_clash, root, &mut notes);
                Gen { tree, notes }
            })
            .collect();
        let relative = (0..n)
            .map(|_| match (dims.on("RELATIVE"), dims.on("ABSOLUTE")) {
                (true, true) => r.percent(50),
                (rel, _) => rel,
            })
            .collect();
        let dest_kind = r.weighted(
            dims,
            &[
                (DestKind::Missing, "MISSING", 2),
                (DestKind::Empty, "EMPTY", 1),
                (DestKind::Mutated, "MUTATED", 4),
            ],
            DestKind::Mutated,
        );
        let dest = match dest_kind {
            DestKind::Missing => None,
            DestKind::Empty => {
                let mut tree = Tree::new();
                tree.insert(String::new(), crate::itemize_diff::dir_ent(&mut r, dims));
                Some(Gen {
                    tree,
                    notes: BTreeMap::new(),
                })
            }
            DestKind::Mutated => {
                let mut notes = BTreeMap::new();
                let tree = mutate(&mut r, dims, &src_tree, flags, root, &mut notes);
                Some(Gen { tree, notes })
            }
        };
        let mut dest = dest;
        if flags.update {
            // Not generated: under -u, a hard-link group name whose
            // destination file is newer. pcopy keeps it (as -u says, and as
            // both tools do without a basis); rsync relinks it when the
            // group's leader came from a basis (finish_hard_link after
            // copy_altdest_file or a basis link skips the -u check). README,
            // "How pcopy differs".
            if let Some(g) = dest.as_mut() {
                for (p, e) in &src_tree {
                    let newer = matches!(
                        (&e.kind, g.tree.get(p)),
                        (crate::itemize_diff::Kind::File(_), Some(d))
                            if e.ino.is_some()
                                && matches!(d.kind, crate::itemize_diff::Kind::File(_))
                                && d.mtime > e.mtime
                    );
                    if newer {
                        g.tree.insert(p.clone(), e.clone());
                        g.notes.remove(p);
                    }
                }
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("pcopy-basis-diff-{seed}-"))
            .tempdir()
            .expect("tempdir");
        let src = tmp.path().join("src");
        materialize(&src, &src_tree);
        Case {
            seed,
            root,
            tmp: Some(tmp),
            src,
            src_tree,
            bases,
            relative,
            opt,
            dest,
            dest_kind,
            flags,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.as_ref().expect("temp dir").path()
    }

    /// A fresh `name/{b0,..,dst}`: the bases and the destination, made
    /// from their models (identical for every run). Returns `name/`.
    fn run_dir(&self, name: &str) -> PathBuf {
        let d = self.dir().join(name);
        std::fs::create_dir(&d).expect("mkdir run dir");
        for (j, b) in self.bases.iter().enumerate() {
            materialize(&d.join(format!("b{j}")), &b.tree);
        }
        if let Some(g) = &self.dest {
            materialize(&d.join("dst"), &g.tree);
        }
        d
    }

    fn basis_args(&self, run: &Path) -> Vec<String> {
        self.relative
            .iter()
            .enumerate()
            .map(|(j, rel)| {
                let dir = if *rel {
                    format!("../b{j}")
                } else {
                    run.join(format!("b{j}")).display().to_string()
                };
                format!("{}={dir}", self.opt.flag())
            })
            .collect()
    }

    fn rsync_args(&self, dry: bool, run: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec!["-i".into(), "-aHAX".into(), "--numeric-ids".into()];
        if dry {
            a.insert(0, "-n".into());
        }
        a.extend(self.flags.args().iter().map(|s| s.to_string()));
        a.extend(self.basis_args(run));
        a.push(format!("{}/", self.src.display()));
        a.push(format!("{}/", run.join("dst").display()));
        a
    }

    fn pcopy_args(&self, dry: bool, run: &Path) -> Vec<String> {
        let mut a: Vec<String> = ["--no-progress", "-j", "2", "-i", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if dry {
            a.insert(0, "-n".into());
        }
        a.extend(self.flags.args().iter().map(|s| s.to_string()));
        a.extend(self.basis_args(run));
        a.push(self.src.display().to_string());
        a.push(run.join("dst").display().to_string());
        a
    }

    /// What the destination and each basis have at `p`, for classing.
    fn label(&self, p: &str) -> String {
        let dst = match (self.dest_kind, &self.dest) {
            (DestKind::Missing, _) => "missing".to_string(),
            (DestKind::Empty, _) => "empty".to_string(),
            (DestKind::Mutated, Some(g)) => note_of(&g.notes, p),
            (DestKind::Mutated, None) => unreachable!(),
        };
        let mut s = format!("dst: {dst}");
        for (j, b) in self.bases.iter().enumerate() {
            let _ = write!(s, "; b{j}: {}", note_of(&b.notes, p));
        }
        s
    }

    fn labels(&self, at: &str, is_group: bool, groups: &[Vec<String>]) -> String {
        match groups.iter().find(|g| is_group && g[0] == at) {
            Some(g) => {
                let l: BTreeSet<String> = g.iter().map(|p| self.label(p)).collect();
                format!(
                    "hard-link group: {}",
                    l.into_iter().collect::<Vec<_>>().join(" | ")
                )
            }
            None => self.label(at),
        }
    }

    fn src_groups(&self) -> Vec<Vec<String>> {
        let mut g: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (p, e) in &self.src_tree {
            if let Some(i) = e.ino {
                g.entry(i).or_default().push(p.clone());
            }
        }
        g.into_values().filter(|v| v.len() > 1).collect()
    }

    fn opt_label(&self) -> String {
        let dirs: Vec<String> = self
            .relative
            .iter()
            .enumerate()
            .map(|(j, rel)| {
                if *rel {
                    format!("../b{j}")
                } else {
                    format!("/b{j}")
                }
            })
            .collect();
        format!("{} {}", self.opt.flag(), dirs.join(","))
    }

    fn header(&self, full: bool) -> String {
        let mut s = format!(
            "seed {seed}: {opt}; flags {flags}; destination {kind:?} (rerun alone, keeping its \
             files: PCOPY_BASIS_SEED={seed} cargo test --test it basis_diff -- --nocapture)\n",
            seed = self.seed,
            opt = self.opt_label(),
            flags = self.flags.label(),
            kind = self.dest_kind,
        );
        if full {
            let _ = writeln!(s, "  source:      {}", listing(Some(&self.src_tree)));
            for (j, b) in self.bases.iter().enumerate() {
                let _ = writeln!(s, "  b{j}:          {}", listing(Some(&b.tree)));
                for (p, n) in &b.notes {
                    let _ = writeln!(s, "    {}: {n}", if p.is_empty() { "." } else { p });
                }
            }
            let _ = writeln!(
                s,
                "  destination: {}",
                listing(self.dest.as_ref().map(|g| &g.tree))
            );
            if let Some(g) = &self.dest {
                for (p, n) in &g.notes {
                    let _ = writeln!(s, "    {}: {n}", if p.is_empty() { "." } else { p });
                }
            }
        }
        s
    }
}

/// For each non-directory under `run/dst`, the basis names (`bK/path`)
/// that are its inode.
fn basis_links(run: &Path, bases: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_ino: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
    for j in 0..bases {
        let root = run.join(format!("b{j}"));
        for e in walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(Result::ok)
        {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                continue;
            }
            let rel = e.path().strip_prefix(&root).expect("under root");
            by_ino
                .entry((m.dev(), m.ino()))
                .or_default()
                .insert(format!("b{j}/{}", rel.display()));
        }
    }
    let mut out = BTreeMap::new();
    let dst = run.join("dst");
    for e in walkdir::WalkDir::new(&dst)
        .into_iter()
        .filter_map(Result::ok)
    {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.is_dir() {
            continue;
        }
        let rel = e.path().strip_prefix(&dst).expect("under root");
        let names = by_ino.get(&(m.dev(), m.ino())).cloned().unwrap_or_default();
        out.insert(rel.display().to_string(), names);
    }
    out
}

/// A basis as it is: its tree and each name's inode.
type BasisState = (Option<BTreeMap<String, Seen>>, BTreeMap<String, (u64, u64)>);

fn basis_state(root: &Path) -> BasisState {
    let mut inos = BTreeMap::new();
    for e in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
    {
        if let Ok(m) = e.path().symlink_metadata() {
            let rel = e.path().strip_prefix(root).expect("under root");
            inos.insert(rel.display().to_string(), (m.dev(), m.ino()));
        }
    }
    (snapshot(root), inos)
}

fn bases_state(run: &Path, n: usize) -> Vec<BasisState> {
    (0..n)
        .map(|j| basis_state(&run.join(format!("b{j}"))))
        .collect()
}

/// Where pcopy's run left a basis other than it found it.
fn basis_changes(before: &[BasisState], after: &[BasisState], what: &str, out: &mut Vec<Finding>) {
    for (j, (b, a)) in before.iter().zip(after).enumerate() {
        let (Some(tb), Some(ta)) = (&b.0, &a.0) else {
            continue;
        };
        let paths: BTreeSet<&String> = tb.keys().chain(ta.keys()).collect();
        for p in paths {
            let changed = match (tb.get(p), ta.get(p)) {
                (Some(x), Some(y)) => {
                    let mut c = Vec::new();
                    if x.kind != y.kind {
                        c.push("type");
                    }
                    if x.data != y.data {
                        c.push("data");
                    }
                    if x.mode != y.mode {
                        c.push("mode");
                    }
                    if x.mtime != y.mtime {
                        c.push("mtime");
                    }
                    if x.owner != y.owner {
                        c.push("owner");
                    }
                    if x.links != y.links {
                        c.push("links");
                    }
                    if b.1.get(p) != a.1.get(p) {
                        c.push("inode");
                    }
                    c.join(", ")
                }
                (None, Some(_)) => "appeared".into(),
                (Some(_), None) => "vanished".into(),
                (None, None) => continue,
            };
            if !changed.is_empty() {
                let name = if p.is_empty() { "." } else { p.as_str() };
                out.push(Finding {
                    class: format!("pcopy {what} changed a basis: {changed}"),
                    detail: format!("b{j}/{name}: {changed}"),
                });
            }
        }
    }
}

fn push_item_diffs(
    case: &Case,
    groups: &[Vec<String>],
    diffs: Vec<crate::itemize_diff::ItemDiff>,
    real: Option<&Items>,
    out: &mut Vec<Finding>,
) {
    for d in diffs {
        let mut detail = format!("{}: rsync {}, pcopy {}", d.what, d.expected, d.got);
        if let Some(real) = real {
            let rr = if d.is_group {
                groups
                    .iter()
                    .find(|g| g[0] == d.at)
                    .map_or_else(String::new, |g| bag(real, g))
            } else {
                show(real.get(&d.at))
            };
            if rr != d.expected {
                let _ = write!(detail, " (rsync's real run: {rr})");
            }
        }
        out.push(Finding {
            class: format!(
                "-n -i [{}] rsync {} / pcopy {}",
                case.labels(&d.at, d.is_group, groups),
                letters_only(&d.expected),
                letters_only(&d.got)
            ),
            detail,
        });
    }
}

/// Runs one seed; None when rsync rejected the case.
fn run_case(seed: u64, dims: &Dims) -> Option<(Case, Vec<Finding>, String, usize)> {
    let case = Case::new(seed, dims);
    let strict_dry = env_flag("BASIS_DIFF_STRICT_DRY");
    let pcopy = bin();
    let n = case.bases.len();
    let mut findings = Vec::new();
    let mut cmds = String::new();
    let mut log = |prog: &str, args: &[String], out: &std::process::Output| {
        let _ = writeln!(
            cmds,
            "  {}\n    {}",
            command_line(prog, args),
            status_line(out)
        );
    };

    let (run_rn, run_pn) = (case.run_dir("run_rsync_n"), case.run_dir("run_pcopy_n"));
    let rn_args = case.rsync_args(true, &run_rn);
    let rn = run("rsync", &rn_args);
    if !rsync_ran(&rn) {
        eprintln!(
            "seed {seed}: rsync failed ({}), skipped:\n  {}",
            status_line(&rn),
            command_line("rsync", &rn_args)
        );
        return None;
    }
    // rsync's real run now: its dry run's status is judged by it.
    let (run_r, run_p) = (case.run_dir("run_rsync"), case.run_dir("run_pcopy"));
    let r_args = case.rsync_args(false, &run_r);
    let rr = run("rsync", &r_args);
    if !rsync_ran(&rr) {
        // e.g. "File-list index 13 not in 15 - 35 (finish_hard_link)",
        // exit 2: rsync gave up on the case, its tree is no reference.
        eprintln!(
            "seed {seed}: rsync's real run failed ({}), skipped:\n  {}",
            status_line(&rr),
            command_line("rsync", &r_args)
        );
        return None;
    }
    let pn_before = bases_state(&run_pn, n);
    let pn_args = case.pcopy_args(true, &run_pn);
    let pn = run(&pcopy, &pn_args);
    log("rsync", &rn_args, &rn);
    log(&pcopy, &pn_args, &pn);
    if dims.on("BASIS_UNCHANGED") {
        basis_changes(
            &pn_before,
            &bases_state(&run_pn, n),
            "dry run",
            &mut findings,
        );
    }

    let groups = case.src_groups();
    let clashed: BTreeSet<String> = case
        .dest
        .iter()
        .flat_map(|g| g.notes.iter())
        .filter(|(_, what)| what.contains("type clash"))
        .map(|(p, _)| p.clone())
        .collect();
    let r_items = items(&rn.stdout, false);
    // With --json the -i lines go to stderr: stdout is the one object.
    let p_items = items(&pn.stderr, false);
    if serde_json::from_slice::<serde_json::Value>(&pn.stdout).is_err() {
        findings.push(Finding {
            class: "--json -i: the dry run's stdout is not one JSON object".into(),
            detail: String::from_utf8_lossy(&pn.stdout).into_owned(),
        });
    }
    // rsync's dry run fails where its real run does not (e.g. `-n
    // --copy-dest` into a missing destination: "gen_entry_copy_xattrs:
    // openat(...) failed"): its real run's status is the reference then.
    let rn_ok = rn.status.success()
        || (rsync_ran(&rr) && rr.status.success() && !strict_dry)
        || own_errors(&rn);
    if rn_ok != pn.status.success() {
        findings.push(Finding {
            class: format!(
                "exit status of the dry run: rsync {:?}, pcopy {:?}",
                rn.status.code(),
                pn.status.code()
            ),
            detail: String::new(),
        });
    }

    let p_before = bases_state(&run_p, n);
    let p_args = case.pcopy_args(false, &run_p);
    let pr = run(&pcopy, &p_args);
    settled(&run_p.join("dst"));
    log("rsync", &r_args, &rr);
    log(&pcopy, &p_args, &pr);
    let r_real_items = (rsync_ran(&rr) && !strict_dry).then(|| items(&rr.stdout, false));
    if dims.on("BASIS_UNCHANGED") {
        basis_changes(
            &p_before,
            &bases_state(&run_p, n),
            "real run",
            &mut findings,
        );
    }
    if dims.on("REAL_RUN") {
        compare_trees(
            &|p| case.label(p),
            case.root,
            dims.on("DIR_MTIMES"),
            &snapshot(&run_r.join("dst")),
            &snapshot(&run_p.join("dst")),
            &mut findings,
        );
        let real = items(&pr.stderr, false);
        let (diffs, _) = compare_items(&groups, &clashed, &p_items, None, &real, false);
        for d in diffs {
            findings.push(Finding {
                class: format!(
                    "pcopy -i: real run differs from its dry run [{}] dry {} / real {}",
                    case.labels(&d.at, d.is_group, &groups),
                    letters_only(&d.expected),
                    letters_only(&d.got)
                ),
                detail: format!("{}: dry {}, real {}", d.what, d.expected, d.got),
            });
        }
        if pn.status.code() != pr.status.code() {
            findings.push(Finding {
                class: format!(
                    "pcopy exit status: dry run {:?}, real run {:?}",
                    pn.status.code(),
                    pr.status.code()
                ),
                detail: String::new(),
            });
        }
        if (rr.status.success() || own_errors(&rr)) != pr.status.success() {
            findings.push(Finding {
                class: format!(
                    "exit status of the real run: rsync {:?}, pcopy {:?}",
                    rr.status.code(),
                    pr.status.code()
                ),
                detail: String::new(),
            });
        }
    }
    if dims.on("INODES") {
        let (a, b) = (basis_links(&run_r, n), basis_links(&run_p, n));
        for (p, x) in &a {
            // A name only one tool left is the tree comparison's finding.
            let Some(y) = b.get(p) else { continue };
            if x != y {
                let word = |s: &BTreeSet<String>| {
                    if s.is_empty() {
                        "its own inode".to_string()
                    } else {
                        s.iter().cloned().collect::<Vec<_>>().join(" ")
                    }
                };
                let same_path =
                    |s: &BTreeSet<String>| (0..n).any(|j| s.contains(&format!("b{j}/{p}")));
                out_inode(
                    &mut findings,
                    &case.label(p),
                    p,
                    (word(x), same_path(x)),
                    (word(y), same_path(y)),
                );
            }
        }
    }
    if dims.on("COUNTS") {
        compare_counters((&pn, &pr), &mut findings);
    }

    let (diffs, accepted) = compare_items(
        &groups,
        &clashed,
        &r_items,
        r_real_items.as_ref(),
        &p_items,
        false,
    );
    push_item_diffs(&case, &groups, diffs, r_real_items.as_ref(), &mut findings);
    Some((case, findings, cmds, accepted))
}

/// rsync exited 23 only for errors of its own making, which pcopy has no
/// counterpart of: reading the ACL or xattr list of a basis name that does
/// not exist (hard_link_check compares with the last basis it stat'ed,
/// whatever its path), of a destination directory it is about to replace,
/// or (dry run) of a destination directory it did not create.
fn own_errors(out: &std::process::Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("rsync: ")).collect();
    out.status.code() == Some(23)
        && !errors.is_empty()
        && errors.iter().all(|l| {
            ["get_acl: ", "get_xattr_names: ", "gen_entry_copy_xattrs: "]
                .iter()
                .any(|w| l.contains(w))
        })
}

/// A destination file linked to other basis names by the two tools.
fn out_inode(
    out: &mut Vec<Finding>,
    label: &str,
    p: &str,
    (x, xs): (String, bool),
    (y, ys): (String, bool),
) {
    let yn = |b: bool| if b { "linked" } else { "not linked" };
    out.push(Finding {
        class: format!(
            "real run: inode shared with the basis differs [{label}] rsync {} / pcopy {}",
            yn(xs),
            yn(ys)
        ),
        detail: format!("{p}: rsync's is {x}; pcopy's is {y}"),
    });
}

#[derive(Default)]
struct Class {
    seeds: BTreeSet<u64>,
    flags: BTreeSet<String>,
    example: String,
}

#[test]
fn basis_diff_matches_rsync() {
    let Some(version) = rsync_version() else {
        skip("basis_diff", "rsync not installed");
        return;
    };
    let dims = Dims::from_env_with("BASIS_DIFF_NO_", DIMENSIONS);
    let seeds: Vec<u64> = match env_num("PCOPY_BASIS_SEED") {
        Some(s) => vec![s],
        None => (0..env_num("PCOPY_BASIS_SEEDS").unwrap_or(100)).collect(),
    };
    let single = seeds.len() == 1;
    eprintln!(
        "basis_diff: {} seeds against {version}; dimensions off: {:?}",
        seeds.len(),
        dims.off_list()
    );
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut reports: Vec<String> = Vec::new();
    let (mut differ, mut skipped, mut accepted) = (0, 0, 0);
    for seed in &seeds {
        let Some((case, findings, cmds, acc)) = run_case(*seed, &dims) else {
            skipped += 1;
            continue;
        };
        accepted += acc;
        if findings.is_empty() {
            if single {
                eprintln!("{}  (no difference)\n{cmds}", case.header(true));
            }
            continue;
        }
        differ += 1;
        let mut report = case.header(true);
        let flags = format!("{} {}", case.opt.flag(), case.flags.label());
        for f in &findings {
            let c = classes.entry(f.class.clone()).or_default();
            if c.seeds.is_empty() {
                c.example = format!("{}    {}\n", case.header(false), f.detail);
            }
            c.seeds.insert(*seed);
            c.flags.insert(flags.clone());
            let _ = writeln!(report, "  {}\n      {}", f.class, f.detail);
        }
        report.push_str(&cmds);
        reports.push(report);
    }
    eprintln!(
        "basis_diff: {} seeds, {differ} differ, {skipped} skipped (rsync failed); \
         {accepted} pcopy -n records differ from rsync -n but match rsync's real run (accepted)",
        seeds.len()
    );
    if differ == 0 {
        return;
    }
    let mut text = format!(
        "{differ} of {} seeds differ ({} classes; {skipped} skipped, rsync failed); dimensions off: {:?}\n\nclasses (seeds, flag \
         sets seen, first example):\n",
        seeds.len() - skipped,
        classes.len(),
        dims.off_list()
    );
    for (name, c) in &classes {
        let _ = write!(
            text,
            "* {name}\n    {} seeds {:?}; flags: {}\n    e.g. {}",
            c.seeds.len(),
            c.seeds.iter().take(8).collect::<Vec<_>>(),
            c.flags.iter().cloned().collect::<Vec<_>>().join(" | "),
            c.example
        );
    }
    let limit = env_num("PCOPY_BASIS_REPORTS").unwrap_or(6) as usize;
    let _ = writeln!(
        text,
        "\nthe first {} seed reports:\n",
        limit.min(reports.len())
    );
    for r in reports.iter().take(limit) {
        let _ = writeln!(text, "{r}");
    }
    panic!("{text}");
}
