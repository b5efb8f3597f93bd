//! How events become bytes: the `text` and `json` formats shared by the
//! `file` and `console` sinks.
//!
//! * `text`: the body bytes as they are, then `\n`. A body that itself holds
//!   a newline is written unchanged (it then spans two lines).
//! * `json`: one compact object per line, keys in this order:
//!   `{"timestamp":"2026-11-26T04:43:11.123456Z","message":"...","fields":{...}}\n`.
//!   `timestamp` is the event's timestamp as [`Timestamp`]'s `Display` shows
//!   it (RFC 3339, UTC, microseconds, `Z`); `message` is the body, as UTF-8
//!   with invalid bytes replaced by U+FFFD; `fields` holds the event's fields
//!   and is left out when the event has none.
//!
//!
//! The `json` format takes options ([`Encoding`], a sink's `encoding:`):
//! the `flat` layout (fields beside `timestamp` and `message`), which keys
//! to write (`only_fields`, `except_fields`) and how timestamps are written
//! (`timestamp_format`); the defaults give the layout above.
//!
//! The encoder appends to a caller's buffer, so a sink encodes a whole batch
//! into one reused `Vec<u8>` and writes it at once, with no allocation per
//! event or field. It caches the formatted date and time of the last second
//! seen, so JSON encoding does not format a date per event.

mod json;

use serde::Deserialize;
use sluice_core::event::{Batch, Event};
use sluice_core::registry::Problem;

pub use json::{Encoding, JsonWriter, Layout, TimestampFormat};

/// The output format of a sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The body, then a newline.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `message`, `fields`.
    Json,
}

/// The problems of a sink's `encoding:` for its `format`: it applies to
/// `json` only, and its own option problems.
pub fn encoding_problems(format: Format, encoding: Option<&Encoding>) -> Vec<Problem> {
    let Some(encoding) = encoding else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if format != Format::Json {
        problems.push(Problem::at(
            "encoding",
            "applies to `format: json` only: set `format: json` or remove `encoding`",
        ));
    }
    for (key, message) in encoding.problems() {
        problems.push(Problem::at(&format!("encoding.{key}"), message));
    }
    problems
}

/// Encodes events in one [`Format`].
#[derive(Debug)]
pub struct Encoder {
    /// The format written.
    format: Format,
    /// Writes the `json` format.
    json: JsonWriter,
}

impl Encoder {
    /// An encoder for `format`, with the default JSON options.
    pub fn new(format: Format) -> Self {
        Self::with_encoding(format, &Encoding::default())
    }

    /// An encoder for `format`; `encoding` applies to `json`.
    pub fn with_encoding(format: Format, encoding: &Encoding) -> Self {
        Encoder {
            format,
            json: JsonWriter::new(encoding),
        }
    }

    /// The format this encoder writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends one event, with its trailing newline, to `buf`.
    ///
    /// # Errors
    ///
    /// When the event cannot be encoded (JSON serialization failed); `buf`
    /// is then left as it was.
    pub fn encode(&mut self, event: &Event, buf: &mut Vec<u8>) -> Result<(), String> {
        match self.format {
            Format::Text => {
                buf.extend_from_slice(&event.body);
                buf.push(b'\n');
                Ok(())
            }
            Format::Json => {
                let start = buf.len();
                self.encode_json(event, buf).map_err(|e| {
                    buf.truncate(start);
                    format!("cannot encode the event as JSON: {e}")
                })
            }
        }
    }

    /// Appends every event of `batch` to `buf`; returns the events that
    /// could not be encoded (index in the batch, reason), which are left out.
    pub fn encode_batch(&mut self, batch: &Batch, buf: &mut Vec<u8>) -> Vec<(usize, String)> {
        let mut rejected = Vec::new();
        if self.format == Format::Text {
            buf.reserve(batch.body_bytes() + batch.len());
        }
        for (i, event) in batch.iter().enumerate() {
            if let Err(e) = self.encode(event, buf) {
                rejected.push((i, e));
            }
        }
        rejected
    }

    fn encode_json(&mut self, event: &Event, buf: &mut Vec<u8>) -> std::io::Result<()> {
        self.json.write(event, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::Timestamp;

    fn ev(body: &str, ts: i64) -> Event {
        Event::new(body.to_string(), Timestamp(ts))
    }

    #[test]
    fn text_is_body_and_newline() {
        let mut enc = Encoder::new(Format::Text);
        let mut buf = Vec::new();
        let batch = Batch::from(vec![ev("a b", 0), ev("", 0), ev("c", 0)]);
        assert!(enc.encode_batch(&batch, &mut buf).is_empty());
        assert_eq!(buf, b"a b\n\nc\n");
    }

    #[test]
    fn json_layout_is_exact() {
        let mut enc = Encoder::new(Format::Json);
        let mut buf = Vec::new();
        let mut e = ev("say \"hi\"", 1_500_000_123_456);
        enc.encode(&e, &mut buf).unwrap();
        e.insert("http.status", 200i64);
        e.insert("app", "web");
        enc.encode(&e, &mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"timestamp\":\"1970-01-01T00:25:00.000123Z\",\"message\":\"say \\\"hi\\\"\"}\n\
             {\"timestamp\":\"1970-01-01T00:25:00.000123Z\",\"message\":\"say \\\"hi\\\"\",\
             \"fields\":{\"http\":{\"status\":200},\"app\":\"web\"}}\n"
        );
    }

    #[test]
    fn json_body_is_lossy_utf8() {
        let mut enc = Encoder::new(Format::Json);
        let mut buf = Vec::new();
        enc.encode(&Event::new(&b"a\xffb"[..], Timestamp(0)), &mut buf)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["message"], "a\u{fffd}b");
    }

    #[test]
    fn cached_timestamps_match_display() {
        let stamps = [
            0,
            1,
            999,
            1_000,
            999_999_999,
            1_000_000_000,
            1_795_668_191_123_456_789,
            1_795_668_191_999_999_999,
            1_795_668_192_000_000_001,
            -1,
            -1_000,
            -1_000_000_000,
            -1_500_000_000,
            i64::MAX,
            i64::MIN,
        ];
        let (mut second, mut text) = (None, String::new());
        for ts in stamps {
            let mut buf = Vec::new();
            json::push_rfc3339(&mut second, &mut text, Timestamp(ts), &mut buf);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                Timestamp(ts).to_string(),
                "{ts}"
            );
        }
    }
}
