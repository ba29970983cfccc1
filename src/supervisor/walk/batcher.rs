//! A walker thread's batches: tasks grouped up to `--batch-files` or
//! `--batch-bytes`, sent early when the dispatcher waits, with the large
//! files they register travelling in the same batch.

use super::*;

/// Groups tasks into batches; one per walker thread.
pub struct Batcher<'a> {
    batch: Batch,
    bytes: u64,
    w: &'a Walker,
}

impl<'a> Batcher<'a> {
    /// Add a task; send the batch when full, or early when the dispatcher is
    /// waiting (channel empty), so workers never idle behind a half batch.
    pub(super) fn push(&mut self, task: Task, bytes: u64) -> bool {
        let tasks = &mut self.batch.tasks;
        tasks.push(task);
        self.bytes += bytes;
        let full = tasks.len() >= self.w.opts.batch_files || self.bytes >= self.w.opts.batch_bytes;
        let starving = tasks.len() >= 16 && self.w.batches.is_empty();
        if full || starving {
            return self.flush();
        }
        true
    }
    /// A large file, registered ahead of its chunks (pushed next).
    pub(super) fn register(&mut self, large: crate::work::LargeFile) {
        self.batch.large.push(large);
    }
    pub(super) fn flush(&mut self) -> bool {
        self.bytes = 0;
        if self.batch.tasks.is_empty() && self.batch.large.is_empty() {
            return true;
        }
        let sent = self.w.batches.send(std::mem::take(&mut self.batch)).is_ok();
        if sent {
            self.w.jobs.note_fed();
        }
        sent
    }
    pub(super) fn new(w: &'a Walker) -> Self {
        Batcher {
            batch: Batch::default(),
            bytes: 0,
            w,
        }
    }
}
