//! The one place temporary names are made and recognised. Every name pcopy
//! writes before an entry is complete follows one grammar, so the stale-temp
//! cleanup can match that grammar exactly and never a user's file that merely
//! shares the prefix:
//!
//! ```text
//! .pcopy-tmp.<run id: 16 lowercase hex>.<pid>.<seq>   a worker's file, symlink or node
//! .pcopy-tmp.<run id: 16 lowercase hex>.big<seq>      a large file's shared temp (chunks)
//! .pcopy-tmp.<run id: 16 lowercase hex>.s.<seq>       a hard link being placed
//! .pcopy-tmp.<run id: 16 lowercase hex>.run           the run-in-progress marker
//! ```
//!
//! The marker sits in the destination root while a run writes (see
//! `supervisor::recovery`); it is a temp like the others, so no walk
//! copies it, no `--delete` removes it, and the next run's stale-temp
//! cleanup takes it once that run has read it.
//!
//! `<pid>` and `<seq>` are decimal without leading zeros. Under MPI several
//! nodes write into one tree with one run id and pids that may repeat, so
//! the rank is folded in (`writer`): `<pid>` is `rank << 32 | pid`, and the
//! `<seq>` of a `big` or `s.` temp is `rank << 32 | seq`. Rank 0 (and every
//! run without MPI) writes exactly the names above.

/// Prefix of every temporary name.
pub const PREFIX: &[u8] = b".pcopy-tmp.";

/// Which of pcopy's writers made a temp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A worker process (its writer id: `rank << 32 | pid`).
    Worker(u64),
    /// The shared temp of a large file copied in chunks.
    Big,
    /// A hard link created by the finish pass.
    Link,
    /// The marker of a run in progress (`supervisor::recovery`).
    Run,
}

/// A parsed temporary name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Temp {
    pub run_id: u64,
    pub kind: Kind,
    pub seq: u64,
}

/// A name part unique across the ranks of one MPI run.
pub fn writer(rank: u32, id: u64) -> u64 {
    (u64::from(rank) << 32) | (id & 0xffff_ffff)
}

fn build(run_id: u64, tail: std::fmt::Arguments) -> Vec<u8> {
    let mut n = PREFIX.to_vec();
    n.extend_from_slice(format!("{run_id:016x}.{tail}").as_bytes());
    n
}

/// A worker's temp for its `seq`-th entry.
pub fn worker(run_id: u64, pid: u64, seq: u64) -> Vec<u8> {
    build(run_id, format_args!("{pid}.{seq}"))
}

/// The shared temp of the `seq`-th large file of a run.
pub fn big(run_id: u64, seq: u64) -> Vec<u8> {
    build(run_id, format_args!("big{seq}"))
}

/// The temp of the `seq`-th hard link placed by the finish pass.
pub fn link(run_id: u64, seq: u64) -> Vec<u8> {
    build(run_id, format_args!("s.{seq}"))
}

/// The marker of run `run_id` in the destination root.
pub fn run_marker(run_id: u64) -> Vec<u8> {
    build(run_id, format_args!("run"))
}

/// A decimal number as this module writes it: digits only, no leading zero
/// (except "0" itself), no overflow.
fn decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parse `name` as one of pcopy's temporaries; `None` for anything else,
/// including names that only share the prefix.
pub fn parse(name: &[u8]) -> Option<Temp> {
    let rest = name.strip_prefix(PREFIX)?;
    if rest.len() < 18 || rest[16] != b'.' {
        return None;
    }
    let hex = &rest[..16];
    if !hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let run_id = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    let tail = &rest[17..];
    let (kind, seq) = if tail == b"run" {
        (Kind::Run, 0)
    } else if let Some(seq) = tail.strip_prefix(b"big") {
        (Kind::Big, decimal(seq)?)
    } else if let Some(seq) = tail.strip_prefix(b"s.") {
        (Kind::Link, decimal(seq)?)
    } else {
        let dot = tail.iter().position(|&c| c == b'.')?;
        (
            Kind::Worker(decimal(&tail[..dot])?),
            decimal(&tail[dot + 1..])?,
        )
    };
    Some(Temp { run_id, kind, seq })
}

/// Remove the temps worker `pid` of this run left in `dir` (it died).
pub fn remove_worker_temps(
    dir: &std::os::fd::OwnedFd,
    run_id: u64,
    writer: u64,
) -> std::io::Result<usize> {
    remove_matching(dir, |name| {
        parse(name).is_some_and(|t| t.run_id == run_id && t.kind == Kind::Worker(writer))
    })
}

/// Unlink the non-directory entries of `dir` whose names `matches` accepts.
pub(crate) fn remove_matching(
    dir: &std::os::fd::OwnedFd,
    matches: impl Fn(&[u8]) -> bool,
) -> std::io::Result<usize> {
    let mut n = 0;
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if ent.file_type() != rustix::fs::FileType::Directory && matches(name) {
            match rustix::fs::unlinkat(dir, ent.file_name(), rustix::fs::AtFlags::empty()) {
                Ok(()) => n += 1,
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_made_here_parses_back() {
        let id = 0x0123_4567_89ab_cdef;
        assert_eq!(
            parse(&worker(id, 4242, 7)),
            Some(Temp {
                run_id: id,
                kind: Kind::Worker(4242),
                seq: 7
            })
        );
        assert_eq!(parse(&big(id, 0)).map(|t| t.kind), Some(Kind::Big));
        assert_eq!(parse(&run_marker(id)).map(|t| t.kind), Some(Kind::Run));
        assert_eq!(parse(&link(u64::MAX, 3)).map(|t| t.run_id), Some(u64::MAX));
        let w = writer(3, 4242);
        assert_eq!(
            parse(&worker(id, w, 1)).map(|t| t.kind),
            Some(Kind::Worker(w))
        );
        assert_ne!(writer(3, 4242), writer(2, 4242));
        assert_eq!(writer(0, 4242), 4242);
    }

    #[test]
    fn names_that_only_share_the_prefix_are_not_temps() {
        for n in [
            &b".pcopy-tmp."[..],
            b".pcopy-tmp.notes",
            b".pcopy-tmp.0123456789abcdef",
            b".pcopy-tmp.0123456789abcdef.",
            b".pcopy-tmp.0123456789ABCDEF.1.2",
            b".pcopy-tmp.0123456789abcdef.1.2.txt",
            b".pcopy-tmp.0123456789abcdef.01.2",
            b".pcopy-tmp.0123456789abcdef.big",
            b".pcopy-tmp.0123456789abcdef.big1/x",
            b".pcopy-tmp.0123456789abcdef.s.",
            b".pcopy-tmp.0123456789abcdef.run1",
            b".pcopy-tmp.0123456789abcdef.999999999999999999999.1",
            b"x.pcopy-tmp.0123456789abcdef.1.2",
        ] {
            assert_eq!(parse(n), None, "{}", String::from_utf8_lossy(n));
        }
    }
}
