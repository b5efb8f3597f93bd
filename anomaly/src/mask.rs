//! Masking: variable parts of a line (addresses, numbers, ids) replaced by
//! `<*>` before the line is mined, so that they never split a template.
//!
//! All masks are compiled into one regex (an alternation, earlier masks
//! first), run once over the line; the masked line is written into a buffer
//! that is reused from line to line.
//!
//! When every mask is `ipv4`, `hex`, or a pattern that starts with literal
//! text (`blk_-?\d+`), the line is searched without the alternation, with
//! the same matches: `ipv4` by hand, each other mask by finding its literal
//! text and matching the pattern there, and at each step the match that
//! starts first wins (the earlier mask on a tie), as in the alternation.
//! In a digit-heavy line a regex search takes its slow path on every digit
//! and pays a reverse search for each match's start; this way costs a
//! third of that on HDFS lines.

use regex::bytes::Regex;
use serde::Deserialize;

/// A built-in mask.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinMask {
    /// An IPv4 address (ASCII digits) with an optional `:port`.
    Ipv4,
    /// A hexadecimal number written `0x...`.
    Hex,
    /// A UUID (`8-4-4-4-12` hex digits).
    Uuid,
    /// A whole number or a decimal standing alone (not part of a word).
    Number,
}

impl BuiltinMask {
    /// The mask's regex.
    pub fn pattern(self) -> &'static str {
        match self {
            BuiltinMask::Ipv4 => r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?::[0-9]{1,5})?",
            BuiltinMask::Hex => r"0[xX][0-9a-fA-F]+",
            BuiltinMask::Uuid => {
                r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
            }
            BuiltinMask::Number => r"(?-u:\b)-?\d+(?:\.\d+)?(?-u:\b)",
        }
    }
}

/// The compiled masks.
#[derive(Clone, Debug)]
pub struct Masker {
    regex: Option<Regex>,
    /// The masks one by one, when each has a way to be found without the
    /// alternation.
    finders: Option<Vec<Finder>>,
}

/// Most masks searched one by one; more go through the alternation.
const MAX_EACH: usize = 8;

/// How one mask (or the `session` processor's `key_pattern`) is found on
/// its own.
#[derive(Clone, Debug)]
pub(crate) enum Finder {
    /// `ipv4`, by hand.
    Ipv4,
    /// A pattern whose every match starts with `prefix`: the pattern,
    /// anchored, is tried where the prefix first occurs; when that fails,
    /// the pattern's own search goes on from there.
    Prefixed {
        /// Boxed: a finder is large, and few masks have one.
        prefix: Box<memchr::memmem::Finder<'static>>,
        anchored: Regex,
        pattern: Regex,
    },
}

impl Finder {
    /// A finder of `pattern` when it starts with literal text.
    pub(crate) fn of_pattern(pattern: &str) -> Option<Finder> {
        let prefix = literal_prefix(pattern)?;
        Some(Finder::Prefixed {
            prefix: Box::new(memchr::memmem::Finder::new(prefix.as_bytes()).into_owned()),
            anchored: Regex::new(&format!("^(?:{pattern})")).ok()?,
            pattern: Regex::new(pattern).ok()?,
        })
    }

    fn of_builtin(b: BuiltinMask) -> Option<Finder> {
        match b {
            BuiltinMask::Ipv4 => Some(Finder::Ipv4),
            BuiltinMask::Hex => Finder::of_pattern(b.pattern()),
            BuiltinMask::Uuid | BuiltinMask::Number => None,
        }
    }

    /// The leftmost match at or after `from`, as the mask's regex finds it
    /// (never empty).
    pub(crate) fn find(&self, line: &[u8], from: usize) -> Option<(usize, usize)> {
        match self {
            Finder::Ipv4 => find_ipv4(line, from),
            Finder::Prefixed {
                prefix,
                anchored,
                pattern,
            } => {
                // No match starts before the prefix's first occurrence.
                let start = from + prefix.find(line.get(from..)?)?;
                // The pattern starts with literal text: no assertion looks
                // before `start`, so the slice loses nothing.
                if let Some(m) = anchored.find(&line[start..]) {
                    return Some((start, start + m.end()));
                }
                // One anchored try only: trying each later occurrence
                // could scan the rest of the line each time (`a.*b` on a
                // line of `a`s), where one search stays linear.
                let m = pattern.find_at(line, start + 1)?;
                Some((m.start(), m.end()))
            }
        }
    }
}

/// The literal text every match of `pattern` starts with: its leading
/// letters, digits and `_`, less the last one when a repetition follows
/// it. `None` when there is none, or when the pattern has an alternation
/// anywhere (one at the top would let a match start otherwise).
fn literal_prefix(pattern: &str) -> Option<&str> {
    if pattern.contains('|') {
        return None;
    }
    let n = pattern
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let n = match pattern.as_bytes().get(n) {
        Some(b'?' | b'*' | b'+' | b'{') => n.saturating_sub(1),
        _ => n,
    };
    (n > 0).then(|| &pattern[..n])
}

/// The leftmost match at or after `from` of `(?:[0-9]{1,3}\.){3}[0-9]{1,3}
/// (?::[0-9]{1,5})?`, with the regex's choices: greedy counts, and a start
/// inside a run of digits when the run is too long for an octet.
///
/// A match's first octet ends at a `.`: the dots are found with `memchr`
/// and only the up to three digits before each can start a match (a later
/// start before the same dot meets the same rest, so one try a dot).
fn find_ipv4(line: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    while let Some(i) = memchr::memchr(b'.', line.get(at..)?) {
        let dot = at + i;
        let before = line[from..dot]
            .iter()
            .rev()
            .take(3)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if before > 0 {
            if let Some(m) = ipv4_at(line, dot - before) {
                return Some(m);
            }
        }
        at = dot + 1;
    }
    None
}

/// The IPv4 match starting at `start`, if any.
fn ipv4_at(line: &[u8], start: usize) -> Option<(usize, usize)> {
    // Digits at `i`, counted up to `most`: a long run costs no more.
    let digits = |i: usize, most: usize| {
        line[i.min(line.len())..]
            .iter()
            .take(most)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = start;
    for _ in 0..3 {
        let run = digits(at, 4);
        if !(1..=3).contains(&run) || line.get(at + run) != Some(&b'.') {
            return None;
        }
        at += run + 1;
    }
    let run = digits(at, 3);
    if run == 0 {
        return None;
    }
    at += run;
    if line.get(at) == Some(&b':') {
        let port = digits(at + 1, 5);
        if port > 0 {
            at += 1 + port;
        }
    }
    Some((start, at))
}

impl Masker {
    /// Compiles `patterns` (custom regexes) then `builtins`, in that order of
    /// preference.
    ///
    /// # Errors
    ///
    /// The first pattern that is not a valid regex, with the reason.
    pub fn new(patterns: &[String], builtins: &[BuiltinMask]) -> Result<Self, String> {
        for p in patterns {
            Regex::new(p).map_err(|e| format!("invalid mask regex `{p}`: {e}"))?;
        }
        let all: Vec<String> = patterns
            .iter()
            .cloned()
            .chain(builtins.iter().map(|b| b.pattern().to_string()))
            .map(|p| format!("(?:{p})"))
            .collect();
        if all.is_empty() {
            return Ok(Masker {
                regex: None,
                finders: None,
            });
        }
        let regex = Regex::new(&all.join("|")).map_err(|e| format!("invalid masks: {e}"))?;
        let finders = patterns
            .iter()
            .map(|p| Finder::of_pattern(p))
            .chain(builtins.iter().map(|b| Finder::of_builtin(*b)))
            .collect::<Option<Vec<Finder>>>()
            .filter(|f| f.len() <= MAX_EACH);
        Ok(Masker {
            regex: Some(regex),
            finders,
        })
    }

    /// Whether there is any mask.
    pub fn is_empty(&self) -> bool {
        self.regex.is_none()
    }

    /// Writes `line` with every match replaced by `<*>` into `out`; returns
    /// the masked line (`line` itself when nothing matched).
    pub fn apply<'a>(&self, line: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
        if let Some(finders) = &self.finders {
            return apply_each(finders, line, out);
        }
        let Some(re) = &self.regex else {
            return line;
        };
        let mut last = 0;
        let mut any = false;
        for m in re.find_iter(line) {
            if !any {
                out.clear();
                any = true;
            }
            out.extend_from_slice(&line[last..m.start()]);
            out.extend_from_slice(crate::drain::WILDCARD);
            last = m.end();
        }
        if !any {
            return line;
        }
        out.extend_from_slice(&line[last..]);
        out
    }
}

/// [`Masker::apply`] with each mask found on its own: at each step the
/// match that starts first, the earlier mask on a tie, as the alternation
/// would choose.
fn apply_each<'a>(finders: &[Finder], line: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
    // The next match of each mask at or after the last match's end (on
    // the stack: nothing is allocated per line).
    let mut next = [None; MAX_EACH];
    let next = &mut next[..finders.len()];
    for (n, f) in next.iter_mut().zip(finders) {
        *n = f.find(line, 0);
    }
    let mut last = 0;
    let mut any = false;
    loop {
        let mut best: Option<(usize, usize)> = None;
        for m in next.iter().flatten() {
            if best.is_none_or(|b| m.0 < b.0) {
                best = Some(*m);
            }
        }
        let Some((start, end)) = best else {
            break;
        };
        if !any {
            out.clear();
            any = true;
        }
        out.extend_from_slice(&line[last..start]);
        out.extend_from_slice(crate::drain::WILDCARD);
        last = end;
        for (n, f) in next.iter_mut().zip(finders) {
            if n.is_some_and(|m| m.0 < end) {
                *n = f.find(line, end);
            }
        }
    }
    if !any {
        return line;
    }
    out.extend_from_slice(&line[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(m: &Masker, s: &str) -> String {
        let mut buf = Vec::new();
        String::from_utf8_lossy(m.apply(s.as_bytes(), &mut buf)).into_owned()
    }

    /// Masks searched one by one give the alternation's output on lines
    /// made to trip them: digit runs too long for an octet, ports, bare
    /// dots and colons, prefixes that do not match, overlapping prefixes,
    /// non-ASCII digits; and on the HDFS sample.
    #[test]
    fn one_by_one_matches_the_alternation() {
        let sets: [(&[&str], &[BuiltinMask]); 8] = [
            // Both start at every `a` before a digit: the first mask wins.
            (&["a[0-9]", "a[0-9]+"], &[]),
            (&[r"blk_-?\d+"], &[BuiltinMask::Ipv4]),
            (
                &[r"core\.\d+", "req-[a-z]+"],
                &[BuiltinMask::Ipv4, BuiltinMask::Hex],
            ),
            (&[], &[BuiltinMask::Hex, BuiltinMask::Ipv4]),
            (&[r"blk_-?\d+\b"], &[BuiltinMask::Ipv4]),
            (&["ab{2}c", "aab"], &[BuiltinMask::Ipv4]),
            (&[r"x\d"], &[BuiltinMask::Ipv4, BuiltinMask::Hex]),
            // A prefix that occurs where the pattern fails, then later
            // where it matches: the search goes on past the first try.
            (&["a[a-c]*x", "abb"], &[BuiltinMask::Ipv4]),
        ];
        let parts = [
            "blk_", "-", "0", "1", "9", "12", "255", "1234", ".", ":", " ", "a", "b", "c", "x",
            "X", "0x", "F", "core", "req-", "\u{0663}", "..", "ab", "abb",
        ];
        let hdfs = include_str!("../../testdata/loghub_2k/HDFS_2k.log");
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        for (patterns, builtins) in sets {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            let each = Masker::new(&patterns, builtins).unwrap();
            assert!(each.finders.is_some(), "{patterns:?} {builtins:?}");
            let whole = Masker {
                finders: None,
                ..each.clone()
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let random = (0..20_000).map(|_| {
                (0..next(24))
                    .map(|_| parts[next(parts.len())])
                    .collect::<String>()
            });
            for line in random.chain(hdfs.lines().map(str::to_string)) {
                let line = line.as_bytes();
                assert_eq!(
                    String::from_utf8_lossy(each.apply(line, &mut a)),
                    String::from_utf8_lossy(whole.apply(line, &mut b)),
                    "{patterns:?} {builtins:?} on {:?}",
                    String::from_utf8_lossy(line)
                );
            }
        }
        // What cannot be found one by one keeps the alternation.
        assert!(Masker::new(&["(?i)blk".into()], &[])
            .unwrap()
            .finders
            .is_none());
        assert!(Masker::new(&[], &[BuiltinMask::Uuid])
            .unwrap()
            .finders
            .is_none());
        assert!(Masker::new(&["a|b".into()], &[]).unwrap().finders.is_none());
    }

    #[test]
    fn a_prefixed_finder_walks_the_matches_find_iter_gives() {
        let hdfs = include_str!("../../testdata/loghub_2k/HDFS_2k.log");
        for p in [
            r"blk_-?\d+",
            r"core\.\d+",
            "ab{2}c",
            r"req-[a-z]+\b",
            "a.*b",
        ] {
            let f = Finder::of_pattern(p).expect("a literal start");
            let re = Regex::new(p).unwrap();
            let extra = [
                "core.1core.22",
                "abbcabbbc abbc",
                "req-ab req-x1 xreq-y",
                "blk_blk_-12",
                "aaaaaaaaaaaa",
                "aaaa aaab aab",
            ];
            for line in hdfs.lines().chain(extra) {
                let line = line.as_bytes();
                let want: Vec<(usize, usize)> =
                    re.find_iter(line).map(|m| (m.start(), m.end())).collect();
                let mut got = Vec::new();
                let mut at = 0;
                while let Some(m) = f.find(line, at) {
                    got.push(m);
                    at = m.1;
                }
                assert_eq!(got, want, "{p} on {:?}", String::from_utf8_lossy(line));
            }
        }
    }

    #[test]
    fn builtins_and_patterns_replace_what_they_should() {
        let m = Masker::new(
            &[r"blk_-?\d+".into()],
            &[BuiltinMask::Ipv4, BuiltinMask::Hex, BuiltinMask::Number],
        )
        .unwrap();
        assert_eq!(
            mask(&m, "got blk_-123 from 10.0.0.1:50010 at 0x1F size 42 v2"),
            "got <*> from <*> at <*> size <*> v2"
        );
        assert_eq!(mask(&m, "nothing here"), "nothing here");
        assert!(Masker::new(&["(".into()], &[]).is_err());
        assert!(Masker::new(&[], &[]).unwrap().is_empty());
    }
}
