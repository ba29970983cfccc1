//! End-to-end copies of generated trees: exact result, counts, workers.

use crate::util::*;
use std::fs;

#[test]
fn generated_tree_is_copied_exactly() {
    let env = TestEnv::new();
    gen_tree(&env.src, 1, 400);
    let (out, v) = env.copy_json(&["-j", "3"]);
    assert_code(&out, 0);
    let n = assert_trees_equal(&env.src, &env.dst);
    assert!(n > 400, "compared {n}");
    assert_eq!(v["workers"], 3);
    assert_eq!(v["files_failed"], 0);
    assert!(temps_under(&env.dst).is_empty());
}

/// Workers start as work arrives: nothing to copy starts none (an empty
/// tree, a re-run where every file is current: the walk's quick check needs
/// no worker), one small batch starts one, whatever `-j` says.
#[test]
fn workers_start_only_for_work_there_is() {
    let env = TestEnv::new();
    let (out, v) = env.copy_json(&["-j", "4"]);
    assert_code(&out, 0);
    assert_eq!(
        (v["workers"].as_u64(), v["workers_started"].as_u64()),
        (Some(4), Some(0)),
        "empty tree: {v}"
    );
    for i in 0..3 {
        fs::write(env.src.join(format!("f{i}")), b"x").unwrap();
    }
    let (out, v) = env.copy_json(&["-j", "4"]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 3, "{v}");
    assert_eq!(v["workers_started"], 1, "three files, one batch: {v}");
    assert_trees_equal(&env.src, &env.dst);
    // Regular files, directories and symlinks (all checked by the walk).
    std::os::unix::fs::symlink("d0/f1", env.src.join("link")).unwrap();
    for d in 0..3 {
        let dir = env.src.join(format!("more/d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..100 {
            fs::write(dir.join(format!("f{i}")), format!("{d} {i}").repeat(i)).unwrap();
        }
    }
    assert_code(&env.copy(&[]), 0);
    let (out, v) = env.copy_json(&["-j", "4"]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_eq!(v["workers_started"], 0, "every file current: {v}");
    assert_trees_equal(&env.src, &env.dst);
}

/// The walk's quick check of a symlink compares its target, not only the
/// length and mtime that stand for a file's data: a link retargeted to a
/// name of the same length, its mtime put back, is replaced (and a dry run
/// says it would be), and an unchanged one is left in place.
#[test]
fn a_symlink_retargeted_to_a_same_length_name_is_replaced() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    std::os::unix::fs::symlink("target-a", env.src.join("ln")).unwrap();
    std::os::unix::fs::symlink("target-c", env.src.join("same")).unwrap();
    assert_code(&env.copy(&[]), 0);
    let ino = |p: &str| fs::symlink_metadata(env.dst.join(p)).unwrap().ino();
    let same_ino = ino("same");
    let m = fs::symlink_metadata(env.src.join("ln")).unwrap();
    fs::remove_file(env.src.join("ln")).unwrap();
    std::os::unix::fs::symlink("target-b", env.src.join("ln")).unwrap();
    set_mtime_ns(&env.src.join("ln"), m.mtime(), m.mtime_nsec() as u32);
    let (out, v) = env.copy_json(&["-n"]);
    assert_code(&out, 0);
    assert_eq!(v["symlinks_copied"], 1, "dry run: {v}");
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["symlinks_copied"], 1, "{v}");
    assert_eq!(
        fs::read_link(env.dst.join("ln")).unwrap(),
        std::path::Path::new("target-b")
    );
    assert_eq!(ino("same"), same_ino, "the unchanged link was replaced");
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn json_counts_match_the_tree() {
    let env = TestEnv::new();
    fs::create_dir_all(env.src.join("a/b")).unwrap();
    fs::write(env.src.join("a/one"), b"12345").unwrap();
    fs::write(env.src.join("a/b/two"), b"1234567890").unwrap();
    fs::write(env.src.join("three"), b"").unwrap();
    std::os::unix::fs::symlink("a/one", env.src.join("ln")).unwrap();
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_found"], 4, "{v}");
    assert_eq!(v["files_copied"], 3);
    assert_eq!(v["symlinks_copied"], 1);
    // a, a/b and the destination root itself.
    assert_eq!(v["dirs_created"], 3);
    assert_eq!(v["bytes_found"], 15);
    assert_eq!(v["bytes_copied"], 15);
    assert_eq!(v["files_skipped"], 0);
    assert!(v["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    // stdout carries exactly one JSON object and nothing else
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim().lines().count(),
        1
    );
}

#[test]
fn text_summary_reports_counts_size_and_time() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), vec![7u8; 3000]).unwrap();
    let out = env.copy(&[]);
    assert_code(&out, 0);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("files found: 1, copied: 1"), "{s}");
    assert!(s.contains("2.93 KiB"), "{s}");
    assert!(s.contains("/s)"), "{s}");
}

#[test]
fn non_utf8_and_odd_names_arrive_byte_exact() {
    let env = TestEnv::new();
    let names: [&[u8]; 4] = [
        b"bad\xff\xfename",
        b"new\nline",
        b"-leading-dash",
        b" space ",
    ];
    for n in names {
        fs::write(env.src.join(os(n)), n).unwrap();
    }
    let long = vec![b'x'; 255];
    fs::write(env.src.join(os(&long)), b"long").unwrap();
    let out = env.copy(&[]);
    assert_code(&out, 0);
    for n in names {
        assert_eq!(fs::read(env.dst.join(os(n))).unwrap(), n);
    }
    assert_eq!(fs::read(env.dst.join(os(&long))).unwrap(), b"long");
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn log_file_records_settings_errors_and_summary() {
    let env = TestEnv::new();
    fs::write(env.src.join("ok"), b"x").unwrap();
    let log = env.path("logs/run.log");
    let out = env.copy(&["--log-file", log.to_str().unwrap(), "-v"]);
    assert_code(&out, 0);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("starting"), "{text}");
    assert!(text.contains("copied ok"), "per-file line at -v: {text}");
    assert!(text.contains("files found: 1"), "{text}");
    assert!(
        text.contains("settings: workers="),
        "effective settings: {text}"
    );
    assert!(
        text.contains("finished: exit code 0"),
        "closing line: {text}"
    );
    // Every line: a fixed-width UTC time, the run id and the pid.
    let pid_run: Vec<&str> = text.lines().map(|l| &l[25..45]).collect();
    for l in text.lines() {
        assert_eq!(&l[4..5], "-", "{l}");
        assert_eq!((&l[10..11], &l[23..25]), ("T", "Z "), "{l}");
        assert!(
            l[25..].starts_with("run ") && l[46..].starts_with("pid "),
            "{l}"
        );
    }
    assert!(
        pid_run.windows(2).all(|w| w[0][..20] == w[1][..20]),
        "one run id"
    );
    // A second run appends with another run id.
    let out = env.copy(&["--log-file", log.to_str().unwrap()]);
    assert_code(&out, 0);
    let text = fs::read_to_string(&log).unwrap();
    let ids: std::collections::HashSet<&str> = text.lines().map(|l| &l[29..45]).collect();
    assert_eq!(ids.len(), 2, "{text}");
}
