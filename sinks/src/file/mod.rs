//! The `file` sink: appends events to files whose path is a [`Template`].
//!
//! # How a batch is written
//!
//! 1. Each event's path is rendered (once per batch when the template is
//!    static; when it has no fields and no sub-second specifier, the path of
//!    the previous event is reused while the timestamp stays in the same
//!    second). Field values are rendered with
//!    [`Template::render_path`], so they cannot add path components.
//! 2. Events are encoded ([`Encoder`]) into one buffer per distinct path, in
//!    batch order; the buffers are reused from batch to batch.
//! 3. One blocking task ([`tokio::task::spawn_blocking`]) writes each buffer
//!    with a single `write_all` to its file, opened with `O_APPEND` (created,
//!    with its parent directories, when missing).
//!
//! `write` returns `Ok` once every buffer is written to the OS (there is no
//! user-space buffering and no `fsync`: a crash of the process loses nothing
//! written, a crash of the machine may lose what the OS had not yet synced).
//! On an I/O error the sink stops at that file and returns
//! [`SinkError::Retry`]; files written before it in the same batch then get
//! the batch again on retry (at-least-once), and a failed `write_all` may
//! have left part of a buffer in the file.
//!
//! An event whose path renders empty or ending in `/` (say `./out/{app}` and
//! the event has no `app`) is rejected ([`SinkError::Rejected`]): it goes to the dead-letter channel
//! when there is one.
//!
//! # Open files
//!
//! Open files are kept in a map keyed by rendered path. A file not written
//! for `idle_timeout` is closed (checked at every batch), and at most
//! `max_open_files` stay open: opening one more closes the least recently
//! used. A file renamed away (log rotation) keeps receiving events until it
//! is closed by one of these rules.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Instant;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use sluice_core::template::Template;

use crate::encode::{Encoder, Format};

/// The `file` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to write: a template (`./out/{app}/%Y-%m-%d.log`) rendered per
    /// event from its timestamp (UTC) and fields. Relative paths are relative
    /// to the agent's working directory.
    pub path: Template,
    /// `text` (the body and a newline) or `json` (one object per line).
    #[serde(default)]
    pub format: Format,
    /// How many files may be open at once; opening one more closes the least
    /// recently written.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: NonZeroUsize,
    /// Close a file after this long without writes (so that yesterday's file
    /// of a `%Y-%m-%d` path does not stay open).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
}

fn default_max_open_files() -> NonZeroUsize {
    NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN)
}

fn default_idle_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}

impl SinkConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let path = self.path.as_str();
        if path.is_empty() {
            problems.push(Problem::at("path", "the path is empty: name a file"));
        } else if path.ends_with('/') {
            problems.push(Problem::at(
                "path",
                format!("`{path}` names a directory: add a file name"),
            ));
        }
        if self.idle_timeout.get().is_zero() {
            problems.push(Problem::at(
                "idle_timeout",
                "must be longer than 0, such as `30s`",
            ));
        }
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(FileSink::new(
            &cx.id,
            self.path.clone(),
            self.format,
            self.max_open_files.get(),
            self.idle_timeout.get(),
        )))
    }
}

/// An open file and when it was last written.
#[derive(Debug)]
struct OpenFile {
    file: File,
    last_used: Instant,
}

/// The events of one batch going to one path, encoded.
#[derive(Debug)]
struct Group {
    path: String,
    buf: Vec<u8>,
}

/// The state the blocking writer needs: moved into `spawn_blocking` and back.
#[derive(Debug)]
struct Files {
    open: HashMap<String, OpenFile>,
    max_open: usize,
    idle_timeout: std::time::Duration,
}

/// The `file` sink (see the [module docs](self)).
#[derive(Debug)]
pub struct FileSink {
    /// The component id, for error messages.
    id: String,
    /// The path template.
    template: Template,
    /// Whether the path of the previous event may be reused when the
    /// timestamp's second has not changed.
    cache_by_second: bool,
    /// Encodes events into group buffers.
    encoder: Encoder,
    /// The open files; `None` only while a write is in flight (or after a
    /// blocking task panicked, when the files are reopened lazily).
    files: Option<Files>,
    /// This batch's groups, in order of first appearance.
    groups: Vec<Group>,
    /// Rendered path -> index in `groups`, for this batch.
    group_index: HashMap<String, usize>,
    /// Emptied buffers kept for the next batches.
    spare: Vec<Vec<u8>>,
    /// Where a path is rendered before it is looked up.
    scratch: String,
    /// `max_open_files`, kept to rebuild `files` after a failed writer task.
    max_open: usize,
    /// `idle_timeout`, kept for the same reason.
    idle_timeout: std::time::Duration,
}

/// Buffers larger than this are not kept for reuse (a burst should not pin
/// memory for the rest of the run).
const MAX_SPARE_CAPACITY: usize = 16 << 20;

impl FileSink {
    /// A sink writing to `template` in `format`.
    pub fn new(
        id: &str,
        template: Template,
        format: Format,
        max_open: usize,
        idle_timeout: std::time::Duration,
    ) -> Self {
        FileSink {
            id: id.to_string(),
            cache_by_second: !template.has_fields() && !template.has_subsecond(),
            template,
            encoder: Encoder::new(format),
            files: Some(Files {
                open: HashMap::new(),
                max_open: max_open.max(1),
                idle_timeout,
            }),
            groups: Vec::new(),
            group_index: HashMap::new(),
            spare: Vec::new(),
            scratch: String::new(),
            max_open: max_open.max(1),
            idle_timeout,
        }
    }

    /// Index of the group for the path in `self.scratch`, created if new.
    fn group_for_scratch(&mut self) -> usize {
        if let Some(&i) = self.group_index.get(self.scratch.as_str()) {
            return i;
        }
        let i = self.groups.len();
        self.groups.push(Group {
            path: self.scratch.clone(),
            buf: self.spare.pop().unwrap_or_default(),
        });
        self.group_index.insert(self.scratch.clone(), i);
        i
    }

    /// Splits and encodes the batch into `self.groups`; returns the rejected
    /// events.
    fn encode(&mut self, batch: &Batch) -> Vec<(usize, String)> {
        let mut rejected = Vec::new();
        let static_path = self.template.is_static();
        let mut last: Option<(i64, usize)> = None;
        for (i, event) in batch.iter().enumerate() {
            let second = event.timestamp.seconds();
            let g = match last {
                Some((s, g)) if static_path || (self.cache_by_second && s == second) => g,
                _ => {
                    self.scratch.clear();
                    self.template.render_path(event, &mut self.scratch);
                    if self.scratch.is_empty() || self.scratch.ends_with('/') {
                        rejected.push((
                            i,
                            format!(
                                "the path template `{}` rendered `{}` for this event, \
                                 which names no file (a field it uses is missing?)",
                                self.template, self.scratch
                            ),
                        ));
                        last = None;
                        continue;
                    }
                    self.group_for_scratch()
                }
            };
            last = Some((second, g));
            if let Err(e) = self.encoder.encode(event, &mut self.groups[g].buf) {
                rejected.push((i, e));
            }
        }
        rejected
    }

    /// Returns the group buffers to the spare pool.
    fn recycle(&mut self, groups: Vec<Group>) {
        self.group_index.clear();
        for mut g in groups {
            if g.buf.capacity() <= MAX_SPARE_CAPACITY {
                g.buf.clear();
                self.spare.push(g.buf);
            }
        }
        self.spare.truncate(self.max_open);
    }
}

impl Files {
    /// Writes each group with one `write_all`; stops at the first error.
    fn write_groups(&mut self, groups: &[Group]) -> Result<(), SinkError> {
        let now = Instant::now();
        self.open
            .retain(|_, f| now.duration_since(f.last_used) < self.idle_timeout);
        for g in groups {
            if g.buf.is_empty() {
                continue;
            }
            let file = self.get(&g.path, now)?;
            if let Err(e) = file.file.write_all(&g.buf) {
                // Reopen next time: the handle may be what is broken.
                self.open.remove(&g.path);
                return Err(SinkError::Retry(format!(
                    "cannot write to `{}`: {e}",
                    g.path
                )));
            }
        }
        Ok(())
    }

    /// The open file for `path`, opened (and its directory created) if needed.
    fn get(&mut self, path: &str, now: Instant) -> Result<&mut OpenFile, SinkError> {
        if !self.open.contains_key(path) {
            while self.open.len() >= self.max_open {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.last_used)
                    .map(|(p, _)| p.clone());
                match oldest {
                    Some(p) => self.open.remove(&p),
                    None => break,
                };
            }
            let file = open_append(Path::new(path))
                .map_err(|e| SinkError::Retry(format!("cannot open `{path}`: {e}")))?;
            self.open.insert(
                path.to_string(),
                OpenFile {
                    file,
                    last_used: now,
                },
            );
        }
        let f = self
            .open
            .get_mut(path)
            .ok_or_else(|| SinkError::Retry(format!("`{path}` was not opened")))?;
        f.last_used = now;
        Ok(f)
    }
}

/// Opens `path` for appending, creating it and its parent directories.
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            options.open(path)
        }
        other => other,
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let rejected = self.encode(batch);
        let groups = std::mem::take(&mut self.groups);
        let mut files = self.files.take().unwrap_or_else(|| Files {
            open: HashMap::new(),
            max_open: self.max_open,
            idle_timeout: self.idle_timeout,
        });
        let joined = tokio::task::spawn_blocking(move || {
            let result = files.write_groups(&groups);
            (files, groups, result)
        })
        .await;
        let (files, groups, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                self.group_index.clear();
                return Err(SinkError::Retry(format!(
                    "sink `{}`: the file writer task failed: {e}",
                    self.id
                )));
            }
        };
        self.files = Some(files);
        self.recycle(groups);
        result?;
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Rejected(rejected))
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // Every write already reached the OS; closing is all that is left.
        if let Some(files) = self.files.as_mut() {
            files.open.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::config::from_yaml_str;

    fn sink(path: &str, format: Format) -> FileSink {
        FileSink::new(
            "out",
            Template::parse(path).unwrap(),
            format,
            64,
            std::time::Duration::from_secs(30),
        )
    }

    fn ev(body: &str, ts: i64) -> Event {
        Event::new(body.to_string(), Timestamp(ts))
    }

    fn read(p: impl AsRef<Path>) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    fn tmp_path(dir: &tempfile::TempDir, rel: &str) -> String {
        dir.path().join(rel).to_str().unwrap().to_string()
    }

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config = from_yaml_str(
            "path: ./out/app-%Y-%m-%d.log\nformat: json\nmax_open_files: 8\nidle_timeout: 1m\n",
        )
        .unwrap();
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.max_open_files.get(), 8);
        assert_eq!(c.idle_timeout.get().as_secs(), 60);
        assert!(c.validate().is_empty());
        let c: Config = from_yaml_str("path: out.log\n").unwrap();
        assert_eq!(c.format, Format::Text);
        assert_eq!(c.max_open_files.get(), 64);
        let e = from_yaml_str::<Config>("path: out.log\nformt: json\n")
            .err()
            .unwrap();
        assert!(e.message.contains("did you mean `format`"), "{}", e.message);
        assert!(from_yaml_str::<Config>("format: json\n").is_err());
        assert!(from_yaml_str::<Config>("path: out-%Q.log\n").is_err());
        assert!(from_yaml_str::<Config>("path: a.log\nmax_open_files: 0\n").is_err());
        let c: Config = from_yaml_str("path: ./out/\nidle_timeout: 0s\n").unwrap();
        assert_eq!(c.validate().len(), 2);
    }

    #[tokio::test]
    async fn text_output_is_exact_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp_path(&dir, "a/b/out.log");
        let mut s = sink(&path, Format::Text);
        s.write(&Batch::from(vec![ev("one", 0), ev("two", 1)]))
            .await
            .unwrap();
        s.write(&Batch::from(vec![ev("three", 2)])).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(read(&path), "one\ntwo\nthree\n");
        // A new sink appends to what is there.
        let mut s = sink(&path, Format::Text);
        s.write(&Batch::from(vec![ev("four", 3)])).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(read(&path), "one\ntwo\nthree\nfour\n");
    }

    #[tokio::test]
    async fn json_output_is_exact_and_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = tmp_path(&dir, "out.json");
        let mut s = sink(&path, Format::Json);
        let mut e = ev("GET / 200", 1_795_668_191_123_456_789);
        e.insert("status", 200i64);
        e.insert("http.method", "GET");
        s.write(&Batch::from(vec![ev("plain", 0), e]))
            .await
            .unwrap();
        s.flush().await.unwrap();
        let text = read(&path);
        assert_eq!(
            text,
            "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"message\":\"plain\"}\n\
             {\"timestamp\":\"2026-11-26T04:43:11.123456Z\",\"message\":\"GET / 200\",\
             \"fields\":{\"status\":200,\"http\":{\"method\":\"GET\"}}}\n"
        );
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["message"], "plain");
        assert!(lines[0].get("fields").is_none());
        assert_eq!(lines[1]["fields"]["status"], 200);
        assert_eq!(lines[1]["fields"]["http"]["method"], "GET");
        assert_eq!(lines[1]["timestamp"], "2026-11-26T04:43:11.123456Z");
    }

    #[tokio::test]
    async fn field_template_splits_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(&tmp_path(&dir, "{app}/{level}.log"), Format::Text);
        let mut batch = Batch::new();
        for (i, (app, level)) in [
            ("web", "info"),
            ("db", "error"),
            ("web", "error"),
            ("web", "info"),
            ("../x", "info"),
        ]
        .iter()
        .enumerate()
        {
            let mut e = ev(&format!("line {i}"), 0);
            e.insert("app", *app);
            e.insert("level", *level);
            batch.push(e);
        }
        s.write(&batch).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(read(dir.path().join("web/info.log")), "line 0\nline 3\n");
        assert_eq!(read(dir.path().join("web/error.log")), "line 2\n");
        assert_eq!(read(dir.path().join("db/error.log")), "line 1\n");
        assert_eq!(read(dir.path().join(".._x/info.log")), "line 4\n");
    }

    #[tokio::test]
    async fn strftime_template_uses_event_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(&tmp_path(&dir, "%Y-%m-%d/%H.log"), Format::Text);
        let hour = 3_600_000_000_000i64;
        let day = 24 * hour;
        let batch = Batch::from(vec![
            ev("a", 0),
            ev("b", 1),
            ev("c", hour),
            ev("d", day + 5),
            ev("e", 10),
        ]);
        s.write(&batch).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(read(dir.path().join("1970-01-01/00.log")), "a\nb\ne\n");
        assert_eq!(read(dir.path().join("1970-01-01/01.log")), "c\n");
        assert_eq!(read(dir.path().join("1970-01-02/00.log")), "d\n");
    }

    #[tokio::test]
    async fn empty_rendered_path_is_rejected_others_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(&tmp_path(&dir, "{name}"), Format::Text);
        let mut good = ev("good", 0);
        good.insert("name", "good.log");
        let batch = Batch::from(vec![ev("lost", 0), good]);
        match s.write(&batch).await {
            Err(SinkError::Rejected(r)) => {
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].0, 0);
                assert!(r[0].1.contains("names no file"), "{}", r[0].1);
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(read(dir.path().join("good.log")), "good\n");
    }

    #[tokio::test]
    async fn open_files_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileSink::new(
            "out",
            Template::parse(&tmp_path(&dir, "{n}.log")).unwrap(),
            Format::Text,
            2,
            std::time::Duration::from_secs(30),
        );
        for round in 0..2 {
            let mut batch = Batch::new();
            for n in 0..5i64 {
                let mut e = ev(&format!("{round}"), 0);
                e.insert("n", n);
                batch.push(e);
            }
            s.write(&batch).await.unwrap();
            assert!(s.files.as_ref().unwrap().open.len() <= 2);
        }
        for n in 0..5 {
            assert_eq!(read(dir.path().join(format!("{n}.log"))), "0\n1\n");
        }
    }

    #[tokio::test]
    async fn idle_files_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileSink::new(
            "out",
            Template::parse(&tmp_path(&dir, "{n}.log")).unwrap(),
            Format::Text,
            64,
            std::time::Duration::from_millis(50),
        );
        let mut a = ev("a", 0);
        a.insert("n", "a");
        s.write(&Batch::from(vec![a])).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        let mut b = ev("b", 0);
        b.insert("n", "b");
        s.write(&Batch::from(vec![b])).await.unwrap();
        let open = &s.files.as_ref().unwrap().open;
        assert_eq!(open.len(), 1);
        assert!(open.keys().all(|p| p.ends_with("b.log")));
    }

    #[tokio::test]
    async fn unwritable_path_is_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let mut s = sink(&tmp_path(&dir, "file/out.log"), Format::Text);
        match s.write(&Batch::from(vec![ev("x", 0)])).await {
            Err(SinkError::Retry(m)) => assert!(m.contains("file/out.log"), "{m}"),
            other => panic!("expected Retry, got {other:?}"),
        }
    }

    /// `cargo test --release -p sluice-sinks -- --ignored --nocapture throughput`
    #[tokio::test(flavor = "multi_thread")]
    #[ignore]
    async fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let line = format!(
            "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 {}",
            "x".repeat(160 - 86)
        );
        assert_eq!(line.len(), 160);
        for (name, template, format) in [
            // To /dev/null: the sink's own cost, without the disk's.
            ("static text to /dev/null", "/dev/null", Format::Text),
            ("field text to /dev/{app}", "/dev/{app}", Format::Text),
            ("static json to /dev/null", "/dev/null", Format::Json),
            // To real files: bounded by the page cache and writeback.
            ("static text", "static.log", Format::Text),
            ("strftime text", "%Y-%m-%d.log", Format::Text),
            ("field text", "{app}.log", Format::Text),
            ("strftime json", "%Y-%m-%d.json", Format::Json),
        ] {
            let path = if template.starts_with('/') {
                template.to_string()
            } else {
                tmp_path(&dir, template)
            };
            let mut s = sink(&path, format);
            let batches: Vec<Batch> = (0..20)
                .map(|b| {
                    (0..1000i64)
                        .map(|i| {
                            let mut e = ev(
                                &line,
                                1_795_668_191_000_000_000 + (b * 1000 + i) * 1_000_000,
                            );
                            if format == Format::Json || template.contains('{') {
                                e.insert("app", "null");
                            }
                            e
                        })
                        .collect::<Vec<_>>()
                        .into()
                })
                .collect();
            let rounds = 50;
            let started = Instant::now();
            for _ in 0..rounds {
                for b in &batches {
                    s.write(b).await.unwrap();
                }
            }
            s.flush().await.unwrap();
            let secs = started.elapsed().as_secs_f64();
            let events = (rounds * 20 * 1000) as f64;
            println!(
                "{name}: {:.0} events/s, {:.0} MiB/s of bodies",
                events / secs,
                events * 160.0 / secs / (1 << 20) as f64
            );
        }
    }
}
