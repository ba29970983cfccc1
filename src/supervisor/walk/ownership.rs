//! Under MPI, which rank handles the names of a hard-linked inode: one
//! rank per inode, chosen by its (dev, ino), so the names stay links
//! whichever ranks walked them.

use super::*;

/// The rank that owns an inode's names: a fixed mix of (dev, ino), the
/// same on every rank.
fn owner_of(dev: u64, ino: u64, ranks: u32) -> u32 {
    let mut x = dev.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ino;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % u64::from(ranks.max(1))) as u32
}

impl Walker {
    /// Under MPI every name of a hard-linked inode is handled by one rank,
    /// chosen by its (dev, ino), so the names stay links whichever ranks
    /// walked them: an entry another rank owns goes there (and is counted
    /// there).
    pub(super) fn foreign(&self, st: &Stat, e: &Entry, job: &DirJob) -> bool {
        if self.ranks < 2 || st.st_nlink < 2 {
            return false;
        }
        let owner = owner_of(st.st_dev, st.st_ino, self.ranks);
        if owner == self.rank {
            return false;
        }
        self.jobs.forward(
            owner,
            crate::work::PeerJob {
                rel: e.rel.clone(),
                dir: job.dir,
                entry: true,
                ancestors: Vec::new(),
            },
        );
        true
    }
}
