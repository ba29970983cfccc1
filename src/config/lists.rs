//! What a run reads besides config.json: the `--files-from` list and the
//! filter pattern files (`--exclude-from`, `--include-from`), read as
//! rsync reads them, and the one order all filter rules apply in.

use super::FileConfig;
use crate::cli::{Cli, RuleArg};
use crate::error::{Error, Result};
use crate::filter::{Parsed, Rule};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The filter rules in the order they apply (see `Settings::filters`).
/// Each argument and pattern-file line is read as rsync reads it (`+ `/`- `
/// prefixes, `!` clears what came before).
pub(super) fn filters(cli: &Cli, file: &FileConfig) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    let add = |text: &[u8], include: bool, rules: &mut Vec<Rule>| -> Result<()> {
        match crate::filter::parse(text, include).map_err(Error::Usage)? {
            Parsed::Rule(r) => rules.push(r),
            Parsed::Clear => rules.clear(),
        }
        Ok(())
    };
    let from = |path: &Path, include: bool, rules: &mut Vec<Rule>| -> Result<()> {
        for (n, line) in read_patterns(path)? {
            add(&line, include, rules).map_err(|e| Error::Config {
                path: format!("{}, line {n}", path.display()),
                msg: e.to_string(),
            })?;
        }
        Ok(())
    };
    for p in file.include.iter().flatten() {
        add(p.as_bytes(), true, &mut rules)?;
    }
    for p in file.include_from.iter().flatten() {
        from(p, true, &mut rules)?;
    }
    for p in file.exclude.iter().flatten() {
        add(p.as_bytes(), false, &mut rules)?;
    }
    for p in file.exclude_from.iter().flatten() {
        from(p, false, &mut rules)?;
    }
    for r in &cli.rules {
        match r {
            RuleArg::Include(p) => add(p.as_bytes(), true, &mut rules)?,
            RuleArg::Exclude(p) => add(p.as_bytes(), false, &mut rules)?,
            RuleArg::IncludeFrom(p) => from(p, true, &mut rules)?,
            RuleArg::ExcludeFrom(p) => from(p, false, &mut rules)?,
        }
    }
    Ok(rules)
}

/// The `--files-from` list: paths separated by newlines (or NULs), empty
/// entries and comments skipped; `-` is standard input.
pub(super) fn read_list(path: &Path, nul: bool) -> Result<Vec<Vec<u8>>> {
    let err = |e: std::io::Error| Error::Config {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut data).map_err(err)?;
    } else {
        data = std::fs::read(path).map_err(err)?;
    }
    // rsync's read_line for a local list: a line ends at NUL (--from0) or
    // at CR or LF; empty lines and lines starting with `#` or `;` are
    // comments.
    Ok(data
        .split(|&c| {
            if nul {
                c == 0
            } else {
                c == b'\n' || c == b'\r'
            }
        })
        .filter(|l| !l.is_empty() && !l.starts_with(b"#") && !l.starts_with(b";"))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Patterns from a file with their line numbers, one per line (CR LF
/// ends a line too); empty lines and lines starting with `#` or `;` are
/// skipped (rsync's rule for `--exclude-from`); `-` is standard input.
fn read_patterns(path: &Path) -> Result<Vec<(usize, Vec<u8>)>> {
    let err = |msg: String| Error::Config {
        path: path.display().to_string(),
        msg,
    };
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut data)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut data))
    }
    .map_err(|e| err(e.to_string()))?;
    // Bytes, as rsync reads them: a pattern need not be UTF-8 any more
    // than a name need be.
    let data = data.strip_suffix(b"\n").unwrap_or(&data);
    Ok(data
        .split(|&c| c == b'\n')
        .enumerate()
        .map(|(n, l)| (n + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with(b"#") && !l.starts_with(b";"))
        .map(|(n, l)| (n, l.to_vec()))
        .collect())
}
