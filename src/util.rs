//! Byte-path escaping for messages and panic-free line output, shared by
//! every layer (it imports nothing from the crate, so anything may import it).

/// The filesystem is full, or the user's quota is: the one test for "the
/// destination is full" (the walk's mkdir and links, the worker's copies).
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// CPUs this process may run on, asked once: `available_parallelism`
/// reads the cgroup's files, and the walk, the plan, the hash threads and
/// the config defaults all want it.
pub fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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

/// A name as `rsync -i` prints it in a UTF-8 locale: control bytes (tab
/// aside) and bytes that are not valid UTF-8 as `\#ooo` (octal), a
/// backslash that would read as such an escape as `\#134`, the rest as is.
/// Unlike `escape_bytes` the result reads the same as rsync's, and a
/// literal `\xff` in a name stays distinguishable from the byte.
pub fn rsync_escape(b: &[u8]) -> String {
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

/// One line on stdout; a write error (a closed pipe) is ignored, never a
/// panic as `println!` would make it.
pub fn out_line(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{text}").and_then(|()| o.flush());
}

/// One line on stderr, likewise.
pub fn err_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A time as RFC 3339 in UTC with milliseconds (`2026-11-25T17:22:03.123Z`),
/// for the JSON summary; no date crate needed for one format.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The symbolic name of an errno, for machine-readable error kinds.
pub fn errno_name(n: i32) -> Option<&'static str> {
    Some(match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ESTALE => "ESTALE",
        libc::EDQUOT => "EDQUOT",
        libc::EINTR => "EINTR",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped_as_rsync_escapes_them() {
        // What rsync 3.5 -n -i prints under C.UTF-8 for these names.
        let cases: &[(&[u8], &str)] = &[
            (b"a\nb", r"a\#012b"),
            (br"back\#123", r"back\#134#123"),
            (b"bad\xff", r"bad\#377"),
            ("café".as_bytes(), "café"),
            (b"del\x7f", "del\x7f"),
            (br"lit\xff", r"lit\xff"),
            (b"tab\tx", "tab\tx"),
            (br"end\#12", r"end\#12"),
        ];
        for (name, want) in cases {
            assert_eq!(rsync_escape(name), *want, "{name:?}");
        }
    }

    use super::*;

    #[test]
    fn rfc3339_dates_are_civil() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_091_323_456);
        assert_eq!(rfc3339(t), "2025-11-25T17:22:03.456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape_bytes(b"ok/\xffz\n"), "ok/\\xffz\\x0a");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }
}
