//! `--delete` never removes what it must keep: mounts under `-x`, excluded
//! entries inside removed or replaced directories, an empty source root,
//! the `--max-delete` budget on every path, `--backup-dir`, typos in
//! `--files-from`, a source inside the destination. Each case is checked
//! against what rsync does, through the real binary.

use crate::util::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// All paths under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    settled(root);
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.expect("walk");
            e.path()
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn rsync(args: &[&str], src: &Path, dst: &Path) -> Option<std::process::Output> {
    Command::new("rsync")
        .args(args)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .ok()
}

#[test]
fn excluded_files_keep_an_extra_directory_as_in_rsync() {
    let env = TestEnv::new();
    fs::write(env.src.join("a"), b"a").unwrap();
    for d in [&env.dst, &env.path("r")] {
        fs::create_dir_all(d.join("x/y")).unwrap();
        fs::write(d.join("x/keep.log"), b"L").unwrap();
        fs::write(d.join("x/gone"), b"g").unwrap();
        fs::write(d.join("x/y/gone.txt"), b"g").unwrap();
    }
    let out = env.copy(&["--delete", "--exclude", "*.log", "-i"]);
    assert_code(&out, 0);
    assert_eq!(fs::read(env.dst.join("x/keep.log")).unwrap(), b"L");
    assert!(!env.dst.join("x/gone").exists() && !env.dst.join("x/y").exists());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("*deleting   x/gone"), "{text}");
    assert!(
        !text.contains("*deleting   x/\n"),
        "x itself is kept: {text}"
    );
    match rsync(
        &["-a", "--delete", "--exclude", "*.log"],
        &env.src,
        &env.path("r"),
    ) {
        Some(o) if o.status.success() => assert_eq!(tree(&env.dst), tree(&env.path("r"))),
        _ => skip("excluded_files_keep_an_extra_directory", "rsync missing"),
    }
    // --delete-excluded: nothing is protected any more.
    assert_code(
        &env.copy(&["--delete", "--delete-excluded", "--exclude", "*.log"]),
        0,
    );
    assert_eq!(tree(&env.dst), vec!["a"]);
}

#[test]
fn a_type_clash_spends_the_max_delete_budget_and_keeps_the_rest() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("data")).unwrap();
    for i in 0..50 {
        fs::write(env.src.join(format!("data/f{i}")), b"x").unwrap();
    }
    assert_code(&env.copy(&[]), 0);
    fs::remove_dir_all(env.src.join("data")).unwrap();
    fs::write(env.src.join("data"), b"now a file").unwrap();
    let (out, v) = env.copy_json(&["--delete", "--max-delete", "3"]);
    assert_eq!(v["entries_deleted"], 3, "{v}");
    assert_eq!(v["deletes_kept"], 47, "{v}");
    assert_eq!(v["delete_limit_reached"], true, "{v}");
    assert_eq!(fs::read_dir(env.dst.join("data")).unwrap().count(), 47);
    // The file could not be placed: a failure naming it, not a success.
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("could not make way"),
        "{}",
        explain(&out)
    );
}

#[test]
fn a_type_clash_keeps_excluded_entries_unless_delete_excluded() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("data")).unwrap();
    fs::write(env.src.join("data/a.log"), b"L").unwrap();
    fs::write(env.src.join("data/b"), b"b").unwrap();
    assert_code(&env.copy(&[]), 0);
    fs::remove_dir_all(env.src.join("data")).unwrap();
    fs::write(env.src.join("data"), b"file").unwrap();
    let out = env.copy(&["--delete", "--exclude", "*.log"]);
    assert_code(&out, 1);
    assert_eq!(
        fs::read(env.dst.join("data/a.log")).unwrap(),
        b"L",
        "protected"
    );
    assert!(!env.dst.join("data/b").exists());
    // rsync removes excluded contents of a stale directory under
    // --delete-excluded, and so does pcopy; the file then takes its place.
    let args = [
        "--delete",
        "--delete-excluded",
        "--include",
        "*/",
        "--include",
        "data",
        "--exclude",
        "*",
    ];
    assert_code(&env.copy(&args), 0);
    assert_eq!(fs::read(env.dst.join("data")).unwrap(), b"file");
}

#[test]
fn an_empty_source_root_does_not_wipe_the_mirror() {
    let env = TestEnv::new();
    fs::create_dir_all(&env.dst).unwrap();
    fs::write(env.dst.join("backup"), b"precious").unwrap();
    let (out, v) = env.copy_json(&["--delete"]);
    assert_code(&out, 26);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&env.src.display().to_string()), "{err}");
    assert!(err.contains(&env.dst.display().to_string()), "{err}");
    assert_eq!(v["error"]["kind"], "refused", "{v}");
    assert_eq!(fs::read(env.dst.join("backup")).unwrap(), b"precious");
    assert_code(&env.copy(&["--delete", "--allow-empty-source"]), 0);
    assert!(!env.dst.join("backup").exists());
}

#[test]
fn max_delete_percent_deletes_nothing_above_the_share() {
    let env = TestEnv::new();
    for i in 0..10 {
        fs::write(env.src.join(format!("f{i}")), b"x").unwrap();
    }
    assert_code(&env.copy(&[]), 0);
    for i in 0..6 {
        fs::remove_file(env.src.join(format!("f{i}"))).unwrap();
    }
    let (out, v) = env.copy_json(&["--delete", "--max-delete-percent", "50"]);
    assert_code(&out, 26);
    assert_eq!(v["entries_deleted"], 0, "{v}");
    assert_eq!(v["delete_refused"], true, "{v}");
    settled(&env.dst);
    assert_eq!(fs::read_dir(&env.dst).unwrap().count(), 10);
    let (out, v) = env.copy_json(&["--delete", "--max-delete-percent", "60"]);
    assert_code(&out, 0);
    assert_eq!(v["entries_deleted"], 6, "{v}");
}

#[test]
fn backup_dir_keeps_what_a_run_deletes_or_replaces() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("d")).unwrap();
    fs::write(env.src.join("d/old"), b"old data").unwrap();
    fs::write(env.src.join("clash"), b"file").unwrap();
    fs::write(env.src.join("d/changed"), b"version 1").unwrap();
    set_mtime_ns(&env.src.join("d/changed"), 1_600_000_000, 0);
    assert_code(&env.copy(&[]), 0);
    fs::write(env.src.join("d/changed"), b"version 2").unwrap();
    fs::remove_file(env.src.join("d/old")).unwrap();
    fs::remove_file(env.src.join("clash")).unwrap();
    fs::create_dir(env.src.join("clash")).unwrap();
    let bak = env.path("bak");
    let out = env.copy(&[
        "--delete",
        "--backup-dir",
        bak.to_str().unwrap(),
        "--suffix",
        "~",
    ]);
    assert_code(&out, 0);
    assert_eq!(fs::read(bak.join("d/old~")).unwrap(), b"old data");
    assert_eq!(fs::read(bak.join("clash~")).unwrap(), b"file");
    assert_eq!(
        fs::read(bak.join("d/changed~")).unwrap(),
        b"version 1",
        "the old inode"
    );
    assert_eq!(fs::read(env.dst.join("d/changed")).unwrap(), b"version 2");
    assert!(env.dst.join("clash").is_dir());
    assert!(!env.dst.join("d/old").exists());
    // Relative to the destination, inside it: never deleted as an extra.
    fs::write(env.src.join("gone"), b"g").unwrap();
    assert_code(&env.copy(&[]), 0);
    fs::remove_file(env.src.join("gone")).unwrap();
    assert_code(&env.copy(&["--delete", "--backup-dir", ".old"]), 0);
    assert_eq!(fs::read(env.dst.join(".old/gone")).unwrap(), b"g");
    assert_code(&env.copy(&["--delete", "--backup-dir", ".old"]), 0);
    assert_eq!(
        fs::read(env.dst.join(".old/gone")).unwrap(),
        b"g",
        "kept on the re-run"
    );
}

#[test]
fn a_missing_files_from_entry_is_an_error_not_a_vanished_file() {
    let env = TestEnv::new();
    fs::write(env.src.join("a"), b"a").unwrap();
    let list = env.path("list");
    fs::write(&list, b"a\ntypo\n").unwrap();
    let (out, v) = env.copy_json(&["--files-from", list.to_str().unwrap()]);
    assert_code(&out, 1);
    assert_eq!(v["entries_vanished"], 0, "{v}");
    assert!(stderr(&out).contains("typo"), "{}", explain(&out));
    assert_eq!(fs::read(env.dst.join("a")).unwrap(), b"a");
}

#[test]
fn a_source_inside_the_destination_is_refused_with_delete() {
    let env = TestEnv::new();
    fs::create_dir_all(env.dst.join("sub")).unwrap();
    fs::write(env.dst.join("sub/a"), b"a").unwrap();
    fs::write(env.dst.join("other"), b"o").unwrap();
    let mut c = env.cmd();
    c.arg(env.dst.join("sub")).arg(&env.dst).arg("--delete");
    let out = run(c);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("inside the destination"),
        "{}",
        explain(&out)
    );
    assert_eq!(fs::read(env.dst.join("sub/a")).unwrap(), b"a");
    assert_eq!(fs::read(env.dst.join("other")).unwrap(), b"o");
}

/// Mount a small tmpfs at `at` (root only); unmounted on drop.
struct Mount(std::path::PathBuf);
impl Mount {
    fn tmpfs(at: &Path) -> Option<Mount> {
        fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .ok()?
            .success();
        ok.then(|| Mount(at.to_path_buf()))
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root (mount); .ci/run runs it as root (--ignored)"]
fn one_file_system_never_deletes_inside_a_mount_in_the_destination() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("data")).unwrap();
    fs::write(env.src.join("data/new"), b"n").unwrap();
    fs::write(env.src.join("keep"), b"k").unwrap();
    let Some(_m) = Mount::tmpfs(&env.dst.join("data")) else {
        return skip("one_file_system_mount", "cannot mount a tmpfs");
    };
    fs::write(env.dst.join("data/precious"), b"p").unwrap();
    let Some(_m2) = Mount::tmpfs(&env.dst.join("extra")) else {
        return skip("one_file_system_mount", "cannot mount a tmpfs");
    };
    fs::write(env.dst.join("extra/precious"), b"p").unwrap();
    let out = env.copy(&["-x", "--delete", "-i"]);
    assert_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("*deleting"), "{text}");
    assert_eq!(fs::read(env.dst.join("data/precious")).unwrap(), b"p");
    assert_eq!(fs::read(env.dst.join("extra/precious")).unwrap(), b"p");
    assert_eq!(fs::read(env.dst.join("data/new")).unwrap(), b"n");
}
