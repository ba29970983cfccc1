//! Power cuts, simulated (issue 24). `tests/crashfs` is a FUSE passthrough
//! that keeps written file data in memory until it is fsynced and drops it
//! on SIGUSR1, while every metadata change (create, rename, chmod, utimens,
//! truncate) reaches its backing directory at once: ext4's rule, under
//! which a cut can leave a file at its final name with the source's size
//! and mtime but zeros for data (see tests/crashfs/README.md).
//!
//! Each scenario makes a source tree on plain temp storage, copies it into
//! a directory of the mount, stops pcopy and all its workers at a cut point
//! (SIGSTOP, then SIGKILL, so none writes after the others), cuts, runs
//! `pcopy SRC DST` again with default options through the same mount and
//! wants the source back exactly: names, types, bytes, sizes, modes and
//! mtimes. Every cut point of a test is tried before it fails, and the
//! failure lists what each left behind.
//!
//! Two things a real power cut does that FUSE alone cannot show pcopy:
//! - The machine reboots: every pcopy here runs in a mount namespace of its
//!   own whose `/proc/sys/kernel/random/boot_id` is the simulated boot's
//!   (a new one after each cut).
//! - `syncfs(2)` writes the filesystem's dirty data, but the kernel never
//!   sends FUSE_SYNCFS to a /dev/fuse server. So pcopy runs under a seccomp
//!   filter that reports each `syncfs`/`sync` to this process (user
//!   notification), which has crashfs write everything before the call
//!   goes on.
//!
//! Root only (a FUSE mount, mount namespaces): `.ci/run` runs them with
//! `--ignored`. The simulator is built once per test process into
//! `target/crashfs`.

use crate::util::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `cargo build --release` of tests/crashfs, once per process.
fn crashfs_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/crashfs");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(root.join("tests/crashfs/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("run cargo to build tests/crashfs");
        assert!(
            out.status.success(),
            "building tests/crashfs failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("release/crashfs")
    })
    .clone()
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Talking to crashfs: a signal, then its answer line on stdout.
struct Control {
    pid: u32,
    lines: Mutex<Receiver<String>>,
    log: PathBuf,
    /// `syncfs`/`sync` calls of pcopy passed on to crashfs.
    syncs: AtomicU64,
    /// Set when crashfs is being shut down: no more questions.
    closing: std::sync::atomic::AtomicBool,
}

impl Control {
    /// Signal crashfs and wait for its answer (`cut F B`, `synced F B`).
    fn try_ask(&self, sig: i32, answer: &str) -> Result<(u64, u64), String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if self.closing.load(Ordering::SeqCst) || !signal(self.pid, sig) {
            return Err("crashfs is gone".into());
        }
        let l = lines.recv_timeout(Duration::from_secs(60)).map_err(|e| {
            format!(
                "crashfs did not answer ({e}); its log:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            )
        })?;
        let mut w = l.split_whitespace();
        if w.next() != Some(answer) {
            return Err(format!("crashfs said {l:?}, not {answer}"));
        }
        let mut num = || w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        Ok((num(), num()))
    }

    fn ask(&self, sig: i32, answer: &str) -> (u64, u64) {
        self.try_ask(sig, answer).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A running crashfs: BACKING is `env/backing`, the mount `env/mnt`.
/// Dropping it unmounts (SIGTERM; a lazy unmount if it will not go).
struct Crashfs {
    child: Child,
    ctl: Arc<Control>,
    mnt: PathBuf,
    backing: PathBuf,
    /// The simulated boot: its boot id is in `boot_ids/N`.
    boot: AtomicU32,
    boot_ids: PathBuf,
    /// `PCOPY_TEST_MACHINE=token` in the environment of every pcopy
    /// started here: those processes, detached ones too, are the
    /// simulated machine's.
    token: String,
}

impl Crashfs {
    /// Mount (crashfs `flags` first), or say why not (a counted skip).
    fn mount(env: &TestEnv, test: &str, flags: &[&str]) -> Option<Crashfs> {
        if !Path::new("/dev/fuse").exists() {
            skip(
                test,
                "/dev/fuse missing (no FUSE in this kernel or container)",
            );
            return None;
        }
        if !on_path("fusermount3") {
            skip(test, "fusermount3 missing (Debian package fuse3)");
            return None;
        }
        let bin = crashfs_bin();
        let (backing, mnt) = (env.path("backing"), env.path("mnt"));
        let (log, boot_ids) = (env.path("crashfs.log"), env.path("boot_ids"));
        for d in [&backing, &mnt, &boot_ids] {
            fs::create_dir(d).unwrap();
        }
        let mut child = Command::new(bin)
            .args(flags)
            .arg(&backing)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn crashfs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(20));
        let me = Crashfs {
            ctl: Arc::new(Control {
                pid: child.id(),
                lines: Mutex::new(lines),
                log,
                syncs: AtomicU64::new(0),
                closing: Default::default(),
            }),
            child,
            mnt,
            backing,
            boot: AtomicU32::new(0),
            boot_ids,
            token: {
                static N: AtomicU64 = AtomicU64::new(0);
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                format!(
                    "PCOPY_TEST_MACHINE={}-{}-{}\0",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    t.as_nanos()
                )
            },
        };
        me.new_boot();
        match first {
            Ok(l) if l == "ready" => Some(me),
            other => {
                let why = format!(
                    "crashfs could not mount ({other:?}): {}",
                    fs::read_to_string(&me.ctl.log).unwrap_or_default().trim()
                );
                skip(test, &why);
                None
            }
        }
    }

    fn new_boot(&self) {
        let n = self.boot.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("c0ffee00-0000-4000-8000-{:06x}{n:06x}\n", self.ctl.pid);
        fs::write(self.boot_ids.join(n.to_string()), id).unwrap();
    }

    /// The power cut: unsynced data is lost, and the machine boots again.
    /// Returns the (files, bytes) dropped.
    fn cut(&self) -> (u64, u64) {
        let r = self.ctl.ask(libc::SIGUSR1, "cut");
        self.new_boot();
        r
    }

    /// Everything written so far reaches the disk (as writeback would).
    fn sync(&self) {
        self.ctl.ask(libc::SIGUSR2, "synced");
    }

    /// `pcopy` on the current simulated boot, its `syncfs` calls passed on
    /// to crashfs.
    fn pcopy(&self, env: &TestEnv) -> Command {
        let boot_id = self
            .boot_ids
            .join(self.boot.load(Ordering::SeqCst).to_string());
        let mut c = env.cmd();
        let (k, v) = self.token.trim_end_matches('\0').split_once('=').unwrap();
        c.env(k, v);
        in_simulated_machine(&mut c, &boot_id, self.ctl.clone(), self.mnt.clone());
        c
    }

    /// Spawn a command made by `pcopy`.
    fn spawn(&self, mut c: Command) -> Child {
        c.spawn().expect("spawn pcopy")
    }

    /// Every live process of the simulated machine: those with this
    /// mount's token in their environment.
    fn machine_processes(&self) -> Vec<u32> {
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        let token = self.token.as_bytes();
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| {
                fs::read(format!("/proc/{p}/environ"))
                    .is_ok_and(|env| env.windows(token.len()).any(|w| w == token))
                    && alive(p)
            })
            .collect()
    }

    /// Run a command made by `pcopy` to its end, and the end of whatever it
    /// left running (pcopy's detached `syncfs` and marker removal).
    fn run(&self, mut c: Command) -> std::process::Output {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = self.spawn(c).wait_with_output().expect("wait pcopy");
        wait_for(60, "the run's detached processes", || {
            self.machine_processes().is_empty()
        });
        out
    }
}

impl Drop for Crashfs {
    fn drop(&mut self) {
        for p in self.machine_processes() {
            signal(p, libc::SIGKILL);
        }
        self.ctl.closing.store(true, Ordering::SeqCst);
        // Not while a question is being answered.
        let _lines = self.ctl.lines.lock();
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Harmless when already unmounted; needed after a crash of crashfs.
        if let Ok(c) = std::ffi::CString::new(self.mnt.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

// seccomp user notification (linux/seccomp.h), declared here: the libc
// crate's coverage of it varies between versions.
#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}
#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}
#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
/// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// A classic BPF program: `syncfs` and `sync` of this architecture go to
/// the listener, everything else is allowed.
fn sync_filter() -> Vec<libc::sock_filter> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LD_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
    const JEQ: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    vec![
        op(LD_ABS, 0, 0, 4),                    // 0: arch
        op(JEQ, 0, 3, AUDIT_ARCH),              // 1: other arch: allow
        op(LD_ABS, 0, 0, 0),                    // 2: nr
        op(JEQ, 2, 0, libc::SYS_syncfs as u32), // 3
        op(JEQ, 1, 0, libc::SYS_sync as u32),   // 4
        op(RET, 0, 0, SECCOMP_RET_ALLOW),       // 5
        op(RET, 0, 0, SECCOMP_RET_USER_NOTIF),  // 6
    ]
}

/// Set up `c` to run as on the simulated machine: in a mount namespace of
/// its own with `boot_id` over the kernel's boot id, and under a seccomp
/// filter whose listener (sent back over a socket pair) a thread of this
/// process serves: a `syncfs` of a file under `mnt`, or a `sync`, has
/// crashfs write everything dirty, then the call goes on.
fn in_simulated_machine(c: &mut Command, boot_id: &Path, ctl: Arc<Control>, mnt: PathBuf) {
    let mut pair = [0 as RawFd; 2];
    // SAFETY: a valid out-array of two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just made and are owned here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    std::thread::spawn(move || serve_syncs(ours, &ctl, &mnt));

    let cpath = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (src, target) = (
        cpath(boot_id),
        cpath(Path::new("/proc/sys/kernel/random/boot_id")),
    );
    let (root, filter) = (cpath(Path::new("/")), sync_filter());
    let hook = move || -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        // SAFETY (all below): plain system calls on valid pointers, made
        // between fork and exec without allocating.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
            {
                return fail();
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return fail();
            }
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            let listener = libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &prog as *const libc::sock_fprog,
            ) as RawFd;
            if listener < 0 {
                return fail();
            }
            // Send the listener over the socket pair (SCM_RIGHTS).
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut cbuf = [0u64; 8];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let cm = libc::CMSG_FIRSTHDR(&msg);
            (*cm).cmsg_level = libc::SOL_SOCKET;
            (*cm).cmsg_type = libc::SCM_RIGHTS;
            (*cm).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>(), listener);
            if libc::sendmsg(theirs.as_raw_fd(), &msg, 0) != 1 {
                return fail();
            }
            libc::close(listener);
        }
        Ok(())
    };
    // SAFETY: the hook only makes system calls (async-signal-safe).
    unsafe { c.pre_exec(hook) };
}

/// The listener side: receive the descriptor, then answer notifications
/// until every process under the filter is gone.
fn serve_syncs(sock: OwnedFd, ctl: &Control, mnt: &Path) {
    // SAFETY (all below): system calls on descriptors owned here and on
    // buffers of the right size.
    let listener = unsafe {
        let tv = libc::timeval {
            tv_sec: 60,
            tv_usec: 0,
        };
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        if libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
            return; // the command was never spawned, or failed before exec
        }
        let cm = libc::CMSG_FIRSTHDR(&msg);
        if cm.is_null() || (*cm).cmsg_type != libc::SCM_RIGHTS {
            return;
        }
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(
            libc::CMSG_DATA(cm).cast::<RawFd>(),
        ))
    };
    // Until every process under the filter is gone, or crashfs is (a
    // detached child nobody reaps keeps the filter alive as a zombie).
    while !ctl.closing.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
        if pfd.revents & libc::POLLIN == 0 {
            if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return; // no process left under the filter
            }
            continue;
        }
        let mut req = SeccompNotif::default();
        // SAFETY: a zeroed struct seccomp_notif, as the ioctl wants.
        if unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            continue; // the caller died meanwhile
        }
        let ours = if req.data.nr == libc::SYS_syncfs as i32 {
            let link = format!("/proc/{}/fd/{}", req.pid, req.data.args[0] as i32);
            fs::read_link(link).is_ok_and(|p| p.starts_with(mnt))
        } else {
            true // sync(2): every filesystem
        };
        if ours && ctl.try_ask(libc::SIGUSR2, "synced").is_ok() {
            ctl.syncs.fetch_add(1, Ordering::Relaxed);
        }
        let resp = SeccompNotifResp {
            id: req.id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        };
        // SAFETY: a valid struct seccomp_notif_resp; a dead caller is ENOENT.
        unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}

/// The supervisor and, transitively, every process it started.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        for c in children(all[i]) {
            if !all.contains(&c) {
                all.push(c);
            }
        }
        i += 1;
    }
    all
}

struct Cut {
    /// pcopy was still running (and was killed) at the cut.
    killed: bool,
    files: u64,
    bytes: u64,
}

/// The power goes: every process of the run stops at once, dies, and only
/// then does the simulator drop what was not synced (a request in flight
/// would otherwise land after the cut).
fn power_cut(job: &mut Child, cfs: &Crashfs) -> Cut {
    let everything = || {
        let mut v = process_tree(job.id());
        v.extend(cfs.machine_processes());
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut pids = everything();
    for _ in 0..5 {
        for &p in &pids {
            signal(p, libc::SIGSTOP);
        }
        let again = everything();
        if again == pids {
            break;
        }
        pids = again;
    }
    for &p in &pids {
        signal(p, libc::SIGKILL);
    }
    let status = job.wait().expect("wait pcopy");
    wait_for(20, "the run's processes to die", || {
        pids.iter().all(|&p| !alive(p))
    });
    let (files, bytes) = cfs.cut();
    Cut {
        killed: status.signal() == Some(libc::SIGKILL),
        files,
        bytes,
    }
}

/// What differs between the source and a destination, one line per entry:
/// missing, extra, type, size, data (and whether the data is all zeros
/// under the source's size and mtime: the power-cut signature), mode,
/// mtime.
fn damage(src: &Path, dst: &Path) -> Vec<String> {
    fn list(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
        walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                (rel, fs::symlink_metadata(e.path()).unwrap())
            })
            .collect()
    }
    let (a, b) = (list(src), list(dst));
    let mut out = Vec::new();
    for (rel, ma) in &a {
        let what = rel.display();
        let Some(mb) = b.get(rel) else {
            out.push(format!("missing: {what}"));
            continue;
        };
        if ma.file_type() != mb.file_type() {
            out.push(format!("type differs: {what}"));
            continue;
        }
        let same_time = (ma.mtime(), ma.mtime_nsec()) == (mb.mtime(), mb.mtime_nsec());
        if ma.is_file() {
            if ma.len() != mb.len() {
                out.push(format!(
                    "size {} instead of {}{}: {what}",
                    mb.len(),
                    ma.len(),
                    if same_time { ", source's mtime" } else { "" }
                ));
                continue;
            }
            let (da, db) = (
                fs::read(src.join(rel)).unwrap(),
                fs::read(dst.join(rel)).unwrap(),
            );
            if da != db {
                let zeros = db.iter().all(|&x| x == 0);
                out.push(format!(
                    "{} ({} bytes){}: {what}",
                    if zeros { "all zeros" } else { "other bytes" },
                    db.len(),
                    if same_time {
                        ", source's size and mtime"
                    } else {
                        ""
                    }
                ));
                continue;
            }
        }
        if ma.file_type().is_symlink() {
            if fs::read_link(src.join(rel)).ok() != fs::read_link(dst.join(rel)).ok() {
                out.push(format!("symlink target differs: {what}"));
            }
        } else if ma.mode() != mb.mode() {
            out.push(format!(
                "mode {:o} instead of {:o}: {what}",
                mb.mode(),
                ma.mode()
            ));
        }
        if !same_time {
            out.push(format!("mtime differs: {what}"));
        }
    }
    for rel in b.keys().filter(|r| !a.contains_key(*r)) {
        out.push(format!("extra: {}", rel.display()));
    }
    out
}

fn summary(d: &[String]) -> String {
    let mut s: String = d.iter().take(20).map(|l| format!("      {l}\n")).collect();
    if d.len() > 20 {
        s += &format!("      ... {} more\n", d.len() - 20);
    }
    s
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// When to cut a run.
#[derive(Clone, Copy, Debug)]
enum At {
    /// This long after it started; a run that ends first is tried again
    /// (at most twice) with 3/5 of the delay, so the cut lands mid-run.
    Time(Duration),
    /// As soon as this path (relative to the destination) is on BACKING:
    /// the name was placed, the power goes right after.
    Placed(&'static str),
    /// Once `n` of the sampled leaf directories have the source's mtime
    /// (the directory pass has begun), and then `extra` later.
    DirPass(usize, Duration),
}

/// One cut point of a scenario.
struct Round<'a> {
    label: String,
    /// Options of the run that is cut.
    args: &'a [&'a str],
    /// Options of the re-run: none, or what the scenario is about
    /// (`--delete`); never `--fsync`.
    rerun: &'a [&'a str],
    at: At,
}

/// The destination (under the mount) and its BACKING twin.
struct Dst {
    mnt: PathBuf,
    backing: PathBuf,
}

fn dst(cfs: &Crashfs, name: &str) -> Dst {
    Dst {
        mnt: cfs.mnt.join(name),
        backing: cfs.backing.join(name),
    }
}

/// Sampled leaf directories of the directory-pass scenario.
static LEAVES: OnceLock<Vec<String>> = OnceLock::new();

fn dir_pass_begun(src: &Path, dst: &Path, n: usize) -> bool {
    LEAVES
        .get()
        .map(|leaves| {
            leaves
                .iter()
                .step_by(37)
                .filter(|l| {
                    match (
                        fs::symlink_metadata(src.join(l)),
                        fs::symlink_metadata(dst.join(l)),
                    ) {
                        (Ok(a), Ok(b)) => {
                            (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
                        }
                        _ => false,
                    }
                })
                .count()
                >= n
        })
        .unwrap_or(false)
}

/// Run, cut at `r.at`, re-run, compare. `Err` describes a wrong tree;
/// progress goes to stderr. `prepare` makes the destination afresh before
/// each try.
fn cut_and_rerun(
    env: &TestEnv,
    cfs: &Crashfs,
    src: &Path,
    d: &Dst,
    r: &Round,
    prepare: &dyn Fn(&Dst),
) -> Result<(), String> {
    let tag = r.label.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let mut delay = match r.at {
        At::Time(t) => t,
        _ => Duration::ZERO,
    };
    let (at, cut) = loop {
        prepare(d);
        let t0 = Instant::now();
        let mut c = cfs.pcopy(env);
        c.args(r.args)
            .arg(src)
            .arg(&d.mnt)
            .stdin(Stdio::null())
            .stdout(fs::File::create(env.path(&format!("{tag}.out"))).unwrap())
            .stderr(fs::File::create(env.path(&format!("{tag}.err"))).unwrap());
        let mut job = cfs.spawn(c);
        let mut seen: Option<Instant> = None;
        while job.try_wait().unwrap().is_none() {
            let now = match r.at {
                At::Time(_) => t0.elapsed() >= delay,
                At::Placed(p) => d.backing.join(p).exists(),
                At::DirPass(n, extra) => {
                    if seen.is_none() && dir_pass_begun(src, &d.backing, n) {
                        seen = Some(Instant::now());
                    }
                    seen.is_some_and(|s| s.elapsed() >= extra)
                }
            };
            if now {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let at = t0.elapsed();
        let cut = power_cut(&mut job, cfs);
        if cut.killed || !matches!(r.at, At::Time(_)) || delay < Duration::from_millis(20) {
            break (at, cut);
        }
        eprintln!(
            "{}: the run ended before the cut at {delay:.2?}; again, earlier",
            r.label
        );
        delay = delay * 3 / 5;
        // Start over: a clean destination, nothing dirty.
        cfs.sync();
        fs::remove_dir_all(&d.mnt).unwrap();
    };
    let before = damage(src, &d.mnt);
    let mut c = cfs.pcopy(env);
    c.arg("--json").args(r.rerun).arg(src).arg(&d.mnt);
    let out = cfs.run(c);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let after = damage(src, &d.mnt);
    // Later rounds count only their own unsynced data.
    cfs.sync();
    eprintln!(
        "{}: cut at {at:.2?} ({}); {} files / {} bytes of unsynced data lost; {} entries wrong \
         before the re-run; re-run: exit {:?}, copied {}, skipped {}; {} entries wrong after",
        r.label,
        if cut.killed {
            "pcopy killed mid-run"
        } else {
            "pcopy had finished"
        },
        cut.files,
        cut.bytes,
        before.len(),
        out.status.code(),
        v["files_copied"],
        v["files_skipped"],
        after.len(),
    );
    if !after.is_empty() || out.status.code() != Some(0) {
        return Err(format!(
            "  {}: cut at {at:.2?} ({}), {} bytes lost\n    before the re-run ({} wrong):\n{}    \
             the re-run (exit {:?}) left ({} wrong):\n{}{}",
            r.label,
            if cut.killed {
                "pcopy killed"
            } else {
                "after pcopy finished"
            },
            cut.bytes,
            before.len(),
            summary(&before),
            out.status.code(),
            after.len(),
            summary(&after),
            {
                // Its last lines (the start may be a long warning list).
                let e = stderr(&out);
                let lines: Vec<&str> = e.trim().lines().collect();
                format!(
                    "    re-run stderr: {}\n",
                    lines[lines.len().saturating_sub(10)..].join("\n")
                )
            }
        ));
    }
    // Strict as every other test (hard links, sparse allocation, ...).
    std::panic::catch_unwind(|| assert_trees_equal(src, &d.mnt))
        .map(|_| ())
        .map_err(|p| format!("  {}: {}", r.label, panic_text(p)))
}

/// The time an uncut run with `args` takes (into a scratch destination of
/// the mount), so cut points scale with the machine.
fn baseline(env: &TestEnv, cfs: &Crashfs, src: &Path, args: &[&str]) -> Duration {
    let dst = cfs.mnt.join("baseline");
    let t0 = Instant::now();
    let mut c = cfs.pcopy(env);
    c.args(args).arg(src).arg(&dst);
    let out = cfs.run(c);
    let t = t0.elapsed();
    assert_code(&out, 0);
    assert_trees_equal(src, &dst);
    cfs.sync();
    eprintln!("uncut run with {args:?}: {t:.2?}");
    t
}

/// Run every round (into destinations `NAME{i}`), then fail listing every
/// round that left a wrong tree.
fn rounds(
    env: &TestEnv,
    cfs: &Crashfs,
    test: &str,
    name: &str,
    rounds: &[Round],
    prepare: &dyn Fn(&Dst),
) {
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        let d = dst(cfs, &format!("{name}{i}"));
        if let Err(e) = cut_and_rerun(env, cfs, &env.src, &d, r, prepare) {
            failures.push(e);
        }
    }
    eprintln!(
        "{test}: {} cut points in {:.1?}; pcopy's syncfs calls passed on: {}",
        rounds.len(),
        t0.elapsed(),
        cfs.ctl.syncs.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{test}: {} of {} cut points left a wrong tree after the default re-run:\n{}",
        failures.len(),
        rounds.len(),
        failures.join("\n")
    );
}

/// Cut at these fractions of the uncut run's time.
const FRACTIONS: [f64; 3] = [0.25, 0.5, 0.75];

fn timed<'a>(name: &str, t: Duration, args: &'a [&'a str], rerun: &'a [&'a str]) -> Vec<Round<'a>> {
    FRACTIONS
        .iter()
        .map(|f| Round {
            label: format!("{name} cut at {:.0}%", f * 100.0),
            args,
            rerun,
            at: At::Time(t.mul_f64(*f)),
        })
        .collect()
}

fn nothing(_: &Dst) {}

/// A file with data at the start, a hole, data in the middle, and a hole
/// at the end (`set_len` past the last data).
fn sparse_file(p: &Path, seed: u64, len: u64) {
    let f = fs::File::create(p).unwrap();
    let mut r = Lcg::new(seed);
    let mut block = |n: usize| -> Vec<u8> { (0..n).map(|_| (r.next() as u8) | 1).collect() };
    f.write_all_at(&block(64 << 10), 0).unwrap();
    f.write_all_at(&block(96 << 10), len / 2).unwrap();
    f.set_len(len).unwrap();
    drop(f);
    set_mtime_ns(
        p,
        1_600_000_000 + seed as i64,
        (seed * 7919 % 1_000_000_000) as u32,
    );
}

/// A dense file of `len` pseudo-random, never-zero bytes.
fn big_file(p: &Path, seed: u64, len: usize) {
    let mut r = Lcg::new(seed);
    let mut f = std::io::BufWriter::new(fs::File::create(p).unwrap());
    let mut left = len;
    while left > 0 {
        let x = (r.next() << 31 ^ r.next()) | 0x0101_0101_0101_0101;
        let n = left.min(8);
        f.write_all(&x.to_le_bytes()[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    drop(f);
    set_mtime_ns(p, 1_650_000_000, 123_456_789);
}

const CHUNKED: [&str; 4] = ["--chunk-bytes", "4194304", "-j", "4"];

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_during_many_small_files() {
    let test = "power_cut_during_many_small_files";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &[]) else {
        return;
    };
    gen_tree(&env.src, 24, 2000);
    let t = baseline(&env, &cfs, &env.src, &[]);
    rounds(
        &env,
        &cfs,
        test,
        "small",
        &timed("small files", t, &[], &[]),
        &nothing,
    );
}

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_during_a_chunked_large_file() {
    let test = "power_cut_during_a_chunked_large_file";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &[]) else {
        return;
    };
    big_file(&env.src.join("big.bin"), 64, 64 << 20);
    gen_tree(&env.src, 64, 100);
    let t = baseline(&env, &cfs, &env.src, &CHUNKED);
    let mut r = timed("chunked", t, &CHUNKED, &[]);
    r.push(Round {
        label: "chunked: cut once big.bin is placed".into(),
        args: &CHUNKED,
        rerun: &[],
        at: At::Placed("big.bin"),
    });
    rounds(&env, &cfs, test, "chunked", &r, &nothing);
}

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_during_sparse_files() {
    let test = "power_cut_during_sparse_files";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &[]) else {
        return;
    };
    for i in 0..12u64 {
        sparse_file(&env.src.join(format!("sparse{i}.img")), i, (4 + i) << 20);
    }
    gen_tree(&env.src, 12, 300);
    let m = fs::metadata(env.src.join("sparse0.img")).unwrap();
    assert!(m.blocks() * 512 < m.len(), "the source file is sparse here");
    let t = baseline(&env, &cfs, &env.src, &[]);
    let mut r = timed("sparse", t, &[], &[]);
    r.push(Round {
        label: "sparse: cut once sparse5.img is placed".into(),
        args: &[],
        rerun: &[],
        at: At::Placed("sparse5.img"),
    });
    rounds(&env, &cfs, test, "sparse", &r, &nothing);
}

/// A tree of every kind the other scenarios cut: small files, sparse files,
/// a file large enough to be chunked.
fn mixed_tree(src: &Path) {
    gen_tree(src, 4, 600);
    for i in 0..3u64 {
        sparse_file(&src.join(format!("sparse{i}.img")), i, 3 << 20);
    }
    big_file(&src.join("big.bin"), 4, 24 << 20);
}

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_after_a_finished_fsync_run_loses_nothing() {
    let test = "power_cut_after_a_finished_fsync_run_loses_nothing";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &[]) else {
        return;
    };
    mixed_tree(&env.src);
    let mut failures = Vec::new();
    let cases = [
        ("--fsync", &["--fsync"][..]),
        (
            "--fsync, chunked",
            &["--fsync", "--chunk-bytes", "4194304", "-j", "4"][..],
        ),
    ];
    for (i, (name, args)) in cases.iter().enumerate() {
        let dst = cfs.mnt.join(format!("fsync{i}"));
        let mut c = cfs.pcopy(&env);
        c.args(*args).arg(&env.src).arg(&dst);
        assert_code(&cfs.run(c), 0);
        let (files, bytes) = cfs.cut();
        let lost = damage(&env.src, &dst);
        eprintln!(
            "{name}: exit 0, then cut: {files} files / {bytes} bytes were unsynced; {} entries wrong",
            lost.len()
        );
        // No re-run: what --fsync placed must have survived as it is.
        if !lost.is_empty() {
            failures.push(format!(
                "  {name}: {bytes} bytes of {files} files were not synced when the run exited 0; \
                 after the cut ({} wrong):\n{}",
                lost.len(),
                summary(&lost)
            ));
        } else if let Err(p) = std::panic::catch_unwind(|| assert_trees_equal(&env.src, &dst)) {
            failures.push(format!("  {name}: {}", panic_text(p)));
        }
    }
    assert!(
        failures.is_empty(),
        "{test}: {} of {} --fsync runs lost data to a cut after exit 0:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A cut right after a default run (no --fsync) that exited 0, also with
/// `--size-on-write` (every file's size durable before its data): the
/// default re-run leaves an exact copy (what was lost is printed).
#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_after_a_finished_default_run_is_repaired_by_the_rerun() {
    let test = "power_cut_after_a_finished_default_run_is_repaired_by_the_rerun";
    for flags in [&[][..], &["--size-on-write"][..]] {
        let env = TestEnv::new();
        let Some(cfs) = Crashfs::mount(&env, test, flags) else {
            return;
        };
        mixed_tree(&env.src);
        for (i, (name, args)) in [("default", &[][..]), ("chunked", &CHUNKED[..])]
            .into_iter()
            .enumerate()
        {
            let dst = cfs.mnt.join(format!("default{i}"));
            let mut c = cfs.pcopy(&env);
            c.args(args).arg(&env.src).arg(&dst);
            assert_code(&cfs.run(c), 0);
            let (files, bytes) = cfs.cut();
            let lost = damage(&env.src, &dst);
            let mut c = cfs.pcopy(&env);
            c.arg("--json").arg(&env.src).arg(&dst);
            let out = cfs.run(c);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let left = damage(&env.src, &dst);
            cfs.sync();
            eprintln!(
                "RECORD crashfs {flags:?}, {name} run, exit 0 (syncfs calls so far: {}), then cut: \
                 {files} files / {bytes} bytes lost, {} entries wrong:\n{}\
                 RECORD   default re-run: exit {:?}, copied {}, skipped {}; {} entries still wrong:\n{}",
                cfs.ctl.syncs.load(Ordering::Relaxed),
                lost.len(),
                summary(&lost),
                out.status.code(),
                v["files_copied"],
                v["files_skipped"],
                left.len(),
                summary(&left)
            );
            assert_code(&out, 0);
            assert!(left.is_empty(), "{name} {flags:?}: {}", summary(&left));
        }
    }
}

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_during_a_delete_run() {
    let test = "power_cut_during_a_delete_run";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &[]) else {
        return;
    };
    gen_tree(&env.src, 5, 800);
    // A destination made long ago (synced): the source's tree, plus 1,500
    // extras to delete, plus 60 files that are out of date.
    let prepare = |d: &Dst| {
        let _ = fs::remove_dir_all(&d.mnt);
        let mut c = cfs.pcopy(&env);
        c.arg(&env.src).arg(&d.mnt);
        assert_code(&cfs.run(c), 0);
        for x in 0..30 {
            let dir = d.mnt.join(format!("extra{x}"));
            fs::create_dir(&dir).unwrap();
            for f in 0..50 {
                fs::write(dir.join(format!("x{f}")), format!("extra {x} {f}")).unwrap();
            }
        }
        let mut n = 0;
        for e in walkdir::WalkDir::new(&d.mnt).sort_by_file_name() {
            let e = e.unwrap();
            if n < 60 && e.file_type().is_file() && e.metadata().unwrap().len() > 10 {
                fs::write(e.path(), b"stale").unwrap();
                set_mtime_ns(e.path(), 1_000_000_000, 0);
                n += 1;
            }
        }
        cfs.sync();
    };
    let args = ["--delete"];
    let base = dst(&cfs, "base");
    prepare(&base);
    let t0 = Instant::now();
    let mut c = cfs.pcopy(&env);
    c.args(args).arg(&env.src).arg(&base.mnt);
    assert_code(&cfs.run(c), 0);
    let t = t0.elapsed();
    assert_trees_equal(&env.src, &base.mnt);
    eprintln!("uncut --delete run: {t:.2?}");
    rounds(
        &env,
        &cfs,
        test,
        "delete",
        &timed("--delete", t, &args, &args),
        &prepare,
    );
}

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_during_the_directory_attribute_pass() {
    let test = "power_cut_during_the_directory_attribute_pass";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &[]) else {
        return;
    };
    // 12 x 12 x 12 directories, distinct modes and mtimes, a small file in
    // each leaf. The pass runs deepest first: the leaves' times appear on
    // BACKING first.
    let modes = [0o700, 0o750, 0o755, 0o711, 0o770, 0o775, 0o705, 0o751];
    let mut all = Vec::new();
    let mut leaves = Vec::new();
    for a in 0..12 {
        for b in 0..12 {
            for c in 0..12 {
                let leaf = format!("a{a}/b{b}/c{c}");
                fs::create_dir_all(env.src.join(&leaf)).unwrap();
                fs::write(env.src.join(&leaf).join("f"), format!("{a}.{b}.{c}")).unwrap();
                leaves.push(leaf);
            }
            all.push(format!("a{a}/b{b}"));
        }
        all.push(format!("a{a}"));
    }
    all.extend(leaves.iter().cloned());
    for (i, d) in all.iter().enumerate() {
        let p = env.src.join(d);
        fs::set_permissions(&p, fs::Permissions::from_mode(modes[i % modes.len()])).unwrap();
        set_mtime_ns(
            &p,
            1_300_000_000 + i as i64 * 3,
            (i as u64 * 7_777_777 % 1_000_000_000) as u32,
        );
    }
    let _ = LEAVES.set(leaves);
    let t = baseline(&env, &cfs, &env.src, &[]);
    let points = [
        (1, Duration::ZERO),
        (1, t / 50),
        (15, Duration::ZERO),
        (1, t / 10),
    ];
    let r: Vec<Round> = points
        .iter()
        .map(|&(n, extra)| Round {
            label: format!("directory pass: {n} of 47 sampled leaves set, then {extra:.0?}"),
            args: &[],
            rerun: &[],
            at: At::DirPass(n, extra),
        })
        .collect();
    rounds(&env, &cfs, test, "dirs", &r, &nothing);
}

#[test]
#[ignore = "needs root (FUSE mount); .ci/run runs it as root (--ignored)"]
fn power_cut_when_sizes_are_durable_before_data() {
    // crashfs --size-on-write: every file placed before the cut has the
    // source's size and mtime and zeros for data, not only the ones whose
    // size was set apart (sparse, chunked). Only knowing that the cut run
    // did not end cleanly can tell them apart.
    let test = "power_cut_when_sizes_are_durable_before_data";
    let env = TestEnv::new();
    let Some(cfs) = Crashfs::mount(&env, test, &["--size-on-write"]) else {
        return;
    };
    mixed_tree(&env.src);
    let t = baseline(&env, &cfs, &env.src, &CHUNKED);
    let mut r = timed("size on write", t, &CHUNKED, &[]);
    r.push(Round {
        label: "size on write: cut once big.bin is placed".into(),
        args: &CHUNKED,
        rerun: &[],
        at: At::Placed("big.bin"),
    });
    rounds(&env, &cfs, test, "eager", &r, &nothing);
}
