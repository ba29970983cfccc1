//! Differential test of filter rules and `--delete` against real rsync.
//!
//! For each seed: a small random source tree whose names come from a tiny
//! vocabulary (so that rules hit often), a destination that is missing,
//! empty or a mutated copy of the source (changed, removed and extra
//! entries, extra directories holding files the rules exclude), and 1-5
//! random filter rules spelled in the ways rsync accepts them
//! (`--include`/`--exclude` with a separate or `=` value, old-style `+ `/`- `
//! prefixes, `--include-from`/`--exclude-from` files with comments and blank
//! lines), sometimes with `--delete` and `--delete-excluded`.
//! `rsync -r -l --times --perms` and `pcopy` run on identical copies of the
//! destination, and the trees they leave (paths, types, file bytes, symlink
//! targets) must be the same. A `pcopy -n` run on a third copy must change
//! nothing at all.
//!
//! Awkward names (on unless `FILTER_DIFF_NO_ODD_NAMES=1`): some tree names
//! come from itemize_diff's ODD_NAMES (spaces, a leading `-`/`#`/`;`, a
//! backslash, `\n`, `\t`, bytes that are not UTF-8, `é`, `日本`, 200+ byte
//! names, case variants), and some rules target them: the names literally
//! (rsync matches a pattern without `*?[` by plain comparison, backslashes
//! and all), with wildcards around them, byte-wise `?` and classes, `\`
//! escapes and `**`. Patterns reach both tools as the same bytes: arguments
//! built from bytes, rules files written as raw bytes (a pattern holding a
//! `\n` only ever goes on the command line). rsync runs with
//! `LC_ALL=C.UTF-8`, as in itemize_diff. Patterns holding a byte that is
//! not UTF-8 are generated too (`FILTER_DIFF_NO_NON_UTF8_PATTERNS=1` leaves
//! them out): they found pcopy refusing them, on the command line and in
//! rules files, where rsync matches them byte for byte (fixed).
//!
//! Knobs: `PCOPY_FILTER_SEEDS=N` runs N seeds (default 150, and a fifth of
//! that for the deletion-list test); `PCOPY_FILTER_SEED=S` runs only seed S
//! and keeps its temp dir, to reproduce a reported failure by hand.

use crate::difftest::{
    depth, env_num, join, name_bytes, name_str, os, quote, rsync_ran, rsync_version, shown,
};
use crate::itemize_diff::{env_flag, odd_names};
use crate::util::{bin, settled, skip};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// splitmix64: tiny, seedable, stable across runs and platforms.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5eed_f11e_7e57_0001)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    /// One of a vocabulary's words.
    fn word(&mut self, v: &[&'static str]) -> &'static str {
        v[self.below(v.len())]
    }
}

/// Names are shared between directories and files on purpose: `logs` is a
/// directory in one place and a file in another, which is what trailing-`/`
/// rules tell apart. `[br]`, `a?b` and `foo bar` exercise escaping.
const DIR_NAMES: &[&str] = &[
    "a", "b", "logs", "cache", "build", "sub", "[br]", "foo bar", ".hidden", "x.log",
];
const FILE_NAMES: &[&str] = &[
    "keep.log", "x.log", "y.txt", "z.o", "data.bin", "a?b", ".hidden", "foo bar", "[br]", "1.txt",
    "7", "a", "b", "logs",
];
const LINK_TARGETS: &[&str] = &["y.txt", "../a", "logs/keep.log", "missing", "."];

/// The rule vocabulary: every feature of rsync's matcher that pcopy claims.
const PATTERNS: &[&str] = &[
    // unanchored names
    "*.log",
    "keep.log",
    "x.*",
    "*.o",
    "y.txt",
    "foo bar",
    ".hidden",
    ".*",
    "build",
    "sub",
    // anchored
    "/a",
    "/b",
    "/logs/",
    "/keep.log",
    "/sub/",
    // unanchored with an inner slash (match at any depth)
    "logs/keep.log",
    "sub/*.txt",
    "a/b",
    "b/*",
    "a/*/",
    // * vs ** vs ***
    "a/**",
    "**/x.log",
    "logs/***",
    "/b/**/y.txt",
    "**/sub/",
    "cache/**",
    "**.log",
    "/**/keep.log",
    "sub/**/",
    "/a/***",
    "*",
    "**",
    // directories only
    "logs/",
    "*/",
    "cache/",
    // character classes and ?
    "[xy].log",
    "[!a]*",
    "[[:digit:]]",
    "[[:digit:]]*",
    "[[:digit:]].txt",
    "*[[:alpha:]]",
    "[br]",
    "?.log",
    "a?b",
    "a\\?b",
    "???",
    // escaped brackets: the literal name `[br]`
    "\\[br\\]",
    "\\[br\\]/",
    "/\\[br\\]/**",
];

/// Whether awkward names and the rules that target them are generated.
fn odd_on() -> bool {
    !env_flag("FILTER_DIFF_NO_ODD_NAMES")
}

/// Rules aimed at [`odd_names`] (model strings: a byte that is not UTF-8
/// is U+F700 + byte, see `difftest::name_str`): each name literally and
/// anchored, directory-only and under `**`; then wildcards around them,
/// byte-wise `?` (`é` is two bytes, `日本` six), classes (with raw bytes
/// and ranges of them), and `\` escapes, which rsync honours only in a
/// pattern that has a wildcard.
fn odd_patterns() -> Vec<String> {
    let mut v = Vec::new();
    for n in odd_names() {
        v.push(n.clone());
        v.push(format!("/{n}"));
        v.push(format!("{n}/"));
        v.push(format!("**/{n}"));
        v.push(format!("{n}/**"));
    }
    let b = |bytes: &[u8]| name_str(bytes);
    let fixed: Vec<String> = vec![
        "*\u{e9}*".into(),
        "*\u{e9}".into(),
        "caf?".into(),
        "caf??".into(),
        "caf[\u{e9}]".into(),
        "\u{65e5}*".into(),
        "*\u{672c}".into(),
        "??????".into(),
        "[\u{65e5}]*".into(),
        "[ #]*".into(),
        "[-#;]*".into(),
        "[!-#;a-z]*".into(),
        "*[[:space:]]*".into(),
        "*[[:space:]]".into(),
        "*[[:cntrl:]]*".into(),
        "*[[:punct:]]*".into(),
        "[[:upper:]]*".into(),
        "[[:upper:]][[:upper:]]*".into(),
        "[Cc]ase".into(),
        "c*e".into(),
        "?ase".into(),
        "*\\*".into(),
        "back\\sl*".into(),
        "back\\slash".into(),
        "back\\slas?".into(),
        "x\\#*".into(),
        "x\\#101".into(),
        "x\\\\#101".into(),
        "\\#hash".into(),
        "\\#has?".into(),
        "\\-da*".into(),
        "-*".into(),
        "-dash/".into(),
        "#*".into(),
        ";*".into(),
        "a\\ b".into(),
        "a?b".into(),
        "a[ ]b".into(),
        "* *".into(),
        "end *".into(),
        "*d ".into(),
        "tab?x".into(),
        "tab\tx".into(),
        "tab*".into(),
        "new*".into(),
        "new?line".into(),
        "new\nline".into(),
        "*line".into(),
        "L*".into(),
        "L???*".into(),
        "long-*".into(),
        "long-\u{e9}*".into(),
        "**/long-*/".into(),
        "*/".into(),
        "**/*[[:space:]]*/**".into(),
        "/*\u{e9}*/***".into(),
        b(b"\xff"),
        b(b"?"),
        b(b"[\xff]"),
        b(b"*\xff*"),
        b(b"e\xe9"),
        b(b"e?"),
        b(b"e[\xe0-\xef]"),
        b(b"[\x80-\xff]*"),
        b(b"*[!\x01-\x7f]*"),
        b(b"**/\xff/**"),
    ];
    v.extend(fixed);
    // Patterns with a byte that is not UTF-8, unless asked not to (names
    // that are not UTF-8 are always in the trees).
    if env_flag("FILTER_DIFF_NO_NON_UTF8_PATTERNS") {
        v.retain(|p| !p.chars().any(|c| ('\u{f700}'..='\u{f7ff}').contains(&c)));
    }
    v
}

/// What a path is, in a model tree or on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(String),
    Other,
}

/// Relative path (`a/logs/keep.log`) to node; a parent sorts before its
/// children.
type Tree = BTreeMap<String, Node>;

/// Every file gets this mtime, so an unchanged file is skipped by both
/// tools' quick check and a changed one (always a different size) is not.
const MTIME: i64 = 1_600_000_000;

fn dirs_of(t: &Tree) -> Vec<String> {
    std::iter::once(String::new())
        .chain(
            t.iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone()),
        )
        .collect()
}

/// 5-40 entries, directories up to 3 deep (files up to 4).
fn gen_source(r: &mut Rng, odd: &[String]) -> Tree {
    let want = r.range(5, 40);
    let mut t = Tree::new();
    let mut dirs = vec![String::new()];
    // Bounded: a name already taken is simply retried.
    for _ in 0..want * 20 {
        if t.len() >= want {
            break;
        }
        let parent = r.pick(&dirs).clone();
        let make_dir = depth(&parent) < 3 && r.percent(35);
        let name = if !odd.is_empty() && r.percent(20) {
            r.pick(odd).as_str()
        } else if make_dir {
            r.word(DIR_NAMES)
        } else {
            r.word(FILE_NAMES)
        };
        let path = join(&parent, name);
        if t.contains_key(&path) {
            continue;
        }
        let node = if make_dir {
            dirs.push(path.clone());
            Node::Dir
        } else if r.percent(8) {
            Node::Link(r.word(LINK_TARGETS).to_string())
        } else {
            Node::File(format!("{path}\n").into_bytes())
        };
        t.insert(path, node);
    }
    t
}

/// A destination: missing, empty, or the source with some files changed,
/// some entries removed and extra files and directories added. Extras never
/// take a path the source has, so there are no type clashes (that is
/// `--force` territory, not filtering).
fn gen_dest(r: &mut Rng, src: &Tree, always_mutated: bool, odd: &[String]) -> Option<Tree> {
    if !always_mutated {
        match r.below(10) {
            0 => return None,
            1 | 2 => return Some(Tree::new()),
            _ => {}
        }
    }
    let mut t = src.clone();
    let paths: Vec<String> = t.keys().cloned().collect();
    for p in &paths {
        let Some(node) = t.get(p).cloned() else {
            continue; // its directory was removed
        };
        if r.percent(8) {
            let under = format!("{p}/");
            t.retain(|k, _| k != p && !k.starts_with(&under));
            continue;
        }
        match node {
            Node::File(_) if r.percent(20) => {
                t.insert(
                    p.clone(),
                    Node::File(format!("changed in the destination: {p}\n").into_bytes()),
                );
            }
            Node::Link(_) if r.percent(30) => {
                t.insert(p.clone(), Node::Link("elsewhere".into()));
            }
            _ => {}
        }
    }
    let extras = r.range(1, 8);
    let mut added = 0;
    for _ in 0..extras * 20 {
        if added >= extras {
            break;
        }
        let dirs = dirs_of(&t);
        let parent = r.pick(&dirs).clone();
        let as_dir = depth(&parent) < 3 && r.percent(40);
        let name = if !odd.is_empty() && r.percent(20) {
            r.pick(odd).as_str()
        } else if as_dir {
            r.word(DIR_NAMES)
        } else {
            r.word(FILE_NAMES)
        };
        let path = join(&parent, name);
        if src.contains_key(&path) || t.contains_key(&path) {
            continue;
        }
        added += 1;
        if !as_dir {
            t.insert(
                path.clone(),
                Node::File(format!("extra {path}\n").into_bytes()),
            );
            continue;
        }
        // An extra directory with a few files (often ones the rules
        // exclude, so --delete must keep them and the directory), and
        // sometimes a nested directory.
        t.insert(path.clone(), Node::Dir);
        let mut inner = vec![path];
        if r.percent(30) {
            let sub = if !odd.is_empty() && r.percent(20) {
                join(&inner[0], r.pick(odd).as_str())
            } else {
                join(&inner[0], r.word(DIR_NAMES))
            };
            t.insert(sub.clone(), Node::Dir);
            inner.push(sub);
        }
        for _ in 0..r.range(1, 3) {
            let dir = r.pick(&inner).clone();
            let f = if !odd.is_empty() && r.percent(20) {
                join(&dir, r.pick(odd).as_str())
            } else {
                join(&dir, r.word(FILE_NAMES))
            };
            if !t.contains_key(&f) {
                t.insert(f.clone(), Node::File(format!("extra {f}\n").into_bytes()));
            }
        }
    }
    Some(t)
}

#[derive(Clone, Debug)]
struct Rule {
    include: bool,
    /// A model string (see `difftest::name_str`).
    pattern: String,
}

/// `odd_pats` empty: the plain vocabulary only (and the same random draws
/// as before awkward names existed, so old seeds still reproduce).
fn gen_rules(r: &mut Rng, odd_pats: &[String]) -> Vec<Rule> {
    let rule = |include: bool, pattern: &str| Rule {
        include,
        pattern: pattern.to_string(),
    };
    let pattern = |r: &mut Rng| -> String {
        if !odd_pats.is_empty() && r.percent(40) {
            r.pick(odd_pats).clone()
        } else {
            r.word(PATTERNS).to_string()
        }
    };
    if r.percent(12) {
        // The common idiom: every directory, some chosen files, nothing else.
        let keep = r.word(&["logs/keep.log", "*.txt", "/a/**", "keep.log", "sub/*.txt"]);
        let mut v = vec![rule(true, "*/"), rule(true, keep), rule(false, "*")];
        if r.percent(30) {
            let p = pattern(r);
            v.insert(0, rule(false, &p));
        }
        return v;
    }
    (0..r.range(1, 5))
        .map(|_| {
            let include = r.percent(40);
            Rule {
                include,
                pattern: pattern(r),
            }
        })
        .collect()
}

/// A comment or blank line for a rules file, sometimes.
fn noise(r: &mut Rng, text: &mut String) {
    match r.below(10) {
        0 => text.push('\n'),
        1 => text.push_str("# a comment\n"),
        2 => text.push_str("; another comment\n"),
        _ => {}
    }
}

/// One generated case: trees, rules, options and a temp dir to run in.
struct Case {
    seed: u64,
    /// The test that made it (for the rerun hint).
    test: &'static str,
    tmp: tempfile::TempDir,
    src: PathBuf,
    src_tree: Tree,
    dst: Option<Tree>,
    /// The filter arguments, identical for rsync and pcopy.
    rule_args: Vec<String>,
    /// Rules files written for `--include-from`/`--exclude-from`: path, text.
    rule_files: Vec<(PathBuf, String)>,
    /// `[]`, `[--delete]` or `[--delete, --delete-excluded]`.
    delete: Vec<&'static str>,
    src_listing: String,
    dst_listing: String,
}

impl Case {
    fn new(seed: u64, for_deletions: bool) -> Case {
        let mut r = Rng::new(seed);
        let (odd, odd_pats) = if odd_on() {
            (odd_names(), odd_patterns())
        } else {
            (vec![], vec![])
        };
        let src_tree = gen_source(&mut r, &odd);
        let dst = gen_dest(&mut r, &src_tree, for_deletions, &odd);
        let rules = gen_rules(&mut r, &odd_pats);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("pcopy-filter-diff-{seed}-"))
            .tempdir()
            .expect("tempdir");
        let src = tmp.path().join("src");
        materialize(&src, &src_tree);
        let (rule_args, rule_files) = spell(&mut r, &rules, tmp.path());
        let delete = if for_deletions || r.percent(50) {
            if r.percent(40) {
                vec!["--delete", "--delete-excluded"]
            } else {
                vec!["--delete"]
            }
        } else {
            vec![]
        };
        Case {
            seed,
            test: if for_deletions {
                "filter_diff_dry_run_deletions"
            } else {
                "filter_diff_selection"
            },
            src,
            src_listing: listing(Some(&src_tree)),
            dst_listing: listing(dst.as_ref()),
            src_tree,
            dst,
            rule_args,
            rule_files,
            delete,
            tmp,
        }
    }

    /// A fresh copy of the generated destination at `name` (or nothing
    /// there, for a missing destination).
    fn dest(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        if let Some(t) = &self.dst {
            materialize(&p, t);
        }
        p
    }

    fn rsync_args(&self, extra: &[&str], dst: &Path) -> Vec<String> {
        let mut a: Vec<String> = ["-r", "-l", "--times", "--perms"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        a.extend(self.rule_args.iter().cloned());
        a.extend(self.delete.iter().map(|s| s.to_string()));
        a.push(format!("{}/", self.src.display()));
        a.push(format!("{}/", dst.display()));
        a
    }

    fn pcopy_args(&self, extra: &[&str], dst: &Path) -> Vec<String> {
        let mut a: Vec<String> = ["--no-progress", "-j", "2"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        a.extend(self.rule_args.iter().cloned());
        a.extend(self.delete.iter().map(|s| s.to_string()));
        a.push(self.src.display().to_string());
        a.push(dst.display().to_string());
        a
    }

    /// What rsync leaves with no rule at all: the source over the
    /// destination, and with --delete nothing else.
    fn unfiltered(&self) -> Tree {
        let mut t = match &self.dst {
            Some(d) if self.delete.is_empty() => d.clone(),
            _ => Tree::new(),
        };
        t.extend(self.src_tree.clone());
        t
    }

    /// Seed, rules (with the rules files' text) and both trees, for a report.
    fn describe(&self) -> String {
        let mut s = format!(
            "seed {seed} (rerun it alone, keeping its files: \
             PCOPY_FILTER_SEED={seed} cargo test --test it {test} -- --nocapture)\n  rules: {}\n",
            shell_words(&self.rule_args),
            seed = self.seed,
            test = self.test,
        );
        for (path, text) in &self.rule_files {
            let _ = writeln!(s, "  {}:", path.display());
            for line in text.lines() {
                let _ = writeln!(s, "    | {}", shown(line));
            }
        }
        let _ = writeln!(s, "  delete: {}", shell_words(&self.delete));
        let _ = writeln!(s, "  source: {}", self.src_listing);
        let _ = writeln!(s, "  destination before: {}", self.dst_listing);
        s
    }

    /// Keep the temp dir when one seed is rerun by hand.
    fn keep_if_single(self) {
        if std::env::var_os("PCOPY_FILTER_SEED").is_some() {
            eprintln!("kept {}", self.tmp.keep().display());
        }
    }
}

/// Spell the rules as rsync accepts them: `--include P`, `--exclude=P`,
/// old-style `--exclude '+ P'`/`--exclude '- P'`, or runs of consecutive
/// rules in an `--include-from`/`--exclude-from` file. Order is kept, so
/// the first-match-wins semantics are the same as the rule list's.
fn spell(r: &mut Rng, rules: &[Rule], dir: &Path) -> (Vec<String>, Vec<(PathBuf, String)>) {
    let (mut args, mut files) = (Vec::new(), Vec::new());
    let sign = |rule: &Rule| if rule.include { '+' } else { '-' };
    let mut i = 0;
    while i < rules.len() {
        // A rules file is newline-separated: a pattern holding a `\n` goes
        // on the command line (the draw is made either way, so that seeds
        // without such patterns are what they were).
        let n = if r.percent(25) {
            let n = r.range(1, 3).min(rules.len() - i);
            (!rules[i..i + n].iter().any(|x| x.pattern.contains('\n'))).then_some(n)
        } else {
            None
        };
        if let Some(n) = n {
            let include_from = r.percent(50);
            let mut text = String::new();
            for rule in &rules[i..i + n] {
                noise(r, &mut text);
                // A bare line takes the file's default; a prefixed one says.
                if rule.include == include_from && r.percent(50) {
                    let _ = writeln!(text, "{}", rule.pattern);
                } else {
                    let _ = writeln!(text, "{} {}", sign(rule), rule.pattern);
                }
            }
            noise(r, &mut text);
            let path = dir.join(format!("rules{}", files.len()));
            fs::write(&path, name_bytes(&text)).expect("write rules file");
            let opt = if include_from {
                "--include-from"
            } else {
                "--exclude-from"
            };
            args.push(opt.to_string());
            args.push(path.display().to_string());
            files.push((path, text));
            i += n;
            continue;
        }
        let rule = &rules[i];
        let (opt, value) = if r.percent(30) {
            ("--exclude", format!("{} {}", sign(rule), rule.pattern))
        } else if rule.include {
            ("--include", rule.pattern.to_string())
        } else {
            ("--exclude", rule.pattern.to_string())
        };
        // Both spellings, as rsync takes them: the separate one includes
        // `--exclude '- P'`, a value that begins with a dash.
        if r.percent(50) {
            args.push(opt.to_string());
            args.push(value);
        } else {
            args.push(format!("{opt}={value}"));
        }
        i += 1;
    }
    (args, files)
}

fn materialize(root: &Path, t: &Tree) {
    fs::create_dir_all(root).expect("mkdir root");
    let mtime = filetime::FileTime::from_unix_time(MTIME, 0);
    for (rel, node) in t {
        let p = root.join(os(rel));
        match node {
            Node::Dir => fs::create_dir_all(&p).expect("mkdir"),
            Node::File(bytes) => {
                fs::write(&p, bytes).expect("write");
                filetime::set_file_mtime(&p, mtime).expect("set mtime");
            }
            Node::Link(target) => symlink(os(target), &p).expect("symlink"),
            Node::Other => unreachable!("models hold no special files"),
        }
    }
}

/// The tree on disk, or None when `root` does not exist.
fn snapshot(root: &Path) -> Option<Tree> {
    fs::symlink_metadata(root).ok()?;
    settled(root);
    let mut t = Tree::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.expect("walk");
        let rel = crate::difftest::rel_name(root, e.path());
        let ft = e.file_type();
        let node = if ft.is_dir() {
            Node::Dir
        } else if ft.is_symlink() {
            let target = fs::read_link(e.path()).expect("readlink");
            Node::Link(name_str(target.as_os_str().as_bytes()))
        } else if ft.is_file() {
            Node::File(fs::read(e.path()).expect("read"))
        } else {
            Node::Other
        };
        t.insert(rel, node);
    }
    Some(t)
}

/// Mode and mtime of every entry (root included): what a
/// dry run must not touch beyond the tree itself.
fn stamps(root: &Path) -> BTreeMap<String, (u32, i64, i64)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let m = e.path().symlink_metadata().ok()?;
            let rel = name_str(e.path().strip_prefix(root).ok()?.as_os_str().as_bytes());
            Some((rel, (m.mode(), m.mtime(), m.mtime_nsec())))
        })
        .collect()
}

fn kind(n: &Node) -> String {
    match n {
        Node::Dir => "dir".into(),
        Node::File(b) => format!("file {:?}", String::from_utf8_lossy(b).trim_end()),
        Node::Link(t) => format!("symlink -> {}", q(t)),
        Node::Other => "special file".into(),
    }
}

/// Compact one-line listing: directories end in `/`, symlinks in `@`.
fn listing(t: Option<&Tree>) -> String {
    let Some(t) = t else {
        return "(missing)".into();
    };
    if t.is_empty() {
        return "(empty)".into();
    }
    let names: Vec<String> = t
        .iter()
        .map(|(p, n)| match n {
            Node::Dir => format!("{p}/"),
            Node::Link(_) => format!("{p}@"),
            _ => p.clone(),
        })
        .map(|p| q(&p))
        .collect();
    names.join(" ")
}

/// Where `b` (labelled `lb`) differs from `a` (labelled `la`), or None.
fn diff_trees(a: &Option<Tree>, b: &Option<Tree>, la: &str, lb: &str) -> Option<String> {
    let (ta, tb) = match (a, b) {
        (Some(ta), Some(tb)) => (ta, tb),
        (None, None) => return None,
        _ => {
            return Some(format!(
                "  destination exists: {la} {}, {lb} {}\n",
                a.is_some(),
                b.is_some()
            ))
        }
    };
    let mut s = String::new();
    for (label, x, y) in [(la, ta, tb), (lb, tb, ta)] {
        let only: Vec<String> = x
            .iter()
            .filter(|(p, _)| !y.contains_key(*p))
            .map(|(p, n)| format!("{} ({})", q(p), kind(n)))
            .collect();
        if !only.is_empty() {
            let _ = writeln!(s, "  only in {label}: {}", only.join(", "));
        }
    }
    for (p, na) in ta {
        if let Some(nb) = tb.get(p) {
            if na != nb {
                let _ = writeln!(
                    s,
                    "  differs: {}: {la} {}, {lb} {}",
                    q(p),
                    kind(na),
                    kind(nb)
                );
            }
        }
    }
    (!s.is_empty()).then_some(s)
}

/// A model string shell-quoted for pasting: as [`quote`] does, or as
/// bash's `$'...'` with `\xNN` escapes when it holds a control character
/// or a byte that is not UTF-8.
fn q(s: &str) -> String {
    let b = name_bytes(s);
    if std::str::from_utf8(&b).is_ok_and(|t| !t.chars().any(char::is_control)) {
        return quote(s);
    }
    let mut out = String::from("$'");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\'' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('\'');
    out
}

fn shell_words<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| q(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn command_line(prog: &str, args: &[String]) -> String {
    format!("{} {}", q(prog), shell_words(args))
}

/// Arguments are model strings, passed as the bytes they stand for; rsync
/// runs in a UTF-8 locale (as in itemize_diff).
fn run(prog: &str, args: &[String]) -> Output {
    let mut c = Command::new(prog);
    if prog == "rsync" {
        c.env("LC_ALL", "C.UTF-8");
    }
    c.args(args.iter().map(|a| os(a)))
        .output()
        .unwrap_or_else(|e| panic!("spawn {prog}: {e}"))
}

fn status_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let err: Vec<&str> = err.lines().take(6).collect();
    format!("{:?}; stderr: {}", out.status.code(), err.join(" | "))
}

/// The seeds to run: `PCOPY_FILTER_SEED` alone, else `base..base+n` with n
/// from `PCOPY_FILTER_SEEDS` (default 150) divided by `divisor`.
fn seeds(base: u64, divisor: u64) -> Vec<u64> {
    if let Some(s) = env_num("PCOPY_FILTER_SEED") {
        return vec![s];
    }
    let n = env_num("PCOPY_FILTER_SEEDS").unwrap_or(150);
    (base..base + (n / divisor).max(1)).collect()
}

enum Outcome {
    /// pcopy did what rsync did; `rules_mattered` says whether the rules
    /// changed rsync's result at all (so the test is not vacuous).
    Same { rules_mattered: bool },
    /// rsync itself failed on this case: not comparable.
    RsyncFailed,
    /// `kind` groups the failures in the summary; `report` reproduces one.
    Differs { kind: &'static str, report: String },
}

fn selection_case(seed: u64) -> Outcome {
    let case = Case::new(seed, false);
    let outcome = selection_outcome(&case);
    case.keep_if_single();
    outcome
}

fn selection_outcome(case: &Case) -> Outcome {
    let (d_rsync, d_pcopy, d_dry) = (
        case.dest("d_rsync"),
        case.dest("d_pcopy"),
        case.dest("d_dry"),
    );
    let rsync_args = case.rsync_args(&[], &d_rsync);
    let rsync_out = run("rsync", &rsync_args);
    if !rsync_ran(&rsync_out) {
        eprintln!(
            "seed {}: rsync failed ({}), skipped:\n  {}",
            case.seed,
            status_line(&rsync_out),
            command_line("rsync", &rsync_args)
        );
        return Outcome::RsyncFailed;
    }
    let pcopy = bin();
    // The dry run first, on its own copy: nothing on disk may change.
    let dry_args = case.pcopy_args(&["-q", "-n"], &d_dry);
    let (tree_before, stamps_before) = (snapshot(&d_dry), stamps(&d_dry));
    let dry_out = run(&pcopy, &dry_args);
    let dry_problem = match diff_trees(&tree_before, &snapshot(&d_dry), "before", "after -n") {
        Some(d) => Some(format!("pcopy -n changed the destination:\n{d}")),
        None if stamps_before != stamps(&d_dry) => {
            Some("pcopy -n changed modes or mtimes in the destination\n".to_string())
        }
        None => None,
    };
    let pcopy_args = case.pcopy_args(&["-q"], &d_pcopy);
    let pcopy_out = run(&pcopy, &pcopy_args);
    let rsync_tree = snapshot(&d_rsync);
    let tree_problem = diff_trees(&rsync_tree, &snapshot(&d_pcopy), "rsync", "pcopy");
    let pcopy_failed = rsync_out.status.success() && !pcopy_out.status.success();
    let kind = if pcopy_failed {
        "pcopy failed where rsync succeeded"
    } else if tree_problem.is_some() {
        "the trees differ"
    } else if dry_problem.is_some() {
        "pcopy -n wrote to the destination"
    } else {
        return Outcome::Same {
            rules_mattered: rsync_tree != Some(case.unfiltered()),
        };
    };
    let mut report = case.describe();
    if let Some(d) = &tree_problem {
        let _ = write!(report, "trees differ:\n{d}");
    }
    if let Some(d) = &dry_problem {
        report.push_str(d);
    }
    let _ = write!(
        report,
        "  rsync: {}\n    exit {}\n  pcopy: {}\n    exit {}\n  pcopy -n: {}\n    exit {}\n",
        command_line("rsync", &rsync_args),
        status_line(&rsync_out),
        command_line(&pcopy, &pcopy_args),
        status_line(&pcopy_out),
        command_line(&pcopy, &dry_args),
        status_line(&dry_out),
    );
    Outcome::Differs { kind, report }
}

/// Collects the outcomes of all seeds and fails once, with a count per kind
/// of difference and the first few reports (the first of each kind, then
/// the next ones; `PCOPY_FILTER_REPORTS` says how many, default 5).
fn conclude(test: &str, what: &str, mattered_means: &str, outcomes: Vec<Outcome>) {
    let total = outcomes.len();
    let (mut skipped, mut mattered) = (0, 0);
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Same { rules_mattered } => mattered += usize::from(rules_mattered),
            Outcome::RsyncFailed => skipped += 1,
            Outcome::Differs { kind, report } => failures.push((kind, report)),
        }
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _) in &failures {
        *kinds.entry(k).or_default() += 1;
    }
    eprintln!(
        "{test}: {total} seeds, {} differ, {skipped} skipped (rsync rejected the case); \
         of the seeds that agree, {mattered} {mattered_means}",
        failures.len(),
    );
    if failures.is_empty() {
        return;
    }
    let by_kind: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let limit = env_num("PCOPY_FILTER_REPORTS").unwrap_or(5) as usize;
    let mut shown: Vec<usize> = Vec::new();
    for k in kinds.keys() {
        shown.extend(failures.iter().position(|(fk, _)| fk == k));
    }
    let rest: Vec<usize> = (0..failures.len()).filter(|i| !shown.contains(i)).collect();
    shown.extend(rest);
    shown.truncate(limit);
    shown.sort();
    let reports: Vec<&str> = shown.iter().map(|&i| failures[i].1.as_str()).collect();
    panic!(
        "{} of {} seeds differ from rsync in {what} ({}; {skipped} skipped because rsync failed); {} of them:\n\n{}",
        failures.len(),
        total - skipped,
        by_kind.join(", "),
        reports.len(),
        reports.join("\n")
    );
}

#[test]
fn filter_diff_selection_matches_rsync() {
    let Some(version) = rsync_version() else {
        skip("filter_diff_selection", "rsync not installed");
        return;
    };
    eprintln!("comparing with {version}");
    let outcomes = seeds(0, 1).into_iter().map(selection_case).collect();
    conclude(
        "filter_diff_selection",
        "the trees they leave (or pcopy -n wrote something)",
        "had rules that changed rsync's result",
        outcomes,
    );
}

/// The paths of `*deleting   PATH` lines (directories end in `/`).
fn deletions(out: &Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("*deleting   "))
        .map(str::to_string)
        .collect()
}

fn deletion_case(seed: u64) -> Outcome {
    let case = Case::new(seed, true);
    let outcome = deletion_outcome(&case);
    case.keep_if_single();
    outcome
}

fn deletion_outcome(case: &Case) -> Outcome {
    let (d_rsync_n, d_rsync, d_pcopy) = (
        case.dest("d_rsync_n"),
        case.dest("d_rsync"),
        case.dest("d_pcopy"),
    );
    let rsync_n_args = case.rsync_args(&["-n", "-i"], &d_rsync_n);
    let rsync_n = run("rsync", &rsync_n_args);
    // The real run tells which of the dry run's `*deleting` lines are an
    // rsync artifact: rsync -n lists a directory it will not be able to
    // delete (it holds a protected, excluded entry), while the real run
    // says "cannot delete non-empty directory" and keeps it.
    let rsync_args = case.rsync_args(&["-i"], &d_rsync);
    let rsync_real = run("rsync", &rsync_args);
    for (out, args) in [(&rsync_n, &rsync_n_args), (&rsync_real, &rsync_args)] {
        if !rsync_ran(out) {
            eprintln!(
                "seed {}: rsync failed ({}), skipped:\n  {}",
                case.seed,
                status_line(out),
                command_line("rsync", args)
            );
            return Outcome::RsyncFailed;
        }
    }
    // `*deleting` lines print names as rsync -i does (`\#ooo` escapes).
    let kept: BTreeSet<String> = snapshot(&d_rsync)
        .unwrap_or_default()
        .keys()
        .map(|p| shown(p))
        .collect();
    let listed = deletions(&rsync_n);
    let expected: BTreeSet<String> = listed
        .iter()
        .filter(|p| !kept.contains(p.trim_end_matches('/')))
        .cloned()
        .collect();
    let pcopy = bin();
    let pcopy_args = case.pcopy_args(&["-n", "-i"], &d_pcopy);
    let pcopy_out = run(&pcopy, &pcopy_args);
    let got = deletions(&pcopy_out);
    let kind = if rsync_n.status.success() && !pcopy_out.status.success() {
        "pcopy failed where rsync succeeded"
    } else if got != expected {
        "the *deleting lists differ"
    } else {
        // "Mattered" here: something was deleted at all.
        return Outcome::Same {
            rules_mattered: !expected.is_empty(),
        };
    };
    let show = |v: Vec<&String>| v.into_iter().map(|p| q(p)).collect::<Vec<_>>().join(", ");
    let mut s = case.describe();
    let _ = writeln!(
        s,
        "  *deleting only from rsync: {}",
        show(expected.difference(&got).collect())
    );
    let _ = writeln!(
        s,
        "  *deleting only from pcopy: {}",
        show(got.difference(&expected).collect())
    );
    let artifacts: Vec<&String> = listed.difference(&expected).collect();
    if !artifacts.is_empty() {
        let _ = writeln!(
            s,
            "  (rsync -n also listed, but cannot delete: {})",
            show(artifacts)
        );
    }
    let _ = write!(
        s,
        "  rsync: {}\n    exit {}\n  pcopy: {}\n    exit {}\n",
        command_line("rsync", &rsync_n_args),
        status_line(&rsync_n),
        command_line(&pcopy, &pcopy_args),
        status_line(&pcopy_out)
    );
    Outcome::Differs { kind, report: s }
}

#[test]
fn filter_diff_dry_run_deletions_match_rsync() {
    let Some(version) = rsync_version() else {
        skip("filter_diff_deletions", "rsync not installed");
        return;
    };
    eprintln!("comparing with {version}");
    let outcomes = seeds(10_000, 5).into_iter().map(deletion_case).collect();
    conclude(
        "filter_diff_deletions",
        "the `*deleting` lines of -n -i --delete",
        "listed a deletion",
        outcomes,
    );
}
