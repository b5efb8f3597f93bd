//! The index layout: one tantivy schema shared by the sink and the search,
//! and the conversion of an [`Event`] into a document.
//!
//! | index field | what it holds | how |
//! |---|---|---|
//! | `timestamp` | the event's timestamp | date, indexed, fast (nanoseconds), stored |
//! | `message` | the body | full text (default tokenizer, lower-cased, positions for phrases), stored |
//! | `fields` | every field, by name | JSON: strings as keywords (exact, case-sensitive), numbers, booleans and dates typed; stored |
//! | `columns` | numbers, booleans and dates of every field, strings of the fields named in `fast_fields` | JSON, fast only (ranges) |
//! | `text` | the fields named in `text_fields` | JSON, full text |
//! | `_id` | the identity of an event whose sink sets `dedupe_by` | u64, indexed |
//!
//! A query names fields as the events do (`status:404`): [`crate::search`]
//! maps a name that is not one of the index fields to `fields.<name>`, or to
//! `text.<name>` when it is a text field. Which fields are text is kept in
//! `sluice-store.json` beside the index, so the search needs only the path.
//!
//! Layout 1 (before `columns`) made every value of `fields` fast, strings
//! too: a dictionary column per string field, which cost a quarter of the
//! indexing time and served no query. An index of layout 1 is still read
//! and written in its own layout (ranges then go to `fields`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sluice_core::event::{Event, Value};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    OwnedValue, Schema, TextFieldIndexing, STORED, TEXT,
};
use tantivy::{DateTime, TantivyDocument};

use crate::StoreError;

/// The file beside the index that records how it was built.
pub const META_FILE: &str = "sluice-store.json";

/// What the search needs to know about an index besides its schema.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreMeta {
    /// Layout version of the index.
    pub version: u32,
    /// Fields also indexed as full text (`text.<name>`).
    #[serde(default)]
    pub text_fields: Vec<String>,
}

impl StoreMeta {
    /// The current layout version.
    pub const VERSION: u32 = 2;

    /// Reads `sluice-store.json` in `dir`.
    pub fn load(dir: &Path) -> Result<StoreMeta, StoreError> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            StoreError::Open(format!(
                "{}: {e} (is this the `path` of a store sink?)",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))
    }

    /// Writes `sluice-store.json` in `dir` (through a temporary file and a
    /// rename, so a crash leaves the old or the new one).
    pub fn save(&self, dir: &Path) -> Result<(), StoreError> {
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Io(e.to_string()))?;
        std::fs::write(&tmp, text)
            .map_err(|e| StoreError::Io(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, dir.join(META_FILE))
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))
    }
}

/// The index fields, resolved once.
#[derive(Clone, Debug)]
pub struct Fields {
    /// The schema they belong to.
    pub schema: Schema,
    /// `timestamp`.
    pub timestamp: Field,
    /// `message`.
    pub message: Field,
    /// `fields`.
    pub fields: Field,
    /// `text`.
    pub text: Field,
    /// `_id`.
    pub id: Field,
    /// `columns`: absent in an index of layout 1, where `fields` is fast.
    pub columns: Option<Field>,
}

/// Names of the index fields; any other name in a query is an event field.
pub const INDEX_FIELDS: [&str; 6] = ["timestamp", "message", "fields", "text", "_id", "columns"];

/// The schema of every store index.
pub fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_date_field(
        "timestamp",
        DateOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored()
            .set_precision(DateTimePrecision::Nanoseconds),
    );
    b.add_text_field("message", TEXT | STORED);
    let keyword = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic);
    b.add_json_field(
        "fields",
        JsonObjectOptions::default()
            .set_indexing_options(keyword)
            .set_stored(),
    );
    b.add_json_field(
        "columns",
        JsonObjectOptions::default().set_fast(Some("raw")),
    );
    let text = TextFieldIndexing::default()
        .set_tokenizer("default")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    b.add_json_field(
        "text",
        JsonObjectOptions::default().set_indexing_options(text),
    );
    b.add_u64_field("_id", NumericOptions::default().set_indexed());
    b.build()
}

impl Fields {
    /// Resolves the index fields of `schema`.
    pub fn resolve(schema: &Schema) -> Result<Fields, StoreError> {
        let get = |name: &str| {
            schema.get_field(name).map_err(|_| {
                StoreError::Open(format!(
                    "the index has no `{name}` field: not a store index"
                ))
            })
        };
        Ok(Fields {
            schema: schema.clone(),
            timestamp: get("timestamp")?,
            message: get("message")?,
            fields: get("fields")?,
            text: get("text")?,
            id: get("_id")?,
            columns: schema.get_field("columns").ok(),
        })
    }
}

/// A tantivy date from an event timestamp (nanoseconds since the epoch).
pub fn date(ns: i64) -> DateTime {
    DateTime::from_timestamp_nanos(ns)
}

/// Converts a field value to an indexable JSON value.
fn owned(v: &Value) -> OwnedValue {
    match v {
        Value::Null => OwnedValue::Null,
        Value::Bool(b) => OwnedValue::Bool(*b),
        Value::Integer(i) => OwnedValue::I64(*i),
        Value::Float(f) => OwnedValue::F64(*f),
        Value::String(s) => OwnedValue::Str(String::from_utf8_lossy(s).into_owned()),
        Value::Timestamp(t) => OwnedValue::Date(date(t.0)),
        Value::Array(a) => OwnedValue::Array(a.iter().map(owned).collect()),
        Value::Map(m) => {
            OwnedValue::Object(m.iter().map(|(k, v)| (k.to_string(), owned(v))).collect())
        }
    }
}

/// The part of `v` that gets a fast column: numbers, booleans and dates
/// (also inside maps and arrays), strings too when `strings`.
fn column(v: &Value, strings: bool) -> Option<OwnedValue> {
    match v {
        Value::Null => None,
        Value::String(_) if !strings => None,
        Value::Array(a) => {
            let a: Vec<_> = a.iter().filter_map(|v| column(v, strings)).collect();
            (!a.is_empty()).then_some(OwnedValue::Array(a))
        }
        Value::Map(m) => {
            let m: Vec<_> = m
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), column(v, strings)?)))
                .collect();
            (!m.is_empty()).then_some(OwnedValue::Object(m))
        }
        v => Some(owned(v)),
    }
}

/// What a write puts in a document besides the event.
#[derive(Clone, Copy, Debug)]
pub struct DocOptions<'a> {
    /// Fields also indexed as full text.
    pub text_fields: &'a [String],
    /// String fields that get a fast column too.
    pub fast_fields: &'a [String],
}

/// Builds the document of `event`; `id` is its identity when the sink
/// deduplicates.
pub fn document(
    f: &Fields,
    event: &Event,
    opts: DocOptions<'_>,
    id: Option<u64>,
) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_date(f.timestamp, date(event.timestamp.0));
    doc.add_text(f.message, String::from_utf8_lossy(&event.body));
    if !event.fields.is_empty() {
        let obj: Vec<(String, OwnedValue)> = event
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), owned(v)))
            .collect();
        doc.add_field_value(f.fields, &OwnedValue::Object(obj));
        if let Some(columns) = f.columns {
            let obj: Vec<(String, OwnedValue)> = event
                .fields
                .iter()
                .filter_map(|(k, v)| {
                    let strings = opts.fast_fields.iter().any(|n| n == k);
                    Some((k.to_string(), column(v, strings)?))
                })
                .collect();
            if !obj.is_empty() {
                doc.add_field_value(columns, &OwnedValue::Object(obj));
            }
        }
    }
    let text_fields = opts.text_fields;
    if !text_fields.is_empty() {
        let obj: Vec<(String, OwnedValue)> = text_fields
            .iter()
            .filter_map(|name| {
                let v = event.fields.get(name)?;
                Some((name.clone(), OwnedValue::Str(v.to_text().into_owned())))
            })
            .collect();
        if !obj.is_empty() {
            doc.add_field_value(f.text, &OwnedValue::Object(obj));
        }
    }
    if let Some(id) = id {
        doc.add_u64(f.id, id);
    }
    doc
}

/// A stable 64-bit FNV-1a hash, fed field by field with separators so that
/// `("ab","c")` and `("a","bc")` differ.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Feeds one value, its type and a separator.
    pub fn value(&mut self, v: Option<&Value>, scratch: &mut String) {
        match v {
            None => self.write(&[0]),
            Some(v) => {
                self.write(v.kind().as_bytes());
                scratch.clear();
                v.write_text(scratch);
                self.write(scratch.as_bytes());
                self.write(&[0xff]);
            }
        }
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The identity of `event` under `dedupe_by`: the names `timestamp` and
/// `message` stand for the event's timestamp and body, others for fields.
pub fn identity(event: &Event, dedupe_by: &[String], scratch: &mut String) -> u64 {
    let mut h = Fnv::default();
    for name in dedupe_by {
        match name.as_str() {
            "timestamp" => h.write(&event.timestamp.0.to_le_bytes()),
            "message" => {
                h.write(&(event.body.len() as u64).to_le_bytes());
                h.write(&event.body);
            }
            _ => h.value(event.fields.get(name), scratch),
        }
        h.write(&[0xfe]);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::Timestamp;

    #[test]
    fn identity_depends_on_the_named_parts_only() {
        let mut s = String::new();
        let mut a = Event::new("x", Timestamp(1));
        a.insert("file", "/a");
        a.insert("line", 1i64);
        let mut b = a.clone();
        b.timestamp = Timestamp(2);
        let by = vec!["file".to_string(), "line".to_string()];
        assert_eq!(identity(&a, &by, &mut s), identity(&b, &by, &mut s));
        b.insert("line", 2i64);
        assert_ne!(identity(&a, &by, &mut s), identity(&b, &by, &mut s));
        // A string "1" is not the integer 1.
        b.insert("line", "1");
        assert_ne!(identity(&a, &by, &mut s), identity(&b, &by, &mut s));
        let t = vec!["timestamp".to_string(), "message".to_string()];
        assert_ne!(identity(&a, &t, &mut s), identity(&b, &t, &mut s));
    }
}
