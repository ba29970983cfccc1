//! `--exclude` / `--include` (globset). Rules, documented in docs/config.md:
//! an entry is skipped when it matches an exclude pattern and no include
//! pattern; a pattern without `/` matches the entry's name at any depth, one
//! with `/` matches its path relative to the source (`**` spans directories);
//! a trailing `/` restricts a pattern to directories. An excluded directory is
//! not descended into.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[derive(Default)]
struct Rules {
    by_name: GlobSet,
    by_path: GlobSet,
    dir_by_name: GlobSet,
    dir_by_path: GlobSet,
    any: bool,
}

impl Rules {
    fn new(patterns: &[String]) -> Result<Self, String> {
        let mut sets: [GlobSetBuilder; 4] = std::array::from_fn(|_| GlobSetBuilder::new());
        for p in patterns {
            let (pat, dir_only) = match p.strip_suffix('/') {
                Some(s) => (s, true),
                None => (p.as_str(), false),
            };
            let anchored = pat.contains('/');
            let pat = pat.trim_start_matches('/');
            let glob: Glob = GlobBuilder::new(pat)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("bad pattern {p:?}: {e}"))?;
            sets[usize::from(dir_only) * 2 + usize::from(anchored)].add(glob);
        }
        let build = |b: &GlobSetBuilder| b.build().map_err(|e| e.to_string());
        Ok(Rules {
            by_name: build(&sets[0])?,
            by_path: build(&sets[1])?,
            dir_by_name: build(&sets[2])?,
            dir_by_path: build(&sets[3])?,
            any: !patterns.is_empty(),
        })
    }

    fn matches(&self, rel: &Path, name: &Path, is_dir: bool) -> bool {
        self.any
            && (self.by_name.is_match(name)
                || self.by_path.is_match(rel)
                || (is_dir && (self.dir_by_name.is_match(name) || self.dir_by_path.is_match(rel))))
    }
}

/// Compiled include/exclude rules.
#[derive(Default)]
pub struct Filter {
    include: Rules,
    exclude: Rules,
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        Ok(Filter {
            include: Rules::new(include)?,
            exclude: Rules::new(exclude)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        !self.exclude.any
    }

    /// Whether the entry at `rel` (relative to the source) is skipped.
    pub fn excluded(&self, rel: &[u8], is_dir: bool) -> bool {
        if !self.exclude.any {
            return false;
        }
        let rel = Path::new(OsStr::from_bytes(rel));
        let name = rel.file_name().map_or(rel, Path::new);
        self.exclude.matches(rel, name, is_dir) && !self.include.matches(rel, name, is_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> Filter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Filter::new(&s(inc), &s(exc)).unwrap()
    }

    #[test]
    fn name_patterns_match_at_any_depth() {
        let flt = f(&[], &["*.tmp"]);
        assert!(flt.excluded(b"a.tmp", false));
        assert!(flt.excluded(b"x/y/a.tmp", false));
        assert!(!flt.excluded(b"x/y/a.txt", false));
    }

    #[test]
    fn path_patterns_are_anchored_at_the_source() {
        let flt = f(&[], &["build/**", "/cache"]);
        assert!(flt.excluded(b"build/out/x.o", false));
        assert!(!flt.excluded(b"src/build/x.o", false));
        assert!(flt.excluded(b"cache", true));
        assert!(!flt.excluded(b"a/cache", true));
    }

    #[test]
    fn include_overrides_exclude_and_trailing_slash_means_directories() {
        let flt = f(&["*.txt", "*/"], &["*"]);
        assert!(!flt.excluded(b"d", true));
        assert!(!flt.excluded(b"d/a.txt", false));
        assert!(flt.excluded(b"d/a.bin", false));
        assert!(flt.excluded(b"d.bin", false));
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(Filter::new(&[], &["a[".into()]).is_err());
    }
}
