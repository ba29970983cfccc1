//! `--mpi`: pcopy ranks under a real `mpirun` (Open MPI) on loopback, each
//! with its own workers. Built only with the `mpi` feature; each test skips,
//! counted, when `mpirun` is missing.

use crate::util::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn have_mpirun(test: &str) -> bool {
    let ok = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(test, "mpirun not installed (Debian: openmpi-bin)");
    }
    ok
}

/// `mpirun` with its options for these tests (loopback, ranks unbound, as
/// root if need be), under a deadline: a job that hangs fails its test
/// (exit 124) instead of holding CI. The program and its ranks follow.
fn mpirun_cmd(env: &TestEnv) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "10", "300", "mpirun"])
        .current_dir(env.dir.path())
        // The quarantine list is kept out of the tester's home.
        .env("XDG_STATE_HOME", env.path("state"))
        .stdin(Stdio::null())
        .args(["--oversubscribe", "--bind-to", "none"]);
    if is_root() {
        c.arg("--allow-run-as-root");
    }
    c
}

/// `mpirun [MPI_OPTS] -np N pcopy --mpi SRC DST ARGS`, on loopback, ranks
/// unbound.
fn mpirun_with(
    env: &TestEnv,
    np: usize,
    src: &Path,
    dst: &Path,
    mpi_opts: &[&str],
    args: &[&str],
) -> Command {
    let mut c = mpirun_cmd(env);
    c.arg("-np").arg(np.to_string()).args(mpi_opts);
    c.arg(bin())
        .arg("--mpi")
        .arg("--log-file")
        .arg(env.path("log"))
        .arg(src)
        .arg(dst)
        .args(args);
    c
}

fn mpirun(env: &TestEnv, np: usize, dst: &Path, args: &[&str]) -> Command {
    mpirun_with(env, np, &env.src, dst, &[], args)
}

fn run_mpi(env: &TestEnv, np: usize, dst: &Path, args: &[&str]) -> Output {
    run(mpirun(env, np, dst, args))
}

/// A tree with what a copier can get wrong across ranks: many directories,
/// times, modes, symlinks, hard links spread over directories, a sparse
/// file, a file large enough to be split, a 0500 directory and names that
/// are not UTF-8.
fn rich_tree(src: &Path) {
    gen_tree(src, 42, 600);
    for i in 0..12 {
        let d = src.join(format!("links{i}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("first"), format!("linked {i}")).unwrap();
        for j in 0..3 {
            let other = src.join(format!("links{}", (i + j + 1) % 12));
            fs::create_dir_all(&other).unwrap();
            fs::hard_link(d.join("first"), other.join(format!("to{i}-{j}"))).unwrap();
        }
    }
    let big: Vec<u8> = (0..5u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(src.join("big.bin"), big).unwrap();
    let f = fs::File::create(src.join("sparse.img")).unwrap();
    f.set_len(8 << 20).unwrap();
    drop(f);
    let odd = src.join(os(b"caf\xe9-\xff"));
    fs::create_dir(&odd).unwrap();
    fs::write(odd.join(os(b"\x80name")), b"not utf-8").unwrap();
    let ro = src.join("readonly");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("inside"), b"kept").unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
}

/// "rank R share: N files copied" from the log, per rank.
fn shares(log: &Path) -> Vec<(u32, u64)> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut v: Vec<(u32, u64)> = text
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("] rank ")? + 7..];
            let (rank, rest) = rest.split_once(" share: ")?;
            let files = rest.split_whitespace().next()?;
            Some((rank.parse().ok()?, files.parse().ok()?))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn ranks_1_to_4_give_the_tree_a_plain_run_gives() {
    if !have_mpirun("ranks_1_to_4_give_the_tree_a_plain_run_gives") {
        return;
    }
    let env = TestEnv::new();
    rich_tree(&env.src);
    let (out, plain) = env.copy_json(&["--chunk-bytes", "1048576"]);
    assert_code(&out, 0);
    let compared = assert_trees_equal(&env.src, &env.dst);
    for np in 1..=4 {
        let dst = env.path(&format!("dst{np}"));
        let _ = fs::remove_file(env.path("log"));
        let out = run_mpi(
            &env,
            np,
            &dst,
            &["--json", "--chunk-bytes", "1048576", "-j", "2"],
        );
        assert_code(&out, 0);
        // One summary for the job, printed by rank 0 alone.
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
        let v = parse_json(&out);
        assert_eq!(v["files_failed"], 0, "{v}");
        for k in [
            "files_found",
            "bytes_found",
            "files_copied",
            "hardlinks_created",
            "symlinks_copied",
        ] {
            assert_eq!(v[k], plain[k], "{k}: counted once over all ranks: {v}");
        }
        assert_eq!(assert_trees_equal(&env.src, &dst), compared);
        assert!(temps_under(&dst).is_empty(), "{:?}", temps_under(&dst));
        let s = shares(&env.path("log"));
        eprintln!("{np} rank(s): files copied per rank {s:?}");
        assert_eq!(s.len(), np, "every rank reported its share: {s:?}");
        let total: u64 = s.iter().map(|(_, n)| n).sum();
        assert_eq!(Some(total), v["files_copied"].as_u64(), "{s:?} vs {v}");
    }
}

#[test]
fn four_ranks_each_copy_a_share() {
    if !have_mpirun("four_ranks_each_copy_a_share") {
        return;
    }
    let env = TestEnv::new();
    // Enough directories and files that the walk and the copy outlast the
    // ranks' start-up, whatever the scheduler does.
    for d in 0..40 {
        let dir = env.src.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f}")), vec![d as u8; 2000]).unwrap();
        }
    }
    let out = run_mpi(&env, 4, &env.dst, &["-j", "1"]);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
    let s = shares(&env.path("log"));
    eprintln!("4 ranks, 4,000 files: files copied per rank {s:?}");
    assert_eq!(s.len(), 4, "{s:?}");
    assert!(
        s.iter().all(|&(_, n)| n > 0),
        "every rank copied part of the tree: {s:?}"
    );
}

#[test]
fn a_rerun_under_mpi_copies_nothing_and_delete_mirrors() {
    if !have_mpirun("a_rerun_under_mpi_copies_nothing_and_delete_mirrors") {
        return;
    }
    let env = TestEnv::new();
    gen_tree(&env.src, 7, 300);
    assert_code(&run_mpi(&env, 3, &env.dst, &[]), 0);
    fs::write(env.dst.join("extra.txt"), b"not in the source").unwrap();
    fs::create_dir_all(env.dst.join("extra-dir/sub")).unwrap();
    let out = run_mpi(
        &env,
        3,
        &env.dst,
        &["--json", "--delete", "--max-delete", "2"],
    );
    assert_code(&out, 25);
    let v = parse_json(&out);
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_eq!(v["entries_deleted"], 2, "one budget for the whole job: {v}");
    let out = run_mpi(&env, 3, &env.dst, &["--json", "--delete"]);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
}

/// A snapshot under MPI: every rank opens the basis itself and links
/// what it walks (hard-linked names travel to the rank that owns their
/// inode, so groups stay groups); only the changed files are copied.
#[test]
fn a_snapshot_under_mpi_links_every_unchanged_file() {
    if !have_mpirun("a_snapshot_under_mpi_links_every_unchanged_file") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    rich_tree(&env.src);
    let base = env.path("base");
    let mut c = env.cmd();
    c.arg(&env.src).arg(&base);
    assert_code(&run(c), 0);
    let changed = ["links3/first", "big.bin"];
    for r in changed {
        let p = env.src.join(r);
        let mut data = fs::read(&p).unwrap();
        data.extend_from_slice(b" tonight");
        fs::write(&p, data).unwrap();
        set_mtime_ns(&p, 1_900_000_000, 0);
    }
    let snap = env.path("snap");
    let out = run_mpi(&env, 3, &snap, &["--json", "--link-dest=../base"]);
    assert_code(&out, 0);
    let v = parse_json(&out);
    assert_trees_equal(&env.src, &snap);
    assert_eq!(v["files_copied"], changed.len() as u64, "{v}");
    let mut linked = 0;
    for e in walkdir::WalkDir::new(&env.src).min_depth(1) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(&env.src).unwrap();
        let (s, b) = (
            fs::metadata(snap.join(rel)).unwrap(),
            fs::metadata(base.join(rel)).unwrap(),
        );
        // links3/first's other names are in its group: they follow it.
        let group_of_changed = fs::metadata(e.path()).unwrap().ino()
            == fs::metadata(env.src.join("links3/first")).unwrap().ino();
        let unchanged = !changed.iter().any(|c| rel == Path::new(c)) && !group_of_changed;
        assert_eq!(s.ino() == b.ino(), unchanged, "{}: {v}", rel.display());
        linked += u64::from(unchanged);
    }
    assert!(v["files_linked_from_basis"].as_u64().unwrap() >= 1, "{v}");
    assert!(linked > 500, "{linked} files shared with the basis");
}

#[test]
fn a_refusal_is_printed_once_with_its_exit_code() {
    if !have_mpirun("a_refusal_is_printed_once_with_its_exit_code") {
        return;
    }
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    // Locked: another run holds the destination.
    fs::create_dir(&env.dst).unwrap();
    let held = fs::File::open(&env.dst).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let out = run_mpi(&env, 3, &env.dst, &[]);
    assert_code(&out, 75);
    let err = stderr(&out);
    assert_eq!(
        err.matches("in use by another pcopy run").count(),
        1,
        "{err}"
    );
    drop(held);
    // A missing source: a usage error, once.
    let out = run(mpirun_with(
        &env,
        2,
        &env.path("missing"),
        &env.dst,
        &[],
        &[],
    ));
    assert_code(&out, 2);
    let err = stderr(&out);
    assert_eq!(err.matches("the source does not exist").count(), 1, "{err}");
}

/// Pids of processes of this test's job: rank `rank`'s supervisor
/// (`worker` false) or its workers.
fn job_pids(env: &TestEnv, rank: u32, worker: bool) -> Vec<u32> {
    let want_env = format!("OMPI_COMM_WORLD_RANK={rank}");
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = cmdline(pid);
        let is_worker = cmd.windows(8).any(|w| w == b"--worker");
        let ours = cmd
            .windows(env.src.as_os_str().len())
            .any(|w| w == env.src.as_os_str().as_encoded_bytes());
        if is_worker != worker || (!worker && !ours) {
            continue;
        }
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let rank_ok = environ.split(|&b| b == 0).any(|v| v == want_env.as_bytes());
        let parent_ok = !worker
            || fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()
                })
                .is_some_and(|ppid: u32| job_pids(env, rank, false).contains(&ppid));
        if rank_ok && parent_ok && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// A slow job: files behind a bandwidth limit, so there is time to act.
fn slow_tree(env: &TestEnv) {
    for d in 0..8 {
        let dir = env.src.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..10 {
            fs::write(dir.join(format!("f{f}")), vec![(d * 10 + f) as u8; 200_000]).unwrap();
        }
    }
}

fn finish(mut child: Child) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "mpirun hung");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_worker_killed_on_rank_1_is_replaced_and_the_job_succeeds() {
    if !have_mpirun("a_worker_killed_on_rank_1_is_replaced_and_the_job_succeeds") {
        return;
    }
    let env = TestEnv::new();
    slow_tree(&env);
    let child = mpirun(&env, 2, &env.dst, &["--json", "-j", "2", "--bwlimit", "4M"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut victim = None;
    wait_for(60, "a worker of rank 1", || {
        victim = job_pids(&env, 1, true).first().copied();
        victim.is_some()
    });
    let victim = victim.unwrap();
    assert!(signal(victim, libc::SIGKILL), "SIGKILL {victim}");
    let out = finish(child);
    assert_code(&out, 0);
    let v = parse_json(&out);
    assert!(v["worker_restarts"].as_u64() >= Some(1), "{v}");
    assert_trees_equal(&env.src, &env.dst);
    assert!(temps_under(&env.dst).is_empty());
}

#[test]
fn a_rank_killed_leaves_no_partial_file_and_a_rerun_finishes_exactly() {
    if !have_mpirun("a_rank_killed_leaves_no_partial_file_and_a_rerun_finishes_exactly") {
        return;
    }
    let env = TestEnv::new();
    slow_tree(&env);
    let child = mpirun(&env, 2, &env.dst, &["-j", "2", "--bwlimit", "4M"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(60, "some files copied", || count_files(&env.dst) >= 5);
    let rank1 = job_pids(&env, 1, false);
    assert_eq!(rank1.len(), 1, "rank 1's supervisor: {rank1:?}");
    assert!(signal(rank1[0], libc::SIGKILL));
    let out = finish(child);
    assert!(!out.status.success(), "{}", explain(&out));
    // Every file is absent or complete under its final name.
    let mut complete = 0;
    for e in walkdir::WalkDir::new(&env.dst).into_iter().flatten() {
        if !e.file_type().is_file()
            || pcopy::copy::temp::parse(e.file_name().as_encoded_bytes()).is_some()
        {
            continue;
        }
        let rel = e.path().strip_prefix(&env.dst).unwrap();
        assert_eq!(
            fs::read(e.path()).unwrap(),
            fs::read(env.src.join(rel)).unwrap(),
            "{} is complete",
            rel.display()
        );
        complete += 1;
    }
    assert!(complete < 80, "the job was cut short ({complete} files)");
    let out = run_mpi(&env, 2, &env.dst, &["-j", "2"]);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &env.dst);
    assert!(
        temps_under(&env.dst).is_empty(),
        "{:?}",
        temps_under(&env.dst)
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_poison_file_stays_quarantined_on_the_rerun() {
    if !have_mpirun("a_poison_file_stays_quarantined_on_the_rerun") {
        return;
    }
    let env = TestEnv::new();
    for i in 0..30 {
        fs::write(env.src.join(format!("f{i}")), b"fine").unwrap();
    }
    fs::write(env.src.join("poison.bin"), vec![1u8; 1000]).unwrap();
    let poisoned = |args: &[&str]| {
        let mut c = mpirun_with(&env, 2, &env.src, &env.dst, &["-x", "FAILPOINTS"], args);
        c.env("FAILPOINTS", "worker::before_task=return(kill:poison)");
        run(c)
    };
    let out = poisoned(&["--json"]);
    assert_code(&out, 1);
    let v = parse_json(&out);
    assert_eq!(v["worker_restarts"], 3, "{v}");
    assert!(v["errors"].to_string().contains("crashed 3 times"), "{v}");
    let state: Vec<_> = fs::read_dir(env.path("state/pcopy"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(state.len(), 1, "one quarantine file: {state:?}");
    // The re-run, without the fault, still does not touch it.
    let out = run_mpi(&env, 2, &env.dst, &["--json"]);
    assert_code(&out, 1);
    let v = parse_json(&out);
    assert_eq!(v["worker_restarts"], 0, "{v}");
    assert!(v["errors"].to_string().contains("quarantined"), "{v}");
    assert!(!env.dst.join("poison.bin").exists());
    assert_eq!(count_files(&env.dst), 30);
    // Deleting the list lets it be tried again.
    fs::remove_file(&state[0]).unwrap();
    assert_code(&run_mpi(&env, 2, &env.dst, &[]), 0);
    assert_trees_equal(&env.src, &env.dst);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_late_start_of_rank_0s_walk_is_not_taken_for_the_end() {
    if !have_mpirun("a_late_start_of_rank_0s_walk_is_not_taken_for_the_end") {
        return;
    }
    // The peer threads start before the walker: with rank 0's walker held
    // back, an empty stack on every rank must not end the walk (it once
    // did; the hard-linked names sent to rank 1 were then never copied).
    let env = TestEnv::new();
    rich_tree(&env.src);
    let (out, plain) = env.copy_json(&[]);
    assert_code(&out, 0);
    let dst = env.path("mpi");
    let mut c = mpirun_with(&env, 2, &env.src, &dst, &["-x", "FAILPOINTS"], &["--json"]);
    c.env("FAILPOINTS", "walk::start=sleep(300)");
    let out = run(c);
    assert_code(&out, 0);
    let v = parse_json(&out);
    assert_eq!(v["files_found"], plain["files_found"], "{v}");
    assert_eq!(v["hardlinks_created"], plain["hardlinks_created"], "{v}");
    assert_trees_equal(&env.src, &dst);
}

/// "rank R walk: ... sent S and received R chunks of large files", per rank.
fn chunk_shares(log: &Path) -> Vec<(u64, u64)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let rest = l.split("hard-linked entries; sent ").nth(1)?;
            let mut w = rest.split_whitespace();
            let sent = w.next()?.parse().ok()?;
            let received = w.nth(2)?.parse().ok()?;
            Some((sent, received))
        })
        .collect()
}

#[test]
fn a_large_file_is_copied_by_several_ranks_and_placed_once() {
    if !have_mpirun("a_large_file_is_copied_by_several_ranks_and_placed_once") {
        return;
    }
    let env = TestEnv::new();
    let big: Vec<u8> = (0..12u32 << 20).map(|i| (i % 253) as u8).collect();
    fs::write(env.src.join("big.bin"), &big).unwrap();
    for i in 0..20 {
        fs::write(env.src.join(format!("small{i}")), b"s").unwrap();
    }
    // Slowed down, so the chunks outlast the walk by far: the copy phase
    // must wait for every rank's outcomes (it once ended with the walk).
    let args = [
        "--json",
        "-j",
        "1",
        "--chunk-bytes",
        "1048576",
        "--bwlimit",
        "12M",
    ];
    let out = run_mpi(&env, 3, &env.dst, &args);
    assert_code(&out, 0);
    let v = parse_json(&out);
    assert_eq!(v["files_copied"], 21, "{v}");
    assert_eq!(
        v["bytes_copied"],
        (12u64 << 20) + 20,
        "each chunk counted once: {v}"
    );
    assert_trees_equal(&env.src, &env.dst);
    assert!(
        temps_under(&env.dst).is_empty(),
        "{:?}",
        temps_under(&env.dst)
    );
    let c = chunk_shares(&env.path("log"));
    eprintln!("chunks (sent, received) per rank: {c:?}");
    assert_eq!(c.len(), 3, "{c:?}");
    let sent: u64 = c.iter().map(|x| x.0).sum();
    let received: u64 = c.iter().map(|x| x.1).sum();
    assert!(sent >= 2 && sent == received, "chunks crossed ranks: {c:?}");
    assert_eq!(
        c.iter().filter(|x| x.1 > 0).count(),
        2,
        "both other ranks copied chunks: {c:?}"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_worker_killed_on_another_ranks_chunk_is_survived() {
    if !have_mpirun("a_worker_killed_on_another_ranks_chunk_is_survived") {
        return;
    }
    let env = TestEnv::new();
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    fs::write(env.src.join("big.bin"), &big).unwrap();
    // Rank 0 walks the root, so it registers big.bin; rank 1 (launched as
    // its own app context, with the fault) gets chunks of it, and its
    // worker dies on the first one.
    let pcopy_args = |c: &mut Command| {
        c.arg(bin())
            .arg("--mpi")
            .arg("--log-file")
            .arg(env.path("log"))
            .args(["--json", "-j", "1", "--chunk-bytes", "1048576"])
            .arg(&env.src)
            .arg(&env.dst);
    };
    let mut c = mpirun_cmd(&env);
    c.args(["-np", "1"]);
    pcopy_args(&mut c);
    c.args([":", "-np", "1", "env"])
        .arg("FAILPOINTS=worker::before_task=return(kill-once:big.bin)")
        .arg(format!("PCOPY_FAULT_ONCE={}", env.path("once").display()));
    pcopy_args(&mut c);
    let out = run(c);
    assert_code(&out, 0);
    let v = parse_json(&out);
    assert_eq!(v["worker_restarts"], 1, "rank 1's worker died once: {v}");
    let c = chunk_shares(&env.path("log"));
    assert!(c.iter().any(|x| x.1 > 0), "rank 1 copied chunks: {c:?}");
    assert_trees_equal(&env.src, &env.dst);
    assert!(temps_under(&env.dst).is_empty());
}

#[test]
fn an_error_on_one_rank_alone_ends_the_job_instead_of_hanging_it() {
    if !have_mpirun("an_error_on_one_rank_alone_ends_the_job_instead_of_hanging_it") {
        return;
    }
    let env = TestEnv::new();
    gen_tree(&env.src, 3, 50);
    // Rank 1 alone cannot open its log file (an error after the start);
    // rank 0 goes on into the walk and waits for it.
    let mut c = mpirun_cmd(&env);
    let good = env.path("log");
    let bad = env.path("no-such-dir/file").join("x");
    fs::write(env.path("no-such-dir"), b"a file, not a directory").unwrap();
    for (i, log) in [good, bad].iter().enumerate() {
        if i > 0 {
            c.arg(":");
        }
        c.args(["-np", "1"])
            .arg(bin())
            .arg("--mpi")
            .arg("--log-file")
            .arg(log)
            .arg(&env.src)
            .arg(&env.dst);
    }
    let started = std::time::Instant::now();
    let out = run(c);
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "ended, not hung: {}",
        explain(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(stderr(&out).contains("no-such-dir"), "{}", explain(&out));
}
