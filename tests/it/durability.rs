//! What pcopy makes durable and when, seen in the system calls it makes
//! (strace -f -y names each descriptor's file): a file whose size is set
//! apart from its data (sparse, pre-sized for chunks) is `fdatasync`ed
//! before it is placed, dense files are not (no cost by default);
//! `--fsync` also syncs every directory a name was placed in; every run
//! that writes ends with one `syncfs` of the destination.

use crate::util::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The syscall lines of `pcopy ARGS SRC DST` under strace, or None
/// without strace.
fn traced(env: &TestEnv, calls: &str, args: &[&str]) -> Option<String> {
    let log = env.path("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", &format!("trace={calls}"), "-o"])
        .arg(&log)
        .arg(bin())
        .args(args)
        .arg(&env.src)
        .arg(&env.dst)
        .current_dir(env.dir.path())
        .output()
        .ok()?;
    if !out.status.success() {
        // strace missing its ptrace rights, or pcopy failed: say which.
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ptrace") || err.contains("Operation not permitted") {
            return None;
        }
        panic!("pcopy under strace failed: {}", explain(&out));
    }
    fs::read_to_string(&log).ok()
}

fn sparse_file(p: &Path) {
    let f = fs::File::create(p).unwrap();
    std::io::Write::write_all(&mut &f, &[7u8; 8192]).unwrap();
    f.set_len(4 << 20).unwrap();
}

#[test]
fn a_sparse_copy_is_on_disk_before_its_name_and_a_dense_one_costs_nothing() {
    let env = TestEnv::new();
    sparse_file(&env.src.join("holes.img"));
    fs::write(env.src.join("dense"), vec![1u8; 100_000]).unwrap();
    let Some(log) = traced(&env, "fdatasync,fsync,syncfs", &["-q", "--no-progress"]) else {
        return skip("sparse_datasync", "strace missing or not permitted");
    };
    assert_trees_equal(&env.src, &env.dst);
    // The run's marker (recovery) is synced too; the files are what counts.
    let datasyncs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fdatasync(") && !l.contains(".run>"))
        .collect();
    // The O_TMPFILE inode is unnamed then; strace shows "/dst/#ino (deleted)"
    // or the named temp, never the dense file.
    assert_eq!(
        datasyncs.len(),
        1,
        "one fdatasync, for the sparse file:\n{log}"
    );
    assert!(
        !log.contains("dense>"),
        "the dense file is not synced:\n{log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("syncfs(")).count(),
        1,
        "one syncfs at the end:\n{log}"
    );
}

#[test]
fn a_chunked_file_is_on_disk_before_it_is_renamed_into_place() {
    let env = TestEnv::new();
    fs::write(env.src.join("big"), vec![3u8; 3 << 20]).unwrap();
    let args = ["-q", "--no-progress", "-j", "2", "--chunk-bytes", "1048576"];
    let Some(log) = traced(&env, "fdatasync,renameat,renameat2", &args) else {
        return skip("chunk_datasync", "strace missing or not permitted");
    };
    assert_trees_equal(&env.src, &env.dst);
    let lines: Vec<&str> = log.lines().collect();
    let sync = lines
        .iter()
        .position(|l| l.contains("fdatasync(") && l.contains(".big"));
    let rename = lines
        .iter()
        .position(|l| l.contains("rename") && l.contains(".big") && !l.contains("= -1"));
    match (sync, rename) {
        (Some(s), Some(r)) => assert!(s < r, "fdatasync after the rename:\n{log}"),
        _ => panic!("no fdatasync/rename of the shared temp:\n{log}"),
    }
}

#[test]
fn fsync_syncs_every_directory_a_name_was_placed_in() {
    let env = TestEnv::new();
    for d in ["a", "b/c"] {
        fs::create_dir_all(env.src.join(d)).unwrap();
        fs::write(env.src.join(d).join("f"), b"x").unwrap();
    }
    let Some(log) = traced(&env, "fsync", &["-q", "--no-progress", "--fsync"]) else {
        return skip("fsync_dirs", "strace missing or not permitted");
    };
    assert_trees_equal(&env.src, &env.dst);
    for d in ["dst/a>", "dst/b/c>"] {
        assert!(
            log.lines().any(|l| l.contains("fsync(") && l.contains(d)),
            "no fsync of {d}:\n{log}"
        );
    }
}
