//! The event, its typed values and the batch that carries events between tasks.
//!
//! An [`Event`] is one log record: the raw `body` as read (cheap to clone and
//! slice, it is a [`Bytes`]), a [`Timestamp`] and structured `fields`, a nested
//! map of [`Value`]s where parsers put what they extract. Events always travel
//! in a [`Batch`]: every trait in this crate moves batches, never single events.

mod fields;

use std::fmt;

use bytes::Bytes;

pub use fields::{FieldName, Fields, DEFAULT_MAX_FIELDS, INDEXED_FROM};

/// Nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    /// Converts to a chrono date-time (for formatting).
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_nanos(self.0)
    }

    /// Builds a timestamp from a chrono date-time.
    pub fn from_datetime<Tz: chrono::TimeZone>(dt: &chrono::DateTime<Tz>) -> Self {
        Timestamp(dt.timestamp_nanos_opt().unwrap_or(i64::MAX))
    }

    /// Whole seconds since the epoch.
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with microseconds, `Z` suffix: `2026-11-26T04:43:11.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            self.to_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }
}

/// A typed field value.
///
/// Strings are held as [`Bytes`] so that a parser can point into the body
/// without copying; they are UTF-8 whenever they came from text, and are shown
/// lossily otherwise.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string (bytes, usually UTF-8).
    String(Bytes),
    /// A point in time.
    Timestamp(Timestamp),
    /// A list of values.
    Array(Vec<Value>),
    /// A nested map.
    Map(Fields),
}

impl Value {
    /// The string's bytes, if this is a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(b) => Some(b),
            _ => None,
        }
    }

    /// The string as `&str`, if this is a valid UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// Renders the value as text the way templates and routing keys see it:
    /// strings without quotes, numbers and booleans as written, timestamps in
    /// RFC 3339, arrays and maps as JSON. Borrows for strings, booleans and
    /// null; see [`write_text`](Self::write_text) to avoid allocating.
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Value::String(b) => String::from_utf8_lossy(b),
            Value::Null => Cow::Borrowed(""),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            _ => {
                let mut s = String::new();
                self.write_text(&mut s);
                Cow::Owned(s)
            }
        }
    }

    /// Appends the text of [`to_text`](Self::to_text) to `out`, without an
    /// allocation of its own: for the per-event paths (routing, templates).
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Value::String(b) => out.push_str(&String::from_utf8_lossy(b)),
            Value::Null => {}
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Value::Timestamp(t) => {
                let _ = write!(out, "{t}");
            }
            Value::Array(_) | Value::Map(_) => {
                out.push_str(&serde_json::to_string(self).unwrap_or_default());
            }
        }
    }

    /// Number of map fields in this value at every depth (see
    /// [`Fields::deep_len`]): 0 for scalars.
    pub fn deep_len(&self) -> usize {
        match self {
            Value::Map(m) => m.deep_len(),
            Value::Array(a) => a.iter().map(Value::deep_len).sum(),
            _ => 0,
        }
    }

    /// Approximate heap size in bytes, for byte-bounded channels.
    pub fn size_of(&self) -> usize {
        match self {
            Value::String(b) => b.len(),
            Value::Array(a) => a.iter().map(|v| v.size_of() + 16).sum(),
            Value::Map(m) => m.iter().map(|(k, v)| k.len() + v.size_of() + 32).sum(),
            _ => 8,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(Bytes::copy_from_slice(s.as_bytes()))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Bytes::from(s))
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::String(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Timestamp> for Value {
    fn from(t: Timestamp) -> Self {
        Value::Timestamp(t)
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(b) => s.serialize_str(&String::from_utf8_lossy(b)),
            Value::Timestamp(t) => s.collect_str(t),
            Value::Array(a) => s.collect_seq(a),
            Value::Map(m) => m.serialize(s),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::from(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

/// One log record.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Event {
    /// The raw record as read (a line, without its newline).
    pub body: Bytes,
    /// When the event happened (by default: when it was read).
    pub timestamp: Timestamp,
    /// Structured fields; empty until a processor or source adds some.
    pub fields: Fields,
}

impl Event {
    /// An event with the given body, stamped `timestamp`, without fields.
    pub fn new(body: impl Into<Bytes>, timestamp: Timestamp) -> Self {
        Event {
            body: body.into(),
            timestamp,
            fields: Fields::new(),
        }
    }

    /// Looks a field up by a dotted path (`http.status`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        get_path(&self.fields, path)
    }

    /// Sets a field at a dotted path, creating intermediate maps; a non-map
    /// value in the way is replaced by a map.
    pub fn insert(&mut self, path: &str, value: impl Into<Value>) {
        insert_path(&mut self.fields, path, value.into());
    }

    /// Removes and returns the field at a dotted path.
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        remove_path(&mut self.fields, path)
    }

    /// Approximate size in bytes: body plus fields. Channels bound their
    /// `max_bytes` with it.
    pub fn size_of(&self) -> usize {
        self.body.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.size_of() + 32)
                .sum::<usize>()
    }
}

/// Looks a dotted path up in a field map.
pub fn get_path<'a>(fields: &'a Fields, path: &str) -> Option<&'a Value> {
    let Some(dot) = find_dot(path) else {
        // Most names have no dot: no splitter to set up per event.
        return fields.get(path);
    };
    let mut cur = fields.get(&path[..dot])?;
    for part in path[dot + 1..].split('.') {
        match cur {
            Value::Map(m) => cur = m.get(part)?,
            _ => return None,
        }
    }
    Some(cur)
}

/// The first `.` in a field path. Names are short: a plain loop beats
/// setting up a searcher, which costs more than the scan itself.
#[inline]
fn find_dot(path: &str) -> Option<usize> {
    path.bytes().position(|b| b == b'.')
}

fn insert_path(fields: &mut Fields, path: &str, value: Value) {
    match find_dot(path).map(|i| (&path[..i], &path[i + 1..])) {
        None => {
            fields.insert(path, value);
        }
        Some((head, rest)) => {
            let entry = fields.get_or_insert_with(head, || Value::Map(Fields::new()));
            if !matches!(entry, Value::Map(_)) {
                *entry = Value::Map(Fields::new());
            }
            if let Value::Map(m) = entry {
                insert_path(m, rest, value);
            }
        }
    }
}

fn remove_path(fields: &mut Fields, path: &str) -> Option<Value> {
    match find_dot(path).map(|i| (&path[..i], &path[i + 1..])) {
        None => fields.remove(path),
        Some((head, rest)) => match fields.get_mut(head)? {
            Value::Map(m) => remove_path(m, rest),
            _ => None,
        },
    }
}

/// A batch of events: the unit every channel, processor and sink works on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The events, in order.
    pub events: Vec<Event>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch { events: Vec::new() }
    }

    /// An empty batch with room for `n` events.
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            events: Vec::with_capacity(n),
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Appends an event.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Total approximate size in bytes (see [`Event::size_of`]).
    pub fn size_of(&self) -> usize {
        self.events.iter().map(Event::size_of).sum()
    }

    /// Sum of body lengths.
    pub fn body_bytes(&self) -> usize {
        self.events.iter().map(|e| e.body.len()).sum()
    }

    /// Iterates over the events.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.events.iter()
    }
}

impl From<Vec<Event>> for Batch {
    fn from(events: Vec<Event>) -> Self {
        Batch { events }
    }
}

impl IntoIterator for Batch {
    type Item = Event;
    type IntoIter = std::vec::IntoIter<Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                <Value as serde::Deserialize>::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
                Ok(Value::Integer(i))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
                Ok(i64::try_from(u)
                    .map(Value::Integer)
                    .unwrap_or(Value::Float(u as f64)))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
                Ok(Value::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                Ok(Value::from(s))
            }
            fn visit_string<E>(self, s: String) -> Result<Value, E> {
                Ok(Value::from(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Value::Array(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Value, A::Error> {
                fields::read_map(a).map(Value::Map)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_insert_get_remove() {
        let mut e = Event::new("x", Timestamp(0));
        e.insert("http.status", 200i64);
        e.insert("http.method", "GET");
        assert_eq!(e.get("http.status"), Some(&Value::Integer(200)));
        assert_eq!(e.get("http.method").and_then(Value::as_str), Some("GET"));
        assert_eq!(e.remove("http.status"), Some(Value::Integer(200)));
        assert_eq!(e.get("http.status"), None);
        e.insert("http", 1i64);
        e.insert("http.a", 2i64);
        assert_eq!(e.get("http.a"), Some(&Value::Integer(2)));
    }

    #[test]
    fn timestamp_formats_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn write_text_appends_what_to_text_shows() {
        let values = [
            Value::from("a/b"),
            Value::Null,
            Value::Bool(true),
            Value::Integer(-42),
            Value::Float(1.5),
            Value::Timestamp(Timestamp(0)),
            Value::Array(vec![Value::Integer(1)]),
        ];
        let mut out = String::from(">");
        for v in &values {
            v.write_text(&mut out);
            out.push('|');
        }
        assert_eq!(out, ">a/b||true|-42|1.5|1970-01-01T00:00:00.000000Z|[1]|");
        let shown: Vec<String> = values.iter().map(|v| v.to_text().into_owned()).collect();
        assert_eq!(shown.join("|") + "|", out[1..]);
    }
}
