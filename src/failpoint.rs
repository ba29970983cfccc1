//! Fault injection for tests (the `fail` crate, compiled in only with the
//! `failpoints` feature). Besides fail's own actions (`sleep(ms)`, `pause`,
//! `panic`), `return(ACTION[:PATTERN])` performs a real fault when the entry's
//! path contains PATTERN (or always, without one):
//! `kill` (SIGKILL self), `segv` (a real null-pointer write), `hang` (sleep
//! forever, like stuck I/O). `kill-once`/`segv-once` act in one process only.

#[cfg(feature = "failpoints")]
pub fn hit(point: &str, rel: &[u8]) {
    let Some(arg) = fail::eval(point, |a| a.unwrap_or_default()) else {
        return;
    };
    let (action, pattern) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
    if !pattern.is_empty() && !rel.windows(pattern.len()).any(|w| w == pattern.as_bytes()) {
        return;
    }
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
        None => action,
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

/// Read `FAILPOINTS` from the environment (no-op without the feature).
pub fn setup() {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
}
