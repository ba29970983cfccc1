//! The stand-in for MPI in a build without the `mpi` feature: a type with
//! no values. `Cluster` holds `Option<Mpi>`, always `None` here, so its
//! MPI branches compile in every build, need no `cfg`, and are never taken.

use super::{DispatchSide, Peered};
use crate::error::{Error, Result};
use crate::work::{Batch, Jobs};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

pub enum Mpi {}

/// `--mpi` without MPI compiled in: a usage error that says how to build it.
pub fn init() -> Result<Option<Mpi>> {
    Err(Error::Usage(
        "--mpi: this pcopy was built without MPI support (cargo build --release --features mpi; see docs/mpi.md)".into(),
    ))
}

impl Mpi {
    pub fn rank(&self) -> u32 {
        match *self {}
    }
    pub fn size(&self) -> u32 {
        match *self {}
    }
    pub fn end_job(&self, _: &str, _: i32) -> ! {
        match *self {}
    }
    pub fn barrier(&self) {
        match *self {}
    }
    pub fn max(&self, _: u64) -> u64 {
        match *self {}
    }
    pub fn gather_t<T>(&self, _: &T) -> Result<Vec<T>> {
        match *self {}
    }
    pub fn broadcast_t<T>(&self, _: &T) -> Result<T> {
        match *self {}
    }
    pub fn spawn_walk(
        &self,
        _: Arc<Jobs>,
        _: (Sender<Batch>, Receiver<Batch>),
        _: bool,
    ) -> (std::thread::JoinHandle<Peered>, DispatchSide) {
        match *self {}
    }
}

/// No MPI, no quarantine file: `Cluster` asks only under `--mpi`, which a
/// build without the feature refuses.
pub mod quarantine {
    use std::path::{Path, PathBuf};

    pub fn state_file(_: &Path) -> Option<PathBuf> {
        None
    }
    pub fn load(_: &Path) -> Vec<Vec<u8>> {
        Vec::new()
    }
    pub fn save(_: &Path, _: &[Vec<u8>], _: &[Vec<u8>]) -> std::io::Result<()> {
        Ok(())
    }
}
