//! The `disk` channel: a durable, segmented write-ahead log.
//!
//! * A put encodes its batch ([`codec`]) into one record and appends it to
//!   the active segment: itself when the writer is free and the append is
//!   quick, else through the channel's writer thread ([`writer`]), where
//!   several puts waiting at once share one `write` and one sync. Put
//!   returns once the record is in the file, synced per the `sync` policy.
//! * Records are also kept in memory for readers while a small cache
//!   (`cache_bytes`) has room, so a reader that keeps up never reads the
//!   disk; others are read back from their segment off the executor
//!   ([`tokio::task::spawn_blocking`]) and decoded with bodies sliced out of
//!   the read buffer.
//! * A take hands out whole records (split only to honour `max`). A commit
//!   appends `record, first event, end event` entries to the commit log; a
//!   rollback puts the events back at the front. After a crash, whatever no
//!   commit entry covers is delivered again: taken but uncommitted events
//!   included.
//! * A segment whose records are all committed is deleted; the commit log is
//!   compacted at start-up and when it grows.
//! * `max_bytes` bounds the bytes of records not fully committed: writers
//!   wait (or drop, with `when_full: drop_newest`) while it is reached.
//!
//! Start-up ([`recover`]) rebuilds the pending records from the files,
//! skipping torn and corrupt records with a log line naming the segment and
//! offset. The file format is described in [`log`].
//!
//! A directory holds one channel at a time: a lock keeps other processes
//! out, and [`claim`] other channels of this process. On a full disk the
//! writer waits for room (see [`writer`]) and [`Channel::degraded`] says so.

mod claim;
mod codec;
pub mod log;
pub mod recover;
mod state;
mod writer;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;
use tokio::sync::{oneshot, Notify};

use crate::memory::WhenFull;
use state::{Shared, Unit};
use writer::{Cmd, Writer};

pub use claim::shared_directories;
pub use recover::{inspect, repair, Summary};

/// When the channel calls `fdatasync` on what it wrote.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// After every group of puts, before they return: survives power loss.
    Always,
    /// At most `sync_interval` after a write: a power loss may lose the
    /// last interval; a process crash loses nothing.
    #[default]
    Interval,
    /// Never: the OS writes back when it likes.
    Never,
}

/// Options of the `disk` channel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Directory of the channel's files; default `<data_dir>/channels/<id>`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Bytes of records not yet fully committed, at most.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Events not yet committed, at most (no bound when absent).
    #[serde(default)]
    pub capacity: Option<u64>,
    /// A segment is closed and a new one started past this size.
    #[serde(default = "default_max_segment_bytes")]
    pub max_segment_bytes: ByteSize,
    /// `always`, `interval` (default) or `never`.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// How often `sync: interval` syncs.
    #[serde(default = "default_sync_interval")]
    pub sync_interval: Duration,
    /// What to do when full: `block` (default) or `drop_newest`.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Bytes of recent records also kept in memory for readers.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: ByteSize,
}

fn default_max_bytes() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_max_segment_bytes() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_sync_interval() -> Duration {
    Duration(std::time::Duration::from_secs(1))
}
fn default_cache_bytes() -> ByteSize {
    ByteSize(8 << 20)
}

impl ChannelConfig for DiskConfig {
    /// The channel's directory, which one channel at a time may use.
    fn resources(&self, cx: &BuildContext) -> Vec<Resource> {
        vec![Resource::path(self.path.as_ref().unwrap_or(&cx.data_dir))]
    }
    fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.max_bytes.0 == 0 {
            p.push(Problem::at("max_bytes", "must be greater than 0"));
        }
        if self.capacity == Some(0) {
            p.push(Problem::at("capacity", "must be greater than 0"));
        }
        if self.max_segment_bytes.0 < 4096 {
            p.push(Problem::at("max_segment_bytes", "must be at least 4KiB"));
        }
        if self.sync == SyncPolicy::Interval && self.sync_interval.get().is_zero() {
            p.push(Problem::at(
                "sync_interval",
                "must be greater than 0 (or use `sync: always`)",
            ));
        }
        p
    }

    fn build(&self, cx: &BuildContext) -> Result<Arc<dyn Channel>, BuildError> {
        Ok(Arc::new(DiskChannel::open(self, &cx.data_dir)?))
    }
}

struct Core {
    shared: Arc<Shared>,
    /// To the writer thread; `None` once the channel is dropped.
    tx: Mutex<Option<mpsc::Sender<Cmd>>>,
    /// The writer, shared with its thread: a put or commit that finds it
    /// free runs it itself ([`Writer::inline`]).
    writer: Arc<Mutex<Writer>>,
    inline: bool,
    /// Joined on drop, so that the last commit entries are written and
    /// synced before the process exits.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
    /// `dir` resolved: its key in the table of [`claim`].
    key: PathBuf,
    /// Set once retired (see [`Core::retire`]): nothing is written any more.
    retired: std::sync::atomic::AtomicBool,
    max_bytes: u64,
    /// Events not yet committed, at most (`u64::MAX`: no bound).
    capacity: u64,
    when_full: WhenFull,
    /// Released once the writer thread ended.
    lock: Mutex<Option<log::DirLock>>,
}

impl Core {
    /// Runs `cmd` on this thread when the writer is free and may run
    /// inline, else sends it to the writer thread.
    fn submit(&self, cmd: Cmd) -> Result<(), ChannelError> {
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Err(gone());
        }
        if self.inline {
            let free = match self.writer.try_lock() {
                Ok(w) => Some(w),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut w) = free.filter(|w| w.quick(&cmd)) {
                w.handle_inline(cmd);
                let full = w.is_full();
                drop(w);
                if full {
                    // The thread tries again; it may be asleep.
                    let _ = self.send(Cmd::Wake);
                }
                return Ok(());
            }
        }
        self.send(cmd)
    }

    fn send(&self, cmd: Cmd) -> Result<(), ChannelError> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref()
            .and_then(|tx| tx.send(cmd).ok())
            .ok_or_else(gone)
    }

    /// Whether a new channel on the same directory may take it over: this
    /// one is closed and nothing taken from it waits for a commit.
    fn retirable(&self) -> bool {
        let st = self.shared.lock();
        st.closed && st.in_flight == 0
    }

    /// Stops writing for good: the writer thread writes what it was given
    /// and syncs, the lock is released, and the channel hands out nothing
    /// more (what it still held is on disk, for whoever opens the directory
    /// next). Runs on drop, or earlier when a new channel takes the
    /// directory over ([`claim`]).
    fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        {
            let mut st = self.shared.lock();
            st.closed = true;
            st.units.clear();
            st.queued = 0;
            st.cached_bytes = 0;
        }
        self.shared.readers.notify_waiters();
        self.shared.writers.notify_waiters();
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
        claim::release(&self.key, self);
    }

    /// Commits taken parts: they leave the channel at once (room is freed,
    /// readers and writers are woken); the writer thread then appends their
    /// commit entries and deletes the segments they finished. The returned
    /// receiver is told once the entries are written to the OS.
    fn commit(&self, parts: Vec<(u64, u32, u32)>) -> Result<oneshot::Receiver<()>, ChannelError> {
        let mut delete = Vec::new();
        {
            let mut st = self.shared.lock();
            for &(rid, s, e) in &parts {
                let n = e.saturating_sub(s);
                st.in_flight = st.in_flight.saturating_sub(u64::from(n));
                st.used_events = st.used_events.saturating_sub(u64::from(n));
                st.committed_events += u64::from(n);
                if let Some(p) = st.commit_events(rid, n) {
                    delete.push(p);
                }
            }
        }
        self.shared.writers.notify_waiters();
        self.shared.readers.notify_waiters();
        let (reply, rx) = oneshot::channel();
        self.submit(Cmd::Commit {
            parts,
            delete,
            reply: Some(reply),
        })?;
        Ok(rx)
    }

    /// Puts taken parts back at the front, with their events when given.
    fn requeue(&self, parts: &[(u64, u32, u32)], batch: Option<Batch>) {
        let total: usize = parts.iter().map(|(_, s, e)| (e - s) as usize).sum();
        let mut batch = batch.filter(|b| b.len() == total);
        let mut units = Vec::with_capacity(parts.len());
        for &(rid, start, end) in parts {
            let cached = batch.as_mut().map(|b| {
                let rest = b.events.split_off((end - start) as usize);
                Batch::from(std::mem::replace(&mut b.events, rest))
            });
            let cached_bytes = cached.as_ref().map_or(0, state::cache_cost);
            units.push(Unit {
                rid,
                start,
                end,
                cached,
                cached_bytes,
            });
        }
        let mut st = self.shared.lock();
        for u in units.into_iter().rev() {
            st.cached_bytes += u.cached_bytes;
            st.units.push_front(u);
        }
        st.in_flight = st.in_flight.saturating_sub(total as u64);
        st.queued += total as u64;
        drop(st);
        self.shared.readers.notify_waiters();
    }
}

fn gone() -> ChannelError {
    ChannelError::Broken("disk channel: the writer thread is gone".into())
}

impl Drop for Core {
    fn drop(&mut self) {
        self.retire();
    }
}

/// A disk channel. See the module docs.
pub struct DiskChannel {
    core: Arc<Core>,
}

impl DiskChannel {
    /// Opens (or creates) the channel in `config.path`, else in `default_dir`,
    /// recovering what a previous run left there, and starts its writer thread.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or read, or is in use by
    /// another process or another disk channel of this one. Every error
    /// names the file or directory at fault.
    pub fn open(config: &DiskConfig, default_dir: &std::path::Path) -> std::io::Result<Self> {
        let dir = config
            .path
            .clone()
            .unwrap_or_else(|| default_dir.to_path_buf());
        std::fs::create_dir_all(&dir).map_err(log::at("create the directory", &dir))?;
        let claim = claim::claim(&dir)?;
        let mut recovered = recover::open(&dir)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(std::mem::take(&mut recovered.state)),
            readers: Notify::new(),
            writers: Notify::new(),
            cache_budget: config.cache_bytes.0 as usize,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Arc::new(Mutex::new(Writer::new(
            dir.clone(),
            shared.clone(),
            config,
            &recovered,
        )));
        let thread_writer = writer.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-disk-writer".into())
            .spawn(move || Writer::run(&thread_writer, &rx))
            .map_err(log::at("start the writer thread of", &dir))?;
        let core = Arc::new(Core {
            shared,
            tx: Mutex::new(Some(tx)),
            writer,
            inline: Writer::inline(config.sync),
            thread: Mutex::new(Some(thread)),
            dir,
            key: claim.key.clone(),
            retired: std::sync::atomic::AtomicBool::new(false),
            lock: Mutex::new(Some(recovered.lock)),
            max_bytes: config.max_bytes.0,
            capacity: config.capacity.unwrap_or(u64::MAX),
            when_full: config.when_full,
        });
        claim.open(&core);
        Ok(DiskChannel { core })
    }

    /// The channel's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.core.dir
    }

    /// Waits until everything accepted and committed so far is written and
    /// synced, whatever the sync policy.
    ///
    /// # Errors
    ///
    /// When the writer thread is gone.
    pub async fn sync(&self) -> Result<(), ChannelError> {
        let (reply, rx) = oneshot::channel();
        self.core.send(Cmd::Sync { reply })?;
        rx.await.map_err(|_| gone())
    }

    /// Lets go of the directory as the end of the process would, whatever
    /// still holds the channel (a transaction leaked to play a crash): the
    /// writer finishes what it was given, nothing more is written.
    #[cfg(test)]
    pub(crate) fn crash(&self) {
        self.core.retire();
    }

    /// Records found damaged since the channel opened (skipped).
    pub fn corrupt_records(&self) -> u64 {
        self.core.shared.lock().corrupt_records
    }
}

/// A part of a take: events `start..end` of record `rid`, and where the
/// record is when it must be read from disk.
struct ToRead {
    index: usize,
    path: PathBuf,
    offset: u64,
    len: u64,
    events: u32,
    start: u32,
    end: u32,
}

/// Reads and decodes records from their segments (blocking).
fn read_parts(reads: Vec<ToRead>) -> Vec<(usize, Result<Batch, String>)> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::with_capacity(reads.len());
    let mut open: Option<(PathBuf, std::fs::File)> = None;
    for r in reads {
        let result = (|| {
            if open.as_ref().is_none_or(|(p, _)| *p != r.path) {
                let f = std::fs::File::open(&r.path).map_err(|e| e.to_string())?;
                open = Some((r.path.clone(), f));
            }
            let Some((_, f)) = open.as_ref() else {
                return Err("no file".to_string());
            };
            let mut buf = vec![0u8; r.len as usize];
            f.read_exact_at(&mut buf, r.offset)
                .map_err(|e| e.to_string())?;
            let header = log::Header::decode(&buf).ok_or("bad record header")?;
            let payload = Bytes::from(buf).slice(log::HEADER_LEN..);
            if crc32fast::hash(&payload) != header.crc || header.events != r.events {
                return Err("payload checksum mismatch".to_string());
            }
            codec::decode(&payload, r.events, r.start..r.end).map_err(|e| e.to_string())
        })();
        out.push((r.index, result));
    }
    out
}

/// Puts taken parts back if a take is cancelled before it hands them out.
struct TakeGuard<'a> {
    core: &'a Core,
    parts: Option<Vec<(u64, u32, u32)>>,
}

impl Drop for TakeGuard<'_> {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            self.core.requeue(&parts, None);
        }
    }
}

#[async_trait]
impl Channel for DiskChannel {
    async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
        if batch.is_empty() {
            return Ok(());
        }
        let core = &self.core;
        let mut payload = Vec::with_capacity(codec::encoded_len_hint(&batch.events));
        codec::encode(&batch.events, &mut payload);
        let len = (log::HEADER_LEN + payload.len()) as u64;
        let n = batch.len() as u64;
        loop {
            let notified = core.shared.writers.notified();
            tokio::pin!(notified);
            {
                let mut st = core.shared.lock();
                if st.closed {
                    return Err(ChannelError::Closed(batch));
                }
                // A record larger than the whole bound passes alone.
                let bytes_fit = st.used_bytes + len <= core.max_bytes || st.used_bytes == 0;
                let events_fit = st.used_events + n <= core.capacity || st.used_events == 0;
                if bytes_fit && events_fit {
                    st.used_bytes += len;
                    st.used_events += n;
                    break;
                }
                if core.when_full == WhenFull::DropNewest {
                    st.discarded_events += batch.len() as u64;
                    return Ok(());
                }
                notified.as_mut().enable();
            }
            notified.await;
        }
        let (reply, rx) = oneshot::channel();
        let events = batch.len() as u32;
        if let Err(e) = core.submit(Cmd::Append {
            payload,
            events,
            batch,
            reply,
        }) {
            let mut st = core.shared.lock();
            st.used_bytes = st.used_bytes.saturating_sub(len);
            st.used_events = st.used_events.saturating_sub(n);
            return Err(e);
        }
        match rx.await {
            Ok(r) => r.map_err(ChannelError::Io),
            Err(_) => Err(gone()),
        }
    }

    async fn take(&self, max: usize) -> Result<Option<Transaction>, ChannelError> {
        let core = &self.core;
        let max = max.max(1);
        loop {
            let notified = core.shared.readers.notified();
            tokio::pin!(notified);
            let mut taken: Vec<Unit> = Vec::new();
            let mut reads = Vec::new();
            {
                let mut st = core.shared.lock();
                let mut n = 0;
                while n < max {
                    let Some(mut u) = st.units.pop_front() else {
                        break;
                    };
                    let room = max - n;
                    if u.len() > room {
                        let split = u.start + room as u32;
                        let rest_cached = u
                            .cached
                            .as_mut()
                            .map(|b| Batch::from(b.events.split_off(room)));
                        let rest_bytes = rest_cached
                            .as_ref()
                            .map_or(0, state::cache_cost)
                            .min(u.cached_bytes);
                        st.units.push_front(Unit {
                            rid: u.rid,
                            start: split,
                            end: u.end,
                            cached: rest_cached,
                            cached_bytes: rest_bytes,
                        });
                        u.cached_bytes -= rest_bytes;
                        u.end = split;
                    }
                    st.cached_bytes = st.cached_bytes.saturating_sub(u.cached_bytes);
                    n += u.len();
                    taken.push(u);
                }
                if taken.is_empty() {
                    if st.closed && st.in_flight == 0 {
                        return Ok(None);
                    }
                    notified.as_mut().enable();
                } else {
                    st.queued -= n as u64;
                    st.in_flight += n as u64;
                    for (index, u) in taken.iter().enumerate() {
                        if u.cached.is_some() {
                            continue;
                        }
                        let Some(rec) = st.records.get(&u.rid) else {
                            continue;
                        };
                        let Some(seg) = st.segments.get(&rec.seg) else {
                            continue;
                        };
                        reads.push(ToRead {
                            index,
                            path: seg.path.clone(),
                            offset: rec.offset,
                            len: rec.len,
                            events: rec.events,
                            start: u.start,
                            end: u.end,
                        });
                    }
                }
            }
            if taken.is_empty() {
                notified.await;
                continue;
            }
            let parts: Vec<(u64, u32, u32)> =
                taken.iter().map(|u| (u.rid, u.start, u.end)).collect();
            let mut guard = TakeGuard {
                core,
                parts: Some(parts.clone()),
            };
            let mut batches: Vec<Option<Batch>> = taken.into_iter().map(|u| u.cached).collect();
            let mut damaged = Vec::new();
            if !reads.is_empty() {
                let read = tokio::task::spawn_blocking(move || read_parts(reads))
                    .await
                    .map_err(|e| ChannelError::Other(format!("disk channel: read task: {e}")))?;
                for (index, result) in read {
                    match result {
                        Ok(b) => batches[index] = Some(b),
                        Err(reason) => damaged.push((index, reason)),
                    }
                }
            }
            for (i, b) in batches.iter().enumerate() {
                if b.is_none() && !damaged.iter().any(|(d, _)| *d == i) {
                    damaged.push((i, "record missing from the index".into()));
                }
            }
            let mut out = Batch::with_capacity(max);
            let mut kept = Vec::with_capacity(parts.len());
            for (i, b) in batches.into_iter().enumerate() {
                if let Some(b) = b {
                    if !damaged.iter().any(|(d, _)| *d == i) {
                        out.events.extend(b.events);
                        kept.push(parts[i]);
                    }
                }
            }
            guard.parts = Some(kept.clone());
            if !damaged.is_empty() {
                let mut dropped = Vec::new();
                {
                    let mut st = core.shared.lock();
                    for (index, reason) in &damaged {
                        let (rid, _, _) = parts[*index];
                        if let Some(rec) = st.records.get(&rid).copied() {
                            let seg = st
                                .segments
                                .get(&rec.seg)
                                .map(|s| s.path.display().to_string());
                            tracing::warn!(
                                segment = seg.unwrap_or_default(),
                                offset = rec.offset,
                                reason = %reason,
                                "disk channel: skipped a corrupt record"
                            );
                        }
                        st.corrupt_records += 1;
                        dropped.push(parts[*index]);
                    }
                }
                // Damaged events are gone for good: committed so that they
                // are not read again.
                drop(core.commit(dropped)?);
            }
            guard.parts = None;
            if kept.is_empty() {
                continue;
            }
            let events = out.len();
            return Ok(Some(Transaction::new(
                out,
                Box::new(DiskTxn {
                    core: self.core.clone(),
                    parts: kept,
                    events,
                }),
            )));
        }
    }

    fn drained(&self) -> bool {
        let st = self.core.shared.lock();
        st.closed && st.queued == 0
    }

    fn close(&self) {
        self.core.shared.lock().closed = true;
        self.core.shared.readers.notify_waiters();
        self.core.shared.writers.notify_waiters();
    }

    fn stats(&self) -> ChannelStats {
        let st = self.core.shared.lock();
        ChannelStats {
            events: st.queued + st.in_flight,
            bytes: st.used_bytes,
            // `u64::MAX` stands for "no bound on events": report none.
            capacity: (self.core.capacity != u64::MAX).then_some(self.core.capacity),
            max_bytes: Some(self.core.max_bytes),
            put_events: st.put_events,
            committed_events: st.committed_events,
            discarded_events: st.discarded_events,
        }
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn degraded(&self) -> Option<String> {
        self.core.shared.lock().full.clone()
    }
}

struct DiskTxn {
    core: Arc<Core>,
    /// The taken parts: (record id, first event, end event).
    parts: Vec<(u64, u32, u32)>,
    events: usize,
}

#[async_trait]
impl TransactionHandle for DiskTxn {
    async fn commit(self: Box<Self>) -> Result<(), ChannelError> {
        // Returns once the commit entries are written: a process crash
        // after that does not deliver these events again.
        let written = self.core.commit(self.parts)?;
        written.await.map_err(|_| gone())
    }

    fn rollback(self: Box<Self>, batch: Option<Batch>) {
        let batch = batch.filter(|b| b.len() == self.events);
        self.core.requeue(&self.parts, batch);
    }
}
