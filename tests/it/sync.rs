//! Re-runs converge: metadata repaired in place, and (with `--delete`) the
//! destination mirrors the source; `rsync -aHAXn` then finds nothing to do.

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

/// What `rsync -aHAXn --itemize-changes SRC/ DST/` would still change
/// (empty when the trees are in sync), or None without rsync.
pub fn rsync_changes(src: &std::path::Path, dst: &std::path::Path, delete: bool) -> Option<String> {
    settled(dst);
    let mut c = Command::new("rsync");
    c.arg("-aHAXn").arg("--itemize-changes");
    if delete {
        c.arg("--delete");
    }
    let out = c
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "rsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn set_xattr(p: &std::path::Path, name: &str, value: &[u8]) -> bool {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()).is_ok()
}

#[test]
fn a_rerun_repairs_metadata_in_place_without_copying_data() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("d")).unwrap();
    fs::write(env.src.join("d/f"), b"hello").unwrap();
    fs::set_permissions(env.src.join("d/f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(env.src.join("d/g"), b"untouched").unwrap();
    let xattrs = set_xattr(&env.src.join("d/f"), "user.keep", b"1");
    assert_code(&env.copy(&[]), 0);
    let f = env.dst.join("d/f");
    let ino = fs::metadata(&f).unwrap().ino();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o777)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&f, Some(1), Some(1)).unwrap();
    }
    if xattrs {
        assert!(set_xattr(&f, "user.stale", b"1"));
        rustix::fs::lremovexattr(&f, "user.keep").unwrap();
    } else {
        skip("repair_xattrs", "no user xattrs on this filesystem");
    }
    fs::set_permissions(env.dst.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "no data copied: {v}");
    assert_eq!(v["entries_repaired"], 2, "the file and its directory: {v}");
    let m = fs::metadata(&f).unwrap();
    assert_eq!(m.ino(), ino, "repaired in place, not replaced");
    assert_eq!(m.mode() & 0o7777, 0o644);
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }
    if xattrs {
        assert_eq!(
            rustix::fs::llistxattr(&f, &mut [0u8; 256][..]).unwrap(),
            "user.keep\0".len(),
            "user.stale removed, user.keep restored"
        );
    }
    assert_trees_equal(&env.src, &env.dst);
    match rsync_changes(&env.src, &env.dst, false) {
        Some(changes) => assert_eq!(changes, "", "rsync -aHAXn still sees changes"),
        None => skip("repair_rsync_check", "rsync not installed"),
    }
    // Nothing left to repair: a third run changes nothing.
    let (_, v) = env.copy_json(&[]);
    assert_eq!(v["entries_repaired"], 0, "{v}");
}

#[test]
fn a_dry_run_counts_repairs_and_changes_nothing() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    fs::set_permissions(env.src.join("f"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_code(&env.copy(&[]), 0);
    fs::set_permissions(env.dst.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
    let (out, v) = env.copy_json(&["-n"]);
    assert_code(&out, 0);
    assert_eq!(v["entries_repaired"], 1, "{v}");
    let mode = fs::metadata(env.dst.join("f")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "a dry run writes nothing");
}

/// A source tree and a destination synced from it, then made to differ.
fn diverged(env: &TestEnv) {
    fs::create_dir_all(env.src.join("a/b")).unwrap();
    fs::write(env.src.join("a/f"), b"1").unwrap();
    fs::write(env.src.join("a/b/g"), b"2").unwrap();
    fs::write(env.src.join("keep.log"), b"log").unwrap();
    fs::write(env.src.join("clash"), b"file in the source").unwrap();
    fs::create_dir(env.src.join("clash2")).unwrap();
    assert_code(&env.copy(&[]), 0);
    fs::create_dir_all(env.dst.join("extra/deep")).unwrap();
    fs::write(env.dst.join("extra/deep/x"), b"x").unwrap();
    fs::write(env.dst.join("a/y"), b"y").unwrap();
    fs::write(env.dst.join("a/old.log"), b"excluded extra").unwrap();
    fs::remove_file(env.dst.join("clash")).unwrap();
    fs::create_dir_all(env.dst.join("clash/sub")).unwrap();
    fs::remove_dir(env.dst.join("clash2")).unwrap();
    fs::write(env.dst.join("clash2"), b"file where the source has a dir").unwrap();
}

#[test]
fn delete_mirrors_and_resolves_type_clashes() {
    let env = TestEnv::new();
    diverged(&env);
    let (out, v) = env.copy_json(&["--delete"]);
    assert_code(&out, 0);
    for gone in ["extra", "a/y", "a/old.log"] {
        assert!(!env.dst.join(gone).exists(), "{gone} kept");
    }
    assert!(fs::metadata(env.dst.join("clash")).unwrap().is_file());
    assert!(fs::metadata(env.dst.join("clash2")).unwrap().is_dir());
    // extra, extra/deep, extra/deep/x, a/y, a/old.log, clash/sub; as in
    // rsync, clash/ and clash2, replaced by the source's entries, are not
    // deletions.
    assert_eq!(v["entries_deleted"], 6, "{v}");
    assert_trees_equal(&env.src, &env.dst);
    match rsync_changes(&env.src, &env.dst, true) {
        Some(changes) => assert_eq!(changes, "", "rsync --delete still sees changes"),
        None => skip("delete_rsync_check", "rsync not installed"),
    }
}

#[test]
fn delete_keeps_excluded_entries_unless_delete_excluded() {
    let env = TestEnv::new();
    diverged(&env);
    let (out, _) = env.copy_json(&["--delete", "--exclude", "*.log"]);
    assert_code(&out, 0);
    assert!(env.dst.join("a/old.log").exists(), "excluded extra deleted");
    assert!(!env.dst.join("a/y").exists());
    let (out, _) = env.copy_json(&["--delete", "--delete-excluded", "--exclude", "*.log"]);
    assert_code(&out, 0);
    assert!(!env.dst.join("a/old.log").exists());
    assert!(
        !env.dst.join("keep.log").exists(),
        "excluded and deleted as asked"
    );
}

#[test]
fn max_delete_stops_deleting_and_exits_25() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    assert_code(&env.copy(&[]), 0);
    for i in 0..10 {
        fs::write(env.dst.join(format!("extra{i}")), b"x").unwrap();
    }
    let (out, v) = env.copy_json(&["--delete", "--max-delete", "3"]);
    assert_code(&out, 25);
    assert_eq!(v["entries_deleted"], 3, "{v}");
    assert_eq!(v["delete_limit_reached"], true);
    assert_eq!(count_files(&env.dst), 1 + 7);
    let (out, _) = env.copy_json(&["--delete"]);
    assert_code(&out, 0);
    assert_eq!(count_files(&env.dst), 1);
}

#[test]
fn a_dry_run_lists_deletions_and_deletes_nothing() {
    let env = TestEnv::new();
    diverged(&env);
    let before = count_files(&env.dst);
    let out = env.copy(&["--delete", "-n", "-i"]);
    assert_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "*deleting   extra/deep/x",
        "*deleting   extra/",
        "*deleting   a/y",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(count_files(&env.dst), before, "a dry run deleted");
    assert!(env.dst.join("extra/deep/x").exists());
    assert!(fs::metadata(env.dst.join("clash")).unwrap().is_dir());
}

#[test]
fn delete_never_follows_a_symlink_out_of_the_destination() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    assert_code(&env.copy(&[]), 0);
    let outside = env.path("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("precious"), b"keep").unwrap();
    fs::write(outside.join("sub/also"), b"keep").unwrap();
    // Extras that point outside: a symlink to a directory, and a directory
    // holding such a symlink.
    std::os::unix::fs::symlink(&outside, env.dst.join("link")).unwrap();
    fs::create_dir(env.dst.join("dir")).unwrap();
    std::os::unix::fs::symlink(&outside, env.dst.join("dir/inner")).unwrap();
    let (out, v) = env.copy_json(&["--delete"]);
    assert_code(&out, 0);
    assert_eq!(v["entries_deleted"], 3, "{v}");
    assert!(fs::symlink_metadata(env.dst.join("link")).is_err());
    assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
    assert_eq!(fs::read(outside.join("sub/also")).unwrap(), b"keep");
}

#[test]
fn after_delete_rsync_ahax_finds_nothing_to_change() {
    let env = TestEnv::new();
    gen_tree(&env.src, 21, 120);
    fs::create_dir_all(env.src.join("x/y")).unwrap();
    fs::write(env.src.join("x/data"), b"original").unwrap();
    fs::write(env.src.join("x/meta"), b"m").unwrap();
    fs::write(env.src.join("x/y/linked"), b"l").unwrap();
    fs::hard_link(env.src.join("x/y/linked"), env.src.join("x/second")).unwrap();
    let xattrs = set_xattr(&env.src.join("x/meta"), "user.src", b"1");
    let acl = |args: &[&str], p: &std::path::Path| {
        Command::new("setfacl")
            .args(args)
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
    };
    let acls = acl(&["-m", "u:1:rw"], &env.src.join("x/meta"));
    assert_code(&env.copy(&[]), 0);
    // Now make the destination differ in every way rsync -aHAX looks at.
    let d = &env.dst;
    fs::write(d.join("x/data"), b"changed!").unwrap(); // same size, new mtime
    fs::set_permissions(d.join("x/meta"), fs::Permissions::from_mode(0o600)).unwrap();
    if xattrs {
        assert!(set_xattr(&d.join("x/meta"), "user.stale", b"1"));
    }
    if acls {
        assert!(acl(&["-b"], &d.join("x/meta")));
        assert!(acl(&["-m", "u:2:r"], &d.join("x")));
    }
    fs::remove_file(d.join("x/second")).unwrap();
    fs::write(d.join("x/second"), b"l").unwrap(); // no longer a link
    fs::create_dir_all(d.join("gone/deeper")).unwrap();
    fs::write(d.join("gone/deeper/f"), b"f").unwrap();
    fs::write(d.join("x/y/gone"), b"g").unwrap();
    if is_root() {
        std::os::unix::fs::lchown(d.join("x/y"), Some(3), Some(3)).unwrap();
    }
    let Some(before) = rsync_changes(&env.src, d, true) else {
        skip("rsync_ahax_delete", "rsync not installed");
        return;
    };
    assert!(!before.is_empty(), "the fixture must differ");
    let (out, v) = env.copy_json(&["--delete"]);
    assert_code(&out, 0);
    assert!(v["entries_deleted"].as_u64().unwrap() >= 4, "{v}");
    let after = rsync_changes(&env.src, d, true).unwrap();
    assert_eq!(
        after, "",
        "rsync -aHAXn --delete still sees changes; before:\n{before}"
    );
    if !xattrs || !acls {
        skip(
            "rsync_ahax_delete",
            "no user xattrs or ACLs: those parts not exercised",
        );
    }
}

#[test]
fn itemize_and_json_lines_name_every_change_with_its_reason() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("d")).unwrap();
    fs::write(env.src.join("d/f"), b"1").unwrap();
    fs::write(env.src.join("meta"), b"m").unwrap();
    std::os::unix::fs::symlink("meta", env.src.join("l")).unwrap();
    assert_code(&env.copy(&[]), 0);
    fs::write(env.src.join("d/f"), b"longer").unwrap();
    set_mtime_ns(&env.src.join("d/f"), 1_600_000_000, 1);
    fs::write(env.src.join("new"), b"n").unwrap();
    fs::create_dir(env.src.join("newdir")).unwrap();
    fs::set_permissions(env.dst.join("meta"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(env.dst.join("extra"), b"x").unwrap();
    let expected = [
        ">f+++++++++ new",
        ">f.st...... d/f",
        ".f...p..... meta",
        "cd+++++++++ newdir/",
        "*deleting   extra",
    ];
    let out = env.copy(&["-n", "-i", "--delete"]);
    assert_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in -n -i:\n{text}"
        );
    }
    assert!(
        !text.contains(" l -> "),
        "an unchanged symlink is not listed:\n{text}"
    );
    // The real run says the same, and --json-lines writes it for scripts.
    let jl = env.path("changes.jsonl");
    let out = env.copy(&["-i", "--delete", "--json-lines", jl.to_str().unwrap()]);
    assert_code(&out, 0);
    let real = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in expected {
        assert!(
            real.lines().any(|l| l == line),
            "missing {line:?} in -i:\n{real}"
        );
    }
    let lines: Vec<serde_json::Value> = fs::read_to_string(&jl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["entries_deleted"], 1);
    let f = lines
        .iter()
        .find(|v| v["path"] == "d/f")
        .expect("d/f listed");
    assert_eq!(f["action"], "updated");
    assert_eq!(f["reasons"], serde_json::json!(["size", "mtime"]));
    assert_eq!(f["size"], 6);
    let meta = lines.iter().find(|v| v["path"] == "meta").unwrap();
    assert_eq!(
        (&meta["action"], &meta["reasons"][0]),
        (&"repaired".into(), &"perms".into())
    );
    // In sync now: a further -i run lists nothing.
    let out = env.copy(&["-i", "--delete", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn update_keeps_files_newer_at_the_destination() {
    let env = TestEnv::new();
    fs::write(env.src.join("newer-there"), b"source").unwrap();
    fs::write(env.src.join("older-there"), b"source").unwrap();
    set_mtime_ns(&env.src.join("newer-there"), 1_600_000_000, 0);
    set_mtime_ns(&env.src.join("older-there"), 1_600_000_000, 0);
    fs::create_dir(&env.dst).unwrap();
    fs::write(env.dst.join("newer-there"), b"edited at the destination").unwrap();
    set_mtime_ns(&env.dst.join("newer-there"), 1_700_000_000, 0);
    fs::write(env.dst.join("older-there"), b"stale").unwrap();
    set_mtime_ns(&env.dst.join("older-there"), 1_500_000_000, 0);
    let (out, v) = env.copy_json(&["-u"]);
    assert_code(&out, 0);
    assert_eq!(
        fs::read(env.dst.join("newer-there")).unwrap(),
        b"edited at the destination"
    );
    assert_eq!(fs::read(env.dst.join("older-there")).unwrap(), b"source");
    assert_eq!(v["files_copied"], 1, "{v}");
    // Without -u the source wins.
    assert_code(&env.copy(&[]), 0);
    assert_eq!(fs::read(env.dst.join("newer-there")).unwrap(), b"source");
}

#[test]
fn one_file_system_creates_mount_points_empty() {
    let env = TestEnv::new();
    // A directory on another filesystem, reached through a followed
    // symlink (-L): the same st_dev test a mount point meets.
    let other = tempfile::tempdir_in("/dev/shm").expect("/dev/shm");
    let same_fs =
        fs::metadata(other.path()).unwrap().dev() == fs::metadata(&env.src).unwrap().dev();
    if same_fs {
        skip(
            "one_file_system",
            "/dev/shm and the test dir share a filesystem",
        );
        return;
    }
    fs::write(other.path().join("inside"), b"x").unwrap();
    std::os::unix::fs::symlink(other.path(), env.src.join("mnt")).unwrap();
    fs::write(env.src.join("here"), b"h").unwrap();
    assert_code(&env.copy(&["-L", "-x"]), 0);
    assert!(env.dst.join("mnt").is_dir(), "mount point created");
    assert!(
        !env.dst.join("mnt/inside").exists(),
        "other filesystem not copied"
    );
    assert!(env.dst.join("here").exists());
    assert_code(&env.copy(&["-L"]), 0);
    assert!(
        env.dst.join("mnt/inside").exists(),
        "without -x it is copied"
    );
}

#[test]
fn checksum_catches_a_flipped_byte_with_the_mtime_kept_and_skips_equal_content() {
    let env = TestEnv::new();
    gen_tree(&env.src, 31, 40);
    fs::write(env.src.join("audit"), b"precious bytes").unwrap();
    fs::write(env.src.join("touched"), b"same content").unwrap();
    assert_code(&env.copy(&[]), 0);
    // Bit rot: one byte flipped, size and mtime as before.
    let f = env.dst.join("audit");
    let m = fs::metadata(&f).unwrap();
    fs::write(&f, b"precious bytez").unwrap();
    set_mtime_ns(&f, m.mtime(), m.mtime_nsec() as u32);
    // Same content, another mtime.
    set_mtime_ns(&env.dst.join("touched"), 1_500_000_000, 0);
    let (_, v) = env.copy_json(&[]);
    assert_eq!(v["files_copied"], 1, "size+mtime only sees 'touched': {v}");
    let (out, v) = env.copy_json(&["-c"]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 1, "{v}");
    assert_eq!(fs::read(&f).unwrap(), b"precious bytes");
    assert_trees_equal(&env.src, &env.dst);
    // Equal content everywhere now: nothing is copied.
    set_mtime_ns(&env.dst.join("touched"), 1_500_000_000, 0);
    let (_, v) = env.copy_json(&["-c"]);
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_eq!(v["entries_repaired"], 1, "the mtime is set in place: {v}");
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn files_from_copies_only_the_listed_paths_with_their_parents() {
    let env = TestEnv::new();
    fs::create_dir_all(env.src.join("a/b")).unwrap();
    fs::create_dir_all(env.src.join("d/inner")).unwrap();
    fs::write(env.src.join("a/b/c.txt"), b"c").unwrap();
    fs::write(env.src.join("a/b/not-listed"), b"n").unwrap();
    fs::write(env.src.join("d/inner/f"), b"f").unwrap();
    fs::write(env.src.join("top"), b"t").unwrap();
    fs::write(env.src.join("other"), b"o").unwrap();
    fs::set_permissions(env.src.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
    let list = env.path("list");
    // `./d` without a trailing slash: the directory alone (with one, its
    // immediate entries too: decision::files_from_sends_what_rsync_sends).
    fs::write(&list, "a/b/c.txt\n/top\n./d\n\n").unwrap();
    let (out, v) = env.copy_json(&["--files-from", list.to_str().unwrap()]);
    assert_code(&out, 0);
    assert_eq!(fs::read(env.dst.join("a/b/c.txt")).unwrap(), b"c");
    assert_eq!(fs::read(env.dst.join("top")).unwrap(), b"t");
    assert!(env.dst.join("d").is_dir(), "a listed directory is created");
    assert!(!env.dst.join("d/inner").exists(), "but not descended into");
    assert!(!env.dst.join("a/b/not-listed").exists() && !env.dst.join("other").exists());
    let mode = fs::metadata(env.dst.join("a")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o750, "parents get their source attributes");
    assert_eq!(v["files_copied"], 2, "{v}");
    // NUL-separated, names with a newline.
    fs::write(env.src.join("odd\nname"), b"o").unwrap();
    let list0 = env.path("list0");
    fs::write(&list0, b"odd\nname\0other\0").unwrap();
    let (out, _) = env.copy_json(&["--from0", "--files-from", list0.to_str().unwrap()]);
    assert_code(&out, 0);
    assert!(env.dst.join("odd\nname").exists() && env.dst.join("other").exists());
    // A path that leaves the source is refused by name, nothing else lost.
    fs::write(&list, "../outside\ntop\n").unwrap();
    let (out, v) = env.copy_json(&["--files-from", list.to_str().unwrap()]);
    assert_code(&out, 1);
    assert!(v["errors"].to_string().contains("outside"), "{v}");
}

/// `-u` keeps a newer destination file whatever else compares: with `-c`
/// and `-I` too, and a dry run (`-n -i`) neither lists nor counts it as a
/// copy (rsync 3.5's behaviour).
#[test]
fn update_wins_over_checksum_ignore_times_and_the_dry_run() {
    let env = TestEnv::new();
    fs::create_dir_all(&env.dst).unwrap();
    fs::write(env.src.join("f"), b"new").unwrap();
    fs::write(env.dst.join("f"), b"keep").unwrap();
    set_mtime_ns(&env.src.join("f"), 1_600_000_000, 0);
    set_mtime_ns(&env.dst.join("f"), 1_600_000_100, 0);
    for flags in [
        &["-u", "-c"][..],
        &["-u", "-I"][..],
        &["-u", "-c", "-I"][..],
    ] {
        let (out, v) = env.copy_json(flags);
        assert_code(&out, 0);
        assert_eq!(fs::read(env.dst.join("f")).unwrap(), b"keep", "{flags:?}");
        assert_eq!(v["files_copied"], 0, "{flags:?}: {v}");
        assert_eq!(v["files_skipped"], 1, "{flags:?}: {v}");
    }
    let out = env.copy(&["-n", "-i", "-u", "-q"]);
    assert_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.lines().any(|l| l.ends_with(" f")), "{text}");
    let (_, v) = env.copy_json(&["-n", "-u"]);
    assert_eq!(
        (&v["files_copied"], &v["files_skipped"]),
        (&0.into(), &1.into()),
        "{v}"
    );
}

/// A new hard link never replaces newer destination data under `-u`
/// (issue 23, defect 4: `ln s/a s/b` relinked `a` to the fresh copy of `b`
/// and lost the destination's newer `a`); `--backup-dir` keeps what a link
/// does replace.
#[test]
fn a_new_link_keeps_newer_data_under_update_and_backs_up_what_it_replaces() {
    let env = TestEnv::new();
    fs::write(env.src.join("a"), b"source a").unwrap();
    set_mtime_ns(&env.src.join("a"), 1_600_000_000, 0);
    assert_code(&env.copy(&[]), 0);
    fs::write(env.dst.join("a"), b"newer at the destination").unwrap();
    set_mtime_ns(&env.dst.join("a"), 1_600_000_500, 0);
    fs::hard_link(env.src.join("a"), env.src.join("b")).unwrap();
    fs::hard_link(env.src.join("a"), env.src.join("0")).unwrap();
    assert_code(&env.copy(&["-u"]), 0);
    assert_eq!(
        fs::read(env.dst.join("a")).unwrap(),
        b"newer at the destination"
    );
    assert_eq!(fs::read(env.dst.join("b")).unwrap(), b"source a");
    // Without -u the link is made, and --backup-dir keeps the old file.
    let bak = env.path("bak");
    assert_code(&env.copy(&["--backup-dir", bak.to_str().unwrap()]), 0);
    let ino = |p: &std::path::Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&env.dst.join("a")), ino(&env.dst.join("b")));
    assert_eq!(
        fs::read(bak.join("a")).unwrap(),
        b"newer at the destination"
    );
}
