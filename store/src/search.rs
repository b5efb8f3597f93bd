//! Searching a store: the query language, newest-first hits and counts per
//! time bucket.
//!
//! [`StoreReader::open`] opens an index read-only (while a sink may be
//! writing it) and [`StoreReader::search`] runs one query; [`search`] does
//! both at once. The query language is tantivy's (`docs/store.md` has the
//! whole of it); the only change is that field names are the events' own:
//! `status:404` means the event field `status`, `message:"GET /a"` the body,
//! `timestamp:[A TO B]` the time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sluice_core::event::Timestamp;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{Query, QueryParser};
use tantivy::query_grammar::{Occur, UserInputAst, UserInputBound, UserInputLeaf};
use tantivy::schema::{OwnedValue, Value as _};
use tantivy::{
    DateTime, DocAddress, DocId, Index, IndexReader, Order, ReloadPolicy, Score, Searcher,
    SegmentOrdinal, SegmentReader, TantivyDocument,
};

use crate::schema::{Fields, StoreMeta, INDEX_FIELDS};
use crate::StoreError;

/// What to search for besides the query.
#[derive(Clone, Debug, Default)]
pub struct SearchOptions {
    /// Only events at or after this time.
    pub from: Option<Timestamp>,
    /// Only events before this time.
    pub to: Option<Timestamp>,
    /// How many events to return at most (newest first); 0 returns only
    /// the total.
    pub limit: usize,
    /// Count the matches per bucket of this length instead of returning
    /// events.
    pub count_by: Option<std::time::Duration>,
    /// Return the oldest matches first instead of the newest.
    pub oldest_first: bool,
    /// Skip this many matches (in the order asked for) before the first
    /// returned; `offset + limit` is at most [`MAX_WINDOW`].
    pub offset: usize,
}

/// The furthest match a search may reach: `offset + limit` at most.
pub const MAX_WINDOW: usize = 10_000;

/// A search option given as text that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{option}: {message}")]
pub struct OptionError {
    /// `from`, `to` or `count_by`.
    pub option: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SearchOptions {
    /// The options as `sluice search` and the API's `GET /search` take
    /// them, as text: times as [`parse_time`] reads them (relative to
    /// `now`), `count_by` a duration longer than 0 (`1m`, `30s`).
    ///
    /// # Errors
    ///
    /// The first option that does not parse.
    pub fn from_text(
        from: Option<&str>,
        to: Option<&str>,
        count_by: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<SearchOptions, OptionError> {
        let fail = |option, message| OptionError { option, message };
        let time = |s: Option<&str>, option| {
            s.map(|s| parse_time(s, now).map_err(|e| fail(option, e)))
                .transpose()
        };
        let count_by = count_by
            .map(|s| match sluice_core::config::Duration::parse(s) {
                Ok(d) if !d.get().is_zero() => Ok(d.get()),
                Ok(_) => Err(fail(
                    "count_by",
                    "must be longer than 0, such as `1m`".into(),
                )),
                Err(e) => Err(fail("count_by", e.to_string())),
            })
            .transpose()?;
        Ok(SearchOptions {
            from: time(from, "from")?,
            to: time(to, "to")?,
            limit,
            count_by,
            oldest_first: false,
            offset: 0,
        })
    }
}

/// One matching event, as the `file` sink's `json` format writes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Hit {
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// The body.
    pub message: String,
    /// The event's fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// The matches in one time bucket.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the bucket, RFC 3339, UTC.
    pub start: String,
    /// Number of matching events in `[start, start + interval)`.
    pub count: u64,
}

/// The answer to a search.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SearchResult {
    /// How many events match (all of them, not only those returned).
    pub total: u64,
    /// The newest matches, newest first (oldest first with
    /// `oldest_first`; empty with `count_by`).
    pub hits: Vec<Hit>,
    /// Matches per time bucket, oldest first (only with `count_by`; empty
    /// buckets are left out).
    pub buckets: Vec<Bucket>,
}

/// An index opened for searching.
pub struct StoreReader {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    meta: StoreMeta,
}

impl StoreReader {
    /// Opens the store at `path` (the `path` of a `store` sink).
    ///
    /// # Errors
    ///
    /// When `path` holds no store index.
    pub fn open(path: &Path) -> Result<StoreReader, StoreError> {
        let meta = StoreMeta::load(path)?;
        let index = Index::open_in_dir(path)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        let fields = Fields::resolve(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        Ok(StoreReader {
            index,
            reader,
            fields,
            meta,
        })
    }

    /// Parses `query` for this store.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] with what is wrong.
    pub fn parse(&self, query: &str, opts: &SearchOptions) -> Result<Box<dyn Query>, StoreError> {
        let query = query.trim();
        let ast = if query.is_empty() || query == "*" {
            UserInputAst::Leaf(Box::new(UserInputLeaf::All))
        } else {
            tantivy::query_grammar::parse_query(query)
                .map_err(|_| StoreError::Query(format!("cannot parse `{query}`")))?
        };
        let mut ast = self.rename(ast);
        if opts.from.is_some() || opts.to.is_some() {
            let bound = |t: Option<Timestamp>, inclusive: bool| match t {
                None => UserInputBound::Unbounded,
                Some(t) if inclusive => UserInputBound::Inclusive(rfc3339(t.0)),
                Some(t) => UserInputBound::Exclusive(rfc3339(t.0)),
            };
            let range = UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
                field: Some("timestamp".to_string()),
                lower: bound(opts.from, true),
                upper: bound(opts.to, false),
            }));
            ast = UserInputAst::and(vec![ast, range]);
        }
        let mut parser = QueryParser::for_index(&self.index, vec![self.fields.message]);
        parser.set_conjunction_by_default();
        parser
            .build_query_from_user_input_ast(ast)
            .map_err(|e| StoreError::Query(e.to_string()))
    }

    /// Maps event field names to the index's (`status` to `fields.status`).
    fn rename(&self, ast: UserInputAst) -> UserInputAst {
        match ast {
            UserInputAst::Clause(clauses) => {
                let mut clauses: Vec<_> = clauses
                    .into_iter()
                    .map(|(occur, a)| (occur, self.rename(a)))
                    .collect();
                // `a AND NOT b` nests `-b` alone in a clause, which would
                // match nothing: a clause of exclusions excludes from all.
                if !clauses.is_empty() && clauses.iter().all(|(o, _)| *o == Some(Occur::MustNot)) {
                    clauses.push((
                        Some(Occur::Must),
                        UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
                    ));
                }
                UserInputAst::Clause(clauses)
            }
            UserInputAst::Boost(a, b) => UserInputAst::Boost(Box::new(self.rename(*a)), b),
            UserInputAst::Leaf(leaf) => UserInputAst::Leaf(Box::new(match *leaf {
                UserInputLeaf::Literal(mut l) => {
                    l.field_name = l.field_name.map(|f| self.field_name(f));
                    UserInputLeaf::Literal(l)
                }
                UserInputLeaf::Range {
                    field,
                    lower,
                    upper,
                } => UserInputLeaf::Range {
                    field: field.map(|f| self.column_name(f)),
                    lower,
                    upper,
                },
                UserInputLeaf::Set { field, elements } => UserInputLeaf::Set {
                    field: field.map(|f| self.field_name(f)),
                    elements,
                },
                UserInputLeaf::Exists { field } => UserInputLeaf::Exists {
                    field: self.field_name(field),
                },
                UserInputLeaf::All => UserInputLeaf::All,
            })),
        }
    }

    /// Maps a field name where a fast column answers (ranges):
    /// `status` to `columns.status`, or to `fields.status` in an index of
    /// layout 1.
    fn column_name(&self, name: String) -> String {
        if self.fields.columns.is_none() {
            return self.field_name(name);
        }
        if let Some(rest) = name.strip_prefix("fields.") {
            return format!("columns.{rest}");
        }
        let top = name.split('.').next().unwrap_or_default();
        if INDEX_FIELDS.contains(&top) {
            name
        } else {
            format!("columns.{name}")
        }
    }

    fn field_name(&self, name: String) -> String {
        let top = name.split('.').next().unwrap_or_default();
        if INDEX_FIELDS.contains(&top) {
            name
        } else if self.meta.text_fields.contains(&name) {
            format!("text.{name}")
        } else {
            format!("fields.{name}")
        }
    }

    /// Runs `query`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] for a bad query, [`StoreError::Io`] when the
    /// index cannot be read.
    pub fn search(&self, query: &str, opts: &SearchOptions) -> Result<SearchResult, StoreError> {
        let q = self.parse(query, opts)?;
        self.reader.reload().map_err(io)?;
        let searcher = self.reader.searcher();
        if let Some(interval) = opts.count_by {
            let width = i64::try_from(interval.as_nanos())
                .unwrap_or(i64::MAX)
                .max(1);
            let counts = bucket_counts(&searcher, q.as_ref(), width, 0).map_err(io)?;
            let total = counts.values().sum();
            let buckets = counts
                .into_iter()
                .map(|(start, count)| Bucket {
                    start: rfc3339(start),
                    count,
                })
                .collect();
            return Ok(SearchResult {
                total,
                hits: Vec::new(),
                buckets,
            });
        }
        if opts.limit == 0 {
            let total = searcher.search(q.as_ref(), &Count).map_err(io)?;
            return Ok(SearchResult {
                total: total as u64,
                hits: Vec::new(),
                buckets: Vec::new(),
            });
        }
        let order = if opts.oldest_first {
            Order::Asc
        } else {
            Order::Desc
        };
        let top = TopDocs::with_limit(opts.limit)
            .and_offset(opts.offset.min(MAX_WINDOW))
            .order_by_fast_field::<DateTime>("timestamp", order);
        let (top, total) = searcher.search(q.as_ref(), &(top, Count)).map_err(io)?;
        let mut hits = Vec::with_capacity(top.len());
        for (_, addr) in top {
            hits.push(self.hit(&searcher, addr)?);
        }
        Ok(SearchResult {
            total: total as u64,
            hits,
            buckets: Vec::new(),
        })
    }

    fn hit(&self, searcher: &Searcher, addr: DocAddress) -> Result<Hit, StoreError> {
        let doc: TantivyDocument = searcher.doc(addr).map_err(io)?;
        let timestamp = doc
            .get_first(self.fields.timestamp)
            .and_then(|v| v.as_datetime())
            .map(|d| rfc3339(d.into_timestamp_nanos()))
            .unwrap_or_default();
        let message = doc
            .get_first(self.fields.message)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let fields = match doc.get_first(self.fields.fields).map(OwnedValue::from) {
            Some(OwnedValue::Object(o)) => o.into_iter().map(|(k, v)| (k, json(v))).collect(),
            _ => serde_json::Map::new(),
        };
        Ok(Hit {
            timestamp,
            message,
            fields,
        })
    }
}

/// Opens the store at `path` and runs one query (see [`StoreReader`]).
///
/// # Errors
///
/// As [`StoreReader::open`] and [`StoreReader::search`].
pub fn search(path: &Path, query: &str, opts: &SearchOptions) -> Result<SearchResult, StoreError> {
    StoreReader::open(path)?.search(query, opts)
}

fn io(e: tantivy::TantivyError) -> StoreError {
    StoreError::Io(e.to_string())
}

/// RFC 3339 with nanoseconds when there are any.
fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A stored JSON value as `serde_json`.
fn json(v: OwnedValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        OwnedValue::Null => J::Null,
        OwnedValue::Str(s) => J::String(s),
        OwnedValue::U64(n) => J::from(n),
        OwnedValue::I64(n) => J::from(n),
        OwnedValue::F64(f) => J::from(f),
        OwnedValue::Bool(b) => J::Bool(b),
        OwnedValue::Date(d) => J::String(rfc3339(d.into_timestamp_nanos())),
        OwnedValue::Array(a) => J::Array(a.into_iter().map(json).collect()),
        OwnedValue::Object(o) => J::Object(o.into_iter().map(|(k, v)| (k, json(v))).collect()),
        other => J::String(format!("{other:?}")),
    }
}

/// Counts the matches of `query` per bucket of `width` nanoseconds, buckets
/// aligned on `origin`. Keys are bucket starts (nanoseconds since the epoch).
pub(crate) fn bucket_counts(
    searcher: &Searcher,
    query: &dyn Query,
    width: i64,
    origin: i64,
) -> tantivy::Result<BTreeMap<i64, u64>> {
    searcher.search(query, &Buckets { width, origin })
}

/// Collects bucket counts from the `timestamp` fast field.
struct Buckets {
    width: i64,
    origin: i64,
}

struct SegmentBuckets {
    column: Column<DateTime>,
    width: i64,
    origin: i64,
    counts: BTreeMap<i64, u64>,
}

impl Collector for Buckets {
    type Fruit = BTreeMap<i64, u64>;
    type Child = SegmentBuckets;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentBuckets> {
        Ok(SegmentBuckets {
            column: reader.fast_fields().date("timestamp")?,
            width: self.width,
            origin: self.origin,
            counts: BTreeMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<BTreeMap<i64, u64>>) -> tantivy::Result<Self::Fruit> {
        let mut all = BTreeMap::new();
        for f in fruits {
            for (k, v) in f {
                *all.entry(k).or_insert(0) += v;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for SegmentBuckets {
    type Fruit = BTreeMap<i64, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(t) = self.column.first(doc) {
            let start = bucket_start(t.into_timestamp_nanos(), self.origin, self.width);
            *self.counts.entry(start).or_insert(0) += 1;
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.counts
    }
}

/// The start of the bucket of `width` nanoseconds, aligned on `origin`,
/// that holds `ns`. Worked out in 128 bits: near the ends of the time range
/// 64-bit arithmetic overflows (an event at the earliest time landed in
/// the year 2262). A bucket that would start before the earliest time a
/// timestamp can hold (1677-09-21) starts at that time.
pub(crate) fn bucket_start(ns: i64, origin: i64, width: i64) -> i64 {
    let (ns, origin, width) = (i128::from(ns), i128::from(origin), i128::from(width.max(1)));
    let start = origin + (ns - origin).div_euclid(width) * width;
    // `start <= ns`, so only the low end can be out of range.
    i64::try_from(start).unwrap_or(i64::MIN)
}

/// Parses a time bound as `--from`/`--to` take it: RFC 3339
/// (`2026-11-26T05:00:00Z`), a date (`2026-11-26`, midnight UTC), `now`, or
/// a duration (`15m`, `2h`, `7d`) meaning that long before `now`.
///
/// # Errors
///
/// What is wrong with `s`.
pub fn parse_time(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Timestamp::from_datetime(&t));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(Timestamp::from_datetime(&t.and_utc()));
        }
    }
    if let Ok(d) = sluice_core::config::Duration::parse(s) {
        let ns = i64::try_from(d.get().as_nanos()).unwrap_or(i64::MAX);
        return Ok(Timestamp(now.0.saturating_sub(ns)));
    }
    Err(format!(
        "`{s}` is not a time: use RFC 3339 (2026-11-26T05:00:00Z), a date (2026-11-26), `now` or a duration ago (15m)"
    ))
}
