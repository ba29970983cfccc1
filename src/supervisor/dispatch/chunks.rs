//! Large files split into chunks copied by several workers (the dispatch's
//! chunk registry). The walker creates one named temp per file, pre-sized,
//! and describes it (`work::LargeFile`) in the same batch as its chunks, so
//! no chunk can be reported before its file is known. The registry counts
//! the chunks in; when the last one arrives the dispatcher has the copier
//! place the file (`Copier::place_chunked`: the same checks and finish as a
//! whole file). At the end of a run the registry must be empty: a file left
//! in it is an error that names it.
//!
//! Under MPI a chunk may be copied by another rank, and its outcome may come
//! back before this rank's dispatcher has taken the batch that registers the
//! file (the registration stays here when the chunks travel): such an
//! outcome is held and counted when the file is registered; one still held
//! at the end is an error like a file left registered. Chunks of other
//! ranks' files copied here are routed back to their rank (`foreign`).

use crate::copy::{Copier, CopyError, Stamp};
use crate::protocol::{DestDir, ErrorKind, Outcome, Task, TaskKind};
use crate::work::LargeFile;
use std::collections::HashMap;

/// One large file in flight: the walk's description and what its chunks
/// came to so far.
#[derive(Debug)]
struct Big {
    temp: Vec<u8>,
    /// The source version the walk saw.
    file: Stamp,
    /// Whether this run created its destination directory (kept for the
    /// whole-file retry when the source changes mid-copy).
    dir: DestDir,
    parts_left: u32,
    /// First chunk failure, reported once for the whole file.
    failed: Option<String>,
    /// A chunk saw the source change: copy the file again whole.
    changed: bool,
    /// A chunk's data was copied, not cloned (the file counts as copied).
    copied_bytes: bool,
}

/// What finishing a file whose chunks are all in came to.
pub enum Finished {
    /// Renamed into place.
    Placed,
    /// The source changed since the walk: copy it again as a whole file.
    Changed,
    Failed(String),
}

/// What one chunk's outcome did to its file.
enum Counted {
    /// More chunks to come.
    Pending,
    /// That was the last: the file, for `finish`.
    Complete(Big),
    /// No such file registered (a bug: reported, never dropped silently).
    Unknown,
}

#[derive(Default)]
struct Registry {
    files: HashMap<Vec<u8>, Big>,
    /// Outcomes of chunks of files not registered yet (MPI), by file.
    early: HashMap<Vec<u8>, Vec<(Task, Outcome)>>,
}

impl Registry {
    /// Register a file; outcomes held for it are returned, to be counted now.
    fn add(&mut self, l: LargeFile) -> Vec<(Task, Outcome)> {
        let held = self.early.remove(&l.rel).unwrap_or_default();
        let big = Big {
            temp: l.temp,
            file: l.file,
            dir: l.dir,
            parts_left: l.parts,
            failed: None,
            changed: false,
            copied_bytes: false,
        };
        self.files.insert(l.rel, big);
        held
    }

    /// Keep the outcome of a chunk whose file is not registered yet.
    fn hold(&mut self, t: Task, o: Outcome) {
        self.early.entry(t.rel.0.clone()).or_default().push((t, o));
    }

    /// Nothing registered or held.
    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.early.is_empty()
    }

    /// Outcomes still held at the end: their files were never registered.
    fn drain_held(&mut self) -> Vec<Vec<u8>> {
        self.early.drain().map(|(rel, _)| rel).collect()
    }

    /// Count one chunk's outcome.
    fn chunk_done(&mut self, rel: &[u8], o: &Outcome) -> Counted {
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
    fn drain(&mut self) -> Vec<(Vec<u8>, Big)> {
        self.files.drain().collect()
    }
}

/// All chunks of `rel` are in: place it, or say why not. The temp is gone
/// afterwards unless the file was placed.
fn finish(copier: &mut Copier, rel: &[u8], big: &Big) -> Finished {
    if let Some(msg) = &big.failed {
        copier.discard(rel, &big.temp);
        return Finished::Failed(msg.clone());
    }
    if big.changed {
        copier.discard(rel, &big.temp);
        return Finished::Changed;
    }
    match copier.place_chunked(rel, &big.temp, big.file) {
        Ok(()) => Finished::Placed,
        Err(CopyError::Changed(_)) => Finished::Changed,
        Err(e) => Finished::Failed(e.to_string()),
    }
}

/// What settling a chunk's outcome came to.
pub enum Settled {
    /// Nothing to count yet: more chunks to come, or its file is not
    /// registered yet (held until it is).
    Later,
    /// The file's last chunk: what placing it came to, whether any of its
    /// data was copied (not cloned), and, when it changed, the whole-file
    /// task that copies it again.
    File {
        placed: Finished,
        copied_bytes: bool,
        again: Option<Task>,
    },
}

/// The dispatcher's chunk state: this rank's large files in flight, and
/// where the chunks of other ranks' files queued here came from.
pub struct Chunks {
    registry: Registry,
    /// Chunks of other ranks' large files queued here: (file, offset) to
    /// the rank that registered the file.
    foreign: HashMap<(Vec<u8>, u64), u32>,
    /// Places large files once all their chunks are in (same roots).
    finisher: Copier,
}

impl Chunks {
    pub fn new(finisher: Copier) -> Self {
        Chunks {
            registry: Registry::default(),
            foreign: HashMap::new(),
            finisher,
        }
    }

    /// Take a batch's large files and, for another rank's batch
    /// (`from`), note where its chunks go back to. Registered before any
    /// of their chunks can be sent; the outcomes that came back first
    /// (MPI) are returned, to be settled now.
    pub fn register(
        &mut self,
        large: Vec<LargeFile>,
        from: Option<u32>,
        tasks: &[Task],
    ) -> Vec<(Task, Outcome)> {
        let mut early = Vec::new();
        for l in large {
            early.extend(self.registry.add(l));
        }
        if let Some(owner) = from {
            for t in tasks {
                if let TaskKind::Chunk { offset, .. } = t.kind {
                    self.foreign.insert((t.rel.0.clone(), offset), owner);
                }
            }
        }
        early
    }

    /// The rank whose file this chunk belongs to, when that is not this
    /// one (it counts the chunk in and places the file).
    pub fn owner(&mut self, t: &Task) -> Option<u32> {
        let TaskKind::Chunk { offset, .. } = t.kind else {
            return None;
        };
        self.foreign.remove(&(t.rel.0.clone(), offset))
    }

    /// Count a chunk of one of this rank's large files in; when it was the
    /// last one, place the file (or report it, or give the whole-file task
    /// that copies it again if it changed).
    pub fn settle(&mut self, t: &Task, o: Outcome) -> Settled {
        let TaskKind::Chunk { file_size, .. } = t.kind else {
            return Settled::Later;
        };
        let big = match self.registry.chunk_done(&t.rel.0, &o) {
            Counted::Complete(big) => big,
            Counted::Pending => return Settled::Later,
            Counted::Unknown => {
                // Its registration has not been taken yet (MPI): later.
                self.registry.hold(t.clone(), o);
                return Settled::Later;
            }
        };
        let placed = finish(&mut self.finisher, &t.rel.0, &big);
        let again = matches!(placed, Finished::Changed).then(|| Task {
            rel: t.rel.clone(),
            kind: TaskKind::File { size: file_size },
            dir: big.dir,
            basis: None,
        });
        Settled::File {
            placed,
            copied_bytes: big.copied_bytes,
            again,
        }
    }

    /// Nothing registered or held.
    pub fn is_empty(&self) -> bool {
        self.registry.is_empty()
    }

    /// The run is over: each file with outcomes held but never
    /// registered, then each file still registered (its temp removed
    /// first), goes to `report` with why it was not placed.
    pub fn left(&mut self, mut report: impl FnMut(&[u8], String)) {
        for rel in self.registry.drain_held() {
            let msg = "internal error: a chunk of a large file that was never registered; \
                       the file was not placed";
            report(&rel, msg.to_string());
        }
        for (rel, big) in self.registry.drain() {
            self.finisher.discard(&rel, &big.temp);
            let msg = format!(
                "internal error: large file left unplaced ({} of its chunks never reported)",
                big.parts_left
            );
            report(&rel, msg);
        }
    }
}
