//! Masking: variable parts of a line (addresses, numbers, ids) replaced by
//! `<*>` before the line is mined, so that they never split a template.
//!
//! All masks are compiled into one regex (an alternation, earlier masks
//! first), run once over the line; the masked line is written into a buffer
//! that is reused from line to line.

use regex::bytes::Regex;
use serde::Deserialize;

/// A built-in mask.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinMask {
    /// An IPv4 address with an optional `:port`.
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
            BuiltinMask::Ipv4 => r"(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?",
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
            return Ok(Masker { regex: None });
        }
        let regex = Regex::new(&all.join("|")).map_err(|e| format!("invalid masks: {e}"))?;
        Ok(Masker { regex: Some(regex) })
    }

    /// Whether there is any mask.
    pub fn is_empty(&self) -> bool {
        self.regex.is_none()
    }

    /// Writes `line` with every match replaced by `<*>` into `out`; returns
    /// the masked line (`line` itself when nothing matched).
    pub fn apply<'a>(&self, line: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(m: &Masker, s: &str) -> String {
        let mut buf = Vec::new();
        String::from_utf8_lossy(m.apply(s.as_bytes(), &mut buf)).into_owned()
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
