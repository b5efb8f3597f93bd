//! `add_fields`: adds constant fields to every event.
//!
//! Values are taken literally from the YAML (strings, numbers, booleans,
//! lists, maps); they are built once and cloned per event (strings are shared
//! buffers, so a clone does not copy them).

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `add_fields` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The fields to add: dotted path -> value (any YAML value, taken
    /// literally).
    pub fields: BTreeMap<String, Value>,
    /// Whether to replace a field the event already has.
    #[serde(default = "yes")]
    pub overwrite: bool,
}

fn yes() -> bool {
    true
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .fields
            .keys()
            .filter_map(|k| crate::check_path("fields", k))
            .collect();
        if self.fields.is_empty() {
            problems.push(Problem::at("fields", "list at least one field to add"));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(AddFields {
            fields: self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            overwrite: self.overwrite,
        }))
    }
}

/// The `add_fields` processor.
struct AddFields {
    fields: Vec<(String, Value)>,
    overwrite: bool,
}

impl Processor for AddFields {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        for e in &mut batch.events {
            for (path, value) in &self.fields {
                if self.overwrite || e.get(path).is_none() {
                    e.insert(path, value.clone());
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
        let c: Config =
            config("fields: {env: prod, tier: 3, labels: {team: core}}\noverwrite: false");
        assert!(c.validate().is_empty());
        assert!(!c.overwrite);
        assert!(!examples::<Config>("add_fields").is_empty());
        let e = unknown_key::<Config>("fields: {a: 1}\noverwrites: true");
        assert!(e.contains("did you mean `overwrite`"), "{e}");
        let c: Config = config("fields: {'.a': 1}");
        assert_eq!(c.validate().len(), 1);
        let c: Config = config("fields: {}");
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn adds_typed_values_at_dotted_paths() {
        let mut p =
            build::<Config>("fields: {env: prod, app.tier: 3, ratio: 0.5, on: true, tags: [a, b]}");
        let mut b = batch(&["x"]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        let e = &b.events[0];
        assert_eq!(e.get("env"), Some(&Value::from("prod")));
        assert_eq!(e.get("app.tier"), Some(&Value::Integer(3)));
        assert_eq!(e.get("ratio"), Some(&Value::Float(0.5)));
        assert_eq!(e.get("on"), Some(&Value::Bool(true)));
        assert_eq!(
            e.get("tags"),
            Some(&Value::Array(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn overwrite_false_keeps_existing_fields() {
        for (overwrite, want) in [(true, "new"), (false, "old")] {
            let mut p = build::<Config>(&format!(
                "fields: {{env: new, other: x}}\noverwrite: {overwrite}"
            ));
            let mut b = batch(&["x"]);
            b.events[0].insert("env", "old");
            run(p.as_mut(), &mut b);
            assert_eq!(b.events[0].get("env").and_then(Value::as_str), Some(want));
            assert_eq!(b.events[0].get("other").and_then(Value::as_str), Some("x"));
        }
    }
}
