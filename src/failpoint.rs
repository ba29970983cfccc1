//! Fault injection for tests (the `fail` crate, compiled in only with the
//! `failpoints` feature). Besides fail's own actions (`sleep(ms)`, `pause`,
//! `panic`), `return(ACTION[:PATTERN])` performs a real fault when the entry's
//! path contains PATTERN (or always, without one):
//! `kill` (SIGKILL self), `segv` (a real null-pointer write), `hang` (sleep
//! forever, like stuck I/O). `kill-once`/`segv-once` act in one process only.

#[cfg(feature = "failpoints")]
pub fn hit(point: &str, rel: &[u8]) {
    let Some(action) = race_action(point, rel) else {
        return;
    };
    // `ACTION-once`: only the first process to get here acts (a marker file
    // named by PCOPY_FAULT_ONCE makes "crash once, then recover" testable).
    let action = match action.strip_suffix("-once") {
        Some(a) => {
            let Some(marker) = std::env::var_os("PCOPY_FAULT_ONCE") else {
                return;
            };
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(marker);
            if created.is_err() {
                return;
            }
            a
        }
        None => action.as_str(),
    };
    match action {
        "kill" => {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        "segv" => {
            // SAFETY: deliberately not safe: a real fault for crash tests.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
        }
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        _ => {}
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_point: &str, _rel: &[u8]) {}

/// Races on the source entry just before it is opened:
/// `return(swap:PATTERN)` replaces it with a symlink to /etc/passwd (the
/// classic TOCTOU attack); `return(vanish:PATTERN)` deletes it.
#[cfg(feature = "failpoints")]
pub fn swap_hook(point: &str, dir: std::os::fd::BorrowedFd, name: &[u8]) {
    match race_action(point, name).as_deref() {
        Some("swap") => {
            let mut moved = name.to_vec();
            moved.extend_from_slice(b".orig");
            let _ = rustix::fs::renameat(dir, name, dir, &moved[..]);
            let _ = rustix::fs::symlinkat("/etc/passwd", dir, name);
        }
        Some("vanish") => {
            let _ = rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty());
        }
        _ => {}
    }
}

/// `return(mutate:PATTERN)`: append a byte to the source after its data was
/// copied (a file growing while it is read); `return(rewrite:PATTERN)`:
/// also change its first byte in place (a file rewritten while read).
#[cfg(feature = "failpoints")]
pub fn mutate_hook(point: &str, src: std::os::fd::BorrowedFd, name: &[u8]) {
    use std::os::fd::AsRawFd;
    let action = race_action(point, name);
    if !matches!(action.as_deref(), Some("mutate" | "rewrite")) {
        return;
    }
    let path = format!("/proc/self/fd/{}", src.as_raw_fd());
    if action.as_deref() == Some("rewrite") {
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            let mut b = [0u8; 1];
            if rustix::io::pread(&f, &mut b, 0).is_ok() {
                b[0] ^= 0x20;
                let _ = rustix::io::pwrite(&f, &b, 0);
            }
        }
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = std::io::Write::write_all(&mut f, b"+");
    }
}

/// The `return(ACTION:PATTERN)` action of `point`, when `rel` contains PATTERN.
#[cfg(feature = "failpoints")]
fn race_action(point: &str, rel: &[u8]) -> Option<String> {
    let arg = fail::eval(point, |a| a.unwrap_or_default())?;
    let (action, pattern) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
    let hit = pattern.is_empty() || rel.windows(pattern.len()).any(|w| w == pattern.as_bytes());
    hit.then(|| action.to_string())
}

/// `return(corrupt:PATTERN)`: flip the first byte of the written copy, to
/// prove `--verify` catches it.
#[cfg(feature = "failpoints")]
pub fn corrupt_hook(point: &str, out: std::os::fd::BorrowedFd, name: &[u8]) {
    if race_action(point, name).as_deref() == Some("corrupt") {
        let mut b = [0u8; 1];
        if rustix::io::pread(out, &mut b, 0).is_ok() {
            b[0] ^= 0xff;
            let _ = rustix::io::pwrite(out, &b, 0);
        }
    }
}

/// `return(drop:PATTERN)`: true when the caller should lose what it holds
/// for `rel` (e.g. the supervisor dropping a chunk's outcome, to prove a
/// lost outcome cannot end in a silent exit 0).
#[cfg(feature = "failpoints")]
pub fn drop_hook(point: &str, rel: &[u8]) -> bool {
    race_action(point, rel).as_deref() == Some("drop")
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn drop_hook(_point: &str, _rel: &[u8]) -> bool {
    false
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn corrupt_hook(_point: &str, _out: std::os::fd::BorrowedFd, _name: &[u8]) {}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn swap_hook(_point: &str, _dir: std::os::fd::BorrowedFd, _name: &[u8]) {}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn mutate_hook(_point: &str, _src: std::os::fd::BorrowedFd, _name: &[u8]) {}

/// Read `FAILPOINTS` from the environment (no-op without the feature).
pub fn setup() {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
}
