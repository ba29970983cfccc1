//! SIGINT/SIGTERM/SIGHUP (a closed terminal or ssh session): the first one
//! asks for a graceful stop through the protocol, with a summary and exit
//! 128 + signal; a second one exits at once, as users expect of Ctrl-C,
//! erasing the progress line first if one is on the terminal.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A progress line is on stderr: the immediate exit erases it.
static ERASE_LINE: AtomicBool = AtomicBool::new(false);

/// Called when the progress line is first shown.
pub fn erase_line_on_exit() {
    ERASE_LINE.store(true, Ordering::SeqCst);
}

/// Whether `sig` is set to SIG_IGN (inherited across exec).
fn ignored(sig: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into `old`, a zeroed sigaction we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// The second signal: erase the progress line (`\r`, erase line) and exit.
/// Runs in the signal handler, so only async-signal-safe calls: an atomic
/// load, write(2) and _exit(2).
fn exit_now(sig: i32) {
    const ERASE: &[u8] = b"\r\x1b[2K";
    if ERASE_LINE.load(Ordering::SeqCst) {
        // SAFETY: write(2) on fd 2 with a valid static buffer and its length.
        let _ = unsafe { libc::write(2, ERASE.as_ptr().cast(), ERASE.len()) };
    }
    signal_hook::low_level::exit(128 + sig);
}

pub struct Signals {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    pub fn install() -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for sig in [SIGHUP, SIGINT, SIGTERM] {
            // A signal the caller set to be ignored stays ignored: `nohup
            // pcopy ... &` must outlive the session, and a shell runs a
            // background job with SIGINT ignored.
            if ignored(sig) {
                continue;
            }
            // Registered first, so it sees the flag as it was before this
            // delivery: only a second signal exits immediately.
            let asked = Arc::clone(&stop);
            // SAFETY: the action only does what exit_now allows in a
            // signal handler (atomic loads, write, _exit).
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    if asked.load(Ordering::SeqCst) {
                        exit_now(sig);
                    }
                })?;
            }
            flag::register_usize(sig, Arc::clone(&which), sig as usize)?;
            flag::register(sig, Arc::clone(&stop))?;
        }
        Ok(Signals { stop, which })
    }

    /// The signal that asked us to stop, if any.
    pub fn requested(&self) -> Option<i32> {
        if self.stop.load(Ordering::Relaxed) {
            Some(self.which.load(Ordering::Relaxed) as i32)
        } else {
            None
        }
    }
}
