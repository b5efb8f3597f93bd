//! `sample`: keeps one event in `rate`, optionally counting per key, and
//! always keeps the events matching `keep`.
//!
//! The choice is by count, not chance: the first event (of each key) is
//! kept, then every `rate`-th after it, so a run is reproducible and the
//! kept share is exact. Per key, rare keys are sampled as well as frequent
//! ones; the counters of at most `max_keys` keys are remembered (the least
//! recently seen is forgotten, and counts again from its next event).

use std::num::{NonZeroU64, NonZeroUsize};

use crate::condition::Condition;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::keyed::{default_max_keys, KeyedState};

/// Options of the `sample` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keep one event in this many (`10`: 10 %).
    pub rate: NonZeroU64,
    /// Count separately for each value of this field (dotted path), so that
    /// each value is sampled at `rate`.
    #[serde(default)]
    pub key: Option<String>,
    /// Events matching this condition are always kept (and not counted).
    #[serde(default)]
    pub keep: Option<Condition>,
    /// The most keys whose counters are remembered.
    #[serde(default = "default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl ProcessorConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        self.key
            .as_deref()
            .and_then(|p| crate::check_path("key", p))
            .into_iter()
            .collect()
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Sample {
            rate: self.rate.get(),
            key: self.key.clone(),
            keep: self.keep.clone(),
            seen: 0,
            per_key: KeyedState::new(self.max_keys),
        }))
    }
}

/// The `sample` processor.
struct Sample {
    rate: u64,
    key: Option<String>,
    keep: Option<Condition>,
    /// Events counted so far without a key.
    seen: u64,
    /// Events counted so far, per key.
    per_key: KeyedState<u64>,
}

impl Sample {
    fn keeps(&mut self, e: &Event) -> bool {
        if self.keep.as_ref().is_some_and(|c| c.matches(e)) {
            return true;
        }
        let n = match &self.key {
            None => &mut self.seen,
            Some(k) => self.per_key.entry(e, k, || 0),
        };
        let kept = *n % self.rate == 0;
        *n = n.wrapping_add(1);
        kept
    }
}

impl Processor for Sample {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        batch.events.retain(|e| self.keeps(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = config("rate: 10\nkey: service\nkeep: '.level == \"error\"'\nmax_keys: 5");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("sample").is_empty());
        let e = unknown_key::<Config>("rate: 10\nratio: 2");
        assert!(e.contains("unknown option `ratio`"), "{e}");
        let e = unknown_key::<Config>("rate: 0");
        assert!(e.contains("0"), "{e}");
    }

    #[test]
    fn keeps_one_in_rate_exactly_across_batches() {
        let mut p = build::<Config>("rate: 3");
        let mut kept = Vec::new();
        for chunk in (0..20).collect::<Vec<u32>>().chunks(7) {
            let bodies: Vec<String> = chunk.iter().map(|i| i.to_string()).collect();
            let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
            let mut b = batch(&refs);
            assert!(run(p.as_mut(), &mut b).is_empty());
            kept.extend(
                b.events
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.body).into_owned()),
            );
        }
        assert_eq!(kept, ["0", "3", "6", "9", "12", "15", "18"]);
    }

    #[test]
    fn per_key_and_keep() {
        let mut p = build::<Config>("rate: 2\nkey: svc\nkeep: '.level == \"error\"'\nmax_keys: 2");
        let mut b = batch(&["a1", "a2", "b1", "a3", "b2", "err", "c1", "a4", "n1"]);
        for (i, svc) in ["a", "a", "b", "a", "b", "a", "c", "a"].iter().enumerate() {
            b.events[i].insert("svc", *svc);
        }
        b.events[5].insert("level", "error");
        assert!(run(p.as_mut(), &mut b).is_empty());
        let kept: Vec<_> = b
            .events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect();
        // a: a1, a3 kept; b: b1; err always; c1 is a third key: the least
        // recently seen (a) is forgotten, so a4 counts from 0 again and is
        // kept; n1 has no field: the empty key.
        assert_eq!(kept, ["a1", "b1", "a3", "err", "c1", "a4", "n1"]);
    }
}
