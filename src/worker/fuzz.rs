//! Bounded fuzzing of the worker's message handling: random and mutated
//! `ToWorker` messages and raw bytes go through the same decode → validate →
//! copy path a worker runs, on real files. Nothing may panic, and nothing
//! may be written outside the destination (the source and a sibling
//! directory are snapshotted before and compared after).

use super::validate;
use crate::copy::{temp, Copier};
use crate::protocol::{DestDir, RelPath, RootFds, Task, TaskKind, Time, ToWorker, WorkerInit};
use ipc_channel::ipc::IpcMessage;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

const RUN_ID: u64 = 7;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, no dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every file under `root` with its bytes (symlinks as their target).
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let key = p.as_os_str().as_bytes().to_vec();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(p);
                out.insert(key, b"<dir>".to_vec());
            } else if ft.is_symlink() {
                let t = fs::read_link(&p).expect("readlink");
                out.insert(key, t.as_os_str().as_bytes().to_vec());
            } else {
                out.insert(key, fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn rel(r: &mut Rng) -> RelPath {
    let big = temp::big(RUN_ID, 1);
    let parts: [&[u8]; 14] = [
        b"a",
        b"b",
        b"c",
        b"big",
        b"..",
        b".",
        b"",
        b"/",
        b"x\xff",
        &big,
        b"../outside/v",
        b"outside",
        b"/tmp",
        b"\0",
    ];
    let mut p = Vec::new();
    if r.below(8) == 0 {
        p.push(b'/');
    }
    for i in 0..1 + r.below(4) {
        if i > 0 {
            p.push(b'/');
        }
        p.extend_from_slice(parts[r.below(parts.len())]);
    }
    RelPath(p)
}

/// A random task; half the chunks name the real large file with the size
/// and mtime the walk would have seen, so they get as far as the temp.
fn task(r: &mut Rng, big_mtime: Time) -> Task {
    let kind = match r.below(5) {
        0 => TaskKind::File {
            size: r.next() % 10_000,
        },
        1 => TaskKind::Symlink,
        2 => TaskKind::Fifo,
        3 => TaskKind::Device,
        _ => TaskKind::Chunk {
            offset: r.next() % 20_000,
            len: r.next() % 20_000,
            file_size: if r.below(2) == 0 {
                30_000
            } else {
                r.next() % 40_000
            },
            mtime: big_mtime,
            temp: if r.below(2) == 0 {
                RelPath(temp::big(RUN_ID, r.next() % 3))
            } else {
                rel(r)
            },
        },
    };
    let chunk = matches!(kind, TaskKind::Chunk { .. });
    Task {
        rel: if chunk && r.below(2) == 0 {
            RelPath(b"big".to_vec())
        } else {
            rel(r)
        },
        kind,
        dir: if r.below(2) == 0 {
            DestDir::Created
        } else {
            DestDir::Existing
        },
        // The fuzzed copier has no basis directories: any index is one it
        // does not have.
        basis: (r.below(4) == 0).then(|| crate::protocol::FromBasis {
            index: r.below(3) as u16,
            size: r.next() % 10_000,
            mtime: big_mtime,
        }),
    }
}

fn open_dir(p: &Path) -> std::os::fd::OwnedFd {
    std::os::fd::OwnedFd::from(fs::File::open(p).expect("open dir"))
}

/// What a worker does with one decoded message.
fn handle(copier: &mut Copier, msg: ToWorker) {
    if let ToWorker::Batch { tasks, .. } = msg {
        for t in &tasks {
            if validate::task(t, RUN_ID).is_ok() {
                let _ = super::translate::run(copier, t, &mut |_| true);
            }
        }
    }
}

#[test]
fn fuzzed_messages_never_panic_nor_write_outside_the_destination() {
    let base = tempfile::tempdir().expect("tempdir");
    let (src, dst, outside) = (
        base.path().join("src"),
        base.path().join("dst"),
        base.path().join("outside"),
    );
    for d in [&src, &dst, &outside, &src.join("b")] {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(src.join("a"), b"alpha").expect("write");
    fs::write(src.join("b/c"), b"gamma").expect("write");
    fs::write(src.join("big"), vec![3u8; 30_000]).expect("write");
    std::os::unix::fs::symlink("../outside/v", src.join("c")).expect("symlink");
    fs::write(outside.join("v"), b"sentinel").expect("write");
    let dst_prefix = [dst.as_os_str().as_encoded_bytes(), b"/"].concat();
    let beside_dst = || -> Vec<Vec<u8>> {
        snapshot(base.path())
            .into_keys()
            .filter(|k| !k.starts_with(&dst_prefix))
            .collect()
    };
    let before = (snapshot(&src), snapshot(&outside), beside_dst());

    let init = WorkerInit {
        worker: 0,
        roots: RootFds::default(),
        bases: Vec::new(),
        copy: crate::copy::Options {
            run_id: RUN_ID,
            ..Default::default()
        },
        bwlimit: 0,
        log_level: log::LevelFilter::Warn,
    };
    let mut copier = Copier::new(open_dir(&src), open_dir(&dst), init.copy);
    let mut r = Rng(0x5eed_1234_abcd_ef01);
    let st = rustix::fs::stat(src.join("big")).expect("stat");
    let big_mtime = Time {
        secs: st.st_mtime,
        nanos: st.st_mtime_nsec as u32,
    };
    // A temp like the one the walker would have made, for chunks to fill.
    {
        use std::os::unix::ffi::OsStrExt;
        let name = temp::big(RUN_ID, 1);
        fs::write(dst.join(std::ffi::OsStr::from_bytes(&name)), b"").expect("temp");
    }
    for _ in 0..3000 {
        let tasks = (0..1 + r.below(8))
            .map(|_| task(&mut r, big_mtime))
            .collect();
        let msg = ToWorker::Batch {
            id: r.next(),
            tasks,
        };
        // Mutate the wire form too: flipped, dropped and inserted bytes.
        let mut wire = postcard::to_stdvec(&msg).expect("encode");
        handle(&mut copier, msg);
        for _ in 0..r.below(4) {
            if wire.is_empty() {
                break;
            }
            let at = r.below(wire.len());
            match r.below(3) {
                0 => wire[at] ^= 1 << r.below(8),
                1 => {
                    wire.remove(at);
                }
                _ => wire.insert(at, r.next() as u8),
            }
        }
        if let Ok(m) = IpcMessage::from_data(wire).to::<ToWorker>() {
            handle(&mut copier, m);
        }
    }
    for _ in 0..100_000 {
        let raw: Vec<u8> = (0..r.below(48)).map(|_| r.next() as u8).collect();
        if let Ok(m) = IpcMessage::from_data(raw).to::<ToWorker>() {
            handle(&mut copier, m);
        }
    }
    // Plain `assert!`: the snapshots are too large to print.
    assert!(snapshot(&src) == before.0, "the source was modified");
    assert!(
        snapshot(&outside) == before.1,
        "a write escaped the destination"
    );
    assert!(
        beside_dst() == before.2,
        "new entries outside the destination"
    );
    assert!(
        !snapshot(&dst).is_empty(),
        "the fuzzer never reached the copy code"
    );
}
