//! `session` and `window`: group events and emit one feature event per
//! closed group (see [`crate::features`] for what it holds).
//!
//! * `session` groups by a key: the text of a field, or every match of a
//!   regex in the body (a line naming two blocks belongs to both sessions).
//!   A session closes after `inactivity_timeout` without events (in event
//!   time, as later events arrive, and in wall-clock time, on the
//!   processor's tick), after `max_duration` or `max_events`, when more than
//!   `max_open` are open (the least recently active first), or at end of
//!   input.
//! * `window` groups by time (`size`, with `slide` for sliding windows) on
//!   event timestamps, or by count (`events`, with `slide_events`),
//!   optionally per key. A time window closes once an event at or past its
//!   end arrives, after `idle_timeout` of wall-clock time without events, or
//!   at end of input; a count window when full, or at end of input.
//!
//! By default the grouped events are consumed and only feature events go
//! on; `pass_through: true` keeps them in the stream, ahead of the features.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use regex::bytes::Regex;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::features::{Extract, Group, Texts};
use crate::mask::Finder;

fn default_count_field() -> String {
    "template_id".into()
}
fn default_text_field() -> Option<String> {
    Some("template".into())
}
fn default_inactivity() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}
fn default_max_open() -> usize {
    100_000
}
fn default_min_events() -> u64 {
    1
}

/// Options of the `session` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// The field (dotted path) whose text is the session key.
    #[serde(default)]
    pub key_field: Option<String>,
    /// A regex: every distinct match in the body is a session key.
    #[serde(default)]
    pub key_pattern: Option<String>,
    /// The field counted per value: the sparse vector's dimensions.
    #[serde(default = "default_count_field")]
    pub count_field: String,
    /// The field holding the text of the counted value (the template): the
    /// feature event gets `templates`, id to text. `null` turns it off.
    #[serde(default = "default_text_field")]
    pub text_field: Option<String>,
    /// Numeric fields summarised in `stats`.
    #[serde(default)]
    pub numeric_fields: Vec<String>,
    /// Fields whose last value is copied to the feature event.
    #[serde(default)]
    pub carry_fields: Vec<String>,
    /// A session closes after this long without events.
    #[serde(default = "default_inactivity")]
    pub inactivity_timeout: Duration,
    /// A session closes once it spans this long (event time).
    #[serde(default)]
    pub max_duration: Option<Duration>,
    /// A session closes once it holds this many events.
    #[serde(default)]
    pub max_events: Option<u64>,
    /// Most sessions open at once; past it the least recently active closes.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// Sessions with fewer events are dropped, not emitted.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// Keep the input events in the stream too.
    #[serde(default)]
    pub pass_through: bool,
}

/// Options of the `window` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Length of a time window (event time).
    #[serde(default)]
    pub size: Option<Duration>,
    /// Step between time windows; `size` (tumbling) when unset.
    #[serde(default)]
    pub slide: Option<Duration>,
    /// Events in a count window.
    #[serde(default)]
    pub events: Option<u64>,
    /// Events between the starts of count windows; `events` when unset.
    #[serde(default)]
    pub slide_events: Option<u64>,
    /// Separate windows per value of this field.
    #[serde(default)]
    pub key_field: Option<String>,
    /// Close a window after this much wall-clock time without events
    /// (default: `size` for time windows; never for count windows).
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
    /// The field counted per value: the sparse vector's dimensions.
    #[serde(default = "default_count_field")]
    pub count_field: String,
    /// The field holding the text of the counted value (the template): the
    /// feature event gets `templates`, id to text. `null` turns it off.
    #[serde(default = "default_text_field")]
    pub text_field: Option<String>,
    /// Numeric fields summarised in `stats`.
    #[serde(default)]
    pub numeric_fields: Vec<String>,
    /// Fields whose last value is copied to the feature event.
    #[serde(default)]
    pub carry_fields: Vec<String>,
    /// Most windows open at once; past it the least recently active closes.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// Windows with fewer events are dropped, not emitted.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// Keep the input events in the stream too.
    #[serde(default)]
    pub pass_through: bool,
}

fn nanos(d: Duration) -> i64 {
    d.get().as_nanos().min(i64::MAX as u128) as i64
}

impl ProcessorConfig for SessionConfig {
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        match (&self.key_field, &self.key_pattern) {
            (Some(_), Some(_)) => p.push(Problem::new("set `key_field` or `key_pattern`, not both")),
            (None, None) => p.push(Problem::new(
                "a session needs a key: set `key_field` (a field) or `key_pattern` (a regex on the body)",
            )),
            (None, Some(re)) => {
                if let Err(e) = Regex::new(re) {
                    p.push(Problem::at("key_pattern", format!("invalid regex: {e}")));
                }
            }
            _ => {}
        }
        if self.inactivity_timeout.get().is_zero() {
            p.push(Problem::at("inactivity_timeout", "must be above zero"));
        }
        if self.max_events == Some(0) {
            p.push(Problem::at("max_events", "must be at least 1"));
        }
        if self.max_open == 0 {
            p.push(Problem::at("max_open", "must be at least 1"));
        }
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let key_by = match (&self.key_field, &self.key_pattern) {
            (Some(f), _) => KeyBy::Field(f.clone()),
            (None, Some(re)) => match Finder::of_pattern(re) {
                Some(f) => KeyBy::Prefixed(f),
                None => KeyBy::Pattern(
                    Regex::new(re).map_err(|e| BuildError::Other(format!("key_pattern: {e}")))?,
                ),
            },
            (None, None) => return Err(BuildError::Other("a session needs a key".into())),
        };
        let mode = Mode::Session {
            timeout: nanos(self.inactivity_timeout),
            max_duration: self.max_duration.map(nanos),
            max_events: self.max_events,
        };
        Ok(Box::new(Grouper::new(
            mode,
            key_by,
            Extract {
                count_field: self.count_field.clone(),
                text_field: self.text_field.clone(),
                numeric_fields: self.numeric_fields.clone(),
                carry_fields: self.carry_fields.clone(),
            },
            Some(self.inactivity_timeout.get()),
            self.max_open,
            self.min_events,
            self.pass_through,
        )))
    }
}

impl ProcessorConfig for WindowConfig {
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        match (self.size, self.events) {
            (Some(_), Some(_)) => p.push(Problem::new(
                "set `size` (time) or `events` (count), not both",
            )),
            (None, None) => p.push(Problem::new(
                "set `size` (a time window) or `events` (a count window)",
            )),
            (Some(size), None) => {
                if size.get().is_zero() {
                    p.push(Problem::at("size", "must be above zero"));
                }
                if self
                    .slide
                    .is_some_and(|s| s.get().is_zero() || s.get() > size.get())
                {
                    p.push(Problem::at(
                        "slide",
                        "must be above zero and at most `size`",
                    ));
                }
                if self.slide_events.is_some() {
                    p.push(Problem::at(
                        "slide_events",
                        "goes with `events`, not `size`",
                    ));
                }
            }
            (None, Some(n)) => {
                if n == 0 {
                    p.push(Problem::at("events", "must be at least 1"));
                }
                if self.slide_events.is_some_and(|s| s == 0 || s > n) {
                    p.push(Problem::at("slide_events", "must be from 1 to `events`"));
                }
                if self.slide.is_some() {
                    p.push(Problem::at("slide", "goes with `size`, not `events`"));
                }
            }
        }
        if self.max_open == 0 {
            p.push(Problem::at("max_open", "must be at least 1"));
        }
        p
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let (mode, idle) = match (self.size, self.events) {
            (Some(size), _) => (
                Mode::Time {
                    size: nanos(size),
                    slide: nanos(self.slide.unwrap_or(size)),
                },
                Some(self.idle_timeout.unwrap_or(size).get()),
            ),
            (None, Some(n)) => (
                Mode::Count {
                    size: n,
                    slide: self.slide_events.unwrap_or(n),
                    seen: HashMap::new(),
                },
                self.idle_timeout.map(Duration::get),
            ),
            (None, None) => return Err(BuildError::Other("no window size".into())),
        };
        let key_by = match &self.key_field {
            Some(f) => KeyBy::Field(f.clone()),
            None => KeyBy::None,
        };
        Ok(Box::new(Grouper::new(
            mode,
            key_by,
            Extract {
                count_field: self.count_field.clone(),
                text_field: self.text_field.clone(),
                numeric_fields: self.numeric_fields.clone(),
                carry_fields: self.carry_fields.clone(),
            },
            idle,
            self.max_open,
            self.min_events,
            self.pass_through,
        )))
    }
}

enum KeyBy {
    None,
    Field(String),
    Pattern(Regex),
    /// A `key_pattern` that starts with literal text, found where the text
    /// occurs (`blk_-?\d+`: no reverse search for each match's start).
    Prefixed(Finder),
}

enum Mode {
    Session {
        timeout: i64,
        max_duration: Option<i64>,
        max_events: Option<u64>,
    },
    /// Windows start at multiples of `slide` (ns since the epoch).
    Time { size: i64, slide: i64 },
    /// Windows start every `slide` events of a key.
    Count {
        size: u64,
        slide: u64,
        /// Events seen per key.
        seen: HashMap<Bytes, u64>,
    },
}

/// The `session` and `window` processor.
pub struct Grouper {
    mode: Mode,
    key_by: KeyBy,
    ex: Extract,
    /// Open groups by key and window start (0 for sessions).
    groups: HashMap<(Bytes, i64), Group>,
    /// The latest text of each counted value.
    texts: Texts,
    /// Wall-clock inactivity after which a tick closes a group.
    idle: Option<std::time::Duration>,
    max_open: usize,
    min_events: u64,
    pass_through: bool,
    /// Latest event time seen.
    watermark: Timestamp,
    /// Watermark at the last sweep of timed-out sessions.
    swept_at: Timestamp,
    /// Events seen: stamps each group with its last activity.
    seq: u64,
    /// Reused: the keys of the event at hand, and groups being closed.
    keys: Vec<Bytes>,
    closing: Vec<(Bytes, i64)>,
}

impl Grouper {
    #[allow(clippy::too_many_arguments)]
    fn new(
        mode: Mode,
        key_by: KeyBy,
        ex: Extract,
        idle: Option<std::time::Duration>,
        max_open: usize,
        min_events: u64,
        pass_through: bool,
    ) -> Self {
        Grouper {
            mode,
            key_by,
            ex,
            groups: HashMap::new(),
            texts: Texts::default(),
            idle,
            max_open,
            min_events,
            pass_through,
            watermark: Timestamp(i64::MIN),
            swept_at: Timestamp(i64::MIN),
            seq: 0,
            keys: Vec::new(),
            closing: Vec::new(),
        }
    }

    fn keyed(&self) -> bool {
        !matches!(self.key_by, KeyBy::None)
    }

    /// Fills `self.keys` with the keys of `e`.
    fn keys_of(&mut self, e: &Event) {
        self.keys.clear();
        match &self.key_by {
            KeyBy::None => self.keys.push(Bytes::new()),
            KeyBy::Field(f) => match e.get(f) {
                Some(Value::String(b)) => self.keys.push(b.clone()),
                Some(Value::Null) | None => {}
                Some(v) => self.keys.push(Bytes::from(v.to_text().into_owned())),
            },
            KeyBy::Prefixed(f) => {
                let mut at = 0;
                while let Some((start, end)) = f.find(&e.body, at) {
                    let k = &e.body[start..end];
                    if !self.keys.iter().any(|x| &x[..] == k) {
                        self.keys.push(e.body.slice(start..end));
                    }
                    at = end;
                }
            }
            KeyBy::Pattern(re) => {
                for m in re.find_iter(&e.body) {
                    let k = &e.body[m.range()];
                    if !self.keys.iter().any(|x| &x[..] == k) {
                        self.keys.push(e.body.slice(m.range()));
                    }
                }
            }
        }
    }

    /// Moves the closed groups listed in `self.closing` to `out`, ordered
    /// by end time then key.
    fn close_listed(&mut self, out: &mut Vec<Event>) {
        let mut closed: Vec<Group> = self
            .closing
            .drain(..)
            .filter_map(|k| self.groups.remove(&k))
            .collect();
        closed.sort_by(|a, b| (a.end, &a.key, a.start).cmp(&(b.end, &b.key, b.start)));
        let keyed = self.keyed();
        for g in closed {
            if g.events >= self.min_events {
                out.push(g.into_event(&self.ex, keyed, &self.texts));
            }
        }
    }

    /// The open group of `key` starting at `start`, which is made when
    /// there is none by `make` (given the key as an owned copy: a key is
    /// often a slice of a read chunk, which an open group must not keep
    /// alive).
    fn group<'a>(
        groups: &'a mut HashMap<(Bytes, i64), Group>,
        key: &Bytes,
        start: i64,
        make: impl FnOnce(Bytes) -> Group,
    ) -> &'a mut Group {
        let id = (key.clone(), start);
        if !groups.contains_key(&id) {
            let owned = Bytes::copy_from_slice(key);
            groups.insert((owned.clone(), start), make(owned));
        }
        match groups.get_mut(&id) {
            Some(g) => g,
            None => unreachable!("inserted just above"),
        }
    }

    /// Adds `e` to the open group `id` of `key`, which `e` starts when there
    /// is none; returns the group.
    fn add_to(&mut self, id: &(Bytes, i64), key: &Bytes, e: &Event, now: Instant) -> &mut Group {
        let ex = &self.ex;
        let g = Self::group(&mut self.groups, key, id.1, |k| {
            Group::new(k, e.timestamp, ex)
        });
        g.add(e, ex, now, self.seq);
        g
    }

    fn add(&mut self, e: &Event, now: Instant, out: &mut Vec<Event>) {
        self.seq += 1;
        if e.timestamp > self.watermark {
            self.watermark = e.timestamp;
        }
        self.texts.note(e, &self.ex);
        self.keys_of(e);
        let keys = std::mem::take(&mut self.keys);
        for key in &keys {
            match &mut self.mode {
                Mode::Session {
                    timeout,
                    max_duration,
                    max_events,
                } => {
                    let (timeout, max_duration, max_events) =
                        (*timeout, *max_duration, *max_events);
                    let full = |g: &Group| {
                        max_events.is_some_and(|m| g.events >= m)
                            || max_duration.is_some_and(|d| g.end.0.saturating_sub(g.start.0) >= d)
                    };
                    let id = (key.clone(), 0);
                    // One lookup when the event joins an open session, the
                    // common case.
                    let joined = match self.groups.get_mut(&id) {
                        Some(g) if e.timestamp.0.saturating_sub(g.end.0) <= timeout => {
                            g.add(e, &self.ex, now, self.seq);
                            Some(full(g))
                        }
                        Some(_) => {
                            self.closing.push(id.clone());
                            self.close_listed(out);
                            None
                        }
                        None => None,
                    };
                    let closes = match joined {
                        Some(closes) => closes,
                        None => full(self.add_to(&id, key, e, now)),
                    };
                    if closes {
                        self.closing.push(id);
                        self.close_listed(out);
                    }
                }
                Mode::Time { size, slide } => {
                    let (size, slide) = (*size, *slide);
                    let t = e.timestamp.0;
                    let mut start = t.div_euclid(slide) * slide;
                    while start > t.saturating_sub(size) {
                        let ex = &self.ex;
                        let g = Self::group(&mut self.groups, key, start, |k| {
                            let mut g = Group::new(k, Timestamp(start), ex);
                            g.fixed_bounds = true;
                            g.end = Timestamp(start.saturating_add(size));
                            g
                        });
                        g.add(e, &self.ex, now, self.seq);
                        start -= slide;
                    }
                }
                Mode::Count { size, slide, seen } => {
                    let (size, slide) = (*size, *slide);
                    let i = match seen.get_mut(key) {
                        Some(n) => {
                            *n += 1;
                            *n - 1
                        }
                        None => {
                            seen.insert(Bytes::copy_from_slice(key), 1);
                            0
                        }
                    };
                    self.count_add(key, e, now, i, size, slide, out);
                }
            }
        }
        self.keys = keys;
        if self.groups.len() > self.max_open {
            self.evict(out);
        }
    }

    /// Adds the `i`-th event of `key` to its count windows.
    #[allow(clippy::too_many_arguments)]
    fn count_add(
        &mut self,
        key: &Bytes,
        e: &Event,
        now: Instant,
        i: u64,
        size: u64,
        slide: u64,
        out: &mut Vec<Event>,
    ) {
        // Window starts s = k * slide with s <= i < s + size.
        let mut s = (i / slide) * slide;
        loop {
            let id = (key.clone(), s as i64);
            self.add_to(&id, key, e, now);
            if i + 1 == s + size {
                self.closing.push(id);
            }
            if s < slide {
                break;
            }
            s -= slide;
            if s + size <= i {
                break;
            }
        }
        self.close_listed(out);
    }

    /// Closes the least recently active groups until at most `max_open` stay,
    /// and 1% more, so that the sort is paid once per many new groups.
    fn evict(&mut self, out: &mut Vec<Event>) {
        let excess = self.groups.len().saturating_sub(self.max_open) + self.max_open / 100;
        let mut by_age: Vec<(u64, (Bytes, i64))> = self
            .groups
            .iter()
            .map(|(k, g)| (g.last_seq, k.clone()))
            .collect();
        by_age.sort_by_key(|x| x.0);
        self.closing
            .extend(by_age.into_iter().take(excess).map(|x| x.1));
        self.close_listed(out);
    }

    /// Closes what the event-time watermark has passed.
    fn sweep(&mut self, out: &mut Vec<Event>) {
        let w = self.watermark.0;
        match &self.mode {
            Mode::Session { timeout, .. } => {
                // Throttled: a sweep scans every open session.
                let step = (*timeout / 4).max(1);
                if w.saturating_sub(self.swept_at.0) < step {
                    return;
                }
                let timeout = *timeout;
                self.swept_at = self.watermark;
                self.closing.extend(
                    self.groups
                        .iter()
                        .filter(|(_, g)| w.saturating_sub(g.end.0) > timeout)
                        .map(|(k, _)| k.clone()),
                );
            }
            Mode::Time { .. } => {
                self.closing.extend(
                    self.groups
                        .iter()
                        .filter(|(_, g)| g.end.0 <= w)
                        .map(|(k, _)| k.clone()),
                );
            }
            Mode::Count { .. } => {}
        }
        self.close_listed(out);
    }
}

impl Processor for Grouper {
    fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
        let now = Instant::now();
        let mut out = Vec::new();
        for e in &batch.events {
            self.add(e, now, &mut out);
        }
        self.sweep(&mut out);
        if self.pass_through {
            batch.events.extend(out);
        } else {
            batch.events = out;
        }
    }

    fn finish(&mut self, out: &mut Batch) {
        self.closing.extend(self.groups.keys().cloned());
        let mut events = Vec::new();
        self.close_listed(&mut events);
        out.events.extend(events);
    }

    fn tick_interval(&self) -> Option<std::time::Duration> {
        self.idle
            .map(|d| (d / 4).max(std::time::Duration::from_millis(10)))
    }

    fn tick(&mut self, _now: Timestamp, out: &mut Batch) {
        let Some(idle) = self.idle else {
            return;
        };
        let now = Instant::now();
        self.closing.extend(
            self.groups
                .iter()
                .filter(|(_, g)| now.duration_since(g.last_arrival) >= idle)
                .map(|(k, _)| k.clone()),
        );
        let mut events = Vec::new();
        self.close_listed(&mut events);
        out.events.extend(events);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
