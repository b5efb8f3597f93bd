//! Counters kept per component. Volumes go to counters, never to log lines.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::event::Batch;

pub mod health;
pub mod tap;

pub use health::{ComponentHealth, HealthSnapshot};
pub use tap::{Tap, TapSample, TapSubscription};

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
    /// How long a sink's batch writes take (sinks only).
    pub batch_latency: LatencyHistogram,
    /// Named values a component reports about itself (e.g. `anomaly_score`).
    pub gauges: Gauges,
    /// Named totals a component takes from elsewhere (e.g. the datagrams
    /// the kernel dropped for a UDP source): exported as counters.
    pub counters: Gauges,
    /// Named values per item of the component (e.g. a file source's bytes
    /// behind, per file).
    pub labelled: LabelledGauges,
    /// Named JSON documents the component reports about itself (e.g. the
    /// templates a `template` processor mined), rendered when the API asks.
    pub reports: Reports,
    /// Whether the component's task runs, and whether its writes fail.
    pub health: ComponentHealth,
    /// Samples of the events leaving the component, for `sluice tap`.
    pub tap: Tap,
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

    /// Sets the gauge `name` (e.g. `anomaly_score`) to `value`; the API
    /// exports it and the dashboard plots it.
    pub fn set_gauge(&self, name: &str, value: f64) {
        self.gauges.set(name, value);
    }

    /// Sets the counter `name` (e.g. `receive_dropped_datagrams`) to the
    /// total `value` counted elsewhere (by the kernel, say). Exported as
    /// `sluice_component_<name>_total`.
    pub fn set_counter(&self, name: &str, value: u64) {
        self.counters.set(name, value as f64);
    }

    /// Replaces every value of the labelled gauge `name`: one per item,
    /// named by the label `label` (e.g. `bytes_behind` per `file`). Items
    /// absent from `values` are no longer reported.
    pub fn set_labelled(&self, name: &str, label: &str, values: Vec<(String, f64)>) {
        self.labelled.set(name, label, values);
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

/// Upper bounds, in seconds, of the batch latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A histogram of durations with fixed buckets ([`LATENCY_BUCKETS`]): one
/// atomic add per bucket hit, no lock.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last counts what
    /// exceeded every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of all observations in microseconds.
    sum_micros: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Cumulative counts per bound of [`LATENCY_BUCKETS`] (then `+Inf`), the
    /// sum in seconds, and the count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect();
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        (cumulative, sum, self.count.load(Relaxed))
    }
}

/// Named gauges of one component. Set rarely (per batch at most), read by the
/// API: a small locked list is enough.
#[derive(Debug, Default)]
pub struct Gauges {
    values: std::sync::Mutex<Vec<(String, f64)>>,
}

impl Gauges {
    /// Sets `name` to `value`.
    pub fn set(&self, name: &str, value: f64) {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        match values.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => values.push((name.to_string(), value)),
        }
    }

    /// Every gauge with its value, in the order first set.
    pub fn snapshot(&self) -> Vec<(String, f64)> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A document a component reports about itself: rendered as JSON each time
/// the API asks for it (`GET /api/components/{id}/reports/{name}`), so it
/// is as fresh as the state it reads. It must be quick (it runs on the
/// API's threads) and bounded in size.
pub type Report = std::sync::Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The reports of one component by name. Set once per built component, read
/// by the API.
#[derive(Default)]
pub struct Reports {
    entries: std::sync::Mutex<Vec<(&'static str, Report)>>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Reports {
    /// Sets (or replaces) the report `name`.
    pub fn set(&self, name: &'static str, report: Report) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, r)) => *r = report,
            None => entries.push((name, report)),
        }
    }

    /// The report `name`, when set.
    pub fn get(&self, name: &str) -> Option<Report> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r.clone())
    }

    /// The names of the reports set, in the order first set.
    pub fn names(&self) -> Vec<&'static str> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().map(|(n, _)| *n).collect()
    }
}

/// One labelled gauge: its name, its label's name, and a value per label
/// value.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledFamily {
    /// The gauge's name (e.g. `bytes_behind`).
    pub name: String,
    /// The label that tells its items apart (e.g. `file`).
    pub label: String,
    /// The value of each item.
    pub values: Vec<(String, f64)>,
}

/// Labelled gauges of one component, each replaced as a whole when set (so
/// items that went away, such as a file no longer read, drop out). Set
/// rarely (about once a second), read by the API.
#[derive(Debug, Default)]
pub struct LabelledGauges {
    families: std::sync::Mutex<Vec<LabelledFamily>>,
}

impl LabelledGauges {
    /// Replaces the values of `name`.
    pub fn set(&self, name: &str, label: &str, values: Vec<(String, f64)>) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        match families.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                f.label = label.to_string();
                f.values = values;
            }
            None => families.push(LabelledFamily {
                name: name.to_string(),
                label: label.to_string(),
                values,
            }),
        }
    }

    /// Every family, in the order first set.
    pub fn snapshot(&self) -> Vec<LabelledFamily> {
        self.families
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.observe(std::time::Duration::from_micros(300));
        h.observe(std::time::Duration::from_millis(20));
        h.observe(std::time::Duration::from_secs(9));
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], 1); // <= 0.5 ms
        assert_eq!(buckets[5], 2); // <= 25 ms
        assert_eq!(buckets[LATENCY_BUCKETS.len() - 1], 2); // <= 5 s
        assert_eq!(buckets[LATENCY_BUCKETS.len()], 3); // +Inf
        assert!((sum - 9.0203).abs() < 1e-9, "{sum}");
    }
}
