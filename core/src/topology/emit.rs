//! The output side shared by sources and processor stages: run the inline
//! processor chain, hand failures to the dead-letter channel, apply the
//! selector, and put into the channels.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::channel::{Channel, ChannelError};
use crate::event::{Batch, Event, Value};
use crate::metrics::ComponentMetrics;
use crate::processor::{ProcessContext, Processor};
use crate::warn::WarnLimiter;

/// One processor of an inline chain, with what the runtime needs around it.
pub(crate) struct ChainLink {
    pub id: Arc<str>,
    pub processor: Box<dyn Processor>,
    pub dead_letter: Option<Arc<dyn Channel>>,
    pub metrics: Arc<ComponentMetrics>,
    /// Keeps failure warnings to one a second.
    pub warn: WarnLimiter,
    /// Count events in and out on `metrics` (inline processors); a stage's
    /// own task counts them instead.
    pub count_io: bool,
}

/// Where events go after the chain.
pub(crate) enum Route {
    /// Every event to every output.
    Replicating,
    /// By the text of one field.
    Multiplexing {
        field: String,
        mapping: HashMap<String, Vec<usize>>,
        default: Vec<usize>,
    },
}

/// Runs a chain, routes, puts.
pub(crate) struct Emitter {
    pub owner: Arc<str>,
    pub chain: Vec<ChainLink>,
    pub route: Route,
    pub outputs: Vec<Arc<dyn Channel>>,
    pub metrics: Arc<ComponentMetrics>,
    pub cx: ProcessContext,
    /// Reused for the text of a non-string routing field.
    pub key: String,
    /// The task's stop token: once cancelled, a put still blocked after
    /// [`ABANDON_AFTER`](super::runner::ABANDON_AFTER) is abandoned with
    /// [`ChannelError::Stopped`].
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

impl Emitter {
    /// An emitter for `owner` writing to `outputs`.
    pub fn new(
        owner: &str,
        chain: Vec<ChainLink>,
        route: Route,
        outputs: Vec<Arc<dyn Channel>>,
        metrics: Arc<ComponentMetrics>,
    ) -> Self {
        Emitter {
            owner: owner.into(),
            chain,
            route,
            outputs,
            metrics,
            cx: ProcessContext::new(),
            key: String::new(),
            stop: None,
        }
    }

    /// Puts `batch` into output `i`, abandoning a put that blocks too long
    /// after the stop (see [`Emitter::stop`]).
    async fn put(&mut self, i: usize, batch: Batch) -> Result<(), ChannelError> {
        let ch = &self.outputs[i];
        let Some(stop) = &self.stop else {
            return ch.put(batch).await;
        };
        tokio::select! {
            biased;
            put = ch.put(batch) => put,
            _ = super::runner::abandon(stop) => Err(ChannelError::Stopped),
        }
    }

    /// Runs the chain over `batch`, then routes and puts it.
    pub async fn emit(&mut self, mut batch: Batch) -> Result<(), ChannelError> {
        for i in 0..self.chain.len() {
            self.run_link(i, &mut batch).await?;
            if batch.is_empty() {
                return Ok(());
            }
        }
        self.route_and_put(batch).await
    }

    /// Flushes every processor of the chain (end of input), passing what each
    /// emits through the rest of the chain, then routes it.
    pub async fn finish(&mut self) -> Result<(), ChannelError> {
        for i in 0..self.chain.len() {
            let mut out = Batch::new();
            self.chain[i].processor.finish(&mut out);
            if out.is_empty() {
                continue;
            }
            for j in i + 1..self.chain.len() {
                self.run_link(j, &mut out).await?;
            }
            self.route_and_put(out).await?;
        }
        Ok(())
    }

    /// The shortest tick interval of the chain's processors, if any wants ticks.
    pub fn tick_interval(&self) -> Option<std::time::Duration> {
        self.chain
            .iter()
            .filter_map(|l| l.processor.tick_interval())
            .min()
    }

    /// Ticks every processor of the chain that wants ticks, passing what each
    /// emits through the rest of the chain, then routes it.
    pub async fn tick(&mut self) -> Result<(), ChannelError> {
        let now = crate::event::Timestamp::now();
        for i in 0..self.chain.len() {
            if self.chain[i].processor.tick_interval().is_none() {
                continue;
            }
            let mut out = Batch::new();
            self.chain[i].processor.tick(now, &mut out);
            if out.is_empty() {
                continue;
            }
            for j in i + 1..self.chain.len() {
                self.run_link(j, &mut out).await?;
                if out.is_empty() {
                    break;
                }
            }
            self.route_and_put(out).await?;
        }
        Ok(())
    }

    async fn run_link(&mut self, i: usize, batch: &mut Batch) -> Result<(), ChannelError> {
        let link = &mut self.chain[i];
        if link.count_io {
            link.metrics.record_in(batch);
        }
        let before = batch.len();
        self.cx.set_metrics(link.metrics.clone());
        link.processor.process(batch, &mut self.cx);
        // What the processor dropped on purpose (a filter); failures are
        // counted as errors, not here.
        if batch.len() < before {
            link.metrics.record_discarded(before - batch.len());
        }
        let failures = self.cx.take_failures();
        if !failures.is_empty() {
            handle_failures(
                &link.id,
                &link.metrics,
                link.dead_letter.as_ref(),
                &mut link.warn,
                "they are passed on unchanged",
                batch,
                failures,
            )
            .await?;
        }
        if link.count_io {
            link.metrics.record_out(batch);
            link.metrics.tap.offer(batch);
        }
        Ok(())
    }

    async fn route_and_put(&mut self, batch: Batch) -> Result<(), ChannelError> {
        if batch.is_empty() || self.outputs.is_empty() {
            return Ok(());
        }
        self.metrics.tap.offer(&batch);
        match &self.route {
            Route::Replicating => {
                let n = self.outputs.len();
                self.metrics.record_out(&batch);
                for i in 0..n {
                    if i + 1 == n {
                        return self.put(i, batch).await;
                    }
                    self.put(i, batch.clone()).await?;
                }
                Ok(())
            }
            Route::Multiplexing {
                field,
                mapping,
                default,
            } => {
                let mut per: Vec<Vec<Event>> =
                    (0..self.outputs.len()).map(|_| Vec::new()).collect();
                let (total, total_bytes) = (batch.len(), batch.body_bytes());
                let (mut unrouted, mut unrouted_bytes) = (0usize, 0usize);
                for event in batch {
                    let targets = match event.get(field) {
                        Some(Value::String(b)) => std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| mapping.get(s))
                            .unwrap_or(default),
                        Some(v) => {
                            self.key.clear();
                            v.write_text(&mut self.key);
                            mapping.get(self.key.as_str()).unwrap_or(default)
                        }
                        None => default,
                    };
                    match targets.split_last() {
                        None => {
                            unrouted += 1;
                            unrouted_bytes += event.body.len();
                        }
                        Some((last, rest)) => {
                            for t in rest {
                                per[*t].push(event.clone());
                            }
                            per[*last].push(event);
                        }
                    }
                }
                // Each event emitted counts once, whatever number of channels it went to.
                self.metrics
                    .events_out
                    .fetch_add((total - unrouted) as u64, Relaxed);
                self.metrics
                    .bytes_out
                    .fetch_add((total_bytes - unrouted_bytes) as u64, Relaxed);
                if unrouted > 0 {
                    self.metrics.record_discarded(unrouted);
                    tracing::debug!(component = %self.owner, unrouted, "events matched no mapping and there is no default");
                }
                for (i, events) in per.into_iter().enumerate() {
                    if !events.is_empty() {
                        self.put(i, Batch::from(events)).await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Moves failed events to the dead-letter channel (tagged with `error` and
/// `component`), or counts and logs them and leaves them in the batch.
/// Moves failed events to the dead-letter channel (tagged with `error` and
/// `component`), or counts them and logs (at most once a second) `outcome`:
/// what becomes of them.
pub(crate) async fn handle_failures(
    component: &str,
    metrics: &ComponentMetrics,
    dead_letter: Option<&Arc<dyn Channel>>,
    warn: &mut WarnLimiter,
    outcome: &'static str,
    batch: &mut Batch,
    mut failures: Vec<(usize, String)>,
) -> Result<(), ChannelError> {
    failures.sort_by_key(|(i, _)| *i);
    failures.dedup_by_key(|(i, _)| *i);
    metrics.record_errors(failures.len());
    let Some(dlq) = dead_letter else {
        let (Some((idx, reason)), Some(held_back)) = (failures.first(), warn.allow()) else {
            return Ok(());
        };
        let body = batch.events.get(*idx).map_or(&[][..], |e| &e.body[..]);
        tracing::warn!(
            component,
            failed = failures.len(),
            first_error = %crate::quote::quoted(reason).max(500),
            first_event = %crate::quote::quoted(body),
            warnings_held_back = held_back,
            "events failed; {outcome} (configure `dead_letter` to keep them apart)"
        );
        return Ok(());
    };
    let mut dead = Batch::with_capacity(failures.len());
    let mut kept = Vec::with_capacity(batch.len() - failures.len().min(batch.len()));
    let mut fi = failures.into_iter().peekable();
    for (i, mut event) in std::mem::take(&mut batch.events).into_iter().enumerate() {
        if fi.peek().is_some_and(|(j, _)| *j == i) {
            let (_, reason) = fi.next().unwrap_or_default();
            event.insert("error", reason);
            event.insert("component", component);
            dead.push(event);
        } else {
            kept.push(event);
        }
    }
    batch.events = kept;
    dlq.put(dead).await
}
