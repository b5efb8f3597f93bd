//! `parse_json`: parses a JSON object from the body (or a field) into fields.
//!
//! The bytes are parsed in place with `serde_json::from_slice` (no copy into a
//! `String` first). By default the object's top-level keys are merged into the
//! event's fields, replacing fields of the same name; with `target` the whole
//! object goes under that one field.
//!
//! An object with more than `max_fields` fields (nested ones included, as
//! [`Fields::deep_len`] counts them) fails the event like malformed JSON:
//! it goes to the dead-letter channel, or passes on unchanged, counted.

use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `parse_json` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field (dotted path) holding the JSON text; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Put the parsed object under this field (dotted path) instead of
    /// merging its keys into the event's fields.
    #[serde(default)]
    pub target: Option<String>,
    /// The most fields the parsed object may have, nested ones included.
    #[serde(default = "sluice_core::defaults::max_fields")]
    pub max_fields: std::num::NonZeroUsize,
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        [("field", &self.field), ("target", &self.target)]
            .into_iter()
            .filter_map(|(key, path)| crate::check_path(key, path.as_deref()?))
            .collect()
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(ParseJson {
            field: self.field.clone(),
            target: self.target.clone(),
            max_fields: self.max_fields.get(),
        }))
    }
}

/// The `parse_json` processor.
struct ParseJson {
    field: Option<String>,
    target: Option<String>,
    max_fields: usize,
}

impl ParseJson {
    fn parse(&self, e: &Event) -> Result<Fields, String> {
        let text: &[u8] = match &self.field {
            None => &e.body,
            Some(f) => match e.get(f) {
                Some(Value::String(b)) => b,
                Some(other) => {
                    return Err(format!(
                        "field `{f}` holds a {}, not JSON text",
                        other.kind()
                    ))
                }
                None => return Err(format!("field `{f}` is missing")),
            },
        };
        let obj = serde_json::from_slice::<Fields>(text)
            .map_err(|err| format!("cannot read a JSON object: {err}"))?;
        let n = obj.deep_len();
        if n > self.max_fields {
            return Err(format!(
                "an object of {n} fields (nested ones included) is more than max_fields ({})",
                self.max_fields
            ));
        }
        Ok(obj)
    }
}

impl Processor for ParseJson {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        for (i, e) in batch.events.iter_mut().enumerate() {
            match self.parse(e) {
                Err(m) => cx.fail(i, m),
                Ok(obj) => match &self.target {
                    Some(t) => e.insert(t, Value::Map(obj)),
                    None => e.fields.extend(obj),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("field: payload\ntarget: parsed");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("parse_json").is_empty());
        let e = unknown_key::<Config>("source: payload");
        assert!(e.contains("unknown option `source`"), "{e}");
        let c: Config = config("target: 'a..b'");
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn merges_top_level_keys_by_default() {
        let mut p = build::<Config>("{}");
        let mut b = batch(&[r#"{"level":"info","n":3,"x":1.5,"ok":true,"nested":{"a":[1,null]}}"#]);
        b.events[0].insert("level", "old");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events[0];
        assert_eq!(e.get("level").and_then(Value::as_str), Some("info"));
        assert_eq!(e.get("n"), Some(&Value::Integer(3)));
        assert_eq!(e.get("x"), Some(&Value::Float(1.5)));
        assert_eq!(e.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(
            e.get("nested.a"),
            Some(&Value::Array(vec![Value::Integer(1), Value::Null]))
        );
    }

    #[test]
    fn reads_a_field_and_writes_a_target() {
        let mut p = build::<Config>("field: raw\ntarget: doc.parsed");
        let mut b = batch(&["body"]);
        b.events[0].insert("raw", r#"{"a":1}"#);
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(b.events[0].get("doc.parsed.a"), Some(&Value::Integer(1)));
        assert_eq!(b.events[0].get("a"), None);
    }

    #[test]
    fn an_object_over_max_fields_fails_the_event_only() {
        let mut p = build::<Config>("max_fields: 3");
        let mut b = batch(&[r#"{"a":1,"b":{"c":2}}"#, r#"{"a":1,"b":{"c":2,"d":3}}"#]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, 1);
        assert_eq!(
            f[0].1,
            "an object of 4 fields (nested ones included) is more than max_fields (3)"
        );
        assert_eq!(b.events[0].get("b.c"), Some(&Value::Integer(2)));
        assert_eq!(b.events[1].get("a"), None);
        let wide: String = (0..20_000).map(|i| format!(",\"k{i}\":{i}")).collect();
        let wide = format!("{{\"first\":0{wide}}}");
        let mut b = batch(&[wide.as_str()]);
        let f = run(build::<Config>("{}").as_mut(), &mut b);
        assert!(f[0].1.contains("20001 fields"), "{f:?}");
        let mut b = batch(&[wide.as_str()]);
        assert!(run(build::<Config>("max_fields: 20001").as_mut(), &mut b).is_empty());
        assert_eq!(b.events[0].fields.len(), 20_001);
        assert!(unknown_key::<Config>("max_fields: 0")
            .contains("`max_fields` must be a whole number above 0"));
    }

    #[test]
    fn non_objects_and_garbage_fail_the_event_only() {
        let mut p = build::<Config>("{}");
        let mut b = batch(&["[1,2]", "{\"a\":", "not json", "{\"ok\":1}", "\"s\""]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(f.iter().map(|f| f.0).collect::<Vec<_>>(), vec![0, 1, 2, 4]);
        assert!(
            f[0].1
                .contains("invalid type: sequence, expected a map at line 1 column 0"),
            "{f:?}"
        );
        assert!(f[1].1.contains("EOF"), "{f:?}");
        assert_eq!(b.len(), 5);
        assert_eq!(b.events[3].get("ok"), Some(&Value::Integer(1)));
        let mut p = build::<Config>("field: raw");
        let mut b = batch(&["a", "b"]);
        b.events[1].insert("raw", 5i64);
        let f = run(p.as_mut(), &mut b);
        assert!(
            f[0].1.contains("missing") && f[1].1.contains("integer"),
            "{f:?}"
        );
    }
}
