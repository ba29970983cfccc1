//! Under `--mpi`, entries that crashed workers `MAX_CRASHES` times stay
//! quarantined across runs: a re-run after a rank died must not let the
//! same file kill workers on every node again. The list lives outside the
//! destination tree (nothing but copies is written there), in
//! `$XDG_STATE_HOME/pcopy/` (default `~/.local/state/pcopy/`), one file per
//! destination: `quarantine-<16 hex of BLAKE3(canonical destination)>.bin`,
//! a bincode list of relative paths. Rank 0 reads and writes it. Delete the
//! file to let the entries be tried again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where the quarantine of `destination` (canonical) is kept.
pub fn state_file(destination: &Path) -> Option<PathBuf> {
    let dir = match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    let hash = blake3::hash(destination.as_os_str().as_encoded_bytes());
    let hex: String = hash.as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(dir.join("pcopy").join(format!("quarantine-{hex}.bin")))
}

/// The entries quarantined by earlier runs (none if there is no file; an
/// unreadable one is reported and treated as empty).
pub fn load(file: &Path) -> Vec<Vec<u8>> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            log::warn!(
                "{}: quarantine list unreadable ({e}); ignored",
                file.display()
            );
            return Vec::new();
        }
    };
    match bincode::serde::decode_from_slice::<Vec<serde_bytes::ByteBuf>, _>(
        &bytes,
        bincode::config::standard(),
    ) {
        Ok((list, _)) => list.into_iter().map(|b| b.into_vec()).collect(),
        Err(e) => {
            log::warn!(
                "{}: quarantine list undecodable ({e}); ignored",
                file.display()
            );
            Vec::new()
        }
    }
}

/// Add `new` to the list (written whole to a temp, then renamed).
pub fn save(file: &Path, old: &[Vec<u8>], new: &[Vec<u8>]) -> std::io::Result<()> {
    let all: BTreeSet<&Vec<u8>> = old.iter().chain(new).collect();
    let list: Vec<serde_bytes::ByteBuf> = all
        .into_iter()
        .cloned()
        .map(serde_bytes::ByteBuf::from)
        .collect();
    let bytes = bincode::serde::encode_to_vec(&list, bincode::config::standard())
        .map_err(std::io::Error::other)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}
