//! The [`Processor`] trait: synchronous, batch-at-a-time transformation.

use crate::event::{Batch, Timestamp};

/// What a processor reports back while processing a batch.
///
/// A processor that cannot handle an event (unparseable JSON, say) leaves the
/// event in the batch and calls [`fail`](Self::fail) with its index. The
/// runtime then moves it to the dead-letter channel when one is configured, or
/// counts and logs it and lets it pass on unchanged: never a silent drop,
/// never a crash.
#[derive(Debug, Default)]
pub struct ProcessContext {
    failures: Vec<(usize, String)>,
    /// The counters of the processor being run, for its gauges.
    metrics: Option<std::sync::Arc<crate::metrics::ComponentMetrics>>,
}

impl ProcessContext {
    /// A fresh context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the event at `index` of the batch being processed as failed.
    pub fn fail(&mut self, index: usize, reason: impl std::fmt::Display) {
        self.failures.push((index, reason.to_string()));
    }

    /// The failures reported so far, in the order they were reported.
    pub fn failures(&self) -> &[(usize, String)] {
        &self.failures
    }

    /// Takes the failures out, leaving none.
    pub fn take_failures(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.failures)
    }

    /// Reports a named value of the running processor (e.g. its latest
    /// `anomaly_score`): exported as a metric and plotted by the dashboard.
    /// Does nothing outside a pipeline (in a unit test, say).
    pub fn set_gauge(&self, name: &str, value: f64) {
        if let Some(m) = &self.metrics {
            m.set_gauge(name, value);
        }
    }

    /// Offers `report` as the running processor's document `name` (see
    /// [`Report`](crate::metrics::Report)): the API renders it when asked.
    /// A processor sets it once (on its first batch), holding the state the
    /// report reads behind a lock it takes once per batch. Does nothing
    /// outside a pipeline.
    pub fn set_report(&self, name: &'static str, report: crate::metrics::Report) {
        if let Some(m) = &self.metrics {
            m.reports.set(name, report);
        }
    }

    /// Sets whose counters [`set_gauge`](Self::set_gauge) writes to.
    pub fn set_metrics(&mut self, metrics: std::sync::Arc<crate::metrics::ComponentMetrics>) {
        self.metrics = Some(metrics);
    }
}

/// A synchronous transformation of batches: the per-event hot path.
///
/// A processor runs inline inside a source task (`processors:` of a source)
/// or as a stage task of its own (`input:` a channel). Either way it is called
/// from one task at a time, so it may keep state in `&mut self`.
///
/// # Contract
///
/// * `process` transforms the batch in place: change events, remove them
///   (a filter), or add new ones. Order is kept unless the processor says
///   otherwise.
/// * It must not block for long: heavy work (training a model) goes to a
///   background thread and is swapped in.
/// * Failures are reported per event through [`ProcessContext::fail`]; the
///   processor never panics on event content.
/// * `finish` is called once when the input has ended (a bounded run, or a
///   graceful stop) so that processors holding events back (windows,
///   sessions) can emit them.
/// * A processor whose [`tick_interval`](Self::tick_interval) is `Some` is
///   also given [`tick`](Self::tick) about that often while the pipeline
///   runs, even when no event arrives, from the same task as `process` (never
///   at the same time). What a tick puts into `out` goes through the rest of
///   the chain and the selector like any processed batch. Ticks may come
///   more often than asked (several processors of a chain share one timer)
///   and stop before `finish`.
pub trait Processor: Send + 'static {
    /// Transforms `batch` in place.
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext);

    /// Emits whatever is held back; called once at end of input.
    fn finish(&mut self, _out: &mut Batch) {}

    /// How often this processor wants [`tick`](Self::tick); `None` (the
    /// default) for never.
    fn tick_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Time passes: close what timed out (sessions, windows) into `out`, or
    /// save state. `now` is the wall-clock time.
    fn tick(&mut self, _now: Timestamp, _out: &mut Batch) {}
}
