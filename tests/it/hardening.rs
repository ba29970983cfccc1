//! Hostile conditions: roots swapped for symlinks mid-run, a worker fed
//! messages by a fake supervisor, temp-like user names, descriptor limits,
//! closed output streams, colour on files, a full destination.

use crate::util::*;
use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use pcopy::protocol::{
    FromWorker, Outcome, Position, RelPath, RootFds, Task, TaskKind, Time, ToWorker, WorkerInit,
};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A worker process driven by the test as its supervisor.
struct FakeSupervisor {
    child: Child,
    up: IpcReceiver<FromWorker>,
    tasks: IpcSender<ToWorker>,
    _roots: (OwnedFd, OwnedFd),
    roots: RootFds,
}

fn open_dir(p: &std::path::Path) -> OwnedFd {
    let f = fs::File::open(p).expect("open dir");
    OwnedFd::from(f)
}

impl FakeSupervisor {
    fn start(src: &std::path::Path, dst: &std::path::Path) -> Self {
        let (server, name) = IpcOneShotServer::<FromWorker>::new().expect("server");
        let (s, d) = (open_dir(src), open_dir(dst));
        let id = |fd: &OwnedFd| {
            let st = rustix::fs::fstat(fd).expect("fstat");
            (st.st_dev, st.st_ino)
        };
        let roots = RootFds {
            src_fd: s.as_raw_fd(),
            dst_fd: d.as_raw_fd(),
            src_id: id(&s),
            dst_id: id(&d),
        };
        let inherit = [roots.src_fd, roots.dst_fd];
        let mut cmd = Command::new(bin());
        cmd.arg("--worker").arg(&name).stderr(Stdio::piped());
        // SAFETY: fcntl in the forked child before exec.
        unsafe {
            cmd.pre_exec(move || {
                for fd in inherit {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn worker");
        let (up, hello) = server.accept().expect("accept");
        let FromWorker::Hello { tasks, .. } = hello else {
            panic!("expected Hello, got {hello:?}");
        };
        FakeSupervisor {
            child,
            up,
            tasks,
            _roots: (s, d),
            roots,
        }
    }

    fn init(&self, run_id: u64) {
        let init = WorkerInit {
            worker: 0,
            roots: self.roots,
            bases: Vec::new(),
            copy: pcopy::copy::Options {
                run_id,
                ..Default::default()
            },
            bwlimit: 0,
            log_level: log::LevelFilter::Warn,
        };
        self.tasks
            .send(ToWorker::Init(
                init,
                Position::new(),
                pcopy::protocol::Budget::new(),
            ))
            .expect("send Init");
    }

    /// The reason of the `Fatal` the worker sends before it exits.
    fn fatal(&self) -> String {
        loop {
            let msg = self.up.try_recv_timeout(Duration::from_secs(20));
            if let FromWorker::Fatal { msg } = msg.expect("msg") {
                return msg;
            }
        }
    }

    /// The next Report's outcomes (logs and progress skipped).
    fn outcomes(&self) -> Vec<Outcome> {
        loop {
            match self
                .up
                .try_recv_timeout(Duration::from_secs(20))
                .expect("report")
            {
                FromWorker::Report { outcomes, .. } => return outcomes,
                FromWorker::Fatal { msg } => panic!("worker fatal: {msg}"),
                _ => {}
            }
        }
    }
}

#[test]
fn a_chunk_temp_naming_a_path_outside_the_destination_is_refused() {
    let env = TestEnv::new();
    fs::write(env.src.join("big"), vec![7u8; 8192]).unwrap();
    fs::create_dir(&env.dst).unwrap();
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("v"), b"untouched").unwrap();
    let st = fs::metadata(env.src.join("big")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let w = FakeSupervisor::start(&env.src, &env.dst);
    w.init(1);
    let chunk = |temp: &[u8]| Task {
        rel: RelPath(b"big".to_vec()),
        kind: TaskKind::Chunk {
            offset: 0,
            len: 8192,
            file_size: 8192,
            mtime: Time {
                secs: st.mtime(),
                nanos: st.mtime_nsec() as u32,
            },
            temp: RelPath(temp.to_vec()),
        },
        dir: pcopy::protocol::DestDir::Existing,
        basis: None,
    };
    let tasks = vec![
        chunk(b"../outside/v"),
        chunk(b"/tmp/pcopy-evil"),
        chunk(b".pcopy-tmp.0000000000000001.big1/../../outside/v"),
    ];
    w.tasks
        .send(ToWorker::Batch { id: 0, tasks })
        .expect("send");
    let outcomes = w.outcomes();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    for o in &outcomes {
        assert!(
            matches!(o, Outcome::Failed { msg, .. } if msg.contains("invalid chunk temp")),
            "{o:?}"
        );
    }
    assert_eq!(fs::read(outside.join("v")).unwrap(), b"untouched");
    assert!(!std::path::Path::new("/tmp/pcopy-evil").exists());
    w.tasks.send(ToWorker::Shutdown).unwrap();
}

#[test]
fn a_worker_refuses_root_descriptors_that_are_not_the_validated_ones() {
    let env = TestEnv::new();
    fs::create_dir(&env.dst).unwrap();
    let mut w = FakeSupervisor::start(&env.src, &env.dst);
    w.roots.dst_id.1 += 1; // claims another inode
    w.init(1);
    let msg = w.fatal();
    assert!(msg.contains("destination root"), "{msg}");
    let st = w.child.wait().unwrap();
    assert_ne!(st.code(), Some(0), "refusal must exit non-zero");
}

#[test]
fn an_undecodable_message_makes_the_worker_say_why_and_exit_non_zero() {
    let env = TestEnv::new();
    fs::create_dir(&env.dst).unwrap();
    let mut w = FakeSupervisor::start(&env.src, &env.dst);
    w.init(1);
    // Same channel, another type: a variant index no ToWorker has.
    let raw = retype(w.tasks.clone());
    raw.send(u64::MAX).expect("send garbage");
    let msg = w.fatal();
    assert!(msg.contains("undecodable"), "{msg}");
    let st = w.child.wait().unwrap();
    assert_ne!(st.code(), Some(0));
    let mut err = String::new();
    use std::io::Read;
    w.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("undecodable"), "worker stderr: {err}");
}

/// An `IpcSender<ToWorker>` as an `IpcSender<u64>`: sent through a channel
/// and received as the other type (a sender's wire form carries no type).
fn retype(tx: IpcSender<ToWorker>) -> IpcSender<u64> {
    let (a, b) = ipc_channel::ipc::channel::<IpcSender<ToWorker>>().unwrap();
    a.send(tx).unwrap();
    b.to_opaque().to::<IpcSender<u64>>().recv().unwrap()
}

#[cfg(feature = "failpoints")]
mod swapped_roots {
    use crate::util::*;
    use std::fs;
    use std::process::{Child, Stdio};

    fn slow_copy(env: &TestEnv) -> Child {
        for i in 0..60 {
            fs::write(env.src.join(format!("f{i:03}")), format!("content {i}")).unwrap();
        }
        let mut c = env.cmd();
        c.args(["--json", "-j", "2"])
            .arg(&env.src)
            .arg(&env.dst)
            .env("FAILPOINTS", "worker::before_task=sleep(30)")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn")
    }

    fn kill_workers(sup: u32) {
        let workers: Vec<u32> = children(sup)
            .into_iter()
            .filter(|&p| cmdline(p).windows(8).any(|w| w == b"--worker"))
            .collect();
        assert!(!workers.is_empty());
        for w in workers {
            signal(w, libc::SIGKILL);
        }
    }

    /// The source root is renamed and replaced by a symlink to another tree
    /// with the same names, then every worker is killed: the replacements
    /// must keep reading the original source, never the other tree.
    #[test]
    fn respawned_workers_keep_the_original_source_root() {
        use std::os::unix::ffi::OsStrExt;
        let env = TestEnv::new();
        let decoy = env.path("decoy");
        fs::create_dir(&decoy).unwrap();
        for i in 0..60 {
            fs::write(decoy.join(format!("f{i:03}")), "SECRET").unwrap();
        }
        let child = slow_copy(&env);
        wait_for(20, "some files copied", || count_files(&env.dst) >= 4);
        let real = env.path("src.real");
        fs::rename(&env.src, &real).unwrap();
        std::os::unix::fs::symlink(&decoy, &env.src).unwrap();
        kill_workers(child.id());
        let out = child.wait_with_output().unwrap();
        assert_code(&out, 0);
        for e in fs::read_dir(&env.dst).unwrap() {
            let e = e.unwrap();
            // The run's marker goes in a detached child after the run
            // exits, so it may vanish between the listing and the read.
            if pcopy::copy::temp::parse(e.file_name().as_bytes()).is_some() {
                continue;
            }
            let p = e.path();
            assert_ne!(
                fs::read(&p).unwrap(),
                b"SECRET",
                "{} came from the decoy",
                p.display()
            );
        }
        assert_trees_equal(&real, &env.dst);
    }

    /// The destination root is swapped for a symlink to an outside
    /// directory mid-run: nothing may be written there.
    #[test]
    fn respawned_workers_keep_the_original_destination_root() {
        let env = TestEnv::new();
        let outside = env.path("outside");
        fs::create_dir(&outside).unwrap();
        let child = slow_copy(&env);
        wait_for(20, "some files copied", || count_files(&env.dst) >= 4);
        let real = env.path("dst.real");
        fs::rename(&env.dst, &real).unwrap();
        std::os::unix::fs::symlink(&outside, &env.dst).unwrap();
        kill_workers(child.id());
        let out = child.wait_with_output().unwrap();
        assert_code(&out, 0);
        let written: Vec<_> = fs::read_dir(&outside).unwrap().collect();
        assert!(
            written.is_empty(),
            "wrote outside the destination: {written:?}"
        );
        assert_trees_equal(&env.src, &real);
    }
}

#[test]
fn names_that_only_look_like_temps_are_user_files() {
    let env = TestEnv::new();
    fs::write(env.src.join(".pcopy-tmp.notes"), b"source file").unwrap();
    fs::write(
        env.src.join(".pcopy-tmp.0123456789abcdef.12.3"),
        b"odd source",
    )
    .unwrap();
    fs::create_dir_all(&env.dst).unwrap();
    fs::write(env.dst.join(".pcopy-tmp.mine"), b"user file").unwrap();
    fs::write(env.dst.join(".pcopy-tmp.00000000deadbeef.7.1"), b"stale").unwrap();
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 2, "{v}");
    assert_eq!(
        fs::read(env.dst.join(".pcopy-tmp.mine")).unwrap(),
        b"user file"
    );
    assert!(!env.dst.join(".pcopy-tmp.00000000deadbeef.7.1").exists());
    // A re-run neither deletes nor recopies the source's temp-like names.
    let (out, v) = env.copy_json(&[]);
    assert_code(&out, 0);
    assert_eq!(v["files_copied"], 0, "{v}");
    assert_eq!(v["files_skipped"], 2, "{v}");
    assert_eq!(
        fs::read(env.dst.join(".pcopy-tmp.mine")).unwrap(),
        b"user file"
    );
    for n in [".pcopy-tmp.notes", ".pcopy-tmp.0123456789abcdef.12.3"] {
        assert_eq!(
            fs::read(env.src.join(n)).unwrap(),
            fs::read(env.dst.join(n)).unwrap()
        );
    }
}

/// `pcopy ... | head -1`: the reader is gone before pcopy writes its
/// summary. Made deterministic by closing the pipe before pcopy starts
/// writing: the copy's own status is kept, no panic text appears.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let env = TestEnv::new();
    gen_tree(&env.src, 3, 40);
    for json in [false, true] {
        let mut c = env.cmd();
        if json {
            c.arg("--json");
        }
        c.arg("-I")
            .arg(&env.src)
            .arg(&env.dst)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_code(&out, 0);
        assert!(!stderr(&out).contains("panicked"), "{}", explain(&out));
    }
    // Closed stderr too, on a run that has an error to print.
    let mut c = env.cmd();
    c.arg(env.path("missing"))
        .arg(&env.dst)
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(2));
}

fn socket_in(dir: &std::path::Path) -> std::os::unix::net::UnixListener {
    std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap()
}

/// A warning printed to a file carries no escape codes; on a terminal it
/// is coloured unless NO_COLOR is set.
#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let env = TestEnv::new();
    fs::write(env.src.join("f"), b"x").unwrap();
    let _sock = socket_in(&env.src);
    let out = env.copy(&["-I"]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("socket"), "{err}");
    assert!(!err.contains('\x1b'), "escape codes in a file: {err:?}");
    if Command::new("script").arg("--version").output().is_err() {
        panic!("script(1) (util-linux) is needed for the terminal half of this test");
    }
    let on_tty = |no_color: Option<&str>| {
        let line = format!(
            "{} -I --no-progress {} {}",
            bin(),
            env.src.display(),
            env.dst.display()
        );
        let mut c = Command::new("script");
        c.args(["-qfec", &line, "/dev/null"]).env("TERM", "xterm");
        c.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = on_tty(None);
    assert!(tty.contains("socket") && tty.contains('\x1b'), "{tty:?}");
    let tty = on_tty(Some("1"));
    assert!(tty.contains("socket") && !tty.contains('\x1b'), "{tty:?}");
}

/// Run pcopy with RLIMIT_NOFILE set to (soft, hard).
fn with_nofile(env: &TestEnv, soft: u64, hard: u64, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd();
    c.arg("--json").args(args).arg(&env.src).arg(&env.dst);
    // SAFETY: setrlimit in the forked child before exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run(c)
}

#[test]
fn descriptor_limits_lower_the_worker_count_or_refuse_in_one_line() {
    let env = TestEnv::new();
    gen_tree(&env.src, 11, 300);
    let out = with_nofile(&env, 16, 16, &["-j", "8"]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("file descriptors") && err.contains("16"),
        "{err}"
    );
    assert!(!env.dst.exists(), "refused before anything was written");
    for limit in [32, 64] {
        let _ = fs::remove_dir_all(&env.dst);
        let out = with_nofile(&env, limit, limit, &["-j", "8"]);
        assert_code(&out, 0);
        let v = parse_json(&out);
        let workers = v["workers"].as_u64().unwrap();
        assert!((1..=8).contains(&workers), "{v}");
        if workers < 8 {
            assert!(
                stderr(&out).contains("file-descriptor limit"),
                "{}",
                explain(&out)
            );
        }
        assert!(
            !stderr(&out).contains("internal error"),
            "{}",
            explain(&out)
        );
        assert_trees_equal(&env.src, &env.dst);
    }
    // A low soft limit under a high hard one is raised, not obeyed.
    let _ = fs::remove_dir_all(&env.dst);
    let out = with_nofile(&env, 16, 4096, &["-j", "8"]);
    assert_code(&out, 0);
    assert_eq!(parse_json(&out)["workers"], 8, "{}", explain(&out));
    assert_trees_equal(&env.src, &env.dst);
}

/// Every soft limit from 16 to 64: either the documented one-line refusal
/// (exit 2, nothing written) or exit 0 with an exact tree; never the
/// internal error of an exhausted descriptor table, never a partial copy,
/// and once a limit works every higher one does too.
#[test]
fn every_descriptor_limit_copies_exactly_or_refuses_cleanly() {
    let env = TestEnv::new();
    gen_tree(&env.src, 23, 600);
    let mut worked = None;
    for limit in (16..=64).step_by(2) {
        for j in ["1", "8"] {
            let _ = fs::remove_dir_all(&env.dst);
            let out = with_nofile(&env, limit, limit, &["-j", j, "--no-progress"]);
            let err = stderr(&out);
            assert!(
                !err.contains("internal error"),
                "limit {limit} -j {j}: {err}"
            );
            match out.status.code() {
                Some(0) => {
                    assert_trees_equal(&env.src, &env.dst);
                    worked.get_or_insert(limit);
                }
                Some(2) => {
                    assert!(
                        err.contains("file descriptors") && err.trim().lines().count() == 1,
                        "limit {limit} -j {j}: {err}"
                    );
                    assert!(
                        worked.is_none(),
                        "limit {limit} -j {j} refused after {worked:?} worked"
                    );
                }
                _ => panic!("limit {limit} -j {j}: {}", explain(&out)),
            }
        }
    }
    assert!(
        worked.is_some_and(|w| w <= 32),
        "first working limit {worked:?}"
    );
}

#[cfg(feature = "failpoints")]
mod paused_job {
    use crate::util::*;
    use std::fs;
    use std::process::Stdio;
    use std::time::Duration;

    fn signal_all(pids: &[u32], sig: i32) {
        for &p in pids {
            signal(p, sig);
        }
    }

    /// The whole job is frozen three times for 2.5 s (as a cgroup freezer,
    /// `docker pause` or a suspended VM would), the supervisor thawing
    /// 300 ms before its workers. With a 2 s stall timeout, no healthy worker
    /// may be killed and nothing quarantined. The margins: a build without
    /// the pause rule sees 2.5 s of silence > 2 s and kills; with it, the
    /// test thread may oversleep its 300 ms by 1.7 s before a kill would be
    /// right (it was 0.7 s with a 1 s timeout, thin on a loaded machine).
    #[test]
    fn a_paused_job_is_not_taken_for_hung_workers() {
        let env = TestEnv::new();
        for i in 0..150 {
            fs::write(env.src.join(format!("f{i:03}")), format!("c{i}")).unwrap();
        }
        let mut c = env.cmd();
        c.args(["--json", "-j", "2", "--stall-timeout", "2"])
            .arg(&env.src)
            .arg(&env.dst)
            .env("FAILPOINTS", "worker::before_task=sleep(40)")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let sup = child.id();
        for round in 0..3 {
            wait_for(20, "copying in progress", || {
                count_files(&env.dst) >= 5 + 20 * round
            });
            let workers: Vec<u32> = children(sup)
                .into_iter()
                .filter(|&p| cmdline(p).windows(8).any(|w| w == b"--worker"))
                .collect();
            signal_all(&[sup], libc::SIGSTOP);
            signal_all(&workers, libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(2500));
            signal_all(&[sup], libc::SIGCONT);
            std::thread::sleep(Duration::from_millis(300));
            signal_all(&workers, libc::SIGCONT);
        }
        let out = child.wait_with_output().unwrap();
        assert_code(&out, 0);
        let v = parse_json(&out);
        assert_eq!(v["worker_restarts"], 0, "{}", explain(&out));
        assert_trees_equal(&env.src, &env.dst);
    }
}

/// A tmpfs of `size` mounted at `dir` for the life of the guard.
struct SmallFs(std::path::PathBuf);
impl SmallFs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<SmallFs> {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs(dir.to_path_buf()))
    }
    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}
impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root to mount a small tmpfs; .ci/run runs it as root (--ignored)"]
fn a_full_destination_is_one_event_with_its_own_exit_code() {
    let env = TestEnv::new();
    for d in ["a", "b", "c"] {
        let dir = env.src.join(d);
        fs::create_dir(&dir).unwrap();
        let mut r = Lcg::new(d.as_bytes()[0] as u64);
        for i in 0..40 {
            let data: Vec<u8> = (0..65536).map(|_| r.next() as u8).collect();
            fs::write(dir.join(format!("f{i}")), data).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    }
    let Some(small) = SmallFs::mount(&env.path("small"), "2m") else {
        skip(
            "disk_full",
            "mounting a tmpfs was refused (not root, or no CAP_SYS_ADMIN)",
        );
        return;
    };
    let dst = env.path("small/dst");
    let mut c = env.cmd();
    c.arg("--json").arg(&env.src).arg(&dst);
    let out = run(c);
    assert_code(&out, 11);
    let v = parse_json(&out);
    assert_eq!(v["disk_full"], true, "{v}");
    assert_eq!(v["files_failed"], 0, "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    let path = errors[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with(dst.to_str().unwrap()),
        "names the destination: {path}"
    );
    assert_eq!(
        stderr(&out).matches("No space left").count(),
        1,
        "{}",
        explain(&out)
    );
    let (found, copied, left) = (
        v["files_found"].as_u64().unwrap(),
        v["files_copied"].as_u64().unwrap(),
        v["files_not_copied"].as_u64().unwrap(),
    );
    assert!(left > 0 && copied + left == found, "{v}");
    assert!(
        v["bytes_not_copied"].as_u64().unwrap() >= left * 65536,
        "{v}"
    );
    assert!(temps_under(&dst).is_empty(), "{:?}", temps_under(&dst));
    use std::os::unix::fs::PermissionsExt;
    for d in ["a", "b", "c"] {
        let mode = fs::metadata(dst.join(d)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750, "directory attributes applied to {d}");
    }
    // Free space and re-run: the copy finishes exactly.
    small.resize("32m");
    let mut c = env.cmd();
    c.arg("--json").arg(&env.src).arg(&dst);
    let out = run(c);
    assert_code(&out, 0);
    assert_trees_equal(&env.src, &dst);
}
