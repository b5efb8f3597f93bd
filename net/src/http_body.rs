//! The `http` source's body decoders: NDJSON, a JSON array or object, or
//! plain lines, chosen by the request's `Content-Type`.
//!
//! JSON is parsed straight into the event's [`Value`]s (no intermediate
//! `serde_json::Value`), which keeps members in the order they were written
//! and costs time linear in the body's size, however many members an object
//! has. An object with more than `max_fields` fields (counted as
//! [`Fields::deep_len`] counts them: nested ones included) fails the whole
//! request, like malformed JSON does.

use bytes::Bytes;
use sluice_core::prelude::*;

/// How a body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One JSON object per line.
    Ndjson,
    /// A JSON array of objects, or one object.
    Json,
    /// One event per line.
    Lines,
}

impl Kind {
    /// The decoder for a `Content-Type` (plain lines when absent or unknown).
    pub(crate) fn of(content_type: Option<&str>) -> Kind {
        match content_type {
            Some(t)
                if t.starts_with("application/x-ndjson") || t.starts_with("application/jsonl") =>
            {
                Kind::Ndjson
            }
            Some(t) if t.starts_with("application/json") => Kind::Json,
            _ => Kind::Lines,
        }
    }
}

/// An event from one JSON object, or why it cannot be one.
fn object_event(body: Bytes, v: Value, now: Timestamp, max_fields: usize) -> Result<Event, String> {
    let Value::Map(fields) = v else {
        return Err(format!("expected JSON objects, found {}", kind_name(&v)));
    };
    let n = fields.deep_len();
    if n > max_fields {
        return Err(format!(
            "an object of {n} fields (nested ones included) is more than max_fields ({max_fields})"
        ));
    }
    let mut e = Event::new(body, now);
    e.fields = fields;
    Ok(e)
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Integer(_) | Value::Float(_) => "a number",
        Value::String(_) | Value::Timestamp(_) => "a string",
        Value::Array(_) => "an array",
        Value::Map(_) => "an object",
    }
}

/// Bodies from this size on are decoded on tokio's blocking pool, so that a
/// large one does not hold up the other requests (and `/health`) of the
/// worker thread for the milliseconds its parsing takes.
const OFF_THREAD_FROM: usize = 256 << 10;

/// [`decode`], on the blocking pool for a large body.
pub(crate) async fn decode_off_thread(
    body: Bytes,
    kind: Kind,
    max_fields: usize,
) -> Result<Batch, String> {
    if body.len() < OFF_THREAD_FROM {
        return decode(body, kind, max_fields);
    }
    tokio::task::spawn_blocking(move || decode(body, kind, max_fields))
        .await
        .unwrap_or_else(|e| Err(format!("the body could not be decoded: {e}")))
}

/// Turns a request body into events; an error message for a malformed one
/// (then no event of it is taken).
pub(crate) fn decode(body: Bytes, kind: Kind, max_fields: usize) -> Result<Batch, String> {
    let now = Timestamp::now();
    let mut batch = Batch::new();
    match kind {
        Kind::Lines | Kind::Ndjson => {
            let mut start = 0;
            let mut line_no = 0;
            while start < body.len() {
                line_no += 1;
                let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
                let mut line = body.slice(start..end);
                start = end + 1;
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                if kind == Kind::Lines {
                    batch.push(Event::new(line, now));
                    continue;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = serde_json::from_slice(&line)
                    .map_err(|e| format!("line {line_no}: invalid JSON: {e}"))?;
                batch.push(
                    object_event(line, v, now, max_fields)
                        .map_err(|e| format!("line {line_no}: {e}"))?,
                );
            }
        }
        Kind::Json => {
            let v: Value =
                serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"))?;
            let items = match v {
                Value::Array(items) => items,
                other => vec![other],
            };
            for (i, item) in items.into_iter().enumerate() {
                let text = Bytes::from(serde_json::to_vec(&item).unwrap_or_default());
                batch.push(
                    object_event(text, item, now, max_fields)
                        .map_err(|e| format!("item {i}: {e}"))?,
                );
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = sluice_core::event::DEFAULT_MAX_FIELDS;

    #[test]
    fn bodies_decode_by_content_type() {
        let b = decode(
            Bytes::from_static(b"{\"a\":1}\n\n{\"a\":2,\"s\":\"x\"}\r\n"),
            Kind::Ndjson,
            MAX,
        )
        .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.events[1].get("s"), Some(&Value::from("x")));
        assert_eq!(&b.events[0].body[..], b"{\"a\":1}");
        let b = decode(
            Bytes::from_static(b"[{\"z\":1,\"a\":0},{\"b\":[1,2]}]"),
            Kind::Json,
            MAX,
        )
        .unwrap();
        assert_eq!(b.len(), 2);
        // Members keep the order they were written in.
        assert_eq!(&b.events[0].body[..], b"{\"z\":1,\"a\":0}");
        let b = decode(Bytes::from_static(b"one\ntwo\r\nthree"), Kind::Lines, MAX).unwrap();
        let bodies: Vec<_> = b.iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, ["one", "two", "three"]);
        let e = decode(Bytes::from_static(b"{\"a\":1}\n{oops\n"), Kind::Ndjson, MAX).unwrap_err();
        assert!(e.starts_with("line 2: invalid JSON"), "{e}");
        let e = decode(Bytes::from_static(b"[1]"), Kind::Json, MAX).unwrap_err();
        assert!(e.contains("expected JSON objects, found a number"), "{e}");
        assert_eq!(Kind::of(Some("application/jsonl")), Kind::Ndjson);
        assert_eq!(
            Kind::of(Some("application/json; charset=utf-8")),
            Kind::Json
        );
        assert_eq!(Kind::of(None), Kind::Lines);
    }

    #[test]
    fn max_fields_counts_nested_fields_and_refuses_past_it() {
        let nested = Bytes::from_static(b"{\"a\":1,\"b\":{\"c\":2,\"d\":[{\"e\":3}]}}");
        // a, b, b.c, b.d, b.d[0].e: 5.
        assert_eq!(decode(nested.clone(), Kind::Json, 5).unwrap().len(), 1);
        let e = decode(nested.clone(), Kind::Json, 4).unwrap_err();
        assert_eq!(
            e,
            "item 0: an object of 5 fields (nested ones included) is more than max_fields (4)"
        );
        let e = decode(nested, Kind::Ndjson, 4).unwrap_err();
        assert!(e.starts_with("line 1: an object of 5 fields"), "{e}");
        let mut wide = String::from("{");
        for i in 0..20_000 {
            wide.push_str(&format!("\"k{i}\":{i},"));
        }
        wide.push_str("\"last\":true}");
        let e = decode(Bytes::from(wide.clone()), Kind::Json, MAX).unwrap_err();
        assert!(e.contains("20001 fields"), "{e}");
        let b = decode(Bytes::from(wide), Kind::Json, 50_000).unwrap();
        assert_eq!(b.events[0].fields.len(), 20_001);
        assert_eq!(b.events[0].get("k19999"), Some(&Value::Integer(19_999)));
    }
}
