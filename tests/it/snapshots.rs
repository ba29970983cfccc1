//! Snapshot backups: `--link-dest`, `--compare-dest`, `--copy-dest`. Three
//! generations checked by inode; rsync's own alt-dest tests
//! (`testsuite/alt-dest_test.py`, `alt-dest-deep_test.py`) ported; an
//! existing copy replaced by a link; a killed run resumed; a basis swapped
//! for a symlink mid-run; the filesystem's link limit (ext4, root only).
//! `basis_diff` compares all of it with rsync on generated trees.

use crate::util::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ino(p: &Path) -> (u64, u64) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.dev(), m.ino())
}

/// Every regular file under `root`, relative, but pcopy's temps (a run's
/// marker stays a moment after it exits, until its data is synced); none
/// while `root` does not exist yet.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(list) = fs::read_dir(&d) else { continue };
        for e in list.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let temp = e.file_name().as_encoded_bytes().starts_with(b".pcopy-tmp.");
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && !temp {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `pcopy --json SRC DST ARGS`, run from the test's directory.
fn copy_to(
    env: &TestEnv,
    src: &Path,
    dst: &Path,
    args: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let mut a = vec![src.to_str().unwrap(), dst.to_str().unwrap()];
    a.extend_from_slice(args);
    pcopy(env.dir.path(), &a)
}

fn pcopy(dir: &Path, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut c = Command::new(bin());
    c.current_dir(dir).arg("--json").args(args);
    let out = run(c);
    let v = parse_json(&out);
    (out, v)
}

/// Change `rel` (other size, new mtime) under `src`.
fn touch_change(src: &Path, rel: &Path, secs: i64) {
    use std::os::unix::fs::PermissionsExt;
    let p = src.join(rel);
    let mut data = fs::read(&p).unwrap();
    data.extend_from_slice(b" changed");
    // A read-only file (gen_tree makes some) is written as its owner
    // would: made writable for the moment, as an editor does.
    let mode = fs::metadata(&p).unwrap().permissions().mode();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o200)).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime_ns(&p, secs, 0);
}

#[test]
fn three_generations_share_every_unchanged_file() {
    let env = TestEnv::new();
    gen_tree(&env.src, 26, 120);
    let backup = env.path("backup");
    fs::create_dir(&backup).unwrap();
    let all = files(&env.src);
    assert!(all.len() >= 100, "the tree has {} files", all.len());
    let gen = |n: usize, prev: Option<usize>| {
        let dst = backup.join(format!("g{n}"));
        let link = prev.map(|p| format!("--link-dest=../g{p}"));
        let args: Vec<&str> = link.iter().map(String::as_str).collect();
        let (out, v) = copy_to(&env, &env.src, &dst, &args);
        assert_code(&out, 0);
        assert_trees_equal(&env.src, &dst);
        v
    };
    let v1 = gen(1, None);
    assert_eq!(v1["files_linked_from_basis"], 0);
    // Night 2: three files change.
    let changed2: Vec<PathBuf> = all.iter().step_by(40).cloned().collect();
    for r in &changed2 {
        touch_change(&env.src, r, 1_800_000_000);
    }
    let v2 = gen(2, Some(1));
    // Night 3: two others change.
    let changed3: Vec<PathBuf> = all.iter().skip(7).step_by(60).cloned().collect();
    for r in &changed3 {
        touch_change(&env.src, r, 1_800_000_100);
    }
    let v3 = gen(3, Some(2));
    let g = |n: usize, r: &Path| backup.join(format!("g{n}")).join(r);
    for r in &all {
        let (c2, c3) = (changed2.contains(r), changed3.contains(r));
        assert_eq!(
            ino(&g(1, r)) == ino(&g(2, r)),
            !c2,
            "{}: g2 shares g1's inode exactly when unchanged",
            r.display()
        );
        assert_eq!(
            ino(&g(2, r)) == ino(&g(3, r)),
            !c3,
            "{}: g3 shares g2's inode exactly when unchanged",
            r.display()
        );
    }
    let linked = |v: &serde_json::Value| v["files_linked_from_basis"].as_u64().unwrap();
    // Symlinks are linked from the basis too (as rsync does on Linux).
    assert!(linked(&v2) >= (all.len() - changed2.len()) as u64, "{v2}");
    assert!(linked(&v3) >= (all.len() - changed3.len()) as u64, "{v3}");
    assert_eq!(v2["files_copied"], changed2.len() as u64, "{v2}");
    assert_eq!(v3["files_copied"], changed3.len() as u64, "{v3}");
    let bytes: u64 = changed3
        .iter()
        .map(|r| fs::metadata(env.src.join(r)).unwrap().len())
        .sum();
    assert_eq!(
        v3["bytes_copied"], bytes,
        "only the changed data is written"
    );
    // A re-run of night 3 changes nothing.
    let (out, v) = copy_to(
        &env,
        &env.src,
        &g(3, Path::new("")),
        &["--link-dest=../g2", "-i"],
    );
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "{v}");
    let stderr = stderr(&out);
    assert!(!stderr.lines().any(|l| l.starts_with('>')), "{stderr}");
}

/// rsync's `testsuite/alt-dest_test.py`, ported: stacked --compare-dest
/// leaves out exactly what the basis directories hold unchanged; stacked
/// --copy-dest gives a full copy; --copy-dest copies (never links) a file
/// a basis has.
#[test]
fn rsync_alt_dest_test() {
    let env = TestEnv::new();
    let from = &env.src;
    // rsync's hands_setup, in small: text files, a dir with its own
    // `text`, an etc-ltr-list, an empty file, a symlink.
    fs::create_dir_all(from.join("dir/sub")).unwrap();
    fs::write(from.join("text"), "some text\n".repeat(30)).unwrap();
    fs::write(from.join("dir/text"), "dir text\n".repeat(20)).unwrap();
    fs::write(from.join("etc-ltr-list"), "passwd\ngroup\n").unwrap();
    fs::write(from.join("dir/sub/etc-ltr-list"), "hosts\n").unwrap();
    fs::write(from.join("empty"), "").unwrap();
    fs::write(from.join("dir/sub/other"), "other\n").unwrap();
    std::os::unix::fs::symlink("text", from.join("link")).unwrap();
    for p in [
        "text",
        "dir/text",
        "etc-ltr-list",
        "dir/sub/etc-ltr-list",
        "empty",
    ] {
        set_mtime_ns(&from.join(p), 1_700_000_000, 0);
    }
    let (alt1, alt2, alt3) = (env.path("alt1"), env.path("alt2"), env.path("alt3"));
    let s = |p: &Path| format!("{}/", p.display());
    let rsync = |args: &[&str]| {
        let out = Command::new("rsync").args(args).output();
        out.is_ok_and(|o| o.status.success())
    };
    // alt1 holds every `text`, alt2 every `etc-ltr-list` (rsync's setup).
    if !rsync(&[
        "-a",
        "--include=text",
        "--include=*/",
        "--exclude=*",
        &s(from),
        &s(&alt1),
    ]) {
        return skip("rsync_alt_dest_test", "rsync is not installed");
    }
    assert!(rsync(&[
        "-a",
        "--include=etc-ltr-list",
        "--include=*/",
        "--exclude=*",
        &s(from),
        &s(&alt2)
    ]));
    fs::write(from.join("likely"), "This is a test file\n").unwrap();
    fs::create_dir(&alt3).unwrap();
    fs::write(alt3.join("likely"), "This is a test file\n").unwrap();
    // dir/text and likely get a new mtime: no longer what alt1/alt3 have.
    set_mtime_ns(&from.join("dir/text"), 1_700_000_500, 0);
    set_mtime_ns(&from.join("likely"), 1_700_000_500, 0);
    // chkdir: the copy minus /text and every etc-ltr-list.
    // (Made by pcopy: this rsync keeps no nanoseconds on directories and
    // symlinks, which the tree comparison looks at.)
    let chk = env.path("chk");
    let (out, _) = copy_to(
        &env,
        from,
        &chk,
        &["--exclude=/text", "--exclude=etc-ltr-list"],
    );
    assert_code(&out, 0);

    let to = env.path("to");
    let (a1, a2) = (alt1.to_str().unwrap(), alt2.to_str().unwrap());
    let (out, _) = copy_to(
        &env,
        from,
        &to,
        &[
            &format!("--compare-dest={a1}"),
            &format!("--compare-dest={a2}"),
        ],
    );
    assert_code(&out, 0);
    assert_trees_equal(&chk, &to);

    fs::remove_dir_all(&to).unwrap();
    let (out, _) = copy_to(
        &env,
        from,
        &to,
        &[&format!("--copy-dest={a1}"), &format!("--copy-dest={a2}")],
    );
    assert_code(&out, 0);
    assert_trees_equal(from, &to);

    fs::remove_dir_all(&to).unwrap();
    let (out, _) = copy_to(
        &env,
        from,
        &to,
        &[&format!("--copy-dest={}", alt3.display())],
    );
    assert_code(&out, 0);
    assert_trees_equal(from, &to);
    assert_ne!(
        ino(&to.join("likely")),
        ino(&alt3.join("likely")),
        "--copy-dest copies, never links"
    );
}

/// rsync's `testsuite/alt-dest-deep_test.py`, ported: at every depth of a
/// tree, with the basis a sibling outside source and destination,
/// --link-dest links the unchanged files and copies the changed one,
/// --copy-dest copies all, --compare-dest leaves out all but the changed.
#[test]
fn rsync_alt_dest_deep_test() {
    let env = TestEnv::new();
    let mut dir = env.src.clone();
    for d in 0..=3 {
        fs::write(dir.join(format!("f{d}")), format!("file at depth {d}\n")).unwrap();
        dir = dir.join(format!("d{}", d + 1));
        if d < 3 {
            fs::create_dir(&dir).unwrap();
        }
    }
    let reference = env.path("altref");
    let (out, _) = copy_to(&env, &env.src, &reference, &[]);
    assert_code(&out, 0);
    let changed = PathBuf::from("d1/d2/d3/f3");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(env.src.join(&changed))
        .unwrap();
    std::io::Write::write_all(&mut f, b"a changed deep tail\n").unwrap();
    drop(f);
    let rels = files(&env.src);
    assert_eq!(rels.len(), 4);
    let to = env.path("to");
    let run_to = |opt: &str| {
        let _ = fs::remove_dir_all(&to);
        let (out, _) = copy_to(
            &env,
            &env.src,
            &to,
            &[&format!("--{opt}={}", reference.display())],
        );
        assert_code(&out, 0);
    };
    run_to("link-dest");
    for r in &rels {
        let same = ino(&to.join(r)) == ino(&reference.join(r));
        assert_eq!(same, *r != changed, "link-dest {}", r.display());
        assert_eq!(
            fs::read(to.join(r)).unwrap(),
            fs::read(env.src.join(r)).unwrap()
        );
    }
    run_to("copy-dest");
    for r in &rels {
        assert_ne!(
            ino(&to.join(r)),
            ino(&reference.join(r)),
            "copy-dest {}",
            r.display()
        );
        assert_eq!(
            fs::read(to.join(r)).unwrap(),
            fs::read(env.src.join(r)).unwrap()
        );
    }
    run_to("compare-dest");
    for r in &rels {
        assert_eq!(
            to.join(r).exists(),
            *r == changed,
            "compare-dest {}",
            r.display()
        );
    }
}

/// A snapshot started over a full copy of its own (yesterday's run
/// without --link-dest, or a resumed one): each unchanged file is replaced
/// by a link to the basis, as rsync does, and a run over a destination that
/// is already the basis's inode changes nothing. Under --compare-dest the
/// destination's own identical file goes (rsync removes it too).
#[test]
fn an_existing_copy_becomes_a_link_and_compare_dest_removes_it() {
    let env = TestEnv::new();
    gen_tree(&env.src, 5, 40);
    let base = env.path("base");
    let (out, _) = copy_to(&env, &env.src, &base, &[]);
    assert_code(&out, 0);
    let (out, _) = env.copy_json(&[]);
    assert_code(&out, 0);
    let all = files(&env.src);
    for r in &all {
        assert_ne!(ino(&env.dst.join(r)), ino(&base.join(r)));
    }
    let (out, v) = env.copy_json(&["--link-dest=../base"]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_eq!(v["bytes_copied"], 0, "{v}");
    for r in &all {
        assert_eq!(ino(&env.dst.join(r)), ino(&base.join(r)), "{}", r.display());
    }
    assert_trees_equal(&env.src, &env.dst);
    let (out, v) = env.copy_json(&["--link-dest=../base"]);
    assert_code(&out, 0);
    assert_eq!(v["files_linked_from_basis"], 0, "{v}");
    assert_eq!(v["files_skipped"], v["files_found"], "{v}");

    // --compare-dest over a copy of the same: only directories remain.
    fs::remove_dir_all(&env.dst).unwrap();
    let (out, _) = env.copy_json(&[]);
    assert_code(&out, 0);
    let (out, v) = env.copy_json(&["--compare-dest=../base"]);
    assert_code(&out, 0);
    assert!(files(&env.dst).is_empty(), "{v}");
    assert!(
        files(&base).len() == all.len(),
        "the basis keeps everything"
    );
}

#[test]
fn basis_options_are_checked() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), "x").unwrap();
    let out = env.copy(&["--link-dest=a", "--copy-dest=b"]);
    assert_code(&out, 2);
    let out = env.copy(&["--link-dest=a", "--compare-dest=b"]);
    assert_code(&out, 2);
    let many: Vec<String> = (0..21).map(|i| format!("--link-dest=b{i}")).collect();
    let a: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = env.copy(&a);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("at most 20"), "{}", stderr(&out));
    // A basis that does not exist is left out with a warning, as in rsync.
    let (out, v) = env.copy_json(&["--link-dest=../nowhere"]);
    assert_code(&out, 0);
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
    assert_eq!(v["files_copied"], 1);
}

/// `--delete` into a snapshot never touches the basis, and a basis whose
/// path is swapped for a symlink during the run is not followed: the run
/// keeps the directory it opened at the start.
#[cfg(feature = "failpoints")]
#[test]
fn a_basis_swapped_for_a_symlink_mid_run_is_not_followed() {
    let env = TestEnv::new();
    for i in 0..40 {
        fs::write(env.src.join(format!("f{i:02}")), format!("data {i}\n")).unwrap();
    }
    let base = env.path("base");
    let (out, _) = copy_to(&env, &env.src, &base, &[]);
    assert_code(&out, 0);
    // Something in the basis the source lacks, and a victim directory the
    // swapped symlink will point at.
    fs::write(base.join("only-in-basis"), "keep").unwrap();
    let victim = env.path("victim");
    fs::create_dir(&victim).unwrap();
    for i in 0..40 {
        fs::write(victim.join(format!("f{i:02}")), format!("data {i}\n")).unwrap();
        // Same bytes, same times: a basis the run would happily link from.
        let t = fs::metadata(env.src.join(format!("f{i:02}")))
            .unwrap()
            .modified()
            .unwrap();
        filetime::set_file_mtime(victim.join(format!("f{i:02}")), t.into()).unwrap();
    }
    fs::create_dir(&env.dst).unwrap();
    fs::write(env.dst.join("extra"), "goes").unwrap();
    let mut c = env.cmd();
    c.arg("--json")
        .arg("--delete")
        .arg("--link-dest=../base")
        .arg(&env.src)
        .arg(&env.dst)
        .env("FAILPOINTS", "walk::link_from_basis=sleep(20)")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for(20, "a first link", || {
        env.dst.join("f00").exists() || env.dst.join("f39").exists()
    });
    let moved = env.path("base.moved");
    fs::rename(&base, &moved).unwrap();
    std::os::unix::fs::symlink(&victim, &base).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 0);
    for i in 0..40 {
        let r = format!("f{i:02}");
        assert_eq!(
            ino(&env.dst.join(&r)),
            ino(&moved.join(&r)),
            "{r} is linked from the basis opened at the start"
        );
        assert_eq!(fs::metadata(victim.join(&r)).unwrap().nlink(), 1, "{r}");
    }
    assert!(
        !env.dst.join("extra").exists(),
        "--delete removed the extra"
    );
    assert_eq!(fs::read(moved.join("only-in-basis")).unwrap(), b"keep");
    assert!(temps_under(&env.dst).is_empty());
}

/// A snapshot run killed half way (SIGKILL of the supervisor) leaves no
/// name that is not a whole file; the next run completes it, linking what
/// is unchanged.
#[cfg(feature = "failpoints")]
#[test]
fn a_killed_snapshot_run_resumes() {
    let env = TestEnv::new();
    gen_tree(&env.src, 9, 80);
    let base = env.path("base");
    let (out, _) = copy_to(&env, &env.src, &base, &[]);
    assert_code(&out, 0);
    let all = files(&env.src);
    let changed: Vec<PathBuf> = all.iter().step_by(9).cloned().collect();
    for r in &changed {
        touch_change(&env.src, r, 1_800_000_000);
    }
    let mut c = env.cmd();
    c.arg("--link-dest=../base")
        .arg(&env.src)
        .arg(&env.dst)
        .env("FAILPOINTS", "walk::link_from_basis=sleep(10)")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    wait_for(20, "some links", || files(&env.dst).len() >= 10);
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    // Whatever is there is whole: the basis's inode or a complete copy.
    for r in files(&env.dst) {
        assert_eq!(
            fs::read(env.dst.join(&r)).unwrap(),
            fs::read(env.src.join(&r)).unwrap(),
            "{} is whole",
            r.display()
        );
    }
    let (out, _) = env.copy_json(&["--link-dest=../base"]);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
    for r in &all {
        assert_eq!(
            ino(&env.dst.join(r)) == ino(&base.join(r)),
            !changed.contains(r),
            "{}",
            r.display()
        );
    }
}

/// The link limit of a real filesystem (ext4: 65,000 names per inode):
/// a basis file at the limit is copied instead, with one warning, and the
/// run succeeds.
#[test]
#[ignore = "needs root to loop-mount an ext4 image; .ci/run runs it as root (--ignored)"]
fn a_basis_file_at_the_link_limit_is_copied_with_one_warning() {
    let env = TestEnv::new();
    let Some(m) = Mounted::image(
        env.dir.path(),
        64 << 20,
        &["mkfs.ext4", "-q", "-F", "-N", "4096"],
    ) else {
        return skip("link_limit", "mkfs.ext4 or the loop mount was refused");
    };
    let mnt = m.0.clone();
    let src = mnt.join("src");
    let base = mnt.join("base");
    fs::create_dir_all(src.join("d")).unwrap();
    for n in ["full1", "full2", "ok"] {
        fs::write(src.join("d").join(n), format!("{n}\n")).unwrap();
        set_mtime_ns(&src.join("d").join(n), 1_700_000_000, 0);
    }
    let (out, _) = copy_to(&env, &src, &base, &[]);
    assert_code(&out, 0);
    // Fill two basis inodes up to ext4's limit.
    let spare = base.join("spare");
    fs::create_dir(&spare).unwrap();
    let mut limit = 0;
    for n in ["full1", "full2"] {
        let f = base.join("d").join(n);
        for i in 0.. {
            match fs::hard_link(&f, spare.join(format!("{n}.{i}"))) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EMLINK) => {
                    limit = fs::metadata(&f).unwrap().nlink();
                    break;
                }
                Err(e) => panic!("link: {e}"),
            }
        }
    }
    assert!(limit >= 1000, "the link limit: {limit}");
    let snap = mnt.join("snap");
    let (out, v) = copy_to(&env, &src, &snap, &["--link-dest=../base"]);
    assert_code(&out, 0);
    assert_trees_equal(&src, &snap);
    let err = stderr(&out);
    assert_eq!(
        err.matches("cannot hard-link from the basis").count(),
        1,
        "one warning: {err}"
    );
    assert_eq!(v["files_linked_from_basis"], 1, "{v}");
    assert_eq!(v["files_copied"], 2, "{v}");
    assert_eq!(ino(&snap.join("d/ok")), ino(&base.join("d/ok")));
    assert_ne!(ino(&snap.join("d/full1")), ino(&base.join("d/full1")));
}

/// A hard-link group of the source stays one group in the snapshot when
/// its names come from the basis: linked to the basis's inode when the
/// basis has them as one group, and joined into one inode when the basis
/// has them split (then the names rsync would take first decides).
#[test]
fn hard_link_groups_stay_groups_when_linked_from_a_basis() {
    let env = TestEnv::new();
    fs::create_dir_all(env.src.join("d")).unwrap();
    fs::write(env.src.join("a"), "group\n").unwrap();
    fs::hard_link(env.src.join("a"), env.src.join("d/b")).unwrap();
    fs::hard_link(env.src.join("a"), env.src.join("d/c")).unwrap();
    let base = env.path("base");
    let (out, _) = copy_to(&env, &env.src, &base, &[]);
    assert_code(&out, 0);
    let snap = env.path("snap");
    let (out, v) = copy_to(&env, &env.src, &snap, &["--link-dest=../base"]);
    assert_code(&out, 0);
    for n in ["a", "d/b", "d/c"] {
        assert_eq!(ino(&snap.join(n)), ino(&base.join("a")), "{n}: {v}");
    }
    assert_eq!(v["files_copied"], 0, "{v}");
    // The basis split: d/c is a file of its own there (same data, same
    // attributes). The snapshot still has one inode for all three names.
    fs::remove_file(base.join("d/c")).unwrap();
    fs::copy(base.join("a"), base.join("d/c")).unwrap();
    let t = fs::metadata(base.join("a")).unwrap().modified().unwrap();
    filetime::set_file_mtime(base.join("d/c"), t.into()).unwrap();
    let snap2 = env.path("snap2");
    let (out, v) = copy_to(&env, &env.src, &snap2, &["--link-dest=../base"]);
    assert_code(&out, 0);
    let i = ino(&snap2.join("a"));
    assert_eq!(ino(&snap2.join("d/b")), i, "{v}");
    assert_eq!(ino(&snap2.join("d/c")), i, "{v}");
    assert_eq!(i, ino(&base.join("a")), "linked from the basis: {v}");
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_trees_equal(&env.src, &snap2);
}

/// A destination that fills up while links are made (on tmpfs every name
/// takes an inode): one "destination full" error, exit 11, the rest counted
/// as not copied, never one error per file.
#[test]
#[ignore = "needs root to mount a small tmpfs; .ci/run runs it as root (--ignored)"]
fn a_destination_full_of_links_stops_with_one_error() {
    let env = TestEnv::new();
    for i in 0..300 {
        fs::write(env.src.join(format!("f{i:03}")), format!("{i}\n")).unwrap();
    }
    let Some(m) = Mounted::tmpfs(env.dir.path(), "size=16m,nr_inodes=500") else {
        return skip("links_fill_tmpfs", "mounting a tmpfs was refused");
    };
    let mnt = m.0.clone();
    let base = mnt.join("base");
    let (out, _) = copy_to(&env, &env.src, &base, &[]);
    assert_code(&out, 0);
    let snap = mnt.join("snap");
    let (out, v) = copy_to(&env, &env.src, &snap, &["--link-dest=../base"]);
    assert_code(&out, 11);
    assert_eq!(v["disk_full"], true, "{v}");
    assert!(v["files_not_copied"].as_u64().unwrap() > 0, "{v}");
    let err = stderr(&out);
    assert!(
        err.lines().filter(|l| l.contains("[ERROR]")).count() <= 1,
        "one error, not one per file: {err}"
    );
    let found = v["files_found"].as_u64().unwrap();
    let accounted = [
        "files_linked_from_basis",
        "files_not_copied",
        "files_copied",
        "files_failed",
    ]
    .iter()
    .map(|k| v[k].as_u64().unwrap())
    .sum::<u64>();
    assert_eq!(found, accounted, "{v}");
    assert!(temps_under(&snap).is_empty());
}
