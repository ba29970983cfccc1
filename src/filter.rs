//! Filter rules (globset), checked in the order given; the first rule that
//! matches decides, as in rsync (`--exclude adduser/ --include adduser/`
//! drops the directory). A pattern without `/` matches the entry's name at
//! any depth, one with `/` matches its path relative to the source (`**`
//! spans directories); a trailing `/` restricts a pattern to directories.
//! An entry no rule matches is kept. An excluded directory is not descended
//! into. Documented in docs/config.md.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One rule: keep (`include`) or skip entries matching `pattern`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub include: bool,
    pub pattern: String,
}

impl Rule {
    pub fn include(p: &str) -> Self {
        Rule {
            include: true,
            pattern: p.to_string(),
        }
    }
    pub fn exclude(p: &str) -> Self {
        Rule {
            include: false,
            pattern: p.to_string(),
        }
    }
}

/// Compiled rules: two glob sets (by name, by path); each glob maps back to
/// its rule's position, so the first matching rule can be found.
#[derive(Default)]
pub struct Filter {
    by_name: GlobSet,
    by_path: GlobSet,
    /// For each glob of `by_name` / `by_path`: (rule index, directories only).
    name_rules: Vec<(usize, bool)>,
    path_rules: Vec<(usize, bool)>,
    include: Vec<bool>,
}

impl Filter {
    pub fn new(rules: &[Rule]) -> Result<Self, String> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let mut f = Filter::default();
        for (i, r) in rules.iter().enumerate() {
            let p = r.pattern.as_str();
            let (pat, dir_only) = match p.strip_suffix('/') {
                Some(s) => (s, true),
                None => (p, false),
            };
            let anchored = pat.contains('/');
            let glob = GlobBuilder::new(pat.trim_start_matches('/'))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("bad pattern {p:?}: {e}"))?;
            if anchored {
                paths.add(glob);
                f.path_rules.push((i, dir_only));
            } else {
                names.add(glob);
                f.name_rules.push((i, dir_only));
            }
            f.include.push(r.include);
        }
        f.by_name = names.build().map_err(|e| e.to_string())?;
        f.by_path = paths.build().map_err(|e| e.to_string())?;
        Ok(f)
    }

    /// Config-file lists: includes first, so an include keeps what an
    /// exclude would skip, whatever the order of the two keys.
    pub fn from_lists(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let rules: Vec<Rule> = (include.iter().map(|p| Rule::include(p)))
            .chain(exclude.iter().map(|p| Rule::exclude(p)))
            .collect();
        Self::new(&rules)
    }

    pub fn is_empty(&self) -> bool {
        self.include.iter().all(|&i| i)
    }

    /// Whether the entry at `rel` (relative to the source) is skipped: the
    /// first rule matching it is an exclude.
    pub fn excluded(&self, rel: &[u8], is_dir: bool) -> bool {
        if self.is_empty() {
            return false;
        }
        let rel = Path::new(OsStr::from_bytes(rel));
        let name = rel.file_name().map_or(rel, Path::new);
        let first = |set: &GlobSet, map: &[(usize, bool)], p: &Path| {
            set.matches(p)
                .into_iter()
                .map(|g| map[g])
                .filter(|&(_, dir_only)| is_dir || !dir_only)
                .map(|(i, _)| i)
                .min()
        };
        let hit = [
            first(&self.by_name, &self.name_rules, name),
            first(&self.by_path, &self.path_rules, rel),
        ]
        .into_iter()
        .flatten()
        .min();
        hit.is_some_and(|i| !self.include[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> Filter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Filter::from_lists(&s(inc), &s(exc)).unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins_as_in_rsync() {
        let flt = Filter::new(&[Rule::exclude("adduser/"), Rule::include("adduser/")]).unwrap();
        assert!(flt.excluded(b"usr/share/adduser", true));
        let flt = Filter::new(&[Rule::include("adduser/"), Rule::exclude("adduser/")]).unwrap();
        assert!(!flt.excluded(b"usr/share/adduser", true));
        let flt = Filter::new(&[Rule::include("keep.log"), Rule::exclude("*.log")]).unwrap();
        assert!(!flt.excluded(b"a/keep.log", false));
        assert!(flt.excluded(b"a/other.log", false));
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
        assert!(Filter::new(&[Rule::exclude("a[")]).is_err());
    }
}
