//! pcopy: a parallel, crash-isolated, resumable directory tree copier.
//!
//! One binary, two modes. The supervisor (`supervisor`) walks the source,
//! creates directories and dispatches batches of entries over ipc-channel to
//! N re-spawned copies of itself in `--worker` mode (`worker`), which place
//! each entry atomically (`copy`) and report outcomes (`protocol`).

pub mod cli;
mod cluster;
pub use cluster::Cluster;
pub mod config;
pub mod copy;
pub mod error;
mod failpoint;
mod filter;
mod logging;
mod manpage;
mod progress;
pub mod protocol;
pub mod report;
mod stats;
pub mod supervisor;
mod util;
mod work;
pub mod worker;
