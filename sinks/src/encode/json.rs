//! The `json` format's options ([`Encoding`]) and the writer that follows
//! them.
//!
//! The writer appends straight to the sink's batch buffer: keys and strings
//! are escaped into it, numbers formatted into it, and the date and time
//! of a timestamp are formatted once per second and copied after that. It
//! allocates nothing per event or per field (a strftime pattern with
//! sub-second specifiers is the one exception: it is formatted per event).

use std::collections::HashMap;
use std::io::Write as _;

use serde::{Deserialize, Deserializer};
use sluice_core::event::{Event, Fields, Timestamp, Value};

/// Where the event's fields go in its JSON object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `{"timestamp":..,"message":..,"fields":{..}}`.
    #[default]
    Nested,
    /// `{"timestamp":..,"message":..,"status":200,..}`: the fields beside
    /// `timestamp` and `message`. A field named `timestamp` or `message`
    /// takes that key's place.
    Flat,
}

/// How timestamps (the event's and timestamp fields) are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TimestampFormat {
    /// `"2026-11-26T04:43:11.123456Z"`.
    #[default]
    Rfc3339,
    /// Seconds since the epoch, a number.
    Unix,
    /// Milliseconds since the epoch, a number.
    UnixMs,
    /// Microseconds since the epoch, a number.
    UnixUs,
    /// Nanoseconds since the epoch, a number.
    UnixNs,
    /// A strftime pattern (UTC), a string: `%Y-%m-%d %H:%M:%S`.
    Pattern(String),
}

impl<'de> Deserialize<'de> for TimestampFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "rfc3339" => TimestampFormat::Rfc3339,
            "unix" => TimestampFormat::Unix,
            "unix_ms" => TimestampFormat::UnixMs,
            "unix_us" => TimestampFormat::UnixUs,
            "unix_ns" => TimestampFormat::UnixNs,
            p if p.contains('%') => {
                use chrono::format::{Item, StrftimeItems};
                if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
                    return Err(serde::de::Error::custom(format!(
                        "`{p}` is not a valid strftime pattern"
                    )));
                }
                TimestampFormat::Pattern(s)
            }
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown timestamp format `{other}`: use `rfc3339`, `unix`, `unix_ms`, \
                     `unix_us`, `unix_ns` or a strftime pattern such as `%Y-%m-%d %H:%M:%S`"
                )))
            }
        })
    }
}

/// The options of the `json` format (a sink's `encoding:`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    /// `nested` (fields under `fields`) or `flat` (fields beside
    /// `timestamp` and `message`).
    #[serde(default)]
    pub layout: Layout,
    /// Write only these keys: `timestamp`, `message` and field paths
    /// (`http.status`).
    #[serde(default)]
    pub only_fields: Option<Vec<String>>,
    /// Leave these keys out: `timestamp`, `message` and field paths.
    #[serde(default)]
    pub except_fields: Vec<String>,
    /// How timestamps are written.
    #[serde(default)]
    pub timestamp_format: TimestampFormat,
}

impl Encoding {
    /// Problems that deserializing cannot see: (option, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.only_fields.is_some() && !self.except_fields.is_empty() {
            out.push((
                "only_fields",
                "set `only_fields` or `except_fields`, not both".to_string(),
            ));
        }
        let lists = [
            ("only_fields", self.only_fields.as_deref().unwrap_or(&[])),
            ("except_fields", &self.except_fields[..]),
        ];
        for (key, list) in lists {
            if let Some(bad) = list
                .iter()
                .find(|p| p.is_empty() || p.split('.').any(str::is_empty))
            {
                out.push((
                    key,
                    format!("`{bad}` is not a field path (`name` or `a.b`)"),
                ));
            }
        }
        out
    }
}

/// A set of field paths as a tree: `a.b` and `c` give `{a: {b: *}, c: *}`.
#[derive(Debug, Default)]
struct PathTree {
    /// Named here as a whole (the path ends here).
    whole: bool,
    children: HashMap<String, PathTree>,
}

impl PathTree {
    fn new(paths: &[String]) -> Self {
        let mut root = PathTree::default();
        for p in paths {
            let mut node = &mut root;
            for part in p.split('.') {
                node = node.children.entry(part.to_string()).or_default();
            }
            node.whole = true;
        }
        root
    }

    fn child(&self, name: &str) -> Option<&PathTree> {
        self.children.get(name)
    }
}

/// Which keys are written.
#[derive(Debug)]
enum Filter {
    All,
    Only(PathTree),
    Except(PathTree),
}

/// A [`Filter`] narrowed to one map: `All`, or a tree node with its mode.
#[derive(Clone, Copy)]
enum Scope<'a> {
    All,
    Only(&'a PathTree),
    Except(&'a PathTree),
}

impl<'a> Scope<'a> {
    fn of(f: &'a Filter) -> Self {
        match f {
            Filter::All => Scope::All,
            Filter::Only(t) => Scope::Only(t),
            Filter::Except(t) => Scope::Except(t),
        }
    }

    /// Whether `name` is written whole, in part (with the narrower scope),
    /// or not at all.
    fn pick(self, name: &str) -> Option<Option<Scope<'a>>> {
        match self {
            Scope::All => Some(None),
            Scope::Only(t) => match t.child(name) {
                None => None,
                Some(c) if c.whole => Some(None),
                Some(c) => Some(Some(Scope::Only(c))),
            },
            Scope::Except(t) => match t.child(name) {
                None => Some(None),
                Some(c) if c.whole => None,
                Some(c) => Some(Some(Scope::Except(c))),
            },
        }
    }
}

/// Writes events as JSON following an [`Encoding`].
#[derive(Debug)]
pub struct JsonWriter {
    layout: Layout,
    filter: Filter,
    stamps: Stamps,
}

/// Writes timestamps in one format, caching the text of the last second.
#[derive(Debug)]
struct Stamps {
    format: TimestampFormat,
    /// The second whose text is in `second_text`.
    cached_second: Option<i64>,
    /// For `rfc3339`: `YYYY-MM-DDTHH:MM:SS` of `cached_second`; for a
    /// pattern without sub-second specifiers: the whole text.
    second_text: String,
    /// Whether the pattern's text changes within a second.
    subsecond: bool,
}

impl JsonWriter {
    /// A writer for `encoding`.
    pub fn new(encoding: &Encoding) -> Self {
        let filter = match (&encoding.only_fields, encoding.except_fields.is_empty()) {
            (Some(only), _) => Filter::Only(PathTree::new(only)),
            (None, false) => Filter::Except(PathTree::new(&encoding.except_fields)),
            (None, true) => Filter::All,
        };
        let subsecond = match &encoding.timestamp_format {
            TimestampFormat::Pattern(p) => {
                let a = Timestamp(1_700_000_000_000_000_000).to_datetime();
                let b = Timestamp(1_700_000_000_987_654_321).to_datetime();
                a.format(p).to_string() != b.format(p).to_string()
            }
            _ => false,
        };
        JsonWriter {
            layout: encoding.layout,
            filter,
            stamps: Stamps {
                format: encoding.timestamp_format.clone(),
                cached_second: None,
                second_text: String::new(),
                subsecond,
            },
        }
    }

    /// Appends `event` as one JSON object and a newline to `buf`.
    ///
    /// # Errors
    ///
    /// Never in practice (writing to a `Vec` cannot fail); `buf` may then
    /// hold part of the event.
    pub fn write(&mut self, event: &Event, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let scope = Scope::of(&self.filter);
        let stamps = &mut self.stamps;
        let flat = self.layout == Layout::Flat;
        buf.push(b'{');
        let mut first = true;
        let (timestamp_shadowed, message_shadowed) = if flat {
            shadows(&event.fields)
        } else {
            (false, false)
        };
        if scope.pick("timestamp").is_some() && !timestamp_shadowed {
            plain_key(buf, &mut first, b"\"timestamp\":");
            stamps.timestamp(event.timestamp, buf)?;
        }
        if scope.pick("message").is_some() && !message_shadowed {
            plain_key(buf, &mut first, b"\"message\":");
            string(buf, &event.body)?;
        }
        if flat {
            stamps.entries(&event.fields, scope, &mut first, buf)?;
        } else if !event.fields.is_empty() {
            // In the nested layout `timestamp` and `message` name the two
            // keys above; the other paths name fields.
            let mark = buf.len();
            key(buf, &mut first, "fields")?;
            buf.push(b'{');
            let mut inner_first = true;
            stamps.entries(&event.fields, scope, &mut inner_first, buf)?;
            if inner_first {
                buf.truncate(mark);
            } else {
                buf.push(b'}');
            }
        }
        buf.extend_from_slice(b"}\n");
        Ok(())
    }
}

impl Stamps {
    /// Writes the picked entries of `fields` as `"k":v` pairs.
    fn entries(
        &mut self,
        fields: &Fields,
        scope: Scope<'_>,
        first: &mut bool,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        for (name, value) in fields.iter() {
            let Some(narrower) = scope.pick(name) else {
                continue;
            };
            match (narrower, value) {
                (None, v) => {
                    key(buf, first, name)?;
                    self.value(v, buf)?;
                }
                (Some(inner), Value::Map(m)) => {
                    let mark = buf.len();
                    let was_first = *first;
                    key(buf, first, name)?;
                    buf.push(b'{');
                    let mut inner_first = true;
                    self.entries(m, inner, &mut inner_first, buf)?;
                    if inner_first && matches!(inner, Scope::Only(_)) {
                        // Nothing of it was asked for: leave the key out.
                        buf.truncate(mark);
                        *first = was_first;
                    } else {
                        buf.push(b'}');
                    }
                }
                // A path into something that is not a map: `only` finds
                // nothing there, `except` removes nothing from it.
                (Some(Scope::Only(_)), _) => {}
                (Some(_), v) => {
                    key(buf, first, name)?;
                    self.value(v, buf)?;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match v {
            Value::Null => buf.extend_from_slice(b"null"),
            Value::Bool(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Integer(i) => serde_json::to_writer(&mut *buf, i)?,
            Value::Float(f) => serde_json::to_writer(&mut *buf, f)?,
            Value::String(s) => string(buf, s)?,
            Value::Timestamp(t) => self.timestamp(*t, buf)?,
            Value::Array(items) => {
                buf.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    self.value(item, buf)?;
                }
                buf.push(b']');
            }
            Value::Map(m) => {
                buf.push(b'{');
                let mut first = true;
                self.entries(m, Scope::All, &mut first, buf)?;
                buf.push(b'}');
            }
        }
        Ok(())
    }

    fn timestamp(&mut self, ts: Timestamp, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match &self.format {
            TimestampFormat::Rfc3339 => {
                buf.push(b'"');
                push_rfc3339(&mut self.cached_second, &mut self.second_text, ts, buf);
                buf.push(b'"');
            }
            TimestampFormat::Unix => serde_json::to_writer(&mut *buf, &ts.seconds())?,
            TimestampFormat::UnixMs => {
                serde_json::to_writer(&mut *buf, &ts.0.div_euclid(1_000_000))?
            }
            TimestampFormat::UnixUs => serde_json::to_writer(&mut *buf, &ts.0.div_euclid(1_000))?,
            TimestampFormat::UnixNs => serde_json::to_writer(&mut *buf, &ts.0)?,
            TimestampFormat::Pattern(p) => {
                if self.subsecond || self.cached_second != Some(ts.seconds()) {
                    use std::fmt::Write as _;
                    self.second_text.clear();
                    let _ = write!(self.second_text, "{}", ts.to_datetime().format(p));
                    self.cached_second = (!self.subsecond).then_some(ts.seconds());
                }
                serde_json::to_writer(&mut *buf, self.second_text.as_str())?;
            }
        }
        Ok(())
    }
}

/// Whether `fields` has a field named `timestamp`, and one named `message`
/// (which take those keys' places in the flat layout): one pass for both.
fn shadows(fields: &Fields) -> (bool, bool) {
    if fields.len() >= sluice_core::event::INDEXED_FROM {
        return (
            fields.contains_key("timestamp"),
            fields.contains_key("message"),
        );
    }
    fields
        .iter()
        .fold((false, false), |(t, m), (name, _)| match name.len() {
            9 => (t || name == "timestamp", m),
            7 => (t, m || name == "message"),
            _ => (t, m),
        })
}

/// Writes a key already quoted, with its colon (`"timestamp":`), after a
/// comma unless it is the first.
fn plain_key(buf: &mut Vec<u8>, first: &mut bool, quoted: &[u8]) {
    if !std::mem::take(first) {
        buf.push(b',');
    }
    buf.extend_from_slice(quoted);
}

/// Writes `,"name":` (without the comma for the first key).
fn key(buf: &mut Vec<u8>, first: &mut bool, name: &str) -> std::io::Result<()> {
    if !std::mem::take(first) {
        buf.push(b',');
    }
    string(buf, name.as_bytes())?;
    buf.push(b':');
    Ok(())
}

/// Writes bytes as a JSON string (UTF-8, invalid bytes as U+FFFD).
fn string(buf: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    // Most names and values are printable ASCII without quotes or
    // backslashes: copied as they are, in one go.
    let Some(first) = first_special(bytes, true) else {
        buf.reserve(bytes.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return Ok(());
    };
    // Only what follows the first byte that is not plain ASCII needs the
    // UTF-8 check.
    match std::str::from_utf8(&bytes[first..]) {
        Ok(_) => escaped(buf, bytes, first),
        Err(_) => escaped(buf, String::from_utf8_lossy(bytes).as_bytes(), 0),
    }
    Ok(())
}

/// Repeated in every byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` (eight bytes, little-endian) that JSON
/// escapes: a control character, `"` or `\`. Exact up to and including
/// the lowest flagged byte (a borrow may flag bytes above it).
#[inline(always)]
fn escapes(w: u64) -> u64 {
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = w ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS
}

/// The index of the first byte of `bytes` that JSON escapes, or with
/// `ascii` that is not ASCII either; eight bytes at a time.
#[inline]
fn first_special(bytes: &[u8], ascii: bool) -> Option<usize> {
    let flags = |w: u64| {
        let f = escapes(w);
        if ascii {
            f | (w & HIGHS)
        } else {
            f
        }
    };
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let f = flags(<[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes));
        if f != 0 {
            return Some(at + (f.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    // The last bytes as one more word, padded with plain ones.
    let rest = words.remainder();
    if rest.is_empty() {
        return None;
    }
    let mut last = [b'a'; 8];
    last[..rest.len()].copy_from_slice(rest);
    let f = flags(u64::from_le_bytes(last));
    (f != 0).then(|| at + (f.trailing_zeros() / 8) as usize)
}

/// Writes valid UTF-8 as a JSON string, escaped exactly as `serde_json`
/// escapes it: `"`, `\\`, and control characters (short forms for
/// backspace, form feed, newline, carriage return and tab, `\u00XX` for the
/// others). The runs between escapes are copied whole; `from` bytes at the
/// start are known to need no escape.
fn escaped(buf: &mut Vec<u8>, text: &[u8], from: usize) {
    buf.reserve(text.len() + 2);
    buf.push(b'"');
    let mut run = 0;
    let mut i = from;
    while let Some(offset) = text.get(i..).and_then(|rest| first_special(rest, false)) {
        let at = i + offset;
        escape_byte(buf, text, &mut run, at, text[at]);
        i = at + 1;
    }
    buf.extend_from_slice(&text[run..]);
    buf.push(b'"');
}

/// Writes byte `at` of `text` escaped when it must be, after the run of
/// plain bytes before it (from `run`, moved past it).
#[inline(always)]
fn escape_byte(buf: &mut Vec<u8>, text: &[u8], run: &mut usize, at: usize, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short: &[u8] = match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        0x00..=0x1f => b"",
        _ => return,
    };
    buf.extend_from_slice(&text[*run..at]);
    *run = at + 1;
    if short.is_empty() {
        buf.extend_from_slice(b"\\u00");
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 0xf)]);
    } else {
        buf.extend_from_slice(short);
    }
}

/// Writes `ts` exactly as its `Display` does (RFC 3339, microseconds, `Z`),
/// formatting the date and time only when the second changes.
pub(super) fn push_rfc3339(
    cached_second: &mut Option<i64>,
    second_text: &mut String,
    ts: Timestamp,
    buf: &mut Vec<u8>,
) {
    let second = ts.seconds();
    if *cached_second != Some(second) {
        let Some(whole) = second.checked_mul(1_000_000_000) else {
            // Out of chrono's range: no caching, plain Display.
            let _ = write!(buf, "{ts}");
            return;
        };
        let text = Timestamp(whole).to_string();
        // Display ends in `.000000Z` for a whole second.
        second_text.clear();
        second_text.push_str(text.strip_suffix(".000000Z").unwrap_or(&text));
        *cached_second = Some(second);
    }
    buf.extend_from_slice(second_text.as_bytes());
    let micros = (ts.0.rem_euclid(1_000_000_000) / 1_000) as u32;
    let mut digits = [b'.', b'0', b'0', b'0', b'0', b'0', b'0', b'Z'];
    let mut n = micros;
    for d in digits[1..7].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::config::from_yaml_str;

    fn event() -> Event {
        let mut e = Event::new("GET /a 200", Timestamp(1_764_756_000_123_456_789));
        e.insert("status", 200i64);
        e.insert("http.method", "GET");
        e.insert("http.path", "/a");
        e.insert("ok", true);
        e
    }

    fn write(yaml: &str, e: &Event) -> String {
        let encoding: Encoding = from_yaml_str(yaml).unwrap();
        assert!(encoding.problems().is_empty(), "{:?}", encoding.problems());
        let mut w = JsonWriter::new(&encoding);
        let mut buf = Vec::new();
        w.write(e, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn nested_is_the_default() {
        assert_eq!(
            write("{}", &event()),
            "{\"timestamp\":\"2025-12-03T10:00:00.123456Z\",\"message\":\"GET /a 200\",\
             \"fields\":{\"status\":200,\"http\":{\"method\":\"GET\",\"path\":\"/a\"},\"ok\":true}}\n"
        );
    }

    #[test]
    fn flat_puts_fields_beside_timestamp_and_message() {
        assert_eq!(
            write("layout: flat", &event()),
            "{\"timestamp\":\"2025-12-03T10:00:00.123456Z\",\"message\":\"GET /a 200\",\
             \"status\":200,\"http\":{\"method\":\"GET\",\"path\":\"/a\"},\"ok\":true}\n"
        );
    }

    #[test]
    fn flat_fields_named_message_or_timestamp_take_the_key() {
        let mut e = event();
        e.insert("message", "parsed text");
        let out = write("layout: flat", &e);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["message"], "parsed text");
        assert_eq!(out.matches("\"message\"").count(), 1, "{out}");
    }

    #[test]
    fn only_fields_keeps_the_named_keys_and_paths() {
        assert_eq!(
            write(
                "{layout: flat, only_fields: [message, http.method, nope, status.x]}",
                &event()
            ),
            "{\"message\":\"GET /a 200\",\"http\":{\"method\":\"GET\"}}\n"
        );
        // Nested: `timestamp` names the key; other paths name fields.
        assert_eq!(
            write("{only_fields: [timestamp, ok]}", &event()),
            "{\"timestamp\":\"2025-12-03T10:00:00.123456Z\",\"fields\":{\"ok\":true}}\n"
        );
        // Nothing of the fields asked for: no `fields` key at all.
        assert_eq!(
            write("{only_fields: [message]}", &event()),
            "{\"message\":\"GET /a 200\"}\n"
        );
    }

    #[test]
    fn except_fields_leaves_out_keys_and_paths() {
        assert_eq!(
            write(
                "{layout: flat, except_fields: [timestamp, message, http.path, ok]}",
                &event()
            ),
            "{\"status\":200,\"http\":{\"method\":\"GET\"}}\n"
        );
    }

    #[test]
    fn timestamp_formats() {
        let only = |f: &str| {
            write(
                &format!("{{timestamp_format: '{f}', only_fields: [timestamp]}}"),
                &event(),
            )
        };
        assert_eq!(only("unix"), "{\"timestamp\":1764756000}\n");
        assert_eq!(only("unix_ms"), "{\"timestamp\":1764756000123}\n");
        assert_eq!(only("unix_us"), "{\"timestamp\":1764756000123456}\n");
        assert_eq!(only("unix_ns"), "{\"timestamp\":1764756000123456789}\n");
        assert_eq!(
            only("rfc3339"),
            "{\"timestamp\":\"2025-12-03T10:00:00.123456Z\"}\n"
        );
        assert_eq!(
            only("%Y-%m-%d %H:%M:%S"),
            "{\"timestamp\":\"2025-12-03 10:00:00\"}\n"
        );
        assert_eq!(only("%H:%M:%S%.3f"), "{\"timestamp\":\"10:00:00.123\"}\n");
        // Timestamp fields follow the same format.
        let mut e = Event::new("x", Timestamp(0));
        e.insert("seen", Timestamp(2_000_000_000));
        assert_eq!(
            write("{timestamp_format: unix, layout: flat}", &e),
            "{\"timestamp\":0,\"message\":\"x\",\"seen\":2}\n"
        );
    }

    #[test]
    fn keys_and_strings_are_escaped_as_serde_json_does() {
        let mut e = Event::new(
            &b"tab\there \"q\" back\\ \xff caf\xc3\xa9"[..],
            Timestamp(0),
        );
        e.insert("k\"ey", "line\nbreak \u{1}");
        e.insert("plain", "just ascii");
        e.insert("utf8", "na\u{ef}ve");
        let out = write("layout: flat", &e);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["message"], "tab\there \"q\" back\\ \u{fffd} caf\u{e9}");
        assert_eq!(v["k\"ey"], "line\nbreak \u{1}");
        assert_eq!(v["plain"], "just ascii");
        assert_eq!(v["utf8"], "na\u{ef}ve");
        // Byte for byte what serde_json writes for the same strings.
        assert!(
            out.contains(&serde_json::to_string("line\nbreak \u{1}").unwrap()),
            "{out}"
        );
        // Every ASCII character, and some beyond, as serde_json writes them.
        let all: String = (0u8..0x80)
            .map(char::from)
            .chain(['\u{e9}', '\u{2028}'])
            .collect();
        let mut buf = Vec::new();
        string(&mut buf, all.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            serde_json::to_string(&all).unwrap()
        );
    }

    #[test]
    fn word_at_a_time_escaping_agrees_with_serde_json_at_every_offset() {
        // Each special byte (and a multi-byte character, and an invalid
        // byte) at every position of strings of every length up to three
        // words and a bit, among plain bytes and among others of its kind.
        let specials: [&[u8]; 9] = [
            b"\"",
            b"\\",
            b"\n",
            b"\x01",
            b"\x1f",
            b"\x7f",
            b" ",
            "\u{e9}".as_bytes(),
            b"\xff",
        ];
        let mut buf = Vec::new();
        for len in 0..27 {
            for at in 0..len {
                for special in specials {
                    for filler in [b'a', b'"'] {
                        let mut bytes = vec![filler; len];
                        bytes.splice(at..at + 1, special.iter().copied());
                        buf.clear();
                        string(&mut buf, &bytes).unwrap();
                        let want = serde_json::to_string(&String::from_utf8_lossy(&bytes)).unwrap();
                        assert_eq!(
                            String::from_utf8_lossy(&buf),
                            want,
                            "{:?}",
                            String::from_utf8_lossy(&bytes)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_cached_pattern_changes_with_the_second() {
        let encoding: Encoding = from_yaml_str("timestamp_format: '%H:%M:%S'").unwrap();
        let mut w = JsonWriter::new(&encoding);
        let mut buf = Vec::new();
        for s in [0i64, 0, 1, 61] {
            w.write(&Event::new("", Timestamp(s * 1_000_000_000 + 5)), &mut buf)
                .unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let stamps: Vec<&str> = text.lines().map(|l| &l[14..22]).collect();
        assert_eq!(stamps, ["00:00:00", "00:00:00", "00:00:01", "00:01:01"]);
    }

    #[test]
    fn bad_options_are_refused() {
        let e = from_yaml_str::<Encoding>("timestamp_format: epoch").unwrap_err();
        assert!(
            e.message.contains("unknown timestamp format `epoch`"),
            "{e}"
        );
        let e = from_yaml_str::<Encoding>("timestamp_format: '%Q'").unwrap_err();
        assert!(e.message.contains("not a valid strftime pattern"), "{e}");
        let e = from_yaml_str::<Encoding>("layout: flatter").unwrap_err();
        assert!(e.message.contains("unknown value `flatter`"), "{e}");
        let both: Encoding = from_yaml_str("{only_fields: [a], except_fields: [b]}").unwrap();
        assert_eq!(both.problems().len(), 1);
        let empty: Encoding = from_yaml_str("{except_fields: ['a..b']}").unwrap();
        assert!(empty.problems()[0].1.contains("not a field path"));
    }
}

/// Interleaved timing of the JSON layouts against serde's encoding of the
/// same fields; the minimum of many rounds, which a busy machine disturbs
/// least. `cargo test --release -p sluice-sinks encode_cost -- --ignored --nocapture`
#[cfg(test)]
mod cost {
    use super::*;
    use serde::Serialize as _;
    use sluice_core::config::from_yaml_str;

    #[test]
    #[ignore]
    fn encode_cost() {
        let mut events = Vec::new();
        for i in 0..1000i64 {
            let mut e = Event::new(
                format!("10.0.0.{} - frank [03/Dec/2026:10:00:00 +0000] \"GET /api/v1/orders/{i} HTTP/1.1\" 200 {}", i % 250, 512 + i),
                Timestamp(1_764_756_000_000_000_000 + i * 1_000_000),
            );
            for (k, v) in [
                ("client", "10.0.0.1"),
                ("ident", "-"),
                ("user", "frank"),
                ("time", "03/Dec/2026:10:00:00 +0000"),
                ("method", "GET"),
                ("path", "/api/v1/orders/1"),
                ("protocol", "HTTP/1.1"),
                ("referrer", "https://example.com/cart"),
                ("agent", "Mozilla/5.0 (X11; Linux x86_64)"),
            ] {
                e.insert(k, v);
            }
            e.insert("status", 200i64);
            e.insert("bytes", 512 + i);
            events.push(e);
        }
        let mut buf = Vec::with_capacity(1 << 20);
        let mut best = [f64::MAX; 3];
        let nested: Encoding = from_yaml_str("{}").unwrap();
        let flat: Encoding = from_yaml_str("layout: flat").unwrap();
        let mut writers = [JsonWriter::new(&nested), JsonWriter::new(&flat)];
        for _ in 0..300 {
            let t = std::time::Instant::now();
            buf.clear();
            for e in &events {
                buf.extend_from_slice(
                    b"{\"timestamp\":\"2026-12-03T10:00:00.000000Z\",\"message\":",
                );
                let mut ser = serde_json::Serializer::new(&mut buf);
                String::from_utf8_lossy(&e.body)
                    .serialize(&mut ser)
                    .unwrap();
                buf.extend_from_slice(b",\"fields\":");
                let mut ser = serde_json::Serializer::new(&mut buf);
                e.fields.serialize(&mut ser).unwrap();
                buf.extend_from_slice(b"}\n");
            }
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            for (i, w) in writers.iter_mut().enumerate() {
                let t = std::time::Instant::now();
                buf.clear();
                for e in &events {
                    w.write(e, &mut buf).unwrap();
                }
                best[i + 1] = best[i + 1].min(t.elapsed().as_secs_f64());
            }
        }
        for (name, s) in ["serde", "nested", "flat"].iter().zip(best) {
            println!("{name}: {:.0} ns/event", s * 1e6);
        }
    }
}
