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

/// A walked path's name below `root`, as the trees' models spell names.
pub fn rel_name(root: &std::path::Path, path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    name_str(
        path.strip_prefix(root)
            .expect("under root")
            .as_os_str()
            .as_bytes(),
    )
}

/// Names are bytes; the test models keep paths in `String`s, a byte that
/// is not part of valid UTF-8 as the private-use char U+F700 + byte (no
/// generated name has one), so that the mapping is lossless both ways.
pub fn name_str(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        s.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            s.push(char::from_u32(0xF700 + u32::from(byte)).expect("a private-use char"));
        }
    }
    s
}

/// The bytes of a model path (the inverse of [`name_str`]).
pub fn name_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u32::from(c) {
            n @ 0xF700..=0xF7FF => out.push((n - 0xF700) as u8),
            _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// A model path as a file-system path.
pub fn os(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(name_bytes(s))
}

/// A model path as `rsync -i` prints it in a UTF-8 locale (rsync's
/// `filtered_fwrite`): a control byte but tab, and a byte that is not valid
/// UTF-8, as `\#ooo`; a backslash that would read as such an escape as
/// `\#134`. Used to find a model path's records and for reports, never to
/// make two tools' lines equal: the lines are compared as printed.
pub fn shown(s: &str) -> String {
    let b = name_bytes(s);
    let mut out = String::with_capacity(b.len());
    let octal = |out: &mut String, byte: u8| out.push_str(&format!("\\#{byte:03o}"));
    for chunk in b.utf8_chunks() {
        let v = chunk.valid().as_bytes();
        for (i, c) in chunk.valid().char_indices() {
            let looks_escaped = c == '\\'
                && v.len() >= i + 5
                && v[i + 1] == b'#'
                && v[i + 2..i + 5].iter().all(u8::is_ascii_digit);
            if (c < ' ' && c != '\t') || looks_escaped {
                octal(&mut out, c as u8);
            } else {
                out.push(c);
            }
        }
        for &byte in chunk.invalid() {
            octal(&mut out, byte);
        }
    }
    out
}
