//! The writer: the only code that writes a disk channel's files, behind one
//! mutex, served by its own thread.
//!
//! Puts and commits are commands that wait for their reply. With `sync:
//! interval` or `never`, a command that finds the writer free and is quick
//! (an append that fits the active segment, a commit that deletes nothing;
//! see [`Writer::quick`]) runs on the caller's thread: one `write` to the
//! page cache costs less than two thread wake-ups. Everything else is sent
//! to the writer thread, which takes every command waiting at once (group
//! commit): the records of all of them go to the segment in one `write`,
//! their commit entries to the commit log in another, then one `fdatasync`
//! when the policy says so. Either way the new records are published to
//! readers and the reply sent only after the `write`, so a put returns
//! after its record is in the file (and synced with `sync: always`).
//! `fdatasync`, segment rolls, deletions and compaction never run on the
//! executor's threads.
//!
//! On a full disk the writer waits for room instead of failing ([`full`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_core::event::Batch;
use tokio::sync::oneshot;

use super::log::{self, Header, COMMITS, HEADER_LEN};
use super::state::{Rec, Seg, Shared, Unit};
use super::SyncPolicy;

mod full;
use full::Full;

/// The commit log is compacted once it grows past this.
const COMPACT_COMMITS_AT: u64 = 4 << 20;
/// How long the writer thread looks for the next command before it sleeps.
const SPIN: Duration = Duration::from_micros(50);
/// Commands handled in one group at most.
const MAX_GROUP: usize = 1024;

/// A request to the writer thread.
pub enum Cmd {
    /// Append one record holding `events` events.
    Append {
        payload: Vec<u8>,
        events: u32,
        /// The batch, kept in memory for readers while the cache has room.
        batch: Batch,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// Reply once everything sent before is written and synced.
    Sync { reply: oneshot::Sender<()> },
    /// Nothing: wakes the thread so that it tries again what waits for
    /// room (sent after a put run inline found the disk full).
    Wake,
    /// Write commit entries for these events, (record id, start, end),
    /// then delete the segments they finished.
    Commit {
        parts: Vec<(u64, u32, u32)>,
        delete: Vec<PathBuf>,
        /// Told once the entries are written to the OS.
        reply: Option<oneshot::Sender<()>>,
    },
}

/// The next command if one comes within [`SPIN`]: a command's sender
/// waits for its reply, and waking a parked thread costs more than the
/// write itself, so the thread looks again for a moment before it sleeps.
fn spin_for_next(rx: &Receiver<Cmd>) -> Option<Cmd> {
    let until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Ok(c) => return Some(c),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) if Instant::now() < until => {
                std::thread::yield_now()
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
        }
    }
}

/// A record written to the file, to be published.
struct Written {
    rid: u64,
    rec: Rec,
    batch: Batch,
    cache_size: usize,
    reply: oneshot::Sender<io::Result<()>>,
}

pub struct Writer {
    pub dir: PathBuf,
    pub shared: Arc<Shared>,
    pub sync: SyncPolicy,
    pub sync_interval: Duration,
    pub max_segment: u64,
    pub next_rid: u64,
    /// The active segment: its id, file and size.
    file: Option<(u64, File, u64)>,
    commits: Option<File>,
    commits_len: u64,
    /// Written since the last sync.
    dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
    commit_buf: Vec<u8>,
    /// Sealed segments not synced yet (`sync: interval`), first in `unsynced`.
    unsynced: Vec<File>,
    unsynced_sealed: usize,
    /// To the thread that runs `sync: interval`'s syncs.
    syncer: SyncSender<Vec<File>>,
    /// Set while the disk is full (see the module docs).
    full: Option<Full>,
    /// Records placed in the active segment whose bytes (all of `buf`) are
    /// not written yet because the disk is full.
    stalled: Vec<Written>,
    /// Appends and syncs waiting for room, in order.
    deferred: VecDeque<Cmd>,
    /// Replies of commits whose entries (in `commit_buf`) wait for room.
    commit_replies: Vec<oneshot::Sender<()>>,
    /// Bytes of the open commit log, to cut a failed write back.
    commits_size: u64,
    /// Writes that found the disk full, in all (to tell whether a try
    /// found it full again).
    stalls: u64,
}

impl Writer {
    /// A writer for `dir` going on from what recovery found.
    pub fn new(
        dir: PathBuf,
        shared: Arc<Shared>,
        config: &super::DiskConfig,
        recovered: &super::recover::Recovered,
    ) -> Self {
        Writer {
            dir,
            shared,
            sync: config.sync,
            sync_interval: config.sync_interval.get(),
            max_segment: config.max_segment_bytes.0,
            next_rid: recovered.next_rid,
            file: None,
            commits: None,
            commits_len: recovered.commits_len,
            dirty: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
            commit_buf: Vec::new(),
            unsynced: Vec::new(),
            unsynced_sealed: 0,
            syncer: spawn_syncer(),
            full: None,
            stalled: Vec::new(),
            deferred: VecDeque::new(),
            commit_replies: Vec::new(),
            commits_size: 0,
            stalls: 0,
        }
    }

    /// Serves the commands of `rx` until every sender is gone, then syncs
    /// and returns. Puts and commits may also run the writer themselves
    /// while it is free (see [`Writer::inline`]); the thread keeps the
    /// interval syncs going in any case.
    pub fn run(writer: &Mutex<Writer>, rx: &Receiver<Cmd>) {
        let lock = || writer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let first = if let Some(c) = spin_for_next(rx) {
                c
            } else {
                let wait = {
                    let w = lock();
                    let sync = (w.sync == SyncPolicy::Interval).then(|| {
                        if w.dirty {
                            (w.last_sync + w.sync_interval)
                                .saturating_duration_since(Instant::now())
                        } else {
                            w.sync_interval
                        }
                    });
                    match (sync, w.retry_in()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                };
                let received = match wait {
                    Some(timeout) => rx.recv_timeout(timeout),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => {
                        let mut w = lock();
                        if w.retry_in().is_some_and(|t| t.is_zero()) {
                            w.handle(Vec::new());
                        }
                        w.sync_if_due();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            let mut w = lock();
            w.handle(group);
            w.sync_if_due();
        }
        let mut w = lock();
        // Still full: nobody waits for what was not written any more (the
        // channel is gone); cut its partial bytes back.
        if w.full.is_some() {
            w.stalled.clear();
            w.deferred.clear();
            w.buf.clear();
            if let Some((_, f, size)) = &w.file {
                let _ = f.set_len(*size);
            }
        }
        // Everything committed: the active segment goes too, and there is
        // nothing left worth syncing but the commit log.
        if w.shared.lock().records.is_empty() {
            w.seal_active();
            w.unsynced.clear();
            w.unsynced_sealed = 0;
        }
        if w.sync != SyncPolicy::Never {
            w.sync_now();
        }
    }

    /// Whether puts and commits may write themselves, on the caller's
    /// thread, when the writer is free: a write to the page cache costs
    /// less than waking the writer thread and being woken by it. Not with
    /// `sync: always`, whose `fdatasync` must stay off the executor.
    pub fn inline(sync: SyncPolicy) -> bool {
        sync != SyncPolicy::Always
    }

    /// Whether `cmd` is quick enough to run on an executor thread: an
    /// append that fits the active segment, a commit that deletes no
    /// segment and does not compact the commit log. Rolling a segment
    /// (which syncs the directory), deleting one, compacting and syncs stay
    /// on the writer thread.
    pub fn quick(&self, cmd: &Cmd) -> bool {
        if self.full.is_some() || !self.commit_buf.is_empty() {
            return false;
        }
        match cmd {
            Cmd::Append { payload, .. } => {
                self.commits_len <= COMPACT_COMMITS_AT
                    && self.file.as_ref().is_some_and(|(_, _, size)| {
                        *size + (HEADER_LEN + payload.len()) as u64 <= self.max_segment
                    })
            }
            Cmd::Commit { parts, delete, .. } => {
                delete.is_empty()
                    && self.commits_len + (parts.len() * log::COMMIT_LEN) as u64
                        <= COMPACT_COMMITS_AT
            }
            Cmd::Sync { .. } | Cmd::Wake => false,
        }
    }

    /// Handles one command on the caller's thread, then starts an interval
    /// sync when one is due.
    pub fn handle_inline(&mut self, cmd: Cmd) {
        self.handle(vec![cmd]);
        self.sync_if_due();
    }

    /// With `sync: interval`, starts a sync once the interval has passed
    /// since the last one and something was written.
    fn sync_if_due(&mut self) {
        if self.dirty
            && self.sync == SyncPolicy::Interval
            && self.last_sync.elapsed() >= self.sync_interval
        {
            self.sync_background();
        }
    }

    /// With `sync: interval`: hands handles of the files written since the
    /// last sync to the syncer thread, so that appends go on meanwhile. A
    /// sync still running is not queued behind: the next try comes at the
    /// next write or interval.
    fn sync_background(&mut self) {
        let mut files = std::mem::take(&mut self.unsynced);
        files.extend(self.file.as_ref().and_then(|(_, f, _)| f.try_clone().ok()));
        files.extend(self.commits.as_ref().and_then(|c| c.try_clone().ok()));
        match self.syncer.try_send(files) {
            Ok(()) => {
                self.dirty = false;
                self.last_sync = Instant::now();
            }
            Err(std::sync::mpsc::TrySendError::Full(files)) => {
                // Keep sealed segments for the next round; the active ones
                // are cloned again then.
                self.unsynced = files;
                self.unsynced.truncate(self.unsynced_sealed);
                // Try again shortly rather than spin.
                let retry = self.sync_interval.saturating_sub(Duration::from_millis(50));
                self.last_sync = Instant::now()
                    .checked_sub(retry)
                    .unwrap_or_else(Instant::now);
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(files)) => {
                for f in files {
                    let _ = f.sync_data();
                }
                self.dirty = false;
                self.last_sync = Instant::now();
            }
        }
        if self.unsynced.is_empty() {
            self.unsynced_sealed = 0;
        }
    }

    fn sync_now(&mut self) {
        for f in std::mem::take(&mut self.unsynced) {
            let _ = f.sync_data();
        }
        self.unsynced_sealed = 0;
        if let Some((id, f, _)) = &self.file {
            if let Err(e) = f.sync_data() {
                tracing::warn!(segment = id, "disk channel: sync failed: {e}");
            }
        }
        if let Some(c) = &self.commits {
            let _ = c.sync_data();
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    fn handle(&mut self, group: Vec<Cmd>) {
        let mut group: VecDeque<Cmd> = group.into();
        if self.full.is_some() {
            if self.retry_full() {
                // What waited goes first.
                let mut all = std::mem::take(&mut self.deferred);
                all.extend(group);
                group = all;
            } else {
                // Commits go on: deleting their segments may free room.
                let (commits, wait): (VecDeque<Cmd>, VecDeque<Cmd>) = group
                    .into_iter()
                    .partition(|c| matches!(c, Cmd::Commit { .. }));
                self.deferred.extend(wait);
                group = commits;
            }
        }
        let mut pending: Vec<Written> = Vec::new();
        let mut written: Vec<Written> = Vec::new();
        let mut delete: Vec<PathBuf> = Vec::new();
        let mut synced: Vec<oneshot::Sender<()>> = Vec::new();
        for cmd in group {
            match cmd {
                cmd @ (Cmd::Append { .. } | Cmd::Sync { .. }) if self.full.is_some() => {
                    self.deferred.push_back(cmd);
                }
                Cmd::Append {
                    payload,
                    events,
                    batch,
                    reply,
                } => {
                    let len = (HEADER_LEN + payload.len()) as u64;
                    let roll = match &self.file {
                        None => true,
                        Some((_, _, size)) => {
                            *size + self.buf.len() as u64 > 0
                                && *size + self.buf.len() as u64 + len > self.max_segment
                        }
                    };
                    if roll {
                        // What is written to the old segment is published
                        // first: a sealed segment without pending records
                        // is deleted.
                        self.flush_segment(&mut pending, &mut written);
                        self.publish(std::mem::take(&mut written));
                        let rolled = if self.full.is_some() {
                            Ok(false)
                        } else {
                            self.roll().map(|()| true)
                        };
                        let cmd = Cmd::Append {
                            payload,
                            events,
                            batch,
                            reply,
                        };
                        match rolled {
                            Ok(true) => {}
                            Ok(false) => {
                                self.deferred.push_back(cmd);
                                continue;
                            }
                            Err(e) if log::is_full(&e) => {
                                self.stall(&e);
                                self.deferred.push_back(cmd);
                                continue;
                            }
                            Err(e) => {
                                tracing::error!("disk channel: cannot start a segment: {e}");
                                self.release(len, events);
                                if let Cmd::Append { reply, .. } = cmd {
                                    let _ = reply.send(Err(e));
                                }
                                continue;
                            }
                        }
                        let Cmd::Append {
                            payload,
                            events,
                            batch,
                            reply,
                        } = cmd
                        else {
                            continue;
                        };
                        self.place(payload, events, batch, reply, &mut pending);
                    } else {
                        self.place(payload, events, batch, reply, &mut pending);
                    }
                }
                Cmd::Commit {
                    parts,
                    delete: done,
                    reply,
                } => {
                    self.commit_replies.extend(reply);
                    for &(rid, s, e) in &parts {
                        self.commit_buf
                            .extend_from_slice(&log::commit_entry(rid, s, e));
                    }
                    delete.extend(done);
                }
                Cmd::Sync { reply } => synced.push(reply),
                Cmd::Wake => {}
            }
        }
        if self.full.is_none() {
            self.flush_segment(&mut pending, &mut written);
        }
        self.flush_commits();
        self.publish(written);
        if self.full.is_some() {
            // Records before them wait: so do they, ahead of what came after.
            for reply in synced.drain(..).rev() {
                self.deferred.push_front(Cmd::Sync { reply });
            }
        }
        if !synced.is_empty() {
            self.sync_now();
            for r in synced {
                let _ = r.send(());
            }
        }
        // After their commit entries: a segment deleted first would be
        // harmless too (its records are gone), but this keeps the log honest.
        // On a full disk, whether the entries went through or not: that
        // may be what frees the room.
        for p in delete {
            remove_segment(&p);
        }
        if self.commits_len > COMPACT_COMMITS_AT && self.full.is_none() {
            let floor = self.shared.lock().commits_floor();
            self.compact_commits(floor);
        }
    }

    /// Places a record at the end of the active segment's buffer.
    fn place(
        &mut self,
        payload: Vec<u8>,
        events: u32,
        batch: Batch,
        reply: oneshot::Sender<io::Result<()>>,
        pending: &mut Vec<Written>,
    ) {
        let Some((seg, _, size)) = &self.file else {
            return;
        };
        let len = (HEADER_LEN + payload.len()) as u64;
        let rid = self.next_rid;
        self.next_rid += 1;
        let offset = *size + self.buf.len() as u64;
        let header = Header {
            len: payload.len() as u32,
            rid,
            events,
            crc: crc32fast::hash(&payload),
        };
        self.buf.extend_from_slice(&header.encode());
        self.buf.extend_from_slice(&payload);
        pending.push(Written {
            rid,
            rec: Rec {
                seg: *seg,
                offset,
                len,
                events,
                committed: 0,
            },
            cache_size: super::state::cache_cost(&batch),
            batch,
            reply,
        });
    }

    /// Gives back the bytes and events reserved by a put that failed.
    fn release(&self, len: u64, events: u32) {
        let mut st = self.shared.lock();
        st.used_bytes = st.used_bytes.saturating_sub(len);
        st.used_events = st.used_events.saturating_sub(u64::from(events));
        drop(st);
        self.shared.writers.notify_waiters();
    }

    /// Writes the buffered records (`buf`, those of `pending`) at the end
    /// of the active segment, and syncs them with `sync: always`; moves
    /// them to `written`. On a full disk they stay buffered, in `stalled`,
    /// and the writer is full. On another failure their puts fail and the
    /// segment is sealed (what was partly written becomes a damaged stretch
    /// that recovery skips).
    fn flush_segment(&mut self, pending: &mut Vec<Written>, written: &mut Vec<Written>) {
        if self.buf.is_empty() {
            return;
        }
        let always = self.sync == SyncPolicy::Always;
        let Some((id, f, size)) = &mut self.file else {
            return;
        };
        let (id, at) = (*id, *size);
        // At the known end, not at the file position: a write the disk
        // cut short is written again over its partial bytes.
        let result =
            f.write_all_at(&self.buf, at)
                .and_then(|()| if always { f.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => {
                *size += self.buf.len() as u64;
                self.dirty = true;
                written.append(pending);
                self.buf.clear();
            }
            Err(e) if log::is_full(&e) => {
                // Cut what got in back (it frees room; a crash meanwhile
                // leaves a clean segment) and keep the records buffered.
                let _ = f.set_len(at);
                let e = log::at("write", &log::segment_path(&self.dir, id))(e);
                self.stalled.append(pending);
                self.stall(&e);
            }
            Err(e) => {
                tracing::error!(segment = %log::segment_path(&self.dir, id).display(), "disk channel: write failed: {e}");
                for w in pending.drain(..) {
                    self.release(w.rec.len, w.rec.events);
                    let _ = w.reply.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                self.seal_active();
                self.buf.clear();
            }
        }
    }

    /// Appends the buffered commit entries to the commit log and tells
    /// their commits. On a full disk they stay buffered (their commits
    /// wait) and the writer is full; on another failure they are dropped:
    /// their events may be delivered again after a restart.
    fn flush_commits(&mut self) {
        if self.commit_buf.is_empty() {
            for r in self.commit_replies.drain(..) {
                let _ = r.send(());
            }
            return;
        }
        let path = self.dir.join(COMMITS);
        let result = (|| {
            if self.commits.is_none() {
                let f = OpenOptions::new().create(true).append(true).open(&path)?;
                self.commits_size = f.metadata()?.len();
                self.commits = Some(f);
            }
            let Some(c) = self.commits.as_mut() else {
                return Ok(());
            };
            c.write_all(&self.commit_buf)
        })();
        match result {
            Ok(()) => {
                self.commits_len += self.commit_buf.len() as u64;
                self.commits_size += self.commit_buf.len() as u64;
                self.dirty = true;
                self.commit_buf.clear();
                for r in self.commit_replies.drain(..) {
                    let _ = r.send(());
                }
            }
            Err(e) => {
                // Whole entries only: a partial one would shift every
                // later entry out of place.
                if let Some(c) = &self.commits {
                    if c.set_len(self.commits_size).is_err() {
                        self.commits = None;
                    }
                }
                let e = log::at("write", &path)(e);
                if log::is_full(&e) {
                    self.stall(&e);
                    return;
                }
                tracing::error!(
                    "disk channel: {e}; committed events may be delivered again after a restart"
                );
                self.commits = None;
                self.commit_buf.clear();
                for r in self.commit_replies.drain(..) {
                    let _ = r.send(());
                }
            }
        }
    }

    fn seal_active(&mut self) {
        if let Some((id, f, _)) = self.file.take() {
            match self.sync {
                SyncPolicy::Always => {
                    let _ = f.sync_data();
                }
                SyncPolicy::Interval => {
                    // Synced with the next round, off this thread.
                    self.unsynced.insert(0, f);
                    self.unsynced_sealed += 1;
                }
                SyncPolicy::Never => {}
            }
            let delete = {
                let mut st = self.shared.lock();
                st.active = None;
                match st.segments.get_mut(&id) {
                    Some(seg) => {
                        seg.sealed = true;
                        if seg.pending == 0 {
                            st.segments.remove(&id).map(|s| s.path)
                        } else {
                            None
                        }
                    }
                    None => None,
                }
            };
            if let Some(p) = delete {
                remove_segment(&p);
            }
        }
    }

    /// Seals the active segment and starts a new one at the next record id.
    fn roll(&mut self) -> io::Result<()> {
        self.roll_at(self.next_rid)
    }

    /// Seals the active segment and starts a new one named after record `id`.
    fn roll_at(&mut self, id: u64) -> io::Result<()> {
        self.seal_active();
        let path = log::segment_path(&self.dir, id);
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(log::at("create", &path))?;
        if self.sync != SyncPolicy::Never {
            log::sync_dir(&self.dir);
        }
        let mut st = self.shared.lock();
        st.segments.insert(
            id,
            Seg {
                path,
                pending: 0,
                sealed: false,
            },
        );
        st.active = Some(id);
        drop(st);
        self.file = Some((id, f, 0));
        Ok(())
    }

    /// Makes written records available to readers and replies to their puts.
    fn publish(&mut self, written: Vec<Written>) {
        if written.is_empty() {
            return;
        }
        let mut replies = Vec::with_capacity(written.len());
        {
            let mut st = self.shared.lock();
            for w in written {
                let n = u64::from(w.rec.events);
                st.records.insert(w.rid, w.rec);
                if let Some(seg) = st.segments.get_mut(&w.rec.seg) {
                    seg.pending += 1;
                }
                let cached = st.cached_bytes + w.cache_size <= self.shared.cache_budget;
                let (cached, cached_bytes) = if cached {
                    st.cached_bytes += w.cache_size;
                    (Some(w.batch), w.cache_size)
                } else {
                    (None, 0)
                };
                st.units.push_back(Unit {
                    rid: w.rid,
                    start: 0,
                    end: w.rec.events,
                    cached,
                    cached_bytes,
                });
                st.queued += n;
                st.put_events += n;
                replies.push(w.reply);
            }
        }
        self.shared.readers.notify_waiters();
        for r in replies {
            let _ = r.send(Ok(()));
        }
    }

    /// Rewrites the commit log without entries of records that are gone.
    fn compact_commits(&mut self, floor: u64) {
        let result = log::read_commits(&self.dir).and_then(|(map, _)| {
            let keep: Vec<(u64, u32, u32)> = map
                .range(floor..)
                .flat_map(|(&rid, ranges)| ranges.iter().map(move |&(s, e)| (rid, s, e)))
                .collect();
            self.commits = None;
            log::rewrite_commits(&self.dir, &keep)?;
            Ok(keep.len())
        });
        match result {
            Ok(n) => self.commits_len = (n * log::COMMIT_LEN) as u64,
            Err(e) => {
                tracing::warn!("disk channel: cannot compact the commit log: {e}");
                // Try again only after as much growth again.
                self.commits_len = 0;
            }
        }
    }
}

/// The thread that syncs files for `sync: interval`; it ends when the
/// writer drops its sender. When it cannot be started, the writer syncs
/// itself (the send fails as disconnected).
fn spawn_syncer() -> SyncSender<Vec<File>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<File>>(0);
    let started = std::thread::Builder::new()
        .name("sluice-disk-sync".into())
        .spawn(move || {
            for files in rx {
                for f in files {
                    if let Err(e) = f.sync_data() {
                        tracing::warn!("disk channel: sync failed: {e}");
                    }
                }
            }
        });
    if let Err(e) = started {
        tracing::warn!("disk channel: cannot start the sync thread ({e}); syncing inline");
    }
    tx
}

pub(super) fn remove_segment(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!(segment = %path.display(), "disk channel: segment fully committed, deleted")
        }
        Err(e) => {
            tracing::warn!(segment = %path.display(), "disk channel: cannot delete a committed segment: {e}")
        }
    }
}
