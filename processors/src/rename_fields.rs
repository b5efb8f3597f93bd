//! `rename_fields`: moves fields to new names.
//!
//! Renames run in the order they are written, so `{a: b, b: c}` moves `a` to
//! `c` through `b`. An event without the `from` field is left as it is; an
//! existing `to` field is replaced.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use sluice_core::prelude::*;

/// Options of the `rename_fields` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The renames: `from: to`, both dotted paths, applied in file order.
    #[serde(deserialize_with = "ordered_pairs")]
    pub fields: Vec<(String, String)>,
}

/// Reads a mapping keeping its order (a `BTreeMap` would sort it).
fn ordered_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping of `from: to` field names")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pair) = m.next_entry::<String, String>()? {
                out.push(pair);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Problem::at("fields", "list at least one `from: to` rename"));
        }
        for (from, to) in &self.fields {
            problems.extend(crate::check_path("fields", from));
            problems.extend(crate::check_path("fields", to));
            if from == to {
                problems.push(Problem::at(
                    "fields",
                    format!("`{from}` is renamed to itself"),
                ));
            } else if to.starts_with(&format!("{from}.")) {
                problems.push(Problem::at(
                    "fields",
                    format!("`{from}` cannot move inside itself (`{to}`)"),
                ));
            }
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(RenameFields {
            fields: self.fields.clone(),
        }))
    }
}

/// The `rename_fields` processor.
struct RenameFields {
    fields: Vec<(String, String)>,
}

impl Processor for RenameFields {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        for e in &mut batch.events {
            for (from, to) in &self.fields {
                if let Some(v) = e.remove(from) {
                    e.insert(to, v);
                }
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
        let c: Config = config("fields: {msg: message_text, lvl: level}");
        assert_eq!(c.fields[0], ("msg".to_string(), "message_text".to_string()));
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("rename_fields").is_empty());
        let e = unknown_key::<Config>("fields: {a: b}\nmode: x");
        assert!(e.contains("unknown option `mode`"), "{e}");
        let c: Config = config("fields: {a: a, b: b.c, '': x}");
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
    }

    #[test]
    fn renames_in_file_order_across_nesting() {
        let mut p = build::<Config>("fields: {a: b, b: c, http.code: status, missing: x}");
        let mut b = batch(&["x"]);
        b.events[0].insert("a", 1i64);
        b.events[0].insert("http.code", 200i64);
        b.events[0].insert("status", "old");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events[0];
        assert_eq!(e.get("c"), Some(&Value::Integer(1)));
        assert_eq!(e.get("a"), None);
        assert_eq!(e.get("b"), None);
        assert_eq!(e.get("status"), Some(&Value::Integer(200)));
        assert_eq!(e.get("http.code"), None);
        assert_eq!(e.get("x"), None);
    }
}
