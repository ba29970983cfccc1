//! SIGINT/SIGTERM: the first one asks for a graceful stop through the
//! protocol; a second one exits at once (130/143), as users expect of Ctrl-C.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Signals {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    pub fn install() -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this
            // delivery: only a second signal exits immediately.
            flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop))?;
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
