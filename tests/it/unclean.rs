//! A run that did not end cleanly is checked by the next one (power cuts;
//! `supervisor::recovery`). A power cut can leave a file at its final name
//! with the source's size and mtime but lost data; these tests make that
//! state by hand (the data of a file the cut run placed replaced by zeros,
//! size and mtime put back) and check that the default re-run copies it
//! again, and that a run which ended cleanly leaves no marker behind. The
//! crash simulator tests (`power_cut.rs`) cut real runs under FUSE.

use crate::util::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// pcopy's run markers in the destination root.
fn markers(dst: &Path) -> Vec<String> {
    fs::read_dir(dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pcopy-tmp.") && n.ends_with(".run"))
        .collect()
}

/// Wait until the detached child that makes a run durable has removed
/// its marker (it runs after pcopy exits).
fn no_markers_soon(dst: &Path) {
    wait_for(60, "the run's marker to go", || markers(dst).is_empty());
}

/// What a power cut does to a file whose data never reached the disk:
/// the same size and times, zeros for data.
fn lose_data(p: &Path) {
    let m = fs::metadata(p).unwrap();
    fs::write(p, vec![0u8; m.len() as usize]).unwrap();
    set_mtime_ns(p, m.mtime(), m.mtime_nsec() as u32);
}

fn files(env: &TestEnv, n: usize) {
    for i in 0..n {
        fs::write(
            env.src.join(format!("f{i:02}")),
            format!("data {i}").repeat(20),
        )
        .unwrap();
    }
}

#[test]
fn a_clean_run_leaves_no_marker() {
    let env = TestEnv::new();
    files(&env, 5);
    assert_code(&env.copy(&[]), 0);
    no_markers_soon(&env.dst);
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "a clean predecessor is trusted: {v}");
}

#[test]
fn entries_changed_since_an_unclean_run_began_are_copied_again() {
    let env = TestEnv::new();
    files(&env, 6);
    assert_code(&env.copy(&[]), 0);
    // An earlier run that never ended: its marker, then what it wrote
    // (after the marker, so with a later ctime) lost its data.
    fs::write(env.dst.join(".pcopy-tmp.00000000000000ab.run"), b"").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    lose_data(&env.dst.join("f03"));
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("did not end cleanly"),
        "{}",
        explain(&out)
    );
    assert!(v["files_copied"].as_u64().unwrap() >= 1, "{v}");
    assert_trees_equal(&env.src, &env.dst);
    no_markers_soon(&env.dst);
    // The obligation is met: the next run trusts size and time again.
    let (_, v) = env.copy_json(&[]);
    assert_eq!(v["files_copied"], 0, "{v}");
}

#[test]
fn an_unverified_file_newer_at_the_destination_is_kept_under_update() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"source").unwrap();
    set_mtime_ns(&env.src.join("f"), 1_600_000_000, 0);
    fs::create_dir_all(&env.dst).unwrap();
    fs::write(env.dst.join(".pcopy-tmp.00000000000000ab.run"), b"").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    fs::write(env.dst.join("f"), b"edited at the destination").unwrap();
    let out = env.copy(&["-u"]);
    assert_code(&out, 0);
    assert_eq!(
        fs::read(env.dst.join("f")).unwrap(),
        b"edited at the destination"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_supervisor_killed_before_its_end_leaves_its_marker_and_the_rerun_repairs() {
    let env = TestEnv::new();
    files(&env, 40);
    let mut c = env.cmd();
    c.env("FAILPOINTS", "worker::before_task=sleep(20)")
        .args(["-j", "2", "-q"])
        .arg(&env.src)
        .arg(&env.dst)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("spawn pcopy");
    wait_for(20, "some files copied", || count_files(&env.dst) >= 8);
    child.kill().expect("SIGKILL"); // the supervisor; its workers follow
    child.wait().expect("reap");
    let left = markers(&env.dst);
    assert_eq!(left.len(), 1, "the cut run's marker stays");
    // Killed on this boot, nothing is lost: a re-run trusts the files.
    // A power cut restarts the machine (another boot id in the marker)
    // and loses the data of every file the run placed.
    let marker = env.dst.join(&left[0]);
    let text = fs::read_to_string(&marker).unwrap();
    let moment = text.lines().next().unwrap().to_string();
    fs::write(&marker, format!("{moment}\nanother-boot\n")).unwrap();
    let placed: Vec<_> = fs::read_dir(&env.dst)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(placed.len() >= 5, "{placed:?}");
    for p in &placed {
        lose_data(p);
    }
    assert_code(&env.copy(&[]), 0);
    assert_trees_equal(&env.src, &env.dst);
    no_markers_soon(&env.dst);
}

#[test]
fn a_read_only_destination_root_keeps_no_marker_and_runs_again() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    files(&env, 3);
    fs::set_permissions(&env.src, fs::Permissions::from_mode(0o555)).unwrap();
    assert_code(&env.copy(&[]), 0);
    no_markers_soon(&env.dst);
    // The mirror's root is read-only now: the next run's marker still
    // comes and goes (the owner's write bit added for that moment).
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_skipped"], 3, "{v}");
    no_markers_soon(&env.dst);
    let mode = fs::metadata(&env.dst).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o555);
    // So the temporary directory can be removed by a non-root owner.
    for d in [&env.src, &env.dst] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The child that makes a finished run durable holds no lock: a run right
/// after it starts at once (it had the destination's lock and refused the
/// next run with exit 75 until the child closed its inherited descriptor).
#[test]
fn a_run_right_after_another_is_not_refused_by_its_durability_child() {
    let env = TestEnv::new();
    files(&env, 20);
    for i in 0..15 {
        let out = env.copy(&["-q"]);
        assert_code(&out, 0);
        fs::write(env.src.join("f00"), format!("round {i}")).unwrap();
    }
    no_markers_soon(&env.dst);
}
