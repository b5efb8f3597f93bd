//! `dedupe`: drops an event when one with the same values (of `fields`, or
//! the same body) was seen among the last `max_entries` distinct ones.
//!
//! Each event is reduced to a 128-bit digest of those values (two keyed
//! hashes, seeded at random per start), so memory is 16 bytes and a little
//! bookkeeping per remembered entry, whatever the events' size; two
//! different events share a digest with a probability of about 2^-128. The
//! cache forgets the least recently seen entry when full: a repeat that
//! comes after `max_entries` other distinct events passes again. A dropped
//! repeat counts as seen, so a flood of one line stays remembered.

use std::num::NonZeroUsize;

use lru::LruCache;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::keyed::Digest;

/// Options of the `dedupe` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The fields (dotted paths) whose values make events the same; the
    /// body when empty. A missing field counts as a value of its own.
    #[serde(default)]
    pub fields: Vec<String>,
    /// How many distinct events are remembered.
    #[serde(default = "default_max_entries")]
    pub max_entries: NonZeroUsize,
}

fn default_max_entries() -> NonZeroUsize {
    NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
}

impl ProcessorConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .fields
            .iter()
            .filter_map(|f| crate::check_path("fields", f))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.fields {
            if !seen.insert(f) {
                problems.push(Problem::at("fields", format!("`{f}` is listed twice")));
            }
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Dedupe {
            fields: self.fields.clone(),
            digest: Digest::new(),
            seen: LruCache::new(self.max_entries),
        }))
    }
}

/// The `dedupe` processor.
struct Dedupe {
    fields: Vec<String>,
    digest: Digest,
    /// Digests of the events seen, least recently seen first out.
    seen: LruCache<u128, ()>,
}

impl Processor for Dedupe {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        let (digest, fields, seen) = (&self.digest, &self.fields, &mut self.seen);
        // `put` returns the old value: `Some` for a repeat (and marks it seen now).
        batch
            .events
            .retain(|e| seen.put(digest.of(e, fields), ()).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("fields: [host, msg]\nmax_entries: 100");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("dedupe").is_empty());
        let e = unknown_key::<Config>("field: [a]");
        assert!(e.contains("did you mean `fields`"), "{e}");
        let c: Config = config("fields: [a, a, 'b..c']");
        assert_eq!(c.validate().len(), 2);
        let e = unknown_key::<Config>("max_entries: 0");
        assert!(e.contains("0"), "{e}");
    }

    #[test]
    fn drops_repeated_bodies_within_the_bound() {
        let mut p = build::<Config>("max_entries: 2");
        let mut b = batch(&["a", "b", "a", "c", "b", "c", "c", "a"]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        // a, b; a again (dropped); c (forgets b, the least recent); b passes
        // again (forgets a); c dropped twice; a passes again.
        assert_eq!(bodies(&b), ["a", "b", "c", "b", "a"]);
    }

    #[test]
    fn compares_chosen_fields_with_their_types() {
        let mut p = build::<Config>("fields: [host, code]");
        let mut b = batch(&["1", "2", "3", "4", "5", "6"]);
        let rows: [(&str, Option<Value>); 6] = [
            ("a", Some(Value::Integer(1))),
            ("a", Some(Value::Integer(1))),
            ("a", Some(Value::from("1"))),
            ("a", None),
            ("a", None),
            ("b", Some(Value::Integer(1))),
        ];
        for (e, (host, code)) in b.events.iter_mut().zip(rows) {
            e.insert("host", host);
            if let Some(c) = code {
                e.insert("code", c);
            }
        }
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(bodies(&b), ["1", "3", "4", "6"]);
    }
}
