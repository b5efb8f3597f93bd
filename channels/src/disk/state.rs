//! The in-memory side of a disk channel: which records are pending, what is
//! queued for readers, and the counters. Shared by the channel, its
//! transactions and the writer thread, under one lock.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use sluice_core::event::Batch;
use tokio::sync::Notify;

/// A record not yet fully committed.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    /// The segment holding it (its first record id).
    pub seg: u64,
    /// Header offset in the segment.
    pub offset: u64,
    /// Header plus payload bytes.
    pub len: u64,
    /// Events in the record.
    pub events: u32,
    /// Events committed so far (ranges never overlap, so a count suffices).
    pub committed: u32,
}

/// Events `start..end` of record `rid`, ready to be taken.
#[derive(Debug)]
pub struct Unit {
    pub rid: u64,
    pub start: u32,
    pub end: u32,
    /// The events themselves when still in memory; read from the segment
    /// otherwise.
    pub cached: Option<Batch>,
    /// Bytes of `cached` counted against the cache budget.
    pub cached_bytes: usize,
}

impl Unit {
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
}

/// What a batch kept in memory costs against `cache_bytes`: bodies and
/// fields, and the events themselves.
pub fn cache_cost(b: &Batch) -> usize {
    b.size_of() + b.len() * std::mem::size_of::<sluice_core::event::Event>()
}

/// A segment file still on disk.
#[derive(Debug)]
pub struct Seg {
    pub path: PathBuf,
    /// Records of it not fully committed.
    pub pending: usize,
    /// No more records will be appended (it can go once `pending` is 0).
    pub sealed: bool,
}

#[derive(Debug, Default)]
pub struct State {
    /// What readers take next, front first.
    pub units: VecDeque<Unit>,
    /// Records not fully committed, by id.
    pub records: BTreeMap<u64, Rec>,
    /// Segments on disk, by first record id.
    pub segments: BTreeMap<u64, Seg>,
    /// The segment being appended to, if any.
    pub active: Option<u64>,
    /// Events in `units`.
    pub queued: u64,
    /// Events taken, not yet committed or rolled back.
    pub in_flight: u64,
    /// Bytes of pending records, plus bytes reserved by puts being written.
    pub used_bytes: u64,
    /// Events not yet committed, plus events reserved by puts being
    /// written (what `capacity` bounds).
    pub used_events: u64,
    /// Bytes of cached batches in `units`.
    pub cached_bytes: usize,
    pub closed: bool,
    pub put_events: u64,
    pub committed_events: u64,
    pub discarded_events: u64,
    /// Records found damaged (at start-up or when read back).
    pub corrupt_records: u64,
    /// Why writers wait, while the disk is full (see the writer's docs).
    pub full: Option<String>,
}

impl State {
    /// Counts `n` committed events of record `rid`; returns the path of a
    /// segment that became deletable.
    pub fn commit_events(&mut self, rid: u64, n: u32) -> Option<PathBuf> {
        let rec = self.records.get_mut(&rid)?;
        rec.committed = rec.committed.saturating_add(n);
        if rec.committed < rec.events {
            return None;
        }
        let rec = self.records.remove(&rid)?;
        self.used_bytes = self.used_bytes.saturating_sub(rec.len);
        let seg = self.segments.get_mut(&rec.seg)?;
        seg.pending = seg.pending.saturating_sub(1);
        if seg.pending == 0 && seg.sealed {
            return self.segments.remove(&rec.seg).map(|s| s.path);
        }
        None
    }

    /// The lowest record id whose commits must be kept: the first record of
    /// the oldest segment still on disk (its committed records included),
    /// or of the active segment.
    pub fn commits_floor(&self) -> u64 {
        let oldest = self.records.keys().next().copied().unwrap_or(u64::MAX);
        let oldest = self
            .segments
            .keys()
            .next()
            .map_or(oldest, |&s| s.min(oldest));
        oldest.min(self.active.unwrap_or(u64::MAX))
    }
}

/// State plus the wake-ups of waiting readers and writers.
pub struct Shared {
    pub state: Mutex<State>,
    /// Woken when events become available or the channel closes.
    pub readers: Notify,
    /// Woken when room is freed or the channel closes.
    pub writers: Notify,
    /// Cache budget: bytes of batches kept in memory for readers.
    pub cache_budget: usize,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters only; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
