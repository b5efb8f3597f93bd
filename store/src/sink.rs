//! The `store` sink: writes batches into a tantivy index, committing it
//! every `commit_interval` or `commit_events`.
//!
//! # How a batch is written
//!
//! On a blocking thread, each event becomes one document ([`document`]); with
//! `dedupe_by` set, a delete of the event's identity goes first, in the same
//! commit, so an event delivered again replaces itself instead of appearing
//! twice. The documents wait in the indexer until the next commit, which
//! writes the new segment and syncs it and `meta.json` to disk. The sink
//! acknowledges later (`Sink::acknowledges_later`): the runtime commits a
//! batch's take from the channel only once the index commit that covers it
//! is made, so nothing leaves the channel before it is durably searchable.
//! A failure rolls every uncommitted document back; the runtime takes
//! their batches again and writes them anew.
//!
//! # Crashes
//!
//! A tantivy commit is atomic: after `kill -9` the index reopens at its last
//! commit, with every event committed before searchable and nothing half
//! written. Events the source re-delivers after the crash are stored again,
//! unless `dedupe_by` names what identifies an event: then they replace
//! their earlier copy and each event is found exactly once.
//!
//! # Retention
//!
//! At most once per `retention_interval`, after a commit: events older than
//! `max_age` are deleted, and when the live part of the index is larger than
//! `max_bytes`, the oldest events are deleted until it fits in 90% of it.
//! Deleted events disappear from searches at once; their space is reclaimed
//! when tantivy merges or drops their segments.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use tantivy::directory::MmapDirectory;
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::schema::{
    date, document, identity, schema, DocOptions, Fields, StoreMeta, INDEX_FIELDS,
};
use crate::search::bucket_counts;
use crate::StoreError;

/// The `store` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The index directory (created when missing). Relative paths are
    /// relative to the agent's working directory. `sluice search PATH` reads it.
    pub path: PathBuf,
    /// Fields that are also indexed as full text (words, phrases), besides
    /// the exact keyword every string field gets.
    #[serde(default)]
    pub text_fields: Vec<String>,
    /// String fields that also get a fast column, for ranges over strings
    /// (`user:[a TO m]`). Numbers, booleans and dates always get one.
    #[serde(default)]
    pub fast_fields: Vec<String>,
    /// What identifies an event: field names, or `timestamp` and `message`
    /// for the event's own. When set, an event written again (re-delivered
    /// after a crash) replaces its earlier copy. Empty: every write adds.
    #[serde(default)]
    pub dedupe_by: Vec<String>,
    /// Delete events older than this (by their timestamp).
    #[serde(default)]
    pub max_age: Option<Duration>,
    /// Keep the live events of the index under this size, deleting the
    /// oldest first.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// How often retention runs.
    #[serde(default = "default_retention_interval")]
    pub retention_interval: Duration,
    /// Memory the indexer buffers documents in before it writes a segment.
    #[serde(default = "default_writer_memory")]
    pub writer_memory: ByteSize,
    /// Longest time written events wait for the index commit that makes
    /// them durable and searchable (and lets the channel forget them).
    #[serde(default = "default_commit_interval")]
    pub commit_interval: Duration,
    /// Commit sooner once this many events wait.
    #[serde(default = "default_commit_events")]
    pub commit_events: u64,
}

fn default_commit_interval() -> Duration {
    Duration(std::time::Duration::from_secs(1))
}

fn default_commit_events() -> u64 {
    100_000
}

fn default_retention_interval() -> Duration {
    Duration(std::time::Duration::from_secs(60))
}

fn default_writer_memory() -> ByteSize {
    ByteSize(64 << 20)
}

/// The least memory tantivy accepts for one indexing thread.
const MIN_WRITER_MEMORY: u64 = 15 << 20;

impl SinkConfig for Config {
    /// The index directory: its writer lock admits one writer, so a reload
    /// stops the old sink before the new one opens it.
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        vec![Resource::path(&self.path)]
    }
    /// `search`: the index searched as `sluice search` does.
    fn routes(&self) -> sluice_core::route::Routes {
        vec![(
            "search",
            Arc::new(crate::route::SearchRoute {
                path: self.path.clone(),
            }),
        )]
    }
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push(Problem::at("path", "the path is empty: name a directory"));
        }
        for name in &self.text_fields {
            // A field called `message` (the syslog source's free text) may
            // be one: it is indexed as `text.message`, apart from the
            // event's message. The other index names cannot.
            let reserved = INDEX_FIELDS.contains(&name.as_str()) && name != "message";
            if reserved || name.contains('.') || name.is_empty() {
                problems.push(Problem::at(
                    "text_fields",
                    format!("`{name}` cannot be a text field: name a top-level event field other than `timestamp`, `fields`, `text` and `_id`"),
                ));
            }
        }
        for name in &self.fast_fields {
            if INDEX_FIELDS.contains(&name.as_str()) || name.contains('.') || name.is_empty() {
                problems.push(Problem::at(
                    "fast_fields",
                    format!("`{name}` cannot be a fast field: name a top-level event field other than `timestamp`, `message`, `fields`, `text`, `columns` and `_id`"),
                ));
            }
        }
        problems.extend(
            self.retention_interval
                .zero_problem("retention_interval", "1m"),
        );
        if self.max_age.is_some_and(|a| a.get().is_zero()) {
            problems.push(Problem::at(
                "max_age",
                "must be longer than 0, such as `7d`",
            ));
        }
        if self.max_bytes.is_some_and(|b| b.0 == 0) {
            problems.push(Problem::at(
                "max_bytes",
                "must be more than 0, such as `10GiB`",
            ));
        }
        problems.extend(self.commit_interval.zero_problem("commit_interval", "1s"));
        if self.commit_events == 0 {
            problems.push(Problem::at("commit_events", "must be more than 0"));
        }
        if self.writer_memory.0 < MIN_WRITER_MEMORY {
            problems.push(Problem::at(
                "writer_memory",
                "must be at least 15MiB (the indexer's minimum)",
            ));
        }
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let meta = StoreMeta {
            version: StoreMeta::VERSION,
            text_fields: self.text_fields.clone(),
        };
        let state = State::open(&self.path, &meta, self.writer_memory.0)
            .map_err(|e| BuildError::Other(format!("store `{}`: {e}", self.path.display())))?;
        Ok(Box::new(StoreSink {
            id: cx.id.clone(),
            state: Some(Box::new(state)),
            settings: Arc::new(Settings {
                text_fields: self.text_fields.clone(),
                fast_fields: self.fast_fields.clone(),
                dedupe_by: self.dedupe_by.clone(),
                max_age: self.max_age.map(|d| d.get()),
                max_bytes: self.max_bytes.map(|b| b.0),
                retention_interval: self.retention_interval.get(),
                commit_interval: self.commit_interval.get(),
                commit_events: self.commit_events,
            }),
            written: 0,
            durable: 0,
        }))
    }
}

/// The options a write needs, apart from the index.
#[derive(Debug)]
struct Settings {
    text_fields: Vec<String>,
    fast_fields: Vec<String>,
    dedupe_by: Vec<String>,
    max_age: Option<std::time::Duration>,
    max_bytes: Option<u64>,
    retention_interval: std::time::Duration,
    commit_interval: std::time::Duration,
    commit_events: u64,
}

/// The open index: moved onto a blocking thread for each write and back.
struct State {
    /// Where the index lives (for its size).
    path: PathBuf,
    index: Index,
    writer: IndexWriter<TantivyDocument>,
    fields: Fields,
    /// Opened on first use by retention.
    reader: Option<IndexReader>,
    /// When retention last ran.
    last_retention: Instant,
    /// Reused for identities.
    scratch: String,
    /// Documents added since the last commit.
    uncommitted: u64,
    /// When the last commit was made (or the index opened).
    last_commit: Instant,
}

impl State {
    /// Opens the index at `path`, creating it when missing.
    fn open(path: &Path, meta: &StoreMeta, memory: u64) -> Result<State, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Io(e.to_string()))?;
        let dir = MmapDirectory::open(path).map_err(|e| StoreError::Open(e.to_string()))?;
        // An existing index keeps its own layout (see `schema`).
        let exists = Index::exists(&dir).map_err(|e| StoreError::Open(e.to_string()))?;
        let index = if exists {
            Index::open(dir)
        } else {
            Index::create(dir, schema(), tantivy::IndexSettings::default())
        }
        .map_err(|e| {
            StoreError::Open(format!(
                "{e} (was this directory written by another program?)"
            ))
        })?;
        let fields = Fields::resolve(&index.schema())?;
        let layout = if fields.columns.is_some() {
            StoreMeta::VERSION
        } else {
            1
        };
        StoreMeta {
            version: layout,
            ..meta.clone()
        }
        .save(path)?;
        let writer = index
            .writer_with_num_threads(1, memory as usize)
            .map_err(|e| StoreError::Open(format!("cannot open the index for writing: {e}")))?;
        Ok(State {
            path: path.to_path_buf(),
            index,
            writer,
            fields,
            reader: None,
            last_retention: Instant::now(),
            scratch: String::new(),
            uncommitted: 0,
            last_commit: Instant::now(),
        })
    }

    /// Turns a batch into documents, each with its identity when the sink
    /// deduplicates.
    fn documents(&mut self, batch: &Batch, s: &Settings) -> Vec<(Option<u64>, TantivyDocument)> {
        let mut docs = Vec::with_capacity(batch.len());
        let opts = DocOptions {
            text_fields: &s.text_fields,
            fast_fields: &s.fast_fields,
        };
        for event in &batch.events {
            let id =
                (!s.dedupe_by.is_empty()).then(|| identity(event, &s.dedupe_by, &mut self.scratch));
            docs.push((id, document(&self.fields, event, opts, id)));
        }
        docs
    }

    /// Adds the documents of one batch, and commits when `commit` or when
    /// the settings say it is time. Returns whether it committed. After an
    /// error nothing uncommitted stays pending: it is rolled back.
    fn write(
        &mut self,
        docs: Vec<(Option<u64>, TantivyDocument)>,
        s: &Settings,
        commit: bool,
    ) -> tantivy::Result<bool> {
        let result = self.add(docs).and_then(|()| {
            let due = commit
                || self.uncommitted >= s.commit_events
                || self.last_commit.elapsed() >= s.commit_interval;
            if due && self.uncommitted > 0 {
                self.writer.commit()?;
                self.uncommitted = 0;
                self.last_commit = Instant::now();
            }
            Ok(due)
        });
        if result.is_err() {
            let _ = self.writer.rollback();
            self.uncommitted = 0;
        }
        result
    }

    fn add(&mut self, docs: Vec<(Option<u64>, TantivyDocument)>) -> tantivy::Result<()> {
        for (id, doc) in docs {
            if let Some(id) = id {
                // Deletes apply to documents added before them, so a copy
                // written earlier (in this commit or any before) goes.
                self.writer
                    .delete_term(Term::from_field_u64(self.fields.id, id));
            }
            self.writer.add_document(doc)?;
            self.uncommitted += 1;
        }
        Ok(())
    }

    /// Runs retention when it is due. Returns how many events it deleted.
    fn retention(&mut self, s: &Settings) -> tantivy::Result<u64> {
        if s.max_age.is_none() && s.max_bytes.is_none() {
            return Ok(0);
        }
        if self.last_retention.elapsed() < s.retention_interval {
            return Ok(0);
        }
        self.last_retention = Instant::now();
        let reader = match &self.reader {
            Some(r) => r,
            None => self.reader.insert(
                self.index
                    .reader_builder()
                    .reload_policy(ReloadPolicy::Manual)
                    .try_into()?,
            ),
        };
        reader.reload()?;
        let searcher = reader.searcher();
        let mut cutoff: Option<i64> = None;
        if let Some(age) = s.max_age {
            let now = Timestamp::now().0;
            cutoff = Some(now.saturating_sub(age.as_nanos().min(i64::MAX as u128) as i64));
        }
        if let Some(max) = s.max_bytes {
            let live_docs = searcher.num_docs();
            let all_docs: u64 = searcher
                .segment_readers()
                .iter()
                .map(|r| u64::from(r.max_doc()))
                .sum();
            let bytes = dir_size(&self.path);
            // Space held by deleted events is reclaimed later: count only
            // the live share.
            let live_bytes = if all_docs == 0 {
                0
            } else {
                (bytes as u128 * live_docs as u128 / all_docs as u128) as u64
            };
            if live_bytes > max && live_docs > 0 {
                let target = max / 10 * 9;
                let excess = live_bytes - target;
                let drop = (live_docs as u128 * excess as u128).div_ceil(live_bytes as u128) as u64;
                if let Some(t) = oldest_cutoff(&searcher, drop)? {
                    cutoff = Some(cutoff.map_or(t, |c| c.max(t)));
                }
            }
        }
        let Some(cutoff) = cutoff else {
            return Ok(0);
        };
        let before = searcher.num_docs();
        let query = RangeQuery::new(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(Term::from_field_date(self.fields.timestamp, date(cutoff))),
        );
        self.writer.delete_query(Box::new(query))?;
        self.writer.commit()?;
        reader.reload()?;
        Ok(before.saturating_sub(reader.searcher().num_docs()))
    }
}

/// The timestamp before which about `n` of the oldest events lie, from a
/// histogram of the timestamps (1,000 buckets between the oldest and the
/// newest).
fn oldest_cutoff(searcher: &tantivy::Searcher, n: u64) -> tantivy::Result<Option<i64>> {
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for r in searcher.segment_readers() {
        let col = r.fast_fields().date("timestamp")?;
        if r.num_docs() == 0 {
            continue;
        }
        lo = lo.min(col.min_value().into_timestamp_nanos());
        hi = hi.max(col.max_value().into_timestamp_nanos());
    }
    if lo > hi {
        return Ok(None);
    }
    // In 128 bits: the span from the earliest to the latest time does not fit in 64.
    let width = i64::try_from((i128::from(hi) - i128::from(lo)) / 1000)
        .unwrap_or(i64::MAX)
        .max(1);
    let buckets = bucket_counts(searcher, &tantivy::query::AllQuery, width, lo)?;
    let mut seen = 0u64;
    for (start, count) in buckets {
        seen += count;
        if seen >= n {
            return Ok(Some(start.saturating_add(width)));
        }
    }
    Ok(Some(hi.saturating_add(1)))
}

/// Total size of the files directly in `dir` (the index keeps no subdirectories).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The `store` sink (see the [module docs](self)).
pub struct StoreSink {
    /// The component id, for logs.
    id: String,
    /// The index; `None` only while a write is in flight, or after the
    /// blocking task panicked (then the sink stops).
    state: Option<Box<State>>,
    /// Shared with the blocking thread of each write.
    settings: Arc<Settings>,
    /// Batches written with `Ok`, and how many of them the index has
    /// committed (see `Sink::durable`).
    written: u64,
    durable: u64,
}

impl StoreSink {
    /// Adds `docs` (maybe none) on a blocking thread, committing when
    /// `commit` or when due; runs retention after a commit.
    async fn apply(
        &mut self,
        docs: Option<Vec<(Option<u64>, TantivyDocument)>>,
        commit: bool,
    ) -> Result<(), SinkError> {
        let Some(mut state) = self.state.take() else {
            return Err(SinkError::Fatal(format!(
                "store sink `{}`: the index was lost after a failed write",
                self.id
            )));
        };
        let settings = Arc::clone(&self.settings);
        let wrote = docs.is_some();
        let joined = tokio::task::spawn_blocking(move || {
            let result = state.write(docs.unwrap_or_default(), &settings, commit);
            let retention = match &result {
                Ok(true) => state.retention(&settings),
                _ => Ok(0),
            };
            (state, result, retention)
        })
        .await;
        let (state, result, retention) = joined.map_err(|e| {
            SinkError::Fatal(format!("store sink `{}`: the writer failed: {e}", self.id))
        })?;
        self.state = Some(state);
        match retention {
            Ok(0) => {}
            Ok(n) => tracing::info!(id = %self.id, deleted = n, "retention deleted old events"),
            Err(e) => tracing::warn!(id = %self.id, "retention failed: {e}"),
        }
        match result {
            Ok(committed) => {
                if wrote {
                    self.written += 1;
                }
                if committed {
                    self.durable = self.written;
                }
                Ok(())
            }
            Err(e) => {
                // The uncommitted batches are gone with the rollback.
                self.written = self.durable;
                Err(SinkError::Retry(format!("store sink `{}`: {e}", self.id)))
            }
        }
    }
}

#[async_trait]
impl Sink for StoreSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let Some(state) = self.state.as_mut() else {
            return Err(SinkError::Fatal(format!(
                "store sink `{}`: the index was lost after a failed write",
                self.id
            )));
        };
        // Documents are built here, from the borrowed batch; the blocking
        // thread only adds and commits them.
        let docs = state.documents(batch, &self.settings);
        self.apply(Some(docs), false).await
    }

    /// Events are acknowledged once the index commit that covers them is
    /// made: every `commit_interval`, or after `commit_events`.
    fn acknowledges_later(&self) -> bool {
        true
    }

    fn durable(&self) -> u64 {
        self.durable
    }

    async fn sync(&mut self) -> Result<(), SinkError> {
        if self.durable == self.written {
            return Ok(());
        }
        self.apply(None, true).await
    }

    fn sync_interval(&self) -> std::time::Duration {
        self.settings.commit_interval
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // The runtime synced what was written; dropping the writer
        // releases the index lock.
        self.sync().await?;
        self.state = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::event::Fields as EventFields;

    /// Events with what an index could choke on: tantivy takes them all
    /// (tokens over 65,530 bytes are left out of the index, the event is
    /// still stored), so the store sink has no event to reject and a batch
    /// holding them commits whole, once.
    #[test]
    fn hostile_events_are_stored_with_the_rest_of_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let meta = StoreMeta {
            version: StoreMeta::VERSION,
            text_fields: vec!["t".into()],
        };
        let mut state = State::open(dir.path(), &meta, MIN_WRITER_MEMORY).unwrap();
        let settings = Settings {
            text_fields: vec!["t".into()],
            fast_fields: Vec::new(),
            dedupe_by: vec!["message".into()],
            max_age: None,
            max_bytes: None,
            retention_interval: std::time::Duration::from_secs(60),
            commit_interval: std::time::Duration::from_secs(1),
            commit_events: 100_000,
        };
        let hostile = |i: usize| {
            let mut e = Event::new(format!("event {i}"), Timestamp(i as i64));
            match i {
                0 => {
                    e.insert("k", "v".repeat(100_000));
                }
                1 => {
                    e.insert("t", "w".repeat(100_000));
                }
                2 => {
                    e.fields.insert("a\u{0}b\u{1}c", Value::from("v"));
                }
                3 => {
                    e.fields.insert("", Value::from("v"));
                }
                4 => {
                    e.fields
                        .insert("k".repeat(70_000).as_str(), Value::from("v"));
                }
                5 => {
                    e.insert("f", f64::NAN);
                }
                6 => {
                    e.insert("ts", Timestamp(i64::MIN));
                }
                7 => e.timestamp = Timestamp(i64::MAX),
                8 => {
                    let mut v = Value::from("leaf");
                    for depth in 0..300 {
                        v = if depth % 2 == 0 {
                            let mut m = EventFields::new();
                            m.insert("k", v);
                            Value::Map(m)
                        } else {
                            Value::Array(vec![v])
                        };
                    }
                    e.fields.insert("deep", v);
                }
                9 => e.body = "b".repeat(200_000).into(),
                10 => {
                    e.fields
                        .insert("s", Value::String(b"\xff\xfe".to_vec().into()));
                }
                _ => {}
            }
            e
        };
        let batch = Batch::from((0..20).map(hostile).collect::<Vec<_>>());
        let docs = state.documents(&batch, &settings);
        state.write(docs, &settings, true).unwrap();
        let docs = state.documents(&batch, &settings);
        state.write(docs, &settings, true).unwrap();
        let reader = state.index.reader().unwrap();
        // Written twice, deduplicated by message: each once.
        assert_eq!(reader.searcher().num_docs(), 20);
    }
}
