//! The directory stack the walker threads share, and its door to other ranks
//! under MPI: an idle rank asks another for a share of its pending
//! directories (work stealing), and further names of a hard-linked inode
//! travel to the one rank that owns the inode. Without MPI only the walker
//! threads touch it, and the walk ends when the stack runs dry.

use crate::protocol::{DestDir, Task};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A directory to read: its path relative to both roots, whether this run
/// created its destination, and (with `-L`) its ancestors' identities.
pub struct DirJob {
    pub rel: Vec<u8>,
    pub dir: DestDir,
    pub ancestors: Arc<Vec<(u64, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking walker thread is reported at join; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a walker thread does next.
pub enum Job {
    /// Read a directory.
    Dir(DirJob),
    /// Handle one entry of a directory walked elsewhere: a hard-linked file
    /// this rank owns (`rel` is the entry, `dir` its parent's `DestDir`).
    Entry { rel: Vec<u8>, dir: DestDir },
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Walker threads holding a job.
    active: usize,
    /// Entries for other ranks, not yet sent: (owner rank, entry).
    outbox: Vec<(u32, PeerJob)>,
    /// Chunks of this rank's large files for other ranks to copy.
    chunks: Vec<(u32, Task)>,
}

/// The shared stack of jobs.
pub struct Jobs {
    q: Mutex<Queue>,
    wake: Condvar,
    /// Other ranks may add work: running dry is not the end; `finish` is.
    cooperative: bool,
    done: AtomicBool,
    /// This rank's walk stopped early (interrupt, fatal error).
    halted: AtomicBool,
    /// The walker has queued its last batch (large files included).
    placed: AtomicBool,
    /// Batches queued into this rank's channel so far, by the walker or the
    /// peer, counted after each is queued (MPI: the dispatcher's "idle"
    /// answer names the count it saw, so one from before a batch is stale).
    pub fed: Arc<AtomicU64>,
}

impl Jobs {
    /// `first`: this rank starts the walk (rank 0). It counts as busy from
    /// here until the walker has queued its first job (`started`): the peer
    /// thread starts earlier, and must not take an empty stack for the end.
    pub fn new(cooperative: bool, first: bool) -> Arc<Self> {
        Arc::new(Jobs {
            q: Mutex::new(Queue {
                active: usize::from(first),
                ..Queue::default()
            }),
            wake: Condvar::new(),
            cooperative,
            done: AtomicBool::new(false),
            halted: AtomicBool::new(false),
            placed: AtomicBool::new(false),
            fed: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn push(&self, job: Job) {
        lock(&self.q).jobs.push(job);
        self.wake.notify_one();
    }

    /// The next job, or None when the walk is over (everywhere) or stopped.
    /// `flush` runs before this thread waits, so a partial batch never sits
    /// in a waiting thread.
    pub(crate) fn next(&self, stop: &AtomicBool, mut flush: impl FnMut()) -> Option<Job> {
        let mut q = lock(&self.q);
        let mut flushed = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                self.halted.store(true, Ordering::Relaxed);
                self.wake.notify_all();
                return None;
            }
            if let Some(j) = q.jobs.pop() {
                q.active += 1;
                return Some(j);
            }
            if q.active == 0 && (!self.cooperative || self.done.load(Ordering::Acquire)) {
                self.wake.notify_all();
                return None;
            }
            if !flushed {
                drop(q);
                flush();
                flushed = true;
                q = lock(&self.q);
                continue;
            }
            // Bounded: `finish` and `stop` are not paired with this lock.
            q = self
                .wake
                .wait_timeout(q, Duration::from_millis(20))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    /// A walker thread is through with its job.
    pub(crate) fn done_one(&self) {
        let mut q = lock(&self.q);
        q.active -= 1;
        if q.jobs.is_empty() && q.active == 0 {
            self.wake.notify_all();
        }
    }

    /// Rank 0's walker has queued the root (or read the `--files-from`
    /// list): the hold taken by `new` ends.
    pub(crate) fn started(&self) {
        self.done_one();
    }

    pub(crate) fn forward(&self, owner: u32, job: PeerJob) {
        lock(&self.q).outbox.push((owner, job));
    }

    /// A chunk of this rank's large file, for rank `to` to copy.
    pub(crate) fn give_chunk(&self, to: u32, task: Task) {
        lock(&self.q).chunks.push((to, task));
    }

    // The peer's side (MPI).

    /// Chunks waiting to go to the ranks that copy them.
    pub fn take_chunks(&self) -> Vec<(u32, Task)> {
        std::mem::take(&mut lock(&self.q).chunks)
    }

    /// No chunk waiting to be sent.
    pub fn chunks_sent(&self) -> bool {
        lock(&self.q).chunks.is_empty()
    }

    /// About half of the pending jobs, the oldest first (nearest the root,
    /// so the largest subtrees), for an idle rank; nothing when fewer than
    /// two are pending.
    pub fn share(&self) -> Vec<PeerJob> {
        let mut q = lock(&self.q);
        let n = q.jobs.len() / 2;
        q.jobs.drain(..n).map(Job::into_peer).collect()
    }

    /// Jobs from another rank.
    pub fn give(&self, jobs: Vec<PeerJob>) {
        let mut q = lock(&self.q);
        q.jobs.extend(jobs.into_iter().map(Job::from_peer));
        self.wake.notify_all();
    }

    /// Entries waiting to go to their owners.
    pub fn take_outbox(&self) -> Vec<(u32, PeerJob)> {
        std::mem::take(&mut lock(&self.q).outbox)
    }

    /// Nothing pending, running or waiting to be sent here.
    pub fn idle(&self) -> bool {
        let q = lock(&self.q);
        q.jobs.is_empty() && q.active == 0 && q.outbox.is_empty()
    }

    /// A batch was queued into the channel.
    pub fn note_fed(&self) {
        self.fed.fetch_add(1, Ordering::AcqRel);
    }

    /// The walker has queued everything it will (the end of `Walker::run`).
    pub(crate) fn set_placed(&self) {
        self.placed.store(true, Ordering::Release);
    }

    pub fn placed(&self) -> bool {
        self.placed.load(Ordering::Acquire)
    }

    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// Every rank is idle and no job is in flight: the walk is over.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Release);
        let _q = lock(&self.q);
        self.wake.notify_all();
    }
}

impl Job {
    fn into_peer(self) -> PeerJob {
        match self {
            Job::Dir(d) => PeerJob {
                rel: d.rel,
                dir: d.dir,
                entry: false,
                ancestors: (*d.ancestors).clone(),
            },
            Job::Entry { rel, dir } => PeerJob {
                rel,
                dir,
                entry: true,
                ancestors: Vec::new(),
            },
        }
    }

    fn from_peer(p: PeerJob) -> Self {
        let dir = p.dir;
        if p.entry {
            Job::Entry { rel: p.rel, dir }
        } else {
            Job::Dir(DirJob {
                rel: p.rel,
                dir,
                ancestors: Arc::new(p.ancestors),
            })
        }
    }
}

/// A walk job handed to another rank (MPI): a directory to read, or
/// (`entry`) one hard-linked entry for the rank that owns its inode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerJob {
    #[serde(with = "serde_bytes")]
    pub rel: Vec<u8>,
    /// What this run knows of the destination directory (of the entry's
    /// parent): created by it, existing, or unverified after an unclean
    /// end (which another rank must copy again too).
    pub dir: DestDir,
    pub entry: bool,
    /// `-L`: the directory's ancestors' (dev, ino), for loop detection.
    pub ancestors: Vec<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job handed to another rank keeps everything the walk knew of its
    /// destination directory, "unverified after an unclean end" included
    /// (a bool `created` once turned that into `Existing`, so another rank
    /// quick-checked what must be copied again).
    #[test]
    fn a_job_crosses_ranks_with_its_destination_fact() {
        for dir in [DestDir::Created, DestDir::Existing, DestDir::Unverified] {
            let job = Job::Dir(DirJob {
                rel: b"a/\xff".to_vec(),
                dir,
                ancestors: Arc::new(vec![(1, 2)]),
            });
            let Job::Dir(back) = Job::from_peer(job.into_peer()) else {
                panic!("a directory came back as an entry");
            };
            assert_eq!((back.rel, back.dir), (b"a/\xff".to_vec(), dir));
            assert_eq!(*back.ancestors, vec![(1, 2)]);
            let entry = Job::Entry {
                rel: b"f".to_vec(),
                dir,
            };
            let Job::Entry { dir: back, .. } = Job::from_peer(entry.into_peer()) else {
                panic!("an entry came back as a directory");
            };
            assert_eq!(back, dir);
        }
    }
}
