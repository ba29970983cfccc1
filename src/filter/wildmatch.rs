//! rsync's pattern matcher (`lib/wildmatch.c`), ported line for line so a
//! pattern selects exactly what it selects in rsync: `*` and `?` never
//! match `/`, `**` matches anything, `[...]` classes (`!`/`^` negation,
//! ranges, `[:alpha:]`-style names), `\` escapes, no brace expansion.
//! Bytes in, bytes out: a name need not be UTF-8.

/// dowild's four answers: a match, no match here, and the two ways to
/// stop trying further start points.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum M {
    False,
    True,
    AbortAll,
    AbortToStarStar,
}

/// The byte at `i`, or 0 past the end (the C code reads the terminator).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// The character class `[:name:]` holds `c` (ASCII only, as rsync's
/// `ISASCII` guards); None for an unknown name.
fn class_has(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        // isspace: space, \t, \n, \v, \f, \r.
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// Match pattern `p` against `t` (rsync's `dowild`, one text string).
/// Long because it is a port of rsync's wildmatch.c `dowild`, kept line-for-line comparable.
fn dowild(p: &[u8], t: &[u8]) -> M {
    let (mut pi, mut ti) = (0usize, 0usize);
    while pi < p.len() {
        let mut p_ch = p[pi];
        if ti >= t.len() && p_ch != b'*' {
            return M::AbortAll;
        }
        let t_ch = at(t, ti);
        match p_ch {
            b'\\' => {
                // Literal match with the next pattern byte.
                pi += 1;
                if t_ch != at(p, pi) {
                    return M::False;
                }
            }
            b'?' => {
                if t_ch == b'/' {
                    return M::False;
                }
            }
            b'*' => {
                pi += 1;
                let special = at(p, pi) == b'*';
                while at(p, pi) == b'*' {
                    pi += 1;
                }
                if pi >= p.len() {
                    // A trailing "**" matches everything, a trailing "*"
                    // only what has no more slashes.
                    if !special && t[ti.min(t.len())..].contains(&b'/') {
                        return M::False;
                    }
                    return M::True;
                }
                while ti < t.len() {
                    let m = dowild(&p[pi..], &t[ti..]);
                    if m != M::False {
                        if !special || m != M::AbortToStarStar {
                            return m;
                        }
                    } else if !special && t[ti] == b'/' {
                        return M::AbortToStarStar;
                    }
                    ti += 1;
                }
                return M::AbortAll;
            }
            b'[' => {
                pi += 1;
                p_ch = at(p, pi);
                if p_ch == b'^' {
                    p_ch = b'!';
                }
                let negated = p_ch == b'!';
                if negated {
                    pi += 1;
                    p_ch = at(p, pi);
                }
                let mut prev_ch = 0u8;
                let mut matched = false;
                loop {
                    if p_ch == 0 {
                        return M::AbortAll;
                    }
                    if p_ch == b'\\' {
                        pi += 1;
                        p_ch = at(p, pi);
                        if p_ch == 0 {
                            return M::AbortAll;
                        }
                        matched |= t_ch == p_ch;
                    } else if p_ch == b'-'
                        && prev_ch != 0
                        && at(p, pi + 1) != 0
                        && at(p, pi + 1) != b']'
                    {
                        pi += 1;
                        p_ch = at(p, pi);
                        if p_ch == b'\\' {
                            pi += 1;
                            p_ch = at(p, pi);
                            if p_ch == 0 {
                                return M::AbortAll;
                            }
                        }
                        matched |= t_ch <= p_ch && t_ch >= prev_ch;
                        p_ch = 0; // so prev_ch becomes 0
                    } else if p_ch == b'[' && at(p, pi + 1) == b':' {
                        let s = pi + 2;
                        pi = s;
                        while at(p, pi) != 0 && at(p, pi) != b']' {
                            pi += 1;
                        }
                        p_ch = at(p, pi);
                        if p_ch == 0 {
                            return M::AbortAll;
                        }
                        if pi < s + 1 || at(p, pi - 1) != b':' {
                            // No ":]": a plain '[' in the set.
                            pi = s - 2;
                            p_ch = b'[';
                            matched |= t_ch == p_ch;
                        } else {
                            match class_has(&p[s..pi - 1], t_ch) {
                                Some(hit) => matched |= hit,
                                None => return M::AbortAll,
                            }
                            p_ch = 0;
                        }
                    } else {
                        matched |= t_ch == p_ch;
                    }
                    prev_ch = p_ch;
                    pi += 1;
                    p_ch = at(p, pi);
                    if p_ch == b']' {
                        break;
                    }
                }
                if matched == negated || t_ch == b'/' {
                    return M::False;
                }
            }
            _ => {
                if t_ch != p_ch {
                    return M::False;
                }
            }
        }
        pi += 1;
        ti += 1;
    }
    if ti < t.len() {
        M::False
    } else {
        M::True
    }
}

/// The last `count` slash-separated elements of `t`; None when it has
/// fewer.
fn trailing_elements(t: &[u8], count: usize) -> Option<&[u8]> {
    let mut left = count;
    for i in (0..t.len()).rev() {
        if t[i] == b'/' {
            left -= 1;
            if left == 0 {
                return Some(&t[i + 1..]);
            }
        }
    }
    (left == 1).then_some(t)
}

/// Where a pattern may match in the text (rsync's `where` argument).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Where {
    /// At the start only.
    Start,
    /// Against the last N slash-separated elements.
    Trailing(usize),
    /// At the start or after any slash.
    AnySlash,
}

/// `wildmatch_array`: match `p` against `t` as `w` says.
pub fn wildmatch_at(p: &[u8], t: &[u8], w: Where) -> bool {
    let t = match w {
        Where::Trailing(n) => match trailing_elements(t, n) {
            Some(t) => t,
            None => return false,
        },
        _ => t,
    };
    let mut m = dowild(p, t);
    if m != M::True && w == Where::AnySlash && m != M::AbortAll {
        let mut found = false;
        for i in 0..t.len() {
            if t[i] == b'/' {
                m = dowild(p, &t[i + 1..]);
                if m != M::False && m != M::AbortToStarStar {
                    found = true;
                    break;
                }
            }
        }
        if !found {
            return false;
        }
    }
    m == M::True
}

/// `litmatch_array`: a pattern without wildcards.
pub fn litmatch_at(s: &[u8], t: &[u8], w: Where) -> bool {
    match w {
        Where::Trailing(n) => trailing_elements(t, n) == Some(s),
        _ => t == s,
    }
}

/// Why pattern `p` can never match anything (rsync's matcher gives up on
/// it silently: an unclosed `[` class, a trailing `\\` inside a class, an
/// unknown `[:name:]`); None when it is well formed.
pub fn malformed(p: &[u8]) -> Option<&'static str> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'[' => {
                i += 1;
                if matches!(at(p, i), b'!' | b'^') {
                    i += 1;
                }
                loop {
                    match at(p, i) {
                        0 => return Some("a [ class is not closed with ]"),
                        b'\\' if at(p, i + 1) == 0 => {
                            return Some("a [ class is not closed with ]")
                        }
                        b'\\' => i += 1,
                        b'[' if at(p, i + 1) == b':' => {
                            let s = i + 2;
                            let mut j = s;
                            while at(p, j) != 0 && at(p, j) != b']' {
                                j += 1;
                            }
                            if at(p, j) == 0 {
                                return Some("a [ class is not closed with ]");
                            }
                            if j > s && at(p, j - 1) == b':' {
                                if class_has(&p[s..j - 1], b'a').is_none() {
                                    return Some("unknown [:class:] name");
                                }
                                i = j;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                    if at(p, i) == b']' {
                        break;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// rsync's plain `wildmatch(pattern, text)` (what its wildtest.txt checks).
#[cfg(test)]
pub fn wildmatch(p: &[u8], t: &[u8]) -> bool {
    dowild(p, t) == M::True
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One quoted or bare word of a wildtest.txt line, and the rest.
    fn word(s: &[u8]) -> (&[u8], &[u8]) {
        let s = s.trim_ascii_start();
        match s.first() {
            Some(&q @ (b'\'' | b'"' | b'`')) => {
                let end = s[1..].iter().position(|&c| c == q).expect("closing quote") + 1;
                (&s[1..end], &s[end + 1..])
            }
            _ => {
                let end = s
                    .iter()
                    .position(|&c| c == b' ' || c == b'\t')
                    .unwrap_or(s.len());
                (&s[..end], &s[end..])
            }
        }
    }

    /// rsync's own matcher cases (testsuite's wildtest.txt), every line.
    #[test]
    fn rsyncs_wildtest_cases_all_pass() {
        let data = include_bytes!("../../tests/data/wildtest.txt");
        let (mut ran, mut wrong) = (0, Vec::new());
        for (n, line) in data.split(|&c| c == b'\n').enumerate() {
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let expect = line[0] == b'1';
            let (text, rest) = word(&line[3..]);
            let (pattern, _) = word(rest);
            ran += 1;
            if wildmatch(pattern, text) != expect {
                wrong.push(format!(
                    "line {}: {:?} vs {:?}: expected {expect}",
                    n + 1,
                    String::from_utf8_lossy(text),
                    String::from_utf8_lossy(pattern)
                ));
            }
        }
        assert!(ran > 140, "only {ran} cases read");
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn where_a_pattern_may_match() {
        assert!(wildmatch_at(
            b"logs/*.log",
            b"b/logs/k.log",
            Where::Trailing(2)
        ));
        assert!(!wildmatch_at(b"logs/*.log", b"logs", Where::Trailing(2)));
        assert!(wildmatch_at(b"a/**", b"x/a/b/c", Where::AnySlash));
        assert!(!wildmatch_at(b"a/**", b"x/a/b/c", Where::Start));
        assert!(litmatch_at(b"a/b", b"x/a/b", Where::Trailing(2)));
        assert!(!litmatch_at(b"a/b", b"xa/b", Where::Trailing(2)));
    }
}
