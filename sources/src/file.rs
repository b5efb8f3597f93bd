//! The `file` source: lines of the files matched by globs.
//!
//! # How it reads
//!
//! Every matched file is read in turn, one chunk (up to 256 KiB) at a time,
//! with a positional read on a blocking thread (`spawn_blocking`): the
//! overhead is per chunk, never per line. Lines are framed by `framing.rs`:
//! each body is a zero-copy slice of the chunk, a trailing `\r` is stripped,
//! and a partial last line waits for its newline. Every event gets the field
//! `file` (the path); one string per file is shared by all its events.
//!
//! With `follow: true` the source reads until every file is caught up, then
//! waits `poll_interval`, looks for new data and rescans the globs (at most
//! once per `poll_interval`). A file that appears after start-up is read from
//! its beginning. A file that is removed, or whose path now names another
//! file (rotation), is read to its end and then dropped (its final line
//! without a newline is emitted then). A file whose size falls below the read
//! position was truncated and is read again from 0.
//!
//! With `follow: false` every file matched at start-up is read to its end
//! (a final line without a newline is emitted), and the source returns.
//!
//! # Offsets
//!
//! The checkpoint store holds, per path, the file's device and inode and the
//! byte offset just after the last line emitted and accepted by the channels
//! (or skipped as over-long). It is saved after an emitted batch at most once
//! a second, whenever the source is caught up, at the end of a bounded run and
//! always at shutdown; a crash therefore re-reads at most about one second of
//! lines (at-least-once), and a graceful restart neither re-reads nor skips a
//! line. On start-up a file with a checkpoint resumes from it, unless its
//! inode changed or it is now shorter than the offset: then it starts at 0.
//! `read_from` applies only to files without a checkpoint.
//!
//! ```yaml
//! sources:
//!   app:
//!     type: file
//!     include: ["/var/log/app/*.log"]
//!     exclude: ["/var/log/app/debug-*.log"]
//!     read_from: beginning
//!     channels: [main]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_core::prelude::*;

use crate::framing::LineFramer;

mod fs;
use crate::stdin::{default_batch_size, default_max_line_bytes};
use fs::{read_chunk, scan, ReadOutcome};

/// The `file` source's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Glob patterns of the files to read (`/var/log/app/*.log`, `**` allowed).
    pub include: Vec<String>,
    /// Glob patterns of matched files to leave alone.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file that has no checkpoint yet.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Keep reading new lines and new files; `false` reads each file matched
    /// at start-up to its end and stops (a bounded run).
    #[serde(default = "default_follow")]
    pub follow: bool,
    /// When following: how long to wait, once caught up, before looking for
    /// new data, and how often to rescan the globs.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Duration,
    /// The longest line kept; longer lines are counted, reported and skipped.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Events per batch at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: NonZeroUsize,
}

/// Where to start reading a file that has no checkpoint.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From its first byte.
    Beginning,
    /// From its current end: only lines written from now on.
    #[default]
    End,
}

fn default_follow() -> bool {
    true
}

fn default_poll_interval() -> Duration {
    Duration(std::time::Duration::from_millis(250))
}

/// Bytes read per chunk at most.
const CHUNK: u64 = 256 << 10;

/// Offsets are saved at most this often while reading (and when caught up).
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl SourceConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.include.is_empty() {
            problems.push(Problem::at("include", "list at least one glob pattern"));
        }
        for (key, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for p in patterns {
                if let Err(e) = glob::Pattern::new(p) {
                    problems.push(Problem::at(key, format!("invalid glob `{p}`: {e}")));
                }
            }
        }
        if self.poll_interval.get().is_zero() {
            problems.push(Problem::at("poll_interval", "must be longer than 0"));
        }
        if self.max_line_bytes.0 == 0 {
            problems.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let exclude = self
            .exclude
            .iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| BuildError::Other(format!("exclude `{p}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(FileSource {
            config: self.clone(),
            exclude,
        }))
    }
}

/// The running `file` source.
pub struct FileSource {
    config: Config,
    exclude: Vec<glob::Pattern>,
}

/// What the checkpoint store holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Per path (as text).
    files: BTreeMap<String, FileOffset>,
}

/// Where one file was left.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct FileOffset {
    dev: u64,
    ino: u64,
    /// Just after the last line emitted and accepted.
    offset: u64,
}

/// One file being read.
struct Tracked {
    /// The path as matched by the globs.
    path: PathBuf,
    /// The path as text: the checkpoint key and the `file` field.
    key: String,
    /// The `file` field, built once and cloned (cheaply) into every event.
    field: Value,
    /// Shared with the blocking thread doing the reads.
    file: Arc<File>,
    /// Device of the open file: with `ino`, tells a rotated file from ours.
    dev: u64,
    /// Inode of the open file.
    ino: u64,
    /// Where the next read starts.
    read_pos: u64,
    /// Read but not yet emitted lines, and the offset of the last one.
    framer: LineFramer,
    /// Offset recorded in the checkpoint: after the last line accepted.
    emitted: u64,
    /// Over-long lines already counted in the metrics.
    long_lines: u64,
    /// The path no longer names this file: drop it once read to its end.
    gone: bool,
    /// Read to its end, nothing more to do (bounded run, or gone).
    done: bool,
}

#[async_trait]
impl Source for FileSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), ComponentError> {
        let store = cx.checkpoints.clone();
        let saved = tokio::task::spawn_blocking(move || store.load::<Checkpoint>())
            .await
            .map_err(join_error)??
            .unwrap_or_default();
        let mut reader = Reader {
            batch_size: self.config.batch_size.get(),
            max_line: usize::try_from(self.config.max_line_bytes.0).unwrap_or(usize::MAX),
            batch: Batch::new(),
            files: Vec::new(),
            dirty: false,
            last_save: Instant::now(),
            warned: HashSet::new(),
            config: self.config,
            exclude: self.exclude,
        };
        reader.batch = Batch::with_capacity(reader.batch_size);
        reader.rescan(Some(&saved.files)).await?;
        if !reader.config.follow {
            let size = |f: &Tracked| f.file.metadata().map_or(0, |m| m.len());
            let left = reader
                .files
                .iter()
                .map(|f| size(f).saturating_sub(f.read_pos));
            cx.metrics.set_progress_total(left.sum(), true);
        }
        let result = reader.run(&mut cx).await;
        // Whatever happened, record what was accepted.
        let saved = reader.save(&cx.checkpoints).await;
        result.and(saved)
    }
}

/// The state of a running `file` source.
struct Reader {
    config: Config,
    exclude: Vec<glob::Pattern>,
    batch_size: usize,
    max_line: usize,
    /// Lines read but not emitted yet (from any file).
    batch: Batch,
    files: Vec<Tracked>,
    /// Offsets changed since the last save.
    dirty: bool,
    last_save: Instant,
    /// Paths that failed to open, reported once.
    warned: HashSet<PathBuf>,
}

impl Reader {
    async fn run(&mut self, cx: &mut SourceContext) -> Result<(), ComponentError> {
        let poll = self.config.poll_interval.get();
        let mut last_scan = Instant::now();
        loop {
            let mut progressed = false;
            for i in 0..self.files.len() {
                if cx.shutdown.is_cancelled() {
                    return self.emit(cx).await;
                }
                if self.files[i].done {
                    continue;
                }
                progressed |= self.read_one(i, cx).await?;
            }
            if self.files.iter().any(|f| f.gone && f.done) {
                self.files.retain(|f| !(f.gone && f.done));
                self.dirty = true;
            }
            if !progressed {
                // Caught up: hand over what is pending and record it.
                self.emit(cx).await?;
                if !self.config.follow {
                    return Ok(());
                }
                if self.dirty {
                    self.save(&cx.checkpoints).await?;
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = cx.shutdown.cancelled() => return Ok(()),
                }
            }
            if self.config.follow && last_scan.elapsed() >= poll {
                self.rescan(None).await?;
                last_scan = Instant::now();
            }
            if self.dirty && self.last_save.elapsed() >= SAVE_EVERY {
                self.save(&cx.checkpoints).await?;
            }
        }
    }

    /// Reads one chunk of file `i` and moves its lines into the batch.
    /// Returns whether there was new data.
    async fn read_one(&mut self, i: usize, cx: &mut SourceContext) -> Result<bool, ComponentError> {
        let f = &mut self.files[i];
        let buf = f.framer.take_buf();
        let (buf, outcome) = read_chunk(f.file.clone(), buf, f.read_pos).await?;
        f.framer.put_buf(buf);
        match outcome {
            ReadOutcome::Data(n) => {
                f.read_pos += n as u64;
                cx.metrics.add_progress(n as u64);
            }
            ReadOutcome::Truncated => {
                tracing::info!(path = %f.key, "file truncated: reading it again from the start");
                f.framer = LineFramer::new(f.key.clone(), self.max_line, 0);
                f.read_pos = 0;
                f.emitted = 0;
                self.dirty = true;
                return Ok(true);
            }
            ReadOutcome::Eof => {
                f.framer.release_idle_buffer();
                if !self.config.follow || f.gone {
                    if let Some(line) = f.framer.finish() {
                        self.batch.push(event(line, Timestamp::now(), &f.field));
                    }
                    f.done = true;
                    // Offsets move even without lines (skipped tail): emit records them.
                    if self.batch.len() >= self.batch_size {
                        self.emit(cx).await?;
                    }
                }
                return Ok(false);
            }
        }
        self.drain(i, cx).await?;
        Ok(true)
    }

    /// Moves the complete lines of file `i` into the batch, emitting every
    /// batch that fills up.
    async fn drain(&mut self, i: usize, cx: &mut SourceContext) -> Result<(), ComponentError> {
        let now = Timestamp::now();
        loop {
            let f = &mut self.files[i];
            // A copy of the path per batch: the events of one batch share its
            // reference count, so the reading and the writing task do not
            // fight over one counter for every event.
            let field = match &f.field {
                Value::String(b) => Value::String(Bytes::copy_from_slice(b)),
                other => other.clone(),
            };
            while self.batch.len() < self.batch_size {
                match f.framer.next_line() {
                    Some(line) => self.batch.push(event(line, now, &field)),
                    None => break,
                }
            }
            let long = f.framer.long_lines();
            if long > f.long_lines {
                cx.metrics.record_discarded((long - f.long_lines) as usize);
                f.long_lines = long;
            }
            if self.batch.len() < self.batch_size {
                return Ok(());
            }
            self.emit(cx).await?;
        }
    }

    /// Emits the pending batch (if any), then records every file's offset:
    /// every line pulled from a framer so far is now accepted.
    async fn emit(&mut self, cx: &mut SourceContext) -> Result<(), ComponentError> {
        let batch = std::mem::replace(&mut self.batch, Batch::with_capacity(self.batch_size));
        cx.emit(batch).await?;
        for f in &mut self.files {
            let offset = f.framer.checkpoint();
            if offset != f.emitted {
                f.emitted = offset;
                self.dirty = true;
            }
        }
        if self.dirty && self.last_save.elapsed() >= SAVE_EVERY {
            self.save(&cx.checkpoints).await?;
        }
        Ok(())
    }

    /// Writes every file's accepted offset to the checkpoint store.
    async fn save(&mut self, store: &CheckpointStore) -> Result<(), ComponentError> {
        let state = Checkpoint {
            files: self
                .files
                .iter()
                .filter(|f| !f.gone)
                .map(|f| {
                    let at = FileOffset {
                        dev: f.dev,
                        ino: f.ino,
                        offset: f.emitted,
                    };
                    (f.key.clone(), at)
                })
                .collect(),
        };
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.save(&state))
            .await
            .map_err(join_error)??;
        self.dirty = false;
        self.last_save = Instant::now();
        Ok(())
    }

    /// Matches the globs and starts reading every file not read yet.
    /// `saved` is the checkpoint, on the first scan only.
    async fn rescan(
        &mut self,
        saved: Option<&BTreeMap<String, FileOffset>>,
    ) -> Result<(), ComponentError> {
        let include = self.config.include.clone();
        let exclude = self.exclude.clone();
        let known: BTreeSet<(PathBuf, u64, u64)> = self
            .files
            .iter()
            .filter(|f| !f.gone)
            .map(|f| (f.path.clone(), f.dev, f.ino))
            .collect();
        let (matched, opened, failed) =
            tokio::task::spawn_blocking(move || scan(&include, &exclude, &known))
                .await
                .map_err(join_error)?;
        for (path, err) in failed {
            if self.warned.insert(path.clone()) {
                tracing::warn!(path = %path.display(), error = %err, "cannot read matched file");
            }
        }
        // Files whose path is gone or now names another file: finish them.
        for f in self.files.iter_mut().filter(|f| !f.gone) {
            if matched.get(&f.path) != Some(&(f.dev, f.ino)) {
                f.gone = true;
            }
        }
        for o in opened {
            let key = o.path.to_string_lossy().into_owned();
            let start = match saved.map(|s| s.get(&key)) {
                // First scan, with a checkpoint: resume unless replaced or truncated.
                Some(Some(at)) if at.dev == o.dev && at.ino == o.ino && at.offset <= o.len => {
                    at.offset
                }
                Some(Some(_)) => 0,
                Some(None) => match self.config.read_from {
                    ReadFrom::Beginning => 0,
                    ReadFrom::End => o.len,
                },
                // Appeared while running: all of it is new.
                None => 0,
            };
            self.warned.remove(&o.path);
            self.files.push(Tracked {
                field: Value::String(Bytes::from(key.clone())),
                framer: LineFramer::new(key.clone(), self.max_line, start),
                key,
                path: o.path,
                file: Arc::new(o.file),
                dev: o.dev,
                ino: o.ino,
                read_pos: start,
                emitted: start,
                long_lines: 0,
                gone: false,
                done: false,
            });
            self.dirty = true;
        }
        Ok(())
    }
}

fn event(body: Bytes, timestamp: Timestamp, file: &Value) -> Event {
    // One field: one small allocation, the name inline, the value a
    // reference-counted clone of the path shared by the whole file.
    let mut fields = Fields::with_capacity(1);
    fields.insert("file", file.clone());
    Event {
        body,
        timestamp,
        fields,
    }
}

fn join_error(e: tokio::task::JoinError) -> ComponentError {
    ComponentError::Other(format!("a blocking file operation failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::testing::{source_context, Collector};
    use std::io::Write;
    use std::path::Path;
    use std::time::Duration as StdDuration;
    use tokio_util::sync::CancellationToken;

    /// Waits (at most 5 s) until `out` holds `n` events.
    async fn wait_for(out: &Collector, n: usize) {
        tokio::time::timeout(StdDuration::from_secs(5), async {
            while out.len() < n {
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("waited for {n} events, got {:?}", out.bodies()));
    }

    fn config(yaml: &str) -> Config {
        sluice_core::config::from_yaml_str(yaml).unwrap()
    }

    fn build_cx() -> BuildContext {
        BuildContext {
            id: "logs".into(),
            pipeline_data_dir: "/nonexistent".into(),
            data_dir: "/nonexistent".into(),
            durable_input: false,
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// A bounded run (`follow: false`) over `logs/*.log`, from the beginning.
    async fn run_once(root: &Path, extra: &str) -> Vec<Event> {
        let mut yaml = format!(
            "include: [\"{}/logs/*.log\"]\nfollow: false\n{extra}",
            root.display()
        );
        if !extra.contains("read_from") {
            yaml.push_str("read_from: beginning\n");
        }
        let out = Collector::new();
        let cx = source_context(
            "logs",
            root.join("data"),
            out.clone(),
            CancellationToken::new(),
        );
        let source = config(&yaml).build(&build_cx()).unwrap();
        tokio::time::timeout(StdDuration::from_secs(10), source.run(cx))
            .await
            .unwrap()
            .unwrap();
        out.events()
    }

    fn bodies(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8(e.body.to_vec()).unwrap())
            .collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn config_parses_validates_and_rejects_unknown_keys() {
        let c = config(
            "include: [\"/var/log/*.log\"]\nexclude: [\"/var/log/debug*\"]\nread_from: beginning\n\
             follow: false\npoll_interval: 1s\nmax_line_bytes: 64KiB\nbatch_size: 500\n",
        );
        assert_eq!(c.read_from, ReadFrom::Beginning);
        assert!(!c.follow);
        assert_eq!(c.poll_interval.get(), StdDuration::from_secs(1));
        assert_eq!(c.max_line_bytes.0, 64 << 10);
        assert!(c.validate().is_empty());
        let d = config("include: [a.log]\n");
        assert_eq!(d.read_from, ReadFrom::End);
        assert!(d.follow);
        assert_eq!(d.poll_interval.get(), StdDuration::from_millis(250));
        assert_eq!((d.max_line_bytes.0, d.batch_size.get()), (1 << 20, 1000));

        let err = sluice_core::config::from_yaml_str::<Config>("include: [a]\nfolow: false\n")
            .unwrap_err();
        assert!(
            err.message.contains("did you mean `follow`"),
            "{}",
            err.message
        );
        let err = sluice_core::config::from_yaml_str::<Config>("follow: false\n").unwrap_err();
        assert!(err.message.contains("include"), "{}", err.message);

        let bad = config("include: []\nexclude: [\"a[\"]\npoll_interval: 0s\n");
        let keys: Vec<_> = bad.validate().into_iter().filter_map(|p| p.key).collect();
        assert_eq!(keys, ["include", "exclude", "poll_interval"]);
    }

    #[tokio::test]
    async fn bounded_run_reads_every_line_of_every_file_once() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let mut expected = Vec::new();
        for f in 0..3 {
            let mut text = String::new();
            // Enough to need several chunks and batches.
            for i in 0..5000 {
                text.push_str(&format!("file {f} line {i} {}\n", "x".repeat(100)));
                expected.push(format!("file {f} line {i} {}", "x".repeat(100)));
            }
            append(&logs.join(format!("{f}.log")), &text);
        }
        append(&logs.join("crlf.log"), "one\r\ntwo\r\n\r\nlong ");
        append(&logs.join("crlf.log"), &"y".repeat(3000));
        append(&logs.join("crlf.log"), "\r\nafter long\r\npartial");
        expected.extend(["one", "two", "", "after long", "partial"].map(String::from));
        append(&logs.join("skipped.txt"), "not matched\n");
        let events = run_once(root.path(), "max_line_bytes: 1KiB\nbatch_size: 700\n").await;
        assert_eq!(sorted(bodies(&events)), sorted(expected));
        // Order within a file is kept; every event names its file.
        let crlf: Vec<_> = events
            .iter()
            .filter(|e| {
                e.get("file")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.ends_with("crlf.log"))
            })
            .collect();
        assert_eq!(crlf.len(), 5);
        assert_eq!(crlf[4].body, "partial");
        let zero: Vec<_> = events
            .iter()
            .filter(|e| {
                e.get("file")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.ends_with("/0.log"))
            })
            .map(|e| e.body.clone())
            .collect();
        assert_eq!(zero.len(), 5000);
        assert!(zero[4999].starts_with(b"file 0 line 4999 "));
    }

    #[tokio::test]
    async fn exclude_and_read_from_end() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("a.log"), "a1\n");
        append(&logs.join("debug.log"), "d1\n");
        let excl = format!("exclude: [\"{}/logs/debug*\"]\n", root.path().display());
        let events = run_once(root.path(), &excl).await;
        assert_eq!(bodies(&events), ["a1"]);

        // `read_from: end` skips what is there, for files without a checkpoint.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("logs")).unwrap();
        append(&other.path().join("logs/b.log"), "old\n");
        assert!(run_once(other.path(), "read_from: end\n").await.is_empty());
        append(&other.path().join("logs/b.log"), "new\n");
        assert_eq!(
            bodies(&run_once(other.path(), "read_from: end\n").await),
            ["new"]
        );
    }

    #[tokio::test]
    async fn restart_resumes_after_the_last_line() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("a.log"), "a1\na2\n");
        append(&logs.join("b.log"), "b1\nb2 part");
        assert_eq!(
            sorted(bodies(&run_once(root.path(), "").await)),
            ["a1", "a2", "b1", "b2 part"]
        );
        append(&logs.join("a.log"), "a3\n");
        append(&logs.join("b.log"), "b3\n");
        append(&logs.join("c.log"), "c1\n");
        assert_eq!(
            sorted(bodies(&run_once(root.path(), "").await)),
            ["a3", "b3", "c1"]
        );
        assert!(run_once(root.path(), "").await.is_empty());
        let saved: Checkpoint = CheckpointStore::new(root.path().join("data/checkpoint.json"))
            .load()
            .unwrap()
            .unwrap();
        let a = &saved.files[&logs.join("a.log").to_string_lossy().into_owned()];
        assert_eq!(a.offset, 9);
    }

    #[tokio::test]
    async fn truncated_or_replaced_file_starts_again_at_zero() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("a.log"), "first line is long\nsecond\n");
        append(&logs.join("b.log"), "b1\n");
        assert_eq!(run_once(root.path(), "").await.len(), 3);
        // Truncate in place (same inode), then write less than before.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(logs.join("a.log"))
            .unwrap();
        append(&logs.join("a.log"), "new1\n");
        // Replace b.log by another file (a new inode).
        std::fs::rename(logs.join("b.log"), root.path().join("b.old")).unwrap();
        append(&logs.join("b.log"), "b-new\n");
        assert_eq!(
            sorted(bodies(&run_once(root.path(), "").await)),
            ["b-new", "new1"]
        );
    }

    #[tokio::test]
    async fn follow_reads_appends_and_new_files_and_stops_on_shutdown() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("a.log"), "old\n");
        let yaml = format!(
            "include: [\"{}/logs/*.log\"]\npoll_interval: 20ms\n",
            logs.parent().unwrap().display()
        );
        let out = Collector::new();
        let shutdown = CancellationToken::new();
        let cx = source_context(
            "logs",
            root.path().join("data"),
            out.clone(),
            shutdown.clone(),
        );
        let task = tokio::spawn(config(&yaml).build(&build_cx()).unwrap().run(cx));
        // Default `read_from: end`: "old" is not read; appended lines are.
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        append(&logs.join("a.log"), "a1\na2 ");
        wait_for(&out, 1).await;
        append(&logs.join("a.log"), "done\n");
        append(&logs.join("new.log"), "n1\n");
        wait_for(&out, 3).await;
        assert_eq!(sorted(out.bodies()), ["a1", "a2 done", "n1"]);
        append(&logs.join("a.log"), "pending partial");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        let stopped = Instant::now();
        shutdown.cancel();
        tokio::time::timeout(StdDuration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(stopped.elapsed() < StdDuration::from_millis(500));
        assert_eq!(out.len(), 3);

        // The checkpoint taken at shutdown: a restart reads only what follows.
        append(&logs.join("a.log"), " line\n");
        append(&logs.join("new.log"), "n2\n");
        let bounded = format!("{yaml}follow: false\n");
        let out = Collector::new();
        let cx = source_context(
            "logs",
            root.path().join("data"),
            out.clone(),
            CancellationToken::new(),
        );
        config(&bounded)
            .build(&build_cx())
            .unwrap()
            .run(cx)
            .await
            .unwrap();
        assert_eq!(sorted(out.bodies()), ["n2", "pending partial line"]);
    }

    #[tokio::test]
    async fn follow_handles_rotation_and_truncation() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("app.log"), "");
        let yaml = format!(
            "include: [\"{}/*.log\"]\npoll_interval: 10ms\nread_from: beginning\n",
            logs.display()
        );
        let out = Collector::new();
        let shutdown = CancellationToken::new();
        let cx = source_context(
            "logs",
            root.path().join("data"),
            out.clone(),
            shutdown.clone(),
        );
        let task = tokio::spawn(config(&yaml).build(&build_cx()).unwrap().run(cx));
        append(&logs.join("app.log"), "one\ntwo\n");
        wait_for(&out, 2).await;
        // Rotate: the old file gets a last line (without newline) after the
        // rename; a new file takes the path.
        std::fs::rename(logs.join("app.log"), root.path().join("app.log.1")).unwrap();
        append(&root.path().join("app.log.1"), "three");
        append(&logs.join("app.log"), "new one\n");
        wait_for(&out, 4).await;
        // Truncate the new file in place and write something shorter.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(logs.join("app.log"))
            .unwrap();
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        append(&logs.join("app.log"), "x\n");
        wait_for(&out, 5).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        // Order holds within a file, not across the old and the new one.
        let bodies = out.bodies();
        assert_eq!(bodies[..2], ["one", "two"]);
        assert_eq!(sorted(bodies[2..4].to_vec()), ["new one", "three"]);
        assert_eq!(bodies[4], "x");
    }
}
