//! Large files split into chunks copied by several workers. The walker
//! creates one named temp per file, pre-sized, and registers it in the same
//! batch as its chunks, so no chunk can be reported before its file is
//! known. This registry counts the chunks in; when the last one arrives the
//! dispatcher has the copier place the file (`Copier::place_chunked`: the
//! same checks and finish as a whole file). At the end of a run the registry
//! must be empty: a file left in it is an error that names it.
//!
//! Under MPI a chunk may be copied by another rank, and its outcome may come
//! back before this rank's dispatcher has taken the batch that registers the
//! file (the registration stays here when the chunks travel): such an
//! outcome is held and counted when the file is registered; one still held
//! at the end is an error like a file left registered.

use crate::copy::{Copier, CopyError, Stamp};
use crate::protocol::{DestDir, ErrorKind, Outcome, Task};
use std::collections::HashMap;

/// One large file in flight.
#[derive(Debug)]
pub struct Big {
    pub temp: Vec<u8>,
    /// The source version the walk saw.
    pub file: Stamp,
    /// Whether this run created its destination directory (kept for the
    /// whole-file retry when the source changes mid-copy).
    pub dir: DestDir,
    pub parts_left: u32,
    /// First chunk failure, reported once for the whole file.
    pub failed: Option<String>,
    /// A chunk saw the source change: copy the file again whole.
    pub changed: bool,
    /// A chunk's data was copied, not cloned (the file counts as copied).
    pub copied_bytes: bool,
}

/// What finishing a file whose chunks are all in came to.
pub enum Placed {
    Done,
    /// The source changed since the walk: copy it again as a whole file.
    Changed,
    Failed(String),
}

/// What one chunk's outcome did to its file.
pub enum Counted {
    /// More chunks to come.
    Pending,
    /// That was the last: the file, for `finish`.
    Complete(Big),
    /// No such file registered (a bug: reported, never dropped silently).
    Unknown,
}

#[derive(Default)]
pub struct Registry {
    files: HashMap<Vec<u8>, Big>,
    /// Outcomes of chunks of files not registered yet (MPI), by file.
    early: HashMap<Vec<u8>, Vec<(Task, Outcome)>>,
}

impl Registry {
    /// Register a file; outcomes held for it are returned, to be counted now.
    pub fn add(&mut self, rel: Vec<u8>, big: Big) -> Vec<(Task, Outcome)> {
        let held = self.early.remove(&rel).unwrap_or_default();
        self.files.insert(rel, big);
        held
    }

    /// Keep the outcome of a chunk whose file is not registered yet.
    pub fn hold(&mut self, t: Task, o: Outcome) {
        self.early.entry(t.rel.0.clone()).or_default().push((t, o));
    }

    /// Nothing registered or held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.early.is_empty()
    }

    /// Outcomes still held at the end: their files were never registered.
    pub fn drain_held(&mut self) -> Vec<Vec<u8>> {
        self.early.drain().map(|(rel, _)| rel).collect()
    }

    /// Count one chunk's outcome.
    pub fn chunk_done(&mut self, rel: &[u8], o: &Outcome) -> Counted {
        let Some(big) = self.files.get_mut(rel) else {
            return Counted::Unknown;
        };
        match o {
            Outcome::Failed {
                kind: ErrorKind::Changed,
                ..
            } => big.changed = true,
            Outcome::Failed { msg, .. } => {
                big.failed.get_or_insert_with(|| msg.clone());
            }
            Outcome::Copied { cloned: false, .. } => big.copied_bytes = true,
            _ => {}
        }
        big.parts_left = big.parts_left.saturating_sub(1);
        if big.parts_left > 0 {
            return Counted::Pending;
        }
        self.files
            .remove(rel)
            .map_or(Counted::Unknown, Counted::Complete)
    }

    /// Take every file still registered (the run is over: interrupted,
    /// out of space, or something was lost).
    pub fn drain(&mut self) -> Vec<(Vec<u8>, Big)> {
        self.files.drain().collect()
    }
}

/// All chunks of `rel` are in: place it, or say why not. The temp is gone
/// afterwards unless the file was placed.
pub fn finish(copier: &mut Copier, rel: &[u8], big: &Big) -> Placed {
    if let Some(msg) = &big.failed {
        copier.discard(rel, &big.temp);
        return Placed::Failed(msg.clone());
    }
    if big.changed {
        copier.discard(rel, &big.temp);
        return Placed::Changed;
    }
    match copier.place_chunked(rel, &big.temp, big.file) {
        Ok(()) => Placed::Done,
        Err(CopyError::Changed(_)) => Placed::Changed,
        Err(e) => Placed::Failed(e.to_string()),
    }
}
