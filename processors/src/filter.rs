//! `filter`: keeps the events that match a condition (or, with `invert`,
//! those that do not).
//!
//! The condition language is described in `docs/conditions.md`; it is parsed
//! when the pipeline is loaded, so a typo is a config error with its column.

use crate::condition::Condition;
use serde::Deserialize;
use sluice_core::prelude::*;

/// Options of the `filter` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The events to keep, such as `.level == "error" || .status >= 500`.
    pub condition: Condition,
    /// Drop the matching events instead of keeping them.
    #[serde(default)]
    pub invert: bool,
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Filter {
            condition: self.condition.clone(),
            keep_matching: !self.invert,
        }))
    }
}

/// The `filter` processor.
struct Filter {
    condition: Condition,
    keep_matching: bool,
}

impl Processor for Filter {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        let (c, keep) = (&self.condition, self.keep_matching);
        batch.events.retain(|e| c.matches(e) == keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("condition: '.status >= 500'\ninvert: true");
        assert!(c.invert);
        assert!(!examples::<Config>("filter").is_empty());
        let e = unknown_key::<Config>("condition: 'true'\nnegate: true");
        assert!(e.contains("unknown option `negate`"), "{e}");
    }

    #[test]
    fn a_bad_condition_is_a_config_error_with_its_column() {
        let e = unknown_key::<Config>("condition: '.status >= '");
        assert!(e.contains("at column 12"), "{e}");
    }

    #[test]
    fn keeps_matching_events_in_order() {
        let mut p = build::<Config>(r#"condition: '.message =~ "^ERR" || .level == "warn"'"#);
        let mut b = batch(&["ERR 1", "ok", "ERR 2", "fine"]);
        b.events[3].insert("level", "warn");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let bodies: Vec<_> = b.events.iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, vec!["ERR 1", "ERR 2", "fine"]);
    }

    #[test]
    fn invert_drops_matching_events() {
        let mut p = build::<Config>("condition: 'starts_with(.message, \"DEBUG\")'\ninvert: true");
        let mut b = batch(&["DEBUG x", "INFO y"]);
        run(p.as_mut(), &mut b);
        assert_eq!(b.len(), 1);
        assert_eq!(b.events[0].body, "INFO y");
    }
}
