//! Starting workers: re-spawn this executable with `--worker <name>` in its
//! own process group (so a terminal's Ctrl-C reaches only the supervisor),
//! complete the ipc-channel handshake with a deadline (`accept()` has none),
//! and send `Init`.

use crate::protocol::{
    abort_hello, Budget, FromWorker, Position, ToWorker, WorkerInit, PARENT_ENV, PROTOCOL_VERSION,
};
use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new worker may take to connect.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running, initialised worker.
pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub tx: IpcSender<ToWorker>,
    /// The task the worker last started (shared memory).
    pub position: Position,
}

/// Why a worker could not be started.
pub enum NotStarted {
    /// The process is out of file descriptors (EMFILE): run with fewer
    /// workers, never a fatal error by itself.
    NoDescriptors,
    /// Anything else (it died before connecting, a handshake timeout...).
    Failed(String),
}

/// Whether `n` more descriptors can be opened right now (they are opened
/// and closed again). ipc-channel does not report a failed `dup` or
/// `memfd_create`: it maps the -1 and asserts, so the room is checked
/// before any of its calls.
fn room_for(n: usize) -> bool {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => held.push(fd),
            Err(_) => return false,
        }
    }
    true
}

/// Spawn and initialise one worker; also returns its results receiver.
pub fn spawn(
    exe: &Path,
    init: WorkerInit,
    budget: &Budget,
    spare: usize,
) -> Result<(Spawned, IpcReceiver<FromWorker>), NotStarted> {
    if !room_for(crate::supervisor::limits::SPAWN_PEAK + spare) {
        return Err(NotStarted::NoDescriptors);
    }
    // A walker thread may still take the last descriptors between the
    // check and ipc-channel's calls; its assertion then unwinds to here.
    match crate::error::quiet_panic(|| try_spawn(exe, init, budget)) {
        Some(r) => r.map_err(NotStarted::Failed),
        None if !room_for(1) => Err(NotStarted::NoDescriptors),
        None => Err(NotStarted::Failed(
            "ipc-channel failed while starting it".into(),
        )),
    }
}

fn try_spawn(
    exe: &Path,
    init: WorkerInit,
    budget: &Budget,
) -> Result<(Spawned, IpcReceiver<FromWorker>), String> {
    let (server, name) =
        IpcOneShotServer::<FromWorker>::new().map_err(|e| format!("ipc server: {e}"))?;
    let mut child = command(exe, &name, &init)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", exe.display()))?;
    match accept(server, &name, &mut child).and_then(|hello| initialise(hello, init, budget)) {
        Ok((tx, position, rx)) => {
            let pid = child.id();
            Ok((
                Spawned {
                    child,
                    pid,
                    tx,
                    position,
                },
                rx,
            ))
        }
        Err(msg) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(msg)
        }
    }
}

/// `pcopy --worker NAME` in its own process group, inheriting exactly the
/// two root descriptors and those of the basis directories.
fn command(exe: &Path, name: &str, init: &WorkerInit) -> Command {
    let inherit: Vec<i32> = [init.roots.src_fd, init.roots.dst_fd]
        .into_iter()
        .chain(init.bases.iter().map(|b| b.0))
        .collect();
    let mut cmd = Command::new(exe);
    cmd.arg("--worker")
        .arg(name)
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: runs in the forked child before exec; fcntl is
    // async-signal-safe and touches only the child's descriptor table. The
    // root and basis descriptors are the only ones a worker inherits.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd
}

/// Wait for the worker's first message, giving up when it dies or after
/// `HANDSHAKE_TIMEOUT` (`accept()` itself has no deadline).
fn accept(
    server: IpcOneShotServer<FromWorker>,
    name: &str,
    child: &mut Child,
) -> Result<(IpcReceiver<FromWorker>, FromWorker), String> {
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let acceptor = std::thread::spawn(move || {
        let _ = done_tx.send(server.accept());
    });
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let accepted = loop {
        if let Ok(r) = done_rx.recv_timeout(Duration::from_millis(20)) {
            break r;
        }
        let dead = matches!(child.try_wait(), Ok(Some(_)) | Err(_));
        if dead || Instant::now() > deadline {
            // Unblock accept() by connecting ourselves.
            if let Ok(tx) = IpcSender::<FromWorker>::connect(name.to_string()) {
                let _ = tx.send(abort_hello());
            }
            let _ = done_rx.recv();
            let _ = acceptor.join();
            return Err("worker exited or timed out before connecting".into());
        }
    };
    let _ = acceptor.join();
    accepted.map_err(|e| format!("handshake: {e:?}"))
}

/// Check the worker's Hello and send it `Init` on the channel it gave us.
fn initialise(
    (rx, hello): (IpcReceiver<FromWorker>, FromWorker),
    init: WorkerInit,
    budget: &Budget,
) -> Result<(IpcSender<ToWorker>, Position, IpcReceiver<FromWorker>), String> {
    let FromWorker::Hello { version, tasks, .. } = hello else {
        return Err(format!("unexpected first message {hello:?}"));
    };
    if version != PROTOCOL_VERSION {
        return Err(format!("worker protocol {version} != {PROTOCOL_VERSION}"));
    }
    let position = Position::new();
    tasks
        .send(ToWorker::Init(init, position.share(), budget.share()))
        .map_err(|e| format!("send Init: {e}"))?;
    Ok((tasks, position, rx))
}
