//! `parse_logfmt`: reads `key=value` pairs (logfmt, and other key/value
//! formats through `pair_separator`, `key_separator` and `quotes`) into
//! fields.
//!
//! One pass over the text: each value is a slice of the text's own buffer
//! unless it is quoted and holds a backslash escape (`\"`, `\\`), which is
//! copied once, unescaped. A key without a separator is a flag (`true`), as
//! in logfmt. A value without a key or an unterminated quote fails the
//! event, which then gets no field at all.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::parse_regex::{convert, Kind};

/// Options of the `parse_logfmt` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field (dotted path) to parse; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Put the pairs in a map under this field (dotted path) instead of at
    /// the top level.
    #[serde(default)]
    pub target: Option<String>,
    /// What separates one pair from the next; any run of spaces and tabs
    /// when unset (logfmt). Spaces around keys and unquoted values are
    /// trimmed.
    #[serde(default)]
    pub pair_separator: Option<String>,
    /// What separates a key from its value.
    #[serde(default = "equals")]
    pub key_separator: String,
    /// The characters that may quote a value; a backslash inside escapes
    /// the next character.
    #[serde(default = "double_quote")]
    pub quotes: Vec<char>,
    /// Conversions of values by key: `integer`, `float` or `bool`; the
    /// others stay strings.
    #[serde(default)]
    pub types: BTreeMap<String, Kind>,
}

fn equals() -> String {
    "=".into()
}

fn double_quote() -> Vec<char> {
    vec!['"']
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.key_separator.is_empty() {
            problems.push(Problem::at("key_separator", "must not be empty"));
        }
        if let Some(sep) = &self.pair_separator {
            if sep.is_empty() {
                problems.push(Problem::at(
                    "pair_separator",
                    "must not be empty: leave it unset to separate pairs by spaces",
                ));
            } else if *sep == self.key_separator {
                problems.push(Problem::at(
                    "pair_separator",
                    "must differ from `key_separator`",
                ));
            }
        }
        for q in &self.quotes {
            if !q.is_ascii_punctuation() || *q == '\\' {
                problems.push(Problem::at(
                    "quotes",
                    format!(
                        "`{q}` cannot quote values: use ASCII punctuation such as '\"' or \"'\""
                    ),
                ));
            }
        }
        for (key, path) in [("field", &self.field), ("target", &self.target)] {
            problems.extend(path.as_deref().and_then(|p| crate::check_path(key, p)));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(ParseLogfmt {
            syntax: Syntax {
                pair_sep: self.pair_separator.as_ref().map(|s| s.as_bytes().to_vec()),
                key_sep: self.key_separator.as_bytes().to_vec(),
                quotes: self
                    .quotes
                    .iter()
                    .filter_map(|c| u8::try_from(*c).ok())
                    .collect(),
            },
            types: self.types.clone(),
            field: self.field.clone(),
            target: self.target.clone(),
            scratch: Fields::new(),
        }))
    }
}

/// The separators and quotes, as bytes.
struct Syntax {
    /// `None`: runs of spaces and tabs.
    pair_sep: Option<Vec<u8>>,
    key_sep: Vec<u8>,
    quotes: Vec<u8>,
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn trim(b: &[u8], mut a: usize, mut z: usize) -> (usize, usize) {
    while a < z && is_blank(b[a]) {
        a += 1;
    }
    while z > a && is_blank(b[z - 1]) {
        z -= 1;
    }
    (a, z)
}

impl Syntax {
    /// Whether a pair separator starts at `i`; its length.
    fn pair_sep_at(&self, b: &[u8], i: usize) -> Option<usize> {
        match &self.pair_sep {
            None => is_blank(b[i]).then_some(1),
            Some(s) => b[i..].starts_with(s).then_some(s.len()),
        }
    }

    /// Parses `text` into `out` as (key, value) pairs, in order.
    fn parse(
        &self,
        text: &Bytes,
        mut each: impl FnMut(&str, Value) -> Result<(), String>,
    ) -> Result<usize, String> {
        let b = &text[..];
        let mut i = 0;
        let mut pairs = 0;
        while i < b.len() {
            // Separators and blanks between pairs.
            if let Some(n) = self.pair_sep_at(b, i) {
                i += n;
                continue;
            }
            if is_blank(b[i]) {
                i += 1;
                continue;
            }
            // The key runs to the key separator or the end of the pair.
            let key_start = i;
            let mut key_end = None;
            while i < b.len() {
                if b[i..].starts_with(&self.key_sep) {
                    key_end = Some(i);
                    break;
                }
                if self.pair_sep_at(b, i).is_some() {
                    break;
                }
                i += 1;
            }
            let (ka, kz) = trim(b, key_start, key_end.unwrap_or(i));
            let key = String::from_utf8_lossy(&b[ka..kz]);
            let Some(sep) = key_end else {
                // A bare key: a flag.
                each(&key, Value::Bool(true))?;
                pairs += 1;
                continue;
            };
            if ka == kz {
                return Err(format!("a value without a key at byte {key_start}"));
            }
            i = sep + self.key_sep.len();
            while i < b.len() && is_blank(b[i]) && self.pair_sep.is_some() {
                i += 1;
            }
            let value = if i < b.len() && self.quotes.contains(&b[i]) {
                let q = b[i];
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                while j < b.len() && b[j] != q {
                    if b[j] == b'\\' {
                        escaped = true;
                        j += 1;
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Err(format!(
                        "the value of `{key}` opens a quote at byte {} that is never closed",
                        start - 1
                    ));
                }
                i = j + 1;
                if escaped {
                    unescape(&b[start..j])
                } else {
                    text.slice(start..j)
                }
            } else {
                let start = i;
                while i < b.len() && self.pair_sep_at(b, i).is_none() {
                    i += 1;
                }
                let (a, z) = trim(b, start, i);
                text.slice(a..z)
            };
            each(&key, Value::String(value))?;
            pairs += 1;
        }
        Ok(pairs)
    }
}

/// Removes the backslashes of a quoted value.
fn unescape(raw: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(raw.len());
    let mut k = 0;
    while k < raw.len() {
        if raw[k] == b'\\' && k + 1 < raw.len() {
            k += 1;
        }
        v.push(raw[k]);
        k += 1;
    }
    Bytes::from(v)
}

/// The `parse_logfmt` processor.
struct ParseLogfmt {
    syntax: Syntax,
    types: BTreeMap<String, Kind>,
    field: Option<String>,
    target: Option<String>,
    /// The pairs of the event being parsed, reused from event to event.
    scratch: Fields,
}

impl ParseLogfmt {
    fn parse(&mut self, e: &Event) -> Result<(), String> {
        let text = crate::input_text(e, self.field.as_deref())?;
        self.scratch = Fields::new();
        let (scratch, types) = (&mut self.scratch, &self.types);
        let n = self.syntax.parse(&text, |key, value| {
            let value = match (types.get(key), &value) {
                (Some(kind), Value::String(s)) => convert(key, s, Some(*kind))?,
                _ => value,
            };
            scratch.insert(key, value);
            Ok(())
        })?;
        if n == 0 {
            return Err("no key/value pairs".into());
        }
        Ok(())
    }
}

impl Processor for ParseLogfmt {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        for (i, e) in batch.events.iter_mut().enumerate() {
            match self.parse(e) {
                Err(m) => cx.fail(i, m),
                Ok(()) => {
                    let pairs = std::mem::take(&mut self.scratch);
                    match &self.target {
                        Some(t) => e.insert(t, Value::Map(pairs)),
                        None => e.fields.extend(pairs),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn text(e: &Event, k: &str) -> Option<String> {
        e.fields.get(k).map(|v| v.to_text().into_owned())
    }

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("pair_separator: ','\nkey_separator: ':'\nquotes: ['\"', \"'\"]");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("parse_logfmt").is_empty());
        let e = unknown_key::<Config>("separator: ','");
        assert!(e.contains("unknown option `separator`"), "{e}");
        let c: Config = config("pair_separator: ''\nkey_separator: ''\nquotes: [a]");
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
        let c: Config = config("pair_separator: '='");
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn logfmt_lines() {
        let mut p = build::<Config>("types: {status: integer, took: float}");
        let line = r#"time=2026-12-03T07:51:25Z level=info msg="GET /a \"b\"" status=200 took=0.25  debug path=/x"#;
        let mut b = batch(&[line]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events[0];
        assert_eq!(text(e, "level").as_deref(), Some("info"));
        assert_eq!(text(e, "msg").as_deref(), Some(r#"GET /a "b""#));
        assert_eq!(e.fields.get("status"), Some(&Value::Integer(200)));
        assert_eq!(e.fields.get("took"), Some(&Value::Float(0.25)));
        assert_eq!(e.fields.get("debug"), Some(&Value::Bool(true)));
        assert_eq!(text(e, "path").as_deref(), Some("/x"));
        assert_eq!(e.fields.len(), 7);
        // Unescaped values point into the body.
        let body = e.body.as_ptr_range();
        let level = e
            .fields
            .get("level")
            .and_then(Value::as_bytes)
            .map(<[u8]>::as_ptr);
        assert!(level.is_some_and(|p| body.contains(&p)));
        let mut b = batch(&[r#"a= b="" c=3"#]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(text(&b.events[0], "a").as_deref(), Some(""));
        assert_eq!(text(&b.events[0], "b").as_deref(), Some(""));
    }

    #[test]
    fn other_separators_and_quotes() {
        let mut p = build::<Config>(
            "pair_separator: ','\nkey_separator: ':'\nquotes: [\"'\"]\ntarget: kv\nfield: f",
        );
        let mut b = batch(&["x"]);
        b.events[0].insert("f", "user: alice , role:'admin, ops' ,n:3");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events[0];
        assert_eq!(e.get("kv.user").and_then(Value::as_str), Some("alice"));
        assert_eq!(e.get("kv.role").and_then(Value::as_str), Some("admin, ops"));
        assert_eq!(e.get("kv.n").and_then(Value::as_str), Some("3"));
    }

    #[test]
    fn malformed_lines_fail_and_add_nothing() {
        let mut p = build::<Config>("types: {n: integer}");
        let mut b = batch(&["a=1 =2", r#"a=1 msg="open"#, "", "a=1 n=x", "ok=1"]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(
            f.iter().map(|f| f.0).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "{f:?}"
        );
        assert!(f[0].1.contains("without a key"), "{f:?}");
        assert!(f[1].1.contains("never closed"), "{f:?}");
        assert!(f[2].1.contains("no key/value"), "{f:?}");
        assert!(f[3].1.contains("not an integer"), "{f:?}");
        assert!(b.events[..4].iter().all(|e| e.fields.is_empty()));
        assert_eq!(b.events[4].fields.len(), 1);
    }
}
