//! Power cuts: a run that did not end cleanly is checked by the next one.
//!
//! A copy is placed atomically, but after a power cut a file can stand at
//! its final name with the source's size and times and lost data: the
//! name, size and times are journaled metadata, committed within seconds,
//! while the data may still have been in the page cache. The next run's
//! size+mtime check would call it current. So every run that writes keeps
//! a marker in the destination root (`copy::temp::run_marker`) from its
//! start until, at its end, one `syncfs` has made everything it wrote
//! durable; only then is the marker removed.
//!
//! A run that finds another run's marker knows that run did not end
//! cleanly. The marker holds the moment T (the destination filesystem's
//! own clock: the marker's ctime when it was written) since which nothing
//! is known to be durable, and the machine's boot id. Written on this boot,
//! the dead run's data is still in the page cache: nothing is lost, and
//! only T is carried on. Written on another boot (the machine restarted:
//! a power cut, a kernel crash), every destination entry whose ctime is T
//! or later is unverified, and copied again instead of quick-checked
//! (`DestDir::Unverified`). Writing data, setting times and placing a name
//! all set the ctime, so nothing written after T escapes.
//!
//! A run's own marker carries the earliest T it found, so a run cut in
//! turn passes the obligation on. Unless entries are still to be checked,
//! a checkpoint (`syncfs`, then T moved to the moment before it) every
//! `CHECKPOINT` bounds how much a cut leaves to copy again.
//!
//! Not covered: a destination on another machine (NFS) that lost power
//! while this one stayed up (the boot id is this machine's).

use crate::copy::temp;
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How often a long run makes what it wrote durable.
pub const CHECKPOINT: Duration = Duration::from_secs(60);

/// A moment on the destination filesystem's clock (seconds, nanoseconds).
pub type Moment = (i64, i64);

/// This run's marker in the destination root.
pub struct Marker {
    fd: OwnedFd,
    name: Vec<u8>,
    /// An earlier run did not end cleanly and the machine has restarted
    /// since (a power cut or a crash of the kernel): what changed at or
    /// after this moment may have lost its data, and is copied again.
    pub unverified: Option<Moment>,
    /// The markers of earlier runs: removed with this one when this run
    /// ends cleanly having walked the whole tree (their obligation is then
    /// met), kept otherwise (`keep_earlier`).
    earlier: Vec<Vec<u8>>,
}

/// What a marker says: since when nothing is known to be durable, and on
/// which boot of the machine it was written.
struct Said {
    since: Moment,
    boot: String,
}

fn ctime(fd: &OwnedFd) -> io::Result<Moment> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_ctime, st.st_ctime_nsec as i64))
}

/// This boot of the machine (the kernel's random boot id): a run that
/// died on the same boot left its data in the page cache, not lost.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Read a marker: "SECS NANOS\nBOOT-ID\n". An empty or torn one (cut
/// while it was written) dates from its own creation, on an unknown boot.
fn read_marker(root: &OwnedFd, name: &[u8]) -> Option<Said> {
    let fd = rustix::fs::openat(
        root,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 128];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    let mut words = text.split_whitespace();
    let num = |w: Option<&str>| w.and_then(|w| w.parse::<i64>().ok());
    let written = match (num(words.next()), num(words.next())) {
        (Some(s), Some(ns)) => Some((s, ns)),
        _ => None,
    };
    let made = ctime(&fd).ok();
    Some(Said {
        since: [written, made].into_iter().flatten().min()?,
        boot: words.next().unwrap_or("").to_string(),
    })
}

fn write_marker(fd: &OwnedFd, since: Moment, boot: &str) -> io::Result<()> {
    let text = format!("{} {}\n{boot}\n", since.0, since.1);
    rustix::fs::ftruncate(fd, 0)?;
    rustix::io::pwrite(fd, text.as_bytes(), 0)?;
    rustix::fs::fdatasync(fd)?;
    Ok(())
}

fn min(a: Option<Moment>, b: Moment) -> Moment {
    a.map_or(b, |a| a.min(b))
}

impl Marker {
    /// Read what earlier runs left, then write this run's marker and make
    /// it durable (the file and its name) before anything else is written.
    /// The root keeps its times (the finish pass sets them last).
    pub fn start(root: &OwnedFd, run_id: u64) -> io::Result<Marker> {
        let boot = boot_id();
        // Since when an earlier run's writes may not be durable (carried
        // on), and since when they may be lost (checked by this run).
        let (mut pending, mut unverified) = (None, None);
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::read_from(root)? {
            let ent = ent?;
            let name = ent.file_name().to_bytes();
            let earlier =
                temp::parse(name).is_some_and(|t| t.kind == temp::Kind::Run && t.run_id != run_id);
            if earlier {
                names.push(name.to_vec());
            }
            if let Some(said) = earlier.then(|| read_marker(root, name)).flatten() {
                pending = Some(min(pending, said.since));
                if boot.is_empty() || said.boot != boot {
                    unverified = Some(min(unverified, said.since));
                }
            }
        }
        let times = rustix::fs::fstat(root)?;
        let name = temp::run_marker(run_id);
        let fd = writable(root, &times, || {
            rustix::fs::openat(
                root,
                &name[..],
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        write_marker(&fd, min(pending, ctime(&fd)?), &boot)?;
        rustix::fs::fsync(root)?;
        restore_times(root, &times);
        Ok(Marker {
            fd,
            name,
            unverified,
            earlier: names,
        })
    }

    /// This run does not walk the whole tree (`--files-from`): what the
    /// earlier markers ask for is not met by it, so they stay.
    pub fn keep_earlier(&mut self) {
        self.earlier.clear();
    }

    /// Make everything written so far durable and move this marker's
    /// moment to just before that; not while entries an earlier run may
    /// have lost are still to be checked (the walk may not have reached
    /// them yet).
    pub fn checkpoint(&self, root: &OwnedFd) -> io::Result<()> {
        if self.unverified.is_some() {
            return Ok(());
        }
        // Touching the marker reads the destination's clock.
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        rustix::fs::futimens(
            &self.fd,
            &Timestamps {
                last_access: now,
                last_modification: now,
            },
        )?;
        let before = ctime(&self.fd)?;
        rustix::fs::syncfs(root)?;
        write_marker(&self.fd, before, &boot_id())
    }

    /// The run ended (every placement complete): a detached child process
    /// makes the destination durable (`syncfs`, which waits for the
    /// write-back the kernel does anyway) and then removes the marker, so
    /// the run itself does not wait. A power cut before that leaves the
    /// marker for the next run, which is the guarantee; the child holds no
    /// lock, so the next run may start at once.
    /// Long because everything after fork must be prepared before it and only async-signal-safe calls may follow, so it stays one audited block.
    pub fn finish_detached(self, root: &OwnedFd) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // Its own open file description: not the one holding the flock.
        let fd = rustix::fs::openat(
            root,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let name = std::ffi::CString::new(self.name.clone()).map_err(io::Error::other)?;
        let earlier: Vec<std::ffi::CString> = self
            .earlier
            .iter()
            .filter_map(|n| std::ffi::CString::new(n.clone()).ok())
            .collect();
        let raw = fd.as_raw_fd();
        // SAFETY: after fork the child only makes async-signal-safe system
        // calls on memory prepared before the fork (no allocation, no lock),
        // then `_exit`s.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                for f in 0..4096 {
                    if f != raw {
                        libc::close(f);
                    }
                }
                libc::setsid();
                // Only while no run holds the destination: times read
                // during a run that started while this one synced would be
                // its in-between ones, put back after it. So wait for the
                // lock (a detached child waits harmlessly; giving up left
                // a marker behind when two children met at the lock). A
                // run that ended meanwhile may have removed this marker
                // as an earlier one: then nothing is put back.
                if libc::syncfs(raw) == 0 && libc::flock(raw, libc::LOCK_EX) == 0 {
                    let mut st: libc::stat = std::mem::zeroed();
                    let have = libc::fstat(raw, &mut st) == 0;
                    for n in &earlier {
                        libc::unlinkat(raw, n.as_ptr(), 0);
                    }
                    let mut gone = libc::unlinkat(raw, name.as_ptr(), 0) == 0;
                    if !gone && have && st.st_mode & 0o200 == 0 {
                        // A read-only root (see `writable`).
                        let mode = st.st_mode & 0o7777;
                        if libc::fchmod(raw, mode | 0o200) == 0 {
                            gone = libc::unlinkat(raw, name.as_ptr(), 0) == 0;
                            libc::fchmod(raw, mode);
                        }
                    }
                    if gone && have {
                        let ts = [
                            libc::timespec {
                                tv_sec: st.st_atime,
                                tv_nsec: st.st_atime_nsec,
                            },
                            libc::timespec {
                                tv_sec: st.st_mtime,
                                tv_nsec: st.st_mtime_nsec,
                            },
                        ];
                        libc::futimens(raw, ts.as_ptr());
                    }
                }
                libc::_exit(0)
            },
            // Not waited for: it outlives this process and init reaps it.
            _ => Ok(()),
        }
    }

    /// The run ended (every placement complete): make it durable, then
    /// remove the marker, before returning (`--fsync`, MPI). Failing that,
    /// the marker stays and the next run checks again, which is only
    /// slower.
    pub fn finish(self, root: &OwnedFd) -> io::Result<()> {
        rustix::fs::syncfs(root)?;
        let times = rustix::fs::fstat(root)?;
        for n in &self.earlier {
            let _ = writable(root, &times, || {
                rustix::fs::unlinkat(root, &n[..], AtFlags::empty())
            });
        }
        writable(root, &times, || {
            rustix::fs::unlinkat(root, &self.name[..], AtFlags::empty())
        })?;
        restore_times(root, &times);
        Ok(())
    }

    /// The moment this marker holds, for tests.
    #[cfg(test)]
    fn moment(&self, root: &OwnedFd) -> Moment {
        read_marker(root, &self.name).expect("marker").since
    }
}

/// Run `op` on the destination root; if the root's mode refuses it (a
/// read-only root mirrors a read-only source, and we are not root), with
/// the owner's write bit added for that moment, as rsync does to delete
/// in such a directory.
fn writable<T>(
    root: &OwnedFd,
    st: &rustix::fs::Stat,
    op: impl Fn() -> rustix::io::Result<T>,
) -> io::Result<T> {
    match op() {
        Err(rustix::io::Errno::ACCESS) if st.st_mode & 0o200 == 0 => {
            let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
            rustix::fs::fchmod(root, mode | Mode::WUSR)?;
            let r = op();
            let _ = rustix::fs::fchmod(root, mode);
            Ok(r?)
        }
        r => Ok(r?),
    }
}

/// Put the root's access and modification times back (creating or
/// removing the marker changed them); best effort.
fn restore_times(root: &OwnedFd, st: &rustix::fs::Stat) {
    let _ = rustix::fs::futimens(
        root,
        &Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        },
    );
}

/// The marker, checkpointed every `CHECKPOINT` by a thread of its own
/// while the copy runs.
pub struct Checkpoints {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<Marker>>,
}

impl Checkpoints {
    pub fn start(marker: Marker, root: OwnedFd) -> Self {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let (s, timeout) = cv
                        .wait_timeout(stopped, CHECKPOINT)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = s;
                    if *stopped {
                        return marker;
                    }
                    if timeout.timed_out() {
                        if let Err(e) = marker.checkpoint(&root) {
                            log::warn!("checkpoint (syncfs of the destination): {e}");
                        }
                    }
                }
            })
            .ok();
        Checkpoints { stop, thread }
    }

    fn signal(&self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// Stop checkpointing; the marker back (None if the thread could not
    /// be started or died: the marker then stays for the next run).
    pub fn stop(mut self) -> Option<Marker> {
        self.signal();
        self.thread.take()?.join().ok()
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the entry with status `st` changed at or after `since`.
pub fn unverified(st: &rustix::fs::Stat, since: Moment) -> bool {
    (st.st_ctime, st.st_ctime_nsec as i64) >= since
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(p: &std::path::Path) -> OwnedFd {
        OwnedFd::from(std::fs::File::open(p).unwrap())
    }

    /// A marker as a run on another boot left it.
    fn other_boot(root: &std::path::Path, run_id: u64) {
        let name = String::from_utf8(temp::run_marker(run_id)).unwrap();
        std::fs::write(root.join(name), "1 0\nanother-boot\n").unwrap();
    }

    #[test]
    fn a_run_dead_on_this_boot_passes_its_moment_on_and_loses_nothing() {
        let t = tempfile::tempdir().unwrap();
        let r = root(t.path());
        let first = Marker::start(&r, 1).unwrap();
        assert_eq!(first.unverified, None);
        let t1 = first.moment(&r);
        drop(first); // the process died: the marker stays
        std::thread::sleep(Duration::from_millis(20));
        let second = Marker::start(&r, 2).unwrap();
        assert_eq!(second.unverified, None, "same boot: the page cache kept it");
        assert_eq!(second.moment(&r), t1, "but durability is still owed");
        second.finish(&r).unwrap();
        let left: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .filter_map(|e| temp::parse(e.unwrap().file_name().as_encoded_bytes()))
            .map(|t| t.run_id)
            .collect();
        assert_eq!(
            left,
            Vec::<u64>::new(),
            "a clean end removes its own and the earlier ones"
        );
    }

    #[test]
    fn a_partial_run_leaves_the_earlier_markers() {
        let t = tempfile::tempdir().unwrap();
        let r = root(t.path());
        other_boot(t.path(), 1);
        let mut m = Marker::start(&r, 2).unwrap();
        m.keep_earlier();
        m.finish(&r).unwrap();
        let again = Marker::start(&r, 3).unwrap();
        assert_eq!(
            again.unverified,
            Some((1, 0)),
            "still owed after a partial run"
        );
    }

    #[test]
    fn a_run_cut_on_another_boot_leaves_entries_to_check_and_no_checkpoint() {
        let t = tempfile::tempdir().unwrap();
        let r = root(t.path());
        other_boot(t.path(), 1);
        let m = Marker::start(&r, 2).unwrap();
        assert_eq!(m.unverified, Some((1, 0)));
        assert_eq!(m.moment(&r), (1, 0), "carried on");
        m.checkpoint(&r).unwrap();
        assert_eq!(m.moment(&r), (1, 0), "no checkpoint past entries to check");
        drop(m);
        let again = Marker::start(&r, 3).unwrap();
        assert_eq!(
            again.unverified,
            Some((1, 0)),
            "still owed after a second cut"
        );
    }

    #[test]
    fn a_checkpoint_moves_the_moment_forward() {
        let t = tempfile::tempdir().unwrap();
        let r = root(t.path());
        let m = Marker::start(&r, 7).unwrap();
        let t0 = m.moment(&r);
        std::thread::sleep(Duration::from_millis(20));
        m.checkpoint(&r).unwrap();
        assert!(m.moment(&r) > t0);
        let f = std::fs::File::create(t.path().join("late")).unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert!(unverified(&st, m.moment(&r)));
    }
}
