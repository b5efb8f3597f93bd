//! Rows as `JSONEachRow`: one JSON object per line, one buffer per batch.
//!
//! The sink learns each column's type once (`DESCRIBE TABLE`) and writes
//! every value in the form that type parses on every ClickHouse since
//! 18.16, which reads JSON strictly: a `String` column takes only a JSON
//! string, a number column a number or a quoted number, a `DateTime` a
//! number of seconds or a quoted `YYYY-MM-DD hh:mm:ss`. So:
//!
//! | column type | written as |
//! |---|---|
//! | `String`, `FixedString`, `Enum`, `UUID` | a JSON string: text as is; numbers, booleans, timestamps (RFC 3339) as their text; maps and arrays as their JSON text |
//! | `Int*`, `UInt*`, `Float*`, `Decimal*` | numbers as is; `true`/`false` as 1/0; a timestamp as milliseconds since the epoch; text quoted (the server parses it, or refuses the row) |
//! | `DateTime` | a timestamp as seconds since the epoch; an RFC 3339 text as its seconds; other text quoted, numbers as is |
//! | `Date` | a timestamp or RFC 3339 text as `YYYY-MM-DD` (UTC) |
//! | `Array(T)` | an array with each element written for `T` |
//! | anything else | the value's JSON |
//!
//! `Nullable(T)` and `LowCardinality(T)` are written as `T`. A missing
//! field or a `null` leaves the key out: the column takes its default.

use std::fmt::Write as _;
use std::io::Write as _;

use sluice_core::prelude::*;

use crate::config::Part;

/// How values are written for a column, from its ClickHouse type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `String`, `FixedString(n)`, `Enum8(...)`, `UUID`, `IPv4`, `IPv6`.
    Text,
    /// Integers, floats, decimals.
    Number,
    /// `DateTime`, `DateTime('zone')`.
    DateTime,
    /// `Date`.
    Date,
    /// `Array(T)`.
    Array(Box<Kind>),
    /// Anything else: the value's JSON.
    Other,
}

impl Kind {
    /// The kind of a type as `DESCRIBE TABLE` prints it.
    pub fn of(ty: &str) -> Kind {
        let ty = ty.trim();
        for wrapper in ["Nullable(", "LowCardinality("] {
            if let Some(inner) = ty.strip_prefix(wrapper).and_then(|t| t.strip_suffix(')')) {
                return Kind::of(inner);
            }
        }
        if let Some(inner) = ty.strip_prefix("Array(").and_then(|t| t.strip_suffix(')')) {
            return Kind::Array(Box::new(Kind::of(inner)));
        }
        let starts = |p: &[&str]| p.iter().any(|p| ty.starts_with(p));
        if starts(&["String", "FixedString", "Enum", "UUID", "IPv4", "IPv6"]) {
            Kind::Text
        } else if starts(&["Int", "UInt", "Float", "Decimal"]) {
            Kind::Number
        } else if ty == "DateTime" || ty.starts_with("DateTime(") {
            Kind::DateTime
        } else if ty == "Date" {
            Kind::Date
        } else {
            Kind::Other
        }
    }
}

/// A column as the sink writes it.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name (validated: letters, digits, `_`, one `.`).
    pub name: String,
    /// Where its value comes from.
    pub part: Part,
    /// How its values are written.
    pub kind: Kind,
}

/// A batch encoded: the rows one after the other, and where each ends.
#[derive(Default)]
pub struct Rows {
    /// Every row, each a JSON object and a newline.
    pub body: Vec<u8>,
    /// `ends[i]` is the end of row `i` in `body`.
    pub ends: Vec<usize>,
    /// Reused for text.
    scratch: String,
    /// Reused for `@fields`.
    json: Vec<u8>,
}

impl Rows {
    /// Encodes `batch` for `columns`, replacing what was there.
    pub fn fill(&mut self, batch: &Batch, columns: &[Column]) {
        self.body.clear();
        self.ends.clear();
        for event in &batch.events {
            self.body.push(b'{');
            let mut first = true;
            for c in columns {
                let start = self.body.len();
                if !first {
                    self.body.push(b',');
                }
                self.body.push(b'"');
                self.body.extend_from_slice(c.name.as_bytes());
                self.body.extend_from_slice(b"\":");
                let written = match &c.part {
                    Part::Timestamp => {
                        write_value(
                            &mut self.body,
                            &mut self.scratch,
                            &Value::Timestamp(event.timestamp),
                            &c.kind,
                        );
                        true
                    }
                    Part::Message => {
                        let text = String::from_utf8_lossy(&event.body);
                        write_text_as(&mut self.body, &text, &c.kind);
                        true
                    }
                    Part::Fields => {
                        self.json.clear();
                        // A `Fields` map always serializes, as UTF-8.
                        let _ = serde_json::to_writer(&mut self.json, &event.fields);
                        let json = std::str::from_utf8(&self.json).unwrap_or("{}");
                        write_text_as(&mut self.body, json, &c.kind);
                        true
                    }
                    Part::Field(path) => match event.get(path) {
                        None | Some(Value::Null) => false,
                        Some(v) => {
                            write_value(&mut self.body, &mut self.scratch, v, &c.kind);
                            true
                        }
                    },
                };
                if written {
                    first = false;
                } else {
                    self.body.truncate(start);
                }
            }
            self.body.extend_from_slice(b"}\n");
            self.ends.push(self.body.len());
        }
    }

    /// The bytes of rows `lo..hi`.
    pub fn slice(&self, lo: usize, hi: usize) -> &[u8] {
        let start = if lo == 0 { 0 } else { self.ends[lo - 1] };
        &self.body[start..self.ends[hi - 1]]
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Text (a body, the fields' JSON) into a column of `kind`: a JSON string,
/// which every type parses from its text form (or refuses).
fn write_text_as(out: &mut Vec<u8>, text: &str, kind: &Kind) {
    match kind {
        Kind::DateTime => match rfc3339_seconds(text) {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => json_str(out, text),
        },
        _ => json_str(out, text),
    }
}

fn rfc3339_seconds(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.timestamp())
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        let _ = write!(out, "{f}");
    } else if f.is_nan() {
        out.extend_from_slice(b"\"nan\"");
    } else if f > 0.0 {
        out.extend_from_slice(b"\"inf\"");
    } else {
        out.extend_from_slice(b"\"-inf\"");
    }
}

/// A field value into a column of `kind` (see the [module docs](self)).
fn write_value(out: &mut Vec<u8>, scratch: &mut String, v: &Value, kind: &Kind) {
    match (kind, v) {
        (Kind::Array(inner), Value::Array(items)) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, scratch, item, inner);
            }
            out.push(b']');
        }
        (Kind::Text, Value::String(b)) => json_str(out, &String::from_utf8_lossy(b)),
        (Kind::Text, v) => {
            scratch.clear();
            v.write_text(scratch);
            json_str(out, scratch);
        }
        (Kind::Number, Value::Integer(i)) => {
            let _ = write!(out, "{i}");
        }
        (Kind::Number, Value::Float(f)) => write_float(out, *f),
        (Kind::Number, Value::Bool(b)) => out.push(if *b { b'1' } else { b'0' }),
        (Kind::Number, Value::Timestamp(t)) => {
            let _ = write!(out, "{}", t.0.div_euclid(1_000_000));
        }
        (Kind::DateTime, Value::Timestamp(t)) => {
            let _ = write!(out, "{}", t.seconds());
        }
        (Kind::DateTime, Value::Integer(i)) => {
            let _ = write!(out, "{i}");
        }
        (Kind::DateTime, Value::Float(f)) if f.is_finite() => {
            let _ = write!(out, "{}", f.trunc() as i64);
        }
        (Kind::DateTime, Value::String(b)) => {
            write_text_as(out, &String::from_utf8_lossy(b), &Kind::DateTime)
        }
        (Kind::Date, Value::Timestamp(t)) => {
            scratch.clear();
            let _ = write!(scratch, "{}", t.to_datetime().format("%Y-%m-%d"));
            json_str(out, scratch);
        }
        (Kind::Date, Value::String(b)) => {
            let text = String::from_utf8_lossy(b);
            match chrono::DateTime::parse_from_rfc3339(&text) {
                Ok(d) => {
                    scratch.clear();
                    let _ = write!(scratch, "{}", d.naive_utc().format("%Y-%m-%d"));
                    json_str(out, scratch);
                }
                Err(_) => json_str(out, &text),
            }
        }
        // Anything else: text the server parses or refuses.
        (Kind::Number | Kind::DateTime | Kind::Date | Kind::Array(_), v) => {
            scratch.clear();
            v.write_text(scratch);
            json_str(out, scratch);
        }
        (Kind::Other, v) => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, part: Part, ty: &str) -> Column {
        Column {
            name: name.to_string(),
            part,
            kind: Kind::of(ty),
        }
    }

    #[test]
    fn kinds_of_types_as_describe_prints_them() {
        assert_eq!(Kind::of("LowCardinality(Nullable(String))"), Kind::Text);
        assert_eq!(Kind::of("Enum8(\\'a\\' = 1)"), Kind::Text);
        assert_eq!(Kind::of("Nullable(UInt16)"), Kind::Number);
        assert_eq!(Kind::of("DateTime('UTC')"), Kind::DateTime);
        assert_eq!(Kind::of("Date"), Kind::Date);
        assert_eq!(
            Kind::of("Array(Int64)"),
            Kind::Array(Box::new(Kind::Number))
        );
        assert_eq!(Kind::of("DateTime64(3)"), Kind::Other);
        assert_eq!(Kind::of("Tuple(String, UInt8)"), Kind::Other);
    }

    #[test]
    fn each_value_is_written_the_way_its_column_parses_it() {
        let columns = [
            col("ts", Part::Timestamp, "DateTime"),
            col("ms", Part::Timestamp, "UInt64"),
            col("day", Part::Timestamp, "Date"),
            col("message", Part::Message, "String"),
            col("status", Part::Field("http.status".into()), "UInt16"),
            col("ok", Part::Field("ok".into()), "UInt8"),
            col("status_text", Part::Field("http.status".into()), "String"),
            col("tags", Part::Field("tags".into()), "Array(String)"),
            col("when", Part::Field("when".into()), "DateTime"),
            col("gone", Part::Field("absent".into()), "String"),
            col("ratio", Part::Field("ratio".into()), "Float64"),
            col("fields", Part::Fields, "String"),
        ];
        let mut e = Event::new("GET / \"x\"", Timestamp(1_700_000_000_123_456_789));
        e.insert("http.status", 200i64);
        e.insert("ok", true);
        e.insert(
            "tags",
            Value::Array(vec![Value::from("a"), Value::Integer(7)]),
        );
        e.insert("when", "2023-11-14T22:13:21Z");
        e.insert("ratio", f64::NAN);
        let mut batch = Batch::new();
        batch.push(e);
        batch.push(Event::new("second", Timestamp(0)));
        let mut rows = Rows::default();
        rows.fill(&batch, &columns);
        let text = String::from_utf8(rows.body.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "{\"ts\":1700000000,\"ms\":1700000000123,\"day\":\"2023-11-14\",\
             \"message\":\"GET / \\\"x\\\"\",\"status\":200,\"ok\":1,\"status_text\":\"200\",\
             \"tags\":[\"a\",\"7\"],\"when\":1700000001,\"ratio\":\"nan\",\
             \"fields\":\"{\\\"http\\\":{\\\"status\\\":200},\\\"ok\\\":true,\\\"tags\\\":[\\\"a\\\",7],\\\"when\\\":\\\"2023-11-14T22:13:21Z\\\",\\\"ratio\\\":null}\"}"
        );
        // A missing field leaves its key out; the rest of the row is valid.
        assert_eq!(
            lines[1],
            "{\"ts\":0,\"ms\":0,\"day\":\"1970-01-01\",\"message\":\"second\",\"fields\":\"{}\"}"
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.slice(1, 2), format!("{}\n", lines[1]).as_bytes());
        assert_eq!(rows.slice(0, 2), text.as_bytes());
    }
}
