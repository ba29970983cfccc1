//! Test helpers: a temp-dir environment, the real binary, a seeded tree
//! generator and a strict tree comparison (type, bytes, mode, mtime ns,
//! symlink targets, hard-link groups, sparse allocation, directory times).

#![allow(dead_code)] // some helpers are used only by the failpoints tests

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test: this build's, or `PCOPY_TEST_BIN` (used to show
/// that a regression test fails against an older build).
pub fn bin() -> String {
    std::env::var("PCOPY_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pcopy").to_string())
}

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub src: PathBuf,
    pub dst: PathBuf,
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pcopy-it")
            .tempdir()
            .expect("tempdir");
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        fs::create_dir(&src).expect("mkdir src");
        TestEnv { dir, src, dst }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.dir.path());
        c
    }

    /// Run `pcopy src dst ARGS` and return the output.
    pub fn copy(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg(&self.src).arg(&self.dst).args(args);
        run(c)
    }

    pub fn copy_json(&self, args: &[&str]) -> (Output, serde_json::Value) {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.copy(&a);
        let v = parse_json(&out);
        (out, v)
    }
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("spawn pcopy")
}

pub fn parse_json(out: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", explain(out)))
}

/// Everything about a run, for assertion messages.
pub fn explain(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", explain(out));
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic pseudo-random numbers (no dependency, stable across runs).
pub struct Lcg(u64);
impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn set_mtime_ns(p: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(p, t, t).expect("set times");
}

/// A seeded tree of `files` files in nested directories, with varied sizes,
/// modes, nanosecond mtimes, symlinks and a few empty files.
pub fn gen_tree(root: &Path, seed: u64, files: usize) {
    let mut r = Lcg::new(seed);
    let mut dirs = vec![root.to_path_buf()];
    for i in 0..files {
        if i % 20 == 0 {
            let parent = dirs[r.below(dirs.len() as u64) as usize].clone();
            let d = parent.join(format!("d{i}"));
            fs::create_dir(&d).expect("mkdir");
            dirs.push(d);
        }
        let dir = &dirs[r.below(dirs.len() as u64) as usize];
        let p = dir.join(format!("f{i}.dat"));
        if i % 17 == 5 {
            std::os::unix::fs::symlink(format!("../target-{i}"), &p).expect("symlink");
            continue;
        }
        let size = match r.below(10) {
            0 => 0,
            1..=7 => r.below(8192),
            _ => r.below(300_000),
        } as usize;
        let data: Vec<u8> = (0..size).map(|_| r.next() as u8).collect();
        fs::write(&p, &data).expect("write");
        let mode = [0o644, 0o600, 0o755, 0o444, 0o640][r.below(5) as usize];
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        set_mtime_ns(
            &p,
            1_500_000_000 + r.below(100_000_000) as i64,
            r.below(1_000_000_000) as u32,
        );
    }
    for (i, d) in dirs.iter().enumerate().skip(1) {
        let mode = if i % 3 == 0 { 0o750 } else { 0o755 };
        fs::set_permissions(d, fs::Permissions::from_mode(mode)).expect("chmod dir");
    }
    // Directory times last: creating entries changes them.
    for d in dirs.iter().rev() {
        set_mtime_ns(
            d,
            1_400_000_000 + r.below(1000) as i64,
            r.below(1_000_000_000) as u32,
        );
    }
}

fn listing(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            e.expect("walk")
                .path()
                .strip_prefix(root)
                .expect("prefix")
                .to_path_buf()
        })
        .collect();
    v.sort();
    v
}

/// Assert `b` is an exact copy of `a`. Returns the number of entries
/// compared. On a difference both trees are listed (bounded), as ripgrep's
/// tests do, so the failure can be read without re-running.
pub fn assert_trees_equal(a: &Path, b: &Path) -> usize {
    settled(b);
    match std::panic::catch_unwind(|| compare_trees(a, b)) {
        Ok(n) => n,
        Err(p) => {
            eprintln!("{}{}", tree_listing(a), tree_listing(b));
            std::panic::resume_unwind(p)
        }
    }
}

/// `ls -lR`-like lines for a failure message: the first 100 entries.
fn tree_listing(root: &Path) -> String {
    const MAX: usize = 100;
    let entries = listing(root);
    let mut out = format!("--- {} ({} entries)\n", root.display(), entries.len());
    for rel in entries.iter().take(MAX) {
        let p = root.join(rel);
        let Ok(m) = fs::symlink_metadata(&p) else {
            out += &format!("  ?          {}\n", rel.display());
            continue;
        };
        let target = fs::read_link(&p)
            .map(|t| format!(" -> {}", t.display()))
            .unwrap_or_default();
        out += &format!(
            "  {:o} {}:{} {:>9} {}.{:09} {}{target}\n",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            rel.display()
        );
    }
    if entries.len() > MAX {
        out += &format!("  ... {} more\n", entries.len() - MAX);
    }
    out
}

fn compare_trees(a: &Path, b: &Path) -> usize {
    let (la, lb) = (listing(a), listing(b));
    assert_eq!(la, lb, "entry lists differ");
    let mut groups_a: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let mut groups_b: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    for rel in la
        .iter()
        .map(PathBuf::as_path)
        .chain(std::iter::once(Path::new("")))
    {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).expect("lstat a"),
            fs::symlink_metadata(&pb).expect("lstat b"),
        );
        let what = rel.display();
        assert_eq!(ma.file_type(), mb.file_type(), "type of {what}");
        if !ma.file_type().is_symlink() {
            assert_eq!(ma.mode(), mb.mode(), "mode of {what}");
        }
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {what}"
        );
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&pa).ok(),
                fs::read_link(&pb).ok(),
                "target of {what}"
            );
        } else if ma.is_file() {
            assert_eq!(ma.len(), mb.len(), "size of {what}");
            assert!(
                fs::read(&pa).expect("read a") == fs::read(&pb).expect("read b"),
                "bytes of {what}"
            );
            if ma.blocks() * 512 < ma.len() {
                assert!(
                    mb.blocks() <= ma.blocks() + 16,
                    "sparse {what}: {} vs {} blocks",
                    mb.blocks(),
                    ma.blocks()
                );
            }
        }
        // Hard links of any type but directories (FIFOs and symlinks too).
        if !ma.is_dir() && ma.nlink() > 1 {
            groups_a
                .entry((ma.dev(), ma.ino()))
                .or_default()
                .push(rel.to_path_buf());
            groups_b
                .entry((mb.dev(), mb.ino()))
                .or_default()
                .push(rel.to_path_buf());
        }
    }
    let norm = |g: HashMap<(u64, u64), Vec<PathBuf>>| {
        let mut v: Vec<Vec<PathBuf>> = g.into_values().filter(|v| v.len() > 1).collect();
        v.iter_mut().for_each(|x| x.sort());
        v.sort();
        v
    };
    assert_eq!(norm(groups_a), norm(groups_b), "hard-link groups");
    la.len()
}

/// Names of leftover pcopy temporaries anywhere under `root`.
/// Wait until the run that wrote `dst` is durable: the child it leaves to
/// `syncfs` the destination removes the run's marker
/// (`.pcopy-tmp.<run>.run` in the root) when done. A marker that stays
/// (a killed run's) is left for the test to see.
pub fn settled(dst: &Path) {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};
    let marker = |e: &fs::DirEntry| {
        let n = e.file_name();
        let n = n.to_string_lossy();
        n.starts_with(".pcopy-tmp.") && n.ends_with(".run")
    };
    let any = || fs::read_dir(dst).is_ok_and(|mut d| d.any(|e| e.as_ref().is_ok_and(marker)));
    let start = Instant::now();
    // The child waits for a syncfs of the whole filesystem: seconds on a
    // busy disk (a build writing beside the tests).
    while any() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The child puts the root's times back right after the unlink, which
    // set its mtime to its ctime; the restored mtime is an older one. (A
    // root pcopy did not finish has mtime = ctime: then this waits 0.5 s.)
    let restored = || {
        fs::metadata(dst).map_or(true, |m| {
            (m.mtime(), m.mtime_nsec()) != (m.ctime(), m.ctime_nsec())
        })
    };
    let start = Instant::now();
    while !restored() && start.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn temps_under(root: &Path) -> Vec<PathBuf> {
    settled(root);
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| pcopy::copy::temp::parse(e.file_name().as_bytes()).is_some())
        .map(|e| e.path().to_path_buf())
        .collect()
}

pub fn count_files(root: &Path) -> usize {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type().is_file() && pcopy::copy::temp::parse(e.file_name().as_bytes()).is_none()
        })
        .count()
}

/// Poll until `f` holds, or panic after `secs`.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Child pids of `pid` (all threads), i.e. the supervisor's workers.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

pub fn cmdline(pid: u32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// Alive means present and not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// An explicit, counted skip: the test checked nothing because this machine
/// lacks what it needs. Said on stderr and, when `PCOPY_TEST_SKIPS` names a
/// file, appended there, so `.ci/run`'s closing line counts every skip.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIP: {test}: {why}");
    if let Some(path) = std::env::var_os("PCOPY_TEST_SKIPS") {
        use std::io::Write;
        let f = fs::OpenOptions::new().create(true).append(true).open(path);
        if let Ok(mut f) = f {
            let _ = writeln!(f, "{test}: {why}");
        }
    }
}

/// Send signal `sig` (a libc number) to `pid`; true when delivered.
pub fn signal(pid: u32, sig: i32) -> bool {
    let (Some(pid), Some(sig)) = (
        rustix::process::Pid::from_raw(pid as i32),
        rustix::process::Signal::from_named_raw(sig),
    ) else {
        return false;
    };
    rustix::process::kill_process(pid, sig).is_ok()
}

/// A filesystem mounted for a test (root only), unmounted on drop.
pub struct Mounted(pub PathBuf);

impl Mounted {
    /// A `size`-byte image `dir/fs.img` made by `mkfs` (program and
    /// options; the image is the last argument) and loop-mounted at
    /// `dir/mnt`. None when mkfs or the mount is refused.
    pub fn image(dir: &Path, size: u64, mkfs: &[&str]) -> Option<Mounted> {
        let img = dir.join("fs.img");
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).expect("mkdir mnt");
        fs::File::create(&img)
            .and_then(|f| f.set_len(size))
            .expect("image file");
        let made = Command::new(mkfs[0])
            .args(&mkfs[1..])
            .arg(&img)
            .output()
            .is_ok_and(|o| o.status.success());
        let mounted = made
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&mnt)
                .status()
                .is_ok_and(|s| s.success());
        mounted.then_some(Mounted(mnt))
    }

    /// A tmpfs with mount options `opts` at `dir/mnt`.
    pub fn tmpfs(dir: &Path, opts: &str) -> Option<Mounted> {
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).expect("mkdir mnt");
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success())
            .then_some(Mounted(mnt))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
