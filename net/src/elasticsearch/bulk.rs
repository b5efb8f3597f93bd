//! The `_bulk` body: NDJSON pairs of an action line and a document line,
//! turned into one batch of events and one answer item per action.
//!
//! `index` and `create` take their document; `delete` and `update` are
//! refused per item (Sluice only ingests). A malformed action or document,
//! a missing document or an unknown action fails only its own item.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{json, Value as Json};
use sluice_core::prelude::*;

/// The event field that holds the index a document was sent to.
pub const INDEX_FIELD: &str = "_index";
/// The event field that holds the document's id.
pub const ID_FIELD: &str = "_id";

/// Hands out document ids for documents sent without one: unique within the
/// process and, started from the clock, across restarts.
#[derive(Debug)]
pub(crate) struct Ids(AtomicU64);

impl Ids {
    pub(crate) fn new() -> Ids {
        Ids(AtomicU64::new(Timestamp::now().0.unsigned_abs()))
    }

    pub(crate) fn next(&self) -> String {
        format!("{:016x}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    /// `index`, `create`, `delete` or `update` (`index` for a line that is
    /// no action at all).
    pub action: &'static str,
    /// The index, when known.
    pub index: Option<String>,
    /// The document id, when known.
    pub id: Option<String>,
    /// `None` when the document was taken, else why not.
    pub error: Option<ItemError>,
}

/// Why an item failed: a 400 with Elasticsearch's error type and a reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemError {
    pub kind: &'static str,
    pub reason: String,
}

impl Item {
    /// The item as the bulk answer lists it.
    pub(crate) fn to_json(&self) -> Json {
        let inner = match &self.error {
            None => json!({
                "_index": self.index,
                "_id": self.id,
                "_version": 1,
                "result": "created",
                "_shards": { "total": 1, "successful": 1, "failed": 0 },
                "_seq_no": 0,
                "_primary_term": 1,
                "status": 201,
            }),
            Some(e) => json!({
                "_index": self.index,
                "_id": self.id,
                "status": 400,
                "error": { "type": e.kind, "reason": e.reason },
            }),
        };
        json!({ self.action: inner })
    }
}

/// The events of a bulk body and an item per action, in order.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub batch: Batch,
    pub items: Vec<Item>,
}

/// Reads a bulk body. `path_index` is the `{index}` of `/{index}/_bulk`,
/// the default of actions that name none.
pub(crate) fn parse(
    body: &Bytes,
    path_index: Option<&str>,
    max_fields: usize,
    ids: &Ids,
    now: Timestamp,
) -> Parsed {
    let lines = lines(body);
    let mut batch = Batch::new();
    let mut items = Vec::new();
    // The index field's value, shared by the events of one index (a clone
    // is a reference count, not a copy).
    let mut shared_index: Option<(String, Value)> = None;
    let mut i = 0;
    while i < lines.len() {
        let (line_no, line) = (lines[i].0, &lines[i].1);
        i += 1;
        let fail = |action, kind, reason: String| Item {
            action,
            index: None,
            id: None,
            error: Some(ItemError { kind, reason }),
        };
        let action = match action_of(line) {
            Ok(a) => a,
            Err(reason) => {
                items.push(fail(
                    "index",
                    "illegal_argument_exception",
                    format!("line {line_no}: malformed action/metadata line: {reason}"),
                ));
                // Its document, unless the next line is an action itself.
                if lines.get(i).is_some_and(|(_, l)| action_of(l).is_err()) {
                    i += 1;
                }
                continue;
            }
        };
        let index = action
            .meta
            .get("_index")
            .and_then(Json::as_str)
            .or(path_index)
            .map(str::to_string);
        let given_id = match action.meta.get("_id") {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let refuse = |kind, reason: String| Item {
            action: action.name,
            index: index.clone(),
            id: given_id.clone(),
            error: Some(ItemError { kind, reason }),
        };
        match action.name {
            "delete" => {
                items.push(refuse(
                    "illegal_argument_exception",
                    format!("line {line_no}: `delete` is refused: Sluice only ingests documents (index, create)"),
                ));
                continue;
            }
            "update" => {
                items.push(refuse(
                    "illegal_argument_exception",
                    format!("line {line_no}: `update` is refused: Sluice only ingests documents (index, create)"),
                ));
                i += usize::from(i < lines.len());
                continue;
            }
            _ => {}
        }
        let Some((doc_no, doc)) = lines.get(i) else {
            items.push(refuse(
                "action_request_validation_exception",
                format!("Validation Failed: 1: source is missing (line {line_no} has no document line after it);"),
            ));
            continue;
        };
        i += 1;
        let Some(index) = index.clone() else {
            items.push(refuse(
                "action_request_validation_exception",
                format!("Validation Failed: 1: index is missing (line {line_no} names no _index and the path none);"),
            ));
            continue;
        };
        match document(doc, *doc_no, max_fields, now) {
            Ok(mut event) => {
                let id = given_id.clone().unwrap_or_else(|| ids.next());
                let value = match &shared_index {
                    Some((name, v)) if *name == index => v.clone(),
                    _ => {
                        let v = Value::from(index.as_str());
                        shared_index = Some((index.clone(), v.clone()));
                        v
                    }
                };
                event.fields.insert(INDEX_FIELD, value);
                event.fields.insert(ID_FIELD, Value::from(id.as_str()));
                batch.push(event);
                items.push(Item {
                    action: action.name,
                    index: Some(index),
                    id: Some(id),
                    error: None,
                });
            }
            Err(reason) => items.push(refuse("document_parsing_exception", reason)),
        }
    }
    Parsed { batch, items }
}

/// The non-blank lines of `body` with their numbers (from 1), without
/// their line ends; each a slice of the body.
fn lines(body: &Bytes) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let (mut start, mut no) = (0, 0);
    while start < body.len() {
        no += 1;
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let mut line = body.slice(start..end);
        start = end + 1;
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push((no, line));
        }
    }
    out
}

/// An action line: its name and metadata.
struct Action {
    name: &'static str,
    meta: serde_json::Map<String, Json>,
}

/// Reads an action line; why it is none.
fn action_of(line: &[u8]) -> Result<Action, String> {
    let v: Json = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Json::Object(o) = v else {
        return Err("expected an object such as {\"index\":{}}".into());
    };
    let mut members = o.into_iter();
    let (Some((name, meta)), None) = (members.next(), members.next()) else {
        return Err("expected an object of one member, the action".into());
    };
    let name = match name.as_str() {
        "index" => "index",
        "create" => "create",
        "delete" => "delete",
        "update" => "update",
        other => {
            return Err(format!(
                "expected one of [create, delete, index, update] but found [{}]",
                sluice_core::quote::quoted(other).max(60)
            ))
        }
    };
    let Json::Object(meta) = meta else {
        return Err(format!("the metadata of `{name}` is not an object"));
    };
    Ok(Action { name, meta })
}

/// A document line as an event: its members as fields; `@timestamp` (or
/// else `timestamp`) as the time when it reads as one (then no longer a
/// field); a string `message` as the body (then no longer a field), else
/// the document's JSON text as the body.
pub(crate) fn document(
    line: &Bytes,
    line_no: usize,
    max_fields: usize,
    now: Timestamp,
) -> Result<Event, String> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| format!("line {line_no}: failed to parse the document: {e}"))?;
    let Value::Map(mut fields) = v else {
        return Err(format!(
            "line {line_no}: failed to parse the document: expected an object"
        ));
    };
    for meta in [INDEX_FIELD, ID_FIELD] {
        if fields.contains_key(meta) {
            return Err(format!(
                "line {line_no}: field [{meta}] is a metadata field and cannot be added inside a document; give it in the action line"
            ));
        }
    }
    let n = fields.deep_len();
    if n > max_fields {
        return Err(format!(
            "line {line_no}: a document of {n} fields (nested ones included) is more than max_fields ({max_fields})"
        ));
    }
    let mut timestamp = now;
    for key in ["@timestamp", "timestamp"] {
        if let Some(t) = fields.get(key).and_then(time_of) {
            timestamp = t;
            fields.remove(key);
            break;
        }
    }
    let body = match fields.get("message") {
        Some(Value::String(_)) => match fields.remove("message") {
            Some(Value::String(m)) => m,
            _ => line.clone(),
        },
        _ => line.clone(),
    };
    Ok(Event {
        body,
        timestamp,
        fields,
    })
}

/// A time as Elasticsearch's default date format reads it: an ISO 8601
/// date-time (with or without zone, UTC when none), a date, or a number of
/// milliseconds since the epoch.
pub fn time_of(v: &Value) -> Option<Timestamp> {
    match v {
        Value::Integer(ms) => ms.checked_mul(1_000_000).map(Timestamp),
        Value::Float(ms) if ms.is_finite() && ms.abs() < 9.2e15 => {
            Some(Timestamp((ms * 1e6) as i64))
        }
        Value::Timestamp(t) => Some(*t),
        Value::String(_) => parse_date(v.as_str()?),
        _ => None,
    }
}

/// [`time_of`] for text.
pub fn parse_date(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(Timestamp::from_datetime(&t));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(Timestamp::from_datetime(&t.and_utc()));
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(Timestamp::from_datetime(&t));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(Timestamp::from_datetime(&d.and_hms_opt(0, 0, 0)?.and_utc()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = sluice_core::event::DEFAULT_MAX_FIELDS;

    fn run(body: &str, path_index: Option<&str>) -> Parsed {
        parse(
            &Bytes::from(body.to_string()),
            path_index,
            MAX,
            &Ids::new(),
            Timestamp(7),
        )
    }

    #[test]
    fn index_and_create_take_their_documents_with_time_message_index_and_id() {
        let p = run(
            "{\"index\":{\"_index\":\"logs\",\"_id\":\"a1\"}}\n{\"@timestamp\":\"2026-12-03T10:00:00.5Z\",\"message\":\"hello\",\"n\":3}\n\n{\"create\":{}}\r\n{\"timestamp\":1796292000000,\"level\":\"warn\",\"message\":{\"k\":1}}\n",
            Some("default"),
        );
        assert_eq!(p.batch.len(), 2);
        let e = &p.batch.events[0];
        assert_eq!(&e.body[..], b"hello");
        assert_eq!(
            e.timestamp.to_datetime().to_rfc3339(),
            "2026-12-03T10:00:00.500+00:00"
        );
        assert_eq!(e.get("n"), Some(&Value::Integer(3)));
        assert_eq!(e.get("_index"), Some(&Value::from("logs")));
        assert_eq!(e.get("_id"), Some(&Value::from("a1")));
        assert!(e.get("message").is_none() && e.get("@timestamp").is_none());
        // No string message: the document's text is the body, `message`
        // stays a field; epoch milliseconds are a time; the path's index.
        let e = &p.batch.events[1];
        assert!(e.body.starts_with(b"{\"timestamp\""));
        assert_eq!(e.timestamp, Timestamp(1_796_292_000_000_000_000));
        assert!(e.get("message").is_some());
        assert_eq!(e.get("_index"), Some(&Value::from("default")));
        let id = e.get("_id").and_then(Value::as_str).expect("an id");
        assert_eq!(id.len(), 16);
        assert_eq!(p.items.len(), 2);
        assert!(p.items.iter().all(|i| i.error.is_none()));
        assert_eq!(p.items[1].action, "create");
        assert_eq!(p.items[0].to_json()["index"]["status"], 201);
        assert_eq!(p.items[1].to_json()["create"]["result"], "created");
    }

    #[test]
    fn a_bad_line_fails_only_its_item() {
        let body = [
            "{\"index\":{\"_index\":\"a\"}}",
            "{\"n\":1}",
            "{not json",
            "{\"n\":2}",
            "{\"delete\":{\"_index\":\"a\",\"_id\":\"x\"}}",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"x\"}}",
            "{\"doc\":{\"n\":9}}",
            "{\"index\":{\"_index\":\"a\"}}",
            "[1,2]",
            "{\"upsert\":{}}",
            "{\"n\":3}",
            "{\"index\":{}}",
            "{\"n\":4}",
            "{\"create\":{\"_index\":\"a\",\"_id\":7}}",
            "{\"n\":5}",
            "{\"index\":{\"_index\":\"a\"}}",
            "{\"_id\":\"forged\"}",
            "{\"index\":{\"_index\":\"a\"}}",
        ]
        .join("\n");
        let p = run(&body, None);
        let kinds: Vec<_> = p
            .items
            .iter()
            .map(|i| (i.action, i.error.as_ref().map(|e| e.kind)))
            .collect();
        assert_eq!(
            kinds,
            [
                ("index", None),
                ("index", Some("illegal_argument_exception")),
                ("delete", Some("illegal_argument_exception")),
                ("update", Some("illegal_argument_exception")),
                ("index", Some("document_parsing_exception")),
                ("index", Some("illegal_argument_exception")),
                ("index", Some("action_request_validation_exception")),
                ("create", None),
                ("index", Some("document_parsing_exception")),
                ("index", Some("action_request_validation_exception")),
            ]
        );
        let ns: Vec<_> = p.batch.iter().map(|e| e.get("n").cloned()).collect();
        assert_eq!(ns, [Some(Value::Integer(1)), Some(Value::Integer(5))]);
        assert_eq!(p.items[7].id.as_deref(), Some("7"));
        let reason = &p.items[2].error.as_ref().expect("refused").reason;
        assert!(reason.contains("only ingests"), "{reason}");
        assert!(p.items[1]
            .error
            .as_ref()
            .expect("bad")
            .reason
            .starts_with("line 3:"));
        let j = p.items[4].to_json();
        assert_eq!(j["index"]["status"], 400);
        assert_eq!(j["index"]["error"]["type"], "document_parsing_exception");
        assert!(p.items[8]
            .error
            .as_ref()
            .expect("forged")
            .reason
            .contains("metadata field"));
        assert!(p.items[9]
            .error
            .as_ref()
            .expect("missing")
            .reason
            .contains("source is missing"));
    }

    #[test]
    fn too_many_fields_fail_the_document() {
        let p = parse(
            &Bytes::from_static(b"{\"index\":{\"_index\":\"a\"}}\n{\"a\":1,\"b\":{\"c\":2}}\n"),
            None,
            2,
            &Ids::new(),
            Timestamp(0),
        );
        assert!(p.batch.is_empty());
        let e = p.items[0].error.as_ref().expect("refused");
        assert!(
            e.reason.contains("more than max_fields (2)"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn dates_read_as_elasticsearch_reads_them() {
        let t = |s: &str| parse_date(s).map(|t| t.0 / 1_000_000);
        assert_eq!(t("2026-12-03T10:00:00Z"), Some(1_796_292_000_000));
        assert_eq!(t("2026-12-03T10:00:00"), Some(1_796_292_000_000));
        assert_eq!(t("2026-12-03T11:00:00.000+0100"), Some(1_796_292_000_000));
        assert_eq!(t("2026-12-03"), Some(1_796_256_000_000));
        assert_eq!(t("yesterday"), None);
        assert_eq!(
            time_of(&Value::Integer(1_796_292_000_000)),
            Some(Timestamp(1_796_292_000_000_000_000))
        );
    }
}
