//! `parse_regex`: extracts the named captures of a regex into fields.
//!
//! The regex is compiled once and runs on bytes (the body need not be
//! UTF-8). Each named capture becomes a string field that is a slice of the
//! body's own buffer (`Bytes::slice`): nothing is copied. `types` converts
//! chosen captures to integers, floats or booleans. A capture group that did
//! not take part in the match adds no field.

use std::collections::BTreeMap;

use bytes::Bytes;
use regex::bytes::{CaptureLocations, Regex};
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::straight::Straight;

/// What a capture is converted to.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A signed 64-bit integer.
    Integer,
    /// A 64-bit float.
    Float,
    /// `true` or `false`.
    Bool,
}

/// Options of the `parse_regex` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The regex, with at least one named capture (`(?P<status>\d+)`); each
    /// named capture becomes a field.
    pub pattern: String,
    /// The field (dotted path) to match; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Put the captures in a map under this field (dotted path) instead of at
    /// the top level.
    #[serde(default)]
    pub target: Option<String>,
    /// Conversions of captures by name: `integer`, `float` or `bool`; the
    /// others stay strings.
    #[serde(default)]
    pub types: BTreeMap<String, Kind>,
}

impl Config {
    fn regex(&self) -> Result<Regex, String> {
        Regex::new(&self.pattern).map_err(|e| format!("invalid regex: {e}"))
    }
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match self.regex() {
            Err(m) => problems.push(Problem::at("pattern", m)),
            Ok(re) => {
                let names: Vec<&str> = re.capture_names().flatten().collect();
                if names.is_empty() {
                    problems.push(Problem::at(
                        "pattern",
                        "the pattern has no named capture, so it would extract nothing: name groups like (?P<status>\\d+)",
                    ));
                }
                for name in self.types.keys().filter(|k| !names.contains(&k.as_str())) {
                    problems.push(Problem::at(
                        "types",
                        format!(
                            "`{name}` is not a named capture of the pattern (captures: {})",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        for (key, path) in [("field", &self.field), ("target", &self.target)] {
            problems.extend(path.as_deref().and_then(|p| crate::check_path(key, p)));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let regex = self.regex().map_err(BuildError::Other)?;
        let captures = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, name)| {
                let name = name?;
                Some((i, FieldName::from(name), self.types.get(name).copied()))
            })
            .collect();
        let slots = regex.captures_len() * 2;
        let straight = Straight::new(&self.pattern).filter(|s| s.slot_count() == slots);
        Ok(Box::new(ParseRegex {
            slots: vec![usize::MAX; slots],
            straight,
            locations: regex.capture_locations(),
            regex,
            captures,
            scratch: Vec::new(),
            field: self.field.clone(),
            target: self.target.clone(),
        }))
    }
}

/// The `parse_regex` processor.
struct ParseRegex {
    regex: Regex,
    /// The same pattern for the one-pass walk, when it has that shape.
    straight: Option<Straight>,
    /// `[start, end]` of each group in the last match (`usize::MAX`: none).
    slots: Vec<usize>,
    /// Reused for every event: matching allocates nothing.
    locations: CaptureLocations,
    /// Group index, field name and conversion of each named capture.
    /// Names are inline `FieldName`s: cloning one per event does not allocate.
    captures: Vec<(usize, FieldName, Option<Kind>)>,
    /// The captures of the event being parsed, reused from event to event.
    scratch: Vec<(FieldName, Value)>,
    field: Option<String>,
    target: Option<String>,
}

/// Converts a captured text to `kind` (a string when `None`); shared by the
/// parsers that take `types`.
pub(crate) fn convert(name: &str, text: &Bytes, kind: Option<Kind>) -> Result<Value, String> {
    let Some(kind) = kind else {
        return Ok(Value::String(text.clone()));
    };
    let s = std::str::from_utf8(text).unwrap_or("");
    let v = match kind {
        Kind::Integer => s.parse().ok().map(Value::Integer),
        Kind::Float => s.parse().ok().map(Value::Float),
        Kind::Bool => s.parse().ok().map(Value::Bool),
    };
    v.ok_or_else(|| {
        let kind = match kind {
            Kind::Integer => "an integer",
            Kind::Float => "a float",
            Kind::Bool => "a boolean (true or false)",
        };
        format!(
            "capture `{name}`: `{}` is not {kind}",
            String::from_utf8_lossy(text)
        )
    })
}

impl ParseRegex {
    /// Matches `e` and puts its captures into `self.scratch` (all or none).
    fn parse(&mut self, e: &Event) -> Result<(), String> {
        let input: &Bytes = match &self.field {
            None => &e.body,
            Some(f) => match e.get(f) {
                Some(Value::String(b)) => b,
                Some(other) => {
                    return Err(format!("field `{f}` holds a {}, not text", other.kind()))
                }
                None => return Err(format!("field `{f}` is missing")),
            },
        };
        let matched = match &self.straight {
            Some(s) => s.matches(input, &mut self.slots),
            None => {
                let found = self
                    .regex
                    .captures_read(&mut self.locations, input)
                    .is_some();
                for (i, pair) in self.slots.chunks_exact_mut(2).enumerate() {
                    let (start, end) = self.locations.get(i).unwrap_or((usize::MAX, usize::MAX));
                    pair[0] = start;
                    pair[1] = end;
                }
                found
            }
        };
        if !matched {
            return Err("pattern did not match".to_string());
        }
        self.scratch.clear();
        for (group, name, kind) in &self.captures {
            let (start, end) = (self.slots[group * 2], self.slots[group * 2 + 1]);
            if start != usize::MAX {
                let text = input.slice(start..end);
                let value = match kind {
                    None => Value::String(text),
                    Some(_) => convert(name, &text, *kind)?,
                };
                self.scratch.push((name.clone(), value));
            }
        }
        Ok(())
    }
}

impl Processor for ParseRegex {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        for (i, e) in batch.events.iter_mut().enumerate() {
            match self.parse(e) {
                Err(m) => cx.fail(i, m),
                Ok(()) => match &self.target {
                    Some(t) => e.insert(t, Value::Map(self.scratch.drain(..).collect())),
                    // Capture names are distinct (the regex crate rejects a
                    // repeated name): each is looked up among the event's
                    // own fields only.
                    None => e.fields.extend_distinct(self.scratch.drain(..)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    const APACHE: &str = r#"pattern: '^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-)'
types: {status: integer}"#;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config(APACHE);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(!examples::<Config>("parse_regex").is_empty());
        let e = unknown_key::<Config>("pattern: '(?P<a>.)'\ntype_map: {}");
        assert!(e.contains("unknown option `type_map`"), "{e}");
        let e = unknown_key::<Config>("pattern: '(?P<a>.)'\ntypes: {a: int}");
        assert!(e.contains("integer"), "{e}");
    }

    #[test]
    fn validate_rejects_bad_patterns() {
        let c: Config = config("pattern: '(\\d+)'");
        assert!(c.validate()[0].message.contains("no named capture"));
        let c: Config = config("pattern: '(?P<a>'");
        assert!(c.validate()[0].message.contains("invalid regex"));
        let c: Config = config("pattern: '(?P<a>.)'\ntypes: {b: float}");
        assert!(c.validate()[0]
            .message
            .contains("`b` is not a named capture"));
    }

    #[test]
    fn captures_are_zero_copy_slices_of_the_body() {
        let mut p = build::<Config>(APACHE);
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        let mut b = batch(&[line]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events[0];
        assert_eq!(e.get("client").and_then(Value::as_str), Some("127.0.0.1"));
        assert_eq!(e.get("method").and_then(Value::as_str), Some("GET"));
        assert_eq!(
            e.get("path").and_then(Value::as_str),
            Some("/apache_pb.gif")
        );
        assert_eq!(e.get("status"), Some(&Value::Integer(200)));
        assert_eq!(e.get("bytes").and_then(Value::as_str), Some("2326"));
        let body = e.body.as_ptr_range();
        let client = e
            .get("client")
            .and_then(Value::as_bytes)
            .map(<[u8]>::as_ptr);
        assert!(
            client.is_some_and(|p| body.contains(&p)),
            "the capture points into the body"
        );
    }

    #[test]
    fn target_field_types_and_optional_groups() {
        let mut p = build::<Config>(
            "pattern: '(?P<k>\\w+)=(?P<v>[\\d.]+)(?: (?P<flag>true|false))?'\nfield: kv\ntarget: parsed\ntypes: {v: float, flag: bool}",
        );
        let mut b = batch(&["x", "y"]);
        b.events[0].insert("kv", "load=0.75 true");
        b.events[1].insert("kv", "load=1");
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(b.events[0].get("parsed.v"), Some(&Value::Float(0.75)));
        assert_eq!(b.events[0].get("parsed.flag"), Some(&Value::Bool(true)));
        assert_eq!(b.events[1].get("parsed.flag"), None);
        assert_eq!(
            b.events[1].get("parsed.k").and_then(Value::as_str),
            Some("load")
        );
    }

    #[test]
    fn no_match_and_bad_conversions_fail_the_event_only() {
        let mut p = build::<Config>("pattern: '^(?P<n>\\S+)$'\ntypes: {n: integer}");
        let mut b = batch(&["12", "two words", "x12", "7"]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0], (1, "pattern did not match".to_string()));
        assert_eq!(f[1].0, 2);
        assert!(f[1].1 == "capture `n`: `x12` is not an integer", "{f:?}");
        assert_eq!(b.len(), 4);
        assert_eq!(b.events[3].get("n"), Some(&Value::Integer(7)));
        assert_eq!(b.events[2].get("n"), None);
    }

    #[test]
    fn a_failed_conversion_adds_no_capture_at_all() {
        let mut p = build::<Config>("pattern: '^(?P<a>\\w+) (?P<n>\\S+)$'\ntypes: {n: integer}");
        let mut b = batch(&["first x1", "second 2"]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0]);
        assert!(b.events[0].fields.is_empty(), "{:?}", b.events[0].fields);
        assert_eq!(b.events[1].fields.len(), 2);
        assert_eq!(b.events[1].get("a").and_then(Value::as_str), Some("second"));
        assert_eq!(b.events[1].get("n"), Some(&Value::Integer(2)));
    }
}
