//! Byte-path escaping for messages and panic-free line output, shared by
//! every layer (it imports nothing from the crate, so anything may import it).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape_bytes(b"ok/\xffz\n"), "ok/\\xffz\\x0a");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }
}
