//! config.json's format: its keys (unknown ones refused by name), how it
//! is loaded (relative paths taken against the file's own directory), and
//! rsync's size and rate units, which its `bwlimit` shares with the
//! command line. What the keys mean for a run is decided in `Settings`.

use crate::cli::ReflinkArg;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The config file's keys (all optional; unknown keys are rejected by name).
#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub source: Option<PathBuf>,
    pub destination: Option<PathBuf>,
    pub processes: Option<usize>,
    pub log_file: Option<PathBuf>,
    pub ignore_times: Option<bool>,
    pub fsync: Option<bool>,
    pub dereference: Option<bool>,
    pub exclude: Option<Vec<String>>,
    pub include: Option<Vec<String>>,
    pub verify: Option<bool>,
    pub stall_timeout: Option<f64>,
    pub mkpath: Option<bool>,
    pub one_file_system: Option<bool>,
    pub update: Option<bool>,
    pub checksum: Option<bool>,
    pub reflink: Option<ReflinkArg>,
    pub bwlimit: Option<Rate>,
    pub files_from: Option<PathBuf>,
    pub from0: Option<bool>,
    pub exclude_from: Option<Vec<PathBuf>>,
    pub include_from: Option<Vec<PathBuf>>,
    pub delete: Option<bool>,
    pub delete_excluded: Option<bool>,
    pub max_delete: Option<u64>,
    pub max_delete_percent: Option<f64>,
    pub allow_empty_source: Option<bool>,
    pub backup_dir: Option<PathBuf>,
    pub suffix: Option<String>,
    /// Basis directories (`--link-dest` ...): lists of paths, relative
    /// ones taken against the destination, as on the command line.
    pub link_dest: Option<Vec<PathBuf>>,
    pub compare_dest: Option<Vec<PathBuf>>,
    pub copy_dest: Option<Vec<PathBuf>>,
    /// Where these values came from (set by `load`): a bad value names it.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl FileConfig {
    pub fn from_reader(r: impl Read) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_reader(r)
    }

    /// A value of this file's `key` that is not acceptable: the error names
    /// the file and the key (exit 2, as any usage error).
    pub fn bad(&self, key: &str, msg: String) -> Error {
        match &self.path {
            Some(p) => Error::Config {
                path: crate::util::escape_bytes(p.as_os_str().as_encoded_bytes()),
                msg: format!("\"{key}\": {msg}"),
            },
            None => Error::Usage(msg),
        }
    }

    /// Load `path`; relative paths inside resolve against the file's directory.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| Error::Config {
            path: shown.clone(),
            msg: e.to_string(),
        })?;
        let mut cfg = Self::from_reader(std::io::BufReader::new(f)).map_err(|e| Error::Config {
            path: shown,
            msg: e.to_string(),
        })?;
        cfg.path = Some(path.to_path_buf());
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.source,
            &mut cfg.destination,
            &mut cfg.log_file,
            &mut cfg.files_from,
        ] {
            if let Some(v) = p.as_mut() {
                if v.is_relative() {
                    *v = base.join(&*v);
                }
            }
        }
        for list in [&mut cfg.exclude_from, &mut cfg.include_from] {
            for v in list.iter_mut().flatten() {
                if v.is_relative() {
                    *v = base.join(&*v);
                }
            }
        }
        Ok(cfg)
    }
}

/// A `bwlimit` value in config.json: rsync's string form (`"40M"`) or a
/// number of KiB per second, as on rsync's command line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Rate {
    Text(String),
    KiB(f64),
}

/// Parse a rate in rsync's `--bwlimit` units into bytes per second: a
/// number with an optional suffix, `K`/`M`/`G`/`T` (or `KiB`...) powers of
/// 1024, `KB`/`MB`/`GB`/`TB` powers of 1000, `B` bytes; no suffix = KiB.
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    parse_size(s, 1024.0).map_err(|e| format!("bad rate {s:?}: {e}"))
}

/// A size in the same units as `parse_rate` (`--chunk-bytes 1M`), but a
/// bare number is bytes.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    parse_size(s, 1.0).map_err(|e| format!("bad size {s:?}: {e}"))
}

/// A number with rsync's size suffixes; `bare` multiplies a number
/// without one.
fn parse_size(s: &str, bare: f64) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| "expected a number with an optional K, M or G".to_string())?;
    let mult: f64 = match unit.to_ascii_uppercase().as_str() {
        "" => bare,
        "K" | "KIB" => 1024.0,
        "B" => 1.0,
        "M" | "MIB" => 1024.0 * 1024.0,
        "G" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TIB" => 1024f64.powi(4),
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(format!("unknown unit {unit:?}")),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_keys() {
        let c = FileConfig::from_reader(
            &br#"{"source":"a","destination":"b","processes":3,"log_file":"l"}"#[..],
        )
        .unwrap();
        assert_eq!(c.processes, Some(3));
        assert_eq!(c.source, Some(PathBuf::from("a")));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = FileConfig::from_reader(&br#"{"sourc":"a"}"#[..]).unwrap_err();
        assert!(e.to_string().contains("sourc"), "{e}");
    }

    #[test]
    fn rates_use_rsyncs_units() {
        assert_eq!(parse_rate("40M").unwrap(), 40 << 20);
        assert_eq!(parse_rate("40MB").unwrap(), 40_000_000);
        assert_eq!(parse_rate("100").unwrap(), 100 << 10, "no suffix: KiB");
        assert_eq!(parse_rate("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_rate("512B").unwrap(), 512);
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert!(parse_rate("fast").is_err() && parse_rate("3X").is_err());
    }
}
