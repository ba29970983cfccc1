//! Re-runs: up-to-date entries are skipped, changed ones recopied, stale
//! temporaries from a killed run removed (and nothing else).

use crate::util::*;
use std::fs;

#[test]
fn rerun_skips_everything_up_to_date() {
    let env = TestEnv::new();
    gen_tree(&env.src, 7, 300);
    let (out, first) = env.copy_json(&[]);
    assert_code(&out, 0);
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_eq!(v["files_skipped"], first["files_found"]);
    assert_eq!(v["bytes_copied"], 0);
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn changed_files_are_recopied_and_ignore_times_copies_all() {
    let env = TestEnv::new();
    gen_tree(&env.src, 8, 100);
    assert_code(&env.copy(&[]), 0);
    // same size, different content and mtime
    let victim = walkdir::WalkDir::new(&env.src)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file() && e.metadata().unwrap().len() > 10)
        .unwrap()
        .into_path();
    let len = fs::metadata(&victim).unwrap().len() as usize;
    fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&victim, vec![b'z'; len]).unwrap();
    set_mtime_ns(&victim, 1_700_000_000, 5);
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 1, "{v}");
    assert_trees_equal(&env.src, &env.dst);
    let (out, v) = env.copy_json(&["--ignore-times"]);
    assert_code(&out, 0);
    // -I concerns regular files (rsync's quick_check_ok): every one is
    // copied again; a symlink whose target is current stays.
    let (files, links) = walkdir::WalkDir::new(&env.src)
        .into_iter()
        .filter_map(Result::ok)
        .fold((0u64, 0u64), |(f, l), e| {
            let t = e.file_type();
            (f + u64::from(t.is_file()), l + u64::from(t.is_symlink()))
        });
    assert!(links > 0, "the tree has symlinks");
    assert_eq!(v["files_copied"], files, "{v}");
    assert_eq!(v["files_skipped"], links, "{v}");
    assert_eq!(v["symlinks_copied"], 0, "{v}");
}

#[test]
fn stale_temps_are_removed_but_user_files_are_not() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("d")).unwrap();
    fs::write(env.src.join("d/f"), b"x").unwrap();
    fs::create_dir_all(env.dst.join("d")).unwrap();
    fs::write(env.dst.join(".pcopy-tmp.00000000deadbeef.0.1"), b"stale").unwrap();
    fs::write(env.dst.join("d/.pcopy-tmp.00000000deadbeef.1.9"), b"stale").unwrap();
    fs::write(env.dst.join("d/.x.tmp"), b"user file").unwrap();
    fs::write(env.dst.join("d/pcopy-tmp.not-ours"), b"user file").unwrap();
    assert_code(&env.copy(&[]), 0);
    assert!(temps_under(&env.dst).is_empty());
    assert_eq!(fs::read(env.dst.join("d/.x.tmp")).unwrap(), b"user file");
    assert_eq!(
        fs::read(env.dst.join("d/pcopy-tmp.not-ours")).unwrap(),
        b"user file"
    );
}
