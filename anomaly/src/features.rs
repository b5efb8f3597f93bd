//! What a session or window accumulates, and the feature event it becomes.
//!
//! A feature event has these fields:
//!
//! | field | holds |
//! |---|---|
//! | `key` | the session key (absent for an unkeyed window) |
//! | `window_start`, `window_end` | timestamps of the first and last event (a time window: its bounds) |
//! | `event_count` | events in the group |
//! | `features` | a map from template id (as text) to its count: the sparse vector |
//! | `stats` | per numeric field: `count`, `sum`, `min`, `max`, `mean` |
//! | carried fields | the last value seen of each `carry_fields` entry |
//!
//! Its body is the key, and its timestamp the group's end.

use std::collections::HashMap;

use bytes::Bytes;
use sluice_core::prelude::*;

/// Running statistics of one numeric field.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    /// Values seen.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The least.
    pub min: f64,
    /// The greatest.
    pub max: f64,
}

impl Default for Stat {
    fn default() -> Self {
        Stat {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Stat {
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// What the groups read from each event.
#[derive(Clone, Debug)]
pub struct Extract {
    /// The field whose value is counted (the template id).
    pub count_field: String,
    /// Numeric fields to summarise.
    pub numeric_fields: Vec<String>,
    /// Fields whose last value is carried to the feature event.
    pub carry_fields: Vec<String>,
}

/// One open session or window.
#[derive(Clone, Debug)]
pub struct Group {
    /// The key (empty for an unkeyed window).
    pub key: Bytes,
    /// First event time, or the time window's start.
    pub start: Timestamp,
    /// Last event time, or the time window's end.
    pub end: Timestamp,
    /// Whether `start`/`end` are fixed window bounds.
    pub fixed_bounds: bool,
    /// Wall-clock time of the last event, for inactivity without events.
    pub last_arrival: std::time::Instant,
    /// Order of the last event among all the processor saw: which group
    /// was least recently active.
    pub last_seq: u64,
    /// Events added.
    pub events: u64,
    /// Counts per value of the counted field.
    pub counts: HashMap<i64, u32>,
    /// Counts of values that are not integers, by text.
    pub text_counts: HashMap<Bytes, u32>,
    /// Per numeric field (same order as `Extract::numeric_fields`).
    pub stats: Vec<Stat>,
    /// Last carried values (same order as `Extract::carry_fields`).
    pub carried: Vec<Option<Value>>,
}

impl Group {
    /// An empty group.
    pub fn new(key: Bytes, start: Timestamp, ex: &Extract) -> Self {
        Group {
            key,
            start,
            end: start,
            fixed_bounds: false,
            last_arrival: std::time::Instant::now(),
            last_seq: 0,
            events: 0,
            counts: HashMap::new(),
            text_counts: HashMap::new(),
            stats: vec![Stat::default(); ex.numeric_fields.len()],
            carried: vec![None; ex.carry_fields.len()],
        }
    }

    /// Adds one event.
    pub fn add(&mut self, e: &Event, ex: &Extract, now: std::time::Instant, seq: u64) {
        self.events += 1;
        self.last_seq = seq;
        self.last_arrival = now;
        if !self.fixed_bounds {
            if self.events == 1 {
                (self.start, self.end) = (e.timestamp, e.timestamp);
            } else {
                self.start = self.start.min(e.timestamp);
                self.end = self.end.max(e.timestamp);
            }
        }
        match e.get(&ex.count_field) {
            Some(Value::Integer(i)) => *self.counts.entry(*i).or_default() += 1,
            Some(Value::String(s)) => *self.text_counts.entry(s.clone()).or_default() += 1,
            Some(other) => {
                let mut s = String::new();
                other.write_text(&mut s);
                *self.text_counts.entry(Bytes::from(s)).or_default() += 1;
            }
            None => {}
        }
        for (stat, f) in self.stats.iter_mut().zip(&ex.numeric_fields) {
            if let Some(v) = e.get(f).and_then(Value::as_f64) {
                stat.add(v);
            }
        }
        for (slot, f) in self.carried.iter_mut().zip(&ex.carry_fields) {
            if let Some(v) = e.get(f) {
                *slot = Some(v.clone());
            }
        }
    }

    /// The feature event of this group.
    pub fn into_event(self, ex: &Extract, keyed: bool) -> Event {
        let mut e = Event::new(self.key.clone(), self.end);
        if keyed {
            e.insert("key", Value::String(self.key));
        }
        e.insert("window_start", Value::Timestamp(self.start));
        e.insert("window_end", Value::Timestamp(self.end));
        e.insert("event_count", Value::Integer(self.events as i64));
        let mut features = Fields::with_capacity(self.counts.len() + self.text_counts.len());
        let mut ids: Vec<_> = self.counts.into_iter().collect();
        ids.sort_unstable();
        for (id, n) in ids {
            features.insert(id.to_string(), Value::Integer(n as i64));
        }
        let mut texts: Vec<_> = self.text_counts.into_iter().collect();
        texts.sort_unstable();
        for (t, n) in texts {
            features.insert(
                String::from_utf8_lossy(&t).into_owned(),
                Value::Integer(n as i64),
            );
        }
        e.insert("features", Value::Map(features));
        if !ex.numeric_fields.is_empty() {
            let mut stats = Fields::with_capacity(ex.numeric_fields.len());
            for (s, f) in self.stats.iter().zip(&ex.numeric_fields) {
                let mut m = Fields::with_capacity(5);
                m.insert("count", Value::Integer(s.count as i64));
                m.insert("sum", Value::Float(s.sum));
                if s.count > 0 {
                    m.insert("min", Value::Float(s.min));
                    m.insert("max", Value::Float(s.max));
                    m.insert("mean", Value::Float(s.sum / s.count as f64));
                }
                stats.insert(f.as_str(), Value::Map(m));
            }
            e.insert("stats", Value::Map(stats));
        }
        for (v, f) in self.carried.into_iter().zip(&ex.carry_fields) {
            if let Some(v) = v {
                e.insert(f, v);
            }
        }
        e
    }
}
