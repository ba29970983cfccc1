//! What is preserved, and what must never happen (writes through symlinks,
//! deleting on type clashes), plus per-entry failures that do not stop a run.

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

#[test]
fn hard_links_symlinks_fifos_and_sparse_files() {
    let env = TestEnv::new();
    let s = &env.src;
    fs::create_dir_all(s.join("a/b")).unwrap();
    fs::write(s.join("a/orig"), b"shared").unwrap();
    fs::hard_link(s.join("a/orig"), s.join("a/b/link1")).unwrap();
    fs::hard_link(s.join("a/orig"), s.join("link2")).unwrap();
    std::os::unix::fs::symlink("/absolute/dangling", s.join("abs")).unwrap();
    std::os::unix::fs::symlink("loop", s.join("loop")).unwrap();
    std::os::unix::fs::symlink("../..", s.join("a/b/up")).unwrap();
    let fifo = s.join("fifo");
    mknod(&fifo, rustix::fs::FileType::Fifo, 0o640, 0);
    let sparse = fs::File::create(s.join("sparse")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"middle", 512 << 20).unwrap();
    drop(sparse);
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
    assert_eq!(v["hardlinks_created"], 2, "{v}");
    assert_eq!(v["specials_copied"], 1);
    let m = fs::metadata(env.dst.join("sparse")).unwrap();
    assert!(
        m.blocks() < 1024,
        "sparse copy allocated {} blocks",
        m.blocks()
    );
    // Re-run: links are recognised as up to date, not recreated.
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["hardlinks_created"], 0);
    assert_eq!(v["files_skipped"], v["files_found"]);
}

#[test]
fn never_writes_through_a_symlink_in_the_destination() {
    let env = TestEnv::new();
    fs::create_dir_all(env.src.join("sub")).unwrap();
    fs::write(env.src.join("sub/f"), b"payload").unwrap();
    fs::write(env.src.join("top"), b"t").unwrap();
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(env.path("victim"), b"outside file").unwrap();
    fs::create_dir(&env.dst).unwrap();
    std::os::unix::fs::symlink(&outside, env.dst.join("sub")).unwrap();
    // A destination *file* that is a symlink is replaced, never written through.
    std::os::unix::fs::symlink(env.path("victim"), env.dst.join("top")).unwrap();
    let out = env.copy(&[]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("sub"), "{}", explain(&out));
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "outside stays empty"
    );
    assert!(fs::symlink_metadata(env.dst.join("sub"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(env.dst.join("top")).unwrap(), b"t");
    assert!(fs::symlink_metadata(env.dst.join("top")).unwrap().is_file());
    assert_eq!(fs::read(env.path("victim")).unwrap(), b"outside file");
}

#[test]
fn type_clash_is_reported_and_nothing_is_deleted() {
    let env = TestEnv::new();
    fs::write(env.src.join("x"), b"file in source").unwrap();
    fs::create_dir_all(env.src.join("y")).unwrap();
    fs::write(env.src.join("y/inner"), b"i").unwrap();
    fs::create_dir_all(env.dst.join("x")).unwrap();
    fs::write(env.dst.join("x/keep"), b"mine").unwrap();
    fs::write(env.dst.join("y"), b"a file where source has a dir").unwrap();
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 1);
    let errs = v["errors"].to_string();
    assert!(errs.contains("/x") && errs.contains("/y"), "{errs}");
    assert_eq!(fs::read(env.dst.join("x/keep")).unwrap(), b"mine");
    assert_eq!(
        fs::read(env.dst.join("y")).unwrap(),
        b"a file where source has a dir"
    );
}

#[test]
fn read_only_source_directory_ends_read_only_with_children() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("ro")).unwrap();
    fs::write(env.src.join("ro/f"), b"x").unwrap();
    fs::set_permissions(env.src.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let out = env.copy(&[]);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
    // a re-run must still be able to work inside it
    assert_code(&env.copy(&["--ignore-times"]), 0);
    assert_trees_equal(&env.src, &env.dst);
}

/// Permission bits do not stop root, so this runs pcopy as `nobody` via
/// setpriv when we are root (and as ourselves otherwise).
#[test]
fn unreadable_file_and_directory_fail_alone_with_exit_1() {
    let env = TestEnv::new();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(env.src.join("good"), b"ok").unwrap();
    fs::write(env.src.join("secret"), b"no").unwrap();
    fs::create_dir(env.src.join("closed")).unwrap();
    fs::write(env.src.join("closed/inner"), b"x").unwrap();
    fs::set_permissions(env.src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(env.src.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = if is_root() {
        if Command::new("setpriv").arg("--version").output().is_err() {
            skip(
                "unreadable_entries",
                "root without setpriv cannot test permission denial",
            );
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", &bin()]);
        c
    } else {
        Command::new(bin())
    };
    c.arg("--json").arg(&env.src).arg(&env.dst).current_dir("/");
    let out = run(c);
    assert_code(&out, 1);
    let v = parse_json(&out);
    let errs = v["errors"].to_string();
    assert!(errs.contains("secret"), "{errs}");
    assert!(errs.contains("closed"), "{errs}");
    assert_eq!(fs::read(env.dst.join("good")).unwrap(), b"ok");
    assert!(!env.dst.join("secret").exists());
    assert!(temps_under(&env.dst).is_empty());
}

fn mknod(p: &std::path::Path, ft: rustix::fs::FileType, mode: u32, dev: u64) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        ft,
        rustix::fs::Mode::from_raw_mode(mode),
        dev,
    )
    .unwrap();
}

fn setxattr(p: &std::path::Path, name: &str, value: &[u8]) -> bool {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()).is_ok()
}

fn getxattr(p: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let r = rustix::fs::lgetxattr(p, name, &mut buf[..]).ok();
    r.map(|n| {
        buf.truncate(n);
        buf
    })
}

#[test]
fn extended_attributes_are_preserved_on_files_and_directories() {
    let env = TestEnv::new();
    fs::create_dir(env.src.join("d")).unwrap();
    fs::write(env.src.join("d/f"), b"x").unwrap();
    if !setxattr(&env.src.join("d/f"), "user.pcopy", b"file value") {
        let why = format!("filesystem under {} has no user xattrs", env.src.display());
        skip("extended_attributes", &why);
        return;
    }
    assert!(setxattr(&env.src.join("d"), "user.dir", b"dir value"));
    let out = env.copy(&[]);
    assert_code(&out, 0);
    assert_eq!(
        getxattr(&env.dst.join("d/f"), "user.pcopy").as_deref(),
        Some(&b"file value"[..])
    );
    assert_eq!(
        getxattr(&env.dst.join("d"), "user.dir").as_deref(),
        Some(&b"dir value"[..])
    );
    assert_trees_equal(&env.src, &env.dst);
}

/// Directory attributes are applied one depth at a time, each depth split
/// among threads: every directory of a wide tree, at every depth, still ends
/// with its own mode and nanosecond mtime, whichever thread set it.
#[test]
fn every_directory_of_a_wide_tree_gets_its_mode_and_times() {
    let env = TestEnv::new();
    let modes = [0o755, 0o700, 0o750, 0o555, 0o711, 0o2775];
    let mut n = 0u32;
    for a in 0..30 {
        for b in 0..6 {
            let d = env.src.join(format!("a{a}/b{b}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("f"), format!("{a}.{b}")).unwrap();
        }
    }
    // Modes and times last, deepest first, so nothing written later moves
    // an mtime.
    for a in 0..30 {
        for b in 0..6 {
            let d = env.src.join(format!("a{a}/b{b}"));
            n += 1;
            fs::set_permissions(&d, fs::Permissions::from_mode(modes[n as usize % 6])).unwrap();
            set_mtime_ns(&d, 1_600_000_000 + i64::from(n), n * 7 + 1);
        }
    }
    for a in 0..30 {
        let d = env.src.join(format!("a{a}"));
        n += 1;
        fs::set_permissions(&d, fs::Permissions::from_mode(modes[n as usize % 6])).unwrap();
        set_mtime_ns(&d, 1_500_000_000 + i64::from(n), n * 11 + 3);
    }
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["dirs_created"], 211, "210 and the destination root: {v}");
    assert_eq!(v["dirs_failed"], 0, "{v}");
    assert_trees_equal(&env.src, &env.dst);
}

/// Every attribute of `p` as (name, value), sorted, read with buffers of the
/// largest size Linux allows.
fn all_xattrs(p: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut list = vec![0u8; 64 << 10];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap();
    let mut out: Vec<_> = list[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let mut v = vec![0u8; 64 << 10];
            let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
            v.truncate(len);
            (name.to_vec(), v)
        })
        .collect();
    out.sort();
    out
}

/// pcopy reads attribute lists and values into a small buffer first (the
/// kernel allocates whatever size is asked for, per call) and retries with
/// the full 64 KiB only when told it was too small: lists and values past
/// that first read must still arrive whole, on the copy and on the repair
/// of an existing copy.
#[test]
fn attributes_longer_than_the_first_read_are_copied_and_repaired_whole() {
    let env = TestEnv::new();
    let f = env.src.join("f");
    fs::write(&f, b"x").unwrap();
    // Sizes fit in one ext4 block (4 KiB for all of a file's attributes).
    let big: Vec<u8> = (0..1_500u32).map(|i| (i % 251) as u8).collect();
    if !setxattr(&f, "user.big", &big) {
        let why = format!("filesystem under {} has no user xattrs", env.src.display());
        skip("long_xattrs", &why);
        return;
    }
    // A list of about 700 bytes: past the first read.
    for i in 0..16 {
        let name = format!("user.a-rather-long-attribute-name-{i:02}");
        assert!(setxattr(&f, &name, format!("value {i}").as_bytes()));
    }
    assert!(setxattr(&f, "user.medium", &[7u8; 300]));
    let want = all_xattrs(&f);
    assert_eq!(want.len(), 18);
    assert!(want.iter().map(|(n, _)| n.len() + 1).sum::<usize>() > 512);
    assert_code(&env.copy(&[]), 0);
    assert_eq!(all_xattrs(&env.dst.join("f")), want, "first copy");
    // Damage the copy beyond the first read: the re-run must see it and
    // put back exactly the source's attributes.
    let mut other = big.clone();
    other[1_499] ^= 1;
    assert!(setxattr(&env.dst.join("f"), "user.big", &other));
    assert!(setxattr(&env.dst.join("f"), "user.medium", &[8u8; 300]));
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["entries_repaired"], 1, "{v}");
    assert_eq!(all_xattrs(&env.dst.join("f")), want, "after the repair");
}

#[test]
#[ignore = "needs root (chown, mknod); .ci/run runs it as root (--ignored)"]
fn ownership_and_device_nodes_are_preserved_when_root() {
    let env = TestEnv::new();
    fs::write(env.src.join("owned"), b"x").unwrap();
    std::os::unix::fs::chown(env.src.join("owned"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(env.src.join("owned"), Some(1234), Some(5678)).unwrap();
    let dev = env.src.join("null");
    // makedev(1, 3) is /dev/null's number.
    let null = rustix::fs::makedev(1, 3);
    mknod(&dev, rustix::fs::FileType::CharacterDevice, 0o640, null);
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["specials_copied"], 1, "{v}");
    let m = fs::metadata(env.dst.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    let d = fs::symlink_metadata(env.dst.join("null")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &d.file_type()
    ));
    assert_eq!(d.rdev(), fs::symlink_metadata(&dev).unwrap().rdev());
    assert_trees_equal(&env.src, &env.dst);
}

#[test]
fn sockets_are_skipped_with_a_warning() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    let _l = std::os::unix::net::UnixListener::bind(env.src.join("sock")).unwrap();
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["entries_ignored"], 1, "{v}");
    assert!(stderr(&out).contains("sock"), "{}", explain(&out));
    assert!(!env.dst.join("sock").exists());
}

#[test]
fn dereference_follows_links_and_reports_loops() {
    let env = TestEnv::new();
    let outside = env.path("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("sub/deep"), b"deep").unwrap();
    fs::write(outside.join("file"), b"target contents").unwrap();
    std::os::unix::fs::symlink(outside.join("file"), env.src.join("to_file")).unwrap();
    std::os::unix::fs::symlink(outside.join("sub"), env.src.join("to_dir")).unwrap();
    fs::create_dir(env.src.join("d")).unwrap();
    std::os::unix::fs::symlink("..", env.src.join("d/loop")).unwrap();
    let (out, v) = env.copy_json(&["-L"]);
    assert_code(&out, 1);
    assert_eq!(
        fs::read(env.dst.join("to_file")).unwrap(),
        b"target contents"
    );
    assert!(fs::symlink_metadata(env.dst.join("to_file"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(env.dst.join("to_dir/deep")).unwrap(), b"deep");
    let errs = v["errors"].to_string();
    assert!(errs.contains("loop"), "loop reported: {errs}");
    // Without -L the same tree copies the links verbatim and succeeds.
    let env2 = TestEnv::new();
    std::os::unix::fs::symlink(outside.join("file"), env2.src.join("to_file")).unwrap();
    std::os::unix::fs::symlink("..", env2.src.join("loop")).unwrap();
    assert_code(&env2.copy(&[]), 0);
    assert_trees_equal(&env2.src, &env2.dst);
}

/// Build `levels` nested directories of 250-byte names below `root` with
/// *at() calls (the full path exceeds PATH_MAX) and put `leaf` at the bottom.
fn deep_tree(root: &std::path::Path, levels: usize) -> Vec<Vec<u8>> {
    use rustix::fs::{Mode, OFlags};
    let names: Vec<Vec<u8>> = (0..levels)
        .map(|i| format!("{i:03}{}", "d".repeat(247)).into_bytes())
        .collect();
    let mut dir = fs::File::open(root).unwrap();
    for n in &names {
        rustix::fs::mkdirat(&dir, &n[..], Mode::from_raw_mode(0o755)).unwrap();
        let fd = rustix::fs::openat(
            &dir,
            &n[..],
            OFlags::DIRECTORY | OFlags::RDONLY,
            Mode::empty(),
        );
        dir = fs::File::from(fd.unwrap());
    }
    let leaf = rustix::fs::openat(
        &dir,
        "leaf",
        OFlags::CREATE | OFlags::WRONLY,
        Mode::from_raw_mode(0o644),
    );
    let mut f = fs::File::from(leaf.unwrap());
    std::io::Write::write_all(&mut f, b"at the bottom").unwrap();
    names
}

fn read_deep(root: &std::path::Path, names: &[Vec<u8>]) -> Vec<u8> {
    use rustix::fs::{Mode, OFlags};
    let mut dir = fs::File::open(root).unwrap();
    for n in names {
        let fd = rustix::fs::openat(
            &dir,
            &n[..],
            OFlags::DIRECTORY | OFlags::RDONLY,
            Mode::empty(),
        );
        dir = fs::File::from(fd.expect("missing level at destination"));
    }
    let leaf = rustix::fs::openat(&dir, "leaf", OFlags::RDONLY, Mode::empty());
    let mut f = fs::File::from(leaf.expect("leaf missing at destination"));
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut v).unwrap();
    v
}

#[test]
fn paths_longer_than_path_max_are_copied() {
    let env = TestEnv::new();
    let names = deep_tree(&env.src, 24); // 24 x 251 bytes > 6000 > PATH_MAX
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 1, "{v}");
    assert_eq!(read_deep(&env.dst, &names), b"at the bottom");
    // And a re-run recognises it as up to date.
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_skipped"], 1, "{v}");
}

#[test]
#[ignore = "needs root (chown); .ci/run runs it as root (--ignored)"]
fn files_in_a_setgid_destination_get_the_source_group_not_the_inherited_one() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = TestEnv::new();
    fs::create_dir(env.src.join("sub")).unwrap();
    fs::write(env.src.join("f"), b"x").unwrap();
    fs::write(env.src.join("sub/g"), b"y").unwrap();
    std::os::unix::fs::symlink("f", env.src.join("l")).unwrap();
    for p in ["f", "sub/g", "sub", "l"] {
        std::os::unix::fs::lchown(env.src.join(p), Some(0), Some(0)).unwrap();
    }
    let par = env.path("par");
    fs::create_dir(&par).unwrap();
    std::os::unix::fs::chown(&par, None, Some(4242)).unwrap();
    fs::set_permissions(&par, fs::Permissions::from_mode(0o2770)).unwrap();
    let mut c = env.cmd();
    c.arg(&env.src).arg(par.join("to"));
    assert_code(&run(c), 0);
    for p in ["f", "sub/g", "sub", "l"] {
        let m = fs::symlink_metadata(par.join("to").join(p)).unwrap();
        assert_eq!(m.gid(), 0, "{p} kept the setgid directory's group");
    }
}

#[test]
fn modes_are_not_masked_by_a_default_acl_and_inherited_entries_are_removed() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    fs::create_dir(env.src.join("d")).unwrap();
    for (p, mode) in [("f", 0o666), ("g", 0o777), ("d/h", 0o666)] {
        fs::write(env.src.join(p), p).unwrap();
        fs::set_permissions(env.src.join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    let par = env.path("par");
    fs::create_dir(&par).unwrap();
    let acl = Command::new("setfacl")
        .args(["-m", "d:u::7,d:g::5,d:o:0"])
        .arg(&par)
        .status();
    if !acl.is_ok_and(|s| s.success()) {
        skip("default_acl", "setfacl missing or ACLs unsupported here");
        return;
    }
    let dst = par.join("to");
    let mut c = env.cmd();
    c.arg(&env.src).arg(&dst);
    assert_code(&run(c), 0);
    for (p, mode) in [("f", 0o666), ("g", 0o777), ("d/h", 0o666)] {
        let m = fs::metadata(dst.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, mode, "{p}: masked by the inherited default ACL");
    }
    for p in ["f", "d", "d/h", ""] {
        for a in ["system.posix_acl_access", "system.posix_acl_default"] {
            assert_eq!(getxattr(&dst.join(p), a), None, "{p}: inherited {a} kept");
        }
    }
    assert_trees_equal(&env.src, &dst);
}

#[test]
fn hard_links_between_fifos_and_between_symlinks_stay_links() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    mknod(&env.src.join("fifo"), rustix::fs::FileType::Fifo, 0o640, 0);
    fs::hard_link(env.src.join("fifo"), env.src.join("fifo2")).unwrap();
    std::os::unix::fs::symlink("target", env.src.join("sl")).unwrap();
    // link(2) without AT_SYMLINK_FOLLOW: a second name of the symlink itself.
    fs::hard_link(env.src.join("sl"), env.src.join("sl2")).unwrap();
    assert_eq!(
        fs::symlink_metadata(env.src.join("sl2")).unwrap().nlink(),
        2
    );
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["hardlinks_created"], 2, "{v}");
    let ino = |p: &str| fs::symlink_metadata(env.dst.join(p)).unwrap().ino();
    assert_eq!(ino("fifo"), ino("fifo2"));
    assert_eq!(ino("sl"), ino("sl2"));
    assert!(fs::symlink_metadata(env.dst.join("sl2"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_trees_equal(&env.src, &env.dst);
}
