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
//! | `templates` | a map from template id to its text, when the counted events carried one |
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
    /// The field holding the text of the counted value (the template's
    /// text); none when unset.
    pub text_field: Option<String>,
    /// Numeric fields to summarise.
    pub numeric_fields: Vec<String>,
    /// Fields whose last value is carried to the feature event.
    pub carry_fields: Vec<String>,
}

/// Most texts remembered (one per distinct counted value); past it new
/// values get no text.
pub const MAX_TEXTS: usize = 100_000;

/// The latest text of each counted value, shared by all groups of a
/// processor: a template's text is kept once, not once per session.
#[derive(Debug, Default)]
pub struct Texts {
    by_id: HashMap<i64, Bytes>,
}

impl Texts {
    /// Remembers the text `e` carries for its counted value.
    pub fn note(&mut self, e: &Event, ex: &Extract) {
        let Some(tf) = &ex.text_field else {
            return;
        };
        let (Some(Value::Integer(id)), Some(Value::String(text))) =
            (e.get(&ex.count_field), e.get(tf))
        else {
            return;
        };
        let full = self.by_id.len() >= MAX_TEXTS;
        match self.by_id.get_mut(id) {
            // Equal bytes: nothing to do.
            Some(old) if old[..] == text[..] => {}
            // A text that is a slice of a larger buffer (a read chunk) is
            // copied, so that it does not keep the buffer alive.
            Some(old) => *old = own(text),
            None if !full => {
                self.by_id.insert(*id, own(text));
            }
            None => {}
        }
    }

    /// The text of `id`, if known.
    pub fn get(&self, id: i64) -> Option<&Bytes> {
        self.by_id.get(&id)
    }
}

/// A copy of `b` that owns its bytes: `Bytes` cannot tell whether it is a
/// slice of something larger, and a slice could keep a whole read chunk
/// alive. Done once per template (and when its text changes).
fn own(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// A deep copy of `v` whose strings own their bytes: a value parsed out of
/// an event's body may be a slice of a whole read chunk, which a group kept
/// open for minutes must not hold on to.
pub fn owned(v: &Value) -> Value {
    match v {
        Value::String(b) => Value::String(Bytes::copy_from_slice(b)),
        Value::Array(a) => Value::Array(a.iter().map(owned).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), owned(v))).collect()),
        other => other.clone(),
    }
}

/// One open session or window.
///
/// Kept small, since many may be open (`max_open`, 100,000 by default):
/// counts are a sorted vector (a session holds a handful of templates),
/// and the key and carried values own their bytes instead of pointing into
/// the read chunk their event came from.
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
    /// Counts per value of the counted field, sorted by value.
    pub counts: Vec<(i64, u32)>,
    /// Counts of values that are not integers, by text, sorted.
    pub text_counts: Vec<(Bytes, u32)>,
    /// Per numeric field (same order as `Extract::numeric_fields`).
    pub stats: Box<[Stat]>,
    /// Last carried values (same order as `Extract::carry_fields`).
    pub carried: Box<[Option<Value>]>,
}

impl Group {
    /// An empty group; `key` should own its bytes (see [`Group`]).
    pub fn new(key: Bytes, start: Timestamp, ex: &Extract) -> Self {
        Group {
            key,
            start,
            end: start,
            fixed_bounds: false,
            last_arrival: std::time::Instant::now(),
            last_seq: 0,
            events: 0,
            counts: Vec::new(),
            text_counts: Vec::new(),
            stats: vec![Stat::default(); ex.numeric_fields.len()].into(),
            carried: vec![None; ex.carry_fields.len()].into(),
        }
    }

    fn count_text(&mut self, t: &[u8]) {
        match self.text_counts.binary_search_by(|x| x.0[..].cmp(t)) {
            Ok(i) => self.text_counts[i].1 += 1,
            Err(i) => self.text_counts.insert(i, (Bytes::copy_from_slice(t), 1)),
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
            Some(Value::Integer(id)) => match self.counts.binary_search_by_key(id, |x| x.0) {
                Ok(i) => self.counts[i].1 += 1,
                Err(i) => self.counts.insert(i, (*id, 1)),
            },
            Some(Value::String(s)) => self.count_text(s),
            Some(other) => {
                let mut s = String::new();
                other.write_text(&mut s);
                self.count_text(s.as_bytes());
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
                *slot = Some(owned(v));
            }
        }
    }

    /// The feature event of this group; `texts` gives the templates' text.
    pub fn into_event(self, ex: &Extract, keyed: bool, texts: &Texts) -> Event {
        let mut e = Event::new(self.key.clone(), self.end);
        if keyed {
            e.insert("key", Value::String(self.key));
        }
        e.insert("window_start", Value::Timestamp(self.start));
        e.insert("window_end", Value::Timestamp(self.end));
        e.insert("event_count", Value::Integer(self.events as i64));
        let mut features = Fields::with_capacity(self.counts.len() + self.text_counts.len());
        let mut named = Fields::new();
        for (id, n) in self.counts {
            let k = id.to_string();
            if let Some(t) = texts.get(id) {
                named.insert(k.as_str(), Value::String(t.clone()));
            }
            features.insert(k, Value::Integer(n as i64));
        }
        for (t, n) in self.text_counts {
            features.insert(
                String::from_utf8_lossy(&t).into_owned(),
                Value::Integer(n as i64),
            );
        }
        e.insert("features", Value::Map(features));
        if !named.is_empty() {
            e.insert("templates", Value::Map(named));
        }
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
        for (v, f) in self.carried.into_vec().into_iter().zip(&ex.carry_fields) {
            if let Some(v) = v {
                e.insert(f, v);
            }
        }
        e
    }
}
