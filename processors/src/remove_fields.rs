//! `remove_fields`: removes fields (dotted paths) from every event.

use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `remove_fields` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The fields to remove, as dotted paths; a field an event lacks is
    /// skipped.
    pub fields: Vec<String>,
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .fields
            .iter()
            .filter_map(|k| crate::check_path("fields", k))
            .collect();
        if self.fields.is_empty() {
            problems.push(Problem::at("fields", "list at least one field to remove"));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(RemoveFields {
            fields: self.fields.clone(),
        }))
    }
}

/// The `remove_fields` processor.
struct RemoveFields {
    fields: Vec<String>,
}

impl Processor for RemoveFields {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        for e in &mut batch.events {
            for path in &self.fields {
                e.remove(path);
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
        let c: Config = config("fields: [password, http.headers.cookie]");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("remove_fields").is_empty());
        let e = unknown_key::<Config>("fields: [a]\nfield: b");
        assert!(e.contains("unknown option `field`"), "{e}");
        let c: Config = config("fields: []");
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn removes_top_level_and_nested_fields() {
        let mut p = build::<Config>("fields: [password, http.cookie, absent, absent.deeper]");
        let mut b = batch(&["x", "y"]);
        b.events[0].insert("password", "hunter2");
        b.events[0].insert("http.cookie", "c");
        b.events[0].insert("http.method", "GET");
        b.events[1].insert("absent", 1i64);
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(b.events[0].get("password"), None);
        assert_eq!(b.events[0].get("http.cookie"), None);
        assert_eq!(
            b.events[0].get("http.method").and_then(Value::as_str),
            Some("GET")
        );
        assert!(b.events[1].fields.is_empty());
        assert_eq!(b.events[0].body, "x");
    }
}
