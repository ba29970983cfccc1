//! What the differential tests against rsync (filter_diff, itemize_diff)
//! share: relative-path helpers, shell quoting for the commands they print,
//! and finding out whether rsync is there and ran.

use std::process::{Command, Output};

pub fn depth(rel: &str) -> usize {
    if rel.is_empty() {
        0
    } else {
        rel.matches('/').count() + 1
    }
}

pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Shell-quoted for pasting (single quotes unless plainly safe).
pub fn quote(s: &str) -> String {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b);
    if !s.is_empty() && s.bytes().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// rsync's first `--version` line, or None when rsync is not installed.
pub fn rsync_version() -> Option<String> {
    let out = Command::new("rsync").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next().unwrap_or("rsync").trim().to_string())
}

/// rsync's "ran with partial success": 23 (some files not transferred, e.g.
/// a directory that could not be deleted) and 24 (vanished files) still
/// leave a tree worth comparing; any other failure means the generated
/// case is one rsync rejects.
pub fn rsync_ran(out: &Output) -> bool {
    matches!(out.status.code(), Some(0 | 23 | 24))
}

/// An unsigned number from the environment.
pub fn env_num(key: &str) -> Option<u64> {
    std::env::var(key).ok()?.trim().parse().ok()
}
