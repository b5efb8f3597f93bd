//! The `file` source: lines of the files matched by globs.
//!
//! # How it reads
//!
//! Every matched file is read in turn, one chunk (up to 256 KiB) at a time,
//! with a positional read on a blocking thread (`spawn_blocking`): the
//! overhead is per chunk, never per line. Lines are framed by `sluice_core::framing`:
//! each body is a zero-copy slice of the chunk, a trailing `\r` is stripped,
//! and a partial last line waits for its newline (while following, at most
//! `partial_line_timeout` when set). Every event gets the field `file` (the
//! path); one string per file is shared by all its events. With `multiline`
//! set, lines go through [`multiline`] before they become events.
//!
//! With `follow: true` the source reads until every file is caught up, then
//! waits `poll_interval`, looks for new data and rescans the globs (at most
//! once per `poll_interval`). A file that appears after start-up is read from
//! its beginning.
//!
//! # Identity and rotation
//!
//! A file is known by its device and inode, plus a [`Fingerprint`] of its
//! first bytes (up to 1 KiB). A file renamed to another matched path keeps
//! being read where it was. A file that is removed, or whose path now names
//! another file (rename rotation), stays open and is read until it has not
//! grown for `rotate_wait`, then dropped (its final line without a newline is
//! emitted then); the new file is read from 0. A file whose size falls below
//! the read position, or whose first bytes changed (copytruncate, then new
//! lines written past the old position before the next look), was truncated
//! and is read again from 0.
//!
//! With `follow: false` every file matched at start-up is read to its end
//! (a final line without a newline is emitted), and the source returns.
//!
//! # Offsets
//!
//! The checkpoint store holds, per path, the file's device, inode,
//! fingerprint and the byte offset just after the last line accepted by the
//! channels (or skipped as over-long); while a multiline event is being
//! assembled, the offset where it starts. It is saved after an emitted batch
//! at most once a second, whenever the source is caught up, at the end of a
//! bounded run and always at shutdown; a crash therefore re-reads at most
//! about one second of lines (at-least-once), and a graceful restart neither
//! re-reads nor skips a line. On start-up a file with a checkpoint resumes
//! from it, unless its inode or its first bytes changed or it is now shorter
//! than the offset: then it starts at 0. A checkpoint written before
//! fingerprints existed loads as well (then only the inode is compared).
//! `read_from` applies only to files without a checkpoint.
//!
//! ```yaml
//! sources:
//!   app:
//!     type: file
//!     include: ["/var/log/app/*.log"]
//!     exclude: ["/var/log/app/debug-*.log"]
//!     read_from: beginning
//!     multiline:
//!       start_pattern: '^\d{4}-\d{2}-\d{2}'
//!     channels: [main]
//! ```

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_core::prelude::*;

mod fs;
mod multiline;
mod reader;

use fs::Fingerprint;
use multiline::Rule;
use reader::Reader;

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
    /// When following: how long a file that was rotated away (renamed or
    /// removed) is still read after it last grew, for lines its writer adds
    /// before reopening the path.
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: Duration,
    /// When following: emit a last line that has no newline once nothing was
    /// added to it for this long. Unset: it waits for its newline.
    #[serde(default)]
    pub partial_line_timeout: Option<Duration>,
    /// The longest line kept; longer lines are counted as errors, reported
    /// and skipped.
    #[serde(default = "sluice_core::defaults::max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// Join several lines into one event (stack traces).
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Events per batch at most.
    #[serde(default = "sluice_core::defaults::batch_size")]
    pub batch_size: NonZeroUsize,
}

/// How lines are joined into events: set exactly one of the two patterns.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regular expression starts a new event; any
    /// other line continues the current one.
    #[serde(default)]
    pub start_pattern: Option<String>,
    /// A line matching this regular expression continues the current event;
    /// any other line starts a new one.
    #[serde(default)]
    pub continuation_pattern: Option<String>,
    /// The most lines in one event; the next line starts a new one.
    #[serde(default = "default_max_lines")]
    pub max_lines: NonZeroUsize,
    /// The largest event (the lines and the `\n`s joining them); a line
    /// that would take it further starts a new one.
    #[serde(default = "default_multiline_max_bytes")]
    pub max_bytes: ByteSize,
    /// When following: an event that got no line for this long is complete.
    #[serde(default = "default_multiline_timeout")]
    pub timeout: Duration,
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

fn default_rotate_wait() -> Duration {
    Duration(std::time::Duration::from_secs(5))
}

fn default_max_lines() -> NonZeroUsize {
    NonZeroUsize::new(500).unwrap_or(NonZeroUsize::MIN)
}

fn default_multiline_max_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_multiline_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(1))
}

/// Bytes read per chunk at most.
const CHUNK: u64 = 256 << 10;

/// Offsets are saved at most this often while reading (and when caught up).
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl MultilineConfig {
    /// The pattern and whether a match starts an event; an error message
    /// when not exactly one pattern is set or it does not compile.
    fn pattern(&self) -> Result<(regex::bytes::Regex, bool), Problem> {
        let (key, pattern, starts) = match (&self.start_pattern, &self.continuation_pattern) {
            (Some(p), None) => ("multiline.start_pattern", p, true),
            (None, Some(p)) => ("multiline.continuation_pattern", p, false),
            _ => {
                return Err(Problem::at(
                    "multiline",
                    "set exactly one of `start_pattern` and `continuation_pattern`",
                ))
            }
        };
        regex::bytes::Regex::new(pattern)
            .map(|re| (re, starts))
            .map_err(|e| Problem::at(key, format!("invalid regular expression: {e}")))
    }

    fn rule(&self) -> Result<Rule, Problem> {
        let (pattern, starts) = self.pattern()?;
        Ok(Rule::new(
            pattern,
            starts,
            self.max_lines.get(),
            usize::try_from(self.max_bytes.0).unwrap_or(usize::MAX),
            self.timeout.get(),
        ))
    }
}

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
        problems.extend(self.poll_interval.zero_problem("poll_interval", "250ms"));
        if self.partial_line_timeout.is_some_and(|t| t.get().is_zero()) {
            problems.push(Problem::at(
                "partial_line_timeout",
                "must be longer than 0 (leave it out to wait for the newline)",
            ));
        }
        if self.max_line_bytes.0 == 0 {
            problems.push(Problem::at("max_line_bytes", "must be at least 1 byte"));
        }
        if let Some(m) = &self.multiline {
            if let Err(p) = m.pattern() {
                problems.push(p);
            }
            if m.max_bytes.0 == 0 {
                problems.push(Problem::at(
                    "multiline.max_bytes",
                    "must be at least 1 byte",
                ));
            }
            problems.extend(m.timeout.zero_problem("multiline.timeout", "1s"));
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
        let multiline = match &self.multiline {
            Some(m) => Some(m.rule().map_err(|p| BuildError::Other(p.message))?),
            None => None,
        };
        Ok(Box::new(FileSource {
            config: self.clone(),
            exclude,
            multiline,
        }))
    }
}

/// The running `file` source.
pub struct FileSource {
    config: Config,
    exclude: Vec<glob::Pattern>,
    multiline: Option<Rule>,
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
    /// Just after the last line accepted (or where the multiline event
    /// being assembled starts).
    offset: u64,
    /// The file's first bytes; absent in checkpoints of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<Fingerprint>,
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
            batch: Batch::with_capacity(self.config.batch_size.get()),
            files: Vec::new(),
            dirty: false,
            last_save: Instant::now(),
            warned: HashSet::new(),
            config: self.config,
            exclude: self.exclude,
            multiline: self.multiline,
        };
        reader.rescan(Some(&saved.files)).await?;
        reader.report_behind(&cx);
        if !reader.config.follow {
            let left = reader.bytes_left();
            cx.metrics.set_progress_total(left, true);
            if left == 0 && !reader.files.is_empty() && !saved.files.is_empty() {
                // A bounded re-run over files an earlier run finished: say
                // why nothing comes out.
                tracing::warn!(
                    checkpoint = %cx.checkpoints.path().display(),
                    "nothing to read: every matched file was read to its end by an earlier run \
                     (its offsets are saved in the checkpoint); run `sluice run --from-start` \
                     to read them again"
                );
            }
        }
        let result = reader.run(&mut cx).await;
        reader.report_behind(&cx);
        // Whatever happened, record what was accepted.
        let saved = reader.save(&cx.checkpoints).await;
        result.and(saved)
    }
}

fn join_error(e: tokio::task::JoinError) -> ComponentError {
    ComponentError::Other(format!("a blocking file operation failed: {e}"))
}

#[cfg(test)]
mod tests;
