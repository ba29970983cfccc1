//! One decision per entry (issue 23): what `-n -i` predicts is what the real
//! run prints and does, the counters of both agree, and the lines are the
//! ones `rsync -a -n -i` prints for the same input. Each case is built by
//! hand around one defect; `itemize_diff` covers generated inputs.

use crate::util::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The itemize lines of stdout, sorted (order is not part of the contract).
fn lines(out: &std::process::Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| is_item(l))
        .map(str::to_string)
        .collect()
}

/// rsync's `YXcstpoguax path` or `*deleting   path`.
fn is_item(l: &str) -> bool {
    let b = l.as_bytes();
    l.starts_with("*deleting ")
        || (b.len() > 12 && b[11] == b' ' && b"<>ch.".contains(&b[0]) && b"fdLDS".contains(&b[1]))
}

/// What `rsync -a -n -i FLAGS SRC/ DST/` prints, or None without rsync.
fn rsync_lines(flags: &[&str], src: &Path, dst: &Path) -> Option<BTreeSet<String>> {
    let out = Command::new("rsync")
        .arg("-a")
        .arg("-n")
        .arg("-i")
        .args(flags)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .ok()?;
    assert!(out.status.success(), "rsync: {}", stderr(&out));
    Some(lines(&out))
}

fn mtime(p: &Path, secs: i64) {
    set_mtime_ns(p, secs, 0);
}

/// The dry run's lines, the real run's lines and rsync's agree with
/// `expected`; the dry run's counters equal the real run's; a second real
/// run finds nothing to do.
fn agree(t: &TestEnv, flags: &[&str], expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let twin = t.path("twin");
    let _ = fs::remove_dir_all(&twin);
    let out = Command::new("cp")
        .arg("-a")
        .arg(&t.dst)
        .arg(&twin)
        .output()
        .expect("cp");
    assert!(out.status.success());
    if let Some(r) = rsync_lines(flags, &t.src, &twin) {
        assert_eq!(
            r, expected,
            "rsync {flags:?} prints other lines than expected"
        );
    } else {
        skip(
            "decision::agree",
            "rsync not installed: compared with the expected lines only",
        );
    }
    let mut dry_args = vec!["-n", "-i", "--json"];
    dry_args.extend_from_slice(flags);
    let dry = t.copy(&dry_args);
    assert_code(&dry, 0);
    let mut real_args = vec!["-i", "--json"];
    real_args.extend_from_slice(flags);
    let real = t.copy(&real_args);
    assert_code(&real, 0);
    let (dry_v, dry_l) = split_json(&dry);
    let (real_v, real_l) = split_json(&real);
    assert_eq!(dry_l, expected, "pcopy -n -i {flags:?}");
    assert_eq!(real_l, expected, "pcopy -i {flags:?}");
    for k in [
        "files_found",
        "files_copied",
        "files_skipped",
        "bytes_copied",
        "bytes_skipped",
        "entries_repaired",
        "hardlinks_created",
        "dirs_created",
    ] {
        assert_eq!(
            dry_v[k], real_v[k],
            "{k}: the dry run said {} and the real run did {} ({flags:?})",
            dry_v[k], real_v[k]
        );
    }
    settled(&t.dst);
    let again = t.copy(&["-i"]);
    assert_code(&again, 0);
    assert_eq!(
        lines(&again),
        BTreeSet::new(),
        "a second run still changes something ({flags:?})"
    );
}

/// The itemize lines and the JSON summary of a `--json -i` run: the lines
/// are either on stdout before the object or on stderr.
fn split_json(out: &std::process::Output) -> (serde_json::Value, BTreeSet<String>) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text.find("\n{").map(|i| i + 1).unwrap_or(0);
    let v: serde_json::Value = serde_json::from_str(text[start..].trim())
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", explain(out)));
    let mut l: BTreeSet<String> = text[..start]
        .lines()
        .filter(|l| is_item(l))
        .map(str::to_string)
        .collect();
    l.extend(
        stderr(out)
            .lines()
            .filter(|l| is_item(l))
            .map(str::to_string),
    );
    (v, l)
}

/// Same content with a new mtime, other content with the same size and
/// mtime, permissions only, and another size (defects 1 and 3).
fn content_cases(t: &TestEnv) {
    let _ = fs::remove_dir_all(&t.dst);
    let s = &t.src;
    for (n, body) in [
        ("f", "hello"),
        ("g", "abcde"),
        ("h", "perm"),
        ("k", "size"),
        ("m", "both"),
        ("same", "keep"),
    ] {
        fs::write(s.join(n), body).expect("write");
        fs::set_permissions(s.join(n), fs::Permissions::from_mode(0o644)).expect("chmod");
        mtime(&s.join(n), 1_600_000_000);
    }
    mtime(s, 1_600_000_000);
    let out = t.copy(&[]);
    assert_code(&out, 0);
    settled(&t.dst);
    let d = &t.dst;
    mtime(&s.join("f"), 1_600_000_500);
    fs::write(d.join("g"), "xyzwv").expect("write");
    mtime(&d.join("g"), 1_600_000_000);
    fs::set_permissions(s.join("h"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(d.join("k"), "longer").expect("write");
    mtime(&d.join("k"), 1_600_000_000);
    // Copied again, and its permissions change with it: `p` on the line.
    fs::write(d.join("m"), "both, and more").expect("write");
    fs::set_permissions(d.join("m"), fs::Permissions::from_mode(0o600)).expect("chmod");
    mtime(&d.join("m"), 1_600_000_000);
    mtime(d, 1_600_000_000);
}

#[test]
fn checksum_decides_once_for_the_dry_run_the_lines_and_the_copy() {
    let t = TestEnv::new();
    content_cases(&t);
    agree(
        &t,
        &["-c"],
        &[
            ".f..t...... f",
            ">fc........ g",
            ".f...p..... h",
            ">fcs....... k",
            ">fcs.p..... m",
        ],
    );
    assert_eq!(fs::read(t.dst.join("g")).expect("read"), b"abcde");
}

#[test]
fn quick_check_lines_carry_every_attribute_letter() {
    let t = TestEnv::new();
    content_cases(&t);
    agree(
        &t,
        &[],
        &[
            ">f..t...... f",
            ".f...p..... h",
            ">f.s....... k",
            ">f.s.p..... m",
        ],
    );
    // The quick check does not look at content: g keeps its other bytes.
    assert_eq!(fs::read(t.dst.join("g")).expect("read"), b"xyzwv");
}

#[test]
fn ignore_times_copies_every_file_in_the_dry_run_too() {
    let t = TestEnv::new();
    content_cases(&t);
    // rsync -I: every file is transferred, and a second -I run would be
    // the same; `agree`'s second run is without -I.
    agree(
        &t,
        &["-I"],
        &[
            ">f..t...... f",
            ">f......... g",
            ">f...p..... h",
            ">f.s....... k",
            ">f.s.p..... m",
            ">f......... same",
        ],
    );
}

/// Defect 5: a directory without u+w settles (no repair reported on every
/// run), and `--delete` removes one (its owner adds u+w first, as rsync).
#[test]
fn a_read_only_directory_settles_and_can_be_deleted() {
    let t = TestEnv::new();
    let r = t.src.join("r");
    fs::create_dir(&r).expect("mkdir");
    fs::write(r.join("f"), "x").expect("write");
    fs::set_permissions(&r, fs::Permissions::from_mode(0o555)).expect("chmod");
    assert_code(&t.copy(&[]), 0);
    settled(&t.dst);
    for _ in 0..2 {
        let (out, v) = t.copy_json(&["-i"]);
        assert_code(&out, 0);
        assert_eq!(v["entries_repaired"], 0, "{v}");
        let l: Vec<String> = stderr(&out)
            .lines()
            .filter(|l| is_item(l))
            .map(str::to_string)
            .collect();
        assert!(l.is_empty(), "a current tree itemized: {l:?}");
        settled(&t.dst);
    }
    let mode = fs::metadata(t.dst.join("r"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o555);
    fs::set_permissions(&r, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::remove_dir_all(&r).expect("rm");
    fs::write(t.src.join("keep"), "k").expect("write");
    let out = t.copy(&["--delete"]);
    assert_code(&out, 0);
    assert!(!t.dst.join("r").exists(), "{}", explain(&out));
}

/// A read-only destination root is written into and left with the
/// source root's mode (rsync makes it writable for the run too).
#[test]
fn a_read_only_destination_root_is_filled_and_keeps_its_mode() {
    let t = TestEnv::new();
    fs::write(t.src.join("f"), "x").expect("write");
    fs::create_dir(&t.dst).expect("mkdir");
    fs::set_permissions(&t.src, fs::Permissions::from_mode(0o555)).expect("chmod");
    fs::set_permissions(&t.dst, fs::Permissions::from_mode(0o555)).expect("chmod");
    let out = t.copy(&[]);
    settled(&t.dst);
    let mode = fs::metadata(&t.dst).expect("stat").permissions().mode();
    let copied = fs::read(t.dst.join("f")).ok();
    for d in [&t.src, &t.dst] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod back");
    }
    assert_code(&out, 0);
    assert_eq!(copied.as_deref(), Some(&b"x"[..]));
    assert_eq!(mode & 0o7777, 0o555);
}

/// Defect 7: stdout under `--json` is one JSON object, whatever else is
/// asked for and whatever goes wrong.
#[test]
fn json_stdout_is_one_object_with_itemize_and_on_usage_errors() {
    let t = TestEnv::new();
    fs::write(t.src.join("f"), "x").expect("write");
    let out = t.copy(&["--json", "-i"]);
    assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one object ({e}): {}", explain(&out)));
    assert_eq!(v["files_copied"], 1);
    assert!(stderr(&out).contains(">f+++++++++ f"), "{}", explain(&out));
    for args in [
        vec!["--json", "--bogus"],
        vec!["--json", "--suffix", ".old"],
        vec!["--json", "--inplace"],
    ] {
        let mut c = t.cmd();
        c.arg(&t.src).arg(&t.dst).args(&args);
        let out = run(c);
        assert_code(&out, 2);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one object ({e}): {}",
                explain(&out)
            )
        });
        assert_eq!(v["exit_code"], 2, "{v}");
        assert_eq!(v["error"]["kind"], "usage", "{v}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", explain(&out));
    }
    // An option missing its partner names the partner.
    let mut c = t.cmd();
    c.arg(&t.src).arg(&t.dst).args(["--suffix", ".old"]);
    let out = run(c);
    assert!(stderr(&out).contains("--backup-dir"), "{}", explain(&out));
}

/// Defect 7: SIGHUP (a closed terminal or ssh session) stops the run at a
/// file boundary with the summary, exit 129.
#[test]
fn sighup_stops_gracefully_with_the_summary() {
    let t = TestEnv::new();
    for i in 0..40 {
        fs::write(t.src.join(format!("f{i}")), vec![7u8; 100_000]).expect("write");
    }
    let mut c = t.cmd();
    c.arg(&t.src)
        .arg(&t.dst)
        .args(["--json", "--bwlimit", "1M"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(signal(child.id(), libc::SIGHUP));
    let out = child.wait_with_output().expect("wait");
    assert_code(&out, 129);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no summary object ({e}): {}", explain(&out)));
    assert_eq!(v["interrupted"], true, "{v}");
    assert_eq!(v["exit_code"], 129, "{v}");
}

/// Defect 6: the dry run refuses what the real run refuses.
#[test]
fn a_missing_parent_is_refused_by_the_dry_run_too() {
    let t = TestEnv::new();
    fs::write(t.src.join("f"), "x").expect("write");
    let dst = t.path("no/such/dst");
    for dry in [true, false] {
        let mut c = t.cmd();
        c.arg(&t.src).arg(&dst);
        if dry {
            c.arg("-n");
        }
        let out = run(c);
        assert_code(&out, 2);
        assert!(stderr(&out).contains("--mkpath"), "{}", explain(&out));
    }
    let mut c = t.cmd();
    c.arg(&t.src).arg(&dst).args(["-n", "--mkpath"]);
    assert_code(&run(c), 0);
    assert!(!t.path("no").exists(), "a dry run created the parent");
}

/// Defect 9: `--files-from` reads and sends what rsync's does: `.` and
/// `dir/` send a directory's immediate entries, `#`/`;` lines are
/// comments, a directory listed and also a parent is handled once.
#[test]
fn files_from_sends_what_rsync_sends() {
    let t = TestEnv::new();
    let s = &t.src;
    fs::create_dir_all(s.join("dir/sub/deeper")).expect("mkdir");
    fs::create_dir_all(s.join("a/b")).expect("mkdir");
    for (p, body) in [
        ("top", "1"),
        ("dir/sub/f", "2"),
        ("dir/sub/deeper/g", "3"),
        ("a/b/c", "4"),
        ("dir/other", "5"),
    ] {
        fs::write(s.join(p), body).expect("write");
    }
    let lists: [(&str, &[&str], &[&str]); 4] = [
        (".\n", &["top", "dir", "a"], &["dir/other", "a/b"]),
        (
            "dir/sub/\n",
            &["dir/sub/f", "dir/sub/deeper"],
            &["dir/sub/deeper/g", "top"],
        ),
        ("a\na/b/c\n", &["a/b/c"], &["top"]),
        (
            "# a comment\n;top\na/b/c\r\ndir/sub/f\n",
            &["a/b/c", "dir/sub/f"],
            &["top", ";top"],
        ),
    ];
    for (list, present, absent) in lists {
        let file = t.path("list");
        fs::write(&file, list).expect("write list");
        let _ = fs::remove_dir_all(&t.dst);
        let twin = t.path("rsync-dst");
        let _ = fs::remove_dir_all(&twin);
        let out = t.copy(&["-i", "--files-from", file.to_str().expect("utf-8 path")]);
        assert_code(&out, 0);
        for p in present {
            assert!(
                t.dst.join(p).exists(),
                "{list:?}: {p} missing\n{}",
                explain(&out)
            );
        }
        for p in absent {
            assert!(
                !t.dst.join(p).exists(),
                "{list:?}: {p} sent\n{}",
                explain(&out)
            );
        }
        let mine = lines(&out);
        let r = Command::new("rsync")
            .arg("-a")
            .arg("-i")
            .arg(format!("--files-from={}", file.display()))
            .arg(format!("{}/", t.src.display()))
            .arg(format!("{}/", twin.display()))
            .output();
        match r {
            Ok(r) if r.status.success() => {
                assert_eq!(
                    lines(&r),
                    mine,
                    "{list:?}: the -i lines differ from rsync's"
                )
            }
            _ => skip("decision::files_from", "rsync not installed"),
        }
    }
}

/// `--files-from` sends the root only as rsync's does: for a `.` line, or
/// for a `./`-prefixed one (its `.` is `-R`'s implied directory). Not sent,
/// the destination root keeps its mode (and owner): an existing one as it
/// was, one this run creates with the default mode (0777 less the umask),
/// never the source root's, and no record. Checked against rsync on the
/// same trees, real runs (found by itemize_diff's FILES_FROM dimension).
#[test]
fn files_from_sends_the_root_only_as_rsync_does() {
    use std::os::unix::fs::MetadataExt;
    let t = TestEnv::new();
    fs::write(t.src.join("f"), "data").expect("write");
    fs::set_permissions(&t.src, fs::Permissions::from_mode(0o750)).expect("chmod");
    mtime(&t.src, 1_600_000_000);
    let mode = |p: &Path| fs::metadata(p).expect("stat").mode() & 0o7777;
    let umask = {
        // The test's own umask, which both tools inherit.
        let m = unsafe { libc::umask(0o022) };
        unsafe { libc::umask(m) };
        m
    };
    for (list, existing, root_sent) in [
        ("f\n", true, false),
        ("f\n", false, false),
        ("./f\n", true, true),
        ("./f\n", false, true),
        (".\n", true, true),
    ] {
        let file = t.path("list");
        fs::write(&file, list).expect("write list");
        let (mine, theirs) = (t.path("mine"), t.path("theirs"));
        for d in [&mine, &theirs] {
            let _ = fs::remove_dir_all(d);
            if existing {
                fs::create_dir(d).expect("mkdir");
                fs::set_permissions(d, fs::Permissions::from_mode(0o711)).expect("chmod");
                mtime(d, 1_500_000_000);
            }
        }
        let mut c = t.cmd();
        c.args(["-i", "--files-from"])
            .arg(&file)
            .arg(&t.src)
            .arg(&mine);
        let out = run(c);
        assert_code(&out, 0);
        let r = Command::new("rsync")
            .args(["-a", "-i"])
            .arg(format!("--files-from={}", file.display()))
            .arg(format!("{}/", t.src.display()))
            .arg(format!("{}/", theirs.display()))
            .output();
        let Some(r) = r.ok().filter(|r| r.status.success()) else {
            return skip("decision::files_from_root", "rsync not installed");
        };
        let case = format!("list {list:?}, destination existing: {existing}");
        assert_eq!(
            lines(&out),
            lines(&r),
            "{case}: the -i lines differ from rsync's"
        );
        assert_eq!(mode(&mine), mode(&theirs), "{case}: the root's mode");
        let expected = match (root_sent, existing) {
            (true, _) => 0o750,
            (false, true) => 0o711,
            (false, false) => 0o777 & !umask,
        };
        assert_eq!(mode(&mine), expected, "{case}");
        if root_sent {
            assert_eq!(
                fs::metadata(&mine).expect("stat").mtime(),
                1_600_000_000,
                "{case}"
            );
        }
        assert_eq!(fs::read(mine.join("f")).expect("f"), b"data", "{case}");
    }
}

/// Append to `path` until `stop`, every millisecond or so.
fn appender(
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            f.write_all(&[b'+'; 4096]).expect("append");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    })
}

/// Defect 8, with a real writer: a file that keeps growing (a busy log) is
/// copied as the consistent prefix it had when first read, with a warning
/// and its own counter, and the byte totals add up. (A file rewritten in
/// place is still refused: faults.rs, with a fail point, as are the cases
/// where the timing must be exact.) On tmpfs where there is one, so the
/// writer is never held up by the disk's write-back.
#[test]
fn a_growing_file_is_copied_as_first_read() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let (src, dst) = (base.path().join("src"), base.path().join("dst"));
    fs::create_dir(&src).expect("mkdir");
    let log = src.join("busy.log");
    fs::write(&log, vec![b'a'; 6 << 20]).expect("write");
    let stop = Arc::new(AtomicBool::new(false));
    let w = appender(log.clone(), Arc::clone(&stop));
    std::thread::sleep(std::time::Duration::from_millis(20));
    // About 1.5 s at 4 MB/s: the writer appends all along.
    let mut c = Command::new(bin());
    c.arg(&src)
        .arg(&dst)
        .args(["--json", "--bwlimit", "4M", "-j", "1"]);
    let out = run(c);
    stop.store(true, Ordering::Relaxed);
    w.join().expect("writer");
    assert_code(&out, 0);
    let v = parse_json(&out);
    assert_eq!(v["files_copied"], 1, "{v}");
    assert_eq!(v["files_grown"], 1, "{v}");
    assert!(stderr(&out).contains("still growing"), "{}", explain(&out));
    let copied = fs::read(dst.join("busy.log")).expect("read copy");
    let now = fs::read(&log).expect("read source");
    assert!(copied.len() >= 6 << 20, "{}", copied.len());
    assert!(copied.len() < now.len(), "the copy is a prefix");
    assert!(now.starts_with(&copied), "the copy is the source's prefix");
    assert_eq!(v["bytes_copied"], copied.len() as u64, "{v}");
    assert!(
        v["bytes_copied"].as_u64() <= v["bytes_found"].as_u64(),
        "copied more than found: {v}"
    );
}

/// Defect 4: a FIFO gets its ACL on the run that creates it, not only on
/// the next one.
#[test]
fn a_fifo_is_created_with_its_acl() {
    let t = TestEnv::new();
    let fifo = t.src.join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let acl = Command::new("setfacl")
        .args(["-m", "u:65534:r"])
        .arg(&fifo)
        .output();
    match acl {
        Ok(o) if o.status.success() => {}
        _ => {
            return skip(
                "decision::fifo_acl",
                "setfacl missing or ACLs unsupported here",
            )
        }
    }
    let (out, v) = t.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["specials_copied"], 1, "{v}");
    let get = |p: &Path| {
        let o = Command::new("getfacl")
            .args(["-c", "-n"])
            .arg(p)
            .output()
            .expect("getfacl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(
        get(&t.dst.join("pipe")),
        get(&fifo),
        "the ACL came with the node"
    );
    assert!(get(&fifo).contains("user:65534:r"), "{}", get(&fifo));
    settled(&t.dst);
    let (out, v) = t.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["entries_repaired"], 0, "a second run had to repair: {v}");
}

/// Defect 4: a symlink's own `trusted.*` attributes (root only) are copied
/// with it and repaired on a re-run, never set on its target.
#[test]
#[ignore = "needs root (trusted.* xattrs); .ci/run runs it as root (--ignored)"]
fn a_symlinks_trusted_xattrs_are_copied_and_repaired() {
    let t = TestEnv::new();
    fs::write(t.src.join("target"), "t").expect("write");
    std::os::unix::fs::symlink("target", t.src.join("link")).expect("symlink");
    let set = rustix::fs::lsetxattr(
        t.src.join("link"),
        "trusted.pcopy",
        b"1",
        rustix::fs::XattrFlags::empty(),
    );
    if set.is_err() {
        return skip(
            "decision::symlink_xattrs",
            "trusted.* refused on this filesystem",
        );
    }
    let get = |p: &Path| {
        let mut b = [0u8; 16];
        rustix::fs::lgetxattr(p, "trusted.pcopy", &mut b)
            .ok()
            .map(|n| b[..n].to_vec())
    };
    let (out, _) = t.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(
        get(&t.dst.join("link")),
        Some(b"1".to_vec()),
        "copied with the link"
    );
    assert_eq!(get(&t.dst.join("target")), None, "never on the target");
    settled(&t.dst);
    rustix::fs::lremovexattr(t.dst.join("link"), "trusted.pcopy").expect("remove");
    let (out, v) = t.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["entries_repaired"], 1, "{v}");
    assert_eq!(get(&t.dst.join("link")), Some(b"1".to_vec()), "repaired");
    settled(&t.dst);
    let (_, v) = t.copy_json(&[]);
    assert_eq!(v["entries_repaired"], 0, "settled: {v}");
}

/// Hard-linked symlinks settle: a re-run itemizes nothing and links
/// nothing (found by review: only regular files counted as kept).
#[test]
fn hard_linked_symlinks_settle() {
    let t = TestEnv::new();
    std::os::unix::fs::symlink("target", t.src.join("l")).expect("symlink");
    // linkat without AT_SYMLINK_FOLLOW: a second name of the symlink.
    fs::hard_link(t.src.join("l"), t.src.join("l2")).expect("link");
    assert_code(&t.copy(&[]), 0);
    settled(&t.dst);
    for dry in [true, false] {
        let mut args = vec!["--json", "-i"];
        if dry {
            args.push("-n");
        }
        let out = t.copy(&args);
        assert_code(&out, 0);
        let (v, l) = split_json(&out);
        assert!(l.is_empty(), "dry {dry}: a settled tree itemized {l:?}");
        assert_eq!(v["hardlinks_created"], 0, "dry {dry}: {v}");
        settled(&t.dst);
    }
}

/// A signal the caller set to be ignored stays ignored (`nohup pcopy ...`
/// survives the end of the session; found by review).
#[test]
fn an_ignored_sighup_stays_ignored() {
    use std::os::unix::process::CommandExt;
    let t = TestEnv::new();
    for i in 0..20 {
        fs::write(t.src.join(format!("f{i}")), vec![1u8; 100_000]).expect("write");
    }
    let mut c = t.cmd();
    c.arg(&t.src)
        .arg(&t.dst)
        .args(["--json", "--bwlimit", "2M"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: only signal(2) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let child = c.spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(signal(child.id(), libc::SIGHUP));
    let out = child.wait_with_output().expect("wait");
    assert_code(&out, 0);
    assert_eq!(parse_json(&out)["files_copied"], 20);
}
