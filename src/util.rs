//! Small helpers shared by the supervisor and the workers: byte-path escaping
//! for messages, and io::Error classification for the protocol.

use crate::protocol::ErrorKind;
use std::io;

/// Escape bytes for display: printable UTF-8 passes through; invalid bytes and
/// control characters become `\xNN` so a message stays one line.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                for byte in c.to_string().bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Map an OS error to the protocol's plain error kind.
pub fn classify(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
        Some(libc::EISDIR) | Some(libc::ENOTDIR) | Some(libc::ENOTEMPTY) | Some(libc::ELOOP) => {
            ErrorKind::TypeClash
        }
        Some(libc::EOPNOTSUPP) => ErrorKind::Unsupported,
        _ => match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        },
    }
}

/// Human units (KiB, MiB, ...) with one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape_bytes(b"ok/\xffz\n"), "ok/\\xffz\\x0a");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn classifies_errno() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(classify(&e), ErrorKind::NoSpace);
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(classify(&e), ErrorKind::NotFound);
    }
}
