//! Filter rules exactly as rsync applies `--include`/`--exclude`: checked in
//! the order given, the first rule that matches decides, an entry no rule
//! matches is kept, and an excluded directory is not descended into (so
//! nothing below it can be included again). How a pattern matches is
//! rsync's `rule_matches` (exclude.c), with its matcher (`wildmatch`):
//!
//! - a trailing `/` restricts a rule to directories;
//! - a leading `/` anchors it at the root of the transfer;
//! - a pattern with no `/` and no `**` matches the entry's name at any
//!   depth; one with an inner `/` (and no `**`) matches the last as many
//!   path elements, at any depth; one with `**` may match after any `/`;
//! - `*` and `?` stop at `/`, `**` does not, `dir/***` is `dir` and
//!   everything below it; `[...]` classes; no `{a,b}` braces.
//!
//! Rules come as rsync's command line takes them: an argument (or a line
//! of a `--*-from` file) may start with `+ ` or `- ` to say which kind it
//! is, and `!` alone clears the rules before it. rsync's richer filter
//! syntax (merge files, `:` rules, modifiers) is refused with an error
//! rather than taken as a literal name. Documented in docs/config.md.

mod wildmatch;

use wildmatch::{litmatch_at, wildmatch_at, Where};

/// One rule: keep (`include`) or skip entries matching `pattern`. A
/// pattern is bytes, as names are (rsync matches both byte for byte).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub include: bool,
    pub pattern: Vec<u8>,
}

impl Rule {
    pub fn include(p: impl AsRef<[u8]>) -> Self {
        Rule {
            include: true,
            pattern: p.as_ref().to_vec(),
        }
    }
    pub fn exclude(p: impl AsRef<[u8]>) -> Self {
        Rule {
            include: false,
            pattern: p.as_ref().to_vec(),
        }
    }

    /// The rule as written: `+ PAT` or `- PAT`, the pattern escaped as
    /// names are in messages.
    pub fn shown(&self) -> String {
        let sign = if self.include { "+ " } else { "- " };
        format!("{sign}{}", crate::util::escape_bytes(&self.pattern))
    }
}

/// What one `--include`/`--exclude` argument (or pattern-file line) says.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Rule(Rule),
    /// `!`: forget the rules given so far.
    Clear,
}

/// Parse one argument of `--include` (`include`) or `--exclude` the way
/// rsync does (its "old prefixes" mode): `+ PAT` is an include and `- PAT`
/// an exclude whatever the flag, `!` clears the list. Filter-rule syntax
/// pcopy does not implement is an error, not a literal pattern.
pub fn parse(text: impl AsRef<[u8]>, include: bool) -> Result<Parsed, String> {
    let text = text.as_ref();
    let shown = |b: &[u8]| format!("\"{}\"", crate::util::escape_bytes(b));
    if text.contains(&0) {
        return Err(format!(
            "bad pattern {}: it contains a NUL byte",
            shown(text)
        ));
    }
    if text == b"!" {
        return Ok(Parsed::Clear);
    }
    let (include, pattern) = if let Some(p) = text.strip_prefix(b"+ ") {
        (true, p)
    } else if let Some(p) = text.strip_prefix(b"- ") {
        (false, p)
    } else {
        if let Some(what) = unsupported(text) {
            return Err(format!(
                "filter rule {}: {what} not supported (pcopy takes patterns, \
                 optionally after \"+ \" or \"- \")",
                shown(text)
            ));
        }
        (include, text)
    };
    if pattern.is_empty() {
        return Err(format!("filter rule {}: the pattern is empty", shown(text)));
    }
    if let Some(why) = wildmatch::malformed(pattern) {
        // rsync accepts it and it matches nothing: almost surely a typo.
        return Err(format!("bad pattern {}: {why}", shown(pattern)));
    }
    Ok(Parsed::Rule(Rule {
        include,
        pattern: pattern.to_vec(),
    }))
}

/// rsync filter-rule syntax that an rsync user may write into a pattern
/// file but pcopy does not implement: merge files (`. FILE`, `: FILE`,
/// `merge`, `dir-merge`) and rule modifiers (`-! `, `+/ `, `-, `...).
/// rsync itself would take such a line as a literal name under
/// `--exclude-from`, which never is what was meant.
fn unsupported(text: &[u8]) -> Option<&'static str> {
    // A rule letter, then modifiers, then one space (rsync's separator);
    // requiring the space keeps names like `.eslintrc` or `-x` patterns.
    let rule = |first: &[u8], mods: &[u8]| {
        let b = text;
        b.first().is_some_and(|c| first.contains(c)) && {
            let n = b[1..].iter().take_while(|c| mods.contains(c)).count();
            b.get(1 + n) == Some(&b' ') && (n > 0 || !b"+-".contains(&b[0]))
        }
    };
    if rule(b".:", b"-+Cenwsr/!,") || text.starts_with(b"merge ") || text.starts_with(b"dir-merge ")
    {
        return Some("merge-file rules are");
    }
    if rule(b"+-", b"!/CsrxepnwN,") {
        return Some("rule modifiers are");
    }
    None
}

/// One compiled rule (rsync's `filter_rule` with its flags).
#[derive(Debug)]
struct Compiled {
    include: bool,
    /// Without the trailing `/`; a leading `/` is kept (it anchors).
    pattern: Vec<u8>,
    /// Trailing `/`: directories only.
    dir_only: bool,
    /// `/`s in the pattern (a leading one included).
    slashes: usize,
    /// Has `*`, `?` or `[`.
    wild: bool,
    /// Has `**`.
    wild2: bool,
    /// Starts with `**`.
    wild2_prefix: bool,
    /// Ends with `***`.
    wild3_suffix: bool,
}

impl Compiled {
    fn new(r: &Rule) -> Self {
        let mut p = &r.pattern[..];
        let dir_only = p.len() > 1 && p.ends_with(b"/");
        if dir_only {
            p = &p[..p.len() - 1];
        }
        let wild = p.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        let wild2 = wild && p.windows(2).any(|w| w == b"**");
        Compiled {
            include: r.include,
            pattern: p.to_vec(),
            dir_only,
            slashes: p.iter().filter(|&&c| c == b'/').count(),
            wild,
            wild2,
            wild2_prefix: wild2 && p.starts_with(b"**"),
            wild3_suffix: wild2 && p.ends_with(b"***"),
        }
    }

    /// rsync's `rule_matches` for `rel` (relative to the root, no leading
    /// slash).
    fn matches(&self, rel: &[u8], is_dir: bool) -> bool {
        if rel.is_empty() {
            return false;
        }
        if self.dir_only && !is_dir {
            return false;
        }
        let mut name = rel;
        if self.slashes == 0 && !self.wild2 {
            // Only the name is matched.
            if let Some(i) = rel.iter().rposition(|&c| c == b'/') {
                name = &rel[i + 1..];
            }
        }
        // "**/" may match at the start too, "dir/***" matches "dir" itself:
        // rsync adds a '/' before or after the text for those (a copy only
        // then; every other rule matches the entry's bytes as they are).
        let before = self.wild2_prefix;
        let after = is_dir && self.wild3_suffix;
        let text: std::borrow::Cow<[u8]> = if before || after {
            let mut t = Vec::with_capacity(name.len() + 2);
            if before {
                t.push(b'/');
            }
            t.extend_from_slice(name);
            if after {
                t.push(b'/');
            }
            t.into()
        } else {
            name.into()
        };
        let (anchored, pattern) = match self.pattern.strip_prefix(b"/") {
            Some(p) => (true, p),
            None => (false, &self.pattern[..]),
        };
        let w = if !anchored && self.slashes > 0 && !self.wild2 {
            Where::Trailing(self.slashes + 1)
        } else if !anchored && !self.wild2_prefix && self.wild2 {
            Where::AnySlash
        } else {
            Where::Start
        };
        if self.wild {
            wildmatch_at(pattern, &text, w)
        } else {
            litmatch_at(pattern, &text, w)
        }
    }
}

/// The compiled rules, in order.
#[derive(Default, Debug)]
pub struct Filter {
    rules: Vec<Compiled>,
}

impl Filter {
    pub fn new(rules: &[Rule]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(rules.len());
        for r in rules {
            if r.pattern.is_empty() || r.pattern.contains(&0) {
                return Err(format!("bad pattern {}", r.shown()));
            }
            out.push(Compiled::new(r));
        }
        Ok(Filter { rules: out })
    }

    /// No rule can exclude anything.
    pub fn is_empty(&self) -> bool {
        self.rules.iter().all(|r| r.include)
    }

    /// Whether the entry at `rel` (relative to the root) is excluded: the
    /// first rule matching it is an exclude. The caller applies the
    /// directory rule (nothing below an excluded directory is looked at).
    pub fn excluded(&self, rel: &[u8], is_dir: bool) -> bool {
        if self.is_empty() {
            return false;
        }
        self.rules
            .iter()
            .find(|r| r.matches(rel, is_dir))
            .is_some_and(|r| !r.include)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(args: &[(&str, bool)]) -> Filter {
        let mut v = Vec::new();
        for (a, inc) in args {
            match parse(a, *inc).unwrap() {
                Parsed::Rule(r) => v.push(r),
                Parsed::Clear => v.clear(),
            }
        }
        Filter::new(&v).unwrap()
    }
    fn ex(p: &str) -> (&str, bool) {
        (p, false)
    }
    fn inc(p: &str) -> (&str, bool) {
        (p, true)
    }

    #[test]
    fn the_first_matching_rule_wins_as_in_rsync() {
        let flt = rules(&[ex("adduser/"), inc("adduser/")]);
        assert!(flt.excluded(b"usr/share/adduser", true));
        let flt = rules(&[inc("adduser/"), ex("adduser/")]);
        assert!(!flt.excluded(b"usr/share/adduser", true));
        let flt = rules(&[inc("keep.log"), ex("*.log")]);
        assert!(!flt.excluded(b"a/keep.log", false));
        assert!(flt.excluded(b"a/other.log", false));
    }

    #[test]
    fn name_patterns_match_at_any_depth() {
        let flt = rules(&[ex("*.tmp")]);
        assert!(flt.excluded(b"a.tmp", false));
        assert!(flt.excluded(b"x/y/a.tmp", false));
        assert!(!flt.excluded(b"x/y/a.txt", false));
    }

    #[test]
    fn an_inner_slash_matches_the_trailing_elements_at_any_depth() {
        // The case: `logs/keep.log` is kept in b/logs/ too.
        let flt = rules(&[inc("*/"), inc("logs/keep.log"), ex("*")]);
        assert!(!flt.excluded(b"b/logs/keep.log", false));
        assert!(!flt.excluded(b"logs/keep.log", false));
        assert!(flt.excluded(b"b/logs/other.log", false));
        assert!(flt.excluded(b"b/xlogs/keep.log", false));
        let flt = rules(&[ex("sub/*.txt")]);
        assert!(flt.excluded(b"a/b/sub/y.txt", false));
        assert!(!flt.excluded(b"a/sub/c/y.txt", false));
    }

    #[test]
    fn a_leading_slash_anchors_at_the_root() {
        let flt = rules(&[ex("/cache"), ex("/a/b")]);
        assert!(flt.excluded(b"cache", true));
        assert!(!flt.excluded(b"x/cache", true));
        assert!(flt.excluded(b"a/b", false));
        assert!(!flt.excluded(b"x/a/b", false));
    }

    #[test]
    fn one_two_and_three_stars() {
        let flt = rules(&[ex("a/*")]);
        assert!(flt.excluded(b"a/x", false));
        assert!(flt.excluded(b"q/a/x", false));
        assert!(!flt.excluded(b"a/x/y", false));
        let flt = rules(&[ex("/a/**")]);
        assert!(flt.excluded(b"a/x/y", false));
        assert!(!flt.excluded(b"a", true));
        let flt = rules(&[ex("a/**")]);
        assert!(
            flt.excluded(b"q/a/x/y", false),
            "unanchored ** matches after any slash"
        );
        let flt = rules(&[ex("/a/***")]);
        assert!(flt.excluded(b"a", true), "*** takes the directory itself");
        assert!(flt.excluded(b"a/x/y", false));
        let flt = rules(&[ex("**/x.log")]);
        assert!(
            flt.excluded(b"x.log", false),
            "a leading **/ matches at the top"
        );
        assert!(flt.excluded(b"a/b/x.log", false));
        // rsync's "**/" never matches zero directories in the middle.
        let flt = rules(&[ex("/a/**/b")]);
        assert!(flt.excluded(b"a/x/b", false));
        assert!(!flt.excluded(b"a/b", false));
    }

    #[test]
    fn a_trailing_slash_means_directories_only() {
        let flt = rules(&[ex("logs/")]);
        assert!(flt.excluded(b"x/logs", true));
        assert!(!flt.excluded(b"x/logs", false));
    }

    #[test]
    fn classes_escapes_and_no_braces() {
        let flt = rules(&[ex("[xy].log"), ex("\\[br\\]"), ex("{a,b}")]);
        assert!(flt.excluded(b"x.log", false));
        assert!(!flt.excluded(b"z.log", false));
        assert!(flt.excluded(b"[br]", false));
        assert!(!flt.excluded(b"b", false));
        assert!(!flt.excluded(b"a", false), "braces are literal in rsync");
        assert!(flt.excluded(b"{a,b}", false));
    }

    #[test]
    fn prefixes_and_clear_are_rsyncs_old_style() {
        let flt = rules(&[ex("+ keep.log"), ex("- *.log")]);
        assert!(!flt.excluded(b"keep.log", false));
        assert!(flt.excluded(b"other.log", false));
        let flt = rules(&[ex("*.log"), ex("!"), ex("*.txt")]);
        assert!(
            !flt.excluded(b"a.log", false),
            "! clears the rules before it"
        );
        assert!(flt.excluded(b"a.txt", false));
        // Not a prefix: "+x" is a pattern.
        let flt = rules(&[ex("+x")]);
        assert!(flt.excluded(b"+x", false));
    }

    #[test]
    fn unsupported_filter_syntax_is_refused() {
        for bad in [
            ". rules",
            ": .rsync-filter",
            "merge x",
            "dir-merge .f",
            "-! x",
            "+/ x",
        ] {
            assert!(parse(bad, false).is_err(), "{bad:?} accepted");
        }
        for good in ["- x", "+ x", ".hidden", "merged", "-x", "*.o"] {
            assert!(parse(good, false).is_ok(), "{good:?} refused");
        }
        assert!(parse("- ", false).is_err(), "an empty pattern");
        for bad in ["a[", "[a-", "x[[:nope:]]", "[\\"] {
            assert!(parse(bad, false).is_err(), "{bad:?} accepted");
        }
        for good in ["[]]", "[[:digit:]]", "[[]", "\\[", "a]"] {
            assert!(parse(good, false).is_ok(), "{good:?} refused");
        }
    }

    /// Patterns are bytes too, as rsync's are: one that is not UTF-8 is
    /// taken and matched byte for byte (it was refused before), and its
    /// errors escape it as names are.
    #[test]
    fn patterns_need_not_be_utf8() {
        let flt = rules(&[]);
        assert!(!flt.excluded(b"\xff", false));
        let mut v = Vec::new();
        for p in [&b"\xff"[..], b"caf\xe9*", b"[\xfe-\xff]x"] {
            match parse(p, false).expect("a byte pattern") {
                Parsed::Rule(r) => v.push(r),
                Parsed::Clear => unreachable!(),
            }
        }
        let flt = Filter::new(&v).expect("compiles");
        assert!(flt.excluded(b"d/\xff", false));
        assert!(flt.excluded(b"caf\xe9-au-lait", false));
        assert!(flt.excluded(b"\xfex", false));
        assert!(
            !flt.excluded(b"caf\xc3\xa9", false),
            "other bytes, no match"
        );
        let e = parse(&b"a[\xff"[..], false).expect_err("unclosed class");
        assert!(e.contains("a[\\xff"), "{e}");
    }

    #[test]
    fn names_need_not_be_utf8() {
        let flt = rules(&[ex("*.bin")]);
        assert!(flt.excluded(b"d/\xff\xfe.bin", false));
        let flt = rules(&[ex("?")]);
        assert!(flt.excluded(b"\xff", false));
    }
}
