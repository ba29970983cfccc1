//! `--reflink` on real copy-on-write filesystems: loop-mounted XFS
//! (`mkfs.xfs -m reflink=1`) and btrfs images, checked with fiemap's
//! "shared" extent flag (0x2000). Root only; .ci/run runs them as root.

use crate::util::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Whether every extent of `p` is shared (fiemap flag 0x2000).
fn shared(p: &Path) -> bool {
    let out = Command::new("xfs_io")
        .args(["-r", "-c", "fiemap -v"])
        .arg(p)
        .output()
        .expect("xfs_io (xfsprogs)");
    let text = String::from_utf8_lossy(&out.stdout);
    let flags: Vec<u64> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter(|l| !l.contains("hole"))
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .collect();
    assert!(!flags.is_empty(), "no extents for {}:\n{text}", p.display());
    flags.iter().all(|f| f & 0x2000 != 0)
}

fn reflink_on(name: &str, mkfs: &[&str]) {
    let env = TestEnv::new();
    let Some(m) = Mounted::image(env.dir.path(), 400 << 20, mkfs) else {
        skip(name, "mkfs or the loop mount was refused");
        return;
    };
    let src = m.0.join("src");
    fs::create_dir(&src).unwrap();
    let mut r = Lcg::new(5);
    let big: Vec<u8> = (0..8 << 20).map(|_| r.next() as u8).collect();
    fs::write(src.join("big"), &big).unwrap();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &[7u8; 100_000], 32 << 20).unwrap();
    drop(sparse);
    fs::create_dir(src.join("small")).unwrap();
    gen_tree(&src.join("small"), 3, 30);
    let run_json = |args: &[&str], dst: &Path| {
        let mut c = env.cmd();
        c.arg("--json").args(args).arg(&src).arg(dst);
        let out = run(c);
        (out.status.code(), parse_json(&out))
    };
    // auto: clones, and says so.
    let auto = m.0.join("auto");
    let (code, v) = run_json(&[], &auto);
    assert_eq!(code, Some(0), "{v}");
    assert!(v["files_cloned"].as_u64().unwrap() > 0, "{v}");
    // The 8 MiB file was cloned; files under 64 KiB are written (cheaper).
    assert!(v["bytes_cloned"].as_u64().unwrap() >= 8 << 20, "{v}");
    assert!(shared(&auto.join("big")), "auto must share extents");
    assert_trees_equal(&src, &auto);
    // A write to the clone leaves the source alone.
    fs::write(auto.join("big"), b"changed").unwrap();
    assert_eq!(fs::read(src.join("big")).unwrap(), big);
    // A large file the destination clones goes whole to one worker (one
    // FICLONE), even where it would be split into chunks for a byte copy;
    // with --reflink never it is still split. (Alone: files are split only
    // when there are fewer large ones than CPUs.)
    let one = m.0.join("one");
    fs::create_dir(&one).unwrap();
    fs::write(one.join("big"), &big).unwrap();
    let log_of = |args: &[&str], dst: &str| {
        let log = env.path(&format!("{dst}.log"));
        let mut all = vec!["-vv", "-j", "4", "--chunk-bytes", "1048576", "--log-file"];
        all.push(log.to_str().unwrap());
        all.extend_from_slice(args);
        let mut c = env.cmd();
        c.args(&all).arg(&one).arg(m.0.join(dst));
        assert_code(&run(c), 0);
        assert_trees_equal(&one, &m.0.join(dst));
        fs::read_to_string(&log).unwrap()
    };
    let whole = log_of(&[], "whole");
    assert!(
        whole.lines().any(|l| l.ends_with("cloned big")),
        "not cloned whole:\n{whole}"
    );
    let split = log_of(&["--reflink", "never"], "split");
    assert!(
        split.contains("big (in chunks)"),
        "never: not split:\n{split}"
    );
    // never: an independent physical copy.
    let never = m.0.join("never");
    let (code, v) = run_json(&["--reflink", "never"], &never);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["files_cloned"], 0, "{v}");
    assert!(!shared(&never.join("big")), "never must not share extents");
    for d in [&auto, &never] {
        use std::os::unix::fs::MetadataExt;
        let blocks = fs::metadata(d.join("sparse")).unwrap().blocks();
        assert!(
            blocks * 512 < 4 << 20,
            "{}: not sparse ({blocks} blocks)",
            d.display()
        );
    }
    assert_trees_equal(&src, &never);
    // always, where cloning is impossible (another filesystem): the file
    // fails with a clear error, nothing half-written.
    let (code, v) = run_json(&["--reflink", "always"], &env.path("other-fs"));
    assert_eq!(code, Some(1), "{v}");
    assert!(v["errors"].to_string().contains("cannot clone"), "{v}");
    assert!(temps_under(&env.path("other-fs")).is_empty());
}

#[test]
#[ignore = "needs root to loop-mount an XFS image; .ci/run runs it as root (--ignored)"]
fn reflink_on_xfs_shares_extents_and_never_does_not() {
    reflink_on("reflink_xfs", &["mkfs.xfs", "-q", "-m", "reflink=1"]);
}

#[test]
#[ignore = "needs root to loop-mount a btrfs image; .ci/run runs it as root (--ignored)"]
fn reflink_on_btrfs_shares_extents_and_never_does_not() {
    reflink_on("reflink_btrfs", &["mkfs.btrfs", "-q"]);
}

/// `--copy-dest`: an entry the basis holds unchanged is copied from the
/// basis, cloned where the filesystem can. The source is on another
/// filesystem (the test's temp dir), so sharing extents with the basis
/// proves the data came from the basis; `--reflink never` gives an
/// independent copy of the same bytes.
#[test]
#[ignore = "needs root to loop-mount an XFS image; .ci/run runs it as root (--ignored)"]
fn copy_dest_clones_from_the_basis_on_xfs() {
    let env = TestEnv::new();
    let Some(m) = Mounted::image(
        env.dir.path(),
        400 << 20,
        &["mkfs.xfs", "-q", "-m", "reflink=1"],
    ) else {
        skip("copy_dest_clones", "mkfs or the loop mount was refused");
        return;
    };
    let mut r = Lcg::new(11);
    let big: Vec<u8> = (0..4 << 20).map(|_| r.next() as u8).collect();
    fs::write(env.src.join("big"), &big).unwrap();
    fs::write(env.src.join("changed"), "new data\n").unwrap();
    let base = m.0.join("base");
    let mut c = env.cmd();
    c.arg(&env.src).arg(&base);
    assert_code(&run(c), 0);
    fs::write(base.join("changed"), "old data\n").unwrap();
    for (dst, extra, cloned) in [
        ("snap", None, true),
        ("copy", Some("--reflink=never"), false),
    ] {
        let dst = m.0.join(dst);
        let mut c = env.cmd();
        c.arg("--json")
            .arg("--copy-dest=../base")
            .args(extra)
            .arg(&env.src)
            .arg(&dst);
        let out = run(c);
        assert_code(&out, 0);
        let v = parse_json(&out);
        assert_trees_equal(&env.src, &dst);
        assert_eq!(shared(&dst.join("big")), cloned, "{v}");
        assert_eq!(v["files_cloned"].as_u64().unwrap() > 0, cloned, "{v}");
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            fs::metadata(dst.join("big")).unwrap().ino(),
            fs::metadata(base.join("big")).unwrap().ino(),
            "copied, not linked"
        );
    }
}
