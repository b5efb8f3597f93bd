//! A capture matcher for regexes that never need to look back.
//!
//! Most log-header patterns are a line of fields, each a run of one
//! character class ended by a character the class cannot hold:
//! `^(?P<pid>\d+) (?P<level>\S+) \[(?P<time>[^\]]+)\] (?P<msg>.*)$`. For such
//! a pattern every choice the regex makes (one more digit or stop, which
//! branch of `\d+|-`, take an optional part or skip it) is settled by the
//! next character alone, so a single left-to-right walk over the pattern's
//! parts finds the match, and each run is a tight loop over one class.
//! This is several times cheaper than the general engines, which step a
//! state machine byte by byte.
//!
//! [`Straight::new`] takes a pattern only when that walk is exactly the
//! regex crate's (leftmost-first) match, captures included; for any other
//! pattern it returns `None` and the caller keeps the regex. It takes:
//!
//! * a pattern anchored at the start (`^`), optionally at the end (`$`);
//! * literal text, and runs of one class (`\d{6}`, `[^:]*`, `\S+`, `.*`,
//!   lazy or greedy) whose class shares no character with whatever may
//!   follow the run;
//! * captures, optional parts (`(?:…)?`) that do not start with what may
//!   follow them, and alternations (`\d+|-`) whose branches start with
//!   different characters.
//!
//! Where nothing has to follow (no `$`, and the rest of the pattern may
//! match nothing), the rest always succeeds, so the preferred choice is the
//! regex's choice and the rules above are not needed there.
//!
//! Like the regex crate in Unicode mode, a class matches only valid UTF-8;
//! a byte class (`(?-u)`) is taken only when it is ASCII.

use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Look};

/// A compiled pattern: see the module documentation.
#[derive(Debug)]
pub(crate) struct Straight {
    parts: Vec<Part>,
    /// The pattern ends with `$`: the match must reach the end of the input.
    to_end: bool,
    /// One more than the largest capture group index.
    groups: usize,
}

/// A set of characters, tested by byte for ASCII.
#[derive(Debug)]
struct Set {
    /// `true` at ASCII byte `b` when `b` is in the set (`false` from 0x80).
    ascii: Box<[bool; 256]>,
    /// The non-ASCII characters in the set, as sorted inclusive ranges.
    wide: Box<[(u32, u32)]>,
    /// The set is every character but these (at most three) ASCII bytes:
    /// a run of it is found with `memchr` and checked as UTF-8.
    all_but: Option<Box<[u8]>>,
}

#[derive(Debug)]
enum Part {
    /// These exact bytes.
    Text(Box<[u8]>),
    /// `min..=max` characters of a set; as many as fit when `most`, else
    /// `min` (a lazy run with nothing required after it).
    Run {
        set: Set,
        min: u32,
        max: u32,
        most: bool,
    },
    /// A capture group.
    Group { index: usize, parts: Vec<Part> },
    /// `(?:…)?`: taken when it matches (and `take`), else skipped.
    Optional {
        parts: Vec<Part>,
        take: bool,
        groups: Vec<usize>,
    },
    /// The first branch that matches.
    Either {
        branches: Vec<Vec<Part>>,
        groups: Vec<usize>,
    },
}

/// What may come after a part.
#[derive(Clone)]
struct Follow {
    /// The characters that may come next.
    first: ClassUnicode,
    /// Anything may come next: the rest of the pattern may match nothing
    /// and the match need not reach the end.
    any: bool,
}

/// What a part may start with.
struct Start {
    first: ClassUnicode,
    /// The part may match nothing.
    empty: bool,
}

impl Straight {
    /// Compiles `pattern` (as `regex::bytes::Regex` reads it), or `None`
    /// when it is not a shape this matcher takes or does not parse.
    pub(crate) fn new(pattern: &str) -> Option<Straight> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let mut items: Vec<&Hir> = match hir.kind() {
            HirKind::Concat(items) => items.iter().collect(),
            _ => vec![&hir],
        };
        if !matches!(
            items.first().map(|h| h.kind()),
            Some(HirKind::Look(Look::Start))
        ) {
            return None;
        }
        items.remove(0);
        let to_end = matches!(
            items.last().map(|h| h.kind()),
            Some(HirKind::Look(Look::End))
        );
        if to_end {
            items.pop();
        }
        let mut groups = 1;
        let mut parts = lower_all(&items, &mut groups)?;
        let follow = Follow {
            first: ClassUnicode::empty(),
            any: !to_end,
        };
        check(&mut parts, &follow)?;
        Some(Straight {
            parts,
            to_end,
            groups,
        })
    }

    /// Capture group slots `matches` needs (`groups * 2`).
    pub(crate) fn slot_count(&self) -> usize {
        self.groups * 2
    }

    /// Matches `hay`; on a match, fills `slots` (`[start, end]` per group,
    /// `usize::MAX` for a group that took no part) and returns `true`.
    pub(crate) fn matches(&self, hay: &[u8], slots: &mut [usize]) -> bool {
        slots.fill(usize::MAX);
        let mut at = 0;
        if !walk(&self.parts, hay, &mut at, slots) || (self.to_end && at != hay.len()) {
            return false;
        }
        slots[0] = 0;
        slots[1] = at;
        true
    }
}

/// Lowers a sequence of HIR items to parts.
fn lower_all(items: &[&Hir], groups: &mut usize) -> Option<Vec<Part>> {
    let mut parts = Vec::with_capacity(items.len());
    for h in items {
        lower(h, groups, &mut parts)?;
    }
    Some(parts)
}

fn lower(h: &Hir, groups: &mut usize, out: &mut Vec<Part>) -> Option<()> {
    match h.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => match out.last_mut() {
            Some(Part::Text(t)) => {
                let mut joined = t.to_vec();
                joined.extend_from_slice(&l.0);
                *t = joined.into();
            }
            _ => out.push(Part::Text(l.0.clone())),
        },
        HirKind::Class(_) => out.push(Part::Run {
            set: Set::new(&class_of(h)?),
            min: 1,
            max: 1,
            most: true,
        }),
        HirKind::Look(_) => return None,
        HirKind::Concat(items) => {
            for i in items {
                lower(i, groups, out)?;
            }
        }
        HirKind::Capture(c) => {
            let index = c.index as usize;
            *groups = (*groups).max(index + 1);
            let mut parts = Vec::new();
            lower(&c.sub, groups, &mut parts)?;
            out.push(Part::Group { index, parts });
        }
        HirKind::Repetition(r) => {
            if r.min == 0 && r.max == Some(1) && class_of(&r.sub).is_none() {
                let mut parts = Vec::new();
                lower(&r.sub, groups, &mut parts)?;
                let groups = groups_in(&parts);
                out.push(Part::Optional {
                    parts,
                    take: r.greedy,
                    groups,
                });
            } else {
                let max = r.max.unwrap_or(u32::MAX);
                if max == 0 {
                    return None;
                }
                out.push(Part::Run {
                    set: Set::new(&class_of(&r.sub)?),
                    min: r.min,
                    max,
                    most: r.greedy,
                });
            }
        }
        HirKind::Alternation(branches) => {
            let branches = branches
                .iter()
                .map(|b| {
                    let mut parts = Vec::new();
                    lower(b, groups, &mut parts)?;
                    Some(parts)
                })
                .collect::<Option<Vec<_>>>()?;
            let groups = branches.iter().flat_map(|b| groups_in(b)).collect();
            out.push(Part::Either { branches, groups });
        }
    }
    Some(())
}

/// The class one character of `h` belongs to, when `h` is one character.
fn class_of(h: &Hir) -> Option<ClassUnicode> {
    match h.kind() {
        HirKind::Class(Class::Unicode(c)) => Some(c.clone()),
        HirKind::Class(Class::Bytes(c)) => c.to_unicode_class(),
        HirKind::Literal(l) => {
            let s = std::str::from_utf8(&l.0).ok()?;
            let mut chars = s.chars();
            let c = chars.next()?;
            chars
                .next()
                .is_none()
                .then(|| ClassUnicode::new([ClassUnicodeRange::new(c, c)]))
        }
        _ => None,
    }
}

/// The capture groups inside `parts`, to clear when they are backed out of.
fn groups_in(parts: &[Part]) -> Vec<usize> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::Group { index, parts } => {
                out.push(*index);
                out.extend(groups_in(parts));
            }
            Part::Optional { groups, .. } | Part::Either { groups, .. } => {
                out.extend_from_slice(groups)
            }
            Part::Text(_) | Part::Run { .. } => {}
        }
    }
    out
}

fn disjoint(a: &ClassUnicode, b: &ClassUnicode) -> bool {
    let mut a = a.clone();
    a.intersect(b);
    a.ranges().is_empty()
}

fn check_one(part: &mut Part, follow: &Follow) -> Option<Start> {
    match part {
        Part::Text(t) => {
            let first = match t.first() {
                None => return Some(Start::nothing()),
                Some(&b) if b < 0x80 => b as char,
                Some(_) => {
                    let n = t.len().min(4);
                    let s = (1..=n).find_map(|k| std::str::from_utf8(&t[..k]).ok())?;
                    s.chars().next()?
                }
            };
            Some(Start {
                first: ClassUnicode::new([ClassUnicodeRange::new(first, first)]),
                empty: false,
            })
        }
        Part::Run {
            set,
            min,
            max,
            most,
        } => {
            let class = set.class();
            // A run of a fixed length has no choice to settle.
            if !follow.any && min < max {
                if !disjoint(&class, &follow.first) {
                    return None;
                }
                // Exactly one stop can work: where the class ends.
                *most = true;
            }
            Some(Start {
                first: class,
                empty: *min == 0,
            })
        }
        Part::Group { parts, .. } => check(parts, follow),
        Part::Optional { parts, take, .. } => {
            let inner = check(parts, follow)?;
            if !follow.any {
                if inner.empty || !disjoint(&inner.first, &follow.first) {
                    return None;
                }
                *take = true;
            }
            Some(Start {
                first: inner.first,
                empty: true,
            })
        }
        Part::Either { branches, .. } => {
            let mut first = ClassUnicode::empty();
            let mut empty = false;
            for b in branches.iter_mut() {
                let s = check(b, follow)?;
                if !follow.any && (s.empty || !disjoint(&first, &s.first)) {
                    return None;
                }
                first.union(&s.first);
                empty |= s.empty;
            }
            Some(Start { first, empty })
        }
    }
}

/// Checks that every choice in `parts` is settled by the next character
/// when `follow` comes after them (settling lazy choices where nothing has
/// to follow), and returns what `parts` may start with.
fn check(parts: &mut [Part], follow: &Follow) -> Option<Start> {
    let mut first = ClassUnicode::empty();
    let mut empty = true;
    let mut after = follow.clone();
    for part in parts.iter_mut().rev() {
        let start = check_one(part, &after)?;
        if start.empty {
            after.first.union(&start.first);
            first.union(&start.first);
        } else {
            after = Follow {
                first: start.first.clone(),
                any: false,
            };
            first = start.first;
            empty = false;
        }
    }
    Some(Start { first, empty })
}

impl Start {
    fn nothing() -> Start {
        Start {
            first: ClassUnicode::empty(),
            empty: true,
        }
    }
}

impl Set {
    fn new(class: &ClassUnicode) -> Set {
        let mut ascii = Box::new([false; 256]);
        let mut wide = Vec::new();
        for r in class.ranges() {
            let (lo, hi) = (r.start() as u32, r.end() as u32);
            for b in lo..=hi.min(0x7f) {
                ascii[b as usize] = true;
            }
            if hi >= 0x80 {
                wide.push((lo.max(0x80), hi));
            }
        }
        let missing: Vec<u8> = (0u8..0x80).filter(|&b| !ascii[b as usize]).collect();
        let all_but =
            (wide[..] == [(0x80, 0x10ffff)] && missing.len() <= 3).then(|| missing.into());
        Set {
            ascii,
            wide: wide.into(),
            all_but,
        }
    }

    /// Where a run of at least `min` and at most `max` characters of the
    /// set from `start` ends, taking as many as there are; `None` when
    /// there are fewer than `min`.
    #[inline]
    fn run(&self, hay: &[u8], start: usize, min: u32, max: u32) -> Option<usize> {
        let rest = &hay[start..];
        if max == u32::MAX && min <= 1 {
            if let Some(but) = &self.all_but {
                let stop = match **but {
                    [a] => memchr::memchr(a, rest),
                    [a, b] => memchr::memchr2(a, b, rest),
                    [a, b, c] => memchr::memchr3(a, b, c, rest),
                    _ => None, // every character: to the end
                }
                .unwrap_or(rest.len());
                let len = match std::str::from_utf8(&rest[..stop]) {
                    Ok(_) => stop,
                    Err(e) => e.valid_up_to(),
                };
                return (len >= min as usize).then_some(start + len);
            }
        }
        let mut i = 0;
        let mut n: u32 = 0;
        if max == u32::MAX {
            // Unbounded: count only what `min` needs.
            loop {
                let from = i;
                while i < rest.len() && self.ascii[rest[i] as usize] {
                    i += 1;
                }
                n = n.saturating_add(u32::try_from(i - from).unwrap_or(u32::MAX));
                match rest.get(i) {
                    Some(&b) if b >= 0x80 => match self.width(&rest[i..]) {
                        0 => break,
                        w => {
                            i += w;
                            n = n.saturating_add(1);
                        }
                    },
                    _ => break,
                }
            }
        } else {
            while n < max {
                match rest.get(i) {
                    Some(&b) if self.ascii[b as usize] => i += 1,
                    Some(&b) if b >= 0x80 => match self.width(&rest[i..]) {
                        0 => break,
                        w => i += w,
                    },
                    _ => break,
                }
                n += 1;
            }
        }
        (n >= min).then_some(start + i)
    }

    fn class(&self) -> ClassUnicode {
        let mut ranges = Vec::new();
        for b in 0u8..0x80 {
            if self.ascii[b as usize] {
                ranges.push(ClassUnicodeRange::new(b as char, b as char));
            }
        }
        for &(lo, hi) in self.wide.iter() {
            if let (Some(lo), Some(hi)) = (char::from_u32(lo), char::from_u32(hi)) {
                ranges.push(ClassUnicodeRange::new(lo, hi));
            }
        }
        ClassUnicode::new(ranges)
    }

    /// The length of the character at the start of `rest` when it is in
    /// the set (0 when it is not, or is not valid UTF-8).
    #[inline]
    fn width(&self, rest: &[u8]) -> usize {
        match rest.first() {
            None => 0,
            Some(&b) if b < 0x80 => usize::from(self.ascii[b as usize]),
            Some(&b) => {
                let n = match b {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => return 0,
                };
                let Some(c) = rest
                    .get(..n)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.chars().next())
                else {
                    return 0;
                };
                let c = c as u32;
                let i = self.wide.partition_point(|&(_, hi)| hi < c);
                match self.wide.get(i) {
                    Some(&(lo, _)) if lo <= c => n,
                    _ => 0,
                }
            }
        }
    }
}

/// Walks `parts` over `hay` from `*at`; `false` when they do not match.
fn walk(parts: &[Part], hay: &[u8], at: &mut usize, slots: &mut [usize]) -> bool {
    for part in parts {
        match part {
            Part::Text(t) => {
                if !hay[*at..].starts_with(t) {
                    return false;
                }
                *at += t.len();
            }
            Part::Run {
                set,
                min,
                max,
                most,
            } => match set.run(hay, *at, *min, if *most { *max } else { *min }) {
                Some(end) => *at = end,
                None => return false,
            },
            Part::Group { index, parts } => {
                let start = *at;
                if !walk(parts, hay, at, slots) {
                    return false;
                }
                slots[index * 2] = start;
                slots[index * 2 + 1] = *at;
            }
            Part::Optional {
                parts,
                take,
                groups,
            } => {
                if *take {
                    let back = *at;
                    if !walk(parts, hay, at, slots) {
                        *at = back;
                        clear(groups, slots);
                    }
                }
            }
            Part::Either { branches, groups } => {
                let back = *at;
                let mut matched = false;
                for b in branches {
                    if walk(b, hay, at, slots) {
                        matched = true;
                        break;
                    }
                    *at = back;
                    clear(groups, slots);
                }
                if !matched {
                    return false;
                }
            }
        }
    }
    true
}

fn clear(groups: &[usize], slots: &mut [usize]) {
    for g in groups {
        slots[g * 2] = usize::MAX;
        slots[g * 2 + 1] = usize::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::bytes::Regex;

    const HDFS: &str = r"^(?P<time>\d{6} \d{6})[ \t]+(?P<pid>\d+)[ \t]+(?P<level>\S+)[ \t]+(?P<component>[^:\s][^:]*):[ \t]+(?P<content>(?:\S.*)?)$";
    const COMBINED: &str = r#"^(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$"#;

    /// Patterns taken, each with lines to mutate into test inputs.
    fn taken() -> Vec<(&'static str, Vec<&'static [u8]>)> {
        vec![
            (
                HDFS,
                vec![
                    b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
                    b"081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: 10.251.73.220:50010",
                    b"081109 204005 35 WARN x:\t",
                ],
            ),
            (
                COMBINED,
                vec![
                    b"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 \"http://x/\" \"Mozilla/4.08 (\xc3\xa9)\"",
                    br#"::1 - - [10/Oct/2000:13:55:36 -0700] "POST / HTTP/1.1" 404 - "-" "curl""#,
                ],
            ),
            // Nothing has to follow: preferred choices, and backing out of
            // an optional part or a branch that fails half-way.
            (
                r"^(?P<k>\w+)=(?P<v>[\d.]+)(?: (?P<flag>true|false))?",
                vec![b"load=0.75 true", b"load=1 tru", b"x=2 falsey"],
            ),
            (r"^(?P<a>x)(?:(?P<b>y)z)?", vec![b"xyz", b"xyq", b"xy"]),
            (r"^(?:(?P<a>ab)|(?P<b>a))(?P<c>b*)", vec![b"abb", b"ac", b"a"]),
            (r"^(?P<a>[^x]*?)(?P<b>x+?)", vec![b"xxx", b"ax"]),
            (r"^(?P<a>[a-c]{2,3})(?P<b>d*)", vec![b"abcd", b"abdd", b"a"]),
            (r"^(?P<a>\S+)(?P<b>.*)", vec![b"one two", b""]),
            // Unicode classes, case-insensitive text, lazy runs with `$`.
            (
                r"^(?P<w>\w+) (?P<d>\d+)\s(?P<rest>[^\d]*?)$",
                vec!["h\u{e9} \u{663}1\u{2003}r\u{e9}".as_bytes(), b"a 1 b"],
            ),
            (r"(?i)^(?P<k>abc)-(?P<v>[^-]*)$", vec![b"ABc-x", b"abc-"]),
            (r"^(?P<n>\d+|-)(?:\.(?P<f>\d+))?$", vec![b"12.5", b"-", b"3."]),
            (r"(?-u)^(?P<a>[a-z]+):(?P<b>[\d ]*)$", vec![b"ab:7 0", b"a:"]),
        ]
    }

    #[test]
    fn shapes_that_need_looking_back_are_left_to_the_regex() {
        for p in [
            r"(?P<a>\S+) (?P<b>\S+)",  // not anchored
            r"^(?P<a>\S+)(?P<b>\S+)$", // where the first run ends is a guess
            r"^\s+(?P<c>.*?)$",        // the run and what follows share spaces
            r"^(?:ab)+$",
            r"^a\b",
            r"(?m)^a$",
            r"^(?:a|ab)c$",
            r"^(?:a)?a$",
            r"^a$b",
            r"^(?P<a>.*?)(?P<b>x+?)",
            r"(?-u)^\xff+$",
            r"(?-u)^(?P<a>[a-z]+):(?P<b>[^:]*)$", // bytes that are not UTF-8
        ] {
            assert!(Straight::new(p).is_none(), "{p}");
        }
    }

    #[test]
    fn runs_of_all_but_a_few_characters_are_found_with_memchr() {
        let set = |p: &str| match Straight::new(&format!("^{p}$")).map(|s| s.parts) {
            Some(mut parts) => match parts.pop() {
                Some(Part::Run { set, .. }) => set.all_but,
                other => panic!("{p}: {other:?}"),
            },
            None => panic!("{p} not taken"),
        };
        assert_eq!(set(".*").as_deref(), Some(&b"\n"[..]));
        assert_eq!(set(r#"[^"]+"#).as_deref(), Some(&b"\""[..]));
        assert_eq!(set(r"[^\]\n:]*").as_deref(), Some(&b"\n:]"[..]));
        assert_eq!(set(r"(?s).*").as_deref(), Some(&b""[..]));
        assert_eq!(set(r"[^:\s]+"), None, "too many to search for");
        assert_eq!(set(r"\S+"), None);
    }

    /// Deterministic pseudo-random numbers.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    #[test]
    fn matches_and_captures_as_the_regex_crate_does() {
        const PIECES: &[&[u8]] = &[
            b" ",
            b"\t",
            b":",
            b"-",
            b".",
            b"\"",
            b"[",
            b"]",
            b"x",
            b"y",
            b"z",
            b"a",
            b"b",
            b"0",
            b"7",
            b"=",
            b"\n",
            "é".as_bytes(),
            "\u{663}".as_bytes(),
            "\u{2003}".as_bytes(),
            b"\xff",
            b"\xc3",
            b"true",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (pattern, lines) in taken() {
            let straight = Straight::new(pattern).unwrap_or_else(|| panic!("not taken: {pattern}"));
            let regex = Regex::new(pattern).unwrap();
            let mut locations = regex.capture_locations();
            let mut slots = vec![0; regex.captures_len() * 2];
            assert_eq!(straight.slot_count(), slots.len(), "{pattern}");
            let (mut hits, mut misses) = (0, 0);
            for round in 0..20_000 {
                let mut hay = lines[round % lines.len()].to_vec();
                for _ in 0..rng.next(4) {
                    let at = rng.next(hay.len() + 1);
                    match rng.next(3) {
                        0 if at < hay.len() => {
                            hay.remove(at);
                        }
                        _ => {
                            let piece = PIECES[rng.next(PIECES.len())];
                            hay.splice(at..at, piece.iter().copied());
                        }
                    }
                }
                let want = regex.captures_read(&mut locations, &hay).is_some();
                let got = straight.matches(&hay, &mut slots);
                let shown = String::from_utf8_lossy(&hay);
                assert_eq!(got, want, "{pattern} on {shown:?}");
                if !want {
                    misses += 1;
                    continue;
                }
                hits += 1;
                for g in 0..regex.captures_len() {
                    let mine =
                        (slots[g * 2] != usize::MAX).then(|| (slots[g * 2], slots[g * 2 + 1]));
                    assert_eq!(
                        mine,
                        locations.get(g),
                        "group {g} of {pattern} on {shown:?}"
                    );
                }
            }
            assert!(
                hits > 1000 && misses > 100,
                "{pattern}: {hits} hits, {misses} misses"
            );
        }
    }
}
