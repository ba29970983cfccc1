//! The scheduler: where the next batch comes from. Tasks to retry (after a
//! worker died, or a chunked file changed) go before the walk's, and a
//! task that crashed a worker goes alone, so blame stays exact; after
//! `MAX_CRASHES` crashes it is quarantined.

use crate::protocol::Task;
use crate::work::Batch;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// A task during which this many workers died is quarantined.
pub const MAX_CRASHES: u32 = 3;

pub struct Scheduler {
    batches: Receiver<Batch>,
    /// A batch taken off `batches` while waiting for the first one with no
    /// worker started (there is nothing to select on then).
    held: Option<Batch>,
    retry: VecDeque<Task>,
    /// Workers that died on each entry (by source-relative name).
    crashes: HashMap<Vec<u8>, u32>,
    /// The walk closed its channel: no batch will come.
    pub walker_done: bool,
    next_id: u64,
    batch_files: usize,
}

impl Scheduler {
    pub fn new(batches: Receiver<Batch>, batch_files: usize) -> Self {
        Scheduler {
            batches,
            held: None,
            retry: VecDeque::new(),
            crashes: HashMap::new(),
            walker_done: false,
            next_id: 0,
            batch_files,
        }
    }

    /// Whether no batch is waiting, queued or held.
    pub fn no_batch(&self) -> bool {
        self.held.is_none() && self.batches.is_empty()
    }

    /// Whether anything is left to send.
    pub fn pending(&self) -> bool {
        !self.no_batch() || !self.retry.is_empty()
    }

    /// Nothing left to send, and none will come.
    pub fn exhausted(&self) -> bool {
        self.walker_done && self.retry.is_empty() && self.no_batch()
    }

    /// With no worker started there is nothing to select on: wait up to
    /// `timeout` for the walk's first batch.
    pub fn wait(&mut self, timeout: Duration) {
        match self.batches.recv_timeout(timeout) {
            Ok(b) => self.held = Some(b),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.walker_done = true,
        }
    }

    /// The next batch: retried tasks first (one alone when it crashed a
    /// worker, so blame stays exact), then the walk's.
    pub fn next(&mut self) -> Option<Batch> {
        if let Some(t) = self.retry.pop_front() {
            let mut tasks = vec![t];
            if !self.crashes.contains_key(&tasks[0].rel.0) {
                while tasks.len() < self.batch_files {
                    match self.retry.front() {
                        Some(n) if !self.crashes.contains_key(&n.rel.0) => {
                            tasks.extend(self.retry.pop_front())
                        }
                        _ => break,
                    }
                }
            }
            return Some(Batch {
                tasks,
                ..Batch::default()
            });
        }
        self.next_walked()
    }

    /// The walk's next batch (no retry).
    pub fn next_walked(&mut self) -> Option<Batch> {
        let next = match self.held.take() {
            Some(b) => Ok(b),
            None => self.batches.try_recv(),
        };
        match next {
            Ok(b) => Some(b),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.walker_done = true;
                None
            }
        }
    }

    /// A fresh batch id.
    pub fn batch_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Send these again, after what is already queued.
    pub fn retry(&mut self, tasks: impl IntoIterator<Item = Task>) {
        self.retry.extend(tasks);
    }

    /// Send these first (taken, then found no worker to go to).
    pub fn put_back(&mut self, tasks: Vec<Task>) {
        for t in tasks.into_iter().rev() {
            self.retry.push_front(t);
        }
    }

    /// A worker died on `t`: retry it alone, or, at `MAX_CRASHES`, give it
    /// back as quarantined.
    pub fn blame(&mut self, t: Task) -> Option<Task> {
        let n = self.crashes.entry(t.rel.0.clone()).or_insert(0);
        *n += 1;
        if *n >= MAX_CRASHES {
            return Some(t);
        }
        self.retry.push_back(t);
        None
    }

    /// Entries quarantined in this run (they crashed `MAX_CRASHES` workers).
    pub fn quarantined(&self) -> Vec<Vec<u8>> {
        let mut q: Vec<Vec<u8>> = self
            .crashes
            .iter()
            .filter(|(_, &n)| n >= MAX_CRASHES)
            .map(|(rel, _)| rel.clone())
            .collect();
        q.sort();
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DestDir, RelPath, TaskKind};

    fn task(name: &str) -> Task {
        Task {
            rel: RelPath(name.as_bytes().to_vec()),
            kind: TaskKind::File { size: 1 },
            dir: DestDir::Existing,
            basis: None,
        }
    }

    fn names(b: &Batch) -> Vec<&[u8]> {
        b.tasks.iter().map(|t| &t.rel.0[..]).collect()
    }

    /// Retries go before the walk's batches, batched up to the batch size;
    /// a task that crashed a worker goes alone (so the next crash blames
    /// exactly it), and after `MAX_CRASHES` it comes back quarantined.
    #[test]
    fn retries_first_a_culprit_alone_quarantined_at_the_third_crash() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut s = Scheduler::new(rx, 2);
        tx.send(Batch {
            tasks: vec![task("walked")],
            ..Batch::default()
        })
        .unwrap();
        s.retry([task("a"), task("b"), task("c")]);
        assert_eq!(names(&s.next().unwrap()), [b"a", b"b"]);
        assert!(s.blame(task("bad")).is_none());
        s.retry([task("d")]);
        // "c" was queued before the culprit: it goes first, and stops at
        // the culprit, which goes alone; then "d", then the walk's.
        assert_eq!(names(&s.next().unwrap()), [b"c"]);
        assert_eq!(names(&s.next().unwrap()), [b"bad"]);
        assert_eq!(names(&s.next().unwrap()), [b"d"]);
        assert_eq!(names(&s.next().unwrap()), [b"walked"]);
        assert!(s.next().is_none());
        assert!(!s.walker_done);
        assert!(s.blame(task("bad")).is_none());
        assert!(s.quarantined().is_empty());
        assert_eq!(names(&s.next().unwrap()), [b"bad"], "the second try, alone");
        let q = s
            .blame(task("bad"))
            .expect("quarantined at the third crash");
        assert_eq!(q.rel.0, b"bad");
        assert_eq!(s.quarantined(), [b"bad".to_vec()]);
        drop(tx);
        assert!(s.next().is_none());
        assert!(s.walker_done && s.exhausted());
    }

    /// `next_walked` never takes a retry, and `put_back` puts tasks first,
    /// in their order.
    #[test]
    fn the_walks_batches_apart_from_retries() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut s = Scheduler::new(rx, 8);
        s.retry([task("r")]);
        assert!(s.next_walked().is_none());
        tx.send(Batch {
            tasks: vec![task("w")],
            ..Batch::default()
        })
        .unwrap();
        assert_eq!(names(&s.next_walked().unwrap()), [b"w"]);
        s.put_back(vec![task("x"), task("y")]);
        assert_eq!(names(&s.next().unwrap()), [b"x", b"y", b"r"]);
        assert_eq!(s.batch_id(), 0);
        assert_eq!(s.batch_id(), 1);
    }
}
