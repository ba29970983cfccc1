//! The worker's logger: every record goes up to the supervisor as a `Log`
//! message, so only the supervisor writes the log and lines never
//! interleave across processes.

use crate::protocol::FromWorker;
use ipc_channel::ipc::IpcSender;
use log::{LevelFilter, Log, Metadata, Record};

/// Worker-side logger: forwards each record to the supervisor.
struct Forwarder {
    tx: IpcSender<FromWorker>,
}

impl Log for Forwarder {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            let _ = self.tx.send(FromWorker::Log {
                level: r.level(),
                msg: r.args().to_string(),
            });
        }
    }
    fn flush(&self) {}
}

/// Install the forwarder with the level the supervisor chose, so filtered
/// records are never serialized.
pub fn init_worker(tx: IpcSender<FromWorker>, level: LevelFilter) {
    if log::set_boxed_logger(Box::new(Forwarder { tx })).is_ok() {
        log::set_max_level(level);
    }
}
