//! Re-runs converge: metadata repaired in place, and (with `--delete`) the
//! destination mirrors the source; `rsync -aHAXn` then finds nothing to do.

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

/// What `rsync -aHAXn --itemize-changes SRC/ DST/` would still change
/// (empty when the trees are in sync), or None without rsync.
pub fn rsync_changes(src: &std::path::Path, dst: &std::path::Path, delete: bool) -> Option<String> {
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
    assert_eq!(v["entries_repaired"], 1, "{v}");
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
