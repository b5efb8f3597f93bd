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
//! The encoder appends to a caller's buffer, so a sink encodes a whole batch
//! into one reused `Vec<u8>` and writes it at once. It caches the formatted
//! date and time of the last second seen, so JSON encoding does not format
//! a date per event.

use std::io::Write as _;

use serde::{Deserialize, Serialize as _};
use sluice_core::event::{Batch, Event, Timestamp};

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

/// Encodes events in one [`Format`].
#[derive(Debug)]
pub struct Encoder {
    /// The format written.
    format: Format,
    /// The second (since the epoch) whose text is in `second_text`.
    cached_second: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `cached_second`.
    second_text: String,
}

impl Encoder {
    /// An encoder for `format`.
    pub fn new(format: Format) -> Self {
        Encoder {
            format,
            cached_second: None,
            second_text: String::new(),
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

    fn encode_json(&mut self, event: &Event, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        buf.extend_from_slice(b"{\"timestamp\":\"");
        self.push_timestamp(event.timestamp, buf);
        buf.extend_from_slice(b"\",\"message\":");
        let mut ser = serde_json::Serializer::new(&mut *buf);
        String::from_utf8_lossy(&event.body).serialize(&mut ser)?;
        if !event.fields.is_empty() {
            buf.extend_from_slice(b",\"fields\":");
            let mut ser = serde_json::Serializer::new(&mut *buf);
            event.fields.serialize(&mut ser)?;
        }
        buf.extend_from_slice(b"}\n");
        Ok(())
    }

    /// Writes `ts` exactly as its `Display` does, formatting the date and
    /// time only when the second changes.
    fn push_timestamp(&mut self, ts: Timestamp, buf: &mut Vec<u8>) {
        let second = ts.seconds();
        if self.cached_second != Some(second) {
            let Some(whole) = second.checked_mul(1_000_000_000) else {
                // Out of chrono's range: no caching, plain Display.
                let _ = write!(buf, "{ts}");
                return;
            };
            let text = Timestamp(whole).to_string();
            // Display ends in `.000000Z` for a whole second.
            self.second_text.clear();
            self.second_text
                .push_str(text.strip_suffix(".000000Z").unwrap_or(&text));
            self.cached_second = Some(second);
        }
        buf.extend_from_slice(self.second_text.as_bytes());
        let micros = (ts.0.rem_euclid(1_000_000_000) / 1_000) as u32;
        let mut digits = [b'.', b'0', b'0', b'0', b'0', b'0', b'0', b'Z'];
        let mut n = micros;
        for d in digits[1..7].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        buf.extend_from_slice(&digits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut enc = Encoder::new(Format::Json);
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
        for ts in stamps {
            let mut buf = Vec::new();
            enc.push_timestamp(Timestamp(ts), &mut buf);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                Timestamp(ts).to_string(),
                "{ts}"
            );
        }
    }
}
