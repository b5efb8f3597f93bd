//! Counters kept per component. Volumes go to counters, never to log lines.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::event::Batch;

/// Counters of one component. Cheap to update: one atomic add per batch.
#[derive(Debug, Default)]
pub struct ComponentMetrics {
    /// Events received (read by a source, taken by a stage or sink).
    pub events_in: AtomicU64,
    /// Body bytes received.
    pub bytes_in: AtomicU64,
    /// Events sent on (emitted to channels, or delivered by a sink).
    pub events_out: AtomicU64,
    /// Body bytes sent on.
    pub bytes_out: AtomicU64,
    /// Events that failed (processing, parsing or delivery).
    pub errors: AtomicU64,
    /// Events dropped on purpose (a filter, a full channel that drops).
    pub discarded: AtomicU64,
    /// For a bounded source: how much it will read in all (see
    /// [`set_progress_total`](Self::set_progress_total)).
    pub progress_total: AtomicU64,
    /// For a bounded source: how much of `progress_total` it has read.
    pub progress_done: AtomicU64,
    /// The unit of the progress counters: 0 none (not a bounded source),
    /// 1 bytes, 2 events.
    pub progress_unit: AtomicU8,
}

/// How far a bounded source has got (see [`ComponentMetrics::progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Read so far.
    pub done: u64,
    /// To read in all.
    pub total: u64,
    /// Whether the counts are bytes (else events).
    pub bytes: bool,
}

impl ComponentMetrics {
    /// Counts a batch coming in.
    pub fn record_in(&self, batch: &Batch) {
        self.events_in.fetch_add(batch.len() as u64, Relaxed);
        self.bytes_in.fetch_add(batch.body_bytes() as u64, Relaxed);
    }

    /// Counts a batch going out.
    pub fn record_out(&self, batch: &Batch) {
        self.events_out.fetch_add(batch.len() as u64, Relaxed);
        self.bytes_out.fetch_add(batch.body_bytes() as u64, Relaxed);
    }

    /// Counts failed events.
    pub fn record_errors(&self, n: usize) {
        self.errors.fetch_add(n as u64, Relaxed);
    }

    /// Counts discarded events.
    pub fn record_discarded(&self, n: usize) {
        self.discarded.fetch_add(n as u64, Relaxed);
    }

    /// Declares this source bounded: it will read `total` bytes of input
    /// (`bytes`) or emit `total` events, and report them with
    /// [`add_progress`](Self::add_progress). For progress displays only.
    pub fn set_progress_total(&self, total: u64, bytes: bool) {
        self.progress_total.store(total, Relaxed);
        self.progress_unit.store(if bytes { 1 } else { 2 }, Relaxed);
    }

    /// Counts progress of a bounded source.
    pub fn add_progress(&self, n: u64) {
        self.progress_done.fetch_add(n, Relaxed);
    }

    /// The progress of a bounded source; `None` for any other component.
    pub fn progress(&self) -> Option<Progress> {
        let unit = self.progress_unit.load(Relaxed);
        (unit != 0).then(|| Progress {
            done: self.progress_done.load(Relaxed),
            total: self.progress_total.load(Relaxed),
            bytes: unit == 1,
        })
    }

    /// A plain copy of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            events_in: self.events_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            events_out: self.events_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            errors: self.errors.load(Relaxed),
            discarded: self.discarded.load(Relaxed),
        }
    }
}

/// A copy of a component's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// See [`ComponentMetrics::events_in`].
    pub events_in: u64,
    /// See [`ComponentMetrics::bytes_in`].
    pub bytes_in: u64,
    /// See [`ComponentMetrics::events_out`].
    pub events_out: u64,
    /// See [`ComponentMetrics::bytes_out`].
    pub bytes_out: u64,
    /// See [`ComponentMetrics::errors`].
    pub errors: u64,
    /// See [`ComponentMetrics::discarded`].
    pub discarded: u64,
}
