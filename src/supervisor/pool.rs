//! Starting workers: re-spawn this executable with `--worker <name>` in its
//! own process group (so a terminal's Ctrl-C reaches only the supervisor),
//! complete the ipc-channel handshake with a deadline (`accept()` has none),
//! and send `Init`.

use crate::protocol::{
    abort_hello, FromWorker, Position, ToWorker, WorkerInit, PARENT_ENV, PROTOCOL_VERSION,
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

/// Spawn and initialise one worker; also returns its results receiver.
pub fn spawn(exe: &Path, init: WorkerInit) -> Result<(Spawned, IpcReceiver<FromWorker>), String> {
    let (server, name) =
        IpcOneShotServer::<FromWorker>::new().map_err(|e| format!("ipc server: {e}"))?;
    let inherit = [init.roots.src_fd, init.roots.dst_fd];
    let mut cmd = Command::new(exe);
    cmd.arg("--worker")
        .arg(&name)
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: runs in the forked child before exec; fcntl is
    // async-signal-safe and touches only the child's descriptor table. The
    // root descriptors are the only ones a worker inherits.
    unsafe {
        cmd.pre_exec(move || {
            for fd in inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", exe.display()))?;
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let acceptor = std::thread::spawn(move || {
        let _ = done_tx.send(server.accept());
    });
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let accepted = loop {
        match done_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(r) => break r,
            Err(_) => {
                let dead = matches!(child.try_wait(), Ok(Some(_)) | Err(_));
                if dead || Instant::now() > deadline {
                    // Unblock accept() by connecting ourselves.
                    if let Ok(tx) = IpcSender::<FromWorker>::connect(name.clone()) {
                        let _ = tx.send(abort_hello());
                    }
                    let r = done_rx.recv();
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = acceptor.join();
                    let _ = r;
                    return Err("worker exited or timed out before connecting".into());
                }
            }
        }
    };
    let _ = acceptor.join();
    let fail = |mut child: Child, msg: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(msg)
    };
    match accepted {
        Ok((
            rx,
            FromWorker::Hello {
                pid,
                version,
                tasks,
            },
        )) => {
            if version != PROTOCOL_VERSION {
                return fail(
                    child,
                    format!("worker protocol {version} != {PROTOCOL_VERSION}"),
                );
            }
            let position = Position::new();
            if let Err(e) = tasks.send(ToWorker::Init(init, position.share())) {
                return fail(child, format!("send Init: {e}"));
            }
            Ok((
                Spawned {
                    child,
                    pid,
                    tx: tasks,
                    position,
                },
                rx,
            ))
        }
        Ok((_, other)) => fail(child, format!("unexpected first message {other:?}")),
        Err(e) => fail(child, format!("handshake: {e:?}")),
    }
}
