//! The state of a running `file` source: the files being read, the batch
//! being filled, and the loop that reads, emits and records offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sluice_core::prelude::*;

use super::fs::{read_chunk, scan, Fingerprint, Opened, ReadOutcome};
use super::multiline::{Assembly, Rule};
use super::{join_error, Checkpoint, Config, FileOffset, ReadFrom, SAVE_EVERY};
use sluice_core::framing::Framer;

/// One file being read.
pub(super) struct Tracked {
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
    /// The first bytes of the open file, checked at every read.
    fingerprint: Fingerprint,
    /// Where the next read starts.
    read_pos: u64,
    /// Read but not yet emitted lines, and the offset of the last one.
    framer: Framer,
    /// The multiline event being assembled (unused without `multiline`).
    assembly: Assembly,
    /// Offset recorded in the checkpoint: after the last line accepted.
    emitted: u64,
    /// Over-long lines already counted in the metrics.
    long_lines: u64,
    /// Since when a partial last line has waited for its newline.
    partial_since: Option<Instant>,
    /// The path no longer names this file: drop it once read to its end and
    /// idle for `rotate_wait`.
    gone: bool,
    /// When the file last grew or was found gone.
    active: Instant,
    /// Read to its end, nothing more to do (bounded run, or gone).
    done: bool,
}

impl Tracked {
    /// Where a restart should resume: after the last line handed out, or
    /// where the event being assembled starts.
    fn checkpoint(&self) -> u64 {
        self.assembly
            .pending_start()
            .unwrap_or_else(|| self.framer.checkpoint())
    }
}

/// The state of a running `file` source.
pub(super) struct Reader {
    pub(super) config: Config,
    pub(super) exclude: Vec<glob::Pattern>,
    pub(super) multiline: Option<Rule>,
    pub(super) batch_size: usize,
    pub(super) max_line: usize,
    /// Lines read but not emitted yet (from any file).
    pub(super) batch: Batch,
    pub(super) files: Vec<Tracked>,
    /// Offsets changed since the last save.
    pub(super) dirty: bool,
    pub(super) last_save: Instant,
    /// Paths that failed to open, reported once.
    pub(super) warned: HashSet<PathBuf>,
}

impl Reader {
    pub(super) async fn run(&mut self, cx: &mut SourceContext) -> Result<(), ComponentError> {
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
                self.report_behind(cx);
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
        let (buf, outcome, fingerprint) =
            read_chunk(f.file.clone(), buf, f.read_pos, f.fingerprint).await?;
        f.framer.put_buf(buf);
        f.fingerprint = fingerprint;
        match outcome {
            ReadOutcome::Data(n) => {
                f.read_pos += n as u64;
                cx.metrics.add_progress(n as u64);
                f.active = Instant::now();
                f.partial_since = None;
            }
            ReadOutcome::Truncated => {
                tracing::info!(path = %sluice_core::quote::quoted(&f.key).max(4096), "file truncated: reading it again from the start");
                // What was read of the old content is complete now.
                self.finish_file(i, cx);
                let f = &mut self.files[i];
                f.framer = Framer::lines(f.key.clone(), self.max_line, 0);
                f.fingerprint = Fingerprint::default();
                f.read_pos = 0;
                f.partial_since = None;
                self.dirty = true;
                if self.batch.len() >= self.batch_size {
                    self.emit(cx).await?;
                }
                return Ok(true);
            }
            ReadOutcome::Eof => {
                f.framer.release_idle_buffer();
                let rotate_wait = self.config.rotate_wait.get();
                if !self.config.follow || (f.gone && f.active.elapsed() >= rotate_wait) {
                    self.finish_file(i, cx);
                    self.files[i].done = true;
                } else {
                    self.flush_timeouts(i);
                }
                if self.batch.len() >= self.batch_size {
                    self.emit(cx).await?;
                }
                return Ok(false);
            }
        }
        self.drain(i, cx).await?;
        Ok(true)
    }

    /// End of a file's content (bounded run, rotated away, truncated): its
    /// last line without a newline and the event being assembled are
    /// complete.
    fn finish_file(&mut self, i: usize, cx: &SourceContext) {
        let f = &mut self.files[i];
        let start = f.framer.checkpoint();
        if let Some(line) = f.framer.finish() {
            push_line(&mut self.batch, self.multiline.as_ref(), f, line, start);
        }
        if let Some(body) = f.assembly.take() {
            self.batch.push(event(body, Timestamp::now(), &f.field));
        }
        // Counted now: a finished file may be dropped before the next emit.
        let errors = cx_errors_pending(f);
        if errors > 0 {
            cx.metrics.record_errors(errors);
        }
    }

    /// While following at the end of file `i`: emits a partial last line
    /// that waited `partial_line_timeout`, and an event being assembled that
    /// got no line for the multiline `timeout`.
    fn flush_timeouts(&mut self, i: usize) {
        let f = &mut self.files[i];
        if let Some(timeout) = self.config.partial_line_timeout {
            if f.framer.has_partial() {
                let since = *f.partial_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= timeout.get() {
                    let start = f.framer.checkpoint();
                    if let Some(line) = f.framer.finish() {
                        push_line(&mut self.batch, self.multiline.as_ref(), f, line, start);
                    }
                    f.partial_since = None;
                }
            } else {
                f.partial_since = None;
            }
        }
        if let Some(rule) = &self.multiline {
            if f.assembly.expired(rule) {
                if let Some(body) = f.assembly.take() {
                    self.batch.push(event(body, Timestamp::now(), &f.field));
                }
            }
        }
    }

    /// Moves the complete lines of file `i` into the batch, emitting every
    /// batch that fills up.
    async fn drain(&mut self, i: usize, cx: &mut SourceContext) -> Result<(), ComponentError> {
        let now = Timestamp::now();
        loop {
            let f = &mut self.files[i];
            // The `file` field built once per batch and shared by its events:
            // no allocation per event, and one reference count per batch, so
            // the reading and the writing task do not fight over one counter.
            let fields = batch_fields(&f.field);
            let rule = self.multiline.as_ref();
            while self.batch.len() < self.batch_size {
                let start = f.framer.checkpoint();
                let Some(line) = f.framer.next_line() else {
                    break;
                };
                let body = match rule {
                    Some(rule) => match f.assembly.push(rule, line, start) {
                        Some(done) => done,
                        None => continue,
                    },
                    None => line,
                };
                self.batch.push(Event {
                    body,
                    timestamp: now,
                    fields: fields.clone(),
                });
            }
            let new_errors = cx_errors_pending(f);
            if new_errors > 0 {
                cx.metrics.record_errors(new_errors);
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
        let mut errors = 0;
        for f in &mut self.files {
            errors += cx_errors_pending(f);
            let offset = f.checkpoint();
            if offset != f.emitted {
                f.emitted = offset;
                self.dirty = true;
            }
        }
        if errors > 0 {
            cx.metrics.record_errors(errors);
        }
        if self.dirty && self.last_save.elapsed() >= SAVE_EVERY {
            self.save(&cx.checkpoints).await?;
        }
        Ok(())
    }

    /// Sets the `bytes_behind` gauge of each file: its size less the offset
    /// accepted so far (what a restart would read again, plus what was not
    /// read yet). Files no longer read drop out.
    pub(super) fn report_behind(&self, cx: &SourceContext) {
        let behind = self
            .files
            .iter()
            .filter(|f| !f.gone)
            .map(|f| {
                let size = f.file.metadata().map_or(0, |m| m.len());
                (f.key.clone(), size.saturating_sub(f.checkpoint()) as f64)
            })
            .collect();
        cx.metrics.set_labelled("bytes_behind", "file", behind);
    }

    /// Bytes between each file's read position and its current end (the
    /// work of a bounded run).
    pub(super) fn bytes_left(&self) -> u64 {
        let size = |f: &Tracked| f.file.metadata().map_or(0, |m| m.len());
        self.files
            .iter()
            .map(|f| size(f).saturating_sub(f.read_pos))
            .sum()
    }

    /// Writes every file's accepted offset to the checkpoint store.
    pub(super) async fn save(&mut self, store: &CheckpointStore) -> Result<(), ComponentError> {
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
                        fingerprint: Some(f.fingerprint),
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
    pub(super) async fn rescan(
        &mut self,
        saved: Option<&BTreeMap<String, FileOffset>>,
    ) -> Result<(), ComponentError> {
        let include = self.config.include.clone();
        let exclude = self.exclude.clone();
        let known: BTreeSet<(u64, u64)> = self.files.iter().map(|f| (f.dev, f.ino)).collect();
        let (matched, opened, failed) =
            tokio::task::spawn_blocking(move || scan(&include, &exclude, &known))
                .await
                .map_err(join_error)?;
        for (path, err) in failed {
            if self.warned.insert(path.clone()) {
                tracing::warn!(path = %sluice_core::quote::quoted(path.as_os_str().as_encoded_bytes()).max(4096), error = %err, "cannot read matched file");
            }
        }
        // Where each file (by identity) is matched now.
        let mut by_id: HashMap<(u64, u64), &PathBuf> = HashMap::new();
        for (path, id) in &matched {
            by_id.entry(*id).or_insert(path);
        }
        for f in &mut self.files {
            let id = (f.dev, f.ino);
            if matched.get(&f.path) == Some(&id) {
                continue;
            }
            match by_id.get(&id) {
                // Renamed to another matched path: go on reading it there.
                Some(path) => {
                    f.path = (*path).clone();
                    f.key = f.path.to_string_lossy().into_owned();
                    f.field = Value::String(Bytes::from(f.key.clone()));
                    f.framer.set_label(f.key.clone());
                    f.gone = false;
                    self.dirty = true;
                }
                // Removed, or the path names another file now: finish it.
                None if !f.gone => {
                    f.gone = true;
                    f.active = Instant::now();
                }
                None => {}
            }
        }
        for o in opened {
            let start = match saved {
                Some(saved) => resume_offset(saved, &o, self.config.read_from),
                // Appeared while running: all of it is new.
                None => 0,
            };
            self.warned.remove(&o.path);
            let key = o.path.to_string_lossy().into_owned();
            self.files.push(Tracked {
                field: Value::String(Bytes::from(key.clone())),
                framer: Framer::lines(key.clone(), self.max_line, start),
                key,
                path: o.path,
                file: Arc::new(o.file),
                dev: o.dev,
                ino: o.ino,
                fingerprint: Fingerprint::of(&o.head),
                read_pos: start,
                assembly: Assembly::default(),
                emitted: start,
                long_lines: 0,
                partial_since: None,
                gone: false,
                active: Instant::now(),
                done: false,
            });
            self.dirty = true;
        }
        Ok(())
    }
}

/// Where to start a file found at start-up: at its checkpoint if that is
/// still this file (same inode, same first bytes, not shorter); a file
/// renamed while the agent was stopped is found by its identity under its
/// old path. Otherwise from 0, or per `read_from` when there is no checkpoint.
fn resume_offset(saved: &BTreeMap<String, FileOffset>, o: &Opened, read_from: ReadFrom) -> u64 {
    let same = |at: &FileOffset| {
        at.dev == o.dev
            && at.ino == o.ino
            && at.offset <= o.len
            && at.fingerprint.is_none_or(|fp| fp.matches(&o.head))
    };
    let key = o.path.to_string_lossy();
    let own = saved.get(key.as_ref());
    if let Some(at) = own.filter(|at| same(at)) {
        return at.offset;
    }
    // Renamed while stopped: only with a fingerprint, so that a new file
    // reusing an old inode is not taken for it.
    if let Some(at) = saved
        .values()
        .find(|at| at.fingerprint.is_some() && same(at))
    {
        return at.offset;
    }
    match (own, read_from) {
        (Some(_), _) | (None, ReadFrom::Beginning) => 0,
        (None, ReadFrom::End) => o.len,
    }
}

/// Over-long lines of `f` skipped since last counted; marks them counted.
fn cx_errors_pending(f: &mut Tracked) -> usize {
    let long = f.framer.too_long();
    let new = long.saturating_sub(f.long_lines);
    f.long_lines = long;
    new as usize
}

/// Hands a line of `f` (starting at byte `start`) to the multiline assembly
/// or straight to the batch (off the hot path: final and timed-out lines).
fn push_line(batch: &mut Batch, rule: Option<&Rule>, f: &mut Tracked, line: Bytes, start: u64) {
    let body = match rule {
        Some(rule) => match f.assembly.push(rule, line, start) {
            Some(done) => done,
            None => return,
        },
        None => line,
    };
    batch.push(event(body, Timestamp::now(), &f.field));
}

/// The fields of the events of one batch from a file: `file`, its path,
/// shared (see [`Fields::into_shared`]) and with its own copy of the path.
fn batch_fields(file: &Value) -> Fields {
    let value = match file {
        Value::String(b) => Value::String(Bytes::copy_from_slice(b)),
        other => other.clone(),
    };
    let mut fields = Fields::with_capacity(1);
    fields.insert("file", value);
    fields.into_shared()
}

/// An event off the hot path (a final, timed-out or multiline line).
fn event(body: Bytes, timestamp: Timestamp, file: &Value) -> Event {
    let mut fields = Fields::with_capacity(1);
    fields.insert("file", file.clone());
    Event {
        body,
        timestamp,
        fields,
    }
}
