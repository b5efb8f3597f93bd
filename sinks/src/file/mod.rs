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
//! user-space buffering). When the sink's input channel is durable
//! ([`BuildContext::durable_input`]), each file written is also synced
//! (`sync_data`) before `write` returns, since the take is committed right
//! after; otherwise there is no `fsync`: a crash of the process loses nothing
//! written, a crash of the machine may lose what the OS had not yet synced.
//!
//! # Errors
//!
//! Each file of a batch (each group) is written on its own. An I/O error
//! that no retry can fix ([`writer::permanent`]: `ENAMETOOLONG`, `EINVAL`,
//! `EILSEQ`, `EISDIR`, `ENOTDIR`, `EFBIG`) rejects that group's events
//! ([`SinkError::Rejected`]); so does a rendered path that is empty, ends in
//! `/`, holds a NUL or, past the template's fixed leading directories, has an
//! empty, `.` or `..` component (checked before anything is written). Any
//! other error is transient: the file is cut back to its size before the
//! failed write (or sync), the other groups are still written, and `write`
//! returns [`SinkError::Retry`] after remembering which groups were written
//! ([`Pending`]). The runtime then writes the same batch again, and only the
//! groups not yet written are written: a partial failure never appends an
//! event twice. (If the agent stops during the retries, the batch is written
//! whole after the restart: at-least-once.)
//!
//! A `kill -9` in the middle of a write can leave a torn
//! last line: when this run first opens an uncompressed file that does not
//! end with a newline, it cuts the file back to its last newline (the torn
//! batch was not acknowledged and is written again) and logs how much it cut.
//!
//! # Compression
//!
//! With `compression: gzip` or `zstd`, each buffer (one batch's events for
//! one file) is compressed on the blocking thread into one complete gzip
//! member or zstd frame and appended. Concatenated members (frames) are one
//! valid stream for `gzip -d`, `zstd -d` and the usual libraries, so a file
//! is valid after every write: nothing is held back until close, and a crash
//! can at worst leave a torn last member of a batch that was not
//! acknowledged. Since such a torn member would spoil what follows it, a
//! compressed file that already exists when this run first opens its path
//! is rotated away before the first write.
//!
//! # Rotation
//!
//! With `rotate`, before a buffer is written to a file the sink checks the
//! file: when the buffer would take it past `max_bytes` (bytes on disk) or
//! the file is `interval` old, the file is closed and renamed to
//! `<stem>.<UTC time YYYYMMDDTHHMMSSZ>.<6-digit sequence>.<extension>` in
//! the same directory (`app.log` -> `app.20261126T055901Z.000000.log`,
//! `app.log.gz` -> `app.log.20261126T055901Z.000000.gz`); the sequence
//! number counts the rotations within that second, so rotated files sort by
//! name in the order they were written. A file is never rotated empty, so a
//! batch larger than `max_bytes` still goes whole into one file.
//!
//! # Open files
//!
//! Open files are kept in a map keyed by rendered path. A file not written
//! for `idle_timeout` is closed (checked at every batch), and at most
//! `max_open_files` stay open: opening one more closes the least recently
//! used. A file renamed away (log rotation) keeps receiving events until it
//! is closed by one of these rules.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use sluice_core::template::Template;

use crate::encode::{encoding_problems, Encoder, Encoding, Format};

mod writer;

use writer::{Files, Outcome, Settings};

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
    /// Options of the `json` format: `layout` (`nested` or `flat`),
    /// `only_fields` / `except_fields`, `timestamp_format`.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// How many files may be open at once; opening one more closes the least
    /// recently written.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: NonZeroUsize,
    /// Close a file after this long without writes (so that yesterday's file
    /// of a `%Y-%m-%d` path does not stay open).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    /// Start a new file when the current one would grow past a size or has
    /// reached an age; the old one is renamed with a timestamp and a
    /// sequence number.
    #[serde(default)]
    pub rotate: Option<RotateConfig>,
    /// Compress what is written: `none`, `gzip` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
}

/// When to rotate: set one or both.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateConfig {
    /// Rotate before a write would take the file past this size (on disk,
    /// so compressed bytes when compressing). A single batch larger than
    /// this still goes into one file.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// Rotate a file at the first write once it is this old (since it was
    /// created, as the file system records it, else since it was opened).
    #[serde(default)]
    pub interval: Option<Duration>,
}

/// How the written bytes are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// As encoded.
    #[default]
    None,
    /// One gzip member per batch and file.
    Gzip,
    /// One zstd frame per batch and file.
    Zstd,
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
        } else if path.contains('\0') {
            problems.push(Problem::at("path", "a path cannot hold a NUL byte"));
        } else if path[fixed_prefix(path)..]
            .split('/')
            .any(|c| matches!(c, "" | "." | ".."))
        {
            problems.push(Problem::at(
                "path",
                format!(
                    "`{path}` has an empty, `.` or `..` directory after its first placeholder, \
                     so every event would be rejected: write such directories before the placeholders"
                ),
            ));
        }
        problems.extend(encoding_problems(self.format, self.encoding.as_ref()));
        problems.extend(self.idle_timeout.zero_problem("idle_timeout", "30s"));
        if let Some(r) = &self.rotate {
            match (r.max_bytes, r.interval) {
                (None, None) => problems.push(Problem::at(
                    "rotate",
                    "set `max_bytes`, `interval` or both (or leave `rotate` out)",
                )),
                (Some(b), _) if b.0 == 0 => {
                    problems.push(Problem::at("rotate.max_bytes", "must be at least 1 byte"))
                }
                (_, Some(i)) if i.get().is_zero() => {
                    problems.extend(i.zero_problem("rotate.interval", "1h"))
                }
                _ => {}
            }
        }
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let settings = Settings {
            max_open: self.max_open_files.get(),
            idle_timeout: self.idle_timeout.get(),
            rotate_bytes: self.rotate.and_then(|r| r.max_bytes).map(|b| b.0),
            rotate_interval: self.rotate.and_then(|r| r.interval).map(|i| i.get()),
            compression: self.compression,
            durable: cx.durable_input,
        };
        let encoder =
            Encoder::with_encoding(self.format, &self.encoding.clone().unwrap_or_default());
        Ok(Box::new(FileSink::with_settings(
            &cx.id,
            self.path.clone(),
            encoder,
            settings,
        )))
    }
}

/// The events of one batch going to one path, encoded.
#[derive(Debug)]
struct Group {
    path: String,
    buf: Vec<u8>,
    /// The indices in the batch of the events encoded in `buf`, for
    /// rejecting them when the path cannot be written.
    events: Vec<usize>,
}

/// What is known of a batch whose write failed with a transient error: the
/// groups already written (and synced) or refused, so that the retry of the
/// same batch writes only the others and no event lands twice.
#[derive(Debug)]
struct Pending {
    /// Identifies the batch (see [`FileSink::fingerprint`]).
    fingerprint: u64,
    /// One entry per group, in the order `encode` builds them.
    outcomes: Vec<Option<Outcome>>,
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
    /// The writer's options, kept to rebuild `files` after a failed writer task.
    settings: Settings,
    /// Bytes at the start of every rendered path that come from the
    /// template as written (its leading directories without placeholders).
    fixed_prefix: usize,
    /// The last batch, when its write failed with a transient error.
    pending: Option<Pending>,
}

/// Buffers larger than this are not kept for reuse (a burst should not pin
/// memory for the rest of the run).
const MAX_SPARE_CAPACITY: usize = 16 << 20;

impl FileSink {
    /// A sink writing to `template` in `format`, without rotation nor
    /// compression.
    pub fn new(
        id: &str,
        template: Template,
        format: Format,
        max_open: usize,
        idle_timeout: std::time::Duration,
    ) -> Self {
        let settings = Settings {
            max_open,
            idle_timeout,
            rotate_bytes: None,
            rotate_interval: None,
            compression: Compression::None,
            durable: false,
        };
        FileSink::with_settings(id, template, Encoder::new(format), settings)
    }

    fn with_settings(
        id: &str,
        template: Template,
        encoder: Encoder,
        mut settings: Settings,
    ) -> Self {
        settings.max_open = settings.max_open.max(1);
        let fixed_prefix = fixed_prefix(template.as_str());
        FileSink {
            id: id.to_string(),
            cache_by_second: !template.has_fields() && !template.has_subsecond(),
            template,
            encoder,
            files: Some(Files::new(settings.clone())),
            groups: Vec::new(),
            group_index: HashMap::new(),
            spare: Vec::new(),
            scratch: String::new(),
            fixed_prefix,
            settings,
            pending: None,
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
            events: Vec::new(),
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
                    if let Some(why) = invalid_path(&self.scratch, self.fixed_prefix) {
                        rejected.push((
                            i,
                            format!(
                                "the path template `{}` rendered `{}` for this event: {why}",
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
            let group = &mut self.groups[g];
            match self.encoder.encode(event, &mut group.buf) {
                Ok(()) => group.events.push(i),
                Err(e) => rejected.push((i, e)),
            }
        }
        rejected
    }

    /// The outcomes to start this batch's write from: those of the failed
    /// write before, when this is the same batch again, else none.
    fn resume(&mut self, batch: &Batch, groups: &[Group], rejected: usize) -> Vec<Option<Outcome>> {
        match self.pending.take() {
            Some(p)
                if p.outcomes.len() == groups.len()
                    && p.fingerprint == fingerprint(batch, groups, rejected) =>
            {
                p.outcomes
            }
            _ => vec![None; groups.len()],
        }
    }

    /// Returns the group buffers to the spare pool.
    fn recycle(&mut self, groups: Vec<Group>) {
        self.group_index.clear();
        for mut g in groups {
            g.events = Vec::new();
            if g.buf.capacity() <= MAX_SPARE_CAPACITY {
                g.buf.clear();
                self.spare.push(g.buf);
            }
        }
        self.spare.truncate(self.settings.max_open);
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut rejected = self.encode(batch);
        let groups = std::mem::take(&mut self.groups);
        let mut outcomes = self.resume(batch, &groups, rejected.len());
        let mut files = self
            .files
            .take()
            .unwrap_or_else(|| Files::new(self.settings.clone()));
        let joined = tokio::task::spawn_blocking(move || {
            let transient = files.write_groups(&groups, &mut outcomes);
            (files, groups, outcomes, transient)
        })
        .await;
        let (files, groups, outcomes, transient) = match joined {
            Ok(r) => r,
            Err(e) => {
                // What the task wrote before it failed is unknown: the
                // retry writes the whole batch (at-least-once).
                self.group_index.clear();
                self.pending = None;
                return Err(SinkError::Retry(format!(
                    "sink `{}`: the file writer task failed: {e}",
                    self.id
                )));
            }
        };
        self.files = Some(files);
        if let Some(e) = transient {
            let written = outcomes.iter().filter(|o| o.is_some()).count();
            let total = outcomes.len();
            self.pending = Some(Pending {
                fingerprint: fingerprint(batch, &groups, rejected.len()),
                outcomes,
            });
            self.recycle(groups);
            return Err(SinkError::Retry(format!(
                "{e} ({written} of {total} files of this batch done; the retry writes only the others)"
            )));
        }
        for (g, outcome) in groups.iter().zip(&outcomes) {
            if let Some(Outcome::Refused(why)) = outcome {
                rejected.extend(g.events.iter().map(|&i| (i, why.clone())));
            }
        }
        self.recycle(groups);
        if rejected.is_empty() {
            Ok(())
        } else {
            rejected.sort_by_key(|(i, _)| *i);
            Err(SinkError::Rejected(rejected))
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        // Every write already reached the OS, each as complete compressed
        // members or frames; closing is all that is left.
        if let Some(files) = self.files.as_mut() {
            files.open.clear();
        }
        Ok(())
    }
}

/// Identifies a batch between a failed write and its retry: the runtime
/// retries the very same batch (same allocation, same events), so its
/// address, its length and a hash of what it encodes to must all match. A
/// different batch matching all three would have to be byte for byte the
/// same, sit at the same address, and come right after a failure.
fn fingerprint(batch: &Batch, groups: &[Group], rejected: usize) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (batch.events.as_ptr() as usize).hash(&mut h);
    batch.len().hash(&mut h);
    rejected.hash(&mut h);
    for g in groups {
        g.path.hash(&mut h);
        g.buf.hash(&mut h);
        g.events.hash(&mut h);
    }
    h.finish()
}

/// The length of the part of `template` before its first placeholder, cut
/// back to the last `/`: the directories every rendered path starts with,
/// exactly as written (`./out/` of `./out/{app}/%Y.log`).
fn fixed_prefix(template: &str) -> usize {
    let first = template.find(['{', '%']).unwrap_or(template.len());
    template[..first].rfind('/').map_or(0, |i| i + 1)
}

/// Why a rendered path cannot be used, if it cannot: it is empty or ends in
/// `/` (names no file), holds a NUL byte, or, after the template's fixed
/// leading directories, has an empty, `.` or `..` component (a missing
/// field between two `/`, or values that together climb out of the
/// template's directory). Length limits are left to the file system
/// (`ENAMETOOLONG` rejects the events too).
fn invalid_path(path: &str, fixed_prefix: usize) -> Option<&'static str> {
    if path.is_empty() || path.ends_with('/') {
        return Some("that names no file (a field it uses is missing?)");
    }
    if path.contains('\0') {
        return Some("a path cannot hold a NUL byte");
    }
    let rest = path.get(fixed_prefix..).unwrap_or(path);
    for component in rest.split('/') {
        match component {
            "" => return Some("an empty directory name (a field it uses is missing?)"),
            "." | ".." => {
                return Some("a `.` or `..` directory made of field values is not allowed")
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
