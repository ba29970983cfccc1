//! Byte-path escaping for messages, shared by every layer (it imports
//! nothing from the crate, so anything may import it).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape_bytes(b"ok/\xffz\n"), "ok/\\xffz\\x0a");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }
}
