//! The `file` sink's blocking side: the open files, compression, rotation
//! and syncing. It runs on tokio's blocking threads; [`Files`] moves into
//! `spawn_blocking` for each batch and back.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::{Compression, Group};

/// What became of one group (one file's share of a batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Written (and synced when the input is durable): never written again
    /// for this batch.
    Written,
    /// Failed for good: its events are rejected with this reason.
    Refused(String),
}

/// Why a group could not be written.
#[derive(Debug)]
pub(super) enum Failure {
    /// No retry can fix it (see [`permanent`]).
    Permanent(String),
    /// Worth retrying after a back-off.
    Transient(String),
}

impl Failure {
    /// The failure to `what` (`open`, `write to`...) `path`, classified.
    fn of(what: &str, path: &str, e: std::io::Error) -> Failure {
        if permanent(&e) {
            Failure::Permanent(format!(
                "cannot {what} `{path}`: {e} (the path rendered for this event cannot be written; retrying would not help)"
            ))
        } else {
            Failure::Transient(format!("cannot {what} `{path}`: {e}"))
        }
    }
}

/// Whether an I/O error is one that no retry can fix, because it is about
/// the path or the data rather than the state of the machine: a name or
/// path too long (`ENAMETOOLONG`), a name the file system refuses
/// (`EINVAL`, `EILSEQ`), a path naming a directory (`EISDIR`) or going
/// through a regular file (`ENOTDIR`), a file at the file system's size
/// limit (`EFBIG`). Everything else (`ENOSPC`, `EDQUOT`, `EIO`, `EACCES`,
/// `EPERM`, `EROFS`, `EMFILE`...) may clear up (space freed, permissions
/// fixed, a disk remounted) and is retried.
pub(super) fn permanent(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENAMETOOLONG
                | libc::EINVAL
                | libc::EILSEQ
                | libc::EISDIR
                | libc::ENOTDIR
                | libc::EFBIG
        )
    )
}

/// Cuts `file` back to `len` after a failed write or sync, logging when
/// that fails too.
fn cut_back(file: &File, len: u64, path: &str) {
    if file.metadata().is_ok_and(|m| m.len() <= len) {
        // Nothing of it landed (or not a regular file, as `/dev/full`).
        return;
    }
    if let Err(undo) = file.set_len(len) {
        tracing::warn!(path, error = %undo, "cannot cut a failed write back");
    }
}

/// What the writer needs from the config.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) max_open: usize,
    pub(super) idle_timeout: std::time::Duration,
    /// Rotate a file before a write would take it past this size.
    pub(super) rotate_bytes: Option<u64>,
    /// Rotate a file older than this before writing to it.
    pub(super) rotate_interval: Option<std::time::Duration>,
    pub(super) compression: Compression,
    /// `sync_data` every file written before a write returns.
    pub(super) durable: bool,
}

/// An open file and what rotation needs to know about it.
#[derive(Debug)]
pub(super) struct OpenFile {
    file: File,
    last_used: Instant,
    /// Its size on disk (compressed bytes when compressing).
    size: u64,
    /// When it was created (as far as the file system tells; else when
    /// opened), for `rotate.interval`.
    born: SystemTime,
}

/// The open files and the writer's reusable state.
#[derive(Debug)]
pub(super) struct Files {
    pub(super) open: HashMap<String, OpenFile>,
    settings: Settings,
    /// Paths opened by this run: a compressed file that existed before is
    /// rotated away at its first open, since a crash may have left a torn
    /// last member or frame in it.
    seen: HashSet<String>,
    /// The compressed form of the group being written.
    compressed: Vec<u8>,
    /// The timestamp of the last rotated name and the next sequence number
    /// for that timestamp.
    stamp: (String, u32),
}

impl Files {
    pub(super) fn new(settings: Settings) -> Self {
        Files {
            open: HashMap::new(),
            settings,
            seen: HashSet::new(),
            compressed: Vec::new(),
            stamp: (String::new(), 0),
        }
    }

    /// Writes each group not yet settled in `outcomes` (one entry per
    /// group) with one `write_all` (compressed into one gzip member or zstd
    /// frame when compressing), rotating first when due, and syncing when the
    /// input is durable. A group written (and synced) becomes
    /// [`Outcome::Written`]; one that failed for good becomes
    /// [`Outcome::Refused`] and its file is left as it was. A transient
    /// failure leaves the group unsettled, the file cut back to its size
    /// before the write, and the other groups are still tried. Returns the
    /// first transient error, if any.
    pub(super) fn write_groups(
        &mut self,
        groups: &[Group],
        outcomes: &mut [Option<Outcome>],
    ) -> Option<String> {
        let now = Instant::now();
        let idle = self.settings.idle_timeout;
        self.open
            .retain(|_, f| now.duration_since(f.last_used) < idle);
        let mut first_transient = None;
        for (g, outcome) in groups.iter().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            if g.buf.is_empty() {
                *outcome = Some(Outcome::Written);
                continue;
            }
            let mut compressed = std::mem::take(&mut self.compressed);
            let result = self.write_group(g, &mut compressed, now);
            compressed.clear();
            self.compressed = compressed;
            match result {
                Ok(()) => *outcome = Some(Outcome::Written),
                Err(Failure::Permanent(why)) => *outcome = Some(Outcome::Refused(why)),
                Err(Failure::Transient(why)) => {
                    first_transient.get_or_insert(why);
                }
            }
        }
        first_transient
    }

    fn write_group(
        &mut self,
        g: &Group,
        compressed: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), Failure> {
        let data: &[u8] = match self.settings.compression {
            Compression::None => &g.buf,
            c => {
                compress(c, &g.buf, compressed).map_err(|e| {
                    Failure::Transient(format!("cannot compress for `{}`: {e}", g.path))
                })?;
                compressed
            }
        };
        let fail = |what: &str, e: std::io::Error| Failure::of(what, &g.path, e);
        let settings = self.settings.clone();
        let due = {
            let file = self.get(&g.path, now)?;
            due(&settings, file, data.len() as u64)
        };
        if due {
            self.rotate(&g.path).map_err(|e| fail("rotate", e))?;
        }
        let file = self.get(&g.path, now)?;
        let before = file.size;
        if let Err(e) = file.file.write_all(data) {
            // Take back what part of it was written, so that the file holds
            // whole lines (and whole compressed members) and a retry does
            // not append the same events twice; then reopen next time: the
            // handle may be what is broken.
            cut_back(&file.file, before, &g.path);
            self.open.remove(&g.path);
            return Err(fail("write to", e));
        }
        file.size += data.len() as u64;
        if settings.durable {
            if let Err(e) = file.file.sync_data() {
                // Whether the bytes reached the disk is unknown: take them
                // back, so that the retry writes them once.
                cut_back(&file.file, before, &g.path);
                self.open.remove(&g.path);
                return Err(fail("sync", e));
            }
        }
        Ok(())
    }

    /// Closes `path` and renames it to its rotated name (see the module
    /// docs); the next write creates a new file at `path`.
    fn rotate(&mut self, path: &str) -> std::io::Result<()> {
        self.open.remove(path);
        let path = Path::new(path);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        if stamp != self.stamp.0 {
            self.stamp = (stamp, 0);
        }
        let target = loop {
            let candidate = rotated_name(path, &self.stamp.0, self.stamp.1);
            self.stamp.1 += 1;
            if !candidate.exists() {
                break candidate;
            }
        };
        std::fs::rename(path, &target)?;
        if self.settings.durable {
            sync_dir(path)?;
        }
        Ok(())
    }

    /// The open file for `path`, opened (and its directory created) if needed.
    fn get(&mut self, path: &str, now: Instant) -> Result<&mut OpenFile, Failure> {
        if !self.open.contains_key(path) {
            while self.open.len() >= self.settings.max_open {
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
            let file = self
                .open_new(path)
                .map_err(|e| Failure::of("open", path, e))?;
            self.open.insert(path.to_string(), file);
        }
        let f = self
            .open
            .get_mut(path)
            .ok_or_else(|| Failure::Transient(format!("`{path}` was not opened")))?;
        f.last_used = now;
        Ok(f)
    }

    fn open_new(&mut self, path: &str) -> std::io::Result<OpenFile> {
        let first_time = self.seen.insert(path.to_string());
        let existed = self.settings.durable && Path::new(path).exists();
        let mut file = open_append(Path::new(path))?;
        if self.settings.durable && !existed {
            // The new directory entry must survive a crash as well.
            sync_dir(Path::new(path))?;
        }
        let mut meta = file.metadata()?;
        if first_time && meta.len() > 0 && self.settings.compression != Compression::None {
            drop(file);
            self.rotate(path)?;
            file = open_append(Path::new(path))?;
            meta = file.metadata()?;
        }
        if first_time && meta.len() > 0 && self.settings.compression == Compression::None {
            let kept = whole_lines_len(&file, meta.len())?;
            if kept < meta.len() {
                // A crash cut the last write short: that batch was not
                // acknowledged and comes again, so drop its torn line
                // instead of gluing the next line onto it.
                file.set_len(kept)?;
                tracing::warn!(
                    path,
                    cut = meta.len() - kept,
                    "cut a torn last line left by a crash"
                );
                meta = file.metadata()?;
            }
        }
        let born = if meta.len() == 0 {
            SystemTime::now()
        } else {
            meta.created().unwrap_or_else(|_| SystemTime::now())
        };
        Ok(OpenFile {
            file,
            last_used: Instant::now(),
            size: meta.len(),
            born,
        })
    }
}

/// The length of `file` up to and including its last newline (`len` when
/// it ends with one, 0 when it has none).
fn whole_lines_len(file: &File, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Whether the open file must be rotated before `more` bytes go in.
fn due(settings: &Settings, file: &OpenFile, more: u64) -> bool {
    if file.size == 0 {
        return false;
    }
    let too_big = settings
        .rotate_bytes
        .is_some_and(|max| file.size.saturating_add(more) > max);
    let too_old = settings.rotate_interval.is_some_and(|age| {
        SystemTime::now()
            .duration_since(file.born)
            .is_ok_and(|a| a >= age)
    });
    too_big || too_old
}

/// `dir/name.ext` -> `dir/name.<stamp>.<seq>.ext` (six-digit sequence
/// number; without an extension, appended at the end).
pub(super) fn rotated_name(path: &Path, stamp: &str, seq: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rotated = match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}.{stamp}.{seq:06}{}", &name[..dot], &name[dot..]),
        _ => format!("{name}.{stamp}.{seq:06}"),
    };
    path.with_file_name(rotated)
}

/// Appends `data` compressed as one complete gzip member or zstd frame to `out`.
fn compress(c: Compression, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    match c {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            let mut enc =
                flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::default());
            enc.write_all(data)?;
            *out = enc.finish()?;
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(std::mem::take(out), 3)?;
            enc.write_all(data)?;
            *out = enc.finish()?;
        }
    }
    Ok(())
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Opens `path` for appending, creating it and its parent directories.
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).read(true).append(true);
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
